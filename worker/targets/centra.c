/* centra.c: the Centra invoices_Update adapters: centra_soap (seed 000, login in the body) and
 * the legacy centra_navision endpoint (seed 001, silkvms namespace, HTTP Basic or no auth).
 * One mapping (read by the mapping engine) and one renderer serve both; the variant picks what
 * differs: the login in the body, HTTP Basic, and ecvatno. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "centra.h"
#include "mapping.h"
#include "soap.h"
#include "status.h"

/* The two variants. */
enum { V_SOAP = 1, V_NAVISION = 2 };

#define CENTRA_SOAP_NS "http://www.centra.com/webservices/"
#define CENTRA_SOAP_ACTION "http://www.centra.com/webservices/Invoices_Update"
#define NAVISION_NS "http://www.silkvms.com/webservices/"
#define NAVISION_ACTION "http://www.silkvms.com/webservices/Invoices_Update"

/* ------------------------------------------------------------------ mapping */

/* The mapping, in the dialect of a generic target's mapping file (docs/adapters.md), read once
 * by the mapping engine. J() turns the JSON written below into a string literal. */
#define J(...) #__VA_ARGS__

/* clang-format off */
/* ns1:invoice, in the seed's order. Absent sources are omitted (Centra keeps what it is not
 * sent; guess), except elements with no source at all, which are sent empty.
 * - id: the id Centra knows the invoice by when upstream recorded one (target_refs.centra_id),
 *   else the canonical id (invoices_Update inserts it under that id). Guess: the seed does not
 *   say which id space <id> lives in.
 * - Dates are sent as given (YYYY-MM-DD; guess). Amounts keep their scale; tax, subtotal and
 *   discount of an item are guessed to be amounts (not discount_pct).
 * - Centra "reference" objects are {id, description}: the id links, the description is a label.
 *   The buyer and the product are written when either their id or their name is known (the
 *   name is upstream's data and must not be dropped for want of an id); the others only with
 *   their id, since their descriptions are best guesses from the model (account: the billing
 *   company, order: the sales order number, shipment: the carrier; refund: none).
 * - paymentterms as printed on the invoice: the description, else the code. */
