/* fuzz_utf8.h: a strict UTF-8 check the fuzzers use on every message they get back. */
#ifndef IW_FUZZ_UTF8_H
#define IW_FUZZ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when s holds a NUL within cap bytes and everything before it is well-formed UTF-8
 * (no overlongs, no surrogates, nothing above U+10FFFF). */
static inline bool iw_fuzz_utf8_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        return false;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t k;
        unsigned min;
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
        if ((size_t)(end - p) <= k)
            return false;
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

/* Aborts (a finding) with the broken property and the text involved, printed escaped. */
static inline void iw_fuzz_fail(const char *what, const char *text, size_t cap)
{
    fprintf(stderr, "fuzz property broken: %s\n", what);
    if (text) {
        fprintf(stderr, "  text: \"");
        for (size_t i = 0; i < cap && text[i]; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c >= 0x20 && c < 0x7f && c != '\\')
                fputc(c, stderr);
            else
                fprintf(stderr, "\\x%02x", c);
        }
        fprintf(stderr, "\"\n");
    }
    abort();
}

/* Aborts unless text is NUL-terminated UTF-8 within cap bytes. */
#define IW_FUZZ_REQUIRE_UTF8(what, text, cap)                                                      \
    do {                                                                                           \
        if (!iw_fuzz_utf8_ok((text), (cap)))                                                       \
            iw_fuzz_fail(what " is not NUL-terminated UTF-8", (text), (cap));                      \
    } while (0)

#endif
