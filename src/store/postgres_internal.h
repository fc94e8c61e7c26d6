/* What the PostgreSQL files of the store share: connecting, the schema's
 * migrations, running prepared statements with parameters sent in binary
 * (bytea as it is, NUL bytes and all) and reading their rows, and the
 * errors libpq's failures become. Not for other modules.
 *
 * A connection is used by one thread at a time (libpq allows nothing
 * else): the loop's own, or a writer's.
 *
 * Every connection store__pg_connect makes can be made again when
 * PostgreSQL goes away (postgres_common.c says how): a writer's by its
 * writer (store__pg_writer_link), any other by a thread of its own while
 * calls on it fail at once with -ENOTCONN. Close them with
 * store__pg_finish, never PQfinish. */
#ifndef MAYFLY_STORE_POSTGRES_INTERNAL_H
#define MAYFLY_STORE_POSTGRES_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "store/rows.h"
#include "store/writer.h"

struct store_listener;

/* The key of the advisory lock migrations run under: "mayfly" in ASCII.
 * Advisory locks belong to one database, so nodes of other databases on
 * the same server never wait on each other. */
#define STORE_PG_MIGRATION_LOCK 0x6d6179666c79LL
/* The first key of the KV stores' locks, one per store (the second is the
 * hash of its name): "mfkv" in ASCII. Locks of two 32-bit keys never meet
 * those of one 64-bit key. */
#define STORE_PG_KV_LOCK 1835428726

/* Connects to url (postgresql://…): on failure an error that names the
 * URL without its password and says why (the server's or libpq's words). */
int store__pg_connect(const char *url, PGconn **out, mf_error_t *err);
/* The same with application_name (shown in pg_stat_activity) set whatever
 * the URL says, and TCP keepalives on: for a connection that waits. */
int store__pg_connect_as(const char *url, const char *application_name, PGconn **out,
                         mf_error_t *err);
/* A listener (store/listen.h) on url's database. */
int store__pg_listen_open(const char *url, const char *channel, const char *application_name,
                          struct store_listener **out, mf_error_t *err);
/* Closes c, first stopping the thread that may be making it again. */
void store__pg_finish(PGconn *c);
/* Makes c, a lost connection, again (waiting a bounded time for the
 * server), with every statement store__pg_prepare prepared on it; keeps
 * the store's health (store/health.h) in step. */
int store__pg_reconnect(PGconn *c, mf_error_t *err);
/* c becomes a writer's: out (its writer's db) gets the link through which
 * the writer reconnects it and asks about a COMMIT cut off. */
void store__pg_writer_link(PGconn *c, store_writer_db_t *out);
/* Applies the migrations the database has not seen yet, in one
 * transaction under the advisory lock, and sets *version to the schema
 * version after them (postgres_schema.c). */
int store__pg_migrate(PGconn *c, int *version, mf_error_t *err);
/* The schema version this mayfly knows. */
int store__pg_schema_latest(void);

/* Fills err with "store: what: <why>" and returns -EIO, or -ECONNRESET
 * when the connection is gone or the server is going away ("the store
 * (PostgreSQL) cannot be reached: what: lost the connection to PostgreSQL
 * (why); retry later"). res (may be NULL) is the failed statement's
 * result. */
int store__pg_fail(PGconn *c, const PGresult *res, const char *what, mf_error_t *err);
/* Runs sql (one or more statements, no parameters, no rows wanted). */
int store__pg_exec(PGconn *c, const char *sql, const char *what, mf_error_t *err);

/* A statement prepared once on a connection: its name there, its SQL with
 * $N parameters, and their types, one letter each: t text, i bigint,
 * d double precision, b bytea. */
typedef struct store_pg_stmt {
    const char *name;
    const char *sql;
    const char *types;
} store_pg_stmt_t;

/* Prepares each of stmts (an entry without SQL, a statement the caller
 * has no need of, is left out), and again whenever c is made again (stmts
 * must live as long as c: a static table). An entry whose types are NULL
 * is not a statement to prepare but the session's set-up (a table of its
 * own, store__pg_copy_rows): it runs, in its place in the order, on each
 * new session. */
int store__pg_prepare(PGconn *c, const store_pg_stmt_t *stmts, size_t count, mf_error_t *err);

/* The connection of a store_t of postgres.c's, for the files that keep
 * tables of their own in the store (budgets_pg.c), and the statements
 * those prepare on each of the store's connections. */
struct store;
PGconn *store__pg_conn(struct store *s);
extern const store_pg_stmt_t store__pg_budget_stmts[];
extern const size_t store__pg_budget_stmt_count;
extern const store_pg_stmt_t store__pg_alert_stmts[];
extern const size_t store__pg_alert_stmt_count;
extern const store_pg_stmt_t store__pg_series_stmts[];
extern const size_t store__pg_series_stmt_count;

#define STORE_PG_MAX_PARAMS 40

/* A statement's parameters, every one in binary: numbers in network byte
 * order, text and bytea as their bytes. Filled through store__pg_binder;
 * never copied (values point into numbers). */
