/* The durable execution engine (see durable/durable.h): starts
 * executions, hands their invocations the operation log, applies
 * checkpoints, and wakes suspended executions when what they wait for is
 * due. Every change runs as a job of the async queue's writer on
 * queue.db, so it is fsync'd before anyone hears of it; the loop keeps
 * only what is rebuilt from the file on a restart (which executions run,
 * when each is next due, who waits for which). */
#include "durable/durable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "invoke/async.h"
#include "obs/metrics.h"
#include "store/durable.h"

/* An invocation that ends without a status (a crash, a timeout, an
 * unhandled error outside the SDK) is tried again this many times in a
 * row, a second more each time, before the execution fails with its
 * error. */
#define DURABLE_MAX_FAILURES 3
/* The operations an invocation's event carries; the rest it pages
 * through GetDurableExecutionState. */
#define DURABLE_EVENT_OPS_BYTES (1u << 20)
#define DURABLE_PAGE_MAX 1000
#define DURABLE_PRUNE_MS (3600 * 1000)

typedef struct durable_waiter {
    struct durable_waiter *next;
    durable_outcome_cb cb;
    void *ud;
} durable_waiter_t;

/* A RUNNING execution, as the loop tracks it. */
typedef struct durable_run {
    char id[37];
    char function[FN_NAME_MAX + 1];
    bool in_flight;
    bool rekick;                 /* something changed while it ran: run again after */
    int64_t wake_ms;             /* 0: waits on the outside */
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
    map_t fns;                   /* durable function → durable_fn_t */
    map_t runs;                  /* execution id → durable_run_t */
    uv_timer_t *timer;
    uv_timer_t *prune_timer;
    bool stopping;
    bool closed;                 /* durable_close ran: d goes with the last job */
    unsigned jobs;               /* submitted, not yet done */
    metrics_family_t *m_execs, *m_pending;
};

/* ---- jobs on the queue's writer ---------------------------------------- */

enum job_kind { JOB_START, JOB_BEGIN, JOB_END, JOB_CHECKPOINT, JOB_CALLBACK, JOB_STOP,
                JOB_CHAINED_DONE };

typedef struct job {
    durable_t *d;
    enum job_kind kind;
    int64_t now_ms;
    /* Inputs. */
    char id[37];
    char function[FN_NAME_MAX + 1];
    char name[STORE_DURABLE_NAME_MAX + 1];
    char caller[FN_NAME_MAX + 1];          /* a checkpoint's calling function, or "" */
    char callback_id[65];
    char kind_s[16];
    char parent_id[37], parent_op[65];
    int timeout_s, retention_days;
    buf_t input;                           /* START: the event; END: the function's answer */
    bool answered;                         /* END: the function answered a status */
    char fail_type[128];
    char *fail_message;
    durable_checkpoint_req_t cp;
    json_t *payload, *error;               /* CALLBACK, STOP, CHAINED_DONE */
    size_t ord;                            /* CHAINED_DONE: the caller's operation */
    char status_in[16];                    /* CHAINED_DONE: the callee's outcome */
    /* Outputs. */
    int status;                            /* an HTTP status for the API's jobs */
    char error_type[64];
    char message[512];
    json_t *body;                          /* the answer's body */
    store_durable_exec_t ex;               /* the execution as written */
    bool existed, changed, finished;
    json_t *chained;                       /* chained invokes to start */
    /* Callbacks. */
    durable_outcome_cb ocb;
    durable_answer_cb acb;
    void *ud;
    durable_start_opts_t sopts;
} job_t;

static void job_free(job_t *j)
{
    buf_release(&j->input);
    free(j->fail_message);
    durable_checkpoint_req_clear(&j->cp);
    json_decref(j->payload);
    json_decref(j->error);
    json_decref(j->body);
    json_decref(j->chained);
    store_durable_exec_clear(&j->ex);
    free(j);
}

static job_t *job_new(durable_t *d, enum job_kind kind)
{
    job_t *j = xcalloc(1, sizeof *j);
    j->d = d;
    j->kind = kind;
    j->now_ms = clock_wall_ms();
    buf_init(&j->input, 0);
    return j;
}

