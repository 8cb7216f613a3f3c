/* ebizcharge.c: the EBizCharge UpdateInvoice contract (seed 003): WCF-style SOAP, element
 * order enforced, required fields, SecurityToken, Status/StatusCode/ErrorCode replies. */
#include <stdio.h>
#include <string.h>

#include "contract.h"
#include "state.h"

#define EBIZ_NS "http://eBizCharge.ServiceModel.SOAP"
#define EBIZ_ACTION "http://eBizCharge.ServiceModel.SOAP/IeBizService/UpdateInvoice"

/* Guess: the seed shows ErrorCode 3 for a missing invoice number; other codes are not
 * public. The simulator uses 2 for a field that is missing or malformed. */
#define ERR_INVALID_FIELD "2"
#define ERR_NO_INVOICE "3"

#define S(n)                                                                                       \
    {                                                                                              \
        n, IW_SIM_STR, 0, NULL, NULL                                                               \
    }
#define DATE(n)                                                                                    \
    {                                                                                              \
        n, IW_SIM_DATE, 0, NULL, NULL                                                              \
    }
#define RDEC(n)                                                                                    \
    {                                                                                              \
        n, IW_SIM_DEC, IW_SIM_REQ, NULL, NULL                                                      \
    }
#define RBOOL(n)                                                                                   \
    {                                                                                              \
        n, IW_SIM_BOOL, IW_SIM_REQ, NULL, NULL                                                     \
    }

static const iw_sim_field custom_f[] = {S("FieldId"),         S("FieldCaption"), S("FieldName"),
                                        S("FieldValue"),      S("FieldType"),    S("FieldDataType"),
                                        S("FieldDescription")};
static const iw_sim_schema custom = IW_SIM_SCHEMA(custom_f, true);

static const iw_sim_field item_f[] = {
    S("ItemInternalId"),
    S("ItemId"),
    S("Name"),
    S("Description"),
    RDEC("UnitPrice"),
    RDEC("Qty"),
    RBOOL("Taxable"),
    RDEC("TaxRate"),
    S("UnitOfMeasure"),
    RDEC("TotalLineAmount"),
    RDEC("TotalLineTax"),
    {"ItemLineNumber", IW_SIM_INT, IW_SIM_REQ, NULL, NULL},
    RDEC("GrossPrice"),
    RDEC("WarrantyDiscount"),
    RDEC("SalesDiscount"),
    S("ItemClass"),
    {"ItemCustomFields", IW_SIM_ARR, 0, &custom, "EbizCustomField"}};
static const iw_sim_schema item = IW_SIM_SCHEMA(item_f, true);

static const iw_sim_field address_f[] = {
    S("FirstName"), S("LastName"), S("CompanyName"), S("Address1"),      S("Address2"), S("City"),
    S("State"),     S("ZipCode"),  S("Country"),     RBOOL("IsDefault"), S("AddressId")};
static const iw_sim_schema address = IW_SIM_SCHEMA(address_f, true);

static const iw_sim_field invoice_f[] = {
    S("MerchantId"),
    S("CustomerId"),
    S("SubCustomerId"),
    S("InvoiceNumber"),
    DATE("InvoiceDate"),
    S("Currency"),
    RDEC("InvoiceAmount"),
    DATE("InvoiceDueDate"),
    RDEC("AmountDue"),
    S("PoNum"),
    S("SoNum"),
    S("DivisionId"),
    S("TypeId"),
    {"Items", IW_SIM_ARR, 0, &item, "Item"},
    S("Software"),
    RBOOL("NotifyCustomer"),
    S("EmailTemplateID"),
    S("InvoiceURL"),
    RDEC("TotalTaxAmount"),
    S("InvoiceUniqueId"),
    S("InvoiceDescription"),
    {"BillingAddress", IW_SIM_OBJ, 0, &address, NULL},
    {"ShippingAddress", IW_SIM_OBJ, 0, &address, NULL},
    S("InvoiceCustomerMessage"),
    S("InvoiceMemo"),
    DATE("InvoiceShipDate"),
    S("InvoiceShipVia"),
    S("InvoiceTermsId"),
    S("InvoiceSalesRepId"),
    RBOOL("InvoiceIsToBeEmailed"),
    RBOOL("InvoiceIsToBePrinted"),
    S("DeliveryNumber"),
    RDEC("TotalDiscountAmount"),
    RDEC("TotalShippingAmount"),
    S("LocationId"),
    DATE("PoDate"),
    S("OrderedBy"),
    S("InvoiceClass"),
    S("InvoiceFOB"),
    S("InvoiceTermsDescription"),
    {"InvoiceCustomFields", IW_SIM_ARR, 0, &custom, "EbizCustomField"}};
