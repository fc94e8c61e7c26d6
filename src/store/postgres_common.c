/* Connecting to PostgreSQL, running statements and reading their rows,
 * and the errors libpq's failures become (store/postgres_internal.h). */
#include "store/postgres_internal.h"

#include <endian.h>
#include <errno.h>
#include <libpq-events.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/cleanup.h"
#include "core/codec.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/pace.h"
#include "core/xalloc.h"
#include "store/health.h"

/* The built-in types' OIDs (PostgreSQL's pg_type.dat; they never change). */
#define PG_BOOLOID 16
#define PG_BYTEAOID 17
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_TEXTOID 25
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701

/* ---- messages ------------------------------------------------------------ */

/* The password a URL carries, in its user info or as ?password=, as it is
 * written there; "" when none. */
static void url_password(const char *url, const char **pw, size_t *len)
{
    *pw = "";
    *len = 0;
    const char *auth = strstr(url, "://");
    if (auth) {
        auth += 3;
        size_t n = strcspn(auth, "/?");
        const char *at = memrchr(auth, '@', n);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            *pw = colon + 1;
            *len = (size_t)(at - colon - 1);
            return;
        }
    }
    const char *q = strchr(url, '?');
    for (const char *p = q; p; p = strchr(p + 1, '&')) {
        if (!strncmp(p + 1, "password=", 9)) {
            *pw = p + 10;
            *len = strcspn(*pw, "&");
            return;
        }
    }
}

/* Copies text into out as one line, with url's password (wherever text
 * repeats it: libpq's complaints about a URL quote it) shown as "***". */
static void pg__mask(const char *url, const char *text, char *out, size_t size)
{
    const char *pw;
    size_t pw_len, j = 0;
    url_password(url, &pw, &pw_len);
    for (size_t i = 0; text[i] && j + 4 < size;) {
        if (pw_len > 0 && !strncmp(text + i, pw, pw_len)) {
            memcpy(out + j, "***", 3);
            j += 3;
            i += pw_len;
            continue;
        }
        char ch = text[i++];
        if (ch == '\n') {
            /* libpq ends its messages with a newline and puts the lines
             * of a longer one on new, indented lines. */
            i += strspn(text + i, " \t");
            if (text[i] && j > 0)
                out[j++] = ' ';
            continue;
        }
        out[j++] = ch == '\t' ? ' ' : ch;
    }
    out[j] = '\0';
}

/* Whether a failure with SQLSTATE state means the server went away: a
 * connection exception (class 08) or an operator's intervention (57P01
 * admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now). */
static bool pg__gone_state(const char *state)
{
    return state && (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3));
}

static void pg__broken(PGconn *c);

int store__pg_fail(PGconn *c, const PGresult *res, const char *what, mf_error_t *err)
{
    char why[400];
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(c) == CONNECTION_BAD || pg__gone_state(state)) {
        const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        pg__mask("", msg ? msg : PQerrorMessage(c), why, sizeof why);
        pg__broken(c);
        return mf_error_plain(err, ECONNRESET,
                              "the store (PostgreSQL) cannot be reached: %s: lost the connection "
                              "to PostgreSQL (%s); retry later",
                              what, why[0] ? why : "no reason given");
    }
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg__mask("", msg ? msg : PQerrorMessage(c), why, sizeof why);
    if (state)
        return mf_error_plain(err, EIO, "store: %s: %s (SQLSTATE %s)", what, why, state);
    return mf_error_plain(err, EIO, "store: %s: %s", what, why[0] ? why : "unknown error");
}

/* Warnings from the server go to the log; notices (say, "relation already
 * exists, skipping") are for people at a prompt, not for a server's log. */
static void pg__notice(void *arg, const PGresult *res)
{
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (severity && !strcmp(severity, "WARNING") && msg)
        log_warn("store", "PostgreSQL: %s", msg);
}

/* ---- connecting ---------------------------------------------------------- */

static void pg__link_attach(PGconn *c);

/* The oldest server with everything the schema and statements use
 * (starts_with, identity columns, ON CONFLICT). */
#define PG_MIN_SERVER 110000

int store__pg_connect(const char *url, PGconn **out, mf_error_t *err)
{
    return store__pg_connect_as(url, NULL, out, err);
}

int store__pg_connect_as(const char *url, const char *application_name, PGconn **out,
                         mf_error_t *err)
{
    char shown[256], why[400];
    pg__mask(url, url, shown, sizeof shown);
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &parse_err);
    if (!opts) {
        pg__mask(url, parse_err ? parse_err : "out of memory", why, sizeof why);
        PQfreemem(parse_err);
        return mf_error_plain(err, EINVAL, "store: `%s` is not a PostgreSQL URL: %s", shown, why);
    }
    PQconninfoFree(opts);
    /* Keywords are taken in order, and the URL's own words (dbname is
     * expanded into them) override the defaults before it: a connect
     * timeout, so that an unreachable host cannot hang a start for
     * minutes, and TCP keepalives and a user timeout, so that a database
     * gone from the network without a word is noticed in seconds rather
     * than when the kernel gives up (docs/cluster.md); unless the URL
     * sets its own. A Unix socket has no use for the TCP ones. */
    static const char *const keys[] = { "connect_timeout",    "keepalives",
                                        "keepalives_idle",    "keepalives_interval",
                                        "keepalives_count",   "tcp_user_timeout",
                                        "dbname",             "fallback_application_name",
                                        NULL };
    const char *values[] = { "10", "1", "10", "5", "3", "30000", url, "mayfly", NULL };
    /* A connection with a name of its own (in pg_stat_activity), which the
     * URL does not override: it comes after dbname. */
    static const char *const named_keys[] = { "connect_timeout",    "keepalives",
                                              "keepalives_idle",    "keepalives_interval",
                                              "keepalives_count",   "tcp_user_timeout",
                                              "dbname",             "application_name",
                                              NULL };
    const char *named_values[] = { "10", "1", "10", "5", "3", "30000", url, application_name,
                                   NULL };
    PGconn *c = application_name ? PQconnectdbParams(named_keys, named_values, 1)
                                 : PQconnectdbParams(keys, values, 1);
    if (!c)
        return mf_error_plain(err, ENOMEM, "store: out of memory connecting to PostgreSQL");
    int r = 0;
    if (PQstatus(c) != CONNECTION_OK) {
        pg__mask(url, PQerrorMessage(c), why, sizeof why);
        r = mf_error_plain(err, ECONNREFUSED, "store: cannot connect to PostgreSQL at `%s`: %s",
                           shown, why);
    } else if (PQserverVersion(c) < PG_MIN_SERVER) {
        r = mf_error_plain(err, ENOTSUP,
                           "store: PostgreSQL at `%s` is version %d; mayfly needs %d or newer",
                           shown, PQserverVersion(c) / 10000, PG_MIN_SERVER / 10000);
    }
    if (r < 0) {
        PQfinish(c);
        return r;
    }
    PQsetNoticeReceiver(c, pg__notice, NULL);
    pg__link_attach(c);
    store__health_back();
    *out = c;
    return 0;
}

