/* test_kafka_local.c: the local Kafka (kafka-local) serves real librdkafka clients and kcat. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "testproc.h"

#define TOPIC "invoice-events"
#define PARTITIONS 32
#define MSG_COUNT 1000

/* A running kafka-local with its stdin and stdout connected to the test. */
struct kl {
    iw_proc proc;         /* the child; proc.out_fd reads its stdout */
    int in_fd;            /* write end of its stdin, -1 once closed */
    char bootstrap[512];  /* first stdout line */
    long long startup_ms; /* from fork to the bootstrap line */
};

/* Delivery report tally, the producer's opaque. */
struct dr_tally {
    int ok;                       /* delivered */
    int failed;                   /* delivery failed */
    rd_kafka_resp_err_t last_err; /* last failure */
};

static struct kl kl = {.in_fd = -1};

/* Starts build/kafka-local with extra arguments (NULL-terminated) and reads its bootstrap line. */
static void kl_start_args(struct kl *k, const char *const *extra)
{
    char path[512];
    char *argv[16];
    int argc = 0;
    snprintf(path, sizeof(path), "%s", iw_build_path("kafka-local"));
    argv[argc++] = path;
    for (int i = 0; extra && extra[i] && argc < 15; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;

    int in[2], out[2];
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    long long t0 = iw_now_ms();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    memset(&k->proc, 0, sizeof(k->proc));
    k->proc.pid = pid;
    k->proc.out_fd = out[0];
    snprintf(k->proc.name, sizeof(k->proc.name), "kafka-local");
    k->in_fd = in[1];
    int n = iw_proc_read_line(&k->proc, k->bootstrap, sizeof(k->bootstrap), 10000);
    k->startup_ms = iw_now_ms() - t0;
    cr_assert_gt(n, 0, "kafka-local printed no bootstrap line");
    cr_assert(strncmp(k->bootstrap, "127.0.0.1:", 10) == 0, "bootstrap: %s", k->bootstrap);
}

static void setup_default(void)
{
    kl_start_args(&kl, NULL);
}

static void teardown(void)
{
    if (kl.in_fd >= 0)
        close(kl.in_fd);
    kl.in_fd = -1;
    iw_proc_stop(&kl.proc, 5000);
}

/* Sends one control line and returns its reply line in reply. */
static void kl_cmd(struct kl *k, const char *cmd, char *reply, size_t len)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    cr_assert_eq(write(k->in_fd, line, (size_t)n), n);
    cr_assert_geq(iw_proc_read_line(&k->proc, reply, len, 5000), 0, "no reply to %s", cmd);
}

/* Sends a control line that must succeed. */
static void kl_ok(struct kl *k, const char *cmd)
{
    char reply[256];
    kl_cmd(k, cmd, reply, sizeof(reply));
    cr_assert(strncmp(reply, "ok", 2) == 0, "%s -> %s", cmd, reply);
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[256];
    cr_assert_eq(rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)), RD_KAFKA_CONF_OK,
                 "%s: %s", name, errstr);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct dr_tally *t = opaque;
    if (m->err) {
        t->failed++;
        t->last_err = m->err;
    } else {
        t->ok++;
    }
}

/* A producer on the local cluster whose delivery reports go to tally. */
static rd_kafka_t *new_producer(const char *bootstrap, bool idempotent, struct dr_tally *tally)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "enable.idempotence", idempotent ? "true" : "false");
    set(conf, "acks", "all");
    set(conf, "linger.ms", "5");
    set(conf, "reconnect.backoff.ms", "100");
    set(conf, "reconnect.backoff.max.ms", "500");
    set(conf, "message.timeout.ms", "30000");
    set(conf, "log_level", "3");
    if (!idempotent)
        set(conf, "retries", "0");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, tally);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "producer: %s", errstr); /* rd_kafka_new() took conf */
    return rk;
}

/* A consumer with the settings the worker uses; in group when group is not NULL. */
static rd_kafka_t *new_consumer(const char *bootstrap, const char *group)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "group.id", group);
    set(conf, "session.timeout.ms", "6000");
    set(conf, "heartbeat.interval.ms", "500");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "enable.auto.commit", "false");
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "partition.assignment.strategy", "range");
    set(conf, "log_level", "3");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "consumer: %s", errstr);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Produces prefix-NNNN keyed messages [first, first+n) to TOPIC; partition -1 lets the key pick. */
