/* proc.c: what the chaos driver reads about a worker: memory and descriptors from /proc, and
 * samples of its /metrics page. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "chaos.h"

long ch_proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

int ch_proc_fds(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

double ch_metric(const char *text, const char *name, const char *labels)
{
    char head[256];
    if (labels && *labels)
        snprintf(head, sizeof(head), "%s{%s} ", name, labels);
    else
        snprintf(head, sizeof(head), "%s ", name);
    size_t hl = strlen(head);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, head, hl) == 0)
            return strtod(p + hl, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

int ch_lag_report(const char *brokers, const char *group, const char *topic, char *buf, size_t len)
{
    char err[512];
    buf[0] = '\0';
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int parts = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1)
        parts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    int lagging = -1;
    if (parts && rd_kafka_committed(rk, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = 0;
        lagging = 0;
        for (int i = 0; i < parts; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000))
                continue;
            int64_t c = l->elems[i].offset;
            if (hi - (c < 0 ? lo : c) > 0) {
                lagging++;
                n += (size_t)snprintf(buf + n, len > n ? len - n : 0, "%sp%d %lld/%lld",
                                      n ? ", " : "", i, (long long)c, (long long)hi);
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return lagging;
}

int ch_low_watermarks(const char *brokers, const char *topic, int64_t **lows)
{
    char err[512];
    *lows = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int parts = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1)
        parts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (parts > 0 && (*lows = calloc((size_t)parts, sizeof(**lows)))) {
        for (int i = 0; i < parts; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000) == 0)
                (*lows)[i] = lo;
        }
    } else {
        parts = -1;
    }
    rd_kafka_destroy(rk);
    return parts;
}
