/* test_midnight.c: the Midnight adapter: golden structure (JSON and XML), round trip, reply
 * classification over fixture replies, validation, secret masking and token refresh. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "config.h"
#include "docpaths.h"
#include "testdata.h"
#include "invoice.h"
#include "status.h"
#include "target.h"
#include "midnight.h"

#define PRC "prc-SECRET-7f3a"
#define TOKEN "mid-SECRET-4c1d"
#define MISKEY "mis-SECRET-99"

/* Keys of the seed's sample with no source in the canonical invoice, so never sent. Written
 * as "InvoiceLine/<key>" for line keys and "InvoiceLine/InvoiceLineItem/<key>" for detail
 * keys; midnight.c marks the same keys K_NONE. Each is Midnight-internal bookkeeping
 * (billing progress, GL and payment accounts, order versions, parent lines). */
static const char *const no_source[] = {
    "InvoiceLine/ParentInvoiceLineID",
    "InvoiceLine/PreviouslyInvoiced",
    "InvoiceLine/PreviouslyInvoicedBalance",
    "InvoiceLine/InitialTotal",
    "InvoiceLine/bNoteVisible",
    "InvoiceLine/ParentInvoiceLineGuid",
    "InvoiceLine/InvoiceLineItem/InvoiceLineItemID",
    "InvoiceLine/InvoiceLineItem/OrderVersionID",
    "InvoiceLine/InvoiceLineItem/OrderVersionDetailID",
    "InvoiceLine/InvoiceLineItem/ServiceID",
    "InvoiceLine/InvoiceLineItem/AccountingGLID",
    "InvoiceLine/InvoiceLineItem/PaymentAccountID",
    "InvoiceLine/InvoiceLineItem/OrderVersionPostageID",
    "InvoiceLine/InvoiceLineItem/AmountApplied",
    "InvoiceLine/InvoiceLineItem/PreviouslyInvoiced",
    "InvoiceLine/InvoiceLineItem/PreviouslyInvoicedBalance",
    "InvoiceLine/InvoiceLineItem/InitialTotal",
    "InvoiceLine/ParentObjectType",
    "InvoiceLine/ParentObjectID",
    "ItemDisplaySetting",
};
#define N_NO_SOURCE (sizeof(no_source) / sizeof(no_source[0]))

/* ---- helpers ---- */

static iw_target_conf conf(const char *format)
{
    iw_target_conf tc;
    memset(&tc, 0, sizeof(tc));
    cr_assert_eq(iw_target_conf_defaults(&tc, "midnight"), 0);
    tc.name = strdup("midnight");
    iw_midnight_conf_of(&tc)->prc_token = strdup(PRC);
    iw_midnight_conf_of(&tc)->midnight_token = strdup(TOKEN);
    iw_midnight_conf_of(&tc)->mis_key = strdup(MISKEY);
    if (format) {
        free(iw_midnight_conf_of(&tc)->format);
        iw_midnight_conf_of(&tc)->format = strdup(format);
    }
    return tc;
}

static char *fixture(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "midnight/%s", name);
    return iw_t_fixture(rel, len);
}

/* Renders ev, failing the test on an error. */
static void render_ok(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                      iw_request *req)
{
    char err[256] = "";
    memset(req, 0, sizeof(*req));
    int rc = iw_target_render(&iw_target_midnight, ev, tc, ctx, req, err, sizeof(err));
    cr_assert_eq(rc, 0, "render failed: %s", err);
    cr_assert_not_null(req->body);
}

/* Removes the listed paths from p, asserting each one was there. */
static void drop_paths(iw_paths *p, char *const *drop, size_t n)
{
    for (size_t d = 0; d < n; d++) {
        size_t k = 0;
        bool found = false;
        for (size_t i = 0; i < p->n; i++) {
            if (strcmp(p->items[i], drop[d]) == 0) {
                free(p->items[i]);
                found = true;
            } else {
                p->items[k++] = p->items[i];
            }
        }
        p->n = k;
        cr_assert(found, "exception %s is not in the reference (stale list?)", drop[d]);
    }
}

/* "InvoiceLine/InvoiceLineItem/X" as a JSON path ("InvoiceLine[].InvoiceLineItem[].X") or an
 * XML path ("{}InvoiceUpdateRequest/{}InvoiceLine/{}InvoiceLineSelectResponse/..."). */
static char *exception_path(const char *neutral, bool xml)
{
    char out[512] = "";
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", neutral);
    if (xml)
        strcat(out, "{}InvoiceUpdateRequest");
    for (char *save = NULL, *tok = strtok_r(tmp, "/", &save); tok;
         tok = strtok_r(NULL, "/", &save)) {
        bool list = strcmp(tok, "InvoiceLine") == 0 || strcmp(tok, "InvoiceLineItem") == 0;
        if (xml) {
            strcat(out, "/{}");
            strcat(out, tok);
            if (list)
                strcat(out, strcmp(tok, "InvoiceLine") == 0 ? "/{}InvoiceLineSelectResponse"
                                                            : "/{}InvoiceLineItemSelectResponse");
        } else {
            if (out[0])
                strcat(out, ".");
            strcat(out, tok);
            if (list)
                strcat(out, "[]");
        }
    }
    return strdup(out);
}

