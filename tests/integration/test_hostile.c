/* test_hostile.c: the dispatcher with real adapters against a libmicrohttpd server run inside
 * the test that answers like a hostile or broken target: external entities, billion laughs,
 * a 1 GB reply, a reply that never ends, wrong content types, bytes that are not UTF-8 and
 * redirects to another host. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "adapters.h"
#include "config.h"
#include "dispatch.h"
#include "docpaths.h"
#include "testdata.h"
#include "invoice.h"
#include "status.h"
#include "testproc.h"

/* ------------------------------------------------------------------ the hostile server */

#define HUGE_BYTES (1024ull * 1024ull * 1024ull) /* what the 1 GB reply would send in all */
#define MAX_BODY 16384

typedef enum mode {
    M_FIXED,    /* status, content type and body as set */
    M_HUGE,     /* 200 with a 1 GB body from a generator */
    M_TRICKLE,  /* 200 whose body never ends: one byte every 50 ms */
    M_REDIRECT, /* 302 to location */
} mode;

/* One server; every request gets the reply its mode says. */
typedef struct srv {
    struct MHD_Daemon *mhd; /* thread per connection */
    int port;               /* bound on 127.0.0.1 */
    char url[96];           /* http://127.0.0.1:port/api */
    pthread_mutex_t mu;     /* guards the fields up to last_secrets */
    mode mode;              /* what to answer */
    int status;             /* M_FIXED: HTTP status */
    char content_type[64];  /* M_FIXED: Content-Type, "" = none */
    char body[MAX_BODY];    /* M_FIXED: body bytes */
    size_t body_len;        /* M_FIXED: body length */
    char location[128];     /* M_REDIRECT: Location */
    char last_method[16];   /* method of the last request */
    char last_secrets[256]; /* credential headers of the last request, "name=value;" each */
    atomic_int hits;        /* requests answered */
    atomic_ullong produced; /* body bytes the generators handed to libmicrohttpd */
    atomic_int quit;        /* ends generators at teardown */
} srv;

static ssize_t gen_huge(void *cls, uint64_t pos, char *buf, size_t max)
{
    srv *s = cls;
    if (atomic_load(&s->quit))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= HUGE_BYTES)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max;
    if (n > HUGE_BYTES - pos)
        n = (size_t)(HUGE_BYTES - pos);
    memset(buf, 'A', n);
    atomic_fetch_add(&s->produced, n);
    return (ssize_t)n;
}

static ssize_t gen_trickle(void *cls, uint64_t pos, char *buf, size_t max)
{
    srv *s = cls;
    for (int i = 0; i < 5; i++) {
        if (atomic_load(&s->quit))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        iw_sleep_ms(10);
    }
    buf[0] = pos == 0 ? '<' : ' ';
    atomic_fetch_add(&s->produced, 1);
    return 1;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
    srv *s = cls;
    if (*req_cls == NULL) {
        *req_cls = s;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* the request body is not needed */
        return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_method, sizeof(s->last_method), "%s", method);
    s->last_secrets[0] = '\0';
    static const char *const cred_headers[] = {"Authorization", "MISKEY", "PRCAuthorization",
                                               "SOAPAction", NULL};
    for (size_t i = 0; cred_headers[i]; i++) {
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, cred_headers[i]);
        size_t l = strlen(s->last_secrets);
        if (v)
            snprintf(s->last_secrets + l, sizeof(s->last_secrets) - l, "%s=%s;", cred_headers[i],
                     v);
    }
    mode m = s->mode;
    struct MHD_Response *r;
    if (m == M_HUGE)
        r = MHD_create_response_from_callback(HUGE_BYTES, 64 * 1024, gen_huge, s, NULL);
    else if (m == M_TRICKLE)
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, gen_trickle, s, NULL);
    else
        r = MHD_create_response_from_buffer(m == M_REDIRECT ? 0 : s->body_len, s->body,
                                            MHD_RESPMEM_MUST_COPY);
    if (m == M_REDIRECT)
        MHD_add_response_header(r, "Location", s->location);
    else if (s->content_type[0])
        MHD_add_response_header(r, "Content-Type", s->content_type);
    int status = m == M_REDIRECT ? 302 : m == M_FIXED ? s->status : 200;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->hits, 1);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static srv *srv_start(void)
{
    srv *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* no MHD_USE_ERROR_LOG: the worker hanging up on a reply is what these tests expect */
    s->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                              NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    cr_assert_not_null(s->mhd, "libmicrohttpd did not start");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    s->port = info->port;
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d/api", s->port);
    return s;
}

