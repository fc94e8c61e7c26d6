/* The server's budgets (meter/budget.h): every budget in memory with its
 * period's counters, so that a call is admitted, and an async event held,
 * by a look at memory. What reaches the store goes through the records'
 * writer, off the loop, after the records handed to it before: a read of
 * the usage there sees every call observed here until it was asked for,
 * and none after (budget_state_t's snap).
 *
 * On a store other servers share, every refresh the budgets and the usage
 * are read again, so that a budget put on another server applies here,
 * and the spend counts the other servers' calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "meter/budget.h"
#include "obs/records.h"
#include "store/budgets.h"

#define HOUR_MS 3600000LL
#define TICK_MS 1000

typedef struct budget_live {
    struct budget_live *next;
    budget_t cfg;
    char key[TENANT_QNAME_MAX + 1];
    budget_state_t st;
    int64_t created_ms, updated_ms;
    uint64_t id;   /* this entry's, never another's: a read asked for before a put
                    * replaced it is not taken for the new one's */
    bool live;     /* false while the put that makes it is on its way */
    bool blocking; /* counted in n_blocking */
} budget_live_t;

struct budgets {
    uv_loop_t *loop;
    store_writer_t *writer;
    obs_records_t *records;
    meter_prices_t prices;
    budgets_config_t cfg;
    budget_live_t *head;
    unsigned n_blocking;
    uv_timer_t *timer;
    int64_t last_refresh_ms;
    bool refreshing;
    bool stopping; /* budgets_stop: no more jobs, no more releases */
    uint64_t next_id;
    void (*released)(void *ud);
    void *released_ud;
    budgets_crossed_fn crossed; /* budgets_set_crossed's */
    void (*crossed_after)(void *ud);
    void *crossed_ud;
};

static const char *period_word(const budget_t *b)
{
    return b->period == METER_DAY ? "day" : "month";
}

/* ---- reading usage ------------------------------------------------------ */

/* What the usage rows say b's period from start has cost. */
static double usage_spend(const budget_t *b, int64_t start, const store_usage_t *rows, size_t n,
                          const meter_prices_t *prices)
{
    double spend = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].hour_ms >= start && budget_covers_usage(b, &rows[i]))
            spend += meter_usage_cost(prices, &rows[i]);
    return spend;
}

/* Usage from the month's start (every day of it is in it) to the end of
 * now's hour. */
static int usage_read(store_t *db, int64_t now, store_usage_t **rows, size_t *n, mf_error_t *err)
{
    return store_usage_list(db, meter_period_start(METER_MONTH, now),
                            meter_period_start(METER_HOUR, now) + HOUR_MS, rows, n, err);
}

/* ---- the live set ------------------------------------------------------- */

static budget_live_t *find(budgets_t *b, const char *key, bool live)
{
    for (budget_live_t *l = b->head; l; l = l->next)
        if (l->live == live && !strcmp(l->key, key))
            return l;
    return NULL;
}

static void unlink_live(budgets_t *b, budget_live_t *gone)
{
    for (budget_live_t **pp = &b->head; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            break;
        }
    if (gone->blocking) {
        b->n_blocking--;
        if (b->released && !b->stopping)
            b->released(b->released_ud);
    }
    free(gone);
}

static budget_live_t *live_new(budgets_t *b, const budget_t *cfg, int64_t now, bool live)
{
    budget_live_t *l = xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    budget_key(cfg, l->key, sizeof l->key);
    budget_state_init(&l->st, cfg, now);
    l->live = live;
    l->id = ++b->next_id;
    l->next = b->head;
    b->head = l;
    return l;
}

typedef struct crossing_job {
    budgets_t *b;
    budget_t cfg; /* the budget's settings when it crossed (its notify) */
    store_budget_crossing_t c;
    unsigned bit;
    uint64_t gen;
    char currency[16];
} crossing_job_t;

