/* A writer: one thread with its own database connection that runs the
 * jobs the event loop hands it, many at a time in one transaction (a group
 * commit), so that no write waits on the loop. The async queue has one for
 * queue.db; invocation records and function logs share one for mayfly.db.
 * A job that must be durable before its caller is answered (an accepted
 * event, before its 202) makes its whole batch commit with an fsync; while
 * that fsync runs, the next jobs gather for the next batch, so concurrent
 * enqueues share one sync.
 *
 * Jobs run in the order submitted; a job's done callback runs on the event
 * loop after its batch committed (or failed), and in submission order but
 * for one exception, below.
 *
 * A database that can go away (PostgreSQL: a restart, a failover, the
 * network) gives the writer a link (store_writer_link_t). A batch whose
 * connection is lost is run again on a new connection, once, if one can
 * be made at once (its writes: a read in it fails as below, since a
 * read's apply fills its answer as it goes and runs once). If none can, the database is away, and the writer
 * retries its connection with backoff (0.2 s doubling to 5 s, and at once
 * when another connection finds the store back, store/health.h) while it
 * sorts the jobs by who waits for them:
 *
 * - A job someone waits for (a durable one, which answers a request once
 *   it is committed, or a read) fails at once, with -ECONNRESET (it was
 *   tried, and the connection went) or -ENOTCONN (the store was known to
 *   be away): its caller answers 503 rather than wait. Its callback runs
 *   before those of the held jobs submitted before it (the exception).
 * - A job the server owes (any other: records and log lines, the queue's
 *   own updates and deletes, a barrier) is held, in order, and run once
 *   the database is back: nothing it says is lost or reordered.
 *
 * A batch whose COMMIT is cut off may or may not have been applied. Its
 * jobs are not run again blindly: once a connection is back, the link
 * asks the database what became of that transaction (its id, read before
 * the COMMIT). Applied, its jobs are done; not applied, they run again.
 * So a held job is applied exactly once. (Only when the database cannot
 * say, a transaction so old it forgot it, are they run again: at least
 * once, which nearly every owed job bears, being an upsert, an update or
 * a delete by key; log lines would then show twice, and an event's
 * destination be queued twice.) When the database cannot be asked at once
 * (it is away), the waited-on jobs of such a batch fail with a message
 * that says the outcome is not known: nothing is acknowledged that was
 * not committed.
 *
 * What a writer holds is bounded: WRITER_HELD_MAX_JOBS jobs and
 * WRITER_HELD_MAX_BYTES bytes (a job's size as its submitter gave it, or
 * a nominal WRITER_JOB_BYTES). Past either bound, newer owed jobs fail at
 * once with -ENOBUFS (logged once per outage): the oldest are kept, so
 * what reaches the database stays a prefix of what happened, in order. A
 * server stopped while its database is away tries once more, then fails
 * what it holds (logged, with how many). */
#ifndef MAYFLY_STORE_WRITER_H
#define MAYFLY_STORE_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"

typedef struct store_writer store_writer_t;

/* The connection a writer owns (opened for its thread) and how it groups
 * jobs: a transaction per batch, a savepoint per job. */
typedef struct store_writer_db {
    void *db;
    int (*begin)(void *db, bool durable, mf_error_t *err);
    int (*savepoint)(void *db, mf_error_t *err);
    /* Keeps (keep) or undoes the work since the savepoint. */
    void (*release)(void *db, bool keep);
    int (*commit)(void *db, mf_error_t *err);
    void (*close)(void *db);
    /* For a database that can go away (NULL on SQLite, whose failures
     * never mean that): link is what link_ops are called with. */
    void *link;
    const struct store_writer_link *link_ops;
} store_writer_db_t;

/* A connection that can be lost and made again, as a writer drives it
 * from its thread. */
