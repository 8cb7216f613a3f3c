/* lanes.h: per-(tenant, invoice, target) ordering: one call in flight, only the newest version
 * waits behind it, older waiting versions are superseded (coalescing). Pure bookkeeping. */
#ifndef IW_LANES_H
#define IW_LANES_H

#include <stddef.h>
#include <stdint.h>

typedef struct iw_lanes iw_lanes;

/* What iw_lanes_offer decided for the offered job. */
typedef enum iw_lane_verdict {
    IW_LANE_SEND = 0,   /* the lane was idle: the job is now in flight, send it */
    IW_LANE_WAIT,       /* queued behind the in-flight job (may have displaced an older one) */
    IW_LANE_SUPERSEDED, /* an equal or newer version is already waiting (coalesced) */
    IW_LANE_STALE       /* an equal or newer version is already in flight: claimed at the
                         * ledger, which would answer stale too */
} iw_lane_verdict;

/* Creates an empty set of lanes; NULL when out of memory. */
iw_lanes *iw_lanes_new(void);

/* Offers job (opaque to the lanes) with its invoice version on lane `key`. When the verdict is
 * WAIT and an older waiting job was displaced, *displaced gets it (it is superseded), else
 * NULL. Returns the verdict, or a negative IW_ENOMEM. */
int iw_lanes_offer(iw_lanes *l, const char *key, int64_t version, void *job, void **displaced);

/* Puts job (same version as the in-flight one, e.g. a redelivery of it) behind the in-flight
 * job of lane `key` when nothing waits there. Returns 1 when queued, 0 when the lane is idle or
 * a job already waits. */
int iw_lanes_wait_behind(iw_lanes *l, const char *key, int64_t version, void *job);

/* Ends the in-flight job of lane `key`; returns the waiting job that is now in flight (send
 * it), or NULL when the lane is idle (and forgotten). */
void *iw_lanes_done(iw_lanes *l, const char *key);

/* Removes a waiting job that equals `job` from lane `key` (e.g. its partition was revoked).
 * Returns 1 when removed, 0 when it was not waiting there. */
int iw_lanes_drop_waiting(iw_lanes *l, const char *key, void *job);

/* The job in flight on lane `key` and the one waiting behind it (either may be NULL). */
void iw_lanes_peek(const iw_lanes *l, const char *key, void **inflight, void **waiting);

/* Lanes with a job in flight. */
size_t iw_lanes_active(const iw_lanes *l);

/* Frees the lanes (not the jobs); NULL is a no-op. */
void iw_lanes_free(iw_lanes *l);

#endif
