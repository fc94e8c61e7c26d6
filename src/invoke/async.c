/* The async queue: accepting events durably, running them where there is
 * room, retrying, dead letters, destinations and recovery (see async.h).
 *
 * Every event's state lives in the queue's database (queue.db, or the
 * shared PostgreSQL); the loop keeps an index of it in memory, per
 * function: every event oldest first, the ready ones in a FIFO, and the
 * ones waiting for a retry in one heap ordered by their time. The index
 * keeps an event's body too while they fit in cfg.max_kept_bytes, from its
 * acceptance to its end; an event without (past that bound, or taken up
 * after a restart) has its body read back by a job of the queue's writer
 * when it is next to run. The loop itself never reads the store once the
 * queue is open, so a shared database's round trips never hold it up. */
#include "invoke/async.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/codec.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "invoke/limit.h"
#include "obs/loop.h"
#include "obs/metrics.h"
#include "obs/otlp.h"
#include "store/health.h"
#include "store/nodes.h"
#include "store/writer.h"

typedef struct afn afn_t;
typedef struct async async_t;

typedef struct aevent {
    store_qevent_t q;            /* as last written (event bytes not kept) */
    afn_t *fn;
    struct aevent *next_ready;
    struct aevent *prev, *next;  /* the function's events, oldest first */
    size_t heap_i;               /* in the retry heap, or NOT_IN_HEAP */
    bool linked;
    bool orphan;                 /* its function was deleted while it ran */
    bool ending;                 /* its attempt ended; the history is being written */
    bool starting;               /* inside exec_invoke_opts */
    bool has_body;               /* body holds the event's bytes */
    bool held;                   /* it waited for async_set_hold's answer: its age
                                  * is not held against it */
    bool loading;                /* its body is being read back (async__load_bodies) */
    buf_t body;
    invocation_t *early;         /* an attempt that ended before that returned */
    char key_id[STORE_KEY_ID_MAX + 1]; /* async_enqueue_opts_t's, for its first record */
} aevent_t;

#define NOT_IN_HEAP ((size_t)-1)

struct afn {
    async_t *a;
    char name[TENANT_QNAME_MAX + 1];
    bool known;                  /* cfg, version and memory are the registry's */
    fn_async_t cfg;
    fn_tenancy_t tenancy;        /* the registry's, while known */
    int64_t version;
    int memory_mb;
    aevent_t *ready_head, *ready_tail;
    aevent_t *head, *tail;       /* every linked event */
    uint64_t n_events, n_running;
    int max_concurrency;         /* the function's, while known */
    async_limit_t limit;         /* running attempts it may have now (limit.h) */
    int64_t dead_letters;
    uint64_t enqueued, attempts, retries;
    bool dirty;
    afn_t *next_dirty;
    async_fg_node_t fg;          /* its place in the foreground's line (limit.h) */
    bool held;                   /* its events wait (async_set_hold), for held_why */
    char held_why[320];
};

/* An idempotency key's first request. */
typedef struct idem {
    char request_id[ID_UUID_LEN + 1];
    int64_t created_ms;
    bool committed;
} idem_t;

/* A job whose commit must wait until the records it follows are written:
 * an event leaves the queue only after its final record is in mayfly.db. */
typedef struct after_records {
    struct after_records *next;
    store_job_apply_fn apply;
    store_job_done_fn done;
    void *arg;
} after_records_t;

/* Queue jobs handed on together once the records before them are written. */
typedef struct after_batch {
    struct async *a;             /* NULL once async_close took it over */
    after_records_t *head;
    struct after_batch *next;
} after_batch_t;

struct async {
    uv_loop_t *loop;
    exec_t *exec;
    registry_t *registry;
    obs_records_t *records;
    async_config_t cfg;
    char region[33];
    store_queue_t *rq;           /* the loop's reading connection */
    /* Writes that answer requests (accepting events, and the other
     * tables' jobs through async_write), and the bookkeeping of running
     * events (attempts starting and ending, final writes, takes, beats).
     * On PostgreSQL each has its own connection, so that a 202 does not
     * wait behind the round trips of the events running meanwhile; on
     * SQLite, whose file takes one writer at a time, they are one. Every
     * event's bookkeeping follows its acceptance's commit. */
    store_writer_t *writer;
    store_writer_t *book;
    map_t fns;                   /* name → afn_t */
    map_t idem;                  /* "function\nkey" → idem_t */
    aevent_t **heap;
    size_t heap_n, heap_cap;
    uv_timer_t *retry_timer;
    uv_timer_t *fg_timer;        /* async__on_fg_timer */
    uv_timer_t *prune_timer;
    uv_timer_t *grace_timer;
    uv_idle_t *kick;             /* runs dispatch and pending commits once the loop is free */
    afn_t *dirty_head, *dirty_tail;
    after_records_t *after_head, *after_tail;
    after_batch_t *after_batches; /* handed on, waiting for their records */
    async_hold_fn hold;          /* async_set_hold's, or NULL */
    void *hold_ud;
    uint64_t rng;
    size_t kept_bytes;           /* of the events' bodies in memory */
    uint64_t n_running;
    async_fg_t fg;               /* the foreground (limit.h) */
    bool stopping;
    bool closing;                /* the writer is draining for good */
    /* This node (store/nodes.h). */
    char node[STORE_NODE_ID_MAX + 1];
    char address[96];
    int64_t started_ms;
    bool shared;                 /* other nodes may share the database */
    int alive;                   /* nodes sharing it at the last beat, this one included */
    uint64_t n_linked;           /* events in the index */
    uv_timer_t *beat_timer;
    uv_timer_t *take_timer;
    bool beating, taking;        /* a beat's or a take's job is on the writer */
    bool beat_failed, take_failed; /* the last one failed (logged once) */
    bool pool_hint;              /* the pool may hold events: take again soon */
    unsigned beats;
    void (*stop_done)(void *ud);
    void *stop_ud;
    metrics_family_t *m_depth, *m_age, *m_running, *m_limit, *m_dead, *m_enqueued, *m_attempts,
        *m_retries, *m_fg_waits, *m_commits, *m_commit_s, *m_commit_jobs, *m_pruned;
};

static void async__kick(async_t *a);
static void async__schedule(async_t *a, aevent_t *ev);
static void async__take_soon(async_t *a);
static void async__hold(async_t *a, aevent_t *ev, buf_t *body);

/* A node takes events from the pool while it has fewer than POOL_LOW / 2
 * waiting, up to POOL_LOW; past POOL_LOW, the events it accepts go to the
 * pool (when other nodes share it). */
#define POOL_LOW 64
/* How often a node looks in the pool when nothing told it to. */
#define POOL_POLL_MS 250
/* Nodes that left are forgotten after this long. */
#define NODE_FORGET_MS (24LL * 3600 * 1000)

/* Events in the index not running: waiting to, or for a retry. */
static uint64_t async__waiting(const async_t *a)
{
    return a->n_linked - a->n_running;
}

/* ---- small helpers --------------------------------------------------------- */

/* A number in [lo, hi), for jitter (xorshift64*: plenty for spreading
 * retries, and no lock or syscall). */
static double async__uniform(async_t *a, double lo, double hi)
{
    a->rng ^= a->rng >> 12;
    a->rng ^= a->rng << 25;
    a->rng ^= a->rng >> 27;
    uint64_t x = a->rng * 2685821657736338717ULL;
    return lo + (hi - lo) * (double)(x >> 11) / (double)(1ULL << 53);
}

static bool async__valid_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > ASYNC_IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x20 || key[i] > 0x7e)
            return false;
    return true;
}

static char *async__idem_key(const char *function, const char *key)
{
    return xasprintf("%s\n%s", function, key);
}

static void async__fn_load(afn_t *fn, const fn_t *f)
{
    fn->known = true;
    fn->cfg = f->async;
    fn->tenancy = f->tenancy;
    fn->version = f->version;
    fn->memory_mb = f->memory_mb;
    fn->max_concurrency = f->max_concurrency;
}

/* How many of the function's attempts may run now. */
static int async__limit(const afn_t *fn)
{
    return async_limit_get(&fn->limit, fn->max_concurrency);
}

/* The function's queue state; with check, the function must exist in the
 * registry (-ENOENT otherwise). */
static int async__fn(async_t *a, const char *name, bool check, afn_t **out, mf_error_t *err)
{
    afn_t *fn = map_get(&a->fns, name);
    if (!fn || (check && !fn->known)) {
        fn_t f;
        int r = registry_get(a->registry, name, &f, err);
        if (r < 0 && (check || r != -ENOENT))
            return r;
        if (!fn) {
            fn = xcalloc(1, sizeof *fn);
            fn->a = a;
            async_limit_init(&fn->limit);
            snprintf(fn->name, sizeof fn->name, "%s", name);
            map_put(&a->fns, name, fn);
        }
        if (r == 0) {
            async__fn_load(fn, &f);
            fn_clear(&f);
        }
    }
    *out = fn;
    return 0;
}

/* An event's record when no attempt's figures go with it (queued,
 * running, expired). */
static void async__record_fill(const aevent_t *ev, const char *status, int64_t start_ms,
                               store_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->request_id, sizeof rec->request_id, "%s", ev->q.request_id);
    snprintf(rec->function, sizeof rec->function, "%s", ev->fn->name);
    rec->version = ev->fn->version;
    snprintf(rec->status, sizeof rec->status, "%s", status);
    rec->start_ms = start_ms;
    rec->memory_mb = ev->fn->memory_mb;
    rec->attempts = ev->q.attempts;
    snprintf(rec->replay_of, sizeof rec->replay_of, "%s", ev->q.replay_of);
    snprintf(rec->caller_request_id, sizeof rec->caller_request_id, "%s",
             ev->q.caller_request_id);
    snprintf(rec->trigger, sizeof rec->trigger, "%s", ev->q.trigger[0] ? ev->q.trigger : "invoke");
    snprintf(rec->tenant_id, sizeof rec->tenant_id, "%s", ev->q.tenant_id);
    snprintf(rec->key_id, sizeof rec->key_id, "%s", ev->key_id);
}

static void async__record_basic(const aevent_t *ev, const char *status, int64_t start_ms,
                                obs_records_t *records)
{
    store_record_t rec;
    async__record_fill(ev, status, start_ms, &rec);
    obs_records_set(records, &rec);
}

/* ---- the in-memory index ----------------------------------------------------- */

/* Keeps *body (taken) as ev's while the kept bodies fit in the bound, or
 * whatever they come to with force (a body read back to run now). */
static void async__keep_body(async_t *a, aevent_t *ev, buf_t *body, bool force)
{
    if (!force && a->kept_bytes + body->len > a->cfg.max_kept_bytes)
        return;
    ev->body = *body;
    buf_init(body, 0);
    ev->has_body = true;
    a->kept_bytes += ev->body.len;
}

static void async__event_free(async_t *a, aevent_t *ev)
{
    if (ev->has_body) {
        a->kept_bytes -= ev->body.len;
        buf_release(&ev->body);
    }
    free(ev);
}

static void async__link(aevent_t *ev)
{
    afn_t *fn = ev->fn;
    ev->prev = fn->tail;
    ev->next = NULL;
    if (fn->tail)
        fn->tail->next = ev;
    else
        fn->head = ev;
    fn->tail = ev;
    fn->n_events++;
    fn->a->n_linked++;
    ev->linked = true;
}

