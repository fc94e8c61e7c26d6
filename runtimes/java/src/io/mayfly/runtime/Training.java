package io.mayfly.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * What a call runs, run once without a function: the class loader, the
 * handler shapes, Jackson's mapping of a POJO, a map, a string and a
 * number both ways, a context, a log record, an error object, a class
 * read from a jar through a function's class loader, and a Runtime API
 * exchange over a loopback connection. A zygote
 * runs it before it reports ready, so that a call finds these classes
 * loaded and linked; the build runs it (--train) to record them in the
 * class-data-sharing archive.
 */
public final class Training {
    private Training() {
    }

    /** A POJO event and result, as functions write them. */
    public static final class Event {
        private String name;
        private int count;
        private List<String> tags;

        public String getName() {
            return name;
        }

        public void setName(String name) {
            this.name = name;
        }

        public int getCount() {
            return count;
        }

        public void setCount(int count) {
            this.count = count;
        }

        public List<String> getTags() {
            return tags;
        }

        public void setTags(List<String> tags) {
            this.tags = tags;
        }
    }

    public static final class Pojo implements RequestHandler<Event, Event> {
        @Override
        public Event handleRequest(Event in, Context context) {
            context.getRemainingTimeInMillis();
            in.setCount(in.getCount() + 1);
            return in;
        }
    }

    public static final class Stream implements RequestStreamHandler {
        @Override
        public void handleRequest(InputStream in, OutputStream out, Context context)
                throws IOException {
            out.write(in.readAllBytes());
        }
    }

    public static final class Methods {
        public Map<String, Object> map(Map<String, Object> in, Context context) {
            return in;
        }

        public String string(String in) {
            return in;
        }

        public static int number(int in) {
            return in + 1;
        }

        public void nothing(Object in, Context context) {
            throw new IllegalStateException("trained");
        }
    }

    static void run() throws Throwable {
        ClassLoader here = Training.class.getClassLoader();
        Handler.functionLoader("/nonexistent-task-root", here);
        PrintStream sink = new PrintStream(new ByteArrayOutputStream(), true, "UTF-8");
        Log log = new Log(sink);
        log.configure(Map.of());
        CallContext.Function fn = new CallContext.Function(Map.of());
        Context ctx = new CallContext(fn, "training", System.currentTimeMillis() + 1000,
                "arn", CallContext.identity(Map.of("cognitoIdentityId", "x")),
                CallContext.clientContext(Map.of("client", Map.of(), "custom", Map.of())), log);
        String cls = Training.class.getName();
        byte[] event = "{\"name\":\"a\",\"count\":1,\"tags\":[\"x\"],\"other\":true}"
                .getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < 3; i++) {
            Handler.load(cls + "$Pojo", here).invoke(event, ctx);
            Handler.load(cls + "$Pojo::handleRequest", here).invoke(event, ctx);
            Handler.load(cls + "$Stream", here).invoke(event, ctx);
            Handler.load(cls + "$Methods::map", here).invoke(event, ctx);
            Handler.load(cls + "$Methods::string", here)
                    .invoke("\"s\"".getBytes(StandardCharsets.UTF_8), ctx);
            Handler.load(cls + "$Methods::number", here)
                    .invoke("41".getBytes(StandardCharsets.UTF_8), ctx);
            try {
                Handler.load(cls + "$Methods::nothing", here).invoke(event, ctx);
            } catch (IllegalStateException e) {
                Bootstrap.json(Bootstrap.errorObject(e, true));
            }
            try {
                Handler.load(cls + "$Missing", here);
            } catch (Handler.Fault e) {
                Bootstrap.json(Bootstrap.errorObject(e.type, e.getMessage(), e, false));
            }
            log.log("trained");
            Bootstrap.quoteId("a-b");
        }
        new RuntimeApi.Response(200, Map.of(), new byte[0]).header("x");
        jarClass(event, ctx);
        runtimeApi();
    }

    /**
     * A handler class read from a jar by a function's class loader, as a
     * function's are (the zip and jar readers, the verifier): this
     * runtime's own jar, whose folder serves as a task root. Best effort.
     */
    private static void jarClass(byte[] event, Context ctx) {
        try {
            File jar = new File(Training.class.getProtectionDomain().getCodeSource()
                    .getLocation().toURI());
            if (!jar.isFile())
                return;
            ClassLoader loader = Handler.functionLoader(jar.getParent(),
                    Training.class.getClassLoader());
            Handler.load(Training.class.getName() + "$Pojo", loader).invoke(event, ctx);
        } catch (Throwable t) {
            // Nothing trained; nothing else depends on it (an Error, too,
            // is the training's own and must not stop the runtime).
        }
    }

    /**
     * A GET /next and its answer with a peer of its own on 127.0.0.1, so
     * that the socket classes and the native networking library are loaded
     * before the function's connection needs them (otherwise about half a
     * zygote's specialisation). Best effort: without a loopback interface
     * the function's first connection only costs more.
     */
    private static void runtimeApi() {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            Thread peer = new Thread(() -> answer(server), "mayfly-training");
            peer.start();
            RuntimeApi api = new RuntimeApi("127.0.0.1:" + server.getLocalPort());
            try {
                RuntimeApi.Response next = api.next();
                api.post(RuntimeApi.PREFIX + "/invocation/"
                        + Bootstrap.quoteId(next.header("lambda-runtime-aws-request-id"))
                        + "/response", "{}".getBytes(StandardCharsets.UTF_8), null);
            } finally {
                api.close();
            }
            peer.join();
        } catch (IOException | InterruptedException | RuntimeException e) {
            // Nothing trained; nothing else depends on it.
        }
    }

    private static final byte[][] ANSWERS = {
        ("HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: training\r\n"
                + "Lambda-Runtime-Deadline-Ms: 0\r\nContent-Length: 2\r\n\r\n{}")
                .getBytes(StandardCharsets.US_ASCII),
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
                .getBytes(StandardCharsets.US_ASCII),
    };

    /** The peer: answers two requests, then closes (and so does the listener). */
    private static void answer(ServerSocket server) {
        try (server; Socket s = server.accept()) {
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            for (byte[] a : ANSWERS) {
                skipRequest(in);
                out.write(a);
                out.flush();
            }
        } catch (IOException e) {
            // The client sees the connection close and gives up.
        }
    }

    /** Reads one request: its head, then as many bytes as Content-Length says. */
    private static void skipRequest(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder();
        while (head.length() < 65536 && !head.toString().endsWith("\r\n\r\n")) {
            int c = in.read();
            if (c < 0)
                throw new IOException("closed");
            head.append((char) c);
        }
        String h = head.toString().toLowerCase(java.util.Locale.ROOT);
        int at = h.indexOf("content-length:");
        if (at >= 0) {
            int end = h.indexOf('\r', at);
            in.readNBytes(Integer.parseInt(h.substring(at + 15, end).trim()));
        }
    }
}
