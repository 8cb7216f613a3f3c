/* main.c: chaos, the proof that the worker keeps its guarantees under faults. It runs the local
 * stack (mock Kafka, redis-server with AOF, the target simulator with HTTP faults) and a group of
 * workers, produces invoice events at a steady rate while a scenario's faults hit (kills, Redis
 * and broker outages, target brownouts while workers join or leave), then judges what arrived
 * against the simulator's history of accepted versions. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "chaos.h"
#include "docpaths.h"

#define MAX_WORKERS 5     /* worker slots: the scenario's group plus joiners */
#define MAX_IN_FLIGHT 256 /* per worker (the stack config's value) */
#define HANG_MS 3000      /* the steady faults' hangs: longer than the default request timeout */
#define BREAKER_TARGET "midnight"
#define BREAKER_BURST_MS 4000
#define REDIS_DOWN_MS 3000
#define BROKER_DOWN_MS 10000
#define BROWNOUT_MIN_MS 10000
#define BROWNOUT_MAX_MS 12000
#define ACT_MIN_MS 2000 /* a worker joins or leaves this long into a brownout, at the least */
#define ACT_MAX_MS 4000
#define TICK_MS 100
#define MAX_KILLS 4096
#define MAX_EPISODES 64
#define BUSY_WAIT_MS                                                                               \
    30000 /* a one-off fault waits at most this long for the workers to be busy                    \
           */
#define BUSY_POLL_MS 500
#define PROGRESS_MS 10000
#define SOAK_SAMPLE_MS 10000
#define SOAK_RSS_LIMIT 0.30
#define STALL_MS 30000 /* no pair finished for this long: print what the workers say */
#define EXIT_FAIL 1
#define EXIT_ERROR 2

/* Command-line settings. */
typedef struct opts {
    const ch_scenario *sc; /* the scenario */
    const char *mode;      /* "quick", "short", "long" or "soak" */
    size_t events;         /* messages to produce */
    double rate;           /* messages per second */
    int invoices;          /* distinct invoices the events change */
    int partitions;        /* of every topic */
    uint64_t seed;         /* the plan's and the fault timing's */
    int soak_min;          /* soak: minutes of production */
    long drain_timeout_s;  /* give up when no pair finished for this long */
    unsigned faults;       /* CH_FAULT_* bits to inject */
    int lease_s;           /* redis.lease_s of the workers */
    int request_ms;        /* timeouts.request_ms of every target */
    double err_rate;       /* share of 503 replies drawn for this run (0: none) */
    double reuse;          /* share of messages reusing an event_id (-1: the scenario's) */
    int tails;             /* invoices whose plan ends with a tail (-1: the scenario's) */
} opts;

/* One worker slot and what happened to it. */
typedef struct worker {
    iw_proc proc;
    char name[8]; /* w1, w2, ...: also its worker id in results */
    char config[512];
    char log[64];
    int http_port;
    bool used;       /* configured (started at least once) */
    bool running;    /* a member of the group: restarted when it dies */
    bool leaving;    /* sent SIGTERM on purpose: not restarted */
    int kills;       /* kill -9 received */
    int exits;       /* exits nobody asked for */
    int left;        /* clean leaves (SIGTERM) */
    int left_status; /* exit status of the last leave */
} worker;

/* One outage of a scenario: a brownout (with a worker joining or leaving) or Redis out. */
typedef struct episode {
    int kind;          /* CH_FAULT_BROWNOUT or CH_FAULT_REDIS_OUT */
    bool redis_kill;   /* Redis out: killed and restarted (else SIGSTOP and SIGCONT) */
    long long due;     /* when it should start */
    long long started; /* when it started (0: not yet) */
    long long ends;    /* when the outage ends */
    long long act_at;  /* brownout: when the worker joins or leaves */
    long long undo_at; /* long forms: when the inverse happens (leave after a join, rejoin after
                        * a leave) before the next brownout; 0: never */
    int state;         /* 0 pending, 1 under way, 2 done */
    bool acted, undone;
} episode;

/* The fault schedule and what the faults did. */
typedef struct schedule {
    long long t0;        /* production start (monotonic ms) */
    long long next_kill; /* 0: no more kills */
    long long kill_until;
    int kill_turn;
    long long breaker_at, breaker_end;
    int breaker_state;      /* 0 pending, 1 burst on, 2 done */
    bool breaker_seen_open; /* a worker's iw_breaker_open for the target read 1 */
    long long redis_at;
    int redis_state;    /* 0 pending, 1 down, 2 back */
    bool redis_stopped; /* redis-server is SIGSTOPped now */
    long long broker_at;
    int broker_state;     /* 0 pending, 1 down, 2 back */
    long long last_fault; /* the end of the last fault */
    int kills;
    double in_flight_at_kills;    /* sum of the victims' iw_in_flight just before the kills */
    double jobs_open_at_kills;    /* sum of their iw_jobs_open */
    int kills_unscraped;          /* kills whose victim's metrics could not be read */
    long long kill_ms[MAX_KILLS]; /* when each kill happened (monotonic) */
    long long busy_read_ms;       /* when the workers' gauges were last read */
    double jobs_open, in_flight;  /* their sums then */
    episode eps[MAX_EPISODES];    /* brownouts and Redis outages, in order */
    int n_eps;
    int joins, leaves; /* workers that joined or left during the run */
    int brownouts, redis_stops, redis_kills;
} schedule;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chaos [--scenario NAME] [--quick | --long | --soak [MINUTES]] [--events N]\n"
            "             [--rate PER_S] [--invoices N] [--partitions N] [--seed N]\n"
            "             [--drain-timeout S] [--lease-s S] [--request-ms MS] [--reuse SHARE]\n"
            "             [--tails N]\n"
            "             [--faults kill,redis,broker,breaker,http,brownout,join,leave,"
            "redis-out]\n"
            "Runs the local stack with a group of workers under faults and judges the run\n"
            "against the target simulator's history of accepted versions: no (event, target)\n"
            "pair lost, no older version accepted after a newer one, every invoice ending at\n"
            "its newest version (by the X-Invoice-Version header and by the version the body\n"
            "carries), no `succeeded` result for a pair the target never accepted, every poison\n"
            "event dead-lettered. 2%% of the events (--reuse SHARE sets another share; after a\n"
            "reuse, 30%% of the invoice's next versions too, never three in a row) reuse the\n"
            "event_id of one of the invoice's last three versions: where versions share\n"
            "an id at a target, at most one is accepted there and the others are rejected, stale\n"
            "or superseded, so the invoice ends there at least at the higher of the newest\n"
            "version under an id of its own and the oldest sharing one, at most at the newest\n"
            "sent. Repeats of the newest version are counted and reported. --tails N (kill-slow:\n"
            "every invoice) ends the plan of N invoices with four versions in a row: two under\n"
            "ids of their own, then two under the ids of earlier ones; the invoice must end at\n"
            "the second of the four.\n"
            "Scenarios (the short form is the ctest form; --long runs longer by hand):\n");
    for (size_t i = 0; ch_scenarios[i]; i++)
        fprintf(f, "  %-15s %s\n", ch_scenarios[i]->name, ch_scenarios[i]->about);
    fprintf(
        f,
        "Forms of `default`: 20,000 events; --quick 6,000 (its ctest form); --long 200,000;\n"
        "--soak MINUTES (default 10): a steady rate with the same faults but no kills,\n"
        "sampling the workers' RSS and open fds every 10 s.\n"
        "Exit status: 0 all guarantees held, 1 a guarantee failed, 2 the run could not be made.\n"
        "IW_KEEP_STACK=1 keeps the stack folder (configs, worker logs).\n");
}