/* The function has ready events and may have room: dispatch soon. */
static void async__mark_dirty(async_t *a, afn_t *fn)
{
    if (!fn->dirty) {
        fn->dirty = true;
        fn->next_dirty = NULL;
        if (a->dirty_tail)
            a->dirty_tail->next_dirty = fn;
        else
            a->dirty_head = fn;
        a->dirty_tail = fn;
    }
    async__kick(a);
}

/* ---- the foreground (limit.h) ------------------------------------------------- */

static bool async__fg_on(async_t *a)
{
    int pct = a->cfg.accept_first_percent;
    return pct >= 0 && async_fg_on(&a->fg, uv_now(a->loop), obs_loop_demand(), pct / 100.0);
}

static void async__fg_released(async_fg_node_t *n, void *ud)
{
    async__mark_dirty(ud, (afn_t *)((char *)n - offsetof(afn_t, fg)));
}

/* While functions wait in line, the foreground is looked at every window:
 * attempts that run long end no sooner for the accepting having stopped. */
static void async__on_fg_timer(uv_timer_t *t)
{
    async_t *a = t->data;
    if (!a->fg.head)
        uv_timer_stop(t);
    else if (!async__fg_on(a))
        async_fg_release(&a->fg, async__fg_released, a);
}

/* Whether fn waits in line instead of starting an attempt now. */
static bool async__fg_wait(async_t *a, afn_t *fn, bool *turn)
{
    bool was_waiting = fn->fg.waiting;
    if (!async_fg_wait(&a->fg, &fn->fg, a->n_running, async__fg_on(a), turn))
        return false;
    if (!was_waiting)
        metrics_inc(a->m_fg_waits, (const char *[]){ fn->name }, 1);
    if (!uv_is_active((uv_handle_t *)a->fg_timer))
        uv_timer_start(a->fg_timer, async__on_fg_timer, ASYNC_FG_WINDOW_MS, ASYNC_FG_WINDOW_MS);
    return true;
}

/* Attempts ended or a dispatch did: with room left, the next in line has
 * its turn. */
static void async__fg_pass_turn(async_t *a)
{
    async_fg_node_t *n = async_fg_next(&a->fg, a->n_running);
    if (n && !a->stopping)
        async__fg_released(n, a);
}

/* An accepted event is in the queue (its row committed): counted, recorded
 * as queued, kept for its run; and it counts towards the foreground. */
static void async__accepted(async_t *a, aevent_t *ev, buf_t *body)
{
    afn_t *fn = ev->fn;
    fn->enqueued++;
    metrics_inc(a->m_enqueued, (const char *[]){ fn->name }, 1);
    async__record_basic(ev, "queued", ev->q.enqueued_ms, a->records);
    async__hold(a, ev, body);
    async_fg_accepted(&a->fg, uv_now(a->loop));
}

/* ev waits, held (async_set_hold): its record says why. */
static void async__mark_held(async_t *a, aevent_t *ev)
{
    store_record_t rec;
    async__record_fill(ev, "queued", ev->q.enqueued_ms, &rec);
    rec.error_type = "BudgetExceeded";
    rec.error_message = ev->fn->held_why;
    obs_records_set(a->records, &rec);
    ev->held = true;
}

static void async__ready_push(async_t *a, aevent_t *ev)
{
    afn_t *fn = ev->fn;
    if (fn->held)
        async__mark_held(a, ev);
    ev->next_ready = NULL;
    if (fn->ready_tail)
        fn->ready_tail->next_ready = ev;
    else
        fn->ready_head = ev;
    fn->ready_tail = ev;
    async__mark_dirty(a, fn);
}

static aevent_t *async__ready_pop(afn_t *fn)
{
    aevent_t *ev = fn->ready_head;
    if (ev) {
        fn->ready_head = ev->next_ready;
        if (!fn->ready_head)
            fn->ready_tail = NULL;
        ev->next_ready = NULL;
    }
    return ev;
}

/* Takes ev out of the ready FIFO wherever it is in it. */
static void async__ready_remove(afn_t *fn, aevent_t *ev)
{
    aevent_t *prev = NULL;
    for (aevent_t *it = fn->ready_head; it; prev = it, it = it->next_ready) {
        if (it != ev)
            continue;
        if (prev)
            prev->next_ready = ev->next_ready;
        else
            fn->ready_head = ev->next_ready;
        if (fn->ready_tail == ev)
            fn->ready_tail = prev;
        ev->next_ready = NULL;
        return;
    }
}

static void async__ready_unpop(afn_t *fn, aevent_t *ev)
{
    ev->next_ready = fn->ready_head;
    fn->ready_head = ev;
    if (!fn->ready_tail)
        fn->ready_tail = ev;
}

/* The retry heap: a binary min-heap on next_ms. */
static void async__heap_swap(async_t *a, size_t i, size_t j)
{
    aevent_t *t = a->heap[i];
    a->heap[i] = a->heap[j];
    a->heap[j] = t;
    a->heap[i]->heap_i = i;
    a->heap[j]->heap_i = j;
}

static void async__heap_up(async_t *a, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (a->heap[parent]->q.next_ms <= a->heap[i]->q.next_ms)
            break;
        async__heap_swap(a, i, parent);
        i = parent;
    }
}

static void async__heap_down(async_t *a, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < a->heap_n && a->heap[l]->q.next_ms < a->heap[m]->q.next_ms)
            m = l;
        if (r < a->heap_n && a->heap[r]->q.next_ms < a->heap[m]->q.next_ms)
            m = r;
        if (m == i)
            return;
        async__heap_swap(a, i, m);
        i = m;
    }
}

static void async__heap_remove(async_t *a, aevent_t *ev)
{
    size_t i = ev->heap_i;
    if (i == NOT_IN_HEAP)
        return;
    async__heap_swap(a, i, a->heap_n - 1);
    a->heap_n--;
    ev->heap_i = NOT_IN_HEAP;
    if (i < a->heap_n) {
        async__heap_up(a, i);
        async__heap_down(a, i);
    }
}

static void async__on_retry_timer(uv_timer_t *t);

