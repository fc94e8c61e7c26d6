/* The Lambda Runtime API, as each instance's runtime sees it at
 * 127.0.0.1:9001 inside its sandbox. Requests arrive on the server's loop
 * through the listening socket the sandbox handed over; the instance is the
 * server's data. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec_internal.h"

#define API_PREFIX "/2018-06-01/runtime"
/* An error document or init error is small; a response may be a whole
 * result (bounded per exec config, checked again in the handler). */
#define ERROR_BODY_MAX (1u << 20)
#define RESPONSE_BODY_MAX (6u << 20)

static void respond_lambda_error(http_request_t *req, int status, const char *type,
                                 const char *message)
{
    buf_t b = BUF_INIT;
    exec__error_doc(&b, type, message);
    http_respond_buf(req, status, "application/json", &b);
}

static void respond_accepted(http_request_t *req)
{
    static const char ok[] = "{\"status\":\"OK\"}";
    http_respond(req, 202, "application/json", ok, sizeof ok - 1);
}

/* Takes a pending poll out of the instance's list. */
static void poll_remove(exec_instance_t *inst, http_request_t *req)
{
    for (unsigned i = 0; i < inst->n_polls; i++)
        if (inst->polls[i] == req) {
            inst->polls[i] = inst->polls[--inst->n_polls];
            return;
        }
}

static void on_next_aborted(http_request_t *req)
{
    exec_instance_t *inst = req->data;
    unsigned before = inst->n_polls;
    poll_remove(inst, req);
    if (inst->n_polls == before)
        return;
    /* Its runtime stopped waiting: with one lane it cannot take work until
     * it asks again. (With many, calls are assigned to lanes and wait for
     * a poll.) */
    if (inst->state == INST_IDLE && inst->n_lanes == 1) {
        exec__idle_stack_remove(inst);
        exec__instance_set_state(inst, INST_BUSY);
    }
    http_respond(req, 410, NULL, NULL, 0);
}

static void handle_next(http_request_t *req, void *ud)
{
    exec_instance_t *inst = http_request_server_data(req);
    if (req->method == HTTP_HEAD) {
        /* The router answers HEAD with a GET route: here that would hand
         * out a call whose event the runtime never reads. */
        http_header_add(req, "Allow", "GET");
        respond_lambda_error(req, 405, "InvalidRequestMethod",
                             "GET /next hands out the next invocation; HEAD cannot");
        return;
    }
    if (inst->state == INST_STOPPING) {
        respond_lambda_error(req, 410, "Runtime.Stopping", "this instance is stopping");
        return;
    }
    /* One poll per lane not already running a call. */
    if (inst->n_polls + inst->n_delivered + inst->n_stuck >= inst->n_lanes) {
        if (inst->n_lanes == 1 && inst->n_polls)
            respond_lambda_error(req, 409, "InvalidStateTransition",
                                 "another GET /next from this runtime is already waiting");
        else if (inst->n_lanes == 1)
            respond_lambda_error(req, 409, "InvalidStateTransition",
                                 "the current invocation has not been answered: post its "
                                 "response or error first");
        else
            respond_lambda_error(req, 409, "InvalidStateTransition",
                                 "as many GET /next are waiting or invocations unanswered as "
                                 "AWS_LAMBDA_MAX_CONCURRENCY: answer one first");
        return;
    }
    if (!inst->initialized) {
        inst->initialized = true;
        inst->init_ms = (double)(clock_mono_ns() - inst->spawn_ns) / 1e6;
        exec__busy_started(inst->pool, inst->init_ms);
        exec__start_succeeded(inst->pool);
        /* Init ran with every core, as Lambda boosts it; calls get the CPU
         * share the function's memory buys, each: an instance serving many
         * at once gets as many shares (its calls are billed so). */
        mf_error_t err = MF_ERROR_INIT;
        if (sandbox_cap_cpu(&inst->sb, inst->memory_mb * inst->n_lanes, &err) < 0)
            log_warn("exec", "capping the CPU of instance %s of %s: %s", inst->id, inst->pool->name,
                     err.msg);
    }
    inst->polls[inst->n_polls++] = req;
    req->data = inst;
    req->abort_cb = on_next_aborted;
    exec_lane_t *waiting = exec__lane_waiting(inst);
    if (waiting)
        exec__instance_deliver(waiting);
    else if (inst->state != INST_IDLE && !inst->n_assigned)
        exec__instance_idle(inst);
    /* else it was made available when it answered, and now it is polling. */
}

