/* How the async queue's calls (store/queue.h, durable.h, schedules.h,
 * topics.h) reach the database that holds them: each backend fills one
 * table of functions per header (SQLite in queue_sqlite.c, durable_sqlite.c,
 * schedules_sqlite.c, topics_sqlite.c; PostgreSQL in the *_pg.c files
 * beside them), and queue.c's public calls go through them, as store.c's
 * go through store/backend.h. Not for other modules.
 *
 * A backend's own connection struct begins with a store_queue_t, so that
 * the store_queue_t * callers hold (and a writer's jobs get as their db)
 * leads back to it. Every slot is filled: both backends do everything. */
#ifndef MAYFLY_STORE_QUEUE_BACKEND_H
#define MAYFLY_STORE_QUEUE_BACKEND_H

#include <jansson.h>

#include "store/durable.h"
#include "store/nodes.h"
#include "store/queue.h"
#include "store/schedules.h"
#include "store/topics.h"

/* store/queue.h's calls, and closing the connection. */
typedef struct store__queue_ops {
    void (*close)(store_queue_t *q);
    int (*begin)(store_queue_t *q, bool durable, mf_error_t *err);
    int (*commit)(store_queue_t *q, mf_error_t *err);
    void (*rollback)(store_queue_t *q);
    int (*savepoint)(store_queue_t *q, mf_error_t *err);
    void (*release)(store_queue_t *q, bool keep);

    int (*qevent_insert)(store_queue_t *q, store_qevent_t *ev, mf_error_t *err);
    int (*qevent_update)(store_queue_t *q, const store_qevent_t *ev, mf_error_t *err);
    int (*qevent_delete)(store_queue_t *q, int64_t seq, mf_error_t *err);
    int (*qevent_body)(store_queue_t *q, int64_t seq, buf_t *out, mf_error_t *err);
    int (*qevent_list)(store_queue_t *q, store_qevent_t **out, size_t *count, mf_error_t *err);
    int (*qevent_take)(store_queue_t *q, const char *node, int limit, store_qevent_t **out,
                       size_t *count, mf_error_t *err);

    int (*attempt_put)(store_queue_t *q, const store_attempt_t *a, mf_error_t *err);
    int (*attempt_list)(store_queue_t *q, const char *request_id, store_attempt_t **out,
                        size_t *count, mf_error_t *err);

    int (*dead_letter_put)(store_queue_t *q, store_dead_letter_t *dl, int64_t from_seq,
                           mf_error_t *err);
    int (*dead_letter_get)(store_queue_t *q, const char *function, int64_t id,
                           store_dead_letter_t *out, mf_error_t *err);
    int (*dead_letter_delete)(store_queue_t *q, int64_t id, mf_error_t *err);
    int (*dead_letter_list)(store_queue_t *q, const char *function, int limit,
                            store_dead_letter_t **out, size_t *count, mf_error_t *err);
    int (*dead_letter_counts)(store_queue_t *q,
                              void (*cb)(const char *function, int64_t n, void *ud), void *ud,
                              mf_error_t *err);

    int (*idem_put)(store_queue_t *q, const char *function, const char *key,
                    const char *request_id, int64_t created_ms, int64_t live_since_ms,
                    char existing[37], mf_error_t *err);
    int (*idem_list)(store_queue_t *q, int64_t since_ms,
                     void (*cb)(const char *function, const char *key, const char *request_id,
                                int64_t created_ms, void *ud),
                     void *ud, mf_error_t *err);
    int (*idem_prune)(store_queue_t *q, int64_t before_ms, mf_error_t *err);
    int (*prune)(store_queue_t *q, int64_t attempts_before_ms, int64_t dead_before_ms,
                 int64_t *attempts, int64_t *dead, mf_error_t *err);
    int (*forget_function)(store_queue_t *q, const char *function, mf_error_t *err);
} store__queue_ops_t;

/* store/durable.h's calls. */
typedef struct store__durable_ops {
    int (*exec_put)(store_queue_t *q, const store_durable_exec_t *e, mf_error_t *err);
    int (*exec_get)(store_queue_t *q, const char *id, store_durable_exec_t *out,
                    mf_error_t *err);
    int (*exec_by_name)(store_queue_t *q, const char *function, const char *name,
                        store_durable_exec_t *out, mf_error_t *err);
    int (*exec_list)(store_queue_t *q, const char *function, const char *status, int limit,
                     store_durable_exec_t **out, size_t *count, mf_error_t *err);
    int (*ops_get)(store_queue_t *q, const char *exec_id, json_t **out, mf_error_t *err);
    int (*op_put)(store_queue_t *q, const char *exec_id, int64_t ord, const json_t *op,
                  mf_error_t *err);
    int (*callback_find)(store_queue_t *q, const char *callback_id, char exec_id[37],
                         mf_error_t *err);
    int (*counts)(store_queue_t *q, int64_t counts[5], int64_t *timers, int64_t *callbacks,
                  mf_error_t *err);
    int (*prune)(store_queue_t *q, int64_t now_ms, int64_t *n, mf_error_t *err);
    int (*forget_function)(store_queue_t *q, const char *function, mf_error_t *err);
} store__durable_ops_t;

