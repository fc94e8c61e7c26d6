/* The store's test fixture for both backends (test_store_shared.c,
 * test_store_pg.c, and the queue's: test_queue.c, test_schedule_store.c,
 * test_topics_store.c, test_durable.c, test_queue_pg.c): a fresh SQLite
 * directory or a fresh PostgreSQL database per test, as a cmocka
 * setup/teardown pair whose *state is a backend_t, and a group of tests
 * run once on each. PostgreSQL's server is the one MAYFLY_TEST_PG names
 * (`make unit` starts a throwaway one with tests/pg.sh). */
#ifndef MAYFLY_TESTS_STORE_BACKENDS_H
#define MAYFLY_TESTS_STORE_BACKENDS_H

/* Included after <cmocka.h>, whose asserts it uses. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "tmpdir.h"

#include "core/cleanup.h"
#include "core/xalloc.h"
#include "store/queue.h"
#include "store/store.h"
#include "store/writer.h"

/* ---- the two backends ---------------------------------------------------- */

typedef struct backend {
    bool pg;
    char *where;  /* what store_open takes */
    char *dir;    /* SQLite: the data directory */
    char *dbname; /* PostgreSQL: the test's own database */
} backend_t;

/* The server's URL (its maintenance database), when there is one. */
static const char *pg_admin_url;

/* Whether the PostgreSQL tests can run: MAYFLY_TEST_PG is set. `make unit`
 * always sets it; a bare run of a test binary says what it left out
 * rather than passing in silence. */
static inline bool pg_available(void)
{
    pg_admin_url = getenv("MAYFLY_TEST_PG");
    if (pg_admin_url && *pg_admin_url)
        return true;
    printf("[  SKIPPED ] the store on PostgreSQL: MAYFLY_TEST_PG is not set "
           "(a postgresql:// URL; tests/pg.sh start DIR prints one)\n");
    return false;
}

static inline void quiet(void *arg, const char *msg)
{
}

static inline PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect to %s: %s", url, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static inline void pg_exec(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

static inline long long pg_int(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    long long v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* Ends every other connection to c's database, and waits until they are
 * gone. It asserts nothing, so that a writer's job may call it on the
 * writer's thread: a failure shows in what the test sees next. */
static inline void pg_kill_connections(PGconn *c)
{
    PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()"));
    for (;;) {
        PGresult *res = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE"
                                  " datname = current_database() AND pid <> pg_backend_pid()");
        bool gone = PQresultStatus(res) == PGRES_TUPLES_OK && atoll(PQgetvalue(res, 0, 0)) == 0;
        PQclear(res);
        if (gone || PQstatus(c) != CONNECTION_OK)
            return;
        usleep(10000);
    }
}

/* How many of the locks that connections to c's database ask for they
 * wait for (any kind: an advisory lock, a row another transaction
 * changed), after a moment's pause; callers poll it while they check
 * that what should wait has not finished instead. */
static inline long long pg_lock_waiters(PGconn *c)
{
    usleep(10000);
    return pg_int(c, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                     " WHERE NOT l.granted AND a.datname = current_database()");
}

/* What sql (one integer) answers in b's PostgreSQL database, read on a
 * connection of the test's own. */
static inline long long pg_db_int(const backend_t *b, const char *sql)
{
    PGconn *c = pg_connect(b->where);
    long long v = pg_int(c, sql);
    PQfinish(c);
    return v;
}

/* How many code packages of digest sha b's PostgreSQL database keeps. */
static inline long long pg_kept_packages(const backend_t *b, const char *sha)
{
    cleanup_free char *sql =
        xasprintf("SELECT count(*) FROM code_packages WHERE sha256 = '%s'", sha);
    return pg_db_int(b, sql);
}

/* The admin URL with another database: postgresql://AUTH/DB?QUERY. */
static inline char *url_with_db(const char *url, const char *db)
{
    const char *auth = strstr(url, "://");
    assert_non_null(auth);
    auth += 3;
    size_t head = (size_t)(auth - url) + strcspn(auth, "/?");
    const char *query = strchr(url + head, '?');
    return xasprintf("%.*s/%s%s", (int)head, url, db, query ? query : "");
}

static inline int setup_sqlite(void **state)
{
    void *dir = NULL;
    if (setup_dir(&dir) < 0)
        return -1;
    backend_t *b = xcalloc(1, sizeof *b);
    b->dir = dir;
    b->where = xstrdup(dir);
    *state = b;
    return 0;
}

/* A database of its own for each test, so that no test sees another's
 * rows or schema; its locale sorts text as people do (ICU's English), so
 * that the store's byte order is seen to hold whatever the database's. */
static inline int setup_pg(void **state)
{
    static int n;
    backend_t *b = xcalloc(1, sizeof *b);
    b->pg = true;
    b->dbname = xasprintf("mayfly_test_%ld_%d", (long)getpid(), ++n);
    PGconn *c = pg_connect(pg_admin_url);
    cleanup_free char *sql = xasprintf(
        "CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'", b->dbname);
    pg_exec(c, sql);
    PQfinish(c);
    b->where = url_with_db(pg_admin_url, b->dbname);
    *state = b;
    return 0;
}

static inline int teardown(void **state)
{
    backend_t *b = *state;
    if (b->pg) {
        PGconn *c = pg_connect(pg_admin_url);
        cleanup_free char *sql = xasprintf("DROP DATABASE %s WITH (FORCE)", b->dbname);
        pg_exec(c, sql);
        PQfinish(c);
    } else {
        void *dir = b->dir;
        teardown_dir(&dir);
    }
    free(b->where);
    free(b->dbname);
    free(b);
    return 0;
}

