package org.shrinkface.core;

/** A model card is missing or invalid (mirrors Python's {@code ModelCardError}). */
public class ModelCardException extends ShrinkfaceException {
    private static final long serialVersionUID = 1L;

    public ModelCardException(String message) {
        super(message);
    }

    public ModelCardException(String message, Throwable cause) {
        super(message, cause);
    }
}
