/* test_fuzz_regressions.c: the inputs the fuzzers of tests/fuzz found, replayed: every text a
 * reply or a config can put into a message stays well-formed UTF-8, and out-of-range numbers in
 * a config are refused without undefined behaviour. */
#include <criterion/criterion.h>
#include "testdata.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "centra.h"
#include "config.h"
#include "status.h"
#include "target.h"
#include "xml.h"

static void assert_outcome_utf8(const iw_outcome *o)
{
    cr_assert(iw_t_utf8_ok(o->code), "code is not UTF-8: %s", o->code);
    cr_assert(iw_t_utf8_ok(o->message), "message is not UTF-8: %s", o->message);
    cr_assert(iw_t_utf8_ok(o->target_ref), "target_ref is not UTF-8: %s", o->target_ref);
}

static void conf(iw_target_conf *tc, const char *type)
{
    memset(tc, 0, sizeof(*tc));
    cr_assert_eq(iw_target_conf_defaults(tc, type), 0);
}

static void classify(const char *type, const iw_target_conf *tc, long status, const char *body,
                     size_t len, iw_outcome *out)
{
    const iw_target_ops *ops = iw_target_find(type);
    cr_assert_not_null(ops);
    iw_response resp = {.status = status, .body = body, .body_len = len, .now_ms = 0};
    memset(out, 0, sizeof(*out));
    iw_target_classify(ops, tc, &resp, out);
}

/* Repeats s n times into a new string. */
static char *repeat(const char *s, size_t n)
{
    size_t l = strlen(s);
    char *r = malloc(l * n + 1);
    cr_assert_not_null(r);
    for (size_t i = 0; i < n; i++)
        memcpy(r + i * l, s, l);
    r[l * n] = '\0';
    return r;
}

/* fuzz_config: {"max_response_bytes": 1e22} made get_int64 (common/config.c) convert an
 * out-of-range double to int64_t, which is undefined (UBSan: "outside the range of
 * representable values"); "1e999" parses as infinity and did the same. */
Test(fuzz_regressions, config_huge_number_is_refused)
{
    const char *values[] = {"1e22", "1e999", "-1e999", "9.3e18", "-9.3e18"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"targets\": {\"c\": {\"type\": \"centra_soap\", \"max_response_bytes\": %s}}}",
                 values[i]);
        iw_config_errors e;
        memset(&e, 0, sizeof(e));
        iw_config *c = iw_config_parse(json, NULL, &e);
        cr_assert_null(c, "%s was accepted", values[i]);
        cr_assert_eq(e.count, 1, "%s: %zu problems", values[i], e.count);
        cr_assert_str_eq(e.items[0].path, "targets.c.max_response_bytes");
        cr_assert(strstr(e.items[0].message, "integer") || strstr(e.items[0].message, "between"),
                  "%s: %s", values[i], e.items[0].message);
    }
}

