/* test_kafkaconf.c: the consumer's prefetch sized from the worker's own bounds, the result
 * producer's batching, and the config's kafka.properties winning over both. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "kafkaconf.h"
#include "status.h"
#include "target.h"

/* role's conf built from a config with the given members (and one target); *cfg is kept for
 * the caller to free. */
static rd_kafka_conf_t *conf_for(const char *role, const char *members, iw_config **cfg)
{
    char json[512];
    snprintf(json, sizeof(json), "{%s%s\"targets\": {\"c\": {\"type\": \"centra_soap\"}}}", members,
             *members ? ", " : "");
    iw_config_errors e;
    memset(&e, 0, sizeof(e));
    *cfg = iw_config_parse(json, NULL, &e);
    cr_assert_not_null(*cfg, "config refused: %s %s", e.count ? e.items[0].path : "",
                       e.count ? e.items[0].message : "");
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256] = "";
    cr_assert_eq(iw_kafkaconf_apply(c, *cfg, role, err, sizeof(err)), 0, "%s", err);
    return c;
}

static long long get(rd_kafka_conf_t *c, const char *key)
{
    char v[64];
    size_t vl = sizeof(v);
    cr_assert_eq(rd_kafka_conf_get(c, key, v, &vl), RD_KAFKA_CONF_OK, "%s", key);
    return atoll(v);
}

/* The consumer's prefetch from a config with the given members: the queue, and what one fetch
 * may bring (in all, per partition) with the consumer's message.max.bytes under it. */
static void expect_prefetch(const char *members, long long kbytes, long long min_messages,
                            long long fetch, long long part, long long msg_max)
{
    iw_config *cfg;
    rd_kafka_conf_t *c = conf_for("consumer", members, &cfg);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), kbytes, "%s", members);
    cr_expect_eq(get(c, "queued.min.messages"), min_messages, "%s", members);
    cr_expect_eq(get(c, "fetch.max.bytes"), fetch, "%s", members);
    cr_expect_eq(get(c, "max.partition.fetch.bytes"), part, "%s", members);
    cr_expect_eq(get(c, "message.max.bytes"), msg_max, "%s", members);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}

Test(kafkaconf, prefetch_follows_the_pipeline_bounds)
{
    /* 64 MiB pending, 512 in flight: an 8 MiB queue, a fetch a 512th of it */
    expect_prefetch("", 8192, 4096, 16384, 16384, 16384);
    expect_prefetch("\"worker\": {\"max_pending_bytes\": 268435456, \"max_in_flight\": 64}", 32768,
                    512, 65536, 65536, 65536);
    /* a small bound: the queue keeps 1 MiB, a fetch at least 16 KiB */
    expect_prefetch("\"worker\": {\"max_pending_bytes\": 1048576}", 1024, 4096, 16384, 16384,
                    16384);
    /* what the config sets wins; a fetch follows the configured queue */
    expect_prefetch("\"kafka\": {\"properties\": {\"consumer.queued.max.messages.kbytes\": "
                    "16384, \"queued.min.messages\": 50000}}",
                    16384, 50000, 32768, 32768, 32768);
    expect_prefetch("\"kafka\": {\"properties\": {\"fetch.max.bytes\": 2000000}}", 8192, 4096,
                    2000000, 1048576, 1000000);
    expect_prefetch("\"kafka\": {\"properties\": {\"consumer.fetch.max.bytes\": 300000}}", 8192,
                    4096, 300000, 300000, 300000);
    /* a larger message.max.bytes (for the results, say) raises the fetch to it */
    expect_prefetch("\"kafka\": {\"properties\": {\"message.max.bytes\": 5000000}}", 8192, 4096,
                    5000000, 1048576, 5000000);
    expect_prefetch("\"kafka\": {\"properties\": {\"max.partition.fetch.bytes\": 8192}}", 8192,
                    4096, 16384, 8192, 16384);
}

Test(kafkaconf, the_producer_gets_no_prefetch)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256] = "";
    iw_config *cfg = iw_config_defaults();
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_kafkaconf_apply(c, cfg, "producer", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(get(c, "queued.max.messages.kbytes"), 65536);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}

/* The result producer's batching from a config with the given members. */
static void expect_batching(const char *members, long long linger_ms, long long queue_messages)
{
    iw_config *cfg;
    rd_kafka_conf_t *c = conf_for("producer", members, &cfg);
    cr_expect_eq(get(c, "linger.ms"), linger_ms, "%s", members);
    cr_expect_eq(get(c, "queue.buffering.max.messages"), queue_messages, "%s", members);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}

