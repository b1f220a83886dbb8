package org.shrinkface.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import org.opencv.android.OpenCVLoader
import org.shrinkface.core.FaceMatcher
import org.shrinkface.core.ShrinkfaceException
import java.io.File
import java.io.FileNotFoundException
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Enrol / unlock / identify with the exported int8 student. Enrol adds the embeddings of ENROL_FRAMES frames as
 * templates of the entered name (default "owner"); Unlock compares one frame with that person (1:1, the max
 * cosine over their templates, as the Python gallery); "Who?" searches everybody (1:N). The decision threshold
 * is the card's calibrated one.
 */
class MainActivity : AppCompatActivity() {
    private enum class Mode { ENROL, UNLOCK, IDENTIFY }

    private lateinit var previewView: PreviewView
    private lateinit var status: TextView
    private lateinit var nameField: EditText
    private lateinit var buttons: List<Button>

    private val analysisExecutor: ExecutorService = Executors.newSingleThreadExecutor()
    private var pipeline: FacePipeline? = null
    private var matcher: FaceMatcher? = null
    private var store: TemplateStore? = null

    // Touched only on analysisExecutor.
    @Volatile private var mode: Mode? = null
    @Volatile private var label: String = DEFAULT_LABEL
    private val enrolFrames = ArrayList<FloatArray>()

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else status.setText(R.string.camera_denied)
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        status = findViewById(R.id.status)
        nameField = findViewById(R.id.name)
        val enrol = findViewById<Button>(R.id.enrol)
        val unlock = findViewById<Button>(R.id.unlock)
        val identify = findViewById<Button>(R.id.identify)
        val clear = findViewById<Button>(R.id.clear)
        buttons = listOf(enrol, unlock, identify)
        enrol.setOnClickListener { request(Mode.ENROL) }
        unlock.setOnClickListener { request(Mode.UNLOCK) }
        identify.setOnClickListener { request(Mode.IDENTIFY) }
        clear.setOnClickListener {
            analysisExecutor.execute {
                store?.clear()
                matcher?.clear()
                show("All templates forgotten.")
            }
        }
        analysisExecutor.execute { loadPipeline() }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onDestroy() {
        super.onDestroy()
        analysisExecutor.execute { pipeline?.close() }
        analysisExecutor.shutdown()
    }

    private fun request(next: Mode) {
        label = nameField.text.toString().trim().ifEmpty { DEFAULT_LABEL }
        analysisExecutor.execute {
            enrolFrames.clear()
            mode = next
        }
        show(if (next == Mode.ENROL) "Enrolling '$label': look at the camera…" else "Looking…")
    }

    /** Loads YuNet (copied from assets to a file: FaceDetectorYN takes a path) and the LiteRT model. */
    private fun loadPipeline() {
        try {
            check(OpenCVLoader.initLocal()) { "OpenCV native library failed to load" }
            val yunetFile = File(filesDir, YUNET_ASSET)
            assets.open(YUNET_ASSET).use { input -> yunetFile.outputStream().use { input.copyTo(it) } }
            val embedder = LiteRtEmbedder.fromAsset(assets, MODEL_ASSET, threads = 4)
            val card = embedder.card
            val m = FaceMatcher(card)
            val s = TemplateStore(this, card)
            s.loadInto(m)
            pipeline = FacePipeline(YuNetDetector(yunetFile.absolutePath), embedder)
            matcher = m
            store = s
            val note = if (s.droppedForNewModel) "\nThe model changed: old templates were dropped, enrol again." else ""
            show("Model ${card.name}: ${card.embeddingSize}-d, ${card.inputDtype} ${card.layout}, " +
                "threshold %.4f. %d enrolled.$note".format(m.threshold(), m.templates().size))
            runOnUiThread { buttons.forEach { it.isEnabled = true } }
        } catch (e: FileNotFoundException) {
            show("Missing asset ${e.message}: copy $MODEL_ASSET and $YUNET_ASSET into app/src/main/assets " +
                "(android_demo/copy-models.sh) and rebuild.")
        } catch (e: ShrinkfaceException) {
            show("Model refused: ${e.message}")
        } catch (e: Exception) {
            show("Could not load the model: $e")
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val preview = Preview.Builder().build()
            preview.setSurfaceProvider(previewView.surfaceProvider)
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(analysisExecutor) { image -> analyze(image) }
            val selector = if (provider.hasCamera(CameraSelector.DEFAULT_FRONT_CAMERA)) {
                CameraSelector.DEFAULT_FRONT_CAMERA
            } else {
                CameraSelector.DEFAULT_BACK_CAMERA
            }
            provider.unbindAll()
            provider.bindToLifecycle(this, selector, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** Runs on analysisExecutor for every frame; does work only while an action is pending. */
    private fun analyze(image: ImageProxy) {
        image.use {
            val current = mode ?: return
            val p = pipeline ?: return
            val plane = image.planes[0]
            val buffer = plane.buffer
            val bytes = ByteArray(buffer.remaining())
            buffer.get(bytes)
            val result = try {
                p.processRgba(bytes, image.width, image.height, plane.rowStride, plane.pixelStride,
                    image.imageInfo.rotationDegrees)
            } catch (e: RuntimeException) {
                mode = null
                show("Error: ${e.message}")
                return
            }
            val embedding = result.embedding
            if (embedding == null) {
                show("No face in view. (${result.timings()})")
                return
            }
            handle(current, embedding, result)
        }
    }

    private fun handle(current: Mode, embedding: FloatArray, result: FrameResult) {
        val m = matcher ?: return
        when (current) {
            Mode.ENROL -> {
                enrolFrames.add(embedding)
                if (enrolFrames.size < ENROL_FRAMES) {
                    show("Enrolling '$label': ${enrolFrames.size}/$ENROL_FRAMES (${result.timings()})")
                    return
                }
                enrolFrames.forEach { m.enroll(label, it) }
                store?.save(label, m.templates().getValue(label))
                enrolFrames.clear()
                mode = null
                show("Enrolled '$label' from $ENROL_FRAMES frames. ${m.templates().size} enrolled.")
            }
            Mode.UNLOCK -> {
                mode = null
                if (!m.templates().containsKey(label)) {
                    show("Nobody enrolled as '$label': enrol first.")
                    return
                }
                val match = m.verify(label, embedding)
                show((if (match.accepted) "UNLOCKED" else "REJECTED") +
                    " — cosine %.3f vs threshold %.3f\n%s".format(match.score, m.threshold(), result.timings()))
            }
            Mode.IDENTIFY -> {
                mode = null
                if (m.templates().isEmpty()) {
                    show("No templates: enrol first.")
                    return
                }
                val match = m.identify(embedding)
                show((if (match.accepted) "This is ${match.label}" else "Unknown (closest: ${match.label})") +
                    " — cosine %.3f vs threshold %.3f\n%s".format(match.score, m.threshold(), result.timings()))
            }
        }
    }

    private fun show(text: String) = runOnUiThread { status.text = text }

    private companion object {
        const val MODEL_ASSET = "student_int8.tflite"
        const val YUNET_ASSET = "yunet.onnx"
        const val DEFAULT_LABEL = "owner"
        const val ENROL_FRAMES = 5
    }
}