#define CENTRA_HEAD J( \
{"name": "invoice", "children": [ \
  {"name": "id", "path": ["invoice.target_refs.centra_id", "invoice.id"]}, \
  {"name": "store", "path": "invoice.store"}, \
  {"name": "status", "path": "invoice.status"}, \
  {"name": "serialno", "path": "invoice.number"}, \
  {"name": "documenttype", "path": "invoice.document_type"}, \
  {"name": "type", "path": "invoice.type"}, \
  {"name": "currency", "path": "invoice.currency"}, \
  {"name": "currencyrate", "path": "invoice.currency_rate", "format": "decimal"}, \
  {"name": "basecurrency", "path": "invoice.base_currency"}, \
  {"name": "total", "path": "invoice.total", "format": "decimal"}, \
  {"name": "vat", "path": "invoice.tax_total", "format": "decimal"}, \
  {"name": "totalpaid", "path": "invoice.amount_paid", "format": "decimal"}, \
  {"name": "invoicedate", "path": "invoice.issue_date"}, \
  {"name": "orderdate", "path": "invoice.order_date"}, \
  {"name": "duedate", "path": "invoice.due_date"}, \
  {"name": "buyer", "if": {"present": ["invoice.refs.buyer_id", "invoice.customer.name"]}, \
   "children": [ \
    {"name": "id", "path": "invoice.refs.buyer_id"}, \
    {"name": "description", "path": "invoice.customer.name"}]}, \
  {"name": "account", "if": {"present": "invoice.refs.account_id"}, "children": [ \
    {"name": "id", "path": "invoice.refs.account_id"}, \
    {"name": "description", "path": "invoice.billing_address.company"}]}, \
  {"name": "order", "if": {"present": "invoice.refs.order_id"}, "children": [ \
    {"name": "id", "path": "invoice.refs.order_id"}, \
    {"name": "description", "path": "invoice.so_number"}]}, \
  {"name": "shipment", "if": {"present": "invoice.refs.shipment_id"}, "children": [ \
    {"name": "id", "path": "invoice.refs.shipment_id"}, \
    {"name": "description", "path": "invoice.ship_via"}]}, \
  {"name": "refund", "if": {"present": "invoice.refs.refund_id"}, "children": [ \
    {"name": "id", "path": "invoice.refs.refund_id"}, \
    {"name": "description"}]}, \
  {"name": "paymentterms", "path": ["invoice.terms_description", "invoice.terms_code"]}, \
  {"name": "shippingterms", "path": "invoice.shipping_terms"}, \
  {"name": "internalinformation", "path": "invoice.note_internal"}, \
  {"name": "ponumber", "path": "invoice.po_number"}, )

/* Billing and shipping address. Tax and registration ids live on the customer in the model;
 * Centra repeats them per address (they do not make an address present). Addresses have no id
 * or label in the model: empty elements. The model's line3 has no element here. The country
 * is ISO alpha-2 as given (guess: Centra takes codes). centra_soap adds ecvatno, which the
 * navision sample lacks. */
#define CENTRA_BILLING J( \
  {"name": "billingaddress", "if": {"present": [ \
      "invoice.billing_address.company", "invoice.billing_address.attn", \
      "invoice.billing_address.first_name", "invoice.billing_address.last_name", \
      "invoice.billing_address.line1", "invoice.billing_address.line2", \
      "invoice.billing_address.city", "invoice.billing_address.state", \
      "invoice.billing_address.postal_code", "invoice.billing_address.country", \
      "invoice.billing_address.email", "invoice.billing_address.phone", \
      "invoice.billing_address.fax"]}, "children": [ \
    {"name": "id"}, \
    {"name": "description"}, \
    {"name": "company", "path": "invoice.billing_address.company"}, \
    {"name": "attn", "path": "invoice.billing_address.attn"}, \
    {"name": "firstname", "path": "invoice.billing_address.first_name"}, \
    {"name": "lastname", "path": "invoice.billing_address.last_name"}, \
    {"name": "address1", "path": "invoice.billing_address.line1"}, \
    {"name": "address2", "path": "invoice.billing_address.line2"}, \
    {"name": "city", "path": "invoice.billing_address.city"}, \
    {"name": "state", "path": "invoice.billing_address.state"}, \
    {"name": "zipcode", "path": "invoice.billing_address.postal_code"}, \
    {"name": "country", "path": "invoice.billing_address.country"}, \
    {"name": "email", "path": "invoice.billing_address.email"}, \
    {"name": "telephone", "path": "invoice.billing_address.phone"}, \
    {"name": "fax", "path": "invoice.billing_address.fax"}, \
    {"name": "vat", "path": "invoice.customer.fiscal_id"}, \
    {"name": "url", "path": "invoice.customer.website"}, \
    {"name": "companyregistrationid", "path": "invoice.customer.company_reg_id"} )

#define CENTRA_SHIPPING J( \
  {"name": "shippingaddress", "if": {"present": [ \
      "invoice.shipping_address.company", "invoice.shipping_address.attn", \
      "invoice.shipping_address.first_name", "invoice.shipping_address.last_name", \
      "invoice.shipping_address.line1", "invoice.shipping_address.line2", \
      "invoice.shipping_address.city", "invoice.shipping_address.state", \
      "invoice.shipping_address.postal_code", "invoice.shipping_address.country", \
      "invoice.shipping_address.email", "invoice.shipping_address.phone", \
      "invoice.shipping_address.fax"]}, "children": [ \
    {"name": "id"}, \
    {"name": "description"}, \
    {"name": "company", "path": "invoice.shipping_address.company"}, \
    {"name": "attn", "path": "invoice.shipping_address.attn"}, \
    {"name": "firstname", "path": "invoice.shipping_address.first_name"}, \
    {"name": "lastname", "path": "invoice.shipping_address.last_name"}, \
    {"name": "address1", "path": "invoice.shipping_address.line1"}, \
    {"name": "address2", "path": "invoice.shipping_address.line2"}, \
    {"name": "city", "path": "invoice.shipping_address.city"}, \
    {"name": "state", "path": "invoice.shipping_address.state"}, \
    {"name": "zipcode", "path": "invoice.shipping_address.postal_code"}, \
    {"name": "country", "path": "invoice.shipping_address.country"}, \
    {"name": "email", "path": "invoice.shipping_address.email"}, \
    {"name": "telephone", "path": "invoice.shipping_address.phone"}, \
    {"name": "fax", "path": "invoice.shipping_address.fax"}, \
    {"name": "vat", "path": "invoice.customer.fiscal_id"}, \
    {"name": "url", "path": "invoice.customer.website"}, \
    {"name": "companyregistrationid", "path": "invoice.customer.company_reg_id"} )

#define CENTRA_ECVATNO J(, {"name": "ecvatno", "path": "invoice.customer.ec_vat_no"})
#define CENTRA_END_ADDRESS J(]},)

/* Items: one invoiceitem per line (description: the line's, else its name) and one
 * "additional" item per extra charge (shipping, handling...), then the locked flag
 * ("true"/"false"; guess at Centra's spelling). */
#define CENTRA_TAIL J( \
  {"name": "items", "if": {"present": ["invoice.lines", "invoice.extra_charges"]}, \
   "children": [ \
    {"name": "invoiceitem", "each": "invoice.lines", "children": [ \
      {"name": "itemid", "path": "lines[].item_id"}, \
      {"name": "qty", "path": "lines[].quantity", "format": "decimal"}, \
      {"name": "price", "path": "lines[].unit_price", "format": "decimal"}, \
      {"name": "tax", "path": "lines[].tax_amount", "format": "decimal"}, \
      {"name": "subtotal", "path": "lines[].line_subtotal", "format": "decimal"}, \
      {"name": "description", "path": ["lines[].description", "lines[].name"]}, \
      {"name": "product", "if": {"present": ["lines[].product_id", "lines[].name"]}, \
       "children": [ \
        {"name": "id", "path": "lines[].product_id"}, \
        {"name": "description", "path": "lines[].name"}]}, \
      {"name": "variation", "if": {"present": "lines[].variation_id"}, "children": [ \
        {"name": "id", "path": "lines[].variation_id"}, \
        {"name": "description"}]}, \
      {"name": "size", "if": {"present": "lines[].size_id"}, "children": [ \
        {"name": "id", "path": "lines[].size_id"}, \
        {"name": "description"}]}, \
      {"name": "discount", "path": "lines[].discount_amount", "format": "decimal"}, \
      {"name": "sku", "path": "lines[].sku"}]}, \
    {"name": "additional", "each": "invoice.extra_charges", "children": [ \
      {"name": "subtotal", "path": "extra_charges[].amount", "format": "decimal"}, \
      {"name": "description", "path": "extra_charges[].description"}, \
      {"name": "key", "path": "extra_charges[].key"}, \
      {"name": "id", "path": "extra_charges[].id"}]}]}, \
  {"name": "locked", "path": "invoice.flags.locked", "format": "boolean"}]})

