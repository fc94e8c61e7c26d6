/* POST /v1/functions/{name}/invoke: the synchronous call. The event's
 * bytes go to the function as they came, and its answer's bytes come back
 * the same way. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "exec/exec.h"

/* 6 MiB, Lambda's bound on a synchronous event. */
#define SYNC_EVENT_MAX (6u << 20)

static void add_call_headers(http_request_t *req, const invocation_t *inv)
{
    http_header_add(req, "X-Mayfly-Request-Id", "%s", inv->request_id);
    http_header_add(req, "X-Mayfly-Duration-Ms", "%.3f", inv->duration_ms);
    http_header_add(req, "X-Mayfly-Billed-Ms", "%llu", (unsigned long long)inv->billed_ms);
    http_header_add(req, "X-Mayfly-Cold-Start", "%d", inv->cold_start ? 1 : 0);
    if (inv->cold_start) {
        /* The cold start's breakdown: sandbox creation, then the runtime's
         * own start up to its first poll for work (init includes both). */
        http_header_add(req, "X-Mayfly-Init-Ms", "%.3f", inv->init_ms);
        http_header_add(req, "X-Mayfly-Sandbox-Ms", "%.3f", inv->sandbox_ms);
    }
}

static void on_done(invocation_t *inv, void *ud)
{
    api__call_answer(ud, inv);
}

void api__call_answer(http_request_t *req, invocation_t *inv)
{
    add_call_headers(req, inv);
    const char *type = inv->error_type ? inv->error_type : "";
    if (inv->status == INV_SUCCESS) {
        http_respond_buf(req, 200, "application/json", &inv->result);
    } else if (inv->status == INV_THROTTLED) {
        http_header_add(req, "Retry-After", "1");
        api__respond_error(req, 429, "throttled", inv->error_message);
    } else if (!strncmp(type, "Mayfly.", 7)) {
        /* The platform failed, not the function. */
        http_respond_error(req, !strcmp(type, "Mayfly.ShuttingDown") ? 503 : 500,
                           !strcmp(type, "Mayfly.ShuttingDown") ? "unavailable" : "internal", "%s",
                           inv->error_message);
    } else if (!strcmp(type, "ResourceNotFoundException")) {
        api__respond_error(req, 404, "not_found", inv->error_message);
    } else {
        /* A function error, timeout or out-of-memory is the function's
         * answer, as on Lambda: 200 with the error document. */
        http_header_add(req, "X-Mayfly-Function-Error", "Unhandled");
        http_respond_buf(req, 200, "application/json", &inv->result);
    }
    invocation_free(inv);
}

static void handle_invoke(http_request_t *req, api_ctx_t *ctx)
{
    const char *type = http_request_header(req, "X-Mayfly-Invocation-Type");
    if (type && strcasecmp(type, "RequestResponse")) {
        if (!strcasecmp(type, "Event"))
            api__invoke_event(req, ctx);
        else
            http_respond_error(req, 400, "bad_request",
                               "X-Mayfly-Invocation-Type: must be RequestResponse or Event, not "
                               "`%s`",
                               type);
        return;
    }
    if (api__durable_invoke(req, ctx, req->params[0], false, false))
        return;
    if (api__wants_stream(req)) {
        api__call_stream(req, ctx, req->params[0], &req->body);
        return;
    }
    api__call(req, ctx, req->params[0], &req->body, NULL,
              http_request_header(req, "X-Amz-Tenant-Id"));
}

void api__call(http_request_t *req, api_ctx_t *ctx, const char *function, buf_t *event,
               const char *replay_of, const char *tenant_id)
{
    api_call_origin_t from;
    if (!api__call_origin(req, &from))
        return; /* the event stays the caller's, which frees it */
    buf_t ev = *event;
    buf_init(event, 0);
    mf_error_t err = MF_ERROR_INIT;
    exec_call_opts_t opts = {.replay_of = replay_of,
                             .traceparent = from.traceparent,
                             .caller_request_id = from.caller_request_id,
                             .call_depth = from.call_depth,
                             .trigger = replay_of ? "replay" : from.trigger,
                             .tenant_id = tenant_id,
                             .key_id = api__key_id(req, ctx)};
    int r = exec_invoke_opts(ctx->exec, function, &ev, &opts, on_done, req, &err);
    if (r < 0) {
        buf_release(&ev);
        api_respond_failure(req, r, &err);
    }
    /* Otherwise on_done answers, now or later. A client that leaves does
     * not stop the call: it runs to its end and is recorded, as on Lambda. */
}

void api__invoke_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route_both(router, ctx, HTTP_POST, "/v1/functions/{name}/invoke", handle_invoke,
                    SYNC_EVENT_MAX, FN_PERM_INVOKE, 0);
}
