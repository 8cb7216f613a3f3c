/* contract.c: what the contracts share: the SOAP envelope check and the per-target shapes of
 * auth failures, server errors and content types. */
#include "contract.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SOAP_ENV_NS "http://schemas.xmlsoap.org/soap/envelope/"

const char *iw_sim_contract_ctype(int t)
{
    switch (t) {
    case IW_SIM_MIDNIGHT:
    case IW_SIM_WEBHOOK: return "application/json; charset=utf-8";
    case IW_SIM_INVOICEXPRESS: return "application/xml; charset=utf-8";
    default: return "text/xml; charset=utf-8";
    }
}

static void ixp_errors(iw_sim_reply *rp, int status, const char *msg)
{
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, NULL, "errors", NULL);
    iw_xmlw_text(&x, NULL, "error", msg);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, status, "application/xml; charset=utf-8", &x);
}

/* The webhook receiver's error shape: {"error": msg} (the spec fixes none). */
static void webhook_error(iw_sim_reply *rp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    iw_sim_reply_json(rp, status, o);
    cJSON_Delete(o);
}

static void midnight_message(iw_sim_reply *rp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Message", msg);
    iw_sim_reply_json(rp, status, o);
    cJSON_Delete(o);
}

/* A SOAP 1.1 Fault whose faultcode is wsse:FailedAuthentication (OASIS WSS 1.1). */
static void wsse_fault(iw_sim_reply *rp, iw_sim_soap_style style)
{
    const char *p = style == IW_SIM_SOAP_WCF ? "s" : "SOAP-ENV";
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, p, "Envelope", "http://schemas.xmlsoap.org/soap/envelope/");
    iw_xmlw_start(&x, p, "Body", NULL);
    iw_xmlw_start(&x, p, "Fault", NULL);
    iw_xmlw_start(&x, NULL, "faultcode", NULL);
    iw_xmlw_attr(&x, "xmlns:wsse",
                 "http://docs.oasis-open.org/wss/2004/01/"
                 "oasis-200401-wss-wssecurity-secext-1.0.xsd");
    if (!x.err && xmlTextWriterWriteString(x.w, (const xmlChar *)"wsse:FailedAuthentication") < 0)
        x.err = -1;
    iw_xmlw_end(&x);
    iw_xmlw_text(&x, NULL, "faultstring", "The request was refused.");
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(rp, 500, "text/xml; charset=utf-8", &x);
}

/* centra_soap and ebizcharge: the configured shape. The texts are neutral on purpose: the
 * worker must read the code, never the words. */
static void soap_auth_failure(const iw_sim_creds *k, iw_sim_soap_style style, iw_sim_reply *rp)
{
    static const char page[] = "401 Unauthorized\n";
    if (strcmp(k->auth_failure, "wsse") == 0)
        wsse_fault(rp, style);
    else if (strcmp(k->auth_failure, "fault") == 0)
        iw_sim_reply_soap_fault(rp, style, "Client", "The request was refused.");
    else if (strcmp(k->auth_failure, "http") == 0)
        iw_sim_reply_set(rp, 401, "text/plain; charset=utf-8", page, sizeof(page) - 1);
    else
        iw_sim_reply_soap_fault(rp, style, "Client.Authentication", "The request was refused.");
}

void iw_sim_contract_auth_failure(const iw_sim_conf *c, int t, iw_sim_reply *rp)
{
    static const char page[] = "401 Unauthorized\n";
    switch (t) {
    case IW_SIM_CENTRA_SOAP: soap_auth_failure(&c->creds[t], IW_SIM_SOAP_CENTRA, rp); break;
    case IW_SIM_CENTRA_NAVISION:
        iw_sim_reply_set(rp, 401, "text/plain; charset=utf-8", page, sizeof(page) - 1);
        iw_sim_reply_header(rp, "WWW-Authenticate", "Basic realm=\"Centra\"");
        break;
    case IW_SIM_MIDNIGHT:
        midnight_message(rp, 401, "Authorization has been denied for this request.");
        break;
    case IW_SIM_EBIZCHARGE: soap_auth_failure(&c->creds[t], IW_SIM_SOAP_WCF, rp); break;
    case IW_SIM_WEBHOOK: webhook_error(rp, 401, "signature verification failed"); break;
    default:
        ixp_errors(rp, 401, "The API Key parameter is missing or is incorrectly entered.");
        break;
    }
}

