/* dispatch.c: the HTTP engine: per-target queues over libcurl multi handles (pools of at most 64
 * transfers), with retries, token refresh, token-bucket rate limits and circuit breakers (DESIGN.md
 * section 7).
 *
 * A call moves between these places, and is in exactly one of them at a time:
 *   ready queue of its target -> a running transfer -> (backoff timer | auth queue) -> ... -> done
 * queue -> its callback. Starting a transfer needs a free slot of the target (max_concurrency),
 * a token of its bucket and a breaker that lets it go; a call waiting for any of these burns no
 * attempt. Nothing waits on one target in a way that stops the others: every target's queue is
 * looked at on every turn of iw_dispatch_run.
 *
 * A reply larger than max_response_bytes is aborted and treated like a transport error (RETRY,
 * error kind transport, "reply larger than N bytes"): the reply was not read, so whether the
 * target accepted the call is unknown, and the full-state upserts make a retry harmless; the
 * attempt limits bound it when the target always answers that way. */
#include "dispatch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "breaker.h"
#include "loop.h"
#include "log.h"
#include "ratelimit.h"
#include "secrets.h"
#include "text.h"
#include "wire.h"
#include "status.h"

#define MAX_REPLY_HEADERS 128 /* reply headers kept per reply (the last for a Retry-After) */
#define MAX_REDIRECTS 5L      /* when a target follows redirects */
#define TOKEN_MAX 4096        /* longest refreshed token accepted */

typedef struct call call;
typedef struct xfer xfer;
typedef struct tstate tstate;

/* A FIFO of calls linked through call.next. */
typedef struct callq {
    call *head, *tail;
} callq;

/* One submitted (event, target) call. */
struct call {
    call *next;                 /* link in a callq, or in the backoff list */
    call *prev;                 /* link in the backoff list */
    iw_dispatch *d;             /* the engine it was submitted to */
    tstate *t;                  /* its target */
    const iw_target_ops *ops;   /* adapter rendering and classifying it */
    const iw_event *ev;         /* borrowed until done */
    const char *traceparent;    /* borrowed until done, may be NULL */
    iw_call_done_fn done;       /* called once */
    void *arg;                  /* for done */
    int64_t first_mono;         /* monotonic ms of the first attempt */
    int64_t since_mono;         /* monotonic ms it was submitted */
    iw_timer backoff;           /* on the loop while it waits for its next attempt */
    unsigned token_gen;         /* token generation the last attempt was rendered with */
    bool refreshed;             /* the one retry after a token refresh is used */
    bool cancelled;             /* iw_dispatch_cancel while on the wire: no further attempt */
    bool resend;                /* iw_call_prior.resend, until its first attempt of its own:
                                 * waits and ends as a call not yet attempted does */
    const int64_t *lease_until; /* the caller's fence lease end (monotonic ms), NULL = none */
    iw_call_result res;         /* attempts, last outcome; final once in the done queue */
};

/*
 * The transfers are spread over pools of at most POOL_XFERS, each a libcurl multi handle with
 * its own connection cache. To reuse a connection, libcurl 7.88 walks the cache's connections
 * to the host from the oldest, and the oldest are the busy ones: with one cache for every
 * transfer that walk checked about 240 connections per transfer at 400 in flight (callgrind).
 * A transfer stays in the pool it was made for, and so do the connections it makes. The pools
 * share one DNS cache, as the transfers of one multi handle do.
 */
#define POOL_XFERS 64
#define MAX_POOLS 16

typedef struct pool {
    iw_dispatch *d;
    CURLM *multi;
    iw_timer timer; /* this multi handle's one timeout (CURLMOPT_TIMERFUNCTION) */
    int n_xfers;    /* transfers made in this pool (they stay in it) */
    xfer *fresh;    /* transfers added and not yet seen through a socket action (fresh_next) */
} pool;

/* One running transfer (a call's attempt or a token refresh) and its reusable easy handle. */
struct xfer {
    xfer *prev, *next;       /* the active list; the free list uses next only */
    CURL *easy;              /* kept across transfers of one target: set up once */
    pool *pl;                /* the multi handle easy is added to, always the same */
    const iw_target_conf *set_for; /* the target easy's settings are for, NULL: none yet */
    struct curl_slist *hdrs; /* request headers: nodes[] linked, data in lines */
    struct curl_slist *nodes;
    size_t cap_nodes;
    char *lines; /* request header lines, NUL-separated */
    size_t cap_lines;
    char *hbuf; /* reply header names and values, NUL-terminated, rh[] points here */
    size_t len_hbuf, cap_hbuf;
    size_t hoff[MAX_REPLY_HEADERS][2]; /* offsets of each reply header's name and value */
    iw_request req;          /* rendered request; its body must live as long as the transfer
                              * (kept reset while x is spare, for the next render) */
    char *body;              /* reply body */
    size_t body_len, body_cap;
    iw_header *rh; /* reply headers of the last header block (set by reply_of) */
    size_t n_rh;
    int64_t max_bytes;        /* reply body cap */
    bool too_large;           /* the body went past max_bytes and the transfer was aborted */
    bool sent;                /* a request of this transfer went out (libcurl's prereq) */
    bool answered;            /* a reply's status line came for the last request sent */
    bool resend_refused;      /* libcurl was about to send the request again unanswered */
    bool lease_refused;       /* the first request was held back: the fence's lease no longer
                               * covered it when it was about to go (on_prereq) */
    bool took_probe;          /* it was sent as the half-open breaker's one probe */
    bool in_fresh;            /* on its pool's fresh list */
    xfer *fresh_next;
    int64_t curl_start_by;    /* libcurl started the transfer (and its CURLOPT_TIMEOUT_MS clock)
                               * no later than this (monotonic ms); 0: not known yet */
    call *c;                  /* the call, NULL for a token refresh */
    tstate *t;                /* the target */
    const iw_target_ops *ops; /* token refresh: the adapter that parses the reply */
    CURLU *uh;                /* url parsed (see url_handle), NULL: none yet */
    char *url;                /* the URL uh holds, NULL: none to reuse */
};

/* Per target instance state. */
struct tstate {
    const iw_target_conf *tc;
    callq ready; /* calls that may go once a slot, a token and the breaker allow */
    callq authq; /* calls waiting for the token refresh in flight */
    int running; /* call transfers in flight */
    iw_breaker br;
    iw_ratelimit rl;
    uint64_t requests, retries, breaker_opens; /* counters for iw_dispatch_target_stats */
    void *state;                    /* the adapter's state of this instance (state_new) */
    const iw_target_ops *state_ops; /* the adapter that made state, NULL until it is made */
    unsigned token_gen;             /* bumped on every refresh */
    xfer *refresh;       /* the token refresh in flight, NULL when none */
    xfer *spare;         /* finished transfers of this target, kept for reuse */
    iw_secrets *secrets; /* every wire form of tc's secrets and of each refreshed token */
    /* retries waiting in ready behind the breaker or the rate limit: when they were last
     * looked at for retry.max_elapsed_s (expire_waiting), and the earliest end then ahead */
    int64_t swept_at, next_expiry;
};

struct iw_dispatch {
    const iw_config *cfg; /* borrowed; outlives the engine */
    pool pools[MAX_POOLS];
    size_t n_pools;
    CURLSH *share;   /* the pools' one DNS cache */
    tstate *targets; /* one per cfg->targets entry, same order */
    size_t n_targets;
    call *backoff; /* calls waiting for their next attempt, each on its loop timer */
    callq doneq;       /* finished calls whose callbacks have not run yet */
    xfer *active;      /* transfers added to the multi handle */
    call *free_calls;  /* finished calls' memory, reused by submit (as many as were in flight) */
    size_t pending;    /* calls submitted and not yet called back */
    uint64_t rng;      /* splitmix64 state for the backoff jitter */
    iw_attempt_fn obs; /* observer of finished attempts, may be NULL */
    void *obs_arg;
    bool closing; /* iw_dispatch_free is running: submits are refused */
    iw_loop *loop; /* the loop that owns every wait (our own when own_loop) */
    bool own_loop;
    iw_timer tick;       /* the next breaker probe or rate-limit token */
    bool pumping;        /* pump() is running: a nested call returns at once */
    unsigned char *own_fd; /* indexed by fd: a connection socket opened by open_socket */
    size_t n_own_fd;
    bool no_proxy_env; /* no *_proxy variable in the environment at start */
};

/* --- small helpers --- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}
static int64_t wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

static uint64_t next_rnd(iw_dispatch *d)
{
    uint64_t z = (d->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int max_conc(const tstate *t)
{
    return t->tc->max_concurrency > 0 ? t->tc->max_concurrency : 1;
}

static void q_push(callq *q, call *c)
{
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
}

static call *q_pop(callq *q)
{
    call *c = q->head;
    if (c) {
        q->head = c->next;
        if (!q->head)
            q->tail = NULL;
        c->next = NULL;
    }
    return c;
}

/* Takes x, which follows prev (NULL: x is the head), out of q. */
static void q_unlink(callq *q, call *prev, call *x)
{
    if (prev)
        prev->next = x->next;
    else
        q->head = x->next;
    if (q->tail == x)
        q->tail = prev;
    x->next = NULL;
}

