/* secrets.c: the per-target secret registry: wire forms of each secret and masking through them. */
#include "secrets.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "target.h"
#include "text.h"
#include "wbuf.h"

/* Bytes in a row of a recorded form that no output may hold (the cases' `<secrets>` check). */
#define RUN 8
/* A form shorter than RUN, from SHORT_MIN bytes, is looked for whole, as it is and decoded;
 * one of 1 to 3 bytes cannot be told from ordinary text (its recorded forms are still masked). */
#define SHORT_MIN 4

struct iw_secrets {
    char **forms; /* every recorded form, distinct, each non-empty */
    size_t n;     /* forms in use */
    size_t cap;   /* slots allocated */
    /* every RUN bytes in a row of every form (as a word): an open-addressed set, 0 for a free
     * slot (a form holds no NUL), at most half full */
    uint64_t *runs;
    size_t n_runs, runs_cap;
    /* every form of SHORT_MIN to RUN - 1 bytes: it has no run, and is looked for whole */
    struct short_form {
        char b[RUN];
        size_t len;
    } * shorts;
    size_t n_shorts, shorts_cap;
    size_t shortest; /* the length of the shortest of them, 0 when none */
};

/* A growing string; ok turns false on the first allocation failure. */
typedef struct sbuf {
    char *p;    /* NUL-terminated text, NULL until the first append */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    bool ok;    /* false once an allocation failed */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (!b->ok)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 64;
        while (c < b->len + n + 1)
            c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->ok = false;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

iw_secrets *iw_secrets_new(void)
{
    return calloc(1, sizeof(iw_secrets));
}

static uint64_t run_at(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static size_t run_slot(uint64_t v, size_t cap)
{
    return (size_t)((v * 0x9E3779B97F4A7C15u) >> 32) & (cap - 1);
}

static void put_run(uint64_t *set, size_t cap, uint64_t v)
{
    size_t i = run_slot(v, cap);
    while (set[i] && set[i] != v)
        i = (i + 1) & (cap - 1);
    set[i] = v;
}

static bool has_run(const iw_secrets *s, uint64_t v)
{
    for (size_t i = run_slot(v, s->runs_cap); s->runs[i]; i = (i + 1) & (s->runs_cap - 1))
        if (s->runs[i] == v)
            return true;
    return false;
}

/* Records every RUN bytes in a row of form. 0 or IW_ENOMEM. */
static int add_runs(iw_secrets *s, const char *form)
{
    size_t len = strlen(form);
    for (size_t i = 0; i + RUN <= len; i++) {
        uint64_t v = run_at(form + i);
        if (s->runs_cap && has_run(s, v))
            continue;
        if ((s->n_runs + 1) * 2 > s->runs_cap) {
            size_t cap = s->runs_cap ? s->runs_cap * 2 : 256;
            uint64_t *set = calloc(cap, sizeof(*set));
            if (!set)
                return IW_ENOMEM;
            for (size_t k = 0; k < s->runs_cap; k++)
                if (s->runs[k])
                    put_run(set, cap, s->runs[k]);
            if (s->runs) {
                memset(s->runs, 0, s->runs_cap * sizeof(*s->runs));
                free(s->runs);
            }
            s->runs = set;
            s->runs_cap = cap;
        }
        put_run(s->runs, s->runs_cap, v);
        s->n_runs++;
    }
    return 0;
}

/* Whether text holds RUN bytes in a row of a recorded form, or a whole form of SHORT_MIN to
 * RUN - 1 bytes. */
static bool holds_a_run(const iw_secrets *s, const char *text, size_t len)
{
    for (size_t i = 0; s && s->n_runs && i + RUN <= len; i++)
        if (has_run(s, run_at(text + i)))
            return true;
    for (size_t f = 0; s && f < s->n_shorts; f++) {
        /* texts and forms are short here: memchr and memcmp cost less than memmem's set-up */
        const struct short_form *sf = &s->shorts[f];
        for (const char *p = text, *end = text + len; (size_t)(end - p) >= sf->len; p++) {
            p = memchr(p, sf->b[0], (size_t)(end - p) - sf->len + 1);
            if (!p)
                break;
            if (memcmp(p, sf->b, sf->len) == 0)
                return true;
        }
    }
    return false;
}

/* ---- decodings a reply may have applied to a secret that no recorded form has ---- */

/* The value of a hex digit, or -1. */
static int hex_value(unsigned char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* The 6-bit value of a base64 digit (standard or URL alphabet), or -1. */
static int b64_value(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z'   ? ch - 'A'
           : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
           : ch >= '0' && ch <= '9' ? ch - '0' + 52
           : ch == '+' || ch == '-' ? 62
           : ch == '/' || ch == '_' ? 63
                                    : -1;
}

/* The 5-bit value of a base32 digit (RFC 4648, either case), or -1. */
static int b32_value(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z'   ? ch - 'A'
           : ch >= 'a' && ch <= 'z' ? ch - 'a'
           : ch >= '2' && ch <= '7' ? ch - '2' + 26
                                    : -1;
}

/* Whether the digits t[0..n), each worth `bits` bits (val), hold a secret's run once decoded
 * from any of the digit offsets a byte boundary may fall on. out: room for n bytes. */
static bool digits_hold_a_run(const iw_secrets *s, const unsigned char *t, size_t n, int bits,
                              int (*val)(unsigned char), unsigned char *out)
{
    size_t offsets = bits == 4 ? 2 : bits == 6 ? 4 : 8; /* digits per whole number of bytes */
    for (size_t off = 0; off < offsets && off < n; off++) {
        size_t k = 0;
        uint32_t acc = 0;
        int have = 0;
        for (size_t i = off; i < n; i++) {
            acc = (acc << bits) | (uint32_t)val(t[i]);
            if ((have += bits) >= 8) {
                have -= 8;
                out[k++] = (unsigned char)(acc >> have);
                acc &= (1u << have) - 1;
            }
        }
        if (holds_a_run(s, (const char *)out, k))
            return true;
    }
    return false;
}

/* Writes code point cp at out as UTF-8 (a lone surrogate as its 3 bytes); its length. */
static size_t put_utf8(unsigned char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The code point of the JSON escape \uXXXX at t[i..len), or -1 when none starts there. */
static long u_escape(const unsigned char *t, size_t len, size_t i)
{
    if (i + 6 > len || t[i] != '\\' || t[i + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t k = i + 2; k < i + 6; k++) {
        int h = hex_value(t[k]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* The escape starting at t[i..len) decoded at out (never longer than the escape): %XX, a JSON
 * escape (\uXXXX, a surrogate pair as one character, \" \\ \/ \b \f \n \r \t), an XML character
 * reference (&#N; or &#xN;) or one of XML's five entities. Sets *used to the escape's length and
 * returns the bytes written; 0 when no escape starts at i. */
static size_t unescape_at(const unsigned char *t, size_t len, size_t i, unsigned char *out,
                          size_t *used)
{
    int hi, lo;
    long cp, low;
    if (t[i] == '%' && i + 2 < len && (hi = hex_value(t[i + 1])) >= 0 &&
        (lo = hex_value(t[i + 2])) >= 0) {
        *used = 3;
        out[0] = (unsigned char)(hi << 4 | lo);
        return 1;
    }
    if ((cp = u_escape(t, len, i)) >= 0) {
        *used = 6;
        if (cp >= 0xD800 && cp < 0xDC00 && (low = u_escape(t, len, i + 6)) >= 0xDC00 &&
            low < 0xE000) {
            *used = 12;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        return put_utf8(out, (uint32_t)cp);
    }
    if (t[i] == '\\' && i + 1 < len) {
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *f = memchr(from, t[i + 1], sizeof(from) - 1);
        if (!f)
            return 0;
        *used = 2;
        out[0] = (unsigned char)to[f - from];
        return 1;
    }
    if (t[i] != '&')
        return 0;
    if (i + 1 < len && t[i + 1] == '#') {
        size_t k = i + 2;
        bool x = k < len && (t[k] == 'x' || t[k] == 'X');
        k += x;
        size_t first = k;
        uint32_t v = 0;
        for (int d; k < len && (d = hex_value(t[k])) >= 0 && (x || d < 10) && v <= 0x10FFFF; k++)
            v = v * (x ? 16 : 10) + (uint32_t)d;
        if (k == first || k >= len || t[k] != ';' || v > 0x10FFFF)
            return 0;
        *used = k + 1 - i;
        return put_utf8(out, v);
    }
    static const struct {
        const char *name;
        char ch;
    } entities[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]); e++) {
        size_t n = strlen(entities[e].name);
        if (i + 1 + n <= len && memcmp(t + i + 1, entities[e].name, n) == 0) {
            *used = 1 + n;
            out[0] = (unsigned char)entities[e].ch;
            return 1;
        }
    }
    return 0;
}

/* Whether text holds a secret's run once decoded as a reply may have encoded it: its escapes
 * (%XX, JSON's, XML's: every byte escaped, say, in a CDATA section or a JSON string a SOAP fault
 * quotes), or any run of hex, base64 (either alphabet, at any alignment) or base32 digits long
 * enough to carry RUN bytes. One level of decoding: a decoded run is compared with every
 * recorded form, so the JSON escape of a secret's XML form, or the base64 of an escaped secret,
 * is found too. */
static bool decoded_holds_a_run(const iw_secrets *s, const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t room = len ? len : 1; /* no decoding is longer than what it decodes */
    /* the outcome's fields fit the stack (this runs for every attempt); zeroed: never read unset */
    unsigned char local[2 * 256] = {0};
    unsigned char *dec = 2 * room <= sizeof(local) ? local : calloc(2, room);
    if (!dec)
        return true; /* unsure is a yes */
    unsigned char *scratch = dec + room;
    bool found = false;
    size_t k = 0; /* bytes in dec: text with its escapes decoded, when it has any */
    if (memchr(text, '%', len) || memchr(text, '\\', len) || memchr(text, '&', len)) {
        for (size_t i = 0; i < len;) {
            size_t used = 1, n = unescape_at(t, len, i, dec + k, &used);
            if (!n)
                dec[k++] = t[i];
            k += n;
            i += used;
        }
        found = holds_a_run(s, (const char *)dec, k);
    }
    static const struct {
        int bits;
        int (*val)(unsigned char);
    } codes[] = {{4, hex_value}, {6, b64_value}, {5, b32_value}};
    /* digit runs of the text, and of its decoded escapes (base64 with its '/' written \/) */
    const unsigned char *srcs[2] = {t, dec};
    size_t lens[2] = {len, k && (k != len || memcmp(dec, t, len) != 0) ? k : 0};
    for (int v = 0; v < 2 && !found; v++) {
        for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]) && !found; c++) {
            size_t unit = s->shortest ? s->shortest : RUN; /* the fewest bytes to look for */
            size_t least = (unit * 8 + (size_t)codes[c].bits - 1) / (size_t)codes[c].bits;
            const unsigned char *u = srcs[v];
            for (size_t i = 0; i < lens[v] && !found;) {
                size_t j = i;
                while (j < lens[v] && codes[c].val(u[j]) >= 0)
                    j++;
                found = j - i >= least &&
                        digits_hold_a_run(s, u + i, j - i, codes[c].bits, codes[c].val, scratch);
                i = j + 1;
            }
        }
    }
    if (dec != local)
        free(dec);
    return found;
}

/* Whether text holds RUN bytes in a row of a recorded form (or a shorter form whole), as it is
 * or decoded. */
static bool holds_a_secret(const iw_secrets *s, const char *text, size_t len)
{
    return s && (s->n_runs || s->shortest) &&
           (holds_a_run(s, text, len) || decoded_holds_a_run(s, text, len));
}

/* Takes ownership of form (wiped and freed when already known). */
static int add_form(iw_secrets *s, char *form)
{
    if (!form)
        return IW_ENOMEM;
    if (!*form) {
        free(form);
        return 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->forms[i], form) == 0) {
            memset(form, 0, strlen(form));
            free(form);
            return 0;
        }
    }
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 16;
        char **f = realloc(s->forms, c * sizeof(*f));
        if (!f) {
            free(form);
            return IW_ENOMEM;
        }
        s->forms = f;
        s->cap = c;
    }
    s->forms[s->n++] = form;
    size_t fl = strlen(form);
    if (fl < SHORT_MIN || fl >= RUN)
        return add_runs(s, form);
    if (s->n_shorts == s->shorts_cap) {
        size_t c = s->shorts_cap ? s->shorts_cap * 2 : 4;
        struct short_form *f = calloc(c, sizeof(*f));
        if (!f)
            return IW_ENOMEM;
        if (s->n_shorts)
            memcpy(f, s->shorts, s->n_shorts * sizeof(*f));
        if (s->shorts)
            memset(s->shorts, 0, s->shorts_cap * sizeof(*s->shorts));
        free(s->shorts);
        s->shorts = f;
        s->shorts_cap = c;
    }
    memcpy(s->shorts[s->n_shorts].b, form, fl);
    s->shorts[s->n_shorts++].len = fl;
    if (!s->shortest || fl < s->shortest)
        s->shortest = fl;
    return 0;
}

static int add_sbuf(iw_secrets *s, sbuf *b)
{
    if (!b->ok) {
        free(b->p);
        return IW_ENOMEM;
    }
    return add_form(s, b->p ? b->p : strdup(""));
}

/* XML escaping: quotes as named or numeric entities, or left alone (text content). */
typedef enum xml_quotes { XQ_NONE, XQ_NAMED, XQ_NUMERIC } xml_quotes;

static int add_xml(iw_secrets *s, const char *v, xml_quotes q)
{
    sbuf b = {.ok = true};
    for (; *v; v++) {
        switch (*v) {
        case '&': sb_str(&b, "&amp;"); break;
        case '<': sb_str(&b, "&lt;"); break;
        case '>': sb_str(&b, "&gt;"); break;
        case '"': sb_str(&b, q == XQ_NAMED ? "&quot;" : q == XQ_NUMERIC ? "&#34;" : "\""); break;
        case '\'': sb_str(&b, q == XQ_NAMED ? "&apos;" : q == XQ_NUMERIC ? "&#39;" : "'"); break;
        case '\r': sb_str(&b, q == XQ_NONE ? "\r" : "&#13;"); break;
        case '\t': sb_str(&b, q == XQ_NONE ? "\t" : "&#9;"); break;
        case '\n': sb_str(&b, q == XQ_NONE ? "\n" : "&#10;"); break;
        default: sb_put(&b, v, 1); break;
        }
    }
    return add_sbuf(s, &b);
}

/* JSON string escaping as cJSON writes it; slash_too also writes '/' as "\/". */
static int add_json(iw_secrets *s, const char *v, bool slash_too)
{
    sbuf b = {.ok = true};
    char u[8];
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        switch (ch) {
        case '"': sb_str(&b, "\\\""); break;
        case '\\': sb_str(&b, "\\\\"); break;
        case '\b': sb_str(&b, "\\b"); break;
        case '\f': sb_str(&b, "\\f"); break;
        case '\n': sb_str(&b, "\\n"); break;
        case '\r': sb_str(&b, "\\r"); break;
        case '\t': sb_str(&b, "\\t"); break;
        case '/': sb_str(&b, slash_too ? "\\/" : "/"); break;
        default:
            if (ch < 0x20) {
                snprintf(u, sizeof(u), "\\u%04x", ch);
                sb_str(&b, u);
            } else {
                sb_put(&b, v, 1);
            }
        }
    }
    return add_sbuf(s, &b);
}

/* Percent-encoding of everything but RFC 3986 unreserved characters. */
static int add_percent(iw_secrets *s, const char *v, bool lower, bool plus)
{
    sbuf b = {.ok = true};
    char e[4];
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            sb_put(&b, v, 1);
        } else if (ch == ' ' && plus) {
            sb_str(&b, "+");
        } else {
            snprintf(e, sizeof(e), lower ? "%%%02x" : "%%%02X", ch);
            sb_str(&b, e);
        }
    }
    return add_sbuf(s, &b);
}

