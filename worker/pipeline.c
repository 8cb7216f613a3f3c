/* pipeline.c: the worker's event loop: consume, claim in the ledger, order per invoice, call the
 * targets, complete in the ledger, publish results and dead letters, then store offsets.
 *
 * One thread drives everything. An (event, target) pair is a job; a consumed message owns its
 * jobs and is finished when every job's result is acknowledged by the broker. Per partition the
 * stored offset is that of the oldest unfinished message (window.c), so a crash replays at most
 * the unfinished window and never skips anything.
 *
 * Ordering across processes rests on the ledger's fence per (tenant, invoice, target): a job is
 * sent only while it holds that fence, claimed from the front of its lane; the claim raises the
 * highest claimed version, so no worker sends an older version afterwards; no attempt starts
 * unless it ends before the lease can; and an outcome whose fence was lost is never reported.
 * On revoke, nothing but calls already on the wire goes on. */
#include "pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "backoff.h"
#include "dispatch.h"
#include "invoice.h"
#include "jobfsm.h"
#include "kafkaconf.h"
#include "lagprobe.h"
#include "lanes.h"
#include "ledger.h"
#include "loop.h"
#include "log.h"
#include "status.h"
#include "target.h"
#include "text.h"
#include "wbuf.h"
#include "window.h"

#define POLL_BATCH 1000   /* messages taken per loop turn at most */
#define LEDGER_BATCH 2000 /* ledger ops per round trip at most */
#define FULL_PAUSE_MS 1000 /* no room for this long: pause, so polling serves rebalances */
#define REDIS_BACKOFF_MAX_MS 10000
#define LEDGER_IO_TIMEOUT_MS 2000 /* a Redis reply (or connect) later than this drops the link */
#define REPLAY_TARGET_HEADER "x-iw-replay-target"
/* On a replayed copy: the input message its first dead letter came from, "<topic>:<partition>:
 * <offset>"; kept in the copy's own dead letter, so replay takes every letter of one poison
 * message for one (else each run re-sent every earlier copy's letter too). */
#define ORIGIN_HEADER "x-iw-origin"
#define REPLAYED_FROM_HEADER "x-iw-replayed-from" /* set on every copy replay sends */

/*
 * A job's life (jobfsm.h has the whole table): it enters its lane (one per tenant, invoice and
 * target in this process). The first in the lane claims the ledger fence of that (invoice,
 * target), which is one across all processes; only with it is the job sent. Jobs behind wait
 * in the lane without a claim, and a newer one displaces an older one (superseded: never
 * sent). When the lane's job is terminal (its outcome recorded by complete, which frees the
 * fence) the next one claims. Every move goes through job_to.
 *
 * A job whose fence was lost (complete or renew said so, or the lease could not cover another
 * attempt) is not done: on an assigned partition it claims again from the front of its lane;
 * on a revoked one it is dropped and left to the partition's new owner.
 */
typedef iw_job_state job_state;

struct msg;

/* One (event, target) pair. */
typedef struct job {
    struct msg *m;            /* owner */
    const iw_target_conf *tc; /* NULL for a poison message or an unknown target */
    char *target;             /* instance name (copy; may name an unknown target) */
    char *lane_key;           /* tenant \x1f invoice \x1f target */
    job_state state;
    bool leased;         /* we hold the (invoice, target) fence */
    bool in_lane;        /* first in its lane */
    int64_t lease_until; /* monotonic ms when the fence lease may be gone (0: treat as gone) */
    int64_t due_ms;      /* BUSY: when to claim again; settling: when its write may go */
    int64_t settle_until; /* monotonic ms until which an attempt that got no answer may still
                           * be applied by the target: the fence is kept till then (0: none) */
    int busy_tries;
    int reoffers;       /* times its lane's stale verdict was found not to hold (reoffer_stale) */
    bool maybe_applied; /* an attempt of an earlier call may have been applied (a reclaimed
                         * job's next call then asks for no second customer e-mail) */
    bool resend;        /* its call ended but the outcome's write lost the fence: the next
                         * call is sent at least once, whatever the retry limits */
    bool peek;          /* its lane says stale or superseded (verdict): the ledger is asked
                         * only whether its event already succeeded here (then duplicate); or
                         * the target's rules refuse it (verdict rejected, its result set):
                         * asked too whether a newer version was applied or claimed there
                         * (then stale) */
    iw_result_status verdict;
    bool refused;     /* its target's rules refuse it: never sent (its result says why) */
    char *superseder; /* refused and superseded: the event_id of the newer version in its lane
                       * its ledger question names, a copy (ask_superseder), else NULL */
    /* the result being built */
    iw_result_status status;
    iw_error_kind error_kind;
    char error_code[64];
    char error_msg[256];
    char target_ref[128];
    int attempts; /* of every call it made (a reclaimed job's calls go on counting) */
    long http_status;
    int64_t first_attempt_ms, finished_ms;
    int64_t first_attempt_mono; /* monotonic ms of its first attempt, 0 before one */
    int deliveries;    /* produced messages not yet acknowledged */
    bool unqueued;     /* its result or dead letter was never queued (a stop): not counted */
    int size_refusals; /* its messages the broker refused as too large (redo_refused) */
    struct job *qnext; /* link in the queue matching its state */
} job;

/* A result (or dead letter) of j the broker refused as too large, to be sent again. */
struct redo {
    job *j;
    bool letter;
};

/* One consumed message. */
typedef struct msg {
    iw_window_entry we;    /* first: offset, open jobs, dropped; its window (or orphan) link */
    struct iw_pipeline *p; /* the pipeline it belongs to */
    int32_t partition;
    bool tracked; /* counted in its partition's window (false after revoke) */
    char *key;    /* NULL for a null key; an empty key is a pointer with key_len 0 */
    size_t key_len;
    char *value; /* a block of its own: freed once every job is over (msg_unref) */
    size_t value_len;
    bool value_null; /* a tombstone (no value): its dead letter has none either */
    char *traceparent;
    char *origin; /* ORIGIN_HEADER when well formed, else NULL */
    iw_event *ev; /* NULL for a poison message */
    job *jobs;
    size_t n_jobs;
} msg;

/* The message whose window entry is e (the entry is its first member). */
static msg *msg_of(iw_window_entry *e)
{
    return (msg *)e;
}

/* Per input partition: the window of unfinished messages. */
typedef struct part {
    bool assigned;
    bool paused;
    iw_window win;        /* unfinished messages in offset order */
    int64_t stored;       /* offset last stored, -1 none */
    int64_t last_seen;    /* last offset taken in this assignment, -1 none */
    /* what the brokers said (lagprobe.h) of a partition nothing was taken from yet in this
     * assignment: its committed offset and high watermark, -1 unknown */
    int64_t probe_from, probe_end;
} part;

/* HTTP status codes with a series handle of their own (curl reports 0 to 999). */
#define HTTP_CODES 1000

/* Metric handles of one target instance (or of the (unknown) and poison labels: results only),
 * resolved at start-up so that a misspelt or mistyped metric stops the worker there. */
typedef struct target_metrics {
    iw_counter *results[IW_RES__COUNT]; /* iw_results_total{target,status} */
    iw_counter *retries;                /* iw_retries_total{target} */
    uint64_t retries_seen;              /* the dispatcher's retry count already added */
    iw_gauge *breaker_open;             /* iw_breaker_open{target} */
    iw_histogram *duration;             /* iw_http_request_duration_seconds{target} */
    iw_counter **requests;              /* [HTTP_CODES] iw_http_requests_total, made on first use */
    char label[200];                    /* target="name", escaped */
} target_metrics;

/* Handles of the series without labels. */
typedef struct global_metrics {
    iw_counter *consumed, *ledger_errors, *fence_lost, *traceparent_invalid;
    iw_counter *wakes_drained, *wakes_resumed; /* iw_consumer_fetch_wakes_total by reason */
    iw_gauge *in_flight, *jobs_open, *jobs_settling, *consumer_lag, *ledger_up;
} global_metrics;

/* A FIFO of jobs linked through qnext. */
typedef struct jobq {
    job *head, *tail;
    size_t n;
} jobq;

struct iw_pipeline {
    const iw_config *cfg;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    iw_loop *loop; /* owns every wait: Kafka's wake pipe, libcurl's sockets, Redis, timers */
    iw_aledger *aledger;
    struct lbatch *inflight[4]; /* the ledger batch of each kind on its way, NULL if none */
    iw_timer wake_timer;        /* the next moment the loop turn has timed work (busy, renew) */
    iw_dispatch *dispatch;
    iw_lanes *lanes;
    int wake[2]; /* librdkafka queues write here when they have work */

    part *parts;
    int32_t n_parts;

    jobq claim_q, busy_q, ready_q, complete_q, release_q;
    jobq settle_q;    /* COMPLETE or RELEASE jobs holding their fence until settle_until */
    jobq publish_q;   /* RESULT jobs waiting for room in the producer's queue (publish) */
    size_t open_jobs; /* jobs not yet terminal */

    char owner[IW_WORKER_ID_MAX + 64]; /* lease owner token: worker id + process, unique per
                                        * run (never cut: the id is bounded) */
    int64_t renew_every_ms; /* fence renewal period: keeps every lease able to cover an attempt */
    bool ledger_ok;
    bool ledger_connecting;
    bool ledger_was_up; /* connected once: later connects are recoveries */
    bool freeing;       /* iw_pipeline_free runs: batch answers change nothing */
    int64_t ledger_retry_at;
    int64_t ledger_backoff_ms;
    int64_t last_renew_ms;
    bool paused_all;
    bool stopping;
    bool unclosed; /* the consumer did not close within CLOSE_BOUND_MS: destroyed without it */
    bool fatal;
    volatile sig_atomic_t *stop; /* the signal flag run watches; ends a wait for the producer */
    int64_t queued_bytes;        /* keys and values produced and not yet reported delivered */
    int64_t queue_bytes;         /* the bound on them: the producer's queue.buffering.max.kbytes */
    int64_t queued_msgs;         /* and those messages */
    int64_t queue_msgs;          /* the bound on them: queue.buffering.max.messages */
    int64_t queue_full_log_ms;   /* when the pipeline last said results wait for room */
    int64_t refused_log_ms;      /* when produce last said librdkafka refused a message */
    size_t unqueued;             /* jobs whose result or dead letter a stop left unqueued */
    bool ever_assigned;
    bool more_msgs;        /* the last poll stopped at POLL_BATCH */
    int64_t full_since_ms; /* when a poll first stopped for want of room; 0 with room */
    int64_t pending_bytes; /* values of consumed messages not yet freed (max_pending_bytes) */
    int64_t prefetch_bytes; /* librdkafka's queue bounds: queued.max.messages.kbytes in bytes */
    int64_t prefetch_msgs;  /* and queued.min.messages */
    int64_t taken_bytes;    /* values polled since the fetchers were last woken */
    int64_t taken_msgs;     /* and messages */
    msg *orphans;          /* messages of revoked partitions still running */
    struct redo *redo;     /* results and dead letters the broker refused as too large */
    size_t n_redo, cap_redo;
    int64_t last_shed_ms; /* when shed_waiting last asked the dispatcher */

    iw_pipeline_stats stats;
    uint64_t *target_results; /* [n_targets][IW_RES__COUNT] */
    iw_metrics *metrics;
    target_metrics *tm; /* [n_targets]: the instances, then (unknown) and "" (poison) */
    global_metrics gm;
    int64_t last_gauges_ms;
    iw_lagprobe *lagprobe; /* asks the brokers where partitions we took nothing from stand */
    uint64_t assign_gen;   /* counts assignment changes: an answer asked before one is stale */
    int64_t last_probe_ms; /* when lagprobe was last asked */
    pthread_mutex_t lock; /* guards snapshot */
    iw_pipeline_stats snapshot;
};

static const char *const STATUS_NAMES[IW_RES__COUNT] = {"succeeded",  "duplicate", "stale",
                                                        "superseded", "rejected",  "failed"};

