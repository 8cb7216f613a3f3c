/* test_event.c: parsing invoice events into the canonical model, and refusing bad ones. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "docpaths.h"
#include "invoice.h"
#include "status.h"

#define EVENTS IW_FIXTURES_DIR "/events/"

/* ---- helpers ---- */

static char *load(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, EVENTS "%s", name);
    char *text = iw_read_file(path, len);
    cr_assert_not_null(text, "cannot read %s", path);
    return text;
}

static cJSON *load_json(const char *name)
{
    size_t len;
    char *text = load(name, &len);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(doc);
    return doc;
}

/* Parses text that must be accepted. */
static iw_event *parse_ok(const char *text, size_t len)
{
    char err[256] = "";
    iw_event *ev = NULL;
    int rc = iw_event_parse(text, len, &ev, err, sizeof err);
    cr_assert_eq(rc, 0, "rejected: %s", err);
    cr_assert_not_null(ev);
    return ev;
}

static iw_event *parse_file(const char *name)
{
    size_t len;
    char *text = load(name, &len);
    iw_event *ev = parse_ok(text, len);
    free(text);
    return ev;
}

/* Parses text that must be refused with exactly msg. */
static void expect_reject_text(const char *text, size_t len, const char *msg)
{
    char err[256] = "";
    iw_event *ev = (iw_event *)&err; /* must be reset to NULL */
    int rc = iw_event_parse(text, len, &ev, err, sizeof err);
    cr_expect_eq(rc, IW_EINVAL, "rc %d, message \"%s\" (wanted \"%s\")", rc, err, msg);
    cr_expect_null(ev);
    cr_expect_str_eq(err, msg);
    if (rc == 0)
        iw_event_free(ev);
}

static void expect_reject(cJSON *doc, const char *msg)
{
    char *text = cJSON_PrintUnformatted(doc);
    cr_assert_not_null(text);
    expect_reject_text(text, strlen(text), msg);
    cJSON_free(text);
}

/* The index in a path segment such as "lines[2]", from the character after '['. */
static int index_of(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    cr_assert(end != s && *end == ']' && v >= 0 && v < 1000000, "bad index in path: %s", s);
    return (int)v;
}

/* Finds the node that holds the last segment of path ("invoice.lines[0].quantity"). */
static cJSON *walk(cJSON *node, char *seg)
{
    char *bracket = strchr(seg, '[');
    if (bracket)
        *bracket = '\0';
    cJSON *next = cJSON_GetObjectItemCaseSensitive(node, seg);
    cr_assert_not_null(next, "no %s", seg);
    if (bracket)
        next = cJSON_GetArrayItem(next, index_of(bracket + 1));
    cr_assert_not_null(next, "no element in %s", seg);
    return next;
}

/* Sets (or, with value NULL, deletes) the node at path; takes ownership of value. */
static void set(cJSON *root, const char *path, cJSON *value)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *seg = buf, *dot;
    cJSON *node = root;
    while ((dot = strchr(seg, '.')) != NULL) {
        *dot = '\0';
        node = walk(node, seg);
        seg = dot + 1;
    }
    char *bracket = strchr(seg, '[');
    if (bracket) {
        *bracket = '\0';
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(node, seg);
        cr_assert_not_null(arr);
        if (value)
            cJSON_ReplaceItemInArray(arr, index_of(bracket + 1), value);
        else
            cJSON_DeleteItemFromArray(arr, index_of(bracket + 1));
    } else if (!value) {
        cJSON_DeleteItemFromObjectCaseSensitive(node, seg);
    } else if (cJSON_GetObjectItemCaseSensitive(node, seg)) {
        cJSON_ReplaceItemInObjectCaseSensitive(node, seg, value);
    } else {
        cJSON_AddItemToObject(node, seg, value);
    }
}

/* complete.json with path set to value must be refused with exactly msg. */
static void reject_with(const char *path, cJSON *value, const char *msg)
{
    cJSON *doc = load_json("complete.json");
    set(doc, path, value);
    expect_reject(doc, msg);
    cJSON_Delete(doc);
}

/* complete.json with path set to value must be accepted; caller frees. */
static iw_event *accept_with(const char *path, cJSON *value)
{
    cJSON *doc = load_json("complete.json");
    set(doc, path, value);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    iw_event *ev = parse_ok(text, strlen(text));
    cJSON_free(text);
    return ev;
}

static const char *amount(iw_amount a)
{
    static char buf[IW_DECIMAL_BUFLEN];
    cr_assert(a.set, "amount not set");
    iw_decimal_format(a.value, buf, sizeof buf);
    return buf;
}

/* ---- good events ---- */

Test(event, complete_top_level)
{
    iw_event *ev = parse_file("complete.json");
    cr_expect_str_eq(ev->schema, "invoice-event/v1");
    cr_expect_str_eq(ev->event_id, "01JD3Q5V8M2K7X9P4R6T0WQYZB");
    cr_expect_str_eq(ev->type, "invoice.updated");
    cr_expect_str_eq(ev->occurred_at, "2026-11-21T10:04:05Z");
    cr_expect_str_eq(ev->source, "orders-eu");
    cr_expect_str_eq(ev->tenant, "acme");
    cr_expect_eq(ev->version, 17);
    cr_assert_eq(ev->n_targets, 5);
    cr_expect_str_eq(ev->targets[0], "centra_soap");
    cr_expect_str_eq(ev->targets[2], "midnight");
    cr_expect_str_eq(ev->targets[4], "invoicexpress");
    iw_event_free(ev);
}

Test(event, complete_invoice_header)
{
    iw_event *ev = parse_file("complete.json");
    const iw_invoice *inv = &ev->invoice;
    cr_expect_str_eq(inv->id, "INV-1001");
    cr_expect_str_eq(inv->number, "1001");
    cr_expect_str_eq(inv->number_ext, "A");
    cr_expect_str_eq(inv->status, "open");
    cr_expect_str_eq(inv->document_type, "invoice");
    cr_expect_str_eq(inv->type, "standard");
    cr_expect_str_eq(inv->store, "eu-store");
    cr_expect_str_eq(inv->currency, "EUR");
    cr_expect_str_eq(inv->base_currency, "SEK");
    cr_expect_str_eq(amount(inv->currency_rate), "11.4521");
    cr_expect_str_eq(inv->issue_date, "2026-11-21");
    cr_expect_str_eq(inv->due_date, "2026-12-21");
    cr_expect_str_eq(inv->order_date, "2026-11-20");
    cr_expect_str_eq(inv->ship_date, "2026-11-22");
    cr_expect_str_eq(inv->po_date, "2026-11-19");
    cr_expect_str_eq(inv->paid_at, "2026-11-21T12:00:00Z");
    cr_expect_str_eq(inv->terms_code, "NET30");
    cr_expect_str_eq(inv->terms_description, "Net 30 days");
    cr_expect_str_eq(inv->shipping_terms, "DAP");
    cr_expect_str_eq(inv->ship_via, "DHL");
    cr_expect_str_eq(inv->po_number, "PO-7781");
    cr_expect_str_eq(inv->so_number, "SO-5512");
    cr_expect_str_eq(inv->title, "November order");
    cr_expect_str_eq(inv->description, "Office supplies");
    cr_expect_str_eq(inv->note_public, "Thank you for your order");
    cr_expect_str_eq(inv->note_internal, "Priority customer");
    cr_expect_str_eq(amount(inv->subtotal), "1260.16");
    cr_expect_str_eq(amount(inv->tax_total), "289.84");
    cr_expect_str_eq(amount(inv->discount_total), "10.00");
    cr_expect_str_eq(amount(inv->shipping_total), "15.00");
    cr_expect_str_eq(amount(inv->total), "1550.00");
    cr_expect_str_eq(amount(inv->amount_paid), "1525.00");
    cr_expect_str_eq(amount(inv->amount_due), "25.00");
    cr_expect_str_eq(amount(inv->retention_pct), "5");
    iw_event_free(ev);
}

