package io.mayfly.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * What a call runs, run once without a function: the class loader, the
 * handler shapes, Jackson's mapping of a POJO, a map, a string and a
 * number both ways, a context, a log record, an error object. A zygote
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
    }
}