/* Compares the rendered body's structure with a reference file minus the exceptions. */
static void golden(const char *format, const char *ref_name)
{
    bool xml = strcmp(format, "xml") == 0;
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(format);
    iw_request req;
    render_ok(ev, &tc, NULL, &req);

    size_t rlen;
    char *ref = fixture(ref_name, &rlen);
    iw_paths want, got;
    cr_assert_eq(xml ? iw_paths_xml(ref, rlen, &want) : iw_paths_json(ref, rlen, &want), 0);
    cr_assert_eq(xml ? iw_paths_xml(req.body, req.body_len, &got)
                     : iw_paths_json(req.body, req.body_len, &got),
                 0, "rendered body does not parse:\n%s", req.body);

    char *drop[N_NO_SOURCE];
    for (size_t i = 0; i < N_NO_SOURCE; i++)
        drop[i] = exception_path(no_source[i], xml);
    drop_paths(&want, drop, N_NO_SOURCE);
    for (size_t i = 0; i < got.n; i++)
        for (size_t d = 0; d < N_NO_SOURCE; d++)
            cr_assert_str_neq(got.items[i], drop[d], "exception %s was rendered", drop[d]);

    char msg[1024];
    cr_assert_eq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0, "%s\n%s", msg, req.body);

    /* the same comparison must notice a renamed, dropped, added or moved key */
    char *saved = got.items[3];
    got.items[3] = strdup("Renamed");
    cr_assert_neq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0);
    free(got.items[3]);
    got.items[3] = saved;
    char *swap = got.items[4];
    got.items[4] = got.items[5];
    got.items[5] = swap;
    cr_assert_neq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0);
    got.items[5] = got.items[4];
    got.items[4] = swap;
    got.n--;
    cr_assert_neq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0);
    got.n++;
    want.n--;
    cr_assert_neq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0);
    want.n++;

    for (size_t i = 0; i < N_NO_SOURCE; i++)
        free(drop[i]);
    iw_paths_free(&want);
    iw_paths_free(&got);
    free(ref);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ---- (a) golden structure ---- */

Test(midnight, golden_json)
{
    golden("json", "reference-request.json");
}

Test(midnight, golden_xml)
{
    golden("xml", "reference-request.xml");
}

Test(midnight, xml_root_declares_sample_namespaces)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf("xml");
    iw_request req;
    render_ok(ev, &tc, NULL, &req);
    xmlDocPtr doc = xmlReadMemory(req.body, (int)req.body_len, "r.xml", NULL, XML_PARSE_NONET);
    cr_assert_not_null(doc);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    cr_assert_str_eq((const char *)root->name, "InvoiceUpdateRequest");
    cr_assert_null(root->ns, "root must be in no namespace, as in the sample");
    int seen = 0;
    for (xmlNsPtr ns = root->nsDef; ns; ns = ns->next) {
        if (ns->prefix && strcmp((const char *)ns->prefix, "xsi") == 0)
            seen |=
                strcmp((const char *)ns->href, "http://www.w3.org/2001/XMLSchema-instance") == 0;
        if (ns->prefix && strcmp((const char *)ns->prefix, "xsd") == 0)
            seen |= (strcmp((const char *)ns->href, "http://www.w3.org/2001/XMLSchema") == 0) << 1;
    }
    cr_assert_eq(seen, 3, "xsi and xsd declarations missing");
    cr_assert_str_eq(iw_request_header(&req, "Content-Type"), "application/xml; charset=utf-8");
    xmlFreeDoc(doc);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ---- request shape ---- */

