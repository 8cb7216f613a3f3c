/* stack.h: the local stack: redis-server, kafka-local, target-sim and worker processes on
 * loopback, with the one worker config for it, plus small Kafka and HTTP clients to drive and
 * inspect them. The C tests and the chaos driver call it; build/local-stack (scripts/demo,
 * scripts/bench) is its command line. */
#ifndef IW_STACK_H
#define IW_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "testproc.h"

/* The running servers of one stack. */
typedef struct iw_stack {
    iw_redis redis;
    iw_proc kafka;
    char brokers[512]; /* bootstrap address printed by kafka-local ("" without kafka) */
    iw_proc sim;
    int sim_port;
    char sim_base[64]; /* http://127.0.0.1:PORT */
    char dir[256];     /* the stack folder: configs, logs */
    char kafka_ctl[300]; /* kafka-local's control FIFO (in dir) */
    bool own_dir;      /* dir was made by iw_stack_launch: removed at stop */
    int partitions;    /* of every topic */
    int http_port;     /* when set before iw_stack_config: the worker's /metrics port */
} iw_stack;

/* How a stack starts; zero values are the defaults. */
typedef struct iw_stack_opts {
    int partitions;       /* of every topic (0: 8) */
    int brokers;          /* kafka-local brokers (0: 3) */
    bool aof;             /* redis-server with appendonly (a restart keeps the ledger) */
    bool no_kafka;        /* start no kafka-local (brokers stays "") */
    const char *validate; /* target-sim --validate "on" or "off" (NULL: its default, on) */
    int latency_ms;       /* every simulator reply delayed this much (0: none) */
    const char *faults;   /* a fault spec or array of them installed once the simulator runs
                           * (POST /_sim/faults), or NULL */
    const char *dir;      /* the stack folder, made when missing and kept (NULL: a new
                           * /tmp/iw-stack-XXXXXX, removed at stop unless IW_KEEP_STACK is set) */
} iw_stack_opts;

/* Starts redis-server, kafka-local and target-sim on free loopback ports, and sets the
 * simulator's credentials (tests/fixtures/config/local-stack.env) in the environment unless
 * already set, for the ${IW_SIM_*} references of the config. 0, or -1 with a message on stderr
 * (what did start is stopped by iw_stack_stop). */
int iw_stack_launch(iw_stack *s, const iw_stack_opts *o);

/* Sends one control command to the stack's kafka-local ("errors Produce 1
 * MSG_SIZE_TOO_LARGE", "broker down 1": tests/support/kafka-local/control.h) and reads its
 * reply line. 0 when it answered "ok ...", -1 otherwise. Not for use while SIGUSR1/SIGUSR2
 * commands are pending: their replies come on the same line stream. */
int iw_stack_kafka_cmd(iw_stack *s, const char *cmd, char *reply, size_t len);

/* iw_stack_launch with `partitions` per topic and AOF when aof, the rest by default. */
int iw_stack_start(iw_stack *s, int partitions, bool aof);

/* Stops everything started (by pid) and removes the temp folder. */
void iw_stack_stop(iw_stack *s);

/* The one worker config of the local stack: tests/fixtures/config/local-stack.json (all five
 * target instances pointing at the simulator, secrets as ${IW_SIM_*}) with its placeholders
 * filled from these addresses. */
typedef struct iw_stack_addrs {
    const char *brokers;  /* @BROKERS@ */
    int redis_port;       /* @REDIS_PORT@ */
    const char *sim_base; /* @SIM@, http://127.0.0.1:PORT */
    int http_port;        /* @HTTP_LISTEN@ = 127.0.0.1:PORT (0: "", no HTTP server) */
} iw_stack_addrs;

/* JSON objects merged over the template (objects merged member by member, anything else
 * replaced); NULL members merge nothing. */
typedef struct iw_stack_overlay {
    const char *root;    /* over the whole config */
    const char *worker;  /* over "worker" */
    const char *targets; /* over each target instance */
} iw_stack_overlay;

/* What the C tests and the chaos driver run with over the template (worker id test-worker,
 * max_in_flight 256, quick group rebalances, a 15 s lease, short retries and timeouts).
 * build/local-stack --profile test applies the same. */
extern const iw_stack_overlay iw_stack_test_profile;

/* Writes the config to path ("-": stdout): the template filled from a, then the n overlays in
 * order.
 * 0, or -1 with a message on stderr. */
int iw_stack_config_write(const char *path, const iw_stack_addrs *a, const iw_stack_overlay *ov,
                          size_t n);

/* Writes a worker config into s->dir/name: the template for this stack with the test profile
 * and then extra (or NULL) merged over it. Returns the path in a static buffer, NULL on error. */
const char *iw_stack_config_with(iw_stack *s, const char *name, const iw_stack_overlay *extra);

