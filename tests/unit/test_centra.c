/* test_centra.c: the centra_soap and centra_navision adapters: structure against the seed
 * samples, values through a libxml2 round trip, headers and auth, validation, reply
 * classification over fixture files, and masking. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>

#include "docpaths.h"
#include "testdata.h"
#include "status.h"
#include "target.h"
#include "centra.h"

#define PASSWORD "s3cr3t-Pw!x"
#define USERNAME "api-user"

/* ------------------------------------------------------------ helpers */

static void conf_for(iw_target_conf *tc, const char *type)
{
    memset(tc, 0, sizeof(*tc));
    cr_assert_eq(iw_target_conf_defaults(tc, type), 0);
    tc->name = strdup(type);
    iw_centra_conf_of(tc)->username = strdup(USERNAME);
    iw_centra_conf_of(tc)->password = strdup(PASSWORD);
}

static void render_ok(const iw_target_ops *ops, const iw_event *ev, const iw_target_conf *tc,
                      iw_request *r)
{
    char err[256] = "";
    memset(r, 0, sizeof(*r));
    int rc = iw_target_render(ops, ev, tc, NULL, r, err, sizeof(err));
    cr_assert_eq(rc, 0, "render failed: %s", err);
    cr_assert_not_null(r->body);
}

/* Compares the element paths of a document with a reference file; returns 0 when equal. */
static int compare_structure(const char *doc, size_t len, const char *ref_file, char *msg,
                             size_t msglen)
{
    char path[512];
    size_t rlen;
    snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, ref_file);
    char *ref = iw_read_file(path, &rlen);
    cr_assert_not_null(ref, "cannot read %s", path);
    iw_paths want, got;
    cr_assert_eq(iw_paths_xml(ref, rlen, &want), 0);
    int rc = iw_paths_xml(doc, len, &got);
    if (rc == 0)
        rc = iw_paths_compare(&want, &got, msg, msglen);
    else
        snprintf(msg, msglen, "rendered document is not well-formed");
    iw_paths_free(&want);
    iw_paths_free(&got);
    free(ref);
    return rc;
}

/* Replaces the first occurrence of `from` with `to`; returns a new string. */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    cr_assert_not_null(at, "'%s' not in the document", from);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    cr_assert_not_null(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    return out;
}

static xmlDocPtr parse_back(const iw_request *r)
{
    xmlDocPtr d =
        xmlReadMemory(r->body, (int)r->body_len, "out.xml", NULL, XML_PARSE_NONET | XML_PARSE_HUGE);
    cr_assert_not_null(d, "rendered body is not well-formed XML");
    return d;
}

/* The first element child of n with local name `name`, checked to be in namespace ns. */
static xmlNodePtr child(xmlNodePtr n, const char *name, const char *ns)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0) {
            cr_assert(c->ns && strcmp((const char *)c->ns->href, ns) == 0,
                      "<%s> is not in namespace %s", name, ns);
            return c;
        }
    return NULL;
}

/* Follows a "/"-separated path of child names from n; NULL when a step is missing. */
static xmlNodePtr at(xmlNodePtr n, const char *path, const char *ns)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *step = strtok_r(buf, "/", &save); step && n; step = strtok_r(NULL, "/", &save))
        n = child(n, step, ns);
    return n;
}

/* Asserts that the element at path holds exactly `want` (NULL: the element is absent). */
static void expect_text(xmlNodePtr base, const char *path, const char *ns, const char *want)
{
    xmlNodePtr n = at(base, path, ns);
    if (!want) {
        cr_assert_null(n, "%s should be absent", path);
        return;
    }
    cr_assert_not_null(n, "%s is missing", path);
    xmlChar *t = xmlNodeGetContent(n);
    cr_assert(strcmp((const char *)t, want) == 0, "%s: got '%.80s' (%zu bytes), want '%.80s' (%zu)",
              path, (const char *)t, strlen((const char *)t), want, strlen(want));
    xmlFree(t);
}

