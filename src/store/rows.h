/* What both backends' tables have in common (functions, records and log
 * lines, volumes, function URLs, the KV stores): their columns, the
 * statements that are the same text on both, and the one mapping between
 * those columns and store.h's structs. A
 * backend reads a row through a store__row_t and binds parameters through
 * a store__binder_t; which columns and parameters come in which order is
 * said here only. Not for other modules. */
#ifndef MAYFLY_STORE_ROWS_H
#define MAYFLY_STORE_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A statement's parameter number in each backend's syntax. */
#define STORE__SQLITE_P(n) "?" #n
#define STORE__PG_P(n) "$" #n

#define STORE_FN_COLUMNS                                                                           \
    "name, version, code_sha256, code_size, config_json, created_ms, updated_ms"
#define STORE_FN_GET(P) "SELECT " STORE_FN_COLUMNS " FROM functions WHERE name = " P(1)
#define STORE_FN_PUT(P)                                                                            \
    "INSERT INTO functions (" STORE_FN_COLUMNS ") VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4)    \
    ", " P(5) ", " P(6) ", " P(7) ") ON CONFLICT (name) DO UPDATE SET"                             \
    " version = excluded.version, code_sha256 = excluded.code_sha256,"                             \
    " code_size = excluded.code_size, config_json = excluded.config_json,"                         \
    " created_ms = excluded.created_ms, updated_ms = excluded.updated_ms"                         \
    " WHERE functions.version < excluded.version"
#define STORE_FN_DELETE(P) "DELETE FROM functions WHERE name = " P(1)
/* By name, byte by byte (on PostgreSQL the column's collation is "C"). */
#define STORE_FN_LIST "SELECT " STORE_FN_COLUMNS " FROM functions ORDER BY name"
#define STORE_CODE_REFS(P) "SELECT count(*) FROM functions WHERE code_sha256 = " P(1)

#define STORE_REC_COLUMNS                                                                          \
    "request_id, function, version, status, start_ms, duration_ms, billed_ms, memory_mb,"         \
    " max_rss_kb, cpu_ms, cold_start, init_ms, error_type, error_message, attempts,"             \
    " egress_json, replay_of, caller_request_id, kv_ops, trigger, egress_bytes, log_bytes"
#define STORE_REC_PAYLOADS " event, event_bytes, event_flags, result, result_bytes, result_flags"
/* The parameters of a record's upsert (which each backend words its own
 * way: the record replaced gets a new rowid, as it does in SQLite). */
#define STORE_REC_VALUES(P)                                                                        \
    P(1) "," P(2) "," P(3) "," P(4) "," P(5) "," P(6) "," P(7) "," P(8) "," P(9) "," P(10) ","    \
    P(11) "," P(12) "," P(13) "," P(14) "," P(15) "," P(16) "," P(17) "," P(18) "," P(19) ","     \
    P(20) "," P(21) "," P(22) "," P(23) "," P(24) "," P(25) "," P(26) "," P(27) "," P(28) ","    \
    P(29)
/* The tenant id (migration "tenant ids") comes after the payloads: the
 * record's parameter 29 and its row's column 28. */
#define STORE_REC_TENANT_ID " tenant_id"
/* The caller's access key (migration "record keys"): parameter 30, column
 * 29; each backend keeps the stored one when a record comes without. */
#define STORE_REC_KEY_ID " key_id"
/* Whether an instance started ahead of the call ran it (migration
 * "prewarmed"): parameter 31, column 30. */
#define STORE_REC_PREWARMED " prewarmed"
/* The cold-start breakdown (migration "phases"): parameters 32 and 33,
 * NULL when not known (a record's -1); read back as columns 31 and 32
 * through STORE_REC_PHASES_READ, which gives -1 for NULL. */