static size_t q_len(const callq *q)
{
    size_t n = 0;
    for (const call *c = q->head; c; c = c->next)
        n++;
    return n;
}

/* --- the backoff list: calls whose loop timer runs until their next attempt --- */

static void backoff_unlink(iw_dispatch *d, call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        d->backoff = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    iw_timer_stop(d->loop, &c->backoff);
}

static void pump(iw_dispatch *d);

/* c's backoff ended: it joins its target's ready queue (timers of equal due time fire in the
 * order they were armed, so first come, first served). */
static void backoff_over(void *arg)
{
    call *c = arg;
    iw_dispatch *d = c->d;
    backoff_unlink(d, c);
    q_push(&c->t->ready, c);
    pump(d);
}

/* Puts c on the backoff list with its timer armed for due. 0 or IW_ENOMEM. */
static int backoff_start(iw_dispatch *d, call *c, int64_t due)
{
    iw_timer_init(&c->backoff, backoff_over, c);
    if (iw_timer_at(d->loop, &c->backoff, due) != 0)
        return IW_ENOMEM;
    c->prev = NULL;
    c->next = d->backoff;
    if (d->backoff)
        d->backoff->prev = c;
    d->backoff = c;
    return 0;
}

/* --- ending calls --- */

/* Queues c for its callback with its result as it stands. */
static void finish(iw_dispatch *d, call *c)
{
    c->res.finished_at_ms = wall_ms();
    /* the message goes to results, logs and dead letters */
    iw_secrets_mask_outcome(c->t->secrets, &c->res.outcome);
    q_push(&d->doneq, c);
}

/* Ends c with a final outcome. */
static void finish_with(iw_dispatch *d, call *c, iw_outcome_kind kind, iw_error_kind ek,
                        const char *code, const char *message)
{
    iw_outcome *o = &c->res.outcome;
    memset(o, 0, sizeof(*o));
    o->retry_after_ms = -1;
    iw_outcome_set(o, kind, ek, code, "%s", message);
    finish(d, c);
}

/* Ends c as refused before sending (validation or render). */
static void reject(iw_dispatch *d, call *c, const char *message)
{
    c->res.rejected = c->res.attempts == 0;
    finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_VALIDATION, "validation", message);
}

/* Ends c as shed (iw_dispatch_shed): its target's breaker is open. */
static void shed(iw_dispatch *d, call *c)
{
    char msg[sizeof(c->res.outcome.message)];
    if (c->res.attempts > 0 && !c->resend)
        snprintf(msg, sizeof(msg),
                 "not sent again: the target's circuit breaker is open and the worker needed the "
                 "room; after %d attempt%s (last: %.*s)",
                 c->res.attempts, c->res.attempts == 1 ? "" : "s",
                 iw_text_utf8_prec(c->res.outcome.message, 200), c->res.outcome.message);
    else
        snprintf(msg, sizeof(msg),
                 "not sent: the target's circuit breaker is open and the worker "
                 "needed the room");
    c->res.shed = true;
    finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_UNAVAILABLE, "unavailable", msg);
}

/* Ends c without an answer (abandon_all). */
static void abandon(iw_dispatch *d, call *c)
{
    char msg[sizeof(c->res.outcome.message)];
    iw_error_kind ek = c->res.attempts > 0 ? c->res.outcome.error_kind : IW_ERR_NONE;
    if (c->res.attempts > 0)
        snprintf(msg, sizeof(msg), "abandoned after %d attempt%s (last: %.*s)", c->res.attempts,
                 c->res.attempts == 1 ? "" : "s", iw_text_utf8_prec(c->res.outcome.message, 200),
                 c->res.outcome.message);
    else
        snprintf(msg, sizeof(msg), "abandoned before the first attempt");
    c->res.abandoned = true;
    finish_with(d, c, IW_OUTCOME_RETRY, ek != IW_ERR_NONE ? ek : IW_ERR_TRANSPORT, "abandoned",
                msg);
}

/* Runs the callbacks of finished calls; a callback may submit new calls. */
static void deliver(iw_dispatch *d)
{
    call *c;
    while ((c = q_pop(&d->doneq))) {
        iw_call_result res = c->res;
        iw_call_done_fn done = c->done;
        void *arg = c->arg;
        d->pending--;
        c->next = d->free_calls; /* kept for the next submit */
        d->free_calls = c;
        done(arg, &res);
    }
}

/* --- transfers --- */

static void fresh_unlink(xfer *x);

static void xfer_release(iw_dispatch *d, xfer *x)
{
    iw_request_reset(&x->req);
    x->hdrs = NULL;
    x->n_rh = 0;
    x->len_hbuf = 0;
    if (x->body_cap > 65536) { /* keep small buffers only */
        free(x->body);
        x->body = NULL;
        x->body_cap = 0;
    }
    x->body_len = 0;
    x->too_large = false;
    fresh_unlink(x);
    x->sent = x->answered = x->resend_refused = x->lease_refused = x->took_probe = false;
    x->curl_start_by = 0;
    tstate *t = x->t;
    x->c = NULL;
    x->t = NULL;
    x->ops = NULL;
    x->prev = NULL;
    x->next = t->spare;
    t->spare = x;
}

static void xfer_destroy(xfer *x)
{
    iw_request_clear(&x->req);
    free(x->nodes);
    free(x->lines);
    free(x->hbuf);
    free(x->rh);
    free(x->body);
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_url_cleanup(x->uh);
    free(x->url);
    free(x);
}

/* A transfer for target t: one of its own finished ones (its handle keeps t's settings), or
 * a new one. */
static xfer *xfer_get(iw_dispatch *d, tstate *t)
{
    xfer *x = t->spare;
    if (x) {
        t->spare = x->next;
        x->next = NULL;
        x->t = t;
        return x;
    }
    x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->rh = calloc(MAX_REPLY_HEADERS, sizeof(*x->rh));
    x->easy = curl_easy_init();
    if (!x->rh || !x->easy || curl_easy_setopt(x->easy, CURLOPT_SHARE, d->share) != CURLE_OK) {
        xfer_destroy(x);
        return NULL;
    }
    pool *pl = &d->pools[0];
    for (size_t i = 1; i < d->n_pools; i++)
        if (d->pools[i].n_xfers < pl->n_xfers)
            pl = &d->pools[i];
    pl->n_xfers++;
    x->pl = pl;
    x->t = t;
    return x;
}

static void active_link(iw_dispatch *d, xfer *x)
{
    x->prev = NULL;
    x->next = d->active;
    if (d->active)
        d->active->prev = x;
    d->active = x;
}

static void active_unlink(iw_dispatch *d, xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        d->active = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->max_bytes > 0 && (uint64_t)(x->body_len + len) > (uint64_t)x->max_bytes) {
        x->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->body_len + len + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        while (cap < x->body_len + len + 1)
            cap *= 2;
        char *b = realloc(x->body, cap);
        if (!b)
            return 0;
        x->body = b;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, p, len);
    x->body_len += len;
    x->body[x->body_len] = '\0';
    return len;
}

static void drop_reply_headers(xfer *x)
{
    x->n_rh = 0;
    x->len_hbuf = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new block: 100 Continue, redirect */
        x->answered = true;
        drop_reply_headers(x);
        return len;
    }
    const char *colon = memchr(p, ':', len);
    /* the last slot is kept for the one header the worker reads (review 93: a Retry-After after
     * 128 others was never seen) */
    if (!colon || colon == p || x->n_rh >= MAX_REPLY_HEADERS ||
        (x->n_rh == MAX_REPLY_HEADERS - 1 &&
         !(colon - p == 11 && strncasecmp(p, "Retry-After", 11) == 0)))
        return len;
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t nl = (size_t)(colon - p), vl = (size_t)(end - v);
    size_t need = x->len_hbuf + nl + vl + 2;
    if (need > x->cap_hbuf) {
        size_t cap = x->cap_hbuf ? x->cap_hbuf : 1024;
        while (cap < need)
            cap *= 2;
        char *b = realloc(x->hbuf, cap);
        if (!b)
            return 0;
        x->hbuf = b;
        x->cap_hbuf = cap;
    }
    char *dst = x->hbuf + x->len_hbuf;
    memcpy(dst, p, nl);
    dst[nl] = '\0';
    memcpy(dst + nl + 1, v, vl);
    dst[nl + 1 + vl] = '\0';
    x->hoff[x->n_rh][0] = x->len_hbuf;
    x->hoff[x->n_rh][1] = x->len_hbuf + nl + 1;
    x->len_hbuf = need;
    x->n_rh++;
    return len;
}

/* Applies the request and the target's limits to x's easy handle. */
/* Builds the request header list of x from x->req without an allocation per header: the lines
 * go into one buffer, the list nodes into one array (libcurl only reads the list). */
