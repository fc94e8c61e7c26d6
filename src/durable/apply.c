/* The durable jobs' writer side (see durable/internal.h): each reads an
 * execution and its log from queue.db, changes them by the protocol's
 * rules (durable/oplog.c) and writes what changed, in one transaction of
 * the queue's writer, so that what a caller hears of is on disk. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "durable/internal.h"

/* An invocation that ends without a status (a crash, a timeout, an
 * unhandled error outside the SDK) is tried again this many times in a
 * row, a second more each time, before the execution fails with its
 * error. */
#define DURABLE_MAX_FAILURES 3
/* How long an execution a spent block budget holds waits before it tries
 * again (the budget's period may roll over, or the budget be raised). */
#define DURABLE_HELD_RETRY_MS 5000

void durable__job_free(job_t *j)
{
    buf_release(&j->input);
    free(j->fail_message);
    durable_checkpoint_req_clear(&j->cp);
    json_decref(j->payload);
    json_decref(j->error);
    json_decref(j->body);
    json_decref(j->chained);
    json_decref(j->callees);
    store_durable_exec_clear(&j->ex);
    free(j->token);
    free(j->marker);
    free(j);
}

job_t *durable__job_new(durable_t *d, enum job_kind kind)
{
    job_t *j = xcalloc(1, sizeof *j);
    j->d = d;
    j->kind = kind;
    j->now_ms = clock_wall_ms();
    buf_init(&j->input, 0);
    return j;
}

void durable__job_refuse(job_t *j, int status, const char *type, const char *fmt, ...)
{
    j->status = status;
    snprintf(j->error_type, sizeof j->error_type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof j->message, fmt, ap);
    va_end(ap);
}

