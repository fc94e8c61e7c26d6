/* A relay between the store and the tests' PostgreSQL, for what a real
 * outage does to a connection, on cue and without stopping the server
 * the other tests share: every byte passes as it is, until the test
 *
 * - takes it down (pg_proxy_down): every connection through it is closed
 *   and new ones are closed as they come, as when the server stops;
 * - cuts the next COMMIT off (pg_proxy_cut_commit): the COMMIT reaches
 *   the server, which commits, but its answer never reaches the store,
 *   whose connection is closed: the outcome is in doubt, and applied;
 * - drops the next COMMIT (pg_proxy_drop_commit): the connection closes
 *   before the COMMIT reaches the server, which rolls back: in doubt too
 *   for the store, and not applied.
 *
 * It listens on a Unix socket of its own directory, named as libpq looks
 * for one (.s.PGSQL.PORT), and pg_proxy_url gives a URL to it. Included
 * after <cmocka.h>. */
#ifndef MAYFLY_TESTS_PG_PROXY_H
#define MAYFLY_TESTS_PG_PROXY_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "core/xalloc.h"

#define PG_PROXY_PAIRS 64

typedef struct pg_proxy_pair {
    int client, server;
    char tail[16]; /* the client's last bytes, for a COMMIT split between reads */
    size_t tail_len;
} pg_proxy_pair_t;

typedef struct pg_proxy {
    char *dir;    /* its socket's directory */
    char *target; /* the server's socket */
    char *port;
    int listen_fd;
    int wake[2];
    uv_thread_t thread;
    uv_mutex_t lock;
    /* Under lock: */
    bool stop, down, cut_commit, drop_commit;
    int cuts; /* COMMITs cut or dropped so far */
    pg_proxy_pair_t pairs[PG_PROXY_PAIRS];
    int npairs;
} pg_proxy_t;

/* A query parameter of url (host=, port=), or NULL. */
static inline char *pg_proxy_param(const char *url, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strchr(url, '?'); p; p = strchr(p + 1, '&')) {
        if (!strncmp(p + 1, name, n) && p[1 + n] == '=')
            return xstrndup(p + 2 + n, strcspn(p + 2 + n, "&"));
    }
    return NULL;
}

static inline void pg_proxy_close_pair(pg_proxy_t *px, int i)
{
    close(px->pairs[i].client);
    close(px->pairs[i].server);
    px->pairs[i] = px->pairs[--px->npairs];
}

static inline bool pg_proxy_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Whether the simple query "COMMIT" ('Q', length 11, "COMMIT\0") ends
 * in what the pair's client just sent (with its last bytes before). */
static inline bool pg_proxy_saw_commit(pg_proxy_pair_t *p, const char *buf, size_t n)
{
    static const char commit[] = {'Q', 0, 0, 0, 11, 'C', 'O', 'M', 'M', 'I', 'T', 0};
    char scan[sizeof p->tail + 8192];
    size_t len = p->tail_len;
    memcpy(scan, p->tail, len);
    size_t take = n < 8192 ? n : 8192;
    memcpy(scan + len, buf + n - take, take);
    len += take;
    bool seen = memmem(scan, len, commit, sizeof commit) != NULL;
    p->tail_len = len < sizeof p->tail ? len : sizeof p->tail;
    memcpy(p->tail, scan + len - p->tail_len, p->tail_len);
    return seen;
}

static inline int pg_proxy_connect_server(pg_proxy_t *px)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", px->target);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static inline void pg_proxy_run(void *arg)
{
    pg_proxy_t *px = arg;
    char buf[65536];
    for (;;) {
        struct pollfd pfd[2 + 2 * PG_PROXY_PAIRS];
        uv_mutex_lock(&px->lock);
        if (px->stop) {
            while (px->npairs)
                pg_proxy_close_pair(px, 0);
            uv_mutex_unlock(&px->lock);
            return;
        }
        if (px->down)
            while (px->npairs)
                pg_proxy_close_pair(px, 0);
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = px->wake[0], .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = px->listen_fd, .events = POLLIN};
        for (int i = 0; i < px->npairs; i++) {
            pfd[n++] = (struct pollfd){.fd = px->pairs[i].client, .events = POLLIN};
            pfd[n++] = (struct pollfd){.fd = px->pairs[i].server, .events = POLLIN};
        }
        uv_mutex_unlock(&px->lock);
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue;
        uv_mutex_lock(&px->lock);
        if (pfd[0].revents)
            (void)!read(px->wake[0], buf, sizeof buf);
        if (pfd[1].revents & POLLIN) {
            int c = accept4(px->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            int s = c >= 0 && !px->down && px->npairs < PG_PROXY_PAIRS ? pg_proxy_connect_server(px)
                                                                       : -1;
            if (s < 0) {
                if (c >= 0)
                    close(c); /* down: as a server that is not there */
            } else {
                px->pairs[px->npairs++] = (pg_proxy_pair_t){.client = c, .server = s};
            }
        }
        /* The pairs polled, by their fds (a pair closed meanwhile is gone
         * from the array, and its fds with it). */
        for (int k = 2; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            int i = -1;
            for (int m = 0; m < px->npairs && i < 0; m++)
                if (px->pairs[m].client == pfd[k].fd || px->pairs[m].server == pfd[k].fd)
                    i = m;
            if (i < 0)
                continue;
            pg_proxy_pair_t *p = &px->pairs[i];
            bool from_client = p->client == pfd[k].fd;
            ssize_t r = recv(pfd[k].fd, buf, sizeof buf, 0);
            if (r <= 0) {
                pg_proxy_close_pair(px, i);
                continue;
            }
            if (from_client && (px->cut_commit || px->drop_commit) &&
                pg_proxy_saw_commit(p, buf, (size_t)r)) {
                bool cut = px->cut_commit;
                px->cut_commit = px->drop_commit = false;
                px->cuts++;
                if (cut && pg_proxy_send_all(p->server, buf, (size_t)r)) {
                    /* The server's answer (its commit done) is read and
                     * kept from the client. */
                    struct pollfd one = {.fd = p->server, .events = POLLIN};
                    if (poll(&one, 1, 10000) > 0)
                        (void)!recv(p->server, buf, sizeof buf, 0);
                }
                pg_proxy_close_pair(px, i);
                continue;
            }
            if (!pg_proxy_send_all(from_client ? p->server : p->client, buf, (size_t)r))
                pg_proxy_close_pair(px, i);
        }
        uv_mutex_unlock(&px->lock);
    }
}

