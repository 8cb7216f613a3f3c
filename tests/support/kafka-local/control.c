/* control.c: parses and runs kafka-local control commands against the mock cluster. */
#include "control.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_TOKENS 8    /* no command takes more words than this */
#define MAX_ERRORS 1000 /* cap on errors pushed by one `errors` command */

/* Kafka protocol request names and their ApiKey numbers (the ones worth injecting into). */
static const struct {
    const char *name; /* protocol name, matched case-insensitively */
    int key;          /* ApiKey */
} api_keys[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"DescribeGroups", 15},
    {"ListGroups", 16},      {"ApiVersions", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

/* Parses a whole decimal integer in [lo, hi]. 0 or -1. */
static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int iw_klctl_api_key(const char *s)
{
    long v;
    if (parse_int(s, 0, INT16_MAX, &v) == 0)
        return (int)v;
    for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++)
        if (strcasecmp(s, api_keys[i].name) == 0)
            return api_keys[i].key;
    return -1;
}

int iw_klctl_err_code(const char *s, rd_kafka_resp_err_t *code)
{
    long v;
    if (parse_int(s, INT16_MIN, INT16_MAX, &v) == 0) {
        *code = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
        s += 18;
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name && strcasecmp(s, descs[i].name) == 0) {
            *code = descs[i].code;
            return 0;
        }
    }
    return -1;
}

/* Splits line into at most MAX_TOKENS words inside buf. Returns the count, or -1 if too many. */
static int tokenize(const char *line, char *buf, size_t buflen, char *tok[MAX_TOKENS])
{
    snprintf(buf, buflen, "%s", line);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (n == MAX_TOKENS)
            return -1;
        tok[n++] = t;
    }
    return n;
}

/* Writes "error <msg>" and returns -1. */
static int fail(char *reply, size_t len, const char *msg)
{
    snprintf(reply, len, "error %s", msg);
    return -1;
}

/* Writes "ok ..." or "error <librdkafka message>" for a mock call's result. */
static int result(rd_kafka_resp_err_t err, char *reply, size_t len, const char *what)
{
    if (err)
        return fail(reply, len, rd_kafka_err2str(err));
    snprintf(reply, len, "ok %s", what);
    return 0;
}

/* broker down|up ID */
static int cmd_broker(rd_kafka_mock_cluster_t *mc, char **tok, int n, char *reply, size_t len)
{
    long id;
    if (n != 3 || parse_int(tok[2], -1, INT32_MAX, &id) != 0)
        return fail(reply, len, "usage: broker down|up ID");
    rd_kafka_resp_err_t err;
    if (strcmp(tok[1], "down") == 0)
        err = rd_kafka_mock_broker_set_down(mc, (int32_t)id);
    else if (strcmp(tok[1], "up") == 0)
        err = rd_kafka_mock_broker_set_up(mc, (int32_t)id);
    else
        return fail(reply, len, "usage: broker down|up ID");
    char what[64];
    snprintf(what, sizeof(what), "broker %ld %s", id, tok[1]);
    return result(err, reply, len, what);
}

/* rtt ID MS */
static int cmd_rtt(rd_kafka_mock_cluster_t *mc, char **tok, int n, char *reply, size_t len)
{
    long id, ms;
    if (n != 3 || parse_int(tok[1], -1, INT32_MAX, &id) != 0 ||
        parse_int(tok[2], 0, 3600000L, &ms) != 0)
        return fail(reply, len, "usage: rtt ID MS");
    char what[64];
    snprintf(what, sizeof(what), "rtt %ld %ld", id, ms);
    return result(rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)ms), reply, len, what);
}

