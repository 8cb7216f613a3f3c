/* faults.h: injected failures per target, installed from the config or the control endpoint,
 * optionally limited to the next N requests or the next T seconds. Thread-safe. */
#ifndef IW_SIM_FAULTS_H
#define IW_SIM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef enum iw_sim_fault_kind {
    IW_SIM_FAULT_NONE = 0,
    IW_SIM_FAULT_LATENCY,    /* delay before handling (fixed ms or random min_ms..max_ms) */
    IW_SIM_FAULT_ERROR,      /* reply 500/502/503 (status or a random one of statuses) */
    IW_SIM_FAULT_RATE_LIMIT, /* reply 429 with Retry-After (seconds or HTTP-date) */
    IW_SIM_FAULT_SOAP,       /* SOAP Server fault (REST targets: 500 in their error shape) */
    IW_SIM_FAULT_AUTH,       /* the target's own auth failure */
    IW_SIM_FAULT_HANG,       /* read the request, answer nothing for ms, then close */
    IW_SIM_FAULT_RESET,      /* read the request, then reset the connection (RST) */
    IW_SIM_FAULT_SLOW_BODY,  /* handle normally, trickle the reply chunk_bytes per interval_ms */
    IW_SIM_FAULT_OVERSIZED,  /* 200 with a body of `bytes` bytes */
    IW_SIM_FAULT_GARBAGE,    /* 200 with a body that is no XML or JSON at all */
    IW_SIM_FAULT_REFUSAL,    /* the target's own business refusal (centra_soap: 200 with
                              * success=false and errors/message; see contract.c) */
    IW_SIM_FAULT_APPLY_RESET /* handle the request normally (the target applies it), then reset
                              * the connection instead of answering: a server that stored the
                              * update and crashed, or a reply lost on the way */
} iw_sim_fault_kind;

/* What to do to one request. */
typedef struct iw_sim_fault_action {
    int64_t latency_ms;     /* delay before anything else (sum of the latency faults hit) */
    iw_sim_fault_kind kind; /* the one other fault picked, NONE when none */
    int status;             /* ERROR: status to send */
    char retry_after[64];   /* RATE_LIMIT: Retry-After value */
    int64_t hang_ms;        /* HANG: how long to stay silent */
    size_t chunk_bytes;     /* SLOW_BODY: bytes per chunk */
    int64_t interval_ms;    /* SLOW_BODY: pause between chunks */
    size_t bytes;           /* OVERSIZED: body size */
    bool chunked;           /* OVERSIZED: no Content-Length */
    char message[160];      /* ERROR / SOAP / REFUSAL: text of the reply */
} iw_sim_fault_action;

/* Seeds the random choices (0 = from the clock). */
void iw_sim_faults_init(uint64_t seed);

/* Installs a fault spec (an object, or an array of them):
 * {"target": "midnight" | "*", "kind": "error", "count": N, "for_ms": T | "for_s": T,
 *  "rate": 0.3, ...kind parameters}. "kind": "clear" removes the target's faults.
 * Returns 0, or -1 with a reason in errbuf. */
int iw_sim_faults_add(const cJSON *spec, char *errbuf, size_t errlen);

/* Removes every fault of target t (-1: all). */
void iw_sim_faults_clear(int t);

/* Decides what happens to the next request of target t (consumes counts). */
void iw_sim_faults_pick(int t, iw_sim_fault_action *out);

/* The installed faults, for GET /_sim/faults. Caller deletes. */
cJSON *iw_sim_faults_json(void);

/* "latency", "error", ... */
const char *iw_sim_fault_kind_name(iw_sim_fault_kind k);

#endif
