/* midnight.c: the Midnight MIS adapter (seed 002): InvoiceUpdateRequest as JSON (or XML), two
 * Authorization headers plus MISKEY, Midnight token refresh on 401. */
#include "target.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "mapping.h"
#include "midnight.h"
#include "status.h"
#include "text.h"
#include "wbuf.h"
#include "xml.h"

/* Guess: the seed page gives only the relative path "v1/Generic/InvoiceUpdate"; the host is
 * per installation. Configure targets.<name>.url. */
#define DEFAULT_URL "https://api.midnightmis.com/v1/Generic/InvoiceUpdate"
/* Token refresh path, appended to the API base (see token_url_of). */
#define REFRESH_PATH "/v1/Token/RegenerateAuthToken"

static const iw_midnight_conf *mnc(const iw_target_conf *tc)
{
    return iw_midnight_conf_of(tc);
}

/* What an instance keeps between calls: the token of the last refresh. */
typedef struct mn_state {
    char *token; /* secret: NULL until a refresh, then used instead of midnight_token */
} mn_state;

/* The mapping, in the seed's key order, one for JSON and one for XML (the same keys; the lists
 * take a different shape in each). Read once by the mapping engine; J() turns the JSON written
 * below into a string literal.
 *
 * Keys the seed has but the canonical invoice has no source for are Midnight-internal (billing
 * progress, GL accounts, order versions, parent lines) and are left out rather than invented:
 * InvoiceLineItemID, OrderVersionID, OrderVersionDetailID, ServiceID, AccountingGLID,
 * PaymentAccountID, OrderVersionPostageID, AmountApplied, PreviouslyInvoiced,
 * PreviouslyInvoicedBalance, InitialTotal, ParentInvoiceLineID, bNoteVisible,
 * ParentInvoiceLineGuid, ParentObjectType, ParentObjectID, ItemDisplaySetting. Midnight's own
 * keys (InvoiceID, CustomerId, ContactID, InvoiceLineID, OrderID, ItemId, InvoiceLineGuid) come
 * only from target_refs, never from upstream's ids, which are numbers of another system and
 * would point at unrelated Midnight rows; an id is sent as a JSON integer ("digits": validate()
 * has refused one that is not all digits). A line without a Midnight id is refused by
 * validate() unless the instance sends such lines as new ones (lines_without_id "new"; they
 * then carry TempInvoiceLineID, the sender's line number, which also orders the line as its
 * Priority). The canonical model has one line type; Midnight asks for a type at four places,
 * and all four carry line_type. Dates are sent as "YYYY-MM-DDT00:00:00", paid_at as given
 * (RFC 3339). SourceModule is the upstream system that published the event. Each line has one
 * InvoiceLineItem detail, carrying its quantity and amounts. */
#define J(...) #__VA_ARGS__

/* clang-format off */
#define MN_HEAD J( \
  {"name": "Guid", "path": "invoice.target_refs.midnight_guid"}, \
  {"name": "InvoiceID", "path": "invoice.target_refs.midnight_invoice_id", "format": "digits"}, \
  {"name": "InvoiceNumber", "path": "invoice.number"}, \
  {"name": "InvoiceNumberExt", "path": "invoice.number_ext"}, \
  {"name": "CustomerId", "path": "invoice.target_refs.midnight_customer_id", "format": "digits"}, \
  {"name": "UserName", "path": "invoice.refs.user_name"}, \
  {"name": "InvoiceDate", "path": "invoice.issue_date", "format": "date", \
   "pattern": "YYYY-MM-DDT00:00:00"}, \
  {"name": "InvoiceDueDate", "path": "invoice.due_date", "format": "date", \
   "pattern": "YYYY-MM-DDT00:00:00"}, \
  {"name": "TermsCode", "path": "invoice.terms_code"}, \
  {"name": "SubTotalBilledAmount", "path": "invoice.subtotal", "format": "decimal"}, \
  {"name": "InvoiceTaxAmount", "path": "invoice.tax_total", "format": "decimal"}, \
  {"name": "TotalBilledAmount", "path": "invoice.total", "format": "decimal"}, \
  {"name": "PaymentDueAmount", "path": "invoice.amount_due", "format": "decimal"}, \
  {"name": "PaymentBilledDateTime", "path": "invoice.paid_at"}, \
  {"name": "AddressLine1", "path": "invoice.billing_address.line1"}, \
  {"name": "AddressLine2", "path": "invoice.billing_address.line2"}, \
  {"name": "AddressLine3", "path": "invoice.billing_address.line3"}, \
  {"name": "City", "path": "invoice.billing_address.city"}, \
  {"name": "StateCode", "path": "invoice.billing_address.state"}, \
  {"name": "ZipCode", "path": "invoice.billing_address.postal_code"}, \
  {"name": "Phone", "path": "invoice.customer.phone"}, \
  {"name": "Extension", "path": "invoice.customer.phone_ext"}, \
  {"name": "EmailAddress", "path": "invoice.customer.email"}, \
  {"name": "ContactID", "path": "invoice.target_refs.midnight_contact_id", "format": "digits"}, \
  {"name": "InvoiceNote", "path": "invoice.note_public"}, \
  {"name": "SourceModule", "path": "source"}, \
  {"name": "InvoiceTitle", "path": "invoice.title"}, \
  {"name": "Note", "path": "invoice.note_internal"}, \
  {"name": "DisplayItem", "path": "invoice.flags.display_item", "format": "boolean"}, \
  {"name": "InvoiceStatus", "path": "invoice.status"}, )