static int add_base64(iw_secrets *s, const char *v, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)v;
    sbuf b = {.ok = true};
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            w |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            w |= p[i + 2];
        q[0] = tab[(w >> 18) & 63];
        q[1] = tab[(w >> 12) & 63];
        q[2] = i + 1 < n ? tab[(w >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[w & 63] : '=';
        sb_put(&b, q, 4);
    }
    return add_sbuf(s, &b);
}

/* The forms the project's own writers give value (common/wbuf.c): whatever they escape, the
 * registry holds exactly what goes on the wire (the writer leaves ' alone in text, for one,
 * which none of the uniform forms above does when value also holds "). */
static int add_writer_forms(iw_secrets *s, const char *value)
{
    int rc = 0;
    for (int form = 0; form < 3 && !rc; form++) {
        iw_wbuf b = IW_WBUF_INIT;
        if (form < 2)
            iw_xml_escaped(&b, value, form == 1);
        else
            iw_json_escaped(&b, value);
        char *text = NULL;
        size_t len = 0;
        if (iw_wbuf_copy(&b, &text, &len) == 0) { /* else the writer refuses value anyway */
            if (form == 2 && len >= 2) {          /* without its quotes */
                memmove(text, text + 1, len - 2);
                text[len - 2] = '\0';
            }
            rc = add_form(s, text);
        }
        if (b.data)
            memset(b.data, 0, b.cap);
        iw_wbuf_free(&b);
    }
    return rc;
}