typedef struct store_pg_params {
    int n;
    bool too_big; /* a value longer than libpq can send */
    const char *values[STORE_PG_MAX_PARAMS];
    int lengths[STORE_PG_MAX_PARAMS];
    int formats[STORE_PG_MAX_PARAMS];
    uint64_t numbers[STORE_PG_MAX_PARAMS]; /* what number values point into */
} store_pg_params_t;

/* store/rows.h's binder onto p (which the caller zeroes first). */
store__binder_t store__pg_binder(store_pg_params_t *p);

/* Runs the prepared statement stmt with p (NULL: none), results in
 * binary: *out is the result, for the caller to PQclear. */
int store__pg_run(PGconn *c, const char *stmt, const store_pg_params_t *p, PGresult **out,
                  const char *what, mf_error_t *err);
/* Runs the prepared statement stmt count times, the i-th with the
 * parameters bind(ctx, i, binder) gives, sent together (libpq's pipeline
 * mode: one round trip for many statements instead of one each); each
 * result, in order, to take(ctx, i, res) when take is not NULL. The first
 * failure is the answer; the statements after it are not run (in a
 * transaction, as after any failed statement, it is aborted). */
int store__pg_run_each(PGconn *c, const char *stmt, size_t count,
                       void (*bind)(void *ctx, size_t i, const store__binder_t *b),
                       void (*take)(void *ctx, size_t i, const PGresult *res), void *ctx,
                       const char *what, mf_error_t *err);
/* Writes count rows with one COPY copy_sql (… FROM STDIN, text format):
 * bind(ctx, i, binder) binds row i's columns, in their order from 1, as
 * it would one row's parameters. Cheaper for PostgreSQL than the same
 * rows as a statement's parameters, however many a statement (arrays
 * unnested cost it twice as much: nothing to parse but the rows, and the
 * heap takes them many at a time), but with no answer: a statement
 * that needs one (an upsert, RETURNING) copies into a session's own
 * table first (store_pg_stmt_t.types NULL). Text and bytes arrive
 * intact; a NULL stays NULL. In a transaction, as any statement. */
int store__pg_copy_rows(PGconn *c, const char *copy_sql, size_t count,
                        void (*bind)(void *ctx, size_t i, const store__binder_t *b), void *ctx,
                        const char *what, mf_error_t *err);
/* As store__pg_run for a write whose answer is needed only once its
 * transaction is about to commit: on a writer's connection in a batch run
 * without savepoints (store_writer_link_t.defer) it is sent at once and
 * its answer read with the next statement's, or before the commit (one
 * round trip for many); take(ctx, res), when not NULL, gets the answer
 * then. Anywhere else it runs as store__pg_run does. A deferred write
 * that fails makes a later call, or the commit, fail: the writer then
 * runs the batch again with a savepoint per job, nothing deferred. */
int store__pg_defer(PGconn *c, const char *stmt, const store_pg_params_t *p,
                    void (*take)(void *ctx, const PGresult *res), void *ctx, const char *what,
                    mf_error_t *err);
/* As store__pg_run, for a statement whose only parameter is text key;
 * *changed (may be NULL) is how many rows it inserted, changed or
 * deleted. */
int store__pg_run_keyed(PGconn *c, const char *stmt, const char *key, int64_t *changed,
                        const char *what, mf_error_t *err);

/* One row of a binary result, as store/rows.h reads it. */
typedef struct store_pg_row {
    const PGresult *res;
    int row;
} store_pg_row_t;

store__row_t store__pg_row(store_pg_row_t *at);
/* Every row of res read by fill into a new array of items of size bytes. */
void store__pg_rows(const PGresult *res, size_t size, store__fill_fn fill, void **out,
                    size_t *count);
/* A column of a binary result as a number (bigint, integer, smallint). */
int64_t store__pg_int(const PGresult *res, int row, int col);

/* A writer's transactions (store/writer.h), also used for the batches a
 * caller of store_records_put makes on the loop's connection: without
 * durable, the commit does not wait for the WAL to reach the disk
 * (synchronous_commit = off: what a crash may lose are the last moments,
 * never a half transaction). Transactions do not nest: a begin while one
 * is open fails with -EBUSY. */
int store__pg_begin(PGconn *c, bool durable, mf_error_t *err);
/* An aborted transaction (a statement failed outside a savepoint) is
 * rolled back and reported, never taken for a commit. On a writer's
 * connection, the transaction's id is read first (one more round trip),
 * so that a COMMIT cut off by a lost connection can be asked about. */
int store__pg_commit(PGconn *c, mf_error_t *err);
void store__pg_rollback(PGconn *c);
/* A savepoint per job of a batch, so that one job can fail alone: release
 * keeps (keep) or undoes the job's work, which brings a transaction that
 * a failed statement aborted back to where the job began. A failure of
 * the release itself (the connection lost) leaves the transaction failed
 * or gone, and the batch's commit reports it. */
int store__pg_savepoint(PGconn *c, mf_error_t *err);
void store__pg_release(PGconn *c, bool keep);

#endif