static int build_headers(xfer *x)
{
    const iw_request *r = &x->req;
    size_t n = r->n_headers + 1, need = sizeof("Expect:");
    for (size_t i = 0; i < r->n_headers; i++)
        need += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 3;
    if (need > x->cap_lines) {
        char *b = realloc(x->lines, need);
        if (!b)
            return IW_ENOMEM;
        x->lines = b;
        x->cap_lines = need;
    }
    if (n > x->cap_nodes) {
        struct curl_slist *nodes = realloc(x->nodes, n * sizeof(*nodes));
        if (!nodes)
            return IW_ENOMEM;
        x->nodes = nodes;
        x->cap_nodes = n;
    }
    char *at = x->lines;
    for (size_t i = 0; i < n; i++) {
        x->nodes[i].data = at;
        x->nodes[i].next = i + 1 < n ? &x->nodes[i + 1] : NULL;
        if (i == n - 1) {
            at = stpcpy(at, "Expect:") + 1; /* no 100-continue round trip */
        } else if (*r->headers[i].value) {
            at = stpcpy(stpcpy(stpcpy(at, r->headers[i].name), ": "), r->headers[i].value) + 1;
        } else {
            at = stpcpy(stpcpy(at, r->headers[i].name), ";") + 1; /* curl's "send empty" */
        }
    }
    x->hdrs = x->nodes;
    return 0;
}

static curl_socket_t open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a);
static int close_socket(void *userp, curl_socket_t s);

/* Whether c's fence lease, as last granted, covers an attempt sent at now: its request
 * timeout, the settle time the target may take to apply it late, and guard_ms. */
static bool lease_covers(const call *c, int64_t now, int64_t guard_ms)
{
    const iw_target_conf *tc = c->t->tc;
    return !c->lease_until ||
           now + tc->request_timeout_ms + iw_target_settle_ms(tc) + guard_ms <= *c->lease_until;
}

/*
 * CURLOPT_PREREQFUNCTION: called before each request of a transfer goes out. A request sent on
 * a reused connection that closes before any reply byte is sent again by libcurl on a fresh
 * connection, inside the same transfer and unseen by us. The target may have applied the first
 * copy, so that second copy is a retry with no backoff, no attempt number and no settle time,
 * and for EBizCharge it would carry the customer e-mail flags again. It is refused here: the
 * transfer ends as an unanswered attempt, and the dispatcher's own retry policy takes over. A
 * redirect's next request follows an answer, and goes; so does a token refresh's.
 */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
    xfer *x = ud;
    if (x->sent && !x->answered && x->c) { /* a token request changes nothing: it may go again */
        x->resend_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    /* The lease was checked when the attempt started (start_attempt), on the loop's clock of
     * that turn; libcurl's request timeout then runs from when it starts the transfer, which a
     * process paused in between (a VM stall, a frozen cgroup, SIGSTOP) delays past the lease:
     * the request would go after another worker may have sent a newer version. So before the
     * first request goes, the attempt's end, libcurl's start (known no later than
     * curl_start_by, else now) plus its request timeout and settle time, must still be within
     * the lease as last granted (0 once the fence is lost). */
    int64_t start_by = x->curl_start_by ? x->curl_start_by : mono_ms();
    if (!x->sent && x->c && !lease_covers(x->c, start_by, 0)) { /* the guard was for the start */
        x->lease_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    x->sent = true;
    x->answered = false;
    return CURL_PREREQFUNC_OK;
}

/* The settings of x's handle that depend on the target only: set once per handle (a handle
 * stays with its target). */
static CURLcode target_setup(iw_dispatch *d, xfer *x, const iw_target_conf *tc)
{
    CURL *e = x->easy;
    CURLcode rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d);
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, d);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (tc->connect_timeout_ms > 0)
        rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)tc->connect_timeout_ms);
    if (tc->request_timeout_ms > 0)
        rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)tc->request_timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, tc->follow_redirects ? 1L : 0L);
    /* When redirects are followed, a 301/302/303 must not turn the update into a bodiless GET
     * whose 200 would count as success. (Custom headers such as MISKEY go to the new location:
     * enable follow_redirects only for endpoints you trust.) */
    rc |= curl_easy_setopt(e, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    rc |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    if (tc->follow_redirects)
        rc |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, tc->tls_verify ? 1L : 0L);
    rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, tc->tls_verify ? 2L : 0L);
    if (tc->tls_ca_file && *tc->tls_ca_file)
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, tc->tls_ca_file);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (d->no_proxy_env) { /* "" for both: no proxy, and no environment lookups */
        rc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
        rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    /* replies are small: a 4 KB receive buffer instead of 16 KB per handle (512 handles in
     * flight); a larger reply only takes more reads */
    rc |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    rc |= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    rc |= curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    return rc;
}

/* url parsed as libcurl parses a URL string (the same flags), kept while the next transfer of
 * x goes to the same URL: libcurl 7.88 otherwise parses the string and writes the URL back out
 * on every transfer. NULL when it cannot be parsed or kept: libcurl then parses the string
 * itself and reports what is wrong with it as before. */
static CURLU *url_handle(xfer *x, const char *url)
{
    if (x->url && strcmp(x->url, url) == 0)
        return x->uh;
    free(x->url);
    x->url = NULL;
    if (!x->uh && !(x->uh = curl_url()))
        return NULL;
    if (curl_url_set(x->uh, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
            CURLUE_OK ||
        !(x->url = strdup(url)))
        return NULL;
    return x->uh;
}

static bool is_https(const char *url)
{
    return url && strncasecmp(url, "https://", 8) == 0;
}

static int xfer_setup(iw_dispatch *d, xfer *x, const iw_target_conf *tc)
{
    CURL *e = x->easy;
    const iw_request *r = &x->req;
    if (build_headers(x))
        return IW_ENOMEM;
    x->max_bytes = tc->max_response_bytes;
    CURLcode rc = CURLE_OK;
    if (x->set_for != tc) {
        curl_easy_reset(e);
        x->set_for = NULL;
        rc = target_setup(d, x, tc);
        if (rc != CURLE_OK)
            return IW_EINVAL;
        x->set_for = tc;
    }
    /* Both: libcurl reads the parsed handle, and keeps the string as the transfer's URL (the
     * base a redirect is resolved against). */
    rc |= curl_easy_setopt(e, CURLOPT_URL, r->url);
    rc |= curl_easy_setopt(e, CURLOPT_CURLU, url_handle(x, r->url));
    /* a followed redirect never leaves TLS: the login, MISKEY or token of a request sent over
     * https would otherwise go out in clear text to wherever the Location points. Per request:
     * a mapping's URL template or a token_url may name another scheme than the instance url. */
    rc |=
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, is_https(r->url) ? "https" : "http,https");
    if (strcmp(r->method, "GET") == 0) {
        rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    } else {
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                               strcmp(r->method, "POST") != 0 ? r->method : (char *)NULL);
    }
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    return rc == CURLE_OK ? 0 : IW_EINVAL;
}

/* Sets up x (request already in x->req) and hands it to the multi handle. */
static int xfer_start(iw_dispatch *d, xfer *x, const iw_target_conf *tc)
{
    int rc = xfer_setup(d, x, tc);
    if (rc)
        return rc;
    if (curl_multi_add_handle(x->pl->multi, x->easy) != CURLM_OK)
        return IW_EIO;
    active_link(d, x);
    x->curl_start_by = 0; /* libcurl starts it in a coming socket action (saw_actions) */
    x->fresh_next = x->pl->fresh;
    x->pl->fresh = x;
    x->in_fresh = true;
    return 0;
}

/* After a socket action on pl: every transfer added before it was started by libcurl by now (a
 * new handle's timer is due at once, and an action runs every due timer), so its request
 * timeout ends its attempt no later than now + timeouts.request_ms. */
static void saw_actions(pool *pl)
{
    if (!pl->fresh)
        return;
    int64_t now = mono_ms();
    for (xfer *x = pl->fresh, *next; x; x = next) {
        next = x->fresh_next;
        x->curl_start_by = now;
        x->in_fresh = false;
        x->fresh_next = NULL;
    }
    pl->fresh = NULL;
}

/* Takes x off its pool's fresh list (a transfer ended before any action saw it). */
static void fresh_unlink(xfer *x)
{
    if (!x->in_fresh)
        return;
    for (xfer **at = &x->pl->fresh; x->in_fresh && *at; at = &(*at)->fresh_next)
        if (*at == x) {
            *at = x->fresh_next;
            x->in_fresh = false;
            x->fresh_next = NULL;
        }
}

/* The reply as classify and parse_refresh see it. */
static iw_response reply_of(xfer *x, long status)
{
    for (size_t i = 0; i < x->n_rh; i++) {
        x->rh[i].name = x->hbuf + x->hoff[i][0];
        x->rh[i].value = x->hbuf + x->hoff[i][1];
    }
    iw_response r = {
        .status = status,
        .headers = x->rh,
        .n_headers = x->n_rh,
        .body = x->body_len ? x->body : NULL,
        .body_len = x->body_len,
        .now_ms = wall_ms(),
    };
    return r;
}

/* --- attempts --- */

/* Makes t's adapter state on its first call (the adapter comes with the call: tests pass fake
 * ones). 0 or IW_ENOMEM. */
