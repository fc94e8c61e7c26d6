/* The right-sizing advisor's arithmetic (watch/advisor.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "watch/advisor.h"

watch_call_status_t watch_call_status(const char *status)
{
    if (!strcmp(status, "success"))
        return WATCH_CALL_SUCCESS;
    if (!strcmp(status, "error"))
        return WATCH_CALL_ERROR;
    if (!strcmp(status, "timeout"))
        return WATCH_CALL_TIMEOUT;
    if (!strcmp(status, "oom"))
        return WATCH_CALL_OOM;
    return WATCH_CALL_OTHER;
}

double watch_cpu_share(int memory_mb, unsigned cores)
{
    double share = (double)memory_mb / WATCH_MB_PER_CPU;
    double most = cores ? (double)cores : 1.0;
    return share < most ? share : most;
}

double watch_cost_per_million(const meter_prices_t *prices, int memory_mb, double duration_ms,
                              double cpu_ms)
{
    /* A million calls' usage, priced as meter_usage_cost prices the
     * records' (billed: the duration rounded up to 1 ms). */
    double billed = ceil(duration_ms);
    if (billed < 1)
        billed = 1;
    double gb_s = (double)memory_mb / 1024.0 * billed / 1000.0;
    return prices->request_per_million +
           1e6 * (gb_s * prices->gb_second + cpu_ms / 1000.0 * prices->cpu_second);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile p (0–1] of n sorted values. */
static int64_t percentile(const int64_t *sorted, size_t n, double p)
{
    size_t k = (size_t)ceil(p * (double)n);
    return sorted[k ? k - 1 : 0];
}

static int round_step(double mb)
{
    double m = ceil(mb / WATCH_MEMORY_STEP) * WATCH_MEMORY_STEP;
    if (m < WATCH_MEMORY_MIN)
        m = WATCH_MEMORY_MIN;
    if (m > WATCH_MEMORY_MAX)
        m = WATCH_MEMORY_MAX;
    return (int)m;
}

/* How the calls used the CPU: per call (means), the share they ran with
 * (weighted by duration), and how many cores they showed they can use. */
typedef struct cpu_use {
    size_t n;
    double duration_ms, cpu_ms; /* means */
    double share;               /* the share they had, capped at their parallelism */
    double parallelism;         /* ≥ 1 */
    double ratio;               /* cpu_ms / (duration_ms × share) */
    bool bound;
} cpu_use_t;

/* Calls shorter than this say nothing of their CPU: cpu_ms is whole
 * milliseconds. */
#define CPU_MIN_DURATION_MS 5.0

static bool cpu_counts(const watch_call_t *c, int pass)
{
    if (c->status != WATCH_CALL_SUCCESS)
        return pass == 2 && c->status != WATCH_CALL_OTHER;
    /* A cold call's CPU includes its runtime's start, at every core. */
    return pass > 0 || !c->cold_start;
}

static void cpu_measure(const watch_advice_input_t *in, cpu_use_t *u)
{
    memset(u, 0, sizeof *u);
    u->parallelism = 1.0;
    /* Warm successes; else every success; else every call that ran. */
    for (int pass = 0; pass < 3 && !u->n; pass++) {
        double dur = 0, cpu = 0;
        for (size_t i = 0; i < in->n; i++) {
            const watch_call_t *c = &in->calls[i];
            if (!cpu_counts(c, pass))
                continue;
            u->n++;
            dur += c->duration_ms;
            cpu += (double)c->cpu_ms;
            if (c->duration_ms >= 4 * CPU_MIN_DURATION_MS) {
                double p = (double)c->cpu_ms / c->duration_ms;
                if (p > u->parallelism)
                    u->parallelism = p;
            }
        }
        if (u->n) {
            u->duration_ms = dur / (double)u->n;
            u->cpu_ms = cpu / (double)u->n;
        }
    }
    if (u->parallelism > (double)(in->cores ? in->cores : 1))
        u->parallelism = in->cores ? in->cores : 1;
    double weighted = 0, dur = 0;
    for (size_t i = 0; i < in->n; i++) {
        const watch_call_t *c = &in->calls[i];
        if (c->status == WATCH_CALL_OTHER)
            continue;
        double s = watch_cpu_share(c->memory_mb, in->cores);
        weighted += c->duration_ms * (s < u->parallelism ? s : u->parallelism);
        dur += c->duration_ms;
    }
    u->share = dur > 0 ? weighted / dur : watch_cpu_share(in->memory_mb, in->cores);
    if (u->duration_ms > 0 && u->share > 0)
        u->ratio = u->cpu_ms / (u->duration_ms * u->share);
    u->bound = u->duration_ms >= CPU_MIN_DURATION_MS && u->ratio >= WATCH_CPU_BOUND_RATIO;
}

