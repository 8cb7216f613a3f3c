/* test_ledger.c: the Redis ledger against a real redis-server started per test. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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

Test(ledger, claim_complete_then_duplicate)
{
    iw_ledger_op op = op_of("INV-1", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, op, "A", "succeeded", "REF-9"), IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, op, "A", LONG_LEASE), IW_CLAIM_DUPLICATE);
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_DUPLICATE);

    char key[256], v[64];
    one_key("iw:*:e:*", key, sizeof(key));
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
    redisReply *r = keys("iw:*:l:*");
    cr_assert_eq(r->elements, 0, "the lease outlived complete");
    freeReplyObject(r);
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
    /* The same version under another event id is not stale (a full-state re-send). */
    cr_assert_eq(claim1(L, op_of("INV-2", "ev-5b", "navision", 5), "A", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
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
    cr_assert_eq(claim1(L, op_of("INV-2", "ev-6", "navision", 6), "A", LONG_LEASE),
                 IW_CLAIM_CLAIMED);
}

Test(ledger, versions_compare_exactly_beyond_2_pow_53)
{
    /* 2^53 + 1 and 2^53 are one double; the ledger must still tell them apart. */
    iw_ledger_op hi = op_of("INV-big", "ev-hi", "ebiz", INT64_C(9007199254740993));
    cr_assert_eq(claim1(L, hi, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, hi, "A", "succeeded", NULL), IW_LEDGER_DONE);
    cr_assert_eq(
        claim1(L, op_of("INV-big", "ev-lo", "ebiz", INT64_C(9007199254740992)), "A", LONG_LEASE),
        IW_CLAIM_STALE);
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-short", "ebiz", 999), "A", LONG_LEASE),
                 IW_CLAIM_STALE);
    iw_ledger_op top = op_of("INV-big", "ev-top", "ebiz", INT64_MAX);
    cr_assert_eq(claim1(L, top, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, top, "A", "succeeded", NULL), IW_LEDGER_DONE);
    /* A lower version completing afterwards does not lower the applied version. */
    iw_ledger_op mid = op_of("INV-big", "ev-mid", "midnight", 10);
    cr_assert_eq(claim1(L, mid, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, op_of("INV-big", "ev-late", "ebiz", INT64_MAX - 1), "A", LONG_LEASE),
                 IW_CLAIM_STALE);
}