static const iw_sim_schema invoice = IW_SIM_SCHEMA(invoice_f, true);

static const iw_sim_field token_f[] = {
    {"SecurityId", IW_SIM_STR, IW_SIM_REQ, NULL, NULL}, S("UserId"), S("Password")};
static const iw_sim_schema token = IW_SIM_SCHEMA(token_f, true);

static const iw_sim_field op_f[] = {{"securityToken", IW_SIM_OBJ, IW_SIM_REQ, &token, NULL},
                                    {"invoice", IW_SIM_OBJ, IW_SIM_REQ, &invoice, NULL},
                                    S("customerId"),
                                    S("subCustomerId"),
                                    S("invoiceNumber"),
                                    S("invoiceInternalId")};
static const iw_sim_schema op = IW_SIM_SCHEMA(op_f, true);

/* What the state keeps of each invoice. */
static const char *const kept[] = {"CustomerId",
                                   "InvoiceNumber",
                                   "InvoiceDate",
                                   "InvoiceDueDate",
                                   "Currency",
                                   "InvoiceAmount",
                                   "AmountDue",
                                   "TotalTaxAmount",
                                   "TotalDiscountAmount",
                                   "TotalShippingAmount",
                                   "NotifyCustomer",
                                   "InvoiceIsToBeEmailed",
                                   "InvoiceIsToBePrinted",
                                   NULL};

/* The UpdateInvoiceResponse envelope; internal_id NULL on errors. */
static void reply_result(iw_sim_reply *rp, const char *internal_id, const char *status,
                         const char *code, const char *error, const char *error_code)
{
    iw_xmlw x;
    iw_xmlw_open(&x, false);
    iw_xmlw_start(&x, "s", "Envelope", "http://schemas.xmlsoap.org/soap/envelope/");
    iw_xmlw_start(&x, "s", "Body", NULL);
    iw_xmlw_attr(&x, "xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance");
    iw_xmlw_attr(&x, "xmlns:xsd", "http://www.w3.org/2001/XMLSchema");
    iw_xmlw_start(&x, NULL, "UpdateInvoiceResponse", NULL);
    iw_xmlw_attr(&x, "xmlns", EBIZ_NS);
    iw_xmlw_start(&x, NULL, "UpdateInvoiceResult", NULL);
    iw_xmlw_text(&x, NULL, "InvoiceInternalId", internal_id);
    iw_xmlw_text(&x, NULL, "Status", status);
    iw_xmlw_text(&x, NULL, "StatusCode", code);
    iw_xmlw_text_or_empty(&x, NULL, "Error", error && *error ? error : NULL);
    iw_xmlw_text(&x, NULL, "ErrorCode", error_code);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, 200, "text/xml; charset=utf-8", &x);
}

