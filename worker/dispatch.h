/* dispatch.h: the HTTP engine: one libcurl multi handle, per-target concurrency, retries with
 * full-jitter backoff, Retry-After, token-bucket rate limits and circuit breakers (DESIGN.md 7). */
#ifndef IW_DISPATCH_H
#define IW_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "invoice.h"
#include "loop.h"
#include "target.h"

/* The end of one (event, target) call, after every attempt. */
typedef struct iw_call_result {
    iw_outcome outcome;          /* OK, PERMANENT, AUTH; retries used up are PERMANENT with
                                  * error_kind IW_ERR_EXHAUSTED (or the last transient kind when
                                  * the validation/render failed: IW_ERR_VALIDATION) */
    bool rejected;               /* validation or render refused it: nothing was sent */
    bool abandoned;              /* abandon_all or cancel ended it before an answer */
    bool on_wire;                /* with abandoned: a transfer was cut off on the wire, so
                                  * the target may still apply it */
    bool lease_expired;          /* with abandoned: its fence lease could not cover another
                                  * attempt, so none was started (see submit_fenced) */
    bool shed;                   /* ended by iw_dispatch_shed: PERMANENT, IW_ERR_UNAVAILABLE */
    int attempts;                /* HTTP attempts made, an earlier call's (iw_call_prior)
                                  * included (0 when rejected) */
    long http_status;            /* status of this call's last reply, 0 when none */
    int64_t first_attempt_at_ms; /* wall clock (ms since epoch) of the first attempt, 0 if none */
    int64_t first_attempt_mono;  /* monotonic ms of the first attempt, 0 if none */
    int64_t finished_at_ms;      /* wall clock when it ended */
    int64_t settle_until_ms;     /* monotonic ms until which an attempt that ended without an
                                  * answer after its request went out may still be applied by
                                  * the target (its end + timeouts.settle_ms); 0: none */
    bool maybe_applied;          /* an attempt (or the call given with submit) may have been
                                  * applied, a success included: attempts after it are rendered
                                  * with iw_render_ctx.may_be_applied, and so should a call of
                                  * the same (event, target) submitted later */
} iw_call_result;

/* Called once per submitted call, from inside iw_dispatch_run (or abandon_all). The event
 * passed to submit may be freed from here on. */
typedef void (*iw_call_done_fn)(void *arg, const iw_call_result *res);

typedef struct iw_dispatch iw_dispatch;

/* Per-target counters for metrics and tests. */
typedef struct iw_dispatch_stats {
    uint64_t requests;      /* HTTP attempts completed (any reply or transport error) */
    uint64_t retries;       /* attempts scheduled after a transient failure */
    uint64_t breaker_opens; /* times the breaker opened */
    bool breaker_open;      /* open right now */
    int in_flight;          /* transfers running now */
    int waiting;            /* calls queued for a slot, a backoff delay or the breaker */
} iw_dispatch_stats;

/* One finished HTTP attempt, for an observer (metrics, logs). Borrowed pointers. */
typedef struct iw_attempt_info {
    const iw_target_conf *tc;
    const iw_event *ev;        /* NULL for a token refresh call */
    int attempt;               /* 1-based attempt of the call; 0 for a token refresh */
    long status;               /* HTTP status, 0 = transport error */
    double seconds;            /* duration of the attempt */
    const iw_outcome *outcome; /* how the reply was classified; NULL for a token refresh */
} iw_attempt_info;

/* Optional observer of every finished HTTP attempt. */
typedef void (*iw_attempt_fn)(void *arg, const iw_attempt_info *a);

/* Creates the engine for cfg's targets (cfg must outlive it). NULL with errbuf on failure. */
iw_dispatch *iw_dispatch_new(const iw_config *cfg, char *errbuf, size_t errlen);

/* Same, on the caller's loop (which must outlive it): libcurl's sockets and timeout and the
 * engine's own timer are watched there (curl_multi_socket_action), and the engine moves and
 * calls back from the loop's handlers. */
iw_dispatch *iw_dispatch_new_in(const iw_config *cfg, iw_loop *loop, char *errbuf, size_t errlen);

/* Sets an observer for finished attempts (may be NULL). */
void iw_dispatch_set_observer(iw_dispatch *d, iw_attempt_fn fn, void *arg);

/* Queues one call of event ev to target instance tc (must belong to cfg). The engine validates
 * and renders it (ops of tc->type), adds the per-call headers (Idempotency-Key,
 * X-Request-ID with the attempt number, traceparent when not NULL), sends it, classifies
 * the reply and retries as configured, then calls done(arg, result) exactly once. ev and
 * traceparent are borrowed until done is called. Returns 0, or IW_EINVAL for an unknown
 * adapter type (done is then never called). */
int iw_dispatch_submit(iw_dispatch *d, const iw_target_conf *tc, const iw_event *ev,
                       const char *traceparent, iw_call_done_fn done, void *arg);

/* What earlier calls of the same (event, target) did, for a call submitted again (its fence
 * was lost and claimed back): the call goes on from them. Its attempts are numbered after
 * theirs (X-Request-ID), retry.max_attempts counts theirs and retry.max_elapsed_s runs from
 * their first attempt; a call those limits leave no attempt ends exhausted unsent, unless
 * resend says the earlier call ended with an outcome that could not be recorded (it is then
 * sent once more, whatever the limits: what the target holds is not known; until that attempt
 * it waits, and may be shed, as a call not yet attempted; after it the limits hold as for any
 * call, so it is not retried when they are used up, nor its token refreshed). */
