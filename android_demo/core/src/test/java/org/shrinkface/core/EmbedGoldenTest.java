package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * The exported models' golden vectors (tests/golden/embed_*.json, from the export step) through the Android path:
 * the aligned crop → the input tensor each model's card asks for (bit-exact with Python's
 * {@code ModelCard.preprocess}) → {@link FaceEmbedder} with a backend that checks that tensor and returns the
 * model's golden output → the embedding (as Python's) → {@link FaceMatcher} decisions, which must equal Python's
 * {@code decide.verify} in tests/golden/unlock_decisions.json at every threshold stored there.
 */
public class EmbedGoldenTest {
    private static final double EMBEDDING_TOLERANCE = 1e-6;
    private static final double SCORE_TOLERANCE = 1e-6;

    /** A model run replaced by its golden output; it also checks that it was given the golden input tensor. */
    private static final class GoldenBackend implements FaceEmbedder.Backend {
        private final byte[] expectedInput;
        private final byte[] output;
        int runs;

        GoldenBackend(byte[] expectedInput, byte[] output) {
            this.expectedInput = expectedInput;
            this.output = output;
        }

        @Override
        public void run(ByteBuffer input, ByteBuffer out) {
            byte[] got = new byte[input.remaining()];
            input.get(got);
            assertArrayEquals("the input tensor FaceEmbedder wrote", expectedInput, got);
            out.put(output);
            runs++;
        }
    }

    private static List<File> files() {
        File[] files = Golden.dir().listFiles((d, name) -> name.startsWith("embed_") && name.endsWith(".json"));
        if (files == null || files.length < 2) {
            throw new IllegalStateException("need ≥ 2 embed_*.json in " + Golden.dir()
                    + ": run tests/golden/make_embed_golden.py");
        }
        List<File> list = new ArrayList<>(Arrays.asList(files));
        list.sort(null);
        return list;
    }