/* The duration predicted at memory_mb: the CPU-bound part of the calls
 * (f) scales with the share the size gives (up to their parallelism),
 * the rest (waiting on I/O, sleeping) does not. */
static double predict_ms(const watch_advice_input_t *in, const cpu_use_t *u, int memory_mb)
{
    double f = u->ratio > 1 ? 1 : u->ratio;
    double s = watch_cpu_share(memory_mb, in->cores);
    if (s > u->parallelism)
        s = u->parallelism;
    if (s <= 0 || u->share <= 0)
        return u->duration_ms;
    return u->duration_ms * (1 - f + f * u->share / s);
}

static json_t *size_json(const watch_advice_input_t *in, const cpu_use_t *u, int memory_mb)
{
    double d = predict_ms(in, u, memory_mb);
    return json_pack("{si sf sf}", "memory_mb", memory_mb, "duration_ms", round(d * 100) / 100,
                     "cost_per_million",
                     watch_cost_per_million(in->prices, memory_mb, d, u->cpu_ms));
}

/* For CPU-bound calls: of the sizes from floor up to where the share
 * stops helping, the one with the least cost × duration. */
static int best_cpu_size(const watch_advice_input_t *in, const cpu_use_t *u, int floor_mb)
{
    static const int steps[] = {128,  256,  512,  1024, 1536, 1792, 2048,
                                3008, 3584, 4096, 5376, 7168, 8960, 10240};
    int top = round_step(u->parallelism * WATCH_MB_PER_CPU);
    int cores_top = round_step((double)(in->cores ? in->cores : 1) * WATCH_MB_PER_CPU);
    if (top > cores_top)
        top = cores_top;
    if (top < floor_mb)
        top = floor_mb;
    int cand[sizeof steps / sizeof *steps + 2];
    size_t n = 0;
    cand[n++] = floor_mb;
    cand[n++] = in->memory_mb;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        cand[n++] = steps[i];
    int best = floor_mb;
    double best_score = INFINITY;
    for (size_t i = 0; i < n; i++) {
        int m = cand[i];
        if (m < floor_mb || m > top)
            continue;
        double d = predict_ms(in, u, m);
        double score = d * watch_cost_per_million(in->prices, m, d, u->cpu_ms);
        /* Within a part in a million is a tie: the smaller size wins. */
        if (score < best_score * (1 - 1e-6) || (score <= best_score * (1 + 1e-6) && m < best)) {
            best_score = score;
            best = m;
        }
    }
    return best;
}

static void iso(int64_t ms, char out[40])
{
    clock_format_iso8601(ms, out, 40);
}