/* POST SOAP 1.1 UpdateInvoice. */
static void handle(const iw_sim_request *rq, iw_sim_reply *rp)
{
    xmlDocPtr doc;
    xmlNodePtr opn =
        iw_sim_soap_operation(rq, EBIZ_NS, "UpdateInvoice", EBIZ_ACTION, IW_SIM_SOAP_WCF, &doc, rp);
    if (!opn)
        return;
    char sid[IW_SIM_SECRET_LEN + 8];
    iw_sim_xml_child_text(iw_sim_xml_child(opn, "securityToken"), "SecurityId", sid, sizeof(sid));
    if (strcmp(sid, iw_sim_cred(rq->creds, "security_id")) != 0) {
        iw_sim_contract_auth_failure(rq->conf, rq->target, rp);
        goto out;
    }
    if (rq->validate) {
        iw_sim_errors errs = {0};
        const char *forms = iw_sim_cred(rq->creds, "dates");
        iw_sim_vctx v = {EBIZ_NS,
                         strcmp(forms, "mdy") == 0   ? IW_SIM_DATE_MDY
                         : strcmp(forms, "iso") == 0 ? IW_SIM_DATE_YMD_OR_EMPTY
                                                     : IW_SIM_DATE_YMD_OR_MDY,
                         NULL, &errs};
        iw_sim_check_xml(&v, opn, &op, "UpdateInvoice");
        if (errs.total) {
            char msg[1024];
            iw_sim_errors_join(&errs, msg, sizeof(msg));
            reply_result(rp, NULL, "Error", "0", msg, ERR_INVALID_FIELD);
            goto out;
        }
    }
    xmlNodePtr inv = iw_sim_xml_child(opn, "invoice");
    char given[128], number[256];
    iw_sim_xml_child_text(opn, "invoiceInternalId", given, sizeof(given));
    if (!*iw_sim_xml_child_text(opn, "invoiceNumber", number, sizeof(number)))
        iw_sim_xml_child_text(inv, "InvoiceNumber", number, sizeof(number));
    const char *key = *number ? number : given;
    if (!*key) {
        reply_result(rp, NULL, "Error", "0",
                     "Update Record error The parameterized query expects the parameter "
                     "'@prmInvoiceNumber', which was not supplied.",
                     ERR_NO_INVOICE);
        goto out;
    }
    cJSON *values = iw_sim_values_xml(inv, kept);
    cJSON_AddNumberToObject(values, "items",
                            iw_sim_xml_count(iw_sim_xml_child(inv, "Items"), "Item"));
    char internal[64];
    iw_sim_state_accept(rq->target, key, values, rq, given, internal, sizeof(internal));
    reply_result(rp, internal, "Success", "1", NULL, "0");
out:
    xmlFreeDoc(doc);
}

/* 200 Status Error with msg. */
static void refusal(const char *msg, iw_sim_reply *rp)
{
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, "s", "Envelope", "http://schemas.xmlsoap.org/soap/envelope/");
    iw_xmlw_start(&x, "s", "Body", NULL);
    iw_xmlw_start(&x, NULL, "UpdateInvoiceResponse", "http://eBizCharge.ServiceModel.SOAP");
    iw_xmlw_start(&x, NULL, "UpdateInvoiceResult", NULL);
    iw_xmlw_text(&x, NULL, "Status", "Error");
    iw_xmlw_text(&x, NULL, "StatusCode", "0");
    iw_xmlw_text(&x, NULL, "Error", msg);
    iw_xmlw_text(&x, NULL, "ErrorCode", "3");
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, 200, "text/xml; charset=utf-8", &x);
}

static void server_fault(const char *msg, iw_sim_reply *rp)
{
    iw_sim_reply_soap_fault(rp, IW_SIM_SOAP_WCF, "Server", msg);
}

static void auth_failure(const iw_sim_creds *k, iw_sim_reply *rp)
{
    iw_sim_soap_auth_failure(k, IW_SIM_SOAP_WCF, rp);
}

static const char *const date_forms[] = {"any", "mdy", "iso", NULL};

const iw_sim_route iw_sim_route_ebizcharge = {
    .name = "ebizcharge",
    .about = "EBizCharge SOAP UpdateInvoice (SecurityId in the body)",
    .content_type = "text/xml; charset=utf-8",
    .paths = {{.suffix = "/eBizService.svc", .method = "POST", .handle = handle}},
    .auth_failure = auth_failure,
    .server_fault = server_fault,
    .refusal = refusal,
    .settings = {{.key = "security_id", .value = "sim-security-id"},
                 /* seed 003 shows no refused login: a wsse:FailedAuthentication fault is a
                  * reading a WCF service might give, coded rather than worded; the config
                  * acts out the others */
                 IW_SIM_SOAP_AUTH_SETTING("wsse"),
                 /* date forms accepted: either (the seed shows both), MM/DD/YYYY or ISO */
                 {"dates", "any", date_forms, "one of any, mdy, iso"}},
};
