/* Lambda's function URL actions (CreateFunctionUrlConfig,
 * GetFunctionUrlConfig, UpdateFunctionUrlConfig, DeleteFunctionUrlConfig,
 * ListFunctionUrlConfigs) under /2021-10-31/functions/{name}/url(s), on
 * the same URLs as /v1/functions/{name}/url: Lambda's shape is translated
 * into /v1's settings and checked by the same code. AWS_IAM is mayfly's
 * "key" auth (an access key's bearer token or SigV4 signature). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "trigger/url.h"

/* Only $LATEST exists: a URL of another qualifier names nothing. */
static bool qualifier_ok(http_request_t *req)
{
    buf_t q = BUF_INIT;
    bool ok = !http_request_query(req, "Qualifier", &q) || !q.len || !strcmp(q.data, "$LATEST");
    if (!ok)
        api__lambda_error(req, 404, "ResourceNotFoundException",
                          "Qualifier %s: mayfly keeps $LATEST only, so a function URL is the "
                          "function's own",
                          q.data);
    buf_release(&q);
    return ok;
}

/* The name from the path, a valid qualifier, and credentials. */
static bool lambda_url_request(http_request_t *req, api_ctx_t *ctx, char name[TENANT_QNAME_MAX + 1])
{
    if (!api__lambda_authorized(req, ctx) || !api__lambda_path_name(req, ctx, name) ||
        !qualifier_ok(req))
        return false;
    if (ctx->urls)
        return true;
    api__lambda_error(req, 503, "ServiceException", "this server serves no function URLs");
    return false;
}

static const struct {
    const char *lambda, *v1;
} cors_fields[] = {
    { "AllowOrigins", "allow_origins" },   { "AllowMethods", "allow_methods" },
    { "AllowHeaders", "allow_headers" },   { "ExposeHeaders", "expose_headers" },
    { "MaxAge", "max_age" },               { "AllowCredentials", "allow_credentials" },
};

/* Lambda's request body onto settings (/v1's shape), changing only the
 * fields it has. */
static int translate(const buf_t *body, json_t *settings, mf_error_t *err)
{
    json_error_t jerr;
    cleanup_json json_t *in =
        body->len ? json_loadb(body->data, body->len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (!in)
        return mf_error_plain(err, EINVAL, "body: not JSON: %s", jerr.text);
    if (!json_is_object(in))
        return mf_error_plain(err, EINVAL, "body: must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
    {
        if (!strcmp(key, "AuthType")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "NONE"))
                json_object_set_new(settings, "auth", json_string("none"));
            else if (s && !strcmp(s, "AWS_IAM"))
                json_object_set_new(settings, "auth", json_string("key"));
            else
                return mf_error_plain(err, EINVAL, "AuthType: must be NONE or AWS_IAM");
        } else if (!strcmp(key, "InvokeMode")) {
            json_object_set(settings, "invoke_mode", v);
        } else if (!strcmp(key, "Cors")) {
            if (json_is_null(v)) {
                json_object_del(settings, "cors");
                continue;
            }
            if (!json_is_object(v))
                return mf_error_plain(err, EINVAL, "Cors: must be an object");
            json_t *cors = json_object();
            const char *ck;
            json_t *cv;
            json_object_foreach(v, ck, cv)
            {
                size_t i = 0;
                while (i < sizeof cors_fields / sizeof cors_fields[0] &&
                       strcmp(ck, cors_fields[i].lambda))
                    i++;
                if (i == sizeof cors_fields / sizeof cors_fields[0]) {
                    json_decref(cors);
                    return mf_error_plain(err, EINVAL,
                                          "Cors.%.64s: unknown field (AllowOrigins, AllowMethods, "
                                          "AllowHeaders, ExposeHeaders, MaxAge, AllowCredentials)",
                                          ck);
                }
                json_object_set(cors, cors_fields[i].v1, cv);
            }
            json_object_set_new(settings, "cors", cors);
        } else if (strcmp(key, "Qualifier")) {
            return mf_error_plain(err, EINVAL,
                                  "%.64s: unknown field (AuthType, Cors, InvokeMode)", key);
        }
    }
    return 0;
}

static json_t *lambda_list(const url_list_t *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->v[i]));
    return a;
}

/* The URL as Lambda shows it; with_modified adds LastModifiedTime (Create
 * answers without it). */
static json_t *lambda_url_json(const api_ctx_t *ctx, const url_config_t *c, bool with_modified)
{
    char arn[256], created[48], modified[48];
    api__lambda_arn(ctx, c->function, arn, sizeof arn);
    api__lambda_time(c->created_ms, created, sizeof created);
    api__lambda_time(c->updated_ms, modified, sizeof modified);
    buf_t addr = BUF_INIT;
    api__url_address(ctx, c->function, &addr);
    json_t *o = json_pack("{ss ss ss ss ss}", "FunctionUrl", addr.data, "FunctionArn", arn,
                          "AuthType", c->auth == URL_AUTH_NONE ? "NONE" : "AWS_IAM",
                          "CreationTime", created, "InvokeMode",
                          url_invoke_mode_name(c->invoke_mode));
    buf_release(&addr);
    if (with_modified)
        json_object_set_new(o, "LastModifiedTime", json_string(modified));
    if (c->cors.set)
        json_object_set_new(
            o, "Cors",
            json_pack("{sb so so so so si}", "AllowCredentials", c->cors.allow_credentials,
                      "AllowHeaders", lambda_list(&c->cors.allow_headers), "AllowMethods",
                      lambda_list(&c->cors.allow_methods), "AllowOrigins",
                      lambda_list(&c->cors.allow_origins), "ExposeHeaders",
                      lambda_list(&c->cors.expose_headers), "MaxAge", c->cors.max_age));
    return o;
}

