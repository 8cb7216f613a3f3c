/* test_text.c: the rules for text that crosses a trust boundary (common/text.c) and the last
 * check of a rendered request (worker/wire.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

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
