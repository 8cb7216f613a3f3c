/* render_check.h: the property every rendered request body must have, shared by the fuzzer
 * fuzz_render.c (libFuzzer, clang) and the deterministic suite tests/unit/test_render_hostile.c
 * (any compiler, in ctest):
 *
 *   a text put into the invoice is either refused with a message (UTF-8, naming the field), or
 *   the body is one well-formed document (XML: libxml2 parses it without recovery; JSON: cJSON
 *   parses it and it is UTF-8) that gives the text back unchanged.
 *
 * For the field every adapter sends (invoice.po_number) the answer is also fixed: an XML body
 * refuses exactly the texts XML 1.0 cannot carry (invalid UTF-8, C0 controls other than tab, LF
 * and CR, U+FFFE, U+FFFF) and carries every other one; a JSON body carries every UTF-8 text
 * (controls and noncharacters included) and refuses only invalid UTF-8. The checks decide what
 * XML 1.0 and UTF-8 allow on their own, not through the writer under test. Header-only: each
 * harness reports a broken property its own way. */
#ifndef IW_RENDER_CHECK_H
#define IW_RENDER_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>

#include "config.h"
#include "invoice.h"
#include "target.h"
#include "xml.h"

/* Every adapter; Midnight in both formats, sending lines without ids as new ones. */
static const char iw_rc_config[] =
    "{\"targets\": {"
    "\"centra_soap\": {\"type\": \"centra_soap\", \"url\": \"https://c.example/soap\","
    " \"username\": \"u\", \"password\": \"p\"},"
    "\"centra_navision\": {\"type\": \"centra_navision\", \"url\": \"https://c.example/nav\"},"
    "\"midnight\": {\"type\": \"midnight\", \"url\": "
    "\"https://m.example/v1/Generic/InvoiceUpdate\","
    " \"prc_token\": \"a\", \"midnight_token\": \"b\", \"mis_key\": \"c\","
    " \"lines_without_id\": \"new\"},"
    "\"midnight_xml\": {\"type\": \"midnight\", \"format\": \"xml\","
    " \"url\": \"https://m.example/v1/Generic/InvoiceUpdate\","
    " \"prc_token\": \"a\", \"midnight_token\": \"b\", \"mis_key\": \"c\","
    " \"lines_without_id\": \"new\"},"
    "\"ebizcharge\": {\"type\": \"ebizcharge\", \"url\": \"https://e.example/svc\","
    " \"security_id\": \"s\"},"
    "\"invoicexpress\": {\"type\": \"invoicexpress\", \"url\": \"https://i.example\","
    " \"api_key\": \"k\", \"tax_names\": {\"23\": \"IVA23\"}}}}";

/* An event every adapter accepts as it is. */
static const char iw_rc_event[] =
    "{\"schema\": \"invoice-event/v1\", \"event_id\": \"e-1\", \"type\": \"invoice.updated\","
    " \"source\": \"s\", \"tenant\": \"t\", \"version\": 1, \"invoice\": {"
    " \"id\": \"INV-1\", \"number\": \"1\", \"currency\": \"EUR\", \"issue_date\": \"2026-11-21\","
    " \"po_number\": \"PO\", \"note_public\": \"n\", \"note_internal\": \"i\", \"title\": \"t\","
    " \"total\": \"1.23\", \"amount_due\": \"1.23\", \"tax_total\": \"0.23\","
    " \"discount_total\": \"0.00\", \"shipping_total\": \"0.00\","
    " \"target_refs\": {\"midnight_guid\": \"8da872e1-fbca-4a43-8e49-417c9bd9303a\","
    "  \"invoicexpress_id\": \"7\"},"
    " \"customer\": {\"id\": \"5\", \"name\": \"Client\"},"
    " \"billing_address\": {\"line1\": \"Street 1\", \"city\": \"Town\"},"
    " \"lines\": [{\"line_no\": \"1\", \"name\": \"Item\", \"description\": \"d\","
    "  \"quantity\": \"1\", \"unit_price\": \"1.00\", \"line_total\": \"1.23\","
    "  \"tax_rate\": \"23\", \"gross_price\": \"1.23\", \"tax_amount\": \"0.23\"}],"
    " \"extra_charges\": [{\"key\": \"shipping\", \"description\": \"Ship\", \"amount\": "
    "\"0.50\"}],"
    " \"custom_fields\": [{\"name\": \"cf\", \"value\": \"v\"}]}}";

/* Hostile texts, by class, for the deterministic suite and as a reference of what the fuzzer
 * is after. */
