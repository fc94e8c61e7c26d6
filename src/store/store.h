/* The store: everything mayfly keeps durably, behind one interface. The
 * embedded default is SQLite in WAL mode under the data directory
 * (sqlite.c); several machines share PostgreSQL (postgres.c) behind the
 * same calls. Calls a backend cannot do yet fail with -ENOTSUP and a
 * message that names them.
 *
 * A store_t is used from one thread at a time (the server's event loop);
 * there is one writer. Calls return 0 or a negative errno and fill *err:
 * -ENOENT when the thing asked for does not exist, -EBUSY when another
 * server holds the data directory, -ECONNRESET when the connection to
 * PostgreSQL was lost, -EIO (or the OS errno) otherwise. */
#ifndef MAYFLY_STORE_STORE_H
#define MAYFLY_STORE_STORE_H

#include "core/tenant.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "store/writer.h"

typedef struct store store_t;

/* One stored function. config_json holds the function's settings as a JSON
 * object (the registry owns its shape); the store only keeps it. */
typedef struct store_function {
    char name[TENANT_QNAME_MAX + 1];
    int64_t version;
    char code_sha256[65];
    int64_t code_size;      /* bytes of the unpacked package */
    char *config_json;      /* owned, NUL-terminated */
    int64_t created_ms;     /* wall clock, ms since the epoch */
    int64_t updated_ms;
} store_function_t;

/* Opens the store at where and applies pending schema migrations.
 * - A directory: opens (creating if needed) DIR/mayfly.db in WAL mode and
 *   takes DIR/lock, so a second server on the same directory fails with
 *   -EBUSY and a message that says so.
 * - A URL postgresql://… (or postgres://…, as libpq takes them): connects
 *   to that database. Several servers may share it; the first to find
 *   migrations pending applies them, under a lock the others wait on.
 * Either way a database whose schema is newer than this mayfly knows is
 * refused (-EPROTO) with a message naming both versions. */
int store_open(const char *where, store_t **out, mf_error_t *err);
void store_close(store_t *s);
/* The schema version after migrations. */
int store_schema_version(store_t *s);
/* Names the server this store belongs to among those sharing the database
 * (cluster/cluster.h's node id, at most 64 characters), for the
 * connections opened from s after this call (store_writer_db,
 * store_reopen): on PostgreSQL the log lines they write carry it, and each
 * batch of them is announced to the other servers (store/listen.h). A
 * no-op on SQLite, whose data one server has to itself. */
void store_set_node(store_t *s, const char *node);
/* "SQLite" or "PostgreSQL". */
const char *store_backend_name(store_t *s);
/* Opens a second connection to s's database for a writer thread
 * (store/writer.h), which then writes invocation records and log lines off
 * the event loop: its jobs get that connection (a store_t) as their db and
 * call store_records_write and store_logs_write, inside the writer's
 * transaction. */
int store_writer_db(store_t *s, store_writer_db_t *out, mf_error_t *err);
/* Another connection to s's database, for another thread: SQLite's file
 * opened again (without the data directory's lock, which s holds), or
 * PostgreSQL's URL connected again. Close it with store_close. */
int store_reopen(store_t *s, store_t **out, mf_error_t *err);

/* Fills *out (free it with store_function_clear); -ENOENT if absent. */
int store_function_get(store_t *s, const char *name, store_function_t *out, mf_error_t *err);
/* Inserts the function named f->name, as given, or replaces the one
 * stored if its version is older than f->version: -ESTALE when it is not
 * (another server sharing the store put it meanwhile; read it again). */
int store_function_put(store_t *s, const store_function_t *f, mf_error_t *err);
/* -ENOENT if absent. */
int store_function_delete(store_t *s, const char *name, mf_error_t *err);
/* All functions ordered by name; free with store_function_list_free. */
int store_function_list(store_t *s, store_function_t **out, size_t *count, mf_error_t *err);
/* How many functions reference a code package. */
int store_code_refs(store_t *s, const char *code_sha256, int64_t *count, mf_error_t *err);

