/* soap.h: what the SOAP adapters share: the SOAP 1.1 request and envelope, the mapping-table
 * writer that turns a canonical invoice into elements, and reading replies and Faults. */
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

/* --- mapping tables: one readable table per adapter drives the element writer --- */

/* Where an element's text comes from. */
typedef enum iw_soap_kind {
    IW_SOAP_STR = 1, /* char * at off (NULL = absent) */
    IW_SOAP_MDY,     /* char * "YYYY-MM-DD" at off, written "MM/DD/YYYY" */
    IW_SOAP_AMOUNT,  /* iw_amount at off, formatted exactly as given (scale kept) */
    IW_SOAP_FLAG,    /* iw_flag at off, "true" / "false" */
    IW_SOAP_CALL,    /* text computed by get() (a fallback or a derived value) */
    IW_SOAP_CONST,   /* always the literal dflt */
    IW_SOAP_NONE,    /* the canonical model has no source: always an empty element */
    IW_SOAP_GROUP,   /* an element holding sub, over the object at off (0 = same object) */
    IW_SOAP_LIST     /* one element per array entry: pointer at off, count at count_off */
} iw_soap_kind;

/* Field flags. */
#define IW_SOAP_ROOT                                                                               \
    0x1u                 /* off is from the invoice itself, not from the current object; such a    \
                          * field never makes a group count as used */
#define IW_SOAP_KEY 0x2u /* a group holding KEY fields is written only when one of them is set */

/* Computes an element's text for IW_SOAP_CALL: obj is the current object, root the invoice,
 * index the position in the enclosing list (0 outside lists). Returns the text (may point into
 * buf or into obj) or NULL when there is nothing to send. */
typedef const char *(*iw_soap_get_fn)(const void *obj, const void *root, size_t index, char *buf,
                                      size_t len);

/* One row of a mapping table; a table ends with a row whose name is NULL. */
typedef struct iw_soap_field {
    const char *name;                /* element local name, written with the body prefix */
    iw_soap_kind kind;               /* where the text comes from */
    size_t off;                      /* source offset (see kind), from the current object */
    unsigned flags;                  /* IW_SOAP_ROOT, IW_SOAP_KEY */
    unsigned only;                   /* 0 = every variant; else the variant bits that write it */
    const char *dflt;                /* text when the source is absent; NULL = absent policy */
    const struct iw_soap_field *sub; /* GROUP and LIST: the child table */
    size_t count_off;                /* LIST: offset of the size_t element count */
    size_t elem_size;                /* LIST: sizeof one element */
    iw_soap_get_fn get;              /* CALL: the text computer */
} iw_soap_field;

/* What an absent source (no value and no dflt) becomes. */
typedef enum iw_soap_absent {
    IW_SOAP_OMIT = 0, /* no element at all */
    IW_SOAP_EMPTY     /* an empty element (targets where omission clears the value anyway) */
} iw_soap_absent;

/* How a table is written. */
typedef struct iw_soap_map {
    const char *prefix;    /* element prefix ("ns1", "ebiz") */
    const void *root;      /* the iw_invoice the table reads */
    iw_soap_absent absent; /* absent policy */
    unsigned variant;      /* variant bit matched against iw_soap_field.only */
} iw_soap_map;

/* Writes the rows of `fields` over obj. Groups and lists are omitted when unused (no set
 * source of their own, or no KEY set; empty lists). Returns 0, or the writer's error with
 * errbuf naming the element: IW_EINVAL when a text cannot be carried by XML 1.0 (control
 * characters, U+FFFE / U+FFFF, invalid UTF-8), IW_ENOMEM. */
int iw_soap_write(iw_xw *x, const iw_soap_map *m, const iw_soap_field *fields, const void *obj,
                  char *errbuf, size_t errlen);

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
    xmlNodePtr body;          /* the Envelope's Body; NULL when not a SOAP envelope */
    iw_soap_fault_code fault; /* IW_SOAP_FAULT_NONE when there is no Fault */
    char faultcode[64];       /* as sent ("SOAP-ENV:Client", "env:Sender") */
    char faultstring[200];    /* faultstring / Reason Text, trimmed */
    char error[160];          /* why doc or body is NULL */
} iw_soap_reply;

/* Reads a reply body. Returns 0 when it is a SOAP 1.1 or 1.2 envelope with a Body (rep->body
 * set, Fault read); IW_EINVAL otherwise, with the reason in rep->error. Free with
 * iw_soap_reply_free in both cases. */
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

/* First element named `name` among the direct children of n; NULL when none. */
xmlNodePtr iw_soap_child(xmlNodePtr n, const char *name);

/* Replaces the secrets of tc (its adapter's secret fields) in msg by ***, in place, truncating
 * to cap. */
void iw_soap_scrub(const iw_target_conf *tc, char *msg, size_t cap);

#endif
