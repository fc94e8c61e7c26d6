/* Execution: warm pools of sandboxed instances per function, the scheduler
 * that hands invocations to them, and the Lambda Runtime API each instance
 * talks to.
 *
 * An invocation walks: exec_invoke → an idle instance (most recently used
 * first), or a new one while the function is under max_concurrency, or the
 * function's bounded queue, or throttled → the instance's pending
 * `GET …/next` gets the event → `POST …/response` (or /error, a timeout, a
 * crash) completes it → the done callback. Event and result are opaque
 * bytes throughout. */
#ifndef MAYFLY_EXEC_EXEC_H
#define MAYFLY_EXEC_EXEC_H

#include "core/tenant.h"
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/id.h"
#include "http/router.h"
#include "registry/registry.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

typedef enum {
    INV_PENDING = 0,
    INV_SUCCESS,
    INV_ERROR,
    INV_TIMEOUT,
    INV_OOM,
    INV_THROTTLED,
} inv_status_t;

/* The record's name for a status: "success", "error", … */
const char *inv_status_name(inv_status_t s);

typedef struct invocation invocation_t;
typedef void (*invocation_done_cb)(invocation_t *inv, void *ud);

/* A caller that takes a call's answer as the function streams it
 * (Lambda's RESPONSE_STREAM: the runtime posts its response with
 * Lambda-Runtime-Function-Response-Mode: streaming and a chunked body).
 * Both are called with the call's done ud. A function that answers in
 * one piece calls neither: done then has the whole result, as for any
 * call. The call's end, and a failure in the middle of the stream (the
 * function's error in the trailers, a timeout, a crash, a stream past
 * max_stream_bytes), still come through done, with inv->streamed set. */
typedef struct exec_stream_sink {
    /* The stream begins: content_type is the runtime's (for Lambda's
     * HTTP integration, EXEC_PRELUDE_CONTENT_TYPE; see
     * exec_prelude_feed). Called once, before any on_data. */
    void (*on_head)(invocation_t *inv, void *ud, const char *content_type);
    /* The next bytes of the stream, as the runtime sent them. A sink whose
     * client is behind calls exec_stream_pause(inv, true) and, once the
     * client has caught up, exec_stream_pause(inv, false). */
    void (*on_data)(invocation_t *inv, void *ud, const char *data, size_t len);
} exec_stream_sink_t;

struct invocation {
    char request_id[ID_UUID_LEN + 1];
    char function[TENANT_QNAME_MAX + 1];
    int64_t version;
    int memory_mb;
    buf_t event;                 /* the event bytes, as received */
    /* The tenant id it runs for (Lambda's tenant isolation mode), "" for a
     * function without the mode: only an instance of that tenant id runs it. */
    char tenant_id[FN_TENANT_ID_MAX + 1];
    /* The access key whose request made the call, or "" (the record's). */
    char key_id[STORE_KEY_ID_MAX + 1];

