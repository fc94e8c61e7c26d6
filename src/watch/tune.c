/* Power tuning's request and table (watch/tune.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "watch/tune.h"

static const int default_sizes[] = {128, 256, 512, 1024, 2048};

const char *watch_tune_strategy_name(watch_tune_strategy_t s)
{
    switch (s) {
    case WATCH_TUNE_COST: return "cost";
    case WATCH_TUNE_SPEED: return "speed";
    default: return "balanced";
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int parse_sizes(const json_t *v, watch_tune_request_t *out, mf_error_t *err)
{
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > WATCH_TUNE_SIZES_MAX)
        return mf_error_plain(err, EINVAL,
                              "memory_mb: must be an array of 1 to %d sizes in MB, e.g. "
                              "[128, 256, 512, 1024, 2048]",
                              WATCH_TUNE_SIZES_MAX);
    size_t i;
    const json_t *m;
    json_array_foreach(v, i, m)
    {
        json_int_t x = json_is_integer(m) ? json_integer_value(m) : 0;
        if (!json_is_integer(m) || x < WATCH_MEMORY_MIN || x > WATCH_MEMORY_MAX)
            return mf_error_plain(err, EINVAL,
                                  "memory_mb: each size must be an integer from %d to %d (MB)",
                                  WATCH_MEMORY_MIN, WATCH_MEMORY_MAX);
        for (size_t k = 0; k < i; k++)
            if (out->sizes[k] == (int)x)
                return mf_error_plain(err, EINVAL, "memory_mb: %d appears twice", (int)x);
        out->sizes[i] = (int)x;
    }
    out->n_sizes = json_array_size(v);
    qsort(out->sizes, out->n_sizes, sizeof out->sizes[0], cmp_int);
    return 0;
}

int watch_tune_parse(const char *body, size_t len, watch_tune_request_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    memcpy(out->sizes, default_sizes, sizeof default_sizes);
    out->n_sizes = sizeof default_sizes / sizeof *default_sizes;
    out->runs = WATCH_TUNE_RUNS_DEFAULT;
    out->strategy = WATCH_TUNE_BALANCED;

    json_t *doc = NULL;
    size_t blank = 0;
    while (blank < len && strchr(" \t\r\n", body[blank]))
        blank++;
    if (blank < len) {
        json_error_t jerr;
        doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
            return mf_error_plain(err, EINVAL, "body: not JSON: %s", jerr.text);
        if (!json_is_object(doc)) {
            json_decref(doc);
            return mf_error_plain(err, EINVAL, "body: must be a JSON object");
        }
    }
    int r = 0;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (!strcmp(key, "event")) {
            continue;
        } else if (!strcmp(key, "memory_mb")) {
            if ((r = parse_sizes(v, out, err)) < 0)
                goto out;
        } else if (!strcmp(key, "runs")) {
            json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
            if (!json_is_integer(v) || n < 1 || n > WATCH_TUNE_RUNS_MAX) {
                r = mf_error_plain(err, EINVAL, "runs: must be an integer from 1 to %d",
                                   WATCH_TUNE_RUNS_MAX);
                goto out;
            }
            out->runs = (int)n;
        } else if (!strcmp(key, "strategy")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "cost"))
                out->strategy = WATCH_TUNE_COST;
            else if (s && !strcmp(s, "speed"))
                out->strategy = WATCH_TUNE_SPEED;
            else if (s && !strcmp(s, "balanced"))
                out->strategy = WATCH_TUNE_BALANCED;
            else {
                r = mf_error_plain(err, EINVAL,
                                   "strategy: must be \"cost\", \"speed\" or \"balanced\"");
                goto out;
            }
        } else {
            char shown[80];
            mf_error_show(key, 64, shown, sizeof shown);
            r = mf_error_plain(err, EINVAL,
                               "%s: unknown field (event, memory_mb, runs and strategy are "
                               "known)",
                               shown);
            goto out;
        }
    }
    json_t *event = doc ? json_object_get(doc, "event") : NULL;
    if (event) {
        out->event = json_dumps(event, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!out->event) {
            r = mf_error_plain(err, EINVAL, "event: cannot be encoded");
            goto out;
        }
    } else {
        out->event = xstrdup("{}");
    }
    out->event_len = strlen(out->event);
out:
    json_decref(doc);
    if (r < 0)
        watch_tune_request_release(out);
    return r;
}

void watch_tune_request_release(watch_tune_request_t *rq)
{
    free(rq->event);
    rq->event = NULL;
    rq->event_len = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank percentile p of n sorted values. */
static double percentile(const double *v, size_t n, double p)
{
    size_t k = (size_t)ceil(p * (double)n);
    return v[k ? k - 1 : 0];
}

static const char *error_type_of(const watch_tune_run_t *r)
{
    switch (r->status) {
    case WATCH_CALL_OOM: return "oom";
    case WATCH_CALL_TIMEOUT: return "timeout";
    default: return r->error_type[0] ? r->error_type : "error";
    }
}

typedef struct row {
    int memory_mb;
    bool eligible;
    double p50, cost;
} row_t;

static double round2(double x)
{
    return round(x * 100) / 100;
}

