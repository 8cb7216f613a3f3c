/* test_target_sim.c: the target simulator, black-box over plain libcurl: each seed request is
 * accepted, each contract violation refused in the target's own shape, every fault kind seen
 * as specified, the per-invoice history of accepted versions, and state and call counts right
 * after a burst of 1,000 concurrent requests. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "docpaths.h"
#include "testproc.h"
#include "xml.h"

/* ---- the simulator process ---- */

static iw_proc sim;
static int port;

static void start_args(const char *const *extra)
{
    char listen[64], line[128], want[128];
    char *argv[16];
    int n = 0;
    port = iw_free_port();
    cr_assert_gt(port, 0);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    argv[n++] = (char *)iw_build_path("target-sim");
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--exit-with-parent"; /* no stray simulator if this test crashes */
    for (int i = 0; extra && extra[i] && n < 15; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    cr_assert_eq(iw_proc_start(&sim, argv, true), 0, "cannot start %s", argv[0]);
    cr_assert_gt(iw_proc_read_line(&sim, line, sizeof(line), 10000), 0, "no start line");
    snprintf(want, sizeof(want), "target-sim listening on 127.0.0.1:%d", port);
    cr_assert_str_eq(line, want);
}

static void start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_args(NULL);
}

static void stop(void)
{
    iw_proc_stop(&sim, 10000);
    curl_global_cleanup();
}

TestSuite(sim, .init = start, .fini = stop, .timeout = 180);

/* Stops the simulator with SIGTERM and expects exit status 0 (under the sanitizers a leak or
 * an error in the simulator changes it), then starts a fresh one for the rest of the test. */
static void expect_clean_exit(void)
{
    iw_proc_signal(&sim, SIGTERM);
    int st = iw_proc_wait(&sim, 20000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target-sim exit status %d", st);
    start_args(NULL);
}

/* ---- HTTP ---- */

typedef struct http_res {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char retry_after[128];
    char www_auth[128];
    bool content_length; /* the reply had a Content-Length header */
    long long total_ms, ttfb_ms;
} http_res;

static void res_free(http_res *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    http_res *r = ud;
    char *b = realloc(r->body, r->len + sz * n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, sz * n);
    r->body = b;
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t olen)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    while (*v == ' ')
        v++;
    size_t vl = len - (size_t)(v - line);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    snprintf(out, olen, "%.*s", (int)vl, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    http_res *r = ud;
    char cl[32] = "";
    header_value(p, sz * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    header_value(p, sz * n, "WWW-Authenticate", r->www_auth, sizeof(r->www_auth));
    header_value(p, sz * n, "Content-Length", cl, sizeof(cl));
    if (*cl)
        r->content_length = true;
    return sz * n;
}

/* A request under construction. */
typedef struct req {
    char method[8];
    char path[256];
    char hdrs[12][256];
    int n;
} req;

/* Sets header "Name: value", replacing one of the same name. */
static void req_set(req *q, const char *h)
{
    size_t nl = strcspn(h, ":");
    for (int i = 0; i < q->n; i++) {
        if (strncasecmp(q->hdrs[i], h, nl) == 0 && q->hdrs[i][nl] == ':') {
            snprintf(q->hdrs[i], sizeof(q->hdrs[i]), "%s", h);
            return;
        }
    }
    cr_assert_lt(q->n, 12);
    snprintf(q->hdrs[q->n++], sizeof(q->hdrs[0]), "%s", h);
}

static CURL *req_handle(const req *q, const char *body, size_t len, long timeout_ms, http_res *r,
                        struct curl_slist **hl)
{
    char url[320];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, q->path);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    *hl = curl_slist_append(NULL, "Expect:");
    for (int i = 0; i < q->n; i++)
        *hl = curl_slist_append(*hl, q->hdrs[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    return c;
}

static void res_finish(CURL *c, http_res *r)
{
    curl_off_t t = 0, fb = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &t);
    curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME_T, &fb);
    r->total_ms = (long long)t / 1000;
    r->ttfb_ms = (long long)fb / 1000;
    if (!r->body) {
        r->body = calloc(1, 1);
        cr_assert_not_null(r->body);
    }
}

static void req_send(const req *q, const char *body, size_t len, long timeout_ms, http_res *r)
{
    memset(r, 0, sizeof(*r));
    struct curl_slist *hl;
    CURL *c = req_handle(q, body, len, timeout_ms, r, &hl);
    r->rc = curl_easy_perform(c);
    res_finish(c, r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
}

/* ---- the contracts' standard requests ---- */

enum { C_SOAP, C_NAV, C_MID_JSON, C_MID_XML, C_EBIZ, C_IXP, C_N };

static const char *const fixture[C_N] = {
    "sim/centra_soap-valid.xml", "sim/centra_navision-valid.xml",
    "sim/midnight-valid.json",   "sim/midnight-valid.xml",
    "sim/ebizcharge-valid.xml",  "invoicexpress/reference-request.xml"};

static const char *const target_of[C_N] = {"centra_soap", "centra_navision", "midnight",
                                           "midnight",    "ebizcharge",      "invoicexpress"};

static req base(int which)
{
    req q = {.n = 0};
    snprintf(q.method, sizeof(q.method), "POST");
    switch (which) {
    case C_SOAP:
        snprintf(q.path, sizeof(q.path), "/amsdocs/system/service/module/soap/api");
        req_set(&q, "Content-Type: text/xml; charset=utf-8");
        req_set(&q, "SOAPAction: \"http://www.centra.com/webservices/Invoices_Update\"");
        break;
    case C_NAV:
        snprintf(q.path, sizeof(q.path), "/amsdemo1337/system/service/module/navision/api");
        req_set(&q, "Content-Type: text/xml; charset=utf-8");
        req_set(&q, "SOAPAction: \"http://www.silkvms.com/webservices/Invoices_Update\"");
        break;
    case C_MID_JSON:
    case C_MID_XML:
        snprintf(q.path, sizeof(q.path), "/v1/Generic/InvoiceUpdate");
        req_set(&q, which == C_MID_JSON ? "Content-Type: application/json; charset=utf-8"
                                        : "Content-Type: application/xml; charset=utf-8");
        req_set(&q, "Authorization: PRC sim-prc");
        req_set(&q, "MISKEY: sim-mis");
        snprintf(q.hdrs[q.n++], sizeof(q.hdrs[0]), "Authorization: Midnight sim-mt-5k9w");
        break;
    case C_EBIZ:
        snprintf(q.path, sizeof(q.path), "/eBizService.svc");
        req_set(&q, "Content-Type: text/xml; charset=utf-8");
        req_set(&q,
                "SOAPAction: \"http://eBizCharge.ServiceModel.SOAP/IeBizService/UpdateInvoice\"");
        break;
    default:
        snprintf(q.method, sizeof(q.method), "PUT");
        snprintf(q.path, sizeof(q.path), "/invoices/98765.xml?api_key=sim-api-key");
        req_set(&q, "Content-Type: application/xml");
        break;
    }
    return q;
}

static char *load(int which, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, fixture[which]);
    char *s = iw_read_file(path, len);
    cr_assert_not_null(s, "cannot read %s", path);
    return s;
}

/* Copy of s with the first `from` replaced by `to`; the test fails when from is absent. */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    cr_assert_not_null(at, "mutation anchor not found: %s", from);
    size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to), sl = strlen(s);
    char *out = malloc(sl - fl + tl + 1);
    cr_assert_not_null(out);
    memcpy(out, s, a);
    memcpy(out + a, to, tl);
    memcpy(out + a + tl, at + fl, sl - a - fl + 1);
    return out;
}

static void send_std(int which, const char *body, http_res *r)
{
    req q = base(which);
    req_send(&q, body, strlen(body), 0, r);
}

/* ---- control API ---- */

static cJSON *ctl_get(const char *path)
{
    req q = {.method = "GET", .n = 0};
    snprintf(q.path, sizeof(q.path), "%s", path);
    http_res r;
    req_send(&q, NULL, 0, 0, &r);
    cr_assert_eq(r.rc, CURLE_OK);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cr_assert_not_null(j, "GET %s: not JSON", path);
    res_free(&r);
    return j;
}

static long ctl_post(const char *path, const char *json)
{
    req q = {.method = "POST", .n = 0};
    snprintf(q.path, sizeof(q.path), "%s", path);
    req_set(&q, "Content-Type: application/json");
    http_res r;
    req_send(&q, json, strlen(json), 0, &r);
    cr_assert_eq(r.rc, CURLE_OK);
    long st = r.status;
    res_free(&r);
    return st;
}

static void fault(const char *json)
{
    cr_assert_eq(ctl_post("/_sim/faults", json), 200, "fault refused: %s", json);
}

/* state.targets.<target>.invoices.<id> (borrowed from doc), or NULL. */
static const cJSON *invoice_state(const cJSON *doc, const char *target, const char *id)
{
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "targets"), target);
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "invoices"), id);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "%s is not a string", key);
    return v->valuestring;
}

/* ==== contracts: accepted ==== */

Test(sim, valid_copies_keep_the_seed_structure)
{
    static const struct {
        const char *ref, *valid;
        bool json;
    } pairs[] = {
        {"centra_soap/reference-request.xml", "sim/centra_soap-valid.xml", false},
        {"centra_navision/reference-request.xml", "sim/centra_navision-valid.xml", false},
        {"midnight/reference-request.json", "sim/midnight-valid.json", true},
        {"midnight/reference-request.xml", "sim/midnight-valid.xml", false},
        {"ebizcharge/reference-request.xml", "sim/ebizcharge-valid.xml", false},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char p1[512], p2[512], msg[512];
        size_t l1, l2;
        snprintf(p1, sizeof(p1), "%s/%s", IW_FIXTURES_DIR, pairs[i].ref);
        snprintf(p2, sizeof(p2), "%s/%s", IW_FIXTURES_DIR, pairs[i].valid);
        char *a = iw_read_file(p1, &l1), *b = iw_read_file(p2, &l2);
        cr_assert(a && b);
        iw_paths pa = {0}, pb = {0};
        int ra = pairs[i].json ? iw_paths_json(a, l1, &pa) : iw_paths_xml(a, l1, &pa);
        int rb = pairs[i].json ? iw_paths_json(b, l2, &pb) : iw_paths_xml(b, l2, &pb);
        cr_assert(ra == 0 && rb == 0);
        cr_expect_eq(iw_paths_compare(&pa, &pb, msg, sizeof(msg)), 0, "%s: %s", pairs[i].valid,
                     msg);
        iw_paths_free(&pa);
        iw_paths_free(&pb);
        free(a);
        free(b);
    }
}

