/* Keep-alive that learns: the hybrid histogram policy and its live set. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "watch/keepalive.h"

void keepalive_hist_add(keepalive_hist_t *h, const keepalive_config_t *cfg, uint64_t idle_ms)
{
    if (h->n >= KEEPALIVE_DECAY_AT) {
        uint32_t n = 0;
        for (int i = 0; i < KEEPALIVE_BINS; i++)
            n += h->bins[i] /= 2;
        n += h->out_of_range /= 2;
        h->n = n;
    }
    memmove(h->recent_ms + 1, h->recent_ms, sizeof h->recent_ms - sizeof h->recent_ms[0]);
    h->recent_ms[0] = idle_ms;
    uint64_t bin = idle_ms / cfg->bin_ms;
    if (bin < KEEPALIVE_BINS)
        h->bins[bin]++;
    else
        h->out_of_range++;
    h->n++;
}

double keepalive_hist_cv(const keepalive_hist_t *h)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < KEEPALIVE_BINS; i++) {
        sum += h->bins[i];
        sq += (double)h->bins[i] * h->bins[i];
    }
    if (sum <= 0)
        return 0;
    double mean = sum / KEEPALIVE_BINS;
    double var = sq / KEEPALIVE_BINS - mean * mean;
    return var > 0 ? sqrt(var) / mean : 0;
}

/* The bin (KEEPALIVE_BINS: out of range) holding the idle time at
 * percentile pct of all of h's. */
static int percentile_bin(const keepalive_hist_t *h, double pct)
{
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < KEEPALIVE_BINS; i++) {
        seen += h->bins[i];
        if (seen >= rank)
            return i;
    }
    return KEEPALIVE_BINS;
}

/* The bin, tail or later, whose end makes the cheapest keep-alive end
 * for h's idle times: each idle time that ends before it costs its
 * length (nearly the same wherever the end is past it), each one past it
 * the end's length and a cold start (KEEPALIVE_COLD_COST_BINS). Moving
 * the end one bin on spares the next bin's idle times their cold start
 * and costs every later one (out of range too) a bin more. The first
 * cheapest wins. */
static int cheapest_end_bin(const keepalive_hist_t *h, int tail)
{
    double later = h->out_of_range; /* idle times past the end's bin */
    for (int i = tail + 1; i < KEEPALIVE_BINS; i++)
        later += h->bins[i];
    double cost = 0, best_cost = 0; /* relative to the end at the tail */
    int best = tail;
    for (int e = tail + 1; e < KEEPALIVE_BINS && later > 0; e++) {
        later -= h->bins[e];
        /* The bin's idle times: a cold start and (e + C) bins before,
         * about e + 0.5 bins now; every later one a bin more. */
        cost += later - (double)h->bins[e] * (KEEPALIVE_COLD_COST_BINS - 0.5);
        if (cost < best_cost) {
            best_cost = cost;
            best = e;
        }
    }
    return best;
}

static uint64_t at_most(uint64_t v, uint64_t max)
{
    return v < max ? v : max;
}

static void fallback(keepalive_window_t *out, uint64_t keep_alive_ms, const keepalive_config_t *cfg)
{
    out->basis = KEEPALIVE_FALLBACK;
    out->prewarm_ms = 0;
    out->keep_alive_ms = at_most(keep_alive_ms ? keep_alive_ms : 1, cfg->max_keep_alive_ms);
}