/* store/schedules.h's calls. */
typedef struct store__schedule_ops {
    int (*put)(store_queue_t *q, const store_schedule_t *s, mf_error_t *err);
    int (*del)(store_queue_t *q, const char *name, mf_error_t *err);
    int (*list)(store_queue_t *q, store_schedule_t **out, size_t *count, mf_error_t *err);
    int (*fire_put)(store_queue_t *q, const store_schedule_fire_t *f, mf_error_t *err);
    int (*fire_list)(store_queue_t *q, const char *name, int limit, store_schedule_fire_t **out,
                     size_t *count, mf_error_t *err);
} store__schedule_ops_t;

/* store/topics.h's calls. */
typedef struct store__topic_ops {
    int (*topic_put)(store_queue_t *q, const char *name, int64_t created_ms, mf_error_t *err);
    int (*topic_delete)(store_queue_t *q, const char *name, mf_error_t *err);
    int (*topic_list)(store_queue_t *q, store_topic_t **out, size_t *count, mf_error_t *err);
    int (*subscription_put)(store_queue_t *q, const store_subscription_t *s, mf_error_t *err);
    int (*subscription_delete)(store_queue_t *q, const char *id, mf_error_t *err);
    int (*subscription_list)(store_queue_t *q, store_subscription_t **out, size_t *count,
                             mf_error_t *err);
    int (*subscriptions_forget_function)(store_queue_t *q, const char *function,
                                         mf_error_t *err);
    int (*message_put)(store_queue_t *q, const store_topic_message_t *m, mf_error_t *err);
    int (*messages_prune)(store_queue_t *q, int64_t before_ms, int64_t *n, mf_error_t *err);
    int (*message_count)(store_queue_t *q, const char *topic, int64_t *n, mf_error_t *err);
} store__topic_ops_t;

/* The statements of store/nodes.h's calls (STORE_NODE_* in queue_rows.h),
 * which queue.c runs in their order through each backend's run. */
typedef enum store__node_stmt {
    STORE__NODE_BACK,
    STORE__NODE_EXPIRE,
    STORE__NODE_RELEASE_GONE,
    STORE__NODE_ALIVE,
    STORE__NODE_RELEASE,
    STORE__NODE_LEAVE,
    STORE__NODE_PRUNE,
    STORE__NODE_STMTS
} store__node_stmt_t;

/* store/nodes.h's calls, as each backend words them. */
typedef struct store__node_ops {
    /* Writes n's row (STORE_NODE_BEAT); *left is its left_ms before. */
    int (*upsert)(store_queue_t *q, const store_node_t *n, int64_t *left, mf_error_t *err);
    /* Runs statement s with id as its first parameter (unless NULL) and
     * the integers after it; *one (may be NULL) is its first row's first
     * column, 0 without a row. */
    int (*run)(store_queue_t *q, store__node_stmt_t s, const char *id, int64_t i1, int64_t i2,
               int64_t *one, const char *what, mf_error_t *err);
    int (*list)(store_queue_t *q, store_node_t **out, size_t *count, mf_error_t *err);
} store__node_ops_t;

typedef struct store__queue_backend {
    const char *name; /* "SQLite", "PostgreSQL": for messages */
    bool shared;      /* several servers may open it at once */
    const store__queue_ops_t *queue;
    const store__durable_ops_t *durable;
    const store__schedule_ops_t *schedules;
    const store__topic_ops_t *topics;
    const store__node_ops_t *nodes;
} store__queue_backend_t;

struct store_queue {
    const store__queue_backend_t *be;
};

/* The backends' opening calls, which store_queue_open chooses between:
 * each opens one connection and applies the migrations its database has
 * not seen. */
int store__sqlite_queue_open(const char *data_dir, store_queue_t **out, mf_error_t *err);
int store__pg_queue_open(const char *url, store_queue_t **out, mf_error_t *err);

/* The SQLite backend's tables of the other headers (durable_sqlite.c,
 * schedules_sqlite.c, topics_sqlite.c), and PostgreSQL's. */
extern const store__durable_ops_t store__sqlite_durable_ops;
extern const store__schedule_ops_t store__sqlite_schedule_ops;
extern const store__topic_ops_t store__sqlite_topic_ops;
extern const store__durable_ops_t store__pg_durable_ops;
extern const store__schedule_ops_t store__pg_schedule_ops;
extern const store__topic_ops_t store__pg_topic_ops;
extern const store__node_ops_t store__sqlite_node_ops;
extern const store__node_ops_t store__pg_node_ops;

#endif
