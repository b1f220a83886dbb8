package org.shrinkface.demo

import org.opencv.core.CvType
import org.opencv.core.Mat
import org.opencv.core.Size
import org.opencv.imgproc.Imgproc
import org.opencv.objdetect.FaceDetectorYN
import java.io.Closeable
import kotlin.math.max
import kotlin.math.min
import kotlin.math.roundToInt

/** One detection: box (x, y, w, h), 5 landmarks as flat (x, y) pairs in image pixels, and the score. */
class Face(val box: FloatArray, val landmarks: DoubleArray, val score: Float) {
    val area: Float get() = box[2] * box[3]
}

/**
 * YuNet through OpenCV's FaceDetectorYN, with the Python runtime's settings (runtime/detect.py): score threshold
 * 0.6, NMS 0.3, top 50, frames larger than 640 px downscaled (INTER_AREA) for detection only, and the "largest"
 * face policy. Landmarks come in the template's order: eye on the image's left, right eye, nose tip, left and
 * right mouth corners — the same 5 points the model was trained with (BlazeFace's 6 points would not fit).
 */
class YuNetDetector(
    modelPath: String,
    private val scoreThreshold: Float = 0.6f,
    nmsThreshold: Float = 0.3f,
    topK: Int = 50,
    private val maxSide: Int = 640,
) : Closeable {
    private val yunet: FaceDetectorYN =
        FaceDetectorYN.create(modelPath, "", Size(320.0, 320.0), scoreThreshold, nmsThreshold, topK)

    /** All faces in an upright RGB frame, best score first. */
    fun detect(rgb: ByteArray, width: Int, height: Int): List<Face> {
        val rgbMat = Mat(height, width, CvType.CV_8UC3)
        val bgr = Mat()
        val faces = Mat()
        try {
            rgbMat.put(0, 0, rgb)
            Imgproc.cvtColor(rgbMat, bgr, Imgproc.COLOR_RGB2BGR)
            val scale = min(1.0, maxSide.toDouble() / max(width, height))
            if (scale < 1.0) {
                val size = Size((width * scale).roundToInt().toDouble(), (height * scale).roundToInt().toDouble())
                Imgproc.resize(bgr, bgr, size, 0.0, 0.0, Imgproc.INTER_AREA)
            }
            yunet.setInputSize(Size(bgr.cols().toDouble(), bgr.rows().toDouble()))
            yunet.detect(bgr, faces)
            val out = ArrayList<Face>(faces.rows())
            val row = FloatArray(15)
            for (i in 0 until faces.rows()) {
                faces.get(i, 0, row)
                val box = FloatArray(4) { (row[it] / scale).toFloat() }
                val landmarks = DoubleArray(10) { row[4 + it] / scale }
                out.add(Face(box, landmarks, row[14]))
            }
            return out.sortedByDescending { it.score }
        } finally {
            rgbMat.release()
            bgr.release()
            faces.release()
        }
    }

    /** The largest face, or null when there is none (Python's policy "largest"). */
    fun detectLargest(rgb: ByteArray, width: Int, height: Int): Face? =
        detect(rgb, width, height).maxByOrNull { it.area }

    override fun close() {
        // FaceDetectorYN has no explicit release in the Java API; its native object is freed by the finalizer.
    }
}
