/* main.c: local-stack, the command line of the local stack (tests/support/lib/stack.c): starts
 * redis-server, kafka-local and target-sim on free loopback ports, writes the one worker config
 * for them, prints what callers need as KEY=value lines and stops everything it started when
 * stdin ends or a signal comes. scripts/demo and scripts/bench run it; the C tests and the
 * chaos driver call the same code in process. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stack.h"

#define MAX_SETS 16 /* --set may be given at most this often */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: local-stack [--partitions N] [--brokers N] [--aof] [--no-kafka]\n"
        "                   [--validate on|off] [--latency MS] [--faults JSON] [--dir DIR]\n"
        "                   [--ignore-stdin] [CONFIG OPTIONS]\n"
        "       local-stack config --kafka ADDR --redis-port N --sim URL [CONFIG OPTIONS]\n"
        "config options:\n"
        "       [--config PATH] [--http-port N | --no-http] [--profile test]\n"
        "       [--set JSON]... [--worker JSON] [--targets JSON]\n"
        "\n"
        "Starts redis-server (AOF with --aof), kafka-local (--brokers brokers, 3; --partitions\n"
        "per topic, 8) and target-sim (--validate, on; every reply delayed --latency ms;\n"
        "--faults: a fault spec or array for POST /_sim/faults) on free loopback ports, in DIR\n"
        "(default a new /tmp/iw-stack-XXXXXX, removed at the end), and writes the worker config\n"
        "(tests/fixtures/config/local-stack.json filled in; default DIR/config.json, no config\n"
        "with --no-kafka unless --config is given). Prints KEY=value lines:\n"
        "  DIR REDIS_PORT REDIS_PID BROKERS KAFKA_PID SIM_URL SIM_PORT SIM_PID HTTP_PORT CONFIG\n"
        "  ENV_FILE (the simulator's credentials, which the config names as ${IW_SIM_*})\n"
        "then READY=1, and stops everything it started when stdin ends (unless --ignore-stdin)\n"
        "or on SIGTERM, SIGINT or SIGHUP.\n"
        "`config` writes the config only (to --config PATH, or stdout), for given addresses.\n"
        "--http-port: the worker's /metrics port (default a free one; --no-http: none).\n"
        "--profile test: what the C tests run with (short retries, a 15 s lease). JSON objects\n"
        "are merged over the template in this order: the profile, each --set over the whole\n"
        "config, --worker over \"worker\", --targets over every target instance.\n");
}