void keepalive_decide(const keepalive_hist_t *h, const keepalive_config_t *cfg,
                      keepalive_window_t *out)
{
    memset(out, 0, sizeof *out);
    uint64_t bin = cfg->bin_ms;
    if (h->n == 0) {
        /* Called once: nothing yet says when the next call comes, and
         * most such functions are rare ones, for which a long keep-alive
         * is memory held for nothing. */
        fallback(out, bin, cfg);
        return;
    }
    if (h->n < KEEPALIVE_MIN_SAMPLES) {
        /* Two idle times that agree: the next is expected like them (a
         * timer's period is known after its third call, long before its
         * fourth). An instance waits from the shorter one's bin to the
         * end of the longer one's, so a guess that is wrong holds a bin
         * or two of memory. */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (uint32_t i = 0; i < h->n; i++) {
            uint64_t b = h->recent_ms[i] / bin;
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
        }
        fallback(out, bin, cfg);
        /* One idle time, or two that disagree (by more than a bin and
         * the margin), is no rhythm yet: a rare function's, which a
         * window spanning them would hold warm for hours. */
        if (hi >= KEEPALIVE_BINS || h->n < 2 ||
            (hi - lo > 1 && (double)(hi - lo) > KEEPALIVE_MARGIN * (double)hi))
            return;
        out->prewarm_ms = (uint64_t)((double)lo * (double)bin * (1 - KEEPALIVE_MARGIN));
        uint64_t end = (uint64_t)((double)(hi + 1) * (double)bin * (1 + KEEPALIVE_MARGIN));
        out->keep_alive_ms = at_most(end - out->prewarm_ms, cfg->max_keep_alive_ms);
        return;
    }
    if ((double)h->out_of_range > KEEPALIVE_MAX_OUT_OF_RANGE * h->n) {
        fallback(out, bin, cfg);
        return;
    }
    if (keepalive_hist_cv(h) < KEEPALIVE_MIN_CV) {
        fallback(out, cfg->max_keep_alive_ms, cfg);
        return;
    }
    int head = percentile_bin(h, KEEPALIVE_HEAD_PERCENTILE);
    int tail = percentile_bin(h, KEEPALIVE_TAIL_PERCENTILE);
    out->basis = KEEPALIVE_HISTOGRAM;
    /* A head in the first bin, or out of range (more than 95 % of calls
     * come later than the histogram reaches: not here, the share is
     * bounded above), means no pre-warm: stay warm after the call. */
    if (head > 0 && head < KEEPALIVE_BINS)
        out->prewarm_ms = (uint64_t)((double)head * (double)bin * (1 - KEEPALIVE_MARGIN));
    if (tail < KEEPALIVE_BINS)
        tail = cheapest_end_bin(h, tail);
    uint64_t end = tail >= KEEPALIVE_BINS
                       ? cfg->max_keep_alive_ms + out->prewarm_ms
                       : (uint64_t)((double)(tail + 1) * (double)bin * (1 + KEEPALIVE_MARGIN));
    out->keep_alive_ms = at_most(end - out->prewarm_ms, cfg->max_keep_alive_ms);
}

const char *keepalive_basis_name(keepalive_basis_t b)
{
    return b == KEEPALIVE_HISTOGRAM ? "histogram" : "fallback";
}

/* ---- the live set ---------------------------------------------------------- */

struct keepalive_set {
    keepalive_config_t cfg;
    map_t hists; /* function → keepalive_hist_t */
};

keepalive_set_t *keepalive_set_new(const keepalive_config_t *cfg)
{
    keepalive_set_t *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (!s->cfg.bin_ms)
        s->cfg.bin_ms = 60000;
    return s;
}

void keepalive_set_free(keepalive_set_t *s)
{
    if (!s)
        return;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&s->hists, &it, &key, &value);)
        free(value);
    map_release(&s->hists);
    free(s);
}

void keepalive_set_observe(keepalive_set_t *s, const char *function, uint64_t idle_ms)
{
    keepalive_hist_t *h = map_get(&s->hists, function);
    if (!h) {
        h = xcalloc(1, sizeof *h);
        map_put(&s->hists, function, h);
    }
    keepalive_hist_add(h, &s->cfg, idle_ms);
}

void keepalive_set_decide(keepalive_set_t *s, const char *function, keepalive_window_t *out,
                          uint32_t *samples)
{
    static const keepalive_hist_t none;
    const keepalive_hist_t *h = map_get(&s->hists, function);
    if (!h)
        h = &none;
    keepalive_decide(h, &s->cfg, out);
    if (samples)
        *samples = h->n;
}

void keepalive_set_forget(keepalive_set_t *s, const char *function)
{
    free(map_remove(&s->hists, function));
}

static void on_observe(void *ud, const char *function, uint64_t idle_ms)
{
    keepalive_set_observe(ud, function, idle_ms);
}

static void on_decide(void *ud, const char *function, exec_keep_warm_t *out)
{
    keepalive_window_t w;
    uint32_t samples;
    keepalive_set_decide(ud, function, &w, &samples);
    out->keep_alive_ms = w.keep_alive_ms;
    out->prewarm_ms = w.prewarm_ms;
    out->samples = samples;
    out->basis = keepalive_basis_name(w.basis);
}

static void on_forget(void *ud, const char *function)
{
    keepalive_set_forget(ud, function);
}

void keepalive_set_attach(keepalive_set_t *s, struct exec *ex)
{
    static const exec_keep_warm_policy_t policy = {
        .observe = on_observe, .decide = on_decide, .forget = on_forget};
    exec_set_keep_warm(ex, &policy, s);
}
