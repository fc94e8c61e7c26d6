/* What the PostgreSQL files of the queue's tables (durable_pg.c,
 * schedules_pg.c, topics_pg.c) share with queue_pg.c: the connection,
 * their statements prepared on it when it opens, and running them. Not
 * for other modules. */
#ifndef MAYFLY_STORE_QUEUE_PG_INTERNAL_H
#define MAYFLY_STORE_QUEUE_PG_INTERNAL_H

#include <libpq-fe.h>

#include "store/postgres_internal.h"
#include "store/queue.h"

/* Each file's statements, prepared on every queue connection: names are
 * prefixed by the file's (q_, d_, s_, t_, n_) so that they never meet. */
extern const store_pg_stmt_t store__pg_durable_stmts[];
extern const size_t store__pg_durable_nstmts;
extern const store_pg_stmt_t store__pg_schedule_stmts[];
extern const size_t store__pg_schedule_nstmts;
extern const store_pg_stmt_t store__pg_topic_stmts[];
extern const size_t store__pg_topic_nstmts;
extern const store_pg_stmt_t store__pg_node_stmts[];
extern const size_t store__pg_node_nstmts;

/* The connection of a PostgreSQL queue (one opened on a URL). */
PGconn *store__pg_queue_conn(store_queue_t *q);

/* Runs the prepared statement stmt with p (NULL: none); *out is its
 * result, for the caller to PQclear. */
int store__pg_q_run(store_queue_t *q, const char *stmt, const store_pg_params_t *p,
                    PGresult **out, const char *what, mf_error_t *err);
/* As store__pg_q_run, for a statement that returns no rows: *changed
 * (may be NULL) is how many it inserted, changed or deleted. Without
 * changed, the write may be deferred (store__pg_defer). */
int store__pg_q_write(store_queue_t *q, const char *stmt, const store_pg_params_t *p,
                      int64_t *changed, const char *what, mf_error_t *err);
/* As store__pg_q_write, for a statement of one text parameter key;
 * *changed (may be NULL) is how many rows it changed. */
int store__pg_q_keyed(store_queue_t *q, const char *stmt, const char *key, int64_t *changed,
                      const char *what, mf_error_t *err);
/* Runs stmt with p and reads every row by fill into a new array of items
 * of size bytes (*out NULL and *count 0 on failure). */
int store__pg_q_rows(store_queue_t *q, const char *stmt, const store_pg_params_t *p, size_t size,
                     store__fill_fn fill, void **out, size_t *count, const char *what,
                     mf_error_t *err);
/* Binds a limit as parameter i: one below zero as NULL, which PostgreSQL
 * reads as no limit (queue_rows.h). */
int store__pg_bind_limit(const store__binder_t *b, int i, int64_t limit);
/* How many rows res's statement inserted, changed or deleted. */
int64_t store__pg_changed(const PGresult *res);

#endif
