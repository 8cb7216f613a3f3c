/* test_soap.c: the shared SOAP pieces: request and envelope, the mapping-table writer, Fault
 * reading and the classification rules every SOAP adapter shares. */
#include <criterion/criterion.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "centra.h"
#include "ebizcharge.h"
#include "soap.h"
#include "status.h"
#include "testdata.h"

/* ------------------------------------------------------------ request and envelope */

Test(soap, request_init_sets_post_content_type_and_quoted_action)
{
    iw_request r = {0};
    char err[128];
    cr_assert_eq(iw_soap_request_init(&r, "https://h.example/api", "urn:x/Do", err, sizeof(err)),
                 0);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.url, "https://h.example/api");
    cr_assert_str_eq(iw_request_header(&r, "Content-Type"), "text/xml; charset=utf-8");
    cr_assert_str_eq(iw_request_header(&r, "SOAPAction"), "\"urn:x/Do\"");
    iw_request_clear(&r);
}

/* iw_request_add_header keeps every header, in order, across each growth of its array (8, 16,
 * 32, 64), a NULL value as ""; iw_request_clear gives it all back (valgrind checks that). */
Test(soap, request_headers_keep_order_and_text_past_every_growth)
{
    iw_request r = {0};
    char name[32], value[96];
    for (int i = 0; i < 70; i++) {
        snprintf(name, sizeof(name), "X-H-%d", i);
        snprintf(value, sizeof(value), "%.*s", i,
                 "v123456789v123456789v123456789v123456789"
                 "v123456789v123456789v123456789v123456789");
        cr_assert_eq(iw_request_add_header(&r, name, i % 9 == 4 ? NULL : value), 0);
    }
    cr_assert_eq(r.n_headers, 70);
    for (int i = 0; i < 70; i++) {
        snprintf(name, sizeof(name), "X-H-%d", i);
        cr_assert_str_eq(r.headers[i].name, name);
        cr_assert_eq(strlen(r.headers[i].value), i % 9 == 4 ? 0 : (size_t)i, "header %d: \"%s\"", i,
                     r.headers[i].value);
        cr_assert_str_eq(iw_request_header(&r, name), r.headers[i].value);
    }
    iw_request_clear(&r);
    cr_assert_eq(r.n_headers, 0);
    cr_assert_null(r.headers);
}

/* One request as the dispatcher builds it: a URL, headers, two secrets and a body of n bytes
 * copied from a render's buffer. */
static void build_request(iw_request *r, size_t n, char fill)
{
    iw_wbuf b = IW_WBUF_INIT;
    for (size_t i = 0; i < n; i++)
        iw_wbuf_add(&b, &fill, 1);
    char err[64] = "";
    cr_assert_not_null(r->url = strdup("https://h.example/api"));
    for (int i = 0; i < 12; i++) {
        char name[16];
        snprintf(name, sizeof(name), "X-H-%d", i);
        cr_assert_eq(iw_request_add_header(r, name, "value"), 0);
    }
    cr_assert_eq(iw_request_add_secret(r, "s3cret-one"), 0);
    cr_assert_eq(iw_request_add_secret(r, "s3cret-two"), 0);
    cr_assert_eq(iw_request_set_body_from(r, &b, err, sizeof(err)), 0, "%s", err);
    iw_wbuf_free(&b);
}