/* "kill,http" into CH_FAULT_* bits ("none" for none). 0 or -1. */
static int parse_faults(const char *arg, unsigned *out)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", arg);
    *out = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < CH_N_FAULTS && strcmp(t, ch_fault_names[i]) != 0)
            i++;
        if (i < CH_N_FAULTS)
            *out |= 1u << i;
        else if (strcmp(t, "none") != 0)
            return -1;
    }
    return 0;
}

/* Settings of the chosen form, then the command line's overrides. */
static void apply_form(opts *o, size_t events, double rate, int partitions, int invoices)
{
    const ch_scenario *sc = o->sc;
    bool dflt = strcmp(sc->name, "default") == 0;
    o->events = sc->events_short;
    o->rate = sc->rate;
    o->invoices = sc->invoices;
    if (strcmp(o->mode, "quick") == 0 && dflt) {
        o->events = 6000;
        o->rate = 200;
    } else if (strcmp(o->mode, "quick") == 0) {
        o->mode = "short"; /* the short form of a scenario is its quick form */
    } else if (strcmp(o->mode, "long") == 0) {
        o->events = sc->events_long;
        if (sc->partitions_long)
            o->partitions = sc->partitions_long;
    } else if (strcmp(o->mode, "soak") == 0) {
        o->rate = 100;
        o->faults &= ~(unsigned)CH_FAULT_KILL;
    }
    if (rate > 0)
        o->rate = rate;
    if (partitions)
        o->partitions = partitions;
    if (invoices)
        o->invoices = invoices;
    if (strcmp(o->mode, "soak") == 0)
        o->events = (size_t)(o->rate * 60.0 * o->soak_min);
    if (events)
        o->events = events;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){.sc = ch_scenario_find("default"),
                .mode = "short",
                .partitions = 32,
                .drain_timeout_s = 180,
                .reuse = -1,
                .tails = -1};
    size_t events = 0;
    double rate = 0;
    int partitions = 0, invoices = 0, lease = 0, request = 0;
    const char *faults = NULL;
    static const struct option lo[] = {{"scenario", required_argument, NULL, 'c'},
                                       {"quick", no_argument, NULL, 'q'},
                                       {"short", no_argument, NULL, 'o'},
                                       {"long", no_argument, NULL, 'l'},
                                       {"soak", optional_argument, NULL, 's'},
                                       {"events", required_argument, NULL, 'n'},
                                       {"rate", required_argument, NULL, 'r'},
                                       {"invoices", required_argument, NULL, 'i'},
                                       {"partitions", required_argument, NULL, 'p'},
                                       {"seed", required_argument, NULL, 'S'},
                                       {"drain-timeout", required_argument, NULL, 'd'},
                                       {"lease-s", required_argument, NULL, 'L'},
                                       {"request-ms", required_argument, NULL, 'R'},
                                       {"reuse", required_argument, NULL, 'u'},
                                       {"tails", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"faults", required_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!(o->sc = ch_scenario_find(optarg))) {
                fprintf(stderr, "chaos: no scenario %s\n", optarg);
                return -1;
            }
            break;
        case 'q': o->mode = "quick"; break;
        case 'o': o->mode = "short"; break;
        case 'l': o->mode = "long"; break;
        case 's':
            o->mode = "soak";
            o->soak_min = 10;
            if (!optarg && optind < argc && argv[optind][0] != '-')
                optarg = argv[optind++];
            if (optarg && (o->soak_min = atoi(optarg)) <= 0)
                return -1;
            break;
        case 'n': events = strtoull(optarg, NULL, 10); break;
        case 'r': rate = strtod(optarg, NULL); break;
        case 'i': invoices = atoi(optarg); break;
        case 'p': partitions = atoi(optarg); break;
        case 'S': o->seed = strtoull(optarg, NULL, 0); break;
        case 'd': o->drain_timeout_s = atol(optarg); break;
        case 'L': lease = atoi(optarg); break;
        case 'R': request = atoi(optarg); break;
        case 'u': o->reuse = strtod(optarg, NULL); break;
        case 't': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (end == optarg || *end || n < 0 || n > 1000000)
                return -1;
            o->tails = (int)n;
            break;
        }
        case 'f': faults = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind < argc)
        return -1;
    o->faults = o->sc->faults;
    if (faults && parse_faults(faults, &o->faults) != 0)
        return -1;
    apply_form(o, events, rate, partitions, invoices);
    o->lease_s = lease > 0 ? lease : o->sc->lease_s;
    o->request_ms = request > 0 ? request : o->sc->request_ms;
    if (!o->seed)
        o->seed = (uint64_t)time(NULL) * 2654435761ULL ^ (uint64_t)getpid();
    return o->events >= 100 && o->rate > 0 && o->invoices > 0 && o->partitions > 0 &&
                   o->drain_timeout_s > 0 &&
                   (o->reuse == -1 || (o->reuse >= 0 && o->reuse <= 0.5)) && o->tails >= -1
               ? 0
               : -1;
}

static double secs(long long ms)
{
    return (double)ms / 1000.0;
}

static long long now_ms(void)
{
    return iw_now_ms();
}

/* A uniform delay between lo and hi ms (rand() is seeded with the run's seed). */
static long long jitter(long long lo, long long hi)
{
    return lo + (long long)(rand() % (int)(hi - lo + 1));
}

/* ---- the stack and the workers ---- */

/* Writes slot idx's config (once). 0 or -1. */
static int worker_config(iw_stack *s, worker *w, int idx, const opts *o)
{
    if (w->used)
        return 0;
    snprintf(w->name, sizeof(w->name), "w%d", idx + 1);
    snprintf(w->log, sizeof(w->log), "%s.log", w->name);
    w->http_port = iw_free_port();
    s->http_port = w->http_port;
    char name[32], wextra[128], textra[512];
    snprintf(name, sizeof(name), "%s.json", w->name);
    int n = snprintf(wextra, sizeof(wextra), "{\"id\": \"%s\", \"max_in_flight\": %d", w->name,
                     MAX_IN_FLIGHT);
    if (o->sc->grace_s > 0)
        n += snprintf(wextra + n, sizeof(wextra) - (size_t)n, ", \"shutdown_grace_s\": %d",
                      o->sc->grace_s);
    snprintf(wextra + n, sizeof(wextra) - (size_t)n, "}");
    snprintf(textra, sizeof(textra),
             "{\"retry\": {\"max_attempts\": 40, \"base_ms\": 50, \"max_delay_ms\": 1000,"
             "  \"max_elapsed_s\": 900},"
             " \"timeouts\": {\"connect_ms\": 1000, \"request_ms\": %d},"
             " \"breaker\": {\"failures\": 8, \"open_s\": 2}}",
             o->request_ms);
    char rextra[64];
    snprintf(rextra, sizeof(rextra), "{\"redis\": {\"lease_s\": %d}}", o->lease_s);
    const iw_stack_overlay extra = {.root = rextra, .worker = wextra, .targets = textra};
    const char *path = iw_stack_config_with(s, name, &extra);
    if (!path)
        return -1;
    snprintf(w->config, sizeof(w->config), "%s", path);
    w->used = true;
    return 0;
}

