/* The embedded store: one SQLite database in WAL mode under the data
 * directory, guarded by a lock file so that two servers never share it.
 * It is one of store.c's backends (store/backend.h): the table at the end
 * lists its calls, some of which live in files of their own.
 *
 * Schema changes are an ordered list of migrations applied at open inside one
 * transaction; PRAGMA user_version records how many have run. A later change
 * appends to the list and never edits an entry that has shipped. */
#include "store/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/fs.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "store/backend.h"
#include "store/alerts_backend.h"
#include "store/budgets_backend.h"
#include "store/series_backend.h"
#include "store/sqlite_internal.h"

static const char *const store__migrations[] = {
    /* 1: functions. The settings the registry validates live in config_json
     * so that adding a setting needs no migration; the columns are what the
     * store itself queries on. */
    "CREATE TABLE functions ("
    "  name        TEXT PRIMARY KEY NOT NULL,"
    "  version     INTEGER NOT NULL,"
    "  code_sha256 TEXT NOT NULL,"
    "  code_size   INTEGER NOT NULL,"
    "  config_json TEXT NOT NULL,"
    "  created_ms  INTEGER NOT NULL,"
    "  updated_ms  INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX functions_code_sha256 ON functions (code_sha256);",

    /* 2: invocation records and function logs. Records are replaced in
     * place as an invocation moves on (queued → running → success), so the
     * request id is the key. */
    "CREATE TABLE invocations ("
    "  request_id    TEXT PRIMARY KEY NOT NULL,"
    "  function      TEXT NOT NULL,"
    "  version       INTEGER NOT NULL,"
    "  status        TEXT NOT NULL,"
    "  start_ms      INTEGER NOT NULL,"
    "  duration_ms   REAL NOT NULL,"
    "  billed_ms     INTEGER NOT NULL,"
    "  memory_mb     INTEGER NOT NULL,"
    "  max_rss_kb    INTEGER NOT NULL,"
    "  cpu_ms        INTEGER NOT NULL,"
    "  cold_start    INTEGER NOT NULL,"
    "  init_ms       REAL NOT NULL,"
    "  error_type    TEXT,"
    "  error_message TEXT,"
    "  attempts      INTEGER NOT NULL"
    ");"
    "CREATE INDEX invocations_function_start ON invocations (function, start_ms);"
    "CREATE INDEX invocations_status_start ON invocations (status, start_ms);"
    "CREATE INDEX invocations_start ON invocations (start_ms);"
    "CREATE TABLE logs ("
    "  id         INTEGER PRIMARY KEY,"
    "  time_ms    INTEGER NOT NULL,"
    "  function   TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  stream     INTEGER NOT NULL,"
    "  message    BLOB NOT NULL"
    ");"
    "CREATE INDEX logs_function ON logs (function, id);"
    "CREATE INDEX logs_request ON logs (request_id, id);",

    /* 3: each call's outbound connections, a JSON array (NULL: none). */
    "ALTER TABLE invocations ADD COLUMN egress_json TEXT;",

    /* 4: each call's event and result as kept (NULL: not kept). */
    "ALTER TABLE invocations ADD COLUMN event BLOB;"
    "ALTER TABLE invocations ADD COLUMN event_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE invocations ADD COLUMN event_flags INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE invocations ADD COLUMN result BLOB;"
    "ALTER TABLE invocations ADD COLUMN result_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE invocations ADD COLUMN result_flags INTEGER NOT NULL DEFAULT 0;",

    /* 5: the record a replay ran again (NULL: not a replay). */
    "ALTER TABLE invocations ADD COLUMN replay_of TEXT;",

    /* 6: the call that made this one from inside its function (NULL:
     * none), and the KV operations the call made. */
    "ALTER TABLE invocations ADD COLUMN caller_request_id TEXT;"
    "ALTER TABLE invocations ADD COLUMN kv_ops INTEGER NOT NULL DEFAULT 0;",

    /* 7: shared volumes (src/state/volume.h): what each is; its files are
     * in its image under the data directory. */
    "CREATE TABLE volumes ("
    "  name       TEXT PRIMARY KEY NOT NULL,"
    "  size_mb    INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;",

    /* 8: why the call ran (store_record_t.trigger; NULL in older records). */
    "ALTER TABLE invocations ADD COLUMN trigger TEXT;",

    /* 9: function URLs (trigger/url.h): each function's URL settings as
     * /v1 shows them. A URL goes with its function, deleted in the same
     * statement (an update of the function is an upsert, never a delete). */
    "CREATE TABLE function_urls ("
    "  function    TEXT PRIMARY KEY NOT NULL,"
    "  config_json TEXT NOT NULL,"
    "  created_ms  INTEGER NOT NULL,"
    "  updated_ms  INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TRIGGER function_urls_go_with_functions AFTER DELETE ON functions BEGIN"
    "  DELETE FROM function_urls WHERE function = OLD.name;"
    "END;",

    /* 10: metering (rows.h, STORE_USAGE_*): each record's egress and log
     * bytes, and usage per tenant, function and hour, which the records'
     * writes keep in the same transaction (sqlite__records_write). Records
     * written before count from here on. */
    "ALTER TABLE invocations ADD COLUMN egress_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE invocations ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;"
    STORE_USAGE_TABLE("TEXT", "INTEGER") " WITHOUT ROWID;",

    /* 11: budgets (store/budgets.h): each budget's settings by its
     * qualified name, and the thresholds its periods crossed, each once. */
    STORE_BUDGETS_TABLES("TEXT", "INTEGER", "REAL") ";",
    /* 12: tenant ids (Lambda's tenant isolation mode, docs/metering.md):
     * each record's, and usage by tenant id as well, which takes a key
     * of its own, so usage is copied into a table that has it. Rows
     * before have none (""). */
    "ALTER TABLE invocations ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE usage_by_tenant_id ("
    "  tenant TEXT NOT NULL, function TEXT NOT NULL, tenant_id TEXT NOT NULL,"
    "  hour_ms INTEGER NOT NULL, part INTEGER NOT NULL, requests INTEGER NOT NULL,"
    "  billed_ms INTEGER NOT NULL, mb_ms INTEGER NOT NULL, cpu_ms INTEGER NOT NULL,"
    "  max_rss_kb INTEGER NOT NULL, egress_bytes INTEGER NOT NULL, kv_ops INTEGER NOT NULL,"
    "  log_bytes INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant, function, tenant_id, hour_ms, part)) WITHOUT ROWID;"
    "INSERT INTO usage_by_tenant_id SELECT tenant, function, '', hour_ms, part, requests,"
    "  billed_ms, mb_ms, cpu_ms, max_rss_kb, egress_bytes, kv_ops, log_bytes FROM usage;"
    "DROP TABLE usage;"
    "ALTER TABLE usage_by_tenant_id RENAME TO usage;",
    /* 13: record keys (store_record_t.key_id): the access key that made
     * each call, for an invoker to read its own calls only. */
    "ALTER TABLE invocations ADD COLUMN key_id TEXT;",
    /* 14: storage (rows.h, STORE_STORAGE_*): usage of KV stores and
     * volumes over time, and the samples taken. */
    STORE_STORAGE_TABLES("INTEGER") ";",
    /* 15: alert rules (store/alerts.h): each rule's settings and state by
     * its qualified name, and the notifications to deliver (the outbox),
     * written before they are sent. */
    STORE_ALERTS_TABLES("TEXT", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT") ";",
    /* 16: prewarmed (store_record_t.prewarmed): the call ran on an
     * instance the adaptive keep-alive started ahead of it. */
    "ALTER TABLE invocations ADD COLUMN prewarmed INTEGER NOT NULL DEFAULT 0;",
    /* 17: phases (store_record_t.queue_ms, .sandbox_ms): the cold-start
     * breakdown; NULL when not known. */
    "ALTER TABLE invocations ADD COLUMN queue_ms REAL;"
    "ALTER TABLE invocations ADD COLUMN sandbox_ms REAL;",
};

#define STORE_SCHEMA_VERSION ((int)(sizeof store__migrations / sizeof store__migrations[0]))

typedef struct sqlite_store {
    store_t base;
    sqlite3 *db;
    int lock_fd;
    bool durable;              /* a writer's connection: synchronous is FULL */
    /* Prepared once and reused: the statements run on every control-plane
     * request and preparing them each time would parse the SQL again. */
    sqlite3_stmt *fn_get;
    sqlite3_stmt *fn_put;
    sqlite3_stmt *fn_delete;
    sqlite3_stmt *fn_list;
    sqlite3_stmt *code_refs;
    sqlite3_stmt *rec_put;
    sqlite3_stmt *rec_get;
    sqlite3_stmt *rec_find;        /* records of one function */
    sqlite3_stmt *rec_find_all;    /* records of every function */
    sqlite3_stmt *log_put;
    sqlite3_stmt *log_list;
    sqlite3_stmt *rec_metered;     /* what a stored record metered */
    sqlite3_stmt *usage_add;
} sqlite_store_t;

static const store__backend_t sqlite__backend;

static sqlite_store_t *sq(store_t *s)
{
    return (sqlite_store_t *)s;
}

static sqlite_store_t *sqlite__new(void)
{
    sqlite_store_t *s = xcalloc(1, sizeof *s);
    s->base.be = &sqlite__backend;
    s->lock_fd = -1;
    return s;
}

static void sqlite__close(store_t *base);

static int store__sql_fail(sqlite_store_t *s, mf_error_t *err, const char *what)
{
    return store__sqlite_fail(s->db, err, what);
}

static int store__exec(sqlite_store_t *s, const char *sql, mf_error_t *err)
{
    return store__sqlite_exec(s->db, sql, err);
}

static int store__prepare(sqlite_store_t *s, const char *sql, sqlite3_stmt **out, mf_error_t *err)
{
    return store__sqlite_prepare(s->db, sql, out, err);
}

#define P STORE__SQLITE_P

static int store__prepare_all(sqlite_store_t *s, mf_error_t *err)
{
    int r;
    if ((r = store__prepare(s, STORE_FN_GET(P), &s->fn_get, err)) < 0 ||
        (r = store__prepare(s, STORE_FN_PUT(P), &s->fn_put, err)) < 0 ||
        (r = store__prepare(s, STORE_FN_DELETE(P), &s->fn_delete, err)) < 0 ||
        (r = store__prepare(s, STORE_FN_LIST, &s->fn_list, err)) < 0 ||
        (r = store__prepare(s, STORE_CODE_REFS(P), &s->code_refs, err)) < 0 ||
        (r = store__prepare(s,
                            "SELECT function, start_ms, status, billed_ms, memory_mb, cpu_ms,"
                            " max_rss_kb, egress_bytes, kv_ops, log_bytes, tenant_id"
                            " FROM invocations"
                            " WHERE request_id = ?1",
                            &s->rec_metered, err)) < 0 ||
        (r = store__prepare(s,
                            STORE_USAGE_INSERT_BY_ID "VALUES (?1, ?2, ?12, ?3, 0, ?4, ?5, ?6,"
                            " ?7, ?8, ?9, ?10, ?11)" STORE_USAGE_ADD_BY_ID,
                            &s->usage_add, err)) < 0 ||
        (r = store__prepare(s,
                            "INSERT OR REPLACE INTO invocations (" STORE_REC_COLUMNS ","
                            STORE_REC_PAYLOADS "," STORE_REC_TENANT_ID "," STORE_REC_KEY_ID
                            "," STORE_REC_PREWARMED "," STORE_REC_PHASES
                            ") VALUES (" STORE_REC_VALUES(P) ", COALESCE(?30, (SELECT key_id"
                            " FROM invocations WHERE request_id = ?1)), ?31, ?32, ?33)",
                            &s->rec_put, err)) < 0 ||
        (r = store__prepare(s, STORE_REC_GET(P), &s->rec_get, err)) < 0 ||
        (r = store__prepare(s, STORE_REC_FIND_ONE(P), &s->rec_find, err)) < 0 ||
        (r = store__prepare(s, STORE_REC_FIND_ALL(P), &s->rec_find_all, err)) < 0 ||
        (r = store__prepare(s, STORE_LOG_PUT(P), &s->log_put, err)) < 0 ||
        (r = store__prepare(s, STORE_LOG_LIST(P), &s->log_list, err)) < 0)
        return r;
    return 0;
}

static int store__open_db(sqlite_store_t *s, const char *data_dir, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/mayfly.db", data_dir);
    return store__sqlite_open(path, &s->db, err);
}

static int store__migrate(sqlite_store_t *s, mf_error_t *err)
{
    return store__sqlite_migrate(s->db, store__migrations, STORE_SCHEMA_VERSION,
                                 &s->base.schema_version, err);
}

int store__sqlite_store_open(const char *data_dir, store_t **out, mf_error_t *err)
{
    int r = fs_mkdir_p(data_dir, 0755, err);
    if (r < 0) {
        mf_error_wrap(err, "cannot create data dir `%s`", data_dir);
        return r;
    }
    sqlite_store_t *s = sqlite__new();
    if ((r = fs_lock_dir(data_dir, &s->lock_fd, err)) < 0 ||
        (r = store__open_db(s, data_dir, err)) < 0 ||
        (r = store__incremental_vacuum_on(s->db, err)) < 0 || (r = store__migrate(s, err)) < 0 ||
        (r = store__prepare_all(s, err)) < 0) {
        sqlite__close(&s->base);
        return r;
    }
    *out = &s->base;
    return 0;
}

/* The writer's view of a secondary connection (store_writer_db). Records
 * and log lines are re-derivable telemetry written in bulk: their batches
 * commit with synchronous=NORMAL (in WAL mode no sync at commit; the WAL is
 * synced at checkpoints). */
static int store__w_begin(void *db, bool durable, mf_error_t *err)
{
    sqlite_store_t *s = db;
    if (durable != s->durable) {
        int r = store__exec(s, durable ? "PRAGMA synchronous = FULL"
                                       : "PRAGMA synchronous = NORMAL", err);
        if (r < 0)
            return r;
        s->durable = durable;
    }
    return store__exec(s, "BEGIN IMMEDIATE", err);
}

static int store__w_savepoint(void *db, mf_error_t *err)
{
    return store__exec(db, "SAVEPOINT job", err);
}

static void store__w_release(void *db, bool keep)
{
    sqlite_store_t *s = db;
    if (!keep)
        sqlite3_exec(s->db, "ROLLBACK TO job", NULL, NULL, NULL);
    sqlite3_exec(s->db, "RELEASE job", NULL, NULL, NULL);
}

static int store__w_commit(void *db, mf_error_t *err)
{
    sqlite_store_t *s = db;
    int r = store__exec(s, "COMMIT", err);
    if (r < 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static void store__w_close(void *db)
{
    sqlite__close(db);
}

static int sqlite__reopen(store_t *primary, store_t **out, mf_error_t *err)
{
    const char *path = sqlite3_db_filename(sq(primary)->db, "main");
    if (!path || !*path)
        return mf_error_plain(err, EINVAL, "store: the database has no file to open again");
    sqlite_store_t *s = sqlite__new();
    s->base.schema_version = primary->schema_version;
    int r = store__sqlite_open(path, &s->db, err);
    if (r == 0)
        r = store__prepare_all(s, err);
    if (r < 0) {
        sqlite__close(&s->base);
        return r;
    }
    *out = &s->base;
    return 0;
}

static int sqlite__writer_db(store_t *primary, store_writer_db_t *out, mf_error_t *err)
{
    store_t *base;
    int r = sqlite__reopen(primary, &base, err);
    if (r < 0)
        return r;
    sqlite_store_t *s = sq(base);
    s->durable = true;
    store__wal_bounded(s->db);
    *out = (store_writer_db_t){ .db = s,
                                .begin = store__w_begin,
                                .savepoint = store__w_savepoint,
                                .release = store__w_release,
                                .commit = store__w_commit,
                                .close = store__w_close };
    return 0;
}

static void sqlite__close(store_t *base)
{
    sqlite_store_t *s = sq(base);
    sqlite3_finalize(s->fn_get);
    sqlite3_finalize(s->fn_put);
    sqlite3_finalize(s->fn_delete);
    sqlite3_finalize(s->fn_list);
    sqlite3_finalize(s->code_refs);
    sqlite3_finalize(s->rec_put);
    sqlite3_finalize(s->rec_metered);
    sqlite3_finalize(s->usage_add);
    sqlite3_finalize(s->rec_get);
    sqlite3_finalize(s->rec_find);
    sqlite3_finalize(s->rec_find_all);
    sqlite3_finalize(s->log_put);
    sqlite3_finalize(s->log_list);
    /* sqlite3_close (not _v2) fails loudly if a statement is left
     * unfinalized, which would be a bug here. */
    if (s->db)
        sqlite3_close(s->db);
    /* Closing the descriptor drops the flock; the file stays, since
     * unlinking it would let a third server lock a fresh inode while a
     * second still waits on the old one. */
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

/* Runs st, whose ?1 is key, for its one row, read by fill into out: 0,
 * -ENOENT (err untouched, for the caller to say what is missing) when
 * there is none, or an error about what. */
static int sqlite__get(sqlite_store_t *s, sqlite3_stmt *st, const char *key, store__fill_fn fill,
                       void *out, const char *what, mf_error_t *err)
{
    int r = 0;
    int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) == SQLITE_OK ? sqlite3_step(st)
                                                                          : SQLITE_ERROR;
    if (rc == SQLITE_ROW) {
        store__row_t row = store__sqlite_row(st);
        fill(&row, out);
    } else if (rc == SQLITE_DONE) {
        r = -ENOENT;
    } else {
        r = store__sql_fail(s, err, what);
    }
    store__stmt_done(st);
    return r;
}

static int sqlite__function_get(store_t *base, const char *name, store_function_t *out,
                                mf_error_t *err)
{
    int r = sqlite__get(sq(base), sq(base)->fn_get, name, store__fill_function, out,
                        "get a function", err);
    return r == -ENOENT ? store__no_function(err, name) : r;
}

static int sqlite__function_put(store_t *base, const store_function_t *f, mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    store__binder_t b = store__sqlite_binder(s->fn_put);
    int r = store__step_done(s->db, s->fn_put, !store__bind_function(&b, f), "put a function",
                             err);
    if (r == 0 && sqlite3_changes(s->db) == 0)
        r = store__function_moved_on(err, f);
    return r;
}

static int sqlite__function_delete(store_t *base, const char *name, mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    sqlite3_stmt *st = s->fn_delete;
    int bound = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK;
    int r = store__step_done(s->db, st, bound, "delete a function", err);
    if (r == 0 && sqlite3_changes(s->db) == 0)
        r = store__no_function(err, name);
    return r;
}

static int sqlite__function_list(store_t *base, store_function_t **out, size_t *count,
                                 mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    void *list = NULL;
    int r = store__sqlite_rows(s->db, s->fn_list, sizeof **out, store__fill_function, &list,
                               count, "list functions", err);
    if (r < 0) {
        store_function_list_free(list, *count);
        return r;
    }
    *out = list;
    return 0;
}

static int sqlite__code_refs(store_t *base, const char *code_sha256, int64_t *count,
                             mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    sqlite3_stmt *st = s->code_refs;
    int r = 0;
    if (sqlite3_bind_text(st, 1, code_sha256, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        r = store__sql_fail(s, err, "count code references");
    else
        *count = sqlite3_column_int64(st, 0);
    store__stmt_done(st);
    return r;
}

/* ---- invocation records ---------------------------------------------- */

/* Records and logs are what happened, not what was promised: losing the
 * last moments of them to a power cut is acceptable, and an fsync on every
 * batch would stall the event loop that writes them. So their batches
 * commit with synchronous=NORMAL (in WAL mode: no sync at commit; the WAL
 * is synced at checkpoints), while functions (and queued events) keep the
 * connection's FULL. */
static int store__begin_batch(sqlite_store_t *s, mf_error_t *err)
{
    int r = store__exec(s, "PRAGMA synchronous = NORMAL", err);
    if (r == 0 && (r = store__exec(s, "BEGIN IMMEDIATE", err)) < 0)
        sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    return r;
}

static int store__end_batch(sqlite_store_t *s, int r, mf_error_t *err)
{
    if (r < 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    else
        r = store__exec(s, "COMMIT", err);
    mf_error_t e2 = MF_ERROR_INIT;
    if (store__exec(s, "PRAGMA synchronous = FULL", &e2) < 0 && r == 0)
        r = store__exec(s, "PRAGMA synchronous = FULL", err);
    return r;
}

/* ---- usage (rows.h, STORE_USAGE_*) ------------------------------------------ */

/* What one write's records change in usage, by tenant, function and hour. */
typedef struct usage_delta {
    map_t at;          /* "HOUR FUNCTION TENANT_ID" → index + 1 in rows */
    store_usage_t *rows;
    size_t n;
} usage_delta_t;

static void usage_add(usage_delta_t *d, const store_usage_t *u, int sign)
{
    char key[64 + sizeof u->tenant + sizeof u->function + sizeof u->tenant_id];
    snprintf(key, sizeof key, "%lld %s %s %s", (long long)u->hour_ms, u->tenant, u->function,
             u->tenant_id);
    uintptr_t k = (uintptr_t)map_get(&d->at, key);
    if (!k) {
        d->rows = xrealloc(d->rows, (d->n + 1) * sizeof *d->rows);
        d->rows[d->n] = (store_usage_t){ .hour_ms = u->hour_ms };
        snprintf(d->rows[d->n].tenant, sizeof d->rows[d->n].tenant, "%s", u->tenant);
        snprintf(d->rows[d->n].function, sizeof d->rows[d->n].function, "%s", u->function);
        snprintf(d->rows[d->n].tenant_id, sizeof d->rows[d->n].tenant_id, "%s", u->tenant_id);
        k = ++d->n;
        map_put(&d->at, key, (void *)k);
    }
    store_usage_add(&d->rows[k - 1], u, sign);
}

/* Takes out what the stored record of rec's request metered, if any. */
static int usage_take_stored(sqlite_store_t *s, const store_record_t *rec, usage_delta_t *d,
                             mf_error_t *err)
{
    sqlite3_stmt *st = s->rec_metered;
    sqlite3_bind_text(st, 1, rec->request_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store_record_t old = { 0 };
        snprintf(old.function, sizeof old.function, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        old.start_ms = sqlite3_column_int64(st, 1);
        snprintf(old.status, sizeof old.status, "%s", (const char *)sqlite3_column_text(st, 2));
        old.billed_ms = sqlite3_column_int64(st, 3);
        old.memory_mb = sqlite3_column_int(st, 4);
        old.cpu_ms = sqlite3_column_int64(st, 5);
        old.max_rss_kb = sqlite3_column_int64(st, 6);
        old.egress_bytes = sqlite3_column_int64(st, 7);
        old.kv_ops = sqlite3_column_int64(st, 8);
        old.log_bytes = sqlite3_column_int64(st, 9);
        const unsigned char *tid = sqlite3_column_text(st, 10);
        snprintf(old.tenant_id, sizeof old.tenant_id, "%s", tid ? (const char *)tid : "");
        store_usage_t u;
        store_usage_of(&old, &u);
        usage_add(d, &u, -1);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    return store__sql_fail(s, err, "read a record's usage");
}

static int usage_write(sqlite_store_t *s, const usage_delta_t *d, mf_error_t *err)
{
    int r = 0;
    for (size_t i = 0; i < d->n && r == 0; i++) {
        const store_usage_t *u = &d->rows[i];
        int64_t q[] = { u->requests, u->billed_ms,    u->mb_ms,  u->cpu_ms,
                        u->max_rss_kb, u->egress_bytes, u->kv_ops, u->log_bytes };
        bool any = false;
        for (int k = 0; k < 8; k++)
            any |= q[k] != 0;
        if (!any)
            continue;
        sqlite3_stmt *st = s->usage_add;
        sqlite3_bind_text(st, 1, u->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, u->function, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, u->hour_ms);
        for (int k = 0; k < 8; k++)
            sqlite3_bind_int64(st, 4 + k, q[k]);
        sqlite3_bind_text(st, 12, u->tenant_id, -1, SQLITE_STATIC);
        r = store__step_done(s->db, st, true, "write usage", err);
    }
    return r;
}

/* Each record, and what it changes in usage: a record of a request that
 * may have one stored already (rec->first unset) takes out what that one
 * metered, then the new one adds its own; one row of usage a function and
 * hour is written at the end, in the same transaction. */
static int sqlite__records_write(store_t *base, const store_record_t *recs, size_t count,
                                 mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    store__binder_t b = store__sqlite_binder(s->rec_put);
    usage_delta_t d = { .at = MAP_INIT };
    int r = 0;
    for (size_t i = 0; i < count && r == 0; i++) {
        if (!recs[i].first)
            r = usage_take_stored(s, &recs[i], &d, err);
        if (r == 0)
            r = store__step_done(s->db, s->rec_put, !store__bind_record(&b, &recs[i]),
                                 "write an invocation record", err);
        store_usage_t u;
        store_usage_of(&recs[i], &u);
        usage_add(&d, &u, 1);
    }
    if (r == 0)
        r = usage_write(s, &d, err);
    map_release(&d.at);
    free(d.rows);
    return r;
}

static int sqlite__records_put(store_t *base, const store_record_t *recs, size_t count,
                               mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    int r = store__begin_batch(s, err);
    if (r == 0)
        r = sqlite__records_write(base, recs, count, err);
    return store__end_batch(s, r, err);
}

static int sqlite__record_get(store_t *base, const char *request_id, store_record_t *out,
                              mf_error_t *err)
{
    int r = sqlite__get(sq(base), sq(base)->rec_get, request_id, store__fill_record, out,
                        "read an invocation record", err);
    return r == -ENOENT ? store__no_record(err, request_id) : r;
}

static int sqlite__records_find(store_t *base, const store_record_filter_t *f,
                                store_record_t **out, size_t *count, bool *more,
                                store_record_cursor_t *next, mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    sqlite3_stmt *st = f->function ? s->rec_find : s->rec_find_all;
    store__binder_t b = store__sqlite_binder(st);
    store_record_t *list = NULL;
    size_t n = 0, cap = 0;
    size_t limit = f->limit > 0 ? (size_t)f->limit : 0;
    store_record_cursor_t last = { 0, 0 };
    store__row_t row = store__sqlite_row(st);
    int r = 0;
    *more = false;
    if (store__bind_find(&b, f)) {
        r = store__sql_fail(s, err, "list invocation records");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *more = true;
            rc = SQLITE_DONE;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * sizeof *list);
        }
        store__fill_record(&row, &list[n++]);
        last.start_ms = sqlite3_column_int64(st, 4);
        last.rowid = sqlite3_column_int64(st, STORE_REC_FIND_ROWID_COL);
    }
    if (rc != SQLITE_DONE)
        r = store__sql_fail(s, err, "list invocation records");
out:
    store__stmt_done(st);
    if (r < 0) {
        store_record_list_free(list, n);
        *more = false;
        return r;
    }
    if (next)
        *next = last;
    *out = list;
    *count = n;
    return 0;
}

static int sqlite__function_purge_write(store_t *base, const char *function, int64_t *records,
                                        int64_t *lines, mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    static const char *const sql[] = { STORE_PURGE_RECORDS(P), STORE_PURGE_LINES(P) };
    int64_t *counts[] = { records, lines };
    for (int i = 0; i < 2; i++) {
        int r = store__run_keyed(s->db, sql[i], function,
                                 "purge a function's records and logs", err);
        if (r < 0 && r != -ENOENT)
            return r;
        *counts[i] = r == -ENOENT ? 0 : sqlite3_changes64(s->db);
    }
    return 0;
}

/* ---- function logs ----------------------------------------------------- */

static int sqlite__logs_write(store_t *base, const store_log_t *lines, size_t count,
                              mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    store__binder_t b = store__sqlite_binder(s->log_put);
    int r = 0;
    for (size_t i = 0; i < count && r == 0; i++)
        r = store__step_done(s->db, s->log_put, !store__bind_log(&b, &lines[i]),
                             "write a log line", err);
    return r;
}

static int sqlite__logs_put(store_t *base, const store_log_t *lines, size_t count,
                            mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    int r = store__begin_batch(s, err);
    if (r == 0)
        r = sqlite__logs_write(base, lines, count, err);
    return store__end_batch(s, r, err);
}

static int sqlite__logs_list(store_t *base, const char *function, const char *request_id,
                             int64_t since_ms, int64_t after_id, int limit, store_log_t **out,
                             size_t *count, mf_error_t *err)
{
    sqlite_store_t *s = sq(base);
    sqlite3_stmt *st = s->log_list;
    void *list = NULL;
    *count = 0;
    int r;
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) != SQLITE_OK ||
        store__bind_text_or_null(st, 2, request_id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, since_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, after_id) != SQLITE_OK ||
        sqlite3_bind_int(st, 5, limit) != SQLITE_OK) {
        r = store__sql_fail(s, err, "list log lines");
        store__stmt_done(st);
        return r;
    }
    r = store__sqlite_rows(s->db, st, sizeof **out, store__fill_log, &list, count,
                           "list log lines", err);
    if (r < 0) {
        store_log_list_free(list, *count);
        return r;
    }
    *out = list;
    return 0;
}

sqlite3 *store__handle(store_t *s)
{
    return sq(s)->db;
}

static const store__backend_t sqlite__backend = {
    .name = "SQLite",
    .close = sqlite__close,
    .writer_db = sqlite__writer_db,
    .reopen = sqlite__reopen,
    .function_get = sqlite__function_get,
    .function_put = sqlite__function_put,
    .function_delete = sqlite__function_delete,
    .function_list = sqlite__function_list,
    .code_refs = sqlite__code_refs,
    .records_put = sqlite__records_put,
    .records_write = sqlite__records_write,
    .record_get = sqlite__record_get,
    .records_find = sqlite__records_find,
    .function_purge_write = sqlite__function_purge_write,
    .prune_write = store__sqlite_prune_write,
    .logs_put = sqlite__logs_put,
    .logs_write = sqlite__logs_write,
    .logs_list = sqlite__logs_list,
    .volume_add = store__sqlite_volume_add,
    .volume_get = store__sqlite_volume_get,
    .volume_list = store__sqlite_volume_list,
    .usage_list = store__sqlite_usage_list,
    .volume_delete = store__sqlite_volume_delete,
    .storage_claim = store__sqlite_storage_claim,
    .storage_add = store__sqlite_storage_add,
    .usage_put = store__sqlite_usage_put,
    .url_put = store__sqlite_url_put,
    .url_delete = store__sqlite_url_delete,
    .url_list = store__sqlite_url_list,
    .budgets = &store__sqlite_budget_ops,
    .series = &store__sqlite_series_ops,
    .alerts = &store__sqlite_alert_ops,
};
