/* Changes other nodes make (cluster.h): the notifications' payloads, the
 * batch that gathers them, and the thread that hears them.
 *
 * The thread owns one connection (store/listen.h) and does nothing but
 * wait on its socket, read what arrived and add it to the batch the loop
 * takes next; it never reads a table. What a change means, and the reads
 * that follow it, are the loop's (api/cluster.c), which makes them on the
 * store's writer threads: a burst of notifications while the loop is busy
 * is one batch, and the same thing changed twice is read once. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "store/listen.h"

/* As pg_stat_activity shows the connection (an operator can see, and
 * end, it there). */
#define CHANGES_APPLICATION_NAME "mayfly-listen"

#define BACKOFF_FIRST_MS 200u
#define BACKOFF_MAX_MS 5000u

/* ---- payloads ----------------------------------------------------------------- */

/* A name's characters, and the separator of a qualified one
 * (core/tenant.h). */
static bool name_char(char c, bool dot)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == TENANT_SEP || (dot && c == '.');
}

/* The length of the word at p (up to end or a space) when it is 1 to max
 * characters of a name (with '.', for schedules and node ids, when dot);
 * else 0. */
static size_t word(const char *p, const char *end, size_t max, bool dot)
{
    size_t n = 0;
    while (p + n < end && p[n] != ' ') {
        if (n == max || !name_char(p[n], dot))
            return 0;
        n++;
    }
    return n;
}

/* A non-negative decimal number of at most 18 digits (ids never come
 * near), its length; 0 when there is none. */
static size_t number(const char *p, const char *end, int64_t *out)
{
    size_t n = 0;
    int64_t v = 0;
    while (p + n < end && p[n] != ' ') {
        if (n == 18 || p[n] < '0' || p[n] > '9')
            return 0;
        v = v * 10 + (p[n] - '0');
        n++;
    }
    *out = v;
    return n;
}

static const char *const kind_names[CLUSTER_KINDS] = {
    [CLUSTER_FUNCTION] = "function",
    [CLUSTER_URL] = "url",
    [CLUSTER_TOPIC] = "topic",
    [CLUSTER_SCHEDULE] = "schedule",
};

int cluster_change_parse(const char *payload, size_t len, cluster_change_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p = payload, *end = payload + len;
    const char *sp = memchr(p, ' ', len);
    if (!sp)
        return -EINVAL;
    size_t klen = (size_t)(sp - p);
    p = sp + 1;
    for (int k = 0; k < CLUSTER_KINDS; k++) {
        if (strlen(kind_names[k]) != klen || memcmp(payload, kind_names[k], klen))
            continue;
        size_t n = word(p, end, CLUSTER_NAME_MAX, true);
        if (!n || p + n != end)
            return -EINVAL;
        out->kind = (cluster_kind_t)k;
        memcpy(out->name, p, n);
        return 0;
    }
    if (klen != 4 || memcmp(payload, "logs", 4))
        return -EINVAL;
    out->kind = CLUSTER_LOGS;
    size_t n = word(p, end, CLUSTER_NODE_ID_MAX, true);
    if (!n || p + n == end)
        return -EINVAL;
    memcpy(out->node, p, n);
    p += n + 1;
    if (!(n = number(p, end, &out->first_id)) || p + n == end)
        return -EINVAL;
    p += n + 1;
    if (!(n = number(p, end, &out->last_id)) || p + n == end || out->last_id < out->first_id)
        return -EINVAL;
    p += n + 1;
    out->functions = p;
    out->functions_len = (size_t)(end - p);
    /* One or more names, a single space between each. */
    for (;;) {
        if (!(n = word(p, end, CLUSTER_NAME_MAX, false)))
            return -EINVAL;
        p += n;
        if (p == end)
            return 0;
        p++;
    }
}

/* ---- batches -------------------------------------------------------------------- */

void cluster_batch_init(cluster_batch_t *b)
{
    memset(b, 0, sizeof *b);
}

void cluster_batch_release(cluster_batch_t *b)
{
    for (int k = 0; k < CLUSTER_KINDS; k++)
        map_release(&b->names[k]);
    map_release(&b->lines_at);
    free(b->lines);
    cluster_batch_init(b);
}

bool cluster_batch_empty(const cluster_batch_t *b)
{
    for (int k = 0; k < CLUSTER_KINDS; k++)
        if (b->names[k].len)
            return false;
    return !b->all && !b->nlines;
}