/* The execution's operation log as the store has it, into *log. */
static int read_log(store_queue_t *q, const store_durable_exec_t *ex, durable_oplog_t *log,
                    mf_error_t *err)
{
    json_t *ops;
    int r = store_durable_ops_get(q, ex->id, &ops, err);
    if (r == 0)
        durable_oplog_init(log, ops, ex->seq);
    return r;
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
    json_array_foreach(log->changed, i, v)
    {
        size_t ord = (size_t)json_integer_value(v);
        int r = store_durable_op_put(q, exec_id, (int64_t)ord, json_array_get(log->ops, ord), err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Writes the execution and the operations the log changed, and releases
 * the log; new_token: the execution's token was issued at this change. */
static int save(store_queue_t *q, store_durable_exec_t *ex, durable_oplog_t *log, bool new_token,
                mf_error_t *err)
{
    ex->seq = log->seq;
    if (new_token)
        ex->token_seq = log->seq;
    int r = write_changed(q, ex->id, log, err);
    durable_oplog_release(log);
    return r < 0 ? r : store_durable_exec_put(q, ex, err);
}

static int64_t op_seq(const json_t *op)
{
    return (int64_t)json_integer_value(json_object_get(op, "_seq"));
}

json_t *durable__ops_page(const durable_oplog_t *log, size_t from, size_t max, size_t max_bytes,
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

bool durable__function_name(const char *owner, const char *s, char out[TENANT_QNAME_MAX + 1])
{
    const char *p = strstr(s, "function:");
    p = p ? p + 9 : s;
    size_t n = strcspn(p, ":");
    if (n == 0 || n > FN_NAME_MAX || (p[n] && strcmp(p + n, ":$LATEST")))
        return false;
    char local[FN_NAME_MAX + 1];
    memcpy(local, p, n);
    local[n] = '\0';
    /* A callee is a function of the caller's tenant (core/tenant.h). */
    return registry_valid_local(local) && tenant_resolve(owner, local, out, TENANT_QNAME_MAX + 1);
}

/* Writes a new execution of function (its first operation holding input)
 * into ex, which holds nothing yet. */
static int create_exec(store_queue_t *q, const char *function, const char *name, const char *input,
                       int timeout_s, int retention_days, const char *parent_id,
                       const char *parent_op, int64_t now_ms, store_durable_exec_t *ex,
                       mf_error_t *err)
{
    id_uuid4(ex->id);
    snprintf(ex->function, sizeof ex->function, "%s", function);
    snprintf(ex->name, sizeof ex->name, "%s", name && name[0] ? name : ex->id);
    snprintf(ex->status, sizeof ex->status, "RUNNING");
    ex->input = xstrdup(input && input[0] ? input : "{}");
    ex->start_ms = now_ms;
    ex->deadline_ms = now_ms + (int64_t)timeout_s * 1000;
    ex->retention_days = retention_days;
    ex->next_wake_ms = now_ms; /* due now: a restart before its first run still runs it */
    snprintf(ex->parent_id, sizeof ex->parent_id, "%s", parent_id ? parent_id : "");
    snprintf(ex->parent_op, sizeof ex->parent_op, "%s", parent_op ? parent_op : "");
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 0);
    durable_oplog_start(&log, ex->id, ex->input, now_ms);
    int r = save(q, ex, &log, false, err);
    return r;
}

/* START: a new execution, or the one its name already names. */
static int apply_start(store_queue_t *q, job_t *j, mf_error_t *err)
{
    store_durable_exec_t old = {0};
    if (j->name[0]) {
        int r = store_durable_exec_by_name(q, j->function, j->name, &old, err);
        if (r == 0) {
            j->existed = true;
            if (strcmp(old.input ? old.input : "", j->input.data ? j->input.data : "")) {
                durable__job_refuse(j, 409, "DurableExecutionAlreadyStartedException",
                                    "execution `%s` of %s exists with another input", j->name,
                                    j->function);
            }
            j->ex = old;
            return 0;
        }
        if (r != -ENOENT)
            return r;
    }
    return create_exec(q, j->function, j->name, j->input.data, j->timeout_s, j->retention_days,
                       j->parent_id, j->parent_op, j->now_ms, &j->ex, err);
}

/* The callees of the chained invokes a checkpoint started, created in its
 * transaction: a crash keeps both or neither. A callee that is not a
 * durable function fails its operation at once. */
static int start_callees(store_queue_t *q, job_t *j, durable_oplog_t *log, mf_error_t *err)
{
    j->chained = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(log->chained, i, c)
    {
        size_t ord = (size_t)json_integer_value(json_object_get(c, "ord"));
        const char *f = json_string_value(json_object_get(c, "function"));
        char fname[TENANT_QNAME_MAX + 1] = "";
        const json_t *cfg =
            durable__function_name(j->function, f ? f : "", fname) ? json_object_get(j->callees, fname) : NULL;
        if (!cfg) {
            json_t *e = json_pack("{s:s, s:s}", "ErrorType", "ResourceNotFoundException",
                                  "ErrorMessage", "the callee is not a durable function");
            durable_oplog_chained_done(log, ord, "FAILED", NULL, e, j->now_ms);
            json_decref(e);
            continue;
        }
        char parent_op[32];
        snprintf(parent_op, sizeof parent_op, "%zu", ord);
        store_durable_exec_t callee = {0};
        int r = create_exec(q, fname, NULL, json_string_value(json_object_get(c, "payload")),
                            (int)json_integer_value(json_object_get(cfg, "timeout_s")),
                            (int)json_integer_value(json_object_get(cfg, "retention_days")),
                            j->ex.id, parent_op, j->now_ms, &callee, err);
        if (r == 0)
            json_array_append_new(
                j->chained, json_pack("{s:s, s:s}", "id", callee.id, "function", callee.function));
        store_durable_exec_clear(&callee);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Reads the job's execution into j->ex: 1 when it is there; 0 when it is
 * gone (the job refused with 404 when refuse, else marked gone); < 0 on a
 * store error. */
static int load(store_queue_t *q, job_t *j, bool refuse, mf_error_t *err)
{
    int r = store_durable_exec_get(q, j->id, &j->ex, err);
    if (r != -ENOENT)
        return r < 0 ? r : 1;
    if (refuse)
        durable__job_refuse(j, 404, "ResourceNotFoundException", "no durable execution %s", j->id);
    else
        j->gone = true;
    return 0;
}

/* BEGIN: the event of the execution's next invocation, with a new token. */
static int apply_begin(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = load(q, j, false, err);
    if (r <= 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING")) {
        j->finished = true;
        return 0;
    }
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
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
        json_t *page = durable__ops_page(&log, 0, SIZE_MAX, DURABLE_EVENT_OPS_BYTES, &next);
        char arn[512];
        durable_arn_format(j->d->region, ex->function, ex->name, ex->id, arn, sizeof arn);
        char marker[32] = "";
        if (next)
            snprintf(marker, sizeof marker, "%zu", next);
        j->body = json_pack("{s:s, s:s, s:{s:o, s:s?}}", "DurableExecutionArn", arn,
                            "CheckpointToken", ex->token, "InitialExecutionState", "Operations",
                            page, "NextMarker", next ? marker : NULL);
    }
    r = save(q, ex, &log, true, err);
    return r;
}

/* END: what the invocation answered. */
static int apply_end(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = load(q, j, false, err);
    if (r <= 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    ex->in_flight = false;
    if (strcmp(ex->status, "RUNNING")) {
        j->finished = true;
        return store_durable_exec_put(q, ex, err);
    }
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
    ex->token[0] = '\0'; /* the invocation's token dies with it */
    if (j->held) {
        /* A spent block budget (meter/budget.h) refused the invocation:
         * the execution waits, as a queued event does, counted neither as
         * an invocation nor as a failure; its own timeout still runs. */
        ex->invocations--;
        int64_t wake = j->now_ms + DURABLE_HELD_RETRY_MS;
        ex->next_wake_ms = ex->deadline_ms && ex->deadline_ms < wake ? ex->deadline_ms : wake;
        return save(q, ex, &log, true, err);
    }

    json_t *answer = NULL;
    const char *status = NULL;
    if (j->answered) {
        answer = json_loadb(j->input.data ? j->input.data : "", j->input.len, 0, NULL);
        status = json_string_value(json_object_get(answer, "Status"));
    }
    if (status && !strcmp(status, "SUCCEEDED")) {
        const json_t *res = json_object_get(answer, "Result");
        /* An empty Result: the SDK checkpointed a large one (EXECUTION SUCCEED). */
        const char *text =
            json_is_string(res) && json_string_length(res) ? json_string_value(res) : NULL;
        finish(ex, &log, "SUCCEEDED", text ? text : (ex->result ? NULL : "null"), NULL, j->now_ms);
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
                   j->now_ms),
                j->finished = true;
    } else {
        /* No status: the invocation failed outside the SDK's hands. */
        ex->failures++;
        if (ex->failures >= DURABLE_MAX_FAILURES) {
            cleanup_json json_t *e = json_pack(
                "{s:s, s:s}", "ErrorType", j->fail_type[0] ? j->fail_type : "Error", "ErrorMessage",
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
    r = save(q, ex, &log, true, err);
    return r;
}

static int apply_checkpoint(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = load(q, j, true, err);
    if (r <= 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (j->caller[0] && strcmp(j->caller, ex->function)) {
        durable__job_refuse(j, 403, "AccessDeniedException",
                            "function %s may not checkpoint an execution of %s", j->caller,
                            ex->function);
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
        durable__job_refuse(j, 409, "ResourceConflictException", "the execution has ended (%s)",
                            ex->status);
        return 0;
    }
    if (!ex->token[0] || strcmp(j->cp.token, ex->token)) {
        durable__job_refuse(j, 400, "InvalidParameterValueException",
                            "Invalid checkpoint token: a token is good for one checkpoint of the "
                            "invocation it was given to");
        return 0;
    }
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
    durable_oplog_advance(&log, j->now_ms);
    size_t i;
    json_t *u;
    mf_error_t aerr = MF_ERROR_INIT;
    json_array_foreach(j->cp.updates, i, u)
    {
        if (durable_oplog_apply(&log, u, ex->id, j->now_ms, &aerr) < 0) {
            durable__job_refuse(j, 400, "InvalidParameterValueException", "Updates[%zu]: %s", i,
                                aerr.msg);
            durable_oplog_release(&log);
            return 0; /* nothing of the batch is written */
        }
    }
    if ((r = start_callees(q, j, &log, err)) < 0) {
        durable_oplog_release(&log);
        return r;
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
    {
        if (op_seq(op) > ex->token_seq)
            json_array_append_new(changed, durable_op_public(op));
    }
    j->body = json_pack("{s:s, s:{s:o}}", "CheckpointToken", token, "NewExecutionState",
                        "Operations", changed);
    snprintf(ex->last_token_in, sizeof ex->last_token_in, "%.48s", j->cp.token);
    snprintf(ex->last_client_token, sizeof ex->last_client_token, "%s", j->cp.client_token);
    free(ex->last_response);
    ex->last_response = json_text(j->body);
    snprintf(ex->token, sizeof ex->token, "%s", token);
    r = save(q, ex, &log, true, err);
    j->status = 200;
    return r;
}

static int apply_callback(store_queue_t *q, job_t *j, mf_error_t *err)
{
    char exec_id[37];
    int r = store_durable_callback_find(q, j->callback_id, exec_id, err);
    if (r == -ENOENT) {
        durable__job_refuse(j, 404, "ResourceNotFoundException", "no callback %s", j->callback_id);
        return 0;
    }
    if (r < 0 || (r = store_durable_exec_get(q, exec_id, &j->ex, err)) < 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING")) {
        durable__job_refuse(j, 409, "CallbackTimeoutException", "the execution has ended (%s)",
                            ex->status);
        return 0;
    }
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
    durable_oplog_advance(&log, j->now_ms);
    mf_error_t cerr = MF_ERROR_INIT;
    r = durable_oplog_callback(&log, j->callback_id, j->kind_s, j->payload, j->error, j->now_ms,
                               &cerr);
    if (r < 0) {
        durable__job_refuse(j, 409, "CallbackTimeoutException", "%s",
                            r == -ENOENT ? "no such callback" : cerr.msg);
        durable_oplog_release(&log);
        return 0;
    }
    j->changed = strcmp(j->kind_s, "heartbeat") != 0;
    if (!ex->in_flight) {
        int64_t wake = durable_oplog_next_wake(&log);
        ex->next_wake_ms = j->changed ? j->now_ms : wake;
    }
    r = save(q, ex, &log, false, err);
    j->status = 200;
    j->body = json_object();
    return r;
}

static int apply_stop(store_queue_t *q, job_t *j, mf_error_t *err)
{
    int r = load(q, j, true, err);
    if (r <= 0)
        return r;
    store_durable_exec_t *ex = &j->ex;
    if (strcmp(ex->status, "RUNNING")) {
        durable__job_refuse(j, 409, "ResourceConflictException", "the execution has ended (%s)",
                            ex->status);
        return 0;
    }
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
    cleanup_free char *e = json_text(j->error);
    finish(ex, &log, "STOPPED", NULL,
           e ? e : "{\"ErrorType\":\"ExecutionStopped\",\"ErrorMessage\":\"stopped\"}", j->now_ms);
    r = save(q, ex, &log, false, err);
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
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
    durable_oplog_chained_done(&log, j->ord, j->status_in, j->payload, j->error, j->now_ms);
    j->changed = json_array_size(log.changed) > 0;
    if (!ex->in_flight && j->changed)
        ex->next_wake_ms = j->now_ms;
    r = save(q, ex, &log, false, err);
    return r;
}

/* A page of the execution's log from the marker on, for the function
 * whose token it is: read here, off the loop, and answered by the job. */
static int apply_state(store_queue_t *q, job_t *j, mf_error_t *err)
{
    store_durable_exec_t *ex = &j->ex;
    int r = store_durable_exec_get(q, j->id, ex, err);
    if (r == -ENOENT) {
        durable__job_refuse(j, 404, "ResourceNotFoundException", "%s", err->msg);
        return 0;
    }
    if (r < 0)
        return r;
    if (strcmp(ex->function, j->function) || !j->token || !ex->token[0] ||
        strcmp(j->token, ex->token)) {
        durable__job_refuse(j, 400, "InvalidParameterValueException", "Invalid checkpoint token");
        return 0;
    }
    char *end = NULL;
    unsigned long long from = j->marker && *j->marker ? strtoull(j->marker, &end, 10) : 0;
    if (end && *end) {
        durable__job_refuse(j, 400, "InvalidParameterValueException",
                            "Marker: not one this API gave");
        return 0;
    }
    durable_oplog_t log;
    if ((r = read_log(q, ex, &log, err)) < 0)
        return r;
    int max_items = j->max_items <= 0 || j->max_items > DURABLE_PAGE_MAX ? DURABLE_PAGE_MAX
                                                                         : j->max_items;
    size_t next = 0;
    json_t *page =
        durable__ops_page(&log, (size_t)from, (size_t)max_items, DURABLE_EVENT_OPS_BYTES, &next);
    char m[32];
    snprintf(m, sizeof m, "%zu", next);
    j->body = json_pack("{s:o, s:s?}", "Operations", page, "NextMarker", next ? m : NULL);
    j->status = 200;
    durable_oplog_release(&log);
    return 0;
}

int durable__job_apply(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    store_queue_t *q = db;
    /* Run again (store/writer.h): the last run's answer is the one. */
    json_decref(j->body);
    j->body = NULL;
    switch (j->kind) {
    case JOB_START: return apply_start(q, j, err);
    case JOB_BEGIN: return apply_begin(q, j, err);
    case JOB_END: return apply_end(q, j, err);
    case JOB_CHECKPOINT: return apply_checkpoint(q, j, err);
    case JOB_CALLBACK: return apply_callback(q, j, err);
    case JOB_STOP: return apply_stop(q, j, err);
    case JOB_CHAINED_DONE: return apply_chained_done(q, j, err);
    case JOB_STATE: return apply_state(q, j, err);
    }
    return 0;
}
