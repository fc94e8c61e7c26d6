/* What queue.db's other tables (store/topics.c) share with store/queue.c:
 * the connection, a few prepared statements kept with it, and their
 * migration. Not for other modules. */
#ifndef MAYFLY_STORE_QUEUE_INTERNAL_H
#define MAYFLY_STORE_QUEUE_INTERNAL_H

#include <sqlite3.h>

#include "core/error.h"
#include "store/queue.h"

/* Slots for statements of other tables, kept with the connection. */
#define STORE_QUEUE_MORE_STMTS 16

sqlite3 *store__queue_db(store_queue_t *q);
/* The statement in slot (prepared from sql the first time: the same slot
 * must always get the same sql), finalized when q closes. */
int store__queue_stmt(store_queue_t *q, int slot, const char *sql, sqlite3_stmt **out,
                      mf_error_t *err);

/* Queue migration: the tables of topics (store/topics.c). */
extern const char store__topics_migration[];

#endif