/* value as reply text is cleaned before it is printed (iw_text_clean_copy: controls,
 * bidirectional formatting characters): a secret holding one is masked in that form too. */
static int add_cleaned(iw_secrets *s, const char *value)
{
    size_t n = strlen(value);
    char *c = malloc(n + 1);
    if (!c)
        return IW_ENOMEM;
    iw_text_clean_copy(c, n + 1, value, n);
    return add_form(s, c); /* a form already known is wiped and dropped */
}

/* Every form of value. 0 or IW_ENOMEM. */
static int add_value(iw_secrets *s, const char *value)
{
    int rc = add_form(s, strdup(value));
    rc = rc ? rc : add_xml(s, value, XQ_NONE);
    rc = rc ? rc : add_xml(s, value, XQ_NAMED);
    rc = rc ? rc : add_xml(s, value, XQ_NUMERIC);
    rc = rc ? rc : add_writer_forms(s, value);
    rc = rc ? rc : add_cleaned(s, value);
    rc = rc ? rc : add_json(s, value, false);
    rc = rc ? rc : add_json(s, value, true);
    for (int lower = 0; !rc && lower < 2; lower++)
        for (int plus = 0; !rc && plus < 2; plus++)
            rc = add_percent(s, value, lower, plus);
    return rc ? rc : add_base64(s, value, strlen(value));
}

