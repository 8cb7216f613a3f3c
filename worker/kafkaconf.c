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

/* Sets key to v on role's conf c unless the config sets it itself; errbuf names the setting
 * behind it (why). */
static int set_default_for(rd_kafka_conf_t *c, const iw_config *cfg, const char *role,
                           const char *key, int64_t v, const char *why, char *errbuf, size_t errlen)
{
    char text[32], e[256];
    if (user_sets(cfg, role, key))
        return 0;
    snprintf(text, sizeof(text), "%lld", (long long)v);
    if (rd_kafka_conf_set(c, key, text, e, sizeof(e)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errbuf, errlen, "%s %s: %s", why, key, e);
    return IW_EINVAL;
}

/* The consumer's defaults follow worker.max_pending_bytes. */
static int set_default(rd_kafka_conf_t *c, const iw_config *cfg, const char *key, int64_t v,
                       char *errbuf, size_t errlen)
{
    return set_default_for(c, cfg, "consumer", key, v, "worker.max_pending_bytes: prefetch", errbuf,
                           errlen);
}

int64_t iw_kafkaconf_int(const rd_kafka_conf_t *c, const char *key, int64_t dflt)
{
    char v[32];
    size_t vl = sizeof(v);
    return rd_kafka_conf_get(c, key, v, &vl) == RD_KAFKA_CONF_OK ? atoll(v) : dflt;
}

/* The smallest fetch the worker sets. A broker returns the first record batch of a fetch even
 * when it is larger than the fetch (KIP-74), so a bigger event is still consumed. */
#define FETCH_FLOOR (16 * 1024)
/* A fetch is this fraction of the queue (below). */
#define FETCH_SHARE 512

/* The consumer's prefetch. The pipeline takes messages at the pace its calls finish (up to
 * 2 x worker.max_in_flight open calls, or worker.max_pending_bytes of values), so the backlog
 * waits here, in librdkafka's queue, and consumption is not paused in normal flow.
 * librdkafka 2.0 (Debian's) looks again at a queue it found full only when its broker thread
 * next wakes, up to a second later (2.2 made it fetch.queue.backoff.ms); the pipeline wakes it
 * with a seek once it has drained the queue (pipeline.c, wake_fetchers). The queue is an eighth
 * of max_pending_bytes (1 to 64 MiB: 8 MiB at the default) and at
 * most 8 x max_in_flight messages. Its defaults, 64 MiB and 100,000 messages, and a 50 MB fetch
 * decompressed at once, were most of the worker's memory.
 *
 * The queue is checked before a fetch, and each broker's fetch then brings up to
 * fetch.max.bytes on top of it, counted compressed, in whole batches: a broker adds one more
 * partition's batches while the reply is under fetch.max.bytes. Batches of many events compress
 * 15 to 20 times (the benchmark's events in LZ4, batched by a sender under load: 255 events,
 * 1 MB decompressed, about 55 KB compressed), so a 256 KiB fetch (a 32nd of the queue, as it
 * was) brought up to 4 MB per broker and the queue reached 17.6 MiB of its 8 MiB (librdkafka's
 * debug=fetch lines, README "Performance"). So one fetch is a 512th of the queue (16 KiB at the
 * default, at least FETCH_FLOOR), per partition too: then a broker's fetch brings one such
 * batch, or 16 KiB of smaller ones. The consumer's message.max.bytes is lowered to fit under
 * it, as librdkafka requires; 2.0.2 (Debian's) reads it only where it produces and as the first
 * guess of an LZ4 output buffer, so it bounds none of the consumer's own requests. A property
 * the config sets itself is left alone, and the fetch follows the config's queue size when it
 * sets one. */
static int set_prefetch(rd_kafka_conf_t *c, const iw_config *cfg, char *errbuf, size_t errlen)
{
    int64_t kb = cfg->max_pending_bytes / 8 / 1024;
    kb = kb < 1024 ? 1024 : kb > 65536 ? 65536 : kb;
    int64_t msgs = 8 * (int64_t)(cfg->max_in_flight > 0 ? cfg->max_in_flight : 1);
    if (set_default(c, cfg, "queued.max.messages.kbytes", kb, errbuf, errlen) ||
        set_default(c, cfg, "queued.min.messages", msgs < 10000000 ? msgs : 10000000, errbuf,
                    errlen))
        return IW_EINVAL;
    int64_t fetch = iw_kafkaconf_int(c, "queued.max.messages.kbytes", kb) * 1024 / FETCH_SHARE;
    fetch = fetch < FETCH_FLOOR ? FETCH_FLOOR : fetch;
    if (user_sets(cfg, "consumer", "fetch.max.bytes"))
        fetch = iw_kafkaconf_int(c, "fetch.max.bytes", fetch);
    int64_t msg_max = iw_kafkaconf_int(c, "message.max.bytes", 1000000);
    if (msg_max > fetch && set_default(c, cfg, "message.max.bytes", fetch, errbuf, errlen))
        return IW_EINVAL;
    msg_max = iw_kafkaconf_int(c, "message.max.bytes", msg_max);
    fetch = fetch > msg_max ? fetch : msg_max;
    if (set_default(c, cfg, "fetch.max.bytes", fetch, errbuf, errlen))
        return IW_EINVAL;
    if (iw_kafkaconf_int(c, "max.partition.fetch.bytes", 1048576) > fetch)
        return set_default(c, cfg, "max.partition.fetch.bytes", fetch, errbuf, errlen);
    return 0;
}

/* The bytes the result producer may hold. Results are small and their jobs stay open until they
 * are delivered, so the pipeline's room bounds them; a dead letter copies its event's value,
 * once for each target it failed at, up to 64 unknown targets of one event: 64 copies of a 950 KB
 * event are 60 MB, and librdkafka's own bound (1 GiB in 2.0) held sixteen such events with the
 * brokers away. So the queue holds max_pending_bytes (64 MiB at the default), and at least
 * PRODUCER_QUEUE_MESSAGES messages of the producer's message.max.bytes. librdkafka counts values
 * only; the pipeline counts keys too, and results wait for room there (pipeline.c, publish). An
 * empty queue takes a result and its dead letter whatever their size, so a queue the config sets
 * must hold two messages of message.max.bytes, and two messages: a smaller one would refuse the
 * letter, and the pipeline would wait inside its produce call. */
#define PRODUCER_QUEUE_MESSAGES 4
static int set_producer_bytes(rd_kafka_conf_t *c, const iw_config *cfg, char *errbuf, size_t errlen)
{
    int64_t msg_max = iw_kafkaconf_int(c, "message.max.bytes", 1000000);
    int64_t kb = cfg->max_pending_bytes / 1024,
            least = PRODUCER_QUEUE_MESSAGES * msg_max / 1024 + 1;
    if (set_default_for(c, cfg, "producer", "queue.buffering.max.kbytes", kb > least ? kb : least,
                        "worker.max_pending_bytes: producer", errbuf, errlen))
        return IW_EINVAL;
    if (iw_kafkaconf_int(c, "queue.buffering.max.kbytes", least) * 1024 < 2 * msg_max) {
        snprintf(errbuf, errlen,
                 "kafka.properties: the producer's queue.buffering.max.kbytes must hold two "
                 "messages of message.max.bytes (2 x %lld bytes: a result and its dead letter)",
                 (long long)msg_max);
        return IW_EINVAL;
    }
    if (iw_kafkaconf_int(c, "queue.buffering.max.messages", 2) < 2) {
        snprintf(errbuf, errlen,
                 "kafka.properties: the producer's queue.buffering.max.messages must be 2 or more "
                 "(a result and its dead letter)");
        return IW_EINVAL;
    }
    return 0;
}

/* The result producer's batching. With librdkafka 2.0 (Debian's) and linger.ms at 5, its broker
 * threads poll with no wait while results trickle in (a slow target: calls finishing a few at a
 * time): `perf stat -e syscalls:sys_enter_poll --per-thread` counted 100,000 to 340,000 polls per
 * broker thread for 20,000 results at 100 ms, and the three threads took about 40 us of CPU per
 * result, against 9,000 to 14,000 polls and 2 to 4 us at 20 ms. A result then waits at most
 * IW_RESULT_LINGER_MS more before it is sent, and its job stays open (holding its event, counted
 * against the pipeline's room) until it is delivered: at 3,000 results a second, about 60 more
 * open jobs. The producer's queue holds every result the window can hold. A property the config
 * sets itself is left alone. */
static int set_batching(rd_kafka_conf_t *c, const iw_config *cfg, char *errbuf, size_t errlen)
{
    /* With the gapless guarantee, a message the broker refuses (too large for its topic) is a
     * fatal error to the idempotent producer: the worker would stop on the same event after
     * every restart, where without it the message is sent again shorter (pipeline.c). */
    char v[16];
    size_t vl = sizeof(v);
    if (rd_kafka_conf_get(c, "enable.gapless.guarantee", v, &vl) == RD_KAFKA_CONF_OK &&
        strcmp(v, "true") == 0) {
        snprintf(errbuf, errlen,
                 "kafka.properties.enable.gapless.guarantee: not supported: a result or dead "
                 "letter the broker refuses would stop the worker on every restart");
        return IW_EINVAL;
    }
    if (set_default_for(c, cfg, "producer", "linger.ms", IW_RESULT_LINGER_MS, "producer", errbuf,
                        errlen))
        return IW_EINVAL;
    if (set_default_for(c, cfg, "producer", "queue.buffering.max.messages", 1000000, "producer",
                        errbuf, errlen))
        return IW_EINVAL;
    return set_producer_bytes(c, cfg, errbuf, errlen);
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
    return strcmp(role, "consumer") == 0 ? set_prefetch(c, cfg, errbuf, errlen)
                                         : set_batching(c, cfg, errbuf, errlen);
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
