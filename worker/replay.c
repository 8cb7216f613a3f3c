/* replay.c: `invoice-worker replay`: re-drives chosen dead letters to the input topic, reading the
 * dead-letter topic from the beginning up to the end it had at start, committing nothing. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>

#include "cli.h"
#include "status.h"
#include "target.h"
#include "text.h"

#define REPLAY_TARGET_HEADER "x-iw-replay-target"
#define REPLAYED_FROM_HEADER "x-iw-replayed-from"
#define ORIGIN_HEADER "x-iw-origin" /* the worker keeps it in a copy's letter (pipeline.c) */
#define STALL_MS 30000           /* reading gives up when nothing arrives for this long */
#define DELIVERY_TIMEOUT "60000" /* ms: a copy not acknowledged by then is a failure */
#define FLUSH_LIMIT_MS 600000    /* waiting for acknowledgements ends here whatever the config */
#define BAR_WIDTH 30

static const char REPLAY_USAGE[] =
    "usage: invoice-worker replay -c FILE [-b BROKERS] [--target NAME] [--kind KIND]\n"
    "                             [--since WHEN] [--until WHEN] [--event-id ID] [--dry-run]\n"
    "\n"
    "Reads the dead-letter topic (kafka.topics.dead_letter) from the beginning of every\n"
    "partition up to the end it had when the command started, chooses the dead letters that\n"
    "match every filter given, and produces each one's original key and value to the input\n"
    "topic (kafka.topics.input), on the partition its event was read from (when the letter\n"
    "came from that topic), so it stays with its invoice's other events. A letter that names\n"
    "a target is sent with the header x-iw-replay-target: TARGET, so the worker re-drives that\n"
    "target only; a poison letter without a target is sent as it was. Every copy carries\n"
    "x-iw-replayed-from: PARTITION:OFFSET and the original traceparent. Nothing is committed\n"
    "or deleted. The ledger lets failed (event, target) pairs be claimed again; one that has\n"
    "succeeded meanwhile ends as a `duplicate` result. Letters repeating an (event, target)\n"
    "pair already chosen in this run (the same event of the same invoice) are skipped.\n"
    "A letter whose value or key the worker left out as too large for Kafka (header\n"
    "x-iw-value-omitted or x-iw-key-omitted) is not sent, since a copy without its key would\n"
    "lose the invoice's partition: its event is at the source offset the letter names, and it\n"
    "counts as not delivered. A letter written more than 90% of redis.ledger_ttl_s ago (or\n"
    "with no timestamp) is not sent either: the ledger forgets an invoice's versions that long\n"
    "after its last event, and a newer version that succeeded since could then be overwritten\n"
    "by the older one. Such letters are listed and counted; produce an event again by hand\n"
    "only when it is still its invoice's newest.\n"
    "\n"
    "  -c, --config FILE    the worker's config (brokers, topics, kafka.properties)\n"
    "  -b, --brokers LIST   bootstrap servers instead of kafka.brokers\n"
    "  --target NAME        only letters of this target instance (header x-iw-target)\n"
    "  --kind KIND          only this error kind (header x-iw-error-kind): validation, auth,\n"
    "                       remote, transport, exhausted, unavailable (a call retried after\n"
    "                       timeouts or 429s until its limits ran out ends exhausted)\n"
    "  --since WHEN         only letters dead-lettered at or after WHEN\n"
    "  --until WHEN         only letters dead-lettered before WHEN\n"
    "                       WHEN is RFC 3339 (2026-11-21T10:04:05Z, ...+01:00), a date\n"
    "                       (2026-11-21, midnight UTC) or an age: 90s, 30m, 2h, 1d12h, 1w\n"
    "  --event-id ID        only letters of this event (event_id of the JSON value; a letter\n"
    "                       without its value, x-iw-value-omitted, has none to match), or of\n"
    "                       the message a result names kafka:TOPIC:PARTITION:OFFSET (one not\n"
    "                       read as an event)\n"
    "  --dry-run            list the chosen letters (offset, target, kind, event id, error)\n"
    "                       and send nothing; a letter without its value or key says so\n"
    "\n"
    "Draws a progress bar when stderr is a terminal, else prints a count line.\n"
    "Exit status: 0 every chosen letter re-sent (or listed), 1 a read or delivery failure,\n"
    "2 usage or config error. Letters too old to send are counted in the summary's\n"
    "\"skipped\" line and do not change the exit status.\n";

/* What chooses a dead letter; unset filters are NULL / 0. */
typedef struct filters {
    const char *target;     /* x-iw-target must equal this */
    const char *kind;       /* x-iw-error-kind must equal this */
    const char *event_id;   /* the value's event_id must equal this */
    const char *since_text; /* as given, for the summary */
    const char *until_text;
    int64_t since_ms; /* timestamp >= since_ms (ms since epoch) */
    int64_t until_ms; /* timestamp < until_ms */
    bool has_since, has_until;
} filters;

/* A set of strings (event id + target pairs already chosen); open addressing. */
typedef struct seen_set {
    char **slots;
    size_t cap; /* a power of two, 0 before the first insert */
    size_t n;
} seen_set;

