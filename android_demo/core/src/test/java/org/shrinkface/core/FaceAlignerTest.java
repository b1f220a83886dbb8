package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import java.util.Random;
import org.junit.Test;

public class FaceAlignerTest {
    @Test
    public void fmafIsCorrectlyRoundedLikeMathFma() {
        Random random = new Random(7);
        int halfway = 0;
        for (int i = 0; i < 500_000; i++) {
            float x, y, z;
            if (i % 2 == 0) { // the warp's range: coordinates and pixel differences
                x = (random.nextFloat() - 0.5f) * 4f;
                y = (float) random.nextInt(512) - 256f;
                z = (random.nextFloat() - 0.25f) * 300f;
            } else { // wide exponents, where double rounding bites
                x = Float.intBitsToFloat(random.nextInt());
                y = Float.intBitsToFloat(random.nextInt());
                z = Float.intBitsToFloat(random.nextInt());
                if (!Float.isFinite(x) || !Float.isFinite(y) || !Float.isFinite(z)) {
                    continue;
                }
                float ref = Math.fma(x, y, z);
                if (!Float.isFinite(ref) || Math.abs(ref) < Float.MIN_NORMAL) {
                    continue; // overflow and subnormal results are outside what the warp produces
                }
            }
            double exact = (double) x * y + z;
            if ((Double.doubleToRawLongBits(exact) & 0x1fffffffL) == 0x10000000L) {
                halfway++;
            }
            assertEquals("fma(" + x + ", " + y + ", " + z + ")", Float.floatToIntBits(Math.fma(x, y, z)),
                    Float.floatToIntBits(FaceAligner.fmaf(x, y, z)));
        }
        // A constructed double-rounding case: 1 + 2^-24 + 2^-60 must round up to 1 + 2^-23.
        float x = 1f + 0x1p-23f, y = 1f + 0x1p-23f; // x·y = 1 + 2^-22 + 2^-46
        float z = -0x1p-22f + 0x1p-24f;             // sum = 1 + 2^-24 + 2^-46: above the midpoint
        assertEquals(Float.floatToIntBits(Math.fma(x, y, z)), Float.floatToIntBits(FaceAligner.fmaf(x, y, z)));
        System.out.printf("[aligner] fmaf == Math.fma on 500k random triples (%d near halfway)%n", halfway);
    }

    @Test
    public void similarityTransformRecoversAKnownSimilarity() {
        // dst = s·R(θ)·src + t for s = 0.8, θ = 12°, t = (5, −3): the fit must return exactly that matrix.
        double s = 0.8, theta = Math.toRadians(12), tx = 5, ty = -3;
        double a = s * Math.cos(theta), b = s * Math.sin(theta);
        double[] src = {100, 120, 150, 118, 126, 150, 104, 180, 147, 178};
        double[] dst = new double[10];
        for (int i = 0; i < 5; i++) {
            dst[2 * i] = a * src[2 * i] - b * src[2 * i + 1] + tx;
            dst[2 * i + 1] = b * src[2 * i] + a * src[2 * i + 1] + ty;
        }
        assertArrayEquals(new double[] {a, -b, tx, b, a, ty}, FaceAligner.similarityTransform(src, dst), 1e-12);
        assertArrayEquals(dst, FaceAligner.transformPoints(FaceAligner.similarityTransform(src, dst), src), 1e-9);
    }

    @Test
    public void similarityTransformMatchesNumpyOnMirroredAndNoisyPoints() {
        // Expected values printed by shrinkface.runtime.align.similarity_transform (numpy SVD, reflection guard).
        // A mirrored set cannot be fitted by a reflection: the answer is the best rotation (here 90°) and scale.
        assertArrayEquals(new double[] {1.9118828915668715e-16, 0.5000000000000002, -0.5000000000000001,
                        -0.5000000000000001, 6.058441941004259e-17, 0.5},
                FaceAligner.similarityTransform(new double[] {0, 0, 1, 0, 0, 1}, new double[] {0, 0, -1, 0, 0, 1}),
                1e-12);
        assertArrayEquals(new double[] {0.059441252229046955, 0.009213394095502273, -1.2435109966316622,
                        -0.009213394095502273, 0.05944125222904696, -0.07598573409946496},
                FaceAligner.similarityTransform(new double[] {10, 20, 40, 22, 25, 40, 12, 55, 38, 57},
                        new double[] {0, 0, -1, 0, 0, 1, 3, 2, 1, 7}),
                1e-12);
    }

    @Test
    public void invertAffineInvertsLikeOpenCv() {
        double[] m = {0.9, -0.2, 12.5, 0.2, 0.9, -7.25};
        double[] inv = FaceAligner.invertAffine(m);
        double[] p = FaceAligner.transformPoints(inv, FaceAligner.transformPoints(m, new double[] {3, 4, 100, -50}));
        assertArrayEquals(new double[] {3, 4, 100, -50}, p, 1e-12);
    }

    @Test
    public void identityWarpCopiesAndShiftedWarpFillsBorderWithZero() {
        int w = 5, h = 4;
        byte[] img = new byte[w * h * 3];
        for (int i = 0; i < img.length; i++) {
            img[i] = (byte) (10 + i);
        }
        assertArrayEquals(img, FaceAligner.warpAffine(img, w, h, new double[] {1, 0, 0, 0, 1, 0}, w, h));
        // Move the image 2 px right: the two left columns are border (0), the rest the original shifted.
        byte[] shifted = FaceAligner.warpAffine(img, w, h, new double[] {1, 0, 2, 0, 1, 0}, w, h);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int c = 0; c < 3; c++) {
                    int expected = x < 2 ? 0 : img[(y * w + x - 2) * 3 + c];
                    assertEquals(expected, shifted[(y * w + x) * 3 + c]);
                }
            }
        }
        // Half-pixel shift: the mean of two neighbours, rounded half to even; the first column blends with 0.
        byte[] half = FaceAligner.warpAffine(img, w, h, new double[] {1, 0, 0.5, 0, 1, 0}, w, h);
        assertEquals(FaceAligner.saturateRound(0.5f * (img[0] + img[3])), half[3] & 0xff);
        assertEquals(FaceAligner.saturateRound(0.5f * img[0]), half[0] & 0xff);
    }

    @Test
    public void saturateRoundIsHalfToEvenAndClamps() {
        assertEquals(2, FaceAligner.saturateRound(2.5f));
        assertEquals(4, FaceAligner.saturateRound(3.5f));
        assertEquals(0, FaceAligner.saturateRound(-3f));
        assertEquals(255, FaceAligner.saturateRound(300.4f));
    }

    @Test
    public void badInputIsRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> FaceAligner.similarityTransform(new double[] {1, 1, 1, 1}, new double[] {0, 0, 1, 1}));
        assertThrows(IllegalArgumentException.class,
                () -> FaceAligner.similarityTransform(new double[] {1, 1}, new double[] {0, 0}));
        assertThrows(IllegalArgumentException.class, () -> FaceAligner.similarityTransform(
                new double[] {0, 0, Double.NaN, 1}, new double[] {0, 0, 1, 1}));
        assertThrows(IllegalArgumentException.class, () -> FaceAligner.alignFace(
                new byte[300], 10, 10, new double[8], FaceAligner.ARCFACE_112, 112, 112));
        assertThrows(IllegalArgumentException.class, () -> FaceAligner.warpAffine(
                new byte[299], 10, 10, new double[] {1, 0, 0, 0, 1, 0}, 5, 5));
    }
}
