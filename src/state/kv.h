/* The key-value stores as a service on the event loop (docs/state.md):
 * named stores of keys to values, with versions, conditions, expiry and
 * bounds. Reads run on the loop's own connection to DATA/kv.db (cheap,
 * prepared statements); every write is a job of one writer thread that
 * commits in fsync'd groups (store/writer.h), and is answered only once it
 * is on disk. A sweep removes expired keys in the background, a small
 * batch at a time. The service counts each store's reads and writes and
 * keeps the mayfly_kv_* metrics.
 *
 * This header is the room's whole surface: the API layer (api/kv.c) uses
 * nothing else of it. Calls return 0 or a negative errno and fill *err
 * (see store/kv.h for what each errno means); -ESHUTDOWN once the service
 * is stopping. */
#ifndef MAYFLY_STATE_KV_H
#define MAYFLY_STATE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/error.h"
#include "store/kv.h"

typedef struct state_kv state_kv_t;

typedef struct state_kv_config {
    size_t max_value_bytes;     /* --kv-max-value-kb: the most bytes of one value */
    int64_t max_store_bytes;    /* --kv-max-store-mb: keys and values of one store */
    int64_t max_keys;           /* --kv-max-keys: keys of one store */
    unsigned sweep_interval_ms; /* how often expired keys are looked for */
} state_kv_config_t;

#define STATE_KV_CONFIG_DEFAULT                                                                    \
    {                                                                                              \
        .max_value_bytes = (size_t)1024 << 10, .max_store_bytes = (int64_t)256 << 20,              \
        .max_keys = 1000000, .sweep_interval_ms = 2000,                                            \
    }

/* The most seconds of a TTL (a year). */
#define STATE_KV_TTL_MAX 31536000
/* The most keys of a batch read, and ops of a batch write. */
#define STATE_KV_BATCH_MAX 100
/* Keys per page of a listing: by default, and at most. */
#define STATE_KV_LIST_DEFAULT 100
#define STATE_KV_LIST_MAX 1000

/* Opens the KV stores where the server's store is (DATA/kv.db, creating it,
 * or a postgresql:// URL: store/kv.h), starts its writer thread and the
 * sweep. On PostgreSQL its reads still run on the loop (docs/state.md). */
int state_kv_open(uv_loop_t *loop, const char *where, const state_kv_config_t *cfg,
                  state_kv_t **out, mf_error_t *err);
const state_kv_config_t *state_kv_config(const state_kv_t *kv);
/* Refuses new work from now on (-ESHUTDOWN) and stops the sweep; writes
 * already accepted still commit and are answered. */
void state_kv_stop(state_kv_t *kv);
/* Commits what is left, answers it, and frees the service (its handles
 * close through the loop). NULL is fine. */
void state_kv_close(state_kv_t *kv);

/* ---- what the API accepts (state/kv_input.c) ---------------------------- */

/* A store name: [A-Za-z0-9_-]{1,64}. what names it in the message. */
int state_kv_check_store(const char *what, const char *name, mf_error_t *err);
/* A key: 1 to STORE_KV_KEY_MAX bytes of UTF-8 without NUL, and neither of
 * the reserved `_stats` and `_batch`. */
int state_kv_check_key(const char *what, const void *key, size_t len, mf_error_t *err);
/* A content type stored with a value: 1 to 255 printable ASCII bytes (it
 * goes back out as a header). */
int state_kv_check_content_type(const char *what, const char *type, size_t len, mf_error_t *err);
/* A TTL in seconds as text (?ttl=, X-Mayfly-TTL): 1 to STATE_KV_TTL_MAX. */
int state_kv_parse_ttl(const char *what, const char *s, int64_t *ttl_s, mf_error_t *err);

/* The body of POST /v1/kv/{store}/_batch, parsed: either reads (get) or
 * writes (ops), never both. Everything in it is owned. */
typedef struct state_kv_batch {
    bool is_get;
    slice_t *keys; /* get: each base malloc'd */
    size_t nkeys;
    store_kv_op_t *ops; /* ops: key, value, content_type malloc'd */
    size_t nops;
} state_kv_batch_t;

/* Parses a batch body; a pure function of its input (fuzzed by
 * tests/fuzz/fuzz_kv_batch.c). -EINVAL with a message naming the item
 * ("ops[3].key: …"), or -EFBIG for a value over max_value_bytes; *out is
 * then empty. */
int state_kv_batch_parse(const void *body, size_t len, size_t max_value_bytes,
                         state_kv_batch_t *out, mf_error_t *err);
void state_kv_batch_clear(state_kv_batch_t *b);
/* Frees ops and what they hold. */
void state_kv_ops_free(store_kv_op_t *ops, size_t n);

/* ---- reads (on the loop, now) ------------------------------------------- */

int state_kv_get(state_kv_t *kv, const char *store, const void *key, size_t len,
                 store_kv_item_t *out, mf_error_t *err);
/* Reads the keys at one point in time; items is the caller's, n long. */
int state_kv_get_many(state_kv_t *kv, const char *store, const slice_t *keys, size_t n,
                      store_kv_item_t *items, mf_error_t *err);
/* A page of live keys (see store_kv_list); free *out with
 * store_kv_items_free. */
int state_kv_list(state_kv_t *kv, const char *store, const void *prefix, size_t prefix_len,
                  const void *after, size_t after_len, int limit, store_kv_item_t **out,
                  size_t *count, bool *more, mf_error_t *err);

typedef struct state_kv_stats {
    int64_t keys, bytes;         /* what it holds */
    uint64_t reads, writes;      /* since the server started */
    int64_t max_bytes, max_keys; /* its bounds */
} state_kv_stats_t;
int state_kv_stats(state_kv_t *kv, const char *store, state_kv_stats_t *out, mf_error_t *err);
/* Every store that holds keys (free *out). */
int state_kv_stores(state_kv_t *kv, store_kv_store_stats_t **out, size_t *count, mf_error_t *err);

/* ---- writes (answered on the loop once on disk) ------------------------- */

typedef struct state_kv_result {
    const int64_t *versions; /* write: one per op, 0 for a delete */
    size_t n;
    int64_t value;   /* incr: the new value */
    int64_t version; /* incr: its version */
} state_kv_result_t;
/* r is 0, or the write's error (nothing of it was written); for a batch,
 * err's message starts with the failing op ("ops[2]: …"). */
typedef void (*state_kv_done_fn)(void *ud, int r, const state_kv_result_t *res,
                                 const mf_error_t *err);

/* Writes ops (one or a batch: all or nothing), taking them over whatever
 * happens. done is called later, unless this returns an error. */
int state_kv_write(state_kv_t *kv, const char *store, store_kv_op_t *ops, size_t n,
                   state_kv_done_fn done, void *ud, mf_error_t *err);
/* Adds by to the key's decimal int64 (a missing key counts as 0); ttl_s >
 * 0 sets its expiry. Exact under concurrent callers: the read and the
 * write are one job of the writer. */
int state_kv_incr(state_kv_t *kv, const char *store, const void *key, size_t len, int64_t by,
                  int64_t ttl_s, state_kv_done_fn done, void *ud, mf_error_t *err);
/* Removes a whole store (-ENOENT through done when it holds nothing). */
int state_kv_drop(state_kv_t *kv, const char *store, state_kv_done_fn done, void *ud,
                  mf_error_t *err);

#endif