/* fuzz_xml: iw_xml_text cut "café à" (ISO-8859-1 in, UTF-8 out) inside the "à". */
Test(fuzz_regressions, xml_text_never_cuts_a_character)
{
    const char doc[] =
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<r>caf\xe9 \xe0 la cr\xe8me</r>";
    char err[128];
    xmlDocPtr d = iw_xml_parse(doc, sizeof(doc) - 1, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    char small[8];
    size_t n = iw_xml_text(xmlDocGetRootElement(d), small, sizeof(small));
    cr_assert_str_eq(small, "caf\xc3\xa9 ", "the cut \"\xc3\xa0\" is dropped whole");
    cr_assert_eq(n, strlen(small));
    char big[64];
    iw_xml_text(xmlDocGetRootElement(d), big, sizeof(big));
    cr_assert_str_eq(big, "caf\xc3\xa9 \xc3\xa0 la cr\xc3\xa8me");
    xmlFreeDoc(d);
}

/* fuzz_classify: libxml2's error message quotes the reply's bytes ("xmlns: 'http://\xff\xff'
 * is not a valid URI"), which went into the outcome message as they were. */
Test(fuzz_regressions, xml_error_quoting_invalid_bytes_is_cleaned)
{
    const char body[] = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                        "<s:Body xmlns=\"http://eBizCharge.Se\xff\xff\xff\xffrvice\"></s:Body>"
                        "</s:Envelope>";
    char err[128];
    xmlDocPtr d = iw_xml_parse(body, sizeof(body) - 1, err, sizeof(err));
    if (d)
        xmlFreeDoc(d);
    cr_assert_null(d, "a namespace URI with bytes that are not UTF-8 is not well-formed");
    cr_assert(strstr(err, "not well-formed XML"), "%s", err);
    cr_assert(iw_t_utf8_ok(err), "%s", err);

    const char *types[] = {"centra_soap", "centra_navision", "ebizcharge", "midnight",
                           "invoicexpress"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        iw_target_conf tc;
        conf(&tc, types[i]);
        iw_outcome o;
        classify(types[i], &tc, 200, body, sizeof(body) - 1, &o);
        assert_outcome_utf8(&o);
        iw_target_conf_clear(&tc);
    }
    /* a libxml2 message cut by a small buffer still ends on a character boundary */
    char tiny[24];
    cr_assert_null(iw_xml_parse(body, sizeof(body) - 1, tiny, sizeof(tiny)));
    cr_assert(iw_t_utf8_ok(tiny), "%s", tiny);
}

/* fuzz_classify: Midnight quoted the first 160 bytes of a non-JSON error body as they were,
 * ISO-8859-1 bytes included. */
Test(fuzz_regressions, midnight_quotes_non_utf8_body_as_question_marks)
{
    iw_target_conf tc;
    conf(&tc, "midnight");
    const char body[] = "<?xml version=\"1.0\"?> <SOAP-ENV:Envelope xmlns:\xe9\xe9\xe9 caf\xe9 ok";
    iw_outcome o;
    classify("midnight", &tc, 500, body, sizeof(body) - 1, &o);
    assert_outcome_utf8(&o);
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert(strstr(o.message, "server error"), "%s", o.message);
    cr_assert(strstr(o.message, "xmlns:??? caf? ok"), "%s", o.message);

    /* valid UTF-8 is kept, and a character cut by the 160-byte snippet is dropped */
    char cut[200];
    memset(cut, 'a', 159);
    memcpy(cut + 159, "\xc3\xa9\xc3\xa9", 5);
    classify("midnight", &tc, 500, cut, 164, &o);
    assert_outcome_utf8(&o);
    cr_assert_null(strchr(o.message, '?'), "a cut character is dropped, not shown: %s", o.message);
    const char ok[] = "{\"Message\": \"Fehler: \xc3\xbc\xe2\x82\xac\"}";
    classify("midnight", &tc, 400, ok, sizeof(ok) - 1, &o);
    cr_assert(strstr(o.message, "Fehler: \xc3\xbc\xe2\x82\xac"), "%s", o.message);
    iw_target_conf_clear(&tc);
}

/* A long multi-byte faultstring is cut by the 256-byte message: never inside a character,
 * whatever the length of the text before it. */
Test(fuzz_regressions, soap_fault_text_cut_on_a_character_boundary)
{
    const char *types[] = {"centra_soap", "centra_navision", "ebizcharge"};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        iw_target_conf tc;
        conf(&tc, types[t]);
        for (size_t pad = 0; pad < 4; pad++) {
            char *text = repeat("\xe2\x82\xac", 90);
            char body[1024];
            snprintf(body, sizeof(body),
                     "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>"
                     "<s:Fault><faultcode>s:Server%.*s</faultcode><faultstring>%s</faultstring>"
                     "</s:Fault></s:Body></s:Envelope>",
                     (int)pad, "xxxx", text);
            free(text);
            iw_outcome o;
            classify(types[t], &tc, 500, body, strlen(body), &o);
            assert_outcome_utf8(&o);
            cr_assert_eq(o.kind, IW_OUTCOME_RETRY, "%s: a Server fault is retried", types[t]);
            cr_assert(strstr(o.message, "\xe2\x82\xac\xe2\x82\xac"), "%s", o.message);
        }
        iw_target_conf_clear(&tc);
    }
}