Test(event, complete_nested_objects)
{
    iw_event *ev = parse_file("complete.json");
    const iw_invoice *inv = &ev->invoice;

    cr_expect_str_eq(inv->target_refs.centra_id, "C-1001");
    cr_expect_str_eq(inv->target_refs.midnight_guid, "8da872e1-fbca-4a43-8e49-417c9bd9303a");
    cr_expect_str_eq(inv->target_refs.midnight_invoice_id, "2");
    cr_expect_str_eq(inv->target_refs.ebiz_internal_id, "5f1c7e2a-4d2a-4e98-9c1b-7a3e2f0b6d11");
    cr_expect_str_eq(inv->target_refs.invoicexpress_id, "98765");

    cr_expect_str_eq(inv->customer.id, "5");
    cr_expect_str_eq(inv->customer.contact_id, "1");
    cr_expect_str_eq(inv->customer.name, "Bruce Norris");
    cr_expect_str_eq(inv->customer.email, "bruce@example.com");
    cr_expect_str_eq(inv->customer.phone, "+49 30 1234567");
    cr_expect_str_eq(inv->customer.phone_ext, "12");
    cr_expect_str_eq(inv->customer.fax, "+49 30 1234568");
    cr_expect_str_eq(inv->customer.website, "www.brucenorris.example");
    cr_expect_str_eq(inv->customer.fiscal_id, "DE123456789");
    cr_expect_str_eq(inv->customer.ec_vat_no, "DE123456789");
    cr_expect_str_eq(inv->customer.company_reg_id, "HRB 12345");
    cr_expect_str_eq(inv->customer.notes, "Pays on time");

    const iw_address *b = &inv->billing_address, *s = &inv->shipping_address;
    cr_expect_str_eq(b->company, "Norris GmbH");
    cr_expect_str_eq(b->attn, "Accounts payable");
    cr_expect_str_eq(b->first_name, "Bruce");
    cr_expect_str_eq(b->last_name, "Norris");
    cr_expect_str_eq(b->line1, "Hauptstrasse 1");
    cr_expect_str_eq(b->line2, "Building B");
    cr_expect_str_eq(b->line3, "Floor 3");
    cr_expect_str_eq(b->city, "Berlin");
    cr_expect_str_eq(b->state, "BE");
    cr_expect_str_eq(b->postal_code, "10115");
    cr_expect_str_eq(b->country, "DE");
    cr_expect_str_eq(b->email, "billing@example.com");
    cr_expect_str_eq(b->phone, "+49 30 1234567");
    cr_expect_str_eq(b->fax, "+49 30 1234568");
    cr_expect_eq(b->is_default, IW_FLAG_YES);
    cr_expect_str_eq(s->company, "Norris GmbH Warehouse");
    cr_expect_str_eq(s->first_name, "Chuck");
    cr_expect_str_eq(s->line3, "Dock 4");
    cr_expect_str_eq(s->city, "Hamburg");
    cr_expect_str_eq(s->postal_code, "20095");
    cr_expect_str_eq(s->fax, "+49 40 7654322");
    cr_expect_eq(s->is_default, IW_FLAG_NO);

    cr_expect_str_eq(inv->refs.account_id, "ACC-1");
    cr_expect_str_eq(inv->refs.buyer_id, "BUY-1");
    cr_expect_str_eq(inv->refs.order_id, "3");
    cr_expect_str_eq(inv->refs.shipment_id, "SHP-1");
    cr_expect_str_eq(inv->refs.refund_id, "REF-1");
    cr_expect_str_eq(inv->refs.division_id, "001");
    cr_expect_str_eq(inv->refs.location_id, "LOC-1");
    cr_expect_str_eq(inv->refs.sales_rep_id, "REP-7");
    cr_expect_str_eq(inv->refs.user_name, "jdoe");

    cr_expect_eq(inv->flags.locked, IW_FLAG_NO);
    cr_expect_eq(inv->flags.notify_customer, IW_FLAG_NO);
    cr_expect_eq(inv->flags.email_invoice, IW_FLAG_NO);
    cr_expect_eq(inv->flags.print_invoice, IW_FLAG_NO);
    cr_expect_eq(inv->flags.display_item, IW_FLAG_YES);

    cr_assert_eq(inv->n_extra_charges, 1);
    cr_expect_str_eq(inv->extra_charges[0].key, "shipping");
    cr_expect_str_eq(inv->extra_charges[0].id, "SH-1");
    cr_expect_str_eq(inv->extra_charges[0].description, "Shipping");
    cr_expect_str_eq(amount(inv->extra_charges[0].amount), "15.00");
    cr_assert_eq(inv->n_custom_fields, 1);
    cr_expect_str_eq(inv->custom_fields[0].name, "cost_center");
    cr_expect_str_eq(inv->custom_fields[0].value, "CC-42");
    iw_event_free(ev);
}

Test(event, complete_lines)
{
    iw_event *ev = parse_file("complete.json");
    const iw_invoice *inv = &ev->invoice;
    cr_assert_eq(inv->n_lines, 2);
    const iw_line *l = &inv->lines[0];
    cr_expect_str_eq(l->line_no, "1");
    cr_expect_str_eq(l->line_id, "11");
    cr_expect_str_eq(l->sku, "PEN-BLUE");
    cr_expect_str_eq(l->item_id, "18");
    cr_expect_str_eq(l->product_id, "P-100");
    cr_expect_str_eq(l->variation_id, "V-1");
    cr_expect_str_eq(l->size_id, "S-M");
    cr_expect_str_eq(l->name, "Blue pen");
    cr_expect_str_eq(l->description, "Ballpoint pen, blue");
    cr_expect_str_eq(amount(l->quantity), "100");
    cr_expect_str_eq(l->unit, "unit");
    cr_expect_str_eq(amount(l->unit_price), "2.50");
    cr_expect_str_eq(amount(l->gross_price), "3.08");
    cr_expect_str_eq(amount(l->discount_pct), "0");
    cr_expect_str_eq(amount(l->discount_amount), "0.00");
    cr_expect_eq(l->taxable, IW_FLAG_YES);
    cr_expect_str_eq(amount(l->tax_rate), "23");
    cr_expect_str_eq(l->tax_name, "IVA23");
    cr_expect_str_eq(amount(l->tax_amount), "57.50");
    cr_expect_str_eq(amount(l->line_subtotal), "250.00");
    cr_expect_str_eq(amount(l->line_total), "307.50");
    cr_expect_str_eq(l->line_type, "product");
    cr_expect_str_eq(l->order_id, "3");

    l = &inv->lines[1];
    cr_expect_str_eq(l->line_no, "2");
    cr_expect_str_eq(l->sku, "DESK-OAK");
    cr_expect_str_eq(l->name, "Oak desk");
    cr_expect_str_eq(amount(l->quantity), "1");
    cr_expect_str_eq(amount(l->unit_price), "1020.16");
    cr_expect_str_eq(amount(l->gross_price), "1254.80");
    cr_expect_str_eq(amount(l->discount_pct), "0.98");
    cr_expect_str_eq(amount(l->discount_amount), "10.00");
    cr_expect_str_eq(amount(l->tax_amount), "232.34");
    cr_expect_str_eq(amount(l->line_subtotal), "1010.16");
    cr_expect_str_eq(amount(l->line_total), "1242.50");

    /* The amounts are usable as numbers: quantity x price = subtotal for line 1. */
    iw_decimal p;
    cr_assert_eq(iw_decimal_mul(inv->lines[0].quantity.value, inv->lines[0].unit_price.value, &p),
                 0);
    cr_expect_eq(iw_decimal_cmp(p, inv->lines[0].line_subtotal.value), 0);
    iw_event_free(ev);
}

Test(event, minimal)
{
    iw_event *ev = parse_file("minimal.json");
    cr_expect_str_eq(ev->event_id, "01JD3Q5V8M2K7X9P4R6T0WQYZC");
    cr_expect_str_eq(ev->type, "invoice.created");
    cr_expect_str_eq(ev->tenant, "acme");
    cr_expect_eq(ev->version, 1);
    cr_expect_null(ev->source);
    cr_expect_null(ev->targets);
    cr_expect_eq(ev->n_targets, 0);
    const iw_invoice *inv = &ev->invoice;
    cr_expect_str_eq(inv->id, "INV-2001");
    cr_expect_str_eq(inv->currency, "EUR");
    cr_expect_null(inv->number);
    cr_expect_null(inv->issue_date);
    cr_expect_null(inv->customer.name);
    cr_expect_null(inv->billing_address.country);
    cr_expect_null(inv->target_refs.midnight_guid);
    cr_expect_not(inv->total.set);
    cr_expect_not(inv->currency_rate.set);
    /* Absent flags are UNSET, not NO: adapters choose their own defaults. */
    cr_expect_eq(inv->flags.notify_customer, IW_FLAG_UNSET);
    cr_expect_eq(inv->flags.display_item, IW_FLAG_UNSET);
    cr_expect_eq(inv->billing_address.is_default, IW_FLAG_UNSET);
    cr_expect_eq(inv->shipping_address.is_default, IW_FLAG_UNSET);
    cr_assert_eq(inv->n_lines, 1);
    cr_expect_str_eq(inv->lines[0].name, "Consulting");
    cr_expect_str_eq(amount(inv->lines[0].quantity), "1");
    cr_expect_str_eq(amount(inv->lines[0].unit_price), "100.00");
    cr_expect_not(inv->lines[0].tax_rate.set);
    cr_expect_eq(inv->lines[0].taxable, IW_FLAG_UNSET);
    cr_expect_null(inv->lines[0].sku);
    cr_expect_null(inv->extra_charges);
    cr_expect_eq(inv->n_extra_charges, 0);
    cr_expect_eq(inv->n_custom_fields, 0);
    iw_event_free(ev);
}

