/* test_ledger.c: the Redis ledger against a real redis-server started per test: one fence per
 * (tenant, invoice, target) and the highest claimed version there (see worker/ledger.c). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "status.h"
#include "testproc.h"

#define TTL_S 604800 /* the default: 7 days */
#define LONG_LEASE 60000

static iw_redis R;        /* this test's redis-server */
static iw_ledger *L;      /* the ledger under test */
static redisContext *raw; /* a plain connection for looking at keys */

static void setup(void)
{
    char err[256] = "";
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(iw_redis_start(&R, false), 0, "redis-server did not start");
    L = iw_ledger_new("127.0.0.1", R.port, NULL, TTL_S, 2000, err, sizeof(err));
    cr_assert_not_null(L, "iw_ledger_new: %s", err);
    raw = redisConnect("127.0.0.1", R.port);
    cr_assert(raw && !raw->err, "raw connection failed");
}

static void teardown(void)
{
    iw_ledger_free(L);
    L = NULL;
    if (raw)
        redisFree(raw);
    raw = NULL;
    iw_redis_stop(&R);
}

TestSuite(ledger, .init = setup, .fini = teardown, .timeout = 60);

static iw_ledger_op op_of(const char *invoice, const char *event, const char *target, int64_t v)
{
    iw_ledger_op op = {.tenant = "acme",
                       .invoice_id = invoice,
                       .event_id = event,
                       .target = target,
                       .version = v,
                       .answer = -1};
    return op;
}

static int claim1(iw_ledger *l, iw_ledger_op op, const char *owner, int64_t lease_ms)
{
    cr_assert_eq(iw_ledger_claim(l, &op, 1, owner, lease_ms), 0, "claim failed");
    return op.answer;
}

static int complete1(iw_ledger *l, iw_ledger_op op, const char *owner, const char *status,
                     const char *ref)
{
    op.status = status;
    op.target_ref = ref;
    cr_assert_eq(iw_ledger_complete(l, &op, 1, owner), 0, "complete failed");
    return op.answer;
}

static int release1(iw_ledger *l, iw_ledger_op op, const char *owner)
{
    cr_assert_eq(iw_ledger_release(l, &op, 1, owner), 0, "release failed");
    return op.answer;
}

/* A raw command whose reply the caller frees. */
static redisReply *rawcmd(const char *fmt, const char *a, const char *b)
{
    redisReply *r = redisCommand(raw, fmt, a, b);
    cr_assert_not_null(r, "raw command failed: %s", raw->errstr);
    return r;
}

/* Fetches KEYS pattern; returns the reply (an array). */
static redisReply *keys(const char *pattern)
{
    redisReply *r = rawcmd("KEYS %s", pattern, NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    return r;
}

/* The only key matching pattern, copied into buf. */
static void one_key(const char *pattern, char *buf, size_t len)
{
    redisReply *r = keys(pattern);
    cr_assert_eq(r->elements, 1, "%zu keys match %s", r->elements, pattern);
    snprintf(buf, len, "%s", r->element[0]->str);
    freeReplyObject(r);
}

static long long ttl_of(const char *key)
{
    redisReply *r = rawcmd("TTL %s", key, NULL);
    long long t = r->integer;
    freeReplyObject(r);
    return t;
}

/* HGET of a field into buf ("" when missing). */
static void hget(const char *key, const char *field, char *buf, size_t len)
{
    redisReply *r = rawcmd("HGET %s %s", key, field);
    snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Starts redis-server on a given port (the one a stopped server used). */
static void redis_start_on(iw_redis *r, int port)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/iw-redis-XXXXXX");
    cr_assert_not_null(mkdtemp(r->dir));
    r->port = port;
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    char *argv[] = {"redis-server", "--port",     p,         "--bind", "127.0.0.1",
                    "--dir",        r->dir,       "--save",  "",       "--appendonly",
                    "no",           "--loglevel", "warning", NULL};
    cr_assert_eq(iw_proc_start(&r->proc, argv, false), 0);
    cr_assert_eq(iw_wait_port(port, 10000), 0, "redis-server did not come back on %d", port);
}

/* A raw command (printf-style, as redisCommand) that must not fail; the caller frees it. */
static redisReply *rawv(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "raw command %s failed: %s", fmt, raw->errstr);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "raw command %s: %s", fmt, r->str);
    return r;
}

/* Integer answer of a raw command. */
static long long rawint(const char *fmt, const char *key)
{
    redisReply *r = rawv(fmt, key);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s %s did not answer an integer", fmt, key);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* Integer answer of a raw command with two arguments. */
static long long rawint2(const char *fmt, const char *a, const char *b)
{
    redisReply *r = rawv(fmt, a, b);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s %s %s did not answer an integer", fmt, a, b);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* A key of invoice inv (tenant acme): "iw:{acme:<inv>}:<tag>:<rest>". Ids passed here use only
 * bytes that the ledger does not encode. */
static void key_of(char *buf, size_t len, const char *inv, const char *tag, const char *rest)
{
    snprintf(buf, len, "iw:{acme:%s}:%s:%s", inv, tag, rest);
}

/* Asserts that the string key holds want, or is absent when want is NULL. */
static void expect_val(const char *key, const char *want, const char *ctx)
{
    redisReply *r = rawv("GET %s", key);
    if (!want) {
        cr_assert_eq(r->type, REDIS_REPLY_NIL, "%s: %s holds '%s', expected nothing", ctx, key,
                     r->type == REDIS_REPLY_STRING ? r->str : "?");
    } else {
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s: %s is missing, expected '%s'", ctx, key,
                     want);
        cr_assert_str_eq(r->str, want, "%s: %s holds '%s', expected '%s'", ctx, key, r->str, want);
    }
    freeReplyObject(r);
}

/* Asserts that key's TTL (seconds) lies in [lo, hi]. */
static void expect_ttl(const char *key, long long lo, long long hi, const char *ctx)
{
    long long t = rawint("TTL %s", key);
    cr_assert(t >= lo && t <= hi, "%s: TTL of %s is %lld, expected %lld..%lld", ctx, key, t, lo,
              hi);
}

/* Asserts that key's PTTL (milliseconds) lies in [lo, hi]. */
static void expect_pttl(const char *key, long long lo, long long hi, const char *ctx)
{
    long long t = rawint("PTTL %s", key);
    cr_assert(t >= lo && t <= hi, "%s: PTTL of %s is %lld, expected %lld..%lld", ctx, key, t, lo,
              hi);
}

/* Number of keys matching pattern. */
static size_t count_keys(const char *pattern)
{
    redisReply *r = keys(pattern);
    size_t n = r->elements;
    freeReplyObject(r);
    return n;
}

/* Number of records holding an outcome (a state) among the keys matching pattern: a claim
 * writes only its `claimed` field there. */
static size_t count_outcomes(const char *pattern)
{
    redisReply *r = keys(pattern);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++)
        n += rawint("HEXISTS %s state", r->element[i]->str) == 1;
    freeReplyObject(r);
    return n;
}

static int renew1(iw_ledger *l, iw_ledger_op op, const char *owner, int64_t lease_ms)
{
    cr_assert_eq(iw_ledger_renew(l, &op, 1, owner, lease_ms), 0, "renew failed");
    return op.answer;
}

/* Waits until the fence key is gone (its lease expired), up to 5 s. */
static void wait_fence_gone(const char *fence)
{
    long long deadline = iw_now_ms() + 5000;
    while (rawint("EXISTS %s", fence) != 0) {
        cr_assert_lt(iw_now_ms(), deadline, "the fence %s never expired", fence);
        iw_sleep_ms(10);
    }
}

static const char *const CLAIM_NAME[] = {"CLAIMED", "DUPLICATE", "STALE",     "BUSY",
                                         "(4)",     "REUSED",    "SUPERSEDED"};
static const char *const ACK_NAME[] = {"DONE", "LOST"};

/* Names an answer for messages (-1 and other values when nothing was answered). */
static const char *claim_name(int a)
{
    return a >= 0 && a <= IW_CLAIM_SUPERSEDED ? CLAIM_NAME[a] : "none";
}

static const char *ack_name(int a)
{
    return a >= 0 && a <= IW_LEDGER_LOST ? ACK_NAME[a] : "none";
}

/* ---- the state tables ----
 *
 * Every row is one invoice "<prefix>-<n>" at target ebiz, put into a state with raw commands,
 * then driven by one op of event ev-100 at version TV (one batch for the whole table). The
 * states:
 *   record   the record of (ev-100, ebiz): none; an outcome at TV, succeeded or failed (owner
 *            B); only the claim mark of an earlier claim, at TV or at another version (130);
 *            or a success at another version (130)
 *   applied  the applied version: none, below (50), equal (100) or above (150) TV
 *   claimed  the highest claim: none, below ("70 ev-70"), equal by this event ("100 ev-100"),
 *            equal by another event ("100 ev-other"), above ("120 ev-120"), or this event at
 *            another version, below ("70 ev-100") or above ("120 ev-100")
 *   fence    free, ours (A), another owner's (B), or expired (B's lease that ran out)
 * Keys set up here carry a TTL of PRE_TTL s and live fences a PTTL of PRE_PX ms, well below
 * what the ledger sets, so that a refresh or a renewal shows in the TTL. */

#define TV 100
#define PRE_TTL 1000
#define PRE_PX 20000

enum rec_state {
    REC_NONE,
    REC_SUCCEEDED,
    REC_FAILED,
    REC_MARKED,
    REC_MARKED_OTHER,
    REC_OTHER_VERSION,
    REC_N
};
enum app_state { APP_NONE, APP_BELOW, APP_EQUAL, APP_ABOVE, APP_N };
enum clm_state {
    CLM_NONE,
    CLM_BELOW,
    CLM_SAME,
    CLM_OTHER,
    CLM_ABOVE,
    CLM_REUSED_BELOW,
    CLM_REUSED_ABOVE,
    CLM_N
};
enum fen_state { FEN_FREE, FEN_OURS, FEN_OTHER, FEN_EXPIRED, FEN_N };

static const char *const REC_NAME[] = {"none",
                                       "succeeded",
                                       "failed",
                                       "claim mark",
                                       "another version's mark",
                                       "another version's success"};
/* The record's fields in each state: the outcome (owner B) and its version, and the mark. */
static const char *const REC_STATE[] = {NULL, "succeeded", "failed", NULL, NULL, "succeeded"};
static const char *const REC_VERSION[] = {NULL, "100", "100", NULL, NULL, "130"};
static const char *const REC_MARK[] = {NULL, NULL, NULL, "100", "130", NULL};
static const char *const APP_NAME[] = {"none", "below", "equal", "above"};
static const char *const CLM_NAME[] = {"none",
                                       "below",
                                       "equal-same-event",
                                       "equal-other-event",
                                       "above",
                                       "this event below",
                                       "this event above"};
static const char *const FEN_NAME[] = {"free", "ours", "other owner", "expired"};

static const char *const APP_VAL[] = {NULL, "50", "100", "150"};
static const char *const CLM_VAL[] = {NULL,         "70 ev-70",  "100 ev-100", "100 ev-other",
                                      "120 ev-120", "70 ev-100", "120 ev-100"};
#define CLAIMED_BY_TV "100 ev-100"

typedef struct row {
    char inv[32];
    int rec, app, clm, fen;
    char ctx[160];  /* the state, for messages */
    char rkey[128]; /* record, applied, claimed and fence keys */
    char vkey[128];
    char ckey[128];
    char fkey[128];
} row;

static void row_init(row *w, const char *prefix, size_t n, int rec, int app, int clm, int fen)
{
    snprintf(w->inv, sizeof(w->inv), "%s-%zu", prefix, n);
    w->rec = rec;
    w->app = app;
    w->clm = clm;
    w->fen = fen;
    snprintf(w->ctx, sizeof(w->ctx), "%s: record=%s applied=%s claimed=%s fence=%s", w->inv,
             REC_NAME[rec], APP_NAME[app], CLM_NAME[clm], FEN_NAME[fen]);
    key_of(w->rkey, sizeof(w->rkey), w->inv, "e", "ev-100:ebiz");
    key_of(w->vkey, sizeof(w->vkey), w->inv, "v", "ebiz");
    key_of(w->ckey, sizeof(w->ckey), w->inv, "c", "ebiz");
    key_of(w->fkey, sizeof(w->fkey), w->inv, "f", "ebiz");
}

