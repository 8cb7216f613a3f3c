/* midnight.c: the Midnight InvoiceUpdate contract (seed 002): JSON or XML bodies, the
 * Authorization (PRC + Midnight token) and MISKEY headers, and the token refresh endpoint. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contract.h"
#include "state.h"

#define S(n)                                                                                       \
    {                                                                                              \
        n, IW_SIM_STR, 0, NULL, NULL                                                               \
    }
#define DEC(n)                                                                                     \
    {                                                                                              \
        n, IW_SIM_DEC, 0, NULL, NULL                                                               \
    }
#define INT(n)                                                                                     \
    {                                                                                              \
        n, IW_SIM_INT, 0, NULL, NULL                                                               \
    }
#define BOOL(n)                                                                                    \
    {                                                                                              \
        n, IW_SIM_BOOL, 0, NULL, NULL                                                              \
    }
#define DATE(n)                                                                                    \
    {                                                                                              \
        n, IW_SIM_DATE, 0, NULL, NULL                                                              \
    }
#define GUID(n)                                                                                    \
    {                                                                                              \
        n, IW_SIM_GUID, 0, NULL, NULL                                                              \
    }

static const iw_sim_field line_item_f[] = {INT("InvoiceLineItemID"),
                                           INT("InvoiceID"),
                                           INT("InvoiceLineID"),
                                           INT("OrderID"),
                                           INT("OrderVersionID"),
                                           INT("OrderVersionDetailID"),
                                           INT("ServiceID"),
                                           S("InvoiceLineDetailType"),
                                           DEC("Quantity"),
                                           DEC("Amount"),
                                           DEC("Tax"),
                                           S("AccountingGLID"),
                                           INT("PaymentAccountID"),
                                           INT("OrderVersionPostageID"),
                                           DEC("AmountApplied"),
                                           BOOL("DisplayItem"),
                                           DEC("PreviouslyInvoiced"),
                                           DEC("PreviouslyInvoicedBalance"),
                                           DEC("InitialTotal")};
static const iw_sim_schema line_item = IW_SIM_SCHEMA(line_item_f, false);

static const iw_sim_field line_f[] = {
    INT("InvoiceLineID"),
    INT("InvoiceID"),
    INT("ParentInvoiceLineID"),
    INT("OrderID"),
    S("InvoiceLineType"),
    S("Title"),
    INT("Priority"),
    DEC("Quantity"),
    DEC("Rate"),
    DEC("AmountBilled"),
    DEC("PreviouslyInvoiced"),
    DEC("PreviouslyInvoicedBalance"),
    DEC("InitialTotal"),
    S("Note"),
    BOOL("bNoteVisible"),
    BOOL("DisplayItem"),
    DEC("LineSubTotal"),
    DEC("Tax"),
    INT("ItemId"),
    S("ItemType"),
    S("LineType"),
    INT("TempInvoiceLineID"),
    GUID("InvoiceLineGuid"),
    GUID("ParentInvoiceLineGuid"),
    {"InvoiceLineItem", IW_SIM_ARR, 0, &line_item, "InvoiceLineItemSelectResponse"},
    S("ParentObjectType"),
    INT("ParentObjectID")};
static const iw_sim_schema line = IW_SIM_SCHEMA(line_f, false);

static const iw_sim_field request_f[] = {
    {"Guid", IW_SIM_GUID, IW_SIM_REQ, NULL, NULL},
    INT("InvoiceID"),
    S("InvoiceNumber"),
    S("InvoiceNumberExt"),
    INT("CustomerId"),
    S("UserName"),
    DATE("InvoiceDate"),
    DATE("InvoiceDueDate"),
    S("TermsCode"),
    DEC("SubTotalBilledAmount"),
    DEC("InvoiceTaxAmount"),
    DEC("TotalBilledAmount"),
    DEC("PaymentDueAmount"),
    DATE("PaymentBilledDateTime"),
    S("AddressLine1"),
    S("AddressLine2"),
    S("AddressLine3"),
    S("City"),
    S("StateCode"),
    S("ZipCode"),
    S("Phone"),
    S("Extension"),
    S("EmailAddress"),
    INT("ContactID"),
    S("InvoiceNote"),
    S("SourceModule"),
    S("InvoiceTitle"),
    S("Note"),
    BOOL("DisplayItem"),
    S("InvoiceStatus"),
    {"InvoiceLine", IW_SIM_ARR, 0, &line, "InvoiceLineSelectResponse"},
    S("PurchaseOrderNumber"),
    S("ItemDisplaySetting")};
static const iw_sim_schema request = IW_SIM_SCHEMA(request_f, false);

/* What the state keeps of each invoice. */
static const char *const kept[] = {"Guid",
                                   "InvoiceID",
                                   "InvoiceNumber",
                                   "InvoiceStatus",
                                   "InvoiceDate",
                                   "InvoiceDueDate",
                                   "SubTotalBilledAmount",
                                   "InvoiceTaxAmount",
                                   "TotalBilledAmount",
                                   "PaymentDueAmount",
                                   NULL};

