/* Alert rules' pure half (watch/alert.h): settings, windows, the state
 * machine and the Alertmanager document. */
#include "watch/alert.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const metric_names[ALERT_METRICS] = {
    [ALERT_ERROR_RATE] = "error_rate",
    [ALERT_TIMEOUT_RATE] = "timeout_rate",
    [ALERT_THROTTLE_RATE] = "throttle_rate",
    [ALERT_P50_DURATION_MS] = "p50_duration_ms",
    [ALERT_P99_DURATION_MS] = "p99_duration_ms",
    [ALERT_COLD_START_RATE] = "cold_start_rate",
    [ALERT_INVOCATIONS] = "invocations",
    [ALERT_ASYNC_QUEUE_DEPTH] = "async_queue_depth",
    [ALERT_ASYNC_OLDEST_AGE_S] = "async_oldest_age_s",
    [ALERT_DEAD_LETTERS] = "dead_letters",
    [ALERT_BUDGET_USED] = "budget_used",
    [ALERT_ABSENT] = "absent",
};

static bool name_chars(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    char set[80];
    snprintf(set, sizeof set, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789%s",
             extra);
    return n >= 1 && n <= max && strspn(s, set) == n;
}

bool alert_valid_name(const char *s)
{
    return s && name_chars(s, ALERT_NAME_MAX, "_-");
}

const char *alert_metric_name(alert_metric_t m)
{
    return (unsigned)m < ALERT_METRICS ? metric_names[m] : "?";
}

int alert_metric_of(const char *s)
{
    for (int i = 0; s && i < ALERT_METRICS; i++)
        if (!strcmp(s, metric_names[i]))
            return i;
    return -1;
}

bool alert_metric_windowed(alert_metric_t m)
{
    return m != ALERT_ASYNC_QUEUE_DEPTH && m != ALERT_ASYNC_OLDEST_AGE_S &&
           m != ALERT_DEAD_LETTERS && m != ALERT_BUDGET_USED;
}

static bool is_rate(alert_metric_t m)
{
    return m == ALERT_ERROR_RATE || m == ALERT_TIMEOUT_RATE || m == ALERT_THROTTLE_RATE ||
           m == ALERT_COLD_START_RATE;
}

#define FIELDS "tenant, function, budget, metric, op, threshold, window_s, for_s, severity, notify"

typedef struct seen {
    bool function, budget, metric, op, threshold;
} seen_t;

static int parse_seconds(const json_t *v, const char *field, unsigned lo, unsigned hi,
                         unsigned *out, mf_error_t *err)
{
    json_int_t x = json_integer_value(v);
    if (!json_is_integer(v) || x < lo || x > hi)
        return mf_error_plain(err, EINVAL, "%s: must be a whole number of seconds, %u to %u", field,
                              lo, hi);
    *out = (unsigned)x;
    return 0;
}

static int parse_field(const char *key, const json_t *v, const char *name, alert_rule_t *r,
                       seen_t *seen, mf_error_t *err)
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
        snprintf(r->tenant, sizeof r->tenant, "%s", s);
        return 0;
    }
    if (!strcmp(key, "function")) {
        if (!s || (strcmp(s, "*") && !name_chars(s, TENANT_LOCAL_MAX, "_-")))
            return mf_error_plain(err, EINVAL,
                                  "function: must be a function's name, [A-Za-z0-9_-]{1,%d}, or "
                                  "\"*\" (each function of the tenant)",
                                  TENANT_LOCAL_MAX);
        snprintf(r->function, sizeof r->function, "%s", s);
        seen->function = true;
        return 0;
    }
    if (!strcmp(key, "budget")) {
        if (!s || !name_chars(s, TENANT_LOCAL_MAX, "_-"))
            return mf_error_plain(err, EINVAL,
                                  "budget: must be a budget's name, [A-Za-z0-9_-]{1,%d}",
                                  TENANT_LOCAL_MAX);
        snprintf(r->budget, sizeof r->budget, "%s", s);
        seen->budget = true;
        return 0;
    }
    if (!strcmp(key, "metric")) {
        int m = alert_metric_of(s);
        if (m < 0)
            return mf_error_plain(err, EINVAL,
                                  "metric: must be one of error_rate, timeout_rate, throttle_rate, "
                                  "p50_duration_ms, p99_duration_ms, cold_start_rate, invocations, "
                                  "async_queue_depth, async_oldest_age_s, dead_letters, "
                                  "budget_used, absent");
        r->metric = m;
        seen->metric = true;
        return 0;
    }
    if (!strcmp(key, "op")) {
        if (!s || (strcmp(s, ">") && strcmp(s, "<")))
            return mf_error_plain(err, EINVAL, "op: must be \">\" or \"<\"");
        r->op = s[0];
        seen->op = true;
        return 0;
    }
    if (!strcmp(key, "threshold")) {
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || fabs(x) > 1e15)
            return mf_error_plain(err, EINVAL, "threshold: must be a number");
        r->threshold = x;
        seen->threshold = true;
        return 0;
    }
    if (!strcmp(key, "window_s"))
        return parse_seconds(v, "window_s", 1, ALERT_WINDOW_MAX_S, &r->window_s, err);
    if (!strcmp(key, "for_s"))
        return parse_seconds(v, "for_s", 0, ALERT_FOR_MAX_S, &r->for_s, err);
    if (!strcmp(key, "severity")) {
        if (!s || !name_chars(s, ALERT_SEVERITY_MAX, "_-"))
            return mf_error_plain(err, EINVAL,
                                  "severity: must match [A-Za-z0-9_-]{1,%d} (critical, warning, "
                                  "info, …)",
                                  ALERT_SEVERITY_MAX);
        snprintf(r->severity, sizeof r->severity, "%s", s);
        return 0;
    }
    if (!strcmp(key, "notify"))
        return notify_parse(v, "notify", &r->notify, err);
    return mf_error_plain(err, EINVAL, "%.64s: not an alert rule's field (" FIELDS ")", key);
}

