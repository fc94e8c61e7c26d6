#include "obs/records.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/map.h"
#include "core/pace.h"
#include "core/xalloc.h"
#include "obs/payload.h"

/* Up to this long between a call's end and its record on disk. */
#define FLUSH_DELAY_MS 50
/* A batch this large is written at once. */
#define FLUSH_COUNT 512

struct obs_records {
    store_writer_t *writer;
    uv_timer_t *timer;
    store_record_t *pending;
    size_t count, cap;
    /* request id → 1 + its index in pending, for records added with
     * obs_records_set: an async event moves through queued, running and
     * done within one batch more often than not, and only its last state
     * needs writing. */
    map_t index;
    /* What waits for the pending records (obs_records_after): each goes
     * to the writer as a barrier behind them when they are flushed. */
    struct records_waiter *waiters, **waiters_tail;
};

typedef struct records_waiter {
    void (*cb)(void *ud);
    void *ud;
    struct records_waiter *next;
} records_waiter_t;

bool obs_records_status_valid(const char *status)
{
    static const char *const statuses[] = { "success", "error",  "timeout", "oom",
                                            "throttled", "queued", "running" };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (!strcmp(status, statuses[i]))
            return true;
    return false;
}

static int usage_apply(void *db, void *arg, mf_error_t *err)
{
    return store_usage_put(db, arg, err);
}

static void usage_done(void *arg, int r, const mf_error_t *err)
{
    const store_usage_t *u = arg;
    if (r < 0)
        log_warn("records", "usage of a call of %s not counted: %s", u->function, err->msg);
    free(arg);
}

void obs_records_usage_only(obs_records_t *r, const store_record_t *rec)
{
    store_usage_t *u = xmalloc(sizeof *u);
    store_usage_of(rec, u);
    store_writer_submit(r->writer, false, usage_apply, usage_done, u);
}

static void on_flush_timer(uv_timer_t *t)
{
    obs_records_flush(t->data);
}

obs_records_t *obs_records_new(uv_loop_t *loop, store_writer_t *writer)
{
    obs_records_t *r = xcalloc(1, sizeof *r);
    r->writer = writer;
    r->timer = xmalloc(sizeof *r->timer);
    uv_timer_init(loop, r->timer);
    r->timer->data = r;
    r->waiters_tail = &r->waiters;
    return r;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static size_t names_len(const char *names)
{
    const char *p = names;
    while (*p)
        p += strlen(p) + 1;
    return (size_t)(p - names) + 1;
}

/* A copy the batch owns of rec, whose strings and payloads are borrowed. */
static void record_copy(store_record_t *dst, const store_record_t *rec)
{
    *dst = *rec;
    dst->error_type = dup_or_null(rec->error_type);
    dst->error_message = dup_or_null(rec->error_message);
    dst->egress_json = dup_or_null(rec->egress_json);
    dst->event = xmemdup0(rec->event, rec->event_len);
    dst->result = xmemdup0(rec->result, rec->result_len);
    dst->redact = rec->redact ? xmemdup0(rec->redact, names_len(rec->redact)) : NULL;
}

/* Appends a copy of rec to the batch; with index, remembers where. */
static void records_append(obs_records_t *r, const store_record_t *rec, bool index)
{
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->pending = xrealloc(r->pending, r->cap * sizeof *r->pending);
    }
    store_record_t *copy = &r->pending[r->count++];
    record_copy(copy, rec);
    if (index)
        map_put(&r->index, copy->request_id, (void *)(uintptr_t)r->count);
    if (r->count >= FLUSH_COUNT)
        obs_records_flush(r);
    else if (!uv_is_active((uv_handle_t *)r->timer))
        uv_timer_start(r->timer, on_flush_timer, FLUSH_DELAY_MS, 0);
}

void obs_records_add(obs_records_t *r, const store_record_t *rec)
{
    records_append(r, rec, false);
}

void obs_records_set(obs_records_t *r, const store_record_t *rec)
{
    uintptr_t at = (uintptr_t)map_get(&r->index, rec->request_id);
    if (!at) {
        records_append(r, rec, true);
        return;
    }
    store_record_t *old = &r->pending[at - 1];
    store_record_clear(old);
    record_copy(old, rec);
}

/* A batch on its way to the writer thread. */
typedef struct records_batch {
    store_record_t *recs;
    size_t count;
} records_batch_t;

