/* testdata.h: fixture loading and checks shared by the Criterion suites (header-only, since
 * the helpers assert with Criterion and the support library is also linked into programs). */
#ifndef IW_TESTDATA_H
#define IW_TESTDATA_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docpaths.h"
#include "invoice.h"
#include "target.h"

#ifndef IW_FIXTURES_DIR
#define IW_FIXTURES_DIR "tests/fixtures"
#endif

/* Reads tests/fixtures/<rel>; asserts it exists. Caller frees. */
static inline char *iw_t_fixture(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, rel);
    char *s = iw_read_file(path, len);
    cr_assert_not_null(s, "cannot read %s", path);
    return s;
}

/* Parses an event that must be valid. Caller frees with iw_event_free. */
static inline iw_event *iw_t_parse(const char *json, size_t len)
{
    iw_event *ev = NULL;
    char err[256] = "";
    int rc = iw_event_parse(json, len, &ev, err, sizeof(err));
    cr_assert_eq(rc, 0, "event does not parse: %s", err);
    return ev;
}

/* Loads and parses tests/fixtures/events/<name>. */
static inline iw_event *iw_t_load_event(const char *name)
{
    char rel[256];
    size_t len;
    snprintf(rel, sizeof(rel), "events/%s", name);
    char *json = iw_t_fixture(rel, &len);
    iw_event *ev = iw_t_parse(json, len);
    free(json);
    return ev;
}

/* A reply of status with body (NULL: none) and, when retry_after is not NULL, the header
 * *retry_after (which must outlive the reply). */
static inline iw_response iw_t_reply(long status, const char *body, const iw_header *retry_after,
                                     int64_t now_ms)
{
    iw_response r = {.status = status,
                     .headers = retry_after,
                     .n_headers = retry_after ? 1 : 0,
                     .body = body,
                     .body_len = body ? strlen(body) : 0,
                     .now_ms = now_ms};
    return r;
}

/* Replaces an owned string field (NULL clears it). */
static inline void iw_t_set_str(char **field, const char *v)
{
    free(*field);
    *field = v ? strdup(v) : NULL;
}

/* Points a string of an event at v (static text, or NULL): the event's own strings live in its
 * block and are never freed one by one. */
static inline void iw_t_set_text(char **field, const char *v)
{
    *field = (char *)v;
}

/* True when s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static inline bool iw_t_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, min;
        size_t k;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        p += k + 1;
    }
    return true;
}

/* The raw text of the next "key": value in body after *at (numbers as written), moving *at past
 * the key; scanning forward keeps a 1,000-line body linear (rescanning from the start took minutes
 * under AddressSanitizer). */
static inline bool iw_t_next_raw(const char **at, const char *key, char *buf, size_t len)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(*at, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t k = strcspn(p, ",}]");
    if (k >= len)
        return false;
    memcpy(buf, p, k);
    buf[k] = '\0';
    *at = p;
    return true;
}

/* The raw text of the n-th (0-based) "key": value in body. */
static inline bool iw_t_nth_raw(const char *body, const char *key, size_t n, char *buf, size_t len)
{
    const char *at = body;
    for (size_t i = 0; i < n; i++)
        if (!iw_t_next_raw(&at, key, buf, len))
            return false;
    return iw_t_next_raw(&at, key, buf, len);
}

#endif
