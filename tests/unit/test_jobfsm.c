/* test_jobfsm.c: the job state machine: the paths the pipeline takes exist, nothing leaves a
 * terminal state, no state is a dead end, and a job holding a fence cannot just be dropped. */
#include <criterion/criterion.h>

#include "jobfsm.h"

/* Walks events from NEW; returns the last state (IW_JOB__COUNT when a move was refused). */
static iw_job_state walk(const iw_job_event *evs, size_t n)
{
    iw_job_state s = IW_JOB_NEW;
    for (size_t i = 0; i < n && s != IW_JOB__COUNT; i++)
        s = iw_job_next(s, evs[i]);
    return s;
}

#define WALK(...)                                                                                  \
    walk((const iw_job_event[]){__VA_ARGS__},                                                      \
         sizeof((const iw_job_event[]){__VA_ARGS__}) / sizeof(iw_job_event))

Test(jobfsm, the_pipelines_paths_exist)
{
    /* sent and recorded */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_SUBMITTED,
                      IW_JEV_FINISHED, IW_JEV_WRITE_SENT, IW_JEV_RESULT, IW_JEV_DELIVERED),
                 IW_JOB_DONE);
    /* waits in its lane, then is busy twice, and a claim batch fails once */
    cr_assert_eq(WALK(IW_JEV_WAIT, IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_BUSY, IW_JEV_BUSY_OVER,
                      IW_JEV_CLAIM_SENT, IW_JEV_LEDGER_FAILED, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED),
                 IW_JOB_READY);
    /* duplicate or stale at claim; superseded while waiting; poison or unknown target */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_RESULT), IW_JOB_PUBLISH);
    cr_assert_eq(WALK(IW_JEV_WAIT, IW_JEV_RESULT, IW_JEV_DELIVERED), IW_JOB_DONE);
    cr_assert_eq(WALK(IW_JEV_RESULT, IW_JEV_DELIVERED), IW_JOB_DONE);
    /* the fence lost on the wire, or at complete: claims again */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_SUBMITTED,
                      IW_JEV_FENCE_LOST),
                 IW_JOB_CLAIM);
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_SUBMITTED,
                      IW_JEV_FINISHED, IW_JEV_WRITE_SENT, IW_JEV_FENCE_LOST),
                 IW_JOB_CLAIM);
    /* a complete batch that failed goes back to its queue */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_SUBMITTED,
                      IW_JEV_FINISHED, IW_JEV_WRITE_SENT, IW_JEV_LEDGER_FAILED),
                 IW_JOB_COMPLETE);
    /* revoke with the fence held: given back, then dropped */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_GIVE_BACK,
                      IW_JEV_WRITE_SENT, IW_JEV_LEDGER_FAILED, IW_JEV_WRITE_SENT, IW_JEV_DROP),
                 IW_JOB_DROPPED);
    /* a call cut off on the wire at shutdown keeps its fence: dropped as it is */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_SUBMITTED,
                      IW_JEV_DROP),
                 IW_JOB_DROPPED);
    /* the claim answered after the partition was revoked */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_DROP), IW_JOB_DROPPED);
    /* stale in its lane, asked, then offered again (the newer version claimed nothing): sent */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_REOFFER, IW_JEV_FIRST,
                      IW_JEV_CLAIM_SENT, IW_JEV_CLAIMED, IW_JEV_SUBMITTED),
                 IW_JOB_CALLING);
    /* or stale again behind the lane's next version, or waiting there */
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_REOFFER, IW_JEV_FIRST,
                      IW_JEV_CLAIM_SENT, IW_JEV_RESULT),
                 IW_JOB_PUBLISH);
    cr_assert_eq(WALK(IW_JEV_FIRST, IW_JEV_CLAIM_SENT, IW_JEV_REOFFER, IW_JEV_WAIT), IW_JOB_LANE);
}

/* Only a claim's answer can find a stale verdict wrong: a job holding a fence, on the wire or
 * with a result is never offered to its lane again. */
Test(jobfsm, only_a_claim_being_answered_is_offered_again)
{
    for (int s = 0; s < IW_JOB__COUNT; s++)
        cr_assert_eq(iw_job_next(s, IW_JEV_REOFFER),
                     s == IW_JOB_CLAIMING ? IW_JOB_NEW : IW_JOB__COUNT, "%s -reoffer->",
                     iw_job_state_str(s));
    cr_assert_str_eq(iw_job_event_str(IW_JEV_REOFFER), "reoffer");
}

