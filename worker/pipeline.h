/* pipeline.h: the worker: Kafka in, ledger, ordered concurrent calls, results and dead letters out.
 */
#ifndef IW_PIPELINE_H
#define IW_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

/* Result statuses, in the order of the counters below. */
typedef enum iw_result_status {
    IW_RES_SUCCEEDED = 0,
    IW_RES_DUPLICATE,
    IW_RES_STALE,
    IW_RES_SUPERSEDED,
    IW_RES_REJECTED,
    IW_RES_FAILED,
    IW_RES__COUNT
} iw_result_status;

/* "succeeded", "duplicate", ... */
const char *iw_result_status_str(iw_result_status s);

/* Counters a test or the metrics endpoint reads (only from the pipeline's own thread, or
 * through iw_pipeline_stats_copy which is safe from any thread). */
typedef struct iw_pipeline_stats {
    uint64_t consumed;               /* messages taken from the input topic */
    uint64_t poison;                 /* messages that did not parse or route */
    uint64_t results[IW_RES__COUNT]; /* results acknowledged by the broker, by status */
    uint64_t dead_letters;           /* dead letters acknowledged */
    uint64_t ledger_errors;          /* Redis failures */
    uint64_t fence_lost;             /* calls or outcomes whose fence was lost (claimed again
                                      * or left to a partition's new owner; never reported) */
    uint64_t in_flight;              /* (event, target) jobs not yet terminal */
    bool ledger_ok;                  /* last Redis call worked */
    bool ledger_refused;             /* not ok: Redis answered and refused the worker */
    bool producer_ok;                /* no fatal producer error */
    bool assigned; /* a member of the consumer group (it has a member id), partitions or not */
    int64_t consumer_lag;            /* sum over assigned partitions, -1 when unknown */
    int64_t last_loop_ms;            /* monotonic ms of the last loop turn (liveness) */
} iw_pipeline_stats;

/* The target label of iw_results_total for a name that is no configured instance (names from
 * events never become label values, so the series stay bounded). */
#define IW_UNKNOWN_TARGET_LABEL "(unknown)"

typedef struct iw_pipeline iw_pipeline;

/* What iw_pipeline_new sets *stop to when it gave up because *stop became non-zero (a signal)
 * while the start waited for the brokers to know the output topics: a stop, not a failure. */
#define IW_PIPELINE_STOPPED_AT_START 2

/* Builds the worker for cfg (which must outlive it): Kafka consumer and producer, Redis
 * ledger, HTTP dispatcher. NULL with a reason in errbuf; also when *stop (may be NULL) became
 * non-zero while the start waited (then *stop is IW_PIPELINE_STOPPED_AT_START). */
iw_pipeline *iw_pipeline_new(const iw_config *cfg, volatile sig_atomic_t *stop, char *errbuf,
                             size_t errlen);

/* Runs until *stop becomes non-zero (a signal handler sets it), then drains within the
 * grace period, releases leases, flushes, commits and closes. Returns 0 on a clean stop,
 * 1 when it stopped on a fatal error (e.g. a fatal producer error). */
int iw_pipeline_run(iw_pipeline *p, volatile sig_atomic_t *stop);

/* A consistent copy of the counters (safe from another thread). */
void iw_pipeline_stats_copy(iw_pipeline *p, iw_pipeline_stats *out);

/* The metrics registry the pipeline updates (read by the HTTP endpoint from any thread). */
iw_metrics *iw_pipeline_metrics(iw_pipeline *p);

/* Frees the pipeline; NULL is a no-op. */
void iw_pipeline_free(iw_pipeline *p);

#endif
