/* What exec.c, instance.c and runtime_api.c share. Not for other modules. */
#ifndef MAYFLY_EXEC_INTERNAL_H
#define MAYFLY_EXEC_INTERNAL_H

#include "core/map.h"
#include "egress/egress.h"
#include "exec/exec.h"
#include "http/server.h"
#include "obs/logs.h"
#include "obs/metrics.h"
#include "obs/records.h"

typedef enum {
    INST_STARTING, /* spawned; its runtime has not asked for work yet */
    INST_IDLE,     /* waiting in GET /next, on the pool's idle stack */
    INST_BUSY,     /* has an invocation, or is between an answer and its next GET */
    INST_STOPPING, /* killed; waiting for its processes and handles to go */
} exec_inst_state_t;

typedef struct exec_pool exec_pool_t;
typedef struct exec_instance exec_instance_t;

/* One call an instance serves at once. An instance has its function's
 * instance_concurrency lanes: 1 (Lambda's one call per instance) or more,
 * each its own call, answer and stream, while the polls for work are the
 * instance's (any poll takes any lane's call). */
typedef struct exec_lane {
    exec_instance_t *inst;
    invocation_t *inv;           /* its call: assigned, and then delivered */
    http_request_t *answer_req;  /* the one response or error whose body is being read */
    http_request_t *stream_req;  /* the call's streamed response, while it streams */
    /* On an instance of many lanes, the call that timed out here while
     * its runtime was in it: the lane takes no call until the runtime
     * answers that request id (or the instance stops). "" otherwise. */
    char stuck_rid[ID_UUID_LEN + 1];
} exec_lane_t;

#define EXEC_INSTANCE_MAGIC 0x6d666c79u /* "mfly": a live instance */

struct exec_instance {
    uint32_t magic;              /* EXEC_INSTANCE_MAGIC while it lives */
    exec_pool_t *pool;
    char id[48];
    int64_t version;
    char code_sha[65];           /* the package mounted at /var/task */
    char argv0[64];              /* what its sandbox execs, for an error that names it */
    /* The one tenant id it serves for its whole life (Lambda's tenant
     * isolation mode), set by the call it was started for; "" for a
     * function without the mode. */
    char tenant_id[FN_TENANT_ID_MAX + 1];
    exec_inst_state_t state;
    sandbox_t sb;
    http_server_t *api;          /* the Runtime API, on the sandbox's listener */
    uv_poll_t exit_poll;         /* on the sandbox's pidfd */
    uv_pipe_t out[2];            /* the function's stdout and stderr */
    buf_t partial[2];            /* an unfinished line of each */
    uv_timer_t timer;            /* the invocation's deadline, or the idle timeout */
    /* Its lanes (lane0 when it has one), and the calls they hold:
     * assigned (delivered or waiting for a poll), delivered, and stuck
     * (exec_lane_t's stuck_rid). */
    exec_lane_t *lanes;
    unsigned n_lanes, n_assigned, n_delivered, n_stuck;
    exec_lane_t lane0;
    /* The runtime's pending GET /next polls, at most n_lanes (poll0 when
     * it has one lane). */
    http_request_t **polls;
    unsigned n_polls;
    http_request_t *poll0;
    char last_request_id[ID_UUID_LEN + 1]; /* late log lines belong to it */
    uint64_t spawn_ns;
    double init_ms;
    bool initialized;            /* the runtime has asked for work once */
    unsigned calls;              /* invocations handed to it so far */
    unsigned memory_mb;          /* what it holds of the sandboxes' memory budget */
    uint64_t idle_since_ns;      /* when it last went idle */
    size_t between_calls_log_bytes; /* printed since its last call ended */
    bool logs_paused;            /* its pipes are not read until the next call */
    bool reaped;
    int open_handles;
    uint64_t cpu_ns_last;        /* the sandbox's CPU time at the last hand-over or answer */
    uint64_t cpu_wait_ns_last;   /* its runtime's CPU wait then (an event's attempt), or 0 */
    bool frozen;                 /* idle, its processes frozen (no CPU) until its next call */
    egress_box_t *egress;        /* its way out, when its function has egress rules */
    /* Adaptive keep-alive (docs/keep-alive.md). */
    uint64_t keep_alive_ms;      /* how long it waits idle this time */
    bool ended_call;             /* it answered a call and has not been idle since */
    bool prewarm_pending;        /* started ahead of a call, and has served none yet */
    uint64_t idle_acct_ns;       /* idle (or pre-warmed, unused) since, not yet counted; 0: not */
    struct exec_instance *next_idle;
    struct exec_instance *prev, *next; /* every instance of the pool */
};

