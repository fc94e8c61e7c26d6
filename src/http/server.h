/* The HTTP/1.1 server on libuv: keep-alive, pipelined requests answered in
 * order, Content-Length and chunked bodies, chunked streaming responses,
 * limits (head size, body size per route, connection count, slow clients,
 * idle connections) and a graceful shutdown.
 *
 * What one client can make the server hold or do is bounded, on every
 * listener (the public API and each sandbox's Runtime API alike):
 * - Output: while a connection's unsent answers are over
 *   HTTP_OUTPUT_HIGH_WATER, its requests are neither read nor parsed; they
 *   are again once the client has taken the answers down to a quarter of
 *   that. A client that takes nothing of its answers for keepalive_timeout_ms
 *   is closed. A streaming handler sees its backlog with
 *   http_request_unsent() and decides what to drop.
 * - Turns: a connection starts at most HTTP_REQUESTS_PER_TURN requests per
 *   event-loop iteration; the rest of its pipelined requests wait for a later
 *   iteration, so other connections are served in between.
 * - Before the body: a route's head check (http/router.h), then its body
 *   limit (413), then the server's bound on the request bodies it holds at
 *   once (503 with Retry-After) are applied once the head has arrived, and a
 *   refused request's body is never read.
 * - Connections: max_connections in all, max_connections_per_client from
 *   one client address (429 with Retry-After beyond it, logged at most every
 *   ten seconds); a connection that has not yet sent a whole request has
 *   header_timeout_ms to do so, and only one that has been answered waits
 *   keepalive_timeout_ms for its next request.
 * - A refusal closes its connection gracefully: the answer, then a FIN,
 *   then whatever the client still sends is read and dropped for a moment,
 *   so the client can read the answer rather than a reset.
 *
 * Every request handed to a handler must end with exactly one final call:
 * one of the http_respond* functions, or http_stream_end after
 * http_stream_begin. A handler may answer later, from another loop
 * callback; if the client went away meanwhile the answer is dropped and the
 * request freed. */
#ifndef MAYFLY_HTTP_SERVER_H
#define MAYFLY_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "core/error.h"
#include "http/request.h"
#include "http/router.h"

/* A connection whose unsent answers are over this is not read from. */
#define HTTP_OUTPUT_HIGH_WATER (1024 * 1024)
/* Requests one connection may start per event-loop iteration. */
#define HTTP_REQUESTS_PER_TURN 32

typedef struct http_server_config {
    unsigned max_connections;       /* default 1024 */
    /* A whole request must arrive within it, counted from the connection's
     * start or from the first byte after the previous answer. */
    unsigned header_timeout_ms;
    /* A connection idle after an answer is closed after it; so is one whose
     * client takes none of its pending answers for this long. */
    unsigned keepalive_timeout_ms;
    unsigned shutdown_grace_ms;     /* in-flight requests get this long to end */
    /* Open connections from one client address at most; 0: no bound. */
    unsigned max_connections_per_client;
    /* Request body bytes held at once by the requests being read, declared
     * Content-Length counted from the head on; 0: no bound. */
    size_t max_buffered_body_bytes;
} http_server_config_t;

#define HTTP_SERVER_CONFIG_DEFAULT                                                                 \
    {                                                                                              \
        .max_connections = 1024, .header_timeout_ms = 30000, .keepalive_timeout_ms = 60000,        \
        .shutdown_grace_ms = 30000, .max_connections_per_client = 128,                             \
        .max_buffered_body_bytes = (size_t)256 << 20,                                              \
    }

typedef struct http_server http_server_t;

/* Binds host:port (IPv4, or IPv6 in brackets or bare) and starts accepting
 * on loop. The router must outlive the server. */
int http_server_listen(uv_loop_t *loop, const char *host, int port,
                       const http_server_config_t *config, const http_router_t *router,
                       http_server_t **out, mf_error_t *err);
/* Serves on fd, a socket already bound and listening (e.g. one handed over
 * from a sandbox's network namespace); the server takes fd over. ud is
 * given to handlers through http_request_server_data(). */
int http_server_open_fd(uv_loop_t *loop, int fd, const http_server_config_t *config,
                        const http_router_t *router, void *ud, http_server_t **out,
                        mf_error_t *err);
