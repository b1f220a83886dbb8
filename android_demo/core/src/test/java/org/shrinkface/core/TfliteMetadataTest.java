package org.shrinkface.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Base64;
import java.util.Map;
import org.junit.Test;

/** Reads the card out of TFLite files written with the official schema (tests/golden/core_tflite_metadata.json). */
public class TfliteMetadataTest {
    private static Map<String, Object> fixture() {
        return Golden.read(new File(Golden.dir(), "core_tflite_metadata.json"));
    }

    private static byte[] model(String key) {
        return Base64.getDecoder().decode((String) fixture().get(key));
    }

    @Test
    public void readsInlineAndExternalMetadataBuffers() {
        Map<String, Object> expected = Golden.obj(fixture(), "entries");
        for (String key : new String[] {"inline_tflite", "external_tflite"}) {
            Map<String, byte[]> entries = TfliteMetadata.readEntries(model(key));
            assertEquals(key, expected.keySet(), entries.keySet());
            for (String name : expected.keySet()) {
                assertArrayEquals(key + " " + name, Base64.getDecoder().decode((String) expected.get(name)),
                        entries.get(name));
            }
            ModelCard card = TfliteMetadata.readCard(model(key));
            assertEquals(ModelCard.fromJson((String) fixture().get("card_json")).toString(), card.toString());
            assertEquals(0.3125, card.threshold, 0);
        }
    }

    @Test
    public void readsFromAMappedFileLikeTheApp() throws IOException {
        File tmp = File.createTempFile("card", ".tflite");
        tmp.deleteOnExit();
        java.nio.file.Files.write(tmp.toPath(), model("inline_tflite"));
        try (FileChannel channel = FileChannel.open(tmp.toPath(), StandardOpenOption.READ)) {
            ByteBuffer mapped = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size());
            assertEquals("golden_ties", TfliteMetadata.readCard(mapped).name);
            assertEquals(0, mapped.position()); // the interpreter gets the buffer untouched
        }
    }

    @Test
    public void refusesForeignDamagedAndCardlessFiles() {
        ModelFileException notTflite = assertThrows(ModelFileException.class,
                () -> TfliteMetadata.readEntries("{\"name\": \"not a model\"}".getBytes()));
        assertTrue(notTflite.getMessage().contains("not a TFLite model"));
        assertThrows(ModelFileException.class, () -> TfliteMetadata.readEntries(new byte[3]));
        byte[] whole = model("inline_tflite");
        for (int cut : new int[] {whole.length / 2, 64, 12}) {
            assertThrows("cut at " + cut, ModelFileException.class,
                    () -> TfliteMetadata.readEntries(Arrays.copyOf(whole, cut)));
        }
        // The external variant without its tail: the card buffer points past the end of the file.
        byte[] external = model("external_tflite");
        int tail = ((String) fixture().get("card_json")).length() + 16;
        assertThrows(ModelFileException.class,
                () -> TfliteMetadata.readEntries(Arrays.copyOf(external, external.length - tail)));
        // Rename the card entry ("shrinkface.model_card" -> "shrinkface.model_cart"): no card.
        byte[] renamed = whole.clone();
        byte[] key = ModelCard.CARD_KEY.getBytes();
        int at = indexOf(renamed, key);
        assertTrue(at > 0);
        renamed[at + key.length - 1] = 't';
        ModelFileException noCard = assertThrows(ModelFileException.class, () -> TfliteMetadata.readCard(renamed));
        assertTrue(noCard.getMessage().contains("make export-tflite"));
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