const char *iw_result_status_str(iw_result_status s)
{
    return s < IW_RES__COUNT ? STATUS_NAMES[s] : "";
}

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void q_push(jobq *q, job *j)
{
    j->qnext = NULL;
    if (q->tail)
        q->tail->qnext = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static job *q_pop(jobq *q)
{
    job *j = q->head;
    if (j) {
        q->head = j->qnext;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        j->qnext = NULL;
    }
    return j;
}

/* The pipeline's own deadline came: the loop turn that follows does the work. */
static void wake_timer_fired(void *arg)
{
    (void)arg;
}

/* librdkafka wrote to the wake pipe: its queues have work, which the loop turn serves. */
static void wake_drain(void *arg, int fd, unsigned events)
{
    char buf[256];
    (void)arg;
    (void)events;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static part *get_part(iw_pipeline *p, int32_t partition)
{
    if (partition < 0)
        return NULL;
    if (partition >= p->n_parts) {
        int32_t n = partition + 1 > p->n_parts * 2 ? partition + 1 : p->n_parts * 2;
        part *np = realloc(p->parts, (size_t)n * sizeof(*np));
        if (!np)
            return NULL;
        for (int32_t i = p->n_parts; i < n; i++) {
            memset(&np[i], 0, sizeof(np[i]));
            np[i].stored = -1;
            iw_window_init(&np[i].win);
            np[i].last_seen = -1;
            np[i].probe_from = np[i].probe_end = -1;
        }
        p->parts = np;
        p->n_parts = n;
    }
    return &p->parts[partition];
}

/* ---- messages and jobs lifecycle ---- */

/* Frees m's parsed event and its copied value, which pending_bytes counts; a second call
 * does nothing. */
static void msg_drop_body(msg *m)
{
    iw_event_free(m->ev);
    m->ev = NULL;
    free(m->value);
    m->value = NULL;
    m->p->pending_bytes -= (int64_t)m->value_len;
    m->value_len = 0;
}

/* Frees m's jobs, with their strings (one block). */
static void msg_free_jobs(msg *m)
{
    for (size_t k = 0; k < m->n_jobs; k++)
        free(m->jobs[k].superseder);
    free(m->jobs);
    m->jobs = NULL;
    m->n_jobs = 0;
}

static void msg_free(msg *m)
{
    if (!m)
        return;
    msg_free_jobs(m);
    msg_drop_body(m);
    free(m->traceparent);
    free(m->origin);
    free(m);
}

/* Pops finished messages off a partition's window and stores the new offset. */
static void advance_partition(iw_pipeline *p, int32_t partition)
{
    part *pt = get_part(p, partition);
    if (!pt)
        return;
    iw_window_entry *e;
    while ((e = iw_window_pop_finished(&pt->win)))
        msg_free(msg_of(e));
    int64_t off = iw_window_commit_offset(&pt->win);
    if (!pt->assigned || off < 0 || off == pt->stored)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->cfg->input_topic, partition)->offset = off;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(p->consumer, l);
    if (!err)
        pt->stored = off;
    rd_kafka_topic_partition_list_destroy(l);
}

static void msg_unref(iw_pipeline *p, msg *m);

/* Moves j by event e; a move the table does not allow stops the worker (a bug), and j's
 * message is then never committed. False when refused. */
static bool job_to(iw_pipeline *p, job *j, iw_job_event e)
{
    iw_job_state next = iw_job_next(j->state, e);
    if (next == IW_JOB__COUNT) {
        iw_log(IW_LOG_ERROR, "job moved against its state machine; stopping", "state",
               iw_job_state_str(j->state), "event", iw_job_event_str(e), "target", j->target,
               NULL);
        j->m->we.dropped = true;
        p->fatal = true;
        return false;
    }
    if (iw_log_enabled(IW_LOG_DEBUG)) {
        char lease[24] = "";
        if (j->leased)
            snprintf(lease, sizeof(lease), "%lld", (long long)(j->lease_until - mono_ms()));
        iw_log(IW_LOG_DEBUG, "job", "event_id", j->m->ev ? j->m->ev->event_id : "", "target",
               j->target, "from", iw_job_state_str(j->state), "on", iw_job_event_str(e), "to",
               iw_job_state_str(next), "tracked", j->m->tracked ? "yes" : "no", "lease_left_ms",
               lease, NULL);
    }
    j->state = next;
    return true;
}

/* j ends: e is DELIVERED (done) or DROP. */
static void job_terminal(iw_pipeline *p, job *j, iw_job_event e)
{
    if (!job_to(p, j, e) || !iw_job_terminal(j->state))
        return;
    p->open_jobs--;
    msg *m = j->m;
    if (j->state == IW_JOB_DROPPED)
        m->we.dropped = true;
    msg_unref(p, m);
}

/* ---- results and dead letters ---- */

static void set_result(job *j, iw_result_status st, iw_error_kind ek, const char *code,
                       const char *message)
{
    j->status = st;
    j->error_kind = ek;
    iw_text_copy(j->error_code, sizeof(j->error_code), code);
    iw_text_copy(j->error_msg, sizeof(j->error_msg), message);
    if (!j->finished_ms)
        j->finished_ms = wall_ms();
}

/* Writes j's result (invoice-result/v1) into the thread's scratch buffer; NULL when out of
 * memory. Numbers are written as integers, exactly (a version above 2^53 stays exact). */
/* Writes s as a JSON string; text that is not valid UTF-8 (a message cut inside a character,
 * bytes from a reply) has each bad byte replaced by U+FFFD, so a result is always written. */
static void jw_text(iw_jw *w, const char *key, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, n = strlen(s);
    uint32_t cp;
    while (i < n) {
        if (u[i] < 0x80) { /* ASCII, the usual byte */
            i++;
            continue;
        }
        size_t k = iw_text_utf8_next(u + i, &cp);
        if (!k)
            break;
        i += k;
    }
    if (i == n) {
        iw_jw_string(w, key, s);
        return;
    }
    char fixed[1024];
    size_t o = 0;
    for (i = 0; i < n && o + 4 < sizeof(fixed);) {
        size_t k = iw_text_utf8_next(u + i, &cp);
        if (k) {
            memcpy(fixed + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    fixed[o] = '\0';
    iw_jw_string(w, key, fixed);
}

/* m's event_id, or for a message with no event (poison) "kafka:<topic>:<partition>:<offset>",
 * into buf (320 bytes fit both: an event_id is at most 128 bytes, a topic name 249). */
static void event_id_of(const iw_pipeline *p, const msg *m, char *buf, size_t n)
{
    if (m->ev)
        iw_text_copy(buf, n, m->ev->event_id);
    else
        snprintf(buf, n, "kafka:%s:%d:%lld", p->cfg->input_topic, (int)m->partition,
                 (long long)m->we.offset);
}

static const iw_wbuf *result_json(iw_pipeline *p, const job *j)
{
    const msg *m = j->m;
    const iw_event *ev = m->ev;
    /* eid: an event_id (at most 128 bytes) or "kafka:<topic>:<partition>:<offset>" (a topic
     * name is at most 249 bytes: 288 in all); rid: eid, '/' and a target name that fits */
    char buf[64], rid[512], eid[320];
    iw_wbuf *b = iw_wbuf_scratch();
    iw_jw w;
    iw_jw_begin(&w, b);
    iw_jw_object(&w, NULL);
    iw_jw_string(&w, "schema", "invoice-result/v1");
    event_id_of(p, m, eid, sizeof(eid));
    jw_text(&w, "event_id", eid);
    if (ev) {
        jw_text(&w, "tenant", ev->tenant);
        jw_text(&w, "invoice_id", ev->invoice.id);
        iw_text_i64(buf, ev->version);
        iw_jw_raw(&w, "version", buf);
    } else {
        iw_jw_null(&w, "tenant");
        iw_jw_null(&w, "invoice_id");
        iw_jw_null(&w, "version");
    }
    if (j->target)
        jw_text(&w, "target", j->target);
    else
        iw_jw_null(&w, "target");
    jw_text(&w, "status", STATUS_NAMES[j->status]);
    iw_text_i64(buf, j->attempts);
    iw_jw_raw(&w, "attempts", buf);
    if (j->http_status) {
        iw_text_i64(buf, j->http_status);
        iw_jw_raw(&w, "http_status", buf);
    } else {
        iw_jw_null(&w, "http_status");
    }
    if (j->target_ref[0])
        jw_text(&w, "target_ref", j->target_ref);
    else
        iw_jw_null(&w, "target_ref");
    if (j->status == IW_RES_REJECTED || j->status == IW_RES_FAILED) {
        iw_jw_object(&w, "error");
        jw_text(&w, "kind", iw_error_kind_str(j->error_kind));
        jw_text(&w, "message", j->error_msg);
        if (j->error_code[0])
            jw_text(&w, "code", j->error_code);
        else
            iw_jw_null(&w, "code");
        iw_jw_end(&w);
    } else {
        iw_jw_null(&w, "error");
    }
    if (j->first_attempt_ms) {
        iw_text_utc_ms(buf, j->first_attempt_ms);
        jw_text(&w, "first_attempt_at", buf);
    } else {
        iw_jw_null(&w, "first_attempt_at");
    }
    iw_text_utc_ms(buf, j->finished_ms);
    jw_text(&w, "finished_at", buf);
    iw_text_i64(buf, j->first_attempt_ms ? j->finished_ms - j->first_attempt_ms : 0);
    iw_jw_raw(&w, "duration_ms", buf);
    jw_text(&w, "worker", p->cfg->worker_id);
    if (iw_text_trace_id(m->traceparent, buf, sizeof(buf)))
        jw_text(&w, "trace_id", buf);
    else
        iw_jw_null(&w, "trace_id");
    /* an event may name an unknown target of any length: the id is never cut */
    const char *tname = j->target ? j->target : "-";
    size_t need = strlen(eid) + 1 + strlen(tname) + 1;
    char *id = need <= sizeof(rid) ? rid : malloc(need);
    if (!id)
        return NULL;
    size_t el = strlen(eid);
    memcpy(id, eid, el);
    id[el] = '/';
    memcpy(id + el + 1, tname, need - el - 1); /* with its NUL */
    jw_text(&w, "result_id", id);
    if (id != rid)
        free(id);
    return iw_jw_finish(&w) == 0 ? b : NULL;
}

/* A full producer queue is said at most this often. */
#define QUEUE_FULL_LOG_MS 10000

static void queue_full_said(iw_pipeline *p, int64_t *last_ms, const char *text)
{
    if (*last_ms && mono_ms() - *last_ms < QUEUE_FULL_LOG_MS)
        return;
    *last_ms = mono_ms();
    char n[IW_TEXT_I64_LEN], b[IW_TEXT_I64_LEN], w[IW_TEXT_I64_LEN];
    iw_text_i64(n, rd_kafka_outq_len(p->producer));
    iw_text_i64(b, p->queued_bytes);
    iw_text_i64(w, (int64_t)p->publish_q.n);
    iw_log(IW_LOG_WARN, text, "queued", n, "queued_bytes", b, "results_waiting", w, NULL);
}

/* Produces one message, counting it and its key and value in queued_msgs and queued_bytes until
 * its delivery report. librdkafka's own bounds (on values only, and on messages) are not reached
 * while publish keeps the pipeline's; were one reached, this serves delivery reports and tries
 * again until a stop signal or a fatal error, which ends the wait with
 * RD_KAFKA_RESP_ERR__QUEUE_FULL: the message is not produced, and its event replays after the
 * restart (produce_failed).
 * Returns librdkafka's error (0 when queued). A message too large for the producer's
 * message.max.bytes is left for the caller to shorten; any other error is logged here. */
static rd_kafka_resp_err_t produce(iw_pipeline *p, const char *topic, const char *key,
                                   size_t key_len, char *value, size_t value_len,
                                   rd_kafka_headers_t *hdrs, job *j)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(j), RD_KAFKA_V_END);
        if (!err) {
            p->queued_bytes += (int64_t)(key_len + value_len);
            p->queued_msgs++;
            return 0; /* the producer owns hdrs now */
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
                iw_log(IW_LOG_ERROR, "cannot produce", "topic", topic, "error",
                       rd_kafka_err2str(err), NULL);
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return err;
        }
        if ((p->stop && *p->stop) || p->fatal) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return err;
        }
        queue_full_said(p, &p->refused_log_ms,
                        "librdkafka refused a message, its queue full: the loop waits for "
                        "deliveries");
        rd_kafka_poll(p->producer, 50);
    }
}

/* One produced message of j was acknowledged (or the guard was dropped). */
static void delivery_done(iw_pipeline *p, job *j)
{
    if (--j->deliveries > 0)
        return;
    if (j->unqueued) { /* never published: its event replays, and is counted then */
        job_terminal(p, j, IW_JEV_DELIVERED);
        return;
    }
    p->stats.results[j->status]++;
    /* a name from an event that is no configured instance counts under one fixed label value,
     * so the series stay bounded ("" when the message named no target: poison) */
    size_t ti = j->tc ? (size_t)(j->tc - p->cfg->targets) : p->cfg->n_targets + (j->target ? 0 : 1);
    if (j->tc)
        p->target_results[ti * IW_RES__COUNT + j->status]++;
    iw_counter_add(p->tm[ti].results[j->status], 1);
    job_terminal(p, j, IW_JEV_DELIVERED);
}

/* A result or dead letter of j could not be produced (e, librdkafka's error): never store its
 * message's offset (its event has no result; it replays after the restart), and stop, unless a
 * stop left it waiting for room in the producer's queue (RD_KAFKA_RESP_ERR__QUEUE_FULL). */
static void produce_failed(iw_pipeline *p, job *j, rd_kafka_resp_err_t e)
{
    j->m->we.dropped = true;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        p->fatal = true;
    } else if (!j->unqueued) {
        j->unqueued = true;
        p->unqueued++;
    }
}

/* What a result or dead letter leaves out when the message would be larger than Kafka takes
 * (the producer's message.max.bytes, or the broker's limit for the topic): an input message
 * just under the limit, or with a key of nearly that size, must not stop the worker on every
 * restart. Each left-out part is named by a header with its size in bytes. */
enum { OMIT_KEY = 1, OMIT_VALUE = 2 };
#define KEY_OMITTED_HEADER "x-iw-key-omitted"
#define VALUE_OMITTED_HEADER "x-iw-value-omitted"