static int ensure_state(tstate *t, const iw_target_ops *ops)
{
    if (t->state_ops || !ops->state_new)
        return 0;
    if (!(t->state = ops->state_new(t->tc)))
        return IW_ENOMEM;
    t->state_ops = ops;
    return 0;
}

/* Makes the request of an attempt into req: the adapter's render, the call headers, then the
 * check that nothing from an event becomes a header. 0; IW_ENOMEM; else the adapter refused the
 * event or the wire check failed, and why says so. */
static int make_request(tstate *t, const iw_target_ops *ops, const iw_event *ev,
                        const char *traceparent, int attempt, bool may_be_applied, iw_request *req,
                        char *why, size_t len)
{
    if (ensure_state(t, ops))
        return IW_ENOMEM;
    iw_render_ctx ctx = {.state = t->state, .now_ms = wall_ms(), .may_be_applied = may_be_applied};
    int rc = iw_target_render(ops, ev, t->tc, &ctx, req, why, len);
    if (rc == IW_ENOMEM)
        return rc;
    if (rc) {
        if (!*why)
            snprintf(why, len, "render failed: %s", iw_status_str(rc));
        return IW_EINVAL;
    }
    if (iw_request_add_call_headers(req, ev->event_id ? ev->event_id : "", t->tc->name, attempt,
                                    ev->version, traceparent))
        return IW_ENOMEM;
    return iw_wire_check(req, why, len) ? IW_EINVAL : 0;
}

/* Renders and starts c's next attempt; on failure ends c. */
static void start_attempt(iw_dispatch *d, call *c, int64_t now)
{
    tstate *t = c->t;
    const iw_target_conf *tc = t->tc;
    int attempt = c->res.attempts + 1;
    if (!lease_covers(c, now, IW_DISPATCH_LEASE_GUARD_MS)) {
        /* the attempt, or the target applying it late, could outlive the fence lease (kept
         * even if this worker is killed): another worker could then send a newer version
         * before this one lands */
        c->res.lease_expired = true;
        abandon(d, c);
        return;
    }
    char err[256] = "";
    xfer *x = xfer_get(d, t);
    if (!x) {
        finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_TRANSPORT, "transport",
                    "could not create a transfer");
        return;
    }
    /* rendered into the transfer's own request, whose memory its last request left */
    int rc = make_request(t, c->ops, c->ev, c->traceparent, attempt, c->res.maybe_applied, &x->req,
                          err, sizeof(err));
    if (rc) {
        xfer_release(d, x);
        if (rc == IW_ENOMEM)
            finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_TRANSPORT, "transport", "out of memory");
        else
            reject(d, c, err);
        return;
    }
    const char *event_id = c->ev->event_id ? c->ev->event_id : "";
    x->c = c;
    if (xfer_start(d, x, tc)) {
        xfer_release(d, x);
        finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_TRANSPORT, "transport",
                    "could not start the transfer");
        return;
    }
    iw_ratelimit_take(&t->rl, now);
    x->took_probe = t->br.state == IW_BREAKER_HALF_OPEN;
    iw_breaker_on_send(&t->br, now);
    c->res.attempts = attempt;
    c->resend = false; /* sent: from here on its attempts count as any call's */
    if (attempt == 1) {
        c->res.first_attempt_at_ms = wall_ms();
        c->res.first_attempt_mono = c->first_mono = now;
    }
    c->token_gen = t->token_gen;
    t->running++;
    if (iw_log_enabled(IW_LOG_DEBUG)) {
        char n[16], left[24] = "";
        snprintf(n, sizeof(n), "%d", attempt);
        if (c->lease_until)
            snprintf(left, sizeof(left), "%lld", (long long)(*c->lease_until - now));
        iw_log(IW_LOG_DEBUG, "attempt started", "event_id", event_id, "target", tc->name, "attempt",
               n, "lease_left_ms", left, NULL);
    }
}

static void retry_or_exhaust(iw_dispatch *d, call *c, const iw_outcome *out, int64_t now);

/* How often, at most, the retries waiting behind a blocked target are looked at; so a waiting
 * retry ends within this much of its retry.max_elapsed_s. */
#define EXPIRY_SWEEP_MS 1000

/* Ends, exhausted, every retry waiting in t's ready queue (behind its breaker or rate limit)
 * whose retry.max_elapsed_s has passed since its first attempt: the limit holds while a call
 * waits, not only when an attempt ends, or a breaker letting one probe through per open_s
 * would hold the last of many waiting calls (and its partition's commits) for many times the
 * limit. A call not yet attempted has no such limit (shedding bounds it). Sets t->next_expiry
 * to the earliest end still ahead. */
static void expire_waiting(iw_dispatch *d, tstate *t, int64_t now, bool breaker_open)
{
    int64_t limit = t->tc->retry.max_elapsed_ms;
    t->swept_at = now;
    t->next_expiry = INT64_MAX;
    if (limit <= 0)
        return;
    callq ended = {NULL, NULL};
    call *prev = NULL;
    for (call *c = t->ready.head, *next; c; c = next) {
        next = c->next;
        /* a retry ends max_elapsed after its first attempt; a call never sent, once the breaker
         * has held it that long: from the later of when it came and when the breaker opened (it
         * stays down while probes fail). What waited for a slot or the rate limit before the
         * breaker opened is a backlog, not held by it. */
        int64_t held_from = c->since_mono > t->br.down_since ? c->since_mono : t->br.down_since;
        int64_t end = c->res.attempts >= 1 && !c->resend ? c->first_mono + limit
                      : breaker_open && t->br.down_since ? held_from + limit
                                                         : INT64_MAX;
        if (end > now) {
            if (end < t->next_expiry)
                t->next_expiry = end;
            prev = c;
            continue;
        }
        q_unlink(&t->ready, prev, c);
        q_push(&ended, c);
    }
    call *c;
    while ((c = q_pop(&ended))) {
        if (c->res.attempts == 0 || c->resend) {
            c->res.shed = true;
            finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_UNAVAILABLE, "unavailable",
                        "not sent: the target's circuit breaker held it for "
                        "retry.max_elapsed_s");
            continue;
        }
        iw_outcome last = c->res.outcome; /* the attempt that failed last */
        size_t n = strlen(last.message);
        snprintf(last.message + n, sizeof(last.message) - n, "%s",
                 t->running >= max_conc(t) && !breaker_open
                     ? "; then waited for a slot (every one of max_concurrency busy) until "
                       "retry.max_elapsed_s passed"
                     : "; then held back by the target's circuit breaker or rate limit until "
                       "retry.max_elapsed_s passed");
        retry_or_exhaust(d, c, &last, now); /* past its limit: it ends */
    }
}

/* Starts every ready call its target lets go now. */
static void start_ready(iw_dispatch *d, int64_t now)
{
    for (size_t i = 0; i < d->n_targets; i++) {
        tstate *t = &d->targets[i];
        if (t->refresh)
            continue; /* its calls wait for the new token */
        while (t->ready.head && t->running < max_conc(t)) {
            bool open = !iw_breaker_allow(&t->br, now);
            if (open || iw_ratelimit_wait_ms(&t->rl, now) > 0) {
                if (now >= t->next_expiry || now - t->swept_at >= EXPIRY_SWEEP_MS)
                    expire_waiting(d, t, now, open);
                break;
            }
            start_attempt(d, q_pop(&t->ready), now);
        }
        /* every slot taken (by calls that hang, a half-open probe among them): what waits
         * still ends at its limit, not when a slot frees up (review 93: at timeouts.request_ms) */
        if (t->ready.head && t->running >= max_conc(t) &&
            (now >= t->next_expiry || now - t->swept_at >= EXPIRY_SWEEP_MS))
            expire_waiting(d, t, now, t->br.state != IW_BREAKER_CLOSED);
    }
}

/* Schedules c's next attempt after a transient failure, or ends it when the limits say so. */
static void retry_or_exhaust(iw_dispatch *d, call *c, const iw_outcome *out, int64_t now)
{
    tstate *t = c->t;
    const iw_retry_conf *rc = &t->tc->retry;
    int64_t delay = iw_backoff_next_ms(rc, c->res.attempts, out->retry_after_ms, next_rnd(d));
    if (iw_backoff_may_retry(rc, c->res.attempts, c->first_mono, now + delay)) {
        if (backoff_start(d, c, now + delay) == 0) {
            t->retries++;
            return;
        }
    }
    char msg[sizeof(out->message)];
    int n = snprintf(msg, sizeof(msg), "after %d attempt%s: %.*s", c->res.attempts,
                     c->res.attempts == 1 ? "" : "s", iw_text_utf8_prec(out->message, 200),
                     out->message);
    /* attempts left, and the limit not passed yet: the wait would end past it (review 93: "after
     * 1 attempt" said nothing of a Retry-After beyond max_elapsed_s) */
    if (c->res.attempts < rc->max_attempts && rc->max_elapsed_ms > 0 &&
        now - c->first_mono < rc->max_elapsed_ms && n > 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n,
                 "; the next attempt, %lld ms later%s, would start past retry.max_elapsed_s",
                 (long long)delay,
                 iw_backoff_set_by_retry_after(rc, out->retry_after_ms, delay) ? " (Retry-After)"
                                                                               : "");
    iw_outcome *o = &c->res.outcome;
    o->kind = IW_OUTCOME_PERMANENT;
    o->error_kind = IW_ERR_EXHAUSTED;
    o->retry_after_ms = -1;
    snprintf(o->message, sizeof(o->message), "%s", msg);
    finish(d, c);
}

