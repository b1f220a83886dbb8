package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.Test;

public class FaceEmbedderTest {
    private static final String INT8_CARD = "{\"name\":\"t\",\"embedding_size\":2,\"input_size\":[2,2],"
            + "\"layout\":\"NHWC\",\"input_dtype\":\"int8\",\"input_scale\":0.0078125,\"input_zero_point\":0%s}";

    /** A fake int8 model: output row = (sum of the slot's first 6 input bytes, first input byte) as int8. */
    private static final class FakeModel implements FaceEmbedder.Backend {
        final List<byte[]> inputs = new ArrayList<>();
        final int slots;

        FakeModel(int slots) {
            this.slots = slots;
        }

        @Override
        public void run(ByteBuffer input, ByteBuffer output) {
            byte[] all = new byte[input.remaining()];
            input.get(all);
            inputs.add(all);
            int per = all.length / slots;
            for (int s = 0; s < slots; s++) {
                int sum = 0;
                for (int i = 0; i < 6; i++) {
                    sum += all[s * per + i];
                }
                output.put((byte) Math.max(-128, Math.min(127, sum)));
                output.put(all[s * per]);
            }
        }
    }

    private static byte[] crop() {
        // 2×2 RGB: left column bright (255), right column dark (0).
        return new byte[] {(byte) 255, (byte) 255, (byte) 255, 0, 0, 0, (byte) 255, (byte) 255, (byte) 255, 0, 0, 0};
    }

    @Test
    public void writesTheCardsInputAndNormalisesTheDequantisedOutput() {
        ModelCard card = ModelCard.fromJson(String.format(INT8_CARD, ",\"output_scale\":0.5,\"output_zero_point\":1"));
        FakeModel model = new FakeModel(1);
        FaceEmbedder embedder = new FaceEmbedder(card, new FaceEmbedder.TensorSpec(new int[] {1, 2, 2, 3}, "int8",
                0.0078125, 0), new FaceEmbedder.TensorSpec(new int[] {1, 2}, "int8", 0.5, 1), model);
        float[] e = embedder.embed(crop());
        // (255 − 127.5) / 127.5 / (1/128) = 128 → 127 (clipped); 0 → −128.
        assertArrayEquals(new byte[] {127, 127, 127, -128, -128, -128, 127, 127, 127, -128, -128, -128},
                model.inputs.get(0));
        // Output: sum 3·127 − 3·128 = −3 → (−3 − 1)·0.5 = −2; first byte 127 → 63; normalised.
        double n = Math.hypot(-2, 63);
        assertEquals(-2 / n, e[0], 1e-6);
        assertEquals(63 / n, e[1], 1e-6);
    }

    @Test
    public void flipFillsTheSecondBatchSlotWithTheMirroredCrop() {
        ModelCard card = ModelCard.fromJson(String.format(INT8_CARD, ",\"flip\":true,\"fixed_batch\":2"));
        FakeModel model = new FakeModel(2);
        FaceEmbedder embedder = new FaceEmbedder(card, new FaceEmbedder.TensorSpec(new int[] {2, 2, 2, 3}, "int8",
                0.0078125, 0), new FaceEmbedder.TensorSpec(new int[] {2, 2}, "int8", 0.25, 0), model);
        float[] e = embedder.embed(crop());
        byte[] in = model.inputs.get(0);
        assertEquals(1, model.inputs.size()); // one run for both
        assertEquals(127, in[0]);   // slot 0 starts bright
        assertEquals(-128, in[12]); // slot 1 (mirrored) starts dark
        // rows: slot0 (−3, 127), slot1 (−3, −128) → sum (−6, −1) · 0.25, normalised
        double n = Math.hypot(-6, -1);
        assertEquals(-6 / n, e[0], 1e-6);
        assertEquals(-1 / n, e[1], 1e-6);
    }

    @Test
    public void refusesModelsThatDisagreeWithTheirCard() {
        ModelCard card = ModelCard.fromJson(String.format(INT8_CARD, ""));
        FaceEmbedder.TensorSpec out = new FaceEmbedder.TensorSpec(new int[] {1, 2}, "float32", 0, 0);
        FakeModel m = new FakeModel(1);
        String[] messages = {
            message(() -> new FaceEmbedder(card, spec(new int[] {1, 3, 2, 2}, "int8", 0.0078125, 0), out, m)),
            message(() -> new FaceEmbedder(card, spec(new int[] {1, 2, 2, 3}, "float32", 0, 0), out, m)),
            message(() -> new FaceEmbedder(card, spec(new int[] {1, 2, 2, 3}, "int8", 0.0079, 0), out, m)),
            message(() -> new FaceEmbedder(card, spec(new int[] {1, 2, 2, 3}, "int8", 0.0078125, 0),
                    spec(new int[] {1, 3}, "float32", 0, 0), m)),
        };
        assertTrue(messages[0], messages[0].contains("does not match its card"));
        assertTrue(messages[1], messages[1].contains("its card says int8"));
        assertTrue(messages[2], messages[2].contains("quantisation"));
        assertTrue(messages[3], messages[3].contains("is not [1, 2]"));
    }

    private static FaceEmbedder.TensorSpec spec(int[] shape, String dtype, double scale, int zp) {
        return new FaceEmbedder.TensorSpec(shape, dtype, scale, zp);
    }

    private static String message(org.junit.function.ThrowingRunnable r) {
        return assertThrows(ModelFileException.class, r).getMessage();
    }
}
