/* Invocation records: one, a function's, or filtered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "invoke/async.h"
#include "obs/records.h"
#include "store/health.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000

static json_t *record_json(const store_record_t *r)
{
    char start[32];
    clock_format_iso8601(r->start_ms, start, sizeof start);
    json_t *o = json_pack("{ss ss sI ss ss sf sI si sI sI sb sf ss? ss? si}", "request_id",
                          r->request_id, "function", tenant_local(r->function), "version",
                          (json_int_t)r->version, "status", r->status, "start", start,
                          "duration_ms", r->duration_ms, "billed_ms", (json_int_t)r->billed_ms,
                          "memory_mb", r->memory_mb, "max_rss_kb", (json_int_t)r->max_rss_kb,
                          "cpu_ms", (json_int_t)r->cpu_ms, "cold_start", r->cold_start,
                          "init_ms", r->init_ms, "error_type", r->error_type, "error_message",
                          r->error_message, "attempts", r->attempts);
    /* The call's outbound connections (egress/egress.h); [] when none. */
    json_t *eg = r->egress_json ? json_loads(r->egress_json, 0, NULL) : NULL;
    if (eg && !json_is_array(eg)) {
        json_decref(eg);
        eg = NULL;
    }
    /* Past EGRESS_RECORD_MAX entries the last element counts the rest. */
    size_t n = eg ? json_array_size(eg) : 0;
    json_t *more = n ? json_object_get(json_array_get(eg, n - 1), "more") : NULL;
    if (json_is_integer(more)) {
        json_object_set(o, "egress_more", more);
        json_array_remove(eg, n - 1);
    }
    json_object_set_new(o, "egress", eg ? eg : json_array());
    if (r->replay_of[0])
        json_object_set_new(o, "replay_of", json_string(r->replay_of));
    if (r->caller_request_id[0])
        json_object_set_new(o, "caller_request_id", json_string(r->caller_request_id));
    json_object_set_new(o, "kv_ops", json_integer(r->kv_ops));
    /* Run by an instance the adaptive keep-alive started ahead of it
     * (docs/keep-alive.md). */
    json_object_set_new(o, "prewarmed", json_boolean(r->prewarmed));
    /* The cold-start breakdown with init_ms (docs/observability.md):
     * null when not known. */
    json_object_set_new(o, "queue_ms", r->queue_ms < 0 ? json_null() : json_real(r->queue_ms));
    json_object_set_new(o, "sandbox_ms",
                        r->sandbox_ms < 0 ? json_null() : json_real(r->sandbox_ms));
    /* What the call metered (docs/metering.md). */
    json_object_set_new(o, "gb_seconds",
                        json_real((double)r->memory_mb / 1024.0 * (double)r->billed_ms / 1000.0));
    json_object_set_new(o, "egress_bytes", json_integer(r->egress_bytes));
    json_object_set_new(o, "log_bytes", json_integer(r->log_bytes));
    json_object_set_new(o, "trigger", r->trigger[0] ? json_string(r->trigger) : json_null());
    char tenant[TENANT_MAX + 1];
    tenant_of(r->function, tenant);
    json_object_set_new(o, "tenant", json_string(tenant));
    /* Lambda's tenant isolation mode: the call's tenant id, null without. */
    json_object_set_new(o, "tenant_id", r->tenant_id[0] ? json_string(r->tenant_id) : json_null());
    return o;
}

/* A kept payload as the record shows it: the JSON it was (unless cut), a
 * string when it is UTF-8 text, else {"base64": …}; null when not kept. */
static json_t *payload_json(const char *data, size_t len, int flags)
{
    if (!data)
        return json_null();
    if (!(flags & (STORE_PAYLOAD_TEXT | STORE_PAYLOAD_BINARY))) {
        json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (v)
            return v;
    }
    if (!(flags & STORE_PAYLOAD_BINARY))
        return json_stringn(data, len);
    buf_t b64 = BUF_INIT;
    codec_base64_encode(&b64, data, len);
    json_t *v = json_pack("{s:s%}", "base64", b64.data ? b64.data : "", b64.len);
    buf_release(&b64);
    return v;
}

