/* ratelimit.h: a per-target token bucket as pure functions of the time passed in. */
#ifndef IW_RATELIMIT_H
#define IW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct iw_ratelimit {
    double rate_per_ms; /* tokens added per millisecond; 0 = unlimited (a rate, not money) */
    double burst;       /* bucket size in tokens */
    double tokens;      /* tokens available at last_ms */
    int64_t last_ms;    /* time of the last refill */
} iw_ratelimit;

/* Starts a full bucket at now. rate_per_s <= 0 disables it; burst <= 0 means max(1, rate). */
void iw_ratelimit_init(iw_ratelimit *rl, double rate_per_s, int burst, int64_t now);

/* Takes one token at now when there is one. Always true when disabled. */
bool iw_ratelimit_take(iw_ratelimit *rl, int64_t now);

/* Milliseconds until a token is available (0 when one is, or when disabled). */
int64_t iw_ratelimit_wait_ms(const iw_ratelimit *rl, int64_t now);

#endif