static void produce(rd_kafka_t *rk, const char *prefix, int first, int n, int32_t partition)
{
    for (int i = first; i < first + n; i++) {
        char key[64], value[64];
        snprintf(key, sizeof(key), "%s-%04d", prefix, i);
        snprintf(value, sizeof(value), "value-%s-%04d", prefix, i);
        rd_kafka_resp_err_t err;
        do {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(TOPIC),
                RD_KAFKA_V_PARTITION(partition >= 0 ? partition : RD_KAFKA_PARTITION_UA),
                RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(value, strlen(value)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        cr_assert_eq(err, 0, "produce: %s", rd_kafka_err2str(err));
    }
}

/* Polls rk until tally has want reports (ok + failed) or timeout_ms passes. */
static void wait_reports(rd_kafka_t *rk, struct dr_tally *t, int want, int timeout_ms)
{
    long long deadline = iw_now_ms() + timeout_ms;
    while (t->ok + t->failed < want && iw_now_ms() < deadline)
        rd_kafka_poll(rk, 50);
}

/* Messages read back, by key number. */
struct readback {
    int counts[MSG_COUNT + 16]; /* times each key number was seen */
    int total;                  /* messages read */
    int foreign;                /* messages whose key did not carry the expected prefix */
    int bad_value;              /* messages whose value did not match their key */
};

/* Consumes until rb holds want messages or timeout_ms passes; first_ms gets the time of the
 * first message (from call time) when not NULL. Commits nothing; stores each offset. */
static void consume(rd_kafka_t *rk, const char *prefix, struct readback *rb, int want,
                    int timeout_ms, long long *first_ms)
{
    long long t0 = iw_now_ms(), deadline = t0 + timeout_ms;
    size_t plen = strlen(prefix);
    while (rb->total < want && iw_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (rb->total++ == 0 && first_ms)
            *first_ms = iw_now_ms() - t0;
        char key[64] = "", expect[80];
        if (m->key && m->key_len < sizeof(key))
            memcpy(key, m->key, m->key_len);
        int num = -1;
        if (strncmp(key, prefix, plen) == 0 && key[plen] == '-')
            num = (int)strtol(key + plen + 1, NULL, 10);
        if (num < 0 || num >= (int)(sizeof(rb->counts) / sizeof(rb->counts[0]))) {
            rb->foreign++;
        } else {
            rb->counts[num]++;
            snprintf(expect, sizeof(expect), "value-%s", key);
            if (m->len != strlen(expect) || memcmp(m->payload, expect, m->len) != 0)
                rb->bad_value++;
        }
        rd_kafka_offset_store(m->rkt, m->partition, m->offset);
        rd_kafka_message_destroy(m);
    }
}

/* Sum of the group's committed offsets over TOPIC's partitions. */
static long long committed_sum(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 5000);
    long long sum = 0;
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].offset > 0)
            sum += l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    cr_assert_eq(err, 0, "committed: %s", rd_kafka_err2str(err));
    return sum;
}

/* Subscribes rk to TOPIC. */
static void subscribe(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TOPIC, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    cr_assert_eq(err, 0, "subscribe: %s", rd_kafka_err2str(err));
}

/* Finds a topic in metadata, or NULL. */
static const rd_kafka_metadata_topic_t *find_topic(const rd_kafka_metadata_t *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0)
            return &md->topics[i];
    return NULL;
}

/* Fetches metadata for all topics through a fresh client. Caller frees with
 * rd_kafka_metadata_destroy() and destroys *rkp. */
static const rd_kafka_metadata_t *all_metadata(const char *bootstrap, rd_kafka_t **rkp)
{
    static struct dr_tally unused;
    *rkp = new_producer(bootstrap, false, &unused);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(*rkp, 1, NULL, &md, 10000);
    cr_assert_eq(err, 0, "metadata: %s", rd_kafka_err2str(err));
    return md;
}

TestSuite(kafka_local, .init = setup_default, .fini = teardown, .timeout = 60);

