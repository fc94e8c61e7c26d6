#include "obs/logs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"

#define FLUSH_DELAY_MS 100
#define FLUSH_COUNT 1024

struct obs_log_sub {
    obs_log_sub_t *next;
    char function[65];
    char request_id[37];
    obs_log_cb cb;
    void *ud;
};

struct obs_logs {
    store_writer_t *writer;
    uv_timer_t *timer;
    store_log_t *pending;
    size_t count, cap;
    obs_log_sub_t *subs;
};

static void on_flush_timer(uv_timer_t *t)
{
    obs_logs_flush(t->data);
}

obs_logs_t *obs_logs_new(uv_loop_t *loop, store_writer_t *writer)
{
    obs_logs_t *l = xcalloc(1, sizeof *l);
    l->writer = writer;
    l->timer = xmalloc(sizeof *l->timer);
    uv_timer_init(loop, l->timer);
    l->timer->data = l;
    return l;
}

void obs_logs_append(obs_logs_t *l, const char *function, const char *request_id, int stream,
                     const char *msg, size_t len)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 128;
        l->pending = xrealloc(l->pending, l->cap * sizeof *l->pending);
    }
    store_log_t *line = &l->pending[l->count++];
    memset(line, 0, sizeof *line);
    line->time_ms = clock_wall_ms();
    snprintf(line->function, sizeof line->function, "%s", function);
    snprintf(line->request_id, sizeof line->request_id, "%s", request_id ? request_id : "");
    line->stream = stream;
    line->message = xstrndup(msg, len);
    line->len = len;

    for (obs_log_sub_t *s = l->subs, *next; s; s = next) {
        next = s->next; /* a callback may unsubscribe itself */
        if (strcmp(s->function, line->function))
            continue;
        if (s->request_id[0] && strcmp(s->request_id, line->request_id))
            continue;
        s->cb(line, s->ud);
    }

    if (l->count >= FLUSH_COUNT)
        obs_logs_flush(l);
    else if (!uv_is_active((uv_handle_t *)l->timer))
        uv_timer_start(l->timer, on_flush_timer, FLUSH_DELAY_MS, 0);
}

/* A batch on its way to the writer thread. */
typedef struct lines_batch {
    store_log_t *lines;
    size_t count;
} lines_batch_t;

static int batch_apply(void *db, void *arg, mf_error_t *err)
{
    lines_batch_t *b = arg;
    return store_logs_write(db, b->lines, b->count, err);
}

static void batch_done(void *arg, int r, const mf_error_t *err)
{
    lines_batch_t *b = arg;
    /* -ENOBUFS: dropped while the store was away, which its writer said. */
    if (r < 0 && r != -ENOBUFS)
        log_error("logs", "writing %zu function log line(s): %s", b->count, err->msg);
    for (size_t i = 0; i < b->count; i++)
        free(b->lines[i].message);
    free(b->lines);
    free(b);
}

void obs_logs_flush(obs_logs_t *l)
{
    uv_timer_stop(l->timer);
    if (!l->count)
        return;
    lines_batch_t *b = xmalloc(sizeof *b);
    b->lines = l->pending;
    b->count = l->count;
    size_t bytes = l->cap * sizeof *l->pending;
    for (size_t i = 0; i < l->count; i++)
        bytes += l->pending[i].len;
    l->pending = NULL;
    l->count = l->cap = 0;
    /* Its size counts while the writer holds it for a store that is away. */
    store_writer_submit_sized(l->writer, false, bytes, batch_apply, batch_done, b);
}

void obs_logs_sync(obs_logs_t *l, void (*cb)(void *ud), void *ud)
{
    obs_logs_flush(l);
    store_writer_barrier(l->writer, cb, ud);
}

obs_log_sub_t *obs_logs_subscribe(obs_logs_t *l, const char *function, const char *request_id,
                                  obs_log_cb cb, void *ud)
{
    obs_log_sub_t *s = xcalloc(1, sizeof *s);
    snprintf(s->function, sizeof s->function, "%s", function);
    snprintf(s->request_id, sizeof s->request_id, "%s", request_id ? request_id : "");
    s->cb = cb;
    s->ud = ud;
    s->next = l->subs;
    l->subs = s;
    return s;
}

void obs_logs_unsubscribe(obs_logs_t *l, obs_log_sub_t *sub)
{
    for (obs_log_sub_t **pp = &l->subs; *pp; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            free(sub);
            return;
        }
    }
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

void obs_logs_free(obs_logs_t *l)
{
    if (!l)
        return;
    obs_logs_flush(l);
    while (l->subs)
        obs_logs_unsubscribe(l, l->subs);
    uv_close((uv_handle_t *)l->timer, free_timer);
    free(l->pending);
    free(l);
}
