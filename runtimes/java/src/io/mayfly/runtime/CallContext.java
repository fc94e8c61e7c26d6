package io.mayfly.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.util.Collections;
import java.util.Map;

/** The Context of one call: its headers and the function's environment. */
final class CallContext implements Context {
    /** What every call of the instance shares, read once from the environment. */
    static final class Function {
        final String name, version, logGroup, logStream;
        final int memoryMb;

        Function(Map<String, String> env) {
            name = env.getOrDefault("AWS_LAMBDA_FUNCTION_NAME", "");
            version = env.getOrDefault("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
            logGroup = env.getOrDefault("AWS_LAMBDA_LOG_GROUP_NAME", "");
            logStream = env.getOrDefault("AWS_LAMBDA_LOG_STREAM_NAME", "");
            int mb = 128;
            try {
                mb = Integer.parseInt(env.getOrDefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"));
            } catch (NumberFormatException ignored) {
                // Lambda's smallest size, as the platform's default.
            }
            memoryMb = mb;
        }
    }

    private final Function fn;
    private final String requestId, arn;
    private final long deadlineMs;
    private final CognitoIdentity identity;
    private final ClientContext clientContext;
    private final LambdaLogger logger;

    CallContext(Function fn, String requestId, long deadlineMs, String arn,
            CognitoIdentity identity, ClientContext clientContext, LambdaLogger logger) {
        this.fn = fn;
        this.requestId = requestId;
        this.deadlineMs = deadlineMs;
        this.arn = arn;
        this.identity = identity;
        this.clientContext = clientContext;
        this.logger = logger;
    }

    @Override
    public String getAwsRequestId() {
        return requestId;
    }

    @Override
    public String getLogGroupName() {
        return fn.logGroup;
    }

    @Override
    public String getLogStreamName() {
        return fn.logStream;
    }

    @Override
    public String getFunctionName() {
        return fn.name;
    }

    @Override
    public String getFunctionVersion() {
        return fn.version;
    }

    @Override
    public String getInvokedFunctionArn() {
        return arn;
    }

    @Override
    public CognitoIdentity getIdentity() {
        return identity;
    }

    @Override
    public ClientContext getClientContext() {
        return clientContext;
    }

    @Override
    public int getRemainingTimeInMillis() {
        long left = deadlineMs - System.currentTimeMillis();
        return left <= 0 ? 0 : (int) Math.min(left, Integer.MAX_VALUE);
    }

    @Override
    public int getMemoryLimitInMB() {
        return fn.memoryMb;
    }

    @Override
    public LambdaLogger getLogger() {
        return logger;
    }

    @Override
    public String toString() {
        return "Context{requestId=" + requestId + ", function=" + fn.name + "}";
    }

    /** The identity of Lambda-Runtime-Cognito-Identity, parsed by the caller. */
    static CognitoIdentity identity(Map<String, Object> m) {
        if (m == null)
            return null;
        String id = str(m.get("cognitoIdentityId")), pool = str(m.get("cognitoIdentityPoolId"));
        return new CognitoIdentity() {
            @Override
            public String getIdentityId() {
                return id;
            }

            @Override
            public String getIdentityPoolId() {
                return pool;
            }
        };
    }

    /** The client context of Lambda-Runtime-Client-Context, parsed by the caller. */
    @SuppressWarnings("unchecked")
    static ClientContext clientContext(Map<String, Object> m) {
        if (m == null)
            return null;
        Map<String, Object> c = m.get("client") instanceof Map ? (Map<String, Object>) m.get("client") : null;
        Map<String, String> custom = strings(m.get("custom")), env = strings(m.get("env"));
        Client client = c == null ? null : new Client() {
            @Override
            public String getInstallationId() {
                return str(c.get("installation_id"));
            }

            @Override
            public String getAppTitle() {
                return str(c.get("app_title"));
            }

            @Override
            public String getAppVersionName() {
                return str(c.get("app_version_name"));
            }

            @Override
            public String getAppVersionCode() {
                return str(c.get("app_version_code"));
            }

            @Override
            public String getAppPackageName() {
                return str(c.get("app_package_name"));
            }
        };
        return new ClientContext() {
            @Override
            public Client getClient() {
                return client;
            }

            @Override
            public Map<String, String> getCustom() {
                return custom;
            }

            @Override
            public Map<String, String> getEnvironment() {
                return env;
            }
        };
    }

    private static String str(Object o) {
        return o == null ? null : o.toString();
    }

    private static Map<String, String> strings(Object o) {
        if (!(o instanceof Map))
            return Collections.emptyMap();
        Map<String, String> out = new java.util.LinkedHashMap<>();
        for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet())
            out.put(String.valueOf(e.getKey()), str(e.getValue()));
        return Collections.unmodifiableMap(out);
    }
}