Test(kafka_local, produce_consume_commit_and_resume)
{
    struct dr_tally tally = {0};
    rd_kafka_t *prod = new_producer(kl.bootstrap, true, &tally);
    produce(prod, "key", 0, MSG_COUNT, -1);
    wait_reports(prod, &tally, MSG_COUNT, 20000);
    cr_assert_eq(tally.ok, MSG_COUNT, "delivered %d, failed %d (%s)", tally.ok, tally.failed,
                 rd_kafka_err2str(tally.last_err));

    static struct readback rb;
    long long first_ms = -1;
    rd_kafka_t *c1 = new_consumer(kl.bootstrap, "it-group");
    subscribe(c1);
    consume(c1, "key", &rb, MSG_COUNT, 30000, &first_ms);
    cr_assert_eq(rb.total, MSG_COUNT, "read %d of %d", rb.total, MSG_COUNT);
    cr_assert_eq(rb.foreign, 0);
    cr_assert_eq(rb.bad_value, 0);
    for (int i = 0; i < MSG_COUNT; i++)
        cr_assert_eq(rb.counts[i], 1, "key %d seen %d times", i, rb.counts[i]);
    rd_kafka_resp_err_t err = rd_kafka_commit(c1, NULL, 0);
    cr_assert_eq(err, 0, "commit: %s", rd_kafka_err2str(err));
    cr_assert_eq(committed_sum(c1), MSG_COUNT);
    fprintf(stderr, "kafka-local: startup %lld ms, first group join + first message %lld ms\n",
            kl.startup_ms, first_ms);
    rd_kafka_consumer_close(c1);
    rd_kafka_destroy(c1);

    /* New messages after the close; a second member must read only those. */
    produce(prod, "new", 0, 10, -1);
    wait_reports(prod, &tally, MSG_COUNT + 10, 10000);
    cr_assert_eq(tally.ok, MSG_COUNT + 10);

    static struct readback rb2;
    rd_kafka_t *c2 = new_consumer(kl.bootstrap, "it-group");
    subscribe(c2);
    long long second_ms = -1;
    consume(c2, "new", &rb2, 10, 30000, &second_ms);
    fprintf(stderr, "kafka-local: second group join + first message %lld ms\n", second_ms);
    consume(c2, "new", &rb2, 11, 1000, NULL); /* nothing further may arrive */
    cr_assert_eq(rb2.foreign, 0, "second member re-read %d old messages", rb2.foreign);
    cr_assert_eq(rb2.total, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(rb2.counts[i], 1);
    rd_kafka_consumer_close(c2);
    rd_kafka_destroy(c2);
    rd_kafka_destroy(prod);
}

Test(kafka_local, default_topics_have_32_partitions)
{
    rd_kafka_t *rk;
    const rd_kafka_metadata_t *md = all_metadata(kl.bootstrap, &rk);
    cr_assert_eq(md->broker_cnt, 3);
    const char *names[] = {"invoice-events", "invoice-results", "invoice-events-dlq"};
    for (int i = 0; i < 3; i++) {
        const rd_kafka_metadata_topic_t *t = find_topic(md, names[i]);
        cr_assert_not_null(t, "topic %s missing", names[i]);
        cr_assert_eq(t->err, 0);
        cr_assert_eq(t->partition_cnt, PARTITIONS, "%s has %d", names[i], t->partition_cnt);
        for (int p = 0; p < t->partition_cnt; p++)
            cr_assert(t->partitions[p].leader >= 1 && t->partitions[p].leader <= 3);
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
}

Test(kafka_local, options_and_topic_command)
{
    teardown();
    const char *args[] = {"--brokers", "1",       "--partitions", "5", "--topic",
                          "alpha:4",   "--topic", "beta",         NULL};
    kl_start_args(&kl, args);
    kl_ok(&kl, "topic gamma 7");
    rd_kafka_t *rk;
    const rd_kafka_metadata_t *md = all_metadata(kl.bootstrap, &rk);
    cr_assert_eq(md->broker_cnt, 1);
    cr_assert_null(find_topic(md, "invoice-events"), "--topic must replace the defaults");
    const rd_kafka_metadata_topic_t *a = find_topic(md, "alpha");
    const rd_kafka_metadata_topic_t *b = find_topic(md, "beta");
    const rd_kafka_metadata_topic_t *g = find_topic(md, "gamma");
    cr_assert(a && b && g);
    cr_assert_eq(a->partition_cnt, 4);
    cr_assert_eq(b->partition_cnt, 5);
    cr_assert_eq(g->partition_cnt, 7);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
}

Test(kafka_local, bad_arguments_exit_2)
{
    iw_proc p;
    char *argv[] = {(char *)iw_build_path("kafka-local"), "--brokers", "0", NULL};
    cr_assert_eq(iw_proc_start(&p, argv, true), 0);
    int st = iw_proc_wait(&p, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
}

Test(kafka_local, control_ping_and_errors)
{
    char reply[256];
    kl_cmd(&kl, "ping", reply, sizeof(reply));
    cr_assert_str_eq(reply, "ok pong");
    const char *bad[] = {"frobnicate",
                         "broker down 99",
                         "broker sideways 1",
                         "rtt 1",
                         "errors Nope 1 REQUEST_TIMED_OUT",
                         "errors Produce 1 NO_SUCH_ERROR",
                         "errors Produce 0 REQUEST_TIMED_OUT",
                         "topic invoice-events 3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kl_cmd(&kl, bad[i], reply, sizeof(reply));
        cr_assert(strncmp(reply, "error ", 6) == 0, "%s -> %s", bad[i], reply);
    }
    kl_cmd(&kl, "rtt 2 0", reply, sizeof(reply));
    cr_assert_str_eq(reply, "ok rtt 2 0");
    kl_cmd(&kl, "ping", reply, sizeof(reply));
    cr_assert_str_eq(reply, "ok pong");
}

Test(kafka_local, injected_error_reaches_client)
{
    char reply[256];
    kl_cmd(&kl, "errors 0 1 10", reply, sizeof(reply)); /* Produce, MSG_SIZE_TOO_LARGE */
    cr_assert_str_eq(reply, "ok errors 0 1 MSG_SIZE_TOO_LARGE");
    struct dr_tally tally = {0};
    rd_kafka_t *rk = new_producer(kl.bootstrap, false, &tally);
    produce(rk, "deny", 0, 1, 0);
    wait_reports(rk, &tally, 1, 10000);
    cr_assert_eq(tally.failed, 1);
    cr_assert_eq(tally.last_err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    produce(rk, "deny", 1, 1, 0); /* the error was used up */
    wait_reports(rk, &tally, 2, 10000);
    cr_assert_eq(tally.ok, 1);
    rd_kafka_destroy(rk);
}

Test(kafka_local, idempotent_producer_survives_not_leader)
{
    enum { N = 200 };
    kl_ok(&kl, "errors Produce 3 NOT_LEADER_FOR_PARTITION");
    struct dr_tally tally = {0};
    rd_kafka_t *prod = new_producer(kl.bootstrap, true, &tally);
    produce(prod, "idem", 0, N, -1);
    wait_reports(prod, &tally, N, 20000);
    cr_assert_eq(tally.ok, N, "delivered %d, failed %d (%s)", tally.ok, tally.failed,
                 rd_kafka_err2str(tally.last_err));
    rd_kafka_destroy(prod);

    /* Read every partition from the start without a group: each key exactly once. */
    rd_kafka_t *c = new_consumer(kl.bootstrap, "it-reader");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    cr_assert_eq(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    static struct readback rb;
    consume(c, "idem", &rb, N, 20000, NULL);
    consume(c, "idem", &rb, N + 1, 1000, NULL);
    cr_assert_eq(rb.total, N);
    cr_assert_eq(rb.foreign, 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(rb.counts[i], 1, "key %d seen %d times", i, rb.counts[i]);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);

    /* The three errors were used up by those requests: a producer that never retries now
     * succeeds at once. */
    struct dr_tally once = {0};
    rd_kafka_t *plain = new_producer(kl.bootstrap, false, &once);
    produce(plain, "plain", 0, 1, 0);
    wait_reports(plain, &once, 1, 10000);
    cr_assert_eq(once.ok, 1, "error left on the stack: %s", rd_kafka_err2str(once.last_err));
    rd_kafka_destroy(plain);
}

Test(kafka_local, broker_down_then_up)
{
    rd_kafka_t *mdrk;
    const rd_kafka_metadata_t *md = all_metadata(kl.bootstrap, &mdrk);
    const rd_kafka_metadata_topic_t *t = find_topic(md, TOPIC);
    cr_assert_not_null(t);
    int on_broker1 = 0;
    for (int p = 0; p < t->partition_cnt; p++)
        on_broker1 += t->partitions[p].leader == 1;
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(mdrk);
    cr_assert_gt(on_broker1, 0, "broker 1 leads no partition");

    kl_ok(&kl, "broker down 1");
    struct dr_tally tally = {0};
    rd_kafka_t *prod = new_producer(kl.bootstrap, true, &tally);
    for (int p = 0; p < PARTITIONS; p++)
        produce(prod, "down", p, 1, p);
    wait_reports(prod, &tally, PARTITIONS, 2000);
    cr_assert_eq(tally.failed, 0);
    cr_assert_leq(tally.ok, PARTITIONS - on_broker1, "broker 1 still took writes");

    long long t0 = iw_now_ms();
    kl_ok(&kl, "broker up 1");
    wait_reports(prod, &tally, PARTITIONS, 20000);
    cr_assert_eq(tally.ok, PARTITIONS, "delivered %d after broker 1 came back", tally.ok);
    fprintf(stderr, "kafka-local: producer recovered %lld ms after broker up\n", iw_now_ms() - t0);
    rd_kafka_destroy(prod);
}

Test(kafka_local, stdin_eof_and_signal_control)
{
    close(kl.in_fd);
    kl.in_fd = -1;
    cr_assert_eq(iw_proc_wait(&kl.proc, 500), -1, "kafka-local exited on stdin EOF");
    char reply[256];
    iw_proc_signal(&kl.proc, SIGUSR1);
    cr_assert_geq(iw_proc_read_line(&kl.proc, reply, sizeof(reply), 5000), 0);
    cr_assert_str_eq(reply, "ok broker 1 down");
    iw_proc_signal(&kl.proc, SIGUSR2);
    cr_assert_geq(iw_proc_read_line(&kl.proc, reply, sizeof(reply), 5000), 0);
    cr_assert_str_eq(reply, "ok broker 1 up");
    rd_kafka_t *rk;
    const rd_kafka_metadata_t *md = all_metadata(kl.bootstrap, &rk);
    cr_assert_not_null(find_topic(md, TOPIC));
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
}

Test(kafka_local, control_fifo)
{
    teardown();
    char dir[] = "/tmp/iw-kafka-local-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof(fifo), "%s/control", dir);
    const char *args[] = {"--control-fifo", fifo, NULL};
    kl_start_args(&kl, args);
    int fd = open(fifo, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "ping\nbroker down 2\n", 19), 19);
    close(fd);
    char reply[256];
    cr_assert_geq(iw_proc_read_line(&kl.proc, reply, sizeof(reply), 5000), 0);
    cr_assert_str_eq(reply, "ok pong");
    cr_assert_geq(iw_proc_read_line(&kl.proc, reply, sizeof(reply), 5000), 0);
    cr_assert_str_eq(reply, "ok broker 2 down");
    int st = iw_proc_stop(&kl.proc, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct stat sb;
    cr_assert_neq(stat(fifo, &sb), 0, "the FIFO kafka-local made was left behind");
    rmdir(dir);
}

Test(kafka_local, sigterm_and_sigint_exit_0_quickly)
{
    long long t0 = iw_now_ms();
    int st = iw_proc_stop(&kl.proc, 5000);
    long long took = iw_now_ms() - t0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert_lt(took, 3000, "SIGTERM took %lld ms", took);
    fprintf(stderr, "kafka-local: SIGTERM exit took %lld ms\n", took);

    teardown();
    kl_start_args(&kl, NULL);
    iw_proc_signal(&kl.proc, SIGINT);
    st = iw_proc_wait(&kl.proc, 3000);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(kafka_local, kcat_lists_topics)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "kcat -b '%s' -L -m 10 2>&1", kl.bootstrap);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    static char out[65536];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kcat failed: %s", out);
    cr_assert_not_null(strstr(out, " 3 brokers:"), "%s", out);
    const char *want[] = {"topic \"invoice-events\" with 32 partitions",
                          "topic \"invoice-results\" with 32 partitions",
                          "topic \"invoice-events-dlq\" with 32 partitions"};
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(strstr(out, want[i]), "kcat output lacks %s", want[i]);
}
