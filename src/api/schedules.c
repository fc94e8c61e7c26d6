/* /v1/schedules: schedules (docs/triggers.md) created, listed, shown and
 * deleted; and, on a server started with --test-clock, /v1/test/clock,
 * which moves the schedules' clock so that tests need not wait for it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "trigger/schedules.h"

/* The largest input and the rest of the settings. */
#define SCHEDULE_BODY_MAX (SCHEDULE_INPUT_MAX + (64 << 10))
#define CLOCK_BODY_MAX 4096

static bool valid_name(http_request_t *req)
{
    if (schedules_valid_name(req->params[0]))
        return true;
    char shown[80];
    http_respond_error(req, 400, "bad_request",
                       "name: `%s` is not a schedule name ([A-Za-z0-9_.-]{1,%d})",
                       mf_error_show(tenant_local(req->params[0]), 64, shown, sizeof shown),
                       SCHEDULE_NAME_MAX);
    return false;
}

/* Answers with the schedule name as it is now, and its logged fires when
 * given (taken). */
static void respond_schedule(http_request_t *req, api_ctx_t *ctx, int status, const char *name,
                             json_t *fires)
{
    json_t *doc = NULL;
    mf_error_t err = MF_ERROR_INIT;
    int r = schedules_get_json(ctx->schedules, name, &doc, &err);
    if (r < 0) {
        json_decref(fires);
        api_respond_failure(req, r, &err);
        return;
    }
    if (fires)
        json_object_set_new(doc, "fires", fires);
    http_respond_json(req, status, doc);
    json_decref(doc);
}

typedef struct wait {
    http_request_t *req;
    api_ctx_t *ctx;
} wait_t;

static void put_done(void *ud, int r, bool created, const mf_error_t *err)
{
    wait_t *w = ud;
    if (r < 0)
        api_respond_failure(w->req, r, err);
    else
        respond_schedule(w->req, w->ctx, created ? 201 : 200, w->req->params[0], NULL);
    free(w);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    wait_t *w = xmalloc(sizeof *w);
    *w = (wait_t){req, ctx};
    mf_error_t err = MF_ERROR_INIT;
    int r = schedules_put(ctx->schedules, req->params[0], req->body.data, req->body.len, put_done,
                          w, &err);
    if (r < 0) {
        free(w);
        api_respond_failure(req, r, &err);
    }
}

/* A schedule's fire log, read by a job of the queue's writer: after every
 * fire handed to it is written (so that a client sees each fire the clock
 * has caused), and off the loop. */
typedef struct fires_read {
    schedules_t *schedules;
    const char *name;          /* the request's path parameter */
    json_t *fires;
} fires_read_t;

static int fires_read(void *db, void *arg, mf_error_t *err)
{
    fires_read_t *f = arg;
    return schedules_fires_json(f->schedules, db, f->name, &f->fires, err);
}

/* After the fires' own callbacks: the schedule's last fire is current. */
static void fires_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                         const mf_error_t *err)
{
    fires_read_t *f = arg;
    if (r < 0)
        api_respond_failure(req, r, err);
    else
        respond_schedule(req, ctx, 200, f->name, f->fires);
    free(f);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    fires_read_t *f = xcalloc(1, sizeof *f);
    f->schedules = ctx->schedules;
    f->name = req->params[0];
    api__read_queue(req, ctx, fires_read, fires_answer, f);
}

static void list_synced(void *ud)
{
    wait_t *w = ud;
    char t[TENANT_MAX + 1];
    cleanup_json json_t *doc =
        schedules_list_json(w->ctx->schedules, api__scope(w->req, w->ctx, t));
    http_respond_json(w->req, 200, doc);
    free(w);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    wait_t *w = xmalloc(sizeof *w);
    *w = (wait_t){req, ctx};
    schedules_sync(ctx->schedules, list_synced, w);
}

static void delete_done(void *ud, int r, bool created, const mf_error_t *err)
{
    (void)created;
    http_request_t *req = ud;
    if (r < 0)
        api_respond_failure(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    mf_error_t err = MF_ERROR_INIT;
    int r = schedules_delete(ctx->schedules, req->params[0], delete_done, req, &err);
    if (r < 0)
        api_respond_failure(req, r, &err);
}

/* ---- the test clock ------------------------------------------------------------ */

static void clock_synced(void *ud)
{
    wait_t *w = ud;
    char now[32];
    clock_format_iso8601(schedules_now_ms(w->ctx->schedules), now, sizeof now);
    cleanup_json json_t *doc = json_pack("{s:s}", "now", now);
    http_respond_json(w->req, 200, doc);
    free(w);
}

/* {"advance_s": N} moves the clock on by N seconds, {"now": RFC 3339} to
 * that time; either way it answers once the fires it caused are written. */
static int parse_clock(http_request_t *req, int64_t cur_ms, int64_t *to_ms, mf_error_t *err)
{
    json_error_t jerr;
    cleanup_json json_t *doc =
        req->body.len ? json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr)
                      : NULL;
    json_t *adv = json_object_get(doc, "advance_s"), *now = json_object_get(doc, "now");
    if (!json_is_object(doc) || json_object_size(doc) != 1 || (!adv && !now))
        return mf_error_plain(err, EINVAL,
                              "body: must be {\"advance_s\": SECONDS} or {\"now\": RFC 3339}");
    if (adv) {
        if (!json_is_integer(adv) || json_integer_value(adv) < 0 ||
            json_integer_value(adv) > 100LL * 366 * 86400)
            return mf_error_plain(err, EINVAL,
                                  "advance_s: must be a whole number of seconds from 0 to a "
                                  "hundred years");
        *to_ms = cur_ms + (int64_t)json_integer_value(adv) * 1000;
        return 0;
    }
    if (!json_is_string(now) || clock_parse_rfc3339(json_string_value(now), to_ms) < 0)
        return mf_error_plain(err, EINVAL, "now: must be an RFC 3339 date-time");
    return 0;
}

static void handle_clock(http_request_t *req, api_ctx_t *ctx)
{
    int64_t to_ms;
    mf_error_t err = MF_ERROR_INIT;
    int r = parse_clock(req, schedules_now_ms(ctx->schedules), &to_ms, &err);
    if (r == 0)
        r = schedules_clock_set(ctx->schedules, to_ms, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    wait_t *w = xmalloc(sizeof *w);
    *w = (wait_t){req, ctx};
    schedules_sync(ctx->schedules, clock_synced, w);
}

void api__schedules_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->schedules)
        return;
    api__route(router, ctx, HTTP_GET, "/v1/schedules", handle_list, 0, false);
    api__route(router, ctx, HTTP_PUT, "/v1/schedules/{name}", handle_put, SCHEDULE_BODY_MAX,
               false);
    api__route(router, ctx, HTTP_GET, "/v1/schedules/{name}", handle_get, 0, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/schedules/{name}", handle_delete, 0, false);
    if (schedules_test_clock(ctx->schedules))
        api__route(router, ctx, HTTP_POST, "/v1/test/clock", handle_clock, CLOCK_BODY_MAX, false);
}
