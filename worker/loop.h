/* loop.h: the one event loop: file descriptors through epoll and timers in one min-heap. Every
 * wait of the worker happens in iw_loop_run_once; nothing else blocks. Single-threaded. */
#ifndef IW_LOOP_H
#define IW_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct iw_loop iw_loop;

/* Readiness bits passed to and from the loop. */
#define IW_LOOP_READ 1u
#define IW_LOOP_WRITE 2u
#define IW_LOOP_ERROR 4u /* error or hang-up (reported together with READ and WRITE) */

/* Called when fd is ready; events holds IW_LOOP_* bits. The handler may watch, unwatch or
 * close any descriptor (its own included). */
typedef void (*iw_io_fn)(void *arg, int fd, unsigned events);

/* A timer, embedded by its owner. Zero-initialised it is idle. */
typedef struct iw_timer iw_timer;
typedef void (*iw_timer_fn)(void *arg);
struct iw_timer {
    int64_t due;    /* monotonic ms */
    size_t slot;    /* index in the heap + 1; 0 = not armed */
    uint64_t seq;   /* first armed, first fired among equal due times */
    iw_timer_fn fn; /* set by iw_timer_init */
    void *arg;
};

/* Creates a loop; NULL when out of resources. */
iw_loop *iw_loop_new(void);

/* Frees the loop (watched descriptors are not closed; armed timers are forgotten). */
void iw_loop_free(iw_loop *l);

/* Monotonic milliseconds. */
int64_t iw_loop_now_ms(void);

/* Watches fd for events (IW_LOOP_READ | IW_LOOP_WRITE), replacing an earlier watch of the same
 * fd; events 0 stops watching it. 0, IW_ENOMEM or IW_EIO. */
int iw_loop_watch(iw_loop *l, int fd, unsigned events, iw_io_fn fn, void *arg);

/* Stops watching fd (before it is closed). A no-op when it is not watched. */
void iw_loop_unwatch(iw_loop *l, int fd);

/* Stops watching fd but leaves it in epoll, so that watching it again for the same events
 * costs no system call (libcurl drops a connection's socket after every transfer and takes it
 * back for the next one). Only for a descriptor whose close is reported by iw_loop_forget
 * before it happens: a closed descriptor's number can come back as another socket, which a
 * stale parked slot would then believe registered. A parked descriptor that becomes ready is
 * removed from epoll then. */
void iw_loop_park(iw_loop *l, int fd);

/* fd is about to be closed: forgets its slot without a system call (closing removes it from
 * epoll). */
void iw_loop_forget(iw_loop *l, int fd);

/* Sets a timer's callback (once, before arming it). */
void iw_timer_init(iw_timer *t, iw_timer_fn fn, void *arg);

/* Arms t to fire at due (monotonic ms), re-arming it when armed. 0 or IW_ENOMEM. */
int iw_timer_at(iw_loop *l, iw_timer *t, int64_t due);

/* Disarms t (a no-op when idle). */
void iw_timer_stop(iw_loop *l, iw_timer *t);

/* True while t is armed. */
bool iw_timer_armed(const iw_timer *t);

/* Waits until a watched descriptor is ready, the first timer is due or max_wait_ms passed
 * (0: do not wait), then runs the handlers of ready descriptors and of every due timer.
 * Returns how many handlers ran, or IW_EIO when the wait itself failed. */
int iw_loop_run_once(iw_loop *l, int max_wait_ms);

/* Milliseconds until the first armed timer is due (0 when overdue), or -1 when none is armed. */
int64_t iw_loop_next_timer_ms(const iw_loop *l);

#endif
