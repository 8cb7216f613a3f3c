/* invoicexpress.c: the InvoiceXpress invoices.update contract (seed 004): PUT
 * /invoices/{id}.xml?api_key=, the seed's rules and its <errors> wording, settled invoices. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "contract.h"
#include "state.h"

#define S(n)                                                                                       \
    {                                                                                              \
        n, IW_SIM_STR, 0, NULL, NULL                                                               \
    }

static const iw_sim_field tax_f[] = {S("name"), S("value")};
static const iw_sim_schema tax = IW_SIM_SCHEMA(tax_f, false);

static const iw_sim_field item_f[] = {S("name"),       S("description"),
                                      S("unit_price"), S("quantity"),
                                      S("unit"),       {"tax", IW_SIM_OBJ, 0, &tax, NULL},
                                      S("discount")};
static const iw_sim_schema item = IW_SIM_SCHEMA(item_f, false);

static const iw_sim_field client_f[] = {
    S("name"),    S("code"),      S("email"),   S("address"), S("city"), S("postal_code"),
    S("country"), S("fiscal_id"), S("website"), S("phone"),   S("fax"),  S("observations")};
static const iw_sim_schema client = IW_SIM_SCHEMA(client_f, false);

/* Seed fields, plus the few invoice fields the public API documents beside them. Values are
 * checked by the rules below, with the API's own messages. */
static const iw_sim_field invoice_f[] = {S("date"),
                                         S("due_date"),
                                         S("reference"),
                                         S("observations"),
                                         S("retention"),
                                         S("tax_exemption"),
                                         S("sequence_id"),
                                         S("currency_code"),
                                         S("rate"),
                                         {"client", IW_SIM_OBJ, 0, &client, NULL},
                                         {"items", IW_SIM_ARR, 0, &item, "item"}};
static const iw_sim_schema invoice = IW_SIM_SCHEMA(invoice_f, false);

static void reply_errors(iw_sim_reply *rp, int status, const iw_sim_errors *errs,
                         const char *single)
{
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, NULL, "errors", NULL);
    if (single)
        iw_xmlw_text(&x, NULL, "error", single);
    for (int i = 0; errs && i < errs->n; i++)
        iw_xmlw_text(&x, NULL, "error", errs->msg[i]);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, status, "application/xml; charset=utf-8", &x);
}

static void check_dates(xmlNodePtr root, iw_sim_errors *e)
{
    char date[64], due[64];
    long d1 = 0, d2 = 0;
    iw_sim_xml_child_text(root, "date", date, sizeof(date));
    iw_sim_xml_child_text(root, "due_date", due, sizeof(due));
    bool ok1 = *date && iw_sim_is_dmy(date, &d1);
    bool ok2 = *due && iw_sim_is_dmy(due, &d2);
    if (*date && !ok1)
        iw_sim_err(e, "Date %.40s is not a valid date (the format should be dd/mm/yyyy)", date);
    if (*due && !ok2)
        iw_sim_err(e, "Due date %.40s is not a valid date (the format should be dd/mm/yyyy)", due);
    if (ok1 && ok2 && d2 < d1)
        iw_sim_err(e, "Due date must be after or equal to the date");
}

static void check_client(const iw_sim_conf *c, xmlNodePtr cl, iw_sim_errors *e)
{
    char v[256];
    if (!cl) {
        iw_sim_err(e, "Client is invalid");
        iw_sim_err(e, "client name is required");
        return;
    }
    if (!*iw_sim_xml_child_text(cl, "name", v, sizeof(v))) {
        iw_sim_err(e, "Client is invalid");
        iw_sim_err(e, "client name is required");
    }
    if (*iw_sim_xml_child_text(cl, "email", v, sizeof(v)) && !iw_sim_is_email(v))
        iw_sim_err(e, "email must be an email address");
    if (*iw_sim_xml_child_text(cl, "country", v, sizeof(v)) && !iw_sim_conf_country_ok(c, v))
        iw_sim_err(e, "Country %.60s was not found", v);
}