/* Writes the row's state into Redis. An expired fence is set to expire after 1 ms. */
static void row_put(const row *w)
{
    if (REC_STATE[w->rec])
        freeReplyObject(rawv("HSET %s state %s owner B version %s target_ref OLD-REF", w->rkey,
                             REC_STATE[w->rec], REC_VERSION[w->rec]));
    if (REC_MARK[w->rec])
        freeReplyObject(rawv("HSET %s claimed %s", w->rkey, REC_MARK[w->rec]));
    if (w->rec != REC_NONE)
        freeReplyObject(rawv("EXPIRE %s %d", w->rkey, PRE_TTL));
    if (APP_VAL[w->app])
        freeReplyObject(rawv("SET %s %s EX %d", w->vkey, APP_VAL[w->app], PRE_TTL));
    if (CLM_VAL[w->clm])
        freeReplyObject(rawv("SET %s %s EX %d", w->ckey, CLM_VAL[w->clm], PRE_TTL));
    if (w->fen == FEN_OURS)
        freeReplyObject(rawv("SET %s A PX %d", w->fkey, PRE_PX));
    else if (w->fen == FEN_OTHER)
        freeReplyObject(rawv("SET %s B PX %d", w->fkey, PRE_PX));
    else if (w->fen == FEN_EXPIRED)
        freeReplyObject(rawv("SET %s B PX 1", w->fkey));
}

/* Sets up row n of a table in state number `state` (0 to REC_N * APP_N * CLM_N * FEN_N - 1:
 * the record's state slowest, the fence's fastest) and writes it into Redis; `what` (may be
 * NULL) is added to the row's message context. */
static void row_setup(row *w, const char *prefix, size_t n, size_t state, const char *what)
{
    int fen = (int)(state % FEN_N), clm = (int)(state / FEN_N % CLM_N),
        app = (int)(state / FEN_N / CLM_N % APP_N), rec = (int)(state / FEN_N / CLM_N / APP_N);
    row_init(w, prefix, n, rec, app, clm, fen);
    row_put(w);
    if (what) {
        size_t len = strlen(w->ctx);
        snprintf(w->ctx + len, sizeof(w->ctx) - len, " %s", what);
    }
}

/* Lets the expired fences of rows expire, and checks that they did. */
static void rows_expire(const row *rows, size_t n)
{
    iw_sleep_ms(50);
    for (size_t i = 0; i < n; i++)
        if (rows[i].fen == FEN_EXPIRED)
            cr_assert_eq(rawint("PTTL %s", rows[i].fkey), -2, "%s: the fence did not expire",
                         rows[i].ctx);
}

/* Asserts that field of the record holds want, or is absent when want is NULL. */
static void expect_field(const char *key, const char *field, const char *want, const char *ctx)
{
    if (!want) {
        cr_assert_eq(rawint2("HEXISTS %s %s", key, field), 0, "%s: the record holds %s", ctx,
                     field);
        return;
    }
    char v[64];
    hget(key, field, v, sizeof(v));
    cr_assert_str_eq(v, want, "%s: the record's %s is '%s', expected '%s'", ctx, field, v, want);
}

/* The outcome the row set up in the record (owner B), or none, and nothing else but the mark. */
static void expect_outcome_unchanged(const row *w, const char *ctx)
{
    expect_field(w->rkey, "state", REC_STATE[w->rec], ctx);
    expect_field(w->rkey, "version", REC_VERSION[w->rec], ctx);
    expect_field(w->rkey, "owner", REC_STATE[w->rec] ? "B" : NULL, ctx);
    expect_field(w->rkey, "target_ref", REC_STATE[w->rec] ? "OLD-REF" : NULL, ctx);
}

/* The record as the row set it up (or absent), TTL untouched. */
static void expect_record_unchanged(const row *w, const char *ctx)
{
    if (w->rec == REC_NONE) {
        cr_assert_eq(rawint("EXISTS %s", w->rkey), 0, "%s: a record was written", ctx);
        return;
    }
    expect_outcome_unchanged(w, ctx);
    expect_field(w->rkey, "claimed", REC_MARK[w->rec], ctx);
    cr_assert_eq(rawint("HLEN %s", w->rkey),
                 (REC_STATE[w->rec] ? 4 : 0) + (REC_MARK[w->rec] != NULL),
                 "%s: the record holds another field", ctx);
    expect_ttl(w->rkey, 1, PRE_TTL, ctx);
}

/* The record after a claim that raised `claimed`: its outcome as the row set it up (none: no
 * other field), the claimed version marked. The mark is written, with the ledger's TTL, only
 * when the record did not hold it already: then nothing is written, the TTL stays. */
static void expect_claim_mark(const row *w, const char *ctx)
{
    expect_field(w->rkey, "claimed", "100", ctx);
    if (REC_MARK[w->rec] && strcmp(REC_MARK[w->rec], "100") == 0)
        expect_ttl(w->rkey, 1, PRE_TTL, ctx);
    else
        expect_ttl(w->rkey, TTL_S - 60, TTL_S, ctx);
    expect_outcome_unchanged(w, ctx);
    cr_assert_eq(rawint("HLEN %s", w->rkey), REC_STATE[w->rec] ? 5 : 1,
                 "%s: the record holds another field", ctx);
}

/* The applied version as the row set it up, TTL untouched. */
static void expect_applied_unchanged(const row *w, const char *ctx)
{
    expect_val(w->vkey, APP_VAL[w->app], ctx);
    if (APP_VAL[w->app])
        expect_ttl(w->vkey, 1, PRE_TTL, ctx);
}

/* The claimed key as the row set it up, TTL untouched. */
static void expect_claimed_unchanged(const row *w, const char *ctx)
{
    expect_val(w->ckey, CLM_VAL[w->clm], ctx);
    if (CLM_VAL[w->clm])
        expect_ttl(w->ckey, 1, PRE_TTL, ctx);
}

/* The fence as the row set it up: PTTL not renewed; a free or expired one still absent. */
static void expect_fence_unchanged(const row *w, const char *ctx)
{
    if (w->fen == FEN_OURS || w->fen == FEN_OTHER) {
        expect_val(w->fkey, w->fen == FEN_OURS ? "A" : "B", ctx);
        expect_pttl(w->fkey, 1, PRE_PX, ctx);
    } else {
        expect_val(w->fkey, NULL, ctx);
    }
}

/* What a claim by A of (ev-100, TV) must answer in a state: the rules of ledger.h. The
 * record's own word on the event comes first: its outcome's version when it holds one, else
 * its mark; then the applied version, then the claim. */
static int claim_expect(const row *w)
{
    if (w->rec == REC_OTHER_VERSION || w->rec == REC_MARKED_OTHER)
        return IW_CLAIM_REUSED;
    if (w->rec == REC_SUCCEEDED)
        return IW_CLAIM_DUPLICATE;
    if (w->app == APP_EQUAL || w->app == APP_ABOVE)
        return IW_CLAIM_STALE;
    if (w->clm == CLM_REUSED_BELOW || w->clm == CLM_REUSED_ABOVE)
        return IW_CLAIM_REUSED;
    if (w->clm == CLM_OTHER || w->clm == CLM_ABOVE)
        return IW_CLAIM_STALE;
    return w->fen == FEN_OTHER ? IW_CLAIM_BUSY : IW_CLAIM_CLAIMED;
}

#define CLAIM_ROWS (REC_N * APP_N * CLM_N * FEN_N)

Test(ledger, claim_in_every_state)
{
    static row rows[CLAIM_ROWS];
    static iw_ledger_op ops[CLAIM_ROWS];
    size_t n = 0;
    for (; n < CLAIM_ROWS; n++) {
        row_setup(&rows[n], "CT", n, n, NULL);
        ops[n] = op_of(rows[n].inv, "ev-100", "ebiz", TV);
    }
    cr_assert_eq(n, 672);
    rows_expire(rows, n);
    cr_assert_eq(iw_ledger_claim(L, ops, n, "A", LONG_LEASE), 0);

    int tally[IW_CLAIM_SUPERSEDED + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        const row *w = &rows[i];
        int want = claim_expect(w), got = ops[i].answer;
        cr_assert_eq(got, want, "%s: claim answered %s, expected %s", w->ctx, claim_name(got),
                     claim_name(want));
        cr_assert(got >= 0 && got <= IW_CLAIM_SUPERSEDED, "%s: claim answered %d", w->ctx, got);
        tally[got]++;
        /* A claim that is neither DUPLICATE nor STALE raises `claimed`, BUSY too. */
        if (want == IW_CLAIM_CLAIMED || want == IW_CLAIM_BUSY) {
            expect_val(w->ckey, CLAIMED_BY_TV, w->ctx);
            expect_ttl(w->ckey, TTL_S - 60, TTL_S, w->ctx);
        } else {
            expect_claimed_unchanged(w, w->ctx);
        }
        /* CLAIMED takes or renews the fence for A; nothing else touches it. */
        if (want == IW_CLAIM_CLAIMED) {
            expect_val(w->fkey, "A", w->ctx);
            expect_pttl(w->fkey, LONG_LEASE - 10000, LONG_LEASE, w->ctx);
        } else {
            expect_fence_unchanged(w, w->ctx);
        }
        /* A claim never writes the applied version or an outcome; one that raises `claimed`
         * marks its version in the event's record. */
        expect_applied_unchanged(w, w->ctx);
        if (want == IW_CLAIM_CLAIMED || want == IW_CLAIM_BUSY)
            expect_claim_mark(w, w->ctx);
        else
            expect_record_unchanged(w, w->ctx);
    }
    /* Counted by hand from the rules, 112 rows per record state: two record states name another
     * version (224 REUSED) and one a success (112 DUPLICATE); of the other 336, 168 have applied
     * >= TV (STALE); of the 168 left, 48 have a claim of this event at another version (REUSED)
     * and 48 a claim above or by another event at TV (STALE); the 72 left are BUSY when B holds
     * the fence (18), else CLAIMED (54). */
    cr_assert_eq(tally[IW_CLAIM_REUSED], 272);
    cr_assert_eq(tally[IW_CLAIM_DUPLICATE], 112);
    cr_assert_eq(tally[IW_CLAIM_STALE], 216);
    cr_assert_eq(tally[IW_CLAIM_BUSY], 18);
    cr_assert_eq(tally[IW_CLAIM_CLAIMED], 54);
}

/* What a question (a claim with peek) of (ev-100, TV) must answer in a state: as a claim, but
 * without a fence (no BUSY). Asked whether it succeeded (mode 1), the event's record alone can
 * name a reuse, and anything but a duplicate is STALE; asked as a refusal (mode 2), what a claim
 * would answer, CLAIMED meaning that nothing newer is applied or claimed. */
static int peek_expect(const row *w, bool refused)
{
    if (refused)
        return w->fen == FEN_OTHER && claim_expect(w) == IW_CLAIM_BUSY ? IW_CLAIM_CLAIMED
                                                                       : claim_expect(w);
    if (w->rec == REC_OTHER_VERSION || w->rec == REC_MARKED_OTHER)
        return IW_CLAIM_REUSED;
    return w->rec == REC_SUCCEEDED ? IW_CLAIM_DUPLICATE : IW_CLAIM_STALE;
}

#define PEEK_ROWS (CLAIM_ROWS * 2)

Test(ledger, question_in_every_state)
{
    static row rows[PEEK_ROWS];
    static iw_ledger_op ops[PEEK_ROWS];
    static bool refused[PEEK_ROWS];
    size_t n = 0;
    for (; n < PEEK_ROWS; n++) {
        refused[n] = n % 2 == 1;
        row_setup(&rows[n], "QT", n, n / 2,
                  refused[n] ? "asked as a refusal" : "asked whether it succeeded");
        ops[n] = op_of(rows[n].inv, "ev-100", "ebiz", TV);
        ops[n].peek = true;
        ops[n].refused = refused[n];
    }
    cr_assert_eq(n, 1344);
    rows_expire(rows, n);
    cr_assert_eq(iw_ledger_claim(L, ops, n, "A", LONG_LEASE), 0);

    int tally[2][IW_CLAIM_SUPERSEDED + 1] = {{0}};
    for (size_t i = 0; i < n; i++) {
        const row *w = &rows[i];
        int want = peek_expect(w, refused[i]), got = ops[i].answer;
        cr_assert_eq(got, want, "%s: answered %s, expected %s", w->ctx, claim_name(got),
                     claim_name(want));
        tally[refused[i]][got]++;
        cr_assert_not(ops[i].in_doubt, "%s: a question took the fence", w->ctx);
        /* A question writes nothing at all. */
        expect_record_unchanged(w, w->ctx);
        expect_applied_unchanged(w, w->ctx);
        expect_claimed_unchanged(w, w->ctx);
        expect_fence_unchanged(w, w->ctx);
    }
    /* Whether it succeeded: 224 rows name another version in the record, 112 hold its success,
     * the other 336 are STALE. As a refusal: the claim's tally, BUSY counted as CLAIMED. */
    cr_assert_eq(tally[0][IW_CLAIM_REUSED], 224);
    cr_assert_eq(tally[0][IW_CLAIM_DUPLICATE], 112);
    cr_assert_eq(tally[0][IW_CLAIM_STALE], 336);
    cr_assert_eq(tally[1][IW_CLAIM_REUSED], 272);
    cr_assert_eq(tally[1][IW_CLAIM_DUPLICATE], 112);
    cr_assert_eq(tally[1][IW_CLAIM_STALE], 216);
    cr_assert_eq(tally[1][IW_CLAIM_BUSY], 0);
    cr_assert_eq(tally[1][IW_CLAIM_CLAIMED], 72);
}