static inline void pg_proxy_poke(pg_proxy_t *px)
{
    (void)!write(px->wake[1], "x", 1);
}

/* Starts a relay to the server that url (a postgresql:// URL with host=
 * a socket directory) names. */
static inline pg_proxy_t *pg_proxy_start(const char *url)
{
    pg_proxy_t *px = xcalloc(1, sizeof *px);
    char *host = pg_proxy_param(url, "host");
    assert_non_null(host);
    px->port = pg_proxy_param(url, "port");
    if (!px->port)
        px->port = xstrdup("5432");
    px->target = xasprintf("%s/.s.PGSQL.%s", host, px->port);
    free(host);
    const char *tmp = getenv("TMPDIR");
    px->dir = xasprintf("%s/mayfly-pgproxy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(px->dir));
    px->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(px->listen_fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.%s", px->dir, px->port);
    assert_int_equal(bind(px->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(px->listen_fd, 64), 0);
    assert_int_equal(pipe2(px->wake, O_CLOEXEC | O_NONBLOCK), 0);
    uv_mutex_init(&px->lock);
    assert_int_equal(uv_thread_create(&px->thread, pg_proxy_run, px), 0);
    return px;
}

/* url with its host= (the socket directory) the relay's. */
static inline char *pg_proxy_url(const pg_proxy_t *px, const char *url)
{
    const char *h = strstr(url, "host=");
    assert_non_null(h);
    size_t at = (size_t)(h - url) + 5;
    size_t len = strcspn(url + at, "&");
    return xasprintf("%.*s%s%s", (int)at, url, px->dir, url + at + len);
}

static inline void pg_proxy_set(pg_proxy_t *px, bool *flag, bool on)
{
    uv_mutex_lock(&px->lock);
    *flag = on;
    uv_mutex_unlock(&px->lock);
    pg_proxy_poke(px);
}

static inline void pg_proxy_down(pg_proxy_t *px)
{
    pg_proxy_set(px, &px->down, true);
    /* Until the relay has closed what it held. */
    for (;;) {
        uv_mutex_lock(&px->lock);
        int n = px->npairs;
        uv_mutex_unlock(&px->lock);
        if (n == 0)
            return;
        usleep(1000);
    }
}

static inline void pg_proxy_up(pg_proxy_t *px)
{
    pg_proxy_set(px, &px->down, false);
}

static inline void pg_proxy_cut_commit(pg_proxy_t *px)
{
    pg_proxy_set(px, &px->cut_commit, true);
}

static inline void pg_proxy_drop_commit(pg_proxy_t *px)
{
    pg_proxy_set(px, &px->drop_commit, true);
}

static inline int pg_proxy_cuts(pg_proxy_t *px)
{
    uv_mutex_lock(&px->lock);
    int n = px->cuts;
    uv_mutex_unlock(&px->lock);
    return n;
}

static inline void pg_proxy_stop(pg_proxy_t *px)
{
    pg_proxy_set(px, &px->stop, true);
    uv_thread_join(&px->thread);
    close(px->listen_fd);
    close(px->wake[0]);
    close(px->wake[1]);
    uv_mutex_destroy(&px->lock);
    char *sock = xasprintf("%s/.s.PGSQL.%s", px->dir, px->port);
    unlink(sock);
    free(sock);
    rmdir(px->dir);
    free(px->dir);
    free(px->target);
    free(px->port);
    free(px);
}

#endif
