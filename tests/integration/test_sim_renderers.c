/* test_sim_renderers.c: what the real adapters render from the sample events is accepted by
 * the target simulator, and their classifiers read the simulator's replies (success, auth
 * failure and the Midnight token refresh) as the design says. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "adapters.h"
#include "config.h"
#include "docpaths.h"
#include "invoice.h"
#include "midnight.h"
#include "target.h"
#include "stack.h"
#include "testproc.h"

static iw_proc sim;
static int port;

static void start(void)
{
    char listen[64], line[128], want[128];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    port = iw_free_port();
    cr_assert_gt(port, 0);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    char *argv[] = {(char *)iw_build_path("target-sim"), "--listen", listen, "--exit-with-parent",
                    NULL};
    cr_assert_eq(iw_proc_start(&sim, argv, true), 0);
    cr_assert_gt(iw_proc_read_line(&sim, line, sizeof(line), 10000), 0);
    snprintf(want, sizeof(want), "target-sim listening on 127.0.0.1:%d", port);
    cr_assert_str_eq(line, want);
}

static void stop(void)
{
    iw_proc_stop(&sim, 10000);
    curl_global_cleanup();
}

TestSuite(sim_renderers, .init = start, .fini = stop, .timeout = 120);

/* A reply as received, kept for the classifier. */
typedef struct reply {
    long status;
    char *body;
    size_t len;
    iw_header headers[32];
    size_t n_headers;
} reply;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    char *b = realloc(r->body, r->len + sz * n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, sz * n);
    r->body = b;
    r->len += sz * n;
    b[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = sz * n;
    const char *colon = memchr(p, ':', len);
    if (!colon || r->n_headers >= 32)
        return len;
    const char *v = colon + 1;
    while (v < p + len && *v == ' ')
        v++;
    size_t vl = (size_t)(p + len - v);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    iw_header *h = &r->headers[r->n_headers++];
    h->name = strndup(p, (size_t)(colon - p));
    h->value = strndup(v, vl);
    return len;
}

static void reply_free(reply *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Sends a rendered request as the dispatcher would (method, URL, headers, body). */
static void send_request(const iw_request *q, reply *r)
{
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; i < q->n_headers; i++) {
        char h[1024];
        snprintf(h, sizeof(h), "%s: %s", q->headers[i].name, q->headers[i].value);
        hl = curl_slist_append(hl, h);
    }
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)q->body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OK, "%s: %s", q->url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    if (!r->body)
        r->body = calloc(1, 1);
}

static void classify(const iw_target_ops *ops, const iw_target_conf *tc, const reply *r,
                     iw_outcome *out)
{
    iw_response resp = {.status = r->status,
                        .headers = r->headers,
                        .n_headers = r->n_headers,
                        .body = r->body,
                        .body_len = r->len,
                        .now_ms = 0};
    memset(out, 0, sizeof(*out));
    iw_target_classify(ops, tc, &resp, out);
}

/* The local stack's config (tests/fixtures/config/local-stack.json, where each target instance
 * is named by its type) pointed at this simulator, with the simulator's credentials from the
 * stack's env file: what the stack suites and the demo run with. Caller frees. */
static iw_config *stack_config(void)
{
    char base[64], path[] = "/tmp/iw-sim-renderers-XXXXXX";
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(iw_stack_load_env(), 0);
    iw_stack_addrs a = {.brokers = "127.0.0.1:9", .redis_port = 6379, .sim_base = base};
    cr_assert_eq(iw_stack_config_write(path, &a, NULL, 0), 0);
    iw_config_errors e;
    iw_config *cfg = iw_config_load(path, &e);
    unlink(path);
    cr_assert_not_null(cfg, "%s: %s", e.items[0].path, e.items[0].message);
    return cfg;
}

/* The instance of `type` in the local stack's config, taken out of it (caller clears tc). */
static void conf_for(iw_target_conf *tc, const char *type)
{
    iw_config *cfg = stack_config();
    const iw_target_conf *found = iw_config_target(cfg, type);
    cr_assert(found && strcmp(found->type, type) == 0,
              "tests/fixtures/config/local-stack.json has no target %s of that type", type);
    size_t i = (size_t)(found - cfg->targets);
    *tc = cfg->targets[i];
    memset(&cfg->targets[i], 0, sizeof(cfg->targets[i]));
    iw_config_free(cfg);
}

static iw_event *load_event(const char *name)
{
    char path[512], err[256];
    size_t len;
    snprintf(path, sizeof(path), "%s/events/%s", IW_FIXTURES_DIR, name);
    char *json = iw_read_file(path, &len);
    cr_assert_not_null(json, "cannot read %s", path);
    iw_event *ev = NULL;
    cr_assert_eq(iw_event_parse(json, len, &ev, err, sizeof(err)), 0, "%s: %s", name, err);
    free(json);
    return ev;
}

