/* test_config.c: the config loader: defaults, ${ENV}, *_file secrets, IW_* overrides, errors by
 * path. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "centra.h"
#include "config.h"
#include "docpaths.h"
#include "ebizcharge.h"
#include "invoicexpress.h"
#include "target.h"

/* True when some error has exactly this path and a message containing `part`. */
static bool has_error(const iw_config_errors *e, const char *path, const char *part)
{
    for (size_t i = 0; i < e->count && i < 64; i++)
        if (strcmp(e->items[i].path, path) == 0 && strstr(e->items[i].message, part))
            return true;
    return false;
}

static void dump(const iw_config_errors *e)
{
    for (size_t i = 0; i < e->count && i < 64; i++)
        fprintf(stderr, "  %s: %s\n", e->items[i].path, e->items[i].message);
}

Test(config, minimal_gets_defaults)
{
    iw_config_errors e;
    iw_config *c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}", NULL, &e);
    cr_assert_not_null(c);
    cr_assert_eq(c->max_in_flight, 512);
    cr_assert_eq(c->shutdown_grace_ms, 25000);
    cr_assert_str_eq(c->input_topic, "invoice-events");
    cr_assert_str_eq(c->result_topic, "invoice-results");
    cr_assert_str_eq(c->dlq_topic, "invoice-events-dlq");
    cr_assert_eq(c->ledger_ttl_s, 7 * 86400);
    const iw_target_conf *t = iw_config_target(c, "c");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->type, "centra_soap");
    cr_assert_str_eq(iw_centra_conf_of(t)->soap_action,
                     "http://www.centra.com/webservices/Invoices_Update");
    cr_assert_str_eq(iw_centra_conf_of(t)->namespace_uri, "http://www.centra.com/webservices/");
    cr_assert_eq(t->retry.max_attempts, 8);
    cr_assert_eq(t->retry.base_ms, 250);
    cr_assert_eq(t->retry.max_delay_ms, 60000);
    cr_assert_eq(t->retry.max_elapsed_ms, 600000);
    cr_assert_eq(t->connect_timeout_ms, 5000);
    cr_assert_eq(t->request_timeout_ms, 30000);
    cr_assert_eq(t->settle_ms, 30000, "an unanswered attempt settles for request_ms by default");
    cr_assert_eq(t->max_concurrency, 32);
    cr_assert_eq(t->breaker_failures, 20);
    cr_assert_eq(t->breaker_open_ms, 30000);
    cr_assert(t->breaker_shed, "shedding is on by default");
    cr_assert_eq(t->breaker_shed_after_ms, 30000, "once the target has been down 30 s");
    cr_assert(t->tls_verify);
    cr_assert(!t->follow_redirects);
    cr_assert_null(iw_config_target(c, "nope"));
    iw_config_free(c);
}

Test(config, env_references_and_defaults)
{
    setenv("IW_TEST_HOST", "ebiz.example", 1);
    unsetenv("IW_TEST_UNSET");
    iw_config_errors e;
    iw_config *c = iw_config_parse("{\"targets\": {\"e\": {\"type\": \"ebizcharge\", \"url\": "
                                   "\"https://${IW_TEST_HOST}/x.svc\","
                                   " \"security_id\": \"${IW_TEST_UNSET:-fallback-id}\"}}}",
                                   NULL, &e);
    dump(&e);
    cr_assert_not_null(c);
    cr_assert_str_eq(iw_config_target(c, "e")->url, "https://ebiz.example/x.svc");
    cr_assert_str_eq(iw_ebiz_conf_of(iw_config_target(c, "e"))->security_id, "fallback-id");
    iw_config_free(c);

    c = iw_config_parse(
        "{\"targets\": {\"e\": {\"type\": \"ebizcharge\", \"security_id\": \"${IW_TEST_UNSET}\"}}}",
        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "targets.e.security_id", "IW_TEST_UNSET is not set"));

    /* ${NAME-default} (without the colon) is refused, and its default text is not printed */
    static const char *const bad[] = {"${IW_TEST_UNSET-s3cr3t-fallback}", "${1X}", "${A B}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"targets\": {\"e\": {\"type\": \"ebizcharge\", \"security_id\": \"%s\"}}}",
                 bad[i]);
        c = iw_config_parse(json, NULL, &e);
        cr_assert_null(c, "%s", bad[i]);
        cr_assert(has_error(&e, "targets.e.security_id", "${NAME:-default}"), "%s: %s", bad[i],
                  e.items[0].message);
        for (size_t k = 0; k < e.count && k < 64; k++)
            cr_assert_null(strstr(e.items[k].message, "s3cr3t"), "%s", e.items[k].message);
    }
}

/* A secret file must be a regular file, or a symlink to one (a Kubernetes Secret's): a FIFO with
 * no writer is refused at once, where opening it to read would wait for a writer for ever. */
Test(config, a_secret_file_that_is_not_a_regular_file_is_refused_without_waiting, .timeout = 60)
{
    char dir[] = "/tmp/iw-cfg-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char fifo[256], real[256], link[256], json[512];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    snprintf(json, sizeof(json),
             "{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": \"https://a.example\","
             " \"api_key_file\": \"%s\"}}}",
             fifo);
    iw_config_errors e;
    iw_config *c = iw_config_parse(json, NULL, &e);
    cr_assert_null(c, "a FIFO was read as a secret file");
    cr_assert(has_error(&e, "targets.ix.api_key_file", "is not a regular file"));
    /* a symlink to a regular file, as Kubernetes mounts a Secret, is read */
    snprintf(real, sizeof(real), "%s/real", dir);
    snprintf(link, sizeof(link), "%s/link", dir);
    FILE *f = fopen(real, "w");
    fputs("k3y-from-a-link\n", f);
    fclose(f);
    cr_assert_eq(symlink(real, link), 0);
    snprintf(json, sizeof(json),
             "{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": \"https://a.example\","
             " \"api_key_file\": \"%s\"}}}",
             link);
    c = iw_config_parse(json, NULL, &e);
    dump(&e);
    cr_assert_not_null(c);
    cr_assert_str_eq(iw_ix_conf_of(iw_config_target(c, "ix"))->api_key, "k3y-from-a-link");
    iw_config_free(c);
    unlink(fifo);
    unlink(link);
    unlink(real);
    rmdir(dir);
}

