/* ledger.h: the Redis ledger of DESIGN.md section 6: dedup, the version guard and one fence per
 * (tenant, invoice, target) across all processes, in Lua. */
#ifndef IW_LEDGER_H
#define IW_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a claim answered. */
typedef enum iw_claim {
    IW_CLAIM_CLAIMED = 0, /* the fence is ours: send it */
    IW_CLAIM_DUPLICATE,   /* this (event, target) already succeeded: send nothing */
    IW_CLAIM_STALE,       /* a higher version was applied or claimed at this target (or the
                           * same version by another event): send nothing */
    IW_CLAIM_BUSY,        /* another live owner holds the fence: leave it, try later */
    IW_CLAIM_REUSED = 5,  /* this event_id has a record, or was claimed, for another version
                           * of the invoice at this target: an event_id names one event, and the
                           * first version to claim it keeps it, so send nothing */
    IW_CLAIM_SUPERSEDED   /* peek of a refused event with a superseder only: the superseder's
                           * event_id names no other version here, so its claim may claim */
} iw_claim;

/* What a complete or release answered. */
typedef enum iw_ledger_ack {
    IW_LEDGER_DONE = 0, /* recorded */
    IW_LEDGER_LOST      /* the fence is no longer ours (taken, or the claim was overtaken):
                         * nothing written */
} iw_ledger_ack;

/* One (event, target) in a batch. Strings are borrowed for the duration of the call. */
typedef struct iw_ledger_op {
    const char *tenant;
    const char *invoice_id;
    const char *event_id;
    const char *target; /* target instance name */
    int64_t version;
    const char *status;     /* complete only: "succeeded", "failed", "rejected" */
    const char *target_ref; /* complete only: may be NULL */
    int64_t lease_ms;       /* claim and renew: this op's lease (0: the call's lease_ms) */
    bool peek;              /* claim only: ask only whether this event succeeded here:
                             * REUSED when its record here is of another version (by its
                             * outcome or its claim mark), DUPLICATE, else STALE; nothing is
                             * written */
    bool refused;           /* claim with peek: the event is refused before any call; ask
                             * whether its event_id names another version here (REUSED), it
                             * succeeded here (DUPLICATE) or is older than what was applied or
                             * claimed (STALE), else CLAIMED; nothing is written */
    const char *superseder; /* claim with peek and refused (may be NULL): the event_id of a
                             * newer version that supersedes the refused one in its lane and has
                             * not claimed yet. Then the refused event's own event_id naming
                             * another version decides nothing (no REUSED); last, instead of
                             * CLAIMED: SUPERSEDED unless the superseder's event_id names another
                             * version here (its claim will be refused as reused and claim
                             * nothing), then CLAIMED */
    int64_t superseder_version;
    char *ref_out;          /* claim, out (when not NULL): on DUPLICATE, the target_ref the
                             * success recorded ("" when none), cut to ref_cap - 1 bytes */
    size_t ref_cap;
    bool may_be_applied;    /* complete and release: an attempt of this call may have been
                             * applied (the event stays in doubt for its next claim, unless
                             * the outcome is a success) */
    int answer;             /* out: iw_claim for claim, iw_ledger_ack for complete/release */
    bool in_doubt;          /* out, claim: CLAIMED, and an earlier owner claimed this event and
                             * left neither its outcome nor word that nothing it sent can have
                             * been applied (it may have been: ask for no customer e-mail) */
} iw_ledger_op;

typedef struct iw_ledger iw_ledger;

/* Connects to Redis (password may be NULL) and loads the scripts. ttl_s is how long outcome
 * records live. Returns NULL with a reason in errbuf (never containing the password). */
iw_ledger *iw_ledger_new(const char *host, int port, const char *password, int64_t ttl_s,
                         int connect_timeout_ms, char *errbuf, size_t errlen);

/* Claims the (invoice, target) fence for n ops for owner with a lease of lease_ms (or the op's
 * own lease_ms where it is set), pipelined in one round trip; a claim also raises the highest
 * claimed version there (see ledger.c). The same owner may claim a fence it holds again. Sets
 * each op's answer. Returns 0, or IW_EIO when Redis failed (answers then mean nothing;
 * reconnect with iw_ledger_reconnect and try again). */
