/* soap.c: the SOAP 1.1 request and envelope and Fault reading shared by the centra_soap,
 * centra_navision and ebizcharge adapters. */
#include "soap.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "status.h"
#include "text.h"

/* ---------------------------------------------------------------- requests */

int iw_soap_request_init(iw_request *r, const char *url, const char *action, char *errbuf,
                         size_t errlen)
{
    if (!url || !*url) {
        snprintf(errbuf, errlen, "url: not configured");
        return IW_EINVAL;
    }
    iw_text_copy(r->method, sizeof(r->method), "POST");
    if (!(r->url = strdup(url)))
        goto nomem;
    if (iw_request_add_header(r, "Content-Type", "text/xml; charset=utf-8"))
        goto nomem;
    size_t alen = strlen(action ? action : "");
    char *quoted = malloc(alen + 3);
    if (!quoted)
        goto nomem;
    quoted[0] = '"';
    memcpy(quoted + 1, action ? action : "", alen);
    memcpy(quoted + 1 + alen, "\"", 2);
    int rc = iw_request_add_header(r, "SOAPAction", quoted);
    free(quoted);
    if (rc)
        goto nomem;
    return 0;
nomem:
    iw_request_clear(r);
    snprintf(errbuf, errlen, "out of memory");
    return IW_ENOMEM;
}

void iw_soap_open(iw_xw *x, const char *env_prefix, const char *ns_prefix, const char *ns_uri,
                  bool header)
{
    iw_xw_begin(x, iw_wbuf_scratch(), true);
    /* Both declarations as attributes, so they appear in the seed samples' order. */
    char env_decl[64], ns_decl[64];
    size_t n = iw_text_copy(env_decl, sizeof(env_decl), "xmlns:");
    iw_text_copy(env_decl + n, sizeof(env_decl) - n, env_prefix);
    iw_text_copy(ns_decl + n, sizeof(ns_decl) - n, ns_prefix);
    memcpy(ns_decl, env_decl, n);
    iw_xw_start(x, env_prefix, "Envelope", NULL);
    iw_xw_attr(x, env_decl, IW_SOAP11_ENV_NS);
    iw_xw_attr(x, ns_decl, ns_uri);
    if (header) {
        iw_xw_start(x, env_prefix, "Header", NULL);
        iw_xw_end(x);
    }
    iw_xw_start(x, env_prefix, "Body", NULL);
}

int iw_soap_close(iw_xw *x, iw_request *r, char *errbuf, size_t errlen)
{
    iw_xw_finish(x); /* Body, Envelope */
    return iw_request_set_body_from(r, x->b, errbuf, errlen);
}

/* ---------------------------------------------------------------- replies */

xmlNodePtr iw_soap_child(xmlNodePtr n, const char *name)
{
    if (!n)
        return NULL;
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

xmlNodePtr iw_soap_only_child(xmlNodePtr n, const char *name)
{
    xmlNodePtr first = iw_soap_child(n, name);
    for (xmlNodePtr c = first ? first->next : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return NULL;
    return first;
}

const char *iw_soap_namespace_check(const char *value)
{
    const char *colon = strchr(value, ':');
    if (!*value)
        return "must not be empty: an empty namespace undeclares the body's prefix";
    if (value[strcspn(value, " \t\r\n")])
        return "a namespace name holds no white space";
    if (!colon || colon == value || !isalpha((unsigned char)value[0]) ||
        strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") !=
            (size_t)(colon - value))
        return "expected an absolute URI (http://..., urn:...), as a namespace name is";
    /* bound to no prefix but their own, so every body would be malformed (review 104) */
    if (strcmp(value, IW_XML_NS) == 0 || strcmp(value, IW_XMLNS_NS) == 0)
        return "is reserved to the prefix xml or xmlns, and cannot name the body's elements";
    return NULL;
}

bool iw_soap_own_text_blank(xmlNodePtr n)
{
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
            continue;
        for (const xmlChar *p = c->content; p && *p; p++)
            if (!strchr(" \t\r\n", *p))
                return false;
    }
    return true;
}

/* How many element children n has; *first gets the first. */
static size_t element_children(xmlNodePtr n, xmlNodePtr *first)
{
    size_t k = 0;
    *first = NULL;
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && k++ == 0)
            *first = c;
    return k;
}

