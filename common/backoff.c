/* backoff.c: full-jitter retry delays, Retry-After capping and the attempt/elapsed limits. */
#include "backoff.h"

/* min(max_delay, base * 2^attempt) without overflowing for any attempt. */
static int64_t delay_ceiling(const iw_retry_conf *rc, int attempt)
{
    int64_t base = rc->base_ms, cap = rc->max_delay_ms;
    if (base <= 0 || cap <= 0)
        return 0;
    if (attempt < 0)
        attempt = 0;
    if (attempt >= 62 || base > (INT64_MAX >> attempt))
        return cap;
    int64_t v = base << attempt;
    return v < cap ? v : cap;
}

int64_t iw_backoff_delay_ms(const iw_retry_conf *rc, int attempt, uint64_t rnd)
{
    int64_t ceil = delay_ceiling(rc, attempt);
    if (ceil <= 0)
        return 0;
    /* random(0, ceil) inclusive; the modulo bias is below 2^-40 for any sane ceiling */
    return (int64_t)(rnd % ((uint64_t)ceil + 1));
}

/* The Retry-After honoured, capped at max_retry_after_ms; -1 when none was given or none is
 * honoured (max_retry_after_s 0). */
static int64_t honoured_retry_after(const iw_retry_conf *rc, int64_t retry_after_ms)
{
    if (retry_after_ms < 0 || rc->max_retry_after_ms <= 0)
        return -1;
    return retry_after_ms < rc->max_retry_after_ms ? retry_after_ms : rc->max_retry_after_ms;
}

int64_t iw_backoff_next_ms(const iw_retry_conf *rc, int attempt, int64_t retry_after_ms,
                           uint64_t rnd)
{
    int64_t jitter = iw_backoff_delay_ms(rc, attempt, rnd);
    /* "not before": a Retry-After of 0 (or a date past) is no reason to retry sooner than the
     * back-off would (review 93: eight attempts in 4 ms) */
    int64_t ra = honoured_retry_after(rc, retry_after_ms);
    return ra > jitter ? ra : jitter;
}

bool iw_backoff_set_by_retry_after(const iw_retry_conf *rc, int64_t retry_after_ms, int64_t delay)
{
    int64_t ra = honoured_retry_after(rc, retry_after_ms);
    return ra >= 0 && ra == delay;
}

bool iw_backoff_may_retry(const iw_retry_conf *rc, int attempts_made, int64_t first_attempt_ms,
                          int64_t next_start_ms)
{
    if (attempts_made >= rc->max_attempts)
        return false;
    if (rc->max_elapsed_ms <= 0) /* no elapsed limit configured */
        return true;
    if (next_start_ms <= first_attempt_ms)
        return true;
    /* both are clock readings, so the difference cannot overflow in practice; guard anyway */
    if (first_attempt_ms < 0 && next_start_ms > INT64_MAX + first_attempt_ms)
        return false;
    return next_start_ms - first_attempt_ms < rc->max_elapsed_ms;
}

int64_t iw_backoff_busy_ms(int tries, int64_t lease_ms)
{
    /* 500, 1000, 2000, then the cap */
    int64_t wait =
        tries >= 3 ? IW_BUSY_MAX_MS : (int64_t)IW_BUSY_FIRST_MS << (tries > 0 ? tries : 0);
    return lease_ms > 0 && wait > lease_ms ? lease_ms : wait;
}