static void check_item(const iw_sim_conf *c, xmlNodePtr it, int k, iw_sim_errors *e)
{
    char v[256];
    if (!*iw_sim_xml_child_text(it, "name", v, sizeof(v)))
        iw_sim_err(e, "item %d: name is required", k);
    char *num = iw_sim_xml_value(iw_sim_xml_child(it, "unit_price")); /* whole, never cut */
    if (!iw_sim_is_decimal(num))
        iw_sim_err(e, "unit_price must be a number (item %d)", k);
    else if (iw_sim_dec_sign(num) <= 0)
        iw_sim_err(e, "unit_price must be a number greater than 0 (item %d)", k);
    free(num);
    num = iw_sim_xml_value(iw_sim_xml_child(it, "quantity"));
    if (!iw_sim_is_decimal(num) || iw_sim_dec_sign(num) <= 0)
        iw_sim_err(e, "quantity must be a number greater than 0 (item %d)", k);
    free(num);
    if (!*iw_sim_xml_child_text(it, "unit", v, sizeof(v)))
        iw_sim_err(e, "Unit is not included in the list of accepted units (item %d)", k);
    else if (!iw_sim_conf_unit_ok(c, v))
        iw_sim_err(e, "Unit %.40s is not included in the list of accepted units", v);
    num = iw_sim_xml_value(iw_sim_xml_child(it, "discount"));
    if (num && *num) {
        if (!iw_sim_is_decimal(num))
            iw_sim_err(e, "discount is not a number (item %d)", k);
        else if (iw_sim_dec_sign(num) < 0)
            iw_sim_err(e, "discount must be greater than or equal to 0 (item %d)", k);
    }
    free(num);
}

static void check_rules(const iw_sim_conf *c, xmlNodePtr root, iw_sim_errors *e)
{
    check_dates(root, e);
    char *ret = iw_sim_xml_value(iw_sim_xml_child(root, "retention"));
    if (ret && *ret &&
        (!iw_sim_is_decimal(ret) || iw_sim_dec_sign(ret) < 0 || iw_sim_dec_cmp(ret, "99.99") > 0))
        iw_sim_err(e, "Retention must be a number between 0 and 99.99");
    free(ret);
    check_client(c, iw_sim_xml_child(root, "client"), e);
    /* seed 004 line 27: <items type="array">, without which a Rails XML params parser reads
     * one <item> as a hash, not a list of items */
    xmlNodePtr items = iw_sim_xml_child(root, "items");
    xmlChar *type = items ? xmlGetProp(items, (const xmlChar *)"type") : NULL;
    if (items && (!type || strcmp((const char *)type, "array") != 0))
        iw_sim_err(e, "Invoice items is invalid: <items> must have type=\"array\"");
    xmlFree(type);
    int k = 0;
    for (xmlNodePtr it = iw_sim_xml_first(iw_sim_xml_child(root, "items")); it; it = it->next) {
        if (it->type == XML_ELEMENT_NODE && strcmp((const char *)it->name, "item") == 0)
            check_item(c, it, ++k, e);
    }
    if (k == 0) {
        iw_sim_err(e, "Invoice items is invalid");
        iw_sim_err(e, "At least one item is required");
    }
}

static cJSON *values(xmlNodePtr root, const char *id)
{
    static const char *const kept[] = {"date", "due_date", "reference", "retention", NULL};
    cJSON *v = iw_sim_values_xml(root, kept);
    char buf[256];
    cJSON_AddStringToObject(v, "id", id);
    xmlNodePtr cl = iw_sim_xml_child(root, "client");
    cJSON_AddStringToObject(v, "client_name", iw_sim_xml_child_text(cl, "name", buf, sizeof(buf)));
    cJSON_AddStringToObject(v, "client_country",
                            iw_sim_xml_child_text(cl, "country", buf, sizeof(buf)));
    xmlNodePtr items = iw_sim_xml_child(root, "items");
    cJSON_AddNumberToObject(v, "items", iw_sim_xml_count(items, "item"));
    cJSON *names = cJSON_AddArrayToObject(v, "item_names");
    for (xmlNodePtr it = iw_sim_xml_first(items); it; it = it->next)
        if (it->type == XML_ELEMENT_NODE)
            cJSON_AddItemToArray(
                names, cJSON_CreateString(iw_sim_xml_child_text(it, "name", buf, sizeof(buf))));
    return v;
}

/* 200 with the invoice as stored: the request's document with id and status in front. */
static void reply_invoice(xmlDocPtr doc, const char *id, iw_sim_reply *rp)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlNodePtr first = root->children;
    xmlNodePtr idn = xmlNewDocRawNode(doc, NULL, BAD_CAST "id", NULL);
    xmlNodePtr st = xmlNewDocRawNode(doc, NULL, BAD_CAST "status", NULL);
    if (idn && st) {
        xmlNodeAddContent(idn, BAD_CAST id);
        xmlNodeAddContent(st, BAD_CAST "draft");
        if (first) {
            xmlAddPrevSibling(first, idn);
            xmlAddNextSibling(idn, st);
        } else {
            xmlAddChild(root, idn);
            xmlAddChild(root, st);
        }
    } else {
        xmlFreeNode(idn);
        xmlFreeNode(st);
    }
    xmlChar *out = NULL;
    int len = 0;
    xmlDocDumpMemoryEnc(doc, &out, &len, "UTF-8");
    if (!out) {
        reply_errors(rp, 500, NULL, "out of memory");
        return;
    }
    iw_sim_reply_set(rp, 200, "application/xml; charset=utf-8", (const char *)out, (size_t)len);
    xmlFree(out);
}