static void job_refuse(job_t *j, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void job_refuse(job_t *j, int status, const char *type, const char *fmt, ...)
{
    j->status = status;
    snprintf(j->error_type, sizeof j->error_type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof j->message, fmt, ap);
    va_end(ap);
}

static void new_token(char out[STORE_DURABLE_TOKEN_LEN + 1])
{
    unsigned char raw[STORE_DURABLE_TOKEN_LEN / 2];
    id_random_bytes(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Writes the operations the log changed. */
static int write_changed(store_queue_t *q, const char *exec_id, const durable_oplog_t *log,
                         mf_error_t *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(log->changed, i, v) {
        size_t ord = (size_t)json_integer_value(v);
        int r = store_durable_op_put(q, exec_id, (int64_t)ord, json_array_get(log->ops, ord), err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int64_t op_seq(const json_t *op)
{
    return (int64_t)json_integer_value(json_object_get(op, "_seq"));
}

/* The public operations of log from position from, at most max of them
 * and about max_bytes of JSON; *next the position after (or 0: the end). */
static json_t *ops_page(const durable_oplog_t *log, size_t from, size_t max, size_t max_bytes,
                        size_t *next)
{
    json_t *arr = json_array();
    size_t bytes = 0, i = from, n = json_array_size(log->ops);
    for (; i < n && json_array_size(arr) < max; i++) {
        json_t *op = durable_op_public(json_array_get(log->ops, i));
        char *text = json_dumps(op, JSON_COMPACT);
        size_t len = text ? strlen(text) : 0;
        free(text);
        if (json_array_size(arr) > 0 && bytes + len > max_bytes) {
            json_decref(op);
            break;
        }
        bytes += len;
        json_array_append_new(arr, op);
    }
    *next = i < n ? i : 0;
    return arr;
}

/* Ends the execution in ex (not yet written) with status. */
static void finish(store_durable_exec_t *ex, durable_oplog_t *log, const char *status,
                   const char *result, const char *error, int64_t now_ms)
{
    snprintf(ex->status, sizeof ex->status, "%s", status);
    if (result) {
        free(ex->result);
        ex->result = xstrdup(result);
    }
    if (error) {
        free(ex->error);
        ex->error = xstrdup(error);
    }
    ex->end_ms = now_ms;
    ex->next_wake_ms = 0;
    ex->in_flight = false;
    ex->token[0] = '\0';
    if (log) {
        size_t ord;
        json_t *op = durable_oplog_find(log, ex->id, &ord);
        if (op) {
            json_object_set_new(op, "Status", json_string(status));
            json_object_set_new(op, "EndTimestamp", json_real((double)now_ms / 1000.0));
            json_array_append_new(log->changed, json_integer((json_int_t)ord));
            json_object_set_new(op, "_seq", json_integer(++log->seq));
        }
    }
}

static char *json_text(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* START: a new execution, or the one its name already names. */
static int apply_start(store_queue_t *q, job_t *j, mf_error_t *err)
{
    store_durable_exec_t old = { 0 };
    if (j->name[0]) {
        int r = store_durable_exec_by_name(q, j->function, j->name, &old, err);
        if (r == 0) {
            j->existed = true;
            if (strcmp(old.input ? old.input : "", j->input.data ? j->input.data : "")) {
                job_refuse(j, 409, "DurableExecutionAlreadyStartedException",
                           "execution `%s` of %s exists with another input", j->name,
                           j->function);
            }
            j->ex = old;
            return 0;
        }
        if (r != -ENOENT)
            return r;
    }
    store_durable_exec_t *ex = &j->ex;
    id_uuid4(ex->id);
    snprintf(ex->function, sizeof ex->function, "%s", j->function);
    snprintf(ex->name, sizeof ex->name, "%s", j->name[0] ? j->name : ex->id);
    snprintf(ex->status, sizeof ex->status, "RUNNING");
    ex->input = xstrdup(j->input.data ? j->input.data : "{}");
    ex->start_ms = j->now_ms;
    ex->deadline_ms = j->now_ms + (int64_t)j->timeout_s * 1000;
    ex->retention_days = j->retention_days;
    ex->next_wake_ms = j->now_ms; /* due now: a restart before its first run still runs it */
    snprintf(ex->parent_id, sizeof ex->parent_id, "%s", j->parent_id);
    snprintf(ex->parent_op, sizeof ex->parent_op, "%s", j->parent_op);
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 0);
    durable_oplog_start(&log, ex->id, ex->input, j->now_ms);
    ex->seq = log.seq;
    int r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    return r;
}

/* BEGIN: the event of the execution's next invocation, with a new token. */
static int apply_begin(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = store_durable_exec_get(q, j->id, &j->ex, err);
    if (r < 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING")) {
        j->finished = true;
        return 0;
    }
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex->id, &ops, err)) < 0)
        return r;
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex->seq);
    if (ex->deadline_ms && j->now_ms >= ex->deadline_ms) {
        finish(ex, &log, "TIMED_OUT", NULL,
               "{\"ErrorType\":\"ExecutionTimedOut\",\"ErrorMessage\":\"The execution ran past "
               "its execution timeout\"}",
               j->now_ms);
        j->finished = true;
    } else {
        durable_oplog_advance(&log, j->now_ms);
        new_token(ex->token);
        ex->in_flight = true;
        ex->invocations++;
        size_t next = 0;
        json_t *page = ops_page(&log, 0, SIZE_MAX, DURABLE_EVENT_OPS_BYTES, &next);
        char arn[512];
        durable_arn_format(j->d->region, ex->function, ex->name, ex->id, arn, sizeof arn);
        char marker[32] = "";
        if (next)
            snprintf(marker, sizeof marker, "%zu", next);
        j->body = json_pack("{s:s, s:s, s:{s:o, s:s?}}", "DurableExecutionArn", arn,
                            "CheckpointToken", ex->token, "InitialExecutionState", "Operations",
                            page, "NextMarker", next ? marker : NULL);
    }
    ex->seq = log.seq;
    ex->token_seq = log.seq;
    r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    return r;
}

/* END: what the invocation answered. */
static int apply_end(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = store_durable_exec_get(q, j->id, &j->ex, err);
    if (r < 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    ex->in_flight = false;
    if (strcmp(ex->status, "RUNNING")) {
        j->finished = true;
        return store_durable_exec_put(q, ex, err);
    }
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex->id, &ops, err)) < 0)
        return r;
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex->seq);
    ex->token[0] = '\0'; /* the invocation's token dies with it */

    json_t *answer = NULL;
    const char *status = NULL;
    if (j->answered) {
        answer = json_loadb(j->input.data ? j->input.data : "", j->input.len, 0, NULL);
        status = json_string_value(json_object_get(answer, "Status"));
    }
    if (status && !strcmp(status, "SUCCEEDED")) {
        const json_t *res = json_object_get(answer, "Result");
        /* An empty Result: the SDK checkpointed a large one (EXECUTION SUCCEED). */
        const char *text = json_is_string(res) && json_string_length(res) ? json_string_value(res)
                                                                          : NULL;
        finish(ex, &log, "SUCCEEDED", text ? text : (ex->result ? NULL : "null"), NULL,
               j->now_ms);
        j->finished = true;
    } else if (status && !strcmp(status, "FAILED")) {
        cleanup_free char *e = json_text(json_object_get(answer, "Error"));
        finish(ex, &log, "FAILED", NULL, e ? e : "{\"ErrorType\":\"Error\"}", j->now_ms);
        j->finished = true;
    } else if (status && !strcmp(status, "PENDING")) {
        durable_oplog_advance(&log, j->now_ms);
        int64_t wake = durable_oplog_next_wake(&log);
        if (!wake && !durable_oplog_waiting(&log)) {
            /* PENDING with nothing to wait for: what it waited on ended
             * while it ran. Run it again now, a bounded number of times. */
            wake = j->now_ms;
            ex->failures++;
        } else {
            ex->failures = 0;
        }
        /* The execution's timeout is always a reason to wake. */
        if (ex->deadline_ms && (!wake || ex->deadline_ms < wake))
            wake = ex->deadline_ms;
        ex->next_wake_ms = wake;
        if (ex->failures > 10)
            finish(ex, &log, "FAILED", NULL,
                   "{\"ErrorType\":\"Mayfly.DurableLoop\",\"ErrorMessage\":\"the handler "
                   "answered PENDING with nothing to wait for\"}",
                   j->now_ms), j->finished = true;
    } else {
        /* No status: the invocation failed outside the SDK's hands. */
        ex->failures++;
        if (ex->failures >= DURABLE_MAX_FAILURES) {
            cleanup_json json_t *e =
                json_pack("{s:s, s:s}", "ErrorType", j->fail_type[0] ? j->fail_type : "Error",
                          "ErrorMessage",
                          j->fail_message ? j->fail_message
                          : status        ? "the handler answered an unknown Status"
                                          : "the handler did not answer a durable status");
            cleanup_free char *text = json_text(e);
            finish(ex, &log, "FAILED", NULL, text, j->now_ms);
            j->finished = true;
        } else {
            ex->next_wake_ms = j->now_ms + 1000LL * ex->failures;
        }
    }
    json_decref(answer);
    ex->seq = log.seq;
    ex->token_seq = log.seq;
    r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    return r;
}