/* Whether A's complete of (ev-100, TV) may write in a state: the fence is A's, or free with
 * the claim still exactly (TV, ev-100) and no success recorded for the event. */
static bool complete_allowed(const row *w)
{
    bool succeeded = REC_STATE[w->rec] && strcmp(REC_STATE[w->rec], "succeeded") == 0;
    return w->fen == FEN_OURS || (w->fen != FEN_OTHER && w->clm == CLM_SAME && !succeeded);
}

static const char *const STATUSES[] = {"succeeded", "failed", "rejected"};
#define N_STATUS 3
#define COMPLETE_ROWS (CLAIM_ROWS * N_STATUS)

Test(ledger, complete_in_every_state)
{
    static row rows[COMPLETE_ROWS];
    static iw_ledger_op ops[COMPLETE_ROWS];
    static char refs[COMPLETE_ROWS][24];
    static int status[COMPLETE_ROWS];
    size_t n = 0;
    for (; n < COMPLETE_ROWS; n++) {
        int st = (int)(n % N_STATUS);
        char what[32];
        snprintf(what, sizeof(what), "status=%s", STATUSES[st]);
        row_setup(&rows[n], "KT", n, n / N_STATUS, what);
        status[n] = st;
        ops[n] = op_of(rows[n].inv, "ev-100", "ebiz", TV);
        ops[n].status = STATUSES[st];
        /* "failed" carries no reference: the old record's must not survive */
        snprintf(refs[n], sizeof(refs[n]), "REF-%zu", n);
        ops[n].target_ref = st == 1 ? NULL : refs[n];
    }
    cr_assert_eq(n, 2016);
    rows_expire(rows, n);
    cr_assert_eq(iw_ledger_complete(L, ops, n, "A"), 0);

    int done = 0;
    for (size_t i = 0; i < n; i++) {
        const row *w = &rows[i];
        bool ok = complete_allowed(w);
        int got = ops[i].answer;
        cr_assert_eq(got, ok ? IW_LEDGER_DONE : IW_LEDGER_LOST, "%s: complete answered %s", w->ctx,
                     ack_name(got));
        if (!ok) {
            /* LOST writes nothing at all. */
            expect_record_unchanged(w, w->ctx);
            expect_applied_unchanged(w, w->ctx);
            expect_claimed_unchanged(w, w->ctx);
            expect_fence_unchanged(w, w->ctx);
            continue;
        }
        done++;
        /* The outcome is replaced whole: A's, no field left from the old one; the claim mark
         * is left as it was (it counts only before an outcome). */
        char v[64];
        hget(w->rkey, "state", v, sizeof(v));
        cr_assert_str_eq(v, STATUSES[status[i]], "%s: record state %s", w->ctx, v);
        hget(w->rkey, "owner", v, sizeof(v));
        cr_assert_str_eq(v, "A", "%s: record owner %s", w->ctx, v);
        hget(w->rkey, "version", v, sizeof(v));
        cr_assert_str_eq(v, "100", "%s: record version %s", w->ctx, v);
        hget(w->rkey, "target_ref", v, sizeof(v));
        cr_assert_str_eq(v, ops[i].target_ref ? ops[i].target_ref : "", "%s: record target_ref %s",
                         w->ctx, v);
        expect_field(w->rkey, "claimed", REC_MARK[w->rec], w->ctx);
        cr_assert_eq(rawint("HLEN %s", w->rkey), 5 + (REC_MARK[w->rec] != NULL),
                     "%s: the record holds another field", w->ctx);
        expect_ttl(w->rkey, TTL_S - 60, TTL_S, w->ctx);
        /* Only a success raises the applied version, and only upwards; an existing applied
         * key gets its TTL refreshed in any case, a missing one is not created. */
        bool raise = status[i] == 0 && (w->app == APP_NONE || w->app == APP_BELOW);
        const char *applied = raise ? "100" : APP_VAL[w->app];
        expect_val(w->vkey, applied, w->ctx);
        if (applied)
            expect_ttl(w->vkey, TTL_S - 60, TTL_S, w->ctx);
        /* The claim is left as it is (complete never lowers or moves it), TTL refreshed. */
        expect_val(w->ckey, CLM_VAL[w->clm], w->ctx);
        if (CLM_VAL[w->clm])
            expect_ttl(w->ckey, TTL_S - 60, TTL_S, w->ctx);
        /* The fence is freed. */
        expect_val(w->fkey, NULL, w->ctx);
    }
    /* 504 rows where A holds the fence (168 states, three statuses), and 96 with a free or
     * expired fence, the claim still (TV, ev-100) and no success recorded for the event (four
     * record states, four applied, three statuses). */
    cr_assert_eq(done, 600);
}

/* One row of the release/renew table. */
typedef struct fence_row {
    const char *name;
    const char *holder; /* fence value, NULL = free */
    long long px;       /* its PTTL; 1 = expired before the calls */
    const char *event;  /* the op's event and version */
    int64_t version;
    int dup_of; /* >= 0: the same (invoice, target) as that row, else its own */
    int renew_a, release_a, renew_b;
} fence_row;

Test(ledger, release_and_renew_answer_per_op)
{
    /* Renew by A, then release by A, then renew by B: one batch each, over the same ops. */
    static const fence_row t[] = {
        {"free", NULL, 0, "ev-100", 100, -1, IW_LEDGER_LOST, IW_LEDGER_LOST, IW_LEDGER_LOST},
        {"ours", "A", PRE_PX, "ev-100", 100, -1, IW_LEDGER_DONE, IW_LEDGER_DONE, IW_LEDGER_LOST},
        {"other owner", "B", PRE_PX, "ev-100", 100, -1, IW_LEDGER_LOST, IW_LEDGER_LOST,
         IW_LEDGER_DONE},
        {"ours, expired", "A", 1, "ev-100", 100, -1, IW_LEDGER_LOST, IW_LEDGER_LOST,
         IW_LEDGER_LOST},
        {"other's, expired", "B", 1, "ev-100", 100, -1, IW_LEDGER_LOST, IW_LEDGER_LOST,
         IW_LEDGER_LOST},
        /* The fence is per (invoice, target): any event of the pair renews or frees it. */
        {"ours, op of another event", "A", PRE_PX, "ev-7", 7, -1, IW_LEDGER_DONE, IW_LEDGER_DONE,
         IW_LEDGER_LOST},
        /* A second op on row 1's pair in the same batch: renewed again; freed already. */
        {"ours, second op of a pair", NULL, 0, "ev-101", 101, 1, IW_LEDGER_DONE, IW_LEDGER_LOST,
         IW_LEDGER_LOST},
    };
    enum { N = sizeof(t) / sizeof(t[0]) };
    char inv[N][16], fkey[N][64], ckey[N][64];
    iw_ledger_op ops[N];
    for (int i = 0; i < N; i++) {
        int pair = t[i].dup_of >= 0 ? t[i].dup_of : i;
        snprintf(inv[i], sizeof(inv[i]), "RR-%d", pair);
        key_of(fkey[i], sizeof(fkey[i]), inv[i], "f", "ebiz");
        key_of(ckey[i], sizeof(ckey[i]), inv[i], "c", "ebiz");
        if (t[i].dup_of < 0) {
            freeReplyObject(rawv("SET %s %s EX %d", ckey[i], "100 ev-100", PRE_TTL));
            if (t[i].holder)
                freeReplyObject(rawv("SET %s %s PX %lld", fkey[i], t[i].holder, t[i].px));
        }
        ops[i] = op_of(inv[i], t[i].event, "ebiz", t[i].version);
    }
    iw_sleep_ms(50);

    cr_assert_eq(iw_ledger_renew(L, ops, N, "A", 90000), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ops[i].answer, t[i].renew_a, "renew by A, fence %s: %s", t[i].name,
                     ack_name(ops[i].answer));
        if (t[i].dup_of >= 0)
            continue;
        if (t[i].renew_a == IW_LEDGER_DONE) {
            expect_val(fkey[i], "A", t[i].name);
            expect_pttl(fkey[i], 80000, 90000, t[i].name);
        } else if (t[i].holder && t[i].px > 1) {
            expect_val(fkey[i], t[i].holder, t[i].name);
            expect_pttl(fkey[i], 1, PRE_PX, t[i].name);
        } else {
            expect_val(fkey[i], NULL, t[i].name); /* renew never takes a fence */
        }
    }

    cr_assert_eq(iw_ledger_release(L, ops, N, "A"), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ops[i].answer, t[i].release_a, "release by A, fence %s: %s", t[i].name,
                     ack_name(ops[i].answer));
        if (t[i].dup_of >= 0)
            continue;
        if (t[i].holder && t[i].px > 1 && strcmp(t[i].holder, "B") == 0) {
            expect_val(fkey[i], "B", t[i].name);
            expect_pttl(fkey[i], 1, PRE_PX, t[i].name);
        } else {
            expect_val(fkey[i], NULL, t[i].name);
        }
    }

    cr_assert_eq(iw_ledger_renew(L, ops, N, "B", 45000), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ops[i].answer, t[i].renew_b, "renew by B, fence %s: %s", t[i].name,
                     ack_name(ops[i].answer));
    expect_pttl(fkey[2], 40000, 45000, "B's renewed fence");

    /* None of this touched a claim, an applied version or a record. */
    for (int i = 0; i < N; i++) {
        expect_val(ckey[i], "100 ev-100", t[i].name);
        expect_ttl(ckey[i], 1, PRE_TTL, t[i].name);
    }
    cr_assert_eq(count_keys("iw:*:v:*"), 0);
    cr_assert_eq(count_keys("iw:*:e:*"), 0);
    cr_assert_eq(count_keys("iw:*:f:*"), 1, "only B's fence is left");
}

/* ---- scenarios ---- */