/* A runtime that has answered polls for more work within microseconds, so
 * the instance is available at once: a call that arrives meanwhile is
 * assigned to it and waits for the poll, rather than starting a cold
 * instance beside it. */
static void answered(exec_instance_t *inst)
{
    exec__instance_lane_free(inst);
}

/* A late answer to a call that timed out on an instance of many lanes:
 * the lane is free again. Answers whether rid was such a call. */
static bool stuck_answered(exec_instance_t *inst, http_request_t *req, const char *rid)
{
    for (unsigned i = 0; inst->n_stuck && i < inst->n_lanes; i++) {
        exec_lane_t *l = &inst->lanes[i];
        if (!l->stuck_rid[0] || strcmp(l->stuck_rid, rid))
            continue;
        l->stuck_rid[0] = '\0';
        inst->n_stuck--;
        respond_lambda_error(req, 410, "InvocationTimedOut",
                             "this invocation timed out: its answer is not taken");
        answered(inst);
        return true;
    }
    return false;
}

/* The lane whose call a response or error names, if it is in flight. */
static exec_lane_t *current(exec_instance_t *inst, http_request_t *req)
{
    exec_lane_t *lane = exec__lane_of(inst, req->params[0]);
    if (!lane && !stuck_answered(inst, req, req->params[0]))
        respond_lambda_error(req, 400, "InvalidRequestID", "Invalid request ID");
    return lane;
}

/* ---- the head of an answer -------------------------------------------------- */

/* The routes' ud, telling the head check which answer it sees. */
static const char answer_is_response[] = "response", answer_is_error[] = "error";

static void answer_dropped(http_request_t *req)
{
    exec_lane_t *lane = req->data;
    if (lane->answer_req == req)
        lane->answer_req = NULL;
}

/* A handler took over the answer whose head was checked. */
static void answer_arrived(exec_instance_t *inst, http_request_t *req)
{
    exec_lane_t *lane = exec__lane_of(inst, req->params[0]);
    if (lane && lane->answer_req == req)
        lane->answer_req = NULL;
}

/* The head of a response or error post, before its body is read: it must
 * name an invocation in flight, only one answer's body per call is read
 * at a time (a runtime cannot make the server hold many bodies), and a
 * response declared larger than a result may be fails the call now. A
 * late answer to a call that timed out on an instance of many lanes
 * passes, to be refused with its body (current()). */
static int check_answer_head(http_request_t *req, void *ud, buf_t *refusal)
{
    exec_instance_t *inst = http_request_server_data(req);
    exec_lane_t *lane = exec__lane_of(inst, req->params[0]);
    if (!lane) {
        for (unsigned i = 0; inst->n_stuck && i < inst->n_lanes; i++)
            if (!strcmp(inst->lanes[i].stuck_rid, req->params[0]))
                return 0;
        exec__error_doc(refusal, "InvalidRequestID", "Invalid request ID");
        return 400;
    }
    /* A runtime that dropped an answer half-sent and answers again at
     * once (a retry on a new connection) may be seen before the loop reads
     * the first connection's end: the kernel knows already. */
    if (lane->answer_req && http_request_cut_short(lane->answer_req))
        lane->answer_req = NULL;
    if (lane->answer_req || lane->stream_req) {
        exec__error_doc(refusal, "InvalidStateTransition",
                        "an answer to this invocation is already being received");
        return 409;
    }
    exec_t *ex = inst->pool->ex;
    const char *mode = http_request_header(req, "Lambda-Runtime-Function-Response-Mode");
    if (ud == answer_is_response && mode && !strcasecmp(mode, "streaming")) {
        /* Streamed: its bytes go to the caller as they come, bounded as
         * they come (exec__stream_data). */
        http_request_stream_body(req);
    } else if (ud == answer_is_response && mode) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "Lambda-Runtime-Function-Response-Mode: must be `streaming` or absent, not "
                 "`%.64s`",
                 mode);
        exec__error_doc(refusal, "InvalidRequest", msg);
        return 400;
    } else if (ud == answer_is_response && !req->body_chunked &&
        req->content_length > ex->cfg.max_result_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "Response payload size (%llu bytes) exceeded maximum allowed "
                 "payload size (%zu bytes).",
                 (unsigned long long)req->content_length, ex->cfg.max_result_bytes);
        buf_t result = BUF_INIT;
        exec__error_doc(&result, "Function.ResponseSizeTooLarge", msg);
        exec__complete(lane, INV_ERROR, &result, "Function.ResponseSizeTooLarge", msg);
        answered(inst);
        exec__error_doc(refusal, "RequestEntityTooLarge", msg);
        return 413;
    }
    lane->answer_req = req;
    req->data = lane;
    req->unhandled_cb = answer_dropped;
    return 0;
}

