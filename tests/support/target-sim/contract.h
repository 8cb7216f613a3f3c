/* contract.h: what the contracts share, and the replies every target gives in its own shape
 * (auth failure, server error, refusal, content type), found through its route (sim.h). */
#ifndef IW_SIM_CONTRACT_H
#define IW_SIM_CONTRACT_H

#include <libxml/tree.h>

#include "schema.h"
#include "sim.h"

/* midnight.c: forgets the invoice lines Midnight holds (POST /_sim/reset). */
void iw_sim_midnight_reset(void);

/* contract.c: target t's reply to refused credentials, in the shape c configures (its route's
 * auth_failure). */
void iw_sim_contract_auth_failure(const iw_sim_conf *c, int t, iw_sim_reply *rp);

/* contract.c: a SOAP Server fault (SOAP targets) or a 500 in the target's error shape (its
 * route's server_fault; an empty msg gets a stock text). */
void iw_sim_contract_server_fault(int t, const char *msg, iw_sim_reply *rp);

/* contract.c: target t's own refusal of an invoice, with msg (its route's refusal; an empty
 * msg gets a stock text). */
void iw_sim_contract_refusal(int t, const char *msg, iw_sim_reply *rp);

/* contract.c: a bare gateway-style error page with `status`. */
void iw_sim_contract_http_error(int status, const char *msg, iw_sim_reply *rp);

/* contract.c: content type of target t's success replies (its route's content_type). */
const char *iw_sim_contract_ctype(int t);

/* contract.c: centra_soap's and ebizcharge's reply to refused credentials, in the shape
 * k->auth_failure names: "subcode" (a Client.Authentication fault, also for ""), "wsse"
 * (faultcode wsse:FailedAuthentication), "fault" (a plain Client fault), "http" (HTTP 401).
 * The texts are neutral on purpose: the worker must read the code, never the words. */
void iw_sim_soap_auth_failure(const iw_sim_creds *k, iw_sim_soap_style style, iw_sim_reply *rp);

/* contract.c: the shapes of iw_sim_soap_auth_failure, and the auth_failure setting that picks
 * one (def: the default), for a SOAP route's `settings`. */
extern const char *const iw_sim_soap_auth_shapes[];
#define IW_SIM_SOAP_AUTH_SETTING(def)                                                              \
    {                                                                                              \
        "auth_failure", def, iw_sim_soap_auth_shapes, "one of subcode, wsse, fault, http"          \
    }

/* contract.c: parses a SOAP 1.1 request and returns its operation element (first child of
 * Body) after checking, when rq->validate: Content-Type text/xml, SOAPAction == action
 * (quotes optional), envelope namespace, operation name and namespace. On failure writes
 * the refusal into rp (415 or a Client fault in `style`) and returns NULL; *doc is then
 * NULL too. On success the caller frees *doc. */
xmlNodePtr iw_sim_soap_operation(const iw_sim_request *rq, const char *ns, const char *op,
                                 const char *action, iw_sim_soap_style style, xmlDocPtr *doc,
                                 iw_sim_reply *rp);

/* contract.c: joins the first messages of e with "; " into buf. */
void iw_sim_errors_join(const iw_sim_errors *e, char *buf, size_t len);

/* contract.c: an object with the text of each listed child of n ("" when absent); names is
 * NULL-terminated. */
cJSON *iw_sim_values_xml(xmlNodePtr n, const char *const *names);

/* contract.c: number of element children of n named name. */
int iw_sim_xml_count(xmlNodePtr n, const char *name);

#endif