typedef struct store_writer_link {
    /* After a batch: whether its connection was lost, and whether a COMMIT
     * was cut off with it (*in_doubt: the transaction may or may not have
     * been applied). */
    bool (*lost)(void *link, bool *in_doubt);
    /* Connects again, waiting a bounded time for the server, with every
     * statement prepared again; err says why not. Keeps the store's
     * health (store/health.h) in step. */
    int (*reconnect)(void *link, mf_error_t *err);
    /* Once reconnected, what became of the transaction in doubt: 1
     * applied, 0 not, -EAGAIN not settled yet (its old session is still
     * ending); another error when the database cannot say. */
    int (*committed)(void *link, mf_error_t *err);
    /* Where a savepoint costs a round trip to the database, the writer
     * runs a batch first without any, and only when one of its jobs fails
     * undoes the whole transaction with this and runs the batch again
     * with a savepoint per job (so a write job's apply may run twice, the
     * first run's writes undone: it must leave in its arg only what the
     * last run found; a batch with a read in it takes savepoints from the
     * start). NULL: a savepoint per job from the start. */
    void (*rollback)(void *link);
    /* Where a write's answer costs a round trip, a batch run without
     * savepoints may send writes without waiting for their answers: on
     * turns that on before its jobs run; off reads what is still to come
     * and says whether every one of them succeeded (a failure: the batch
     * is undone and run again with savepoints, nothing deferred). NULL:
     * every write is answered as it runs. */
    int (*defer)(void *link, bool on, mf_error_t *err);
} store_writer_link_t;

/* What a writer holds while its database is away (see above). */
#define WRITER_HELD_MAX_JOBS 65536u
#define WRITER_HELD_MAX_BYTES ((size_t)128 << 20)
#define WRITER_JOB_BYTES 512u

/* Runs on the writer thread inside a savepoint, with the writer's db: a
 * failure (r < 0) undoes this job's writes and no other's. */
typedef int (*store_job_apply_fn)(void *db, void *arg, mf_error_t *err);
/* Runs on the loop: r is 0, or the job's (or the commit's) error. */
typedef void (*store_job_done_fn)(void *arg, int r, const mf_error_t *err);

/* One committed batch, reported on the loop before its jobs' callbacks. */
typedef void (*store_commit_cb)(void *ud, unsigned jobs, bool durable, uint64_t commit_ns);

/* Starts the thread; the writer takes db over (closing it when stopped,
 * or now if the start fails). */
int store_writer_start(uv_loop_t *loop, const store_writer_db_t *db, store_commit_cb on_commit,
                       void *ud, store_writer_t **out, mf_error_t *err);
/* apply may be NULL: the job is then a barrier whose done runs once every
 * job submitted before it has committed. */
void store_writer_submit(store_writer_t *w, bool durable, store_job_apply_fn apply,
                         store_job_done_fn done, void *arg);
/* store_writer_submit with w, or without one (NULL: a module not given a
 * writer, as in unit tests) apply(db) now and done, before this returns. */
void store_writer_submit_or_run(store_writer_t *w, void *db, bool durable,
                                store_job_apply_fn apply, store_job_done_fn done, void *arg);
/* As store_writer_submit, for a job whose arg holds about bytes of memory
 * (a batch of records or log lines): the size it counts for while the
 * writer holds it. */
void store_writer_submit_sized(store_writer_t *w, bool durable, size_t bytes,
                               store_job_apply_fn apply, store_job_done_fn done, void *arg);
/* Submits a read: a job whose apply only reads (with the writer's
 * connection, after every job submitted before it) and whose caller waits
 * for the answer. It needs no sync, but like a durable job it ends the
 * wait a batch makes for more jobs. */
void store_writer_submit_read(store_writer_t *w, store_job_apply_fn apply, store_job_done_fn done,
                              void *arg);
/* Calls cb(ud) on the loop once every job submitted so far has committed. */
void store_writer_barrier(store_writer_t *w, void (*cb)(void *ud), void *ud);
/* Blocks the caller until every job submitted so far has committed (their
 * callbacks still run on the loop later), or is held for a database that
 * is away (it never blocks for an outage). For a server's last writes. */
void store_writer_wait(store_writer_t *w);
/* Runs every submitted job, calls their done callbacks, stops the thread
 * and frees the writer (closing its handle through the loop). With its
 * database away, it tries to reconnect once, then fails what it holds. */
void store_writer_stop(store_writer_t *w);

#endif