typedef struct iw_call_prior {
    bool maybe_applied;          /* an attempt of theirs may have been applied */
    bool resend;                 /* theirs ended, but its outcome was lost with the fence */
    int attempts;                /* attempts they made */
    int64_t first_attempt_mono;  /* monotonic ms of the first of them (with attempts > 0) */
    int64_t first_attempt_at_ms; /* wall clock of it */
} iw_call_prior;

/* Same as iw_dispatch_submit for a call sent under a ledger fence lease: *lease_until (monotonic
 * ms, kept current by the caller, borrowed until done) is when the lease may be gone; prior
 * (may be NULL, copied) is what earlier calls of this (event, target) did. An attempt starts
 * only when it must end, by the target's timeouts.request_ms, and its settle time
 * (iw_target_settle_ms) after that, at least IW_DISPATCH_LEASE_GUARD_MS before then;
 * otherwise the call ends abandoned with lease_expired. A NULL lease_until means no fence. */
int iw_dispatch_submit_fenced(iw_dispatch *d, const iw_target_conf *tc, const iw_event *ev,
                              const char *traceparent, const int64_t *lease_until,
                              const iw_call_prior *prior, iw_call_done_fn done, void *arg);

/* The target's own rules for ev (iw_target_validate of tc's adapter): 0, or IW_EINVAL with why
 * saying what they refuse, masked as a call's outcome message is (the target's secrets never
 * in it). A refused event is refused by submit or its attempt too; callers ask first to keep
 * it out of their ordering (a version that cannot be sent supersedes nothing and claims
 * nothing). With render, or for an adapter whose render refuses more than its validate
 * (generic), ev's request is also made as an attempt would make it (the render, the call
 * headers, the check that nothing from the event becomes a header) and thrown away; memory
 * running out is no refusal. A render costs as much as the attempt's own: callers ask for one
 * only where a refusal found at the attempt would come too late (a version about to
 * supersede another). */
int iw_dispatch_validate(iw_dispatch *d, const iw_target_conf *tc, const iw_event *ev,
                         const char *traceparent, bool render, char *why, size_t len);

/* Slack between the end of the last attempt a lease may cover and the lease's end. */
#define IW_DISPATCH_LEASE_GUARD_MS 1000

/* Same as iw_dispatch_submit with an explicit adapter (tests pass a fake one), and
 * lease_until and prior as for iw_dispatch_submit_fenced. ops must outlive the call.
 * Returns 0. */
int iw_dispatch_submit_ops(iw_dispatch *d, const iw_target_ops *ops, const iw_target_conf *tc,
                           const iw_event *ev, const char *traceparent, const int64_t *lease_until,
                           const iw_call_prior *prior, iw_call_done_fn done, void *arg);

/* Drives the engine through one turn of its loop: waits up to timeout_ms for network activity
 * or the next timer, moves transfers forward, and runs done callbacks of finished calls.
 * extra_fd (or -1) is also waited on for readability so a caller can wake it. For an engine
 * on its own loop (iw_dispatch_new); on a shared loop, run the loop instead. 0 or IW_EIO. */
int iw_dispatch_run(iw_dispatch *d, int timeout_ms, int extra_fd);

/* Starts now what may start now (calls just submitted go on the wire in this turn) and runs
 * the callbacks of finished calls. */
void iw_dispatch_flush(iw_dispatch *d);

/* Calls submitted and not yet done. */
size_t iw_dispatch_pending(const iw_dispatch *d);

/* True while the global max_in_flight allows another submit. */
bool iw_dispatch_has_capacity(const iw_dispatch *d);

/* Cancels the call submitted with `arg`: when it is queued, backing off or waiting for a token,
 * it ends now (done is called from here, abandoned = true); when a transfer is on the wire, it
 * may finish but no further attempt starts. Returns 1 when it ended now, 0 when it is on the
 * wire, -1 when no such call is pending. */
int iw_dispatch_cancel(iw_dispatch *d, void *arg);

/* Ends, now, every call that waits (queued for a slot, or backing off; never one on the wire or
 * waiting for a token refresh) at a target whose breaker is open, has been down (no probe
 * succeeded) for breaker.shed_after_s at least, and whose breaker.shed is on:
 * done is called from here with outcome PERMANENT, error_kind IW_ERR_UNAVAILABLE and shed set.
 * For a worker whose room is taken by a dead target's waiting calls. Returns how many ended. */
size_t iw_dispatch_shed(iw_dispatch *d);

/* Ends every pending call now: done is called with abandoned = true. */
void iw_dispatch_abandon_all(iw_dispatch *d);

/* Counters of one target instance (by name); zeroed struct when unknown. */
iw_dispatch_stats iw_dispatch_target_stats(const iw_dispatch *d, const char *target);

/* Frees the engine; pending calls are abandoned first (their callbacks run). NULL is a no-op. */
void iw_dispatch_free(iw_dispatch *d);

#endif
