/* centra.c: the Centra SOAP invoices_Update contract (seed 000) and its navision twin (seed
 * 001): element tables in seed order, login or Basic auth, <ns1:result/> / OK replies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contract.h"
#include "state.h"

#define CENTRA_NS "http://www.centra.com/webservices/"
#define NAVISION_NS "http://www.silkvms.com/webservices/"
#define CENTRA_ACTION "http://www.centra.com/webservices/Invoices_Update"
#define NAVISION_ACTION "http://www.silkvms.com/webservices/Invoices_Update"
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define S(n)                                                                                       \
    {                                                                                              \
        n, IW_SIM_STR, 0, NULL, NULL                                                               \
    }
#define DEC(n)                                                                                     \
    {                                                                                              \
        n, IW_SIM_DEC, 0, NULL, NULL                                                               \
    }
#define DATE(n)                                                                                    \
    {                                                                                              \
        n, IW_SIM_DATE, 0, NULL, NULL                                                              \
    }
#define OBJ(n, sub)                                                                                \
    {                                                                                              \
        n, IW_SIM_OBJ, 0, sub, NULL                                                                \
    }

static const iw_sim_field idd_f[] = {S("id"), S("description")};
static const iw_sim_schema idd = IW_SIM_SCHEMA(idd_f, true);

/* Seed 000's address; seed 001 (navision) has the same without the last one, ecvatno. */
static const iw_sim_field addr_f[] = {S("id"),       S("description"), S("company"),
                                      S("attn"),     S("firstname"),   S("lastname"),
                                      S("address1"), S("address2"),    S("city"),
                                      S("state"),    S("zipcode"),     S("country"),
                                      S("email"),    S("telephone"),   S("fax"),
                                      S("vat"),      S("url"),         S("companyregistrationid"),
                                      S("ecvatno")};
static const iw_sim_schema addr_soap = {addr_f, COUNT(addr_f), true};
static const iw_sim_schema addr_nav = {addr_f, COUNT(addr_f) - 1, true};

static const iw_sim_field item_f[] = {S("itemid"),
                                      DEC("qty"),
                                      DEC("price"),
                                      DEC("tax"),
                                      DEC("subtotal"),
                                      S("description"),
                                      OBJ("product", &idd),
                                      OBJ("variation", &idd),
                                      OBJ("size", &idd),
                                      DEC("discount"),
                                      S("sku")};
static const iw_sim_schema item = IW_SIM_SCHEMA(item_f, true);

static const iw_sim_field additional_f[] = {DEC("subtotal"), S("description"), S("key"), S("id")};
static const iw_sim_schema additional = IW_SIM_SCHEMA(additional_f, true);

/* Items hold invoiceitem and additional entries, each repeatable; their mix is free. */
static const iw_sim_field items_f[] = {{"invoiceitem", IW_SIM_OBJ, IW_SIM_REP, &item, NULL},
                                       {"additional", IW_SIM_OBJ, IW_SIM_REP, &additional, NULL}};
static const iw_sim_schema items = IW_SIM_SCHEMA(items_f, false);

#define INVOICE_FIELDS(addr)                                                                       \
    {                                                                                              \
        {"id", IW_SIM_STR, IW_SIM_REQ, NULL, NULL}, S("store"), S("status"), S("serialno"),        \
            S("documenttype"), S("type"), S("currency"), DEC("currencyrate"), S("basecurrency"),   \
            DEC("total"), DEC("vat"), DEC("totalpaid"), DATE("invoicedate"), DATE("orderdate"),    \
            DATE("duedate"), OBJ("buyer", &idd), OBJ("account", &idd), OBJ("order", &idd),         \
            OBJ("shipment", &idd), OBJ("refund", &idd), S("paymentterms"), S("shippingterms"),     \
            S("internalinformation"), S("ponumber"), OBJ("billingaddress", addr),                  \
            OBJ("shippingaddress", addr), OBJ("items", &items),                                    \
            {"locked", IW_SIM_BOOL, 0, NULL, NULL},                                                \
    }

static const iw_sim_field invoice_soap_f[] = INVOICE_FIELDS(&addr_soap);
static const iw_sim_schema invoice_soap = IW_SIM_SCHEMA(invoice_soap_f, true);
static const iw_sim_field invoice_nav_f[] = INVOICE_FIELDS(&addr_nav);
static const iw_sim_schema invoice_nav = IW_SIM_SCHEMA(invoice_nav_f, true);

static const iw_sim_field login_f[] = {{"username", IW_SIM_STR, IW_SIM_REQ, NULL, NULL},
                                       {"password", IW_SIM_STR, IW_SIM_REQ, NULL, NULL}};
static const iw_sim_schema login = IW_SIM_SCHEMA(login_f, true);