/* Appends a line to a worker's log so that its log shows where the driver acted. */
static void log_mark(const iw_stack *s, const worker *w, const char *what)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", s->dir, w->log);
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "{\"chaos\": \"%s\", \"at_ms\": %lld}\n", what, now_ms());
        fclose(f);
    }
}

static int worker_start(iw_stack *s, worker *w)
{
    int rc = iw_stack_worker_start(s, &w->proc, w->config, w->log);
    w->running = rc == 0;
    return rc;
}

/* The worker's /metrics page (malloc'd) or NULL. */
static char *worker_metrics(const worker *w)
{
    if (!w->proc.pid)
        return NULL;
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", w->http_port);
    long st;
    char *body = iw_http_timed("GET", url, NULL, 1000, &st);
    if (body && st != 200) {
        free(body);
        body = NULL;
    }
    return body;
}

static bool worker_ready(const worker *w)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", w->http_port);
    long st;
    free(iw_http_timed("GET", url, NULL, 1000, &st));
    return st == 200;
}

/* Restarts group members that exited without being asked (as Kubernetes would); a worker that
 * was asked to leave is only reaped. */
static void reap_workers(iw_stack *s, worker *ws, schedule *sc)
{
    for (int i = 0; i < MAX_WORKERS; i++) {
        if (!ws[i].proc.pid)
            continue;
        int st = iw_proc_wait(&ws[i].proc, 0);
        if (st == -1)
            continue;
        if (ws[i].leaving) {
            ws[i].leaving = false;
            ws[i].left_status = st;
            printf("[%5.0fs] %s left the group (%s %d)\n", secs(now_ms() - sc->t0), ws[i].name,
                   WIFSIGNALED(st) ? "signal" : "status",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            continue;
        }
        ws[i].exits++;
        fprintf(stderr, "chaos: worker %s exited by itself (%s %d); restarting it\n", ws[i].name,
                WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        log_mark(s, &ws[i], "exited by itself; restarted");
        if (worker_start(s, &ws[i]) != 0)
            fprintf(stderr, "chaos: cannot restart %s\n", ws[i].name);
    }
}

/* ---- faults ---- */

static int sim_fault(const iw_stack *s, const char *json)
{
    long st = iw_sim_control(s, "/_sim/faults", json);
    if (st != 200)
        fprintf(stderr, "chaos: the simulator refused fault %s (%ld)\n", json, st);
    return st == 200 ? 0 : -1;
}

/* How long a held request waits before the target applies it: past the request timeout, and
 * within the settle time the worker then waits (timeouts.settle_ms, by default the request
 * timeout, counted from the end of the attempt): the worker promises to order what lands in it. */
static void held_range(const opts *o, int *lo, int *hi)
{
    *lo = o->request_ms + 200;
    *hi = o->request_ms + o->request_ms * 3 / 5;
}

/* The faults of the whole run, as one JSON array for the stack to install at start (into buf):
 * the steady HTTP faults when asked (5% 503, 2% 429 with Retry-After, 1% hangs past the
 * timeout, 1% resets), then the scenario's reply latency and share of 503s. The simulator tries
 * faults in order and applies the first that hits, so each steady rate is divided by the share
 * of calls the earlier ones left. */
static void run_faults_json(const opts *o, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    if (o->faults & CH_FAULT_HTTP) {
        double e = 0.05, rl = 0.02, h = 0.01, r = 0.01;
        n += (size_t)snprintf(
            buf + n, len - n,
            "{\"target\": \"*\", \"kind\": \"error\", \"status\": 503, \"rate\": %.6f},"
            " {\"target\": \"*\", \"kind\": \"rate_limit\", \"retry_after\": \"1\","
            " \"rate\": %.6f},"
            " {\"target\": \"*\", \"kind\": \"hang\", \"ms\": %d, \"rate\": %.6f},"
            " {\"target\": \"*\", \"kind\": \"reset\", \"rate\": %.6f}",
            e, rl / (1 - e), HANG_MS, h / (1 - e - rl), r / (1 - e - rl - h));
    }
    if (o->sc->lat_max_ms > 0)
        n += (size_t)snprintf(
            buf + n, len - n,
            "%s{\"target\": \"*\", \"kind\": \"latency\", \"min_ms\": %d, \"max_ms\": %d}",
            n > 1 ? ", " : "", o->sc->lat_min_ms, o->sc->lat_max_ms);
    if (o->err_rate > 0)
        n += (size_t)snprintf(
            buf + n, len - n,
            "%s{\"target\": \"*\", \"kind\": \"error\", \"status\": 503, \"rate\": %.4f}",
            n > 1 ? ", " : "", o->err_rate);
    if (o->sc->held > 0) {
        int lo, hi;
        held_range(o, &lo, &hi);
        n += (size_t)snprintf(buf + n, len - n,
                              "%s{\"target\": \"*\", \"kind\": \"latency\", \"min_ms\": %d, "
                              "\"max_ms\": %d, \"rate\": %.4f}",
                              n > 1 ? ", " : "", lo, hi, o->sc->held);
    }
    snprintf(buf + n, len - n, "]");
}

/* The running member with the most open jobs (the next in turn when none has any), or -1. */
static int busiest_worker(worker *ws, schedule *sc, double *fl_out, double *jo_out)
{
    double fls[MAX_WORKERS], jos[MAX_WORKERS];
    int victim = -1;
    for (int k = 0; k < MAX_WORKERS; k++) {
        int i = (sc->kill_turn + k) % MAX_WORKERS;
        if (ws[i].running && !ws[i].leaving && victim < 0)
            victim = i;
    }
    if (victim < 0)
        return -1;
    sc->kill_turn = victim + 1;
    for (int i = 0; i < MAX_WORKERS; i++) {
        char *m = ws[i].running && !ws[i].leaving ? worker_metrics(&ws[i]) : NULL;
        fls[i] = m ? ch_metric(m, "iw_in_flight", "") : -1;
        jos[i] = m ? ch_metric(m, "iw_jobs_open", "") : -1;
        free(m);
    }
    for (int i = 0; i < MAX_WORKERS; i++)
        if (ws[i].running && !ws[i].leaving && jos[i] > 0 && jos[i] > jos[victim])
            victim = i;
    *fl_out = fls[victim];
    *jo_out = jos[victim];
    return victim;
}

/* Kills the worker with the most open jobs, so that the kills hit work in progress, and
 * restarts it at once. */
static void kill_one(iw_stack *s, worker *ws, schedule *sc)
{
    double fl, jo;
    int victim = busiest_worker(ws, sc, &fl, &jo);
    if (victim < 0)
        return;
    worker *w = &ws[victim];
    if (fl >= 0)
        sc->in_flight_at_kills += fl;
    else
        sc->kills_unscraped++;
    if (jo >= 0)
        sc->jobs_open_at_kills += jo;
    if (sc->kills < MAX_KILLS)
        sc->kill_ms[sc->kills] = now_ms();
    iw_proc_signal(&w->proc, SIGKILL);
    iw_proc_wait(&w->proc, 5000);
    w->kills++;
    sc->kills++;
    log_mark(s, w, "kill -9; restarting");
    if (worker_start(s, w) != 0)
        fprintf(stderr, "chaos: cannot restart %s\n", w->name);
    sc->last_fault = now_ms();
    printf("[%5.0fs] kill -9 %s (in flight %.0f, jobs open %.0f); restarted\n",
           secs(now_ms() - sc->t0), w->name, fl, jo);
}

/* A worker joins the group: a slot never used, or one whose worker left. */
static void join_one(iw_stack *s, worker *ws, schedule *sc, const opts *o)
{
    for (int i = 0; i < MAX_WORKERS; i++) {
        if (ws[i].running || ws[i].proc.pid)
            continue;
        if (worker_config(s, &ws[i], i, o) != 0 || worker_start(s, &ws[i]) != 0) {
            fprintf(stderr, "chaos: cannot start %s\n", ws[i].name);
            return;
        }
        log_mark(s, &ws[i], "joins the group");
        sc->joins++;
        printf("[%5.0fs] %s joins the group\n", secs(now_ms() - sc->t0), ws[i].name);
        return;
    }
    fprintf(stderr, "chaos: no free worker slot to join\n");
}

/* The busiest member leaves the group by SIGTERM (it drains and exits by itself). */
static void leave_one(iw_stack *s, worker *ws, schedule *sc)
{
    double fl, jo;
    int i = busiest_worker(ws, sc, &fl, &jo);
    if (i < 0)
        return;
    log_mark(s, &ws[i], "SIGTERM: leaves the group");
    iw_proc_signal(&ws[i].proc, SIGTERM);
    ws[i].running = false;
    ws[i].leaving = true;
    ws[i].left++;
    sc->leaves++;
    printf("[%5.0fs] SIGTERM %s (in flight %.0f, jobs open %.0f): it leaves the group\n",
           secs(now_ms() - sc->t0), ws[i].name, fl, jo);
}

/* Reads the breaker gauge of the burst's target on every worker. */
static void look_at_breaker(const worker *ws, schedule *sc)
{
    for (int i = 0; i < MAX_WORKERS && !sc->breaker_seen_open; i++) {
        char *m = worker_metrics(&ws[i]);
        if (m && ch_metric(m, "iw_breaker_open", "target=\"" BREAKER_TARGET "\"") == 1) {
            sc->breaker_seen_open = true;
            printf("[%5.0fs] breaker of %s open at %s\n", secs(now_ms() - sc->t0), BREAKER_TARGET,
                   ws[i].name);
        }
        free(m);
    }
}

/* Whether a one-off fault due at `at` should start now: once the workers have work open (calls
 * in flight when calls is set), or BUSY_WAIT_MS after it was due whatever they do. */
static bool busy_enough(const worker *ws, schedule *sc, long long at, bool calls)
{
    long long t = now_ms();
    if (t < at)
        return false;
    if (t - at >= BUSY_WAIT_MS)
        return true;
    if (t - sc->busy_read_ms >= BUSY_POLL_MS) {
        sc->busy_read_ms = t;
        sc->jobs_open = sc->in_flight = 0;
        for (int i = 0; i < MAX_WORKERS; i++) {
            char *m = worker_metrics(&ws[i]);
            double jo = m ? ch_metric(m, "iw_jobs_open", "") : -1;
            double fl = m ? ch_metric(m, "iw_in_flight", "") : -1;
            sc->jobs_open += jo > 0 ? jo : 0;
            sc->in_flight += fl > 0 ? fl : 0;
            free(m);
        }
    }
    return calls ? sc->in_flight > 0 : sc->jobs_open > 0;
}

/* Plans the scenario's brownouts and Redis outages over production of d ms: one brownout (two
 * Redis outages, stopped then killed) in the short form, one per episode_ms in the long form. */
static void plan_episodes(schedule *sc, const opts *o, long long d)
{
    bool brown = o->faults & CH_FAULT_BROWNOUT, redis = o->faults & CH_FAULT_REDIS_OUT;
    if (!brown && !redis)
        return;
    int n = redis ? 2 : 1;
    if (strcmp(o->mode, "long") == 0 && o->sc->episode_ms > 0 && d / o->sc->episode_ms > n)
        n = (int)(d / o->sc->episode_ms);
    if (n > MAX_EPISODES)
        n = MAX_EPISODES;
    double start = 0.3; /* share of a period before its outage */
    for (int i = 0; i < n; i++) {
        episode *e = &sc->eps[sc->n_eps++];
        memset(e, 0, sizeof(*e));
        e->kind = brown ? CH_FAULT_BROWNOUT : CH_FAULT_REDIS_OUT;
        e->redis_kill = i % 2 == 1;
        e->due = sc->t0 + (long long)((double)d * (i + start) / n);
    }
}

static void redis_out_start(iw_stack *s, schedule *sc, episode *e, const opts *o)
{
    long long t = now_ms();
    e->started = t;
    e->ends = t + 2000LL * o->lease_s;
    if (e->redis_kill) {
        iw_redis_kill(&s->redis);
        sc->redis_kills++;
        printf("[%5.0fs] redis-server killed for %d s (twice the lease)\n", secs(t - sc->t0),
               2 * o->lease_s);
    } else {
        iw_proc_signal(&s->redis.proc, SIGSTOP);
        sc->redis_stopped = true;
        sc->redis_stops++;
        printf("[%5.0fs] redis-server stopped (SIGSTOP) for %d s (twice the lease)\n",
               secs(t - sc->t0), 2 * o->lease_s);
    }
}

static void redis_out_end(iw_stack *s, schedule *sc, episode *e)
{
    if (e->redis_kill) {
        if (iw_redis_restart(&s->redis, true) != 0)
            fprintf(stderr, "chaos: redis-server did not come back\n");
        printf("[%5.0fs] redis-server restarted (AOF)\n", secs(now_ms() - sc->t0));
    } else {
        iw_proc_signal(&s->redis.proc, SIGCONT);
        sc->redis_stopped = false;
        printf("[%5.0fs] redis-server continued (SIGCONT)\n", secs(now_ms() - sc->t0));
    }
}

static void brownout_start(iw_stack *s, schedule *sc, episode *e)
{
    long long t = now_ms(), ms = jitter(BROWNOUT_MIN_MS, BROWNOUT_MAX_MS);
    char json[160];
    snprintf(json, sizeof(json),
             "{\"target\": \"*\", \"kind\": \"error\", \"status\": 503, \"for_ms\": %lld}", ms);
    sim_fault(s, json);
    e->started = t;
    e->ends = t + ms;
    e->act_at = t + jitter(ACT_MIN_MS, ACT_MAX_MS);
    sc->brownouts++;
    printf("[%5.0fs] the target answers 503 to everything for %.1f s\n", secs(t - sc->t0),
           secs(ms));
}

/* Runs the episode under way, or starts the next one when due. The inverse of a brownout's
 * join or leave happens halfway to the next brownout, so each one finds the same group. */
static void run_episodes(iw_stack *s, worker *ws, schedule *sc, const opts *o)
{
    long long t = now_ms();
    for (int i = 0; i < sc->n_eps; i++) {
        episode *e = &sc->eps[i];
        if (e->state == 2)
            continue;
        if (e->state == 0) {
            if (!busy_enough(ws, sc, e->due, e->kind == CH_FAULT_BROWNOUT))
                return;
            if (e->kind == CH_FAULT_BROWNOUT)
                brownout_start(s, sc, e);
            else
                redis_out_start(s, sc, e, o);
            e->state = 1;
            if (i + 1 < sc->n_eps && e->kind == CH_FAULT_BROWNOUT) {
                long long next = sc->eps[i + 1].due;
                e->undo_at = e->ends + (next > e->ends ? (next - e->ends) / 2 : 0);
            }
            return;
        }
        if (e->kind == CH_FAULT_BROWNOUT && !e->acted && t >= e->act_at) {
            e->acted = true;
            if (o->faults & CH_FAULT_JOIN)
                join_one(s, ws, sc, o);
            if (o->faults & CH_FAULT_LEAVE)
                leave_one(s, ws, sc);
        }
        if (e->kind == CH_FAULT_REDIS_OUT && e->ends && t >= e->ends) {
            redis_out_end(s, sc, e);
            e->ends = 0;
            sc->last_fault = now_ms();
        }
        if (e->kind == CH_FAULT_BROWNOUT && t >= e->ends && e->ends > sc->last_fault)
            sc->last_fault = e->ends;
        bool out_over = e->kind == CH_FAULT_REDIS_OUT ? e->ends == 0 : t >= e->ends && e->acted;
        if (out_over && e->undo_at && !e->undone && t >= e->undo_at) {
            e->undone = true;
            if (o->faults & CH_FAULT_JOIN)
                leave_one(s, ws, sc);
            if (o->faults & CH_FAULT_LEAVE)
                join_one(s, ws, sc, o);
        }
        if (out_over && (!e->undo_at || e->undone))
            e->state = 2;
        return; /* one episode at a time */
    }
}

/* Runs whatever fault is due. Returns true while some fault is still to come or under way. */
static bool run_faults(iw_stack *s, worker *ws, schedule *sc, const opts *o)
{
    long long t = now_ms();
    if (sc->next_kill && t >= sc->next_kill) {
        kill_one(s, ws, sc);
        sc->next_kill = now_ms() + jitter(o->sc->kill_min_ms, o->sc->kill_max_ms);
        if (sc->next_kill > sc->kill_until)
            sc->next_kill = 0;
    }
    if (sc->breaker_state == 0 && busy_enough(ws, sc, sc->breaker_at, true)) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"target\": \"%s\", \"kind\": \"error\", \"status\": 503, \"rate\": 1.0,"
                 " \"for_ms\": %d}",
                 BREAKER_TARGET, BREAKER_BURST_MS);
        sim_fault(s, json);
        sc->breaker_end = now_ms() + BREAKER_BURST_MS;
        sc->breaker_state = 1;
        printf("[%5.0fs] %s answers 503 to everything for %d s\n", secs(t - sc->t0), BREAKER_TARGET,
               BREAKER_BURST_MS / 1000);
    } else if (sc->breaker_state == 1) {
        look_at_breaker(ws, sc);
        if (t >= sc->breaker_end + 1500) { /* gauges refresh every second */
            sc->breaker_state = 2;
            if (sc->breaker_end > sc->last_fault)
                sc->last_fault = sc->breaker_end;
        }
    }
    if (sc->redis_state == 0 && busy_enough(ws, sc, sc->redis_at, false)) {
        sc->redis_at = now_ms(); /* the outage starts now */
        iw_redis_kill(&s->redis);
        sc->redis_state = 1;
        printf("[%5.0fs] redis-server stopped\n", secs(now_ms() - sc->t0));
    } else if (sc->redis_state == 1 && t >= sc->redis_at + REDIS_DOWN_MS) {
        if (iw_redis_restart(&s->redis, true) != 0)
            fprintf(stderr, "chaos: redis-server did not come back\n");
        sc->redis_state = 2;
        sc->last_fault = now_ms();
        printf("[%5.0fs] redis-server restarted (AOF)\n", secs(now_ms() - sc->t0));
    }
    if (sc->broker_state == 0 && busy_enough(ws, sc, sc->broker_at, false)) {
        sc->broker_at = now_ms();           /* the outage starts now */
        iw_proc_signal(&s->kafka, SIGUSR1); /* kafka-local: broker 1 down */
        sc->broker_state = 1;
        printf("[%5.0fs] Kafka broker 1 down\n", secs(t - sc->t0));
    } else if (sc->broker_state == 1 && t >= sc->broker_at + BROKER_DOWN_MS) {
        iw_proc_signal(&s->kafka, SIGUSR2);
        sc->broker_state = 2;
        sc->last_fault = t;
        printf("[%5.0fs] Kafka broker 1 up\n", secs(t - sc->t0));
    }
    run_episodes(s, ws, sc, o);
    bool eps_left = sc->n_eps > 0 && sc->eps[sc->n_eps - 1].state < 2;
    for (int i = 0; i < MAX_WORKERS; i++)
        eps_left |= ws[i].leaving; /* a leave is over when the worker has exited */
    return sc->next_kill || sc->breaker_state < 2 || sc->redis_state < 2 || sc->broker_state < 2 ||
           eps_left;
}