Test(event, special_chars_byte_exact)
{
    iw_event *ev = parse_file("special-chars.json");
    const iw_invoice *inv = &ev->invoice;
    cr_expect_str_eq(inv->title, "Tags <b>&amp;</b> \"quotes\" 'apostrophes' ]]> end");
    cr_expect_str_eq(inv->description,
                     "Gr\xc3\xbc\xc3\x9f"
                     "e aus M\xc3\xbcnchen \xe2\x80\x94 \xe6\xbc\xa2\xe5\xad\x97 \xe2\x80\x94 "
                     "\xf0\x9f\xa7\xbe receipt");
    cr_expect_str_eq(inv->note_public, "Line one\nLine two\ttabbed");
    cr_expect_str_eq(inv->customer.name, "Zo\xc3\xab & S\xc3\xb8ren <Ltd>");
    cr_expect_str_eq(inv->billing_address.line1, "Stra\xc3\x9f"
                                                 "e 1 & 2");
    cr_expect_str_eq(inv->billing_address.city, "Z\xc3\xbcrich");
    cr_expect_str_eq(inv->billing_address.country, "CH");
    cr_assert_eq(inv->n_lines, 2);
    cr_expect_str_eq(inv->lines[0].name, "Widget <small> & \"quoted\"");
    cr_expect_str_eq(inv->lines[0].description,
                     "]]> not CDATA end; \xe6\xbc\xa2\xe5\xad\x97; \xf0\x9f\xa7\xbe");
    cr_expect_str_eq(inv->lines[1].name, "Gadget '\xc3\xbc'");
    cr_expect_str_eq(inv->lines[1].description, "emoji \xf0\x9f\x8e\x89\xf0\x9f\x8e\x89");
    cr_expect_eq(inv->lines[0].taxable, IW_FLAG_NO);
    /* 0.10 + 0.20 is exactly the 0.30 subtotal. */
    iw_decimal sum;
    cr_assert_eq(
        iw_decimal_add(inv->lines[0].line_total.value, inv->lines[1].line_total.value, &sum), 0);
    cr_expect_eq(iw_decimal_cmp(sum, inv->subtotal.value), 0);
    iw_event_free(ev);
}

Test(event, unicode_escapes_decoded)
{
    iw_event *ev = accept_with("invoice.title", cJSON_CreateString("placeholder"));
    iw_event_free(ev);
    const char *text = "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e1\",\"type\":\"invoice."
                       "created\",\"tenant\":\"t\",\"version\":0,\"invoice\":{\"id\":\"I\","
                       "\"currency\":\"EUR\",\"title\":\"caf\\u00e9 \\ud83e\\uddfe \\\"q\\\" "
                       "a\\/b\",\"lines\":[{\"name\":\"x\"}]}}";
    ev = parse_ok(text, strlen(text));
    cr_expect_str_eq(ev->invoice.title, "caf\xc3\xa9 \xf0\x9f\xa7\xbe \"q\" a/b");
    cr_expect_eq(ev->version, 0);
    iw_event_free(ev);
}

Test(event, input_need_not_be_nul_terminated)
{
    size_t len;
    char *text = load("minimal.json", &len);
    char *exact = malloc(len); /* no room for a NUL: ASan catches any over-read */
    cr_assert_not_null(exact);
    memcpy(exact, text, len);
    iw_event *ev = parse_ok(exact, len);
    cr_expect_str_eq(ev->invoice.id, "INV-2001");
    iw_event_free(ev);
    /* The same buffer cut short is refused, not read past. */
    char err[128];
    ev = NULL;
    cr_expect_eq(iw_event_parse(exact, len / 2, &ev, err, sizeof err), IW_EINVAL);
    cr_expect_null(ev);
    free(exact);
    free(text);
}

Test(event, unknown_keys_ignored)
{
    cJSON *doc = load_json("complete.json");
    cJSON *future = cJSON_CreateObject();
    cJSON_AddNumberToObject(future, "x", 1);
    cJSON_AddItemToObject(doc, "future_field", future);
    set(doc, "invoice.new_thing", cJSON_CreateString("ignored"));
    set(doc, "invoice.lines[0].warranty", cJSON_CreateTrue());
    set(doc, "invoice.customer.loyalty_tier", cJSON_CreateNumber(3));
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    iw_event *ev = parse_ok(text, strlen(text));
    cr_expect_str_eq(ev->invoice.lines[0].sku, "PEN-BLUE");
    cr_expect_str_eq(ev->invoice.customer.name, "Bruce Norris");
    iw_event_free(ev);
    cJSON_free(text);
}

Test(event, null_means_absent)
{
    iw_event *ev = accept_with("invoice.number", cJSON_CreateNull());
    cr_expect_null(ev->invoice.number);
    iw_event_free(ev);
    ev = accept_with("invoice.flags", cJSON_CreateNull());
    cr_expect_eq(ev->invoice.flags.display_item, IW_FLAG_UNSET);
    cr_expect_eq(ev->invoice.flags.locked, IW_FLAG_UNSET);
    iw_event_free(ev);
    ev = accept_with("invoice.total", cJSON_CreateNull());
    cr_expect_not(ev->invoice.total.set);
    iw_event_free(ev);
    ev = accept_with("targets", cJSON_CreateNull());
    cr_expect_null(ev->targets);
    iw_event_free(ev);
}

Test(event, integer_ids_kept_as_text)
{
    iw_event *ev = accept_with("invoice.id", cJSON_CreateNumber(1001));
    cr_expect_str_eq(ev->invoice.id, "1001");
    iw_event_free(ev);
    ev = accept_with("invoice.lines[1].line_no", cJSON_CreateRaw("9007199254740991"));
    cr_expect_str_eq(ev->invoice.lines[1].line_no, "9007199254740991");
    iw_event_free(ev);
    ev = accept_with("invoice.customer.id", cJSON_CreateNumber(0));
    cr_expect_str_eq(ev->invoice.customer.id, "0");
    iw_event_free(ev);
}

/* Relinks the members of every object under node in reverse order (arrays keep theirs). */
static void reverse_members(cJSON *node)
{
    cJSON *items[64];
    size_t n = 0;
    for (cJSON *it = node->child; it; it = it->next) {
        reverse_members(it);
        cr_assert_lt(n, 64);
        items[n++] = it;
    }
    if (!cJSON_IsObject(node) || n == 0)
        return;
    for (size_t j = 0; j < n; j++) {
        cJSON *it = items[n - 1 - j];
        it->next = j + 1 < n ? items[n - 2 - j] : NULL;
        it->prev = j > 0 ? items[n - j] : items[0]; /* the first one's prev is the last one */
    }
    node->child = items[n - 1];
}

Test(event, member_order_does_not_matter)
{
    cJSON *doc = load_json("complete.json");
    reverse_members(doc);
    cr_assert_str_eq(doc->child->string, "invoice", "the reversal did not happen");
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(doc, "invoice"), "later",
                          cJSON_CreateTrue());
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    iw_event *ev = parse_ok(text, strlen(text));
    cJSON_free(text);
    iw_event *want = parse_file("complete.json");

    cr_expect_str_eq(ev->schema, want->schema);
    cr_expect_str_eq(ev->event_id, want->event_id);
    cr_expect_str_eq(ev->tenant, want->tenant);
    cr_expect_eq(ev->version, want->version);
    cr_assert_eq(ev->n_targets, want->n_targets);
    for (size_t i = 0; i < ev->n_targets; i++)
        cr_expect_str_eq(ev->targets[i], want->targets[i]);
    const iw_invoice *a = &ev->invoice, *b = &want->invoice;
    cr_expect_str_eq(a->id, b->id);
    cr_expect_str_eq(a->currency, b->currency);
    cr_expect_str_eq(a->paid_at, b->paid_at);
    cr_expect_str_eq(amount(a->retention_pct), "5");
    cr_expect_str_eq(a->target_refs.invoicexpress_id, b->target_refs.invoicexpress_id);
    cr_expect_str_eq(a->customer.id, b->customer.id);
    cr_expect_str_eq(a->customer.notes, b->customer.notes);
    cr_expect_str_eq(a->billing_address.country, b->billing_address.country);
    cr_expect_eq(a->billing_address.is_default, b->billing_address.is_default);
    cr_expect_str_eq(a->shipping_address.company, b->shipping_address.company);
    cr_expect_str_eq(a->refs.user_name, b->refs.user_name);
    cr_expect_eq(a->flags.locked, b->flags.locked);
    cr_expect_eq(a->flags.display_item, b->flags.display_item);
    cr_assert_eq(a->n_lines, b->n_lines);
    cr_expect_str_eq(a->lines[0].line_no, "1");
    cr_expect_str_eq(a->lines[1].line_no, "2");
    cr_expect_str_eq(a->lines[1].order_id, b->lines[1].order_id);
    cr_expect_str_eq(amount(a->lines[1].line_total), "1242.50");
    cr_expect_eq(a->lines[0].taxable, b->lines[0].taxable);
    cr_assert_eq(a->n_extra_charges, b->n_extra_charges);
    cr_expect_str_eq(a->extra_charges[0].key, b->extra_charges[0].key);
    cr_assert_eq(a->n_custom_fields, b->n_custom_fields);
    cr_expect_str_eq(a->custom_fields[a->n_custom_fields - 1].value,
                     b->custom_fields[b->n_custom_fields - 1].value);
    iw_event_free(ev);
    iw_event_free(want);
}

