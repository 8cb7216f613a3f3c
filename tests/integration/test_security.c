/* test_security.c: issue 11 end to end. An echo server run inside the test plays every target
 * and quotes the credentials it received back in its error replies (escaped as its format
 * escapes them); the dispatcher with the real adapters must never let an event's header become
 * a request header, and no form of any secret may reach an outcome message. The last test runs
 * the whole worker on the local stack against it, with hostile events too, and searches every
 * output channel (logs, results, dead letters, /metrics, render, check-config) for every form of
 * every secret. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "adapters.h"
#include "config.h"
#include "dispatch.h"
#include "docpaths.h"
#include "invoice.h"
#include "pipeline.h"
#include "stack.h"
#include "status.h"
#include "testproc.h"
#include "unescape.h"

/* Every secret holds "Zq9" so that a partial leak in any encoding that keeps letters is caught;
 * they hold the characters each escaping changes (& < > " space + /). */
#define SEC_CENTRA "Pa&<>\"Zq9-c1"
#define SEC_CENTRA_JSON "Pa&<>\\\"Zq9-c1"
#define SEC_NAV "Nav Zq9+77/x"
#define NAV_USER "navuser"
#define SEC_PRC "PRC-Zq9-1a2b"
#define SEC_MIDNIGHT "MID-Zq9-3c4d"
#define SEC_MIS "MIS-Zq9-5e6f"
#define SEC_NEW_TOKEN "NEW-Zq9-8f3a9c"
#define SEC_EBIZ "Ebz<Sec>&Zq9"
#define SEC_EBIZ_PW "EbzPw-Zq9-11"
#define SEC_IX "ix Zq9/7+q&z"
/* base64 text (the key is its 24 decoded bytes), so its own base64 form is searched too */
#define SEC_WH_B64 "Zq9webhookSecretZq9signingKeyZq9"
#define SEC_WH "whsec_" SEC_WH_B64
#define URL_USER "svc"
#define URL_PW "Url!Zq9-pw"
#define URL_PW_ENC "Url%21Zq9-pw"

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_EVIL TP_OK "\r\nX-Evil: 1\r\nAuthorization: Bearer attacker"

/* ------------------------------------------------------------------ the echo server */

#define LOG_MAX (4u << 20)
#define BODY_MAX (256u << 10)

/* One request being received. */
typedef struct reqbuf {
    char body[BODY_MAX]; /* request body (cut at BODY_MAX - 1) */
    size_t len;          /* bytes in body */
} reqbuf;

typedef struct srv {
    struct MHD_Daemon *mhd; /* thread per connection */
    int port;               /* bound on 127.0.0.1 */
    pthread_mutex_t mu;     /* guards log */
    char *log;              /* every request: "METHOD URL\nName: value\n...\n\nbody\n" */
    size_t log_len;         /* bytes in log */
    atomic_int hits;        /* requests answered */
} srv;

static void log_add(srv *s, const char *text, size_t n)
{
    pthread_mutex_lock(&s->mu);
    if (s->log_len + n < LOG_MAX) {
        memcpy(s->log + s->log_len, text, n);
        s->log_len += n;
        s->log[s->log_len] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
}

/* What one request said that a reply may quote: its credential headers, all of them. */
typedef struct seen {
    char headers[4096]; /* "Name: value\n" per header */
    char creds[1024];   /* values of Authorization and MISKEY headers, space-separated */
} seen;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    seen *w = cls;
    size_t l = strlen(w->headers);
    snprintf(w->headers + l, sizeof(w->headers) - l, "%s: %s\n", k, v ? v : "");
    if (v && (strcasecmp(k, "Authorization") == 0 || strcasecmp(k, "MISKEY") == 0)) {
        l = strlen(w->creds);
        snprintf(w->creds + l, sizeof(w->creds) - l, "%s ", v);
    }
    return MHD_YES;
}

