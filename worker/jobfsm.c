/* jobfsm.c: the job state machine's one table. */
#include "jobfsm.h"

#include <stddef.h>

#define X IW_JOB__COUNT /* not allowed */

/* next[state][event] */
/* clang-format off */
static const unsigned char NEXT[IW_JOB__COUNT][IW_JEV__COUNT] = {
    /*                WAIT          FIRST         CLAIM_SENT       CLAIMED        BUSY
     *                BUSY_OVER     LEDGER_FAILED SUBMITTED        FINISHED       FENCE_LOST
     *                WRITE_SENT    RESULT        DELIVERED        GIVE_BACK      DROP
     *                REOFFER */
    [IW_JOB_NEW] = {IW_JOB_LANE, IW_JOB_CLAIM, X, X, X,
                    X, X, X, X, X,
                    X, IW_JOB_PUBLISH, X, X, X,
                    X},
    [IW_JOB_LANE] = {X, IW_JOB_CLAIM, X, X, X,
                     X, X, X, X, X,
                     X, IW_JOB_PUBLISH, X, IW_JOB_RELEASE, IW_JOB_DROPPED,
                     X},
    [IW_JOB_CLAIM] = {X, X, IW_JOB_CLAIMING, X, X,
                      X, X, X, X, X,
                      X, X, X, IW_JOB_RELEASE, IW_JOB_DROPPED,
                      X},
    [IW_JOB_CLAIMING] = {X, X, X, IW_JOB_READY, IW_JOB_BUSY,
                         X, IW_JOB_CLAIM, X, X, X,
                         X, IW_JOB_PUBLISH, X, IW_JOB_RELEASE, IW_JOB_DROPPED,
                         IW_JOB_NEW},
    [IW_JOB_BUSY] = {X, X, X, X, X,
                     IW_JOB_CLAIM, X, X, X, X,
                     X, X, X, IW_JOB_RELEASE, IW_JOB_DROPPED,
                     X},
    [IW_JOB_READY] = {X, X, X, X, X,
                      X, X, IW_JOB_CALLING, IW_JOB_COMPLETE, X,
                      X, X, X, IW_JOB_RELEASE, X,
                      X},
    [IW_JOB_CALLING] = {X, X, X, X, X,
                        X, X, X, IW_JOB_COMPLETE, IW_JOB_CLAIM,
                        X, X, X, IW_JOB_RELEASE, IW_JOB_DROPPED,
                        X},
    [IW_JOB_COMPLETE] = {X, X, X, X, X,
                         X, X, X, X, X,
                         IW_JOB_COMPLETING, IW_JOB_PUBLISH, X, X, IW_JOB_DROPPED,
                         X},
    [IW_JOB_COMPLETING] = {X, X, X, X, X,
                           X, IW_JOB_COMPLETE, X, X, IW_JOB_CLAIM,
                           X, IW_JOB_PUBLISH, X, X, IW_JOB_DROPPED,
                           X},
    [IW_JOB_RELEASE] = {X, X, X, X, X,
                        X, X, X, X, X,
                        IW_JOB_RELEASING, X, X, X, IW_JOB_DROPPED,
                        X},
    [IW_JOB_RELEASING] = {X, X, X, X, X,
                          X, IW_JOB_RELEASE, X, X, X,
                          X, X, X, X, IW_JOB_DROPPED,
                          X},
    [IW_JOB_PUBLISH] = {X, X, X, X, X,
                        X, X, X, X, X,
                        X, X, IW_JOB_DONE, X, X,
                        X},
    [IW_JOB_DONE] = {X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X},
    [IW_JOB_DROPPED] = {X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X},
};
/* clang-format on */

iw_job_state iw_job_next(iw_job_state s, iw_job_event e)
{
    if ((unsigned)s >= IW_JOB__COUNT || (unsigned)e >= IW_JEV__COUNT)
        return IW_JOB__COUNT;
    return (iw_job_state)NEXT[s][e];
}

bool iw_job_terminal(iw_job_state s)
{
    return s == IW_JOB_DONE || s == IW_JOB_DROPPED;
}

const char *iw_job_state_str(iw_job_state s)
{
    static const char *const names[IW_JOB__COUNT] = {
        "new",       "lane",    "claim",   "claiming",  "busy",      "ready",
        "calling",   "complete", "completing", "release", "releasing", "publish",
        "done",      "dropped"};
    return (unsigned)s < IW_JOB__COUNT ? names[s] : "?";
}

const char *iw_job_event_str(iw_job_event e)
{
    static const char *const names[IW_JEV__COUNT] = {
        "wait",          "first",     "claim_sent", "claimed",    "busy",       "busy_over",
        "ledger_failed", "submitted", "finished",   "fence_lost", "write_sent", "result",
        "delivered",     "give_back", "drop",       "reoffer"};
    return (unsigned)e < IW_JEV__COUNT ? names[e] : "?";
}