Test(event, strings_live_in_the_event)
{
    iw_event *ev = parse_file("complete.json");
    /* The strings are the event's, freed with it in one go; a field may be pointed at other
     * text, which iw_event_free leaves alone (ASan: nothing leaks, nothing is freed twice). */
    cr_expect_str_eq(ev->invoice.id, "INV-1001");
    ev->invoice.id = "INV-2";
    cr_expect_str_eq(ev->targets[0], "centra_soap");
    ev->targets[0] = NULL;
    ev->invoice.lines[1].name = NULL;
    cr_expect_str_eq(ev->invoice.lines[0].name, "Blue pen");
    cr_expect_str_eq(ev->targets[1], "centra_navision");
    cr_expect_str_eq(ev->invoice.id, "INV-2");
    iw_event_free(ev);
}

Test(event, version_range)
{
    iw_event *ev = accept_with("version", cJSON_CreateRaw("9007199254740991"));
    cr_expect_eq(ev->version, 9007199254740991LL);
    iw_event_free(ev);
    ev = accept_with("version", cJSON_CreateNumber(0));
    cr_expect_eq(ev->version, 0);
    iw_event_free(ev);
}

Test(event, dates_and_timestamps_accepted)
{
    iw_event *ev = accept_with("invoice.issue_date", cJSON_CreateString("2024-02-29"));
    cr_expect_str_eq(ev->invoice.issue_date, "2024-02-29");
    iw_event_free(ev);
    ev = accept_with("invoice.issue_date", cJSON_CreateString("2000-02-29"));
    iw_event_free(ev);
    ev = accept_with("occurred_at", cJSON_CreateString("2026-11-21T10:04:05.123456+01:00"));
    cr_expect_str_eq(ev->occurred_at, "2026-11-21T10:04:05.123456+01:00");
    iw_event_free(ev);
    ev = accept_with("invoice.paid_at", cJSON_CreateString("2016-12-31T23:59:60-08:00"));
    iw_event_free(ev);
    /* one form for every reader: 't' and 'z' are written 'T' and 'Z' (xs:dateTime wants them) */
    ev = accept_with("invoice.paid_at", cJSON_CreateString("2026-11-21t10:00:00z"));
    cr_expect_str_eq(ev->invoice.paid_at, "2026-11-21T10:00:00Z");
    iw_event_free(ev);
    ev = accept_with("occurred_at", cJSON_CreateString("2026-11-21t10:04:05.5+01:00"));
    cr_expect_str_eq(ev->occurred_at, "2026-11-21T10:04:05.5+01:00");
    iw_event_free(ev);
}

Test(event, event_id_and_tenant_limits)
{
    char id[129];
    memset(id, 'a', 128);
    id[128] = '\0';
    iw_event *ev = accept_with("event_id", cJSON_CreateString(id));
    cr_expect_eq(strlen(ev->event_id), 128);
    iw_event_free(ev);
    ev = accept_with("tenant", cJSON_CreateString("acme-eu_2.prod"));
    cr_expect_str_eq(ev->tenant, "acme-eu_2.prod");
    iw_event_free(ev);
}

Test(event, big_but_allowed_string)
{
    size_t n = (size_t)7 * 1024 * 1024;
    char *big = malloc(n + 1);
    cr_assert_not_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    iw_event *ev = accept_with("invoice.description", cJSON_CreateString(big));
    cr_expect_eq(strlen(ev->invoice.description), n);
    iw_event_free(ev);
    free(big);
}

Test(event, depth_limit_is_inclusive)
{
    /* An unknown key nested so that the whole event is exactly IW_EVENT_MAX_DEPTH deep:
     * root object = 1, the value of "x" = 2, ..., the innermost array = 32. */
    cJSON *doc = load_json("minimal.json");
    cJSON *x = cJSON_CreateArray(), *cur = x;
    for (int d = 3; d <= IW_EVENT_MAX_DEPTH; d++) {
        cJSON *next = cJSON_CreateArray();
        cJSON_AddItemToArray(cur, next);
        cur = next;
    }
    cJSON_AddItemToObject(doc, "x", x);
    char *text = cJSON_PrintUnformatted(doc);
    iw_event *ev = parse_ok(text, strlen(text));
    iw_event_free(ev);
    size_t level2 = (size_t)(strstr(text, "\"x\":") + 4 - text);
    cJSON_free(text);

    /* One more level is refused, at the bracket that opens level 33. */
    cJSON_AddItemToArray(cur, cJSON_CreateArray());
    char want[80];
    snprintf(want, sizeof want, "JSON nested deeper than 32 levels at byte %zu", level2 + 31);
    expect_reject(doc, want);
    cJSON_Delete(doc);
}

/* ---- bad events ---- */

Test(bad_event, empty_input)
{
    expect_reject_text("", 0, "event is empty");
    expect_reject_text(" \n\t ", 4, "event is empty");
    char err[64];
    iw_event *ev = (iw_event *)err;
    cr_expect_eq(iw_event_parse(NULL, 0, &ev, err, sizeof err), IW_EINVAL);
    cr_expect_null(ev);
}

Test(bad_event, top_level_not_object)
{
    expect_reject_text("[1,2,3]", 7, "an event must be a JSON object");
    expect_reject_text("\"invoice\"", 9, "an event must be a JSON object");
    expect_reject_text("42", 2, "an event must be a JSON object");
    expect_reject_text("null", 4, "an event must be a JSON object");
}

Test(bad_event, truncated_json)
{
    size_t len;
    char *text = load("complete.json", &len);
    char err[256] = "";
    iw_event *ev = NULL;
    cr_expect_eq(iw_event_parse(text, len / 2, &ev, err, sizeof err), IW_EINVAL);
    cr_expect_null(ev);
    cr_expect(strncmp(err, "invalid JSON at byte ", 21) == 0, "got \"%s\"", err);
    long at = strtol(err + 21, NULL, 10);
    cr_expect(at > 0 && (size_t)at <= len / 2, "offset %ld outside the input", at);
    free(text);
}

Test(bad_event, syntax_error_offset)
{
    /* The second comma is byte 30; cJSON may stop on it or just after it. */
    const char *text = "{\"schema\": \"invoice-event/v1\",, \"x\": 1}";
    char err[128] = "";
    iw_event *ev = NULL;
    cr_expect_eq(iw_event_parse(text, strlen(text), &ev, err, sizeof err), IW_EINVAL);
    cr_expect_null(ev);
    cr_assert(strncmp(err, "invalid JSON at byte ", 21) == 0, "got \"%s\"", err);
    long at = strtol(err + 21, NULL, 10);
    cr_expect(at == 30 || at == 31, "offset %ld", at);
    text = "{\"a\": tru}";
    expect_reject_text(text, strlen(text), "invalid JSON at byte 6");
    text = "{\"a\": 1} {\"b\": 2}";
    expect_reject_text(text, strlen(text), "invalid JSON at byte 9: text after the event");
}

/* A number is JSON's (RFC 8259): no leading zero, digits after a point and in an exponent. Read
 * leniently, "007" in an id field would become 7. Every parser of the event's readers refuses
 * these, so the event is poison with its byte. */
Test(bad_event, numbers_that_are_not_json)
{
    static const char *const bad[] = {"017", "00", "-01", "1.", "01.0", "1.e1", "1e",
                                      "1e+", "-",  "+1",  ".5", "1.5.", "-a",   "1e5e"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"a\": %s}", bad[i]);
        char err[128] = "";
        iw_event *ev = NULL;
        cr_expect_eq(iw_event_parse(text, strlen(text), &ev, err, sizeof err), IW_EINVAL, "%s",
                     bad[i]);
        cr_expect_null(ev);
        cr_expect_str_eq(err, "invalid JSON at byte 6", "%s", bad[i]);
    }
    static const char *const good[] = {"0", "-0", "0.5", "10", "1e5", "1E+5", "-1.25e-3", "0e0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        iw_event *ev = accept_with("invoice.future_number", cJSON_CreateRaw(good[i]));
        cr_expect_not_null(ev, "%s", good[i]);
        iw_event_free(ev);
    }
    cJSON *doc = load_json("complete.json");
    set(doc, "invoice.target_refs.midnight_invoice_id", cJSON_CreateRaw("007"));
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    char err[128] = "";
    iw_event *ev = NULL;
    cr_expect_eq(iw_event_parse(text, strlen(text), &ev, err, sizeof err), IW_EINVAL);
    char want[64];
    snprintf(want, sizeof(want), "invalid JSON at byte %td", strstr(text, "007") - text);
    cr_expect_str_eq(err, want);
    cJSON_free(text);
}

