/* chaos.h: the chaos driver's parts: the event plan, the paced feeder, the result watcher, the
 * final checks and the process sampler, shared by main.c and the files that implement them. */
#ifndef IW_CHAOS_H
#define IW_CHAOS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stack.h"

#define CH_N_TARGETS 5   /* target instances of the stack config */
#define CH_TENANT "acme" /* tenant of every event */
#define CH_INPUT "invoice-events"
#define CH_RESULTS "invoice-results"
#define CH_DLQ "invoice-events-dlq"

/* Target instance names, indexed like the bits of ch_event.targets. */
extern const char *const ch_target_names[CH_N_TARGETS];

/* One distinct event: what the driver produced for an invoice version. Its event_id is its
 * own, or (a reuse) that of an earlier version of the same invoice. */
typedef struct ch_event {
    int32_t invoice; /* invoice index */
    int32_t version; /* that invoice's counter at this change */
    int32_t id_of;   /* the event whose event_id it carries (itself, unless a reuse) */
    uint8_t targets; /* bit i: routed to ch_target_names[i] */
    uint8_t shared;  /* bit i: another event with its event_id goes to ch_target_names[i] too */
    uint8_t copies;  /* deliveries of this event (1 + deliberate duplicates) */
} ch_event;

/* What a produced message is. */
typedef enum ch_msg_kind {
    CH_MSG_EVENT,     /* the first delivery of an event */
    CH_MSG_LATE,      /* the first delivery of an event, sent after a newer version */
    CH_MSG_DUPLICATE, /* an identical resend of an event already sent */
    CH_MSG_POISON     /* not a valid event: truncated JSON or no invoice.id */
} ch_msg_kind;

/* One message to produce, in production order. */
typedef struct ch_msg {
    int32_t event;             /* index into plan events (poison: its serial number) */
    int32_t invoice;           /* invoice index (its key) */
    uint8_t kind;              /* ch_msg_kind */
    volatile int8_t delivered; /* 0 pending, 1 acknowledged, -1 failed (delivery report) */
    int32_t partition;         /* where it was written (from the delivery report) */
    int64_t offset;
} ch_msg;

/* The whole run's input, generated up front from a seed. */
#define CH_GATES 3 /* the tails' pauses in the feed */

typedef struct ch_plan {
    ch_event *events;
    size_t n_events;
    ch_msg *msgs;
    size_t n_msgs;
    int n_invoices;
    size_t n_poison, n_late, n_dup; /* message counts by kind */
    size_t n_reused;                /* events carrying an earlier version's event_id */
    size_t n_reused_in_a_row;       /* of those, right after another of the invoice */
    size_t n_tails;                 /* invoices whose plan ends with a tail (ch_plan_build) */
    size_t gate_at[CH_GATES];       /* the feeder waits before these messages ... */
    size_t gate_need[CH_GATES];     /* ... until this many (event, target) pairs are terminal */
    int n_gates;
    size_t n_pairs;                 /* (event, target) pairs: the results expected */
    uint8_t target_mask;            /* targets events may go to (bits of ch_target_names) */
    char run[16];                   /* event id prefix, unique per run */
} ch_plan;

/* The shares of a plan's messages that are not a new version under its own event_id. */
typedef struct ch_mix {
    double poison; /* not a valid event */
    double late;   /* an older version sent after a newer one */
    double dup;    /* an identical resend */
    double reuse;  /* a new version under the event_id of one of the invoice's last three */
    int tails;     /* invoices whose versions close the plan as ch_plan_build says */
} ch_mix;

/* Builds a plan of n_msgs messages over n_invoices invoices with the given mix; each event
 * goes to 2 or 3 targets of target_mask (to all of it when it holds one or two; 0 = all
 * five). The plan ends with the tails of mix.tails invoices (spread over them), six
 * versions each, all to the same targets: a gate (the feeder waits until every pair before
 * it is terminal), a version S1 under an id of its own, a gate, S2 likewise, a gate, then
 * four messages one after the other: two versions under ids of their own (A, B), then one under
 * S2's id and one under S1's. S1 and S2 each went first in their lane, so both were claimed:
 * A goes on the wire while B waits and the last two, which claim nothing, supersede it in
 * turn. The invoice must end at B, which a lane holding one superseded version drops. 0 or
 * -1. */
int ch_plan_build(ch_plan *p, size_t n_msgs, int n_invoices, ch_mix mix, uint8_t target_mask,
                  uint64_t seed);

