package org.shrinkface.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
    @Test
    public void parsesWhatPythonJsonWrites() {
        // json.dumps({"a": [1, 2.5, -3e-05, 0.1], "b": "\u00e9\"\\n", "c": null, "d": true, "e": {}}, sort_keys=True)
        Map<String, Object> m = Json.parseObject(
                "{\"a\": [1, 2.5, -3e-05, 0.1], \"b\": \"\\u00e9\\\"\\\\n\", \"c\": null, \"d\": true, \"e\": {}}");
        assertEquals(Arrays.asList(1L, 2.5, -3e-05, 0.1), m.get("a"));
        assertEquals("é\"\\n", m.get("b"));
        assertNull(m.get("c"));
        assertEquals(Boolean.TRUE, m.get("d"));
        assertEquals(0, ((Map<?, ?>) m.get("e")).size());
        // Python's repr of 0.007843137718737125 must come back as the same double.
        assertEquals(0.007843137718737125, ((List<?>) Json.parse("[0.007843137718737125]")).get(0));
    }

    @Test
    public void refusesMalformedJson() {
        for (String bad : new String[] {"", "{", "{\"a\":1,}", "[1 2]", "{\"a\":1}x", "{\"a\":1,\"a\":2}", "NaN",
                "[01]", "\"\\x\"", "{a:1}", "[1.]"}) {
            assertThrows(bad, Json.JsonException.class, () -> Json.parse(bad));
        }
        assertThrows(Json.JsonException.class, () -> Json.parseObject("[1]"));
    }
}
