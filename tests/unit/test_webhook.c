/* test_webhook.c: what the webhook's case files (tests/cases/webhook) cannot state: the
 * signature at a given clock against values computed outside this code, the same id and a new
 * signature on a retry, the secret read from ${ENV} or secret_file (and required), and the
 * secret registry masking the secret's bare base64 part. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "secrets.h"
#include "target.h"
#include "testdata.h"

/* base64 of the 32 bytes "unit-test-webhook-signing-key-32" */
#define SECRET_B64 "dW5pdC10ZXN0LXdlYmhvb2stc2lnbmluZy1rZXktMzI="
#define SECRET "whsec_" SECRET_B64

/* Computed independently of this code, with events/minimal.json as this adapter renders it (the
 * 252-byte body tests/cases/webhook/0001-minimal-request.case states) in the file body.json:
 *   python3 -c 'import hmac,hashlib,base64; k=base64.b64decode("dW5pdC10ZXN0LXdlYmhvb2stc2lnb\
 * mluZy1rZXktMzI="); b=open("body.json","rb").read(); print(base64.b64encode(hmac.new(k,
 * b"01JD3Q5V8M2K7X9P4R6T0WQYZC/wh.1795255200."+b, hashlib.sha256).digest()).decode())'
 * and the same with timestamp 1795255290. */
#define SIG_AT_1795255200 "v1,cdxVsYAnxCbTOXOG2YSgrP7v5ltPnOTFbLG24BplAog="
#define SIG_AT_1795255290 "v1,y5znzf32RkIZ/a3iKuCeV7d8AEkbbHO2r4R2yOH4Kks="

/* A config with one webhook target "wh" whose secret is given as the JSON value secret_json. */
static iw_config *load(const char *secret_json, iw_config_errors *e)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"targets\": {\"wh\": {\"type\": \"webhook\", \"url\": "
             "\"http://127.0.0.1:9/hooks\", %s}}}",
             secret_json);
    return iw_config_parse(json, NULL, e);
}

static const iw_target_conf *target(iw_config *cfg)
{
    cr_assert_not_null(cfg);
    const iw_target_conf *tc = iw_config_target(cfg, "wh");
    cr_assert_not_null(tc);
    return tc;
}

/* Renders events/NAME at now_ms; the caller clears req. */
static int render(const iw_target_conf *tc, const char *name, int64_t now_ms, iw_request *req,
                  char *err, size_t errlen)
{
    iw_event *ev = iw_t_load_event(name);
    const iw_target_ops *ops = iw_target_find("webhook");
    cr_assert_not_null(ops);
    iw_render_ctx ctx = {.state = NULL, .now_ms = now_ms};
    memset(req, 0, sizeof(*req));
    int rc = iw_target_validate(ops, ev, tc, err, errlen);
    if (rc == 0)
        rc = iw_target_render(ops, ev, tc, &ctx, req, err, errlen);
    iw_event_free(ev);
    return rc;
}

Test(webhook, signature_matches_an_independent_computation)
{
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    iw_request req;
    char err[256] = "";
    cr_assert_eq(render(target(cfg), "minimal.json", 1795255200999LL, &req, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(iw_request_header(&req, "webhook-timestamp"), "1795255200");
    cr_assert_str_eq(iw_request_header(&req, "webhook-signature"), SIG_AT_1795255200);
    iw_request_clear(&req);
    iw_config_free(cfg);
}

Test(webhook, a_retry_keeps_its_id_and_is_signed_at_its_own_time)
{
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    iw_request a, b;
    char err[256] = "";
    cr_assert_eq(render(target(cfg), "minimal.json", 1795255200000LL, &a, err, sizeof(err)), 0);
    cr_assert_eq(render(target(cfg), "minimal.json", 1795255290000LL, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(iw_request_header(&a, "webhook-id"), iw_request_header(&b, "webhook-id"));
    cr_assert_str_eq(iw_request_header(&b, "webhook-timestamp"), "1795255290");
    cr_assert_str_eq(iw_request_header(&b, "webhook-signature"), SIG_AT_1795255290);
    cr_assert_str_eq(a.body, b.body);
    iw_request_clear(&a);
    iw_request_clear(&b);
    iw_config_free(cfg);
}

/* The registry every log and dead letter goes through masks the secret and its bare base64
 * part (the adapter's secret_forms), which no printed request holds to show it. */
Test(webhook, the_registry_masks_both_forms_of_the_secret)
{
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    iw_secrets *s = iw_secrets_for_target(target(cfg));
    cr_assert_not_null(s);
    static const char line[] = "receiver said: bad key " SECRET_B64 " (from " SECRET ")";
    char *m = iw_secrets_mask(s, line, strlen(line));
    cr_assert_not_null(m);
    cr_assert_null(strstr(m, SECRET_B64), "%s", m);
    cr_assert_null(strstr(m, "whsec_"), "%s", m);
    free(m);
    iw_secrets_free(s);
    iw_config_free(cfg);
}

Test(webhook, the_secret_comes_from_env_or_a_file)
{
    iw_config_errors e;
    setenv("IW_T_WEBHOOK_SECRET", SECRET, 1);
    iw_config *cfg = load("\"secret\": \"${IW_T_WEBHOOK_SECRET}\"", &e);
    iw_request req;
    char err[256] = "";
    cr_assert_eq(render(target(cfg), "minimal.json", 1795255200000LL, &req, err, sizeof(err)), 0);
    cr_assert_str_eq(iw_request_header(&req, "webhook-signature"), SIG_AT_1795255200);
    iw_request_clear(&req);
    iw_config_free(cfg);

    char path[] = "/tmp/iw-webhook-secret-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, SECRET "\n", strlen(SECRET) + 1), (ssize_t)strlen(SECRET) + 1);
    close(fd);
    char json[256];
    snprintf(json, sizeof(json), "\"secret_file\": \"%s\"", path);
    cfg = load(json, &e);
    cr_assert_eq(render(target(cfg), "minimal.json", 1795255200000LL, &req, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(iw_request_header(&req, "webhook-signature"), SIG_AT_1795255200);
    iw_request_clear(&req);
    iw_config_free(cfg);
    unlink(path);

    cr_assert_null(load("\"url\": \"http://127.0.0.1:9/x\"", &e), "the secret is required");
}
