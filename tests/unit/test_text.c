/* test_text.c: the rules for text that crosses a trust boundary (common/text.c) and the last
 * check of a rendered request (worker/wire.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "target.h"
#include "text.h"
#include "wire.h"

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool tp(const char *s)
{
    return iw_text_traceparent_valid(s, strlen(s));
}

Test(text, traceparent_accepts_the_w3c_example)
{
    cr_assert(tp(TP_OK));
    cr_assert(tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
}

/* Issue 11, item 1: the header value that made targets receive X-Evil and a third
 * Authorization header. */
Test(text, traceparent_refuses_header_injection)
{
    cr_assert_not(tp(TP_OK "\r\nX-Evil: 1\r\nAuthorization: Bearer attacker"));
    cr_assert_not(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\n"));
    cr_assert_not(iw_text_traceparent_valid(TP_OK "\0X", sizeof(TP_OK) + 1));
}

Test(text, traceparent_refuses_every_malformed_shape)
{
    cr_assert_not(tp(""));
    cr_assert_not(tp("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));  /* upper case */
    cr_assert_not(tp("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));  /* zero trace */
    cr_assert_not(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));  /* zero parent */
    cr_assert_not(tp("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));  /* version ff */
    cr_assert_not(tp("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));   /* 31 hex */
    cr_assert_not(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011")); /* long */
    cr_assert_not(tp("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"));
    cr_assert_not(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01")); /* not hex */
    cr_assert_not(iw_text_traceparent_valid(NULL, 55));
}

Test(text, trace_id_only_from_a_valid_traceparent)
{
    char id[40];
    cr_assert(iw_text_trace_id(TP_OK, id, sizeof(id)));
    cr_assert_str_eq(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_not(iw_text_trace_id(TP_OK "\r\nX-Evil: 1", id, sizeof(id)));
    cr_assert_str_eq(id, "");
    cr_assert_not(iw_text_trace_id(NULL, id, sizeof(id)));
}

Test(text, header_values_refuse_line_breaks_and_controls)
{
    cr_assert_null(iw_text_header_problem("Bearer abc.DEF-123_~+/="));
    cr_assert_null(iw_text_header_problem("\"http://www.centra.com/webservices/Invoices_Update\""));
    cr_assert_not_null(iw_text_header_problem("abc\r\nX-Evil: 1"));
    cr_assert_not_null(iw_text_header_problem("abc\n"));
    cr_assert_not_null(iw_text_header_problem("a\tb"));
    cr_assert_not_null(iw_text_header_problem("a\x7f"));
    cr_assert_not_null(iw_text_header_problem("a\x01"));
    cr_assert_null(iw_text_header_problem(NULL));
    /* every byte, alone and after others: CR and LF are line breaks, the rest below 0x20 and DEL
     * controls, everything else (UTF-8 bytes included) passes */
    for (int b = 1; b < 256; b++) {
        char t[8] = {'a', 'b', (char)b, 'c', '\0'};
        const char *why = iw_text_header_problem(t);
        if (b == '\r' || b == '\n')
            cr_assert(why && strstr(why, "line break"), "byte %d: %s", b, why);
        else if (b < 0x20 || b == 0x7f)
            cr_assert(why && strstr(why, "control"), "byte %d: %s", b, why);
        else
            cr_assert_null(why, "byte %d: %s", b, why);
    }
    cr_assert_str_eq(iw_text_header_problem("a\x01\r"), "contains a control character");
    cr_assert_str_eq(iw_text_header_problem("a\n\x01"), "contains a line break (CR or LF)");
}

/* Issue 11, item 7: names from events with control or bidi characters. */
Test(text, names_refuse_controls_and_bidi_formatting)
{
    cr_assert_null(iw_text_name_problem("centra_soap"));
    cr_assert_null(iw_text_name_problem("Zo\xc3\xab M\xc3\xbcller")); /* Zoë Müller */
    cr_assert_not_null(iw_text_name_problem("ix\xe2\x80\xae"
                                            "pos")); /* U+202E RLO */
    cr_assert_not_null(iw_text_name_problem("a\xe2\x81\xa6"
                                            "b"));             /* U+2066 LRI */
    cr_assert_not_null(iw_text_name_problem("a\xe2\x80\x8f")); /* U+200F RLM */
    cr_assert_not_null(iw_text_name_problem("a\xd8\x9c"));     /* U+061C ALM */
    cr_assert_not_null(iw_text_name_problem("a\xe2\x80\xa8"
                                            "b")); /* U+2028 */
    cr_assert_not_null(iw_text_name_problem("a\xc2\x85"
                                            "b"));           /* U+0085 NEL (C1) */
    cr_assert_not_null(iw_text_name_problem("\x1b[31mred")); /* ESC */
    cr_assert_not_null(iw_text_name_problem("a\nb"));
    cr_assert_not_null(iw_text_name_problem("a\xff"));    /* not UTF-8 */
    cr_assert_not_null(iw_text_name_problem("\xc0\xaf")); /* overlong */
}

static iw_request req_with(const char *url, const char *name, const char *value)
{
    iw_request r;
    memset(&r, 0, sizeof(r));
    snprintf(r.method, sizeof(r.method), "POST");
    r.url = strdup(url);
    cr_assert_eq(iw_request_add_header(&r, "Content-Type", "text/xml"), 0);
    cr_assert_eq(iw_request_add_header(&r, name, value), 0);
    return r;
}

Test(wire, a_clean_request_passes)
{
    char err[256];
    iw_request r = req_with("http://127.0.0.1:1/api?x=1", "traceparent", TP_OK);
    cr_assert_eq(iw_wire_check(&r, err, sizeof(err)), 0);
    iw_request_clear(&r);
}

Test(wire, header_injection_is_refused_without_echoing_the_value)
{
    char err[256];
    iw_request r = req_with("http://127.0.0.1:1/api", "traceparent",
                            TP_OK "\r\nAuthorization: Bearer attacker");
    cr_assert_neq(iw_wire_check(&r, err, sizeof(err)), 0);
    cr_assert(strstr(err, "traceparent"), "%s", err);
    cr_assert_null(strstr(err, "attacker"), "%s", err);
    iw_request_clear(&r);

    r = req_with("http://127.0.0.1:1/api", "X-Evil: 1\r\nY", "v");
    cr_assert_neq(iw_wire_check(&r, err, sizeof(err)), 0);
    iw_request_clear(&r);

    r = req_with("http://127.0.0.1:1/api\r\nHost: evil", "A", "v");
    cr_assert_neq(iw_wire_check(&r, err, sizeof(err)), 0);
    cr_assert(strstr(err, "URL"), "%s", err);
    iw_request_clear(&r);

    r = req_with("http://127.0.0.1:1/a b", "A", "v");
    cr_assert_neq(iw_wire_check(&r, err, sizeof(err)), 0);
    iw_request_clear(&r);
}

/* ---- hot-path formatting, judged by libc's snprintf, gmtime_r and strftime ---- */

static void libc_utc_ms(int64_t ms, char *out, size_t n)
{
    time_t s = (time_t)(ms / 1000 - (ms % 1000 < 0));
    int frac = (int)(ms % 1000 + (ms % 1000 < 0 ? 1000 : 0));
    struct tm tm;
    cr_assert_not_null(gmtime_r(&s, &tm));
    size_t l = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + l, n - l, ".%03dZ", frac);
}

Test(format, i64_writes_what_snprintf_writes)
{
    int64_t fixed[] = {0,
                       1,
                       -1,
                       9,
                       10,
                       99,
                       100,
                       -10,
                       1234567890123LL,
                       INT64_MAX,
                       INT64_MIN,
                       INT64_MIN + 1,
                       4294967296LL,
                       -4294967296LL};
    char got[IW_TEXT_I64_LEN], want[32];
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        size_t n = iw_text_i64(got, fixed[i]);
        snprintf(want, sizeof(want), "%lld", (long long)fixed[i]);
        cr_assert_str_eq(got, want);
        cr_assert_eq(n, strlen(want));
    }
    uint64_t x = 0x9E3779B97F4A7C15ULL; /* xorshift, fixed seed */
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t v = (int64_t)(x >> (x % 64));
        if (x & 1)
            v = -v;
        iw_text_i64(got, v);
        snprintf(want, sizeof(want), "%lld", (long long)v);
        cr_assert_str_eq(got, want, "value %lld", (long long)v);
    }
}

Test(format, utc_ms_writes_what_strftime_writes)
{
    int64_t fixed[] = {0,
                       999,
                       1000,
                       86399999,
                       86400000,
                       951782400000LL,    /* 2000-02-29 */
                       951868800000LL,    /* 2000-03-01 */
                       4107456000000LL,   /* 2100-02-28 */
                       4107542400000LL,   /* 2100-03-01 */
                       1795255200000LL,   /* 2026-11-21T10:00:00Z */
                       253402300799999LL, /* 9999-12-31T23:59:59.999Z, the last fast one */
                       253402300800000LL, /* year 10000: written by libc */
                       -1,
                       -1000,
                       -86400001};
    char got[IW_TEXT_UTC_LEN], want[64];
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        size_t n = iw_text_utc_ms(got, fixed[i]);
        libc_utc_ms(fixed[i], want, sizeof(want));
        cr_assert_str_eq(got, want, "ms %lld", (long long)fixed[i]);
        cr_assert_eq(n, strlen(want));
    }
    cr_assert_str_eq((iw_text_utc_ms(got, 1795255200123LL), got), "2026-11-21T10:00:00.123Z");
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300800000ULL);
        iw_text_utc_ms(got, ms);
        libc_utc_ms(ms, want, sizeof(want));
        cr_assert_str_eq(got, want, "ms %lld", (long long)ms);
    }
}

Test(format, copy_cuts_as_snprintf_does)
{
    char got[8], want[8];
    const char *in[] = {"", "abc", "abcdefg", "abcdefgh", "abcdefghijkl", NULL};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        size_t n = iw_text_copy(got, sizeof(got), in[i]);
        snprintf(want, sizeof(want), "%s", in[i] ? in[i] : "");
        cr_assert_str_eq(got, want);
        cr_assert_eq(n, strlen(want));
    }
    cr_assert_eq(iw_text_copy(got, 1, "abc"), 0);
    cr_assert_str_eq(got, "");
}

/* ---- reply text: one clean-up for every adapter ---- */

static const char *clean(const char *s, size_t n, size_t len)
{
    static char buf[64];
    size_t w = iw_text_clean_copy(buf, len, s, n);
    cr_assert_eq(w, strlen(buf));
    return buf;
}

Test(reply_text, clean_copy_keeps_utf8_and_replaces_what_is_not)
{
    cr_assert_str_eq(clean("plain", 5, 64), "plain");
    cr_assert_str_eq(clean("a\tb\r\nc\x7f", 7, 64), "a b  c ");
    cr_assert_str_eq(clean("caf\xe9 au lait", 12, 64), "caf? au lait"); /* Latin-1 */
    cr_assert_str_eq(clean("\xc0\xaf", 2, 64), "??");                   /* overlong '/' */
    cr_assert_str_eq(clean("\xed\xa0\x80", 3, 64), "???");              /* a surrogate */
    cr_assert_str_eq(clean("\xf4\x90\x80\x80", 4, 64), "????");         /* past U+10FFFF */
    cr_assert_str_eq(clean("\xe2\x82\xac 5", 5, 64), "\xe2\x82\xac 5"); /* the euro sign */
    cr_assert_str_eq(clean("ok\0hidden", 9, 64), "ok");                 /* a NUL ends it */
    cr_assert_str_eq(clean("a\xc2\x85"
                           "b\xc2\x9f"
                           "c\xc2\xa0",
                           9, 64),
                     "a b c\xc2\xa0"); /* C1 */
    cr_assert_str_eq(clean("\xe2\x80\xae"
                           "1\xd8\x9c"
                           "2\xe2\x81\xa9"
                           "3\xe2\x80\xa8",
                           14, 64),
                     " 1 2 3 "); /* U+202E, U+061C, U+2069, U+2028: bidirectional formatting */
    /* review 95: what prints as nothing, so a quoted "kg" + U+200B does not read as "kg"; the
     * zero-width joiner stays (emoji and Indic text need it) */
    cr_assert_str_eq(clean("kg\xe2\x80\x8b"
                           "1\xe2\x81\xa0"
                           "2\xef\xbb\xbf"
                           "3\xe2\x80\x8d",
                           17, 64),
                     "kg 1 2 3\xe2\x80\x8d");
}

Test(reply_text, clean_copy_never_cuts_a_sequence)
{
    cr_assert_str_eq(clean("ab\xe2\x82", 4, 64), "ab"); /* the text ends inside one */
    cr_assert_str_eq(clean("a\xe2"
                           "A",
                           3, 64),
                     "a?A");                               /* a lead byte, then no tail */
    cr_assert_str_eq(clean("ab\xe2\x82\xac", 5, 5), "ab"); /* the buffer ends inside one */
    cr_assert_str_eq(clean("ab\xe2\x82\xac", 5, 6), "ab\xe2\x82\xac");
    cr_assert_str_eq(clean("abcdef", 6, 4), "abc");
    cr_assert_str_eq(clean("abc", 3, 1), "");
}

Test(reply_text, clean_copy_works_in_place)
{
    char buf[16] = "x\x01y\xffz";
    iw_text_clean_copy(buf, sizeof(buf), buf, strlen(buf));
    cr_assert_str_eq(buf, "x y?z");
}

Test(reply_text, id_digits_is_a_whole_number_of_at_most_18_digits)
{
    char buf[32];
    cr_assert(iw_text_id_digits("42", buf, sizeof(buf)));
    cr_assert_str_eq(buf, "42");
    cr_assert(iw_text_id_digits("007", buf, sizeof(buf)));
    cr_assert_str_eq(buf, "7");
    cr_assert(iw_text_id_digits("000", buf, sizeof(buf)));
    cr_assert_str_eq(buf, "0");
    cr_assert(iw_text_id_digits("123456789012345678", buf, sizeof(buf)));
    cr_assert(iw_text_id_digits("0000123456789012345678", buf, sizeof(buf)));
    cr_assert_str_eq(buf, "123456789012345678");
    const char *bad[] = {
        NULL,  "",        "1234567890123456789", "-1", "+1", "1.0", "1e3", " 1", "1 ",
        "0x1", "\xd9\xa1" /* ARABIC-INDIC DIGIT ONE */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(iw_text_id_digits(bad[i], buf, sizeof(buf)), "%zu", i);
    cr_assert_not(iw_text_id_digits("12345", buf, 5)); /* no room for its NUL */
}

Test(reply_text, an_html_page_is_told_by_its_start)
{
    cr_assert(iw_text_looks_html("<!DOCTYPE html><html>", 21));
    cr_assert(iw_text_looks_html(" \r\n\t<HTML><body>502</body>", 26));
    cr_assert(iw_text_looks_html("<html", 5));
    cr_assert_not(iw_text_looks_html("<htm", 4));
    cr_assert_not(iw_text_looks_html("<?xml version=\"1.0\"?><html/>", 28));
    cr_assert_not(iw_text_looks_html("{\"html\": 1}", 11));
    cr_assert_not(iw_text_looks_html("", 0));
    cr_assert(iw_text_looks_html("\xEF\xBB\xBF<!DOCTYPE html>", 18));
    /* a fragment is told by its parsed root, not its bytes (review 104: a declaration before
     * it changed the answer) */
    cr_assert_not(iw_text_looks_html("<h1>Service Unavailable</h1>", 28));
}

/* Review 99: a proxy's <h1>Service Unavailable</h1> under a 200 was taken for a refusal. */
Test(reply_text, an_html_root_is_told_in_html_case_only)
{
    static const char *const page[] = {"h1",    "H1",     "body",  "BODY", "title",  "p",
                                       "html",  "HTML",   "h5",    "h6",   "strong", "a",
                                       "TABLE", "script", "center"}; /* review 105: h5 on */
    for (size_t i = 0; i < sizeof(page) / sizeof(page[0]); i++)
        cr_assert(iw_text_html_root(page[i]), "%s", page[i]);
    static const char *const xml[] = {"Title",    "Body",        "hTml", "string", "invoice",
                                      "headline", "pre_invoice", "",     "h"};
    for (size_t i = 0; i < sizeof(xml) / sizeof(xml[0]); i++)
        cr_assert_not(iw_text_html_root(xml[i]), "%s", xml[i]);
}

Test(text, a_day_exists_only_in_its_month)
{
    cr_assert(iw_text_day_exists(2026, 1, 31));
    cr_assert(iw_text_day_exists(2024, 2, 29), "a leap year");
    cr_assert(iw_text_day_exists(2000, 2, 29), "divisible by 400");
    cr_assert(iw_text_day_exists(1, 1, 1));
    cr_assert(iw_text_day_exists(9999, 12, 31));
    cr_assert_not(iw_text_day_exists(2026, 2, 29));
    cr_assert_not(iw_text_day_exists(1900, 2, 29), "divisible by 100");
    cr_assert_not(iw_text_day_exists(2026, 2, 31));
    cr_assert_not(iw_text_day_exists(2026, 4, 31));
    cr_assert_not(iw_text_day_exists(2026, 13, 1));
    cr_assert_not(iw_text_day_exists(2026, 0, 1));
    cr_assert_not(iw_text_day_exists(2026, 1, 0));
    cr_assert_not(iw_text_day_exists(0, 1, 1));
    cr_assert_not(iw_text_day_exists(10000, 1, 1));
}
