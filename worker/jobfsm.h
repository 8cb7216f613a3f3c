/* jobfsm.h: the life of one (event, target) job as a pure state machine. The pipeline moves a
 * job only through iw_job_next, so every move is one the table allows; a move it does not
 * allow is a bug the pipeline stops on, before an offset could pass the job.
 *
 *   NEW -> LANE (waits behind the lane's first job) -> CLAIM
 *   NEW -> CLAIM -> CLAIMING -> (BUSY -> CLAIM)* -> READY -> CALLING -> COMPLETE -> COMPLETING
 *       -> PUBLISH -> DONE
 *   duplicate, stale, superseded, rejected: -> PUBLISH without a call
 *   stale in its lane, but the newer version first there claimed nothing: CLAIMING -> NEW
 *   (offered to its lane again)
 *   a lost fence: CALLING or COMPLETING -> CLAIM (again, from the front of its lane)
 *   a ledger batch that failed: CLAIMING -> CLAIM, COMPLETING -> COMPLETE, RELEASING -> RELEASE
 *   revoke or stop: a held fence is given back (-> RELEASE -> RELEASING -> DROPPED), anything
 *   else not on the wire is dropped (-> DROPPED; its message is never committed here)
 *   stop while a finished call's unanswered attempt may still be applied (COMPLETE or RELEASE,
 *   settling): dropped with its fence kept until the lease runs out
 */
#ifndef IW_JOBFSM_H
#define IW_JOBFSM_H

#include <stdbool.h>

typedef enum iw_job_state {
    IW_JOB_NEW = 0,    /* routed, not yet offered to its lane */
    IW_JOB_LANE,       /* waiting in its lane behind the lane's first job (holds nothing) */
    IW_JOB_CLAIM,      /* first in its lane, waiting for a claim batch */
    IW_JOB_CLAIMING,   /* in a claim batch on its way */
    IW_JOB_BUSY,       /* another owner holds the fence; claim again later */
    IW_JOB_READY,      /* holds the fence, waiting for dispatcher capacity */
    IW_JOB_CALLING,    /* submitted to the dispatcher */
    IW_JOB_COMPLETE,   /* the call ended: waiting for a complete batch */
    IW_JOB_COMPLETING, /* in a complete batch on its way */
    IW_JOB_RELEASE,    /* abandoned with a fence: waiting for a release batch */
    IW_JOB_RELEASING,  /* in a release batch on its way */
    IW_JOB_PUBLISH,    /* result produced, waiting for the broker's acknowledgement */
    IW_JOB_DONE,       /* terminal: its result is acknowledged */
    IW_JOB_DROPPED,    /* terminal: abandoned here; its message is never committed here */
    IW_JOB__COUNT
} iw_job_state;

typedef enum iw_job_event {
    IW_JEV_WAIT,          /* the lane is taken: wait behind its first job */
    IW_JEV_FIRST,         /* first in its lane: claim the fence */
    IW_JEV_CLAIM_SENT,    /* put in a claim batch */
    IW_JEV_CLAIMED,       /* the fence is ours */
    IW_JEV_BUSY,          /* another owner holds the fence */
    IW_JEV_BUSY_OVER,     /* the wait before claiming again is over */
    IW_JEV_LEDGER_FAILED, /* its batch failed (Redis): back to the queue it came from */
    IW_JEV_SUBMITTED,     /* handed to the dispatcher */
    IW_JEV_FINISHED,      /* the call has its outcome (or could not be made) */
    IW_JEV_FENCE_LOST,    /* the fence was lost before the outcome was recorded: claim again */
    IW_JEV_WRITE_SENT,    /* put in a complete or release batch */
    IW_JEV_RESULT,        /* its result is produced */
    IW_JEV_DELIVERED,     /* the broker acknowledged every message of its result */
    IW_JEV_GIVE_BACK,     /* revoke or stop with the fence held: release it */
    IW_JEV_DROP,          /* revoke or stop: abandon here */
    IW_JEV_REOFFER,       /* its lane's stale verdict no longer holds (the newer version it was
                           * refused for claimed nothing): offered to its lane again */
    IW_JEV__COUNT
} iw_job_event;

/* The state event e leads to from s, or IW_JOB__COUNT when the move is not allowed. */
iw_job_state iw_job_next(iw_job_state s, iw_job_event e);

/* True for DONE and DROPPED. */
bool iw_job_terminal(iw_job_state s);

/* Short names for logs. */
const char *iw_job_state_str(iw_job_state s);
const char *iw_job_event_str(iw_job_event e);

#endif
