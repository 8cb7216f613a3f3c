/* log.c: JSON-lines logging to stderr; whole lines per write, so lines from threads never
 * interleave. */
#include "log.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

static iw_log_level min_level = IW_LOG_INFO;

/* A thread's held lines (iw_log_hold). */
static _Thread_local struct {
    bool on;
    size_t len;
    char buf[PIPE_BUF];
} held;

static void write_all(const char *p, size_t n)
{
    ssize_t w = write(STDERR_FILENO, p, n);
    (void)w; /* a log line that cannot be written has nowhere else to go */
}

void iw_log_flush(void)
{
    if (held.len)
        write_all(held.buf, held.len);
    held.len = 0;
}

static void flush_at_exit(void)
{
    iw_log_flush();
}

void iw_log_hold(int on)
{
    static bool registered; /* exit() runs in the thread that holds: the main loop's */
    if (on && !registered) {
        registered = true;
        atexit(flush_at_exit);
    }
    if (!on)
        iw_log_flush();
    held.on = on != 0;
}

void iw_log_set_level(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0)
            min_level = (iw_log_level)i;
}

int iw_log_enabled(iw_log_level level)
{
    return level >= min_level;
}

/* The bytes of the character at s: 1, or a UTF-8 sequence's lead and the continuation bytes
 * that follow it (at most 4), so a cut never splits a character. */
static size_t char_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1, n = 1;
    while (n < want && ((unsigned char)s[n] & 0xc0) == 0x80)
        n++;
    return n;
}

/* How many bytes JSON-escaping the character at s takes. */
static size_t escaped_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)*s;
    return c == '"' || c == '\\' || c == '\n' ? 2 : c < 0x20 ? 6 : n;
}

/* Whether JSON-escaping changes byte c: the controls (NUL among them), '"' and '\\'. */
static inline bool special(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* The length of s JSON-escaped, counted by whole characters up to stop (then stop plus at most
 * the last character's); plain ASCII, the usual byte, one at a time. */
static size_t escaped_total(const char *s, size_t stop)
{
    size_t total = 0;
    while (*s && total <= stop) {
        size_t n = (unsigned char)*s < 0x80 ? 1 : char_len(s);
        total += escaped_len(s, n);
        s += n;
    }
    return total;
}

/* Appends all of s JSON-escaped (the caller has counted that it fits): runs of plain bytes are
 * copied whole. */
static size_t put_whole(char *buf, size_t at, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        const unsigned char *q = p;
        while (!special(*q))
            q++;
        memcpy(buf + at, p, (size_t)(q - p));
        at += (size_t)(q - p);
        if (!*q)
            return at;
        if (*q == '"' || *q == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)*q;
        } else if (*q == '\n') {
            buf[at++] = '\\';
            buf[at++] = 'n';
        } else {
            at += (size_t)snprintf(buf + at, 7, "\\u%04x", *q);
        }
        p = q + 1;
    }
}

/* Appends s JSON-escaped in at most max bytes; when it does not fit, as much of it as fits
 * before "..." (whole characters only), so the line stays one valid JSON object. */
static size_t put_escaped(char *buf, size_t at, size_t max, const char *s)
{
    if (escaped_total(s, max) <= max)
        return put_whole(buf, at, s);
    size_t limit = at + (max > 3 ? max - 3 : 0);
    while (*s) {
        size_t n = char_len(s), e = escaped_len(s, n);
        if (at + e > limit)
            break;
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c == '\n') {
            buf[at++] = '\\';
            buf[at++] = 'n';
        } else if (c < 0x20) {
            at += (size_t)snprintf(buf + at, 7, "\\u%04x", c);
        } else {
            memcpy(buf + at, s, n);
            at += n;
        }
        s += n;
    }
    if (*s && max >= 3) {
        memcpy(buf + at, "...", 3);
        at += 3;
    }
    return at;
}

/* Appends s as it is (the caller's reserve makes room). */
static size_t put_raw(char *buf, size_t at, const char *s)
{
    size_t l = strlen(s);
    memcpy(buf + at, s, l);
    return at + l;
}

/* At most LOG_FIELDS key/value pairs are written; keys are the caller's short literals. */
#define LOG_FIELDS 32
#define LOG_KEY_MAX 64

/* The largest share t such that the values, each cut to t escaped bytes, fit in budget. */
static size_t fair_share(const size_t *len, size_t n, size_t budget)
{
    size_t lo = 0, hi = budget;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2, sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += len[i] < mid ? len[i] : mid;
        if (sum <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void iw_log(iw_log_level level, const char *msg, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < min_level)
        return;
    char line[PIPE_BUF]; /* a line always fits the held buffer */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char ts[IW_TEXT_UTC_LEN];
    iw_text_utc_ms(ts, (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);

    /* the fields, then what the fixed parts take: a line too long for one write gets its
     * longest values cut to a fair share, every key kept, so it stays one JSON object */
    const char *key[LOG_FIELDS], *val[LOG_FIELDS + 1];
    size_t len[LOG_FIELDS + 1], n = 0;
    size_t fixed =
        strlen("{\"ts\":\"\",\"level\":\"\",\"msg\":\"\"}\n") + strlen(ts) + strlen(names[level]);
    val[0] = msg ? msg : "";
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (!v || n == LOG_FIELDS)
            continue;
        key[n++] = k;
        val[n] = v;
        fixed += strlen(",\"\":\"\"") + escaped_total(k, LOG_KEY_MAX);
    }
    va_end(ap);
    size_t budget = fixed < sizeof(line) ? sizeof(line) - fixed : 0, total = 0;
    for (size_t i = 0; i <= n; i++)
        total += len[i] = escaped_total(val[i], budget);
    bool whole = total <= budget; /* the usual line: every value fits as it is */
    size_t share = whole ? budget : fair_share(len, n + 1, budget);

    size_t at = 0;
    at = put_raw(line, at, "{\"ts\":\"");
    at = put_raw(line, at, ts);
    at = put_raw(line, at, "\",\"level\":\"");
    at = put_raw(line, at, names[level]);
    at = put_raw(line, at, "\",\"msg\":\"");
    at = whole ? put_whole(line, at, val[0]) : put_escaped(line, at, share, val[0]);
    at = put_raw(line, at, "\"");
    for (size_t i = 0; i < n; i++) {
        at = put_raw(line, at, ",\"");
        at = put_escaped(line, at, LOG_KEY_MAX, key[i]);
        at = put_raw(line, at, "\":\"");
        at = whole ? put_whole(line, at, val[i + 1]) : put_escaped(line, at, share, val[i + 1]);
        at = put_raw(line, at, "\"");
    }
    line[at++] = '}';
    line[at++] = '\n';
    if (!held.on) {
        write_all(line, at);
        return;
    }
    if (held.len + at > sizeof(held.buf))
        iw_log_flush();
    memcpy(held.buf + held.len, line, at);
    held.len += at;
    if (level >= IW_LOG_WARN)
        iw_log_flush();
}
