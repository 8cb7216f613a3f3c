/* send.c: `invoice-worker send`: produce events from JSON files (one event per file, or one per
 * line with --lines) to the input topic, keyed <tenant>/<invoice.id> as upstream does. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "invoice.h"
#include "text.h"

static const char SEND_USAGE[] =
    "usage: invoice-worker send (-c FILE | -b BROKERS) [-t TOPIC] [--lines] [--no-check] FILE...\n"
    "\n"
    "Produces each FILE (one JSON event; with --lines, one event per line) to the input topic\n"
    "(default: the config's kafka.topics.input, else invoice-events), keyed "
    "<tenant>/<invoice.id>.\n"
    "Events are parsed first and an invalid one is refused unless --no-check (to test the\n"
    "dead-letter path; such an event is keyed by its tenant and invoice.id when it has them,\n"
    "else sent without a key). '-' reads standard input. Prints how many were sent.\n";

typedef struct sender {
    rd_kafka_t *rk;
    const char *topic;
    int check;
    long sent, failed;
} sender;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sender *s = opaque;
    if (m->err) {
        s->failed++;
        fprintf(stderr, "send: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

/* The key of an event the parser refused (--no-check): <tenant>/<invoice.id> where the JSON
 * holds both as strings, so that it lands on its invoice's partition as upstream would send
 * it (review 106: it went with an empty key); false (no key) otherwise. */
static bool loose_key(const char *json, size_t len, char *key, size_t keylen)
{
    /* a \u0000 would cut a name short, to another tenant's or invoice's (review 107) */
    if (memmem(json, len, "\\u0000", 6))
        return false;
    cJSON *j = cJSON_ParseWithLength(json, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tenant");
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "invoice"), "id");
    bool ok = cJSON_IsString(t) && cJSON_IsString(id) &&
              (size_t)snprintf(key, keylen, "%s/%s", t->valuestring, id->valuestring) < keylen;
    cJSON_Delete(j);
    return ok;
}

static int send_one(sender *s, const char *json, size_t len, const char *where)
{
    char key[IW_EVENT_MAX_KEY_BYTES + 1 + IW_EVENT_MAX_NAME_BYTES + 1] = ""; /* tenant/invoice */
    bool keyed = true;
    iw_event *ev = NULL;
    char err[512];
    if (iw_event_parse(json, len, &ev, err, sizeof(err)) == 0) {
        snprintf(key, sizeof(key), "%s/%s", ev->tenant, ev->invoice.id);
        iw_event_free(ev);
    } else if (s->check) {
        iw_text_clean_copy(err, sizeof(err), err, strlen(err)); /* it quotes event text */
        fprintf(stderr, "send: %s: invalid event: %s (use --no-check to send it anyway)\n", where,
                err);
        return -1;
    } else {
        keyed = loose_key(json, len, key, sizeof(key));
    }
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(s->topic),
                              RD_KAFKA_V_KEY(keyed ? key : NULL, keyed ? strlen(key) : 0),
                              RD_KAFKA_V_VALUE((void *)json, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!e)
            break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "send: %s: %s\n", where, rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(s->rk, 100);
    }
    s->sent++;
    rd_kafka_poll(s->rk, 0);
    return 0;
}

static int send_file(sender *s, const char *path, int lines)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "send: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (lines) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long no = 0;
        while ((n = getline(&line, &cap, f)) > 0) {
            no++;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            if (n == 0)
                continue;
            char where[600];
            snprintf(where, sizeof(where), "%s:%ld", path, no);
            if (send_one(s, line, (size_t)n, where) != 0)
                rc = -1;
        }
        free(line);
    } else {
        size_t cap = 1 << 16, n = 0;
        char *buf = malloc(cap);
        size_t got;
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) {
                char *b = realloc(buf, cap * 2);
                if (!b) {
                    free(buf);
                    buf = NULL;
                    break;
                }
                buf = b;
                cap *= 2;
            }
        }
        rc = buf ? send_one(s, buf, n, path) : -1;
        free(buf);
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

int iw_cli_send(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},  {"lines", no_argument, NULL, 'l'},
        {"no-check", no_argument, NULL, 'n'},     {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    const char *cpath = NULL, *brokers = NULL, *topic = NULL;
    int lines = 0, check = 1, c;
    while ((c = getopt_long(argc, argv, "c:b:t:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cpath = optarg; break;
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'l': lines = 1; break;
        case 'n': check = 0; break;
        case 'h': fputs(SEND_USAGE, stdout); return 0;
        case 'V': return iw_cli_print_version();
        default: fputs(SEND_USAGE, stderr); return 2;
        }
    }
    if ((!cpath && !brokers) || optind >= argc) {
        fputs(SEND_USAGE, stderr);
        return 2;
    }
    iw_config *cfg = NULL;
    if (cpath && !(cfg = iw_cli_load_config(cpath)))
        return 2;
    if (!brokers)
        brokers = cfg->kafka_brokers;
    if (!topic)
        topic = cfg ? cfg->input_topic : "invoice-events";
    if (!brokers) {
        fprintf(stderr, "send: no brokers: set kafka.brokers or use -b\n");
        iw_config_free(cfg);
        return 2;
    }
    sender s = {NULL, topic, check, 0, 0};
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    for (size_t i = 0; cfg && i < cfg->n_kafka_props; i++) {
        const char *k = cfg->kafka_props[2 * i];
        if (strncmp(k, "consumer.", 9) == 0)
            continue; /* for the worker's consumer only */
        if (strncmp(k, "producer.", 9) == 0)
            k += 9;
        if (rd_kafka_conf_set(conf, k, cfg->kafka_props[2 * i + 1], err, sizeof(err)) !=
            RD_KAFKA_CONF_OK)
            fprintf(stderr, "send: kafka property %s: %s\n", k, err);
    }
    rd_kafka_conf_set_opaque(conf, &s);
    rd_kafka_conf_set_dr_msg_cb(conf, dr);
    s.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!s.rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "send: %s\n", err);
        iw_config_free(cfg);
        return 1;
    }
    int rc = 0;
    for (int i = optind; i < argc; i++)
        if (send_file(&s, argv[i], lines) != 0)
            rc = 1;
    if (rd_kafka_flush(s.rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "send: %d events not delivered within 30 s\n", rd_kafka_outq_len(s.rk));
        rc = 1;
    }
    if (s.failed)
        rc = 1;
    printf("sent %ld event%s to %s (%ld failed)\n", s.sent - s.failed,
           s.sent - s.failed == 1 ? "" : "s", topic, s.failed);
    rd_kafka_destroy(s.rk);
    iw_config_free(cfg);
    return rc;
}
