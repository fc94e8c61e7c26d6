/* Routes by method and path pattern ("/v1/functions/{name}/invoke"), with
 * path parameters and a body limit per route. */
#ifndef MAYFLY_HTTP_ROUTER_H
#define MAYFLY_HTTP_ROUTER_H

#include <http_parser.h>
#include <stddef.h>

#include "http/request.h"

typedef void (*http_handler_fn)(http_request_t *req, void *ud);

typedef struct http_route {
    enum http_method method;
    const char *pattern;      /* also the "route" label in metrics */
    http_handler_fn handler;
    void *ud;
    size_t max_body;
} http_route_t;

/* Shapes the answer to a request the server refuses before any handler
 * runs (too large a body, say): adds header lines ("Name: value\r\n") and
 * the body. For APIs whose clients expect their own error format. */
typedef void (*http_refuse_fn)(int status, const char *message, buf_t *headers, buf_t *body);

typedef struct http_router {
    http_route_t *routes;
    size_t nroutes;
    struct http_refuser {
        const char *prefix;
        http_refuse_fn fn;
    } refusers[4];
    size_t nrefusers;
} http_router_t;

void http_router_init(http_router_t *r);
void http_router_release(http_router_t *r);
/* pattern must outlive the router (a string literal). */
void http_router_add(http_router_t *r, enum http_method method, const char *pattern,
                     http_handler_fn handler, void *ud, size_t max_body);
/* Matches req->method and req->path: sets req->route and req->params and
 * returns 0; or returns 404 (no such path), 405 (path known, method not;
 * allow then lists the methods, comma-separated) or 400 (a path parameter
 * with a bad escape). */
int http_router_match(const http_router_t *r, http_request_t *req, buf_t *allow);
/* Refusals of requests whose path starts with prefix (a literal) are shaped
 * by fn; other refusals keep the server's own JSON error. */
void http_router_refuse_with(http_router_t *r, const char *prefix, http_refuse_fn fn);
http_refuse_fn http_router_refuser(const http_router_t *r, const char *path);

#endif
