/* What both backends' queue tables have in common (store/queue.h,
 * durable.h, schedules.h, topics.h), as store/rows.h has it for functions
 * and records: their columns, the statements that are the same text on
 * both (in P's syntax, STORE__SQLITE_P or STORE__PG_P), and the one
 * mapping between those columns and the structs. What each backend words
 * its own way (an upsert, a claim) is in its own files. Not for other
 * modules.
 *
 * A limit below zero means no limit: SQLite reads LIMIT -1 so, and
 * PostgreSQL is given NULL for it (LIMIT NULL is LIMIT ALL). */
#ifndef MAYFLY_STORE_QUEUE_ROWS_H
#define MAYFLY_STORE_QUEUE_ROWS_H

#include <jansson.h>

#include "store/durable.h"
#include "store/nodes.h"
#include "store/queue.h"
#include "store/rows.h"
#include "store/schedules.h"
#include "store/topics.h"

/* ---- events --------------------------------------------------------------- */

/* What a listing reads: everything but the body. */
#define STORE_QEVENT_COLUMNS                                                                       \
    "seq, request_id, function, enqueued_ms, next_ms, attempts, fn_errors, running, replay_of,"    \
    " traceparent, caller_request_id, call_depth, trigger, tenant_id"
#define STORE_QEVENT_INSERT(P)                                                                     \
    "INSERT INTO events (request_id, function, event, enqueued_ms, next_ms, attempts, fn_errors,"  \
    " running, replay_of, traceparent, caller_request_id, call_depth, trigger, owner, tenant_id)"  \
    " VALUES (" P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7) "," P(8) "," P(9) ","  \
    P(10) "," P(11) "," P(12) "," P(13) "," P(14) "," P(15) ")"
#define STORE_QEVENT_UPDATE(P)                                                                     \
    "UPDATE events SET next_ms = " P(2) ", attempts = " P(3) ", fn_errors = " P(4)                 \
    ", running = " P(5) " WHERE seq = " P(1)
#define STORE_QEVENT_DELETE(P) "DELETE FROM events WHERE seq = " P(1)
#define STORE_QEVENT_BODY(P) "SELECT event FROM events WHERE seq = " P(1)
#define STORE_QEVENT_LIST "SELECT " STORE_QEVENT_COLUMNS " FROM events ORDER BY seq"
/* What a take changes (store_qevent_take): P(1) the node, P(2) the
 * limit; the pool is the events no node holds, oldest first. Each backend
 * words the choice of rows its own way. */
#define STORE_QEVENT_POOL(P) "SELECT seq FROM events WHERE owner IS NULL ORDER BY seq LIMIT " P(2)
#define STORE_QEVENT_TAKE_SET(P) "UPDATE events SET owner = " P(1)
#define STORE_QEVENT_TAKEN " RETURNING " STORE_QEVENT_COLUMNS

/* ---- nodes (store/nodes.h) ------------------------------------------------- */

#define STORE_NODE_COLUMNS "id, address, started_ms, heartbeat_ms, left_ms, lost, instances"
/* A node's beat: its row written, P(1)..P(5) in STORE_NODE_COLUMNS' order
 * without left_ms and lost; what it returns says whether another node had
 * found it gone. */
#define STORE_NODE_BEAT(P)                                                                         \
    "INSERT INTO nodes (id, address, started_ms, heartbeat_ms, instances) VALUES (" P(1) ","       \
    P(2) "," P(3) "," P(4) "," P(5) ") ON CONFLICT (id) DO UPDATE SET address = excluded.address," \
    " heartbeat_ms = excluded.heartbeat_ms, instances = excluded.instances RETURNING left_ms"
#define STORE_NODE_BACK(P) "UPDATE nodes SET left_ms = 0, lost = 0 WHERE id = " P(1)
/* The nodes other than P(1) whose last beat is older than P(2), found
 * gone at P(3). */
#define STORE_NODE_EXPIRE(P)                                                                       \
    "UPDATE nodes SET left_ms = " P(3) ", lost = 1 WHERE left_ms = 0 AND id <> " P(1)             \
    " AND heartbeat_ms < " P(2) " RETURNING id"
#define STORE_NODE_RELEASE(P) "UPDATE events SET owner = NULL WHERE owner = " P(1)
/* The events of every node that left (gone or stopped) back to the pool:
 * whichever node finds one gone puts them back, and a beat that comes
 * after a failed one finishes what it began. */
#define STORE_NODE_RELEASE_GONE                                                                    \
    "UPDATE events SET owner = NULL WHERE owner IN (SELECT id FROM nodes WHERE left_ms <> 0)"