#define STORE_REC_PHASES " queue_ms, sandbox_ms"
#define STORE_REC_PHASES_READ " COALESCE(queue_ms, -1), COALESCE(sandbox_ms, -1)"
#define STORE_REC_GET(P)                                                                           \
    "SELECT " STORE_REC_COLUMNS "," STORE_REC_PAYLOADS "," STORE_REC_TENANT_ID ","                 \
    STORE_REC_KEY_ID "," STORE_REC_PREWARMED "," STORE_REC_PHASES_READ                             \
    " FROM invocations WHERE request_id = " P(1)

/* Usage (docs/metering.md): what each record meters, summed per tenant,
 * function and hour into the table usage as records are written, in the
 * same transaction (PostgreSQL's triggers, SQLite's records write, which
 * follows store_usage_of): a record replaced (a call
 * that moved on, or ran again) takes its old quantities out and puts its
 * new ones in, so that for any hour the sums of usage equal the sums over
 * the records, and stay when records are deleted. A row's part tells the
 * writers apart (on PostgreSQL each connection sums into its own rows, so
 * that no two transactions wait on one row); a reader sums the parts. The
 * quantities of row R (a prefix: "NEW.", "n." or ""), each with sign S
 * ("+" or "-"): requests (a call that ran; queued, running and throttled
 * ones are not), billed ms, MB-ms (memory_mb × billed ms), CPU ms, peak
 * RSS KiB, egress bytes, KV operations and log bytes. */
#define STORE_USAGE_COLUMNS                                                                        \
    "requests, billed_ms, mb_ms, cpu_ms, max_rss_kb, egress_bytes, kv_ops, log_bytes"
#define STORE_USAGE_VALUES(R, S)                                                                   \
    S "(CASE WHEN " R "status IN ('queued', 'running', 'throttled') THEN 0 ELSE 1 END), "           \
    S R "billed_ms, " S "(" R "memory_mb * " R "billed_ms), " S R "cpu_ms, " S R "max_rss_kb, "    \
    S R "egress_bytes, " S R "kv_ops, " S R "log_bytes"
#define STORE_USAGE_HOUR(R) R "start_ms - " R "start_ms % 3600000"
#define STORE_USAGE_TABLE(TEXT, INT)                                                               \
    "CREATE TABLE usage ("                                                                         \
    "  tenant " TEXT " NOT NULL, function " TEXT " NOT NULL, hour_ms " INT " NOT NULL,"            \
    "  part " INT " NOT NULL, requests " INT " NOT NULL, billed_ms " INT " NOT NULL,"              \
    "  mb_ms " INT " NOT NULL, cpu_ms " INT " NOT NULL, max_rss_kb " INT " NOT NULL,"              \
    "  egress_bytes " INT " NOT NULL, kv_ops " INT " NOT NULL, log_bytes " INT " NOT NULL,"        \
    "  PRIMARY KEY (tenant, function, hour_ms, part))"
#define STORE_USAGE_ADD                                                                            \
    " ON CONFLICT (tenant, function, hour_ms, part) DO UPDATE SET"                                 \
    " requests = usage.requests + excluded.requests,"                                              \
    " billed_ms = usage.billed_ms + excluded.billed_ms, mb_ms = usage.mb_ms + excluded.mb_ms,"     \
    " cpu_ms = usage.cpu_ms + excluded.cpu_ms,"                                                    \
    " max_rss_kb = usage.max_rss_kb + excluded.max_rss_kb,"                                        \
    " egress_bytes = usage.egress_bytes + excluded.egress_bytes,"                                  \
    " kv_ops = usage.kv_ops + excluded.kv_ops, log_bytes = usage.log_bytes + excluded.log_bytes"
/* Usage by tenant id too (tenant isolation; the migration "tenant ids"):
 * the key and upsert of usage as it is now. The two above are usage as
 * migration 13 made it, which that migration's text keeps. */