static bool size_refused(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* What to leave out next after omit was still too large; omit itself when nothing is left.
 * A dead letter gives up the larger of the event's value and key first, then the other (the
 * event stays at its source offset, which the letter's headers name); a result has only the
 * key to give up. An empty part is never "left out". */
static unsigned omit_more(bool letter, unsigned omit, const msg *m)
{
    bool key = m->key_len && !(omit & OMIT_KEY);
    bool value = letter && m->value_len && !(omit & OMIT_VALUE);
    if (value && (!key || m->value_len >= m->key_len))
        return omit | OMIT_VALUE;
    return key ? omit | OMIT_KEY : omit;
}

/* Logs msg_text about j's result or dead letter: which event and target it is for (review 106:
 * two targets' letters gave two like lines), where its message is, its key's and value's sizes,
 * and one more field. */
static void log_sizes(const iw_pipeline *p, iw_log_level lvl, const char *msg_text, const job *j,
                      const char *field, const char *value)
{
    const msg *m = j->m;
    char pnum[IW_TEXT_I64_LEN], off[IW_TEXT_I64_LEN], kb[IW_TEXT_I64_LEN], vb[IW_TEXT_I64_LEN];
    char eid[320];
    iw_text_i64(pnum, m->partition);
    iw_text_i64(off, m->we.offset);
    iw_text_i64(kb, (int64_t)m->key_len);
    iw_text_i64(vb, (int64_t)m->value_len);
    event_id_of(p, m, eid, sizeof(eid));
    iw_log(lvl, msg_text, "event_id", eid, "target", j->target, "partition", pnum, "offset", off,
           "key_bytes", kb, "value_bytes", vb, field, value, NULL);
}

static void header_size(rd_kafka_headers_t *h, const char *name, size_t n)
{
    char num[IW_TEXT_I64_LEN];
    iw_text_i64(num, (int64_t)n);
    rd_kafka_header_add(h, name, -1, num, -1);
}

static rd_kafka_resp_err_t produce_result(iw_pipeline *p, job *j, unsigned omit)
{
    msg *m = j->m;
    const iw_wbuf *val = result_json(p, j); /* copied by the producer */
    if (!val)
        return RD_KAFKA_RESP_ERR__FAIL;
    rd_kafka_headers_t *h = NULL;
    if (m->traceparent || omit) {
        h = rd_kafka_headers_new(2);
        if (m->traceparent)
            rd_kafka_header_add(h, "traceparent", -1, m->traceparent, -1);
        if (omit & OMIT_KEY)
            header_size(h, KEY_OMITTED_HEADER, m->key_len);
    }
    return produce(p, p->cfg->result_topic, omit & OMIT_KEY ? NULL : m->key,
                   omit & OMIT_KEY ? 0 : m->key_len, val->data, val->len, h, j);
}

static rd_kafka_resp_err_t produce_letter(iw_pipeline *p, job *j, unsigned omit)
{
    msg *m = j->m;
    char num[32];
    rd_kafka_headers_t *h = rd_kafka_headers_new(11);
    rd_kafka_header_add(h, "x-iw-target", -1, j->target ? j->target : "", -1);
    rd_kafka_header_add(h, "x-iw-error-kind", -1, iw_error_kind_str(j->error_kind), -1);
    rd_kafka_header_add(h, "x-iw-error", -1, j->error_msg, -1);
    snprintf(num, sizeof(num), "%d", j->attempts);
    rd_kafka_header_add(h, "x-iw-attempts", -1, num, -1);
    rd_kafka_header_add(h, "x-iw-source-topic", -1, p->cfg->input_topic, -1);
    snprintf(num, sizeof(num), "%d", (int)m->partition);
    rd_kafka_header_add(h, "x-iw-source-partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)m->we.offset);
    rd_kafka_header_add(h, "x-iw-source-offset", -1, num, -1);
    if (m->traceparent)
        rd_kafka_header_add(h, "traceparent", -1, m->traceparent, -1);
    if (m->origin)
        rd_kafka_header_add(h, ORIGIN_HEADER, -1, m->origin, -1);
    if (omit & OMIT_VALUE)
        header_size(h, VALUE_OMITTED_HEADER, m->value_len);
    if (omit & OMIT_KEY)
        header_size(h, KEY_OMITTED_HEADER, m->key_len);
    return produce(p, p->cfg->dlq_topic, omit & OMIT_KEY ? NULL : m->key,
                   omit & OMIT_KEY ? 0 : m->key_len,
                   omit & OMIT_VALUE || m->value_null ? NULL : m->value,
                   omit & OMIT_VALUE ? 0 : m->value_len, h, j);
}

/* Produces j's result (or dead letter) leaving out omit, and more while Kafka finds it too
 * large; counts the delivery to wait for. 0, or the error (logged, unless a stop ended a wait
 * for a full queue) when it could not be produced. */
static rd_kafka_resp_err_t produce_fitting(iw_pipeline *p, job *j, bool letter, unsigned omit)
{
    for (;;) {
        rd_kafka_resp_err_t e = letter ? produce_letter(p, j, omit) : produce_result(p, j, omit);
        if (!e) {
            j->deliveries++;
            return 0;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return e;
        unsigned more = omit_more(letter, omit, j->m);
        if (!size_refused(e) || more == omit) {
            log_sizes(p, IW_LOG_ERROR,
                      letter ? "cannot produce the dead letter; stopping"
                             : "cannot produce the result; stopping",
                      j, "error", e ? rd_kafka_err2str(e) : "out of memory");
            return e;
        }
        omit = more;
        log_sizes(p, IW_LOG_WARN,
                  letter ? "dead letter too large for Kafka; sending it shorter"
                         : "result too large for Kafka; sending it without the event's key",
                  j, "left_out",
                  omit & OMIT_VALUE ? (omit & OMIT_KEY ? "value,key" : "value") : "key");
    }
}

/* Queues j's result (or dead letter), which the broker refused as too large, to be sent again
 * by redo_refused, outside the delivery callback (which may run inside produce). 0 or -1. */
static int redo_push(iw_pipeline *p, job *j, bool letter)
{
    if (p->n_redo == p->cap_redo) {
        size_t cap = p->cap_redo ? 2 * p->cap_redo : 16;
        struct redo *r = realloc(p->redo, cap * sizeof(*r));
        if (!r)
            return -1;
        p->redo = r;
        p->cap_redo = cap;
    }
    p->redo[p->n_redo++] = (struct redo){j, letter};
    return 0;
}

/* The broker refuses a whole batch as too large, not one message, so a message refused so is
 * shortened only when it is large itself (a part of REDO_SHORTEN_BYTES or more: a key, or a
 * dead letter's value); a smaller one is sent again as it was. A job refused more than
 * REDO_TRIES times stops the worker: a topic whose max.message.bytes is below the producer's
 * batch.size refuses batches of small messages, a config error. */
#define REDO_SHORTEN_BYTES (64 * 1024)
#define REDO_TRIES 3
static void redo_refused(iw_pipeline *p)
{
    for (size_t i = 0; i < p->n_redo; i++) { /* produce may add more: by index */
        job *j = p->redo[i].j;
        bool letter = p->redo[i].letter;
        msg *m = j->m;
        unsigned omit = 0;
        if (m->key_len >= REDO_SHORTEN_BYTES)
            omit |= OMIT_KEY;
        if (letter && m->value_len >= REDO_SHORTEN_BYTES)
            omit |= OMIT_VALUE;
        if (++j->size_refusals > REDO_TRIES) {
            iw_log(IW_LOG_ERROR,
                   "the broker keeps refusing as too large; stopping (is the topic's "
                   "max.message.bytes below kafka.properties producer.batch.size?)",
                   "topic", letter ? p->cfg->dlq_topic : p->cfg->result_topic, NULL);
            produce_failed(p, j, RD_KAFKA_RESP_ERR__FAIL);
        } else {
            if (omit) /* which event's letter or result goes shorter (review 107) */
                log_sizes(p, IW_LOG_WARN,
                          letter ? "dead letter too large for the broker; sending it shorter"
                                 : "result too large for the broker; sending it without the "
                                   "event's key",
                          j, "left_out",
                          omit & OMIT_VALUE ? (omit & OMIT_KEY ? "value,key" : "value") : "key");
            rd_kafka_resp_err_t e = produce_fitting(p, j, letter, omit);
            if (e)
                produce_failed(p, j, e);
        }
        delivery_done(p, j); /* the refused message's */
    }
    p->n_redo = 0;
}

/* A result's names, numbers and timestamps (result_json), at most. */
#define RESULT_FIXED_BYTES 1024

/* At least the size of j's result (result_json): every text it quotes at six bytes a byte (a
 * control character's \u escape; a byte that is not UTF-8 becomes three), the event id (at
 * most 320 bytes) and the target twice (result_id too), and RESULT_FIXED_BYTES. */
static int64_t result_bound(const iw_pipeline *p, const job *j)
{
    const iw_event *ev = j->m->ev;
    size_t text = 2 * 320 + 2 * (j->target ? strlen(j->target) : 1) + sizeof(j->target_ref) +
                  sizeof(j->error_msg) + sizeof(j->error_code) + strlen(p->cfg->worker_id) + 64;
    if (ev)
        text += strlen(ev->tenant) + strlen(ev->invoice.id);
    return 6 * (int64_t)text + RESULT_FIXED_BYTES;
}

/* Whether the producer's queue has room for j's messages: its result (and the event's key) and,
 * when it failed, its dead letter, which holds the event's key and value again. An empty queue
 * has room for any. */
static bool producer_room(const iw_pipeline *p, const job *j)
{
    if (p->queued_msgs <= 0)
        return true;
    bool letter = j->status == IW_RES_FAILED || j->status == IW_RES_REJECTED;
    int64_t need = (int64_t)j->m->key_len + result_bound(p, j);
    if (letter)
        need += (int64_t)j->m->key_len + (int64_t)j->m->value_len;
    return p->queued_bytes + need <= p->queue_bytes && p->queued_msgs + 2 <= p->queue_msgs;
}

static void publish_now(iw_pipeline *p, job *j)
{
    msg *m = j->m;
    rd_kafka_resp_err_t e = produce_fitting(p, j, false, 0);
    /* without its result the event replays after the restart: its letter would be a copy */
    if (!e && (j->status == IW_RES_FAILED || j->status == IW_RES_REJECTED))
        e = produce_fitting(p, j, true, 0);
    if (e)
        produce_failed(p, j, e);
    iw_log_level lvl =
        j->status == IW_RES_FAILED || j->status == IW_RES_REJECTED ? IW_LOG_WARN : IW_LOG_INFO;
    if (iw_log_enabled(lvl)) {
        char att[IW_TEXT_I64_LEN], eid[320];
        iw_text_i64(att, j->attempts);
        if (!m->ev) /* a poison event's too, as its result names it (review 106) */
            event_id_of(p, m, eid, sizeof(eid));
        iw_log(lvl, "result", "event_id", m->ev ? m->ev->event_id : eid, "invoice_id",
               m->ev ? m->ev->invoice.id : NULL,
               "target", j->target, "status", STATUS_NAMES[j->status], "attempts", att,
               "error_kind", j->error_kind ? iw_error_kind_str(j->error_kind) : NULL, "error",
               j->error_msg[0] ? j->error_msg : NULL, NULL);
    }
    delivery_done(p, j);
}

/* Publishes j's result, and its dead letter when it failed, once the producer's queue has room
 * for them: the queue holds at most queue_bytes of keys and values (kafkaconf.c), and a dead
 * letter copies its event (an event naming 64 unknown targets has 64). Until then j waits in
 * publish_q, in order, and the pipeline takes no more messages (has_room), so a slow or absent
 * Kafka pauses consumption while the loop goes on serving calls, Redis and the probes. */
static void publish(iw_pipeline *p, job *j)
{
    job_to(p, j, IW_JEV_RESULT);
    j->deliveries = 1; /* a guard: a delivery report served while producing cannot end the job */
    if (p->publish_q.n || !producer_room(p, j)) {
        q_push(&p->publish_q, j);
        queue_full_said(p, &p->queue_full_log_ms,
                        "the producer's queue is full: results wait for the brokers to take what "
                        "it holds, and consumption pauses");
        return;
    }
    publish_now(p, j);
}

/* Publishes the jobs waiting for room, in order, while there is room. */
static void publish_waiting(iw_pipeline *p)
{
    while (p->publish_q.head && producer_room(p, p->publish_q.head))
        publish_now(p, q_pop(&p->publish_q));
}

/* At the end of a stop, the jobs still waiting for room are not published: their events replay
 * after the restart. */
static void abandon_unpublished(iw_pipeline *p)
{
    job *j;
    while ((j = q_pop(&p->publish_q))) {
        produce_failed(p, j, RD_KAFKA_RESP_ERR__QUEUE_FULL);
        delivery_done(p, j);
    }
}

/* ---- the ledger steps ----
 *
 * Every ledger call is a batch sent on the loop; its answer comes back through ledger_done.
 * At most one batch of each kind is in flight. A job in a batch is in no queue, so nothing
 * else moves it meanwhile; a renewal holds a reference on its job's message instead (the job
 * may finish meanwhile), so the message outlives the batch. */

enum lkind { LB_CLAIM, LB_COMPLETE, LB_RELEASE, LB_RENEW, LB__COUNT };

static const char *const LKIND_NAMES[LB__COUNT] = {"claim", "complete", "release", "renew"};

typedef struct lbatch {
    iw_pipeline *p;
    enum lkind kind;
    size_t n;
    int64_t sent_ms;  /* the leases it grants or extends run from no later than this */
    int64_t lease_ms; /* claim and renew: the lease of an op that sets none (each job's sets its
                       * own: iw_target_lease_grant_ms) */
    job **js;
    iw_ledger_op *ops;
} lbatch;

static lbatch *lbatch_new(iw_pipeline *p, enum lkind kind, size_t cap)
{
    lbatch *b = calloc(1, sizeof(*b) + cap * (sizeof(job *) + sizeof(iw_ledger_op)));
    if (!b)
        return NULL;
    b->p = p;
    b->kind = kind;
    b->lease_ms = p->cfg->lease_ms;
    b->ops = (iw_ledger_op *)(b + 1);
    b->js = (job **)(b->ops + cap);
    return b;
}

static void fill_op(const job *j, iw_ledger_op *op)
{
    const iw_event *ev = j->m->ev;
    memset(op, 0, sizeof(*op));
    op->tenant = ev->tenant;
    op->invoice_id = ev->invoice.id;
    op->event_id = ev->event_id;
    op->target = j->target;
    op->version = ev->version;
    op->peek = j->peek;
    /* a stale verdict is asked as a refusal too: whether a newer version was applied or
     * claimed there, since the newer one its lane holds may claim nothing */
    op->refused = j->peek && (j->verdict == IW_RES_REJECTED || j->verdict == IW_RES_STALE);
}

/*
 * j, refused by its target's rules, was superseded by a newer version waiting in its lane. That
 * one may claim nothing (its event_id reused: upstream gave it to another version there), and
 * then j was the newest version and its refusal must be said (rejected, with its dead letter).
 * So the ledger is asked, as a refusal, naming the one newer version the lane holds now as j's
 * superseder: the one waiting, or the one first in the lane when it moved up since (its claim
 * goes after j's question). j stays superseded, asking only whether it succeeded here, when the
 * lane holds two newer versions that may each be sent (a newer shadow, or one first and one
 * waiting), or none (the newer one left with its partition: its new owner decides). The
 * superseder's event_id is copied into j: the ledger may build the question again (a script
 * reloaded) after that version's message is gone.
 */
static void ask_superseder(iw_pipeline *p, job *j, iw_ledger_op *op)
{
    void *in, *wait, *shadow;
    iw_lanes_peek(p->lanes, j->lane_key, &in, &wait, &shadow);
    const job *f = in, *w = wait, *s = shadow;
    int64_t v = j->m->ev->version;
    bool fn = f && f->m->ev->version >= v, wn = w && w->m->ev->version >= v;
    const job *n = fn != wn && !(s && s->m->ev->version >= v) ? (wn ? w : f) : NULL;
    free(j->superseder);
    j->superseder = n ? strdup(n->m->ev->event_id) : NULL;
    if (!j->superseder)
        return; /* superseded, as the lane said (or out of memory) */
    op->refused = true;
    op->superseder = j->superseder;
    op->superseder_version = n->m->ev->version;
}

static void lbatch_add(lbatch *b, job *j)
{
    fill_op(j, &b->ops[b->n]);
    if (b->kind == LB_CLAIM && j->peek && j->refused && j->verdict == IW_RES_SUPERSEDED)
        ask_superseder(b->p, j, &b->ops[b->n]);
    if ((b->kind == LB_CLAIM || b->kind == LB_RENEW) && j->tc)
        b->ops[b->n].lease_ms = iw_target_lease_grant_ms(b->p->cfg, j->tc);
    if (b->kind == LB_CLAIM) { /* a duplicate's result carries the reference its success had */
        b->ops[b->n].ref_out = j->target_ref;
        b->ops[b->n].ref_cap = sizeof(j->target_ref);
    }
    b->js[b->n++] = j;
}

/* The lease the ledger granted op i of claim or renew batch b. */
static int64_t op_lease_ms(const lbatch *b, size_t i)
{
    return b->ops[i].lease_ms > 0 ? b->ops[i].lease_ms : b->lease_ms;
}

/* A message stays alive while its jobs are open or a batch refers to it. */
static void msg_unref(iw_pipeline *p, msg *m)
{
    m->we.open--;
    if (m->we.open != 0)
        return;
    /* Every job of m is over: its jobs, its parsed event and its value go now. Only its offset
     * may have to wait for an earlier message of its partition, which can take minutes behind a
     * slow target; its value no longer counts against max_pending_bytes meanwhile, so finished
     * messages waiting there cannot pause every partition. */
    msg_free_jobs(m);
    msg_drop_body(m);
    if (m->tracked)
        advance_partition(p, m->partition);
    /* untracked (revoked) messages are freed by sweep_orphans */
}

static void ledger_backoff(iw_pipeline *p)
{
    int64_t b = p->ledger_backoff_ms ? p->ledger_backoff_ms * 2 : 250;
    p->ledger_backoff_ms = b > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : b;
    p->ledger_retry_at = mono_ms() + p->ledger_backoff_ms;
}

/* One Redis failure: a failed batch, a dropped connection, or a connection attempt that
 * failed (each retry of a Redis down from the start or for a while counts, at most one per
 * backoff step, so rate(iw_ledger_errors_total) shows an outage while it lasts). */
static void count_ledger_error(iw_pipeline *p)
{
    p->stats.ledger_errors++;
    iw_counter_add(p->gm.ledger_errors, 1);
}

static void ledger_failed(iw_pipeline *p, const char *what)
{
    count_ledger_error(p);
    if (p->ledger_ok)
        iw_log(IW_LOG_ERROR, "redis unreachable; pausing consumption", "during", what, "error",
               iw_aledger_why(p->aledger), NULL);
    if (p->ledger_ok || !p->ledger_retry_at || p->ledger_retry_at <= mono_ms())
        ledger_backoff(p);
    p->ledger_ok = false;
}

/* The connection came up (scripts loaded) or went down. */
static void ledger_state(void *arg, bool up, const char *why)
{
    iw_pipeline *p = arg;
    p->ledger_connecting = false;
    if (up) {
        iw_log(IW_LOG_INFO, p->ledger_was_up ? "redis reachable again; resuming" : "redis connected",
               NULL);
        p->ledger_ok = p->ledger_was_up = true;
        p->ledger_backoff_ms = 0;
        return;
    }
    if (p->ledger_ok) {
        ledger_failed(p, "connection");
        return;
    }
    if (!p->ledger_was_up && p->ledger_backoff_ms == 0)
        iw_log(IW_LOG_ERROR, "redis unreachable at start; will retry", "error", why, NULL);
    count_ledger_error(p);
    ledger_backoff(p);
}

static void ledger_health(iw_pipeline *p)
{
    if (p->ledger_ok || p->ledger_connecting || mono_ms() < p->ledger_retry_at)
        return;
    if (iw_aledger_connect(p->aledger) == 0) {
        p->ledger_connecting = !iw_aledger_up(p->aledger);
        return;
    }
    if (!p->ledger_was_up && p->ledger_backoff_ms == 0)
        iw_log(IW_LOG_ERROR, "redis unreachable at start; will retry", "error",
               iw_aledger_why(p->aledger), NULL);
    count_ledger_error(p);
    ledger_backoff(p);
}

static void count_fence_lost(iw_pipeline *p)
{
    p->stats.fence_lost++;
    iw_counter_add(p->gm.fence_lost, 1);
}

static void lane_release(iw_pipeline *p, job *j);

/* Copies of one event (a redelivery): the same event_id and version. One id on two versions is
 * upstream's mistake, which the ledger names when the second claims or is asked about
 * (IW_CLAIM_REUSED). */
static bool same_event(const job *a, const job *b)
{
    return a && b && a->m->ev->version == b->m->ev->version &&
           strcmp(a->m->ev->event_id, b->m->ev->event_id) == 0;
}

/* True when j's lane holds a copy of j's event: in flight, waiting or among the shadows. */
static bool lane_holds_copy(const iw_pipeline *p, const job *j, const job *in, const job *wait)
{
    if (!in) /* an idle lane holds nothing */
        return false;
    if (same_event(in, j) || same_event(wait, j))
        return true;
    void *s[IW_LANE_SHADOWS];
    size_t n = iw_lanes_shadows(p->lanes, j->lane_key, s);
    for (size_t i = 0; i < n; i++)
        if (same_event(s[i], j))
            return true;
    return false;
}

/* j is never sent: its lane holds a newer or the same version (verdict: stale or superseded),
 * and it needs no ledger write (the newer one raises the claimed version when it claims). But
 * a redelivery of an event that was sent and succeeded (a rebalance, a restart before the
 * commit) must not get a later result saying "never sent" of what the target has: the ledger
 * is asked first, through the claim batch, whether the event succeeded here (then duplicate,
 * as a claim answers it); and a stale one whose event_id names another version there is
 * rejected by name, as its claim would be (peek_status). */
static void lane_verdict_after_ledger(iw_pipeline *p, job *j, iw_result_status verdict)
{
    j->peek = true;
    j->verdict = verdict;
    job_to(p, j, IW_JEV_FIRST);
    q_push(&p->claim_q, j);
}

static void supersede(iw_pipeline *p, job *j)
{
    lane_verdict_after_ledger(p, j, IW_RES_SUPERSEDED);
}

/* The verdict for a version its target's rules refuse: the lane's own when the lane would not
 * have sent it either (a copy of an event in the lane is a duplicate, a version no newer than
 * the one in flight stale, than the one waiting superseded), else rejected. */
static iw_result_status lane_verdict(iw_pipeline *p, const job *j)
{
    void *in, *wait;
    iw_lanes_peek(p->lanes, j->lane_key, &in, &wait, NULL);
    const job *f = in, *w = wait;
    if (lane_holds_copy(p, j, f, w))
        return IW_RES_DUPLICATE;
    if (f && f->m->ev->version >= j->m->ev->version)
        return IW_RES_STALE;
    if (w && w->m->ev->version >= j->m->ev->version)
        return IW_RES_SUPERSEDED;
    return IW_RES_REJECTED;
}

/* True when j, offered to its lane, would wait there (iw_lanes_offer's IW_LANE_WAIT): behind
 * a version in flight, the one waiting if any becoming a shadow; or be held as one of the lane's
 * shadows (IW_LANE_SHADOW), sent if the versions newer than it claim nothing. Either may
 * displace the oldest shadow (superseded: never sent). Its request is then made first, since
 * one that cannot be made must displace nothing: the rules a render applies beyond the
 * adapter's validate (the characters XML 1.0 cannot carry, what may not become a header)
 * would otherwise refuse it only after the versions it displaced were gone, leaving the target
 * at an older one. A lane is empty for most events, which are sent at once and rendered once. */
static bool would_wait(iw_pipeline *p, const job *j)
{
    iw_lane_verdict v = iw_lanes_verdict(p->lanes, j->lane_key, j->m->ev->version);
    if (v != IW_LANE_WAIT && v != IW_LANE_SHADOW)
        return false; /* the common case, an idle lane: one lookup */
    void *in, *wait;
    iw_lanes_peek(p->lanes, j->lane_key, &in, &wait, NULL);
    return !lane_holds_copy(p, j, in, wait);
}

static void offer_to_lane(iw_pipeline *p, job *j)
{
    /* A redelivery of the event already first or waiting in this lane: it is a duplicate,
     * and the first copy goes on. But when the first copy's partition was revoked (a
     * rebalance gave it back to us), that copy may end without a recorded outcome (a lost
     * fence drops it): this one then waits behind it and asks the ledger. */
    void *in, *wait;
    iw_lanes_peek(p->lanes, j->lane_key, &in, &wait, NULL);
    if (same_event(in, j) && !((job *)in)->m->tracked &&
        iw_lanes_wait_behind(p->lanes, j->lane_key, j->m->ev->version, j)) {
        job_to(p, j, IW_JEV_WAIT);
        return;
    }
    if (lane_holds_copy(p, j, in, wait)) {
        set_result(j, IW_RES_DUPLICATE, IW_ERR_NONE, NULL, NULL);
        publish(p, j);
        return;
    }
    void *displaced = NULL;
    int v = iw_lanes_offer(p->lanes, j->lane_key, j->m->ev->version, j, &displaced);
    if (v == IW_LANE_SEND) {
        j->in_lane = true;
        job_to(p, j, IW_JEV_FIRST);
        q_push(&p->claim_q, j);
    } else if (v == IW_LANE_WAIT || v == IW_LANE_SHADOW) { /* a shadow waits for a claim */
        job_to(p, j, IW_JEV_WAIT);
    } else if (v == IW_LANE_SUPERSEDED) {
        supersede(p, j);
    } else if (v == IW_LANE_STALE) { /* as the ledger would answer it: never sent */
        lane_verdict_after_ledger(p, j, IW_RES_STALE);
    } else {
        p->fatal = true; /* out of memory */
    }
    if (displaced)
        supersede(p, displaced);
}

/* Offers j (NEW) to its lane unless its target's rules refuse it first (iw_dispatch_validate:
 * the adapter's validate, and the request made as well where only the render could refuse it
 * too late, see route). A refused version gets its lane's verdict where the lane would not have
 * sent it either, else rejected. */
static void validate_and_offer(iw_pipeline *p, job *j)
{
    const iw_event *ev = j->m->ev;
    char why[sizeof(j->error_msg)];
    j->refused = false;
    if (iw_dispatch_validate(p->dispatch, j->tc, ev, j->m->traceparent,
                             ev->xml_unsafe || would_wait(p, j), why, sizeof(why)) == 0) {
        offer_to_lane(p, j);
        return;
    }
    j->refused = true;
    iw_result_status st = lane_verdict(p, j);
    if (st == IW_RES_DUPLICATE) {
        set_result(j, st, IW_ERR_NONE, NULL, NULL);
        publish(p, j);
        return;
    }
    /* refused (the result that says why, kept when the answer is rejected), unless the ledger
     * knows a newer version there (then stale, and no dead letter: a letter of it replayed once
     * the ledger has forgotten that version (redis.ledger_ttl_s) would overwrite it, and
     * replay's age limit covers only letters written while the ledger knew of every newer one),
     * or the lane's stale or superseded holds (claims_done, ask_superseder) */
    set_result(j, IW_RES_REJECTED, IW_ERR_VALIDATION, "validation", why);
    lane_verdict_after_ledger(p, j, st);
}

/* Puts j, first in its lane, back to claiming its fence (it was lost before j was done);
 * resend: its next call is sent at least once, whatever the retry limits (a call of it had
 * ended, the write of its outcome found the fence lost, and no attempt has been made since). */
static void reclaim(iw_pipeline *p, job *j, bool resend)
{
    j->resend = resend;
    j->leased = false;
    j->lease_until = 0;
    j->status = IW_RES_SUCCEEDED;
    j->error_kind = IW_ERR_NONE;
    j->error_code[0] = j->error_msg[0] = j->target_ref[0] = '\0';
    j->finished_ms = 0; /* its attempts, their first and the last reply's status carry on */
    job_to(p, j, IW_JEV_FENCE_LOST);
    q_push(&p->claim_q, j);
}

/* Puts the jobs of a failed batch back at the front of q, in their order. */
static void q_prepend(jobq *q, job **js, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        js[i]->qnext = q->head;
        q->head = js[i];
        if (!q->tail)
            q->tail = js[i];
        q->n++;
    }
}

static void ledger_done(void *arg, int rc);

/* Sends b; on an immediate failure its jobs go back (ledger_done with the error). */
static void lbatch_send(iw_pipeline *p, lbatch *b)
{
    p->inflight[b->kind] = b;
    b->sent_ms = mono_ms();
    int rc;
    switch (b->kind) {
    case LB_CLAIM:
        rc = iw_aledger_claim(p->aledger, b->ops, b->n, p->owner, b->lease_ms, ledger_done, b);
        break;
    case LB_COMPLETE:
        rc = iw_aledger_complete(p->aledger, b->ops, b->n, p->owner, ledger_done, b);
        break;
    case LB_RELEASE:
        rc = iw_aledger_release(p->aledger, b->ops, b->n, p->owner, ledger_done, b);
        break;
    default:
        rc = iw_aledger_renew(p->aledger, b->ops, b->n, p->owner, b->lease_ms, ledger_done, b);
        break;
    }
    if (rc)
        ledger_done(b, rc);
}

/* Inserts j into q, kept in due_ms order: most waits are equal, so append is nearly always
 * right. */
static void q_insert_due(jobq *q, job *j)
{
    if (!q->tail || q->tail->due_ms <= j->due_ms) {
        q_push(q, j);
        return;
    }
    job **pp = &q->head;
    while ((*pp)->due_ms <= j->due_ms)
        pp = &(*pp)->qnext;
    j->qnext = *pp;
    *pp = j;
    q->n++;
}

static void insert_busy(iw_pipeline *p, job *j)
{
    int64_t wait = iw_backoff_busy_ms(j->busy_tries, p->cfg->lease_ms);
    if (j->busy_tries < INT_MAX)
        j->busy_tries++;
    j->due_ms = mono_ms() + wait;
    job_to(p, j, IW_JEV_BUSY);
    q_insert_due(&p->busy_q, j);
}

/* Queues j (COMPLETE or RELEASE) for its ledger write, which frees its fence. While an attempt
 * of its that got no answer may still be applied by the target, it waits in settle_q first,
 * its fence renewed: a newer version sent meanwhile could be overwritten by the late one. */
static jobq *write_q(iw_pipeline *p, const job *j)
{
    return j->state == IW_JOB_COMPLETE ? &p->complete_q : &p->release_q;
}

static void queue_write(iw_pipeline *p, job *j)
{
    if (j->leased && j->settle_until && j->settle_until > mono_ms()) {
        j->due_ms = j->settle_until;
        q_insert_due(&p->settle_q, j);
        return;
    }
    q_push(write_q(p, j), j);
}

/* Jobs whose unanswered attempts have settled go on to their ledger write. */
static void run_settled(iw_pipeline *p)
{
    int64_t now = mono_ms();
    while (p->settle_q.head && p->settle_q.head->due_ms <= now) {
        job *j = q_pop(&p->settle_q);
        q_push(write_q(p, j), j);
    }
}

static void run_claims(iw_pipeline *p)
{
    int64_t now = mono_ms();
    /* BUSY jobs whose wait is over go back to claiming (busy_q is in due order) */
    while (p->busy_q.head && p->busy_q.head->due_ms <= now) {
        job *j = q_pop(&p->busy_q);
        job_to(p, j, IW_JEV_BUSY_OVER);
        q_push(&p->claim_q, j);
    }
    if (!p->ledger_ok || !p->claim_q.n || p->inflight[LB_CLAIM])
        return;
    size_t n = p->claim_q.n < LEDGER_BATCH ? p->claim_q.n : LEDGER_BATCH;
    lbatch *b = lbatch_new(p, LB_CLAIM, n);
    if (!b)
        return;
    for (size_t i = 0; i < n; i++) {
        job *j = q_pop(&p->claim_q);
        job_to(p, j, IW_JEV_CLAIM_SENT);
        lbatch_add(b, j);
    }
    lbatch_send(p, b);
}

/* Nothing more is sent for j (revoke, stop): a fence it holds is given back, else it is
 * dropped and its lane moves on. */
static void abandon_job(iw_pipeline *p, job *j)
{
    if (j->leased) {
        job_to(p, j, IW_JEV_GIVE_BACK);
        queue_write(p, j);
    } else {
        lane_release(p, j);
        job_terminal(p, j, IW_JEV_DROP);
    }
}

/* Times a job's stale verdict may be found not to hold before it is published stale anyway:
 * each time, the version its lane held was refused by the ledger and left the lane. */
#define MAX_REOFFERS 8

/*
 * j's lane called it stale: the version first in the lane was as new or newer. That version
 * claimed the ledger before j was asked (claims are answered in order, and even a busy claim
 * raises the claimed version), so the ledger answers stale too; unless it claimed nothing: an
 * upstream that gave its event_id to another version of the invoice gets it rejected
 * (event-id-reused). Nothing newer is then applied or claimed, and j, published stale, would
 * leave the target at the version before both. It is offered to its lane again instead, as a
 * new version is: sent when the lane is empty now, stale behind the lane's next version (asked
 * again), or waiting behind an older version offered again before it (its request made first,
 * as a waiting version's is). A version its target's rules refuse is checked again the same
 * way, and so gets the result it would have got with the newer one gone: rejected, with its
 * reason and dead letter, unless the lane or the ledger still holds something newer. True when
 * j was offered again.
 */
static bool reoffer_stale(iw_pipeline *p, job *j, int answer)
{
    if (j->verdict != IW_RES_STALE || answer != IW_CLAIM_CLAIMED || j->reoffers >= MAX_REOFFERS)
        return false;
    j->reoffers++;
    j->peek = false;
    j->finished_ms = 0; /* a refusal's result was set when it was first refused */
    job_to(p, j, IW_JEV_REOFFER);
    validate_and_offer(p, j);
    return true;
}

/* What the ledger's answer to j's question (lane_verdict_after_ledger) makes of its lane's
 * verdict: a duplicate when the event succeeded here; rejected when a stale one's event_id
 * names another version there (event-id-reused, as its claim would be answered with its lane
 * empty: the ledger's REUSED comes before its STALE); for a refused version asked as one
 * (refused: fill_op, ask_superseder), stale when a newer version was applied or claimed there,
 * superseded when its superseder may claim, else rejected. A superseded version keeps its
 * verdict whatever its own event_id names: the newer one is sent in its place. */
static iw_result_status peek_status(const job *j, int answer, bool refused)
{
    if (answer == IW_CLAIM_DUPLICATE)
        return IW_RES_DUPLICATE;
    if (j->verdict == IW_RES_STALE && answer == IW_CLAIM_REUSED)
        return IW_RES_REJECTED;
    if (j->verdict == IW_RES_REJECTED || (j->verdict == IW_RES_SUPERSEDED && refused))
        return answer == IW_CLAIM_STALE        ? IW_RES_STALE
               : answer == IW_CLAIM_SUPERSEDED ? IW_RES_SUPERSEDED
                                               : IW_RES_REJECTED;
    return j->verdict;
}

/* j, first in its lane, had its claim answered with anything but event-id-reused: the ledger's
 * claimed version is at least j's now, so the lane's shadows (versions a waiting one superseded)
 * are superseded after all, but for those newer than j. */
static void settle_shadows(iw_pipeline *p, const job *j)
{
    job *s;
    while (j->in_lane && (s = iw_lanes_claimed(p->lanes, j->lane_key, j->m->ev->version)))
        supersede(p, s);
}

/* j's event_id names another version of its invoice at j's target (the ledger answered
 * event-id-reused): rejected, with its dead letter. */
static void reject_reused(job *j)
{
    char why[sizeof(j->error_msg)];
    snprintf(why, sizeof(why),
             "event_id \"%.*s\" already names another version of this invoice at this "
             "target: an event_id names one event, so this one is not sent",
             iw_text_utf8_prec(j->m->ev->event_id, 128), j->m->ev->event_id);
    set_result(j, IW_RES_REJECTED, IW_ERR_VALIDATION, "event-id-reused", why);
}

static void claims_done(iw_pipeline *p, lbatch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        job *j = b->js[i];
        int answer = b->ops[i].answer;
        if (answer == IW_CLAIM_CLAIMED && !j->peek) {
            j->leased = true;
            j->lease_until = b->sent_ms + op_lease_ms(b, i);
            j->busy_tries = 0;
            /* an earlier owner (another worker, or this one before a lost lease) claimed this
             * event and left no outcome: what it sent may have been applied */
            j->maybe_applied |= b->ops[i].in_doubt;
        }
        if (!j->m->tracked || p->stopping) {
            abandon_job(p, j); /* revoked (or stopping) while the claim was out */
            continue;
        }
        if (j->peek && reoffer_stale(p, j, answer))
            continue;
        if (j->peek) { /* the lane's verdict, unless the event succeeded here */
            iw_result_status st = peek_status(j, answer, b->ops[i].refused);
            if (st != IW_RES_REJECTED)
                set_result(j, st, IW_ERR_NONE, NULL, NULL);
            else if (!j->refused) /* stale, its event_id reused */
                reject_reused(j);
            /* else a refusal keeps the result that says why */
            publish(p, j);
            continue;
        }
        if (answer != IW_CLAIM_REUSED)
            settle_shadows(p, j);
        switch (answer) {
        case IW_CLAIM_CLAIMED:
            job_to(p, j, IW_JEV_CLAIMED);
            q_push(&p->ready_q, j);
            break;
        case IW_CLAIM_REUSED:
            reject_reused(j);
            lane_release(p, j);
            publish(p, j);
            break;
        case IW_CLAIM_DUPLICATE:
        case IW_CLAIM_STALE:
            set_result(j, answer == IW_CLAIM_STALE ? IW_RES_STALE : IW_RES_DUPLICATE, IW_ERR_NONE,
                       NULL, NULL);
            lane_release(p, j);
            publish(p, j);
            break;
        default: /* BUSY: another owner is on it; look again later */
            insert_busy(p, j);
            break;
        }
    }
}

/* Frees a job's lane slot; the lane's next waiting job claims the fence next. */
static void lane_release(iw_pipeline *p, job *j)
{
    if (!j->in_lane)
        return;
    j->in_lane = false;
    job *next = iw_lanes_done(p->lanes, j->lane_key);
    if (next) {
        if (same_event(j, next)) /* a redelivery of j (a revoke gave it back): what j sent */
            next->maybe_applied |= j->maybe_applied;
        next->in_lane = true;
        job_to(p, next, IW_JEV_FIRST);
        q_push(&p->claim_q, next);
    }
}

/* j's outcome is recorded (complete) or its fence freed (release, abandoning); lost: the fence
 * was no longer ours. An outcome whose fence was lost is not reported: the job claims again,
 * or is dropped when its partition is gone (or we are stopping) and replays elsewhere. */
static void write_done(iw_pipeline *p, job *j, bool abandoning, bool lost)
{
    j->leased = false;
    if (abandoning) {
        lane_release(p, j);
        job_terminal(p, j, IW_JEV_DROP);
        return;
    }
    if (lost) {
        count_fence_lost(p);
        iw_log(IW_LOG_WARN, "fence lost before completion; outcome not reported", "event_id",
               j->m->ev->event_id, "target", j->target, "outcome", STATUS_NAMES[j->status], NULL);
        if (j->m->tracked && !p->stopping) {
            reclaim(p, j, true);
        } else {
            lane_release(p, j);
            job_terminal(p, j, IW_JEV_DROP);
        }
        return;
    }
    lane_release(p, j);
    publish(p, j);
}

/* Sends one batch of ledger writes: complete_q records outcomes (complete), then publishes
 * them; release_q frees the fences of abandoned jobs, which are then dropped. */
static void run_ledger_writes(iw_pipeline *p, enum lkind kind)
{
    jobq *q = kind == LB_COMPLETE ? &p->complete_q : &p->release_q;
    if (!p->ledger_ok || !q->n || p->inflight[kind])
        return;
    size_t n = q->n < LEDGER_BATCH ? q->n : LEDGER_BATCH;
    lbatch *b = lbatch_new(p, kind, n);
    if (!b)
        return;
    for (size_t i = 0; i < n; i++) {
        job *j = q_pop(q);
        if (!j->leased) { /* never claimed: nothing in the ledger */
            write_done(p, j, kind == LB_RELEASE, false);
            continue;
        }
        job_to(p, j, IW_JEV_WRITE_SENT);
        lbatch_add(b, j);
        iw_ledger_op *op = &b->ops[b->n - 1];
        op->status = STATUS_NAMES[j->status];
        op->target_ref = j->target_ref[0] ? j->target_ref : NULL;
        op->may_be_applied = j->maybe_applied; /* the event stays in doubt (unless succeeded) */
    }
    if (b->n)
        lbatch_send(p, b);
    else
        free(b);
}

static void writes_done(iw_pipeline *p, lbatch *b)
{
    for (size_t i = 0; i < b->n; i++)
        write_done(p, b->js[i], b->kind == LB_RELEASE, b->ops[i].answer == IW_LEDGER_LOST);
}

/* Adds the fence renewal of every leased job of the messages in list m to b (grown as
 * needed); each holds a reference on its message until the answer. */
static int collect_leased(msg *m, lbatch **b, size_t *cap)
{
    for (; m; m = msg_of(m->we.next)) {
        for (size_t k = 0; k < m->n_jobs; k++) {
            job *j = &m->jobs[k];
            if (!j->leased || (j->state != IW_JOB_READY && j->state != IW_JOB_CALLING &&
                               j->state != IW_JOB_COMPLETE && j->state != IW_JOB_COMPLETING &&
                               j->state != IW_JOB_RELEASE))
                continue;
            if ((*b)->n == *cap) {
                lbatch *nb = lbatch_new((*b)->p, LB_RENEW, *cap * 2);
                if (!nb)
                    return IW_ENOMEM;
                for (size_t i = 0; i < (*b)->n; i++)
                    lbatch_add(nb, (*b)->js[i]);
                free(*b);
                *b = nb;
                *cap *= 2;
            }
            lbatch_add(*b, j);
            m->we.open++;
        }
    }
    return 0;
}

/* Renews the fence of every job that holds one (assigned and revoked partitions alike), per
 * key: a job whose fence is gone gets no further attempt (its call is cancelled, or the
 * dispatcher's lease guard stops it) and is not reported done. */
static void renew_leases(iw_pipeline *p)
{
    int64_t now = mono_ms();
    if (!p->ledger_ok || p->inflight[LB_RENEW] || now - p->last_renew_ms < p->renew_every_ms)
        return;
    p->last_renew_ms = now;
    size_t cap = 256;
    lbatch *b = lbatch_new(p, LB_RENEW, cap);
    if (!b)
        return;
    int rc = 0;
    for (int32_t i = 0; i < p->n_parts && rc == 0; i++)
        rc = collect_leased(msg_of(p->parts[i].win.head), &b, &cap);
    if (rc == 0)
        collect_leased(p->orphans, &b, &cap);
    /* out of memory: renew what was collected; the rest stop at the lease guard */
    if (b->n)
        lbatch_send(p, b);
    else
        free(b);
}

static void renews_done(iw_pipeline *p, lbatch *b, bool ok)
{
    for (size_t i = 0; i < b->n; i++) {
        job *j = b->js[i];
        if (ok && b->ops[i].answer != IW_LEDGER_LOST) {
            j->lease_until = b->sent_ms + op_lease_ms(b, i);
        } else if (ok) {
            j->lease_until = 0; /* no attempt may start on it */
            if (j->state == IW_JOB_CALLING)
                iw_dispatch_cancel(p->dispatch, j); /* may call call_done from here */
        }
        msg_unref(p, j->m);
    }
}

/* A batch's answer (or failure). */
static void ledger_done(void *arg, int rc)
{
    lbatch *b = arg;
    iw_pipeline *p = b->p;
    p->inflight[b->kind] = NULL;
    if (p->freeing) {
        free(b);
        return;
    }
    if (rc == 0) {
        switch (b->kind) {
        case LB_CLAIM: claims_done(p, b); break;
        case LB_RENEW: renews_done(p, b, true); break;
        default: writes_done(p, b); break;
        }
        free(b);
        return;
    }
    if (rc == IW_EIO || rc == IW_ENOMEM) {
        ledger_failed(p, LKIND_NAMES[b->kind]);
    } else {
        /* the ledger refused our own input: a bug, not an outage; stop and get restarted */
        iw_log(IW_LOG_ERROR, "ledger refused a call; stopping", "call", LKIND_NAMES[b->kind],
               "error", iw_status_str(rc), NULL);
        p->fatal = true;
    }
    switch (b->kind) {
    case LB_CLAIM:
        for (size_t i = b->n; i-- > 0;) {
            job *j = b->js[i];
            if (j->m->tracked && !p->stopping) {
                job_to(p, j, IW_JEV_LEDGER_FAILED);
                q_prepend(&p->claim_q, &b->js[i], 1);
            } else {
                lane_release(p, j);
                job_terminal(p, j, IW_JEV_DROP);
            }
        }
        break;
    case LB_COMPLETE:
    case LB_RELEASE:
        for (size_t i = 0; i < b->n; i++)
            job_to(p, b->js[i], IW_JEV_LEDGER_FAILED);
        q_prepend(b->kind == LB_COMPLETE ? &p->complete_q : &p->release_q, b->js, b->n);
        break;
    default: renews_done(p, b, false); break;
    }
    free(b);
}

/* ---- calls ---- */

static void call_done(void *arg, const iw_call_result *res)
{
    job *j = arg;
    iw_pipeline *p = j->m->p;
    bool own = res->attempts > j->attempts; /* it made an attempt of its own */
    if (own)                                /* the status of the last (0: no reply) */
        j->http_status = res->http_status;
    j->attempts = res->attempts; /* the earlier calls' given with submit included */
    if (!j->first_attempt_ms) {
        j->first_attempt_ms = res->first_attempt_at_ms;
        j->first_attempt_mono = res->first_attempt_mono;
    }
    j->finished_ms = res->finished_at_ms ? res->finished_at_ms : wall_ms();
    if (res->settle_until_ms > j->settle_until)
        j->settle_until = res->settle_until_ms;
    j->maybe_applied |= res->maybe_applied || (res->abandoned && res->on_wire);
    if (res->abandoned) {
        /* On an assigned partition while running, only a lost or expiring fence abandons a
         * call: claim it again. Otherwise (revoke, shutdown) give the fence back. */
        if (j->m->tracked && !p->stopping) {
            count_fence_lost(p);
            reclaim(p, j, j->resend && !own); /* a resend not yet sent is still one */
            return;
        }
        if (res->on_wire) {
            /* cut off on the wire (grace period over): the target may still apply it, so the
             * fence is kept until its lease runs out; the event replays elsewhere after that */
            j->leased = false;
            lane_release(p, j);
            job_terminal(p, j, IW_JEV_DROP);
            return;
        }
        job_to(p, j, IW_JEV_GIVE_BACK);
        queue_write(p, j);
        return;
    }
    const iw_outcome *o = &res->outcome;
    if (o->kind == IW_OUTCOME_OK) {
        snprintf(j->target_ref, sizeof(j->target_ref), "%s", o->target_ref);
        set_result(j, IW_RES_SUCCEEDED, IW_ERR_NONE, NULL, NULL);
    } else if (res->rejected) {
        set_result(j, IW_RES_REJECTED, IW_ERR_VALIDATION, o->code, o->message);
    } else {
        set_result(j, IW_RES_FAILED, o->error_kind ? o->error_kind : IW_ERR_REMOTE, o->code,
                   o->message);
    }
    job_to(p, j, IW_JEV_FINISHED);
    queue_write(p, j);
}

/* A target whose breaker is open keeps its calls waiting in the dispatcher, and its later jobs
 * queue behind them. Enough of them take all of max_in_flight or all the room, and then the
 * other targets' work waits too: a dead target would slow the others (DESIGN.md 7). So while
 * the worker has work it cannot start for want of dispatcher capacity or room, the waiting
 * calls of targets down for breaker.shed_after_s (open, no probe succeeded; breaker.shed on)
 * end now, failed with kind unavailable: their results and dead letters go out, and `replay
 * --kind unavailable` sends them again once the target is back. A shorter outage only makes
 * them wait. At most every SHED_EVERY_MS. */
#define SHED_EVERY_MS 100
static void shed_waiting(iw_pipeline *p)
{
    /* calls waiting behind open breakers take the room; results waiting for Kafka do not */
    bool starved = (p->full_since_ms && !p->publish_q.n) ||
                   (p->ready_q.n && !iw_dispatch_has_capacity(p->dispatch));
    if (!starved || p->stopping || p->fatal)
        return;
    int64_t now = mono_ms();
    if (now - p->last_shed_ms < SHED_EVERY_MS)
        return;
    p->last_shed_ms = now;
    size_t n = iw_dispatch_shed(p->dispatch); /* their call_done runs from here */
    if (n) {
        char num[IW_TEXT_I64_LEN];
        iw_text_i64(num, (int64_t)n);
        iw_log(IW_LOG_WARN,
               "no room: failing the waiting calls of targets whose circuit breaker is open",
               "calls", num, "error_kind", "unavailable", NULL);
    }
}

static void submit_ready(iw_pipeline *p)
{
    bool sent = false;
    while (p->ready_q.n && iw_dispatch_has_capacity(p->dispatch)) {
        job *j = q_pop(&p->ready_q);
        if (p->stopping) { /* no new calls while draining: give the lease back */
            job_to(p, j, IW_JEV_GIVE_BACK);
            queue_write(p, j);
            continue;
        }
        job_to(p, j, IW_JEV_SUBMITTED);
        sent = true;
        const iw_call_prior prior = {.maybe_applied = j->maybe_applied,
                                     .resend = j->resend,
                                     .attempts = j->attempts,
                                     .first_attempt_mono = j->first_attempt_mono,
                                     .first_attempt_at_ms = j->first_attempt_ms};
        if (iw_dispatch_submit_fenced(p->dispatch, j->tc, j->m->ev, j->m->traceparent,
                                      &j->lease_until, &prior, call_done, j) != 0) {
            set_result(j, IW_RES_REJECTED, IW_ERR_VALIDATION, NULL,
                       "no adapter for this target type");
            job_to(p, j, IW_JEV_FINISHED);
            queue_write(p, j); /* a reclaimed job may have an earlier unanswered attempt */
        }
    }
    if (sent)
        iw_dispatch_flush(p->dispatch); /* what was submitted goes on the wire in this turn */
}

/* ---- consuming ---- */

/* How many headers of the message are called name (2 means two or more). */
static int header_copies(const rd_kafka_headers_t *h, const char *name)
{
    const void *v;
    size_t sz;
    int n = 0;
    while (n < 2 && rd_kafka_header_get(h, (size_t)n, name, &v, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR)
        n++;
    return n;
}

/* The message's replay target header: *only is a copy of a valid name (or NULL when there is no
 * such header); the return is NULL or what is wrong with the value, which makes the message
 * poison. A header with no value, an empty one, or one with a NUL byte (which a C string would
 * cut short, to another name) names no target; two of them are two answers to one question,
 * and taking either would leave the other target without a result or a word. */
static const char *replay_target(rd_kafka_message_t *km, char **only)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t sz = 0;
    *only = NULL;
    if (rd_kafka_message_headers(km, &h) || !h ||
        rd_kafka_header_get_last(h, REPLAY_TARGET_HEADER, &v, &sz))
        return NULL;
    if (header_copies(h, REPLAY_TARGET_HEADER) > 1)
        return "appears more than once (a replay names one target)";
    if (!v || !sz)
        return "is empty";
    if (sz > IW_EVENT_MAX_NAME_BYTES)
        return "is longer than 1024 bytes";
    if (memchr(v, '\0', sz))
        return "contains a NUL byte";
    *only = strndup(v, sz);
    if (!*only)
        return "could not be copied (out of memory)";
    const char *bad = iw_text_name_problem(*only);
    if (bad) {
        free(*only);
        *only = NULL;
    }
    return bad;
}

/* The message's traceparent when it is a valid W3C value; an invalid one is dropped and counted
 * (it would become a request header), and so are two of them: which one is the trace is not
 * known (W3C Trace Context: a header that cannot be parsed as one value is invalid). */
static char *traceparent_of(iw_pipeline *p, rd_kafka_message_t *km)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t sz = 0;
    if (rd_kafka_message_headers(km, &h) || !h ||
        rd_kafka_header_get_last(h, "traceparent", &v, &sz))
        return NULL;
    if (v && header_copies(h, "traceparent") == 1 && iw_text_traceparent_valid(v, sz))
        return strndup(v, sz);
    iw_counter_add(p->gm.traceparent_invalid, 1);
    return NULL;
}

