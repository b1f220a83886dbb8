package org.shrinkface.core;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Aligned crop → unit embedding, for any inference backend (LiteRT's Interpreter in the app, a fake in tests):
 * checks that the model's tensors agree with its card (shape, layout, dtype, quantisation), writes the input
 * (every batch slot; the mirrored crop into slot 1 when the card asks for {@code flip} and the batch has room),
 * dequantises the output, adds the mirrored embedding when {@code flip}, and L2-normalises.
 */
public final class FaceEmbedder {
    /** Runs the model once: {@code input} holds the whole input tensor, {@code output} receives the whole output. */
    public interface Backend {
        void run(ByteBuffer input, ByteBuffer output);
    }

    /** A tensor's shape, element type ("float32", "int8", "uint8") and quantisation (scale 0 when none). */
    public static final class TensorSpec {
        public final int[] shape;
        public final String dtype;
        public final double scale;
        public final int zeroPoint;

        public TensorSpec(int[] shape, String dtype, double scale, int zeroPoint) {
            this.shape = shape.clone();
            this.dtype = dtype;
            this.scale = scale;
            this.zeroPoint = zeroPoint;
        }

        int elements() {
            int n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }

        int bytesPerElement() {
            return dtype.equals("float32") ? 4 : 1;
        }

        @Override
        public String toString() {
            return dtype + Arrays.toString(shape) + (scale != 0 ? " scale " + scale + " zp " + zeroPoint : "");
        }
    }

    private static final double QUANT_TOLERANCE = 1e-6;

    private final ModelCard card;
    private final TensorSpec input;
    private final TensorSpec output;
    private final Backend backend;
    private final int batch;
    private final ByteBuffer inputBuffer;
    private final ByteBuffer outputBuffer;

    public FaceEmbedder(ModelCard card, TensorSpec input, TensorSpec output, Backend backend) {
        this.card = card;
        this.input = input;
        this.output = output;
        this.backend = backend;
        this.batch = checkInput(card, input);
        checkOutput(card, output, batch);
        inputBuffer = ByteBuffer.allocateDirect(input.elements() * input.bytesPerElement()).order(ByteOrder.nativeOrder());
        outputBuffer = ByteBuffer.allocateDirect(output.elements() * output.bytesPerElement()).order(ByteOrder.nativeOrder());
    }

    public ModelCard card() {
        return card;
    }

    /** The unit-length embedding of an aligned {@code card.inputHeight×inputWidth×3} RGB crop. */
    public float[] embed(byte[] cropRgb) {
        boolean flipInBatch = card.flip && batch >= 2;
        byte[] mirrored = card.flip ? RgbImages.mirror(cropRgb, card.inputWidth, card.inputHeight) : null;
        float[] first = runOnce(cropRgb, flipInBatch ? mirrored : cropRgb);
        float[] embedding = Arrays.copyOfRange(first, 0, card.embeddingSize);
        if (card.flip) {
            float[] flipped = flipInBatch
                    ? Arrays.copyOfRange(first, card.embeddingSize, 2 * card.embeddingSize)
                    : Arrays.copyOfRange(runOnce(mirrored, mirrored), 0, card.embeddingSize);
            embedding = FaceMatcher.fuseFlip(embedding, flipped);
        }
        return FaceMatcher.l2Normalize(embedding);
    }

    /** Runs slot 0 = {@code crop}, slots 1… = {@code other}; returns all dequantised output rows. */
    private float[] runOnce(byte[] crop, byte[] other) {
        ((Buffer) inputBuffer).clear(); // Buffer casts: Android before API 34 lacks the covariant overrides
        card.writeInput(crop, inputBuffer);
        for (int b = 1; b < batch; b++) {
            card.writeInput(other, inputBuffer);
        }
        ((Buffer) inputBuffer).rewind();
        ((Buffer) outputBuffer).clear();
        backend.run(inputBuffer, outputBuffer);
        ((Buffer) outputBuffer).rewind();
        int n = output.elements();
        float[] values = new float[n];
        if (output.dtype.equals("float32")) {
            outputBuffer.asFloatBuffer().get(values);
            return values;
        }
        byte[] raw = new byte[n];
        outputBuffer.get(raw);
        boolean signed = output.dtype.equals("int8");
        if (card.outputScale != null) {
            return card.dequantizeOutput(raw, signed);
        }
        float scale = (float) output.scale;
        float zp = output.zeroPoint;
        for (int i = 0; i < n; i++) {
            values[i] = ((signed ? raw[i] : (raw[i] & 0xff)) - zp) * scale;
        }
        return values;
    }

    private static int checkInput(ModelCard card, TensorSpec t) {
        int[] s = t.shape;
        boolean nhwc = card.layout.equals("NHWC");
        int[] expected = nhwc
                ? new int[] {-1, card.inputHeight, card.inputWidth, 3}
                : new int[] {-1, 3, card.inputHeight, card.inputWidth};
        if (s.length != 4 || s[1] != expected[1] || s[2] != expected[2] || s[3] != expected[3] || s[0] < 1) {
            throw new ModelFileException("model input " + t + " does not match its card (" + card.layout + " "
                    + card.inputHeight + "×" + card.inputWidth + "×3)");
        }
        if (!t.dtype.equals(card.inputDtype)) {
            throw new ModelFileException("model input is " + t.dtype + " but its card says " + card.inputDtype);
        }
        if (card.isQuantizedInput()) {
            boolean same = Math.abs(t.scale - card.inputScale) <= QUANT_TOLERANCE * card.inputScale
                    && t.zeroPoint == card.inputZeroPoint;
            if (!same) {
                throw new ModelFileException("model input quantisation (scale " + t.scale + ", zero point " + t.zeroPoint
                        + ") differs from its card (" + card.inputScale + ", " + card.inputZeroPoint + ")");
            }
        }
        if (card.fixedBatch != null && card.fixedBatch != s[0]) {
            throw new ModelFileException("card says batch " + card.fixedBatch + ", model input has " + s[0]);
        }
        return s[0];
    }

    private static void checkOutput(ModelCard card, TensorSpec t, int batch) {
        int[] s = t.shape;
        if (s.length != 2 || s[0] != batch || s[1] != card.embeddingSize) {
            throw new ModelFileException("model output " + t + " is not [" + batch + ", " + card.embeddingSize + "]");
        }
        if (!t.dtype.equals("float32") && card.outputScale == null && !(t.scale > 0)) {
            throw new ModelFileException("integer model output without a scale (card or tensor)");
        }
    }
}
