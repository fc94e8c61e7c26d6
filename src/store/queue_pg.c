/* The async queue's tables on PostgreSQL (store/queue.h's calls, in
 * queue_backend.h's table; durable_pg.c, schedules_pg.c and topics_pg.c
 * hold the other headers' on the same connection). The tables are those
 * of postgres_schema.c, in the store's own database: a queue connection
 * migrates it as store_open does, under the same lock.
 *
 * Each store_queue_t is one connection with every statement of the four
 * files prepared once. A lost connection fails the call with -ECONNRESET
 * and says so, and is made again (postgres_common.c).
 *
 * A queued event's seq and a dead letter's id come from identity columns
 * (sequences, never rolled back, never given twice): on one connection
 * each insert gets a higher number than the one before it. Across
 * connections a number is drawn when its insert runs, not when it
 * commits, so a reader may see a higher seq before a lower one's
 * transaction commits; nothing here takes seq order for commit order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"
#include "store/queue_rows.h"

#define P STORE__PG_P

enum {
    Q_EV_INSERT,
    Q_EV_UPDATE,
    Q_EV_DELETE,
    Q_EV_BODY,
    Q_EV_LIST,
    Q_EV_TAKE,
    Q_AT_PUT,
    Q_AT_LIST,
    Q_DL_PUT,
    Q_DL_PUT_FROM_EVENT,
    Q_DL_GET,
    Q_DL_DELETE,
    Q_DL_LIST,
    Q_DL_COUNTS,
    Q_IDEM_PUT,
    Q_IDEM_GET,
    Q_IDEM_LIST,
    Q_IDEM_PRUNE,
    Q_PRUNE_ATTEMPTS,
    Q_PRUNE_DEAD,
    Q_FORGET_EVENTS,
    Q_FORGET_DL,
    Q_FORGET_IDEM,
    Q_COUNT
};

static const store_pg_stmt_t pg_queue__stmts[Q_COUNT] = {
    [Q_EV_INSERT] = {"q_ev_insert", STORE_QEVENT_INSERT(P) " RETURNING seq", "ttbiiiiitttittt"},
    [Q_EV_UPDATE] = {"q_ev_update", STORE_QEVENT_UPDATE(P), "iiiii"},
    [Q_EV_DELETE] = {"q_ev_delete", STORE_QEVENT_DELETE(P), "i"},
    [Q_EV_BODY] = {"q_ev_body", STORE_QEVENT_BODY(P), "i"},
    [Q_EV_LIST] = {"q_ev_list", STORE_QEVENT_LIST, ""},
    /* Several nodes take from one pool: the rows are locked as they are
     * chosen, and rows another take holds are passed over (SKIP LOCKED)
     * rather than waited for. A row another take took and committed since
     * this statement's snapshot is read again as it is now when locked,
     * and is then no longer in the pool. So no event is taken twice, and
     * no take waits on another. */
    [Q_EV_TAKE] = {"q_ev_take",
                   "WITH pool AS (" STORE_QEVENT_POOL(P) " FOR UPDATE SKIP LOCKED) "
                   STORE_QEVENT_TAKE_SET(P) " WHERE seq IN (SELECT seq FROM pool)"
                   STORE_QEVENT_TAKEN,
                   "ti"},
    [Q_AT_PUT] = {"q_at_put",
                  "INSERT INTO attempts (" STORE_ATTEMPT_COLUMNS ") VALUES ("
                  STORE_ATTEMPT_VALUES(P) ") ON CONFLICT (request_id, attempt) DO UPDATE SET"
                  " start_ms = excluded.start_ms, duration_ms = excluded.duration_ms,"
                  " status = excluded.status, error_type = excluded.error_type,"
                  " error_message = excluded.error_message",
                  "tiidttt"},
    [Q_AT_LIST] = {"q_at_list", STORE_ATTEMPT_LIST(P), "t"},
    [Q_DL_PUT] = {"q_dl_put", STORE_DL_PUT(P) " RETURNING id", "ttitttbittt"},
    [Q_DL_PUT_FROM_EVENT] = {"q_dl_put_from_event", STORE_DL_PUT_FROM_EVENT(P) " RETURNING id",
                             "ttitttii"},
    [Q_DL_GET] = {"q_dl_get", STORE_DL_GET(P), "ti"},
    [Q_DL_DELETE] = {"q_dl_delete", STORE_DL_DELETE(P), "i"},
    [Q_DL_LIST] = {"q_dl_list", STORE_DL_LIST(P), "ti"},
    [Q_DL_COUNTS] = {"q_dl_counts", STORE_DL_COUNTS, ""},
    [Q_IDEM_PUT] = {"q_idem_put", STORE_IDEM_PUT(P), "tttii"},
    [Q_IDEM_GET] = {"q_idem_get", STORE_IDEM_GET(P), "tt"},
    [Q_IDEM_LIST] = {"q_idem_list", STORE_IDEM_LIST(P), "i"},
    [Q_IDEM_PRUNE] = {"q_idem_prune", STORE_IDEM_PRUNE(P), "i"},
    [Q_PRUNE_ATTEMPTS] = {"q_prune_attempts", STORE_PRUNE_ATTEMPTS(P), "ii"},
    [Q_PRUNE_DEAD] = {"q_prune_dead", STORE_PRUNE_DEAD(P), "ii"},
    [Q_FORGET_EVENTS] = {"q_forget_events", STORE_FORGET_EVENTS(P), "t"},
    [Q_FORGET_DL] = {"q_forget_dl", STORE_FORGET_DL(P), "t"},
    [Q_FORGET_IDEM] = {"q_forget_idem", STORE_FORGET_IDEM(P), "t"},
};

