/* kafkaconf.c: applying kafka.properties to librdkafka confs (run and check-config). */
#include "kafkaconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

/* Keys whose values are secrets: librdkafka quotes an invalid value in its message. */
static bool sensitive(const char *k)
{
    return strstr(k, "password") || strstr(k, "secret") || strstr(k, "key") || strstr(k, "token");
}

/* True when the config sets key for role (plainly or as "<role>.key"). */
static bool user_sets(const iw_config *cfg, const char *role, const char *key)
{
    size_t rl = strlen(role);
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const char *k = cfg->kafka_props[2 * i];
        if (strncmp(k, role, rl) == 0 && k[rl] == '.')
            k += rl + 1;
        if (strcmp(k, key) == 0)
            return true;
    }
    return false;
}

/* Sets key to v on c unless the config sets it itself; errbuf names the setting behind it. */
static int set_default(rd_kafka_conf_t *c, const iw_config *cfg, const char *key, int64_t v,
                       char *errbuf, size_t errlen)
{
    char text[32], e[256];
    if (user_sets(cfg, "consumer", key))
        return 0;
    snprintf(text, sizeof(text), "%lld", (long long)v);
    if (rd_kafka_conf_set(c, key, text, e, sizeof(e)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errbuf, errlen, "worker.max_pending_bytes: prefetch %s: %s", key, e);
    return IW_EINVAL;
}

/* A numeric property of c as librdkafka holds it, or dflt. */
static int64_t conf_int(rd_kafka_conf_t *c, const char *key, int64_t dflt)
{
    char v[32];
    size_t vl = sizeof(v);
    return rd_kafka_conf_get(c, key, v, &vl) == RD_KAFKA_CONF_OK ? atoll(v) : dflt;
}

/* A consumer's own requests (a group leader's assignment among them) must fit its
 * message.max.bytes, which librdkafka requires to be at most fetch.max.bytes. */
#define FETCH_FLOOR (256 * 1024)

/* The consumer's prefetch. The pipeline takes messages at the pace its calls finish (up to
 * 2 x worker.max_in_flight open calls, or worker.max_pending_bytes of values), so the backlog
 * waits here, in librdkafka's queue, and consumption is not paused in normal flow.
 * librdkafka 2.0 (Debian's) looks again at a queue it found full only about once a second (its
 * broker threads' longest sleep; 2.1 made it fetch.queue.backoff.ms), so the queue holds about a
 * second of work: an eighth of max_pending_bytes (1 to 64 MiB: 8 MiB at the default) and at
 * most 8 x max_in_flight messages. Its defaults, 64 MiB and 100,000 messages, and a 50 MB fetch
 * decompressed at once, were most of the worker's memory.
 *
 * The queue is checked before a fetch, and each broker's fetch can still bring fetch.max.bytes
 * on top of it, counted compressed: a quarter of the queue per broker, with batches that
 * compress 10 to 20 times (the benchmark's events in LZ4), was 50 MB of decompressed batches
 * at once. So one fetch is a 32nd of the queue (at least FETCH_FLOOR), per partition too, and
 * the consumer's message.max.bytes (its own requests; it does not limit what it receives) is
 * lowered to fit under it. A property the config sets itself is left alone, and the fetch
 * follows the config's queue size when it sets one. */
static int set_prefetch(rd_kafka_conf_t *c, const iw_config *cfg, char *errbuf, size_t errlen)
{
    int64_t kb = cfg->max_pending_bytes / 8 / 1024;
    kb = kb < 1024 ? 1024 : kb > 65536 ? 65536 : kb;
    int64_t msgs = 8 * (int64_t)(cfg->max_in_flight > 0 ? cfg->max_in_flight : 1);
    if (set_default(c, cfg, "queued.max.messages.kbytes", kb, errbuf, errlen) ||
        set_default(c, cfg, "queued.min.messages", msgs < 10000000 ? msgs : 10000000, errbuf,
                    errlen))
        return IW_EINVAL;
    int64_t fetch = conf_int(c, "queued.max.messages.kbytes", kb) * 1024 / 32;
    fetch = fetch < FETCH_FLOOR ? FETCH_FLOOR : fetch;
    if (user_sets(cfg, "consumer", "fetch.max.bytes"))
        fetch = conf_int(c, "fetch.max.bytes", fetch);
    int64_t msg_max = conf_int(c, "message.max.bytes", 1000000);
    if (msg_max > fetch && set_default(c, cfg, "message.max.bytes", fetch, errbuf, errlen))
        return IW_EINVAL;
    msg_max = conf_int(c, "message.max.bytes", msg_max);
    fetch = fetch > msg_max ? fetch : msg_max;
    if (set_default(c, cfg, "fetch.max.bytes", fetch, errbuf, errlen))
        return IW_EINVAL;
    if (conf_int(c, "max.partition.fetch.bytes", 1048576) > fetch)
        return set_default(c, cfg, "max.partition.fetch.bytes", fetch, errbuf, errlen);
    return 0;
}

int iw_kafkaconf_apply(rd_kafka_conf_t *c, const iw_config *cfg, const char *role, char *errbuf,
                       size_t errlen)
{
    size_t rl = strlen(role);
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const char *key = cfg->kafka_props[2 * i], *k = key;
        if (strncmp(k, "consumer.", 9) == 0 || strncmp(k, "producer.", 9) == 0) {
            if (strncmp(k, role, rl) != 0 || k[rl] != '.')
                continue;
            k += rl + 1;
        }
        char e[256];
        if (rd_kafka_conf_set(c, k, cfg->kafka_props[2 * i + 1], e, sizeof(e)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errbuf, errlen, "kafka.properties.%s: %s", key,
                     sensitive(k) ? "librdkafka refused the value (not shown: a secret)" : e);
            return IW_EINVAL;
        }
    }
    return strcmp(role, "consumer") == 0 ? set_prefetch(c, cfg, errbuf, errlen) : 0;
}

