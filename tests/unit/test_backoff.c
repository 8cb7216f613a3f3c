/* test_backoff.c: full-jitter delays, Retry-After capping and the attempt/elapsed limits. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "backoff.h"
#include "target.h"

static iw_retry_conf conf(void)
{
    iw_retry_conf rc = {
        .max_attempts = 8,
        .max_elapsed_ms = 600000,
        .base_ms = 250,
        .max_delay_ms = 60000,
        .max_retry_after_ms = 300000,
    };
    return rc;
}

/* min(max_delay, base * 2^attempt) computed independently with saturation. */
static int64_t ceiling(const iw_retry_conf *rc, int attempt)
{
    int64_t v = rc->base_ms;
    for (int i = 0; i < attempt && v < rc->max_delay_ms; i++)
        v *= 2;
    return v < rc->max_delay_ms ? v : rc->max_delay_ms;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

Test(backoff, delay_never_exceeds_the_ceiling)
{
    iw_retry_conf rc = conf();
    uint64_t seed = 42;
    for (int attempt = 1; attempt <= 20; attempt++) {
        int64_t cap = ceiling(&rc, attempt);
        for (int i = 0; i < 2000; i++) {
            int64_t d = iw_backoff_delay_ms(&rc, attempt, splitmix(&seed));
            cr_assert(d >= 0 && d <= cap, "attempt %d: delay %lld outside [0, %lld]", attempt,
                      (long long)d, (long long)cap);
        }
        /* the extremes of rnd reach both ends of the range */
        cr_assert_eq(iw_backoff_delay_ms(&rc, attempt, 0), 0);
        cr_assert_eq(iw_backoff_delay_ms(&rc, attempt, (uint64_t)cap), cap);
        cr_assert_eq(iw_backoff_delay_ms(&rc, attempt, (uint64_t)cap + 1), 0);
    }
}

Test(backoff, ceiling_doubles_then_caps)
{
    iw_retry_conf rc = conf();
    /* rnd = ceiling gives exactly the ceiling, so the ceiling itself is visible */
    cr_assert_eq(iw_backoff_delay_ms(&rc, 1, 500), 500);
    cr_assert_eq(iw_backoff_delay_ms(&rc, 1, 501), 0);
    cr_assert_eq(iw_backoff_delay_ms(&rc, 2, 1000), 1000);
    cr_assert_eq(iw_backoff_delay_ms(&rc, 7, 32000), 32000);
    cr_assert_eq(iw_backoff_delay_ms(&rc, 8, 60000), 60000); /* 64000 capped at 60000 */
    cr_assert_eq(iw_backoff_delay_ms(&rc, 8, 60001), 0);
}

Test(backoff, jitter_covers_the_whole_range)
{
    iw_retry_conf rc = conf();
    uint64_t seed = 7;
    int buckets[10] = {0};
    int64_t cap = ceiling(&rc, 4); /* 4000 ms */
    for (int i = 0; i < 10000; i++) {
        int64_t d = iw_backoff_delay_ms(&rc, 4, splitmix(&seed));
        int b = (int)(d * 10 / (cap + 1));
        buckets[b]++;
    }
    for (int b = 0; b < 10; b++)
        cr_assert(buckets[b] > 700 && buckets[b] < 1300, "bucket %d holds %d of 10000", b,
                  buckets[b]);
}

Test(backoff, huge_attempts_do_not_overflow)
{
    iw_retry_conf rc = conf();
    int attempts[] = {30, 61, 62, 63, 64, 100, 1000, INT32_MAX};
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        cr_assert_eq(iw_backoff_delay_ms(&rc, attempts[i], UINT64_MAX - 1) <= rc.max_delay_ms, 1);
        cr_assert_eq(iw_backoff_delay_ms(&rc, attempts[i], (uint64_t)rc.max_delay_ms),
                     rc.max_delay_ms);
    }
    rc.base_ms = INT64_MAX / 2;
    rc.max_delay_ms = INT64_MAX - 1;
    int64_t d = iw_backoff_delay_ms(&rc, 63, UINT64_MAX);
    cr_assert(d >= 0 && d <= rc.max_delay_ms);
    cr_assert_eq(iw_backoff_delay_ms(&rc, -5, 250), 250, "a negative attempt counts as 0");
}

