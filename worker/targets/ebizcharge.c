/* ebizcharge.c: the EBizCharge UpdateInvoice adapter (seed 003): SOAP 1.1, securityToken in the
 * body, the full invoice every time (an omitted field is cleared at EBizCharge). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ebizcharge.h"
#include "log.h"
#include "mapping.h"
#include "soap.h"
#include "status.h"

#define EBIZ_NS "http://eBizCharge.ServiceModel.SOAP"
#define EBIZ_ACTION "http://eBizCharge.ServiceModel.SOAP/IeBizService/UpdateInvoice"

/* The date form. Seed 003's C# and PHP examples write MM/DD/YYYY (lines 258-259, 281, 284);
 * only its "Defaults to 1900-01-01" notes (lines 70, 71, 73) hint that ISO is read too, and
 * InvoiceShipDate's default is "1/1/1900 12:00:00 AM" (line 72), a US-culture DateTime. So
 * MM/DD/YYYY is the default and date_format "iso" sends YYYY-MM-DD. */

/* ------------------------------------------------------------------ mapping */

static bool line_is_taxable(const iw_line *l)
{
    if (l->taxable != IW_FLAG_UNSET)
        return l->taxable == IW_FLAG_YES;
    return (l->tax_rate.set && !iw_decimal_is_zero(l->tax_rate.value)) ||
           (l->tax_amount.set && !iw_decimal_is_zero(l->tax_amount.value));
}

/* TaxRate: the line's rate; "0" only for a line that is not taxable (the event says so, or
 * carries no rate and no tax); a taxable line without a rate is refused by validate. */
static const char *line_tax_rate(const iw_event *ev, const void *elem, size_t index,
                                 const void *ctx, char *buf, size_t len)
{
    const iw_line *l = elem;
    if (l->tax_rate.set) {
        iw_decimal_format(l->tax_rate.value, buf, len);
        return buf;
    }
    return line_is_taxable(l) ? NULL : "0";
}

/* GrossPrice: the line's gross_price; for a line that is not taxable its unit_price (gross and
 * net are the same); a taxable line without gross_price is refused by validate, never sent a
 * made-up 0 (every update replaces the whole invoice). */
static const char *line_gross_price(const iw_event *ev, const void *elem, size_t index,
                                    const void *ctx, char *buf, size_t len)
{
    const iw_line *l = elem;
    const iw_amount *a = l->gross_price.set    ? &l->gross_price
                         : !line_is_taxable(l) ? &l->unit_price
                                               : NULL;
    if (!a || !a->set)
        return NULL;
    iw_decimal_format(a->value, buf, len);
    return buf;
}

/* Taxable: the line's flag, else true when it carries a non-zero tax rate or tax amount. */
static const char *line_taxable(const iw_event *ev, const void *elem, size_t index, const void *ctx,
                                char *buf, size_t len)
{
    return line_is_taxable(elem) ? "true" : "false";
}

/* ItemLineNumber, when the line has no line_no: its 1-based position. */
static const char *line_position(const iw_event *ev, const void *elem, size_t index,
                                 const void *ctx, char *buf, size_t len)
{
    snprintf(buf, len, "%zu", index + 1);
    return buf;
}

static const iw_map_fn ebiz_fns[] = {
    {"taxable", line_taxable},
    {"tax_rate", line_tax_rate},
    {"gross_price", line_gross_price},
    {"position", line_position},
    {NULL, NULL},
};

