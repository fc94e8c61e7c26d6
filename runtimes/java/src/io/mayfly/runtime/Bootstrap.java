package io.mayfly.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.fasterxml.jackson.core.type.TypeReference;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * mayfly's Java runtime: the sandbox's first process for the java17 and
 * java21 runtimes,
 *
 *   java [flags] -cp /var/runtime/java/… io.mayfly.runtime.Bootstrap
 *
 * with the Lambda environment (_HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_*).
 * It loads the function's classes, then asks the Runtime API at
 * AWS_LAMBDA_RUNTIME_API for events and answers each one, as Lambda's Java
 * runtime does: errors as {"errorMessage","errorType","stackTrace"} with
 * the Java stack trace, a handler that cannot be loaded through
 * /runtime/init/error.
 *
 * Started as a zygote (MAYFLY_ZYGOTE_FD set), it first loads and runs
 * everything a call needs (Jackson included) without a function, says so
 * on that descriptor and waits there for its function's environment; the
 * function's code is at /var/task when it arrives. With --train it does
 * the same warm-up and exits: the build runs it so to record the classes
 * of a class-data-sharing archive.
 */
public final class Bootstrap {
    private static final String PREFIX = RuntimeApi.PREFIX;
    private static final String MAX_ENV = "1048576";

    private Bootstrap() {
    }

    public static void main(String[] args) throws Throwable {
        if (args.length > 0 && args[0].equals("--train")) {
            Training.run();
            return;
        }
        Map<String, String> env = System.getenv();
        String zygoteFd = env.get("MAYFLY_ZYGOTE_FD");
        if (zygoteFd != null) {
            Training.run();
            env = become(Integer.parseInt(zygoteFd));
        }
        run(env);
    }

    /**
     * Zygote mode: say on fd that the JVM is ready, then wait there for the
     * function's environment ("K=V" strings, NUL-separated, one message)
     * and make it the process's: System.getenv() shows it from then on.
     */
    private static Map<String, String> become(int fd) throws Exception {
        FileDescriptor d = new FileDescriptor();
        Field f = FileDescriptor.class.getDeclaredField("fd");
        f.setAccessible(true);
        f.setInt(d, fd);
        FileOutputStream out = new FileOutputStream(d);
        out.write('r');
        byte[] buf = new byte[Integer.parseInt(MAX_ENV)];
        int n = new FileInputStream(d).read(buf);
        if (n <= 0)
            System.exit(1); /* the sandbox was let go before it was used */
        out.close();
        Map<String, String> env = new LinkedHashMap<>();
        int start = 0;
        for (int i = 0; i <= n; i++) {
            if (i < n && buf[i] != 0)
                continue;
            String item = new String(buf, start, i - start, StandardCharsets.UTF_8);
            int eq = item.indexOf('=');
            if (eq > 0)
                env.put(item.substring(0, eq), item.substring(eq + 1));
            start = i + 1;
        }
        setEnvironment(env);
        return System.getenv();
    }

    /**
     * Replaces what System.getenv() answers. The JVM read its environment
     * when it started, before the function was known; its map is private
     * to java.lang.ProcessEnvironment, which the runtime's command line
     * opens to it (--add-opens).
     */
    @SuppressWarnings("unchecked")
    private static void setEnvironment(Map<String, String> env) throws Exception {
        Class<?> pe = Class.forName("java.lang.ProcessEnvironment");
        Field uf = pe.getDeclaredField("theUnmodifiableEnvironment");
        uf.setAccessible(true);
        Object unmodifiable = uf.get(null);
        Field mf = unmodifiable.getClass().getDeclaredField("m");
        mf.setAccessible(true);
        Map<String, String> m = (Map<String, String>) mf.get(unmodifiable);
        m.clear();
        m.putAll(env);
    }

