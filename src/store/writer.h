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
 * loop after its batch committed (or failed), and in submission order. */
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
} store_writer_db_t;

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
/* Submits a read: a job whose apply only reads (with the writer's
 * connection, after every job submitted before it) and whose caller waits
 * for the answer. It needs no sync, but like a durable job it ends the
 * wait a batch makes for more jobs. */
void store_writer_submit_read(store_writer_t *w, store_job_apply_fn apply, store_job_done_fn done,
                              void *arg);
/* Calls cb(ud) on the loop once every job submitted so far has committed. */
void store_writer_barrier(store_writer_t *w, void (*cb)(void *ud), void *ud);
/* Blocks the caller until every job submitted so far has committed (their
 * callbacks still run on the loop later). For a server's last writes. */
void store_writer_wait(store_writer_t *w);
/* Runs every submitted job, calls their done callbacks, stops the thread
 * and frees the writer (closing its handle through the loop). */
void store_writer_stop(store_writer_t *w);

#endif