static size_t count_children(xmlNodePtr n, const char *name)
{
    size_t k = 0;
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            k++;
    return k;
}

#define CENTRA_NS "http://www.centra.com/webservices/"
#define NAVISION_NS "http://www.silkvms.com/webservices/"
#define SOAP_ENV "http://schemas.xmlsoap.org/soap/envelope/"

static xmlNodePtr update_element(xmlDocPtr d, const char *ns)
{
    xmlNodePtr body = child(xmlDocGetRootElement(d), "Body", SOAP_ENV);
    cr_assert_not_null(body);
    xmlNodePtr u = child(body, "invoices_Update", ns);
    cr_assert_not_null(u);
    return u;
}

/* ------------------------------------------------------------ (a) golden structure */

Test(centra, soap_complete_matches_seed_structure)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    char msg[512] = "";
    cr_assert_eq(compare_structure(r.body, r.body_len, "centra_soap/reference-request.xml", msg,
                                   sizeof(msg)),
                 0, "%s", msg);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(centra, navision_complete_matches_seed_structure)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_navision");
    iw_request r;
    render_ok(&iw_target_centra_navision, ev, &tc, &r);
    char msg[512] = "";
    cr_assert_eq(compare_structure(r.body, r.body_len, "centra_navision/reference-request.xml", msg,
                                   sizeof(msg)),
                 0, "%s", msg);
    cr_assert_null(strstr(r.body, "login"), "navision has no login element");
    cr_assert_null(strstr(r.body, "ecvatno"), "navision addresses have no ecvatno");
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* The structure check itself must catch a renamed, dropped, added or moved element. */
Test(centra, structure_check_catches_rename_drop_add_move)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    const char *ref = "centra_soap/reference-request.xml";
    char msg[512];

    char *a = replace(r.body, "<ns1:serialno>1001</ns1:serialno>", "<ns1:serial>1001</ns1:serial>");
    cr_assert_neq(compare_structure(a, strlen(a), ref, msg, sizeof(msg)), 0, "rename not caught");
    free(a);
    a = replace(r.body, "<ns1:ponumber>PO-7781</ns1:ponumber>", "");
    cr_assert_neq(compare_structure(a, strlen(a), ref, msg, sizeof(msg)), 0, "drop not caught");
    free(a);
    a = replace(r.body, "</ns1:invoice>", "<ns1:extra>x</ns1:extra></ns1:invoice>");
    cr_assert_neq(compare_structure(a, strlen(a), ref, msg, sizeof(msg)), 0, "add not caught");
    free(a);
    char *b = replace(r.body, "<ns1:locked>false</ns1:locked>", "");
    a = replace(b, "<ns1:invoice>", "<ns1:invoice><ns1:locked>false</ns1:locked>");
    cr_assert_neq(compare_structure(a, strlen(a), ref, msg, sizeof(msg)), 0, "move not caught");
    free(a);
    free(b);

    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* Values of complete.json land where the mapping table says. */