/* The message's ORIGIN_HEADER when it is "<topic>:<partition>:<offset>" (a Kafka topic name,
 * two whole numbers), else NULL: it goes into a dead letter header, so nothing else may. */
static char *origin_of(rd_kafka_message_t *km)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t sz = 0;
    if (rd_kafka_message_headers(km, &h) || !h ||
        rd_kafka_header_get_last(h, ORIGIN_HEADER, &v, &sz) || !v || sz > 300)
        return NULL;
    const void *from = NULL;
    size_t fsz = 0; /* only a replay's copy names an origin: another message's would merge two
                     * poison messages into one for replay */
    if (rd_kafka_header_get_last(h, REPLAYED_FROM_HEADER, &from, &fsz) || !from || !fsz)
        return NULL;
    const char *t = v;
    size_t i = 0, colons = 0, run = 0;
    for (; i < sz; i++) {
        char c = t[i];
        if (c == ':') {
            if (run == 0 || ++colons > 2)
                return NULL;
            run = 0;
        } else if (colons == 0 ? (isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-')
                               : isdigit((unsigned char)c)) {
            run++;
        } else {
            return NULL;
        }
    }
    return colons == 2 && run > 0 ? strndup(t, sz) : NULL;
}

/* A message that cannot be processed: one rejected result + dead letter for it. */
static void poison(iw_pipeline *p, msg *m, const char *target, const char *reason)
{
    p->stats.poison++;
    size_t tl = target ? strlen(target) + 1 : 0;
    m->jobs = calloc(1, sizeof(job) + tl);
    if (!m->jobs) {
        m->we.dropped = true; /* never finishes: its offset is never passed */
        p->fatal = true;
        return;
    }
    m->n_jobs = 1;
    m->we.open = 1;
    p->open_jobs++;
    job *j = &m->jobs[0];
    j->m = m;
    j->target = target ? memcpy(m->jobs + 1, target, tl) : NULL;
    j->first_attempt_ms = 0;
    set_result(j, IW_RES_REJECTED, IW_ERR_VALIDATION, NULL, reason);
    /* where it is, and the event_id its result carries: a log line matches its dead letter */
    char pnum[IW_TEXT_I64_LEN], off[IW_TEXT_I64_LEN], eid[320];
    iw_text_i64(pnum, m->partition);
    iw_text_i64(off, m->we.offset);
    event_id_of(p, m, eid, sizeof(eid));
    iw_log(IW_LOG_WARN, "poison event", "event_id", eid, "partition", pnum, "offset", off, "reason",
           reason, NULL);
    publish(p, j);
}

