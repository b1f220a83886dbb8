package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * Reproduces Python's alignment and preprocessing from tests/golden/core_*.json: the similarity matrix (1e-6),
 * the OpenCV crop (≥ 99.9 % of values within 1 level; exact mismatch counts printed) and every input tensor
 * (bit-exact, from the golden crop).
 */
public class GoldenTest {
    private static final double MATRIX_TOLERANCE = 1e-6;

    @Test
    public void matrixMatchesPython() {
        for (File file : Golden.cases()) {
            Map<String, Object> record = Golden.read(file);
            double[] expected = Golden.flat(record.get("matrix"));
            double[] got = FaceAligner.similarityTransform(
                    Golden.flat(record.get("landmarks")), Golden.flat(record.get("template")));
            double worst = 0;
            for (int i = 0; i < 6; i++) {
                worst = Math.max(worst, Math.abs(expected[i] - got[i]));
            }
            System.out.printf("[golden] %s matrix max |diff| %.3g%n", file.getName(), worst);
            assertArrayEquals(file.getName(), expected, got, MATRIX_TOLERANCE);
        }
    }

    @Test
    public void cropMatchesOpenCv() {
        long totalValues = 0, totalMismatch = 0, totalOverOne = 0;
        for (File file : Golden.cases()) {
            Map<String, Object> record = Golden.read(file);
            List<?> size = (List<?>) record.get("output_size");
            int outH = ((Number) size.get(0)).intValue(), outW = ((Number) size.get(1)).intValue();
            byte[] crop = FaceAligner.alignFace(Golden.sourceImage(record), Golden.integer(record, "image_width"),
                    Golden.integer(record, "image_height"), Golden.flat(record.get("landmarks")),
                    Golden.flat(record.get("template")), outH, outW);
            byte[] expected = Golden.bytes(Golden.obj(record, "crop_rgb"));
            assertEquals(expected.length, crop.length);
            int mismatch = 0, overOne = 0, maxDiff = 0, mismatchPixels = 0;
            for (int p = 0; p < crop.length; p += 3) {
                boolean pixelDiffers = false;
                for (int c = 0; c < 3; c++) {
                    int d = Math.abs((crop[p + c] & 0xff) - (expected[p + c] & 0xff));
                    if (d != 0) {
                        mismatch++;
                        pixelDiffers = true;
                    }
                    if (d > 1) {
                        overOne++;
                    }
                    maxDiff = Math.max(maxDiff, d);
                }
                if (pixelDiffers) {
                    mismatchPixels++;
                }
            }
            System.out.printf("[golden] %s crop: %d of %d values differ (%d of %d pixels), %d by more than 1, "
                    + "max |diff| %d%n", file.getName(), mismatch, crop.length, mismatchPixels, crop.length / 3,
                    overOne, maxDiff);
            totalValues += crop.length;
            totalMismatch += mismatch;
            totalOverOne += overOne;
            assertTrue(file.getName() + ": " + overOne + " values differ by more than 1 level",
                    overOne <= crop.length / 1000);
        }
        System.out.printf("[golden] all crops: %d of %d values differ, %d by more than 1%n", totalMismatch,
                totalValues, totalOverOne);
    }

    @Test
    public void inputTensorsAreBitExact() {
        int checked = 0;
        for (File file : Golden.cases()) {
            Map<String, Object> record = Golden.read(file);
            byte[] crop = Golden.bytes(Golden.obj(record, "crop_rgb"));
            for (Map.Entry<String, Object> entry : Golden.obj(record, "cards").entrySet()) {
                @SuppressWarnings("unchecked")
                Map<String, Object> item = (Map<String, Object>) entry.getValue();
                ModelCard card = ModelCard.fromJson((String) item.get("card_json"));
                Map<String, Object> tensor = Golden.obj(item, "tensor");
                Golden.assertInputTensor(file.getName() + " " + entry.getKey(), card, crop, tensor);
                checked++;
            }
        }
        System.out.printf("[golden] %d input tensors bit-exact%n", checked);
        assertTrue(checked >= 10);
    }

    @Test
    public void endToEndTensorsFromJavaCrop() {
        // Informative and bounded: the tensors made from Java's own crop differ from Python's only where the crop
        // does (a one-level crop difference moves one tensor value).
        for (File file : Golden.cases()) {
            Map<String, Object> record = Golden.read(file);
            byte[] crop = FaceAligner.alignFace(Golden.sourceImage(record), Golden.integer(record, "image_width"),
                    Golden.integer(record, "image_height"), Golden.flat(record.get("landmarks")),
                    Golden.flat(record.get("template")), 112, 112);
            @SuppressWarnings("unchecked")
            Map<String, Object> item = (Map<String, Object>) Golden.obj(record, "cards").get("int8_nhwc_rgb_ties");
            ModelCard card = ModelCard.fromJson((String) item.get("card_json"));
            byte[] expected = Golden.bytes(Golden.obj(item, "tensor"));
            byte[] got = card.quantize(crop);
            int differ = 0;
            for (int i = 0; i < got.length; i++) {
                if (got[i] != expected[i]) {
                    differ++;
                }
            }
            System.out.printf("[golden] %s int8 tensor from the Java crop: %d of %d values differ%n", file.getName(),
                    differ, got.length);
            assertTrue(differ <= got.length / 1000);
        }
    }
}
