/* What the SQLite files of the store share: opening a database in WAL mode,
 * applying its migrations, and small statement helpers. Not for other
 * modules. */
#ifndef MAYFLY_STORE_SQLITE_INTERNAL_H
#define MAYFLY_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "store/rows.h"
#include "store/store.h"

/* How long a statement waits on a lock held by another connection (a
 * backup tool, the sqlite3 shell, the queue's writer thread) before giving
 * up with SQLITE_BUSY. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* Opens (creating) path in WAL mode with synchronous=FULL. The connection
 * is for one thread (SQLITE_OPEN_NOMUTEX). */
int store__sqlite_open(const char *path, sqlite3 **out, mf_error_t *err);
/* Applies the migrations the file has not seen yet, all or none, and sets
 * *version to the schema version after them. */
int store__sqlite_migrate(sqlite3 *db, const char *const *migrations, int count, int *version,
                          mf_error_t *err);
int store__sqlite_exec(sqlite3 *db, const char *sql, mf_error_t *err);
/* Fills err with "store: what: <sqlite's message>" and returns -EIO. */
int store__sqlite_fail(sqlite3 *db, mf_error_t *err, const char *what);
int store__sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, mf_error_t *err);

/* Runs a statement that returns no rows (bind_ok: its bindings took);
 * what names it in errors. Resets it either way. */
int store__step_done(sqlite3 *db, sqlite3_stmt *st, int bind_ok, const char *what,
                     mf_error_t *err);

/* A writer thread's transactions on its connection (store/writer.h): a
 * durable commit is fsync'd (synchronous=FULL), the others reach the disk
 * with the next durable commit or checkpoint; savepoints let one job of a
 * batch fail alone. *synchronous_full tracks the connection's level, which
 * is set before BEGIN (it cannot change inside a transaction). */
int store__txn_begin(sqlite3 *db, bool *synchronous_full, bool durable, sqlite3_stmt *begin,
                     mf_error_t *err);
/* Rolls back when the commit fails. */
int store__txn_commit(sqlite3 *db, sqlite3_stmt *commit, mf_error_t *err);
void store__txn_rollback(sqlite3 *db);
/* Ends the savepoint, undoing its work first unless keep. */
void store__txn_release(sqlite3 *db, sqlite3_stmt *rollback_to, sqlite3_stmt *release, bool keep);

/* Resets a reused statement so that it releases its read snapshot and its
 * bindings do not leak into the next call. */
void store__stmt_done(sqlite3_stmt *st);
void store__copy_text(char *dst, size_t size, sqlite3_stmt *st, int col);
/* The column as a malloc'd string, NULL for SQL NULL. */
char *store__dup_column(sqlite3_stmt *st, int col);
/* The column's bytes, malloc'd and NUL-terminated; *len their count. */
void *store__dup_blob(sqlite3_stmt *st, int col, size_t *len);
int store__bind_text_or_null(sqlite3_stmt *st, int col, const char *v);
int store__bind_blob_or_null(sqlite3_stmt *st, int col, const void *v, size_t len);
/* The connection of a SQLite store (sqlite.c), for the store's other files. */
sqlite3 *store__handle(store_t *s);

/* The SQLite backend's calls that live in files of their own (retention.c,
 * volumes.c, urls.c), listed in sqlite.c's table: store.h says what each
 * does. */
int store__sqlite_prune_write(store_t *s, int64_t before_ms, int64_t max_bytes, int batch,
                              store_prune_t *out, mf_error_t *err);
int store__sqlite_volume_add(store_t *s, const store_volume_t *v, mf_error_t *err);
int store__sqlite_volume_get(store_t *s, const char *name, store_volume_t *out, mf_error_t *err);
int store__sqlite_volume_list(store_t *s, store_volume_t **out, size_t *count, mf_error_t *err);
int store__sqlite_usage_list(store_t *s, int64_t from_ms, int64_t to_ms, store_usage_t **out,
                             size_t *count, mf_error_t *err);
int store__sqlite_volume_delete(store_t *s, const char *name, mf_error_t *err);
int store__sqlite_storage_claim(store_t *s, int64_t at_ms, bool prune, int *claimed,
                                mf_error_t *err);
int store__sqlite_usage_put(store_t *s, const store_usage_t *u, mf_error_t *err);
int store__sqlite_storage_add(store_t *s, const char *tenant, const char *name, int64_t hour_ms,
                              int64_t kv_byte_ms, int64_t volume_byte_ms, mf_error_t *err);
int store__sqlite_url_put(store_t *s, const store_url_t *u, mf_error_t *err);
int store__sqlite_url_delete(store_t *s, const char *function, mf_error_t *err);
int store__sqlite_url_list(store_t *s, store_url_t **out, size_t *count, mf_error_t *err);
/* Makes a database give freed pages back to the file system in steps
 * (auto_vacuum = INCREMENTAL): set before the first table of a new one,
 * or once by a VACUUM of an existing one. */
int store__incremental_vacuum_on(sqlite3 *db, mf_error_t *err);
/* For a writer thread's connection: checkpoints as SQLite does by itself
 * (at 4 MiB of WAL), and once the WAL passes 16 MiB, a checkpoint
 * that waits for readers and cuts the file back, so that a steady stream
 * of writes does not grow it without end. Never on the loop's connection:
 * it may wait. */
void store__wal_bounded(sqlite3 *db);
/* Runs sql, a statement of one text parameter ?1 = key (a DELETE by
 * key, say), once: 0, -ENOENT (err untouched, for the caller to say
 * what is missing) when it changed no row, or an error about what. */
int store__run_keyed(sqlite3 *db, const char *sql, const char *key, const char *what,
                     mf_error_t *err);
/* Collects every row st gives into a growing array of items of size
 * bytes (zeroed, then filled by row), then resets st. On failure *out
 * holds the rows read so far, for the caller to free. */
int store__collect(sqlite3 *db, sqlite3_stmt *st, size_t size,
                   void (*row)(sqlite3_stmt *st, void *item), void **out, size_t *count,
                   const char *what, mf_error_t *err);
/* As store__collect, each row read by fill (store/rows.h). */
int store__sqlite_rows(sqlite3 *db, sqlite3_stmt *st, size_t size, store__fill_fn fill,
                       void **out, size_t *count, const char *what, mf_error_t *err);
/* Runs sql (prepared for this call: statements that run rarely) with
 * the parameters bind sets from item; *changed is how many rows it
 * inserted, changed or deleted. */
int store__sqlite_write(sqlite3 *db, const char *sql,
                        int (*bind)(const store__binder_t *b, const void *item), const void *item,
                        int64_t *changed, const char *what, mf_error_t *err);
/* Runs sql (prepared for this call) with ?1 = key (NULL: no parameter),
 * every row read by fill into a new array of items of size bytes, as
 * store__sqlite_rows does. */
int store__sqlite_query(sqlite3 *db, const char *sql, const char *key, size_t size,
                        store__fill_fn fill, void **out, size_t *count, const char *what,
                        mf_error_t *err);
/* store/rows.h's reader of st's current row, and binder of its parameters. */
store__row_t store__sqlite_row(sqlite3_stmt *st);
store__binder_t store__sqlite_binder(sqlite3_stmt *st);
/* As store__dup_blob, NULL for SQL NULL. */
void *store__dup_blob_or_null(sqlite3_stmt *st, int col, size_t *len);

#endif
