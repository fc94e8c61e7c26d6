#include "obs/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define MAX_LABELS 4

static const double default_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10 };

typedef struct series {
    struct series *next;
    char *values[MAX_LABELS];
    double value;        /* counter or gauge; the sum for a histogram */
    uint64_t count;      /* histogram */
    uint64_t *buckets;   /* histogram: non-cumulative counts, nbuckets + 1 */
} series_t;

struct metrics_family {
    metrics_family_t *next;
    metrics_type_t type;
    char *name;
    char *help;
    const char *labels[MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    series_t *series;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_COLLECTORS 8
static struct {
    void (*fn)(void *ud);
    void *ud;
} collectors[MAX_COLLECTORS];
static size_t ncollectors;

void metrics_add_collector(void (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&metrics_lock);
    if (ncollectors < MAX_COLLECTORS) {
        collectors[ncollectors].fn = fn;
        collectors[ncollectors].ud = ud;
        ncollectors++;
    }
    pthread_mutex_unlock(&metrics_lock);
}
static metrics_family_t *families, **families_tail = &families;

metrics_family_t *metrics_family_new(metrics_type_t type, const char *name, const char *help,
                                     const char *const *label_names, const double *buckets,
                                     size_t nbuckets)
{
    metrics_family_t *f = xcalloc(1, sizeof *f);
    f->type = type;
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    for (; label_names && label_names[f->nlabels] && f->nlabels < MAX_LABELS; f->nlabels++)
        f->labels[f->nlabels] = label_names[f->nlabels];
    if (type == METRICS_HISTOGRAM) {
        if (!buckets) {
            buckets = default_buckets;
            nbuckets = sizeof default_buckets / sizeof default_buckets[0];
        }
        f->bounds = xmalloc(nbuckets * sizeof *f->bounds);
        memcpy(f->bounds, buckets, nbuckets * sizeof *f->bounds);
        f->nbounds = nbuckets;
    }
    pthread_mutex_lock(&metrics_lock);
    *families_tail = f;
    families_tail = &f->next;
    pthread_mutex_unlock(&metrics_lock);
    return f;
}

/* Finds or creates the series; called with the lock held. */
static series_t *series_get(metrics_family_t *f, const char *const *values, bool create)
{
    series_t **pp = &f->series;
    for (; *pp; pp = &(*pp)->next) {
        size_t i = 0;
        while (i < f->nlabels && !strcmp((*pp)->values[i], values[i]))
            i++;
        if (i == f->nlabels)
            return *pp;
    }
    if (!create)
        return NULL;
    series_t *s = xcalloc(1, sizeof *s);
    for (size_t i = 0; i < f->nlabels; i++)
        s->values[i] = xstrdup(values[i]);
    if (f->type == METRICS_HISTOGRAM)
        s->buckets = xcalloc(f->nbounds + 1, sizeof *s->buckets);
    *pp = s;
    return s;
}

void metrics_inc(metrics_family_t *f, const char *const *label_values, double v)
{
    pthread_mutex_lock(&metrics_lock);
    series_get(f, label_values, true)->value += v;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_set(metrics_family_t *f, const char *const *label_values, double v)
{
    pthread_mutex_lock(&metrics_lock);
    series_get(f, label_values, true)->value = v;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_observe(metrics_family_t *f, const char *const *label_values, double v)
{
    size_t b = 0;
    while (b < f->nbounds && v > f->bounds[b])
        b++;
    pthread_mutex_lock(&metrics_lock);
    series_t *s = series_get(f, label_values, true);
    s->value += v;
    s->count++;
    s->buckets[b]++;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_set_histogram(metrics_family_t *f, const char *const *label_values,
                           const uint64_t *bucket_counts, double sum)
{
    if (f->type != METRICS_HISTOGRAM)
        return;
    pthread_mutex_lock(&metrics_lock);
    series_t *s = series_get(f, label_values, true);
    uint64_t n = 0;
    for (size_t b = 0; b <= f->nbounds; b++)
        n += s->buckets[b] = bucket_counts[b];
    s->count = n;
    s->value = sum;
    pthread_mutex_unlock(&metrics_lock);
}

static void series_free(series_t *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->buckets);
    free(s);
}

void metrics_remove(metrics_family_t *f, const char *const *label_values)
{
    pthread_mutex_lock(&metrics_lock);
    for (series_t **pp = &f->series; *pp; pp = &(*pp)->next) {
        size_t i = 0;
        while (i < f->nlabels && !strcmp((*pp)->values[i], label_values[i]))
            i++;
        if (i == f->nlabels) {
            series_t *s = *pp;
            *pp = s->next;
            series_free(s, f->nlabels);
            break;
        }
    }
    pthread_mutex_unlock(&metrics_lock);
}

/* Label values are escaped as Prometheus asks: backslash, quote, newline. */
static void add_label_value(buf_t *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_addch(out, '\\'), buf_addch(out, *v);
        else if (*v == '\n')
            buf_adds(out, "\\n");
        else
            buf_addch(out, *v);
    }
}

static void add_labels(buf_t *out, const metrics_family_t *f, const series_t *s,
                       const char *le)
{
    if (!f->nlabels && !le)
        return;
    buf_addch(out, '{');
    for (size_t i = 0; i < f->nlabels; i++) {
        buf_addf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        add_label_value(out, s->values[i]);
        buf_addch(out, '"');
    }
    if (le)
        buf_addf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    buf_addch(out, '}');
}

static void add_number(buf_t *out, double v)
{
    if (isinf(v))
        buf_adds(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_addf(out, "%.0f", v);
    else
        buf_addf(out, "%.9g", v);
}

void metrics_render(buf_t *out)
{
    static const char *const type_names[] = { "counter", "gauge", "histogram" };
    /* Outside the lock: a collector sets gauges, which takes it. */
    for (size_t i = 0; i < ncollectors; i++)
        collectors[i].fn(collectors[i].ud);
    pthread_mutex_lock(&metrics_lock);
    for (metrics_family_t *f = families; f; f = f->next) {
        buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                 type_names[f->type]);
        for (series_t *s = f->series; s; s = s->next) {
            if (f->type != METRICS_HISTOGRAM) {
                buf_adds(out, f->name);
                add_labels(out, f, s, NULL);
                buf_addch(out, ' ');
                add_number(out, s->value);
                buf_addch(out, '\n');
                continue;
            }
            uint64_t cum = 0;
            for (size_t b = 0; b <= f->nbounds; b++) {
                char le[32];
                cum += s->buckets[b];
                if (b < f->nbounds)
                    snprintf(le, sizeof le, "%g", f->bounds[b]);
                else
                    snprintf(le, sizeof le, "+Inf");
                buf_addf(out, "%s_bucket", f->name);
                add_labels(out, f, s, le);
                buf_addf(out, " %llu\n", (unsigned long long)cum);
            }
            buf_addf(out, "%s_sum", f->name);
            add_labels(out, f, s, NULL);
            buf_addch(out, ' ');
            add_number(out, s->value);
            buf_addf(out, "\n%s_count", f->name);
            add_labels(out, f, s, NULL);
            buf_addf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_free_all(void)
{
    pthread_mutex_lock(&metrics_lock);
    while (families) {
        metrics_family_t *f = families;
        families = f->next;
        while (f->series) {
            series_t *s = f->series;
            f->series = s->next;
            series_free(s, f->nlabels);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    families_tail = &families;
    ncollectors = 0;
    pthread_mutex_unlock(&metrics_lock);
}
