/* http.h: the operator endpoint: /metrics (Prometheus text), /healthz and /readyz. */
#ifndef IW_HTTP_H
#define IW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

typedef struct iw_http iw_http;

/* What /healthz and /readyz decide on. */
typedef struct iw_health_status {
    int64_t last_loop_ms; /* monotonic ms of the loop's last turn, 0 = not started */
    bool ledger_ok;       /* Redis answers */
    bool producer_ok;     /* no fatal producer error */
    bool in_group;        /* a member of the consumer group */
    bool ledger_refused;  /* !ledger_ok: Redis answers, and refuses the worker (AUTH, eviction) */
} iw_health_status;

/* The small interface the server depends on (the pipeline provides it, tests fake it). */
typedef struct iw_health {
    void *ctx;                                        /* passed to status */
    void (*status)(void *ctx, iw_health_status *out); /* a snapshot; called from the server's
                                                         thread */
    iw_metrics *metrics;                              /* rendered on /metrics; may be NULL */
} iw_health;

/* Serves on listen ("host:port", "0.0.0.0:8080", ":8080") from its own thread. health (copied)
 * may be NULL (every probe then says "starting"); what it points to must outlive the server.
 * NULL with a reason in errbuf. */
iw_http *iw_http_start(const char *listen, const iw_health *health, char *errbuf, size_t errlen);

/* The port actually bound (useful with port 0). */
int iw_http_port(const iw_http *h);

/* Stops serving and frees; NULL is a no-op. */
void iw_http_stop(iw_http *h);

#endif
