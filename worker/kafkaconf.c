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

/* The consumer's prefetch, sized from worker.max_pending_bytes so that what librdkafka holds
 * ahead of the pipeline stays a fraction of the pipeline's own bound: a quarter of it (1 MiB to
 * 64 MiB) in its local queue, half of that per fetch (at least message.max.bytes, which
 * librdkafka requires). A property the config sets itself is left alone. */
static int set_prefetch(rd_kafka_conf_t *c, const iw_config *cfg, char *errbuf, size_t errlen)
{
    int64_t kb = cfg->max_pending_bytes / 4 / 1024;
    kb = kb < 1024 ? 1024 : kb > 65536 ? 65536 : kb;
    char v[32], e[256];
    size_t vl = sizeof(v);
    int64_t fetch = kb * 1024 / 2, msg_max = 1000000;
    if (rd_kafka_conf_get(c, "message.max.bytes", v, &vl) == RD_KAFKA_CONF_OK)
        msg_max = atoll(v);
    if (fetch < msg_max)
        fetch = msg_max;
    if (!user_sets(cfg, "consumer", "queued.max.messages.kbytes")) {
        snprintf(v, sizeof(v), "%lld", (long long)kb);
        if (rd_kafka_conf_set(c, "queued.max.messages.kbytes", v, e, sizeof(e)) != RD_KAFKA_CONF_OK)
            goto fail;
    }
    if (!user_sets(cfg, "consumer", "fetch.max.bytes")) {
        snprintf(v, sizeof(v), "%lld", (long long)fetch);
        if (rd_kafka_conf_set(c, "fetch.max.bytes", v, e, sizeof(e)) != RD_KAFKA_CONF_OK)
            goto fail;
    }
    return 0;
fail:
    snprintf(errbuf, errlen, "worker.max_pending_bytes: prefetch: %s", e);
    return IW_EINVAL;
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