static int crossing_apply(void *db, void *arg, mf_error_t *err)
{
    crossing_job_t *j = arg;
    bool added = false;
    int r = store_budget_crossing_add(db, &j->c, &added, err);
    if (r == 0 && !added)
        j->bit = 0; /* recorded before: by this server before a restart, or by another */
    else if (r == 0 && j->b->crossed)
        r = j->b->crossed(j->b->crossed_ud, db, &j->cfg, &j->c, err);
    return r;
}

static void crossing_done(void *arg, int r, const mf_error_t *err)
{
    crossing_job_t *j = arg;
    budget_live_t *l = find(j->b, j->c.budget, true);
    if (r < 0) {
        log_error("budget", "recording that %s crossed %g of its amount: %s", j->c.budget,
                  j->c.threshold, err->msg);
        if (l && l->st.gen == j->gen)
            l->st.crossed &= ~j->bit; /* tried again at its next change */
    } else if (j->bit) {
        if (j->b->crossed_after)
            j->b->crossed_after(j->b->crossed_ud);
        char from[32];
        clock_format_iso8601(j->c.period_ms, from, sizeof from);
        log_warn("budget",
                 "budget %s of tenant %s crossed %g%% of its amount: %.6f of %.6f %s spent in "
                 "the period from %s",
                 tenant_local(j->c.budget), l ? l->cfg.tenant : "?", j->c.threshold * 100,
                 j->c.spend, j->c.amount, j->currency, from);
    }
    free(j);
}

/* After l's spend or settings changed: its period, whether it blocks,
 * and the thresholds it crossed (each recorded in the store once). */
static void update(budgets_t *b, budget_live_t *l, int64_t now)
{
    if (!l->live)
        return;
    budget_state_roll(&l->st, &l->cfg, now);
    double spend = budget_state_spend(&l->st);
    bool blocks = budget_blocks(&l->cfg, spend);
    if (blocks != l->blocking) {
        l->blocking = blocks;
        if (blocks) {
            b->n_blocking++;
            log_warn("budget",
                     "budget %s of tenant %s is spent (%.6f of %.6f %s this %s): new calls of "
                     "%s are refused, and their events wait",
                     l->cfg.name, l->cfg.tenant, spend, l->cfg.amount, b->prices.currency,
                     period_word(&l->cfg), l->cfg.function[0] ? l->cfg.function : "its functions");
        } else {
            b->n_blocking--;
            log_info("budget", "budget %s of tenant %s lets calls through again", l->cfg.name,
                     l->cfg.tenant);
            if (b->released && !b->stopping)
                b->released(b->released_ud);
        }
    }
    if (b->stopping)
        return; /* a crossing not recorded now is when the server starts again */
    unsigned fresh = budget_state_cross(&l->st, &l->cfg);
    for (size_t i = 0; fresh && i < l->cfg.n_alerts; i++) {
        if (!(fresh & (1u << i)))
            continue;
        crossing_job_t *j = xcalloc(1, sizeof *j);
        j->b = b;
        j->bit = 1u << i;
        j->cfg = l->cfg;
        j->gen = l->st.gen;
        snprintf(j->currency, sizeof j->currency, "%s", b->prices.currency);
        snprintf(j->c.budget, sizeof j->c.budget, "%s", l->key);
        j->c.period_ms = l->st.period_start;
        j->c.threshold = l->cfg.alert_at[i];
        j->c.amount = l->cfg.amount;
        j->c.spend = spend;
        j->c.time_ms = now;
        store_writer_submit(b->writer, false, crossing_apply, crossing_done, j);
    }
}

void budgets_observe(budgets_t *b, const store_usage_t *u, double cost)
{
    if (!b || !b->head)
        return;
    int64_t now = clock_wall_ms();
    for (budget_live_t *l = b->head; l; l = l->next) {
        if (!budget_covers_usage(&l->cfg, u))
            continue;
        budget_state_roll(&l->st, &l->cfg, now);
        budget_state_add(&l->st, u->hour_ms, cost);
        update(b, l, now);
    }
}