Test(midnight, request_line_headers_and_values)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(NULL);
    iw_request req;
    render_ok(ev, &tc, NULL, &req);

    cr_assert_str_eq(req.method, "POST");
    cr_assert_str_eq(req.url, "https://api.midnightmis.com/v1/Generic/InvoiceUpdate");
    /* two Authorization lines, PRC first, then the Midnight token; then MISKEY */
    size_t auth = 0;
    const char *vals[2] = {NULL, NULL};
    for (size_t i = 0; i < req.n_headers; i++)
        if (strcmp(req.headers[i].name, "Authorization") == 0 && auth < 2)
            vals[auth++] = req.headers[i].value;
    cr_assert_eq(auth, 2);
    cr_assert_str_eq(vals[0], PRC);
    cr_assert_str_eq(vals[1], TOKEN);
    cr_assert_str_eq(iw_request_header(&req, "MISKEY"), MISKEY);
    cr_assert_str_eq(iw_request_header(&req, "Content-Type"), "application/json; charset=utf-8");
    cr_assert_str_eq(iw_request_header(&req, "Accept"), "application/json");

    /* numbers are raw JSON numbers with the decimal's exact text; ids are integers */
    cr_assert_not_null(strstr(req.body, "\"Guid\":\"8da872e1-fbca-4a43-8e49-417c9bd9303a\""));
    cr_assert_not_null(strstr(req.body, "\"InvoiceID\":2,"));
    cr_assert_not_null(strstr(req.body, "\"CustomerId\":5,"));
    cr_assert_not_null(strstr(req.body, "\"SubTotalBilledAmount\":1260.16,"));
    cr_assert_not_null(strstr(req.body, "\"PaymentDueAmount\":25.00,"));
    cr_assert_not_null(strstr(req.body, "\"Rate\":2.50,"));
    cr_assert_not_null(strstr(req.body, "\"InvoiceDate\":\"2026-11-21T00:00:00\""));
    cr_assert_not_null(strstr(req.body, "\"InvoiceDueDate\":\"2026-12-21T00:00:00\""));
    cr_assert_not_null(strstr(req.body, "\"PaymentBilledDateTime\":\"2026-11-21T12:00:00Z\""));
    cr_assert_not_null(strstr(req.body, "\"DisplayItem\":true"));
    cr_assert_not_null(strstr(req.body, "\"SourceModule\":\"orders-eu\""));
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(midnight, refreshed_token_from_ctx_replaces_config_token)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(NULL);
    void *state = iw_target_midnight.state_new(&tc); /* as after a token refresh */
    cr_assert_not_null(state);
    cr_assert_eq(iw_target_midnight.store_refresh(state, "fresh-SECRET-1"), 0);
    iw_render_ctx ctx = {.state = state};
    iw_request req;
    render_ok(ev, &tc, &ctx, &req);
    iw_target_midnight.state_free(state);
    cr_assert_str_eq(req.headers[1].name, "Authorization");
    cr_assert_str_eq(req.headers[1].value, "fresh-SECRET-1");
    char *m = iw_request_format_masked(&req);
    cr_assert_null(strstr(m, "fresh-SECRET-1"));
    free(m);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* Regression: CustomerId, ContactID, InvoiceLineID, OrderID and ItemId were filled from
 * upstream's customer.id, contact_id, line_id, order_id and item_id (numbers of another system
 * that point at unrelated Midnight rows), and silently left out when not all digits. */
Test(midnight, midnight_keys_come_only_from_target_refs)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_t_set_text(&ev->invoice.customer.id, "777");
    iw_t_set_text(&ev->invoice.customer.contact_id, "778");
    iw_t_set_text(&ev->invoice.lines[0].line_id, "779");
    iw_t_set_text(&ev->invoice.lines[0].item_id, "780");
    iw_t_set_text(&ev->invoice.lines[0].order_id, "781");
    iw_t_set_text(&ev->invoice.target_refs.midnight_customer_id, "0042");
    iw_t_set_text(&ev->invoice.target_refs.midnight_contact_id, "43");
    iw_t_set_text(&ev->invoice.lines[0].target_refs.midnight_line_id, "44");
    iw_t_set_text(&ev->invoice.lines[0].target_refs.midnight_item_id, "45");
    iw_t_set_text(&ev->invoice.lines[0].target_refs.midnight_order_id, "46");
    iw_target_conf tc = conf(NULL);
    iw_request req;
    render_ok(ev, &tc, NULL, &req);
    for (int v = 777; v <= 781; v++) {
        char num[8];
        snprintf(num, sizeof(num), ":%d", v);
        cr_assert_null(strstr(req.body, num), "upstream id %d was sent as a Midnight key", v);
    }
    cr_assert_not_null(strstr(req.body, "\"CustomerId\":42,"), "%s", req.body);
    cr_assert_not_null(strstr(req.body, "\"ContactID\":43,"));
    cr_assert_not_null(strstr(req.body, "{\"InvoiceLineID\":44,"));
    cr_assert_not_null(strstr(req.body, "\"OrderID\":46,"));
    cr_assert_not_null(strstr(req.body, "\"ItemId\":45,"));
    iw_request_clear(&req);

    /* a Midnight id that is not a number is refused by name, never silently left out */
    iw_t_set_text(&ev->invoice.target_refs.midnight_customer_id, "C-5");
    char err[256];
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), IW_EINVAL);
    cr_assert_str_eq(err, "target_refs.midnight_customer_id: a Midnight id is a whole number");
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* Regression: a line without a Midnight id carried only TempInvoiceLineID, so every update
 * most likely added the line again. It is refused, naming the line, unless the instance sends
 * such lines as new ones. */
