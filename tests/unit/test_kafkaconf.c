/* test_kafkaconf.c: the consumer's prefetch sized from the worker's own bounds, and the
 * config's kafka.properties winning over it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "kafkaconf.h"

/* The consumer conf built from a config with the given members (and one target); *cfg is kept
 * for the caller to free. */
static rd_kafka_conf_t *consumer(const char *members, iw_config **cfg)
{
    char json[512];
    snprintf(json, sizeof(json), "{%s%s\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
             members, *members ? ", " : "");
    iw_config_errors e;
    memset(&e, 0, sizeof(e));
    *cfg = iw_config_parse(json, NULL, &e);
    cr_assert_not_null(*cfg, "config refused: %s %s", e.count ? e.items[0].path : "",
                       e.count ? e.items[0].message : "");
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256] = "";
    cr_assert_eq(iw_kafkaconf_apply(c, *cfg, "consumer", err, sizeof(err)), 0, "%s", err);
    return c;
}

static long long get(rd_kafka_conf_t *c, const char *key)
{
    char v[64];
    size_t vl = sizeof(v);
    cr_assert_eq(rd_kafka_conf_get(c, key, v, &vl), RD_KAFKA_CONF_OK, "%s", key);
    return atoll(v);
}

Test(kafkaconf, prefetch_follows_the_pipeline_bounds)
{
    iw_config *cfg;
    rd_kafka_conf_t *c = consumer("", &cfg); /* 64 MiB pending, 512 in flight */
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 4096);
    cr_expect_eq(get(c, "queued.min.messages"), 2048);
    cr_expect_eq(get(c, "fetch.max.bytes"), 1048576);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);

    c = consumer("\"worker\": {\"max_pending_bytes\": 268435456, \"max_in_flight\": 64}", &cfg);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 16384);
    cr_expect_eq(get(c, "queued.min.messages"), 256);
    cr_expect_eq(get(c, "fetch.max.bytes"), 4194304);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);

    /* a small bound: the queue keeps 1 MiB, a fetch at least message.max.bytes */
    c = consumer("\"worker\": {\"max_pending_bytes\": 1048576}", &cfg);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 1024);
    cr_expect_eq(get(c, "fetch.max.bytes"), 1000000);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}

Test(kafkaconf, properties_the_config_sets_win)
{
    iw_config *cfg;
    rd_kafka_conf_t *c =
        consumer("\"kafka\": {\"properties\": {\"consumer.queued.max.messages.kbytes\": 16384, "
                 "\"queued.min.messages\": 50000}}",
                 &cfg);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 16384);
    cr_expect_eq(get(c, "queued.min.messages"), 50000);
    cr_expect_eq(get(c, "fetch.max.bytes"), 4194304, "a fetch follows the configured queue");
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);

    c = consumer("\"kafka\": {\"properties\": {\"fetch.max.bytes\": 2000000}}", &cfg);
    cr_expect_eq(get(c, "fetch.max.bytes"), 2000000);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 4096);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);

    /* the producer gets none of it */
    c = rd_kafka_conf_new();
    char err[256] = "";
    cfg = iw_config_defaults();
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_kafkaconf_apply(c, cfg, "producer", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 65536);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}
