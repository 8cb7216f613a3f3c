/* test_breaker.c: the circuit breaker's transitions over simulated time. */
#include <criterion/criterion.h>

#include "breaker.h"

Test(breaker, opens_after_n_consecutive_failures)
{
    iw_breaker b;
    iw_breaker_init(&b, 3, 1000);
    cr_assert(iw_breaker_allow(&b, 0));
    cr_assert_not(iw_breaker_record(&b, IW_BREAKER_FAILURE, 10));
    cr_assert_not(iw_breaker_record(&b, IW_BREAKER_FAILURE, 20));
    cr_assert(iw_breaker_allow(&b, 25));
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 30), "the third failure opens it");
    cr_assert_eq(b.state, IW_BREAKER_OPEN);
    cr_assert_not(iw_breaker_allow(&b, 31));
    cr_assert_not(iw_breaker_allow(&b, 1029));
    cr_assert_eq(iw_breaker_wait_ms(&b, 530), 500);
}

Test(breaker, ok_resets_the_count)
{
    iw_breaker b;
    iw_breaker_init(&b, 3, 1000);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 1);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 2);
    iw_breaker_record(&b, IW_BREAKER_SUCCESS, 3);
    cr_assert_not(iw_breaker_record(&b, IW_BREAKER_FAILURE, 4));
    cr_assert_not(iw_breaker_record(&b, IW_BREAKER_FAILURE, 5));
    cr_assert_eq(b.state, IW_BREAKER_CLOSED);
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 6));
}

Test(breaker, neutral_replies_neither_count_nor_reset)
{
    iw_breaker b;
    iw_breaker_init(&b, 2, 1000);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 1);
    iw_breaker_record(&b, IW_BREAKER_NEUTRAL, 2);
    cr_assert_eq(b.state, IW_BREAKER_CLOSED);
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 3));
}

Test(breaker, half_open_lets_exactly_one_probe_go)
{
    iw_breaker b;
    iw_breaker_init(&b, 1, 100);
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 0));
    cr_assert_not(iw_breaker_allow(&b, 99));
    cr_assert(iw_breaker_allow(&b, 100), "open time is over");
    cr_assert_eq(b.state, IW_BREAKER_HALF_OPEN);
    cr_assert(iw_breaker_allow(&b, 100), "allow alone does not take the probe");
    iw_breaker_on_send(&b, 100);
    cr_assert_not(iw_breaker_allow(&b, 101));
    cr_assert_not(iw_breaker_allow(&b, 5000));
    cr_assert_eq(iw_breaker_wait_ms(&b, 101), 0, "only the probe's reply ends this wait");
}

Test(breaker, probe_success_closes)
{
    iw_breaker b;
    iw_breaker_init(&b, 1, 100);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 0);
    cr_assert(iw_breaker_allow(&b, 150));
    iw_breaker_on_send(&b, 150);
    iw_breaker_record(&b, IW_BREAKER_SUCCESS, 160);
    cr_assert_eq(b.state, IW_BREAKER_CLOSED);
    cr_assert(iw_breaker_allow(&b, 161));
    iw_breaker_on_send(&b, 161);
    cr_assert(iw_breaker_allow(&b, 161), "closed: no probe limit");
}

Test(breaker, probe_failure_reopens_for_a_full_period)
{
    iw_breaker b;
    iw_breaker_init(&b, 5, 100);
    for (int i = 0; i < 5; i++)
        iw_breaker_record(&b, IW_BREAKER_FAILURE, i);
    cr_assert_eq(b.state, IW_BREAKER_OPEN);
    cr_assert(iw_breaker_allow(&b, 200));
    iw_breaker_on_send(&b, 200);
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 250), "one failed probe re-opens it");
    cr_assert_eq(b.state, IW_BREAKER_OPEN);
    cr_assert_not(iw_breaker_allow(&b, 349));
    cr_assert(iw_breaker_allow(&b, 350));
}

/* How long the target has been down: from the failure that opened the breaker, through failed
 * probes, until a probe succeeds. */