static bool is_soap_ns(xmlNodePtr n)
{
    const char *href = n->ns && n->ns->href ? (const char *)n->ns->href : "";
    return strcmp(href, IW_SOAP11_ENV_NS) == 0 || strcmp(href, IW_SOAP12_ENV_NS) == 0;
}

/* Fault codes by local name. The SOAP 1.1 / 1.2 codes; the WCF dispatcher's own codes, which
 * a .svc endpoint such as EBizCharge's sends in place of Client/Server (a wrong SOAPAction, a
 * value it cannot deserialize, a wrong To address: resending never helps; InternalServiceFault
 * is the service's own failure); and the WS-Security codes of a refused credential. */
static const struct {
    const char *name;
    iw_soap_fault_code code;
} fault_codes[] = {
    {"Client", IW_SOAP_FAULT_CLIENT},
    {"Sender", IW_SOAP_FAULT_CLIENT},
    {"Server", IW_SOAP_FAULT_SERVER},
    {"Receiver", IW_SOAP_FAULT_SERVER},
    {"VersionMismatch", IW_SOAP_FAULT_PROTOCOL},
    {"MustUnderstand", IW_SOAP_FAULT_PROTOCOL},
    {"DataEncodingUnknown", IW_SOAP_FAULT_PROTOCOL},
    /* WCF dispatcher and WS-Addressing */
    {"ActionNotSupported", IW_SOAP_FAULT_CLIENT},
    {"DeserializationFailed", IW_SOAP_FAULT_CLIENT},
    {"DestinationUnreachable", IW_SOAP_FAULT_CLIENT},
    {"ContractFilter", IW_SOAP_FAULT_CLIENT},
    {"InvalidMessageInformationHeader", IW_SOAP_FAULT_CLIENT},
    {"MessageAddressingHeaderRequired", IW_SOAP_FAULT_CLIENT},
    {"InternalServiceFault", IW_SOAP_FAULT_SERVER},
    {"EndpointUnavailable", IW_SOAP_FAULT_SERVER},
    {"ServerTooBusy", IW_SOAP_FAULT_SERVER},
    /* WS-Security (OASIS WSS 1.1 section 12) */
    {"FailedAuthentication", IW_SOAP_FAULT_AUTH},
    {"InvalidSecurityToken", IW_SOAP_FAULT_AUTH},
    {"InvalidSecurity", IW_SOAP_FAULT_AUTH},
    {"SecurityTokenUnavailable", IW_SOAP_FAULT_AUTH},
    {"FailedCheck", IW_SOAP_FAULT_AUTH},
    {"MessageExpired", IW_SOAP_FAULT_AUTH},
};

static iw_soap_fault_code code_by_name(const char *local, size_t n)
{
    for (size_t i = 0; i < sizeof(fault_codes) / sizeof(fault_codes[0]); i++)
        if (strlen(fault_codes[i].name) == n && strncasecmp(local, fault_codes[i].name, n) == 0)
            return fault_codes[i].code;
    return IW_SOAP_FAULT_OTHER;
}

/* True for a dotted SOAP 1.1 subcode or a SOAP 1.2 Subcode naming authentication or
 * authorization ("Client.Authentication", "Client.AuthorizationFailed"). */
static bool auth_subcode(const char *s)
{
    return strncasecmp(s, "Authentication", 14) == 0 || strncasecmp(s, "Authorization", 13) == 0;
}

/* Classifies a faultcode QName (and the SOAP 1.2 Subcode Value, "" when none) by local name,
 * up to the first '.'; a known subcode refines a Client code. */