/* The text an event of this version carries in invoice.po_number ("PO-V<version>"); the
 * simulator reads the version back from it (IW_SIM_BODY_MARK). */
void ch_body_version_text(int32_t version, char *buf, size_t len);

void ch_plan_free(ch_plan *p);

/* The event id event i carries ("E<run>-<n, 7 digits>", n = its id_of) into buf. */
void ch_event_id(const ch_plan *p, size_t i, char *buf, size_t len);

/* The invoice id of invoice i ("CH-<i>") into buf. */
void ch_invoice_id(int i, char *buf, size_t len);

/* Event index from an event id of this plan (the event that first carried it), or -1. */
long ch_event_index(const ch_plan *p, const char *event_id);

/* The first event carrying event_id at this version (-1: any) to target t (-1: any), or -1. */
long ch_event_lookup(const ch_plan *p, const char *event_id, long long version, int t);

/* The chaos table's key for event i's result at target t into buf: its result_id
 * ("<event_id>/<target>"), followed by "@v<version>" when another event with its event_id
 * goes to t too (their results share the result_id; the watcher tells them apart by version). */
void ch_result_key(const ch_plan *p, size_t i, int t, char *buf, size_t len);

/* The event and target a table key names (ch_result_key's form). 0 or -1. */
int ch_result_key_split(const ch_plan *p, const char *key, long *event, int *target);

/* The value of message m (malloc'd) and its key into key. NULL on error. */
char *ch_msg_value(const ch_plan *p, const ch_msg *m, char *key, size_t keylen);

/* ---- the result table, shared by the feeder (poison ids) and the watcher ---- */

/* Status bits of results seen for one result_id. */
enum {
    CH_ST_SUCCEEDED = 1 << 0,
    CH_ST_DUPLICATE = 1 << 1,
    CH_ST_STALE = 1 << 2,
    CH_ST_SUPERSEDED = 1 << 3,
    CH_ST_REJECTED = 1 << 4,
    CH_ST_FAILED = 1 << 5,
    CH_ST_OTHER = 1 << 6
};
#define CH_N_STATUS 7

/* Names of the status bits, in bit order. */
extern const char *const ch_status_names[CH_N_STATUS];

/* One result_id: expected by the plan and/or seen on the result topic. */
typedef struct ch_slot {
    char *key;         /* result_id */
    uint32_t results;  /* results seen */
    uint16_t statuses; /* CH_ST_* bits seen */
    uint8_t expected;  /* the plan expects it */
    uint8_t copies;    /* deliveries of its event */
} ch_slot;

/* A hash table of result ids with counters; every function locks mu. */
typedef struct ch_table {
    pthread_mutex_t mu;
    ch_slot *slots;
    size_t cap; /* a power of two */
    size_t used;
    size_t expected; /* slots with expected */
    size_t terminal; /* expected slots with results > 0 */
    size_t results;  /* results seen */
    size_t unparsed; /* result messages that were not JSON with a result_id */
    size_t by_status[CH_N_STATUS];
    long long last_terminal_ms; /* monotonic time the terminal count last grew */
} ch_table;

int ch_table_init(ch_table *t, size_t expect);
void ch_table_free(ch_table *t);

/* Marks result_id as expected (copies = deliveries of its event). 0 or -1 (no memory). */
int ch_table_expect(ch_table *t, const char *result_id, int copies);

/* Counts one result for result_id with this status bit: in the slot "<result_id>@v<version>"
 * when one is expected (version >= 0), else in result_id's. 0 or -1. */
int ch_table_seen(ch_table *t, const char *result_id, long long version, int status_bit);

/* A snapshot copy of the slot for result_id (zeroed when absent). */
ch_slot ch_table_get(ch_table *t, const char *result_id);

/* ---- the feeder: one producer, paced ---- */

/* The paced producer thread's state. */
typedef struct ch_feed {
    const ch_plan *plan;
    ch_table *table; /* poison result ids are registered on delivery */
    const char *brokers;
    double rate;          /* messages per second */
    atomic_size_t queued; /* messages handed to librdkafka */
    atomic_size_t acked;  /* delivery reports: success */
    atomic_size_t failed; /* delivery reports: failure */
    atomic_bool stop;     /* ask the thread to stop early */
    atomic_bool done;     /* every message queued and every report in (or stopped) */
    long long started_ms, finished_ms;
    size_t gates_passed;    /* the plan's gates opened by their pairs ... */
    size_t gates_timed_out; /* ... and after waiting GATE_MAX_MS (feed.c) */
    long long gate_since_ms;
    pthread_t thread;
    char error[256]; /* why the feeder stopped early, if it did */
} ch_feed;

