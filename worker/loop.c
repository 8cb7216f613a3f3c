/* loop.c: epoll for descriptors, one min-heap for timers.
 *
 * Watches are kept in a table indexed by descriptor, and ready events carry the descriptor,
 * never a pointer: a handler that unwatches (or closes) another descriptor reported in the same
 * batch makes that event a no-op instead of a use after free. A descriptor closed and reused
 * within one batch may see one spurious readiness report, which non-blocking handlers ignore. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

#define MAX_EVENTS 256

typedef struct watch {
    iw_io_fn fn; /* NULL: not watched */
    void *arg;
    unsigned events;
    unsigned parked; /* not watched, but still in epoll for these events (iw_loop_park) */
} watch;

struct iw_loop {
    int ep;
    watch *w; /* indexed by fd */
    size_t n_w;
    iw_timer **heap; /* min-heap on (due, seq) */
    size_t n_heap, cap_heap;
    uint64_t seq;
};

int64_t iw_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

iw_loop *iw_loop_new(void)
{
    iw_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep < 0) {
        free(l);
        return NULL;
    }
    return l;
}

void iw_loop_free(iw_loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_heap; i++)
        l->heap[i]->slot = 0;
    close(l->ep);
    free(l->w);
    free(l->heap);
    free(l);
}

/* --- descriptors --- */

static uint32_t ep_bits(unsigned events)
{
    return (events & IW_LOOP_READ ? EPOLLIN : 0u) | (events & IW_LOOP_WRITE ? EPOLLOUT : 0u);
}

int iw_loop_watch(iw_loop *l, int fd, unsigned events, iw_io_fn fn, void *arg)
{
    if (fd < 0)
        return IW_EINVAL;
    if (!events) {
        iw_loop_unwatch(l, fd);
        return 0;
    }
    if ((size_t)fd >= l->n_w) {
        size_t n = l->n_w ? l->n_w : 64;
        while (n <= (size_t)fd)
            n *= 2;
        watch *w = realloc(l->w, n * sizeof(*w));
        if (!w)
            return IW_ENOMEM;
        memset(w + l->n_w, 0, (n - l->n_w) * sizeof(*w));
        l->w = w;
        l->n_w = n;
    }
    watch *w = &l->w[fd];
    if (w->parked == events) { /* still in epoll for exactly these: nothing to tell the kernel */
        w->parked = 0;
        w->fn = fn;
        w->arg = arg;
        w->events = events;
        return 0;
    }
    struct epoll_event ev = {.events = ep_bits(events), .data.fd = fd};
    /* a descriptor closed without an unwatch left its slot behind: ADD and MOD both tried */
    int op = w->fn || w->parked ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(l->ep, op, fd, &ev) != 0) {
        int alt = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if ((errno != ENOENT && errno != EEXIST) || epoll_ctl(l->ep, alt, fd, &ev) != 0)
            return IW_EIO;
    }
    w->parked = 0;
    w->fn = fn;
    w->arg = arg;
    w->events = events;
    return 0;
}

void iw_loop_unwatch(iw_loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_w || (!l->w[fd].fn && !l->w[fd].parked))
        return;
    epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL); /* ENOENT/EBADF after a close: nothing to do */
    memset(&l->w[fd], 0, sizeof(l->w[fd]));
}

void iw_loop_park(iw_loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_w || !l->w[fd].fn)
        return;
    watch *w = &l->w[fd];
    w->parked = w->events;
    w->fn = NULL;
    w->arg = NULL;
    w->events = 0;
}

void iw_loop_forget(iw_loop *l, int fd)
{
    if (fd >= 0 && (size_t)fd < l->n_w)
        memset(&l->w[fd], 0, sizeof(l->w[fd]));
}

/* --- timers --- */

static bool before(const iw_timer *a, const iw_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(iw_loop *l, size_t i, iw_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(iw_loop *l, size_t i)
{
    iw_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, l->heap[parent]))
            break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void sift_down(iw_loop *l, size_t i)
{
    iw_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap)
            break;
        if (c + 1 < l->n_heap && before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!before(l->heap[c], t))
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void iw_timer_init(iw_timer *t, iw_timer_fn fn, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->fn = fn;
    t->arg = arg;
}

bool iw_timer_armed(const iw_timer *t)
{
    return t->slot != 0;
}

void iw_timer_stop(iw_loop *l, iw_timer *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    iw_timer *last = l->heap[--l->n_heap];
    if (i == l->n_heap)
        return;
    heap_set(l, i, last);
    sift_up(l, i);
    sift_down(l, last->slot - 1);
}

int iw_timer_at(iw_loop *l, iw_timer *t, int64_t due)
{
    if (t->slot) {
        if (t->due == due)
            return 0;
        iw_timer_stop(l, t);
    }
    if (l->n_heap == l->cap_heap) {
        size_t cap = l->cap_heap ? l->cap_heap * 2 : 16;
        iw_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h)
            return IW_ENOMEM;
        l->heap = h;
        l->cap_heap = cap;
    }
    t->due = due;
    t->seq = l->seq++;
    heap_set(l, l->n_heap++, t);
    sift_up(l, l->n_heap - 1);
    return 0;
}

int64_t iw_loop_next_timer_ms(const iw_loop *l)
{
    if (!l->n_heap)
        return -1;
    int64_t d = l->heap[0]->due - iw_loop_now_ms();
    return d > 0 ? d : 0;
}

/* Fires every timer due by now; timers armed by these handlers for now or earlier wait for the
 * next turn, so a handler that re-arms itself cannot starve the descriptors. */
static int fire_timers(iw_loop *l)
{
    int n = 0;
    int64_t now = iw_loop_now_ms();
    uint64_t horizon = l->seq;
    while (l->n_heap && l->heap[0]->due <= now && l->heap[0]->seq < horizon) {
        iw_timer *t = l->heap[0];
        iw_timer_stop(l, t);
        t->fn(t->arg);
        n++;
    }
    return n;
}

int iw_loop_run_once(iw_loop *l, int max_wait_ms)
{
    int64_t wait = max_wait_ms > 0 ? max_wait_ms : 0;
    int64_t next = iw_loop_next_timer_ms(l);
    if (next >= 0 && next < wait)
        wait = next;
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(l->ep, evs, MAX_EVENTS, (int)wait);
    if (n < 0 && errno != EINTR)
        return IW_EIO;
    int ran = 0;
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if ((size_t)fd >= l->n_w)
            continue;
        if (!l->w[fd].fn) { /* unwatched by an earlier handler of this batch, or parked */
            if (l->w[fd].parked)
                iw_loop_unwatch(l, fd); /* parked and ready (a peer closing): now it goes */
            continue;
        }
        uint32_t e = evs[i].events;
        unsigned bits = (e & EPOLLIN ? IW_LOOP_READ : 0u) | (e & EPOLLOUT ? IW_LOOP_WRITE : 0u);
        if (e & (EPOLLERR | EPOLLHUP))
            bits |= IW_LOOP_ERROR | (l->w[fd].events & (IW_LOOP_READ | IW_LOOP_WRITE));
        l->w[fd].fn(l->w[fd].arg, fd, bits);
        ran++;
    }
    return ran + fire_timers(l);
}
