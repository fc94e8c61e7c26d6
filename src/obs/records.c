#include "obs/records.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"

/* Up to this long between a call's end and its record on disk. */
#define FLUSH_DELAY_MS 50
/* A batch this large is written at once. */
#define FLUSH_COUNT 512

struct obs_records {
    store_t *store;
    uv_timer_t *timer;
    store_record_t *pending;
    size_t count, cap;
    /* request id → 1 + its index in pending, for records added with
     * obs_records_set: an async event moves through queued, running and
     * done within one batch more often than not, and only its last state
     * needs writing. */
    map_t index;
};

bool obs_records_status_valid(const char *status)
{
    static const char *const statuses[] = { "success", "error",  "timeout", "oom",
                                            "throttled", "queued", "running" };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (!strcmp(status, statuses[i]))
            return true;
    return false;
}

static void on_flush_timer(uv_timer_t *t)
{
    obs_records_t *r = t->data;
    mf_error_t err = MF_ERROR_INIT;
    if (obs_records_flush(r, &err) < 0)
        log_error("records", "writing invocation records: %s", err.msg);
}

obs_records_t *obs_records_new(uv_loop_t *loop, store_t *store)
{
    obs_records_t *r = xcalloc(1, sizeof *r);
    r->store = store;
    r->timer = xmalloc(sizeof *r->timer);
    uv_timer_init(loop, r->timer);
    r->timer->data = r;
    return r;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* Appends a copy of rec to the batch; with index, remembers where. */
static void records_append(obs_records_t *r, const store_record_t *rec, bool index)
{
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->pending = xrealloc(r->pending, r->cap * sizeof *r->pending);
    }
    store_record_t *copy = &r->pending[r->count++];
    *copy = *rec;
    copy->error_type = dup_or_null(rec->error_type);
    copy->error_message = dup_or_null(rec->error_message);
    if (index)
        map_put(&r->index, copy->request_id, (void *)(uintptr_t)r->count);
    if (r->count >= FLUSH_COUNT) {
        mf_error_t err = MF_ERROR_INIT;
        if (obs_records_flush(r, &err) < 0)
            log_error("records", "writing invocation records: %s", err.msg);
    } else if (!uv_is_active((uv_handle_t *)r->timer)) {
        uv_timer_start(r->timer, on_flush_timer, FLUSH_DELAY_MS, 0);
    }
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
    *old = *rec;
    old->error_type = dup_or_null(rec->error_type);
    old->error_message = dup_or_null(rec->error_message);
}

int obs_records_flush(obs_records_t *r, mf_error_t *err)
{
    uv_timer_stop(r->timer);
    if (!r->count)
        return 0;
    int ret = store_records_put(r->store, r->pending, r->count, err);
    /* On a failed write the batch is dropped rather than retried forever:
     * the error is logged, and the server keeps serving calls. */
    for (size_t i = 0; i < r->count; i++)
        store_record_clear(&r->pending[i]);
    r->count = 0;
    map_clear(&r->index);
    return ret;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

void obs_records_free(obs_records_t *r)
{
    if (!r)
        return;
    mf_error_t err = MF_ERROR_INIT;
    if (obs_records_flush(r, &err) < 0)
        log_error("records", "writing invocation records: %s", err.msg);
    uv_close((uv_handle_t *)r->timer, free_timer);
    free(r->pending);
    map_release(&r->index);
    free(r);
}