#define CENTRA_MAPPING(ecvatno) \
    J({"dialect": "xml", "prefix": "ns1", "root":) CENTRA_HEAD CENTRA_BILLING ecvatno \
    CENTRA_END_ADDRESS CENTRA_SHIPPING ecvatno CENTRA_END_ADDRESS CENTRA_TAIL J(})

/* clang-format on */

static iw_map_builtin soap_map = IW_MAP_BUILTIN("centra_soap", CENTRA_MAPPING(CENTRA_ECVATNO));
static iw_map_builtin navision_map = IW_MAP_BUILTIN("centra_navision", CENTRA_MAPPING());

/* ------------------------------------------------------------------ render */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of `user:pass` (RFC 7617); malloc'd, NULL on allocation failure. */
static char *basic_credentials(const char *user, const char *pass)
{
    size_t ul = strlen(user), pl = strlen(pass), n = ul + 1 + pl;
    char *joined = malloc(n + 1);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!joined || !out) {
        free(joined);
        free(out);
        return NULL;
    }
    snprintf(joined, n + 1, "%s:%s", user, pass);
    const unsigned char *raw = (const unsigned char *)joined;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)raw[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= raw[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    free(joined);
    return out;
}

/* Navision: HTTP Basic when auth is "basic", nothing when it is unset or "none". */
static int add_navision_auth(const iw_centra_conf *cc, iw_request *r, char *errbuf, size_t errlen)
{
    if (!cc->auth || strcmp(cc->auth, "none") == 0)
        return 0;
    if (strcmp(cc->auth, "basic") != 0) {
        snprintf(errbuf, errlen, "auth: \"%s\" is not one of basic, none", cc->auth);
        return IW_EINVAL;
    }
    if (!cc->username || !*cc->username || !cc->password) {
        snprintf(errbuf, errlen, "username, password: required for basic auth");
        return IW_EINVAL;
    }
    if (strchr(cc->username, ':')) {
        snprintf(errbuf, errlen, "username: a Basic auth user name cannot contain ':'");
        return IW_EINVAL;
    }
    char *cred = basic_credentials(cc->username, cc->password);
    if (!cred)
        return IW_ENOMEM;
    size_t hl = strlen(cred) + 7;
    char *hdr = malloc(hl);
    int rc = hdr ? 0 : IW_ENOMEM;
    if (hdr) {
        snprintf(hdr, hl, "Basic %s", cred);
        rc = iw_request_add_secret(r, cred);
        rc = rc ? rc : iw_request_add_secret(r, cc->password);
        rc = rc ? rc : iw_request_add_header(r, "Authorization", hdr);
    }
    free(hdr);
    free(cred);
    return rc;
}

static int write_login(iw_xw *x, const iw_centra_conf *cc, iw_request *r, char *errbuf,
                       size_t errlen)
{
    if (!cc->username || !*cc->username || !cc->password) {
        snprintf(errbuf, errlen, "username, password: required for the centra_soap login");
        return IW_EINVAL;
    }
    if (iw_request_add_secret(r, cc->password))
        return IW_ENOMEM;
    iw_xw_start(x, "ns1", "login", NULL);
    iw_xw_text(x, "ns1", "username", cc->username);
    iw_xw_text(x, "ns1", "password", cc->password);
    iw_xw_end(x);
    return iw_wbuf_error(x->b, errbuf, errlen);
}

static int centra_render(unsigned variant, const iw_event *ev, const iw_target_conf *tc,
                         iw_request *out, char *errbuf, size_t errlen)
{
    bool soap = variant == V_SOAP;
    const iw_centra_conf *cc = iw_centra_conf_of(tc);
    const iw_map *map = iw_map_builtin_get(soap ? &soap_map : &navision_map, errbuf, errlen);
    if (!map)
        return IW_EINVAL;
    int rc = iw_soap_request_init(out, tc->url, cc->soap_action, errbuf, errlen);
    if (rc)
        return rc;
    if (!soap && (rc = add_navision_auth(cc, out, errbuf, errlen)))
        goto fail;

    iw_xw x;
    iw_soap_open(&x, "SOAP-ENV", "ns1", cc->namespace_uri, false);
    iw_xw_start(&x, "ns1", "invoices_Update", NULL);
    if (soap && (rc = write_login(&x, cc, out, errbuf, errlen)))
        goto fail;
    iw_xw_start(&x, "ns1", "invoices", NULL);
    if ((rc = iw_map_write_xml(map, ev, NULL, &x, errbuf, errlen)))
        goto fail;
    /* iw_soap_close ends invoices and invoices_Update with Body and Envelope */
    if ((rc = iw_soap_close(&x, out, errbuf, errlen)))
        goto fail;
    return 0;

fail:
    if (rc == IW_ENOMEM)
        snprintf(errbuf, errlen, "out of memory");
    iw_request_clear(out);
    return rc;
}

static int soap_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                       iw_request *out, char *errbuf, size_t errlen)
{
    return centra_render(V_SOAP, ev, tc, out, errbuf, errlen);
}

