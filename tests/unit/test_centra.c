/* test_centra.c: what of the centra_soap and centra_navision adapters a case file cannot say:
 * the structure check catching edits, generated round trips (1000 lines, 10 KB strings), a
 * conf or event the loader and parser never produce, and the ops tables. Requests, refusals
 * and replies are case files: tests/cases/centra (run by test_cases.c). */
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

/* ------------------------------------------------------------ auth */

/* auth defaults to "none"; the loader accepts only "none" and "basic", and render refuses any
 * other value on its own. */
Test(centra, navision_unknown_auth_is_refused)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_navision");
    cr_assert_str_eq(iw_centra_conf_of(&tc)->auth, "none");
    iw_request r = {0};
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

/* The parser never lets an event without an id through (so no case file can hold one); the
 * adapter checks anyway. */
Test(centra, validate_requires_invoice_id)
{
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_target_conf tc;
    conf_for(&tc, "centra_soap");
    char err[256] = "";
    ev->invoice.id = NULL;
    cr_assert_eq(iw_target_validate(&iw_target_centra_soap, ev, &tc, err, sizeof(err)), IW_EINVAL);
    cr_assert_str_eq(err, "invoice.id: required by centra_soap");
    ev->invoice.id = "";
    cr_assert_eq(iw_target_validate(&iw_target_centra_navision, ev, &tc, err, sizeof(err)),
                 IW_EINVAL);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ------------------------------------------------------------ ops tables */

Test(centra, ops_tables_are_registered)
{
    cr_assert_eq(iw_target_find("centra_soap"), &iw_target_centra_soap);
    cr_assert_eq(iw_target_find("centra_navision"), &iw_target_centra_navision);
    cr_assert_null(iw_target_centra_soap.render_refresh);
    cr_assert_null(iw_target_centra_navision.parse_refresh);
}