#define STORE_USAGE_KEY "tenant, function, tenant_id, hour_ms, part"
#define STORE_USAGE_ADD_BY_ID                                                                      \
    " ON CONFLICT (" STORE_USAGE_KEY ") DO UPDATE SET"                                             \
    " requests = usage.requests + excluded.requests,"                                              \
    " billed_ms = usage.billed_ms + excluded.billed_ms, mb_ms = usage.mb_ms + excluded.mb_ms,"     \
    " cpu_ms = usage.cpu_ms + excluded.cpu_ms,"                                                    \
    " max_rss_kb = usage.max_rss_kb + excluded.max_rss_kb,"                                        \
    " egress_bytes = usage.egress_bytes + excluded.egress_bytes,"                                  \
    " kv_ops = usage.kv_ops + excluded.kv_ops, log_bytes = usage.log_bytes + excluded.log_bytes"
#define STORE_USAGE_INSERT_BY_ID                                                                   \
    "INSERT INTO usage (" STORE_USAGE_KEY ", " STORE_USAGE_COLUMNS ") "
/* Storage over time (store_usage_storage; the migration "storage"): a
 * sample is claimed once (P(1), its time) before the KV stores count, and
 * each store's or volume's bytes × ms go into its own usage row (P(1)
 * tenant, P(2) "kv:NAME" or "volume:NAME", P(3) the hour, P(4) and P(5)
 * the KV and volume byte-ms), part -1 (records' rows have their own). */
#define STORE_STORAGE_CLAIM(P)                                                                     \
    "INSERT INTO storage_samples (at_ms) VALUES (" P(1) ") ON CONFLICT DO NOTHING"
#define STORE_STORAGE_PRUNE(P) "DELETE FROM storage_samples WHERE at_ms < " P(1)
#define STORE_STORAGE_ADD(P)                                                                       \
    "INSERT INTO usage (" STORE_USAGE_KEY ", " STORE_USAGE_COLUMNS ", kv_byte_ms, volume_byte_ms)" \
    " VALUES (" P(1) ", " P(2) ", '', " P(3) ", -1, 0, 0, 0, 0, 0, 0, 0, 0, " P(4) ", " P(5) ")"   \
    " ON CONFLICT (" STORE_USAGE_KEY ") DO UPDATE SET"                                             \
    " kv_byte_ms = usage.kv_byte_ms + excluded.kv_byte_ms,"                                        \
    " volume_byte_ms = usage.volume_byte_ms + excluded.volume_byte_ms"
/* A call metered without a record (a tuning run's: store_usage_put):
 * P(1) tenant, P(2) function, P(3) tenant id, P(4) the hour, then the
 * quantities of STORE_USAGE_COLUMNS as P(5)…P(12), in part -2. */
#define STORE_USAGE_PUT(P)                                                                         \
    STORE_USAGE_INSERT_BY_ID "VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4) ", -2, " P(5) ", " P(6)  \
    ", " P(7) ", " P(8) ", " P(9) ", " P(10) ", " P(11) ", " P(12) ")" STORE_USAGE_ADD_BY_ID
#define STORE_STORAGE_TABLES(INT)                                                                  \
    "ALTER TABLE usage ADD COLUMN kv_byte_ms " INT " NOT NULL DEFAULT 0;"                          \
    "ALTER TABLE usage ADD COLUMN volume_byte_ms " INT " NOT NULL DEFAULT 0;"                      \
    "CREATE TABLE storage_samples (at_ms " INT " PRIMARY KEY)"
#define STORE_USAGE_SUM(C) "CAST(sum(" C ") AS bigint)" /* PostgreSQL's would be numeric */
#define STORE_USAGE_LIST(P)                                                                        \
    "SELECT tenant, function, hour_ms, " STORE_USAGE_SUM("requests") ","                           \
    STORE_USAGE_SUM("billed_ms") "," STORE_USAGE_SUM("mb_ms") "," STORE_USAGE_SUM("cpu_ms") ","    \
    STORE_USAGE_SUM("max_rss_kb") "," STORE_USAGE_SUM("egress_bytes") ","                          \
    STORE_USAGE_SUM("kv_ops") "," STORE_USAGE_SUM("log_bytes") ", tenant_id,"                     \
    STORE_USAGE_SUM("kv_byte_ms") "," STORE_USAGE_SUM("volume_byte_ms") " FROM usage"              \
    " WHERE hour_ms >= " P(1) " AND hour_ms < " P(2)                                               \
    " GROUP BY tenant, function, tenant_id, hour_ms ORDER BY hour_ms, tenant, function, tenant_id"
