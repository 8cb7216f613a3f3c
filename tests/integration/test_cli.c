/* test_cli.c: the invoice-worker command line as a user runs it: render, check-config, usage. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>

#include "adapters.h"
#include "config.h"
#include "docpaths.h"
#include "invoice.h"
#include "target.h"
#include "testproc.h"

/* Each test's own temporary folder: tests run side by side, and a file another user left
 * in /tmp under a fixed name can be neither replaced nor written (protected_regular). */
static char tmpdir[64];

static void tmp_init(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/iw-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmp_fini(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(cli, .init = tmp_init, .fini = tmp_fini);

/* The path of file `name` in the test's folder (one of four static buffers). */
static const char *tmp_path(const char *name)
{
    static char paths[4][128];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
    return p;
}

/* Where run() puts the command's stderr. */
static const char *stderr_path(void)
{
    return tmp_path("stderr");
}

/* Runs a shell command; returns its exit status and its stdout (malloc'd) in *out. */
static int run(const char *cmd, char **out)
{
    char full[2048];
    snprintf(full, sizeof(full), "%s 2>%s", cmd, stderr_path());
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *stderr_text(void)
{
    return iw_read_file(stderr_path(), NULL);
}

/* The method of the request adapter `type` renders in process for complete.json with its seed
 * config (the config `render` takes without -c), into method. */
static void rendered_method(const char *type, char *method, size_t len)
{
    iw_config *cfg = iw_config_defaults();
    cr_assert_not_null(cfg);
    const iw_target_conf *tc = iw_config_target(cfg, type);
    const iw_target_ops *ops = iw_target_find(type);
    cr_assert(tc && ops, "no seed target %s", type);
    size_t jlen = 0;
    char *json = iw_read_file(IW_FIXTURES_DIR "/events/complete.json", &jlen);
    cr_assert_not_null(json);
    iw_event *ev = NULL;
    char err[256] = "";
    cr_assert_eq(iw_event_parse(json, jlen, &ev, err, sizeof(err)), 0, "%s", err);
    iw_request req = {0};
    iw_render_ctx ctx = {.state = NULL};
    cr_assert_eq(iw_target_render(ops, ev, tc, &ctx, &req, err, sizeof(err)), 0, "%s: %s", type,
                 err);
    snprintf(method, len, "%s ", req.method);
    iw_request_clear(&req);
    iw_event_free(ev);
    free(json);
    iw_config_free(cfg);
}

Test(cli, render_prints_a_well_formed_request_for_every_adapter)
{
    for (size_t i = 0; i < iw_t_adapter_count(); i++) {
        const char *type = iw_t_adapter(i);
        char cmd[1024], method[16], *out = NULL;
        snprintf(cmd, sizeof(cmd), "'%s' render --target %s '%s/events/complete.json'",
                 iw_build_path("invoice-worker"), type, IW_FIXTURES_DIR);
        cr_assert_eq(run(cmd, &out), 0, "%s: %s", type, stderr_text());
        /* first line METHOD URL (the method the adapter renders), headers, a blank line, the
         * body */
        rendered_method(type, method, sizeof(method));
        cr_assert(strncmp(out, method, strlen(method)) == 0, "%s: %.40s, want %s", type, out,
                  method);
        char *blank = strstr(out, "\n\n");
        cr_assert_not_null(blank, "%s: no blank line before the body", type);
        cr_assert(strstr(out, "\nIdempotency-Key: 01JD3Q5V8M2K7X9P4R6T0WQYZB:") != NULL);
        cr_assert(strstr(out, "\nX-Request-ID: 01JD3Q5V8M2K7X9P4R6T0WQYZB:") != NULL);
        const char *body = blank + 2;
        /* the body is the JSON or XML its Content-Type says */
        const char *ctype = strcasestr(out, "\nContent-Type:");
        cr_assert(ctype && ctype < blank, "%s: no Content-Type", type);
        char ct[256];
        snprintf(ct, sizeof(ct), "%.*s", (int)strcspn(ctype + 1, "\n"), ctype + 1);
        if (strstr(ct, "json")) {
            cJSON *j = cJSON_Parse(body);
            cr_assert_not_null(j, "%s body is JSON", type);
            cJSON_Delete(j);
        } else {
            xmlDocPtr d = xmlReadMemory(body, (int)strlen(body), "b.xml", NULL, XML_PARSE_NONET);
            cr_assert_not_null(d, "%s body is well-formed XML", type);
            xmlFreeDoc(d);
        }
        /* the placeholder credentials are secrets: printed as *** (the webhook's placeholder
         * secret, whsec_ and the base64 of "placeholder-signing-key!", is never printed) */
        const char *secrets[] = {
            "PASSWORD",       "SECURITY-ID", "API-KEY", "PRC-TOKEN",
            "MIDNIGHT-TOKEN", "MIS-KEY",     "whsec_",  "cGxhY2Vob2xkZXItc2lnbmluZy1rZXkh"};
        for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++)
            cr_assert_null(strstr(out, secrets[k]), "%s prints %s", type, secrets[k]);
        /* navision defaults to no auth; the webhook sends no credential, only a signature */
        if (strcmp(type, "centra_navision") != 0 && strcmp(type, "webhook") != 0)
            cr_assert(strstr(out, "***") != NULL, "%s masks its credentials", type);
        if (strcmp(type, "webhook") == 0)
            cr_assert(strstr(out, "\nwebhook-signature: v1,") != NULL, "webhook signs: %s", out);
        free(out);
    }
}

Test(cli, render_explains_a_rejected_event_and_a_bad_event)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' render --target ebizcharge '%s/events/minimal.json'",
             iw_build_path("invoice-worker"), IW_FIXTURES_DIR);
    cr_assert_eq(run(cmd, NULL), 1);
    char *err = stderr_text();
    cr_assert(strstr(err, "ebizcharge rejects this event: invoice.") != NULL, "%s", err);
    free(err);
    snprintf(cmd, sizeof(cmd),
             "echo '{\"schema\": 1}' > '%s' && '%s' render --target centra_soap '%s'",
             tmp_path("bad.json"), iw_build_path("invoice-worker"), tmp_path("bad.json"));
    cr_assert_eq(run(cmd, NULL), 1);
    err = stderr_text();
    cr_assert(strstr(err, "invalid event: schema") != NULL, "%s", err);
    free(err);
    snprintf(cmd, sizeof(cmd), "'%s' render --target sap '%s/events/complete.json'",
             iw_build_path("invoice-worker"), IW_FIXTURES_DIR);
    cr_assert_eq(run(cmd, NULL), 1);
    err = stderr_text();
    cr_assert(strstr(err, "no target \"sap\"") != NULL, "%s", err);
    free(err);
    /* a generic target has no defaults to render with: the user is told what to give */
    snprintf(cmd, sizeof(cmd), "'%s' render --target generic '%s/events/complete.json'",
             iw_build_path("invoice-worker"), IW_FIXTURES_DIR);
    cr_assert_eq(run(cmd, NULL), 1);
    err = stderr_text();
    cr_assert(strstr(err, "generic target is defined by its mapping file") &&
                  strstr(err, "-c FILE"),
              "%s", err);
    free(err);
}