static void route(iw_pipeline *p, msg *m, const char *only)
{
    const iw_event *ev = m->ev;
    char **names;
    size_t n;
    char *single[1];
    if (only) {
        single[0] = (char *)only;
        names = single;
        n = 1;
    } else if (ev->n_targets) {
        names = ev->targets;
        n = ev->n_targets;
    } else {
        const iw_route *r = iw_config_route(p->cfg, ev->tenant);
        if (!r) {
            char why[200];
            snprintf(why, sizeof(why), "no targets in the event and no route for tenant \"%.*s\"",
                     iw_text_utf8_prec(ev->tenant, 64), ev->tenant);
            poison(p, m, NULL, why);
            return;
        }
        names = r->targets;
        n = r->n_targets;
    }
    /* the jobs and their strings (target name, lane key) in one block */
    size_t tl = strlen(ev->tenant), il = strlen(ev->invoice.id), prefix = tl + il + 2, strings = 0;
    for (size_t i = 0; i < n; i++)
        strings += 2 * strlen(names[i]) + 2 + prefix;
    m->jobs = calloc(1, n * sizeof(job) + strings);
    if (!m->jobs) {
        m->we.dropped = true; /* never finishes: its offset is never passed */
        p->fatal = true;
        return;
    }
    m->n_jobs = n;
    m->we.open = n;
    p->open_jobs += n;
    char *str = (char *)(m->jobs + n);
    for (size_t i = 0; i < n; i++) {
        job *j = &m->jobs[i];
        size_t nl = strlen(names[i]) + 1;
        j->m = m;
        j->target = memcpy(str, names[i], nl);
        str += nl;
        j->tc = iw_config_target(p->cfg, names[i]);
        j->lane_key = str;
        /* "tenant\x1finvoice\x1ftarget" */
        memcpy(str, ev->tenant, tl);
        str[tl] = '\x1f';
        memcpy(str + tl + 1, ev->invoice.id, il);
        str[prefix - 1] = '\x1f';
        memcpy(str + prefix, names[i], nl); /* with its NUL */
        str += prefix + nl;
        if (!j->tc) {
            char why[200];
            int shown = iw_text_utf8_prec(names[i], 64); /* the result's target has it whole */
            snprintf(why, sizeof(why), "unknown target instance \"%.*s\"%s", shown, names[i],
                     names[i][shown] ? " (cut: see target)" : "");
            set_result(j, IW_RES_REJECTED, IW_ERR_VALIDATION, NULL, why);
            publish(p, j);
            continue;
        }
        /* refused by the target's own rules before its lane: a version that can never be sent
         * must not supersede an older one waiting there, nor raise the ledger's claimed
         * version above it (the target would stay at the version before both). Its request is
         * made first too where only the render could refuse it too late: a version that would
         * wait, and an event whose text XML 1.0 cannot carry (iw_event.xml_unsafe, noted by the
         * parser), which in an empty lane would claim the ledger before its attempt renders it,
         * making an older version arriving after the claim stale. (An adapter whose render
         * refuses more than its validate, generic's URL template, is always rendered here.) */
        validate_and_offer(p, j);
    }
}

static void take_message(iw_pipeline *p, rd_kafka_message_t *km)
{
    part *pt = get_part(p, km->partition);
    /* the message with a copy of its key in one block (only the struct is zeroed, the copy
     * overwrites the rest), and a copy of its value in a block of its own */
    msg *m = pt ? malloc(sizeof(*m) + km->key_len) : NULL;
    char *value = m ? malloc(km->len + 1) : NULL;
    if (m)
        memset(m, 0, sizeof(*m));
    if (!value) {
        free(m);
        m = NULL;
    }
    if (!m) {
        /* without a part nothing is ever stored for this partition; with one, block it */
        if (pt)
            iw_window_block(&pt->win, km->offset);
        p->fatal = true;
        return;
    }
    p->stats.consumed++;
    iw_counter_add(p->gm.consumed, 1);
    m->p = p;
    m->partition = km->partition;
    m->we.offset = km->offset;
    m->tracked = true;
    if (km->key) {
        m->key = (char *)(m + 1);
        memcpy(m->key, km->key, km->key_len);
        m->key_len = km->key_len;
    }
    m->value = value;
    if (km->len)
        memcpy(m->value, km->payload, km->len);
    m->value[km->len] = '\0';
    m->value_len = km->len;
    m->value_null = !km->payload;
    p->pending_bytes += (int64_t)km->len;
    m->traceparent = traceparent_of(p, km);
    m->origin = origin_of(km);
    char *only = NULL;
    const char *bad_only = replay_target(km, &only);

    iw_window_push(&pt->win, &m->we);
    pt->last_seen = km->offset;

    char err[512];
    if (bad_only) {
        snprintf(err, sizeof(err), "header %s %s", REPLAY_TARGET_HEADER, bad_only);
        poison(p, m, NULL, err);
    } else if (iw_event_parse(m->value, m->value_len, &m->ev, err, sizeof(err)) != 0) {
        m->ev = NULL;
        poison(p, m, only, err);
    } else {
        route(p, m, only);
    }
    free(only);
}

/* Jobs that count against the room: all open ones but those settling (idle, waiting only for
 * an unanswered attempt's settle time; their memory still counts in pending_bytes). */
static size_t busy_jobs(const iw_pipeline *p)
{
    return p->open_jobs - p->settle_q.n;
}

/* True while the pipeline has room for another message: fewer than 2 x max_in_flight busy jobs
 * and fewer than max_pending_bytes of values held. Messages are taken at the pace the calls finish,
 * so the rest wait in librdkafka's prefetch queue, not in ours, and consumption is not paused in
 * normal flow: a pause drops what librdkafka prefetched for the partition, and librdkafka 2.0
 * looks at a full prefetch queue again only once a second. */
static bool has_room(const iw_pipeline *p)
{
    return busy_jobs(p) < 2 * (size_t)p->cfg->max_in_flight &&
           p->pending_bytes < p->cfg->max_pending_bytes && !p->publish_q.n;
}