#define MN_LINE J( \
  {"name": "InvoiceLineID", "path": "lines[].target_refs.midnight_line_id", "format": "digits"}, \
  {"name": "InvoiceID", "path": "invoice.target_refs.midnight_invoice_id", "format": "digits"}, \
  {"name": "OrderID", "path": "lines[].target_refs.midnight_order_id", "format": "digits"}, \
  {"name": "InvoiceLineType", "path": "lines[].line_type"}, \
  {"name": "Title", "path": "lines[].name"}, \
  {"name": "Priority", "path": "lines[].line_no", "format": "digits"}, \
  {"name": "Quantity", "path": "lines[].quantity", "format": "decimal"}, \
  {"name": "Rate", "path": "lines[].unit_price", "format": "decimal"}, \
  {"name": "AmountBilled", "path": "lines[].line_total", "format": "decimal"}, \
  {"name": "Note", "path": "lines[].description"}, \
  {"name": "DisplayItem", "path": "invoice.flags.display_item", "format": "boolean"}, \
  {"name": "LineSubTotal", "path": "lines[].line_subtotal", "format": "decimal"}, \
  {"name": "Tax", "path": "lines[].tax_amount", "format": "decimal"}, \
  {"name": "ItemId", "path": "lines[].target_refs.midnight_item_id", "format": "digits"}, \
  {"name": "ItemType", "path": "lines[].line_type"}, \
  {"name": "LineType", "path": "lines[].line_type"}, \
  {"name": "TempInvoiceLineID", "path": "lines[].line_no", "format": "digits"}, \
  {"name": "InvoiceLineGuid", "path": "lines[].target_refs.midnight_line_guid"}, )

#define MN_DETAIL J( \
  {"name": "InvoiceID", "path": "invoice.target_refs.midnight_invoice_id", "format": "digits"}, \
  {"name": "InvoiceLineID", "path": "lines[].target_refs.midnight_line_id", "format": "digits"}, \
  {"name": "OrderID", "path": "lines[].target_refs.midnight_order_id", "format": "digits"}, \
  {"name": "InvoiceLineDetailType", "path": "lines[].line_type"}, \
  {"name": "Quantity", "path": "lines[].quantity", "format": "decimal"}, \
  {"name": "Amount", "path": "lines[].line_subtotal", "format": "decimal"}, \
  {"name": "Tax", "path": "lines[].tax_amount", "format": "decimal"}, \
  {"name": "DisplayItem", "path": "invoice.flags.display_item", "format": "boolean"})

#define MN_TAIL J({"name": "PurchaseOrderNumber", "path": "invoice.po_number"})

/* JSON: InvoiceLine is an array of line objects (empty when there are none), InvoiceLineItem
 * an array of the line's one detail. */