/* Renders ev for tc and sends it; returns the HTTP status and fills out. */
static long render_and_send(const iw_target_ops *ops, const iw_event *ev, const iw_target_conf *tc,
                            const char *token, iw_outcome *out)
{
    iw_request q;
    memset(&q, 0, sizeof(q));
    void *state = token ? ops->state_new(tc) : NULL; /* as after a token refresh */
    cr_assert(!token || (state && ops->store_refresh(state, token) == 0));
    iw_render_ctx ctx = {.state = state, .now_ms = (int64_t)time(NULL) * 1000};
    char err[256];
    cr_assert_eq(iw_target_render(ops, ev, tc, &ctx, &q, err, sizeof(err)), 0, "%s: %s", tc->type,
                 err);
    if (state)
        ops->state_free(state);
    cr_assert_eq(iw_request_add_call_headers(&q, ev->event_id, tc->name, 1, ev->version, NULL), 0);
    reply r;
    send_request(&q, &r);
    classify(ops, tc, &r, out);
    long st = r.status;
    if (st != 200)
        cr_log_info("%s: %ld %s", tc->type, st, r.body);
    reply_free(&r);
    iw_request_clear(&q);
    return st;
}


static const char *const events[] = {"complete.json", "minimal.json", "special-chars.json"};

Test(sim_renderers, rendered_sample_events_are_accepted)
{
    int sent = 0, sent_complete = 0;
    for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); e++) {
        iw_event *ev = load_event(events[e]);
        for (size_t t = 0; t < iw_t_adapter_count(); t++) {
            const iw_target_ops *ops = iw_target_find(iw_t_adapter(t));
            cr_assert_not_null(ops, "no adapter %s", iw_t_adapter(t));
            iw_target_conf tc;
            conf_for(&tc, iw_t_adapter(t));
            char err[256];
            if (iw_target_validate(ops, ev, &tc, err, sizeof(err)) != 0) {
                /* The adapter refuses it itself (never sent); complete.json must pass. */
                cr_expect_neq(e, 0, "%s refuses complete.json: %s", iw_t_adapter(t), err);
                cr_log_info("%s refuses %s before sending: %s", iw_t_adapter(t), events[e], err);
                iw_target_conf_clear(&tc);
                continue;
            }
            iw_outcome out;
            long st = render_and_send(ops, ev, &tc, NULL, &out);
            cr_expect_eq(st, 200, "%s with %s: HTTP %ld", iw_t_adapter(t), events[e], st);
            cr_expect_eq(out.kind, IW_OUTCOME_OK, "%s with %s: %s", iw_t_adapter(t), events[e],
                         out.message);
            sent++;
            sent_complete += e == 0;
            iw_target_conf_clear(&tc);
        }
        iw_event_free(ev);
    }
    cr_log_info("%d rendered requests sent", sent);
    cr_expect_eq(sent_complete, 6);
    cr_expect_geq(sent, 6);

    /* The simulator kept one document per (target, invoice) it accepted. */
    reply r;
    iw_request q = {.method = "GET"};
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sim/stats", port);
    q.url = url;
    send_request(&q, &r);
    cJSON *s = cJSON_Parse(r.body);
    cr_assert_not_null(s);
    cr_expect_eq(cJSON_GetObjectItemCaseSensitive(s, "requests")->valueint, sent);
    cr_expect_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "by_status"), "200")
            ->valueint,
        sent);
    cJSON_Delete(s);
    reply_free(&r);
}

