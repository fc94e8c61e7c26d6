#include "obs/logs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"

#define FLUSH_DELAY_MS 100
#define FLUSH_COUNT 1024

/* How far a follower has had another server's lines. */
typedef struct seen {
    char node[65];
    int64_t id;
} seen_t;

struct obs_log_sub {
    obs_log_sub_t *next;
    char function[TENANT_QNAME_MAX + 1];
    char request_id[37];
    obs_log_cb cb;
    void *ud;
    uint64_t seq;                /* its place among the subscriptions */
    seen_t *seen;                /* obs_logs_seen's, and what it got since */
    size_t nseen;
    int64_t base;                /* the last id its first read gave */
};

typedef struct remote_read remote_read_t;

struct obs_logs {
    store_writer_t *writer;
    uv_timer_t *timer;
    store_log_t *pending;
    size_t count, cap;
    obs_log_sub_t *subs;
    uint64_t seq;                /* subscriptions made */
    remote_read_t *reads;        /* other servers' lines on their way */
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
    /* Cut to their fields, as snprintf would, without it (three lines a
     * call); the memset above ends them. */
    memcpy(line->function, function, strnlen(function, sizeof line->function - 1));
    if (request_id)
        memcpy(line->request_id, request_id,
               strnlen(request_id, sizeof line->request_id - 1));
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
    s->seq = ++l->seq;
    s->next = l->subs;
    l->subs = s;
    return s;
}

void obs_logs_unsubscribe(obs_logs_t *l, obs_log_sub_t *sub)
{
    for (obs_log_sub_t **pp = &l->subs; *pp; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            free(sub->seen);
            free(sub);
            return;
        }
    }
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

/* ---- other servers' lines --------------------------------------------------------- */

/* A read of lines other servers wrote, for the followers here. */
struct remote_read {
    remote_read_t *next, **prev; /* in l->reads; l NULL once it is freed */
    obs_logs_t *l;
    char function[TENANT_QNAME_MAX + 1];
    char node[65];               /* "": every server's but this one's */
    int64_t after_id, last_id;
    uint64_t seq;                /* followers subscribed by then get them */
    store_log_t *lines;
    size_t n, cap;
};

#define REMOTE_PAGE 1000

static int64_t *sub_seen(obs_log_sub_t *s, const char *node)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (!strcmp(s->seen[i].node, node))
            return &s->seen[i].id;
    return NULL;
}

static void sub_set_seen(obs_log_sub_t *s, const char *node, int64_t id)
{
    int64_t *at = sub_seen(s, node);
    if (at) {
        if (id > *at)
            *at = id;
        return;
    }
    s->seen = xrealloc(s->seen, (s->nseen + 1) * sizeof *s->seen);
    snprintf(s->seen[s->nseen].node, sizeof s->seen[0].node, "%s", node);
    s->seen[s->nseen++].id = id;
}

void obs_logs_seen(obs_logs_t *l, obs_log_sub_t *sub, const char *node, int64_t id)
{
    (void)l;
    if (!node) {
        if (id > sub->base)
            sub->base = id;
        return;
    }
    if (node[0])
        sub_set_seen(sub, node, id);
}

/* On the writer's thread: the lines, a page at a time. */
static int remote_apply(void *db, void *arg, mf_error_t *err)
{
    remote_read_t *rr = arg;
    int64_t after = rr->after_id;
    for (;;) {
        store_log_t *lines = NULL;
        size_t n = 0;
        int r = store_logs_list_remote(db, rr->function, rr->node[0] ? rr->node : NULL, after,
                                       rr->last_id, REMOTE_PAGE, &lines, &n, err);
        if (r < 0)
            return r;
        if (rr->n + n > rr->cap) {
            rr->cap = (rr->n + n) * 2;
            rr->lines = xrealloc(rr->lines, rr->cap * sizeof *rr->lines);
        }
        memcpy(rr->lines + rr->n, lines, n * sizeof *lines);
        rr->n += n;
        free(lines); /* the messages are rr's now */
        if (n < REMOTE_PAGE)
            return 0;
        after = rr->lines[rr->n - 1].id;
    }
}

