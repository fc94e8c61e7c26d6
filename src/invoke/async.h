/* Asynchronous invocations: a durable queue inside the server.
 *
 * An event is accepted only once it is on disk (store/writer.h's group
 * commit, fsync'd), and leaves the queue only once its outcome is: success,
 * or a dead letter after its retries or its age ran out. Between the two it
 * runs on the same pools and limits as synchronous calls, but only where a
 * function could start a call at once and no synchronous caller waits, so
 * a backlog never stands in front of a synchronous call. The queue lives
 * in its own SQLite file under the data directory, or in the PostgreSQL
 * database the server shares (store/queue.h); either way, once the queue
 * is open, none of its own work reads the database on the loop.
 *
 * Retries follow Lambda: a function error (error, timeout, out of memory) is
 * retried up to async.max_retries times, after about 1 and then about 2
 * retry bases (60 s by default), with jitter; a throttle or a platform
 * error is retried with exponential backoff until the event's age limit.
 * An attempt cut short by a crash or a restart is run again, and its record
 * says so. Delivery is at least once: an event may run twice.
 *
 * On PostgreSQL several servers (nodes) share the queue: each runs the
 * events it accepted while it has few waiting, and puts the others in the
 * pool, from which any node with few waiting takes them (store/nodes.h).
 * A node that stops puts its events back in the pool; one that dies has
 * them put back by the first node to find its lease expired. */
#ifndef MAYFLY_INVOKE_ASYNC_H
#define MAYFLY_INVOKE_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/id.h"
#include "exec/exec.h"
#include "obs/records.h"
#include "registry/registry.h"
#include "store/queue.h"

typedef struct async_config {
    unsigned retry_base_ms;      /* function errors retry after ~1× and ~2× this (60000) */
    size_t max_event_bytes;      /* largest event (256 KiB) */
    unsigned shutdown_grace_ms;  /* how long a stop waits for running events (10 s) */
    const char *region;          /* for the function ARNs of destination records */
    int retention_days;          /* attempt histories are kept this long (7) */
    int dead_letter_days;        /* dead letters not redriven are kept this long (14) */
    /* Bytes of queued events' bodies kept in memory from their acceptance
     * to their end (64 MiB), so that an attempt does not read its event
     * back from the store; the bodies of events past it, and of those a
     * restart takes up, are read back off the loop when they are about to
     * run. */
    size_t max_kept_bytes;
    /* This server as a node of those sharing the queue's database
     * (store/nodes.h): its id (unique to this run; NULL: one is made up),
     * its API's address, and the lease a node's beats renew (15 s): a node
     * silent for longer is taken for gone, and the events it held run on
     * other nodes, their cut attempts marked interrupted. */
    const char *node;
    const char *address;
    unsigned lease_ms;
    /* Accepting goes first (invoke/limit.h, the foreground) while the event
     * loop's demand is at least this many percent (90); 0: whenever events
     * are being accepted; -1: never. */
    int accept_first_percent;
} async_config_t;

#define ASYNC_CONFIG_DEFAULT                                                                       \
    { 60000, 256u << 10, 10000, "us-east-1", 7, 14, (size_t)64 << 20, NULL, NULL, 15000, 90 }

/* An idempotency key is remembered this long. */
#define ASYNC_IDEMPOTENCY_MS (24LL * 3600 * 1000)
#define ASYNC_IDEMPOTENCY_KEY_MAX 256

typedef struct async async_t;

/* Opens the queue at where (store_queue_open's: a data directory's
 * queue.db, or a postgresql:// URL), starts its writer, and takes up the
 * events a previous run left (those it was running are run again). */
int async_open(uv_loop_t *loop, const char *where, exec_t *exec, registry_t *registry,
               obs_records_t *records, const async_config_t *cfg, async_t **out,
               mf_error_t *err);

/* r is 0 and request_id the event's once it is durably queued; replay is
 * true when an idempotency key matched an earlier event, whose id it is. */
typedef void (*async_accepted_cb)(void *ud, int r, const char *request_id, bool replay,
                                  const mf_error_t *err);

typedef struct async_enqueue_opts {
    const char *idem_key;        /* an idempotency key, or NULL */
    const char *replay_of;       /* the record whose event this runs again (its
                                  * records say replay_of), or NULL */
    const char *traceparent;     /* the caller's W3C traceparent, or NULL; one
                                  * that does not parse is ignored */
    const char *caller_request_id; /* queued from inside this call, or NULL */
    int call_depth;              /* exec_call_opts_t's */
    const char *trigger;         /* exec_call_opts_t's: why it is queued (NULL: invoke) */
    /* exec_call_opts_t's: the call's tenant id, or NULL, checked against
     * the function's tenant isolation mode when the event is accepted
     * (-EINVAL) and kept with it; tenant_field names where it came from. */
    const char *tenant_id;
    const char *tenant_field;
    /* exec_call_opts_t's: the access key whose request queued it, or NULL
     * (in the event's record from the start; not kept with the event). */
    const char *key_id;
    /* Runs on the writer's thread in the transaction that inserts the
     * event, after the insert, with the event as written: a failure undoes
     * the event as well, and cb gets it. For a row that must exist if and
     * only if the event does (a schedule's fire log). NULL: none. */
    int (*with_event)(store_queue_t *q, const store_qevent_t *ev, void *arg, mf_error_t *err);
    void *with_event_arg;
} async_enqueue_opts_t;