/* ---- the run ---- */

/* What the run measured besides the checks. */
typedef struct run_figs {
    long long produce_ms; /* production start to the last acknowledgement */
    long long drained_at; /* every expected pair terminal (0: never) */
    long long final_lag;  /* group lag after the drain (-1 unknown) */
    int stop_status[MAX_WORKERS];
    size_t gates_passed, gates_timed_out; /* the feeder's (ch_feed) */
} run_figs;

static void progress(const ch_feed *f, ch_table *t, const worker *ws, const schedule *sc,
                     const opts *o)
{
    pthread_mutex_lock(&t->mu);
    size_t results = t->results, term = t->terminal, exp = t->expected;
    pthread_mutex_unlock(&t->mu);
    char wl[512];
    size_t n = 0;
    wl[0] = '\0';
    for (int i = 0; i < MAX_WORKERS && n < sizeof(wl); i++) {
        if (!ws[i].used)
            continue;
        char *m = worker_metrics(&ws[i]);
        if (m)
            n += (size_t)snprintf(wl + n, sizeof(wl) - n, "  %s[jobs %.0f calls %.0f lag %.0f]",
                                  ws[i].name, ch_metric(m, "iw_jobs_open", ""),
                                  ch_metric(m, "iw_in_flight", ""),
                                  ch_metric(m, "iw_consumer_lag", ""));
        else
            n += (size_t)snprintf(wl + n, sizeof(wl) - n, "  %s[down]", ws[i].name);
        free(m);
    }
    printf(
        "[%5.0fs] produced %zu/%zu (acked %zu)  results %zu  terminal pairs %zu/%zu  kills %d%s\n",
        secs(now_ms() - sc->t0), (size_t)f->queued, o->events, (size_t)f->acked, results, term, exp,
        sc->kills, wl);
    fflush(stdout);
}