/* The live block budget that refuses calls of function now, or NULL. */
static budget_live_t *blocking(budgets_t *b, const char *function)
{
    if (!b || !b->n_blocking)
        return NULL;
    int64_t now = clock_wall_ms();
    for (budget_live_t *l = b->head; l; l = l->next) {
        if (!l->blocking || !budget_covers(&l->cfg, function))
            continue;
        update(b, l, now); /* its period may be over */
        if (l->blocking)
            return l;
    }
    return NULL;
}

int budgets_admit(void *ud, const char *function, mf_error_t *err)
{
    budgets_t *b = ud;
    budget_live_t *l = blocking(b, function);
    if (!l)
        return 0;
    char until[32];
    clock_format_iso8601(l->st.period_end, until, sizeof until);
    return mf_error_plain(err, EDQUOT,
                          "the budget %s of tenant %s is spent: %.6f of %.6f %s this %s; calls "
                          "of %s are refused until %s or until the budget is raised",
                          l->cfg.name, l->cfg.tenant, budget_state_spend(&l->st), l->cfg.amount,
                          b->prices.currency, period_word(&l->cfg), tenant_local(function), until);
}

bool budgets_held(void *ud, const char *function, char *why, size_t len)
{
    budgets_t *b = ud;
    budget_live_t *l = blocking(b, function);
    if (!l)
        return false;
    char until[32];
    clock_format_iso8601(l->st.period_end, until, sizeof until);
    snprintf(why, len,
             "waiting for the budget %s of tenant %s (%.6f of %.6f %s spent this %s): it runs "
             "once the period ends (%s) or the budget is raised or deleted",
             l->cfg.name, l->cfg.tenant, budget_state_spend(&l->st), l->cfg.amount,
             b->prices.currency, period_word(&l->cfg), until);
    return true;
}

bool budgets_used(budgets_t *b, const char *tenant, const char *name, double *used)
{
    char key[TENANT_QNAME_MAX + 1];
    if (!b || !tenant_qualify(tenant, name, key, sizeof key))
        return false;
    budget_live_t *l = find(b, key, true);
    if (!l)
        return false;
    update(b, l, clock_wall_ms());
    *used = budget_state_spend(&l->st) / l->cfg.amount;
    return true;
}

void budgets_set_crossed(budgets_t *b, budgets_crossed_fn crossed, void (*after)(void *ud),
                         void *ud)
{
    b->crossed = crossed;
    b->crossed_after = after;
    b->crossed_ud = ud;
}

void budgets_set_released(budgets_t *b, void (*released)(void *ud), void *ud)
{
    b->released = released;
    b->released_ud = ud;
}

/* ---- refreshing from a shared store ------------------------------------ */

typedef struct refresh_item {
    char key[TENANT_QNAME_MAX + 1];
    uint64_t id;
    uint64_t gen;
    double snap;
} refresh_item_t;

typedef struct refresh_job {
    budgets_t *b;
    int64_t now;
    refresh_item_t *items; /* the live budgets when it was asked for */
    size_t n_items;
    store_budget_t *stored;
    size_t n_stored;
    budget_t *cfgs; /* the stored ones' settings (ok[i]: they parse) */
    bool *ok;
    double *bases;
} refresh_job_t;

static int parse_stored(const store_budget_t *s, budget_t *out, mf_error_t *err)
{
    char tenant[TENANT_MAX + 1];
    tenant_of(s->name, tenant);
    int r = budget_parse(s->config_json, strlen(s->config_json), tenant_local(s->name), out, err);
    if (r == 0 && strcmp(out->tenant, tenant))
        r = mf_error_plain(err, EINVAL, "its tenant is not its name's");
    return r;
}

