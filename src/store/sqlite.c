/* The embedded store: one SQLite database in WAL mode under the data
 * directory, guarded by a lock file so that two servers never share it.
 *
 * Schema changes are an ordered list of migrations applied at open inside one
 * transaction; PRAGMA user_version records how many have run. A later change
 * appends to the list and never edits an entry that has shipped. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/fs.h"
#include "core/xalloc.h"
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
};

#define STORE_SCHEMA_VERSION ((int)(sizeof store__migrations / sizeof store__migrations[0]))

struct store {
    sqlite3 *db;
    int lock_fd;
    int schema_version;
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
};

static int store__sql_fail(store_t *s, mf_error_t *err, const char *what)
{
    return store__sqlite_fail(s->db, err, what);
}

/* Takes DIR/lock. flock() locks belong to the open file description, so
 * the lock is dropped by the kernel when the server dies, however it dies,
 * and a second open in the same process conflicts as a second server would. */
static int store__lock(const char *data_dir, int *out_fd, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/lock", data_dir);
    cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return mf_error_set(err, errno, "data dir `%s` is not writable: cannot open `%s`", data_dir,
                            path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            return mf_error_set(err, errno, "lock `%s`", path);
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) {
            pid[n] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        return mf_error_plain(err, EBUSY, "data dir `%s` is in use by another mayfly server (pid %s)",
                           data_dir, *pid ? pid : "unknown");
    }
    /* The pid is only for the message above; the lock itself is the flock. */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0)
        return mf_error_set(err, errno, "truncate `%s`", path);
    ssize_t w = pwrite(fd, pid, (size_t)len, 0);
    if (w != len)
        return mf_error_set(err, w < 0 ? errno : EIO, "write `%s`", path);
    *out_fd = steal_fd(&fd);
    return 0;
}

static int store__exec(store_t *s, const char *sql, mf_error_t *err)
{
    return store__sqlite_exec(s->db, sql, err);
}

static int store__prepare(store_t *s, const char *sql, sqlite3_stmt **out, mf_error_t *err)
{
    return store__sqlite_prepare(s->db, sql, out, err);
}

#define STORE_REC_COLUMNS                                                                          \
    "request_id, function, version, status, start_ms, duration_ms, billed_ms, memory_mb,"         \
    " max_rss_kb, cpu_ms, cold_start, init_ms, error_type, error_message, attempts,"    \
    " egress_json, replay_of, caller_request_id, kv_ops, trigger"
#define STORE_REC_PAYLOADS " event, event_bytes, event_flags, result, result_bytes, result_flags"

/* Finding records (store_records_find). Lists leave the payloads out: the
 * columns that would hold them are filled with "not kept", so that
 * store__row_to_record reads the row as it reads one from rec_get, and the
 * rowid (the cursor's tie-break) follows them. A NULL parameter is no
 * condition; ?7 is the lesser of the until bound and the cursor's start.
 * Two statements rather than "?1 IS NULL OR function = ?1" so that one
 * function's records are read from the (function, start_ms) index, in
 * order, rather than found among everyone's. */
#define STORE_REC_FIND_ROWID_COL 26
#define STORE_REC_FIND(function_cond)                                                              \
    "SELECT " STORE_REC_COLUMNS ", NULL, 0, 0, NULL, 0, 0, rowid FROM invocations"                 \
    " WHERE start_ms >= ?6 AND start_ms <= ?7" function_cond                                       \
    " AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR error_type = ?3)"                         \
    " AND (?4 IS NULL OR cold_start = ?4) AND duration_ms >= ?5"                                   \
    " AND (?8 IS NULL OR start_ms < ?8 OR rowid < ?9)"                                             \
    " AND (?11 IS NULL OR trigger = ?11 OR substr(trigger, 1, length(?11) + 1) = ?11 || ':')"      \
    " ORDER BY start_ms DESC, rowid DESC LIMIT ?10"

#define STORE_FN_COLUMNS                                                                           \
    "name, version, code_sha256, code_size, config_json, created_ms, updated_ms"

