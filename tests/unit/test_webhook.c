/* test_webhook.c: the Standard Webhooks adapter: the signature against values computed
 * outside this code, the same id and a new signature on a retry, decimal strings in the body,
 * secrets (whsec_, ${ENV}, secret_file) that never show in a print, malformed secrets, and the
 * reply rules. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "secrets.h"
#include "status.h"
#include "target.h"
#include "testdata.h"

/* base64 of the 32 bytes "unit-test-webhook-signing-key-32" */
#define SECRET_B64 "dW5pdC10ZXN0LXdlYmhvb2stc2lnbmluZy1rZXktMzI="
#define SECRET "whsec_" SECRET_B64

/* events/minimal.json as this adapter renders it (the body the signatures below are over) */
#define MINIMAL_BODY                                                                               \
    "{\"type\":\"invoice.created\",\"timestamp\":\"2026-11-21T10:05:00Z\",\"data\":{"              \
    "\"event_id\":\"01JD3Q5V8M2K7X9P4R6T0WQYZC\",\"tenant\":\"acme\",\"version\":1,"               \
    "\"invoice\":{\"id\":\"INV-2001\",\"currency\":\"EUR\",\"lines\":[{\"name\":\"Consulting\","   \
    "\"quantity\":\"1\",\"unit_price\":\"100.00\"}]}}}"

/* Computed independently of this code, with MINIMAL_BODY in the file body.json:
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
    cr_assert_str_eq(req.method, "POST");
    cr_assert_str_eq(req.url, "http://127.0.0.1:9/hooks");
    cr_assert_str_eq(req.body, MINIMAL_BODY);
    cr_assert_str_eq(iw_request_header(&req, "Content-Type"), "application/json");
    cr_assert_str_eq(iw_request_header(&req, "webhook-id"), "01JD3Q5V8M2K7X9P4R6T0WQYZC/wh");
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

Test(webhook, amounts_are_decimal_strings_and_the_version_an_integer)
{
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    iw_request req;
    char err[256] = "";
    cr_assert_eq(render(target(cfg), "complete.json", 1, &req, err, sizeof(err)), 0, "%s", err);
    cJSON *doc = cJSON_Parse(req.body);
    cr_assert_not_null(doc);
    cJSON *data = cJSON_GetObjectItem(doc, "data");
    cJSON *inv = cJSON_GetObjectItem(data, "invoice");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(data, "version")));
    cr_assert_eq(cJSON_GetObjectItem(data, "version")->valueint, 17);
    cr_assert_str_eq(cJSON_GetObjectItem(data, "event_id")->valuestring,
                     "01JD3Q5V8M2K7X9P4R6T0WQYZB");
    cr_assert_str_eq(cJSON_GetObjectItem(inv, "total")->valuestring, "1550.00");
    cr_assert_str_eq(cJSON_GetObjectItem(inv, "amount_due")->valuestring, "25.00");
    cJSON *line;
    int n = 0;
    cJSON_ArrayForEach(line, cJSON_GetObjectItem(inv, "lines"))
    {
        for (cJSON *m = line->child; m; m = m->next)
            cr_assert(cJSON_IsString(m), "lines[%d].%s is not a string", n, m->string);
        n++;
    }
    cr_assert_eq(n, 2);
    cr_assert_str_eq(iw_request_header(&req, "webhook-timestamp"), "0");
    cJSON_Delete(doc);
    iw_request_clear(&req);
    iw_config_free(cfg);
}

/* The secret and its bare base64 part never show in the printed request, and the registry
 * every log and dead letter goes through masks both. */
