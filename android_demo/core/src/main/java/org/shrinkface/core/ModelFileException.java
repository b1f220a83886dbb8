package org.shrinkface.core;

/** A model file is not a TFLite flatbuffer, is truncated, or carries no model card (Python's {@code ModelError}). */
public class ModelFileException extends ShrinkfaceException {
    private static final long serialVersionUID = 1L;

    public ModelFileException(String message) {
        super(message);
    }
}
