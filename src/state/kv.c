/* The key-value service on the loop (see state/kv.h): reads now, writes
 * through the writer thread, the sweep, counters and metrics. */
#include "state/kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "obs/metrics.h"

/* Expired keys removed per job of the writer: small, so writes that come
 * meanwhile wait little for the sweep. */
#define SWEEP_BATCH 256

/* A batch read answers at most this many value bytes (or the bound on one
 * value, if larger): 100 large values at once would hold the loop and a
 * few hundred MiB. */
#define GET_MANY_MAX_BYTES ((int64_t)16 << 20)

/* Reads and writes of one store since the start. */
typedef struct kv_counts {
    uint64_t reads, writes;
} kv_counts_t;

struct state_kv {
    uv_loop_t *loop;
    state_kv_config_t cfg;
    store_kv_t *rq; /* the loop's reading connection */
    store_writer_t *writer;
    uv_timer_t *sweep_timer;
    bool sweeping; /* a sweep job is with the writer */
    bool stopping;
    map_t counts; /* store name → kv_counts_t */
    metrics_family_t *m_keys, *m_bytes, *m_reads, *m_writes;
};

typedef enum { JOB_WRITE, JOB_INCR, JOB_DROP, JOB_SWEEP } kv_job_kind_t;

typedef struct kv_job {
    state_kv_t *kv;
    kv_job_kind_t kind;
    char store[65];
    store_kv_op_t *ops; /* write: owned */
    size_t nops;
    int64_t *versions;
    char *key; /* incr: owned */
    size_t key_len;
    int64_t by, ttl_ms;
    int64_t value, version;          /* incr: the outcome */
    store_kv_store_stats_t after;    /* the store once written (for the gauges) */
    store_kv_store_stats_t *changed; /* sweep: the stores it touched, after */
    size_t nchanged;
    int64_t removed;
    state_kv_done_fn done;
    void *ud;
} kv_job_t;

static void kv__job_free(kv_job_t *j)
{
    state_kv_ops_free(j->ops, j->nops);
    free(j->versions);
    free(j->key);
    free(j->changed);
    free(j);
}

/* ---- counters and metrics ------------------------------------------------ */

/* The counters of store; with create false, NULL for a store not counted
 * yet, so reads of names that hold nothing do not grow the table. */
static kv_counts_t *kv__counts(state_kv_t *kv, const char *store, bool create)
{
    kv_counts_t *c = map_get(&kv->counts, store);
    if (!c && create) {
        c = xcalloc(1, sizeof *c);
        map_put(&kv->counts, store, c);
    }
    return c;
}

static void kv__count_reads(state_kv_t *kv, const char *store, bool found, uint64_t n)
{
    kv_counts_t *c = kv__counts(kv, store, found);
    if (!c || !n)
        return;
    c->reads += n;
    const char *labels[] = {store};
    metrics_inc(kv->m_reads, labels, (double)n);
}

static void kv__set_gauges(state_kv_t *kv, const store_kv_store_stats_t *s)
{
    const char *labels[] = {s->name};
    metrics_set(kv->m_keys, labels, (double)s->keys);
    metrics_set(kv->m_bytes, labels, (double)s->bytes);
}

static void kv__metrics_setup(state_kv_t *kv)
{
    static const char *const store[] = {"store", NULL};
    kv->m_keys = metrics_family_new(METRICS_GAUGE, "mayfly_kv_keys",
                                    "Keys a key-value store holds (expired ones not yet swept "
                                    "included).",
                                    store, NULL, 0);
    kv->m_bytes =
        metrics_family_new(METRICS_GAUGE, "mayfly_kv_bytes",
                           "Bytes of keys and values a key-value store holds.", store, NULL, 0);
    kv->m_reads = metrics_family_new(METRICS_COUNTER, "mayfly_kv_reads_total",
                                     "Keys read from a key-value store (a listing counts one).",
                                     store, NULL, 0);
    kv->m_writes = metrics_family_new(METRICS_COUNTER, "mayfly_kv_writes_total",
                                      "Writes committed to a key-value store (puts, deletes, "
                                      "increments; each op of a batch).",
                                      store, NULL, 0);
}

/* ---- the writer's jobs ---------------------------------------------------- */

/* On the writer thread, inside the job's savepoint. */
static int kv__apply(void *db, void *arg, mf_error_t *err)
{
    store_kv_t *w = db;
    kv_job_t *j = arg;
    int64_t now = clock_wall_ms();
    int r = 0;
    switch (j->kind) {
    case JOB_WRITE:
        if (j->nops == 1) {
            r = store_kv_write(w, j->store, &j->ops[0], now, &j->versions[0], err);
        } else {
            size_t failed;
            r = store_kv_write_all(w, j->store, j->ops, j->nops, now, j->versions, &failed, err);
        }
        break;
    case JOB_INCR:
        r = store_kv_incr(w, j->store, j->key, j->key_len, j->by, j->ttl_ms, now, &j->value,
                          &j->version, err);
        break;
    case JOB_DROP: r = store_kv_drop(w, j->store, err); break;
    case JOB_SWEEP:
        return store_kv_sweep(w, now, SWEEP_BATCH, &j->removed, &j->changed, &j->nchanged, err);
    }
    if (r == 0)
        r = store_kv_store_stats(w, j->store, &j->after, err);
    return r;
}

