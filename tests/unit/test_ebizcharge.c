/* test_ebizcharge.c: the ebizcharge adapter: structure against the seed sample, values through a
 * libxml2 round trip, required fields and defaults, validation rules, reply classification over
 * fixture files, and masking. */
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
#include "ebizcharge.h"

#define SECURITY_ID "9f8e7d6c-4621-b899-0a1b-SECRET-SID"
#define PASSWORD "merchant-Pw-42"
#define USER_ID "merchant1"
#define EBIZ_NS "http://eBizCharge.ServiceModel.SOAP"
#define SOAP_ENV "http://schemas.xmlsoap.org/soap/envelope/"

/* ------------------------------------------------------------ helpers */

/* complete.json as a cJSON tree, to derive variants from. */
static cJSON *complete_tree(void)
{
    size_t len;
    char *json = iw_t_fixture("events/complete.json", &len);
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    cr_assert_not_null(root);
    return root;
}

static iw_event *event_from_tree(cJSON *root)
{
    char *json = cJSON_PrintUnformatted(root);
    cr_assert_not_null(json);
    iw_event *ev = iw_t_parse(json, strlen(json));
    free(json);
    return ev;
}

/* The object at "invoice", "invoice.lines[1]" ... */
static cJSON *node(cJSON *root, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    cJSON *n = root;
    char *save = NULL;
    for (char *step = strtok_r(buf, ".", &save); step && n; step = strtok_r(NULL, ".", &save)) {
        char *br = strchr(step, '[');
        if (br) {
            *br = '\0';
            n = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(n, step), atoi(br + 1));
        } else {
            n = cJSON_GetObjectItemCaseSensitive(n, step);
        }
    }
    cr_assert_not_null(n, "%s not in complete.json", path);
    return n;
}

/* complete.json without the field `key` of the object at `obj_path`. */
static iw_event *complete_without(const char *obj_path, const char *key)
{
    cJSON *root = complete_tree();
    cJSON *obj = node(root, obj_path);
    cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(obj, key), "%s.%s", obj_path, key);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    iw_event *ev = event_from_tree(root);
    cJSON_Delete(root);
    return ev;
}

static void conf_for(iw_target_conf *tc)
{
    memset(tc, 0, sizeof(*tc));
    cr_assert_eq(iw_target_conf_defaults(tc, "ebizcharge"), 0);
    tc->name = strdup("ebizcharge");
    iw_ebiz_conf_of(tc)->security_id = strdup(SECURITY_ID);
    iw_ebiz_conf_of(tc)->user_id = strdup(USER_ID);
    iw_ebiz_conf_of(tc)->password = strdup(PASSWORD);
}

static void render_ok(const iw_event *ev, const iw_target_conf *tc, iw_request *r)
{
    char err[256] = "";
    memset(r, 0, sizeof(*r));
    int rc = iw_target_render(&iw_target_ebizcharge, ev, tc, NULL, r, err, sizeof(err));
    cr_assert_eq(rc, 0, "render failed: %s", err);
    cr_assert_not_null(r->body);
}

static xmlDocPtr parse_back(const iw_request *r)
{
    xmlDocPtr d =
        xmlReadMemory(r->body, (int)r->body_len, "out.xml", NULL, XML_PARSE_NONET | XML_PARSE_HUGE);
    cr_assert_not_null(d, "rendered body is not well-formed XML");
    return d;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0) {
            const char *want =
                strcmp(name, "Body") == 0 || strcmp(name, "Header") == 0 ? SOAP_ENV : EBIZ_NS;
            cr_assert(c->ns && strcmp((const char *)c->ns->href, want) == 0,
                      "<%s> is not in namespace %s", name, want);
            return c;
        }
    return NULL;
}

static xmlNodePtr at(xmlNodePtr n, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *step = strtok_r(buf, "/", &save); step && n; step = strtok_r(NULL, "/", &save))
        n = child(n, step);
    return n;
}

