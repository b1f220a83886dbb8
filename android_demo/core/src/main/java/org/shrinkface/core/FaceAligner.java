package org.shrinkface.core;

/**
 * The one 5-point face alignment, bit-compatible with Python's {@code shrinkface.runtime.align.align_face}.
 *
 * <p>A least-squares similarity transform (Umeyama 1991) maps the detector's five landmarks (eye, eye, nose tip,
 * mouth corner, mouth corner; image-left first) onto the card's template, and {@link #warpAffine} resamples the
 * RGB image like OpenCV 5's {@code cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT, 0)}: the forward matrix is
 * inverted in double precision as OpenCV does, cast to float, source coordinates are {@code fma(M0, x, y*M1+M2)}
 * in float, and the bilinear blend is three float FMAs rounded half-to-even (OpenCV's SIMD kernel).
 */
public final class FaceAligner {
    /** insightface's 112×112 ArcFace template (x, y pairs): left eye, right eye, nose, left and right mouth. */
    public static final double[] ARCFACE_112 = {
        38.2946, 51.6963,
        73.5318, 51.5014,
        56.0252, 71.7366,
        41.5493, 92.3655,
        70.7299, 92.2041,
    };

    private FaceAligner() {}

    /**
     * The 2×3 matrix (row-major: m00, m01, m02, m10, m11, m12) of the least-squares similarity transform taking
     * {@code src} points onto {@code dst} points, both flat (x0, y0, x1, y1, …).
     *
     * <p>In 2-D the Umeyama solution has a closed form: with the cross-covariance C = Σ dstᶜ srcᶜᵀ / N, the
     * matrix is [[p, −q], [q, p]] where p = (C00 + C11) / var(src) and q = (C10 − C01) / var(src).
     */
    public static double[] similarityTransform(double[] src, double[] dst) {
        if (src == null || dst == null || src.length != dst.length || src.length % 2 != 0 || src.length < 4) {
            throw new IllegalArgumentException("need two matching point sets of at least 2 (x, y) points");
        }
        int n = src.length / 2;
        for (int i = 0; i < src.length; i++) {
            if (!Double.isFinite(src[i]) || !Double.isFinite(dst[i])) {
                throw new IllegalArgumentException("points must be finite numbers");
            }
        }
        double sxm = 0, sym = 0, dxm = 0, dym = 0;
        for (int i = 0; i < n; i++) {
            sxm += src[2 * i];
            sym += src[2 * i + 1];
            dxm += dst[2 * i];
            dym += dst[2 * i + 1];
        }
        sxm /= n;
        sym /= n;
        dxm /= n;
        dym /= n;
        double c00 = 0, c01 = 0, c10 = 0, c11 = 0, var = 0;
        for (int i = 0; i < n; i++) {
            double sx = src[2 * i] - sxm, sy = src[2 * i + 1] - sym;
            double dx = dst[2 * i] - dxm, dy = dst[2 * i + 1] - dym;
            c00 += dx * sx;
            c01 += dx * sy;
            c10 += dy * sx;
            c11 += dy * sy;
            var += sx * sx + sy * sy;
        }
        var /= n;
        if (!(var > 0)) {
            throw new IllegalArgumentException("source points are all identical");
        }
        double p = (c00 + c11) / n / var;
        double q = (c10 - c01) / n / var;
        return new double[] {p, -q, dxm - (p * sxm - q * sym), q, p, dym - (q * sxm + p * sym)};
    }

    /** Applies a 2×3 {@code matrix} to flat (x, y, …) {@code points}. */
    public static double[] transformPoints(double[] matrix, double[] points) {
        double[] out = new double[points.length];
        for (int i = 0; i + 1 < points.length; i += 2) {
            out[i] = matrix[0] * points[i] + matrix[1] * points[i + 1] + matrix[2];
            out[i + 1] = matrix[3] * points[i] + matrix[4] * points[i + 1] + matrix[5];
        }
        return out;
    }

    /** OpenCV's inversion of a 2×3 affine matrix (same operations and order as {@code cv::warpAffine}). */
    public static double[] invertAffine(double[] m) {
        double[] r = m.clone();
        double d = r[0] * r[4] - r[1] * r[3];
        d = d != 0 ? 1. / d : 0;
        double a11 = r[4] * d, a22 = r[0] * d;
        r[0] = a11;
        r[1] *= -d;
        r[3] *= -d;
        r[4] = a22;
        double b1 = -r[0] * r[2] - r[1] * r[5];
        double b2 = -r[3] * r[2] - r[4] * r[5];
        r[2] = b1;
        r[5] = b2;
        return r;
    }

