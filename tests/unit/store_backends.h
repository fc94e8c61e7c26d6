/* The store's test fixture for both backends (test_store_shared.c,
 * test_store_pg.c): a fresh SQLite directory or a fresh PostgreSQL
 * database per test, as a cmocka setup/teardown pair whose *state is a
 * backend_t, and jobs run through a writer thread as the server runs
 * them. PostgreSQL's server is the one MAYFLY_TEST_PG names (`make unit`
 * starts a throwaway one with tests/pg.sh). */
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

/* ---- writing through a writer thread, as the server does ---------------- */

typedef struct job {
    const store_record_t *recs;
    size_t n_recs;
    const store_log_t *lines;
    size_t n_lines;
    const char *purge;           /* a function to purge, or NULL */
    int64_t purged_records, purged_lines;
    int fail_with;               /* the job fails after writing, when set */
    int r;                       /* what its done callback saw */
    char msg[512];
} job_t;

static inline int job_apply(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    int r = 0;
    if (j->n_recs)
        r = store_records_write(db, j->recs, j->n_recs, err);
    if (r == 0 && j->n_lines)
        r = store_logs_write(db, j->lines, j->n_lines, err);
    if (r == 0 && j->purge)
        r = store_function_purge_write(db, j->purge, &j->purged_records, &j->purged_lines, err);
    if (r == 0 && j->fail_with)
        r = mf_error_plain(err, j->fail_with, "this job fails");
    return r;
}

static inline void job_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

static inline void barrier_reached(void *ud)
{
    ++*(int *)ud;
}

static inline void on_guard(uv_timer_t *t)
{
    fail_msg("the writer's barrier was not reached within 60 s");
}

/* Submits the jobs to a writer on s's database (one batch, in order) and
 * runs a loop until they are done. */
static inline void run_jobs(store_t *s, job_t **jobs, size_t n)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    store_writer_t *w = NULL;
    if (store_writer_db(s, &db, &err) < 0)
        fail_msg("store_writer_db: %s", err.msg);
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    int reached = 0;
    /* A writer does not keep a loop alive by itself: a guard timer does. */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);
    for (size_t i = 0; i < n; i++)
        store_writer_submit(w, false, job_apply, job_done, jobs[i]);
    store_writer_barrier(w, barrier_reached, &reached);
    while (!reached)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static inline void write_records(store_t *s, const store_record_t *recs, size_t n)
{
    job_t j = { .recs = recs, .n_recs = n };
    job_t *jobs[] = { &j };
    run_jobs(s, jobs, 1);
    if (j.r < 0)
        fail_msg("writing records: %s", j.msg);
}

#endif
