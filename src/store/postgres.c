/* The shared store: one PostgreSQL database that several mayfly servers
 * may use at once (store.h's calls on PostgreSQL; postgres_schema.c its
 * tables, postgres_common.c the libpq plumbing).
 *
 * Each store_t is one connection with its statements prepared once. A
 * writer (store/writer.h) gets a connection of its own, for its thread,
 * and runs its batch of jobs as one transaction with a savepoint per job,
 * as on SQLite. A lost connection fails the call with -ECONNRESET and
 * says so, and is made again (postgres_common.c): the loop's by a thread
 * of its own, a writer's by its writer, which runs again what it owes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "store/backend.h"
#include "store/alerts_backend.h"
#include "store/budgets_backend.h"
#include "store/series_backend.h"
#include "store/listen.h"
#include "store/postgres_internal.h"

typedef struct pg_store {
    store_t base;
    PGconn *conn;
    char *url; /* as given: a writer's connection opens it again */
    char node[65]; /* store_set_node's, or "" */
} pg_store_t;

#define P STORE__PG_P

/* Prepared on every connection: the statements that are the same on both
 * backends (store/rows.h), and a record's upsert, which is PostgreSQL's
 * own. */
enum {
    FN_GET,
    FN_PUT,
    FN_DELETE,
    FN_LIST,
    CODE_REFS,
    REC_STAGE,
    REC_PUT,
    REC_GET,
    REC_FIND,
    REC_FIND_ALL,
    PURGE_RECORDS,
    PURGE_LINES,
    LOG_IDS_BEFORE,
    LOG_IDS_AFTER,
    LOG_LIST,
    LOG_REMOTE,
    LOG_LAST_ID,
    LOG_ANNOUNCE,
    PRUNE_RECORDS,
    PRUNE_LINES,
    OLDEST_RECORD,
    OLDEST_LINE,
    PRUNE_BYTES,
    VOL_ADD,
    VOL_GET,
    VOL_LIST,
    USAGE_LIST,
    STORAGE_CLAIM,
    STORAGE_PRUNE,
    STORAGE_ADD,
    USAGE_PUT,
    VOL_DELETE,
    URL_PUT,
    URL_DELETE,
    URL_LIST,
    CODE_PUT,
    CODE_GET,
    CODE_FORGET,
    STMT_COUNT
};

/* The rows of a table retention prunes that are live as the statistics
 * count them (pg_stat_user_tables), with this transaction's own inserts
 * and deletes, which they do not show yet. */
#define PG_LIVE_ROWS(table)                                                                        \
    "greatest(pg_stat_get_live_tuples('" table "'::regclass)"                                      \
    " + pg_stat_get_xact_tuples_inserted('" table "'::regclass)"                                   \
    " - pg_stat_get_xact_tuples_deleted('" table "'::regclass), 0)"

/* What the retention bound is measured against: PostgreSQL does not give
 * the space of deleted rows back to the file system (VACUUM lets new rows
 * use it), so the tables' size on disk would stay over a bound once past
 * it, however much is deleted. What counts is the live rows' bytes: their
 * number (PG_LIVE_ROWS) times the mean size of the newest hundred (their
 * payloads and messages as stored: compressed, out of line or not), and
 * never more than the tables' size on disk. The statistics lag behind
 * other transactions by a second or so (store__prune_ops_t.bytes_lag). */
#define PG_PRUNE_BYTES                                                                             \
    "SELECT least((SELECT sum(pg_total_relation_size(t))"                                         \
    " FROM unnest(ARRAY['invocations'::regclass, 'logs'::regclass]) AS t),"                        \
    " coalesce(" PG_LIVE_ROWS("invocations") " * (SELECT avg("                                     \
    "pg_column_size(ROW(request_id, function, version, status, start_ms, duration_ms, billed_ms," \
    " memory_mb, max_rss_kb, cpu_ms, cold_start, init_ms, error_type, attempts, replay_of,"        \
    " caller_request_id, kv_ops, trigger, event_bytes, event_flags, result_bytes, result_flags,"  \
    " rowid)) + coalesce(pg_column_size(error_message), 0)"                                        \
    " + coalesce(pg_column_size(egress_json), 0) + coalesce(pg_column_size(event), 0)"             \
    " + coalesce(pg_column_size(result), 0))"                                                      \
    " FROM (SELECT * FROM invocations ORDER BY start_ms DESC LIMIT 100) AS r), 0)"                 \
    " + coalesce(" PG_LIVE_ROWS("logs") " * (SELECT avg("                                          \
    "pg_column_size(ROW(id, time_ms, function, request_id, stream)) + pg_column_size(message))"   \
    " FROM (SELECT * FROM logs ORDER BY id DESC LIMIT 100) AS l), 0))::bigint"

/* A record's columns as the binder gives them (store__bind_record), the
 * session's table the COPY of a write's records fills (REC_STAGE), and a
 * write's lines' COPY, in the binder's order and their own (the ids
 * follow it). */
#define PG_REC_PUT_COLUMNS                                                                         \
    STORE_REC_COLUMNS "," STORE_REC_PAYLOADS "," STORE_REC_TENANT_ID "," STORE_REC_KEY_ID          \
    "," STORE_REC_PREWARMED "," STORE_REC_PHASES
