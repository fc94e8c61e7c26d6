/* An HTTP/1.1 request as handlers see it, and the reader that builds
 * requests from bytes: http-parser underneath, with mayfly's limits on top.
 * The reader knows nothing of sockets, so the fuzz target drives it
 * directly. */
#ifndef MAYFLY_HTTP_REQUEST_H
#define MAYFLY_HTTP_REQUEST_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define HTTP_MAX_HEADER_BYTES (16 * 1024) /* request line + headers → 431 */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_PARAMS 4

typedef struct http_header {
    char *name;
    char *value;
} http_header_t;

struct http_route;
struct http_conn;

typedef struct http_request {
    enum http_method method;
    char *url;                    /* as received: path and query */
    char *path;                   /* url up to '?' */
    const char *query;            /* after '?' (inside url), "" if none */
    http_header_t *headers;
    size_t nheaders;
    buf_t body;
    bool keep_alive;
    bool expect_continue;

    /* Filled by routing when the head is complete. */
    const struct http_route *route;
    char *params[HTTP_MAX_PARAMS]; /* percent-decoded path parameters */
    size_t nparams;
    int route_status;              /* 0 matched, 404 or 405 */

    /* Owned by the server. */
    struct http_conn *conn;        /* NULL once the client is gone */
    uint64_t start_ns;
    void *server_data;             /* the server's ud */
    bool metrics;                  /* counted in the HTTP metrics */
    buf_t resp_headers;            /* extra "Name: value\r\n" lines */
    int status;
    bool streaming;
    /* Called when the client goes away (or the server shuts down) before
     * the handler responded: the handler must still end the request. */
    void (*abort_cb)(struct http_request *req);
    void *data;                    /* the handler's */
} http_request_t;

/* The value of header name (case-insensitive), or NULL. */
const char *http_request_header(const http_request_t *req, const char *name);
/* Looks up a query parameter, percent-decoded into out; returns false when
 * it is absent or its encoding is bad. */
bool http_request_query(const http_request_t *req, const char *name, buf_t *out);
void http_request_free(http_request_t *req);

/* Decodes %XX escapes (and '+' as space when plus_is_space) into out;
 * returns -EINVAL on a bad escape or a decoded NUL. */
int http_percent_decode(buf_t *out, const char *s, size_t len, bool plus_is_space);

typedef enum {
    HTTP_READER_MORE = 0,    /* all input consumed, no complete request */
    HTTP_READER_REQUEST = 1, /* a request is complete: take it with http_reader_take */
    HTTP_READER_ERROR = -1,  /* bad input: answer error_status and close */
} http_reader_result_t;

typedef struct http_reader {
    http_parser parser;
    http_request_t *cur;          /* being built */
    http_request_t *ready;        /* complete, waiting to be taken */
    size_t head_bytes;
    size_t body_limit;
    bool in_value;                /* last header callback was a value */
    int error_status;             /* 400, 413 or 431 after HTTP_READER_ERROR */
    const char *error_message;
    /* Called once a request's head is complete, to route it; returns the
     * most body bytes the request may carry. */
    size_t (*on_head)(void *ud, http_request_t *req);
    /* Called when the client waits for "100 Continue". */
    void (*on_continue)(void *ud, http_request_t *req);
    void *ud;
} http_reader_t;

void http_reader_init(http_reader_t *r, size_t (*on_head)(void *, http_request_t *),
                      void (*on_continue)(void *, http_request_t *), void *ud);
void http_reader_release(http_reader_t *r);
/* Parses up to len bytes; *consumed says how many were used. Parsing stops
 * after each complete request, so pipelined requests come out one at a
 * time, in order. */
http_reader_result_t http_reader_feed(http_reader_t *r, const char *data, size_t len,
                                      size_t *consumed);
/* Hands the complete request to the caller and lets parsing go on. */
http_request_t *http_reader_take(http_reader_t *r);
/* True while part of a request has been read. */
bool http_reader_busy(const http_reader_t *r);

#endif
