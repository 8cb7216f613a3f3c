/* test_lanes.c: per-invoice ordering and coalescing decisions. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "lanes.h"

static int jobs[16]; /* addresses stand for jobs */

/* The shadow of lane "k". */
static void *shadow_of(const iw_lanes *l)
{
    void *in, *wait, *shadow;
    iw_lanes_peek(l, "k", &in, &wait, &shadow);
    return shadow;
}

Test(lanes, idle_lane_sends_and_done_forgets)
{
    iw_lanes *l = iw_lanes_new();
    void *d;
    cr_assert_eq(iw_lanes_offer(l, "acme/1/ix", 5, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_null(d);
    cr_assert_eq(iw_lanes_active(l), 1);
    cr_assert_null(iw_lanes_done(l, "acme/1/ix"));
    cr_assert_eq(iw_lanes_active(l), 0);
    /* a forgotten lane starts fresh: any version may go */
    cr_assert_eq(iw_lanes_offer(l, "acme/1/ix", 1, &jobs[1], &d), IW_LANE_SEND);
    iw_lanes_free(l);
}

Test(lanes, newer_waits_and_older_waiting_is_displaced)
{
    iw_lanes *l = iw_lanes_new();
    void *d;
    cr_assert_eq(iw_lanes_offer(l, "k", 5, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 6, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_null(d);
    cr_assert_eq(iw_lanes_offer(l, "k", 8, &jobs[2], &d), IW_LANE_WAIT);
    cr_assert_null(d, "v6, displaced by v8, is the lane's shadow until v8's claim");
    cr_assert_eq(iw_lanes_offer(l, "k", 7, &jobs[3], &d), IW_LANE_SHADOW,
                 "v7 is older than waiting v8, and newer than the shadow");
    cr_assert_null(d, "v6 stays a shadow too: v7 may claim nothing as well");
    cr_assert_eq(iw_lanes_offer(l, "k", 7, &jobs[6], &d), IW_LANE_SHADOW,
                 "another event of v7 is held too: it may claim where the first cannot");
    cr_assert_null(d);
    cr_assert_eq(iw_lanes_offer(l, "k", 4, &jobs[4], &d), IW_LANE_STALE,
                 "v4 is older than in-flight v5: stale, as the ledger would say");
    cr_assert_eq(iw_lanes_offer(l, "k", 5, &jobs[5], &d), IW_LANE_STALE,
                 "same version as in flight");
    cr_assert_null(iw_lanes_claimed(l, "k", 5), "v5's claim settles nothing older than v7");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[2], "v8 goes next");
    cr_assert_eq(iw_lanes_claimed(l, "k", 8), &jobs[3], "v8 claimed: v7 is superseded");
    cr_assert_eq(iw_lanes_claimed(l, "k", 8), &jobs[6], "and the other v7");
    cr_assert_eq(iw_lanes_claimed(l, "k", 8), &jobs[1], "and v6");
    cr_assert_null(iw_lanes_claimed(l, "k", 8));
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}

/* A waiting version the ledger refuses (its event_id reused) claims nothing: the version it
 * superseded is sent after all, when the lane reaches it. */
Test(lanes, a_shadow_goes_when_what_superseded_it_claims_nothing)
{
    iw_lanes *l = iw_lanes_new();
    void *d, *in, *wait;
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[2], &d), IW_LANE_SHADOW);
    cr_assert_null(d);
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert(in == &jobs[0] && wait == &jobs[1], "the shadow is neither in flight nor waiting");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1], "v3 goes first");
    /* v3 claims nothing (refused): v2 goes next */
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[2]);
    cr_assert_null(iw_lanes_done(l, "k"));
    cr_assert_eq(iw_lanes_active(l), 0);
    /* a newer version waiting behind the refused one goes before the shadow, which it
     * supersedes in turn once it claims */
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[2], &d), IW_LANE_SHADOW);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1]);
    cr_assert_eq(iw_lanes_offer(l, "k", 4, &jobs[3], &d), IW_LANE_WAIT);
    cr_assert_null(d, "no shadow is displaced: v2 stays, v3 is in flight");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[3], "v3 refused: v4 goes");
    cr_assert_eq(iw_lanes_claimed(l, "k", 4), &jobs[2], "v4 claimed: v2 is superseded");
    cr_assert_null(iw_lanes_done(l, "k"));
    /* the waiting version dropped (its partition revoked): the shadow, held only for it,
     * waits in its place, so a version older than it waits behind nothing newer */
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 4, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[2], &d), IW_LANE_SHADOW);
    cr_assert_eq(shadow_of(l), &jobs[2]);
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[1]), 1);
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert_eq(wait, &jobs[2]);
    cr_assert_null(shadow_of(l));
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[3], &d), IW_LANE_SHADOW, "v2 is older than v3");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[2]);
    cr_assert_eq(iw_lanes_claimed(l, "k", 3), &jobs[3]);
    cr_assert_null(iw_lanes_done(l, "k"));
    /* review 78: the waiting version dropped while the shadow is older than the version now
     * in flight (v3 went first, its claim unanswered): the shadow stays, for v3's claim */
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[2], &d), IW_LANE_SHADOW);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1], "v3 in flight, v2 still the shadow");
    cr_assert_eq(iw_lanes_offer(l, "k", 4, &jobs[3], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[3]), 1);
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert(in == &jobs[1] && wait == NULL, "nothing older waits behind v3");
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[4], &d), IW_LANE_STALE,
                 "a copy of v3's version is still stale behind it");
    cr_assert_eq(iw_lanes_claimed(l, "k", 3), &jobs[2], "v3's claim settles v2");
    cr_assert_null(iw_lanes_done(l, "k"));
    /* a shadow dropped (its partition revoked) is forgotten */
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[2], &d), IW_LANE_SHADOW);
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[2]), 1);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1]);
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}

