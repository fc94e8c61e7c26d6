/* Budgets (docs/metering.md, "Budgets"): a cap on what a tenant's calls,
 * or one function's, cost in a day or a month (UTC), with thresholds that
 * record an event once each per period, and, with the action block, the
 * refusal of new calls once the spend reaches the amount.
 *
 * Two halves. The first is pure: a budget's settings as PUT
 * /v1/budgets/{name} takes them, and the arithmetic of a period's spend,
 * its forecast, its thresholds and the block decision, with the time
 * passed in. The second is the server's live set (budgets_t): every
 * budget in memory with its counters, fed by each finished call's cost
 * (meter_observe), so that the invoke path asks memory, never the store. */
#ifndef MAYFLY_METER_BUDGET_H
#define MAYFLY_METER_BUDGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "core/notify.h"
#include "core/tenant.h"
#include "meter/meter.h"
#include "store/store.h"

#define BUDGET_NAME_MAX 64   /* [A-Za-z0-9_-]{1,64} */
#define BUDGET_ALERTS_MAX 16 /* thresholds in alert_at */
/* A threshold is a fraction of the amount, above 0 and at most this. */
#define BUDGET_ALERT_TOP 10.0

typedef enum { BUDGET_ALERT, BUDGET_BLOCK } budget_action_t;

typedef struct budget {
    char name[BUDGET_NAME_MAX + 1];
    char tenant[TENANT_MAX + 1];
    char function[TENANT_LOCAL_MAX + 1]; /* its name within the tenant; "": every function */
    meter_granularity_t period;          /* METER_DAY or METER_MONTH */
    double amount;                       /* > 0, in the prices' currency */
    double alert_at[BUDGET_ALERTS_MAX];  /* ascending, no two alike */
    size_t n_alerts;
    budget_action_t action;
    notify_list_t notify; /* where each crossing is sent (docs/alerts.md) */
} budget_t;

/* Whether s is a budget's name. */
bool budget_valid_name(const char *s);
/* Parses PUT /v1/budgets/{name}'s body for the budget name: {"tenant",
 * "function" (optional, null or absent for every function), "period":
 * "day"|"month", "amount" (> 0), "alert_at" (1 to 16 fractions in
 * (0, 10], default [0.5, 0.8, 1.0]), "action": "alert" (default) |
 * "block", "notify": targets (core/notify.h) each crossing is sent to}; "name" may be there when it
 * is name. -EINVAL naming the field otherwise, and for a field it does not know. */
int budget_parse(const char *text, size_t len, const char *name, budget_t *out, mf_error_t *err);
/* The settings as budget_parse takes them (and as the store keeps them). */
json_t *budget_json(const budget_t *b);
/* Whether the call of function qname (a qualified name, core/tenant.h)
 * counts against b. */
bool budget_covers(const budget_t *b, const char *qname);
/* Whether usage u (a row of the store's, or what a call metered:
 * store_usage_of's) counts against b: its tenant's, and its function's
 * when b names one. A function named qualified (TENANT~NAME) is its
 * tenant's whatever u->tenant says. */
bool budget_covers_usage(const budget_t *b, const store_usage_t *u);
/* The key the budget is known by: its name within its tenant, qualified
 * (core/tenant.h), into out (TENANT_QNAME_MAX + 1 bytes). */
void budget_key(const budget_t *b, char *out, size_t size);
/* The end (exclusive) of the period of b that starts at start. */
int64_t budget_period_end(const budget_t *b, int64_t start);
/* Where the period's spend will end if it goes on as it went from start
 * to now: spend × the period's length / the time gone (spend itself at
 * the very start). */
double budget_forecast(const budget_t *b, double spend, int64_t start, int64_t now);
/* Whether b refuses calls at spend: a block budget whose spend reached
 * its amount. */
bool budget_blocks(const budget_t *b, double spend);

/* A budget's counters for its current period. The spend is base (what
 * the store's usage said when last read) plus what was observed here
 * since that read was asked for; observed only grows, and a read
 * remembers where it stood when asked (snap), so calls answered while it
 * was on its way are neither lost nor counted twice. */
typedef struct budget_state {
    int64_t period_start, period_end;
    double base;
    double observed;      /* every cost added in this period, here */
    double base_observed; /* observed when the read that gave base was asked for */
    unsigned crossed;     /* bit i: alert_at[i] recorded in this period */
    uint64_t gen;         /* changes when the period does: older reads are dropped */
} budget_state_t;

void budget_state_init(budget_state_t *st, const budget_t *b, int64_t now);
/* Moves st to the period that holds now when it is past its own (now at
 * or after period_end): spend 0, no threshold crossed. True when it
 * moved. */