Test(kafkaconf, the_producer_lets_batches_fill_unless_the_config_says)
{
    expect_batching("", IW_RESULT_LINGER_MS, 1000000);
    /* what the config sets wins, plainly or for the producer alone */
    expect_batching("\"kafka\": {\"properties\": {\"producer.linger.ms\": 7}}", 7, 1000000);
    expect_batching("\"kafka\": {\"properties\": {\"linger.ms\": 0, "
                    "\"queue.buffering.max.messages\": 5000}}",
                    0, 5000);
    /* the consumer's setting is not the producer's */
    expect_batching("\"kafka\": {\"properties\": {\"consumer.linger.ms\": 9}}", IW_RESULT_LINGER_MS,
                    1000000);
}

/* A config with these members that the producer's conf refuses, for run (the message has
 * apply_says) and for check-config (check_says). */
static void expect_producer_refuses(const char *members, const char *apply_says,
                                    const char *check_says)
{
    char json[512];
    snprintf(json, sizeof(json), "{%s, \"targets\": {\"c\": {\"type\": \"centra_soap\"}}}",
             members);
    iw_config_errors e;
    memset(&e, 0, sizeof(e));
    iw_config *cfg = iw_config_parse(json, NULL, &e);
    cr_assert_not_null(cfg);
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256] = "";
    cr_expect_eq(iw_kafkaconf_apply(c, cfg, "producer", err, sizeof(err)), IW_EINVAL, "%s",
                 members);
    cr_expect(strstr(err, apply_says), "%s", err);
    rd_kafka_conf_destroy(c);
    err[0] = '\0';
    cr_expect_eq(iw_kafkaconf_check(cfg, err, sizeof(err)), IW_EINVAL, "%s", members);
    cr_expect(strstr(err, check_says), "%s", err);
    iw_config_free(cfg);
}

/* The gapless guarantee makes any message the broker refuses fatal to the producer, and the
 * worker would stop on the same event after each restart: refused, for run and check-config. */
Test(kafkaconf, the_gapless_guarantee_is_refused)
{
    expect_producer_refuses("\"kafka\": {\"properties\": {\"enable.gapless.guarantee\": \"true\"}}",
                            "enable.gapless.guarantee: not supported", "gapless");
    expect_producer_refuses(
        "\"kafka\": {\"properties\": {\"producer.enable.gapless.guarantee\": \"true\"}}",
        "enable.gapless.guarantee: not supported", "gapless");
    /* false is the default, and allowed */
    iw_config *cfg;
    rd_kafka_conf_t *c = conf_for(
        "producer", "\"kafka\": {\"properties\": {\"enable.gapless.guarantee\": \"false\"}}", &cfg);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}

/* The producer's queue bytes: librdkafka's own bound (1 GiB) held 64 dead-letter copies of each
 * of sixteen 950 KB events while the brokers were away (review 61). */
static void expect_producer_queue(const char *members, long long kbytes)
{
    iw_config *cfg;
    rd_kafka_conf_t *c = conf_for("producer", members, &cfg);
    cr_expect_eq(get(c, "queue.buffering.max.kbytes"), kbytes, "%s", members);
    rd_kafka_conf_destroy(c);
    iw_config_free(cfg);
}

Test(kafkaconf, the_producer_queue_follows_max_pending_bytes_and_holds_a_message)
{
    expect_producer_queue("", 65536);
    expect_producer_queue("\"worker\": {\"max_pending_bytes\": 268435456}", 262144);
    /* at least four messages of message.max.bytes, for a small bound or a large message */
    expect_producer_queue("\"worker\": {\"max_pending_bytes\": 1048576}", 3907);
    expect_producer_queue("\"kafka\": {\"properties\": {\"producer.message.max.bytes\": "
                          "100000000}}",
                          390626);
    /* what the config sets wins while it holds one message */
    expect_producer_queue("\"kafka\": {\"properties\": {\"queue.buffering.max.kbytes\": 2048}}",
                          2048);
    /* an empty queue takes a result and its dead letter: two messages of message.max.bytes */
    static const char *const refused = "must hold two messages of message.max.bytes";
    expect_producer_refuses(
        "\"kafka\": {\"properties\": {\"producer.queue.buffering.max.kbytes\": 900}}", refused,
        refused);
    expect_producer_refuses("\"kafka\": {\"properties\": {\"queue.buffering.max.kbytes\": 2048, "
                            "\"message.max.bytes\": 3000000}}",
                            refused, refused);
    expect_producer_refuses("\"kafka\": {\"properties\": {\"producer.queue.buffering.max.kbytes\": "
                            "196, \"producer.message.max.bytes\": 200000}}",
                            refused, refused);
    expect_producer_queue("\"kafka\": {\"properties\": {\"producer.queue.buffering.max.kbytes\": "
                          "391, \"producer.message.max.bytes\": 200000}}",
                          391);
    expect_producer_refuses(
        "\"kafka\": {\"properties\": {\"producer.queue.buffering.max.messages\": 1}}",
        "queue.buffering.max.messages must be 2 or more", "queue.buffering.max.messages");
}
