/* ebizcharge.c: the EBizCharge UpdateInvoice adapter (seed 003): SOAP 1.1, securityToken in the
 * body, the full invoice every time (an omitted field is cleared at EBizCharge). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ebizcharge.h"
#include "soap.h"
#include "status.h"

#define EBIZ_NS "http://eBizCharge.ServiceModel.SOAP"
#define EBIZ_ACTION "http://eBizCharge.ServiceModel.SOAP/IeBizService/UpdateInvoice"

/* Variant bits (iw_soap_field.only): the date form. Seed 003's C# and PHP examples write
 * MM/DD/YYYY (lines 258-259, 281, 284); only its "Defaults to 1900-01-01" notes (lines 70,
 * 71, 73) hint that ISO is read too, and InvoiceShipDate's default is "1/1/1900 12:00:00 AM"
 * (line 72), a US-culture DateTime. So MM/DD/YYYY is the default and date_format "iso" sends
 * YYYY-MM-DD. */
enum { V_MDY = 1, V_ISO = 2 };

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
static const char *line_tax_rate(const void *obj, const void *root, size_t index, char *buf,
                                 size_t len)
{
    const iw_line *l = obj;
    if (l->tax_rate.set) {
        iw_decimal_format(l->tax_rate.value, buf, len);
        return buf;
    }
    return line_is_taxable(l) ? NULL : "0";
}

/* GrossPrice: the line's gross_price; for a line that is not taxable its unit_price (gross and
 * net are the same); a taxable line without gross_price is refused by validate, never sent a
 * made-up 0 (every update replaces the whole invoice). */
static const char *line_gross_price(const void *obj, const void *root, size_t index, char *buf,
                                    size_t len)
{
    const iw_line *l = obj;
    const iw_amount *a = l->gross_price.set    ? &l->gross_price
                         : !line_is_taxable(l) ? &l->unit_price
                                               : NULL;
    if (!a || !a->set)
        return NULL;
    iw_decimal_format(a->value, buf, len);
    return buf;
}

/* Taxable: the line's flag, else true when it carries a non-zero tax rate or tax amount. */
static const char *line_taxable(const void *obj, const void *root, size_t index, char *buf,
                                size_t len)
{
    const iw_line *l = obj;
    if (l->taxable != IW_FLAG_UNSET)
        return l->taxable == IW_FLAG_YES ? "true" : "false";
    bool taxed = (l->tax_rate.set && !iw_decimal_is_zero(l->tax_rate.value)) ||
                 (l->tax_amount.set && !iw_decimal_is_zero(l->tax_amount.value));
    return taxed ? "true" : "false";
}

/* ItemLineNumber: the line's line_no, else its 1-based position. */
static const char *line_number(const void *obj, const void *root, size_t index, char *buf,
                               size_t len)
{
    const iw_line *l = obj;
    if (l->line_no)
        return l->line_no;
    snprintf(buf, len, "%zu", index + 1);
    return buf;
}

/* The mapping tables read best one row per line. Macro arguments are member designators and
 * names, which cannot be parenthesised. */
/* clang-format off */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define STR(el, T, m) {.name = el, .kind = IW_SOAP_STR, .off = offsetof(T, m)}
/* A date in the instance's date_format: one row per form, the variant picks it. */
#define DATE(el, T, m) \
    {.name = el, .kind = IW_SOAP_MDY, .off = offsetof(T, m), .only = V_MDY}, \
    {.name = el, .kind = IW_SOAP_STR, .off = offsetof(T, m), .only = V_ISO}
#define AMT(el, T, m) {.name = el, .kind = IW_SOAP_AMOUNT, .off = offsetof(T, m)}
#define AMT_OR(el, T, m, d) {.name = el, .kind = IW_SOAP_AMOUNT, .off = offsetof(T, m), .dflt = d}
#define FLAG_OR(el, T, m, d) {.name = el, .kind = IW_SOAP_FLAG, .off = offsetof(T, m), .dflt = d}
#define CALL(el, fn) {.name = el, .kind = IW_SOAP_CALL, .get = fn}
#define CONST(el, text) {.name = el, .kind = IW_SOAP_CONST, .dflt = text}
#define NONE(el) {.name = el, .kind = IW_SOAP_NONE}
#define GROUP(el, T, m, tbl) {.name = el, .kind = IW_SOAP_GROUP, .off = offsetof(T, m), .sub = tbl}
#define SELF(el, tbl) {.name = el, .kind = IW_SOAP_GROUP, .off = 0, .sub = tbl}
#define LIST(el, T, m, cnt, E, tbl) \
    {.name = el, .kind = IW_SOAP_LIST, .off = offsetof(T, m), .count_off = offsetof(T, cnt), \
     .elem_size = sizeof(E), .sub = tbl}