static void async__arm_retry_timer(async_t *a)
{
    if (!a->heap_n || a->stopping) {
        uv_timer_stop(a->retry_timer);
        return;
    }
    int64_t wait = a->heap[0]->q.next_ms - clock_wall_ms();
    uv_timer_start(a->retry_timer, async__on_retry_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* Puts a linked event where it waits: ready now, or in the heap. */
static void async__schedule(async_t *a, aevent_t *ev)
{
    if (ev->q.next_ms <= clock_wall_ms()) {
        async__ready_push(a, ev);
        return;
    }
    if (a->heap_n == a->heap_cap) {
        a->heap_cap = a->heap_cap ? a->heap_cap * 2 : 64;
        a->heap = xrealloc(a->heap, a->heap_cap * sizeof *a->heap);
    }
    ev->heap_i = a->heap_n;
    a->heap[a->heap_n++] = ev;
    async__heap_up(a, ev->heap_i);
    if (ev->heap_i == 0)
        async__arm_retry_timer(a);
}

static void async__on_retry_timer(uv_timer_t *t)
{
    async_t *a = t->data;
    int64_t now = clock_wall_ms();
    while (a->heap_n && a->heap[0]->q.next_ms <= now) {
        aevent_t *ev = a->heap[0];
        async__heap_remove(a, ev);
        async__ready_push(a, ev);
    }
    async__arm_retry_timer(a);
}

/* Takes an event out of the function's list and the heap (a ready event
 * has already left its FIFO). */
static void async__unlink(async_t *a, aevent_t *ev)
{
    afn_t *fn = ev->fn;
    async__heap_remove(a, ev);
    if (ev->linked) {
        if (ev->prev)
            ev->prev->next = ev->next;
        else
            fn->head = ev->next;
        if (ev->next)
            ev->next->prev = ev->prev;
        else
            fn->tail = ev->prev;
        fn->n_events--;
        a->n_linked--;
        ev->linked = false;
    }
}

/* ---- accepting ------------------------------------------------------------ */

typedef struct accept_job {
    async_t *a;
    aevent_t *ev;
    buf_t body;
    char *idem;                  /* the map key, or NULL */
    char key[ASYNC_IDEMPOTENCY_KEY_MAX + 1];
    int64_t redrive_id;          /* the dead letter it replaces, or 0 */
    char existing[ID_UUID_LEN + 1]; /* the request another node's key gave, if any */
    int (*with_event)(store_queue_t *q, const store_qevent_t *ev, void *arg, mf_error_t *err);
    void *with_event_arg;
    async_accepted_cb cb;
    void *ud;
} accept_job_t;

/* A redrive's event is the dead letter's, read in the transaction that
 * deletes it: its bytes, a trace that is a child of the dead one's, and
 * the trigger that queued it, run again. */
static int async__redrive_take(store_queue_t *q, accept_job_t *j, mf_error_t *err)
{
    store_dead_letter_t dl;
    int r = store_dead_letter_get(q, j->ev->q.function, j->redrive_id, &dl, err);
    if (r < 0)
        return r;
    exec_event_traceparent(dl.request_id, dl.traceparent, j->ev->q.traceparent);
    snprintf(j->ev->q.trigger, sizeof j->ev->q.trigger, "%s", dl.trigger);
    snprintf(j->ev->q.tenant_id, sizeof j->ev->q.tenant_id, "%s", dl.tenant_id);
    buf_reset(&j->body);
    buf_add(&j->body, dl.event, dl.event_len);
    store_dead_letter_clear(&dl);
    return store_dead_letter_delete(q, j->redrive_id, err);
}

static int async__accept_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    accept_job_t *j = arg;
    int r;
    if (j->redrive_id && (r = async__redrive_take(q, j, err)) < 0)
        return r;
    j->ev->q.event = j->body.data;
    j->ev->q.event_len = j->body.len;
    r = store_qevent_insert(q, &j->ev->q, err);
    j->ev->q.event = NULL;
    if (r == 0 && j->idem)
        r = store_idem_put(q, j->ev->q.function, j->key, j->ev->q.request_id, j->ev->q.enqueued_ms,
                           j->ev->q.enqueued_ms - ASYNC_IDEMPOTENCY_MS, j->existing, err);
    if (r == 0 && j->with_event)
        r = j->with_event(q, &j->ev->q, j->with_event_arg, err);
    return r;
}

static void async__accept_done(void *arg, int r, const mf_error_t *err)
{
    accept_job_t *j = arg;
    async_t *a = j->a;
    aevent_t *ev = j->ev;
    afn_t *fn = ev->fn;
    if (r == -EEXIST && j->idem && j->existing[0]) {
        /* Another node took the key first: its event is the answer. */
        idem_t *k = map_get(&a->idem, j->idem);
        if (k) {
            snprintf(k->request_id, sizeof k->request_id, "%s", j->existing);
            k->committed = true;
        }
        j->cb(j->ud, 0, j->existing, true, err);
        async__event_free(a, ev);
    } else if (r < 0) {
        if (j->idem)
            free(map_remove(&a->idem, j->idem));
        /* A redrive of a dead letter that is gone is the caller's 404; a
         * store out of reach its 503, which the store logs once. */
        if (r != -ENOENT && !store_unavailable(r))
            log_error("async", "queueing an event for %s: %s", fn->name, err->msg);
        j->cb(j->ud, r, NULL, false, err);
        async__event_free(a, ev);
    } else {
        if (j->idem) {
            idem_t *k = map_get(&a->idem, j->idem);
            if (k)
                k->committed = true;
        }
        if (j->redrive_id && fn->dead_letters > 0)
            fn->dead_letters--;
        char rid[ID_UUID_LEN + 1];
        snprintf(rid, sizeof rid, "%s", ev->q.request_id);
        if (!fn->known) {
            /* Deleted while its event was being written: the deletion's own
             * job has removed the row. */
            async__event_free(a, ev);
        } else {
            async__accepted(a, ev, &j->body);
        }
        j->cb(j->ud, 0, rid, false, err);
    }
    buf_release(&j->body);
    free(j->idem);
    free(j);
}

/* A new event is this node's to run while it has few waiting, or while it
 * is the only node; the others go to the pool for any node to take. */
static aevent_t *async__new_event(afn_t *fn)
{
    async_t *a = fn->a;
    aevent_t *ev = xcalloc(1, sizeof *ev);
    ev->fn = fn;
    ev->heap_i = NOT_IN_HEAP;
    id_uuid7(ev->q.request_id);
    snprintf(ev->q.function, sizeof ev->q.function, "%s", fn->name);
    ev->q.enqueued_ms = ev->q.next_ms = clock_wall_ms();
    if (!a->shared || a->alive <= 1 || async__waiting(a) < POOL_LOW)
        snprintf(ev->q.owner, sizeof ev->q.owner, "%s", a->node);
    return ev;
}

/* A new event, written: into the index if this node holds it (taking its
 * body while the bound allows), else gone from here into the pool. */
static void async__hold(async_t *a, aevent_t *ev, buf_t *body)
{
    if (!ev->q.owner[0]) {
        async__event_free(a, ev);
        a->pool_hint = true;
        async__take_soon(a);
        return;
    }
    async__keep_body(a, ev, body, false);
    async__link(ev);
    async__schedule(a, ev);
}

/* A repeat of an idempotency key is answered once everything before it is
 * committed, the first request's event included. */
typedef struct replay_job {
    async_t *a;
    char *idem;
    async_accepted_cb cb;
    void *ud;
} replay_job_t;

static void async__replay_done(void *arg, int r, const mf_error_t *err)
{
    replay_job_t *j = arg;
    idem_t *k = map_get(&j->a->idem, j->idem);
    if (r == 0 && k && k->committed) {
        j->cb(j->ud, 0, k->request_id, true, err);
    } else {
        mf_error_t e = MF_ERROR_INIT;
        mf_error_plain(&e, EIO, "the first request with this idempotency key was not queued");
        j->cb(j->ud, r < 0 ? r : -EIO, NULL, false, r < 0 ? err : &e);
    }
    free(j->idem);
    free(j);
}

/* Where a new event comes from, as opts says: the record it replays, the
 * trace it joins (one that does not parse is ignored), the call that
 * queued it and the chain behind it, and why. */
static void async__event_origin(aevent_t *ev, const async_enqueue_opts_t *opts)
{
    if (!opts)
        return;
    if (opts->replay_of)
        snprintf(ev->q.replay_of, sizeof ev->q.replay_of, "%s", opts->replay_of);
    uint8_t tid[16], pid[8];
    if (opts->traceparent && obs_traceparent_parse(opts->traceparent, tid, pid, NULL) == 0)
        snprintf(ev->q.traceparent, sizeof ev->q.traceparent, "%s", opts->traceparent);
    if (opts->caller_request_id)
        snprintf(ev->q.caller_request_id, sizeof ev->q.caller_request_id, "%s",
                 opts->caller_request_id);
    ev->q.call_depth = opts->call_depth;
    if (opts->trigger && exec_trigger_valid(opts->trigger) && strcmp(opts->trigger, "invoke"))
        snprintf(ev->q.trigger, sizeof ev->q.trigger, "%s", opts->trigger);
    if (opts->tenant_id)
        snprintf(ev->q.tenant_id, sizeof ev->q.tenant_id, "%s", opts->tenant_id);
    if (opts->key_id)
        snprintf(ev->key_id, sizeof ev->key_id, "%s", opts->key_id);
}

int async_enqueue(async_t *a, const char *function, buf_t *event,
                  const async_enqueue_opts_t *opts, async_accepted_cb cb, void *ud,
                  mf_error_t *err)
{
    const char *idem_key = opts ? opts->idem_key : NULL;
    if (a->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    if (event->len > a->cfg.max_event_bytes)
        return mf_error_plain(err, EFBIG,
                              "the event is %zu bytes; an asynchronous event may be %zu at most",
                              event->len, a->cfg.max_event_bytes);
    if (idem_key && !async__valid_key(idem_key))
        return mf_error_plain(err, EINVAL,
                              "X-Mayfly-Idempotency-Key: must be 1 to %d printable ASCII "
                              "characters",
                              ASYNC_IDEMPOTENCY_KEY_MAX);
    afn_t *fn;
    int r = async__fn(a, function, true, &fn, err);
    if (r < 0)
        return r;
    r = fn_tenant_id_for(fn->name, &fn->tenancy,
                         opts && opts->tenant_field ? opts->tenant_field : "X-Amz-Tenant-Id",
                         opts ? opts->tenant_id : NULL, err);
    if (r < 0)
        return r;

    char *idem = idem_key ? async__idem_key(function, idem_key) : NULL;
    if (idem) {
        idem_t *k = map_get(&a->idem, idem);
        if (k && k->created_ms + ASYNC_IDEMPOTENCY_MS > clock_wall_ms()) {
            replay_job_t *j = xcalloc(1, sizeof *j);
            *j = (replay_job_t){ a, idem, cb, ud };
            store_writer_submit(a->writer, false, NULL, async__replay_done, j);
            return 0;
        }
    }
    accept_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->ev = async__new_event(fn);
    async__event_origin(j->ev, opts);
    if (opts) {
        j->with_event = opts->with_event;
        j->with_event_arg = opts->with_event_arg;
    }
    j->body = *event;
    buf_init(event, 0);
    j->cb = cb;
    j->ud = ud;
    if (idem) {
        j->idem = idem;
        snprintf(j->key, sizeof j->key, "%s", idem_key);
        idem_t *k = xcalloc(1, sizeof *k);
        snprintf(k->request_id, sizeof k->request_id, "%s", j->ev->q.request_id);
        k->created_ms = j->ev->q.enqueued_ms;
        free(map_put(&a->idem, idem, k));
    }
    store_writer_submit(a->writer, true, async__accept_apply, async__accept_done, j);
    return 0;
}

/* A batch: events for any functions, written in one job. */
typedef struct batch_job {
    async_t *a;
    size_t n;
    aevent_t **evs;
    buf_t *bodies;
    store_job_apply_fn also;
    void *also_arg;
    async_batch_cb cb;
    void *ud;
} batch_job_t;

static int async__batch_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    batch_job_t *j = arg;
    int r = 0;
    for (size_t i = 0; i < j->n && r == 0; i++) {
        aevent_t *ev = j->evs[i];
        ev->q.event = j->bodies[i].data;
        ev->q.event_len = j->bodies[i].len;
        r = store_qevent_insert(q, &ev->q, err);
        ev->q.event = NULL;
    }
    if (r == 0 && j->also)
        r = j->also(db, j->also_arg, err);
    return r;
}

static void async__batch_done(void *arg, int r, const mf_error_t *err)
{
    batch_job_t *j = arg;
    async_t *a = j->a;
    for (size_t i = 0; i < j->n; i++) {
        aevent_t *ev = j->evs[i];
        afn_t *fn = ev->fn;
        if (r < 0 || !fn->known) {
            /* Failed, or deleted while being written: the deletion's own
             * job has removed the row. */
            async__event_free(a, ev);
        } else {
            async__accepted(a, ev, &j->bodies[i]);
        }
        buf_release(&j->bodies[i]);
    }
    if (r < 0)
        log_error("async", "queueing a batch of %zu events: %s", j->n, err->msg);
    j->cb(j->ud, r, err);
    free(j->evs);
    free(j->bodies);
    free(j);
}

int async_enqueue_batch(async_t *a, async_batch_event_t *events, size_t n,
                        const async_enqueue_opts_t *opts, store_job_apply_fn also,
                        void *also_arg, async_batch_cb cb, void *ud, mf_error_t *err)
{
    if (a->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    if (opts && opts->idem_key)
        return mf_error_plain(err, EINVAL, "a batch of events takes no idempotency key");
    batch_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->evs = xcalloc(n ? n : 1, sizeof *j->evs);
    j->bodies = xcalloc(n ? n : 1, sizeof *j->bodies);
    for (size_t i = 0; i < n; i++) {
        afn_t *fn;
        mf_error_t e = MF_ERROR_INIT;
        events[i].request_id[0] = '\0';
        if (async__fn(a, events[i].function, true, &fn, &e) < 0)
            continue;
        if (fn_tenant_id_for(fn->name, &fn->tenancy, "tenant_id", events[i].tenant_id, &e) < 0) {
            log_warn("async", "an event for %s left out: %s", fn->name, e.msg);
            continue;
        }
        aevent_t *ev = async__new_event(fn);
        async__event_origin(ev, opts);
        if (events[i].tenant_id)
            snprintf(ev->q.tenant_id, sizeof ev->q.tenant_id, "%s", events[i].tenant_id);
        snprintf(events[i].request_id, sizeof events[i].request_id, "%s", ev->q.request_id);
        j->evs[j->n] = ev;
        j->bodies[j->n++] = events[i].event;
        buf_init(&events[i].event, 0);
    }
    j->also = also;
    j->also_arg = also_arg;
    j->cb = cb;
    j->ud = ud;
    store_writer_submit(a->writer, true, async__batch_apply, async__batch_done, j);
    return 0;
}

int async_write(async_t *a, bool durable, store_job_apply_fn apply, store_job_done_fn done,
                void *arg, mf_error_t *err)
{
    if (a->closing)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    store_writer_submit(a->writer, durable, apply, done, arg);
    return 0;
}

int async_read(async_t *a, store_job_apply_fn read, store_job_done_fn done, void *arg,
               mf_error_t *err)
{
    if (a->closing)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    store_writer_submit_read(a->writer, read, done, arg);
    return 0;
}

int async_redrive(async_t *a, const char *function, int64_t id, async_accepted_cb cb, void *ud,
                  mf_error_t *err)
{
    if (a->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    afn_t *fn;
    int r = async__fn(a, function, true, &fn, err);
    if (r < 0)
        return r;
    /* The dead letter is read by the writer's job (async__redrive_take). */
    accept_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->ev = async__new_event(fn);
    buf_init(&j->body, 0);
    j->redrive_id = id;
    j->cb = cb;
    j->ud = ud;
    store_writer_submit(a->writer, true, async__accept_apply, async__accept_done, j);
    return 0;
}

/* ---- running ---------------------------------------------------------------- */

/* Writes an event's new state (started, or waiting for a retry) and the
 * attempt that just ended, if any. */
typedef struct update_job {
    store_qevent_t q;
    bool has_attempt;
    store_attempt_t at;
} update_job_t;

static int async__update_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    update_job_t *j = arg;
    int r = 0;
    if (j->has_attempt)
        r = store_attempt_put(q, &j->at, err);
    return r < 0 ? r : store_qevent_update(q, &j->q, err);
}

static void async__update_done(void *arg, int r, const mf_error_t *err)
{
    update_job_t *j = arg;
    if (r < 0)
        log_error("async", "writing the state of event %s: %s", j->q.request_id, err->msg);
    free(j->at.error_type);
    free(j->at.error_message);
    free(j);
}

static void async__submit_update(async_t *a, const aevent_t *ev, const store_attempt_t *at)
{
    update_job_t *j = xcalloc(1, sizeof *j);
    j->q = ev->q;
    j->q.event = NULL;
    if (at) {
        j->has_attempt = true;
        j->at = *at;
        j->at.error_type = at->error_type ? xstrdup(at->error_type) : NULL;
        j->at.error_message = at->error_message ? xstrdup(at->error_message) : NULL;
    }
    store_writer_submit(a->book, false, async__update_apply, async__update_done, j);
}

/* The end of an event: success, or a dead letter. */
typedef struct final_job {
    async_t *a;
    aevent_t *ev;                /* unlinked; freed when written */
    bool dead;
    store_dead_letter_t dl;
    aevent_t *dest;              /* a destination's new event, or NULL */
    buf_t dest_body;
} final_job_t;

static int async__final_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    final_job_t *j = arg;
    int r = 0;
    if (j->dead)
        r = store_dead_letter_put(q, &j->dl, j->ev->q.seq, err);
    if (r == 0 && j->dest) {
        j->dest->q.event = j->dest_body.data;
        j->dest->q.event_len = j->dest_body.len;
        r = store_qevent_insert(q, &j->dest->q, err);
        j->dest->q.event = NULL;
    }
    if (r == 0)
        r = store_qevent_delete(q, j->ev->q.seq, err);
    return r;
}

static void async__final_done(void *arg, int r, const mf_error_t *err)
{
    final_job_t *j = arg;
    async_t *a = j->a;
    if (r < 0) {
        /* Still queued on disk: it runs again after a restart, which is
         * within at-least-once. */
        log_error("async", "finishing event %s: %s", j->ev->q.request_id, err->msg);
        free(j->dest);
    } else {
        if (j->dead)
            j->ev->fn->dead_letters++;
        if (j->dest) {
            aevent_t *d = j->dest;
            d->fn->enqueued++;
            metrics_inc(a->m_enqueued, (const char *[]){ d->fn->name }, 1);
            async__record_basic(d, "queued", d->q.enqueued_ms, a->records);
            async__keep_body(a, d, &j->dest_body, false);
            async__link(d);
            async__schedule(a, d);
        }
    }
    free(j->dl.error_type);
    free(j->dl.error_message);
    buf_release(&j->dest_body);
    async__event_free(a, j->ev);
    free(j);
}

/* Queues a job to be submitted once the records added so far are written. */
static void async__after_records(async_t *a, store_job_apply_fn apply, store_job_done_fn done,
                                 void *arg)
{
    if (a->closing) {
        /* The writer is draining (a callback of its last jobs got here):
         * no loop iteration is left to wait for. */
        obs_records_flush_wait(a->records);
        store_writer_submit(a->book, false, apply, done, arg);
        return;
    }
    after_records_t *n = xcalloc(1, sizeof *n);
    n->apply = apply;
    n->done = done;
    n->arg = arg;
    if (a->after_tail)
        a->after_tail->next = n;
    else
        a->after_head = n;
    a->after_tail = n;
    async__kick(a);
}

/* Bytes for a destination record: JSON as it is; other UTF-8 text as a
 * string; anything else (the event is the caller's bytes) as
 * {"base64": "..."} so the record stays valid JSON. */
static json_t *async__payload(const void *data, size_t len)
{
    if (!len)
        return json_null();
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, NULL);
    if (!v)
        v = json_stringn(data, len);
    if (!v) {
        buf_t b64 = BUF_INIT;
        codec_base64_encode(&b64, data, len);
        v = json_pack("{ss}", "base64", b64.data ? b64.data : "");
        buf_release(&b64);
    }
    return v;
}