typedef struct pg_queue {
    store_queue_t base;
    PGconn *conn;
} pg_queue_t;

static const store__queue_backend_t pg_queue__backend;

static pg_queue_t *pq(store_queue_t *q)
{
    return (pg_queue_t *)q;
}

static const char *stmt(int id)
{
    return pg_queue__stmts[id].name;
}

static void pg_queue__close(store_queue_t *base)
{
    pg_queue_t *q = pq(base);
    store__pg_finish(q->conn);
    free(q);
}

int store__pg_queue_open(const char *url, store_queue_t **out, mf_error_t *err)
{
    const struct {
        const store_pg_stmt_t *stmts;
        size_t count;
    } files[] = {
        {pg_queue__stmts, Q_COUNT},
        {store__pg_durable_stmts, store__pg_durable_nstmts},
        {store__pg_schedule_stmts, store__pg_schedule_nstmts},
        {store__pg_topic_stmts, store__pg_topic_nstmts},
        {store__pg_node_stmts, store__pg_node_nstmts},
    };
    pg_queue_t *q = xcalloc(1, sizeof *q);
    q->base.be = &pg_queue__backend;
    int version;
    int r = store__pg_connect(url, &q->conn, err);
    if (r == 0)
        r = store__pg_migrate(q->conn, &version, err);
    for (size_t i = 0; i < sizeof files / sizeof files[0] && r == 0; i++)
        r = store__pg_prepare(q->conn, files[i].stmts, files[i].count, err);
    if (r < 0) {
        pg_queue__close(&q->base);
        return r;
    }
    *out = &q->base;
    return 0;
}

/* ---- what the other files share (queue_pg_internal.h) ------------------- */

PGconn *store__pg_queue_conn(store_queue_t *q)
{
    return pq(q)->conn;
}

int store__pg_q_run(store_queue_t *q, const char *name, const store_pg_params_t *p,
                    PGresult **out, const char *what, mf_error_t *err)
{
    return store__pg_run(pq(q)->conn, name, p, out, what, err);
}

int store__pg_q_write(store_queue_t *q, const char *name, const store_pg_params_t *p,
                      int64_t *changed, const char *what, mf_error_t *err)
{
    if (!changed) /* nothing to wait for: answered with the batch's others */
        return store__pg_defer(pq(q)->conn, name, p, NULL, NULL, what, err);
    PGresult *res;
    int r = store__pg_q_run(q, name, p, &res, what, err);
    if (r == 0 && changed)
        *changed = store__pg_changed(res);
    PQclear(res);
    return r;
}

int store__pg_q_keyed(store_queue_t *q, const char *name, const char *key, int64_t *changed,
                      const char *what, mf_error_t *err)
{
    return store__pg_run_keyed(pq(q)->conn, name, key, changed, what, err);
}