int iw_ledger_claim(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner, int64_t lease_ms);

/* Records outcomes (op->status) for n ops whose fence owner is `owner`, and frees the fence; a
 * "succeeded" outcome raises the invoice's applied version for that target and makes later
 * claims of the event DUPLICATE. An op whose fence another owner took (or whose claim was
 * overtaken after the lease ran out) answers IW_LEDGER_LOST and writes nothing: its outcome
 * must not be reported. Returns 0 or IW_EIO. */
int iw_ledger_complete(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner);

/* Frees owner's fences of n ops without recording an outcome (revoke, shutdown). Answers
 * IW_LEDGER_LOST for a fence that was not ours. 0 or IW_EIO. */
int iw_ledger_release(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner);

/* Extends owner's fence leases of n ops to lease_ms (or the op's own) from now; an op whose fence
 * is no longer ours answers IW_LEDGER_LOST (its call must not be sent again). 0 or IW_EIO. */
int iw_ledger_renew(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner, int64_t lease_ms);

/* PING. 0 when Redis answers, IW_EIO otherwise. */
int iw_ledger_ping(iw_ledger *l);

/* Drops the connection and connects again (scripts reloaded). 0 or IW_EIO. */
int iw_ledger_reconnect(iw_ledger *l, char *errbuf, size_t errlen);

/* Frees the ledger; NULL is a no-op. */
void iw_ledger_free(iw_ledger *l);

/*
 * The same ledger on the event loop, through hiredis' async API: nothing waits on Redis. A
 * batch is sent at once (pipelined) and its done callback runs from the loop when the last
 * answer is in, with 0 (answers in ops) or IW_EIO (the connection failed, timed out or Redis
 * answered an error: answers mean nothing, the connection is closed, connect again). A reply
 * that takes longer than io_timeout_ms, or a connect that does, closes the connection.
 */
typedef struct iw_aledger iw_aledger;
struct iw_loop;

/* A batch's end. ops (and owner) belong to the caller until this runs. */
typedef void (*iw_ledger_done_fn)(void *arg, int rc);

/* The connection came up (AUTH and scripts loaded), or went down with a reason (never holding
 * the password). */
typedef void (*iw_ledger_state_fn)(void *arg, bool up, const char *why);

/* Creates the ledger on loop (not connected yet). NULL on invalid input or out of memory. */
iw_aledger *iw_aledger_new(struct iw_loop *loop, const char *host, int port, const char *password,
                           int64_t ttl_s, int io_timeout_ms, iw_ledger_state_fn on_state,
                           void *state_arg);

/* Starts connecting when down (a no-op while connecting or up); on_state reports the end.
 * 0, or IW_EIO / IW_ENOMEM when the attempt failed at once (iw_aledger_why says why). */
int iw_aledger_connect(iw_aledger *a);

/* True once connected with the scripts loaded, until the connection ends. */
bool iw_aledger_up(const iw_aledger *a);

/* Why the last connection ended or failed. */
const char *iw_aledger_why(const iw_aledger *a);

/* True when the last connection ended because Redis answered and refused the worker (AUTH,
 * SCRIPT LOAD, a policy that evicts keys), not because it did not answer; false once up. */
bool iw_aledger_refused(const iw_aledger *a);

/* As iw_ledger_claim/complete/release/renew, for n > 0 ops. 0: done runs later, exactly once
 * (on an internal failure it may run before this returns). Otherwise done never runs:
 * IW_EIO when not up, IW_EINVAL on malformed input, IW_ENOMEM. */
int iw_aledger_claim(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                     int64_t lease_ms, iw_ledger_done_fn done, void *arg);
int iw_aledger_complete(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                        iw_ledger_done_fn done, void *arg);
int iw_aledger_release(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                       iw_ledger_done_fn done, void *arg);
int iw_aledger_renew(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                     int64_t lease_ms, iw_ledger_done_fn done, void *arg);

/* Closes the connection and frees; pending batches end first with IW_EIO. NULL is a no-op. */
void iw_aledger_free(iw_aledger *a);

#endif
