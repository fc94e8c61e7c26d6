/* The operation log of a durable execution and how each update of the
 * protocol changes it (see durable/durable.h). Pure: no I/O, the clock
 * comes in as now_ms, so the rules are tested alone (tests/unit). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/id.h"
#include "durable/durable.h"

/* Lambda's timestamps are epoch seconds (restJson1's default). */
static json_t *op__time(int64_t ms)
{
    return json_real((double)ms / 1000.0);
}

static const char *op__str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool op__terminal(const char *status)
{
    static const char *const done[] = {"SUCCEEDED", "FAILED",  "CANCELLED",
                                       "TIMED_OUT", "STOPPED", NULL};
    for (const char *const *s = done; *s; s++)
        if (status && !strcmp(status, *s))
            return true;
    return false;
}

void durable_oplog_init(durable_oplog_t *log, json_t *ops, int64_t seq)
{
    memset(log, 0, sizeof *log);
    log->ops = json_is_array(ops) ? ops : json_array();
    if (ops && !json_is_array(ops))
        json_decref(ops);
    log->index = json_object();
    log->seq = seq;
    log->chained = json_array();
    log->changed = json_array();
    size_t i;
    json_t *op;
    json_array_foreach(log->ops, i, op)
    {
        const char *id = op__str(op, "Id");
        if (id)
            json_object_set_new(log->index, id, json_integer((json_int_t)i));
    }
}

void durable_oplog_release(durable_oplog_t *log)
{
    json_decref(log->ops);
    json_decref(log->index);
    json_decref(log->result);
    json_decref(log->error);
    json_decref(log->chained);
    json_decref(log->changed);
    memset(log, 0, sizeof *log);
}

json_t *durable_oplog_find(const durable_oplog_t *log, const char *id, size_t *ord)
{
    const json_t *i = json_object_get(log->index, id);
    if (!json_is_integer(i))
        return NULL;
    if (ord)
        *ord = (size_t)json_integer_value(i);
    return json_array_get(log->ops, (size_t)json_integer_value(i));
}

/* Marks the operation at ord changed: a new change number, remembered. */
static void op__touch(durable_oplog_t *log, size_t ord)
{
    json_t *op = json_array_get(log->ops, ord);
    json_object_set_new(op, "_seq", json_integer(++log->seq));
    size_t i;
    json_t *v;
    json_array_foreach(log->changed, i, v) if ((size_t)json_integer_value(v) == ord) return;
    json_array_append_new(log->changed, json_integer((json_int_t)ord));
}

static json_t *op__details(json_t *op, const char *key)
{
    json_t *d = json_object_get(op, key);
    if (!json_is_object(d)) {
        d = json_object();
        json_object_set_new(op, key, d);
    }
    return d;
}

static const char *op__details_key(const char *type)
{
    if (!strcmp(type, "STEP"))
        return "StepDetails";
    if (!strcmp(type, "WAIT"))
        return "WaitDetails";
    if (!strcmp(type, "CALLBACK"))
        return "CallbackDetails";
    if (!strcmp(type, "CHAINED_INVOKE"))
        return "ChainedInvokeDetails";
    if (!strcmp(type, "CONTEXT"))
        return "ContextDetails";
    return "ExecutionDetails";
}

static size_t op__append(durable_oplog_t *log, json_t *op)
{
    size_t ord = json_array_size(log->ops);
    json_object_set_new(log->index, op__str(op, "Id"), json_integer((json_int_t)ord));
    json_array_append_new(log->ops, op);
    return ord;
}

void durable_oplog_start(durable_oplog_t *log, const char *id, const char *input, int64_t now_ms)
{
    json_t *op = json_pack("{s:s, s:s, s:s, s:o, s:{s:s}}", "Id", id, "Type", "EXECUTION", "Status",
                           "STARTED", "StartTimestamp", op__time(now_ms), "ExecutionDetails",
                           "InputPayload", input ? input : "{}");
    op__touch(log, op__append(log, op));
}

