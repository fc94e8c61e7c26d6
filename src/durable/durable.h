/* Durable functions: Lambda's checkpoint-and-replay execution
 * (docs/durable.md).
 *
 * A function whose settings carry "durable" runs each invocation as a
 * durable execution. The handler (AWS's durable execution SDK) gets
 * {DurableExecutionArn, CheckpointToken, InitialExecutionState} and
 * checkpoints its operations (steps, waits, callbacks, chained invokes,
 * contexts) through the Lambda API's CheckpointDurableExecution, which it
 * reaches inside its sandbox on the instance's own listener. It answers
 * {Status: SUCCEEDED|FAILED|PENDING, Result, Error}; PENDING suspends the
 * execution, holding no instance, until a wait ends, a step's retry is
 * due, a callback completes or a callee finishes: then the function is
 * invoked again with the whole operation log, and replays to where it was.
 *
 * Every change of an execution is a job of the async queue's writer
 * (queue.db, store/durable.h), fsync'd before it is acknowledged; a
 * restart takes up every execution still running. */
#ifndef MAYFLY_DURABLE_DURABLE_H
#define MAYFLY_DURABLE_DURABLE_H

#include "core/tenant.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/error.h"
#include "registry/registry.h"
#include "store/queue.h"

/* ---- configuration (a function's "durable" settings) ------------------- */

#define DURABLE_TIMEOUT_MIN 1
#define DURABLE_TIMEOUT_MAX 31622400
#define DURABLE_TIMEOUT_DEFAULT 86400
#define DURABLE_RETENTION_MIN 1
#define DURABLE_RETENTION_MAX 90
#define DURABLE_RETENTION_DEFAULT 14

/* ---- execution ARNs ----------------------------------------------------- */

/* arn:aws:lambda:REGION:ACCOUNT:function:NAME:$LATEST/durable-execution/
 * EXECUTION_NAME/ID, Lambda's shape. */
typedef struct durable_arn {
    char region[33];
    char account[13];
    char function[TENANT_QNAME_MAX + 1];
    char name[TENANT_QNAME_MAX + 1]; /* the execution's name */
    char id[37];   /* the execution's id */
} durable_arn_t;

/* 0, or -EINVAL when s is not an execution ARN (a URL-encoded one is
 * decoded first: ARNs arrive in paths). */
int durable_arn_parse(const char *s, durable_arn_t *out);
void durable_arn_format(const char *region, const char *function, const char *name, const char *id,
                        char *out, size_t len);
/* True for a valid execution name: [A-Za-z0-9_-]{1,64}. */
bool durable_name_valid(const char *s);

/* ---- the checkpoint request --------------------------------------------- */

#define DURABLE_MAX_UPDATES 250
#define DURABLE_MAX_PAYLOAD (256u << 10) /* one operation's payload or error */
#define DURABLE_MAX_ID 256
#define DURABLE_MAX_OPERATIONS 10000 /* in one execution's log */

typedef struct durable_checkpoint_req {
    char token[128];
    char client_token[65]; /* "" when none */
    json_t *updates;       /* owned: the array of OperationUpdates, checked */
} durable_checkpoint_req_t;

/* Parses and checks CheckpointDurableExecution's body: every update has
 * a known Type and Action, an Id, and bounded strings and payloads.
 * -EINVAL (a bad field, named), -EFBIG (a payload past
 * DURABLE_MAX_PAYLOAD). */
int durable_checkpoint_parse(const char *body, size_t len, durable_checkpoint_req_t *out,
                             mf_error_t *err);
void durable_checkpoint_req_clear(durable_checkpoint_req_t *req);

/* ---- the operation log -------------------------------------------------- */

/* An execution's operations in the order they started, as Lambda's
 * Operation objects plus fields of mayfly's own whose names begin with
 * '_' (the change number, due times), which durable_op_public drops. */
typedef struct durable_oplog {
    json_t *ops;   /* array, owned */
    json_t *index; /* Id → position, owned */
    int64_t seq;   /* the last change's number */
    /* What the updates applied asked of the execution. */
    const char *outcome; /* NULL, "SUCCEEDED" or "FAILED" */
    json_t *result;      /* the execution's result payload (string), or NULL */
    json_t *error;       /* its ErrorObject, or NULL */
    json_t *chained;     /* [{ord, function, payload}] chained invokes started */
    json_t *changed;     /* positions changed since durable_oplog_init */
} durable_oplog_t;

/* Takes ops (a new reference, or NULL for an empty log). */
void durable_oplog_init(durable_oplog_t *log, json_t *ops, int64_t seq);
void durable_oplog_release(durable_oplog_t *log);
/* The operation with this Id, or NULL; *ord its position. */
json_t *durable_oplog_find(const durable_oplog_t *log, const char *id, size_t *ord);
/* Appends the execution's first operation (Type EXECUTION) holding the
 * input payload. */
void durable_oplog_start(durable_oplog_t *log, const char *id, const char *input, int64_t now_ms);
/* Applies one checked update at now_ms. -EINVAL when it does not fit the
 * operation's state (a START of an operation of another type, a SUCCEED
 * of a finished one, …); err says why. */
int durable_oplog_apply(durable_oplog_t *log, const json_t *update, const char *exec_id,
                        int64_t now_ms, mf_error_t *err);
/* Moves what is due at now_ms on: a wait whose time is up succeeds, a
 * step whose retry is due becomes READY, a callback past its timeout or
 * heartbeat times out. True when something changed. */
