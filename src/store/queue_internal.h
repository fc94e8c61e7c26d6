/* What the SQLite files of queue.db's other tables (durable_sqlite.c,
 * schedules_sqlite.c, topics_sqlite.c) share with queue_sqlite.c: the
 * connection, a few prepared statements kept with it, and their
 * migrations. Not for other modules. */
#ifndef MAYFLY_STORE_QUEUE_INTERNAL_H
#define MAYFLY_STORE_QUEUE_INTERNAL_H

#include <sqlite3.h>

#include "core/error.h"
#include "store/queue.h"

/* Slots for statements of other tables, kept with the connection. */
#define STORE_QUEUE_MORE_STMTS 16

/* The connection of a SQLite queue (one opened on a data directory). */
sqlite3 *store__queue_db(store_queue_t *q);
/* The statement in slot (prepared from sql the first time: the same slot
 * must always get the same sql), finalized when q closes. */
int store__queue_stmt(store_queue_t *q, int slot, const char *sql, sqlite3_stmt **out,
                      mf_error_t *err);

/* queue.db's migration that creates the schedules' tables: SQL that
 * schedules_sqlite.c's statements go with, kept beside them. */
#define STORE__SCHEDULES_MIGRATION                                                                 \
    "CREATE TABLE schedules ("                                                                     \
    "  name                TEXT PRIMARY KEY,"                                                    \
    "  expression          TEXT NOT NULL,"                                                       \
    "  timezone            TEXT NOT NULL,"                                                       \
    "  function            TEXT NOT NULL,"                                                       \
    "  input               TEXT,"                                                                \
    "  enabled             INTEGER NOT NULL,"                                                    \
    "  flexible_window_min INTEGER NOT NULL,"                                                    \
    "  start_ms            INTEGER NOT NULL,"                                                    \
    "  created_ms          INTEGER NOT NULL,"                                                    \
    "  updated_ms          INTEGER NOT NULL"                                                     \
    ") WITHOUT ROWID;"                                                                             \
    "CREATE TABLE schedule_fires ("                                                                \
    "  schedule   TEXT NOT NULL,"                                                                \
    "  due_ms     INTEGER NOT NULL,"                                                             \
    "  fired_ms   INTEGER NOT NULL,"                                                             \
    "  request_id TEXT,"                                                                         \
    "  error      TEXT,"                                                                         \
    "  PRIMARY KEY (schedule, due_ms)"                                                           \
    ") WITHOUT ROWID;"
/* Queue migration: the tables of topics (topics_sqlite.c). */
extern const char store__topics_migration[];
/* Queue migration: durable executions (durable_sqlite.c). */
extern const char store__durable_migration[];

#endif
