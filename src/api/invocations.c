/* Invocation records: one, a function's, or filtered. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/codec.h"
#include "core/json.h"
#include "invoke/async.h"
#include "obs/records.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000

static json_t *record_json(const store_record_t *r)
{
    char start[32];
    clock_format_iso8601(r->start_ms, start, sizeof start);
    json_t *o = json_pack("{ss ss sI ss ss sf sI si sI sI sb sf ss? ss? si}", "request_id",
                          r->request_id, "function", r->function, "version",
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
    *has = http_request_query(req, "status", status) && status->len;
    if (!*has)
        return true;
    if (obs_records_status_valid(status->data))
        return true;
    http_respond_error(req, 400, "bad_request",
                       "status: must be one of success, error, timeout, oom, throttled, "
                       "queued, running");
    return false;
}

static void respond_list(http_request_t *req, api_ctx_t *ctx, const char *function,
                         const char *status, int limit)
{
    store_record_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    int r = store_records_list(ctx->store, function, status, limit, &list, &n, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, record_json(&list[i]));
    store_record_list_free(list, n);
    cleanup_json json_t *out = json_pack("{so}", "invocations", arr);
    http_respond_json(req, 200, out);
}

static void get_now(http_request_t *req, api_ctx_t *ctx)
{
    store_record_t rec;
    mf_error_t err = MF_ERROR_INIT;
    int r = store_record_get(ctx->store, req->params[0], &rec, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    cleanup_json json_t *out = record_json(&rec);
    payload_fields(out, "event", rec.event, rec.event_len, rec.event_bytes, rec.event_flags);
    payload_fields(out, "result", rec.result, rec.result_len, rec.result_bytes, rec.result_flags);
    store_record_clear(&rec);
    /* An async event's attempts, each with its outcome. */
    store_attempt_t *at = NULL;
    size_t n = 0;
    if (store_attempt_list(async_store(ctx->async), req->params[0], &at, &n, &err) < 0) {
        api_respond_failure(req, -EIO, &err);
        return;
    }
    if (n) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            char start[32];
            clock_format_iso8601(at[i].start_ms, start, sizeof start);
            json_array_append_new(arr, json_pack("{si ss ss sf ss? ss?}", "attempt", at[i].attempt,
                                                 "start", start, "status", at[i].status,
                                                 "duration_ms", at[i].duration_ms, "error_type",
                                                 at[i].error_type, "error_message",
                                                 at[i].error_message));
        }
        json_object_set_new(out, "attempt_history", arr);
    }
    store_attempt_list_free(at, n);
    http_respond_json(req, 200, out);
}

static void function_list_now(http_request_t *req, api_ctx_t *ctx)
{
    int limit;
    if (!registry_valid_name(req->params[0])) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    buf_t status = BUF_INIT;
    bool has_status;
    if (parse_status(req, &status, &has_status) && parse_limit(req, &limit))
        respond_list(req, ctx, req->params[0], has_status ? status.data : NULL, limit);
    buf_release(&status);
}

static void list_now(http_request_t *req, api_ctx_t *ctx)
{
    int limit;
    buf_t function = BUF_INIT, status = BUF_INIT;
    bool has_fn = http_request_query(req, "function", &function) && function.len;
    bool has_status;
    if (has_fn && !registry_valid_name(function.data)) {
        http_respond_error(req, 400, "bad_request", "function: must match [A-Za-z0-9_-]{1,64}");
        goto out;
    }
    if (!parse_status(req, &status, &has_status) || !parse_limit(req, &limit))
        goto out;
    respond_list(req, ctx, has_fn ? function.data : NULL, has_status ? status.data : NULL, limit);
out:
    buf_release(&function);
    buf_release(&status);
}

/* The stored bytes of a record's event or result, as they were kept. */
static void payload_now(http_request_t *req, api_ctx_t *ctx, bool event)
{
    store_record_t rec;
    mf_error_t err = MF_ERROR_INIT;
    int r = store_record_get(ctx->store, req->params[0], &rec, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    const char *data = event ? rec.event : rec.result;
    size_t len = event ? rec.event_len : rec.result_len;
    int flags = event ? rec.event_flags : rec.result_flags;
    if (!data)
        http_respond_error(req, 404, "not_found",
                           "invocation `%s` kept no %s (%s)", rec.request_id,
                           event ? "event" : "result",
                           flags & STORE_PAYLOAD_WITHHELD
                               ? "it could not be checked for values to redact"
                               : "the function's record.payloads did not keep it");
    else
        http_respond(req, 200, "application/octet-stream", data, len);
    store_record_clear(&rec);
}

static void event_now(http_request_t *req, api_ctx_t *ctx)
{
    payload_now(req, ctx, true);
}

static void result_now(http_request_t *req, api_ctx_t *ctx)
{
    payload_now(req, ctx, false);
}

/* Each reads once the records of calls that have answered are written. */
static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    api__after_writes(req, ctx, get_now);
}

static void handle_event(http_request_t *req, api_ctx_t *ctx)
{
    api__after_writes(req, ctx, event_now);
}

static void handle_result(http_request_t *req, api_ctx_t *ctx)
{
    api__after_writes(req, ctx, result_now);
}

static void handle_function_list(http_request_t *req, api_ctx_t *ctx)
{
    api__after_writes(req, ctx, function_list_now);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    api__after_writes(req, ctx, list_now);
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