/* The state of one run. */
typedef struct replayer {
    rd_kafka_t *consumer; /* reads the dead-letter topic (assign, no group join, no commit) */
    rd_kafka_t *producer; /* idempotent, acks=all; NULL on a dry run */
    const char *dlq_topic;
    const char *input_topic;
    filters f;
    bool dry_run;
    bool tty;       /* stderr is a terminal: draw a bar */
    bool bar_shown; /* a bar line is on the screen (erase before printing) */
    int32_t n_parts;
    int32_t input_parts; /* partitions of the input topic, or -1 when unknown */
    int64_t *end; /* per partition: the end offset (high watermark) at start */
    bool *done;   /* per partition: read up to end */
    int32_t parts_left;
    int64_t total;          /* letters to read: sum of end - low watermark */
    int64_t scanned;        /* letters read */
    int64_t chosen;         /* letters matching the filters (repeats excluded) */
    int64_t repeats;        /* letters skipped as a repeat of a chosen (event, target) */
    int64_t partial;        /* chosen letters without their value or key (x-iw-*-omitted) */
    int64_t too_old;        /* matching letters written before oldest_ms: not sent */
    int64_t oldest_ms;      /* the oldest letter sent: now - 90% of redis.ledger_ttl_s */
    int64_t ttl_s;          /* redis.ledger_ttl_s */
    long delivered, failed; /* delivery reports */
    int64_t drawn_ms;
    char last_error[256]; /* the last Kafka error printed, so repeats are not */
    int64_t unsent_named; /* letters not sent, named or not (name_unsent) */
    bool fatal;
    seen_set seen;
} replayer;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- WHEN: RFC 3339, a date, or an age ---- */

/* Reads exactly n digits at *p into *out and advances; false when they are not there. */
static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* "90s", "30m", "2h", "1d12h", "1w": true with *ms set when s is wholly such an age. */
static bool parse_age(const char *s, int64_t *ms)
{
    int64_t total = 0;
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return false;
        errno = 0;
        char *end;
        long long n = strtoll(p, &end, 10);
        if (errno || n > 100000000LL)
            return false;
        int64_t unit;
        switch (*end) {
        case 's': unit = 1000; break;
        case 'm': unit = 60000; break;
        case 'h': unit = 3600000; break;
        case 'd': unit = 86400000; break;
        case 'w': unit = 604800000; break;
        default: return false;
        }
        int64_t part;
        if (__builtin_mul_overflow((int64_t)n, unit, &part) ||
            __builtin_add_overflow(total, part, &total))
            return false; /* older than any letter: a mistake, not a time */
        p = end + 1;
    }
    *ms = total;
    return true;
}

/* An RFC 3339 timestamp (or a bare date, midnight UTC) as ms since the epoch. */
static bool parse_rfc3339(const char *s, int64_t *ms)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, se = 0, frac_ms = 0, off_min = 0;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        return false;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return false;
        p++;
        if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi) || *p++ != ':' ||
            !take_digits(&p, 2, &se))
            return false;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return false;
            for (int scale = 100; isdigit((unsigned char)*p); p++, scale /= 10)
                frac_ms += (*p - '0') * scale;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!take_digits(&p, 2, &oh) || *p++ != ':' || !take_digits(&p, 2, &om) || oh > 23 ||
                om > 59)
                return false;
            off_min = sign * (oh * 60 + om);
        } else {
            return false;
        }
        if (*p)
            return false;
    }
    if (!iw_text_day_exists(y, mo, d) || h > 23 || mi > 59 || se > 60)
        return false; /* 2026-02-31 is not 3 March */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac_ms;
    return true;
}

/* WHEN as ms since the epoch: an absolute time, or now minus an age. */
static bool parse_when(const char *s, int64_t now_ms, int64_t *ms)
{
    int64_t age;
    if (parse_age(s, &age)) {
        *ms = now_ms - age;
        return true;
    }
    return parse_rfc3339(s, ms);
}

/* ---- the set of chosen (event, target) pairs ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Inserts without growing; cap must have room. */
static void seen_place(char **slots, size_t cap, char *key)
{
    size_t i = (size_t)hash_str(key) & (cap - 1);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = key;
}

