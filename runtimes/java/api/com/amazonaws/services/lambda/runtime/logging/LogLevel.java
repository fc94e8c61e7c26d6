package com.amazonaws.services.lambda.runtime.logging;

/** The levels of a log record, lowest first. */
public enum LogLevel {
    UNDEFINED,
    TRACE,
    DEBUG,
    INFO,
    WARN,
    ERROR,
    FATAL
}