Test(midnight, lines_without_a_midnight_id_are_refused_unless_configured_new)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_t_set_text(&ev->invoice.lines[1].target_refs.midnight_line_id, NULL);
    iw_t_set_text(&ev->invoice.lines[1].target_refs.midnight_line_guid, NULL);
    iw_target_conf tc = conf(NULL);
    char err[256];
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), IW_EINVAL);
    cr_assert(strstr(err, "lines[1].target_refs.midnight_line_id: required: line 2 has no "
                          "Midnight id"),
              "%s", err);
    /* the line GUID alone identifies it */
    iw_t_set_text(&ev->invoice.lines[1].target_refs.midnight_line_guid,
                  "9fee6ac8-0eb9-455d-8a0a-4b9f29cff281");
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), 0, "%s", err);
    iw_t_set_text(&ev->invoice.lines[1].target_refs.midnight_line_guid, NULL);
    iw_t_set_str(&iw_midnight_conf_of(&tc)->lines_without_id, "new");
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), 0, "%s", err);
    iw_request req;
    render_ok(ev, &tc, NULL, &req);
    cJSON *j = cJSON_Parse(req.body);
    const cJSON *l2 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "InvoiceLine"), 1);
    cr_assert_null(cJSON_GetObjectItem(l2, "InvoiceLineID"));
    cr_assert_eq(cJSON_GetObjectItem(l2, "TempInvoiceLineID")->valueint, 2);
    cJSON_Delete(j);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(midnight, missing_credentials_refuse_to_render)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(NULL);
    iw_t_set_str(&iw_midnight_conf_of(&tc)->mis_key, NULL);
    iw_request req;
    memset(&req, 0, sizeof(req));
    char err[256];
    cr_assert_eq(iw_target_render(&iw_target_midnight, ev, &tc, NULL, &req, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert_not_null(strstr(err, "mis_key"));
    cr_assert_null(req.url);
    cr_assert_eq(req.n_headers, 0);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ---- (b) round trip ---- */

#define N_LINES 1000

/* Decimal text of line i's unit price: "0.10", "1.11", ... exact, never through a double. */
static void price_of(size_t i, char *buf, size_t len)
{
    snprintf(buf, len, "%zu.%02zu", i % 50, (i * 7 + 10) % 100);
}

/* An event JSON full of awkward text: markup, ]]>, quotes, non-ASCII, 10 KB strings. */
static char *awkward_event(char *big)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "invoice-event/v1");
    cJSON_AddStringToObject(root, "event_id", "01JD3Q5V8M2K7X9P4R6T0WQYZR");
    cJSON_AddStringToObject(root, "type", "invoice.updated");
    cJSON_AddStringToObject(root, "occurred_at", "2026-11-21T10:04:05Z");
    cJSON_AddStringToObject(root, "source", "src <&> \"q\" 'a'");
    cJSON_AddStringToObject(root, "tenant", "acme");
    cJSON_AddNumberToObject(root, "version", 3);
    cJSON *inv = cJSON_AddObjectToObject(root, "invoice");
    cJSON_AddStringToObject(inv, "id", "INV-RT");
    cJSON_AddStringToObject(inv, "currency", "EUR");
    cJSON_AddStringToObject(inv, "number", "N <1> & ]]> \"2\"");
    cJSON_AddStringToObject(inv, "title", "Grüße — 漢字 — 🧾🎉 ]]> <b>&amp;</b>");
    cJSON_AddStringToObject(inv, "note_public", big);
    cJSON_AddStringToObject(inv, "note_internal", "line1\nline2\r\nline3\ttab");
    cJSON_AddStringToObject(inv, "issue_date", "2026-02-28");
    cJSON_AddStringToObject(inv, "subtotal", "0.10");
    cJSON_AddStringToObject(inv, "total", "123456789012.345678");
    cJSON *refs = cJSON_AddObjectToObject(inv, "target_refs");
    cJSON_AddStringToObject(refs, "midnight_guid", "0b8e6f43-6a0c-4a5e-9d0e-3f3c1c2d4e5f");
    cJSON_AddStringToObject(refs, "midnight_invoice_id", "42");
    cJSON *cust = cJSON_AddObjectToObject(inv, "customer");
    cJSON_AddStringToObject(cust, "email", "zoë@例え.jp");
    cJSON *addr = cJSON_AddObjectToObject(inv, "billing_address");
    cJSON_AddStringToObject(addr, "line1", "Straße 1 & 2 <rear>");
    cJSON_AddStringToObject(addr, "city", "Zürich 🏔");
    cJSON *lines = cJSON_AddArrayToObject(inv, "lines");
    for (size_t i = 0; i < N_LINES; i++) {
        char buf[64];
        cJSON *l = cJSON_CreateObject();
        snprintf(buf, sizeof(buf), "%zu", i + 1);
        cJSON_AddStringToObject(l, "line_no", buf);
        snprintf(buf, sizeof(buf), "Item %zu <&> \"ü\" 漢字 🎉 ]]>", i);
        cJSON_AddStringToObject(l, "name", buf);
        cJSON_AddStringToObject(l, "description", i == 0 ? big : "d'esc");
        price_of(i, buf, sizeof(buf));
        cJSON_AddStringToObject(l, "unit_price", buf);
        snprintf(buf, sizeof(buf), "%zu.125", i + 1);
        cJSON_AddStringToObject(l, "quantity", buf);
        cJSON_AddStringToObject(l, "tax_amount", "0.00");
        cJSON_AddItemToArray(lines, l);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* Raw token after the n-th occurrence of "key": in a JSON text (numbers keep their text). */
static bool nth_raw(const char *body, const char *key, size_t n, char *buf, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = body;
    for (size_t i = 0; i <= n; i++) {
        p = strstr(p, pat);
        if (!p)
            return false;
        p += strlen(pat);
    }
    size_t k = strcspn(p, ",}]");
    if (k >= len)
        return false;
    memcpy(buf, p, k);
    buf[k] = '\0';
    return true;
}

static char *big_string(void)
{
    const char *unit = "<&>\"'ü漢🎉]]>";
    size_t ul = strlen(unit);
    size_t n = 10 * 1024;
    char *big = malloc(n + ul + 1);
    size_t o = 0;
    while (o < n) {
        memcpy(big + o, unit, ul);
        o += ul;
    }
    big[o] = '\0';
    return big;
}

Test(midnight, round_trip_json)
{
    char *big = big_string();
    char *json = awkward_event(big);
    iw_event *ev = iw_t_parse(json, strlen(json));
    iw_target_conf tc = conf(NULL);
    /* generated lines carry no Midnight ids */
    iw_t_set_str(&iw_midnight_conf_of(&tc)->lines_without_id, "new");
    iw_request req;
    render_ok(ev, &tc, NULL, &req);

    cJSON *j = cJSON_ParseWithLength(req.body, req.body_len);
    cr_assert_not_null(j, "rendered JSON does not parse");
    const iw_invoice *inv = &ev->invoice;
    cr_assert_str_eq(cJSON_GetObjectItem(j, "InvoiceNumber")->valuestring, inv->number);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "InvoiceTitle")->valuestring, inv->title);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "InvoiceNote")->valuestring, big);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "Note")->valuestring, "line1\nline2\r\nline3\ttab");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "SourceModule")->valuestring, ev->source);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "EmailAddress")->valuestring, "zoë@例え.jp");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "AddressLine1")->valuestring, "Straße 1 & 2 <rear>");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "City")->valuestring, "Zürich 🏔");
    char raw[64];
    cr_assert(nth_raw(req.body, "SubTotalBilledAmount", 0, raw, sizeof(raw)));
    cr_assert_str_eq(raw, "0.10");
    cr_assert(nth_raw(req.body, "TotalBilledAmount", 0, raw, sizeof(raw)));
    cr_assert_str_eq(raw, "123456789012.345678");

    cJSON *lines = cJSON_GetObjectItem(j, "InvoiceLine");
    cr_assert_eq(cJSON_GetArraySize(lines), N_LINES);
    size_t i = 0;
    for (cJSON *l = lines->child; l; l = l->next, i++) {
        cr_assert_str_eq(cJSON_GetObjectItem(l, "Title")->valuestring, inv->lines[i].name);
        cr_assert_str_eq(cJSON_GetObjectItem(l, "Note")->valuestring, inv->lines[i].description);
        char want[64];
        price_of(i, want, sizeof(want));
        cr_assert(nth_raw(req.body, "Rate", i, raw, sizeof(raw)));
        cr_assert_str_eq(raw, want, "line %zu Rate", i);
        snprintf(want, sizeof(want), "%zu.125", i + 1);
        cr_assert(nth_raw(req.body, "Quantity", 2 * i, raw, sizeof(raw))); /* line */
        cr_assert_str_eq(raw, want);
        cr_assert(nth_raw(req.body, "Quantity", 2 * i + 1, raw, sizeof(raw))); /* its detail */
        cr_assert_str_eq(raw, want);
        cr_assert_eq(cJSON_GetObjectItem(l, "Priority")->valueint, (int)i + 1);
    }
    cr_assert_eq(i, N_LINES);
    cJSON_Delete(j);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
    free(json);
    free(big);
}