/* An error that quotes event text (invoicexpress names a refused unit) is printed as plain
 * text, as the worker logs it: no control or bidirectional formatting character reaches the
 * operator's terminal. */
Test(cli, render_prints_event_text_in_an_error_as_plain_text)
{
    char *json = iw_read_file(IW_FIXTURES_DIR "/events/complete.json", NULL);
    cr_assert_not_null(json);
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j);
    cJSON *line =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "invoice"), "lines"), 0);
    cr_assert_not_null(line);
    cJSON_ReplaceItemInObject(line, "unit",
                              cJSON_CreateString("k\x7fg\xc2\x85"
                                                 "C\xe2\x80\xae"
                                                 "D\x1b[31mE"));
    char *hostile = cJSON_PrintUnformatted(j);
    FILE *f = fopen(tmp_path("unit.json"), "w");
    cr_assert_not_null(f);
    fputs(hostile, f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' render --target invoicexpress '%s'",
             iw_build_path("invoice-worker"), tmp_path("unit.json"));
    cr_assert_eq(run(cmd, NULL), 1);
    char *err = stderr_text();
    cr_assert(strstr(err, "unit") != NULL, "the error names the field: %s", err);
    cr_assert(strstr(err, "D [31mE") != NULL, "the text is quoted, cleaned: %s", err);
    static const char *const bad[] = {"\x1b", "\x7f", "\xc2\x85", "\xe2\x80\xae"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_null(strstr(err, bad[i]), "no control or bidirectional character (%zu)", i);
    free(err);
    free(hostile);
    cJSON_Delete(j);
    free(json);
}