/* The SOAP 1.2 faultcode is "Value/Subcode" in 64 bytes, and an unexpected root element is
 * named with at most 40 bytes: both used to cut a multi-byte character. */
Test(fuzz_regressions, soap_code_and_root_name_cut_on_a_character_boundary)
{
    iw_target_conf tc;
    conf(&tc, "ebizcharge");
    for (size_t pad = 0; pad < 4; pad++) {
        char *sub = repeat("\xc3\xa9", 30);
        char body[1024];
        snprintf(body, sizeof(body),
                 "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Body><e:Fault>"
                 "<e:Code><e:Value>e:Receiver%.*s</e:Value><e:Subcode><e:Value>%.*s%s</e:Value>"
                 "</e:Subcode></e:Code><e:Reason><e:Text>x</e:Text></e:Reason></e:Fault>"
                 "</e:Body></e:Envelope>",
                 (int)(20 + pad), "xxxxxxxxxxxxxxxxxxxxxxxx", (int)pad, "yyyy", sub);
        iw_outcome o;
        classify("ebizcharge", &tc, 500, body, strlen(body), &o);
        assert_outcome_utf8(&o);
        cr_assert(strstr(o.code, "xxxxxxxxxxxxxxxxxxxx/"), "the subcode follows the value: %s",
                  o.code);
        cr_assert_gt(strlen(o.code), 58, "only the cut character is dropped: %s", o.code);

        snprintf(body, sizeof(body), "<r%.*s%s/>", (int)pad, "xxxx", sub);
        free(sub);
        classify("ebizcharge", &tc, 200, body, strlen(body), &o);
        assert_outcome_utf8(&o);
        cr_assert(strstr(o.message, "not a SOAP envelope"), "%s", o.message);
    }
    iw_target_conf_clear(&tc);
}

/* Masking a one-character secret with "***" makes the message longer than it was; the cut
 * that follows must not split a character either. */
Test(fuzz_regressions, masked_message_cut_on_a_character_boundary)
{
    iw_target_conf tc;
    conf(&tc, "centra_soap");
    free(iw_centra_conf_of(&tc)->password);
    iw_centra_conf_of(&tc)->password = strdup("x");
    cr_assert_not_null(iw_centra_conf_of(&tc)->password);
    for (size_t pad = 0; pad < 6; pad++) {
        char *text = repeat("x\xc3\xa9", 60);
        char body[1024];
        snprintf(body, sizeof(body),
                 "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>"
                 "<s:Fault><faultcode>s:Client</faultcode><faultstring>%.*s%s</faultstring>"
                 "</s:Fault></s:Body></s:Envelope>",
                 (int)pad, "yyyyyy", text);
        free(text);
        iw_outcome o;
        classify("centra_soap", &tc, 500, body, strlen(body), &o);
        assert_outcome_utf8(&o);
        cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
        cr_assert(strstr(o.message, "***\xc3\xa9***"), "the secret is masked: %s", o.message);
    }
    iw_target_conf_clear(&tc);
}

/* iw_outcome_set itself: a message or code cut by its buffer ends on a character boundary. */
Test(fuzz_regressions, outcome_set_cuts_on_a_character_boundary)
{
    for (size_t pad = 0; pad < 4; pad++) {
        char *text = repeat("\xf0\x9f\x98\x80", 80);
        iw_outcome o;
        memset(&o, 0, sizeof(o));
        char code[400];
        snprintf(code, sizeof(code), "%.*s%s", (int)pad, "abcd", text);
        iw_outcome_set(&o, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, code, "%.*s%s", (int)pad, "abcd",
                       text);
        free(text);
        assert_outcome_utf8(&o);
        cr_assert_gt(strlen(o.message), 250, "only the cut character is dropped");
        cr_assert_gt(strlen(o.code), 58, "only the cut character is dropped");
    }
}