void iw_sim_contract_refusal(int t, const char *msg, iw_sim_reply *rp)
{
    if (!msg || !*msg)
        msg = "The invoice was refused (simulated)";
    iw_xmlw x;
    switch (t) {
    case IW_SIM_CENTRA_SOAP:
    case IW_SIM_CENTRA_NAVISION:
        iw_xmlw_open(&x, true);
        iw_xmlw_start(&x, "SOAP-ENV", "Envelope", "http://schemas.xmlsoap.org/soap/envelope/");
        if (t == IW_SIM_CENTRA_SOAP)
            iw_xmlw_attr(&x, "xmlns:ns1", "http://www.centra.com/webservices/");
        iw_xmlw_start(&x, "SOAP-ENV", "Body", NULL);
        if (t == IW_SIM_CENTRA_SOAP) {
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
        break;
    case IW_SIM_EBIZCHARGE:
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
        break;
    case IW_SIM_WEBHOOK: webhook_error(rp, 400, msg); break;
    case IW_SIM_MIDNIGHT: {
        cJSON *j = cJSON_CreateString(msg);
        iw_sim_reply_json(rp, 200, j);
        cJSON_Delete(j);
        break;
    }
    default: ixp_errors(rp, 422, msg); break;
    }
}

void iw_sim_contract_server_fault(int t, const char *msg, iw_sim_reply *rp)
{
    if (!msg || !*msg)
        msg = "Internal server error (simulated)";
    switch (t) {
    case IW_SIM_CENTRA_SOAP:
    case IW_SIM_CENTRA_NAVISION:
        iw_sim_reply_soap_fault(rp, IW_SIM_SOAP_CENTRA, "Server", msg);
        break;
    case IW_SIM_EBIZCHARGE: iw_sim_reply_soap_fault(rp, IW_SIM_SOAP_WCF, "Server", msg); break;
    case IW_SIM_MIDNIGHT: midnight_message(rp, 500, msg); break;
    case IW_SIM_WEBHOOK: webhook_error(rp, 500, msg); break;
    default: ixp_errors(rp, 500, msg); break;
    }
}

void iw_sim_contract_http_error(int status, const char *msg, iw_sim_reply *rp)
{
    const char *reason = status == 500   ? "Internal Server Error"
                         : status == 502 ? "Bad Gateway"
                         : status == 503 ? "Service Unavailable"
                         : status == 504 ? "Gateway Timeout"
                                         : "Error";
    char body[160];
    int n =
        snprintf(body, sizeof(body), "<html><body><h1>%d %s</h1></body></html>\n", status, reason);
    iw_sim_reply_set(rp, status, "text/html; charset=utf-8", body, (size_t)n);
    if (msg && *msg)
        iw_sim_reply_header(rp, "X-Sim-Message", msg);
}

void iw_sim_errors_join(const iw_sim_errors *e, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < e->n && used + 1 < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? "; " : "", e->msg[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (e->total > e->n && used + 1 < len)
        snprintf(buf + used, len - used, "; and %d more", e->total - e->n);
}

cJSON *iw_sim_values_xml(xmlNodePtr n, const char *const *names)
{
    cJSON *o = cJSON_CreateObject();
    char val[512];
    for (size_t i = 0; names[i]; i++)
        cJSON_AddStringToObject(o, names[i], iw_sim_xml_child_text(n, names[i], val, sizeof(val)));
    return o;
}

int iw_sim_xml_count(xmlNodePtr n, const char *name)
{
    int k = 0;
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            k++;
    return k;
}

/* SOAPAction without surrounding quotes equals action. */
static bool action_ok(const char *got, const char *action)
{
    if (!got)
        return false;
    size_t n = strlen(got);
    if (n >= 2 && got[0] == '"' && got[n - 1] == '"') {
        got++;
        n -= 2;
    }
    return n == strlen(action) && strncmp(got, action, n) == 0;
}

static xmlNodePtr refuse(xmlDocPtr *doc, iw_sim_reply *rp, iw_sim_soap_style style, const char *msg)
{
    if (*doc)
        xmlFreeDoc(*doc);
    *doc = NULL;
    iw_sim_reply_soap_fault(rp, style, "Client", msg);
    return NULL;
}

xmlNodePtr iw_sim_soap_operation(const iw_sim_request *rq, const char *ns, const char *op,
                                 const char *action, iw_sim_soap_style style, xmlDocPtr *doc,
                                 iw_sim_reply *rp)
{
    char msg[512];
    *doc = NULL;
    if (rq->validate && (!rq->content_type || strncasecmp(rq->content_type, "text/xml", 8) != 0)) {
        snprintf(msg, sizeof(msg),
                 "Cannot process the message because the content type '%.80s' was not the "
                 "expected type 'text/xml; charset=utf-8'.\n",
                 rq->content_type ? rq->content_type : "");
        iw_sim_reply_set(rp, 415, "text/plain; charset=utf-8", msg, strlen(msg));
        return NULL;
    }
    const char *soap_action = iw_sim_req_header(rq, "SOAPAction");
    if (rq->validate && !action_ok(soap_action, action)) {
        snprintf(msg, sizeof(msg), "SOAPAction '%.120s' is not '%s'",
                 soap_action ? soap_action : "(none)", action);
        return refuse(doc, rp, style, msg);
    }
    char err[256];
    *doc = iw_xml_parse(rq->body, rq->body_len, err, sizeof(err));
    if (!*doc) {
        snprintf(msg, sizeof(msg), "Bad request: %s", err);
        return refuse(doc, rp, style, msg);
    }
    xmlNodePtr env = xmlDocGetRootElement(*doc);
    if (strcmp((const char *)env->name, "Envelope") != 0 ||
        strcmp(iw_sim_xml_ns(env), SOAP_ENV_NS) != 0)
        return refuse(doc, rp, style, "Bad request: not a SOAP 1.1 Envelope");
    xmlNodePtr body = NULL;
    for (xmlNodePtr c = env->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)c->name, "Header") == 0 && !body &&
            strcmp(iw_sim_xml_ns(c), SOAP_ENV_NS) == 0)
            continue;
        if (strcmp((const char *)c->name, "Body") == 0 &&
            strcmp(iw_sim_xml_ns(c), SOAP_ENV_NS) == 0 && !body) {
            body = c;
            continue;
        }
        return refuse(doc, rp, style, "Bad request: unexpected element in the SOAP Envelope");
    }
    xmlNodePtr opn = iw_sim_xml_first(body);
    if (!opn)
        return refuse(doc, rp, style, "Bad request: empty SOAP Body");
    if (strcmp((const char *)opn->name, op) != 0) {
        snprintf(msg, sizeof(msg), "Unknown operation '%.80s' (expected %s)",
                 (const char *)opn->name, op);
        return refuse(doc, rp, style, msg);
    }
    if (rq->validate && strcmp(iw_sim_xml_ns(opn), ns) != 0) {
        snprintf(msg, sizeof(msg), "Operation %s is in namespace '%.120s', expected '%s'", op,
                 iw_sim_xml_ns(opn), ns);
        return refuse(doc, rp, style, msg);
    }
    return opn;
}
