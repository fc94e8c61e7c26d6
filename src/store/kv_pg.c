/* The KV stores that several servers share: the kv and stores tables of
 * the PostgreSQL database (postgres_schema.c), one of kv.c's backends
 * (store/kv_backend.h).
 *
 * What keeps the servers' writes apart is a lock per store, taken by
 * every write before it looks at its key and held until its transaction
 * ends (pg_advisory_xact_lock, keyed by the store's name): a condition, an
 * increment or a bound is checked and acted on as one step, the store's
 * counts stay exact, and a key's next version is drawn only once the
 * write before it has committed. A writer's batch holds the locks of the
 * stores its jobs wrote to until its commit; two servers' batches that
 * take two stores' locks in opposite orders are a deadlock PostgreSQL
 * ends by failing one of the jobs (SQLSTATE 40P01), which its caller sees
 * as an error. Versions come from the sequence kv_versions. */
#include <errno.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "store/kv_backend.h"
#include "store/postgres_internal.h"

#define P STORE__PG_P
#define STR_(x) #x
#define STR(x) STR_(x)
#define KV_LOCK_KEY STR(STORE_PG_KV_LOCK) ", hashtext($1))"

/* Parameter types, one letter each (store/postgres_internal.h). */
static const store_pg_stmt_t kvpg__stmts[STORE__KV_STMT_COUNT] = {
    [STORE__KV_GET] = { "kv_get", STORE_KV_GET_SQL(P), "tbi" },
    [STORE__KV_LOOKUP] = { "kv_lookup", STORE_KV_LOOKUP_SQL(P), "tb" },
    [STORE__KV_UPSERT] = { "kv_upsert", STORE_KV_UPSERT_SQL(P), "tbiiitb" },
    [STORE__KV_DELETE] = { "kv_delete", STORE_KV_DELETE_SQL(P), "tb" },
    [STORE__KV_STORE_ADD] = { "kv_store_add", STORE_KV_STORE_ADD_SQL(P), "tii" },
    [STORE__KV_STORE_GC] = { "kv_store_gc", STORE_KV_STORE_GC_SQL(P), "t" },
    [STORE__KV_STORE_GET] = { "kv_store_get", STORE_KV_STORE_GET_SQL(P), "t" },
    [STORE__KV_STORES] = { "kv_stores", STORE_KV_STORES_SQL, "" },
    [STORE__KV_VERSION_NEXT] = { "kv_version_next", "SELECT nextval('kv_versions')", "" },
    [STORE__KV_LIST] = { "kv_list", STORE_KV_LIST_ALL_SQL(P), "tbii" },
    [STORE__KV_LIST_PREFIX] = { "kv_list_prefix", STORE_KV_LIST_PREFIX_SQL(P), "tbiib" },
    [STORE__KV_SWEEP_DUE] = { "kv_sweep_due", STORE_KV_SWEEP_DUE_SQL(P), "ii" },
    [STORE__KV_SWEEP] = { "kv_sweep", STORE_KV_SWEEP_SQL(P), "tii" },
    [STORE__KV_DROP_KEYS] = { "kv_drop_keys", STORE_KV_DROP_KEYS_SQL(P), "t" },
    [STORE__KV_DROP_STORE] = { "kv_drop_store", STORE_KV_DROP_STORE_SQL(P), "t" },
    [STORE__KV_LOCK] = { "kv_lock", "SELECT pg_advisory_xact_lock(" KV_LOCK_KEY, "t" },
    [STORE__KV_TRY_LOCK] = { "kv_try_lock", "SELECT pg_try_advisory_xact_lock(" KV_LOCK_KEY, "t" },
    /* BEGIN is store__pg_begin's. */
    [STORE__KV_BEGIN_READ] = { "kv_begin_read", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                              "" },
    [STORE__KV_COMMIT] = { "kv_commit", "COMMIT", "" },
    [STORE__KV_SAVEPOINT] = { "kv_savepoint", STORE_KV_SAVEPOINT_SQL, "" },
    [STORE__KV_RELEASE] = { "kv_release", STORE_KV_RELEASE_SQL, "" },
    [STORE__KV_ROLLBACK_TO] = { "kv_rollback_to", STORE_KV_ROLLBACK_TO_SQL, "" },
    [STORE__KV_BATCH_SAVEPOINT] = { "kv_batch_savepoint", STORE_KV_BATCH_SAVEPOINT_SQL, "" },
    [STORE__KV_BATCH_RELEASE] = { "kv_batch_release", STORE_KV_BATCH_RELEASE_SQL, "" },
    [STORE__KV_BATCH_ROLLBACK_TO] = { "kv_batch_rollback_to", STORE_KV_BATCH_ROLLBACK_TO_SQL, "" },
};

