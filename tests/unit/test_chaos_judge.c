/* test_chaos_judge.c: the chaos verdict's rule for one (invoice, target) history: an older
 * version after a newer one is a regression (by header or by the version the body carried), the
 * newest accepted again is a repeat, anything newer moves the bar. */
#include <criterion/criterion.h>

#include "chaos.h"

/* One accepted update and what the judge must call it. */
typedef struct step {
    long long version, body;
    ch_update_kind want;
} step;

static void judge_all(const step *steps, size_t n)
{
    ch_judge j;
    ch_judge_init(&j);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(ch_judge_update(&j, steps[i].version, steps[i].body), steps[i].want,
                     "update %zu (v%lld, body v%lld)", i, steps[i].version, steps[i].body);
}

Test(chaos_judge, older_after_newer_is_a_regression_and_the_newest_again_a_repeat)
{
    static const step s[] = {{3, 3, CH_UPDATE_NEWER},
                             {5, 5, CH_UPDATE_NEWER},
                             {4, 4, CH_UPDATE_REGRESSION},
                             {5, 5, CH_UPDATE_REPEAT},
                             {6, 6, CH_UPDATE_NEWER}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
}

Test(chaos_judge, a_regression_does_not_lower_the_bar)
{
    /* v107 and v114 after v128: both older than the newest accepted */
    static const step s[] = {{128, 128, CH_UPDATE_NEWER},
                             {107, 107, CH_UPDATE_REGRESSION},
                             {114, 114, CH_UPDATE_REGRESSION},
                             {128, 128, CH_UPDATE_REPEAT}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
}

Test(chaos_judge, the_body_is_judged_beside_the_header)
{
    /* a newer header over an older body is still a regression at the target */
    static const step s[] = {{5, 5, CH_UPDATE_NEWER},
                             {6, 4, CH_UPDATE_REGRESSION},
                             {7, 7, CH_UPDATE_NEWER},
                             {7, 6, CH_UPDATE_REGRESSION}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
}

Test(chaos_judge, absent_versions_judge_by_what_is_there)
{
    static const step s[] = {{1, -1, CH_UPDATE_NEWER},
                             {2, -1, CH_UPDATE_NEWER},
                             {2, -1, CH_UPDATE_REPEAT},
                             {1, -1, CH_UPDATE_REGRESSION}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
    ch_judge j;
    ch_judge_init(&j);
    cr_expect_eq(ch_judge_update(&j, 9, 9), CH_UPDATE_NEWER, "the first update is newer");
    cr_expect_eq(j.max_version, 9);
    cr_expect_eq(j.max_body, 9);
}

/* One call per (invoice, target) in flight at a time, across every worker: a call arriving
 * while the one applied before it was still held by the target overlaps it, unless the worker
 * had waited out its request timeout (the target held it past the worker's patience). */
Test(chaos_judge, a_call_arriving_before_the_one_before_it_was_applied_overlaps)
{
    /* previous: arrived at 1000, applied at 2500 (a 1.5 s reply); timeout 3000 */
    cr_expect(ch_judge_overlap(1000, 2500, 2000, 3000), "sent while the first was in flight");
    cr_expect(ch_judge_overlap(1000, 2500, 1000, 3000), "sent at the same moment");
    cr_expect_not(ch_judge_overlap(1000, 2500, 2500, 3000), "sent once it was applied");
    cr_expect_not(ch_judge_overlap(1000, 2500, 2600, 3000), "sent after it");
    /* held past the timeout: the worker gave up at 4000 and may send again */
    cr_expect(ch_judge_overlap(1000, 9000, 3999, 3000), "before the timeout ran out");
    cr_expect_not(ch_judge_overlap(1000, 9000, 4000, 3000), "after the timeout");
}