/* Text of the first child element named name (untrimmed; caller frees). */
static char *child_text(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return (char *)xmlNodeGetContent(c);
    return NULL;
}

static void expect_child(xmlNodePtr parent, const char *name, const char *want)
{
    char *got = child_text(parent, name);
    cr_assert_not_null(got, "<%s> missing", name);
    cr_assert_str_eq(got, want, "<%s>", name);
    xmlFree(got);
}

Test(midnight, round_trip_xml)
{
    char *big = big_string();
    char *json = awkward_event(big);
    iw_event *ev = iw_t_parse(json, strlen(json));
    iw_target_conf tc = conf("xml");
    /* generated lines carry no Midnight ids */
    iw_t_set_str(&iw_midnight_conf_of(&tc)->lines_without_id, "new");
    iw_request req;
    render_ok(ev, &tc, NULL, &req);

    xmlDocPtr doc =
        xmlReadMemory(req.body, (int)req.body_len, "r.xml", NULL, XML_PARSE_NONET | XML_PARSE_HUGE);
    cr_assert_not_null(doc, "rendered XML is not well-formed");
    xmlNodePtr root = xmlDocGetRootElement(doc);
    const iw_invoice *inv = &ev->invoice;
    expect_child(root, "InvoiceNumber", inv->number);
    expect_child(root, "InvoiceTitle", inv->title);
    expect_child(root, "InvoiceNote", big);
    expect_child(root, "Note", "line1\nline2\r\nline3\ttab");
    expect_child(root, "SubTotalBilledAmount", "0.10");
    expect_child(root, "TotalBilledAmount", "123456789012.345678");
    expect_child(root, "InvoiceID", "42");
    expect_child(root, "City", "Zürich 🏔");
    xmlNodePtr lines = NULL;
    for (xmlNodePtr c = root->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "InvoiceLine") == 0)
            lines = c;
    cr_assert_not_null(lines);
    size_t i = 0;
    for (xmlNodePtr l = lines->children; l; l = l->next) {
        if (l->type != XML_ELEMENT_NODE)
            continue;
        char want[64];
        cr_assert_str_eq((const char *)l->name, "InvoiceLineSelectResponse");
        expect_child(l, "Title", inv->lines[i].name);
        expect_child(l, "Note", inv->lines[i].description);
        price_of(i, want, sizeof(want));
        expect_child(l, "Rate", want);
        snprintf(want, sizeof(want), "%zu.125", i + 1);
        expect_child(l, "Quantity", want);
        i++;
    }
    cr_assert_eq(i, N_LINES);
    xmlFreeDoc(doc);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
    free(json);
    free(big);
}