#define STORE_NODE_ALIVE(P) "SELECT count(*) FROM nodes WHERE left_ms = 0 AND heartbeat_ms >= " P(1)
#define STORE_NODE_LEAVE(P) "UPDATE nodes SET left_ms = " P(2) ", lost = 0 WHERE id = " P(1)
#define STORE_NODE_LIST                                                                            \
    "SELECT " STORE_NODE_COLUMNS " FROM nodes ORDER BY started_ms DESC, id"
#define STORE_NODE_PRUNE(P)                                                                        \
    "DELETE FROM nodes WHERE left_ms <> 0 AND left_ms < " P(1)                                    \
    " AND NOT EXISTS (SELECT 1 FROM events WHERE owner = nodes.id)"
/* The table, on both (queue.db's migration 10, PostgreSQL's 11): ints as
 * bigint there. */
#define STORE__NODES_TABLE(TEXT, INT)                                                              \
    "CREATE TABLE nodes ("                                                                         \
    "  id           " TEXT " PRIMARY KEY,"                                                         \
    "  address      " TEXT " NOT NULL,"                                                            \
    "  started_ms   " INT " NOT NULL,"                                                             \
    "  heartbeat_ms " INT " NOT NULL,"                                                             \
    "  left_ms      " INT " NOT NULL DEFAULT 0,"                                                   \
    "  lost         " INT " NOT NULL DEFAULT 0,"                                                   \
    "  instances    " INT " NOT NULL DEFAULT 0"                                                    \
    ");"

/* ---- attempts ------------------------------------------------------------- */

#define STORE_ATTEMPT_COLUMNS                                                                      \
    "request_id, attempt, start_ms, duration_ms, status, error_type, error_message"
#define STORE_ATTEMPT_VALUES(P) P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7)
#define STORE_ATTEMPT_LIST(P)                                                                      \
    "SELECT " STORE_ATTEMPT_COLUMNS " FROM attempts WHERE request_id = " P(1) " ORDER BY attempt"

/* ---- dead letters --------------------------------------------------------- */

#define STORE_DL_COLUMNS                                                                           \
    "id, function, request_id, attempts, condition, error_type, error_message, event, time_ms,"    \
    " traceparent, trigger, tenant_id"
#define STORE_DL_INSERT                                                                            \
    "INSERT INTO dead_letters (function, request_id, attempts, condition, error_type,"            \
    " error_message, event, time_ms, traceparent, trigger, tenant_id)"
#define STORE_DL_PUT(P)                                                                            \
    STORE_DL_INSERT " VALUES (" P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7) ","     \
                    P(8) "," P(9) "," P(10) "," P(11) ")"
/* The event's bytes, traceparent, trigger and tenant id from the queued
 * event P(7). */
#define STORE_DL_PUT_FROM_EVENT(P)                                                                 \
    STORE_DL_INSERT " SELECT " P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) ",event," P(8)    \
                    ",traceparent,trigger,tenant_id FROM events WHERE seq = " P(7)
#define STORE_DL_GET(P)                                                                            \
    "SELECT " STORE_DL_COLUMNS " FROM dead_letters WHERE function = " P(1) " AND id = " P(2)
#define STORE_DL_DELETE(P) "DELETE FROM dead_letters WHERE id = " P(1)
#define STORE_DL_LIST(P)                                                                           \
    "SELECT " STORE_DL_COLUMNS " FROM dead_letters WHERE function = " P(1)                         \
    " ORDER BY id DESC LIMIT " P(2)
#define STORE_DL_COUNTS "SELECT function, count(*) FROM dead_letters GROUP BY function"

/* ---- idempotency keys, pruning, forgetting -------------------------------- */

#define STORE_IDEM_COLUMNS "function, key, request_id, created_ms"
/* Writes a key unless a live one (created at or after P(5)) holds it: no
 * row changes then. */
#define STORE_IDEM_PUT(P)                                                                          \
    "INSERT INTO idempotency_keys (" STORE_IDEM_COLUMNS ") VALUES (" P(1) "," P(2) "," P(3) ","    \
    P(4) ") ON CONFLICT (function, key) DO UPDATE SET request_id = excluded.request_id,"           \
    " created_ms = excluded.created_ms WHERE idempotency_keys.created_ms < " P(5)
#define STORE_IDEM_GET(P)                                                                          \
    "SELECT request_id FROM idempotency_keys WHERE function = " P(1) " AND key = " P(2)