static iw_soap_fault_code fault_code_of(const char *text, const char *subcode)
{
    const char *local = strrchr(text, ':');
    local = local ? local + 1 : text;
    size_t n = strcspn(local, "./ ");
    iw_soap_fault_code c = code_by_name(local, n);
    const char *sub = subcode ? strrchr(subcode, ':') : NULL;
    sub = sub ? sub + 1 : subcode;
    /* A Server fault stays the service's own trouble whatever its subcode says. */
    if (c != IW_SOAP_FAULT_CLIENT && c != IW_SOAP_FAULT_OTHER)
        return c;
    if ((local[n] == '.' && auth_subcode(local + n + 1)) || (sub && auth_subcode(sub)))
        return IW_SOAP_FAULT_AUTH;
    iw_soap_fault_code s2 = sub && *sub ? code_by_name(sub, strcspn(sub, "./ ")) : c;
    return s2 != IW_SOAP_FAULT_OTHER ? s2 : c;
}

static void read_fault(xmlNodePtr fault, iw_soap_reply *rep)
{
    xmlNodePtr code = iw_soap_child(fault, "faultcode");
    xmlNodePtr text = iw_soap_child(fault, "faultstring");
    char sub[64] = "";
    if (!code) { /* SOAP 1.2: Code/Value (+ Subcode/Value), Reason/Text */
        xmlNodePtr c = iw_soap_child(fault, "Code");
        code = iw_soap_child(c, "Value");
        iw_xml_text(iw_soap_child(iw_soap_child(c, "Subcode"), "Value"), sub, sizeof(sub));
        text = iw_soap_child(iw_soap_child(fault, "Reason"), "Text");
    }
    char value[64];
    iw_xml_text(code, value, sizeof(value));
    rep->fault = fault_code_of(value, sub);
    snprintf(rep->faultcode, sizeof(rep->faultcode), "%s%s%.*s", value, *sub ? "/" : "",
             iw_text_utf8_prec(sub, 40), sub);
    iw_text_trim_cut_utf8(rep->faultcode);
    iw_xml_text(text, rep->faultstring, sizeof(rep->faultstring));
}

int iw_soap_reply_read(const char *body, size_t len, iw_soap_reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    char err[128];
    rep->doc = iw_xml_parse(body, len, err, sizeof(err));
    if (!rep->doc) {
        snprintf(rep->error, sizeof(rep->error), "%s", err);
        return IW_EINVAL;
    }
    xmlNodePtr root = xmlDocGetRootElement(rep->doc);
    if (!root || strcmp((const char *)root->name, "Envelope") != 0 || !is_soap_ns(root)) {
        const char *name = root ? (const char *)root->name : "";
        snprintf(rep->error, sizeof(rep->error), "not a SOAP envelope (root element <%.*s>)",
                 iw_text_utf8_prec(name, 40), name);
        return IW_EINVAL;
    }
    rep->body = iw_soap_child(root, "Body");
    if (!rep->body) {
        snprintf(rep->error, sizeof(rep->error), "SOAP envelope without a Body");
        return IW_EINVAL;
    }
    xmlNodePtr fault = iw_soap_child(rep->body, "Fault");
    if (fault && is_soap_ns(fault))
        read_fault(fault, rep);
    /* Every documented reply is one Body holding one element. Anything more (a second Body, a
     * Fault or errors beside a result, two results, text beside it) says two things, and a reading
     * that takes the first could take an error for a success: such a reply is not read (a Fault in
     * it still counts). */
    xmlNodePtr first;
    size_t n = element_children(rep->body, &first);
    if (!iw_soap_only_child(root, "Body"))
        snprintf(rep->error, sizeof(rep->error), "the SOAP envelope holds more than one Body");
    else if (n != 1)
        snprintf(rep->error, sizeof(rep->error), "the SOAP Body holds %zu elements, not one", n);
    else if (!iw_soap_own_text_blank(rep->body)) /* review 99: "Invoice not found" beside it */
        snprintf(rep->error, sizeof(rep->error), "the SOAP Body holds text beside its element");
    else if (!iw_soap_own_text_blank(root)) /* review 104: beside the Body too */
        snprintf(rep->error, sizeof(rep->error), "the SOAP envelope holds text beside its Body");
    if (*rep->error) {
        rep->body = NULL;
        return IW_EINVAL;
    }
    return 0;
}