/* classify reads a reply as the dispatcher does: one larger than max_response_bytes (4 MiB by
 * default) is not read and is a transport retry, one of exactly that size is classified, and a
 * path it cannot read (a directory) is an error, not an empty reply. */
Test(cli, classify_treats_an_oversized_reply_as_the_dispatcher_does)
{
    char *ok = iw_read_file(IW_FIXTURES_DIR "/centra_soap/response-success.xml", NULL);
    cr_assert_not_null(ok);
    size_t max = 4u << 20;
    for (size_t size = max; size <= max + 1; size++) {
        FILE *f = fopen(tmp_path("big.xml"), "w");
        cr_assert_not_null(f);
        fputs(ok, f);
        for (size_t i = strlen(ok); i < size; i++)
            fputc(' ', f);
        fclose(f);
        char cmd[512], *out = NULL;
        snprintf(cmd, sizeof(cmd), "'%s' classify --target centra_soap '%s'",
                 iw_build_path("invoice-worker"), tmp_path("big.xml"));
        cr_assert_eq(run(cmd, &out), 0);
        if (size == max)
            cr_assert(strstr(out, "\"outcome\":\"ok\""), "%zu bytes: %s", size, out);
        else
            cr_assert(strstr(out, "\"outcome\":\"retry\"") &&
                          strstr(out, "reply larger than 4194304 bytes"),
                      "%zu bytes: %s", size, out);
        free(out);
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' classify --target centra_soap '%s'",
             iw_build_path("invoice-worker"), tmpdir);
    cr_assert_eq(run(cmd, NULL), 1, "a directory is not a reply");
    char *err = stderr_text();
    cr_assert(strstr(err, "Is a directory"), "%s", err);
    free(err);
    free(ok);
}