static void kv__arm_sweep(state_kv_t *kv, uint64_t delay_ms);

/* On the loop, once the job's batch is committed (r == 0) or failed. */
static void kv__done(void *arg, int r, const mf_error_t *err)
{
    kv_job_t *j = arg;
    state_kv_t *kv = j->kv;
    state_kv_result_t res = {0};
    switch (j->kind) {
    case JOB_WRITE:
    case JOB_INCR:
        if (r == 0) {
            uint64_t n = j->kind == JOB_WRITE ? j->nops : 1;
            kv__counts(kv, j->store, true)->writes += n;
            const char *labels[] = {j->store};
            metrics_inc(kv->m_writes, labels, (double)n);
            kv__set_gauges(kv, &j->after);
        }
        res = (state_kv_result_t){
            .versions = j->versions, .n = j->nops, .value = j->value, .version = j->version};
        break;
    case JOB_DROP:
        if (r == 0) {
            const char *labels[] = {j->store};
            metrics_remove(kv->m_keys, labels);
            metrics_remove(kv->m_bytes, labels);
            free(map_remove(&kv->counts, j->store));
        }
        break;
    case JOB_SWEEP:
        kv->sweeping = false;
        if (r < 0) {
            log_warn("kv", "removing expired keys: %s", err->msg);
        } else {
            for (size_t i = 0; i < j->nchanged; i++)
                kv__set_gauges(kv, &j->changed[i]);
            /* A full batch: there may be more, right away. */
            if (j->removed >= SWEEP_BATCH)
                kv__arm_sweep(kv, 0);
        }
        kv__job_free(j);
        return;
    }
    if (j->done)
        j->done(j->ud, r, &res, err);
    kv__job_free(j);
}

static kv_job_t *kv__job(state_kv_t *kv, kv_job_kind_t kind, const char *store,
                         state_kv_done_fn done, void *ud)
{
    kv_job_t *j = xcalloc(1, sizeof *j);
    j->kv = kv;
    j->kind = kind;
    snprintf(j->store, sizeof j->store, "%s", store ? store : "");
    j->done = done;
    j->ud = ud;
    return j;
}

/* ---- the sweep ------------------------------------------------------------ */

static void kv__on_sweep(uv_timer_t *t)
{
    state_kv_t *kv = t->data;
    if (kv->stopping || kv->sweeping)
        return;
    kv->sweeping = true;
    /* Not durable: no one waits for it, and a crash only means the same
     * keys are swept again (they are never read meanwhile). */
    store_writer_submit(kv->writer, false, kv__apply, kv__done,
                        kv__job(kv, JOB_SWEEP, NULL, NULL, NULL));
}

static void kv__arm_sweep(state_kv_t *kv, uint64_t delay_ms)
{
    if (kv->stopping)
        return;
    uv_timer_start(kv->sweep_timer, kv__on_sweep, delay_ms, kv->cfg.sweep_interval_ms);
}

/* ---- opening and closing -------------------------------------------------- */

int state_kv_open(uv_loop_t *loop, const char *where, const state_kv_config_t *cfg,
                  state_kv_t **out, mf_error_t *err)
{
    state_kv_t *kv = xcalloc(1, sizeof *kv);
    kv->loop = loop;
    kv->cfg = *cfg;
    if (!kv->cfg.sweep_interval_ms)
        kv->cfg.sweep_interval_ms = 2000;
    store_kv_limits_t limits = {.max_value_bytes = (int64_t)cfg->max_value_bytes,
                                .max_store_bytes = cfg->max_store_bytes,
                                .max_keys = cfg->max_keys};
    int r = store_kv_open(where, &kv->rq, err);
    if (r < 0) {
        free(kv);
        return r;
    }
    store_kv_set_limits(kv->rq, &limits);
    store_writer_db_t wdb;
    if ((r = store_kv_writer_db(where, &limits, &wdb, err)) < 0 ||
        (r = store_writer_start(loop, &wdb, NULL, NULL, &kv->writer, err)) < 0) {
        store_kv_close(kv->rq);
        free(kv);
        return r;
    }
    kv__metrics_setup(kv);
    store_kv_store_stats_t *stores = NULL;
    size_t n = 0;
    if (store_kv_stores(kv->rq, &stores, &n, err) == 0) {
        for (size_t i = 0; i < n; i++)
            kv__set_gauges(kv, &stores[i]);
        free(stores);
    }
    kv->sweep_timer = xmalloc(sizeof *kv->sweep_timer);
    uv_timer_init(loop, kv->sweep_timer);
    kv->sweep_timer->data = kv;
    /* The sweep alone does not keep a server's loop alive. */
    uv_unref((uv_handle_t *)kv->sweep_timer);
    kv__arm_sweep(kv, kv->cfg.sweep_interval_ms);
    *out = kv;
    return 0;
}