/* Whether value is a number written in hex, as a GUID or many API keys are: hex digits, with
 * '-' or braces between them, and a letter among them. */
static bool hex_named(const char *value)
{
    bool letter = false;
    for (const char *p = value; *p; p++) {
        if (hex_value((unsigned char)*p) < 0 && !strchr("-{}", *p))
            return false;
        letter = letter || hex_value((unsigned char)*p) > 9;
    }
    return letter;
}

int iw_secrets_add(iw_secrets *s, const char *value)
{
    if (!s || !value || !*value)
        return 0;
    int rc = add_value(s, value);
    if (rc || !hex_named(value))
        return rc;
    /* a number names the secret whatever the case of its digits, and a server may print it in
     * either (.NET writes a GUID in lower case, without braces): each case is a form of its
     * own, with and without the braces */
    size_t len = strlen(value);
    char *other = malloc(len + 1);
    if (!other)
        return IW_ENOMEM;
    bool braces = strpbrk(value, "{}") != NULL;
    for (int strip = 0; !rc && strip <= braces; strip++) {
        for (int upper = 0; !rc && upper < 2; upper++) {
            size_t n = 0;
            for (const char *p = value; *p; p++)
                if (!strip || (*p != '{' && *p != '}'))
                    other[n++] =
                        (char)(upper ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
            other[n] = '\0';
            rc = add_value(s, other);
        }
    }
    memset(other, 0, len + 1);
    free(other);
    return rc;
}

int iw_secrets_add_basic(iw_secrets *s, const char *user, const char *password)
{
    if (!s || !password || !*password)
        return 0;
    sbuf b = {.ok = true};
    sb_str(&b, user ? user : "");
    sb_str(&b, ":");
    sb_str(&b, password);
    if (!b.ok) {
        free(b.p);
        return IW_ENOMEM;
    }
    int rc = add_base64(s, b.p, b.len);
    memset(b.p, 0, b.len);
    free(b.p);
    return rc;
}

/* s[0..n) with its %XX escapes decoded, as curl decodes a URL's userinfo; malloc'd. */
static char *pct_decode(const char *s, size_t n)
{
    char *dec = malloc(n + 1);
    if (!dec)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (s[i] == '%' && i + 2 < n && sscanf(s + i + 1, "%2x", &v) == 1) {
            dec[k++] = (char)v;
            i += 2;
        } else {
            dec[k++] = s[i];
        }
    }
    dec[k] = '\0';
    return dec;
}