    /* The outcome, filled before done is called. */
    inv_status_t status;
    buf_t result;                /* the response bytes, or the error JSON */
    char *error_type;            /* NULL on success */
    char *error_message;
    bool cold_start;
    /* Run by an instance the adaptive keep-alive started ahead of it (its
     * first call): not a cold start when the instance was ready. */
    bool prewarmed;
    double init_ms;              /* the instance's start, on a cold start */
    double sandbox_ms;           /* of which creating the sandbox */
    double duration_ms;          /* event handed over → answer */
    uint64_t billed_ms;          /* duration rounded up to 1 ms */
    uint64_t max_rss_kb;
    uint64_t cpu_ms;
    /* An event's attempt: how long the runtime waited, runnable, for a
     * CPU during it (< 0: not measured). The async queue's limit reads it. */
    double cpu_wait_ms;
    int64_t start_wall_ms;
    int attempts;
    char *egress_json;           /* its outbound connections (egress/egress.h), or NULL */
    uint64_t egress_bytes;       /* what they moved both ways (egress_box_call_end) */
    /* What its record keeps of event and result (the function's record
     * settings when it was accepted): 'f'ull, on 'e'rrors only, or 'o'ff;
     * at most payload_max bytes each; redact: the member names whose
     * values are never kept, NUL-separated, ending with an empty one. */
    char payloads;
    size_t payload_max;
    char *redact;
    char replay_of[ID_UUID_LEN + 1]; /* the record whose event it runs again, or "" */
    /* Its trace: the caller's W3C traceparent's, or one of its own. */
    uint8_t trace_id[16], span_id[8], trace_parent[8];
    bool trace_parent_set;
    char trigger[STORE_TRIGGER_MAX]; /* why it ran (exec_call_opts_t's) */
    bool event_attempt;          /* an attempt at an async event (opts.request_id given) */
    char caller_request_id[ID_UUID_LEN + 1]; /* the call whose function made it, or "" */
    int call_depth;              /* 0 from outside; the caller's + 1 from inside */
    uint64_t kv_ops;             /* KV operations its function made during it */
    /* Its answer as a stream: the caller's sink (NULL: the caller takes
     * the answer whole, and a stream is gathered up to max_result_bytes),
     * whether the function streamed, the stream's content type and the
     * bytes it has had. result keeps the stream's first bytes (what the
     * record keeps of it) for a caller with a sink. */
    const exec_stream_sink_t *sink;
    bool streamed;
    char *content_type;
    uint64_t stream_bytes;

    /* Plumbing. */
    invocation_done_cb done;
    void *ud;
    struct invocation *next;     /* in a function's queue */
    struct exec_instance *instance;
    struct exec_lane *lane;      /* of the instance, while it holds the call */
    uint64_t cpu_ns;             /* its share of the instance's CPU so far (exec__cpu_share) */
    uint64_t enqueued_ns;
    uint64_t queued_ns;          /* when it last joined its function's queue */
    bool held;                   /* it waited for a busy instance (CPU-aware scale-out) */
    uint64_t deadline_ns;        /* enqueued + the timeout: the deadline counts from acceptance */
    uint64_t delivered_ns;
    int requeues;                /* times it went back to the queue (at most once) */
    uint64_t log_bytes;          /* log bytes so far, bounded per invocation */
    bool log_truncated;
    bool no_record;
    bool copy;                   /* a call of a settings copy (exec_copy_define) */
};

typedef struct exec_config {
    const char *runtimes_dir;    /* host folder mounted at /var/runtime */
    const char *region;          /* AWS_REGION inside (default us-east-1) */
    unsigned idle_timeout_ms;    /* an idle instance stops after it (default 5 min) */
    unsigned max_queue;          /* waiting calls per function before 429 (100) */
    unsigned max_pids;           /* processes per instance (128) */
    size_t max_result_bytes;     /* sync result (6 MiB) */
    size_t max_log_bytes;        /* log bytes per invocation (1 MiB) */
    /* The sum of memory_mb over every running instance may not pass this:
     * a new instance starts only while it fits (0: no bound). */
    uint64_t memory_budget_mb;
    /* Egress (docs/egress.md): extra name → address entries the gateway's
     * resolver answers from before the host's (--egress-hosts; may be
     * NULL, not owned), and the open connections one instance may hold
     * through the gateway (--egress-max-connections). */
    const struct egress_hosts *egress_hosts;
    unsigned egress_max_connections;
    bool egress_disabled;        /* --disable-egress: no gateway at all */
    bool egress_no_splice;       /* --egress-splice off */
    struct obs_otlp *otlp;       /* --otlp-endpoint: spans of every call, or NULL */
    /* A streamed answer's bound (--max-stream-mb; 0: 200 MiB, Lambda's). */
    size_t max_stream_bytes;
    /* --keep-warm adaptive: the policy of functions without keep_warm
     * (docs/keep-alive.md); false: fixed. The server's default is
     * adaptive. */
    bool keep_warm_adaptive;
    /* The longest adaptive keep-alive window (--keep-alive-max-s; 0: the
     * policy's own bound). --idle-timeout is only the fixed policy's. */
    uint64_t keep_alive_max_ms;
    /* Instances starting at once, of every function (--max-starting; 0:
     * twice the CPUs the server may use, at least 2). A start past it
     * waits for one under way to finish: runtimes started all at once on
     * too few CPUs each take longer than their init limit. */
    unsigned max_starting;
    /* --scale-out eager: a call that finds no instance free always starts
     * one; false (cpu-aware, the default): while every CPU is busy a
     * short call waits a moment for a busy instance instead (busy.c). */
    bool scale_out_eager;
    /* The share of the CPUs the server may use, in percent, from which
     * cpu-aware scale-out counts them all busy (--busy-cpu-percent; 0:
     * 80). */
    unsigned busy_cpu_percent;
} exec_config_t;