Test(sim_renderers, midnight_xml_form_is_accepted)
{
    iw_event *ev = load_event("complete.json");
    const iw_target_ops *ops = iw_target_find("midnight");
    iw_target_conf tc;
    conf_for(&tc, "midnight");
    free(iw_midnight_conf_of(&tc)->format);
    iw_midnight_conf_of(&tc)->format = strdup("xml");
    iw_outcome out;
    cr_expect_eq(render_and_send(ops, ev, &tc, NULL, &out), 200);
    cr_expect_eq(out.kind, IW_OUTCOME_OK, "%s", out.message);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

static long post_control(const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    iw_request q = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    reply r;
    send_request(&q, &r);
    long st = r.status;
    reply_free(&r);
    return st;
}

Test(sim_renderers, midnight_refresh_after_an_expired_token)
{
    iw_event *ev = load_event("complete.json");
    const iw_target_ops *ops = iw_target_find("midnight");
    cr_assert(ops->render_refresh && ops->parse_refresh);
    iw_target_conf tc;
    conf_for(&tc, "midnight");
    cr_assert_eq(post_control("/_sim/expire-token"), 200);

    iw_outcome out;
    cr_expect_eq(render_and_send(ops, ev, &tc, NULL, &out), 401);
    cr_expect_eq(out.kind, IW_OUTCOME_AUTH);
    cr_expect(out.refresh_token, "a 401 should ask for a token refresh");

    iw_request q;
    memset(&q, 0, sizeof(q));
    char err[256], tok[256];
    cr_assert_eq(ops->render_refresh(&tc, &q, err, sizeof(err)), 0, "%s", err);
    reply r;
    send_request(&q, &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    iw_response resp = {.status = r.status,
                        .headers = r.headers,
                        .n_headers = r.n_headers,
                        .body = r.body,
                        .body_len = r.len};
    cr_assert_eq(ops->parse_refresh(&resp, tok, sizeof(tok)), 0, "%s", r.body);
    cr_expect_str_neq(tok, "sim-mt-5k9w");
    reply_free(&r);
    iw_request_clear(&q);

    cr_expect_eq(render_and_send(ops, ev, &tc, tok, &out), 200);
    cr_expect_eq(out.kind, IW_OUTCOME_OK, "%s", out.message);
    cr_expect_eq(render_and_send(ops, ev, &tc, NULL, &out), 401, "the old token still works");
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

Test(sim_renderers, classifiers_read_the_simulators_faults)
{
    /* Each target's auth failure is AUTH; a SOAP Server fault / 500 is RETRY; a settled
     * InvoiceXpress invoice is PERMANENT. */
    iw_event *ev = load_event("complete.json");
    for (size_t t = 0; t < iw_t_adapter_count(); t++) {
        const iw_target_ops *ops = iw_target_find(iw_t_adapter(t));
        iw_target_conf tc;
        conf_for(&tc, iw_t_adapter(t));
        char spec[256], url[128];
        snprintf(spec, sizeof(spec),
                 "[{\"target\": \"%s\", \"kind\": \"auth\", \"count\": 1},"
                 " {\"target\": \"%s\", \"kind\": \"soap_fault\", \"count\": 1}]",
                 iw_t_adapter(t), iw_t_adapter(t));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sim/faults", port);
        iw_request q = {.method = "POST", .url = url, .body = spec, .body_len = strlen(spec)};
        reply r;
        send_request(&q, &r);
        cr_assert_eq(r.status, 200);
        reply_free(&r);
        iw_outcome out;
        render_and_send(ops, ev, &tc, NULL, &out);
        cr_expect_eq(out.kind, IW_OUTCOME_AUTH, "%s auth failure read as %d: %s", iw_t_adapter(t),
                     out.kind, out.message);
        render_and_send(ops, ev, &tc, NULL, &out);
        cr_expect_eq(out.kind, IW_OUTCOME_RETRY, "%s server fault read as %d: %s", iw_t_adapter(t),
                     out.kind, out.message);
        iw_target_conf_clear(&tc);
    }
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sim/settle", port);
    const char *id = ev->invoice.target_refs.invoicexpress_id;
    char body[128];
    snprintf(body, sizeof(body), "{\"id\": \"%s\"}", id);
    iw_request q = {.method = "POST", .url = url, .body = body, .body_len = strlen(body)};
    reply r;
    send_request(&q, &r);
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    const iw_target_ops *ops = iw_target_find("invoicexpress");
    iw_target_conf tc;
    conf_for(&tc, "invoicexpress");
    iw_outcome out;
    cr_expect_eq(render_and_send(ops, ev, &tc, NULL, &out), 422);
    cr_expect_eq(out.kind, IW_OUTCOME_PERMANENT, "%s", out.message);
    iw_target_conf_clear(&tc);
    iw_event_free(ev);
}

/* The simulator's receiver checks what the spec says a receiver checks, so the end-to-end pass
 * above proves the signature: a changed body, a stale timestamp, a wrong secret and a missing
 * header are all refused. */
Test(sim_renderers, webhook_receiver_verifies_signature_and_time)
{
    iw_event *ev = load_event("complete.json");
    const iw_target_ops *ops = iw_target_find("webhook");
    iw_config *cfg = stack_config();
    const iw_target_conf *tc = iw_config_target(cfg, "webhook");
    int64_t now = (int64_t)time(NULL) * 1000;
    static const struct {
        const char *what;
        int64_t skew_ms;
        int tamper; /* 0 none, 1 body, 2 drop webhook-signature, 3 wrong signature */
        long want;
    } cases[] = {
        {"as rendered", 0, 0, 200},
        {"one byte of the body changed", 0, 1, 401},
        {"signed 6 minutes ago", -360000, 0, 401},
        {"signed 6 minutes ahead", 360000, 0, 401},
        {"no webhook-signature", 0, 2, 400},
        {"another key's signature", 0, 3, 401},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        iw_request q;
        memset(&q, 0, sizeof(q));
        iw_render_ctx ctx = {.state = NULL, .now_ms = now + cases[i].skew_ms};
        char err[256];
        cr_assert_eq(iw_target_render(ops, ev, tc, &ctx, &q, err, sizeof(err)), 0, "%s", err);
        for (size_t h = 0; h < q.n_headers; h++) {
            if (strcmp(q.headers[h].name, "webhook-signature") != 0)
                continue;
            if (cases[i].tamper == 2)
                q.headers[h].name[0] = 'x'; /* sent as xebhook-signature */
            if (cases[i].tamper == 3)
                q.headers[h].value[3] = q.headers[h].value[3] == 'A' ? 'B' : 'A';
        }
        if (cases[i].tamper == 1)
            q.body[q.body_len - 2] = ' ';
        reply r;
        send_request(&q, &r);
        cr_expect_eq(r.status, cases[i].want, "%s: HTTP %ld %s", cases[i].what, r.status, r.body);
        reply_free(&r);
        iw_request_clear(&q);
    }
    iw_config_free(cfg);
    iw_event_free(ev);
}
