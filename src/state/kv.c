/* The key-value service on the loop (see state/kv.h): reads on the loop's
 * connection (SQLite) or the reader threads' (PostgreSQL), writes through
 * the writer thread, the sweep, counters and metrics. */
#include "state/kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "obs/metrics.h"
#include "store/reader.h"

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
    store_kv_t *rq;           /* SQLite: the loop's reading connection */
    store_readers_t *readers; /* PostgreSQL: the reader threads */
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
    char store[TENANT_QNAME_MAX + 1];
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
        /* Run again (store/writer.h): the last run's stores are the ones. */
        free(j->changed);
        j->changed = NULL;
        j->nchanged = 0;
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

/* Opens the connections reads are made on: on SQLite the loop's own,
 * first; on PostgreSQL first and the reader threads' (first among them). */
static int kv__open_readers(state_kv_t *kv, const char *where, store_kv_t *first,
                            mf_error_t *err)
{
    if (strcmp(store_kv_backend_name(first), "PostgreSQL")) {
        /* A local file read with prepared statements answers in
         * microseconds: a hand-off to a thread and back would cost more
         * than the read. */
        kv->rq = first;
        return 0;
    }
    size_t n = kv->cfg.readers;
    store_kv_t **conns = xcalloc(n, sizeof *conns);
    conns[0] = first;
    int r = 0;
    for (size_t i = 1; i < n && r == 0; i++)
        r = store_kv_open(where, &conns[i], err);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            store_kv_close(conns[i]);
        free(conns);
        return r;
    }
    r = store_readers_start(kv->loop, (void *const *)conns, n, (void (*)(void *))store_kv_close,
                            &kv->readers, err);
    free(conns);
    return r;
}