Test(config, secret_files)
{
    char dir[] = "/tmp/iw-cfg-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/api-key", dir);
    FILE *f = fopen(path, "w");
    fputs("s3cr3t-key-value\n", f);
    fclose(f);
    char json[512];
    snprintf(json, sizeof(json),
             "{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": \"https://a.example\","
             " \"api_key_file\": \"api-key\"}}}");
    iw_config_errors e;
    iw_config *c = iw_config_parse(json, dir, &e); /* relative to the config's folder */
    dump(&e);
    cr_assert_not_null(c);
    cr_assert_str_eq(iw_ix_conf_of(iw_config_target(c, "ix"))->api_key, "s3cr3t-key-value");
    iw_config_free(c);

    /* a missing file is named, its would-be content never is */
    c = iw_config_parse("{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"api_key_file\": "
                        "\"/nonexistent/k\"}}}",
                        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "targets.ix.api_key_file", "cannot read secret file /nonexistent/k"));

    /* review 103: a variable holding the secret itself, not its path, was printed as the path;
     * a name from ${ENV} is shown as written. An empty name says so. */
    setenv("IW_TEST_PW_AS_FILE", "s3cr3t-P@ss<&>\"w0rd", 1);
    c = iw_config_parse("{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"api_key_file\": "
                        "\"${IW_TEST_PW_AS_FILE}\"}, \"iy\": {\"type\": \"invoicexpress\", "
                        "\"api_key_file\": \"\"}}, \"kafka\": {\"properties\": "
                        "{\"sasl.password_file\": \"${IW_TEST_PW_AS_FILE}\"}}}",
                        NULL, &e);
    unsetenv("IW_TEST_PW_AS_FILE");
    cr_assert_null(c);
    dump(&e);
    cr_assert(has_error(&e, "targets.ix.api_key_file",
                        "cannot read secret file ${IW_TEST_PW_AS_FILE} (its value not shown)"));
    cr_assert(has_error(&e, "kafka.properties.sasl.password_file", "(its value not shown)"));
    cr_assert(has_error(&e, "targets.iy.api_key_file", "is empty: the path of a file"));
    for (size_t i = 0; i < e.count && i < 64; i++)
        cr_assert(!strstr(e.items[i].message, "s3cr3t"), "%s", e.items[i].message);

    /* both forms at once is ambiguous */
    c = iw_config_parse("{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"api_key\": \"a\", "
                        "\"api_key_file\": \"b\"}}}",
                        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "targets.ix.api_key", "not both"));

    /* a NUL byte would end the secret there, silently: refused, its content never named */
    f = fopen(path, "wb");
    fwrite("abc\0def-secret-tail\n", 1, 20, f);
    fclose(f);
    c = iw_config_parse(json, dir, &e);
    cr_assert_null(c, "a secret file holding a NUL byte was read");
    cr_assert(has_error(&e, "targets.ix.api_key_file", "holds a NUL byte"));
    for (size_t i = 0; i < e.count; i++)
        cr_assert_null(strstr(e.items[i].message, "def-secret"), "%s", e.items[i].message);

    /* a secret given empty, here through a ${ENV} set to nothing, is refused by path */
    setenv("IW_TEST_EMPTY_SECRET", "", 1);
    c = iw_config_parse("{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": "
                        "\"https://a.example\", \"api_key\": \"${IW_TEST_EMPTY_SECRET}\"}}}",
                        NULL, &e);
    cr_assert_null(c, "an empty api_key was taken");
    cr_assert(has_error(&e, "targets.ix.api_key", "is empty (an empty ${ENV} counts as given)"));
    /* and Redis' password too (review 54: AUTH "" at every connect), and Kafka's (review 92:
     * an empty sasl.password passed check-config, to fail as SASL authentication at run time) */
    static const char *const elsewhere[][2] = {
        {"{\"redis\": {\"password\": \"${IW_TEST_EMPTY_SECRET}\"}, ", "redis.password"},
        {"{\"kafka\": {\"properties\": {\"sasl.password\": \"${IW_TEST_EMPTY_SECRET}\"}}, ",
         "kafka.properties.sasl.password"},
    };
    for (size_t i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]); i++) {
        char cfg[512];
        snprintf(cfg, sizeof(cfg),
                 "%s\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": "
                 "\"https://a.example\", \"api_key\": \"k\"}}}",
                 elsewhere[i][0]);
        c = iw_config_parse(cfg, NULL, &e);
        cr_assert_null(c, "an empty %s was taken", elsewhere[i][1]);
        cr_assert(has_error(&e, elsewhere[i][1], "is empty"));
    }
    unsetenv("IW_TEST_EMPTY_SECRET");

    /* review 92: a file of white space, or one an editor began with a byte order mark, is no
     * secret any server takes: refused by path, the content never named */
    static const char *const flawed[][2] = {
        {"   \n", "holds only white space"},
        {"\xEF\xBB\xBF"
         "bom-secret-tail\n",
         "starts with a byte order mark"},
    };
    for (size_t i = 0; i < sizeof(flawed) / sizeof(flawed[0]); i++) {
        f = fopen(path, "wb");
        fputs(flawed[i][0], f);
        fclose(f);
        c = iw_config_parse(json, dir, &e);
        cr_assert_null(c, "a secret file %zu was read", i);
        cr_assert(has_error(&e, "targets.ix.api_key_file", flawed[i][1]), "file %zu", i);
        for (size_t k = 0; k < e.count; k++)
            cr_assert_null(strstr(e.items[k].message, "secret-tail"), "%s", e.items[k].message);
    }
    /* given inline, the same; a Kafka password too */
    c = iw_config_parse("{\"kafka\": {\"properties\": {\"sasl.password\": \" \\t\"}}, "
                        "\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": "
                        "\"https://a.example\", \"api_key\": \"\\n\"}}}",
                        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "targets.ix.api_key", "holds only white space"));
    cr_assert(has_error(&e, "kafka.properties.sasl.password", "holds only white space"));
    /* review 100: a Kafka password inline and from a file, as for a target's secrets */
    c = iw_config_parse("{\"kafka\": {\"properties\": {\"sasl.password\": \"p\", "
                        "\"sasl.password_file\": \"/run/secrets/kafka\"}}, "
                        "\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "kafka.properties.sasl.password_file",
                        "set either sasl.password or sasl.password_file, not both"));
    /* trailing newlines (LF or CRLF, one or more) are dropped, as an editor leaves them */
    f = fopen(path, "wb");
    fputs("s3cr3t\r\n\n", f);
    fclose(f);
    c = iw_config_parse(json, dir, &e);
    cr_assert_not_null(c);
    cr_assert_str_eq(iw_ix_conf_of(iw_config_target(c, "ix"))->api_key, "s3cr3t");
    iw_config_free(c);
    unlink(path);
    rmdir(dir);
}