/* ---- connections that come back ------------------------------------------ */

/* What a connection keeps so that it can be made again when PostgreSQL
 * goes away (a restart, a failover, a network that failed): the
 * statements prepared on it, to prepare again, and who reconnects it.
 *
 * A writer's connection (store__pg_writer_link) is reconnected by its
 * writer's thread, which owns it (store/writer.h). Any other is used on
 * the event loop (or, for the registry's, by an upload's thread under the
 * registry's lock), and a reconnect must never block the loop: connecting
 * waits for the server, up to seconds when it is unreachable. So such a
 * connection, once lost, is handed to a thread of its own that connects
 * it again with backoff, and until then every call on it fails at once
 * (-ENOTCONN), as do calls while the store is known to be down: a request
 * is answered 503 in microseconds, never made to wait. When the store goes
 * down, the thread takes over the loop's idle connections too, so that
 * they are made again with the others and none is found stale by the
 * first request after the store came back. The loop's user holds lock
 * for each call; the thread takes it only to take the connection over and
 * to give it back, never while it waits on the network.
 *
 * The link hangs on the PGconn as libpq's instance data (libpq-events.h),
 * so that every holder of a PGconn (postgres.c, queue_pg.c, kv_pg.c)
 * gets all this without keeping anything of its own. */

#define PG_SETS 8
/* How long one try to connect again waits for the server (a reset that
 * fails at once, the server down or starting, does not wait). */
#define PG_RECONNECT_WAIT_MS 2000

typedef struct pg_set {
    const store_pg_stmt_t *stmts;
    size_t count;
} pg_set_t;

/* A write sent and not yet answered, and what its answer is for. */
typedef struct pg_deferred {
    void (*take)(void *ctx, const PGresult *res);
    void *ctx;
} pg_deferred_t;

typedef struct pg_link {
    PGconn *conn;
    pg_set_t sets[PG_SETS];
    size_t nsets;
    bool writer;                 /* its writer's thread reconnects it */
    bool broken;                 /* a call found the server gone */
    /* A writer's: the open transaction's id, read before its COMMIT (0:
     * it wrote nothing), and whether a COMMIT was cut off (in_doubt). */
    int64_t xid;
    bool in_doubt;
    /* A writer's batch run without savepoints sends its writes without
     * waiting for each answer (store__pg_defer): whether it may now, and
     * the writes whose answers are still to be read. */
    bool defer;
    pg_deferred_t *deferred;
    size_t n_deferred, cap_deferred;
    /* The loop's: */
    uv_mutex_t lock;
    uv_cond_t cond;
    bool resetting;              /* under lock: its thread has it; calls fail at once */
    bool running, joinable, stop, poked; /* under lock: the thread */
    uv_thread_t thread;
    store__health_watch_t watch;
    struct pg_link *prev, *next; /* the loop's connections (links) */
} pg_link_t;

static uv_once_t links_once = UV_ONCE_INIT;
static uv_mutex_t links_lock;
static pg_link_t *links;

static void links_init(void)
{
    uv_mutex_init(&links_lock);
}

static int pg__event(PGEventId id, void *info, void *pass);

static pg_link_t *pg__link(const PGconn *c)
{
    return c ? PQinstanceData(c, pg__event) : NULL;
}

static void pg__links_add(pg_link_t *l)
{
    uv_once(&links_once, links_init);
    uv_mutex_lock(&links_lock);
    l->prev = NULL;
    l->next = links;
    if (links)
        links->prev = l;
    links = l;
    uv_mutex_unlock(&links_lock);
}

static void pg__links_remove(pg_link_t *l)
{
    uv_once(&links_once, links_init);
    uv_mutex_lock(&links_lock);
    if (l->prev)
        l->prev->next = l->next;
    else if (links == l)
        links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    uv_mutex_unlock(&links_lock);
}

static int pg__event(PGEventId id, void *info, void *pass)
{
    if (id != PGEVT_CONNDESTROY)
        return 1;
    PGconn *c = ((PGEventConnDestroy *)info)->conn;
    pg_link_t *l = PQinstanceData(c, pg__event);
    if (!l)
        return 1;
    /* store__pg_finish stopped its thread. */
    if (!l->writer)
        pg__links_remove(l);
    uv_cond_destroy(&l->cond);
    uv_mutex_destroy(&l->lock);
    free(l->deferred);
    free(l);
    return 1;
}