    /**
     * Aligns an RGB image (interleaved, {@code width×height×3}) so that its 5 {@code landmarks} (flat x, y) land on
     * {@code template}; returns an {@code outHeight×outWidth×3} crop of the same channel order.
     */
    public static byte[] alignFace(
            byte[] rgb, int width, int height, double[] landmarks, double[] template, int outHeight, int outWidth) {
        if (landmarks == null || template == null || landmarks.length != 10 || template.length != 10) {
            throw new IllegalArgumentException("alignment needs 5 landmarks and a 5-point template");
        }
        return warpAffine(rgb, width, height, similarityTransform(landmarks, template), outWidth, outHeight);
    }

    /**
     * Resamples an RGB image with the forward 2×3 {@code matrix} (source → output), bilinear, constant border 0,
     * like {@code cv2.warpAffine(src, matrix, (outWidth, outHeight), flags=INTER_LINEAR, borderValue=0)}.
     */
    public static byte[] warpAffine(byte[] rgb, int width, int height, double[] matrix, int outWidth, int outHeight) {
        if (width <= 0 || height <= 0 || outWidth <= 0 || outHeight <= 0) {
            throw new IllegalArgumentException("image and output sizes must be positive");
        }
        if (rgb == null || rgb.length != width * height * 3) {
            throw new IllegalArgumentException(
                    "expected " + width + "×" + height + "×3 RGB bytes, got " + (rgb == null ? 0 : rgb.length));
        }
        if (matrix == null || matrix.length != 6) {
            throw new IllegalArgumentException("need a 2×3 matrix (6 values)");
        }
        double[] inv = invertAffine(matrix);
        float m0 = (float) inv[0], m1 = (float) inv[1], m2 = (float) inv[2];
        float m3 = (float) inv[3], m4 = (float) inv[4], m5 = (float) inv[5];
        byte[] out = new byte[outWidth * outHeight * 3];
        int stride = width * 3;
        for (int y = 0; y < outHeight; y++) {
            float rowX = (float) y * m1 + m2;
            float rowY = (float) y * m4 + m5;
            int o = y * outWidth * 3;
            for (int x = 0; x < outWidth; x++, o += 3) {
                float sx = fmaf(m0, (float) x, rowX);
                float sy = fmaf(m3, (float) x, rowY);
                if (!(Math.abs(sx) < 1e9f) || !(Math.abs(sy) < 1e9f)) {
                    continue; // NaN or far outside: border (the array is already 0)
                }
                int ix = (int) Math.floor(sx), iy = (int) Math.floor(sy);
                float ax = sx - ix, ay = sy - iy;
                boolean inside = ix >= 0 && ix < width - 1 && iy >= 0 && iy < height - 1;
                if (!inside && (ix < -1 || ix >= width || iy < -1 || iy >= height)) {
                    continue; // every neighbour is outside: the border value 0
                }
                for (int c = 0; c < 3; c++) {
                    int p00 = pixel(rgb, stride, width, height, ix, iy, c);
                    int p01 = pixel(rgb, stride, width, height, ix + 1, iy, c);
                    int p10 = pixel(rgb, stride, width, height, ix, iy + 1, c);
                    int p11 = pixel(rgb, stride, width, height, ix + 1, iy + 1, c);
                    float v0 = fmaf(ax, (float) (p01 - p00), (float) p00);
                    float v1 = fmaf(ax, (float) (p11 - p10), (float) p10);
                    float v = fmaf(ay, v1 - v0, v0);
                    out[o + c] = (byte) saturateRound(v);
                }
            }
        }
        return out;
    }

    private static int pixel(byte[] rgb, int stride, int width, int height, int x, int y, int c) {
        if (x < 0 || y < 0 || x >= width || y >= height) {
            return 0;
        }
        return rgb[y * stride + x * 3 + c] & 0xff;
    }

    /** OpenCV's {@code saturate_cast<uchar>(float)}: round half to even, clamp to 0…255. */
    static int saturateRound(float v) {
        double r = Math.rint(v);
        if (r < 0) {
            return 0;
        }
        return r > 255 ? 255 : (int) r;
    }

    /**
     * Fused multiply-add of floats, x·y + z with one rounding, without {@code Math.fma} (Android API 33+): the
     * product is exact in double, and the one case where double rounding can go wrong (an inexact double sum
     * that lands exactly halfway between two floats) is nudged towards the exact value (musl's {@code fmaf}).
     */
    static float fmaf(float x, float y, float z) {
        double xy = (double) x * y;
        double result = xy + z;
        long bits = Double.doubleToRawLongBits(result);
        int exponent = (int) ((bits >>> 52) & 0x7ff);
        if ((bits & 0x1fffffffL) != 0x10000000L
                || exponent == 0x7ff
                || (result - xy == z && result - z == xy)) {
            return (float) result;
        }
        boolean negative = bits < 0;
        double err = negative == (z > xy) ? xy - result + z : z - result + xy;
        if (negative == (err < 0)) {
            bits++;
        } else {
            bits--;
        }
        return (float) Double.longBitsToDouble(bits);
    }
}