/* Whether a /metrics line is one of the gauges a stall report shows. */
static bool gauge_line(const char *line)
{
    static const char *const shown[] = {"iw_jobs_open",    "iw_in_flight",
                                        "iw_consumer_lag", "iw_ledger_up",
                                        "iw_breaker_open", "iw_events_consumed_total"};
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
        if (strncmp(line, shown[i], strlen(shown[i])) == 0)
            return true;
    return false;
}

/* When nothing finishes any more: the workers' gauges and the partitions the group is
 * behind on, as evidence. */
static void stall_report(const iw_stack *s, const worker *ws)
{
    printf("chaos: no pair finished for %d s; what the workers report:\n", STALL_MS / 1000);
    for (int i = 0; i < MAX_WORKERS; i++) {
        if (!ws[i].used)
            continue;
        char *m = worker_metrics(&ws[i]);
        printf("  %s (pid %d):", ws[i].name, (int)ws[i].proc.pid);
        for (const char *p = m; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t ll = nl ? (size_t)(nl - p) : strlen(p);
            if (ll < 200 && gauge_line(p))
                printf(" %.*s;", (int)ll, p);
            p = nl ? nl + 1 : NULL;
        }
        printf("%s\n", m ? "" : " no /metrics");
        free(m);
    }
    char lag[2048];
    int n = ch_lag_report(s->brokers, "invoice-worker", CH_INPUT, lag, sizeof(lag));
    printf("  group invoice-worker behind on %d partitions (committed/end): %s\n", n, lag);
}