static void payload_fields(json_t *o, const char *name, const char *data, size_t len,
                           int64_t bytes, int flags)
{
    char key[32];
    json_object_set_new(o, name, payload_json(data, len, flags));
    snprintf(key, sizeof key, "%s_bytes", name);
    json_object_set_new(o, key, json_integer(bytes));
    snprintf(key, sizeof key, "%s_truncated", name);
    json_object_set_new(o, key, json_boolean(flags & STORE_PAYLOAD_TRUNCATED));
    snprintf(key, sizeof key, "%s_redacted", name);
    json_object_set_new(o, key, json_boolean(flags & STORE_PAYLOAD_REDACTED));
    if (flags & STORE_PAYLOAD_WITHHELD) {
        snprintf(key, sizeof key, "%s_withheld", name);
        json_object_set_new(o, key, json_true());
    }
}

/* A listing's query: the filter and the strings it points into. */
typedef struct list_query {
    store_record_filter_t f;
    buf_t function, status, error_type, trigger, tenant_id;
} list_query_t;

#define LIST_QUERY_INIT                                                                            \
    { STORE_RECORD_FILTER_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT }
#define ERROR_TYPE_MAX 128

static void list_query_release(list_query_t *q)
{
    buf_release(&q->function);
    buf_release(&q->status);
    buf_release(&q->error_type);
    buf_release(&q->trigger);
    buf_release(&q->tenant_id);
}

/* The query parameter name into v, when it is there with a value: an empty
 * one (?status=) is no condition, as if it were absent. */
static bool query_value(http_request_t *req, const char *name, buf_t *v)
{
    return http_request_query(req, name, v) && v->len;
}

/* Reads ?limit=; answers 400 itself and returns false when it is bad. */
static bool parse_limit(http_request_t *req, int *limit)
{
    buf_t v = BUF_INIT;
    *limit = LIST_DEFAULT;
    bool ok = true;
    if (http_request_query(req, "limit", &v)) {
        char *end;
        long n = strtol(v.data, &end, 10);
        if (!v.len || *end || n < 1 || n > LIST_MAX) {
            http_respond_error(req, 400, "bad_request", "limit: must be a number from 1 to %d",
                               LIST_MAX);
            ok = false;
        } else {
            *limit = (int)n;
        }
    }
    buf_release(&v);
    return ok;
}

/* Reads ?status=; answers 400 itself and returns false when it is bad. */
static bool parse_status(http_request_t *req, buf_t *status, bool *has)
{
    *has = query_value(req, "status", status);
    if (!*has)
        return true;
    if (obs_records_status_valid(status->data))
        return true;
    http_respond_error(req, 400, "bad_request",
                       "status: must be one of success, error, timeout, oom, throttled, "
                       "queued, running");
    return false;
}

static bool parse_cold(http_request_t *req, int *cold)
{
    cleanup_buf buf_t v = BUF_INIT;
    if (!query_value(req, "cold", &v))
        return true;
    if (!strcmp(v.data, "1") || !strcmp(v.data, "0")) {
        *cold = v.data[0] == '1';
        return true;
    }
    http_respond_error(req, 400, "bad_request", "cold: must be 1 (cold starts) or 0 (warm)");
    return false;
}

/* Reads ?min_duration_ms=: digits with an optional fraction, no sign or
 * exponent (strtod alone would take "inf", "nan" and hex). */
static bool parse_min_duration(http_request_t *req, double *ms)
{
    cleanup_buf buf_t v = BUF_INIT;
    if (!query_value(req, "min_duration_ms", &v))
        return true;
    size_t whole = strspn(v.data, "0123456789");
    size_t frac = v.data[whole] == '.' ? strspn(v.data + whole + 1, "0123456789") : 0;
    size_t len = whole + (v.data[whole] == '.' ? 1 + frac : 0);
    if (whole >= 1 && whole <= 12 && len == v.len && (v.data[whole] != '.' || frac >= 1)) {
        *ms = strtod(v.data, NULL);
        return true;
    }
    http_respond_error(req, 400, "bad_request",
                       "min_duration_ms: must be a number of milliseconds, 0 or more "
                       "(e.g. 250 or 0.5)");
    return false;
}

