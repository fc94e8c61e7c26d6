package com.amazonaws.services.lambda.runtime;

import com.amazonaws.services.lambda.runtime.logging.LogLevel;

/**
 * Writes to the function's log. A message is one log record even when it
 * spans several lines.
 */
public interface LambdaLogger {
    void log(String message);

    void log(byte[] message);

    /** Writes message at a level; the level is dropped in text format. */
    default void log(String message, LogLevel level) {
        log(message);
    }

    default void log(byte[] message, LogLevel level) {
        log(message);
    }
}