struct exec_pool {
    exec_t *ex;
    char name[TENANT_QNAME_MAX + 1];
    fn_t fn;                     /* the current version's settings */
    bool removed;
    /* A settings copy run apart from its function (exec_copy_define):
     * never read from the registry, and its calls in no metric. */
    bool copy;
    exec_instance_t *instances;
    exec_instance_t *idle;       /* LIFO: the most recently used on top */
    unsigned n_starting, n_idle, n_busy, n_stopping;
    invocation_t *queue_head, *queue_tail;
    unsigned n_queued;
    /* Instances that died (or reported an init error) before they asked for
     * work, in a row: while there are any, one instance at a time tries to
     * start, and after each failure calls fail at once with its error until
     * backoff_until_ns (doubling, capped), rather than restarting a runtime
     * that cannot start in a loop. A start that asks for work resets it. */
    unsigned start_failures;
    uint64_t backoff_until_ns;
    /* A start was refused for want of memory in the sandboxes' budget: the
     * pool is pumped again when an instance anywhere is freed. */
    bool waiting_for_memory;
    /* A start waited for room among the instances starting at once
     * (exec_config_t's max_starting). */
    bool waiting_for_start;
    char *start_error_type;      /* the last failure, for calls failed meanwhile */
    char *start_error_reason;    /* "Runtime exited with error: exit status 1" */
    bool start_error_prefixed;   /* calls get "RequestId: … Error: " + reason */
    int64_t start_error_ms;      /* when it happened (wall clock) */
    /* Adaptive keep-alive: when its last call ended (0: none yet), and the
     * timer that starts an instance ahead of the next one (NULL until
     * first needed; unref'd). */
    uint64_t last_end_ns;
    uv_timer_t *prewarm_timer;
    /* CPU-aware scale-out (busy.c): its calls' average duration and its
     * starts' average time (ms; 0: none yet), and whether calls wait in
     * its queue for a busy instance (counted in exec_t's n_held). */
    double call_ms_avg, start_ms_avg;
    bool held;
};

struct exec {
    uv_loop_t *loop;
    /* JVM zygotes per Java runtime (exec_start_java_zygotes), started when
     * the first function of that runtime is seen; bit i: runtime i started. */
    unsigned java_zygotes;
    unsigned java_started;
    sandbox_system_t *sandboxes;
    registry_t *registry;
    obs_records_t *records;
    obs_logs_t *logs;
    exec_config_t cfg;
    map_t pools;                 /* name → exec_pool_t */
    map_t code_users;            /* code sha → instances running it (a count) */
    http_router_t runtime_router;
    unsigned n_instances;        /* not yet freed */
    unsigned n_starting_all;     /* instances starting, of every pool */
    unsigned max_starting;       /* at most at once (exec_config_t's, or its default) */
    uv_timer_t *start_room_timer; /* pumps the pools waiting for start room (unref'd) */
    uint64_t instance_seq;
    bool shutting_down;
    void (*shutdown_done)(void *);
    void *shutdown_ud;
    void (*capacity_cb)(void *ud, const char *function);
    void *capacity_ud;
    exec_handoff_fn handoff; /* exec_set_handoff */
    void *handoff_ud;
    egress_t *egress;            /* the gateway for functions with egress rules */
    exec_volume_path_fn volume_path; /* where a volume is mounted, or NULL */
    void *volume_ud;
    void (*meter)(void *ud, const store_record_t *rec); /* exec_set_meter, or NULL */
    void *meter_ud;
    int (*admit)(void *ud, const char *function, mf_error_t *err); /* exec_set_admit */
    void *admit_ud;
    uint64_t memory_used_mb;     /* memory_mb of every instance not yet freed */
    uint64_t memory_stopping_mb; /* of which instances already stopping */
    uv_timer_t *queue_timer;     /* the earliest deadline of a waiting call */
    uint64_t queue_timer_due;    /* when it fires (0: not armed) */
    metrics_family_t *m_invocations, *m_duration, *m_cold, *m_instances, *m_pool;
    metrics_family_t *m_start_failures, *m_backoff, *m_memory;
    metrics_family_t *m_idle_mb_s, *m_prewarms;
    exec_keep_warm_policy_t keep_warm; /* exec_set_keep_warm; decide NULL: none */
    void *keep_warm_ud;
    /* CPU-aware scale-out (busy.c): the sampling timer (NULL: eager),
     * the share of the usable CPUs the server and its sandboxes used on
     * average, the last sample (their CPU time, when), the usable CPUs,
     * the instances busy of every pool, and the pools holding calls. */
    uv_timer_t *busy_timer;
    double busy_share;
    uint64_t busy_cpu_ns, busy_at_ns;
    unsigned busy_cpus;
    unsigned n_busy_all;
    unsigned n_held;
    metrics_family_t *m_held, *m_busy;
};