#define END {.name = NULL}

/* Every element of the seed's sample is written; an unknown value is an empty element (the
 * same effect omission has at EBizCharge, but visible). Defaults for required fields are the
 * documented choices of ebiz_validate below. */

/* Per line. The model has no per-line custom fields, so ItemCustomFields (an optional object)
 * is never written. */
static const iw_soap_field item_fields[] = {
    NONE("ItemInternalId"),      /* EBizCharge's own line id; upstream never knows it */
    STR("ItemId", iw_line, sku), /* guess: the merchant's item code */
    STR("Name", iw_line, name),
    STR("Description", iw_line, description),
    AMT("UnitPrice", iw_line, unit_price),
    AMT("Qty", iw_line, quantity),
    CALL("Taxable", line_taxable),
    CALL("TaxRate", line_tax_rate), /* percent as given ("23"); guess */
    STR("UnitOfMeasure", iw_line, unit),
    AMT("TotalLineAmount", iw_line, line_total),
    AMT("TotalLineTax", iw_line, tax_amount),
    CALL("ItemLineNumber", line_number),
    CALL("GrossPrice", line_gross_price),
    CONST("WarrantyDiscount", "0"), /* no source in the model */
    AMT_OR("SalesDiscount", iw_line, discount_amount, "0"),
    STR("ItemClass", iw_line, line_type), /* guess */
    END,
};

static const iw_soap_field items_fields[] = {
    LIST("Item", iw_invoice, lines, n_lines, iw_line, item_fields),
    END,
};

/* Written only when the invoice has that address (unused objects must be left out). */
static const iw_soap_field address_fields[] = {
    STR("FirstName", iw_address, first_name),
    STR("LastName", iw_address, last_name),
    STR("CompanyName", iw_address, company),
    STR("Address1", iw_address, line1),
    STR("Address2", iw_address, line2), /* the model's line3 has no element here */
    STR("City", iw_address, city),
    STR("State", iw_address, state),
    STR("ZipCode", iw_address, postal_code),
    STR("Country", iw_address, country), /* ISO alpha-2 as given */
    FLAG_OR("IsDefault", iw_address, is_default, "false"),
    NONE("AddressId"), /* addresses have no id in the model */
    END,
};

/* The invoice's custom_fields, written only when there are some. */
static const iw_soap_field custom_field_fields[] = {
    NONE("FieldId"),
    STR("FieldCaption", iw_custom_field, name), /* guess: the name doubles as the label */
    STR("FieldName", iw_custom_field, name),
    STR("FieldValue", iw_custom_field, value),
    NONE("FieldType"),
    NONE("FieldDataType"),
    NONE("FieldDescription"),
    END,
};

static const iw_soap_field custom_fields_fields[] = {
    LIST("EbizCustomField", iw_invoice, custom_fields, n_custom_fields, iw_custom_field,
         custom_field_fields),
    END,
};

