/* watch.c: the result table and the watcher thread that reads the result and dead-letter
 * topics while the run goes on (the mock cluster drops old data of large topics, and the
 * drain time needs the moment the last expected result arrived). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "chaos.h"

/* librdkafka's own log lines (broker down, reconnects) would drown the report: dropped. */
static void quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

const char *const ch_status_names[CH_N_STATUS] = {"succeeded", "duplicate", "stale", "superseded",
                                                  "rejected",  "failed",    "other"};

/* ---- the table ---- */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int ch_table_init(ch_table *t, size_t expect)
{
    memset(t, 0, sizeof(*t));
    t->cap = 1024;
    while (t->cap < expect * 2 + 64)
        t->cap *= 2;
    t->slots = calloc(t->cap, sizeof(*t->slots));
    if (!t->slots)
        return -1;
    pthread_mutex_init(&t->mu, NULL);
    t->last_terminal_ms = iw_now_ms();
    return 0;
}

void ch_table_free(ch_table *t)
{
    for (size_t i = 0; t->slots && i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    if (t->cap)
        pthread_mutex_destroy(&t->mu);
    memset(t, 0, sizeof(*t));
}

/* The slot of key, or the empty slot where it would go. Caller holds mu. */
static ch_slot *find(const ch_table *t, const char *key)
{
    size_t i = hash(key) & (t->cap - 1);
    while (t->slots[i].key && strcmp(t->slots[i].key, key) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static int grow(ch_table *t)
{
    ch_table bigger = *t;
    bigger.cap = t->cap * 2;
    bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
    if (!bigger.slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key)
            *find(&bigger, t->slots[i].key) = t->slots[i];
    free(t->slots);
    t->slots = bigger.slots;
    t->cap = bigger.cap;
    return 0;
}

/* The slot for key, created when absent. Caller holds mu. NULL when out of memory. */
static ch_slot *slot(ch_table *t, const char *key)
{
    if (t->used * 2 >= t->cap && grow(t) != 0)
        return NULL;
    ch_slot *s = find(t, key);
    if (!s->key) {
        if (!(s->key = strdup(key)))
            return NULL;
        t->used++;
    }
    return s;
}

int ch_table_expect(ch_table *t, const char *result_id, int copies)
{
    pthread_mutex_lock(&t->mu);
    ch_slot *s = slot(t, result_id);
    if (s && !s->expected) {
        s->expected = 1;
        t->expected++;
        if (s->results) {
            t->terminal++;
            t->last_terminal_ms = iw_now_ms();
        }
    }
    if (s)
        s->copies = (uint8_t)(copies > 255 ? 255 : copies);
    pthread_mutex_unlock(&t->mu);
    return s ? 0 : -1;
}

int ch_table_seen(ch_table *t, const char *result_id, long long version, int status_bit)
{
    char vkey[600];
    pthread_mutex_lock(&t->mu);
    ch_slot *s = NULL;
    if (version >= 0 &&
        (size_t)snprintf(vkey, sizeof(vkey), "%s@v%lld", result_id, version) < sizeof(vkey))
        s = find(t, vkey);
    if (!s || !s->key) /* no such slot expected: the result_id's own */
        s = slot(t, result_id);
    if (s) {
        if (s->results++ == 0 && s->expected) {
            t->terminal++;
            t->last_terminal_ms = iw_now_ms();
        }
        s->statuses |= (uint16_t)status_bit;
        t->results++;
        for (int i = 0; i < CH_N_STATUS; i++)
            if (status_bit == 1 << i)
                t->by_status[i]++;
    }
    pthread_mutex_unlock(&t->mu);
    return s ? 0 : -1;
}

ch_slot ch_table_get(ch_table *t, const char *result_id)
{
    ch_slot copy = {0};
    pthread_mutex_lock(&t->mu);
    ch_slot *s = find(t, result_id);
    if (s->key)
        copy = *s;
    pthread_mutex_unlock(&t->mu);
    copy.key = NULL; /* the table owns it */
    return copy;
}

/* ---- the watcher ---- */

static int status_bit(const char *st)
{
    for (int i = 0; st && i < CH_N_STATUS - 1; i++)
        if (strcmp(st, ch_status_names[i]) == 0)
            return 1 << i;
    return CH_ST_OTHER;
}

/* A header's value as a NUL-terminated copy into buf ("" when absent). */
static void header(rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t sz = 0;
    buf[0] = '\0';
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &sz) || !v)
        return;
    snprintf(buf, len, "%.*s", (int)sz, (const char *)v);
}

static void take_result(ch_watch *w, rd_kafka_message_t *m)
{
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    const char *rid = iw_json_str(j, "result_id");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    long long version = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    if (!rid || ch_table_seen(w->table, rid, version, status_bit(iw_json_str(j, "status"))) != 0) {
        pthread_mutex_lock(&w->table->mu);
        w->table->unparsed++;
        pthread_mutex_unlock(&w->table->mu);
    }
    cJSON_Delete(j);
}

static void take_dead(ch_watch *w, rd_kafka_message_t *m)
{
    char part[32], off[32];
    header(m, "x-iw-source-partition", part, sizeof(part));
    header(m, "x-iw-source-offset", off, sizeof(off));
    pthread_mutex_lock(&w->mu);
    if (w->n_dead == w->cap_dead) {
        size_t cap = w->cap_dead ? w->cap_dead * 2 : 256;
        ch_dead *nd = realloc(w->dead, cap * sizeof(*nd));
        if (!nd) {
            pthread_mutex_unlock(&w->mu);
            return;
        }
        w->dead = nd;
        w->cap_dead = cap;
    }
    ch_dead *d = &w->dead[w->n_dead++];
    d->partition = part[0] ? (int32_t)atol(part) : -1;
    d->offset = off[0] ? atoll(off) : -1;
    header(m, "x-iw-target", d->target, sizeof(d->target));
    pthread_mutex_unlock(&w->mu);
}

/* Partitions of topic, or 0. */
static int partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int n = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static void *watch_main(void *arg)
{
    ch_watch *w = arg;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", w->brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "iw-chaos-watch", err, sizeof(err)); /* never joined */
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_conf_set_log_cb(conf, quiet);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(w->error, sizeof(w->error), "watcher: %s", err);
        return NULL;
    }
    conf = NULL; /* rd_kafka_new took it */
    int nr = partitions(rk, CH_RESULTS), nd = partitions(rk, CH_DLQ);
    if (!nr || !nd) {
        snprintf(w->error, sizeof(w->error), "watcher: no metadata for %s/%s", CH_RESULTS, CH_DLQ);
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nr + nd);
    for (int i = 0; i < nr; i++)
        rd_kafka_topic_partition_list_add(l, CH_RESULTS, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    for (int i = 0; i < nd; i++)
        rd_kafka_topic_partition_list_add(l, CH_DLQ, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    while (!w->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            if (strcmp(rd_kafka_topic_name(m->rkt), CH_RESULTS) == 0)
                take_result(w, m);
            else
                take_dead(w, m);
            w->last_msg_ms = iw_now_ms();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

int ch_watch_start(ch_watch *w)
{
    pthread_mutex_init(&w->mu, NULL);
    w->last_msg_ms = iw_now_ms();
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    return 0;
}

void ch_watch_stop(ch_watch *w)
{
    w->stop = true;
    pthread_join(w->thread, NULL);
}

size_t ch_watch_dead_at(ch_watch *w, int32_t partition, int64_t offset)
{
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n_dead; i++)
        n += w->dead[i].partition == partition && w->dead[i].offset == offset;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void ch_watch_free(ch_watch *w)
{
    free(w->dead);
    w->dead = NULL;
    w->n_dead = w->cap_dead = 0;
    pthread_mutex_destroy(&w->mu);
}
