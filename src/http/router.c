#include "http/router.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void http_router_init(http_router_t *r)
{
    memset(r, 0, sizeof *r);
}

void http_router_refuse_with(http_router_t *r, const char *prefix, http_refuse_fn fn)
{
    if (r->nrefusers < sizeof r->refusers / sizeof r->refusers[0])
        r->refusers[r->nrefusers++] = (struct http_refuser){ prefix, fn };
}

http_refuse_fn http_router_refuser(const http_router_t *r, const char *path)
{
    for (size_t i = 0; path && i < r->nrefusers; i++)
        if (!strncmp(path, r->refusers[i].prefix, strlen(r->refusers[i].prefix)))
            return r->refusers[i].fn;
    return NULL;
}

void http_router_release(http_router_t *r)
{
    free(r->routes);
    http_router_init(r);
}

void http_router_add_checked(http_router_t *r, enum http_method method, const char *pattern,
                             http_handler_fn handler, http_head_check_fn head_check, void *ud,
                             size_t max_body)
{
    r->routes = xrealloc(r->routes, (r->nroutes + 1) * sizeof *r->routes);
    r->routes[r->nroutes++] = (http_route_t){ .method = method,
                                              .pattern = pattern,
                                              .handler = handler,
                                              .ud = ud,
                                              .max_body = max_body,
                                              .head_check = head_check };
}

void http_router_add(http_router_t *r, enum http_method method, const char *pattern,
                     http_handler_fn handler, void *ud, size_t max_body)
{
    http_router_add_checked(r, method, pattern, handler, NULL, ud, max_body);
}

/* Compares one pattern with a path segment by segment. On a match the
 * parameters' raw spans go to spans[], and whether each may hold an
 * escaped '/' ("{key*}") to slashes[]. */
static bool pattern_matches(const char *pat, const char *path, slice_t *spans, bool *slashes,
                            size_t *nspans)
{
    *nspans = 0;
    while (*pat && *path) {
        if (*pat != '/' || *path != '/')
            return false;
        pat++;
        path++;
        const char *pend = strchr(pat, '/');
        size_t plen = pend ? (size_t)(pend - pat) : strlen(pat);
        const char *send = strchr(path, '/');
        size_t slen = send ? (size_t)(send - path) : strlen(path);
        if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}') {
            /* "{name**}", the pattern's last segment, takes the rest of
             * the path, slashes and all. */
            bool rest = plen >= 4 && !pend && !memcmp(pat + plen - 3, "**", 2);
            if (rest)
                slen = strlen(path);
            if (slen == 0 || *nspans == HTTP_MAX_PARAMS)
                return false;
            slashes[*nspans] = pat[plen - 2] == '*';
            spans[(*nspans)++] = (slice_t){ path, slen };
        } else if (plen != slen || memcmp(pat, path, plen) != 0) {
            return false;
        }
        pat += plen;
        path += slen;
    }
    return *pat == '\0' && *path == '\0';
}

void http_router_set_claim(http_router_t *r, http_claim_fn claim, void *claim_ud,
                           const char *pattern, http_handler_fn handler,
                           http_head_check_fn head_check, void *ud, size_t max_body)
{
    r->claim = claim;
    r->claim_ud = claim_ud;
    r->claim_route = (http_route_t){ .method = HTTP_GET,
                                     .pattern = pattern,
                                     .handler = handler,
                                     .ud = ud,
                                     .max_body = max_body,
                                     .head_check = head_check };
}

int http_router_match(const http_router_t *r, http_request_t *req, buf_t *allow)
{
    if (r->claim && r->claim(req, r->claim_ud)) {
        req->route = &r->claim_route;
        return 0;
    }
    bool path_known = false;
    slice_t spans[HTTP_MAX_PARAMS];
    bool slashes[HTTP_MAX_PARAMS];
    size_t nspans;

    bool head_allowed = false;
    for (size_t i = 0; i < r->nroutes; i++) {
        const http_route_t *rt = &r->routes[i];
        if (!pattern_matches(rt->pattern, req->path, spans, slashes, &nspans))
            continue;
        /* HEAD is GET without the body (RFC 9110 9.3.2): a GET route
         * answers it, the server leaving the body out. */
        bool head_of_get = req->method == HTTP_HEAD && rt->method == HTTP_GET;
        if (rt->method != req->method && !head_of_get) {
            if (allow && !(rt->method == HTTP_HEAD && head_allowed)) {
                if (allow->len)
                    buf_adds(allow, ", ");
                buf_adds(allow, http_method_str(rt->method));
                if (rt->method == HTTP_GET && !head_allowed)
                    buf_adds(allow, ", HEAD");
            }
            head_allowed = head_allowed || rt->method == HTTP_GET || rt->method == HTTP_HEAD;
            path_known = true;
            continue;
        }
        for (size_t j = 0; j < nspans; j++) {
            buf_t b = BUF_INIT;
            if (http_percent_decode(&b, spans[j].base, spans[j].len, false) < 0 ||
                (!slashes[j] && memchr(b.data, '/', b.len))) {
                buf_release(&b);
                return 400;
            }
            req->params[req->nparams++] = buf_detach(&b, NULL);
        }
        req->route = rt;
        return 0;
    }
    return path_known ? 405 : 404;
}
