package org.shrinkface.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Typed readers of model-card JSON fields with {@link ModelCardException}s that name the field. */
final class CardFields {
    private CardFields() {}

    static String str(Map<String, Object> d, String key, String fallback) {
        if (!d.containsKey(key)) {
            return fallback;
        }
        Object v = d.get(key);
        if (!(v instanceof String)) {
            throw new ModelCardException("model card field '" + key + "' must be a string, got " + Json.typeName(v));
        }
        return (String) v;
    }

    static boolean bool(Map<String, Object> d, String key) {
        Object v = d.get(key);
        if (v == null) {
            return false;
        }
        if (!(v instanceof Boolean)) {
            throw new ModelCardException("model card field '" + key + "' must be true or false");
        }
        return (Boolean) v;
    }

    static int toInt(String key, Object v) {
        if (v instanceof Long) {
            long l = (Long) v;
            if (l == (int) l) {
                return (int) l;
            }
        } else if (v instanceof Double) {
            double x = (Double) v;
            if (x == Math.rint(x) && Math.abs(x) < Integer.MAX_VALUE) {
                return (int) x;
            }
        }
        throw new ModelCardException("model card field '" + key + "' must be an integer, got " + v);
    }

    static double toDouble(String key, Object v) {
        if (v instanceof Number) {
            double x = ((Number) v).doubleValue();
            if (Double.isFinite(x)) {
                return x;
            }
        }
        throw new ModelCardException("model card field '" + key + "' must be a number, got " + Json.typeName(v));
    }

    static int integer(Map<String, Object> d, String key, Integer fallback) {
        Object v = d.get(key);
        if (v == null) {
            if (fallback == null) {
                throw new ModelCardException("model card field '" + key + "' is required");
            }
            return fallback;
        }
        return toInt(key, v);
    }

    static Integer optInteger(Map<String, Object> d, String key) {
        Object v = d.get(key);
        return v == null ? null : toInt(key, v);
    }

    static Double optDouble(Map<String, Object> d, String key) {
        Object v = d.get(key);
        return v == null ? null : toDouble(key, v);
    }

    static double[] doubles(Map<String, Object> d, String key, double[] fallback) {
        Object v = d.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof List)) {
            throw new ModelCardException("model card field '" + key + "' must be a list of numbers");
        }
        List<?> list = (List<?>) v;
        double[] out = new double[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = toDouble(key, list.get(i));
        }
        return out;
    }

    static int[] intPair(Object v) {
        if (v == null) {
            return new int[] {112, 112};
        }
        if (!(v instanceof List) || ((List<?>) v).size() != 2) {
            throw new ModelCardException("model card field 'input_size' must be [height, width]");
        }
        List<?> list = (List<?>) v;
        return new int[] {toInt("input_size", list.get(0)), toInt("input_size", list.get(1))};
    }

    static double[] points(Object v) {
        if (v == null) {
            return FaceAligner.ARCFACE_112.clone();
        }
        if (!(v instanceof List)) {
            throw new ModelCardException("model card field 'template' must be a list of [x, y] points");
        }
        List<?> list = (List<?>) v;
        double[] out = new double[list.size() * 2];
        for (int i = 0; i < list.size(); i++) {
            Object p = list.get(i);
            if (!(p instanceof List) || ((List<?>) p).size() != 2) {
                throw new ModelCardException("model card template point " + i + " must be [x, y]");
            }
            out[2 * i] = toDouble("template", ((List<?>) p).get(0));
            out[2 * i + 1] = toDouble("template", ((List<?>) p).get(1));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> extraMap(Object v) {
        if (v == null) {
            return Collections.emptyMap();
        }
        if (!(v instanceof Map)) {
            throw new ModelCardException("model card field 'extra' must be an object");
        }
        return Collections.unmodifiableMap(new LinkedHashMap<>((Map<String, Object>) v));
    }
}
