/* Asynchronous invocations over /v1: accepting an event, and a function's
 * dead letters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "invoke/async.h"

#define DEAD_LETTERS_DEFAULT 100
#define DEAD_LETTERS_MAX 1000

static void on_accepted(void *ud, int r, const char *request_id, bool replay, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        api_respond_failure(req, r, err);
        return;
    }
    http_header_add(req, "X-Mayfly-Request-Id", "%s", request_id);
    if (replay)
        http_header_add(req, "X-Mayfly-Idempotent-Replay", "1");
    cleanup_json json_t *out = json_pack("{ss}", "request_id", request_id);
    http_respond_json(req, 202, out);
}

void api__enqueue(http_request_t *req, api_ctx_t *ctx, const char *function, buf_t *event,
                  const char *replay_of, const char *tenant_id)
{
    api_call_origin_t from;
    if (!api__call_origin(req, &from))
        return;
    async_enqueue_opts_t opts = {.idem_key = http_request_header(req, "X-Mayfly-Idempotency-Key"),
                                 .replay_of = replay_of,
                                 .traceparent = from.traceparent,
                                 .caller_request_id = from.caller_request_id,
                                 .call_depth = from.call_depth,
                                 .trigger = replay_of ? "replay" : from.trigger,
                                 .tenant_id = tenant_id,
                                 .key_id = api__key_id(req, ctx)};
    mf_error_t err = MF_ERROR_INIT;
    /* The 202 goes out once the event is on disk (on_accepted). */
    int r = async_enqueue(ctx->async, function, event, &opts, on_accepted, req, &err);
    if (r < 0)
        api_respond_failure(req, r, &err);
}

void api__invoke_event(http_request_t *req, api_ctx_t *ctx)
{
    if (!registry_valid_name(req->params[0])) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    if (!api__durable_invoke(req, ctx, req->params[0], false, true))
        api__enqueue(req, ctx, req->params[0], &req->body, NULL,
                     http_request_header(req, "X-Amz-Tenant-Id"));
}

/* A dead letter id from the path: a positive integer. */
static bool parse_id(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 1)
        return false;
    *out = v;
    return true;
}

/* A function's dead letters, read and made into their JSON on the queue's
 * writer thread (their events in base64 may be large). */
typedef struct dead_read {
    char function[TENANT_QNAME_MAX + 1];
    int limit;
    json_t *out;
} dead_read_t;

static int dead_read(void *db, void *arg, mf_error_t *err)
{
    dead_read_t *d = arg;
    store_dead_letter_t *list = NULL;
    size_t n = 0;
    int r = store_dead_letter_list(db, d->function, d->limit, &list, &n, err);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char time[32];
        clock_format_iso8601(list[i].time_ms, time, sizeof time);
        buf_t b64 = BUF_INIT;
        codec_base64_encode(&b64, list[i].event, list[i].event_len);
        json_array_append_new(
            arr, json_pack("{sI ss si ss ss? ss? ss ss ss?}", "id", (json_int_t)list[i].id,
                           "request_id", list[i].request_id, "attempts", list[i].attempts,
                           "condition", list[i].condition, "error_type", list[i].error_type,
                           "error_message", list[i].error_message, "event_base64",
                           b64.data ? b64.data : "", "time", time, "tenant_id",
                           list[i].tenant_id[0] ? list[i].tenant_id : NULL));
        buf_release(&b64);
    }
    store_dead_letter_list_free(list, n);
    d->out = json_pack("{so}", "dead_letters", arr);
    return 0;
}

static void dead_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                        const mf_error_t *err)
{
    dead_read_t *d = arg;
    if (r < 0)
        api_respond_failure(req, r, err);
    else
        http_respond_json(req, 200, d->out);
    json_decref(d->out);
    free(d);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_check(ctx->registry, req->params[0], &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    int limit = DEAD_LETTERS_DEFAULT;
    buf_t v = BUF_INIT;
    if (http_request_query(req, "limit", &v)) {
        char *end;
        long n = strtol(v.data, &end, 10);
        if (!v.len || *end || n < 1 || n > DEAD_LETTERS_MAX) {
            buf_release(&v);
            http_respond_error(req, 400, "bad_request", "limit: must be a number from 1 to %d",
                               DEAD_LETTERS_MAX);
            return;
        }
        limit = (int)n;
    }
    buf_release(&v);
    dead_read_t *d = xcalloc(1, sizeof *d);
    snprintf(d->function, sizeof d->function, "%s", req->params[0]);
    d->limit = limit;
    api__read_queue(req, ctx, dead_read, dead_answer, d);
}

static void handle_redrive(http_request_t *req, api_ctx_t *ctx)
{
    int64_t id;
    if (!parse_id(req->params[1], &id)) {
        http_respond_error(req, 400, "bad_request", "id: must be a dead letter's number, not `%s`",
                           req->params[1]);
        return;
    }
    mf_error_t err = MF_ERROR_INIT;
    int r = async_redrive(ctx->async, req->params[0], id, on_accepted, req, &err);
    if (r < 0)
        api_respond_failure(req, r, &err);
}

void api__async_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/dead-letters", handle_list, 0, false);
    api__route(router, ctx, HTTP_POST, "/v1/functions/{name}/dead-letters/{id}/redrive",
               handle_redrive, 0, false);
}
