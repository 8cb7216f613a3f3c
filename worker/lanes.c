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
    void *shadow; /* the newest job superseded by a waiting one whose claim is unanswered */
    int64_t shadow_version;
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

static lane **find(iw_lanes *l, const char *key, uint64_t h)
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

int iw_lanes_offer(iw_lanes *l, const char *key, int64_t version, void *job, void **displaced)
{
    *displaced = NULL;
    uint64_t h = hash_str(key);
    lane **pp = find(l, key, h);
    lane *n = *pp;
    if (!n) {
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
        return IW_LANE_SEND;
    }
    /* Sending an older or equal state after the one in flight would be useless or harmful. */
    if (version <= n->inflight_version)
        return IW_LANE_STALE;
    if (n->waiting && version <= n->waiting_version) {
        if (n->shadow && version <= n->shadow_version)
            return IW_LANE_SUPERSEDED;
        *displaced = n->shadow;
        n->shadow = job;
        n->shadow_version = version;
        return IW_LANE_SHADOW;
    }
    if (n->waiting) { /* newer than the shadow: it was offered after it, or displaced it */
        *displaced = n->shadow;
        n->shadow = n->waiting;
        n->shadow_version = n->waiting_version;
    }
    n->waiting = job;
    n->waiting_version = version;
    return IW_LANE_WAIT;
}

void *iw_lanes_claimed(iw_lanes *l, const char *key, int64_t version)
{
    lane *n = *find(l, key, hash_str(key));
    if (!n || !n->shadow || version < n->shadow_version)
        return NULL;
    void *s = n->shadow;
    n->shadow = NULL;
    return s;
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
    if (n->shadow) { /* what superseded it is gone without claiming anything */
        n->inflight = n->shadow;
        n->inflight_version = n->shadow_version;
        n->shadow = NULL;
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
    if (n && n->waiting == job) {
        n->waiting = NULL;
        if (n->shadow && n->shadow_version > n->inflight_version) {
            /* the shadow, held only for it, waits in its place; one no newer than the version
             * in flight stays the shadow, for that version's claim to settle */
            n->waiting = n->shadow;
            n->waiting_version = n->shadow_version;
            n->shadow = NULL;
        }
        return 1;
    }
    if (n && n->shadow == job) {
        n->shadow = NULL;
        return 1;
    }
    return 0;
}

void iw_lanes_peek(const iw_lanes *l, const char *key, void **inflight, void **waiting,
                   void **shadow)
{
    lane *n = *find((iw_lanes *)l, key, hash_str(key));
    *inflight = n ? n->inflight : NULL;
    *waiting = n ? n->waiting : NULL;
    if (shadow)
        *shadow = n ? n->shadow : NULL;
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