/* Hangs a new link on c, a loop's connection until a writer claims it. */
static void pg__link_attach(PGconn *c)
{
    pg_link_t *l = xcalloc(1, sizeof *l);
    l->conn = c;
    uv_mutex_init(&l->lock);
    uv_cond_init(&l->cond);
    if (!PQregisterEventProc(c, pg__event, "mayfly", NULL) ||
        !PQsetInstanceData(c, pg__event, l)) {
        /* Only out of memory: the connection works, it just cannot come
         * back on its own. */
        uv_cond_destroy(&l->cond);
        uv_mutex_destroy(&l->lock);
        free(l);
        return;
    }
    pg__links_add(l);
}

static void pg__broken(PGconn *c)
{
    pg_link_t *l = pg__link(c);
    if (l)
        l->broken = true;
}

static void pg__links_take_over(void);

/* Prepares one set of statements on c (an entry without SQL is left out). */
static int pg__prepare_set(PGconn *c, const store_pg_stmt_t *stmts, size_t count,
                           mf_error_t *err);

int store__pg_reconnect(PGconn *c, mf_error_t *err)
{
    pg_link_t *l = pg__link(c);
    char why[400];
    int r = 0;
    /* libpq's own asynchronous reset, polled here with a deadline of ours:
     * the URL's connect_timeout may be far longer, and a writer's jobs
     * wait to be sorted while it tries. */
    if (!PQresetStart(c)) {
        r = -ECONNREFUSED;
    } else {
        uint64_t deadline = clock_mono_ns() + (uint64_t)PG_RECONNECT_WAIT_MS * 1000000u;
        for (;;) {
            PostgresPollingStatusType st = PQresetPoll(c);
            if (st == PGRES_POLLING_OK)
                break;
            if (st == PGRES_POLLING_FAILED) {
                r = -ECONNREFUSED;
                break;
            }
            uint64_t now = clock_mono_ns();
            struct pollfd pfd = { .fd = PQsocket(c),
                                  .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT };
            int n = now < deadline ? poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) : 0;
            if (n == 0) {
                r = -ETIMEDOUT;
                break;
            }
            if (n < 0 && errno != EINTR) {
                r = -errno;
                break;
            }
        }
    }
    if (r < 0) {
        pg__mask("", PQerrorMessage(c), why, sizeof why);
        if (r == -ETIMEDOUT || !why[0])
            snprintf(why, sizeof why, "no answer within %d s", PG_RECONNECT_WAIT_MS / 1000);
        if (store__health_lost(why))
            pg__links_take_over();
        return mf_error_plain(err, -r, "the store (PostgreSQL) cannot be reached: %s; retry later",
                              why);
    }
    PQsetNoticeReceiver(c, pg__notice, NULL);
    for (size_t i = 0; l && i < l->nsets && r == 0; i++)
        r = pg__prepare_set(c, l->sets[i].stmts, l->sets[i].count, err);
    if (r < 0)
        return r;
    if (l)
        l->broken = false;
    store__health_back();
    return 0;
}

/* ---- the loop's connections: their thread, and the gate ------------------ */

static void pg__link_poke(void *ud)
{
    pg_link_t *l = ud;
    uv_mutex_lock(&l->lock);
    l->poked = true;
    uv_cond_signal(&l->cond);
    uv_mutex_unlock(&l->lock);
}

/* A loop's connection's own thread: takes the connection over once its
 * user is done with it (an idle one at once), then connects it again,
 * trying again with backoff, woken early when the store comes back. */
static void pg__link_thread(void *arg)
{
    pg_link_t *l = arg;
    pthread_setname_np(pthread_self(), "mayfly-pglink");
    uint64_t wait_ms = STORE_RETRY_FIRST_MS;
    uv_mutex_lock(&l->lock);
    while (!l->resetting && !l->stop) {
        /* Taken over by the store going down while its user is in a
         * transaction: the user's next call fails (the store is down) and
         * hands it over itself. */
        PGTransactionStatusType t = PQtransactionStatus(l->conn);
        if (t == PQTRANS_IDLE || t == PQTRANS_UNKNOWN) {
            l->resetting = true;
            break;
        }
        uv_cond_timedwait(&l->cond, &l->lock, 50 * 1000000u);
    }
    while (l->resetting && !l->stop) {
        uv_mutex_unlock(&l->lock);
        mf_error_t err = MF_ERROR_INIT;
        int r = store__pg_reconnect(l->conn, &err);
        if (r < 0) {
            l->watch = (store__health_watch_t){ .wake = pg__link_poke, .ud = l };
            store__health_watch(&l->watch);
        }
        uv_mutex_lock(&l->lock);
        if (r == 0) {
            l->resetting = false;
            break;
        }
        uint64_t until = clock_mono_ns() + wait_ms * 1000000u;
        while (!l->poked && !l->stop) {
            uint64_t now = clock_mono_ns();
            if (now >= until)
                break;
            uv_cond_timedwait(&l->cond, &l->lock, until - now);
        }
        l->poked = false;
        uv_mutex_unlock(&l->lock);
        store__health_unwatch(&l->watch);
        uv_mutex_lock(&l->lock);
        wait_ms = wait_ms * 2 > STORE_RETRY_LAST_MS ? STORE_RETRY_LAST_MS : wait_ms * 2;
    }
    l->running = false;
    uv_mutex_unlock(&l->lock);
}

/* Hands l's connection to its thread (starting it if need be), which
 * makes it again. Under l->lock. */
static void pg__link_hand_over(pg_link_t *l, bool now)
{
    if (now)
        l->resetting = true;
    if (l->running) {
        uv_cond_signal(&l->cond);
        return;
    }
    /* A thread that ended said so under the lock we hold: it has let go
     * of everything but its return. */
    if (l->joinable)
        uv_thread_join(&l->thread);
    l->joinable = false;
    if (uv_thread_create(&l->thread, pg__link_thread, l) == 0) {
        l->running = l->joinable = true;
    } else if (now) {
        l->resetting = false; /* no thread: the next call finds it lost again */
    }
}

/* The store went down: the loop's connections are made again with the
 * writers', each once its user leaves it idle. One in use now is passed
 * over rather than waited for (its call may wait on the network): the
 * call, or the next one, finds the store down and hands it over itself. */
