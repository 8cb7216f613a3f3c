/* ledger.c: the Redis ledger (dedup, version guard, leases) as atomic Lua scripts over hiredis. */
#include "ledger.h"
#include "text.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "loop.h"
#include "status.h"

/*
 * Key layout. Every key of one invoice carries the hash tag {<tenant>:<invoice>}, so that all
 * of them sit in one Redis Cluster slot and one script may touch them together:
 *
 *   iw:{T:I}:v:<target>            applied version (decimal string) for (invoice, target)
 *   iw:{T:I}:c:<target>            claimed: "<version> <event>", the highest version anyone
 *                                  has claimed there (sent, sending or about to send) and the
 *                                  event that claimed it
 *   iw:{T:I}:f:<target>            the fence lease: the owner token that may send to this
 *                                  (invoice, target) now, expiring after lease_ms (PX)
 *   iw:{T:I}:d:<target>            in doubt: the event whose calls to this (invoice, target)
 *                                  may have been applied without a success written since (set
 *                                  by a claim that took the fence; deleted by that event's
 *                                  success, or by a complete or release saying none of its
 *                                  attempts can have been applied). A worker that dies, or a
 *                                  failure that may have been applied, leaves it: the next
 *                                  claim of the same event learns that an attempt of it may
 *                                  have been applied (EBizCharge then sends no e-mail)
 *   iw:{T:I}:e:<event>:<target>    outcome record, a hash: state ("succeeded" | "failed" |
 *                                  "rejected"), owner, version, target_ref ("" when the
 *                                  target returned none), updated_ms; every one of these is
 *                                  written by each complete, so none is left from an older
 *                                  record. And claimed: the version the event claimed here,
 *                                  written by its first claim that raised the claimed version
 *                                  (busy or not), before any outcome; no other version of the
 *                                  event can write it (REUSED), so it never disagrees with the
 *                                  outcome's version
 *
 * Each component (tenant T, invoice I, event, target) is percent-encoded: bytes in
 * [A-Za-z0-9._-] stay, every other byte becomes %XX. No component can therefore contain '{',
 * '}' or ':', the tag is exactly "T:I", and the layout cannot be confused by ids such as
 * "a:e:b" or "x}y". Common ids stay readable in redis-cli.
 *
 * The fence. The unit of exclusion is the (invoice, target), across every process: one owner
 * at a time may send to it, and nobody may claim a version below the highest one claimed
 * there. A claim that raised `claimed` belongs to an event that is in some consumer's
 * uncommitted window until it is terminal, so it is sent or replayed later: an older version
 * is never sent after it. The lease is a key of its own so that its expiry is Redis' own
 * clock (PX), not a comparison against any worker's clock; a worker starts an attempt only
 * when the attempt ends, by its timeout, before the lease it last saw renewed can expire.
 *
 * TTLs. A record lives ttl_s after its completion (or its event's first claim, until then). The
 * version and claimed keys get ttl_s refreshed by every claim or completion of their (invoice,
 * target), so they outlive every record written after them. Once they expire, an event older than
 * the last applied version would be claimed again; ttl_s must therefore exceed the input topic's
 * retention plus the dead-letter replay window (DESIGN.md section 6), after which such an event can
 * no longer arrive. Keys without TTL would close even that gap but grow without bound.
 *
 * Calls refuse malformed input (NULL strings, empty owner, negative version, lease_ms <= 0,
 * unknown status) with IW_EINVAL before sending anything.
 *
 * Versions are compared as canonical non-negative decimal strings (length, then bytes), not
 * as Lua numbers, which are doubles and would round versions above 2^53.
 *
 * The scripts use TIME (for updated_ms) before writing, which needs effects replication: the
 * default since Redis 5.
 */

/* Longest a command may wait on a read or write before the connection counts as dead. */
#define IO_TIMEOUT_MS 2000

/* Scripts answer an integer equal to an iw_claim or iw_ledger_ack value, or CLAIMED_IN_DOUBT. */
#define CLAIMED_IN_DOUBT 4

/* a > b for canonical decimal strings. */
#define LUA_GT "local function gt(a, b) return #a > #b or (#a == #b and a > b) end\n"

/*
 * KEYS: record, applied, claimed, fence, doubt. ARGV: version, owner, lease_ms, event, ttl_s,
 * peek ("1": only ask whether the event succeeded here: DUPLICATE, else STALE, nothing written;
 * "2": the event is refused before any call: REUSED, DUPLICATE, STALE as a claim would answer
 * it, else CLAIMED with nothing written, not even the claim; "3": as "2", but a newer version
 * superseded it in its lane: KEYS[6] is that version's record, ARGV[7] and ARGV[8] its event
 * and version, and instead of CLAIMED the answer is SUPERSEDED unless its event_id names another
 * version here, by its record or the claim: its own claim will then be REUSED. The refused
 * event's own event_id naming another version is no answer in this mode: what decides is whether
 * the newer version will be sent).
 * REUSED when this event_id's record here is of another version (an event_id names one event:
 * upstream gave one to two versions), or, with no outcome yet, names another version as claimed
 * (the record's `claimed` field, which the first claim that raises the claimed version writes,
 * busy or not; an outcome written by a worker that predates the field is what counts then), or
 * when the claim here (`claimed`) is this event_id's at another version, older or newer, with
 * no outcome written for it yet (its owner may still hold the fence, or have given it back):
 * the first version to claim an event_id keeps it, as the record would say once written.
 * Without this, a claim of the reused one while the other's owner held the fence would answer
 * BUSY, raise `claimed` above the versions between them and be refused only on a later try; the
 * field keeps the answer when a third event's claim came between (the `claimed` key then names
 * that one), and the key answers for a claim written before the field was. DUPLICATE ({1,
 * target_ref}: the reference the success recorded) when this event succeeded here; STALE when a
 * higher version was applied or claimed, or the same version by another event (or applied: then by
 * another event, since this one has no success record); else the claim is raised to this version
 * and the fence is taken (CLAIMED) unless another owner holds it (BUSY). A BUSY claim still raises
 * `claimed`: the event stays unfinished in its consumer's window, so it will be sent or replayed,
 * and older versions queued elsewhere need not be sent before it. A claim that takes a free fence
 * marks its event in doubt, and answers CLAIMED_IN_DOUBT when the mark already named this event: an
 * earlier owner claimed it and never wrote its outcome or said that nothing it sent can have been
 * applied.
 */