Test(webhook, the_secret_is_never_printed)
{
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    const iw_target_conf *tc = target(cfg);
    iw_request req;
    char err[256] = "";
    cr_assert_eq(render(tc, "complete.json", 1795255200000LL, &req, err, sizeof(err)), 0);
    char *text = iw_request_format_masked(&req);
    cr_assert_not_null(text);
    cr_assert_null(strstr(text, SECRET_B64), "%s", text);
    cr_assert_null(strstr(text, "whsec_"), "%s", text);
    cr_assert_not_null(strstr(text, "webhook-signature: v1,"));
    free(text);

    iw_secrets *s = iw_secrets_for_target(tc);
    cr_assert_not_null(s);
    static const char line[] = "receiver said: bad key " SECRET_B64 " (from " SECRET ")";
    char *m = iw_secrets_mask(s, line, strlen(line));
    cr_assert_not_null(m);
    cr_assert_null(strstr(m, SECRET_B64), "%s", m);
    cr_assert_null(strstr(m, "whsec_"), "%s", m);
    free(m);
    iw_secrets_free(s);
    iw_request_clear(&req);
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

Test(webhook, a_malformed_secret_is_refused_without_echoing_it)
{
    static const char *const bad[] = {
        "\"secret\": \"" SECRET_B64 "\"",                   /* no whsec_ */
        "\"secret\": \"whsec_not*base64*at*all*but*long\"", /* not base64 */
        "\"secret\": \"whsec_c2hvcnQta2V5\"",               /* 9 bytes: shorter than 24 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        iw_config_errors e;
        iw_config *cfg = load(bad[i], &e);
        iw_request req;
        char err[256] = "";
        cr_assert_eq(render(target(cfg), "minimal.json", 1, &req, err, sizeof(err)), IW_EINVAL,
                     "%s", bad[i]);
        cr_assert_not_null(strstr(err, "secret:"), "%s", err);
        cr_assert_null(strstr(err, "c2hvcnQta2V5"), "%s", err);
        cr_assert_null(strstr(err, "not*base64"), "%s", err);
        cr_assert_null(req.body);
        iw_config_free(cfg);
    }
}

Test(webhook, an_id_holding_a_dot_is_rejected)
{
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    const iw_target_conf *tc = target(cfg);
    iw_event *ev = iw_t_load_event("minimal.json");
    iw_t_set_text(&ev->event_id, "evt.1");
    char err[256] = "";
    cr_assert_eq(iw_target_validate(iw_target_find("webhook"), ev, tc, err, sizeof(err)),
                 IW_EINVAL);
    cr_assert_not_null(strstr(err, "event_id"), "%s", err);
    iw_event_free(ev);
    iw_config_free(cfg);
}

Test(webhook, replies_follow_the_spec_status_rules)
{
    static const struct {
        long status;
        const char *retry_after;
        iw_outcome_kind kind;
        iw_error_kind ek;
        int64_t retry_ms;
    } cases[] = {
        {200, NULL, IW_OUTCOME_OK, IW_ERR_NONE, -1},
        {204, NULL, IW_OUTCOME_OK, IW_ERR_NONE, -1},
        {301, NULL, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, -1},
        {400, NULL, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, -1},
        {401, NULL, IW_OUTCOME_AUTH, IW_ERR_AUTH, -1},
        {403, NULL, IW_OUTCOME_AUTH, IW_ERR_AUTH, -1},
        {408, NULL, IW_OUTCOME_RETRY, IW_ERR_REMOTE, -1},
        {410, NULL, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, -1},
        {429, "7", IW_OUTCOME_RETRY, IW_ERR_RATE_LIMITED, 7000},
        {502, NULL, IW_OUTCOME_RETRY, IW_ERR_REMOTE, -1},
        {503, "120", IW_OUTCOME_RETRY, IW_ERR_REMOTE, 120000},
    };
    iw_config_errors e;
    iw_config *cfg = load("\"secret\": \"" SECRET "\"", &e);
    const iw_target_conf *tc = target(cfg);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        iw_header h = {"Retry-After", (char *)cases[i].retry_after};
        iw_response resp = {.status = cases[i].status,
                            .headers = cases[i].retry_after ? &h : NULL,
                            .n_headers = cases[i].retry_after ? 1 : 0,
                            .now_ms = 1795255200000LL};
        iw_outcome o;
        iw_target_classify(iw_target_find("webhook"), tc, &resp, &o);
        cr_assert_eq(o.kind, cases[i].kind, "HTTP %ld", cases[i].status);
        cr_assert_eq(o.error_kind, cases[i].ek, "HTTP %ld", cases[i].status);
        if (o.kind == IW_OUTCOME_RETRY)
            cr_assert_eq(o.retry_after_ms, cases[i].retry_ms, "HTTP %ld", cases[i].status);
        cr_assert_null(strstr(o.message, SECRET_B64));
    }
    iw_config_free(cfg);
}