/* librdkafka 2.0 stops fetching while its queue holds queued.max.messages.kbytes (or
 * queued.min.messages) and looks again only when its broker thread next wakes: up to a second
 * later when nothing else happens on the connection (librdkafka #2879; 2.2 made the wait
 * fetch.queue.backoff.ms, still 1000 ms by default). A worker faster than a queue per second
 * then idles for the rest of each second: at 0 ms targets it took about 3,300 events a second
 * in bursts of 13,000 a second. So when a poll finds the queue empty after at least half a
 * queue was taken since the last time, the fetchers are woken now: a seek of each assigned,
 * unpaused partition to the offset after the last one taken, which is where its fetch stands
 * (librdkafka wakes the partition's broker thread when a seek is done). The seek is
 * asynchronous, but its version barrier is set when it is issued: a fetch reply that lands
 * before the seek is served carries messages of the older version, which
 * rd_kafka_consumer_poll drops, and they are fetched again from last_seen + 1. The seek also
 * drops what the partition had prefetched, which is nothing here: the queue was empty. A
 * stream slower than the worker never fills the queue, and then this costs one seek per half
 * queue taken and the fetch replies it discards. */
/* Seeks the partitions of l (offsets set) to wake their broker threads; counted by reason. */
static void seek_to_wake(iw_pipeline *p, rd_kafka_topic_partition_list_t *l, iw_counter *reason)
{
    if (!l->cnt)
        return;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, l, 0);
    if (e) {
        iw_log(IW_LOG_DEBUG, "seek to wake the fetchers failed", "error", rd_kafka_error_string(e),
               NULL);
        rd_kafka_error_destroy(e);
        return;
    }
    iw_counter_add(reason, 1);
}

static void wake_fetchers(iw_pipeline *p)
{
    /* at least one message: with queued.min.messages 1, half of it is 0, and each seek's
     * barrier wakes the loop, whose empty poll would seek again */
    if (p->taken_msgs == 0 ||
        (p->taken_bytes < p->prefetch_bytes / 2 && p->taken_msgs < p->prefetch_msgs / 2))
        return;
    p->taken_bytes = p->taken_msgs = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(p->n_parts);
    for (int32_t i = 0; i < p->n_parts; i++) {
        const part *pt = &p->parts[i];
        if (pt->assigned && !pt->paused && pt->last_seen >= 0)
            rd_kafka_topic_partition_list_add(l, p->cfg->input_topic, i)->offset =
                pt->last_seen + 1;
    }
    seek_to_wake(p, l, p->gm.wakes_drained);
    rd_kafka_topic_partition_list_destroy(l);
}

static void poll_consumer(iw_pipeline *p)
{
    p->more_msgs = false;
    for (int i = 0; i < POLL_BATCH; i++) {
        /* Without room, the next message waits in librdkafka; rebalance events wait behind it
         * until flow_control pauses (FULL_PAUSE_MS), after which polling serves them again. */
        if (!has_room(p) && !p->paused_all && !p->stopping && !p->fatal) {
            if (!p->full_since_ms)
                p->full_since_ms = mono_ms();
            return;
        }
        rd_kafka_message_t *km = rd_kafka_consumer_poll(p->consumer, 0);
        if (!km) {
            p->full_since_ms = 0;
            wake_fetchers(p);
            return;
        }
        p->taken_bytes += (int64_t)km->len;
        p->taken_msgs++;
        if (km->err) {
            if (km->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                iw_log(IW_LOG_WARN, "consumer error", "error", rd_kafka_message_errstr(km), NULL);
        } else if (!p->stopping && !p->fatal) {
            take_message(p, km);
            p->full_since_ms = 0;
        }
        /* while stopping, a message is not taken: its offset is not stored, it replays */
        rd_kafka_message_destroy(km);
    }
    p->more_msgs = true;
}

/* ---- flow control ---- */

/* A resume does not wake librdkafka 2.0's broker thread either (it only clears the pause), and
 * the pause dropped what was prefetched: without a wake, a partition resumed after a pause for
 * max_pending_bytes or its window would wait up to a second to fetch again. So a resumed
 * partition that has given a message is sought where it stands, as wake_fetchers does. */
static void set_paused(iw_pipeline *p, int32_t partition, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(l, p->cfg->input_topic, partition);
    if (pause) {
        rd_kafka_pause_partitions(p->consumer, l);
    } else {
        rd_kafka_resume_partitions(p->consumer, l);
        if (p->parts[partition].last_seen >= 0) {
            tp->offset = p->parts[partition].last_seen + 1;
            seek_to_wake(p, l, p->gm.wakes_resumed);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    p->parts[partition].paused = pause;
}

/* Consumption pauses (every assigned partition) while the ledger is down, while stopping, when
 * the values held reach max_pending_bytes, or when the pipeline has had no room for a message
 * for FULL_PAUSE_MS (a slow target): a paused consumer can be polled for rebalance events
 * without taking messages. It resumes below max_in_flight open jobs and half the bytes.
 * A partition also pauses on its own at max_pending_per_partition unfinished messages. */
static void flow_control(iw_pipeline *p)
{
    size_t cap = (size_t)p->cfg->max_in_flight;
    int64_t maxb = p->cfg->max_pending_bytes; /* memory, not only counts, bounds the backlog */
    bool stuck = p->full_since_ms && mono_ms() - p->full_since_ms >= FULL_PAUSE_MS;
    bool block = !p->ledger_ok || p->stopping || stuck || p->pending_bytes >= maxb;
    bool unblock = p->ledger_ok && !p->stopping && busy_jobs(p) < cap &&
                   p->pending_bytes < maxb / 2 && !p->publish_q.n;
    if (block)
        p->paused_all = true;
    else if (unblock && p->paused_all) {
        p->paused_all = false;
        p->full_since_ms = 0;
    }
    size_t maxp = (size_t)p->cfg->max_pending_per_partition;
    for (int32_t i = 0; i < p->n_parts; i++) {
        part *pt = &p->parts[i];
        if (!pt->assigned)
            continue;
        bool want = pt->paused;
        if (p->paused_all || pt->win.count >= maxp)
            want = true;
        else if (pt->win.count < maxp / 2 + 1)
            want = false;
        if (want != pt->paused)
            set_paused(p, i, want);
    }
}

/* ---- Kafka callbacks ---- */

/* True with the cooperative-sticky assignor (a config choice for newer librdkafka builds):
 * assignments then change incrementally. */
static bool cooperative(rd_kafka_t *rk)
{
    const char *proto = rd_kafka_rebalance_protocol(rk);
    return proto && strcmp(proto, "COOPERATIVE") == 0;
}

/* Removes the jobs of revoked (untracked) messages from q into *out (linked through qnext). */
static void take_untracked(jobq *q, job **out)
{
    jobq keep = {NULL, NULL, 0};
    job *j;
    while ((j = q_pop(q))) {
        if (j->m->tracked) {
            q_push(&keep, j);
        } else {
            j->qnext = *out;
            *out = j;
        }
    }
    *q = keep;
}

/* Stops the work of revoked partitions: jobs waiting in lanes or for a claim are dropped,
 * claimed ones not yet on the wire give their fence back (release), queued and backing-off
 * calls are cancelled. Calls on the wire finish and are completed as usual. */
static void abandon_revoked(iw_pipeline *p)
{
    for (msg *m = p->orphans; m; m = msg_of(m->we.next)) {
        for (size_t k = 0; k < m->n_jobs; k++) {
            job *j = &m->jobs[k];
            if (j->state == IW_JOB_LANE && iw_lanes_drop_waiting(p->lanes, j->lane_key, j))
                job_terminal(p, j, IW_JEV_DROP);
        }
    }
    /* dropping a lane's first job lets the next one claim: it may be revoked too, so again */
    for (bool again = true; again;) {
        job *out = NULL;
        take_untracked(&p->claim_q, &out);
        take_untracked(&p->busy_q, &out);
        take_untracked(&p->ready_q, &out);
        again = out != NULL;
        while (out) {
            job *j = out;
            out = j->qnext;
            abandon_job(p, j);
        }
    }
    for (msg *m = p->orphans; m; m = msg_of(m->we.next))
        for (size_t k = 0; k < m->n_jobs; k++)
            if (m->jobs[k].state == IW_JOB_CALLING)
                iw_dispatch_cancel(p->dispatch, &m->jobs[k]); /* may call call_done */
}

static bool in_group(iw_pipeline *p);

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    iw_pipeline *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            part *pt = get_part(p, parts->elems[i].partition);
            if (!pt)
                continue;
            pt->assigned = true;
            pt->paused = false;
            pt->stored = -1;
            pt->last_seen = -1;
            pt->probe_from = pt->probe_end = -1;
            iw_window_init(&pt->win); /* empty since its revoke (or never used) */
        }
        p->assign_gen++;
        p->ever_assigned = true;
        p->stats.assigned = in_group(p); /* /readyz at once, not at the next gauge update */
        if (cooperative(rk))
            rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        /* librdkafka keeps an application pause across unassign/assign (librdkafka #1849):
         * a partition we paused before it was revoked would stay paused for good. */
        rd_kafka_resume_partitions(rk, parts);
        char n[16];
        snprintf(n, sizeof(n), "%d", parts->cnt);
        iw_log(IW_LOG_INFO, "partitions assigned", "count", n, NULL);
        return;
    }
    p->assign_gen++;
    /* Revoked: store and commit what is finished, then let go. Unfinished messages are no
     * longer tracked (their offsets are never stored by us) and stop sending: only calls on
     * the wire may finish (bounded by the lease guard); everything else is dropped and its
     * fence released now, so the partition's new owner can send the newest version. */
    for (int i = 0; i < parts->cnt; i++) {
        int32_t pn = parts->elems[i].partition;
        if (pn < p->n_parts && p->parts[pn].assigned)
            advance_partition(p, pn);
    }
    /* stopping: the last commit comes (bounded) before the close, and brokers that answer
     * nothing would hold a synchronous one here without end */
    rd_kafka_commit(rk, NULL, p->stopping ? 1 : 0);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t pn = parts->elems[i].partition;
        if (pn >= p->n_parts)
            continue;
        part *pt = &p->parts[pn];
        for (msg *m = msg_of(iw_window_take_all(&pt->win)), *next; m; m = next) {
            next = msg_of(m->we.next);
            m->tracked = false;
            m->we.next = p->orphans ? &p->orphans->we : NULL;
            p->orphans = m;
        }
        pt->assigned = false;
        pt->paused = false;
        pt->stored = -1;
        pt->last_seen = -1;
    }
    abandon_revoked(p);
    if (cooperative(rk))
        rd_kafka_incremental_unassign(rk, parts);
    else
        rd_kafka_assign(rk, NULL);
    char n[16];
    snprintf(n, sizeof(n), "%d", parts->cnt);
    iw_log(IW_LOG_INFO, "partitions revoked", "count", n, NULL);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *km, void *opaque)
{
    iw_pipeline *p = opaque;
    job *j = km->_private;
    p->queued_bytes -= (int64_t)(km->key_len + km->len);
    p->queued_msgs--;
    if (km->err) {
        /* The broker refused its batch as too large (its limit for the topic is below the
         * producer's): redo_refused sends it again, without a large key or value. */
        bool letter = strcmp(rd_kafka_topic_name(km->rkt), p->cfg->dlq_topic) == 0;
        if (j && size_refused(km->err) && redo_push(p, j, letter) == 0) {
            iw_log(IW_LOG_WARN, "the broker refused a message as too large", "topic",
                   rd_kafka_topic_name(km->rkt), "error", rd_kafka_err2str(km->err), NULL);
            return; /* its delivery stays open until redo_refused sends it again */
        }
        /* With message.timeout.ms = 0 the producer retries forever; any other error here is
         * fatal (or the producer was purged at shutdown). Nothing unfinished is committed. */
        iw_log(IW_LOG_ERROR, "result not delivered; stopping", "topic",
               rd_kafka_topic_name(km->rkt), "error", rd_kafka_err2str(km->err), NULL);
        p->fatal = true;
        return;
    }
    if (!j)
        return;
    if (strcmp(rd_kafka_topic_name(km->rkt), p->cfg->dlq_topic) == 0)
        p->stats.dead_letters++;
    delivery_done(p, j);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    iw_pipeline *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        iw_log(IW_LOG_ERROR, "fatal kafka error; stopping", "error", buf, NULL);
        p->fatal = true;
        return;
    }
    iw_log(IW_LOG_WARN, "kafka", "error", reason, NULL);
}

/* ---- metrics ---- */

/* Whether an HTTP status is in IANA's registry: its own series; any other status a target
 * sends is counted under its class ("4xx"), so a target cannot make a series of every number. */
static bool registered_status(long s)
{
    return (s >= 100 && s <= 103) || (s >= 200 && s <= 208) || s == 226 || (s >= 300 && s <= 308) ||
           (s >= 400 && s <= 418) || (s >= 421 && s <= 426) || s == 428 || s == 429 || s == 431 ||
           s == 451 || (s >= 500 && s <= 508) || s == 510 || s == 511;
}

static void on_attempt(void *arg, const iw_attempt_info *a)
{
    iw_pipeline *p = arg;
    size_t ti = (size_t)(a->tc - p->cfg->targets);
    target_metrics *tm = &p->tm[ti];
    /* slot: the status itself; 600 + its class for an unregistered one (600 to 999 too, which
     * curl reads: review 106 found them counted as "0", no reply); 0 for none */
    long st = a->status, sc = registered_status(st)    ? st
                              : st >= 100 && st <= 999 ? 600 + st / 100
                                                       : 0;
    if (!tm->requests[sc]) {
        char labels[256];
        if (sc > 600)
            snprintf(labels, sizeof(labels), "%s,code=\"%ldxx\"", tm->label, sc - 600);
        else
            snprintf(labels, sizeof(labels), "%s,code=\"%ld\"", tm->label, sc);
        tm->requests[sc] = iw_metrics_counter(p->metrics, "iw_http_requests_total", labels);
    }
    iw_counter_add(tm->requests[sc], 1);
    iw_histogram_observe(tm->duration, a->seconds);
    /* one warn line per attempt that did not succeed (the terminal outcome is logged apart) */
    if (a->outcome && a->outcome->kind != IW_OUTCOME_OK && iw_log_enabled(IW_LOG_WARN)) {
        char code[16], ms[24], att[16];
        snprintf(code, sizeof(code), "%ld", a->status);
        snprintf(ms, sizeof(ms), "%.0f", a->seconds * 1000);
        snprintf(att, sizeof(att), "%d", a->attempt);
        iw_log(IW_LOG_WARN, "attempt failed", "event_id", a->ev->event_id, "target", a->tc->name,
               "attempt", att, "http_status", code, "ms", ms, "error_kind",
               iw_error_kind_str(a->outcome->error_kind), "error", a->outcome->message, NULL);
    }
}

