/* webhook.c: a generic JSON webhook signed as the Standard Webhooks specification says
 * (standardwebhooks.com, spec/standard-webhooks.md, version 1.0.0): POST of the invoice as JSON
 * with headers webhook-id, webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256>".
 *
 * The body is written by the one mapping engine (mapping.h) from the mapping below, in the
 * dialect of a mapping file; the signature, headers and secret stay in C. Its shape (field
 * names are this adapter's own; the spec fixes only the envelope's shape):
 *   {"type": "invoice.updated",               the event's type, as the event had it
 *    "timestamp": "2026-11-21T10:04:05Z",     the event's occurred_at
 *    "data": {"event_id", "tenant", "source", "version": 17,
 *             "invoice": {"id", "number", "status", "currency", "issue_date", "due_date",
 *                         "po_number", "subtotal", "tax_total", "discount_total",
 *                         "shipping_total", "total", "amount_paid", "amount_due",
 *                         "customer": {"id", "name", "email", "fiscal_id"},
 *                         "billing_address": {...}, "shipping_address": {...},
 *                         "lines": [{"line_no", "sku", "name", "description", "quantity",
 *                                    "unit", "unit_price", "discount_amount", "tax_rate",
 *                                    "tax_amount", "line_total"}]}}}
 * Amounts, quantities and rates are JSON strings holding the event's exact decimal text, never
 * numbers (a receiver's JSON parser would make them doubles). Absent fields are left out. */
#include "target.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mapping.h"
#include "status.h"
#include "wbuf.h"

#define SECRET_PREFIX "whsec_"
/* The spec: a symmetric secret is random, at least 24 bytes (192 bits) and at most 512 bits. */
#define SECRET_MIN 24
#define SECRET_MAX 64

/* The settings of a webhook instance, read by the loader from wh_fields below. */
typedef struct wh_conf {
    char *secret; /* secret: "whsec_<base64>", the signing key is the decoded bytes */
} wh_conf;

static const wh_conf *whc(const iw_target_conf *tc)
{
    return tc->adapter_conf;
}

/* ------------------------------------------------------------------ the body's mapping */

/* The body, in the dialect of a generic target's mapping file (docs/adapters.md), read once by
 * the mapping engine. Amounts are text rows, so their exact decimal text goes out as a JSON
 * string; version is an integer, a JSON number. An object is left out when none of its members
 * is set; lines is always there, [] when there are none. J() turns the JSON written below into
 * a string literal. */
#define J(...) #__VA_ARGS__