static void xml_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 7 < cap; in++) {
        const char *e = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : NULL;
        if (e) {
            memcpy(out + o, e, strlen(e));
            o += strlen(e);
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

/* The 48 bytes after the first of these elements in a SOAP body: the credential as it was on
 * the wire (XML-escaped). */
static void body_secret(const char *body, char *out, size_t cap)
{
    static const char *const tags[] = {"password>", "Password>", "SecurityId>", "securityId>",
                                       NULL};
    out[0] = '\0';
    for (size_t i = 0; tags[i]; i++) {
        const char *p = strstr(body, tags[i]);
        if (p) {
            snprintf(out, cap, "%.48s", p + strlen(tags[i]));
            return;
        }
    }
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *ctype,
                             const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
    srv *s = cls;
    reqbuf *rb = *req_cls;
    if (!rb) {
        *req_cls = calloc(1, sizeof(reqbuf));
        return *req_cls ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        if (n > BODY_MAX - 1 - rb->len)
            n = BODY_MAX - 1 - rb->len;
        memcpy(rb->body + rb->len, upload, n);
        rb->len += n;
        rb->body[rb->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    seen w;
    memset(&w, 0, sizeof(w));
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &w);
    char query[512] = "";
    const char *key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api_key");
    if (key) /* as a reply quoting the URL would: re-encoded with '+' and lower-case hex */
        for (size_t i = 0, o = 0; key[i] && o + 4 < sizeof(query); i++) {
            unsigned char ch = (unsigned char)key[i];
            if (ch == ' ')
                query[o++] = '+';
            else if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                     (ch >= 'A' && ch <= 'Z') || ch == '-')
                query[o++] = (char)ch;
            else
                o += (size_t)snprintf(query + o, sizeof(query) - o, "%%%02x", ch);
            query[o] = '\0';
        }
    char head[600];
    int hl = snprintf(head, sizeof(head), "%s %s\n", method, url);
    log_add(s, head, (size_t)hl);
    log_add(s, w.headers, strlen(w.headers));
    log_add(s, "\n", 1);
    log_add(s, rb->body, rb->len);
    log_add(s, "\n", 1);
    atomic_fetch_add(&s->hits, 1);

    char quote[2048], esc[4096], out[8192];
    enum MHD_Result ok;
    if (strstr(url, "RegenerateAuthToken")) {
        ok = reply(c, 200, "application/json", "\"" SEC_NEW_TOKEN "\"");
    } else if (strstr(url, "/midnight")) {
        if (!strstr(w.creds, SEC_NEW_TOKEN)) {
            ok = reply(c, 401, "application/json", "\"token expired\"");
        } else {
            snprintf(out, sizeof(out), "\"invalid request with %s\"", w.creds);
            ok = reply(c, 400, "application/json", out);
        }
    } else if (strstr(url, "/webhook")) { /* a receiver quoting the secret it expected */
        ok = reply(c, 400, "application/json",
                   "{\"error\": \"signature does not verify with " SEC_WH " (" SEC_WH_B64 ")\"}");
    } else if (strstr(url, ".xml")) { /* invoicexpress */
        snprintf(quote, sizeof(quote), "bad key %s", query);
        xml_escape(quote, esc, sizeof(esc));
        snprintf(out, sizeof(out),
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?><errors><error>%s</error></errors>",
                 esc);
        ok = reply(c, 422, "application/xml", out);
    } else if (strstr(url, "/nav")) { /* a fault quoting the password it expected with every
                                       * character escaped: as JSON, and in a CDATA section as
                                       * XML character references */
        size_t o = (size_t)snprintf(quote, sizeof(quote), "bad login {\"password\": \"");
        for (const char *p = SEC_NAV; *p; p++)
            o += (size_t)snprintf(quote + o, sizeof(quote) - o, "\\u%04X", (unsigned char)*p);
        o += (size_t)snprintf(quote + o, sizeof(quote) - o, "\"} <![CDATA[");
        for (const char *p = SEC_NAV; *p; p++)
            o += (size_t)snprintf(quote + o, sizeof(quote) - o, "&#x%X;", (unsigned char)*p);
        snprintf(quote + o, sizeof(quote) - o, "]]>");
        snprintf(out, sizeof(out),
                 "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                 "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                 "<soap:Body><soap:Fault><faultcode>soap:Client</faultcode>"
                 "<faultstring>%s</faultstring></soap:Fault></soap:Body></soap:Envelope>",
                 quote);
        ok = reply(c, 500, "text/xml; charset=utf-8", out);
    } else { /* SOAP: a Client fault quoting what it was sent, escaped once more */
        char bs[64];
        body_secret(rb->body, bs, sizeof(bs));
        snprintf(quote, sizeof(quote), "bad login %s %s", bs, w.creds);
        xml_escape(quote, esc, sizeof(esc));
        snprintf(out, sizeof(out),
                 "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                 "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                 "<soap:Body><soap:Fault><faultcode>soap:Client</faultcode>"
                 "<faultstring>%s</faultstring></soap:Fault></soap:Body></soap:Envelope>",
                 esc);
        ok = reply(c, 500, "text/xml; charset=utf-8", out);
    }
    return ok;
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    free(*req_cls);
    *req_cls = NULL;
}

static srv *srv_start(void)
{
    srv *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    s->log = calloc(1, LOG_MAX + 1);
    cr_assert_not_null(s->log);
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->mhd =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, handle, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
                         completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    cr_assert_not_null(s->mhd, "libmicrohttpd did not start");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    s->port = info->port;
    return s;
}

static void srv_stop(srv *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    pthread_mutex_destroy(&s->mu);
    free(s->log);
    free(s);
}

/* ------------------------------------------------------------------ the forms of a secret */

static void b64(const char *in, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Fails when text holds any secret in any form: every form keeps "Zq9" except base64 and
 * every character escaped, so the base64 forms of each secret and of both Basic pairs are
 * searched apart, and "Zq9" once JSON and XML character escapes are decoded. */
static void assert_no_secret(const char *what, const char *text)
{
    const char *hit = strstr(text, "Zq9");
    cr_assert_null(hit, "%s leaks a secret: ...%.160s", what,
                   hit ? (hit - text > 80 ? hit - 80 : text) : "");
    char *decoded = iw_t_unescaped_once(text);
    cr_assert_not_null(decoded);
    hit = strstr(decoded, "Zq9");
    cr_assert_null(hit, "%s leaks a secret, escaped: ...%.160s (decoded)", what,
                   hit ? (hit - decoded > 80 ? hit - 80 : decoded) : "");
    free(decoded);
    static const char *const plain[] = {SEC_CENTRA,
                                        SEC_NAV,
                                        SEC_PRC,
                                        SEC_MIDNIGHT,
                                        SEC_MIS,
                                        SEC_EBIZ,
                                        SEC_EBIZ_PW,
                                        SEC_NEW_TOKEN,
                                        SEC_IX,
                                        SEC_WH,
                                        SEC_WH_B64,
                                        URL_PW,
                                        NAV_USER ":" SEC_NAV,
                                        URL_USER ":" URL_PW};
    char enc[256];
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        b64(plain[i], enc);
        hit = strstr(text, enc);
        cr_assert_null(hit, "%s leaks base64(%s): ...%.160s", what, plain[i],
                       hit ? (hit - text > 80 ? hit - 80 : text) : "");
    }
}

/* ------------------------------------------------------------------ dispatcher tests */

static srv *server;
static iw_config *cfg;
static iw_event *event;
static iw_call_result last;
static int done_calls;
static char observed[16384]; /* every attempt's outcome message (what the logs print) */

static void on_done(void *arg, const iw_call_result *r)
{
    last = *r;
    done_calls++;
}

static void observe(void *arg, const iw_attempt_info *a)
{
    size_t l = strlen(observed);
    if (a->outcome)
        snprintf(observed + l, sizeof(observed) - l, "%s|%s\n", a->outcome->message,
                 a->outcome->code);
}

static char *config_json(const char *base)
{
    char *json = malloc(8192);
    cr_assert_not_null(json);
    snprintf(
        json, 8192,
        "{\"targets\": {"
        "\"centra_soap\": {\"type\": \"centra_soap\", \"url\": \"%s/centra\","
        "  \"username\": \"csoap\", \"password\": \"Pa&<>\\\"Zq9-c1\"},"
        "\"centra_navision\": {\"type\": \"centra_navision\", \"url\": \"%s/nav\","
        "  \"auth\": \"basic\", \"username\": \"" NAV_USER "\", \"password\": \"" SEC_NAV "\"},"
        "\"midnight\": {\"type\": \"midnight\", \"url\": \"%s/midnight\","
        "  \"token_url\": \"%s/midnight/v1/Token/RegenerateAuthToken\","
        "  \"prc_token\": \"" SEC_PRC "\", \"midnight_token\": \"" SEC_MIDNIGHT "\","
        "  \"mis_key\": \"" SEC_MIS "\"},"
        "\"ebizcharge\": {\"type\": \"ebizcharge\","
        "  \"url\": \"http://" URL_USER ":%s@%s/ebiz\","
        "  \"user_id\": \"u1\", \"security_id\": \"Ebz<Sec>&Zq9\", \"password\": \"" SEC_EBIZ_PW
        "\"},"
        "\"invoicexpress\": {\"type\": \"invoicexpress\", \"url\": \"%s\","
        "  \"api_key\": \"" SEC_IX "\","
        "  \"tax_names\": {\"23\": \"IVA23\", \"13\": \"IVA13\", \"6\": \"IVA6\"}},"
        "\"webhook\": {\"type\": \"webhook\", \"url\": \"%s/webhook\","
        "  \"secret\": \"" SEC_WH "\"}}}",
        base, base, base, base, URL_PW_ENC, base + strlen("http://"), base, base);
    return json;
}

static void setup(void)
{
    server = srv_start();
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", server->port);
    char *json = config_json(base);
    iw_config_errors errs;
    cfg = iw_config_parse(json, NULL, &errs);
    for (size_t i = 0; !cfg && i < errs.count && i < 64; i++)
        cr_log_error("%s: %s", errs.items[i].path, errs.items[i].message);
    cr_assert_not_null(cfg);
    free(json);
    for (size_t i = 0; i < cfg->n_targets; i++)
        cfg->targets[i].retry.max_attempts = 2;
    char *ev = iw_make_event("SEC-1", "acme", "INV-SEC-1", 3, NULL);
    char err[256];
    cr_assert_eq(iw_event_parse(ev, strlen(ev), &event, err, sizeof(err)), 0, "%s", err);
    free(ev);
    observed[0] = '\0';
    done_calls = 0;
}

static void teardown(void)
{
    iw_event_free(event);
    iw_config_free(cfg);
    srv_stop(server);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

/* Runs one call of the shared event to target `name` with traceparent tp. */
static iw_call_result call(const char *name, const char *tp)
{
    char err[256];
    iw_dispatch *d = iw_dispatch_new(cfg, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    iw_dispatch_set_observer(d, observe, NULL);
    const iw_target_conf *tc = iw_config_target(cfg, name);
    cr_assert_not_null(tc);
    int before = done_calls;
    cr_assert_eq(iw_dispatch_submit(d, tc, event, tp, on_done, NULL), 0);
    long long until = iw_now_ms() + 30000;
    while (done_calls == before && iw_now_ms() < until)
        iw_dispatch_run(d, 100, -1);
    cr_assert_eq(done_calls, before + 1, "%s: the call ended", name);
    iw_dispatch_free(d);
    return last;
}

/* Issue 11, item 1: the traceparent of the report made three targets receive X-Evil and a
 * third Authorization header. */
Test(security, traceparent_injection_never_becomes_a_header)
{
    static const char *const names[] = {"centra_soap", "midnight", "invoicexpress"};
    for (size_t i = 0; i < 3; i++)
        call(names[i], TP_EVIL);
    cr_assert_geq(atomic_load(&server->hits), 3);
    cr_assert_null(strstr(server->log, "X-Evil"), "%s", server->log);
    cr_assert_null(strstr(server->log, "attacker"));
    cr_assert_null(strstr(server->log, "traceparent:"), "an invalid traceparent is not sent");
    /* a valid one is forwarded as it was */
    call("invoicexpress", TP_OK);
    cr_assert(strstr(server->log, "traceparent: " TP_OK "\n"), "%s", server->log);
}

/* Issue 11, item 2 (c): a 400 that echoed the refreshed Midnight token. */
Test(security, refreshed_midnight_token_is_masked)
{
    iw_call_result r = call("midnight", NULL);
    cr_assert(strstr(server->log, "RegenerateAuthToken"), "the token was refreshed");
    cr_assert(strstr(server->log, "Authorization: " SEC_NEW_TOKEN), "and used");
    cr_assert_eq(r.http_status, 400);
    cr_log_info("message: %s\nobserved:\n%s", r.outcome.message, observed);
    cr_assert(strstr(r.outcome.message, "***"), "%s", r.outcome.message);
    assert_no_secret("the outcome", r.outcome.message);
    assert_no_secret("the attempts", observed);
}

/* Issue 11, item 2 (a): a SOAP fault quoting the XML-escaped password. */
Test(security, escaped_password_in_a_soap_fault_is_masked)
{
    iw_call_result r = call("centra_soap", NULL);
    cr_assert(strstr(server->log, "Pa&amp;&lt;&gt;"), "the password went escaped");
    cr_log_info("message: %s\nobserved:\n%s", r.outcome.message, observed);
    cr_assert(strstr(r.outcome.message, "bad login"), "%s", r.outcome.message);
    assert_no_secret("the outcome", r.outcome.message);
    assert_no_secret("the attempts", observed);
    r = call("ebizcharge", NULL);
    cr_assert(strstr(r.outcome.message, "bad login"), "%s", r.outcome.message);
    assert_no_secret("the ebizcharge outcome", r.outcome.message);
    assert_no_secret("the attempts", observed);
}

/* Issue 11, item 2 (b) and (e): the Basic credential in base64, of the navision pair and of a
 * URL's userinfo. */
Test(security, basic_credentials_in_base64_are_masked)
{
    iw_call_result r = call("centra_navision", NULL);
    char enc[128];
    b64(NAV_USER ":" SEC_NAV, enc);
    cr_assert(strstr(server->log, enc), "navision sent Basic");
    cr_log_info("message: %s", r.outcome.message);
    assert_no_secret("the navision outcome", r.outcome.message);
    r = call("ebizcharge", NULL);
    b64(URL_USER ":" URL_PW, enc);
    cr_assert(strstr(server->log, enc), "curl sent the userinfo as Basic");
    assert_no_secret("the ebizcharge outcome", r.outcome.message);
    assert_no_secret("the attempts", observed);
}

/* Issue 11, item 2 (d): the api_key quoted with '+' for a space and lower-case hex. */
Test(security, api_key_in_other_percent_encodings_is_masked)
{
    iw_call_result r = call("invoicexpress", NULL);
    cr_assert_eq(r.http_status, 422, "%s", r.outcome.message);
    cr_log_info("message: %s", r.outcome.message);
    cr_assert(strstr(r.outcome.message, "bad key"), "%s", r.outcome.message);
    assert_no_secret("the outcome", r.outcome.message);
    assert_no_secret("the attempts", observed);
}

/* ------------------------------------------------------------------ every channel */

static iw_stack S;
static iw_proc W;
static srv *echo;

static void stack_up(void)
{
    cr_assert_eq(iw_stack_start(&S, 4, false), 0, "local stack did not start");
    echo = srv_start();
}

static void stack_down(void)
{
    iw_proc_stop(&W, 20000);
    iw_stack_stop(&S);
    srv_stop(echo);
}

/* Runs a shell command line (printf-style); returns its exit status, *out = stdout+stderr. */
static int shell(char **out, const char *fmt, ...)
{
    static int seq;
    char line[4096], cmd[4600], opath[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    snprintf(opath, sizeof(opath), "/tmp/iw-sec-out-%d-%d", (int)getpid(), seq++);
    snprintf(cmd, sizeof(cmd), "( %s ) >'%s' 2>&1", line, opath);
    int st = system(cmd);
    char *text = iw_read_file(opath, NULL);
    unlink(opath);
    *out = text ? text : strdup("");
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static char *append(char *acc, const char *label, const char *text)
{
    size_t have = acc ? strlen(acc) : 0, add = strlen(label) + strlen(text ? text : "") + 4;
    char *n = realloc(acc, have + add);
    cr_assert_not_null(n);
    snprintf(n + have, add, "%s: %s\n", label, text ? text : "");
    return n;
}

/* Appends every message of topic (key, headers and, when with_value, value); sets *got. */
static char *append_topic(char *acc, const char *topic, size_t want, size_t *got, bool with_value)
{
    iw_kmsg *m = NULL;
    size_t n = iw_kafka_read_all(S.brokers, topic, want, 60000, want ? 0 : 3000, &m);
    for (size_t i = 0; i < n; i++) {
        acc = append(acc, "key", m[i].key);
        if (with_value)
            acc = append(acc, "value", m[i].value);
        acc = append(acc, "headers", m[i].headers);
    }
    iw_kmsgs_free(m, n);
    *got = n;
    return acc;
}

/* The stack's worker config with the echo server's five targets and their secrets. */
static const char *hostile_config(void)
{
    const char *path = iw_stack_config(&S, "w.json", NULL, "{\"log_level\": \"debug\"}");
    cr_assert_not_null(path);
    static char saved[512];
    snprintf(saved, sizeof(saved), "%s", path);
    char *text = iw_read_file(saved, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(root);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", echo->port);
    char *json = config_json(base);
    cJSON *ours = cJSON_Parse(json);
    free(json);
    cr_assert_not_null(ours);
    cJSON *targets = cJSON_DetachItemFromObject(ours, "targets");
    for (cJSON *t = targets->child; t; t = t->next) {
        cJSON_AddItemToObject(t, "retry", cJSON_Parse("{\"max_attempts\": 2, \"base_ms\": 10}"));
        /* within the stack's 15 s fence lease (check-config refuses the 30 s default) */
        cJSON_AddItemToObject(t, "timeouts", cJSON_Parse("{\"request_ms\": 5000}"));
    }
    cJSON_ReplaceItemInObject(root, "targets", targets);
    cJSON_Delete(ours);
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    write_file(saved, out);
    free(out);
    return saved;
}

/* Issue 11: the hostile-reply and hostile-event suite on the whole worker, then every output
 * channel searched for every form of every secret. */
Test(channels, no_form_of_any_secret_reaches_any_output, .init = stack_up, .fini = stack_down,
     .timeout = 400)
{
    enum { N = 5, UNKNOWN = 12 };
    S.http_port = iw_free_port();
    const char *cfg_path = hostile_config();
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg_path, "worker.log"), 0);

    /* hostile replies at every target, events whose traceparent tries to add headers */
    char *keys[N], *vals[N];
    for (int i = 0; i < N; i++) {
        char id[32], inv[32];
        snprintf(id, sizeof(id), "SEC-E-%d", i);
        snprintf(inv, sizeof(inv), "INV-E-%d", i);
        keys[i] = strdup(inv);
        vals[i] = iw_make_event(id, "acme", inv, 1, iw_t_adapter_list());
    }
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", (const char *const *)keys,
                                  (const char *const *)vals, N, "traceparent=" TP_EVIL),
                 0);
    for (int i = 0; i < N; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    /* unknown target names (a metric series each, before) */
    char *ukeys[UNKNOWN], *uvals[UNKNOWN];
    for (int i = 0; i < UNKNOWN; i++) {
        char id[32], inv[32], targets[64];
        snprintf(id, sizeof(id), "SEC-U-%d", i);
        snprintf(inv, sizeof(inv), "INV-U-%d", i);
        snprintf(targets, sizeof(targets), "nope-%d", i);
        ukeys[i] = strdup(inv);
        uvals[i] = iw_make_event(id, "acme", inv, 1, targets);
    }
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", (const char *const *)ukeys,
                                  (const char *const *)uvals, UNKNOWN, NULL),
                 0);
    for (int i = 0; i < UNKNOWN; i++) {
        free(ukeys[i]);
        free(uvals[i]);
    }
    /* names with bidi and control characters, and a replay-target header with a line break */
    const char *k1[] = {"INV-B"}, *k2[] = {"INV-C"}, *k3[] = {"INV-R"};
    char *v1 = iw_make_event("SEC-B-1", "acme", "INV-B", 1,
                             "ix\xe2\x80\xae"
                             "gol");
    char *v2 = iw_make_event("SEC-C-1", "acme", "INV-C\x1b[2J", 1, "invoicexpress");
    char *v3 = iw_make_event("SEC-R-1", "acme", "INV-R", 1, "invoicexpress");
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", k1, (const char *const *)&v1, 1, NULL), 0);
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", k2, (const char *const *)&v2, 1, NULL), 0);
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", k3, (const char *const *)&v3, 1,
                                  "x-iw-replay-target=invoicexpress\r\nX-Evil: 1"),
                 0);
    free(v1);
    free(v2);
    free(v3);

    const size_t n_targets = iw_t_adapter_count();
    size_t want = N * n_targets + UNKNOWN + 3, got = 0, dl = 0;
    char *corpus = NULL;
    corpus = append_topic(corpus, "invoice-results", want, &got, true);
    cr_assert_eq(got, want, "results: %zu of %zu", got, want);
    /* a dead letter's value is the original event, as it came (replay sends it again): it is
     * searched for secrets, but it is not printed text */
    corpus = append_topic(corpus, "invoice-events-dlq", 0, &dl, false);
    cr_assert_geq(dl, N * n_targets, "every hostile reply failed its call: %zu dead letters", dl);
    char *originals = append_topic(NULL, "invoice-events-dlq", dl, &got, true);
    assert_no_secret("the dead letters' values", originals);
    free(originals);

    long st = 0;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", S.http_port);
    char *metrics = iw_http("GET", url, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_null(strstr(metrics, "nope-"), "event names never become label values");
    cr_assert(strstr(metrics, "target=\"" IW_UNKNOWN_TARGET_LABEL "\""), "%s", metrics);
    const char *inv = strstr(metrics, "\niw_traceparent_invalid_total ");
    cr_assert_not_null(inv, "%s", metrics);
    cr_assert_geq(atol(inv + strlen("\niw_traceparent_invalid_total ")), N);
    corpus = append(corpus, "metrics", metrics);
    free(metrics);

    char *out = NULL;
    cr_assert_eq(
        shell(&out, "'%s' check-config -c '%s'", iw_build_path("invoice-worker"), cfg_path), 0,
        "%s", out);
    corpus = append(corpus, "check-config", out);
    free(out);
    char evpath[400];
    snprintf(evpath, sizeof(evpath), "%s/event.json", S.dir);
    char *ev = iw_make_event("SEC-render", "acme", "INV-render", 1, NULL);
    write_file(evpath, ev);
    free(ev);
    for (size_t t = 0; t < n_targets; t++) {
        const char *target = iw_t_adapter(t);
        cr_assert_eq(shell(&out, "'%s' render --target %s -c '%s' '%s'",
                           iw_build_path("invoice-worker"), target, cfg_path, evpath),
                     0, "%s", out);
        /* the webhook sends no credential, only a signature made with it */
        cr_assert(strstr(out, "***") || strcmp(target, "webhook") == 0,
                  "render masks the %s credentials", target);
        corpus = append(corpus, "render", out);
        free(out);
    }
    iw_proc_stop(&W, 20000);
    char logpath[400];
    snprintf(logpath, sizeof(logpath), "%s/worker.log", S.dir);
    char *log = iw_read_file(logpath, NULL);
    cr_assert_not_null(log);
    corpus = append(corpus, "log", log);
    free(log);

    /* the targets saw the credentials (so replies could quote them) and no injected header */
    pthread_mutex_lock(&echo->mu);
    cr_assert(strstr(echo->log, "Authorization: " SEC_NEW_TOKEN), "the token was refreshed");
    cr_assert_null(strstr(echo->log, "X-Evil"), "no injected header reached a target");
    pthread_mutex_unlock(&echo->mu);
    /* the corpus holds what the search must look through */
    cr_assert(strstr(corpus, "SEC-E-4"), "the events' results");
    cr_assert(strstr(corpus, "x-iw-error="), "the dead letters' headers");
    cr_assert(strstr(corpus, "bad login ***"), "the quoted credentials, masked");
    cr_assert(strstr(corpus, "iw_results_total{"), "the metrics");
    cr_assert(strstr(corpus, "attempt failed"), "the debug log");
    cr_assert(strstr(corpus, "\"trace_id\":null"), "an invalid traceparent gives no trace_id");
    const char *bidi = strstr(corpus, "\xe2\x80\xae");
    cr_assert_null(bidi, "no bidi override is printed: ...%.300s", bidi ? bidi - 200 : "");
    cr_assert_null(strstr(corpus, "\x1b"), "no escape character is printed");
    assert_no_secret("the outputs", corpus);
    free(corpus);
}
