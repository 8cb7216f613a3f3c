/* contract.h: the contracts: one handler per target family, plus the replies every
 * target gives in its own shape (auth failure, server error, garbage). */
#ifndef IW_SIM_CONTRACT_H
#define IW_SIM_CONTRACT_H

#include <libxml/tree.h>

#include "schema.h"
#include "sim.h"

/* centra.c: centra_soap (t = IW_SIM_CENTRA_SOAP) and the navision endpoint
 * (IW_SIM_CENTRA_NAVISION): POST SOAP 1.1 invoices_Update. */
void iw_sim_centra_handle(int t, const iw_sim_request *rq, iw_sim_reply *rp);

/* midnight.c: POST v1/Generic/InvoiceUpdate (JSON or XML). */
void iw_sim_midnight_handle(const iw_sim_request *rq, iw_sim_reply *rp);

/* midnight.c: POST v1/Token/RegenerateAuthToken: a new Midnight token as a JSON string. */
void iw_sim_midnight_token(const iw_sim_request *rq, iw_sim_reply *rp);

/* midnight.c: forgets the invoice lines Midnight holds (POST /_sim/reset). */
void iw_sim_midnight_reset(void);

/* ebizcharge.c: POST SOAP 1.1 UpdateInvoice. */
void iw_sim_ebiz_handle(const iw_sim_request *rq, iw_sim_reply *rp);

/* invoicexpress.c: PUT /invoices/{id}.xml. */
void iw_sim_ixp_handle(const iw_sim_request *rq, const char *invoice_id, iw_sim_reply *rp);

/* webhook.c: POST /hooks/invoices, a Standard Webhooks receiver. */
void iw_sim_webhook_handle(const iw_sim_request *rq, iw_sim_reply *rp);

/* contract.c: target t's reply to refused credentials, in the shape c configures. */
void iw_sim_contract_auth_failure(const iw_sim_conf *c, int t, iw_sim_reply *rp);

/* contract.c: a SOAP Server fault (SOAP targets) or a 500 in the target's error shape. */
void iw_sim_contract_server_fault(int t, const char *msg, iw_sim_reply *rp);

/* contract.c: target t's own refusal of an invoice, with msg: centra_soap 200 <ns1:result>
 * with success=false and errors/message (the shape is not in seed 000: a reading), navision
 * 200 with msg in place of OK, EBizCharge 200 Status Error, Midnight 200 with msg as the
 * string (an API answering errors as its string), InvoiceXpress 422 <errors>. */
void iw_sim_contract_refusal(int t, const char *msg, iw_sim_reply *rp);

/* contract.c: a bare gateway-style error page with `status`. */
void iw_sim_contract_http_error(int status, const char *msg, iw_sim_reply *rp);

/* contract.c: content type of target t's success replies. */
const char *iw_sim_contract_ctype(int t);

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