/* clang-format off */
static iw_map_builtin wh_map = IW_MAP_BUILTIN("webhook", J(
{"dialect": "json", "root": {"children": [
  {"name": "type", "path": "type", "default": "invoice.updated"},
  {"name": "timestamp", "path": "occurred_at"},
  {"name": "data", "children": [
   {"name": "event_id", "path": "event_id", "absent": "empty"},
   {"name": "tenant", "path": "tenant", "absent": "empty"},
   {"name": "source", "path": "source"},
   {"name": "version", "path": "version", "format": "integer"},
   {"name": "invoice", "children": [
    {"name": "id", "path": "invoice.id"},
    {"name": "number", "path": "invoice.number"},
    {"name": "status", "path": "invoice.status"},
    {"name": "currency", "path": "invoice.currency"},
    {"name": "issue_date", "path": "invoice.issue_date"},
    {"name": "due_date", "path": "invoice.due_date"},
    {"name": "po_number", "path": "invoice.po_number"},
    {"name": "subtotal", "path": "invoice.subtotal"},
    {"name": "tax_total", "path": "invoice.tax_total"},
    {"name": "discount_total", "path": "invoice.discount_total"},
    {"name": "shipping_total", "path": "invoice.shipping_total"},
    {"name": "total", "path": "invoice.total"},
    {"name": "amount_paid", "path": "invoice.amount_paid"},
    {"name": "amount_due", "path": "invoice.amount_due"},
    {"name": "customer", "if": {"present": [
      "invoice.customer.id", "invoice.customer.name", "invoice.customer.email",
      "invoice.customer.fiscal_id"]},
     "children": [
      {"name": "id", "path": "invoice.customer.id"},
      {"name": "name", "path": "invoice.customer.name"},
      {"name": "email", "path": "invoice.customer.email"},
      {"name": "fiscal_id", "path": "invoice.customer.fiscal_id"}]},
    {"name": "billing_address", "if": {"present": [
      "invoice.billing_address.company", "invoice.billing_address.first_name",
      "invoice.billing_address.last_name", "invoice.billing_address.line1",
      "invoice.billing_address.line2", "invoice.billing_address.city",
      "invoice.billing_address.postal_code", "invoice.billing_address.state",
      "invoice.billing_address.country"]},
     "children": [
      {"name": "company", "path": "invoice.billing_address.company"},
      {"name": "first_name", "path": "invoice.billing_address.first_name"},
      {"name": "last_name", "path": "invoice.billing_address.last_name"},
      {"name": "line1", "path": "invoice.billing_address.line1"},
      {"name": "line2", "path": "invoice.billing_address.line2"},
      {"name": "city", "path": "invoice.billing_address.city"},
      {"name": "postal_code", "path": "invoice.billing_address.postal_code"},
      {"name": "state", "path": "invoice.billing_address.state"},
      {"name": "country", "path": "invoice.billing_address.country"}]},
    {"name": "shipping_address", "if": {"present": [
      "invoice.shipping_address.company", "invoice.shipping_address.first_name",
      "invoice.shipping_address.last_name", "invoice.shipping_address.line1",
      "invoice.shipping_address.line2", "invoice.shipping_address.city",
      "invoice.shipping_address.postal_code", "invoice.shipping_address.state",
      "invoice.shipping_address.country"]},
     "children": [
      {"name": "company", "path": "invoice.shipping_address.company"},
      {"name": "first_name", "path": "invoice.shipping_address.first_name"},
      {"name": "last_name", "path": "invoice.shipping_address.last_name"},
      {"name": "line1", "path": "invoice.shipping_address.line1"},
      {"name": "line2", "path": "invoice.shipping_address.line2"},
      {"name": "city", "path": "invoice.shipping_address.city"},
      {"name": "postal_code", "path": "invoice.shipping_address.postal_code"},
      {"name": "state", "path": "invoice.shipping_address.state"},
      {"name": "country", "path": "invoice.shipping_address.country"}]},
    {"name": "lines", "each": "invoice.lines", "absent": "empty", "children": [
      {"name": "line_no", "path": "lines[].line_no"},
      {"name": "sku", "path": "lines[].sku"},
      {"name": "name", "path": "lines[].name"},
      {"name": "description", "path": "lines[].description"},
      {"name": "quantity", "path": "lines[].quantity"},
      {"name": "unit", "path": "lines[].unit"},
      {"name": "unit_price", "path": "lines[].unit_price"},
      {"name": "discount_amount", "path": "lines[].discount_amount"},
      {"name": "tax_rate", "path": "lines[].tax_rate"},
      {"name": "tax_amount", "path": "lines[].tax_amount"},
      {"name": "line_total", "path": "lines[].line_total"}]}]}]}]}}));
/* clang-format on */

static int write_body(iw_jw *j, const iw_event *ev, char *errbuf, size_t errlen)
{
    const iw_map *m = iw_map_builtin_get(&wh_map, errbuf, errlen);
    if (!m)
        return IW_EINVAL;
    iw_jw_object(j, NULL);
    int rc = iw_map_write_json(m, ev, NULL, j, errbuf, errlen);
    iw_jw_finish(j);
    return rc;
}

/* ------------------------------------------------------------------ the signature */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes standard base64 (the '=' padding may be left off) into out; returns the byte count,
 * or -1 for text that is not base64 or does not fit in cap bytes. */
static int b64_decode(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s), o = 0;
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (strlen(s) - n > 2 || n % 4 == 1)
        return -1;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)o;
}

#define STR_(x) #x
#define STR(x) STR_(x)

/* The signing key of secret "whsec_<base64>" into key (SECRET_MAX bytes); its length, or -1
 * with *why set to what is wrong (never quoting the secret). */
