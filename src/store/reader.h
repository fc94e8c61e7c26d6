/* Readers: a small pool of threads, each with a database connection of its
 * own, that run the reads the event loop hands them, so that a read that
 * costs a network round trip (a store on PostgreSQL) never holds up the
 * loop. Where a writer (store/writer.h) gathers jobs into one transaction,
 * a reader runs each job on its own, on whichever thread is free: reads
 * submitted one after the other may run at once and end in either order,
 * and a slow one holds up only its thread.
 *
 * A job's done callback runs on the event loop, once its read has ended.
 * A read never waits behind a write: the connections are not a writer's,
 * and what a read sees is what was committed when it ran (store/kv.h says
 * what that means for the KV stores). */
#ifndef MAYFLY_STORE_READER_H
#define MAYFLY_STORE_READER_H

#include <stddef.h>
#include <uv.h>

#include "core/error.h"
#include "store/writer.h"

typedef struct store_readers store_readers_t;

/* Starts one thread for each of the n connections dbs holds (opened for
 * the pool, n at least 1). The pool takes the connections over, closing
 * each with close once stopped, or all of them now if the start fails. */
int store_readers_start(uv_loop_t *loop, void *const *dbs, size_t n, void (*close)(void *db),
                        store_readers_t **out, mf_error_t *err);
/* Runs read(db, arg, err) on a free thread with its connection, then
 * done(arg, r, err) on the loop with what read returned. */
void store_readers_submit(store_readers_t *p, store_job_apply_fn read, store_job_done_fn done,
                          void *arg);
/* Runs every job submitted (and those their callbacks submit), calls their
 * callbacks, stops the threads and frees the pool (closing its handle
 * through the loop). NULL is fine. */
void store_readers_stop(store_readers_t *p);

#endif
