/* main.c: the invoice-worker command line: run, render, classify, check-config, replay, send. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "invoice.h"
#include "kafkaconf.h"
#include "secrets.h"
#include "status.h"
#include "text.h"
#include "target.h"

static const char USAGE[] =
    "usage: invoice-worker COMMAND [OPTIONS]\n"
    "\n"
    "Consumes invoice-change events from Kafka, drops duplicates and stale versions through a\n"
    "Redis ledger, and updates each target invoice API, publishing one result per (event, "
    "target).\n"
    "\n"
    "commands:\n"
    "  run -c FILE                  run the worker (until SIGTERM)\n"
    "  render --target NAME [-c FILE] [--no-validate] EVENT.json\n"
    "                               print the exact HTTP request for one event (secrets as ***)\n"
    "  classify --target NAME [-c FILE] [--status N] [--header 'Name: value']...\n"
    "           [--now-ms MS] REPLY print how the worker reads one reply (one JSON object)\n"
    "  check-config -c FILE         check a config file; every error is named by its JSON path\n"
    "  send -c FILE|-b BROKERS [-t TOPIC] [--lines] [--no-check] FILE...\n"
    "                               produce events from JSON files to the input topic\n"
    "  replay -c FILE [filters]     re-drive dead letters to the input topic\n"
    "\n"
    "options everywhere: --help, --version\n";

static const char RENDER_USAGE[] =
    "usage: invoice-worker render --target NAME [-c FILE] [--no-validate] EVENT.json\n"
    "\n"
    "Prints the request the worker would send for EVENT.json to target NAME: the first line is\n"
    "METHOD URL, then one 'Name: value' line per header, a blank line, then the body. Passwords,\n"
    "tokens, API keys and security ids print as ***.\n"
    "\n"
    "NAME is an adapter type (centra_soap, centra_navision, midnight, ebizcharge, invoicexpress,\n"
    "webhook; seed URLs and placeholder credentials) or, with -c, a target instance of the\n"
    "config (a generic target is always an instance).\n"
    "The target's validation runs first; a rejected event exits 1 with the reason.\n";

static const char CLASSIFY_USAGE[] =
    "usage: invoice-worker classify --target NAME [-c FILE] [--status N]\n"
    "                               [--header 'Name: value']... [--now-ms MS] REPLY\n"
    "\n"
    "Reads a reply body from the file REPLY ('-' for stdin) as target NAME's adapter would, for\n"
    "HTTP status N (default 200) and the given reply headers, and prints one JSON object:\n"
    "  {\"outcome\": \"ok\"|\"retry\"|\"permanent\"|\"auth\", \"error_kind\", \"code\",\n"
    "   \"message\", \"target_ref\", \"retry_after_ms\", \"refresh_token\"}\n"
    "error_kind is null for ok. --now-ms is the wall clock (ms since the epoch) an HTTP-date\n"
    "Retry-After is measured from (default: now). NAME is an adapter type or, with -c, a target "
    "instance of the\n"
    "config (its secrets are masked in the message as the worker masks them).\n"
    "Exit status: 0 printed, 1 unreadable input or unknown target, 2 usage error.\n";

static const char CHECK_USAGE[] =
    "usage: invoice-worker check-config -c FILE\n"
    "\n"
    "Loads FILE as the worker would (${ENV} references, *_file secrets, IW_* overrides) and\n"
    "prints every problem as 'json.path: message'. Secret values are never printed.\n"
    "Exit status: 0 valid, 1 invalid, 2 usage error.\n";

static int cmd_check_config(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (path) { /* the first would pass unread */
                fprintf(stderr, "check-config: one config file at a time\n%s", CHECK_USAGE);
                return 2;
            }
            path = optarg;
            break;
        case 'h': fputs(CHECK_USAGE, stdout); return 0;
        case 'V': return iw_cli_print_version();
        default: fputs(CHECK_USAGE, stderr); return 2;
        }
    }
    if (!path && optind < argc)
        path = argv[optind++];
    if (!path) {
        fputs(CHECK_USAGE, stderr);
        return 2;
    }
    if (optind < argc) { /* a second file would pass unread */
        fprintf(stderr, "check-config: one config file at a time (also given: %d more)\n%s",
                argc - optind, CHECK_USAGE);
        return 2;
    }
    iw_config *cfg = iw_cli_load_config(path);
    if (!cfg)
        return 1;
    char kerr[512];
    if (!cfg->kafka_brokers || !*cfg->kafka_brokers) { /* run refuses to start without */
        const char *env = getenv("IW_KAFKA_BROKERS");
        if (env && !*env) /* the variable emptied them, not the file */
            fprintf(stderr, "environment: IW_KAFKA_BROKERS: empty, so kafka.brokers: not set\n");
        else
            fprintf(stderr, "%s: kafka.brokers: not set (in the config or IW_KAFKA_BROKERS)\n",
                    path);
        iw_config_free(cfg);
        return 1;
    }
    /* text from the file is printed on a terminal: control and bidirectional characters
     * become spaces (a property key or a host written "a\nfake: ok\u001b[31m") */
    if (iw_kafkaconf_check(cfg, kerr, sizeof(kerr))) { /* what run would refuse at start */
        iw_text_clean_copy(kerr, sizeof(kerr), kerr, strlen(kerr));
        fprintf(stderr, "%s: %s\n", path, kerr);
        iw_config_free(cfg);
        return 1;
    }
    char brokers[2048], host[512];
    const char *rh = cfg->redis_host ? cfg->redis_host : "";
    iw_text_clean_copy(brokers, sizeof(brokers), cfg->kafka_brokers, strlen(cfg->kafka_brokers));
    iw_text_clean_copy(host, sizeof(host), rh, strlen(rh));
    printf("%s: ok: %zu target instance%s, %zu route%s, kafka %s, redis %s:%d\n", path,
           cfg->n_targets, cfg->n_targets == 1 ? "" : "s", cfg->n_routes,
           cfg->n_routes == 1 ? "" : "s", brokers, host, cfg->redis_port);
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const iw_target_conf *t = &cfg->targets[i];
        printf("  %-20s %-16s max_concurrency=%d max_attempts=%d%s\n", t->name, t->type,
               t->max_concurrency, t->retry.max_attempts,
               t->tls_verify ? "" : " TLS VERIFICATION OFF");
    }
    iw_config_free(cfg);
    return 0;
}

