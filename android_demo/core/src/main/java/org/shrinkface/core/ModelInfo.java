package org.shrinkface.core;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;

/**
 * Prints the metadata entries and the model card of .tflite files, as the app will read them:
 * {@code java -cp android_demo/core/build/jvm/main org.shrinkface.core.ModelInfo student_int8.tflite}.
 * Exit code 0 when every file carries a valid card, 6 (Python's ExitCode.MODEL) otherwise.
 */
public final class ModelInfo {
    private ModelInfo() {}

    public static void main(String[] args) throws IOException {
        if (args.length == 0) {
            System.err.println("usage: ModelInfo MODEL.tflite…");
            System.exit(2);
        }
        int rc = 0;
        for (String path : args) {
            byte[] model = Files.readAllBytes(Paths.get(path));
            try {
                Map<String, byte[]> entries = TfliteMetadata.readEntries(model);
                System.out.println(path + ": " + model.length + " bytes, metadata " + entries.keySet());
                ModelCard card = TfliteMetadata.readCard(model);
                System.out.println("  " + card);
                System.out.println("  card JSON: " + new String(entries.get(ModelCard.CARD_KEY), "UTF-8").trim());
            } catch (ShrinkfaceException ex) {
                System.out.println(path + ": " + ex.getMessage());
                rc = 6;
            }
        }
        System.exit(rc);
    }
}