/* Registers every (event, target) pair the plan makes. 0 or -1. */
static int expect_pairs(const ch_plan *p, ch_table *t)
{
    for (size_t i = 0; i < p->n_events; i++) {
        char rid[160];
        for (int k = 0; k < CH_N_TARGETS; k++) {
            if (!((p->events[i].targets >> k) & 1))
                continue;
            ch_result_key(p, i, k, rid, sizeof(rid));
            if (ch_table_expect(t, rid, p->events[i].copies) != 0)
                return -1;
        }
    }
    return 0;
}

static bool soak_mode(const opts *o)
{
    return strcmp(o->mode, "soak") == 0;
}

static long long soak_warmup_ms(const opts *o)
{
    long long run = (long long)o->soak_min * 60000, w = run / 5;
    if (w < 60000)
        w = 60000;
    if (w > run / 2)
        w = run / 2;
    return w;
}

/* Production (the feeder is running), faults and the drain. Returns 0, or -1 when
 * interrupted. */
static int run(iw_stack *s, worker *ws, const opts *o, ch_feed *feed, ch_table *table, schedule *sc,
               ch_soak *soak, run_figs *rf)
{
    long long d = (long long)((double)o->events * 1000.0 / o->rate);
    sc->t0 = now_ms();
    sc->kill_until = sc->t0 + d;
    sc->next_kill =
        o->faults & CH_FAULT_KILL ? sc->t0 + jitter(o->sc->kill_min_ms, o->sc->kill_max_ms) : 0;
    if (sc->next_kill > sc->kill_until)
        sc->next_kill = 0;
    sc->breaker_at = sc->t0 + d / 5;
    sc->redis_at = sc->t0 + d * 2 / 5;
    sc->broker_at = sc->t0 + d * 3 / 5;
    sc->breaker_state = o->faults & CH_FAULT_BREAKER ? 0 : 2;
    sc->redis_state = o->faults & CH_FAULT_REDIS ? 0 : 2;
    sc->broker_state = o->faults & CH_FAULT_BROKER ? 0 : 2;
    sc->last_fault = sc->t0;
    plan_episodes(sc, o, d);
    long long next_progress = sc->t0 + PROGRESS_MS, next_sample = sc->t0;
    bool faults_left = true, stall_reported = false;
    while (!interrupted) {
        long long t = now_ms();
        faults_left = run_faults(s, ws, sc, o);
        reap_workers(s, ws, sc);
        if (t >= next_progress) {
            progress(feed, table, ws, sc, o);
            next_progress += PROGRESS_MS;
        }
        if (soak && t >= next_sample && !feed->done) {
            int pids[CH_SOAK_WORKERS] = {ws[0].proc.pid, ws[1].proc.pid};
            ch_soak_sample(soak, t - sc->t0, pids);
            next_sample += SOAK_SAMPLE_MS;
        }
        if (feed->done && !rf->produce_ms)
            rf->produce_ms = feed->finished_ms - sc->t0;
        pthread_mutex_lock(&table->mu);
        bool all = table->terminal == table->expected;
        long long last_term = table->last_terminal_ms;
        pthread_mutex_unlock(&table->mu);
        if (feed->done && !faults_left && all) {
            rf->drained_at = t;
            break;
        }
        long long quiet_since = last_term > sc->last_fault ? last_term : sc->last_fault;
        if (feed->done && !faults_left && !stall_reported && t - quiet_since > STALL_MS) {
            stall_report(s, ws);
            stall_reported = true;
        }
        if (feed->done && !faults_left && t - quiet_since > o->drain_timeout_s * 1000) {
            fprintf(stderr, "chaos: no pair finished for %ld s; giving up on the drain\n",
                    o->drain_timeout_s);
            break;
        }
        iw_sleep_ms(TICK_MS);
    }
    if (feed->error[0])
        fprintf(stderr, "chaos: %s\n", feed->error);
    progress(feed, table, ws, sc, o);
    return interrupted ? -1 : 0;
}

/* After the drain: the group commits everything, the workers stop cleanly, the watcher reads
 * the last results. */
static void settle(iw_stack *s, worker *ws, ch_watch *watch, run_figs *rf)
{
    long long t0 = now_ms();
    rf->final_lag = -1;
    while (!interrupted && now_ms() - t0 < 60000) {
        rf->final_lag = iw_kafka_group_lag(s->brokers, "invoice-worker", CH_INPUT);
        if (rf->final_lag == 0)
            break;
        iw_sleep_ms(1000);
    }
    for (int i = 0; i < MAX_WORKERS; i++)
        iw_proc_signal(&ws[i].proc, SIGTERM);
    for (int i = 0; i < MAX_WORKERS; i++) {
        rf->stop_status[i] = ws[i].proc.pid ? iw_proc_stop(&ws[i].proc, 30000) : -1;
        ws[i].running = false;
    }
    t0 = now_ms();
    while (now_ms() - t0 < 30000 && now_ms() - watch->last_msg_ms < 3000)
        iw_sleep_ms(200);
}

static const char *verdict(size_t n)
{
    return n ? "FAIL" : "ok";
}