/* Builds Lambda's destination record for ev's outcome. */
static void async__destination_record(async_t *a, const aevent_t *ev, const invocation_t *inv,
                                      const char *condition, buf_t *out)
{
    /* An event ends only after an attempt or a look at its age, both of
     * which come once its body is in memory (async__dispatch_fn). */
    if (!ev->has_body)
        log_warn("async", "destination record of %s without its event: it is not in memory",
                 ev->q.request_id);
    char ts[40], arn[224];
    clock_format_iso8601(clock_wall_ms(), ts, sizeof ts);
    tenant_arn("lambda", a->region, "function:", ev->fn->name, arn, sizeof arn - 8);
    strcat(arn, ":$LATEST");
    json_t *resp = json_pack("{s:i, s:s}", "statusCode", 200, "executedVersion", "$LATEST");
    if (inv && inv->status != INV_SUCCESS)
        json_object_set_new(resp, "functionError", json_string("Unhandled"));
    json_t *doc = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:s, s:i}, s:o, s:o, s:o}", "version", "1.0", "timestamp", ts,
        "requestContext", "requestId", ev->q.request_id, "functionArn", arn, "condition",
        condition, "approximateInvokeCount", ev->q.attempts, "requestPayload",
        async__payload(ev->body.data, ev->body.len), "responseContext", resp, "responsePayload",
        inv ? async__payload(inv->result.data, inv->result.len) : json_null());
    json_dump_buf(out, doc);
    json_decref(doc);
    if (out->len > a->cfg.max_event_bytes) {
        /* Too large to queue: the context still goes, without payloads. */
        log_warn("async", "destination record of %s is %zu bytes; sent without its payloads",
                 ev->q.request_id, out->len);
        buf_reset(out);
        json_t *small = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:i}, s:n, s:n}", "version",
                                  "1.0", "timestamp", ts, "requestContext", "requestId",
                                  ev->q.request_id, "functionArn", arn, "condition", condition,
                                  "approximateInvokeCount", ev->q.attempts, "requestPayload",
                                  "responsePayload");
        json_dump_buf(out, small);
        json_decref(small);
    }
}

/* Ends an event for good: condition is "Success", "RetriesExhausted" or
 * "EventAgeExceeded". inv is its last attempt (NULL if none ran now). */
static void async__finish(async_t *a, aevent_t *ev, const invocation_t *inv,
                          const char *condition)
{
    afn_t *fn = ev->fn;
    bool success = !strcmp(condition, "Success");
    final_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->ev = ev;
    buf_init(&j->dest_body, 0);
    if (inv) {
        store_record_t rec;
        invocation_record(inv, &rec);
        rec.attempts = ev->q.attempts;
        /* Metered as usage counts it: the event's last attempt, once. */
        exec_meter_record(a->exec, &rec);
        obs_records_set(a->records, &rec);
    } else {
        /* Expired before an attempt could run: the record says why it
         * stopped (the earlier attempts are in its history). */
        store_record_t rec;
        async__record_fill(ev, "error", clock_wall_ms(), &rec);
        rec.error_type = "Mayfly.EventAgeExceeded";
        rec.error_message = "the event was older than async.max_event_age_s before it could run";
        obs_records_set(a->records, &rec);
    }
    exec_trace_event(a->exec,
                     &(exec_event_trace_t){
                         .function = fn->name, .request_id = ev->q.request_id,
                         .traceparent = ev->q.traceparent, .replay_of = ev->q.replay_of,
                         .trigger = ev->q.trigger, .accepted_ms = ev->q.enqueued_ms, .ended_ms = clock_wall_ms(),
                         .attempts = ev->q.attempts, .outcome = condition,
                         .error_type = inv ? inv->error_type : "Mayfly.EventAgeExceeded",
                         .error_message = inv ? inv->error_message : NULL });
    if (!success) {
        j->dead = true;
        snprintf(j->dl.function, sizeof j->dl.function, "%s", fn->name);
        snprintf(j->dl.request_id, sizeof j->dl.request_id, "%s", ev->q.request_id);
        j->dl.attempts = ev->q.attempts;
        snprintf(j->dl.condition, sizeof j->dl.condition, "%s", condition);
        snprintf(j->dl.tenant_id, sizeof j->dl.tenant_id, "%s", ev->q.tenant_id);
        if (inv && inv->error_type) {
            j->dl.error_type = xstrdup(inv->error_type);
            j->dl.error_message = xstrdup(inv->error_message ? inv->error_message : "");
        } else if (!inv) {
            j->dl.error_type = xstrdup("Mayfly.EventAgeExceeded");
            j->dl.error_message = xasprintf("the event was older than %d s before it could run",
                                            fn->cfg.max_event_age_s);
        }
        j->dl.time_ms = clock_wall_ms();
        log_info("async", "event %s of %s is a dead letter (%s after %d attempts)",
                 ev->q.request_id, fn->name, condition, ev->q.attempts);
    }
    const char *local = success ? fn->cfg.on_success : fn->cfg.on_failure;
    char dest[TENANT_QNAME_MAX + 1] = "";
    /* A destination is a function of the same tenant (core/tenant.h). */
    if (*local)
        tenant_resolve(fn->name, local, dest, sizeof dest);
    if (*dest) {
        afn_t *dfn;
        mf_error_t err = MF_ERROR_INIT;
        if (async__fn(a, dest, true, &dfn, &err) < 0) {
            log_warn("async", "%s's %s destination %s: %s; not sent", fn->name,
                     success ? "on_success" : "on_failure", dest, err.msg);
        } else {
            j->dest = async__new_event(dfn);
            /* The destination's event is a child of this event's span. */
            exec_event_traceparent(ev->q.request_id, ev->q.traceparent, j->dest->q.traceparent);
            snprintf(j->dest->q.trigger, sizeof j->dest->q.trigger, "destination");
            async__destination_record(a, ev, inv, condition, &j->dest_body);
        }
    }
    async__unlink(a, ev);
    async__after_records(a, async__final_apply, async__final_done, j);
}

/* ---- an attempt's end ------------------------------------------------------ */

static void async__maybe_stopped(async_t *a)
{
    if (a->stopping && a->n_running == 0 && a->stop_done) {
        void (*done)(void *) = a->stop_done;
        a->stop_done = NULL;
        uv_timer_stop(a->grace_timer);
        done(a->stop_ud);
    }
}

/* A function error is the function's answer (an error it raised, a
 * timeout, running out of memory); the rest is the platform's doing. */
static bool async__function_error(const invocation_t *inv)
{
    if (inv->status == INV_TIMEOUT || inv->status == INV_OOM)
        return true;
    return inv->status == INV_ERROR && inv->error_type && strncmp(inv->error_type, "Mayfly.", 7);
}

/* An attempt's end, once its line in the history is written: the record
 * the caller reads never says more than the history shows. */
