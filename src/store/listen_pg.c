/* A PostgreSQL connection that LISTENs (store/listen.h). */
#include "store/listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/postgres_internal.h"

struct store_listener {
    PGconn *conn; /* NULL while lost */
    char *url, *channel, *application_name;
};

static int pg__listen_connect(store_listener_t *l, mf_error_t *err)
{
    PGconn *c;
    int r = store__pg_connect_as(l->url, l->application_name, &c, err);
    if (r < 0)
        return r;
    /* The listener's thread owns this connection and makes it again
     * itself: the store's reconnecting thread must never take it over (it
     * would reset it while this thread reads it, or after it is closed). */
    store_writer_db_t own = {0};
    store__pg_writer_link(c, &own);
    char sql[128];
    snprintf(sql, sizeof sql, "LISTEN %s", l->channel);
    if ((r = store__pg_exec(c, sql, "listen for changes", err)) == 0 && PQsetnonblocking(c, 1) != 0)
        r = store__pg_fail(c, NULL, "listen for changes", err);
    if (r < 0) {
        store__pg_finish(c);
        return r;
    }
    l->conn = c;
    return 0;
}

int store__pg_listen_open(const char *url, const char *channel, const char *application_name,
                          store_listener_t **out, mf_error_t *err)
{
    store_listener_t *l = xcalloc(1, sizeof *l);
    l->url = xstrdup(url);
    l->channel = xstrdup(channel);
    l->application_name = xstrdup(application_name);
    int r = pg__listen_connect(l, err);
    if (r < 0) {
        store_listen_close(l);
        return r;
    }
    *out = l;
    return 0;
}

int store_listen_fd(const store_listener_t *l)
{
    return l->conn ? PQsocket(l->conn) : -1;
}

int store_listen_read(store_listener_t *l, store_notify_cb cb, void *ud, mf_error_t *err)
{
    if (!l->conn)
        return mf_error_plain(err, ECONNRESET, "store: listen for changes: not connected");
    if (!PQconsumeInput(l->conn) || PQstatus(l->conn) == CONNECTION_BAD) {
        /* Whatever libpq's words, for a connection that only listens a
         * failed read is a lost connection. */
        mf_error_t e = MF_ERROR_INIT;
        int r = store__pg_fail(l->conn, NULL, "listen for changes", &e);
        store__pg_finish(l->conn);
        l->conn = NULL;
        if (r == -ECONNRESET) {
            if (err)
                *err = e;
            return r;
        }
        return mf_error_plain(err, ECONNRESET, "%s (the connection is given up)", e.msg);
    }
    PGnotify *n;
    while ((n = PQnotifies(l->conn))) {
        cb(ud, n->extra, strlen(n->extra));
        PQfreemem(n);
    }
    return 0;
}

int store_listen_reconnect(store_listener_t *l, mf_error_t *err)
{
    return l->conn ? 0 : pg__listen_connect(l, err);
}

void store_listen_close(store_listener_t *l)
{
    if (!l)
        return;
    store__pg_finish(l->conn);
    free(l->url);
    free(l->channel);
    free(l->application_name);
    free(l);
}
