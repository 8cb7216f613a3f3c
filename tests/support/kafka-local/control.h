/* control.h: the kafka-local control protocol, one command line in, one reply line out. */
#ifndef IW_KAFKA_LOCAL_CONTROL_H
#define IW_KAFKA_LOCAL_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Runs one command line (without its newline) against the mock cluster and writes the reply,
 * "ok ..." or "error ...", into reply (no newline). replication is used by `topic`.
 * Commands: ping; broker down|up ID; rtt ID MS; errors KEY COUNT CODE; errors KEY clear;
 * topic NAME PARTITIONS; topic-error NAME CODE; leader TOPIC PARTITION ID. ID may be -1 for all
 * brokers.
 * Returns 0 when the command succeeded, -1 otherwise (the reply says why). */
int iw_klctl_exec(rd_kafka_mock_cluster_t *mc, int replication, const char *line, char *reply,
                  size_t replylen);

/* Kafka protocol ApiKey for a name ("Produce", "OffsetCommit", any case) or a number, or -1. */
int iw_klctl_api_key(const char *s);

/* Error code for a name ("NOT_LEADER_FOR_PARTITION", with or without the RD_KAFKA_RESP_ERR_
 * prefix, any case) or a number. Returns 0 and sets *code, or -1 when unknown. */
int iw_klctl_err_code(const char *s, rd_kafka_resp_err_t *code);

#endif
