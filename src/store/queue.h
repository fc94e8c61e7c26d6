/* The durable state of asynchronous invocations: queued events, the history
 * of their attempts, dead letters and idempotency keys (and, through the
 * same connection, durable executions, schedules and topics: durable.h,
 * schedules.h, topics.h). On one machine it lives in its own SQLite file,
 * DATA/queue.db, so that the queue's writer thread and the event loop's
 * writes to mayfly.db (functions, records, logs) never wait on each
 * other's locks; with a postgresql:// URL, in the tables of that database
 * (the same one as the store's, store/store.h), where several nodes share
 * it.
 *
 * A store_queue_t is one connection, used from one thread at a time: the
 * event loop opens one to read, and the writer thread (store/writer.h) one
 * to write. Calls return 0 or a negative errno and fill *err; -ENOENT when
 * the thing asked for does not exist. On PostgreSQL a lost connection fails
 * the call with -ECONNRESET and says so. */
#ifndef MAYFLY_STORE_QUEUE_H
#define MAYFLY_STORE_QUEUE_H

#include "core/tenant.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "store/store.h"
#include "store/writer.h"

typedef struct store_queue store_queue_t;

/* One accepted event. */
typedef struct store_qevent {
    /* Assigned at insert, never reused: the order of acceptance. Events
     * inserted on one connection get increasing numbers in the order they
     * were inserted. On PostgreSQL, across connections (nodes), numbers are
     * drawn in the order the inserts ran, but a transaction may commit
     * after another that drew a higher one: a reader can see seq 11 before
     * seq 10 appears, and numbers of rolled back inserts are skipped. */
    int64_t seq;
    char request_id[37];
    char function[TENANT_QNAME_MAX + 1];
    int64_t enqueued_ms;      /* accepted at (wall clock); its age counts from here */
    int64_t next_ms;          /* not to run before */
    int attempts;             /* attempts started */
    int fn_errors;            /* of which ended in a function error */
    int running;              /* an attempt was under way at the last write */
    void *event;              /* owned; NULL in listings */
    size_t event_len;
    char replay_of[37];       /* the record whose event this runs again, or "" */
    char traceparent[56];     /* the W3C traceparent it was accepted with, or "" */
    char caller_request_id[37]; /* the call whose function queued it, or "" */
    int call_depth;           /* the chain of calls between functions behind it */
    char trigger[80];         /* why it was queued (store_record_t's), "" for invoke */
    char tenant_id[STORE_TENANT_ID_MAX + 1]; /* its call's (store_record_t's), or "" */
    /* The node that holds it (store/nodes.h), as inserted: "" puts it in
     * the pool, for any node to take. Not read back by listings. */
    char owner[TENANT_QNAME_MAX + 1];
} store_qevent_t;

/* One attempt at an event, as its record's history shows it. */
typedef struct store_attempt {
    char request_id[37];
    int attempt;              /* 1, 2, … */
    int64_t start_ms;
    double duration_ms;
    char status[16];          /* success|error|timeout|oom|throttled|interrupted */
    char *error_type;         /* owned, NULL when none */
    char *error_message;
} store_attempt_t;

typedef struct store_dead_letter {
    int64_t id;               /* assigned at insert */
    char function[TENANT_QNAME_MAX + 1];
    char request_id[37];
    int attempts;
    char condition[24];       /* RetriesExhausted | EventAgeExceeded */
    char *error_type;         /* owned, NULL when none */
    char *error_message;
    void *event;              /* owned */
    size_t event_len;
    int64_t time_ms;
    char traceparent[56];     /* its event's caller's W3C traceparent, or "" */
    char trigger[80];         /* its event's, "" for invoke */
    char tenant_id[STORE_TENANT_ID_MAX + 1]; /* its event's, or "" */
} store_dead_letter_t;

/* Opens where: a data directory (DIR/queue.db, created and migrated), or
 * a postgresql:// URL (the database's schema migrated as store_open does,
 * under the same lock). */
int store_queue_open(const char *where, store_queue_t **out, mf_error_t *err);
void store_queue_close(store_queue_t *q);
/* True when other servers may share q's database (PostgreSQL): its events
 * are then held by nodes (store/nodes.h). */
bool store_queue_shared(const store_queue_t *q);
/* Opens another connection to where for a writer thread (store/writer.h):
 * its jobs get the store_queue_t as their db. */
int store_queue_writer_db(const char *where, store_writer_db_t *out, mf_error_t *err);

/* Transactions, for the writer's group commits. A durable one is fsync'd
 * at commit; the others (SQLite's synchronous=NORMAL, PostgreSQL's
 * synchronous_commit=off) reach the disk with the next durable commit or
 * checkpoint, and survive a crash of the process but not a power cut.
 * Transactions do not nest: a begin inside one fails. Savepoints let one
 * job of a batch fail without the rest. */