static int store__prepare_all(store_t *s, mf_error_t *err)
{
    int r;
    if ((r = store__prepare(s, "SELECT " STORE_FN_COLUMNS " FROM functions WHERE name = ?1",
                            &s->fn_get, err)) < 0 ||
        (r = store__prepare(s,
                            "INSERT INTO functions (" STORE_FN_COLUMNS ")"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                            " ON CONFLICT (name) DO UPDATE SET"
                            " version = excluded.version, code_sha256 = excluded.code_sha256,"
                            " code_size = excluded.code_size, config_json = excluded.config_json,"
                            " created_ms = excluded.created_ms, updated_ms = excluded.updated_ms",
                            &s->fn_put, err)) < 0 ||
        (r = store__prepare(s, "DELETE FROM functions WHERE name = ?1", &s->fn_delete, err)) < 0 ||
        (r = store__prepare(s, "SELECT " STORE_FN_COLUMNS " FROM functions ORDER BY name",
                            &s->fn_list, err)) < 0 ||
        (r = store__prepare(s, "SELECT count(*) FROM functions WHERE code_sha256 = ?1",
                            &s->code_refs, err)) < 0 ||
        (r = store__prepare(s,
                            "INSERT OR REPLACE INTO invocations (" STORE_REC_COLUMNS ","
                            STORE_REC_PAYLOADS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
                            "?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26)",
                            &s->rec_put, err)) < 0 ||
        (r = store__prepare(s,
                            "SELECT " STORE_REC_COLUMNS "," STORE_REC_PAYLOADS
                            " FROM invocations WHERE request_id = ?1",
                            &s->rec_get, err)) < 0 ||
        (r = store__prepare(s, STORE_REC_FIND(" AND function = ?1"), &s->rec_find, err)) < 0 ||
        (r = store__prepare(s, STORE_REC_FIND(""), &s->rec_find_all, err)) < 0 ||
        (r = store__prepare(s,
                            "INSERT INTO logs (time_ms, function, request_id, stream, message)"
                            " VALUES (?1, ?2, ?3, ?4, ?5)",
                            &s->log_put, err)) < 0 ||
        (r = store__prepare(s,
                            "SELECT id, time_ms, function, request_id, stream, message FROM logs"
                            " WHERE function = ?1 AND (?2 IS NULL OR request_id = ?2)"
                            " AND time_ms >= ?3 AND id > ?4 ORDER BY id LIMIT ?5",
                            &s->log_list, err)) < 0)
        return r;
    return 0;
}

static int store__open_db(store_t *s, const char *data_dir, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/mayfly.db", data_dir);
    return store__sqlite_open(path, &s->db, err);
}

static int store__migrate(store_t *s, mf_error_t *err)
{
    return store__sqlite_migrate(s->db, store__migrations, STORE_SCHEMA_VERSION,
                                 &s->schema_version, err);
}

int store_open(const char *data_dir, store_t **out, mf_error_t *err)
{
    int r = fs_mkdir_p(data_dir, 0755, err);
    if (r < 0) {
        mf_error_wrap(err, "cannot create data dir `%s`", data_dir);
        return r;
    }
    store_t *s = xcalloc(1, sizeof *s);
    s->lock_fd = -1;
    if ((r = store__lock(data_dir, &s->lock_fd, err)) < 0 ||
        (r = store__open_db(s, data_dir, err)) < 0 ||
        (r = store__incremental_vacuum_on(s->db, err)) < 0 || (r = store__migrate(s, err)) < 0 ||
        (r = store__prepare_all(s, err)) < 0) {
        store_close(s);
        return r;
    }
    *out = s;
    return 0;
}

/* The writer's view of a secondary connection (store_writer_db). Records
 * and log lines are re-derivable telemetry written in bulk: their batches
 * commit with synchronous=NORMAL (in WAL mode no sync at commit; the WAL is
 * synced at checkpoints). */
static int store__w_begin(void *db, bool durable, mf_error_t *err)
{
    store_t *s = db;
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
    store_t *s = db;
    if (!keep)
        sqlite3_exec(s->db, "ROLLBACK TO job", NULL, NULL, NULL);
    sqlite3_exec(s->db, "RELEASE job", NULL, NULL, NULL);
}