static iw_map_builtin json_map = IW_MAP_BUILTIN("midnight",
    J({"dialect": "json", "root": {"children": [) MN_HEAD
    J({"name": "InvoiceLine", "each": "invoice.lines", "absent": "empty", "children": [) MN_LINE
    J({"name": "InvoiceLineItem", "as": "array", "children": [) MN_DETAIL J(]}]},)
    MN_TAIL J(]}}));

/* XML: the seed's sample names the list elements (InvoiceLineSelectResponse,
 * InvoiceLineItemSelectResponse) and declares xsi and xsd on the root. */
static iw_map_builtin xml_map = IW_MAP_BUILTIN("midnight",
    J({"dialect": "xml", "root": {"name": "InvoiceUpdateRequest", "attributes": {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xmlns:xsd": "http://www.w3.org/2001/XMLSchema"}, "children": [) MN_HEAD
    J({"name": "InvoiceLine", "children": [
       {"name": "InvoiceLineSelectResponse", "each": "invoice.lines", "children": [) MN_LINE
    J({"name": "InvoiceLineItem", "children": [
       {"name": "InvoiceLineItemSelectResponse", "children": [) MN_DETAIL J(]}]}]}]},)
    MN_TAIL J(]}}));
/* clang-format on */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Renders the body in the configured format into the thread's scratch buffer and hands it to
 * out. */
static int render_body(const iw_event *ev, bool xml, iw_request *out, char *errbuf, size_t errlen)
{
    const iw_map *m = iw_map_builtin_get(xml ? &xml_map : &json_map, errbuf, errlen);
    if (!m)
        return IW_EINVAL;
    iw_wbuf *b = iw_wbuf_scratch();
    int rc = iw_map_write(m, ev, b, errbuf, errlen);
    return rc ? rc : iw_request_set_body_from(out, b, errbuf, errlen);
}

/* ------------------------------------------------------------------------------------------ */

/* True for the 8-4-4-4-12 hexadecimal form ("8da872e1-fbca-4a43-8e49-417c9bd9303a"). */
static bool is_guid(const char *s)
{
    static const int group[] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < group[g]; i++, s++)
            if (!isxdigit((unsigned char)*s))
                return false;
        if (g < 4 && *s++ != '-')
            return false;
    }
    return *s == '\0';
}

static int mn_validate(const iw_event *ev, const iw_target_conf *tc, char *errbuf, size_t errlen)
{
    const char *g = ev->invoice.target_refs.midnight_guid;
    if (!g || !*g) {
        snprintf(errbuf, errlen,
                 "invoice.target_refs.midnight_guid: required (Midnight updates by Guid)");
        return IW_EINVAL;
    }
    if (!is_guid(g)) {
        snprintf(errbuf, errlen,
                 "invoice.target_refs.midnight_guid: not a GUID (want 8-4-4-4-12 hex)");
        return IW_EINVAL;
    }
    /* RFC 3339 (and the event) allow a leap second; xs:dateTime and .NET's DateTime do not */
    const char *paid = ev->invoice.paid_at;
    if (paid && strlen(paid) >= 19 && paid[17] == '6') {
        snprintf(errbuf, errlen,
                 "invoice.paid_at: a leap second (:60) cannot be sent: Midnight's DateTime cannot "
                 "hold it");
        return IW_EINVAL;
    }
    const iw_target_refs *r = &ev->invoice.target_refs;
    const struct {
        const char *path, *value;
    } ids[] = {
        {"invoice.target_refs.midnight_invoice_id", r->midnight_invoice_id},
        {"invoice.target_refs.midnight_customer_id", r->midnight_customer_id},
        {"invoice.target_refs.midnight_contact_id", r->midnight_contact_id},
    };
    char buf[32];
    for (size_t i = 0; i < COUNT(ids); i++)
        if (ids[i].value && !iw_text_id_digits(ids[i].value, buf, sizeof(buf))) {
            snprintf(errbuf, errlen, "%s: a Midnight id is a whole number of at most 18 digits",
                     ids[i].path);
            return IW_EINVAL;
        }
    const char *without_id = tc ? mnc(tc)->lines_without_id : NULL;
    bool as_new = without_id && strcmp(without_id, "new") == 0;
    for (size_t n = 0; n < ev->invoice.n_lines; n++) {
        const iw_line_refs *lr = &ev->invoice.lines[n].target_refs;
        const struct {
            const char *name, *value;
        } lids[] = {{"midnight_line_id", lr->midnight_line_id},
                    {"midnight_item_id", lr->midnight_item_id},
                    {"midnight_order_id", lr->midnight_order_id}};
        for (size_t i = 0; i < COUNT(lids); i++)
            if (lids[i].value && !iw_text_id_digits(lids[i].value, buf, sizeof(buf))) {
                snprintf(errbuf, errlen,
                         "invoice.lines[%zu].target_refs.%s: a Midnight id is a whole number of at "
                         "most 18 "
                         "digits",
                         n, lids[i].name);
                return IW_EINVAL;
            }
        /* Priority and TempInvoiceLineID, which a new line is known by; the map would leave
         * out a value that is not a number, and a new line with it */
        const char *line_no = ev->invoice.lines[n].line_no;
        if (line_no && !iw_text_id_digits(line_no, buf, sizeof(buf))) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].line_no: a Midnight line number (Priority, "
                     "TempInvoiceLineID) is a whole number of at most 18 digits",
                     n);
            return IW_EINVAL;
        }
        if (lr->midnight_line_guid && !is_guid(lr->midnight_line_guid)) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].target_refs.midnight_line_guid: not a GUID", n);
            return IW_EINVAL;
        }
        if (!lr->midnight_line_id && !lr->midnight_line_guid && !as_new) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].target_refs.midnight_line_id: required: line %s has no "
                     "Midnight "
                     "id (midnight_line_id or midnight_line_guid), and an update without one "
                     "adds the line again; set lines_without_id to \"new\" to send such lines "
                     "as new ones",
                     n, ev->invoice.lines[n].line_no ? ev->invoice.lines[n].line_no : "?");
            return IW_EINVAL;
        }
    }
    return 0;
}