int store_queue_begin(store_queue_t *q, bool durable, mf_error_t *err);
int store_queue_commit(store_queue_t *q, mf_error_t *err);
void store_queue_rollback(store_queue_t *q);
int store_queue_savepoint(store_queue_t *q, mf_error_t *err);
/* Keeps (keep) or undoes the work since the savepoint. */
void store_queue_release(store_queue_t *q, bool keep);

/* Inserts ev (its body included) and sets ev->seq. */
int store_qevent_insert(store_queue_t *q, store_qevent_t *ev, mf_error_t *err);
/* Writes next_ms, attempts, fn_errors and running of the event ev->seq.
 * Updating or deleting an event that is already gone (its function was
 * deleted) does nothing and is not an error. */
int store_qevent_update(store_queue_t *q, const store_qevent_t *ev, mf_error_t *err);
int store_qevent_delete(store_queue_t *q, int64_t seq, mf_error_t *err);
/* Replaces out's contents with the event's body. */
int store_qevent_body(store_queue_t *q, int64_t seq, buf_t *out, mf_error_t *err);
/* Every queued event in acceptance order, without bodies. */
int store_qevent_list(store_queue_t *q, store_qevent_t **out, size_t *count, mf_error_t *err);
/* Takes up to limit (below zero: every) events of the pool, those no node
 * holds, oldest first: node holds them from now on. They are returned in
 * acceptance order, without bodies, as they were written: one whose
 * attempt was under way when its node went still says running. Two
 * connections never take the same event: on PostgreSQL, where several
 * nodes take from one table, rows another take holds are passed over (FOR
 * UPDATE SKIP LOCKED) rather than waited for, and a row taken meanwhile is
 * no longer in the pool. */
int store_qevent_take(store_queue_t *q, const char *node, int limit, store_qevent_t **out,
                      size_t *count, mf_error_t *err);
void store_qevent_list_free(store_qevent_t *list, size_t count);

int store_attempt_put(store_queue_t *q, const store_attempt_t *a, mf_error_t *err);
/* Oldest first. */
int store_attempt_list(store_queue_t *q, const char *request_id, store_attempt_t **out,
                       size_t *count, mf_error_t *err);
void store_attempt_list_free(store_attempt_t *list, size_t count);

/* Inserts dl and sets dl->id. With from_seq, the event's bytes are taken
 * from that queued event instead of dl->event. */
int store_dead_letter_put(store_queue_t *q, store_dead_letter_t *dl, int64_t from_seq,
                          mf_error_t *err);
/* -ENOENT unless function has the dead letter id. */
int store_dead_letter_get(store_queue_t *q, const char *function, int64_t id,
                          store_dead_letter_t *out, mf_error_t *err);
/* -ENOENT if it is not there (already redriven, say). */
int store_dead_letter_delete(store_queue_t *q, int64_t id, mf_error_t *err);
/* Newest first, at most limit. */
int store_dead_letter_list(store_queue_t *q, const char *function, int limit,
                           store_dead_letter_t **out, size_t *count, mf_error_t *err);
/* Calls cb once per function that has dead letters, with their number. */
int store_dead_letter_counts(store_queue_t *q, void (*cb)(const char *function, int64_t n, void *ud),
                             void *ud, mf_error_t *err);
void store_dead_letter_clear(store_dead_letter_t *dl);
void store_dead_letter_list_free(store_dead_letter_t *list, size_t count);

/* Idempotency keys: (function, key) → the request id it was given. A put
 * replaces a key created before live_since_ms; a live one stays, and the
 * put fails with -EEXIST and its request id in existing (may be NULL;
 * another node took the key first, say). */
int store_idem_put(store_queue_t *q, const char *function, const char *key,
                   const char *request_id, int64_t created_ms, int64_t live_since_ms,
                   char existing[37], mf_error_t *err);
/* Calls cb for every key created at or after since_ms. */
int store_idem_list(store_queue_t *q, int64_t since_ms,
                    void (*cb)(const char *function, const char *key, const char *request_id,
                               int64_t created_ms, void *ud),
                    void *ud, mf_error_t *err);
/* Deletes the keys created before before_ms. */
int store_idem_prune(store_queue_t *q, int64_t before_ms, mf_error_t *err);
/* Deletes attempt histories that began before attempts_before_ms and dead
 * letters written before dead_before_ms, in batches of 1,000 looked at in
 * the order they were made (queue_rows.h); says how many of each went. */
int store_queue_prune(store_queue_t *q, int64_t attempts_before_ms, int64_t dead_before_ms,
                      int64_t *attempts, int64_t *dead, mf_error_t *err);

/* Forgets a deleted function's queued events, dead letters and keys. */
int store_queue_forget_function(store_queue_t *q, const char *function, mf_error_t *err);

#endif