static bool parse_error_type(http_request_t *req, buf_t *v, bool *has)
{
    *has = query_value(req, "error_type", v);
    if (!*has)
        return true;
    bool ok = v->len <= ERROR_TYPE_MAX;
    for (size_t i = 0; ok && i < v->len; i++)
        ok = v->data[i] >= 0x20 && v->data[i] < 0x7f;
    if (ok)
        return true;
    http_respond_error(req, 400, "bad_request",
                       "error_type: must be 1 to %d printable ASCII characters",
                       ERROR_TYPE_MAX);
    return false;
}

/* ?trigger=KIND or KIND:NAME (exec_trigger_valid). */
static bool parse_trigger(http_request_t *req, buf_t *v, bool *has)
{
    *has = query_value(req, "trigger", v);
    if (!*has || exec_trigger_valid(v->data))
        return true;
    http_respond_error(req, 400, "bad_request",
                       "trigger: must be a kind (invoke, url, replay, destination, schedule, "
                       "topic, function), or schedule:NAME, topic:NAME or function:NAME");
    return false;
}

/* ?tenant_id=ID: the calls of one tenant id (tenant isolation). */
static bool parse_tenant_id(http_request_t *req, buf_t *v, bool *has)
{
    *has = query_value(req, "tenant_id", v);
    mf_error_t err = MF_ERROR_INIT;
    if (!*has || fn_tenant_id_check("tenant_id", v->data, &err) == 0)
        return true;
    http_respond_error(req, 400, "bad_request", "%s", err.msg);
    return false;
}

static bool parse_cursor(http_request_t *req, store_record_filter_t *f)
{
    cleanup_buf buf_t v = BUF_INIT;
    if (!query_value(req, "cursor", &v))
        return true;
    if (store_record_cursor_parse(v.data, v.len, &f->after) == 0) {
        f->after_set = true;
        return true;
    }
    http_respond_error(req, 400, "bad_request",
                       "cursor: must be the \"next\" of an earlier answer, as it was given");
    return false;
}

/* Reads every condition a listing takes but the function; answers 400
 * itself (naming the parameter) and returns false at the first bad one. */
static bool parse_list_query(http_request_t *req, list_query_t *q)
{
    store_record_filter_t *f = &q->f;
    bool has_status, has_error_type, has_trigger, has_tenant_id;
    if (!parse_status(req, &q->status, &has_status) ||
        !api__query_time(req, "since", &f->since_ms) ||
        !api__query_time(req, "until", &f->until_ms) || !parse_cold(req, &f->cold) ||
        !parse_min_duration(req, &f->min_duration_ms) ||
        !parse_error_type(req, &q->error_type, &has_error_type) ||
        !parse_trigger(req, &q->trigger, &has_trigger) ||
        !parse_tenant_id(req, &q->tenant_id, &has_tenant_id) || !parse_cursor(req, f) ||
        !parse_limit(req, &f->limit))
        return false;
    if (f->since_ms > f->until_ms) {
        http_respond_error(req, 400, "bad_request", "until: must not be before since");
        return false;
    }
    f->status = has_status ? q->status.data : NULL;
    f->error_type = has_error_type ? q->error_type.data : NULL;
    f->trigger = has_trigger ? q->trigger.data : NULL;
    f->tenant_id = has_tenant_id ? q->tenant_id.data : NULL;
    return true;
}

/* ---- reads, off the loop (api__read_records) ----------------------------------- */

/* A listing: its query, then what the store gave. */
typedef struct list_read {
    list_query_t q;
    store_record_t *list;
    size_t n;
    bool more;
    store_record_cursor_t next;
} list_read_t;