static const iw_sim_field op_soap_f[] = {
    {"login", IW_SIM_OBJ, IW_SIM_REQ, &login, NULL},
    {"invoices", IW_SIM_ARR, IW_SIM_REQ, &invoice_soap, "invoice"}};
static const iw_sim_schema op_soap = IW_SIM_SCHEMA(op_soap_f, true);

static const iw_sim_field op_nav_f[] = {
    {"invoices", IW_SIM_ARR, IW_SIM_REQ, &invoice_nav, "invoice"}};
static const iw_sim_schema op_nav = IW_SIM_SCHEMA(op_nav_f, true);

/* What the state keeps of each invoice. */
static const char *const kept[] = {"id",        "status",      "currency", "total",    "vat",
                                   "totalpaid", "invoicedate", "duedate",  "ponumber", NULL};

static bool login_ok(xmlNodePtr opn, const iw_sim_creds *k)
{
    char user[256], pass[256];
    xmlNodePtr l = iw_sim_xml_child(opn, "login");
    if (!l)
        return false;
    iw_sim_xml_child_text(l, "username", user, sizeof(user));
    iw_sim_xml_child_text(l, "password", pass, sizeof(pass));
    return strcmp(user, iw_sim_cred(k, "username")) == 0 &&
           strcmp(pass, iw_sim_cred(k, "password")) == 0;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes standard base64 into out (NUL-terminated); -1 on bad input or overflow. */
static int b64decode(const char *in, char *out, size_t len)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val((unsigned char)*in);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= len)
                return -1;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return 0;
}

static bool basic_ok(const iw_sim_request *rq, const iw_sim_creds *k)
{
    for (int i = 0; i < rq->n_authorization; i++) {
        const char *a = rq->authorization[i];
        if (strncasecmp(a, "Basic ", 6) != 0)
            continue;
        char dec[512], want[2 * IW_SIM_SECRET_LEN + 2];
        if (b64decode(a + 6, dec, sizeof(dec)) != 0)
            continue;
        snprintf(want, sizeof(want), "%s:%s", iw_sim_cred(k, "username"),
                 iw_sim_cred(k, "password"));
        if (strcmp(dec, want) == 0)
            return true;
    }
    return false;
}

static void reply_ok(bool soap, iw_sim_reply *rp)
{
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, "SOAP-ENV", "Envelope", "http://schemas.xmlsoap.org/soap/envelope/");
    if (soap)
        iw_xmlw_attr(&x, "xmlns:ns1", CENTRA_NS);
    iw_xmlw_start(&x, "SOAP-ENV", "Body", NULL);
    if (soap) {
        iw_xmlw_start(&x, "ns1", "result", NULL);
        iw_xmlw_end(&x);
    } else {
        iw_xmlw_text(&x, NULL, "invoicesUpdateResponse", "OK");
    }
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, 200, "text/xml; charset=utf-8", &x);
}

/* Records every invoice of the request; returns how many had an id. */
static int record(int t, xmlNodePtr opn, const iw_sim_request *rq)
{
    int n = 0;
    char id[256];
    for (xmlNodePtr inv = iw_sim_xml_first(iw_sim_xml_child(opn, "invoices")); inv;
         inv = inv->next) {
        if (inv->type != XML_ELEMENT_NODE || strcmp((const char *)inv->name, "invoice") != 0)
            continue;
        if (!*iw_sim_xml_child_text(inv, "id", id, sizeof(id)))
            continue;
        cJSON *v = iw_sim_values_xml(inv, kept);
        xmlNodePtr its = iw_sim_xml_child(inv, "items");
        cJSON_AddNumberToObject(v, "items", iw_sim_xml_count(its, "invoiceitem"));
        cJSON_AddNumberToObject(v, "additional", iw_sim_xml_count(its, "additional"));
        iw_sim_state_accept(t, id, v, rq, NULL, NULL, 0);
        n++;
    }
    return n;
}

/* POST SOAP 1.1 invoices_Update, to centra_soap (soap) or to the navision endpoint. */
static void handle(bool soap, const iw_sim_request *rq, iw_sim_reply *rp)
{
    int t = rq->target;
    const iw_sim_creds *k = rq->creds;
    if (!soap && strcmp(iw_sim_cred(k, "auth"), "basic") == 0 && !basic_ok(rq, k)) {
        iw_sim_contract_auth_failure(rq->conf, t, rp);
        return;
    }
    xmlDocPtr doc;
    xmlNodePtr opn =
        iw_sim_soap_operation(rq, soap ? CENTRA_NS : NAVISION_NS, "invoices_Update",
                              soap ? CENTRA_ACTION : NAVISION_ACTION, IW_SIM_SOAP_CENTRA, &doc, rp);
    if (!opn)
        return;
    if (soap && !login_ok(opn, k)) {
        iw_sim_contract_auth_failure(rq->conf, t, rp);
        xmlFreeDoc(doc);
        return;
    }
    if (rq->validate) {
        iw_sim_errors errs = {0};
        iw_sim_vctx v = {soap ? CENTRA_NS : NAVISION_NS, IW_SIM_DATE_YMD_OR_EMPTY, NULL, &errs};
        iw_sim_check_xml(&v, opn, soap ? &op_soap : &op_nav, "invoices_Update");
        if (errs.total) {
            char msg[1024];
            iw_sim_errors_join(&errs, msg, sizeof(msg));
            iw_sim_reply_soap_fault(rp, IW_SIM_SOAP_CENTRA, "Client", msg);
            xmlFreeDoc(doc);
            return;
        }
    }
    if (record(t, opn, rq) == 0)
        iw_sim_reply_soap_fault(rp, IW_SIM_SOAP_CENTRA, "Client",
                                "invoices_Update/invoices: no invoice with an id");
    else
        reply_ok(soap, rp);
    xmlFreeDoc(doc);
}

