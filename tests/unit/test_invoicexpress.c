/* test_invoicexpress.c: what of the InvoiceXpress adapter a case file cannot say: the
 * structure check catching edits, a round trip over a generated event (1000 lines, 10 KB
 * strings), an event without lines (which the parser refuses) and the ops table. Requests,
 * validation rules, refusals and replies are case files: tests/cases/invoicexpress (run by
 * test_cases.c). */
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
#include "invoicexpress.h"

#define API_KEY "s3cr3t+key/="
#define API_KEY_ESC "s3cr3t%2Bkey%2F%3D"

/* ---- helpers ---- */

static void add_tax(iw_target_conf *tc, const char *rate, const char *name)
{
    iw_ix_conf *ix = iw_ix_conf_of(tc);
    iw_tax_name *t = realloc(ix->tax_names, (ix->n_tax_names + 1) * sizeof(*t));
    cr_assert_not_null(t);
    ix->tax_names = t;
    t[ix->n_tax_names].rate = strdup(rate);
    t[ix->n_tax_names].name = strdup(name);
    ix->n_tax_names++;
}

static iw_target_conf conf(void)
{
    iw_target_conf tc;
    memset(&tc, 0, sizeof(tc));
    cr_assert_eq(iw_target_conf_defaults(&tc, "invoicexpress"), 0);
    tc.name = strdup("invoicexpress");
    free(tc.url);
    tc.url = strdup("https://acme.app.invoicexpress.com/");
    iw_ix_conf_of(&tc)->api_key = strdup(API_KEY);
    add_tax(&tc, "23", "IVA23");
    add_tax(&tc, "13", "IVA13");
    add_tax(&tc, "6", "IVA6");
    return tc;
}

static char *fixture(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "invoicexpress/%s", name);
    return iw_t_fixture(rel, len);
}

static void render_ok(const iw_event *ev, const iw_target_conf *tc, iw_request *req)
{
    char err[256] = "";
    memset(req, 0, sizeof(*req));
    int rc = iw_target_render(&iw_target_invoicexpress, ev, tc, NULL, req, err, sizeof(err));
    cr_assert_eq(rc, 0, "render failed: %s", err);
    cr_assert_not_null(req->body);
}

/* ---- structure check ---- */

/* The structure comparison the golden case relies on (tests/cases/invoicexpress/0001) must
 * notice renamed, dropped, added and moved elements; shown on the sample's own paths. */
Test(invoicexpress, structure_check_catches_edits)
{
    size_t rlen;
    char *ref = fixture("reference-request.xml", &rlen);
    iw_paths want, got;
    cr_assert_eq(iw_paths_xml(ref, rlen, &want), 0);
    cr_assert_eq(iw_paths_xml(ref, rlen, &got), 0);
    char msg[1024];
    cr_assert_eq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0, "%s", msg);

    char *saved = got.items[2];
    got.items[2] = strdup("{}invoice/{}ref");
    cr_assert_neq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0);
    free(got.items[2]);
    got.items[2] = saved;
    char *swap = got.items[1];
    got.items[1] = got.items[2];
    got.items[2] = swap;
    cr_assert_neq(iw_paths_compare(&want, &got, msg, sizeof(msg)), 0);
    got.items[2] = got.items[1];
    got.items[1] = swap;
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

/* ---- (b) round trip ---- */

#define N_LINES 1000

static void price_of(size_t i, char *buf, size_t len)
{
    /* "0.10", "1.17", ... always > 0 (i % 50 and the cents are never both zero) */
    snprintf(buf, len, "%zu.%02zu", i % 50, (i * 7 + 10) % 100);
}

static char *big_string(void)
{
    const char *unit = "<&>\"'ü漢🎉]]>";
    size_t ul = strlen(unit), n = 10 * 1024, o = 0;
    char *big = malloc(n + ul + 1);
    while (o < n) {
        memcpy(big + o, unit, ul);
        o += ul;
    }
    big[o] = '\0';
    return big;
}