static int navision_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                           iw_request *out, char *errbuf, size_t errlen)
{
    return centra_render(V_NAVISION, ev, tc, out, errbuf, errlen);
}

static int centra_validate(const iw_event *ev, const iw_target_conf *tc, char *errbuf,
                           size_t errlen)
{
    if (!ev->invoice.id || !*ev->invoice.id) {
        snprintf(errbuf, errlen, "invoice.id: required by %s",
                 tc && tc->type ? tc->type : "centra");
        return IW_EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------------ classify */

/* Appends the text of every <message> below n, joined by "; ". */
static void collect_messages(xmlNodePtr n, char *buf, size_t len)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)n->name, "message") == 0) {
            char t[200];
            if (iw_xml_text(n, t, sizeof(t)) == 0)
                continue;
            size_t l = strlen(buf);
            snprintf(buf + l, len - l, "%s%s", l ? "; " : "", t);
        } else {
            collect_messages(n->children, buf, len);
        }
    }
}

static bool is_false(xmlNodePtr n)
{
    char t[16];
    iw_xml_text(n, t, sizeof(t));
    return strcasecmp(t, "false") == 0 || strcmp(t, "0") == 0;
}

/* True when n holds no element and no text but white space: the seed's <ns1:result/>. */
static bool is_empty_element(xmlNodePtr n)
{
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE)
            return false;
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            for (const xmlChar *p = c->content; p && *p; p++)
                if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                    return false;
        }
    }
    return true;
}