/* Queues event (taking its memory on success) for function; opts may be
 * NULL. Fails at once, without calling cb, with -ENOENT (no such
 * function), -EFBIG (too large), -EINVAL (a bad key) or -ESHUTDOWN
 * (stopping). */
int async_enqueue(async_t *a, const char *function, buf_t *event,
                  const async_enqueue_opts_t *opts, async_accepted_cb cb, void *ud,
                  mf_error_t *err);
/* One event of a batch (async_enqueue_batch). */
typedef struct async_batch_event {
    const char *function;
    buf_t event;                 /* taken on success */
    /* Its call's tenant id (a subscription's), or NULL; one the function's
     * tenant isolation mode does not take leaves the event out. */
    const char *tenant_id;
    char request_id[ID_UUID_LEN + 1]; /* set by async_enqueue_batch: the event's id,
                                       * or "" when the function does not exist
                                       * or refused its tenant id */
} async_batch_event_t;

/* r is 0 once every event of the batch is durably queued, or the error
 * that left all of them out. */
typedef void (*async_batch_cb)(void *ud, int r, const mf_error_t *err);

/* Queues n events, for any functions, atomically: one durable job of the
 * writer's group commit writes them all and also(db, also_arg) (may be
 * NULL; run on the writer thread with the queue's store_queue_t, in the
 * same transaction), so a crash keeps all or none. Events of functions
 * that do not exist are left out (their request_id ""). opts apply to
 * every event; its idem_key must be NULL. The caller bounds the events'
 * sizes. Fails at once, without calling cb, with -ESHUTDOWN (stopping) or
 * -EINVAL. Each event then runs, retries and dead-letters on its own. */
int async_enqueue_batch(async_t *a, async_batch_event_t *events, size_t n,
                        const async_enqueue_opts_t *opts, store_job_apply_fn also,
                        void *also_arg, async_batch_cb cb, void *ud, mf_error_t *err);

/* Runs a job on another table of the queue's database (store/topics.h,
 * say) on the queue's writer, in order with the queue's own jobs;
 * -ESHUTDOWN, without calling done, once the queue is closing. */
int async_write(async_t *a, bool durable, store_job_apply_fn apply, store_job_done_fn done,
                void *arg, mf_error_t *err);
/* The same for a read that someone waits for, off the loop
 * (store_writer_submit_read). */
int async_read(async_t *a, store_job_apply_fn read, store_job_done_fn done, void *arg,
               mf_error_t *err);

/* Queues dead letter id of function again, as a new event (read, deleted
 * and queued again in one job of the queue's writer); -ENOENT at once when
 * there is no such function, through cb when there is no such dead
 * letter. */
int async_redrive(async_t *a, const char *function, int64_t id, async_accepted_cb cb, void *ud,
                  mf_error_t *err);

/* The loop's own connection to the queue's database, for reading at the
 * start. A read on it afterwards holds up the loop for as long as the
 * database takes (a round trip on PostgreSQL): reads of a request go
 * through async_read instead. */
store_queue_t *async_store(async_t *a);
/* The writer of the queue's database, for its other tables (a job's db is
 * its store_queue_t): their writes commit in order with the queue's. */
store_writer_t *async_writer(async_t *a);

/* This node's id, and its lease (async_config_t's). */
const char *async_node(const async_t *a);
unsigned async_lease_ms(const async_t *a);

typedef struct async_fn_stats {
    uint64_t depth;              /* waiting (to run, or to be retried) */
    uint64_t running;
    uint64_t limit;              /* attempts it may run at once now (invoke/limit.h) */
    double oldest_age_s;         /* of the oldest event not yet done */
    uint64_t dead_letters;
    uint64_t enqueued, attempts, retries; /* since the server started */
} async_fn_stats_t;

void async_function_stats(async_t *a, const char *function, async_fn_stats_t *out);
/* The registry changed or removed a function: new settings apply to its
 * queue; a removed function's events, dead letters and keys go, from
 * memory and (stored) from the store: false where another server sharing
 * the store deleted it, and deleted them there (doing it again could take
 * the events of a function made again since). */
void async_function_changed(async_t *a, const fn_t *fn);
void async_function_removed(async_t *a, const char *function, bool stored);

/* Whether function's events wait in the queue for now (a spent budget,
 * meter/budget.h), and why, into why: asked before each event starts,
 * from memory. A held event is not an attempt, and waits however old it
 * gets; its record (status queued) says why it waits. NULL: none. */
typedef bool (*async_hold_fn)(void *ud, const char *function, char *why, size_t len);
void async_set_hold(async_t *a, async_hold_fn hold, void *ud);
/* What the hold answers may have changed (a budget raised, deleted, or
 * its period over): the held functions' events start again where they
 * may. */
void async_hold_changed(async_t *a);

/* Stops accepting and starting events, waits up to the grace period for
 * running ones, then calls done. Attempts still running after it are cut
 * short by the instances' shutdown and go back to the queue. */
void async_stop(async_t *a, void (*done)(void *ud), void *ud);
/* After the instances are gone: writes what is left and closes. */
void async_close(async_t *a);

#endif
