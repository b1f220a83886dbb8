package org.shrinkface.core;

/** The in-memory templates cannot serve the request (empty, wrong size…); Python's {@code GalleryError}. */
public class GalleryException extends ShrinkfaceException {
    private static final long serialVersionUID = 1L;

    public GalleryException(String message) {
        super(message);
    }
}
