/* kafkaconf.h: the config's kafka.properties applied to real librdkafka confs, the same way for
 * `run` and `check-config`, so that check-config refuses whatever run would refuse. */
#ifndef IW_KAFKACONF_H
#define IW_KAFKACONF_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/* How long the result producer lets a batch fill (its linger.ms), unless the config sets it. */
#define IW_RESULT_LINGER_MS 20

/* Sets every kafka.properties entry of cfg that applies to role ("consumer" or "producer") on
 * c: plain keys apply to both clients, "consumer.X" / "producer.X" set X on one. The consumer
 * also gets a prefetch sized from worker.max_pending_bytes and worker.max_in_flight
 * (queued.max.messages.kbytes, queued.min.messages, fetch.max.bytes), the producer its batching
 * (linger.ms IW_RESULT_LINGER_MS, queue.buffering.max.messages 1,000,000, and
 * queue.buffering.max.kbytes from worker.max_pending_bytes), unless the properties set those
 * keys; a producer queue too small for a result and its dead letter (two messages of
 * message.max.bytes, or fewer than two messages) is refused. Returns 0, or
 * IW_EINVAL with errbuf "kafka.properties.KEY: librdkafka's reason" (never the value). */
int iw_kafkaconf_apply(rd_kafka_conf_t *c, const iw_config *cfg, const char *role, char *errbuf,
                       size_t errlen);

/* A numeric property of c as librdkafka holds it (after defaults and iw_kafkaconf_apply), or
 * dflt when it has none. */
int64_t iw_kafkaconf_int(const rd_kafka_conf_t *c, const char *key, int64_t dflt);

/* check-config: builds the producer's and the consumer's conf as `run` does (the worker's own
 * settings and every property), then creates each client without brokers and destroys it, so
 * that unknown properties, invalid values and invalid combinations are all reported. Returns 0
 * or IW_EINVAL with errbuf naming the client and the property. Opens no connection. */
int iw_kafkaconf_check(const iw_config *cfg, char *errbuf, size_t errlen);

#endif