Test(backoff, zero_base_or_cap_means_no_delay)
{
    iw_retry_conf rc = conf();
    rc.base_ms = 0;
    cr_assert_eq(iw_backoff_delay_ms(&rc, 3, 12345), 0);
    rc = conf();
    rc.max_delay_ms = 0;
    cr_assert_eq(iw_backoff_delay_ms(&rc, 3, 12345), 0);
}

Test(backoff, retry_after_is_honoured_and_capped)
{
    iw_retry_conf rc = conf();
    rc.max_retry_after_ms = 5000;
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 1000, 999999), 1000);
    /* review 93: Retry-After is a "not before", never a reason to retry sooner than the back-off
     * would: 0 (or a date past) gets the jittered delay, and so does a shorter one */
    int64_t jitter = iw_backoff_delay_ms(&rc, 1, 499);
    cr_assert_eq(jitter, 499);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 0, 499), jitter);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 300, 499), jitter);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 500, 499), 500);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 5000, 1), 5000);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 120000, 1), 5000);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, INT64_MAX, 1), 5000);
    /* max_retry_after_s 0 honours none: the back-off alone (it used to cap every wait at 0) */
    rc.max_retry_after_ms = 0;
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 30000, 499), jitter);
    cr_assert_eq(iw_backoff_next_ms(&rc, 1, 0, 499), jitter);
    rc.max_retry_after_ms = 5000;
    /* without Retry-After it is the jittered delay */
    cr_assert_eq(iw_backoff_next_ms(&rc, 2, -1, 1000), 1000);
    cr_assert_eq(iw_backoff_next_ms(&rc, 2, -1, 1001), 0);
}

/* Review 95: an exhausted call's message blamed Retry-After for a wait the back-off set. */
Test(backoff, a_wait_is_said_to_be_retry_after_only_when_it_set_it)
{
    iw_retry_conf rc = conf();
    rc.max_retry_after_ms = 5000;
    int64_t d = iw_backoff_next_ms(&rc, 1, 3000, 499);
    cr_assert_eq(d, 3000);
    cr_assert(iw_backoff_set_by_retry_after(&rc, 3000, d));
    d = iw_backoff_next_ms(&rc, 1, 120000, 499); /* capped */
    cr_assert(iw_backoff_set_by_retry_after(&rc, 120000, d));
    d = iw_backoff_next_ms(&rc, 1, 0, 499); /* the back-off's jitter is longer */
    cr_assert_eq(d, 499);
    cr_assert_not(iw_backoff_set_by_retry_after(&rc, 0, d));
    cr_assert_not(iw_backoff_set_by_retry_after(&rc, -1, iw_backoff_next_ms(&rc, 1, -1, 499)));
    rc.max_retry_after_ms = 0; /* none honoured */
    d = iw_backoff_next_ms(&rc, 1, 3000, 499);
    cr_assert_not(iw_backoff_set_by_retry_after(&rc, 3000, d));
}

Test(backoff, may_retry_counts_attempts)
{
    iw_retry_conf rc = conf();
    rc.max_attempts = 3;
    cr_assert(iw_backoff_may_retry(&rc, 1, 1000, 1100));
    cr_assert(iw_backoff_may_retry(&rc, 2, 1000, 1100));
    cr_assert_not(iw_backoff_may_retry(&rc, 3, 1000, 1100));
    cr_assert_not(iw_backoff_may_retry(&rc, 4, 1000, 1100));
    rc.max_attempts = 1;
    cr_assert_not(iw_backoff_may_retry(&rc, 1, 1000, 1000), "one attempt means no retry");
}

