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

/* Appends s JSON-escaped; stops quietly when the line is full. */
static size_t put_escaped(char *buf, size_t at, size_t cap, const char *s)
{
    for (; *s && at + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c == '\n') {
            buf[at++] = '\\';
            buf[at++] = 'n';
        } else if (c < 0x20) {
            at += (size_t)snprintf(buf + at, cap - at, "\\u%04x", c);
        } else {
            buf[at++] = (char)c;
        }
    }
    return at;
}

static size_t put_raw(char *buf, size_t at, size_t cap, const char *s)
{
    size_t l = strlen(s);
    if (at + l + 4 >= cap)
        return at;
    memcpy(buf + at, s, l);
    return at + l;
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
    size_t at = 0, cap = sizeof(line);
    at = put_raw(line, at, cap, "{\"ts\":\"");
    at = put_raw(line, at, cap, ts);
    at = put_raw(line, at, cap, "\",\"level\":\"");
    at = put_raw(line, at, cap, names[level]);
    at = put_raw(line, at, cap, "\",\"msg\":\"");
    at = put_escaped(line, at, cap, msg);
    at = put_raw(line, at, cap, "\"");
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (!v)
            continue;
        at = put_raw(line, at, cap, ",\"");
        at = put_escaped(line, at, cap, k);
        at = put_raw(line, at, cap, "\":\"");
        at = put_escaped(line, at, cap, v);
        at = put_raw(line, at, cap, "\"");
    }
    va_end(ap);
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