static int cmd_render(int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'}, {"config", required_argument, NULL, 'c'},
        {"no-validate", no_argument, NULL, 'n'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    const char *target = NULL, *cpath = NULL;
    int validate = 1, c;
    while ((c = getopt_long(argc, argv, "t:c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 't': target = optarg; break;
        case 'c': cpath = optarg; break;
        case 'n': validate = 0; break;
        case 'h': fputs(RENDER_USAGE, stdout); return 0;
        case 'V': return iw_cli_print_version();
        default: fputs(RENDER_USAGE, stderr); return 2;
        }
    }
    if (!target || optind != argc - 1) {
        fputs(RENDER_USAGE, stderr);
        return 2;
    }
    const char *epath = argv[optind];
    iw_config *cfg = cpath ? iw_cli_load_config(cpath) : iw_config_defaults();
    if (!cfg)
        return 1;
    int rc = 1;
    iw_event *ev = NULL;
    iw_request req;
    memset(&req, 0, sizeof(req));
    char err[512];
    size_t len = 0;
    char *json = NULL;

    const iw_target_conf *tc = iw_config_target(cfg, target);
    const iw_target_ops *ops = tc ? iw_target_find(tc->type) : NULL;
    if (!cpath && strcmp(target, "generic") == 0) { /* without -c, NAME is an adapter type */
        fprintf(stderr, "render: a generic target is defined by its mapping file: give the "
                        "config that names it (-c FILE) and the instance's name as --target\n");
        goto out_config;
    }
    if (!tc || !ops) {
        fprintf(stderr, "render: no target \"%s\"%s; adapter types: ", target,
                cpath ? " in the config" : "");
        for (size_t i = 0; iw_targets_all[i]; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", iw_targets_all[i]->type);
        fputc('\n', stderr);
        goto out_config;
    }
    json = iw_cli_read_file(epath, 2u * IW_EVENT_MAX_BYTES, &len);
    if (!json) {
        fprintf(stderr, "render: cannot read %s: %s\n", epath, strerror(errno));
        goto out_config;
    }
    /* the errors quote event text: printed as plain text, as the worker logs them */
    if (iw_event_parse(json, len, &ev, err, sizeof(err)) != 0) {
        iw_text_clean_copy(err, sizeof(err), err, strlen(err));
        fprintf(stderr, "render: %s: invalid event: %s\n", epath, err);
        goto out_json;
    }
    if (validate && iw_target_validate(ops, ev, tc, err, sizeof(err)) != 0) {
        iw_text_clean_copy(err, sizeof(err), err, strlen(err));
        fprintf(stderr, "render: %s rejects this event: %s\n", tc->name, err);
        goto out_event;
    }
    iw_render_ctx ctx = {.state = NULL};
    if (iw_target_render(ops, ev, tc, &ctx, &req, err, sizeof(err)) != 0) {
        iw_text_clean_copy(err, sizeof(err), err, strlen(err));
        fprintf(stderr, "render: %s: %s\n", tc->name, err);
        goto out_event;
    }
    if (iw_request_add_call_headers(&req, ev->event_id, tc->name, 1, ev->version, NULL) != 0)
        goto out_request;
    char *text = iw_cli_request_text(tc, &req);
    if (!text)
        goto out_request;
    fputs(text, stdout);
    free(text);
    rc = 0;
out_request:
    iw_request_clear(&req);
out_event:
    iw_event_free(ev);
out_json:
    free(json);
out_config:
    iw_config_free(cfg);
    return rc;
}

static const char *const outcome_names[] = {"ok", "retry", "permanent", "auth"};

/* Splits "Name: value" into h (pointers into text, which is modified). False when no colon. */
static bool split_header(char *text, iw_header *h)
{
    char *colon = strchr(text, ':');
    if (!colon || colon == text)
        return false;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    h->name = text;
    h->value = v;
    return true;
}

/* Prints the outcome as one JSON object; 0 or 1 when out of memory. */
static int print_outcome(const iw_outcome *o)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return 1;
    cJSON_AddStringToObject(j, "outcome", outcome_names[o->kind]);
    if (o->error_kind == IW_ERR_NONE)
        cJSON_AddNullToObject(j, "error_kind");
    else
        cJSON_AddStringToObject(j, "error_kind", iw_error_kind_str(o->error_kind));
    cJSON_AddStringToObject(j, "code", o->code);
    cJSON_AddStringToObject(j, "message", o->message);
    cJSON_AddStringToObject(j, "target_ref", o->target_ref);
    cJSON_AddNumberToObject(j, "retry_after_ms",
                            o->kind == IW_OUTCOME_RETRY ? (double)o->retry_after_ms : -1);
    cJSON_AddBoolToObject(j, "refresh_token", o->kind == IW_OUTCOME_AUTH && o->refresh_token);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text)
        return 1;
    puts(text);
    free(text);
    return 0;
}

static int cmd_classify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'}, {"config", required_argument, NULL, 'c'},
        {"status", required_argument, NULL, 's'}, {"header", required_argument, NULL, 'H'},
        {"now-ms", required_argument, NULL, 'N'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    enum { MAX_HEADERS = 32 };
    const char *target = NULL, *cpath = NULL;
    iw_header headers[MAX_HEADERS];
    size_t n_headers = 0;
    long status = 200;
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    int c;
    while ((c = getopt_long(argc, argv, "t:c:s:H:N:hV", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 't': target = optarg; break;
        case 'c': cpath = optarg; break;
        case 's':
            status = strtol(optarg, &end, 10);
            if (*end || status < 100 || status > 599) {
                fprintf(stderr, "classify: --status %s: want an HTTP status 100..599\n", optarg);
                return 2;
            }
            break;
        case 'H':
            if (n_headers == MAX_HEADERS || !split_header(optarg, &headers[n_headers])) {
                fprintf(stderr, "classify: --header wants 'Name: value' (at most %d)\n",
                        MAX_HEADERS);
                return 2;
            }
            n_headers++;
            break;
        case 'N':
            now_ms = strtoll(optarg, &end, 10);
            if (*end || now_ms < 0) {
                fprintf(stderr, "classify: --now-ms %s: want milliseconds since the epoch\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': fputs(CLASSIFY_USAGE, stdout); return 0;
        case 'V': return iw_cli_print_version();
        default: fputs(CLASSIFY_USAGE, stderr); return 2;
        }
    }
    if (!target || optind != argc - 1) {
        fputs(CLASSIFY_USAGE, stderr);
        return 2;
    }
    const char *path = argv[optind];
    iw_config *cfg = cpath ? iw_cli_load_config(cpath) : iw_config_defaults();
    if (!cfg)
        return 1;
    int rc = 1;
    const iw_target_conf *tc = iw_config_target(cfg, target);
    const iw_target_ops *ops = tc ? iw_target_find(tc->type) : NULL;
    if (!tc || !ops) {
        fprintf(stderr, "classify: no target \"%s\"%s\n", target, cpath ? " in the config" : "");
        goto out_config;
    }
    size_t len = 0;
    char *body = iw_cli_read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path,
                                  (size_t)tc->max_response_bytes, &len);
    iw_outcome out;
    memset(&out, 0, sizeof(out));
    if (!body && errno == EFBIG) { /* the dispatcher stops reading such a reply: so do we */
        out.retry_after_ms = -1;
        iw_outcome_too_large(&out, tc->max_response_bytes);
        rc = print_outcome(&out);
        goto out_config;
    }
    if (!body) {
        fprintf(stderr, "classify: cannot read %s: %s\n", path, strerror(errno));
        goto out_config;
    }
    iw_response resp = {.status = status,
                        .headers = n_headers ? headers : NULL,
                        .n_headers = n_headers,
                        .body = len ? body : NULL,
                        .body_len = len,
                        .now_ms = now_ms};
    iw_secrets *sec = iw_secrets_for_target(tc); /* read and masked as the dispatcher does */
    if (!sec) {
        fprintf(stderr, "classify: out of memory\n");
        free(body);
        goto out_config;
    }
    iw_secrets_classify(sec, ops, tc, &resp, &out);
    iw_secrets_mask_outcome(sec, &out);
    iw_secrets_free(sec);
    rc = print_outcome(&out);
    free(body);
out_config:
    iw_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0)
        return iw_cli_print_version();
    /* Each command parses its own options; argv[0] becomes "invoice-worker COMMAND". */
    argv[1] = argv[0];
    if (strcmp(cmd, "render") == 0)
        return cmd_render(argc - 1, argv + 1);
    if (strcmp(cmd, "classify") == 0)
        return cmd_classify(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return iw_cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "send") == 0)
        return iw_cli_send(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return iw_cli_replay(argc - 1, argv + 1);
    fprintf(stderr, "invoice-worker: unknown command \"%s\"\n\n%s", cmd, USAGE);
    return 2;
}