/* On the loop: each line to the followers that were there when it was
 * asked for (a later one's first read sees it) and have not had it. */
static void remote_done(void *arg, int r, const mf_error_t *err)
{
    remote_read_t *rr = arg;
    obs_logs_t *l = rr->l;
    if (l) {
        *rr->prev = rr->next;
        if (rr->next)
            rr->next->prev = rr->prev;
        if (r < 0)
            log_error("logs", "reading other servers' lines of %s: %s", rr->function, err->msg);
    }
    for (size_t i = 0; l && i < rr->n; i++) {
        const store_log_t *line = &rr->lines[i];
        for (obs_log_sub_t *s = l->subs, *next; s; s = next) {
            next = s->next; /* a callback may unsubscribe itself */
            if (s->seq > rr->seq || strcmp(s->function, line->function))
                continue;
            if (s->request_id[0] && strcmp(s->request_id, line->request_id))
                continue;
            /* Another server's lines come in the order it wrote them: past
             * the last one a follower had of it, they are new. A catch-up
             * read starts a server never heard of at the first read's end. */
            int64_t *had = sub_seen(s, line->node);
            int64_t from = had ? *had : rr->node[0] ? 0 : s->base;
            if (line->id <= from)
                continue;
            sub_set_seen(s, line->node, line->id);
            s->cb(line, s->ud);
        }
    }
    store_log_list_free(rr->lines, rr->n);
    free(rr);
}

static bool followed(obs_logs_t *l, const char *function)
{
    for (obs_log_sub_t *s = l->subs; s; s = s->next)
        if (!strcmp(s->function, function))
            return true;
    return false;
}

static void remote_submit(obs_logs_t *l, const char *function, const char *node, int64_t after_id,
                          int64_t last_id)
{
    remote_read_t *rr = xcalloc(1, sizeof *rr);
    rr->l = l;
    snprintf(rr->function, sizeof rr->function, "%s", function);
    snprintf(rr->node, sizeof rr->node, "%s", node ? node : "");
    rr->after_id = after_id;
    rr->last_id = last_id;
    rr->seq = l->seq;
    rr->next = l->reads;
    rr->prev = &l->reads;
    if (l->reads)
        l->reads->prev = &rr->next;
    l->reads = rr;
    store_writer_submit_read(l->writer, remote_apply, remote_done, rr);
}

void obs_logs_remote(obs_logs_t *l, const char *function, const char *node, int64_t first_id,
                     int64_t last_id)
{
    if (followed(l, function) && node[0])
        remote_submit(l, function, node, first_id - 1, last_id);
}

void obs_logs_remote_resync(obs_logs_t *l)
{
    map_t low = MAP_INIT; /* function → the least id any of its followers may lack, + 1 */
    for (obs_log_sub_t *s = l->subs; s; s = s->next) {
        int64_t from = s->base;
        for (size_t i = 0; i < s->nseen; i++)
            if (s->seen[i].id < from)
                from = s->seen[i].id;
        intptr_t had = (intptr_t)map_get(&low, s->function);
        if (!had || from + 1 < had)
            map_put(&low, s->function, (void *)(intptr_t)(from + 1));
    }
    const char *key;
    void *v;
    for (size_t it = 0; map_next(&low, &it, &key, &v);)
        remote_submit(l, key, NULL, (int64_t)(intptr_t)v - 1, INT64_MAX);
    map_release(&low);
}

void obs_logs_free(obs_logs_t *l)
{
    if (!l)
        return;
    /* Reads on their way deliver nothing once the writer finishes them. */
    for (remote_read_t *rr = l->reads; rr; rr = rr->next)
        rr->l = NULL;
    obs_logs_flush(l);
    while (l->subs)
        obs_logs_unsubscribe(l, l->subs);
    uv_close((uv_handle_t *)l->timer, free_timer);
    free(l->pending);
    free(l);
}
