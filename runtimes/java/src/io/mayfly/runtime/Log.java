package io.mayfly.runtime;

import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.logging.LogLevel;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;

/**
 * The function's log as Lambda's Java runtime writes it: what a
 * LambdaLogger gets is one record however many lines it spans (the
 * platform reads the log a line at a time, so a record's own line breaks
 * become "\r"), and in JSON format (AWS_LAMBDA_LOG_FORMAT=JSON) one object
 * with the time, level, message and request id. System.out and System.err
 * reach the log as they are: the platform tags each line with the call in
 * flight. With many calls at once each record names its call (see
 * concurrent), and System.out and System.err are CallOutput's.
 */
final class Log implements LambdaLogger {
    private final PrintStream out;
    private boolean json;
    private LogLevel minimum = LogLevel.UNDEFINED;
    volatile String requestId;
    /*
     * With many calls at once (CallOutput): each record names its thread's
     * call, in Lambda's text format "TIMESTAMP\tREQUEST_ID\tLEVEL\tMESSAGE"
     * or JSON's AWSRequestId, and is written in one write to fd.
     */
    private FileOutputStream fd;

    Log(PrintStream out) {
        this.out = out;
    }

    /** Many calls at once: records go to fd, each naming its call. */
    void concurrent(FileOutputStream fd) {
        this.fd = fd;
    }

    /** Reads Lambda's log settings from the function's environment. */
    void configure(java.util.Map<String, String> env) {
        json = "JSON".equalsIgnoreCase(env.getOrDefault("AWS_LAMBDA_LOG_FORMAT", ""));
        String level = env.getOrDefault("AWS_LAMBDA_LOG_LEVEL", "");
        minimum = LogLevel.UNDEFINED;
        for (LogLevel l : LogLevel.values())
            if (l.name().equalsIgnoreCase(level))
                minimum = l;
    }

    @Override
    public void log(String message) {
        write(message == null ? "null" : message, LogLevel.UNDEFINED);
    }

    @Override
    public void log(byte[] message) {
        write(message == null ? "null" : new String(message, StandardCharsets.UTF_8),
                LogLevel.UNDEFINED);
    }

    @Override
    public void log(String message, LogLevel level) {
        write(message == null ? "null" : message, level == null ? LogLevel.UNDEFINED : level);
    }

    @Override
    public void log(byte[] message, LogLevel level) {
        log(message == null ? "null" : new String(message, StandardCharsets.UTF_8), level);
    }

    void write(String message, LogLevel level) {
        if (level != LogLevel.UNDEFINED && minimum != LogLevel.UNDEFINED
                && level.ordinal() < minimum.ordinal())
            return;
        String id = fd == null ? requestId : CallOutput.CALL.get();
        String line;
        if (json) {
            StringBuilder sb = new StringBuilder(message.length() + 128);
            sb.append("{\"timestamp\":");
            Json.quote(sb, Instant.now().toString());
            sb.append(",\"level\":");
            Json.quote(sb, level == LogLevel.UNDEFINED ? "INFO" : level.name());
            sb.append(",\"message\":");
            Json.quote(sb, message);
            if (id != null) {
                sb.append(",\"AWSRequestId\":");
                Json.quote(sb, id);
            }
            line = sb.append('}').toString();
        } else {
            line = message.replace('\n', '\r');
            if (line.endsWith("\r"))
                line = line.substring(0, line.length() - 1);
            if (fd != null && id != null)
                line = CallOutput.head(id, level == LogLevel.UNDEFINED ? "INFO" : level.name())
                        + line;
        }
        if (fd != null) {
            CallOutput.emit(fd, (line + "\n").getBytes(StandardCharsets.UTF_8));
            return;
        }
        synchronized (out) {
            out.print(line);
            out.print('\n');
            out.flush();
        }
    }
}
