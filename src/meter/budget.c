/* A budget's settings and the arithmetic of its period (meter/budget.h):
 * pure functions of what they are given, the time included. */
#include "meter/budget.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* A whole body is small: settings, never usage. */
#define BUDGET_BODY_MAX 16384

static bool name_chars(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n >= 1 && n <= max &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

bool budget_valid_name(const char *s)
{
    return s && name_chars(s, BUDGET_NAME_MAX);
}

static const double default_alerts[] = {0.5, 0.8, 1.0};

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_alerts(const json_t *v, budget_t *b, mf_error_t *err)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > BUDGET_ALERTS_MAX)
        return mf_error_plain(err, EINVAL,
                              "alert_at: must be an array of 1 to %d fractions of the amount "
                              "([0.5, 0.8, 1.0])",
                              BUDGET_ALERTS_MAX);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(v, i);
        double x = json_number_value(t);
        if (!json_is_number(t) || !isfinite(x) || x <= 0 || x > BUDGET_ALERT_TOP)
            return mf_error_plain(err, EINVAL,
                                  "alert_at: each threshold must be a number above 0 and at most "
                                  "%g (a fraction of the amount: 0.8 is 80%%)",
                                  BUDGET_ALERT_TOP);
        b->alert_at[i] = x;
    }
    qsort(b->alert_at, n, sizeof b->alert_at[0], by_value);
    for (size_t i = 1; i < n; i++)
        if (b->alert_at[i] == b->alert_at[i - 1])
            return mf_error_plain(err, EINVAL, "alert_at: %g is given twice", b->alert_at[i]);
    b->n_alerts = n;
    return 0;
}

/* One member of the body into b. */
static int parse_field(const char *key, const json_t *v, const char *name, budget_t *b,
                       bool *seen_tenant, bool *seen_period, bool *seen_amount, mf_error_t *err)
{
    const char *s = json_string_value(v);
    if (!strcmp(key, "name")) {
        if (!s || strcmp(s, name))
            return mf_error_plain(err, EINVAL, "name: must be the path's name, %s, if given", name);
        return 0;
    }
    if (!strcmp(key, "tenant")) {
        if (!s || !tenant_valid(s, strlen(s)))
            return mf_error_plain(err, EINVAL, "tenant: must match [a-z0-9-]{1,%d}", TENANT_MAX);
        snprintf(b->tenant, sizeof b->tenant, "%s", s);
        *seen_tenant = true;
        return 0;
    }
    if (!strcmp(key, "function")) {
        if (json_is_null(v)) {
            b->function[0] = '\0';
            return 0;
        }
        if (!s || !name_chars(s, TENANT_LOCAL_MAX))
            return mf_error_plain(err, EINVAL,
                                  "function: must be null (every function of the tenant) or a "
                                  "function's name, [A-Za-z0-9_-]{1,%d}",
                                  TENANT_LOCAL_MAX);
        snprintf(b->function, sizeof b->function, "%s", s);
        return 0;
    }
    if (!strcmp(key, "period")) {
        if (s && !strcmp(s, "day"))
            b->period = METER_DAY;
        else if (s && !strcmp(s, "month"))
            b->period = METER_MONTH;
        else
            return mf_error_plain(err, EINVAL, "period: must be day or month (UTC)");
        *seen_period = true;
        return 0;
    }
    if (!strcmp(key, "amount")) {
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || x <= 0 || x > 1e15)
            return mf_error_plain(err, EINVAL,
                                  "amount: must be a number above 0 (in the prices' currency)");
        b->amount = x;
        *seen_amount = true;
        return 0;
    }
    if (!strcmp(key, "alert_at"))
        return parse_alerts(v, b, err);
    if (!strcmp(key, "action")) {
        if (s && !strcmp(s, "alert"))
            b->action = BUDGET_ALERT;
        else if (s && !strcmp(s, "block"))
            b->action = BUDGET_BLOCK;
        else
            return mf_error_plain(err, EINVAL, "action: must be alert or block");
        return 0;
    }
    if (!strcmp(key, "notify"))
        return notify_parse(v, "notify", &b->notify, err);
    return mf_error_plain(err, EINVAL,
                          "%.64s: not a budget's field (tenant, function, period, amount, "
                          "alert_at, action, notify)",
                          key);
}