/* True when n carries an attribute other than a serializer's (xsi:type, SOAP encoding's
 * arrayType on an rpc/encoded server's empty array): <ns1:result success="false"
 * error="..."/> states something, in a shape no seed shows, and is not the empty success
 * result. Namespace declarations are not attributes here (libxml2 keeps them apart). */
static bool serializer_attribute(xmlAttrPtr a)
{
    return a->ns && a->ns->href &&
           (strcmp((const char *)a->ns->href, "http://www.w3.org/2001/XMLSchema-instance") == 0 ||
            strcmp((const char *)a->ns->href, "http://schemas.xmlsoap.org/soap/encoding/") == 0);
}

static bool has_attributes(xmlNodePtr n)
{
    for (xmlAttrPtr a = n->properties; a; a = a->next)
        if (!serializer_attribute(a))
            return true;
    return false;
}

/* True when the elements of result are only <success> elements saying true and empty <errors>
 * lists (at least one element) and it holds no other text: a success stated outright, as
 * DESIGN's "no success=false" reads; an empty errors list says there are none, as InvoiceXpress's
 * <errors/> does. *said_true: a <success> was among them. */
static bool states_success(xmlNodePtr result, bool *said_true)
{
    int seen = 0;
    *said_true = false;
    for (xmlNodePtr c = result->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            if (has_attributes(c))
                return false;
            if (strcmp((const char *)c->name, "errors") == 0) {
                if (!is_empty_element(c))
                    return false;
                seen++;
                continue;
            }
            char t[16];
            if (strcmp((const char *)c->name, "success") != 0 || c->children == NULL ||
                iw_xml_text(c, t, sizeof(t)) == 0 ||
                (strcasecmp(t, "true") != 0 && strcmp(t, "1") != 0))
                return false;
            for (xmlNodePtr g = c->children; g; g = g->next)
                if (g->type == XML_ELEMENT_NODE)
                    return false;
            seen++;
            *said_true = true;
        } else if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            for (const xmlChar *p = c->content; p && *p; p++)
                if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                    return false;
        }
    }
    return seen > 0;
}

/* Appends n's attributes other than xsi:*, as name="value" joined by "; " (what a result that
 * states something in attributes said). */
static void collect_attributes(xmlNodePtr n, char *buf, size_t len)
{
    for (xmlAttrPtr a = n->properties; a; a = a->next) {
        if (serializer_attribute(a))
            continue;
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s=\"%s\"", l ? "; " : "", (const char *)a->name,
                 v ? (const char *)v : "");
        xmlFree(v);
    }
}

/* A readable 200 envelope without a Fault. Success is the seed's reply, an empty
 * <ns1:result/> (seed 000 line 159), or a result that says <success>true</success> and nothing
 * else (seed 000 shows no such reply; refusing it would dead-letter an applied update). A
 * result holding errors/message (with or without
 * <success>false</success>: the error shape is a guess) is a refusal, permanent, with the
 * messages as its text; a result holding anything else is not the documented success either
 * and is refused with its text, so an operator sees what came back. */