#define PG_RECORDS_IN "pg_temp.mayfly_records_in"
#define PG_LOG_COPY                                                                                \
    "COPY logs (time_ms, function, request_id, stream, message, node) FROM STDIN"

/* A log line's columns on PostgreSQL: STORE_LOG_LIST's and the server
 * that wrote it (pg__fill_log). */
#define PG_LOG_COLUMNS "id, time_ms, function, request_id, stream, message, coalesce(node, '')"

static const store_pg_stmt_t pg__stmts[STMT_COUNT] = {
    [FN_GET] = { "fn_get", STORE_FN_GET(P), "t" },
    [FN_PUT] = { "fn_put", STORE_FN_PUT(P), "tititii" },
    [FN_DELETE] = { "fn_delete", STORE_FN_DELETE(P), "t" },
    [FN_LIST] = { "fn_list", STORE_FN_LIST, "" },
    [CODE_REFS] = { "code_refs", STORE_CODE_REFS(P), "t" },
    /* A record's upsert takes its rows from a table of the session's
     * own, which a COPY fills (pg__records_write): the rows are taken out
     * as they go in, and none outlives its transaction. */
    [REC_STAGE] = { "rec_stage",
                    "CREATE TEMP TABLE " PG_RECORDS_IN " ON COMMIT DELETE ROWS AS SELECT "
                    PG_REC_PUT_COLUMNS " FROM invocations WITH NO DATA",
                    NULL },
    [REC_PUT] = { "rec_put",
                  "WITH r AS (DELETE FROM " PG_RECORDS_IN " RETURNING *)"
                  " INSERT INTO invocations (" PG_REC_PUT_COLUMNS ") SELECT * FROM r"
                  " ON CONFLICT (request_id) DO UPDATE SET"
                  " function = excluded.function, version = excluded.version,"
                  " status = excluded.status, start_ms = excluded.start_ms,"
                  " duration_ms = excluded.duration_ms, billed_ms = excluded.billed_ms,"
                  " memory_mb = excluded.memory_mb, max_rss_kb = excluded.max_rss_kb,"
                  " cpu_ms = excluded.cpu_ms, cold_start = excluded.cold_start,"
                  " init_ms = excluded.init_ms, error_type = excluded.error_type,"
                  " error_message = excluded.error_message, attempts = excluded.attempts,"
                  " egress_json = excluded.egress_json, replay_of = excluded.replay_of,"
                  " caller_request_id = excluded.caller_request_id, kv_ops = excluded.kv_ops,"
                  " trigger = excluded.trigger, egress_bytes = excluded.egress_bytes,"
                  " log_bytes = excluded.log_bytes, event = excluded.event,"
                  " event_bytes = excluded.event_bytes, event_flags = excluded.event_flags,"
                  " result = excluded.result, result_bytes = excluded.result_bytes,"
                  " result_flags = excluded.result_flags, tenant_id = excluded.tenant_id,"
                  " key_id = COALESCE(excluded.key_id, invocations.key_id),"
                  " prewarmed = excluded.prewarmed, queue_ms = excluded.queue_ms,"
                  " sandbox_ms = excluded.sandbox_ms,"
                  " rowid = DEFAULT"
                  /* Nodes write records of one call in their own batches: the
                   * node that queued an event may write "queued" after the
                   * node that ran it wrote how it ended. A record of an
                   * earlier attempt, or one still under way of the same
                   * attempt, never replaces how that attempt ended. */
                  " WHERE excluded.attempts > invocations.attempts"
                  " OR (excluded.attempts = invocations.attempts"
                  " AND (invocations.status IN ('queued', 'running')"
                  " OR excluded.status NOT IN ('queued', 'running')))",
                  "" },
    [REC_GET] = { "rec_get", STORE_REC_GET(P), "t" },
    [REC_FIND] = { "rec_find", STORE_REC_FIND_ONE(P), "tttidiiiiitt" },
    [REC_FIND_ALL] = { "rec_find_all", STORE_REC_FIND_ALL(P), "tttidiiiiitt" },
    [PURGE_RECORDS] = { "purge_records", STORE_PURGE_RECORDS(P), "t" },
    [PURGE_LINES] = { "purge_lines", STORE_PURGE_LINES(P), "t" },
    /* The ids the lines of a COPY (PG_LOG_COPY) were given lie past the
     * first and up to the second (with other servers' between). */
    [LOG_IDS_BEFORE] = { "log_ids_before",
                         "SELECT coalesce(pg_sequence_last_value("
                         "pg_get_serial_sequence('logs', 'id')::regclass), 0)",
                         "" },
    [LOG_IDS_AFTER] = { "log_ids_after",
                        "SELECT currval(pg_get_serial_sequence('logs', 'id'))", "" },
    [LOG_LIST] = { "log_list",
                   "SELECT " PG_LOG_COLUMNS " FROM logs WHERE function = $1"
                   " AND ($2 IS NULL OR request_id = $2) AND time_ms >= $3 AND id > $4"
                   " ORDER BY id LIMIT $5",
                   "ttiii" },
    /* $2 NULL: every server's but this one's ($3). */
    [LOG_REMOTE] = { "log_remote",
                     "SELECT " PG_LOG_COLUMNS " FROM logs WHERE function = $1"
                     " AND CASE WHEN $2 IS NULL THEN node <> $3 ELSE node = $2 END"
                     " AND id > $4 AND id <= $5 ORDER BY id LIMIT $6",
                     "tttiii" },
    [LOG_LAST_ID] = { "log_last_id", "SELECT coalesce(max(id), 0) FROM logs", "" },
    [LOG_ANNOUNCE] = { "log_announce", "SELECT pg_notify('" STORE_CHANGES_CHANNEL "', $1)", "t" },
    [PRUNE_RECORDS] = { "prune_records", STORE_PRUNE_RECORDS(P), "ii" },
    [PRUNE_LINES] = { "prune_lines", STORE_PRUNE_LINES(P), "ii" },
    [OLDEST_RECORD] = { "oldest_record", STORE_OLDEST_RECORD(P), "i" },
    [OLDEST_LINE] = { "oldest_line", STORE_OLDEST_LINE(P), "i" },
    [PRUNE_BYTES] = { "prune_bytes", PG_PRUNE_BYTES, "" },
    [VOL_ADD] = { "vol_add", STORE_VOLUME_ADD(P), "tii" },
    [VOL_GET] = { "vol_get", STORE_VOLUME_GET(P), "t" },
    [VOL_LIST] = { "vol_list", STORE_VOLUME_LIST, "" },
    [USAGE_LIST] = { "usage_list", STORE_USAGE_LIST(P), "ii" },
    [STORAGE_CLAIM] = { "storage_claim", STORE_STORAGE_CLAIM(P), "i" },
    [STORAGE_PRUNE] = { "storage_prune", STORE_STORAGE_PRUNE(P), "i" },
    [STORAGE_ADD] = { "storage_add", STORE_STORAGE_ADD(P), "ttiii" },
    [USAGE_PUT] = { "usage_put", STORE_USAGE_PUT(P), "tttiiiiiiiii" },
    [VOL_DELETE] = { "vol_delete", STORE_VOLUME_DELETE(P), "t" },
    [URL_PUT] = { "url_put", STORE_URL_PUT(P), "ttii" },
    [URL_DELETE] = { "url_delete", STORE_URL_DELETE(P), "t" },
    [URL_LIST] = { "url_list", STORE_URL_LIST, "" },
    [CODE_PUT] = { "code_put",
                   "INSERT INTO code_packages (sha256, zip, created_ms) VALUES ($1, $2, $3)"
                   " ON CONFLICT (sha256) DO NOTHING",
                   "tbi" },
    [CODE_GET] = { "code_get", "SELECT zip FROM code_packages WHERE sha256 = $1", "t" },
    [CODE_FORGET] = { "code_forget",
                      "DELETE FROM code_packages WHERE sha256 = $1"
                      " AND NOT EXISTS (SELECT 1 FROM functions WHERE code_sha256 = $1)",
                      "t" },
};

