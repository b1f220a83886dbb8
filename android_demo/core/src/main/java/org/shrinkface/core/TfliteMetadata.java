package org.shrinkface.core;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads the {@code Model.metadata} entries of a TFLite flatbuffer (schema.fbs: Model.metadata = [Metadata{name,
 * buffer}], Model.buffers = [Buffer{data, offset, size}]) without the TFLite or flatbuffers libraries, so the
 * model card travels inside the .tflite file. LiteRT's Interpreter does not expose these entries and the TFLite
 * Support metadata extractor only reads its own {@code TFLITE_METADATA} entry, hence this ~100-line reader.
 *
 * <p>Buffers stored after the flatbuffer (offset &gt; 1, the layout for models over 2 GB) are read from the file.
 * Every offset is bounds-checked; a damaged or foreign file gives a {@link ModelFileException}.
 */
public final class TfliteMetadata {
    private static final int MODEL_BUFFERS = 4;
    private static final int MODEL_METADATA = 6;
    private static final int METADATA_NAME = 0;
    private static final int METADATA_BUFFER = 1;
    private static final int BUFFER_DATA = 0;
    private static final int BUFFER_OFFSET = 1;
    private static final int BUFFER_SIZE = 2;

    private final ByteBuffer buf;

    private TfliteMetadata(ByteBuffer model) {
        buf = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        ((Buffer) buf).position(0); // via Buffer: older Android lacks ByteBuffer's covariant position(int)
    }

    /** All metadata entries (name → bytes) of a TFLite model held in {@code model} (from index 0 to its limit). */
    public static Map<String, byte[]> readEntries(ByteBuffer model) {
        return new TfliteMetadata(model).entries();
    }

    /** {@link #readEntries(ByteBuffer)} for a byte array. */
    public static Map<String, byte[]> readEntries(byte[] model) {
        return readEntries(ByteBuffer.wrap(model));
    }

    /** The model card stored under {@link ModelCard#CARD_KEY}; a model without one is refused. */
    public static ModelCard readCard(ByteBuffer model) {
        byte[] card = readEntries(model).get(ModelCard.CARD_KEY);
        if (card == null) {
            throw new ModelFileException("the model carries no '" + ModelCard.CARD_KEY
                    + "' metadata: export it with `make export-tflite` (which embeds the card)");
        }
        return ModelCard.fromJsonBytes(card);
    }

    /** {@link #readCard(ByteBuffer)} for a byte array. */
    public static ModelCard readCard(byte[] model) {
        return readCard(ByteBuffer.wrap(model));
    }

    private Map<String, byte[]> entries() {
        int limit = buf.limit();
        if (limit < 8) {
            throw new ModelFileException("not a TFLite model: " + limit + " bytes is too short");
        }
        String ident = new String(new byte[] {buf.get(4), buf.get(5), buf.get(6), buf.get(7)}, StandardCharsets.US_ASCII);
        if (!ident.equals("TFL3")) {
            throw new ModelFileException("not a TFLite model (file identifier '" + ident.replaceAll("[^ -~]", "?")
                    + "', expected 'TFL3')");
        }
        int model = uoffset(0);
        Map<String, byte[]> out = new LinkedHashMap<>();
        int metadata = vectorField(model, MODEL_METADATA);
        if (metadata < 0) {
            return out;
        }
        int buffers = vectorField(model, MODEL_BUFFERS);
        int bufferCount = buffers < 0 ? 0 : u32(buffers);
        int count = u32(metadata);
        for (int i = 0; i < count; i++) {
            int entry = tableAt(metadata + 4 + 4 * i);
            int nameVec = vectorField(entry, METADATA_NAME);
            String name = nameVec < 0 ? "" : new String(bytes(nameVec + 4, u32(nameVec)), StandardCharsets.UTF_8);
            int fieldPos = field(entry, METADATA_BUFFER);
            long index = fieldPos < 0 ? 0 : (u32(fieldPos) & 0xffffffffL);
            if (index >= bufferCount) {
                throw new ModelFileException("metadata '" + name + "' points at buffer " + index + " of " + bufferCount);
            }
            out.put(name, bufferBytes(tableAt(buffers + 4 + 4 * (int) index)));
        }
        return out;
    }

    private byte[] bufferBytes(int buffer) {
        int offsetPos = field(buffer, BUFFER_OFFSET);
        long offset = offsetPos < 0 ? 0 : buf.getLong(check(offsetPos, 8));
        if (offset > 1) {
            int sizePos = field(buffer, BUFFER_SIZE);
            long size = sizePos < 0 ? 0 : buf.getLong(check(sizePos, 8));
            if (size < 0 || offset + size > buf.limit()) {
                throw new ModelFileException("a buffer stored outside the flatbuffer runs past the end of the file");
            }
            return bytes((int) offset, (int) size);
        }
        int data = vectorField(buffer, BUFFER_DATA);
        return data < 0 ? new byte[0] : bytes(data + 4, u32(data));
    }

    // -- flatbuffer primitives (little-endian, every position checked) -------------------------------------------

    private int check(int pos, int size) {
        if (pos < 0 || size < 0 || (long) pos + size > buf.limit()) {
            throw new ModelFileException("damaged TFLite model: offset " + pos + " is outside the file");
        }
        return pos;
    }

    private int u32(int pos) {
        int v = buf.getInt(check(pos, 4));
        if (v < 0) {
            throw new ModelFileException("damaged TFLite model: bad length or offset at " + pos);
        }
        return v;
    }

    /** The table that the uoffset at {@code pos} points to. */
    private int uoffset(int pos) {
        return check(pos + u32(pos), 4);
    }

    private int tableAt(int pos) {
        return uoffset(pos);
    }

    /** Absolute position of field {@code index} of the table at {@code table}, or −1 when absent. */
    private int field(int table, int index) {
        int vtable = table - buf.getInt(check(table, 4));
        check(vtable, 4);
        int vtableSize = buf.getShort(vtable) & 0xffff;
        int slot = 4 + 2 * index;
        if (slot + 2 > vtableSize) {
            return -1;
        }
        int offset = buf.getShort(check(vtable + slot, 2)) & 0xffff;
        return offset == 0 ? -1 : check(table + offset, 1);
    }

    /** Position of the length word of the vector (or string) in field {@code index}, or −1 when absent. */
    private int vectorField(int table, int index) {
        int pos = field(table, index);
        if (pos < 0) {
            return -1;
        }
        int vector = uoffset(pos);
        check(vector + 4, u32(vector));
        return vector;
    }

    private byte[] bytes(int pos, int length) {
        check(pos, length);
        byte[] out = new byte[length];
        for (int i = 0; i < length; i++) {
            out[i] = buf.get(pos + i);
        }
        return out;
    }
}