/* Starts the feeder thread. 0 or -1. */
int ch_feed_start(ch_feed *f);

/* Joins the feeder thread. */
void ch_feed_join(ch_feed *f);

/* ---- the watcher: reads results and dead letters as they come ---- */

/* One dead letter's source position. */
typedef struct ch_dead {
    int32_t partition;
    int64_t offset;
    char target[32]; /* x-iw-target, "" for none */
} ch_dead;

/* The watcher thread's state. */
typedef struct ch_watch {
    ch_table *table;
    const char *brokers;
    atomic_bool stop;
    pthread_t thread;
    pthread_mutex_t mu; /* guards dead */
    ch_dead *dead;
    size_t n_dead, cap_dead;
    _Atomic long long last_msg_ms; /* monotonic time of the last message read */
    char error[256];
} ch_watch;

int ch_watch_start(ch_watch *w);

/* Stops and joins the watcher (its dead letters stay readable). */
void ch_watch_stop(ch_watch *w);

/* Frees what the watcher collected. */
void ch_watch_free(ch_watch *w);

/* Dead letters whose source is (partition, offset). */
size_t ch_watch_dead_at(ch_watch *w, int32_t partition, int64_t offset);

/* ---- the verdict on one history ---- */

/* What one accepted update is, against those the same (invoice, target) accepted before it. */
typedef enum ch_update_kind {
    CH_UPDATE_NEWER,     /* newer than every one before (or the first) */
    CH_UPDATE_REPEAT,    /* the newest version accepted again: allowed, reported */
    CH_UPDATE_REGRESSION /* older, by header or by body, than one accepted before */
} ch_update_kind;

/* The newest versions an (invoice, target) history accepted so far. */
typedef struct ch_judge {
    long long max_version; /* highest X-Invoice-Version (-1: none yet) */
    long long max_body;    /* highest version a body carried (-1: none yet) */
} ch_judge;

void ch_judge_init(ch_judge *j);

/* Judges the next accepted update (version: its header; body: the version its body carried;
 * -1 for either when absent) and takes it into account. */
ch_update_kind ch_judge_update(ch_judge *j, long long version, long long body);

/* Whether a call of an (invoice, target) that arrived at `arrival` overlapped the one applied
 * before it (arrived at prev_arrival, applied at prev_applied; monotonic ms): it came while
 * that one was still in flight, and sooner after its arrival than window (the worker's request
 * timeout: past it the worker may have given up on a call the target still holds). */
bool ch_judge_overlap(double prev_arrival, double prev_applied, double arrival, long long window);

/* The final version each (invoice, target) cell may hold (cell = invoice * CH_N_TARGETS +
 * target; 0 where the plan sends nothing): at most want, the highest version sent there; at
 * least floor, the higher of the highest version sent there under an event_id of its own and
 * the oldest of each group of versions sharing one there (the first of a group to claim the id
 * is sent, or superseded by a newer version that is). want and floor hold n_invoices *
 * CH_N_TARGETS zeroed entries. */
void ch_plan_bounds(const ch_plan *p, int32_t *want, int32_t *floor);

/* The verdict on the versions sharing one event_id at one target, member by member. */
typedef struct ch_reuse_group {
    int members, accepted, rejected;
    long last_accepted; /* the member accepted last (-1: none) */
    long unnamed;       /* the first not accepted whose results say neither rejected, stale,
                         * superseded nor failed (a reuse taken for a duplicate; -1: none) */
    uint16_t unnamed_statuses;
} ch_reuse_group;

/* What a group shows wrong (ch_reuse_group_faults's bits). */
enum {
    CH_REUSE_TWICE = 1 << 0,  /* the target accepted two of its versions */
    CH_REUSE_NONE = 1 << 1,   /* it accepted none while each was rejected */
    CH_REUSE_UNNAMED = 1 << 2 /* one not accepted was not named (see unnamed) */
};

void ch_reuse_group_init(ch_reuse_group *g);

/* Adds member k: whether the target accepted it, and its results (count and CH_ST_* bits). */
void ch_reuse_group_add(ch_reuse_group *g, long k, bool accepted, uint32_t results,
                        uint16_t statuses);