Test(bad_event, wrong_types)
{
    reject_with("invoice.total", cJSON_CreateNumber(1550),
                "invoice.total: expected a decimal string");
    reject_with("invoice.lines[1].quantity", cJSON_CreateNumber(1),
                "invoice.lines[1].quantity: expected a decimal string");
    reject_with("invoice.billing_address.is_default", cJSON_CreateString("yes"),
                "invoice.billing_address.is_default: expected true or false");
    reject_with("invoice.flags.locked", cJSON_CreateNumber(0),
                "invoice.flags.locked: expected true or false");
    reject_with("invoice.customer.name", cJSON_CreateNumber(5),
                "invoice.customer.name: expected a string");
    reject_with("tenant", cJSON_CreateTrue(), "tenant: expected a string");
    reject_with("version", cJSON_CreateString("17"), "version: expected an integer");
    reject_with("version", cJSON_CreateNumber(1.5), "version: expected an integer");
    reject_with("invoice.id", cJSON_CreateFalse(), "invoice.id: expected a string or an integer");
    reject_with("invoice.refs.order_id", cJSON_CreateNumber(2.5),
                "invoice.refs.order_id: expected an integer");
    reject_with("invoice.customer", cJSON_CreateArray(), "invoice.customer: expected an object");
    reject_with("invoice", cJSON_CreateString("INV-1"), "invoice: expected an object");
    reject_with("invoice.lines", cJSON_CreateObject(), "invoice.lines: expected an array");
    reject_with("invoice.lines[1]", cJSON_CreateString("line"),
                "invoice.lines[1]: expected an object");
    reject_with("invoice.issue_date", cJSON_CreateNumber(20261121),
                "invoice.issue_date: expected a date (YYYY-MM-DD)");
    reject_with("targets", cJSON_CreateString("midnight"), "targets: expected an array of strings");
}

Test(bad_event, bad_decimal_text)
{
    reject_with("invoice.lines[1].quantity", cJSON_CreateString("1,5"),
                "invoice.lines[1].quantity: not a decimal number");
    reject_with("invoice.lines[0].unit_price", cJSON_CreateString("1e3"),
                "invoice.lines[0].unit_price: not a decimal number");
    reject_with("invoice.total", cJSON_CreateString(""), "invoice.total: not a decimal number");
    reject_with("invoice.total", cJSON_CreateString(" 10.00"),
                "invoice.total: not a decimal number");
    reject_with("invoice.extra_charges[0].amount", cJSON_CreateString("15.00 EUR"),
                "invoice.extra_charges[0].amount: not a decimal number");
    reject_with("invoice.total", cJSON_CreateString("99999999999999999999.00"),
                "invoice.total: number too big for its field");
    reject_with("invoice.currency_rate", cJSON_CreateString("1.0000000000000000001"),
                "invoice.currency_rate: more than 18 digits after the point");
}

static void reject_missing(const char *path, const char *msg)
{
    reject_with(path, NULL, msg);
    reject_with(path, cJSON_CreateNull(), msg); /* null means absent */
}

Test(bad_event, missing_required_fields)
{
    reject_missing("schema", "schema: required field is missing");
    reject_missing("event_id", "event_id: required field is missing");
    reject_missing("type", "type: required field is missing");
    reject_missing("tenant", "tenant: required field is missing");
    reject_missing("version", "version: required field is missing");
    reject_missing("invoice", "invoice: required field is missing");
    reject_missing("invoice.id", "invoice.id: required field is missing");
    reject_missing("invoice.currency", "invoice.currency: required field is missing");
    reject_missing("invoice.lines", "invoice.lines: required field is missing");
}

Test(bad_event, empty_required_strings)
{
    reject_with("event_id", cJSON_CreateString(""), "event_id: must not be empty");
    reject_with("tenant", cJSON_CreateString(""), "tenant: must not be empty");
    reject_with("invoice.id", cJSON_CreateString(""), "invoice.id: must not be empty");
}

Test(bad_event, numbers_too_big)
{
    reject_with("version", cJSON_CreateRaw("1e300"), "version: number too big for its field");
    reject_with("version", cJSON_CreateRaw("9007199254740993"),
                "version: number too big for its field");
    reject_with("invoice.id", cJSON_CreateRaw("123456789012345678901234"),
                "invoice.id: number too big for its field");
    reject_with("invoice.lines[0].line_id", cJSON_CreateRaw("-1e30"),
                "invoice.lines[0].line_id: number too big for its field");
}

/* A number is read whole however long its text: 64 characters and more are legal JSON. Where
 * a field takes it, the field's rule decides; where nothing does, it is skipped. */
Test(event, numbers_of_64_characters_and_more_are_read_whole)
{
    char digits[201], zeros[201];
    memset(digits, '9', 200);
    digits[200] = '\0';
    zeros[0] = '1';
    zeros[1] = '.';
    memset(zeros + 2, '0', 198);
    zeros[200] = '\0';
    iw_event *ev = accept_with("invoice.future_number", cJSON_CreateRaw(digits));
    cr_assert_not_null(ev);
    cr_expect_str_eq(ev->invoice.lines[0].sku, "PEN-BLUE");
    iw_event_free(ev);
    ev = accept_with("version", cJSON_CreateRaw(zeros));
    cr_assert_not_null(ev);
    cr_expect_eq((long long)ev->version, 1);
    iw_event_free(ev);
    reject_with("invoice.id", cJSON_CreateRaw(digits), "invoice.id: number too big for its field");
}

/* A double cannot tell 1.9999999999999999 from 2: an integer field's number must be written
 * as a whole number (a fraction of zeros is one), or the event is poison. */
Test(bad_event, integers_are_whole_in_their_text)
{
    reject_with("version", cJSON_CreateRaw("16.99999999999999999"), "version: expected an integer");
    reject_with("invoice.target_refs.midnight_invoice_id", cJSON_CreateRaw("1.9999999999999999"),
                "invoice.target_refs.midnight_invoice_id: expected an integer");
    reject_with("invoice.customer.id", cJSON_CreateRaw("9007199254740990.6"),
                "invoice.customer.id: expected an integer");
    reject_with("version", cJSON_CreateRaw("17.5e0"), "version: expected an integer");
    reject_with("version", cJSON_CreateRaw("1750e-2"), "version: expected an integer");
    reject_with("version", cJSON_CreateRaw("1e-400"), "version: expected an integer");
}

Test(event, integers_with_a_fraction_of_zeros_are_whole)
{
    /* an exponent is the decimal's too: Java writes a double of 10^7 and up as 1.0E7 */
    static const char *const texts[] = {"17",  "17.0",    "17.000", "-0",
                                        "1e2", "1700e-2", "1.0E7",  "0.5e1"};
    static const long long want[] = {17, 17, 17, 0, 100, 17, 10000000, 5};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        iw_event *ev = accept_with("version", cJSON_CreateRaw(texts[i]));
        cr_assert_not_null(ev, "%s", texts[i]);
        cr_assert_eq((long long)ev->version, want[i], "%s", texts[i]);
        iw_event_free(ev);
    }
}

Test(bad_event, version_negative)
{
    reject_with("version", cJSON_CreateNumber(-1), "version: must not be negative");
}

Test(bad_event, bad_values)
{
    reject_with("schema", cJSON_CreateString("invoice-event/v2"),
                "schema: unsupported schema (want invoice-event/v1)");
    reject_with("type", cJSON_CreateString("invoice.deleted"),
                "type: unknown type (want invoice.created or invoice.updated)");
    reject_with("invoice.currency", cJSON_CreateString("eur"),
                "invoice.currency: not a currency code (ISO 4217, 3 upper-case letters)");
    reject_with("invoice.base_currency", cJSON_CreateString("EURO"),
                "invoice.base_currency: not a currency code (ISO 4217, 3 upper-case letters)");
}

Test(bad_event, bad_event_id_and_tenant)
{
    const char *why = "may hold only visible ASCII characters other than '/', ':', '{' and '}'";
    char msg[160];
    const char *ids[] = {"a/b", "a:b", "a b", "caf\xc3\xa9", "a{b"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        snprintf(msg, sizeof msg, "event_id: %s", why);
        reject_with("event_id", cJSON_CreateString(ids[i]), msg);
        snprintf(msg, sizeof msg, "tenant: %s", why);
        reject_with("tenant", cJSON_CreateString(ids[i]), msg);
    }
    char id[130];
    memset(id, 'a', 129);
    id[129] = '\0';
    reject_with("event_id", cJSON_CreateString(id), "event_id: longer than 128 bytes");
}