Test(jobfsm, terminal_states_have_no_exit)
{
    for (int e = 0; e < IW_JEV__COUNT; e++) {
        cr_assert_eq(iw_job_next(IW_JOB_DONE, e), IW_JOB__COUNT, "done -%s->",
                     iw_job_event_str(e));
        cr_assert_eq(iw_job_next(IW_JOB_DROPPED, e), IW_JOB__COUNT, "dropped -%s->",
                     iw_job_event_str(e));
    }
    cr_assert(iw_job_terminal(IW_JOB_DONE) && iw_job_terminal(IW_JOB_DROPPED));
    for (int s = 0; s < IW_JOB_DONE; s++)
        cr_assert_not(iw_job_terminal(s), "%s", iw_job_state_str(s));
}

/* From every state that is not terminal a terminal state can be reached, and every state can
 * be reached from NEW: no dead end, no state nobody enters. */
Test(jobfsm, no_dead_ends_and_no_unreachable_states)
{
    for (int from = 0; from < IW_JOB__COUNT; from++) {
        bool seen[IW_JOB__COUNT] = {false};
        int stack[IW_JOB__COUNT], top = 0;
        seen[from] = true;
        stack[top++] = from;
        while (top) {
            int s = stack[--top];
            for (int e = 0; e < IW_JEV__COUNT; e++) {
                int n = iw_job_next(s, e);
                if (n != IW_JOB__COUNT && !seen[n]) {
                    seen[n] = true;
                    stack[top++] = n;
                }
            }
        }
        if (!iw_job_terminal(from))
            cr_assert(seen[IW_JOB_DONE] || seen[IW_JOB_DROPPED], "%s is a dead end",
                      iw_job_state_str(from));
        if (from == IW_JOB_NEW)
            for (int s = 0; s < IW_JOB__COUNT; s++)
                cr_assert(seen[s], "%s cannot be reached", iw_job_state_str(s));
    }
}

Test(jobfsm, a_fence_is_given_back_not_dropped_and_results_are_final)
{
    /* holding the fence before anything went out: dropping it would leave the fence to expire
     * and the newer version's owner waiting; it must be released */
    cr_assert_eq(iw_job_next(IW_JOB_READY, IW_JEV_DROP), IW_JOB__COUNT);
    /* a finished call may be dropped only at a stop, when an unanswered attempt of it may still
     * be applied: its fence must then stay until the lease runs out, not be freed */
    cr_assert_eq(iw_job_next(IW_JOB_COMPLETE, IW_JEV_DROP), IW_JOB_DROPPED);
    /* a produced result only ends; DONE only follows a produced result */
    for (int e = 0; e < IW_JEV__COUNT; e++)
        cr_assert(iw_job_next(IW_JOB_PUBLISH, e) == IW_JOB__COUNT ||
                  (e == IW_JEV_DELIVERED && iw_job_next(IW_JOB_PUBLISH, e) == IW_JOB_DONE));
    for (int s = 0; s < IW_JOB__COUNT; s++)
        for (int e = 0; e < IW_JEV__COUNT; e++)
            if (iw_job_next(s, e) == IW_JOB_DONE)
                cr_assert_eq(s, IW_JOB_PUBLISH, "%s -%s-> done", iw_job_state_str(s),
                             iw_job_event_str(e));
    /* nothing is sent twice without a new claim */
    for (int s = 0; s < IW_JOB__COUNT; s++)
        if (s != IW_JOB_READY)
            cr_assert_eq(iw_job_next(s, IW_JEV_SUBMITTED), IW_JOB__COUNT, "%s submitted",
                         iw_job_state_str(s));
}

Test(jobfsm, out_of_range_is_refused)
{
    cr_assert_eq(iw_job_next(IW_JOB__COUNT, IW_JEV_FIRST), IW_JOB__COUNT);
    cr_assert_eq(iw_job_next(IW_JOB_NEW, IW_JEV__COUNT), IW_JOB__COUNT);
    cr_assert_eq(iw_job_next((iw_job_state)-1, IW_JEV_FIRST), IW_JOB__COUNT);
    cr_assert_str_eq(iw_job_state_str(IW_JOB__COUNT), "?");
}