void store_function_clear(store_function_t *f);
void store_function_list_free(store_function_t *list, size_t count);

/* ---- code packages ------------------------------------------------------ */

/* Whether the store keeps code packages (the zips) for the servers that
 * share it, each of which unpacks a package from there once into its own
 * data directory (registry/registry.h). PostgreSQL does. On SQLite the
 * data directory's unpacked packages are the only copy, and the calls
 * below fail with -ENOTSUP. */
bool store_keeps_code(store_t *s);
/* Keeps zip under sha256, the hex SHA-256 of its bytes; a package kept
 * already stays as it is. */
int store_code_put(store_t *s, const char *sha256, const void *zip, size_t len,
                   mf_error_t *err);
/* Replaces out's contents with the zip kept under sha256; -ENOENT if none. */
int store_code_get(store_t *s, const char *sha256, buf_t *out, mf_error_t *err);
/* Drops the zip kept under sha256 unless a function refers to it, checked
 * in the same statement (a function another server just wrote counts);
 * one not kept is fine. */
int store_code_forget(store_t *s, const char *sha256, mf_error_t *err);

/* ---- invocation records ---------------------------------------------- */

/* A record's trigger: a kind, and for some a name (":" and up to 64). */
#define STORE_TRIGGER_MAX 80
/* A tenant id of Lambda's tenant isolation mode: 1 to 256 characters. */
#define STORE_TENANT_ID_MAX 256
#define STORE_KEY_ID_MAX 128

typedef struct store_record {
    char request_id[37];
    char function[TENANT_QNAME_MAX + 1];
    int64_t version;
    char status[16];          /* success|error|timeout|oom|throttled|queued|running */
    int64_t start_ms;         /* wall clock */
    double duration_ms;
    int64_t billed_ms;
    int memory_mb;
    int64_t max_rss_kb;
    int64_t cpu_ms;
    int cold_start;
    double init_ms;
    char *error_type;         /* owned, NULL when none */
    char *error_message;      /* owned, NULL when none */
    int attempts;
    char *egress_json;        /* owned: the call's outbound connections, a JSON
                                 array (egress/egress.h); NULL when none */
    /* The call's event and result (or error document) as its record keeps
     * them (obs/payload.h), owned; NULL when not kept. *_bytes is the size
     * the call had, *_flags STORE_PAYLOAD_*. store_record_get reads them;
     * lists do not. */
    char *event, *result;
    size_t event_len, result_len;
    int64_t event_bytes, result_bytes;
    int event_flags, result_flags;
    /* Set (owned) while event and result are still as the call had them:
     * the records' writer makes them what is kept, with at most
     * payload_max bytes each and the values of these member names
     * redacted (NUL-separated, ending with an empty name). */
    char *redact;
    size_t payload_max;
    char replay_of[37];       /* the record whose event this call ran again, or "" */
    char caller_request_id[37]; /* the call whose function made this one, or "" */
    int64_t kv_ops;           /* KV operations the call made (docs/state.md) */
    /* Set when no record of this request can be stored yet (a call's one
     * record, never an event's): its write skips looking for one. */
    bool first;
    int64_t egress_bytes;     /* bytes out and in over its outbound connections */
    int64_t log_bytes;        /* bytes of log lines it printed (as kept) */
    /* Why it ran: invoke, url, replay, destination, schedule:NAME,
     * topic:NAME or function:CALLER ("" in records older than the field). */
    char trigger[STORE_TRIGGER_MAX];
    /* The tenant id it ran for under Lambda's tenant isolation mode
     * (registry.h's fn_tenancy_t), "" for a function without it and in
     * records older than the field. */
    char tenant_id[STORE_TENANT_ID_MAX + 1];
    /* The access key whose request made the call ("" when none did: a
     * trigger, a function, development mode). A record replaced by one
     * without (an async event's next attempt) keeps the one it had. */
    char key_id[STORE_KEY_ID_MAX + 1];
    /* The call ran on an instance started ahead of it by the adaptive
     * keep-alive (docs/keep-alive.md): its first call, whose init was done
     * before it came. 0 in records older than the field. */
    int prewarmed;
    /* The cold-start breakdown with init_ms (docs/observability.md):
     * queue_ms from the call's acceptance to its hand-over to the runtime
     * (the wait, a cold start's included); sandbox_ms, of init_ms, making
     * the sandbox, on a cold start. -1 when not known: a call never handed
     * over, a warm start's sandbox_ms, records older than the fields. */
    double queue_ms;
    double sandbox_ms;
} store_record_t;

