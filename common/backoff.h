/* backoff.h: the retry policy of DESIGN.md section 7 as pure functions. */
#ifndef IW_BACKOFF_H
#define IW_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Full-jitter delay before attempt number `attempt` (1 = the first retry):
 * random(0, min(max_delay, base * 2^attempt)). rnd is a uniform 64-bit random value, passed
 * in so the function stays pure. */
int64_t iw_backoff_delay_ms(const iw_retry_conf *rc, int attempt, uint64_t rnd);

/* The delay to wait after a transient failure: the full-jitter delay, or Retry-After (capped
 * at rc->max_retry_after_ms) when given and longer; rc->max_retry_after_ms 0 honours none. */
int64_t iw_backoff_next_ms(const iw_retry_conf *rc, int attempt, int64_t retry_after_ms,
                           uint64_t rnd);

/* Whether delay, iw_backoff_next_ms's for retry_after_ms, is the Retry-After (capped) rather
 * than the back-off's own (messages say which set the wait). */
bool iw_backoff_set_by_retry_after(const iw_retry_conf *rc, int64_t retry_after_ms, int64_t delay);

/* True when another attempt is allowed: attempts made < max_attempts and the attempt would
 * start before first_attempt + max_elapsed. Times in ms on one clock. */
bool iw_backoff_may_retry(const iw_retry_conf *rc, int attempts_made, int64_t first_attempt_ms,
                          int64_t next_start_ms);

/* First wait before claiming again a fence another worker holds (BUSY), and the longest. */
#define IW_BUSY_FIRST_MS 500
#define IW_BUSY_MAX_MS 4000

/* The wait before the claim after `tries` BUSY answers in a row (0 = after the first):
 * IW_BUSY_FIRST_MS doubling, at most IW_BUSY_MAX_MS and at most lease_ms. The cap bounds how
 * long a fence stays unused after its holder frees it (a settling or slow call ends, a revoked
 * partition's fences are released) to one such wait; it costs a claim per waiting job per
 * IW_BUSY_MAX_MS. */
int64_t iw_backoff_busy_ms(int tries, int64_t lease_ms);

#endif