static int declare_metrics(iw_pipeline *p)
{
    static const struct {
        const char *name;
        iw_metric_type type;
        const char *help;
    } defs[] = {
        {"iw_events_consumed_total", IW_COUNTER, "Messages taken from the input topic."},
        {"iw_results_total", IW_COUNTER,
         "Results acknowledged by the broker, by target and status."},
        {"iw_http_requests_total", IW_COUNTER,
         "HTTP attempts by target and status code (0 = transport error)."},
        {"iw_http_request_duration_seconds", IW_HISTOGRAM, "HTTP attempt duration by target."},
        {"iw_retries_total", IW_COUNTER,
         "Attempts scheduled after a transient failure, by target."},
        {"iw_in_flight", IW_GAUGE, "HTTP calls submitted and not finished."},
        {"iw_jobs_open", IW_GAUGE, "(event, target) pairs consumed and not yet terminal."},
        {"iw_jobs_settling", IW_GAUGE,
         "Finished calls holding their fence because an attempt got no answer and may still be "
         "applied (timeouts.settle_ms)."},
        {"iw_breaker_open", IW_GAUGE, "1 while the target's circuit breaker is open."},
        {"iw_consumer_lag", IW_GAUGE, "Input messages not yet done on the assigned partitions."},
        {"iw_ledger_errors_total", IW_COUNTER, "Redis failures of the ledger."},
        {"iw_ledger_up", IW_GAUGE, "1 while the ledger (Redis) answers."},
        {"iw_fence_lost_total", IW_COUNTER,
         "Calls or outcomes whose (invoice, target) fence was lost: claimed again, never "
         "reported."},
        {"iw_traceparent_invalid_total", IW_COUNTER,
         "traceparent headers dropped because they are not valid W3C trace-context."},
        {"iw_consumer_fetch_wakes_total", IW_COUNTER,
         "Seeks issued to wake the consumer's fetchers, which librdkafka 2.0 would otherwise "
         "leave idle for up to a second: reason=drained after a full prefetch queue was "
         "taken, reason=resumed after a pause."},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
        if (iw_metrics_declare(p->metrics, defs[i].name, defs[i].type, defs[i].help))
            return IW_ENOMEM;
    size_t n = p->cfg->n_targets;
    p->tm = calloc(n + 2, sizeof(*p->tm));
    if (!p->tm)
        return IW_ENOMEM;
    int missing = 0;
    for (size_t i = 0; i < n + 2; i++) {
        target_metrics *tm = &p->tm[i];
        char esc[160], l[256];
        const char *name = i < n ? p->cfg->targets[i].name : i == n ? IW_UNKNOWN_TARGET_LABEL : "";
        snprintf(tm->label, sizeof(tm->label), "target=\"%s\"",
                 iw_metrics_escape(name, esc, sizeof(esc)));
        for (int st = 0; st < IW_RES__COUNT; st++) {
            snprintf(l, sizeof(l), "%s,status=\"%s\"", tm->label, STATUS_NAMES[st]);
            /* every series exists from the start, at 0, as Prometheus prefers */
            tm->results[st] = iw_metrics_counter(p->metrics, "iw_results_total", l);
            missing += !tm->results[st];
        }
        if (i >= n)
            continue;
        tm->retries = iw_metrics_counter(p->metrics, "iw_retries_total", tm->label);
        tm->breaker_open = iw_metrics_gauge(p->metrics, "iw_breaker_open", tm->label);
        tm->duration =
            iw_metrics_histogram(p->metrics, "iw_http_request_duration_seconds", tm->label);
        tm->requests = calloc(HTTP_CODES, sizeof(*tm->requests));
        if (!tm->requests)
            return IW_ENOMEM;
        missing += !tm->retries + !tm->breaker_open + !tm->duration;
    }
    global_metrics *g = &p->gm;
    g->consumed = iw_metrics_counter(p->metrics, "iw_events_consumed_total", "");
    g->ledger_errors = iw_metrics_counter(p->metrics, "iw_ledger_errors_total", "");
    g->fence_lost = iw_metrics_counter(p->metrics, "iw_fence_lost_total", "");
    g->traceparent_invalid = iw_metrics_counter(p->metrics, "iw_traceparent_invalid_total", "");
    g->wakes_drained =
        iw_metrics_counter(p->metrics, "iw_consumer_fetch_wakes_total", "reason=\"drained\"");
    g->wakes_resumed =
        iw_metrics_counter(p->metrics, "iw_consumer_fetch_wakes_total", "reason=\"resumed\"");
    g->in_flight = iw_metrics_gauge(p->metrics, "iw_in_flight", "");
    g->jobs_open = iw_metrics_gauge(p->metrics, "iw_jobs_open", "");
    g->jobs_settling = iw_metrics_gauge(p->metrics, "iw_jobs_settling", "");
    g->consumer_lag = iw_metrics_gauge(p->metrics, "iw_consumer_lag", "");
    g->ledger_up = iw_metrics_gauge(p->metrics, "iw_ledger_up", "");
    missing += !g->consumed + !g->ledger_errors + !g->fence_lost + !g->traceparent_invalid +
               !g->wakes_drained + !g->wakes_resumed + !g->in_flight + !g->jobs_open +
               !g->jobs_settling + !g->consumer_lag + !g->ledger_up;
    return missing ? IW_EINVAL : 0;
}

/* True while the consumer is a member of its group (librdkafka holds a member id): /readyz. */
static bool in_group(iw_pipeline *p)
{
    char *id = p->consumer ? rd_kafka_memberid(p->consumer) : NULL;
    bool in = id && *id;
    free(id);
    return in;
}

/* True when nothing was taken from pt in this assignment: only the brokers know its backlog. */
static bool took_nothing(const part *pt)
{
    return pt->stored < 0 && !pt->win.head;
}

/* Where p's backlog on partition pt starts: the offset last stored, else the oldest message in
 * the window, else (took_nothing) the committed offset the brokers gave; -1 unknown. */
static int64_t backlog_from(const part *pt)
{
    if (took_nothing(pt))
        return pt->probe_from;
    return pt->stored >= 0 ? pt->stored : pt->win.head->offset;
}

/* Messages not yet done on the assigned input partitions: from backlog_from to the high
 * watermark librdkafka last heard from the broker (kept from every fetch, no request), or the
 * brokers' answer for a partition never fetched since its assignment; -1 when no partition has
 * both. librdkafka's statistics give the same from the committed offset, but building and
 * reading them (a JSON document of every broker and partition) cost the loop about a
 * millisecond each time. */
static int64_t consumer_lag(iw_pipeline *p)
{
    int64_t lag = 0;
    bool any = false;
    for (int32_t i = 0; i < p->n_parts; i++) {
        const part *pt = &p->parts[i];
        int64_t from = backlog_from(pt);
        int64_t lo, hi = -1;
        if (!pt->assigned || from < 0)
            continue;
        if (rd_kafka_get_watermark_offsets(p->consumer, p->cfg->input_topic, i, &lo, &hi))
            hi = -1;
        if (pt->probe_end > hi)
            hi = pt->probe_end;
        if (hi < 0)
            continue;
        lag += hi > from ? hi - from : 0;
        any = true;
    }
    return any ? lag : -1;
}

/* Every PROBE_EVERY_MS, asks the brokers (off the loop) where the assigned partitions that
 * nothing was taken from yet, or that are paused, stand, and takes their last answer: a worker
 * that starts paused (Redis down) with a backlog waiting, or one idle since its assignment,
 * still counts it, and so does one paused on a partition it read from (review 106: a paused
 * partition is not fetched, so librdkafka's high watermark for it stood still while events
 * came in during a Redis outage). */
#define PROBE_EVERY_MS 5000
static void probe_lag(iw_pipeline *p, int64_t now)
{
    if (!p->lagprobe)
        return;
    size_t n = 0;
    uint64_t tag = 0;
    iw_lagprobe_answer *a = iw_lagprobe_take(p->lagprobe, &n, &tag);
    for (size_t i = 0; a && tag == p->assign_gen && i < n; i++) {
        part *pt = a[i].partition < p->n_parts ? &p->parts[a[i].partition] : NULL;
        if (pt && pt->assigned) {
            pt->probe_from = a[i].from;
            pt->probe_end = a[i].end;
        }
    }
    free(a);
    if (now - p->last_probe_ms < PROBE_EVERY_MS)
        return;
    int32_t *ask = malloc((size_t)(p->n_parts ? p->n_parts : 1) * sizeof(*ask));
    size_t k = 0;
    for (int32_t i = 0; ask && i < p->n_parts; i++) {
        const part *pt = &p->parts[i];
        if (pt->assigned && (took_nothing(pt) || pt->paused))
            ask[k++] = i;
    }
    if (k) {
        iw_lagprobe_ask(p->lagprobe, ask, k, p->assign_gen);
        p->last_probe_ms = now;
    }
    free(ask);
}

static void update_gauges(iw_pipeline *p)
{
    int64_t now = mono_ms();
    if (now - p->last_gauges_ms < 1000)
        return;
    p->last_gauges_ms = now;
    p->stats.assigned = in_group(p); /* a member, with or without partitions */
    for (size_t i = 0; i < p->cfg->n_targets; i++) {
        target_metrics *tm = &p->tm[i];
        iw_dispatch_stats ds = iw_dispatch_target_stats(p->dispatch, p->cfg->targets[i].name);
        if (ds.retries > tm->retries_seen) /* a counter only goes up: add what is new */
            iw_counter_add(tm->retries, ds.retries - tm->retries_seen);
        tm->retries_seen = ds.retries;
        iw_gauge_set(tm->breaker_open, ds.breaker_open ? 1 : 0);
    }
    iw_gauge_set(p->gm.in_flight, (double)iw_dispatch_pending(p->dispatch));
    iw_gauge_set(p->gm.jobs_open, (double)p->open_jobs);
    iw_gauge_set(p->gm.jobs_settling, (double)p->settle_q.n);
    probe_lag(p, now);
    p->stats.consumer_lag = consumer_lag(p);
    iw_gauge_set(p->gm.consumer_lag, (double)p->stats.consumer_lag);
    iw_gauge_set(p->gm.ledger_up, p->ledger_ok ? 1 : 0);
}

iw_metrics *iw_pipeline_metrics(iw_pipeline *p)
{
    return p->metrics;
}

/* ---- construction ---- */

static int set_conf(rd_kafka_conf_t *c, const char *k, const char *v, char *errbuf, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(c, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka property %s: %s", k, e);
        return -1;
    }
    return 0;
}

/* librdkafka's own log lines, as JSON lines like ours. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    iw_log_level l = level <= 3   ? IW_LOG_ERROR
                     : level <= 4 ? IW_LOG_WARN
                     : level <= 6 ? IW_LOG_INFO
                                  : IW_LOG_DEBUG;
    iw_log(l, buf, "component", "librdkafka", "facility", fac, "client", rd_kafka_name(rk), NULL);
}

/* Properties apply to both clients, except "consumer.X" / "producer.X", which set X on one. */
static rd_kafka_conf_t *base_conf(iw_pipeline *p, const char *role, char *errbuf, size_t errlen)
{
    const iw_config *cfg = p->cfg;
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (set_conf(c, "bootstrap.servers", cfg->kafka_brokers, errbuf, errlen) ||
        set_conf(c, "client.id", cfg->worker_id, errbuf, errlen))
        goto fail;
    if (iw_kafkaconf_apply(c, cfg, role, errbuf, errlen)) /* as check-config does */
        goto fail;
    rd_kafka_conf_set_opaque(c, p);
    rd_kafka_conf_set_error_cb(c, error_cb);
    rd_kafka_conf_set_log_cb(c, log_cb);
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

/* How often fences are renewed: often enough that a lease, renewed one period ago, still
 * covers the longest attempt plus the guard (check-config ensures the lease is long enough),
 * with the other half of the slack left for a slow loop turn or Redis reply. */
static int64_t renew_period_ms(const iw_config *cfg)
{
    int64_t longest = 0;
    for (size_t i = 0; i < cfg->n_targets; i++)
        if (cfg->targets[i].request_timeout_ms > longest)
            longest = cfg->targets[i].request_timeout_ms;
    int64_t every = (cfg->lease_ms - longest - IW_DISPATCH_LEASE_GUARD_MS) / 2;
    if (every > cfg->lease_ms / 3)
        every = cfg->lease_ms / 3;
    return every < 100 ? 100 : every;
}

/* How long the start waits for the brokers to answer about the output topics, and how long it
 * waits between two questions while they say a topic does not exist (yet). */
#define TOPIC_CHECK_MS 5000
#define TOPIC_RECHECK_MS 500

/* The error of topic `name` in md: its own, or unknown when md does not list it. */
static rd_kafka_resp_err_t topic_err(const struct rd_kafka_metadata *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0)
            return md->topics[i].err;
    return RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* The results and dead-letter topics must exist, or be created by the broker on first use. A
 * produce to a topic the brokers do not have fails once topic.metadata.propagation.max.ms has
 * passed, and would stop the worker at its first result, after every restart, with that
 * event's partition held. So the start asks the brokers about both, as the producer would (a
 * broker that creates topics on use creates them here), and refuses to start when they still
 * say one does not exist after that same time (a topic just created may not have reached every
 * broker), or refuse its name, or do not authorize this worker for it (Kafka's write
 * permission implies describe, so a worker that may not describe a topic may not write to it).
 * A broker that does not answer within TOPIC_CHECK_MS is not a reason to refuse: the worker
 * waits for Kafka as it always does. A signal (*stop) ends the wait, as a refusal. */
static int check_output_topics(iw_pipeline *p, volatile sig_atomic_t *stop, char *errbuf,
                               size_t errlen)
{
    const char *names[2] = {p->cfg->result_topic, p->cfg->dlq_topic};
    static const char *const keys[2] = {"results", "dead_letter"};
    rd_kafka_topic_t *t[2];
    for (int i = 0; i < 2; i++) /* known locally: what a metadata request without a topic asks */
        t[i] = rd_kafka_topic_new(p->producer, names[i], NULL);
    int64_t grace =
        iw_kafkaconf_int(rd_kafka_conf(p->producer), "topic.metadata.propagation.max.ms", 30000);
    int64_t start = mono_ms();
    int rc = 0, waiting = 0;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(p->producer, 0, NULL, &md, TOPIC_CHECK_MS);
        if (e) {
            iw_log(IW_LOG_WARN, "could not check the output topics at start", "error",
                   rd_kafka_err2str(e), NULL);
            break;
        }
        int missing = -1;
        for (int i = 0; i < 2 && !rc; i++) {
            rd_kafka_resp_err_t te = topic_err(md, names[i]);
            if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                missing = missing < 0 ? i : missing;
            } else if (te == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION || /* permanent for librdkafka */
                       te == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                snprintf(errbuf, errlen, "kafka.topics.%s: the brokers refuse the topic \"%s\": %s",
                         keys[i], names[i], rd_kafka_err2str(te));
                rc = -1;
            } else if (te && te != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
                iw_log(IW_LOG_WARN, "an output topic at start", "topic", names[i], "error",
                       rd_kafka_err2str(te), NULL);
            }
        }
        rd_kafka_metadata_destroy(md);
        if (rc || missing < 0)
            break;
        if (!waiting) { /* say so once: the start may wait this long */
            char ms[24];
            snprintf(ms, sizeof(ms), "%lld", (long long)grace);
            iw_log(IW_LOG_INFO, "waiting for the brokers to know an output topic", "topic",
                   names[missing], "up_to_ms", ms, NULL);
            waiting = 1;
        }
        if (mono_ms() - start >= grace) {
            snprintf(errbuf, errlen,
                     "kafka.topics.%s: the brokers have no topic \"%s\" (create it, or fix the "
                     "name)",
                     keys[missing], names[missing]);
            rc = -1;
            break;
        }
        struct timespec ts = {0, TOPIC_RECHECK_MS * 1000000L};
        nanosleep(&ts, NULL); /* a signal cuts it short */
        if (stop && *stop) {
            snprintf(errbuf, errlen, "stopped by a signal while waiting for topic \"%s\"",
                     names[missing]);
            *stop = IW_PIPELINE_STOPPED_AT_START;
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < 2; i++)
        if (t[i])
            rd_kafka_topic_destroy(t[i]);
    return rc;
}