static void start_refresh(iw_dispatch *d, tstate *t, const iw_target_ops *ops);

/* Whether any request of x's transfer reached the wire. */
static bool went_out(const xfer *x, CURL *easy)
{
    long sent = 0;
    if (x->resend_refused)
        return true; /* the first copy went, the second was refused */
    return curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent > 0;
}

/* c's attempt ended without the target's own answer, after its request went out: the target
 * may still apply it, so c's fence is to be kept timeouts.settle_ms from now (the caller's
 * job). */
static void note_in_doubt(call *c)
{
    int64_t settle = iw_target_settle_ms(c->t->tc);
    if (settle == 0)
        return; /* turned off */
    int64_t until = mono_ms() + settle;
    if (until > c->res.settle_until_ms)
        c->res.settle_until_ms = until;
}

/* Whether an attempt that ended with curl's cc and HTTP status may have been applied: its
 * request went out (sent) and no answer came, or an answer came that does not say the request
 * was turned away unprocessed (408, 429 and 503 do; a 500 or an unreadable 200 does not). */
static bool may_have_applied(CURLcode cc, long status, bool answered, bool sent)
{
    if (cc == CURLE_OK || answered)
        return status != 408 && status != 429 && status != 503;
    return sent;
}

/* Acts on the classified reply of c's attempt. */
static void handle_outcome(iw_dispatch *d, call *c, const iw_outcome *out, bool probe, int64_t now)
{
    tstate *t = c->t;
    iw_breaker_event be = out->kind == IW_OUTCOME_OK      ? IW_BREAKER_SUCCESS
                          : out->kind == IW_OUTCOME_RETRY ? IW_BREAKER_FAILURE
                                                          : IW_BREAKER_NEUTRAL;
    if (probe ? iw_breaker_record(&t->br, be, now) : iw_breaker_record_other(&t->br, be, now))
        t->breaker_opens++;
    c->res.outcome = *out;
    if (c->cancelled && (out->kind == IW_OUTCOME_RETRY || out->kind == IW_OUTCOME_AUTH)) {
        abandon(d, c);
        return;
    }

    switch (out->kind) {
    case IW_OUTCOME_OK:
    case IW_OUTCOME_PERMANENT: finish(d, c); return;
    case IW_OUTCOME_RETRY: retry_or_exhaust(d, c, out, now); return;
    case IW_OUTCOME_AUTH: break;
    }
    if (c->res.outcome.error_kind == IW_ERR_NONE)
        c->res.outcome.error_kind = IW_ERR_AUTH;
    bool can_refresh = out->refresh_token && c->ops->render_refresh && c->ops->parse_refresh &&
                       c->ops->store_refresh && t->state;
    if (!can_refresh || c->refreshed ||
        !iw_backoff_may_retry(&t->tc->retry, c->res.attempts, c->first_mono, now)) {
        finish(d, c);
        return;
    }
    c->refreshed = true;
    if (c->token_gen != t->token_gen) { /* refreshed since this attempt was rendered */
        q_push(&t->ready, c);
        return;
    }
    q_push(&t->authq, c);
    if (!t->refresh)
        start_refresh(d, t, c->ops);
}

/* Ends every call waiting for t's token refresh with an auth failure. */
static void fail_auth_waiters(iw_dispatch *d, tstate *t, const char *why)
{
    call *c;
    while ((c = q_pop(&t->authq))) {
        char msg[sizeof(c->res.outcome.message)];
        snprintf(msg, sizeof(msg), "%.*s; token refresh failed: %.*s",
                 iw_text_utf8_prec(c->res.outcome.message, 100), c->res.outcome.message,
                 iw_text_utf8_prec(why, 100), why);
        iw_outcome *o = &c->res.outcome;
        o->kind = IW_OUTCOME_AUTH;
        o->error_kind = IW_ERR_AUTH;
        snprintf(o->message, sizeof(o->message), "%s", msg);
        finish(d, c);
    }
}

/* The refresh failed for a while, not for good (it got no answer, or a 408, 429 or 5xx): every
 * call waiting for it is retried as a failed attempt would be, Retry-After and limits
 * included, and may ask for a refresh again (review 93: a 503 from the token endpoint ended
 * them as a final auth failure). */
static void retry_auth_waiters(iw_dispatch *d, tstate *t, const iw_outcome *why, int64_t now)
{
    call *c;
    while ((c = q_pop(&t->authq))) {
        iw_outcome o = *why;
        snprintf(o.message, sizeof(o.message), "%.*s; token refresh failed: %.*s",
                 iw_text_utf8_prec(c->res.outcome.message, 100), c->res.outcome.message,
                 iw_text_utf8_prec(why->message, 100), why->message);
        c->refreshed = false;
        c->res.outcome = o;
        retry_or_exhaust(d, c, &o, now);
    }
}

/* Starts the one token refresh of t; the calls in t->authq wait for it. */
static void start_refresh(iw_dispatch *d, tstate *t, const iw_target_ops *ops)
{
    char err[256] = "";
    xfer *x = xfer_get(d, t);
    if (!x) {
        fail_auth_waiters(d, t, "could not create a transfer");
        return;
    }
    if (ops->render_refresh(t->tc, &x->req, err, sizeof(err))) {
        xfer_release(d, x);
        fail_auth_waiters(d, t, *err ? err : "could not render the refresh call");
        return;
    }
    x->ops = ops;
    if (xfer_start(d, x, t->tc)) {
        xfer_release(d, x);
        fail_auth_waiters(d, t, "could not start the transfer");
        return;
    }
    t->refresh = x;
}

/* The token refresh of t ended: store the token and release the waiting calls. */
static void refresh_done(iw_dispatch *d, tstate *t, xfer *x, CURLcode cc, long status)
{
    char tok[TOKEN_MAX];
    char why[128];
    bool ok = false;
    iw_outcome passing; /* a failure that may pass: kind IW_OUTCOME_RETRY */
    memset(&passing, 0, sizeof(passing));
    passing.retry_after_ms = -1;
    t->refresh = NULL;
    tok[0] = '\0';
    if (cc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
        if (cc != CURLE_PEER_FAILED_VERIFICATION && cc != CURLE_SSL_CACERT_BADFILE &&
            cc != CURLE_SSL_CERTPROBLEM && cc != CURLE_UNSUPPORTED_PROTOCOL &&
            cc != CURLE_URL_MALFORMAT)
            iw_outcome_set(&passing, IW_OUTCOME_RETRY,
                           cc == CURLE_OPERATION_TIMEDOUT ? IW_ERR_TIMEOUT : IW_ERR_TRANSPORT,
                           "transport", "%s", why);
    } else if (status < 200 || status > 299) {
        snprintf(why, sizeof(why), "HTTP %ld", status);
        iw_response resp = reply_of(x, status);
        iw_outcome_from_status(&resp, &passing);
    } else {
        iw_response resp = reply_of(x, status);
        ok = x->ops->parse_refresh(&resp, tok, sizeof(tok)) == 0 && tok[0];
        snprintf(why, sizeof(why), "the reply held no token");
    }
    /* a token that cannot be masked is not used */
    if (ok && (iw_secrets_add(t->secrets, tok) || x->ops->store_refresh(t->state, tok))) {
        ok = false;
        snprintf(why, sizeof(why), "out of memory");
    } else if (ok) {
        t->token_gen++;
    }
    memset(tok, 0, sizeof(tok));
    xfer_release(d, x);
    if (!ok && passing.kind == IW_OUTCOME_RETRY) {
        retry_auth_waiters(d, t, &passing, mono_ms());
        return;
    }
    if (!ok) {
        fail_auth_waiters(d, t, why);
        return;
    }
    call *c;
    while ((c = q_pop(&t->authq)))
        q_push(&t->ready, c);
}

/* Whether a transfer that ended with CURLE_UNSUPPORTED_PROTOCOL was refused a redirect: the
 * URL it was sent on to (CURLINFO_EFFECTIVE_URL) has a scheme the request may not be
 * redirected to (CURLOPT_REDIR_PROTOCOLS_STR in xfer_setup). libcurl gives the same code for a
 * reply that is not HTTP/1.x ("HTTP/0.9", "HTTP/1.2"), also after a redirect it followed, and
 * then leaves the response code at the redirect's 3xx: an ordinary transport failure, retried. */
static bool redirect_refused(CURL *easy, const char *request_url)
{
    char *to = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &to) != CURLE_OK || !to)
        return false;
    if (is_https(to))
        return false;
    if (strncasecmp(to, "http://", 7) == 0)
        return is_https(request_url);
    return true; /* another protocol altogether */
}