/* The mapping, in the dialect of a generic target's mapping file (docs/adapters.md) plus the
 * computed values above, read once by the mapping engine: the ebiz:invoice element and the
 * arguments after it, inside UpdateInvoice after the securityToken (written in C). J() turns
 * the JSON written below into a string literal; date is the date pattern.
 *
 * Every element of the seed's sample is written; an unknown value is an empty element (the same
 * effect omission has at EBizCharge, but visible): "absent": "empty". Defaults for required
 * fields are the documented choices of ebiz_validate below. Rows without a source have none in
 * the model: MerchantId (the merchant is the SecurityId's owner), SubCustomerId,
 * EmailTemplateID, InvoiceURL, ItemInternalId (EBizCharge's own line id), AddressId, the
 * custom fields' FieldId, FieldType, FieldDataType, FieldDescription; WarrantyDiscount is
 * always 0. Guesses: ItemId is the merchant's item code (sku), TaxRate a percent as given
 * ("23"), ItemClass the line type, TypeId the invoice type, DeliveryNumber the shipment,
 * OrderedBy who placed the order upstream, InvoiceClass the document type, InvoiceMemo the
 * merchant-side memo, FieldCaption the field's name; InvoiceFOB is a shipping term (an
 * Incoterm). The model has no per-line custom fields, so ItemCustomFields (an optional object)
 * is never written. Addresses and custom fields are written only when the invoice has them
 * (unused objects must be left out); the model's line3 has no element. */
#define J(...) #__VA_ARGS__

/* clang-format off */
/* NotifyCustomer and InvoiceIsToBeEmailed: as the event says (false when it does not), or off
 * on a retry after an attempt EBizCharge may have applied, so a retry never e-mails a
 * customer twice (DESIGN.md section 5). */
#define EBIZ_NOTIFY_FROM_EVENT \
    "path": "invoice.flags.notify_customer", "format": "boolean", "default": "false"
#define EBIZ_EMAIL_FROM_EVENT \
    "path": "invoice.flags.email_invoice", "format": "boolean", "default": "false"
#define EBIZ_MAIL_OFF "value": "false"

