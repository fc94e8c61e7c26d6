/* Objects a tenant keeps by name under /v1/KIND/{name} (budgets, alert
 * rules): which tenant a request is about. A key reaches its own
 * tenant's; only an admin names another (the body's "tenant"; on the
 * other requests ?tenant=, or the header X-Mayfly-Tenant as on the rest of
 * /v1). */
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/buf.h"

/* The key the route's check found (req->principal), or the development
 * key without keys: the token is not parsed again. */
static const auth_key_t *request_key(http_request_t *req, api_ctx_t *ctx)
{
    return req->principal ? req->principal : auth_bearer_key(ctx->keys, NULL);
}

const char *api__owned_default(http_request_t *req, api_ctx_t *ctx)
{
    const auth_key_t *key = request_key(req, ctx);
    return key ? key->tenant : TENANT_DEFAULT;
}

bool api__owned_scope(http_request_t *req, api_ctx_t *ctx, const char *kind, const char *wanted,
                      char out[TENANT_MAX + 1])
{
    const auth_key_t *key = request_key(req, ctx);
    const char *own = key ? key->tenant : TENANT_DEFAULT;
    if (wanted && strcmp(wanted, own) && !(key && key->role == AUTH_ADMIN)) {
        http_respond_error(req, 403, "forbidden",
                           "a key of the tenant %s may not reach the %s of the tenant %s: "
                           "only an admin may",
                           own, kind, wanted);
        return false;
    }
    snprintf(out, TENANT_MAX + 1, "%s", wanted ? wanted : own);
    return true;
}

/* The tenant the request names, ?tenant= or else X-Mayfly-Tenant,
 * checked: false having answered 400 when it is not a tenant's name;
 * *given says whether one was there. */
static bool query_tenant(http_request_t *req, char out[TENANT_MAX + 1], bool *given)
{
    buf_t t = BUF_INIT;
    *given = http_request_query(req, "tenant", &t);
    const char *header = http_request_header(req, "X-Mayfly-Tenant");
    if (!*given && header) {
        buf_adds(&t, header);
        *given = true;
    }
    bool ok = !*given || tenant_valid(t.data, t.len);
    if (ok && *given)
        snprintf(out, TENANT_MAX + 1, "%s", t.data);
    buf_release(&t);
    if (!ok)
        http_respond_error(req, 400, "bad_request", "tenant: must match [a-z0-9-]{1,%d}",
                           TENANT_MAX);
    return ok;
}

bool api__owned_tenant(http_request_t *req, api_ctx_t *ctx, const char *kind,
                       char out[TENANT_MAX + 1], bool *every)
{
    char named[TENANT_MAX + 1];
    bool given;
    if (!query_tenant(req, named, &given) ||
        !api__owned_scope(req, ctx, kind, given ? named : NULL, out))
        return false;
    if (every) {
        const auth_key_t *key = request_key(req, ctx);
        *every = !given && key && key->role == AUTH_ADMIN;
    }
    return true;
}