#define STORE_PAYLOAD_TRUNCATED 1 /* cut at the function's max_payload_kb */
#define STORE_PAYLOAD_REDACTED 2  /* a value was replaced by "[redacted]" */
#define STORE_PAYLOAD_WITHHELD 4  /* not kept: it could not be checked for secrets */
#define STORE_PAYLOAD_TEXT 8      /* UTF-8 text, not JSON (neither flag: JSON) */
#define STORE_PAYLOAD_BINARY 16   /* not UTF-8 */

/* Inserts or replaces count records in one transaction. */
int store_records_put(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err);
/* The same inside a transaction the caller holds (a writer's job). */
int store_records_write(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err);
/* -ENOENT if absent. */
int store_record_get(store_t *s, const char *request_id, store_record_t *out, mf_error_t *err);
/* Where a listing of records stopped: the sort key of the last record it
 * gave (records are listed newest first, by start_ms then by the order
 * they were written). */
typedef struct store_record_cursor {
    int64_t start_ms;
    int64_t rowid;
} store_record_cursor_t;

/* A cursor as clients carry it: the base64url (RFC 4648 §5, no padding) of
 * "START_MS.ROWID", opaque to them. */
void store_record_cursor_format(buf_t *out, const store_record_cursor_t *c);
/* 0, or -EINVAL for anything format did not make (at most 64 characters
 * are looked at; rowid >= 1). */
int store_record_cursor_parse(const char *s, size_t len, store_record_cursor_t *c);

/* Which records store_records_find gives. Start from
 * STORE_RECORD_FILTER_INIT (every record) and narrow: each member set
 * is one more condition. */
typedef struct store_record_filter {
    const char *function;     /* NULL: any */
    const char *status;       /* NULL: any */
    const char *error_type;   /* NULL: any */
    int64_t since_ms;         /* start_ms >= since_ms (INT64_MIN: no bound) */
    int64_t until_ms;         /* start_ms <= until_ms (INT64_MAX: no bound) */
    int cold;                 /* -1 any, 0 warm starts only, 1 cold starts only */
    double min_duration_ms;   /* duration_ms >= this (0: any) */
    /* NULL: any; "schedule:nightly" that trigger, "schedule" any of its kind. */
    const char *trigger;
    const char *tenant_id;    /* NULL: any */
    int limit;                /* at most this many, >= 1 */
    bool after_set;           /* only records strictly after `after` */
    store_record_cursor_t after;
    /* Whose functions' records (core/tenant.h): set by
     * store_record_filter_tenant; both "" for every tenant's. */
    char tenant_like[TENANT_MAX + 3], tenant_unlike[4];
} store_record_filter_t;

/* Narrows f to the records of the tenant's functions (NULL: every
 * tenant's). */
void store_record_filter_tenant(store_record_filter_t *f, const char *tenant);

#define STORE_RECORD_FILTER_INIT                                                                   \
    { .since_ms = INT64_MIN, .until_ms = INT64_MAX, .cold = -1, .limit = 50 }

/* The records f selects, newest first, at most f->limit of them. *more says
 * whether further records follow; if so, *next is where this page stopped:
 * the same filter with after = *next gives the next page, with no record
 * left out or given twice (keyset paging, so records written meanwhile do
 * not shift the pages). next may be NULL. */