/* Adds (or widens) the range of function's lines that node wrote. */
static void batch_add_lines(cluster_batch_t *b, const char *function, const char *node,
                            int64_t first_id, int64_t last_id)
{
    char key[CLUSTER_NODE_ID_MAX + CLUSTER_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s %s", node, function);
    uintptr_t at = (uintptr_t)map_get(&b->lines_at, key);
    if (at) {
        cluster_lines_t *l = &b->lines[at - 1];
        if (first_id < l->first_id)
            l->first_id = first_id;
        if (last_id > l->last_id)
            l->last_id = last_id;
        return;
    }
    if (b->nlines == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->lines = xrealloc(b->lines, b->cap * sizeof *b->lines);
    }
    cluster_lines_t *l = &b->lines[b->nlines++];
    map_put(&b->lines_at, key, (void *)(uintptr_t)b->nlines);
    snprintf(l->function, sizeof l->function, "%s", function);
    snprintf(l->node, sizeof l->node, "%s", node);
    l->first_id = first_id;
    l->last_id = last_id;
}

void cluster_batch_add(cluster_batch_t *b, const cluster_change_t *c, const char *self)
{
    if (c->kind != CLUSTER_LOGS) {
        map_put(&b->names[c->kind], c->name, (void *)1);
        return;
    }
    if (self && !strcmp(c->node, self))
        return;
    const char *p = c->functions, *end = c->functions + c->functions_len;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t n = (size_t)((sp ? sp : end) - p);
        char fn[CLUSTER_NAME_MAX + 1];
        snprintf(fn, sizeof fn, "%.*s", (int)n, p);
        batch_add_lines(b, fn, c->node, c->first_id, c->last_id);
        p += n + 1;
    }
}

void cluster_batch_merge(cluster_batch_t *dst, cluster_batch_t *src)
{
    dst->all |= src->all;
    for (int k = 0; k < CLUSTER_KINDS; k++) {
        const char *key;
        void *v;
        for (size_t it = 0; map_next(&src->names[k], &it, &key, &v);)
            map_put(&dst->names[k], key, v);
    }
    for (size_t i = 0; i < src->nlines; i++) {
        const cluster_lines_t *l = &src->lines[i];
        batch_add_lines(dst, l->function, l->node, l->first_id, l->last_id);
    }
    cluster_batch_release(src);
}

unsigned cluster_backoff_ms(unsigned last_ms)
{
    if (last_ms < BACKOFF_FIRST_MS)
        return BACKOFF_FIRST_MS;
    return last_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : last_ms * 2;
}

/* ---- the listening thread -------------------------------------------------------- */

struct cluster_changes {
    uv_async_t *wake;           /* the thread → the loop: a batch is waiting */
    store_listener_t *listener; /* the thread's, after the start */
    char self[CLUSTER_NODE_ID_MAX + 1];
    cluster_changes_cb cb;
    void *ud;
    uv_thread_t thread;
    int stop_fd; /* an eventfd: the loop → the thread: stop */
    uv_mutex_t lock;
    cluster_batch_t pending; /* under lock */
    cluster_batch_t heard;   /* the thread's, while it reads */
};

static void changes__heard(void *ud, const char *payload, size_t len)
{
    cluster_changes_t *c = ud;
    cluster_change_t change;
    if (cluster_change_parse(payload, len, &change) < 0) {
        char shown[96];
        log_warn("cluster", "ignoring a notification mayfly does not send: `%s`",
                 mf_error_show(payload, 80, shown, sizeof shown));
        return;
    }
    cluster_batch_add(&c->heard, &change, c->self);
}

/* Hands what the thread heard to the loop. */
static void changes__hand_over(cluster_changes_t *c)
{
    if (cluster_batch_empty(&c->heard))
        return;
    uv_mutex_lock(&c->lock);
    cluster_batch_merge(&c->pending, &c->heard);
    uv_mutex_unlock(&c->lock);
    uv_async_send(c->wake);
}

/* Waits up to ms (-1: for ever) for fd to be readable or a stop; false
 * once stopping. */