/* ---- streamed responses -------------------------------------------------------- */

/* The status and error document a streamed response's request is
 * answered with when its call ended before its stream did. */
void exec__stream_detach(exec_lane_t *lane, const invocation_t *inv)
{
    http_request_t *req = lane->stream_req;
    lane->stream_req = NULL;
    req->data = NULL;
    req->abort_cb = NULL;
    const char *type = inv->error_type ? inv->error_type : "InvalidStateTransition";
    bool too_large = !strcmp(type, "Function.ResponseSizeTooLarge");
    respond_lambda_error(req, too_large ? 413 : 410,
                         too_large ? "RequestEntityTooLarge" : type,
                         inv->error_message ? inv->error_message : "the invocation has ended");
}

/* Reads the error a runtime reports in a stream's trailers:
 * Lambda-Runtime-Function-Error-Type, and Lambda-Runtime-Function-Error-Body
 * (base64 of the error document, as Lambda's runtimes send it). */
static void stream_trailer_error(const http_request_t *req, char **type, char **message,
                                 buf_t *doc)
{
    const char *t = http_request_trailer(req, "Lambda-Runtime-Function-Error-Type");
    const char *b = http_request_trailer(req, "Lambda-Runtime-Function-Error-Body");
    *type = *message = NULL;
    if ((!t || !*t) && (!b || !*b))
        return;
    buf_t raw = BUF_INIT;
    json_t *d = NULL;
    if (b && codec_base64_decode(&raw, b, strlen(b), 64 * 1024) == 0)
        d = json_loadb(raw.data ? raw.data : "", raw.len, 0, NULL);
    const char *dt = json_is_object(d) ? json_string_value(json_object_get(d, "errorType")) : NULL;
    const char *dm =
        json_is_object(d) ? json_string_value(json_object_get(d, "errorMessage")) : NULL;
    *type = xstrdup(dt ? dt : t && *t ? t : "Unhandled");
    *message = xstrdup(dm ? dm : "");
    if (json_is_object(d)) {
        *doc = raw;
        buf_init(&raw, 0);
    }
    json_decref(d);
    buf_release(&raw);
}

/* More of a streamed response, its end, or its breaking off. */
static void stream_body(http_request_t *req)
{
    exec_lane_t *lane = req->data;
    if (!lane || lane->stream_req != req) {
        buf_reset(&req->body);
        return;
    }
    exec_instance_t *inst = lane->inst;
    if (req->body.len) {
        int r = exec__stream_data(lane, req->body.data, req->body.len);
        if (r < 0)
            return; /* the call failed, and req was answered and freed */
        buf_reset(&req->body);
    }
    if (req->body_error) {
        char msg[256];
        snprintf(msg, sizeof msg, "the streamed response broke off: %s", req->body_error_message);
        lane->stream_req = NULL;
        req->data = NULL;
        req->abort_cb = NULL;
        buf_t doc = BUF_INIT;
        exec__error_doc(&doc, "Runtime.ResponseStreamError", msg);
        exec__stream_end(lane, "Runtime.ResponseStreamError", msg, &doc);
        buf_release(&doc);
        respond_lambda_error(req, req->body_error, "InvalidRequest", msg);
        answered(inst);
        return;
    }
    if (!req->body_done)
        return;
    lane->stream_req = NULL;
    req->data = NULL;
    req->abort_cb = NULL;
    char *type, *message;
    buf_t doc = BUF_INIT;
    stream_trailer_error(req, &type, &message, &doc);
    exec__stream_end(lane, type, message, &doc);
    buf_release(&doc);
    free(type);
    free(message);
    respond_accepted(req);
    answered(inst);
}