#define STORE_USAGE_INSERT                                                                         \
    "INSERT INTO usage (tenant, function, hour_ms, part, " STORE_USAGE_COLUMNS ") "

/* Finding records (store_records_find), in P's syntax. Lists leave the
 * payloads out: the columns that would hold them are filled with "not
 * kept", so that store__fill_record reads the row as it reads a whole one,
 * and the rowid (the cursor's tie-break; on PostgreSQL a column of that
 * name) follows them. A NULL parameter is no condition (P(12) and P(13)
 * keep one tenant's functions, core/tenant.h); P(7) is the lesser
 * of the until bound and the cursor's start (store__bind_find). Two
 * statements rather than "P(1) IS NULL OR function = P(1)" so that one
 * function's records are read from the (function, start_ms) index, in
 * order, rather than found among everyone's. */
#define STORE_REC_FIND_ROWID_COL 33
#define STORE_REC_FIND(P, function_cond)                                                           \
    "SELECT " STORE_REC_COLUMNS ", NULL, 0, 0, NULL, 0, 0," STORE_REC_TENANT_ID ","               \
    STORE_REC_KEY_ID "," STORE_REC_PREWARMED "," STORE_REC_PHASES_READ ", rowid"                   \
    " FROM invocations"                                                                            \
    " WHERE start_ms >= " P(6) " AND start_ms <= " P(7) function_cond                              \
    " AND (" P(2) " IS NULL OR status = " P(2) ")"                                                 \
    " AND (" P(3) " IS NULL OR error_type = " P(3) ")"                                             \
    " AND (" P(4) " IS NULL OR cold_start = " P(4) ") AND duration_ms >= " P(5)                    \
    " AND (" P(8) " IS NULL OR start_ms < " P(8) " OR rowid < " P(9) ")"                           \
    " AND (" P(11) " IS NULL OR trigger = " P(11)                                                  \
    " OR substr(trigger, 1, length(" P(11) ") + 1) = " P(11) " || ':')"                            \
    " AND (CAST(" P(12) " AS TEXT) IS NULL OR function LIKE " P(12) ")"                            \
    " AND (CAST(" P(13) " AS TEXT) IS NULL OR function NOT LIKE " P(13) ")"                        \
    " AND (CAST(" P(14) " AS TEXT) IS NULL OR tenant_id = " P(14) ")"                             \
    " ORDER BY start_ms DESC, rowid DESC LIMIT " P(10)
#define STORE_REC_FIND_ONE(P) STORE_REC_FIND(P, " AND function = " P(1))
#define STORE_REC_FIND_ALL(P) STORE_REC_FIND(P, "")

/* What store_function_purge_write deletes, in this order. */
#define STORE_PURGE_RECORDS(P) "DELETE FROM invocations WHERE function = " P(1)
#define STORE_PURGE_LINES(P) "DELETE FROM logs WHERE function = " P(1)

#define STORE_LOG_PUT(P)                                                                           \
    "INSERT INTO logs (time_ms, function, request_id, stream, message)"                            \
    " VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4) ", " P(5) ")"
#define STORE_LOG_LIST(P)                                                                          \
    "SELECT id, time_ms, function, request_id, stream, message FROM logs"                          \
    " WHERE function = " P(1) " AND (" P(2) " IS NULL OR request_id = " P(2) ")"                   \
    " AND time_ms >= " P(3) " AND id > " P(4) " ORDER BY id LIMIT " P(5)

/* ---- retention (store/retention.c) --------------------------------------- */

/* Oldest first, by the indexes the tables have: records by start_ms, log
 * lines by id (their order of writing, and of time_ms); P(1) the newest
 * time to delete, P(2) at most how many. Log lines have no index on
 * time_ms: only the oldest P(2) lines by id are looked at, those of them
 * old enough deleted. (Filtering the whole table by time_ms instead would
 * read every line, to find none, on each look that finds nothing to
 * delete: at the size bound, several times a second.) */