/* PUT /invoices/{id}.xml?api_key= (the id in rq->arg). */
static void handle(const iw_sim_request *rq, iw_sim_reply *rp)
{
    const iw_sim_conf *c = rq->conf;
    const char *invoice_id = rq->arg;
    const char *api_key = iw_sim_req_query(rq, "api_key");
    if (!api_key || strcmp(api_key, iw_sim_cred(rq->creds, "api_key")) != 0) {
        iw_sim_contract_auth_failure(rq->conf, rq->target, rp);
        return;
    }
    if (!iw_sim_is_int(invoice_id) || invoice_id[0] == '-') {
        reply_errors(rp, 404, NULL, "The :invoice-id supplied doesn't match any existing invoice.");
        return;
    }
    /* Guess: a body that is not XML gets 406 (DESIGN lists 406 among the API's refusals). */
    if (rq->validate &&
        (!rq->content_type || (strncasecmp(rq->content_type, "application/xml", 15) != 0 &&
                               strncasecmp(rq->content_type, "text/xml", 8) != 0))) {
        reply_errors(rp, 406, NULL, "Content-Type must be application/xml");
        return;
    }
    if (iw_sim_state_settled(rq->target, invoice_id)) {
        reply_errors(rp, 422, NULL, "Invoice has been settled so cant be changed anymore.");
        return;
    }
    char err[256];
    xmlDocPtr doc = iw_sim_xml_parse(rq->body, rq->body_len, err, sizeof(err));
    if (!doc) {
        char msg[320];
        snprintf(msg, sizeof(msg), "Invoice is invalid: %s", err);
        reply_errors(rp, 422, NULL, msg);
        return;
    }
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (strcmp((const char *)root->name, "invoice") != 0 || *iw_sim_xml_ns(root)) {
        reply_errors(rp, 422, NULL, "Invoice is invalid: the root element must be <invoice>");
        xmlFreeDoc(doc);
        return;
    }
    if (rq->validate) {
        iw_sim_errors errs = {0};
        iw_sim_vctx v = {NULL, IW_SIM_DATE_DMY, NULL, &errs};
        iw_sim_check_xml(&v, root, &invoice, "invoice");
        check_rules(c, root, &errs);
        if (errs.total) {
            reply_errors(rp, 422, &errs, NULL);
            xmlFreeDoc(doc);
            return;
        }
    }
    iw_sim_state_accept(rq->target, invoice_id, values(root, invoice_id), rq, NULL, NULL, 0);
    reply_invoice(doc, invoice_id, rp);
    xmlFreeDoc(doc);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A path whose last "/invoices/" is followed by "{id}.xml" (no further '/'); the id into arg. */
static bool match(const char *path, char *arg, size_t arglen)
{
    const char *inv = NULL;
    for (const char *p = strstr(path, "/invoices/"); p; p = strstr(p + 1, "/invoices/"))
        inv = p;
    if (!inv)
        return false;
    const char *name = inv + strlen("/invoices/");
    size_t n = strlen(name);
    if (n > 4 && !strchr(name, '/') && ends_with(name, ".xml") && n - 4 < arglen) {
        memcpy(arg, name, n - 4);
        arg[n - 4] = '\0';
        return true;
    }
    return false;
}

static void auth_failure(const iw_sim_creds *k, iw_sim_reply *rp)
{
    reply_errors(rp, 401, NULL, "The API Key parameter is missing or is incorrectly entered.");
}

static void server_fault(const char *msg, iw_sim_reply *rp)
{
    reply_errors(rp, 500, NULL, msg);
}

/* 422 <errors> with msg. */
static void refusal(const char *msg, iw_sim_reply *rp)
{
    reply_errors(rp, 422, NULL, msg);
}

const iw_sim_route iw_sim_route_invoicexpress = {
    .name = "invoicexpress",
    .about = "InvoiceXpress PUT /invoices/{id}.xml?api_key=",
    .content_type = "application/xml; charset=utf-8",
    .paths = {{.match = match, .method = "PUT", .handle = handle}},
    .auth_failure = auth_failure,
    .server_fault = server_fault,
    .refusal = refusal,
    .settings = {{.key = "api_key", .value = "sim-api-key"}},
};
