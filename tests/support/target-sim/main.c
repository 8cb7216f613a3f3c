/* main.c: target-sim, a strict stand-in for the invoice APIs in routes.h: command line, start,
 * stop. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "faults.h"
#include "server.h"
#include "state.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: target-sim --listen 127.0.0.1:PORT [--config FILE] [--validate on|off]\n"
               "                  [--exit-with-parent]\n"
               "\n"
               "Serves these contracts on their real paths:\n");
    for (int t = 0; t < IW_SIM_N_TARGETS; t++)
        fprintf(f, "  %-16s %s\n", iw_sim_routes[t]->name, iw_sim_routes[t]->about);
    fprintf(
        f, "checks each request against its contract, keeps what it was sent, and injects faults.\n"
           "Control API under /_sim/ (JSON):\n"
           "  GET /_sim/state[?target=T&id=ID]  GET /_sim/calls[?key=EVENT:TARGET|?prefix=P]\n"
           "  GET /_sim/stats  GET /_sim/faults  POST /_sim/faults  POST /_sim/reset\n"
           "  POST /_sim/settle {\"id\":..}  POST /_sim/expire-token  POST /_sim/validate\n"
           "Prints \"target-sim listening on HOST:PORT\" once ready; exits 0 on SIGTERM/SIGINT.\n");
}

static int parse_listen(iw_sim_conf *c, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(c->listen_host))
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1)
        return -1;
    memcpy(c->listen_host, arg, (size_t)(colon - arg));
    c->listen_host[colon - arg] = '\0';
    c->listen_port = (int)port;
    return 0;
}

static bool exit_with_parent; /* --exit-with-parent: SIGTERM when the parent dies (tests) */

/* Reads the command line into c. Returns 0, 1 for --help, -1 on a usage mistake, -2 for a
 * bad config file (both printed). */
static int parse_args(int argc, char **argv, iw_sim_conf *c)
{
    const char *listen = NULL, *config = NULL, *validate = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--exit-with-parent") == 0) {
            exit_with_parent = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "target-sim: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--listen") == 0)
            listen = argv[++i];
        else if (strcmp(a, "--config") == 0)
            config = argv[++i];
        else if (strcmp(a, "--validate") == 0)
            validate = argv[++i];
        else {
            fprintf(stderr, "target-sim: unknown option %s\n", a);
            return -1;
        }
    }
    if (!listen || parse_listen(c, listen) != 0) {
        fprintf(stderr, "target-sim: --listen HOST:PORT is required\n");
        return -1;
    }
    char err[256];
    if (config && iw_sim_conf_load(c, config, err, sizeof(err)) != 0) {
        fprintf(stderr, "target-sim: config: %s\n", err);
        return -2;
    }
    if (validate) {
        if (strcmp(validate, "on") != 0 && strcmp(validate, "off") != 0) {
            fprintf(stderr, "target-sim: --validate on|off\n");
            return -1;
        }
        c->validate = strcmp(validate, "on") == 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    if (iw_sim_routes_check(err, sizeof(err)) != 0) {
        fprintf(stderr, "target-sim: %s\n", err);
        return 2;
    }
    iw_sim_conf conf;
    iw_sim_conf_defaults(&conf);
    int rc = parse_args(argc, argv, &conf);
    if (rc != 0) {
        if (rc != -2)
            usage(rc > 0 ? stdout : stderr);
        iw_sim_conf_clear(&conf);
        return rc > 0 ? 0 : 2;
    }
    xmlInitParser();
    iw_sim_state_init(&conf);
    iw_sim_faults_init(conf.seed);
    if (conf.faults && iw_sim_faults_add(conf.faults, err, sizeof(err)) != 0) {
        fprintf(stderr, "target-sim: config faults: %s\n", err);
        iw_sim_conf_clear(&conf);
        return 2;
    }

    /* Signals are taken by sigwait below; every thread started after this inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pid_t parent = getppid();
    if (exit_with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)) {
        iw_sim_conf_clear(&conf);
        return 0; /* the parent is already gone */
    }

    iw_sim_runtime rt = {.conf = &conf};
    atomic_init(&rt.validate, conf.validate);
    iw_sim_server *srv = iw_sim_server_start(&rt, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "target-sim: %s\n", err);
        iw_sim_state_free();
        iw_sim_conf_clear(&conf);
        return 1;
    }
    printf("target-sim listening on %s:%d\n", conf.listen_host, iw_sim_server_port(srv));
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    iw_sim_server_stop(srv);
    iw_sim_faults_clear(-1);
    iw_sim_state_free();
    iw_sim_conf_clear(&conf);
    xmlCleanupParser();
    return 0;
}
