/* text.c: rules for text that crosses a trust boundary (traceparent, header values, names). */
#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

bool iw_text_traceparent_valid(const char *s, size_t len)
{
    /* 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 (W3C trace-context level 1, section 3.2) */
    if (!s || len != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (!lower_hex(s, 2) || !lower_hex(s + 3, 32) || !lower_hex(s + 36, 16) ||
        !lower_hex(s + 53, 2))
        return false;
    if (memcmp(s, "ff", 2) == 0)
        return false; /* forbidden version */
    return !all_zero(s + 3, 32) && !all_zero(s + 36, 16);
}

bool iw_text_trace_id(const char *tp, char *out, size_t outlen)
{
    if (outlen)
        out[0] = '\0';
    if (!tp || outlen < 33 || !iw_text_traceparent_valid(tp, strlen(tp)))
        return false;
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
    return true;
}

const char *iw_text_header_problem(const char *s)
{
    if (!s)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    while (*p >= 0x20 && *p != 0x7f) /* one test per plain byte; the NUL stops it too */
        p++;
    if (*p == '\r' || *p == '\n')
        return "contains a line break (CR or LF)";
    return *p ? "contains a control character" : NULL;
}

size_t iw_text_utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char b = s[0];
    size_t n;
    uint32_t c, min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if ((b & 0xE0) == 0xC0) {
        n = 2, c = b & 0x1Fu, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        n = 3, c = b & 0x0Fu, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        n = 4, c = b & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        c = (c << 6) | (s[k] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

static bool is_separator(uint32_t c)
{
    return c == 0x2028 || c == 0x2029;
}

static bool is_bidi(uint32_t c)
{
    return c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2066 && c <= 0x2069) || is_separator(c);
}

/* Characters that print as nothing: "webhook" + U+200B reads as "webhook" in a log line. (The
 * zero-width joiner and non-joiner are not among them: Persian and Indic text, and emoji, need
 * them, and they join or part the characters around them.) */
static bool is_invisible(uint32_t c)
{
    return c == 0x200B || c == 0x2060 || c == 0xFEFF;
}

const char *iw_text_name_problem(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        if (*p >= 0x20 && *p < 0x7f) { /* printable ASCII, the usual case */
            p++;
            continue;
        }
        uint32_t c = 0;
        size_t n = iw_text_utf8_next(p, &c);
        if (n == 0)
            return "is not valid UTF-8";
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f))
            return "contains a control character";
        if (is_separator(c))
            return "contains a line or paragraph separator (U+2028 or U+2029)";
        if (is_bidi(c))
            return "contains a bidirectional formatting character";
        if (is_invisible(c))
            return "contains an invisible character (U+200B, U+2060 or U+FEFF)";
        p += n;
    }
    return NULL;
}

void iw_text_trim_cut_utf8(char *s)
{
    size_t n = strlen(s), k = n;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
        k--;
    if (k == 0 || (unsigned char)s[k - 1] < 0xC0)
        return;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (k - 1) < need)
        s[k - 1] = '\0';
}

int iw_text_utf8_prec(const char *s, size_t max)
{
    size_t l = strnlen(s, max);
    if (l == max) /* s goes on: s[l] exists; step back to the start of its character */
        while (l > 0 && ((unsigned char)s[l] & 0xC0) == 0x80)
            l--;
    return (int)l;
}

/* ---- hot-path formatting ---- */

