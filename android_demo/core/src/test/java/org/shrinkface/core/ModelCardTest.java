package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import org.junit.Test;

public class ModelCardTest {
    /** A card as Python's ModelCard.to_json() writes it (from the golden files). */
    private static ModelCard goldenCard(String key) {
        Map<String, Object> record = Golden.read(Golden.cases().get(0));
        return ModelCard.fromJson((String) Golden.obj(Golden.obj(record, "cards"), key).get("card_json"));
    }

    @Test
    public void parsesEveryFieldPythonWrites() {
        ModelCard card = goldenCard("int8_nchw_bgr_clip");
        assertEquals("golden_bgr", card.name);
        assertEquals(192, card.embeddingSize);
        assertEquals(112, card.inputHeight);
        assertEquals(112, card.inputWidth);
        assertEquals("NCHW", card.layout);
        assertEquals("BGR", card.channelOrder);
        assertArrayEquals(new double[] {123.675, 116.28, 103.53}, card.mean(), 0);
        assertArrayEquals(new double[] {58.395, 57.12, 57.375}, card.std(), 0);
        assertEquals("int8", card.inputDtype);
        assertEquals(0.0151, card.inputScale, 0);
        assertEquals(-3, (int) card.inputZeroPoint);
        assertNull(card.outputScale);
        assertNull(card.threshold);
        assertFalse(card.flip);
        assertArrayEquals(FaceAligner.ARCFACE_112, card.template(), 0);
        assertEquals(ModelCard.CARD_SCHEMA, card.schema);
        assertTrue(card.isQuantizedInput());
    }

    @Test
    public void minimalCardGetsPythonDefaults() {
        ModelCard card = ModelCard.fromJson("{\"name\": \"m\", \"embedding_size\": 128}");
        assertEquals("NCHW", card.layout);
        assertEquals("RGB", card.channelOrder);
        assertEquals("float32", card.inputDtype);
        assertArrayEquals(new double[] {127.5, 127.5, 127.5}, card.mean(), 0);
        assertArrayEquals(FaceAligner.ARCFACE_112, card.template(), 0);
        assertFalse(card.isQuantizedInput());
        // NUL padding after the JSON (as a metadata buffer may have) is ignored.
        assertEquals("m", ModelCard.fromJsonBytes("{\"name\":\"m\",\"embedding_size\":8}\0\0".getBytes()).name);
    }

    @Test
    public void badCardsGiveClearErrors() {
        String[][] cases = {
            {"{\"name\": \"m\"}", "needs at least"},
            {"{\"name\": \"m\", \"embedding_size\": 128, \"colour\": 1}", "unknown fields [colour]"},
            {"{\"name\": \"m\", \"embedding_size\": 128, \"input_dtype\": \"int8\"}", "needs input_scale"},
            {"{\"name\": \"m\", \"embedding_size\": 0}", "embedding_size must be positive"},
            {"{\"name\": \"m\", \"embedding_size\": 128, \"layout\": \"HWC\"}", "layout must be"},
            {"{\"name\": \"m\", \"embedding_size\": 128, \"std\": [1, 0, 1]}", "std > 0"},
            {"{\"name\": \"m\", \"embedding_size\": 128, \"schema\": 9}", "newer than"},
            {"{\"name\": \"m\", \"embedding_size\": 12.5}", "must be an integer"},
            {"{\"name\": \"m\", \"embedding_size\": 128, \"template\": [[1, 2]]}", "template needs 5 points"},
            {"{\"name\": \"m\", \"embedding_size\": 128", "not valid JSON"},
            {"[1, 2]", "not valid JSON"},
        };
        for (String[] c : cases) {
            ModelCardException ex = assertThrows(c[0], ModelCardException.class, () -> ModelCard.fromJson(c[0]));
            assertTrue(c[0] + " -> " + ex.getMessage(), ex.getMessage().contains(c[1]));
        }
    }

    @Test
    public void writeInputLaysOutFloatAndInt8Buffers() {
        Map<String, Object> record = Golden.read(Golden.cases().get(0));
        byte[] crop = Golden.bytes(Golden.obj(record, "crop_rgb"));
        ModelCard f = goldenCard("float32_nchw_rgb");
        ByteBuffer fb = f.writeInput(crop, null);
        assertEquals(ByteOrder.nativeOrder(), fb.order());
        assertEquals(crop.length * 4, fb.position());
        assertEquals(f.normalize(crop)[5], fb.getFloat(5 * 4), 0);
        ModelCard q = goldenCard("int8_nhwc_rgb_ties");
        ByteBuffer qb = q.writeInput(crop, ByteBuffer.allocate(crop.length));
        assertArrayEquals(q.quantize(crop), qb.array());
        assertThrows(IllegalArgumentException.class, () -> q.writeInput(crop, ByteBuffer.allocate(10)));
        assertThrows(IllegalArgumentException.class, () -> q.quantize(new byte[30]));
        assertThrows(IllegalStateException.class, () -> f.quantize(crop));
    }

    @Test
    public void halfToEvenMakesTiesAlternate() {
        // mean 127.5, std 128, scale 1/128: x/scale = p − 127.5 is always a tie; numpy rounds to even.
        ModelCard card = goldenCard("int8_nhwc_rgb_ties");
        byte[] crop = new byte[112 * 112 * 3];
        crop[0] = (byte) 128; // 0.5 -> 0
        crop[1] = (byte) 129; // 1.5 -> 2
        crop[2] = (byte) 126; // -1.5 -> -2
        crop[3] = (byte) 255; // 127.5 -> 128 -> clipped to 127
        crop[4] = (byte) 0;   // -127.5 -> -128
        byte[] q = card.quantize(crop);
        assertArrayEquals(new byte[] {0, 2, -2, 127, -128}, java.util.Arrays.copyOf(q, 5));
    }

    @Test
    public void dequantizesOutput() {
        ModelCard card = ModelCard.fromJson(
                "{\"name\":\"m\",\"embedding_size\":2,\"output_scale\":0.5,\"output_zero_point\":-4}");
        assertArrayEquals(new float[] {2f, -62f}, card.dequantizeOutput(new byte[] {0, -128}, true), 0);
        assertArrayEquals(new float[] {66f}, card.dequantizeOutput(new byte[] {(byte) 128}, false), 0);
        assertThrows(IllegalStateException.class,
                () -> ModelCard.fromJson("{\"name\":\"m\",\"embedding_size\":2}").dequantizeOutput(new byte[1], true));
    }

    @Test
    public void goldenDirectoryIsThere() {
        assertTrue(new File(Golden.dir(), "make_core_golden.py").isFile());
    }
}
