/* unescape.c: decoding of character escapes, as a reader of a published text would do it (the
 * tests' own code, apart from the worker's). */
#include "unescape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends code point cp to o as UTF-8 (enough for the decoding below; surrogates as they are). */
static char *utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* text with one level of JSON \uXXXX escapes (a surrogate pair as one character) and XML
 * character references (&#N; &#xN;) decoded, as a reader of a published message would decode
 * them. Malloc'd; NULL when out of memory. */
char *iw_t_unescaped_once(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = text; *p;) {
        unsigned cp, lo;
        int n = 0;
        if (sscanf(p, "\\u%4x%n", &cp, &n) == 1 && n == 6) {
            p += 6;
            if (cp >= 0xD800 && cp < 0xDC00 && sscanf(p, "\\u%4x%n", &lo, &n) == 1 && n == 6 &&
                lo >= 0xDC00 && lo < 0xE000) {
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o = utf8_put(o, cp);
        } else if ((sscanf(p, "&#x%x;%n", &cp, &n) == 1 || sscanf(p, "&#X%x;%n", &cp, &n) == 1 ||
                    sscanf(p, "&#%u;%n", &cp, &n) == 1) &&
                   n > 0 && cp <= 0x10FFFF) {
            p += n;
            o = utf8_put(o, cp);
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}
