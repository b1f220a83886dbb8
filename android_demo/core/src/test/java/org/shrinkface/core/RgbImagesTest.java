package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

public class RgbImagesTest {
    /** A 3×2 image whose pixel (x, y) has R = 10·y + x, G = 100, B = 200. */
    private static byte[] sample() {
        byte[] img = new byte[3 * 2 * 3];
        for (int y = 0; y < 2; y++) {
            for (int x = 0; x < 3; x++) {
                img[(y * 3 + x) * 3] = (byte) (10 * y + x);
                img[(y * 3 + x) * 3 + 1] = 100;
                img[(y * 3 + x) * 3 + 2] = (byte) 200;
            }
        }
        return img;
    }

    private static byte[] reds(byte[] rgb) {
        byte[] r = new byte[rgb.length / 3];
        for (int i = 0; i < r.length; i++) {
            r[i] = rgb[3 * i];
        }
        return r;
    }

    @Test
    public void rgbaWithPaddedRowsBecomesRgb() {
        // 2×2 RGBA with a row stride of 12 bytes (4 bytes of padding per row).
        byte[] rgba = {1, 2, 3, 9, 4, 5, 6, 9, 0, 0, 0, 0, 7, 8, 9, 9, 10, 11, 12, 9, 0, 0, 0, 0};
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, RgbImages.fromRgba(rgba, 2, 2, 12, 4));
        assertThrows(IllegalArgumentException.class, () -> RgbImages.fromRgba(new byte[10], 2, 2, 12, 4));
        assertThrows(IllegalArgumentException.class, () -> RgbImages.fromRgba(rgba, 2, 2, 6, 4));
    }

    @Test
    public void rotationsMoveCornersClockwise() {
        byte[] img = sample(); // reds: row0 = 0 1 2, row1 = 10 11 12
        // 90° clockwise: 2×3 image, rows = (10 0), (11 1), (12 2)
        assertArrayEquals(new byte[] {10, 0, 11, 1, 12, 2}, reds(RgbImages.rotate(img, 3, 2, 90)));
        assertArrayEquals(new byte[] {12, 11, 10, 2, 1, 0}, reds(RgbImages.rotate(img, 3, 2, 180)));
        assertArrayEquals(new byte[] {2, 12, 1, 11, 0, 10}, reds(RgbImages.rotate(img, 3, 2, 270)));
        assertArrayEquals(img, RgbImages.rotate(img, 3, 2, -360));
        assertEquals(2, RgbImages.rotatedWidth(3, 2, 90));
        assertEquals(3, RgbImages.rotatedHeight(3, 2, 270));
        // Four quarter turns give the image back; colour channels travel together.
        byte[] r = img;
        int w = 3, h = 2;
        for (int i = 0; i < 4; i++) {
            r = RgbImages.rotate(r, w, h, 90);
            int t = w;
            w = h;
            h = t;
        }
        assertArrayEquals(img, r);
        assertThrows(IllegalArgumentException.class, () -> RgbImages.rotate(img, 3, 2, 45));
    }

    @Test
    public void mirrorFlipsColumns() {
        assertArrayEquals(new byte[] {2, 1, 0, 12, 11, 10}, reds(RgbImages.mirror(sample(), 3, 2)));
        assertArrayEquals(sample(), RgbImages.mirror(RgbImages.mirror(sample(), 3, 2), 3, 2));
    }
}