static const store__backend_t pg__backend;

static pg_store_t *pg(store_t *s)
{
    return (pg_store_t *)s;
}

PGconn *store__pg_conn(store_t *s)
{
    return pg(s)->conn;
}

static const char *stmt(int id)
{
    return pg__stmts[id].name;
}

static void pg__close(store_t *base)
{
    pg_store_t *s = pg(base);
    store__pg_finish(s->conn);
    free(s->url);
    free(s);
}

/* A connection to url with the statements prepared; migrate on the first
 * of a server's connections (a writer's comes after it). */
static int pg__connect(const char *url, bool migrate, pg_store_t **out, mf_error_t *err)
{
    pg_store_t *s = xcalloc(1, sizeof *s);
    s->base.be = &pg__backend;
    s->url = xstrdup(url);
    int r = store__pg_connect(url, &s->conn, err);
    if (r == 0 && migrate)
        r = store__pg_migrate(s->conn, &s->base.schema_version, err);
    if (r == 0)
        r = store__pg_prepare(s->conn, pg__stmts, STMT_COUNT, err);
    if (r == 0)
        r = store__pg_prepare(s->conn, store__pg_budget_stmts, store__pg_budget_stmt_count, err);
    if (r == 0)
        r = store__pg_prepare(s->conn, store__pg_alert_stmts, store__pg_alert_stmt_count, err);
    if (r == 0)
        r = store__pg_prepare(s->conn, store__pg_series_stmts, store__pg_series_stmt_count, err);
    if (r < 0) {
        pg__close(&s->base);
        return r;
    }
    *out = s;
    return 0;
}

int store__pg_open(const char *url, store_t **out, mf_error_t *err)
{
    pg_store_t *s;
    int r = pg__connect(url, true, &s, err);
    if (r == 0)
        *out = &s->base;
    return r;
}

/* ---- the writer's connection ------------------------------------------- */

static int pg__w_begin(void *db, bool durable, mf_error_t *err)
{
    return store__pg_begin(pg(db)->conn, durable, err);
}

static int pg__w_savepoint(void *db, mf_error_t *err)
{
    return store__pg_savepoint(pg(db)->conn, err);
}

static void pg__w_release(void *db, bool keep)
{
    store__pg_release(pg(db)->conn, keep);
}

static int pg__w_commit(void *db, mf_error_t *err)
{
    return store__pg_commit(pg(db)->conn, err);
}

static void pg__w_close(void *db)
{
    pg__close(db);
}