static void not_found(http_request_t *req, const api_ctx_t *ctx, const char *name)
{
    char arn[256];
    api__lambda_arn(ctx, name, arn, sizeof arn);
    mf_error_t err = MF_ERROR_INIT;
    if (registry_check(ctx->registry, name, &err) < 0) {
        api__lambda_error(req, 404, "ResourceNotFoundException", "Function not found: %s", arn);
        return;
    }
    api__lambda_error(req, 404, "ResourceNotFoundException",
                      "The resource you requested does not exist: %s has no function URL", arn);
}

static void put_done(void *ud, int r, bool created, const mf_error_t *err)
{
    (void)created; /* the request said which it is */
    api_pending_t *p = ud;
    const url_config_t *now = r == 0 ? url_table_get(p->ctx->urls, p->name) : NULL;
    if (r == -ENOENT || (r == 0 && !now)) {
        not_found(p->req, p->ctx, p->name);
    } else if (r < 0) {
        api__lambda_failure(p->req, r, err);
    } else {
        cleanup_json json_t *out = lambda_url_json(p->ctx, now, !p->create);
        http_respond_json(p->req, p->create ? 201 : 200, out);
    }
    free(p);
}

/* Create and update: settings (owned) checked and stored. */
static void put_settings(http_request_t *req, api_ctx_t *ctx, const char *name, json_t *settings,
                         bool create)
{
    url_config_t c = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    int r = translate(&req->body, settings, &err);
    if (r == 0)
        r = url_config_parse(settings, &c, &err);
    json_decref(settings);
    if (r < 0) {
        api__lambda_failure(req, r, &err);
        return;
    }
    snprintf(c.function, sizeof c.function, "%s", name);
    url_table_put(ctx->urls, &c, put_done, api__pending(req, ctx, name, create));
    url_config_clear(&c);
}

void api__lambda_url_create(http_request_t *req, api_ctx_t *ctx)
{
    char name[TENANT_QNAME_MAX + 1];
    if (!lambda_url_request(req, ctx, name))
        return;
    if (url_table_get(ctx->urls, name)) {
        char arn[256];
        api__lambda_arn(ctx, name, arn, sizeof arn);
        api__lambda_error(req, 409, "ResourceConflictException",
                          "Failed to create function url config for [functionArn = %s]. Error "
                          "message:  FunctionUrlConfig exists for this Lambda function",
                          arn);
        return;
    }
    /* AuthType is required, as on Lambda. */
    json_error_t jerr;
    cleanup_json json_t *in = json_loadb(req->body.data, req->body.len, 0, &jerr);
    if (!json_is_object(in) || !json_object_get(in, "AuthType")) {
        api__lambda_error(req, 400, "ValidationException",
                          "1 validation error detected: Value null at 'authType' failed to "
                          "satisfy constraint: Member must not be null");
        return;
    }
    put_settings(req, ctx, name, json_object(), true);
}

void api__lambda_url_update(http_request_t *req, api_ctx_t *ctx)
{
    char name[TENANT_QNAME_MAX + 1];
    if (!lambda_url_request(req, ctx, name))
        return;
    const url_config_t *c = url_table_get(ctx->urls, name);
    if (!c) {
        not_found(req, ctx, name);
        return;
    }
    /* What the request leaves out stays as it is. */
    put_settings(req, ctx, name, url_config_settings_json(c), false);
}

void api__lambda_url_get(http_request_t *req, api_ctx_t *ctx)
{
    char name[TENANT_QNAME_MAX + 1];
    if (!lambda_url_request(req, ctx, name))
        return;
    const url_config_t *c = url_table_get(ctx->urls, name);
    if (!c) {
        not_found(req, ctx, name);
        return;
    }
    cleanup_json json_t *out = lambda_url_json(ctx, c, true);
    http_respond_json(req, 200, out);
}

static void delete_done(void *ud, int r, bool created, const mf_error_t *err)
{
    (void)created;
    api_pending_t *p = ud;
    if (r == -ENOENT)
        not_found(p->req, p->ctx, p->name);
    else if (r < 0)
        api__lambda_failure(p->req, r, err);
    else
        http_respond(p->req, 204, NULL, NULL, 0);
    free(p);
}

void api__lambda_url_delete(http_request_t *req, api_ctx_t *ctx)
{
    char name[TENANT_QNAME_MAX + 1];
    if (!lambda_url_request(req, ctx, name))
        return;
    url_table_delete(ctx->urls, name, delete_done, api__pending(req, ctx, name, false));
}

void api__lambda_url_list(http_request_t *req, api_ctx_t *ctx)
{
    char name[TENANT_QNAME_MAX + 1];
    if (!api__lambda_authorized(req, ctx) || !api__lambda_path_name(req, ctx, name))
        return;
    mf_error_t err = MF_ERROR_INIT;
    if (registry_check(ctx->registry, name, &err) < 0) {
        not_found(req, ctx, name);
        return;
    }
    json_t *list = json_array();
    const url_config_t *c = url_table_get(ctx->urls, name);
    if (c)
        json_array_append_new(list, lambda_url_json(ctx, c, true));
    cleanup_json json_t *out = json_pack("{so}", "FunctionUrlConfigs", list);
    http_respond_json(req, 200, out);
}
