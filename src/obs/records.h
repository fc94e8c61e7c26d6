/* Invocation records, written to the store in batches off the request
 * path: added in memory, handed by a timer (or when many are waiting) to a
 * writer thread (store/writer.h) that commits them with its own
 * connection, never on the event loop. Readers sync first
 * (obs_records_sync), so a record is visible as soon as its call has
 * answered. */
#ifndef MAYFLY_OBS_RECORDS_H
#define MAYFLY_OBS_RECORDS_H

#include <stdbool.h>
#include <uv.h>

#include "store/store.h"

typedef struct obs_records obs_records_t;

/* True for a status a record can have: success, error, timeout, oom,
 * throttled, queued or running. */
bool obs_records_status_valid(const char *status);

/* writer is a store_writer_db writer of the store (shared with the logs). */
obs_records_t *obs_records_new(uv_loop_t *loop, store_writer_t *writer);
/* Queues a copy of rec: a call's one record. */
void obs_records_add(obs_records_t *r, const store_record_t *rec);
/* Queues a copy of rec in place of a record of the same request id still
 * waiting in the batch, if any: for records that change state (an async
 * event's queued, running, done). */
void obs_records_set(obs_records_t *r, const store_record_t *rec);
/* Counts what rec metered in usage without writing it as a record: a
 * call whose function's records must not show it (a tuning run's). */
void obs_records_usage_only(obs_records_t *r, const store_record_t *rec);
/* Hands every queued record to the writer now. */
void obs_records_flush(obs_records_t *r);
/* Calls cb(ud) on the loop once every record added so far is written. */
void obs_records_sync(obs_records_t *r, void (*cb)(void *ud), void *ud);
/* The same without hurrying them: they go to the writer when the batch
 * would have anyway (its timer, or its size), and cb runs after their
 * commit. For work that must follow records but need not be soon (an
 * async event's removal from the queue, which follows its last record),
 * so that an event's queued, running and done states are written once. */
void obs_records_after(obs_records_t *r, void (*cb)(void *ud), void *ud);
/* Blocks until every record added so far is written (for a stopping
 * server, which has no loop iteration left to wait in). */
void obs_records_flush_wait(obs_records_t *r);
/* Flushes, then frees (closing its timer through the loop). */
void obs_records_free(obs_records_t *r);

#endif
