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

typedef struct http_router {
    http_route_t *routes;
    size_t nroutes;
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

#endif