const state_kv_config_t *state_kv_config(const state_kv_t *kv)
{
    return &kv->cfg;
}

void state_kv_stop(state_kv_t *kv)
{
    if (!kv)
        return;
    kv->stopping = true;
    uv_timer_stop(kv->sweep_timer);
}

static void kv__free_handle(uv_handle_t *h)
{
    free(h);
}

void state_kv_close(state_kv_t *kv)
{
    if (!kv)
        return;
    state_kv_stop(kv);
    /* Commits what was accepted and answers it. */
    store_writer_stop(kv->writer);
    uv_close((uv_handle_t *)kv->sweep_timer, kv__free_handle);
    store_kv_close(kv->rq);
    const char *name;
    void *value;
    for (size_t it = 0; map_next(&kv->counts, &it, &name, &value);)
        free(value);
    map_release(&kv->counts);
    free(kv);
}

static int kv__refuse_if_stopping(const state_kv_t *kv, mf_error_t *err)
{
    if (kv->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    return 0;
}

/* ---- reads ---------------------------------------------------------------- */

int state_kv_get(state_kv_t *kv, const char *store, const void *key, size_t len,
                 store_kv_item_t *out, mf_error_t *err)
{
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    r = store_kv_get(kv->rq, store, key, len, clock_wall_ms(), out, err);
    kv__count_reads(kv, store, r == 0, 1);
    return r;
}

int state_kv_get_many(state_kv_t *kv, const char *store, const slice_t *keys, size_t n,
                      store_kv_item_t *items, mf_error_t *err)
{
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    int64_t cap = GET_MANY_MAX_BYTES;
    if ((int64_t)kv->cfg.max_value_bytes > cap)
        cap = (int64_t)kv->cfg.max_value_bytes;
    r = store_kv_get_many(kv->rq, store, keys, n, clock_wall_ms(), cap, items, err);
    if (r == 0) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= items[i].found;
        kv__count_reads(kv, store, found, n);
    }
    return r;
}

int state_kv_list(state_kv_t *kv, const char *store, const void *prefix, size_t prefix_len,
                  const void *after, size_t after_len, int limit, store_kv_item_t **out,
                  size_t *count, bool *more, mf_error_t *err)
{
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    r = store_kv_list(kv->rq, store, prefix, prefix_len, after, after_len, limit, clock_wall_ms(),
                      out, count, more, err);
    if (r == 0)
        kv__count_reads(kv, store, *count > 0, 1);
    return r;
}

int state_kv_stats(state_kv_t *kv, const char *store, state_kv_stats_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    store_kv_store_stats_t s;
    if ((r = store_kv_store_stats(kv->rq, store, &s, err)) < 0)
        return r;
    const kv_counts_t *c = kv__counts(kv, store, false);
    *out = (state_kv_stats_t){.keys = s.keys,
                              .bytes = s.bytes,
                              .reads = c ? c->reads : 0,
                              .writes = c ? c->writes : 0,
                              .max_bytes = kv->cfg.max_store_bytes,
                              .max_keys = kv->cfg.max_keys};
    return 0;
}

int state_kv_stores(state_kv_t *kv, store_kv_store_stats_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    return store_kv_stores(kv->rq, out, count, err);
}

/* ---- writes --------------------------------------------------------------- */

int state_kv_write(state_kv_t *kv, const char *store, store_kv_op_t *ops, size_t n,
                   state_kv_done_fn done, void *ud, mf_error_t *err)
{
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0) {
        state_kv_ops_free(ops, n);
        return r;
    }
    kv_job_t *j = kv__job(kv, JOB_WRITE, store, done, ud);
    j->ops = ops;
    j->nops = n;
    j->versions = xcalloc(n ? n : 1, sizeof *j->versions);
    /* Durable: the caller is answered once it is fsync'd. */
    store_writer_submit(kv->writer, true, kv__apply, kv__done, j);
    return 0;
}

int state_kv_incr(state_kv_t *kv, const char *store, const void *key, size_t len, int64_t by,
                  int64_t ttl_s, state_kv_done_fn done, void *ud, mf_error_t *err)
{
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    kv_job_t *j = kv__job(kv, JOB_INCR, store, done, ud);
    j->key = xmalloc(len + 1);
    memcpy(j->key, key, len);
    j->key[len] = '\0';
    j->key_len = len;
    j->by = by;
    j->ttl_ms = ttl_s * 1000;
    store_writer_submit(kv->writer, true, kv__apply, kv__done, j);
    return 0;
}

int state_kv_drop(state_kv_t *kv, const char *store, state_kv_done_fn done, void *ud,
                  mf_error_t *err)
{
    int r = kv__refuse_if_stopping(kv, err);
    if (r < 0)
        return r;
    store_writer_submit(kv->writer, true, kv__apply, kv__done,
                        kv__job(kv, JOB_DROP, store, done, ud));
    return 0;
}