static int refresh_apply(void *db, void *arg, mf_error_t *err)
{
    refresh_job_t *j = arg;
    int r = store_budget_list(db, &j->stored, &j->n_stored, err);
    if (r < 0)
        return r;
    store_usage_t *rows = NULL;
    size_t n = 0;
    if ((r = usage_read(db, j->now, &rows, &n, err)) < 0)
        return r;
    j->cfgs = xcalloc(j->n_stored + 1, sizeof *j->cfgs);
    j->ok = xcalloc(j->n_stored + 1, sizeof *j->ok);
    j->bases = xcalloc(j->n_stored + 1, sizeof *j->bases);
    for (size_t i = 0; i < j->n_stored; i++) {
        mf_error_t e = MF_ERROR_INIT;
        j->ok[i] = parse_stored(&j->stored[i], &j->cfgs[i], &e) == 0;
        if (j->ok[i])
            j->bases[i] = usage_spend(&j->cfgs[i], meter_period_start(j->cfgs[i].period, j->now),
                                      rows, n, &j->b->prices);
    }
    free(rows);
    return 0;
}

/* What the read was asked for with of l, when l was live then. */
static const refresh_item_t *item_of(const refresh_job_t *j, const budget_live_t *l)
{
    for (size_t i = 0; i < j->n_items; i++)
        if (j->items[i].id == l->id)
            return &j->items[i];
    return NULL;
}

static bool same_reach(const budget_t *a, const budget_t *b)
{
    return a->period == b->period && !strcmp(a->tenant, b->tenant) &&
           !strcmp(a->function, b->function);
}

static void refresh_done(void *arg, int r, const mf_error_t *err)
{
    refresh_job_t *j = arg;
    budgets_t *b = j->b;
    b->refreshing = false;
    if (r < 0) {
        log_warn("budget", "reading the budgets' usage again: %s", err->msg);
        goto out;
    }
    /* Budgets deleted on another server since: gone here too. */
    for (budget_live_t *l = b->head, *next; l; l = next) {
        next = l->next;
        if (!l->live || !item_of(j, l))
            continue; /* on its way here, or put here since the read was asked for */
        bool kept = false;
        for (size_t i = 0; i < j->n_stored && !kept; i++)
            kept = !strcmp(j->stored[i].name, l->key);
        if (!kept)
            unlink_live(b, l);
    }
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < j->n_stored; i++) {
        if (!j->ok[i])
            continue;
        const char *key = j->stored[i].name;
        if (find(b, key, false))
            continue; /* a put of it here is on its way, and reads its own */
        budget_live_t *l = find(b, key, true);
        const refresh_item_t *it = l ? item_of(j, l) : NULL;
        if (l && !it)
            continue; /* put here after the read was asked for */
        if (!l || !same_reach(&l->cfg, &j->cfgs[i])) {
            /* New here, or its reach changed on another server: counted
             * from the store's usage alone. */
            if (l)
                unlink_live(b, l);
            l = live_new(b, &j->cfgs[i], j->now, true);
            budget_state_synced(&l->st, l->st.gen, 0, j->bases[i]);
        } else {
            l->cfg = j->cfgs[i];
            budget_state_synced(&l->st, it->gen, it->snap, j->bases[i]);
        }
        l->created_ms = j->stored[i].created_ms;
        l->updated_ms = j->stored[i].updated_ms;
        update(b, l, now);
    }
out:
    store_budget_list_free(j->stored, j->n_stored);
    free(j->cfgs);
    free(j->ok);
    free(j->bases);
    free(j->items);
    free(j);
}

