/* POST /v1/functions/{name}/invoke with Accept: application/vnd.mayfly.stream:
 * a function that streams its answer (Lambda's RESPONSE_STREAM) has its
 * bytes sent on to the client as they come, chunked, and the call's
 * outcome in the trailers; a function that answers in one piece is
 * answered as any call. The stream goes no faster than the client takes
 * it: while the client is behind, the function's runtime is not read
 * from (exec_stream_pause). docs/triggers.md says what a client sees. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/codec.h"
#include "core/xalloc.h"
#include "exec/exec.h"

#define STREAM_MEDIA_TYPE "application/vnd.mayfly.stream"

typedef struct stream_call {
    http_request_t *req;
    invocation_t *inv; /* between the stream's head and done */
    bool begun;
    bool paused; /* the function's stream waits for the client */
} stream_call_t;

bool api__wants_stream(const http_request_t *req)
{
    const char *accept = http_request_header(req, "Accept");
    return accept && strstr(accept, STREAM_MEDIA_TYPE);
}

/* A function's error type goes into a header: printable ASCII only. */
static void header_safe(buf_t *out, const char *s)
{
    size_t n = 0;
    for (; *s && n < 128; s++, n++)
        buf_addch(out, *s > ' ' && *s < 0x7f ? *s : '_');
    if (!n)
        buf_adds(out, "Unknown");
}

static void resume(stream_call_t *c)
{
    if (c->paused && c->inv) {
        c->paused = false;
        exec_stream_pause(c->inv, false);
    }
}

static void on_drain(http_request_t *req)
{
    resume(req->data);
}

/* The client left: nothing waits for it any more, and the call runs to
 * its end (and its record) as any call does. */
static void on_client_gone(http_request_t *req)
{
    resume(req->data);
}

static void on_head(invocation_t *inv, void *ud, const char *content_type)
{
    stream_call_t *c = ud;
    http_request_t *req = c->req;
    c->inv = inv;
    c->begun = true;
    http_header_add(req, "X-Mayfly-Request-Id", "%s", inv->request_id);
    http_header_add(req, "X-Mayfly-Cold-Start", "%d", inv->cold_start ? 1 : 0);
    http_header_add(req, "Trailer",
                    "X-Mayfly-Duration-Ms, X-Mayfly-Billed-Ms, X-Mayfly-Function-Error, "
                    "X-Mayfly-Error-Type, X-Mayfly-Error-Body");
    req->abort_cb = on_client_gone;
    http_stream_begin(req, 200, content_type);
}

static void on_data(invocation_t *inv, void *ud, const char *data, size_t len)
{
    stream_call_t *c = ud;
    http_stream_write(c->req, data, len);
    if (!c->paused && http_request_unsent(c->req) > HTTP_OUTPUT_HIGH_WATER) {
        c->paused = true;
        exec_stream_pause(inv, true);
        http_request_on_drain(c->req, on_drain);
    }
}

static const exec_stream_sink_t sink = {on_head, on_data};

static void on_done(invocation_t *inv, void *ud)
{
    stream_call_t *c = ud;
    http_request_t *req = c->req;
    c->inv = NULL;
    if (!c->begun) {
        req->data = NULL;
        free(c);
        api__call_answer(req, inv);
        return;
    }
    buf_t t = BUF_INIT;
    buf_addf(&t, "X-Mayfly-Duration-Ms: %.3f\r\nX-Mayfly-Billed-Ms: %llu\r\n", inv->duration_ms,
             (unsigned long long)inv->billed_ms);
    if (inv->status != INV_SUCCESS) {
        /* Lambda's runtimes report a stream's error in trailers; so does
         * mayfly to its client: the type, and the error document base64. */
        buf_adds(&t, "X-Mayfly-Function-Error: Unhandled\r\nX-Mayfly-Error-Type: ");
        header_safe(&t, inv->error_type ? inv->error_type : "Unhandled");
        buf_adds(&t, "\r\nX-Mayfly-Error-Body: ");
        /* A failed call's result is its error document. */
        codec_base64_encode(&t, inv->result.data, inv->result.len);
        buf_adds(&t, "\r\n");
    }
    req->abort_cb = NULL;
    req->drain_cb = NULL;
    req->data = NULL;
    http_stream_end_trailers(req, &t);
    buf_release(&t);
    invocation_free(inv);
    free(c);
}

void api__call_stream(http_request_t *req, api_ctx_t *ctx, const char *function, buf_t *event)
{
    api_call_origin_t from;
    if (!api__call_origin(req, &from))
        return;
    stream_call_t *c = xcalloc(1, sizeof *c);
    c->req = req;
    req->data = c;
    buf_t ev = *event;
    buf_init(event, 0);
    mf_error_t err = MF_ERROR_INIT;
    exec_call_opts_t opts = {.traceparent = from.traceparent,
                             .caller_request_id = from.caller_request_id,
                             .call_depth = from.call_depth,
                             .trigger = from.trigger,
                             .stream = &sink,
                             .tenant_id = http_request_header(req, "X-Amz-Tenant-Id"),
                             .key_id = api__key_id(req, ctx)};
    int r = exec_invoke_opts(ctx->exec, function, &ev, &opts, on_done, c, &err);
    if (r < 0) {
        buf_release(&ev);
        req->data = NULL;
        free(c);
        api_respond_failure(req, r, &err);
    }
}