/* CH_REUSE_* bits: what the group shows wrong; 0 when the first to claim was sent and the
 * others were named. */
int ch_reuse_group_faults(const ch_reuse_group *g);

/* ---- final checks against the simulator ---- */

/* Figures of the final checks. */
typedef struct ch_figures {
    size_t lost;              /* expected pairs with no result */
    size_t wrong_state;       /* (invoice, target) whose final version is not the highest sent */
    size_t wrong_body;        /* (invoice, target) whose final body does not carry the highest
                               * version sent (the version in the body, not the header) */
    size_t mismatches;        /* (invoice, target) with a wrong final state or body */
    size_t state_checked;     /* (invoice, target) pairs compared */
    size_t accepted;          /* updates in the simulator's histories (applied, 2xx sent) */
    size_t history_dropped;   /* older updates the simulator dropped (bounded histories) */
    size_t regressions;       /* accepted updates older than one accepted before them at the same
                               * (invoice, target), by header or by body version */
    size_t pairs_regressed;   /* (invoice, target) with at least one regression */
    size_t repeats;           /* accepted updates repeating the newest version accepted so far */
    size_t pairs_repeats;     /* (invoice, target) with at least one repeat */
    size_t disagreements;     /* accepted updates whose header version, body version and event
                               * do not name the same version */
    size_t overlaps;          /* pairs of accepted updates of one (invoice, target) of which
                               * the later to arrive came while the other was in flight, within
                               * the request timeout of its arrival */
    size_t succeeded_unseen;  /* pairs reported `succeeded` that the target never accepted */
    size_t succeeded_checked; /* pairs reported `succeeded` */
    size_t poison_missing;    /* poison messages without a dead letter */
    size_t reused;            /* (event, target) pairs whose event_id another event carries to
                               * the same target */
    size_t reused_by_status[CH_N_STATUS]; /* of those, with a result of each status */
    size_t reused_twice;      /* event_ids whose target accepted two versions under them */
    size_t reused_misjudged;  /* event_ids of which the target accepted none while each was
                               * rejected, or one it did not accept got no rejected, stale,
                               * superseded or failed result (a reuse taken for a duplicate) */
    size_t poison;            /* poison messages delivered */
    size_t dup_results;       /* results whose result_id was already seen */
    size_t dup_beyond;        /* of those, more than the deliberate duplicate deliveries explain */
    size_t repeated_sends;    /* calls of a pair after one got 200 */
    size_t pairs_repeated;    /* pairs with such a call */
    size_t repeated_killed;   /* of the repeated sends: a worker was killed between the first
                               * 200 and the repeat */
    size_t calls;             /* calls the simulator saw */
    size_t calls_ok;          /* calls answered 200 */
    size_t unknown_results;   /* result ids the plan did not expect */
    size_t produce_failed;    /* messages whose delivery failed (not counted anywhere else) */
    size_t trimmed;           /* of the lost pairs and missing dead letters: input the mock
                               * cluster dropped (retention) before a worker could read it */
} ch_figures;

/* Runs the checks (the workers must be stopped): fills fig, prints examples of failures.
 * kill_ms: the monotonic times of the kills (the simulator logs calls on the same clock);
 * t0_ms: the start of production on that clock, for the times in examples.
 * 0, or -1 when the simulator could not be read. */
int ch_check_run(const ch_plan *plan, ch_table *table, ch_watch *watch, const iw_stack *s,
                 const long long *kill_ms, size_t n_kills, long long t0_ms, int request_ms,
                 ch_figures *fig);

/* Whether the figures show every guarantee the chaos run judges: nothing lost, no regression,
 * no final-state mismatch, no `succeeded` the target never accepted, no header/body
 * disagreement, every poison event dead-lettered, every reused event_id sent at one version
 * exactly and named at the others. */
bool ch_figures_pass(const ch_figures *fig);

/* ---- scenarios ---- */