static void pg__links_take_over(void)
{
    uv_once(&links_once, links_init);
    uv_mutex_lock(&links_lock);
    for (pg_link_t *l = links; l; l = l->next) {
        if (uv_mutex_trylock(&l->lock) != 0)
            continue;
        if (!l->stop)
            pg__link_hand_over(l, false);
        uv_mutex_unlock(&l->lock);
    }
    uv_mutex_unlock(&links_lock);
}

static int pg__settle(PGconn *c, pg_link_t *l, mf_error_t *err);

/* Before a call on c: 0, with *held the link whose lock the call holds
 * (NULL: a writer's connection, or one without a link), or -ENOTCONN at
 * once while the connection is being made again or the store is down. A
 * writer's deferred writes are answered first (their failure is the
 * call's). */

static int pg__enter(PGconn *c, const char *what, pg_link_t **held, mf_error_t *err)
{
    pg_link_t *l = pg__link(c);
    *held = NULL;
    if (l && l->writer)
        return pg__settle(c, l, err); /* the answers of its writes come first */
    if (!l)
        return 0;
    uv_mutex_lock(&l->lock);
    bool down = store_down_since_ms() != 0;
    if (!l->resetting && !down) {
        *held = l;
        return 0;
    }
    bool resetting = l->resetting;
    if (!l->resetting)
        pg__link_hand_over(l, true);
    uv_mutex_unlock(&l->lock);
    /* The health's lock is taken after the link's is let go. */
    if (store_check_up(err) < 0)
        return -ENOTCONN;
    return mf_error_plain(err, ENOTCONN,
                          "the store (PostgreSQL) cannot be reached: %s: %s; retry later", what,
                          resetting ? "reconnecting after the connection was lost"
                                    : "the store is reconnecting");
}

/* After a call that pg__enter let through: a connection found lost goes
 * to its thread, and the store may have gone down meanwhile. */
static void pg__leave(pg_link_t *l)
{
    if (!l)
        return;
    bool lost = PQstatus(l->conn) == CONNECTION_BAD || l->broken;
    if (lost)
        pg__link_hand_over(l, true);
    uv_mutex_unlock(&l->lock);
}

void store__pg_finish(PGconn *c)
{
    pg_link_t *l = pg__link(c);
    if (l && !l->writer) {
        uv_mutex_lock(&l->lock);
        l->stop = true;
        uv_cond_signal(&l->cond);
        bool joinable = l->joinable;
        l->joinable = false;
        uv_mutex_unlock(&l->lock);
        if (joinable)
            uv_thread_join(&l->thread);
        store__health_unwatch(&l->watch);
    }
    PQfinish(c);
}

/* ---- a writer's connection ------------------------------------------------ */

static bool pg__w_lost(void *link, bool *in_doubt)
{
    PGconn *c = link;
    pg_link_t *l = pg__link(c);
    *in_doubt = l && l->in_doubt;
    return PQstatus(c) == CONNECTION_BAD || (l && l->broken);
}

static int pg__w_reconnect(void *link, mf_error_t *err)
{
    return store__pg_reconnect(link, err);
}

/* What became of the transaction whose COMMIT was cut off, by its id
 * (txid_status, which PostgreSQL keeps for this very case). */
static int pg__w_committed(void *link, mf_error_t *err)
{
    PGconn *c = link;
    pg_link_t *l = pg__link(c);
    if (!l || !l->in_doubt)
        return 0;
    char xid[24];
    snprintf(xid, sizeof xid, "%lld", (long long)l->xid);
    const char *values[] = { xid };
    PGresult *res = PQexecParams(c, "SELECT txid_status($1::bigint)", 1, NULL, values, NULL,
                                 NULL, 0);
    int r;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *st = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
        r = !st ? mf_error_plain(err, ENODATA, "PostgreSQL no longer knows transaction %s", xid)
            : !strcmp(st, "committed") ? 1
            : !strcmp(st, "aborted")   ? 0
                                       : -EAGAIN; /* in progress: its session still ends */
    } else if (state && !strcmp(state, "22023")) {
        /* "in the future": the server crashed before the transaction's
         * start reached its log, so nothing of it is left. */
        r = 0;
    } else {
        r = store__pg_fail(c, res, "ask whether a cut-off commit was applied", err);
        if (PQstatus(c) == CONNECTION_BAD || l->broken)
            r = -EAGAIN; /* lost again: ask on the next connection */
    }
    PQclear(res);
    if (r != -EAGAIN)
        l->in_doubt = false;
    return r;
}

static void pg__w_rollback(void *link)
{
    store__pg_rollback(link);
}

static int pg__w_defer(void *link, bool on, mf_error_t *err)
{
    PGconn *c = link;
    pg_link_t *l = pg__link(c);
    if (!l)
        return 0;
    l->defer = on;
    return on ? 0 : pg__settle(c, l, err);
}

/* A savepoint and its release are two round trips a job: a batch runs
 * without them unless one of its jobs fails (store/writer.h). */
static const store_writer_link_t pg__writer_link_ops = {
    .lost = pg__w_lost,
    .reconnect = pg__w_reconnect,
    .committed = pg__w_committed,
    .rollback = pg__w_rollback,
    .defer = pg__w_defer,
};

void store__pg_writer_link(PGconn *c, store_writer_db_t *out)
{
    pg_link_t *l = pg__link(c);
    if (!l)
        return;
    if (!l->writer) {
        /* Out of the loop's: no thread of its own may take it over from
         * here on (one started meanwhile, the store going down as the
         * writer opened, is stopped first). */
        pg__links_remove(l);
        uv_mutex_lock(&l->lock);
        l->stop = true;
        uv_cond_signal(&l->cond);
        bool joinable = l->joinable;
        l->joinable = l->resetting = false;
        uv_mutex_unlock(&l->lock);
        if (joinable)
            uv_thread_join(&l->thread);
        store__health_unwatch(&l->watch);
        l->writer = true;
    }
    out->link = c;
    out->link_ops = &pg__writer_link_ops;
}

