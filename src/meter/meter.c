/* Prices and usage reports (meter/meter.h). */
#include "meter/meter.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/map.h"
#include "core/xalloc.h"

#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)
#define PRICES_MAX_BYTES (64 * 1024)

void meter_prices_default(meter_prices_t *out)
{
    /* Lambda, x86, on demand: $0.20 per million requests, $0.0000166667
     * per GB-second. */
    *out = (meter_prices_t){ .currency = "USD",
                             .request_per_million = 0.20,
                             .gb_second = 0.0000166667 };
}

/* The numbers a prices file may set, by name. */
static double *price_field(meter_prices_t *p, const char *name)
{
    if (!strcmp(name, "request_per_million"))
        return &p->request_per_million;
    if (!strcmp(name, "gb_second"))
        return &p->gb_second;
    if (!strcmp(name, "cpu_second"))
        return &p->cpu_second;
    if (!strcmp(name, "egress_gb"))
        return &p->egress_gb;
    if (!strcmp(name, "kv_ops_per_million"))
        return &p->kv_ops_per_million;
    if (!strcmp(name, "kv_gb_month"))
        return &p->kv_gb_month;
    if (!strcmp(name, "volume_gb_month"))
        return &p->volume_gb_month;
    return NULL;
}

int meter_prices_load(const char *path, meter_prices_t *out, mf_error_t *err)
{
    buf_t text = BUF_INIT;
    int r = fs_read_file(path, &text, PRICES_MAX_BYTES, err);
    if (r == 0)
        r = meter_prices_parse(text.data, text.len, path, out, err);
    buf_release(&text);
    return r;
}

int meter_prices_parse(const char *text, size_t len, const char *path, meter_prices_t *out,
                       mf_error_t *err)
{
    meter_prices_t p;
    meter_prices_default(&p);
    int r = 0;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        r = doc ? mf_error_plain(err, EINVAL, "%s: must be a JSON object of prices", path)
                : mf_error_plain(err, EINVAL, "%s: not JSON: %s (line %d, column %d)", path,
                                 jerr.text, jerr.line, jerr.column);
        json_decref(doc);
        return r;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (!strcmp(key, "currency")) {
            const char *c = json_string_value(v);
            size_t n = c ? strlen(c) : 0;
            bool ok = n >= 1 && n < sizeof p.currency;
            for (size_t i = 0; ok && i < n; i++)
                ok = isalpha((unsigned char)c[i]);
            if (!ok) {
                r = mf_error_plain(err, EINVAL, "%s: currency: must be 1 to %zu letters (USD)",
                                   path, sizeof p.currency - 1);
                break;
            }
            snprintf(p.currency, sizeof p.currency, "%s", c);
            continue;
        }
        double *f = price_field(&p, key);
        if (!f) {
            r = mf_error_plain(err, EINVAL,
                               "%s: %s: not a price (currency, request_per_million, gb_second, "
                               "cpu_second, egress_gb, kv_ops_per_million, kv_gb_month, "
                               "volume_gb_month)",
                               path, key);
            break;
        }
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0) {
            r = mf_error_plain(err, EINVAL, "%s: %s: must be a number, 0 or more", path, key);
            break;
        }
        *f = json_number_value(v);
    }
    json_decref(doc);
    if (r == 0)
        *out = p;
    return r;
}

json_t *meter_prices_json(const meter_prices_t *p)
{
    return json_pack("{ss sf sf sf sf sf sf sf}", "currency", p->currency, "request_per_million",
                     p->request_per_million, "gb_second", p->gb_second, "cpu_second",
                     p->cpu_second, "egress_gb", p->egress_gb, "kv_ops_per_million",
                     p->kv_ops_per_million, "kv_gb_month", p->kv_gb_month, "volume_gb_month",
                     p->volume_gb_month);
}

int meter_parse_granularity(const char *s, meter_granularity_t *out, mf_error_t *err)
{
    static const char *const names[] = { "hour", "day", "month" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (meter_granularity_t)i;
            return 0;
        }
    return mf_error_plain(err, EINVAL, "granularity: must be hour, day or month");
}

int meter_parse_group(const char *s, meter_group_t *out, mf_error_t *err)
{
    static const char *const names[] = { "function", "tenant", "tenant_id" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (meter_group_t)i;
            return 0;
        }
    return mf_error_plain(err, EINVAL, "group_by: must be function, tenant or tenant_id");
}

static int64_t floor_to(int64_t ms, int64_t unit)
{
    int64_t r = ms % unit;
    return ms - (r < 0 ? r + unit : r);
}

void meter_query_hours(const meter_query_t *q, int64_t *from_ms, int64_t *to_ms)
{
    *from_ms = floor_to(q->from_ms, HOUR_MS);
    *to_ms = floor_to(q->to_ms + HOUR_MS - 1, HOUR_MS);
}

