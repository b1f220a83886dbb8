package org.shrinkface.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * What a face-embedding model expects and produces: the Java twin of Python's {@code shrinkface.runtime.card}.
 *
 * <p>Model input = quantise((crop[channel_order] − mean) / std) laid out as {@code layout}; for int8/uint8 input,
 * q = round_half_even(x / input_scale) + input_zero_point, clipped. The float arithmetic is numpy's, in the same
 * order and in float32 (mean, std and scale are cast to float32 first), so tensors are bit-identical.
 */
public final class ModelCard {
    /** Key under which the card is stored inside ONNX metadata_props and TFLite Model.metadata. */
    public static final String CARD_KEY = "shrinkface.model_card";
    /** The newest card schema this code understands. */
    public static final int CARD_SCHEMA = 1;

    private static final Set<String> KNOWN = Collections.unmodifiableSet(new TreeSet<>(Arrays.asList(
            "name", "embedding_size", "input_size", "layout", "channel_order", "mean", "std", "input_dtype",
            "input_scale", "input_zero_point", "output_scale", "output_zero_point", "fixed_batch", "template",
            "threshold", "threshold_far", "flip", "licence", "origin", "source_sha256", "extra", "schema")));

    public final String name;
    public final int embeddingSize;
    public final int inputHeight;
    public final int inputWidth;
    /** "NCHW" or "NHWC". */
    public final String layout;
    /** "RGB" or "BGR". */
    public final String channelOrder;
    private final double[] mean;
    private final double[] std;
    /** "float32", "int8" or "uint8". */
    public final String inputDtype;
    public final Double inputScale;
    public final Integer inputZeroPoint;
    public final Double outputScale;
    public final Integer outputZeroPoint;
    public final Integer fixedBatch;
    private final double[] template;
    /** Cosine similarity at or above which two faces are the same person; null when not calibrated. */
    public final Double threshold;
    public final Double thresholdFar;
    public final boolean flip;
    public final String licence;
    public final String origin;
    public final String sourceSha256;
    public final Map<String, Object> extra;
    public final int schema;

    private ModelCard(Map<String, Object> d) {
        name = CardFields.str(d, "name", null);
        embeddingSize = CardFields.integer(d, "embedding_size", null);
        int[] size = CardFields.intPair(d.get("input_size"));
        inputHeight = size[0];
        inputWidth = size[1];
        layout = CardFields.str(d, "layout", "NCHW");
        channelOrder = CardFields.str(d, "channel_order", "RGB");
        mean = CardFields.doubles(d, "mean", new double[] {127.5, 127.5, 127.5});
        std = CardFields.doubles(d, "std", new double[] {127.5, 127.5, 127.5});
        inputDtype = CardFields.str(d, "input_dtype", "float32");
        inputScale = CardFields.optDouble(d, "input_scale");
        inputZeroPoint = CardFields.optInteger(d, "input_zero_point");
        outputScale = CardFields.optDouble(d, "output_scale");
        outputZeroPoint = CardFields.optInteger(d, "output_zero_point");
        fixedBatch = CardFields.optInteger(d, "fixed_batch");
        template = CardFields.points(d.get("template"));
        threshold = CardFields.optDouble(d, "threshold");
        thresholdFar = CardFields.optDouble(d, "threshold_far");
        flip = CardFields.bool(d, "flip");
        licence = CardFields.str(d, "licence", "");
        origin = CardFields.str(d, "origin", "");
        sourceSha256 = CardFields.str(d, "source_sha256", "");
        extra = CardFields.extraMap(d.get("extra"));
        schema = d.containsKey("schema") ? CardFields.integer(d, "schema", null) : CARD_SCHEMA;
        validate();
    }

    /** Parses a card from JSON text (what {@code ModelCard.to_json()} writes), refusing unknown fields. */
    public static ModelCard fromJson(String json) {
        Map<String, Object> data;
        try {
            data = Json.parseObject(json);
        } catch (Json.JsonException ex) {
            throw new ModelCardException("model card is not valid JSON: " + ex.getMessage(), ex);
        }
        return fromMap(data);
    }