static bool is_xml_format(const iw_target_conf *tc)
{
    const char *format = mnc(tc)->format;
    return format && strcmp(format, "xml") == 0;
}

/* Adds the auth headers and records their values as secrets. Seed 002 lines 7-9 list two
 * Authorization headers (the PRC token, then the Midnight token) and MISKEY. RFC 9110 section
 * 5.3 lets a recipient fold repeated lines into one comma-joined value, which is what IIS
 * hands the application, so both forms reach the same API: auth_header "separate" (default)
 * sends the two lines the seed shows, "folded" one line "PRC, Midnight". */
static int add_auth(iw_request *r, const iw_midnight_conf *mc, const char *token, char *errbuf,
                    size_t errlen)
{
    if (!mc->prc_token || !*mc->prc_token || !token || !*token || !mc->mis_key || !*mc->mis_key) {
        snprintf(errbuf, errlen,
                 "midnight: prc_token, midnight_token and mis_key must be configured");
        return IW_EINVAL;
    }
    bool folded = mc->auth_header && strcmp(mc->auth_header, "folded") == 0;
    int rc = iw_request_add_secret(r, mc->prc_token) || iw_request_add_secret(r, token) ||
             iw_request_add_secret(r, mc->mis_key);
    if (!rc && folded) {
        size_t n = strlen(mc->prc_token) + strlen(token) + 3;
        char *both = malloc(n);
        rc = !both;
        if (both) {
            snprintf(both, n, "%s, %s", mc->prc_token, token);
            rc = iw_request_add_header(r, "Authorization", both);
            free(both);
        }
    } else if (!rc) {
        rc = iw_request_add_header(r, "Authorization", mc->prc_token) ||
             iw_request_add_header(r, "Authorization", token);
    }
    if (rc || iw_request_add_header(r, "MISKEY", mc->mis_key)) {
        snprintf(errbuf, errlen, "out of memory");
        return IW_ENOMEM;
    }
    return 0;
}