/* A transfer ended (CURLMSG_DONE). */
static void on_done(iw_dispatch *d, CURL *easy, CURLcode cc)
{
    xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x)
        return;
    curl_multi_remove_handle(x->pl->multi, easy);
    active_unlink(d, x);

    long status = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us);
    tstate *t = x->t;
    t->requests++;
    iw_attempt_info info = {t->tc, NULL, 0, cc == CURLE_OK ? status : 0, (double)us / 1e6, NULL};

    if (!x->c) {
        if (d->obs)
            d->obs(d->obs_arg, &info);
        refresh_done(d, t, x, cc, status);
        return;
    }
    call *c = x->c;
    t->running--;
    if (x->lease_refused) { /* nothing went out: as start_attempt ends a call its lease misses */
        if (--c->res.attempts == 0) /* the first attempt was not one */
            c->res.first_attempt_at_ms = c->res.first_attempt_mono = c->first_mono = 0;
        if (x->took_probe && t->br.state == IW_BREAKER_HALF_OPEN)
            t->br.probe_out = false; /* no answer will come to decide it */
        xfer_release(d, x);
        c->res.lease_expired = true;
        abandon(d, c);
        return;
    }
    iw_outcome out;
    memset(&out, 0, sizeof(out));
    out.retry_after_ms = -1;
    if (x->too_large) {
        iw_outcome_too_large(&out, x->max_bytes);
    } else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
               cc == CURLE_SSL_CERTPROBLEM) {
        /* the certificate (or our CA file) is wrong: retrying cannot help, a person must act */
        iw_outcome_set(&out, IW_OUTCOME_PERMANENT, IW_ERR_TRANSPORT, "tls", "%s",
                       curl_easy_strerror(cc));
    } else if (cc == CURLE_UNSUPPORTED_PROTOCOL && redirect_refused(easy, x->req.url)) {
        /* the target answers the same redirect however often asked */
        iw_outcome_set(&out, IW_OUTCOME_PERMANENT, IW_ERR_TRANSPORT, "redirect", "%s",
                       "a redirect was refused: a request sent over https is never redirected "
                       "to plain http, nor any request to a protocol other than http and https");
    } else if (x->resend_refused) {
        iw_outcome_set(&out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "transport",
                       "the connection closed before an answer came; the request may have "
                       "arrived");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        iw_outcome_set(&out, IW_OUTCOME_RETRY, IW_ERR_TIMEOUT, "timeout", "%s",
                       curl_easy_strerror(cc));
    } else if (cc != CURLE_OK) {
        /* never the URL or curl's error buffer: URLs may carry secrets (api_key) */
        iw_outcome_set(&out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "transport", "%s",
                       curl_easy_strerror(cc));
    } else {
        iw_response resp = reply_of(x, status);
        iw_secrets_classify(t->secrets, c->ops, t->tc, &resp, &out);
    }
    iw_secrets_mask_outcome(t->secrets, &out);
    if (d->obs) {
        info.ev = c->ev;
        info.attempt = c->res.attempts;
        info.outcome = &out;
        d->obs(d->obs_arg, &info);
    }
    c->res.http_status = status;
    bool sent = cc != CURLE_OK && went_out(x, easy); /* asked only where no reply came */
    if (out.kind != IW_OUTCOME_AUTH && may_have_applied(cc, status, x->too_large, sent))
        c->res.maybe_applied = true; /* a success too: a job claimed again must not repeat it */
    /* no answer from the target itself: a transport failure once the request went out, or a
     * gateway's 502 or 504 (it may have passed the request on before giving up) */
    if ((cc != CURLE_OK && !x->too_large && sent) ||
        (cc == CURLE_OK && (status == 502 || status == 504)))
        note_in_doubt(c);
    if (iw_log_enabled(IW_LOG_DEBUG)) {
        char a[16], st[16], ms[24];
        snprintf(a, sizeof(a), "%d", c->res.attempts);
        snprintf(st, sizeof(st), "%ld", cc == CURLE_OK ? status : 0L);
        snprintf(ms, sizeof(ms), "%lld", (long long)(us / 1000));
        iw_log(IW_LOG_DEBUG, "attempt ended", "event_id", c->ev->event_id ? c->ev->event_id : "",
               "target", t->tc->name, "attempt", a, "status", st, "transport",
               cc == CURLE_OK ? "ok" : curl_easy_strerror(cc), "elapsed_ms", ms, NULL);
    }
    bool probe = x->took_probe;
    xfer_release(d, x);
    handle_outcome(d, c, &out, probe, mono_ms());
}

/* When the engine next has something to do on its own (monotonic ms): a callback to run, or
 * the moment a blocked target (rate limit, open breaker) may send again; -1 when nothing waits
 * on time (a backoff's end is its call's own timer). */
static int64_t next_due(const iw_dispatch *d, int64_t now)
{
    if (d->doneq.head)
        return now;
    int64_t due = -1;
    for (size_t i = 0; i < d->n_targets; i++) {
        const tstate *t = &d->targets[i];
        if (!t->ready.head || t->refresh)
            continue;
        int64_t tw;
        if (t->running >= max_conc(t)) {
            tw = INT64_MAX / 2; /* a finishing transfer wakes the loop; the sweep below too */
        } else if (t->br.state == IW_BREAKER_HALF_OPEN && t->br.probe_out) {
            tw = INT64_MAX / 2; /* the probe's reply wakes the loop; a probe that hangs (until
                                 * timeouts.request_ms) holds no waiting call past its limit */
        } else {
            int64_t b = iw_breaker_wait_ms(&t->br, now);
            int64_t r = iw_ratelimit_wait_ms(&t->rl, now);
            tw = b > r ? b : r;
            if (tw < 1)
                tw = 1; /* it could not start a moment ago: never spin */
        }
        /* and a waiting retry's retry.max_elapsed_s (expire_waiting), looked at again at least
         * every EXPIRY_SWEEP_MS for the retries that joined since */
        int64_t sweep = t->next_expiry < t->swept_at + EXPIRY_SWEEP_MS
                            ? t->next_expiry
                            : t->swept_at + EXPIRY_SWEEP_MS;
        if (sweep - now < tw)
            tw = sweep - now < 1 ? 1 : sweep - now;
        if (due < 0 || now + tw < due)
            due = now + tw;
    }
    return due;
}

static int read_messages(iw_dispatch *d);

/*
 * Moves everything that can move now: ready calls onto the wire
 * (libcurl asked for a 0 ms timeout when they were added: they are started here, in the turn
 * they were started in, since the lease guard counted their time from now), finished
 * transfers to their outcomes; then runs the callbacks and sets the engine's one timer.
 */
static void pump(iw_dispatch *d)
{
    if (d->pumping)
        return;
    d->pumping = true;
    for (int round = 0; round < 8; round++) {
        int64_t now = mono_ms();
        start_ready(d, now);
        for (size_t i = 0; i < d->n_pools; i++) {
            pool *pl = &d->pools[i];
            if (iw_timer_armed(&pl->timer) && pl->timer.due <= now) {
                int running;
                iw_timer_stop(d->loop, &pl->timer);
                curl_multi_socket_action(pl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
                saw_actions(pl);
            }
        }
        if (read_messages(d) == 0)
            break;
    }
    deliver(d);
    d->pumping = false;
    int64_t due = next_due(d, mono_ms());
    if (due < 0)
        iw_timer_stop(d->loop, &d->tick);
    else
        iw_timer_at(d->loop, &d->tick, due);
}

/* A socket libcurl watches is ready: only its transfer is looked at. */
static void on_socket(void *arg, int fd, unsigned events)
{
    pool *pl = arg;
    int mask = (events & IW_LOOP_READ ? CURL_CSELECT_IN : 0) |
               (events & IW_LOOP_WRITE ? CURL_CSELECT_OUT : 0) |
               (events & IW_LOOP_ERROR ? CURL_CSELECT_ERR : 0);
    int running;
    curl_multi_socket_action(pl->multi, fd, mask, &running);
    saw_actions(pl);
    pump(pl->d);
}

/* CURLOPT_OPENSOCKETFUNCTION: the connection sockets are ours to know, so that their close is
 * seen (close_socket) and socket_cb may park them between transfers. */
static curl_socket_t open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    iw_dispatch *d = userp;
    (void)purpose;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if ((size_t)fd >= d->n_own_fd) {
        size_t n = d->n_own_fd ? d->n_own_fd : 256;
        while (n <= (size_t)fd)
            n *= 2;
        unsigned char *o = realloc(d->own_fd, n);
        if (!o) {
            close(fd);
            return CURL_SOCKET_BAD;
        }
        memset(o + d->n_own_fd, 0, n - d->n_own_fd);
        d->own_fd = o;
        d->n_own_fd = n;
    }
    d->own_fd[fd] = 1;
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the loop forgets the socket before its number can come back. */
static int close_socket(void *userp, curl_socket_t s)
{
    iw_dispatch *d = userp;
    if ((size_t)s < d->n_own_fd && d->own_fd[s]) {
        d->own_fd[s] = 0;
        iw_loop_forget(d->loop, s);
    } else {
        iw_loop_unwatch(d->loop, s);
    }
    return close(s);
}

/* CURLMOPT_SOCKETFUNCTION: libcurl says which sockets to watch for what. A connection socket
 * that goes back to the connection cache is parked rather than removed from epoll: the next
 * transfer on it usually wants the same readiness, and then watching it costs no system call
 * (two fewer per request). */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    pool *pl = userp;
    iw_dispatch *d = pl->d;
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        if ((size_t)s < d->n_own_fd && d->own_fd[s])
            iw_loop_park(d->loop, s);
        else
            iw_loop_unwatch(d->loop, s);
        return 0;
    }
    unsigned ev = (what & CURL_POLL_IN ? IW_LOOP_READ : 0u) | (what & CURL_POLL_OUT ? IW_LOOP_WRITE : 0u);
    return iw_loop_watch(d->loop, s, ev, on_socket, pl) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: libcurl's single timeout; -1 disarms it. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    pool *pl = userp;
    (void)multi;
    if (timeout_ms < 0) {
        iw_timer_stop(pl->d->loop, &pl->timer);
        return 0;
    }
    return iw_timer_at(pl->d->loop, &pl->timer, mono_ms() + timeout_ms) == 0 ? 0 : -1;
}

