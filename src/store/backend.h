/* How store.h's calls reach the database that holds the data: each
 * backend (sqlite.c, postgres.c) fills one table of functions, and
 * store.c's public calls go through it. Not for other modules.
 *
 * A backend's own struct begins with a store_t, so that the store_t *
 * callers hold (and a writer's jobs get as their db) leads back to it. */
#ifndef MAYFLY_STORE_BACKEND_H
#define MAYFLY_STORE_BACKEND_H

#include "store/store.h"

struct store_listener;
struct store__budget_ops;
struct store__alert_ops;
struct store__series_ops;

typedef struct store__backend {
    const char *name; /* "SQLite", "PostgreSQL": for messages */
    void (*close)(store_t *s);
    int (*writer_db)(store_t *s, store_writer_db_t *out, mf_error_t *err);
    int (*reopen)(store_t *s, store_t **out, mf_error_t *err);
    /* NULL where servers do not share the data (SQLite). */
    void (*set_node)(store_t *s, const char *node);
    int (*listen_open)(store_t *s, const char *channel, const char *application_name,
                       struct store_listener **out, mf_error_t *err);

    int (*function_get)(store_t *s, const char *name, store_function_t *out, mf_error_t *err);
    int (*function_put)(store_t *s, const store_function_t *f, mf_error_t *err);
    int (*function_delete)(store_t *s, const char *name, mf_error_t *err);
    int (*function_list)(store_t *s, store_function_t **out, size_t *count, mf_error_t *err);
    int (*code_refs)(store_t *s, const char *code_sha256, int64_t *count, mf_error_t *err);
    /* NULL on a backend that keeps no code packages (store_keeps_code). */
    int (*code_put)(store_t *s, const char *sha256, const void *zip, size_t len,
                    mf_error_t *err);
    int (*code_get)(store_t *s, const char *sha256, buf_t *out, mf_error_t *err);
    int (*code_forget)(store_t *s, const char *sha256, mf_error_t *err);

    int (*records_put)(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err);
    int (*records_write)(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err);
    int (*record_get)(store_t *s, const char *request_id, store_record_t *out, mf_error_t *err);
    int (*records_find)(store_t *s, const store_record_filter_t *f, store_record_t **out,
                        size_t *count, bool *more, store_record_cursor_t *next, mf_error_t *err);
    int (*function_purge_write)(store_t *s, const char *function, int64_t *records,
                                int64_t *lines, mf_error_t *err);
    int (*prune_write)(store_t *s, int64_t before_ms, int64_t max_bytes, int batch,
                       store_prune_t *out, mf_error_t *err);

    int (*logs_put)(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err);
    int (*logs_write)(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err);
    int (*logs_list)(store_t *s, const char *function, const char *request_id, int64_t since_ms,
                     int64_t after_id, int limit, store_log_t **out, size_t *count,
                     mf_error_t *err);
    int (*logs_list_remote)(store_t *s, const char *function, const char *node,
                            int64_t after_id, int64_t last_id, int limit, store_log_t **out,
                            size_t *count, mf_error_t *err);
    int (*logs_last_id)(store_t *s, int64_t *out, mf_error_t *err);

    int (*volume_add)(store_t *s, const store_volume_t *v, mf_error_t *err);
    int (*volume_get)(store_t *s, const char *name, store_volume_t *out, mf_error_t *err);
    int (*volume_list)(store_t *s, store_volume_t **out, size_t *count, mf_error_t *err);
    int (*usage_list)(store_t *s, int64_t from_ms, int64_t to_ms, store_usage_t **out,
                      size_t *count, mf_error_t *err);
    /* store_usage_storage's statements: claim (1 claimed, 0 another had
     * it) and add; NULL claimed: prune samples before at_ms. */
    int (*storage_claim)(store_t *s, int64_t at_ms, bool prune, int *claimed, mf_error_t *err);
    int (*storage_add)(store_t *s, const char *tenant, const char *name, int64_t hour_ms,
                       int64_t kv_byte_ms, int64_t volume_byte_ms, mf_error_t *err);
    int (*usage_put)(store_t *s, const store_usage_t *u, mf_error_t *err);
    int (*volume_delete)(store_t *s, const char *name, mf_error_t *err);

    int (*url_put)(store_t *s, const store_url_t *u, mf_error_t *err);
    int (*url_delete)(store_t *s, const char *function, mf_error_t *err);
    int (*url_list)(store_t *s, store_url_t **out, size_t *count, mf_error_t *err);
    /* Budgets (store/budgets.h); NULL: none kept. */
    const struct store__budget_ops *budgets;
    /* Alert rules and their outbox (store/alerts.h); NULL: none kept. */
    const struct store__alert_ops *alerts;
    /* Aggregates of records over time (store/series.h); NULL: none. */
    const struct store__series_ops *series;
} store__backend_t;

struct store {
    const store__backend_t *be;
    int schema_version; /* after migrations */
};

/* What retention (store/retention.c) asks of a backend, inside the
 * transaction of a writer's job; the rest of store_prune_write is said
 * once there. lines: log lines, else invocation records. */
typedef struct store__prune_ops {
    /* Deletes at most batch rows of time until_ms or older, oldest first,
     * and says how many went. */
    int (*delete_older)(store_t *s, bool lines, int64_t until_ms, int batch, int64_t *deleted,
                        mf_error_t *err);
    /* The time of the oldest row but skip; INT64_MAX when there are no
     * more rows than skip (or they could not be read). */
    int64_t (*oldest)(store_t *s, bool lines, int skip);
    /* The bytes the bound is measured against (store_prune_t.bytes). */
    int (*bytes)(store_t *s, int64_t *out, mf_error_t *err);
    /* After a job's deletions (NULL: nothing): gives space back. */
    int (*tidy)(store_t *s, int64_t max_bytes, mf_error_t *err);
    /* Whether bytes may not yet show the deletions of earlier
     * transactions (it shows its own): a job then deletes one batch of
     * each over the bound, and does not ask for the next job at once,
     * which would delete again for what is already gone. */
    bool bytes_lag;
} store__prune_ops_t;

int store__prune(store_t *s, const store__prune_ops_t *ops, int64_t before_ms, int64_t max_bytes,
                 int batch, store_prune_t *out, mf_error_t *err);

/* Whether where names a PostgreSQL database rather than a data directory:
 * the URI schemes libpq takes (a connection string of key=value words is
 * not taken: it could not be told apart from a directory's name). The
 * queue (store/queue.h) and the KV stores (store/kv.h) choose their
 * backends by it too. */
bool store__is_url(const char *where);

/* The backends' opening calls, which store_open chooses between. */
int store__sqlite_store_open(const char *data_dir, store_t **out, mf_error_t *err);
int store__pg_open(const char *url, store_t **out, mf_error_t *err);

/* The error both backends give for a database whose schema is newer than
 * this mayfly knows: -EPROTO, naming both versions. */
int store__newer_schema(mf_error_t *err, int have, int know);

#endif
