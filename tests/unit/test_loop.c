/* The event loop: descriptors, parking, forgetting a closed descriptor, timers. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>

#include "loop.h"

typedef struct seen {
    int calls;
    int fd;
    unsigned events;
} seen;

static void on_io(void *arg, int fd, unsigned events)
{
    seen *s = arg;
    s->calls++;
    s->fd = fd;
    s->events = events;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void nonblocking_pipe(int p[2])
{
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

/* Runs turns without waiting until nothing more runs (at most a few). */
static int drain(iw_loop *l)
{
    int ran = 0;
    for (int i = 0; i < 4; i++) {
        int n = iw_loop_run_once(l, 0);
        cr_assert_geq(n, 0);
        ran += n;
        if (n == 0)
            break;
    }
    return ran;
}

Test(loop, a_ready_descriptor_runs_its_handler)
{
    iw_loop *l = iw_loop_new();
    int p[2];
    nonblocking_pipe(p);
    seen s = {0};
    cr_assert_eq(iw_loop_watch(l, p[0], IW_LOOP_READ, on_io, &s), 0);
    drain(l);
    cr_assert_eq(s.calls, 0, "nothing to read yet");
    cr_assert_eq(write(p[1], "x", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.fd, p[0]);
    cr_assert(s.events & IW_LOOP_READ);
    iw_loop_unwatch(l, p[0]);
    cr_assert_eq(write(p[1], "x", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 1, "unwatched: no more calls");
    close(p[0]);
    close(p[1]);
    iw_loop_free(l);
}

Test(loop, a_parked_descriptor_runs_nothing_and_comes_back_when_watched_again)
{
    iw_loop *l = iw_loop_new();
    int p[2];
    nonblocking_pipe(p);
    seen s = {0};
    cr_assert_eq(iw_loop_watch(l, p[0], IW_LOOP_READ, on_io, &s), 0);
    iw_loop_park(l, p[0]);
    cr_assert_eq(write(p[1], "x", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 0, "a parked descriptor has no handler");
    /* the ready parked descriptor left epoll: watching it again must register it anew */
    cr_assert_eq(iw_loop_watch(l, p[0], IW_LOOP_READ, on_io, &s), 0);
    drain(l);
    cr_assert_eq(s.calls, 1, "the byte written while parked is reported once watched");
    /* parked while idle, then watched again for the same events: still reported */
    iw_loop_park(l, p[0]);
    cr_assert_eq(iw_loop_watch(l, p[0], IW_LOOP_READ, on_io, &s), 0);
    cr_assert_eq(write(p[1], "y", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 2);
    /* another descriptor, watched for writing (ready at every turn: one turn only) */
    iw_loop_park(l, p[0]);
    cr_assert_eq(iw_loop_watch(l, p[1], IW_LOOP_WRITE, on_io, &s), 0);
    cr_assert_eq(iw_loop_run_once(l, 0), 1);
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(s.fd, p[1]);
    cr_assert(s.events & IW_LOOP_WRITE);
    iw_loop_unwatch(l, p[1]);
    iw_loop_unwatch(l, p[0]); /* parked: removed from epoll too */
    cr_assert_eq(write(p[1], "z", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 3);
    close(p[0]);
    close(p[1]);
    iw_loop_free(l);
}

/* A parked descriptor closed (after iw_loop_forget) whose number comes back as a new pipe:
 * watching the new one must register it, although the slot once held the same events. */
Test(loop, a_forgotten_descriptor_number_reused_is_registered)
{
    iw_loop *l = iw_loop_new();
    int a[2], b[2];
    nonblocking_pipe(a);
    seen s = {0};
    cr_assert_eq(iw_loop_watch(l, a[0], IW_LOOP_READ, on_io, &s), 0);
    iw_loop_park(l, a[0]);
    int num = a[0];
    iw_loop_forget(l, num);
    close(a[0]);
    nonblocking_pipe(b); /* the lowest free number: the one just closed */
    cr_assert_eq(b[0], num, "the test needs the number to come back");
    cr_assert_eq(iw_loop_watch(l, b[0], IW_LOOP_READ, on_io, &s), 0);
    cr_assert_eq(write(b[1], "x", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 1, "the new descriptor is watched");
    cr_assert_eq(s.fd, num);
    iw_loop_unwatch(l, b[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    iw_loop_free(l);
}

/* Without iw_loop_forget a reused number is still found: MOD fails, ADD follows. */
Test(loop, a_descriptor_closed_while_watched_is_registered_again)
{
    iw_loop *l = iw_loop_new();
    int a[2], b[2];
    nonblocking_pipe(a);
    seen s = {0};
    cr_assert_eq(iw_loop_watch(l, a[0], IW_LOOP_READ, on_io, &s), 0);
    int num = a[0];
    close(a[0]);
    nonblocking_pipe(b);
    cr_assert_eq(b[0], num);
    cr_assert_eq(iw_loop_watch(l, b[0], IW_LOOP_READ, on_io, &s), 0);
    cr_assert_eq(write(b[1], "x", 1), 1);
    drain(l);
    cr_assert_eq(s.calls, 1);
    iw_loop_unwatch(l, b[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    iw_loop_free(l);
}

typedef struct tick {
    iw_loop *l;
    iw_timer t;
    int fired;
    int order[4];
    int *n_order;
    int id;
    bool rearm;
} tick;

static void on_tick(void *arg)
{
    tick *k = arg;
    k->fired++;
    if (k->n_order)
        k->order[(*k->n_order)++ % 4] = k->id;
    if (k->rearm)
        iw_timer_at(k->l, &k->t, iw_loop_now_ms());
}

Test(loop, timers_fire_in_due_order_and_a_stopped_one_never)
{
    iw_loop *l = iw_loop_new();
    int n = 0;
    tick k[3] = {{.l = l, .id = 0}, {.l = l, .id = 1}, {.l = l, .id = 2}};
    int order[3] = {0};
    for (int i = 0; i < 3; i++) {
        k[i].n_order = &n;
        iw_timer_init(&k[i].t, on_tick, &k[i]);
    }
    int64_t now = iw_loop_now_ms();
    cr_assert_eq(iw_timer_at(l, &k[0].t, now + 30), 0);
    cr_assert_eq(iw_timer_at(l, &k[1].t, now + 10), 0);
    cr_assert_eq(iw_timer_at(l, &k[2].t, now + 20), 0);
    iw_timer_stop(l, &k[2].t);
    cr_assert_not(iw_timer_armed(&k[2].t));
    while (k[0].fired == 0)
        iw_loop_run_once(l, 100);
    cr_assert_eq(k[1].fired, 1);
    cr_assert_eq(k[2].fired, 0);
    cr_assert_eq(n, 2);
    order[0] = k[1].order[0];
    order[1] = k[0].order[1];
    cr_assert_eq(order[0], 1, "the earlier due fires first");
    cr_assert_eq(order[1], 0);
    cr_assert_eq(iw_loop_next_timer_ms(l), -1);
    iw_loop_free(l);
}

Test(loop, a_timer_rearming_itself_does_not_starve_descriptors)
{
    iw_loop *l = iw_loop_new();
    tick k = {.l = l, .rearm = true};
    iw_timer_init(&k.t, on_tick, &k);
    cr_assert_eq(iw_timer_at(l, &k.t, iw_loop_now_ms()), 0);
    int p[2];
    nonblocking_pipe(p);
    seen s = {0};
    cr_assert_eq(iw_loop_watch(l, p[0], IW_LOOP_READ, on_io, &s), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    for (int i = 0; i < 3; i++)
        iw_loop_run_once(l, 0);
    cr_assert_eq(s.calls, 1, "the descriptor ran although the timer re-arms itself");
    cr_assert_leq(k.fired, 3, "one firing per turn, not a spin");
    cr_assert_geq(k.fired, 1);
    iw_timer_stop(l, &k.t);
    iw_loop_unwatch(l, p[0]);
    close(p[0]);
    close(p[1]);
    iw_loop_free(l);
}