size_t iw_text_i64(char *out, int64_t v)
{
    char tmp[IW_TEXT_I64_LEN];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

static char *two_digits(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

size_t iw_text_utc_ms(char *out, int64_t unix_ms)
{
    /* 253402300800000: 10000-01-01T00:00:00Z */
    if (unix_ms < 0 || unix_ms >= 253402300800000LL) {
        time_t secs = (time_t)(unix_ms / 1000 - (unix_ms % 1000 < 0));
        int ms = (int)(unix_ms % 1000 + (unix_ms % 1000 < 0 ? 1000 : 0));
        struct tm tm;
        if (!gmtime_r(&secs, &tm)) {
            out[0] = '\0';
            return 0;
        }
        size_t n = strftime(out, IW_TEXT_UTC_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
        int m = snprintf(out + n, IW_TEXT_UTC_LEN - n, ".%03dZ", ms);
        return m < 0 ? n : n + (size_t)m;
    }
    int64_t secs = unix_ms / 1000;
    unsigned ms = (unsigned)(unix_ms % 1000);
    int64_t days = secs / 86400;
    unsigned rem = (unsigned)(secs % 86400);
    /* days since 1970-01-01 to a civil date (H. Hinnant's algorithm, days >= 0 here) */
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    unsigned y = (unsigned)(yoe + era * 400) + (m <= 2);
    char *p = out;
    p = two_digits(p, y / 100);
    p = two_digits(p, y % 100);
    *p++ = '-';
    p = two_digits(p, m);
    *p++ = '-';
    p = two_digits(p, d);
    *p++ = 'T';
    p = two_digits(p, rem / 3600);
    *p++ = ':';
    p = two_digits(p, rem / 60 % 60);
    *p++ = ':';
    p = two_digits(p, rem % 60);
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    p = two_digits(p, ms % 100);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - out);
}

size_t iw_text_copy(char *out, size_t n, const char *s)
{
    size_t len = s ? strnlen(s, n - 1) : 0;
    if (len)
        memcpy(out, s, len);
    out[len] = '\0';
    return len;
}

/* ---- text from a reply ---- */

/* Length of the well-formed UTF-8 sequence at s (n bytes available), 0 when there is none;
 * *need gets the length its first byte announces. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *need)
{
    unsigned c = s[0], min;
    size_t k;
    *need = 1;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        k = 2, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0)
        k = 3, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0)
        k = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    *need = k;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    return c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) ? 0 : k;
}

size_t iw_text_clean_copy(char *buf, size_t len, const char *s, size_t n)
{
    size_t o = 0;
    if (len == 0)
        return 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && u[i] != '\0';) {
        size_t need, k = utf8_seq(u + i, n - i, &need);
        if (k == 0 && n - i < need) {
            size_t j = i + 1;
            while (j < n && (u[j] & 0xC0) == 0x80)
                j++;
            if (j == n)
                break; /* the text was cut inside its last character */
        }
        if (o + (k ? k : 1) >= len)
            break;
        if (k == 0) {
            buf[o++] = '?';
            i++;
        } else if (k == 1) {
            buf[o++] = u[i] < 0x20 || u[i] == 0x7f ? ' ' : (char)u[i];
            i++;
        } else {
            uint32_t c = 0;
            iw_text_utf8_next(u + i, &c);
            if (c <= 0x9f || is_bidi(c) || is_invisible(c)) { /* a C1 control, bidirectional
                                                               * formatting, or invisible */
                buf[o++] = ' ';
            } else {
                memmove(buf + o, u + i, k);
                o += k;
            }
            i += k;
        }
    }
    buf[o] = '\0';
    return o;
}

bool iw_text_id_digits(const char *s, char *buf, size_t len)
{
    if (!s || !*s)
        return false;
    while (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
        s++;
    size_t n = strspn(s, "0123456789");
    if (s[n] != '\0' || n > 18 || n >= len)
        return false;
    memcpy(buf, s, n + 1);
    return true;
}

bool iw_text_looks_html(const char *b, size_t n)
{
    while (n > 0 &&
           (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n' || *b == '\f' || *b == '\v'))
        b++, n--;
    if (n >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) /* a byte order mark */
        b += 3, n -= 3;
    return (n >= 9 && strncasecmp(b, "<!doctype", 9) == 0) ||
           (n >= 5 && strncasecmp(b, "<html", 5) == 0);
}

bool iw_text_html_root(const char *name)
{
    /* what a proxy or a load balancer answers with (review 99: <h1>Service Unavailable</h1>
     * under a 200 was taken for a refusal); HTML's case, all small or all capital, so that an
     * XML <Title> or <Body> is not one (review 104) */
    static const char *const tags[] = {
        "html",    "head",   "body",   "title",     "h1",   "h2",       "h3",     "h4",
        "h5",      "h6",     "p",      "div",       "pre",  "center",   "hr",     "meta",
        "style",   "span",   "b",      "i",         "em",   "strong",   "font",   "br",
        "a",       "table",  "ul",     "ol",        "dl",   "address",  "main",   "section",
        "article", "header", "footer", "nav",       "form", "noscript", "script", "img",
        "iframe",  "small",  "code",   "blockquote"};
    bool lower = true, upper = true;
    for (const char *c = name; *c; c++)
        lower &= !(*c >= 'A' && *c <= 'Z'), upper &= !(*c >= 'a' && *c <= 'z');
    for (size_t i = 0; (lower || upper) && i < sizeof(tags) / sizeof(tags[0]); i++)
        if (strcasecmp(name, tags[i]) == 0)
            return true;
    return false;
}

bool iw_text_day_exists(int y, int m, int d)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}