Test(ledger, busy_then_expiry_then_lost)
{
    iw_ledger_op op = op_of("INV-4", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", 200), IW_CLAIM_CLAIMED);
    cr_assert_eq(claim1(L, op, "B", 200), IW_CLAIM_BUSY);
    /* Re-claiming one's own live lease is fine (a local retry). */
    cr_assert_eq(claim1(L, op, "A", 200), IW_CLAIM_CLAIMED);

    long long start = iw_now_ms(), deadline = start + 5000;
    int answer = IW_CLAIM_BUSY;
    while (answer == IW_CLAIM_BUSY && iw_now_ms() < deadline) {
        iw_sleep_ms(20);
        answer = claim1(L, op, "B", LONG_LEASE);
    }
    cr_assert_eq(answer, IW_CLAIM_CLAIMED, "B never got the expired lease");
    cr_assert_geq(iw_now_ms() - start, 100, "the lease expired too early");

    cr_assert_eq(complete1(L, op, "A", "succeeded", "A-REF"), IW_LEDGER_LOST);
    redisReply *r = keys("iw:*:e:*");
    cr_assert_eq(r->elements, 0, "a LOST complete wrote a record");
    freeReplyObject(r);
    r = keys("iw:*:v:*");
    cr_assert_eq(r->elements, 0, "a LOST complete wrote the version");
    freeReplyObject(r);
    cr_assert_eq(release1(L, op, "A"), IW_LEDGER_LOST);
    cr_assert_eq(claim1(L, op, "C", LONG_LEASE), IW_CLAIM_BUSY, "A's release dropped B's lease");

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
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_CLAIMED);

    iw_ledger_op other = op_of("INV-5", "ev-2", "centra", 2);
    cr_assert_eq(claim1(L, other, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(release1(L, other, "B"), IW_LEDGER_LOST);
    cr_assert_eq(claim1(L, other, "C", LONG_LEASE), IW_CLAIM_BUSY, "B released A's lease");
    /* Releasing something never claimed is LOST too, and writes nothing. */
    cr_assert_eq(release1(L, op_of("INV-5", "ev-9", "centra", 9), "A"), IW_LEDGER_LOST);
    redisReply *r = keys("iw:*:e:*");
    cr_assert_eq(r->elements, 0, "release wrote a record");
    freeReplyObject(r);
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

Test(ledger, renew_extends_only_own_lease)
{
    iw_ledger_op op = op_of("INV-7", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, op, "A", 300), IW_CLAIM_CLAIMED);
    iw_ledger_op r1 = op;
    cr_assert_eq(iw_ledger_renew(L, &r1, 1, "A", 10000), 0);
    cr_assert_eq(r1.answer, IW_LEDGER_DONE);
    iw_sleep_ms(500);
    cr_assert_eq(claim1(L, op, "B", LONG_LEASE), IW_CLAIM_BUSY, "renew did not extend");
    iw_ledger_op r2 = op;
    cr_assert_eq(iw_ledger_renew(L, &r2, 1, "B", 10000), 0);
    cr_assert_eq(r2.answer, IW_LEDGER_LOST);

    char key[256];
    one_key("iw:*:l:*", key, sizeof(key));
    redisReply *r = rawcmd("PTTL %s", key, NULL);
    cr_assert(r->integer > 8000 && r->integer <= 10000, "lease PTTL %lld", r->integer);
    freeReplyObject(r);
}

Test(ledger, thousand_op_batches)
{
    enum { N = 1000 };
    static const char *targets[] = {"centra", "navision", "ebiz", "invoicexpress", "midnight"};
    static iw_ledger_op ops[N];
    static char inv[N][32], ev[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(inv[i], sizeof(inv[i]), "INV-%d", i % 50);
        snprintf(ev[i], sizeof(ev[i]), "ev-%d", i);
        ops[i] = op_of(inv[i], ev[i], targets[(i / 50) % 5], i);
        ops[i].status = "succeeded";
    }
    double t0 = now_us();
    cr_assert_eq(iw_ledger_claim(L, ops, N, "A", LONG_LEASE), 0);
    double t1 = now_us();
    for (int i = 0; i < N; i++)
        cr_assert_eq(ops[i].answer, IW_CLAIM_CLAIMED, "op %d answered %d", i, ops[i].answer);
    for (int i = 0; i < N; i++)
        ops[i].answer = -1;
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
    redisReply *r = keys("iw:*:e:*");
    cr_assert_eq(r->elements, N);
    freeReplyObject(r);
    r = keys("iw:*:v:*");
    cr_assert_eq(r->elements, 250, "50 invoices x 5 targets");
    freeReplyObject(r);
}

Test(ledger, mixed_answers_in_one_batch)
{
    iw_ledger_op done = op_of("INV-8", "ev-10", "ebiz", 10);
    cr_assert_eq(claim1(L, done, "A", LONG_LEASE), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(L, done, "A", "succeeded", NULL), IW_LEDGER_DONE);
    iw_ledger_op held = op_of("INV-9", "ev-1", "ebiz", 1);
    cr_assert_eq(claim1(L, held, "B", LONG_LEASE), IW_CLAIM_CLAIMED);

    iw_ledger_op batch[5] = {
        op_of("INV-8", "ev-10", "ebiz", 10), /* duplicate */
        op_of("INV-8", "ev-4", "ebiz", 4),   /* stale */
        op_of("INV-9", "ev-1", "ebiz", 1),   /* busy: B holds it */
        op_of("INV-8", "ev-11", "ebiz", 11), /* claimed */
        op_of("INV-10", "ev-1", "ebiz", 1),  /* claimed */
    };
    cr_assert_eq(iw_ledger_claim(L, batch, 5, "A", LONG_LEASE), 0);
    cr_assert_eq(batch[0].answer, IW_CLAIM_DUPLICATE);
    cr_assert_eq(batch[1].answer, IW_CLAIM_STALE);
    cr_assert_eq(batch[2].answer, IW_CLAIM_BUSY);
    cr_assert_eq(batch[3].answer, IW_CLAIM_CLAIMED);
    cr_assert_eq(batch[4].answer, IW_CLAIM_CLAIMED);

    /* A's complete of all five: only the two it holds are recorded. */
    const char *st[5] = {"succeeded", "failed", "succeeded", "succeeded", "rejected"};
    for (int i = 0; i < 5; i++)
        batch[i].status = st[i];
    cr_assert_eq(iw_ledger_complete(L, batch, 5, "A"), 0);
    cr_assert_eq(batch[0].answer, IW_LEDGER_LOST);
    cr_assert_eq(batch[1].answer, IW_LEDGER_LOST);
    cr_assert_eq(batch[2].answer, IW_LEDGER_LOST);
    cr_assert_eq(batch[3].answer, IW_LEDGER_DONE);
    cr_assert_eq(batch[4].answer, IW_LEDGER_DONE);
    cr_assert_eq(claim1(L, held, "C", LONG_LEASE), IW_CLAIM_BUSY, "A's complete touched B's");
    cr_assert_eq(claim1(L, op_of("INV-8", "ev-x", "ebiz", 10), "C", LONG_LEASE), IW_CLAIM_STALE,
                 "v11 succeeded, so v10 is stale now");
}

Test(ledger, records_carry_the_ttl)
{
    iw_ledger_op op = op_of("INV-11", "ev-1", "midnight", 3);
    cr_assert_eq(claim1(L, op, "A", 5000), IW_CLAIM_CLAIMED);
    char lease[256], rec[256], ver[256];
    one_key("iw:*:l:*", lease, sizeof(lease));
    redisReply *r = rawcmd("PTTL %s", lease, NULL);
    cr_assert(r->integer > 4000 && r->integer <= 5000, "lease PTTL %lld", r->integer);
    freeReplyObject(r);

    cr_assert_eq(complete1(L, op, "A", "succeeded", NULL), IW_LEDGER_DONE);
    one_key("iw:*:e:*", rec, sizeof(rec));
    one_key("iw:*:v:*", ver, sizeof(ver));
    long long t = ttl_of(rec);
    cr_assert(t > TTL_S - 10 && t <= TTL_S, "record TTL %lld", t);
    t = ttl_of(ver);
    cr_assert(t > TTL_S - 10 && t <= TTL_S, "version TTL %lld", t);

    /* A later outcome of any kind refreshes the version key, so it outlives every record. */
    char err[256];
    iw_ledger *shorter = iw_ledger_new("127.0.0.1", R.port, NULL, 100, 2000, err, sizeof(err));
    cr_assert_not_null(shorter, "%s", err);
    iw_ledger_op f = op_of("INV-11", "ev-2", "midnight", 4);
    cr_assert_eq(claim1(shorter, f, "A", 5000), IW_CLAIM_CLAIMED);
    cr_assert_eq(complete1(shorter, f, "A", "failed", NULL), IW_LEDGER_DONE);
    t = ttl_of(ver);
    cr_assert(t > 90 && t <= 100, "version TTL %lld after a failed outcome", t);
    one_key("iw:*:e:ev-2:*", rec, sizeof(rec));
    t = ttl_of(rec);
    cr_assert(t > 90 && t <= 100, "record TTL %lld", t);
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
    /* 2 records + 2 versions (event 1), 2 leases (event 2). */
    cr_assert_eq(r->elements, 6);
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
    cr_assert_eq(r->elements, 1, "the shorter invoice id has a tag of its own");
    freeReplyObject(r);
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
    cr_assert_lt(iw_now_ms() - t0, 100, "a dead connection did not fail fast");
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
    cr_assert(took >= 1500 && took < 3000, "a hung Redis answered IW_EIO after %lld ms", took);
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

    iw_ledger_op batch[3] = {op_of("INV-14", "ev-1", "ebiz", 1), op_of("INV-14", "ev-2", "ebiz", 2),
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

/* Two workers race for the same ops; the scripts must let exactly one win each. */
typedef struct racer {
    int port;
    const char *owner;
    bool reverse;
    int answers[200];
    int rc;
} racer;

static char race_ev[200][16];

static void *race(void *arg)
{
    racer *r = arg;
    char err[256];
    iw_ledger *l = iw_ledger_new("127.0.0.1", r->port, NULL, TTL_S, 2000, err, sizeof(err));
    if (!l) {
        r->rc = IW_EIO;
        return NULL;
    }
    for (int k = 0; k < 200 && r->rc == 0; k++) {
        int i = r->reverse ? 199 - k : k;
        iw_ledger_op op = op_of("INV-race", race_ev[i], "ebiz", 1);
        r->rc = iw_ledger_claim(l, &op, 1, r->owner, LONG_LEASE);
        r->answers[i] = op.answer;
    }
    iw_ledger_free(l);
    return NULL;
}

Test(ledger, concurrent_claims_have_one_winner)
{
    for (int i = 0; i < 200; i++)
        snprintf(race_ev[i], sizeof(race_ev[i]), "ev-%d", i);
    racer a = {.port = R.port, .owner = "A", .reverse = false};
    racer b = {.port = R.port, .owner = "B", .reverse = true};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, race, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(b.rc, 0);
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