/* An unknown target name goes whole into its result (twice) and a dead-letter header: 1024
 * bytes at most (an instance name is at most 64), so no event can make them too large for
 * Kafka (a 600,000-byte name stopped the worker on every restart). */
Test(bad_event, target_names_are_at_most_1024_bytes)
{
    char name[1026];
    memset(name, 't', 1025);
    name[1025] = '\0';
    cJSON *list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, cJSON_CreateString(name));
    reject_with("targets", list, "targets[0]: longer than 1024 bytes");
    name[1024] = '\0';
    list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, cJSON_CreateString(name));
    iw_event *ev = accept_with("targets", list);
    cr_assert_eq(ev->n_targets, 1);
    cr_expect_eq(strlen(ev->targets[0]), 1024);
    iw_event_free(ev);
}

/* invoice.id is printed in every result too: 1024 bytes at most. */
Test(bad_event, invoice_ids_are_at_most_1024_bytes)
{
    char id[1026];
    memset(id, 'I', 1025);
    id[1025] = '\0';
    reject_with("invoice.id", cJSON_CreateString(id), "invoice.id: longer than 1024 bytes");
    id[1024] = '\0';
    iw_event *ev = accept_with("invoice.id", cJSON_CreateString(id));
    cr_expect_eq(strlen(ev->invoice.id), 1024);
    iw_event_free(ev);
}

Test(bad_event, bad_dates)
{
    reject_with("invoice.issue_date", cJSON_CreateString("2026-02-30"),
                "invoice.issue_date: not a date (YYYY-MM-DD)");
    reject_with("invoice.due_date", cJSON_CreateString("2100-02-29"),
                "invoice.due_date: not a date (YYYY-MM-DD)");
    reject_with("invoice.ship_date", cJSON_CreateString("2026-13-01"),
                "invoice.ship_date: not a date (YYYY-MM-DD)");
    reject_with("invoice.po_date", cJSON_CreateString("2026-1-01"),
                "invoice.po_date: not a date (YYYY-MM-DD)");
    reject_with("invoice.order_date", cJSON_CreateString("21/11/2026"),
                "invoice.order_date: not a date (YYYY-MM-DD)");
    reject_with("invoice.issue_date", cJSON_CreateString("2026-11-21T00:00:00Z"),
                "invoice.issue_date: not a date (YYYY-MM-DD)");
    reject_with("invoice.paid_at", cJSON_CreateString("2026-11-21 12:00:00"),
                "invoice.paid_at: not an RFC 3339 timestamp");
    reject_with("invoice.paid_at", cJSON_CreateString("2026-11-21T12:00:00"),
                "invoice.paid_at: not an RFC 3339 timestamp");
    reject_with("occurred_at", cJSON_CreateString("2026-11-21T24:00:00Z"),
                "occurred_at: not an RFC 3339 timestamp");
    reject_with("occurred_at", cJSON_CreateString("2026-11-21T10:04:05+01"),
                "occurred_at: not an RFC 3339 timestamp");
    reject_with("occurred_at", cJSON_CreateString("2026-02-30T10:04:05Z"),
                "occurred_at: not an RFC 3339 timestamp");
    reject_with("occurred_at", cJSON_CreateString("2026-11-21T10:04:05.Z"),
                "occurred_at: not an RFC 3339 timestamp");
}

Test(bad_event, bad_country)
{
    const char *msg = "invoice.billing_address.country: not a country code (ISO 3166-1 alpha-2, "
                      "2 upper-case letters)";
    reject_with("invoice.billing_address.country", cJSON_CreateString("Germany"), msg);
    reject_with("invoice.billing_address.country", cJSON_CreateString("de"), msg);
    reject_with("invoice.shipping_address.country", cJSON_CreateString("DEU"),
                "invoice.shipping_address.country: not a country code (ISO 3166-1 alpha-2, "
                "2 upper-case letters)");
}

Test(bad_event, empty_lines)
{
    reject_with("invoice.lines", cJSON_CreateArray(), "invoice.lines: must not be empty");
}

Test(bad_event, too_many_lines)
{
    cJSON *lines = cJSON_CreateArray();
    for (int i = 0; i < 10001; i++)
        cJSON_AddItemToArray(lines, cJSON_CreateObject());
    reject_with("invoice.lines", lines, "invoice.lines: 10001 entries; at most 10000 are allowed");
}

Test(bad_event, duplicate_known_key)
{
    const char *text = "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e\",\"type\":\"invoice."
                       "created\",\"tenant\":\"t\",\"version\":1,\"version\":99,\"invoice\":{"
                       "\"id\":\"I\",\"currency\":\"EUR\",\"lines\":[{}]}}";
    expect_reject_text(text, strlen(text), "version: key appears more than once");
    /* Repeated unknown keys do not matter. */
    text = "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e\",\"type\":\"invoice.created\","
           "\"tenant\":\"t\",\"version\":1,\"z\":1,\"z\":2,\"invoice\":{\"id\":\"I\","
           "\"currency\":\"EUR\",\"lines\":[{}]}}";
    iw_event *ev = parse_ok(text, strlen(text));
    cr_expect_eq(ev->version, 1);
    iw_event_free(ev);
}

/* Several broken rules: the one reported is the first in the fixed field order (depth first),
 * whatever the order of the members, and a syntax error anywhere comes before all of them. */
Test(bad_event, first_rule_in_field_order_wins)
{
    const char *text =
        "{\"invoice\":{\"lines\":[{\"quantity\":\"x\"}],\"currency\":\"eur\",\"id\":\"I\"},"
        "\"version\":-1,\"tenant\":\"t\",\"type\":\"invoice.created\",\"event_id\":\"e\","
        "\"schema\":\"invoice-event/v2\"}";
    expect_reject_text(text, strlen(text), "schema: unsupported schema (want invoice-event/v1)");
    text = "{\"invoice\":{\"lines\":[{\"quantity\":\"x\"}],\"currency\":\"eur\",\"id\":\"I\"},"
           "\"version\":-1,\"tenant\":\"t\",\"type\":\"invoice.created\",\"event_id\":\"e\","
           "\"schema\":\"invoice-event/v1\"}";
    expect_reject_text(text, strlen(text), "version: must not be negative");
    text = "{\"invoice\":{\"lines\":[{\"quantity\":\"x\"}],\"currency\":\"eur\",\"id\":\"I\"},"
           "\"version\":1,\"tenant\":\"t\",\"type\":\"invoice.created\",\"event_id\":\"e\","
           "\"schema\":\"invoice-event/v1\"}";
    expect_reject_text(text, strlen(text),
                       "invoice.currency: not a currency code (ISO 4217, 3 upper-case letters)");
    /* A later line's error does not hide an earlier line's, nor the count of the lines. */
    text = "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e\",\"type\":\"invoice.created\","
           "\"tenant\":\"t\",\"version\":1,\"invoice\":{\"id\":\"I\",\"currency\":\"EUR\","
           "\"lines\":[{\"quantity\":\"1\",\"taxable\":1},{\"line_no\":1.5,\"quantity\":\"y\"}]}}";
    expect_reject_text(text, strlen(text), "invoice.lines[0].taxable: expected true or false");
    /* The same event cut short is a syntax error, whatever was wrong before the cut. */
    char want[64];
    snprintf(want, sizeof want, "invalid JSON at byte %zu", strlen(text) - 2);
    expect_reject_text(text, strlen(text) - 1, want);
    /* A duplicate key is reported at its path before anything wrong inside its first value. */
    text = "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e\",\"type\":\"invoice.created\","
           "\"tenant\":\"t\",\"version\":\"1\",\"invoice\":{\"id\":\"I\",\"currency\":\"EUR\","
           "\"lines\":[{}]},\"version\":1}";
    expect_reject_text(text, strlen(text), "version: key appears more than once");
}

/* "\u" must be followed by four hex digits: cJSON, the parser before, read "\uzzzz" as U+0000 and
 * silently cut the string there ("ebizcha\uzzzzrge" became the target "ebizcha"). */
Test(bad_event, unicode_escape_needs_four_hex_digits)
{
    const char *text = "{\"a\":\"x\\uzzzzy\"}";
    expect_reject_text(text, strlen(text), "invalid JSON at byte 7: \\u needs four hex digits");
    text = "{\"a\":\"\\ud80\"}";
    expect_reject_text(text, strlen(text), "invalid JSON at byte 6: \\u needs four hex digits");
}

/* RFC 8259 lets a string hold half a UTF-16 pair, which is no character: refused, saying so
 * (it said only "invalid JSON at byte N", review 87) */
