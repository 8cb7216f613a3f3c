/* breaker.c: the circuit breaker's state transitions (DESIGN.md section 7). */
#include "breaker.h"

void iw_breaker_init(iw_breaker *b, int threshold, int64_t open_ms)
{
    b->state = IW_BREAKER_CLOSED;
    b->threshold = threshold;
    b->open_ms = open_ms > 0 ? open_ms : 0;
    b->failures = 0;
    b->open_until = 0;
    b->probe_out = false;
    b->down_since = 0;
}

bool iw_breaker_allow(iw_breaker *b, int64_t now)
{
    switch (b->state) {
    case IW_BREAKER_CLOSED: return true;
    case IW_BREAKER_OPEN:
        if (now < b->open_until)
            return false;
        b->state = IW_BREAKER_HALF_OPEN;
        b->probe_out = false;
        return true;
    case IW_BREAKER_HALF_OPEN: return !b->probe_out;
    }
    return false;
}

void iw_breaker_on_send(iw_breaker *b, int64_t now)
{
    (void)now;
    if (b->state == IW_BREAKER_HALF_OPEN)
        b->probe_out = true;
}

static void trip(iw_breaker *b, int64_t now)
{
    b->state = IW_BREAKER_OPEN;
    b->open_until = now + b->open_ms;
    b->probe_out = false;
    b->failures = 0;
}

bool iw_breaker_record(iw_breaker *b, iw_breaker_event ev, int64_t now)
{
    if (b->threshold <= 0)
        return false;
    switch (ev) {
    case IW_BREAKER_SUCCESS:
        b->state = IW_BREAKER_CLOSED;
        b->failures = 0;
        b->probe_out = false;
        b->down_since = 0;
        return false;
    case IW_BREAKER_NEUTRAL:
        /* the target answered: a half-open probe proved it reachable */
        if (b->state == IW_BREAKER_HALF_OPEN) {
            b->state = IW_BREAKER_CLOSED;
            b->failures = 0;
            b->probe_out = false;
            b->down_since = 0;
        }
        return false;
    case IW_BREAKER_FAILURE:
        if (b->state == IW_BREAKER_OPEN)
            return false; /* a late reply of a call sent before it opened */
        if (b->state == IW_BREAKER_HALF_OPEN) {
            trip(b, now);
            return true;
        }
        if (++b->failures >= b->threshold) {
            trip(b, now);
            b->down_since = now;
            return true;
        }
        return false;
    }
    return false;
}

bool iw_breaker_record_other(iw_breaker *b, iw_breaker_event ev, int64_t now)
{
    /* once open, only the probe decides: a late failure re-tripped the breaker and a second
     * probe went out (review 93), and a late success, of a call the target took before it
     * failed, closed it ahead of open_s and beside a probe in flight (review 110) */
    if (b->state != IW_BREAKER_CLOSED)
        return false;
    return iw_breaker_record(b, ev, now);
}

int64_t iw_breaker_down_ms(const iw_breaker *b, int64_t now)
{
    if (b->state == IW_BREAKER_CLOSED || now < b->down_since)
        return 0;
    return now - b->down_since;
}

int64_t iw_breaker_wait_ms(const iw_breaker *b, int64_t now)
{
    if (b->state == IW_BREAKER_OPEN && now < b->open_until)
        return b->open_until - now;
    return 0;
}