static int pg__reopen(store_t *primary, store_t **out, mf_error_t *err)
{
    pg_store_t *s;
    int r = pg__connect(pg(primary)->url, false, &s, err);
    if (r < 0)
        return r;
    s->base.schema_version = primary->schema_version;
    memcpy(s->node, pg(primary)->node, sizeof s->node);
    *out = &s->base;
    return 0;
}

static int pg__writer_db(store_t *primary, store_writer_db_t *out, mf_error_t *err)
{
    store_t *s;
    int r = pg__reopen(primary, &s, err);
    if (r < 0)
        return r;
    *out = (store_writer_db_t){ .db = s,
                                .begin = pg__w_begin,
                                .savepoint = pg__w_savepoint,
                                .release = pg__w_release,
                                .commit = pg__w_commit,
                                .close = pg__w_close };
    store__pg_writer_link(pg(s)->conn, out);
    return 0;
}

/* ---- running statements ------------------------------------------------- */

/* Runs statement id with ?1 = key for at most one row, read by fill into
 * out: -ENOENT (err untouched) when there is none. */
static int pg__get(pg_store_t *s, int id, const char *key, store__fill_fn fill, void *out,
                   const char *what, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, key);
    PGresult *res;
    int r = store__pg_run(s->conn, stmt(id), &p, &res, what, err);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        r = -ENOENT;
    } else {
        store_pg_row_t at = { res, 0 };
        store__row_t row = store__pg_row(&at);
        fill(&row, out);
    }
    PQclear(res);
    return r;
}

/* Runs statement id with p for every row it gives, read by fill into a
 * new array of items of size bytes. */
static int pg__list(pg_store_t *s, int id, const store_pg_params_t *p, size_t size,
                    store__fill_fn fill, void **out, size_t *count, const char *what,
                    mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_run(s->conn, stmt(id), p, &res, what, err);
    if (r < 0)
        return r;
    store__pg_rows(res, size, fill, out, count);
    PQclear(res);
    return 0;
}

/* Ends a transaction of a write's own that began with r (0: it did):
 * committed if the write succeeded (r 0), else undone. */
static int pg__own_end(pg_store_t *s, int r, mf_error_t *err)
{
    if (r == 0)
        return store__pg_commit(s->conn, err);
    store__pg_rollback(s->conn);
    return r;
}

/* Runs statement id, a delete with ?1 = key: -ENOENT (err untouched)
 * when it deleted nothing. */
static int pg__delete(pg_store_t *s, int id, const char *key, const char *what, mf_error_t *err)
{
    int64_t n = 0;
    int r = store__pg_run_keyed(s->conn, stmt(id), key, &n, what, err);
    return r == 0 && n == 0 ? -ENOENT : r;
}

static void pg__fill_log(const store__row_t *row, void *item)
{
    store_log_t *l = item;
    store__fill_log(row, item);
    row->copy_text(row->ctx, 6, l->node, sizeof l->node);
}

/* ---- functions ---------------------------------------------------------- */

static int pg__function_get(store_t *base, const char *name, store_function_t *out,
                            mf_error_t *err)
{
    int r = pg__get(pg(base), FN_GET, name, store__fill_function, out, "get a function", err);
    return r == -ENOENT ? store__no_function(err, name) : r;
}

static int pg__function_put(store_t *base, const store_function_t *f, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    store__bind_function(&b, f);
    PGresult *res;
    int r = store__pg_run(pg(base)->conn, stmt(FN_PUT), &p, &res, "put a function", err);
    if (r == 0 && strtoll(PQcmdTuples(res), NULL, 10) == 0)
        r = store__function_moved_on(err, f);
    PQclear(res);
    return r;
}

static int pg__function_delete(store_t *base, const char *name, mf_error_t *err)
{
    int r = pg__delete(pg(base), FN_DELETE, name, "delete a function", err);
    return r == -ENOENT ? store__no_function(err, name) : r;
}

static int pg__function_list(store_t *base, store_function_t **out, size_t *count,
                             mf_error_t *err)
{
    void *list = NULL;
    int r = pg__list(pg(base), FN_LIST, NULL, sizeof **out, store__fill_function, &list, count,
                     "list functions", err);
    if (r == 0)
        *out = list;
    return r;
}

static int pg__code_refs(store_t *base, const char *code_sha256, int64_t *count,
                         mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, code_sha256);
    PGresult *res;
    int r = store__pg_run(pg(base)->conn, stmt(CODE_REFS), &p, &res, "count code references",
                          err);
    if (r == 0)
        *count = store__pg_int(res, 0, 0);
    PQclear(res);
    return r;
}

/* ---- code packages ------------------------------------------------------ */

static int pg__code_put(store_t *base, const char *sha256, const void *zip, size_t len,
                        mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, sha256);
    b.blob(b.ctx, 2, zip ? zip : "", len);
    b.int64(b.ctx, 3, clock_wall_ms());
    PGresult *res;
    int r = store__pg_run(pg(base)->conn, stmt(CODE_PUT), &p, &res, "keep a code package", err);
    PQclear(res);
    return r;
}

static int pg__code_get(store_t *base, const char *sha256, buf_t *out, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, sha256);
    PGresult *res;
    int r = store__pg_run(pg(base)->conn, stmt(CODE_GET), &p, &res, "read a code package", err);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        r = mf_error_plain(err, ENOENT, "store: no code package %s is kept", sha256);
    } else {
        buf_reset(out);
        buf_add(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    }
    PQclear(res);
    return r;
}