static int check(alert_rule_t *r, const seen_t *seen, mf_error_t *err)
{
    if (!seen->metric)
        return mf_error_plain(err, EINVAL, "metric: required");
    if (r->metric == ALERT_BUDGET_USED) {
        if (seen->function)
            return mf_error_plain(
                err, EINVAL, "function: budget_used watches a budget: give \"budget\" instead");
        if (!seen->budget)
            return mf_error_plain(err, EINVAL,
                                  "budget: required for budget_used (a budget's name)");
    } else {
        if (seen->budget)
            return mf_error_plain(err, EINVAL, "budget: only budget_used watches a budget");
        if (!seen->function)
            return mf_error_plain(err, EINVAL,
                                  "function: required (a function's name, or \"*\" for each)");
    }
    if (r->metric == ALERT_ABSENT) {
        if (seen->op || seen->threshold)
            return mf_error_plain(err, EINVAL,
                                  "%s: absent takes none (it fires when no call succeeded in the "
                                  "window)",
                                  seen->op ? "op" : "threshold");
        r->op = '<';
        r->threshold = 1;
        return 0;
    }
    if (!seen->op)
        return mf_error_plain(err, EINVAL, "op: required (\">\" or \"<\")");
    if (!seen->threshold)
        return mf_error_plain(err, EINVAL, "threshold: required (a number)");
    if (is_rate(r->metric) && (r->threshold < 0 || r->threshold > 1))
        return mf_error_plain(err, EINVAL,
                              "threshold: %s is a fraction of the calls, 0 to 1 (0.05 is 5%%)",
                              alert_metric_name(r->metric));
    return 0;
}

int alert_rule_parse(const char *text, size_t len, const char *name, const char *default_tenant,
                     alert_rule_t *out, mf_error_t *err)
{
    if (!alert_valid_name(name))
        return mf_error_plain(err, EINVAL, "name: must match [A-Za-z0-9_-]{1,%d}", ALERT_NAME_MAX);
    if (len > ALERT_BODY_MAX)
        return mf_error_plain(err, EINVAL, "body: a rule is at most %d bytes of JSON",
                              ALERT_BODY_MAX);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        int r = doc ? mf_error_plain(err, EINVAL, "body: must be a JSON object")
                    : mf_error_plain(err, EINVAL, "body: not JSON: %s (line %d, column %d)",
                                     jerr.text, jerr.line, jerr.column);
        json_decref(doc);
        return r;
    }
    alert_rule_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->tenant, sizeof r->tenant, "%s", default_tenant ? default_tenant : TENANT_DEFAULT);
    snprintf(r->severity, sizeof r->severity, "warning");
    r->window_s = 300;
    seen_t seen = {0};
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if ((rc = parse_field(key, v, name, r, &seen, err)) < 0)
            break;
    }
    json_decref(doc);
    if (rc == 0)
        rc = check(r, &seen, err);
    if (rc == 0)
        *out = *r;
    free(r);
    return rc;
}

json_t *alert_rule_json(const alert_rule_t *r)
{
    json_t *doc =
        json_pack("{ss ss ss sI sI ss so}", "name", r->name, "tenant", r->tenant, "metric",
                  alert_metric_name(r->metric), "window_s", (json_int_t)r->window_s, "for_s",
                  (json_int_t)r->for_s, "severity", r->severity, "notify", notify_json(&r->notify));
    if (r->metric == ALERT_BUDGET_USED)
        json_object_set_new(doc, "budget", json_string(r->budget));
    else
        json_object_set_new(doc, "function", json_string(r->function));
    if (r->metric != ALERT_ABSENT) {
        char op[2] = {r->op, 0};
        json_object_set_new(doc, "op", json_string(op));
        json_object_set_new(doc, "threshold", json_real(r->threshold));
    }
    return doc;
}