Test(sim, each_seed_request_is_accepted_and_kept)
{
    static const struct {
        const char *expect;        /* in the reply */
        const char *id;            /* state key */
        const char *field, *value; /* a kept value */
    } ok[C_N] = {
        {"<ns1:result/>", "INV-1001", "total", "1550.00"},
        {"<invoicesUpdateResponse>OK</invoicesUpdateResponse>", "INV-1001", "totalpaid", "1525.00"},
        {"\"8da872e1-fbca-4a43-8e49-417c9bd9303a\"", "8da872e1-fbca-4a43-8e49-417c9bd9303a",
         "TotalBilledAmount", "10.0"},
        {"8da872e1-fbca-4a43-8e49-417c9bd9303a</string>", "8da872e1-fbca-4a43-8e49-417c9bd9303a",
         "TotalBilledAmount", "10"},
        {"<Status>Success</Status>", "1001", "InvoiceAmount", "1550"},
        {"<id>98765</id>", "98765", "client_name", "Bruce Norris"},
    };
    for (int w = 0; w < C_N; w++) {
        size_t len;
        char *body = load(w, &len);
        http_res r;
        send_std(w, body, &r);
        cr_assert_eq(r.rc, CURLE_OK);
        cr_expect_eq(r.status, 200, "%s: %ld %s", fixture[w], r.status, r.body);
        cr_expect(strstr(r.body, ok[w].expect), "%s: reply lacks %s: %s", fixture[w], ok[w].expect,
                  r.body);
        if (w == C_EBIZ) {
            cr_expect(strstr(r.body, "<StatusCode>1</StatusCode>"));
            cr_expect(strstr(
                r.body,
                "<InvoiceInternalId>5f1c7e2a-4d2a-4e98-9c1b-7a3e2f0b6d11</InvoiceInternalId>"));
        }
        res_free(&r);
        cJSON *st = ctl_get("/_sim/state");
        const cJSON *inv = invoice_state(st, target_of[w], ok[w].id);
        cr_assert_not_null(inv, "%s: no state for %s", fixture[w], ok[w].id);
        cr_expect_str_eq(str(cJSON_GetObjectItemCaseSensitive(inv, "last"), ok[w].field),
                         ok[w].value);
        cr_expect_eq(num(inv, "updates"), w == C_MID_XML ? 2 : 1, "%s", fixture[w]);
        cJSON_Delete(st);
        free(body);
    }
}

/* Review 71: the simulator read requests with the worker's own reply parser (which skips
 * white space before the XML declaration) and decimal type (18 digits after the point, a
 * 64-bit coefficient): the worker's limits were the contract. A server reads a decimal as
 * xsd:decimal, of any length, and a byte order mark may come before the declaration. */
Test(sim, decimals_of_any_length_and_a_byte_order_mark_are_accepted)
{
    size_t len;
    char *body = load(C_SOAP, &len);
    char *a = replace(body, "<ns1:total>1550.00</ns1:total>",
                      "<ns1:total>12345678901234567890.00</ns1:total>");
    char *b = replace(a, "<ns1:qty>", "<ns1:qty>0.0000000000000000001");
    char *c = malloc(strlen(b) + 4);
    memcpy(c, "\xEF\xBB\xBF", 3);
    strcpy(c + 3, b);
    http_res r;
    send_std(C_SOAP, c, &r);
    cr_assert_eq(r.rc, CURLE_OK);
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_expect(strstr(r.body, "<ns1:result/>"), "%s", r.body);
    res_free(&r);
    cJSON *st = ctl_get("/_sim/state");
    const cJSON *inv = invoice_state(st, "centra_soap", "INV-1001");
    cr_assert_not_null(inv);
    cr_expect_str_eq(str(cJSON_GetObjectItemCaseSensitive(inv, "last"), "total"),
                     "12345678901234567890.00");
    cJSON_Delete(st);
    free(body);
    free(a);
    free(b);
    free(c);
}

/* ==== contracts: refused ==== */

typedef struct refusal {
    const char *what;
    int which;
    const char *from, *to;   /* body mutation */
    const char *from2, *to2; /* a second one */
    const char *header;      /* header set or replaced */
    const char *path;        /* path override */
    const char *method;      /* method override */
    long status;
    const char *expect, *expect2; /* substrings of the reply */
} refusal;

/* 600 digits: longer than any buffer a value is read into (review 73: a cut value was judged
 * by its start) */
#define DIGITS_50 "11111111111111111111111111111111111111111111111111"
#define LONG_DIGITS                                                                                \
    DIGITS_50 DIGITS_50 DIGITS_50 DIGITS_50 DIGITS_50 DIGITS_50 DIGITS_50 DIGITS_50 DIGITS_50      \
        DIGITS_50 DIGITS_50 DIGITS_50