#define STORE_PRUNE_RECORDS(P)                                                                     \
    "DELETE FROM invocations WHERE rowid IN (SELECT rowid FROM invocations"                       \
    " WHERE start_ms <= " P(1) " ORDER BY start_ms LIMIT " P(2) ")"
#define STORE_PRUNE_LINES(P)                                                                       \
    "DELETE FROM logs WHERE id IN (SELECT id FROM (SELECT id, time_ms FROM logs ORDER BY id"      \
    " LIMIT " P(2) ") AS head WHERE time_ms <= " P(1) ")"
/* The time of the oldest row of a kind but P(1). */
#define STORE_OLDEST_RECORD(P)                                                                     \
    "SELECT start_ms FROM invocations ORDER BY start_ms LIMIT 1 OFFSET " P(1)
#define STORE_OLDEST_LINE(P) "SELECT time_ms FROM logs ORDER BY id LIMIT 1 OFFSET " P(1)

/* ---- shared volumes and function URLs ------------------------------------ */

#define STORE_VOLUME_COLUMNS "name, size_mb, created_ms"
/* Changes no row when the name is taken. */
#define STORE_VOLUME_ADD(P)                                                                        \
    "INSERT INTO volumes (" STORE_VOLUME_COLUMNS ") VALUES (" P(1) ", " P(2) ", " P(3) ")"         \
    " ON CONFLICT (name) DO NOTHING"
#define STORE_VOLUME_GET(P) "SELECT " STORE_VOLUME_COLUMNS " FROM volumes WHERE name = " P(1)
#define STORE_VOLUME_LIST "SELECT " STORE_VOLUME_COLUMNS " FROM volumes ORDER BY name"
#define STORE_VOLUME_DELETE(P) "DELETE FROM volumes WHERE name = " P(1)

#define STORE_URL_COLUMNS "function, config_json, created_ms, updated_ms"
/* Only for a function that exists, checked in the same statement (a
 * delete of the function cannot slip in between): changes no row
 * otherwise. */
#define STORE_URL_PUT(P)                                                                           \
    "INSERT INTO function_urls (" STORE_URL_COLUMNS ") SELECT " P(1) ", " P(2) ", " P(3) ", "     \
    P(4) " WHERE EXISTS (SELECT 1 FROM functions WHERE name = " P(1) ")"                           \
    " ON CONFLICT (function) DO UPDATE SET config_json = excluded.config_json,"                    \
    " created_ms = excluded.created_ms, updated_ms = excluded.updated_ms"
#define STORE_URL_DELETE(P) "DELETE FROM function_urls WHERE function = " P(1)
#define STORE_URL_LIST "SELECT " STORE_URL_COLUMNS " FROM function_urls ORDER BY function"

/* ---- KV stores (store/kv.h, store/kv_backend.h) ------------------------ */

/* A key's columns, the value last: reading the others (listings,
 * conditions) never touches a large value's pages. */
#define STORE_KV_COLUMNS "version, size, expires_ms, content_type, value"
#define STORE_KV_LOOKUP_SQL(P)                                                                     \
    "SELECT " STORE_KV_COLUMNS " FROM kv WHERE store = " P(1) " AND key = " P(2)
/* A live key: one not expired at P(3). */
#define STORE_KV_LIVE(P) "(expires_ms IS NULL OR expires_ms > " P(3) ")"
#define STORE_KV_GET_SQL(P) STORE_KV_LOOKUP_SQL(P) " AND " STORE_KV_LIVE(P)
#define STORE_KV_UPSERT_SQL(P)                                                                     \
    "INSERT INTO kv (store, key, " STORE_KV_COLUMNS ") VALUES (" P(1) ", " P(2) ", " P(3) ", "     \
    P(4) ", " P(5) ", " P(6) ", " P(7) ") ON CONFLICT (store, key) DO UPDATE SET"                  \
    " version = excluded.version, size = excluded.size, expires_ms = excluded.expires_ms,"         \
    " content_type = excluded.content_type, value = excluded.value"
