/* Durable executions and their operation logs, in the async queue's
 * database (DATA/queue.db, or the PostgreSQL database): every change is a
 * job of the queue's writer, so an acknowledged checkpoint is durable with
 * the queue's group commit. The
 * calls take a store_queue_t (store/queue.h) and follow its rules: one
 * thread per connection, 0 or a negative errno, -ENOENT for what is not
 * there. */
#ifndef MAYFLY_STORE_DURABLE_H
#define MAYFLY_STORE_DURABLE_H

#include "core/tenant.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/queue.h"

#define STORE_DURABLE_NAME_MAX 64
#define STORE_DURABLE_TOKEN_LEN 48

/* One execution. Strings marked owned are malloc'd (or NULL). */
typedef struct store_durable_exec {
    char id[37];
    char function[TENANT_QNAME_MAX + 1];
    char name[TENANT_QNAME_MAX + 1];
    char status[16];                         /* RUNNING SUCCEEDED FAILED TIMED_OUT STOPPED */
    char *input;                             /* owned: the event, JSON text */
    char *result;                            /* owned: the result's JSON text, or NULL */
    char *error;                             /* owned: an ErrorObject's JSON, or NULL */
    char token[STORE_DURABLE_TOKEN_LEN + 1]; /* the checkpoint token now valid, or "" */
    int64_t seq;                             /* the last change's number */
    int64_t token_seq;                       /* what the holder of token has seen */
    bool in_flight;                          /* an invocation runs it now */
    int64_t next_wake_ms;                    /* 0: nothing due */
    int64_t start_ms, end_ms, deadline_ms;
    int retention_days;
    int invocations; /* invocations started */
    int failures;    /* invocations in a row that ended without a status */
    /* The last acknowledged checkpoint, to answer its retry again. */
    char last_client_token[65];
    char last_token_in[STORE_DURABLE_TOKEN_LEN + 1];
    char *last_response; /* owned */
    /* A chained invoke's callee knows its caller's execution and operation. */
    char parent_id[37];
    char parent_op[65];
} store_durable_exec_t;

void store_durable_exec_clear(store_durable_exec_t *e);
void store_durable_exec_list_free(store_durable_exec_t *list, size_t count);

/* Inserts or replaces. */
int store_durable_exec_put(store_queue_t *q, const store_durable_exec_t *e, mf_error_t *err);
int store_durable_exec_get(store_queue_t *q, const char *id, store_durable_exec_t *out,
                           mf_error_t *err);
int store_durable_exec_by_name(store_queue_t *q, const char *function, const char *name,
                               store_durable_exec_t *out, mf_error_t *err);
/* Newest first; function and status may be NULL (any). */
int store_durable_exec_list(store_queue_t *q, const char *function, const char *status, int limit,
                            store_durable_exec_t **out, size_t *count, mf_error_t *err);
/* Every RUNNING execution (a restart takes them up again). */
int store_durable_exec_running(store_queue_t *q, store_durable_exec_t **out, size_t *count,
                               mf_error_t *err);

/* The operation log of an execution, in the order its operations started:
 * a JSON array of operation objects as durable/oplog keeps them (a new
 * reference). */
int store_durable_ops_get(store_queue_t *q, const char *exec_id, json_t **out, mf_error_t *err);
/* Writes op (an operation object) at position ord of the log. */
int store_durable_op_put(store_queue_t *q, const char *exec_id, int64_t ord, const json_t *op,
                         mf_error_t *err);
/* The execution and operation a callback id belongs to. */
int store_durable_callback_find(store_queue_t *q, const char *callback_id, char exec_id[37],
                                mf_error_t *err);

/* Counts by status into counts (RUNNING, SUCCEEDED, FAILED, TIMED_OUT,
 * STOPPED), and operations waiting (STARTED waits and callbacks). */
int store_durable_counts(store_queue_t *q, int64_t counts[5], int64_t *timers, int64_t *callbacks,
                         mf_error_t *err);
/* Removes finished executions whose retention has passed (1,000 at a
 * time); *n says how many went. */
int store_durable_prune(store_queue_t *q, int64_t now_ms, int64_t *n, mf_error_t *err);
/* A deleted function's executions go with it. */
int store_durable_forget_function(store_queue_t *q, const char *function, mf_error_t *err);

#endif