json_t *watch_advise(const watch_advice_input_t *in)
{
    size_t successes = 0, errors = 0, ooms = 0, timeouts = 0, ran = 0;
    int64_t from = 0, to = 0;
    int oom_mb = 0;
    int64_t *peaks = xcalloc(in->n ? in->n : 1, sizeof *peaks);
    int64_t peak_max = 0;
    for (size_t i = 0; i < in->n; i++) {
        const watch_call_t *c = &in->calls[i];
        switch (c->status) {
        case WATCH_CALL_SUCCESS: successes++; break;
        case WATCH_CALL_ERROR: errors++; break;
        case WATCH_CALL_TIMEOUT: timeouts++; break;
        case WATCH_CALL_OOM:
            ooms++;
            if (c->memory_mb > oom_mb)
                oom_mb = c->memory_mb;
            break;
        case WATCH_CALL_OTHER: continue;
        }
        if (!ran || c->start_ms < from)
            from = c->start_ms;
        if (!ran || c->start_ms > to)
            to = c->start_ms;
        peaks[ran++] = c->max_rss_kb;
        if (c->max_rss_kb > peak_max)
            peak_max = c->max_rss_kb;
    }
    char from_s[40], to_s[40], since_s[40];
    iso(in->from_ms, since_s);
    iso(ran ? from : in->from_ms, from_s);
    iso(ran ? to : in->to_ms, to_s);
    json_t *evidence = json_pack(
        "{sI ss ss ss sI sI sI sI sb}", "records", (json_int_t)ran, "since", since_s, "from",
        from_s, "to", to_s, "successes", (json_int_t)successes, "errors", (json_int_t)errors,
        "ooms", (json_int_t)ooms, "timeouts", (json_int_t)timeouts, "truncated", in->truncated);
    double days = (double)(in->to_ms - in->from_ms) / 86400000.0;
    if (!ran) {
        free(peaks);
        buf_t msg = BUF_INIT;
        buf_addf(&msg, "no calls of %s in the last %.0f days: nothing to advise from yet",
                 in->function, days);
        json_t *out =
            json_pack("{ss si ss ss% so}", "function", in->function, "memory_mb", in->memory_mb,
                      "confidence", "none", "message", msg.data, msg.len, "evidence", evidence);
        buf_release(&msg);
        return out;
    }

    qsort(peaks, ran, sizeof *peaks, cmp_i64);
    double p99_mb = (double)percentile(peaks, ran, 0.99) / 1024.0;
    free(peaks);
    double used = p99_mb / in->memory_mb;
    const char *verdict = ooms || used > WATCH_RISK_RATIO ? "oom_risk"
                          : used < WATCH_WASTE_RATIO      ? "waste"
                                                          : "ok";
    cpu_use_t u;
    cpu_measure(in, &u);

    /* The memory the peak needs, with headroom; after an OOM the peak
     * says only that the limit was reached, so at least twice it. */
    int floor_mb = round_step(p99_mb / WATCH_TARGET_RATIO);
    if (ooms && floor_mb < round_step(2.0 * oom_mb))
        floor_mb = round_step(2.0 * oom_mb);
    int rec;
    if (u.bound)
        rec = best_cpu_size(in, &u, floor_mb);
    else if (!strcmp(verdict, "ok"))
        rec = in->memory_mb;
    else
        rec = floor_mb;

    const char *confidence = ran < WATCH_ADVICE_MIN_CALLS    ? "low"
                             : ran < WATCH_ADVICE_HIGH_CALLS ? "medium"
                                                             : "high";
    buf_t msg = BUF_INIT;
    if (!strcmp(verdict, "oom_risk")) {
        if (ooms)
            buf_addf(&msg, "%zu of %zu calls ran out of memory at %d MB", ooms, ran, oom_mb);
        else
            buf_addf(&msg,
                     "the p99 memory peak (%.0f MB) is %.0f%% of memory_mb %d: little "
                     "headroom before an out-of-memory kill",
                     p99_mb, used * 100, in->memory_mb);
    } else if (!strcmp(verdict, "waste")) {
        buf_addf(&msg, "the p99 memory peak (%.0f MB) is only %.0f%% of memory_mb %d", p99_mb,
                 used * 100, in->memory_mb);
    } else {
        buf_addf(&msg, "the p99 memory peak (%.0f MB) is %.0f%% of memory_mb %d", p99_mb,
                 used * 100, in->memory_mb);
    }
    if (u.bound)
        buf_addf(&msg,
                 "; CPU-bound (it used %.0f%% of its CPU share), so more memory runs it "
                 "faster",
                 (u.ratio > 1 ? 1 : u.ratio) * 100);
    if (timeouts)
        buf_addf(&msg, "; %zu calls timed out", timeouts);
    if (ran < WATCH_ADVICE_MIN_CALLS) {
        buf_addf(&msg,
                 "; unsure: only %zu calls in the last %.0f days, at least %d are needed "
                 "for a confident answer",
                 ran, days, WATCH_ADVICE_MIN_CALLS);
        if (rec < in->memory_mb) {
            buf_addf(&msg, ", so a smaller size (%d MB) is not recommended yet", rec);
            rec = in->memory_mb;
        }
    }
    const char *change = rec > in->memory_mb   ? "increase"
                         : rec < in->memory_mb ? "decrease"
                                               : "none";
    if (rec != in->memory_mb)
        buf_addf(&msg, "; recommended: %d MB", rec);
    else
        buf_addf(&msg, "; recommended: keep %d MB", rec);

    json_t *memory = json_pack("{sf sf sf ss}", "peak_p99_mb", round(p99_mb * 10) / 10,
                               "peak_max_mb", round((double)peak_max / 1024.0 * 10) / 10,
                               "used_ratio", round(used * 1000) / 1000, "verdict", verdict);
    json_t *cpu =
        json_pack("{sf sf sf sf sb sf}", "share",
                  round(watch_cpu_share(in->memory_mb, in->cores) * 1000) / 1000, "cpu_ms_per_call",
                  round(u.cpu_ms * 100) / 100, "duration_ms_per_call",
                  round(u.duration_ms * 100) / 100, "used_ratio", round(u.ratio * 1000) / 1000,
                  "cpu_bound", u.bound, "parallelism", round(u.parallelism * 100) / 100);
    json_t *recommended = size_json(in, &u, rec);
    json_object_set_new(recommended, "change", json_string(change));
    json_t *out =
        json_pack("{ss si ss ss% so so so so ss so}", "function", in->function, "memory_mb",
                  in->memory_mb, "confidence", confidence, "message", msg.data, msg.len, "memory",
                  memory, "cpu", cpu, "current", size_json(in, &u, in->memory_mb), "recommended",
                  recommended, "currency", in->prices->currency, "evidence", evidence);
    buf_release(&msg);
    return out;
}