/* clang-format off */
static const char *const iw_rc_hostile[] = {
    /* XML's own characters and constructs */
    "", " ", "<", ">", "&", "\"", "'", "]]>", "]]]]>>", "<![CDATA[x]]>", "<!-- c -->", "<?xml?>",
    "&amp;", "&#0;", "&#xFFFE;", "&lt;&gt;", "<b>&amp;</b> \"q\" 'a'", "a=\"1\" b='2'", "\\",
    "\\\"", "/", "</invoice>", "\t", "\n", "\r", "\r\n", "\n\r", "  padded  ",
    /* C0 controls (tab, LF and CR above), DEL, C1 */
    "\x01", "\x02", "\x03", "\x04", "\x05", "\x06", "\x07", "\x08", "\x0b", "\x0c", "\x0e", "\x0f",
    "\x10", "\x11", "\x12", "\x13", "\x14", "\x15", "\x16", "\x17", "\x18", "\x19", "\x1a", "\x1b",
    "\x1c", "\x1d", "\x1e", "\x1f", "a\x01z", "\x7f", "\xc2\x80", "\xc2\x85", "\xc2\x9f",
    /* the edges of XML 1.0's Char ranges, noncharacters, BOM, bidi, separators */
    "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf",
    "x\xef\xbf\xbey", "\xef\xb7\x90", "\xef\xbb\xbf", "\xe2\x80\xae", "\xe2\x80\xa8",
    "\xe2\x80\xa9", "\xf0\x90\x80\x80", "\xf0\x9f\xbf\xbe", "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbe",
    /* surrogates written as bytes (CESU-8), and invalid UTF-8 of every kind */
    "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\xbd\xed\xb8\x80", "\x80", "\xbf", "a\x80z", "\xc3",
    "\xe6\xbc", "\xf0\x9f\xa7", "x\xc3", "\xc0\x80", "\xc1\xbf", "\xc0\xaf", "\xe0\x80\xaf",
    "\xe0\x9f\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
    "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xff\xfe", "\xc3\x28",
    /* emoji, flags, ZWJ and combining sequences, other scripts */
    "\xf0\x9f\xa7\xbe", "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "\xf0\x9f\x87\xb5\xf0\x9f\x87\xb9", "e\xcc\x81",
    "Gr\xc3\xbc\xc3\x9f\x65 \xe6\xbc\xa2\xe5\xad\x97",
    "\xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9",
};
/* clang-format on */
#define IW_RC_N_HOSTILE (sizeof(iw_rc_hostile) / sizeof(iw_rc_hostile[0]))

/* Where each instance sends invoice.po_number. */
static const struct {
    const char *target, *element;
    bool json;
} iw_rc_targets[] = {
    {"centra_soap", "ponumber", false},
    {"centra_navision", "ponumber", false},
    {"midnight", "PurchaseOrderNumber", true},
    {"midnight_xml", "PurchaseOrderNumber", false},
    {"ebizcharge", "PoNum", false},
    {"invoicexpress", "reference", false},
};
#define IW_RC_N_TARGETS (sizeof(iw_rc_targets) / sizeof(iw_rc_targets[0]))

/* The fields a hostile text may go into besides po_number (all sent by at least one adapter). */
enum { IW_RC_N_FIELDS = 8 };
static inline char **iw_rc_field(iw_event *ev, int k)
{
    iw_invoice *inv = &ev->invoice;
    switch (k) {
    case 0: return &inv->customer.name;
    case 1: return &inv->lines[0].name;
    case 2: return &inv->lines[0].description;
    case 3: return &inv->note_public;
    case 4: return &inv->note_internal;
    case 5: return &inv->billing_address.line1;
    case 6: return &inv->extra_charges[0].description;
    default: return &inv->custom_fields[0].value;
    }
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), 0 when there is none; *cp gets
 * the code point. Written apart from the worker's decoder on purpose. */
static inline size_t iw_rc_utf8(const unsigned char *s, uint32_t *cp)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n = s[0] < 0x80                    ? 1
               : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
               : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
               : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                              : 0;
    if (n == 0)
        return 0;
    uint32_t c = n == 1 ? s[0] : n == 2 ? s[0] & 0x1Fu : n == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* True when s is UTF-8 and, with xml, every character is an XML 1.0 Char. */
static inline bool iw_rc_text_ok(const char *s, bool xml)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        uint32_t c;
        size_t n = iw_rc_utf8(p, &c);
        if (n == 0)
            return false;
        if (xml && ((c < 0x20 && c != 0x9 && c != 0xA && c != 0xD) || c == 0xFFFE || c == 0xFFFF))
            return false;
        p += n;
    }
    return true;
}

/* The config, loaded once per process. */
typedef struct iw_rc {
    iw_config *cfg;
} iw_rc;

static inline int iw_rc_init(iw_rc *rc)
{
    iw_config_errors errs;
    memset(&errs, 0, sizeof(errs));
    rc->cfg = iw_config_parse(iw_rc_config, NULL, &errs);
    return rc->cfg ? 0 : -1;
}