#define STORE_KV_DELETE_SQL(P) "DELETE FROM kv WHERE store = " P(1) " AND key = " P(2)
/* The stores' counts change in the same transactions as kv, so that they
 * are exact at every commit. */
#define STORE_KV_STORE_ADD_SQL(P)                                                                  \
    "INSERT INTO stores (name, keys, bytes) VALUES (" P(1) ", " P(2) ", " P(3) ")"                 \
    " ON CONFLICT (name) DO UPDATE SET keys = stores.keys + excluded.keys,"                        \
    " bytes = stores.bytes + excluded.bytes"
#define STORE_KV_STORE_GC_SQL(P) "DELETE FROM stores WHERE name = " P(1) " AND keys <= 0"
#define STORE_KV_STORE_GET_SQL(P) "SELECT keys, bytes FROM stores WHERE name = " P(1)
/* By name, byte by byte (on PostgreSQL the column's collation is "C"). */
#define STORE_KV_STORES_SQL "SELECT name, keys, bytes FROM stores ORDER BY name"
/* One lower bound P(2) (>=, the greater of the cursor and the prefix; the
 * cursor's own key is skipped by kv.c) and, with a prefix, an upper one
 * P(5), so the index is walked from the first row that can match to the
 * last. Keys are bytes (BLOB, bytea): compared as memcmp compares. */
#define STORE_KV_LIST_SQL(P, upper)                                                                \
    "SELECT key, version, size, expires_ms FROM kv WHERE store = " P(1) " AND key >= " P(2) upper \
    " AND " STORE_KV_LIVE(P) " ORDER BY key LIMIT " P(4)
#define STORE_KV_LIST_ALL_SQL(P) STORE_KV_LIST_SQL(P, "")
#define STORE_KV_LIST_PREFIX_SQL(P) STORE_KV_LIST_SQL(P, " AND key < " P(5))
/* The sweep, a store at a time: which stores hold the first P(2) keys
 * expired at P(1), and how many of them each; then each store's, P(3) at
 * most, under its lock. The expiry is looked at again as a row is
 * deleted: a key written anew meanwhile (PostgreSQL re-reads a row
 * another transaction changed) stays. */
#define STORE_KV_SWEEP_DUE_SQL(P)                                                                  \
    "SELECT store, count(*) FROM (SELECT store FROM kv WHERE expires_ms <= " P(1) " LIMIT " P(2)  \
    ") AS due GROUP BY store ORDER BY store"
#define STORE_KV_SWEEP_SQL(P)                                                                      \
    "DELETE FROM kv WHERE id IN (SELECT id FROM kv WHERE store = " P(1) " AND expires_ms <= "      \
    P(2) " LIMIT " P(3) ") AND expires_ms <= " P(2) " RETURNING length(key) + size"
#define STORE_KV_DROP_KEYS_SQL(P) "DELETE FROM kv WHERE store = " P(1)
#define STORE_KV_DROP_STORE_SQL(P) "DELETE FROM stores WHERE name = " P(1)
/* A writer's job, and a batch of ops inside one. */
#define STORE_KV_SAVEPOINT_SQL "SAVEPOINT job"
#define STORE_KV_RELEASE_SQL "RELEASE job"
#define STORE_KV_ROLLBACK_TO_SQL "ROLLBACK TO job"
#define STORE_KV_BATCH_SAVEPOINT_SQL "SAVEPOINT batch"
#define STORE_KV_BATCH_RELEASE_SQL "RELEASE batch"
#define STORE_KV_BATCH_ROLLBACK_TO_SQL "ROLLBACK TO batch"

/* One row of a result, as a backend reads its columns (0-based). */
typedef struct store__row {
    void *ctx;
    int64_t (*int64)(void *ctx, int col);
    double (*real)(void *ctx, int col);
    /* Copies text into dst (size bytes, cut to fit), "" for NULL. */
    void (*copy_text)(void *ctx, int col, char *dst, size_t size);
    /* The text, malloc'd; NULL for NULL. */
    char *(*dup_text)(void *ctx, int col);
    /* The bytes, malloc'd and NUL-terminated, *len their count; NULL (and
     * *len 0) for NULL. */
    void *(*dup_blob)(void *ctx, int col, size_t *len);
} store__row_t;