Test(bad_event, half_a_utf16_pair_is_refused_by_name)
{
    static const char *const texts[] = {
        "{\"a\":\"\\udc00\"}",        /* a low half alone */
        "{\"a\":\"\\ud800\"}",        /* a high half alone */
        "{\"a\":\"\\ud800x\"}",       /* a high half before a character */
        "{\"a\":\"\\udc00\\ud800\"}", /* the halves reversed */
        "{\"a\":\"\\ud800\\u0041\"}", /* a high half before an escape of no low half */
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        expect_reject_text(texts[i], strlen(texts[i]),
                           "invalid JSON at byte 6: a UTF-16 surrogate escape without its pair "
                           "is no character");
}

/* In a field's value, named by its path as a \u0000 is (review 99: by its byte alone). */
Test(bad_event, half_a_utf16_pair_in_a_field_names_the_field)
{
    static const char *const raws[] = {"\"\\ud800x\"", "\"Desk \\udc00\""};
    for (size_t i = 0; i < 2; i++) {
        cJSON *doc = load_json("complete.json");
        set(doc, "invoice.lines[0].name", cJSON_CreateRaw(raws[i]));
        char *printed = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        char err[256] = "";
        iw_event *ev = NULL;
        cr_assert_eq(iw_event_parse(printed, strlen(printed), &ev, err, sizeof(err)), IW_EINVAL);
        static const char want[] = "invoice.lines[0].name: a UTF-16 surrogate escape without "
                                   "its pair is no character (invalid JSON at byte ";
        cr_assert(strncmp(err, want, sizeof(want) - 1) == 0, "%s", err);
        free(printed);
    }
}

/* The object at path ("invoice.lines[1]") under root. */
static cJSON *node_at(cJSON *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *node = root;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save))
        node = walk(node, seg);
    return node;
}

/* complete.json with a second "key": value appended to the object at path. */
static char *with_duplicate(const char *path, const char *key, cJSON *value)
{
    cJSON *doc = load_json("complete.json");
    cJSON_AddItemToObject(node_at(doc, path), key, value);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    cr_assert_not_null(text);
    return text;
}

Test(bad_event, duplicate_key_in_nested_objects)
{
    char *text = with_duplicate("invoice.lines[1]", "quantity", cJSON_CreateString("5"));
    expect_reject_text(text, strlen(text), "invoice.lines[1].quantity: key appears more than once");
    cJSON_free(text);
    text = with_duplicate("invoice.customer", "id", cJSON_CreateNull());
    expect_reject_text(text, strlen(text), "invoice.customer.id: key appears more than once");
    cJSON_free(text);
    /* Fields are checked in their fixed order, whatever the order of the members. */
    cJSON *doc = load_json("complete.json");
    set(doc, "invoice.lines[0].quantity", cJSON_CreateString("lots"));
    cJSON_AddItemToObject(node_at(doc, "invoice.lines[0]"), "line_no", cJSON_CreateNumber(1));
    expect_reject(doc, "invoice.lines[0].line_no: key appears more than once");
    cJSON_DeleteItemFromObjectCaseSensitive(node_at(doc, "invoice.lines[0]"), "line_no");
    cJSON_AddItemToObject(node_at(doc, "invoice.lines[0]"), "order_id", cJSON_CreateNumber(1));
    expect_reject(doc, "invoice.lines[0].quantity: not a decimal number");
    cJSON_Delete(doc);
}

Test(bad_event, bad_targets)
{
    reject_with("targets", cJSON_CreateArray(),
                "targets: must not be empty (leave it out to use the configured routes)");
    const char *two[] = {"midnight", ""};
    reject_with("targets", cJSON_CreateStringArray(two, 2),
                "targets[1]: expected a non-empty string");
    const char *dup[] = {"midnight", "ebizcharge", "midnight"};
    reject_with("targets", cJSON_CreateStringArray(dup, 3),
                "targets[2]: \"midnight\" is listed twice");
    cJSON *mixed = cJSON_CreateArray();
    cJSON_AddItemToArray(mixed, cJSON_CreateString("midnight"));
    cJSON_AddItemToArray(mixed, cJSON_CreateNumber(7));
    reject_with("targets", mixed, "targets[1]: expected a non-empty string");
    cJSON *many = cJSON_CreateArray();
    for (int i = 0; i < 65; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        cJSON_AddItemToArray(many, cJSON_CreateString(name));
    }
    reject_with("targets", many, "targets: 65 entries; at most 64 are allowed");
}

Test(bad_event, invalid_utf8)
{
    /* {"a":"?"} with each bad sequence at byte 6. */
    const char *bad[] = {
        "\xc3\x28",         /* continuation byte missing */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xff",             /* never valid */
        "\x80",             /* stray continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        int n = snprintf(text, sizeof text, "{\"a\":\"%s\"}", bad[i]);
        expect_reject_text(text, (size_t)n, "invalid UTF-8 at byte 6");
    }
    /* Cut off in the middle of a sequence at the very end. */
    expect_reject_text("{\"a\":\"\xe6\xbc", 8, "invalid UTF-8 at byte 6");

    /* Inside a real event: the offset points at the bad byte. */
    cJSON *doc = load_json("complete.json");
    set(doc, "invoice.title", cJSON_CreateString("MARKER"));
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    char *m = strstr(text, "MARKER");
    cr_assert_not_null(m);
    m[2] = (char)0xfe;
    char want[64];
    snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", (size_t)(m + 2 - text));
    expect_reject_text(text, strlen(text), want);
    cJSON_free(text);
}

Test(bad_event, nul_and_control_characters_in_strings)
{
    const char *text = "{\"a\":\"x\\u0000y\"}";
    expect_reject_text(text, strlen(text),
                       "string at byte 7 contains \\u0000 (NUL), which is not allowed");
    cJSON *doc = load_json("complete.json");
    set(doc, "invoice.customer.name", cJSON_CreateRaw("\"Bruce\\u0000Evil\""));
    char *printed = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    /* in a field's value, named by its path as its other faults are (review 94: by its byte) */
    expect_reject_text(printed, strlen(printed),
                       "invoice.customer.name: contains \\u0000 (NUL), which is not allowed");
    /* and so when a fault follows it (review 95: text after the event, or a NUL in an unknown
     * key's value, had the pre-scan name its byte instead) */
    static const char *const after[] = {" x", ",\"zz_unknown\":\"a\\u0000\"}"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(printed);
        char *t = malloc(n + 32);
        memcpy(t, printed, n);
        if (i == 0)
            strcpy(t + n, after[0]);
        else
            strcpy(t + n - 1, after[1]); /* before the closing brace */
        expect_reject_text(t, strlen(t),
                           "invoice.customer.name: contains \\u0000 (NUL), which is not allowed");
        free(t);
    }
    /* yet the rules of order stand (review 97: a first fix stopped reading at the NUL): a field
     * before it in table order is named first, and what the pre-scan finds first (bad UTF-8
     * anywhere) comes first */
    {
        doc = load_json("complete.json");
        set(doc, "invoice.customer.name", cJSON_CreateRaw("\"Bruce\\u0000Evil\""));
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "event_id");
        cJSON_AddStringToObject(doc, "event_id", ""); /* after the invoice in the text */
        char *late = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        expect_reject_text(late, strlen(late), "event_id: must not be empty");
        cJSON_free(late);
        /* the NUL's own message, not the note kept first in table order (review 98: the
         * schema's, when a fault followed) */
        doc = load_json("complete.json");
        set(doc, "invoice.customer.name", cJSON_CreateRaw("\"Bruce\\u0000Evil\""));
        set(doc, "schema", cJSON_CreateString("invoice-event/v2"));
        late = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        char *tail = malloc(strlen(late) + 4);
        strcpy(tail, late);
        strcat(tail, " x");
        expect_reject_text(tail, strlen(tail),
                           "invoice.customer.name: contains \\u0000 (NUL), which is not allowed");
        free(tail);
        cJSON_free(late);
        size_t n = strlen(printed);
        char *t = malloc(n + 32);
        memcpy(t, printed, n + 1);
        strcpy(t + n - 1, ",\"zz\":\"\xff\"}");
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", n + 6);
        expect_reject_text(t, strlen(t), want);
        free(t);
    }
    cJSON_free(printed);
    doc = load_json("complete.json");
    set(doc, "targets", cJSON_CreateRaw("[\"centra_soap\",\"a\\u0000b\"]"));
    printed = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    expect_reject_text(printed, strlen(printed),
                       "targets[1]: contains \\u0000 (NUL), which is not allowed");
    cJSON_free(printed);
    /* in a key, or a value read over, by where it is */
    static const char *const elsewhere[] = {
        "{\"schema\":\"invoice-event/v1\",\"invoice\":{\"no\\u0000te\":\"n\"}}",
        "{\"schema\":\"invoice-event/v1\",\"invoice\":{\"note\":{\"x\":\"a\\u0000\"}}}",
    };
    for (size_t i = 0; i < 2; i++) {
        char want[96];
        snprintf(want, sizeof want,
                 "string at byte %zu contains \\u0000 (NUL), which is not allowed",
                 (size_t)(strstr(elsewhere[i], "\\u0000") - elsewhere[i]));
        expect_reject_text(elsewhere[i], strlen(elsewhere[i]), want);
    }
    text = "{\"a\":\"x\x01y\"}";
    expect_reject_text(text, strlen(text), "invalid JSON at byte 7: control character in a string");
    /* A raw NUL byte anywhere. */
    const char raw[] = {'{', '"', 'a', '"', ':', '1', '\0', '}'};
    expect_reject_text(raw, sizeof raw, "invalid JSON at byte 6");
    /* An escaped backslash before u0000 is text, not a NUL. */
    text = "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e\",\"type\":\"invoice.created\","
           "\"tenant\":\"t\",\"version\":1,\"invoice\":{\"id\":\"I\",\"currency\":\"EUR\","
           "\"title\":\"a\\\\u0000b\",\"lines\":[{}]}}";
    iw_event *ev = parse_ok(text, strlen(text));
    cr_expect_str_eq(ev->invoice.title, "a\\u0000b");
    iw_event_free(ev);
}