static int mn_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                     iw_request *out, char *errbuf, size_t errlen)
{
    int rc = mn_validate(ev, tc, errbuf, errlen);
    if (rc)
        return rc;
    bool xml = is_xml_format(tc);
    const mn_state *st = ctx ? ctx->state : NULL;
    const char *token = st && st->token ? st->token : mnc(tc)->midnight_token;

    snprintf(out->method, sizeof(out->method), "POST");
    if (!(out->url = strdup(tc->url ? tc->url : DEFAULT_URL)))
        goto oom;
    if ((rc = add_auth(out, mnc(tc), token, errbuf, errlen)))
        goto fail;
    if (iw_request_add_header(out, "Content-Type",
                              xml ? "application/xml; charset=utf-8"
                                  : "application/json; charset=utf-8") ||
        iw_request_add_header(out, "Accept", xml ? "application/xml" : "application/json"))
        goto oom;
    if ((rc = render_body(ev, xml, out, errbuf, errlen)))
        goto fail;
    return 0;
oom:
    snprintf(errbuf, errlen, "out of memory");
    rc = IW_ENOMEM;
fail:
    iw_request_clear(out);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading replies. */

/* Reads the reply's string: a JSON string ("abc") or XML <string>abc</string>. Returns true
 * and copies it into buf when the body is exactly that. */
static bool reply_string(const iw_response *resp, char *buf, size_t len)
{
    if (!resp->body || resp->body_len == 0)
        return false;
    cJSON *j = iw_json_reply_parse(resp->body, resp->body_len);
    if (j) {
        bool ok = cJSON_IsString(j);
        if (ok)
            iw_text_clean_copy(buf, len, j->valuestring, strlen(j->valuestring));
        cJSON_Delete(j);
        return ok;
    }
    if (iw_text_looks_html(resp->body, resp->body_len))
        return false;
    char err[128];
    xmlDocPtr doc = iw_xml_parse(resp->body, resp->body_len, err, sizeof(err));
    if (!doc)
        return false;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    bool ok = root && strcmp((const char *)root->name, "string") == 0;
    if (ok) {
        char tmp[1024];
        iw_xml_text(root, tmp, sizeof(tmp));
        iw_text_clean_copy(buf, len, tmp, strlen(tmp));
    }
    xmlFreeDoc(doc);
    return ok;
}

/* Extracts a human reason from an error body: a JSON string, the Message (and the first
 * ModelState error) of an ASP.NET error object, XML <Message>, or a text snippet. */
static void error_text(const iw_response *resp, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!resp->body || resp->body_len == 0) {
        snprintf(buf, len, "empty body");
        return;
    }
    if (iw_text_looks_html(resp->body, resp->body_len)) {
        snprintf(buf, len, "HTML error page");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(resp->body, resp->body_len);
    if (j) {
        char tmp[512] = "";
        const cJSON *m = cJSON_IsString(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "Message");
        if (!m)
            m = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (cJSON_IsString(m))
            snprintf(tmp, sizeof(tmp), "%s", m->valuestring);
        /* ASP.NET model errors: {"ModelState": {"field": ["reason", ...]}}; name the first */
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "ModelState");
        const cJSON *bad = cJSON_IsObject(ms) ? ms->child : NULL;
        const cJSON *why = cJSON_IsArray(bad) ? bad->child : bad;
        if (bad && bad->string && cJSON_IsString(why)) {
            size_t used = strlen(tmp);
            snprintf(tmp + used, sizeof(tmp) - used, "%s(%s: %s)", used ? " " : "", bad->string,
                     why->valuestring);
        }
        cJSON_Delete(j);
        if (tmp[0]) {
            iw_text_clean_copy(buf, len, tmp, strlen(tmp));
            return;
        }
    } else { /* XML, perhaps after white space or a byte order mark, which the parser skips */
        char err[128];
        xmlDocPtr doc = iw_xml_parse(resp->body, resp->body_len, err, sizeof(err));
        if (doc) {
            xmlNodePtr root = xmlDocGetRootElement(doc);
            xmlNodePtr m = iw_xml_find(root, "Message");
            char tmp[512];
            iw_xml_text(m ? m : root, tmp, sizeof(tmp));
            xmlFreeDoc(doc);
            iw_text_clean_copy(buf, len, tmp, strlen(tmp));
            return;
        }
    }
    iw_text_clean_copy(buf, len, resp->body, resp->body_len < 160 ? resp->body_len : 160);
}