static int apply_checkpoint(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = store_durable_exec_get(q, j->id, &j->ex, err);
    if (r == -ENOENT) {
        job_refuse(j, 404, "ResourceNotFoundException", "no durable execution %s", j->id);
        return 0;
    }
    if (r < 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (j->caller[0] && strcmp(j->caller, ex->function)) {
        job_refuse(j, 403, "AccessDeniedException",
                   "function %s may not checkpoint an execution of %s", j->caller, ex->function);
        return 0;
    }
    /* A retry of the checkpoint just acknowledged gets the same answer. */
    if (j->cp.client_token[0] && !strcmp(j->cp.client_token, ex->last_client_token) &&
        !strcmp(j->cp.token, ex->last_token_in) && ex->last_response) {
        j->body = json_loads(ex->last_response, 0, NULL);
        j->status = 200;
        return 0;
    }
    if (strcmp(ex->status, "RUNNING")) {
        job_refuse(j, 409, "ResourceConflictException", "the execution has ended (%s)",
                   ex->status);
        return 0;
    }
    if (!ex->token[0] || strcmp(j->cp.token, ex->token)) {
        job_refuse(j, 400, "InvalidParameterValueException",
                   "Invalid checkpoint token: a token is good for one checkpoint of the "
                   "invocation it was given to");
        return 0;
    }
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex->id, &ops, err)) < 0)
        return r;
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex->seq);
    durable_oplog_advance(&log, j->now_ms);
    size_t i;
    json_t *u;
    mf_error_t aerr = MF_ERROR_INIT;
    json_array_foreach(j->cp.updates, i, u) {
        if (durable_oplog_apply(&log, u, ex->id, j->now_ms, &aerr) < 0) {
            job_refuse(j, 400, "InvalidParameterValueException", "Updates[%zu]: %s", i, aerr.msg);
            durable_oplog_release(&log);
            return 0; /* nothing of the batch is written */
        }
    }
    if (log.outcome) {
        cleanup_free char *e = json_text(log.error);
        if (!strcmp(log.outcome, "SUCCEEDED")) {
            free(ex->result);
            ex->result = log.result ? xstrdup(json_string_value(log.result)) : xstrdup("null");
        } else {
            free(ex->error);
            ex->error = e ? xstrdup(e) : NULL;
        }
    }
    /* The answer: a new token and every operation changed since the
     * caller's token was given (its own updates, and what ended by itself
     * or from outside meanwhile). */
    char token[STORE_DURABLE_TOKEN_LEN + 1];
    new_token(token);
    json_t *changed = json_array();
    json_t *op;
    json_array_foreach(log.ops, i, op)
        if (op_seq(op) > ex->token_seq)
            json_array_append_new(changed, durable_op_public(op));
    j->body = json_pack("{s:s, s:{s:o}}", "CheckpointToken", token, "NewExecutionState",
                        "Operations", changed);
    snprintf(ex->last_token_in, sizeof ex->last_token_in, "%.48s", j->cp.token);
    snprintf(ex->last_client_token, sizeof ex->last_client_token, "%s", j->cp.client_token);
    free(ex->last_response);
    ex->last_response = json_text(j->body);
    snprintf(ex->token, sizeof ex->token, "%s", token);
    ex->seq = log.seq;
    ex->token_seq = log.seq;
    j->chained = json_incref(log.chained);
    r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    j->status = 200;
    return r;
}

static int apply_callback(store_queue_t *q, job_t *j, mf_error_t *err)
{
    char exec_id[37];
    int r = store_durable_callback_find(q, j->callback_id, exec_id, err);
    if (r == -ENOENT) {
        job_refuse(j, 404, "ResourceNotFoundException", "no callback %s", j->callback_id);
        return 0;
    }
    if (r < 0 || (r = store_durable_exec_get(q, exec_id, &j->ex, err)) < 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING")) {
        job_refuse(j, 409, "CallbackTimeoutException", "the execution has ended (%s)",
                   ex->status);
        return 0;
    }
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex->id, &ops, err)) < 0)
        return r;
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex->seq);
    durable_oplog_advance(&log, j->now_ms);
    mf_error_t cerr = MF_ERROR_INIT;
    r = durable_oplog_callback(&log, j->callback_id, j->kind_s, j->payload, j->error, j->now_ms,
                               &cerr);
    if (r < 0) {
        job_refuse(j, 409, "CallbackTimeoutException", "%s",
                   r == -ENOENT ? "no such callback" : cerr.msg);
        durable_oplog_release(&log);
        return 0;
    }
    j->changed = strcmp(j->kind_s, "heartbeat") != 0;
    if (!ex->in_flight) {
        int64_t wake = durable_oplog_next_wake(&log);
        ex->next_wake_ms = j->changed ? j->now_ms : wake;
    }
    ex->seq = log.seq;
    r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    j->status = 200;
    j->body = json_object();
    return r;
}

static int apply_stop(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = store_durable_exec_get(q, j->id, &j->ex, err);
    if (r == -ENOENT) {
        job_refuse(j, 404, "ResourceNotFoundException", "no durable execution %s", j->id);
        return 0;
    }
    if (r < 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING")) {
        job_refuse(j, 409, "ResourceConflictException", "the execution has ended (%s)",
                   ex->status);
        return 0;
    }
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex->id, &ops, err)) < 0)
        return r;
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex->seq);
    cleanup_free char *e = json_text(j->error);
    finish(ex, &log, "STOPPED", NULL,
           e ? e : "{\"ErrorType\":\"ExecutionStopped\",\"ErrorMessage\":\"stopped\"}", j->now_ms);
    ex->seq = log.seq;
    r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    j->finished = true;
    j->status = 200;
    j->body = json_pack("{s:f}", "StopTimestamp", (double)j->now_ms / 1000.0);
    return r;
}

/* A callee ended: its caller's chained invoke ends with it. */
static int apply_chained_done(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = store_durable_exec_get(q, j->id, &j->ex, err);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING"))
        return 0;
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex->id, &ops, err)) < 0)
        return r;
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex->seq);
    durable_oplog_chained_done(&log, j->ord, j->status_in, j->payload, j->error, j->now_ms);
    j->changed = json_array_size(log.changed) > 0;
    if (!ex->in_flight && j->changed)
        ex->next_wake_ms = j->now_ms;
    ex->seq = log.seq;
    r = write_changed(q, ex->id, &log, err);
    durable_oplog_release(&log);
    if (r == 0)
        r = store_durable_exec_put(q, ex, err);
    return r;
}

static int job_apply(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    store_queue_t *q = db;
    switch (j->kind) {
    case JOB_START: return apply_start(q, j, err);
    case JOB_BEGIN: return apply_begin(q, j, err);
    case JOB_END: return apply_end(q, j, err);
    case JOB_CHECKPOINT: return apply_checkpoint(q, j, err);
    case JOB_CALLBACK: return apply_callback(q, j, err);
    case JOB_STOP: return apply_stop(q, j, err);
    case JOB_CHAINED_DONE: return apply_chained_done(q, j, err);
    }
    return 0;
}

/* ---- the loop's side ----------------------------------------------------- */

static void job_done(void *arg, int r, const mf_error_t *err);

static int submit(job_t *j, mf_error_t *err)
{
    int r = async_write(j->d->async, true, job_apply, job_done, j, err);
    if (r == 0)
        j->d->jobs++;
    return r;
}

static void durable_free(durable_t *d);

static void arm_timer(durable_t *d);