static char *awkward_event(const char *big)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "invoice-event/v1");
    cJSON_AddStringToObject(root, "event_id", "01JD3Q5V8M2K7X9P4R6T0WQYZX");
    cJSON_AddStringToObject(root, "type", "invoice.updated");
    cJSON_AddStringToObject(root, "tenant", "acme");
    cJSON_AddNumberToObject(root, "version", 9);
    cJSON *inv = cJSON_AddObjectToObject(root, "invoice");
    cJSON_AddStringToObject(inv, "id", "INV-RT");
    cJSON_AddStringToObject(inv, "currency", "EUR");
    cJSON_AddStringToObject(inv, "issue_date", "2026-01-05");
    cJSON_AddStringToObject(inv, "due_date", "2026-02-28");
    cJSON_AddStringToObject(inv, "po_number", "PO <7> & \"8\" ]]>");
    cJSON_AddStringToObject(inv, "note_public", big);
    cJSON_AddStringToObject(inv, "retention_pct", "99.99");
    cJSON *refs = cJSON_AddObjectToObject(inv, "target_refs");
    cJSON_AddStringToObject(refs, "invoicexpress_id", "4711");
    cJSON *cust = cJSON_AddObjectToObject(inv, "customer");
    cJSON_AddStringToObject(cust, "name", "Zoë & Søren <Ltd> 漢字 🧾");
    cJSON_AddStringToObject(cust, "email", "zoë@example.com");
    cJSON_AddStringToObject(cust, "fiscal_id", "PT<123>");
    cJSON_AddStringToObject(cust, "website", "https://x.example/?a=1&b=2");
    cJSON_AddStringToObject(cust, "phone", "+351 \"21\"");
    cJSON_AddStringToObject(cust, "fax", "'fax'");
    cJSON_AddStringToObject(cust, "notes", "  padded  \r\n second line ");
    cJSON *addr = cJSON_AddObjectToObject(inv, "billing_address");
    cJSON_AddStringToObject(addr, "line1", "Rua <A> & B");
    cJSON_AddStringToObject(addr, "city", "Lisboa 🏙");
    cJSON_AddStringToObject(addr, "postal_code", "1000-001");
    cJSON_AddStringToObject(addr, "country", "PT");
    cJSON *lines = cJSON_AddArrayToObject(inv, "lines");
    for (size_t i = 0; i < N_LINES; i++) {
        char buf[64];
        cJSON *l = cJSON_CreateObject();
        snprintf(buf, sizeof(buf), "Item %zu <&> \"ü\" 漢字 🎉 ]]>", i);
        cJSON_AddStringToObject(l, "name", buf);
        cJSON_AddStringToObject(l, "description", i == 1 ? big : " d'esc ");
        price_of(i, buf, sizeof(buf));
        cJSON_AddStringToObject(l, "unit_price", buf);
        snprintf(buf, sizeof(buf), "%zu.125", i + 1);
        cJSON_AddStringToObject(l, "quantity", buf);
        cJSON_AddStringToObject(l, "unit", i % 2 ? "hour" : "unit");
        cJSON_AddStringToObject(l, "tax_rate", i % 3 == 0 ? "23" : i % 3 == 1 ? "6.00" : "0");
        snprintf(buf, sizeof(buf), "%zu.5", i % 100);
        cJSON_AddStringToObject(l, "discount_pct", buf);
        cJSON_AddItemToArray(lines, l);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

static void expect_child(xmlNodePtr parent, const char *name, const char *want)
{
    xmlNodePtr c = child(parent, name);
    cr_assert_not_null(c, "<%s> missing", name);
    char *got = (char *)xmlNodeGetContent(c);
    cr_assert_str_eq(got, want, "<%s>", name);
    xmlFree(got);
}

Test(invoicexpress, round_trip)
{
    char *big = big_string();
    char *json = awkward_event(big);
    iw_event *ev = iw_t_parse(json, strlen(json));
    iw_target_conf tc = conf();
    iw_request req;
    render_ok(ev, &tc, &req);

    xmlDocPtr doc =
        xmlReadMemory(req.body, (int)req.body_len, "r.xml", NULL, XML_PARSE_NONET | XML_PARSE_HUGE);
    cr_assert_not_null(doc, "rendered XML is not well-formed");
    xmlNodePtr root = xmlDocGetRootElement(doc);
    expect_child(root, "date", "05/01/2026");
    expect_child(root, "due_date", "28/02/2026");
    expect_child(root, "reference", "PO <7> & \"8\" ]]>");
    expect_child(root, "observations", big);
    expect_child(root, "retention", "99.99");
    xmlNodePtr cl = child(root, "client");
    cr_assert_not_null(cl);
    expect_child(cl, "name", "Zoë & Søren <Ltd> 漢字 🧾");
    expect_child(cl, "email", "zoë@example.com");
    expect_child(cl, "address", "Rua <A> & B\nLisboa 🏙");
    expect_child(cl, "postal_code", "1000-001");
    expect_child(cl, "country", "Portugal");
    expect_child(cl, "fiscal_id", "PT<123>");
    expect_child(cl, "website", "https://x.example/?a=1&b=2");
    expect_child(cl, "phone", "+351 \"21\"");
    expect_child(cl, "fax", "'fax'");
    cr_assert_null(child(cl, "observations"), "customer.notes must not reach the client");

    xmlNodePtr items = child(root, "items");
    cr_assert_not_null(items);
    size_t i = 0;
    for (xmlNodePtr it = items->children; it; it = it->next) {
        if (it->type != XML_ELEMENT_NODE)
            continue;
        const iw_line *ln = &ev->invoice.lines[i];
        char want[64];
        expect_child(it, "name", ln->name);
        expect_child(it, "description", ln->description);
        price_of(i, want, sizeof(want));
        expect_child(it, "unit_price", want);
        snprintf(want, sizeof(want), "%zu.125", i + 1);
        expect_child(it, "quantity", want);
        expect_child(it, "unit", i % 2 ? "hour" : "unit");
        snprintf(want, sizeof(want), "%zu.5", i % 100);
        expect_child(it, "discount", want);
        xmlNodePtr tax = child(it, "tax");
        if (i % 3 == 2) {
            cr_assert_null(tax, "item %zu: rate 0 must carry no tax", i);
        } else {
            cr_assert_not_null(tax, "item %zu", i);
            expect_child(tax, "name", i % 3 == 0 ? "IVA23" : "IVA6");
        }
        i++;
    }
    cr_assert_eq(i, N_LINES);
    /* money keeps its text: "0.10"-style values are never reformatted */
    cr_assert_not_null(strstr(req.body, "<unit_price>0.10</unit_price>"));
    xmlFreeDoc(doc);
    iw_request_clear(&req);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
    free(json);
    free(big);
}

/* ---- validation of what the parser never produces ---- */

/* An event without lines: the parser refuses such an event (so no case file can hold one); the
 * adapter must too, and render refuses it leaving nothing behind. */
Test(invoicexpress, validate_at_least_one_item)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc = conf();
    size_t n_lines = ev->invoice.n_lines;
    ev->invoice.n_lines = 0;
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_invoicexpress, ev, &tc, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert_str_eq(err, "invoice.lines: at least one item is required");
    iw_request req;
    memset(&req, 0, sizeof(req));
    cr_assert_eq(iw_target_render(&iw_target_invoicexpress, ev, &tc, NULL, &req, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert_null(req.body);
    cr_assert_null(req.url);
    ev->invoice.n_lines = n_lines; /* free them all */
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ---- ops table ---- */

Test(invoicexpress, no_token_refresh)
{
    cr_assert_null(iw_target_invoicexpress.render_refresh);
    cr_assert_null(iw_target_invoicexpress.parse_refresh);
    cr_assert_eq(iw_target_find("invoicexpress"), &iw_target_invoicexpress);
}