bool alert_rule_same(const alert_rule_t *a, const alert_rule_t *b)
{
    json_t *x = alert_rule_json(a), *y = alert_rule_json(b);
    bool same = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

bool alert_breaches(const alert_rule_t *r, double value)
{
    return r->op == '>' ? value > r->threshold : value < r->threshold;
}

/* ---- windows ------------------------------------------------------------ */

void alert_window_init(alert_window_t *w, int64_t now_ms)
{
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < ALERT_FINE_N; i++)
        w->fine[i].t = -1;
    for (size_t i = 0; i < ALERT_COARSE_N; i++)
        w->coarse[i].t = -1;
    w->since_ms = now_ms;
}

int alert_hist_bin(double ms)
{
    if (!(ms >= 1))
        return 0;
    int b = 1 + (int)floor(ALERT_HIST_PER_DOUBLING * log2(ms));
    return b >= ALERT_HIST_BINS ? ALERT_HIST_BINS - 1 : b;
}

double alert_hist_upper(int bin)
{
    return pow(2.0, (double)bin / ALERT_HIST_PER_DOUBLING);
}

static void bucket_add(alert_bucket_t *b, int64_t t, const char *status, int bin, bool cold)
{
    if (b->t != t) {
        memset(b, 0, sizeof *b);
        b->t = t;
    }
    b->calls++;
    if (!strcmp(status, "throttled")) {
        b->throttles++;
        return;
    }
    b->ran++;
    if (!strcmp(status, "success"))
        b->successes++;
    else
        b->errors++;
    if (!strcmp(status, "timeout"))
        b->timeouts++;
    if (cold)
        b->colds++;
    b->hist[bin]++;
}

void alert_window_add(alert_window_t *w, int64_t at_ms, const char *status, double duration_ms,
                      bool cold)
{
    if (strcmp(status, "success") && strcmp(status, "error") && strcmp(status, "timeout") &&
        strcmp(status, "oom") && strcmp(status, "throttled"))
        return; /* not finished */
    if (at_ms < 0)
        at_ms = 0;
    int64_t sec = at_ms / 1000, min = sec / 60;
    int bin = alert_hist_bin(duration_ms);
    bucket_add(&w->fine[sec % ALERT_FINE_N], sec, status, bin, cold);
    bucket_add(&w->coarse[min % ALERT_COARSE_N], min, status, bin, cold);
}

static void counts_add(alert_counts_t *c, const alert_bucket_t *b)
{
    c->calls += b->calls;
    c->ran += b->ran;
    c->successes += b->successes;
    c->errors += b->errors;
    c->timeouts += b->timeouts;
    c->throttles += b->throttles;
    c->colds += b->colds;
    for (size_t i = 0; i < ALERT_HIST_BINS; i++)
        c->hist[i] += b->hist[i];
}

void alert_window_sum(const alert_window_t *w, int64_t now_ms, unsigned window_s,
                      alert_counts_t *out)
{
    memset(out, 0, sizeof *out);
    if (window_s > ALERT_WINDOW_MAX_S)
        window_s = ALERT_WINDOW_MAX_S;
    int64_t sec = now_ms / 1000;
    if (window_s <= ALERT_FINE_N) {
        for (int64_t s = sec - window_s + 1; s <= sec; s++) {
            const alert_bucket_t *b = &w->fine[((s % ALERT_FINE_N) + ALERT_FINE_N) % ALERT_FINE_N];
            if (b->t == s)
                counts_add(out, b);
        }
    } else {
        int64_t min = sec / 60, k = (window_s + 59) / 60;
        for (int64_t m = min - k; m <= min; m++) {
            const alert_bucket_t *b =
                &w->coarse[((m % ALERT_COARSE_N) + ALERT_COARSE_N) % ALERT_COARSE_N];
            if (b->t == m)
                counts_add(out, b);
        }
    }
    out->full = now_ms - w->since_ms >= (int64_t)window_s * 1000;
}

bool alert_quantile(const alert_counts_t *c, double q, double *out)
{
    uint64_t total = 0;
    for (size_t i = 0; i < ALERT_HIST_BINS; i++)
        total += c->hist[i];
    if (!total)
        return false;
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (int i = 0; i < ALERT_HIST_BINS; i++) {
        cum += c->hist[i];
        if (cum >= rank) {
            *out = alert_hist_upper(i);
            return true;
        }
    }
    *out = alert_hist_upper(ALERT_HIST_BINS - 1);
    return true;
}

static bool ratio(uint64_t part, uint64_t whole, double *out)
{
    if (!whole)
        return false;
    *out = (double)part / (double)whole;
    return true;
}