static void expect_text(xmlNodePtr base, const char *path, const char *want)
{
    xmlNodePtr n = at(base, path);
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

static xmlNodePtr update_element(xmlDocPtr d)
{
    xmlNodePtr u = at(xmlDocGetRootElement(d), "Body/UpdateInvoice");
    cr_assert_not_null(u);
    return u;
}

/* ------------------------------------------------------------ (a) golden structure */

/* Elements of the seed sample the canonical model cannot feed. Keep this list short: every
 * entry is a reference path prefix dropped before comparing.
 * - Item/ItemCustomFields: the model has no per-line custom fields, and the seed says unused
 *   objects must be left out of the request. */
static const char *const STRUCTURE_EXCEPTIONS[] = {
    "/{" EBIZ_NS "}Items/{" EBIZ_NS "}Item/{" EBIZ_NS "}ItemCustomFields",
};

static bool excepted(const char *path)
{
    for (size_t i = 0; i < sizeof(STRUCTURE_EXCEPTIONS) / sizeof(STRUCTURE_EXCEPTIONS[0]); i++)
        if (strstr(path, STRUCTURE_EXCEPTIONS[i]))
            return true;
    return false;
}

static int compare_structure(const char *doc, size_t len, char *msg, size_t msglen,
                             size_t *n_excepted)
{
    size_t rlen;
    char *ref = iw_t_fixture("ebizcharge/reference-request.xml", &rlen);
    iw_paths want, got;
    cr_assert_eq(iw_paths_xml(ref, rlen, &want), 0);
    size_t k = 0;
    *n_excepted = 0;
    for (size_t i = 0; i < want.n; i++) {
        if (excepted(want.items[i])) {
            free(want.items[i]);
            (*n_excepted)++;
        } else {
            want.items[k++] = want.items[i];
        }
    }
    want.n = k;
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

Test(ebizcharge, complete_matches_seed_structure)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    char msg[512] = "";
    size_t n_excepted;
    cr_assert_eq(compare_structure(r.body, r.body_len, msg, sizeof(msg), &n_excepted), 0, "%s",
                 msg);
    /* ItemCustomFields, EbizCustomField and its 7 children, nothing else */
    cr_assert_eq(n_excepted, 9);
    cr_assert_null(strstr(r.body, "ItemCustomFields"));
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, structure_check_catches_rename_drop_add_move)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    static const char *const edits[][2] = {
        {"<ebiz:PoNum>PO-7781</ebiz:PoNum>", "<ebiz:PoNumber>PO-7781</ebiz:PoNumber>"}, /* rename */
        {"<ebiz:SoNum>SO-5512</ebiz:SoNum>", ""},                                       /* drop */
        {"<ebiz:MerchantId/>", "<ebiz:MerchantId/><ebiz:Extra/>"},                      /* add */
        {"<ebiz:MerchantId/><ebiz:CustomerId>5</ebiz:CustomerId>",
         "<ebiz:CustomerId>5</ebiz:CustomerId><ebiz:MerchantId/>"}, /* move */
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        const char *hit = strstr(r.body, edits[i][0]);
        cr_assert_not_null(hit, "%s", edits[i][0]);
        size_t n = r.body_len + strlen(edits[i][1]) + 1;
        char *m = malloc(n);
        snprintf(m, n, "%.*s%s%s", (int)(hit - r.body), r.body, edits[i][1],
                 hit + strlen(edits[i][0]));
        char msg[512];
        size_t k;
        cr_assert_neq(compare_structure(m, strlen(m), msg, sizeof(msg), &k), 0, "edit %zu", i);
        free(m);
    }
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, complete_values)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr u = update_element(d);
    cr_assert_not_null(at(xmlDocGetRootElement(d), "Header"));
    static const char *const want[][2] = {
        {"securityToken/SecurityId", SECURITY_ID},
        {"securityToken/UserId", USER_ID},
        {"securityToken/Password", PASSWORD},
        {"invoice/MerchantId", ""},
        {"invoice/CustomerId", "5"},
        {"invoice/SubCustomerId", ""},
        {"invoice/InvoiceNumber", "1001"},
        {"invoice/InvoiceDate", "11/21/2026"}, /* date_format mdy, the seed's examples */
        {"invoice/Currency", "EUR"},
        {"invoice/InvoiceAmount", "1550.00"},
        {"invoice/InvoiceDueDate", "12/21/2026"},
        {"invoice/AmountDue", "25.00"},
        {"invoice/PoNum", "PO-7781"},
        {"invoice/SoNum", "SO-5512"},
        {"invoice/DivisionId", "001"},
        {"invoice/TypeId", "standard"},
        {"invoice/Items/Item/ItemInternalId", ""},
        {"invoice/Items/Item/ItemId", "PEN-BLUE"},
        {"invoice/Items/Item/Name", "Blue pen"},
        {"invoice/Items/Item/Description", "Ballpoint pen, blue"},
        {"invoice/Items/Item/UnitPrice", "2.50"},
        {"invoice/Items/Item/Qty", "100"},
        {"invoice/Items/Item/Taxable", "true"},
        {"invoice/Items/Item/TaxRate", "23"},
        {"invoice/Items/Item/UnitOfMeasure", "unit"},
        {"invoice/Items/Item/TotalLineAmount", "307.50"},
        {"invoice/Items/Item/TotalLineTax", "57.50"},
        {"invoice/Items/Item/ItemLineNumber", "1"},
        {"invoice/Items/Item/GrossPrice", "3.08"},
        {"invoice/Items/Item/WarrantyDiscount", "0"},
        {"invoice/Items/Item/SalesDiscount", "0.00"},
        {"invoice/Items/Item/ItemClass", "product"},
        {"invoice/Software", "invoice-worker"},
        {"invoice/NotifyCustomer", "false"},
        {"invoice/EmailTemplateID", ""},
        {"invoice/InvoiceURL", ""},
        {"invoice/TotalTaxAmount", "289.84"},
        {"invoice/InvoiceUniqueId", "INV-1001"},
        {"invoice/InvoiceDescription", "Office supplies"},
        {"invoice/BillingAddress/FirstName", "Bruce"},
        {"invoice/BillingAddress/LastName", "Norris"},
        {"invoice/BillingAddress/CompanyName", "Norris GmbH"},
        {"invoice/BillingAddress/Address1", "Hauptstrasse 1"},
        {"invoice/BillingAddress/Address2", "Building B"},
        {"invoice/BillingAddress/City", "Berlin"},
        {"invoice/BillingAddress/State", "BE"},
        {"invoice/BillingAddress/ZipCode", "10115"},
        {"invoice/BillingAddress/Country", "DE"},
        {"invoice/BillingAddress/IsDefault", "true"},
        {"invoice/BillingAddress/AddressId", ""},
        {"invoice/ShippingAddress/FirstName", "Chuck"},
        {"invoice/ShippingAddress/City", "Hamburg"},
        {"invoice/ShippingAddress/IsDefault", "false"},
        {"invoice/InvoiceCustomerMessage", "Thank you for your order"},
        {"invoice/InvoiceMemo", "Priority customer"},
        {"invoice/InvoiceShipDate", "11/22/2026"},
        {"invoice/InvoiceShipVia", "DHL"},
        {"invoice/InvoiceTermsId", "NET30"},
        {"invoice/InvoiceSalesRepId", "REP-7"},
        {"invoice/InvoiceIsToBeEmailed", "false"},
        {"invoice/InvoiceIsToBePrinted", "false"},
        {"invoice/DeliveryNumber", "SHP-1"},
        {"invoice/TotalDiscountAmount", "10.00"},
        {"invoice/TotalShippingAmount", "15.00"},
        {"invoice/LocationId", "LOC-1"},
        {"invoice/PoDate", "11/19/2026"},
        {"invoice/OrderedBy", "jdoe"},
        {"invoice/InvoiceClass", "invoice"},
        {"invoice/InvoiceFOB", "DAP"},
        {"invoice/InvoiceTermsDescription", "Net 30 days"},
        {"invoice/InvoiceCustomFields/EbizCustomField/FieldId", ""},
        {"invoice/InvoiceCustomFields/EbizCustomField/FieldCaption", "cost_center"},
        {"invoice/InvoiceCustomFields/EbizCustomField/FieldName", "cost_center"},
        {"invoice/InvoiceCustomFields/EbizCustomField/FieldValue", "CC-42"},
        {"customerId", "5"},
        {"subCustomerId", ""},
        {"invoiceNumber", "1001"},
        {"invoiceInternalId", "5f1c7e2a-4d2a-4e98-9c1b-7a3e2f0b6d11"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        expect_text(u, want[i][0], want[i][1]);
    cr_assert_eq(count_children(at(u, "invoice/Items"), "Item"), 2);
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, request_line_headers_and_config)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.url, tc.url);
    cr_assert_str_eq(iw_request_header(&r, "Content-Type"), "text/xml; charset=utf-8");
    cr_assert_str_eq(iw_request_header(&r, "SOAPAction"),
                     "\"http://eBizCharge.ServiceModel.SOAP/IeBizService/UpdateInvoice\"");
    cr_assert(strstr(r.body, "xmlns:ebiz=\"" EBIZ_NS "\""));
    iw_request_clear(&r);

    free(iw_ebiz_conf_of(&tc)->namespace_uri);
    free(iw_ebiz_conf_of(&tc)->soap_action);
    free(tc.url);
    iw_ebiz_conf_of(&tc)->namespace_uri = strdup("urn:ebiz-test");
    iw_ebiz_conf_of(&tc)->soap_action = strdup("urn:ebiz-test/Update");
    tc.url = strdup("https://ebiz.example/svc");
    render_ok(ev, &tc, &r);
    cr_assert_str_eq(r.url, "https://ebiz.example/svc");
    cr_assert_str_eq(iw_request_header(&r, "SOAPAction"), "\"urn:ebiz-test/Update\"");
    cr_assert(strstr(r.body, "xmlns:ebiz=\"urn:ebiz-test\""));
    iw_request_clear(&r);

    free(iw_ebiz_conf_of(&tc)->security_id);
    iw_ebiz_conf_of(&tc)->security_id = NULL;
    char err[256] = "";
    cr_assert_eq(iw_target_render(&iw_target_ebizcharge, ev, &tc, NULL, &r, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert(strstr(err, "security_id"), "%s", err);
    cr_assert_null(r.url);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ------------------------------------------------------------ defaults and unused objects */

/* complete.json pared down: no shipping address, no custom fields, no optional text; the
 * flags say the customer is to be notified and e-mailed. */
Test(ebizcharge, unused_objects_omitted_unknown_fields_empty_flags_honoured)
{
    cJSON *root = complete_tree();
    cJSON *inv = node(root, "invoice");
    static const char *const drop[] = {
        "shipping_address", "custom_fields", "description", "po_number",
        "ship_date",        "customer",      "refs"};
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(inv, drop[i]);
    cJSON *flags = node(root, "invoice.flags");
    cJSON_ReplaceItemInObjectCaseSensitive(flags, "notify_customer", cJSON_CreateTrue());
    cJSON_ReplaceItemInObjectCaseSensitive(flags, "email_invoice", cJSON_CreateTrue());
    cJSON_DeleteItemFromObjectCaseSensitive(flags, "print_invoice");
    cJSON *line = node(root, "invoice.lines[1]");
    static const char *const line_drop[] = {"line_no", "taxable", "discount_amount", "sku",
                                            "line_type"};
    for (size_t i = 0; i < sizeof(line_drop) / sizeof(line_drop[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(line, line_drop[i]);
    cJSON_DeleteItemFromObjectCaseSensitive(node(root, "invoice.billing_address"), "is_default");
    iw_event *ev = event_from_tree(root);
    cJSON_Delete(root);

    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr u = update_element(d);
    expect_text(u, "invoice/ShippingAddress", NULL);
    expect_text(u, "invoice/InvoiceCustomFields", NULL);
    expect_text(u, "invoice/BillingAddress/IsDefault", "false");
    expect_text(u, "invoice/InvoiceDescription", "");
    expect_text(u, "invoice/PoNum", "");
    expect_text(u, "invoice/InvoiceShipDate", "");
    expect_text(u, "invoice/CustomerId", "");
    expect_text(u, "invoice/DivisionId", "");
    expect_text(u, "customerId", "");
    expect_text(u, "invoice/NotifyCustomer", "true");
    expect_text(u, "invoice/InvoiceIsToBeEmailed", "true");
    expect_text(u, "invoice/InvoiceIsToBePrinted", "false");
    /* the second line lost its optional fields: defaults are documented in ebizcharge.c */
    xmlNodePtr items = at(u, "invoice/Items");
    xmlNodePtr second = NULL;
    for (xmlNodePtr c = items->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            second = c;                         /* the last Item */
    expect_text(second, "ItemLineNumber", "2"); /* its position */
    expect_text(second, "Taxable", "true");     /* derived from tax_rate 23 */
    expect_text(second, "GrossPrice", "1254.80");
    expect_text(second, "SalesDiscount", "0");
    expect_text(second, "WarrantyDiscount", "0");
    expect_text(second, "ItemId", "");
    expect_text(second, "ItemClass", "");
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, taxable_derived_false_without_tax)
{
    iw_event *ev = iw_t_load_event("special-chars.json");
    /* special-chars.json lines say taxable false explicitly; drop the flag on a copy */
    iw_line *l = &ev->invoice.lines[0];
    l->taxable = IW_FLAG_UNSET;
    iw_target_conf tc;
    conf_for(&tc);
    /* this fixture has no discount/shipping totals: fill them for the render */
    ev->invoice.discount_total.set = true;
    ev->invoice.discount_total.value = iw_decimal_from_int(0);
    ev->invoice.shipping_total.set = true;
    ev->invoice.shipping_total.value = iw_decimal_from_int(0);
    iw_request r;
    render_ok(ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr item = at(update_element(d), "invoice/Items/Item");
    expect_text(item, "Taxable", "false");
    expect_text(item, "TaxRate", "0");
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* ------------------------------------------------------------ (b) round trip */

#define N_LINES 1000

static const char *const NASTY[] = {
    "<b>&amp;</b> \"quotes\" 'apostrophes'",
    "]]> not a CDATA end",
    "Grüße aus München",
    "漢字",
    "emoji 🧾🎉",
    "tab\tnew\nline\rcr",
};
#define N_NASTY (sizeof(NASTY) / sizeof(NASTY[0]))

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

static char *line_text(const char *what, size_t i)
{
    char *s = malloc(128);
    cr_assert_not_null(s);
    snprintf(s, 128, "%s %zu %s", what, i, NASTY[i % N_NASTY]);
    return s;
}

static char *roundtrip_json(const char *big)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "invoice-event/v1");
    cJSON_AddStringToObject(root, "event_id", "01JD3Q5V8M2K7X9P4R6T0WQY98");
    cJSON_AddStringToObject(root, "type", "invoice.updated");
    cJSON_AddStringToObject(root, "occurred_at", "2026-11-21T10:04:05Z");
    cJSON_AddStringToObject(root, "tenant", "acme");
    cJSON_AddNumberToObject(root, "version", 9);
    cJSON *inv = cJSON_AddObjectToObject(root, "invoice");
    cJSON_AddStringToObject(inv, "id", "INV-<&>\"ü漢🧾");
    cJSON_AddStringToObject(inv, "number", NASTY[1]);
    cJSON_AddStringToObject(inv, "currency", "EUR");
    cJSON_AddStringToObject(inv, "description", big);
    cJSON_AddStringToObject(inv, "note_public", NASTY[5]);
    cJSON_AddStringToObject(inv, "note_internal", NASTY[0]);
    cJSON_AddStringToObject(inv, "po_number", NASTY[2]);
    cJSON_AddStringToObject(inv, "ship_via", NASTY[4]);
    cJSON_AddStringToObject(inv, "terms_description", NASTY[3]);
    /* 500 lines of 0.10 and 500 of 0.20: totals as upstream summed them, sent as given */
    cJSON_AddStringToObject(inv, "total", "150.00");
    cJSON_AddStringToObject(inv, "amount_due", "0.30");
    cJSON_AddStringToObject(inv, "tax_total", "0.00");
    cJSON_AddStringToObject(inv, "discount_total", "0.000");
    cJSON_AddStringToObject(inv, "shipping_total", "12345678901.99");
    cJSON *refs = cJSON_AddObjectToObject(inv, "target_refs");
    cJSON_AddStringToObject(refs, "ebiz_internal_id", NASTY[0]);
    cJSON *cust = cJSON_AddObjectToObject(inv, "customer");
    cJSON_AddStringToObject(cust, "id", NASTY[3]);
    cJSON *addr = cJSON_AddObjectToObject(inv, "shipping_address");
    cJSON_AddStringToObject(addr, "company", big);
    cJSON_AddStringToObject(addr, "city", NASTY[2]);
    cJSON *cfs = cJSON_AddArrayToObject(inv, "custom_fields");
    cJSON *cf = cJSON_CreateObject();
    cJSON_AddStringToObject(cf, "name", NASTY[4]);
    cJSON_AddStringToObject(cf, "value", big);
    cJSON_AddItemToArray(cfs, cf);
    cJSON *lines = cJSON_AddArrayToObject(inv, "lines");
    for (size_t i = 0; i < N_LINES; i++) {
        cJSON *l = cJSON_CreateObject();
        char *name = line_text("name", i), *desc = line_text("desc", i), no[16];
        snprintf(no, sizeof(no), "%zu", i + 1);
        cJSON_AddStringToObject(l, "line_no", no);
        cJSON_AddStringToObject(l, "name", name);
        cJSON_AddStringToObject(l, "description", desc);
        cJSON_AddStringToObject(l, "quantity", "1");
        cJSON_AddStringToObject(l, "unit_price", i % 2 ? "0.20" : "0.10");
        cJSON_AddStringToObject(l, "line_total", i % 2 ? "0.20" : "0.10");
        cJSON_AddStringToObject(l, "tax_amount", "0.00");
        cJSON_AddBoolToObject(l, "taxable", i % 2);
        cJSON_AddStringToObject(l, "tax_rate", i % 2 ? "7.5" : "0");
        cJSON_AddStringToObject(l, "gross_price", i % 2 ? "0.215" : "0.10");
        free(name);
        free(desc);
        cJSON_AddItemToArray(lines, l);
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    cr_assert_not_null(json);
    return json;
}

Test(ebizcharge, roundtrip_special_text_big_strings_many_lines, .timeout = 120)
{
    char *big = big_string(10 * 1024);
    char *json = roundtrip_json(big);
    iw_event *ev = iw_t_parse(json, strlen(json));
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr u = update_element(d);
    const char *const want[][2] = {
        {"invoice/InvoiceNumber", NASTY[1]},
        {"invoice/InvoiceUniqueId", "INV-<&>\"ü漢🧾"},
        {"invoice/InvoiceDescription", big},
        {"invoice/InvoiceCustomerMessage", NASTY[5]},
        {"invoice/InvoiceMemo", NASTY[0]},
        {"invoice/PoNum", NASTY[2]},
        {"invoice/InvoiceShipVia", NASTY[4]},
        {"invoice/InvoiceTermsDescription", NASTY[3]},
        {"invoice/CustomerId", NASTY[3]},
        {"invoice/InvoiceAmount", "150.00"},
        {"invoice/AmountDue", "0.30"},
        {"invoice/TotalTaxAmount", "0.00"},
        {"invoice/TotalDiscountAmount", "0.000"},
        {"invoice/TotalShippingAmount", "12345678901.99"},
        {"invoice/BillingAddress", NULL},
        {"invoice/ShippingAddress/CompanyName", big},
        {"invoice/ShippingAddress/City", NASTY[2]},
        {"invoice/ShippingAddress/IsDefault", "false"},
        {"invoice/InvoiceCustomFields/EbizCustomField/FieldName", NASTY[4]},
        {"invoice/InvoiceCustomFields/EbizCustomField/FieldValue", big},
        {"customerId", NASTY[3]},
        {"invoiceNumber", NASTY[1]},
        {"invoiceInternalId", NASTY[0]},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        expect_text(u, want[i][0], want[i][1]);
    xmlNodePtr items = at(u, "invoice/Items");
    cr_assert_eq(count_children(items, "Item"), N_LINES);
    size_t i = 0;
    for (xmlNodePtr it = items->children; it; it = it->next) {
        if (it->type != XML_ELEMENT_NODE)
            continue;
        char *name = line_text("name", i), *desc = line_text("desc", i), no[16];
        snprintf(no, sizeof(no), "%zu", i + 1);
        expect_text(it, "Name", name);
        expect_text(it, "Description", desc);
        expect_text(it, "UnitPrice", i % 2 ? "0.20" : "0.10");
        expect_text(it, "Qty", "1");
        expect_text(it, "Taxable", i % 2 ? "true" : "false");
        expect_text(it, "TaxRate", i % 2 ? "7.5" : "0");
        expect_text(it, "TotalLineAmount", i % 2 ? "0.20" : "0.10");
        expect_text(it, "TotalLineTax", "0.00");
        expect_text(it, "ItemLineNumber", no);
        free(name);
        free(desc);
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

/* ------------------------------------------------------------ (d) validation */

static void expect_rejected(iw_event *ev, const char *message)
{
    iw_target_conf tc;
    conf_for(&tc);
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_ebizcharge, ev, &tc, err, sizeof(err)), IW_EINVAL,
                 "accepted; want '%s'", message);
    cr_assert_str_eq(err, message);
    /* render refuses the same event with the same message: nothing incomplete is ever sent */
    iw_request r = {0};
    char err2[256] = "";
    cr_assert_eq(iw_target_render(&iw_target_ebizcharge, ev, &tc, NULL, &r, err2, sizeof(err2)),
                 IW_EINVAL);
    cr_assert_str_eq(err2, message);
    cr_assert_null(r.body);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, validate_accepts_complete)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    char err[256] = "";
    cr_assert_eq(iw_target_validate(&iw_target_ebizcharge, ev, &tc, err, sizeof(err)), 0, "%s",
                 err);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, validate_requires_invoice_totals)
{
    static const char *const rules[][2] = {
        {"total", "invoice.total: required by ebizcharge (InvoiceAmount)"},
        {"amount_due", "invoice.amount_due: required by ebizcharge (AmountDue)"},
        {"tax_total", "invoice.tax_total: required by ebizcharge (TotalTaxAmount)"},
        {"discount_total", "invoice.discount_total: required by ebizcharge (TotalDiscountAmount)"},
        {"shipping_total", "invoice.shipping_total: required by ebizcharge (TotalShippingAmount)"},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        expect_rejected(complete_without("invoice", rules[i][0]), rules[i][1]);
}

Test(ebizcharge, validate_requires_line_amounts)
{
    static const char *const rules[][2] = {
        {"unit_price", "invoice.lines[1].unit_price: required by ebizcharge (UnitPrice)"},
        {"quantity", "invoice.lines[1].quantity: required by ebizcharge (Qty)"},
        {"line_total", "invoice.lines[1].line_total: required by ebizcharge (TotalLineAmount)"},
        {"tax_amount", "invoice.lines[1].tax_amount: required by ebizcharge (TotalLineTax)"},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        expect_rejected(complete_without("invoice.lines[1]", rules[i][0]), rules[i][1]);
}

Test(ebizcharge, validate_taxable_line_needs_a_rate)
{
    expect_rejected(complete_without("invoice.lines[0]", "tax_rate"),
                    "invoice.lines[0].tax_rate: required by ebizcharge (TaxRate) for a taxable "
                    "line");
}

/* Regression: GrossPrice and TaxRate were written as made-up zeros when absent, overwriting
 * the real values at EBizCharge. */
Test(ebizcharge, validate_taxable_line_needs_a_gross_price)
{
    expect_rejected(complete_without("invoice.lines[0]", "gross_price"),
                    "invoice.lines[0].gross_price: required by ebizcharge (GrossPrice) for a "
                    "taxable line");
}

Test(ebizcharge, untaxed_line_gross_price_is_its_unit_price_and_rate_zero)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_line *l = &ev->invoice.lines[0];
    l->taxable = IW_FLAG_NO;
    l->gross_price.set = false;
    l->tax_rate.set = false;
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr item = at(update_element(d), "invoice/Items/Item");
    expect_text(item, "GrossPrice", "2.50");
    expect_text(item, "TaxRate", "0");
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* Dates: MM/DD/YYYY by default (seed 003 lines 258-259, 281, 284), YYYY-MM-DD with date_format
 * "iso" (the "Defaults to 1900-01-01" notes, lines 70-73). */
Test(ebizcharge, date_format_is_configurable)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    free(iw_ebiz_conf_of(&tc)->date_format);
    iw_ebiz_conf_of(&tc)->date_format = strdup("iso");
    iw_request r;
    render_ok(ev, &tc, &r);
    xmlDocPtr d = parse_back(&r);
    xmlNodePtr u = update_element(d);
    expect_text(u, "invoice/InvoiceDate", "2026-11-21");
    expect_text(u, "invoice/InvoiceDueDate", "2026-12-21");
    expect_text(u, "invoice/InvoiceShipDate", "2026-11-22");
    expect_text(u, "invoice/PoDate", "2026-11-19");
    xmlFreeDoc(d);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, validate_line_no_must_be_a_whole_number)
{
    cJSON *root = complete_tree();
    cJSON_ReplaceItemInObjectCaseSensitive(node(root, "invoice.lines[1]"), "line_no",
                                           cJSON_CreateString("2a"));
    iw_event *ev = event_from_tree(root);
    cJSON_Delete(root);
    expect_rejected(ev, "invoice.lines[1].line_no: must be a whole number for ebizcharge "
                        "(ItemLineNumber)");
}

Test(ebizcharge, validate_needs_number_or_internal_id)
{
    cJSON *root = complete_tree();
    cJSON_DeleteItemFromObjectCaseSensitive(node(root, "invoice"), "number");
    cJSON_DeleteItemFromObjectCaseSensitive(node(root, "invoice.target_refs"), "ebiz_internal_id");
    iw_event *ev = event_from_tree(root);
    cJSON_Delete(root);
    expect_rejected(ev, "invoice.number: ebizcharge needs invoice.number or "
                        "invoice.target_refs.ebiz_internal_id to identify the invoice");

    /* either one alone is enough */
    iw_target_conf tc;
    conf_for(&tc);
    char err[256] = "";
    ev = complete_without("invoice", "number");
    cr_assert_eq(iw_target_validate(&iw_target_ebizcharge, ev, &tc, err, sizeof(err)), 0, "%s",
                 err);
    iw_event_free(ev);
    ev = complete_without("invoice.target_refs", "ebiz_internal_id");
    cr_assert_eq(iw_target_validate(&iw_target_ebizcharge, ev, &tc, err, sizeof(err)), 0, "%s",
                 err);
    iw_event_free(ev);
    iw_target_conf_clear(&tc);
}

Test(ebizcharge, minimal_event_is_rejected_not_sent_with_made_up_totals)
{
    expect_rejected(iw_t_load_event("minimal.json"),
                    "invoice.number: ebizcharge needs invoice.number or "
                    "invoice.target_refs.ebiz_internal_id to identify the invoice");
}

/* ------------------------------------------------------------ (c) classification */

/* Every reply fixture is classified by tests/integration/test_classify_replies.c from
 * tests/fixtures/replies/cases.json. */

Test(ebizcharge, odd_status_is_not_success_and_secrets_are_masked)
{
    iw_target_conf tc;
    conf_for(&tc);
    const char body[] =
        "<s:Envelope xmlns:s=\"" SOAP_ENV "\"><s:Body><UpdateInvoiceResponse xmlns=\"" EBIZ_NS
        "\"><UpdateInvoiceResult><Status>Success</Status><StatusCode>0</StatusCode>"
        "<Error>token " SECURITY_ID " rejected</Error><ErrorCode>7</ErrorCode>"
        "</UpdateInvoiceResult></UpdateInvoiceResponse></s:Body></s:Envelope>";
    iw_response resp = {.status = 200, .body = body, .body_len = strlen(body)};
    iw_outcome o;
    iw_target_classify(&iw_target_ebizcharge, &tc, &resp, &o);
    cr_assert_eq(o.kind, IW_OUTCOME_PERMANENT, "%s", o.message);
    cr_assert_str_eq(o.code, "7");
    cr_assert_null(strstr(o.message, SECURITY_ID), "%s", o.message);
    cr_assert(strstr(o.message, "token *** rejected"), "%s", o.message);
    cr_assert_str_eq(o.target_ref, "");
    iw_target_conf_clear(&tc);
}

/* ------------------------------------------------------------ (e) masking */

Test(ebizcharge, masked_print_hides_security_id_and_password)
{
    iw_event *ev = iw_t_load_event("complete.json");
    iw_target_conf tc;
    conf_for(&tc);
    iw_request r;
    render_ok(ev, &tc, &r);
    cr_assert(strstr(r.body, SECURITY_ID) && strstr(r.body, PASSWORD));
    char *printed = iw_request_format_masked(&r);
    cr_assert_not_null(printed);
    cr_assert_null(strstr(printed, SECURITY_ID), "%s", printed);
    cr_assert_null(strstr(printed, PASSWORD), "%s", printed);
    cr_assert(strstr(printed, "<ebiz:SecurityId>***</ebiz:SecurityId>"));
    cr_assert(strstr(printed, "<ebiz:Password>***</ebiz:Password>"));
    cr_assert(strstr(printed, "<ebiz:UserId>" USER_ID "</ebiz:UserId>"));
    free(printed);
    iw_request_clear(&r);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(ebizcharge, ops_table_is_registered)
{
    cr_assert_eq(iw_target_find("ebizcharge"), &iw_target_ebizcharge);
    cr_assert_not_null(iw_target_ebizcharge.validate);
    cr_assert_null(iw_target_ebizcharge.render_refresh);
}
