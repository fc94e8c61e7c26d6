/* Power tuning's runs (watch/tune.h): one size after the other, each a
 * settings copy of the function with one instance, called runs times in a
 * row, then removed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "watch/tune.h"

typedef struct tune {
    uv_loop_t *loop;
    exec_t *ex;
    fn_t fn; /* the function's settings when the tune began */
    watch_tune_request_t rq;
    meter_prices_t prices;
    watch_tune_done_fn done;
    void *ud;
    watch_tune_run_t *runs; /* rq.runs per size */
    int done_runs[WATCH_TUNE_SIZES_MAX];
    size_t size;                    /* the size being run */
    char key[TENANT_QNAME_MAX + 1]; /* its copy's, "" when none is defined */
    uv_timer_t *next;               /* the next step, from a fresh loop turn */
    int failed;                     /* a negative errno that ends the tune, or 0 */
    mf_error_t err;
} tune_t;

/* Functions being tuned (qualified name → tune_t): one tune at a time
 * each. */
static map_t tuning = MAP_INIT;
static unsigned long copy_seq;

static void step(tune_t *t);

static void on_step(uv_timer_t *h)
{
    step(h->data);
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void schedule(tune_t *t)
{
    uv_timer_start(t->next, on_step, 0, 0);
}

/* The copy of the size that ran goes, with its instances. */
static void drop_copy(tune_t *t)
{
    if (!t->key[0])
        return;
    exec_function_removed(t->ex, t->key);
    t->key[0] = '\0';
}

static void finish(tune_t *t)
{
    drop_copy(t);
    map_remove(&tuning, t->fn.name);
    if (!tuning.len)
        map_release(&tuning);
    json_t *table = NULL;
    if (!t->failed)
        table = watch_tune_table(&t->rq, t->runs, t->done_runs, &t->prices);
    t->done(t->ud, t->failed, table, &t->err);
    uv_close((uv_handle_t *)t->next, free_timer);
    free(t->runs);
    watch_tune_request_release(&t->rq);
    fn_clear(&t->fn);
    free(t);
}

static void on_call_done(invocation_t *inv, void *ud)
{
    tune_t *t = ud;
    watch_tune_run_t *r = &t->runs[t->size * (size_t)t->rq.runs + (size_t)t->done_runs[t->size]];
    *r = (watch_tune_run_t){
        .status = inv->status == INV_SUCCESS   ? WATCH_CALL_SUCCESS
                  : inv->status == INV_TIMEOUT ? WATCH_CALL_TIMEOUT
                  : inv->status == INV_OOM     ? WATCH_CALL_OOM
                                               : WATCH_CALL_ERROR,
        .cold_start = inv->cold_start,
        .init_ms = inv->init_ms,
        .duration_ms = inv->duration_ms,
        .cpu_ms = (int64_t)inv->cpu_ms,
        .max_rss_kb = (int64_t)inv->max_rss_kb,
    };
    if (inv->status == INV_THROTTLED)
        r->status = WATCH_CALL_OTHER;
    if (inv->error_type && r->status == WATCH_CALL_ERROR)
        snprintf(r->error_type, sizeof r->error_type, "%s", inv->error_type);
    t->done_runs[t->size]++;
    /* The tenant pays for what its function did: the call's usage is
     * metered under the function, with its own trigger, but no record is
     * written (the function's records and statistics stay its own). */
    store_record_t rec;
    invocation_record(inv, &rec);
    snprintf(rec.function, sizeof rec.function, "%s", t->fn.name);
    snprintf(rec.trigger, sizeof rec.trigger, "tune");
    exec_meter_unrecorded(t->ex, &rec);
    if (inv->error_type && !strcmp(inv->error_type, "Mayfly.ShuttingDown") && !t->failed)
        t->failed = mf_error_plain(&t->err, ESHUTDOWN, "the server is shutting down");
    invocation_free(inv);
    schedule(t);
}

static void step(tune_t *t)
{
    if (t->failed || t->size >= t->rq.n_sizes) {
        finish(t);
        return;
    }
    if (t->done_runs[t->size] >= t->rq.runs) {
        drop_copy(t);
        t->size++;
        step(t);
        return;
    }
    if (!t->key[0]) {
        /* '#' is in no function's name: the copy's name is its own. */
        char tenant[TENANT_MAX + 1], local[32];
        tenant_of(t->fn.name, tenant);
        snprintf(local, sizeof local, "#tune-%lu", ++copy_seq);
        if (!strcmp(tenant, TENANT_DEFAULT))
            snprintf(t->key, sizeof t->key, "%s", local);
        else
            snprintf(t->key, sizeof t->key, "%s%c%s", tenant, TENANT_SEP, local);
        fn_t copy;
        fn_copy(&copy, &t->fn);
        copy.memory_mb = t->rq.sizes[t->size];
        /* One instance: the first call is cold, the rest find it warm. */
        copy.max_concurrency = 1;
        int r = exec_copy_define(t->ex, t->key, &copy, &t->err);
        fn_clear(&copy);
        if (r < 0) {
            t->key[0] = '\0';
            t->failed = r;
            finish(t);
            return;
        }
    }
    buf_t event = BUF_INIT;
    buf_add(&event, t->rq.event, t->rq.event_len);
    exec_call_opts_t opts = {.no_record = true, .trigger = "tune"};
    int r = exec_invoke_opts(t->ex, t->key, &event, &opts, on_call_done, t, &t->err);
    if (r < 0) {
        buf_release(&event);
        t->failed = r;
        finish(t);
    }
}

int watch_tune_start(uv_loop_t *loop, exec_t *ex, const fn_t *fn, watch_tune_request_t *rq,
                     const meter_prices_t *prices, watch_tune_done_fn done, void *ud,
                     mf_error_t *err)
{
    if (map_get(&tuning, fn->name)) {
        watch_tune_request_release(rq);
        return mf_error_plain(
            err, EBUSY, "%s is being tuned already: one tune of a function at a time", fn->name);
    }
    tune_t *t = xcalloc(1, sizeof *t);
    t->loop = loop;
    t->ex = ex;
    fn_copy(&t->fn, fn);
    t->rq = *rq;
    memset(rq, 0, sizeof *rq);
    t->prices = *prices;
    t->done = done;
    t->ud = ud;
    t->runs = xcalloc(t->rq.n_sizes * (size_t)t->rq.runs, sizeof *t->runs);
    t->err = (mf_error_t)MF_ERROR_INIT;
    t->next = xcalloc(1, sizeof *t->next);
    uv_timer_init(loop, t->next);
    t->next->data = t;
    map_put(&tuning, t->fn.name, t);
    log_info("watch", "tuning %s at %zu sizes, %d runs each", fn->name, t->rq.n_sizes, t->rq.runs);
    schedule(t);
    return 0;
}