Test(config, iw_env_overrides)
{
    setenv("IW_KAFKA_BROKERS", "127.0.0.1:1234", 1);
    setenv("IW_REDIS_PORT", "7000", 1);
    setenv("IW_MAX_IN_FLIGHT", "64", 1);
    setenv("IW_LOG_LEVEL", "debug", 1);
    iw_config_errors e;
    iw_config *c =
        iw_config_parse("{\"kafka\": {\"brokers\": \"other:9092\"}, \"redis\": {\"port\": 6379},"
                        " \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                        NULL, &e);
    unsetenv("IW_KAFKA_BROKERS");
    unsetenv("IW_REDIS_PORT");
    unsetenv("IW_MAX_IN_FLIGHT");
    unsetenv("IW_LOG_LEVEL");
    cr_assert_not_null(c);
    cr_assert_str_eq(c->kafka_brokers, "127.0.0.1:1234");
    cr_assert_eq(c->redis_port, 7000);
    cr_assert_eq(c->max_in_flight, 64);
    cr_assert_str_eq(c->log_level, "debug");
    iw_config_free(c);

    setenv("IW_REDIS_PORT", "seventy", 1);
    c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}", NULL, &e);
    unsetenv("IW_REDIS_PORT");
    cr_assert_null(c);
    cr_assert(has_error(&e, "IW_REDIS_PORT", "port"));

    /* a bad value from a variable is named by the variable, not by the key it overrides */
    static const char *const vars[][2] = {{"IW_LOG_LEVEL", "loud"},
                                          {"IW_HTTP_LISTEN", "everywhere"},
                                          {"IW_KAFKA_GROUP_ID", ""},
                                          {"IW_REDIS_HOST", ""},
                                          {"IW_WORKER_ID", "w\x1b[2J"}};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        setenv(vars[i][0], vars[i][1], 1);
        c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}", NULL, &e);
        unsetenv(vars[i][0]);
        cr_assert_null(c, "%s", vars[i][0]);
        cr_assert(has_error(&e, vars[i][0], ""), "%s: %s %s", vars[i][0], e.items[0].path,
                  e.items[0].message);
    }
    c = iw_config_parse("{\"worker\": {\"log_level\": \"loud\"}, \"targets\": {\"c\": "
                        "{\"type\": \"centra_soap\"}}}",
                        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "worker.log_level", "expected"), "the file's own value, by its key");
}

Test(config, target_settings)
{
    iw_config_errors e;
    iw_config *c = iw_config_parse(
        "{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": \"http://127.0.0.1:9\","
        " \"retry\": {\"max_attempts\": 3, \"max_elapsed_s\": 20, \"base_ms\": 10, "
        "\"max_delay_ms\": 100},"
        " \"timeouts\": {\"connect_ms\": 100, \"request_ms\": 200}, \"max_concurrency\": 4,"
        " \"rate\": {\"per_s\": 2.5}, \"breaker\": {\"failures\": 3, \"open_s\": 2,"
        " \"shed\": false, \"shed_after_s\": 0},"
        " \"tls\": {\"verify\": false}, \"tax_names\": {\"23\": \"IVA23\", \"6.5\": \"X\"},"
        " \"accepted_units\": [\"unit\", \"hour\"], \"api_key\": \"k\"}},"
        " \"routes\": {\"acme\": [\"ix\"], \"*\": [\"ix\"]}}",
        NULL, &e);
    dump(&e);
    cr_assert_not_null(c);
    const iw_target_conf *t = iw_config_target(c, "ix");
    cr_assert_eq(t->retry.max_attempts, 3);
    cr_assert_eq(t->retry.max_elapsed_ms, 20000);
    cr_assert_eq(t->retry.base_ms, 10);
    cr_assert_eq(t->retry.max_delay_ms, 100);
    cr_assert_eq(t->connect_timeout_ms, 100);
    cr_assert_eq(t->request_timeout_ms, 200);
    cr_assert_eq(t->max_concurrency, 4);
    cr_assert_eq(t->rate_burst, 2); /* defaults to the rate */
    cr_assert_eq(t->breaker_failures, 3);
    cr_assert_eq(t->breaker_open_ms, 2000);
    cr_assert(!t->breaker_shed);
    cr_assert_eq(t->breaker_shed_after_ms, 0);
    cr_assert(!t->tls_verify);
    cr_assert_eq(iw_ix_conf_of(t)->n_tax_names, 2);
    cr_assert_str_eq(iw_ix_conf_of(t)->tax_names[1].rate, "6.5");
    cr_assert_str_eq(iw_ix_conf_of(t)->tax_names[1].name, "X");
    cr_assert_eq(iw_ix_conf_of(t)->n_accepted_units, 2);
    cr_assert_str_eq(iw_ix_conf_of(t)->accepted_units[1], "hour");
    const iw_route *r = iw_config_route(c, "acme");
    cr_assert_not_null(r);
    cr_assert_str_eq(r->targets[0], "ix");
    cr_assert_str_eq(iw_config_route(c, "other-tenant")->tenant, "*");
    iw_config_free(c);
}