/* The ud of the server a request arrived on (NULL for http_server_listen). */
void *http_request_server_data(const http_request_t *req);
/* The bound address as "HOST:PORT" (the real port when 0 was asked for). */
void http_server_address(http_server_t *srv, char *out, size_t outlen);
/* The listener's bound address; 0 or a libuv error. */
struct sockaddr_storage;
int http_server_sockname(http_server_t *srv, struct sockaddr_storage *out);
/* Stops accepting, answers new requests on open connections with 503,
 * ends streaming responses, gives in-flight requests the grace period, then
 * closes every connection and calls done(ud) (always from a later loop
 * callback, once every handle of the server is closed). */
void http_server_shutdown(http_server_t *srv, void (*done)(void *ud), void *ud);
/* Labels this server's requests in the HTTP metrics (default: counted). */
void http_server_set_metrics(http_server_t *srv, bool on);
/* Frees the server; only after shutdown's done callback has run. */
void http_server_free(http_server_t *srv);

/* Adds a response header (before the response is sent). */
void http_header_add(http_request_t *req, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_respond(http_request_t *req, int status, const char *content_type, const void *body,
                  size_t len);
/* Like http_respond, but takes over body's memory instead of copying it. */
void http_respond_buf(http_request_t *req, int status, const char *content_type, buf_t *body);
void http_respond_json(http_request_t *req, int status, const json_t *v);
/* {"error":{"code":code,"message":…}} */
void http_respond_error(http_request_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* When the client has already sent its next request on this connection,
 * lets the answer about to be given wait, and go out in one write with the
 * next answer on the connection: one write and one wake-up for the client
 * instead of two. Returns false (and changes nothing) otherwise. */
bool http_hold_for_next(http_request_t *req);

void http_stream_begin(http_request_t *req, int status, const char *content_type);
void http_stream_write(http_request_t *req, const void *data, size_t len);
void http_stream_end(http_request_t *req);
/* Ends a stream with trailers: "Name: value\r\n" lines (NULL: none). */
void http_stream_end_trailers(http_request_t *req, const buf_t *trailers);
/* cb(req) is called once, the next time the connection's unsent answers
 * are down to a quarter of HTTP_OUTPUT_HIGH_WATER: a stream that stopped
 * taking its source's bytes while the client was behind goes on then.
 * Not called once the client is gone (abort_cb is). */
void http_request_on_drain(http_request_t *req, void (*cb)(http_request_t *req));

/* Request bodies taken as they arrive, for a body too large to hold or
 * whose pieces matter as they come (a function's streamed response).
 * A route's head check calls http_request_stream_body to ask for it: the
 * route's body limit and the server's bound on held bodies then do not
 * apply (the handler bounds what it takes), and the handler runs once the
 * head is complete. The handler sets a body callback with
 * http_request_on_body; it is called each time more of the body is in
 * req->body, which the handler takes (buf_reset or buf_consume), and
 * once more with req->body_done set (the trailers are then in reach of
 * http_request_trailer) or req->body_error (the body broke off: the
 * reader's status and body_error_message). The handler answers when it
 * likes; an answer before the body's end closes the connection after it.
 * http_request_pause_body(req, true) stops the reading (the client's
 * sending backs up in TCP) until it is called with false. */
void http_request_stream_body(http_request_t *req);
void http_request_on_body(http_request_t *req, void (*cb)(http_request_t *req));
void http_request_pause_body(http_request_t *req, bool paused);
/* The bytes answered on req's connection that the client has not taken
 * yet (gathered and queued on the socket), 0 once the client is gone: a
 * stream that must not grow without bound drops or sums up what it would
 * write while this is large. O(1). */
size_t http_request_unsent(const http_request_t *req);

/* The client's address as text ("127.0.0.1", "::1") into out; "" when
 * it is gone or unknown. */
void http_request_peer(const http_request_t *req, char *out, size_t outlen);

/* True once the client has gone (its answer will be dropped). */
static inline bool http_request_gone(const http_request_t *req)
{
    return req->conn == NULL;
}

/* True when req's body can no longer arrive whole: its client closed or
 * reset the connection before sending all the Content-Length declared,
 * even if the loop has not read that far yet (the kernel's view, not the
 * loop's). A newer request from the same client that must wait for this
 * one need not. False for a chunked body, whose end is not known. */
bool http_request_cut_short(const http_request_t *req);

/* The reason phrase for a status code. */
const char *http_status_text(int status);
/* The error code string used in JSON errors for a status. */
const char *http_status_code_name(int status);

#endif
