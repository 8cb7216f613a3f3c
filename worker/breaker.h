/* breaker.h: a per-target circuit breaker as a pure state machine (time is passed in). */
#ifndef IW_BREAKER_H
#define IW_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

/* Where a breaker stands. */
typedef enum iw_breaker_state {
    IW_BREAKER_CLOSED = 0, /* calls go */
    IW_BREAKER_OPEN,       /* calls wait until open_until */
    IW_BREAKER_HALF_OPEN   /* one probe call may go; its result decides */
} iw_breaker_state;

/* What an HTTP attempt told the breaker. */
typedef enum iw_breaker_event {
    IW_BREAKER_SUCCESS = 0, /* an OK reply: closes it and resets the count */
    IW_BREAKER_FAILURE,     /* a retryable failure (transport, timeout, 5xx, 429) */
    IW_BREAKER_NEUTRAL      /* any other reply: the target answered, but not OK */
} iw_breaker_event;

typedef struct iw_breaker {
    iw_breaker_state state;
    int threshold;      /* consecutive failures that open it; <= 0 disables the breaker */
    int64_t open_ms;    /* how long it stays open */
    int failures;       /* retryable failures while closed since the last success (a neutral
                         * reply neither counts nor resets) */
    int64_t open_until; /* OPEN: when it turns half-open */
    bool probe_out;     /* HALF_OPEN: the probe is in flight */
    int64_t down_since; /* when it opened from closed (failed probes keep it); 0 while closed */
} iw_breaker;

/* Starts a closed breaker. */
void iw_breaker_init(iw_breaker *b, int threshold, int64_t open_ms);

/* True when a call may be sent at now (turns OPEN into HALF_OPEN when its time is up).
 * Does not take the probe: call iw_breaker_on_send when the call really goes. */
bool iw_breaker_allow(iw_breaker *b, int64_t now);

/* Records that a call was sent at now (takes the probe when half-open). */
void iw_breaker_on_send(iw_breaker *b, int64_t now);

/* Records an attempt's result at now. Returns true when this result opened the breaker. */
bool iw_breaker_record(iw_breaker *b, iw_breaker_event ev, int64_t now);

/* The same for a call that was not sent as the half-open breaker's probe: while open or
 * half-open its reply, failure or success, is a late one of a call sent before the breaker
 * opened, and changes nothing: only the probe decides. */
bool iw_breaker_record_other(iw_breaker *b, iw_breaker_event ev, int64_t now);

/* Milliseconds the breaker has been open or half-open without closing in between (the target
 * has failed every probe since), at now; 0 while closed. */
int64_t iw_breaker_down_ms(const iw_breaker *b, int64_t now);

/* Milliseconds until the breaker may let a call go (0 when it may now or when it waits for a
 * probe in flight, which only a result can end). */
int64_t iw_breaker_wait_ms(const iw_breaker *b, int64_t now);

#endif
