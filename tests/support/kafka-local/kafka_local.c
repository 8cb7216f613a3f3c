/* kafka_local.c: kafka-local, a librdkafka mock Kafka cluster for tests and the demo. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "control.h"

#define MAX_TOPICS 32        /* --topic may be given at most this often */
#define MAX_BROKERS 64       /* sanity cap on --brokers */
#define MAX_PARTITIONS 10000 /* sanity cap on partitions per topic */
#define POLL_MS 200          /* how long the loop sleeps between signal checks */
#define LINE_MAX_LEN 512     /* longest control line accepted */

static volatile sig_atomic_t stop_requested; /* SIGTERM/SIGINT seen */
static volatile sig_atomic_t usr1_pending;   /* SIGUSR1 seen: take broker 1 down */
static volatile sig_atomic_t usr2_pending;   /* SIGUSR2 seen: bring broker 1 up */

/* One topic to create at start. */
struct topic_spec {
    const char *name; /* points into argv or a literal */
    int partitions;   /* 0 means the --partitions default */
};

/* Command-line settings. */
struct options {
    int brokers;                          /* mock broker count */
    int partitions;                       /* default partitions per topic */
    struct topic_spec topics[MAX_TOPICS]; /* topics to create */
    int topic_cnt;                        /* entries used in topics */
    char topic_buf[MAX_TOPICS][256];      /* storage for NAME:PARTITIONS splits */
    const char *control_fifo;             /* extra control input (named pipe), or NULL */
};

/* A source of control lines: stdin or the FIFO. */
struct line_source {
    int fd;                 /* -1 once closed or when unused */
    char buf[LINE_MAX_LEN]; /* partial line carried between reads */
    size_t len;             /* bytes used in buf */
    int overflow;           /* the current line is too long; drop it up to its newline */
};

/* SIGTERM/SIGINT: ask the loop to stop. */
static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGUSR1/SIGUSR2: the loop takes broker 1 down or up (only flags are touched here). */
static void on_usr(int sig)
{
    if (sig == SIGUSR1)
        usr1_pending = 1;
    else
        usr2_pending = 1;
}

/* Prints the command-line summary. */
static void usage(FILE *f)
{
    fprintf(f, "usage: kafka-local [--brokers N] [--partitions P] [--topic NAME[:PARTITIONS]]...\n"
               "                   [--control-fifo PATH]\n"
               "Prints the bootstrap address as its first line, then answers control commands\n"
               "on stdin (and PATH) until SIGTERM or SIGINT.\n");
}