static bool is_json_type(const char *ct)
{
    return ct &&
           (strncasecmp(ct, "application/json", 16) == 0 || strncasecmp(ct, "text/json", 9) == 0);
}

static bool is_xml_type(const char *ct)
{
    return ct &&
           (strncasecmp(ct, "application/xml", 15) == 0 || strncasecmp(ct, "text/xml", 8) == 0);
}

/* True when `tok` is one of the credentials in the Authorization headers. Each header (or
 * comma-separated part) is "<scheme> <token>" or just "<token>"; both headers may be sent
 * separately or folded into one. */
static bool has_token(const iw_sim_request *rq, const char *tok)
{
    size_t tl = strlen(tok);
    if (tl == 0)
        return false;
    for (int i = 0; i < rq->n_authorization; i++) {
        const char *p = rq->authorization[i];
        while (*p) {
            size_t part = strcspn(p, ",");
            size_t end = part;
            while (end > 0 && isspace((unsigned char)p[end - 1]))
                end--;
            size_t start = end;
            while (start > 0 && !isspace((unsigned char)p[start - 1]))
                start--;
            if (end - start == tl && strncmp(p + start, tok, tl) == 0)
                return true;
            p += part;
            if (*p == ',')
                p++;
        }
    }
    return false;
}

/* The update needs the current Midnight token. The refresh call (seed 002 does not document
 * it) needs a Midnight token too: the issued one or the current one, or with refresh_auth
 * "current" only the current one (a server where regenerating invalidates the old token). */
static bool auth_ok(const iw_sim_request *rq, bool refresh)
{
    const iw_sim_creds *k = rq->creds;
    const char *miskey = iw_sim_req_header(rq, "MISKEY");
    if (!miskey || strcmp(miskey, iw_sim_cred(k, "mis_key")) != 0)
        return false;
    if (!has_token(rq, iw_sim_cred(k, "prc_token")))
        return false;
    char cur[IW_SIM_SECRET_LEN];
    iw_sim_token_current(cur, sizeof(cur));
    if (*cur && has_token(rq, cur))
        return true;
    return refresh && strcmp(iw_sim_cred(k, "refresh_auth"), "issued") == 0 &&
           has_token(rq, iw_sim_cred(k, "midnight_token"));
}

/* Replies with a string, as JSON or as the ASP.NET XML serialization. */
static void reply_string(const iw_sim_request *rq, bool xml, const char *s, iw_sim_reply *rp)
{
    const char *accept = iw_sim_req_header(rq, "Accept");
    if (accept && strstr(accept, "json"))
        xml = false;
    else if (accept && strstr(accept, "xml"))
        xml = true;
    if (xml) {
        /* seed 002 line 609 shows <string> bare; ASP.NET's DataContractSerializer writes it in
         * its Serialization namespace: every other reply takes each form */
        static atomic_uint replies;
        iw_xmlw x;
        iw_xmlw_open(&x, false);
        iw_xmlw_start(&x, NULL, "string", NULL);
        if (atomic_fetch_add(&replies, 1) % 2)
            iw_xmlw_attr(&x, "xmlns", "http://schemas.microsoft.com/2003/10/Serialization/");
        if (!x.err && xmlTextWriterWriteString(x.w, (const xmlChar *)s) < 0)
            x.err = -1;
        iw_xmlw_end(&x);
        iw_sim_reply_xml(rp, 200, "application/xml; charset=utf-8", &x);
        return;
    }
    cJSON *j = cJSON_CreateString(s);
    iw_sim_reply_json(rp, 200, j);
    cJSON_Delete(j);
}