Test(config, broken_file_names_every_error)
{
    iw_config_errors e;
    iw_config *c = iw_config_load(IW_FIXTURES_DIR "/config/broken.json", &e);
    cr_assert_null(c);
    dump(&e);
    cr_assert(has_error(&e, "worker.max_in_flight", "between 1 and"));
    cr_assert(has_error(&e, "worker.log_level", "debug, info, warn or error"));
    cr_assert(has_error(&e, "redis.port", "integer"));
    cr_assert(has_error(&e, "redis.password", "not both"));
    cr_assert(has_error(&e, "targets.ebiz.url", "http:// or https://"));
    cr_assert(has_error(&e, "targets.ebiz.retry.max_attempts", "integer"));
    cr_assert(has_error(&e, "targets.bad.type", "unknown adapter type"));
    cr_assert(has_error(&e, "targets.ix.api_key_file", "cannot read secret file"));
    cr_assert(has_error(&e, "targets.ix.tax_names.abc", "tax rate"));
    cr_assert(has_error(&e, "routes.acme[1]", "no target instance named \"missing\""));
    cr_assert(has_error(&e, "typo", "unknown key"));
}

/* Review 92: a burst with no per_s limited nothing and said nothing. */
Test(config, a_rate_burst_without_a_rate_is_refused)
{
    iw_config_errors e;
    iw_config *c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\", "
                                   "\"rate\": {\"burst\": 5}}}}",
                                   NULL, &e);
    cr_assert_null(c, "a burst with no rate was taken");
    cr_assert(has_error(&e, "targets.c.rate.burst", "limits nothing without per_s"));
    c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\", "
                        "\"rate\": {\"per_s\": 2, \"burst\": 5}}}}",
                        NULL, &e);
    cr_assert_not_null(c);
    cr_assert_eq(iw_config_target(c, "c")->rate_burst, 5);
    iw_config_free(c);
}

Test(config, a_connect_or_first_delay_past_its_bound_is_refused)
{
    iw_config_errors e;
    iw_config *c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\", "
                                   "\"timeouts\": {\"connect_ms\": 10000, \"request_ms\": 2000}, "
                                   "\"retry\": {\"base_ms\": 5000, \"max_delay_ms\": 1000}}}}",
                                   NULL, &e);
    cr_assert_null(c, "a connect longer than the call and a first delay past the cap were taken");
    cr_assert(has_error(&e, "targets.c.timeouts.connect_ms",
                        "10000 ms exceeds request_ms (2000 ms), which bounds the whole call"));
    cr_assert(has_error(&e, "targets.c.retry.base_ms", "5000 ms exceeds max_delay_ms (1000 ms)"));
    /* a default beyond a bound set small is no contradiction: the bound holds */
    c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\", "
                        "\"timeouts\": {\"request_ms\": 2000}, "
                        "\"retry\": {\"max_delay_ms\": 100}}}}",
                        NULL, &e);
    cr_assert_not_null(c);
    iw_config_free(c);
    c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\", "
                        "\"timeouts\": {\"connect_ms\": 2000, \"request_ms\": 2000}, "
                        "\"retry\": {\"base_ms\": 1000, \"max_delay_ms\": 1000}}}}",
                        NULL, &e);
    cr_assert_not_null(c, "equal bounds are fine");
    iw_config_free(c);
}

Test(config, invalid_json_and_top_level)
{
    iw_config_errors e;
    cr_assert_null(iw_config_parse("{\"targets\": ", NULL, &e));
    cr_assert(has_error(&e, "", "invalid JSON"));
    cr_assert_null(iw_config_parse("[1,2]", NULL, &e));
    cr_assert(has_error(&e, "", "JSON object"));
    cr_assert_null(iw_config_parse("{}", NULL, &e));
    cr_assert(has_error(&e, "targets", "at least one"));
    cr_assert_null(iw_config_load("/nonexistent/config.json", &e));
    cr_assert(has_error(&e, "", "cannot open"));
    /* where the text goes wrong, by line and column */
    cr_assert_null(iw_config_parse("{\n  \"targets\": {\n    \"a\": 1,,\n", NULL, &e));
    cr_assert(has_error(&e, "", "invalid JSON near line 3, column 13 (byte 29)"), "%s",
              e.items[0].message);
    cr_assert_null(iw_config_parse("{\"targets\": {}}\n{}", NULL, &e));
    cr_assert(has_error(&e, "", "at line 2, column 1 (byte 16): text after"), "%s",
              e.items[0].message);
    cr_assert_null(iw_config_parse_with("{\n\"a\0\": 1}", 11, NULL, NULL, &e));
    cr_assert(has_error(&e, "", "a NUL byte at line 2, column 3 (byte 4)"), "%s",
              e.items[0].message);
    /* a directory is not a config file (it used to read as an empty one) */
    cr_assert_null(iw_config_load("/tmp", &e));
    cr_assert(has_error(&e, "", "/tmp is a directory, not a config file"), "%s",
              e.items[0].message);
}