static void handle_soap(const iw_sim_request *rq, iw_sim_reply *rp)
{
    handle(true, rq, rp);
}

static void handle_navision(const iw_sim_request *rq, iw_sim_reply *rp)
{
    handle(false, rq, rp);
}

/* The refusal of an invoice, with msg: centra_soap 200 <ns1:result> with success=false and
 * errors/message (the shape is not in seed 000: a reading), navision 200 with msg in place of
 * OK. */
static void refusal(bool soap, const char *msg, iw_sim_reply *rp)
{
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, "SOAP-ENV", "Envelope", "http://schemas.xmlsoap.org/soap/envelope/");
    if (soap)
        iw_xmlw_attr(&x, "xmlns:ns1", CENTRA_NS);
    iw_xmlw_start(&x, "SOAP-ENV", "Body", NULL);
    if (soap) {
        iw_xmlw_start(&x, "ns1", "result", NULL);
        iw_xmlw_text(&x, "ns1", "success", "false");
        iw_xmlw_start(&x, "ns1", "errors", NULL);
        iw_xmlw_text(&x, "ns1", "message", msg);
        iw_xmlw_end(&x);
        iw_xmlw_end(&x);
    } else {
        iw_xmlw_text(&x, NULL, "invoicesUpdateResponse", msg);
    }
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, 200, "text/xml; charset=utf-8", &x);
}

static void refusal_soap(const char *msg, iw_sim_reply *rp)
{
    refusal(true, msg, rp);
}

static void refusal_navision(const char *msg, iw_sim_reply *rp)
{
    refusal(false, msg, rp);
}

static void server_fault(const char *msg, iw_sim_reply *rp)
{
    iw_sim_reply_soap_fault(rp, IW_SIM_SOAP_CENTRA, "Server", msg);
}

static void auth_failure_soap(const iw_sim_creds *k, iw_sim_reply *rp)
{
    iw_sim_soap_auth_failure(k, IW_SIM_SOAP_CENTRA, rp);
}

/* navision: HTTP Basic refused. */
static void auth_failure_navision(const iw_sim_creds *k, iw_sim_reply *rp)
{
    static const char page[] = "401 Unauthorized\n";
    iw_sim_reply_set(rp, 401, "text/plain; charset=utf-8", page, sizeof(page) - 1);
    iw_sim_reply_header(rp, "WWW-Authenticate", "Basic realm=\"Centra\"");
}

static const char *const auth_words[] = {"basic", "none", NULL};

const iw_sim_route iw_sim_route_centra_soap = {
    .name = "centra_soap",
    .about = "Centra SOAP invoices_Update (login in the body)",
    .content_type = "text/xml; charset=utf-8",
    .paths = {{.suffix = "/system/service/module/soap/api",
               .method = "POST",
               .handle = handle_soap}},
    .auth_failure = auth_failure_soap,
    .server_fault = server_fault,
    .refusal = refusal_soap,
    /* neither seed 000 nor 003 shows a refused login: the default shape is a reading a real
     * server might give, coded rather than worded; the config acts out the others */
    .settings = {{.key = "username", .value = "demo"},
                 {.key = "password", .value = "demo"},
                 IW_SIM_SOAP_AUTH_SETTING("subcode")},
};

const iw_sim_route iw_sim_route_centra_navision = {
    .name = "centra_navision",
    .about = "Centra navision invoices_Update (optional HTTP Basic)",
    .content_type = "text/xml; charset=utf-8",
    .paths = {{.suffix = "/system/service/module/navision/api",
               .method = "POST",
               .handle = handle_navision}},
    .auth_failure = auth_failure_navision,
    .server_fault = server_fault,
    .refusal = refusal_navision,
    .settings = {{.key = "username", .value = "demo"},
                 {.key = "password", .value = "demo"},
                 /* HTTP Basic required, or no HTTP auth */
                 {"auth", "none", auth_words, "\"basic\" or \"none\""}},
};
