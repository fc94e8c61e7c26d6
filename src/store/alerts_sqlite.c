/* Alert rules and the outbox on SQLite (store/alerts.h). One server uses
 * mayfly.db at a time, and its writer thread is the only one that writes:
 * a claim needs no lock of its own. Statements are prepared per call. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "store/alerts_backend.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

typedef struct args {
    const char *s1, *s2;
    int64_t i1, i2, i3;
} args_t;

/* Runs sql with bind's parameters; its rows (RETURNING, SELECT) read by
 * fill into *out when fill is given; *changed the rows it changed. */
static int run(sqlite3 *db, const char *sql, int (*bind)(const store__binder_t *b, const void *x),
               const void *x, store__fill_fn fill, size_t size, void **out, size_t *count,
               int64_t *changed, const char *what, mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, sql, &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    if (bind && bind(&b, x)) {
        r = store__sqlite_fail(db, err, what);
    } else if (fill) {
        r = store__sqlite_rows(db, st, size, fill, out, count, what, err);
    } else {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            ;
        if (rc != SQLITE_DONE)
            r = store__sqlite_fail(db, err, what);
    }
    if (r == 0 && changed)
        *changed = sqlite3_changes64(db);
    sqlite3_finalize(st);
    return r;
}

static int bind_rule(const store__binder_t *b, const void *x)
{
    return store__bind_alert_rule(b, x);
}

static int bind_note(const store__binder_t *b, const void *x)
{
    return store__bind_alert_note(b, x);
}

static int bind_state(const store__binder_t *b, const void *x)
{
    const args_t *a = x;
    return b->text(b->ctx, 1, a->s1) || b->text(b->ctx, 2, a->s2);
}

static int bind_claim(const store__binder_t *b, const void *x)
{
    const args_t *a = x;
    return b->text(b->ctx, 1, a->s1) || b->int64(b->ctx, 2, a->i1) || b->int64(b->ctx, 3, a->i2) ||
           b->int64(b->ctx, 4, a->i3);
}

static int bind_finish(const store__binder_t *b, const void *x)
{
    const args_t *a = x;
    return b->int64(b->ctx, 1, a->i1) || b->int64(b->ctx, 2, a->i2) || b->int64(b->ctx, 3, a->i3) ||
           b->text(b->ctx, 4, a->s1);
}

static int bind_key(const store__binder_t *b, const void *x)
{
    const args_t *a = x;
    return a->s1 ? b->text(b->ctx, 1, a->s1) : b->int64(b->ctx, 1, a->i1);
}

static void fill_id(const store__row_t *row, void *item)
{
    *(int64_t *)item = row->int64(row->ctx, 0);
}

static int sq_put(store_t *s, const store_alert_rule_t *r, bool *created, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    int64_t *n = NULL;
    size_t count = 0;
    int rc = run(db, STORE_ALERT_COUNT(P), bind_key, &(args_t){.s1 = r->name}, fill_id, sizeof *n,
                 (void **)&n, &count, NULL, "look for an alert rule", err);
    bool had = rc == 0 && count && n[0] > 0;
    free(n);
    if (rc == 0)
        rc = run(db, STORE_ALERT_PUT(P), bind_rule, r, NULL, 0, NULL, NULL, NULL,
                 "write an alert rule", err);
    if (rc == 0)
        *created = !had;
    return rc;
}

static int sq_state_put(store_t *s, const char *name, const char *state_json, mf_error_t *err)
{
    int64_t changed = 0;
    int r = run(store__handle(s), STORE_ALERT_STATE_PUT(P), bind_state,
                &(args_t){.s1 = name, .s2 = state_json}, NULL, 0, NULL, NULL, &changed,
                "keep an alert rule's state", err);
    return r == 0 && !changed ? store__no_alert_rule(err, name) : r;
}

static int sq_delete(store_t *s, const char *name, mf_error_t *err)
{
    int r = store__run_keyed(store__handle(s), STORE_ALERT_DELETE(P), name, "delete an alert rule",
                             err);
    return r == -ENOENT ? store__no_alert_rule(err, name) : r;
}

static int sq_list(store_t *s, store_alert_rule_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r = store__sqlite_query(store__handle(s), STORE_ALERT_LIST, NULL, sizeof **out,
                                store__fill_alert_rule, &list, count, "list alert rules", err);
    if (r < 0) {
        store_alert_rule_list_free(list, *count);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}

static int sq_note_add(store_t *s, store_alert_note_t *n, mf_error_t *err)
{
    int64_t *id = NULL;
    size_t count = 0;
    int r = run(store__handle(s), STORE_NOTE_ADD(P), bind_note, n, fill_id, sizeof *id,
                (void **)&id, &count, NULL, "queue a notification", err);
    if (r == 0 && count)
        n->id = id[0];
    free(id);
    return r;
}

static int sq_note_claim(store_t *s, const char *node, int64_t now_ms, int64_t stale_ms, int limit,
                         store_alert_note_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r =
        run(store__handle(s), STORE_NOTE_CLAIM(P, ""), bind_claim,
            &(args_t){.s1 = node, .i1 = now_ms, .i2 = stale_ms, .i3 = limit},
            store__fill_alert_note, sizeof **out, &list, count, NULL, "claim notifications", err);
    if (r < 0) {
        store_alert_note_list_free(list, *count);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}

static int sq_note_finish(store_t *s, int64_t id, bool delivered, int64_t now_ms,
                          const char *last_error, mf_error_t *err)
{
    return run(store__handle(s), STORE_NOTE_FINISH(P), bind_finish,
               &(args_t){.i1 = id, .i2 = now_ms, .i3 = delivered, .s1 = last_error}, NULL, 0, NULL,
               NULL, NULL, "finish a notification", err);
}

static int sq_note_retry(store_t *s, int64_t id, int attempts, int64_t next_ms,
                         const char *last_error, mf_error_t *err)
{
    return run(store__handle(s), STORE_NOTE_RETRY(P), bind_finish,
               &(args_t){.i1 = id, .i2 = attempts, .i3 = next_ms, .s1 = last_error}, NULL, 0, NULL,
               NULL, NULL, "retry a notification", err);
}

static int sq_note_recover(store_t *s, const char *node, int64_t done_before_ms, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    int r = run(db, STORE_NOTE_RELEASE(P), bind_key, &(args_t){.s1 = node ? node : ""}, NULL, 0,
                NULL, NULL, NULL, "release claimed notifications", err);
    if (r == 0)
        r = run(db, STORE_NOTE_PRUNE(P), bind_key, &(args_t){.i1 = done_before_ms}, NULL, 0, NULL,
                NULL, NULL, "forget old notifications", err);
    return r;
}

const store__alert_ops_t store__sqlite_alert_ops = {
    .put = sq_put,
    .state_put = sq_state_put,
    .del = sq_delete,
    .list = sq_list,
    .note_add = sq_note_add,
    .note_claim = sq_note_claim,
    .note_finish = sq_note_finish,
    .note_retry = sq_note_retry,
    .note_recover = sq_note_recover,
};