static const refusal refusals[] = {
    /* centra_soap: SOAP Client faults */
    {"centra_soap: invoice id removed", C_SOAP, "<ns1:id>INV-1001</ns1:id>", "", NULL, NULL, NULL,
     NULL, NULL, 500, "<faultcode>SOAP-ENV:Client</faultcode>",
     "invoice[1]/id: required element missing"},
    {"centra_soap: bad decimal", C_SOAP, "<ns1:total>1550.00</ns1:total>",
     "<ns1:total>1.550,00</ns1:total>", NULL, NULL, NULL, NULL, NULL, 500, "SOAP-ENV:Client",
     "total: '1.550,00' is not a plain decimal"},
    {"centra_soap: bad date", C_SOAP, "<ns1:invoicedate>2026-11-21</ns1:invoicedate>",
     "<ns1:invoicedate>21/11/2026</ns1:invoicedate>", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client", "invoicedate: '21/11/2026' is not a date YYYY-MM-DD"},
    {"centra_soap: wrong namespace", C_SOAP, "xmlns:ns1=\"http://www.centra.com/webservices/\"",
     "xmlns:ns1=\"http://www.centra.com/webservices/v2/\"", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client", "namespace"},
    {"centra_soap: wrong SOAPAction", C_SOAP, NULL, NULL, NULL, NULL,
     "SOAPAction: \"http://www.centra.com/webservices/Invoices_Get\"", NULL, NULL, 500,
     "SOAP-ENV:Client", "SOAPAction"},
    {"centra_soap: wrong password", C_SOAP, "<ns1:password>demo</ns1:password>",
     "<ns1:password>nope</ns1:password>", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client.Authentication", "The request was refused."},
    {"centra_soap: not well-formed", C_SOAP, "</ns1:invoices_Update>", "", NULL, NULL, NULL, NULL,
     NULL, 500, "SOAP-ENV:Client", "not well-formed"},
    {"centra_soap: white space before the XML declaration", C_SOAP, "<?xml", "\n  <?xml", NULL,
     NULL, NULL, NULL, NULL, 500, "SOAP-ENV:Client", "not well-formed"},
    {"centra_soap: a DTD", C_SOAP, "<SOAP-ENV:Envelope",
     "<!DOCTYPE x [<!ENTITY e \"v\">]><SOAP-ENV:Envelope", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client", "DTD"},
    {"centra_soap: CDATA between elements", C_SOAP, "<ns1:locked>false</ns1:locked>",
     "<ns1:locked>false</ns1:locked><![CDATA[junk]]>", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client", "unexpected text between elements"},
    {"centra_soap: a long number that is not one", C_SOAP, "<ns1:total>1550.00</ns1:total>",
     "<ns1:total>" LONG_DIGITS ".00x</ns1:total>", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client", "is not a plain decimal"},
    {"centra_soap: unknown element", C_SOAP, "<ns1:locked>false</ns1:locked>",
     "<ns1:lockd>false</ns1:lockd>", NULL, NULL, NULL, NULL, NULL, 500, "SOAP-ENV:Client",
     "lockd: unknown element"},
    {"centra_soap: out of order", C_SOAP, "<ns1:store>eu-store</ns1:store>", "",
     "<ns1:locked>false</ns1:locked>", "<ns1:locked>false</ns1:locked><ns1:store>eu</ns1:store>",
     NULL, NULL, NULL, 500, "SOAP-ENV:Client", "store: out of order"},
    {"centra_soap: wrong content type", C_SOAP, NULL, NULL, NULL, NULL,
     "Content-Type: application/json", NULL, NULL, 415, "content type", NULL},
    /* navision */
    {"navision: invoice id removed", C_NAV, "<ns1:id>INV-1001</ns1:id>", "", NULL, NULL, NULL, NULL,
     NULL, 500, "SOAP-ENV:Client", "invoice[1]/id: required element missing"},
    {"navision: bad decimal", C_NAV, "<ns1:qty>100</ns1:qty>", "<ns1:qty>1e2</ns1:qty>", NULL, NULL,
     NULL, NULL, NULL, 500, "SOAP-ENV:Client", "qty: '1e2' is not a plain decimal"},
    {"navision: bad date", C_NAV, "<ns1:duedate>2026-12-21</ns1:duedate>",
     "<ns1:duedate>2026-13-01</ns1:duedate>", NULL, NULL, NULL, NULL, NULL, 500, "SOAP-ENV:Client",
     "duedate: '2026-13-01' is not a date"},
    {"navision: wrong namespace", C_NAV, "xmlns:ns1=\"http://www.silkvms.com/webservices/\"",
     "xmlns:ns1=\"http://www.centra.com/webservices/\"", NULL, NULL, NULL, NULL, NULL, 500,
     "SOAP-ENV:Client", "namespace"},
    {"navision: wrong SOAPAction", C_NAV, NULL, NULL, NULL, NULL,
     "SOAPAction: \"http://www.centra.com/webservices/Invoices_Update\"", NULL, NULL, 500,
     "SOAP-ENV:Client", "SOAPAction"},
    {"navision: ecvatno is centra_soap's only", C_NAV,
     "<ns1:companyregistrationid>HRB 12345</ns1:companyregistrationid>",
     "<ns1:companyregistrationid>HRB 12345</ns1:companyregistrationid><ns1:ecvatno>x</ns1:ecvatno>",
     NULL, NULL, NULL, NULL, NULL, 500, "SOAP-ENV:Client", "ecvatno: unknown element"},
    /* midnight JSON: 400 */
    {"midnight: Guid removed", C_MID_JSON, "\"Guid\": \"8da872e1-fbca-4a43-8e49-417c9bd9303a\",",
     "", NULL, NULL, NULL, NULL, NULL, 400, "The request is invalid.",
     "Guid: required member missing"},
    {"midnight: Guid not a GUID", C_MID_JSON, "8da872e1-fbca-4a43-8e49-417c9bd9303a", "INV-1001",
     NULL, NULL, NULL, NULL, NULL, 400, "The request is invalid.",
     "Guid: 'INV-1001' is not a GUID"},
    {"midnight: bad decimal", C_MID_JSON, "\"TotalBilledAmount\": 10.0",
     "\"TotalBilledAmount\": \"ten\"", NULL, NULL, NULL, NULL, NULL, 400, "ModelState",
     "TotalBilledAmount: 'ten' is not a plain decimal"},
    {"midnight: exponent is not a plain decimal", C_MID_JSON, "\"SubTotalBilledAmount\": 8.0",
     "\"SubTotalBilledAmount\": 8e0", NULL, NULL, NULL, NULL, NULL, 400, "ModelState",
     "SubTotalBilledAmount: '8e0' is not a plain decimal"},
    {"midnight: bad date", C_MID_JSON, "\"InvoiceDate\": \"2024-04-29T12:35:06.5639005-04:00\"",
     "\"InvoiceDate\": \"04/29/2024\"", NULL, NULL, NULL, NULL, NULL, 400, "ModelState",
     "InvoiceDate: '04/29/2024' is not an ISO 8601 date"},
    {"midnight: line quantity not a number", C_MID_JSON, "\"Quantity\": 7.0", "\"Quantity\": true",
     NULL, NULL, NULL, NULL, NULL, 400, "ModelState", "InvoiceLine[0].Quantity: expected a number"},
    {"midnight: unknown member", C_MID_JSON, "\"TermsCode\"", "\"TermCode\"", NULL, NULL, NULL,
     NULL, NULL, 400, "ModelState", "TermCode: unknown member"},
    {"midnight: not JSON", C_MID_JSON, "\"Guid\":", "Guid:", NULL, NULL, NULL, NULL, NULL, 400,
     "ModelState", "not a JSON object"},
    {"midnight: wrong media type", C_MID_JSON, NULL, NULL, NULL, NULL, "Content-Type: text/plain",
     NULL, NULL, 415, "media type", NULL},
    {"midnight: wrong MISKEY", C_MID_JSON, NULL, NULL, NULL, NULL, "MISKEY: other", NULL, NULL, 401,
     "Authorization has been denied", NULL},
    {"midnight: no PRC token", C_MID_JSON, NULL, NULL, NULL, NULL, "Authorization: PRC wrong", NULL,
     NULL, 401, "Authorization has been denied", NULL},
    /* midnight XML */
    {"midnight xml: Guid removed", C_MID_XML, "<Guid>8da872e1-fbca-4a43-8e49-417c9bd9303a</Guid>",
     "", NULL, NULL, NULL, NULL, NULL, 400, "ModelState", "Guid: required element missing"},
    {"midnight xml: bad decimal", C_MID_XML, "<TotalBilledAmount>10</TotalBilledAmount>",
     "<TotalBilledAmount>10,5</TotalBilledAmount>", NULL, NULL, NULL, NULL, NULL, 400, "ModelState",
     "TotalBilledAmount: '10,5' is not a plain decimal"},
    {"midnight xml: bad date", C_MID_XML,
     "<InvoiceDate>2024-04-29T12:35:06.5639005-04:00</InvoiceDate>",
     "<InvoiceDate>yesterday</InvoiceDate>", NULL, NULL, NULL, NULL, NULL, 400, "ModelState",
     "InvoiceDate: 'yesterday'"},
    {"midnight xml: root prefixed in another namespace", C_MID_XML, "<InvoiceUpdateRequest ",
     "<p:InvoiceUpdateRequest xmlns:p=\"urn:not-midnight\" ", "</InvoiceUpdateRequest>",
     "</p:InvoiceUpdateRequest>", NULL, NULL, NULL, 400, "ModelState", "no namespace"},
    {"midnight xml: wrong namespace", C_MID_XML, "<InvoiceUpdateRequest ",
     "<InvoiceUpdateRequest xmlns=\"urn:other\" ", NULL, NULL, NULL, NULL, NULL, 400, "ModelState",
     "namespace"},
    /* ebizcharge: 200 Status=Error for fields, Client faults for the envelope */
    {"ebizcharge: InvoiceAmount removed", C_EBIZ, "<ebiz:InvoiceAmount>1550</ebiz:InvoiceAmount>",
     "", NULL, NULL, NULL, NULL, NULL, 200, "<Status>Error</Status><StatusCode>0</StatusCode>",
     "invoice/InvoiceAmount: required element missing"},
    {"ebizcharge: item ItemLineNumber removed", C_EBIZ,
     "<ebiz:ItemLineNumber>1</ebiz:ItemLineNumber>", "", NULL, NULL, NULL, NULL, NULL, 200,
     "<ErrorCode>2</ErrorCode>", "Item[1]/ItemLineNumber: required element missing"},
    {"ebizcharge: address IsDefault removed", C_EBIZ, "<ebiz:IsDefault>false</ebiz:IsDefault>", "",
     NULL, NULL, NULL, NULL, NULL, 200, "<Status>Error</Status>",
     "BillingAddress/IsDefault: required element missing"},
    {"ebizcharge: bad decimal", C_EBIZ, "<ebiz:UnitPrice>20.25</ebiz:UnitPrice>",
     "<ebiz:UnitPrice>$20.25</ebiz:UnitPrice>", NULL, NULL, NULL, NULL, NULL, 200,
     "<Status>Error</Status>", "UnitPrice: '$20.25' is not a plain decimal"},
    {"ebizcharge: bad date", C_EBIZ, "<ebiz:InvoiceDate>2026-11-21</ebiz:InvoiceDate>",
     "<ebiz:InvoiceDate>21.11.2026</ebiz:InvoiceDate>", NULL, NULL, NULL, NULL, NULL, 200,
     "<Status>Error</Status>", "InvoiceDate: '21.11.2026' is not a date YYYY-MM-DD or MM/DD/YYYY"},
    {"ebizcharge: bad boolean", C_EBIZ, "<ebiz:NotifyCustomer>false</ebiz:NotifyCustomer>",
     "<ebiz:NotifyCustomer>no</ebiz:NotifyCustomer>", NULL, NULL, NULL, NULL, NULL, 200,
     "<Status>Error</Status>", "NotifyCustomer: 'no' is not a boolean"},
    {"ebizcharge: out of order", C_EBIZ, "<ebiz:AmountDue>25</ebiz:AmountDue>", "",
     "<ebiz:Software/>", "<ebiz:Software/><ebiz:AmountDue>25</ebiz:AmountDue>", NULL, NULL, NULL,
     200, "<Status>Error</Status>", "AmountDue: out of order"},
    {"ebizcharge: wrong namespace", C_EBIZ, "xmlns:ebiz=\"http://eBizCharge.ServiceModel.SOAP\"",
     "xmlns:ebiz=\"http://eBizCharge.ServiceModel.SOAP/v2\"", NULL, NULL, NULL, NULL, NULL, 500,
     "<faultcode>s:Client</faultcode>", "namespace"},
    {"ebizcharge: wrong SOAPAction", C_EBIZ, NULL, NULL, NULL, NULL,
     "SOAPAction: \"http://eBizCharge.ServiceModel.SOAP/IeBizService/AddInvoice\"", NULL, NULL, 500,
     "s:Client", "SOAPAction"},
    {"ebizcharge: wrong security id", C_EBIZ, "<ebiz:SecurityId>sim-security-id</ebiz:SecurityId>",
     "<ebiz:SecurityId>other</ebiz:SecurityId>", NULL, NULL, NULL, NULL, NULL, 500,
     "wsse:FailedAuthentication", "The request was refused."},
    /* invoicexpress: 422 <errors> with the seed's wording */
    {"invoicexpress: client name removed", C_IXP, "<name>Bruce Norris</name>", "", NULL, NULL, NULL,
     NULL, NULL, 422, "<errors><error>", "Client is invalid"},
    {"invoicexpress: bad decimal", C_IXP, "<unit_price>10.0</unit_price>",
     "<unit_price>ten</unit_price>", NULL, NULL, NULL, NULL, NULL, 422, "<errors>",
     "unit_price must be a number"},
    {"invoicexpress: unit_price 0", C_IXP, "<unit_price>5.0</unit_price>",
     "<unit_price>0.00</unit_price>", NULL, NULL, NULL, NULL, NULL, 422, "<errors>",
     "unit_price must be a number greater than 0"},
    {"invoicexpress: bad date", C_IXP, "<date>19/10/2009</date>", "<date>2009-10-19</date>", NULL,
     NULL, NULL, NULL, NULL, 422, "<errors>", "Date 2009-10-19 is not a valid date"},
    {"invoicexpress: wrong namespace", C_IXP, "<invoice>", "<invoice xmlns=\"urn:other\">", NULL,
     NULL, NULL, NULL, NULL, 422, "<errors>", "root element"},
    {"invoicexpress: unit kg", C_IXP, "<unit>unit</unit>", "<unit>kg</unit>", NULL, NULL, NULL,
     NULL, NULL, 422, "<errors>", "Unit kg is not included in the list of accepted units"},
    {"invoicexpress: retention 100", C_IXP, "<retention>5</retention>",
     "<retention>100</retention>", NULL, NULL, NULL, NULL, NULL, 422, "<errors>",
     "Retention must be a number between 0 and 99.99"},
    {"invoicexpress: bad email", C_IXP, "<email>foo@bar.com</email>", "<email>foo-at-bar</email>",
     NULL, NULL, NULL, NULL, NULL, 422, "<errors>", "email must be an email address"},
    {"invoicexpress: due before date", C_IXP, "<due_date>19/10/2009</due_date>",
     "<due_date>18/10/2009</due_date>", NULL, NULL, NULL, NULL, NULL, 422, "<errors>",
     "Due date must be after or equal to the date"},
    {"invoicexpress: unknown country", C_IXP, "<country>Germany</country>",
     "<country>Germani</country>", NULL, NULL, NULL, NULL, NULL, 422, "<errors>",
     "Country Germani was not found"},
    {"invoicexpress: quantity 0", C_IXP, "<quantity>1.0</quantity>", "<quantity>0</quantity>", NULL,
     NULL, NULL, NULL, NULL, 422, "<errors>", "quantity must be a number greater than 0"},
    {"invoicexpress: negative discount", C_IXP, "<discount>10.0</discount>",
     "<discount>-1</discount>", NULL, NULL, NULL, NULL, NULL, 422, "<errors>",
     "discount must be greater than or equal to 0"},
    {"invoicexpress: no items", C_IXP, "<items type=\"array\">", "<items type=\"array\"/><dropped>",
     "</items>", "</dropped>", NULL, NULL, NULL, 422, "<errors>", "At least one item is required"},
    {"invoicexpress: items not an array", C_IXP, "<items type=\"array\">", "<items>", NULL, NULL,
     NULL, NULL, NULL, 422, "<errors>", "Invoice items is invalid"},
    {"invoicexpress: items a hash", C_IXP, "<items type=\"array\">", "<items type=\"hash\">", NULL,
     NULL, NULL, NULL, NULL, 422, "<errors>", "Invoice items is invalid"},
    {"invoicexpress: a long unit_price that is not a number", C_IXP,
     "<unit_price>10.0</unit_price>", "<unit_price>" LONG_DIGITS "abc</unit_price>", NULL, NULL,
     NULL, NULL, NULL, 422, "<errors>", "unit_price must be a number"},
    {"invoicexpress: wrong api_key", C_IXP, NULL, NULL, NULL, NULL, NULL,
     "/invoices/98765.xml?api_key=nope", NULL, 401, "<errors>", "API Key"},
    {"invoicexpress: POST instead of PUT", C_IXP, NULL, NULL, NULL, NULL, NULL, NULL, "POST", 405,
     "Method Not Allowed", NULL},
    {"invoicexpress: id not found", C_IXP, NULL, NULL, NULL, NULL, NULL,
     "/invoices/INV-1.xml?api_key=sim-api-key", NULL, 404, "<errors>",
     "doesn't match any existing invoice"},
};

Test(sim, contract_violations_get_the_targets_own_error)
{
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        const refusal *c = &refusals[i];
        size_t len;
        char *body = load(c->which, &len);
        if (c->from) {
            char *m = replace(body, c->from, c->to);
            free(body);
            body = m;
        }
        if (c->from2) {
            char *m = replace(body, c->from2, c->to2);
            free(body);
            body = m;
        }
        req q = base(c->which);
        if (c->header)
            req_set(&q, c->header);
        if (c->path)
            snprintf(q.path, sizeof(q.path), "%s", c->path);
        if (c->method)
            snprintf(q.method, sizeof(q.method), "%s", c->method);
        http_res r;
        req_send(&q, body, strlen(body), 0, &r);
        cr_assert_eq(r.rc, CURLE_OK, "%s", c->what);
        cr_expect_eq(r.status, c->status, "%s: status %ld: %s", c->what, r.status, r.body);
        cr_expect(strstr(r.body, c->expect), "%s: lacks \"%s\": %s", c->what, c->expect, r.body);
        if (c->expect2)
            cr_expect(strstr(r.body, c->expect2), "%s: lacks \"%s\": %s", c->what, c->expect2,
                      r.body);
        res_free(&r);
        free(body);
    }
    /* Nothing refused was kept. */
    cJSON *st = ctl_get("/_sim/state");
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(st, "targets");
    const cJSON *t;
    cJSON_ArrayForEach(t, targets)
    {
        cr_expect_eq(num(t, "updates"), 0, "%s kept a refused request", t->string);
    }
    cJSON_Delete(st);
    expect_clean_exit();
}

Test(sim, navision_basic_auth_and_validation_off_from_the_command_line)
{
    /* Restart with a config: navision wants Basic, other credentials, validation off. */
    iw_proc_stop(&sim, 5000);
    char path[] = "/tmp/iw-sim-conf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char conf[] =
        "{\"targets\": {\"centra_navision\": {\"auth\": \"basic\", \"username\": \"nav\", "
        "\"password\": \"s3cret\"}, \"invoicexpress\": {\"api_key\": \"k2\"}}}";
    cr_assert_eq(write(fd, conf, sizeof(conf) - 1), (ssize_t)(sizeof(conf) - 1));
    close(fd);
    const char *extra[] = {"--config", path, "--validate", "off", NULL};
    start_args(extra);
    unlink(path);

    size_t len;
    char *nav = load(C_NAV, &len);
    http_res r;
    send_std(C_NAV, nav, &r);
    cr_expect_eq(r.status, 401);
    cr_expect(strstr(r.www_auth, "Basic"), "WWW-Authenticate: %s", r.www_auth);
    res_free(&r);
    req q = base(C_NAV);
    req_set(&q, "Authorization: Basic bmF2OnMzY3JldA=="); /* nav:s3cret */
    req_send(&q, nav, len, 0, &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    res_free(&r);

    /* With validation off a kg unit passes; the configured api_key is required. */
    char *ixp = load(C_IXP, &len);
    char *kg = replace(ixp, "<unit>unit</unit>", "<unit>kg</unit>");
    send_std(C_IXP, kg, &r);
    cr_expect_eq(r.status, 401);
    res_free(&r);
    q = base(C_IXP);
    snprintf(q.path, sizeof(q.path), "/invoices/7.xml?api_key=k2");
    req_send(&q, kg, strlen(kg), 0, &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    res_free(&r);
    /* ...and it can be switched back on at run time. */
    cr_assert_eq(ctl_post("/_sim/validate", "{\"on\": true}"), 200);
    req_send(&q, kg, strlen(kg), 0, &r);
    cr_expect_eq(r.status, 422);
    cr_expect(strstr(r.body, "Unit kg is not included"));
    res_free(&r);
    free(kg);
    free(ixp);
    free(nav);
}

/* Where seed 003 is silent the simulator acts out each reading: EBizCharge dates in either
 * form by default (the seed's examples write MM/DD/YYYY, its notes YYYY-MM-DD), one form when
 * configured; refused credentials as a coded Fault, a plain Client Fault or an HTTP 401. */
Test(sim, seed_silences_are_configurable)
{
    size_t len;
    char *ebiz = load(C_EBIZ, &len);
    char *mdy = replace(ebiz, "<ebiz:InvoiceDate>2026-11-21</ebiz:InvoiceDate>",
                        "<ebiz:InvoiceDate>11/21/2026</ebiz:InvoiceDate>");
    http_res r;
    send_std(C_EBIZ, mdy, &r);
    cr_expect(strstr(r.body, "<Status>Success</Status>"), "MM/DD/YYYY by default: %s", r.body);
    res_free(&r);
    send_std(C_EBIZ, ebiz, &r);
    cr_expect(strstr(r.body, "<Status>Success</Status>"), "YYYY-MM-DD by default: %s", r.body);
    res_free(&r);

    iw_proc_stop(&sim, 5000);
    char path[] = "/tmp/iw-sim-conf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char conf[] =
        "{\"targets\": {\"ebizcharge\": {\"dates\": \"iso\", \"auth_failure\": \"fault\"},"
        " \"centra_soap\": {\"auth_failure\": \"http\"},"
        " \"midnight\": {\"refresh_auth\": \"current\"}}}";
    cr_assert_eq(write(fd, conf, sizeof(conf) - 1), (ssize_t)(sizeof(conf) - 1));
    close(fd);
    const char *extra[] = {"--config", path, NULL};
    start_args(extra);
    unlink(path);
    send_std(C_EBIZ, mdy, &r);
    cr_expect(strstr(r.body, "InvoiceDate: '11/21/2026' is not a date YYYY-MM-DD"), "%s", r.body);
    res_free(&r);
    send_std(C_EBIZ, ebiz, &r);
    cr_expect(strstr(r.body, "<Status>Success</Status>"), "%s", r.body);
    res_free(&r);
    char *bad = replace(ebiz, "<ebiz:SecurityId>sim-security-id</ebiz:SecurityId>",
                        "<ebiz:SecurityId>other</ebiz:SecurityId>");
    send_std(C_EBIZ, bad, &r);
    cr_expect_eq(r.status, 500);
    cr_expect(strstr(r.body, "<faultcode>s:Client</faultcode>"), "%s", r.body);
    res_free(&r);
    char *soap = load(C_SOAP, &len);
    char *nope =
        replace(soap, "<ns1:password>demo</ns1:password>", "<ns1:password>nope</ns1:password>");
    send_std(C_SOAP, nope, &r);
    cr_expect_eq(r.status, 401, "%s", r.body);
    res_free(&r);

    /* refresh_auth "current": once the token was replaced, the issued one cannot refresh */
    cr_assert_eq(ctl_post("/_sim/expire-token", "{}"), 200);
    req t = {.method = "POST", .path = "/v1/Token/RegenerateAuthToken", .n = 0};
    req_set(&t, "Authorization: PRC sim-prc, Midnight sim-mt-5k9w");
    req_set(&t, "MISKEY: sim-mis");
    req_send(&t, "", 0, 0, &r);
    cr_expect_eq(r.status, 401, "%s", r.body);
    res_free(&r);
    req_set(&t, "Authorization: PRC sim-prc"); /* without a Midnight token: refused too */
    req_send(&t, "", 0, 0, &r);
    cr_expect_eq(r.status, 401, "%s", r.body);
    res_free(&r);

    /* a refusal in each target's own shape: Centra's success=false */
    fault("{\"target\": \"centra_soap\", \"kind\": \"refusal\", \"count\": 1, \"message\": "
          "\"store closed\"}");
    send_std(C_SOAP, soap, &r);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "<ns1:success>false</ns1:success>") &&
                  strstr(r.body, "<ns1:message>store closed</ns1:message>"),
              "%s", r.body);
    res_free(&r);

    /* units: the seed refuses kg; any other unit passes by default */
    char *ixp = load(C_IXP, &len);
    char *box = replace(ixp, "<unit>unit</unit>", "<unit>box</unit>");
    send_std(C_IXP, box, &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    res_free(&r);
    free(box);
    free(ixp);
    free(nope);
    free(soap);
    free(bad);
    free(mdy);
    free(ebiz);
}

/* Midnight keeps the lines it holds: an update replaces the lines it names and adds the ones
 * that name no InvoiceLineID or InvoiceLineGuid, so lines sent without their ids pile up. */
Test(sim, midnight_lines_without_ids_pile_up)
{
    size_t len;
    char *body = load(C_MID_JSON, &len);
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc);
    cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(doc, "InvoiceLine"))
    {
        cJSON_DeleteItemFromObjectCaseSensitive(l, "InvoiceLineID");
        cJSON_DeleteItemFromObjectCaseSensitive(l, "InvoiceLineGuid");
    }
    char *noid = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    const char *guid = "8da872e1-fbca-4a43-8e49-417c9bd9303a";
    double want[] = {1, 1, 3, 5}; /* the sample's two lines share InvoiceLineID 1 */
    for (int i = 0; i < 4; i++) {
        http_res r;
        send_std(C_MID_JSON, i < 2 ? body : noid, &r);
        cr_assert_eq(r.status, 200, "%s", r.body);
        res_free(&r);
        cJSON *st = ctl_get("/_sim/state");
        const cJSON *inv = invoice_state(st, "midnight", guid);
        cr_assert_not_null(inv);
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(inv, "last");
        cr_expect_eq(num(last, "lines"), 2);
        cr_expect_eq(num(last, "lines_stored"), want[i], "after update %d", i + 1);
        cJSON_Delete(st);
    }
    cr_assert_eq(ctl_post("/_sim/reset", "{}"), 200);
    free(noid);
    free(body);
}

Test(sim, unknown_paths_and_a_bad_config)
{
    req q = {.method = "GET", .path = "/nothing/here", .n = 0};
    http_res r;
    req_send(&q, NULL, 0, 0, &r);
    cr_expect_eq(r.status, 404);
    res_free(&r);
    snprintf(q.path, sizeof(q.path), "/_sim/nope");
    req_send(&q, NULL, 0, 0, &r);
    cr_expect_eq(r.status, 404);
    res_free(&r);
    cr_expect_eq(ctl_post("/_sim/faults", "{\"target\": \"centra_soap\", \"kind\": \"meteor\"}"),
                 400);
    cr_expect_eq(ctl_post("/_sim/faults", "{\"target\": \"nobody\", \"kind\": \"error\"}"), 400);
    cr_expect_eq(ctl_post("/_sim/faults", "not json"), 400);

    /* A config with an unknown key is refused at start with exit status 2. */
    char path[] = "/tmp/iw-sim-conf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char conf[] = "{\"targets\": {\"midnight\": {\"tokn\": \"x\"}}}";
    cr_assert_eq(write(fd, conf, sizeof(conf) - 1), (ssize_t)(sizeof(conf) - 1));
    close(fd);
    char *argv[] = {
        (char *)iw_build_path("target-sim"), "--listen", "127.0.0.1:1", "--config", path, NULL};
    iw_proc p;
    cr_assert_eq(iw_proc_start(&p, argv, false), 0);
    int st = iw_proc_wait(&p, 10000);
    unlink(path);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);

    /* The example config in the fixtures loads. */
    char ex[512], listen[64], line[128];
    snprintf(ex, sizeof(ex), "%s/sim/config-example.json", IW_FIXTURES_DIR);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", iw_free_port());
    char *argv2[] = {(char *)iw_build_path("target-sim"),
                     "--listen",
                     listen,
                     "--config",
                     ex,
                     "--exit-with-parent",
                     NULL};
    cr_assert_eq(iw_proc_start(&p, argv2, true), 0);
    cr_expect_gt(iw_proc_read_line(&p, line, sizeof(line), 10000), 0, "example config refused");
    st = iw_proc_stop(&p, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(sim, exits_zero_on_sigterm_and_sigint)
{
    iw_proc_signal(&sim, SIGTERM);
    int st = iw_proc_wait(&sim, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: status %d", st);
    start_args(NULL);
    iw_proc_signal(&sim, SIGINT);
    st = iw_proc_wait(&sim, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGINT: status %d", st);
    start_args(NULL); /* for the fini */
}

/* ==== state ==== */

Test(sim, state_keeps_versions_keys_and_settled_invoices)
{
    size_t len;
    char *body = load(C_IXP, &len);
    static const char *const versions[] = {"3", "5", "4"};
    for (int i = 0; i < 3; i++) {
        req q = base(C_IXP);
        char h[128];
        snprintf(h, sizeof(h), "X-Invoice-Version: %s", versions[i]);
        req_set(&q, h);
        snprintf(h, sizeof(h), "X-Request-ID: ev-%d:invoicexpress:1", i);
        req_set(&q, h);
        snprintf(h, sizeof(h), "Idempotency-Key: ev-%d:invoicexpress", i);
        req_set(&q, h);
        http_res r;
        req_send(&q, body, len, 0, &r);
        cr_assert_eq(r.status, 200, "%s", r.body);
        res_free(&r);
    }
    cJSON *st = ctl_get("/_sim/state?target=invoicexpress&id=98765");
    const cJSON *inv = invoice_state(st, "invoicexpress", "98765");
    cr_assert_not_null(inv);
    cr_expect_eq(num(inv, "updates"), 3);
    cr_expect_str_eq(str(inv, "version"), "4");
    cr_expect_str_eq(str(inv, "max_version"), "5");
    cr_expect_str_eq(str(inv, "event"), "ev-2:invoicexpress");
    cr_expect_str_eq(str(inv, "idempotency_key"), "ev-2:invoicexpress");
    cJSON_Delete(st);

    /* A settled invoice refuses updates with the seed's message. */
    cr_assert_eq(ctl_post("/_sim/settle", "{\"id\": \"98765\"}"), 200);
    http_res r;
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.status, 422);
    cr_expect(strstr(r.body, "<error>Invoice has been settled so cant be changed anymore.</error>"),
              "%s", r.body);
    res_free(&r);
    st = ctl_get("/_sim/state?target=invoicexpress");
    inv = invoice_state(st, "invoicexpress", "98765");
    cr_expect_eq(num(inv, "updates"), 3);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(inv, "settled")));
    cJSON_Delete(st);

    /* Reset forgets everything. */
    cr_assert_eq(ctl_post("/_sim/reset", "{}"), 200);
    st = ctl_get("/_sim/state");
    cr_expect_null(invoice_state(st, "invoicexpress", "98765"));
    cJSON_Delete(st);
    free(body);
    expect_clean_exit();
}

/* Sends the navision seed request for invoice INV-1001 with X-Invoice-Version `version`, the
 * body's po number set to PO-V<body_version>, and X-Request-ID <event>:centra_navision:<attempt>.
 * Returns the HTTP status. */
static long send_nav_version(const char *seed, int version, int body_version, const char *event,
                             int attempt)
{
    char po[64], h[160];
    snprintf(po, sizeof(po), "<ns1:ponumber>PO-V%d</ns1:ponumber>", body_version);
    char *body = replace(seed, "<ns1:ponumber>PO-7781</ns1:ponumber>", po);
    req q = base(C_NAV);
    snprintf(h, sizeof(h), "X-Invoice-Version: %d", version);
    req_set(&q, h);
    snprintf(h, sizeof(h), "X-Request-ID: %s:centra_navision:%d", event, attempt);
    req_set(&q, h);
    http_res r;
    req_send(&q, body, strlen(body), 0, &r);
    cr_assert_eq(r.rc, CURLE_OK);
    long st = r.status;
    res_free(&r);
    free(body);
    return st;
}

/* The history of INV-1001 at centra_navision (borrowed from doc). */
static const cJSON *nav_history(const cJSON *doc, const cJSON **rec)
{
    *rec = invoice_state(doc, "centra_navision", "INV-1001");
    cr_assert_not_null(*rec, "no state for INV-1001");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(*rec, "history");
    cr_assert(cJSON_IsArray(h), "no history array");
    return h;
}

Test(sim, history_keeps_accepted_versions_in_order_bounded_and_reset)
{
    size_t len;
    char *seed = load(C_NAV, &len);
    int64_t t0 = (int64_t)time(NULL) * 1000 - 1000;
    /* Accepted in the order 3, 5, 4 (an older one after a newer), 5 again (a repeat, attempt 2);
     * one 503 in between is no accepted update; the last body carries a different version. */
    cr_assert_eq(send_nav_version(seed, 3, 3, "ev-3", 1), 200);
    cr_assert_eq(send_nav_version(seed, 5, 5, "ev-5", 1), 200);
    fault("{\"target\": \"centra_navision\", \"kind\": \"error\", \"status\": 503, \"count\": 1}");
    cr_assert_eq(send_nav_version(seed, 6, 6, "ev-6", 1), 503);
    cr_assert_eq(send_nav_version(seed, 4, 4, "ev-4", 1), 200);
    cr_assert_eq(send_nav_version(seed, 5, 7, "ev-5", 2), 200);

    cJSON *st = ctl_get("/_sim/state?target=centra_navision&id=INV-1001");
    const cJSON *rec, *h = nav_history(st, &rec);
    static const struct {
        const char *version, *body_version, *event;
        int attempt;
    } want[] = {{"3", "3", "ev-3:centra_navision", 1},
                {"5", "5", "ev-5:centra_navision", 1},
                {"4", "4", "ev-4:centra_navision", 1},
                {"5", "7", "ev-5:centra_navision", 2}};
    cr_assert_eq(cJSON_GetArraySize(h), 4, "history of %d entries", cJSON_GetArraySize(h));
    double prev_wall = 0, prev_mono = 0;
    for (int i = 0; i < 4; i++) {
        const cJSON *e = cJSON_GetArrayItem(h, i);
        cr_expect_str_eq(str(e, "version"), want[i].version, "entry %d", i);
        cr_expect_str_eq(str(e, "body_version"), want[i].body_version, "entry %d", i);
        cr_expect_str_eq(str(e, "event"), want[i].event, "entry %d", i);
        cr_expect_eq(num(e, "attempt"), want[i].attempt, "entry %d", i);
        cr_expect_geq(num(e, "at_ms"), (double)t0, "entry %d: wall arrival", i);
        cr_expect_geq(num(e, "at_ms"), prev_wall, "entry %d: arrival order", i);
        cr_expect_gt(num(e, "mono_ms"), 0);
        cr_expect_geq(num(e, "mono_ms"), prev_mono, "entry %d: monotonic arrival order", i);
        prev_wall = num(e, "at_ms");
        prev_mono = num(e, "mono_ms");
    }
    cr_expect_eq(num(rec, "history_dropped"), 0);
    cr_expect_str_eq(str(rec, "version"), "5");
    cr_expect_str_eq(str(rec, "body_version"), "7");
    cr_expect_str_eq(str(cJSON_GetObjectItemCaseSensitive(rec, "last"), "ponumber"), "PO-V7");
    cJSON_Delete(st);

    /* Bounded: past IW_SIM_HISTORY_MAX (4096) the oldest entries go and are counted. */
    cr_assert_eq(ctl_post("/_sim/validate", "{\"on\": false}"), 200);
    int extra = 4096 + 10 - 4;
    for (int i = 0; i < extra; i++)
        cr_assert_eq(send_nav_version(seed, 100 + i, 100 + i, "ev-bulk", 1), 200, "request %d", i);
    st = ctl_get("/_sim/state?target=centra_navision&id=INV-1001");
    h = nav_history(st, &rec);
    cr_expect_eq(cJSON_GetArraySize(h), 4096);
    cr_expect_eq(num(rec, "history_dropped"), 10);
    cr_expect_eq(num(rec, "updates"), 4096 + 10);
    /* the oldest kept is the 11th accepted: bulk version 100 + 6 */
    cr_expect_str_eq(str(cJSON_GetArrayItem(h, 0), "version"), "106");
    char last[16];
    snprintf(last, sizeof(last), "%d", 100 + extra - 1);
    cr_expect_str_eq(str(cJSON_GetArrayItem(h, 4095), "version"), last);
    cr_expect_str_eq(str(cJSON_GetArrayItem(h, 4095), "body_version"), last);
    cJSON_Delete(st);

    /* Reset forgets the history with the rest of the state. */
    cr_assert_eq(ctl_post("/_sim/reset", "{}"), 200);
    st = ctl_get("/_sim/state?target=centra_navision");
    cr_expect_null(invoice_state(st, "centra_navision", "INV-1001"));
    cJSON_Delete(st);
    cr_assert_eq(send_nav_version(seed, 9, 9, "ev-9", 3), 200);
    st = ctl_get("/_sim/state?target=centra_navision&id=INV-1001");
    h = nav_history(st, &rec);
    cr_expect_eq(cJSON_GetArraySize(h), 1);
    cr_expect_eq(num(rec, "history_dropped"), 0);
    cr_expect_str_eq(str(cJSON_GetArrayItem(h, 0), "event"), "ev-9:centra_navision");
    cJSON_Delete(st);
    free(seed);
    expect_clean_exit();
}

Test(sim, ebizcharge_internal_id_is_stable_per_invoice)
{
    size_t len;
    char *body = load(C_EBIZ, &len);
    char *noid = replace(
        body,
        "<ebiz:invoiceInternalId>5f1c7e2a-4d2a-4e98-9c1b-7a3e2f0b6d11</ebiz:invoiceInternalId>",
        "<ebiz:invoiceInternalId/>");
    char first[128] = "";
    for (int i = 0; i < 2; i++) {
        http_res r;
        send_std(C_EBIZ, noid, &r);
        cr_assert_eq(r.status, 200);
        const char *a = strstr(r.body, "<InvoiceInternalId>");
        cr_assert_not_null(a, "%s", r.body);
        char id[128];
        snprintf(id, sizeof(id), "%.36s", a + strlen("<InvoiceInternalId>"));
        if (i == 0)
            snprintf(first, sizeof(first), "%s", id);
        else
            cr_expect_str_eq(id, first);
        res_free(&r);
    }
    /* Another invoice number gets another id; no number at all is the seed's error. */
    char *other = replace(noid, "<ebiz:invoiceNumber>1001</ebiz:invoiceNumber>",
                          "<ebiz:invoiceNumber>1002</ebiz:invoiceNumber>");
    http_res r;
    send_std(C_EBIZ, other, &r);
    cr_expect(!strstr(r.body, first), "%s", r.body);
    res_free(&r);
    char *none1 =
        replace(noid, "<ebiz:invoiceNumber>1001</ebiz:invoiceNumber>", "<ebiz:invoiceNumber/>");
    char *none =
        replace(none1, "<ebiz:InvoiceNumber>1001</ebiz:InvoiceNumber>", "<ebiz:InvoiceNumber/>");
    send_std(C_EBIZ, none, &r);
    cr_expect(strstr(r.body, "<Status>Error</Status>") && strstr(r.body, "@prmInvoiceNumber") &&
                  strstr(r.body, "<ErrorCode>3</ErrorCode>"),
              "%s", r.body);
    res_free(&r);
    free(none);
    free(none1);
    free(other);
    free(noid);
    free(body);
}

Test(sim, midnight_token_refresh_flow)
{
    size_t len;
    char *body = load(C_MID_JSON, &len);
    http_res r;
    send_std(C_MID_JSON, body, &r);
    cr_expect_eq(r.status, 200);
    res_free(&r);

    cr_assert_eq(ctl_post("/_sim/expire-token", "{}"), 200);
    send_std(C_MID_JSON, body, &r);
    cr_expect_eq(r.status, 401);
    res_free(&r);

    /* The refresh needs the MISKEY, the PRC token and a Midnight token (the issued one will
     * do by default); it answers a JSON string. */
    req t = {.method = "POST", .path = "/v1/Token/RegenerateAuthToken", .n = 0};
    req_set(&t, "Authorization: PRC sim-prc");
    req_send(&t, "", 0, 0, &r);
    cr_expect_eq(r.status, 401);
    res_free(&r);
    req_set(&t, "MISKEY: sim-mis");
    req_send(&t, "", 0, 0, &r);
    cr_expect_eq(r.status, 401, "no Midnight token: %s", r.body);
    res_free(&r);
    req_set(&t, "Authorization: PRC sim-prc, Midnight sim-mt-5k9w"); /* folded, RFC 9110 */
    req_send(&t, "", 0, 0, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *tok = cJSON_Parse(r.body);
    cr_assert(cJSON_IsString(tok), "%s", r.body);
    char fresh[160];
    snprintf(fresh, sizeof(fresh), "Authorization: Midnight %s", tok->valuestring);
    cJSON_Delete(tok);
    res_free(&r);

    send_std(C_MID_JSON, body, &r); /* the old token */
    cr_expect_eq(r.status, 401);
    res_free(&r);
    req q = base(C_MID_JSON);
    snprintf(q.hdrs[q.n - 1], sizeof(q.hdrs[0]), "%s", fresh); /* replaces the Midnight token */
    req_send(&q, body, len, 0, &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    res_free(&r);
    free(body);
    expect_clean_exit();
}

/* ==== faults ==== */

Test(sim, latency_delays_only_its_request)
{
    fault("{\"target\": \"centra_soap\", \"kind\": \"latency\", \"ms\": 1200, \"count\": 1}");
    size_t l1, l2;
    char *soap = load(C_SOAP, &l1), *ixp = load(C_IXP, &l2);
    http_res ra, rb;
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    req qa = base(C_SOAP), qb = base(C_IXP);
    struct curl_slist *ha, *hb;
    CURL *a = req_handle(&qa, soap, l1, 0, &ra, &ha);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, a);
    long long t0 = iw_now_ms(), done_a = 0, done_b = 0;
    CURL *b = NULL;
    int running = 1;
    while (running && iw_now_ms() - t0 < 10000) {
        curl_multi_perform(m, &running);
        if (!b && iw_now_ms() - t0 >= 200) { /* the slow one is in the server by now */
            b = req_handle(&qb, ixp, l2, 0, &rb, &hb);
            curl_multi_add_handle(m, b);
            running = 1;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            if (msg->easy_handle == a)
                done_a = iw_now_ms() - t0;
            else
                done_b = iw_now_ms() - t0;
        }
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    cr_assert_not_null(b);
    res_finish(a, &ra);
    res_finish(b, &rb);
    cr_expect_eq(ra.status, 200);
    cr_expect_eq(rb.status, 200);
    cr_expect_geq(done_a, 1200, "delayed request took %lld ms", done_a);
    cr_expect_lt(done_b, 900, "the other request waited: %lld ms", done_b);
    cr_expect_lt(done_b, done_a);
    curl_multi_remove_handle(m, a);
    curl_multi_remove_handle(m, b);
    curl_easy_cleanup(a);
    curl_easy_cleanup(b);
    curl_multi_cleanup(m);
    curl_slist_free_all(ha);
    curl_slist_free_all(hb);
    res_free(&ra);
    res_free(&rb);

    /* count 1: the next one is fast again; a random range stays inside it. */
    http_res r;
    send_std(C_SOAP, soap, &r);
    cr_expect_lt(r.total_ms, 500);
    res_free(&r);
    fault("{\"target\": \"centra_soap\", \"kind\": \"latency\", \"min_ms\": 100, \"max_ms\": 300, "
          "\"count\": 3}");
    for (int i = 0; i < 3; i++) {
        send_std(C_SOAP, soap, &r);
        cr_expect(r.total_ms >= 100 && r.total_ms < 800, "took %lld ms", r.total_ms);
        res_free(&r);
    }
    free(soap);
    free(ixp);
    expect_clean_exit();
}

Test(sim, error_statuses_counts_rates_and_time_windows)
{
    size_t len;
    char *body = load(C_NAV, &len);
    http_res r;
    fault("{\"target\": \"centra_navision\", \"kind\": \"error\", \"status\": 502, \"count\": 2}");
    for (int i = 0; i < 3; i++) {
        send_std(C_NAV, body, &r);
        cr_expect_eq(r.status, i < 2 ? 502 : 200, "request %d", i);
        res_free(&r);
    }
    /* A random status from a set. */
    fault("{\"target\": \"centra_navision\", \"kind\": \"5xx\", \"statuses\": [500, 502, 503], "
          "\"count\": 40}");
    int drawn[3] = {0, 0, 0}; /* 500, 502, 503 */
    for (int i = 0; i < 40; i++) {
        send_std(C_NAV, body, &r);
        cr_expect(r.status == 500 || r.status == 502 || r.status == 503, "status %ld", r.status);
        drawn[0] += r.status == 500;
        drawn[1] += r.status == 502;
        drawn[2] += r.status == 503;
        res_free(&r);
    }
    cr_expect(drawn[0] && drawn[1] && drawn[2], "not every status was drawn");
    /* A fraction of replies. */
    fault("{\"target\": \"centra_navision\", \"kind\": \"error\", \"status\": 503, \"rate\": 0.3}");
    int n503 = 0;
    for (int i = 0; i < 300; i++) {
        send_std(C_NAV, body, &r);
        n503 += r.status == 503;
        cr_expect(r.status == 503 || r.status == 200);
        res_free(&r);
    }
    cr_expect(n503 > 45 && n503 < 135, "%d of 300 were 503 at rate 0.3", n503);
    cr_assert_eq(ctl_post("/_sim/faults", "{\"target\": \"centra_navision\", \"kind\": \"clear\"}"),
                 200);
    send_std(C_NAV, body, &r);
    cr_expect_eq(r.status, 200);
    res_free(&r);
    /* For the next T: then it ends by itself. */
    fault("{\"target\": \"*\", \"kind\": \"error\", \"status\": 503, \"for_ms\": 500}");
    send_std(C_NAV, body, &r);
    cr_expect_eq(r.status, 503);
    res_free(&r);
    iw_sleep_ms(700);
    send_std(C_NAV, body, &r);
    cr_expect_eq(r.status, 200);
    res_free(&r);
    /* The stats saw all of it. */
    cJSON *s = ctl_get("/_sim/stats");
    const cJSON *nav = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "targets"), "centra_navision");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(nav, "by_status");
    cr_expect_eq(num(nav, "requests"), 3 + 40 + 300 + 1 + 2);
    cr_expect_eq(num(bs, "500"), drawn[0]);
    cr_expect_eq(num(bs, "502"), 2 + drawn[1]);
    cr_expect_eq(num(bs, "503"), drawn[2] + n503 + 1);
    cr_expect_eq(num(bs, "200"), 1 + (300 - n503) + 1 + 1);
    cJSON_Delete(s);
    free(body);
    expect_clean_exit();
}

Test(sim, rate_limit_sends_retry_after_in_both_forms)
{
    size_t len;
    char *body = load(C_MID_JSON, &len);
    http_res r;
    fault("{\"target\": \"midnight\", \"kind\": \"rate_limit\", \"retry_after\": 7, \"count\": 1}");
    send_std(C_MID_JSON, body, &r);
    cr_expect_eq(r.status, 429);
    cr_expect_str_eq(r.retry_after, "7");
    res_free(&r);
    fault("{\"target\": \"midnight\", \"kind\": \"429\", \"retry_after\": 30, "
          "\"retry_after_format\": \"http-date\", \"count\": 1}");
    send_std(C_MID_JSON, body, &r);
    cr_expect_eq(r.status, 429);
    time_t when = curl_getdate(r.retry_after, NULL);
    cr_assert_neq(when, (time_t)-1, "not an HTTP-date: %s", r.retry_after);
    long ahead = (long)(when - time(NULL));
    cr_expect(ahead >= 28 && ahead <= 31, "Retry-After %s is %ld s ahead", r.retry_after, ahead);
    res_free(&r);
    send_std(C_MID_JSON, body, &r);
    cr_expect_eq(r.status, 200);
    res_free(&r);
    free(body);
}

Test(sim, soap_faults_and_auth_failures_in_each_targets_shape)
{
    static const struct {
        int which;
        long soap_status;
        const char *soap_expect;
        long auth_status;
        const char *auth_expect;
    } cases[] = {
        {C_SOAP, 500, "<faultcode>SOAP-ENV:Server</faultcode>", 500,
         "<faultcode>SOAP-ENV:Client.Authentication</faultcode>"},
        {C_NAV, 500, "<faultcode>SOAP-ENV:Server</faultcode>", 401, "401"},
        {C_MID_JSON, 500, "\"Message\"", 401, "Authorization has been denied"},
        {C_EBIZ, 500, "<faultcode>s:Server</faultcode>", 500, "wsse:FailedAuthentication"},
        {C_IXP, 500, "<errors>", 401, "API Key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int w = cases[i].which;
        size_t len;
        char *body = load(w, &len);
        char spec[256];
        snprintf(spec, sizeof(spec),
                 "[{\"target\": \"%s\", \"kind\": \"soap_fault\", \"count\": 1, \"message\": \"db "
                 "down\"},"
                 " {\"target\": \"%s\", \"kind\": \"auth\", \"count\": 1}]",
                 target_of[w], target_of[w]);
        fault(spec); /* first the SOAP fault, then the auth failure, then normal */
        http_res r;
        send_std(w, body, &r);
        cr_expect_eq(r.status, cases[i].soap_status, "%s", target_of[w]);
        cr_expect(strstr(r.body, cases[i].soap_expect) && strstr(r.body, "db down"), "%s: %s",
                  target_of[w], r.body);
        res_free(&r);
        send_std(w, body, &r);
        cr_expect_eq(r.status, cases[i].auth_status, "%s", target_of[w]);
        cr_expect(strstr(r.body, cases[i].auth_expect), "%s: %s", target_of[w], r.body);
        res_free(&r);
        send_std(w, body, &r);
        cr_expect_eq(r.status, 200, "%s: %s", target_of[w], r.body);
        res_free(&r);
        free(body);
    }
}

Test(sim, hang_outlasts_the_client_timeout_without_blocking_others)
{
    size_t len;
    char *body = load(C_EBIZ, &len);
    fault("{\"target\": \"ebizcharge\", \"kind\": \"hang\", \"ms\": 4000, \"count\": 1}");
    req q = base(C_EBIZ);
    req_set(&q, "X-Request-ID: hang-1:ebizcharge:1");
    http_res r;
    req_send(&q, body, len, 600, &r);
    cr_expect_eq(r.rc, CURLE_OPERATION_TIMEDOUT);
    cr_expect(r.total_ms >= 550 && r.total_ms < 2000, "gave up after %lld ms", r.total_ms);
    res_free(&r);
    /* The hung request still occupies the server; a retry is served at once. */
    req_set(&q, "X-Request-ID: hang-1:ebizcharge:2");
    req_send(&q, body, len, 0, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_lt(r.total_ms, 500);
    res_free(&r);
    cJSON *c = ctl_get("/_sim/calls?key=hang-1:ebizcharge");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "calls"),
                                                      "hang-1:ebizcharge");
    cr_assert_not_null(k);
    cr_expect_eq(num(k, "count"), 2);
    cJSON_Delete(c);
    free(body);
    expect_clean_exit();
}

Test(sim, reset_cuts_the_connection)
{
    size_t len;
    char *body = load(C_IXP, &len);
    fault("{\"target\": \"invoicexpress\", \"kind\": \"reset\", \"count\": 1}");
    http_res r;
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.rc, CURLE_RECV_ERROR, "curl said %d (%s)", r.rc, curl_easy_strerror(r.rc));
    cr_expect_eq(r.status, 0);
    res_free(&r);
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.rc, CURLE_OK);
    cr_expect_eq(r.status, 200);
    res_free(&r);
    free(body);
    expect_clean_exit();
}

/* The updates invoicexpress has applied, by the simulator's state. */
static double ixp_updates(void)
{
    cJSON *st = ctl_get("/_sim/state?target=invoicexpress");
    cr_assert_not_null(st);
    double n = num(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "targets"),
                                                    "invoicexpress"),
                   "updates");
    cJSON_Delete(st);
    return n;
}

/* apply_reset: the request is applied (the state counts the update) and the connection resets
 * with no answer, as a server that stored the update and crashed does; reset applies nothing. */
Test(sim, apply_reset_applies_then_cuts_the_connection)
{
    size_t len;
    char *body = load(C_IXP, &len);
    http_res r;
    fault("{\"target\": \"invoicexpress\", \"kind\": \"reset\", \"count\": 1}");
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.rc, CURLE_RECV_ERROR, "curl said %d (%s)", r.rc, curl_easy_strerror(r.rc));
    res_free(&r);
    cr_expect_eq(ixp_updates(), 0, "reset applies nothing");
    fault("{\"target\": \"invoicexpress\", \"kind\": \"apply_reset\", \"count\": 1}");
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.rc, CURLE_RECV_ERROR, "curl said %d (%s)", r.rc, curl_easy_strerror(r.rc));
    cr_expect_eq(r.status, 0, "no answer");
    res_free(&r);
    cr_expect_eq(ixp_updates(), 1, "apply_reset applied the request");
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.status, 200, "the fault was for one request");
    res_free(&r);
    cr_expect_eq(ixp_updates(), 2);
    free(body);
    expect_clean_exit();
}

