package com.amazonaws.services.lambda.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * A handler that reads the event's bytes and writes the result's bytes
 * itself, with no mapping in between.
 */
public interface RequestStreamHandler {
    void handleRequest(InputStream input, OutputStream output, Context context)
            throws IOException;
}