/* value (n bytes, as written in a URL) and its %XX-decoded form, each when it has at least min
 * bytes (review 109: ?token=%61%62%63 masked every "abc"); the decoded form's other spellings
 * follow from add_value. */
static int add_url_part(iw_secrets *s, const char *value, size_t n, size_t min)
{
    char *raw = strndup(value, n), *dec = pct_decode(value, n);
    int rc = raw && dec ? 0 : IW_ENOMEM;
    rc = rc || strlen(raw) < min ? rc : iw_secrets_add(s, raw);
    rc = rc || strlen(dec) < min ? rc : iw_secrets_add(s, dec);
    if (raw)
        memset(raw, 0, strlen(raw));
    if (dec)
        memset(dec, 0, strlen(dec));
    free(raw);
    free(dec);
    return rc;
}

/* Whether a word of a query parameter's name (n bytes, small letters or digits) is a
 * credential's: one of the words, or a compound ending in one of the endings (appkey,
 * sessiontoken, appsecret), but not an English word that ends so (monkey). */
static bool credential_word(const char *w, size_t n)
{
    /* whole words only; the endings below count alone too (key, token, sig, auth, ...) */
    static const char *const words[] = {"sign",    "pass",    "pw",  "passcode", "authorization",
                                        "session", "sid",     "jwt", "bearer",   "hmac"};
    /* plurals too: keys, api_keys (review 109) */
    static const char *const endings[] = {
        "key",       "keys",   "token",      "tokens",      "secret",     "secrets", "password",
        "passwords", "passwd", "pwd",        "signature",   "signatures", "sig",     "sigs",
        "auth",      "otp",    "credential", "credentials", "sessionid",  "sessid",  "passphrase"};
    /* English words of those endings, and their plurals (review 111: monkeys) */
    static const char *const english[] = {"monkey",  "turkey",   "hockey",   "donkey",  "whiskey",
                                          "jockey",  "lackey",   "malarkey", "monkeys", "turkeys",
                                          "donkeys", "whiskeys", "jockeys",  "lackeys"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i]) == n && memcmp(w, words[i], n) == 0)
            return true;
    for (size_t i = 0; i < sizeof(english) / sizeof(english[0]); i++)
        if (strlen(english[i]) == n && memcmp(w, english[i], n) == 0)
            return false;
    for (size_t i = 0; i < sizeof(endings) / sizeof(endings[0]); i++) {
        size_t k = strlen(endings[i]);
        if (n >= k && memcmp(w + n - k, endings[i], k) == 0)
            return true;
    }
    return false;
}