/* Faults a run injects (bits; --faults selects them by name). */
enum {
    CH_FAULT_KILL = 1 << 0,      /* kill -9 a worker every few seconds, restart it at once */
    CH_FAULT_REDIS = 1 << 1,     /* one redis-server restart (down 3 s) */
    CH_FAULT_BROKER = 1 << 2,    /* Kafka broker 1 down 10 s */
    CH_FAULT_BREAKER = 1 << 3,   /* midnight answers 503 for 4 s: its breaker opens */
    CH_FAULT_HTTP = 1 << 4,      /* steady: 5% 503, 2% 429, 1% hangs, 1% resets */
    CH_FAULT_BROWNOUT = 1 << 5,  /* every target answers 503 to everything for 10-12 s */
    CH_FAULT_JOIN = 1 << 6,      /* a worker joins the group during each brownout */
    CH_FAULT_LEAVE = 1 << 7,     /* a worker leaves by SIGTERM during each brownout */
    CH_FAULT_REDIS_OUT = 1 << 8, /* Redis out for twice the lease: SIGSTOP, then killed */
    CH_N_FAULTS = 9
};

/* --faults names, in bit order. */
extern const char *const ch_fault_names[CH_N_FAULTS];

/* A named chaos scenario: the group, the input and the faults. */
typedef struct ch_scenario {
    const char *name;
    const char *about;            /* one line for --help */
    int workers;                  /* in the group from the start */
    uint8_t targets;              /* target bits of the events (0: 2 or 3 of all five) */
    int invoices;                 /* distinct invoices (few: many versions each) */
    size_t events_short;          /* messages of the short form (the ctest form) */
    size_t events_long;           /* messages of the long form */
    double rate;                  /* messages per second */
    int partitions_long;          /* partitions of the long form (0: as the short form) */
    int lease_s;                  /* redis.lease_s of the workers */
    int request_ms;               /* timeouts.request_ms of every target */
    int grace_s;                  /* worker.shutdown_grace_s (0: the test stack's 10 s) */
    unsigned faults;              /* CH_FAULT_* */
    int kill_min_ms, kill_max_ms; /* CH_FAULT_KILL: pause between kills */
    int lat_min_ms, lat_max_ms;   /* every reply is delayed by this much (0: not) */
    double err_min, err_max;      /* share of 503 replies, drawn per run (0: none) */
    double held;                  /* share of requests the target holds past the request
                                   * timeout and then applies (0: none); see held_range */
    double late;                  /* share of messages that are older versions sent after a
                                   * newer one (0: 5%) */
    double reuse;                 /* share of messages that are new versions under the
                                   * event_id of an earlier one (0: 2%, < 0: none) */
    int tails;                    /* invoices whose plan ends with a tail (ch_mix) */
    int episode_ms;               /* long forms: one brownout or Redis outage per this much
                                   * production (the short form has one, Redis two) */
} ch_scenario;

/* The scenario called name, or NULL. */
const ch_scenario *ch_scenario_find(const char *name);

/* Every scenario, NULL-terminated. */
extern const ch_scenario *const ch_scenarios[];

/* ---- process figures ---- */

/* VmRSS of pid in kB, or -1. */
long ch_proc_rss_kb(int pid);

/* Open file descriptors of pid, or -1. */
int ch_proc_fds(int pid);

/* The value of a Prometheus sample line "name{labels} value" (labels "" for none) in text,
 * or -1 when absent. */
double ch_metric(const char *text, const char *name, const char *labels);

/* Partitions of topic where group's committed offset is behind the end, listed into buf as
 * "p3 120/180, ..." (committed/end). Returns how many, or -1. */
int ch_lag_report(const char *brokers, const char *group, const char *topic, char *buf, size_t len);

/* The first offset the cluster still holds of each partition of topic (*lows malloc'd).
 * Returns the partition count, or -1. */
int ch_low_watermarks(const char *brokers, const char *topic, int64_t **lows);

/* ---- the soak: resource samples of the workers over time ---- */

#define CH_SOAK_WORKERS 2

/* Samples taken every few seconds during a soak. */
typedef struct ch_soak {
    size_t n, cap;
    long long *t_ms;               /* since the start of production */
    long *rss_kb[CH_SOAK_WORKERS]; /* VmRSS, -1 when unreadable */
    int *fds[CH_SOAK_WORKERS];     /* open descriptors, -1 when unreadable */
} ch_soak;

/* Records one sample of the workers' pids at t_ms. 0 or -1. */
int ch_soak_sample(ch_soak *s, long long t_ms, const int pids[CH_SOAK_WORKERS]);

/* Prints the table and the start/end figures; returns the number of workers that failed the
 * criterion (RSS growth over rss_limit after warm-up, or fds growing steadily). */
int ch_soak_verdict(const ch_soak *s, long long warmup_ms, double rss_limit);

void ch_soak_free(ch_soak *s);

#endif