static void async__attempt_written(async_t *a, aevent_t *ev, invocation_t *inv, bool interrupted)
{
    afn_t *fn = ev->fn;
    ev->ending = false;
    if (ev->orphan) {
        async__event_free(a, ev);
        invocation_free(inv);
        return;
    }
    int64_t now = clock_wall_ms();
    if (inv->status == INV_SUCCESS) {
        async__finish(a, ev, inv, "Success");
    } else if (interrupted) {
        /* Cut short by the shutdown: back to the queue, not counted
         * against the function; it runs after the restart. */
        ev->q.next_ms = now;
        async__submit_update(a, ev, NULL);
        async__record_basic(ev, "queued", now, a->records);
    } else {
        bool fn_error = async__function_error(inv);
        double delay;
        if (fn_error) {
            ev->q.fn_errors++;
            if (ev->q.fn_errors > fn->cfg.max_retries) {
                async__finish(a, ev, inv, "RetriesExhausted");
                goto out;
            }
            /* Lambda's schedule: about 1 minute, then about 2. */
            delay = (double)a->cfg.retry_base_ms * ev->q.fn_errors * async__uniform(a, 0.9, 1.1);
        } else {
            /* Throttles and platform errors: exponential backoff from a
             * sixtieth of the base (1 s by default) up to 5 bases. */
            int k = ev->q.attempts - ev->q.fn_errors;
            double base = a->cfg.retry_base_ms / 60.0;
            delay = base * ldexp(1.0, k > 20 ? 20 : k - 1);
            if (delay > 5.0 * a->cfg.retry_base_ms)
                delay = 5.0 * a->cfg.retry_base_ms;
            delay *= async__uniform(a, 0.75, 1.25);
        }
        int64_t next = now + (int64_t)delay;
        if (!ev->held && next - ev->q.enqueued_ms > (int64_t)fn->cfg.max_event_age_s * 1000) {
            async__finish(a, ev, inv, "EventAgeExceeded");
            goto out;
        }
        ev->q.next_ms = next;
        fn->retries++;
        metrics_inc(a->m_retries, (const char *[]){ fn->name }, 1);
        store_record_t rec;
        invocation_record(inv, &rec);
        snprintf(rec.status, sizeof rec.status, "queued");
        rec.attempts = ev->q.attempts;
        obs_records_set(a->records, &rec);
        async__submit_update(a, ev, NULL);
        if (!a->stopping)
            async__schedule(a, ev);
    }
out:
    invocation_free(inv);
}

typedef struct attempt_job {
    async_t *a;
    aevent_t *ev;
    invocation_t *inv;
    bool interrupted;
    store_attempt_t at;          /* its strings are inv's or static */
} attempt_job_t;

static int async__attempt_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    attempt_job_t *j = arg;
    return store_attempt_put(q, &j->at, err);
}

static void async__attempt_done(void *arg, int r, const mf_error_t *err)
{
    attempt_job_t *j = arg;
    if (r < 0)
        log_error("async", "writing attempt %d of %s: %s", j->at.attempt, j->at.request_id,
                  err->msg);
    async__attempt_written(j->a, j->ev, j->inv, j->interrupted);
    free(j);
}

static void async__attempt_ended(async_t *a, aevent_t *ev, invocation_t *inv)
{
    afn_t *fn = ev->fn;
    if (!ev->orphan) {
        /* Its share of waiting for a CPU moves the function's limit;
         * events held back by the limit may start now. */
        bool held_back = fn->ready_head && fn->n_running >= (uint64_t)async__limit(fn);
        if (inv->delivered_ns) {
            async_limit_sample_t sample = { .duration_ms = inv->duration_ms,
                                            .cpu_wait_ms = inv->cpu_wait_ms,
                                            .loop_demand = obs_loop_demand(),
                                            .held_back = held_back };
            async_limit_sample(&fn->limit, &sample, fn->max_concurrency);
        }
        fn->n_running--; /* an orphan's was taken off when its function went */
        if (held_back && !a->stopping)
            async__mark_dirty(a, fn);
    }
    a->n_running--;
    async__fg_pass_turn(a);
    ev->q.running = 0;
    if (ev->orphan) {
        async__event_free(a, ev);
        invocation_free(inv);
        async__maybe_stopped(a);
        return;
    }
    attempt_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->ev = ev;
    j->inv = inv;
    j->interrupted = inv->status != INV_SUCCESS && a->stopping;
    j->at = (store_attempt_t){ .attempt = ev->q.attempts,
                               .start_ms = inv->start_wall_ms,
                               .duration_ms = inv->duration_ms,
                               .error_type = inv->error_type,
                               .error_message = inv->error_message };
    snprintf(j->at.request_id, sizeof j->at.request_id, "%s", ev->q.request_id);
    snprintf(j->at.status, sizeof j->at.status, "%s", inv_status_name(inv->status));
    if (j->interrupted) {
        snprintf(j->at.status, sizeof j->at.status, "interrupted");
        j->at.error_type = "Mayfly.Interrupted";
        j->at.error_message = "the server stopped while this attempt ran; the event runs again";
    }
    ev->ending = true;
    store_writer_submit(a->book, false, async__attempt_apply, async__attempt_done, j);
    async__maybe_stopped(a);
}

static void async__on_attempt(invocation_t *inv, void *ud)
{
    aevent_t *ev = ud;
    if (ev->starting) {
        ev->early = inv; /* finished inside exec_invoke_opts: handled after it returns */
        return;
    }
    async__attempt_ended(ev->fn->a, ev, inv);
}

/* ---- reading bodies back --------------------------------------------------------- */

/* Bodies read back in one job at most. */
#define LOAD_BATCH 64
/* After a read that failed (the database away), the events wait this
 * long in the retry heap before they are tried again. */
#define LOAD_RETRY_MS 1000

/* A read of bodies on the writer's thread: seqs are copied out, so the
 * thread never touches the loop's events. */
typedef struct load_job {
    async_t *a;
    size_t n;
    aevent_t *evs[LOAD_BATCH];
    int64_t seqs[LOAD_BATCH];
    buf_t bodies[LOAD_BATCH];
    int rc[LOAD_BATCH];          /* 0, or -ENOENT: the event is gone */
} load_job_t;

static int async__load_apply(void *db, void *arg, mf_error_t *err)
{
    load_job_t *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        mf_error_t e = MF_ERROR_INIT;
        j->rc[i] = store_qevent_body(db, j->seqs[i], &j->bodies[i], &e);
        if (j->rc[i] < 0 && j->rc[i] != -ENOENT) {
            *err = e;
            return j->rc[i];
        }
    }
    return 0;
}

static void async__load_done(void *arg, int r, const mf_error_t *err)
{
    load_job_t *j = arg;
    async_t *a = j->a;
    afn_t *fn = j->n ? j->evs[0]->fn : NULL;
    if (r < 0)
        log_error("async", "reading %zu queued event(s) of %s back: %s", j->n, fn->name,
                  err->msg);
    int64_t again = clock_wall_ms() + LOAD_RETRY_MS;
    for (size_t i = 0; i < j->n; i++) {
        aevent_t *ev = j->evs[i];
        ev->loading = false;
        if (ev->orphan) {
            /* Forgotten with its deleted function meanwhile. */
            async__event_free(a, ev);
        } else if (r == 0 && j->rc[i] == -ENOENT) {
            /* Gone from the store: nothing is left to run. */
            async__ready_remove(fn, ev);
            async__unlink(a, ev);
            async__event_free(a, ev);
        } else if (r == 0) {
            async__keep_body(a, ev, &j->bodies[i], true);
        } else if (!a->closing) {
            /* Out of the FIFO into the heap, to be tried again a moment
             * later rather than at once against a database that failed. */
            async__ready_remove(fn, ev);
            ev->q.next_ms = again;
            async__schedule(a, ev);
        }
        buf_release(&j->bodies[i]);
    }
    if (fn && fn->ready_head && !a->stopping)
        async__mark_dirty(a, fn);
    free(j);
}

/* Reads back the bodies of the function's ready events from the first on,
 * as many as it may start now, in one job of the writer's: in order after
 * every write before it, off the loop. */
static void async__load_bodies(async_t *a, afn_t *fn, uint64_t room)
{
    load_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    for (aevent_t *ev = fn->ready_head; ev && j->n < LOAD_BATCH && j->n < room;
         ev = ev->next_ready) {
        if (ev->has_body || ev->loading)
            continue;
        ev->loading = true;
        j->evs[j->n] = ev;
        j->seqs[j->n] = ev->q.seq;
        buf_init(&j->bodies[j->n], 0);
        j->n++;
    }
    store_writer_submit_read(a->book, async__load_apply, async__load_done, j);
}

/* ---- dispatch ------------------------------------------------------------------ */

/* Starts ev's next attempt, ev out of the ready FIFO: 0, or exec's
 * failure (-EAGAIN: no room for it now), ev then left as it was. */
static int async__start(async_t *a, afn_t *fn, aevent_t *ev)
{
    int64_t now = clock_wall_ms();
    /* The event's own copy stays for its retries and destination. */
    buf_t body = BUF_INIT;
    buf_add(&body, ev->body.data, ev->body.len);
    mf_error_t err = MF_ERROR_INIT;
    char tp[56];
    exec_event_traceparent(ev->q.request_id, ev->q.traceparent, tp);
    exec_call_opts_t opts = { .request_id = ev->q.request_id,
                              .attempt = ev->q.attempts + 1,
                              .no_record = true,
                              .no_wait = true,
                              .replay_of = ev->q.replay_of[0] ? ev->q.replay_of : NULL,
                              .traceparent = tp,
                              .caller_request_id = ev->q.caller_request_id[0]
                                                       ? ev->q.caller_request_id
                                                       : NULL,
                              .call_depth = ev->q.call_depth,
                              .trigger = ev->q.trigger,
                              .tenant_id = ev->q.tenant_id };
    ev->starting = true;
    int r = exec_invoke_opts(a->exec, fn->name, &body, &opts, async__on_attempt, ev, &err);
    ev->starting = false;
    if (r < 0) {
        buf_release(&body);
        if (r == -ENOENT)
            log_warn("async", "%s no longer exists; its events wait for it", fn->name);
        else if (r != -EAGAIN)
            log_error("async", "starting event %s: %s", ev->q.request_id, err.msg);
        return r;
    }
    ev->q.attempts++;
    ev->q.running = 1;
    /* While an attempt runs, next_ms holds its start: a restart reads
     * it for the interrupted attempt's record. */
    ev->q.next_ms = now;
    fn->n_running++;
    a->n_running++;
    fn->attempts++;
    metrics_inc(a->m_attempts, (const char *[]){ fn->name }, 1);
    async__record_basic(ev, "running", now, a->records);
    async__submit_update(a, ev, NULL);
    if (ev->early) {
        invocation_t *inv = ev->early;
        ev->early = NULL;
        async__attempt_ended(a, ev, inv);
    }
    return 0;
}

/* How far past an event that cannot start a function with tenant
 * isolation looks for events of other tenant ids, and how many tenant ids
 * that cannot start either it remembers on the way. */
#define TENANT_LOOKAHEAD 64
#define TENANT_BLOCKED_MAX 8