Test(backoff, may_retry_respects_elapsed)
{
    iw_retry_conf rc = conf();
    rc.max_attempts = 100;
    rc.max_elapsed_ms = 10000;
    cr_assert(iw_backoff_may_retry(&rc, 2, 50000, 50000));
    cr_assert(iw_backoff_may_retry(&rc, 2, 50000, 59999));
    cr_assert_not(iw_backoff_may_retry(&rc, 2, 50000, 60000));
    cr_assert_not(iw_backoff_may_retry(&rc, 2, 50000, INT64_MAX));
    cr_assert_not(iw_backoff_may_retry(&rc, 2, INT64_MIN + 5, INT64_MAX), "no overflow");
    cr_assert(iw_backoff_may_retry(&rc, 2, 50000, 40000), "a start before the first counts as 0");
}

/* A claim that finds the fence BUSY is tried again after 0.5, 1, 2 s, then every 4 s: a fence
 * its holder frees (a settling call ends, a revoked partition's fence is released) is taken
 * up within 4 s, not after a wait that doubled while the holder kept it. */
Test(backoff, busy_claims_wait_doubling_then_at_most_four_seconds)
{
    const int64_t want[] = {500, 1000, 2000, 4000, 4000, 4000};
    for (int t = 0; t < 6; t++)
        cr_assert_eq(iw_backoff_busy_ms(t, 60000), want[t], "tries %d", t);
    cr_assert_eq(iw_backoff_busy_ms(1000000, 60000), 4000, "no overflow");
    cr_assert_eq(iw_backoff_busy_ms(-1, 60000), 500);
    /* never longer than the lease: the holder's fence may be gone by then */
    cr_assert_eq(iw_backoff_busy_ms(0, 300), 300);
    cr_assert_eq(iw_backoff_busy_ms(5, 1500), 1500);
    cr_assert_eq(iw_backoff_busy_ms(1, 1500), 1000);
}

/* Retry-After as a target sends it: delta seconds (any number of digits, a longer wait than a
 * year read as a year), or an HTTP-date in each of the three forms RFC 9110 section 5.6.7 has
 * a recipient read; anything else is unreadable (-1). */
Test(backoff, retry_after_is_read_in_every_form)
{
    const int64_t now = 784111777000LL; /* Sun, 06 Nov 1994 08:49:37 GMT */
    const int64_t year = 86400000LL * 365;
    cr_assert_eq(iw_retry_after_ms("120", now), 120000);
    cr_assert_eq(iw_retry_after_ms(" 0\r\n", now), 0);
    cr_assert_eq(iw_retry_after_ms("31536000", now), year);
    cr_assert_eq(iw_retry_after_ms("31536001", now), year, "more than a year reads as a year");
    cr_assert_eq(iw_retry_after_ms("99999999999999999999999999", now), year);
    cr_assert_eq(iw_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT", now), 60000);
    cr_assert_eq(iw_retry_after_ms("Sunday, 06-Nov-94 08:50:37 GMT", now), 60000);
    cr_assert_eq(iw_retry_after_ms("Sun Nov  6 08:50:37 1994", now), 60000);
    cr_assert_eq(iw_retry_after_ms("Sun, 06 Nov 1994 08:40:00 GMT", now), 0, "a date passed");
    cr_assert_eq(iw_retry_after_ms("Tue, 06 Nov 2094 08:49:37 GMT", now), year);
    static const char *const unreadable[] = {"",
                                             "soon",
                                             "-5",
                                             "1.5",
                                             "12 s",
                                             "0x10",
                                             "Sun, 06 Nov 1994 08:50:37 GMT and more",
                                             "06 Nov 1994 08:50:37",
                                             "Sun, 06 Nov 94 08:50:37 GMT"};
    for (size_t i = 0; i < sizeof(unreadable) / sizeof(*unreadable); i++)
        cr_assert_eq(iw_retry_after_ms(unreadable[i], now), -1, "'%s'", unreadable[i]);
    cr_assert_eq(iw_retry_after_ms(NULL, now), -1);
}