static int pg__code_forget(store_t *base, const char *sha256, mf_error_t *err)
{
    return store__pg_run_keyed(pg(base)->conn, stmt(CODE_FORGET), sha256, NULL,
                               "drop a code package", err);
}

/* ---- invocation records ------------------------------------------------- */

static bool pg__record_final(const store_record_t *r)
{
    return strcmp(r->status, "queued") && strcmp(r->status, "running");
}

/* Whether REC_PUT's upsert lets next replace cur (its WHERE). */
static bool pg__record_replaces(const store_record_t *next, const store_record_t *cur)
{
    return next->attempts > cur->attempts ||
           (next->attempts == cur->attempts && (!pg__record_final(cur) || pg__record_final(next)));
}

/* The records of one write, a request's several (an event queued, run
 * and ended within one batch) folded into the one REC_PUT would leave of
 * them, with one row written instead of several. That ends the same as
 * writing each in turn, whatever the table held, because the rule is
 * transitive: a later attempt beats an earlier one, and within an
 * attempt, if b may replace a and c may replace b, then c may replace a
 * (were a an ending and c not, b would have to be an ending to replace a
 * and not one to be replaced by c). */
typedef struct {
    const store_record_t **recs;
    size_t n;
    /* Shallow copies of the few records that replace one carrying the
     * caller's key without one of their own: the key goes with them, as
     * the upsert keeps it. Made only then (count of them at most). */
    store_record_t *keyed;
    size_t n_keyed;
} pg_recs_t;

static void pg__records_fold(const store_record_t *recs, size_t count, pg_recs_t *out)
{
    *out = (pg_recs_t){ .recs = xmalloc((count ? count : 1) * sizeof *out->recs) };
    map_t at = MAP_INIT;
    for (size_t i = 0; i < count; i++) {
        uintptr_t k = (uintptr_t)map_get(&at, recs[i].request_id);
        if (!k) {
            out->recs[out->n++] = &recs[i];
            map_put(&at, recs[i].request_id, (void *)(uintptr_t)out->n);
            continue;
        }
        const store_record_t *cur = out->recs[k - 1];
        if (!pg__record_replaces(&recs[i], cur))
            continue;
        if (recs[i].key_id[0] || !cur->key_id[0]) {
            out->recs[k - 1] = &recs[i];
            continue;
        }
        if (!out->keyed)
            out->keyed = xmalloc(count * sizeof *out->keyed);
        store_record_t *copy = &out->keyed[out->n_keyed++];
        *copy = recs[i];
        memcpy(copy->key_id, cur->key_id, sizeof copy->key_id);
        out->recs[k - 1] = copy;
    }
    map_release(&at);
}

/* Some of a write's folded records, bound from a list of them. */
typedef struct {
    const store_record_t **recs;
} pg_rec_list_t;

static void bind_listed(void *ctx, size_t i, const store__binder_t *b)
{
    store__bind_record(b, ((pg_rec_list_t *)ctx)->recs[i]);
}

/* The records, folded (so that no statement has one request's row twice,
 * which an upsert refuses). A call's one record (store_record_t.first:
 * no row of it can be there) goes straight into the table with one COPY;
 * the rest with one more into the session's table, and the upsert from
 * there. */
static int pg__records_write(store_t *base, const store_record_t *recs, size_t count,
                             mf_error_t *err)
{
    pg_recs_t f;
    pg__records_fold(recs, count, &f);
    const char *what = "write invocation records";
    PGconn *c = pg(base)->conn;
    /* Partitioned in place: the first ones, then the others. */
    size_t n_first = 0;
    for (size_t i = 0; i < f.n; i++)
        if (f.recs[i]->first) {
            const store_record_t *t = f.recs[n_first];
            f.recs[n_first++] = f.recs[i];
            f.recs[i] = t;
        }
    pg_rec_list_t firsts = { f.recs }, others = { f.recs + n_first };
    int r = store__pg_copy_rows(c, "COPY invocations (" PG_REC_PUT_COLUMNS ") FROM STDIN",
                                n_first, bind_listed, &firsts, what, err);
    if (r == 0)
        r = store__pg_copy_rows(c, "COPY " PG_RECORDS_IN " FROM STDIN", f.n - n_first,
                                bind_listed, &others, what, err);
    if (r == 0 && f.n > n_first) {
        PGresult *res;
        if ((r = store__pg_run(c, stmt(REC_PUT), NULL, &res, what, err)) == 0)
            PQclear(res);
    }
    free(f.recs);
    free(f.keyed);
    return r;
}

/* As pg__records_write, in a transaction of its own that does not wait
 * for the disk (what happened, not what was promised). */
static int pg__records_put(store_t *base, const store_record_t *recs, size_t count,
                           mf_error_t *err)
{
    int r = store__pg_begin(pg(base)->conn, false, err);
    if (r == 0)
        r = pg__records_write(base, recs, count, err);
    return pg__own_end(pg(base), r, err);
}

static int pg__record_get(store_t *base, const char *request_id, store_record_t *out,
                          mf_error_t *err)
{
    int r = pg__get(pg(base), REC_GET, request_id, store__fill_record, out,
                    "read an invocation record", err);
    return r == -ENOENT ? store__no_record(err, request_id) : r;
}

