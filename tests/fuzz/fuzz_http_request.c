/* libFuzzer target: arbitrary bytes through the HTTP request reader and the
 * router, split into reads at places the input chooses. Build with
 * `make fuzz`; `make test` replays the checked-in corpus (replay.c). */
#include <stdint.h>
#include <string.h>

#include "http/request.h"
#include "http/router.h"
#include "http/server.h"

static void noop(http_request_t *req, void *ud)
{
}

static http_router_t router;

static unsigned unhandled;

static void on_unhandled(http_request_t *req)
{
    unhandled++;
}

static void on_continue(void *ud, http_request_t *req)
{
    (void)http_request_header(req, "Expect");
}

/* Routes, then plays a head check: the PUT route refuses a request without
 * an Authorization header (as /v1 does without keys) and takes something
 * from the others, which unhandled_cb gives back if they never finish. */
static int on_head(void *ud, http_request_t *req, size_t *body_limit)
{
    buf_t allow = BUF_INIT;
    http_router_match(&router, req, &allow);
    buf_release(&allow);
    buf_t q = BUF_INIT;
    http_request_query(req, "limit", &q);
    buf_release(&q);
    *body_limit = req->route ? req->route->max_body : 4096;
    if (req->route && req->route->method == HTTP_PUT &&
        !http_request_header(req, "Authorization"))
        return 401;
    /* The streaming route takes its body as it comes, as the Runtime API
     * takes a streamed response: no body limit, trailers after it. */
    if (req->route && !strcmp(req->route->pattern, "/stream"))
        http_request_stream_body(req);
    if (req->route)
        req->unhandled_cb = on_unhandled;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!router.nroutes) {
        http_router_init(&router);
        http_router_add(&router, HTTP_GET, "/healthz", noop, NULL, 0);
        http_router_add(&router, HTTP_PUT, "/v1/functions/{name}", noop, NULL, 1 << 16);
        http_router_add(&router, HTTP_POST, "/v1/functions/{name}/invoke", noop, NULL, 1 << 16);
        http_router_add(&router, HTTP_POST, "/stream", noop, NULL, 16);
    }
    if (size == 0)
        return 0;
    /* The first byte picks the read size, so splits land everywhere. */
    size_t step = (size_t)data[0] + 1;
    data++;
    size--;

    http_reader_t r;
    http_reader_init(&r, on_head, on_continue, NULL);
    size_t off = 0;
    while (off < size) {
        size_t len = size - off < step ? size - off : step;
        size_t used = 0;
        http_reader_result_t res = http_reader_feed(&r, (const char *)data + off, len, &used);
        off += used;
        /* A streamed body is taken piece by piece, as its handler does. */
        if (r.cur && r.cur->body_streamed) {
            if (r.cur->body.len > r.cur->body_received)
                __builtin_trap();
            buf_reset(&r.cur->body);
        }
        if (res == HTTP_READER_ERROR)
            break;
        if (res == HTTP_READER_REQUEST) {
            http_request_t *req = http_reader_take(&r);
            (void)http_request_header(req, "Content-Type");
            (void)http_request_trailer(req, "Lambda-Runtime-Function-Error-Type");
            /* A trailer is never taken for a header. */
            if (req->nheaders_head > req->nheaders)
                __builtin_trap();
            req->unhandled_cb = NULL; /* handled, as the server's dispatch does */
            http_request_free(req);
            continue;
        }
        if (used < len)
            break; /* the parser will take no more (e.g. after an upgrade) */
    }
    http_reader_release(&r);
    return 0;
}
