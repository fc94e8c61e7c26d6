/* The key-value stores: named stores of keys to values, each value with a
 * content type, a version and an optional expiry. On one machine they are
 * SQLite's file DATA/kv.db, a file of its own, as the async queue's is, so
 * that the KV writer thread's fsync'd group commits and the other writers
 * never wait on each other's locks; several machines keep them in the
 * PostgreSQL database they share (kv_backend.h: the same calls on both).
 *
 * A store_kv_t is one connection, used from one thread at a time: the event
 * loop opens one to read on SQLite, reader threads (store/reader.h) one
 * each on PostgreSQL, and the writer thread (store/writer.h) one to
 * write. Versions come from one counter, kept in the database and advanced
 * by each write: a version is never given twice, not even to a key deleted
 * and made again, and a key's versions only go up. On SQLite the counter
 * moves in the write's own transaction, so every committed write has a
 * number above all before it; on PostgreSQL it is a sequence the servers
 * share, and writes to different stores committed at once by several
 * servers may commit in another order than their numbers.
 *
 * Every write (a put, a delete, a batch, an incr, a drop) is atomic, and
 * on PostgreSQL the writes of all servers to one store take their turns:
 * conditions, counters and bounds hold however many servers write at once.
 * A write made outside a transaction (not a writer's job) commits on its
 * own.
 *
 * Calls return 0 or a negative errno and fill *err:
 *   -ENOENT     the key (or store) is not there, or has expired
 *   -ECANCELED  a condition (if_version, if_absent) did not hold
 *   -ENOSPC     the store would pass its bound on keys or bytes
 *   -EFBIG      the value is over the bound on one value
 *   -EDOM       incr of a value that is not a decimal int64
 *   -ERANGE     incr past the int64 range
 *   -EINVAL     a bad argument
 *   -ECONNRESET the connection to PostgreSQL was lost
 *   -EIO        the database failed
 * Keys are bytes (the API layer makes sure they are UTF-8) compared as
 * bytes: listings come in memcmp order. Times are wall milliseconds, given
 * by the caller, so tests can move them. */
#ifndef MAYFLY_STORE_KV_H
#define MAYFLY_STORE_KV_H

#include "core/tenant.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "store/writer.h"

typedef struct store_kv store_kv_t;

/* The most bytes of a key. */
#define STORE_KV_KEY_MAX 1024
/* The most bytes of a stored content type. */
#define STORE_KV_CONTENT_TYPE_MAX 255
#define STORE_KV_DEFAULT_CONTENT_TYPE "application/octet-stream"

/* What one store may hold; 0 means no bound. A store's bytes are its keys'
 * and values' bytes together. A write that would take a store past a bound
 * fails with -ENOSPC; one that makes it smaller always goes. */
typedef struct store_kv_limits {
    int64_t max_value_bytes;
    int64_t max_store_bytes;
    int64_t max_keys;
} store_kv_limits_t;

/* One key as a read or a listing gives it. */
typedef struct store_kv_item {
    void *key; /* owned, NUL-terminated; key_len bytes */
    size_t key_len;
    bool found;  /* store_kv_get_many: whether the key is there */
    void *value; /* owned, NUL-terminated; NULL in listings */
    size_t value_len;
    char *content_type; /* owned; NULL in listings */
    int64_t version;
    int64_t expires_ms; /* 0: never */
    int64_t size;       /* the value's bytes */
} store_kv_item_t;

/* One write. The pointers are the caller's, read during the call only. */
typedef enum { STORE_KV_PUT, STORE_KV_DELETE } store_kv_op_kind_t;
typedef struct store_kv_op {
    store_kv_op_kind_t kind;
    char *key;
    size_t key_len;
    void *value; /* put: the bytes (NULL with value_len 0) */
    size_t value_len;
    char *content_type; /* put: NULL for STORE_KV_DEFAULT_CONTENT_TYPE */
    int64_t ttl_ms;     /* put: expires this long after the write; 0: never */
    int64_t if_version; /* 0: none; else the key must have this version */
    bool if_absent;     /* put: the key must not be there */
} store_kv_op_t;

/* A store and what it holds. */
typedef struct store_kv_store_stats {
    char name[TENANT_QNAME_MAX + 1];
    int64_t keys;
    int64_t bytes;
} store_kv_store_stats_t;

/* Opens the stores at where, applying pending schema migrations:
 * - a directory: opens (creating) DIR/kv.db;
 * - a URL postgresql://… (or postgres://…): connects to that database,
 *   the one the main store uses (store/store.h), whose schema holds the
 *   KV tables too.
 * A database whose schema is newer than this mayfly knows is refused
 * (-EPROTO). */
int store_kv_open(const char *where, store_kv_t **out, mf_error_t *err);
void store_kv_close(store_kv_t *kv);
/* "SQLite" or "PostgreSQL". */
const char *store_kv_backend_name(const store_kv_t *kv);
/* Opens another connection to where's stores for a writer thread
 * (store/writer.h): its jobs get the store_kv_t as their db. The limits
 * apply to its writes. */
