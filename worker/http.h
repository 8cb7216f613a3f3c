/* http.h: the operator endpoint: /metrics (Prometheus text), /healthz and /readyz. */
#ifndef IW_HTTP_H
#define IW_HTTP_H

#include <stddef.h>

#include "pipeline.h"

typedef struct iw_http iw_http;

/* Serves on listen ("host:port", "0.0.0.0:8080", ":8080") from its own thread. The pipeline
 * must outlive the server. NULL with a reason in errbuf. */
iw_http *iw_http_start(const char *listen, iw_pipeline *p, char *errbuf, size_t errlen);

/* The port actually bound (useful with port 0). */
int iw_http_port(const iw_http *h);

/* Stops serving and frees; NULL is a no-op. */
void iw_http_stop(iw_http *h);

#endif
