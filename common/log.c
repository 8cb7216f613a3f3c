/* log.c: JSON-lines logging to stderr, one write per line so lines from threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static iw_log_level min_level = IW_LOG_INFO;

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
    char line[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));
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
    ssize_t w = write(STDERR_FILENO, line, at);
    (void)w;
}