/* ---- statements ---------------------------------------------------------- */

static bool pg__ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static int pg__exec(PGconn *c, const char *sql, const char *what, mf_error_t *err)
{
    PGresult *res = PQexec(c, sql);
    int r = pg__ok(res) ? 0 : store__pg_fail(c, res, what, err);
    PQclear(res);
    return r;
}

int store__pg_exec(PGconn *c, const char *sql, const char *what, mf_error_t *err)
{
    pg_link_t *held;
    int r = pg__enter(c, what, &held, err);
    if (r < 0)
        return r;
    r = pg__exec(c, sql, what, err);
    pg__leave(held);
    return r;
}

int store__pg_prepare(PGconn *c, const store_pg_stmt_t *stmts, size_t count, mf_error_t *err)
{
    pg_link_t *l = pg__link(c);
    bool known = false;
    for (size_t i = 0; l && i < l->nsets; i++)
        known |= l->sets[i].stmts == stmts;
    if (l && !known && l->nsets < PG_SETS)
        l->sets[l->nsets++] = (pg_set_t){ stmts, count };
    return pg__prepare_set(c, stmts, count, err);
}

static int pg__prepare_set(PGconn *c, const store_pg_stmt_t *stmts, size_t count,
                           mf_error_t *err)
{
    for (size_t i = 0; i < count; i++) {
        const store_pg_stmt_t *st = &stmts[i];
        if (!st->sql)
            continue;
        if (!st->types) {
            int r = pg__exec(c, st->sql, "set up a session", err);
            if (r < 0)
                return r;
            continue;
        }
        Oid types[STORE_PG_MAX_PARAMS];
        int n = 0;
        for (const char *t = st->types; *t && n < STORE_PG_MAX_PARAMS; t++)
            types[n++] = *t == 'i' ? PG_INT8OID
                         : *t == 'd' ? PG_FLOAT8OID
                         : *t == 'b' ? PG_BYTEAOID
                                     : PG_TEXTOID;
        PGresult *res = PQprepare(c, st->name, st->sql, n, types);
        int r = 0;
        if (!pg__ok(res)) {
            char what[96];
            snprintf(what, sizeof what, "prepare the statement %s", st->name);
            r = store__pg_fail(c, res, what, err);
        }
        PQclear(res);
        if (r < 0)
            return r;
    }
    return 0;
}

int store__pg_run(PGconn *c, const char *stmt, const store_pg_params_t *p, PGresult **out,
                  const char *what, mf_error_t *err)
{
    *out = NULL;
    if (p && p->too_big)
        return mf_error_plain(err, EFBIG, "store: %s: a value too large to send to PostgreSQL",
                              what);
    pg_link_t *held;
    int r = pg__enter(c, what, &held, err);
    if (r < 0)
        return r;
    PGresult *res = PQexecPrepared(c, stmt, p ? p->n : 0, p ? p->values : NULL,
                                   p ? p->lengths : NULL, p ? p->formats : NULL, 1);
    if (!pg__ok(res)) {
        r = store__pg_fail(c, res, what, err);
        PQclear(res);
    } else {
        *out = res;
    }
    pg__leave(held);
    return r;
}

/* How many statements go out before their answers are read: bounded so
 * that the answers waiting in the socket stay small. */
#define PG_PIPELINE_DEPTH 256

/* Reads the answers of n statements sent in a pipeline and its sync
 * point: 0, or the first failure's error. Every answer is read, so the
 * connection leaves pipeline mode clean, unless it is lost. */
static int pg__pipeline_read(PGconn *c, size_t first, size_t n,
                             void (*take)(void *ctx, size_t i, const PGresult *res), void *ctx,
                             const char *what, mf_error_t *err)
{
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        PGresult *res = PQgetResult(c);
        if (!res) /* the connection is gone: nothing more comes */
            return r < 0 ? r : store__pg_fail(c, NULL, what, err);
        ExecStatusType st = PQresultStatus(res);
        if (r == 0 && pg__ok(res)) {
            if (take)
                take(ctx, first + i, res);
        } else if (r == 0 && st != PGRES_PIPELINE_ABORTED) {
            r = store__pg_fail(c, res, what, err);
        }
        PQclear(res);
        /* Each statement's answer ends with a NULL. */
        while ((res = PQgetResult(c)))
            PQclear(res);
        if (PQstatus(c) == CONNECTION_BAD)
            return r < 0 ? r : store__pg_fail(c, NULL, what, err);
    }
    PGresult *res = PQgetResult(c);
    bool synced = res && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    PQclear(res);
    if (!synced && r == 0)
        r = store__pg_fail(c, NULL, what, err);
    return r;
}

int store__pg_run_each(PGconn *c, const char *stmt, size_t count,
                       void (*bind)(void *ctx, size_t i, const store__binder_t *b),
                       void (*take)(void *ctx, size_t i, const PGresult *res), void *ctx,
                       const char *what, mf_error_t *err)
{
    if (count == 0)
        return 0;
    pg_link_t *held;
    int r = pg__enter(c, what, &held, err);
    if (r < 0)
        return r;
    if (!PQenterPipelineMode(c))
        r = store__pg_fail(c, NULL, what, err);
    for (size_t done = 0; r == 0 && done < count;) {
        size_t n = count - done < PG_PIPELINE_DEPTH ? count - done : PG_PIPELINE_DEPTH;
        size_t sent = 0;
        for (; sent < n && r == 0; sent++) {
            store_pg_params_t p = { 0 };
            store__binder_t b = store__pg_binder(&p);
            bind(ctx, done + sent, &b);
            if (p.too_big)
                r = mf_error_plain(err, EFBIG,
                                   "store: %s: a value too large to send to PostgreSQL", what);
            else if (!PQsendQueryPrepared(c, stmt, p.n, p.values, p.lengths, p.formats, 1))
                r = store__pg_fail(c, NULL, what, err);
            if (r < 0)
                break;
        }
        /* What was sent is answered (or the connection is gone) before
         * the pipeline ends. */
        if (sent && PQstatus(c) != CONNECTION_BAD) {
            int s = PQpipelineSync(c) ? pg__pipeline_read(c, done, sent, take, ctx, what,
                                                          r < 0 ? &(mf_error_t){ 0 } : err)
                                      : store__pg_fail(c, NULL, what, err);
            if (r == 0)
                r = s;
        }
        done += n;
    }
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF && !PQexitPipelineMode(c) && r == 0)
        r = store__pg_fail(c, NULL, what, err);
    pg__leave(held);
    return r;
}