/* The config part of the command line. */
typedef struct conf_opts {
    const char *path;
    int http_port; /* -1: none */
    bool test_profile;
    const char *sets[MAX_SETS];
    size_t n_sets;
    const char *worker, *targets;
} conf_opts;

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Takes a config option at argv[*i] (and its value). 1 when taken, 0 when not one, -1 bad. */
static int conf_opt(conf_opts *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (strcmp(a, "--no-http") == 0) {
        c->http_port = -1;
        return 1;
    }
    if (strcmp(a, "--profile") == 0) {
        if (!v || strcmp(v, "test") != 0)
            return -1;
        c->test_profile = true;
    } else if (strcmp(a, "--config") == 0 && v) {
        c->path = v;
    } else if (strcmp(a, "--http-port") == 0) {
        if (parse_int(v, 1, 65535, &c->http_port) != 0)
            return -1;
    } else if (strcmp(a, "--set") == 0 && v) {
        if (c->n_sets == MAX_SETS)
            return -1;
        c->sets[c->n_sets++] = v;
    } else if (strcmp(a, "--worker") == 0 && v) {
        c->worker = v;
    } else if (strcmp(a, "--targets") == 0 && v) {
        c->targets = v;
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

/* Writes the config for a; path NULL: to stdout. 0 or -1. */
static int write_config(const conf_opts *c, iw_stack_addrs a, const char *path)
{
    iw_stack_overlay ov[MAX_SETS + 2];
    size_t n = 0;
    if (c->test_profile)
        ov[n++] = iw_stack_test_profile;
    for (size_t i = 0; i < c->n_sets; i++)
        ov[n++] = (iw_stack_overlay){.root = c->sets[i]};
    ov[n++] = (iw_stack_overlay){.worker = c->worker, .targets = c->targets};
    return iw_stack_config_write(path ? path : "-", &a, ov, n);
}

/* local-stack config: the config for addresses given on the command line. */
static int config_main(int argc, char **argv)
{
    conf_opts c = {.http_port = 0};
    iw_stack_addrs a = {0};
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = conf_opt(&c, argc, argv, &i);
        if (r < 0)
            goto bad;
        if (r > 0)
            continue;
        if (strcmp(argv[i], "--kafka") == 0 && v)
            a.brokers = v;
        else if (strcmp(argv[i], "--redis-port") == 0 && parse_int(v, 1, 65535, &a.redis_port) == 0)
            ;
        else if (strcmp(argv[i], "--sim") == 0 && v)
            a.sim_base = v;
        else
            goto bad;
        i++;
    }
    if (!a.brokers || !a.redis_port || !a.sim_base)
        goto bad;
    a.http_port = c.http_port > 0 ? c.http_port : 0;
    return write_config(&c, a, c.path) == 0 ? 0 : 1;
bad:
    usage(stderr);
    return 2;
}

/* Blocks until a stop signal, or the end of stdin when watch_stdin. */
static void wait_for_stop(bool watch_stdin)
{
    while (!stop_requested) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, watch_stdin ? 1 : 0, 200);
        if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            char buf[256];
            ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));
            if (got <= 0 && !(got < 0 && errno == EINTR))
                return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "config") == 0)
        return config_main(argc, argv);
    iw_stack_opts o = {0};
    conf_opts c = {.http_port = 0};
    bool watch_stdin = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = conf_opt(&c, argc, argv, &i);
        if (r < 0)
            goto bad;
        if (r > 0)
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--aof") == 0) {
            o.aof = true;
        } else if (strcmp(a, "--no-kafka") == 0) {
            o.no_kafka = true;
        } else if (strcmp(a, "--ignore-stdin") == 0) {
            watch_stdin = false;
        } else if (strcmp(a, "--partitions") == 0) {
            if (parse_int(v, 1, 10000, &o.partitions) != 0)
                goto bad;
            i++;
        } else if (strcmp(a, "--brokers") == 0) {
            if (parse_int(v, 1, 64, &o.brokers) != 0)
                goto bad;
            i++;
        } else if (strcmp(a, "--latency") == 0) {
            if (parse_int(v, 0, 600000, &o.latency_ms) != 0)
                goto bad;
            i++;
        } else if (strcmp(a, "--validate") == 0 && v &&
                   (strcmp(v, "on") == 0 || strcmp(v, "off") == 0)) {
            o.validate = v;
            i++;
        } else if (strcmp(a, "--faults") == 0 && v) {
            o.faults = v;
            i++;
        } else if (strcmp(a, "--dir") == 0 && v) {
            o.dir = v;
            i++;
        } else {
            goto bad;
        }
    }
    /* the KEY=value lines go to the caller's stdout; what the servers print goes to stderr */
    int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    FILE *out = out_fd >= 0 ? fdopen(out_fd, "w") : NULL;
    if (!out || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        perror("local-stack: stdout");
        return 1;
    }
    setvbuf(out, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    iw_stack s;
    char config[512] = "";
    int rc = 1;
    if (iw_stack_launch(&s, &o) != 0)
        goto out;
    if (c.path || !o.no_kafka) {
        if (c.path)
            snprintf(config, sizeof(config), "%s", c.path);
        else
            snprintf(config, sizeof(config), "%s/config.json", s.dir);
        if (c.http_port == 0)
            c.http_port = iw_free_port();
        iw_stack_addrs a = {s.brokers, s.redis.port, s.sim_base, c.http_port > 0 ? c.http_port : 0};
        if (write_config(&c, a, config) != 0)
            goto out;
    }
    fprintf(out, "DIR=%s\n", s.dir);
    fprintf(out, "REDIS_PORT=%d\nREDIS_PID=%d\n", s.redis.port, (int)s.redis.proc.pid);
    if (!o.no_kafka)
        fprintf(out, "BROKERS=%s\nKAFKA_PID=%d\n", s.brokers, (int)s.kafka.pid);
    fprintf(out, "SIM_URL=%s\nSIM_PORT=%d\nSIM_PID=%d\n", s.sim_base, s.sim_port, (int)s.sim.pid);
    if (config[0]) {
        if (c.http_port > 0)
            fprintf(out, "HTTP_PORT=%d\n", c.http_port);
        fprintf(out, "CONFIG=%s\n", config);
    }
    fprintf(out, "ENV_FILE=%s\nREADY=1\n", iw_stack_env_file());
    fflush(out);
    wait_for_stop(watch_stdin);
    rc = 0;
out:
    if (s.dir[0])
        iw_stack_stop(&s);
    fclose(out);
    return rc;
bad:
    usage(stderr);
    return 2;
}
