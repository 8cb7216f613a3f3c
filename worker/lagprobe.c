/* lagprobe.c: one thread that asks the brokers where input partitions start and end. */
#include "lagprobe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The timeout each broker call is given (the watermark query may not keep it: lagprobe.h). */
#define PROBE_TIMEOUT_MS 2000
/* How long free waits for the thread before leaving it behind. */
#define PROBE_JOIN_MS 3000

struct iw_lagprobe {
    rd_kafka_t *rk; /* its own client, never in the group */
    char *topic;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    /* the question (the loop sets it; the thread takes it) */
    int32_t *ask;
    size_t n_ask;
    uint64_t ask_tag;
    /* the answer (the thread sets it; the loop takes it) */
    iw_lagprobe_answer *ans;
    size_t n_ans;
    uint64_t ans_tag;
};

/* Asks the brokers about partitions (blocking; the watermark query may not keep its timeout:
 * lagprobe.h): a malloc'd answer per partition, or NULL when out of memory. */
static iw_lagprobe_answer *probe(iw_lagprobe *lp, const int32_t *parts, size_t n)
{
    iw_lagprobe_answer *a = calloc(n ? n : 1, sizeof(*a));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    if (!a || !l) {
        free(a);
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, lp->topic, parts[i]);
    bool committed = rd_kafka_committed(lp->rk, l, PROBE_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < n; i++) {
        a[i].partition = parts[i];
        a[i].from = a[i].end = -1;
        int64_t lo = -1, hi = -1;
        if (atomic_load(&lp->stop) ||
            rd_kafka_query_watermark_offsets(lp->rk, lp->topic, parts[i], &lo, &hi,
                                             PROBE_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        a[i].end = hi;
        /* no committed offset (RD_KAFKA_OFFSET_INVALID): the group reads from the earliest */
        if (committed && !l->elems[i].err)
            a[i].from = l->elems[i].offset >= 0 ? l->elems[i].offset : lo;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return a;
}

static void *run(void *arg)
{
    iw_lagprobe *lp = arg;
    pthread_mutex_lock(&lp->mu);
    for (;;) {
        while (!atomic_load(&lp->stop) && !lp->ask)
            pthread_cond_wait(&lp->cv, &lp->mu);
        if (atomic_load(&lp->stop))
            break;
        int32_t *q = lp->ask;
        size_t n = lp->n_ask;
        uint64_t tag = lp->ask_tag;
        lp->ask = NULL;
        pthread_mutex_unlock(&lp->mu);
        iw_lagprobe_answer *a = probe(lp, q, n);
        free(q);
        pthread_mutex_lock(&lp->mu);
        if (a) {
            free(lp->ans);
            lp->ans = a;
            lp->n_ans = n;
            lp->ans_tag = tag;
        }
    }
    pthread_mutex_unlock(&lp->mu);
    return NULL;
}

iw_lagprobe *iw_lagprobe_new(rd_kafka_conf_t *conf, const char *topic, char *errbuf, size_t errlen)
{
    char err[256];
    iw_lagprobe *lp = calloc(1, sizeof(*lp));
    if (lp)
        lp->topic = strdup(topic);
    if (!lp || !lp->topic) {
        rd_kafka_conf_destroy(conf);
        free(lp);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    /* errors are logged (no error callback: nobody polls this client), nothing is committed */
    rd_kafka_conf_set_error_cb(conf, NULL);
    rd_kafka_conf_set_rebalance_cb(conf, NULL);
    if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) !=
            RD_KAFKA_CONF_OK ||
        !(lp->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        if (!lp->rk)
            rd_kafka_conf_destroy(conf);
        snprintf(errbuf, errlen, "lag probe client: %s", err);
        free(lp->topic);
        free(lp);
        return NULL;
    }
    atomic_init(&lp->stop, false);
    pthread_mutex_init(&lp->mu, NULL);
    pthread_cond_init(&lp->cv, NULL);
    if (pthread_create(&lp->thread, NULL, run, lp) != 0) {
        pthread_cond_destroy(&lp->cv);
        pthread_mutex_destroy(&lp->mu);
        rd_kafka_destroy_flags(lp->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        free(lp->topic);
        free(lp);
        snprintf(errbuf, errlen, "lag probe: cannot start its thread");
        return NULL;
    }
    return lp;
}

void iw_lagprobe_ask(iw_lagprobe *lp, const int32_t *partitions, size_t n, uint64_t tag)
{
    int32_t *q = malloc((n ? n : 1) * sizeof(*q));
    if (!q)
        return; /* asked again on the next gauge update */
    memcpy(q, partitions, n * sizeof(*q));
    pthread_mutex_lock(&lp->mu);
    free(lp->ask);
    lp->ask = q;
    lp->n_ask = n;
    lp->ask_tag = tag;
    pthread_cond_signal(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
}

iw_lagprobe_answer *iw_lagprobe_take(iw_lagprobe *lp, size_t *n, uint64_t *tag)
{
    pthread_mutex_lock(&lp->mu);
    iw_lagprobe_answer *a = lp->ans;
    *n = lp->n_ans;
    *tag = lp->ans_tag;
    lp->ans = NULL;
    lp->n_ans = 0;
    pthread_mutex_unlock(&lp->mu);
    return a;
}

bool iw_lagprobe_free(iw_lagprobe *lp)
{
    if (!lp)
        return true;
    pthread_mutex_lock(&lp->mu);
    atomic_store(&lp->stop, true);
    pthread_cond_signal(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = (int64_t)until.tv_nsec + (int64_t)PROBE_JOIN_MS * 1000000;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    if (pthread_timedjoin_np(lp->thread, NULL, &until) != 0) {
        /* inside librdkafka, waiting on brokers that are gone: it sees stop when it returns
         * and ends; lp and its client stay for it, until the process exits */
        pthread_detach(lp->thread);
        return false;
    }
    pthread_cond_destroy(&lp->cv);
    pthread_mutex_destroy(&lp->mu);
    rd_kafka_destroy_flags(lp->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(lp->ask);
    free(lp->ans);
    free(lp->topic);
    free(lp);
    return true;
}
