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
    /* The body's length as the head declared it (Content-Length), 0 when
     * there is none; body_chunked when it comes in chunks of a length
     * nobody knows yet. Set before the head check runs. */
    uint64_t content_length;
    bool body_chunked;
    uint64_t head_ns;              /* monotonic time the head was complete */

    /* Filled by routing when the head is complete. */
    const struct http_route *route;
    char *params[HTTP_MAX_PARAMS]; /* percent-decoded path parameters */
    size_t nparams;
    int route_status;              /* 0 matched, 404 or 405 */

    /* Owned by the server. */
    struct http_conn *conn;        /* NULL once the client is gone */
    struct http_conn *arriving_on; /* the connection its head came on, set
                                    * from the head check; the server's */
    uint64_t start_ns;
    void *server_data;             /* the server's ud */
    bool metrics;                  /* counted in the HTTP metrics */
    buf_t resp_headers;            /* extra "Name: value\r\n" lines */
    int status;
    bool streaming;
    /* The body as it arrives (http_request_stream_body): the handler runs
     * once the head is complete; body_cb is called whenever more of the
     * body is in req->body (the handler takes it, buf_reset), and once
     * with body_done (its trailers then follow the head's headers) or
     * body_error (the reader's status: 400 a bad chunk, 431 trailers too
     * large) set. */
    bool body_streamed;
    bool body_done;                /* the whole body has arrived */
    bool body_paused;              /* http_request_pause_body */
    int body_error;
    const char *body_error_message;
    uint64_t body_received;        /* body bytes so far */
    void (*body_cb)(struct http_request *req);
    /* headers[0..nheaders_head) came in the head; the rest are trailers
     * (after a chunked body). Set when the head is complete. */
    size_t nheaders_head;
    /* Called once when the connection's unsent answers are down to a
     * quarter of HTTP_OUTPUT_HIGH_WATER (http_request_on_drain). */
    void (*drain_cb)(struct http_request *req);
    /* Called when the client goes away (or the server shuts down) before
     * the handler responded: the handler must still end the request. */
    void (*abort_cb)(struct http_request *req);
    /* Set by a head check (http/router.h) that took something for this
     * request at head time: called once, just before the request is freed,
     * when its handler never ran (the client left in the middle of the
     * body, the body broke a limit, the request timed out, the server shut
     * down), so the check's route can give back what it took. The handler
     * running clears it: from then on the handler owns that state. */
    void (*unhandled_cb)(struct http_request *req);
    void *data;                    /* the handler's (or its head check's) */
    /* Who sent it, as the route's check of its credentials found (the
     * router's user's, opaque here); NULL until a check has. */
    const void *principal;
} http_request_t;

/* The value of header name (case-insensitive) in the request's head, or
 * NULL. */
const char *http_request_header(const http_request_t *req, const char *name);
/* The value of trailer name (case-insensitive), sent after a chunked
 * body, or NULL. */
const char *http_request_trailer(const http_request_t *req, const char *name);
/* Looks up a query parameter, percent-decoded into out; returns false when
 * it is absent or its encoding is bad. */
bool http_request_query(const http_request_t *req, const char *name, buf_t *out);
/* Frees the request, calling its unhandled_cb first if it is still set. */
void http_request_free(http_request_t *req);

/* RFC 9110's tchar: what a token (a header's or a method's name) is made
 * of; http_token: s is a token (one tchar or more). */
bool http_tchar(unsigned char c);
bool http_token(const char *s);

/* Whether an If-None-Match header value (a list of entity tags, weak or
 * strong, or "*") matches etag (quoted, as sent in ETag): the weak
 * comparison RFC 9110 asks of If-None-Match. NULL matches nothing. */
bool http_etag_matches(const char *if_none_match, const char *etag);

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
    /* 400, 413 or 431 after HTTP_READER_ERROR, or the status on_head
     * refused the request with. */
    int error_status;
    const char *error_message;
    /* Called once a request's head is complete, before any of its body is
     * read, to route and check it: returns 0 and sets *body_limit to the
     * most body bytes the request may carry, or returns an HTTP status
     * (4xx or 5xx) to refuse the request; feeding then stops with
     * HTTP_READER_ERROR and that status, its body unread. A declared
     * Content-Length over *body_limit is refused with 413 after on_head
     * has let the request go on, so a check answers before the limit. */
    int (*on_head)(void *ud, http_request_t *req, size_t *body_limit);
    /* Called when the client waits for "100 Continue", once on_head has
     * let the request go on (a refused request gets no 100). */
    void (*on_continue)(void *ud, http_request_t *req);
    void *ud;
} http_reader_t;

void http_reader_init(http_reader_t *r, int (*on_head)(void *, http_request_t *, size_t *),
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