/* 400 in ASP.NET Web API's shape: {"Message": ..., "ModelState": {"request": [msgs]}}. */
static void reply_invalid(const iw_sim_errors *errs, const char *single, iw_sim_reply *rp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Message", "The request is invalid.");
    cJSON *ms = cJSON_AddObjectToObject(o, "ModelState");
    cJSON *arr = cJSON_AddArrayToObject(ms, "request");
    if (single)
        cJSON_AddItemToArray(arr, cJSON_CreateString(single));
    for (int i = 0; errs && i < errs->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(errs->msg[i]));
    iw_sim_reply_json(rp, 400, o);
    cJSON_Delete(o);
}

static cJSON *values_json(const cJSON *doc, const iw_sim_jnums *nums)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; kept[i]; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, kept[i]);
        const char *raw = cJSON_IsString(m)   ? m->valuestring
                          : cJSON_IsNumber(m) ? iw_sim_jnum_raw(nums, m)
                                              : NULL;
        cJSON_AddStringToObject(o, kept[i], raw ? raw : "");
    }
    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(doc, "InvoiceLine");
    cJSON_AddNumberToObject(o, "lines", cJSON_IsArray(lines) ? cJSON_GetArraySize(lines) : 0);
    return o;
}

/* ---- the lines Midnight holds per invoice ----
 * An update replaces the fields of the lines it names (InvoiceLineID or InvoiceLineGuid) and,
 * like a real InvoiceUpdate most likely does, adds a line that names none as a new one. The
 * state shows "lines" (sent) and "lines_stored" (held), so a client that sends the same lines
 * without their ids sees them pile up. */

#define MAX_HELD 256 /* invoices whose lines are tracked */

typedef struct held {
    char guid[64];  /* the invoice */
    char **keys;    /* line ids held ("id:7" or "guid:..."), one per line */
    size_t n, cap;  /* lines held, capacity */
    long long next; /* id given to the next new line */
} held;

static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static held helds[MAX_HELD];
static size_t n_helds;

void iw_sim_midnight_reset(void)
{
    pthread_mutex_lock(&held_mu);
    for (size_t i = 0; i < n_helds; i++) {
        for (size_t k = 0; k < helds[i].n; k++)
            free(helds[i].keys[k]);
        free(helds[i].keys);
    }
    memset(helds, 0, sizeof(helds));
    n_helds = 0;
    pthread_mutex_unlock(&held_mu);
}

static held *held_of(const char *guid)
{
    for (size_t i = 0; i < n_helds; i++)
        if (strcasecmp(helds[i].guid, guid) == 0)
            return &helds[i];
    if (n_helds == MAX_HELD)
        return NULL;
    held *h = &helds[n_helds++];
    snprintf(h->guid, sizeof(h->guid), "%s", guid);
    h->next = 1000000;
    return h;
}

static void held_add(held *h, const char *key)
{
    for (size_t k = 0; k < h->n; k++)
        if (strcmp(h->keys[k], key) == 0)
            return; /* an update of a line it holds */
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        char **keys = realloc(h->keys, cap * sizeof(*keys));
        if (!keys)
            return;
        h->keys = keys;
        h->cap = cap;
    }
    char *dup = strdup(key);
    if (dup)
        h->keys[h->n++] = dup;
}

/* Merges the lines of one accepted update (keys[i] "" = a line without an id); returns how
 * many lines the invoice now holds. */
static long long lines_stored(const char *guid, char keys[][80], size_t n)
{
    pthread_mutex_lock(&held_mu);
    held *h = held_of(guid);
    long long total = -1;
    if (h) {
        for (size_t i = 0; i < n; i++) {
            char fresh[80];
            if (!keys[i][0])
                snprintf(fresh, sizeof(fresh), "id:%lld", h->next++);
            held_add(h, keys[i][0] ? keys[i] : fresh);
        }
        total = (long long)h->n;
    }
    pthread_mutex_unlock(&held_mu);
    return total;
}

/* The key of one line: "id:<InvoiceLineID>", else "guid:<InvoiceLineGuid>", else "". */
static void line_key(const char *id, const char *guid, char *key, size_t len)
{
    if (id && *id && strcmp(id, "0") != 0)
        snprintf(key, len, "id:%s", id);
    else if (guid && *guid)
        snprintf(key, len, "guid:%s", guid);
    else
        key[0] = '\0';
}