bool budget_state_roll(budget_state_t *st, const budget_t *b, int64_t now);
/* A finished call's cost: counted when its hour (its record's, as usage
 * counts it) is in the period. */
void budget_state_add(budget_state_t *st, int64_t hour_ms, double cost);
double budget_state_spend(const budget_state_t *st);
/* A read of the store's usage for the period of gen, asked for when
 * observed was snap, says base. Ignored when the period moved since. */
void budget_state_synced(budget_state_t *st, uint64_t gen, double snap, double base);
/* The thresholds the spend crossed that were not recorded yet in this
 * period, as bits over alert_at, now marked recorded. */
unsigned budget_state_cross(budget_state_t *st, const budget_t *b);

/* ---- the server's live set -------------------------------------------- */

typedef struct budgets budgets_t;
struct obs_records;

typedef struct budgets_config {
    /* Other servers share the store (PostgreSQL): every refresh_ms the
     * usage, the budgets and so their spend are read again. */
    bool shared;
    unsigned refresh_ms;
} budgets_config_t;

/* Reads every budget and its period's usage from s (on the loop, at
 * start: nothing runs yet), and keeps them. writer is the records' (db a
 * store_t), whose reads see every record handed to records before. */
int budgets_open(uv_loop_t *loop, store_t *s, store_writer_t *writer, struct obs_records *records,
                 const meter_prices_t *prices, const budgets_config_t *cfg, budgets_t **out,
                 mf_error_t *err);
/* The server stops: from now on nothing is handed to the writer or to
 * released (the queue is going), and the timer stops. NULL is fine. */
void budgets_stop(budgets_t *b);
/* Once the writer it was given has stopped (its jobs' callbacks come
 * back to it), before the loop's last run: closes its timer and frees.
 * NULL is fine. */
void budgets_close(budgets_t *b);
/* Called when a function's calls may be let through again (a budget
 * raised, deleted, or its period over): the async queue runs what it
 * held (async_hold_changed). */
void budgets_set_released(budgets_t *b, void (*released)(void *ud), void *ud);

/* A call ended, metered u costing cost (meter_observe hands it on). */
void budgets_observe(budgets_t *b, const store_usage_t *u, double cost);
/* Usage the calls did not bring (storage's, meter/storage.c) was written:
 * the spend is read again from the store, as a shared store's is every
 * few seconds. NULL is fine. */
void budgets_refresh(budgets_t *b);
/* exec_set_admit's check: 0, or -EDQUOT with a message naming the budget
 * that refuses calls of function. Memory only. */
int budgets_admit(void *b, const char *function, mf_error_t *err);
/* The async queue's hold (async_set_hold): whether function's events wait
 * for a budget, and why (into why). */
bool budgets_held(void *b, const char *function, char *why, size_t len);

/* What the budget name of tenant has spent of its amount in its period
 * (1 is all of it): false when there is no such budget. Memory only. */
bool budgets_used(budgets_t *b, const char *tenant, const char *name, double *used);
/* Called on the writer's thread (db its store_t) in the transaction that
 * records a crossing, once per crossing recorded, so that what it writes
 * (watch/alerts.h's outbox) is there if and only if the crossing is; then
 * after(ud) on the loop once it is committed. */
struct store_budget_crossing;
typedef int (*budgets_crossed_fn)(void *ud, void *db, const budget_t *b,
                                  const struct store_budget_crossing *c, mf_error_t *err);
void budgets_set_crossed(budgets_t *b, budgets_crossed_fn crossed, void (*after)(void *ud),
                         void *ud);

/* A put's or a delete's end: r 0 or the store's error. */
typedef void (*budgets_done_cb)(void *ud, int r, bool created, const mf_error_t *err);
/* Keeps the budget (created or replaced): written to the store, then its
 * spend read from the usage and made live. */
void budgets_put(budgets_t *b, const budget_t *cfg, budgets_done_cb done, void *ud);
/* -ENOENT through done when the tenant has no budget name. */
void budgets_delete(budgets_t *b, const char *tenant, const char *name, budgets_done_cb done,
                    void *ud);
/* The budget as GET shows it, without its crossings; NULL when the tenant
 * has none of that name. */
json_t *budgets_show(budgets_t *b, const char *tenant, const char *name);
/* Every budget (of tenant, or of every tenant when NULL), by tenant and
 * name, as budgets_show shows each. */
json_t *budgets_list(budgets_t *b, const char *tenant);
/* Reads the crossings the budget's current period recorded, off the
 * loop: done gets them as a JSON array (NULL on error). */
typedef void (*budgets_crossings_cb)(void *ud, int r, json_t *crossings, const mf_error_t *err);
void budgets_crossings(budgets_t *b, const char *tenant, const char *name,
                       budgets_crossings_cb done, void *ud);

#endif