/* ---- many rows a COPY --------------------------------------------------- */

/* The COPY's data in text format: rows of tab-separated columns, NULL as
 * \N, backslash, tab, newline and carriage return escaped. Sent in
 * pieces of about PG_COPY_PIECE bytes. */
#define PG_COPY_PIECE ((size_t)256 << 10)

typedef struct pg_copy {
    PGconn *c;
    buf_t data;
    int next;     /* the column bound next, from 1 */
    bool lost;    /* a piece could not be sent */
} pg_copy_t;

/* Column i of the row, after the ones before it: a binder that skips or
 * repeats one is a bug in this program (as slot's parameter out of
 * range), not something a request can cause. */
static buf_t *copy_col(pg_copy_t *cp, int i)
{
    if (i != cp->next) {
        log_error("store", "column %d of a PostgreSQL COPY bound where %d was due", i, cp->next);
        abort();
    }
    if (i > 1)
        buf_addch(&cp->data, '\t');
    cp->next = i + 1;
    return &cp->data;
}

static int copy_int64(void *ctx, int i, int64_t v)
{
    buf_add_int(copy_col(ctx, i), (long long)v);
    return 0;
}

static int copy_real(void *ctx, int i, double v)
{
    buf_t *b = copy_col(ctx, i);
    if (isnan(v))
        buf_adds(b, "NaN");
    else if (isinf(v))
        buf_adds(b, v < 0 ? "-Infinity" : "Infinity");
    else
        buf_addf(b, "%.17g", v); /* enough digits to read back the same double */
    return 0;
}

static int copy_text(void *ctx, int i, const char *v)
{
    buf_t *b = copy_col(ctx, i);
    if (!v) {
        buf_add(b, "\\N", 2);
        return 0;
    }
    const char *run = v;
    for (const char *p = v;; p++) {
        char e = *p == '\\' ? '\\' : *p == '\t' ? 't' : *p == '\n' ? 'n' : *p == '\r' ? 'r' : 0;
        if (!e && *p)
            continue;
        buf_add(b, run, (size_t)(p - run));
        if (!*p)
            break;
        buf_addch(b, '\\');
        buf_addch(b, e);
        run = p + 1;
    }
    return 0;
}

/* Bytes as bytea's hex input, its backslash escaped ("\\x…"). */
static int copy_blob(void *ctx, int i, const void *v, size_t len)
{
    buf_t *b = copy_col(ctx, i);
    if (!v) {
        buf_add(b, "\\N", 2);
        return 0;
    }
    buf_add(b, "\\\\x", 3);
    buf_grow(b, 2 * len + 1);
    codec_hex(b->data + b->len, v, len);
    b->len += 2 * len;
    return 0;
}

/* What is gathered, in pieces libpq's int length can say (a row is far
 * smaller: its payloads and lines are bounded before they get here). */
static void copy_flush(pg_copy_t *cp)
{
    for (size_t at = 0; at < cp->data.len && !cp->lost;) {
        size_t n = cp->data.len - at < PG_COPY_PIECE ? cp->data.len - at : PG_COPY_PIECE;
        if (PQputCopyData(cp->c, cp->data.data + at, (int)n) != 1)
            cp->lost = true;
        at += n;
    }
    buf_reset(&cp->data);
}

int store__pg_copy_rows(PGconn *c, const char *copy_sql, size_t count,
                        void (*bind)(void *ctx, size_t i, const store__binder_t *b), void *ctx,
                        const char *what, mf_error_t *err)
{
    if (count == 0)
        return 0;
    pg_link_t *held;
    int r = pg__enter(c, what, &held, err);
    if (r < 0)
        return r;
    PGresult *res = PQexec(c, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        r = store__pg_fail(c, res, what, err);
        PQclear(res);
        pg__leave(held);
        return r;
    }
    PQclear(res);
    pg_copy_t cp = { .c = c };
    buf_init(&cp.data, PG_COPY_PIECE + 4096);
    store__binder_t b = { .ctx = &cp, .int64 = copy_int64, .real = copy_real, .text = copy_text,
                          .blob = copy_blob };
    for (size_t i = 0; i < count && !cp.lost; i++) {
        cp.next = 1;
        bind(ctx, i, &b);
        buf_addch(&cp.data, '\n');
        pace_point();
        if (cp.data.len >= PG_COPY_PIECE)
            copy_flush(&cp);
    }
    copy_flush(&cp);
    buf_release(&cp.data);
    if (PQputCopyEnd(c, NULL) != 1)
        cp.lost = true;
    while ((res = PQgetResult(c))) {
        /* Still copying: the end could not be sent (the connection is
         * gone), and nothing more will come. */
        bool stuck = PQresultStatus(res) == PGRES_COPY_IN;
        if (r == 0 && !pg__ok(res))
            r = store__pg_fail(c, stuck ? NULL : res, what, err);
        PQclear(res);
        if (stuck)
            break;
    }
    if (r == 0 && cp.lost)
        r = store__pg_fail(c, NULL, what, err);
    pg__leave(held);
    return r;
}