bool alert_windowed_value(alert_metric_t m, const alert_counts_t *c, double *out)
{
    switch (m) {
    case ALERT_ERROR_RATE: return ratio(c->errors, c->ran, out);
    case ALERT_TIMEOUT_RATE: return ratio(c->timeouts, c->ran, out);
    case ALERT_THROTTLE_RATE: return ratio(c->throttles, c->calls, out);
    case ALERT_COLD_START_RATE: return ratio(c->colds, c->ran, out);
    case ALERT_P50_DURATION_MS: return alert_quantile(c, 0.5, out);
    case ALERT_P99_DURATION_MS: return alert_quantile(c, 0.99, out);
    case ALERT_INVOCATIONS: *out = (double)c->ran; return c->full || c->ran > 0;
    case ALERT_ABSENT: *out = (double)c->successes; return c->full || c->successes > 0;
    default: return false;
    }
}

/* ---- the state machine -------------------------------------------------- */

static const char *const state_names[] = {"ok", "pending", "firing", "resolved"};

const char *alert_state_name(alert_state_t s)
{
    return (unsigned)s < 4 ? state_names[s] : "?";
}

int alert_state_of(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, state_names[i]))
            return i;
    return -1;
}

static int move(alert_series_t *s, alert_state_t to, int64_t now)
{
    s->state = to;
    s->since_ms = now;
    return to;
}

int alert_series_step(alert_series_t *s, const alert_rule_t *r, bool has_value, double value,
                      int64_t now_ms)
{
    s->has_value = has_value;
    s->value = has_value ? value : 0;
    if (!has_value)
        return -1;
    bool breach = alert_breaches(r, value);
    switch (s->state) {
    case ALERT_OK:
    case ALERT_RESOLVED:
        if (!breach)
            return -1;
        s->active_ms = now_ms;
        return move(s, ALERT_PENDING, now_ms);
    case ALERT_PENDING:
        if (!breach)
            return move(s, ALERT_OK, now_ms);
        if (now_ms - s->active_ms < (int64_t)r->for_s * 1000)
            return -1;
        s->fired_ms = now_ms;
        return move(s, ALERT_FIRING, now_ms);
    case ALERT_FIRING:
        if (breach)
            return -1;
        s->resolved_ms = now_ms;
        return move(s, ALERT_RESOLVED, now_ms);
    }
    return -1;
}

/* ---- the document ------------------------------------------------------- */

void alert_time(int64_t ms, char *out, size_t size)
{
    if (ms <= 0) {
        snprintf(out, size, "0001-01-01T00:00:00Z");
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv_add(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_sep(uint64_t h)
{
    h ^= 255;
    return h * FNV_PRIME;
}

void alert_fingerprint(const json_t *labels, char out[17])
{
    size_t n = json_object_size(labels);
    const char **names = calloc(n + 1, sizeof *names);
    if (!names)
        abort();
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)labels, key, v) names[k++] = key;
    qsort(names, k, sizeof *names, by_string);
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < k; i++) {
        const char *val = json_string_value(json_object_get(labels, names[i]));
        h = fnv_sep(fnv_add(h, names[i]));
        h = fnv_sep(fnv_add(h, val ? val : ""));
    }
    free(names);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

json_t *alert_document(const alert_notice_t *n, const char *receiver, const char *external_url)
{
    char starts[40], ends[40], fp[17];
    alert_time(n->starts_ms, starts, sizeof starts);
    alert_time(n->ends_ms, ends, sizeof ends);
    alert_fingerprint(n->labels, fp);
    const char *alertname = json_string_value(json_object_get(n->labels, "alertname"));
    if (!alertname)
        alertname = "";
    json_t *annotations = json_pack("{ss ss}", "summary", n->summary ? n->summary : "",
                                    "description", n->description ? n->description : "");
    char *group_key = NULL;
    if (asprintf(&group_key, "{}:{alertname=\"%s\"}", alertname) < 0)
        abort();
    json_t *alert =
        json_pack("{ss sO sO ss ss ss ss}", "status", n->status, "labels", n->labels, "annotations",
                  annotations, "startsAt", starts, "endsAt", ends, "generatorURL",
                  n->generator_url ? n->generator_url : "", "fingerprint", fp);
    json_t *doc = json_pack(
        "{ss ss ss ss so sO sO ss si s[o]}", "version", "4", "groupKey", group_key, "status",
        n->status, "receiver", receiver, "groupLabels", json_pack("{ss}", "alertname", alertname),
        "commonLabels", n->labels, "commonAnnotations", annotations, "externalURL",
        external_url ? external_url : "", "truncatedAlerts", 0, "alerts", alert);
    free(group_key);
    json_decref(annotations);
    json_decref(n->labels);
    return doc;
}