/* A statement's parameters, as a backend binds them (1-based): each call
 * returns 0, or non-zero when the value could not be bound. */
typedef struct store__binder {
    void *ctx;
    int (*int64)(void *ctx, int i, int64_t v);
    int (*real)(void *ctx, int i, double v);
    int (*text)(void *ctx, int i, const char *v);                /* NULL: NULL */
    int (*blob)(void *ctx, int i, const void *v, size_t len);    /* NULL: NULL */
} store__binder_t;

/* Reads one row into item: each backend's loops take these. */
typedef void (*store__fill_fn)(const store__row_t *row, void *item);
/* A row of STORE_FN_COLUMNS into a store_function_t. */
void store__fill_function(const store__row_t *row, void *item);
/* A row of STORE_REC_COLUMNS then STORE_REC_PAYLOADS (or what stands for
 * them in STORE_REC_FIND) into a store_record_t. */
void store__fill_record(const store__row_t *row, void *item);
/* A row of STORE_LOG_LIST into a store_log_t. */
void store__fill_log(const store__row_t *row, void *item);

/* A row of STORE_VOLUME_COLUMNS into a store_volume_t. */
void store__fill_volume(const store__row_t *row, void *item);
/* A row of STORE_USAGE_LIST into a store_usage_t. */
void store__fill_usage(const store__row_t *row, void *item);
/* A row of STORE_URL_COLUMNS into a store_url_t. */
void store__fill_url(const store__row_t *row, void *item);

/* The errors both backends give for what is not there: -ENOENT; for a
 * volume's name that is taken: -EEXIST. */
int store__no_function(mf_error_t *err, const char *name);
/* A put of f that replaced nothing: the stored one is as new (-ESTALE). */
int store__function_moved_on(mf_error_t *err, const store_function_t *f);
int store__no_record(mf_error_t *err, const char *request_id);
int store__no_volume(mf_error_t *err, const char *name);
int store__volume_exists(mf_error_t *err, const char *name);
int store__no_url(mf_error_t *err, const char *function);
/* A URL put for a function that does not exist: -ENOENT. */
int store__url_without_function(mf_error_t *err, const char *function);

/* STORE_FN_COLUMNS as parameters 1 to 7. */
int store__bind_function(const store__binder_t *b, const store_function_t *f);
/* STORE_REC_COLUMNS and STORE_REC_PAYLOADS as parameters 1 to 28, then
 * the tenant id as 29, the key id 30, prewarmed 31, and STORE_REC_PHASES
 * as 32 and 33. */
int store__bind_record(const store__binder_t *b, const store_record_t *rec);
/* STORE_REC_FIND's parameters; limit + 1 rows are asked for, so that one
 * more than wanted says whether there is a next page. */
int store__bind_find(const store__binder_t *b, const store_record_filter_t *f);
/* STORE_LOG_PUT's parameters. */
int store__bind_log(const store__binder_t *b, const store_log_t *l);
/* STORE_VOLUME_ADD's parameters from a store_volume_t, STORE_URL_PUT's
 * from a store_url_t (item, as store__fill_fn's). */
int store__bind_volume(const store__binder_t *b, const void *item);
int store__bind_url(const store__binder_t *b, const void *item);
/* STORE_STORAGE_ADD's parameters from a store__storage_row_t, and
 * STORE_STORAGE_CLAIM's and _PRUNE's from an int64_t time. */
typedef struct store__storage_row {
    const char *tenant, *name;
    int64_t hour_ms, kv_byte_ms, volume_byte_ms;
} store__storage_row_t;
int store__bind_storage(const store__binder_t *b, const void *item);
int store__bind_at(const store__binder_t *b, const void *item);
/* STORE_USAGE_PUT's parameters from a store_usage_t. */
int store__bind_usage(const store__binder_t *b, const void *item);

#endif