#define SCRIPT_CLAIM_BODY                                                                          \
    LUA_GT                                                                                         \
    "local rec = redis.call('HMGET', KEYS[1], 'state', 'version', 'target_ref', 'claimed')\n"      \
    "local reused = (rec[1] and rec[2] and rec[2] ~= ARGV[1]) or\n"                                \
    "  (not rec[1] and rec[4] and rec[4] ~= ARGV[1])\n"                                            \
    "if reused and ARGV[6] ~= '3' then return 5 end\n"                                             \
    "if not reused and rec[1] == 'succeeded' then return {1, rec[3] or ''} end\n"                  \
    "if ARGV[6] == '1' then return 2 end\n"                                                        \
    "local v = ARGV[1]\n"                                                                          \
    "local applied = redis.call('GET', KEYS[2])\n"                                                 \
    "if applied and not gt(v, applied) then return 2 end\n"                                        \
    "local c, cv, ce = redis.call('GET', KEYS[3])\n"                                               \
    "if c then\n"                                                                                  \
    "  local sp = string.find(c, ' ', 1, true)\n"                                                  \
    "  cv, ce = string.sub(c, 1, sp - 1), string.sub(c, sp + 1)\n"                                 \
    "  if ce == ARGV[4] and cv ~= v and ARGV[6] ~= '3' then return 5 end\n"                        \
    "  if gt(cv, v) or (cv == v and ce ~= ARGV[4]) then return 2 end\n"                            \
    "end\n"                                                                                        \
    "if ARGV[6] == '3' then\n"                                                                     \
    "  local s = redis.call('HMGET', KEYS[6], 'state', 'version', 'claimed')\n"                    \
    "  if (s[1] and s[2] and s[2] ~= ARGV[8]) or (not s[1] and s[3] and s[3] ~= ARGV[8]) or\n"     \
    "     (ce == ARGV[7] and cv ~= ARGV[8]) then\n"                                                \
    "    return 0\n"                                                                               \
    "  end\n"                                                                                      \
    "  return 6\n"                                                                                 \
    "end\n"                                                                                        \
    "if ARGV[6] == '2' then return 0 end\n"                                                        \
    "redis.call('SET', KEYS[3], v .. ' ' .. ARGV[4], 'EX', ARGV[5])\n"                             \
    "if rec[4] ~= v then\n"                                                                        \
    "  redis.call('HSET', KEYS[1], 'claimed', v)\n"                                                \
    "  redis.call('EXPIRE', KEYS[1], ARGV[5])\n"                                                   \
    "end\n"                                                                                        \
    "if redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[3]) then\n"                           \
    "  local d = redis.call('GET', KEYS[5])\n"                                                     \
    "  redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[5])\n"                                       \
    "  if d == ARGV[4] then return 4 end\n"                                                        \
    "  return 0\n"                                                                                 \
    "end\n"                                                                                        \
    "if redis.call('GET', KEYS[4]) ~= ARGV[2] then return 3 end\n"                                 \
    "redis.call('PEXPIRE', KEYS[4], ARGV[3])\n"                                                    \
    "redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[5])\n"                                         \
    "return 0\n"

/*
 * KEYS: record, applied, claimed, fence, doubt. ARGV: version, owner, status, target_ref or "",
 * ttl_s, event, "1" when none of its attempts can have been applied or "0". LOST (nothing written)
 * unless the fence is ours, or free with the claim still this very (version, event) and no success
 * recorded for it: then no other owner can have sent anything since our claim (a lease that only
 * ran out while Redis was away). A success another owner recorded for the same event is never
 * overwritten: the claim again answers DUPLICATE. A retry of our own complete whose answer was lost
 * (the record holds our owner token, this version and this status) answers DONE and writes nothing
 * again. A success ends the event's doubt mark, and so does any outcome whose attempts cannot have
 * been applied; a failure after attempts that may have been keeps it: the event may come again (its
 * offset not yet committed when its partition moved, or a dead letter replayed), and its next claim
 * is then in doubt.
 */
#define SCRIPT_COMPLETE_BODY                                                                       \
    LUA_GT                                                                                         \
    "local holder = redis.call('GET', KEYS[4])\n"                                                  \
    "if holder ~= ARGV[2] then\n"                                                                  \
    "  if holder or redis.call('GET', KEYS[3]) ~= ARGV[1] .. ' ' .. ARGV[6] or "                   \
    "redis.call('HGET', KEYS[1], 'state') == 'succeeded' then\n"                                   \
    "    local r = redis.call('HMGET', KEYS[1], 'owner', 'version', 'state')\n"                    \
    "    if r[1] == ARGV[2] and r[2] == ARGV[1] and r[3] == ARGV[3] then return 0 end\n"           \
    "    return 1\n"                                                                               \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))\n"               \
    "redis.call('HSET', KEYS[1], 'state', ARGV[3], 'owner', ARGV[2], 'version', ARGV[1], "         \
    "'updated_ms', now, 'target_ref', ARGV[4])\n"                                                  \
    "redis.call('EXPIRE', KEYS[1], ARGV[5])\n"                                                     \
    "local applied = redis.call('GET', KEYS[2])\n"                                                 \
    "if ARGV[3] == 'succeeded' and (not applied or gt(ARGV[1], applied)) then\n"                   \
    "  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])\n"                                       \
    "elseif applied then\n"                                                                        \
    "  redis.call('EXPIRE', KEYS[2], ARGV[5])\n"                                                   \
    "end\n"                                                                                        \
    "redis.call('EXPIRE', KEYS[3], ARGV[5])\n"                                                     \
    "if holder then redis.call('DEL', KEYS[4]) end\n"                                              \
    "if (ARGV[3] == 'succeeded' or ARGV[7] == '1') and redis.call('GET', KEYS[5]) == ARGV[6] "     \
    "then\n"                                                                                       \
    "  redis.call('DEL', KEYS[5])\n"                                                               \
    "end\n"                                                                                        \
    "return 0\n"

/* KEYS: fence, doubt. ARGV: owner, event, "1" when none of its attempts can have been
 * applied (the doubt mark of the event then ends) or "0". */
#define SCRIPT_RELEASE_BODY                                                                        \
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 1 end\n"                                 \
    "redis.call('DEL', KEYS[1])\n"                                                                 \
    "if ARGV[3] == '1' and redis.call('GET', KEYS[2]) == ARGV[2] then\n"                           \
    "  redis.call('DEL', KEYS[2])\n"                                                               \
    "end\n"                                                                                        \
    "return 0\n"

/* KEYS: fence. ARGV: owner, lease_ms. */
#define SCRIPT_RENEW_BODY                                                                          \
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 1 end\n"                                 \
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"                                                    \
    "return 0\n"

/* The four scripts, indexed by enum kind. */
enum kind { K_CLAIM, K_COMPLETE, K_RELEASE, K_RENEW, K_COUNT };

static const char *const script_body[K_COUNT] = {SCRIPT_CLAIM_BODY, SCRIPT_COMPLETE_BODY,
                                                 SCRIPT_RELEASE_BODY, SCRIPT_RENEW_BODY};
/* Largest answer each script returns. */
static const long long script_max[K_COUNT] = {IW_CLAIM_SUPERSEDED, IW_LEDGER_LOST, IW_LEDGER_LOST,
                                              IW_LEDGER_LOST};

struct iw_ledger {
    redisContext *ctx; /* NULL after an I/O failure, until a reconnect */
    char *host;        /* owned copy */
    int port;
    char *password;         /* owned copy, NULL = no AUTH; wiped on free */
    int64_t ttl_s;          /* outcome records' TTL */
    int connect_timeout_ms; /* for connect and reconnect */
    char sha[K_COUNT][41];  /* SHA1 of each loaded script */
};

/* Most arguments one script call takes: EVALSHA sha numkeys 6 keys 8 args (a claim peek with
 * its superseder). */