/* The worker's own settings of one client (as in pipeline.c), then the config's properties. */
static rd_kafka_conf_t *build(const iw_config *cfg, const char *role, char *errbuf, size_t errlen)
{
    static const char *const producer[] = {"enable.idempotence", "true", "acks", "all",
                                           "message.timeout.ms", "0",    NULL};
    static const char *const consumer[] = {"enable.auto.offset.store",
                                           "false",
                                           "enable.auto.commit",
                                           "true",
                                           "auto.offset.reset",
                                           "earliest",
                                           NULL};
    const char *const *own = strcmp(role, "producer") == 0 ? producer : consumer;
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[256];
    if (!c) {
        snprintf(errbuf, errlen, "%s: out of memory", role);
        return NULL;
    }
    if (iw_kafkaconf_apply(c, cfg, role, errbuf, errlen))
        goto fail;
    for (size_t i = 0; own[i]; i += 2) {
        if (rd_kafka_conf_set(c, own[i], own[i + 1], e, sizeof(e)) != RD_KAFKA_CONF_OK) {
            snprintf(errbuf, errlen, "%s: %s", role, e);
            goto fail;
        }
    }
    if (strcmp(role, "consumer") == 0 &&
        rd_kafka_conf_set(c, "group.id", cfg->kafka_group_id ? cfg->kafka_group_id : "x", e,
                          sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka.group_id: %s", e);
        goto fail;
    }
    /* no broker: creating the client checks the whole conf without connecting anywhere */
    if (rd_kafka_conf_set(c, "bootstrap.servers", "", e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "%s: %s", role, e);
        goto fail;
    }
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

/* librdkafka's lines during the check are not worth printing: its verdict is the return. */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

int iw_kafkaconf_check(const iw_config *cfg, char *errbuf, size_t errlen)
{
    static const char *const roles[] = {"producer", "consumer"};
    for (size_t i = 0; i < 2; i++) {
        rd_kafka_conf_t *c = build(cfg, roles[i], errbuf, errlen);
        if (!c)
            return IW_EINVAL;
        rd_kafka_conf_set_log_cb(c, quiet_log);
        char e[512];
        rd_kafka_t *rk =
            rd_kafka_new(i == 0 ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, c, e, sizeof(e));
        if (!rk) { /* rd_kafka_new() frees conf only on success */
            rd_kafka_conf_destroy(c);
            snprintf(errbuf, errlen, "kafka.properties (%s): %s", roles[i], e);
            return IW_EINVAL;
        }
        rd_kafka_destroy(rk);
    }
    return 0;
}