static list_read_t *list_read_new(void)
{
    list_read_t *l = xcalloc(1, sizeof *l);
    l->q = (list_query_t)LIST_QUERY_INIT;
    return l;
}

static void list_read_free(list_read_t *l)
{
    store_record_list_free(l->list, l->n);
    list_query_release(&l->q);
    free(l);
}

static int list_read(void *db, void *arg, mf_error_t *err)
{
    list_read_t *l = arg;
    return store_records_find(db, &l->q.f, &l->list, &l->n, &l->more, &l->next, err);
}

/* {"invocations": [...], "next": CURSOR}; next is null on the last page. */
static void list_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                        const mf_error_t *err)
{
    list_read_t *l = arg;
    if (r < 0) {
        api_respond_failure(req, r, err);
        list_read_free(l);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, record_json(&l->list[i]));
    cleanup_buf buf_t cursor = BUF_INIT;
    if (l->more)
        store_record_cursor_format(&cursor, &l->next);
    cleanup_json json_t *out =
        json_pack("{so so}", "invocations", arr, "next",
                  l->more ? json_stringn(cursor.data, cursor.len) : json_null());
    list_read_free(l);
    http_respond_json(req, 200, out);
}

/* One record (with, for GET /v1/invocations/{id}, its attempts). */
typedef struct record_read {
    const char *id;            /* the request's path parameter */
    bool event;                /* …/event rather than …/result */
    store_record_t rec;
    store_attempt_t *at;
    size_t n;
} record_read_t;

static record_read_t *record_read_new(http_request_t *req)
{
    record_read_t *g = xcalloc(1, sizeof *g);
    g->id = req->params[0];
    return g;
}

static void record_read_free(record_read_t *g)
{
    store_record_clear(&g->rec);
    store_attempt_list_free(g->at, g->n);
    free(g);
}

static int record_read(void *db, void *arg, mf_error_t *err)
{
    record_read_t *g = arg;
    return store_record_get(db, g->id, &g->rec, err);
}

static int attempts_read(void *db, void *arg, mf_error_t *err)
{
    record_read_t *g = arg;
    return store_attempt_list(db, g->id, &g->at, &g->n, err);
}

static void get_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                       const mf_error_t *err)
{
    record_read_t *g = arg;
    if (r < 0) {
        /* The record was read, so no attempts is no 404; a store out of
         * reach is still a 503. */
        api_respond_failure(req, store_unavailable(r) ? r : -EIO, err);
        record_read_free(g);
        return;
    }
    store_record_t *rec = &g->rec;
    cleanup_json json_t *out = record_json(rec);
    payload_fields(out, "event", rec->event, rec->event_len, rec->event_bytes, rec->event_flags);
    payload_fields(out, "result", rec->result, rec->result_len, rec->result_bytes,
                   rec->result_flags);
    /* An async event's attempts, each with its outcome. */
    if (g->n) {
        json_t *arr = json_array();
        for (size_t i = 0; i < g->n; i++) {
            const store_attempt_t *at = &g->at[i];
            char start[32];
            clock_format_iso8601(at->start_ms, start, sizeof start);
            json_array_append_new(arr, json_pack("{si ss ss sf ss? ss?}", "attempt", at->attempt,
                                                 "start", start, "status", at->status,
                                                 "duration_ms", at->duration_ms, "error_type",
                                                 at->error_type, "error_message",
                                                 at->error_message));
        }
        json_object_set_new(out, "attempt_history", arr);
    }
    record_read_free(g);
    http_respond_json(req, 200, out);
}

/* The record is read; its attempts are on the async queue's writer. */
/* Another tenant's call is one this caller cannot see: as absent; and an
 * invoker sees the calls its own key made only. */