/* Whether a query parameter of this name (n bytes, as the URL writes it) carries a credential:
 * Azure Functions' code, or a name one of whose words is a credential's (credential_word).
 * The name is read %XX-decoded (api%5Fkey) and split into words at every byte that is no
 * letter or digit (user[password], x-api-key), at a small letter followed by a capital
 * (apiKey) and between letters and digits (token2). keyword, author, passage or signal name
 * nothing (review 105); appkey, auth[token] or sig2 do (review 107). */
static bool credential_name(const char *name, size_t n)
{
    if (n == 0)
        return false;
    /* a name of any length (review 109: one of 96 bytes or more was never one) */
    char *dec = pct_decode(name, n), *low = dec ? strdup(dec) : NULL;
    if (!low) {
        free(dec);
        return true; /* out of memory: mask rather than leak */
    }
    size_t len = strlen(dec);
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)dec[i]);
    bool found = strcmp(low, "code") == 0;
    for (size_t i = 0; i < len && !found;) {
        if (!isalnum((unsigned char)dec[i])) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < len && isalnum((unsigned char)dec[j]) &&
               !(isupper((unsigned char)dec[j]) && islower((unsigned char)dec[j - 1])) &&
               !isdigit((unsigned char)dec[j]) == !isdigit((unsigned char)dec[j - 1]))
            j++;
        found = credential_word(low + i, j - i);
        i = j;
    }
    free(dec);
    free(low);
    return found;
}

/* The credentials a URL carries: its userinfo's password, as written (already percent-encoded)
 * and decoded, and the Basic pair curl sends for it; a user name alone (a token given as the
 * user, review 103) likewise; and the values of its query parameters named as credentials
 * (?key=, ?api_key=, ?access_token=, ?sig=, ?code=, ...: review 103). A value under 4 bytes
 * names nothing. */
int iw_secrets_add_url(iw_secrets *s, const char *url)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p)
        return 0;
    p += 3;
    size_t auth = strcspn(p, "/?#");
    const char *at = memchr(p, '@', auth);
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    int rc = 0;
    if (colon && colon + 1 < at) {
        /* curl sends the userinfo as a Basic credential, both parts decoded */
        char *dec = pct_decode(colon + 1, (size_t)(at - colon - 1));
        char *user = pct_decode(p, (size_t)(colon - p));
        rc = dec && user ? add_url_part(s, colon + 1, (size_t)(at - colon - 1), 1) : IW_ENOMEM;
        rc = rc ? rc : iw_secrets_add_basic(s, user, dec);
        if (dec)
            memset(dec, 0, strlen(dec));
        free(dec);
        free(user);
    } else if (at && (colon ? colon : at) - p >= 4) {
        /* no password: a token given as the user, "TOKEN@" or "TOKEN:@" (review 105) */
        const char *end_user = colon ? colon : at;
        char *user = pct_decode(p, (size_t)(end_user - p));
        char *pair = user ? malloc(strlen(user) + 2) : NULL;
        rc = pair ? add_url_part(s, p, (size_t)(end_user - p), 1) : IW_ENOMEM;
        if (pair) {
            size_t n = (size_t)sprintf(pair, "%s:", user);
            rc = rc ? rc : add_base64(s, pair, n);
            memset(pair, 0, n);
        }
        free(pair);
        free(user);
    }
    const char *q = strchr(p, '?');
    size_t qlen = q ? strcspn(++q, "#") : 0;
    for (size_t i = 0; !rc && i < qlen;) {
        size_t len = strcspn(q + i, "&;#");
        if (len > qlen - i)
            len = qlen - i;
        const char *eq = memchr(q + i, '=', len);
        size_t vlen = eq ? len - (size_t)(eq + 1 - (q + i)) : 0;
        if (eq && vlen >= 4 && credential_name(q + i, (size_t)(eq - (q + i))))
            rc = add_url_part(s, eq + 1, vlen, 4);
        i += len + 1;
    }
    return rc;
}