Test(sim, slow_oversized_and_garbage_bodies)
{
    size_t len;
    char *body = load(C_IXP, &len);
    http_res r;
    /* Slow: the reply (about 1 KB) trickles 100 bytes every 40 ms, after prompt headers. */
    fault("{\"target\": \"invoicexpress\", \"kind\": \"slow_body\", \"chunk_bytes\": 100, "
          "\"interval_ms\": 40, \"count\": 1}");
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "</invoice>"), "the trickled body is the normal reply");
    long long want = (long long)(r.len / 100 - 1) * 40;
    cr_expect_geq(r.total_ms, want, "%zu bytes in %lld ms", r.len, r.total_ms);
    cr_expect_lt(r.ttfb_ms, r.total_ms / 2, "headers at %lld ms of %lld", r.ttfb_ms, r.total_ms);
    res_free(&r);
    /* Oversized, with and without Content-Length. */
    fault("[{\"target\": \"invoicexpress\", \"kind\": \"oversized\", \"bytes\": 5000000, "
          "\"count\": 1},"
          " {\"target\": \"invoicexpress\", \"kind\": \"oversized\", \"bytes\": 3000000, "
          "\"chunked\": true, \"count\": 1}]");
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(r.len, 5000000u);
    cr_expect(r.content_length);
    res_free(&r);
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.len, 3000000u);
    cr_expect(!r.content_length, "chunked reply had a Content-Length");
    res_free(&r);
    /* Garbage: 200 with a body no parser accepts. */
    fault("{\"target\": \"invoicexpress\", \"kind\": \"garbage\", \"count\": 1}");
    send_std(C_IXP, body, &r);
    cr_expect_eq(r.status, 200);
    char err[128];
    xmlDocPtr doc = iw_xml_parse(r.body, r.len, err, sizeof(err));
    cr_expect_null(doc, "garbage parsed as XML");
    xmlFreeDoc(doc);
    cJSON *j = cJSON_Parse(r.body);
    cr_expect_null(j, "garbage parsed as JSON");
    cJSON_Delete(j);
    res_free(&r);
    free(body);
    expect_clean_exit();
}

