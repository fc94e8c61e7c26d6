/* /v1/volumes: shared volumes (docs/state.md), created, listed, shown and
 * deleted; and the check that a function mounts only volumes that exist. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "state/volume.h"

/* A create body is {"size_mb": N}: a few bytes. */
#define VOLUME_BODY_MAX 4096

/* Whether fn mounts the volume name. */
static bool mounts(const fn_t *fn, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(fn->volumes, i, m)
    {
        const char *mounted = json_string_value(json_object_get(m, "name"));
        char q[TENANT_QNAME_MAX + 1];
        if (mounted && tenant_resolve(fn->name, mounted, q, sizeof q) && !strcmp(q, name))
            return true;
    }
    return false;
}

/* The names of the functions that mount name, in the registry's order. */
static json_t *users(const fn_t *list, size_t n, const char *name)
{
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        if (mounts(&list[i], name))
            json_array_append_new(out, json_string(tenant_local(list[i].name)));
    return out;
}

static json_t *volume_json(const volume_info_t *info, const fn_t *fns, size_t nfns)
{
    char created[32];
    clock_format_iso8601(info->created_ms, created, sizeof created);
    char tenant[TENANT_MAX + 1];
    tenant_of(info->name, tenant);
    json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:o, s:b}", "name",
                            tenant_local(info->name), "tenant", tenant, "size_mb",
                            (json_int_t)info->size_mb, "used_bytes", (json_int_t)info->used_bytes,
                            "size_bytes", (json_int_t)info->size_bytes, "created", created,
                            "functions", users(fns, nfns, info->name), "mounted", info->mounted);
    if (!info->mounted)
        json_object_set_new(out, "error", json_string(info->error));
    return out;
}

/* Answers r < 0: what api_respond_failure does, and 503 for a server that
 * keeps no volumes. */
static void respond_failure(http_request_t *req, int r, const mf_error_t *err)
{
    if (r == -ENOTSUP) {
        http_respond_error(req, 503, "unavailable", "%s", err->msg);
        return;
    }
    api_respond_failure(req, r, err);
}

/* The name in the path is valid, and this server keeps volumes at all. */
static bool valid_name(http_request_t *req, api_ctx_t *ctx)
{
    if (!ctx->volumes) {
        http_respond_error(req, 503, "unavailable", "this server keeps no volumes");
        return false;
    }
    if (registry_valid_state_name(req->params[0]))
        return true;
    http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,%d}",
                       TENANT_LOCAL_MAX);
    return false;
}

/* One volume's JSON, with the functions that mount it. */
static void respond_volume(http_request_t *req, api_ctx_t *ctx, int status,
                           const volume_info_t *info)
{
    fn_t *fns = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_list(ctx->registry, &fns, &n, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    cleanup_json json_t *out = volume_json(info, fns, n);
    fn_list_free(fns, n);
    http_respond_json(req, status, out);
}

typedef struct put_wait {
    http_request_t *req;
    api_ctx_t *ctx;
} put_wait_t;

static void put_done(void *ud, int r, const volume_info_t *info, bool created,
                     const mf_error_t *err)
{
    put_wait_t *w = ud;
    if (r < 0)
        respond_failure(w->req, r, err);
    else
        respond_volume(w->req, w->ctx, created ? 201 : 200, info);
    free(w);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req, ctx))
        return;
    int64_t size_mb;
    mf_error_t err = MF_ERROR_INIT;
    int r = volumes_parse_spec(req->body.data, req->body.len, &size_mb, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    put_wait_t *w = xmalloc(sizeof *w);
    *w = (put_wait_t){req, ctx};
    /* The request stays alive until it is answered (formatting a large
     * volume takes a moment, on the thread pool). */
    volumes_create(ctx->volumes, req->params[0], size_mb, put_done, w);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req, ctx))
        return;
    volume_info_t info;
    mf_error_t err = MF_ERROR_INIT;
    int r = volumes_get(ctx->volumes, req->params[0], &info, &err);
    if (r < 0) {
        respond_failure(req, r, &err);
        return;
    }
    respond_volume(req, ctx, 200, &info);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    if (!ctx->volumes) {
        http_respond_error(req, 503, "unavailable", "this server keeps no volumes");
        return;
    }
    volume_info_t *list = NULL;
    size_t n = 0;
    fn_t *fns = NULL;
    size_t nfns = 0;
    mf_error_t err = MF_ERROR_INIT;
    int r = volumes_list(ctx->volumes, &list, &n, &err);
    if (r == 0 && (r = registry_list(ctx->registry, &fns, &nfns, &err)) < 0)
        free(list);
    if (r < 0) {
        respond_failure(req, r, &err);
        return;
    }
    api_who_t who;
    api__who(req, ctx, &who);
    cleanup_json json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (api__sees(&who, list[i].name))
            json_array_append_new(arr, volume_json(&list[i], fns, nfns));
    free(list);
    fn_list_free(fns, nfns);
    cleanup_json json_t *out = json_pack("{s:O}", "volumes", arr);
    http_respond_json(req, 200, out);
}

static void delete_done(void *ud, int r, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0)
        respond_failure(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req, ctx))
        return;
    const char *name = req->params[0];
    fn_t *fns = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_list(ctx->registry, &fns, &n, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    /* Checked and deleted in one turn of the loop: no function can come
     * to mount it in between (a create or update is checked on the loop
     * too, api__volumes_check, and counted here until its row is
     * written). */
    cleanup_json json_t *using = users(fns, n, name);
    fn_list_free(fns, n);
    if (api__puts_mount(ctx, name) && volumes_exists(ctx->volumes, name)) {
        http_respond_error(req, 409, "conflict",
                           "volume %s is about to be mounted by a function being created or "
                           "updated: retry once that is done",
                           tenant_local(name));
        return;
    }
    if (json_array_size(using) && volumes_exists(ctx->volumes, name)) {
        buf_t names = BUF_INIT;
        size_t i;
        json_t *u;
        json_array_foreach(using, i, u)
        {
            if (i == 8) {
                buf_addf(&names, " and %zu more", json_array_size(using) - i);
                break;
            }
            buf_addf(&names, "%s%s", i ? ", " : "", json_string_value(u));
        }
        http_respond_error(req, 409, "conflict",
                           "volume %s is mounted by %s: remove it from their volumes first",
                           tenant_local(name), names.data);
        buf_release(&names);
        return;
    }
    volumes_delete(ctx->volumes, name, delete_done, req);
}

int api__volumes_check(api_ctx_t *ctx, const char *function, const json_t *body,
                       mf_error_t *err)
{
    const json_t *list = json_object_get(body, "volumes");
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        /* A name of the wrong shape is the registry's to refuse. */
        char q[TENANT_QNAME_MAX + 1];
        if (!name || !registry_valid_local(name) || !tenant_resolve(function, name, q, sizeof q))
            continue;
        if (!ctx->volumes || !volumes_exists(ctx->volumes, q))
            return mf_error_plain(err, EINVAL,
                                  "volumes[%zu].name: no volume named %s; create it with PUT "
                                  "/v1/volumes/%s",
                                  i, name, name);
    }
    return 0;
}

void api__volumes_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/volumes", handle_list, 0, false);
    api__route(router, ctx, HTTP_PUT, "/v1/volumes/{name}", handle_put, VOLUME_BODY_MAX, false);
    api__route(router, ctx, HTTP_GET, "/v1/volumes/{name}", handle_get, 0, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/volumes/{name}", handle_delete, 0, false);
}