Test(midnight, special_chars_fixture_renders_both_formats)
{
    iw_event *ev = iw_t_load_event("special-chars.json");
    for (int f = 0; f < 2; f++) {
        iw_target_conf tc = conf(f ? "xml" : "json");
        iw_request req;
        render_ok(ev, &tc, NULL, &req);
        if (f) {
            xmlDocPtr doc =
                xmlReadMemory(req.body, (int)req.body_len, "r.xml", NULL, XML_PARSE_NONET);
            cr_assert_not_null(doc);
            expect_child(xmlDocGetRootElement(doc), "InvoiceTitle", ev->invoice.title);
            xmlFreeDoc(doc);
        } else {
            cJSON *j = cJSON_Parse(req.body);
            cr_assert_not_null(j);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "InvoiceTitle")->valuestring,
                             ev->invoice.title);
            cJSON_Delete(j);
            char raw[32];
            cr_assert(nth_raw(req.body, "Rate", 0, raw, sizeof(raw)));
            cr_assert_str_eq(raw, "0.10");
        }
        iw_request_clear(&req);
        iw_target_conf_clear(&tc);
    }
    iw_event_free(ev);
}

Test(midnight, xml_refuses_control_characters)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_t_set_text(&ev->invoice.title, "bell\x07here");
    iw_target_conf tc = conf("xml");
    iw_request req;
    memset(&req, 0, sizeof(req));
    char err[256];
    cr_assert_eq(iw_target_render(&iw_target_midnight, ev, &tc, NULL, &req, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert_not_null(strstr(err, "InvoiceTitle"), "%s", err);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* XML 1.0 has no U+FFFE or U+FFFF: the XML format refuses them, naming the key; JSON carries
 * them as they are (they are legal JSON text). */
Test(midnight, xml_refuses_noncharacters_json_carries_them)
{
    static const char *const texts[] = {"t \xEF\xBF\xBE", "t \xEF\xBF\xBF end"};
    for (size_t i = 0; i < 2; i++) {
        iw_event *ev = iw_t_load_event("complete.json");
        iw_t_set_text(&ev->invoice.lines[0].name, texts[i]);
        iw_target_conf tc = conf("xml");
        iw_request req;
        memset(&req, 0, sizeof(req));
        char err[256] = "";
        cr_assert_eq(iw_target_render(&iw_target_midnight, ev, &tc, NULL, &req, err, sizeof(err)),
                     IW_EINVAL);
        cr_assert_not_null(strstr(err, "Title:"), "%s", err);
        cr_assert_null(req.body);
        iw_target_conf_clear(&tc);

        tc = conf(NULL);
        render_ok(ev, &tc, NULL, &req);
        cJSON *j = cJSON_ParseWithLength(req.body, req.body_len);
        cr_assert_not_null(j);
        cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "InvoiceLine"), 0);
        cr_assert_str_eq(cJSON_GetObjectItem(l, "Title")->valuestring, texts[i]);
        cJSON_Delete(j);
        iw_request_clear(&req);
        iw_target_conf_clear(&tc);
        iw_event_free(ev);
    }
}

/* ---- (c) classification over fixture replies ---- */

/* Every reply fixture is classified by tests/integration/test_classify_replies.c from
 * tests/fixtures/replies/cases.json. */

Test(midnight, classify_message_never_echoes_secrets)
{
    iw_target_conf tc = conf(NULL);
    size_t len;
    char *body = fixture("response-error-echo.json", &len);
    iw_response resp = {.status = 400, .body = body, .body_len = len};
    iw_outcome o;
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    cr_assert_null(strstr(o.message, PRC), "%s", o.message);
    cr_assert_null(strstr(o.message, MISKEY), "%s", o.message);
    cr_assert_not_null(strstr(o.message, "Authorization: ***"), "%s", o.message);
    free(body);
    iw_target_conf_clear(&tc);
}

Test(midnight, classify_long_body_is_truncated_on_a_character)
{
    iw_target_conf tc = conf(NULL);
    size_t n = 4000;
    char *body = malloc(n * 2 + 3);
    body[0] = '"';
    for (size_t i = 0; i < n; i++)
        memcpy(body + 1 + 2 * i, "ü", 2);
    body[1 + 2 * n] = '"';
    iw_response resp = {.status = 400, .body = body, .body_len = 2 * n + 2};
    iw_outcome o;
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    size_t ml = strlen(o.message);
    cr_assert_lt(ml, sizeof(o.message));
    cr_assert_gt(ml, 100);
    /* ends on a whole "ü" */
    cr_assert_eq((unsigned char)o.message[ml - 1], 0xbc, "message cut inside a character");
    free(body);
    iw_target_conf_clear(&tc);
}