static void summary_faults(const opts *o, const schedule *sc, const worker *ws)
{
    const ch_scenario *c = o->sc;
    if (o->faults & CH_FAULT_HTTP)
        printf("http faults             5%% 503, 2%% 429 Retry-After 1, 1%% hang %d ms (timeout %d "
               "ms), 1%% reset\n",
               HANG_MS, o->request_ms);
    if (c->lat_max_ms > 0 || o->err_rate > 0)
        printf("replies                 latency %d-%d ms, %.0f%% 503 (timeout %d ms)\n",
               c->lat_min_ms, c->lat_max_ms, o->err_rate * 100, o->request_ms);
    if (c->held > 0) {
        int lo, hi;
        held_range(o, &lo, &hi);
        printf("held requests           %.0f%% held %d-%d ms more, then applied (past the "
               "timeout)\n",
               c->held * 100, lo, hi);
    }
    if (!(o->faults & CH_FAULT_HTTP) && c->lat_max_ms == 0 && o->err_rate == 0)
        printf("http faults             none\n");
    printf("lease                   %d s (redis.lease_s), request timeout %d ms, shutdown grace %d "
           "s\n",
           o->lease_s, o->request_ms, c->grace_s > 0 ? c->grace_s : 10);
    printf("faults                  %d kill -9 (", sc->kills);
    for (int i = 0, first = 1; i < MAX_WORKERS; i++)
        if (ws[i].used) {
            printf("%s%s %d", first ? "" : ", ", ws[i].name, ws[i].kills);
            first = 0;
        }
    printf(")");
    if (o->faults & CH_FAULT_REDIS)
        printf("; redis-server restart (down %d s)", REDIS_DOWN_MS / 1000);
    if (o->faults & CH_FAULT_BROKER)
        printf("; broker 1 down %d s", BROKER_DOWN_MS / 1000);
    if (o->faults & CH_FAULT_BREAKER)
        printf("; %s 503 burst %d s (breaker open seen: %s)", BREAKER_TARGET,
               BREAKER_BURST_MS / 1000, sc->breaker_seen_open ? "yes" : "NO");
    if (sc->brownouts)
        printf("; %d brownout(s) of 10-12 s", sc->brownouts);
    if (sc->joins || sc->leaves)
        printf("; %d join(s), %d leave(s) by SIGTERM", sc->joins, sc->leaves);
    if (sc->redis_stops || sc->redis_kills)
        printf("; Redis out for %d s: %d SIGSTOP, %d killed and restarted", 2 * o->lease_s,
               sc->redis_stops, sc->redis_kills);
    printf("\n");
}

static void summary(const opts *o, const ch_plan *p, const ch_table *t, const schedule *sc,
                    const run_figs *rf, const ch_figures *fig, const worker *ws, int soak_failed,
                    bool pass)
{
    int exits = 0, n_workers = 0;
    for (int i = 0; i < MAX_WORKERS; i++) {
        exits += ws[i].exits;
        n_workers += ws[i].used;
    }
    printf("\n== chaos summary (scenario %s, %s form, seed %llu) ==\n", o->sc->name, o->mode,
           (unsigned long long)o->seed);
    printf("events produced         %zu messages over %d invoices: %zu distinct events, %zu late "
           "(out of order), %zu under an earlier version's event_id (%zu right after another), "
           "%zu identical resends, %zu poison; %zu invoices end with a tail\n",
           p->n_msgs, p->n_invoices, p->n_events, p->n_late, p->n_reused, p->n_reused_in_a_row,
           p->n_dup, p->n_poison, p->n_tails);
    printf("rate                    %.0f/s target, production took %.1f s (%.0f/s)\n", o->rate,
           secs(rf->produce_ms),
           rf->produce_ms ? (double)p->n_msgs * 1000.0 / (double)rf->produce_ms : 0);
    if (p->n_gates)
        printf("gates                   %zu of %d opened by their pairs, %zu given up on after "
               "120 s without a pair finished   (must be 0: %s)\n",
               rf->gates_passed, p->n_gates, rf->gates_timed_out, verdict(rf->gates_timed_out));
    printf("workers                 %d in the group at the start, %d slots used\n", o->sc->workers,
           n_workers);
    summary_faults(o, sc, ws);
    printf("worker exits by itself  %d\n", exits);
    printf("(event,target) pairs    %zu expected (incl. %zu poison), %zu terminal\n", t->expected,
           fig->poison, t->terminal);
    printf("lost                    %zu   (must be 0: %s)\n", fig->lost, verdict(fig->lost));
    printf("regressions             %zu accepted updates older than one accepted before, at %zu "
           "(invoice, target)   (must be 0: %s)\n",
           fig->regressions, fig->pairs_regressed, verdict(fig->regressions));
    printf("final-state mismatches  %zu of %zu (invoice, target): %zu by header, %zu by body   "
           "(must be 0: %s)\n",
           fig->mismatches, fig->state_checked, fig->wrong_state, fig->wrong_body,
           verdict(fig->mismatches));
    printf("wrong final state       %zu of %zu (invoice, target)   (must be 0: %s)\n",
           fig->wrong_state, fig->state_checked, verdict(fig->wrong_state));
    printf("succeeded never received %zu of %zu pairs reported succeeded   (must be 0: %s)\n",
           fig->succeeded_unseen, fig->succeeded_checked, verdict(fig->succeeded_unseen));
    printf("header/body disagreements %zu accepted updates   (must be 0: %s)\n", fig->disagreements,
           verdict(fig->disagreements));
    printf("overlapping calls       %zu pairs of accepted updates of one (invoice, target), the "
           "second sent while the first was in flight   (must be 0: %s)\n",
           fig->overlaps, verdict(fig->overlaps));
    printf("poison not dead-lettered %zu of %zu   (must be 0: %s)\n", fig->poison_missing,
           fig->poison, verdict(fig->poison_missing));
    printf("event_id applied twice  %zu event_ids whose target accepted two versions under them   "
           "(must be 0: %s)\n",
           fig->reused_twice, verdict(fig->reused_twice));
    printf("reuse misjudged         %zu event_ids none of whose versions was sent while each was "
           "rejected, or one not sent without a rejected, stale, superseded or failed result   "
           "(must be 0: %s)\n",
           fig->reused_misjudged, verdict(fig->reused_misjudged));
    printf("reused event_ids        %zu (event, target) pairs under an event_id another version "
           "carries there, with results",
           fig->reused);
    for (int i = 0; i < CH_N_STATUS; i++)
        printf(" %s %zu", ch_status_names[i], fig->reused_by_status[i]);
    printf("\n");
    printf("repeats                 %zu accepted updates repeating the newest version, at %zu "
           "(invoice, target)   (allowed, reported: the same state sent again)\n",
           fig->repeats, fig->pairs_repeats);
    printf("history                 %zu accepted updates judged (%zu older ones dropped by the "
           "simulator's bound)\n",
           fig->accepted, fig->history_dropped);
    printf("repeated sends          %zu over %zu pairs (calls after one answered 200); %zu of them "
           "with a kill -9 between the 200 and the repeat\n",
           fig->repeated_sends, fig->pairs_repeated, fig->repeated_killed);
    printf("  bound                 max_in_flight x kills = %d x %d = %d; at the kills the victims "
           "had %.0f calls in flight and %.0f jobs open%s\n",
           MAX_IN_FLIGHT, sc->kills, MAX_IN_FLIGHT * sc->kills, sc->in_flight_at_kills,
           sc->jobs_open_at_kills,
           sc->kills_unscraped ? " (some victims' metrics unreadable)" : "");
    printf("duplicate results       %zu (same result_id again); %zu beyond the %zu deliberate "
           "resends' share\n",
           fig->dup_results, fig->dup_beyond, p->n_dup);
    printf("results by status      ");
    for (int i = 0; i < CH_N_STATUS; i++)
        printf(" %s %zu", ch_status_names[i], t->by_status[i]);
    printf("  (total %zu, unparsed %zu, unexpected ids %zu)\n", t->results, t->unparsed,
           fig->unknown_results);
    printf("simulator calls         %zu (%zu answered 200)\n", fig->calls, fig->calls_ok);
    if (rf->drained_at)
        printf("drain after last fault  %.1f s (after the last acknowledged event %.1f s)\n",
               secs(rf->drained_at - sc->last_fault),
               secs(rf->drained_at - sc->t0 - rf->produce_ms));
    else
        printf("drain after last fault  never (gave up)\n");
    printf("group lag at the end    %lld; workers stopped with", rf->final_lag);
    for (int i = 0; i < MAX_WORKERS; i++)
        if (ws[i].used)
            printf(" %s %d", ws[i].name, rf->stop_status[i]);
    printf("\n");
    if (fig->produce_failed)
        printf("produce failures        %zu (not counted above)\n", fig->produce_failed);
    if (fig->trimmed)
        printf("INCONCLUSIVE            %zu of the misses are input the mock cluster dropped (5 MB "
               "per partition) before a worker read it: use more --partitions\n",
               fig->trimmed);
    if (soak_failed >= 0)
        printf("soak resources          %s\n", soak_failed ? "FAIL" : "ok");
    printf("FIGURES scenario=%s form=%s seed=%llu lost=%zu regressions=%zu mismatches=%zu "
           "succeeded_never_received=%zu repeats=%zu disagreements=%zu poison_missing=%zu "
           "overlaps=%zu reused_twice=%zu reused_misjudged=%zu\n",
           o->sc->name, o->mode, (unsigned long long)o->seed, fig->lost, fig->regressions,
           fig->mismatches, fig->succeeded_unseen, fig->repeats, fig->disagreements,
           fig->poison_missing, fig->overlaps, fig->reused_twice, fig->reused_misjudged);
    printf("RESULT: %s\n", pass ? "PASS" : "FAIL");
    fflush(stdout);
}

