/* Routes by method and path pattern ("/v1/functions/{name}/invoke"), with
 * path parameters, a body limit and an optional head check per route.
 * A parameter is one path segment, percent-decoded; one that decodes to a
 * '/' is refused (400), unless its name ends with '*' ("{key*}": a KV key
 * may hold slashes, sent as %2F). A last segment "{name**}" takes the rest
 * of the path, one segment or more, slashes and all (the console's assets:
 * "/console/{path**}"); its handler checks the segments. Routes are tried in the order added, so
 * a literal segment ("/_stats") is added before a parameter that would
 * also match it. */
#ifndef MAYFLY_HTTP_ROUTER_H
#define MAYFLY_HTTP_ROUTER_H

#include <http_parser.h>
#include <stddef.h>

#include "http/request.h"

typedef void (*http_handler_fn)(http_request_t *req, void *ud);

/* A head check decides whether a request may go on as soon as its head is
 * complete and routed, before any byte of its body is read: credentials,
 * or whether the state the request names is there to take it (the Runtime
 * API checks the request id of a response before reading the response).
 *
 * It sees the method, path, query, headers, path parameters,
 * content_length and body_chunked, and http_request_server_data(req);
 * req->body is empty. It returns 0 to let the request go on, or an HTTP
 * status (4xx or 5xx) to refuse it: the answer is that status with the
 * body the check wrote into refusal (sent as application/json) and the
 * header lines it added with http_header_add(req, ...), and it goes out
 * with "Connection: close". The request's body is never read (no
 * "100 Continue" is sent) and its handler never runs.
 *
 * Checks run in this order, all before the body: the head check (401,
 * 403...), then the route's body limit (413), then the server's bound on
 * the body bytes it holds at once (503).
 *
 * A check that takes something at head time (a slot, a reservation) and
 * lets the request go on sets req->unhandled_cb (and req->data): it is
 * called if the request is dropped before its handler runs, and the
 * handler takes over otherwise. Head checks run on the loop for every
 * request of their route: keep them O(1) and free of blocking calls. */
typedef int (*http_head_check_fn)(http_request_t *req, void *ud, buf_t *refusal);

typedef struct http_route {
    enum http_method method;
    const char *pattern;      /* also the "route" label in metrics */
    http_handler_fn handler;
    void *ud;                 /* given to handler and head_check */
    size_t max_body;
    http_head_check_fn head_check; /* NULL: none */
} http_route_t;

/* Shapes the answer to a request the server refuses before any handler
 * runs (too large a body, say): adds header lines ("Name: value\r\n") and
 * the body. For APIs whose clients expect their own error format. */
typedef void (*http_refuse_fn)(int status, const char *message, buf_t *headers, buf_t *body);

/* A claim takes a request for one route by anything in its head (its
 * Host header, a path prefix), whatever its method, before the routes are
 * tried: function URLs serve every method and path below them. It may
 * fill req->params (malloc'd strings; the request frees them) and
 * returns true to take the request. */
typedef bool (*http_claim_fn)(http_request_t *req, void *ud);

typedef struct http_router {
    http_route_t *routes;
    size_t nroutes;
    http_claim_fn claim;      /* NULL: none */
    void *claim_ud;
    http_route_t claim_route; /* its method is not looked at */
    struct http_refuser {
        const char *prefix;
        http_refuse_fn fn;
    } refusers[8];
    size_t nrefusers;
} http_router_t;

void http_router_init(http_router_t *r);
void http_router_release(http_router_t *r);
/* pattern must outlive the router (a string literal). */
void http_router_add(http_router_t *r, enum http_method method, const char *pattern,
                     http_handler_fn handler, void *ud, size_t max_body);
/* Like http_router_add, with a head check run before the body is read. */
void http_router_add_checked(http_router_t *r, enum http_method method, const char *pattern,
                             http_handler_fn handler, http_head_check_fn head_check, void *ud,
                             size_t max_body);
/* Sets the router's claim (one at most): requests claim takes go to
 * handler with head_check and max_body as a route's would; pattern is
 * their label in metrics. */
void http_router_set_claim(http_router_t *r, http_claim_fn claim, void *claim_ud,
                           const char *pattern, http_handler_fn handler,
                           http_head_check_fn head_check, void *ud, size_t max_body);
/* Matches req->method and req->path (after the claim, if any): sets req->route and req->params and
 * returns 0; or returns 404 (no such path), 405 (path known, method not;
 * allow then lists the methods, comma-separated) or 400 (a path parameter
 * with a bad escape). */
int http_router_match(const http_router_t *r, http_request_t *req, buf_t *allow);
/* Refusals of requests whose path starts with prefix (a literal) are shaped
 * by fn; other refusals keep the server's own JSON error. */
void http_router_refuse_with(http_router_t *r, const char *prefix, http_refuse_fn fn);
http_refuse_fn http_router_refuser(const http_router_t *r, const char *path);

#endif