iw_pipeline *iw_pipeline_new(const iw_config *cfg, volatile sig_atomic_t *stop, char *errbuf,
                             size_t errlen)
{
    if (!cfg->kafka_brokers || !*cfg->kafka_brokers) {
        snprintf(errbuf, errlen, "kafka.brokers is not set (config or IW_KAFKA_BROKERS)");
        return NULL;
    }
    iw_pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cfg = cfg;
    p->stop = stop;
    p->wake[0] = p->wake[1] = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(p->owner, sizeof(p->owner), "%s/%ld-%lx", cfg->worker_id, (long)getpid(),
             (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
    p->renew_every_ms = renew_period_ms(cfg);
    pthread_mutex_init(&p->lock, NULL);
    p->stats.consumer_lag = -1;
    p->target_results = calloc(cfg->n_targets * IW_RES__COUNT + 1, sizeof(uint64_t));
    p->lanes = iw_lanes_new();
    p->metrics = iw_metrics_new();
    int mrc = p->metrics ? declare_metrics(p) : IW_ENOMEM;
    if (mrc == IW_EINVAL) { /* a programming error: a metric used but not declared as such */
        snprintf(errbuf, errlen, "a metric is used that is not declared with its type");
        goto fail;
    }
    if (!p->target_results || !p->lanes || mrc != 0 ||
        pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(errbuf, errlen, "out of resources");
        goto fail;
    }
    char err[512];
    p->loop = iw_loop_new();
    if (!p->loop || iw_loop_watch(p->loop, p->wake[0], IW_LOOP_READ, wake_drain, p) != 0) {
        snprintf(errbuf, errlen, "out of resources");
        goto fail;
    }
    iw_timer_init(&p->wake_timer, wake_timer_fired, p);
    /* Redis is connected from the loop, and may come up after us: until then consumption is
     * paused and the readiness probe says not ready. */
    p->aledger = iw_aledger_new(p->loop, cfg->redis_host, cfg->redis_port, cfg->redis_password,
                                cfg->ledger_ttl_s, LEDGER_IO_TIMEOUT_MS, ledger_state, p);
    if (!p->aledger) {
        snprintf(errbuf, errlen, "ledger: invalid redis settings or out of memory");
        goto fail;
    }
    p->dispatch = iw_dispatch_new_in(cfg, p->loop, err, sizeof(err));
    if (!p->dispatch) {
        snprintf(errbuf, errlen, "dispatcher: %s", err);
        goto fail;
    }
    iw_dispatch_set_observer(p->dispatch, on_attempt, p);

    rd_kafka_conf_t *pc = base_conf(p, "producer", errbuf, errlen);
    if (!pc || set_conf(pc, "enable.idempotence", "true", errbuf, errlen) ||
        set_conf(pc, "acks", "all", errbuf, errlen) ||
        set_conf(pc, "message.timeout.ms", "0", errbuf, errlen)) {
        if (pc)
            rd_kafka_conf_destroy(pc);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    p->queue_bytes = iw_kafkaconf_int(pc, "queue.buffering.max.kbytes", 1048576) * 1024;
    p->queue_msgs = iw_kafkaconf_int(pc, "queue.buffering.max.messages", 100000);
    p->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
    if (!p->producer) { /* rd_kafka_new() frees conf only on success */
        rd_kafka_conf_destroy(pc);
        snprintf(errbuf, errlen, "producer: %s", err);
        goto fail;
    }
    pc = NULL; /* owned by the producer */
    if (check_output_topics(p, stop, errbuf, errlen))
        goto fail;

    rd_kafka_conf_t *cc = base_conf(p, "consumer", errbuf, errlen);
    if (!cc || set_conf(cc, "group.id", cfg->kafka_group_id, errbuf, errlen) ||
        set_conf(cc, "enable.auto.offset.store", "false", errbuf, errlen) ||
        set_conf(cc, "enable.auto.commit", "true", errbuf, errlen) ||
        set_conf(cc, "auto.offset.reset", "earliest", errbuf, errlen) ||
        set_conf(cc, "partition.assignment.strategy", "range", errbuf, errlen)) {
        if (cc)
            rd_kafka_conf_destroy(cc);
        goto fail;
    }
    /* a config may choose another assignor; re-apply the user's choice after our default */
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const char *k = cfg->kafka_props[2 * i];
        if (strncmp(k, "consumer.", 9) == 0)
            k += 9;
        if (strcmp(k, "partition.assignment.strategy") == 0)
            set_conf(cc, k, cfg->kafka_props[2 * i + 1], errbuf, errlen);
    }
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    p->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
    if (!p->consumer) {
        rd_kafka_conf_destroy(cc);
        snprintf(errbuf, errlen, "consumer: %s", err);
        goto fail;
    }
    rd_kafka_poll_set_consumer(p->consumer);
    rd_kafka_conf_t *lc = base_conf(p, "consumer", errbuf, errlen);
    if (!lc || set_conf(lc, "group.id", cfg->kafka_group_id, errbuf, errlen)) {
        if (lc)
            rd_kafka_conf_destroy(lc);
        goto fail;
    }
    if (!(p->lagprobe = iw_lagprobe_new(lc, cfg->input_topic, errbuf, errlen)))
        goto fail;
    const rd_kafka_conf_t *kc = rd_kafka_conf(p->consumer);
    int64_t kb = iw_kafkaconf_int(kc, "queued.max.messages.kbytes", INT64_MAX);
    p->prefetch_bytes = kb < INT64_MAX / 1024 ? kb * 1024 : INT64_MAX;
    p->prefetch_msgs = iw_kafkaconf_int(kc, "queued.min.messages", INT64_MAX);
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(p->consumer);
    if (!cq) { /* no consumer group (the config refuses an empty kafka.group_id) */
        snprintf(errbuf, errlen, "consumer: no consumer group queue (kafka.group_id)");
        goto fail;
    }
    rd_kafka_queue_io_event_enable(cq, p->wake[1], "c", 1);
    rd_kafka_queue_destroy(cq);
    rd_kafka_queue_t *pq = rd_kafka_queue_get_main(p->producer);
    rd_kafka_queue_io_event_enable(pq, p->wake[1], "p", 1);
    rd_kafka_queue_destroy(pq);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->input_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(p->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(errbuf, errlen, "subscribe %s: %s", cfg->input_topic, rd_kafka_err2str(e));
        goto fail;
    }
    /* Redis last: the output topics' check above may block for seconds while Kafka is away,
     * and a connect started before it would be timed out by its watchdog on the first turn,
     * reporting a Redis outage that is Kafka's. */
    ledger_health(p);
    p->stats.ledger_ok = p->ledger_ok;
    p->stats.ledger_refused = !p->ledger_ok && iw_aledger_refused(p->aledger);
    p->stats.producer_ok = true;
    return p;
fail:
    iw_pipeline_free(p);
    return NULL;
}

/* ---- the loop ---- */

static bool has_immediate_work(const iw_pipeline *p)
{
    bool ledger = p->ledger_ok && ((p->claim_q.n && !p->inflight[LB_CLAIM]) ||
                                   (p->complete_q.n && !p->inflight[LB_COMPLETE]) ||
                                   (p->release_q.n && !p->inflight[LB_RELEASE]));
    bool waiting_msgs = p->full_since_ms && has_room(p); /* left in librdkafka for want of room */
    return p->more_msgs || waiting_msgs || ledger ||
           (p->ready_q.n && iw_dispatch_has_capacity(p->dispatch));
}

/* The longest the loop may sleep: 0 with work at hand; otherwise the pipeline's own next
 * deadline (a BUSY claim due, a renewal, a Redis reconnect) goes into the loop's timer heap
 * beside libcurl's, the dispatcher's and the ledger's, and the wait is capped so that a stop
 * request is seen soon. */
static int next_timeout_ms(iw_pipeline *p)
{
    if (has_immediate_work(p))
        return 0;
    int64_t now = mono_ms(), due = now + 250;
    if (p->busy_q.head && p->busy_q.head->due_ms < due)
        due = p->busy_q.head->due_ms;
    if (p->settle_q.head && p->settle_q.head->due_ms < due)
        due = p->settle_q.head->due_ms;
    if (p->ledger_ok && p->last_renew_ms + p->renew_every_ms < due)
        due = p->last_renew_ms + p->renew_every_ms;
    if (!p->ledger_ok && !p->ledger_connecting && p->ledger_retry_at < due)
        due = p->ledger_retry_at;
    iw_timer_at(p->loop, &p->wake_timer, due > now ? due : now);
    return 250;
}

static void publish_snapshot(iw_pipeline *p)
{
    p->stats.in_flight = p->open_jobs;
    p->stats.ledger_ok = p->ledger_ok;
    p->stats.ledger_refused = !p->ledger_ok && iw_aledger_refused(p->aledger);
    p->stats.producer_ok = !p->fatal;
    p->stats.last_loop_ms = mono_ms();
    pthread_mutex_lock(&p->lock);
    p->snapshot = p->stats;
    pthread_mutex_unlock(&p->lock);
}

static void sweep_orphans(iw_pipeline *p)
{
    for (msg **pp = &p->orphans; *pp;) {
        msg *m = *pp;
        if (m->we.open == 0) {
            *pp = msg_of(m->we.next);
            msg_free(m);
        } else {
            pp = (msg **)&m->we.next;
        }
    }
}

/* One turn: wait for anything (Kafka, HTTP sockets, Redis, a timer) and let its handlers run,
 * then move every queue forward. Nothing here blocks: ledger calls are sent and answered on
 * the loop, HTTP transfers move on their own sockets' readiness. */
static void loop_turn(iw_pipeline *p)
{
    iw_log_flush(); /* held lines go out before the loop may wait */
    iw_loop_run_once(p->loop, next_timeout_ms(p));
    poll_consumer(p);
    ledger_health(p);
    run_settled(p);
    run_ledger_writes(p, LB_COMPLETE);
    run_ledger_writes(p, LB_RELEASE);
    run_claims(p);
    submit_ready(p);
    shed_waiting(p);
    rd_kafka_poll(p->producer, 0);
    redo_refused(p);
    publish_waiting(p);
    renew_leases(p);
    flow_control(p);
    sweep_orphans(p);
    update_gauges(p);
    publish_snapshot(p);
}

static bool ledger_busy(const iw_pipeline *p)
{
    for (int k = 0; k < LB__COUNT; k++)
        if (p->inflight[k])
            return true;
    return false;
}

/* Jobs still settling when the grace period is over: an attempt of theirs may yet be applied,
 * so their fences are kept (as for a call cut off on the wire) and their events replay
 * elsewhere. The lease each was granted already covers its settle (iw_target_lease_grant_ms),
 * but may run much longer: one last renewal shortens each to the settle left plus 2 s, so that
 * the next owner can send as soon as nothing more can land. */
static void keep_unsettled(iw_pipeline *p)
{
    if (!p->settle_q.n)
        return;
    for (int64_t until = mono_ms() + 2000;
         p->ledger_ok && p->inflight[LB_RENEW] && mono_ms() < until;)
        iw_loop_run_once(p->loop, 50);
    lbatch *b =
        p->ledger_ok && !p->inflight[LB_RENEW] ? lbatch_new(p, LB_RENEW, p->settle_q.n) : NULL;
    int64_t now = mono_ms();
    job *j;
    while ((j = q_pop(&p->settle_q))) {
        if (b && j->leased) {
            lbatch_add(b, j);
            int64_t left = j->settle_until > now ? j->settle_until - now : 0;
            b->ops[b->n - 1].lease_ms = left + IW_LEASE_MARGIN_MS;
            j->m->we.open++; /* the batch's reference: the job's memory outlives its drop */
        }
        j->leased = false;
        lane_release(p, j);
        job_terminal(p, j, IW_JEV_DROP);
    }
    if (b && b->n)
        lbatch_send(p, b); /* answered in the last ledger loop of iw_pipeline_run */
    else
        free(b);
}

/* Jobs that never reached the dispatcher when we stop: give their leases back. */
static void abandon_unsent(iw_pipeline *p)
{
    job *j;
    while ((j = q_pop(&p->claim_q)))
        job_terminal(p, j, IW_JEV_DROP);
    while ((j = q_pop(&p->busy_q)))
        job_terminal(p, j, IW_JEV_DROP);
    while ((j = q_pop(&p->ready_q))) {
        job_to(p, j, IW_JEV_GIVE_BACK);
        queue_write(p, j);
    }
    /* jobs waiting in lanes: release them too */
    for (int32_t i = 0; i < p->n_parts; i++)
        for (msg *m = msg_of(p->parts[i].win.head); m; m = msg_of(m->we.next))
            for (size_t k = 0; k < m->n_jobs; k++)
                if (m->jobs[k].state == IW_JOB_LANE) {
                    iw_lanes_drop_waiting(p->lanes, m->jobs[k].lane_key, &m->jobs[k]);
                    job_to(p, &m->jobs[k], IW_JEV_GIVE_BACK);
                    q_push(&p->release_q, &m->jobs[k]);
                }
}

/* How long the last commit and the consumer's close may take together on SIGTERM: brokers that
 * accept connections and answer nothing would hold either without end (librdkafka bounds the
 * close only by session.timeout.ms, and a synchronous commit not at all), past Kubernetes'
 * terminationGracePeriodSeconds. What is not committed replays: at-least-once holds. */
#define CLOSE_BOUND_MS 5000

/* A consumer whose close did not end in time: destroying it waits for that close, so it is left
 * to the process' exit (kept reachable here, not leaked). */
static rd_kafka_t *left_to_exit;

static void on_last_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    (void)offsets;
    rd_kafka_resp_err_t *out = opaque;
    *out = err;
}

/* The last commit of what is finished, then the consumer's close (leaving the group; a revoke
 * it brings is served here), each waited for until `until`. False when the close did not end
 * (the consumer is then left to the exit). */
static bool commit_and_close(iw_pipeline *p, int64_t until)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->consumer);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    if (rd_kafka_commit_queue(p->consumer, NULL, q, on_last_commit, &err) != 0)
        err = RD_KAFKA_RESP_ERR__NO_OFFSET; /* nothing stored: nothing to wait for */
    while (err == RD_KAFKA_RESP_ERR__IN_PROGRESS && mono_ms() < until)
        rd_kafka_queue_poll_callback(q, 100);
    if (err == RD_KAFKA_RESP_ERR__IN_PROGRESS)
        iw_log(IW_LOG_WARN, "final commit not answered in time: the unfinished window replays",
               NULL);
    else if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        iw_log(IW_LOG_WARN, "final commit failed", "error", rd_kafka_err2str(err), NULL);
    rd_kafka_error_t *cerr = rd_kafka_consumer_close_queue(p->consumer, q);
    bool closed = cerr == NULL;
    if (cerr) {
        iw_log(IW_LOG_WARN, "consumer close failed", "error", rd_kafka_error_string(cerr), NULL);
        rd_kafka_error_destroy(cerr);
    }
    while (closed && !rd_kafka_consumer_closed(p->consumer) && mono_ms() < until)
        rd_kafka_queue_poll_callback(q, 100);
    closed = closed && rd_kafka_consumer_closed(p->consumer);
    if (!closed)
        iw_log(IW_LOG_WARN,
               "consumer not closed in time: the group sees it leave at its session timeout", NULL);
    rd_kafka_queue_destroy(q);
    return closed; /* a commit not answered in time was said above; the consumer did close */
}

/* At the stop, outcomes whose write Redis has not confirmed are named, one line each, then
 * counted: their events replay after the restart (their fences hold until the lease runs out).
 * A write Redis received but did not answer in time may still have been applied: that event's
 * replay is then a duplicate, and this line is the only trace of the outcome it had. */
static void warn_unrecorded_job(const job *j)
{
    iw_log(IW_LOG_WARN, "outcome not recorded at the stop; the event replays", "event_id",
           j->m->ev ? j->m->ev->event_id : NULL, "invoice_id",
           j->m->ev ? j->m->ev->invoice.id : NULL, "target", j->target, "outcome",
           STATUS_NAMES[j->status], NULL);
}

static void warn_unrecorded(iw_pipeline *p)
{
    size_t n = 0;
    for (const job *j = p->complete_q.head; j; j = j->qnext, n++)
        warn_unrecorded_job(j);
    const lbatch *b = p->inflight[LB_COMPLETE];
    for (size_t i = 0; b && i < b->n; i++, n++)
        warn_unrecorded_job(b->js[i]);
    if (!n)
        return;
    char c[IW_TEXT_I64_LEN];
    iw_text_i64(c, (int64_t)n);
    iw_log(IW_LOG_WARN,
           "outcomes not recorded: Redis did not answer in time; their events replay, and their "
           "fences hold until the lease runs out",
           "jobs", c, NULL);
}

int iw_pipeline_run(iw_pipeline *p, volatile sig_atomic_t *stop)
{
    iw_log(IW_LOG_INFO, "worker started", "worker", p->cfg->worker_id, "group",
           p->cfg->kafka_group_id, "topic", p->cfg->input_topic, NULL);
    iw_log_hold(1);
    while (!*stop && !p->fatal)
        loop_turn(p);

    /* Drain: no new messages, no new calls; in-flight calls get the grace period. */
    p->stopping = true;
    int64_t deadline = mono_ms() + p->cfg->shutdown_grace_ms;
    iw_log(IW_LOG_INFO, "stopping: draining in-flight calls", NULL);
    flow_control(p);
    abandon_unsent(p);
    /* a Redis that does not answer is waited for too (it reconnects in the loop): outcomes the
     * targets gave are recorded and published if it comes back within the grace period */
    while (mono_ms() < deadline && !p->fatal &&
           (iw_dispatch_pending(p->dispatch) || p->complete_q.n || p->release_q.n || p->ready_q.n ||
            p->settle_q.n || p->publish_q.n || ledger_busy(p)))
        loop_turn(p);
    iw_log_hold(0); /* what follows waits in librdkafka and hiredis: lines go out at once */
    if (iw_dispatch_pending(p->dispatch)) {
        iw_log(IW_LOG_WARN, "grace period over: abandoning in-flight calls", NULL);
        iw_dispatch_abandon_all(p->dispatch);
    }
    keep_unsettled(p); /* before abandon_unsent: their lanes' next jobs are dropped there */
    abandon_unsent(p);
    /* the last outcomes and releases go out; their answers are awaited a bounded while (a
     * claim answered meanwhile may give back a fence that still settles: kept as above) */
    for (int64_t until = mono_ms() + 2000;
         p->ledger_ok && (ledger_busy(p) || p->complete_q.n || p->release_q.n || p->settle_q.n) &&
         mono_ms() < until;) {
        keep_unsettled(p);
        run_ledger_writes(p, LB_COMPLETE);
        run_ledger_writes(p, LB_RELEASE);
        iw_loop_run_once(p->loop, 50);
    }
    warn_unrecorded(p);
    abandon_unpublished(p);
    if (p->unqueued) {
        char n[IW_TEXT_I64_LEN];
        iw_text_i64(n, (int64_t)p->unqueued);
        iw_log(IW_LOG_WARN,
               p->fatal ? "stopping on an error: results not published; their events replay "
                          "after the restart"
                        : "stopped with the producer's queue full: results not published; their "
                          "events replay after the restart",
               "results", n, NULL);
    }
    int64_t left = deadline - mono_ms();
    rd_kafka_flush(p->producer, (int)(left > 5000 ? left : 5000));
    for (int32_t i = 0; i < p->n_parts; i++)
        if (p->parts[i].assigned)
            advance_partition(p, i);
    if (!iw_lagprobe_free(p->lagprobe)) /* bounded: see lagprobe.h */
        iw_log(IW_LOG_WARN, "lag probe still waiting on the brokers; left to the exit", NULL);
    p->lagprobe = NULL;
    p->unclosed = !commit_and_close(p, mono_ms() + CLOSE_BOUND_MS);
    publish_snapshot(p);
    iw_log(IW_LOG_INFO, "worker stopped", NULL);
    return p->fatal ? 1 : 0;
}

void iw_pipeline_stats_copy(iw_pipeline *p, iw_pipeline_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->snapshot;
    pthread_mutex_unlock(&p->lock);
}

void iw_pipeline_free(iw_pipeline *p)
{
    if (!p)
        return;
    p->freeing = true;
    iw_aledger_free(p->aledger); /* batches on their way end here, changing nothing */
    if (p->dispatch)
        iw_dispatch_free(p->dispatch); /* abandons: callbacks push to release_q */
    iw_lagprobe_free(p->lagprobe);     /* when run did not end it */
    if (p->consumer && p->unclosed)
        left_to_exit = p->consumer; /* its destroy would wait for the close, as long again */
    else if (p->consumer)
        rd_kafka_destroy(p->consumer);
    if (p->producer) {
        rd_kafka_purge(p->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(p->producer);
    }
    for (int32_t i = 0; i < p->n_parts; i++) {
        for (msg *m = msg_of(p->parts[i].win.head), *next; m; m = next) {
            next = msg_of(m->we.next);
            msg_free(m);
        }
    }
    free(p->parts);
    free(p->redo);
    for (msg *m = p->orphans, *next; m; m = next) {
        next = msg_of(m->we.next);
        msg_free(m);
    }
    if (p->loop)
        iw_loop_free(p->loop);
    iw_lanes_free(p->lanes);
    free(p->target_results);
    for (size_t i = 0; p->tm && i < p->cfg->n_targets; i++)
        free(p->tm[i].requests);
    free(p->tm);
    iw_metrics_free(p->metrics);
    if (p->wake[0] >= 0)
        close(p->wake[0]);
    if (p->wake[1] >= 0)
        close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