/* Under tenant isolation the first ready event may have to wait for its
 * tenant id (at its max_instances_per_tenant) while events of other
 * tenant ids behind it could start now: those start, in their order, so
 * one busy tenant id does not hold up the rest, within the foreground's
 * turns as async__dispatch_ready's (*turn). */
static void async__start_other_tenants(async_t *a, afn_t *fn, const aevent_t *first,
                                       bool *turn)
{
    const char *blocked[TENANT_BLOCKED_MAX] = { first->q.tenant_id };
    size_t nblocked = 1, looked = 0;
    aevent_t *prev = fn->ready_head;
    while (prev && prev->next_ready && looked++ < TENANT_LOOKAHEAD && !a->stopping &&
           fn->n_running < (uint64_t)async__limit(fn)) {
        aevent_t *ev = prev->next_ready;
        bool skip = !ev->has_body;
        for (size_t i = 0; i < nblocked && !skip; i++)
            skip = !strcmp(blocked[i], ev->q.tenant_id);
        if (skip) {
            prev = ev;
            continue;
        }
        if (async__fg_wait(a, fn, turn))
            return;
        /* Out of the FIFO while it starts, as the first one is. */
        prev->next_ready = ev->next_ready;
        if (fn->ready_tail == ev)
            fn->ready_tail = prev;
        ev->next_ready = NULL;
        if (async__start(a, fn, ev) == 0)
            continue;
        ev->next_ready = prev->next_ready;
        prev->next_ready = ev;
        if (fn->ready_tail == prev)
            fn->ready_tail = ev;
        if (nblocked == TENANT_BLOCKED_MAX)
            return;
        blocked[nblocked++] = ev->q.tenant_id;
        prev = ev;
    }
}

/* Starts the function's ready events while it has room for them, in their
 * order: the first one whose body is not in memory stops the pass until
 * it (and those after it that may start now) are read back. While the
 * foreground holds attempts, the function waits in line for room or for
 * its turn (*turn: it has one start before those in line). */
static void async__dispatch_ready(async_t *a, afn_t *fn, bool *turn)
{
    if (a->hold && fn->ready_head && !a->stopping) {
        char why[sizeof fn->held_why];
        if (a->hold(a->hold_ud, fn->name, why, sizeof why)) {
            if (!fn->held) {
                /* Held from now: each waiting event's record says why
                 * (later ones as they become ready, async__ready_push). */
                fn->held = true;
                snprintf(fn->held_why, sizeof fn->held_why, "%s", why);
                for (aevent_t *ev = fn->ready_head; ev; ev = ev->next_ready)
                    async__mark_held(a, ev);
            }
            return;
        }
        fn->held = false;
    }
    while (!a->stopping && fn->ready_head && fn->n_running < (uint64_t)async__limit(fn) &&
           !exec_at_limit(a->exec, fn->name)) {
        aevent_t *ev = fn->ready_head;
        if (!ev->has_body) {
            if (!ev->loading)
                async__load_bodies(a, fn, (uint64_t)async__limit(fn) - fn->n_running);
            break;
        }
        async__ready_pop(fn);
        int64_t now = clock_wall_ms();
        if (fn->known && !ev->held &&
            now - ev->q.enqueued_ms > (int64_t)fn->cfg.max_event_age_s * 1000) {
            /* Too old to run: it takes no attempt, so it neither waits
             * for nor uses up a turn. */
            async__finish(a, ev, NULL, "EventAgeExceeded");
            continue;
        }
        if (async__fg_wait(a, fn, turn)) {
            async__ready_unpop(fn, ev);
            break;
        }
        int r = async__start(a, fn, ev);
        if (r < 0) {
            async__ready_unpop(fn, ev);
            if (r == -EAGAIN && fn->tenancy.per_tenant)
                async__start_other_tenants(a, fn, ev, turn);
            break;
        }
    }
}

/* The function's dispatch: in its turn, if it had one (the foreground's,
 * limit.h), after which the next in line may have room. */
static void async__dispatch_fn(async_t *a, afn_t *fn)
{
    bool turn = false;
    if (a->fg.head && !async__fg_on(a))
        async_fg_release(&a->fg, async__fg_released, a);
    else
        turn = async_fg_take_turn(&a->fg, &fn->fg);
    async__dispatch_ready(a, fn, &turn);
    async__fg_pass_turn(a);
}

/* Submits the queue jobs of a batch whose records are written. */
static void async__after_batch_submit(async_t *a, after_batch_t *b)
{
    for (after_records_t *n = b->head, *next; n; n = next) {
        next = n->next;
        store_writer_submit(a->book, false, n->apply, n->done, n->arg);
        free(n);
    }
    b->head = NULL;
}

static void async__after_records_written(void *ud)
{
    after_batch_t *b = ud;
    async_t *a = b->a;
    if (a) { /* else async_close submitted it already */
        async__after_batch_submit(a, b);
        for (after_batch_t **pp = &a->after_batches; *pp; pp = &(*pp)->next) {
            if (*pp == b) {
                *pp = b->next;
                break;
            }
        }
    }
    free(b);
}

static void async__on_kick(uv_idle_t *h)
{
    async_t *a = h->data;
    uv_idle_stop(h);
    if (a->after_head) {
        /* These jobs go to the queue once the records added so far are
         * written (by the records' own writer), in the records' own time:
         * an event's queued, running and done records then share one
         * batch, and one row write, more often than not. */
        after_batch_t *b = xmalloc(sizeof *b);
        b->a = a;
        b->head = a->after_head;
        b->next = a->after_batches;
        a->after_batches = b;
        a->after_head = a->after_tail = NULL;
        obs_records_after(a->records, async__after_records_written, b);
    }
    /* Functions marked while this pass runs wait for the next one. */
    afn_t *fn = a->dirty_head;
    a->dirty_head = a->dirty_tail = NULL;
    while (fn) {
        afn_t *next = fn->next_dirty;
        fn->dirty = false;
        fn->next_dirty = NULL;
        async__dispatch_fn(a, fn);
        fn = next;
    }
}

static void async__kick(async_t *a)
{
    if (!uv_is_active((uv_handle_t *)a->kick))
        uv_idle_start(a->kick, async__on_kick);
}

static void async__on_capacity(void *ud, const char *function)
{
    async_t *a = ud;
    afn_t *fn = map_get(&a->fns, function);
    if (fn && fn->ready_head && !a->stopping)
        async__mark_dirty(a, fn);
}

void async_set_hold(async_t *a, async_hold_fn hold, void *ud)
{
    a->hold = hold;
    a->hold_ud = ud;
}

void async_hold_changed(async_t *a)
{
    const char *name;
    void *value;
    for (size_t it = 0; map_next(&a->fns, &it, &name, &value);) {
        afn_t *fn = value;
        if (fn->held && fn->ready_head && !a->stopping)
            async__mark_dirty(a, fn);
    }
}

/* ---- functions changing --------------------------------------------------------- */

void async_function_changed(async_t *a, const fn_t *f)
{
    afn_t *fn = map_get(&a->fns, f->name);
    if (!fn)
        return;
    async__fn_load(fn, f);
    /* More concurrency (a paused function resumed) runs waiting events. */
    if (fn->ready_head && !a->stopping)
        async__mark_dirty(a, fn);
}

static int async__forget_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    return store_queue_forget_function(q, arg, err);
}

static void async__forget_done(void *arg, int r, const mf_error_t *err)
{
    if (r < 0)
        log_error("async", "forgetting the queue of %s: %s", (char *)arg, err->msg);
    free(arg);
}

/* Drops a function's events from memory and (stored), through the
 * writer, from disk, with its dead letters and keys. */
static void async__forget(async_t *a, afn_t *fn, bool stored)
{
    fn->known = false;
    fn->ready_head = fn->ready_tail = NULL;
    for (aevent_t *ev = fn->head, *next; ev; ev = next) {
        next = ev->next;
        async__unlink(a, ev);
        if (ev->q.running || ev->ending || ev->loading) {
            /* Freed when its attempt (or the read of its body) is done
             * with it. */
            ev->orphan = true;
            if (ev->q.running)
                fn->n_running--;
        } else {
            async__event_free(a, ev);
        }
    }
    fn->enqueued = fn->attempts = fn->retries = 0;
    async__arm_retry_timer(a);
    fn->dead_letters = 0;
    size_t plen = strlen(fn->name);
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->idem, &it, &key, &value);) {
        if (!strncmp(key, fn->name, plen) && key[plen] == '\n')
            free(map_remove(&a->idem, key));
    }
    if (stored)
        store_writer_submit(a->writer, false, async__forget_apply, async__forget_done,
                            xstrdup(fn->name));
}

void async_function_removed(async_t *a, const char *function, bool stored)
{
    afn_t *fn = map_get(&a->fns, function);
    if (fn)
        async__forget(a, fn, stored);
    else if (stored)
        store_writer_submit(a->writer, false, async__forget_apply, async__forget_done,
                            xstrdup(function));
}

/* ---- visibility ------------------------------------------------------------------ */

store_writer_t *async_writer(async_t *a)
{
    return a->writer;
}

store_queue_t *async_store(async_t *a)
{
    return a->rq;
}

void async_function_stats(async_t *a, const char *function, async_fn_stats_t *out)
{
    memset(out, 0, sizeof *out);
    afn_t *fn = map_get(&a->fns, function);
    if (!fn) {
        /* No event yet: the limit its first ones would meet. */
        fn_t f;
        mf_error_t err = MF_ERROR_INIT;
        if (registry_get(a->registry, function, &f, &err) == 0) {
            async_limit_t fresh;
            async_limit_init(&fresh);
            out->limit = (uint64_t)async_limit_get(&fresh, f.max_concurrency);
            fn_clear(&f);
        }
        return;
    }
    out->depth = fn->n_events - fn->n_running;
    out->running = fn->n_running;
    out->limit = (uint64_t)async__limit(fn);
    if (fn->head) {
        int64_t age = clock_wall_ms() - fn->head->q.enqueued_ms;
        out->oldest_age_s = age > 0 ? age / 1000.0 : 0;
    }
    out->dead_letters = (uint64_t)fn->dead_letters;
    out->enqueued = fn->enqueued;
    out->attempts = fn->attempts;
    out->retries = fn->retries;
}

static void async__collect(void *ud)
{
    async_t *a = ud;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->fns, &it, &key, &value);) {
        afn_t *fn = value;
        async_fn_stats_t st;
        async_function_stats(a, fn->name, &st);
        const char *labels[] = { fn->name };
        metrics_set(a->m_depth, labels, (double)st.depth);
        metrics_set(a->m_age, labels, st.oldest_age_s);
        metrics_set(a->m_running, labels, (double)st.running);
        metrics_set(a->m_limit, labels, (double)st.limit);
        metrics_set(a->m_dead, labels, (double)st.dead_letters);
    }
}

static void async__on_commit(void *ud, unsigned jobs, bool durable, uint64_t ns)
{
    async_t *a = ud;
    const char *labels[] = { durable ? "fsync" : "no" };
    metrics_inc(a->m_commits, labels, 1);
    metrics_observe(a->m_commit_s, labels, (double)ns / 1e9);
    metrics_observe(a->m_commit_jobs, labels, jobs);
}