static void srv_stop(srv *s)
{
    if (!s)
        return;
    atomic_store(&s->quit, 1);
    MHD_stop_daemon(s->mhd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Serves status + content type + body (len bytes) to every request. */
static void srv_fixed(srv *s, int status, const char *ctype, const char *body, size_t len)
{
    cr_assert_lt(len, sizeof(s->body));
    pthread_mutex_lock(&s->mu);
    s->mode = M_FIXED;
    s->status = status;
    snprintf(s->content_type, sizeof(s->content_type), "%s", ctype ? ctype : "");
    memcpy(s->body, body, len);
    s->body_len = len;
    pthread_mutex_unlock(&s->mu);
}

static void srv_mode(srv *s, mode m)
{
    pthread_mutex_lock(&s->mu);
    s->mode = m;
    s->content_type[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ config, event, calls */

static srv *server;
static iw_config *cfg;
static iw_event *event;

/* The config json with a target for every built-in adapter (adapters.h) it lacks, named by its
 * type: its placeholder credentials, url and the members of the object fragment common.
 * Returns a malloc'd text. */
static char *with_every_adapter(const char *json, const char *url, const char *common)
{
    cJSON *root = cJSON_Parse(json);
    cJSON *targets = cJSON_GetObjectItem(root, "targets");
    cr_assert(cJSON_IsObject(targets), "%s", json);
    char extra[600];
    snprintf(extra, sizeof(extra), "{%s}", common);
    for (size_t i = 0; iw_t_adapter(i); i++) {
        const char *type = iw_t_adapter(i);
        if (cJSON_GetObjectItem(targets, type))
            continue;
        const iw_target_ops *ops = iw_target_find(type);
        cr_assert_not_null(ops);
        cJSON *t =
            ops->conf->placeholders ? cJSON_Parse(ops->conf->placeholders) : cJSON_CreateObject();
        cJSON *x = cJSON_Parse(extra);
        cr_assert(cJSON_IsObject(t) && cJSON_IsObject(x), "%s: placeholders or %s", type, extra);
        while (x->child) {
            cJSON *m = cJSON_DetachItemViaPointer(x, x->child);
            cJSON_AddItemToObject(t, m->string, m);
        }
        cJSON_Delete(x);
        cJSON_AddStringToObject(t, "type", type);
        cJSON_AddStringToObject(t, "url", url);
        cJSON_AddItemToObject(targets, type, t);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* A config whose targets, one per built-in adapter (named by its type), all point at url, with one
 * attempt, request_ms as the whole-request timeout and target_extra merged into every target. */
static void config_for(const char *url, int64_t request_ms, const char *target_extra)
{
    char json[8192];
    const char *x = target_extra ? target_extra : "";
    const char *sep = target_extra ? ", " : "";
    char common[512];
    snprintf(
        common, sizeof(common),
        "\"retry\": {\"max_attempts\": 1}, \"timeouts\": {\"connect_ms\": %lld, \"request_ms\": "
        "%lld}%s%s",
        (long long)(request_ms < 2000 ? request_ms : 2000), (long long)request_ms, sep, x);
    snprintf(
        json, sizeof(json),
        "{\"worker\": {\"id\": \"hostile\"},"
        " \"targets\": {"
        "  \"centra_soap\": {\"type\": \"centra_soap\", \"url\": \"%s\", \"username\": \"demo\","
        "   \"password\": \"pw-secret\", %s},"
        "  \"centra_navision\": {\"type\": \"centra_navision\", \"url\": \"%s\", %s},"
        "  \"midnight\": {\"type\": \"midnight\", \"url\": \"%s\", \"prc_token\": \"prc\","
        "   \"midnight_token\": \"mid\", \"mis_key\": \"mis\", %s},"
        "  \"ebizcharge\": {\"type\": \"ebizcharge\", \"url\": \"%s\", \"security_id\": "
        "\"sec-id\", %s},"
        "  \"invoicexpress\": {\"type\": \"invoicexpress\", \"url\": \"%s\", \"api_key\": "
        "\"ix-key\","
        "   \"tax_names\": {\"23\": \"IVA23\", \"13\": \"IVA13\", \"6\": \"IVA6\"}, %s},"
        "  \"webhook\": {\"type\": \"webhook\", \"url\": \"%s\","
        "   \"secret\": \"whsec_dW5pdC10ZXN0LXdlYmhvb2stc2lnbmluZy1rZXktMzI=\", %s}"
        " }}",
        url, common, url, common, url, common, url, common, url, common, url, common);
    char *all = with_every_adapter(json, url, common);
    iw_config_errors errs;
    memset(&errs, 0, sizeof(errs));
    iw_config_free(cfg);
    cfg = iw_config_parse(all, NULL, &errs);
    free(all);
    cr_assert_not_null(cfg, "config refused: %s: %s", errs.count ? errs.items[0].path : "",
                       errs.count ? errs.items[0].message : "");
}

/* One call's end, as the callback saw it. */
typedef struct call_end {
    int calls;
    iw_call_result res;
    long long at; /* monotonic ms of the callback */
} call_end;

static void on_done(void *arg, const iw_call_result *r)
{
    call_end *e = arg;
    e->calls++;
    e->res = *r;
    e->at = iw_now_ms();
}

/* Sends the event to target `name` and runs the engine until the call ends (60 s cap). */
static iw_call_result call(const char *name, long long *elapsed_ms)
{
    const iw_target_conf *tc = iw_config_target(cfg, name);
    cr_assert_not_null(tc, "no target %s", name);
    char err[256] = "";
    iw_dispatch *d = iw_dispatch_new(cfg, err, sizeof(err));
    cr_assert_not_null(d, "iw_dispatch_new: %s", err);
    call_end e;
    memset(&e, 0, sizeof(e));
    long long start = iw_now_ms();
    cr_assert_eq(iw_dispatch_submit(d, tc, event, NULL, on_done, &e), 0);
    while (iw_dispatch_pending(d) > 0 && iw_now_ms() - start < 60000)
        cr_assert_eq(iw_dispatch_run(d, 100, -1), 0);
    cr_assert_eq(iw_dispatch_pending(d), 0, "%s: the call did not end within 60 s", name);
    iw_dispatch_free(d);
    cr_assert_eq(e.calls, 1);
    cr_assert_not(e.res.rejected, "%s: the event was rejected: %s", name, e.res.outcome.message);
    if (elapsed_ms)
        *elapsed_ms = e.at - start;
    return e.res;
}

/* Resident set size of this process in bytes. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    long long size = 0, resident = 0;
    cr_assert_eq(fscanf(f, "%lld %lld", &size, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Whether an adapter judges a 2xx by its body: all but the webhook, whose spec makes any 2xx a
 * delivery. */
static bool body_judged(const char *type)
{
    return strcmp(type, "webhook") != 0;
}

static void setup(void)
{
    server = srv_start();
    size_t len = 0;
    char *json = iw_read_file(IW_FIXTURES_DIR "/events/complete.json", &len);
    cr_assert_not_null(json);
    char err[256] = "";
    cr_assert_eq(iw_event_parse(json, len, &event, err, sizeof(err)), 0, "%s", err);
    free(json);
}

static void teardown(void)
{
    srv_stop(server);
    server = NULL;
    iw_event_free(event);
    event = NULL;
    iw_config_free(cfg);
    cfg = NULL;
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 120);

#define ENVELOPE_OPEN "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>"
#define ENVELOPE_CLOSE "</s:Body></s:Envelope>"
#define EBIZ_RESULT(id)                                                                            \
    "<UpdateInvoiceResponse xmlns=\"http://eBizCharge.ServiceModel.SOAP\"><UpdateInvoiceResult>"   \
    "<InvoiceInternalId>" id "</InvoiceInternalId><Status>Success</Status>"                        \
    "<StatusCode>1</StatusCode><Error/><ErrorCode>0</ErrorCode></UpdateInvoiceResult>"             \
    "</UpdateInvoiceResponse>"

/* ------------------------------------------------------------------ (a) external entities */

Test(hostile, external_entity_is_never_read)
{
    char dir[] = "/tmp/iw-hostile-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], marker[64];
    snprintf(path, sizeof(path), "%s/secret.txt", dir);
    snprintf(marker, sizeof(marker), "IW-MARKER-%d-%lld", (int)getpid(), iw_now_ms());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(marker, f);
    fclose(f);
    int in = inotify_init1(IN_NONBLOCK);
    cr_assert_geq(in, 0);
    cr_assert_geq(inotify_add_watch(in, path, IN_OPEN | IN_ACCESS), 0);

    char bodies[3][2048];
    /* a general entity used where the target_ref is read */
    snprintf(bodies[0], sizeof(bodies[0]),
             "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "
             "\"file://%s\">]>" ENVELOPE_OPEN EBIZ_RESULT("&xxe;") ENVELOPE_CLOSE,
             path);
    /* a parameter entity, expanded inside the DTD itself */
    snprintf(bodies[1], sizeof(bodies[1]),
             "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope [<!ENTITY %% p SYSTEM \"file://%s\"> "
             "%%p;]>" ENVELOPE_OPEN EBIZ_RESULT("ref-1") ENVELOPE_CLOSE,
             path);
    /* an external DTD */
    snprintf(bodies[2], sizeof(bodies[2]),
             "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope SYSTEM \"file://%s\">" ENVELOPE_OPEN
                 EBIZ_RESULT("ref-2") ENVELOPE_CLOSE,
             path);
    config_for(server->url, 10000, NULL);
    for (int b = 0; b < 3; b++) {
        srv_fixed(server, 200, "text/xml; charset=utf-8", bodies[b], strlen(bodies[b]));
        for (size_t t = 0; t < iw_t_adapter_count(); t++) {
            const char *type = iw_t_adapter(t);
            iw_call_result r = call(type, NULL);
            cr_assert_null(strstr(r.outcome.message, marker), "%s, body %d: %s", type, b,
                           r.outcome.message);
            cr_assert_null(strstr(r.outcome.target_ref, marker), "%s, body %d", type, b);
            cr_assert_null(strstr(r.outcome.code, marker), "%s, body %d", type, b);
            if (b == 0 && strcmp(type, "ebizcharge") == 0) {
                cr_assert_neq(r.outcome.kind, IW_OUTCOME_OK,
                              "a reply declaring entities is refused, not taken as success");
                cr_assert(strstr(r.outcome.message, "entities"), "%s", r.outcome.message);
            }
        }
    }
    char ev[4096];
    ssize_t n = read(in, ev, sizeof(ev));
    cr_assert(n < 0 && errno == EAGAIN, "the marker file was opened or read while classifying");
    /* the watch works: reading the file ourselves is seen */
    f = fopen(path, "r");
    cr_assert_not_null(f);
    fclose(f);
    n = read(in, ev, sizeof(ev));
    cr_assert_gt(n, 0, "inotify saw our own open");
    close(in);
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------ (b) billion laughs */

Test(hostile, billion_laughs_is_refused_and_memory_stays_flat)
{
    static const char laughs[] =
        "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope ["
        "<!ENTITY lol \"lol\">"
        "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
        "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
        "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
        "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
        "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
        "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">"
        "]>" ENVELOPE_OPEN EBIZ_RESULT("&lol9;") ENVELOPE_CLOSE;
    config_for(server->url, 10000, NULL);
    srv_fixed(server, 200, "text/xml; charset=utf-8", laughs, sizeof(laughs) - 1);
    long long before = rss_bytes();
    for (size_t t = 0; t < iw_t_adapter_count(); t++) {
        const char *type = iw_t_adapter(t);
        long long ms = 0;
        iw_call_result r = call(type, &ms);
        cr_log_info("%s: %s in %lld ms", type, r.outcome.message, ms);
        cr_assert_null(strstr(r.outcome.target_ref, "lollol"), "%s", type);
        cr_assert_null(strstr(r.outcome.message, "lollollol"), "%s: %s", type, r.outcome.message);
        if (strcmp(type, "ebizcharge") == 0 || strcmp(type, "centra_soap") == 0) {
            cr_assert_neq(r.outcome.kind, IW_OUTCOME_OK, "%s", type);
            cr_assert(strstr(r.outcome.message, "entit"), "%s: %s", type, r.outcome.message);
        }
    }
    long long growth = rss_bytes() - before;
    cr_assert_lt(growth, 50ll * 1024 * 1024, "resident memory grew by %lld bytes", growth);
}

/* ------------------------------------------------------------------ (c) a 1 GB reply */

Test(hostile, huge_reply_is_cut_at_max_response_bytes)
{
    config_for(server->url, 30000, "\"max_response_bytes\": 1048576");
    srv_mode(server, M_HUGE);
    long long before = rss_bytes();
    iw_call_result r = call("ebizcharge", NULL);
    cr_assert_neq(r.outcome.kind, IW_OUTCOME_OK);
    cr_assert(strstr(r.outcome.message, "larger than 1048576 bytes"), "%s", r.outcome.message);
    cr_assert_eq(r.attempts, 1);
    unsigned long long produced = atomic_load(&server->produced);
    cr_log_info("the server produced %llu bytes before the worker hung up", produced);
    cr_assert_gt(produced, 1048576ull, "the cap was reached by reading, not by luck");
    cr_assert_lt(produced, 64ull * 1024 * 1024,
                 "the worker stopped reading long before 1 GB (%llu bytes produced)", produced);
    long long growth = rss_bytes() - before;
    cr_assert_lt(growth, 50ll * 1024 * 1024, "resident memory grew by %lld bytes", growth);
}

/* ------------------------------------------------------------------ (d) a reply that never ends */

/* The attempt ends at request_ms as a timeout (code "timeout"); with its single attempt used
 * up, the call's error kind is "exhausted" and the message says the transfer timed out. */
Test(hostile, endless_reply_ends_at_the_request_timeout)
{
    config_for(server->url, 1000, NULL);
    srv_mode(server, M_TRICKLE);
    long long ms = 0;
    iw_call_result r = call("centra_soap", &ms);
    cr_assert_eq(r.outcome.kind, IW_OUTCOME_PERMANENT);
    cr_assert_eq(r.outcome.error_kind, IW_ERR_EXHAUSTED);
    cr_assert_str_eq(r.outcome.code, "timeout");
    cr_assert(strstr(r.outcome.message, "Timeout"), "%s", r.outcome.message);
    cr_assert_geq(ms, 950, "it lasted the request timeout (%lld ms)", ms);
    cr_assert_gt(atomic_load(&server->produced), 0, "the reply had started: headers and bytes");
}

/* ------------------------------------------------------------------ (e) wrong content types */

/* Replies are judged by their body, never by Content-Type: a SOAP success served as text/html
 * is a success, JSON garbage served as application/json to a SOAP target is an unreadable
 * reply (retried, never success), and an HTML page is never a success for any adapter. */
Test(hostile, content_type_does_not_decide)
{
    static const char soap_ok[] = ENVELOPE_OPEN EBIZ_RESULT("ref-html") ENVELOPE_CLOSE;
    config_for(server->url, 10000, NULL);
    srv_fixed(server, 200, "text/html; charset=iso-8859-1", soap_ok, sizeof(soap_ok) - 1);
    iw_call_result r = call("ebizcharge", NULL);
    cr_assert_eq(r.outcome.kind, IW_OUTCOME_OK, "%s", r.outcome.message);
    cr_assert_str_eq(r.outcome.target_ref, "ref-html");

    static const char garbage[] = "{\"ok\": tru, \"id\": [1, 2,";
    srv_fixed(server, 200, "application/json", garbage, sizeof(garbage) - 1);
    /* a 2xx alone is no success for any target that reads its reply, InvoiceXpress included: a
     * cut or garbled reply is retried until the attempts run out */
    for (size_t t = 0; t < iw_t_adapter_count(); t++) {
        const char *type = iw_t_adapter(t);
        if (!body_judged(type))
            continue;
        r = call(type, NULL);
        cr_assert_neq(r.outcome.kind, IW_OUTCOME_OK, "%s took JSON garbage as success", type);
        cr_assert_eq(r.outcome.error_kind, IW_ERR_EXHAUSTED, "%s: retried until exhausted", type);
        cr_assert_str_eq(r.outcome.target_ref, "", "no id is read out of garbage");
    }

    static const char html[] = "<!DOCTYPE html><html><body>Maintenance</body></html>";
    srv_fixed(server, 200, "application/soap+xml", html, sizeof(html) - 1);
    for (size_t t = 0; t < iw_t_adapter_count(); t++) {
        const char *type = iw_t_adapter(t);
        if (!body_judged(type))
            continue;
        r = call(type, NULL);
        cr_assert_neq(r.outcome.kind, IW_OUTCOME_OK, "%s took an HTML page as success", type);
    }
}

/* ------------------------------------------------------------------ (f) invalid UTF-8 */

/* Replies with bytes that are not UTF-8 (raw, inside XML declared UTF-8, inside JSON) and a
 * status that makes adapters quote them: every outcome text stays valid UTF-8. */
Test(hostile, invalid_utf8_never_reaches_a_message)
{
    static const char raw[] = "\xff\xfe garbage \xc3\x28 caf\xe9 \xed\xa0\x80 ok";
    static const char xml[] = ENVELOPE_OPEN "<s:Fault><faultcode>s:Client</faultcode>"
                                            "<faultstring>bad \xff\xfe caf\xe9</faultstring>"
                                            "</s:Fault>" ENVELOPE_CLOSE;
    static const char json[] = "{\"Message\": \"bad \xff\xfe caf\xe9\"}";
    static const char errors[] = "<errors><error>bad \xff caf\xe9</error></errors>";
    const char *bodies[] = {raw, xml, json, errors};
    const size_t lens[] = {sizeof(raw) - 1, sizeof(xml) - 1, sizeof(json) - 1, sizeof(errors) - 1};
    const int statuses[] = {200, 400, 422, 500};
    config_for(server->url, 10000, NULL);
    for (size_t b = 0; b < 4; b++) {
        for (size_t s = 0; s < 4; s++) {
            srv_fixed(server, statuses[s], "text/plain", bodies[b], lens[b]);
            for (size_t t = 0; t < iw_t_adapter_count(); t++) {
                const char *type = iw_t_adapter(t);
                iw_call_result r = call(type, NULL);
                cr_assert(iw_t_utf8_ok(r.outcome.message), "%s, body %zu, HTTP %d: message %s",
                          type, b, statuses[s], r.outcome.message);
                cr_assert(iw_t_utf8_ok(r.outcome.code), "%s: code %s", type, r.outcome.code);
                cr_assert(iw_t_utf8_ok(r.outcome.target_ref), "%s: target_ref %s", type,
                          r.outcome.target_ref);
                /* the webhook's 2xx is delivered whatever its body (Standard Webhooks) */
                bool delivered = !body_judged(type) && statuses[s] < 300;
                cr_assert_eq(r.outcome.kind == IW_OUTCOME_OK, delivered, "%s, body %zu, HTTP %d",
                             type, b, statuses[s]);
            }
        }
    }
}

/* Long multi-byte texts pass through the adapters' cuts and the dispatcher's own summary of
 * an exhausted call ("after N attempts: ..."): never cut inside a character. */
Test(hostile, long_multibyte_reasons_stay_utf8_through_the_dispatcher)
{
    config_for(server->url, 10000, NULL);
    for (int pad = 0; pad < 3; pad++) {
        char text[1200] = "";
        snprintf(text, sizeof(text), "%.*s", pad, "xyz");
        for (int i = 0; i < 200; i++)
            strcat(text, "\xe2\x82\xac");
        char body[2048];
        snprintf(body, sizeof(body),
                 ENVELOPE_OPEN "<s:Fault><faultcode>s:Server</faultcode><faultstring>%s"
                               "</faultstring></s:Fault>" ENVELOPE_CLOSE,
                 text);
        srv_fixed(server, 500, "text/xml", body, strlen(body));
        iw_call_result r = call("ebizcharge", NULL);
        cr_assert_eq(r.outcome.error_kind, IW_ERR_EXHAUSTED);
        cr_assert(iw_t_utf8_ok(r.outcome.message), "ebizcharge, pad %d: %s", pad,
                  r.outcome.message);
        snprintf(body, sizeof(body), "{\"Message\": \"%s\"}", text);
        srv_fixed(server, 500, "application/json", body, strlen(body));
        r = call("midnight", NULL);
        cr_assert_eq(r.outcome.error_kind, IW_ERR_EXHAUSTED);
        cr_assert(iw_t_utf8_ok(r.outcome.message), "midnight, pad %d: %s", pad, r.outcome.message);
    }
}

/* ------------------------------------------------------------------ (g) redirects */

Test(hostile, redirect_to_another_host_is_followed_only_when_configured)
{
    srv *other = srv_start();
    static const char soap_ok[] = ENVELOPE_OPEN EBIZ_RESULT("ref-other") ENVELOPE_CLOSE;
    srv_fixed(other, 200, "text/xml", soap_ok, sizeof(soap_ok) - 1);
    pthread_mutex_lock(&server->mu);
    snprintf(server->location, sizeof(server->location), "http://127.0.0.1:%d/landing",
             other->port);
    pthread_mutex_unlock(&server->mu);
    srv_mode(server, M_REDIRECT);

    config_for(server->url, 10000, NULL);
    iw_call_result r = call("ebizcharge", NULL);
    cr_assert_eq(atomic_load(&other->hits), 0, "the redirect was not followed");
    cr_assert_eq(r.http_status, 302);
    cr_assert_neq(r.outcome.kind, IW_OUTCOME_OK, "a 302 is no success: %s", r.outcome.message);

    config_for(server->url, 10000, "\"follow_redirects\": true");
    r = call("ebizcharge", NULL);
    cr_assert_eq(atomic_load(&other->hits), 1, "the redirect was followed once");
    cr_assert_eq(r.outcome.kind, IW_OUTCOME_OK, "%s", r.outcome.message);
    cr_assert_str_eq(r.outcome.target_ref, "ref-other");
    cr_log_info("a followed 302 reached the other host as %s", other->last_method);

    /* Midnight's tokens travel in Authorization headers: never handed to another host */
    srv_fixed(other, 200, "application/json", "\"mn-ref\"", 8);
    r = call("midnight", NULL);
    cr_assert_eq(atomic_load(&other->hits), 2);
    pthread_mutex_lock(&other->mu);
    cr_assert_null(strstr(other->last_secrets, "Authorization="), "%s", other->last_secrets);
    cr_log_info("midnight through a followed 302: %s; the other host saw %s with %s",
                r.outcome.message, other->last_method, other->last_secrets);
    pthread_mutex_unlock(&other->mu);
    srv_stop(other);
}

/* A TCP server on 127.0.0.1 that answers every connection with reply as it is, then closes. */
typedef struct raw_srv {
    int fd, port;
    const char *reply;
    atomic_int served;
    pthread_t th;
} raw_srv;

static void *raw_serve(void *arg)
{
    raw_srv *r = arg;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* the listener was shut down */
        char buf[4096];
        (void)read(c, buf, sizeof(buf)); /* the request's start: enough for libcurl */
        (void)write(c, r->reply, strlen(r->reply));
        atomic_fetch_add(&r->served, 1);
        close(c);
    }
}

static void raw_start(raw_srv *r, const char *reply)
{
    memset(r, 0, sizeof(*r));
    r->reply = reply;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert(r->fd >= 0 && bind(r->fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              listen(r->fd, 16) == 0 && getsockname(r->fd, (struct sockaddr *)&a, &al) == 0);
    r->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&r->th, NULL, raw_serve, r), 0);
}

static void raw_stop(raw_srv *r)
{
    shutdown(r->fd, SHUT_RDWR);
    pthread_join(r->th, NULL);
    close(r->fd);
}

/* Review 73: libcurl says "unsupported protocol" both for a redirect it refuses and for a reply
 * that is not HTTP/1.x. Only the redirect is the target's fixed answer (permanent); a garbage
 * or HTTP/1.2 status line is a transport failure like any other, retried. */
Test(hostile, a_reply_that_is_not_http_is_retried_not_called_a_redirect)
{
    static const char *const replies[] = {"garbage reply\r\n\r\n",
                                          "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"};
    for (size_t i = 0; i < 2; i++) {
        raw_srv r;
        raw_start(&r, replies[i]);
        char url[96];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api", r.port);
        config_for(url, 5000, NULL); /* max_attempts 1: a retryable failure ends exhausted */
        iw_call_result res = call("centra_soap", NULL);
        cr_log_info("%s -> %s", replies[i], res.outcome.message);
        cr_expect_null(strstr(res.outcome.message, "redirect"), "%s", res.outcome.message);
        cr_expect_eq(res.outcome.error_kind, IW_ERR_EXHAUSTED, "retryable: %s",
                     res.outcome.message);
        cr_expect_eq(atomic_load(&r.served), 1);
        /* review 74: the same reply after a redirect the worker followed (libcurl then leaves
         * the response code at the 302) */
        pthread_mutex_lock(&server->mu);
        snprintf(server->location, sizeof(server->location), "http://127.0.0.1:%d/landing", r.port);
        pthread_mutex_unlock(&server->mu);
        srv_mode(server, M_REDIRECT);
        config_for(server->url, 5000, "\"follow_redirects\": true");
        res = call("centra_soap", NULL);
        cr_log_info("302, then %s -> %s", replies[i], res.outcome.message);
        cr_expect_null(strstr(res.outcome.message, "redirect"), "%s", res.outcome.message);
        cr_expect_eq(res.outcome.error_kind, IW_ERR_EXHAUSTED, "retryable: %s",
                     res.outcome.message);
        cr_expect_eq(atomic_load(&r.served), 2, "the redirect was followed");
        raw_stop(&r);
    }
}
