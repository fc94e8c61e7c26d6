/* /v1/alerts (docs/alerts.md): PUT, GET and DELETE /v1/alerts/{name},
 * GET /v1/alerts. A rule is its tenant's, as a budget is (api/budgets.c):
 * a key manages and reads its own tenant's, and only an admin names
 * another tenant (the body's "tenant"; on the others ?tenant= or the
 * header X-Mayfly-Tenant). An admin's list naming none shows every
 * tenant's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "watch/alerts.h"

#define KIND "alert rules"
#define ALERT_BODY_LIMIT (64 * 1024)

static bool valid_name(http_request_t *req)
{
    if (alert_valid_name(req->params[0]))
        return true;
    http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,%d}",
                       ALERT_NAME_MAX);
    return false;
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    char tenant[TENANT_MAX + 1];
    bool every;
    if (!api__owned_tenant(req, ctx, KIND, tenant, &every))
        return;
    cleanup_json json_t *out =
        json_pack("{so}", "alerts", alerts_list(ctx->alerts, every ? NULL : tenant));
    http_respond_json(req, 200, out);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    char tenant[TENANT_MAX + 1];
    if (!valid_name(req) || !api__owned_tenant(req, ctx, KIND, tenant, NULL))
        return;
    cleanup_json json_t *doc = alerts_show(ctx->alerts, tenant, req->params[0], true);
    if (!doc) {
        http_respond_error(req, 404, "not_found", "the tenant %s has no alert rule named %s",
                           tenant, req->params[0]);
        return;
    }
    http_respond_json(req, 200, doc);
}

typedef struct put {
    http_request_t *req;
    api_ctx_t *ctx;
    char tenant[TENANT_MAX + 1];
    char name[ALERT_NAME_MAX + 1];
} put_t;

static void put_done(void *ud, int r, bool created, const mf_error_t *err)
{
    put_t *p = ud;
    if (r < 0) {
        api_respond_failure(p->req, r, err);
    } else {
        cleanup_json json_t *doc = alerts_show(p->ctx->alerts, p->tenant, p->name, true);
        if (doc)
            http_respond_json(p->req, created ? 201 : 200, doc);
        else
            http_respond(p->req, created ? 201 : 200, NULL, NULL, 0);
    }
    free(p);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    alert_rule_t *rule = xmalloc(sizeof *rule);
    mf_error_t err = MF_ERROR_INIT;
    if (alert_rule_parse(req->body.data ? req->body.data : "", req->body.len, req->params[0],
                         api__owned_default(req, ctx), rule, &err) < 0) {
        http_respond_error(req, 400, "bad_request", "%s", err.msg);
        free(rule);
        return;
    }
    put_t *p = xcalloc(1, sizeof *p);
    if (!api__owned_scope(req, ctx, KIND, rule->tenant, p->tenant)) {
        free(p);
        free(rule);
        return;
    }
    p->req = req;
    p->ctx = ctx;
    snprintf(p->name, sizeof p->name, "%s", rule->name);
    alerts_put(ctx->alerts, rule, put_done, p);
    free(rule);
}

static void deleted(void *ud, int r, bool created, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0)
        api_respond_failure(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    char tenant[TENANT_MAX + 1];
    if (!valid_name(req) || !api__owned_tenant(req, ctx, KIND, tenant, NULL))
        return;
    alerts_delete(ctx->alerts, tenant, req->params[0], deleted, req);
}

void api__alerts_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->alerts)
        return;
    api__route(router, ctx, HTTP_GET, "/v1/alerts", handle_list, 0, false);
    /* {alert}, not {name}: the rule's tenant is the request's to say. */
    api__route(router, ctx, HTTP_GET, "/v1/alerts/{alert}", handle_get, 0, false);
    api__route(router, ctx, HTTP_PUT, "/v1/alerts/{alert}", handle_put, ALERT_BODY_LIMIT, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/alerts/{alert}", handle_delete, 0, false);
}
