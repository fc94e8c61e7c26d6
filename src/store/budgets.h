/* Budgets in the store (meter/budget.h, docs/metering.md): each budget's
 * settings, and the thresholds its periods crossed. Both live beside the
 * usage they are measured against (mayfly.db, or the PostgreSQL database
 * the servers share), so that every server sharing it knows every budget,
 * and a crossing is recorded once, whichever server saw it first.
 *
 * Calls take a store_t used from one thread at a time (the loop's at
 * start, the records' writer's after) and return 0 or a negative errno
 * filling *err; -ENOENT when the budget does not exist. */
#ifndef MAYFLY_STORE_BUDGETS_H
#define MAYFLY_STORE_BUDGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tenant.h"
#include "store/store.h"

typedef struct store_budget {
    char name[TENANT_QNAME_MAX + 1]; /* its tenant's name for it, qualified */
    char *config_json;               /* owned: the settings (meter/budget.h's budget_json) */
    int64_t created_ms, updated_ms;
} store_budget_t;

/* A threshold crossed in a period: recorded once per budget, period,
 * threshold and amount (a budget raised may cross its thresholds anew). */
typedef struct store_budget_crossing {
    char budget[TENANT_QNAME_MAX + 1];
    int64_t period_ms; /* the period's start */
    double threshold;  /* the fraction of amount */
    double amount;
    double spend; /* when it was seen */
    int64_t time_ms;
} store_budget_crossing_t;

/* Creates or replaces the budget b->name (created_ms kept when it
 * replaces); *created says which. */
int store_budget_put(store_t *s, const store_budget_t *b, bool *created, mf_error_t *err);
/* Deletes the budget and its crossings. */
int store_budget_delete(store_t *s, const char *name, mf_error_t *err);
/* Every budget, by name. */
int store_budget_list(store_t *s, store_budget_t **out, size_t *count, mf_error_t *err);
void store_budget_list_free(store_budget_t *list, size_t count);
/* Records c unless it is recorded already, or its budget is gone: *added
 * says whether this call recorded it. */
int store_budget_crossing_add(store_t *s, const store_budget_crossing_t *c, bool *added,
                              mf_error_t *err);
/* The crossings of budget's period that starts at period_ms, oldest
 * first. */
int store_budget_crossing_list(store_t *s, const char *budget, int64_t period_ms,
                               store_budget_crossing_t **out, size_t *count, mf_error_t *err);

#endif