static void pg__deferred_take(void *ctx, size_t i, const PGresult *res)
{
    pg_link_t *l = ctx;
    if (l->deferred[i].take)
        l->deferred[i].take(l->deferred[i].ctx, res);
}

/* Reads the answers of l's deferred writes (none: 0 at once) and leaves
 * pipeline mode: the first failure, if any. */
static int pg__settle(PGconn *c, pg_link_t *l, mf_error_t *err)
{
    if (!l->n_deferred)
        return 0;
    size_t n = l->n_deferred;
    l->n_deferred = 0;
    const char *what = "write a batch";
    int r = PQstatus(c) == CONNECTION_BAD ? store__pg_fail(c, NULL, what, err)
            : PQpipelineSync(c)          ? pg__pipeline_read(c, 0, n, pg__deferred_take, l, what,
                                                             err)
                                         : store__pg_fail(c, NULL, what, err);
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF && !PQexitPipelineMode(c) && r == 0)
        r = store__pg_fail(c, NULL, what, err);
    return r;
}

int store__pg_defer(PGconn *c, const char *stmt, const store_pg_params_t *p,
                    void (*take)(void *ctx, const PGresult *res), void *ctx, const char *what,
                    mf_error_t *err)
{
    pg_link_t *l = pg__link(c);
    if (!l || !l->writer || !l->defer || (p && p->too_big)) {
        PGresult *res;
        int r = store__pg_run(c, stmt, p, &res, what, err);
        if (r == 0 && take)
            take(ctx, res);
        PQclear(res);
        return r;
    }
    if (l->n_deferred >= PG_PIPELINE_DEPTH) {
        int r = pg__settle(c, l, err);
        if (r < 0)
            return r;
    }
    if (!l->n_deferred && !PQenterPipelineMode(c))
        return store__pg_fail(c, NULL, what, err);
    if (!PQsendQueryPrepared(c, stmt, p ? p->n : 0, p ? p->values : NULL, p ? p->lengths : NULL,
                             p ? p->formats : NULL, 1)) {
        int r = store__pg_fail(c, NULL, what, err);
        mf_error_t ignored = MF_ERROR_INIT;
        pg__settle(c, l, &ignored);
        return r;
    }
    if (l->n_deferred == l->cap_deferred) {
        l->cap_deferred = l->cap_deferred ? l->cap_deferred * 2 : 64;
        l->deferred = xrealloc(l->deferred, l->cap_deferred * sizeof *l->deferred);
    }
    l->deferred[l->n_deferred++] = (pg_deferred_t){ take, ctx };
    return 0;
}

int store__pg_run_keyed(PGconn *c, const char *stmt, const char *key, int64_t *changed,
                        const char *what, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, key);
    PGresult *res;
    int r = store__pg_run(c, stmt, &p, &res, what, err);
    if (r < 0)
        return r;
    if (changed)
        *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

/* ---- parameters ---------------------------------------------------------- */

/* A parameter's place in p: a number past them is a bug in a statement's
 * table, not something a request can cause. */
static int slot(int i)
{
    if (i < 1 || i > STORE_PG_MAX_PARAMS) {
        log_error("store", "parameter $%d of a PostgreSQL statement is out of range", i);
        abort();
    }
    return i - 1;
}

static int param(store_pg_params_t *p, int i, const char *v, size_t len)
{
    int k = slot(i);
    if (len > INT_MAX) {
        p->too_big = true;
        len = 0;
    }
    if (i > p->n)
        p->n = i;
    p->values[k] = v;
    p->lengths[k] = (int)len;
    p->formats[k] = 1;
    return 0;
}

/* Numbers in binary are 8 bytes in network byte order, kept in the params
 * themselves so that they live as long as the values pointing at them. */
static int param_u64(store_pg_params_t *p, int i, uint64_t v)
{
    int k = slot(i);
    p->numbers[k] = htobe64(v);
    return param(p, i, (const char *)&p->numbers[k], 8);
}

static int bind_int64(void *ctx, int i, int64_t v)
{
    return param_u64(ctx, i, (uint64_t)v);
}

static int bind_real(void *ctx, int i, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return param_u64(ctx, i, bits);
}

static int bind_text(void *ctx, int i, const char *v)
{
    return param(ctx, i, v, v ? strlen(v) : 0);
}

static int bind_blob(void *ctx, int i, const void *v, size_t len)
{
    return param(ctx, i, v, v ? len : 0);
}

store__binder_t store__pg_binder(store_pg_params_t *p)
{
    return (store__binder_t){ .ctx = p,
                              .int64 = bind_int64,
                              .real = bind_real,
                              .text = bind_text,
                              .blob = bind_blob };
}

/* ---- rows ---------------------------------------------------------------- */

static uint64_t be_bytes(const unsigned char *v, int len)
{
    uint64_t x = 0;
    for (int i = 0; i < len; i++)
        x = x << 8 | v[i];
    return x;
}

int64_t store__pg_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case PG_INT8OID: return (int64_t)be_bytes(v, 8);
    case PG_INT4OID: return (int32_t)(uint32_t)be_bytes(v, 4);
    case PG_INT2OID: return (int16_t)(uint16_t)be_bytes(v, 2);
    case PG_BOOLOID: return v[0] != 0;
    default: return 0;
    }
}

