/* run.c: `invoice-worker run`: signals, config, the pipeline and the HTTP endpoint. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "http.h"
#include "log.h"
#include "pipeline.h"

static volatile sig_atomic_t stop_requested;

/* The pipeline seen through the health interface of the HTTP endpoint. */
static void pipeline_health(void *ctx, iw_health_status *out)
{
    iw_pipeline_stats st;
    iw_pipeline_stats_copy(ctx, &st);
    out->last_loop_ms = st.last_loop_ms;
    out->ledger_ok = st.ledger_ok;
    out->producer_ok = st.producer_ok;
    out->in_group = st.assigned;
    out->ledger_refused = st.ledger_refused;
}

static void on_signal(int sig)
{
    (void)sig;
    if (!stop_requested) /* a second signal keeps what the first one led to */
        stop_requested = 1;
}

/* glibc gives each thread that allocates while another holds the lock an arena of its own, up
 * to 8 per core, and an arena keeps what was freed in it: librdkafka's broker threads, which
 * decompress whole fetches, held up to a third of the worker's peak memory that way. One arena,
 * shared by the loop and librdkafka's threads, unless MALLOC_ARENA_MAX says otherwise: with
 * two, the loop's heap and the threads' arena each kept room for the other's peak (scenario 2
 * peaked at 58 to 65 MiB in seven runs, against 56 to 58 MiB with one), and one costs no CPU
 * that the bench can see (the loop allocates from its thread cache). Called before any thread
 * starts. */
static void limit_malloc_arenas(void)
{
#ifdef M_ARENA_MAX
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 1);
#endif
}

/* The soft open-file limit up to the hard one: sockets to the targets, Redis, Kafka and the
 * HTTP endpoint's clients all need descriptors, and 1,024, a common soft limit, is few (every
 * wait here is epoll or poll, never select, so a descriptor above 1,023 is fine). */
static void raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static const char RUN_USAGE[] =
    "usage: invoice-worker run -c FILE\n"
    "\n"
    "Runs the worker until SIGTERM, SIGINT or SIGHUP: consumes the input topic in the configured\n"
    "consumer group, calls the targets, publishes results and dead letters. On any of them it\n"
    "stops fetching, lets in-flight calls finish within worker.shutdown_grace_s, releases the\n"
    "leases of what it abandons, flushes the producer, commits finished offsets and exits 0.\n"
    "Exit status: 0 clean stop, 1 fatal error (restart me), 2 usage or config error.\n";

int iw_cli_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'h': fputs(RUN_USAGE, stdout); return 0;
        case 'V': return iw_cli_print_version();
        default: fputs(RUN_USAGE, stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        fputs(RUN_USAGE, stderr);
        return 2;
    }
    iw_config *cfg = iw_cli_load_config(path);
    if (!cfg)
        return 2;
    iw_log_set_level(cfg->log_level);
    for (size_t i = 0; i < cfg->n_targets; i++)
        if (!cfg->targets[i].tls_verify)
            iw_log(IW_LOG_WARN, "TLS certificate verification is OFF for a target", "target",
                   cfg->targets[i].name, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction hup;
    if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN) /* nohup: keep it */
        sigaction(SIGHUP, &sa, NULL); /* a closed terminal, or an operator's habit: stop cleanly */
    signal(SIGPIPE, SIG_IGN);

    limit_malloc_arenas();
    raise_open_files();
    char err[512];
    iw_pipeline *p = iw_pipeline_new(cfg, &stop_requested, err, sizeof(err));
    if (!p && stop_requested == IW_PIPELINE_STOPPED_AT_START) { /* SIGTERM while it waited */
        iw_log(IW_LOG_INFO, "stopped before the start finished", "reason", err, NULL);
        iw_config_free(cfg);
        return 0;
    }
    if (!p) {
        iw_log(IW_LOG_ERROR, "cannot start", "error", err, NULL);
        iw_config_free(cfg);
        return 1;
    }
    iw_http *http = NULL;
    if (cfg->http_listen && *cfg->http_listen) {
        iw_health health = {p, pipeline_health, iw_pipeline_metrics(p)};
        http = iw_http_start(cfg->http_listen, &health, err, sizeof(err));
        if (!http) {
            iw_log(IW_LOG_ERROR, "cannot start the HTTP endpoint", "error", err, NULL);
            iw_pipeline_free(p);
            iw_config_free(cfg);
            return 1;
        }
    }
    int rc = iw_pipeline_run(p, &stop_requested);
    iw_http_stop(http);
    iw_pipeline_free(p);
    iw_config_free(cfg);
    return rc;
}
