package org.shrinkface.demo

import android.content.res.AssetManager
import org.shrinkface.core.FaceEmbedder
import org.shrinkface.core.ModelCard
import org.shrinkface.core.TfliteMetadata
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.io.Closeable
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The exported int8 student in LiteRT's Interpreter with the XNNPACK CPU delegate. The model card is read from
 * the .tflite file's own metadata (entry "shrinkface.model_card", see core's TfliteMetadata), so input size,
 * layout, normalisation, quantisation, template and threshold are the ones the model was exported with; the
 * core FaceEmbedder refuses a model whose tensors disagree with its card.
 */
class LiteRtEmbedder private constructor(
    model: MappedByteBuffer,
    threads: Int,
) : Closeable {
    val card: ModelCard = TfliteMetadata.readCard(model)
    private val interpreter: Interpreter =
        Interpreter(model, Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true))
    private val embedder: FaceEmbedder = FaceEmbedder(
        card,
        spec(interpreter.getInputTensor(0)),
        spec(interpreter.getOutputTensor(0)),
        FaceEmbedder.Backend { input: ByteBuffer, output: ByteBuffer -> interpreter.run(input, output) },
    )

    /** Unit embedding of an aligned crop (card.inputHeight × card.inputWidth × 3 RGB). */
    fun embed(cropRgb: ByteArray): FloatArray = embedder.embed(cropRgb)

    override fun close() = interpreter.close()

    companion object {
        /** Memory-maps an uncompressed asset (the app's build keeps .tflite uncompressed) and loads it. */
        fun fromAsset(assets: AssetManager, name: String, threads: Int = 4): LiteRtEmbedder {
            assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    val mapped = stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                    return LiteRtEmbedder(mapped, threads)
                }
            }
        }

        private fun spec(tensor: Tensor): FaceEmbedder.TensorSpec {
            val dtype = when (tensor.dataType()) {
                DataType.FLOAT32 -> "float32"
                DataType.INT8 -> "int8"
                DataType.UINT8 -> "uint8"
                else -> throw IllegalStateException("unsupported tensor type ${tensor.dataType()}")
            }
            val q = tensor.quantizationParams()
            return FaceEmbedder.TensorSpec(tensor.shape(), dtype, q.scale.toDouble(), q.zeroPoint)
        }
    }
}