int budget_parse(const char *text, size_t len, const char *name, budget_t *out, mf_error_t *err)
{
    if (!budget_valid_name(name))
        return mf_error_plain(err, EINVAL, "name: must match [A-Za-z0-9_-]{1,%d}", BUDGET_NAME_MAX);
    if (len > BUDGET_BODY_MAX)
        return mf_error_plain(err, EINVAL, "body: a budget is at most %d bytes of JSON",
                              BUDGET_BODY_MAX);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        int r = doc ? mf_error_plain(err, EINVAL, "body: must be a JSON object")
                    : mf_error_plain(err, EINVAL, "body: not JSON: %s (line %d, column %d)",
                                     jerr.text, jerr.line, jerr.column);
        json_decref(doc);
        return r;
    }
    budget_t b = {.period = METER_MONTH, .action = BUDGET_ALERT};
    snprintf(b.name, sizeof b.name, "%s", name);
    memcpy(b.alert_at, default_alerts, sizeof default_alerts);
    b.n_alerts = sizeof default_alerts / sizeof default_alerts[0];
    bool tenant = false, period = false, amount = false;
    int r = 0;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if ((r = parse_field(key, v, name, &b, &tenant, &period, &amount, err)) < 0)
            break;
    }
    json_decref(doc);
    if (r < 0)
        return r;
    if (!tenant)
        return mf_error_plain(err, EINVAL, "tenant: required (the tenant whose calls it caps)");
    if (!period)
        return mf_error_plain(err, EINVAL, "period: required (day or month)");
    if (!amount)
        return mf_error_plain(err, EINVAL, "amount: required (a number above 0)");
    *out = b;
    return 0;
}

json_t *budget_json(const budget_t *b)
{
    json_t *alerts = json_array();
    for (size_t i = 0; i < b->n_alerts; i++)
        json_array_append_new(alerts, json_real(b->alert_at[i]));
    json_t *doc =
        json_pack("{ss ss so ss sf so ss}", "name", b->name, "tenant", b->tenant, "function",
                  b->function[0] ? json_string(b->function) : json_null(), "period",
                  b->period == METER_DAY ? "day" : "month", "amount", b->amount, "alert_at", alerts,
                  "action", b->action == BUDGET_BLOCK ? "block" : "alert");
    /* Left out when empty: budgets stored before it read back the same. */
    if (b->notify.n)
        json_object_set_new(doc, "notify", notify_json(&b->notify));
    return doc;
}

bool budget_covers(const budget_t *b, const char *qname)
{
    return tenant_owns(b->tenant, qname) &&
           (!b->function[0] || !strcmp(tenant_local(qname), b->function));
}

bool budget_covers_usage(const budget_t *b, const store_usage_t *u)
{
    const char *local = tenant_local(u->function);
    if (local != u->function)
        return budget_covers(b, u->function);
    return !strcmp(u->tenant, b->tenant) && (!b->function[0] || !strcmp(local, b->function));
}

void budget_key(const budget_t *b, char *out, size_t size)
{
    if (!tenant_qualify(b->tenant, b->name, out, size))
        snprintf(out, size, "%s", b->name); /* cannot happen: both are bounded */
}

int64_t budget_period_end(const budget_t *b, int64_t start)
{
    if (b->period == METER_DAY)
        return start + 24LL * 3600 * 1000;
    /* The first of the next month: 32 days on from the first always lands
     * in it. */
    return meter_period_start(METER_MONTH, start + 32LL * 24 * 3600 * 1000);
}

double budget_forecast(const budget_t *b, double spend, int64_t start, int64_t now)
{
    int64_t end = budget_period_end(b, start);
    if (now <= start)
        return spend;
    if (now >= end)
        return spend;
    return spend * (double)(end - start) / (double)(now - start);
}

bool budget_blocks(const budget_t *b, double spend)
{
    return b->action == BUDGET_BLOCK && spend >= b->amount;
}

void budget_state_init(budget_state_t *st, const budget_t *b, int64_t now)
{
    int64_t start = meter_period_start(b->period, now);
    *st = (budget_state_t){.period_start = start, .period_end = budget_period_end(b, start)};
}

bool budget_state_roll(budget_state_t *st, const budget_t *b, int64_t now)
{
    if (now < st->period_end)
        return false;
    int64_t start = meter_period_start(b->period, now);
    uint64_t gen = st->gen + 1;
    *st = (budget_state_t){
        .period_start = start, .period_end = budget_period_end(b, start), .gen = gen};
    return true;
}

void budget_state_add(budget_state_t *st, int64_t hour_ms, double cost)
{
    if (hour_ms >= st->period_start)
        st->observed += cost;
}

double budget_state_spend(const budget_state_t *st)
{
    return st->base + (st->observed - st->base_observed);
}

void budget_state_synced(budget_state_t *st, uint64_t gen, double snap, double base)
{
    if (gen != st->gen)
        return;
    st->base = base;
    st->base_observed = snap;
}

unsigned budget_state_cross(budget_state_t *st, const budget_t *b)
{
    double spend = budget_state_spend(st);
    unsigned fresh = 0;
    for (size_t i = 0; i < b->n_alerts; i++) {
        unsigned bit = 1u << i;
        if (!(st->crossed & bit) && spend >= b->alert_at[i] * b->amount)
            fresh |= bit;
    }
    st->crossed |= fresh;
    return fresh;
}