/* exec.c */
/* Appends Lambda's error document: {"errorType":…,"errorMessage":…}. */
void exec__error_doc(buf_t *out, const char *type, const char *message);
void exec__code_acquire(exec_t *ex, const char *sha);
void exec__code_release(exec_t *ex, const char *sha);
void exec__pool_pump(exec_pool_t *p);
/* Pumps the pools that take (which clears what it tested) picks, at most
 * most of them, in map order. Pumping may free pools: they are collected
 * first. */
void exec__pump_pools(exec_t *ex, size_t most, bool (*take)(exec_pool_t *p));
/* Puts an invocation back at the head of its pool's queue. */
void exec__requeue(exec_pool_t *p, invocation_t *inv);
/* An instance died or gave up before it asked for work: counts the failure,
 * starts or lengthens the pool's back-off. type and reason describe it as
 * Lambda does ("Runtime.ExitError", "Runtime exited with error: …"); calls
 * failed during the back-off get reason as their message, after
 * "RequestId: ID Error: " when per_call_prefix is set. */
void exec__start_failed(exec_pool_t *p, const char *type, const char *reason,
                        bool per_call_prefix);
/* The instance asked for work: its function's runtime can start. */
void exec__start_succeeded(exec_pool_t *p);
/* An instance is no longer starting: pools waiting for room among the
 * starts under way are pumped (soon, from the loop, not from here). */
void exec__start_room(exec_t *ex);
/* Ends an invocation that is not (or no longer) on an instance with an
 * error of the platform's making, records it and calls its done callback. */