int store_records_find(store_t *s, const store_record_filter_t *f, store_record_t **out,
                       size_t *count, bool *more, store_record_cursor_t *next,
                       mf_error_t *err);
/* Newest first; function and status may be NULL for any. */
int store_records_list(store_t *s, const char *function, const char *status, int limit,
                       store_record_t **out, size_t *count, mf_error_t *err);
void store_record_clear(store_record_t *r);
void store_record_list_free(store_record_t *list, size_t count);

/* Deletes every invocation record and log line of function, inside a
 * transaction the caller holds (a writer's job, ordered after the writes
 * handed to it before); says how many of each went. */
int store_function_purge_write(store_t *s, const char *function, int64_t *records,
                               int64_t *lines, mf_error_t *err);

/* ---- retention ---------------------------------------------------------- */

typedef struct store_prune {
    int64_t records, lines;   /* deleted */
    bool more;                /* a batch was full: there may be more to delete */
    int64_t bytes;            /* what the bound is measured on, after */
} store_prune_t;

/* Inside a transaction the caller holds (a writer's job): deletes at most
 * batch invocation records (payloads with them) and batch log lines older
 * than before_ms, and, while the pages in use pass max_bytes (0: no
 * bound), the oldest batch of each; then gives free pages back to the file
 * system. On PostgreSQL, whose files keep the space of deleted rows for
 * later ones, the bytes are the live rows' (an estimate from its
 * statistics, which lag behind other transactions: one batch of each a
 * call). */
int store_prune_write(store_t *s, int64_t before_ms, int64_t max_bytes, int batch,
                      store_prune_t *out, mf_error_t *err);

/* ---- function logs ----------------------------------------------------- */

typedef struct store_log {
    int64_t id;               /* assigned by the store, increasing */
    int64_t time_ms;
    char function[TENANT_QNAME_MAX + 1];
    char request_id[37];      /* "" for lines outside an invocation */
    int stream;               /* 1 stdout, 2 stderr */
    char *message;            /* owned */
    size_t len;
    /* The server that wrote it (store_set_node); "" on SQLite and for
     * lines written before servers had names. */
    char node[65];
} store_log_t;

/* Appends count lines in one transaction. */
int store_logs_put(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err);
/* The same inside a transaction the caller holds (a writer's job). */
int store_logs_write(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err);
/* Lines of function (and request_id when not NULL) with time ≥ since_ms and
 * id > after_id, oldest first, at most limit. */
int store_logs_list(store_t *s, const char *function, const char *request_id, int64_t since_ms,
                    int64_t after_id, int limit, store_log_t **out, size_t *count,
                    mf_error_t *err);
/* Lines of function that other servers sharing the database wrote, with
 * after_id < id <= last_id, oldest first, at most limit: with node, those
 * of that server; without (NULL), those of every server but this one
 * (store_set_node). -ENOTSUP on SQLite, where there are no others. */
int store_logs_list_remote(store_t *s, const char *function, const char *node, int64_t after_id,
                           int64_t last_id, int limit, store_log_t **out, size_t *count,
                           mf_error_t *err);
/* The id of the newest line of any function (0: none): where a follower
 * that has had nothing of another server starts catching up. -ENOTSUP on
 * SQLite, which has no other servers. */
int store_logs_last_id(store_t *s, int64_t *out, mf_error_t *err);
void store_log_list_free(store_log_t *list, size_t count);

/* ---- shared volumes (src/state/volume.h) ------------------------------- */

typedef struct store_volume {
    char name[TENANT_QNAME_MAX + 1];
    int64_t size_mb;
    int64_t created_ms;       /* wall clock */
} store_volume_t;