static durable_run_t *run_get(durable_t *d, const char *id, const char *function)
{
    durable_run_t *run = map_get(&d->runs, id);
    if (!run && function) {
        run = xcalloc(1, sizeof *run);
        snprintf(run->id, sizeof run->id, "%s", id);
        snprintf(run->function, sizeof run->function, "%s", function);
        map_put(&d->runs, id, run);
    }
    return run;
}

static void outcome_of(const store_durable_exec_t *ex, const char *region, char *arn, size_t len,
                       durable_outcome_t *o)
{
    durable_arn_format(region, ex->function, ex->name, ex->id, arn, len);
    o->arn = arn;
    o->id = ex->id;
    o->status = ex->status;
    o->result = ex->result;
    o->error = ex->error;
}

/* The execution ended: its waiters hear, its caller's chained invoke ends. */
static void ended(durable_t *d, const store_durable_exec_t *ex)
{
    durable_run_t *run = map_remove(&d->runs, ex->id);
    char arn[512];
    durable_outcome_t o = { 0 };
    outcome_of(ex, d->region, arn, sizeof arn, &o);
    while (run && run->waiters) {
        durable_waiter_t *w = run->waiters;
        run->waiters = w->next;
        w->cb(w->ud, &o);
        free(w);
    }
    free(run);
    log_info("durable", "execution %s of %s ended: %s", ex->id, ex->function, ex->status);
    if (ex->parent_id[0]) {
        job_t *j = job_new(d, JOB_CHAINED_DONE);
        snprintf(j->id, sizeof j->id, "%s", ex->parent_id);
        j->ord = (size_t)strtoull(ex->parent_op, NULL, 10);
        snprintf(j->status_in, sizeof j->status_in, "%s", ex->status);
        if (!strcmp(ex->status, "SUCCEEDED"))
            j->payload = json_string(ex->result ? ex->result : "null");
        else
            j->error = ex->error ? json_loads(ex->error, 0, NULL) : NULL;
        mf_error_t err = MF_ERROR_INIT;
        if (submit(j, &err) < 0)
            job_free(j);
    }
}

static void kick(durable_t *d, durable_run_t *run);

static void on_invoked(invocation_t *inv, void *ud)
{
    job_t *j = ud; /* a JOB_END prepared by kick */
    durable_t *d = j->d;
    j->now_ms = clock_wall_ms();
    if (inv->status == INV_SUCCESS) {
        json_t *answer = json_loadb(inv->result.data ? inv->result.data : "", inv->result.len, 0,
                                    NULL);
        if (json_is_string(json_object_get(answer, "Status"))) {
            j->answered = true;
            buf_add(&j->input, inv->result.data, inv->result.len);
        } else {
            snprintf(j->fail_type, sizeof j->fail_type, "Runtime.InvalidResponse");
            j->fail_message = xstrdup("the handler of a durable function must answer "
                                      "{Status, Result, Error}: wrap it with withDurableExecution");
        }
        json_decref(answer);
    } else {
        snprintf(j->fail_type, sizeof j->fail_type, "%s",
                 inv->error_type ? inv->error_type : "Error");
        j->fail_message = xstrdup(inv->error_message ? inv->error_message : "the call failed");
    }
    invocation_free(inv);
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        log_warn("durable", "execution %s: %s", j->id, err.msg);
        job_free(j);
    }
    (void)d;
}

/* Runs the execution's next invocation (once it is not running one). */
static void kick(durable_t *d, durable_run_t *run)
{
    if (d->stopping || run->in_flight)
        return;
    run->in_flight = true;
    run->rekick = false;
    run->wake_ms = 0;
    job_t *j = job_new(d, JOB_BEGIN);
    snprintf(j->id, sizeof j->id, "%s", run->id);
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        run->in_flight = false;
        job_free(j);
    }
}

static void begun(durable_t *d, job_t *j)
{
    durable_run_t *run = run_get(d, j->ex.id, j->ex.function);
    if (j->finished) {
        if (run)
            run->in_flight = false;
        ended(d, &j->ex);
        return;
    }
    job_t *end = job_new(d, JOB_END);
    snprintf(end->id, sizeof end->id, "%s", j->ex.id);
    buf_t event = BUF_INIT;
    json_dump_buf(&event, j->body);
    char trigger[STORE_TRIGGER_MAX];
    snprintf(trigger, sizeof trigger, "durable:%s", j->ex.id);
    mf_error_t err = MF_ERROR_INIT;
    int r = exec_invoke_opts(d->exec, j->ex.function, &event,
                             &(exec_call_opts_t){ .trigger = trigger }, on_invoked, end, &err);
    if (r < 0) {
        buf_release(&event);
        snprintf(end->fail_type, sizeof end->fail_type, "%s",
                 r == -ENOENT ? "ResourceNotFoundException" : "Mayfly.InvokeFailed");
        end->fail_message = xstrdup(err.msg);
        if (submit(end, &err) < 0)
            job_free(end);
    }
}

static void start_chained(durable_t *d, const char *caller_exec, const json_t *c);