/* Issue 10's first case: a partition moves while A still has v107 on the wire. */
Test(ledger, scenario_busy_claim_raises_the_version_and_stales_the_older_one)
{
    char ckey[64], fkey[64], vkey[64];
    key_of(ckey, sizeof(ckey), "INV-S1", "c", "centra");
    key_of(fkey, sizeof(fkey), "INV-S1", "f", "centra");
    key_of(vkey, sizeof(vkey), "INV-S1", "v", "centra");
    iw_ledger_op v107 = op_of("INV-S1", "ev-107", "centra", 107);
    iw_ledger_op v114 = op_of("INV-S1", "ev-114", "centra", 114);
    iw_ledger_op v128 = op_of("INV-S1", "ev-128", "centra", 128);

    cr_assert_eq(claim1(L, v107, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    /* B got the partition: its v128 waits for A's fence, but nobody may claim below 128 now. */
    cr_assert_eq(claim1(L, v128, "B", LONG_LEASE), IW_CLAIM_BUSY);
    expect_val(ckey, "128 ev-128", "after B's BUSY claim");
    expect_val(fkey, "A", "after B's BUSY claim");
    /* A's queued v114 is older than a claimed version: never sent. */
    cr_assert_eq(claim1(L, v114, "A", LONG_LEASE), IW_CLAIM_STALE);
    expect_val(ckey, "128 ev-128", "after A's STALE claim");
    /* A's call on the wire finishes under its fence. */
    cr_assert_eq(complete1(L, v107, "A", "succeeded", "R-107"), IW_LEDGER_DONE);
    expect_val(vkey, "107", "after A's complete");
    expect_val(fkey, NULL, "after A's complete");
    cr_assert_eq(claim1(L, v128, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    expect_val(fkey, "B", "after B's second claim");
    cr_assert_eq(complete1(L, v128, "B", "succeeded", "R-128"), IW_LEDGER_DONE);
    expect_val(vkey, "128", "after B's complete");
    /* Every later delivery: v128 is a duplicate, v114 and v107 are stale. */
    cr_assert_eq(claim1(L, v128, "A", LONG_LEASE), IW_CLAIM_DUPLICATE);
    cr_assert_eq(claim1(L, v114, "A", LONG_LEASE), IW_CLAIM_STALE);
    cr_assert_eq(claim1(L, op_of("INV-S1", "ev-107", "centra", 107), "B", LONG_LEASE),
                 IW_CLAIM_DUPLICATE);
    cr_assert_eq(count_keys("iw:*:e:*"), 2, "a record for v107 and one for v128, none for v114");
}

/* Issue 10's second case: A dies with v9 claimed (maybe sent), and the partition is replayed. */
Test(ledger, scenario_owner_dies_then_replay_sends_no_older_version)
{
    char fkey[64];
    key_of(fkey, sizeof(fkey), "INV-S2", "f", "navision");
    iw_ledger_op v9 = op_of("INV-S2", "ev-9", "navision", 9);
    cr_assert_eq(claim1(L, v9, "A", 150), IW_CLAIM_CLAIMED);
    wait_fence_gone(fkey); /* A was killed: no complete, no release */

    /* The replay starts before v9: v7 (superseded earlier, never claimed) is stale. */
    cr_assert_eq(claim1(L, op_of("INV-S2", "ev-7", "navision", 7), "B", LONG_LEASE),
                 IW_CLAIM_STALE);
    expect_val(fkey, NULL, "a STALE claim took the fence");
    /* v9 itself may be sent again (the same state, never an older one). */
    cr_assert_eq(claim1(L, v9, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    expect_val(fkey, "B", "after B's claim");
    /* A stale claim by a third worker does not disturb B either. */
    cr_assert_eq(claim1(L, op_of("INV-S2", "ev-8", "navision", 8), "C", LONG_LEASE),
                 IW_CLAIM_STALE);
    cr_assert_eq(complete1(L, v9, "B", "succeeded", NULL), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, op_of("INV-S2", "ev-7", "navision", 7), "C", LONG_LEASE),
                 IW_CLAIM_STALE);
    cr_assert_eq(claim1(L, v9, "C", LONG_LEASE), IW_CLAIM_DUPLICATE);
}

/* A claim of an event whose earlier owner died holding the fence answers CLAIMED in doubt: what
 * that owner sent may have been applied (EBizCharge must not e-mail the customer again). An
 * outcome, or a release saying that nothing sent can have been applied, ends the doubt; a
 * release that says it may have been keeps it; another event is never in doubt for it. */
static bool claim_in_doubt(iw_ledger_op op, const char *owner, int64_t lease_ms)
{
    cr_assert_eq(iw_ledger_claim(L, &op, 1, owner, lease_ms), 0, "claim failed");
    cr_assert_eq(op.answer, IW_CLAIM_CLAIMED, "answer %d", op.answer);
    return op.in_doubt;
}

Test(ledger, an_event_its_owner_left_without_an_outcome_is_claimed_in_doubt)
{
    char fkey[64];
    key_of(fkey, sizeof(fkey), "INV-D", "f", "ebiz");
    iw_ledger_op e1 = op_of("INV-D", "ev-1", "ebiz", 1);
    cr_assert(!claim_in_doubt(e1, "A", 150), "a first claim");
    cr_assert(!claim_in_doubt(e1, "A", 150), "its owner claiming again");
    wait_fence_gone(fkey); /* A was killed: no complete, no release */
    cr_assert(claim_in_doubt(e1, "B", LONG_LEASE), "A may have sent ev-1");

    /* B says none of its attempts can have been applied, but A's still may have been: a
     * release ends only what its owner knows of. Here B knows of A's doubt (it got in_doubt)
     * and releases saying so, as the worker does (maybe_applied carries it). */
    e1.may_be_applied = true;
    cr_assert_eq(release1(L, e1, "B"), IW_LEDGER_DONE);
    cr_assert(claim_in_doubt(e1, "C", LONG_LEASE), "still in doubt after a doubtful release");
    e1.may_be_applied = false;
    cr_assert_eq(release1(L, e1, "C"), IW_LEDGER_DONE);
    cr_assert(!claim_in_doubt(e1, "D", 150), "a release saying nothing was applied");
    wait_fence_gone(fkey); /* D dies: its claim's mark stays */

    /* another event of the invoice is not in doubt for ev-1's attempts (it is a new update) */
    iw_ledger_op e2 = op_of("INV-D", "ev-2", "ebiz", 2);
    cr_assert(!claim_in_doubt(e2, "E", LONG_LEASE));
    cr_assert_eq(complete1(L, e2, "E", "succeeded", NULL), IW_LEDGER_DONE);

    /* a failure whose attempts may have been applied keeps the doubt (the event may come
     * again: redelivered, or replayed from its dead letter); one whose attempts cannot have
     * been, and a success, end it */
    iw_ledger_op e3 = op_of("INV-D", "ev-3", "ebiz", 3);
    cr_assert(!claim_in_doubt(e3, "F", 150));
    wait_fence_gone(fkey);
    cr_assert(claim_in_doubt(e3, "G", LONG_LEASE));
    e3.may_be_applied = true;
    cr_assert_eq(complete1(L, e3, "G", "failed", NULL), IW_LEDGER_DONE);
    cr_assert(claim_in_doubt(e3, "H", LONG_LEASE), "after a failure that may have been applied");
    e3.may_be_applied = false;
    cr_assert_eq(complete1(L, e3, "H", "failed", NULL), IW_LEDGER_DONE);
    cr_assert(!claim_in_doubt(e3, "I", LONG_LEASE), "after a failure that was not applied");
    e3.may_be_applied = true;
    cr_assert_eq(complete1(L, e3, "I", "succeeded", NULL), IW_LEDGER_DONE);
    cr_assert_eq(count_keys("iw:*:d:*"), 0, "a success ends the mark, whatever came before");
}

/* A complete whose answer was lost (Redis went away after running it) is sent again: the
 * retry finds A's own record and answers DONE, so the outcome is reported as what it was,
 * not as a duplicate. Another owner, or another status, still answers LOST. */
Test(ledger, a_retried_complete_finds_its_own_record)
{
    char rkey[64], fkey[64];
    key_of(fkey, sizeof(fkey), "INV-RC", "f", "ebiz");
    key_of(rkey, sizeof(rkey), "INV-RC", "e", "ev-3:ebiz");
    iw_ledger_op o = op_of("INV-RC", "ev-3", "ebiz", 3);
    cr_assert_eq(claim1(L, o, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, o, "A", "succeeded", "R-3"), IW_LEDGER_DONE);
    expect_val(fkey, NULL, "the first complete freed the fence");
    cr_assert_eq(complete1(L, o, "A", "succeeded", "R-3"), IW_LEDGER_DONE, "A's retry");
    expect_val(fkey, NULL, "the retry created no fence");
    char v[64];
    hget(rkey, "target_ref", v, sizeof(v));
    cr_assert_str_eq(v, "R-3");
    cr_assert_eq(complete1(L, o, "A", "failed", NULL), IW_LEDGER_LOST, "another status");
    cr_assert_eq(complete1(L, o, "B", "succeeded", "R-B"), IW_LEDGER_LOST, "another owner");
    hget(rkey, "owner", v, sizeof(v));
    cr_assert_str_eq(v, "A", "nothing was overwritten");
    hget(rkey, "state", v, sizeof(v));
    cr_assert_str_eq(v, "succeeded");
    /* a newer claim by B since: A's retry still finds its own record */
    iw_ledger_op o4 = op_of("INV-RC", "ev-4", "ebiz", 4);
    cr_assert_eq(claim1(L, o4, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, o, "A", "succeeded", "R-3"), IW_LEDGER_DONE, "retry under B's fence");
    expect_val(fkey, "B", "B's fence untouched");
}

/* Issue 10's third case: A's lease ran out (Redis away, or a slow call) before complete. */
Test(ledger, scenario_complete_after_the_lease_ran_out)
{
    char rkey[64], vkey[64], fkey[64];
    /* (a) Nobody claimed meanwhile: the free fence and the unchanged claim let A record. */
    key_of(fkey, sizeof(fkey), "INV-S3a", "f", "ebiz");
    key_of(vkey, sizeof(vkey), "INV-S3a", "v", "ebiz");
    key_of(rkey, sizeof(rkey), "INV-S3a", "e", "ev-5:ebiz");
    iw_ledger_op a5 = op_of("INV-S3a", "ev-5", "ebiz", 5);
    cr_assert_eq(claim1(L, a5, "A", 100), IW_CLAIM_CLAIMED);
    wait_fence_gone(fkey);
    cr_assert_eq(complete1(L, a5, "A", "succeeded", "R-5"), IW_LEDGER_DONE);
    char v[64];
    hget(rkey, "owner", v, sizeof(v));
    cr_assert_str_eq(v, "A");
    expect_val(vkey, "5", "(a)");
    expect_val(fkey, NULL, "(a): complete created a fence");
    cr_assert_eq(claim1(L, a5, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);

    /* (b) B replays the same event and holds the fence: A is LOST and writes nothing. */
    key_of(fkey, sizeof(fkey), "INV-S3b", "f", "ebiz");
    iw_ledger_op b6 = op_of("INV-S3b", "ev-6", "ebiz", 6);
    cr_assert_eq(claim1(L, b6, "A", 100), IW_CLAIM_CLAIMED);
    wait_fence_gone(fkey);
    cr_assert_eq(claim1(L, b6, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, b6, "A", "succeeded", "A-REF"), IW_LEDGER_LOST);
    cr_assert_eq(count_outcomes("iw:{acme:INV-S3b}:e:*"), 0,
                 "(b): A's LOST complete wrote a record");
    cr_assert_eq(count_keys("iw:{acme:INV-S3b}:v:*"), 0, "(b): A's LOST complete wrote a version");
    expect_val(fkey, "B", "(b): A's LOST complete freed B's fence");

    /* (c) B claimed a newer version and already completed it (the fence is free again): the
     * claim moved on, so A is LOST. */
    key_of(fkey, sizeof(fkey), "INV-S3c", "f", "ebiz");
    key_of(vkey, sizeof(vkey), "INV-S3c", "v", "ebiz");
    iw_ledger_op c6 = op_of("INV-S3c", "ev-6", "ebiz", 6);
    iw_ledger_op c7 = op_of("INV-S3c", "ev-7", "ebiz", 7);
    cr_assert_eq(claim1(L, c6, "A", 100), IW_CLAIM_CLAIMED);
    wait_fence_gone(fkey);
    cr_assert_eq(claim1(L, c7, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, c7, "B", "failed", NULL), IW_LEDGER_DONE);
    expect_val(fkey, NULL, "(c)");
    cr_assert_eq(complete1(L, c6, "A", "succeeded", "A-REF"), IW_LEDGER_LOST);
    cr_assert_eq(count_outcomes("iw:{acme:INV-S3c}:e:ev-6:*"), 0, "(c): A's LOST complete wrote");
    expect_val(vkey, NULL, "(c): A's LOST complete wrote the version");

    /* (d) B's claim was BUSY on a third owner's fence: the claim still moved on. */
    key_of(fkey, sizeof(fkey), "INV-S3d", "f", "ebiz");
    iw_ledger_op d6 = op_of("INV-S3d", "ev-6", "ebiz", 6);
    cr_assert_eq(claim1(L, d6, "A", 100), IW_CLAIM_CLAIMED);
    wait_fence_gone(fkey);
    freeReplyObject(rawv("SET %s C PX 100", fkey));
    cr_assert_eq(claim1(L, op_of("INV-S3d", "ev-8", "ebiz", 8), "B", LONG_LEASE), IW_CLAIM_BUSY);
    wait_fence_gone(fkey);
    cr_assert_eq(complete1(L, d6, "A", "succeeded", NULL), IW_LEDGER_LOST);
    cr_assert_eq(count_outcomes("iw:{acme:INV-S3d}:e:*"), 0, "(d): A's LOST complete wrote");

    /* (e) B replayed the same event and completed it before A did: the fence is free and the
     * claim is still (9, ev-9), but a success is recorded for the event, so A's late complete
     * is LOST: B's success is never overwritten, and A's claim again answers DUPLICATE. */
    key_of(fkey, sizeof(fkey), "INV-S3e", "f", "ebiz");
    key_of(vkey, sizeof(vkey), "INV-S3e", "v", "ebiz");
    key_of(rkey, sizeof(rkey), "INV-S3e", "e", "ev-9:ebiz");
    iw_ledger_op e9 = op_of("INV-S3e", "ev-9", "ebiz", 9);
    cr_assert_eq(claim1(L, e9, "A", 100), IW_CLAIM_CLAIMED);
    wait_fence_gone(fkey);
    cr_assert_eq(claim1(L, e9, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, e9, "B", "succeeded", "B-REF"), IW_LEDGER_DONE);
    cr_assert_eq(complete1(L, e9, "A", "failed", NULL), IW_LEDGER_LOST);
    hget(rkey, "owner", v, sizeof(v));
    cr_assert_str_eq(v, "B", "(e): A's late outcome replaced B's success");
    hget(rkey, "state", v, sizeof(v));
    cr_assert_str_eq(v, "succeeded");
    expect_val(vkey, "9", "(e)");
    expect_val(fkey, NULL, "(e)");
    cr_assert_eq(claim1(L, e9, "A", LONG_LEASE), IW_CLAIM_DUPLICATE);
}

/* Versions are compared as decimal strings: 2^53 + 1 and 2^53 are one double. */
Test(ledger, scenario_versions_beyond_2_pow_53_compare_exactly)
{
    const int64_t p53 = INT64_C(9007199254740992);
    char ckey[64], vkey[64];
    key_of(ckey, sizeof(ckey), "INV-big", "c", "ebiz");
    key_of(vkey, sizeof(vkey), "INV-big", "v", "ebiz");

    /* Applied 2^53: 2^53 + 1 is newer (as doubles they would be equal, hence STALE). */
    iw_ledger_op lo = op_of("INV-big", "ev-lo", "ebiz", p53);
    cr_assert_eq(claim1(L, lo, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, lo, "A", "succeeded", NULL), IW_LEDGER_DONE);
    expect_val(vkey, "9007199254740992", "applied");
    iw_ledger_op hi = op_of("INV-big", "ev-hi", "ebiz", p53 + 1);
    cr_assert_eq(claim1(L, hi, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    expect_val(ckey, "9007199254740993 ev-hi", "claimed");
    /* Claimed 2^53 + 1 (B holds the fence): 2^53 + 2 is above it, so C's claim is BUSY. */
    iw_ledger_op hi2 = op_of("INV-big", "ev-hi2", "ebiz", p53 + 2);
    cr_assert_eq(claim1(L, hi2, "C", LONG_LEASE), IW_CLAIM_BUSY);
    expect_val(ckey, "9007199254740994 ev-hi2", "claimed after a BUSY claim");
    /* B's 2^53 + 1 completes (its fence); applied rises from 2^53 by exactly one. */
    cr_assert_eq(complete1(L, hi, "B", "succeeded", NULL), IW_LEDGER_DONE);
    expect_val(vkey, "9007199254740993", "applied");
    cr_assert_eq(claim1(L, hi2, "C", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, hi2, "C", "succeeded", NULL), IW_LEDGER_DONE);
    expect_val(vkey, "9007199254740994", "applied");
    /* The claimed version alone (no applied version at midnight): 2^53 + 1 by another event
     * is above a claimed 2^53 (as doubles, the same version: STALE), and 2^53 below it. */
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-m0", "midnight", p53), "B", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-m1", "midnight", p53 + 1), "C", LONG_LEASE),
                 IW_CLAIM_BUSY);
    expect_val("iw:{acme:INV-big}:c:midnight", "9007199254740993 ev-m1", "claimed at midnight");
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-m2", "midnight", p53), "B", LONG_LEASE),
                 IW_CLAIM_STALE);
    /* Shorter and longer decimal strings. */
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-short", "ebiz", 999), "A", LONG_LEASE),
                 IW_CLAIM_STALE);
    iw_ledger_op top = op_of("INV-big", "ev-top", "ebiz", INT64_MAX);
    cr_assert_eq(claim1(L, top, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, top, "A", "succeeded", NULL), IW_LEDGER_DONE);
    expect_val(vkey, "9223372036854775807", "applied");
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-late", "ebiz", INT64_MAX - 1), "A", LONG_LEASE),
                 IW_CLAIM_STALE);
    /* The version is also exact in the record. */
    char rkey[64], v[32];
    key_of(rkey, sizeof(rkey), "INV-big", "e", "ev-hi:ebiz");
    hget(rkey, "version", v, sizeof(v));
    cr_assert_str_eq(v, "9007199254740993");
}

/*
 * The fence holds only the owner, not the event: one owner's claims of several events of the
 * same (invoice, target) share it, and the complete (or release) of any one of them frees it
 * for all. The other CLAIMED answers the owner holds then protect nothing: another owner can
 * claim a newer version at once. The owner learns it only from renew (LOST) or a new claim, so
 * a caller must check the fence in Redis before sending each such event (or hold one claimed
 * event per pair at a time); the scripts cannot detect it themselves.
 */
Test(ledger, one_owner_events_of_a_pair_share_one_fence)
{
    char fkey[64];
    key_of(fkey, sizeof(fkey), "INV-H", "f", "ebiz");
    iw_ledger_op v5 = op_of("INV-H", "ev-5", "ebiz", 5), v6 = op_of("INV-H", "ev-6", "ebiz", 6);
    cr_assert_eq(claim1(L, v5, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, v6, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, v5, "A", "succeeded", NULL), IW_LEDGER_DONE);
    expect_val(fkey, NULL, "completing v5 freed the fence v6 was claimed under");
    cr_assert_eq(renew1(L, v6, "A", LONG_LEASE), IW_LEDGER_LOST);
    cr_assert_eq(claim1(L, op_of("INV-H", "ev-7", "ebiz", 7), "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    /* From here A's v6 is refused everywhere. */
    cr_assert_eq(claim1(L, v6, "A", LONG_LEASE), IW_CLAIM_STALE);
    cr_assert_eq(complete1(L, v6, "A", "succeeded", NULL), IW_LEDGER_LOST);
    cr_assert_eq(count_outcomes("iw:*:e:ev-6:*"), 0);

    /* The same with a release (a superseded job) while an older call is still in flight. */
    key_of(fkey, sizeof(fkey), "INV-H2", "f", "ebiz");
    iw_ledger_op w5 = op_of("INV-H2", "ev-5", "ebiz", 5), w6 = op_of("INV-H2", "ev-6", "ebiz", 6);
    cr_assert_eq(claim1(L, w5, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, w6, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(release1(L, w6, "A"), IW_LEDGER_DONE);
    expect_val(fkey, NULL, "releasing v6 freed the fence v5 was claimed under");
    cr_assert_eq(claim1(L, op_of("INV-H2", "ev-8", "ebiz", 8), "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(renew1(L, w5, "A", LONG_LEASE), IW_LEDGER_LOST);
    cr_assert_eq(complete1(L, w5, "A", "succeeded", NULL), IW_LEDGER_LOST);
}

/* ---- the ledger's other behaviour ---- */

Test(ledger, claim_complete_then_duplicate)
{
    iw_ledger_op op = op_of("INV-1", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(count_keys("iw:*:f:*"), 1, "a claim takes one fence");
    cr_assert_eq(complete1(L, op, "A", "succeeded", "REF-9"), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_DUPLICATE);
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
    /* a duplicate answers with the reference the success recorded, cut to the room given */
    char ref[8] = "x";
    iw_ledger_op again = op;
    again.ref_out = ref;
    again.ref_cap = sizeof(ref);
    cr_assert_eq(claim1(L, again, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
    cr_assert_str_eq(ref, "REF-9");
    again.ref_cap = 4;
    cr_assert_eq(claim1(L, again, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
    cr_assert_str_eq(ref, "REF");

    char key[256], v[64];
    one_key("iw:*:e:*", key, sizeof(key));
    cr_assert_str_eq(key, "iw:{acme:INV-1}:e:ev-1:ebiz");
    hget(key, "state", v, sizeof(v));
    cr_assert_str_eq(v, "succeeded");
    hget(key, "owner", v, sizeof(v));
    cr_assert_str_eq(v, "A");
    hget(key, "version", v, sizeof(v));
    cr_assert_str_eq(v, "1");
    hget(key, "target_ref", v, sizeof(v));
    cr_assert_str_eq(v, "REF-9");
    hget(key, "updated_ms", v, sizeof(v));
    long long ms = strtoll(v, NULL, 10);
    long long wall = (long long)time(NULL) * 1000;
    cr_assert(ms > wall - 60000 && ms < wall + 60000, "updated_ms %s is not now", v);
    cr_assert_eq(count_keys("iw:*:f:*"), 0, "the fence outlived complete");
    expect_val("iw:{acme:INV-1}:v:ebiz", "1", "applied");
    expect_val("iw:{acme:INV-1}:c:ebiz", "1 ev-1", "claimed");
    cr_assert_eq(count_keys("iw:*"), 3, "record, applied and claimed");
}

/* An event_id names one event: a claim for an event_id whose record here is of another
 * version (upstream gave one id to two versions) answers REUSED and writes nothing, whatever the
 * record's state; the same version is still DUPLICATE (succeeded) or claimed again (failed). */
Test(ledger, an_event_id_given_to_another_version_is_reused)
{
    iw_ledger_op op = op_of("INV-R", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, op, "A", "succeeded", "REF-1"), IW_LEDGER_DONE);
    int before = count_keys("iw:*");
    iw_ledger_op v2 = op_of("INV-R", "ev-1", "ebiz", 2);
    cr_assert_eq(claim1(L, v2, "B", LONG_LEASE), IW_CLAIM_REUSED);
    cr_assert_eq(count_keys("iw:*"), before, "nothing written");
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
    iw_ledger_op f = op_of("INV-R", "ev-2", "ebiz", 3);
    cr_assert_eq(claim1(L, f, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, f, "A", "failed", NULL), IW_LEDGER_DONE);
    iw_ledger_op f4 = op_of("INV-R", "ev-2", "ebiz", 4);
    cr_assert_eq(claim1(L, f4, "A", LONG_LEASE), IW_CLAIM_REUSED);
    cr_assert_eq(claim1(L, f, "A", LONG_LEASE), IW_CLAIM_CLAIMED,
                 "a failed event is claimed again");
}

/* Two workers, one event_id given to v1 and v3: B's claim of v3 while A still holds v1's fence
 * (no outcome recorded yet) is refused at once by A's claim, not answered busy: a busy claim
 * would raise the claimed version to 3 and leave v2 stale behind a version that is never sent. */
Test(ledger, an_event_id_claimed_for_another_version_is_reused_before_its_record)
{
    char ckey[64];
    key_of(ckey, sizeof(ckey), "INV-RB", "c", "ebiz");
    iw_ledger_op v1 = op_of("INV-RB", "ev-1", "ebiz", 1);
    iw_ledger_op v3 = op_of("INV-RB", "ev-1", "ebiz", 3);
    iw_ledger_op v2 = op_of("INV-RB", "ev-2", "ebiz", 2);
    cr_assert_eq(claim1(L, v1, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    int before = count_keys("iw:*");
    cr_assert_eq(claim1(L, v3, "B", LONG_LEASE), IW_CLAIM_REUSED);
    expect_val(ckey, "1 ev-1", "after B's refused claim");
    cr_assert_eq(count_keys("iw:*"), before, "nothing written");
    cr_assert_eq(claim1(L, v2, "B", LONG_LEASE), IW_CLAIM_BUSY, "v2 waits for A's fence");
    cr_assert_eq(complete1(L, v1, "A", "succeeded", "REF-1"), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, v2, "B", LONG_LEASE), IW_CLAIM_CLAIMED, "and is sent after v1");
    cr_assert_eq(claim1(L, v3, "B", LONG_LEASE), IW_CLAIM_REUSED, "v3 stays refused");
    /* a redelivery of v1 at A is still a duplicate, not a reuse */
    cr_assert_eq(claim1(L, v1, "A", LONG_LEASE), IW_CLAIM_DUPLICATE);
}

/* The same when a third event's claim came between: A holds E@1's fence, C's claim of F@2 is
 * busy and makes the claim "2 F", then B claims E@3. The claim key no longer names E, but E's
 * record marks its claimed version: E@3 is refused at once, `claimed` stays at 2, and F@2 is
 * sent after E@1 (a busy claim of E@3 would have raised `claimed` to 3, left F@2 stale and the
 * target at v1). */
Test(ledger, an_event_id_claimed_for_another_version_is_reused_after_a_third_claim)
{
    char ckey[64], rkey[80], v[16];
    key_of(ckey, sizeof(ckey), "INV-RC", "c", "ebiz");
    key_of(rkey, sizeof(rkey), "INV-RC", "e", "ev-1:ebiz");
    iw_ledger_op e1 = op_of("INV-RC", "ev-1", "ebiz", 1), e3 = op_of("INV-RC", "ev-1", "ebiz", 3);
    iw_ledger_op f2 = op_of("INV-RC", "ev-2", "ebiz", 2);
    cr_assert_eq(claim1(L, e1, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    hget(rkey, "claimed", v, sizeof(v));
    cr_assert_str_eq(v, "1", "the claim marked in E's record");
    cr_assert_eq(claim1(L, f2, "C", LONG_LEASE), IW_CLAIM_BUSY);
    expect_val(ckey, "2 ev-2", "C's busy claim raised the claim");
    cr_assert_eq(claim1(L, e3, "B", LONG_LEASE), IW_CLAIM_REUSED, "E@3 refused at once");
    expect_val(ckey, "2 ev-2", "B's refused claim wrote nothing");
    hget(rkey, "claimed", v, sizeof(v));
    cr_assert_str_eq(v, "1");
    cr_assert_eq(complete1(L, e1, "A", "succeeded", "REF-1"), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, f2, "C", LONG_LEASE), IW_CLAIM_CLAIMED, "F@2 is sent after E@1");
    cr_assert_eq(claim1(L, e3, "B", LONG_LEASE), IW_CLAIM_REUSED, "E@3 stays refused");
    cr_assert_eq(claim1(L, e1, "A", LONG_LEASE), IW_CLAIM_DUPLICATE, "E@1 again: a duplicate");
    /* a busy first claim marks the record too: G@5 busy behind C's fence, H@6 busy after it,
     * then G@4 is reused (by the record), not stale (by the claim, H's) */
    iw_ledger_op g5 = op_of("INV-RC", "ev-5", "ebiz", 5), g4 = op_of("INV-RC", "ev-5", "ebiz", 4);
    cr_assert_eq(claim1(L, g5, "A", LONG_LEASE), IW_CLAIM_BUSY);
    cr_assert_eq(claim1(L, op_of("INV-RC", "ev-6", "ebiz", 6), "A", LONG_LEASE), IW_CLAIM_BUSY);
    key_of(rkey, sizeof(rkey), "INV-RC", "e", "ev-5:ebiz");
    hget(rkey, "claimed", v, sizeof(v));
    cr_assert_str_eq(v, "5");
    cr_assert_eq(claim1(L, g4, "B", LONG_LEASE), IW_CLAIM_REUSED);
}

/* A peek (the pipeline's question for a version its lane says is stale or superseded) answers
 * DUPLICATE when the event succeeded here, else STALE, and writes nothing: no fence, no claimed
 * version, no doubt mark, whatever it asks about. */
Test(ledger, a_peek_asks_only_whether_the_event_succeeded)
{
    iw_ledger_op op = op_of("INV-P", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, op, "A", "succeeded", "REF-1"), IW_LEDGER_DONE);
    int before = count_keys("iw:*");
    iw_ledger_op peek = op;
    peek.peek = true;
    cr_assert_eq(claim1(L, peek, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
    iw_ledger_op other = op_of("INV-P", "ev-2", "ebiz", 5); /* newer, never claimed */
    other.peek = true;
    cr_assert_eq(claim1(L, other, "B", LONG_LEASE), IW_CLAIM_STALE);
    iw_ledger_op fresh = op_of("INV-Q", "ev-9", "ebiz", 1); /* an invoice never seen */
    fresh.peek = true;
    cr_assert_eq(claim1(L, fresh, "B", LONG_LEASE), IW_CLAIM_STALE);
    cr_assert_eq(count_keys("iw:*"), before, "a peek writes nothing");
    expect_val("iw:{acme:INV-P}:c:ebiz", "1 ev-1", "claimed is unchanged");
    /* and the newer event can still be claimed */
    other.peek = false;
    cr_assert_eq(claim1(L, other, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
}

/* A refused event's question (the target's rules refuse it before any call): DUPLICATE when it
 * succeeded here, STALE when a version at least as new was applied or another event claimed
 * one, else CLAIMED; whatever the answer, nothing is written (no claim, fence or doubt mark). */
Test(ledger, a_refused_event_asks_whether_it_is_stale_and_writes_nothing)
{
    iw_ledger_op v2 = op_of("INV-RF", "ev-2", "midnight", 2);
    cr_assert_eq(claim1(L, v2, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, v2, "A", "succeeded", "REF-2"), IW_LEDGER_DONE);
    int before = count_keys("iw:*");
    iw_ledger_op q = v2;
    q.peek = q.refused = true;
    cr_assert_eq(claim1(L, q, "B", LONG_LEASE), IW_CLAIM_DUPLICATE, "it succeeded here");
    iw_ledger_op v1 = op_of("INV-RF", "ev-1", "midnight", 1);
    v1.peek = v1.refused = true;
    cr_assert_eq(claim1(L, v1, "B", LONG_LEASE), IW_CLAIM_STALE, "older than the applied v2");
    iw_ledger_op v3 = op_of("INV-RF", "ev-3", "midnight", 3);
    v3.peek = v3.refused = true;
    cr_assert_eq(claim1(L, v3, "B", LONG_LEASE), IW_CLAIM_CLAIMED, "newer: refused on its own");
    iw_ledger_op fresh = op_of("INV-RG", "ev-1", "midnight", 1); /* an invoice never seen */
    fresh.peek = fresh.refused = true;
    cr_assert_eq(claim1(L, fresh, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(count_keys("iw:*"), before, "the question writes nothing");
    expect_val("iw:{acme:INV-RF}:c:midnight", "2 ev-2", "claimed is unchanged");
    /* a version another event claimed (not yet applied) makes an older refused one stale */
    iw_ledger_op v5 = op_of("INV-RF", "ev-5", "midnight", 5);
    cr_assert_eq(claim1(L, v5, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    iw_ledger_op v4 = op_of("INV-RF", "ev-4", "midnight", 4);
    v4.peek = v4.refused = true;
    cr_assert_eq(claim1(L, v4, "B", LONG_LEASE), IW_CLAIM_STALE);
}

/* A refused version superseded in its lane names its superseder: SUPERSEDED while that one may
 * claim, CLAIMED (nothing newer will be claimed: say the refusal) when the superseder's event_id
 * names another version here, by the claim or by a record; its own answers (STALE, DUPLICATE)
 * come first; nothing is written. */
/* B's question for the refused (event, version) of INV-SU at midnight, naming superseder
 * (NULL: none) at version sv; the ledger's answer. */
static int ask_refused(const char *event, int64_t version, const char *superseder, int64_t sv)
{
    iw_ledger_op q = op_of("INV-SU", event, "midnight", version);
    q.peek = q.refused = true;
    q.superseder = superseder;
    q.superseder_version = sv;
    return claim1(L, q, "B", LONG_LEASE);
}

Test(ledger, a_refused_version_asks_whether_its_superseder_can_claim)
{
    char ckey[64];
    key_of(ckey, sizeof(ckey), "INV-SU", "c", "midnight");
    iw_ledger_op v1 = op_of("INV-SU", "ev-A", "midnight", 1);
    cr_assert_eq(claim1(L, v1, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    int before = count_keys("iw:*");
    /* v2 by ev-B: a fresh event_id at v3 will claim */
    cr_assert_eq(ask_refused("ev-B", 2, "ev-C", 3), IW_CLAIM_SUPERSEDED);
    cr_assert_eq(ask_refused("ev-B", 2, "ev-A", 3), IW_CLAIM_CLAIMED, "the superseder is reused");
    cr_assert_eq(ask_refused("ev-B", 2, "ev-A", 1), IW_CLAIM_SUPERSEDED,
                 "a copy of v1 itself may claim (again)");
    /* the refused version's own event_id naming another version decides nothing here (review
     * 80): its superseder decides */
    cr_assert_eq(ask_refused("ev-A", 2, "ev-C", 3), IW_CLAIM_SUPERSEDED, "v3 by ev-C may claim");
    cr_assert_eq(ask_refused("ev-A", 2, "ev-A", 3), IW_CLAIM_CLAIMED,
                 "v3 under ev-A claims nothing");
    cr_assert_eq(ask_refused("ev-A", 2, NULL, 0), IW_CLAIM_REUSED,
                 "asked as a plain refusal, it is reused itself");
    cr_assert_eq(count_keys("iw:*"), before, "the question writes nothing");
    expect_val(ckey, "1 ev-A", "claimed is unchanged");
    char rkey[80], cv[16];
    key_of(rkey, sizeof(rkey), "INV-SU", "e", "ev-A:midnight");
    hget(rkey, "claimed", cv, sizeof(cv));
    cr_assert_str_eq(cv, "1", "nor ev-A's record");
    cr_assert_eq(rawint("HLEN %s", rkey), 1);
    /* by a record: v1's outcome written, then a third event claims (claimed no longer names
     * ev-A), and a superseder under ev-A at v4 is still known reused */
    cr_assert_eq(complete1(L, v1, "A", "failed", NULL), IW_LEDGER_DONE);
    iw_ledger_op v2b = op_of("INV-SU", "ev-D", "midnight", 2);
    cr_assert_eq(claim1(L, v2b, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(ask_refused("ev-E", 3, "ev-A", 4), IW_CLAIM_CLAIMED, "ev-A's record is of v1");
    cr_assert_eq(ask_refused("ev-E", 3, "ev-F", 4), IW_CLAIM_SUPERSEDED);
    /* the refused version's own answers come first: older than what is claimed, it is stale */
    cr_assert_eq(ask_refused("ev-B", 2, "ev-A", 4), IW_CLAIM_STALE, "v2 by ev-D is claimed");
}

Test(ledger, version_guard)
{
    iw_ledger_op e5 = op_of("INV-2", "ev-5", "navision", 5);
    cr_assert_eq(claim1(L, e5, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, e5, "A", "succeeded", NULL), IW_LEDGER_DONE);

    cr_assert_eq(claim1(L, op_of("INV-2", "ev-3", "navision", 3), "A", LONG_LEASE), IW_CLAIM_STALE);
    /* The guard is per target and per invoice. */
    cr_assert_eq(claim1(L, op_of("INV-2", "ev-3", "midnight", 3), "A", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, op_of("INV-3", "ev-3", "navision", 3), "A", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
    /* Changed meaning: the same version under another event id used to be claimable (a
     * full-state re-send); now the applied version is not re-sent by another event. */
    cr_assert_eq(claim1(L, op_of("INV-2", "ev-5b", "navision", 5), "A", LONG_LEASE),
                 IW_CLAIM_STALE);
    /* A succeeded event answers DUPLICATE before anything else. */
    cr_assert_eq(claim1(L, e5, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);

    iw_ledger_op e7 = op_of("INV-2", "ev-7", "navision", 7);
    cr_assert_eq(claim1(L, e7, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, e7, "A", "failed", NULL), IW_LEDGER_DONE);
    char key[256];
    one_key("iw:*INV-2}:v:navision", key, sizeof(key));
    redisReply *r = rawcmd("GET %s", key, NULL);
    cr_assert_str_eq(r->str, "5", "a failed outcome moved the applied version");
    freeReplyObject(r);
    /* Changed meaning: a failed v7 no longer lets v6 through. v7 stays the highest claimed
     * version (its replay may still succeed), so v6 is older than a claimed version. */
    cr_assert_eq(claim1(L, op_of("INV-2", "ev-6", "navision", 6), "A", LONG_LEASE), IW_CLAIM_STALE);
    cr_assert_eq(claim1(L, e7, "B", LONG_LEASE), IW_CLAIM_CLAIMED, "v7's replay");
    cr_assert_eq(claim1(L, op_of("INV-2", "ev-8", "navision", 8), "B", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
}

Test(ledger, busy_then_expiry_then_lost)
{
    iw_ledger_op op = op_of("INV-4", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", 200), IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, op, "B", 200), IW_CLAIM_BUSY);
    /* Re-claiming one's own live fence is fine (a local retry). */
    cr_assert_eq(claim1(L, op, "A", 200), IW_CLAIM_CLAIMED);

    long long start = iw_now_ms(), deadline = start + 5000;
    int answer = IW_CLAIM_BUSY;
    while (answer == IW_CLAIM_BUSY && iw_now_ms() < deadline) {
        iw_sleep_ms(20);
        answer = claim1(L, op, "B", LONG_LEASE);
    }
    cr_assert_eq(answer, IW_CLAIM_CLAIMED, "B never got the expired fence");
    cr_assert_geq(iw_now_ms() - start, 100, "the fence expired too early");

    cr_assert_eq(complete1(L, op, "A", "succeeded", "A-REF"), IW_LEDGER_LOST);
    cr_assert_eq(count_outcomes("iw:*:e:*"), 0, "a LOST complete wrote a record");
    cr_assert_eq(count_keys("iw:*:v:*"), 0, "a LOST complete wrote the version");
    cr_assert_eq(release1(L, op, "A"), IW_LEDGER_LOST);
    cr_assert_eq(claim1(L, op, "C", LONG_LEASE), IW_CLAIM_BUSY, "A's release dropped B's fence");

    cr_assert_eq(complete1(L, op, "B", "succeeded", "B-REF"), IW_LEDGER_DONE);
    char key[256], v[64];
    one_key("iw:*:e:*", key, sizeof(key));
    hget(key, "owner", v, sizeof(v));
    cr_assert_str_eq(v, "B");
    hget(key, "target_ref", v, sizeof(v));
    cr_assert_str_eq(v, "B-REF");
}

Test(ledger, release_lets_another_claim)
{
    iw_ledger_op op = op_of("INV-5", "ev-1", "centra", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(release1(L, op, "A"), IW_LEDGER_DONE);
    /* A release records nothing: the same event may be claimed again, by anyone. */
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_CLAIMED);

    /* Changed meaning: the fence is per (invoice, target), so another event of INV-5 at centra
     * is BUSY while B holds it (it used to have a lease of its own). */
    iw_ledger_op other = op_of("INV-5", "ev-2", "centra", 2);
    cr_assert_eq(claim1(L, other, "A", LONG_LEASE), IW_CLAIM_BUSY);
    cr_assert_eq(release1(L, other, "A"), IW_LEDGER_LOST);
    cr_assert_eq(claim1(L, other, "C", LONG_LEASE), IW_CLAIM_BUSY, "A released B's fence");
    cr_assert_eq(release1(L, other, "B"), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, other, "C", LONG_LEASE), IW_CLAIM_CLAIMED);
    /* Releasing something never claimed is LOST too, and writes nothing. */
    cr_assert_eq(release1(L, op_of("INV-5", "ev-9", "navision", 9), "A"), IW_LEDGER_LOST);
    cr_assert_eq(count_outcomes("iw:*:e:*"), 0, "release wrote a record");
    cr_assert_eq(count_keys("iw:*:v:*"), 0, "release wrote a version");
    cr_assert_eq(count_keys("iw:*navision*"), 0, "release of a free fence wrote something");
}

Test(ledger, failed_and_rejected_outcomes_allow_replay)
{
    iw_ledger_op op = op_of("INV-6", "ev-1", "invoicexpress", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, op, "A", "failed", NULL), IW_LEDGER_DONE);
    char key[256], v[64];
    one_key("iw:*:e:*", key, sizeof(key));
    hget(key, "state", v, sizeof(v));
    cr_assert_str_eq(v, "failed");

    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_CLAIMED, "a failed event is no dup");
    cr_assert_eq(complete1(L, op, "B", "rejected", NULL), IW_LEDGER_DONE);
    hget(key, "state", v, sizeof(v));
    cr_assert_str_eq(v, "rejected");
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED, "a rejected event is no dup");
    cr_assert_eq(complete1(L, op, "A", "succeeded", "X-1"), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
}

Test(ledger, renew_extends_only_own_fence)
{
    iw_ledger_op op = op_of("INV-7", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", 300), IW_CLAIM_CLAIMED);
    cr_assert_eq(renew1(L, op, "A", 10000), IW_LEDGER_DONE);
    iw_sleep_ms(500);
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_BUSY, "renew did not extend");
    cr_assert_eq(renew1(L, op, "B", 10000), IW_LEDGER_LOST);

    char key[256];
    one_key("iw:*:f:*", key, sizeof(key));
    cr_assert_str_eq(key, "iw:{acme:INV-7}:f:ebiz");
    expect_val(key, "A", "B's renew");
    expect_pttl(key, 8000, 10000, "after A's renew");
}

/* An op's own lease_ms wins over the call's, for claims and renewals alike, op by op. */
Test(ledger, an_op_may_carry_its_own_lease)
{
    iw_ledger_op ops[2] = {op_of("INV-8", "ev-1", "ebiz", 1), op_of("INV-9", "ev-1", "ebiz", 1)};
    ops[0].lease_ms = 40000;
    cr_assert_eq(iw_ledger_claim(L, ops, 2, "A", 10000), 0);
    cr_assert_eq(ops[0].answer, IW_CLAIM_CLAIMED);
    cr_assert_eq(ops[1].answer, IW_CLAIM_CLAIMED);
    char k8[256], k9[256];
    key_of(k8, sizeof(k8), "INV-8", "f", "ebiz");
    key_of(k9, sizeof(k9), "INV-9", "f", "ebiz");
    expect_pttl(k8, 38000, 40000, "claim with the op's lease");
    expect_pttl(k9, 8000, 10000, "claim with the call's lease");

    ops[0].lease_ms = 0;
    ops[1].lease_ms = 25000;
    cr_assert_eq(iw_ledger_renew(L, ops, 2, "A", 3000), 0);
    cr_assert_eq(ops[0].answer, IW_LEDGER_DONE);
    cr_assert_eq(ops[1].answer, IW_LEDGER_DONE);
    expect_pttl(k8, 1000, 3000, "a renewal may shorten a lease");
    expect_pttl(k9, 23000, 25000, "renew with the op's lease");

    ops[1].lease_ms = -1;
    cr_assert_eq(iw_ledger_renew(L, ops, 2, "A", 3000), IW_EINVAL, "a negative lease is refused");
}

Test(ledger, thousand_op_batches)
{
    /* 200 invoices x 5 targets: each op has a fence of its own. */
    enum { N = 1000 };
    static const char *targets[] = {"centra", "navision", "ebiz", "invoicexpress", "midnight"};
    static iw_ledger_op ops[N];
    static char inv[N][32], ev[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(inv[i], sizeof(inv[i]), "INV-%d", i % 200);
        snprintf(ev[i], sizeof(ev[i]), "ev-%d", i);
        ops[i] = op_of(inv[i], ev[i], targets[i / 200], i);
        ops[i].status = "succeeded";
    }
    double t0 = now_us();
    cr_assert_eq(iw_ledger_claim(L, ops, N, "A", LONG_LEASE), 0);
    double t1 = now_us();
    for (int i = 0; i < N; i++)
        cr_assert_eq(ops[i].answer, IW_CLAIM_CLAIMED, "op %d answered %d", i, ops[i].answer);
    cr_assert_eq(count_keys("iw:*:f:*"), N);
    for (int i = 0; i < N; i++)
        ops[i].answer = -1;
    cr_assert_eq(iw_ledger_renew(L, ops, N, "B", LONG_LEASE), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ops[i].answer, IW_LEDGER_LOST, "op %d answered %d", i, ops[i].answer);
    double t2 = now_us();
    cr_assert_eq(iw_ledger_complete(L, ops, N, "A"), 0);
    double t3 = now_us();
    for (int i = 0; i < N; i++)
        cr_assert_eq(ops[i].answer, IW_LEDGER_DONE, "op %d answered %d", i, ops[i].answer);
    fprintf(stderr, "ledger: %d-op claim batch %.2f ms, %d-op complete batch %.2f ms\n", N,
            (t1 - t0) / 1e3, N, (t3 - t2) / 1e3);

    cr_assert_eq(iw_ledger_claim(L, ops, N, "B", LONG_LEASE), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ops[i].answer, IW_CLAIM_DUPLICATE, "op %d answered %d", i, ops[i].answer);
    cr_assert_eq(count_keys("iw:*:e:*"), N);
    cr_assert_eq(count_keys("iw:*:v:*"), N);
    cr_assert_eq(count_keys("iw:*:f:*"), 0);
}

Test(ledger, mixed_answers_in_one_batch)
{
    iw_ledger_op done = op_of("INV-8", "ev-10", "ebiz", 10);
    cr_assert_eq(claim1(L, done, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, done, "A", "succeeded", NULL), IW_LEDGER_DONE);
    iw_ledger_op held = op_of("INV-9", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, held, "B", LONG_LEASE), IW_CLAIM_CLAIMED);

    /* The ops of a batch run in order: 5 and 6 see what 4 did. */
    iw_ledger_op batch[7] = {
        op_of("INV-8", "ev-10", "ebiz", 10), /* duplicate */
        op_of("INV-8", "ev-4", "ebiz", 4),   /* stale */
        op_of("INV-9", "ev-2", "ebiz", 2),   /* busy: B holds INV-9's fence */
        op_of("INV-8", "ev-11", "ebiz", 11), /* claimed */
        op_of("INV-10", "ev-1", "ebiz", 1),  /* claimed */
        op_of("INV-10", "ev-2", "ebiz", 2),  /* claimed: A holds the fence, 2 > 1 */
        op_of("INV-10", "ev-0", "ebiz", 0),  /* stale: 2 is claimed */
    };
    int want[7] = {IW_CLAIM_DUPLICATE, IW_CLAIM_STALE,   IW_CLAIM_BUSY, IW_CLAIM_CLAIMED,
                   IW_CLAIM_CLAIMED,   IW_CLAIM_CLAIMED, IW_CLAIM_STALE};
    cr_assert_eq(iw_ledger_claim(L, batch, 7, "A", LONG_LEASE), 0);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(batch[i].answer, want[i], "op %d: %s", i, claim_name(batch[i].answer));

    /* A completes what it holds, plus INV-9 (B's fence) and INV-10's v1 last: v2's complete
     * freed the fence and the claim is (2, ev-2), so v1 is LOST. */
    iw_ledger_op c[4] = {batch[2], batch[3], batch[5], batch[4]};
    int cwant[4] = {IW_LEDGER_LOST, IW_LEDGER_DONE, IW_LEDGER_DONE, IW_LEDGER_LOST};
    for (int i = 0; i < 4; i++)
        c[i].status = "succeeded";
    cr_assert_eq(iw_ledger_complete(L, c, 4, "A"), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(c[i].answer, cwant[i], "complete %d: %s", i, ack_name(c[i].answer));
    expect_val("iw:{acme:INV-9}:f:ebiz", "B", "A's complete touched B's fence");
    /* A's BUSY claim raised INV-9's claim to 2: B's v1 is stale now, a v3 waits for B. */
    cr_assert_eq(claim1(L, held, "C", LONG_LEASE), IW_CLAIM_STALE);
    cr_assert_eq(claim1(L, op_of("INV-9", "ev-3", "ebiz", 3), "C", LONG_LEASE), IW_CLAIM_BUSY);
    cr_assert_eq(count_outcomes("iw:{acme:INV-9}:e:*"), 0);
    cr_assert_eq(count_outcomes("iw:{acme:INV-10}:e:ev-1:*"), 0);
    expect_val("iw:{acme:INV-10}:v:ebiz", "2", "INV-10 applied");
    cr_assert_eq(claim1(L, op_of("INV-8", "ev-x", "ebiz", 10), "C", LONG_LEASE), IW_CLAIM_STALE,
                 "v11 succeeded, so v10 is stale now");
}

Test(ledger, records_carry_the_ttl)
{
    iw_ledger_op op = op_of("INV-11", "ev-1", "midnight", 3);
    cr_assert_eq(claim1(L, op, "A", 5000), IW_CLAIM_CLAIMED);
    char fence[256], rec[256], ver[256], clm[256];
    one_key("iw:*:f:*", fence, sizeof(fence));
    expect_pttl(fence, 4000, 5000, "fence");
    one_key("iw:*:c:*", clm, sizeof(clm));
    expect_ttl(clm, TTL_S - 10, TTL_S, "claimed");

    cr_assert_eq(complete1(L, op, "A", "succeeded", NULL), IW_LEDGER_DONE);
    one_key("iw:*:e:*", rec, sizeof(rec));
    one_key("iw:*:v:*", ver, sizeof(ver));
    long long t = ttl_of(rec);
    cr_assert(t > TTL_S - 10 && t <= TTL_S, "record TTL %lld", t);
    t = ttl_of(ver);
    cr_assert(t > TTL_S - 10 && t <= TTL_S, "version TTL %lld", t);

    /* A later claim or outcome of any kind refreshes the version and claimed keys, so they
     * outlive every record. */
    char err[256];
    iw_ledger *shorter = iw_ledger_new("127.0.0.1", R.port, NULL, 100, 2000, err, sizeof(err));
    cr_assert_not_null(shorter, "%s", err);
    iw_ledger_op f = op_of("INV-11", "ev-2", "midnight", 4);
    cr_assert_eq(claim1(shorter, f, "A", 5000), IW_CLAIM_CLAIMED);
    expect_ttl(clm, 90, 100, "claimed after a claim");
    cr_assert_eq(complete1(shorter, f, "A", "failed", NULL), IW_LEDGER_DONE);
    t = ttl_of(ver);
    cr_assert(t > 90 && t <= 100, "version TTL %lld after a failed outcome", t);
    expect_ttl(clm, 90, 100, "claimed after a failed outcome");
    one_key("iw:*:e:ev-2:*", rec, sizeof(rec));
    t = ttl_of(rec);
    cr_assert(t > 90 && t <= 100, "record TTL %lld", t);
    cr_assert_eq(count_keys("iw:*:f:*"), 0);
    iw_ledger_free(shorter);
}

/* The hash tag of a key: what lies between its first '{' and the next '}'. */
static void tag_of(const char *key, char *buf, size_t len)
{
    const char *open = strchr(key, '{');
    cr_assert_not_null(open, "%s has no tag", key);
    const char *close = strchr(open + 1, '}');
    cr_assert_not_null(close, "%s has no tag end", key);
    snprintf(buf, len, "%.*s", (int)(close - open - 1), open + 1);
}

Test(ledger, hash_tags_and_nasty_ids)
{
    const char *nasty = "INV {7}: a/b \xc3\xbc\xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac }{%";
    const char *evs[2] = {"ev:1}", "ev {2"};
    const char *tgs[2] = {"ebiz", "centra:eu"};
    for (int e = 0; e < 2; e++) {
        for (int t = 0; t < 2; t++) {
            iw_ledger_op op = op_of(nasty, evs[e], tgs[t], e + 1);
            cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
            if (e == 0)
                cr_assert_eq(complete1(L, op, "A", "succeeded", NULL), IW_LEDGER_DONE);
        }
    }
    redisReply *r = keys("iw:*");
    /* Per target: a record and a version (event 1), a claim, a fence, a doubt mark and a
     * record holding only its claimed version (event 2: claimed, no outcome yet). */
    cr_assert_eq(r->elements, 12);
    char first[512] = "", tag[512];
    for (size_t i = 0; i < r->elements; i++) {
        tag_of(r->element[i]->str, tag, sizeof(tag));
        cr_assert(strncmp(tag, "acme:", 5) == 0, "tag %s", tag);
        cr_assert_null(strpbrk(tag + 5, "{}:"), "tag %s holds a separator", tag);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", tag);
        cr_assert_str_eq(tag, first, "keys of one invoice have different tags");
    }
    freeReplyObject(r);

    cr_assert_eq(claim1(L, op_of(nasty, evs[0], tgs[0], 1), "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
    cr_assert_eq(claim1(L, op_of(nasty, evs[1], tgs[1], 2), "B", LONG_LEASE), IW_CLAIM_BUSY);
    /* Ids that are prefixes or look like the layout do not collide. */
    cr_assert_eq(claim1(L, op_of("INV {7}", evs[0], tgs[0], 1), "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, op_of(nasty, "ev", "1}:ebiz", 1), "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    r = keys("iw:{acme:INV%20%7B7%7D}*");
    cr_assert_eq(r->elements, 4,
                 "the shorter invoice id has a tag of its own (record, claim, fence, doubt mark)");
    freeReplyObject(r);
    cr_assert_eq(count_keys("iw:*:f:1%7D%3Aebiz"), 1, "the odd target has a fence of its own");
}

Test(ledger, redis_down_then_reconnect)
{
    iw_ledger_op op = op_of("INV-12", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    int port = R.port;
    redisFree(raw);
    raw = NULL;
    iw_redis_stop(&R);

    long long t0 = iw_now_ms();
    iw_ledger_op x = op;
    cr_assert_eq(iw_ledger_claim(L, &x, 1, "A", LONG_LEASE), IW_EIO);
    cr_assert_lt(iw_now_ms() - t0, 3000, "a dead Redis took too long to notice");
    t0 = iw_now_ms();
    cr_assert_eq(iw_ledger_claim(L, &x, 1, "A", LONG_LEASE), IW_EIO);
    cr_assert_eq(iw_ledger_ping(L), IW_EIO);
    /* fast: no wait for the 2 s command timeout (a slow machine may still take a while) */
    cr_assert_lt(iw_now_ms() - t0, 1000, "a dead connection did not fail fast");
    char err[256] = "";
    cr_assert_eq(iw_ledger_reconnect(L, err, sizeof(err)), IW_EIO);
    cr_assert(strstr(err, "connect") != NULL, "reconnect error: %s", err);

    redis_start_on(&R, port);
    raw = redisConnect("127.0.0.1", port);
    cr_assert(raw && !raw->err);
    cr_assert_eq(iw_ledger_reconnect(L, err, sizeof(err)), 0, "reconnect: %s", err);
    cr_assert_eq(iw_ledger_ping(L), 0);
    /* The new server is empty: the claim succeeds and the script cache was reloaded. */
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, op, "B", "succeeded", NULL), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_DUPLICATE);
    redisReply *r = rawcmd("INFO commandstats", NULL, NULL);
    cr_assert_null(strstr(r->str, "cmdstat_eval:"), "scripts were not reloaded on reconnect");
    freeReplyObject(r);
}

Test(ledger, hung_redis_times_out)
{
    iw_ledger_op op = op_of("INV-13", "ev-1", "ebiz", 1);
    cr_assert_eq(iw_ledger_ping(L), 0);
    iw_proc_signal(&R.proc, SIGSTOP);
    long long t0 = iw_now_ms();
    int rc = iw_ledger_claim(L, &op, 1, "A", LONG_LEASE);
    long long took = iw_now_ms() - t0;
    iw_proc_signal(&R.proc, SIGCONT);
    cr_assert_eq(rc, IW_EIO);
    /* given up after about the 2 s command timeout (at least 1.5 s), not never (slack for a slow
     * machine) */
    cr_assert(took >= 1500 && took < 6000, "a hung Redis answered IW_EIO after %lld ms", took);
    char err[256] = "";
    cr_assert_eq(iw_ledger_reconnect(L, err, sizeof(err)), 0, "reconnect: %s", err);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
}

/* calls= of one command in INFO commandstats (0 when absent). */
static long long calls_of(const char *name)
{
    redisReply *r = rawcmd("INFO commandstats", NULL, NULL);
    char pat[64];
    snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", name);
    const char *p = strstr(r->str, pat);
    long long n = p ? strtoll(p + strlen(pat), NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

Test(ledger, noscript_falls_back_to_eval)
{
    iw_ledger_op a = op_of("INV-14", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, a, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(calls_of("eval"), 0);
    redisReply *r = rawcmd("SCRIPT FLUSH", NULL, NULL);
    freeReplyObject(r);

    iw_ledger_op batch[3] = {op_of("INV-14", "ev-1", "ebiz", 1),
                             op_of("INV-14", "ev-2", "navision", 2),
                             op_of("INV-15", "ev-1", "ebiz", 1)};
    cr_assert_eq(iw_ledger_claim(L, batch, 3, "B", LONG_LEASE), 0);
    cr_assert_eq(batch[0].answer, IW_CLAIM_BUSY);
    cr_assert_eq(batch[1].answer, IW_CLAIM_CLAIMED);
    cr_assert_eq(batch[2].answer, IW_CLAIM_CLAIMED);
    long long evals = calls_of("eval");
    cr_assert_eq(evals, 3, "the NOSCRIPT ops were not re-sent with EVAL");

    /* The claim script is loaded again: the next claim needs no EVAL. */
    iw_ledger_op c = op_of("INV-16", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, c, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(calls_of("eval"), evals);
    /* complete's script was flushed too and still works. */
    cr_assert_eq(complete1(L, c, "A", "succeeded", NULL), IW_LEDGER_DONE);
    cr_assert_eq(release1(L, batch[1], "B"), IW_LEDGER_DONE);
    iw_ledger_op rn = batch[2];
    cr_assert_eq(iw_ledger_renew(L, &rn, 1, "B", 1000), 0);
    cr_assert_eq(rn.answer, IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, c, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);
}

Test(ledger, password)
{
    const char *pw = "s3cret-pw";
    redisReply *r = rawcmd("CONFIG SET requirepass %s", pw, NULL);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    char err[256] = "";
    iw_ledger *bad =
        iw_ledger_new("127.0.0.1", R.port, "wrong-pw-77", TTL_S, 2000, err, sizeof(err));
    cr_assert_null(bad);
    cr_assert(err[0] != '\0');
    cr_assert_null(strstr(err, "wrong-pw-77"), "the password leaked into: %s", err);
    err[0] = '\0';
    cr_assert_null(iw_ledger_new("127.0.0.1", R.port, NULL, TTL_S, 2000, err, sizeof(err)));
    cr_assert(err[0] != '\0');

    iw_ledger *good = iw_ledger_new("127.0.0.1", R.port, pw, TTL_S, 2000, err, sizeof(err));
    cr_assert_not_null(good, "%s", err);
    cr_assert_eq(iw_ledger_reconnect(good, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(claim1(good, op_of("INV-17", "ev-1", "ebiz", 1), "A", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
    iw_ledger_free(good);
}

Test(ledger, refuses_bad_input)
{
    char err[256] = "";
    cr_assert_null(iw_ledger_new("127.0.0.1", 0, NULL, TTL_S, 2000, err, sizeof(err)));
    cr_assert(err[0] != '\0');
    int closed = iw_free_port();
    err[0] = '\0';
    cr_assert_null(iw_ledger_new("127.0.0.1", closed, NULL, TTL_S, 500, err, sizeof(err)));
    cr_assert(strstr(err, "connect") != NULL, "%s", err);

    iw_ledger_op op = op_of("INV-18", "ev-1", "ebiz", 1);
    cr_assert_eq(iw_ledger_claim(L, &op, 1, "A", 0), IW_EINVAL);
    cr_assert_eq(iw_ledger_claim(L, &op, 1, NULL, LONG_LEASE), IW_EINVAL);
    cr_assert_eq(iw_ledger_claim(L, &op, 1, "", LONG_LEASE), IW_EINVAL);
    iw_ledger_op neg = op_of("INV-18", "ev-1", "ebiz", -1);
    cr_assert_eq(iw_ledger_claim(L, &neg, 1, "A", LONG_LEASE), IW_EINVAL);
    iw_ledger_op noinv = op;
    noinv.invoice_id = NULL;
    cr_assert_eq(iw_ledger_claim(L, &noinv, 1, "A", LONG_LEASE), IW_EINVAL);
    cr_assert_eq(iw_ledger_claim(L, NULL, 0, "A", LONG_LEASE), 0);
    op.status = NULL;
    cr_assert_eq(iw_ledger_complete(L, &op, 1, "A"), IW_EINVAL);
    op.status = "done";
    cr_assert_eq(iw_ledger_complete(L, &op, 1, "A"), IW_EINVAL);
    redisReply *r = keys("iw:*");
    cr_assert_eq(r->elements, 0, "a refused call wrote something");
    freeReplyObject(r);
    cr_assert_eq(iw_ledger_ping(L), 0);
    iw_ledger_free(NULL);
}

/* Two workers race over the same ops; the scripts must let exactly one win each fence. */
typedef struct racer {
    int port;
    const char *owner;
    bool reverse;
    bool one_pair; /* all ops on one (invoice, target), rising versions; else one pair each */
    int answers[200];
    int rc;
} racer;

static char race_inv[200][16], race_ev[2][200][16];

static void *race(void *arg)
{
    racer *r = arg;
    char err[256];
    iw_ledger *l = iw_ledger_new("127.0.0.1", r->port, NULL, TTL_S, 2000, err, sizeof(err));
    if (!l) {
        r->rc = IW_EIO;
        return NULL;
    }
    int me = r->owner[0] == 'A' ? 0 : 1;
    for (int k = 0; k < 200 && r->rc == 0; k++) {
        int i = r->reverse ? 199 - k : k;
        iw_ledger_op op = r->one_pair ? op_of("INV-race", race_ev[me][i], "ebiz", 2 * i + me + 1)
                                      : op_of(race_inv[i], "ev-1", "ebiz", 1);
        r->rc = iw_ledger_claim(l, &op, 1, r->owner, LONG_LEASE);
        r->answers[i] = op.answer;
    }
    iw_ledger_free(l);
    return NULL;
}

static void race_run(racer *a, racer *b)
{
    for (int i = 0; i < 200; i++) {
        snprintf(race_inv[i], sizeof(race_inv[i]), "INV-race-%d", i);
        snprintf(race_ev[0][i], sizeof(race_ev[0][i]), "ev-a%d", i);
        snprintf(race_ev[1][i], sizeof(race_ev[1][i]), "ev-b%d", i);
    }
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, race, a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, race, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a->rc, 0);
    cr_assert_eq(b->rc, 0);
}

Test(ledger, concurrent_claims_have_one_winner)
{
    /* 200 invoices, one event each, claimed by A from the first and by B from the last. */
    racer a = {.port = R.port, .owner = "A", .reverse = false};
    racer b = {.port = R.port, .owner = "B", .reverse = true};
    race_run(&a, &b);
    int wins_a = 0, wins_b = 0;
    for (int i = 0; i < 200; i++) {
        bool wa = a.answers[i] == IW_CLAIM_CLAIMED, wb = b.answers[i] == IW_CLAIM_CLAIMED;
        cr_assert(wa != wb, "op %d: A=%d B=%d", i, a.answers[i], b.answers[i]);
        cr_assert(wa || a.answers[i] == IW_CLAIM_BUSY);
        cr_assert(wb || b.answers[i] == IW_CLAIM_BUSY);
        wins_a += wa;
        wins_b += wb;
    }
    cr_assert_eq(wins_a + wins_b, 200);
}

Test(ledger, concurrent_rising_versions_on_one_fence)
{
    /* A claims versions 1, 3, ..., 399 and B 2, 4, ..., 400 of one (invoice, target), each its
     * own event: whoever claims first holds the fence for good (nobody completes), the other
     * only ever gets BUSY or STALE, and the highest version ends up claimed. */
    racer a = {.port = R.port, .owner = "A", .one_pair = true};
    racer b = {.port = R.port, .owner = "B", .one_pair = true};
    race_run(&a, &b);
    int claimed[2] = {0, 0};
    racer *rs[2] = {&a, &b};
    for (int who = 0; who < 2; who++)
        for (int i = 0; i < 200; i++) {
            int x = rs[who]->answers[i];
            cr_assert(x == IW_CLAIM_CLAIMED || x == IW_CLAIM_STALE || x == IW_CLAIM_BUSY,
                      "%s's v%d answered %s", rs[who]->owner, 2 * i + who + 1, claim_name(x));
            claimed[who] += x == IW_CLAIM_CLAIMED;
        }
    cr_assert((claimed[0] > 0) != (claimed[1] > 0), "A got %d CLAIMED, B %d", claimed[0],
              claimed[1]);
    int winner = claimed[0] > 0 ? 0 : 1;
    /* The winner's first claim was CLAIMED: nothing was claimed before it. */
    cr_assert_eq(rs[winner]->answers[0], IW_CLAIM_CLAIMED);
    expect_val("iw:{acme:INV-race}:f:ebiz", rs[winner]->owner, "fence");
    /* B's v400 is above everything, so it raised the claim whatever it answered. */
    cr_assert_neq(b.answers[199], IW_CLAIM_STALE);
    expect_val("iw:{acme:INV-race}:c:ebiz", "400 ev-b199", "claimed");
}