#define EXEC_CONFIG_DEFAULT { NULL, "us-east-1", 300000, 100, 128, 6u << 20, 1u << 20, 0, NULL, 256, false }

typedef struct exec exec_t;
struct obs_records;
struct obs_logs;

exec_t *exec_new(uv_loop_t *loop, sandbox_system_t *sandboxes, registry_t *registry,
                 struct obs_records *records, struct obs_logs *logs, const exec_config_t *cfg);

/* An address the server listens on, which functions' egress must not
 * reach (egress_add_own_address). */
struct sockaddr;
void exec_add_own_address(exec_t *ex, const struct sockaddr *sa);

/* Where the shared volume name is mounted on the host, for the sandboxes
 * of functions that mount it (docs/state.md): fills path (len bytes) and
 * returns 0, or fails with a message saying why it cannot be used. The
 * layer that keeps volumes provides it; without one, a function with
 * volumes fails to start. */
typedef int (*exec_volume_path_fn)(void *ud, const char *name, char *path, size_t len,
                                   mf_error_t *err);
void exec_set_volume_resolver(exec_t *ex, exec_volume_path_fn fn, void *ud);

/* Each recorded call's record goes to observe(ud, rec) too as it ends
 * (metering: meter_observe); NULL: none. */
void exec_set_meter(exec_t *ex, void (*observe)(void *ud, const store_record_t *rec), void *ud);
/* A record that a caller writes itself (an async event's, no_record) goes
 * to the meter's observe through this, when the call is over. */
void exec_meter_record(exec_t *ex, const store_record_t *rec);
/* A call that has no record (a tuning run's) is metered all the same:
 * the meter's observe, and its usage in the store. */
void exec_meter_unrecorded(exec_t *ex, const store_record_t *rec);
/* Asked before a call starts, unless it is an async event's attempt
 * (whose queue asks its own question: invoke/async.h's hold): 0 lets it
 * start, a negative errno refuses it with err (-EDQUOT: a budget is
 * spent, meter/budget.h). It must answer from memory. NULL: none. */
typedef int (*exec_admit_fn)(void *ud, const char *function, mf_error_t *err);
void exec_set_admit(exec_t *ex, exec_admit_fn admit, void *ud);

/* Adaptive keep-alive (docs/keep-alive.md). The policy that learns lives
 * above exec (watch/keepalive.h); exec tells it when calls come and asks
 * it, after each call of a function whose policy is adaptive, how long
 * the instance stays warm and whether it stops and is started again
 * ahead of the next call. */
typedef struct exec_keep_warm {
    const char *policy;          /* "adaptive" or "fixed" */
    uint64_t keep_alive_ms;      /* an idle instance waits this long */
    uint64_t prewarm_ms;         /* 0, or: stop after a call, start again this long after it */
    uint32_t samples;            /* idle times the windows stand on */
    const char *basis;           /* "histogram", "fallback" or "fixed" */
} exec_keep_warm_t;