static double pg__real(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case PG_FLOAT8OID: {
        uint64_t bits = be_bytes(v, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    case PG_FLOAT4OID: {
        uint32_t bits = (uint32_t)be_bytes(v, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    default: return (double)store__pg_int(res, row, col);
    }
}

static int64_t row_int64(void *ctx, int col)
{
    store_pg_row_t *at = ctx;
    return store__pg_int(at->res, at->row, col);
}

static double row_real(void *ctx, int col)
{
    store_pg_row_t *at = ctx;
    return pg__real(at->res, at->row, col);
}

/* Text and bytea in binary are their bytes; libpq ends every value with a
 * NUL of its own. */
static void row_copy_text(void *ctx, int col, char *dst, size_t size)
{
    store_pg_row_t *at = ctx;
    snprintf(dst, size, "%.*s", PQgetlength(at->res, at->row, col),
             PQgetvalue(at->res, at->row, col));
}

static char *row_dup_text(void *ctx, int col)
{
    store_pg_row_t *at = ctx;
    if (PQgetisnull(at->res, at->row, col))
        return NULL;
    return xstrndup(PQgetvalue(at->res, at->row, col),
                    (size_t)PQgetlength(at->res, at->row, col));
}

static void *row_dup_blob(void *ctx, int col, size_t *len)
{
    store_pg_row_t *at = ctx;
    *len = 0;
    if (PQgetisnull(at->res, at->row, col))
        return NULL;
    size_t n = (size_t)PQgetlength(at->res, at->row, col);
    char *out = xmalloc(n + 1);
    memcpy(out, PQgetvalue(at->res, at->row, col), n);
    out[n] = '\0';
    *len = n;
    return out;
}

store__row_t store__pg_row(store_pg_row_t *at)
{
    return (store__row_t){ .ctx = at,
                           .int64 = row_int64,
                           .real = row_real,
                           .copy_text = row_copy_text,
                           .dup_text = row_dup_text,
                           .dup_blob = row_dup_blob };
}

void store__pg_rows(const PGresult *res, size_t size, store__fill_fn fill, void **out,
                    size_t *count)
{
    int n = PQntuples(res);
    char *list = n > 0 ? xcalloc((size_t)n, size) : NULL;
    store_pg_row_t at = { res, 0 };
    store__row_t row = store__pg_row(&at);
    for (at.row = 0; at.row < n; at.row++)
        fill(&row, list + (size_t)at.row * size);
    *out = list;
    *count = (size_t)n;
}

/* ---- transactions -------------------------------------------------------- */

int store__pg_begin(PGconn *c, bool durable, mf_error_t *err)
{
    const char *what = "begin a transaction";
    pg_link_t *held;
    int r = pg__enter(c, what, &held, err);
    if (r < 0)
        return r;
    /* PostgreSQL only warns of a BEGIN inside a transaction, and goes on
     * in the one that is open: said here as the error it is. */
    if (PQtransactionStatus(c) != PQTRANS_IDLE && PQstatus(c) == CONNECTION_OK)
        r = mf_error_plain(err, EBUSY,
                           "store: begin a transaction: one is already open on this "
                           "connection");
    else
        r = pg__exec(c, durable ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit = off", what,
                     err);
    pg__leave(held);
    return r;
}

int store__pg_savepoint(PGconn *c, mf_error_t *err)
{
    return store__pg_exec(c, "SAVEPOINT job", "start a job's savepoint", err);
}

void store__pg_release(PGconn *c, bool keep)
{
    mf_error_t ignored = MF_ERROR_INIT;
    store__pg_exec(c,
                   keep ? "RELEASE SAVEPOINT job"
                        : "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job",
                   "end a job's savepoint", &ignored);
}

static void pg__rollback(PGconn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(PQexec(c, "ROLLBACK"));
}

/* A writer's transaction's id, read before its COMMIT so that a COMMIT
 * cut off can be asked about (pg__w_committed): 0 when it has none, as
 * it wrote nothing. A failure here is before the COMMIT: nothing is in
 * doubt. */
static int pg__read_xid(PGconn *c, pg_link_t *l, mf_error_t *err)
{
    l->xid = 0;
    if (PQtransactionStatus(c) != PQTRANS_INTRANS)
        return 0;
    PGresult *res = PQexec(c, "SELECT txid_current_if_assigned()");
    int r = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        l->xid = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        r = store__pg_fail(c, res, "commit", err);
    PQclear(res);
    return r;
}

static int pg__commit(PGconn *c, mf_error_t *err)
{
    pg_link_t *l = pg__link(c);
    bool writer = l && l->writer;
    if (writer) {
        l->in_doubt = false;
        int r = pg__read_xid(c, l, err);
        if (r < 0) {
            pg__rollback(c);
            return r;
        }
    }
    if (PQtransactionStatus(c) == PQTRANS_INERROR) {
        pg__rollback(c);
        return mf_error_plain(err, EIO,
                              "store: commit: a statement of the transaction failed, so it was "
                              "rolled back");
    }
    bool sent = PQstatus(c) == CONNECTION_OK;
    PGresult *res = PQexec(c, "COMMIT");
    int r = 0;
    if (!pg__ok(res)) {
        r = store__pg_fail(c, res, "commit", err);
        /* Lost with the COMMIT on its way: it may have been applied. */
        if (writer && sent && l->xid && (PQstatus(c) == CONNECTION_BAD || l->broken))
            l->in_doubt = true;
    } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* COMMIT of a transaction that failed answers ROLLBACK, no error. */
        r = mf_error_plain(err, EIO, "store: commit: PostgreSQL rolled the transaction back");
    }
    PQclear(res);
    if (r < 0)
        pg__rollback(c);
    return r;
}

int store__pg_commit(PGconn *c, mf_error_t *err)
{
    pg_link_t *held;
    int r = pg__enter(c, "commit", &held, err);
    if (r < 0)
        return r;
    r = pg__commit(c, err);
    pg__leave(held);
    return r;
}

void store__pg_rollback(PGconn *c)
{
    pg_link_t *held;
    mf_error_t ignored = MF_ERROR_INIT;
    pg_link_t *l = pg__link(c);
    if (l && l->writer)
        pg__settle(c, l, &ignored); /* the transaction is undone whatever they said */
    if (pg__enter(c, "roll back", &held, &ignored) < 0)
        return; /* the connection is being made again: nothing is left open */
    pg__rollback(c);
    pg__leave(held);
}