static int decode_secret(const char *secret, unsigned char *key, const char **why)
{
    const size_t plen = strlen(SECRET_PREFIX);
    if (!secret || strncmp(secret, SECRET_PREFIX, plen) != 0) {
        *why = "expected whsec_ followed by the base64 signing key";
        return -1;
    }
    int n = b64_decode(secret + plen, key, SECRET_MAX);
    if (n < SECRET_MIN) {
        *why = "the part after whsec_ must be base64 of " STR(SECRET_MIN) " to " STR(
            SECRET_MAX) " bytes (standard webhooks)";
        return -1;
    }
    return n;
}

/* The config loader's check of the secret: a malformed one stops the worker at start-up (and
 * check-config) instead of failing every event. */
static const char *secret_problem(const char *secret)
{
    unsigned char key[SECRET_MAX];
    const char *why = NULL;
    return decode_secret(secret, key, &why) < 0 ? why : NULL;
}

/* The signing key of secret into key; its length, or -1 with errbuf set. */
static int signing_key(const char *secret, unsigned char *key, char *errbuf, size_t errlen)
{
    const char *why = NULL;
    int n = decode_secret(secret, key, &why);
    if (n < 0)
        snprintf(errbuf, errlen, "secret: %s", why);
    return n;
}

/* "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" into sig (at least 64 bytes). */
static int sign(const unsigned char *key, int keylen, const char *id, const char *ts,
                const char *body, size_t body_len, char *sig, size_t siglen)
{
    size_t idlen = strlen(id), tslen = strlen(ts);
    size_t n = idlen + 1 + tslen + 1 + body_len;
    unsigned char *msg = malloc(n ? n : 1);
    if (!msg)
        return IW_ENOMEM;
    memcpy(msg, id, idlen);
    msg[idlen] = '.';
    memcpy(msg + idlen + 1, ts, tslen);
    msg[idlen + 1 + tslen] = '.';
    memcpy(msg + idlen + tslen + 2, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    const unsigned char *ok = HMAC(EVP_sha256(), key, keylen, msg, n, mac, &maclen);
    free(msg);
    if (!ok || siglen < 4 + 4 * ((maclen + 2) / 3) + 1)
        return IW_ENOMEM;
    memcpy(sig, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)sig + 3, mac, (int)maclen);
    return 0;
}

/* ------------------------------------------------------------------ the ops */

/* The webhook-id: the call's result_id "<event_id>/<target>", the same on every attempt. The
 * spec signs "id.timestamp.body" and warns that an id holding '.' lets a signature be read
 * with other boundaries, so such an id is refused. */
static int message_id(const iw_event *ev, const iw_target_conf *tc, char *id, size_t idlen,
                      char *errbuf, size_t errlen)
{
    if (!ev->event_id || !*ev->event_id || strchr(ev->event_id, '.')) {
        snprintf(errbuf, errlen, "event_id: a webhook-id must be present and hold no '.'");
        return IW_EINVAL;
    }
    if (strchr(tc->name ? tc->name : "", '.')) {
        snprintf(errbuf, errlen, "target name %s: a webhook-id must hold no '.'", tc->name);
        return IW_EINVAL;
    }
    if ((size_t)snprintf(id, idlen, "%s/%s", ev->event_id, tc->name ? tc->name : "") >= idlen) {
        snprintf(errbuf, errlen, "event_id: too long for a webhook-id");
        return IW_EINVAL;
    }
    return 0;
}

static int wh_validate(const iw_event *ev, const iw_target_conf *tc, char *errbuf, size_t errlen)
{
    char id[256];
    return message_id(ev, tc, id, sizeof(id), errbuf, errlen);
}