Test(sim, calls_record_arrival_times_for_retry_after_checks)
{
    size_t len;
    char *body = load(C_SOAP, &len);
    fault("{\"target\": \"centra_soap\", \"kind\": \"rate_limit\", \"retry_after\": 1, \"count\": "
          "1}");
    req q = base(C_SOAP);
    req_set(&q, "X-Request-ID: 01JD3Q5V8M:centra_soap:1");
    http_res r;
    req_send(&q, body, len, 0, &r);
    cr_assert_eq(r.status, 429);
    res_free(&r);
    iw_sleep_ms(1000); /* a client honouring Retry-After */
    req_set(&q, "X-Request-ID: 01JD3Q5V8M:centra_soap:2");
    req_send(&q, body, len, 0, &r);
    cr_assert_eq(r.status, 200);
    res_free(&r);
    cJSON *c = ctl_get("/_sim/calls?prefix=01JD3Q5V8M");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "calls"),
                                                      "01JD3Q5V8M:centra_soap");
    cr_assert_not_null(k);
    cr_expect_eq(num(k, "count"), 2);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(k, "mono_ms");
    const cJSON *stv = cJSON_GetObjectItemCaseSensitive(k, "status");
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(k, "attempt");
    double gap = cJSON_GetArrayItem(at, 1)->valuedouble - cJSON_GetArrayItem(at, 0)->valuedouble;
    cr_expect(gap >= 990 && gap < 3000, "gap %.0f ms", gap);
    cr_expect_eq(cJSON_GetArrayItem(stv, 0)->valueint, 429);
    cr_expect_eq(cJSON_GetArrayItem(stv, 1)->valueint, 200);
    cr_expect_eq(cJSON_GetArrayItem(att, 1)->valueint, 2);
    /* arrival order without ties: the later call has the higher sequence number */
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(k, "seq");
    cr_expect_gt(cJSON_GetArrayItem(seq, 1)->valuedouble, cJSON_GetArrayItem(seq, 0)->valuedouble);
    /* The monotonic stamps share the tests' clock. */
    cr_expect_lt(iw_now_ms() - (long long)cJSON_GetArrayItem(at, 1)->valuedouble, 5000);
    cJSON_Delete(c);
    free(body);
}

