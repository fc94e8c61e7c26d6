/* Schedules and their fire log on PostgreSQL (store/schedules.h's calls,
 * in queue_backend.h's table), on the queue's connection (queue_pg.c).
 * A due time is fired once across every node that shares the database:
 * its row's key is (schedule, due_ms), and of two nodes inserting it at
 * once the second waits for the first's transaction and then finds it
 * there (-EEXIST), undoing its event with its savepoint. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"
#include "store/queue_rows.h"

#define P STORE__PG_P

enum {
    S_PUT,
    S_DELETE_FIRES,
    S_DELETE,
    S_LIST,
    S_EXISTS,
    S_FIRE_PUT,
    S_FIRES_PRUNE,
    S_FIRE_LIST,
    S_COUNT
};

const store_pg_stmt_t store__pg_schedule_stmts[S_COUNT] = {
    [S_PUT] = {"s_put",
               "INSERT INTO schedules (" STORE_SCHEDULE_COLUMNS ") VALUES ("
               STORE_SCHEDULE_VALUES(P) ") ON CONFLICT (name) DO UPDATE SET"
               " expression = excluded.expression, timezone = excluded.timezone,"
               " function = excluded.function, input = excluded.input,"
               " enabled = excluded.enabled, flexible_window_min = excluded.flexible_window_min,"
               " start_ms = excluded.start_ms, created_ms = excluded.created_ms,"
               " updated_ms = excluded.updated_ms, tenant_id = excluded.tenant_id",
               "tttttiiiiit"},
    [S_DELETE_FIRES] = {"s_delete_fires", STORE_SCHEDULE_DELETE_FIRES(P), "t"},
    [S_DELETE] = {"s_delete", STORE_SCHEDULE_DELETE(P), "t"},
    [S_LIST] = {"s_list", STORE_SCHEDULE_LIST, ""},
    [S_EXISTS] = {"s_exists", STORE_SCHEDULE_EXISTS(P), "t"},
    [S_FIRE_PUT] = {"s_fire_put",
                    "INSERT INTO schedule_fires (" STORE_FIRE_INSERT_COLUMNS ")"
                    STORE_FIRE_SELECT(P) " ON CONFLICT (schedule, due_ms) DO NOTHING",
                    "tiitt"},
    [S_FIRES_PRUNE] = {"s_fires_prune", STORE_FIRES_PRUNE(P), "ti"},
    [S_FIRE_LIST] = {"s_fire_list", STORE_FIRE_LIST(P), "ti"},
};

const size_t store__pg_schedule_nstmts = S_COUNT;

static const char *stmt(int id)
{
    return store__pg_schedule_stmts[id].name;
}

static int pg_schedules__put(store_queue_t *q, const store_schedule_t *s, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_schedule(&b, s);
    return store__pg_q_write(q, stmt(S_PUT), &p, NULL, "write a schedule", err);
}

static int pg_schedules__delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    int64_t n = 0;
    int r = store__pg_q_keyed(q, stmt(S_DELETE_FIRES), name, NULL, "delete a schedule", err);
    if (r == 0)
        r = store__pg_q_keyed(q, stmt(S_DELETE), name, &n, "delete a schedule", err);
    if (r == 0 && n == 0)
        return store__no_schedule(err, name);
    return r;
}

static int pg_schedules__list(store_queue_t *q, store_schedule_t **out, size_t *count,
                              mf_error_t *err)
{
    void *list;
    int r = store__pg_q_rows(q, stmt(S_LIST), NULL, sizeof **out, store__fill_schedule, &list,
                             count, "list schedules", err);
    *out = list;
    return r;
}

static int pg_schedules__fire_put(store_queue_t *q, const store_schedule_fire_t *f,
                                  mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_fire(&b, f);
    int64_t inserted = 0;
    int r = store__pg_q_write(q, stmt(S_FIRE_PUT), &p, &inserted, "log a schedule's fire", err);
    if (r < 0)
        return r;
    if (inserted == 0) {
        p = (store_pg_params_t){0};
        b.text(b.ctx, 1, f->schedule);
        PGresult *res;
        if ((r = store__pg_q_run(q, stmt(S_EXISTS), &p, &res, "log a schedule's fire", err)) < 0)
            return r;
        bool exists = PQntuples(res) > 0;
        PQclear(res);
        return store__fire_refused(err, f, exists);
    }
    p = (store_pg_params_t){0};
    b.text(b.ctx, 1, f->schedule);
    b.int64(b.ctx, 2, STORE_SCHEDULE_FIRES_KEPT - 1);
    return store__pg_q_write(q, stmt(S_FIRES_PRUNE), &p, NULL, "prune a schedule's fire log", err);
}

static int pg_schedules__fire_list(store_queue_t *q, const char *name, int limit,
                                   store_schedule_fire_t **out, size_t *count, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, name);
    store__pg_bind_limit(&b, 2, limit);
    void *list;
    int r = store__pg_q_rows(q, stmt(S_FIRE_LIST), &p, sizeof **out, store__fill_fire, &list,
                             count, "list a schedule's fires", err);
    *out = list;
    return r;
}

const store__schedule_ops_t store__pg_schedule_ops = {
    .put = pg_schedules__put,
    .del = pg_schedules__delete,
    .list = pg_schedules__list,
    .fire_put = pg_schedules__fire_put,
    .fire_list = pg_schedules__fire_list,
};