static int store__w_commit(void *db, mf_error_t *err)
{
    store_t *s = db;
    int r = store__exec(s, "COMMIT", err);
    if (r < 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static void store__w_close(void *db)
{
    store_close(db);
}

int store_writer_db(store_t *primary, store_writer_db_t *out, mf_error_t *err)
{
    const char *path = sqlite3_db_filename(primary->db, "main");
    if (!path || !*path)
        return mf_error_plain(err, EINVAL, "store: the database has no file to open again");
    store_t *s = xcalloc(1, sizeof *s);
    s->lock_fd = -1;
    s->schema_version = primary->schema_version;
    s->durable = true;
    int r = store__sqlite_open(path, &s->db, err);
    if (r == 0)
        r = store__prepare_all(s, err);
    if (r < 0) {
        store_close(s);
        return r;
    }
    store__wal_bounded(s->db);
    *out = (store_writer_db_t){ .db = s,
                                .begin = store__w_begin,
                                .savepoint = store__w_savepoint,
                                .release = store__w_release,
                                .commit = store__w_commit,
                                .close = store__w_close };
    return 0;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->fn_get);
    sqlite3_finalize(s->fn_put);
    sqlite3_finalize(s->fn_delete);
    sqlite3_finalize(s->fn_list);
    sqlite3_finalize(s->code_refs);
    sqlite3_finalize(s->rec_put);
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

int store_schema_version(store_t *s)
{
    return s->schema_version;
}

static void store__row_to_function(sqlite3_stmt *st, store_function_t *f)
{
    memset(f, 0, sizeof *f);
    store__copy_text(f->name, sizeof f->name, st, 0);
    f->version = sqlite3_column_int64(st, 1);
    store__copy_text(f->code_sha256, sizeof f->code_sha256, st, 2);
    f->code_size = sqlite3_column_int64(st, 3);
    const char *cfg = (const char *)sqlite3_column_text(st, 4);
    f->config_json = xstrdup(cfg ? cfg : "{}");
    f->created_ms = sqlite3_column_int64(st, 5);
    f->updated_ms = sqlite3_column_int64(st, 6);
}

int store_function_get(store_t *s, const char *name, store_function_t *out, mf_error_t *err)
{
    sqlite3_stmt *st = s->fn_get;
    int r = 0;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
        r = store__sql_fail(s, err, "get a function");
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        store__row_to_function(st, out);
    else if (rc == SQLITE_DONE)
        r = mf_error_plain(err, ENOENT, "function `%s` does not exist", name);
    else
        r = store__sql_fail(s, err, "get a function");
out:
    store__stmt_done(st);
    return r;
}

int store_function_put(store_t *s, const store_function_t *f, mf_error_t *err)
{
    sqlite3_stmt *st = s->fn_put;
    int r = 0;
    if (sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, f->version) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, f->code_sha256, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, f->code_size) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, f->config_json ? f->config_json : "{}", -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_int64(st, 6, f->created_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 7, f->updated_ms) != SQLITE_OK) {
        r = store__sql_fail(s, err, "put a function");
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE)
        r = store__sql_fail(s, err, "put a function");
out:
    store__stmt_done(st);
    return r;
}

int store_function_delete(store_t *s, const char *name, mf_error_t *err)
{
    sqlite3_stmt *st = s->fn_delete;
    int r = 0;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
        r = store__sql_fail(s, err, "delete a function");
    else if (sqlite3_changes(s->db) == 0)
        r = mf_error_plain(err, ENOENT, "function `%s` does not exist", name);
    store__stmt_done(st);
    return r;
}

int store_function_list(store_t *s, store_function_t **out, size_t *count, mf_error_t *err)
{
    sqlite3_stmt *st = s->fn_list;
    store_function_t *list = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * sizeof *list);
        }
        store__row_to_function(st, &list[n++]);
    }
    if (rc != SQLITE_DONE) {
        int r = store__sql_fail(s, err, "list functions");
        store__stmt_done(st);
        store_function_list_free(list, n);
        return r;
    }
    store__stmt_done(st);
    *out = list;
    *count = n;
    return 0;
}