static void judge_centra_soap(const iw_target_conf *tc, const iw_response *resp,
                              const iw_soap_reply *rep, iw_outcome *out)
{
    xmlNodePtr result = iw_soap_child(rep->body, "result");
    const char *ns = iw_centra_conf_of(tc)->namespace_uri;
    if (!result || !result->ns || !result->ns->href ||
        strcmp((const char *)result->ns->href, ns) != 0) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the envelope holds no result element of %s; retrying, an "
                       "unreadable reply is never taken as success",
                       resp->status, ns);
        return;
    }
    bool attrs = has_attributes(result), said_true = false;
    if (!attrs && is_empty_element(result)) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, "200", "HTTP %ld, result", resp->status);
        return;
    }
    if (!attrs && states_success(result, &said_true)) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, "200", "HTTP %ld, result %s", resp->status,
                       said_true ? "success=true" : "with an empty errors list");
        return;
    }
    xmlNodePtr success = iw_xml_find(result->children, "success");
    xmlNodePtr errors = iw_xml_find(result->children, "errors");
    char msg[200] = "", code[64] = "";
    collect_messages(errors ? errors->children : result->children, msg, sizeof(msg));
    iw_xml_text(iw_xml_find(errors ? errors->children : NULL, "code"), code, sizeof(code));
    const char *dflt = success && is_false(success) ? "success=false"
                       : errors || *msg             ? "errors"
                       : attrs                      ? "result-attributes"
                                                    : "unexpected-result";
    if (!*msg && attrs)
        collect_attributes(result, msg, sizeof(msg));
    if (!*msg)
        iw_xml_text(result, msg, sizeof(msg));
    if (strcasecmp(msg, "true") == 0 || strcasecmp(msg, "false") == 0 || strcmp(msg, "1") == 0 ||
        strcmp(msg, "0") == 0)
        msg[0] = '\0'; /* a bare success flag says nothing of why */
    iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, *code ? code : dflt,
                   "centra refused the invoice: %s",
                   *msg ? msg : "(a result that is not the empty success result)");
    iw_soap_scrub(tc, out->message, sizeof(out->message));
    iw_soap_scrub(tc, out->code, sizeof(out->code));
}

/* The first element child of n, or NULL; *more is set when there is a second. */
static xmlNodePtr first_element(xmlNodePtr n, bool *more)
{
    xmlNodePtr first = NULL;
    *more = false;
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (first) {
            *more = true;
            break;
        }
        first = c;
    }
    return first;
}

/* Navision answers <invoicesUpdateResponse>OK</invoicesUpdateResponse>; any other text is the
 * service's refusal. The answer is the element's own text, or (an rpc-style SOAP server's
 * reading, which the page does not rule out) the text alone of its one child <return> (in no
 * namespace, not xsi:nil, with no text beside it):
 * anything else inside it (text split over elements, a second element) is not that shape. */
static void judge_navision(const iw_target_conf *tc, const iw_response *resp,
                           const iw_soap_reply *rep, iw_outcome *out)
{
    xmlNodePtr r = iw_soap_child(rep->body, "invoicesUpdateResponse");
    bool more = false, deeper = false;
    xmlNodePtr inner = first_element(r, &more);
    xmlChar *nil = inner
                       ? xmlGetNsProp(inner, (const xmlChar *)"nil",
                                      (const xmlChar *)"http://www.w3.org/2001/XMLSchema-instance")
                       : NULL;
    bool is_nil = nil && strcmp((const char *)nil, "true") == 0;
    xmlFree(nil);
    if (inner && !more && strcmp((const char *)inner->name, "return") == 0 && !inner->ns &&
        !is_nil && !first_element(inner, &deeper) && iw_soap_own_text_blank(r))
        r = inner; /* <return>OK</return>, and nothing beside it */
    else if (inner)
        r = NULL;
    if (!r) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the envelope holds no invoicesUpdateResponse of text alone "
                       "(or of one <return>); retrying, an unreadable reply is never taken as "
                       "success",
                       resp->status);
        return;
    }
    char text[200];
    iw_xml_text(r, text, sizeof(text));
    if (strcasecmp(text, "OK") == 0) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, "200", "HTTP %ld, OK", resp->status);
        return;
    }
    iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "not-ok",
                   "navision refused the invoice: %s", *text ? text : "(empty response)");
    iw_soap_scrub(tc, out->message, sizeof(out->message));
}