/* Parses a whole decimal integer in [lo, hi] into *out. 0 or -1. */
static int parse_count(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Adds NAME or NAME:PARTITIONS to the topic list. 0 or -1. */
static int add_topic(struct options *o, const char *arg)
{
    if (o->topic_cnt == MAX_TOPICS || strlen(arg) >= sizeof(o->topic_buf[0]) || !arg[0])
        return -1;
    char *name = o->topic_buf[o->topic_cnt];
    snprintf(name, sizeof(o->topic_buf[0]), "%s", arg);
    int parts = 0;
    char *colon = strrchr(name, ':');
    if (colon) {
        *colon = '\0';
        if (!name[0] || parse_count(colon + 1, 1, MAX_PARTITIONS, &parts) != 0)
            return -1;
    }
    o->topics[o->topic_cnt].name = name;
    o->topics[o->topic_cnt].partitions = parts;
    o->topic_cnt++;
    return 0;
}

/* Says which option value was refused; returns -1. */
static int bad_value(const char *opt, const char *val)
{
    fprintf(stderr, "kafka-local: bad value for --%s: %s\n", opt, val);
    return -1;
}

/* Fills o from argv. Returns 0, 1 for --help, or -1 on a bad argument. */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'}, {"partitions", required_argument, NULL, 'p'},
        {"topic", required_argument, NULL, 't'},   {"control-fifo", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->brokers = 3;
    o->partitions = 32;
    int c;
    while ((c = getopt_long(argc, argv, "b:p:t:c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (parse_count(optarg, 1, MAX_BROKERS, &o->brokers) != 0)
                return bad_value("brokers", optarg);
            break;
        case 'p':
            if (parse_count(optarg, 1, MAX_PARTITIONS, &o->partitions) != 0)
                return bad_value("partitions", optarg);
            break;
        case 't':
            if (add_topic(o, optarg) != 0)
                return bad_value("topic", optarg);
            break;
        case 'c': o->control_fifo = optarg; break;
        case 'h': return 1;
        default: return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kafka-local: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->topic_cnt == 0) {
        static const char *const defaults[] = {"invoice-events", "invoice-results",
                                               "invoice-events-dlq"};
        for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
            o->topics[o->topic_cnt++].name = defaults[i];
    }
    return 0;
}

/* Routes stop and broker signals to flags; ignores SIGPIPE. */
static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_handler = SIG_IGN; /* a reader that went away must not kill the cluster */
    sigaction(SIGPIPE, &sa, NULL);
}

/* Writes one reply line to stdout, flushed. */
static void reply_line(const char *reply)
{
    printf("%s\n", reply);
    fflush(stdout);
}

/* Runs the complete lines buffered in src, keeping any partial tail. */
static void run_lines(struct line_source *src, rd_kafka_mock_cluster_t *mc, int replication)
{
    char reply[LINE_MAX_LEN + 64];
    char *start = src->buf;
    char *nl;
    while ((nl = memchr(start, '\n', src->len - (size_t)(start - src->buf))) != NULL) {
        *nl = '\0';
        if (src->overflow) {
            src->overflow = 0;
            reply_line("error line too long");
        } else if (start[strspn(start, " \t\r")] != '\0') { /* blank lines are ignored */
            iw_klctl_exec(mc, replication, start, reply, sizeof(reply));
            reply_line(reply);
        }
        start = nl + 1;
    }
    size_t rest = src->len - (size_t)(start - src->buf);
    memmove(src->buf, start, rest);
    src->len = rest;
    if (src->len == sizeof(src->buf)) { /* no newline in a full buffer */
        src->overflow = 1;
        src->len = 0;
    }
}

/* Reads what is available on src. EOF or an error closes the source, never the program. */
static void read_source(struct line_source *src, rd_kafka_mock_cluster_t *mc, int replication)
{
    ssize_t n = read(src->fd, src->buf + src->len, sizeof(src->buf) - src->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        if (src->fd != STDIN_FILENO)
            close(src->fd);
        src->fd = -1;
        return;
    }
    src->len += (size_t)n;
    run_lines(src, mc, replication);
}

/* Opens (creating when missing, then setting *made) the control FIFO for reading. Opened
 * read-write so that writers coming and going never produce EOF. Returns the fd or -1. */
static int open_fifo(const char *path, int *made)
{
    if (mkfifo(path, 0600) == 0)
        *made = 1;
    else if (errno != EEXIST) {
        fprintf(stderr, "kafka-local: mkfifo %s: %s\n", path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "kafka-local: open %s: %s\n", path, strerror(errno));
        if (*made)
            unlink(path);
    }
    return fd;
}

/* Handles pending SIGUSR1/SIGUSR2 requests on broker 1. */
static void run_signal_commands(rd_kafka_mock_cluster_t *mc, int replication)
{
    char reply[128];
    if (usr1_pending) {
        usr1_pending = 0;
        iw_klctl_exec(mc, replication, "broker down 1", reply, sizeof(reply));
        reply_line(reply);
    }
    if (usr2_pending) {
        usr2_pending = 0;
        iw_klctl_exec(mc, replication, "broker up 1", reply, sizeof(reply));
        reply_line(reply);
    }
}

/* Serves control input until a stop signal arrives. */
static void serve(rd_kafka_t *rk, rd_kafka_mock_cluster_t *mc, int replication, int fifo_fd)
{
    static struct line_source sources[2];
    sources[0].fd = STDIN_FILENO;
    sources[1].fd = fifo_fd;
    while (!stop_requested) {
        struct pollfd pfd[2];
        for (int i = 0; i < 2; i++)
            pfd[i] = (struct pollfd){.fd = sources[i].fd, .events = POLLIN};
        int r = poll(pfd, 2, POLL_MS);
        run_signal_commands(mc, replication);
        for (int i = 0; r > 0 && i < 2; i++)
            if (sources[i].fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                read_source(&sources[i], mc, replication);
        rd_kafka_poll(rk, 0); /* serves the handle's log and error callbacks */
    }
    if (sources[1].fd >= 0)
        close(sources[1].fd);
}

/* Creates every topic; logs and returns -1 on the first failure. */
static int create_topics(rd_kafka_mock_cluster_t *mc, const struct options *o, int replication)
{
    for (int i = 0; i < o->topic_cnt; i++) {
        int parts = o->topics[i].partitions ? o->topics[i].partitions : o->partitions;
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, o->topics[i].name, parts, replication);
        if (err) {
            fprintf(stderr, "kafka-local: topic %s: %s\n", o->topics[i].name,
                    rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

/* The handle that owns the mock cluster; it never connects anywhere itself. */
static rd_kafka_t *new_handle(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "client.id", "kafka-local", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr))) {
        fprintf(stderr, "kafka-local: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka-local: %s\n", errstr);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new() takes conf only when it succeeds */
    }
    return rk;
}

int main(int argc, char **argv)
{
    struct options *o = calloc(1, sizeof(*o));
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    int rc = 1, fifo_fd = -1, fifo_made = 0;
    if (!o)
        return 1;
    int pr = parse_args(argc, argv, o);
    if (pr != 0) {
        usage(pr > 0 ? stdout : stderr);
        free(o);
        return pr > 0 ? 0 : 2;
    }
    install_signals();
    int replication = o->brokers < 3 ? o->brokers : 3;

    rk = new_handle();
    if (!rk)
        goto out_options;
    mc = rd_kafka_mock_cluster_new(rk, o->brokers);
    if (!mc) {
        fprintf(stderr, "kafka-local: cannot create the mock cluster\n");
        goto out_handle;
    }
    /* librdkafka 2.0.2 has no setter for the group initial rebalance delay: a group's first
     * join waits its fixed ~3 s. Clients pick their own session.timeout.ms. */
    if (create_topics(mc, o, replication) != 0)
        goto out_cluster;
    if (o->control_fifo && (fifo_fd = open_fifo(o->control_fifo, &fifo_made)) < 0)
        goto out_cluster;

    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    printf("%s\n", bootstrap);
    fflush(stdout);
    fprintf(stderr, "kafka-local: %d broker(s), %d topic(s), at %s\n", o->brokers, o->topic_cnt,
            bootstrap);

    serve(rk, mc, replication, fifo_fd);
    fprintf(stderr, "kafka-local: stopping\n");
    rc = 0;
    if (fifo_made)
        unlink(o->control_fifo);

out_cluster:
    rd_kafka_mock_cluster_destroy(mc);
out_handle:
    rd_kafka_destroy(rk);
out_options:
    free(o);
    return rc;
}
