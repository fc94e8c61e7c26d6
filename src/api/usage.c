/* GET /v1/usage?from=&to=&granularity=hour|day|month&group_by=function|tenant|tenant_id&function=:
 * what the calls metered and what it costs (meter/meter.h), read off the
 * loop by the records' writer after the records handed to it, so that a
 * report includes every call answered before it was asked for. From the
 * start of the current month (UTC) to now by default, by day and
 * function. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "meter/meter.h"

typedef struct usage_read {
    meter_query_t q;
    store_usage_t *rows;
    size_t n;
} usage_read_t;

static int usage_read(void *db, void *arg, mf_error_t *err)
{
    usage_read_t *u = arg;
    int64_t from, to;
    meter_query_hours(&u->q, &from, &to);
    return store_usage_list(db, from, to, &u->rows, &u->n, err);
}

static void usage_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                         const mf_error_t *err)
{
    usage_read_t *u = arg;
    if (r < 0) {
        api_respond_failure(req, r, err);
    } else {
        json_t *out = meter_report(&u->q, u->rows, u->n, ctx->prices);
        http_respond_json(req, 200, out);
        json_decref(out);
    }
    free(u->rows);
    free(u);
}

static void handle_usage(http_request_t *req, api_ctx_t *ctx)
{
    int64_t now = clock_wall_ms();
    meter_query_t q = { .from_ms = meter_period_start(METER_MONTH, now), .to_ms = now,
                        .granularity = METER_DAY, .group_by = METER_BY_FUNCTION };
    if (!api__query_time(req, "from", &q.from_ms) || !api__query_time(req, "to", &q.to_ms))
        return;
    buf_t g = BUF_INIT, k = BUF_INIT;
    mf_error_t err = MF_ERROR_INIT;
    int r = 0;
    if (http_request_query(req, "granularity", &g))
        r = meter_parse_granularity(g.data, &q.granularity, &err);
    if (r == 0 && http_request_query(req, "group_by", &k))
        r = meter_parse_group(k.data, &q.group_by, &err);
    buf_release(&g);
    buf_release(&k);
    if (r < 0) {
        http_respond_error(req, 400, "bad_request", "%s", err.msg);
        return;
    }
    buf_t fn = BUF_INIT;
    bool named = http_request_query(req, "function", &fn);
    bool valid = !named || registry_valid_local(fn.data);
    if (valid && named)
        snprintf(q.function, sizeof q.function, "%s", fn.data);
    buf_release(&fn);
    if (!valid) {
        http_respond_error(req, 400, "bad_request", "function: must match [A-Za-z0-9_-]{1,%d}",
                           FN_NAME_MAX);
        return;
    }
    if (q.to_ms < q.from_ms) {
        http_respond_error(req, 400, "bad_request", "to: must not be before from");
        return;
    }
    /* A key sees its tenant's usage; an admin every tenant's, or the one
     * it names. */
    char t[TENANT_MAX + 1];
    const char *scope = api__scope(req, ctx, t);
    snprintf(q.tenant, sizeof q.tenant, "%s", scope ? scope : "");
    usage_read_t *u = xcalloc(1, sizeof *u);
    u->q = q;
    api__read_records(req, ctx, usage_read, usage_answer, u);
}

void api__usage_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/usage", handle_usage, 0, false);
}
