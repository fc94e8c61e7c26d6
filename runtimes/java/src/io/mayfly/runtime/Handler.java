package io.mayfly.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JavaType;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A function's handler, found from _HANDLER (`package.Class::method`, or
 * `package.Class` for a class implementing RequestHandler or
 * RequestStreamHandler), and how its event and result are mapped: the
 * event's JSON to the handler's parameter type and the result back to JSON
 * with Jackson, or the bytes as they are for a stream handler.
 */
final class Handler {
    /** A failure of the platform's side of a call (not the handler's code). */
    static final class Fault extends Exception {
        private static final long serialVersionUID = 1L;
        final String type;

        Fault(String type, String message, Throwable cause) {
            super(message, cause);
            this.type = type;
        }
    }

    /**
     * How Lambda's Java runtime maps POJOs: bean properties and public
     * fields, names matched without regard to case, unknown properties of
     * the event ignored, a single value accepted where a list is expected.
     */
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(MapperFeature.ACCEPT_CASE_INSENSITIVE_PROPERTIES)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.ACCEPT_SINGLE_VALUE_AS_ARRAY)
            .enable(DeserializationFeature.ACCEPT_EMPTY_STRING_AS_NULL_OBJECT)
            .disable(SerializationFeature.FAIL_ON_EMPTY_BEANS)
            .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS)
            .build();

    private static final byte[] NULL = {'n', 'u', 'l', 'l'};

    private enum Shape { STREAM, REQUEST_HANDLER, METHOD }

    private final Shape shape;
    private final Object instance;
    private final Method method;
    private final JavaType inputType; /* null: the method takes no event */
    private final boolean takesContext;
    private final boolean returnsVoid;

    private Handler(Shape shape, Object instance, Method method, JavaType inputType,
            boolean takesContext, boolean returnsVoid) {
        this.shape = shape;
        this.instance = instance;
        this.method = method;
        this.inputType = inputType;
        this.takesContext = takesContext;
        this.returnsVoid = returnsVoid;
    }

    /**
     * The function's class loader: /var/task (a zip's .class files), then
     * each jar of /var/task/lib, then the jars at the top of /var/task. Its
     * parent sees the JDK and the Lambda interfaces only: the runtime's own
     * classes and its Jackson stay out of the function's way, so a function
     * that bundles another Jackson (or its own copy of the interfaces'
     * library) gets its own.
     */
    static ClassLoader functionLoader(String taskRoot, ClassLoader runtimeLoader)
            throws MalformedURLException {
        List<URL> urls = new ArrayList<>();
        File root = new File(taskRoot);
        urls.add(root.toURI().toURL());
        for (File dir : new File[] {new File(root, "lib"), root}) {
            File[] jars = dir.listFiles((d, n) -> n.endsWith(".jar"));
            if (jars == null)
                continue;
            Arrays.sort(jars);
            for (File j : jars)
                urls.add(j.toURI().toURL());
        }
        return new URLClassLoader(urls.toArray(new URL[0]), new ApiOnlyLoader(runtimeLoader));
    }

    /** The JDK, plus the com.amazonaws.services.lambda.runtime interfaces. */
    private static final class ApiOnlyLoader extends ClassLoader {
        private static final String API = "com.amazonaws.services.lambda.runtime.";
        private final ClassLoader runtime;

        ApiOnlyLoader(ClassLoader runtime) {
            super(ClassLoader.getPlatformClassLoader());
            this.runtime = runtime;
        }

        @Override
        protected Class<?> findClass(String name) throws ClassNotFoundException {
            if (name.startsWith(API))
                return runtime.loadClass(name);
            throw new ClassNotFoundException(name);
        }
    }

    static Handler load(String spec, ClassLoader loader) throws Fault {
        String className = spec, methodName = null;
        int sep = spec.indexOf("::");
        if (sep >= 0) {
            className = spec.substring(0, sep);
            methodName = spec.substring(sep + 2);
        }
        if (className.isEmpty() || (methodName != null && methodName.isEmpty()))
            throw new Fault("java.lang.IllegalArgumentException",
                    "Invalid handler `" + spec + "`: use package.Class::method or package.Class",
                    null);
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException | NoClassDefFoundError e) {
            throw new Fault("java.lang.ClassNotFoundException", "Class not found: " + className, e);
        } catch (ExceptionInInitializerError e) {
            throw new Fault(e.getCause() == null ? e.getClass().getName()
                                                 : e.getCause().getClass().getName(),
                    "Error loading class " + className + ": " + e.getCause(), e.getCause());
        }

        boolean defaultMethod = methodName == null || methodName.equals("handleRequest");
        if (defaultMethod && RequestStreamHandler.class.isAssignableFrom(cls))
            return new Handler(Shape.STREAM, instantiate(cls), null, null, true, true);
        if (defaultMethod && RequestHandler.class.isAssignableFrom(cls)) {
            JavaType[] params = MAPPER.getTypeFactory().constructType(cls)
                    .findTypeParameters(RequestHandler.class);
            JavaType in = params.length == 2 ? params[0] : MAPPER.constructType(Object.class);
            prepare(in, params.length == 2 ? params[1] : null);
            return new Handler(Shape.REQUEST_HANDLER, instantiate(cls), null, in, true, false);
        }
        if (methodName == null)
            throw new Fault("java.lang.IllegalArgumentException", "Class " + className
                    + " does not implement RequestHandler or RequestStreamHandler:"
                    + " name a method with " + className + "::method", null);

        Method best = null;
        for (Method m : cls.getMethods()) {
            if (!m.getName().equals(methodName) || m.isBridge() || m.isSynthetic())
                continue;
            if (!usable(m))
                continue;
            if (best == null || rank(m) > rank(best))
                best = m;
        }
        if (best == null)
            throw new Fault("java.lang.NoSuchMethodException", "No public method named "
                    + methodName + " with appropriate method signature found on class "
                    + className, null);
        Object inst = Modifier.isStatic(best.getModifiers()) ? null : instantiate(cls);
        Class<?>[] p = best.getParameterTypes();
        boolean returnsVoid = best.getReturnType() == void.class;
        if (p.length >= 2 && p[0] == InputStream.class && p[1] == OutputStream.class)
            return new Handler(Shape.STREAM, inst, best, null, p.length == 3, true);
        boolean ctx = p.length > 0 && p[p.length - 1] == Context.class;
        int events = p.length - (ctx ? 1 : 0);
        JavaType in = events == 1 ? MAPPER.constructType(best.getGenericParameterTypes()[0]) : null;
        prepare(in, returnsVoid ? null : MAPPER.constructType(best.getGenericReturnType()));
        return new Handler(Shape.METHOD, inst, best, in, ctx, returnsVoid);
    }

    /**
     * Builds Jackson's deserializer of the event's type and serializer of
     * the result's now, in the instance's init, which runs with every CPU:
     * the calls, which run under the function's CPU share, find them in
     * the mapper's caches. Introspecting a class is most of a first call's
     * cost otherwise.
     */
    private static void prepare(JavaType in, JavaType out) {
        try {
            if (in != null && in.getRawClass() != InputStream.class
                    && in.getRawClass() != byte[].class)
                MAPPER.readerFor(in);
            if (out != null && out.getRawClass() != Object.class)
                MAPPER.writerFor(out);
        } catch (RuntimeException e) {
            // The call reports what is wrong with the type, as without this.
        }
    }

    /** (event), (event, Context), (Context), (), or the stream shapes. */
    private static boolean usable(Method m) {
        Class<?>[] p = m.getParameterTypes();
        if (p.length == 3)
            return p[0] == InputStream.class && p[1] == OutputStream.class && p[2] == Context.class;
        if (p.length == 2)
            return p[1] == Context.class
                    || (p[0] == InputStream.class && p[1] == OutputStream.class);
        return p.length <= 1;
    }

    /** More parameters first, as Lambda picks among overloads. */
    private static int rank(Method m) {
        return m.getParameterCount();
    }

    private static Object instantiate(Class<?> cls) throws Fault {
        try {
            Constructor<?> c = cls.getDeclaredConstructor();
            c.setAccessible(true);
            return c.newInstance();
        } catch (NoSuchMethodException e) {
            throw new Fault("java.lang.NoSuchMethodException", "Class " + cls.getName()
                    + " has no constructor without parameters", e);
        } catch (InvocationTargetException e) {
            Throwable t = e.getCause();
            throw new Fault(t.getClass().getName(), "An exception was thrown by the constructor"
                    + " of class " + cls.getName() + ": " + t, t);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new Fault(e.getClass().getName(), "Cannot instantiate class " + cls.getName()
                    + ": " + e, e);
        }
    }

    /**
     * Runs one call. Returns the result's bytes; throws Fault for a
     * mapping failure and the handler's own Throwable as it is.
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    byte[] invoke(byte[] event, Context context) throws Throwable {
        if (shape == Shape.STREAM) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            InputStream in = new ByteArrayInputStream(event);
            if (method == null)
                ((RequestStreamHandler) instance).handleRequest(in, out, context);
            else
                call(takesContext ? new Object[] {in, out, context} : new Object[] {in, out});
            return out.toByteArray();
        }
        Object input = null;
        if (inputType != null) {
            try {
                input = readEvent(event, inputType);
            } catch (IOException e) {
                throw new Fault("java.lang.RuntimeException",
                        "An error occurred during JSON parsing: " + e.getMessage(), e);
            }
        }
        Object result;
        if (shape == Shape.REQUEST_HANDLER) {
            result = ((RequestHandler) instance).handleRequest(input, context);
        } else {
            Object[] args;
            if (inputType != null)
                args = takesContext ? new Object[] {input, context} : new Object[] {input};
            else
                args = takesContext ? new Object[] {context} : new Object[0];
            result = call(args);
            if (returnsVoid)
                return NULL;
        }
        if (result == null)
            return NULL;
        try {
            return MAPPER.writeValueAsBytes(result);
        } catch (IOException e) {
            throw new Fault("java.lang.RuntimeException",
                    "An error occurred during JSON serialization of response: " + e.getMessage(),
                    e);
        }
    }

    private static Object readEvent(byte[] event, JavaType type) throws IOException {
        Class<?> raw = type.getRawClass();
        if (raw == InputStream.class)
            return new ByteArrayInputStream(event);
        if (raw == byte[].class)
            return event;
        if (event.length == 0)
            return null;
        return MAPPER.readValue(event, type);
    }

    private Object call(Object[] args) throws Throwable {
        try {
            return method.invoke(instance, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    /** The method the handler runs, for the stack traces' cut-off point. */
    static boolean isRuntimeFrame(StackTraceElement f) {
        String c = f.getClassName();
        return c.startsWith("io.mayfly.runtime.") || c.startsWith("jdk.internal.reflect.")
                || c.startsWith("java.lang.reflect.Method");
    }

}