/* Writes "HTTP <st>: <reason>" into out->message with the instance's secrets masked. */
static void set_message(const iw_target_conf *tc, long status, iw_outcome *out, const char *what,
                        const char *reason)
{
    char raw[sizeof(out->message)];
    snprintf(raw, sizeof(raw), "HTTP %ld: %s%s%s", status, what, reason[0] ? ": " : "", reason);
    const char *secrets[3];
    size_t n = iw_target_conf_secrets(tc, secrets, COUNT(secrets));
    char *m = iw_mask_secrets(raw, strlen(raw), (char *const *)secrets, n);
    iw_text_clean_copy(out->message, sizeof(out->message), m ? m : "(message dropped)",
                       m ? strlen(m) : 17);
    free(m);
}

/* True when the body is a well-formed XML document whose root is not <html> (XHTML). */
enum xml_kind { NOT_XML, XML_DOCUMENT, XML_PAGE };

/* What the reply is as XML: not XML, a document, or an HTML page (<!doctype html>, or a root
 * such as <html>, <h1> or <body>: a proxy's, review 99). */
static enum xml_kind xml_kind_of(const iw_response *resp)
{
    if (!resp->body || resp->body_len == 0)
        return NOT_XML;
    if (iw_text_looks_html(resp->body, resp->body_len))
        return XML_PAGE;
    char err[128];
    xmlDocPtr doc = iw_xml_parse(resp->body, resp->body_len, err, sizeof(err));
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    enum xml_kind k = !root                                         ? NOT_XML
                      : iw_text_html_root((const char *)root->name) ? XML_PAGE
                                                                    : XML_DOCUMENT;
    xmlFreeDoc(doc);
    return k;
}

/* True when s is a whole number (an id), at most 18 digits. */
static bool is_number(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 18)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* True when the id is only zeros (and a GUID's hyphens): .NET's Guid.Empty and an int's 0 are
 * what a service returns for "nothing found", never the id of an updated invoice. */
static bool is_nil_id(const char *s)
{
    for (; *s; s++)
        if (*s != '0' && *s != '-')
            return false;
    return true;
}

/* A 2xx reply. The seed's reply is a string (seed 002 lines 601-609), whose content the page
 * does not document ("sample string 1" is the help page's placeholder for any string). A
 * string is success only when it is a GUID or a number (an id Midnight returns; it becomes
 * target_ref) or one of the instance's success_replies ("*" = any string); any other string
 * is Midnight's own text and is refused with it, since a 200 carrying an error message is how
 * such APIs often refuse. A reply that is not a string (an object, a page, a cut reply) is
 * retried when it cannot be read (the update is unconfirmed, re-sending is harmless) and
 * refused with its text when it is well-formed JSON of another shape. */
static void judge_2xx(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    char ref[sizeof(out->target_ref)], reason[200];
    out->retry_after_ms = -1;
    if (reply_string(resp, ref, sizeof(ref))) {
        bool id = (is_guid(ref) || is_number(ref)) && !is_nil_id(ref);
        bool listed = false;
        const iw_midnight_conf *mc = mnc(tc);
        for (size_t i = 0; i < mc->n_success_replies && !listed; i++)
            listed = strcmp(mc->success_replies[i], "*") == 0 ||
                     strcasecmp(mc->success_replies[i], ref) == 0;
        if (id || listed) {
            if (id)
                snprintf(out->target_ref, sizeof(out->target_ref), "%s", ref);
            return;
        }
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "unexpected-reply", "%s", "");
        set_message(tc, resp->status, out,
                    *ref && is_nil_id(ref)
                        ? "reply is an empty id (all zeros): no invoice was updated"
                        : "reply string is not a GUID, an id or a configured success reply",
                    ref);
        return;
    }
    cJSON *j = iw_json_reply_parse(resp->body, resp->body_len);
    if (j) {
        cJSON_Delete(j);
        error_text(resp, reason, sizeof(reason));
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "unexpected-reply", "%s", "");
        set_message(tc, resp->status, out, "reply is JSON but not a string", reason);
        return;
    }
    /* To an instance that asks for XML, a well-formed XML document other than <string> is
     * Midnight's refusal, as an object is in JSON (ASP.NET's <Error><Message>...</Message>
     * </Error>): refused with its text. An XHTML page is a proxy's, unreadable; so is XML
     * to an instance that asks for JSON (a gateway's: the update is unconfirmed). */
    enum xml_kind kind = xml_kind_of(resp);
    if (is_xml_format(tc) && kind == XML_DOCUMENT) {
        error_text(resp, reason, sizeof(reason));
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "unexpected-reply", "%s", "");
        set_message(tc, resp->status, out, "reply is XML but not a string", reason);
        return;
    }
    /* The API always answers a string. Without it we cannot tell the update was applied
     * (a proxy page, a cut reply), and re-sending the same full state is harmless. */
    iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_REMOTE, "unreadable", "%s", "");
    const char *why = !resp->body || resp->body_len == 0 ? "empty body"
                      : kind == XML_PAGE                 ? "an HTML page"
                                                         : "not a JSON or XML string";
    snprintf(reason, sizeof(reason), "reply is %s; update not confirmed", why);
    set_message(tc, resp->status, out, "unreadable success reply", reason);
}