static int pg__records_find(store_t *base, const store_record_filter_t *f, store_record_t **out,
                            size_t *count, bool *more, store_record_cursor_t *next,
                            mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    store__bind_find(&b, f);
    PGresult *res;
    *more = false;
    int r = store__pg_run(pg(base)->conn, stmt(f->function ? REC_FIND : REC_FIND_ALL), &p, &res,
                          "list invocation records", err);
    if (r < 0)
        return r;
    size_t limit = f->limit > 0 ? (size_t)f->limit : 0;
    int rows = PQntuples(res);
    /* The row past the limit only says that there is a next page. */
    if ((size_t)rows > limit) {
        *more = true;
        rows = (int)limit;
    }
    store_record_t *list = rows > 0 ? xcalloc((size_t)rows, sizeof *list) : NULL;
    store_pg_row_t at = { res, 0 };
    store__row_t row = store__pg_row(&at);
    for (at.row = 0; at.row < rows; at.row++)
        store__fill_record(&row, &list[at.row]);
    if (next) {
        *next = (store_record_cursor_t){ 0, 0 };
        if (rows > 0) {
            next->start_ms = store__pg_int(res, rows - 1, 4);
            next->rowid = store__pg_int(res, rows - 1, STORE_REC_FIND_ROWID_COL);
        }
    }
    PQclear(res);
    *out = list;
    *count = (size_t)rows;
    return 0;
}

static int pg__function_purge_write(store_t *base, const char *function, int64_t *records,
                                    int64_t *lines, mf_error_t *err)
{
    const char *what = "purge a function's records and logs";
    int r = store__pg_run_keyed(pg(base)->conn, stmt(PURGE_RECORDS), function, records, what,
                                err);
    if (r == 0)
        r = store__pg_run_keyed(pg(base)->conn, stmt(PURGE_LINES), function, lines, what, err);
    return r;
}

/* ---- function logs ------------------------------------------------------ */

/* A notification's payload must stay under 8000 bytes. */
#define PG_ANNOUNCE_MAX 7900

/* Tells the other servers that this one wrote lines first_id to last_id
 * (with others' between) of the functions of lines: "logs NODE FIRST LAST
 * FUNCTION..." on the changes channel, as many as the names need. Inside
 * the batch's transaction, so it is heard when the lines can be read. */
static int pg__announce_lines(pg_store_t *s, const store_log_t *lines, size_t count,
                              int64_t first_id, int64_t last_id, mf_error_t *err)
{
    map_t seen = MAP_INIT;
    buf_t payload = BUF_INIT;
    int r = 0;
    for (size_t i = 0; i <= count && r == 0; i++) {
        const char *fn = i < count ? lines[i].function : NULL;
        if (fn && map_get(&seen, fn))
            continue;
        if (payload.len && (!fn || payload.len + 1 + strlen(fn) > PG_ANNOUNCE_MAX)) {
            store_pg_params_t p = { 0 };
            store__binder_t b = store__pg_binder(&p);
            b.text(b.ctx, 1, payload.data);
            PGresult *res;
            if ((r = store__pg_run(s->conn, stmt(LOG_ANNOUNCE), &p, &res,
                                   "announce log lines", err)) == 0)
                PQclear(res);
            buf_reset(&payload);
        }
        if (!fn)
            break;
        if (!payload.len)
            buf_addf(&payload, "logs %s %lld %lld", s->node, (long long)first_id,
                     (long long)last_id);
        map_put(&seen, fn, (void *)1);
        buf_addf(&payload, " %s", fn);
    }
    map_release(&seen);
    buf_release(&payload);
    return r;
}

/* The lines of one write, with their server's name, and the ids they
 * were given. */
typedef struct pg_lines {
    const store_log_t *lines;
    const char *node;
    int64_t first, last;
} pg_lines_t;

static void pg__line_bind(void *ctx, size_t i, const store__binder_t *b)
{
    pg_lines_t *l = ctx;
    store__bind_log(b, &l->lines[i]);
    b->text(b->ctx, 6, l->node);
}

/* The one number a statement answers (LOG_IDS_BEFORE, LOG_IDS_AFTER). */
static int pg__one_id(PGconn *c, int which, int64_t *out, mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_run(c, stmt(which), NULL, &res, "write log lines", err);
    if (r == 0)
        *out = store__pg_int(res, 0, 0);
    PQclear(res);
    return r;
}

/* The lines with one COPY, in their order; with other servers, the range
 * of ids they were given is announced. */
static int pg__logs_write(store_t *base, const store_log_t *lines, size_t count,
                          mf_error_t *err)
{
    pg_store_t *s = pg(base);
    pg_lines_t l = { lines, s->node[0] ? s->node : NULL, 0, 0 };
    if (!count)
        return 0;
    int r = s->node[0] ? pg__one_id(s->conn, LOG_IDS_BEFORE, &l.first, err) : 0;
    if (r == 0)
        r = store__pg_copy_rows(s->conn, PG_LOG_COPY, count, pg__line_bind, &l,
                                "write log lines", err);
    if (r < 0 || !s->node[0])
        return r;
    if ((r = pg__one_id(s->conn, LOG_IDS_AFTER, &l.last, err)) < 0)
        return r;
    return pg__announce_lines(s, lines, count, l.first + 1, l.last, err);
}