bool durable_oplog_advance(durable_oplog_t *log, int64_t now_ms);
/* When the next of those is due (0: nothing is). */
int64_t durable_oplog_next_wake(const durable_oplog_t *log);
/* True when an operation waits on something only the outside ends (a
 * callback, a chained invoke), with no due time. */
bool durable_oplog_waiting(const durable_oplog_t *log);
/* Completes a callback: kind "succeed" (payload, a string or NULL),
 * "fail" (error, an ErrorObject) or "heartbeat". -ENOENT when no
 * callback has this id, -EINVAL (err) when it is not waiting any more. */
int durable_oplog_callback(durable_oplog_t *log, const char *callback_id, const char *kind,
                           const json_t *payload, const json_t *error, int64_t now_ms,
                           mf_error_t *err);
/* Ends the chained invoke at position ord: status SUCCEEDED (result),
 * FAILED, TIMED_OUT or STOPPED (error). */
void durable_oplog_chained_done(durable_oplog_t *log, size_t ord, const char *status,
                                const json_t *result, const json_t *error, int64_t now_ms);
/* The operation as the Lambda API shows it: a copy without mayfly's own
 * fields (a new reference). */
json_t *durable_op_public(const json_t *op);

/* ---- the engine ---------------------------------------------------------- */

struct async;
struct exec;

typedef struct durable durable_t;

typedef struct durable_config {
    const char *region;
} durable_config_t;

/* Takes up the executions a previous run left running. Its gauges
 * (mayfly_durable_executions{status}, mayfly_durable_pending{kind}) are
 * read from queue.db when /metrics is asked. */
int durable_open(uv_loop_t *loop, struct async *async, struct exec *exec, registry_t *registry,
                 const durable_config_t *cfg, durable_t **out, mf_error_t *err);
/* Stops timers and answers every waiting caller with -ESHUTDOWN. */
void durable_stop(durable_t *d);
void durable_close(durable_t *d);

/* The function's durable settings changed or it went (its executions
 * with it; from the store too when stored, false where another server
 * sharing the store deleted it and them). */
void durable_function_changed(durable_t *d, const fn_t *fn);
void durable_function_removed(durable_t *d, const char *function, bool stored);
/* True when calls of function start durable executions. */
bool durable_is_durable(durable_t *d, const char *function);

/* What a start or a wait for an execution answers. */
typedef struct durable_outcome {
    int r; /* 0, or the platform's error (err says) */
    const mf_error_t *err;
    const char *arn;
    const char *id;
    const char *status; /* the execution's */
    const char *result; /* its result's JSON text, or NULL */
    const char *error;  /* its ErrorObject's JSON text, or NULL */
    bool existed;       /* a start by a name already taken */
} durable_outcome_t;
typedef void (*durable_outcome_cb)(void *ud, const durable_outcome_t *o);

typedef struct durable_start_opts {
    const char *name; /* DurableExecutionName, or NULL for the id */
    bool wait;        /* call cb when the execution ends, not once it starts */
    const char *caller_request_id;
} durable_start_opts_t;

/* Starts an execution of function with input (JSON; taken): cb once it is
 * on disk (or, with opts->wait, once it ends). A name already taken
 * answers that execution (existed), with -EEXIST when its input differs. */
int durable_start(durable_t *d, const char *function, buf_t *input,
                  const durable_start_opts_t *opts, durable_outcome_cb cb, void *ud,
                  mf_error_t *err);

/* An answer of the Lambda API: status and the JSON body, or an error
 * (status >= 400, type as Lambda names it, message). */
typedef struct durable_answer {
    int status;
    const char *error_type;
    const char *message;
    const json_t *body;
} durable_answer_t;
typedef void (*durable_answer_cb)(void *ud, const durable_answer_t *a);

/* CheckpointDurableExecution on execution id from function caller (the
 * function whose instance asks, or NULL from outside). */
void durable_checkpoint(durable_t *d, const char *caller, const durable_arn_t *arn,
                        const char *body, size_t len, durable_answer_cb cb, void *ud);
/* GetDurableExecutionState: a page of the log from marker. */
void durable_state(durable_t *d, const char *caller, const durable_arn_t *arn, const char *token,
                   const char *marker, int max_items, durable_answer_cb cb, void *ud);
/* Completes a callback from outside: kind "succeed", "fail", "heartbeat". */
void durable_callback(durable_t *d, const char *callback_id, const char *kind, const char *body,
                      size_t len, durable_answer_cb cb, void *ud);
/* StopDurableExecution. */
void durable_stop_execution(durable_t *d, const char *id, const json_t *error, durable_answer_cb cb,
                            void *ud);

/* Reads on q, a connection to the async queue's database used on the
 * thread that owns it: a job's of async_write (as the API makes them, so
 * that the loop waits for no database). They use nothing of d's but its
 * settings. view: 'l'ambda's shape or mayfly's 'v'1 shape. A new
 * reference or NULL with -ENOENT. */
int durable_get(durable_t *d, store_queue_t *q, const char *id, char view, bool with_ops,
                json_t **out, mf_error_t *err);
int durable_list(durable_t *d, store_queue_t *q, const char *function, const char *status,
                 int limit, char view, json_t **out, mf_error_t *err);
/* GetDurableExecutionHistory: its operations as events, a page from marker. */
int durable_history(durable_t *d, store_queue_t *q, const char *id, const char *marker,
                    int max_items, json_t **out, mf_error_t *err);
/* Removes executions past their retention. */
void durable_prune(durable_t *d);

#endif
