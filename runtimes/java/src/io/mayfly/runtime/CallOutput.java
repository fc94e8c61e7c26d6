package io.mayfly.runtime;

import java.io.ByteArrayOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * System.out and System.err of an instance that serves many calls at once
 * (AWS_LAMBDA_MAX_CONCURRENCY above 1). The calls share the instance's
 * stdout and stderr, and the platform files a line under the call whose
 * request id it carries: so each thread's bytes are gathered into lines of
 * its own, and each line is written whole, in one write, as
 * "TIMESTAMP\tREQUEST_ID\tLEVEL\tLINE" when the thread is serving a call
 * (CALL). A thread the handler started serves none: its lines go out as
 * they are.
 */
final class CallOutput extends OutputStream {
    /** The request id of the call the current thread serves, if any. */
    static final ThreadLocal<String> CALL = new ThreadLocal<>();

    private static final DateTimeFormatter STAMP =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    private final FileOutputStream fd;
    private final String level;
    private final ThreadLocal<ByteArrayOutputStream> partial =
            ThreadLocal.withInitial(() -> new ByteArrayOutputStream(256));

    CallOutput(FileOutputStream fd, String level) {
        this.fd = fd;
        this.level = level;
    }

    /** "TIMESTAMP\tREQUEST_ID\tLEVEL\t", the head of a call's line. */
    static String head(String requestId, String level) {
        return STAMP.format(java.time.Instant.now()) + '\t' + requestId + '\t' + level + '\t';
    }

    /** Writes a line (its bytes end with '\n') in one write. */
    static void emit(FileOutputStream fd, byte[] line) {
        try {
            fd.write(line);
        } catch (IOException ignored) {
            // A log nobody reads any more: the call goes on.
        }
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) {
        ByteArrayOutputStream p = partial.get();
        int start = off, end = off + len;
        for (int i = off; i < end; i++) {
            if (b[i] != '\n')
                continue;
            p.write(b, start, i - start);
            line(p);
            start = i + 1;
        }
        p.write(b, start, end - start);
    }

    private static CallOutput out, err;

    /** Makes System.out and System.err CallOutputs on these descriptors. */
    static void install(FileOutputStream outFd, FileOutputStream errFd) {
        out = new CallOutput(outFd, "INFO");
        err = new CallOutput(errFd, "ERROR");
        System.setOut(new PrintStream(out, false, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, false, StandardCharsets.UTF_8));
    }

    /** Ends the current thread's unfinished lines: a call's last words are its own. */
    static void endCall() {
        System.out.flush();
        System.err.flush();
        out.endLine();
        err.endLine();
    }

    private void endLine() {
        ByteArrayOutputStream p = partial.get();
        if (p.size() > 0)
            line(p);
    }

    private void line(ByteArrayOutputStream p) {
        String id = CALL.get();
        ByteArrayOutputStream line = new ByteArrayOutputStream(p.size() + 80);
        if (id != null)
            line.writeBytes(head(id, level).getBytes(StandardCharsets.UTF_8));
        line.writeBytes(p.toByteArray());
        line.write('\n');
        p.reset();
        emit(fd, line.toByteArray());
    }

    /**
     * The system properties, with com.amazonaws.xray.traceHeader the trace
     * of the current thread's call: calls side by side each see their own
     * (the X-Ray SDK reads it with System.getProperty).
     */
    static final class TraceProperties extends java.util.Properties {
        private static final long serialVersionUID = 1L;
        static final String TRACE_KEY = "com.amazonaws.xray.traceHeader";
        static final ThreadLocal<String> TRACE = new ThreadLocal<>();

        TraceProperties(java.util.Properties base) {
            super();
            putAll(base);
        }

        @Override
        public String getProperty(String key) {
            if (TRACE_KEY.equals(key))
                return TRACE.get();
            return super.getProperty(key);
        }
    }
}