#define EBIZ_MAPPING(date, notify, email) J( \
{"dialect": "xml", "prefix": "ebiz", "absent": "empty", "root": {"children": [ \
 {"name": "invoice", "children": [ \
  {"name": "MerchantId"}, \
  {"name": "CustomerId", "path": "invoice.customer.id"}, \
  {"name": "SubCustomerId"}, \
  {"name": "InvoiceNumber", "path": "invoice.number"}, \
  {"name": "InvoiceDate", "path": "invoice.issue_date", "format": "date", "pattern": date}, \
  {"name": "Currency", "path": "invoice.currency"}, \
  {"name": "InvoiceAmount", "path": "invoice.total", "format": "decimal"}, \
  {"name": "InvoiceDueDate", "path": "invoice.due_date", "format": "date", "pattern": date}, \
  {"name": "AmountDue", "path": "invoice.amount_due", "format": "decimal"}, \
  {"name": "PoNum", "path": "invoice.po_number"}, \
  {"name": "SoNum", "path": "invoice.so_number"}, \
  {"name": "DivisionId", "path": "invoice.refs.division_id"}, \
  {"name": "TypeId", "path": "invoice.type"}, \
  {"name": "Items", "if": {"present": "invoice.lines"}, "children": [ \
   {"name": "Item", "each": "invoice.lines", "children": [ \
    {"name": "ItemInternalId"}, \
    {"name": "ItemId", "path": "lines[].sku"}, \
    {"name": "Name", "path": "lines[].name"}, \
    {"name": "Description", "path": "lines[].description"}, \
    {"name": "UnitPrice", "path": "lines[].unit_price", "format": "decimal"}, \
    {"name": "Qty", "path": "lines[].quantity", "format": "decimal"}, \
    {"name": "Taxable", "compute": "taxable"}, \
    {"name": "TaxRate", "compute": "tax_rate"}, \
    {"name": "UnitOfMeasure", "path": "lines[].unit"}, \
    {"name": "TotalLineAmount", "path": "lines[].line_total", "format": "decimal"}, \
    {"name": "TotalLineTax", "path": "lines[].tax_amount", "format": "decimal"}, \
    {"name": "ItemLineNumber", "path": "lines[].line_no", "compute": "position"}, \
    {"name": "GrossPrice", "compute": "gross_price"}, \
    {"name": "WarrantyDiscount", "value": "0"}, \
    {"name": "SalesDiscount", "path": "lines[].discount_amount", "format": "decimal", \
     "default": "0"}, \
    {"name": "ItemClass", "path": "lines[].line_type"}]}]}, \
  {"name": "Software", "value": "invoice-worker"}, \
  {"name": "NotifyCustomer", notify}, \
  {"name": "EmailTemplateID"}, \
  {"name": "InvoiceURL"}, \
  {"name": "TotalTaxAmount", "path": "invoice.tax_total", "format": "decimal"}, \
  {"name": "InvoiceUniqueId", "path": "invoice.id"}, \
  {"name": "InvoiceDescription", "path": "invoice.description"}, \
  {"name": "BillingAddress", "if": {"present": [ \
     "invoice.billing_address.first_name", "invoice.billing_address.last_name", \
     "invoice.billing_address.company", "invoice.billing_address.line1", \
     "invoice.billing_address.line2", "invoice.billing_address.city", \
     "invoice.billing_address.state", "invoice.billing_address.postal_code", \
     "invoice.billing_address.country", "invoice.billing_address.is_default"]}, "children": [ \
   {"name": "FirstName", "path": "invoice.billing_address.first_name"}, \
   {"name": "LastName", "path": "invoice.billing_address.last_name"}, \
   {"name": "CompanyName", "path": "invoice.billing_address.company"}, \
   {"name": "Address1", "path": "invoice.billing_address.line1"}, \
   {"name": "Address2", "path": "invoice.billing_address.line2"}, \
   {"name": "City", "path": "invoice.billing_address.city"}, \
   {"name": "State", "path": "invoice.billing_address.state"}, \
   {"name": "ZipCode", "path": "invoice.billing_address.postal_code"}, \
   {"name": "Country", "path": "invoice.billing_address.country"}, \
   {"name": "IsDefault", "path": "invoice.billing_address.is_default", "format": "boolean", \
    "default": "false"}, \
   {"name": "AddressId"}]}, \
  {"name": "ShippingAddress", "if": {"present": [ \
     "invoice.shipping_address.first_name", "invoice.shipping_address.last_name", \
     "invoice.shipping_address.company", "invoice.shipping_address.line1", \
     "invoice.shipping_address.line2", "invoice.shipping_address.city", \
     "invoice.shipping_address.state", "invoice.shipping_address.postal_code", \
     "invoice.shipping_address.country", "invoice.shipping_address.is_default"]}, "children": [ \
   {"name": "FirstName", "path": "invoice.shipping_address.first_name"}, \
   {"name": "LastName", "path": "invoice.shipping_address.last_name"}, \
   {"name": "CompanyName", "path": "invoice.shipping_address.company"}, \
   {"name": "Address1", "path": "invoice.shipping_address.line1"}, \
   {"name": "Address2", "path": "invoice.shipping_address.line2"}, \
   {"name": "City", "path": "invoice.shipping_address.city"}, \
   {"name": "State", "path": "invoice.shipping_address.state"}, \
   {"name": "ZipCode", "path": "invoice.shipping_address.postal_code"}, \
   {"name": "Country", "path": "invoice.shipping_address.country"}, \
   {"name": "IsDefault", "path": "invoice.shipping_address.is_default", "format": "boolean", \
    "default": "false"}, \
   {"name": "AddressId"}]}, \
  {"name": "InvoiceCustomerMessage", "path": "invoice.note_public"}, \
  {"name": "InvoiceMemo", "path": "invoice.note_internal"}, \
  {"name": "InvoiceShipDate", "path": "invoice.ship_date", "format": "date", "pattern": date}, \
  {"name": "InvoiceShipVia", "path": "invoice.ship_via"}, \
  {"name": "InvoiceTermsId", "path": "invoice.terms_code"}, \
  {"name": "InvoiceSalesRepId", "path": "invoice.refs.sales_rep_id"}, \
  {"name": "InvoiceIsToBeEmailed", email}, \
  {"name": "InvoiceIsToBePrinted", "path": "invoice.flags.print_invoice", \
   "format": "boolean", "default": "false"}, \
  {"name": "DeliveryNumber", "path": "invoice.refs.shipment_id"}, \
  {"name": "TotalDiscountAmount", "path": "invoice.discount_total", "format": "decimal"}, \
  {"name": "TotalShippingAmount", "path": "invoice.shipping_total", "format": "decimal"}, \
  {"name": "LocationId", "path": "invoice.refs.location_id"}, \
  {"name": "PoDate", "path": "invoice.po_date", "format": "date", "pattern": date}, \
  {"name": "OrderedBy", "path": "invoice.refs.user_name"}, \
  {"name": "InvoiceClass", "path": "invoice.document_type"}, \
  {"name": "InvoiceFOB", "path": "invoice.shipping_terms"}, \
  {"name": "InvoiceTermsDescription", "path": "invoice.terms_description"}, \
  {"name": "InvoiceCustomFields", "if": {"present": "invoice.custom_fields"}, "children": [ \
   {"name": "EbizCustomField", "each": "invoice.custom_fields", "children": [ \
    {"name": "FieldId"}, \
    {"name": "FieldCaption", "path": "custom_fields[].name"}, \
    {"name": "FieldName", "path": "custom_fields[].name"}, \
    {"name": "FieldValue", "path": "custom_fields[].value"}, \
    {"name": "FieldType"}, \
    {"name": "FieldDataType"}, \
    {"name": "FieldDescription"}]}]}]}, \
 {"name": "customerId", "path": "invoice.customer.id"}, \
 {"name": "subCustomerId"}, \
 {"name": "invoiceNumber", "path": "invoice.number"}, \
 {"name": "invoiceInternalId", "path": "invoice.target_refs.ebiz_internal_id"}]}})