Test(centra, soap_complete_values)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr u = update_element(d, CENTRA_NS);
    /* login is the first child of invoices_Update */
    xmlNodePtr first = u->children;
    while (first && first->type != XML_ELEMENT_NODE)
        first = first->next;
    cr_assert_str_eq((const char *)first->name, "login");
    expect_text(u, "login/username", CENTRA_NS, USERNAME);
    expect_text(u, "login/password", CENTRA_NS, PASSWORD);
    xmlNodePtr inv = at(u, "invoices/invoice", CENTRA_NS);
    static const char *const want[][2] = {
        {"id", "C-1001"}, /* target_refs.centra_id wins over id */
        {"store", "eu-store"},
        {"status", "open"},
        {"serialno", "1001"},
        {"documenttype", "invoice"},
        {"type", "standard"},
        {"currency", "EUR"},
        {"currencyrate", "11.4521"},
        {"basecurrency", "SEK"},
        {"total", "1550.00"},
        {"vat", "289.84"},
        {"totalpaid", "1525.00"},
        {"invoicedate", "2026-11-21"},
        {"orderdate", "2026-11-20"},
        {"duedate", "2026-12-21"},
        {"buyer/id", "BUY-1"},
        {"buyer/description", "Bruce Norris"},
        {"account/id", "ACC-1"},
        {"account/description", "Norris GmbH"},
        {"order/id", "3"},
        {"order/description", "SO-5512"},
        {"shipment/id", "SHP-1"},
        {"shipment/description", "DHL"},
        {"refund/id", "REF-1"},
        {"refund/description", ""},
        {"paymentterms", "Net 30 days"},
        {"shippingterms", "DAP"},
        {"internalinformation", "Priority customer"},
        {"ponumber", "PO-7781"},
        {"billingaddress/id", ""},
        {"billingaddress/company", "Norris GmbH"},
        {"billingaddress/attn", "Accounts payable"},
        {"billingaddress/firstname", "Bruce"},
        {"billingaddress/lastname", "Norris"},
        {"billingaddress/address1", "Hauptstrasse 1"},
        {"billingaddress/address2", "Building B"},
        {"billingaddress/city", "Berlin"},
        {"billingaddress/state", "BE"},
        {"billingaddress/zipcode", "10115"},
        {"billingaddress/country", "DE"},
        {"billingaddress/email", "billing@example.com"},
        {"billingaddress/telephone", "+49 30 1234567"},
        {"billingaddress/fax", "+49 30 1234568"},
        {"billingaddress/vat", "DE123456789"},
        {"billingaddress/url", "www.brucenorris.example"},
        {"billingaddress/companyregistrationid", "HRB 12345"},
        {"billingaddress/ecvatno", "DE123456789"},
        {"shippingaddress/company", "Norris GmbH Warehouse"},
        {"shippingaddress/city", "Hamburg"},
        {"items/invoiceitem/itemid", "18"},
        {"items/invoiceitem/qty", "100"},
        {"items/invoiceitem/price", "2.50"},
        {"items/invoiceitem/tax", "57.50"},
        {"items/invoiceitem/subtotal", "250.00"},
        {"items/invoiceitem/description", "Ballpoint pen, blue"},
        {"items/invoiceitem/product/id", "P-100"},
        {"items/invoiceitem/product/description", "Blue pen"},
        {"items/invoiceitem/variation/id", "V-1"},
        {"items/invoiceitem/size/id", "S-M"},
        {"items/invoiceitem/discount", "0.00"},
        {"items/invoiceitem/sku", "PEN-BLUE"},
        {"items/additional/subtotal", "15.00"},
        {"items/additional/description", "Shipping"},
        {"items/additional/key", "shipping"},
        {"items/additional/id", "SH-1"},
        {"locked", "false"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        expect_text(inv, want[i][0], CENTRA_NS, want[i][1]);
    cr_assert_eq(count_children(at(inv, "items", CENTRA_NS), "invoiceitem"), 2);
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* A minimal invoice: absent fields and unused objects are left out, not sent empty. */
Test(centra, minimal_omits_unknown_fields)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr inv = at(update_element(d, CENTRA_NS), "invoices/invoice", CENTRA_NS);
    expect_text(inv, "id", CENTRA_NS, "INV-2001");
    expect_text(inv, "currency", CENTRA_NS, "EUR");
    expect_text(inv, "items/invoiceitem/qty", CENTRA_NS, "1");
    expect_text(inv, "items/invoiceitem/price", CENTRA_NS, "100.00");
    expect_text(inv, "items/invoiceitem/description", CENTRA_NS, "Consulting"); /* name fallback */
    expect_text(inv, "items/invoiceitem/product/description", CENTRA_NS, "Consulting");
    expect_text(inv, "items/invoiceitem/product/id", CENTRA_NS, NULL); /* no product id */
    expect_text(inv, "serialno", CENTRA_NS, NULL);
    expect_text(inv, "buyer", CENTRA_NS, NULL);
    expect_text(inv, "billingaddress", CENTRA_NS, NULL);
    expect_text(inv, "shippingaddress", CENTRA_NS, NULL);
    expect_text(inv, "items/additional", CENTRA_NS, NULL);
    expect_text(inv, "locked", CENTRA_NS, NULL);
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* Regression: the line name (product/description) and the customer name (buyer/description)
 * were dropped when product_id or buyer_id was absent. */
Test(centra, names_are_sent_without_their_ids)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_t_set_text(&ev->invoice.refs.buyer_id, NULL);
    iw_t_set_text(&ev->invoice.lines[0].product_id, NULL);
    const char *types[] = {"centra_soap", "centra_navision"};
    const iw_target_ops *ops[] = {&iw_target_centra_soap, &iw_target_centra_navision};
    const char *ns[] = {CENTRA_NS, NAVISION_NS};
    for (int k = 0; k < 2; k++) {
        iw_target_conf tc;
        conf_for(&tc, types[k]);
        iw_request r;
        render_ok(ops[k], ev, &tc, &r);
        xmlDocPtr d = parse_back(&r);
        xmlNodePtr inv = at(update_element(d, ns[k]), "invoices/invoice", ns[k]);
        expect_text(inv, "buyer/description", ns[k], "Bruce Norris");
        expect_text(inv, "buyer/id", ns[k], NULL);
        expect_text(inv, "items/invoiceitem/product/description", ns[k], "Blue pen");
        expect_text(inv, "items/invoiceitem/product/id", ns[k], NULL);
        xmlFreeDoc(d);
        iw_request_clear(&r);
        iw_target_conf_clear(&tc);
    }
    iw_event_free(ev);
}

/* ------------------------------------------------------------ (b) round trip */

#define N_LINES 1000

static char *big_string(size_t bytes)
{
    static const char piece[] = "<&>\"'ü漢字🧾]]>";
    size_t pl = strlen(piece);
    char *s = malloc(bytes + pl + 1);
    cr_assert_not_null(s);
    size_t n = 0;
    while (n + pl <= bytes) {
        memcpy(s + n, piece, pl);
        n += pl;
    }
    s[n] = '\0';
    return s;
}

static const char *const NASTY[] = {
    "<b>&amp;</b> \"quotes\" 'apostrophes'",
    "]]> not a CDATA end",
    "Grüße aus München",
    "漢字",
    "emoji 🧾🎉",
    "tab\tnew\nline\rcr",
};
#define N_NASTY (sizeof(NASTY) / sizeof(NASTY[0]))

static char *line_text(const char *what, size_t i)
{
    char *s = malloc(128);
    cr_assert_not_null(s);
    snprintf(s, 128, "%s %zu %s", what, i, NASTY[i % N_NASTY]);
    return s;
}

/* Builds the round-trip event as JSON text, the way upstream would send it. */
static char *roundtrip_json(const char *big)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "invoice-event/v1");
    cJSON_AddStringToObject(root, "event_id", "01JD3Q5V8M2K7X9P4R6T0WQY99");
    cJSON_AddStringToObject(root, "type", "invoice.updated");
    cJSON_AddStringToObject(root, "occurred_at", "2026-11-21T10:04:05Z");
    cJSON_AddStringToObject(root, "tenant", "acme");
    cJSON_AddNumberToObject(root, "version", 5);
    cJSON *inv = cJSON_AddObjectToObject(root, "invoice");
    cJSON_AddStringToObject(inv, "id", "INV-<&>\"ü漢🧾");
    cJSON_AddStringToObject(inv, "number", NASTY[1]);
    cJSON_AddStringToObject(inv, "store", NASTY[0]);
    cJSON_AddStringToObject(inv, "status", NASTY[2]);
    cJSON_AddStringToObject(inv, "document_type", NASTY[3]);
    cJSON_AddStringToObject(inv, "type", NASTY[4]);
    cJSON_AddStringToObject(inv, "currency", "EUR");
    cJSON_AddStringToObject(inv, "currency_rate", "1.000000");
    cJSON_AddStringToObject(inv, "total", "150.00");
    cJSON_AddStringToObject(inv, "tax_total", "0.00");
    cJSON_AddStringToObject(inv, "amount_paid", "0.30");
    cJSON_AddStringToObject(inv, "issue_date", "2026-11-21");
    cJSON_AddStringToObject(inv, "terms_code", NASTY[5]);
    cJSON_AddStringToObject(inv, "shipping_terms", NASTY[1]);
    cJSON_AddStringToObject(inv, "note_internal", big);
    cJSON_AddStringToObject(inv, "po_number", NASTY[0]);
    cJSON *cust = cJSON_AddObjectToObject(inv, "customer");
    cJSON_AddStringToObject(cust, "name", big);
    cJSON_AddStringToObject(cust, "fiscal_id", NASTY[3]);
    cJSON *refs = cJSON_AddObjectToObject(inv, "refs");
    cJSON_AddStringToObject(refs, "buyer_id", NASTY[4]);
    cJSON *addr = cJSON_AddObjectToObject(inv, "billing_address");
    cJSON_AddStringToObject(addr, "company", NASTY[0]);
    cJSON_AddStringToObject(addr, "line1", big);
    cJSON_AddStringToObject(addr, "city", NASTY[2]);
    cJSON *flags = cJSON_AddObjectToObject(inv, "flags");
    cJSON_AddBoolToObject(flags, "locked", 1);
    cJSON *lines = cJSON_AddArrayToObject(inv, "lines");
    for (size_t i = 0; i < N_LINES; i++) {
        cJSON *l = cJSON_CreateObject();
        char buf[32];
        char *name = line_text("name", i), *sku = line_text("sku", i);
        cJSON_AddStringToObject(l, "name", name);
        cJSON_AddStringToObject(l, "sku", sku);
        snprintf(buf, sizeof(buf), "%zu", i + 1);
        cJSON_AddStringToObject(l, "item_id", buf);
        cJSON_AddStringToObject(l, "quantity", i % 3 ? "1" : "2.500");
        cJSON_AddStringToObject(l, "unit_price", i % 2 ? "0.20" : "0.10");
        cJSON_AddStringToObject(l, "line_subtotal", i % 2 ? "0.20" : "0.10");
        cJSON_AddStringToObject(l, "tax_amount", "0.00");
        free(name);
        free(sku);
        cJSON_AddItemToArray(lines, l);
    }
    cJSON *extra = cJSON_AddArrayToObject(inv, "extra_charges");
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "key", "fee");
    cJSON_AddStringToObject(x, "description", NASTY[4]);
    cJSON_AddStringToObject(x, "amount", "0.30");
    cJSON_AddItemToArray(extra, x);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    cr_assert_not_null(json);
    return json;
}

