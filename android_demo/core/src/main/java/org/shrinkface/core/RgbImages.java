package org.shrinkface.core;

/**
 * Interleaved RGB byte images (row-major, {@code width×height×3}) as the aligner expects: conversion from a
 * camera's RGBA plane (with row and pixel strides), rotation by multiples of 90° to make a frame upright, and the
 * horizontal mirror used by cards with {@code flip}.
 */
public final class RgbImages {
    private RgbImages() {}

    /**
     * RGB bytes from an RGBA_8888 plane (CameraX {@code OUTPUT_IMAGE_FORMAT_RGBA_8888}); {@code rowStride} and
     * {@code pixelStride} are the plane's, in bytes. Alpha is dropped.
     */
    public static byte[] fromRgba(byte[] rgba, int width, int height, int rowStride, int pixelStride) {
        if (width <= 0 || height <= 0 || pixelStride < 4 || rowStride < width * pixelStride) {
            throw new IllegalArgumentException("bad RGBA geometry " + width + "×" + height + ", row stride "
                    + rowStride + ", pixel stride " + pixelStride);
        }
        long needed = (long) (height - 1) * rowStride + (long) (width - 1) * pixelStride + 4;
        if (rgba == null || rgba.length < needed) {
            throw new IllegalArgumentException("RGBA buffer has " + (rgba == null ? 0 : rgba.length) + " bytes, need "
                    + needed);
        }
        byte[] out = new byte[width * height * 3];
        int o = 0;
        for (int y = 0; y < height; y++) {
            int p = y * rowStride;
            for (int x = 0; x < width; x++, p += pixelStride) {
                out[o++] = rgba[p];
                out[o++] = rgba[p + 1];
                out[o++] = rgba[p + 2];
            }
        }
        return out;
    }

    /** Width of an image of {@code width×height} after rotating it by {@code degrees} (0, 90, 180, 270). */
    public static int rotatedWidth(int width, int height, int degrees) {
        return normalise(degrees) % 180 == 0 ? width : height;
    }

    /** Height after rotation; see {@link #rotatedWidth}. */
    public static int rotatedHeight(int width, int height, int degrees) {
        return normalise(degrees) % 180 == 0 ? height : width;
    }

    /**
     * Rotates clockwise by {@code degrees} (a multiple of 90; CameraX's {@code rotationDegrees} makes a frame
     * upright). The result is {@link #rotatedWidth} × {@link #rotatedHeight}.
     */
    public static byte[] rotate(byte[] rgb, int width, int height, int degrees) {
        check(rgb, width, height);
        int d = normalise(degrees);
        if (d == 0) {
            return rgb.clone();
        }
        int outW = rotatedWidth(width, height, d);
        byte[] out = new byte[rgb.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int nx, ny;
                if (d == 90) {
                    nx = height - 1 - y;
                    ny = x;
                } else if (d == 180) {
                    nx = width - 1 - x;
                    ny = height - 1 - y;
                } else {
                    nx = y;
                    ny = width - 1 - x;
                }
                System.arraycopy(rgb, (y * width + x) * 3, out, (ny * outW + nx) * 3, 3);
            }
        }
        return out;
    }

    /** The left-right mirror image (numpy's {@code crop[:, ::-1]}). */
    public static byte[] mirror(byte[] rgb, int width, int height) {
        check(rgb, width, height);
        byte[] out = new byte[rgb.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                System.arraycopy(rgb, (y * width + x) * 3, out, (y * width + width - 1 - x) * 3, 3);
            }
        }
        return out;
    }

    private static int normalise(int degrees) {
        int d = ((degrees % 360) + 360) % 360;
        if (d % 90 != 0) {
            throw new IllegalArgumentException("rotation must be a multiple of 90°, got " + degrees);
        }
        return d;
    }

    private static void check(byte[] rgb, int width, int height) {
        if (width <= 0 || height <= 0 || rgb == null || rgb.length != width * height * 3) {
            throw new IllegalArgumentException("expected " + width + "×" + height + "×3 RGB bytes");
        }
    }
}
