/* unescape.c: decoding of character escapes, as a reader of a published text would do it (the
 * tests' own code, apart from the worker's). */
#include "unescape.h"

#include <ctype.h>
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

/* The character XML's entity at p names (&amp; &lt; &gt; &quot; &apos;), its length in *n;
 * 0 when none starts there. */
static char named_entity(const char *p, int *n)
{
    static const char *const names[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    static const char chars[] = "&<>\"'";
    for (int i = 0; i < 5; i++) {
        *n = (int)strlen(names[i]);
        if (strncmp(p, names[i], (size_t)*n) == 0)
            return chars[i];
    }
    return 0;
}

/* text with one level of escapes decoded, as a reader of a published message would decode
 * them: JSON's \uXXXX (a surrogate pair as one character), \" \\ and \/, XML's character
 * references (&#N; &#xN;) and five entities, and %XX. Malloc'd; NULL when out of memory. */
char *iw_t_unescaped_once(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = text; *p;) {
        unsigned cp, lo;
        int n = 0;
        char entity;
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
        } else if (p[0] == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], '\0'};
            *o++ = (char)strtol(hex, NULL, 16);
            p += 3;
        } else if (p[0] == '\\' && p[1] && strchr("\"\\/", p[1])) {
            *o++ = p[1];
            p += 2;
        } else if (*p == '&' && (entity = named_entity(p, &n)) != 0) {
            *o++ = entity;
            p += n;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}
