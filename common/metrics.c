/* metrics.c: counters, gauges and histograms behind one mutex, rendered for Prometheus. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static const double BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_BUCKETS (sizeof(BUCKETS) / sizeof(BUCKETS[0]))

typedef struct series {
    struct iw_metrics *owner; /* its registry (for the lock) */
    char *labels;
    double value;                /* counter or gauge */
    uint64_t buckets[N_BUCKETS]; /* histogram: observations <= BUCKETS[i] (not cumulative) */
    uint64_t count;              /* histogram */
    double sum;                  /* histogram */
    struct series *next;
} series;

typedef struct family {
    char *name;
    char *help;
    iw_metric_type type;
    series *series; /* in insertion order */
    series *last;
    struct family *next;
} family;

struct iw_metrics {
    pthread_mutex_t lock;
    family *families; /* in declaration order */
    family *last;
};

iw_metrics *iw_metrics_new(void)
{
    iw_metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

int iw_metrics_declare(iw_metrics *m, const char *name, iw_metric_type type, const char *help)
{
    family *f = calloc(1, sizeof(*f));
    if (!f || !(f->name = strdup(name)) || !(f->help = strdup(help))) {
        if (f)
            free(f->name);
        free(f);
        return IW_ENOMEM;
    }
    f->type = type;
    pthread_mutex_lock(&m->lock);
    if (m->last)
        m->last->next = f;
    else
        m->families = f;
    m->last = f;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* The series (created on first use); call with the lock held. NULL for undeclared names. */
static series *find(iw_metrics *m, const char *name, const char *labels, family **fam)
{
    family *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f)
        return NULL;
    *fam = f;
    for (series *s = f->series; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    series *s = calloc(1, sizeof(*s));
    if (!s || !(s->labels = strdup(labels))) {
        free(s);
        return NULL;
    }
    s->owner = m;
    if (f->last)
        f->last->next = s;
    else
        f->series = s;
    f->last = s;
    return s;
}

/* The series of a declared family of this type, created when new; NULL otherwise. */
static series *typed(iw_metrics *m, const char *name, const char *labels, iw_metric_type type)
{
    if (!m || !name || !labels)
        return NULL;
    series *s = NULL;
    pthread_mutex_lock(&m->lock);
    family *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f && f->type == type) /* no series is created for a name of another type */
        s = find(m, name, labels, &f);
    pthread_mutex_unlock(&m->lock);
    return s;
}

iw_counter *iw_metrics_counter(iw_metrics *m, const char *name, const char *labels)
{
    return (iw_counter *)typed(m, name, labels, IW_COUNTER);
}

iw_gauge *iw_metrics_gauge(iw_metrics *m, const char *name, const char *labels)
{
    return (iw_gauge *)typed(m, name, labels, IW_GAUGE);
}

iw_histogram *iw_metrics_histogram(iw_metrics *m, const char *name, const char *labels)
{
    return (iw_histogram *)typed(m, name, labels, IW_HISTOGRAM);
}

void iw_counter_add(iw_counter *c, uint64_t by)
{
    series *s = (series *)c;
    if (!s)
        return;
    pthread_mutex_lock(&s->owner->lock);
    s->value += (double)by;
    pthread_mutex_unlock(&s->owner->lock);
}

void iw_gauge_set(iw_gauge *g, double value)
{
    series *s = (series *)g;
    if (!s)
        return;
    pthread_mutex_lock(&s->owner->lock);
    s->value = value;
    pthread_mutex_unlock(&s->owner->lock);
}

static void observe_locked(series *s, double seconds);

void iw_histogram_observe(iw_histogram *h, double seconds)
{
    series *s = (series *)h;
    if (!s)
        return;
    pthread_mutex_lock(&s->owner->lock);
    observe_locked(s, seconds);
    pthread_mutex_unlock(&s->owner->lock);
}

void iw_metrics_add(iw_metrics *m, const char *name, const char *labels, uint64_t by)
{
    family *f;
    pthread_mutex_lock(&m->lock);
    series *s = find(m, name, labels, &f);
    if (s)
        s->value += (double)by;
    pthread_mutex_unlock(&m->lock);
}

void iw_metrics_set(iw_metrics *m, const char *name, const char *labels, double value)
{
    family *f;
    pthread_mutex_lock(&m->lock);
    series *s = find(m, name, labels, &f);
    if (s)
        s->value = value;
    pthread_mutex_unlock(&m->lock);
}

static void observe_locked(series *s, double seconds)
{
    size_t i = 0;
    while (i < N_BUCKETS && seconds > BUCKETS[i])
        i++;
    if (i < N_BUCKETS)
        s->buckets[i]++;
    s->count++;
    s->sum += seconds;
}

void iw_metrics_observe(iw_metrics *m, const char *name, const char *labels, double seconds)
{
    family *f;
    pthread_mutex_lock(&m->lock);
    series *s = find(m, name, labels, &f);
    if (s)
        observe_locked(s, seconds);
    pthread_mutex_unlock(&m->lock);
}

double iw_metrics_get(iw_metrics *m, const char *name, const char *labels)
{
    double v = 0;
    pthread_mutex_lock(&m->lock);
    for (family *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            for (series *s = f->series; s; s = s->next)
                if (strcmp(s->labels, labels) == 0)
                    v = s->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}

const char *iw_metrics_escape(const char *value, char *buf, unsigned len)
{
    unsigned o = 0;
    for (const char *p = value ? value : ""; *p && o + 3 < len; p++) {
        if (*p == '\\' || *p == '"') {
            buf[o++] = '\\';
            buf[o++] = *p;
        } else if (*p == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

typedef struct out {
    char *p;
    size_t n, cap;
    int err;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out *o, const char *fmt, ...)
{
    if (o->err)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
        va_end(ap);
        if (w < 0) {
            o->err = 1;
            return;
        }
        if ((size_t)w < o->cap - o->n) {
            o->n += (size_t)w;
            return;
        }
        size_t nc = o->cap * 2 + (size_t)w;
        char *np = realloc(o->p, nc);
        if (!np) {
            o->err = 1;
            return;
        }
        o->p = np;
        o->cap = nc;
    }
}

char *iw_metrics_render(iw_metrics *m)
{
    static const char *const TYPES[] = {"counter", "gauge", "histogram"};
    out o = {malloc(4096), 0, 4096, 0};
    if (!o.p)
        return NULL;
    o.p[0] = '\0';
    pthread_mutex_lock(&m->lock);
    for (family *f = m->families; f; f = f->next) {
        put(&o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, TYPES[f->type]);
        for (series *s = f->series; s; s = s->next) {
            const char *sep = s->labels[0] ? "," : "";
            if (f->type != IW_HISTOGRAM) {
                put(&o, "%s%s%s%s %.15g\n", f->name, s->labels[0] ? "{" : "", s->labels,
                    s->labels[0] ? "}" : "", s->value);
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i < N_BUCKETS; i++) {
                cum += s->buckets[i];
                put(&o, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep, BUCKETS[i],
                    (unsigned long long)cum);
            }
            put(&o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
                (unsigned long long)s->count);
            put(&o, "%s_sum%s%s%s %.9g\n", f->name, s->labels[0] ? "{" : "", s->labels,
                s->labels[0] ? "}" : "", s->sum);
            put(&o, "%s_count%s%s%s %llu\n", f->name, s->labels[0] ? "{" : "", s->labels,
                s->labels[0] ? "}" : "", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (o.err) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

void iw_metrics_free(iw_metrics *m)
{
    if (!m)
        return;
    for (family *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (series *s = f->series, *sn; s; s = sn) {
            sn = s->next;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}