/* errors KEY COUNT CODE | errors KEY clear */
static int cmd_errors(rd_kafka_mock_cluster_t *mc, char **tok, int n, char *reply, size_t len)
{
    int key = n >= 2 ? iw_klctl_api_key(tok[1]) : -1;
    if (key < 0)
        return fail(reply, len, "usage: errors KEY COUNT CODE (unknown KEY)");
    if (n == 3 && strcmp(tok[2], "clear") == 0) {
        rd_kafka_mock_clear_request_errors(mc, (int16_t)key);
        snprintf(reply, len, "ok errors %d cleared", key);
        return 0;
    }
    long cnt;
    rd_kafka_resp_err_t code;
    if (n != 4 || parse_int(tok[2], 1, MAX_ERRORS, &cnt) != 0)
        return fail(reply, len, "usage: errors KEY COUNT CODE");
    if (iw_klctl_err_code(tok[3], &code) != 0)
        return fail(reply, len, "unknown error code");
    rd_kafka_resp_err_t errs[MAX_ERRORS];
    for (long i = 0; i < cnt; i++)
        errs[i] = code;
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt, errs);
    snprintf(reply, len, "ok errors %d %ld %s", key, cnt, rd_kafka_err2name(code));
    return 0;
}

/* topic NAME PARTITIONS */
static int cmd_topic(rd_kafka_mock_cluster_t *mc, int replication, char **tok, int n, char *reply,
                     size_t len)
{
    long parts;
    if (n != 3 || parse_int(tok[2], 1, 100000, &parts) != 0)
        return fail(reply, len, "usage: topic NAME PARTITIONS");
    char what[300];
    snprintf(what, sizeof(what), "topic %s %ld", tok[1], parts);
    return result(rd_kafka_mock_topic_create(mc, tok[1], (int)parts, replication), reply, len,
                  what);
}

/* topic-error NAME CODE: the error the brokers give for the topic in metadata (NO_ERROR clears
 * it); UNKNOWN_TOPIC_OR_PART makes a topic look absent to clients (the mock cluster creates any
 * topic a client asks for, whatever its allow.auto.create.topics says). */
static int cmd_topic_error(rd_kafka_mock_cluster_t *mc, char **tok, int n, char *reply, size_t len)
{
    rd_kafka_resp_err_t code;
    if (n != 3)
        return fail(reply, len, "usage: topic-error NAME CODE");
    if (iw_klctl_err_code(tok[2], &code) != 0)
        return fail(reply, len, "unknown error code");
    rd_kafka_mock_topic_set_error(mc, tok[1], code);
    snprintf(reply, len, "ok topic-error %s %s", tok[1], rd_kafka_err2name(code));
    return 0;
}

/* leader TOPIC PARTITION ID */
static int cmd_leader(rd_kafka_mock_cluster_t *mc, char **tok, int n, char *reply, size_t len)
{
    long part, id;
    if (n != 4 || parse_int(tok[2], 0, INT32_MAX, &part) != 0 ||
        parse_int(tok[3], -1, INT32_MAX, &id) != 0)
        return fail(reply, len, "usage: leader TOPIC PARTITION ID");
    char what[300];
    snprintf(what, sizeof(what), "leader %s %ld %ld", tok[1], part, id);
    return result(rd_kafka_mock_partition_set_leader(mc, tok[1], (int32_t)part, (int32_t)id), reply,
                  len, what);
}

int iw_klctl_exec(rd_kafka_mock_cluster_t *mc, int replication, const char *line, char *reply,
                  size_t replylen)
{
    char buf[512];
    char *tok[MAX_TOKENS];
    if (strlen(line) >= sizeof(buf))
        return fail(reply, replylen, "line too long");
    int n = tokenize(line, buf, sizeof(buf), tok);
    if (n < 0)
        return fail(reply, replylen, "too many words");
    if (n == 0)
        return fail(reply, replylen, "empty command");
    if (strcmp(tok[0], "ping") == 0 && n == 1) {
        snprintf(reply, replylen, "ok pong");
        return 0;
    }
    if (strcmp(tok[0], "broker") == 0)
        return cmd_broker(mc, tok, n, reply, replylen);
    if (strcmp(tok[0], "rtt") == 0)
        return cmd_rtt(mc, tok, n, reply, replylen);
    if (strcmp(tok[0], "errors") == 0)
        return cmd_errors(mc, tok, n, reply, replylen);
    if (strcmp(tok[0], "topic") == 0)
        return cmd_topic(mc, replication, tok, n, reply, replylen);
    if (strcmp(tok[0], "topic-error") == 0)
        return cmd_topic_error(mc, tok, n, reply, replylen);
    if (strcmp(tok[0], "leader") == 0)
        return cmd_leader(mc, tok, n, reply, replylen);
    return fail(reply, replylen, "unknown command");
}