    private static String image(File file) {
        String name = file.getName();
        return name.substring("embed_".length(), name.length() - ".json".length());
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> list(Object value) {
        return (List<Map<String, Object>>) value;
    }

    private static float[] floatList(Object value) {
        List<?> values = (List<?>) value;
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) values.get(i)).floatValue();
        }
        return out;
    }

    /** Little-endian bytes of a float32 tensor in this machine's order (what FaceEmbedder writes). */
    private static byte[] nativeFloats(float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.nativeOrder());
        for (float v : values) {
            b.putFloat(v);
        }
        return b.array();
    }

    /** The input tensor as the model receives it, from the golden file (raw bytes in native order). */
    private static byte[] goldenInput(Map<String, Object> tensor) {
        return "float32".equals(tensor.get("dtype")) ? nativeFloats(Golden.floats(tensor)) : Golden.bytes(tensor);
    }

    /** Java's embedding of one image for one model entry, through FaceEmbedder with the golden output. */
    private static float[] javaEmbedding(Map<String, Object> record, Map<String, Object> model, String where) {
        ModelCard card = ModelCard.fromMap(Golden.obj(model, "card"));
        byte[] crop = Golden.bytes(Golden.obj(record, "crop"));
        Map<String, Object> tensor = Golden.obj(Golden.obj(record, "inputs"), (String) model.get("input"));
        byte[] expectedInput = goldenInput(tensor);
        int batch = card.fixedBatch == null ? 1 : card.fixedBatch;
        int[] inShape = card.layout.equals("NHWC")
                ? new int[] {batch, card.inputHeight, card.inputWidth, 3}
                : new int[] {batch, 3, card.inputHeight, card.inputWidth};
        boolean quantizedOut = model.get("output_quantized") != null;
        byte[] output;
        FaceEmbedder.TensorSpec outSpec;
        if (quantizedOut) {
            List<?> q = (List<?>) model.get("output_quantized");
            output = new byte[q.size()];
            for (int i = 0; i < output.length; i++) {
                output[i] = (byte) ((Number) q.get(i)).intValue();
            }
            outSpec = new FaceEmbedder.TensorSpec(new int[] {batch, card.embeddingSize}, "int8", card.outputScale,
                    card.outputZeroPoint == null ? 0 : card.outputZeroPoint);
        } else {
            output = nativeFloats(floatList(model.get("raw_output")));
            outSpec = new FaceEmbedder.TensorSpec(new int[] {batch, card.embeddingSize}, "float32", 0, 0);
        }
        assertEquals(where + ": one batch slot", batch, 1);
        FaceEmbedder.TensorSpec inSpec = new FaceEmbedder.TensorSpec(inShape, card.inputDtype,
                card.isQuantizedInput() ? card.inputScale : 0, card.isQuantizedInput() ? card.inputZeroPoint : 0);
        GoldenBackend backend = new GoldenBackend(expectedInput, output);
        float[] embedding = new FaceEmbedder(card, inSpec, outSpec, backend).embed(crop);
        assertEquals(where + ": model runs", card.flip ? 2 : 1, backend.runs);
        return embedding;
    }

    @Test
    public void inputTensorsFromTheGoldenCropAreBitExact() {
        int checked = 0;
        for (File file : files()) {
            Map<String, Object> record = Golden.read(file);
            byte[] crop = Golden.bytes(Golden.obj(record, "crop"));
            for (Map<String, Object> model : list(record.get("models"))) {
                ModelCard card = ModelCard.fromMap(Golden.obj(model, "card"));
                Map<String, Object> tensor = Golden.obj(Golden.obj(record, "inputs"), (String) model.get("input"));
                Golden.assertInputTensor(file.getName() + " " + model.get("file"), card, crop, tensor);
                checked++;
            }
        }
        System.out.printf("[golden] %d exported-model input tensors bit-exact from the golden crops%n", checked);
        assertTrue(checked >= 8);
    }

    @Test
    public void embedderReproducesTheGoldenEmbeddings() {
        double worst = 0;
        int checked = 0;
        for (File file : files()) {
            Map<String, Object> record = Golden.read(file);
            for (Map<String, Object> model : list(record.get("models"))) {
                String where = file.getName() + " " + model.get("file");
                float[] got = javaEmbedding(record, model, where);
                float[] expected = floatList(model.get("embedding"));
                assertEquals(where, expected.length, got.length);
                for (int i = 0; i < got.length; i++) {
                    worst = Math.max(worst, Math.abs(got[i] - expected[i]));
                }
                assertArrayEquals(where, expected, got, (float) EMBEDDING_TOLERANCE);
                checked++;
            }
        }
        System.out.printf("[golden] %d embeddings from the golden model outputs, max |diff| %.3g%n", checked, worst);
        assertTrue(checked >= 8);
    }

    @Test
    public void decisionsMatchPython() {
        Map<String, Object> decisions = Golden.read(new File(Golden.dir(), "unlock_decisions.json"));
        assertEquals("shrinkface.decision_golden/1", decisions.get("format"));
        Map<String, Map<String, Object>> records = new LinkedHashMap<>();
        for (File file : files()) {
            records.put(image(file), Golden.read(file));
        }
        assertEquals("unlock_decisions.json is stale (other images): run tests/golden/make_decision_golden.py",
                new ArrayList<>(records.keySet()), decisions.get("images"));
        int checked = 0;
        double worst = 0;
        List<Map<String, Object>> models = list(decisions.get("models"));
        for (int m = 0; m < models.size(); m++) {
            Map<String, Object> expected = models.get(m);
            Map<String, float[]> embeddings = new LinkedHashMap<>();
            for (Map.Entry<String, Map<String, Object>> entry : records.entrySet()) {
                Map<String, Object> model = list(entry.getValue().get("models")).get(m);
                assertEquals("unlock_decisions.json is stale (another model file): run "
                        + "tests/golden/make_decision_golden.py", expected.get("sha256"), model.get("sha256"));
                embeddings.put(entry.getKey(), javaEmbedding(entry.getValue(), model, entry.getKey()));
            }
            List<Map<String, Object>> pairs = list(expected.get("pairs"));
            List<?> thresholds = (List<?>) expected.get("thresholds");
            List<?> accepted = (List<?>) expected.get("accepted");
            for (int t = 0; t < thresholds.size(); t++) {
                double threshold = ((Number) thresholds.get(t)).doubleValue();
                List<?> row = (List<?>) accepted.get(t);
                for (int p = 0; p < pairs.size(); p++) {
                    Map<String, Object> pair = pairs.get(p);
                    String enrolled = (String) pair.get("enrolled");
                    FaceMatcher matcher = new FaceMatcher(embeddings.get(enrolled).length, threshold,
                            FaceMatcher.Reduce.MAX);
                    matcher.enroll(enrolled, embeddings.get(enrolled));
                    FaceMatcher.Match match = matcher.verify(enrolled, embeddings.get((String) pair.get("probe")));
                    double pyScore = ((Number) pair.get("score")).doubleValue();
                    worst = Math.max(worst, Math.abs(match.score - pyScore));
                    String where = expected.get("file") + " " + enrolled + " vs " + pair.get("probe") + " at "
                            + threshold;
                    assertEquals(where, pyScore, match.score, SCORE_TOLERANCE);
                    assertEquals(where, row.get(p), match.accepted);
                    checked++;
                }
            }
        }
        System.out.printf("[golden] %d unlock decisions equal Python's, max |score diff| %.3g%n", checked, worst);
        assertTrue(checked >= 100);
    }
}
