/* test_ratelimit.c: the token bucket over simulated time. */
#include <criterion/criterion.h>

#include "ratelimit.h"

Test(ratelimit, disabled_always_allows)
{
    iw_ratelimit rl;
    iw_ratelimit_init(&rl, 0, 0, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert(iw_ratelimit_take(&rl, 0));
    cr_assert_eq(iw_ratelimit_wait_ms(&rl, 0), 0);
}

Test(ratelimit, starts_full_then_spaces_requests)
{
    iw_ratelimit rl;
    iw_ratelimit_init(&rl, 20, 2, 1000); /* 20/s: one token per 50 ms */
    cr_assert(iw_ratelimit_take(&rl, 1000));
    cr_assert(iw_ratelimit_take(&rl, 1000));
    cr_assert_not(iw_ratelimit_take(&rl, 1000), "burst of 2 is used up");
    cr_assert_eq(iw_ratelimit_wait_ms(&rl, 1000), 50);
    cr_assert_eq(iw_ratelimit_wait_ms(&rl, 1030), 20);
    cr_assert_not(iw_ratelimit_take(&rl, 1049));
    cr_assert(iw_ratelimit_take(&rl, 1050));
    cr_assert_not(iw_ratelimit_take(&rl, 1050));
}

Test(ratelimit, refill_is_capped_at_burst)
{
    iw_ratelimit rl;
    iw_ratelimit_init(&rl, 10, 3, 0);
    for (int i = 0; i < 3; i++)
        cr_assert(iw_ratelimit_take(&rl, 0));
    /* an hour later: still only 3 */
    int n = 0;
    while (n < 10 && iw_ratelimit_take(&rl, 3600000))
        n++;
    cr_assert_eq(n, 3);
}

Test(ratelimit, simulated_time_gives_the_configured_rate)
{
    iw_ratelimit rl;
    iw_ratelimit_init(&rl, 20, 2, 0);
    int sent = 0;
    int64_t now = 0, last = 0;
    /* step to each moment a token is promised, like the dispatcher's timer does */
    while (sent < 40 && now < 10000) {
        if (iw_ratelimit_take(&rl, now)) {
            sent++;
            last = now;
        } else {
            int64_t w = iw_ratelimit_wait_ms(&rl, now);
            cr_assert(w > 0);
            now += w;
        }
    }
    cr_assert_eq(sent, 40);
    cr_assert(last >= 1900 && last <= 1901,
              "40 sends at 20/s with burst 2 end at 1900 ms, got %lld", (long long)last);
}

Test(ratelimit, default_burst_is_max_one_rate)
{
    iw_ratelimit rl;
    iw_ratelimit_init(&rl, 0.5, 0, 0); /* one every 2 s, burst 1 */
    cr_assert(iw_ratelimit_take(&rl, 0));
    cr_assert_not(iw_ratelimit_take(&rl, 1999));
    cr_assert(iw_ratelimit_take(&rl, 2000));
    iw_ratelimit_init(&rl, 5, 0, 0);
    int n = 0;
    while (n < 10 && iw_ratelimit_take(&rl, 0))
        n++;
    cr_assert_eq(n, 5);
}

Test(ratelimit, clock_going_back_is_harmless)
{
    iw_ratelimit rl;
    iw_ratelimit_init(&rl, 10, 1, 1000);
    cr_assert(iw_ratelimit_take(&rl, 1000));
    cr_assert_not(iw_ratelimit_take(&rl, 500));
    cr_assert(iw_ratelimit_wait_ms(&rl, 500) > 0);
    cr_assert(iw_ratelimit_take(&rl, 1100));
}
