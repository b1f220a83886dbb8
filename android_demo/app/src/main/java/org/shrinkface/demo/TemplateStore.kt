package org.shrinkface.demo

import android.content.Context
import org.shrinkface.core.FaceMatcher
import org.shrinkface.core.ModelCard
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.Base64

/**
 * Enrolled templates (label → unit embedding) kept in SharedPreferences, tagged with the model that made them:
 * a different model (name, source hash or embedding size) invalidates them, since embeddings of two models are
 * not comparable. Nothing but these vectors is stored; no face images.
 */
class TemplateStore(context: Context, private val card: ModelCard) {
    private val prefs = context.getSharedPreferences("shrinkface_templates", Context.MODE_PRIVATE)
    private val modelId = "${card.name}|${card.sourceSha256}|${card.embeddingSize}"

    /** True when stored templates were made by another model and have been dropped. */
    val droppedForNewModel: Boolean

    init {
        val stored = prefs.getString(MODEL_KEY, null)
        droppedForNewModel = stored != null && stored != modelId && prefs.all.keys.any { it.startsWith(PREFIX) }
        if (stored != modelId) {
            prefs.edit().clear().putString(MODEL_KEY, modelId).apply()
        }
    }

    /** Enrols every stored template (a person may have several, as in the Python gallery). */
    fun loadInto(matcher: FaceMatcher) {
        for ((key, value) in prefs.all) {
            if (key.startsWith(PREFIX) && value is String) {
                val all = decode(value)
                val d = card.embeddingSize
                for (row in 0 until all.size / d) {
                    matcher.enroll(key.removePrefix(PREFIX), all.copyOfRange(row * d, (row + 1) * d))
                }
            }
        }
    }

    /** Stores all of a person's templates (replacing what was stored for them). */
    fun save(label: String, templates: List<FloatArray>) {
        val flat = FloatArray(templates.sumOf { it.size })
        var at = 0
        templates.forEach { it.copyInto(flat, at); at += it.size }
        prefs.edit().putString(PREFIX + label, encode(flat)).apply()
    }

    fun clear() {
        prefs.edit().clear().putString(MODEL_KEY, modelId).apply()
    }

    private fun encode(v: FloatArray): String {
        val buffer = ByteBuffer.allocate(v.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        v.forEach { buffer.putFloat(it) }
        return Base64.getEncoder().encodeToString(buffer.array())
    }

    private fun decode(s: String): FloatArray {
        val buffer = ByteBuffer.wrap(Base64.getDecoder().decode(s)).order(ByteOrder.LITTLE_ENDIAN)
        return FloatArray(buffer.remaining() / 4) { buffer.getFloat() }
    }

    private companion object {
        const val MODEL_KEY = "model"
        const val PREFIX = "t:"
    }
}