/* clang-format on */

/* [date format][mail off] */
static iw_map_builtin maps[2][2] = {
    {IW_MAP_BUILTIN_FNS("ebizcharge",
                        EBIZ_MAPPING("MM/DD/YYYY", EBIZ_NOTIFY_FROM_EVENT, EBIZ_EMAIL_FROM_EVENT),
                        ebiz_fns),
     IW_MAP_BUILTIN_FNS("ebizcharge", EBIZ_MAPPING("MM/DD/YYYY", EBIZ_MAIL_OFF, EBIZ_MAIL_OFF),
                        ebiz_fns)},
    {IW_MAP_BUILTIN_FNS("ebizcharge",
                        EBIZ_MAPPING("YYYY-MM-DD", EBIZ_NOTIFY_FROM_EVENT, EBIZ_EMAIL_FROM_EVENT),
                        ebiz_fns),
     IW_MAP_BUILTIN_FNS("ebizcharge", EBIZ_MAPPING("YYYY-MM-DD", EBIZ_MAIL_OFF, EBIZ_MAIL_OFF),
                        ebiz_fns)},
};

/* ------------------------------------------------------------------ validate */

/* Amounts EBizCharge requires. They must come from the event: a made-up 0 would overwrite the
 * real value at EBizCharge (every update replaces the whole invoice). */
static const struct {
    const char *path;    /* canonical field, for the message */
    size_t off;          /* iw_amount in iw_invoice */
    const char *element; /* EBizCharge element it feeds */
} required_totals[] = {
    {"total", offsetof(iw_invoice, total), "InvoiceAmount"},
    {"amount_due", offsetof(iw_invoice, amount_due), "AmountDue"},
    {"tax_total", offsetof(iw_invoice, tax_total), "TotalTaxAmount"},
    {"discount_total", offsetof(iw_invoice, discount_total), "TotalDiscountAmount"},
    {"shipping_total", offsetof(iw_invoice, shipping_total), "TotalShippingAmount"},
};

/* Per line. Taxable (derived), TaxRate (0 only when not taxable), GrossPrice (unit_price only
 * when not taxable), SalesDiscount (0: no discount; a discount_pct alone is refused),
 * WarrantyDiscount (always 0: the model has
 * none) and ItemLineNumber (position) have documented defaults; a taxable line needs its
 * tax_rate and gross_price. */