void iw_soap_reply_free(iw_soap_reply *rep)
{
    if (rep->doc)
        xmlFreeDoc(rep->doc);
    rep->doc = NULL;
    rep->body = NULL;
}

void iw_soap_scrub(const iw_target_conf *tc, char *msg, size_t cap)
{
    if (!tc || cap == 0)
        return;
    const char *secrets[IW_TARGET_MAX_SECRETS];
    size_t n = iw_target_conf_secrets(tc, secrets, IW_TARGET_MAX_SECRETS);
    if (n == 0)
        return;
    char *masked = iw_mask_secrets(msg, strlen(msg), (char *const *)secrets, n);
    if (!masked) { /* cannot prove the message is clean: drop it */
        snprintf(msg, cap, "(message withheld)");
        return;
    }
    snprintf(msg, cap, "%s", masked);
    iw_text_trim_cut_utf8(msg); /* "***" may be longer than the secret it hides */
    free(masked);
}

static void fault_outcome(const iw_target_conf *tc, const iw_response *resp,
                          const iw_soap_reply *rep, iw_outcome *out)
{
    iw_outcome_kind kind = IW_OUTCOME_RETRY;
    iw_error_kind ek = IW_ERR_REMOTE;
    const char *what = "";
    switch (rep->fault) {
    case IW_SOAP_FAULT_AUTH:
        kind = IW_OUTCOME_AUTH;
        ek = IW_ERR_AUTH;
        what = " (credentials refused)";
        break;
    case IW_SOAP_FAULT_CLIENT:
    case IW_SOAP_FAULT_PROTOCOL: kind = IW_OUTCOME_PERMANENT; break;
    case IW_SOAP_FAULT_OTHER:
        /* Server faults are the service's own trouble; a code we do not know is treated the
         * same way, so an update is retried (bounded) rather than dropped on a guess. */
        what = " (unknown fault code)";
        break;
    default: break;
    }
    iw_outcome_set(out, kind, ek, rep->faultcode, "HTTP %ld, SOAP Fault %s%s: %s", resp->status,
                   *rep->faultcode ? rep->faultcode : "(no faultcode)", what,
                   *rep->faultstring ? rep->faultstring : "(no faultstring)");
    iw_soap_scrub(tc, out->message, sizeof(out->message));
    iw_soap_scrub(tc, out->code, sizeof(out->code));
    out->retry_after_ms = -1;
    if (out->kind == IW_OUTCOME_RETRY)
        out->retry_after_ms =
            iw_retry_after_ms(iw_response_header(resp, "Retry-After"), resp->now_ms);
}

bool iw_soap_classify_common(const iw_target_conf *tc, const iw_response *resp,
                             const iw_soap_reply *rep, iw_outcome *out)
{
    iw_outcome_from_status(resp, out);
    long st = resp->status;
    if (st == 401 || st == 403 || st == 408 || st == 429)
        return true;
    if (rep->fault != IW_SOAP_FAULT_NONE) {
        fault_outcome(tc, resp, rep, out);
        return true;
    }
    if (st < 200 || st >= 300) {
        if (!rep->body) {
            size_t l = strlen(out->message);
            snprintf(out->message + l, sizeof(out->message) - l, " (reply: %s)", rep->error);
        }
        return true;
    }
    if (!rep->body) {
        /* A 2xx we cannot read (empty, truncated, an HTML page from a proxy) may or may not
         * have been applied; re-sending the same full state is harmless, losing it is not. */
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the reply cannot be read (%s); retrying, an unreadable "
                       "reply is never taken as success",
                       st, rep->error);
        out->retry_after_ms = -1;
        return true;
    }
    return false;
}