static void job_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    durable_t *d = j->d;
    d->jobs--;
    if (d->closed) {
        /* The server is going: what was written stays, nobody waits. */
        job_free(j);
        if (!d->jobs)
            durable_free(d);
        return;
    }
    if (r < 0) {
        log_warn("durable", "execution %s: %s", j->id[0] ? j->id : j->ex.id, err->msg);
        job_refuse(j, 500, "ServiceException", "%s", err->msg);
    }
    switch (j->kind) {
    case JOB_START: {
        char arn[512];
        durable_outcome_t o = { .r = r, .err = err, .existed = j->existed };
        if (r == 0 && j->status >= 400) {
            o.r = -EEXIST;
            mf_error_t e = MF_ERROR_INIT;
            mf_error_plain(&e, EEXIST, "%s", j->message);
            o.err = &e;
            j->ocb(j->ud, &o);
            break;
        }
        if (r < 0) {
            j->ocb(j->ud, &o);
            break;
        }
        outcome_of(&j->ex, d->region, arn, sizeof arn, &o);
        bool running = !strcmp(j->ex.status, "RUNNING");
        durable_run_t *run = running ? run_get(d, j->ex.id, j->ex.function) : NULL;
        if (j->sopts.wait && running) {
            durable_waiter_t *w = xcalloc(1, sizeof *w);
            w->cb = j->ocb;
            w->ud = j->ud;
            w->next = run->waiters;
            run->waiters = w;
        } else {
            j->ocb(j->ud, &o);
        }
        if (run && !j->existed)
            kick(d, run);
        break;
    }
    case JOB_BEGIN: {
        durable_run_t *run = run_get(d, j->id, NULL);
        if (r < 0) {
            if (run) {
                run->in_flight = false;
                run->wake_ms = clock_wall_ms() + 1000;
                arm_timer(d);
            }
            break;
        }
        begun(d, j);
        break;
    }
    case JOB_END: {
        durable_run_t *run = run_get(d, j->id, NULL);
        if (run)
            run->in_flight = false;
        if (r < 0) {
            if (run) {
                run->wake_ms = clock_wall_ms() + 1000;
                arm_timer(d);
            }
            break;
        }
        if (j->finished || strcmp(j->ex.status, "RUNNING")) {
            ended(d, &j->ex);
            break;
        }
        if (!run)
            run = run_get(d, j->ex.id, j->ex.function);
        run->wake_ms = j->ex.next_wake_ms;
        if (run->rekick && !run->wake_ms)
            run->wake_ms = clock_wall_ms();
        arm_timer(d);
        break;
    }
    case JOB_CHECKPOINT: {
        if (j->chained) {
            size_t i;
            json_t *c;
            json_array_foreach(j->chained, i, c)
                start_chained(d, j->ex.id, c);
        }
        j->acb(j->ud, &(durable_answer_t){ .status = j->status ? j->status : 500,
                                            .error_type = j->error_type,
                                            .message = j->message,
                                            .body = j->body });
        break;
    }
    case JOB_CALLBACK:
    case JOB_CHAINED_DONE: {
        if (r == 0 && j->changed && !strcmp(j->ex.status, "RUNNING")) {
            durable_run_t *run = run_get(d, j->ex.id, j->ex.function);
            if (run->in_flight)
                run->rekick = true;
            else
                kick(d, run);
        } else if (r == 0 && j->kind == JOB_CALLBACK && !strcmp(j->ex.status, "RUNNING")) {
            /* A heartbeat moves the callback's deadline on. */
            durable_run_t *run = run_get(d, j->ex.id, j->ex.function);
            if (!run->in_flight) {
                run->wake_ms = j->ex.next_wake_ms;
                arm_timer(d);
            }
        }
        if (j->acb)
            j->acb(j->ud, &(durable_answer_t){ .status = j->status ? j->status : 500,
                                                .error_type = j->error_type,
                                                .message = j->message,
                                                .body = j->body });
        break;
    }
    case JOB_STOP:
        if (r == 0 && j->finished)
            ended(d, &j->ex);
        j->acb(j->ud, &(durable_answer_t){ .status = j->status ? j->status : 500,
                                            .error_type = j->error_type,
                                            .message = j->message,
                                            .body = j->body });
        break;
    }
    job_free(j);
}

/* ---- chained invokes ------------------------------------------------------ */

typedef struct chained_call {
    durable_t *d;
    char caller_exec[37];
    size_t ord;
} chained_call_t;

static void chained_started(void *ud, const durable_outcome_t *o)
{
    chained_call_t *c = ud;
    if (o->r < 0) {
        job_t *j = job_new(c->d, JOB_CHAINED_DONE);
        snprintf(j->id, sizeof j->id, "%s", c->caller_exec);
        j->ord = c->ord;
        snprintf(j->status_in, sizeof j->status_in, "FAILED");
        j->error = json_pack("{s:s, s:s}", "ErrorType", "ChainedInvokeFailed", "ErrorMessage",
                             o->err ? o->err->msg : "the chained invoke did not start");
        mf_error_t err = MF_ERROR_INIT;
        if (submit(j, &err) < 0)
            job_free(j);
    }
    free(c);
}

/* The callee runs as an execution of its own whose end ends the caller's
 * operation (ended() above). A callee that is not durable fails the
 * operation: Lambda chains durable functions only. */
static void start_chained(durable_t *d, const char *caller_exec, const json_t *c)
{
    chained_call_t *call = xcalloc(1, sizeof *call);
    call->d = d;
    snprintf(call->caller_exec, sizeof call->caller_exec, "%s", caller_exec);
    call->ord = (size_t)json_integer_value(json_object_get(c, "ord"));
    char fname[FN_NAME_MAX + 1] = "";
    const char *f = json_string_value(json_object_get(c, "function"));
    const char *p = strstr(f, "function:");
    p = p ? p + 9 : f;
    size_t n = strcspn(p, ":");
    if (n <= FN_NAME_MAX) {
        memcpy(fname, p, n);
        fname[n] = '\0';
    }
    durable_fn_t *df = map_get(&d->fns, fname);
    mf_error_t err = MF_ERROR_INIT;
    if (!df) {
        mf_error_plain(&err, ENOENT, "%s is not a durable function", fname[0] ? fname : f);
        chained_started(call, &(durable_outcome_t){ .r = -ENOENT, .err = &err });
        return;
    }
    const char *payload = json_string_value(json_object_get(c, "payload"));
    buf_t input = BUF_INIT;
    buf_adds(&input, payload ? payload : "{}");
    job_t *j = job_new(d, JOB_START);
    snprintf(j->function, sizeof j->function, "%s", fname);
    j->timeout_s = df->cfg.execution_timeout_s;
    j->retention_days = df->cfg.retention_days;
    snprintf(j->parent_id, sizeof j->parent_id, "%s", caller_exec);
    snprintf(j->parent_op, sizeof j->parent_op, "%zu", call->ord);
    j->input = input;
    j->ocb = chained_started;
    j->ud = call;
    if (submit(j, &err) < 0) {
        j->ocb = NULL;
        job_free(j);
        chained_started(call, &(durable_outcome_t){ .r = -ESHUTDOWN, .err = &err });
    }
}

/* ---- timers ----------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    durable_t *d = t->data;
    int64_t now = clock_wall_ms();
    size_t it = 0;
    const char *key;
    void *value;
    /* Collected first: kick may change the map's entries' state, not its shape. */
    while (map_next(&d->runs, &it, &key, &value)) {
        durable_run_t *run = value;
        if (!run->in_flight && run->wake_ms && run->wake_ms <= now)
            kick(d, run);
    }
    arm_timer(d);
}