typedef struct kv_pg {
    store_kv_t base;
    PGconn *conn;
} kv_pg_t;

static const store__kv_backend_t kvpg__backend;

static kv_pg_t *pg(store_kv_t *kv)
{
    return (kv_pg_t *)kv;
}

static void kvpg__close(store_kv_t *base)
{
    kv_pg_t *kv = pg(base);
    store__pg_finish(kv->conn);
    free(kv);
}

/* Every connection migrates (at no cost once the schema is there): the
 * stores may be opened before the main store is. */
int store__kv_pg_open(const char *url, bool writer, store_kv_t **out, mf_error_t *err)
{
    kv_pg_t *kv = xcalloc(1, sizeof *kv);
    kv->base.be = &kvpg__backend;
    int version;
    int r = store__pg_connect(url, &kv->conn, err);
    if (r == 0)
        r = store__pg_migrate(kv->conn, &version, err);
    if (r == 0)
        r = store__pg_prepare(kv->conn, kvpg__stmts, STORE__KV_STMT_COUNT, err);
    if (r < 0) {
        kvpg__close(&kv->base);
        return r;
    }
    *out = &kv->base;
    return 0;
}

static int kvpg__run(store_kv_t *base, int stmt, const store__kv_arg_t *args, size_t n,
                     store__fill_fn row, void *ud, const char *what, mf_error_t *err)
{
    if (!kvpg__stmts[stmt].sql)
        return 0;
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    store__kv_bind(&b, args, n);
    PGresult *res;
    int r = store__pg_run(pg(base)->conn, kvpg__stmts[stmt].name, &p, &res, what, err);
    if (r < 0)
        return r;
    store_pg_row_t at = { res, 0 };
    store__row_t reader = store__pg_row(&at);
    for (int rows = row ? PQntuples(res) : 0; at.row < rows; at.row++)
        row(&reader, ud);
    PQclear(res);
    return 0;
}

static int kvpg__begin(store_kv_t *base, bool durable, mf_error_t *err)
{
    return store__pg_begin(pg(base)->conn, durable, err);
}

static int kvpg__commit(store_kv_t *base, mf_error_t *err)
{
    return store__pg_commit(pg(base)->conn, err);
}

static void kvpg__rollback(store_kv_t *base)
{
    store__pg_rollback(pg(base)->conn);
}

static bool kvpg__in_transaction(store_kv_t *base)
{
    /* Unknown (the connection is lost): the next statement says so. */
    return PQtransactionStatus(pg(base)->conn) != PQTRANS_IDLE;
}

static void kvpg__writer_link(store_kv_t *base, store_writer_db_t *out)
{
    store__pg_writer_link(pg(base)->conn, out);
}

static const store__kv_backend_t kvpg__backend = {
    .name = "PostgreSQL",
    .close = kvpg__close,
    .run = kvpg__run,
    .begin = kvpg__begin,
    .commit = kvpg__commit,
    .rollback = kvpg__rollback,
    .in_transaction = kvpg__in_transaction,
    .writer_link = kvpg__writer_link,
};
