/* feed.c: the paced producer: one idempotent librdkafka producer that sends the plan's messages
 * in order at a steady rate, and records where each landed from its delivery report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define TICK_MS 20         /* pacing step: each step sends what the rate allows so far */
#define GATE_MAX_MS 120000 /* a gate is given up on when no pair finished for this long */

/* Whether the next message may go: true unless it waits at a gate (ch_plan) whose pairs are
 * not all terminal yet. Counts the gates passed and those given up on (no pair finished for
 * GATE_MAX_MS: the run then fails, since what follows the gate no longer tests its case). */
static bool past_gate(ch_feed *f)
{
    const ch_plan *p = f->plan;
    if (f->gates_passed + f->gates_timed_out >= (size_t)p->n_gates ||
        f->queued != p->gate_at[f->gates_passed + f->gates_timed_out])
        return true;
    size_t g = f->gates_passed + f->gates_timed_out;
    long long now = iw_now_ms();
    if (!f->gate_since_ms)
        f->gate_since_ms = now;
    pthread_mutex_lock(&f->table->mu);
    bool open = f->table->terminal >= p->gate_need[g];
    long long moved = f->table->last_terminal_ms;
    pthread_mutex_unlock(&f->table->mu);
    if (!open && now - (moved > f->gate_since_ms ? moved : f->gate_since_ms) < GATE_MAX_MS)
        return false;
    if (open)
        f->gates_passed++;
    else
        f->gates_timed_out++;
    f->gate_since_ms = 0;
    return true;
}

/* Delivery report: where the message went, and the poison result id it implies. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *km, void *opaque)
{
    ch_feed *f = opaque;
    ch_msg *m = km->_private;
    if (!m)
        return;
    if (km->err) {
        m->delivered = -1;
        f->failed++;
        return;
    }
    m->partition = km->partition;
    m->offset = km->offset;
    m->delivered = 1;
    f->acked++;
    if (m->kind == CH_MSG_POISON) {
        /* the worker names an unparseable message by its position */
        char rid[160];
        snprintf(rid, sizeof(rid), "kafka:%s:%d:%lld/-", CH_INPUT, (int)km->partition,
                 (long long)km->offset);
        if (ch_table_expect(f->table, rid, 1) != 0)
            snprintf(f->error, sizeof(f->error), "feeder: out of memory");
    }
}

static rd_kafka_t *producer(ch_feed *f)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "600000", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err))) {
        rd_kafka_conf_destroy(conf);
        snprintf(f->error, sizeof(f->error), "feeder: %s", err);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, f);
    rd_kafka_conf_set_log_cb(conf, quiet);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(f->error, sizeof(f->error), "feeder: %s", err);
    }
    return rk; /* rd_kafka_new took conf on success */
}

/* Hands message m to librdkafka, waiting while its queue is full. 0 or -1. */
static int send_one(ch_feed *f, rd_kafka_t *rk, ch_msg *m)
{
    char key[64];
    char *value = ch_msg_value(f->plan, m, key, sizeof(key));
    if (!value) {
        snprintf(f->error, sizeof(f->error), "feeder: could not build message %td",
                 m - f->plan->msgs);
        return -1;
    }
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(CH_INPUT), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
        if (!e)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || f->stop) {
            snprintf(f->error, sizeof(f->error), "feeder: %s", rd_kafka_err2str(e));
            free(value);
            return -1;
        }
        rd_kafka_poll(rk, 50);
    }
}

static void *feed_main(void *arg)
{
    ch_feed *f = arg;
    rd_kafka_t *rk = producer(f);
    f->started_ms = iw_now_ms();
    size_t n = f->plan->n_msgs;
    while (rk && f->queued < n && !f->stop) {
        double due = (double)(iw_now_ms() - f->started_ms) * f->rate / 1000.0;
        while (f->queued < n && (double)f->queued < due && !f->stop && past_gate(f)) {
            if (send_one(f, rk, &f->plan->msgs[f->queued]) != 0) {
                f->stop = true;
                break;
            }
            f->queued++;
        }
        rd_kafka_poll(rk, TICK_MS);
    }
    /* every report in: librdkafka retries through broker outages (message.timeout.ms) */
    while (rk && f->acked + f->failed < f->queued && !f->stop)
        rd_kafka_poll(rk, 100);
    if (rk) {
        rd_kafka_flush(rk, f->stop ? 1000 : 60000);
        rd_kafka_destroy(rk);
    }
    f->finished_ms = iw_now_ms();
    f->done = true;
    return NULL;
}

int ch_feed_start(ch_feed *f)
{
    f->queued = f->acked = f->failed = 0;
    f->done = false;
    return pthread_create(&f->thread, NULL, feed_main, f) == 0 ? 0 : -1;
}

void ch_feed_join(ch_feed *f)
{
    pthread_join(f->thread, NULL);
}