static void count_json_lines(const cJSON *doc, const char *guid, cJSON *values,
                             const iw_sim_jnums *nums)
{
    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(doc, "InvoiceLine");
    size_t n = 0, total = (size_t)cJSON_GetArraySize(lines);
    char(*keys)[80] = calloc(total ? total : 1, sizeof(*keys));
    const cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        if (!keys || n == total)
            break;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(l, "InvoiceLineID");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(l, "InvoiceLineGuid");
        line_key(cJSON_IsNumber(id) ? iw_sim_jnum_raw(nums, id) : NULL,
                 cJSON_IsString(g) ? g->valuestring : NULL, keys[n], sizeof(keys[n]));
        n++;
    }
    cJSON_AddNumberToObject(values, "lines_stored",
                            keys ? (double)lines_stored(guid, keys, n) : -1);
    free(keys);
}

static void count_xml_lines(xmlNodePtr root, const char *guid, cJSON *values)
{
    xmlNodePtr list = iw_sim_xml_child(root, "InvoiceLine");
    size_t n = 0, total = 0;
    for (xmlNodePtr l = list ? list->children : NULL; l; l = l->next)
        total += l->type == XML_ELEMENT_NODE;
    char(*keys)[80] = calloc(total ? total : 1, sizeof(*keys));
    for (xmlNodePtr l = list ? list->children : NULL; keys && l; l = l->next) {
        if (l->type != XML_ELEMENT_NODE)
            continue;
        char id[40], g[64];
        iw_sim_xml_child_text(l, "InvoiceLineID", id, sizeof(id));
        iw_sim_xml_child_text(l, "InvoiceLineGuid", g, sizeof(g));
        line_key(id, g, keys[n], sizeof(keys[n]));
        n++;
    }
    cJSON_AddNumberToObject(values, "lines_stored",
                            keys ? (double)lines_stored(guid, keys, n) : -1);
    free(keys);
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Checks and records a JSON body; false when it was refused (rp set). */
static bool handle_json(const iw_sim_request *rq, char *guid, size_t glen, cJSON **values,
                        iw_sim_reply *rp)
{
    iw_sim_jnums nums;
    cJSON *doc = iw_sim_json_parse(rq->body, rq->body_len, &nums);
    if (!cJSON_IsObject(doc)) {
        reply_invalid(NULL, "request: the body is not a JSON object", rp);
        cJSON_Delete(doc);
        iw_sim_jnums_free(&nums);
        return false;
    }
    bool ok = true;
    if (rq->validate) {
        iw_sim_errors errs = {0};
        iw_sim_vctx v = {NULL, IW_SIM_DATE_ISO_ANY, &nums, &errs};
        iw_sim_check_json(&v, doc, &request, "");
        if (errs.total) {
            reply_invalid(&errs, NULL, rp);
            ok = false;
        }
    }
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(doc, "Guid");
    if (ok && (!cJSON_IsString(g) || !*g->valuestring)) {
        reply_invalid(NULL, "Guid: required member missing", rp);
        ok = false;
    }
    if (ok) {
        snprintf(guid, glen, "%s", g->valuestring);
        *values = values_json(doc, &nums);
        count_json_lines(doc, guid, *values, &nums);
    }
    cJSON_Delete(doc);
    iw_sim_jnums_free(&nums);
    return ok;
}

static bool handle_xml(const iw_sim_request *rq, char *guid, size_t glen, cJSON **values,
                       iw_sim_reply *rp)
{
    char err[256];
    xmlDocPtr doc = iw_sim_xml_parse(rq->body, rq->body_len, err, sizeof(err));
    if (!doc) {
        reply_invalid(NULL, err, rp);
        return false;
    }
    xmlNodePtr root = xmlDocGetRootElement(doc);
    bool ok = true;
    if (strcmp((const char *)root->name, "InvoiceUpdateRequest") != 0 || *iw_sim_xml_ns(root)) {
        /* seed 002 line 410: <InvoiceUpdateRequest> in no namespace */
        reply_invalid(NULL, "request: the root element is not InvoiceUpdateRequest in no namespace",
                      rp);
        ok = false;
    } else if (rq->validate) {
        iw_sim_errors errs = {0};
        iw_sim_vctx v = {NULL, IW_SIM_DATE_ISO_ANY, NULL, &errs};
        iw_sim_check_xml(&v, root, &request, "InvoiceUpdateRequest");
        if (errs.total) {
            reply_invalid(&errs, NULL, rp);
            ok = false;
        }
    }
    if (ok && !*iw_sim_xml_child_text(root, "Guid", guid, glen)) {
        reply_invalid(NULL, "Guid: required element missing", rp);
        ok = false;
    }
    if (ok) {
        *values = iw_sim_values_xml(root, kept);
        cJSON_AddNumberToObject(
            *values, "lines",
            iw_sim_xml_count(iw_sim_xml_child(root, "InvoiceLine"), "InvoiceLineSelectResponse"));
        count_xml_lines(root, guid, *values);
    }
    xmlFreeDoc(doc);
    return ok;
}

/* POST v1/Generic/InvoiceUpdate (JSON or XML). */
static void handle(const iw_sim_request *rq, iw_sim_reply *rp)
{
    if (!auth_ok(rq, false)) {
        iw_sim_contract_auth_failure(rq->conf, rq->target, rp);
        return;
    }
    bool xml = is_xml_type(rq->content_type);
    if (!xml && !is_json_type(rq->content_type)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "The request entity's media type '%.80s' is not supported for this resource.",
                 rq->content_type ? rq->content_type : "");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "Message", msg);
        iw_sim_reply_json(rp, 415, o);
        cJSON_Delete(o);
        return;
    }
    char guid[128];
    cJSON *values = NULL;
    bool ok = xml ? handle_xml(rq, guid, sizeof(guid), &values, rp)
                  : handle_json(rq, guid, sizeof(guid), &values, rp);
    if (!ok)
        return;
    char reply[128];
    snprintf(reply, sizeof(reply), "%s", guid);
    lower(guid);
    iw_sim_state_accept(rq->target, guid, values, rq, NULL, NULL, 0);
    reply_string(rq, xml, reply, rp);
}