static void centra_classify(bool soap, const iw_target_conf *tc, const iw_response *resp,
                            iw_outcome *out)
{
    iw_soap_reply rep;
    iw_soap_reply_read(resp->body, resp->body_len, &rep);
    /* Faults are classified by code alone: seed 000 documents no fault texts. */
    if (!iw_soap_classify_common(tc, resp, &rep, out)) {
        if (soap)
            judge_centra_soap(tc, resp, &rep, out);
        else
            judge_navision(tc, resp, &rep, out);
    }
    iw_soap_reply_free(&rep);
}

static void soap_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    centra_classify(true, tc, resp, out);
}

static void navision_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    centra_classify(false, tc, resp, out);
}

/* ------------------------------------------------------------------ config */

static const iw_conf_field soap_fields[] = {
    IW_CONF_STR("username", IW_CONF_TEXT, iw_centra_conf, username, NULL, true),
    IW_CONF_STR("password", IW_CONF_SECRET, iw_centra_conf, password, NULL, true),
    IW_SOAP_NAMESPACE_FIELD(iw_centra_conf, CENTRA_SOAP_NS),
    IW_CONF_STR("soap_action", IW_CONF_TEXT, iw_centra_conf, soap_action, CENTRA_SOAP_ACTION, true),
    {0},
};

/* RFC 7617: the user-id of a Basic pair cannot hold ':' (the first one ends it). Refused at load,
 * not at every render: with auth "basic" every event would otherwise be refused. */
static const char *basic_user_check(const char *value)
{
    return strchr(value, ':') ? "a Basic auth user name cannot contain ':' (RFC 7617)" : NULL;
}

static const iw_conf_field navision_fields[] = {
    {.key = "username",
     .kind = IW_CONF_TEXT,
     .off = offsetof(iw_centra_conf, username),
     .wire = true,
     .check = basic_user_check},
    IW_CONF_STR("password", IW_CONF_SECRET, iw_centra_conf, password, NULL, true),
    IW_SOAP_NAMESPACE_FIELD(iw_centra_conf, NAVISION_NS),
    IW_CONF_STR("soap_action", IW_CONF_TEXT, iw_centra_conf, soap_action, NAVISION_ACTION, true),
    IW_CONF_ONE_OF("auth", iw_centra_conf, auth, "none", "basic", "none"),
    {0},
};

#define CENTRA_PLACEHOLDERS "{\"username\": \"demo\", \"password\": \"PASSWORD\"}"

static const iw_conf_adapter soap_conf = {
    .type = "centra_soap",
    .url = "https://demo-docs.centra.com/amsdocs/system/service/module/soap/api",
    .size = sizeof(iw_centra_conf),
    .fields = soap_fields,
    .placeholders = CENTRA_PLACEHOLDERS,
};

static const iw_conf_adapter navision_conf = {
    .type = "centra_navision",
    .url = "https://demo1337.centraqa.com/amsdemo1337/system/service/module/navision/api",
    .size = sizeof(iw_centra_conf),
    .fields = navision_fields,
    .placeholders = CENTRA_PLACEHOLDERS,
};

/* The Basic credential of username and password (navision sends it; either variant may). */
static int centra_secret_forms(const iw_target_conf *tc, iw_secrets *s)
{
    const iw_centra_conf *cc = iw_centra_conf_of(tc);
    return iw_secrets_add_basic(s, cc->username, cc->password);
}

const iw_target_ops iw_target_centra_soap = {
    .type = "centra_soap",
    .conf = &soap_conf,
    .secret_forms = centra_secret_forms,
    .validate = centra_validate,
    .render = soap_render,
    .classify = soap_classify,
    .render_refresh = NULL, /* no token to refresh */
    .parse_refresh = NULL,
};

const iw_target_ops iw_target_centra_navision = {
    .type = "centra_navision",
    .conf = &navision_conf,
    .secret_forms = centra_secret_forms,
    .validate = centra_validate,
    .render = navision_render,
    .classify = navision_classify,
    .render_refresh = NULL,
    .parse_refresh = NULL,
};
