/* lanes.h: per-(tenant, invoice, target) ordering: one call in flight, only the newest version
 * waits behind it, older waiting versions are superseded (coalescing). Pure bookkeeping.
 *
 * Superseding assumes the newer version will be sent. It may not be: the ledger refuses a
 * version whose event_id already names another version of the invoice there (an upstream bug),
 * and that one claims nothing; nor may the one it superseded, when upstream reused its id too.
 * So the versions a waiting one supersedes are kept as the lane's shadows (up to
 * IW_LANE_SHADOWS, the newest) until a claim in the lane is answered: a claim of a shadow's
 * version or newer settles it (iw_lanes_claimed: superseded after all); when the newer jobs all
 * end without claiming, the lane sends the newest shadow next (iw_lanes_done), and so on. */
#ifndef IW_LANES_H
#define IW_LANES_H

#include <stddef.h>
#include <stdint.h>

typedef struct iw_lanes iw_lanes;

/* The shadows a lane holds at most: that many versions in a row under event_ids already used
 * at the target still leave the one before them to be sent. */
#define IW_LANE_SHADOWS 4

/* What iw_lanes_offer decided for the offered job. */
typedef enum iw_lane_verdict {
    IW_LANE_SEND = 0,   /* the lane was idle: the job is now in flight, send it */
    IW_LANE_WAIT,       /* queued behind the in-flight job (may have displaced an older one) */
    IW_LANE_SUPERSEDED, /* an equal or newer version is already waiting, and the lane holds
                         * IW_LANE_SHADOWS shadows as new or newer */
    IW_LANE_SHADOW,     /* superseded by the waiting version, and kept as one of the lane's
                         * shadows until a claim settles it (may have displaced the oldest) */
    IW_LANE_STALE       /* an equal or newer version is already in flight: claimed at the
                         * ledger, which would answer stale too */
} iw_lane_verdict;

/* Creates an empty set of lanes; NULL when out of memory. */
iw_lanes *iw_lanes_new(void);

/* Offers job (opaque to the lanes) with its invoice version on lane `key`. When the verdict is
 * WAIT (the waiting job it displaced becomes the newest shadow) or SHADOW and the lane then held
 * more than IW_LANE_SHADOWS, *displaced gets the oldest shadow (it is superseded now), else
 * NULL. Returns the verdict, or a negative IW_ENOMEM. */
int iw_lanes_offer(iw_lanes *l, const char *key, int64_t version, void *job, void **displaced);

/* The verdict iw_lanes_offer would give a job of `version` on lane `key`, changing nothing. */
iw_lane_verdict iw_lanes_verdict(const iw_lanes *l, const char *key, int64_t version);

/* The first job of lane `key`, of `version`, had its claim answered with anything but a refusal
 * that claims nothing: the ledger's claimed version is now at least `version`. Returns the
 * newest shadow no newer than that (it is superseded after all: taken off the lane), else NULL;
 * call again until NULL to settle them all. */
void *iw_lanes_claimed(iw_lanes *l, const char *key, int64_t version);

/* Puts job (same version as the in-flight one, e.g. a redelivery of it) behind the in-flight
 * job of lane `key` when nothing waits there. Returns 1 when queued, 0 when the lane is idle or
 * a job already waits. */
int iw_lanes_wait_behind(iw_lanes *l, const char *key, int64_t version, void *job);

/* Ends the in-flight job of lane `key`; returns the waiting job, else the newest shadow, that is
 * now in flight (send it), or NULL when the lane is idle (and forgotten). */
void *iw_lanes_done(iw_lanes *l, const char *key);

/* Removes a waiting or shadow job that equals `job` from lane `key` (e.g. its partition was
 * revoked); the newest shadow, when newer than the version in flight, then waits in the place of
 * a waiting job removed. Returns 1 when removed, 0 when it was not held there. */
int iw_lanes_drop_waiting(iw_lanes *l, const char *key, void *job);

/* The job in flight on lane `key`, the one waiting behind it and, when shadow is not NULL, the
 * lane's newest shadow (any may be NULL): one lookup. */
void iw_lanes_peek(const iw_lanes *l, const char *key, void **inflight, void **waiting,
                   void **shadow);

/* Copies the shadows of lane `key` to out, newest first; returns how many. */
size_t iw_lanes_shadows(const iw_lanes *l, const char *key, void *out[IW_LANE_SHADOWS]);

/* Lanes with a job in flight. */
size_t iw_lanes_active(const iw_lanes *l);

/* Frees the lanes (not the jobs); NULL is a no-op. */
void iw_lanes_free(iw_lanes *l);

#endif
