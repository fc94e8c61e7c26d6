/* Storage over time (docs/metering.md, "Storage"): at the end of each
 * interval (a minute by default, aligned to the wall clock so that every
 * server sharing a store names a sample alike), what each KV store and
 * each of this server's volumes holds goes into usage as bytes × the
 * interval, priced per GB-month. The sizes are read off the event loop
 * (the KV stores on their thread, the volumes' statvfs here, one call
 * each), and written by a job of the records' writer. A server's first,
 * partial interval is not counted: storage is never billed for time
 * nobody measured. */
#include "meter/meter.h"

#include "meter/budget.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "state/kv.h"
#include "state/volume.h"

struct meter_storage {
    uv_loop_t *loop;
    uv_timer_t timer;
    state_kv_t *kv;
    volumes_t *volumes;
    store_writer_t *writer;
    int64_t interval_ms;
    int64_t started_ms;
    int pending;             /* samples on their way (a KV read, then a write) */
    struct budgets *budgets; /* read again once storage is written, or NULL */
    bool stopping;
    bool closed; /* the timer's handle is closed */
};

typedef struct sample {
    meter_storage_t *m;
    int64_t at_ms;
    store_storage_t *kv, *volumes;
    size_t nkv, nvolumes;
} sample_t;

static void storage_free_if_done(meter_storage_t *m)
{
    if (m->stopping && m->closed && !m->pending)
        free(m);
}

static void sample_free(sample_t *s)
{
    meter_storage_t *m = s->m;
    free(s->kv);
    free(s->volumes);
    free(s);
    m->pending--;
    storage_free_if_done(m);
}

/* The object qname's tenant, and usage's name for it ("kv:NAME"). */
static void storage_of(const char *kind, const char *qname, int64_t bytes, store_storage_t *out)
{
    memset(out, 0, sizeof *out);
    tenant_of(qname, out->tenant);
    snprintf(out->name, sizeof out->name, "%s:%s", kind, tenant_local(qname));
    out->bytes = bytes;
}

static int sample_write(void *db, void *arg, mf_error_t *err)
{
    sample_t *s = arg;
    return store_usage_storage(db, s->at_ms, s->m->interval_ms, s->kv, s->nkv, s->volumes,
                               s->nvolumes, err);
}

static void sample_written(void *arg, int r, const mf_error_t *err)
{
    sample_t *s = arg;
    if (r < 0)
        log_warn("meter", "storage at %lld not counted: %s", (long long)s->at_ms, err->msg);
    else if (!s->m->stopping && (s->nkv || s->nvolumes))
        budgets_refresh(s->m->budgets); /* storage's cost counts in budgets */
    sample_free(s);
}

static void kv_read(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    sample_t *s = ud;
    if (r < 0) {
        /* Without the KV stores' sizes the volumes still count. */
        log_warn("meter", "KV storage at %lld not counted: %s", (long long)s->at_ms, err->msg);
    } else {
        s->kv = xcalloc(a->nstores ? a->nstores : 1, sizeof *s->kv);
        for (size_t i = 0; i < a->nstores; i++)
            if (a->stores[i].bytes > 0)
                storage_of("kv", a->stores[i].name, a->stores[i].bytes, &s->kv[s->nkv++]);
    }
    if (s->m->stopping) {
        sample_free(s);
        return;
    }
    store_writer_submit(s->m->writer, false, sample_write, sample_written, s);
}

static void on_tick(uv_timer_t *t)
{
    meter_storage_t *m = t->data;
    int64_t now = clock_wall_ms();
    int64_t at = now - now % m->interval_ms;
    /* The next sample at the next boundary, wherever this one fell. */
    uv_timer_start(&m->timer, on_tick, (uint64_t)(at + m->interval_ms - now), 0);
    if (at - m->interval_ms < m->started_ms)
        return; /* the interval began before this server did */
    sample_t *s = xcalloc(1, sizeof *s);
    s->m = m;
    s->at_ms = at;
    if (m->volumes) {
        volume_info_t *list = NULL;
        size_t n = 0;
        mf_error_t err = MF_ERROR_INIT;
        if (volumes_list(m->volumes, &list, &n, &err) == 0) {
            s->volumes = xcalloc(n ? n : 1, sizeof *s->volumes);
            for (size_t i = 0; i < n; i++)
                if (list[i].mounted && list[i].used_bytes > 0)
                    storage_of("volume", list[i].name, (int64_t)list[i].used_bytes,
                               &s->volumes[s->nvolumes++]);
        } else {
            log_warn("meter", "volume storage at %lld not counted: %s", (long long)at, err.msg);
        }
        free(list);
    }
    m->pending++;
    if (m->kv)
        state_kv_read(m->kv, &(state_kv_query_t){.kind = STATE_KV_READ_STORES}, kv_read, s);
    else
        kv_read(s, 0, &(state_kv_answer_t){0}, NULL);
}

meter_storage_t *meter_storage_start(uv_loop_t *loop, state_kv_t *kv, volumes_t *volumes,
                                     store_writer_t *writer, int64_t interval_ms)
{
    meter_storage_t *m = xcalloc(1, sizeof *m);
    m->loop = loop;
    m->kv = kv;
    m->volumes = volumes;
    m->writer = writer;
    m->interval_ms = interval_ms > 0 ? interval_ms : METER_STORAGE_INTERVAL_MS;
    m->started_ms = clock_wall_ms();
    uv_timer_init(loop, &m->timer);
    uv_unref((uv_handle_t *)&m->timer); /* it never keeps a stopping server up */
    m->timer.data = m;
    int64_t next = m->started_ms - m->started_ms % m->interval_ms + m->interval_ms;
    uv_timer_start(&m->timer, on_tick, (uint64_t)(next - m->started_ms), 0);
    return m;
}

static void on_closed(uv_handle_t *h)
{
    meter_storage_t *m = h->data;
    m->closed = true;
    storage_free_if_done(m);
}

void meter_storage_set_budgets(meter_storage_t *m, struct budgets *b)
{
    m->budgets = b;
}

void meter_storage_stop(meter_storage_t *m)
{
    if (!m)
        return;
    m->stopping = true;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_closed);
}
