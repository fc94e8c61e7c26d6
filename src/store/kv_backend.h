/* How store/kv.h's calls reach the database that holds the stores: kv.c
 * says once what every call does (conditions, versions, counts and bounds,
 * increments, batches, listings, the sweep) as a sequence of the
 * statements below, and each backend (kv_sqlite.c, kv_pg.c) fills
 * one table of functions that runs them on its own connection. Not for
 * other modules.
 *
 * A backend's own struct begins with a store_kv_t, so that the store_kv_t
 * * callers hold (and a KV writer's jobs get as their db) leads back to it. */
#ifndef MAYFLY_STORE_KV_BACKEND_H
#define MAYFLY_STORE_KV_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/kv.h"
#include "store/rows.h"

/* The statements kv.c runs; their SQL is each backend's, mostly the text
 * of store/rows.h that both share. A statement a backend has no need of
 * is NULL in its table and runs as one that gives no rows: SQLite has
 * one writer per file, so it takes no store locks. */
enum {
    STORE__KV_GET,          /* a live key, its value included */
    STORE__KV_LOOKUP,       /* a key's row, live or expired */
    STORE__KV_UPSERT,
    STORE__KV_DELETE,
    STORE__KV_STORE_ADD,    /* adds to a store's keys and bytes */
    STORE__KV_STORE_GC,     /* forgets a store with no keys left */
    STORE__KV_STORE_GET,
    STORE__KV_STORES,
    STORE__KV_VERSION_NEXT, /* one row: the next version */
    STORE__KV_LIST,
    STORE__KV_LIST_PREFIX,
    STORE__KV_SWEEP_DUE,    /* the stores with expired keys, and how many */
    STORE__KV_SWEEP,        /* removes one store's expired keys */
    STORE__KV_DROP_KEYS,
    STORE__KV_DROP_STORE,
    STORE__KV_LOCK,         /* waits for a store's lock, held to the commit */
    STORE__KV_TRY_LOCK,     /* one row: whether it got the lock (absent: yes) */
    STORE__KV_BEGIN,        /* SQLite's write transaction (store__kv_backend_t.begin) */
    STORE__KV_BEGIN_READ,   /* a snapshot for several reads */
    STORE__KV_COMMIT,
    STORE__KV_SAVEPOINT,    /* a writer's job */
    STORE__KV_RELEASE,
    STORE__KV_ROLLBACK_TO,
    STORE__KV_BATCH_SAVEPOINT, /* a batch of ops, inside a job */
    STORE__KV_BATCH_RELEASE,
    STORE__KV_BATCH_ROLLBACK_TO,
    STORE__KV_STMT_COUNT
};

/* One parameter of a statement: a number, text, bytes (never NULL, even
 * when empty) or NULL. */
typedef struct store__kv_arg {
    enum { STORE__KV_ARG_NULL, STORE__KV_ARG_INT, STORE__KV_ARG_TEXT, STORE__KV_ARG_BYTES } kind;
    int64_t i;
    const void *p;
    size_t len;
} store__kv_arg_t;

/* Binds args (n of them) as parameters 1 to n through a backend's binder;
 * non-zero when one could not be bound. */
int store__kv_bind(const store__binder_t *b, const store__kv_arg_t *args, size_t n);

typedef struct store__kv_backend {
    const char *name; /* "SQLite", "PostgreSQL" */
    void (*close)(store_kv_t *kv);
    /* Runs statement stmt with args, calling row (may be NULL) with ud for
     * each row it gives; what names it in errors. */
    int (*run)(store_kv_t *kv, int stmt, const store__kv_arg_t *args, size_t n,
               store__fill_fn row, void *ud, const char *what, mf_error_t *err);
    /* A writer's transactions (store/writer.h): a durable commit reaches
     * the disk before it returns. A failed commit is rolled back. */
    int (*begin)(store_kv_t *kv, bool durable, mf_error_t *err);
    int (*commit)(store_kv_t *kv, mf_error_t *err);
    void (*rollback)(store_kv_t *kv);
    /* Whether a transaction is open on the connection. */
    bool (*in_transaction)(store_kv_t *kv);
    /* A writer's connection that can go away (NULL on SQLite): fills the
     * link of its writer's db (store/writer.h). */
    void (*writer_link)(store_kv_t *kv, store_writer_db_t *out);
} store__kv_backend_t;

struct store_kv {
    const store__kv_backend_t *be;
    store_kv_limits_t limits; /* what this connection's writes keep to */
};

/* The backends' opening calls, which store_kv_open chooses between; a
 * writer's connection (writer) may be set up for its thread. */
int store__kv_sqlite_open(const char *data_dir, bool writer, store_kv_t **out, mf_error_t *err);
int store__kv_pg_open(const char *url, bool writer, store_kv_t **out, mf_error_t *err);

#endif