    private static void run(Map<String, String> env) {
        PrintStream stdout = System.out;
        Log log = new Log(stdout);
        log.configure(env);
        String address = env.getOrDefault("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        String taskRoot = env.getOrDefault("LAMBDA_TASK_ROOT", "/var/task");
        String spec = env.getOrDefault("_HANDLER", "");
        CallContext.Function fn = new CallContext.Function(env);

        RuntimeApi api;
        try {
            api = new RuntimeApi(address);
        } catch (IOException e) {
            System.err.println("mayfly runtime: " + e.getMessage());
            System.exit(1);
            return;
        }

        Handler handler;
        try {
            ClassLoader loader = Handler.functionLoader(taskRoot, Bootstrap.class.getClassLoader());
            Thread.currentThread().setContextClassLoader(loader);
            handler = Handler.load(spec, loader);
        } catch (Handler.Fault e) {
            initError(api, log, errorObject(e.type, e.getMessage(), e.getCause(), false));
            return;
        } catch (Throwable t) {
            initError(api, log, errorObject(t, false));
            return;
        }

        int n = maxConcurrency(env);
        if (n == 1) {
            serve(api, handler, fn, log, false);
            return;
        }
        serveConcurrently(api, address, handler, fn, log, n);
    }

    /** AWS_LAMBDA_MAX_CONCURRENCY: 1 when absent or not a number from 1 on. */
    private static int maxConcurrency(Map<String, String> env) {
        try {
            int n = Integer.parseInt(env.getOrDefault("AWS_LAMBDA_MAX_CONCURRENCY", "1"));
            return n >= 1 && n <= 100000 ? n : 1;
        } catch (NumberFormatException e) {
            return 1;
        }
    }

    /**
     * With AWS_LAMBDA_MAX_CONCURRENCY=N above 1: N threads each serve one
     * call at a time on a connection of their own (the first reuses the
     * connection that loaded the handler), sharing the handler, which must
     * then be thread-safe, as on Lambda's managed instances. Each call has
     * its own Context; System.out, System.err and the LambdaLogger name
     * the call of the thread that writes (CallOutput), and so does the
     * trace header's system property.
     */
    private static void serveConcurrently(RuntimeApi first, String address, Handler handler,
            CallContext.Function fn, Log log, int n) {
        System.out.flush();
        System.err.flush();
        FileOutputStream outFd = new FileOutputStream(FileDescriptor.out);
        FileOutputStream errFd = new FileOutputStream(FileDescriptor.err);
        CallOutput.install(outFd, errFd);
        log.concurrent(outFd);
        System.setProperties(new CallOutput.TraceProperties(System.getProperties()));
        ClassLoader loader = Thread.currentThread().getContextClassLoader();
        Thread[] threads = new Thread[n];
        for (int i = 0; i < n; i++) {
            RuntimeApi api = first;
            if (i > 0) {
                try {
                    api = new RuntimeApi(address);
                } catch (IOException e) {
                    System.err.println("mayfly runtime: " + e.getMessage());
                    System.exit(1);
                    return;
                }
            }
            RuntimeApi mine = api;
            threads[i] = new Thread(() -> serve(mine, handler, fn, log, true),
                    "mayfly-call-" + (i + 1));
            threads[i].setContextClassLoader(loader);
            threads[i].start();
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        System.exit(1);
    }

    /** One loop: asks for a call, runs it, answers it; until the Runtime API fails. */
    private static void serve(RuntimeApi api, Handler handler, CallContext.Function fn, Log log,
            boolean concurrent) {
        for (;;) {
            RuntimeApi.Response next;
            try {
                next = api.next();
            } catch (IOException e) {
                System.err.println("mayfly runtime: waiting for the next event failed: "
                        + e.getMessage());
                System.exit(1);
                return;
            }
            if (next.status != 200) {
                System.err.println("mayfly runtime: next event: HTTP " + next.status + ": "
                        + new String(next.body, StandardCharsets.UTF_8));
                System.exit(1);
            }
            String requestId = next.header("lambda-runtime-aws-request-id");
            if (requestId == null)
                requestId = "";
            String trace = next.header("lambda-runtime-trace-id");
            if (concurrent) {
                CallOutput.CALL.set(requestId);
                CallOutput.TraceProperties.TRACE.set(trace);
            } else {
                log.requestId = requestId;
                if (trace != null)
                    System.setProperty("com.amazonaws.xray.traceHeader", trace);
                else
                    System.clearProperty("com.amazonaws.xray.traceHeader");
            }
            String base = PREFIX + "/invocation/" + quoteId(requestId);

            Map<String, Object> error = null;
            byte[] result = null;
            boolean fatal = false;
            CallContext ctx = null;
            try {
                ctx = context(fn, requestId, next, log);
                result = handler.invoke(next.body, ctx);
            } catch (Handler.Fault e) {
                error = errorObject(e.type, e.getMessage(), e.getCause(), true);
            } catch (Throwable t) {
                error = errorObject(t, true);
                fatal = t instanceof OutOfMemoryError;
            }
            System.out.flush();
            System.err.flush();
            /* Before the answer: once answered, the call is over and its
             * unfinished last line would name a call no longer running. */
            if (concurrent)
                CallOutput.endCall();
            try {
                RuntimeApi.Response r;
                if (error == null) {
                    r = api.post(base + "/response", result, null);
                } else {
                    logError(log, error);
                    r = api.post(base + "/error", json(error), "Lambda-Runtime-Function-Error-Type: "
                            + headerSafe((String) error.get("errorType")) + "\r\n");
                }
                /* With many calls at once the platform fails a call at its
                 * deadline and goes on with the instance: the late answer's
                 * refusal is expected. */
                boolean late = concurrent && r.status >= 400 && r.status < 500 && ctx != null
                        && ctx.getRemainingTimeInMillis() == 0;
                if (r.status >= 300 && !late)
                    System.err.println("mayfly runtime: the answer for " + requestId
                            + " got HTTP " + r.status + ": "
                            + new String(r.body, StandardCharsets.UTF_8));
            } catch (IOException e) {
                System.err.println("mayfly runtime: reporting " + requestId + " failed: "
                        + e.getMessage());
                System.exit(1);
            }
            if (concurrent) {
                CallOutput.endCall(); /* what the answer's report printed */
                CallOutput.CALL.remove();
                CallOutput.TraceProperties.TRACE.remove();
            }
            if (fatal)
                System.exit(1); /* a JVM out of memory is not to be trusted again */
        }
    }

    private static CallContext context(CallContext.Function fn, String requestId,
            RuntimeApi.Response next, Log log) throws Handler.Fault {
        long deadline = 0;
        String d = next.header("lambda-runtime-deadline-ms");
        if (d != null) {
            try {
                deadline = Long.parseLong(d);
            } catch (NumberFormatException ignored) {
                // Left at 0: no time left, rather than a made-up deadline.
            }
        }
        Map<String, Object> identity = jsonHeader(next, "lambda-runtime-cognito-identity");
        Map<String, Object> client = jsonHeader(next, "lambda-runtime-client-context");
        return new CallContext(fn, requestId, deadline,
                next.header("lambda-runtime-invoked-function-arn"),
                CallContext.identity(identity), CallContext.clientContext(client), log);
    }

    private static Map<String, Object> jsonHeader(RuntimeApi.Response next, String name)
            throws Handler.Fault {
        String v = next.header(name);
        if (v == null || v.isEmpty())
            return null;
        try {
            return Handler.MAPPER.readValue(v, new TypeReference<Map<String, Object>>() {});
        } catch (IOException e) {
            throw new Handler.Fault("java.lang.RuntimeException",
                    "Cannot parse the " + name + " header: " + e.getMessage(), e);
        }
    }

    private static void initError(RuntimeApi api, Log log, Map<String, Object> error) {
        System.out.flush();
        logError(log, error);
        try {
            RuntimeApi.Response r = api.post(PREFIX + "/init/error", json(error),
                    "Lambda-Runtime-Function-Error-Type: "
                            + headerSafe((String) error.get("errorType")) + "\r\n");
            if (r.status >= 300)
                System.err.println("mayfly runtime: /init/error got HTTP " + r.status);
        } catch (IOException e) {
            System.err.println("mayfly runtime: cannot report the init error: " + e.getMessage());
        }
        System.exit(1);
    }

    /** Lambda's error object of a throwable, with its cause's. */
    static Map<String, Object> errorObject(Throwable t, boolean cut) {
        return errorObject(t.getClass().getName(), t.getMessage(), t, cut, 0);
    }

    static Map<String, Object> errorObject(String type, String message, Throwable t, boolean cut) {
        return errorObject(type, message, t, cut, 0);
    }

    private static Map<String, Object> errorObject(String type, String message, Throwable t,
            boolean cut, int depth) {
        Map<String, Object> err = new LinkedHashMap<>();
        err.put("errorMessage", message == null ? "" : message);
        err.put("errorType", type);
        List<Object> frames = new ArrayList<>();
        if (t != null) {
            for (StackTraceElement f : t.getStackTrace()) {
                /* The frames below the handler are the runtime's own. */
                if (cut && Handler.isRuntimeFrame(f))
                    break;
                frames.add(f.toString());
            }
        }
        err.put("stackTrace", frames);
        Throwable cause = t == null ? null : t.getCause();
        if (cause != null && cause != t && depth < 8)
            err.put("cause", errorObject(cause.getClass().getName(), cause.getMessage(), cause,
                    cut, depth + 1));
        return err;
    }

    /** The error as Java prints a stack trace, as one log record. */
    @SuppressWarnings("unchecked")
    private static void logError(Log log, Map<String, Object> error) {
        StringBuilder sb = new StringBuilder();
        for (Map<String, Object> e = error; e != null; e = (Map<String, Object>) e.get("cause")) {
            if (e != error)
                sb.append("\nCaused by: ");
            sb.append(e.get("errorType"));
            String msg = (String) e.get("errorMessage");
            if (msg != null && !msg.isEmpty())
                sb.append(": ").append(msg);
            for (Object f : (List<Object>) e.get("stackTrace"))
                sb.append("\n\tat ").append(f);
        }
        log.write(sb.toString(), com.amazonaws.services.lambda.runtime.logging.LogLevel.ERROR);
    }

    static byte[] json(Map<String, Object> m) {
        StringBuilder sb = new StringBuilder(256);
        Json.write(sb, m);
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static String headerSafe(String v) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; v != null && i < v.length() && i < 128; i++) {
            char c = v.charAt(i);
            sb.append(c > ' ' && c < 0x7f ? c : '_');
        }
        return sb.length() == 0 ? "Unknown" : sb.toString();
    }

    /** Request ids go into a URL path: unreserved characters as they are. */
    static String quoteId(String id) {
        StringBuilder sb = new StringBuilder(id.length());
        for (byte b : id.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~')
                sb.append(c);
            else
                sb.append(String.format("%%%02X", b & 0xff));
        }
        return sb.toString();
    }

}