/* Two versions in a row the ledger refuses (each under an event_id another version holds at the
 * target): the version before them is still sent, and nothing older is. */
Test(lanes, versions_superseded_by_two_that_claim_nothing_are_sent_newest_first)
{
    iw_lanes *l = iw_lanes_new();
    void *d, *s[IW_LANE_SHADOWS];
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[2], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 4, &jobs[3], &d), IW_LANE_WAIT);
    cr_assert_null(d, "v2 and v3 are both held");
    cr_assert_eq(iw_lanes_shadows(l, "k", s), 2);
    cr_assert(s[0] == &jobs[2] && s[1] == &jobs[1], "newest first");
    cr_assert_null(iw_lanes_claimed(l, "k", 1), "v1's claim settles neither");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[3], "v4 goes first");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[2], "v4 claimed nothing: v3 goes");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1], "v3 claimed nothing: v2 goes");
    cr_assert_null(iw_lanes_claimed(l, "k", 2));
    cr_assert_null(iw_lanes_done(l, "k"));
    cr_assert_eq(iw_lanes_active(l), 0);
    /* the middle one claims: it settles the one below it */
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 2, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 3, &jobs[2], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 4, &jobs[3], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[3]);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[2]);
    cr_assert_eq(iw_lanes_claimed(l, "k", 3), &jobs[1], "v3 claimed: v2 is superseded");
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}

/* A lane holds IW_LANE_SHADOWS shadows, the newest: an older one is superseded at once, a newer
 * one displaces the oldest; and iw_lanes_verdict says what each offer will. */
Test(lanes, shadows_are_bounded_and_the_oldest_goes)
{
    iw_lanes *l = iw_lanes_new();
    void *d, *s[IW_LANE_SHADOWS];
    cr_assert_eq(iw_lanes_verdict(l, "k", 10), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 10, &jobs[0], &d), IW_LANE_SEND);
    for (int i = 1; i <= IW_LANE_SHADOWS + 1; i++) {
        cr_assert_eq(iw_lanes_verdict(l, "k", 10 + 10 * i), IW_LANE_WAIT);
        cr_assert_eq(iw_lanes_offer(l, "k", 10 + 10 * i, &jobs[i], &d), IW_LANE_WAIT);
        cr_assert_null(d, "v%d displaced nothing", 10 + 10 * i);
    }
    /* v60 waits; shadows v50, v40, v30, v20 */
    cr_assert_eq(iw_lanes_shadows(l, "k", s), IW_LANE_SHADOWS);
    cr_assert_eq(s[0], &jobs[4]);
    cr_assert_eq(s[IW_LANE_SHADOWS - 1], &jobs[1]);
    cr_assert_eq(iw_lanes_verdict(l, "k", 15), IW_LANE_SUPERSEDED, "older than every shadow");
    cr_assert_eq(iw_lanes_offer(l, "k", 15, &jobs[10], &d), IW_LANE_SUPERSEDED);
    cr_assert_null(d);
    cr_assert_eq(iw_lanes_verdict(l, "k", 20), IW_LANE_SUPERSEDED, "as old as the oldest");
    cr_assert_eq(iw_lanes_verdict(l, "k", 5), IW_LANE_STALE);
    cr_assert_eq(iw_lanes_verdict(l, "k", 35), IW_LANE_SHADOW);
    cr_assert_eq(iw_lanes_offer(l, "k", 35, &jobs[11], &d), IW_LANE_SHADOW);
    cr_assert_eq(d, &jobs[1], "v20, the oldest, is displaced");
    cr_assert_eq(iw_lanes_shadows(l, "k", s), IW_LANE_SHADOWS);
    cr_assert(s[0] == &jobs[4] && s[1] == &jobs[3] && s[2] == &jobs[11] && s[3] == &jobs[2],
              "v50, v40, v35, v30");
    cr_assert_eq(iw_lanes_offer(l, "k", 70, &jobs[12], &d), IW_LANE_WAIT);
    cr_assert_eq(d, &jobs[2], "v60 becomes the newest shadow, v30 goes");
    /* the waiting one dropped: the newest shadow waits in its place, the others stay */
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[12]), 1);
    void *in, *wait;
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert_eq(wait, &jobs[5], "v60");
    cr_assert_eq(iw_lanes_shadows(l, "k", s), 3);
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[3]), 1, "a shadow in the middle");
    cr_assert_eq(iw_lanes_shadows(l, "k", s), 2);
    cr_assert(s[0] == &jobs[4] && s[1] == &jobs[11], "v50, v35");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[5]);
    cr_assert_eq(iw_lanes_claimed(l, "k", 60), &jobs[4]);
    cr_assert_eq(iw_lanes_claimed(l, "k", 60), &jobs[11]);
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}