    /** Parses a card from UTF-8 JSON bytes (e.g. a TFLite metadata buffer); trailing NUL padding is ignored. */
    public static ModelCard fromJsonBytes(byte[] utf8) {
        int end = utf8.length;
        while (end > 0 && utf8[end - 1] == 0) {
            end--;
        }
        return fromJson(new String(utf8, 0, end, StandardCharsets.UTF_8));
    }

    /** Builds a card from a parsed JSON object. */
    public static ModelCard fromMap(Map<String, Object> data) {
        Set<String> unknown = new TreeSet<>(data.keySet());
        unknown.removeAll(KNOWN);
        if (!unknown.isEmpty()) {
            throw new ModelCardException("model card has unknown fields " + unknown);
        }
        if (!data.containsKey("name") || !data.containsKey("embedding_size")) {
            throw new ModelCardException("model card needs at least 'name' and 'embedding_size'");
        }
        return new ModelCard(data);
    }

    private void validate() {
        StringBuilder problems = new StringBuilder();
        if (embeddingSize <= 0) {
            problem(problems, "embedding_size must be positive, got " + embeddingSize);
        }
        if (inputHeight <= 0 || inputWidth <= 0) {
            problem(problems, "input_size must be (height, width), got [" + inputHeight + ", " + inputWidth + "]");
        }
        if (!layout.equals("NCHW") && !layout.equals("NHWC")) {
            problem(problems, "layout must be NCHW or NHWC, got '" + layout + "'");
        }
        if (!channelOrder.equals("RGB") && !channelOrder.equals("BGR")) {
            problem(problems, "channel_order must be RGB or BGR, got '" + channelOrder + "'");
        }
        if (!inputDtype.equals("float32") && !inputDtype.equals("int8") && !inputDtype.equals("uint8")) {
            problem(problems, "input_dtype must be float32, int8 or uint8, got '" + inputDtype + "'");
        }
        if (mean.length != 3 || std.length != 3 || Math.min(std[0], Math.min(std[1], std[2])) <= 0) {
            problem(problems, "mean and std need three values each, std > 0");
        }
        if (!inputDtype.equals("float32") && (inputScale == null || inputZeroPoint == null)) {
            problem(problems, inputDtype + " input needs input_scale and input_zero_point");
        }
        if (inputScale != null && !(inputScale > 0)) {
            problem(problems, "input_scale must be positive, got " + inputScale);
        }
        if (template.length != 10) {
            problem(problems, "template needs 5 points");
        }
        if (schema > CARD_SCHEMA) {
            problem(problems, "card schema " + schema + " is newer than this shrinkface understands (" + CARD_SCHEMA + ")");
        }
        if (problems.length() > 0) {
            throw new ModelCardException("invalid model card '" + name + "': " + problems);
        }
    }

    private static void problem(StringBuilder problems, String text) {
        if (problems.length() > 0) {
            problems.append("; ");
        }
        problems.append(text);
    }

    // -- accessors -----------------------------------------------------------------------------------------------

    /** Per-channel mean of the model input's channels (after {@code channel_order} is applied), as stored. */
    public double[] mean() {
        return mean.clone();
    }

    /** Per-channel std of the model input's channels, as stored. */
    public double[] std() {
        return std.clone();
    }

    /** The alignment template, flat (x0, y0, …, x4, y4), in crop pixels. */
    public double[] template() {
        return template.clone();
    }

    /** True when the model takes int8 or uint8 input. */
    public boolean isQuantizedInput() {
        return !inputDtype.equals("float32");
    }

    /** Number of values in one input tensor (H·W·3). */
    public int inputLength() {
        return inputHeight * inputWidth * 3;
    }

    // -- preprocessing -------------------------------------------------------------------------------------------