/* ==== a burst of 1,000 concurrent requests ==== */

#define BURST 1000
#define PER_TARGET 200 /* BURST / 5 */
#define INVOICES 100
#define CALL_KEYS 500 /* BURST / 2: two attempts per (event, target) */

/* Body and request for burst request i: target i % 5, invoice (i / 5) % INVOICES, event
 * (i / 5) / 2 with attempts 1 and 2, version i / 5. */
static char *burst_body(char *const *tmpl, int i, req *q)
{
    static const int which[5] = {C_SOAP, C_NAV, C_MID_JSON, C_EBIZ, C_IXP};
    int w = which[i % 5], j = i / 5, k = j % INVOICES;
    *q = base(w);
    char h[160], a[64], b[64], *out;
    snprintf(h, sizeof(h), "X-Request-ID: burst-%d:%s:%d", j / 2, target_of[w], j % 2 + 1);
    req_set(q, h);
    snprintf(h, sizeof(h), "X-Invoice-Version: %d", j);
    req_set(q, h);
    switch (w) {
    case C_SOAP:
    case C_NAV:
        snprintf(a, sizeof(a), "<ns1:id>B-%03d</ns1:id>", k);
        return replace(tmpl[w], "<ns1:id>INV-1001</ns1:id>", a);
    case C_MID_JSON:
        snprintf(a, sizeof(a), "00000000-0000-4000-8000-%012d", k);
        return replace(tmpl[w], "8da872e1-fbca-4a43-8e49-417c9bd9303a", a);
    case C_EBIZ: {
        snprintf(a, sizeof(a), "<ebiz:invoiceNumber>B-%03d</ebiz:invoiceNumber>", k);
        snprintf(b, sizeof(b), "<ebiz:InvoiceNumber>B-%03d</ebiz:InvoiceNumber>", k);
        char *m = replace(tmpl[w], "<ebiz:invoiceNumber>1001</ebiz:invoiceNumber>", a);
        out = replace(m, "<ebiz:InvoiceNumber>1001</ebiz:InvoiceNumber>", b);
        free(m);
        return out;
    }
    default:
        snprintf(q->path, sizeof(q->path), "/invoices/%d.xml?api_key=sim-api-key", 5000 + k);
        return strdup(tmpl[w]);
    }
}

