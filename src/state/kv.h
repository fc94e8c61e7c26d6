/* The key-value stores as a service on the event loop (docs/state.md):
 * named stores of keys to values, with versions, conditions, expiry and
 * bounds. Every write is a job of one writer thread that commits in
 * fsync'd groups (store/writer.h), and is answered only once it is on
 * disk. Reads are answered through a callback: on SQLite at once, on the
 * loop's own connection to DATA/kv.db (a local file and prepared
 * statements: cheaper than any hand-off to a thread); on PostgreSQL by a
 * small pool of reader threads with connections of their own
 * (store/reader.h), so that no read's round trip holds up the loop. A
 * sweep removes expired keys in the background, a small batch at a time.
 * The service counts each store's reads and writes and keeps the
 * mayfly_kv_* metrics.
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
    unsigned readers;           /* PostgreSQL: reader threads (connections); 0: 2 */
} state_kv_config_t;

#define STATE_KV_CONFIG_DEFAULT                                                                    \
    {                                                                                              \
        .max_value_bytes = (size_t)1024 << 10, .max_store_bytes = (int64_t)256 << 20,              \
        .max_keys = 1000000, .sweep_interval_ms = 2000, .readers = 2,                              \
    }

/* The most seconds of a TTL (a year). */
#define STATE_KV_TTL_MAX 31536000
/* The most keys of a batch read, and ops of a batch write. */
#define STATE_KV_BATCH_MAX 100
/* Keys per page of a listing: by default, and at most. */
#define STATE_KV_LIST_DEFAULT 100
#define STATE_KV_LIST_MAX 1000

/* Opens the KV stores where the server's store is (DATA/kv.db, creating it,
 * or a postgresql:// URL: store/kv.h), starts its writer thread, on
 * PostgreSQL its reader threads, and the sweep. */
int state_kv_open(uv_loop_t *loop, const char *where, const state_kv_config_t *cfg,
                  state_kv_t **out, mf_error_t *err);
const state_kv_config_t *state_kv_config(const state_kv_t *kv);
/* Refuses new work from now on (-ESHUTDOWN) and stops the sweep; writes
 * and reads already accepted still run and are answered. */
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

/* ---- reads (answered through a callback) --------------------------------- */

typedef enum {
    STATE_KV_READ_GET,      /* one live key; -ENOENT when it is not there */
    STATE_KV_READ_GET_MANY, /* keys at one point in time */
    STATE_KV_READ_LIST,     /* a page of live keys (see store_kv_list) */
    STATE_KV_READ_STATS,    /* what a store holds, its counters and bounds */
    STATE_KV_READ_STORES,   /* every store that holds keys */
} state_kv_read_kind_t;

/* What to read. The pointers are the caller's, read during the call only
 * (what a read on a thread needs is copied). */
typedef struct state_kv_query {
    state_kv_read_kind_t kind;
    const char *store;                     /* all but STORES */
    const void *key;                       /* GET */
    size_t key_len;
    const slice_t *keys;                   /* GET_MANY: at most STATE_KV_BATCH_MAX */
    size_t nkeys;
    const void *prefix;                    /* LIST: prefix_len 0 for all keys */
    size_t prefix_len;
    const void *after;                     /* LIST: after_len 0 from the first */
    size_t after_len;
    int limit;                             /* LIST: 1 to STATE_KV_LIST_MAX */
} state_kv_query_t;

typedef struct state_kv_stats {
    int64_t keys, bytes;         /* what it holds */
    uint64_t reads, writes;      /* since the server started */
    int64_t max_bytes, max_keys; /* its bounds */
} state_kv_stats_t;

/* What a read found. It is the service's: freed once the callback returns,
 * but for what the callback takes (setting the pointer to NULL). */
typedef struct state_kv_answer {
    store_kv_item_t item; /* GET */
    /* GET_MANY: one item per key asked, in order, found saying which are
     * there; LIST: the page. count of them either way. */
    store_kv_item_t *items;
    size_t count;
    bool more;                      /* LIST: keys follow the page */
    state_kv_stats_t stats;         /* STATS */
    store_kv_store_stats_t *stores; /* STORES, by name */
    size_t nstores;
} state_kv_answer_t;

/* r is 0 (ans holds what was read) or the read's error. */
typedef void (*state_kv_read_cb)(void *ud, int r, state_kv_answer_t *ans, const mf_error_t *err);

/* Reads what q asks and calls done(ud, …) exactly once: before this
 * returns on SQLite (and whenever the read is refused at once, e.g. with
 * -ESHUTDOWN), later on the loop on PostgreSQL. A read sees every write
 * whose callback ran before it was asked for, whichever connection makes
 * it. The store's reads are counted when the answer comes: a get one, a
 * batch one per key, a listing one. */
void state_kv_read(state_kv_t *kv, const state_kv_query_t *q, state_kv_read_cb done, void *ud);

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