/* Adds key: 1 when it is new, 0 when it was there, or IW_ENOMEM. */
static int seen_add(seen_set *s, const char *key)
{
    if (s->cap) {
        for (size_t i = (size_t)hash_str(key) & (s->cap - 1); s->slots[i];
             i = (i + 1) & (s->cap - 1))
            if (strcmp(s->slots[i], key) == 0)
                return 0;
    }
    if ((s->n + 1) * 10 > s->cap * 7) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return IW_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                seen_place(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    char *copy = strdup(key);
    if (!copy)
        return IW_ENOMEM;
    seen_place(s->slots, s->cap, copy);
    s->n++;
    return 1;
}

static void seen_free(seen_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

/* ---- output ---- */

static void erase_bar(replayer *r)
{
    if (r->bar_shown) {
        fputs("\r\033[K", stderr);
        r->bar_shown = false;
    }
}

/* Redraws the progress bar (terminal only), at most every 100 ms unless forced. */
static void draw_bar(replayer *r, bool force)
{
    if (!r->tty)
        return;
    int64_t now = mono_ms();
    if (!force && now - r->drawn_ms < 100)
        return;
    r->drawn_ms = now;
    int64_t total = r->total > 0 ? r->total : 1;
    int64_t seen = r->scanned < total ? r->scanned : total;
    int fill = (int)(seen * BAR_WIDTH / total);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %3d%%  %" PRId64 "/%" PRId64 " read, %" PRId64 " chosen", bar,
            (int)(seen * 100 / total), r->scanned, r->total, r->chosen);
    if (!r->dry_run)
        fprintf(stderr, ", %ld acknowledged", r->delivered);
    fputs("\033[K", stderr);
    fflush(stderr);
    r->bar_shown = true;
}

/* Prints a Kafka error once (a repeat of the last one is not printed again). */
static void kafka_error(replayer *r, const char *what, const char *msg)
{
    char line[256];
    snprintf(line, sizeof(line), "%s: %s", what, msg);
    if (strcmp(line, r->last_error) == 0)
        return;
    snprintf(r->last_error, sizeof(r->last_error), "%s", line);
    erase_bar(r);
    fprintf(stderr, "replay: %s\n", line);
}

/* Copies text into dst (len bytes) as plain text: control and bidirectional formatting
 * characters as spaces, bytes that are not UTF-8 as '?' (a letter's value is event text). */
static void printable(char *dst, size_t len, const char *src, size_t n)
{
    iw_text_clean_copy(dst, len, src, n);
}

static void add_filter(char *buf, size_t len, size_t *n, const char *name, const char *val)
{
    if (val && *n < len)
        *n += (size_t)snprintf(buf + *n, len - *n, "%s%s=%s", *n ? ", " : "", name, val);
}

/* The summary of the filters: "target=x, kind=y" or "no filters". */
static void describe_filters(const filters *f, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    add_filter(buf, len, &n, "target", f->target);
    add_filter(buf, len, &n, "kind", f->kind);
    add_filter(buf, len, &n, "since", f->since_text);
    add_filter(buf, len, &n, "until", f->until_text);
    add_filter(buf, len, &n, "event_id", f->event_id);
    if (!buf[0])
        snprintf(buf, len, "no filters");
}

/* ---- Kafka callbacks ---- */

/* Which letter a copy is of, for naming one that is not delivered (the copy's opaque). */
typedef struct letter_ref {
    int32_t partition;
    int64_t offset;
    char event_id[132]; /* cut to an event's 128 bytes */
} letter_ref;

/* How many letters not sent are named one by one; the summary counts them all. */
#define NAMED_MAX 20

/* Names a letter whose copy was not sent, or not acknowledged (sure false: it may have been
 * delivered all the same), the first NAMED_MAX of them. */
static void name_unsent(replayer *r, int32_t partition, int64_t offset, const char *event_id,
                        bool sure, const char *why)
{
    if (++r->unsent_named > NAMED_MAX)
        return;
    erase_bar(r);
    fprintf(stderr, "replay: dead letter %" PRId32 ":%" PRId64 " (event %s) %s %s: %s\n", partition,
            offset, *event_id ? event_id : "-",
            sure ? "not sent to" : "not acknowledged (it may have been delivered) by",
            r->input_topic, why);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    replayer *r = opaque;
    letter_ref *ref = m->_private;
    if (m->err) {
        r->failed++;
        if (ref)
            name_unsent(r, ref->partition, ref->offset, ref->event_id,
                        m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                            m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE,
                        rd_kafka_err2str(m->err));
        else
            kafka_error(r, "not delivered", rd_kafka_err2str(m->err));
    } else {
        r->delivered++;
    }
    free(ref);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    replayer *r = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        kafka_error(r, "fatal", buf);
        r->fatal = true;
        return;
    }
    kafka_error(r, "kafka", reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* warnings and worse; not the notes that a shared property does not apply to one role */
    if (level <= 4 && !(strcmp(fac, "CONFWARN") == 0 && strstr(buf, "will be ignored")))
        fprintf(stderr, "replay: kafka %s: %s\n", fac, buf);
}

/* ---- one dead letter ---- */

/* The value of header name (at most len-1 bytes, control characters as spaces); "" when absent. */
static void header_text(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
    const void *v = NULL;
    size_t sz = 0;
    buf[0] = '\0';
    if (h && rd_kafka_header_get_last(h, name, &v, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        printable(buf, len, v, sz);
}

/* The value of header name, whole, as plain text (printable): "" when absent; NULL when out of
 * memory. */
static char *header_whole(rd_kafka_headers_t *h, const char *name)
{
    const void *v = NULL;
    size_t sz = 0;
    if (!h || rd_kafka_header_get_last(h, name, &v, &sz) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        sz = 0;
    char *buf = malloc(sz + 1);
    if (buf)
        printable(buf, sz + 1, sz ? v : "", sz); /* never longer than what it copies */
    return buf;
}

/* The message the letter's source headers name, "<topic>:<partition>:<offset>", or "". */
static void letter_source(rd_kafka_headers_t *h, char *buf, size_t len)
{
    char topic[260], part[16], off[32];
    header_text(h, "x-iw-source-topic", topic, sizeof(topic));
    header_text(h, "x-iw-source-partition", part, sizeof(part));
    header_text(h, "x-iw-source-offset", off, sizeof(off));
    if (*topic && *part && *off)
        snprintf(buf, len, "%s:%s:%s", topic, part, off);
    else
        *buf = '\0';
}

/* The input message a letter's event first came from, "<topic>:<partition>:<offset>" in buf
 * ("" when unknown): the origin a replayed copy carried into its own letter, else the letter's
 * source. */
static void letter_origin(rd_kafka_headers_t *h, char *buf, size_t len)
{
    header_text(h, ORIGIN_HEADER, buf, len);
    if (!*buf)
        letter_source(h, buf, len);
}

/* The SHA-256 of m's key and value, in hex, into out: what a copy of a message carries
 * unchanged. false when it cannot be computed. */
static bool content_digest(const rd_kafka_message_t *m, char out[2 * EVP_MAX_MD_SIZE + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE], klen[8];
    unsigned int n = 0;
    uint64_t kl = m->key ? (uint64_t)m->key_len : UINT64_MAX; /* no key is not an empty one */
    for (int i = 0; i < 8; i++)
        klen[i] = (unsigned char)(kl >> (8 * i));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(c, klen, sizeof(klen)) == 1 &&
              (!m->key || EVP_DigestUpdate(c, m->key, m->key_len) == 1) &&
              (!m->payload || EVP_DigestUpdate(c, m->payload, m->len) == 1) &&
              EVP_DigestFinal_ex(c, md, &n) == 1;
    EVP_MD_CTX_free(c);
    for (unsigned int i = 0; ok && i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return ok;
}

/* What tells one dead letter's (event, target) from another's, for skipping repeats: its
 * event_id with its tenant and invoice id (two invoices may share an event_id, and the ledger
 * keeps them apart), or for a letter without one (a poison message: not JSON, a tombstone) the
 * input message it first came from (a copy's letter names its copy's origin, not the copy)
 * with the digest of its key and value: a copy has the bytes of its origin, and a message that
 * only claims an origin in its headers (anyone may set x-iw-origin) is a letter of its own, so
 * it cannot make the message it names pass for a repeat. "" when it has neither. NULL when out
 * of memory. */
static char *letter_identity(const rd_kafka_message_t *m, rd_kafka_headers_t *h,
                             const char *event_id, const char *invoice, const char *target)
{
    char origin[320], digest[2 * EVP_MAX_MD_SIZE + 1] = "";
    letter_origin(h, origin, sizeof(origin));
    if (!*event_id && *origin && !content_digest(m, digest))
        return NULL;
    size_t n =
        strlen(event_id) + strlen(invoice) + strlen(target) + strlen(origin) + sizeof(digest) + 64;
    char *key = malloc(n);
    if (!key)
        return NULL;
    if (*event_id)
        snprintf(key, n, "e\x1f%s\x1f%s\x1f%s", invoice, event_id, target);
    else if (*origin)
        snprintf(key, n, "s\x1f%s\x1f%s\x1f%s", origin, target, digest);
    else
        key[0] = '\0';
    return key;
}

/* A copy of a string member of j as plain text (printable), whole: "" when it is not one;
 * NULL when out of memory. */
static char *member_text(const cJSON *j, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, name);
    const char *v = cJSON_IsString(it) ? it->valuestring : "";
    size_t n = strlen(v);
    char *buf = malloc(n + 1);
    if (buf)
        printable(buf, n + 1, v, n); /* never longer than what it copies */
    return buf;
}

/* The event_id of a JSON value, whole ("" when the value is not JSON or has none; a poison
 * event's id may be longer than an event's 128 bytes, and a cut one would match another
 * letter's id or miss a filter), and *invoice its tenant and invoice.id joined by a unit
 * separator ("" when it has neither). NULL when out of memory (*invoice then NULL too). */
static char *value_ids(const rd_kafka_message_t *m, char **invoice)
{
    cJSON *j = m->payload && m->len ? cJSON_ParseWithLength(m->payload, m->len) : NULL;
    char *id = member_text(j, "event_id"), *tenant = member_text(j, "tenant"),
         *inv = member_text(cJSON_GetObjectItemCaseSensitive(j, "invoice"), "id");
    cJSON_Delete(j);
    *invoice = NULL;
    if (id && tenant && inv) {
        size_t n = strlen(tenant) + strlen(inv) + 2;
        *invoice = malloc(n);
        if (*invoice)
            snprintf(*invoice, n, "%s\x1f%s", tenant, inv);
    }
    free(tenant);
    free(inv);
    if (!*invoice) {
        free(id);
        return NULL;
    }
    return id;
}

/* Whether --event-id ID names the letter: its value's event_id, or, for the id a result gives
 * a message not read as an event ("kafka:<topic>:<partition>:<offset>"), the message its
 * source headers or its origin name. */
static bool names_letter(const char *id, const char *event_id, rd_kafka_headers_t *h)
{
    if (strcmp(id, event_id) == 0)
        return true;
    if (strncmp(id, "kafka:", 6) != 0)
        return false;
    char at[320];
    letter_source(h, at, sizeof(at));
    if (*at && strcmp(at, id + 6) == 0)
        return true;
    letter_origin(h, at, sizeof(at));
    return *at && strcmp(at, id + 6) == 0;
}

static bool matches(const filters *f, const char *target, const char *kind, const char *event_id,
                    rd_kafka_headers_t *h, int64_t ts)
{
    if (f->target && strcmp(f->target, target) != 0)
        return false;
    if (f->kind && strcmp(f->kind, kind) != 0)
        return false;
    if (f->event_id && !names_letter(f->event_id, event_id, h))
        return false;
    if ((f->has_since || f->has_until) && ts < 0)
        return false; /* no timestamp: a time filter cannot say yes */
    if (f->has_since && ts < f->since_ms)
        return false;
    if (f->has_until && ts >= f->until_ms)
        return false;
    return true;
}

/* Copies header name of src (when present and not empty) into dst under the name as. */
static void copy_header(rd_kafka_headers_t *src, const char *name, rd_kafka_headers_t *dst,
                        const char *as)
{
    const void *v = NULL;
    size_t sz = 0;
    if (src && rd_kafka_header_get_last(src, name, &v, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        sz)
        rd_kafka_header_add(dst, as, -1, v, (ssize_t)sz);
}

/* The partition a copy goes to: the one its event was read from, when that was the input topic
 * and it still has that partition, so the copy stays with its invoice's other events however
 * upstream partitions (Java clients hash keys with murmur2, librdkafka with CRC32, some choose
 * by hand). Else RD_KAFKA_PARTITION_UA: the default partitioner places it by its key. */
static int32_t source_partition(const replayer *r, rd_kafka_headers_t *src)
{
    char topic[260], part[16];
    header_text(src, "x-iw-source-topic", topic, sizeof(topic));
    header_text(src, "x-iw-source-partition", part, sizeof(part));
    char *end = NULL;
    long p = strtol(part, &end, 10);
    if (strcmp(topic, r->input_topic) != 0 || !*part || *end || p < 0 || p >= r->input_parts)
        return RD_KAFKA_PARTITION_UA;
    return (int32_t)p;
}

/* Produces the copy of m to the input topic: the letter's target (if any) as the only target,
 * where it came from, its traceparent. 0 or -1 (the letter is then named). */
static int resend(replayer *r, const rd_kafka_message_t *m, rd_kafka_headers_t *src,
                  const char *event_id)
{
    letter_ref *ref = malloc(sizeof(*ref));
    if (ref) {
        ref->partition = m->partition;
        ref->offset = m->offset;
        snprintf(ref->event_id, sizeof(ref->event_id), "%.*s", iw_text_utf8_prec(event_id, 128),
                 event_id);
    }
    int32_t part = source_partition(r, src);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    char from[48];
    snprintf(from, sizeof(from), "%" PRId32 ":%" PRId64, m->partition, m->offset);
    copy_header(src, "x-iw-target", h, REPLAY_TARGET_HEADER);
    rd_kafka_header_add(h, REPLAYED_FROM_HEADER, -1, from, -1);
    copy_header(src, "traceparent", h, "traceparent");
    char origin[320];
    letter_origin(src, origin, sizeof(origin));
    if (*origin)
        rd_kafka_header_add(h, ORIGIN_HEADER, -1, origin, -1);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(r->input_topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(ref),
            RD_KAFKA_V_END);
        if (!err)
            return 0; /* the producer owns h now, and on_delivery frees ref */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_headers_destroy(h);
            name_unsent(r, m->partition, m->offset, event_id, true, rd_kafka_err2str(err));
            free(ref);
            return -1;
        }
        rd_kafka_poll(r->producer, 100);
    }
}

/* A matching letter written before r->oldest_ms (or with no timestamp): listed (dry run) or
 * named (the first few), counted, never sent. The ledger keeps an invoice's applied and
 * claimed versions redis.ledger_ttl_s after its last claim or outcome; the letter's own
 * outcome and any newer version's came after the letter's event was read, so within that
 * time a copy of an older version is answered stale, and after it would be sent over a newer
 * one (and an EBizCharge event's in-doubt mark would be gone too). The 10% left cover the
 * time a copy waits in the input topic before a worker claims it. */
static void too_old(replayer *r, const rd_kafka_message_t *m, int64_t ts, const char *target,
                    const char *kind, const char *event_id)
{
    r->too_old++;
    char when[48] = "has no timestamp";
    if (ts >= 0) {
        memcpy(when, "was written ", 12);
        iw_text_utc_ms(when + 12, ts);
    }
    const char *age = ts >= 0 ? ", over 90% of redis.ledger_ttl_s ago" : "";
    if (r->dry_run) {
        erase_bar(r);
        printf("%" PRId32 ":%-10" PRId64 " %-18s %-13s %-28.*s not sent: %s%s\n", m->partition,
               m->offset, *target ? target : "-", *kind ? kind : "-",
               *event_id ? iw_text_utf8_prec(event_id, 159) : 1, *event_id ? event_id : "-", when,
               age);
        return;
    }
    if (r->too_old > NAMED_MAX)
        return; /* the summary counts them all */
    erase_bar(r);
    fprintf(stderr,
            "replay: dead letter %" PRId32 ":%" PRId64 " (event %.*s, target %s) %s%s; not sent\n",
            m->partition, m->offset, *event_id ? iw_text_utf8_prec(event_id, 159) : 1,
            *event_id ? event_id : "-", *target ? target : "-", when, age);
}

/* Decides about a dead letter of target and kind with event_id (whole, "" when it has none)
 * of invoice (tenant and invoice.id, "" when it has none) and lists or re-sends it. 0, or -1
 * when out of memory. */
static int take_letter_of(replayer *r, const rd_kafka_message_t *m, rd_kafka_headers_t *h,
                          const char *target, const char *kind, const char *event_id,
                          const char *invoice)
{
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    if (!matches(&r->f, target, kind, event_id, h, ts))
        return 0;
    if (ts < 0 || ts < r->oldest_ms) {
        too_old(r, m, ts, target, kind, event_id);
        return 0;
    }
    char *key = letter_identity(m, h, event_id, invoice, target);
    if (!key)
        return -1;
    int added = *key ? seen_add(&r->seen, key) : 1;
    free(key);
    if (added < 0)
        return -1;
    if (added == 0) {
        r->repeats++;
        return 0;
    }
    r->chosen++;
    char error[200];
    char omitted[32];
    const char *left_out = "value";
    header_text(h, "x-iw-value-omitted", omitted, sizeof(omitted));
    if (!*omitted) {
        left_out = "key";
        header_text(h, "x-iw-key-omitted", omitted, sizeof(omitted));
    }
    if (*omitted)
        r->partial++;
    if (r->dry_run) {
        header_text(h, "x-iw-error", error, sizeof(error));
        if (*omitted) /* what a real run would say about it */
            snprintf(error, sizeof(error), "cannot be sent: its %s (%s bytes) was left out",
                     left_out, omitted);
        erase_bar(r);
        printf("%" PRId32 ":%-10" PRId64 " %-18s %-13s %-28.*s %s\n", m->partition, m->offset,
               *target ? target : "-", *kind ? kind : "-",
               *event_id ? iw_text_utf8_prec(event_id, 159) : 1, *event_id ? event_id : "-",
               *error ? error : "-");
        return 0;
    }
    if (*omitted) {
        /* the worker left out a value or key too large for Kafka: the event is only at its
         * source (a copy without its key would go to another partition than the invoice's) */
        char topic[260], part[16], off[32];
        header_text(h, "x-iw-source-topic", topic, sizeof(topic));
        header_text(h, "x-iw-source-partition", part, sizeof(part));
        header_text(h, "x-iw-source-offset", off, sizeof(off));
        erase_bar(r);
        fprintf(stderr,
                "replay: dead letter %" PRId32 ":%" PRId64 " carries no %s (x-iw-%s-omitted: %s"
                " bytes, too large for Kafka); the event is at %s %s:%s, not sent\n",
                m->partition, m->offset, left_out, left_out, omitted, *topic ? topic : "-",
                *part ? part : "-", *off ? off : "-");
        return 0; /* counted as not delivered */
    }
    resend(r, m, h, event_id); /* a copy not queued is counted as not delivered */
    return 0;
}

/* Decides about one dead letter and lists or re-sends it. 0, or -1 when out of memory. */
static int take_letter(replayer *r, const rd_kafka_message_t *m)
{
    r->scanned++;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        h = NULL;
    char kind[40];
    header_text(h, "x-iw-error-kind", kind, sizeof(kind));
    char *invoice = NULL;
    char *target = header_whole(h, "x-iw-target"), *event_id = value_ids(m, &invoice);
    int rc = target && event_id ? take_letter_of(r, m, h, target, kind, event_id, invoice) : -1;
    free(target);
    free(event_id);
    free(invoice);
    return rc;
}

/* ---- reading the dead-letter topic ---- */

/* Finds the partitions and their watermarks and assigns the non-empty ones from their start.
 * 0, or -1 with the reason printed. */
/* The number of partitions of topic, or -1 with *err telling why. */
static int32_t topic_partitions(rd_kafka_t *rk, const char *topic, rd_kafka_resp_err_t *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    *err = rd_kafka_metadata(rk, 0, rkt, &md, 15000);
    rd_kafka_topic_destroy(rkt);
    int32_t n = -1;
    if (!*err && !(md && md->topic_cnt == 1))
        *err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    else if (!*err && !(*err = md->topics[0].err))
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    return n;
}

static int plan_read(replayer *r)
{
    rd_kafka_resp_err_t err;
    r->n_parts = topic_partitions(r->consumer, r->dlq_topic, &err);
    if (r->n_parts < 0) {
        fprintf(stderr, "replay: cannot read the dead-letter topic %s: %s\n", r->dlq_topic,
                rd_kafka_err2str(err));
        return -1;
    }
    if (!r->dry_run) {
        r->input_parts = topic_partitions(r->consumer, r->input_topic, &err);
        if (r->input_parts < 0) /* the partitioner places every copy */
            fprintf(stderr,
                    "replay: cannot read the partitions of %s (%s): copies go where "
                    "their key puts them\n",
                    r->input_topic, rd_kafka_err2str(err));
    }
    r->end = calloc((size_t)r->n_parts + 1, sizeof(*r->end));
    r->done = calloc((size_t)r->n_parts + 1, sizeof(*r->done));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n_parts);
    if (!r->end || !r->done || !l) {
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        fprintf(stderr, "replay: out of memory\n");
        return -1;
    }
    for (int32_t i = 0; i < r->n_parts; i++) {
        int64_t lo = 0, hi = 0;
        err = rd_kafka_query_watermark_offsets(r->consumer, r->dlq_topic, i, &lo, &hi, 15000);
        if (err) {
            fprintf(stderr, "replay: %s [%" PRId32 "]: cannot read the offsets: %s\n", r->dlq_topic,
                    i, rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        r->end[i] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, r->dlq_topic, i)->offset = lo;
            r->total += hi - lo;
            r->parts_left++;
        } else {
            r->done[i] = true;
        }
    }
    err = l->cnt ? rd_kafka_assign(r->consumer, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        fprintf(stderr, "replay: cannot assign %s: %s\n", r->dlq_topic, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static void part_done(replayer *r, int32_t p)
{
    if (p >= 0 && p < r->n_parts && !r->done[p]) {
        r->done[p] = true;
        r->parts_left--;
    }
}

/* Reads every assigned partition up to its end at start. 0, or -1 (printed). */
static int read_letters(replayer *r)
{
    int64_t last = mono_ms();
    while (r->parts_left > 0 && !r->fatal) {
        draw_bar(r, false);
        if (r->producer)
            rd_kafka_poll(r->producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 100);
        if (!m) {
            if (mono_ms() - last > STALL_MS) {
                erase_bar(r);
                fprintf(stderr,
                        "replay: nothing arrived from %s for %d s; %" PRId32
                        " partition(s) not read to the end\n",
                        r->dlq_topic, STALL_MS / 1000, r->parts_left);
                return -1;
            }
            continue;
        }
        int32_t p = m->partition;
        bool ours = p >= 0 && p < r->n_parts && !r->done[p];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (ours && m->offset >= r->end[p])
                part_done(r, p);
        } else if (m->err) {
            kafka_error(r, "reading", rd_kafka_message_errstr(m));
        } else if (ours) {
            last = mono_ms();
            if (m->offset < r->end[p] && take_letter(r, m) != 0) {
                rd_kafka_message_destroy(m);
                fprintf(stderr, "replay: out of memory\n");
                return -1;
            }
            if (m->offset + 1 >= r->end[p])
                part_done(r, p);
        }
        rd_kafka_message_destroy(m);
    }
    return r->fatal ? -1 : 0;
}

/* Waits for every queued copy to be acknowledged (or to fail). */
static void wait_acks(replayer *r)
{
    int64_t start = mono_ms();
    while (rd_kafka_outq_len(r->producer) > 0 && mono_ms() - start < FLUSH_LIMIT_MS) {
        rd_kafka_flush(r->producer, 100);
        draw_bar(r, false);
    }
    /* what is still queued is not delivered: purged, its delivery reports name its letters */
    if (rd_kafka_outq_len(r->producer) > 0 &&
        rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT) == 0)
        rd_kafka_flush(r->producer, 1000);
}

/* ---- clients ---- */

/* Sets a property, printing the error. 0 or -1. */
static int set_prop(rd_kafka_conf_t *c, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(c, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "replay: kafka property %s: %s\n", key, err);
        return -1;
    }
    return 0;
}

/* A client conf: defaults (key, value, ..., NULL) first, then the config's kafka.properties
 * ("consumer.X"/"producer.X" apply to one role only). */
static rd_kafka_conf_t *client_conf(const iw_config *cfg, const char *brokers, const char *role,
                                    const char *const *defaults, replayer *r)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    size_t rl = strlen(role);
    if (set_prop(c, "bootstrap.servers", brokers) != 0)
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (set_prop(c, defaults[i], defaults[i + 1]) != 0)
            goto fail;
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const char *k = cfg->kafka_props[2 * i];
        if (strncmp(k, "consumer.", 9) == 0 || strncmp(k, "producer.", 9) == 0) {
            if (strncmp(k, role, rl) != 0 || k[rl] != '.')
                continue;
            k += rl + 1;
        }
        if (set_prop(c, k, cfg->kafka_props[2 * i + 1]) != 0)
            goto fail;
    }
    rd_kafka_conf_set_opaque(c, r);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_log_cb(c, on_log);
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

static int make_clients(replayer *r, const iw_config *cfg, const char *brokers)
{
    char err[512], group[300];
    rd_kafka_conf_t *cc = client_conf(cfg, brokers, "consumer", NULL, r);
    snprintf(group, sizeof(group), "%s-replay", cfg->kafka_group_id);
    /* group.id only because librdkafka's consumer wants one: partitions are assigned directly,
     * the group is never joined and nothing is committed */
    if (!cc || set_prop(cc, "group.id", group) || set_prop(cc, "enable.auto.commit", "false") ||
        set_prop(cc, "enable.auto.offset.store", "false") ||
        set_prop(cc, "enable.partition.eof", "true")) {
        if (cc)
            rd_kafka_conf_destroy(cc);
        return -1;
    }
    r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
    if (!r->consumer) { /* rd_kafka_new() takes ownership of conf only on success */
        rd_kafka_conf_destroy(cc);
        fprintf(stderr, "replay: consumer: %s\n", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(r->consumer);
    if (r->dry_run)
        return 0;
    /* a copy not acknowledged within the timeout is a failure (a config may change it);
     * idempotence and acks=all are not negotiable */
    static const char *const defaults[] = {"message.timeout.ms", DELIVERY_TIMEOUT, "linger.ms", "5",
                                           NULL};
    rd_kafka_conf_t *pc = client_conf(cfg, brokers, "producer", defaults, r);
    if (!pc || set_prop(pc, "enable.idempotence", "true") || set_prop(pc, "acks", "all")) {
        if (pc)
            rd_kafka_conf_destroy(pc);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
    if (!r->producer) {
        rd_kafka_conf_destroy(pc);
        fprintf(stderr, "replay: producer: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- the command ---- */

/* Reads the command line into f; 0, 1 after --help/--version, or 2 on a mistake (printed). */
static int parse_args(int argc, char **argv, filters *f, const char **cpath, const char **brokers,
                      bool *dry_run)
{
    enum { O_TARGET = 256, O_KIND, O_SINCE, O_UNTIL, O_EVENT, O_DRY };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"brokers", required_argument, NULL, 'b'},
                                         {"target", required_argument, NULL, O_TARGET},
                                         {"kind", required_argument, NULL, O_KIND},
                                         {"since", required_argument, NULL, O_SINCE},
                                         {"until", required_argument, NULL, O_UNTIL},
                                         {"event-id", required_argument, NULL, O_EVENT},
                                         {"dry-run", no_argument, NULL, O_DRY},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    int64_t now = wall_ms();
    int c;
    while ((c = getopt_long(argc, argv, "c:b:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': *cpath = optarg; break;
        case 'b': *brokers = optarg; break;
        case O_TARGET: f->target = optarg; break;
        case O_EVENT: f->event_id = optarg; break;
        case O_DRY: *dry_run = true; break;
        case O_KIND: {
            iw_error_kind k;
            for (k = IW_ERR_VALIDATION; k <= IW_ERR_UNAVAILABLE; k++)
                if (strcmp(optarg, iw_error_kind_str(k)) == 0)
                    break;
            if (k > IW_ERR_UNAVAILABLE) {
                fprintf(stderr,
                        "replay: --kind %s: not an error kind (validation, auth, remote, "
                        "transport, exhausted, unavailable)\n",
                        optarg);
                return 2;
            }
            /* retried kinds: their calls end exhausted, so no letter carries them (review 106:
             * such a filter matched nothing, silently) */
            if (k == IW_ERR_TIMEOUT || k == IW_ERR_RATE_LIMITED) {
                fprintf(stderr,
                        "replay: --kind %s: no dead letter carries it: a call retried after "
                        "%s until its limits ran out ends exhausted (--kind exhausted)\n",
                        optarg, k == IW_ERR_TIMEOUT ? "timeouts" : "429s");
                return 2;
            }
            f->kind = optarg;
            break;
        }
        case O_SINCE:
        case O_UNTIL: {
            bool since = c == O_SINCE;
            int64_t ms;
            if (!parse_when(optarg, now, &ms)) {
                fprintf(stderr,
                        "replay: --%s %s: expected RFC 3339 (2026-11-21T10:04:05Z), a "
                        "date (2026-11-21) or an age (30m, 2h, 1d)\n",
                        since ? "since" : "until", optarg);
                return 2;
            }
            if (since) {
                f->since_ms = ms;
                f->has_since = true;
                f->since_text = optarg;
            } else {
                f->until_ms = ms;
                f->has_until = true;
                f->until_text = optarg;
            }
            break;
        }
        case 'h': fputs(REPLAY_USAGE, stdout); return 1;
        case 'V': iw_cli_print_version(); return 1;
        default: fputs(REPLAY_USAGE, stderr); return 2;
        }
    }
    if (!*cpath || optind != argc) {
        fputs(REPLAY_USAGE, stderr);
        return 2;
    }
    return 0;
}

int iw_cli_replay(int argc, char **argv)
{
    replayer r;
    memset(&r, 0, sizeof(r));
    const char *cpath = NULL, *brokers = NULL;
    int rc = parse_args(argc, argv, &r.f, &cpath, &brokers, &r.dry_run);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    iw_config *cfg = iw_cli_load_config(cpath);
    if (!cfg)
        return 2;
    if (!brokers)
        brokers = cfg->kafka_brokers;
    if (!brokers || !*brokers) {
        fprintf(stderr, "replay: no brokers: set kafka.brokers or use -b\n");
        iw_config_free(cfg);
        return 2;
    }
    if (r.f.target && !iw_config_target(cfg, r.f.target)) /* a typo, or a removed instance */
        fprintf(stderr,
                "replay: note: the config has no target instance named \"%s\"; only its "
                "letters are chosen (of an instance since removed, they still can be)\n",
                r.f.target);
    r.dlq_topic = cfg->dlq_topic;
    r.ttl_s = cfg->ledger_ttl_s;
    r.oldest_ms = wall_ms() - cfg->ledger_ttl_s * 1000 / 10 * 9;
    r.input_topic = cfg->input_topic;
    r.input_parts = -1;
    r.tty = isatty(STDERR_FILENO) == 1;
    char desc[700];
    describe_filters(&r.f, desc, sizeof(desc));

    rc = 1;
    if (make_clients(&r, cfg, brokers) != 0 || plan_read(&r) != 0)
        goto out;
    if (!r.tty)
        fprintf(
            stderr, "replay: reading %" PRId64 " dead letter%s from %s (%" PRId32 " partition%s)\n",
            r.total, r.total == 1 ? "" : "s", r.dlq_topic, r.n_parts, r.n_parts == 1 ? "" : "s");
    if (r.dry_run)
        printf("%-12s %-18s %-13s %-28s %s\n", "PART:OFFSET", "TARGET", "KIND", "EVENT_ID",
               "ERROR");
    int read_rc = read_letters(&r);
    if (r.producer)
        wait_acks(&r);
    if (r.tty && r.bar_shown) { /* leave the final bar on the screen */
        draw_bar(&r, true);
        fputc('\n', stderr);
        r.bar_shown = false;
    }
    if (!r.tty)
        fprintf(stderr,
                "replay: read %" PRId64 " of %" PRId64 ", chose %" PRId64 ", skipped %" PRId64
                " repeat%s\n",
                r.scanned, r.total, r.chosen, r.repeats, r.repeats == 1 ? "" : "s");
    long not_sent = r.dry_run ? 0 : (long)(r.chosen - r.delivered);
    if (r.dry_run)
        printf("dry run: would replay %" PRId64 " of %" PRId64 " dead letters (%s); nothing sent\n",
               r.chosen - r.partial, r.scanned, desc);
    else
        printf("replayed %ld of %" PRId64 " dead letters (%s) to %s\n", r.delivered, r.scanned,
               desc, r.input_topic);
    if (r.dry_run && r.partial)
        printf("%" PRId64 " chosen dead letter%s cannot be sent: %s value or key was left out as "
               "too large for Kafka (the event is at its source offset)\n",
               r.partial, r.partial == 1 ? "" : "s", r.partial == 1 ? "its" : "their");
    if (r.repeats)
        printf("skipped %" PRId64 " repeat%s of an (event, target) pair already chosen\n",
               r.repeats, r.repeats == 1 ? "" : "s");
    if (r.too_old) {
        char cut[40];
        iw_text_utc_ms(cut, r.oldest_ms);
        printf("skipped %" PRId64 " dead letter%s written before %s (over 90%% of "
               "redis.ledger_ttl_s, %" PRId64 " s, ago) or with no timestamp: the ledger may no "
               "longer hold a newer version of %s invoice, which %s would overwrite; produce "
               "an event again by hand only when it is still its invoice's newest\n",
               r.too_old, r.too_old == 1 ? "" : "s", cut, r.ttl_s, r.too_old == 1 ? "its" : "their",
               r.too_old == 1 ? "it" : "they");
    }
    if (not_sent > 0)
        fprintf(stderr, "replay: %ld of %" PRId64 " chosen dead letters were not delivered%s\n",
                not_sent, r.chosen,
                r.unsent_named > NAMED_MAX ? " (the first 20 refused by Kafka are named above)"
                                           : "");
    rc = read_rc == 0 && not_sent == 0 ? 0 : 1;
out:
    if (r.consumer) {
        rd_kafka_consumer_close(r.consumer);
        rd_kafka_destroy(r.consumer);
    }
    if (r.producer)
        rd_kafka_destroy(r.producer);
    free(r.end);
    free(r.done);
    seen_free(&r.seen);
    iw_config_free(cfg);
    return rc;
}