Test(breaker, down_time_runs_through_failed_probes_until_one_succeeds)
{
    iw_breaker b;
    iw_breaker_init(&b, 2, 100);
    cr_assert_eq(iw_breaker_down_ms(&b, 50), 0, "closed: not down");
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 10);
    cr_assert_eq(iw_breaker_down_ms(&b, 50), 0, "one failure does not open it");
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 20);
    cr_assert_eq(iw_breaker_down_ms(&b, 70), 50);
    cr_assert(iw_breaker_allow(&b, 120)); /* half-open */
    iw_breaker_on_send(&b, 120);
    cr_assert_eq(iw_breaker_down_ms(&b, 125), 105, "half-open is still down");
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 130);
    cr_assert_eq(iw_breaker_down_ms(&b, 300), 280, "a failed probe keeps the count");
    cr_assert(iw_breaker_allow(&b, 330));
    iw_breaker_on_send(&b, 330);
    iw_breaker_record(&b, IW_BREAKER_SUCCESS, 340);
    cr_assert_eq(iw_breaker_down_ms(&b, 400), 0, "a good probe ends it");
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 500);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 510);
    cr_assert_eq(iw_breaker_down_ms(&b, 520), 10, "the next opening counts anew");
}

Test(breaker, neutral_probe_closes)
{
    iw_breaker b;
    iw_breaker_init(&b, 1, 100);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 0);
    iw_breaker_allow(&b, 100);
    iw_breaker_on_send(&b, 100);
    iw_breaker_record(&b, IW_BREAKER_NEUTRAL, 110);
    cr_assert_eq(b.state, IW_BREAKER_CLOSED, "a 400 proves the target answers");
}

Test(breaker, late_failures_while_open_change_nothing)
{
    iw_breaker b;
    iw_breaker_init(&b, 2, 100);
    iw_breaker_record(&b, IW_BREAKER_FAILURE, 0);
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 10));
    cr_assert_not(iw_breaker_record(&b, IW_BREAKER_FAILURE, 50));
    cr_assert_eq(b.open_until, 110, "a late failure does not extend it");
}

Test(breaker, zero_threshold_disables)
{
    iw_breaker b;
    iw_breaker_init(&b, 0, 100);
    for (int i = 0; i < 100; i++)
        cr_assert_not(iw_breaker_record(&b, IW_BREAKER_FAILURE, i));
    cr_assert(iw_breaker_allow(&b, 100));
}

/* Review 93: a call sent before the breaker opened failed while the probe was on the wire; its
 * failure re-tripped the breaker and forgot the probe, and a second probe went out beside the
 * first. Only the probe decides. */
Test(breaker, a_late_failure_while_half_open_leaves_the_probe_to_decide)
{
    iw_breaker b;
    iw_breaker_init(&b, 1, 100);
    cr_assert(iw_breaker_record_other(&b, IW_BREAKER_FAILURE, 0), "closed: a failure counts");
    cr_assert(iw_breaker_allow(&b, 100));
    iw_breaker_on_send(&b, 100); /* the probe */
    cr_assert_not(iw_breaker_record_other(&b, IW_BREAKER_FAILURE, 150), "a late failure");
    cr_assert_eq(b.state, IW_BREAKER_HALF_OPEN);
    cr_assert(b.probe_out, "the probe is still out");
    cr_assert_not(iw_breaker_allow(&b, 151), "no second probe");
    cr_assert(iw_breaker_record(&b, IW_BREAKER_FAILURE, 200), "the probe's failure re-opens it");
    cr_assert_eq(b.state, IW_BREAKER_OPEN);
    /* review 110: a late success of a call sent before the breaker opened changes nothing,
     * open or half-open; the probe's success closes it */
    cr_assert_not(iw_breaker_record_other(&b, IW_BREAKER_SUCCESS, 250));
    cr_assert_eq(b.state, IW_BREAKER_OPEN, "a late success does not close it before open_s");
    cr_assert_not(iw_breaker_allow(&b, 299));
    cr_assert(iw_breaker_allow(&b, 300));
    iw_breaker_on_send(&b, 300); /* the probe */
    cr_assert_not(iw_breaker_record_other(&b, IW_BREAKER_SUCCESS, 310));
    cr_assert_not(iw_breaker_record_other(&b, IW_BREAKER_NEUTRAL, 311));
    cr_assert_eq(b.state, IW_BREAKER_HALF_OPEN, "nor beside the probe in flight");
    cr_assert_not(iw_breaker_allow(&b, 312), "no second call while the probe is out");
    cr_assert_not(iw_breaker_record(&b, IW_BREAKER_SUCCESS, 320));
    cr_assert_eq(b.state, IW_BREAKER_CLOSED, "the probe's success closes it");
}