#define MAX_ARGS 17

/* Scratch space for one op's keys and numbers; grows, freed at the end of a call. */
typedef struct scratch {
    char *buf;  /* heap buffer */
    size_t cap; /* its size */
} scratch;

/* One built command: argv points into the op's strings and the scratch buffer. */
typedef struct cmd {
    int argc;
    const char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
} cmd;

static bool plain_byte(unsigned char c)
{
    /* bit c set for a-z, A-Z, 0-9, '.', '_' and '-' */
    static const uint64_t plain[2] = {0x03ff600000000000u, 0x07fffffe87fffffeu};
    return c < 128 && (plain[c >> 6] >> (c & 63)) & 1;
}

static size_t enc_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += plain_byte(*p) ? 1 : 3;
    return n;
}

/* Writes the percent-encoding of s at dst; returns the end. */
static char *enc_put(char *dst, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (plain_byte(*p)) {
            *dst++ = (char)*p;
        } else {
            *dst++ = '%';
            *dst++ = hex[*p >> 4];
            *dst++ = hex[*p & 15];
        }
    }
    return dst;
}

/* Copies s without its NUL (keys are counted strings); returns the end. */
static char *put_str(char *dst, const char *s)
{
    while (*s)
        *dst++ = *s++;
    return dst;
}

static int scratch_reserve(scratch *s, size_t need)
{
    if (need <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < need)
        cap *= 2;
    char *b = realloc(s->buf, cap);
    if (!b)
        return IW_ENOMEM;
    s->buf = b;
    s->cap = cap;
    return 0;
}

static void cmd_arg(cmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->argvlen[c->argc] = len;
    c->argc++;
}

/* Appends one key "iw:{T:I}:<tag>:<a>[:<b>]" to the scratch at *pos and to c. */
static void add_key(cmd *c, char *base, size_t *pos, const iw_ledger_op *op, const char *tag,
                    const char *a, const char *b)
{
    char *start = base + *pos, *p = start;
    p = put_str(p, "iw:{");
    p = enc_put(p, op->tenant);
    *p++ = ':';
    p = enc_put(p, op->invoice_id);
    p = put_str(p, "}:");
    p = put_str(p, tag);
    *p++ = ':';
    p = enc_put(p, a);
    if (b) {
        *p++ = ':';
        p = enc_put(p, b);
    }
    cmd_arg(c, start, (size_t)(p - start));
    *pos += (size_t)(p - start);
}

/* Appends a copy of the last key added with its one-letter tag replaced: the keys of one
 * invoice and target differ only there. The tag follows the key's first "}:" (a '}' inside
 * the hash tag is percent-encoded). */
static void add_key_retagged(cmd *c, char *base, size_t *pos, char tag)
{
    size_t n = c->argvlen[c->argc - 1];
    char *start = base + *pos;
    memcpy(start, c->argv[c->argc - 1], n);
    start[(size_t)((char *)memchr(start, '}', n) - start) + 2] = tag;
    cmd_arg(c, start, n);
    *pos += n;
}

/* Appends a decimal number to the scratch at *pos and to c. */
/* Writes v in decimal at dst; returns the end. */
static char *put_u64(char *dst, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *dst++ = tmp[--n];
    return dst;
}

static void add_num(cmd *c, char *base, size_t *pos, int64_t v)
{
    char *start = base + *pos;
    size_t n;
    if (v < 0) { /* never sent (check_ops refuses negative numbers), kept exact anyway */
        *start = '-';
        n = (size_t)(put_u64(start + 1, (uint64_t)0 - (uint64_t)v) - start);
    } else {
        n = (size_t)(put_u64(start, (uint64_t)v) - start);
    }
    cmd_arg(c, start, n);
    *pos += n;
}

/*
 * Builds the script call for ops[i] into c, using s for keys and numbers (c points into s, so
 * it is valid until the next build). eval sends the script body instead of its SHA.
 */
static int build_cmd(const char (*sha)[41], int64_t ttl_s, enum kind k, const iw_ledger_op *op,
                     const char *owner, int64_t lease_ms, bool eval, scratch *s, cmd *c)
{
    bool sup = k == K_CLAIM && op->peek && op->refused && op->superseder;
    size_t t = enc_len(op->tenant), inv = enc_len(op->invoice_id), ev = enc_len(op->event_id),
           tg = enc_len(op->target), sv = sup ? enc_len(op->superseder) : 0;
    /* Six keys at most, each at most "iw:{" T ":" I "}:x:" E ":" G, plus four numbers. */
    size_t need = 6 * (16 + t + inv + (ev > sv ? ev : sv) + tg) + (size_t)4 * 24;
    if (scratch_reserve(s, need) != 0)
        return IW_ENOMEM;
    size_t pos = 0;
    c->argc = 0;
    if (eval) {
        cmd_arg(c, "EVAL", 4);
        cmd_arg(c, script_body[k], strlen(script_body[k]));
    } else {
        cmd_arg(c, "EVALSHA", 7);
        cmd_arg(c, sha[k], strlen(sha[k]));
    }
    switch (k) {
    case K_CLAIM:
    case K_COMPLETE:
        cmd_arg(c, sup ? "6" : "5", 1);
        add_key(c, s->buf, &pos, op, "e", op->event_id, op->target);
        add_key(c, s->buf, &pos, op, "v", op->target, NULL);
        add_key_retagged(c, s->buf, &pos, 'c');
        add_key_retagged(c, s->buf, &pos, 'f');
        add_key_retagged(c, s->buf, &pos, 'd');
        if (sup)
            add_key(c, s->buf, &pos, op, "e", op->superseder, op->target);
        add_num(c, s->buf, &pos, op->version);
        cmd_arg(c, owner, strlen(owner));
        if (k == K_CLAIM) {
            add_num(c, s->buf, &pos, op->lease_ms > 0 ? op->lease_ms : lease_ms);
            cmd_arg(c, op->event_id, strlen(op->event_id));
            add_num(c, s->buf, &pos, ttl_s);
            cmd_arg(c, op->peek ? (sup ? "3" : op->refused ? "2" : "1") : "0", 1);
            if (sup) {
                cmd_arg(c, op->superseder, strlen(op->superseder));
                add_num(c, s->buf, &pos, op->superseder_version);
            }
        } else {
            const char *ref = op->target_ref ? op->target_ref : "";
            cmd_arg(c, op->status, strlen(op->status));
            cmd_arg(c, ref, strlen(ref));
            add_num(c, s->buf, &pos, ttl_s);
            cmd_arg(c, op->event_id, strlen(op->event_id));
            cmd_arg(c, op->may_be_applied ? "0" : "1", 1);
        }
        break;
    case K_RELEASE:
        cmd_arg(c, "2", 1);
        add_key(c, s->buf, &pos, op, "f", op->target, NULL);
        add_key_retagged(c, s->buf, &pos, 'd');
        cmd_arg(c, owner, strlen(owner));
        cmd_arg(c, op->event_id, strlen(op->event_id));
        cmd_arg(c, op->may_be_applied ? "0" : "1", 1);
        break;
    case K_RENEW:
        cmd_arg(c, "1", 1);
        add_key(c, s->buf, &pos, op, "f", op->target, NULL);
        cmd_arg(c, owner, strlen(owner));
        add_num(c, s->buf, &pos, op->lease_ms > 0 ? op->lease_ms : lease_ms);
        break;
    default: return IW_EINVAL;
    }
    return 0;
}

