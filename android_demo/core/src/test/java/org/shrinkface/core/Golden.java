package org.shrinkface.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

/** Reads tests/golden/core_*.json (written by tests/golden/make_core_golden.py). */
final class Golden {
    private Golden() {}

    /** The golden directory: system property {@code shrinkface.golden}, else ../../tests/golden. */
    static File dir() {
        String path = System.getProperty("shrinkface.golden", "../../tests/golden");
        File dir = new File(path);
        if (!dir.isDirectory()) {
            throw new IllegalStateException("golden directory " + dir.getAbsolutePath()
                    + " not found: run via `make test-android-core` or pass -Dshrinkface.golden=DIR");
        }
        return dir;
    }

    /** The alignment/preprocessing cases (core_*.json except the TFLite fixture), sorted by name. */
    static List<File> cases() {
        File[] files = dir().listFiles((d, name) -> name.startsWith("core_") && name.endsWith(".json")
                && !name.equals("core_tflite_metadata.json"));
        if (files == null || files.length == 0) {
            throw new IllegalStateException("no core_*.json in " + dir() + ": run tests/golden/make_core_golden.py");
        }
        List<File> list = new ArrayList<>(Arrays.asList(files));
        list.sort(null);
        return list;
    }

    static Map<String, Object> read(File file) {
        try {
            return Json.parseObject(new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8));
        } catch (IOException ex) {
            throw new IllegalStateException(ex);
        }
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> obj(Map<String, Object> map, String key) {
        return (Map<String, Object>) map.get(key);
    }

    static int integer(Map<String, Object> map, String key) {
        return ((Number) map.get(key)).intValue();
    }

    /** A {dtype, shape, encoding, data} array's raw little-endian bytes. */
    static byte[] bytes(Map<String, Object> array) {
        if (!"gzip+base64".equals(array.get("encoding"))) {
            throw new IllegalStateException("unknown encoding " + array.get("encoding"));
        }
        byte[] packed = Base64.getDecoder().decode((String) array.get("data"));
        try (InputStream in = new GZIPInputStream(new java.io.ByteArrayInputStream(packed))) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] chunk = new byte[1 << 16];
            int n;
            while ((n = in.read(chunk)) > 0) {
                out.write(chunk, 0, n);
            }
            return out.toByteArray();
        } catch (IOException ex) {
            throw new IllegalStateException(ex);
        }
    }

    static float[] floats(Map<String, Object> array) {
        if (!"float32".equals(array.get("dtype"))) {
            throw new IllegalStateException("expected float32, got " + array.get("dtype"));
        }
        ByteBuffer b = ByteBuffer.wrap(bytes(array)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }

    /** Flat (x, y, …) doubles from a list of [x, y] lists (landmarks, template) or a 2×3 matrix. */
    static double[] flat(Object nested) {
        List<?> rows = (List<?>) nested;
        List<Double> values = new ArrayList<>();
        for (Object row : rows) {
            for (Object v : (List<?>) row) {
                values.add(((Number) v).doubleValue());
            }
        }
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }

    /** The card's input tensor from {@code crop} equals the golden {@code tensor} bit for bit (int8 or float). */
    static void assertInputTensor(String where, ModelCard card, byte[] crop, Map<String, Object> tensor) {
        if (!card.inputDtype.equals(tensor.get("dtype"))) {
            throw new AssertionError(where + ": dtype " + tensor.get("dtype") + ", card says " + card.inputDtype);
        }
        if (card.isQuantizedInput()) {
            byte[] expected = bytes(tensor);
            byte[] got = card.quantize(crop);
            if (!Arrays.equals(expected, got)) {
                throw new AssertionError(where + ": int8 input tensor differs from the golden one");
            }
            return;
        }
        float[] expected = floats(tensor);
        float[] got = card.normalize(crop);
        if (expected.length != got.length) {
            throw new AssertionError(where + ": " + got.length + " values, expected " + expected.length);
        }
        for (int i = 0; i < got.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(got[i])) {
                throw new AssertionError(where + ": value " + i + " is " + got[i] + ", expected " + expected[i]);
            }
        }
    }

    /** The full source image: the stored region pasted into a black image of the original size. */
    static byte[] sourceImage(Map<String, Object> record) {
        int width = integer(record, "image_width");
        int height = integer(record, "image_height");
        Map<String, Object> region = obj(record, "source_region");
        int rx = integer(region, "x"), ry = integer(region, "y");
        int rw = integer(region, "width"), rh = integer(region, "height");
        byte[] part = bytes(obj(record, "source_rgb"));
        if (part.length != rw * rh * 3) {
            throw new IllegalStateException("source region has " + part.length + " bytes, expected " + rw * rh * 3);
        }
        byte[] image = new byte[width * height * 3];
        for (int y = 0; y < rh; y++) {
            System.arraycopy(part, y * rw * 3, image, ((ry + y) * width + rx) * 3, rw * 3);
        }
        return image;
    }
}
