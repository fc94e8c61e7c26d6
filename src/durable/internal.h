/* What the durable room's files share (src/durable/): the engine's
 * state, the jobs it runs on the queue's writer, and the reads. Not for
 * other modules: durable/durable.h is the room's public surface. */
#ifndef MAYFLY_DURABLE_INTERNAL_H
#define MAYFLY_DURABLE_INTERNAL_H

#include <jansson.h>
#include <uv.h>

#include "core/map.h"
#include "durable/durable.h"
#include "invoke/async.h"
#include "obs/metrics.h"
#include "store/durable.h"

/* The operations an invocation's event carries (about this many bytes of
 * them); the rest it pages through GetDurableExecutionState. */
#define DURABLE_EVENT_OPS_BYTES (1u << 20)
#define DURABLE_PAGE_MAX 1000

typedef struct durable_waiter {
    struct durable_waiter *next;
    durable_outcome_cb cb;
    void *ud;
} durable_waiter_t;

/* A RUNNING execution, as the loop tracks it. */
typedef struct durable_run {
    char id[37];
    char function[TENANT_QNAME_MAX + 1];
    bool in_flight;
    bool rekick;     /* something changed while it ran: run again after */
    int64_t wake_ms; /* 0: waits on the outside */
    durable_waiter_t *waiters;
} durable_run_t;

typedef struct durable_fn {
    fn_durable_t cfg;
} durable_fn_t;

struct durable {
    uv_loop_t *loop;
    async_t *async;
    exec_t *exec;
    registry_t *registry;
    char region[33];
    map_t fns;  /* durable function → durable_fn_t */
    map_t runs; /* execution id → durable_run_t */
    uv_timer_t *timer;
    uv_timer_t *prune_timer;
    /* /metrics' counts of executions, read off the loop (durable.c). */
    uv_timer_t *counts_timer;
    uint64_t counted_ns, scraped_ns; /* the last read's start, the last scrape */
    bool counting;                   /* a read of them is with the queue's writer */
    bool counts_failed;              /* the last read failed (said once) */
    bool stopping;
    bool closed;   /* durable_close ran: d goes with the last job */
    unsigned jobs; /* submitted, not yet done */
    metrics_family_t *m_execs, *m_pending;
};

/* A change of an execution, applied on the queue's writer thread
 * (durable/apply.c) and answered on the loop (durable/durable.c). */
enum job_kind {
    JOB_START,
    JOB_BEGIN,
    JOB_END,
    JOB_CHECKPOINT,
    JOB_CALLBACK,
    JOB_STOP,
    JOB_CHAINED_DONE,
    JOB_STATE /* a read only: a page of the log (GetDurableExecutionState) */
};

typedef struct job {
    durable_t *d;
    enum job_kind kind;
    int64_t now_ms;
    /* Inputs. */
    char id[37];
    char function[TENANT_QNAME_MAX + 1];
    char name[TENANT_QNAME_MAX + 1];
    char caller[TENANT_QNAME_MAX + 1]; /* a checkpoint's calling function, or "" */
    char callback_id[65];
    char kind_s[16];
    char parent_id[37], parent_op[65];
    int timeout_s, retention_days;
    buf_t input;   /* START: the event; END: the function's answer */
    bool answered; /* END: the function answered a status */
    char fail_type[128];
    char *fail_message;
    bool held;     /* END: a spent block budget refused the invocation */
    durable_checkpoint_req_t cp;
    json_t *payload, *error; /* CALLBACK, STOP, CHAINED_DONE */
    size_t ord;              /* CHAINED_DONE: the caller's operation */
    char status_in[16];      /* CHAINED_DONE: the callee's outcome */
    char *token, *marker;    /* STATE: the caller's checkpoint token and marker */
    int max_items;           /* STATE */
    /* Outputs. */
    int status; /* an HTTP status for the API's jobs */
    char error_type[64];
    char message[512];
    json_t *body;            /* the answer's body */
    store_durable_exec_t ex; /* the execution as written */
    bool existed, changed, finished;
    bool gone;       /* the execution is not in the store any more (its function went) */
    json_t *callees; /* CHECKPOINT: durable functions it may chain to → their settings */
    json_t *chained; /* CHECKPOINT: the callees' executions it created [{id, function}] */
    /* Callbacks. */
    durable_outcome_cb ocb;
    durable_answer_cb acb;
    void *ud;
    durable_start_opts_t sopts;
} job_t;

job_t *durable__job_new(durable_t *d, enum job_kind kind);
void durable__job_free(job_t *j);
/* The function a chained invoke names (a name, NAME:$LATEST or an ARN)
 * into out; false when it names none. */
bool durable__function_name(const char *owner, const char *s, char out[TENANT_QNAME_MAX + 1]);
/* Makes the job's answer an error of the Lambda API. */
void durable__job_refuse(job_t *j, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The writer's side of every job (a store_job_apply_fn). */
int durable__job_apply(void *db, void *arg, mf_error_t *err);
/* The public operations of log from position from, at most max of them
 * and about max_bytes of JSON; *next the position after (or 0: the end). */
json_t *durable__ops_page(const durable_oplog_t *log, size_t from, size_t max, size_t max_bytes,
                          size_t *next);

#endif
