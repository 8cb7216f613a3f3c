/* metrics.h: a small thread-safe registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format. */
#ifndef IW_METRICS_H
#define IW_METRICS_H

#include <stdint.h>

typedef struct iw_metrics iw_metrics;

typedef enum iw_metric_type { IW_COUNTER = 0, IW_GAUGE, IW_HISTOGRAM } iw_metric_type;

/* Creates an empty registry; NULL when out of memory. */
iw_metrics *iw_metrics_new(void);

/* Declares a metric family (name, type, help). Series of undeclared names are ignored, so a
 * typo cannot invent a metric. Returns 0 or IW_ENOMEM. */
int iw_metrics_declare(iw_metrics *m, const char *name, iw_metric_type type, const char *help);

/* Adds `by` to a counter series. labels is the label set in exposition syntax without braces,
 * e.g. `target="ix",status="failed"` (values must already be escaped), or "" for none. */
void iw_metrics_add(iw_metrics *m, const char *name, const char *labels, uint64_t by);

/* Sets a gauge series. */
void iw_metrics_set(iw_metrics *m, const char *name, const char *labels, double value);

/* Records one observation (seconds) in a histogram series (fixed buckets 5 ms .. 60 s). */
void iw_metrics_observe(iw_metrics *m, const char *name, const char *labels, double seconds);

/* Typed handles on one series. A handle is resolved once (at start-up): it is NULL when the
 * name is not declared with that type, so a misspelt or mistyped metric fails there instead
 * of being dropped. Handles live as long as the registry; the calls are thread-safe and
 * NULL-safe. A counter only goes up. */
typedef struct iw_counter iw_counter;
typedef struct iw_gauge iw_gauge;
typedef struct iw_histogram iw_histogram;

iw_counter *iw_metrics_counter(iw_metrics *m, const char *name, const char *labels);
iw_gauge *iw_metrics_gauge(iw_metrics *m, const char *name, const char *labels);
iw_histogram *iw_metrics_histogram(iw_metrics *m, const char *name, const char *labels);

/* Adds `by` to a counter. */
void iw_counter_add(iw_counter *c, uint64_t by);

/* Sets a gauge. */
void iw_gauge_set(iw_gauge *g, double value);

/* Records one observation (seconds). */
void iw_histogram_observe(iw_histogram *h, double seconds);

/* Reads a counter or gauge series; 0 when absent. */
double iw_metrics_get(iw_metrics *m, const char *name, const char *labels);

/* Renders every family as Prometheus text; malloc'd, caller frees. NULL when out of memory. */
char *iw_metrics_render(iw_metrics *m);

/* Escapes a label value (\\, \", \n) into buf; returns buf. */
const char *iw_metrics_escape(const char *value, char *buf, unsigned len);

/* Frees the registry; NULL is a no-op. */
void iw_metrics_free(iw_metrics *m);

#endif