static void on_curl_timer(void *arg)
{
    pool *pl = arg;
    int running;
    curl_multi_socket_action(pl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    saw_actions(pl);
    pump(pl->d);
}

static void pools_free(iw_dispatch *d)
{
    for (size_t i = 0; i < d->n_pools; i++) {
        curl_multi_cleanup(d->pools[i].multi); /* unwatches its sockets through socket_cb */
        iw_timer_stop(d->loop, &d->pools[i].timer);
    }
    d->n_pools = 0;
    if (d->share)
        curl_share_cleanup(d->share);
    d->share = NULL;
}

static void on_tick(void *arg)
{
    pump(arg);
}

/* --- public API --- */

iw_dispatch *iw_dispatch_new(const iw_config *cfg, char *errbuf, size_t errlen)
{
    return iw_dispatch_new_in(cfg, NULL, errbuf, errlen);
}

iw_dispatch *iw_dispatch_new_in(const iw_config *cfg, iw_loop *loop, char *errbuf, size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errbuf, errlen, "libcurl could not be initialised");
        return NULL;
    }
    iw_dispatch *d = calloc(1, sizeof(*d));
    if (!d)
        goto fail_global;
    d->cfg = cfg;
    d->no_proxy_env = iw_env_has_no_proxy_vars();
    d->n_targets = cfg->n_targets;
    d->targets = calloc(d->n_targets ? d->n_targets : 1, sizeof(*d->targets));
    if (!d->targets)
        goto fail_alloc;
    int64_t now = mono_ms();
    long conns = 0;
    for (size_t i = 0; i < d->n_targets; i++) {
        tstate *t = &d->targets[i];
        t->tc = &cfg->targets[i];
        iw_breaker_init(&t->br, t->tc->breaker_failures, t->tc->breaker_open_ms);
        iw_ratelimit_init(&t->rl, t->tc->rate_per_s, t->tc->rate_burst, now);
        if (!(t->secrets = iw_secrets_for_target(t->tc)))
            goto fail_alloc;
        conns += max_conc(t) + 1; /* + 1 for a token refresh */
    }
    d->own_loop = loop == NULL;
    d->loop = loop ? loop : iw_loop_new();
    d->share = curl_share_init();
    if (!d->loop || !d->share ||
        curl_share_setopt(d->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)
        goto fail_alloc;
    /* enough pools that each holds at most POOL_XFERS of the transfers that can be open */
    long open = cfg->max_in_flight > 0 && cfg->max_in_flight < conns
                    ? cfg->max_in_flight + (long)d->n_targets
                    : conns;
    size_t n_pools = (size_t)((open + POOL_XFERS - 1) / POOL_XFERS);
    n_pools = n_pools < 1 ? 1 : n_pools > MAX_POOLS ? MAX_POOLS : n_pools;
    for (; d->n_pools < n_pools; d->n_pools++) {
        pool *pl = &d->pools[d->n_pools];
        pl->d = d;
        if (!(pl->multi = curl_multi_init()))
            goto fail_alloc;
        iw_timer_init(&pl->timer, on_curl_timer, pl);
        curl_multi_setopt(pl->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(pl->multi, CURLMOPT_SOCKETDATA, pl);
        curl_multi_setopt(pl->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(pl->multi, CURLMOPT_TIMERDATA, pl);
        /* keep one idle connection per possible transfer so keep-alive connections are
         * reused */
        curl_multi_setopt(pl->multi, CURLMOPT_MAXCONNECTS, conns > 0 ? conns : 1L);
    }
    iw_timer_init(&d->tick, on_tick, d);
    d->rng = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)d;
    return d;

fail_alloc:
    snprintf(errbuf, errlen, "out of memory");
    pools_free(d);
    if (d->own_loop)
        iw_loop_free(d->loop);
    for (size_t i = 0; d->targets && i < d->n_targets; i++)
        iw_secrets_free(d->targets[i].secrets);
    free(d->targets);
    free(d);
fail_global:
    curl_global_cleanup();
    return NULL;
}

void iw_dispatch_set_observer(iw_dispatch *d, iw_attempt_fn fn, void *arg)
{
    d->obs = fn;
    d->obs_arg = arg;
}

/* The engine's state for tc: by address when tc is one of cfg's entries, else by name. */
static tstate *find_target(iw_dispatch *d, const iw_target_conf *tc)
{
    const iw_target_conf *first = d->cfg->targets;
    if (first && tc >= first && tc < first + d->n_targets)
        return &d->targets[tc - first];
    for (size_t i = 0; tc->name && i < d->n_targets; i++)
        if (d->targets[i].tc->name && strcmp(d->targets[i].tc->name, tc->name) == 0)
            return &d->targets[i];
    return NULL;
}

static int submit(iw_dispatch *d, const iw_target_ops *ops, const iw_target_conf *tc,
                  const iw_event *ev, const char *traceparent, const int64_t *lease_until,
                  const iw_call_prior *prior, iw_call_done_fn done, void *arg)
{
    if (d->closing || !ops || !tc || !ev || !done)
        return IW_EINVAL;
    tstate *t = find_target(d, tc);
    if (!t)
        return IW_EINVAL;
    call *c = d->free_calls;
    if (c) {
        d->free_calls = c->next;
        memset(c, 0, sizeof(*c));
    } else if (!(c = calloc(1, sizeof(*c)))) {
        return IW_ENOMEM;
    }
    c->d = d;
    c->t = t;
    c->ops = ops;
    c->ev = ev;
    /* a traceparent becomes a header: only a valid W3C value is sent (the pipeline drops and
     * counts invalid ones; this keeps every other caller to the same rule) */
    c->traceparent = traceparent && iw_text_traceparent_valid(traceparent, strlen(traceparent))
                         ? traceparent
                         : NULL;
    c->done = done;
    c->arg = arg;
    c->lease_until = lease_until;
    c->since_mono = mono_ms();
    c->res.outcome.retry_after_ms = -1;
    if (prior) {
        c->res.maybe_applied = prior->maybe_applied;
        c->resend = prior->resend && prior->attempts > 0;
        if (prior->attempts > 0) { /* attempt 1 (start_attempt) is then theirs */
            c->res.attempts = prior->attempts;
            c->first_mono = prior->first_attempt_mono;
            c->res.first_attempt_mono = prior->first_attempt_mono;
            c->res.first_attempt_at_ms = prior->first_attempt_at_ms;
            /* what a message about the attempts made says of the last, until one of its own */
            snprintf(c->res.outcome.message, sizeof(c->res.outcome.message), "%s",
                     "made before the fence was claimed again");
        }
    }
    d->pending++;

    char err[256] = "";
    int rc = iw_target_validate(ops, ev, t->tc, err, sizeof(err));
    if (rc) {
        if (!*err)
            snprintf(err, sizeof(err), "validation failed: %s", iw_status_str(rc));
        reject(d, c, err); /* called back from the engine's next turn */
    } else if (c->res.attempts > 0 && !c->resend &&
               !iw_backoff_may_retry(&t->tc->retry, c->res.attempts, c->first_mono,
                                     c->since_mono)) {
        char msg[sizeof(c->res.outcome.message)];
        snprintf(msg, sizeof(msg),
                 "after %d attempt%s: retry.%s left no attempt once the call's fence was claimed "
                 "again",
                 c->res.attempts, c->res.attempts == 1 ? "" : "s",
                 c->res.attempts >= t->tc->retry.max_attempts ? "max_attempts" : "max_elapsed_s");
        finish_with(d, c, IW_OUTCOME_PERMANENT, IW_ERR_EXHAUSTED, "exhausted", msg);
    } else {
        q_push(&t->ready, c);
    }
    if (!d->pumping)
        iw_timer_at(d->loop, &d->tick, mono_ms()); /* the loop moves it (or a flush does) */
    return 0;
}

int iw_dispatch_submit_ops(iw_dispatch *d, const iw_target_ops *ops, const iw_target_conf *tc,
                           const iw_event *ev, const char *traceparent, const int64_t *lease_until,
                           const iw_call_prior *prior, iw_call_done_fn done, void *arg)
{
    return submit(d, ops, tc, ev, traceparent, lease_until, prior, done, arg);
}

int iw_dispatch_submit_fenced(iw_dispatch *d, const iw_target_conf *tc, const iw_event *ev,
                              const char *traceparent, const int64_t *lease_until,
                              const iw_call_prior *prior, iw_call_done_fn done, void *arg)
{
    const iw_target_ops *ops = tc ? iw_target_find(tc->type) : NULL;
    if (!ops)
        return IW_EINVAL;
    return submit(d, ops, tc, ev, traceparent, lease_until, prior, done, arg);
}

/* IW_EINVAL with why (len > 0) masked as a call's outcome message is. */
static int refusal(const tstate *t, char *why, size_t len)
{
    iw_outcome o;
    memset(&o, 0, sizeof(o));
    snprintf(o.message, sizeof(o.message), "%s", *why ? why : "refused by the target's validation");
    iw_secrets_mask_outcome(t->secrets, &o);
    snprintf(why, len, "%s", o.message);
    return IW_EINVAL;
}

int iw_dispatch_validate(iw_dispatch *d, const iw_target_conf *tc, const iw_event *ev,
                         const char *traceparent, bool render, char *why, size_t len)
{
    const iw_target_ops *ops = tc ? iw_target_find(tc->type) : NULL;
    tstate *t = tc ? find_target(d, tc) : NULL;
    if (!ops || !t || !ev || !len)
        return 0; /* nothing to ask: submit says what is wrong */
    why[0] = '\0';
    if (iw_target_validate(ops, ev, tc, why, len))
        return refusal(t, why, len);
    if (!render && !ops->render_refuses_more)
        return 0;
    iw_request req;
    memset(&req, 0, sizeof(req));
    int rc = make_request(t, ops, ev, traceparent, 1, false, &req, why, len);
    iw_request_clear(&req);
    return rc == IW_EINVAL ? refusal(t, why, len) : 0; /* no memory: the attempt finds out */
}

int iw_dispatch_submit(iw_dispatch *d, const iw_target_conf *tc, const iw_event *ev,
                       const char *traceparent, iw_call_done_fn done, void *arg)
{
    return iw_dispatch_submit_fenced(d, tc, ev, traceparent, NULL, NULL, done, arg);
}

/* Removes c from q; true when it was there. */
static bool q_remove(callq *q, call *c)
{
    call *prev = NULL;
    for (call *x = q->head; x; prev = x, x = x->next) {
        if (x == c) {
            q_unlink(q, prev, x);
            return true;
        }
    }
    return false;
}

/* The pending call submitted with arg that is waiting somewhere (not on the wire), removed
 * from where it waits; NULL when none. */
static call *unlink_waiting(iw_dispatch *d, void *arg)
{
    for (size_t i = 0; i < d->n_targets; i++) {
        tstate *t = &d->targets[i];
        callq *qs[2] = {&t->ready, &t->authq};
        for (int k = 0; k < 2; k++)
            for (call *c = qs[k]->head; c; c = c->next)
                if (c->arg == arg && q_remove(qs[k], c))
                    return c;
    }
    for (call *c = d->backoff; c; c = c->next) {
        if (c->arg == arg) {
            backoff_unlink(d, c);
            return c;
        }
    }
    return NULL;
}

int iw_dispatch_cancel(iw_dispatch *d, void *arg)
{
    for (xfer *x = d->active; x; x = x->next) {
        if (x->c && x->c->arg == arg) {
            x->c->cancelled = true;
            return 0;
        }
    }
    call *c = unlink_waiting(d, arg);
    if (c) {
        abandon(d, c);
    } else {
        const call *q = d->doneq.head;
        while (q && q->arg != arg)
            q = q->next;
        if (!q)
            return -1;
        /* already finished: its callback runs now */
    }
    deliver(d);
    return 1;
}

/* Handles every finished transfer curl reports; returns how many. */
static int read_messages(iw_dispatch *d)
{
    CURLMsg *m;
    int left, n = 0;
    for (size_t i = 0; i < d->n_pools; i++)
        while ((m = curl_multi_info_read(d->pools[i].multi, &left))) {
            if (m->msg == CURLMSG_DONE) {
                on_done(d, m->easy_handle, m->data.result);
                n++;
            }
        }
    return n;
}

void iw_dispatch_flush(iw_dispatch *d)
{
    pump(d);
}

static void on_extra_fd(void *arg, int fd, unsigned events)
{
    (void)arg;
    (void)fd;
    (void)events; /* the caller reads it */
}

int iw_dispatch_run(iw_dispatch *d, int timeout_ms, int extra_fd)
{
    pump(d);
    if (d->doneq.head)
        return 0;
    if (extra_fd >= 0 && iw_loop_watch(d->loop, extra_fd, IW_LOOP_READ, on_extra_fd, NULL) != 0)
        return IW_EIO;
    int rc = iw_loop_run_once(d->loop, timeout_ms) < 0 ? IW_EIO : 0;
    if (extra_fd >= 0)
        iw_loop_unwatch(d->loop, extra_fd);
    pump(d);
    return rc;
}

size_t iw_dispatch_pending(const iw_dispatch *d)
{
    return d->pending;
}

size_t iw_dispatch_shed(iw_dispatch *d)
{
    size_t n = 0;
    int64_t now = mono_ms();
    for (size_t i = 0; i < d->n_targets; i++) {
        tstate *t = &d->targets[i];
        if (t->br.state != IW_BREAKER_OPEN || !t->tc->breaker_shed ||
            iw_breaker_down_ms(&t->br, now) < t->tc->breaker_shed_after_ms)
            continue;
        call *c;
        while ((c = q_pop(&t->ready))) {
            shed(d, c);
            n++;
        }
        call *next;
        for (c = d->backoff; c; c = next) {
            next = c->next;
            if (c->t == t) {
                backoff_unlink(d, c);
                shed(d, c);
                n++;
            }
        }
    }
    if (n)
        deliver(d);
    return n;
}

bool iw_dispatch_has_capacity(const iw_dispatch *d)
{
    return d->cfg->max_in_flight <= 0 || d->pending < (size_t)d->cfg->max_in_flight;
}

/* Ends every call the engine holds (not those already finished) and runs the callbacks. */
static void abandon_round(iw_dispatch *d)
{
    while (d->active) {
        xfer *x = d->active;
        active_unlink(d, x);
        curl_multi_remove_handle(x->pl->multi, x->easy);
        if (x->c) {
            x->t->running--;
            x->c->res.on_wire = true;
            abandon(d, x->c);
        } else {
            x->t->refresh = NULL;
        }
        xfer_release(d, x);
    }
    while (d->backoff) {
        call *c = d->backoff;
        backoff_unlink(d, c);
        abandon(d, c);
    }
    for (size_t i = 0; i < d->n_targets; i++) {
        tstate *t = &d->targets[i];
        call *c;
        while ((c = q_pop(&t->ready)))
            abandon(d, c);
        while ((c = q_pop(&t->authq)))
            abandon(d, c);
        if (t->br.state == IW_BREAKER_HALF_OPEN)
            t->br.probe_out = false; /* an abandoned probe must not block the target */
    }
    deliver(d);
}

void iw_dispatch_abandon_all(iw_dispatch *d)
{
    /* callbacks may submit again; those calls are abandoned too, a bounded number of times */
    for (int round = 0; round < 16 && d->pending > 0; round++)
        abandon_round(d);
}

iw_dispatch_stats iw_dispatch_target_stats(const iw_dispatch *d, const char *target)
{
    iw_dispatch_stats s;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; target && i < d->n_targets; i++) {
        const tstate *t = &d->targets[i];
        if (!t->tc->name || strcmp(t->tc->name, target) != 0)
            continue;
        s.requests = t->requests;
        s.retries = t->retries;
        s.breaker_opens = t->breaker_opens;
        s.breaker_open = t->br.state != IW_BREAKER_CLOSED;
        s.in_flight = t->running + (t->refresh ? 1 : 0);
        size_t w = q_len(&t->ready) + q_len(&t->authq);
        for (const call *c = d->backoff; c; c = c->next)
            if (c->t == t)
                w++;
        s.waiting = (int)w;
        break;
    }
    return s;
}

void iw_dispatch_free(iw_dispatch *d)
{
    if (!d)
        return;
    d->closing = true;
    iw_dispatch_abandon_all(d);
    for (size_t i = 0; i < d->n_targets; i++)
        while (d->targets[i].spare) {
            xfer *x = d->targets[i].spare;
            d->targets[i].spare = x->next;
            xfer_destroy(x);
        }
    pools_free(d);
    iw_timer_stop(d->loop, &d->tick);
    if (d->own_loop)
        iw_loop_free(d->loop);
    for (size_t i = 0; i < d->n_targets; i++) {
        tstate *t = &d->targets[i];
        if (t->state_ops && t->state_ops->state_free)
            t->state_ops->state_free(t->state);
        iw_secrets_free(t->secrets);
    }
    while (d->free_calls) {
        call *c = d->free_calls;
        d->free_calls = c->next;
        free(c);
    }
    free(d->targets);
    free(d->own_fd);
    free(d);
    curl_global_cleanup();
}