Test(config, example_config_is_valid)
{
    /* The shipped example references secret files and env vars; provide them. */
    char dir[] = "/tmp/iw-example-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("CENTRA_HOST", "centra.example", 1);
    setenv("CENTRA_USERNAME", "svc", 1);
    setenv("MIDNIGHT_HOST", "midnight.example", 1);
    setenv("EBIZ_HOST", "ebiz.example", 1);
    setenv("INVOICEXPRESS_ACCOUNT", "acme", 1);
    char *src = NULL;
    size_t n = 0;
    FILE *f = fopen(IW_FIXTURES_DIR "/../../deploy/config/config.example.json", "rb");
    cr_assert_not_null(f);
    src = malloc(65536);
    n = fread(src, 1, 65535, f);
    src[n] = '\0';
    fclose(f);
    /* point the secret files at the temp folder */
    char *json = malloc(n * 2 + 1);
    char *o = json;
    for (const char *p = src; *p;) {
        if (strncmp(p, "/run/secrets/invoice-worker/", 28) == 0) {
            p += 28; /* relative to base_dir = dir */
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    const char *files[] = {"redis-password",       "centra-password",  "midnight-prc-token",
                           "midnight-token",       "midnight-mis-key", "ebiz-security-id",
                           "invoicexpress-api-key"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        FILE *s = fopen(p, "w");
        fprintf(s, "value-%zu\n", i);
        fclose(s);
    }
    iw_config_errors e;
    iw_config *c = iw_config_parse(json, dir, &e);
    dump(&e);
    cr_assert_not_null(c);
    cr_assert_eq(c->n_targets, 5);
    cr_assert_str_eq(iw_centra_conf_of(iw_config_target(c, "centra_soap"))->password, "value-1");
    cr_assert_str_eq(iw_config_target(c, "centra_soap")->url,
                     "https://centra.example/amsdocs/system/service/module/soap/api");
    cr_assert_eq(c->n_kafka_props, 2);
    iw_config_free(c);
    free(json);
    free(src);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(config, defaults_config_has_every_adapter)
{
    iw_config *c = iw_config_defaults();
    cr_assert_not_null(c);
    const char *types[] = {"centra_soap", "centra_navision", "midnight", "ebizcharge",
                           "invoicexpress"};
    for (size_t i = 0; i < 5; i++) {
        const iw_target_conf *t = iw_config_target(c, types[i]);
        cr_assert_not_null(t, "%s", types[i]);
        cr_assert_str_eq(t->type, types[i]);
        cr_assert_not_null(t->url);
    }
    iw_target_conf tc = {0};
    cr_assert_eq(iw_target_conf_defaults(&tc, "sap"), -5);
    cr_assert_eq(iw_target_conf_defaults(&tc, "ebizcharge"), 0);
    cr_assert_str_eq(iw_ebiz_conf_of(&tc)->soap_action,
                     "http://eBizCharge.ServiceModel.SOAP/IeBizService/UpdateInvoice");
    iw_target_conf_clear(&tc);
    iw_config_free(c);
}

Test(config, relative_ca_file_is_relative_to_the_config)
{
    char dir[] = "/tmp/iw-ca-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    FILE *f = fopen(path, "w");
    fputs("not really a CA\n", f);
    fclose(f);
    iw_config_errors e;
    iw_config *c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\","
                                   " \"tls\": {\"ca_file\": \"ca.pem\"}}}}",
                                   dir, &e);
    dump(&e);
    cr_assert_not_null(c);
    cr_assert_str_eq(iw_config_target(c, "c")->tls_ca_file, path);
    iw_config_free(c);
    unlink(path);
    rmdir(dir);
}

/* A call on the wire when its partition moves must end before its fence lease: the lease must
 * exceed every target's request timeout by more than IW_LEASE_MARGIN_MS. */
Test(config, settle_follows_the_request_timeout_unless_set)
{
    iw_config_errors e;
    iw_config *c = iw_config_parse(
        "{\"targets\": {\"a\": {\"type\": \"centra_soap\", \"timeouts\": {\"request_ms\": 1500}},"
        " \"b\": {\"type\": \"centra_soap\","
        " \"timeouts\": {\"request_ms\": 1500, \"settle_ms\": 0}},"
        " \"c\": {\"type\": \"centra_soap\", \"timeouts\": {\"settle_ms\": 90000}}}}",
        NULL, &e);
    dump(&e);
    cr_assert_not_null(c);
    cr_assert_eq(iw_config_target(c, "a")->settle_ms, 1500);
    cr_assert_eq(iw_config_target(c, "b")->settle_ms, 0, "0 turns the wait off");
    cr_assert_eq(iw_config_target(c, "c")->settle_ms, 90000, "longer than the lease is fine");
    cr_assert_eq(iw_target_lease_grant_ms(c, iw_config_target(c, "a")), 60000 + 1500,
                 "a fence is granted the lease plus its target's settle");
    cr_assert_eq(iw_target_lease_grant_ms(c, iw_config_target(c, "b")), 60000);
    cr_assert_eq(iw_target_lease_grant_ms(c, iw_config_target(c, "c")), 60000 + 90000);
    iw_config_free(c);
    c = iw_config_parse("{\"targets\": {\"a\": {\"type\": \"centra_soap\"}}}", NULL, &e);
    cr_assert_not_null(c);
    cr_assert_eq(iw_target_lease_grant_ms(c, iw_config_target(c, "a")), 90000,
                 "60 s lease, 30 s request, settle as request");
    iw_config_free(c);
    c = iw_config_parse("{\"targets\": {\"a\": {\"type\": \"centra_soap\", \"timeouts\": "
                        "{\"settle_ms\": -1}}}}",
                        NULL, &e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "targets.a.timeouts.settle_ms", ""));
}

Test(config, lease_must_outlast_every_request_timeout)
{
    iw_config_errors e;
    /* default lease 60 s, default request timeout 30 s: fine */
    iw_config *c = iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}", NULL, &e);
    cr_assert_not_null(c);
    cr_assert_eq(c->lease_ms, 60000);
    iw_config_free(c);

    c = iw_config_parse(
        "{\"redis\": {\"lease_s\": 5}, \"targets\": {"
        "\"fast\": {\"type\": \"centra_soap\", \"timeouts\": {\"request_ms\": 2000}},"
        "\"slow\": {\"type\": \"centra_soap\", \"timeouts\": {\"request_ms\": 3000}}}}",
        NULL, &e);
    dump(&e);
    cr_assert_null(c, "a 5 s lease with a 3 s request timeout leaves no margin");
    cr_assert_eq(e.count, 1, "only the slow target is named");
    cr_assert(has_error(&e, "redis.lease_s", "targets.slow.timeouts.request_ms (3000 ms)"));

    c = iw_config_parse(
        "{\"redis\": {\"lease_s\": 6}, \"targets\": {"
        "\"slow\": {\"type\": \"centra_soap\", \"timeouts\": {\"request_ms\": 3000}}}}",
        NULL, &e);
    cr_assert_not_null(c, "6 s > 3 s + 2 s");
    iw_config_free(c);
}

/* ---- issue 11: strictness (items 3 and 4) ---- */

static iw_config *parse_errs(const char *json, iw_config_errors *e)
{
    iw_config *c = iw_config_parse(json, NULL, e);
    if (c)
        iw_config_free(c);
    else
        dump(e);
    return c;
}