/* ebiz:invoice, in the seed's order. */
static const iw_soap_field invoice_fields[] = {
    NONE("MerchantId"), /* the merchant is the SecurityId's owner; nothing to send */
    STR("CustomerId", iw_invoice, customer.id),
    NONE("SubCustomerId"), /* no sub-customer in the model */
    STR("InvoiceNumber", iw_invoice, number),
    DATE("InvoiceDate", iw_invoice, issue_date), /* date_format, see V_MDY */
    STR("Currency", iw_invoice, currency),
    AMT("InvoiceAmount", iw_invoice, total),
    DATE("InvoiceDueDate", iw_invoice, due_date),
    AMT("AmountDue", iw_invoice, amount_due),
    STR("PoNum", iw_invoice, po_number),
    STR("SoNum", iw_invoice, so_number),
    STR("DivisionId", iw_invoice, refs.division_id),
    STR("TypeId", iw_invoice, type), /* guess */
    SELF("Items", items_fields),
    CONST("Software", "invoice-worker"), /* the software that sent the invoice */
    FLAG_OR("NotifyCustomer", iw_invoice, flags.notify_customer, "false"),
    NONE("EmailTemplateID"),
    NONE("InvoiceURL"),
    AMT("TotalTaxAmount", iw_invoice, tax_total),
    STR("InvoiceUniqueId", iw_invoice, id), /* upstream's id, unique per invoice */
    STR("InvoiceDescription", iw_invoice, description),
    GROUP("BillingAddress", iw_invoice, billing_address, address_fields),
    GROUP("ShippingAddress", iw_invoice, shipping_address, address_fields),
    STR("InvoiceCustomerMessage", iw_invoice, note_public),
    STR("InvoiceMemo", iw_invoice, note_internal), /* guess: the merchant-side memo */
    DATE("InvoiceShipDate", iw_invoice, ship_date),
    STR("InvoiceShipVia", iw_invoice, ship_via),
    STR("InvoiceTermsId", iw_invoice, terms_code),
    STR("InvoiceSalesRepId", iw_invoice, refs.sales_rep_id),
    FLAG_OR("InvoiceIsToBeEmailed", iw_invoice, flags.email_invoice, "false"),
    FLAG_OR("InvoiceIsToBePrinted", iw_invoice, flags.print_invoice, "false"),
    STR("DeliveryNumber", iw_invoice, refs.shipment_id), /* guess */
    AMT("TotalDiscountAmount", iw_invoice, discount_total),
    AMT("TotalShippingAmount", iw_invoice, shipping_total),
    STR("LocationId", iw_invoice, refs.location_id),
    DATE("PoDate", iw_invoice, po_date),
    STR("OrderedBy", iw_invoice, refs.user_name),   /* guess: who placed the order upstream */
    STR("InvoiceClass", iw_invoice, document_type), /* guess */
    STR("InvoiceFOB", iw_invoice, shipping_terms),  /* FOB is a shipping term (Incoterm) */
    STR("InvoiceTermsDescription", iw_invoice, terms_description),
    SELF("InvoiceCustomFields", custom_fields_fields),
    END,
};

/* The arguments after the invoice that identify which invoice to update. */
static const iw_soap_field update_args[] = {
    STR("customerId", iw_invoice, customer.id),
    NONE("subCustomerId"),
    STR("invoiceNumber", iw_invoice, number),
    STR("invoiceInternalId", iw_invoice, target_refs.ebiz_internal_id),
    END,
};

/* NOLINTEND(bugprone-macro-parentheses) */
/* clang-format on */

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
 * when not taxable), SalesDiscount (0: no discount), WarrantyDiscount (always 0: the model has
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
    if ((rc = iw_soap_request_init(out, tc->url, ec->soap_action, errbuf, errlen)))
        return rc;

    iw_xw x;
    iw_soap_open(&x, "soapenv", "ebiz", ec->namespace_uri, true);
    iw_xw_start(&x, "ebiz", "UpdateInvoice", NULL);
    if ((rc = write_token(&x, ec, out, errbuf, errlen)))
        goto fail;
    iw_soap_map map = {.prefix = "ebiz",
                       .root = &ev->invoice,
                       .absent = IW_SOAP_EMPTY,
                       .variant =
                           ec->date_format && strcmp(ec->date_format, "iso") == 0 ? V_ISO : V_MDY};
    iw_xw_start(&x, "ebiz", "invoice", NULL);
    if ((rc = iw_soap_write(&x, &map, invoice_fields, &ev->invoice, errbuf, errlen)))
        goto fail;
    iw_xw_end(&x); /* invoice */
    if ((rc = iw_soap_write(&x, &map, update_args, &ev->invoice, errbuf, errlen)))
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
    xmlNodePtr res = iw_xml_find(rep->body->children, "UpdateInvoiceResult");
    xmlNodePtr status = res ? iw_soap_child(res, "Status") : NULL;
    if (!status) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the envelope holds no UpdateInvoiceResult/Status; retrying, "
                       "an unreadable reply is never taken as success",
                       resp->status);
        return;
    }
    char st[32], sc[32], err[200], ec[48];
    iw_xml_text(status, st, sizeof(st));
    iw_xml_text(iw_soap_child(res, "StatusCode"), sc, sizeof(sc));
    iw_xml_text(iw_soap_child(res, "Error"), err, sizeof(err));
    iw_xml_text(iw_soap_child(res, "ErrorCode"), ec, sizeof(ec));
    if (strcasecmp(st, "Success") == 0 && strcmp(sc, "1") == 0) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, "1", "HTTP %ld, Status Success",
                       resp->status);
        iw_xml_text(iw_soap_child(res, "InvoiceInternalId"), out->target_ref,
                    sizeof(out->target_ref));
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
    IW_CONF_STR("namespace", IW_CONF_TEXT, iw_ebiz_conf, namespace_uri, EBIZ_NS, true),
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