int store_code_refs(store_t *s, const char *code_sha256, int64_t *count, mf_error_t *err)
{
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

void store_function_clear(store_function_t *f)
{
    if (!f)
        return;
    free(f->config_json);
    memset(f, 0, sizeof *f);
}

void store_function_list_free(store_function_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_function_clear(&list[i]);
    free(list);
}

/* ---- invocation records ---------------------------------------------- */

/* Records and logs are what happened, not what was promised: losing the
 * last moments of them to a power cut is acceptable, and an fsync on every
 * batch would stall the event loop that writes them. So their batches
 * commit with synchronous=NORMAL (in WAL mode: no sync at commit; the WAL
 * is synced at checkpoints), while functions (and queued events) keep the
 * connection's FULL. */
static int store__begin_batch(store_t *s, mf_error_t *err)
{
    int r = store__exec(s, "PRAGMA synchronous = NORMAL", err);
    if (r == 0 && (r = store__exec(s, "BEGIN IMMEDIATE", err)) < 0)
        sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    return r;
}

static int store__end_batch(store_t *s, int r, mf_error_t *err)
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

int store_records_write(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err)
{
    int r = 0;
    sqlite3_stmt *st = s->rec_put;
    for (size_t i = 0; i < count && r == 0; i++) {
        const store_record_t *rec = &recs[i];
        if (sqlite3_bind_text(st, 1, rec->request_id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(st, 2, rec->function, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(st, 3, rec->version) != SQLITE_OK ||
            sqlite3_bind_text(st, 4, rec->status, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(st, 5, rec->start_ms) != SQLITE_OK ||
            sqlite3_bind_double(st, 6, rec->duration_ms) != SQLITE_OK ||
            sqlite3_bind_int64(st, 7, rec->billed_ms) != SQLITE_OK ||
            sqlite3_bind_int(st, 8, rec->memory_mb) != SQLITE_OK ||
            sqlite3_bind_int64(st, 9, rec->max_rss_kb) != SQLITE_OK ||
            sqlite3_bind_int64(st, 10, rec->cpu_ms) != SQLITE_OK ||
            sqlite3_bind_int(st, 11, rec->cold_start) != SQLITE_OK ||
            sqlite3_bind_double(st, 12, rec->init_ms) != SQLITE_OK ||
            store__bind_text_or_null(st, 13, rec->error_type) != SQLITE_OK ||
            store__bind_text_or_null(st, 14, rec->error_message) != SQLITE_OK ||
            sqlite3_bind_int(st, 15, rec->attempts) != SQLITE_OK ||
            store__bind_text_or_null(st, 16, rec->egress_json) != SQLITE_OK ||
            store__bind_text_or_null(st, 17, rec->replay_of[0] ? rec->replay_of : NULL) !=
                SQLITE_OK ||
            store__bind_text_or_null(st, 18, rec->caller_request_id[0] ? rec->caller_request_id
                                                                     : NULL) != SQLITE_OK ||
            sqlite3_bind_int64(st, 19, rec->kv_ops) != SQLITE_OK ||
            store__bind_text_or_null(st, 20, rec->trigger[0] ? rec->trigger : NULL) != SQLITE_OK ||
            store__bind_blob_or_null(st, 21, rec->event, rec->event_len) != SQLITE_OK ||
            sqlite3_bind_int64(st, 22, rec->event_bytes) != SQLITE_OK ||
            sqlite3_bind_int(st, 23, rec->event_flags) != SQLITE_OK ||
            store__bind_blob_or_null(st, 24, rec->result, rec->result_len) != SQLITE_OK ||
            sqlite3_bind_int64(st, 25, rec->result_bytes) != SQLITE_OK ||
            sqlite3_bind_int(st, 26, rec->result_flags) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
            r = store__sql_fail(s, err, "write an invocation record");
        store__stmt_done(st);
    }
    return r;
}

int store_records_put(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err)
{
    int r = store__begin_batch(s, err);
    if (r == 0)
        r = store_records_write(s, recs, count, err);
    return store__end_batch(s, r, err);
}

static void store__row_to_record(sqlite3_stmt *st, store_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    store__copy_text(rec->request_id, sizeof rec->request_id, st, 0);
    store__copy_text(rec->function, sizeof rec->function, st, 1);
    rec->version = sqlite3_column_int64(st, 2);
    store__copy_text(rec->status, sizeof rec->status, st, 3);
    rec->start_ms = sqlite3_column_int64(st, 4);
    rec->duration_ms = sqlite3_column_double(st, 5);
    rec->billed_ms = sqlite3_column_int64(st, 6);
    rec->memory_mb = sqlite3_column_int(st, 7);
    rec->max_rss_kb = sqlite3_column_int64(st, 8);
    rec->cpu_ms = sqlite3_column_int64(st, 9);
    rec->cold_start = sqlite3_column_int(st, 10);
    rec->init_ms = sqlite3_column_double(st, 11);
    rec->error_type = store__dup_column(st, 12);
    rec->error_message = store__dup_column(st, 13);
    rec->attempts = sqlite3_column_int(st, 14);
    rec->egress_json = store__dup_column(st, 15);
    store__copy_text(rec->replay_of, sizeof rec->replay_of, st, 16);
    store__copy_text(rec->caller_request_id, sizeof rec->caller_request_id, st, 17);
    rec->kv_ops = sqlite3_column_int64(st, 18);
    store__copy_text(rec->trigger, sizeof rec->trigger, st, 19);
    if (sqlite3_column_count(st) > 20) {
        rec->event = store__dup_blob_or_null(st, 20, &rec->event_len);
        rec->event_bytes = sqlite3_column_int64(st, 21);
        rec->event_flags = sqlite3_column_int(st, 22);
        rec->result = store__dup_blob_or_null(st, 23, &rec->result_len);
        rec->result_bytes = sqlite3_column_int64(st, 24);
        rec->result_flags = sqlite3_column_int(st, 25);
    }
}

int store_record_get(store_t *s, const char *request_id, store_record_t *out, mf_error_t *err)
{
    sqlite3_stmt *st = s->rec_get;
    int r = 0;
    if (sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        r = store__sql_fail(s, err, "read an invocation record");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            store__row_to_record(st, out);
        else if (rc == SQLITE_DONE)
            r = mf_error_plain(err, ENOENT, "invocation `%s` does not exist", request_id);
        else
            r = store__sql_fail(s, err, "read an invocation record");
    }
    store__stmt_done(st);
    return r;
}

static int store__bind_find(sqlite3_stmt *st, const store_record_filter_t *f)
{
    int64_t upper = f->until_ms;
    if (f->after_set && f->after.start_ms < upper)
        upper = f->after.start_ms;
    int rc = SQLITE_OK;
    if (f->function)
        rc = sqlite3_bind_text(st, 1, f->function, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = store__bind_text_or_null(st, 2, f->status);
    if (rc == SQLITE_OK)
        rc = store__bind_text_or_null(st, 3, f->error_type);
    if (rc == SQLITE_OK && f->cold >= 0)
        rc = sqlite3_bind_int(st, 4, f->cold ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 5, f->min_duration_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 6, f->since_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, upper);
    if (rc == SQLITE_OK && f->after_set) {
        rc = sqlite3_bind_int64(st, 8, f->after.start_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 9, f->after.rowid);
    }
    /* One more than asked for says whether there is a next page. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 10, (int64_t)f->limit + 1);
    if (rc == SQLITE_OK)
        rc = store__bind_text_or_null(st, 11, f->trigger);
    return rc;
}

int store_records_find(store_t *s, const store_record_filter_t *f, store_record_t **out,
                       size_t *count, bool *more, store_record_cursor_t *next, mf_error_t *err)
{
    sqlite3_stmt *st = f->function ? s->rec_find : s->rec_find_all;
    store_record_t *list = NULL;
    size_t n = 0, cap = 0;
    size_t limit = f->limit > 0 ? (size_t)f->limit : 0;
    store_record_cursor_t last = { 0, 0 };
    int r = 0;
    *more = false;
    if (store__bind_find(st, f) != SQLITE_OK) {
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
        store__row_to_record(st, &list[n++]);
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

int store_records_list(store_t *s, const char *function, const char *status, int limit,
                       store_record_t **out, size_t *count, mf_error_t *err)
{
    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    f.function = function;
    f.status = status;
    f.limit = limit;
    bool more;
    return store_records_find(s, &f, out, count, &more, NULL, err);
}

void store_record_clear(store_record_t *r)
{
    if (!r)
        return;
    free(r->error_type);
    free(r->error_message);
    free(r->egress_json);
    free(r->event);
    free(r->result);
    free(r->redact);
    r->error_type = r->error_message = r->egress_json = NULL;
    r->event = r->result = r->redact = NULL;
}

void store_record_list_free(store_record_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_record_clear(&list[i]);
    free(list);
}

int store_function_purge_write(store_t *s, const char *function, int64_t *records,
                               int64_t *lines, mf_error_t *err)
{
    static const char *const sql[] = { "DELETE FROM invocations WHERE function = ?1",
                                       "DELETE FROM logs WHERE function = ?1" };
    int64_t *counts[] = { records, lines };
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st;
        int r = store__prepare(s, sql[i], &st, err);
        if (r < 0)
            return r;
        bool ok = sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
        if (!ok)
            return store__sql_fail(s, err, "purge a function's records and logs");
        *counts[i] = sqlite3_changes64(s->db);
    }
    return 0;
}

/* ---- function logs ----------------------------------------------------- */

int store_logs_write(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err)
{
    int r = 0;
    sqlite3_stmt *st = s->log_put;
    for (size_t i = 0; i < count && r == 0; i++) {
        const store_log_t *l = &lines[i];
        if (sqlite3_bind_int64(st, 1, l->time_ms) != SQLITE_OK ||
            sqlite3_bind_text(st, 2, l->function, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(st, 3, l->request_id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int(st, 4, l->stream) != SQLITE_OK ||
            sqlite3_bind_blob64(st, 5, l->message, l->len, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
            r = store__sql_fail(s, err, "write a log line");
        store__stmt_done(st);
    }
    return r;
}

int store_logs_put(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err)
{
    int r = store__begin_batch(s, err);
    if (r == 0)
        r = store_logs_write(s, lines, count, err);
    return store__end_batch(s, r, err);
}

int store_logs_list(store_t *s, const char *function, const char *request_id, int64_t since_ms,
                    int64_t after_id, int limit, store_log_t **out, size_t *count,
                    mf_error_t *err)
{
    sqlite3_stmt *st = s->log_list;
    store_log_t *list = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) != SQLITE_OK ||
        store__bind_text_or_null(st, 2, request_id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, since_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, after_id) != SQLITE_OK ||
        sqlite3_bind_int(st, 5, limit) != SQLITE_OK) {
        r = store__sql_fail(s, err, "list log lines");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            list = xrealloc(list, cap * sizeof *list);
        }
        store_log_t *l = &list[n++];
        memset(l, 0, sizeof *l);
        l->id = sqlite3_column_int64(st, 0);
        l->time_ms = sqlite3_column_int64(st, 1);
        store__copy_text(l->function, sizeof l->function, st, 2);
        store__copy_text(l->request_id, sizeof l->request_id, st, 3);
        l->stream = sqlite3_column_int(st, 4);
        int len = sqlite3_column_bytes(st, 5);
        const void *blob = sqlite3_column_blob(st, 5);
        l->message = xstrndup(blob ? blob : "", (size_t)len);
        l->len = (size_t)len;
    }
    if (rc != SQLITE_DONE)
        r = store__sql_fail(s, err, "list log lines");
out:
    store__stmt_done(st);
    if (r < 0) {
        store_log_list_free(list, n);
        return r;
    }
    *out = list;
    *count = n;
    return 0;
}

void store_log_list_free(store_log_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].message);
    free(list);
}

sqlite3 *store__handle(store_t *s)
{
    return s->db;
}