iw_secrets *iw_secrets_for_target(const iw_target_conf *tc)
{
    iw_secrets *s = iw_secrets_new();
    if (!s)
        return NULL;
    const char *values[IW_TARGET_MAX_SECRETS];
    size_t n = iw_target_conf_secrets(tc, values, IW_TARGET_MAX_SECRETS);
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        rc = iw_secrets_add(s, values[i]);
    const iw_target_ops *ops = iw_target_find(tc->type);
    if (!rc && ops && ops->secret_forms)
        rc = ops->secret_forms(tc, s);
    rc = rc ? rc : iw_secrets_add_url(s, tc->url);
    if (rc) {
        iw_secrets_free(s);
        return NULL;
    }
    return s;
}

size_t iw_secrets_count(const iw_secrets *s)
{
    return s ? s->n : 0;
}

char *iw_secrets_mask(const iw_secrets *s, const char *text, size_t len)
{
    return iw_mask_secrets(text, len, s ? s->forms : NULL, s ? s->n : 0);
}

/* A message cut short to fit its buffer may end in the first bytes of a secret that masking
 * could not match whole: replaces such an ending (4 bytes or more) by ***. */
static void cut_secret_prefix(const iw_secrets *s, char *buf, size_t cap)
{
    size_t n = strlen(buf);
    for (size_t i = 0; i < s->n; i++) {
        size_t fl = strlen(s->forms[i]);
        for (size_t k = fl - 1 < n ? fl - 1 : n; k >= 4; k--) {
            if (memcmp(buf + n - k, s->forms[i], k) == 0) {
                n -= k;
                snprintf(buf + n, cap - n, "%s", cap - n > 3 ? "***" : "");
                n = strlen(buf);
                break;
            }
        }
    }
}

void iw_secrets_mask_inplace(const iw_secrets *s, char *buf, size_t cap)
{
    if (!s || !s->n || !cap || !buf[0])
        return;
    size_t len = strnlen(buf, cap);
    bool any = false;
    for (size_t i = 0; i < s->n && !any; i++)
        any = memmem(buf, len, s->forms[i], strlen(s->forms[i])) != NULL;
    if (!any) { /* the usual case: nothing to copy */
        cut_secret_prefix(s, buf, cap);
        return;
    }
    char *m = iw_secrets_mask(s, buf, strnlen(buf, cap));
    if (!m) {
        buf[0] = '\0';
        return;
    }
    size_t n = strlen(m);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)m[n] & 0xC0) == 0x80)
            n--; /* do not cut a character */
    }
    memcpy(buf, m, n);
    buf[n] = '\0';
    free(m);
    cut_secret_prefix(s, buf, cap);
}

void iw_secrets_free(iw_secrets *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        memset(s->forms[i], 0, strlen(s->forms[i]));
        free(s->forms[i]);
    }
    free(s->forms);
    if (s->runs)
        memset(s->runs, 0, s->runs_cap * sizeof(*s->runs));
    free(s->runs);
    if (s->shorts)
        memset(s->shorts, 0, s->shorts_cap * sizeof(*s->shorts));
    free(s->shorts);
    free(s);
}

char *iw_secrets_mask_for_target(const iw_target_conf *tc, const char *text, size_t len)
{
    if (!tc)
        return strndup(text, len);
    iw_secrets *reg = iw_secrets_for_target(tc);
    char *m = reg ? iw_secrets_mask(reg, text, len) : NULL;
    iw_secrets_free(reg);
    return m;
}

/* The registry of the classification in progress (iw_secrets_classify): the dispatcher's, with
 * every refreshed token. Outside one, iw_secrets_reply_holds makes one for the call. */
static _Thread_local const iw_secrets *classifying;

static bool holds_a_form(const iw_secrets *s, const char *body, size_t len)
{
    for (size_t k = 0; body && k < s->n; k++)
        if (memmem(body, len, s->forms[k], strlen(s->forms[k])))
            return true;
    return false;
}

bool iw_secrets_reply_holds(const iw_target_conf *tc, const char *text, size_t len)
{
    if (classifying || !tc)
        return classifying && holds_a_form(classifying, text, len);
    iw_secrets *reg = iw_secrets_for_target(tc);
    bool holds = !reg || holds_a_form(reg, text, len); /* unsure is a yes */
    iw_secrets_free(reg);
    return holds;
}

/* body (len bytes, NULs allowed) with every recorded form replaced by ***, the earliest match
 * first and the longest where two start together; *n is its length. NULL when out of memory.
 * Each form's next match is searched again only once the cursor has passed it: one pass per
 * form over the body, however many matches. */