/* iw_stack_config_with with extra_targets_json merged over each target (e.g. "{\"retry\":
 * {\"max_attempts\": 3}}", or NULL) and extra_worker_json over "worker" (or NULL). */
const char *iw_stack_config(iw_stack *s, const char *name, const char *extra_targets_json,
                            const char *extra_worker_json);

/* The file of the simulator's credentials (KEY=value lines) the config refers to. */
const char *iw_stack_env_file(void);

/* Sets every KEY=value of that file that is not set yet. 0 or -1. */
int iw_stack_load_env(void);

/* Starts `invoice-worker run -c config` with stderr to s->dir/<log_name>. 0 or -1. */
int iw_stack_worker_start(iw_stack *s, iw_proc *w, const char *config, const char *log_name);

/* A Kafka message read back. */
typedef struct iw_kmsg {
    char *key;
    char *value; /* NUL-terminated */
    size_t len;
    int32_t partition;
    int64_t offset;
    char *headers; /* "name=value\n" lines */
    bool key_null; /* the message had no key (key is then "") */
    bool value_null; /* a tombstone: no value (value is then "") */
} iw_kmsg;

/* Produces n values (with keys, optional headers: "name=value" lines joined by '\n', at most
 * 8, or NULL) and waits for all acknowledgements. A NULL key or value is produced as none (a
 * tombstone for a value). 0 or -1. */
int iw_kafka_produce(const char *brokers, const char *topic, const char *const *keys,
                     const char *const *values, size_t n, const char *header);

/* Produces one message with one header of any bytes (hval NULL: a header with no value).
 * 0 or -1. */
int iw_kafka_produce_header(const char *brokers, const char *topic, const char *key,
                            const char *value, const char *hname, const void *hval, size_t hlen);

/* Reads a topic from the beginning of every partition (no consumer group) until `want`
 * messages arrived or timeout_ms passed with nothing new for idle_ms. Returns the count read
 * (*out is a malloc'd array; free with iw_kmsgs_free). want 0 = read until idle. */
size_t iw_kafka_read_all(const char *brokers, const char *topic, size_t want, int timeout_ms,
                         int idle_ms, iw_kmsg **out);

void iw_kmsgs_free(iw_kmsg *m, size_t n);

/* Sum over partitions of (end offset - committed offset of group); -1 on error. 0 means the
 * group committed everything. */
int64_t iw_kafka_group_lag(const char *brokers, const char *group, const char *topic);

/* The value of header `name` of m (malloc'd) or NULL. */
char *iw_kmsg_header(const iw_kmsg *m, const char *name);

/* HTTP: method + url (+ body), returns the body (malloc'd) and sets *status. NULL on a
 * transport error. */
char *iw_http(const char *method, const char *url, const char *body, long *status);

/* Like iw_http with a whole-request timeout of timeout_ms. */
char *iw_http_timed(const char *method, const char *url, const char *body, long timeout_ms,
                    long *status);

/* POSTs a JSON body to the simulator's control path (e.g. "/_sim/faults"). Returns the HTTP
 * status (or -1). */
long iw_sim_control(const iw_stack *s, const char *path, const char *json);

/* GETs a simulator inspection path, parsed with cJSON (caller cJSON_Delete's). NULL on error. */
struct cJSON *iw_sim_get(const iw_stack *s, const char *path);

/* Builds an event JSON (malloc'd) from tests/fixtures/events/complete.json with these
 * values replaced; targets_csv like "centra_soap,midnight" or NULL to drop "targets". The
 * invoice's target refs get values derived from invoice_id so every adapter accepts it. */
char *iw_make_event(const char *event_id, const char *tenant, const char *invoice_id,
                    long long version, const char *targets_csv);

/* Results read back from a topic, with each value parsed as JSON. */
typedef struct iw_results {
    iw_kmsg *msgs;
    size_t n;
    struct cJSON **json; /* json[i] parses msgs[i].value (NULL when not JSON) */
} iw_results;

/* Reads up to `want` messages of topic (see iw_kafka_read_all) and parses them. */
iw_results iw_results_read(const iw_stack *s, const char *topic, size_t want, int timeout_ms);

void iw_results_free(iw_results *r);

/* Results with this status (and target, unless NULL). */
size_t iw_results_count(const iw_results *r, const char *target, const char *status);

/* Distinct result_id values. */
size_t iw_results_distinct(const iw_results *r);

/* A string member of a JSON object, or NULL. */
const char *iw_json_str(const struct cJSON *o, const char *key);

/* Calls the simulator saw for event part "<event_id>:<target>" (-1 on error). */
int iw_sim_calls(const iw_stack *s, const char *event_id, const char *target);

/* Invoices at target whose last accepted X-Invoice-Version is `version`; *regressed counts
 * invoices whose last version is lower than the highest the target ever accepted (an older
 * state overwrote a newer one). Returns -1 on error. */
int iw_sim_final_versions(const iw_stack *s, const char *target, long long version, int *regressed);

#endif
