/* log.h: one JSON object per line on stderr (ts, level, msg, then context fields). */
#ifndef IW_LOG_H
#define IW_LOG_H

typedef enum iw_log_level { IW_LOG_DEBUG = 0, IW_LOG_INFO, IW_LOG_WARN, IW_LOG_ERROR } iw_log_level;

/* Sets the lowest level written ("debug", "info", "warn", "error"); unknown names keep info. */
void iw_log_set_level(const char *name);

/* True when a line at this level would be written (skip building expensive fields). */
int iw_log_enabled(iw_log_level level);

/* Writes {"ts":..., "level":..., "msg": msg, key: value, ...}. The variadic part is pairs of
 * const char * (key, value) ending with NULL; a NULL value is skipped. Values are escaped.
 * Callers never pass secrets. The whole line is written with one write(2) (see iw_log_hold). */
void iw_log(iw_log_level level, const char *msg, ...);

/* Holds this thread's lines (on) in a buffer of at most PIPE_BUF bytes that goes out in one
 * write when full, on iw_log_flush, on a warn or error line, at exit, and when holding is
 * switched off. A busy loop writes one system call per dozen lines instead of one per line;
 * a write of whole lines no larger than PIPE_BUF still never interleaves with another thread's.
 * The loop flushes before every wait, so a line is late by one turn at most. */
void iw_log_hold(int on);

/* Writes what this thread holds. */
void iw_log_flush(void);

#endif