Test(sim, burst_of_1000_concurrent_requests_keeps_exact_counts, .timeout = 240)
{
    char *tmpl[C_N];
    size_t len;
    for (int w = 0; w < C_N; w++)
        tmpl[w] = load(w, &len);
    static CURL *h[BURST];
    static http_res res[BURST];
    static struct curl_slist *hl[BURST];
    static char *bodies[BURST];
    static req qs[BURST];
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)BURST);
    for (int i = 0; i < BURST; i++) {
        bodies[i] = burst_body(tmpl, i, &qs[i]);
        memset(&res[i], 0, sizeof(res[i]));
        h[i] = req_handle(&qs[i], bodies[i], strlen(bodies[i]), 120000, &res[i], &hl[i]);
        curl_multi_add_handle(m, h[i]);
    }
    int running = 1, done = 0;
    long long t0 = iw_now_ms();
    while (done < BURST && iw_now_ms() - t0 < 180000) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (int i = 0; i < BURST; i++)
                if (h[i] == msg->easy_handle)
                    res[i].rc = msg->data.result;
            done++;
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    cr_assert_eq(done, BURST, "only %d of %d finished", done, BURST);
    int ok = 0;
    for (int i = 0; i < BURST; i++) {
        res_finish(h[i], &res[i]);
        if (res[i].rc == CURLE_OK && res[i].status == 200)
            ok++;
        else
            cr_expect_fail("request %d: curl %d status %ld %s", i, res[i].rc, res[i].status,
                           res[i].body);
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
        curl_slist_free_all(hl[i]);
        res_free(&res[i]);
        free(bodies[i]);
    }
    curl_multi_cleanup(m);
    cr_expect_eq(ok, BURST);

    cJSON *s = ctl_get("/_sim/stats");
    cr_expect_eq(num(s, "requests"), BURST);
    cr_expect_eq(num(cJSON_GetObjectItemCaseSensitive(s, "by_status"), "200"), BURST);
    cJSON_Delete(s);

    cJSON *st = ctl_get("/_sim/state");
    static const char *const targets[5] = {"centra_soap", "centra_navision", "midnight",
                                           "ebizcharge", "invoicexpress"};
    for (int t = 0; t < 5; t++) {
        const cJSON *tj = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(st, "targets"), targets[t]);
        cr_expect_eq(num(tj, "count"), INVOICES, "%s", targets[t]);
        cr_expect_eq(num(tj, "updates"), PER_TARGET, "%s", targets[t]);
        for (int k = 0; k < INVOICES; k++) {
            char id[64];
            if (t == 2)
                snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", k);
            else if (t == 4)
                snprintf(id, sizeof(id), "%d", 5000 + k);
            else
                snprintf(id, sizeof(id), "B-%03d", k);
            const cJSON *inv = invoice_state(st, targets[t], id);
            cr_assert_not_null(inv, "%s %s missing", targets[t], id);
            cr_expect_eq(num(inv, "updates"), 2, "%s %s", targets[t], id);
            char maxv[16];
            snprintf(maxv, sizeof(maxv), "%d", k + INVOICES);
            cr_expect_str_eq(str(inv, "max_version"), maxv, "%s %s", targets[t], id);
        }
    }
    cJSON_Delete(st);

    cJSON *c = ctl_get("/_sim/calls?prefix=burst-");
    cr_expect_eq(num(c, "total"), BURST);
    cr_expect_eq(num(c, "keys"), CALL_KEYS);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(c, "calls");
    cr_expect_eq(cJSON_GetArraySize(calls), CALL_KEYS);
    const cJSON *k;
    cJSON_ArrayForEach(k, calls)
    {
        cr_expect_eq(num(k, "count"), 2, "%s", k->string);
    }
    cJSON_Delete(c);
    for (int w = 0; w < C_N; w++)
        free(tmpl[w]);
    expect_clean_exit();
}
