/* Alert rules and the outbox on PostgreSQL (store/alerts.h), shared by
 * every server on it: a claim takes rows no other claim holds (FOR
 * UPDATE SKIP LOCKED), so two servers never deliver one notification
 * each. The statements are prepared on each of the store's connections
 * (store__pg_alert_stmts). */
#include <errno.h>
#include <stdlib.h>

#include "store/alerts_backend.h"
#include "store/postgres_internal.h"

#define P STORE__PG_P

enum {
    A_COUNT,
    A_PUT,
    A_STATE,
    A_DELETE,
    A_LIST,
    N_ADD,
    N_CLAIM,
    N_FINISH,
    N_RETRY,
    N_RELEASE,
    N_PRUNE,
    A_STMTS
};

const store_pg_stmt_t store__pg_alert_stmts[] = {
    [A_COUNT] = {"alert_count", STORE_ALERT_COUNT(P), "t"},
    [A_PUT] = {"alert_put", STORE_ALERT_PUT(P), "ttii"},
    [A_STATE] = {"alert_state", STORE_ALERT_STATE_PUT(P), "tt"},
    [A_DELETE] = {"alert_delete", STORE_ALERT_DELETE(P), "t"},
    [A_LIST] = {"alert_list", STORE_ALERT_LIST, ""},
    [N_ADD] = {"alert_note_add", STORE_NOTE_ADD(P), "itttt"},
    [N_CLAIM] = {"alert_note_claim", STORE_NOTE_CLAIM(P, " FOR UPDATE SKIP LOCKED"), "tiii"},
    [N_FINISH] = {"alert_note_finish", STORE_NOTE_FINISH(P), "iiit"},
    [N_RETRY] = {"alert_note_retry", STORE_NOTE_RETRY(P), "iiit"},
    [N_RELEASE] = {"alert_note_release", STORE_NOTE_RELEASE(P), "t"},
    [N_PRUNE] = {"alert_note_prune", STORE_NOTE_PRUNE(P), "i"},
};
const size_t store__pg_alert_stmt_count = A_STMTS;

#define NAME(i) store__pg_alert_stmts[i].name

static int pg_put(store_t *s, const store_alert_rule_t *r, bool *created, mf_error_t *err)
{
    PGconn *c = store__pg_conn(s);
    store_pg_params_t p = {0};
    store__binder_t bd = store__pg_binder(&p);
    bd.text(bd.ctx, 1, r->name);
    PGresult *res;
    int rc = store__pg_run(c, NAME(A_COUNT), &p, &res, "look for an alert rule", err);
    if (rc < 0)
        return rc;
    bool had = store__pg_int(res, 0, 0) > 0;
    PQclear(res);
    store_pg_params_t q = {0};
    store__binder_t bq = store__pg_binder(&q);
    store__bind_alert_rule(&bq, r);
    rc = store__pg_run(c, NAME(A_PUT), &q, &res, "write an alert rule", err);
    if (rc < 0)
        return rc;
    PQclear(res);
    *created = !had;
    return 0;
}

static int changed_rows(PGresult *res)
{
    return (int)strtoll(PQcmdTuples(res), NULL, 10);
}

static int pg_state_put(store_t *s, const char *name, const char *state_json, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, name);
    b.text(b.ctx, 2, state_json);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), NAME(A_STATE), &p, &res, "keep an alert rule's state",
                          err);
    if (r < 0)
        return r;
    int n = changed_rows(res);
    PQclear(res);
    return n ? 0 : store__no_alert_rule(err, name);
}

static int pg_delete(store_t *s, const char *name, mf_error_t *err)
{
    int64_t n = 0;
    int r = store__pg_run_keyed(store__pg_conn(s), NAME(A_DELETE), name, &n, "delete an alert rule",
                                err);
    if (r == 0 && n == 0)
        return store__no_alert_rule(err, name);
    return r;
}

static int pg_list(store_t *s, store_alert_rule_t **out, size_t *count, mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), NAME(A_LIST), NULL, &res, "list alert rules", err);
    if (r < 0)
        return r;
    void *list = NULL;
    store__pg_rows(res, sizeof **out, store__fill_alert_rule, &list, count);
    PQclear(res);
    *out = list;
    return 0;
}

static int pg_note_add(store_t *s, store_alert_note_t *n, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_alert_note(&b, n);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), NAME(N_ADD), &p, &res, "queue a notification", err);
    if (r < 0)
        return r;
    n->id = store__pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}

static int pg_note_claim(store_t *s, const char *node, int64_t now_ms, int64_t stale_ms, int limit,
                         store_alert_note_t **out, size_t *count, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, node);
    b.int64(b.ctx, 2, now_ms);
    b.int64(b.ctx, 3, stale_ms);
    b.int64(b.ctx, 4, limit);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), NAME(N_CLAIM), &p, &res, "claim notifications", err);
    if (r < 0)
        return r;
    void *list = NULL;
    store__pg_rows(res, sizeof **out, store__fill_alert_note, &list, count);
    PQclear(res);
    *out = list;
    return 0;
}

static int run4(store_t *s, int stmt, int64_t a, int64_t b2, int64_t c3, const char *t,
                const char *what, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, a);
    b.int64(b.ctx, 2, b2);
    b.int64(b.ctx, 3, c3);
    b.text(b.ctx, 4, t);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), NAME(stmt), &p, &res, what, err);
    if (r == 0)
        PQclear(res);
    return r;
}

static int pg_note_finish(store_t *s, int64_t id, bool delivered, int64_t now_ms,
                          const char *last_error, mf_error_t *err)
{
    return run4(s, N_FINISH, id, now_ms, delivered, last_error, "finish a notification", err);
}

static int pg_note_retry(store_t *s, int64_t id, int attempts, int64_t next_ms,
                         const char *last_error, mf_error_t *err)
{
    return run4(s, N_RETRY, id, attempts, next_ms, last_error, "retry a notification", err);
}

static int pg_note_recover(store_t *s, const char *node, int64_t done_before_ms, mf_error_t *err)
{
    PGconn *c = store__pg_conn(s);
    int r = store__pg_run_keyed(c, NAME(N_RELEASE), node ? node : "", NULL,
                                "release claimed notifications", err);
    if (r < 0 && r != -ENOENT)
        return r;
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, done_before_ms);
    PGresult *res;
    r = store__pg_run(c, NAME(N_PRUNE), &p, &res, "forget old notifications", err);
    if (r == 0)
        PQclear(res);
    return r;
}

const store__alert_ops_t store__pg_alert_ops = {
    .put = pg_put,
    .state_put = pg_state_put,
    .del = pg_delete,
    .list = pg_list,
    .note_add = pg_note_add,
    .note_claim = pg_note_claim,
    .note_finish = pg_note_finish,
    .note_retry = pg_note_retry,
    .note_recover = pg_note_recover,
};