static int pg__logs_put(store_t *base, const store_log_t *lines, size_t count, mf_error_t *err)
{
    int r = store__pg_begin(pg(base)->conn, false, err);
    if (r == 0)
        r = pg__logs_write(base, lines, count, err);
    return pg__own_end(pg(base), r, err);
}

static int pg__logs_list(store_t *base, const char *function, const char *request_id,
                         int64_t since_ms, int64_t after_id, int limit, store_log_t **out,
                         size_t *count, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    b.text(b.ctx, 2, request_id);
    b.int64(b.ctx, 3, since_ms);
    b.int64(b.ctx, 4, after_id);
    b.int64(b.ctx, 5, limit);
    void *list = NULL;
    int r = pg__list(pg(base), LOG_LIST, &p, sizeof **out, pg__fill_log, &list, count,
                     "list log lines", err);
    if (r == 0)
        *out = list;
    return r;
}

static int pg__logs_list_remote(store_t *base, const char *function, const char *node,
                                int64_t after_id, int64_t last_id, int limit, store_log_t **out,
                                size_t *count, mf_error_t *err)
{
    pg_store_t *s = pg(base);
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    b.text(b.ctx, 2, node);
    b.text(b.ctx, 3, s->node);
    b.int64(b.ctx, 4, after_id);
    b.int64(b.ctx, 5, last_id);
    b.int64(b.ctx, 6, limit);
    void *list = NULL;
    int r = pg__list(s, LOG_REMOTE, &p, sizeof **out, pg__fill_log, &list, count,
                     "list other servers' log lines", err);
    if (r == 0)
        *out = list;
    return r;
}

static int pg__run_ints(pg_store_t *s, int id, const int64_t *args, int n, int64_t *changed,
                        int64_t *first, const char *what, mf_error_t *err);

static int pg__logs_last_id(store_t *base, int64_t *out, mf_error_t *err)
{
    return pg__run_ints(pg(base), LOG_LAST_ID, NULL, 0, NULL, out, "find the newest log line",
                        err);
}

/* ---- servers sharing the database --------------------------------------- */

static void pg__set_node(store_t *base, const char *node)
{
    snprintf(pg(base)->node, sizeof pg(base)->node, "%s", node ? node : "");
}

static int pg__listen_open(store_t *base, const char *channel, const char *application_name,
                           store_listener_t **out, mf_error_t *err)
{
    return store__pg_listen_open(pg(base)->url, channel, application_name, out, err);
}

/* ---- retention ---------------------------------------------------------- */

/* Runs statement id with n numbers as its parameters: *changed (may be
 * NULL) how many rows it changed, *first (may be NULL) the first column
 * of its first row, INT64_MAX when there is none. */
static int pg__run_ints(pg_store_t *s, int id, const int64_t *args, int n, int64_t *changed,
                        int64_t *first, const char *what, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    for (int i = 0; i < n; i++)
        b.int64(b.ctx, i + 1, args[i]);
    PGresult *res;
    int r = store__pg_run(s->conn, stmt(id), &p, &res, what, err);
    if (r < 0)
        return r;
    if (changed)
        *changed = strtoll(PQcmdTuples(res), NULL, 10);
    if (first)
        *first = PQntuples(res) > 0 ? store__pg_int(res, 0, 0) : INT64_MAX;
    PQclear(res);
    return 0;
}

static int pg__delete_older(store_t *base, bool lines, int64_t until_ms, int batch,
                            int64_t *deleted, mf_error_t *err)
{
    int64_t args[] = { until_ms, batch };
    return pg__run_ints(pg(base), lines ? PRUNE_LINES : PRUNE_RECORDS, args, 2, deleted, NULL,
                        "prune old records", err);
}

static int64_t pg__oldest(store_t *base, bool lines, int skip)
{
    int64_t args[] = { skip }, t = INT64_MAX;
    mf_error_t ignored = MF_ERROR_INIT;
    pg__run_ints(pg(base), lines ? OLDEST_LINE : OLDEST_RECORD, args, 1, NULL, &t,
                 "find the oldest records", &ignored);
    return t;
}

static int pg__prune_bytes(store_t *base, int64_t *out, mf_error_t *err)
{
    return pg__run_ints(pg(base), PRUNE_BYTES, NULL, 0, NULL, out, "measure the records", err);
}

static const store__prune_ops_t pg__prune = {
    .delete_older = pg__delete_older,
    .oldest = pg__oldest,
    .bytes = pg__prune_bytes,
    .bytes_lag = true,
};

static int pg__prune_write(store_t *base, int64_t before_ms, int64_t max_bytes, int batch,
                           store_prune_t *out, mf_error_t *err)
{
    return store__prune(base, &pg__prune, before_ms, max_bytes, batch, out, err);
}

/* ---- shared volumes and function URLs ----------------------------------- */

/* Runs statement id with the parameters bind sets from item; *changed how
 * many rows it inserted, changed or deleted. */