static int owned(http_request_t *req, api_ctx_t *ctx, const record_read_t *g, int r,
                 mf_error_t *err)
{
    api_who_t who;
    if (r < 0 || (api__who(req, ctx, &who) && api__sees(&who, g->rec.function) &&
                  (!who.key || who.key->role != AUTH_INVOKER ||
                   !strcmp(who.key->id, g->rec.key_id))))
        return r;
    return mf_error_plain(err, ENOENT, "invocation `%s` does not exist", g->id);
}

static void get_record_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                              const mf_error_t *e)
{
    mf_error_t own = MF_ERROR_INIT;
    const mf_error_t *err = e;
    if (r == 0 && (r = owned(req, ctx, arg, r, &own)) < 0)
        err = &own;
    if (r < 0) {
        api_respond_failure(req, r, err);
        record_read_free(arg);
        return;
    }
    api__read_queue(req, ctx, attempts_read, get_answer, arg);
}

/* The stored bytes of a record's event or result, as they were kept. */
static void payload_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                           const mf_error_t *e)
{
    record_read_t *g = arg;
    mf_error_t own = MF_ERROR_INIT;
    const mf_error_t *err = e;
    if (r == 0 && (r = owned(req, ctx, g, r, &own)) < 0)
        err = &own;
    const store_record_t *rec = &g->rec;
    const char *data = g->event ? rec->event : rec->result;
    size_t len = g->event ? rec->event_len : rec->result_len;
    int flags = g->event ? rec->event_flags : rec->result_flags;
    if (r < 0)
        api_respond_failure(req, r, err);
    else if (!data)
        http_respond_error(req, 404, "not_found",
                           "invocation `%s` kept no %s (%s)", rec->request_id,
                           g->event ? "event" : "result",
                           flags & STORE_PAYLOAD_WITHHELD
                               ? "it could not be checked for values to redact"
                               : "the function's record.payloads did not keep it");
    else
        http_respond(req, 200, "application/octet-stream", data, len);
    record_read_free(g);
}

/* ---- handlers: each reads once the records of calls that have answered are
 * written ---------------------------------------------------------------------- */

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    api__read_records(req, ctx, record_read, get_record_answer, record_read_new(req));
}

static void handle_payload(http_request_t *req, api_ctx_t *ctx, bool event)
{
    record_read_t *g = record_read_new(req);
    g->event = event;
    api__read_records(req, ctx, record_read, payload_answer, g);
}

static void handle_event(http_request_t *req, api_ctx_t *ctx)
{
    handle_payload(req, ctx, true);
}

static void handle_result(http_request_t *req, api_ctx_t *ctx)
{
    handle_payload(req, ctx, false);
}

static void handle_function_list(http_request_t *req, api_ctx_t *ctx)
{
    if (!registry_valid_name(req->params[0])) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    list_read_t *l = list_read_new();
    l->q.f.function = req->params[0];
    if (!parse_list_query(req, &l->q)) {
        list_read_free(l);
        return;
    }
    api__read_records(req, ctx, list_read, list_answer, l);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    list_read_t *l = list_read_new();
    api_who_t who;
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    store_record_filter_tenant(&l->q.f, who.all ? NULL : who.tenant);
    if (query_value(req, "function", &l->q.function)) {
        char q[TENANT_QNAME_MAX + 1];
        if (!registry_valid_local(l->q.function.data) ||
            !tenant_qualify(who.tenant, l->q.function.data, q, sizeof q)) {
            http_respond_error(req, 400, "bad_request",
                               "function: must match [A-Za-z0-9_-]{1,64}");
            list_read_free(l);
            return;
        }
        buf_reset(&l->q.function);
        buf_adds(&l->q.function, q);
        l->q.f.function = l->q.function.data;
    }
    if (!parse_list_query(req, &l->q)) {
        list_read_free(l);
        return;
    }
    api__read_records(req, ctx, list_read, list_answer, l);
}

void api__invocations_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/invocations", handle_list, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/invocations/{id}", handle_get, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/invocations/{id}/event", handle_event, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/invocations/{id}/result", handle_result, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/invocations", handle_function_list, 0,
               false);
}