/* ---- (d) validation ---- */

Test(midnight, validate_complete_event_passes)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(NULL);
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), 0, "%s", err);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(midnight, validate_guid_required)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc = conf(NULL);
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), IW_EINVAL);
    cr_assert_str_eq(err, "target_refs.midnight_guid: required (Midnight updates by Guid)");
    /* render refuses too, leaving nothing to free */
    iw_request req;
    memset(&req, 0, sizeof(req));
    cr_assert_eq(iw_target_render(&iw_target_midnight, ev, &tc, NULL, &req, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert_null(req.body);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(midnight, validate_guid_must_look_like_a_guid)
{
    static const char *const bad[] = {"INV-1001",
                                      "8da872e1fbca4a438e49417c9bd9303a",
                                      "8da872e1-fbca-4a43-8e49-417c9bd9303", /* short */
                                      "8da872e1-fbca-4a43-8e49-417c9bd9303ab",
                                      "8da872e1-fbca-4a43-8e49-417c9bd9303g",
                                      ""};
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        iw_t_set_text(&ev->invoice.target_refs.midnight_guid, bad[i]);
        char err[256] = "";
        cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), IW_EINVAL,
                     "%s accepted", bad[i]);
        cr_assert_not_null(strstr(err, "target_refs.midnight_guid"), "%s", err);
    }
    iw_t_set_text(&ev->invoice.target_refs.midnight_guid, "8DA872E1-FBCA-4A43-8E49-417C9BD9303A");
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_midnight, ev, &tc, err, sizeof(err)), 0, "%s", err);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ---- (e) masking ---- */

Test(midnight, masked_print_hides_tokens_and_miskey)
{
    iw_event *ev = iw_t_load_event("complete.json");
    for (int f = 0; f < 2; f++) {
        iw_target_conf tc = conf(f ? "xml" : "json");
        iw_request req;
        render_ok(ev, &tc, NULL, &req);
        char *m = iw_request_format_masked(&req);
        cr_assert_not_null(m);
        cr_assert_null(strstr(m, PRC));
        cr_assert_null(strstr(m, TOKEN));
        cr_assert_null(strstr(m, MISKEY));
        cr_assert_not_null(strstr(m, "Authorization: ***\nAuthorization: ***\nMISKEY: ***\n"), "%s",
                           m);
        cr_assert_not_null(strstr(m, "8da872e1-fbca-4a43-8e49-417c9bd9303a"), "body is printed");
        free(m);
        iw_request_clear(&req);
        iw_target_conf_clear(&tc);
    }
    iw_event_free(ev);
}

/* ---- (f) token refresh ---- */

