/* ratelimit.c: the token bucket that spaces a target's requests (DESIGN.md section 7). */
#include "ratelimit.h"

#include <math.h>

void iw_ratelimit_init(iw_ratelimit *rl, double rate_per_s, int burst, int64_t now)
{
    if (!(rate_per_s > 0)) {
        rl->rate_per_ms = 0;
        rl->burst = rl->tokens = 0;
    } else {
        rl->rate_per_ms = rate_per_s / 1000.0;
        rl->burst = burst > 0 ? burst : (rate_per_s > 1 ? floor(rate_per_s) : 1);
        rl->tokens = rl->burst;
    }
    rl->last_ms = now;
}

/* Tokens available at now, without changing the bucket. */
static double level_at(const iw_ratelimit *rl, int64_t now)
{
    double t = rl->tokens;
    if (now > rl->last_ms)
        t += (double)(now - rl->last_ms) * rl->rate_per_ms;
    return t > rl->burst ? rl->burst : t;
}

bool iw_ratelimit_take(iw_ratelimit *rl, int64_t now)
{
    if (rl->rate_per_ms <= 0)
        return true;
    double t = level_at(rl, now);
    if (now > rl->last_ms)
        rl->last_ms = now;
    rl->tokens = t;
    if (t < 1.0)
        return false;
    rl->tokens = t - 1.0;
    return true;
}

int64_t iw_ratelimit_wait_ms(const iw_ratelimit *rl, int64_t now)
{
    if (rl->rate_per_ms <= 0)
        return 0;
    double t = level_at(rl, now);
    if (t >= 1.0)
        return 0;
    return (int64_t)ceil((1.0 - t) / rl->rate_per_ms);
}
