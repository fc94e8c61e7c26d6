/* Invocation records, written to the store in batches off the request
 * path: added in memory, flushed by a timer (or when many are waiting) in
 * one transaction. Readers flush first, so a record is visible as soon as
 * its call has answered. */
#ifndef MAYFLY_OBS_RECORDS_H
#define MAYFLY_OBS_RECORDS_H

#include <stdbool.h>
#include <uv.h>

#include "store/store.h"

typedef struct obs_records obs_records_t;

/* True for a status a record can have: success, error, timeout, oom,
 * throttled, queued or running. */
bool obs_records_status_valid(const char *status);

obs_records_t *obs_records_new(uv_loop_t *loop, store_t *store);
/* Queues a copy of rec: a call's one record. */
void obs_records_add(obs_records_t *r, const store_record_t *rec);
/* Queues a copy of rec in place of a record of the same request id still
 * waiting in the batch, if any: for records that change state (an async
 * event's queued, running, done). */
void obs_records_set(obs_records_t *r, const store_record_t *rec);
/* Writes every queued record now. */
int obs_records_flush(obs_records_t *r, mf_error_t *err);
/* Flushes, then frees (closing its timer through the loop). */
void obs_records_free(obs_records_t *r);

#endif