int store__pg_q_rows(store_queue_t *q, const char *name, const store_pg_params_t *p, size_t size,
                     store__fill_fn fill, void **out, size_t *count, const char *what,
                     mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    PGresult *res;
    int r = store__pg_q_run(q, name, p, &res, what, err);
    if (r < 0)
        return r;
    store__pg_rows(res, size, fill, out, count);
    PQclear(res);
    return 0;
}

int store__pg_bind_limit(const store__binder_t *b, int i, int64_t limit)
{
    return limit < 0 ? b->text(b->ctx, i, NULL) : b->int64(b->ctx, i, limit);
}

int64_t store__pg_changed(const PGresult *res)
{
    return strtoll(PQcmdTuples((PGresult *)res), NULL, 10);
}

/* ---- transactions ------------------------------------------------------- */

static int pg_queue__begin(store_queue_t *q, bool durable, mf_error_t *err)
{
    return store__pg_begin(pq(q)->conn, durable, err);
}

static int pg_queue__commit(store_queue_t *q, mf_error_t *err)
{
    return store__pg_commit(pq(q)->conn, err);
}

static void pg_queue__rollback(store_queue_t *q)
{
    store__pg_rollback(pq(q)->conn);
}

static int pg_queue__savepoint(store_queue_t *q, mf_error_t *err)
{
    return store__pg_savepoint(pq(q)->conn, err);
}

static void pg_queue__release(store_queue_t *q, bool keep)
{
    store__pg_release(pq(q)->conn, keep);
}

/* ---- statements --------------------------------------------------------- */

/* Runs statement id with p, for the number its one row (if any) returns
 * in *id_out: -ENOENT (err untouched) when it returns none. */
static int pg_queue__returning(store_queue_t *q, int id, const store_pg_params_t *p,
                               int64_t *id_out, const char *what, mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_q_run(q, stmt(id), p, &res, what, err);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0)
        r = -ENOENT;
    else
        *id_out = store__pg_int(res, 0, 0);
    PQclear(res);
    return r;
}

static int pg_queue__by_id(store_queue_t *q, int id, int64_t key, int64_t *changed,
                           const char *what, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, key);
    return store__pg_q_write(q, stmt(id), &p, changed, what, err);
}

static void pg_queue__take_seq(void *ctx, const PGresult *res)
{
    store_qevent_t *ev = ctx;
    ev->seq = PQntuples(res) ? store__pg_int(res, 0, 0) : 0;
}

static int pg_queue__qevent_insert(store_queue_t *q, store_qevent_t *ev, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_qevent(&b, ev);
    /* Its number is known once the batch's answers are read, before the
     * commit: nothing in the transaction that queues it asks for it. */
    return store__pg_defer(pq(q)->conn, stmt(Q_EV_INSERT), &p, pg_queue__take_seq, ev,
                           "queue an event", err);
}

static int pg_queue__qevent_update(store_queue_t *q, const store_qevent_t *ev, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_qevent_update(&b, ev);
    return store__pg_q_write(q, stmt(Q_EV_UPDATE), &p, NULL, "update a queued event", err);
}

static int pg_queue__qevent_delete(store_queue_t *q, int64_t seq, mf_error_t *err)
{
    return pg_queue__by_id(q, Q_EV_DELETE, seq, NULL, "delete a queued event", err);
}

static int pg_queue__qevent_body(store_queue_t *q, int64_t seq, buf_t *out, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, seq);
    PGresult *res;
    int r = store__pg_q_run(q, stmt(Q_EV_BODY), &p, &res, "read a queued event", err);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        r = mf_error_plain(err, ENOENT, "queued event %lld is gone", (long long)seq);
    } else {
        buf_reset(out);
        buf_add(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    }
    PQclear(res);
    return r;
}

static int pg_queue__qevent_list(store_queue_t *q, store_qevent_t **out, size_t *count,
                                 mf_error_t *err)
{
    void *list;
    int r = store__pg_q_rows(q, stmt(Q_EV_LIST), NULL, sizeof **out, store__fill_qevent, &list,
                             count, "list queued events", err);
    *out = list;
    return r;
}

static int pg_queue__qevent_take(store_queue_t *q, const char *node, int limit,
                                 store_qevent_t **out, size_t *count, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, node);
    store__pg_bind_limit(&b, 2, limit);
    void *list;
    int r = store__pg_q_rows(q, stmt(Q_EV_TAKE), &p, sizeof **out, store__fill_qevent, &list,
                             count, "take queued events", err);
    *out = list;
    if (r == 0)
        store__sort_qevents(*out, *count);
    return r;
}