#define STORE_IDEM_LIST(P)                                                                         \
    "SELECT " STORE_IDEM_COLUMNS " FROM idempotency_keys WHERE created_ms >= " P(1)
#define STORE_IDEM_PRUNE(P) "DELETE FROM idempotency_keys WHERE created_ms < " P(1)
/* One batch of store_queue_prune: P(1) the time, P(2) the batch's size,
 * STORE_QUEUE_PRUNE_BATCH (again until a batch deletes nothing). Neither
 * table has an index on its time: a batch looks at its first P(2) rows by
 * key and deletes those of them old enough (attempts: request ids are made
 * in time order, and an event's attempts start within its maximum age of
 * it; dead letters: ids in the order written), so that the last batch,
 * which finds none, does not read the whole table on the queue's writer,
 * where acceptances wait. An attempt not yet old among the first keys
 * only slows a round down: the next batch looks past what this one
 * deleted. */
#define STORE_QUEUE_PRUNE_BATCH 1000
#define STORE_PRUNE_ATTEMPTS(P)                                                                    \
    "DELETE FROM attempts WHERE (request_id, attempt) IN (SELECT request_id, attempt FROM"         \
    " (SELECT request_id, attempt, start_ms FROM attempts ORDER BY request_id, attempt LIMIT "    \
    P(2) ") AS head WHERE start_ms < " P(1) ")"
#define STORE_PRUNE_DEAD(P)                                                                        \
    "DELETE FROM dead_letters WHERE id IN (SELECT id FROM (SELECT id, time_ms FROM dead_letters"   \
    " ORDER BY id LIMIT " P(2) ") AS head WHERE time_ms < " P(1) ")"
#define STORE_FORGET_EVENTS(P) "DELETE FROM events WHERE function = " P(1)
#define STORE_FORGET_DL(P) "DELETE FROM dead_letters WHERE function = " P(1)
#define STORE_FORGET_IDEM(P) "DELETE FROM idempotency_keys WHERE function = " P(1)

/* ---- durable executions --------------------------------------------------- */

#define STORE_EXEC_COLUMNS                                                                         \
    "id, function, name, status, input, result, error, token, seq, token_seq, in_flight,"          \
    " next_wake_ms, start_ms, end_ms, deadline_ms, retention_days, invocations, failures,"         \
    " last_client_token, last_token_in, last_response, parent_id, parent_op"
#define STORE_EXEC_VALUES(P)                                                                       \
    P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7) "," P(8) "," P(9) "," P(10) ","     \
    P(11) "," P(12) "," P(13) "," P(14) "," P(15) "," P(16) "," P(17) "," P(18) "," P(19) ","      \
    P(20) "," P(21) "," P(22) "," P(23)
#define STORE_EXEC_GET(P) "SELECT " STORE_EXEC_COLUMNS " FROM durable_executions WHERE id = " P(1)
#define STORE_EXEC_BY_NAME(P)                                                                      \
    "SELECT " STORE_EXEC_COLUMNS " FROM durable_executions WHERE function = " P(1)                 \
    " AND name = " P(2)
#define STORE_EXEC_LIST(P)                                                                         \
    "SELECT " STORE_EXEC_COLUMNS " FROM durable_executions WHERE (" P(1)                           \
    " IS NULL OR function = " P(1) ") AND (" P(2) " IS NULL OR status = " P(2) ")"                 \
    " ORDER BY start_ms DESC, id DESC LIMIT " P(3)
#define STORE_OP_COLUMNS "exec_id, ord, op_id, type, status, callback_id, op"
#define STORE_OP_VALUES(P) P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7)
#define STORE_OPS_GET(P) "SELECT op FROM durable_operations WHERE exec_id = " P(1) " ORDER BY ord"
#define STORE_CALLBACK_FIND(P) "SELECT exec_id FROM durable_operations WHERE callback_id = " P(1)
#define STORE_DURABLE_COUNTS "SELECT status, count(*) FROM durable_executions GROUP BY status"
/* Operations that wait, of running executions, by type. */
#define STORE_DURABLE_WAITING                                                                      \
    "SELECT o.type, count(*) FROM durable_operations o JOIN durable_executions"                    \
    " e ON e.id = o.exec_id WHERE e.status = 'RUNNING' AND"                                        \
    " ((o.type IN ('WAIT', 'CALLBACK') AND o.status = 'STARTED') OR"                               \
    " (o.type = 'STEP' AND o.status = 'PENDING')) GROUP BY o.type"
/* The finished executions whose retention has passed at P(1), 1,000 at
 * most: what one store_durable_prune removes. */