typedef struct exec_keep_warm_policy {
    /* A call of function arrived idle_ms after its previous call ended. */
    void (*observe)(void *ud, const char *function, uint64_t idle_ms);
    /* Fills keep_alive_ms, prewarm_ms, samples and basis for function now. */
    void (*decide)(void *ud, const char *function, exec_keep_warm_t *out);
    /* The function was deleted: its history goes. */
    void (*forget)(void *ud, const char *function);
} exec_keep_warm_policy_t;

/* Without a policy every function keeps the fixed --idle-timeout. */
void exec_set_keep_warm(exec_t *ex, const exec_keep_warm_policy_t *policy, void *ud);
/* The windows function fn's instances get now (GET /v1/functions/{name}). */
void exec_keep_warm(exec_t *ex, const fn_t *fn, exec_keep_warm_t *out);

/* Keeps count pre-started python3 and nodejs runtimes (zygotes) ready in
 * the sandbox pool, so their functions' cold starts skip the interpreter's
 * start. */
int exec_start_zygotes(exec_t *ex, unsigned count, mf_error_t *err);
/* The same for the Java runtimes the host has a JDK for (java17, java21):
 * count JVMs of each, started ahead with the runtime's and Jackson's
 * classes loaded, each serving a function of up to JVM_ZYGOTE_MAX_MB.
 * A runtime's JVMs start when the server first sees a function of it:
 * now for those stored, else at its deploy or its first call. */
int exec_start_java_zygotes(exec_t *ex, unsigned count, mf_error_t *err);

/* Starts an invocation of function name with event (whose memory it takes
 * over). done(inv, ud) is called exactly once when it ends, possibly before
 * exec_invoke returns (e.g. throttled); the callback owns inv then and
 * frees it with invocation_free. Returns -ENOENT (no such function),
 * -EDQUOT (refused by exec_set_admit's check: a budget is spent) or
 * -EINVAL (a bad name) without calling done. */
int exec_invoke(exec_t *ex, const char *name, buf_t *event, invocation_done_cb done, void *ud,
                mf_error_t *err);

/* How an asynchronous event's attempt differs from a synchronous call. */
typedef struct exec_call_opts {
    /* The call's id, or NULL for a new one: an async event's, kept
     * across its attempts (attempt 1, 2, …), or one the caller has shown
     * already (a function URL's event carries it; attempt 0). */
    const char *request_id;
    int attempt;
    bool no_record;              /* the caller writes the record */
    /* Start now on an idle instance or a new one, or fail with -EAGAIN
     * (done not called): never wait in the function's queue, where
     * synchronous callers wait, and never throttle. */
    bool no_wait;
    const char *replay_of;       /* the record whose event this runs again, or NULL */
    /* The caller's W3C traceparent header, or NULL; an async event's
     * attempts get exec_event_traceparent's. */
    const char *traceparent;
    /* Why it runs, as its record says: invoke (NULL), url, replay,
     * destination, schedule:NAME, topic:NAME or function:CALLER. */
    const char *trigger;
    const char *caller_request_id; /* made from inside the call with this id, or NULL */
    int call_depth;              /* how many calls between functions led to it */
    /* Takes a streamed answer as it comes (done's ud is its ud), or NULL. */
    const exec_stream_sink_t *stream;
    /* The call's tenant id (X-Amz-Tenant-Id), or NULL: required by a
     * function with tenant isolation and refused by one without (-EINVAL,
     * done not called; fn_tenant_id_for). */
    const char *tenant_id;
    /* Where the tenant id came from, for that error's message (NULL:
     * X-Amz-Tenant-Id). */
    const char *tenant_field;
    /* The access key whose request makes the call, or NULL (kept in the
     * record: an invoker reads its own calls' records only). */
    const char *key_id;
} exec_call_opts_t;

/* The longest chain of calls functions make of each other (a function
 * calling itself, or two calling each other, sync or async): the call
 * that would go past it is refused (508), as Lambda stops recursive
 * loops. */
#define EXEC_MAX_CALL_DEPTH 16