static const struct {
    const char *path;
    size_t off; /* iw_amount in iw_line */
    const char *element;
} required_line_amounts[] = {
    {"unit_price", offsetof(iw_line, unit_price), "UnitPrice"},
    {"quantity", offsetof(iw_line, quantity), "Qty"},
    {"line_total", offsetof(iw_line, line_total), "TotalLineAmount"},
    {"tax_amount", offsetof(iw_line, tax_amount), "TotalLineTax"},
};

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int ebiz_validate(const iw_event *ev, const iw_target_conf *tc, char *errbuf, size_t errlen)
{
    const iw_invoice *inv = &ev->invoice;
    if (!inv->number && !inv->target_refs.ebiz_internal_id) {
        snprintf(errbuf, errlen,
                 "invoice.number: ebizcharge needs invoice.number or "
                 "invoice.target_refs.ebiz_internal_id to identify the invoice");
        return IW_EINVAL;
    }
    for (size_t i = 0; i < sizeof(required_totals) / sizeof(required_totals[0]); i++) {
        const iw_amount *a = (const iw_amount *)((const char *)inv + required_totals[i].off);
        if (!a->set) {
            snprintf(errbuf, errlen, "invoice.%s: required by ebizcharge (%s)",
                     required_totals[i].path, required_totals[i].element);
            return IW_EINVAL;
        }
    }
    if (inv->n_lines == 0) {
        snprintf(errbuf, errlen, "invoice.lines: ebizcharge needs at least one item");
        return IW_EINVAL;
    }
    for (size_t n = 0; n < inv->n_lines; n++) {
        const iw_line *l = &inv->lines[n];
        for (size_t i = 0; i < sizeof(required_line_amounts) / sizeof(required_line_amounts[0]);
             i++) {
            const iw_amount *a =
                (const iw_amount *)((const char *)l + required_line_amounts[i].off);
            if (!a->set) {
                snprintf(errbuf, errlen, "invoice.lines[%zu].%s: required by ebizcharge (%s)", n,
                         required_line_amounts[i].path, required_line_amounts[i].element);
                return IW_EINVAL;
            }
        }
        if (line_is_taxable(l) && !l->gross_price.set) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].gross_price: required by ebizcharge (GrossPrice) for a "
                     "taxable line",
                     n);
            return IW_EINVAL;
        }
        if (line_is_taxable(l) && !l->tax_rate.set) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].tax_rate: required by ebizcharge (TaxRate) for a "
                     "taxable line",
                     n);
            return IW_EINVAL;
        }
        /* review 99: a discount given only as a percentage went out as SalesDiscount 0 */
        if (!l->discount_amount.set && l->discount_pct.set &&
            !iw_decimal_is_zero(l->discount_pct.value)) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].discount_amount: required by ebizcharge "
                     "(SalesDiscount, an amount) for a line with a discount_pct; a 0 would say "
                     "the line has no discount",
                     n);
            return IW_EINVAL;
        }
        if (l->line_no && !all_digits(l->line_no)) {
            snprintf(errbuf, errlen,
                     "invoice.lines[%zu].line_no: must be a whole number for ebizcharge "
                     "(ItemLineNumber)",
                     n);
            return IW_EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ render */

static int write_token(iw_xw *x, const iw_ebiz_conf *ec, iw_request *r, char *errbuf, size_t errlen)
{
    if (!ec->security_id || !*ec->security_id) {
        snprintf(errbuf, errlen, "security_id: required by ebizcharge");
        return IW_EINVAL;
    }
    if (iw_request_add_secret(r, ec->security_id) || iw_request_add_secret(r, ec->password))
        return IW_ENOMEM;
    iw_xw_start(x, "ebiz", "securityToken", NULL);
    iw_xw_text_or_empty(x, "ebiz", "SecurityId", ec->security_id);
    iw_xw_text_or_empty(x, "ebiz", "UserId", ec->user_id);
    iw_xw_text_or_empty(x, "ebiz", "Password", ec->password);
    iw_xw_end(x);
    return iw_wbuf_error(x->b, errbuf, errlen);
}

static int ebiz_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                       iw_request *out, char *errbuf, size_t errlen)
{
    /* The render command may call render alone; a required field is never sent empty. */
    int rc = ebiz_validate(ev, tc, errbuf, errlen);
    if (rc)
        return rc;
    const iw_ebiz_conf *ec = iw_ebiz_conf_of(tc);
    bool iso = ec->date_format && strcmp(ec->date_format, "iso") == 0;
    bool mail_off = ctx && ctx->may_be_applied;
    if (mail_off && (ev->invoice.flags.notify_customer == IW_FLAG_YES ||
                     ev->invoice.flags.email_invoice == IW_FLAG_YES))
        /* the e-mail the event asks for goes out only if that earlier attempt was applied:
         * say so, so an operator can send it when it was not */
        iw_log(IW_LOG_WARN,
               "customer e-mails left out of a retry: an earlier attempt may have "
               "been applied",
               "event_id", ev->event_id ? ev->event_id : "", "target", tc->name, NULL);
    const iw_map *map = iw_map_builtin_get(&maps[iso][mail_off], errbuf, errlen);
    if (!map)
        return IW_EINVAL;
    if ((rc = iw_soap_request_init(out, tc->url, ec->soap_action, errbuf, errlen)))
        return rc;

    iw_xw x;
    iw_soap_open(&x, "soapenv", "ebiz", ec->namespace_uri, true);
    iw_xw_start(&x, "ebiz", "UpdateInvoice", NULL);
    if ((rc = write_token(&x, ec, out, errbuf, errlen)))
        goto fail;
    if ((rc = iw_map_write_xml(map, ev, NULL, &x, errbuf, errlen)))
        goto fail;
    /* iw_soap_close ends UpdateInvoice with Body and Envelope */
    if ((rc = iw_soap_close(&x, out, errbuf, errlen)))
        goto fail;
    return 0;

fail:
    if (rc == IW_ENOMEM)
        snprintf(errbuf, errlen, "out of memory");
    iw_request_clear(out);
    return rc;
}