static bool changes__wait(cluster_changes_t *c, int fd, int ms)
{
    struct pollfd fds[2] = {{.fd = c->stop_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int r;
    do
        r = poll(fds, fd >= 0 ? 2 : 1, ms);
    while (r < 0 && errno == EINTR);
    return !(fds[0].revents & POLLIN);
}

static void changes__thread(void *arg)
{
    cluster_changes_t *c = arg;
    pthread_setname_np(pthread_self(), "mayfly-changes");
    unsigned backoff = 0;
    for (;;) {
        mf_error_t err = MF_ERROR_INIT;
        int fd = store_listen_fd(c->listener);
        if (fd < 0) {
            /* Lost: connect again, waiting longer after each failure. */
            backoff = cluster_backoff_ms(backoff);
            if (!changes__wait(c, -1, (int)backoff))
                return;
            if (store_listen_reconnect(c->listener, &err) < 0) {
                log_debug("cluster", "still no connection to hear changes on: %s", err.msg);
                continue;
            }
            backoff = 0;
            /* What changed while it was gone was never heard. */
            log_info("cluster", "hearing other nodes' changes again; reading everything this "
                                "node keeps in memory again");
            c->heard.all = true;
            changes__hand_over(c);
            continue;
        }
        if (!changes__wait(c, fd, -1))
            return;
        if (store_listen_read(c->listener, changes__heard, c, &err) < 0) {
            log_warn("cluster",
                     "lost the connection that hears other nodes' changes (%s); "
                     "connecting again",
                     err.msg);
            backoff = 0;
        }
        changes__hand_over(c);
    }
}

static void changes__on_wake(uv_async_t *h)
{
    cluster_changes_t *c = h->data;
    cluster_batch_t b;
    cluster_batch_init(&b);
    uv_mutex_lock(&c->lock);
    cluster_batch_merge(&b, &c->pending);
    uv_mutex_unlock(&c->lock);
    if (!cluster_batch_empty(&b))
        c->cb(c->ud, &b);
    cluster_batch_release(&b);
}

static void changes__free_handle(uv_handle_t *h)
{
    free(h);
}

int cluster_changes_start(uv_loop_t *loop, store_t *s, const char *self, cluster_changes_cb cb,
                          void *ud, cluster_changes_t **out, mf_error_t *err)
{
    store_listener_t *listener;
    int r = store_listen_open(s, STORE_CHANGES_CHANNEL, CHANGES_APPLICATION_NAME, &listener, err);
    if (r < 0)
        return r;
    cluster_changes_t *c = xcalloc(1, sizeof *c);
    c->listener = listener;
    snprintf(c->self, sizeof c->self, "%s", self);
    c->cb = cb;
    c->ud = ud;
    c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->stop_fd < 0) {
        r = mf_error_set(err, errno, "cluster: eventfd");
        store_listen_close(listener);
        free(c);
        return r;
    }
    uv_mutex_init(&c->lock);
    cluster_batch_init(&c->pending);
    cluster_batch_init(&c->heard);
    /* Whatever changed before the listening began was not heard. */
    c->pending.all = true;
    c->wake = xmalloc(sizeof *c->wake);
    uv_async_init(loop, c->wake, changes__on_wake);
    c->wake->data = c;
    /* Hearing changes does not keep a server's loop alive on its own. */
    uv_unref((uv_handle_t *)c->wake);
    if ((r = uv_thread_create(&c->thread, changes__thread, c)) < 0) {
        r = mf_error_plain(err, -r, "cluster: start the thread that hears changes: %s",
                           uv_strerror(r));
        uv_close((uv_handle_t *)c->wake, changes__free_handle);
        uv_mutex_destroy(&c->lock);
        close(c->stop_fd);
        store_listen_close(listener);
        free(c);
        return r;
    }
    uv_async_send(c->wake);
    *out = c;
    return 0;
}

void cluster_changes_stop(cluster_changes_t *c)
{
    if (!c)
        return;
    uint64_t one = 1;
    if (write(c->stop_fd, &one, sizeof one) < 0)
        log_warn("cluster", "cannot wake the thread that hears changes: %s", strerror(errno));
    uv_thread_join(&c->thread);
    close(c->stop_fd);
    store_listen_close(c->listener);
    uv_close((uv_handle_t *)c->wake, changes__free_handle);
    cluster_batch_release(&c->pending);
    cluster_batch_release(&c->heard);
    uv_mutex_destroy(&c->lock);
    free(c);
}