/* True when s is a trigger as records say it, or a kind alone. */
bool exec_trigger_valid(const char *s);
/* OpenTelemetry's faas.trigger for a call's trigger: timer for a
 * schedule, pubsub for a topic or a destination, other for the rest of an
 * async event's attempts (event_attempt), else http. */
const char *exec_trigger_faas(const char *trigger, bool event_attempt);

int exec_invoke_opts(exec_t *ex, const char *name, buf_t *event, const exec_call_opts_t *opts,
                     invocation_done_cb done, void *ud, mf_error_t *err);

/* Calls a handler takes instead of an instance: a durable function's
 * start an execution (durable/durable.h), whichever way they came (an
 * async event, a schedule, a topic, a URL, another function). handoff
 * says whether it takes inv; when it does, it ends the call later with
 * exec_handoff_done. Called for every call that would otherwise queue. */
typedef bool (*exec_handoff_fn)(void *ud, invocation_t *inv);
void exec_set_handoff(exec_t *ex, exec_handoff_fn fn, void *ud);
/* Ends a handed-off call as if an instance had answered: status, result
 * (taken; NULL for none, or the error document for an error_type), then
 * its record (unless the caller keeps it) and its done callback. */
void exec_handoff_done(exec_t *ex, invocation_t *inv, inv_status_t status, buf_t *result,
                       const char *error_type, const char *error_message);

/* Whether a no_wait call of name would surely get EAGAIN now: the function
 * is paused (max_concurrency 0), has calls waiting, or runs as many
 * instances as it may with none idle. False when unsure (the call may
 * still be refused, e.g. for memory): a cheap test before preparing one. */
bool exec_at_limit(exec_t *ex, const char *name);
/* Instances (sandboxes) alive now, starting and stopping ones included. */
uint64_t exec_instances(const exec_t *ex);

/* The second door (DESIGN.md §3): each instance's own listener at
 * 127.0.0.1:9001 serves, beside the Runtime API, the routes the API layer
 * adds to this router (/mayfly/v1/…). Add them before the loop runs;
 * their patterns must outlive exec. */
http_router_t *exec_inside_router(exec_t *ex);

/* Who sent a request that arrived on an instance's listener: its function
 * and the call it is running. Valid only during the callback it was
 * taken in (the instance may stop afterwards): copy what is kept. */
typedef struct exec_caller {
    const fn_t *fn;              /* the function's settings (its permissions) */
    const char *instance_id;
    /* The call being run, or NULL between calls. */
    const char *request_id;
    /* Its W3C traceparent (the call's span), "" between calls. */
    char traceparent[56];
    uint64_t *kv_ops;            /* the call's KV count, or NULL between calls */
    int call_depth;              /* the call's (0 between calls) */
} exec_caller_t;

/* 0 and *out filled, or -ENOENT when req did not come through an
 * instance's listener. */
int exec_caller(const http_request_t *req, exec_caller_t *out);

/* The trace of an async event (docs/observability.md): one consumer span
 * from its acceptance to its outcome, whose children are its attempts.
 * exec_event_traceparent writes into out (56 bytes) the traceparent its
 * attempts are started with: the span's trace id (caller's, the W3C
 * traceparent the event was accepted with, or one derived from
 * request_id) and its span id (derived from request_id, so the same
 * after a restart). */
void exec_event_traceparent(const char *request_id, const char *caller, char out[56]);

typedef struct exec_event_trace {
    const char *function, *request_id;
    const char *traceparent;     /* the caller's, or NULL */
    const char *replay_of;       /* or NULL */
    const char *trigger;         /* exec_call_opts_t's, "" or NULL for invoke */
    int64_t accepted_ms, ended_ms; /* wall clock */
    int attempts;
    const char *outcome;         /* Success | RetriesExhausted | EventAgeExceeded */
    const char *error_type, *error_message; /* of the last attempt, or NULL */
} exec_event_trace_t;

/* Exports the event's span, when --otlp-endpoint is set. */
void exec_trace_event(exec_t *ex, const exec_event_trace_t *ev);

