#include "obs/retention.h"

#include <errno.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "obs/metrics.h"
#include "store/store.h"

#define TICK_MS 5000            /* at rest: a look every five seconds (a writer's job) */
#define NEAR_MS 250             /* past half the bound: four times a second */
#define AGAIN_MS 20             /* a batch was full: the next soon, not at once */
#define BATCH 1000              /* rows of each kind a round of a job deletes at most */

struct obs_retention {
    store_writer_t *writer;
    uv_timer_t *timer;
    obs_retention_config_t cfg;
    bool busy, stopped;
    metrics_family_t *m_pruned, *m_bytes;
    store_prune_t result;
};

static void on_tick(uv_timer_t *t);

static int prune_apply(void *db, void *arg, mf_error_t *err)
{
    obs_retention_t *r = arg;
    int64_t before = clock_wall_ms() - (int64_t)r->cfg.days * 86400000;
    return store_prune_write(db, before, r->cfg.max_bytes, BATCH, &r->result, err);
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void prune_done(void *arg, int rc, const mf_error_t *err)
{
    obs_retention_t *r = arg;
    r->busy = false;
    if (r->stopped) {
        free(r);
        return;
    }
    bool more = false;
    if (rc < 0) {
        log_error("records", "pruning old records: %s", err->msg);
    } else {
        metrics_inc(r->m_pruned, (const char *[]){"records"}, (double)r->result.records);
        metrics_inc(r->m_pruned, (const char *[]){"log_lines"}, (double)r->result.lines);
        metrics_set(r->m_bytes, NULL, (double)r->result.bytes);
        more = r->result.more;
        if (r->result.records || r->result.lines)
            log_debug("records", "pruned %lld records and %lld log lines; %lld bytes kept",
                      (long long)r->result.records, (long long)r->result.lines,
                      (long long)r->result.bytes);
    }
    /* Each look is a job of the writer's; far from the bound they are rare,
     * so as not to wake it (and the calls sharing its CPU) for nothing. */
    bool near = rc == 0 && r->cfg.max_bytes > 0 && r->result.bytes > r->cfg.max_bytes / 2;
    uv_timer_start(r->timer, on_tick, more ? AGAIN_MS : near ? NEAR_MS : TICK_MS, 0);
}

static void on_tick(uv_timer_t *t)
{
    obs_retention_t *r = t->data;
    if (r->busy || r->stopped)
        return;
    r->busy = true;
    store_writer_submit(r->writer, false, prune_apply, prune_done, r);
}

obs_retention_t *obs_retention_start(uv_loop_t *loop, store_writer_t *writer,
                                     const obs_retention_config_t *cfg)
{
    obs_retention_t *r = xcalloc(1, sizeof *r);
    r->writer = writer;
    r->cfg = *cfg;
    r->m_pruned = metrics_family_new(METRICS_COUNTER, "mayfly_records_pruned_total",
                                     "Invocation records and log lines deleted past "
                                     "--retention-days or over --records-max-mb.",
                                     (const char *[]){"kind", NULL}, NULL, 0);
    r->m_bytes = metrics_family_new(METRICS_GAUGE, "mayfly_records_bytes",
                                    "Bytes the store's pages in use hold (records, payloads, "
                                    "logs and functions), at the last look.",
                                    NULL, NULL, 0);
    r->timer = xmalloc(sizeof *r->timer);
    uv_timer_init(loop, r->timer);
    r->timer->data = r;
    uv_unref((uv_handle_t *)r->timer);
    /* The first look soon after start: a server restarted over an old
     * data directory prunes it at once. */
    uv_timer_start(r->timer, on_tick, 1000, 0);
    return r;
}

void obs_retention_stop(obs_retention_t *r)
{
    if (!r)
        return;
    r->stopped = true;
    uv_close((uv_handle_t *)r->timer, free_timer);
    if (!r->busy)
        free(r);
}