static void refresh(budgets_t *b, int64_t now)
{
    refresh_job_t *j = xcalloc(1, sizeof *j);
    j->b = b;
    j->now = now;
    size_t n = 0;
    for (budget_live_t *l = b->head; l; l = l->next)
        n++;
    j->items = xcalloc(n + 1, sizeof *j->items);
    for (budget_live_t *l = b->head; l; l = l->next) {
        if (!l->live)
            continue;
        refresh_item_t *it = &j->items[j->n_items++];
        snprintf(it->key, sizeof it->key, "%s", l->key);
        it->id = l->id;
        it->gen = l->st.gen;
        it->snap = l->st.observed;
    }
    b->refreshing = true;
    b->last_refresh_ms = now;
    obs_records_flush(b->records);
    store_writer_submit_read(b->writer, refresh_apply, refresh_done, j);
}

void budgets_refresh(budgets_t *b)
{
    if (b && !b->stopping && !b->refreshing)
        refresh(b, clock_wall_ms());
}

static void on_tick(uv_timer_t *t)
{
    budgets_t *b = t->data;
    int64_t now = clock_wall_ms();
    /* A period that ended lets its budget's calls through. */
    for (budget_live_t *l = b->head; l; l = l->next)
        update(b, l, now);
    if (b->cfg.shared && !b->refreshing && now - b->last_refresh_ms >= b->cfg.refresh_ms)
        refresh(b, now);
}

/* ---- opening ------------------------------------------------------------ */

int budgets_open(uv_loop_t *loop, store_t *s, store_writer_t *writer, obs_records_t *records,
                 const meter_prices_t *prices, const budgets_config_t *cfg, budgets_t **out,
                 mf_error_t *err)
{
    store_budget_t *stored = NULL;
    size_t n = 0;
    int r = store_budget_list(s, &stored, &n, err);
    if (r < 0)
        return r;
    int64_t now = clock_wall_ms();
    store_usage_t *rows = NULL;
    size_t nrows = 0;
    if (n && (r = usage_read(s, now, &rows, &nrows, err)) < 0) {
        store_budget_list_free(stored, n);
        return r;
    }
    budgets_t *b = xcalloc(1, sizeof *b);
    b->loop = loop;
    b->writer = writer;
    b->records = records;
    b->prices = *prices;
    b->cfg = *cfg;
    if (!b->cfg.refresh_ms)
        b->cfg.refresh_ms = 5000;
    b->last_refresh_ms = now;
    for (size_t i = 0; i < n; i++) {
        budget_t c;
        mf_error_t e = MF_ERROR_INIT;
        if (parse_stored(&stored[i], &c, &e) < 0) {
            log_error("budget", "the stored budget %s is left out: %s", stored[i].name, e.msg);
            continue;
        }
        budget_live_t *l = live_new(b, &c, now, true);
        l->created_ms = stored[i].created_ms;
        l->updated_ms = stored[i].updated_ms;
        budget_state_synced(&l->st, l->st.gen, 0,
                            usage_spend(&c, l->st.period_start, rows, nrows, prices));
    }
    free(rows);
    store_budget_list_free(stored, n);
    for (budget_live_t *l = b->head; l; l = l->next)
        update(b, l, now);
    b->timer = xmalloc(sizeof *b->timer);
    uv_timer_init(loop, b->timer);
    b->timer->data = b;
    uv_timer_start(b->timer, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)b->timer); /* it never keeps a stopping server up */
    *out = b;
    return 0;
}