/* cb(ud, function) is called when a function could start a call at once
 * and no synchronous caller is waiting for it: the async queue's cue to
 * hand it an event. */
void exec_set_capacity_cb(exec_t *ex, void (*cb)(void *ud, const char *function), void *ud);

/* Stops (paused) or goes on with reading inv's streamed answer from its
 * runtime: while it is stopped the runtime's writes back up in its
 * socket, so a slow client never makes the server hold the stream. Only
 * between on_head and done; a no-op otherwise. */
void exec_stream_pause(invocation_t *inv, bool paused);

/* Lambda's HTTP integration (function URLs in RESPONSE_STREAM mode): a
 * stream of this content type begins with a JSON prelude
 * {"statusCode", "headers", "cookies"}, then eight NUL bytes, then the
 * body. */
#define EXEC_PRELUDE_CONTENT_TYPE "application/vnd.awslambda.http-integration-response"
#define EXEC_PRELUDE_MAX (64 * 1024)

typedef struct exec_prelude {
    buf_t text;                  /* the prelude so far */
    unsigned nuls;               /* NUL bytes of the delimiter seen */
    bool done;
    /* Once done: what it said (statusCode 200, no headers and no cookies
     * when it left them out). headers and cookies are "Name: value\r\n"
     * lines ("Set-Cookie: …" for each cookie), checked: no CR, LF or NUL
     * in a name or value, names are tokens. */
    int status;
    buf_t header_lines;
} exec_prelude_t;

void exec_prelude_init(exec_prelude_t *p);
void exec_prelude_release(exec_prelude_t *p);
/* Feeds the stream's bytes to the prelude: returns how many of them were
 * the prelude's (the rest are the body's; all of them while it is not
 * done), or -EINVAL with err saying what is wrong (not JSON, not an
 * object, a bad statusCode, a bad header) or -EFBIG past
 * EXEC_PRELUDE_MAX bytes. */
long exec_prelude_feed(exec_prelude_t *p, const char *data, size_t len, mf_error_t *err);
void invocation_free(invocation_t *inv);
/* Fills rec with inv's outcome; its strings are inv's, not copies. */
void invocation_record(const invocation_t *inv, store_record_t *rec);

/* How a function's instances are starting, for its JSON: a function whose
 * runtime keeps dying (or reporting an init error) before it asks for work
 * is in back-off, and its calls fail at once with that error meanwhile. */
typedef struct exec_start_health {
    unsigned consecutive_failures; /* 0: starting normally; the rest is then unset */
    int64_t retry_after_ms;        /* wall clock: the next start is tried from then on */
    int64_t failed_at_ms;          /* wall clock of the last failure */
    const char *error_type;        /* the last failure, e.g. "Runtime.ExitError"; exec's */
    const char *error_reason;      /* memory, valid until exec is next called */
} exec_start_health_t;

void exec_start_health(exec_t *ex, const char *name, exec_start_health_t *out);

/* A copy of a function's settings, run apart from the function (the
 * tuner, watch/tune.h): its calls go to exec_invoke_opts with key as the
 * name (a name no function has; calls must be no_record), in instances
 * of its own, and exec_function_removed(ex, key) stops them. Inside,
 * its instances are fn's (fn->name, its permissions); its calls count
 * in no metric, and a budget admits them as fn's. -EEXIST when key is
 * in use, -ESHUTDOWN while the server stops. */
int exec_copy_define(exec_t *ex, const char *key, const fn_t *fn, mf_error_t *err);

/* A function's code or settings changed: new calls get the new version and
 * instances of the old one stop once they are idle. */
void exec_function_changed(exec_t *ex, const fn_t *fn);
/* A function was deleted: its instances stop once idle; queued calls fail. */
void exec_function_removed(exec_t *ex, const char *name);

/* Stops every instance (their processes, mounts and cgroups go with them)
 * and calls done(ud) once all are gone. Queued invocations fail. */
void exec_shutdown(exec_t *ex, void (*done)(void *ud), void *ud);
void exec_free(exec_t *ex);

#endif