json_t *watch_tune_table(const watch_tune_request_t *rq, const watch_tune_run_t *runs,
                         const int *done, const meter_prices_t *prices)
{
    json_t *sizes = json_array();
    row_t rows[WATCH_TUNE_SIZES_MAX];
    double *d = xcalloc((size_t)rq->runs, sizeof *d);
    double *cpu = xcalloc((size_t)rq->runs, sizeof *cpu);
    for (size_t i = 0; i < rq->n_sizes; i++) {
        const watch_tune_run_t *rs = runs + i * (size_t)rq->runs;
        int n = done[i];
        int successes = 0, warm = 0;
        int64_t rss = 0;
        json_t *types = json_array();
        json_t *cold = json_null(), *cold_init = json_null();
        for (int k = 0; k < n; k++) {
            const watch_tune_run_t *r = &rs[k];
            if (r->max_rss_kb > rss)
                rss = r->max_rss_kb;
            if (r->cold_start && json_is_null(cold) && r->status == WATCH_CALL_SUCCESS) {
                cold = json_real(round2(r->init_ms + r->duration_ms));
                cold_init = json_real(round2(r->init_ms));
            }
            if (r->status == WATCH_CALL_SUCCESS) {
                successes++;
                warm += !r->cold_start;
                continue;
            }
            const char *t = error_type_of(r);
            bool seen = false;
            size_t j;
            json_t *e;
            json_array_foreach(types, j, e) seen = seen || !strcmp(json_string_value(e), t);
            if (!seen)
                json_array_append_new(types, json_string(t));
        }
        /* The warm calls' durations; a size run once has only its cold
         * call, whose duration (its start apart) stands in. */
        size_t m = 0;
        for (int k = 0; k < n; k++)
            if (rs[k].status == WATCH_CALL_SUCCESS && (!warm || !rs[k].cold_start)) {
                d[m] = rs[k].duration_ms;
                cpu[m++] = (double)rs[k].cpu_ms;
            }
        row_t *row = &rows[i];
        row->memory_mb = rq->sizes[i];
        row->eligible = m > 0 && successes == n && n == rq->runs;
        json_t *o = json_pack("{si si si si so}", "memory_mb", rq->sizes[i], "runs", n, "successes",
                              successes, "errors", n - successes, "error_types", types);
        json_object_set_new(o, "cold_ms", cold);
        json_object_set_new(o, "cold_init_ms", cold_init);
        if (m) {
            qsort(d, m, sizeof *d, cmp_double);
            qsort(cpu, m, sizeof *cpu, cmp_double);
            row->p50 = percentile(d, m, 0.5);
            row->cost =
                watch_cost_per_million(prices, rq->sizes[i], row->p50, percentile(cpu, m, 0.5));
            json_object_set_new(o, "p50_ms", json_real(round2(row->p50)));
            json_object_set_new(o, "p90_ms", json_real(round2(percentile(d, m, 0.9))));
            json_object_set_new(o, "cost_per_million", json_real(row->cost));
        } else {
            json_object_set_new(o, "p50_ms", json_null());
            json_object_set_new(o, "p90_ms", json_null());
            json_object_set_new(o, "cost_per_million", json_null());
        }
        json_object_set_new(o, "max_rss_mb", json_real(round2((double)rss / 1024.0)));
        json_array_append_new(sizes, o);
    }
    free(d);
    free(cpu);

    /* balanced: the Power Tuning tool's weighted mean, half the cost and
     * half the duration, each over the largest among the sizes. */
    double max_cost = 0, max_p50 = 0;
    for (size_t i = 0; i < rq->n_sizes; i++)
        if (rows[i].eligible) {
            max_cost = rows[i].cost > max_cost ? rows[i].cost : max_cost;
            max_p50 = rows[i].p50 > max_p50 ? rows[i].p50 : max_p50;
        }
    const row_t *best = NULL;
    double best_score = 0;
    for (size_t i = 0; i < rq->n_sizes; i++) {
        const row_t *r = &rows[i];
        if (!r->eligible)
            continue;
        double score;
        switch (rq->strategy) {
        case WATCH_TUNE_COST: score = r->cost; break;
        case WATCH_TUNE_SPEED: score = r->p50; break;
        default:
            score = 0.5 * (max_cost > 0 ? r->cost / max_cost : 0) +
                    0.5 * (max_p50 > 0 ? r->p50 / max_p50 : 0);
            break;
        }
        /* Sizes go up: a tie keeps the smaller. */
        if (!best || score < best_score) {
            best = r;
            best_score = score;
        }
    }
    json_t *rec = best ? json_pack("{si sf sf}", "memory_mb", best->memory_mb, "p50_ms",
                                   round2(best->p50), "cost_per_million", best->cost)
                       : json_null();
    char msg[200];
    if (best)
        snprintf(msg, sizeof msg, "%d MB %s of the sizes that ran every call without an error",
                 best->memory_mb,
                 rq->strategy == WATCH_TUNE_COST    ? "costs the least per call"
                 : rq->strategy == WATCH_TUNE_SPEED ? "is the fastest (p50)"
                                                    : "balances cost and speed best");
    else
        snprintf(msg, sizeof msg, "no size ran every call without an error: none is recommended");
    return json_pack("{ss si ss so so ss}", "strategy", watch_tune_strategy_name(rq->strategy),
                     "runs", rq->runs, "currency", prices->currency, "sizes", sizes, "recommended",
                     rec, "message", msg);
}