/* Writes c in Redis' protocol (RESP) into out: hiredis then sends it as it is, without
 * formatting it again argument by argument. Returns the length, or 0 when out of memory. */
static size_t resp_format(const cmd *c, scratch *out)
{
    size_t need = 24;
    for (int i = 0; i < c->argc; i++)
        need += c->argvlen[i] + 28;
    if (scratch_reserve(out, need) != 0)
        return 0;
    char *p = out->buf;
    *p++ = '*';
    p = put_u64(p, (uint64_t)c->argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < c->argc; i++) {
        *p++ = '$';
        p = put_u64(p, c->argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, c->argv[i], c->argvlen[i]);
        p += c->argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - out->buf);
}

/* A script's answer into op (CLAIMED_IN_DOUBT is a claim with in_doubt set). */
static void set_answer(iw_ledger_op *op, long long v)
{
    op->in_doubt = v == CLAIMED_IN_DOUBT;
    op->answer = op->in_doubt ? IW_CLAIM_CLAIMED : (int)v;
}

/* A script's reply r into op: an integer from 0 to max, or a claim's DUPLICATE with the
 * target_ref its success recorded ({1, ref}). False when it is neither. */
static bool take_answer(iw_ledger_op *op, const redisReply *r, long long max)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER &&
        r->element[0]->integer == IW_CLAIM_DUPLICATE && r->element[1]->type == REDIS_REPLY_STRING) {
        if (op->ref_out && op->ref_cap) {
            size_t n = r->element[1]->len < op->ref_cap ? r->element[1]->len : op->ref_cap - 1;
            iw_text_clean_copy(op->ref_out, op->ref_cap, r->element[1]->str, n);
        }
        set_answer(op, IW_CLAIM_DUPLICATE);
        return true;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0 || r->integer > max)
        return false;
    set_answer(op, r->integer);
    return true;
}

static bool valid_status(const char *s)
{
    return s &&
           (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "rejected") == 0);
}

/* Refuses ops the scripts cannot take (a programming error, not a Redis failure). */
static int check_ops(enum kind k, const iw_ledger_op *ops, size_t n, const char *owner,
                     int64_t lease_ms)
{
    if ((n > 0 && !ops) || !owner || !*owner)
        return IW_EINVAL;
    if ((k == K_CLAIM || k == K_RENEW) && lease_ms <= 0)
        return IW_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const iw_ledger_op *op = &ops[i];
        if (!op->tenant || !op->invoice_id || !op->event_id || !op->target)
            return IW_EINVAL;
        if ((k == K_CLAIM || k == K_COMPLETE) && op->version < 0)
            return IW_EINVAL;
        if (k == K_CLAIM && op->superseder && op->superseder_version < 0)
            return IW_EINVAL;
        if (op->lease_ms < 0)
            return IW_EINVAL;
        if (k == K_COMPLETE && !valid_status(op->status))
            return IW_EINVAL;
    }
    return 0;
}

/* Closes a failed connection so that every call fails fast until a reconnect. */
static void mark_dead(iw_ledger *l)
{
    if (l->ctx) {
        redisFree(l->ctx);
        l->ctx = NULL;
    }
}

/* Reads one reply; NULL means the connection failed (and is now closed). */
static redisReply *read_reply(iw_ledger *l)
{
    void *r = NULL;
    if (redisGetReply(l->ctx, &r) != REDIS_OK || !r) {
        if (r)
            freeReplyObject(r);
        mark_dead(l);
        return NULL;
    }
    return r;
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* One batch call in progress. */
typedef struct batch {
    enum kind kind;    /* which script */
    iw_ledger_op *ops; /* the caller's ops; answers are written here */
    size_t n;
    const char *owner; /* lease owner token */
    int64_t lease_ms;  /* claim and renew only */
    bool *need;        /* need[i]: ops[i] is not answered yet */
} batch;

/*
 * Sends the script call for every op still needing an answer, in one pipeline, and reads the
 * answers. An op Redis answered NOSCRIPT keeps needing one. eval sends script bodies and loads
 * the script again. Returns 0, IW_ENOMEM, or IW_EIO (connection failure: now closed; or an
 * error reply: connection kept).
 */
static int round_trip(iw_ledger *l, batch *b, bool eval)
{
    scratch s = {NULL, 0}, f = {NULL, 0};
    cmd c;
    size_t sent = 0;
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        if (!b->need[i])
            continue;
        rc = build_cmd((const char(*)[41])l->sha, l->ttl_s, b->kind, &b->ops[i], b->owner, b->lease_ms,
                       eval, &s, &c);
        size_t len = rc == 0 ? resp_format(&c, &f) : 0;
        if (rc == 0 && (!len || redisAppendFormattedCommand(l->ctx, f.buf, len) != REDIS_OK))
            rc = IW_ENOMEM;
        sent++;
    }
    free(s.buf);
    free(f.buf);
    if (rc == 0 && eval &&
        redisAppendCommand(l->ctx, "SCRIPT LOAD %s", script_body[b->kind]) != REDIS_OK)
        rc = IW_ENOMEM;
    if (rc != 0) {
        /* Part of a pipeline may sit in the output buffer: this connection is unusable. */
        mark_dead(l);
        return rc;
    }
    size_t i = 0;
    for (size_t got = 0; got < sent; got++, i++) {
        while (!b->need[i])
            i++;
        redisReply *r = read_reply(l);
        if (!r)
            return IW_EIO;
        if (take_answer(&b->ops[i], r, script_max[b->kind])) {
            b->need[i] = false;
        } else if (!is_noscript(r)) {
            rc = IW_EIO; /* an error reply; keep reading so that the pipeline stays in step */
            b->need[i] = false;
        }
        freeReplyObject(r);
    }
    if (eval) {
        redisReply *r = read_reply(l);
        if (!r)
            return IW_EIO;
        if (r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(l->sha[b->kind], r->str, 41);
        freeReplyObject(r);
    }
    return rc;
}

static bool any_needed(const batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->need[i])
            return true;
    return false;
}

/* Runs one kind of script for n ops; falls back to EVAL for ops Redis answered NOSCRIPT. */
static int run_batch(iw_ledger *l, enum kind k, iw_ledger_op *ops, size_t n, const char *owner,
                     int64_t lease_ms)
{
    if (!l)
        return IW_EINVAL;
    int rc = check_ops(k, ops, n, owner, lease_ms);
    if (rc != 0)
        return rc;
    if (n == 0)
        return 0;
    if (!l->ctx)
        return IW_EIO;
    batch b = {.kind = k,
               .ops = ops,
               .n = n,
               .owner = owner,
               .lease_ms = lease_ms,
               .need = malloc(n * sizeof(bool))};
    if (!b.need)
        return IW_ENOMEM;
    for (size_t i = 0; i < n; i++)
        b.need[i] = true;
    rc = round_trip(l, &b, false);
    /* A flushed script cache (Redis restarted, SCRIPT FLUSH) answers NOSCRIPT: send bodies. */
    if (rc == 0 && any_needed(&b))
        rc = round_trip(l, &b, true);
    if (rc == 0 && any_needed(&b))
        rc = IW_EIO;
    free(b.need);
    return rc;
}