/* Review 85: two events of one version (the second under an id of its own) behind one that
 * claims nothing: each is held, and when the first claims nothing too, the second goes. */
Test(lanes, two_events_of_one_version_are_both_held)
{
    iw_lanes *l = iw_lanes_new();
    void *d;
    cr_assert_eq(iw_lanes_offer(l, "k", 1, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_offer(l, "k", 9, &jobs[1], &d), IW_LANE_WAIT);
    cr_assert_eq(iw_lanes_offer(l, "k", 7, &jobs[2], &d), IW_LANE_SHADOW);
    cr_assert_eq(iw_lanes_verdict(l, "k", 7), IW_LANE_SHADOW);
    cr_assert_eq(iw_lanes_offer(l, "k", 7, &jobs[3], &d), IW_LANE_SHADOW);
    cr_assert_null(d);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1], "v9 first");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[2], "v9 claimed nothing: the first v7");
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[3], "it claimed nothing: the second v7");
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}

Test(lanes, lanes_are_independent_and_many)
{
    iw_lanes *l = iw_lanes_new();
    void *d;
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "t/%d/x", i);
        cr_assert_eq(iw_lanes_offer(l, key, 1, &jobs[0], &d), IW_LANE_SEND);
    }
    cr_assert_eq(iw_lanes_active(l), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "t/%d/x", i);
        cr_assert_eq(iw_lanes_offer(l, key, 2, &jobs[1], &d), IW_LANE_WAIT);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "t/%d/x", i);
        cr_assert_eq(iw_lanes_done(l, key), &jobs[1]);
        cr_assert_null(iw_lanes_done(l, key));
    }
    cr_assert_eq(iw_lanes_active(l), 0);
    iw_lanes_free(l);
}

Test(lanes, drop_waiting)
{
    iw_lanes *l = iw_lanes_new();
    void *d;
    iw_lanes_offer(l, "k", 1, &jobs[0], &d);
    iw_lanes_offer(l, "k", 2, &jobs[1], &d);
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[2]), 0);
    cr_assert_eq(iw_lanes_drop_waiting(l, "k", &jobs[1]), 1);
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}

Test(lanes, peek_shows_inflight_and_waiting)
{
    iw_lanes *l = iw_lanes_new();
    void *d, *in, *wait;
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert_null(in);
    cr_assert_null(wait);
    iw_lanes_offer(l, "k", 1, &jobs[0], &d);
    iw_lanes_offer(l, "k", 2, &jobs[1], &d);
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert_eq(in, &jobs[0]);
    cr_assert_eq(wait, &jobs[1]);
    iw_lanes_free(l);
}

Test(lanes, wait_behind_queues_a_copy_of_the_inflight_version_once)
{
    iw_lanes *l = iw_lanes_new();
    void *d, *in, *wait;
    cr_assert_eq(iw_lanes_wait_behind(l, "k", 5, &jobs[1]), 0, "an idle lane takes nothing");
    cr_assert_eq(iw_lanes_offer(l, "k", 5, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_wait_behind(l, "k", 5, &jobs[1]), 1);
    iw_lanes_peek(l, "k", &in, &wait, NULL);
    cr_assert_eq(in, &jobs[0]);
    cr_assert_eq(wait, &jobs[1]);
    cr_assert_eq(iw_lanes_wait_behind(l, "k", 5, &jobs[2]), 0, "only one job waits");
    /* a newer version still displaces the waiting copy (the shadow until it claims) */
    cr_assert_eq(iw_lanes_offer(l, "k", 6, &jobs[3], &d), IW_LANE_WAIT);
    cr_assert_null(d);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[3]);
    cr_assert_eq(iw_lanes_claimed(l, "k", 6), &jobs[1]);
    iw_lanes_free(l);

    l = iw_lanes_new();
    cr_assert_eq(iw_lanes_offer(l, "k", 5, &jobs[0], &d), IW_LANE_SEND);
    cr_assert_eq(iw_lanes_wait_behind(l, "k", 5, &jobs[1]), 1);
    cr_assert_eq(iw_lanes_done(l, "k"), &jobs[1], "the copy goes next (it claims in the ledger)");
    cr_assert_null(iw_lanes_done(l, "k"));
    iw_lanes_free(l);
}
