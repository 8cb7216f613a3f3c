/* webhook.c: a Standard Webhooks receiver (standardwebhooks.com, spec 1.0.0), written from the
 * spec: POST /hooks/invoices with webhook-id, webhook-timestamp and webhook-signature; the
 * signature "v1,<base64 HMAC-SHA256>" over "id.timestamp.raw body" is recomputed here with the
 * configured whsec_ secret and compared in constant time; a timestamp more than 5 minutes from
 * this clock is refused (replay protection). Missing or garbled headers get 400, a signature or
 * timestamp that does not verify 401. Then the body must be one JSON document whose money and
 * quantities are decimal strings (the adapter's documented shape, docs/adapters.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "contract.h"
#include "state.h"

#define TOLERANCE_S 300 /* the spec's suggested replay window: 5 minutes either way */

static void refuse(iw_sim_reply *rp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    iw_sim_reply_json(rp, status, o);
    cJSON_Delete(o);
}

/* The key of a "whsec_<base64>" secret into key (EVP_DecodeBlock, which counts '=' padding as
 * zero bytes: they are taken off). Its length, or -1. */
static int secret_key(const char *secret, unsigned char *key, size_t cap)
{
    if (strncmp(secret, "whsec_", 6) != 0)
        return -1;
    const char *b64 = secret + 6;
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0 || (n / 4) * 3 > cap)
        return -1;
    int len = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return -1;
    for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
        len--;
    return len;
}

/* True when one of the space-separated "v1,<sig>" entries of header equals want (base64). */
static bool signature_matches(const char *header, const char *want)
{
    size_t wlen = strlen(want);
    bool ok = false;
    for (const char *p = header; *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 3 && strncmp(p, "v1,", 3) == 0 && n - 3 == wlen)
            ok |= CRYPTO_memcmp(p + 3, want, wlen) == 0; /* constant time, every entry tried */
        p += n;
    }
    return ok;
}

/* 0 when the request's headers verify; otherwise the status to answer, msg saying why. */
static int verify(const iw_sim_request *rq, char *msg, size_t len)
{
    const char *id = iw_sim_req_header(rq, "webhook-id");
    const char *ts = iw_sim_req_header(rq, "webhook-timestamp");
    const char *sig = iw_sim_req_header(rq, "webhook-signature");
    if (!id || !*id || !ts || !*ts || !sig || !*sig) {
        snprintf(msg, len, "missing webhook-id, webhook-timestamp or webhook-signature");
        return 400;
    }
    char *end;
    long long t = strtoll(ts, &end, 10);
    if (*end || ts[0] == '-' || ts[0] == '+') {
        snprintf(msg, len, "webhook-timestamp is not unix seconds");
        return 400;
    }
    if (!strstr(sig, "v1,")) {
        snprintf(msg, len, "webhook-signature holds no v1 signature");
        return 400;
    }
    long long now = iw_sim_wall_ms() / 1000;
    if (t < now - TOLERANCE_S || t > now + TOLERANCE_S) {
        snprintf(msg, len, "webhook-timestamp is more than %d s from now", TOLERANCE_S);
        return 401;
    }
    unsigned char key[128];
    int klen = secret_key(iw_sim_cred(rq->creds, "secret"), key, sizeof(key));
    if (klen <= 0) {
        snprintf(msg, len, "the simulator's secret is not whsec_<base64>");
        return 500;
    }
    size_t idl = strlen(id), tsl = strlen(ts), n = idl + tsl + 2 + rq->body_len;
    unsigned char *signed_content = malloc(n);
    if (!signed_content) {
        snprintf(msg, len, "out of memory");
        return 500;
    }
    snprintf((char *)signed_content, idl + tsl + 3, "%s.%s.", id, ts);
    memcpy(signed_content + idl + tsl + 2, rq->body, rq->body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    HMAC(EVP_sha256(), key, klen, signed_content, n, mac, &mlen);
    free(signed_content);
    char want[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)want, mac, (int)mlen);
    if (!signature_matches(sig, want)) {
        snprintf(msg, len, "no signature in webhook-signature verifies");
        return 401;
    }
    return 0;
}

/* A decimal string ("1550.00", "-3", "0.5"). */
static bool decimal_string(const cJSON *j)
{
    return cJSON_IsString(j) && iw_sim_is_decimal(j->valuestring);
}