int iw_ledger_claim(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner, int64_t lease_ms)
{
    return run_batch(l, K_CLAIM, ops, n, owner, lease_ms);
}

int iw_ledger_complete(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner)
{
    return run_batch(l, K_COMPLETE, ops, n, owner, 0);
}

int iw_ledger_release(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner)
{
    return run_batch(l, K_RELEASE, ops, n, owner, 0);
}

int iw_ledger_renew(iw_ledger *l, iw_ledger_op *ops, size_t n, const char *owner, int64_t lease_ms)
{
    return run_batch(l, K_RENEW, ops, n, owner, lease_ms);
}

int iw_ledger_ping(iw_ledger *l)
{
    if (!l || !l->ctx)
        return IW_EIO;
    redisReply *r = redisCommand(l->ctx, "PING");
    if (!r) {
        mark_dead(l);
        return IW_EIO;
    }
    int rc = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0 ? 0 : IW_EIO;
    freeReplyObject(r);
    return rc;
}

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* AUTH and SCRIPT LOAD on a fresh connection, pipelined. Messages never hold the password. */
static int prepare(iw_ledger *l, char *errbuf, size_t errlen)
{
    int rc = 0;
    size_t sent = 0;
    if (l->password) {
        const char *argv[2] = {"AUTH", l->password};
        size_t argvlen[2] = {4, strlen(l->password)};
        if (redisAppendCommandArgv(l->ctx, 2, argv, argvlen) != REDIS_OK)
            rc = IW_ENOMEM;
        sent++;
    }
    for (int k = 0; rc == 0 && k < K_COUNT; k++, sent++)
        if (redisAppendCommand(l->ctx, "SCRIPT LOAD %s", script_body[k]) != REDIS_OK)
            rc = IW_ENOMEM;
    if (rc != 0) {
        snprintf(errbuf, errlen, "redis %s:%d: out of memory", l->host, l->port);
        return rc;
    }
    for (size_t i = 0; i < sent; i++) {
        void *v = NULL;
        if (redisGetReply(l->ctx, &v) != REDIS_OK || !v) {
            snprintf(errbuf, errlen, "redis %s:%d: %s", l->host, l->port,
                     l->ctx->err ? l->ctx->errstr : "no reply");
            if (v)
                freeReplyObject(v);
            return IW_EIO;
        }
        redisReply *r = v;
        bool auth = l->password && i == 0;
        int k = (int)i - (l->password ? 1 : 0);
        if (r->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(errbuf, errlen, "redis %s:%d: %s refused: %.120s", l->host, l->port,
                     auth ? "AUTH" : "SCRIPT LOAD", r->str);
            rc = IW_EIO;
        } else if (!auth && r->type == REDIS_REPLY_STRING && r->len == 40) {
            memcpy(l->sha[k], r->str, 41);
        } else if (!auth && rc == 0) {
            snprintf(errbuf, errlen, "redis %s:%d: unexpected SCRIPT LOAD reply", l->host, l->port);
            rc = IW_EIO;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* Connects l->ctx; on failure leaves it NULL with a message in errbuf. */
static int connect_ledger(iw_ledger *l, char *errbuf, size_t errlen)
{
    mark_dead(l);
    redisContext *c = redisConnectWithTimeout(l->host, l->port, ms_to_tv(l->connect_timeout_ms));
    if (!c) {
        snprintf(errbuf, errlen, "redis %s:%d: cannot allocate a context", l->host, l->port);
        return IW_ENOMEM;
    }
    if (c->err) {
        snprintf(errbuf, errlen, "redis %s:%d: connect: %s", l->host, l->port, c->errstr);
        redisFree(c);
        return IW_EIO;
    }
    if (redisSetTimeout(c, ms_to_tv(IO_TIMEOUT_MS)) != REDIS_OK) {
        snprintf(errbuf, errlen, "redis %s:%d: cannot set the timeout: %s", l->host, l->port,
                 c->errstr);
        redisFree(c);
        return IW_EIO;
    }
    redisEnableKeepAlive(c);
    l->ctx = c;
    int rc = prepare(l, errbuf, errlen);
    if (rc != 0)
        mark_dead(l);
    return rc;
}

iw_ledger *iw_ledger_new(const char *host, int port, const char *password, int64_t ttl_s,
                         int connect_timeout_ms, char *errbuf, size_t errlen)
{
    if (!host || !*host || port <= 0 || port > 65535 || ttl_s <= 0 || connect_timeout_ms <= 0) {
        snprintf(errbuf, errlen, "ledger: invalid host, port, ttl or connect timeout");
        return NULL;
    }
    iw_ledger *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(errbuf, errlen, "ledger: out of memory");
        return NULL;
    }
    l->port = port;
    l->ttl_s = ttl_s;
    l->connect_timeout_ms = connect_timeout_ms;
    l->host = strdup(host);
    l->password = password ? strdup(password) : NULL;
    if (!l->host || (password && !l->password)) {
        snprintf(errbuf, errlen, "ledger: out of memory");
        iw_ledger_free(l);
        return NULL;
    }
    if (connect_ledger(l, errbuf, errlen) != 0) {
        iw_ledger_free(l);
        return NULL;
    }
    return l;
}

int iw_ledger_reconnect(iw_ledger *l, char *errbuf, size_t errlen)
{
    if (!l)
        return IW_EINVAL;
    int rc = connect_ledger(l, errbuf, errlen);
    return rc == 0 ? 0 : IW_EIO;
}

void iw_ledger_free(iw_ledger *l)
{
    if (!l)
        return;
    mark_dead(l);
    if (l->password) {
        explicit_bzero(l->password, strlen(l->password));
        free(l->password);
    }
    free(l->host);
    free(l);
}

/* ---- the ledger on the event loop (hiredis async) ---- */

/* Where one command's reply goes: its batch and op. */
typedef struct aslot {
    struct abatch *b;
    size_t i;
    bool evaled; /* sent again as EVAL after NOSCRIPT */
} aslot;

/* One batch in flight. */
typedef struct abatch {
    struct abatch *next; /* pending batches, oldest first (Redis answers in order) */
    iw_aledger *a;
    enum kind kind;
    iw_ledger_op *ops; /* the caller's, until done runs */
    size_t n;
    const char *owner; /* the caller's, until done runs */
    int64_t lease_ms;
    size_t waiting; /* replies still to come */
    int rc;
    int64_t sent_ms;
    iw_ledger_done_fn done;
    void *arg;
    aslot slots[]; /* one per op */
} abatch;

typedef enum astate { A_DOWN, A_CONNECTING, A_UP } astate;

struct iw_aledger {
    iw_loop *loop;
    redisAsyncContext *ac;    /* the connection commands go to; NULL when down */
    redisAsyncContext *io_ac; /* the context the loop watches for (until hiredis' cleanup) */
    int fd;
    unsigned watched; /* IW_LOOP_* bits watched now */
    unsigned want;    /* IW_LOOP_* bits hiredis asked for */
    astate state;
    size_t setup_waiting;   /* AUTH and SCRIPT LOAD replies still to come */
    bool setup_failed;
    bool refused;           /* the last connection ended as Redis refused the worker */
    bool aof_warned;        /* the warning of a Redis without AOF was logged */
    bool evict_said;        /* why an evicting Redis is not used was logged (until it is) */
    int64_t memory_asked_ms; /* when INFO memory was last sent on the live connection */
    bool info_warned;       /* the warning of a Redis that refuses INFO was logged */
    char why[256];          /* why the last connection ended or failed */
    char *host, *password;  /* owned; the password is wiped on free */
    int port;
    int64_t ttl_s;
    int io_timeout_ms;
    int64_t connect_started;
    char sha[K_COUNT][41];
    abatch *head, *tail;    /* pending batches */
    iw_timer watchdog;      /* connect and reply timeouts */
    iw_timer idle;          /* a PING when nothing else asked Redis for a while */
    int64_t ping_sent_ms;   /* when the PING now out was sent; -1 when none is */
    iw_ledger_state_fn on_state;
    void *state_arg;
    scratch s;              /* command building, reused */
    scratch f;              /* the command in Redis' protocol, reused */
};

static void a_io(void *arg, int fd, unsigned events);

static void a_set(iw_aledger *a, unsigned bits, bool on)
{
    unsigned want = on ? a->want | bits : a->want & ~bits;
    if (want == a->watched) {
        a->want = want;
        return;
    }
    a->want = want;
    if (want)
        iw_loop_watch(a->loop, a->fd, want, a_io, a);
    else
        iw_loop_unwatch(a->loop, a->fd);
    a->watched = want;
}

static void ev_add_read(void *d) { a_set(d, IW_LOOP_READ, true); }
static void ev_del_read(void *d) { a_set(d, IW_LOOP_READ, false); }
static void ev_add_write(void *d) { a_set(d, IW_LOOP_WRITE, true); }
static void ev_del_write(void *d) { a_set(d, IW_LOOP_WRITE, false); }

static void ev_cleanup(void *d)
{
    iw_aledger *a = d;
    if (a->fd >= 0)
        iw_loop_unwatch(a->loop, a->fd);
    a->fd = -1;
    a->want = a->watched = 0;
    a->io_ac = NULL;
}

static void a_io(void *arg, int fd, unsigned events)
{
    iw_aledger *a = arg;
    (void)fd;
    if (a->io_ac && (events & (IW_LOOP_READ | IW_LOOP_ERROR)))
        redisAsyncHandleRead(a->io_ac); /* may end the connection: io_ac is then NULL */
    if (a->io_ac && (events & IW_LOOP_WRITE))
        redisAsyncHandleWrite(a->io_ac);
}

static void arm_watchdog(iw_aledger *a)
{
    int64_t since = a->state == A_CONNECTING ? a->connect_started
                    : a->head                ? a->head->sent_ms
                                             : a->ping_sent_ms;
    if (since < 0)
        iw_timer_stop(a->loop, &a->watchdog);
    else
        iw_timer_at(a->loop, &a->watchdog, since + a->io_timeout_ms);
}

/* The connection is gone (or given up): every later call fails fast until a reconnect. */
static void went_down(iw_aledger *a, const char *why)
{
    bool was_up = a->state != A_DOWN;
    a->state = A_DOWN;
    a->ac = NULL;
    a->ping_sent_ms = -1; /* its reply will not come */
    if (why && !a->why[0])
        snprintf(a->why, sizeof(a->why), "%s", why);
    arm_watchdog(a);
    if (was_up && a->on_state)
        a->on_state(a->state_arg, false, a->why);
}

/* Closes the connection on purpose; pending replies fail (their batches end with IW_EIO). */
static void drop(iw_aledger *a, const char *why)
{
    redisAsyncContext *ac = a->ac;
    if (!ac)
        return;
    snprintf(a->why, sizeof(a->why), "%s", why);
    a->refused = a->setup_failed; /* AUTH, SCRIPT LOAD or an evicting policy, not silence */
    went_down(a, why);
    redisAsyncFree(ac); /* inside a hiredis callback it is freed when the callback returns */
}

static void on_watchdog(void *arg)
{
    iw_aledger *a = arg;
    char why[96];
    if (a->state == A_CONNECTING)
        snprintf(why, sizeof(why), "no answer to connect within %d ms", a->io_timeout_ms);
    else
        snprintf(why, sizeof(why), "no reply within %d ms", a->io_timeout_ms);
    drop(a, why);
}

/* How long the ledger may go without a word from Redis before it asks (PING): a Redis that
 * stopped answering while no event came is then seen within this plus the reply timeout, and
 * the readiness probe says so, as it does when an event finds it. */
#define IDLE_PING_MS 5000

static void on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    iw_aledger *a = ac->data;
    (void)priv;
    if (!r || a->ac != ac)
        return; /* the connection ended: on_disconnect or the watchdog said why */
    a->ping_sent_ms = -1;
    arm_watchdog(a);
}

/* How often a live connection asks INFO memory again: a policy changed while connected (CONFIG
 * SET) is seen within this plus the idle tick. */
#define MEMORY_CHECK_MS 10000

static bool evicts(const iw_aledger *a, const char *info, char *why, size_t len);

/* The answer to INFO memory on a live connection: a Redis that now evicts is dropped, and
 * every connect after that refuses it (on_setup) until it no longer does. */
static void on_memory_check(redisAsyncContext *ac, void *r, void *priv)
{
    iw_aledger *a = ac->data;
    redisReply *reply = r;
    (void)priv;
    char why[sizeof(a->why)];
    if (!reply || a->ac != ac || reply->type != REDIS_REPLY_STRING ||
        !evicts(a, reply->str, why, sizeof(why)))
        return;
    if (!a->evict_said)
        iw_log(IW_LOG_ERROR, "redis not used", "error", why, NULL);
    a->evict_said = true;
    drop(a, why);
}

static void on_idle(void *arg)
{
    iw_aledger *a = arg;
    if (a->state != A_UP || !a->ac)
        return; /* armed again when the connection is up */
    int64_t now = iw_loop_now_ms();
    if (now - a->memory_asked_ms >= MEMORY_CHECK_MS) {
        if (redisAsyncCommand(a->ac, on_memory_check, NULL, "INFO memory") != REDIS_OK) {
            drop(a, "out of memory");
            return;
        }
        a->memory_asked_ms = now;
    }
    if (!a->head && a->ping_sent_ms < 0) {
        if (redisAsyncCommand(a->ac, on_ping, NULL, "PING") != REDIS_OK) {
            drop(a, "out of memory");
            return;
        }
        a->ping_sent_ms = now;
        arm_watchdog(a);
    }
    iw_timer_at(a->loop, &a->idle, now + IDLE_PING_MS);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    iw_aledger *a = ac->data;
    if (status != REDIS_OK && a->ac == ac) {
        snprintf(a->why, sizeof(a->why), "redis %s:%d: connect: %s", a->host, a->port,
                 ac->errstr);
        went_down(a, NULL); /* hiredis frees the context after this callback */
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    iw_aledger *a = ac->data;
    if (a->ac == ac) {
        snprintf(a->why, sizeof(a->why), "redis %s:%d: connection lost: %s", a->host, a->port,
                 ac->errstr ? ac->errstr : "closed");
        went_down(a, NULL);
    }
}

/* on_setup's priv for INFO memory */
#define SETUP_MEMORY ((void *)(intptr_t)(K_COUNT + 1))

/* The value of `name:` in an INFO reply, into buf ("" when absent). */
static void info_field(const char *info, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    buf[0] = '\0';
    for (const char *p = info; (p = strstr(p, name)); p += n) {
        if ((p == info || p[-1] == '\n') && p[n] == ':') {
            size_t k = strcspn(p + n + 1, "\r\n");
            snprintf(buf, len, "%.*s", (int)(k < len ? k : len - 1), p + n + 1);
            return;
        }
    }
}

/* Whether the INFO memory text says Redis evicts keys (a memory limit and a policy other than
 * noeviction); why says so. Every ledger key has a TTL, so every policy but noeviction may drop
 * a fence or an applied version, and an older version could then be sent after a newer one. */
static bool evicts(const iw_aledger *a, const char *info, char *why, size_t len)
{
    char limit[32], policy[48];
    info_field(info, "maxmemory", limit, sizeof(limit));
    info_field(info, "maxmemory_policy", policy, sizeof(policy));
    if (!*policy || strcmp(policy, "noeviction") == 0 || strtoll(limit, NULL, 10) <= 0)
        return false;
    snprintf(why, len,
             "redis %s:%d evicts keys (maxmemory %s, maxmemory-policy %s): the ledger's fences "
             "could be dropped and an older version sent after a newer one; set "
             "maxmemory-policy noeviction",
             a->host, a->port, limit, policy);
    return true;
}

/* AUTH, SCRIPT LOAD and INFO memory replies; priv is the script kind + 1, NULL for AUTH, or
 * SETUP_MEMORY. */
static void on_setup(redisAsyncContext *ac, void *r, void *priv)
{
    iw_aledger *a = ac->data;
    redisReply *reply = r;
    a->setup_waiting--;
    if (!reply)
        return; /* the connection ended: on_connect or on_disconnect said why */
    if (priv == SETUP_MEMORY) {
        char why[sizeof(a->why)];
        if (reply->type != REDIS_REPLY_STRING || !strstr(reply->str, "maxmemory_policy:")) {
            /* refused (an ACL, a proxy), or an answer without the policy: said once */
            char where[300];
            snprintf(where, sizeof(where), "%s:%d", a->host, a->port);
            if (!a->info_warned)
                iw_log(IW_LOG_WARN,
                       "redis refused INFO memory or left out its policy: whether it evicts keys "
                       "cannot be told; run it with maxmemory-policy noeviction",
                       "redis", where, NULL);
            a->info_warned = true;
        } else if (evicts(a, reply->str, why, sizeof(why)) && !a->setup_failed) {
            a->setup_failed = true;
            snprintf(a->why, sizeof(a->why), "%s", why);
            if (!a->evict_said) /* at start and after a reconnect alike, once until it is used */
                iw_log(IW_LOG_ERROR, "redis not used", "error", why, NULL);
            a->evict_said = true;
        } else {
            a->evict_said = false;
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        if (!a->setup_failed)
            snprintf(a->why, sizeof(a->why), "redis %s:%d: %s refused: %.120s", a->host, a->port,
                     priv ? "SCRIPT LOAD" : "AUTH", reply->str);
        a->setup_failed = true;
    } else if (priv && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(a->sha[(intptr_t)priv - 1], reply->str, 41);
    } else if (priv) {
        a->setup_failed = true;
        snprintf(a->why, sizeof(a->why), "redis %s:%d: unexpected SCRIPT LOAD reply", a->host,
                 a->port);
    }
    if (a->setup_waiting > 0 || a->ac != ac)
        return;
    if (a->setup_failed) {
        char why[256];
        snprintf(why, sizeof(why), "%s", a->why);
        drop(a, why);
        return;
    }
    a->state = A_UP;
    a->refused = false;
    a->why[0] = '\0';
    a->memory_asked_ms = iw_loop_now_ms(); /* in the setup just answered */
    arm_watchdog(a);
    iw_timer_at(a->loop, &a->idle, iw_loop_now_ms() + IDLE_PING_MS);
    if (a->on_state)
        a->on_state(a->state_arg, true, NULL);
}

/* The answer to CONFIG GET appendonly. A Redis without its append-only file loses, in a crash,
 * the fences written since its last snapshot, and an older version may then be sent after a
 * newer one (README: Redis down or slow): said once per process. A Redis that refuses CONFIG, as
 * managed services often do, gets no warning. */
static void on_persistence(redisAsyncContext *ac, void *r, void *priv)
{
    iw_aledger *a = ac->data;
    redisReply *reply = r;
    (void)priv;
    if (!reply || a->aof_warned || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[1]->type != REDIS_REPLY_STRING || strcmp(reply->element[1]->str, "no") != 0)
        return;
    a->aof_warned = true;
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", a->host, a->port);
    iw_log(IW_LOG_WARN,
           "redis keeps no append-only file (appendonly no): a crash of Redis loses the fences "
           "written since its last snapshot, and an older version may then be sent after a newer "
           "one; run it with appendonly yes",
           "redis", where, NULL);
}

int iw_aledger_connect(iw_aledger *a)
{
    if (!a)
        return IW_EINVAL;
    if (a->state != A_DOWN || a->io_ac)
        return 0; /* connecting or up, or the last context is still being freed */
    a->why[0] = '\0';
    a->setup_failed = false;
    redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
    if (!ac)
        return IW_ENOMEM;
    if (ac->err) {
        snprintf(a->why, sizeof(a->why), "redis %s:%d: connect: %s", a->host, a->port,
                 ac->errstr);
        redisAsyncFree(ac);
        return IW_EIO;
    }
    ac->data = a;
    ac->ev.data = a;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    a->fd = ac->c.fd;
    a->io_ac = ac;
    a->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    a->state = A_CONNECTING;
    a->connect_started = iw_loop_now_ms();
    a->setup_waiting = 0;
    int rc = REDIS_OK;
    if (a->password) {
        const char *argv[2] = {"AUTH", a->password};
        size_t argvlen[2] = {4, strlen(a->password)};
        rc = redisAsyncCommandArgv(ac, on_setup, NULL, 2, argv, argvlen);
        a->setup_waiting += rc == REDIS_OK;
    }
    for (int k = 0; rc == REDIS_OK && k < K_COUNT; k++) {
        rc = redisAsyncCommand(ac, on_setup, (void *)(intptr_t)(k + 1), "SCRIPT LOAD %s",
                               script_body[k]);
        a->setup_waiting += rc == REDIS_OK;
    }
    if (rc == REDIS_OK) {
        rc = redisAsyncCommand(ac, on_setup, SETUP_MEMORY, "INFO memory");
        a->setup_waiting += rc == REDIS_OK;
    }
    if (rc == REDIS_OK && !a->aof_warned) /* its answer is not waited for */
        rc = redisAsyncCommand(ac, on_persistence, NULL, "CONFIG GET appendonly");
    if (rc != REDIS_OK) {
        drop(a, "out of memory");
        return IW_ENOMEM;
    }
    arm_watchdog(a);
    return 0;
}

bool iw_aledger_up(const iw_aledger *a)
{
    return a && a->state == A_UP;
}

bool iw_aledger_refused(const iw_aledger *a)
{
    return a && a->refused;
}

const char *iw_aledger_why(const iw_aledger *a)
{
    return a && a->why[0] ? a->why : "not connected";
}

static void batch_unlink(iw_aledger *a, abatch *b)
{
    abatch **pp = &a->head, *prev = NULL;
    while (*pp && *pp != b) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = b->next;
    if (a->tail == b)
        a->tail = prev;
}

static void batch_finish(abatch *b)
{
    iw_aledger *a = b->a;
    batch_unlink(a, b);
    arm_watchdog(a);
    if (b->rc == IW_EIO && a->ac)
        drop(a, "redis answered a ledger script with an error");
    iw_ledger_done_fn done = b->done;
    void *arg = b->arg;
    int rc = b->rc;
    free(b);
    done(arg, rc);
}

static int send_op(iw_aledger *a, abatch *b, size_t i, bool eval);

static void on_script_reply(redisAsyncContext *ac, void *r, void *priv)
{
    aslot *s = priv;
    abatch *b = s->b;
    redisReply *reply = r;
    if (!reply) {
        b->rc = IW_EIO;
    } else if (take_answer(&b->ops[s->i], reply, script_max[b->kind])) {
    } else if (is_noscript(reply) && !s->evaled && b->rc == 0 && b->a->ac == ac) {
        /* the script cache was flushed (Redis restarted): send the body; it comes back last */
        s->evaled = true;
        if (send_op(b->a, b, s->i, true) == 0)
            b->waiting++;
        else
            b->rc = IW_EIO;
    } else {
        b->rc = IW_EIO;
    }
    if (--b->waiting == 0)
        batch_finish(b);
}

static int send_op(iw_aledger *a, abatch *b, size_t i, bool eval)
{
    cmd c;
    int rc = build_cmd((const char(*)[41])a->sha, a->ttl_s, b->kind, &b->ops[i], b->owner,
                       b->lease_ms, eval, &a->s, &c);
    if (rc)
        return rc;
    size_t len = resp_format(&c, &a->f);
    if (!len)
        return IW_ENOMEM;
    return redisAsyncFormattedCommand(a->ac, on_script_reply, &b->slots[i], a->f.buf, len) ==
                   REDIS_OK
               ? 0
               : IW_EIO;
}

static int a_batch(iw_aledger *a, enum kind k, iw_ledger_op *ops, size_t n, const char *owner,
                   int64_t lease_ms, iw_ledger_done_fn done, void *arg)
{
    if (!a || !done)
        return IW_EINVAL;
    int rc = check_ops(k, ops, n, owner, lease_ms);
    if (rc)
        return rc;
    if (n == 0)
        return IW_EINVAL; /* nothing to call back for */
    if (a->state != A_UP || !a->ac)
        return IW_EIO;
    abatch *b = calloc(1, sizeof(*b) + n * sizeof(aslot));
    if (!b)
        return IW_ENOMEM;
    b->a = a;
    b->kind = k;
    b->ops = ops;
    b->n = n;
    b->owner = owner;
    b->lease_ms = lease_ms;
    b->done = done;
    b->arg = arg;
    b->sent_ms = iw_loop_now_ms();
    for (size_t i = 0; i < n; i++) {
        b->slots[i].b = b;
        b->slots[i].i = i;
        if (send_op(a, b, i, false) != 0) {
            /* part of the batch may be queued: this connection is unusable */
            b->rc = IW_EIO;
            if (b->waiting == 0) {
                free(b);
                drop(a, "could not queue a ledger command");
                return IW_EIO;
            }
            break;
        }
        b->waiting++;
    }
    if (a->tail)
        a->tail->next = b;
    else
        a->head = b;
    a->tail = b;
    arm_watchdog(a);
    if (b->rc) {
        drop(a, "could not queue a ledger command"); /* the queued part ends with IW_EIO */
        return 0;
    }
    if (a->io_ac)
        redisAsyncHandleWrite(a->io_ac); /* out now, not after the next wait */
    return 0;
}

int iw_aledger_claim(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                     int64_t lease_ms, iw_ledger_done_fn done, void *arg)
{
    return a_batch(a, K_CLAIM, ops, n, owner, lease_ms, done, arg);
}

int iw_aledger_complete(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                        iw_ledger_done_fn done, void *arg)
{
    return a_batch(a, K_COMPLETE, ops, n, owner, 0, done, arg);
}

int iw_aledger_release(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                       iw_ledger_done_fn done, void *arg)
{
    return a_batch(a, K_RELEASE, ops, n, owner, 0, done, arg);
}

int iw_aledger_renew(iw_aledger *a, iw_ledger_op *ops, size_t n, const char *owner,
                     int64_t lease_ms, iw_ledger_done_fn done, void *arg)
{
    return a_batch(a, K_RENEW, ops, n, owner, lease_ms, done, arg);
}

iw_aledger *iw_aledger_new(iw_loop *loop, const char *host, int port, const char *password,
                           int64_t ttl_s, int io_timeout_ms, iw_ledger_state_fn on_state,
                           void *state_arg)
{
    if (!loop || !host || !*host || port <= 0 || port > 65535 || ttl_s <= 0 || io_timeout_ms <= 0)
        return NULL;
    iw_aledger *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    a->fd = -1;
    a->port = port;
    a->ttl_s = ttl_s;
    a->io_timeout_ms = io_timeout_ms;
    a->on_state = on_state;
    a->state_arg = state_arg;
    a->host = strdup(host);
    a->password = password ? strdup(password) : NULL;
    iw_timer_init(&a->watchdog, on_watchdog, a);
    iw_timer_init(&a->idle, on_idle, a);
    a->ping_sent_ms = -1;
    if (!a->host || (password && !a->password)) {
        iw_aledger_free(a);
        return NULL;
    }
    return a;
}

void iw_aledger_free(iw_aledger *a)
{
    if (!a)
        return;
    a->on_state = NULL;
    if (a->ac) {
        redisAsyncContext *ac = a->ac;
        a->ac = NULL;
        a->state = A_DOWN;
        redisAsyncFree(ac); /* pending batches end with IW_EIO */
    }
    iw_timer_stop(a->loop, &a->watchdog);
    iw_timer_stop(a->loop, &a->idle);
    if (a->password) {
        explicit_bzero(a->password, strlen(a->password));
        free(a->password);
    }
    free(a->host);
    free(a->s.buf);
    free(a->f.buf);
    free(a);
}
