/* lanes.c: ordering and coalescing per (tenant, invoice, target), over a chained hash table. */
#include "lanes.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

typedef struct lane {
    char *key;
    uint64_t hash;
    void *inflight; /* the job being sent */
    int64_t inflight_version;
    void *waiting; /* the newest job waiting, or NULL */
    int64_t waiting_version;
    /* jobs superseded by a waiting one (or a newer shadow) whose claim is unanswered, newest
     * first */
    void *shadow[IW_LANE_SHADOWS];
    int64_t shadow_version[IW_LANE_SHADOWS];
    size_t n_shadows;
    struct lane *next; /* bucket chain */
} lane;

struct iw_lanes {
    lane **buckets;
    size_t n_buckets; /* power of two */
    size_t count;     /* lanes present (each has a job in flight) */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

iw_lanes *iw_lanes_new(void)
{
    iw_lanes *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->n_buckets = 1024;
    l->buckets = calloc(l->n_buckets, sizeof(*l->buckets));
    if (!l->buckets) {
        free(l);
        return NULL;
    }
    return l;
}

static lane **find(const iw_lanes *l, const char *key, uint64_t h)
{
    lane **pp = &l->buckets[h & (l->n_buckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(iw_lanes *l)
{
    size_t nb = l->n_buckets * 2;
    lane **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < l->n_buckets; i++) {
        for (lane *n = l->buckets[i], *next; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->n_buckets = nb;
}

/* What offering a job of `version` to lane n (NULL: none) decides. */
static iw_lane_verdict decide(const lane *n, int64_t version)
{
    if (!n)
        return IW_LANE_SEND;
    /* Sending an older or equal state after the one in flight would be useless or harmful. */
    if (version <= n->inflight_version)
        return IW_LANE_STALE;
    if (!n->waiting || version > n->waiting_version)
        return IW_LANE_WAIT;
    /* a shadow of its version is another event (a copy never gets here), which may claim
     * nothing when this one would: it is held too, unless the lane is full of as new ones */
    if (n->n_shadows == IW_LANE_SHADOWS && version <= n->shadow_version[IW_LANE_SHADOWS - 1])
        return IW_LANE_SUPERSEDED;
    return IW_LANE_SHADOW;
}

/* Adds a shadow in its place by version (newest first, after any of its version, which goes
 * first). When the lane holds as many as it can, the oldest goes to *displaced. */
static void add_shadow(lane *n, int64_t version, void *job, void **displaced)
{
    if (n->n_shadows == IW_LANE_SHADOWS)
        *displaced = n->shadow[--n->n_shadows];
    size_t i = n->n_shadows;
    for (; i > 0 && n->shadow_version[i - 1] < version; i--) {
        n->shadow[i] = n->shadow[i - 1];
        n->shadow_version[i] = n->shadow_version[i - 1];
    }
    n->shadow[i] = job;
    n->shadow_version[i] = version;
    n->n_shadows++;
}

/* Takes shadow i off lane n and returns it. */
static void *take_shadow(lane *n, size_t i)
{
    void *s = n->shadow[i];
    n->n_shadows--;
    memmove(&n->shadow[i], &n->shadow[i + 1], (n->n_shadows - i) * sizeof(n->shadow[0]));
    memmove(&n->shadow_version[i], &n->shadow_version[i + 1],
            (n->n_shadows - i) * sizeof(n->shadow_version[0]));
    return s;
}

iw_lane_verdict iw_lanes_verdict(const iw_lanes *l, const char *key, int64_t version)
{
    return decide(*find(l, key, hash_str(key)), version);
}

int iw_lanes_offer(iw_lanes *l, const char *key, int64_t version, void *job, void **displaced)
{
    *displaced = NULL;
    uint64_t h = hash_str(key);
    lane **pp = find(l, key, h);
    lane *n = *pp;
    iw_lane_verdict v = decide(n, version);
    switch (v) {
    case IW_LANE_SEND:
        n = calloc(1, sizeof(*n));
        if (!n || !(n->key = strdup(key))) {
            free(n);
            return IW_ENOMEM;
        }
        n->hash = h;
        n->inflight = job;
        n->inflight_version = version;
        *pp = n;
        if (++l->count > l->n_buckets)
            grow(l);
        break;
    case IW_LANE_WAIT:
        if (n->waiting) /* a shadow now, no older than any other */
            add_shadow(n, n->waiting_version, n->waiting, displaced);
        n->waiting = job;
        n->waiting_version = version;
        break;
    case IW_LANE_SHADOW: add_shadow(n, version, job, displaced); break;
    default: break;
    }
    return v;
}

void *iw_lanes_claimed(iw_lanes *l, const char *key, int64_t version)
{
    lane *n = *find(l, key, hash_str(key));
    for (size_t i = 0; n && i < n->n_shadows; i++)
        if (n->shadow_version[i] <= version)
            return take_shadow(n, i);
    return NULL;
}

int iw_lanes_wait_behind(iw_lanes *l, const char *key, int64_t version, void *job)
{
    lane *n = *find(l, key, hash_str(key));
    if (!n || n->waiting)
        return 0;
    n->waiting = job;
    n->waiting_version = version;
    return 1;
}

void *iw_lanes_done(iw_lanes *l, const char *key)
{
    uint64_t h = hash_str(key);
    lane **pp = find(l, key, h);
    lane *n = *pp;
    if (!n)
        return NULL;
    if (n->waiting) {
        n->inflight = n->waiting;
        n->inflight_version = n->waiting_version;
        n->waiting = NULL;
        return n->inflight;
    }
    if (n->n_shadows) { /* what superseded the newest shadow is gone without claiming anything */
        n->inflight_version = n->shadow_version[0];
        n->inflight = take_shadow(n, 0);
        return n->inflight;
    }
    *pp = n->next;
    free(n->key);
    free(n);
    l->count--;
    return NULL;
}

int iw_lanes_drop_waiting(iw_lanes *l, const char *key, void *job)
{
    lane *n = *find(l, key, hash_str(key));
    if (!n)
        return 0;
    if (n->waiting == job) {
        n->waiting = NULL;
        if (n->n_shadows && n->shadow_version[0] > n->inflight_version) {
            /* the newest shadow, held for it, waits in its place; one no newer than the
             * version in flight stays a shadow, for that version's claim to settle */
            n->waiting_version = n->shadow_version[0];
            n->waiting = take_shadow(n, 0);
        }
        return 1;
    }
    for (size_t i = 0; i < n->n_shadows; i++) {
        if (n->shadow[i] == job) {
            take_shadow(n, i);
            return 1;
        }
    }
    return 0;
}

void iw_lanes_peek(const iw_lanes *l, const char *key, void **inflight, void **waiting,
                   void **shadow)
{
    lane *n = *find(l, key, hash_str(key));
    *inflight = n ? n->inflight : NULL;
    *waiting = n ? n->waiting : NULL;
    if (shadow)
        *shadow = n && n->n_shadows ? n->shadow[0] : NULL;
}

size_t iw_lanes_shadows(const iw_lanes *l, const char *key, void *out[IW_LANE_SHADOWS])
{
    lane *n = *find(l, key, hash_str(key));
    if (!n)
        return 0;
    memcpy(out, n->shadow, n->n_shadows * sizeof(n->shadow[0]));
    return n->n_shadows;
}

size_t iw_lanes_active(const iw_lanes *l)
{
    return l->count;
}

void iw_lanes_free(iw_lanes *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_buckets; i++) {
        for (lane *n = l->buckets[i], *next; n; n = next) {
            next = n->next;
            free(n->key);
            free(n);
        }
    }
    free(l->buckets);
    free(l);
}
