/* Retention: invocation records (with their payloads) and log lines are
 * kept for a number of days and within a size, oldest going first, pruned
 * in small batches on the records' writer thread so that neither the loop
 * nor the writer is held up; freed pages go back to the file system. */
#ifndef MAYFLY_OBS_RETENTION_H
#define MAYFLY_OBS_RETENTION_H

#include <stdint.h>
#include <uv.h>

#include "store/writer.h"

typedef struct obs_retention obs_retention_t;

typedef struct obs_retention_config {
    int days;                  /* --retention-days: 1-3650 (default 7) */
    int64_t max_bytes;         /* --records-max-mb in bytes: records and logs (default 1 GiB) */
} obs_retention_config_t;

/* Starts pruning on writer (a store_writer_db writer of the store, as the
 * records'). */
obs_retention_t *obs_retention_start(uv_loop_t *loop, store_writer_t *writer,
                                     const obs_retention_config_t *cfg);
/* Stops the timer (a job in flight still completes; its callback then
 * frees the rest). */
void obs_retention_stop(obs_retention_t *r);

#endif
