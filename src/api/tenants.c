/* Who a key is (GET /v1/whoami, for any key) and the tenants the keys
 * name (GET /v1/tenants[/{name}], for admins): docs/metering.md. Tenants
 * are the keys' own: a tenant exists while a key names it. */
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/json.h"

static void handle_whoami(http_request_t *req, api_ctx_t *ctx)
{
    const auth_key_t *key = auth_bearer_key(ctx->keys, http_request_header(req, "Authorization"));
    char account[13];
    tenant_account(key->tenant, account);
    cleanup_json json_t *out =
        json_pack("{ss ss ss ss sb}", "access_key_id", key->id, "tenant", key->tenant, "role",
                  auth_role_name(key->role), "account_id", account, "development",
                  ctx->keys->count == 0);
    http_respond_json(req, 200, out);
}

/* The tenant name as the keys show it: its account and its keys' roles;
 * NULL when no key names it. */
static json_t *tenant_json(const api_ctx_t *ctx, const char *name)
{
    json_t *roles = json_object();
    int keys = 0;
    for (size_t i = 0; i < ctx->keys->count; i++) {
        const auth_key_t *k = &ctx->keys->keys[i];
        if (strcmp(k->tenant, name))
            continue;
        keys++;
        const char *role = auth_role_name(k->role);
        json_object_set_new(roles, role,
                            json_integer(json_integer_value(json_object_get(roles, role)) + 1));
    }
    if (ctx->keys->count == 0 && !strcmp(name, TENANT_DEFAULT))
        json_object_set_new(roles, "admin", json_integer(1)); /* development mode's */
    else if (!keys) {
        json_decref(roles);
        return NULL;
    }
    char account[13];
    tenant_account(name, account);
    return json_pack("{ss ss si so}", "name", name, "account_id", account, "keys", keys, "roles",
                     roles);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    json_t *list = json_array();
    json_t *seen = json_object();
    if (ctx->keys->count == 0)
        json_array_append_new(list, tenant_json(ctx, TENANT_DEFAULT));
    for (size_t i = 0; i < ctx->keys->count; i++) {
        const char *t = ctx->keys->keys[i].tenant;
        if (json_object_get(seen, t))
            continue;
        json_object_set_new(seen, t, json_true());
        json_array_append_new(list, tenant_json(ctx, t));
    }
    json_decref(seen);
    cleanup_json json_t *out = json_pack("{so}", "tenants", list);
    http_respond_json(req, 200, out);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    cleanup_json json_t *t = tenant_json(ctx, req->params[0]);
    if (!t) {
        http_respond_error(req, 404, "not_found", "no access key names the tenant %.64s",
                           req->params[0]);
        return;
    }
    http_respond_json(req, 200, t);
}

void api__tenants_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/whoami", handle_whoami, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/tenants", handle_list, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/tenants/{name}", handle_get, 0, false);
}