int64_t meter_period_start(meter_granularity_t g, int64_t ms)
{
    if (g == METER_HOUR)
        return floor_to(ms, HOUR_MS);
    if (g == METER_DAY)
        return floor_to(ms, DAY_MS);
    time_t t = (time_t)(floor_to(ms, 1000) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

/* One row's sums, and what they cost. */
typedef struct meter_sum {
    int64_t period;
    const char *key;
    const char *tenant; /* the rows' tenant (by function: two tenants' functions differ) */
    store_usage_t u;
} meter_sum_t;

double meter_usage_cost(const meter_prices_t *p, const store_usage_t *u)
{
    double gb_s = store_usage_gb_seconds(u);
    return (double)u->requests / 1e6 * p->request_per_million + gb_s * p->gb_second +
           (double)u->cpu_ms / 1000.0 * p->cpu_second +
           (double)u->egress_bytes / 1e9 * p->egress_gb +
           (double)u->kv_ops / 1e6 * p->kv_ops_per_million +
           (double)u->kv_byte_ms / METER_BYTE_MS_PER_GB_MONTH * p->kv_gb_month +
           (double)u->volume_byte_ms / METER_BYTE_MS_PER_GB_MONTH * p->volume_gb_month;
}

static json_t *quantities(const store_usage_t *u, const meter_prices_t *p)
{
    double cost = meter_usage_cost(p, u);
    return json_pack("{sI sf sI sI sI sI sI sf sI sf sI sf}", "requests",
                     (json_int_t)u->requests, "gb_seconds", store_usage_gb_seconds(u),
                     "billed_ms", (json_int_t)u->billed_ms, "cpu_ms",
                     (json_int_t)u->cpu_ms, "egress_bytes", (json_int_t)u->egress_bytes,
                     "kv_ops", (json_int_t)u->kv_ops, "log_bytes", (json_int_t)u->log_bytes,
                     "cost", cost, "kv_byte_ms", (json_int_t)u->kv_byte_ms, "kv_gb_months",
                     (double)u->kv_byte_ms / METER_BYTE_MS_PER_GB_MONTH, "volume_byte_ms",
                     (json_int_t)u->volume_byte_ms, "volume_gb_months",
                     (double)u->volume_byte_ms / METER_BYTE_MS_PER_GB_MONTH);
}

static int by_period_key(const void *a, const void *b)
{
    const meter_sum_t *x = a, *y = b;
    if (x->period != y->period)
        return x->period < y->period ? -1 : 1;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->tenant, y->tenant);
}

json_t *meter_report(const meter_query_t *q, const store_usage_t *rows, size_t n,
                     const meter_prices_t *prices)
{
    static const char *const gnames[] = { "hour", "day", "month" };
    static const char *const keys[] = { "function", "tenant", "tenant_id" };
    const char *key_name = keys[q->group_by];
    /* (period, key) → its sums: rows come by hour, so a period's keys
     * are together only within an hour; a map gathers them. */
    map_t at = MAP_INIT;
    meter_sum_t *sums = NULL;
    size_t ns = 0;
    store_usage_t total = { 0 };
    for (size_t i = 0; i < n; i++) {
        if ((q->function[0] && strcmp(rows[i].function, q->function)) ||
            (q->tenant[0] && strcmp(rows[i].tenant, q->tenant)))
            continue;
        const char *key = q->group_by == METER_BY_FUNCTION ? rows[i].function
                          : q->group_by == METER_BY_TENANT ? rows[i].tenant
                                                           : rows[i].tenant_id;
        int64_t period = meter_period_start(q->granularity, rows[i].hour_ms);
        /* Two tenants' functions (or tenant ids) of one name are two rows. */
        bool per_tenant = q->group_by != METER_BY_TENANT;
        char id[64 + TENANT_MAX + STORE_TENANT_ID_MAX];
        snprintf(id, sizeof id, "%lld %s %s", (long long)period, per_tenant ? rows[i].tenant : "",
                 key);
        uintptr_t k = (uintptr_t)map_get(&at, id);
        if (!k) {
            sums = xrealloc(sums, (ns + 1) * sizeof *sums);
            sums[ns] = (meter_sum_t){ .period = period, .key = key, .tenant = rows[i].tenant };
            k = ++ns;
            map_put(&at, id, (void *)k);
        }
        store_usage_add(&sums[k - 1].u, &rows[i], 1);
        store_usage_add(&total, &rows[i], 1);
    }
    map_release(&at);
    if (ns)
        qsort(sums, ns, sizeof *sums, by_period_key);
    json_t *list = json_array();
    for (size_t i = 0; i < ns; i++) {
        char period[32];
        clock_format_iso8601(sums[i].period, period, sizeof period);
        json_t *row = quantities(&sums[i].u, prices);
        json_object_set_new(row, "period", json_string(period));
        /* Calls without a tenant id are the row whose tenant_id is null. */
        json_object_set_new(row, key_name,
                            q->group_by == METER_BY_TENANT_ID && !sums[i].key[0]
                                ? json_null()
                                : json_string(sums[i].key));
        if (q->group_by != METER_BY_TENANT)
            json_object_set_new(row, "tenant", json_string(sums[i].tenant));
        json_array_append_new(list, row);
    }
    free(sums);
    int64_t from, to;
    meter_query_hours(q, &from, &to);
    char f[32], t[32];
    clock_format_iso8601(from, f, sizeof f);
    clock_format_iso8601(to, t, sizeof t);
    json_t *doc = json_pack("{ss ss ss ss ss so so so}", "from", f, "to", t, "granularity",
                            gnames[q->granularity], "group_by", key_name,
                            "currency", prices->currency, "prices", meter_prices_json(prices),
                            "rows", list, "totals", quantities(&total, prices));
    if (q->function[0])
        json_object_set_new(doc, "function", json_string(q->function));
    return doc;
}