#define STORE_DURABLE_EXPIRED(P)                                                                   \
    "SELECT id FROM durable_executions WHERE status <> 'RUNNING'"                                  \
    " AND end_ms + retention_days * 86400000 < " P(1) " LIMIT 1000"
#define STORE_DURABLE_FORGET_OPS(P)                                                                \
    "DELETE FROM durable_operations WHERE exec_id IN"                                              \
    " (SELECT id FROM durable_executions WHERE function = " P(1) ")"
#define STORE_DURABLE_FORGET_EXECS(P) "DELETE FROM durable_executions WHERE function = " P(1)

/* ---- schedules ------------------------------------------------------------ */

#define STORE_SCHEDULE_COLUMNS                                                                     \
    "name, expression, timezone, function, input, enabled, flexible_window_min, start_ms,"         \
    " created_ms, updated_ms, tenant_id"
#define STORE_SCHEDULE_VALUES(P)                                                                   \
    P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7) "," P(8) "," P(9) "," P(10) ","    \
    P(11)
#define STORE_SCHEDULE_DELETE_FIRES(P) "DELETE FROM schedule_fires WHERE schedule = " P(1)
#define STORE_SCHEDULE_DELETE(P) "DELETE FROM schedules WHERE name = " P(1)
#define STORE_SCHEDULE_LIST "SELECT " STORE_SCHEDULE_COLUMNS " FROM schedules ORDER BY name"
#define STORE_SCHEDULE_EXISTS(P) "SELECT 1 FROM schedules WHERE name = " P(1)
/* A fire's row, only for a schedule that still exists: one deleted while
 * its fire was on the way leaves no row behind (and, through with_event,
 * no event). Each backend adds how an earlier fire of the due time is let
 * be. */
#define STORE_FIRE_INSERT_COLUMNS "schedule, due_ms, fired_ms, request_id, error"
#define STORE_FIRE_SELECT(P)                                                                       \
    " SELECT " P(1) "," P(2) "," P(3) "," P(4) "," P(5) " WHERE EXISTS (SELECT 1 FROM schedules"   \
    " WHERE name = " P(1) ")"
#define STORE_FIRES_PRUNE(P)                                                                       \
    "DELETE FROM schedule_fires WHERE schedule = " P(1) " AND due_ms < (SELECT due_ms"             \
    " FROM schedule_fires WHERE schedule = " P(1) " ORDER BY due_ms DESC LIMIT 1"                  \
    " OFFSET " P(2) ")"
#define STORE_FIRE_LIST(P)                                                                         \
    "SELECT due_ms, fired_ms, request_id, error, schedule FROM schedule_fires"                     \
    " WHERE schedule = " P(1) " ORDER BY due_ms DESC LIMIT " P(2)

/* ---- topics --------------------------------------------------------------- */

#define STORE_TOPIC_DELETE(P) "DELETE FROM topics WHERE name = " P(1)
#define STORE_TOPIC_DELETE_SUBS(P) "DELETE FROM subscriptions WHERE topic = " P(1)
#define STORE_TOPIC_LIST "SELECT name, created_ms FROM topics ORDER BY name"
#define STORE_SUB_COLUMNS "id, topic, function, filter, created_ms, tenant_id"
#define STORE_SUB_PUT(P)                                                                           \
    "INSERT INTO subscriptions (" STORE_SUB_COLUMNS ") VALUES (" P(1) ", " P(2) ", " P(3) ", "     \
    P(4) ", " P(5) ", " P(6) ")"
#define STORE_SUB_DELETE(P) "DELETE FROM subscriptions WHERE id = " P(1)
#define STORE_SUB_LIST                                                                             \
    "SELECT " STORE_SUB_COLUMNS " FROM subscriptions ORDER BY created_ms, id"
#define STORE_SUB_FORGET(P) "DELETE FROM subscriptions WHERE function = " P(1)
#define STORE_MSG_PUT(P)                                                                           \
    "INSERT INTO topic_messages (message_id, topic, subject, message, attributes, time_ms,"        \
    " deliveries) VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4) ", " P(5) ", " P(6) ", " P(7) ")"
/* One batch of store_topic_messages_prune: 1,000 messages. */
#define STORE_MSG_PRUNE(P)                                                                         \
    "DELETE FROM topic_messages WHERE message_id IN (SELECT message_id FROM"                       \
    " topic_messages WHERE time_ms < " P(1) " ORDER BY time_ms LIMIT 1000)"
#define STORE_MSG_COUNT(P) "SELECT count(*) FROM topic_messages WHERE topic = " P(1)

/* ---- rows into structs ---------------------------------------------------- */