static int64_t op__opt_int(const json_t *u, const char *opts, const char *key)
{
    const json_t *v = json_object_get(json_object_get(u, opts), key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static int oplog__apply(durable_oplog_t *log, const json_t *u, const char *exec_id, int64_t now_ms,
                        mf_error_t *err)
{
    const char *id = op__str(u, "Id");
    const char *type = op__str(u, "Type");
    const char *action = op__str(u, "Action");
    const json_t *payload = json_object_get(u, "Payload");
    const json_t *error = json_object_get(u, "Error");
    if (!id || !type || !action)
        return mf_error_plain(err, EINVAL, "an update needs Id, Type and Action");

    if (!strcmp(type, "EXECUTION")) {
        /* The execution's own outcome (a result too large to answer with). */
        if (!strcmp(action, "SUCCEED")) {
            log->outcome = "SUCCEEDED";
            json_decref(log->result);
            log->result = json_is_string(payload) ? json_incref((json_t *)payload) : NULL;
        } else if (!strcmp(action, "FAIL")) {
            log->outcome = "FAILED";
            json_decref(log->error);
            log->error = json_is_object(error) ? json_incref((json_t *)error) : NULL;
        } else {
            return mf_error_plain(err, EINVAL, "%s of an EXECUTION: only SUCCEED or FAIL", action);
        }
        return 0;
    }

    size_t ord = 0;
    json_t *op = durable_oplog_find(log, id, &ord);
    const char *dkey = op__details_key(type);
    if (op && strcmp(op__str(op, "Type") ?: "", type))
        return mf_error_plain(err, EINVAL, "operation %.64s is a %s, not a %s", id,
                              op__str(op, "Type") ?: "?", type);
    const char *status = op ? op__str(op, "Status") : NULL;
    if (op && op__terminal(status))
        return mf_error_plain(err, EINVAL, "operation %.64s has ended (%s): %s is too late", id,
                              status, action);

    /* What a START needs is checked before anything changes. */
    if (!strcmp(action, "START") && !strcmp(type, "WAIT") &&
        op__opt_int(u, "WaitOptions", "WaitSeconds") < 1)
        return mf_error_plain(err, EINVAL, "WaitOptions.WaitSeconds: must be at least 1");
    if (!strcmp(action, "START") && !strcmp(type, "CHAINED_INVOKE") &&
        !op__str(json_object_get(u, "ChainedInvokeOptions"), "FunctionName"))
        return mf_error_plain(err, EINVAL,
                              "ChainedInvokeOptions.FunctionName: required to START a "
                              "CHAINED_INVOKE");
    bool created = !op;
    if (!op) {
        if (json_array_size(log->ops) >= DURABLE_MAX_OPERATIONS)
            return mf_error_plain(err, EINVAL, "an execution holds at most %d operations",
                                  DURABLE_MAX_OPERATIONS);
        if (!strcmp(action, "CANCEL"))
            return mf_error_plain(err, EINVAL, "operation %.64s was never started", id);
        op = json_pack("{s:s, s:s, s:o}", "Id", id, "Type", type, "StartTimestamp",
                       op__time(now_ms));
        static const char *const copied[] = {"ParentId", "Name", "SubType"};
        for (size_t k = 0; k < 3; k++)
            if (json_is_string(json_object_get(u, copied[k])))
                json_object_set(op, copied[k], json_object_get(u, copied[k]));
        json_object_set_new(op, "Status", json_string("STARTED"));
        ord = op__append(log, op);
        if (!strcmp(type, "STEP"))
            json_object_set_new(op__details(op, dkey), "Attempt", json_integer(0));
    } else if (strcmp(action, "START") && !strcmp(type, "WAIT") && strcmp(action, "CANCEL")) {
        return mf_error_plain(err, EINVAL, "a WAIT ends by itself: only START or CANCEL");
    }
    json_t *details = op__details(op, dkey);

    if (!strcmp(action, "START")) {
        json_object_set_new(op, "Status", json_string("STARTED"));
        if (!strcmp(type, "WAIT")) {
            int64_t s = op__opt_int(u, "WaitOptions", "WaitSeconds");
            if (s < 1)
                return mf_error_plain(err, EINVAL, "WaitOptions.WaitSeconds: must be at least 1");
            json_object_set_new(details, "ScheduledEndTimestamp", op__time(now_ms + s * 1000));
            json_object_set_new(op, "_due_ms", json_integer(now_ms + s * 1000));
        } else if (!strcmp(type, "CALLBACK")) {
            if (!json_object_get(details, "CallbackId")) {
                char cb[ID_UUID_LEN + 1];
                id_uuid4(cb);
                json_object_set_new(details, "CallbackId", json_string(cb));
            }
            int64_t t = op__opt_int(u, "CallbackOptions", "TimeoutSeconds");
            int64_t hb = op__opt_int(u, "CallbackOptions", "HeartbeatTimeoutSeconds");
            if (t > 0)
                json_object_set_new(op, "_deadline_ms", json_integer(now_ms + t * 1000));
            if (hb > 0) {
                json_object_set_new(op, "_hb_s", json_integer(hb));
                json_object_set_new(op, "_hb_ms", json_integer(now_ms + hb * 1000));
            }
        } else if (!strcmp(type, "CHAINED_INVOKE")) {
            const char *fn = op__str(json_object_get(u, "ChainedInvokeOptions"), "FunctionName");
            if (!fn)
                return mf_error_plain(err, EINVAL,
                                      "ChainedInvokeOptions.FunctionName: required to START a "
                                      "CHAINED_INVOKE");
            /* The callee starts once, with the operation. */
            if (created)
                json_array_append_new(
                    log->chained,
                    json_pack("{s:I, s:s, s:s, s:s}", "ord", (json_int_t)ord, "function", fn,
                              "payload",
                              json_is_string(payload) ? json_string_value(payload) : "{}", "exec",
                              exec_id ? exec_id : ""));
        } else if (!strcmp(type, "CONTEXT")) {
            if (json_is_true(
                    json_object_get(json_object_get(u, "ContextOptions"), "ReplayChildren")))
                json_object_set_new(details, "ReplayChildren", json_true());
        }
    } else if (!strcmp(action, "SUCCEED")) {
        if (!strcmp(type, "CALLBACK") || !strcmp(type, "CHAINED_INVOKE"))
            return mf_error_plain(err, EINVAL, "a %s ends from outside, not by SUCCEED", type);
        json_object_set_new(op, "Status", json_string("SUCCEEDED"));
        json_object_set_new(op, "EndTimestamp", op__time(now_ms));
        if (json_is_string(payload))
            json_object_set(details, "Result", (json_t *)payload);
        if (!strcmp(type, "CONTEXT") &&
            json_is_true(json_object_get(json_object_get(u, "ContextOptions"), "ReplayChildren")))
            json_object_set_new(details, "ReplayChildren", json_true());
        json_object_del(op, "_due_ms");
    } else if (!strcmp(action, "FAIL")) {
        if (!strcmp(type, "CALLBACK") || !strcmp(type, "CHAINED_INVOKE"))
            return mf_error_plain(err, EINVAL, "a %s ends from outside, not by FAIL", type);
        json_object_set_new(op, "Status", json_string("FAILED"));
        json_object_set_new(op, "EndTimestamp", op__time(now_ms));
        if (json_is_object(error))
            json_object_set(details, "Error", (json_t *)error);
        if (json_is_string(payload))
            json_object_set(details, "Result", (json_t *)payload);
        json_object_del(op, "_due_ms");
    } else if (!strcmp(action, "RETRY")) {
        if (strcmp(type, "STEP"))
            return mf_error_plain(err, EINVAL, "only a STEP is retried, not a %s", type);
        int64_t delay = op__opt_int(u, "StepOptions", "NextAttemptDelaySeconds");
        if (delay < 1)
            delay = 1;
        json_t *a = json_object_get(details, "Attempt");
        json_object_set_new(details, "Attempt",
                            json_integer((json_is_integer(a) ? json_integer_value(a) : 0) + 1));
        json_object_set_new(details, "NextAttemptTimestamp", op__time(now_ms + delay * 1000));
        if (json_is_object(error))
            json_object_set(details, "Error", (json_t *)error);
        else
            json_object_del(details, "Error");
        /* A waitForCondition keeps its state between attempts here. */
        if (json_is_string(payload))
            json_object_set(details, "Result", (json_t *)payload);
        json_object_set_new(op, "Status", json_string("PENDING"));
        json_object_set_new(op, "_due_ms", json_integer(now_ms + delay * 1000));
    } else if (!strcmp(action, "CANCEL")) {
        json_object_set_new(op, "Status", json_string("CANCELLED"));
        json_object_set_new(op, "EndTimestamp", op__time(now_ms));
        json_object_del(op, "_due_ms");
        json_object_del(op, "_deadline_ms");
        json_object_del(op, "_hb_ms");
    }
    op__touch(log, ord);
    return 0;
}

int durable_oplog_apply(durable_oplog_t *log, const json_t *u, const char *exec_id, int64_t now_ms,
                        mf_error_t *err)
{
    size_t n = json_array_size(log->ops);
    int r = oplog__apply(log, u, exec_id, now_ms, err);
    if (r < 0 && json_array_size(log->ops) > n) {
        /* A refused update leaves no operation behind. */
        const char *id = op__str(json_array_get(log->ops, n), "Id");
        if (id)
            json_object_del(log->index, id);
        json_array_remove(log->ops, n);
    }
    return r;
}

static int64_t op__int(const json_t *op, const char *key)
{
    const json_t *v = json_object_get(op, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void op__time_out(durable_oplog_t *log, size_t ord, json_t *op, int64_t now_ms,
                         const char *what)
{
    json_object_set_new(op, "Status", json_string("TIMED_OUT"));
    json_object_set_new(op, "EndTimestamp", op__time(now_ms));
    json_object_set_new(
        op__details(op, "CallbackDetails"), "Error",
        json_pack("{s:s, s:s}", "ErrorType", "CallbackTimeout", "ErrorMessage", what));
    json_object_del(op, "_deadline_ms");
    json_object_del(op, "_hb_ms");
    op__touch(log, ord);
}

bool durable_oplog_advance(durable_oplog_t *log, int64_t now_ms)
{
    bool any = false;
    size_t i;
    json_t *op;
    json_array_foreach(log->ops, i, op)
    {
        const char *type = op__str(op, "Type");
        const char *status = op__str(op, "Status");
        if (!type || !status)
            continue;
        int64_t due = op__int(op, "_due_ms");
        if (!strcmp(type, "WAIT") && !strcmp(status, "STARTED") && due && due <= now_ms) {
            json_object_set_new(op, "Status", json_string("SUCCEEDED"));
            json_object_set_new(op, "EndTimestamp", op__time(now_ms));
            json_object_del(op, "_due_ms");
            op__touch(log, i);
            any = true;
        } else if (!strcmp(type, "STEP") && !strcmp(status, "PENDING") && due && due <= now_ms) {
            json_object_set_new(op, "Status", json_string("READY"));
            json_object_del(op, "_due_ms");
            op__touch(log, i);
            any = true;
        } else if (!strcmp(type, "CALLBACK") && !strcmp(status, "STARTED")) {
            int64_t deadline = op__int(op, "_deadline_ms");
            int64_t hb = op__int(op, "_hb_ms");
            if (deadline && deadline <= now_ms) {
                op__time_out(log, i, op, now_ms, "Callback timed out");
                any = true;
            } else if (hb && hb <= now_ms) {
                op__time_out(log, i, op, now_ms, "Callback heartbeat timed out");
                any = true;
            }
        }
    }
    return any;
}

int64_t durable_oplog_next_wake(const durable_oplog_t *log)
{
    int64_t next = 0;
    size_t i;
    json_t *op;
    json_array_foreach(log->ops, i, op)
    {
        const char *status = op__str(op, "Status");
        if (!status || op__terminal(status))
            continue;
        const char *keys[] = {"_due_ms", "_deadline_ms", "_hb_ms"};
        for (size_t k = 0; k < 3; k++) {
            int64_t t = op__int(op, keys[k]);
            if (t && (!next || t < next))
                next = t;
        }
    }
    return next;
}

bool durable_oplog_waiting(const durable_oplog_t *log)
{
    size_t i;
    json_t *op;
    json_array_foreach(log->ops, i, op)
    {
        const char *type = op__str(op, "Type");
        const char *status = op__str(op, "Status");
        if (type && status && !strcmp(status, "STARTED") &&
            (!strcmp(type, "CALLBACK") || !strcmp(type, "CHAINED_INVOKE")))
            return true;
    }
    return false;
}

int durable_oplog_callback(durable_oplog_t *log, const char *callback_id, const char *kind,
                           const json_t *payload, const json_t *error, int64_t now_ms,
                           mf_error_t *err)
{
    size_t i;
    json_t *op;
    json_array_foreach(log->ops, i, op)
    {
        json_t *d = json_object_get(op, "CallbackDetails");
        const char *id = op__str(d, "CallbackId");
        if (!id || strcmp(id, callback_id))
            continue;
        const char *status = op__str(op, "Status");
        if (!status || strcmp(status, "STARTED"))
            return mf_error_plain(err, EINVAL, "the callback is not waiting any more (%s)",
                                  status ? status : "?");
        if (!strcmp(kind, "heartbeat")) {
            int64_t hb = op__int(op, "_hb_s");
            if (hb)
                json_object_set_new(op, "_hb_ms", json_integer(now_ms + hb * 1000));
            /* Written, but with no new change number: nothing the function
             * sees changes. */
            json_array_append_new(log->changed, json_integer((json_int_t)i));
            return 0;
        }
        if (!strcmp(kind, "succeed")) {
            json_object_set_new(op, "Status", json_string("SUCCEEDED"));
            if (json_is_string(payload))
                json_object_set(d, "Result", (json_t *)payload);
        } else {
            json_object_set_new(op, "Status", json_string("FAILED"));
            if (json_is_object(error))
                json_object_set(d, "Error", (json_t *)error);
        }
        json_object_set_new(op, "EndTimestamp", op__time(now_ms));
        json_object_del(op, "_deadline_ms");
        json_object_del(op, "_hb_ms");
        op__touch(log, i);
        return 0;
    }
    return -ENOENT;
}

void durable_oplog_chained_done(durable_oplog_t *log, size_t ord, const char *status,
                                const json_t *result, const json_t *error, int64_t now_ms)
{
    json_t *op = json_array_get(log->ops, ord);
    if (!op || op__terminal(op__str(op, "Status")))
        return;
    json_t *d = op__details(op, "ChainedInvokeDetails");
    json_object_set_new(op, "Status", json_string(status));
    json_object_set_new(op, "EndTimestamp", op__time(now_ms));
    if (json_is_string(result))
        json_object_set(d, "Result", (json_t *)result);
    if (json_is_object(error))
        json_object_set(d, "Error", (json_t *)error);
    op__touch(log, ord);
}

json_t *durable_op_public(const json_t *op)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)op, k, v) if (k[0] != '_') json_object_set(out, k, v);
    return out;
}