static int pg__write(pg_store_t *s, int id, int (*bind)(const store__binder_t *b, const void *item),
                     const void *item, int64_t *changed, const char *what, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    bind(&b, item);
    PGresult *res;
    int r = store__pg_run(s->conn, stmt(id), &p, &res, what, err);
    if (r < 0)
        return r;
    *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static int pg__volume_add(store_t *base, const store_volume_t *v, mf_error_t *err)
{
    int64_t changed = 0;
    int r = pg__write(pg(base), VOL_ADD, store__bind_volume, v, &changed, "add a volume", err);
    return r == 0 && changed == 0 ? store__volume_exists(err, v->name) : r;
}

static int pg__volume_get(store_t *base, const char *name, store_volume_t *out, mf_error_t *err)
{
    int r = pg__get(pg(base), VOL_GET, name, store__fill_volume, out, "get a volume", err);
    return r == -ENOENT ? store__no_volume(err, name) : r;
}

static int pg__volume_list(store_t *base, store_volume_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    *out = NULL;
    *count = 0;
    int r = pg__list(pg(base), VOL_LIST, NULL, sizeof **out, store__fill_volume, &list, count,
                     "list volumes", err);
    if (r == 0)
        *out = list;
    return r;
}

static int pg__usage_list(store_t *base, int64_t from_ms, int64_t to_ms, store_usage_t **out,
                          size_t *count, mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, from_ms);
    b.int64(b.ctx, 2, to_ms);
    void *list = NULL;
    int r = pg__list(pg(base), USAGE_LIST, &p, sizeof **out, store__fill_usage, &list, count,
                     "read usage", err);
    if (r == 0)
        *out = list;
    return r;
}

static int pg__storage_claim(store_t *base, int64_t at_ms, bool prune, int *claimed,
                             mf_error_t *err)
{
    int64_t changed = 0;
    int r = pg__write(pg(base), prune ? STORAGE_PRUNE : STORAGE_CLAIM, store__bind_at, &at_ms,
                      &changed, "claim a storage sample", err);
    if (r == 0 && claimed)
        *claimed = changed > 0;
    return r;
}

static int pg__storage_add(store_t *base, const char *tenant, const char *name, int64_t hour_ms,
                           int64_t kv_byte_ms, int64_t volume_byte_ms, mf_error_t *err)
{
    int64_t changed = 0;
    store__storage_row_t row = { tenant, name, hour_ms, kv_byte_ms, volume_byte_ms };
    return pg__write(pg(base), STORAGE_ADD, store__bind_storage, &row, &changed,
                     "add storage to usage", err);
}

static int pg__usage_put(store_t *base, const store_usage_t *u, mf_error_t *err)
{
    int64_t changed = 0;
    return pg__write(pg(base), USAGE_PUT, store__bind_usage, u, &changed, "add a call to usage",
                     err);
}

static int pg__volume_delete(store_t *base, const char *name, mf_error_t *err)
{
    int r = pg__delete(pg(base), VOL_DELETE, name, "delete a volume", err);
    return r == -ENOENT ? store__no_volume(err, name) : r;
}

static int pg__url_put(store_t *base, const store_url_t *u, mf_error_t *err)
{
    int64_t changed = 0;
    int r = pg__write(pg(base), URL_PUT, store__bind_url, u, &changed, "put a function URL", err);
    return r == 0 && changed == 0 ? store__url_without_function(err, u->function) : r;
}

static int pg__url_delete(store_t *base, const char *function, mf_error_t *err)
{
    int r = pg__delete(pg(base), URL_DELETE, function, "delete a function URL", err);
    return r == -ENOENT ? store__no_url(err, function) : r;
}

static int pg__url_list(store_t *base, store_url_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    *out = NULL;
    *count = 0;
    int r = pg__list(pg(base), URL_LIST, NULL, sizeof **out, store__fill_url, &list, count,
                     "list function URLs", err);
    if (r == 0)
        *out = list;
    return r;
}

static const store__backend_t pg__backend = {
    .name = "PostgreSQL",
    .close = pg__close,
    .writer_db = pg__writer_db,
    .reopen = pg__reopen,
    .set_node = pg__set_node,
    .listen_open = pg__listen_open,
    .function_get = pg__function_get,
    .function_put = pg__function_put,
    .function_delete = pg__function_delete,
    .function_list = pg__function_list,
    .code_refs = pg__code_refs,
    .code_put = pg__code_put,
    .code_get = pg__code_get,
    .code_forget = pg__code_forget,
    .records_put = pg__records_put,
    .records_write = pg__records_write,
    .record_get = pg__record_get,
    .records_find = pg__records_find,
    .function_purge_write = pg__function_purge_write,
    .logs_put = pg__logs_put,
    .logs_write = pg__logs_write,
    .logs_list = pg__logs_list,
    .logs_list_remote = pg__logs_list_remote,
    .logs_last_id = pg__logs_last_id,
    .prune_write = pg__prune_write,
    .volume_add = pg__volume_add,
    .volume_get = pg__volume_get,
    .volume_list = pg__volume_list,
    .usage_list = pg__usage_list,
    .storage_claim = pg__storage_claim,
    .storage_add = pg__storage_add,
    .usage_put = pg__usage_put,
    .volume_delete = pg__volume_delete,
    .url_put = pg__url_put,
    .url_delete = pg__url_delete,
    .url_list = pg__url_list,
    .budgets = &store__pg_budget_ops,
    .series = &store__pg_series_ops,
    .alerts = &store__pg_alert_ops,
};
