/* text.h: rules for text that crosses a trust boundary: W3C traceparent values, header and URL
 * values, and names that end up in results, logs and metric labels. */
#ifndef IW_TEXT_H
#define IW_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s (len bytes) is a W3C trace-context traceparent this worker forwards:
 * "vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lowercase hex only, exactly 55
 * bytes, version not "ff", neither id all zeros. Longer values of future versions are refused
 * too: the worker forwards only what it can check. */
bool iw_text_traceparent_valid(const char *s, size_t len);

/* Copies the 32 hex trace id of a valid traceparent into out (at least 33 bytes); returns
 * false (out = "") when tp is NULL or invalid. */
bool iw_text_trace_id(const char *tp, char *out, size_t outlen);

/* Returns NULL when s may become an HTTP header value or a URL part, else a reason: it holds a
 * control character (below 0x20, or 0x7f), CR and LF included. */
const char *iw_text_header_problem(const char *s);

/* Returns NULL when s is fit to print as a name or id in results, logs and metric labels, else
 * a reason: s must be valid UTF-8 without control characters (C0, DEL, C1) and without
 * bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A..U+202E,
 * U+2066..U+2069), line/paragraph separators (U+2028, U+2029) or characters that print as
 * nothing (U+200B, U+2060, U+FEFF). */
const char *iw_text_name_problem(const char *s);

/* Decodes the UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF; a NUL ends it): returns its length and sets *cp, or returns 0 when it is malformed
 * or cut short. */
size_t iw_text_utf8_next(const unsigned char *s, uint32_t *cp);

/* Drops a UTF-8 sequence cut short at the end of s (left by a truncating snprintf). */
void iw_text_trim_cut_utf8(char *s);

/* A printf precision for s of at most max bytes that does not cut a UTF-8 sequence: use as
 * "%.*s", iw_text_utf8_prec(s, max), s. */
int iw_text_utf8_prec(const char *s, size_t max);

/* Copies at most len-1 bytes of s (n bytes, or up to a NUL) into buf as valid UTF-8, for text
 * a reply brought (a message, an error page's start): a sequence is never cut, bytes that are
 * not UTF-8 (a Latin-1 page, binary) become '?', control characters (C0, DEL, C1),
 * bidirectional formatting characters and those that print as nothing (those
 * iw_text_name_problem names) become spaces, and a
 * sequence cut short at the end of s is dropped. buf may be s. Returns the length written. */
size_t iw_text_clean_copy(char *buf, size_t len, const char *s, size_t n);

/* True when the n bytes at b look like an HTML page (a proxy's or a server's error page): after
 * white space and a byte order mark, "<!doctype" or "<html" in any case. */
bool iw_text_looks_html(const char *b, size_t n);

/* True when an XML document's root element of this name is an HTML page or a fragment of one
 * (<html>, <h1>, <body>, <p>, <title>, ...), spelled all small or all capital. */
bool iw_text_html_root(const char *name);

/* True when s is a whole number of at most 18 digits (an id a target keeps as an integer);
 * copies it without leading zeros ("007" -> "7") into buf (len bytes, more than its digits).
 * False for NULL, "", a sign, a point or anything else. */
bool iw_text_id_digits(const char *s, char *buf, size_t len);

/* Hot-path formatting without printf (a result, a log line and a request are written per call). */

/* v in decimal into out, which holds at least IW_TEXT_I64_LEN bytes; returns the length (the
 * text snprintf's "%lld" gives). */
#define IW_TEXT_I64_LEN 21
size_t iw_text_i64(char *out, int64_t v);

/* unix_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, the text strftime's "%Y-%m-%dT%H:%M:%S" and the
 * milliseconds give) into out, which holds at least IW_TEXT_UTC_LEN bytes; returns the length.
 * Instants before 1970 or after 9999 are written by gmtime_r and snprintf. */
#define IW_TEXT_UTC_LEN 40
size_t iw_text_utc_ms(char *out, int64_t unix_ms);

/* s (NULL: "") into out of size n (n > 0), cut to n - 1 bytes as snprintf's "%s" would;
 * returns the length written. */
size_t iw_text_copy(char *out, size_t n, const char *s);

/* Whether day d of month m (1-12) of year y (1-9999, proleptic Gregorian) exists: 2026-02-30
 * and 2026-04-31 do not, 2024-02-29 does. */
bool iw_text_day_exists(int y, int m, int d);

#endif
