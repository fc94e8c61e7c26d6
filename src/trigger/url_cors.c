/* CORS behind a function URL, from its settings: preflights are answered
 * here without calling the function (as Lambda does), and actual answers
 * get the headers a browser looks for. */
#include <string.h>
#include <strings.h>

#include "trigger/url.h"

bool url_cors_is_preflight(const char *method, const char *origin, const char *request_method)
{
    return method && !strcmp(method, "OPTIONS") && origin && request_method;
}

/* The Access-Control-Allow-Origin value for origin, or NULL when it is
 * not allowed. A wildcard with credentials names the origin, since
 * browsers refuse "*" on a credentialed request. */
static const char *allowed_origin(const url_cors_t *c, const char *origin)
{
    bool any = false;
    for (size_t i = 0; i < c->allow_origins.n; i++) {
        if (!strcmp(c->allow_origins.v[i], "*"))
            any = true;
        else if (!strcasecmp(c->allow_origins.v[i], origin))
            return origin;
    }
    if (!any)
        return NULL;
    return c->allow_credentials ? origin : "*";
}

static bool listed(const url_list_t *l, const char *item)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], "*") || !strcasecmp(l->v[i], item))
            return true;
    return false;
}

static void add_list(buf_t *out, const char *name, const url_list_t *l)
{
    if (!l->n)
        return;
    buf_addf(out, "%s: ", name);
    for (size_t i = 0; i < l->n; i++)
        buf_addf(out, "%s%s", i ? "," : "", l->v[i]);
    buf_adds(out, "\r\n");
}

static void add_origin(buf_t *out, const char *allowed)
{
    buf_addf(out, "Access-Control-Allow-Origin: %s\r\n", allowed);
    if (strcmp(allowed, "*"))
        buf_adds(out, "Vary: Origin\r\n");
}

void url_cors_preflight(const url_cors_t *c, const char *origin, const char *request_method,
                        buf_t *out)
{
    const char *allowed = allowed_origin(c, origin);
    if (!allowed || !listed(&c->allow_methods, request_method))
        return;
    add_origin(out, allowed);
    add_list(out, "Access-Control-Allow-Methods", &c->allow_methods);
    add_list(out, "Access-Control-Allow-Headers", &c->allow_headers);
    if (c->max_age > 0)
        buf_addf(out, "Access-Control-Max-Age: %d\r\n", c->max_age);
    if (c->allow_credentials)
        buf_adds(out, "Access-Control-Allow-Credentials: true\r\n");
}

void url_cors_actual(const url_cors_t *c, const char *origin, buf_t *out)
{
    if (!origin)
        return;
    const char *allowed = allowed_origin(c, origin);
    if (!allowed)
        return;
    add_origin(out, allowed);
    add_list(out, "Access-Control-Expose-Headers", &c->expose_headers);
    if (c->allow_credentials)
        buf_adds(out, "Access-Control-Allow-Credentials: true\r\n");
}
