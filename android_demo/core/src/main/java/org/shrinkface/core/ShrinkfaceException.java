package org.shrinkface.core;

/** Base class of the errors a user can cause (bad model file, bad card, no template…), with a message for them. */
public class ShrinkfaceException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ShrinkfaceException(String message) {
        super(message);
    }

    public ShrinkfaceException(String message, Throwable cause) {
        super(message, cause);
    }
}