static int pg_queue__attempt_put(store_queue_t *q, const store_attempt_t *a, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_attempt(&b, a);
    return store__pg_q_write(q, stmt(Q_AT_PUT), &p, NULL, "write an attempt", err);
}

static int pg_queue__attempt_list(store_queue_t *q, const char *request_id,
                                  store_attempt_t **out, size_t *count, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, request_id);
    void *list;
    int r = store__pg_q_rows(q, stmt(Q_AT_LIST), &p, sizeof **out, store__fill_attempt, &list,
                             count, "list attempts", err);
    *out = list;
    return r;
}

static int pg_queue__dead_letter_put(store_queue_t *q, store_dead_letter_t *dl,
                                     int64_t from_seq, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_dead_letter(&b, dl, from_seq);
    int64_t id = 0;
    int r = pg_queue__returning(q, from_seq ? Q_DL_PUT_FROM_EVENT : Q_DL_PUT, &p, &id,
                                "write a dead letter", err);
    if (r == -ENOENT)
        return mf_error_plain(err, ENOENT, "queued event %lld is gone", (long long)from_seq);
    if (r == 0)
        dl->id = id;
    return r;
}

static int pg_queue__dead_letter_get(store_queue_t *q, const char *function, int64_t id,
                                     store_dead_letter_t *out, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    b.int64(b.ctx, 2, id);
    PGresult *res;
    int r = store__pg_q_run(q, stmt(Q_DL_GET), &p, &res, "read a dead letter", err);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        r = store__no_dead_letter(err, function, id);
    } else {
        memset(out, 0, sizeof *out);
        store_pg_row_t at = {res, 0};
        store__row_t row = store__pg_row(&at);
        store__fill_dead_letter(&row, out);
    }
    PQclear(res);
    return r;
}

static int pg_queue__dead_letter_delete(store_queue_t *q, int64_t id, mf_error_t *err)
{
    int64_t n = 0;
    int r = pg_queue__by_id(q, Q_DL_DELETE, id, &n, "delete a dead letter", err);
    if (r == 0 && n == 0)
        r = mf_error_plain(err, ENOENT, "dead letter %lld is gone", (long long)id);
    return r;
}

static int pg_queue__dead_letter_list(store_queue_t *q, const char *function, int limit,
                                      store_dead_letter_t **out, size_t *count, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    store__pg_bind_limit(&b, 2, limit);
    void *list;
    int r = store__pg_q_rows(q, stmt(Q_DL_LIST), &p, sizeof **out, store__fill_dead_letter,
                             &list, count, "list dead letters", err);
    *out = list;
    return r;
}

