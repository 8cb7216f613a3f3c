/* test_midnight.c: what of the Midnight adapter a case file cannot say: the structure check
 * catching edits, round trips over a generated event (1000 lines, 10 KB strings) in JSON and
 * XML, and a generated long reply cut on a character. Requests, refusals, replies and the
 * token refresh are case files: tests/cases/midnight (run by test_cases.c). */
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

/* The structure comparison the golden cases rely on (tests/cases/midnight/0001, 0002) must
 * notice a renamed, moved, dropped or added key; shown on the sample's own paths. */
static void structure_check_catches_edits(const char *ref_name, bool xml)
{
    size_t rlen;
    char *ref = fixture(ref_name, &rlen);
    iw_paths want, got;
    cr_assert_eq(xml ? iw_paths_xml(ref, rlen, &want) : iw_paths_json(ref, rlen, &want), 0);
    cr_assert_eq(xml ? iw_paths_xml(ref, rlen, &got) : iw_paths_json(ref, rlen, &got), 0);
    char msg[1024];
    cr_assert_eq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0, "%s", msg);

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

    iw_paths_free(&want);
    iw_paths_free(&got);
    free(ref);
}

Test(midnight, structure_check_catches_edits)
{
    structure_check_catches_edits("reference-request.json", false);
    structure_check_catches_edits("reference-request.xml", true);
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
    cr_assert(iw_t_nth_raw(req.body, "SubTotalBilledAmount", 0, raw, sizeof(raw)));
    cr_assert_str_eq(raw, "0.10");
    cr_assert(iw_t_nth_raw(req.body, "TotalBilledAmount", 0, raw, sizeof(raw)));
    cr_assert_str_eq(raw, "123456789012.345678");

    cJSON *lines = cJSON_GetObjectItem(j, "InvoiceLine");
    cr_assert_eq(cJSON_GetArraySize(lines), N_LINES);
    size_t i = 0;
    const char *rate_at = req.body, *qty_at = req.body;
    for (cJSON *l = lines->child; l; l = l->next, i++) {
        cr_assert_str_eq(cJSON_GetObjectItem(l, "Title")->valuestring, inv->lines[i].name);
        cr_assert_str_eq(cJSON_GetObjectItem(l, "Note")->valuestring, inv->lines[i].description);
        char want[64];
        price_of(i, want, sizeof(want));
        cr_assert(iw_t_next_raw(&rate_at, "Rate", raw, sizeof(raw))); /* the i-th */
        cr_assert_str_eq(raw, want, "line %zu Rate", i);
        snprintf(want, sizeof(want), "%zu.125", i + 1);
        cr_assert(iw_t_next_raw(&qty_at, "Quantity", raw, sizeof(raw))); /* line: the 2i-th */
        cr_assert_str_eq(raw, want);
        cr_assert(iw_t_next_raw(&qty_at, "Quantity", raw, sizeof(raw))); /* its detail: 2i+1-th */
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

/* ---- classification over a generated body ---- */

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