/* ------------------------------------------------------------------ classify */

/* UpdateInvoiceResult: Status Success + StatusCode 1 is success (InvoiceInternalId becomes the
 * target_ref); Status Error is a refusal with ErrorCode and Error. */
static void judge_ebiz(const iw_target_conf *tc, const iw_response *resp, const iw_soap_reply *rep,
                       iw_outcome *out)
{
    /* UpdateInvoiceResponse (in the service's namespace, as the page's replies have it) /
     * UpdateInvoiceResult, each field at most once */
    const char *ns = iw_ebiz_conf_of(tc)->namespace_uri;
    xmlNodePtr resp_el = iw_soap_child(rep->body, "UpdateInvoiceResponse");
    if (resp_el && (!resp_el->ns || !resp_el->ns->href || !ns ||
                    strcmp((const char *)resp_el->ns->href, ns) != 0)) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the envelope holds no UpdateInvoiceResponse of %s; retrying, "
                       "an unreadable reply is never taken as success",
                       resp->status, ns ? ns : "the configured namespace");
        return;
    }
    xmlNodePtr res = iw_soap_only_child(resp_el, "UpdateInvoiceResult");
    xmlNodePtr status = res ? iw_soap_only_child(res, "Status") : NULL;
    static const char *const fields[] = {"StatusCode", "Error", "ErrorCode", "InvoiceInternalId"};
    bool twice = false, nested = status && xmlFirstElementChild(status);
    for (size_t i = 0; res && i < sizeof(fields) / sizeof(*fields); i++) {
        xmlNodePtr f = iw_soap_child(res, fields[i]);
        twice |= f && !iw_soap_only_child(res, fields[i]);
        nested |= f && xmlFirstElementChild(f); /* review 104: <StatusCode><a>1</a> */
    }
    /* review 99: text beside the fields, or a field spelled over elements, says two things */
    bool mixed =
        res && (!iw_soap_own_text_blank(resp_el) || !iw_soap_own_text_blank(res) || nested);
    if (!status || twice || mixed) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the envelope holds no UpdateInvoiceResponse/"
                       "UpdateInvoiceResult with one Status%s; retrying, an unreadable reply is "
                       "never taken as success",
                       resp->status,
                       twice   ? " (a field is given twice)"
                       : mixed ? " (text beside its fields, or a field of elements)"
                               : "");
        return;
    }
    char st[32], sc[32], err[200], ec[48];
    iw_xml_text(status, st, sizeof(st));
    iw_xml_text(iw_soap_child(res, "StatusCode"), sc, sizeof(sc));
    iw_xml_text(iw_soap_child(res, "Error"), err, sizeof(err));
    iw_xml_text(iw_soap_child(res, "ErrorCode"), ec, sizeof(ec));
    /* success as the page shows it: Success, 1, no Error text, ErrorCode 0 (or none) */
    bool clean = !*err && (!*ec || strcmp(ec, "0") == 0);
    if (strcasecmp(st, "Success") == 0 && strcmp(sc, "1") == 0 && clean) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, "1", "HTTP %ld, Status Success",
                       resp->status);
        /* an id longer than target_ref holds is not one a cut could name: none then (the
         * margin: a cut never splits a character, so it may back up three bytes) */
        char id[sizeof(out->target_ref) + 4];
        if (iw_xml_text(iw_soap_child(res, "InvoiceInternalId"), id, sizeof(id)) <
            sizeof(out->target_ref))
            memcpy(out->target_ref, id, sizeof(out->target_ref));
        return;
    }
    if (strcasecmp(st, "Error") == 0)
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, *ec ? ec : sc,
                       "ebizcharge refused the invoice (ErrorCode %s): %s", *ec ? ec : "?",
                       *err ? err : "(no Error text)");
    else /* a status we do not know is not a success; resending will not change it */
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, *ec ? ec : sc,
                       "ebizcharge answered Status \"%s\", StatusCode \"%s\": %s", st, sc,
                       *err ? err : "(no Error text)");
    iw_soap_scrub(tc, out->message, sizeof(out->message));
    iw_soap_scrub(tc, out->code, sizeof(out->code));
}

