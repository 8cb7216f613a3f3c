/* soap.h: what the SOAP adapters share: the SOAP 1.1 request and envelope, and reading replies
 * and Faults (the body inside the envelope is the mapping engine's, mapping.h). */
#ifndef IW_SOAP_H
#define IW_SOAP_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "target.h"
#include "wbuf.h"
#include "xml.h"

#define IW_SOAP11_ENV_NS "http://schemas.xmlsoap.org/soap/envelope/"
#define IW_SOAP12_ENV_NS "http://www.w3.org/2003/05/soap-envelope"

/* --- requests --- */

/* Starts a SOAP 1.1 request: POST to url, "Content-Type: text/xml; charset=utf-8" and
 * `SOAPAction: "<action>"` (quoted as SOAP 1.1 wants). Returns 0, IW_EINVAL (no url; errbuf
 * says so) or IW_ENOMEM. On failure r holds nothing to free. */
int iw_soap_request_init(iw_request *r, const char *url, const char *action, char *errbuf,
                         size_t errlen);

/* Opens <?xml?><env:Envelope xmlns:env=SOAP 1.1 xmlns:ns_prefix=ns_uri>, an empty <env:Header/>
 * when header is true, and <env:Body>, in the calling thread's scratch buffer (iw_wbuf_scratch).
 * A failure shows at iw_soap_close. */
void iw_soap_open(iw_xw *x, const char *env_prefix, const char *ns_prefix, const char *ns_uri,
                  bool header);

/* Closes Body and Envelope and hands a copy of the document to r as its body. Returns 0, or the
 * writer's error with errbuf naming what was refused ("ponumber: text holds ..."). */
int iw_soap_close(iw_xw *x, iw_request *r, char *errbuf, size_t errlen);

/* --- replies --- */

/* The Fault codes the adapters tell apart (SOAP 1.1 names; SOAP 1.2 Sender/Receiver map to
 * Client/Server). */
typedef enum iw_soap_fault_code {
    IW_SOAP_FAULT_NONE = 0, /* no Fault in the reply */
    IW_SOAP_FAULT_CLIENT,   /* Client, Client.*, Sender: the request is wrong */
    IW_SOAP_FAULT_SERVER,   /* Server, Server.*, Receiver: the service failed */
    IW_SOAP_FAULT_PROTOCOL, /* VersionMismatch, MustUnderstand, DataEncodingUnknown */
    IW_SOAP_FAULT_AUTH,     /* WS-Security FailedAuthentication, InvalidSecurityToken...,
                             * or a Client.Authentication / Client.Authorization subcode */
    IW_SOAP_FAULT_OTHER     /* a code we do not know */
} iw_soap_fault_code;

/* A reply read once: the document, its Body and the Fault if any. */
typedef struct iw_soap_reply {
    xmlDocPtr doc;            /* NULL when the body is not well-formed XML */
    xmlNodePtr body;          /* the Envelope's one Body, holding one element (or a Fault);
                               * NULL when not a SOAP envelope or not that shape */
    iw_soap_fault_code fault; /* IW_SOAP_FAULT_NONE when there is no Fault */
    char faultcode[64];       /* as sent ("SOAP-ENV:Client", "env:Sender") */
    char faultstring[200];    /* faultstring / Reason Text, trimmed */
    char error[160];          /* why doc or body is NULL */
} iw_soap_reply;

/* Reads a reply body. Returns 0 when it is a SOAP 1.1 or 1.2 envelope with a Body (rep->body
 * set, Fault read); IW_EINVAL otherwise, with the reason in rep->error. Its text is the reply's
 * as it came: what is published is masked after the outcome is decided
 * (iw_secrets_mask_outcome). Free with iw_soap_reply_free in both cases. */
int iw_soap_reply_read(const char *body, size_t len, iw_soap_reply *rep);

/* Frees what a reply holds; safe on a zeroed or failed one. */
void iw_soap_reply_free(iw_soap_reply *rep);

/* The rules every SOAP adapter shares, in order: 401/403 AUTH; 408/429 RETRY (Retry-After
 * honoured); a Fault, by its code alone (no seed page documents fault texts): an auth code
 * AUTH, Client, a WCF dispatcher refusal (ActionNotSupported, DeserializationFailed, ...) or a
 * protocol code PERMANENT, Server or unknown RETRY; other non-2xx by status (5xx RETRY, 404
 * PERMANENT ...); a 2xx that is not a SOAP envelope RETRY (a reply we cannot read is never a
 * success). Returns true when *out is final, false when the reply is a readable 2xx envelope
 * without a Fault for the adapter to judge. Secrets of tc never reach a message. */
bool iw_soap_classify_common(const iw_target_conf *tc, const iw_response *resp,
                             const iw_soap_reply *rep, iw_outcome *out);

/* Why a configured namespace cannot be the body's (an iw_conf_field check), or NULL: an empty
 * one undeclares the prefix and every body is malformed (review 100); a namespace name is an
 * absolute URI, with a scheme and no white space. */
const char *iw_soap_namespace_check(const char *value);

/* The row of an adapter's field table for its namespace, checked as above. */
#define IW_SOAP_NAMESPACE_FIELD(S, seed_)                                                          \
    {                                                                                              \
        .key = "namespace", .kind = IW_CONF_TEXT, .off = offsetof(S, namespace_uri),               \
        .seed = seed_, .wire = true, .check = iw_soap_namespace_check                              \
    }

/* True when the text directly in n (not in its elements) is blank. */
bool iw_soap_own_text_blank(xmlNodePtr n);

/* First element named `name` among the direct children of n; NULL when none. */
xmlNodePtr iw_soap_child(xmlNodePtr n, const char *name);

/* The only element named `name` among the direct children of n: NULL when none, or when there
 * are two or more (a reply that says a thing twice is not read as saying it once). */
xmlNodePtr iw_soap_only_child(xmlNodePtr n, const char *name);

/* Replaces the secrets of tc (its adapter's secret fields) in msg by ***, in place, truncating
 * to cap. */
void iw_soap_scrub(const iw_target_conf *tc, char *msg, size_t cap);

#endif