/* One payload as the call had it → as its record keeps it. */
static void keep_payload(const obs_payload_policy_t *policy, char **data, size_t *len,
                         int64_t *bytes, int *flags)
{
    obs_payload_t p;
    obs_payload_make(policy, *data, *len, &p);
    free(*data);
    /* A streamed answer's first bytes are all the call kept of it: its
     * size came with them (invocation_record). */
    if (*bytes < (int64_t)p.full_len)
        *bytes = (int64_t)p.full_len;
    *data = p.data;
    *len = p.refused ? 0 : p.len;
    p.data = NULL;
    *flags = (p.truncated ? STORE_PAYLOAD_TRUNCATED : 0) |
             (p.redacted ? STORE_PAYLOAD_REDACTED : 0) | (p.refused ? STORE_PAYLOAD_WITHHELD : 0) |
             (p.kind == OBS_PAYLOAD_TEXT     ? STORE_PAYLOAD_TEXT
              : p.kind == OBS_PAYLOAD_BINARY ? STORE_PAYLOAD_BINARY
                                             : 0);
    obs_payload_release(&p);
}

/* On the writer's thread, off the loop: what the records keep of each
 * call's event and result, redacted and cut to the function's settings. */
static void keep_payloads(store_record_t *rec)
{
    if (!rec->redact)
        return;
    size_t n = 0;
    for (const char *p = rec->redact; *p; p += strlen(p) + 1)
        n++;
    const char **names = xcalloc(n + 1, sizeof *names);
    n = 0;
    for (const char *p = rec->redact; *p; p += strlen(p) + 1)
        names[n++] = p;
    obs_payload_policy_t policy = {.redact = names, .n_redact = n, .max_bytes = rec->payload_max};
    keep_payload(&policy, &rec->event, &rec->event_len, &rec->event_bytes, &rec->event_flags);
    keep_payload(&policy, &rec->result, &rec->result_len, &rec->result_bytes,
                 &rec->result_flags);
    free(names);
    free(rec->redact);
    rec->redact = NULL;
}

static int batch_apply(void *db, void *arg, mf_error_t *err)
{
    records_batch_t *b = arg;
    for (size_t i = 0; i < b->count; i++) {
        keep_payloads(&b->recs[i]);
        pace_point();
    }
    return store_records_write(db, b->recs, b->count, err);
}

static void batch_done(void *arg, int r, const mf_error_t *err)
{
    records_batch_t *b = arg;
    /* A failed write is logged and dropped rather than retried forever:
     * the server keeps serving calls. (While the store is away, the
     * writer holds the batch and runs it again when the store is back;
     * past its bound it drops newer ones, and says so once.) */
    if (r < 0 && r != -ENOBUFS)
        log_error("records", "writing %zu invocation record(s): %s", b->count, err->msg);
    for (size_t i = 0; i < b->count; i++)
        store_record_clear(&b->recs[i]);
    free(b->recs);
    free(b);
}

void obs_records_flush(obs_records_t *r)
{
    uv_timer_stop(r->timer);
    if (!r->count)
        return;
    records_batch_t *b = xmalloc(sizeof *b);
    b->recs = r->pending;
    b->count = r->count;
    size_t bytes = r->cap * sizeof *r->pending;
    for (size_t i = 0; i < r->count; i++) {
        const store_record_t *rec = &r->pending[i];
        bytes += rec->event_len + rec->result_len;
        if (rec->error_message)
            bytes += strlen(rec->error_message);
        if (rec->egress_json)
            bytes += strlen(rec->egress_json);
    }
    /* The next batch starts with room for as many as this one had:
     * growing from nothing by doubling, batch after batch, copied the
     * records (near a KiB each) several times over. */
    size_t room = 64;
    while (room < r->count)
        room *= 2;
    r->pending = xmalloc(room * sizeof *r->pending);
    r->cap = room;
    r->count = 0;
    map_clear(&r->index);
    /* Its size counts while the writer holds it for a store that is away. */
    store_writer_submit_sized(r->writer, false, bytes, batch_apply, batch_done, b);
    records_waiter_t *w = r->waiters;
    r->waiters = NULL;
    r->waiters_tail = &r->waiters;
    while (w) {
        records_waiter_t *next = w->next;
        store_writer_barrier(r->writer, w->cb, w->ud);
        free(w);
        w = next;
    }
}

void obs_records_sync(obs_records_t *r, void (*cb)(void *ud), void *ud)
{
    obs_records_flush(r);
    store_writer_barrier(r->writer, cb, ud);
}

void obs_records_after(obs_records_t *r, void (*cb)(void *ud), void *ud)
{
    if (!r->count) {
        /* Every record added so far is with the writer already. */
        store_writer_barrier(r->writer, cb, ud);
        return;
    }
    records_waiter_t *w = xmalloc(sizeof *w);
    w->cb = cb;
    w->ud = ud;
    w->next = NULL;
    *r->waiters_tail = w;
    r->waiters_tail = &w->next;
}

void obs_records_flush_wait(obs_records_t *r)
{
    obs_records_flush(r);
    store_writer_wait(r->writer);
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

void obs_records_free(obs_records_t *r)
{
    if (!r)
        return;
    obs_records_flush(r);
    uv_close((uv_handle_t *)r->timer, free_timer);
    free(r->pending);
    map_release(&r->index);
    free(r);
}