/* Sorts a claim's events (which come in no order) by seq. */
void store__sort_qevents(store_qevent_t *list, size_t count);
/* The error both backends give for a dead letter not there: -ENOENT. */
int store__no_dead_letter(mf_error_t *err, const char *function, int64_t id);

/* STORE_QEVENT_COLUMNS into a store_qevent_t (no body). */
void store__fill_qevent(const store__row_t *row, void *item);
/* STORE_QEVENT_COLUMNS then the event's bytes (a claim's rows). */
void store__fill_qevent_body(const store__row_t *row, void *item);
void store__fill_attempt(const store__row_t *row, void *item);
void store__fill_dead_letter(const store__row_t *row, void *item);
/* A row of STORE_NODE_COLUMNS. */
void store__fill_node(const store__row_t *row, void *item);
/* P(1)..P(5) of STORE_NODE_BEAT. */
int store__bind_node(const store__binder_t *b, const store_node_t *n);
void store__fill_exec(const store__row_t *row, void *item);
void store__fill_schedule(const store__row_t *row, void *item);
/* STORE_FIRE_LIST's columns into a store_schedule_fire_t. */
void store__fill_fire(const store__row_t *row, void *item);
void store__fill_topic(const store__row_t *row, void *item);
void store__fill_subscription(const store__row_t *row, void *item);
/* An operation log's op column, appended to arr as an object (an empty one
 * in its place if the text is not one: positions are the order). */
void store__append_op(json_t *arr, const char *text);
/* An operation as its op column holds it (malloc'd; NULL if it cannot be
 * written, and "{}" is stored). */
char *store__op_text(const json_t *op);
/* The one execution a get read into list (n of them), moved into out and
 * the list freed: -ENOENT naming what when there is none. */
int store__take_one_exec(store_durable_exec_t *list, size_t n, store_durable_exec_t *out,
                         const char *what, mf_error_t *err);
/* STORE_DURABLE_COUNTS's row (a status and its count) into counts, in
 * store_durable_counts' order; STORE_DURABLE_WAITING's (an operation type
 * and its count) into timers or callbacks. */
void store__count_status(int64_t counts[5], const char *status, int64_t n);
void store__count_waiting(int64_t *timers, int64_t *callbacks, const char *type, int64_t n);
/* The errors both backends give for a callback not there: -ENOENT. */
int store__no_callback(mf_error_t *err, const char *callback_id);
/* -ENOENT for a topic, a subscription or a schedule not there. */
int store__no_topic(mf_error_t *err, const char *name);
int store__no_subscription(mf_error_t *err, const char *id);
int store__no_schedule(mf_error_t *err, const char *name);
/* Why the fire f left no row: -EEXIST when its schedule (exists) fired
 * the due time before, -ENOENT when the schedule is gone. */
int store__fire_refused(mf_error_t *err, const store_schedule_fire_t *f, bool exists);

/* ---- structs into parameters ---------------------------------------------- */
/* Each returns 0, or non-zero if a value could not be bound. */

/* STORE_QEVENT_INSERT's parameters. */
int store__bind_qevent(const store__binder_t *b, const store_qevent_t *ev);
/* STORE_QEVENT_UPDATE's. */
int store__bind_qevent_update(const store__binder_t *b, const store_qevent_t *ev);
/* STORE_ATTEMPT_COLUMNS as parameters 1 to 7. */
int store__bind_attempt(const store__binder_t *b, const store_attempt_t *a);
/* STORE_DL_PUT's parameters, or with from_seq STORE_DL_PUT_FROM_EVENT's. */
int store__bind_dead_letter(const store__binder_t *b, const store_dead_letter_t *dl,
                            int64_t from_seq);
/* STORE_EXEC_COLUMNS as parameters 1 to 23. */
int store__bind_exec(const store__binder_t *b, const store_durable_exec_t *e);
/* STORE_OP_COLUMNS as parameters 1 to 7, with text op's JSON. */
int store__bind_op(const store__binder_t *b, const char *exec_id, int64_t ord, const json_t *op,
                   const char *text);
/* STORE_SCHEDULE_COLUMNS as parameters 1 to 11. */
int store__bind_schedule(const store__binder_t *b, const store_schedule_t *s);
/* STORE_FIRE_INSERT_COLUMNS as parameters 1 to 5. */
int store__bind_fire(const store__binder_t *b, const store_schedule_fire_t *f);
int store__bind_subscription(const store__binder_t *b, const store_subscription_t *s);
int store__bind_topic_message(const store__binder_t *b, const store_topic_message_t *m);

#endif