int state_kv_open(uv_loop_t *loop, const char *where, const state_kv_config_t *cfg,
                  state_kv_t **out, mf_error_t *err)
{
    state_kv_t *kv = xcalloc(1, sizeof *kv);
    kv->loop = loop;
    kv->cfg = *cfg;
    if (!kv->cfg.sweep_interval_ms)
        kv->cfg.sweep_interval_ms = 2000;
    if (!kv->cfg.readers)
        kv->cfg.readers = 2;
    store_kv_limits_t limits = {.max_value_bytes = (int64_t)cfg->max_value_bytes,
                                .max_store_bytes = cfg->max_store_bytes,
                                .max_keys = cfg->max_keys};
    store_kv_t *first;
    int r = store_kv_open(where, &first, err);
    if (r < 0) {
        free(kv);
        return r;
    }
    /* What the stores hold, for the gauges: read now, before the server
     * serves anything. */
    store_kv_store_stats_t *stores = NULL;
    size_t n = 0;
    mf_error_t serr = MF_ERROR_INIT;
    if (store_kv_stores(first, &stores, &n, &serr) < 0)
        log_warn("kv", "reading the stores' sizes: %s", serr.msg);
    store_writer_db_t wdb;
    if ((r = kv__open_readers(kv, where, first, err)) < 0) {
        free(stores);
        free(kv);
        return r;
    }
    if ((r = store_kv_writer_db(where, &limits, &wdb, err)) < 0 ||
        (r = store_writer_start(loop, &wdb, NULL, NULL, &kv->writer, err)) < 0) {
        store_readers_stop(kv->readers);
        store_kv_close(kv->rq);
        free(stores);
        free(kv);
        return r;
    }
    kv__metrics_setup(kv);
    for (size_t i = 0; i < n; i++)
        kv__set_gauges(kv, &stores[i]);
    free(stores);
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
    /* Commits what was accepted and answers it, then answers the reads
     * still on their way. */
    store_writer_stop(kv->writer);
    store_readers_stop(kv->readers);
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

/* One read: the query (on a thread, with its own copies of what the
 * caller's pointed to) and what it found. */
typedef struct kv_read {
    state_kv_t *kv;
    state_kv_query_t q;
    int64_t now_ms;
    int64_t max_bytes; /* GET_MANY: the values' bytes in all */
    state_kv_answer_t a;
    state_kv_read_cb done;
    void *ud;
    /* The copies q points to (a read on a thread). */
    char *store;
    void *key, *prefix, *after;
    slice_t *keys;
} kv_read_t;

/* Reads j->q on conn into j->a. On a reader thread it touches nothing of
 * the service but the job: the counters are the loop's (kv__read_answer). */
static int kv__read_run(store_kv_t *conn, kv_read_t *j, mf_error_t *err)
{
    const state_kv_query_t *q = &j->q;
    state_kv_answer_t *a = &j->a;
    switch (q->kind) {
    case STATE_KV_READ_GET:
        return store_kv_get(conn, q->store, q->key, q->key_len, j->now_ms, &a->item, err);
    case STATE_KV_READ_GET_MANY:
        a->items = xcalloc(q->nkeys ? q->nkeys : 1, sizeof *a->items);
        a->count = q->nkeys;
        return store_kv_get_many(conn, q->store, q->keys, q->nkeys, j->now_ms, j->max_bytes,
                                 a->items, err);
    case STATE_KV_READ_LIST:
        return store_kv_list(conn, q->store, q->prefix, q->prefix_len, q->after, q->after_len,
                             q->limit, j->now_ms, &a->items, &a->count, &a->more, err);
    case STATE_KV_READ_STATS: {
        store_kv_store_stats_t s;
        int r = store_kv_store_stats(conn, q->store, &s, err);
        if (r == 0) {
            a->stats.keys = s.keys;
            a->stats.bytes = s.bytes;
        }
        return r;
    }
    case STATE_KV_READ_STORES: return store_kv_stores(conn, &a->stores, &a->nstores, err);
    }
    return mf_error_plain(err, EINVAL, "unknown kind of read %d", (int)q->kind);
}

/* On the loop: counts the read, completes what the counters hold, calls
 * back and frees what the callback left of the answer. */
static void kv__read_answer(kv_read_t *j, int r, const mf_error_t *err)
{
    state_kv_t *kv = j->kv;
    const state_kv_query_t *q = &j->q;
    state_kv_answer_t *a = &j->a;
    switch (q->kind) {
    case STATE_KV_READ_GET: kv__count_reads(kv, q->store, r == 0, 1); break;
    case STATE_KV_READ_GET_MANY:
        if (r == 0) {
            bool found = false;
            for (size_t i = 0; i < a->count; i++)
                found |= a->items[i].found;
            kv__count_reads(kv, q->store, found, a->count);
        }
        break;
    case STATE_KV_READ_LIST:
        if (r == 0)
            kv__count_reads(kv, q->store, a->count > 0, 1);
        break;
    case STATE_KV_READ_STATS:
        if (r == 0) {
            const kv_counts_t *c = kv__counts(kv, q->store, false);
            a->stats.reads = c ? c->reads : 0;
            a->stats.writes = c ? c->writes : 0;
            a->stats.max_bytes = kv->cfg.max_store_bytes;
            a->stats.max_keys = kv->cfg.max_keys;
        }
        break;
    case STATE_KV_READ_STORES: break;
    }
    j->done(j->ud, r, a, err);
    store_kv_item_clear(&a->item);
    store_kv_items_free(a->items, a->count);
    free(a->stores);
}

static void kv__read_free(kv_read_t *j)
{
    for (size_t i = 0; j->keys && i < j->q.nkeys; i++)
        free((void *)j->keys[i].base);
    free(j->keys);
    free(j->store);
    free(j->key);
    free(j->prefix);
    free(j->after);
    free(j);
}

/* On a reader thread, with its connection. */
static int kv__read_apply(void *db, void *arg, mf_error_t *err)
{
    return kv__read_run(db, arg, err);
}

static void kv__read_done(void *arg, int r, const mf_error_t *err)
{
    kv_read_t *j = arg;
    kv__read_answer(j, r, err);
    kv__read_free(j);
}

void state_kv_read(state_kv_t *kv, const state_kv_query_t *q, state_kv_read_cb done, void *ud)
{
    mf_error_t err = MF_ERROR_INIT;
    if (kv__refuse_if_stopping(kv, &err) < 0) {
        state_kv_answer_t none = {0};
        done(ud, -ESHUTDOWN, &none, &err);
        return;
    }
    kv_read_t local = {.kv = kv, .q = *q, .now_ms = clock_wall_ms(), .done = done, .ud = ud};
    local.max_bytes = GET_MANY_MAX_BYTES;
    if ((int64_t)kv->cfg.max_value_bytes > local.max_bytes)
        local.max_bytes = (int64_t)kv->cfg.max_value_bytes;
    if (kv->rq) {
        int r = kv__read_run(kv->rq, &local, &err);
        kv__read_answer(&local, r, &err);
        return;
    }
    /* On a reader thread, with a connection of its own, and yet it sees
     * every write acknowledged before it was asked for: a write's callback
     * (and so its client's 200) runs only once the writer's COMMIT has
     * returned, and a transaction PostgreSQL has committed is visible to
     * every snapshot taken after, on any connection to the database. This
     * read's snapshot is taken when its statement (or, for a batch, its
     * REPEATABLE READ transaction) starts, on the thread, after this call.
     * Writes still on their way may or may not show, as on one connection. */
    kv_read_t *j = xmalloc(sizeof *j);
    *j = local;
    j->store = q->store ? xstrdup(q->store) : NULL;
    j->q.store = j->store;
    j->key = xmemdup0(q->key, q->key_len);
    j->q.key = j->key;
    j->prefix = xmemdup0(q->prefix, q->prefix_len);
    j->q.prefix = j->prefix;
    j->after = xmemdup0(q->after, q->after_len);
    j->q.after = j->after;
    if (q->keys) {
        j->keys = xcalloc(q->nkeys ? q->nkeys : 1, sizeof *j->keys);
        for (size_t i = 0; i < q->nkeys; i++)
            j->keys[i] = (slice_t){xmemdup0(q->keys[i].base, q->keys[i].len), q->keys[i].len};
    }
    j->q.keys = j->keys;
    store_readers_submit(kv->readers, kv__read_apply, kv__read_done, j);
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