static char *mask_body(const iw_secrets *s, const char *body, size_t len, size_t *n)
{
    /* at[k]: 0 before form k is looked for, its next match's offset + 1, SIZE_MAX once none */
    size_t *at = calloc(s->n ? s->n : 1, sizeof(*at));
    if (!at)
        return NULL;
    sbuf b = {.ok = true};
    size_t i = 0;
    for (;;) {
        size_t best = SIZE_MAX, best_len = 0;
        for (size_t k = 0; k < s->n; k++) {
            size_t fl = strlen(s->forms[k]);
            if (at[k] != SIZE_MAX && (at[k] == 0 || at[k] - 1 < i)) {
                const char *h = memmem(body + i, len - i, s->forms[k], fl);
                at[k] = h ? (size_t)(h - body) + 1 : SIZE_MAX;
            }
            if (at[k] == SIZE_MAX)
                continue;
            if (at[k] - 1 < best || (at[k] - 1 == best && fl > best_len)) {
                best = at[k] - 1;
                best_len = fl;
            }
        }
        if (best == SIZE_MAX)
            break;
        sb_put(&b, body + i, best - i);
        sb_str(&b, "***");
        i = best + best_len;
    }
    free(at);
    sb_put(&b, body + i, len - i);
    if (!b.ok) {
        free(b.p);
        return NULL;
    }
    *n = b.len;
    return b.p ? b.p : strdup("");
}

void iw_secrets_classify(const iw_secrets *s, const iw_target_ops *ops, const iw_target_conf *tc,
                         const iw_response *resp, iw_outcome *out)
{
    const iw_secrets *outer = classifying;
    classifying = s;
    iw_target_classify(ops, tc, resp, out);
    if (out->kind == IW_OUTCOME_OK || !s || !holds_a_form(s, resp->body, resp->body_len)) {
        classifying = outer;
        return;
    }
    size_t n = 0;
    char *masked = mask_body(s, resp->body, resp->body_len, &n);
    iw_outcome again;
    memset(&again, 0, sizeof(again));
    if (masked) {
        iw_response r = *resp;
        r.body = masked;
        r.body_len = n;
        iw_target_classify(ops, tc, &r, &again);
    }
    classifying = outer;
    /* the masked reading's text only where it says what the reply as it came says: the same
     * kind, error kind and code (both codes masked as they are published) */
    char first[sizeof(out->code)];
    memcpy(first, out->code, sizeof(first));
    iw_secrets_mask_inplace(s, first, sizeof(first));
    iw_secrets_mask_inplace(s, again.code, sizeof(again.code));
    if (masked && again.kind == out->kind && again.error_kind == out->error_kind &&
        strcmp(first, again.code) == 0) {
        memcpy(out->message, again.message, sizeof(out->message));
        memcpy(out->code, again.code, sizeof(out->code));
    } else { /* the reply read without its secrets says something else: say nothing of it */
        snprintf(out->message, sizeof(out->message),
                 "HTTP %ld; the reply quotes a secret of this target, so its text is withheld",
                 resp->status);
    }
    free(masked);
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

void iw_secrets_mask_outcome(const iw_secrets *s, struct iw_outcome *o)
{
    char *fields[3] = {o->message, o->code, o->target_ref};
    size_t sizes[3] = {sizeof(o->message), sizeof(o->code), sizeof(o->target_ref)};
    for (int i = 0; i < 3; i++) {
        iw_secrets_mask_inplace(s, fields[i], sizes[i]);
        if (printable_ascii(fields[i]))
            continue; /* the usual case: nothing for the clean-up to change */
        iw_text_clean_copy(fields[i], sizes[i], fields[i], strlen(fields[i]));
        iw_secrets_mask_inplace(s, fields[i], sizes[i]); /* it may complete a secret's form */
    }
    /* The last word: no field keeps RUN bytes in a row of a recorded form (nor a form shorter
     * than that, whole), however the reply
     * wrote them (a part of a secret quoted alone, UTF-16, an escape no form has) and wherever
     * a cut fell. Such a field is withheld whole: what is left of it could not be trusted. */
    if (holds_a_secret(s, o->message, strlen(o->message))) {
        int status = 0;
        bool http = sscanf(o->message, "HTTP %3d", &status) == 1 && status >= 100;
        const char *why = "the text quotes a secret of this target, so it is withheld";
        if (http) /* "HTTP nnn" stays */
            snprintf(o->message + 8, sizeof(o->message) - 8, ": %s", why);
        else
            snprintf(o->message, sizeof(o->message), "%s", why);
    }
    if (holds_a_secret(s, o->code, strlen(o->code)))
        snprintf(o->code, sizeof(o->code), "%s", "withheld");
    if (holds_a_secret(s, o->target_ref, strlen(o->target_ref)))
        o->target_ref[0] = '\0';
}