static inline void iw_rc_free(iw_rc *rc)
{
    iw_config_free(rc->cfg);
}

/* Points a string field of the event at v (any bytes but NUL; the caller's, alive until the
 * event is freed): the event's own strings live in its block and are never freed one by one. */
static inline void iw_rc_set(char **field, const char *v)
{
    *field = (char *)v;
}

/* The text of the first element named `element` in an XML body, or of that top-level key in a
 * JSON body; NULL (with *why set) when the body is not one well-formed document. Caller frees
 * the text. */
static inline char *iw_rc_body_text(const iw_request *req, bool json, const char *element,
                                    const char **why)
{
    if (!req->body || req->body[req->body_len] != '\0' || strlen(req->body) != req->body_len) {
        *why = "the body is not NUL-terminated text of body_len bytes";
        return NULL;
    }
    if (!iw_rc_text_ok(req->body, false)) {
        *why = "the body is not UTF-8";
        return NULL;
    }
    char *out = NULL;
    if (json) {
        cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, element);
        if (!j)
            *why = "the JSON body does not parse";
        else if (!cJSON_IsString(v))
            *why = "the JSON body lacks the field";
        else if (!(out = strdup(v->valuestring)))
            abort();
        cJSON_Delete(j);
        return out;
    }
    xmlDocPtr d =
        xmlReadMemory(req->body, (int)req->body_len, "body.xml", NULL,
                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_HUGE);
    if (!d) {
        *why = "the XML body is not well-formed";
        return NULL;
    }
    xmlNodePtr n = iw_xml_find(xmlDocGetRootElement(d), element);
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    if (!t)
        *why = "the XML body lacks the element";
    else if (!(out = strdup((const char *)t)))
        abort();
    xmlFree(t);
    xmlFreeDoc(d);
    return out;
}

/* Renders one instance; fills why (and returns false) when the property breaks. po is the text
 * put into po_number (NULL: the base value), others the texts of the other fields (n of them,
 * NULL entries left as they are). */
static inline bool iw_rc_check(const iw_rc *rc, size_t t, const char *po, const char *const *others,
                               size_t n, char *why, size_t whylen)
{
    const iw_target_conf *tc = iw_config_target(rc->cfg, iw_rc_targets[t].target);
    const iw_target_ops *ops = tc ? iw_target_find(tc->type) : NULL;
    if (!ops) {
        snprintf(why, whylen, "no instance %s", iw_rc_targets[t].target);
        return false;
    }
    /* a fresh event each time: the same parse of the same text */
    iw_event *ev = NULL;
    char err[256] = "";
    if (iw_event_parse(iw_rc_event, sizeof(iw_rc_event) - 1, &ev, err, sizeof(err)))
        abort();
    if (po)
        iw_rc_set(&ev->invoice.po_number, po);
    for (size_t k = 0; k < n && k < IW_RC_N_FIELDS; k++)
        if (others[k])
            iw_rc_set(iw_rc_field(ev, (int)k), others[k]);

    bool json = iw_rc_targets[t].json, ok = true;
    iw_request req;
    memset(&req, 0, sizeof(req));
    iw_render_ctx ctx = {.state = NULL};
    int r = iw_target_validate(ops, ev, tc, err, sizeof(err));
    if (r == 0)
        r = iw_target_render(ops, ev, tc, &ctx, &req, err, sizeof(err));
    const char *text = po ? po : "PO";
    bool must_carry = n == 0 && iw_rc_text_ok(text, !json);
    if (r != 0) {
        if (!err[0] || !iw_rc_text_ok(err, false)) {
            snprintf(why, whylen, "%s: a refusal without a UTF-8 message", tc->name);
            ok = false;
        } else if (req.body || req.url) {
            snprintf(why, whylen, "%s: a refused render left a request behind", tc->name);
            ok = false;
        } else if (must_carry) {
            snprintf(why, whylen, "%s refused a text it can carry: %s", tc->name, err);
            ok = false;
        }
    } else if (po && !iw_rc_text_ok(po, !json)) {
        snprintf(why, whylen, "%s sent po_number %s", tc->name,
                 iw_rc_text_ok(po, false) ? "with a character XML 1.0 cannot carry"
                                          : "that is not UTF-8");
        ok = false;
    } else {
        const char *bad = NULL;
        char *got = iw_rc_body_text(&req, json, iw_rc_targets[t].element, &bad);
        if (!got) {
            snprintf(why, whylen, "%s: %s", tc->name, bad);
            ok = false;
        } else if (strcmp(got, text) != 0) {
            snprintf(why, whylen, "%s: <%s> does not give the text back", tc->name,
                     iw_rc_targets[t].element);
            ok = false;
        }
        free(got);
    }
    iw_request_clear(&req);
    iw_event_free(ev);
    return ok;
}

#endif