void exec__fail(exec_t *ex, invocation_t *inv, inv_status_t status, const char *error_type,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Lambda's timeout message for a call: "Task timed out after 3.00 seconds". */
void exec__timeout_message(const invocation_t *inv, char *out, size_t outlen);
/* An instance's last handle closed: its memory_mb is back in the budget. */
void exec__instance_freed(exec_t *ex, exec_pool_t *p, unsigned memory_mb);
/* Ends the instance's invocation with an outcome, records it and calls its
 * done callback. error_type NULL means success; result's memory is taken. */
void exec__complete(exec_lane_t *lane, inv_status_t status, buf_t *result,
                    const char *error_type, const char *error_message);

/* The keep-alive windows of p's function now (exec_keep_warm's). */
void exec__keep_warm_window(exec_pool_t *p, exec_keep_warm_t *out);
/* Starts an instance of p ahead of its next call, delay_ms from now. */
void exec__prewarm_arm(exec_pool_t *p, uint64_t delay_ms);
/* Counts the memory-seconds inst spent idle (or pre-warmed and unused)
 * up to now; go_on: it still is. */
void exec__idle_account(exec_instance_t *inst, uint64_t now, bool go_on);

/* instance.c */
int exec__instance_start(exec_pool_t *p, exec_instance_t **out, mf_error_t *err);
/* Hands the event of lane->inv to one of the runtime's pending polls. */
void exec__instance_deliver(exec_lane_t *lane);
/* The runtime is waiting for work and has none: idle it (or stop it if its
 * version is old or the pool is going). */
void exec__instance_idle(exec_instance_t *inst);
/* A lane's call ended and the runtime answered it: an instance with no
 * call left is idle (its runtime polls again within microseconds, so it
 * is available at once); one serving others has room for one more. */
void exec__instance_lane_free(exec_instance_t *inst);
/* The lane whose delivered call is request id rid, or NULL. */
exec_lane_t *exec__lane_of(exec_instance_t *inst, const char *rid);
/* A lane holding no call (nor a stuck one), or NULL. */
exec_lane_t *exec__lane_free(exec_instance_t *inst);
/* The lane holding a call not yet delivered (waiting for a poll), or NULL. */
exec_lane_t *exec__lane_waiting(exec_instance_t *inst);
/* How many more calls the instance can take now. */
unsigned exec__instance_room(const exec_instance_t *inst);
/* The call whose log a line of the instance's output belongs to: on an
 * instance of many lanes, the delivered call whose request id the line
 * names, or the one delivered call, or NULL. */
invocation_t *exec__line_call(const exec_instance_t *inst, const char *data, size_t len);
/* The call an instance runs when it runs exactly one (its output and its
 * in-function API requests belong to it), or NULL. */
invocation_t *exec__running_call(const exec_instance_t *inst);
/* Shares the CPU time the sandbox used since the last reading among the
 * calls delivered meanwhile (each its part). */
void exec__cpu_share(exec_instance_t *inst);
/* A function of runtime is served here: a Java runtime's zygotes start
 * now if they have not (exec_start_java_zygotes). */
void exec__runtime_seen(exec_t *ex, const char *runtime);
void exec__instance_stop(exec_instance_t *inst);
/* Takes an instance off its pool's idle stack (if it is there). */
void exec__idle_stack_remove(exec_instance_t *inst);
void exec__instance_set_state(exec_instance_t *inst, exec_inst_state_t state);
/* Freezes (on) or thaws the instance's processes. */
void exec__instance_freeze(exec_instance_t *inst, bool on);
/* Sets the instance's one timer for what its state waits on: a starting
 * runtime's init limit or its assigned call's deadline, a call's deadline,
 * or an idle instance's keep-alive. */
void exec__instance_arm_timer(exec_instance_t *inst);

/* Reads what the function has already written to its pipes into its
 * running call's log (the loop may see its answer before its output). */
void exec__instance_logs_settle(exec_instance_t *inst);
/* Ends inv's log with Lambda's END and REPORT lines. */
void exec__instance_log_end(exec_instance_t *inst, const invocation_t *inv);

/* busy.c: CPU-aware scale-out (see there). */
void exec__busy_init(exec_t *ex);
void exec__busy_free(exec_t *ex);
/* An instance took a call: the sampling runs while any does. */
void exec__busy_kick(exec_t *ex);
/* Whether inv, which found no instance free and room for a new one,
 * waits for one of p's busy instances instead (never under tenant
 * isolation): then p is held (pumped again on the next sample) and the
 * wait counted. */
bool exec__busy_hold(exec_pool_t *p, invocation_t *inv);
/* p holds no call any more (it is being pumped, or freed). */
void exec__busy_unhold(exec_pool_t *p);
/* A call of p ended after duration_ms; an instance of p started in init_ms. */
void exec__busy_call_ended(exec_pool_t *p, double duration_ms);
void exec__busy_started(exec_pool_t *p, double init_ms);

/* tenancy.c: instances by tenant id (exec_instance_t's tenant_id). */
/* Takes the most recently idle instance serving tenant_id off the pool's
 * idle stack, or NULL when none is idle. */
exec_instance_t *exec__idle_take(exec_pool_t *p, const char *tenant_id);
/* Whether an instance serving tenant_id is idle. */
bool exec__idle_has(const exec_pool_t *p, const char *tenant_id);
/* The idle instance serving another tenant id that has waited longest (to
 * stop for room), or NULL. */
exec_instance_t *exec__idle_other_oldest(const exec_pool_t *p, const char *tenant_id);
/* Instances serving tenant_id, starting, idle or busy. */
unsigned exec__tenant_instances(const exec_pool_t *p, const char *tenant_id);
/* Whether tenant_id holds as many instances as the function's
 * max_instances_per_tenant lets it (never, without a cap). */
bool exec__tenant_at_cap(const exec_pool_t *p, const char *tenant_id);
/* Whether an instance of tenant_id is running a call. */
bool exec__tenant_busy(const exec_pool_t *p, const char *tenant_id);

/* runtime_api.c */
void exec__runtime_api_routes(http_router_t *router);
/* inv ended while its response was streaming (a timeout, a crash, a
 * stream too large): the stream's request is let go and answered with why
 * (inv's error). */
void exec__stream_detach(exec_lane_t *lane, const invocation_t *inv);

/* stream.c: the call's side of a streamed response. */
/* The runtime began streaming with this content type. */
void exec__stream_begin(exec_lane_t *lane, const char *content_type);
/* The stream's next bytes: to the caller's sink, or gathered for a caller
 * that takes the answer whole. Returns 0, or -EFBIG having failed the call
 * (the stream is past its bound) and stopped the instance. */
int exec__stream_data(exec_lane_t *lane, const char *data, size_t len);
/* The stream ended: error_type NULL for a success, else the function's
 * error from the trailers (doc: its error document, or NULL). */
void exec__stream_end(exec_lane_t *lane, const char *error_type, const char *error_message,
                      buf_t *doc);

/* trace.c: a call's trace ids (from the caller's traceparent, else its
 * own), the X-Ray header and W3C traceparent its function sees, and its
 * spans for the exporter (a root span with the FaaS conventions' attributes;
 * children for the queue, the cold start's phases, the function and each
 * outbound connection). */
void exec__trace_begin(invocation_t *inv, const char *traceparent);
void exec__trace_header(const invocation_t *inv, bool sampled, char *out, size_t outlen);
void exec__traceparent(const invocation_t *inv, char *out, size_t outlen);
void exec__trace_export(exec_t *ex, const invocation_t *inv);

#endif