/* Text and bytea in binary are their bytes, with a NUL of libpq's after. */
static const char *text_at(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int pg_queue__dead_letter_counts(store_queue_t *q,
                                        void (*cb)(const char *function, int64_t n, void *ud),
                                        void *ud, mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_q_run(q, stmt(Q_DL_COUNTS), NULL, &res, "count dead letters", err);
    if (r < 0)
        return r;
    for (int i = 0; i < PQntuples(res); i++)
        cb(text_at(res, i, 0), store__pg_int(res, i, 1), ud);
    PQclear(res);
    return 0;
}

static int pg_queue__idem_put(store_queue_t *q, const char *function, const char *key,
                              const char *request_id, int64_t created_ms, int64_t live_since_ms,
                              char existing[37], mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    b.text(b.ctx, 2, key);
    b.text(b.ctx, 3, request_id);
    b.int64(b.ctx, 4, created_ms);
    b.int64(b.ctx, 5, live_since_ms);
    int64_t changed = 0;
    int r = store__pg_q_write(q, stmt(Q_IDEM_PUT), &p, &changed, "write an idempotency key", err);
    if (r < 0 || changed > 0)
        return r;
    /* A live key holds it: another node's, committed before this insert
     * (an insert of the same key still open elsewhere makes this one wait
     * for its end). */
    store_pg_params_t g = {0};
    b = store__pg_binder(&g);
    b.text(b.ctx, 1, function);
    b.text(b.ctx, 2, key);
    PGresult *res;
    if ((r = store__pg_q_run(q, stmt(Q_IDEM_GET), &g, &res, "read an idempotency key", err)) < 0)
        return r;
    char got[37];
    snprintf(got, sizeof got, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (existing)
        memcpy(existing, got, sizeof got);
    return mf_error_plain(err, EEXIST, "idempotency key taken by request %s", got);
}

static int pg_queue__idem_list(store_queue_t *q, int64_t since_ms,
                               void (*cb)(const char *function, const char *key,
                                          const char *request_id, int64_t created_ms, void *ud),
                               void *ud, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, since_ms);
    PGresult *res;
    int r = store__pg_q_run(q, stmt(Q_IDEM_LIST), &p, &res, "list idempotency keys", err);
    if (r < 0)
        return r;
    for (int i = 0; i < PQntuples(res); i++)
        cb(text_at(res, i, 0), text_at(res, i, 1), text_at(res, i, 2), store__pg_int(res, i, 3),
           ud);
    PQclear(res);
    return 0;
}

static int pg_queue__idem_prune(store_queue_t *q, int64_t before_ms, mf_error_t *err)
{
    return pg_queue__by_id(q, Q_IDEM_PRUNE, before_ms, NULL, "prune idempotency keys", err);
}

/* Statement id (a batched DELETE ... WHERE time < $1 LIMIT $2) again until
 * a batch is not full. */
static int pg_queue__prune_kind(store_queue_t *q, int id, int64_t before_ms, int64_t *n,
                                mf_error_t *err)
{
    for (;;) {
        store_pg_params_t p = {0};
        store__binder_t b = store__pg_binder(&p);
        b.int64(b.ctx, 1, before_ms);
        b.int64(b.ctx, 2, STORE_QUEUE_PRUNE_BATCH);
        int64_t k = 0;
        int r = store__pg_q_write(q, stmt(id), &p, &k, "prune the queue's history", err);
        if (r < 0)
            return r;
        *n += k;
        if (k == 0)
            return 0;
    }
}

static int pg_queue__prune(store_queue_t *q, int64_t attempts_before_ms, int64_t dead_before_ms,
                           int64_t *attempts, int64_t *dead, mf_error_t *err)
{
    int r = pg_queue__prune_kind(q, Q_PRUNE_ATTEMPTS, attempts_before_ms, attempts, err);
    if (r == 0)
        r = pg_queue__prune_kind(q, Q_PRUNE_DEAD, dead_before_ms, dead, err);
    return r;
}

static int pg_queue__forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    static const int which[] = {Q_FORGET_EVENTS, Q_FORGET_DL, Q_FORGET_IDEM};
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        int r = store__pg_q_keyed(q, stmt(which[i]), function, NULL, "forget a function's queue",
                                  err);
        if (r < 0)
            return r;
    }
    return 0;
}

static const store__queue_ops_t pg_queue__ops = {
    .close = pg_queue__close,
    .begin = pg_queue__begin,
    .commit = pg_queue__commit,
    .rollback = pg_queue__rollback,
    .savepoint = pg_queue__savepoint,
    .release = pg_queue__release,
    .qevent_insert = pg_queue__qevent_insert,
    .qevent_update = pg_queue__qevent_update,
    .qevent_delete = pg_queue__qevent_delete,
    .qevent_body = pg_queue__qevent_body,
    .qevent_list = pg_queue__qevent_list,
    .qevent_take = pg_queue__qevent_take,
    .attempt_put = pg_queue__attempt_put,
    .attempt_list = pg_queue__attempt_list,
    .dead_letter_put = pg_queue__dead_letter_put,
    .dead_letter_get = pg_queue__dead_letter_get,
    .dead_letter_delete = pg_queue__dead_letter_delete,
    .dead_letter_list = pg_queue__dead_letter_list,
    .dead_letter_counts = pg_queue__dead_letter_counts,
    .idem_put = pg_queue__idem_put,
    .idem_list = pg_queue__idem_list,
    .idem_prune = pg_queue__idem_prune,
    .prune = pg_queue__prune,
    .forget_function = pg_queue__forget_function,
};

static const store__queue_backend_t pg_queue__backend = {
    .name = "PostgreSQL",
    .shared = true,
    .queue = &pg_queue__ops,
    .durable = &store__pg_durable_ops,
    .schedules = &store__pg_schedule_ops,
    .topics = &store__pg_topic_ops,
    .nodes = &store__pg_node_ops,
};