static void arm_timer(durable_t *d)
{
    if (d->stopping)
        return;
    int64_t next = 0;
    size_t it = 0;
    const char *key;
    void *value;
    while (map_next(&d->runs, &it, &key, &value)) {
        durable_run_t *run = value;
        if (!run->in_flight && run->wake_ms && (!next || run->wake_ms < next))
            next = run->wake_ms;
    }
    uv_timer_stop(d->timer);
    if (!next)
        return;
    int64_t delay = next - clock_wall_ms();
    uv_timer_start(d->timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* ---- retention ---------------------------------------------------------- */

static int prune_apply(void *db, void *arg, mf_error_t *err)
{
    int64_t n = 0;
    return store_durable_prune(db, clock_wall_ms(), &n, err);
}

static void prune_done(void *arg, int r, const mf_error_t *err)
{
    if (r < 0)
        log_warn("durable", "pruning executions: %s", err->msg);
}

void durable_prune(durable_t *d)
{
    mf_error_t err = MF_ERROR_INIT;
    async_write(d->async, false, prune_apply, prune_done, d, &err);
}

static void on_prune(uv_timer_t *t)
{
    durable_prune(t->data);
}

/* ---- metrics -------------------------------------------------------------- */

static void collect(void *ud)
{
    durable_t *d = ud;
    int64_t counts[5], timers, callbacks;
    mf_error_t err = MF_ERROR_INIT;
    if (store_durable_counts(async_store(d->async), counts, &timers, &callbacks, &err) < 0)
        return;
    static const char *const names[5] = { "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT",
                                          "STOPPED" };
    for (int i = 0; i < 5; i++)
        metrics_set(d->m_execs, (const char *[]){ names[i] }, (double)counts[i]);
    metrics_set(d->m_pending, (const char *[]){ "timer" }, (double)timers);
    metrics_set(d->m_pending, (const char *[]){ "callback" }, (double)callbacks);
}

/* ---- public ----------------------------------------------------------------- */

int durable_open(uv_loop_t *loop, async_t *async, exec_t *exec, registry_t *registry,
                 const durable_config_t *cfg, durable_t **out, mf_error_t *err)
{
    durable_t *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->async = async;
    d->exec = exec;
    d->registry = registry;
    snprintf(d->region, sizeof d->region, "%s", cfg && cfg->region ? cfg->region : "us-east-1");
    d->timer = xmalloc(sizeof *d->timer);
    uv_timer_init(loop, d->timer);
    d->timer->data = d;
    d->prune_timer = xmalloc(sizeof *d->prune_timer);
    uv_timer_init(loop, d->prune_timer);
    d->prune_timer->data = d;
    uv_timer_start(d->prune_timer, on_prune, 60 * 1000, DURABLE_PRUNE_MS);
    uv_unref((uv_handle_t *)d->prune_timer);

    fn_t *fns = NULL;
    size_t nfns = 0;
    if (registry_list(registry, &fns, &nfns, err) < 0) {
        durable_close(d);
        return -EIO;
    }
    for (size_t i = 0; i < nfns; i++)
        durable_function_changed(d, &fns[i]);
    fn_list_free(fns, nfns);

    store_durable_exec_t *running = NULL;
    size_t n = 0;
    int r = store_durable_exec_running(async_store(async), &running, &n, err);
    if (r < 0) {
        durable_close(d);
        return r;
    }
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        durable_run_t *run = run_get(d, running[i].id, running[i].function);
        /* One that was running when the server stopped runs again now. */
        run->wake_ms = running[i].in_flight ? now : running[i].next_wake_ms;
    }
    if (n)
        log_info("durable", "taking up %zu running executions", n);
    store_durable_exec_list_free(running, n);
    static const char *const status_label[] = { "status", NULL };
    static const char *const kind_label[] = { "kind", NULL };
    d->m_execs = metrics_family_new(METRICS_GAUGE, "mayfly_durable_executions",
                                    "Durable executions kept, by status", status_label, NULL, 0);
    d->m_pending = metrics_family_new(METRICS_GAUGE, "mayfly_durable_pending",
                                      "Operations running executions wait on (timer: waits and "
                                      "step retries; callback)",
                                      kind_label, NULL, 0);
    metrics_add_collector(collect, d);
    arm_timer(d);
    *out = d;
    return 0;
}

void durable_stop(durable_t *d)
{
    if (!d || d->stopping)
        return;
    d->stopping = true;
    uv_timer_stop(d->timer);
    uv_timer_stop(d->prune_timer);
    size_t it = 0;
    const char *key;
    void *value;
    mf_error_t err = MF_ERROR_INIT;
    mf_error_plain(&err, ESHUTDOWN, "the server is shutting down");
    while (map_next(&d->runs, &it, &key, &value)) {
        durable_run_t *run = value;
        while (run->waiters) {
            durable_waiter_t *w = run->waiters;
            run->waiters = w->next;
            w->cb(w->ud, &(durable_outcome_t){ .r = -ESHUTDOWN, .err = &err, .id = run->id });
            free(w);
        }
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void durable_close(durable_t *d)
{
    if (!d)
        return;
    durable_stop(d);
    size_t it = 0;
    const char *key;
    void *value;
    while (map_next(&d->runs, &it, &key, &value))
        free(value);
    map_release(&d->runs);
    it = 0;
    while (map_next(&d->fns, &it, &key, &value))
        free(value);
    map_release(&d->fns);
    uv_close((uv_handle_t *)d->timer, free_handle);
    uv_close((uv_handle_t *)d->prune_timer, free_handle);
    d->closed = true;
    if (!d->jobs)
        durable_free(d);
}

static void durable_free(durable_t *d)
{
    free(d);
}

void durable_function_changed(durable_t *d, const fn_t *fn)
{
    if (!fn->durable.enabled) {
        free(map_remove(&d->fns, fn->name));
        return;
    }
    durable_fn_t *df = map_get(&d->fns, fn->name);
    if (!df) {
        df = xcalloc(1, sizeof *df);
        map_put(&d->fns, fn->name, df);
    }
    df->cfg = fn->durable;
}

static int forget_apply(void *db, void *arg, mf_error_t *err)
{
    return store_durable_forget_function(db, arg, err);
}

static void forget_done(void *arg, int r, const mf_error_t *err)
{
    if (r < 0)
        log_warn("durable", "forgetting %s's executions: %s", (char *)arg, err->msg);
    free(arg);
}

void durable_function_removed(durable_t *d, const char *function)
{
    free(map_remove(&d->fns, function));
    mf_error_t err = MF_ERROR_INIT;
    char *name = xstrdup(function);
    if (async_write(d->async, false, forget_apply, forget_done, name, &err) < 0)
        free(name);
}

bool durable_is_durable(durable_t *d, const char *function)
{
    return d && map_get(&d->fns, function) != NULL;
}

int durable_start(durable_t *d, const char *function, buf_t *input,
                  const durable_start_opts_t *opts, durable_outcome_cb cb, void *ud,
                  mf_error_t *err)
{
    if (d->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    durable_fn_t *df = map_get(&d->fns, function);
    if (!df)
        return mf_error_plain(err, ENOENT, "%s is not a durable function", function);
    if (opts && opts->name && !durable_name_valid(opts->name))
        return mf_error_plain(err, EINVAL,
                              "DurableExecutionName: must match [A-Za-z0-9_-]{1,64}");
    /* The input is the SDK's InputPayload: JSON text; an empty body is {}. */
    if (input->len == 0)
        buf_adds(input, "{}");
    json_t *parsed = memchr(input->data, '\0', input->len)
                         ? NULL
                         : json_loadb(input->data, input->len, JSON_DECODE_ANY, NULL);
    if (!parsed)
        return mf_error_plain(err, EINVAL, "a durable execution's input must be JSON");
    json_decref(parsed);
    job_t *j = job_new(d, JOB_START);
    snprintf(j->function, sizeof j->function, "%s", function);
    if (opts && opts->name)
        snprintf(j->name, sizeof j->name, "%s", opts->name);
    j->timeout_s = df->cfg.execution_timeout_s;
    j->retention_days = df->cfg.retention_days;
    j->input = *input;
    buf_init(input, 0);
    j->ocb = cb;
    j->ud = ud;
    if (opts)
        j->sopts = *opts;
    int r = submit(j, err);
    if (r < 0) {
        *input = j->input;
        buf_init(&j->input, 0);
        job_free(j);
    }
    return r;
}

static void answer_now(durable_answer_cb cb, void *ud, int status, const char *type,
                       const char *msg)
{
    cb(ud, &(durable_answer_t){ .status = status, .error_type = type, .message = msg });
}

void durable_checkpoint(durable_t *d, const char *caller, const durable_arn_t *arn,
                        const char *body, size_t len, durable_answer_cb cb, void *ud)
{
    job_t *j = job_new(d, JOB_CHECKPOINT);
    mf_error_t err = MF_ERROR_INIT;
    int r = durable_checkpoint_parse(body, len, &j->cp, &err);
    if (r < 0) {
        job_free(j);
        answer_now(cb, ud, r == -EFBIG ? 413 : 400,
                   r == -EFBIG ? "RequestTooLargeException" : "InvalidParameterValueException",
                   err.msg);
        return;
    }
    if (caller && strcmp(caller, arn->function)) {
        job_free(j);
        char msg[256];
        snprintf(msg, sizeof msg, "function %s may not checkpoint an execution of %s", caller,
                 arn->function);
        answer_now(cb, ud, 403, "AccessDeniedException", msg);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", arn->id);
    snprintf(j->caller, sizeof j->caller, "%s", caller ? caller : "");
    j->acb = cb;
    j->ud = ud;
    if (submit(j, &err) < 0) {
        job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}

void durable_state(durable_t *d, const char *caller, const durable_arn_t *arn, const char *token,
                   const char *marker, int max_items, durable_answer_cb cb, void *ud)
{
    if (caller && strcmp(caller, arn->function)) {
        answer_now(cb, ud, 403, "AccessDeniedException",
                   "a function reads the state of its own executions only");
        return;
    }
    store_queue_t *q = async_store(d->async);
    store_durable_exec_t ex = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    int r = store_durable_exec_get(q, arn->id, &ex, &err);
    if (r < 0) {
        answer_now(cb, ud, r == -ENOENT ? 404 : 500,
                   r == -ENOENT ? "ResourceNotFoundException" : "ServiceException", err.msg);
        return;
    }
    if (strcmp(ex.function, arn->function) || !token || !ex.token[0] || strcmp(token, ex.token)) {
        store_durable_exec_clear(&ex);
        answer_now(cb, ud, 400, "InvalidParameterValueException", "Invalid checkpoint token");
        return;
    }
    json_t *ops;
    if ((r = store_durable_ops_get(q, ex.id, &ops, &err)) < 0) {
        store_durable_exec_clear(&ex);
        answer_now(cb, ud, 500, "ServiceException", err.msg);
        return;
    }
    durable_oplog_t log;
    durable_oplog_init(&log, ops, ex.seq);
    char *end = NULL;
    unsigned long long from = marker && *marker ? strtoull(marker, &end, 10) : 0;
    if (end && *end) {
        durable_oplog_release(&log);
        store_durable_exec_clear(&ex);
        answer_now(cb, ud, 400, "InvalidParameterValueException", "Marker: not one this API gave");
        return;
    }
    if (max_items <= 0 || max_items > DURABLE_PAGE_MAX)
        max_items = DURABLE_PAGE_MAX;
    size_t next = 0;
    json_t *page = ops_page(&log, (size_t)from, (size_t)max_items, DURABLE_EVENT_OPS_BYTES, &next);
    char m[32];
    snprintf(m, sizeof m, "%zu", next);
    cleanup_json json_t *body =
        json_pack("{s:o, s:s?}", "Operations", page, "NextMarker", next ? m : NULL);
    durable_oplog_release(&log);
    store_durable_exec_clear(&ex);
    cb(ud, &(durable_answer_t){ .status = 200, .body = body });
}

void durable_callback(durable_t *d, const char *callback_id, const char *kind, const char *body,
                      size_t len, durable_answer_cb cb, void *ud)
{
    if (strlen(callback_id) >= 65) {
        answer_now(cb, ud, 404, "ResourceNotFoundException", "no such callback");
        return;
    }
    job_t *j = job_new(d, JOB_CALLBACK);
    snprintf(j->callback_id, sizeof j->callback_id, "%s", callback_id);
    snprintf(j->kind_s, sizeof j->kind_s, "%s", kind);
    if (!strcmp(kind, "succeed")) {
        if (len > DURABLE_MAX_PAYLOAD) {
            job_free(j);
            answer_now(cb, ud, 413, "RequestTooLargeException", "Result: at most 256 KiB");
            return;
        }
        /* The result is the body's bytes, as the SDK's callback passes them. */
        buf_t b = BUF_INIT;
        buf_add(&b, body ? body : "", len);
        if (memchr(b.data ? b.data : "", '\0', b.len)) {
            buf_release(&b);
            job_free(j);
            answer_now(cb, ud, 400, "InvalidParameterValueException", "Result: must be text");
            return;
        }
        j->payload = json_stringn(b.data ? b.data : "", b.len);
        buf_release(&b);
        if (!j->payload) {
            job_free(j);
            answer_now(cb, ud, 400, "InvalidParameterValueException", "Result: must be UTF-8");
            return;
        }
    } else if (!strcmp(kind, "fail")) {
        j->error = len ? json_loadb(body, len, 0, NULL) : json_object();
        if (!json_is_object(j->error) || len > DURABLE_MAX_PAYLOAD) {
            job_free(j);
            answer_now(cb, ud, 400, "InvalidParameterValueException",
                       "the body must be an ErrorObject {ErrorType, ErrorMessage, …}");
            return;
        }
    }
    j->acb = cb;
    j->ud = ud;
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}

void durable_stop_execution(durable_t *d, const char *id, const json_t *error,
                            durable_answer_cb cb, void *ud)
{
    job_t *j = job_new(d, JOB_STOP);
    snprintf(j->id, sizeof j->id, "%s", id);
    j->error = error ? json_deep_copy(error) : NULL;
    j->acb = cb;
    j->ud = ud;
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}

/* ---- reads ------------------------------------------------------------------- */

static json_t *time_json(int64_t ms, char view)
{
    if (!ms)
        return json_null();
    if (view == 'l')
        return json_real((double)ms / 1000.0);
    char iso[40];
    clock_format_iso8601(ms, iso, sizeof iso);
    return json_string(iso);
}

static json_t *parse_or_null(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *exec_json(durable_t *d, const store_durable_exec_t *ex, char view)
{
    char arn[512], fn_arn[256];
    durable_arn_format(d->region, ex->function, ex->name, ex->id, arn, sizeof arn);
    snprintf(fn_arn, sizeof fn_arn, "arn:aws:lambda:%s:000000000000:function:%s", d->region,
             ex->function);
    if (view == 'l')
        return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "DurableExecutionArn", arn,
                         "DurableExecutionName", ex->name, "FunctionArn", fn_arn, "Status",
                         ex->status, "StartTimestamp", time_json(ex->start_ms, view),
                         "EndTimestamp", time_json(ex->end_ms, view));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:s?}", "id",
                     ex->id, "name", ex->name, "arn", arn, "function", ex->function, "status",
                     ex->status, "start", time_json(ex->start_ms, view), "end",
                     time_json(ex->end_ms, view), "input", parse_or_null(ex->input), "result",
                     parse_or_null(ex->result), "error", parse_or_null(ex->error), "invocations",
                     ex->invocations, "parent_execution", ex->parent_id[0] ? ex->parent_id : NULL);
}

/* One operation as /v1 shows it. */
static json_t *op_v1(const json_t *op)
{
    const char *keys[] = { "StepDetails", "WaitDetails", "CallbackDetails",
                           "ChainedInvokeDetails", "ContextDetails", NULL };
    const json_t *det = NULL;
    for (const char **k = keys; *k && !det; k++)
        det = json_object_get(op, *k);
    json_t *o = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "id", json_object_get(op, "Id"),
                          "name", json_object_get(op, "Name"), "type",
                          json_object_get(op, "Type"), "subtype", json_object_get(op, "SubType"),
                          "status", json_object_get(op, "Status"), "parent_id",
                          json_object_get(op, "ParentId"));
    const json_t *st = json_object_get(op, "StartTimestamp");
    const json_t *en = json_object_get(op, "EndTimestamp");
    if (json_is_number(st))
        json_object_set_new(o, "start", time_json((int64_t)(json_number_value(st) * 1000), 'v'));
    if (json_is_number(en))
        json_object_set_new(o, "end", time_json((int64_t)(json_number_value(en) * 1000), 'v'));
    if (det) {
        const json_t *a = json_object_get(det, "Attempt");
        if (json_is_integer(a))
            json_object_set_new(o, "attempts", json_integer(json_integer_value(a) + 1));
        if (json_object_get(det, "Result"))
            json_object_set_new(o, "result",
                                parse_or_null(json_string_value(json_object_get(det, "Result"))));
        if (json_object_get(det, "Error"))
            json_object_set(o, "error", json_object_get(det, "Error"));
        if (json_object_get(det, "CallbackId"))
            json_object_set(o, "callback_id", json_object_get(det, "CallbackId"));
    }
    return o;
}

int durable_get(durable_t *d, const char *id, char view, bool with_ops, json_t **out,
                mf_error_t *err)
{
    store_queue_t *q = async_store(d->async);
    store_durable_exec_t ex = { 0 };
    int r = store_durable_exec_get(q, id, &ex, err);
    if (r < 0)
        return r;
    json_t *o = exec_json(d, &ex, view);
    if (view == 'l') {
        json_object_set_new(o, "InputPayload", json_string(ex.input ? ex.input : "{}"));
        if (ex.result && !strcmp(ex.status, "SUCCEEDED"))
            json_object_set_new(o, "Result", json_string(ex.result));
        if (ex.error)
            json_object_set_new(o, "Error", parse_or_null(ex.error));
        json_object_set_new(o, "Version", json_string("$LATEST"));
    }
    if (with_ops) {
        json_t *ops;
        if ((r = store_durable_ops_get(q, ex.id, &ops, err)) < 0) {
            json_decref(o);
            store_durable_exec_clear(&ex);
            return r;
        }
        json_t *arr = json_array();
        size_t i;
        json_t *op;
        json_array_foreach(ops, i, op) {
            if (!strcmp(json_string_value(json_object_get(op, "Type")) ?: "", "EXECUTION"))
                continue;
            json_array_append_new(arr, view == 'l' ? durable_op_public(op) : op_v1(op));
        }
        json_decref(ops);
        json_object_set_new(o, "operations", arr);
    }
    store_durable_exec_clear(&ex);
    *out = o;
    return 0;
}

int durable_list(durable_t *d, const char *function, const char *status, int limit, char view,
                 json_t **out, mf_error_t *err)
{
    store_durable_exec_t *list = NULL;
    size_t n = 0;
    if (limit <= 0 || limit > 1000)
        limit = 100;
    int r = store_durable_exec_list(async_store(d->async), function, status, limit, &list, &n,
                                    err);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, exec_json(d, &list[i], view));
    store_durable_exec_list_free(list, n);
    *out = arr;
    return 0;
}

int durable_history(durable_t *d, const char *id, const char *marker, int max_items,
                    json_t **out, mf_error_t *err)
{
    store_queue_t *q = async_store(d->async);
    json_t *ops;
    store_durable_exec_t ex = { 0 };
    int r = store_durable_exec_get(q, id, &ex, err);
    if (r < 0)
        return r;
    store_durable_exec_clear(&ex);
    if ((r = store_durable_ops_get(q, id, &ops, err)) < 0)
        return r;
    /* Each operation gives its start and, once ended, its end. */
    json_t *events = json_array();
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        const char *type = json_string_value(json_object_get(op, "Type")) ?: "STEP";
        const char *status = json_string_value(json_object_get(op, "Status")) ?: "STARTED";
        char cap[32];
        snprintf(cap, sizeof cap, "%s", type);
        json_t *ev = json_pack("{s:s, s:O?, s:O?, s:O?}", "Id", json_string_value(json_object_get(op, "Id")) ?: "",
                               "Name", json_object_get(op, "Name"), "ParentId",
                               json_object_get(op, "ParentId"), "EventTimestamp",
                               json_object_get(op, "StartTimestamp"));
        char t[64];
        snprintf(t, sizeof t, "%sStarted", type);
        json_object_set_new(ev, "EventType", json_string(t));
        json_array_append_new(events, ev);
        if (json_object_get(op, "EndTimestamp")) {
            json_t *end = json_deep_copy(ev);
            snprintf(t, sizeof t, "%s%s", type, status);
            json_object_set_new(end, "EventType", json_string(t));
            json_object_set(end, "EventTimestamp", json_object_get(op, "EndTimestamp"));
            json_array_append_new(events, end);
        }
    }
    json_decref(ops);
    char *end = NULL;
    unsigned long long from = marker && *marker ? strtoull(marker, &end, 10) : 0;
    if (end && *end) {
        json_decref(events);
        return mf_error_plain(err, EINVAL, "Marker: not one this API gave");
    }
    if (max_items <= 0 || max_items > DURABLE_PAGE_MAX)
        max_items = DURABLE_PAGE_MAX;
    json_t *page = json_array();
    size_t n = json_array_size(events), k = (size_t)from;
    for (; k < n && json_array_size(page) < (size_t)max_items; k++) {
        json_t *e = json_array_get(events, k);
        json_object_set_new(e, "EventId", json_integer((json_int_t)k + 1));
        json_array_append(page, e);
    }
    json_decref(events);
    char m[32];
    snprintf(m, sizeof m, "%zu", k);
    *out = json_pack("{s:o, s:s?}", "Events", page, "NextMarker", k < n ? m : NULL);
    return 0;
}
