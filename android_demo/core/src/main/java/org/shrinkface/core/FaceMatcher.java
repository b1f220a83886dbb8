package org.shrinkface.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Cosine matching of embeddings and the threshold decision: 1:1 verification (unlock) and 1:N identification
 * over in-memory templates, with the threshold from the model card (or given explicitly).
 *
 * <p>As Python's {@code runtime/decide.py}: templates are L2-normalised embeddings, a person may have several, a
 * person's score is the max (or mean) cosine over their templates, and a face is accepted when the score is at
 * or above the threshold.
 */
public final class FaceMatcher {
    /** How a person's templates combine into one score (Python's {@code Reduce}). */
    public enum Reduce { MAX, MEAN }

    private final double threshold;
    private final int embeddingSize;
    private final Reduce reduce;
    private final Map<String, List<float[]>> templates = new TreeMap<>();

    /** A matcher using the card's calibrated threshold and the max over a person's templates. */
    public FaceMatcher(ModelCard card) {
        this(card.embeddingSize, requireThreshold(card), Reduce.MAX);
    }

    /** A matcher for {@code embeddingSize}-d embeddings deciding at score ≥ {@code threshold}. */
    public FaceMatcher(int embeddingSize, double threshold, Reduce reduce) {
        if (embeddingSize <= 0) {
            throw new IllegalArgumentException("embedding size must be positive");
        }
        if (!(threshold >= -1 && threshold <= 1)) {
            throw new IllegalArgumentException("a cosine threshold lies in [-1, 1], got " + threshold);
        }
        this.embeddingSize = embeddingSize;
        this.threshold = threshold;
        this.reduce = reduce;
    }

    private static double requireThreshold(ModelCard card) {
        if (card.threshold == null) {
            throw new ModelCardException(
                    "model card '" + card.name + "' has no calibrated threshold: calibrate it before unlocking");
        }
        return card.threshold;
    }

    /** The decision threshold (cosine similarity). */
    public double threshold() {
        return threshold;
    }

    /** The outcome of a comparison: best label (null for 1:1 or no templates), its score and the decision. */
    public static final class Match {
        public final String label;
        public final double score;
        public final boolean accepted;

        Match(String label, double score, boolean accepted) {
            this.label = label;
            this.score = score;
            this.accepted = accepted;
        }

        @Override
        public String toString() {
            return (accepted ? "accepted " : "rejected ") + (label == null ? "" : label + " ") + String.format("%.4f", score);
        }
    }

    // -- vectors -------------------------------------------------------------------------------------------------

    /** A unit-length copy of {@code v} (sum of squares in double); a zero or non-finite vector is refused. */
    public static float[] l2Normalize(float[] v) {
        double sum = 0;
        for (float x : v) {
            sum += (double) x * x;
        }
        double norm = Math.sqrt(sum);
        if (!(norm > 0) || Double.isInfinite(norm)) {
            throw new IllegalArgumentException("cannot normalise a zero or non-finite embedding");
        }
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] / norm);
        }
        return out;
    }

    /** Cosine similarity of two embeddings of equal length (neither needs to be normalised). */
    public static double cosine(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("embeddings differ in length: " + a.length + " vs " + b.length);
        }
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        if (!(na > 0) || !(nb > 0)) {
            throw new IllegalArgumentException("cosine of a zero embedding is undefined");
        }
        return dot / Math.sqrt(na * nb);
    }

    /**
     * Sum of the embeddings of a crop and its mirror image (the card's {@code flip} option) before normalising;
     * for cards without flip, pass the single embedding to {@link #l2Normalize}.
     */
    public static float[] fuseFlip(float[] embedding, float[] flippedEmbedding) {
        if (embedding.length != flippedEmbedding.length) {
            throw new IllegalArgumentException("embeddings differ in length");
        }
        float[] out = new float[embedding.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = embedding[i] + flippedEmbedding[i];
        }
        return out;
    }

    // -- decisions -----------------------------------------------------------------------------------------------

    /** 1:1: does {@code probe} match {@code template}? (gallery-free unlock). */
    public Match verify(float[] probe, float[] template) {
        checkSize(probe);
        checkSize(template);
        double score = cosine(probe, template);
        return new Match(null, score, score >= threshold);
    }

    /** Adds one template (stored L2-normalised) to {@code label}'s templates. */
    public void enroll(String label, float[] embedding) {
        if (label == null || label.isEmpty()) {
            throw new IllegalArgumentException("a template needs a non-empty label");
        }
        checkSize(embedding);
        templates.computeIfAbsent(label, k -> new ArrayList<>()).add(unit(embedding));
    }

    /** Removes every template of {@code label}; returns whether there were any. */
    public boolean remove(String label) {
        return templates.remove(label) != null;
    }

    /** Removes every template. */
    public void clear() {
        templates.clear();
    }

    /** The enrolled people (sorted by name) and their unit templates, read-only. */
    public Map<String, List<float[]>> templates() {
        return Collections.unmodifiableMap(templates);
    }

    /**
     * A person's score: the max (or mean) cosine between {@code probe} and their templates, as Python's
     * {@code decide.person_scores}.
     */
    public double personScore(String label, float[] probe) {
        List<float[]> rows = templates.get(label);
        if (rows == null) {
            throw new GalleryException("'" + label + "' is not enrolled; enrolled: " + templates.keySet());
        }
        return score(rows, query(probe));
    }

    /** 1:1 against an enrolled person (unlock): accepted when their score is at or above the threshold. */
    public Match verify(String label, float[] probe) {
        double score = personScore(label, probe);
        return new Match(label, score, score >= threshold);
    }

    /**
     * 1:N: the best-scoring person (ties: first by name, as numpy's sorted names), accepted when at or above the
     * threshold; {@link Match#label} is that candidate either way.
     */
    public Match identify(float[] probe) {
        if (templates.isEmpty()) {
            throw new GalleryException("no templates enrolled: enrol a face first");
        }
        float[] q = query(probe);
        String best = null;
        double bestScore = Double.NEGATIVE_INFINITY;
        for (Map.Entry<String, List<float[]>> entry : templates.entrySet()) {
            double s = score(entry.getValue(), q);
            if (s > bestScore) {
                bestScore = s;
                best = entry.getKey();
            }
        }
        return new Match(best, bestScore, bestScore >= threshold);
    }

    private double score(List<float[]> rows, float[] q) {
        double best = Double.NEGATIVE_INFINITY, sum = 0;
        for (float[] row : rows) {
            double s = dot(row, q);
            best = Math.max(best, s);
            sum += s;
        }
        return reduce == Reduce.MAX ? best : sum / rows.size();
    }

    private float[] query(float[] probe) {
        checkSize(probe);
        try {
            return unit(probe);
        } catch (IllegalArgumentException ex) {
            throw new GalleryException("query embedding is zero or not finite");
        }
    }

    private static float[] unit(float[] v) {
        for (float x : v) {
            if (!Float.isFinite(x)) {
                throw new IllegalArgumentException("embedding is not finite");
            }
        }
        return l2Normalize(v);
    }

    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (double) a[i] * b[i];
        }
        return s;
    }

    private void checkSize(float[] v) {
        if (v == null || v.length != embeddingSize) {
            throw new GalleryException("expected a " + embeddingSize + "-d embedding, got "
                    + (v == null ? "null" : v.length + "-d") + " (was it made by another model?)");
        }
    }
}
