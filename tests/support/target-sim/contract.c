/* contract.c: what the contracts share: the SOAP envelope check and auth failure shapes, and
 * the per-target replies (auth failures, server errors, refusals, content types) looked up in
 * each target's route. */
#include "contract.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SOAP_ENV_NS "http://schemas.xmlsoap.org/soap/envelope/"

/* Unknown ids (none are routed) get invoicexpress's shapes, as the switches these replace did. */
static const iw_sim_route *route_of(int t)
{
    return t >= 0 && t < IW_SIM_N_TARGETS ? iw_sim_routes[t]
                                          : iw_sim_routes[IW_SIM_ID(invoicexpress)];
}

const char *iw_sim_contract_ctype(int t)
{
    return t >= 0 && t < IW_SIM_N_TARGETS ? iw_sim_routes[t]->content_type
                                          : "text/xml; charset=utf-8";
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

const char *const iw_sim_soap_auth_shapes[] = {"subcode", "wsse", "fault", "http", NULL};

void iw_sim_soap_auth_failure(const iw_sim_creds *k, iw_sim_soap_style style, iw_sim_reply *rp)
{
    static const char page[] = "401 Unauthorized\n";
    const char *shape = iw_sim_cred(k, "auth_failure");
    if (strcmp(shape, "wsse") == 0)
        wsse_fault(rp, style);
    else if (strcmp(shape, "fault") == 0)
        iw_sim_reply_soap_fault(rp, style, "Client", "The request was refused.");
    else if (strcmp(shape, "http") == 0)
        iw_sim_reply_set(rp, 401, "text/plain; charset=utf-8", page, sizeof(page) - 1);
    else
        iw_sim_reply_soap_fault(rp, style, "Client.Authentication", "The request was refused.");
}

void iw_sim_contract_auth_failure(const iw_sim_conf *c, int t, iw_sim_reply *rp)
{
    route_of(t)->auth_failure(&c->creds[t >= 0 && t < IW_SIM_N_TARGETS ? t : 0], rp);
}

void iw_sim_contract_refusal(int t, const char *msg, iw_sim_reply *rp)
{
    if (!msg || !*msg)
        msg = "The invoice was refused (simulated)";
    route_of(t)->refusal(msg, rp);
}

void iw_sim_contract_server_fault(int t, const char *msg, iw_sim_reply *rp)
{
    if (!msg || !*msg)
        msg = "Internal server error (simulated)";
    route_of(t)->server_fault(msg, rp);
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
    *doc = iw_sim_xml_parse(rq->body, rq->body_len, err, sizeof(err));
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
