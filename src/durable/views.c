/* Reads of durable executions (see durable/durable.h): the Lambda API's
 * and /v1's views of an execution, its operations and its history, on the
 * connection to the queue's database they are given (a job's of the
 * queue's writer, off the loop). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "durable/internal.h"

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
    tenant_arn("lambda", d->region, "function:", ex->function, fn_arn, sizeof fn_arn);
    if (view == 'l')
        return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "DurableExecutionArn", arn,
                         "DurableExecutionName", ex->name, "FunctionArn", fn_arn, "Status",
                         ex->status, "StartTimestamp", time_json(ex->start_ms, view),
                         "EndTimestamp", time_json(ex->end_ms, view));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:s?}", "id", ex->id,
                     "name", ex->name, "arn", arn, "function", tenant_local(ex->function), "status", ex->status,
                     "start", time_json(ex->start_ms, view), "end", time_json(ex->end_ms, view),
                     "input", parse_or_null(ex->input), "result", parse_or_null(ex->result),
                     "error", parse_or_null(ex->error), "invocations", ex->invocations,
                     "parent_execution", ex->parent_id[0] ? ex->parent_id : NULL);
}

/* One operation as /v1 shows it. */
static json_t *op_v1(const json_t *op)
{
    const char *keys[] = {"StepDetails",          "WaitDetails",    "CallbackDetails",
                          "ChainedInvokeDetails", "ContextDetails", NULL};
    const json_t *det = NULL;
    for (const char **k = keys; *k && !det; k++)
        det = json_object_get(op, *k);
    json_t *o =
        json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "id", json_object_get(op, "Id"), "name",
                  json_object_get(op, "Name"), "type", json_object_get(op, "Type"), "subtype",
                  json_object_get(op, "SubType"), "status", json_object_get(op, "Status"),
                  "parent_id", json_object_get(op, "ParentId"));
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

int durable_get(durable_t *d, store_queue_t *q, const char *id, char view, bool with_ops,
                json_t **out, mf_error_t *err)
{
    store_durable_exec_t ex = {0};
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
        json_array_foreach(ops, i, op)
        {
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

int durable_list(durable_t *d, store_queue_t *q, const char *function, const char *status,
                 int limit, char view, json_t **out, mf_error_t *err)
{
    store_durable_exec_t *list = NULL;
    size_t n = 0;
    if (limit <= 0 || limit > 1000)
        limit = 100;
    int r = store_durable_exec_list(q, function, status, limit, &list, &n, err);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, exec_json(d, &list[i], view));
    store_durable_exec_list_free(list, n);
    *out = arr;
    return 0;
}

int durable_history(durable_t *d, store_queue_t *q, const char *id, const char *marker,
                    int max_items, json_t **out, mf_error_t *err)
{
    json_t *ops;
    store_durable_exec_t ex = {0};
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
    json_array_foreach(ops, i, op)
    {
        const char *type = json_string_value(json_object_get(op, "Type")) ?: "STEP";
        const char *status = json_string_value(json_object_get(op, "Status")) ?: "STARTED";
        char cap[32];
        snprintf(cap, sizeof cap, "%s", type);
        json_t *ev = json_pack(
            "{s:s, s:O?, s:O?, s:O?}", "Id", json_string_value(json_object_get(op, "Id")) ?: "",
            "Name", json_object_get(op, "Name"), "ParentId", json_object_get(op, "ParentId"),
            "EventTimestamp", json_object_get(op, "StartTimestamp"));
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