static void check_request(const iw_request *r, size_t n, char fill)
{
    cr_assert_str_eq(r->url, "https://h.example/api");
    cr_assert_eq(r->n_headers, 12);
    for (int i = 0; i < 12; i++) {
        char name[16];
        snprintf(name, sizeof(name), "X-H-%d", i);
        cr_assert_str_eq(r->headers[i].name, name);
        cr_assert_str_eq(r->headers[i].value, "value");
    }
    cr_assert_eq(r->n_secrets, 2);
    cr_assert_str_eq(r->secrets[0], "s3cret-one");
    cr_assert_str_eq(r->secrets[1], "s3cret-two");
    cr_assert_eq(r->body_len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(r->body[i], fill, "body byte %zu", i);
    cr_assert_eq(r->body[n], '\0');
}

Test(soap, a_reset_request_builds_the_next_in_the_memory_the_last_left)
{
    iw_request r = {0};
    build_request(&r, 3000, 'a'); /* past the store's first piece: a second piece holds it */
    check_request(&r, 3000, 'a');
    iw_request_reset(&r);
    cr_assert_null(r.url);
    cr_assert_null(r.body);
    cr_assert_eq(r.n_headers + r.n_secrets + r.body_len, 0);
    cr_assert_not_null(r.store, "the store is kept");
    const void *store = r.store, *headers = r.headers, *secrets = r.secrets;
    /* the same request again fits in what was kept: nothing new is allocated */
    build_request(&r, 3000, 'b');
    check_request(&r, 3000, 'b');
    cr_assert_eq(r.store, store);
    cr_assert_eq(r.headers, headers);
    cr_assert_eq(r.secrets, secrets);

    /* a body given whole is the request's to free, at reset as at clear (ASan, valgrind) */
    char *own = strdup("given");
    iw_request_set_body(&r, own, 5);
    cr_assert(r.body_owned);
    iw_request_reset(&r);
    cr_assert_null(r.body);
    cr_assert(!r.body_owned);

    /* a store grown past 16 KiB is not kept */
    build_request(&r, 100000, 'c');
    check_request(&r, 100000, 'c');
    iw_request_reset(&r);
    cr_assert_null(r.store);
    build_request(&r, 10, 'd');
    check_request(&r, 10, 'd');
    iw_request_clear(&r);
    cr_assert_null(r.store);
    cr_assert_null(r.headers);
}

Test(soap, request_init_without_url_is_refused)
{
    iw_request r = {0};
    char err[128] = "";
    cr_assert_eq(iw_soap_request_init(&r, NULL, "urn:x", err, sizeof(err)), IW_EINVAL);
    cr_assert(strstr(err, "url"), "message: %s", err);
    cr_assert_null(r.url);
    cr_assert_eq(r.n_headers, 0);
}

Test(soap, envelope_has_namespaces_header_and_body)
{
    iw_xw x;
    iw_request r = {0};
    char err[128];
    iw_soap_open(&x, "soapenv", "ebiz", "urn:ebiz", true);
    iw_xw_text(&x, "ebiz", "Ping", "1");
    cr_assert_eq(iw_soap_close(&x, &r, err, sizeof(err)), 0);
    cr_assert(strstr(r.body, "<soapenv:Envelope"), "%s", r.body);
    cr_assert(strstr(r.body, "xmlns:soapenv=\"" IW_SOAP11_ENV_NS "\""), "%s", r.body);
    cr_assert(strstr(r.body, "xmlns:ebiz=\"urn:ebiz\""), "%s", r.body);
    const char *h = strstr(r.body, "<soapenv:Header/>");
    const char *b = strstr(r.body, "<soapenv:Body><ebiz:Ping>1</ebiz:Ping></soapenv:Body>");
    cr_assert(h && b && h < b, "%s", r.body);
    cr_assert_eq(r.body_len, strlen(r.body));
    iw_request_clear(&r);
}

Test(soap, envelope_without_header)
{
    iw_xw x;
    iw_request r = {0};
    char err[128];
    iw_soap_open(&x, "SOAP-ENV", "ns1", "urn:c", false);
    cr_assert_eq(iw_soap_close(&x, &r, err, sizeof(err)), 0);
    cr_assert_null(strstr(r.body, "Header"), "%s", r.body);
    cr_assert(strstr(r.body, "<SOAP-ENV:Body/>") ||
                  strstr(r.body, "<SOAP-ENV:Body></SOAP-ENV:Body>"),
              "%s", r.body);
    iw_request_clear(&r);
}

/* ------------------------------------------------------------ replies and Faults */

static int read_reply(const char *text, iw_soap_reply *rep)
{
    return iw_soap_reply_read(text, text ? strlen(text) : 0, rep);
}

#define ENV11(body)                                                                                \
    "<?xml version=\"1.0\"?><SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" IW_SOAP11_ENV_NS                 \
    "\"><SOAP-ENV:Body>" body "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
#define ENV12(body)                                                                                \
    "<env:Envelope xmlns:env=\"" IW_SOAP12_ENV_NS "\"><env:Header/><env:Body>" body                \
    "</env:Body></env:Envelope>"

Test(soap, fault_11_with_prefix)
{
    iw_soap_reply rep;
    cr_assert_eq(read_reply(ENV11("<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode>"
                                  "<faultstring> Bad invoice </faultstring></SOAP-ENV:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_CLIENT);
    cr_assert_str_eq(rep.faultcode, "SOAP-ENV:Client");
    cr_assert_str_eq(rep.faultstring, "Bad invoice");
    iw_soap_reply_free(&rep);
}

Test(soap, fault_11_without_prefix_and_dotted_subcode)
{
    iw_soap_reply rep;
    cr_assert_eq(read_reply(ENV11("<SOAP-ENV:Fault><faultcode>Server</faultcode>"
                                  "<faultstring>db down</faultstring></SOAP-ENV:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_SERVER);
    iw_soap_reply_free(&rep);
    cr_assert_eq(read_reply(ENV11("<SOAP-ENV:Fault><faultcode>s:Client.Authentication</faultcode>"
                                  "</SOAP-ENV:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_AUTH); /* the subcode says so, not a word */
    cr_assert_str_eq(rep.faultstring, "");
    iw_soap_reply_free(&rep);
}

Test(soap, fault_12_sender_and_receiver)
{
    iw_soap_reply rep;
    cr_assert_eq(read_reply(ENV12("<env:Fault><env:Code><env:Value>env:Sender</env:Value>"
                                  "<env:Subcode><env:Value>m:BadData</env:Value></env:Subcode>"
                                  "</env:Code><env:Reason><env:Text xml:lang=\"en\">bad data"
                                  "</env:Text></env:Reason></env:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_CLIENT);
    cr_assert_str_eq(rep.faultcode, "env:Sender/m:BadData");
    cr_assert_str_eq(rep.faultstring, "bad data");
    iw_soap_reply_free(&rep);
    cr_assert_eq(read_reply(ENV12("<env:Fault><env:Code><env:Value>env:Receiver</env:Value>"
                                  "</env:Code><env:Reason><env:Text>busy</env:Text></env:Reason>"
                                  "</env:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_SERVER);
    cr_assert_str_eq(rep.faultstring, "busy");
    iw_soap_reply_free(&rep);
}

Test(soap, fault_protocol_and_unknown_codes)
{
    iw_soap_reply rep;
    cr_assert_eq(read_reply(ENV11("<SOAP-ENV:Fault><faultcode>SOAP-ENV:VersionMismatch"
                                  "</faultcode></SOAP-ENV:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_PROTOCOL);
    iw_soap_reply_free(&rep);
    cr_assert_eq(read_reply(ENV11("<SOAP-ENV:Fault><faultcode>x:Clientish</faultcode>"
                                  "</SOAP-ENV:Fault>"),
                            &rep),
                 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_OTHER);
    iw_soap_reply_free(&rep);
}

Test(soap, no_fault_and_fault_outside_the_soap_namespace)
{
    iw_soap_reply rep;
    cr_assert_eq(read_reply(ENV11("<ns1:result xmlns:ns1=\"urn:c\"/>"), &rep), 0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_NONE);
    cr_assert_not_null(rep.body);
    iw_soap_reply_free(&rep);
    cr_assert_eq(
        read_reply(ENV11("<Fault xmlns=\"urn:app\"><faultcode>Client</faultcode></Fault>"), &rep),
        0);
    cr_assert_eq(rep.fault, IW_SOAP_FAULT_NONE);
    iw_soap_reply_free(&rep);
}

Test(soap, unreadable_replies_say_why)
{
    iw_soap_reply rep;
    cr_assert_eq(read_reply("", &rep), IW_EINVAL);
    cr_assert(strstr(rep.error, "empty"), "%s", rep.error);
    iw_soap_reply_free(&rep);
    cr_assert_eq(read_reply("<html><body>Bad gateway</body></html>", &rep), IW_EINVAL);
    cr_assert(strstr(rep.error, "not a SOAP envelope"), "%s", rep.error);
    iw_soap_reply_free(&rep);
    cr_assert_eq(
        read_reply("<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" IW_SOAP11_ENV_NS "\"><SOAP-EN", &rep),
        IW_EINVAL);
    cr_assert(strstr(rep.error, "well-formed"), "%s", rep.error);
    iw_soap_reply_free(&rep);
    cr_assert_eq(read_reply("<e:Envelope xmlns:e=\"urn:not-soap\"><e:Body/></e:Envelope>", &rep),
                 IW_EINVAL);
    iw_soap_reply_free(&rep);
    cr_assert_eq(read_reply("<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" IW_SOAP11_ENV_NS "\"/>", &rep),
                 IW_EINVAL);
    cr_assert(strstr(rep.error, "without a Body"), "%s", rep.error);
    iw_soap_reply_free(&rep);
}

Test(soap, entity_declarations_are_refused)
{
    iw_soap_reply rep;
    cr_assert_eq(
        read_reply("<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM "
                   "\"file:///etc/passwd\">]><SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" IW_SOAP11_ENV_NS
                   "\"><SOAP-ENV:Body>&e;</SOAP-ENV:Body></SOAP-ENV:Envelope>",
                   &rep),
        IW_EINVAL);
    cr_assert_null(rep.body);
    iw_soap_reply_free(&rep);
}

/* ------------------------------------------------------------ shared classification */

static bool classify_text(long status, const char *body, const char *retry_after,
                          const iw_target_conf *tc, iw_outcome *out)
{
    iw_header h = {"Retry-After", (char *)retry_after};
    iw_response resp = iw_t_reply(status, body, retry_after ? &h : NULL, 1700000000000);
    iw_soap_reply rep;
    iw_soap_reply_read(resp.body, resp.body_len, &rep);
    bool final = iw_soap_classify_common(tc, &resp, &rep, out);
    iw_soap_reply_free(&rep);
    return final;
}

#define FAULT(code, text)                                                                          \
    ENV11("<SOAP-ENV:Fault><faultcode>" code "</faultcode><faultstring>" text                      \
          "</faultstring></SOAP-ENV:Fault>")

/* A centra_soap instance with its login password set. */
static void centra_conf(iw_target_conf *tc, const char *password)
{
    memset(tc, 0, sizeof(*tc));
    cr_assert_eq(iw_target_conf_defaults(tc, "centra_soap"), 0);
    cr_assert_not_null(iw_centra_conf_of(tc)->password = strdup(password));
}

Test(soap, common_rules)
{
    iw_target_conf tc;
    centra_conf(&tc, "hunter2");
    iw_outcome o;

    cr_assert(classify_text(500, FAULT("SOAP-ENV:Client", "bad field"), NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    cr_assert_eq(o.error_kind, IW_ERR_REMOTE);
    cr_assert_str_eq(o.code, "SOAP-ENV:Client");
    cr_assert(strstr(o.message, "bad field"), "%s", o.message);

    cr_assert(classify_text(500, FAULT("SOAP-ENV:Server", "busy"), "7", &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert_eq(o.retry_after_ms, 7000);

    /* the code decides, not the words: a Server fault naming a login is the server's trouble */
    cr_assert(classify_text(200, FAULT("SOAP-ENV:Server", "Login failed"), NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert_eq(o.error_kind, IW_ERR_REMOTE);

    cr_assert(classify_text(500, FAULT("Zzz", "odd"), NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert(strstr(o.message, "unknown fault code"), "%s", o.message);

    cr_assert(classify_text(401, "nope", NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_AUTH);
    cr_assert(classify_text(429, NULL, "3", &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert_eq(o.error_kind, IW_ERR_RATE_LIMITED);
    cr_assert_eq(o.retry_after_ms, 3000);
    cr_assert(classify_text(404, "<html>not found</html>", NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    cr_assert(classify_text(503, "<html>down</html>", NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert(strstr(o.message, "not a SOAP envelope"), "%s", o.message);

    cr_assert(classify_text(200, "<html>proxy</html>", NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);
    cr_assert_eq(o.error_kind, IW_ERR_TRANSPORT);
    cr_assert(classify_text(200, "", NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_RETRY);

    cr_assert_not(classify_text(200, ENV11("<r/>"), NULL, &tc, &o));
    iw_target_conf_clear(&tc);
}

/* Regression: WCF dispatcher faults were retried until attempts ran out (and counted towards
 * the breaker); a Server fault mentioning authorization, or a Client fault quoting a password
 * field, was classified auth by its words. */
Test(soap, faults_are_classified_by_code_not_words)
{
    iw_target_conf tc = {0};
    iw_outcome o;
    static const struct {
        const char *code, *text;
        iw_outcome_kind kind;
    } cases[] = {
        {"a:ActionNotSupported",
         "The message with Action 'x' cannot be processed at the receiver, due to a "
         "ContractFilter mismatch at the EndpointDispatcher.",
         IW_OUTCOME_PERMANENT},
        {"a:DeserializationFailed",
         "The formatter threw an exception while trying to deserialize the message",
         IW_OUTCOME_PERMANENT},
        {"a:DestinationUnreachable", "no endpoint", IW_OUTCOME_PERMANENT},
        {"a:InternalServiceFault", "Object reference not set", IW_OUTCOME_RETRY},
        {"s:Server", "Could not reach the authorization service; try again", IW_OUTCOME_RETRY},
        {"s:Client", "Invalid value 'x' for field password", IW_OUTCOME_PERMANENT},
        {"s:Client", "Security token expired", IW_OUTCOME_PERMANENT},
        {"wsse:FailedAuthentication", "The security token could not be authenticated",
         IW_OUTCOME_AUTH},
        {"wsse:InvalidSecurityToken", "bad token", IW_OUTCOME_AUTH},
        {"SOAP-ENV:Client.Authentication", "no", IW_OUTCOME_AUTH},
        {"SOAP-ENV:Server.Authentication", "auth backend down", IW_OUTCOME_RETRY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" IW_SOAP11_ENV_NS
                 "\" xmlns:a=\"urn:a\" xmlns:s=\"urn:s\" xmlns:wsse=\"urn:w\"><SOAP-ENV:Body>"
                 "<SOAP-ENV:Fault><faultcode>%s</faultcode><faultstring>%s</faultstring>"
                 "</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>",
                 cases[i].code, cases[i].text);
        cr_assert(classify_text(500, body, NULL, &tc, &o));
        cr_assert_eq(o.kind, cases[i].kind, "%s: kind %d, want %d (%s)", cases[i].code, o.kind,
                     cases[i].kind, o.message);
        cr_assert(strstr(o.message, cases[i].text), "%s", o.message);
    }
    /* SOAP 1.2: a Subcode refines Sender */
    cr_assert(classify_text(500,
                            "<e:Envelope xmlns:e=\"" IW_SOAP12_ENV_NS
                            "\"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value><e:Subcode>"
                            "<e:Value>a:DeserializationFailed</e:Value></e:Subcode></e:Code>"
                            "<e:Reason><e:Text>bad</e:Text></e:Reason></e:Fault></e:Body>"
                            "</e:Envelope>",
                            NULL, &tc, &o));
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT, "%s", o.message);
}

Test(soap, fault_messages_never_carry_secrets)
{
    iw_target_conf tc = {0};
    cr_assert_eq(iw_target_conf_defaults(&tc, "ebizcharge"), 0);
    iw_ebiz_conf_of(&tc)->password = strdup("hunter2");
    iw_ebiz_conf_of(&tc)->security_id = strdup("SID-123-secret");
    iw_outcome o;
    cr_assert(classify_text(500, FAULT("Client", "password hunter2 wrong for SID-123-secret"), NULL,
                            &tc, &o));
    cr_assert_null(strstr(o.message, "hunter2"), "%s", o.message);
    cr_assert_null(strstr(o.message, "SID-123-secret"), "%s", o.message);
    cr_assert(strstr(o.message, "password *** wrong for ***"), "%s", o.message);
    iw_target_conf_clear(&tc);
}

Test(soap, scrub_without_secrets_leaves_text)
{
    iw_target_conf tc = {0};
    char msg[32] = "plain text";
    iw_soap_scrub(&tc, msg, sizeof(msg));
    cr_assert_str_eq(msg, "plain text");
}

Test(soap, child_finds_direct_children_only)
{
    xmlDocPtr d = xmlReadMemory("<a><b><c>deep</c></b><c>top</c></a>", 35, "t.xml", NULL, 0);
    cr_assert_not_null(d);
    xmlNodePtr c = iw_soap_child(xmlDocGetRootElement(d), "c");
    char t[16];
    iw_xml_text(c, t, sizeof(t));
    cr_assert_str_eq(t, "top");
    cr_assert_null(iw_soap_child(NULL, "c"));
    xmlFreeDoc(d);
}