/* The runtime's connection closed in the middle of its stream. */
static void stream_aborted(http_request_t *req)
{
    exec_lane_t *lane = req->data;
    req->abort_cb = NULL;
    if (!lane || lane->stream_req != req) {
        http_respond(req, 410, NULL, NULL, 0);
        return;
    }
    exec_instance_t *inst = lane->inst;
    lane->stream_req = NULL;
    req->data = NULL;
    http_respond(req, 410, NULL, NULL, 0); /* the client is gone: this frees req */
    static const char msg[] =
        "the runtime closed its connection before the end of its streamed response";
    buf_t doc = BUF_INIT;
    exec__error_doc(&doc, "Runtime.ResponseStreamError", msg);
    exec__stream_end(lane, "Runtime.ResponseStreamError", msg, &doc);
    buf_release(&doc);
    answered(inst);
}

static void handle_stream(exec_lane_t *lane, http_request_t *req)
{
    lane->stream_req = req;
    req->data = lane;
    req->abort_cb = stream_aborted;
    http_request_on_body(req, stream_body);
    const char *ct = http_request_header(req, "Content-Type");
    exec__stream_begin(lane, ct && *ct ? ct : "application/octet-stream");
    /* The server hands over what has arrived once this returns. */
}

static void handle_response(http_request_t *req, void *ud)
{
    exec_instance_t *inst = http_request_server_data(req);
    answer_arrived(inst, req);
    exec_lane_t *lane = current(inst, req);
    if (!lane)
        return;
    if (req->body_streamed) {
        handle_stream(lane, req);
        return;
    }
    exec_t *ex = inst->pool->ex;
    if (req->body.len > ex->cfg.max_result_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "Response payload size (%zu bytes) exceeded maximum allowed "
                 "payload size (%zu bytes).",
                 req->body.len, ex->cfg.max_result_bytes);
        buf_t result = BUF_INIT;
        exec__error_doc(&result, "Function.ResponseSizeTooLarge", msg);
        exec__complete(lane, INV_ERROR, &result, "Function.ResponseSizeTooLarge", msg);
        respond_lambda_error(req, 413, "RequestEntityTooLarge", msg);
        return;
    }
    exec__complete(lane, INV_SUCCESS, &req->body, NULL, NULL);
    /* A runtime that sent its next poll right behind this (mayfly's own
     * do) has no use for the acknowledgement before its next event: the
     * two go out together. */
    http_hold_for_next(req);
    respond_accepted(req);
    answered(inst);
}

/* Reads errorType and errorMessage from an error document the runtime
 * posted; the document itself goes to the caller as it is. */
static void parse_error_doc(const http_request_t *req, char **type, char **message)
{
    const char *hdr = http_request_header(req, "Lambda-Runtime-Function-Error-Type");
    json_t *doc = json_loadb(req->body.data, req->body.len, 0, NULL);
    const char *t = doc ? json_string_value(json_object_get(doc, "errorType")) : NULL;
    const char *m = doc ? json_string_value(json_object_get(doc, "errorMessage")) : NULL;
    *type = xstrdup(t ? t : hdr && *hdr ? hdr : "Unhandled");
    *message = xstrdup(m ? m : doc ? "" : req->body.data);
    json_decref(doc);
}