static void async__metrics_setup(async_t *a)
{
    static const char *const fn[] = { "function", NULL };
    static const char *const sync[] = { "sync", NULL };
    static const double secs[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                   0.01,   0.025,   0.05,   0.1,   0.25,   1 };
    static const double jobs[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024 };
    a->m_depth = metrics_family_new(METRICS_GAUGE, "mayfly_async_queue_depth",
                                    "Async events waiting to run or to be retried.", fn, NULL, 0);
    a->m_age = metrics_family_new(METRICS_GAUGE, "mayfly_async_oldest_age_seconds",
                                  "Age of the oldest async event not yet done.", fn, NULL, 0);
    a->m_running = metrics_family_new(METRICS_GAUGE, "mayfly_async_running",
                                      "Async events being run.", fn, NULL, 0);
    a->m_limit = metrics_family_new(METRICS_GAUGE, "mayfly_async_limit",
                                    "Async attempts a function may run at once now: its "
                                    "max_concurrency, less while its attempts wait for a CPU.",
                                    fn, NULL, 0);
    a->m_pruned = metrics_family_new(METRICS_COUNTER, "mayfly_async_pruned_total",
                                     "Attempt histories past --retention-days and dead letters "
                                     "past --dead-letter-days, deleted.",
                                     (const char *[]){"kind", NULL}, NULL, 0);
    a->m_dead = metrics_family_new(METRICS_GAUGE, "mayfly_dead_letters",
                                   "Dead letters kept, by function.", fn, NULL, 0);
    a->m_enqueued = metrics_family_new(METRICS_COUNTER, "mayfly_async_enqueued_total",
                                       "Async events accepted.", fn, NULL, 0);
    a->m_attempts = metrics_family_new(METRICS_COUNTER, "mayfly_async_attempts_total",
                                       "Attempts started at async events.", fn, NULL, 0);
    a->m_retries = metrics_family_new(METRICS_COUNTER, "mayfly_async_retries_total",
                                      "Async events scheduled for another attempt.", fn, NULL, 0);
    a->m_fg_waits = metrics_family_new(METRICS_COUNTER, "mayfly_async_foreground_waits_total",
                                       "Times a function's events waited in line for one of "
                                       "the few attempts the queue runs while accepting goes "
                                       "first.", fn, NULL, 0);
    a->m_commits = metrics_family_new(METRICS_COUNTER, "mayfly_queue_commits_total",
                                      "Group commits of the async queue, by whether they "
                                      "fsync'd.", sync, NULL, 0);
    a->m_commit_s = metrics_family_new(METRICS_HISTOGRAM, "mayfly_queue_commit_seconds",
                                       "Time one group commit of the async queue took.", sync,
                                       secs, sizeof secs / sizeof secs[0]);
    a->m_commit_jobs = metrics_family_new(METRICS_HISTOGRAM, "mayfly_queue_commit_jobs",
                                          "Writes grouped into one commit of the async queue.",
                                          sync, jobs, sizeof jobs / sizeof jobs[0]);
}

/* ---- start, recovery, idempotency keys ------------------------------------------ */

static void async__load_dead_count(const char *function, int64_t n, void *ud)
{
    async_t *a = ud;
    afn_t *fn;
    mf_error_t err = MF_ERROR_INIT;
    if (async__fn(a, function, false, &fn, &err) == 0)
        fn->dead_letters = n;
}

static void async__load_key(const char *function, const char *key, const char *request_id,
                            int64_t created_ms, void *ud)
{
    async_t *a = ud;
    idem_t *k = xcalloc(1, sizeof *k);
    snprintf(k->request_id, sizeof k->request_id, "%s", request_id);
    k->created_ms = created_ms;
    k->committed = true;
    char *mk = async__idem_key(function, key);
    free(map_put(&a->idem, mk, k));
    free(mk);
}

/* Old idempotency keys, attempt histories past the retention, and dead
 * letters nobody redrove in time; the functions' dead-letter counts as the
 * store has them afterwards. */
typedef struct prune_job {
    async_t *a;
    int64_t idem_before, attempts_before, dead_before;
    int64_t attempts, dead;
    map_t counts;              /* function → 1 + its dead letters, when any went */
} prune_job_t;

static void async__count_dead(const char *function, int64_t n, void *ud)
{
    map_put(ud, function, (void *)(intptr_t)(n + 1));
}

static int async__prune_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    prune_job_t *j = arg;
    int r = store_idem_prune(q, j->idem_before, err);
    if (r == 0)
        r = store_queue_prune(q, j->attempts_before, j->dead_before, &j->attempts, &j->dead, err);
    if (r == 0 && j->dead > 0)
        r = store_dead_letter_counts(q, async__count_dead, &j->counts, err);
    return r;
}

static void async__prune_done(void *arg, int r, const mf_error_t *err)
{
    prune_job_t *j = arg;
    async_t *a = j->a;
    if (r < 0) {
        log_error("async", "pruning the queue's history: %s", err->msg);
    } else {
        metrics_inc(a->m_pruned, (const char *[]){"attempts"}, (double)j->attempts);
        metrics_inc(a->m_pruned, (const char *[]){"dead_letters"}, (double)j->dead);
        if (j->dead > 0) {
            const char *key;
            void *value;
            for (size_t it = 0; map_next(&a->fns, &it, &key, &value);) {
                afn_t *fn = value;
                intptr_t n = (intptr_t)map_get(&j->counts, fn->name);
                fn->dead_letters = n ? n - 1 : 0;
            }
            log_info("async", "%lld dead letters older than %d days removed",
                     (long long)j->dead, a->cfg.dead_letter_days);
        }
    }
    map_release(&j->counts);
    free(j);
}

static void async__on_prune(uv_timer_t *t)
{
    async_t *a = t->data;
    int64_t now = clock_wall_ms();
    prune_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->counts = (map_t)MAP_INIT;
    j->idem_before = now - ASYNC_IDEMPOTENCY_MS;
    j->attempts_before = now - (int64_t)a->cfg.retention_days * 86400000;
    j->dead_before = now - (int64_t)a->cfg.dead_letter_days * 86400000;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->idem, &it, &key, &value);) {
        idem_t *k = value;
        if (k->committed && k->created_ms < j->idem_before)
            free(map_remove(&a->idem, key));
    }
    store_writer_submit(a->writer, false, async__prune_apply, async__prune_done, j);
}

/* Takes events this node now holds into the index (from the pool: those a
 * previous run of this server left, or a node that stopped or died): one
 * whose attempt was under way when its node went runs again, with the cut
 * attempt in its history. Events of functions this node does not know wait
 * for them (one created on another node a moment ago, say); at the start
 * of a server alone on its database they are of deleted functions, and
 * go. */
static void async__adopt(async_t *a, store_qevent_t *rows, size_t n, bool forget_unknown)
{
    size_t interrupted = 0, dropped = 0;
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        afn_t *fn;
        mf_error_t err = MF_ERROR_INIT;
        if (async__fn(a, rows[i].function, false, &fn, &err) < 0) {
            log_error("async", "taking up event %s: %s", rows[i].request_id, err.msg);
            continue;
        }
        if (!fn->known && forget_unknown) {
            dropped++;
            continue;
        }
        aevent_t *ev = xcalloc(1, sizeof *ev);
        ev->q = rows[i];
        ev->q.event = NULL;
        ev->fn = fn;
        ev->heap_i = NOT_IN_HEAP;
        snprintf(ev->q.owner, sizeof ev->q.owner, "%s", a->node);
        if (ev->q.running) {
            store_attempt_t at = { .attempt = ev->q.attempts,
                                   .start_ms = ev->q.next_ms,
                                   .duration_ms = 0,
                                   .error_type = "Mayfly.Interrupted",
                                   .error_message = "the server stopped while this attempt "
                                                    "ran; the event runs again" };
            snprintf(at.request_id, sizeof at.request_id, "%s", ev->q.request_id);
            snprintf(at.status, sizeof at.status, "interrupted");
            ev->q.running = 0;
            ev->q.next_ms = now;
            async__submit_update(a, ev, &at);
            interrupted++;
        }
        async__record_basic(ev, "queued", ev->q.enqueued_ms, a->records);
        async__link(ev);
        async__schedule(a, ev);
    }
    if (forget_unknown) {
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&a->fns, &it, &key, &value);) {
            afn_t *fn = value;
            if (!fn->known)
                async__forget(a, fn, true);
        }
    }
    if (n)
        log_info("async", "took up %zu queued events (%zu cut short by a stop run again, "
                          "%zu of deleted functions dropped)",
                 n - dropped, interrupted, dropped);
}

/* ---- nodes: beats, the pool, leaving ------------------------------------------ */

typedef struct beat_job {
    async_t *a;
    store_node_t node;
    int64_t lease_ms;
    bool prune;
    int alive;
    bool was_lost;
} beat_job_t;

static void async__beat_fill(async_t *a, beat_job_t *j, int64_t lease_ms)
{
    j->a = a;
    snprintf(j->node.id, sizeof j->node.id, "%s", a->node);
    snprintf(j->node.address, sizeof j->node.address, "%s", a->address);
    j->node.started_ms = a->started_ms;
    j->node.heartbeat_ms = clock_wall_ms();
    j->node.instances = (int64_t)exec_instances(a->exec);
    j->lease_ms = lease_ms;
}

static int async__beat_apply(void *db, void *arg, mf_error_t *err)
{
    beat_job_t *j = arg;
    int r = store_node_beat(db, &j->node, j->lease_ms, &j->alive, &j->was_lost, err);
    if (r == 0 && j->prune)
        r = store_node_prune(db, j->node.heartbeat_ms - NODE_FORGET_MS, err);
    return r;
}

/* This node had been found gone (its beats stopped for longer than the
 * lease: a stall, or the database out of reach): the events it held went
 * back to the pool, and other nodes may run them now. It lets go of those
 * not running; the running ones end here, at least once. */
static void async__let_go(async_t *a)
{
    size_t n = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->fns, &it, &key, &value);) {
        afn_t *fn = value;
        for (aevent_t *ev = fn->head, *next; ev; ev = next) {
            next = ev->next;
            if (ev->q.running || ev->starting || ev->ending || ev->loading)
                continue;
            async__ready_remove(fn, ev);
            async__unlink(a, ev);
            async__event_free(a, ev);
            n++;
        }
    }
    log_warn("async", "this node was taken for gone by another (no beat for over %u ms): "
                      "%zu waiting events went back to the pool",
             a->cfg.lease_ms, n);
}

static void async__beat_done(void *arg, int r, const mf_error_t *err)
{
    beat_job_t *j = arg;
    async_t *a = j->a;
    a->beating = false;
    if (r < 0) {
        if (!a->beat_failed)
            log_error("async", "this node's beat: %s", err->msg);
        a->beat_failed = true;
    } else {
        if (a->beat_failed)
            log_info("async", "this node beats again");
        a->beat_failed = false;
        if (j->alive != a->alive && a->shared)
            log_info("async", "%d node%s share the queue", j->alive, j->alive == 1 ? "" : "s");
        a->alive = j->alive;
        if (j->was_lost)
            async__let_go(a);
        /* A node found gone put its events in the pool. */
        a->pool_hint = true;
        async__take_soon(a);
    }
    free(j);
}