Test(cli, check_config_names_every_error_by_path)
{
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' check-config -c '%s/config/broken.json'",
             iw_build_path("invoice-worker"), IW_FIXTURES_DIR);
    cr_assert_eq(run(cmd, NULL), 1);
    err = stderr_text();
    const char *paths[] = {
        "worker.max_in_flight:", "targets.ebiz.url:",        "targets.bad.type:",
        "routes.acme[1]:",       "targets.ix.api_key_file:", "typo: unknown key"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        cr_assert(strstr(err, paths[i]) != NULL, "missing %s in:\n%s", paths[i], err);
    free(err);
    /* a valid config passes and lists its targets */
    FILE *f = fopen(tmp_path("ok.json"), "w");
    fputs("{\"kafka\": {\"brokers\": \"127.0.0.1:9092\"}, \"targets\": {\"ix\": {\"type\": "
          "\"invoicexpress\", \"url\": \"https://acme.app.invoicexpress.com\", \"api_key\": "
          "\"${IW_CLI_TEST_KEY}\"}}}",
          f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "IW_CLI_TEST_KEY=k3y-value-Zz '%s' check-config -c '%s'",
             iw_build_path("invoice-worker"), tmp_path("ok.json"));
    cr_assert_eq(run(cmd, &out), 0, "%s", stderr_text());
    cr_assert(strstr(out, "ok: 1 target instance") != NULL, "%s", out);
    cr_assert_null(strstr(out, "k3y-value-Zz"), "check-config never prints a secret");
    free(out);
    /* review 69: a second file passed unread (check-config configs/\*.json) */
    const char *twice[] = {"-c '%s' '%s/config/broken.json'", "'%s' '%s/config/broken.json'",
                           "-c '%s' -c '%s/config/broken.json'"};
    for (size_t i = 0; i < 3; i++) {
        char args[700];
        snprintf(args, sizeof(args), twice[i], tmp_path("ok.json"), IW_FIXTURES_DIR);
        snprintf(cmd, sizeof(cmd), "IW_CLI_TEST_KEY=k '%s' check-config %s",
                 iw_build_path("invoice-worker"), args);
        cr_assert_eq(run(cmd, NULL), 2, "%s", args);
        err = stderr_text();
        cr_assert(strstr(err, "check-config: one config file at a time"), "%s", err);
        free(err);
    }
    /* review 70: what the ok line and a kafka.properties error quote from the file is printed
     * without its control characters */
    FILE *g = fopen(tmp_path("ctl.json"), "w");
    fputs("{\"kafka\": {\"brokers\": \"b1:9092\\u001b[31mis\\nfake: ok\"}, \"redis\": {\"host\": "
          "\"red\"}, \"targets\": {\"c\": {\"type\": \"centra_soap\", "
          "\"url\": \"https://x.example/\", \"username\": \"u\", \"password\": \"p\"}}}",
          g);
    fclose(g);
    snprintf(cmd, sizeof(cmd), "'%s' check-config -c '%s'", iw_build_path("invoice-worker"),
             tmp_path("ctl.json"));
    cr_assert_eq(run(cmd, &out), 0, "%s", stderr_text());
    cr_assert(strstr(out, "kafka b1:9092 [31mis fake: ok, redis red:6379"), "%s", out);
    cr_assert_null(strchr(out, '\x1b'), "%s", out);
    free(out);
    g = fopen(tmp_path("ctl.json"), "w");
    fputs("{\"kafka\": {\"brokers\": \"127.0.0.1:9092\", \"properties\": {\"bogus\\u001b[31m"
          "\\nfake: ok\": \"1\"}}, \"targets\": {\"c\": {\"type\": \"centra_soap\", \"url\": "
          "\"https://x.example/\", \"username\": \"u\", \"password\": \"p\"}}}",
          g);
    fclose(g);
    cr_assert_eq(run(cmd, NULL), 1);
    err = stderr_text();
    cr_assert(strstr(err, "bogus [31m fake: ok"), "%s", err);
    cr_assert_null(strchr(err, '\x1b'), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
    free(err);
    /* without brokers run refuses to start, so check-config refuses too: an empty
     * IW_KAFKA_BROKERS, or a config without them */
    snprintf(cmd, sizeof(cmd), "IW_CLI_TEST_KEY=k IW_KAFKA_BROKERS= '%s' check-config -c '%s'",
             iw_build_path("invoice-worker"), tmp_path("ok.json"));
    cr_assert_eq(run(cmd, NULL), 1, "an empty IW_KAFKA_BROKERS passed");
    err = stderr_text();
    cr_assert(strstr(err, "environment: IW_KAFKA_BROKERS: empty, so kafka.brokers: not set"), "%s",
              err);
    free(err);
    /* a variable's bad value is the environment's error, not the file's */
    snprintf(cmd, sizeof(cmd), "IW_CLI_TEST_KEY=k IW_LOG_LEVEL=loud '%s' check-config -c '%s'",
             iw_build_path("invoice-worker"), tmp_path("ok.json"));
    cr_assert_eq(run(cmd, NULL), 1, "IW_LOG_LEVEL=loud passed");
    err = stderr_text();
    cr_assert(strstr(err, "environment: IW_LOG_LEVEL: expected debug, info, warn or error\n"), "%s",
              err);
    cr_assert_null(strstr(err, "ok.json"), "%s", err);
    free(err);
    /* with neither worker.id nor IW_WORKER_ID, the id is HOSTNAME: its bad value is named so */
    snprintf(cmd, sizeof(cmd),
             "IW_CLI_TEST_KEY=k HOSTNAME=\"$(printf 'pod\\001x')\" '%s' check-config -c '%s'",
             iw_build_path("invoice-worker"), tmp_path("ok.json"));
    cr_assert_eq(run(cmd, NULL), 1, "a HOSTNAME with a control character passed");
    err = stderr_text();
    cr_assert(strstr(err, "environment: HOSTNAME: contains a control character (the worker id "
                          "when worker.id and IW_WORKER_ID are not set"),
              "%s", err);
    cr_assert_null(strstr(err, "worker.id:"), "%s", err);
    free(err);
    f = fopen(tmp_path("ok.json"), "w");
    fputs("{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": "
          "\"https://acme.app.invoicexpress.com\", \"api_key\": \"k\"}}}",
          f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' check-config -c '%s'", iw_build_path("invoice-worker"),
             tmp_path("ok.json"));
    cr_assert_eq(run(cmd, NULL), 1, "a config without brokers passed");
    err = stderr_text();
    cr_assert(strstr(err, "kafka.brokers: not set") != NULL, "%s", err);
    free(err);
}

/* Issue 11, item 4: check-config refuses what run would refuse at start: every kafka.properties
 * entry is applied to a real producer and consumer configuration. */
Test(cli, check_config_applies_kafka_properties_to_both_clients)
{
    static const struct {
        const char *props; /* the "properties" object */
        const char *want;  /* in stderr */
    } cases[] = {
        {"{\"security.protocol\": \"bogus\"}", "kafka.properties.security.protocol:"},
        {"{\"sasl.passwrd\": \"x\"}", "kafka.properties.sasl.passwrd: No such configuration"},
        {"{\"consumer.auto.offset.reset\": \"sideways\"}",
         "kafka.properties.consumer.auto.offset.reset:"},
        {"{\"producer.linger.ms\": \"-5\"}", "kafka.properties.producer.linger.ms:"},
        {"{\"ssl.key.password\": \"Zq9-not-shown\", \"ssl.key.pem\": \"x\", "
         "\"security.protocol\": \"ssl\"}",
         "kafka.properties"},
    };
    char cmd[1024], json[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"kafka\": {\"brokers\": \"127.0.0.1:9092\", \"properties\": %s}, "
                 "\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": "
                 "\"https://acme.app.invoicexpress.com\", \"api_key\": \"k\"}}}",
                 cases[i].props);
        FILE *f = fopen(tmp_path("kafka.json"), "w");
        cr_assert_not_null(f);
        fputs(json, f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "'%s' check-config -c '%s'", iw_build_path("invoice-worker"),
                 tmp_path("kafka.json"));
        cr_assert_eq(run(cmd, NULL), 1, "%s passed check-config", cases[i].props);
        char *err = stderr_text();
        cr_assert(strstr(err, cases[i].want) != NULL, "%s: %s", cases[i].props, err);
        cr_assert_null(strstr(err, "Zq9"), "a secret property's value is never printed: %s", err);
        free(err);
    }
}

Test(cli, help_version_and_usage_errors)
{
    char cmd[512], *out = NULL;
    const char *helps[] = {"--help",      "run --help",   "render --help", "check-config --help",
                           "send --help", "replay --help"};
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
        snprintf(cmd, sizeof(cmd), "'%s' %s", iw_build_path("invoice-worker"), helps[i]);
        cr_assert_eq(run(cmd, &out), 0, "%s", helps[i]);
        cr_assert(strstr(out, "usage: invoice-worker") != NULL, "%s: %s", helps[i], out);
        free(out);
    }
    snprintf(cmd, sizeof(cmd), "'%s' --version", iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, &out), 0);
    cr_assert(strncmp(out, "invoice-worker ", 15) == 0, "%s", out);
    free(out);
    snprintf(cmd, sizeof(cmd), "'%s' frobnicate", iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, NULL), 2);
    snprintf(cmd, sizeof(cmd), "'%s' run", iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, NULL), 2, "run without -c is a usage error");
    snprintf(cmd, sizeof(cmd), "'%s' run -c /nonexistent.json", iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, NULL), 2, "an unreadable config is a config error");
}