static void roundtrip(const iw_target_ops *ops, const char *type, const char *ns)
{
    char *big = big_string(10 * 1024);
    char *json = roundtrip_json(big);
    iw_event *ev = iw_t_parse(json, strlen(json));
    iw_target_conf tc;
    conf_for(&tc, type);
    iw_request r;
    render_ok(ops, ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr inv = at(update_element(d, ns), "invoices/invoice", ns);
    cr_assert_not_null(inv);
    const char *const want[][2] = {
        {"id", "INV-<&>\"ü漢🧾"},
        {"serialno", NASTY[1]},
        {"store", NASTY[0]},
        {"status", NASTY[2]},
        {"documenttype", NASTY[3]},
        {"type", NASTY[4]},
        {"currencyrate", "1.000000"},
        {"total", "150.00"},
        {"vat", "0.00"},
        {"totalpaid", "0.30"},
        {"paymentterms", NASTY[5]},
        {"shippingterms", NASTY[1]},
        {"internalinformation", big},
        {"ponumber", NASTY[0]},
        {"buyer/id", NASTY[4]},
        {"buyer/description", big},
        {"billingaddress/company", NASTY[0]},
        {"billingaddress/address1", big},
        {"billingaddress/city", NASTY[2]},
        {"billingaddress/vat", NASTY[3]},
        {"items/additional/description", NASTY[4]},
        {"items/additional/subtotal", "0.30"},
        {"locked", "true"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        expect_text(inv, want[i][0], ns, want[i][1]);

    xmlNodePtr items = at(inv, "items", ns);
    cr_assert_eq(count_children(items, "invoiceitem"), N_LINES);
    size_t i = 0;
    for (xmlNodePtr it = items->children; it; it = it->next) {
        if (it->type != XML_ELEMENT_NODE || strcmp((const char *)it->name, "invoiceitem") != 0)
            continue;
        char *name = line_text("name", i), *sku = line_text("sku", i), id[32];
        snprintf(id, sizeof(id), "%zu", i + 1);
        expect_text(it, "itemid", ns, id);
        expect_text(it, "qty", ns, i % 3 ? "1" : "2.500");
        expect_text(it, "price", ns, i % 2 ? "0.20" : "0.10");
        expect_text(it, "subtotal", ns, i % 2 ? "0.20" : "0.10");
        expect_text(it, "tax", ns, "0.00");
        expect_text(it, "description", ns, name);
        expect_text(it, "product/id", ns, NULL);          /* no product id */
        expect_text(it, "product/description", ns, name); /* but the name is sent */
        expect_text(it, "sku", ns, sku);
        free(name);
        free(sku);
        i++;
    }
    cr_assert_eq(i, N_LINES);

    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
    free(json);
    free(big);
}

Test(centra, soap_roundtrip_special_text_big_strings_many_lines, .timeout = 120)
{
    roundtrip(&iw_target_centra_soap, "centra_soap", CENTRA_NS);
}

Test(centra, navision_roundtrip_special_text_big_strings_many_lines, .timeout = 120)
{
    roundtrip(&iw_target_centra_navision, "centra_navision", NAVISION_NS);
}

Test(centra, special_chars_fixture_roundtrips)
{
    iw_event *ev = iw_t_load_event("special-chars.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr inv = at(update_element(d, CENTRA_NS), "invoices/invoice", CENTRA_NS);
    expect_text(inv, "buyer/id", CENTRA_NS, NULL); /* no buyer id, the name still goes */
    expect_text(inv, "buyer/description", CENTRA_NS, "Zoë & Søren <Ltd>");
    expect_text(inv, "billingaddress/company", CENTRA_NS, "Zoë & Søren <Ltd>");
    expect_text(inv, "billingaddress/address1", CENTRA_NS, "Straße 1 & 2");
    expect_text(inv, "items/invoiceitem/description", CENTRA_NS, "]]> not CDATA end; 漢字; 🧾");
    expect_text(inv, "total", CENTRA_NS, "0.30");
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(centra, control_character_is_refused_with_the_element_name)
{
    const char json[] =
        "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e1\",\"type\":\"invoice.updated\","
        "\"tenant\":\"t\",\"version\":1,\"invoice\":{\"id\":\"I1\",\"currency\":\"EUR\","
        "\"store\":\"bad\\u0001store\",\"lines\":[{\"name\":\"n\",\"quantity\":\"1\","
        "\"unit_price\":\"1.00\"}]}}";
    iw_event *ev = iw_t_parse(json, strlen(json));
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r = {0};
    char err[256] = "";
    cr_assert_eq(iw_target_render(&iw_target_centra_soap, ev, &tc, NULL, &r, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert(strstr(err, "store:"), "message: %s", err);
    cr_assert_null(r.body);
    cr_assert_null(r.url);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ------------------------------------------------------------ headers, auth, config */

Test(centra, soap_request_line_and_headers)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.url, tc.url);
    cr_assert_str_eq(iw_request_header(&r, "Content-Type"), "text/xml; charset=utf-8");
    cr_assert_str_eq(iw_request_header(&r, "SOAPAction"),
                     "\"http://www.centra.com/webservices/Invoices_Update\"");
    cr_assert_null(iw_request_header(&r, "Authorization"));
    cr_assert(strstr(r.body, "xmlns:ns1=\"" CENTRA_NS "\""));
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(centra, namespace_action_and_url_are_configurable)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    free(tc.url);
    free(iw_centra_conf_of(&tc)->namespace_uri);
    free(iw_centra_conf_of(&tc)->soap_action);
    tc.url = strdup("https://c.example/x/api");
    iw_centra_conf_of(&tc)->namespace_uri = strdup("urn:custom");
    iw_centra_conf_of(&tc)->soap_action = strdup("urn:custom/Up");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    cr_assert_str_eq(r.url, "https://c.example/x/api");
    cr_assert_str_eq(iw_request_header(&r, "SOAPAction"), "\"urn:custom/Up\"");
    xmlDocPtr d = parse_back(&r);
    cr_assert_not_null(at(update_element(d, "urn:custom"), "invoices/invoice/id", "urn:custom"));
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(centra, soap_without_credentials_is_refused)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    free(iw_centra_conf_of(&tc)->password);
    iw_centra_conf_of(&tc)->password = NULL;
    iw_request r = {0};
    char err[256] = "";
    cr_assert_eq(iw_target_render(&iw_target_centra_soap, ev, &tc, NULL, &r, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert(strstr(err, "password"), "%s", err);
    cr_assert_null(r.url);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(centra, navision_basic_auth)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_navision");
    cr_assert_str_eq(iw_centra_conf_of(&tc)->auth, "none");
    iw_request r;
    render_ok(&iw_target_centra_navision, ev, &tc, &r);
    cr_assert_null(iw_request_header(&r, "Authorization"), "auth none sends no header");
    cr_assert_str_eq(iw_request_header(&r, "SOAPAction"),
                     "\"http://www.silkvms.com/webservices/Invoices_Update\"");
    iw_request_clear(&r);

    free(iw_centra_conf_of(&tc)->auth);
    iw_centra_conf_of(&tc)->auth = strdup("basic");
    free(iw_centra_conf_of(&tc)->username);
    free(iw_centra_conf_of(&tc)->password);
    iw_centra_conf_of(&tc)->username = strdup("demo");
    iw_centra_conf_of(&tc)->password = strdup("secret");
    render_ok(&iw_target_centra_navision, ev, &tc, &r);
    /* base64("demo:secret") */
    cr_assert_str_eq(iw_request_header(&r, "Authorization"), "Basic ZGVtbzpzZWNyZXQ=");
    char *printed = iw_request_format_masked(&r);
    cr_assert_not_null(printed);
    cr_assert_null(strstr(printed, "ZGVtbzpzZWNyZXQ="), "%s", printed);
    cr_assert(strstr(printed, "Authorization: Basic ***"), "%s", printed);
    free(printed);
    iw_request_clear(&r);

    free(iw_centra_conf_of(&tc)->password);
    iw_centra_conf_of(&tc)->password = strdup("pw"); /* "demo:pw" needs one '=' of padding */
    render_ok(&iw_target_centra_navision, ev, &tc, &r);
    cr_assert_str_eq(iw_request_header(&r, "Authorization"), "Basic ZGVtbzpwdw==");
    iw_request_clear(&r);

    char err[256] = "";
    free(iw_centra_conf_of(&tc)->auth);
    iw_centra_conf_of(&tc)->auth = strdup("digest");
    cr_assert_eq(iw_target_render(&iw_target_centra_navision, ev, &tc, NULL, &r, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert(strstr(err, "auth"), "%s", err);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ------------------------------------------------------------ (d) validation */

Test(centra, validate_requires_invoice_id)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_centra_soap, ev, &tc, err, sizeof(err)), 0);
    ev->invoice.id = NULL; /* the parser never lets this through; the adapter checks anyway */
    cr_assert_eq(iw_target_validate(&iw_target_centra_soap, ev, &tc, err, sizeof(err)), IW_EINVAL);
    cr_assert_str_eq(err, "invoice.id: required by centra_soap");
    ev->invoice.id = "";
    cr_assert_eq(iw_target_validate(&iw_target_centra_navision, ev, &tc, err, sizeof(err)),
                 IW_EINVAL);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ------------------------------------------------------------ (c) classification */

#define NOW_MS 1795255200000LL /* 2026-11-21T10:00:00Z */

/* Every reply fixture is classified by tests/integration/test_classify_replies.c from
 * tests/fixtures/replies/cases.json. */

Test(centra, navision_fault_text_about_login_is_not_auth)
{
    /* navision authenticates over HTTP: a Client fault mentioning a password stays PERMANENT */
    iw_target_conf tc;
    conf_for(&tc, "centra_navision");
    char path[512];
    size_t len;
    snprintf(path, sizeof(path), "%s/centra_soap/response-fault-auth.xml", IW_FIXTURES_DIR);
    char *body = iw_read_file(path, &len);
    iw_response resp = {.status = 500, .body = body, .body_len = len, .now_ms = NOW_MS};
    iw_outcome o;
    iw_target_classify(&iw_target_centra_navision, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    free(body);
    iw_target_conf_clear(&tc);
}

Test(centra, reply_echoing_the_password_is_masked)
{
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    const char body[] = "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" SOAP_ENV "\"><SOAP-ENV:Body>"
                        "<ns1:result xmlns:ns1=\"" CENTRA_NS "\"><ns1:success>false</ns1:success>"
                        "<ns1:errors><ns1:message>bad value " PASSWORD "</ns1:message>"
                        "</ns1:errors></ns1:result></SOAP-ENV:Body></SOAP-ENV:Envelope>";
    iw_response resp = {.status = 200, .body = body, .body_len = strlen(body)};
    iw_outcome o;
    iw_target_classify(&iw_target_centra_soap, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT);
    cr_assert_null(strstr(o.message, PASSWORD), "%s", o.message);
    cr_assert(strstr(o.message, "bad value ***"), "%s", o.message);
    iw_target_conf_clear(&tc);
}

/* ------------------------------------------------------------ (e) masking */

Test(centra, masked_print_hides_the_password)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    iw_request r;
    render_ok(&iw_target_centra_soap, ev, &tc, &r);
    cr_assert(strstr(r.body, PASSWORD), "the body itself carries the login");
    char *printed = iw_request_format_masked(&r);
    cr_assert_not_null(printed);
    cr_assert_null(strstr(printed, PASSWORD), "%s", printed);
    cr_assert(strstr(printed, "<ns1:password>***</ns1:password>"), "%s", printed);
    cr_assert(strstr(printed, "<ns1:username>" USERNAME "</ns1:username>"));
    cr_assert(strncmp(printed, "POST ", 5) == 0);
    free(printed);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(centra, ops_tables_are_registered)
{
    cr_assert_eq(iw_target_find("centra_soap"), &iw_target_centra_soap);
    cr_assert_eq(iw_target_find("centra_navision"), &iw_target_centra_navision);
    cr_assert_null(iw_target_centra_soap.render_refresh);
    cr_assert_null(iw_target_centra_navision.parse_refresh);
}