    /**
     * The normalised float input ((crop − mean) / std in float32, channel order and layout applied), i.e.
     * Python's {@code card.preprocess(crop)} for a float32 card, or the value before quantisation otherwise.
     */
    public float[] normalize(byte[] cropRgb) {
        checkCrop(cropRgb);
        float[] m = new float[3];
        float[] s = new float[3];
        for (int c = 0; c < 3; c++) {
            m[c] = (float) mean[c];
            s[c] = (float) std[c];
        }
        boolean bgr = channelOrder.equals("BGR");
        boolean nchw = layout.equals("NCHW");
        int plane = inputHeight * inputWidth;
        float[] out = new float[plane * 3];
        for (int i = 0; i < plane; i++) {
            for (int c = 0; c < 3; c++) {
                int src = bgr ? 2 - c : c; // output channel c reads the crop's channel src
                float x = (float) (cropRgb[i * 3 + src] & 0xff);
                float v = (x - m[c]) / s[c];
                out[nchw ? c * plane + i : i * 3 + c] = v;
            }
        }
        return out;
    }

    /** The quantised input (int8 as two's-complement bytes, or uint8), as Python's {@code card.preprocess}. */
    public byte[] quantize(byte[] cropRgb) {
        if (!isQuantizedInput()) {
            throw new IllegalStateException("card '" + name + "' takes float32 input: use normalize()");
        }
        float[] x = normalize(cropRgb);
        float scale = (float) inputScale.doubleValue();
        float zeroPoint = (float) inputZeroPoint.intValue();
        int lo = inputDtype.equals("int8") ? -128 : 0;
        int hi = inputDtype.equals("int8") ? 127 : 255;
        byte[] out = new byte[x.length];
        for (int i = 0; i < x.length; i++) {
            float q = (float) Math.rint(x[i] / scale) + zeroPoint;
            int v = q < lo ? lo : (q > hi ? hi : (int) q);
            out[i] = (byte) v;
        }
        return out;
    }

    /**
     * Writes one input tensor into {@code buffer} at its position (float32 in the buffer's byte order, or bytes),
     * ready for a LiteRT/TFLite interpreter; allocates a direct native-order buffer when {@code buffer} is null.
     */
    public ByteBuffer writeInput(byte[] cropRgb, ByteBuffer buffer) {
        int bytes = isQuantizedInput() ? inputLength() : inputLength() * 4;
        ByteBuffer out = buffer != null ? buffer : ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
        if (out.remaining() < bytes) {
            throw new IllegalArgumentException("input buffer has " + out.remaining() + " bytes, need " + bytes);
        }
        if (isQuantizedInput()) {
            out.put(quantize(cropRgb));
        } else {
            for (float v : normalize(cropRgb)) {
                out.putFloat(v);
            }
        }
        return out;
    }

    /** Dequantises an integer output ((q − zero point) · scale in float32); signed for int8, else uint8. */
    public float[] dequantizeOutput(byte[] raw, boolean signed) {
        if (outputScale == null) {
            throw new IllegalStateException("card '" + name + "' has no output_scale: the output is float");
        }
        float scale = (float) outputScale.doubleValue();
        float zeroPoint = outputZeroPoint == null ? 0f : (float) outputZeroPoint.intValue();
        float[] out = new float[raw.length];
        for (int i = 0; i < raw.length; i++) {
            float q = signed ? raw[i] : (raw[i] & 0xff);
            out[i] = (q - zeroPoint) * scale;
        }
        return out;
    }

    private void checkCrop(byte[] cropRgb) {
        if (cropRgb == null || cropRgb.length != inputLength()) {
            throw new IllegalArgumentException(name + " expects " + inputHeight + "×" + inputWidth + "×3 crops, got "
                    + (cropRgb == null ? "null" : cropRgb.length + " bytes"));
        }
    }

    @Override
    public String toString() {
        return "ModelCard(" + name + ", " + embeddingSize + "-d, " + inputHeight + "×" + inputWidth + " " + layout + " "
                + channelOrder + " " + inputDtype + ", threshold " + threshold + ")";
    }
}