/* Checks the body's shape; the first problem goes into msg. */
static bool check_body(const cJSON *doc, char *msg, size_t len)
{
    static const char *const amounts[] = {"subtotal",       "tax_total", "discount_total",
                                          "shipping_total", "total",     "amount_paid",
                                          "amount_due"};
    static const char *const line_amounts[] = {"quantity", "unit_price", "discount_amount",
                                               "tax_rate", "tax_amount", "line_total"};
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(data, "invoice");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(data, "version");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "type")) || !cJSON_IsObject(data)) {
        snprintf(msg, len, "expected {\"type\": ..., \"data\": {...}}");
        return false;
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "event_id")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "tenant")) ||
        !cJSON_IsNumber(version) || !cJSON_IsObject(inv) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(inv, "id")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(inv, "currency"))) {
        snprintf(msg, len, "data needs event_id, tenant, version and invoice.id, .currency");
        return false;
    }
    for (size_t i = 0; i < sizeof(amounts) / sizeof(amounts[0]); i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(inv, amounts[i]);
        if (a && !decimal_string(a)) {
            snprintf(msg, len, "invoice.%s: expected a decimal string", amounts[i]);
            return false;
        }
    }
    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(inv, "lines");
    if (!cJSON_IsArray(lines) || cJSON_GetArraySize(lines) == 0) {
        snprintf(msg, len, "invoice.lines: expected at least one line");
        return false;
    }
    int k = 0;
    for (const cJSON *l = lines->child; l; l = l->next, k++) {
        for (size_t i = 0; i < sizeof(line_amounts) / sizeof(line_amounts[0]); i++) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(l, line_amounts[i]);
            if (a && !decimal_string(a)) {
                snprintf(msg, len, "invoice.lines[%d].%s: expected a decimal string", k,
                         line_amounts[i]);
                return false;
            }
        }
    }
    return true;
}

/* What the state view keeps of an accepted delivery. */
static cJSON *values(const cJSON *doc, const iw_sim_request *rq)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(data, "invoice");
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "webhook_id", iw_sim_req_header(rq, "webhook-id"));
    cJSON_AddItemToObject(v, "event_id",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(data, "event_id"), 1));
    cJSON_AddItemToObject(v, "tenant",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(data, "tenant"), 1));
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(inv, "total");
    if (total)
        cJSON_AddItemToObject(v, "total", cJSON_Duplicate(total, 1));
    cJSON_AddNumberToObject(v, "lines",
                            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(inv, "lines")));
    return v;
}

/* POST /hooks/invoices. */
static void handle(const iw_sim_request *rq, iw_sim_reply *rp)
{
    char msg[200];
    int st = verify(rq, msg, sizeof(msg));
    if (st) {
        refuse(rp, st, msg);
        return;
    }
    if (rq->validate &&
        (!rq->content_type || strncasecmp(rq->content_type, "application/json", 16) != 0)) {
        refuse(rp, 415, "Content-Type must be application/json");
        return;
    }
    cJSON *doc = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        refuse(rp, 400, "the body is not a JSON object");
        return;
    }
    if (rq->validate && !check_body(doc, msg, sizeof(msg))) {
        cJSON_Delete(doc);
        refuse(rp, 400, msg);
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "data"), "invoice"),
        "id");
    if (!cJSON_IsString(id)) {
        cJSON_Delete(doc);
        refuse(rp, 400, "data.invoice.id: expected a string");
        return;
    }
    iw_sim_state_accept(rq->target, id->valuestring, values(doc, rq), rq, NULL, NULL, 0);
    cJSON_Delete(doc);
    static const char ok[] = "{\"received\":true}";
    iw_sim_reply_set(rp, 200, "application/json; charset=utf-8", ok, sizeof(ok) - 1);
}

static void auth_failure(const iw_sim_creds *k, iw_sim_reply *rp)
{
    refuse(rp, 401, "signature verification failed");
}

static void server_fault(const char *msg, iw_sim_reply *rp)
{
    refuse(rp, 500, msg);
}

static void refusal(const char *msg, iw_sim_reply *rp)
{
    refuse(rp, 400, msg);
}

const iw_sim_route iw_sim_route_webhook = {
    .name = "webhook",
    .about = "a Standard Webhooks receiver, POST /hooks/invoices (signed with a whsec_ secret)",
    .content_type = "application/json; charset=utf-8",
    .paths = {{.suffix = "/hooks/invoices", .method = "POST", .handle = handle}},
    .auth_failure = auth_failure,
    .server_fault = server_fault,
    .refusal = refusal,
    /* base64 of "target-sim-webhook-signing-key!!" (32 bytes) */
    .settings = {{.key = "secret", .value = "whsec_dGFyZ2V0LXNpbS13ZWJob29rLXNpZ25pbmcta2V5ISE="}},
};