int store_kv_writer_db(const char *where, const store_kv_limits_t *limits,
                       store_writer_db_t *out, mf_error_t *err);
/* Sets the bounds this connection's writes keep to. */
void store_kv_set_limits(store_kv_t *kv, const store_kv_limits_t *limits);

/* Transactions, for the writer's group commits (as store/queue.h's). */
int store_kv_begin(store_kv_t *kv, bool durable, mf_error_t *err);
int store_kv_commit(store_kv_t *kv, mf_error_t *err);
void store_kv_rollback(store_kv_t *kv);
int store_kv_savepoint(store_kv_t *kv, mf_error_t *err);
void store_kv_release(store_kv_t *kv, bool keep);

/* Reads a live key (not expired at now_ms) into *out (clear it with
 * store_kv_item_clear); -ENOENT otherwise. */
int store_kv_get(store_kv_t *kv, const char *store, const void *key, size_t key_len, int64_t now_ms,
                 store_kv_item_t *out, mf_error_t *err);
/* Reads n keys at one point in time (one read transaction): items[i] gets
 * keys[i], with found false for one that is not there. items is the
 * caller's array of n, zeroed; with a max_total_bytes > 0, the values
 * passing it in all fail the read with -EFBIG. */
int store_kv_get_many(store_kv_t *kv, const char *store, const slice_t *keys, size_t n,
                      int64_t now_ms, int64_t max_total_bytes, store_kv_item_t *items,
                      mf_error_t *err);
void store_kv_item_clear(store_kv_item_t *item);
void store_kv_items_free(store_kv_item_t *items, size_t n);

/* One put or delete; a put sets *version (may be NULL) to the version it
 * wrote. A delete of a key that is not there is -ENOENT, before its
 * if_version is looked at; a put with an if_version on a missing key is
 * -ECANCELED. */
int store_kv_write(store_kv_t *kv, const char *store, const store_kv_op_t *op, int64_t now_ms,
                   int64_t *version, mf_error_t *err);
/* Every op or none, in order, in a savepoint of its own: versions[i] gets
 * op i's version (0 for a delete). A delete of a key that is not there
 * does nothing (it is -ECANCELED with an if_version). On failure nothing
 * is changed, *failed is the index of the op that failed and the message
 * starts "ops[i]: ". */
int store_kv_write_all(store_kv_t *kv, const char *store, const store_kv_op_t *ops, size_t n,
                       int64_t now_ms, int64_t *versions, size_t *failed, mf_error_t *err);
/* Adds by to the decimal int64 the key holds (0 when it is missing or has
 * expired) and writes it back as decimal text, with its content type kept
 * (text/plain for a new key); ttl_ms > 0 sets a new expiry, else a live
 * key keeps its own. */
int store_kv_incr(store_kv_t *kv, const char *store, const void *key, size_t key_len, int64_t by,
                  int64_t ttl_ms, int64_t now_ms, int64_t *value, int64_t *version,
                  mf_error_t *err);

/* Lists the live keys of store that start with prefix (prefix_len 0: all)
 * and sort after after (after_len 0: from the first), in byte order, at
 * most limit of them; *more says whether there are more after the last. */
int store_kv_list(store_kv_t *kv, const char *store, const void *prefix, size_t prefix_len,
                  const void *after, size_t after_len, int limit, int64_t now_ms,
                  store_kv_item_t **out, size_t *count, bool *more, mf_error_t *err);

/* The keys and bytes of store (expired keys not yet swept included): zero
 * for a store that holds nothing. */
int store_kv_store_stats(store_kv_t *kv, const char *store, store_kv_store_stats_t *out,
                         mf_error_t *err);
/* Every store that holds keys, by name. */
int store_kv_stores(store_kv_t *kv, store_kv_store_stats_t **out, size_t *count, mf_error_t *err);
/* Removes a whole store; -ENOENT when it holds nothing. */
int store_kv_drop(store_kv_t *kv, const char *store, mf_error_t *err);
/* Removes up to limit keys expired at now_ms (of any store, a store at a
 * time; one another server is writing to is left for a later sweep), and
 * says how many went; *changed (may be NULL) gets the stores they came
 * from with what each holds after (free it), *nchanged their number. */
int store_kv_sweep(store_kv_t *kv, int64_t now_ms, int limit, int64_t *removed,
                   store_kv_store_stats_t **changed, size_t *nchanged, mf_error_t *err);

/* The listing cursor (?cursor=): the last key of a page, opaque to the
 * client. Format appends the cursor for key to out; parse decodes one into
 * out (replaced), -EINVAL when it is not one this server wrote. */
void store_kv_cursor_format(buf_t *out, const void *key, size_t key_len);
int store_kv_cursor_parse(const char *s, size_t len, buf_t *out);

#endif