static int wh_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                     iw_request *out, char *errbuf, size_t errlen)
{
    unsigned char key[SECRET_MAX];
    char id[256], ts[24], sig[128];
    int rc = message_id(ev, tc, id, sizeof(id), errbuf, errlen);
    int keylen = rc ? -1 : signing_key(whc(tc)->secret, key, errbuf, errlen);
    if (keylen < 0)
        return rc ? rc : IW_EINVAL;
    /* the attempt's time, not the event's: a retry is signed anew */
    snprintf(ts, sizeof(ts), "%lld", (long long)((ctx ? ctx->now_ms : 0) / 1000));

    snprintf(out->method, sizeof(out->method), "POST");
    iw_jw j;
    iw_jw_begin(&j, iw_wbuf_scratch());
    if ((rc = write_body(&j, ev, errbuf, errlen)) ||
        (rc = iw_request_set_body_from(out, j.b, errbuf, errlen)))
        goto fail;
    if ((rc = sign(key, keylen, id, ts, out->body, out->body_len, sig, sizeof(sig))))
        goto oom;
    if (!(out->url = strdup(tc->url)) ||
        iw_request_add_header(out, "Content-Type", "application/json") ||
        iw_request_add_header(out, "webhook-id", id) ||
        iw_request_add_header(out, "webhook-timestamp", ts) ||
        iw_request_add_header(out, "webhook-signature", sig) ||
        iw_request_add_secret(out, whc(tc)->secret) ||
        iw_request_add_secret(out, whc(tc)->secret + strlen(SECRET_PREFIX)))
        goto oom;
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
oom:
    rc = IW_ENOMEM;
    snprintf(errbuf, errlen, "out of memory");
fail:
    OPENSSL_cleanse(key, sizeof(key));
    iw_request_clear(out);
    return rc;
}

/* The spec's status handling: 2xx delivered; 429, 502, 504 and other 5xx throttle and retry,
 * Retry-After honoured; 410 Gone and other 4xx are failures that a retry does not mend; 401
 * and 403 are a refused signature or credential. */
static void wh_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    iw_outcome_from_status(resp, out);
    long st = resp->status;
    const char *why = NULL;
    if (st == 401 || st == 403)
        why = "signature or credentials refused";
    else if (st == 410)
        why = "the endpoint is gone (the receiver asks to stop sending)";
    else if (st >= 300 && st < 400)
        why = "redirected: update the target's url";
    else if (st == 429)
        why = "rate limited";
    else if (st >= 500)
        why = "receiver error";
    else if (out->kind == IW_OUTCOME_PERMANENT)
        why = "refused by the receiver";
    if (why)
        snprintf(out->message, sizeof(out->message), "HTTP %ld: %s", st, why);
}

/* The bare base64 part of the secret is a form of it too (a receiver's error may echo it). */
static int wh_secret_forms(const iw_target_conf *tc, iw_secrets *s)
{
    const char *sec = whc(tc)->secret;
    size_t plen = strlen(SECRET_PREFIX);
    return sec && strncmp(sec, SECRET_PREFIX, plen) == 0 ? iw_secrets_add(s, sec + plen) : 0;
}

static const iw_conf_field wh_fields[] = {
    {.key = "secret",
     .kind = IW_CONF_SECRET,
     .off = offsetof(wh_conf, secret),
     .wire = true,
     .required = "the endpoint's signing secret, whsec_<base64>",
     .check = secret_problem},
    {0},
};

/* The instance name is part of every webhook-id (see message_id), so a '.' in it would make
 * every event's signed content ambiguous: refused at load rather than at every render. */
static const char *name_problem(const char *name)
{
    return strchr(name, '.') ? "a webhook instance name must hold no '.' (it is part of the "
                               "signed webhook-id)"
                             : NULL;
}

static const iw_conf_adapter webhook_conf = {
    .type = "webhook",
    /* no seed: the receiver's endpoint */
    .url = "https://receiver.example/webhooks/invoices",
    .size = sizeof(wh_conf),
    .fields = wh_fields,
    /* base64 of "placeholder-signing-key!" (24 bytes) */
    .placeholders = "{\"secret\": \"whsec_cGxhY2Vob2xkZXItc2lnbmluZy1rZXkh\"}",
    .check_name = name_problem,
};

const iw_target_ops iw_target_webhook = {
    .type = "webhook",
    .conf = &webhook_conf,
    .secret_forms = wh_secret_forms,
    .validate = wh_validate,
    .render = wh_render,
    .classify = wh_classify,
};