Test(config, duplicate_keys_are_refused_by_path)
{
    iw_config_errors e;
    cr_assert_null(parse_errs("{\"targets\": {\"ix\": {\"type\": \"invoicexpress\", \"url\": "
                              "\"http://a.example\", \"url\": \"http://evil.example\"}}}",
                              &e));
    cr_assert(has_error(&e, "targets.ix.url", "duplicate key"));
    cr_assert_null(
        parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}, \"c\": {\"type\": "
                   "\"midnight\"}}}",
                   &e));
    cr_assert(has_error(&e, "targets.c", "duplicate key"));
    cr_assert_null(parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\", \"tls\": "
                              "{\"verify\": true, \"verify\": false}}}}",
                              &e));
    cr_assert(has_error(&e, "targets.c.tls.verify", "duplicate key"));
    cr_assert_null(parse_errs("{\"worker\": {}, \"worker\": {}, \"targets\": {\"c\": {\"type\": "
                              "\"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "worker", "duplicate key"));
}

/* Review 69: a key is printed in its error's path, on a terminal. One written with JSON
 * escapes ("a\nfake: ok\u001b[31m") printed a line of its own and a colour change; control
 * and bidirectional characters become spaces. */
Test(config, a_key_with_control_characters_is_named_without_them)
{
    iw_config_errors e;
    cr_assert_null(parse_errs("{\"worker\": {\"a\\nfake: ok\\u001b[31mRED\\u202e\": 1}, "
                              "\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "worker.a fake: ok [31mRED ", "unknown key"));
    for (size_t i = 0; i < e.count && i < sizeof(e.items) / sizeof(e.items[0]); i++)
        for (const unsigned char *p = (const unsigned char *)e.items[i].path; *p; p++)
            cr_assert(*p >= 0x20 && *p != 0x7f && *p != 0xe2, "%s", e.items[i].path);
}

Test(config, invalid_utf8_nul_escape_and_trailing_text_are_refused)
{
    iw_config_errors e;
    cr_assert_null(parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\", \"username\": "
                              "\"a\xff\"}}}",
                              &e));
    cr_assert(has_error(&e, "", "invalid UTF-8"));
    cr_assert_null(parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\", \"url\": "
                              "\"http://a.example\\u0000.evil\"}}}",
                              &e));
    cr_assert(has_error(&e, "", "\\u0000"));
    cr_assert_null(parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}} trailing", &e));
    cr_assert(has_error(&e, "", "text after"));
    cr_assert_null(parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}{}", &e));
    cr_assert(has_error(&e, "", "text after"));
    /* whitespace after the object is fine */
    iw_config *c =
        iw_config_parse("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}\n\n", NULL, &e);
    cr_assert_not_null(c);
    iw_config_free(c);
}

Test(config, nul_byte_in_a_file_is_refused)
{
    char path[] = "/tmp/iw-config-nul-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char text[] = "{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}\0garbage";
    cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    iw_config_errors e;
    iw_config *c = iw_config_load(path, &e);
    unlink(path);
    cr_assert_null(c);
    cr_assert(has_error(&e, "", "NUL byte"));
}

/* The first adapter type with a key named key (a target may set only its own type's keys). */
static const char *type_with_key(const char *key)
{
    for (size_t i = 0; iw_targets_all[i]; i++)
        for (const iw_conf_field *f = iw_targets_all[i]->conf->fields; f->key; f++)
            if (strcmp(f->key, key) == 0)
                return iw_targets_all[i]->type;
    return NULL;
}

Test(config, control_characters_in_header_and_url_values_are_refused_by_path)
{
    static const char *const keys[] = {"mis_key",   "prc_token", "midnight_token", "soap_action",
                                       "api_key",   "password",  "security_id",    "username",
                                       "namespace", "user_id"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char json[512], path[128];
        const char *type = type_with_key(keys[i]);
        cr_assert_not_null(type, "no adapter has %s", keys[i]);
        snprintf(json, sizeof(json),
                 "{\"targets\": {\"t\": {\"type\": \"%s\", \"%s\": \"v\\r\\nX-Evil: 1\"}}}",
                 type, keys[i]);
        iw_config_errors e;
        cr_assert_null(parse_errs(json, &e), "%s", keys[i]);
        snprintf(path, sizeof(path), "targets.t.%s", keys[i]);
        cr_assert(has_error(&e, path, "line break"), "%s", keys[i]);
        for (size_t k = 0; k < e.count && k < 64; k++)
            cr_assert_null(strstr(e.items[k].message, "X-Evil"), "value echoed");
    }
    iw_config_errors e;
    cr_assert_null(parse_errs("{\"targets\": {\"t\": {\"type\": \"centra_soap\", \"soap_action\": "
                              "\"a\\tb\"}}}",
                              &e));
    cr_assert(has_error(&e, "targets.t.soap_action", "control character"));
    cr_assert_null(parse_errs("{\"targets\": {\"t\": {\"type\": \"centra_soap\", \"url\": "
                              "\"http://a.example/\\r\\nHost: b\"}}}",
                              &e));
    cr_assert(has_error(&e, "targets.t.url", "line break"));
}

Test(config, instance_names_and_worker_id_are_printable)
{
    iw_config_errors e;
    cr_assert_null(parse_errs("{\"targets\": {\"a b\\r\\n\": {\"type\": \"centra_soap\"}}}", &e));
    cr_assert(has_error(&e, "targets.a b  ", "instance name"));
    cr_assert_null(parse_errs("{\"targets\": {\"(unknown)\": {\"type\": \"centra_soap\"}}}", &e));
    cr_assert(has_error(&e, "targets.(unknown)", "instance name"));
    cr_assert_null(parse_errs("{\"worker\": {\"id\": \"w\\u202e1\"}, \"targets\": {\"c\": "
                              "{\"type\": \"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "worker.id", "bidirectional"));
    /* review 100: an empty id named no worker in results; one past 128 bytes cut the fence
     * owner's pid and random part off, so two workers of that id held one fence */
    cr_assert_null(parse_errs("{\"worker\": {\"id\": \"\"}, \"targets\": {\"c\": "
                              "{\"type\": \"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "worker.id", "must not be empty"));
    char json[512], id[IW_WORKER_ID_MAX + 2];
    memset(id, 'w', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    snprintf(json, sizeof(json),
             "{\"worker\": {\"id\": \"%s\"}, \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
             id);
    cr_assert_null(parse_errs(json, &e));
    cr_assert(has_error(&e, "worker.id", "is longer than 128 bytes"));
    id[sizeof(id) - 2] = '\0'; /* 128 bytes */
    snprintf(json, sizeof(json),
             "{\"worker\": {\"id\": \"%s\"}, \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
             id);
    cr_assert_not_null(parse_errs(json, &e), "128 bytes are fine");
}

/* A config whose kafka.topics is the given JSON object. */
static const char *with_topics(const char *topics)
{
    static char json[640];
    snprintf(json, sizeof(json),
             "{\"kafka\": {\"topics\": %s}, \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
             topics);
    return json;
}

/* The config with these topics is refused with an error at path whose message holds part. */
static void expect_topic_error(const char *topics, const char *path, const char *part)
{
    iw_config_errors e;
    cr_assert_null(parse_errs(with_topics(topics), &e), "%s", topics);
    cr_assert(has_error(&e, path, part), "%s: %s", topics, part);
}

/* A topic name Kafka would refuse fails in check-config, not at the first result; and a worker
 * reading its own results or dead letters would write each back as a poison event, without
 * end: the three topics must differ. */
Test(config, topics_are_valid_kafka_names_and_differ)
{
    static const char *const bad[] = {"invoice results", "", ".", "..", "a/b", "r\\u00e9sultats"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char topics[128];
        snprintf(topics, sizeof(topics), "{\"results\": \"%s\"}", bad[i]);
        expect_topic_error(topics, "kafka.topics.results", "not a Kafka topic name");
    }
    char topics[300];
    snprintf(topics, sizeof(topics), "{\"input\": \"%0250d\"}", 0); /* one over Kafka's 249 */
    expect_topic_error(topics, "kafka.topics.input", "not a Kafka topic name");
    iw_config_errors e;
    snprintf(topics, sizeof(topics), "{\"input\": \"%0249d\"}", 0);
    cr_assert_not_null(parse_errs(with_topics(topics), &e)); /* (freed by parse_errs) */
    cr_assert_not_null(parse_errs(
        with_topics("{\"input\": \"a.b_C-9\", \"results\": \"r\", \"dead_letter\": \"d\"}"), &e));

    expect_topic_error("{\"input\": \"t\", \"results\": \"t\"}", "kafka.topics.results",
                       "must differ from kafka.topics.input");
    /* against the defaults: invoice-results, invoice-events-dlq */
    expect_topic_error("{\"input\": \"invoice-events-dlq\"}", "kafka.topics.dead_letter",
                       "must differ from kafka.topics.input");
    expect_topic_error("{\"dead_letter\": \"invoice-results\"}", "kafka.topics.dead_letter",
                       "must differ from kafka.topics.results");
    /* Kafka takes '.' and '_' as one in a topic name */
    expect_topic_error("{\"results\": \"invoice.events\", \"input\": \"invoice_events\"}",
                       "kafka.topics.results", "Kafka takes '.' and '_' as one");
    cr_assert_not_null(parse_errs(
        with_topics("{\"results\": \"invoice-events.r\", \"input\": \"invoice-events\"}"), &e));
}

/* A config whose http.listen is the given text. */
static const char *with_listen(const char *listen)
{
    static char json[256];
    snprintf(json, sizeof(json),
             "{\"http\": {\"listen\": \"%s\"}, \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
             listen);
    return json;
}

/* What run needs of the group, the Redis host and the listen address fails in check-config:
 * an empty group id crashed run, the others were refused only at start. */
Test(config, what_run_needs_is_checked_here)
{
    iw_config_errors e;
    cr_assert_null(parse_errs("{\"kafka\": {\"group_id\": \"\"}, \"targets\": {\"c\": {\"type\": "
                              "\"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "kafka.group_id", "must not be empty"));
    cr_assert_null(parse_errs("{\"redis\": {\"host\": \"\"}, \"targets\": {\"c\": {\"type\": "
                              "\"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "redis.host", "must not be empty"));
    /* review 103: a REDIS_URL in redis.host, a userinfo in the brokers: refused, not quoted */
    cr_assert_null(
        parse_errs("{\"redis\": {\"host\": \"redis://:RedisPassw0rdZZ@10.0.0.1\"},"
                   " \"kafka\": {\"brokers\": \"SASL_SSL://ku:KafkaPassw0rdYY@b1:9093\"},"
                   " \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                   &e));
    cr_assert(has_error(&e, "redis.host", "not a URL"));
    cr_assert(has_error(&e, "kafka.brokers", "holds '@'"));
    for (size_t i = 0; i < e.count && i < 64; i++)
        cr_assert(!strstr(e.items[i].message, "Passw0rd"), "%s", e.items[i].message);
    cr_assert_null(parse_errs("{\"redis\": {\"host\": \"red\\u001bis\"},"
                              " \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                              &e));
    cr_assert(has_error(&e, "redis.host", "not a URL"), "a control character is no host");
    cr_assert_not_null(parse_errs("{\"redis\": {\"host\": \"fe80::1%eth0\"},"
                                  " \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                                  &e),
                       "an IPv6 address with its zone");
    cr_assert_not_null(parse_errs("{\"redis\": {\"host\": \"redis-0.redis.svc\"},"
                                  " \"kafka\": {\"brokers\": \"SSL://b1:9093,b2:9093\"},"
                                  " \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
                                  &e),
                       "a host name, and brokers with their protocol, are fine");
    static const char *const bad[] = {
        "localhost:8080", "0.0.0.0", "0.0.0.0:", "0.0.0.0:99999", "[::1:8080", "1.2.3:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_null(parse_errs(with_listen(bad[i]), &e), "%s", bad[i]);
        cr_assert(has_error(&e, "http.listen", "expected IPv4-address:port"), "%s", bad[i]);
    }
    static const char *const good[] = {"", "0.0.0.0:8080", ":9090", "127.0.0.1:0", "[::1]:8080"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert_not_null(parse_errs(with_listen(good[i]), &e), "%s", good[i]);
    /* the IW_* overrides are checked too */
    setenv("IW_KAFKA_GROUP_ID", "", 1);
    cr_assert_null(parse_errs("{\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}", &e));
    unsetenv("IW_KAFKA_GROUP_ID");
    cr_assert(has_error(&e, "IW_KAFKA_GROUP_ID", "must not be empty"), "named by the variable");
}

/* Each adapter's config part: named as its ops, no more secrets than the masking lists hold,
 * and placeholders (what `render --target TYPE` shows) that its own fields load cleanly; an
 * adapter without placeholders has no seed URL either (generic). */
Test(config, every_adapter_describes_its_keys)
{
    for (size_t i = 0; iw_targets_all[i]; i++) {
        const iw_target_ops *ops = iw_targets_all[i];
        cr_assert_not_null(ops->conf, "%s", ops->type);
        cr_assert_str_eq(ops->conf->type, ops->type);
        size_t secrets = 0;
        for (const iw_conf_field *f = ops->conf->fields; f->key; f++)
            secrets += f->kind == IW_CONF_SECRET;
        cr_assert_leq(secrets, IW_TARGET_MAX_SECRETS, "%s", ops->type);
        if (!ops->conf->placeholders) { /* generic: its mapping file says it all, no seed */
            cr_assert_null(ops->conf->url, "%s", ops->type);
            continue;
        }
        cJSON *obj = cJSON_Parse(ops->conf->placeholders);
        cr_assert(cJSON_IsObject(obj), "%s", ops->type);
        cJSON_AddStringToObject(obj, "type", ops->type);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(cJSON_AddObjectToObject(root, "targets"), "t", obj);
        char *json = cJSON_PrintUnformatted(root);
        iw_config_errors e;
        iw_config *c = iw_config_parse(json, NULL, &e);
        dump(&e);
        cr_assert_not_null(c, "%s", ops->type);
        iw_config_free(c);
        free(json);
        cJSON_Delete(root);
    }
}

/* A key of another adapter type is not silently ignored: it is refused by its path, with the
 * type it belongs to; a typo and a generic key keep their own handling. */
Test(config, a_key_of_another_adapter_type_is_refused_by_path)
{
    const char *json = "{\"targets\": {"
                       "\"md\": {\"type\": \"midnight\", \"prc_token\": \"p\", \"mis_key\": \"m\","
                       " \"midnight_token\": \"t\", \"soap_action\": \"urn:x\","
                       " \"api_key_file\": \"/nonexistent\", \"max_concurrency\": 4},"
                       "\"ix\": {\"type\": \"invoicexpress\", \"api_key\": \"k\", \"namespce\": 1},"
                       "\"odd\": {\"type\": \"no_such_type\", \"soap_action\": \"urn:x\"}}}";
    iw_config_errors e;
    iw_config *c = iw_config_parse(json, NULL, &e);
    dump(&e);
    cr_assert_null(c);
    cr_assert(has_error(&e, "targets.md.soap_action", "unknown key for a midnight target"));
    cr_assert(has_error(&e, "targets.md.soap_action", "centra_soap"));
    cr_assert(has_error(&e, "targets.md.api_key_file", "a key of invoicexpress"));
    cr_assert(has_error(&e, "targets.ix.namespce", "unknown key"));
    cr_assert(has_error(&e, "targets.odd.type", "unknown adapter type"));
    cr_assert(!has_error(&e, "targets.odd.soap_action", ""), "only the type is reported");
    cr_assert(!has_error(&e, "targets.md.max_concurrency", ""));
    cr_assert(!has_error(&e, "targets.md.prc_token", ""));
}

/* Whether text holds word as a whole identifier. */
static bool holds_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p++) {
        bool before = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool after = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (before && after)
            return true;
    }
    return false;
}

/* common/ knows only the generic target keys: no source file there names a key of an adapter's
 * own (those with an underscore: mis_key, soap_action, tax_names...; one-word keys such as
 * "password" or "format" are words common/ uses for its own things). */
Test(config, common_names_no_adapter_key)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/../../common", IW_FIXTURES_DIR);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    size_t files = 0, keys = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 3 || (strcmp(e->d_name + l - 2, ".c") != 0 && strcmp(e->d_name + l - 2, ".h") != 0))
            continue;
        char path[900];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *text = iw_read_file(path, NULL);
        cr_assert_not_null(text, "%s", path);
        files++;
        for (size_t i = 0; iw_targets_all[i]; i++)
            for (const iw_conf_field *f = iw_targets_all[i]->conf->fields; f->key; f++) {
                if (!strchr(f->key, '_'))
                    continue;
                keys++;
                cr_expect_not(holds_word(text, f->key), "common/%s names %s, a key of %s",
                              e->d_name, f->key, iw_targets_all[i]->type);
            }
        free(text);
    }
    closedir(d);
    cr_assert_gt(files, 10, "only %zu files in %s", files, dir);
    cr_assert_gt(keys, 10, "only %zu adapter keys", keys);
}

/* A target URL is read as libcurl will read it when sending: one it cannot send to fails here,
 * by its path, not as a failed call for every event; a password in it is not repeated. */
Test(config, a_url_libcurl_cannot_send_to_is_refused_by_path)
{
    static const char *const bad[][2] = {
        {"http://[::1", "Bad IPv6"},         {"http://h:99999/", "Port number"},
        {"http:///p", "host after the //"},  {"http://[zz]/", "Bad IPv6"},
        {"http://:80/", "No host"},          {"http://h:0/", "port 0"},
        {"ftp://h/", "http:// or https://"}, {"http://u:pw-SECRET@h:70000/", "Port number"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"targets\": {\"t\": {\"type\": \"centra_soap\", \"url\": \"%s\"}, "
                 "\"m\": {\"type\": \"midnight\", \"token_url\": \"%s\"}}}",
                 bad[i][0], bad[i][0]);
        iw_config_errors e;
        cr_assert_null(parse_errs(json, &e), "%s", bad[i][0]);
        cr_assert(has_error(&e, "targets.t.url", bad[i][1]), "%s", bad[i][0]);
        cr_assert(has_error(&e, "targets.m.token_url", bad[i][1]), "%s", bad[i][0]);
        for (size_t k = 0; k < e.count && k < 64; k++)
            cr_assert_null(strstr(e.items[k].message, "SECRET"), "the URL is not repeated");
    }
    static const char *const good[] = {"http://127.0.0.1:8080/x", "https://[::1]:443/a?b=c",
                                       "https://u:p@acme.app.invoicexpress.com/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"targets\": {\"t\": {\"type\": \"centra_soap\", \"url\": \"%s\"}}}", good[i]);
        iw_config_errors e = {.count = 0};
        parse_errs(json, &e); /* other keys may be missing: only the URL is looked at */
        cr_assert(!has_error(&e, "targets.t.url", ""), "%s", good[i]);
    }
}
