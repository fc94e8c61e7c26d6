/* Metering (docs/metering.md): unit prices, and usage reports over the
 * store's hourly usage rows (store_usage_list), with what they cost.
 *
 * The rows are exact sums of what each call's record metered (the store's
 * triggers keep them as records are written); this room only groups them
 * into periods and prices them. */
#ifndef MAYFLY_METER_METER_H
#define MAYFLY_METER_METER_H

#include "core/tenant.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "store/store.h"
#include "store/writer.h"

/* Unit prices, in currency. Lambda's public x86 on-demand list prices by
 * default; mayfly's own ones are 0 (not charged) unless a prices file
 * sets them. */
typedef struct meter_prices {
    char currency[16];
    double request_per_million;
    double gb_second;
    double cpu_second;
    double egress_gb;          /* per 10^9 bytes, both ways */
    double kv_ops_per_million;
    /* Storage held over time, per GB-month: 10^9 bytes for 730 hours. */
    double kv_gb_month;
    double volume_gb_month;
} meter_prices_t;

/* Byte-milliseconds in a GB-month (10^9 bytes × 730 h), as clouds bill
 * storage. */
#define METER_BYTE_MS_PER_GB_MONTH (1e9 * 730.0 * 3600.0 * 1000.0)

void meter_prices_default(meter_prices_t *out);
/* Reads a prices file: a JSON object of the fields above ("currency" a
 * string of 1–15 letters, the rest numbers ≥ 0); a field left out keeps
 * its default, an unknown one is refused naming it. */
int meter_prices_load(const char *path, meter_prices_t *out, mf_error_t *err);
/* The same for a file's text in hand; path names it in errors. */
int meter_prices_parse(const char *text, size_t len, const char *path, meter_prices_t *out,
                       mf_error_t *err);
json_t *meter_prices_json(const meter_prices_t *p);

typedef enum { METER_HOUR, METER_DAY, METER_MONTH } meter_granularity_t;
/* By function, by tenant (core/tenant.h's), or by the calls' tenant id
 * (Lambda's tenant isolation mode: "" for calls without one). */
typedef enum { METER_BY_FUNCTION, METER_BY_TENANT, METER_BY_TENANT_ID } meter_group_t;

/* A report's request: [from_ms, to_ms) is widened to whole hours (from
 * down to its hour, to up to the end of its hour). */
typedef struct meter_query {
    int64_t from_ms, to_ms;
    meter_granularity_t granularity;
    meter_group_t group_by;
    char function[TENANT_QNAME_MAX + 1];         /* only this function's usage; "" for all */
    char tenant[TENANT_MAX + 1];                 /* only this tenant's; "" for every tenant's */
} meter_query_t;

/* Parses granularity ("hour", "day" or "month") and group_by ("function",
 * "tenant" or "tenant_id"): -EINVAL naming the field otherwise. */
int meter_parse_granularity(const char *s, meter_granularity_t *out, mf_error_t *err);
int meter_parse_group(const char *s, meter_group_t *out, mf_error_t *err);
/* The start (UTC) of the hour, day or month that holds ms. */
int64_t meter_period_start(meter_granularity_t g, int64_t ms);
/* The hours store_usage_list is to read for q. */
void meter_query_hours(const meter_query_t *q, int64_t *from_ms, int64_t *to_ms);

/* The report over rows (the hours of q, as store_usage_list gave them;
 * those of other functions than q->function, when set, are left out):
 * {"from", "to", "granularity", "group_by", "function" (when set), "currency", "prices",
 *  "rows": [{"period", KEY, quantities…, "cost"}…] by period then key,
 *  "totals": {quantities…, "cost"}}, each quantity as docs/metering.md
 * names it. */
json_t *meter_report(const meter_query_t *q, const store_usage_t *rows, size_t n,
                     const meter_prices_t *prices);

/* What usage u costs at prices p (docs/metering.md's formula). */
double meter_usage_cost(const meter_prices_t *p, const store_usage_t *u);

/* ---- the running totals ----------------------------------------------- */

/* What the server's calls metered since it started, as /metrics shows it
 * (mayfly_usage_*_total{tenant,function}): every call that ran, each
 * attempt of an async event included. */
typedef struct meter meter_t;

meter_t *meter_new(const meter_prices_t *prices);
void meter_free(meter_t *m);
/* A call ended with rec (invocation_record's): counted when it ran (not
 * throttled). On the loop; m is a meter_t (exec_set_meter's observe). */
void meter_observe(void *m, const store_record_t *rec);
/* Each counted call's cost goes to the budgets too (meter/budget.h). */
struct budgets;
void meter_set_budgets(meter_t *m, struct budgets *b);

/* ---- storage over time (storage.c) ------------------------------------ */

/* How often storage is sampled by default: each minute's end. */
#define METER_STORAGE_INTERVAL_MS 60000

/* Every interval_ms (0: the default), at the wall clock's multiples of
 * it, what each KV store of kv and each volume of volumes holds goes
 * into usage (store_usage_storage) through writer; either may be NULL. */
typedef struct meter_storage meter_storage_t;
struct state_kv;
struct volumes;
meter_storage_t *meter_storage_start(uv_loop_t *loop, struct state_kv *kv, struct volumes *volumes,
                                     store_writer_t *writer, int64_t interval_ms);
/* Budgets read their spend again after each sample written (NULL: none). */
void meter_storage_set_budgets(meter_storage_t *m, struct budgets *b);
/* Stops sampling; frees itself once the samples on their way are back
 * (before the writer and the KV service stop). NULL is fine. */
void meter_storage_stop(meter_storage_t *m);

#endif