/* Starts the scenario's group and waits until its members are ready. 0 or -1. */
static int start_group(iw_stack *s, worker *ws, const opts *o)
{
    for (int i = 0; i < o->sc->workers && i < MAX_WORKERS; i++) {
        if (worker_config(s, &ws[i], i, o) != 0 || worker_start(s, &ws[i]) != 0) {
            fprintf(stderr, "chaos: cannot start worker %d\n", i + 1);
            return -1;
        }
    }
    long long t0 = now_ms();
    bool all = false;
    while (!interrupted && now_ms() - t0 < 60000 && !all) {
        all = true;
        for (int i = 0; i < MAX_WORKERS && all; i++)
            all = !ws[i].running || worker_ready(&ws[i]);
        if (!all)
            iw_sleep_ms(250);
    }
    printf("chaos: workers %s after %.1f s\n", all ? "ready" : "NOT all ready",
           secs(now_ms() - t0));
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_ERROR;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    srand((unsigned)o.seed);
    if (o.sc->err_max > 0)
        o.err_rate = o.sc->err_min + (o.sc->err_max - o.sc->err_min) * (rand() % 1001) / 1000.0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    ch_plan plan;
    ch_mix mix = {.poison = 0.01,
                  .late = o.sc->late > 0 ? o.sc->late : 0.05,
                  .dup = 0.05,
                  .reuse = o.reuse >= 0      ? o.reuse
                           : o.sc->reuse > 0 ? o.sc->reuse
                           : o.sc->reuse < 0 ? 0
                                             : 0.02,
                  .tails = o.tails >= 0 ? o.tails : o.sc->tails};
    if (ch_plan_build(&plan, o.events, o.invoices, mix, o.sc->targets, o.seed) != 0) {
        fprintf(stderr, "chaos: out of memory\n");
        return EXIT_ERROR;
    }
    printf("chaos: scenario %s, %s form: %zu messages at %.0f/s over %d invoices, %d partitions, "
           "%d workers, seed %llu\n",
           o.sc->name, o.mode, plan.n_msgs, o.rate, o.invoices, o.partitions, o.sc->workers,
           (unsigned long long)o.seed);

    int rc = EXIT_ERROR, soak_failed = -1;
    iw_stack s;
    worker ws[MAX_WORKERS];
    memset(ws, 0, sizeof(ws));
    ch_table table;
    ch_watch watch = {0};
    ch_feed feed = {0};
    static schedule sc; /* large: kill times and episodes */
    run_figs rf = {0};
    ch_figures fig = {0};
    ch_soak soak = {0};
    bool watching = false, watch_made = false;
    memset(&s, 0, sizeof(s));
    if (ch_table_init(&table, plan.n_pairs + plan.n_poison) != 0) {
        fprintf(stderr, "chaos: out of memory\n");
        ch_plan_free(&plan);
        return EXIT_ERROR;
    }
    if (expect_pairs(&plan, &table) != 0) {
        fprintf(stderr, "chaos: out of memory\n");
        goto out;
    }
    char faults[1024];
    run_faults_json(&o, faults, sizeof(faults));
    const iw_stack_opts so = {.partitions = o.partitions,
                              .aof = true,
                              .faults = strcmp(faults, "[]") != 0 ? faults : NULL};
    if (iw_stack_launch(&s, &so) != 0)
        goto out;
    printf("chaos: stack in %s (kafka %s, redis :%d, simulator %s)\n", s.dir, s.brokers,
           s.redis.port, s.sim_base);
    if (start_group(&s, ws, &o) != 0)
        goto out;
    watch.table = &table;
    watch.brokers = s.brokers;
    if (ch_watch_start(&watch) != 0)
        goto out;
    watching = watch_made = true;
    feed.plan = &plan;
    feed.table = &table;
    feed.brokers = s.brokers;
    feed.rate = o.rate;
    if (ch_feed_start(&feed) != 0)
        goto out;
    int r = run(&s, ws, &o, &feed, &table, &sc, soak_mode(&o) ? &soak : NULL, &rf);
    if (r != 0)
        feed.stop = true;
    ch_feed_join(&feed);
    if (r != 0)
        goto out;
    settle(&s, ws, &watch, &rf);
    ch_watch_stop(&watch);
    watching = false;
    if (watch.error[0])
        fprintf(stderr, "chaos: %s\n", watch.error);
    if (ch_check_run(&plan, &table, &watch, &s, sc.kill_ms,
                     (size_t)(sc.kills < MAX_KILLS ? sc.kills : MAX_KILLS), sc.t0, o.request_ms,
                     &fig) != 0)
        goto out;
    if (soak_mode(&o))
        soak_failed = ch_soak_verdict(&soak, soak_warmup_ms(&o), SOAK_RSS_LIMIT);
    bool pass =
        ch_figures_pass(&fig) && soak_failed <= 0 && !watch.error[0] && feed.gates_timed_out == 0;
    rf.gates_passed = feed.gates_passed;
    rf.gates_timed_out = feed.gates_timed_out;
    summary(&o, &plan, &table, &sc, &rf, &fig, ws, soak_failed, pass);
    rc = pass ? 0 : EXIT_FAIL;
    if (!pass)
        setenv("IW_KEEP_STACK", "1", 1); /* keep the worker logs as evidence */
out:
    if (interrupted)
        fprintf(stderr, "chaos: interrupted\n");
    feed.stop = true;
    if (watching)
        ch_watch_stop(&watch);
    for (int i = 0; i < MAX_WORKERS; i++)
        iw_proc_stop(&ws[i].proc, 20000);
    if (sc.redis_stopped)
        iw_proc_signal(&s.redis.proc, SIGCONT); /* so that it can stop */
    if (s.dir[0])
        iw_stack_stop(&s);
    if (watch_made)
        ch_watch_free(&watch);
    ch_soak_free(&soak);
    ch_table_free(&table);
    ch_plan_free(&plan);
    return rc;
}