/* The caller gets a JSON error document even when the runtime sent none. */
static void error_result(http_request_t *req, const char *type, const char *message, buf_t *out)
{
    json_t *doc = json_loadb(req->body.data, req->body.len, 0, NULL);
    if (json_is_object(doc)) {
        *out = req->body;
        buf_init(&req->body, 0);
    } else {
        exec__error_doc(out, type, message);
    }
    json_decref(doc);
}

static void handle_error(http_request_t *req, void *ud)
{
    exec_instance_t *inst = http_request_server_data(req);
    answer_arrived(inst, req);
    exec_lane_t *lane = current(inst, req);
    if (!lane)
        return;
    char *type, *message;
    parse_error_doc(req, &type, &message);
    buf_t result = BUF_INIT;
    error_result(req, type, message, &result);
    exec__complete(lane, INV_ERROR, &result, type, message);
    free(type);
    free(message);
    respond_accepted(req);
    answered(inst);
}

static void handle_init_error(http_request_t *req, void *ud)
{
    exec_instance_t *inst = http_request_server_data(req);
    char *type, *message;
    parse_error_doc(req, &type, &message);
    bool starting = !inst->initialized;
    if (starting) {
        inst->initialized = true; /* it ran its init, to this end */
        inst->init_ms = (double)(clock_mono_ns() - inst->spawn_ns) / 1e6;
    }
    /* The calls waiting for it fail with its error (the first with the
     * document it posted). */
    for (exec_lane_t *l; (l = exec__lane_waiting(inst));) {
        buf_t result = BUF_INIT;
        error_result(req, type, message, &result);
        l->inv->init_ms = inst->init_ms;
        l->inv->sandbox_ms =
            (double)(inst->sb.timings.ready_ns - inst->sb.timings.start_ns) / 1e6;
        exec__complete(l, INV_ERROR, &result, type, message);
    }
    exec_pool_t *p = inst->pool;
    if (starting)
        exec__start_failed(p, type, message, false);
    free(type);
    free(message);
    respond_accepted(req);
    /* A runtime that failed to start is of no further use, as on Lambda. */
    exec__instance_stop(inst);
    exec__pool_pump(p);
}

void exec__runtime_api_routes(http_router_t *router)
{
    http_router_add(router, HTTP_GET, API_PREFIX "/invocation/next", handle_next, NULL, 0);
    http_router_add_checked(router, HTTP_POST, API_PREFIX "/invocation/{id}/response",
                            handle_response, check_answer_head, (void *)answer_is_response,
                            RESPONSE_BODY_MAX);
    http_router_add_checked(router, HTTP_POST, API_PREFIX "/invocation/{id}/error", handle_error,
                            check_answer_head, (void *)answer_is_error, ERROR_BODY_MAX);
    http_router_add(router, HTTP_POST, API_PREFIX "/init/error", handle_init_error, NULL,
                    ERROR_BODY_MAX);
}

/* ---- the second door ---------------------------------------------------------- */

http_router_t *exec_inside_router(exec_t *ex)
{
    return &ex->runtime_router;
}

int exec_caller(const http_request_t *req, exec_caller_t *out)
{
    exec_instance_t *inst = http_request_server_data(req);
    if (!inst || inst->magic != EXEC_INSTANCE_MAGIC)
        return -ENOENT;
    memset(out, 0, sizeof *out);
    out->fn = &inst->pool->fn;
    out->instance_id = inst->id;
    /* The call making the request: the one delivered, or on an instance
     * serving many at once the one the request names (mayfly's runtimes
     * send its id with their platform API calls). */
    invocation_t *inv = NULL;
    const char *rid = http_request_header(req, "Lambda-Runtime-Aws-Request-Id");
    exec_lane_t *lane = rid ? exec__lane_of(inst, rid) : NULL;
    if (lane)
        inv = lane->inv;
    else
        inv = exec__running_call(inst);
    if (inv) {
        out->request_id = inv->request_id;
        exec__traceparent(inv, out->traceparent, sizeof out->traceparent);
        out->kv_ops = &inv->kv_ops;
        out->call_depth = inv->call_depth;
    }
    return 0;
}
