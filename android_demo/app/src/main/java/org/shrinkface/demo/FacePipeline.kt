package org.shrinkface.demo

import android.os.SystemClock
import org.shrinkface.core.FaceAligner
import org.shrinkface.core.RgbImages
import java.io.Closeable

/** Result of one frame: the unit embedding (null when no face), the face score and per-stage times in ms. */
class FrameResult(
    val embedding: FloatArray?,
    val faceScore: Float,
    val detectMs: Double,
    val alignMs: Double,
    val embedMs: Double,
) {
    fun timings(): String = "detect %.1f ms · align %.1f ms · embed %.1f ms".format(detectMs, alignMs, embedMs)
}

/**
 * Camera frame → upright RGB → YuNet 5 landmarks → the core's alignment onto the card's template → LiteRT
 * embedding. Everything between the detector and the interpreter is the Java core, which reproduces the Python
 * runtime's crop and input tensor bit for bit (see android_demo/README.md).
 */
class FacePipeline(
    private val detector: YuNetDetector,
    val embedder: LiteRtEmbedder,
) : Closeable {
    /** Runs on an upright RGB frame. */
    fun process(rgb: ByteArray, width: Int, height: Int): FrameResult {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val face = detector.detectLargest(rgb, width, height)
        val t1 = SystemClock.elapsedRealtimeNanos()
        if (face == null) {
            return FrameResult(null, 0f, ms(t0, t1), 0.0, 0.0)
        }
        val card = embedder.card
        val crop = FaceAligner.alignFace(
            rgb, width, height, face.landmarks, card.template(), card.inputHeight, card.inputWidth,
        )
        val t2 = SystemClock.elapsedRealtimeNanos()
        val embedding = embedder.embed(crop)
        val t3 = SystemClock.elapsedRealtimeNanos()
        return FrameResult(embedding, face.score, ms(t0, t1), ms(t1, t2), ms(t2, t3))
    }

    /** Converts a CameraX RGBA_8888 frame to upright RGB and processes it. */
    fun processRgba(
        rgba: ByteArray, width: Int, height: Int, rowStride: Int, pixelStride: Int, rotationDegrees: Int,
    ): FrameResult {
        val rgb = RgbImages.fromRgba(rgba, width, height, rowStride, pixelStride)
        val upright = RgbImages.rotate(rgb, width, height, rotationDegrees)
        return process(
            upright,
            RgbImages.rotatedWidth(width, height, rotationDegrees),
            RgbImages.rotatedHeight(width, height, rotationDegrees),
        )
    }

    override fun close() {
        embedder.close()
        detector.close()
    }

    private fun ms(from: Long, to: Long) = (to - from) / 1e6
}