Test(bad_event, deep_nesting_10000)
{
    size_t depth = 10000;
    size_t len = 5 + 2 * depth + 1;
    char *text = malloc(len + 1);
    cr_assert_not_null(text);
    memcpy(text, "{\"x\":", 5);
    memset(text + 5, '[', depth);
    memset(text + 5 + depth, ']', depth);
    text[len - 1] = '}';
    text[len] = '\0';
    /* '{' is level 1 at byte 0; the first '[' is level 2 at byte 5; level 33 is byte 36. */
    expect_reject_text(text, len, "JSON nested deeper than 32 levels at byte 36");
    /* Objects count too, and brackets inside strings do not: {"[[[[":{"a":{"a":... */
    size_t n = 0;
    memcpy(text, "{\"[[[[\":", 8);
    for (n = 8; n + 5 <= len; n += 5)
        memcpy(text + n, "{\"a\":", 5);
    /* Level 2 starts at byte 8, each level takes 5 bytes: level 33 starts at 8 + 31 * 5. */
    expect_reject_text(text, n, "JSON nested deeper than 32 levels at byte 163");
    free(text);
}

Test(bad_event, ten_megabyte_string)
{
    size_t n = (size_t)10 * 1024 * 1024;
    static const char head[] = "{\"schema\":\"invoice-event/v1\",\"invoice\":{\"description\":\"";
    size_t len = sizeof head - 1 + n + 3;
    char *text = malloc(len + 1);
    cr_assert_not_null(text);
    snprintf(text, len + 1, "%s", head);
    memset(text + sizeof head - 1, 'x', n);
    snprintf(text + sizeof head - 1 + n, 4, "\"}}");
    char want[96];
    snprintf(want, sizeof want, "event is %zu bytes; the limit is 8388608", len);
    expect_reject_text(text, len, want);
    free(text);
}

Test(bad_event, error_buffer_handling)
{
    /* No buffer at all: still refused, nothing written. */
    iw_event *ev = NULL;
    cr_expect_eq(iw_event_parse("[]", 2, &ev, NULL, 0), IW_EINVAL);
    cr_expect_null(ev);
    /* A small buffer gets a truncated, terminated message. */
    char err[8];
    memset(err, 'Z', sizeof err);
    cr_expect_eq(iw_event_parse("[]", 2, &ev, err, sizeof err), IW_EINVAL);
    cr_expect_str_eq(err, "an even");
    /* No place for the result. */
    cr_expect_eq(iw_event_parse("{}", 2, NULL, NULL, 0), IW_EINVAL);
    iw_event_free(NULL);
}

/* Issue 11, item 7: target names and the invoice id with control or bidirectional formatting
 * characters would reach results, logs and metric labels (other fields are payload: escaped by
 * the writers, never printed). */
Test(event, names_and_ids_with_control_or_bidi_characters_are_refused)
{
    cJSON *t = cJSON_CreateArray();
    cJSON_AddItemToArray(t, cJSON_CreateString("centra_soap"));
    cJSON_AddItemToArray(t, cJSON_CreateString("ix\xe2\x80\xae"
                                               "gol"));
    reject_with("targets", t, "targets[1]: contains a bidirectional formatting character");
    t = cJSON_CreateArray();
    cJSON_AddItemToArray(t, cJSON_CreateString("a\nfake log line"));
    reject_with("targets", t, "targets[0]: contains a control character");
    reject_with("invoice.id", cJSON_CreateString("INV-1\x1b[2J"),
                "invoice.id: contains a control character");
    reject_with("invoice.id",
                cJSON_CreateString("INV-\xe2\x81\xa6"
                                   "1"),
                "invoice.id: contains a bidirectional formatting character");
    /* review 94: a separator was called bidirectional formatting; a zero-width character let
     * "webhook" + U+200B pass for "webhook" in a log line */
    reject_with("invoice.id", cJSON_CreateString("INV\xe2\x80\xa8X"),
                "invoice.id: contains a line or paragraph separator (U+2028 or U+2029)");
    t = cJSON_CreateArray();
    cJSON_AddItemToArray(t, cJSON_CreateString("webhook\xe2\x80\x8b"));
    reject_with("targets", t,
                "targets[0]: contains an invisible character (U+200B, U+2060 or U+FEFF)");
    /* the zero-width joiner and non-joiner stay: Persian and Indic text, and emoji, need them */
    iw_event *zw = accept_with("invoice.id", cJSON_CreateString("INV-\xe2\x80\x8c"
                                                                "1\xe2\x80\x8d"
                                                                "2"));
    iw_event_free(zw);
    reject_with("invoice.id", cJSON_CreateString("\xef\xbb\xbfINV-1"),
                "invoice.id: contains an invisible character (U+200B, U+2060 or U+FEFF)");
    iw_event *ev = accept_with("invoice.id", cJSON_CreateString("INV-\xc3\xa9t\xc3\xa9-1"));
    cr_assert_str_eq(ev->invoice.id, "INV-\xc3\xa9t\xc3\xa9-1");
    iw_event_free(ev);
}

/* iw_event.xml_unsafe, judged by XML 1.0's Char production (section 2.2): #x9 | #xA | #xD |
 * [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. Every code point up to U+2FFF and the
 * edges above, in a text field, written as a \u escape (a UTF-16 pair above U+FFFF) and, where
 * JSON allows it raw, as its UTF-8 bytes; and the short escapes. */
static bool xml_char(long cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

static bool unsafe_with_store(const char *store)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"schema\":\"invoice-event/v1\",\"event_id\":\"e1\",\"type\":\"invoice.updated\","
             "\"tenant\":\"t\",\"version\":1,\"invoice\":{\"id\":\"I1\",\"currency\":\"EUR\","
             "\"store\":\"a%sb\",\"lines\":[{\"name\":\"n\",\"quantity\":\"1\","
             "\"unit_price\":\"1.00\"}]}}",
             store);
    iw_event *ev = parse_ok(text, strlen(text));
    bool unsafe = ev->xml_unsafe;
    iw_event_free(ev);
    return unsafe;
}

Test(event, xml_unsafe_marks_every_character_xml_cannot_carry)
{
    static const long edges[] = {0xD7FF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF};
    size_t n_edges = sizeof(edges) / sizeof(edges[0]);
    for (size_t k = 0; k < 0x2FFF + n_edges; k++) {
        long cp = k < 0x2FFF ? (long)k + 1 : edges[k - 0x2FFF];
        char esc[16], raw[8] = "";
        if (cp > 0xFFFF) {
            long v = cp - 0x10000;
            snprintf(esc, sizeof(esc), "\\u%04lX\\u%04lX", 0xD800 + (v >> 10),
                     0xDC00 + (v & 0x3FF));
        } else {
            snprintf(esc, sizeof(esc), "\\u%04lX", cp);
        }
        cr_expect_eq(unsafe_with_store(esc), !xml_char(cp), "U+%04lX escaped", cp);
        if (cp < 0x20 || cp == '"' || cp == '\\')
            continue; /* JSON has them escaped only */
        unsigned char *u = (unsigned char *)raw;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xC0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xE0 | cp >> 12),
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        } else {
            u[0] = (unsigned char)(0xF0 | cp >> 18),
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)),
            u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        }
        cr_expect_eq(unsafe_with_store(raw), !xml_char(cp), "U+%04lX raw", cp);
    }
    static const char *const shorts[][2] = {{"\\b", "1"}, {"\\f", "1"}, {"\\n", ""},
                                            {"\\r", ""},  {"\\t", ""},  {"\\/", ""}};
    for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++)
        cr_expect_eq(unsafe_with_store(shorts[i][0]), *shorts[i][1] != '\0', "%s", shorts[i][0]);
}