static void ebiz_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    iw_soap_reply rep;
    iw_soap_reply_read(resp->body, resp->body_len, &rep);
    if (!iw_soap_classify_common(tc, resp, &rep, out))
        judge_ebiz(tc, resp, &rep, out);
    iw_soap_reply_free(&rep);
}

/* ------------------------------------------------------------------ config */

static const iw_conf_field ebiz_fields[] = {
    IW_CONF_STR("user_id", IW_CONF_TEXT, iw_ebiz_conf, user_id, NULL, true),
    IW_CONF_STR("security_id", IW_CONF_SECRET, iw_ebiz_conf, security_id, NULL, true),
    IW_CONF_STR("password", IW_CONF_SECRET, iw_ebiz_conf, password, NULL, true),
    IW_SOAP_NAMESPACE_FIELD(iw_ebiz_conf, EBIZ_NS),
    IW_CONF_STR("soap_action", IW_CONF_TEXT, iw_ebiz_conf, soap_action, EBIZ_ACTION, true),
    IW_CONF_ONE_OF("date_format", iw_ebiz_conf, date_format, "mdy", "mdy", "iso"),
    {0},
};

static const iw_conf_adapter ebiz_conf = {
    .type = "ebizcharge",
    /* guess: the page names no host; eBizService.svc is the service's SOAP endpoint name */
    .url = "https://soap.ebizcharge.net/eBizService.svc",
    .size = sizeof(iw_ebiz_conf),
    .fields = ebiz_fields,
    .placeholders =
        "{\"security_id\": \"SECURITY-ID\", \"user_id\": \"\", \"password\": \"PASSWORD\"}",
};

const iw_target_ops iw_target_ebizcharge = {
    .type = "ebizcharge",
    .conf = &ebiz_conf,
    .validate = ebiz_validate,
    .render = ebiz_render,
    .classify = ebiz_classify,
    .render_refresh = NULL, /* the SecurityId is static */
    .parse_refresh = NULL,
};