static void refresh_url(const char *url, const char *token_url, const char *want)
{
    iw_target_conf tc = conf(NULL);
    if (url)
        iw_t_set_str(&tc.url, url);
    iw_t_set_str(&iw_midnight_conf_of(&tc)->token_url, token_url);
    iw_request req;
    memset(&req, 0, sizeof(req));
    char err[256] = "";
    cr_assert_eq(iw_target_midnight.render_refresh(&tc, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(req.url, want);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
}

Test(midnight, refresh_request)
{
    iw_target_conf tc = conf(NULL);
    iw_request req;
    memset(&req, 0, sizeof(req));
    char err[256] = "";
    cr_assert_not_null(iw_target_midnight.render_refresh);
    cr_assert_eq(iw_target_midnight.render_refresh(&tc, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(req.method, "POST");
    cr_assert_str_eq(req.url, "https://api.midnightmis.com/v1/Token/RegenerateAuthToken");
    cr_assert_str_eq(req.headers[0].name, "Authorization");
    cr_assert_str_eq(req.headers[0].value, PRC);
    cr_assert_str_eq(req.headers[1].name, "Authorization");
    cr_assert_str_eq(req.headers[1].value, TOKEN);
    cr_assert_str_eq(iw_request_header(&req, "MISKEY"), MISKEY);
    cr_assert_eq(req.body_len, 0);
    char *m = iw_request_format_masked(&req);
    cr_assert_null(strstr(m, TOKEN));
    cr_assert_null(strstr(m, PRC));
    cr_assert_null(strstr(m, MISKEY));
    free(m);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);

    refresh_url("https://mn.example/api/v1/Generic/InvoiceUpdate", NULL,
                "https://mn.example/api/v1/Token/RegenerateAuthToken");
    refresh_url("https://h.example:8443/custom/update?x=1", NULL,
                "https://h.example:8443/v1/Token/RegenerateAuthToken");
    refresh_url(NULL, "https://auth.example/token", "https://auth.example/token");
}

static int parse_refresh_body(long status, const char *body, char *tok, size_t len)
{
    iw_response resp = {.status = status, .body = body, .body_len = body ? strlen(body) : 0};
    return iw_target_midnight.parse_refresh(&resp, tok, len);
}

Test(midnight, refresh_reply_parsing)
{
    char tok[128];
    size_t len;
    char *body = fixture("response-refresh.json", &len);
    iw_response resp = {.status = 200, .body = body, .body_len = len};
    cr_assert_eq(iw_target_midnight.parse_refresh(&resp, tok, sizeof(tok)), 0);
    cr_assert_str_eq(tok, "d3f1c2b4-new-midnight-token");
    free(body);
    body = fixture("response-refresh-object.json", &len);
    resp.body = body;
    resp.body_len = len;
    cr_assert_eq(iw_target_midnight.parse_refresh(&resp, tok, sizeof(tok)), 0);
    cr_assert_str_eq(tok, "obj-new-midnight-token");
    free(body);

    cr_assert_eq(parse_refresh_body(200, "{\"token\":\"lower\"}", tok, sizeof(tok)), 0);
    cr_assert_str_eq(tok, "lower");
    cr_assert_eq(parse_refresh_body(200, "<string>xml-tok</string>", tok, sizeof(tok)), 0);
    cr_assert_str_eq(tok, "xml-tok");

    cr_assert_eq(parse_refresh_body(200, "\"\"", tok, sizeof(tok)), IW_EINVAL);
    cr_assert_eq(parse_refresh_body(200, NULL, tok, sizeof(tok)), IW_EINVAL);
    cr_assert_eq(parse_refresh_body(200, "{\"Message\":\"no\"}", tok, sizeof(tok)), IW_EINVAL);
    cr_assert_eq(parse_refresh_body(200, "<html><body>login</body></html>", tok, sizeof(tok)),
                 IW_EINVAL);
    cr_assert_eq(parse_refresh_body(200, "\"tok", tok, sizeof(tok)), IW_EINVAL);
    cr_assert_eq(parse_refresh_body(401, "\"valid-looking\"", tok, sizeof(tok)), IW_EINVAL);
    cr_assert_eq(parse_refresh_body(200, "\"bad\\ntoken\"", tok, sizeof(tok)), IW_EINVAL);
    cr_assert_eq(parse_refresh_body(200, "\"0123456789\"", tok, 8), IW_EINVAL,
                 "too long for buffer");
}

/* Seed 002 lines 7-8 list two Authorization headers; auth_header "folded" sends the one
 * comma-joined line a server that folds repeated headers (IIS) would see. */
Test(midnight, authorization_header_form_is_configurable)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf(NULL);
    iw_request req;
    render_ok(ev, &tc, NULL, &req);
    size_t n = 0;
    for (size_t i = 0; i < req.n_headers; i++)
        n += strcasecmp(req.headers[i].name, "Authorization") == 0;
    cr_assert_eq(n, 2, "the seed's form: two Authorization lines");
    iw_request_clear(&req);
    iw_t_set_str(&iw_midnight_conf_of(&tc)->auth_header, "folded");
    render_ok(ev, &tc, NULL, &req);
    n = 0;
    for (size_t i = 0; i < req.n_headers; i++)
        n += strcasecmp(req.headers[i].name, "Authorization") == 0;
    cr_assert_eq(n, 1);
    cr_assert_str_eq(iw_request_header(&req, "Authorization"), PRC ", " TOKEN);
    char *printed = iw_request_format_masked(&req);
    cr_assert_null(strstr(printed, PRC), "%s", printed);
    cr_assert_null(strstr(printed, TOKEN), "%s", printed);
    free(printed);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* token_refresh "off": a 401 is final (the token is rotated through the Secret). */
Test(midnight, token_refresh_can_be_turned_off)
{
    iw_target_conf tc = conf(NULL);
    const char body[] = "{\"Message\":\"Authorization has been denied for this request.\"}";
    iw_response resp = {.status = 401, .body = body, .body_len = strlen(body)};
    iw_outcome o;
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_AUTH);
    cr_assert(o.refresh_token);
    iw_t_set_str(&iw_midnight_conf_of(&tc)->token_refresh, "off");
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_AUTH);
    cr_assert_not(o.refresh_token);
    iw_target_conf_clear(&tc);
}

/* Regression: any 200 JSON string was success and became target_ref. A string that is not a
 * GUID or an id is success only when the instance lists it in success_replies. */
Test(midnight, success_replies_are_configured_not_guessed)
{
    iw_target_conf tc = conf(NULL);
    const char locked[] = "\"Invoice could not be updated: it is locked\"";
    iw_response resp = {.status = 200, .body = locked, .body_len = strlen(locked)};
    iw_outcome o;
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT, "%s", o.message);
    cr_assert_str_eq(o.target_ref, "");
    cr_assert(strstr(o.message, "it is locked"), "%s", o.message);

    const char ok[] = "\"Success\"";
    resp.body = ok;
    resp.body_len = strlen(ok);
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    iw_midnight_conf_of(&tc)->success_replies = calloc(1, sizeof(char *));
    iw_midnight_conf_of(&tc)->success_replies[0] = strdup("success");
    iw_midnight_conf_of(&tc)->n_success_replies = 1;
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_OK, "%s", o.message);
    cr_assert_str_eq(o.target_ref, "", "a word is not an id");
    resp.body = locked;
    resp.body_len = strlen(locked);
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    free(iw_midnight_conf_of(&tc)->success_replies[0]);
    iw_midnight_conf_of(&tc)->success_replies[0] = strdup("*");
    iw_target_classify(&iw_target_midnight, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_OK, "\"*\" accepts any string");
    iw_target_conf_clear(&tc);
}