void budgets_stop(budgets_t *b)
{
    if (!b)
        return;
    b->stopping = true;
    uv_timer_stop(b->timer);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void budgets_close(budgets_t *b)
{
    if (!b)
        return;
    uv_close((uv_handle_t *)b->timer, free_handle);
    while (b->head) {
        budget_live_t *l = b->head;
        b->head = l->next;
        free(l);
    }
    free(b);
}

/* ---- put and delete ----------------------------------------------------- */

typedef struct put_job {
    budgets_t *b;
    budget_live_t *pending; /* counts calls from the put on */
    store_budget_t row;
    bool created;
    double base;
    int64_t start, now;
    budgets_done_cb done;
    void *ud;
} put_job_t;

static int put_apply(void *db, void *arg, mf_error_t *err)
{
    put_job_t *j = arg;
    int r = store_budget_put(db, &j->row, &j->created, err);
    store_usage_t *rows = NULL;
    size_t n = 0;
    if (r == 0)
        r = usage_read(db, j->now, &rows, &n, err);
    if (r == 0)
        j->base = usage_spend(&j->pending->cfg, j->start, rows, n, &j->b->prices);
    free(rows);
    return r;
}

static void put_done(void *arg, int r, const mf_error_t *err)
{
    put_job_t *j = arg;
    budgets_t *b = j->b;
    budget_live_t *p = j->pending;
    if (r < 0) {
        unlink_live(b, p);
    } else {
        budget_live_t *old = find(b, p->key, true);
        if (old) {
            p->created_ms = old->created_ms;
            unlink_live(b, old); /* a lowered or deleted block lets its held events go */
        } else {
            p->created_ms = j->row.created_ms;
        }
        p->updated_ms = j->row.updated_ms;
        p->live = true;
        if (p->st.period_start == j->start)
            budget_state_synced(&p->st, p->st.gen, 0, j->base);
        update(b, p, clock_wall_ms());
    }
    j->done(j->ud, r, j->created, err);
    free(j->row.config_json);
    free(j);
}

void budgets_put(budgets_t *b, const budget_t *cfg, budgets_done_cb done, void *ud)
{
    int64_t now = clock_wall_ms();
    put_job_t *j = xcalloc(1, sizeof *j);
    j->b = b;
    j->done = done;
    j->ud = ud;
    j->pending = live_new(b, cfg, now, false);
    j->start = j->pending->st.period_start;
    j->now = now;
    snprintf(j->row.name, sizeof j->row.name, "%s", j->pending->key);
    json_t *doc = budget_json(cfg);
    j->row.config_json = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    j->row.created_ms = j->row.updated_ms = now;
    obs_records_flush(b->records);
    store_writer_submit(b->writer, true, put_apply, put_done, j);
}

typedef struct delete_job {
    budgets_t *b;
    char key[TENANT_QNAME_MAX + 1];
    budgets_done_cb done;
    void *ud;
} delete_job_t;

static int delete_apply(void *db, void *arg, mf_error_t *err)
{
    delete_job_t *j = arg;
    return store_budget_delete(db, j->key, err);
}

static void delete_done(void *arg, int r, const mf_error_t *err)
{
    delete_job_t *j = arg;
    budget_live_t *l = find(j->b, j->key, true);
    if (l && (r == 0 || r == -ENOENT))
        unlink_live(j->b, l);
    j->done(j->ud, r, false, err);
    free(j);
}

void budgets_delete(budgets_t *b, const char *tenant, const char *name, budgets_done_cb done,
                    void *ud)
{
    delete_job_t *j = xcalloc(1, sizeof *j);
    j->b = b;
    j->done = done;
    j->ud = ud;
    tenant_qualify(tenant, name, j->key, sizeof j->key);
    store_writer_submit(b->writer, true, delete_apply, delete_done, j);
}

/* ---- showing ------------------------------------------------------------ */

static json_t *live_json(budgets_t *b, budget_live_t *l, int64_t now)
{
    update(b, l, now);
    double spend = budget_state_spend(&l->st);
    json_t *doc = budget_json(&l->cfg);
    json_t *crossed = json_array();
    for (size_t i = 0; i < l->cfg.n_alerts; i++)
        if (spend >= l->cfg.alert_at[i] * l->cfg.amount)
            json_array_append_new(crossed, json_real(l->cfg.alert_at[i]));
    char start[32], end[32], created[32], updated[32];
    clock_format_iso8601(l->st.period_start, start, sizeof start);
    clock_format_iso8601(l->st.period_end, end, sizeof end);
    clock_format_iso8601(l->created_ms, created, sizeof created);
    clock_format_iso8601(l->updated_ms, updated, sizeof updated);
    json_object_set_new(doc, "currency", json_string(b->prices.currency));
    json_object_set_new(doc, "period_start", json_string(start));
    json_object_set_new(doc, "period_end", json_string(end));
    json_object_set_new(doc, "spend", json_real(spend));
    json_object_set_new(doc, "forecast",
                        json_real(budget_forecast(&l->cfg, spend, l->st.period_start, now)));
    json_object_set_new(doc, "thresholds_crossed", crossed);
    json_object_set_new(doc, "blocking", json_boolean(l->blocking));
    json_object_set_new(doc, "created", json_string(created));
    json_object_set_new(doc, "updated", json_string(updated));
    return doc;
}

json_t *budgets_show(budgets_t *b, const char *tenant, const char *name)
{
    char key[TENANT_QNAME_MAX + 1];
    if (!tenant_qualify(tenant, name, key, sizeof key))
        return NULL;
    budget_live_t *l = find(b, key, true);
    return l ? live_json(b, l, clock_wall_ms()) : NULL;
}

static int by_tenant_name(const void *x, const void *y)
{
    const json_t *a = *(json_t *const *)x, *c = *(json_t *const *)y;
    int d = strcmp(json_string_value(json_object_get(a, "tenant")),
                   json_string_value(json_object_get(c, "tenant")));
    return d ? d
             : strcmp(json_string_value(json_object_get(a, "name")),
                      json_string_value(json_object_get(c, "name")));
}

json_t *budgets_list(budgets_t *b, const char *tenant)
{
    int64_t now = clock_wall_ms();
    size_t n = 0;
    for (budget_live_t *l = b->head; l; l = l->next)
        n++;
    json_t **docs = xcalloc(n + 1, sizeof *docs);
    size_t k = 0;
    for (budget_live_t *l = b->head; l; l = l->next)
        if (l->live && (!tenant || !strcmp(l->cfg.tenant, tenant)))
            docs[k++] = live_json(b, l, now);
    if (k)
        qsort(docs, k, sizeof *docs, by_tenant_name);
    json_t *list = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(list, docs[i]);
    free(docs);
    return list;
}

typedef struct crossings_job {
    char key[TENANT_QNAME_MAX + 1];
    int64_t period_ms;
    store_budget_crossing_t *list;
    size_t n;
    budgets_crossings_cb done;
    void *ud;
} crossings_job_t;

static int crossings_apply(void *db, void *arg, mf_error_t *err)
{
    crossings_job_t *j = arg;
    return store_budget_crossing_list(db, j->key, j->period_ms, &j->list, &j->n, err);
}

static void crossings_done(void *arg, int r, const mf_error_t *err)
{
    crossings_job_t *j = arg;
    json_t *list = NULL;
    if (r == 0) {
        list = json_array();
        for (size_t i = 0; i < j->n; i++) {
            const store_budget_crossing_t *c = &j->list[i];
            char period[32], time[32];
            clock_format_iso8601(c->period_ms, period, sizeof period);
            clock_format_iso8601(c->time_ms, time, sizeof time);
            json_array_append_new(list, json_pack("{sf sf sf ss ss}", "threshold", c->threshold,
                                                  "amount", c->amount, "spend", c->spend,
                                                  "period_start", period, "time", time));
        }
    }
    j->done(j->ud, r, list, err);
    json_decref(list);
    free(j->list);
    free(j);
}

void budgets_crossings(budgets_t *b, const char *tenant, const char *name,
                       budgets_crossings_cb done, void *ud)
{
    crossings_job_t *j = xcalloc(1, sizeof *j);
    tenant_qualify(tenant, name, j->key, sizeof j->key);
    budget_live_t *l = find(b, j->key, true);
    j->period_ms = l ? l->st.period_start : meter_period_start(METER_DAY, clock_wall_ms());
    j->done = done;
    j->ud = ud;
    store_writer_submit_read(b->writer, crossings_apply, crossings_done, j);
}