static void async__on_beat(uv_timer_t *t)
{
    async_t *a = t->data;
    if (a->beating || a->closing)
        return;
    beat_job_t *j = xcalloc(1, sizeof *j);
    async__beat_fill(a, j, a->cfg.lease_ms);
    j->prune = a->beats++ % 100 == 0;
    a->beating = true;
    store_writer_submit(a->book, false, async__beat_apply, async__beat_done, j);
}

typedef struct take_job {
    async_t *a;
    int limit;
    store_qevent_t *rows;
    size_t n;
} take_job_t;

static int async__take_apply(void *db, void *arg, mf_error_t *err)
{
    take_job_t *j = arg;
    /* A batch run again (its commit cut off: store/writer.h) takes anew. */
    store_qevent_list_free(j->rows, j->n);
    j->rows = NULL;
    j->n = 0;
    return store_qevent_take(db, j->a->node, j->limit, &j->rows, &j->n, err);
}

static void async__take_done(void *arg, int r, const mf_error_t *err)
{
    take_job_t *j = arg;
    async_t *a = j->a;
    a->taking = false;
    if (r < 0) {
        if (!a->take_failed)
            log_error("async", "taking events from the pool: %s", err->msg);
        a->take_failed = true;
    } else {
        a->take_failed = false;
        if (a->closing) {
            /* Taken as the node stops: its leave, after this job, puts
             * them back. */
        } else {
            async__adopt(a, j->rows, j->n, false);
        }
        /* A full take may have left more. */
        a->pool_hint = j->n == (size_t)j->limit;
        if (a->pool_hint)
            async__take_soon(a);
    }
    store_qevent_list_free(j->rows, j->n);
    free(j);
}

static void async__on_take(uv_timer_t *t)
{
    async_t *a = t->data;
    uint64_t waiting = async__waiting(a);
    if (a->taking || a->stopping || waiting >= POOL_LOW / 2)
        return;
    take_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->limit = (int)(POOL_LOW - waiting);
    a->taking = true;
    store_writer_submit(a->book, false, async__take_apply, async__take_done, j);
}

/* Looks in the pool now rather than at the next poll, when there may be
 * events in it and room here. */
static void async__take_soon(async_t *a)
{
    if (a->shared && a->pool_hint && !a->taking && !a->stopping &&
        async__waiting(a) < POOL_LOW / 2)
        uv_timer_start(a->take_timer, async__on_take, 0, POOL_POLL_MS);
}

typedef struct leave_job {
    char node[STORE_NODE_ID_MAX + 1];
} leave_job_t;

static int async__leave_apply(void *db, void *arg, mf_error_t *err)
{
    leave_job_t *j = arg;
    return store_node_leave(db, j->node, clock_wall_ms(), err);
}

static void async__leave_done(void *arg, int r, const mf_error_t *err)
{
    if (r < 0)
        log_error("async", "leaving the nodes: %s (the events this node held go to other nodes "
                           "once its lease expires)",
                  err->msg);
    free(arg);
}

const char *async_node(const async_t *a)
{
    return a->node;
}

unsigned async_lease_ms(const async_t *a)
{
    return a->cfg.lease_ms;
}

/* Takes up what the queue holds for this node at its start: on SQLite,
 * where this server is alone, every event the runs before it left (their
 * nodes are gone: a lease of 0); on PostgreSQL, a first share of the
 * pool, and the rest as the node has room. */
static int async__recover(async_t *a, mf_error_t *err)
{
    beat_job_t beat = {0};
    async__beat_fill(a, &beat, a->shared ? a->cfg.lease_ms : 0);
    int r = async__beat_apply(a->rq, &beat, err);
    if (r < 0)
        return r;
    a->alive = beat.alive;
    if (a->shared)
        log_info("async", "node %s joins %d other node%s sharing the queue", a->node,
                 beat.alive - 1, beat.alive == 2 ? "" : "s");
    store_qevent_t *rows = NULL;
    size_t n = 0;
    if ((r = store_qevent_take(a->rq, a->node, a->shared ? POOL_LOW : -1, &rows, &n, err)) < 0)
        return r;
    async__adopt(a, rows, n, !a->shared);
    a->pool_hint = a->shared && n == POOL_LOW;
    store_qevent_list_free(rows, n);
    int64_t now = clock_wall_ms();
    if ((r = store_dead_letter_counts(a->rq, async__load_dead_count, a, err)) < 0)
        return r;
    return store_idem_list(a->rq, now - ASYNC_IDEMPOTENCY_MS, async__load_key, a, err);
}

static uv_timer_t *async__timer(async_t *a)
{
    uv_timer_t *t = xmalloc(sizeof *t);
    uv_timer_init(a->loop, t);
    t->data = a;
    return t;
}

int async_open(uv_loop_t *loop, const char *where, exec_t *exec, registry_t *registry,
               obs_records_t *records, const async_config_t *cfg, async_t **out,
               mf_error_t *err)
{
    async_t *a = xcalloc(1, sizeof *a);
    a->loop = loop;
    a->exec = exec;
    a->registry = registry;
    a->records = records;
    a->cfg = *cfg;
    snprintf(a->region, sizeof a->region, "%s", cfg->region ? cfg->region : "us-east-1");
    if (cfg->node && cfg->node[0]) {
        snprintf(a->node, sizeof a->node, "%s", cfg->node);
    } else {
        char id[ID_UUID_LEN + 1];
        id_uuid7(id);
        snprintf(a->node, sizeof a->node, "%s", id);
    }
    snprintf(a->address, sizeof a->address, "%s", cfg->address ? cfg->address : "");
    if (!a->cfg.lease_ms)
        a->cfg.lease_ms = 15000;
    a->started_ms = clock_wall_ms();
    a->alive = 1;
    id_random_bytes(&a->rng, sizeof a->rng);
    a->rng |= 1;
    int r = store_queue_open(where, &a->rq, err);
    if (r < 0) {
        free(a);
        return r;
    }
    a->shared = store_queue_shared(a->rq);
    async__metrics_setup(a);
    if (a->cfg.accept_first_percent < 0)
        log_info("async", "accepting first: off (queued events run at their own limits always)");
    else
        log_info("async",
                 "accepting first: while events are being accepted and the event loop is busy "
                 "%d%% of the time, queued events run %d attempts in all",
                 a->cfg.accept_first_percent, ASYNC_FG_ATTEMPTS);
    store_writer_db_t wdb;
    if ((r = store_queue_writer_db(where, &wdb, err)) < 0 ||
        (r = store_writer_start(loop, &wdb, async__on_commit, a, &a->writer, err)) < 0) {
        store_queue_close(a->rq);
        free(a);
        return r;
    }
    a->book = a->writer;
    if (a->shared &&
        ((r = store_queue_writer_db(where, &wdb, err)) < 0 ||
         (r = store_writer_start(loop, &wdb, async__on_commit, a, &a->book, err)) < 0)) {
        store_writer_stop(a->writer);
        store_queue_close(a->rq);
        free(a);
        return r;
    }
    a->retry_timer = async__timer(a);
    a->fg_timer = async__timer(a);
    async_fg_init(&a->fg);
    a->prune_timer = async__timer(a);
    a->grace_timer = async__timer(a);
    a->beat_timer = async__timer(a);
    a->take_timer = async__timer(a);
    a->kick = xmalloc(sizeof *a->kick);
    uv_idle_init(loop, a->kick);
    a->kick->data = a;
    if ((r = async__recover(a, err)) < 0) {
        async_close(a);
        return r;
    }
    uv_timer_start(a->prune_timer, async__on_prune, 2000, 3600 * 1000);
    /* Three beats a lease: one lost or late does not cost the lease. */
    uv_timer_start(a->beat_timer, async__on_beat, a->cfg.lease_ms / 3, a->cfg.lease_ms / 3);
    if (a->shared)
        uv_timer_start(a->take_timer, async__on_take, POOL_POLL_MS, POOL_POLL_MS);
    exec_set_capacity_cb(exec, async__on_capacity, a);
    metrics_add_collector(async__collect, a);
    *out = a;
    return 0;
}

/* ---- stopping ------------------------------------------------------------------- */

static void async__on_grace(uv_timer_t *t)
{
    async_t *a = t->data;
    log_warn("async", "%llu events still running after the grace period; they go back to the "
                      "queue",
             (unsigned long long)a->n_running);
    void (*done)(void *) = a->stop_done;
    a->stop_done = NULL;
    if (done)
        done(a->stop_ud);
}

void async_stop(async_t *a, void (*done)(void *ud), void *ud)
{
    a->stopping = true;
    uv_timer_stop(a->retry_timer);
    a->stop_done = done;
    a->stop_ud = ud;
    if (a->n_running) {
        log_info("async", "waiting up to %u ms for %llu running events", a->cfg.shutdown_grace_ms,
                 (unsigned long long)a->n_running);
        uv_timer_start(a->grace_timer, async__on_grace, a->cfg.shutdown_grace_ms, 0);
    }
    async__maybe_stopped(a);
}

static void async__free_handle(uv_handle_t *h)
{
    free(h);
}

void async_close(async_t *a)
{
    if (!a)
        return;
    exec_set_capacity_cb(a->exec, NULL, NULL);
    a->stopping = true;
    a->dirty_head = a->dirty_tail = NULL;
    /* What waits for records: no loop iteration is left to wait in. */
    obs_records_flush_wait(a->records);
    for (after_batch_t *b = a->after_batches; b; b = b->next) {
        async__after_batch_submit(a, b);
        b->a = NULL; /* its callback, still to come, only frees it */
    }
    a->after_batches = NULL;
    after_batch_t rest = { a, a->after_head, NULL };
    a->after_head = a->after_tail = NULL;
    async__after_batch_submit(a, &rest);
    a->closing = true;
    /* The acceptances first: what they wrote is this node's to give back. */
    if (a->book != a->writer)
        store_writer_stop(a->writer);
    /* Last: the events this node holds go back to the pool, for other
     * nodes (or its next run) to take. */
    leave_job_t *leave = xcalloc(1, sizeof *leave);
    snprintf(leave->node, sizeof leave->node, "%s", a->node);
    store_writer_submit(a->book, true, async__leave_apply, async__leave_done, leave);
    store_writer_stop(a->book);
    uv_close((uv_handle_t *)a->beat_timer, async__free_handle);
    uv_close((uv_handle_t *)a->take_timer, async__free_handle);
    uv_close((uv_handle_t *)a->retry_timer, async__free_handle);
    uv_close((uv_handle_t *)a->fg_timer, async__free_handle);
    uv_close((uv_handle_t *)a->prune_timer, async__free_handle);
    uv_close((uv_handle_t *)a->grace_timer, async__free_handle);
    uv_close((uv_handle_t *)a->kick, async__free_handle);
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->fns, &it, &key, &value);) {
        afn_t *fn = value;
        for (aevent_t *ev = fn->head, *next; ev; ev = next) {
            next = ev->next;
            async__event_free(a, ev);
        }
        free(fn);
    }
    map_release(&a->fns);
    for (size_t it = 0; map_next(&a->idem, &it, &key, &value);)
        free(value);
    map_release(&a->idem);
    free(a->heap);
    store_queue_close(a->rq);
    free(a);
}