static void mn_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    char reason[200];
    iw_outcome_from_status(resp, out);
    long st = resp->status;

    if (out->kind == IW_OUTCOME_OK) {
        judge_2xx(tc, resp, out);
        return;
    }
    error_text(resp, reason, sizeof(reason));
    if (st == 401) {
        /* token_refresh "off": the token is rotated outside the worker (see mn_render_refresh) */
        const char *refresh = mnc(tc)->token_refresh;
        out->refresh_token = !(refresh && strcmp(refresh, "off") == 0);
        set_message(tc, resp->status, out, "Midnight token refused", reason);
    } else if (st == 403) {
        set_message(tc, resp->status, out, "access denied", reason);
    } else if (st == 404) {
        set_message(tc, resp->status, out, "invoice not found", reason);
    } else if (out->kind == IW_OUTCOME_PERMANENT) {
        set_message(tc, resp->status, out, "request refused", reason);
    } else {
        set_message(tc, resp->status, out, st == 429 ? "rate limited" : "server error", reason);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Token refresh. */

/* The refresh URL: token_url, else the API base of tc->url (everything before "/v1/",
 * or scheme://host when the URL has no "/v1/") + REFRESH_PATH. */
static char *token_url_of(const iw_target_conf *tc)
{
    const char *token_url = mnc(tc)->token_url;
    if (token_url && *token_url)
        return strdup(token_url);
    const char *url = tc->url ? tc->url : DEFAULT_URL;
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *v1 = strstr(host, "/v1/");
    size_t blen = v1 ? (size_t)(v1 - url) : (size_t)(host - url) + strcspn(host, "/?#");
    size_t n = blen + sizeof(REFRESH_PATH);
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%.*s%s", (int)blen, url, REFRESH_PATH);
    return s;
}

/* Guess: the seed names the endpoint (DESIGN.md section 5) but not its contract. We POST with
 * the same three headers as the update (PRC token, the configured Midnight token, MISKEY) and
 * an empty body; the reply is read as a JSON string or a {"Token": ...} object.
 * Several pods: each pod refreshes on its own, always authenticating with the configured token
 * (the Kubernetes Secret every pod shares), and keeps the new token in its memory only. That is
 * right when regenerating leaves the configured token valid. When Midnight invalidates the old
 * token on regeneration, pods would invalidate each other: set token_refresh "off" and rotate
 * the token through the Secret instead (README, "Midnight tokens"). */
static int mn_render_refresh(const iw_target_conf *tc, iw_request *out, char *errbuf, size_t errlen)
{
    int rc;
    char *body = NULL;
    snprintf(out->method, sizeof(out->method), "POST");
    if (!(out->url = token_url_of(tc)))
        goto oom;
    if ((rc = add_auth(out, mnc(tc), mnc(tc)->midnight_token, errbuf, errlen)))
        goto fail;
    if (iw_request_add_header(out, "Accept", "application/json") ||
        iw_request_add_header(out, "Content-Type", "application/json; charset=utf-8") ||
        !(body = calloc(1, 1)))
        goto oom;
    iw_request_set_body(out, body, 0);
    return 0;
oom:
    snprintf(errbuf, errlen, "out of memory");
    rc = IW_ENOMEM;
fail:
    iw_request_clear(out);
    return rc;
}

static int mn_parse_refresh(const iw_response *resp, char *tok, size_t toklen)
{
    if (toklen == 0 || resp->status < 200 || resp->status > 299 || !resp->body ||
        resp->body_len == 0)
        return IW_EINVAL;
    const char *val = NULL;
    cJSON *j = iw_json_reply_parse(resp->body, resp->body_len);
    if (cJSON_IsString(j)) {
        val = j->valuestring;
    } else if (cJSON_IsObject(j)) {
        static const char *const keys[] = {"Token", "token", "AuthToken", "authToken"};
        for (size_t i = 0; i < COUNT(keys) && !val; i++) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
            if (cJSON_IsString(t))
                val = t->valuestring;
        }
    }
    int rc = IW_EINVAL;
    char xmltok[1024];
    if (!j && !iw_text_looks_html(resp->body, resp->body_len) &&
        reply_string(resp, xmltok, sizeof(xmltok)))
        val = xmltok;
    /* a token is one printable header value: no controls, no spaces at the ends */
    if (val && *val && strlen(val) < toklen && !isspace((unsigned char)val[0]) &&
        !isspace((unsigned char)val[strlen(val) - 1])) {
        rc = 0;
        for (const char *p = val; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                rc = IW_EINVAL;
        if (!rc)
            strcpy(tok, val);
    }
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Config and state. */

static void *mn_state_new(const iw_target_conf *tc)
{
    return calloc(1, sizeof(mn_state));
}

/* Frees a token, wiping it first. */
static void free_token(char *tok)
{
    if (tok)
        explicit_bzero(tok, strlen(tok));
    free(tok);
}

static void mn_state_free(void *state)
{
    mn_state *st = state;
    if (st)
        free_token(st->token);
    free(st);
}

static int mn_store_refresh(void *state, const char *tok)
{
    mn_state *st = state;
    char *copy = strdup(tok);
    if (!copy)
        return IW_ENOMEM;
    free_token(st->token);
    st->token = copy;
    return 0;
}

/* The credentials in token_url (the refresh call sends them). */
static int mn_secret_forms(const iw_target_conf *tc, iw_secrets *s)
{
    return iw_secrets_add_url(s, mnc(tc)->token_url);
}

static const iw_conf_field mn_fields[] = {
    /* every call carries all three (seed 002): without one, every event would be refused */
    {.key = "prc_token",
     .kind = IW_CONF_SECRET,
     .off = offsetof(iw_midnight_conf, prc_token),
     .wire = true,
     .required = "the PRC token every call carries"},
    {.key = "midnight_token",
     .kind = IW_CONF_SECRET,
     .off = offsetof(iw_midnight_conf, midnight_token),
     .wire = true,
     .required = "the Midnight token every call carries"},
    {.key = "mis_key",
     .kind = IW_CONF_SECRET,
     .off = offsetof(iw_midnight_conf, mis_key),
     .wire = true,
     .required = "the MISKEY every call carries"},
    IW_CONF_STR("token_url", IW_CONF_URL, iw_midnight_conf, token_url, NULL, true),
    IW_CONF_ONE_OF("format", iw_midnight_conf, format, "json", "json", "xml"),
    IW_CONF_ONE_OF("auth_header", iw_midnight_conf, auth_header, "separate", "separate", "folded"),
    IW_CONF_ONE_OF("lines_without_id", iw_midnight_conf, lines_without_id, "refuse", "refuse",
                   "new"),
    IW_CONF_ONE_OF("token_refresh", iw_midnight_conf, token_refresh, "on", "on", "off"),
    IW_CONF_STRINGS("success_replies", iw_midnight_conf, success_replies, n_success_replies),
    {0},
};

static const iw_conf_adapter mn_conf = {
    .type = "midnight",
    .url = DEFAULT_URL,
    .size = sizeof(iw_midnight_conf),
    .fields = mn_fields,
    .placeholders = "{\"prc_token\": \"PRC-TOKEN\", \"midnight_token\": \"MIDNIGHT-TOKEN\", "
                    "\"mis_key\": \"MIS-KEY\"}",
};

const iw_target_ops iw_target_midnight = {
    .type = "midnight",
    .conf = &mn_conf,
    .secret_forms = mn_secret_forms,
    .state_new = mn_state_new,
    .state_free = mn_state_free,
    .validate = mn_validate,
    .render = mn_render,
    .classify = mn_classify,
    .render_refresh = mn_render_refresh,
    .parse_refresh = mn_parse_refresh,
    .store_refresh = mn_store_refresh,
};