/* Records a new volume; -EEXIST when one has that name. */
int store_volume_add(store_t *s, const store_volume_t *v, mf_error_t *err);
/* -ENOENT if absent. */
int store_volume_get(store_t *s, const char *name, store_volume_t *out, mf_error_t *err);
/* Every volume, by name; free *out. */
int store_volume_list(store_t *s, store_volume_t **out, size_t *count, mf_error_t *err);
/* -ENOENT if absent. */
int store_volume_delete(store_t *s, const char *name, mf_error_t *err);

/* ---- usage (docs/metering.md) ------------------------------------------- */

/* What the records of one tenant's function metered in one hour
 * (store/rows.h, STORE_USAGE_*). */
typedef struct store_usage {
    char tenant[TENANT_MAX + 1];
    char function[TENANT_QNAME_MAX + 1];
    /* The calls' tenant id (tenant isolation), "" for calls without one
     * and for usage metered before the field. */
    char tenant_id[STORE_TENANT_ID_MAX + 1];
    int64_t hour_ms;          /* the hour's start, wall clock */
    int64_t requests, billed_ms, mb_ms, cpu_ms, max_rss_kb, egress_bytes, kv_ops, log_bytes;
    /* Storage held over time (store_usage_storage): bytes × ms of KV
     * values and of volumes' files. */
    int64_t kv_byte_ms, volume_byte_ms;
} store_usage_t;

/* What rec meters (its hour, the tenant and function; a request only
 * when the call ran), as usage counts it: the rule STORE_USAGE_VALUES
 * words in SQL (store/rows.h). */
void store_usage_of(const store_record_t *rec, store_usage_t *out);
/* Adds u's quantities to *to, times sign (1, or -1 to take them out). */
void store_usage_add(store_usage_t *to, const store_usage_t *u, int sign);
/* u's memory × billed time in GB-seconds (mb_ms / 1024 / 1000). */
double store_usage_gb_seconds(const store_usage_t *u);
/* Every hour from from_ms (inclusive) to to_ms (exclusive), by hour, then
 * tenant, function and tenant id; free *out. */
/* What one tenant's store or volume held: usage's function is
 * "kv:STORE" or "volume:NAME" for it. */
typedef struct store_storage {
    char tenant[TENANT_MAX + 1];
    char name[TENANT_QNAME_MAX + 8];
    int64_t bytes;
} store_storage_t;
/* Adds to usage what storage held for the interval_ms up to at_ms (which
 * names the sample: a minute's end, the same on every server), in the
 * hour of at_ms - 1: each volume of this server's (every server keeps its
 * own), and each KV store when this is the first server to record the
 * sample (the KV stores may be shared), so each is counted once. */
int store_usage_storage(store_t *s, int64_t at_ms, int64_t interval_ms,
                        const store_storage_t *kv, size_t nkv, const store_storage_t *volumes,
                        size_t nvolumes, mf_error_t *err);
/* Adds u (store_usage_of's, for a call that has no record: a tuning
 * run's) to usage, in a row of its own beside the records' rows. */
int store_usage_put(store_t *s, const store_usage_t *u, mf_error_t *err);
int store_usage_list(store_t *s, int64_t from_ms, int64_t to_ms, store_usage_t **out,
                     size_t *count, mf_error_t *err);

/* ---- function URLs (src/trigger/url.h) ---------------------------------- */

typedef struct store_url {
    char function[TENANT_QNAME_MAX + 1];
    char *config_json;        /* owned: the settings as /v1 shows them */
    int64_t created_ms;       /* wall clock */
    int64_t updated_ms;
} store_url_t;

/* Inserts or replaces the URL of u->function (which must exist: -ENOENT
 * otherwise). */
int store_url_put(store_t *s, const store_url_t *u, mf_error_t *err);
/* -ENOENT if absent. */
int store_url_delete(store_t *s, const char *function, mf_error_t *err);
/* Every URL, by function; free with store_url_list_free. */
int store_url_list(store_t *s, store_url_t **out, size_t *count, mf_error_t *err);
void store_url_list_free(store_url_t *list, size_t count);

#endif