/* POST v1/Token/RegenerateAuthToken: a new Midnight token as a JSON string. */
static void handle_token(const iw_sim_request *rq, iw_sim_reply *rp)
{
    if (!auth_ok(rq, true)) {
        iw_sim_contract_auth_failure(rq->conf, rq->target, rp);
        return;
    }
    char tok[IW_SIM_SECRET_LEN];
    iw_sim_token_rotate(tok, sizeof(tok));
    reply_string(rq, false, tok, rp);
}

static void message(iw_sim_reply *rp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Message", msg);
    iw_sim_reply_json(rp, status, o);
    cJSON_Delete(o);
}

static void auth_failure(const iw_sim_creds *k, iw_sim_reply *rp)
{
    message(rp, 401, "Authorization has been denied for this request.");
}

static void server_fault(const char *msg, iw_sim_reply *rp)
{
    message(rp, 500, msg);
}

/* 200 with msg as the string (an API answering errors as its string). */
static void refusal(const char *msg, iw_sim_reply *rp)
{
    cJSON *j = cJSON_CreateString(msg);
    iw_sim_reply_json(rp, 200, j);
    cJSON_Delete(j);
}

static const char *const refresh_words[] = {"issued", "current", NULL};

const iw_sim_route iw_sim_route_midnight = {
    .name = "midnight",
    .about = "Midnight v1/Generic/InvoiceUpdate (JSON or XML) and its token refresh",
    .content_type = "application/json; charset=utf-8",
    .paths = {{.suffix = "/v1/Generic/InvoiceUpdate", .method = "POST", .handle = handle},
              {.suffix = "/v1/Token/RegenerateAuthToken",
               .method = "POST",
               .handle = handle_token,
               .no_faults = true}},
    .auth_failure = auth_failure,
    .server_fault = server_fault,
    .refusal = refusal,
    .settings = {{.key = "prc_token", .value = "sim-prc"},
                 /* at start; POST /_sim/expire-token and the refresh call rotate it */
                 {.key = "midnight_token", .value = "sim-mt-5k9w"},
                 {.key = "mis_key", .value = "sim-mis"},
                 /* the Midnight token the refresh call must carry: the configured one or the
                  * current one, or only the current one (a refreshed token invalidates the
                  * one it replaced) */
                 {"refresh_auth", "issued", refresh_words, "\"issued\" or \"current\""}},
};