static inline store_t *open_store(const backend_t *b)
{
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = NULL;
    if (store_open(b->where, &s, &err) < 0)
        fail_msg("store_open: %s", err.msg);
    assert_string_equal(store_backend_name(s), b->pg ? "PostgreSQL" : "SQLite");
    return s;
}

/* Brings PostgreSQL's statistics up to what was written, as autovacuum's
 * ANALYZE does by itself in a while (retention measures the records by
 * them); SQLite has nothing to bring up to date. */
static inline void settle_statistics(const backend_t *b)
{
    if (!b->pg)
        return;
    PGconn *c = pg_connect(b->where);
    pg_exec(c, "ANALYZE invocations, logs");
    PQfinish(c);
}

/* Sets the database's schema version behind the store's back. */
static inline void set_schema_version(const backend_t *b, int version)
{
    char sql[64];
    if (b->pg) {
        PGconn *c = pg_connect(b->where);
        snprintf(sql, sizeof sql, "UPDATE mayfly_schema SET version = %d", version);
        pg_exec(c, sql);
        PQfinish(c);
        return;
    }
    cleanup_free char *path = xasprintf("%s/mayfly.db", b->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- one group of tests on both --------------------------------------------- */

/* The backend setup_backend sets up: run_on_both_backends sets it. */
static bool backend_is_pg;

static inline int setup_backend(void **state)
{
    return backend_is_pg ? setup_pg(state) : setup_sqlite(state);
}

static inline int run_backends_(const char *name, const struct CMUnitTest *tests, size_t n)
{
    char title[160];
    snprintf(title, sizeof title, "%s on SQLite", name);
    printf("== %s\n", title);
    backend_is_pg = false;
    int failed = _cmocka_run_group_tests(title, tests, n, NULL, NULL);
    if (!pg_available())
        return failed;
    snprintf(title, sizeof title, "%s on PostgreSQL", name);
    printf("== %s\n", title);
    backend_is_pg = true;
    return failed | _cmocka_run_group_tests(title, tests, n, NULL, NULL);
}

/* Runs the array tests (set up by setup_backend, torn down by teardown) on
 * SQLite, then on PostgreSQL when there is one; non-zero if any failed. */
#define run_on_both_backends(name, tests)                                                          \
    run_backends_((name), (tests), sizeof(tests) / sizeof((tests)[0]))

/* ---- the queue's database ------------------------------------------------- */

static inline store_queue_t *open_queue(const backend_t *b)
{
    mf_error_t err = MF_ERROR_INIT;
    store_queue_t *q = NULL;
    if (store_queue_open(b->where, &q, &err) < 0)
        fail_msg("store_queue_open: %s", err.msg);
    return q;
}

/* What sql (one integer) answers in the queue's database, read on a
 * connection of the test's own: SQLite's queue.db, or the PostgreSQL
 * database; -1 when it answers nothing. */
static inline long long queue_int(const backend_t *b, const char *sql)
{
    if (b->pg)
        return pg_db_int(b, sql);
    cleanup_free char *path = xasprintf("%s/queue.db", b->dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The queue's schema version: queue.db's user_version, or the one the
 * PostgreSQL database records. */
static inline long long queue_schema_version(const backend_t *b)
{
    return queue_int(b, b->pg ? "SELECT version FROM mayfly_schema" : "PRAGMA user_version");
}

/* A place of b's kind that cannot be opened (malloc'd): a directory that
 * does not exist, or a database that does not exist on the server. Its
 * error must name *mention (a part of it). */
static inline char *unreachable_where(const backend_t *b, const char **mention)
{
    if (b->pg) {
        *mention = "mayfly_no_such_db";
        return url_with_db(pg_admin_url, "mayfly_no_such_db");
    }
    char *where = xasprintf("%s/missing/deeper", b->dir);
    *mention = where;
    return where;
}

/* ---- a writer over a store --------------------------------------------------- */

/* A writer of s's, on loop (initialised here); the test stops if it cannot
 * start. */
static inline store_writer_t *start_writer(store_t *s, uv_loop_t *loop)
{
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    store_writer_t *w = NULL;
    if (uv_loop_init(loop) != 0 || store_writer_db(s, &db, &err) < 0 ||
        store_writer_start(loop, &db, NULL, NULL, &w, &err) < 0) {
        fprintf(stderr, "start_writer: %s\n", err.msg);
        abort();
    }
    return w;
}

static inline void writer_keep_done(uv_timer_t *t)
{
    uv_timer_stop(t);
}

/* Runs loop until done(ctx), once everything submitted to w so far has
 * committed (the writer's own handle does not keep a loop alive: a timer
 * does meanwhile, for up to a minute); whether done came. */
static inline bool run_writer_until(uv_loop_t *loop, store_writer_t *w, bool (*done)(void *ctx),
                                    void *ctx)
{
    uv_timer_t keep;
    uv_timer_init(loop, &keep);
    uv_timer_start(&keep, writer_keep_done, 60000, 0);
    store_writer_wait(w);
    while (!done(ctx) && uv_is_active((uv_handle_t *)&keep))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return done(ctx);
}

/* Stops w, runs what it leaves on the loop, and closes the loop: 0 when
 * nothing was left open on it. */
static inline int stop_writer(store_writer_t *w, uv_loop_t *loop)
{
    store_writer_stop(w);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop);
}

#endif
