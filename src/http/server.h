/* The HTTP/1.1 server on libuv: keep-alive, pipelined requests answered in
 * order, Content-Length and chunked bodies, chunked streaming responses,
 * limits (head size, body size per route, connection count, slow clients,
 * idle connections) and a graceful shutdown.
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

typedef struct http_server_config {
    unsigned max_connections;       /* default 1024 */
    unsigned header_timeout_ms;     /* a whole request must arrive within it */
    unsigned keepalive_timeout_ms;  /* an idle connection is closed after it */
    unsigned shutdown_grace_ms;     /* in-flight requests get this long to end */
} http_server_config_t;

#define HTTP_SERVER_CONFIG_DEFAULT { 1024, 30000, 60000, 30000 }

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

/* True once the client has gone (its answer will be dropped). */
static inline bool http_request_gone(const http_request_t *req)
{
    return req->conn == NULL;
}

/* The reason phrase for a status code. */
const char *http_status_text(int status);
/* The error code string used in JSON errors for a status. */
const char *http_status_code_name(int status);

#endif
