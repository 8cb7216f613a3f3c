/* stack.h: the local stack for integration tests: redis-server, kafka-local, target-sim and
 * worker processes on loopback, plus small Kafka and HTTP clients to drive and inspect them. */
#ifndef IW_STACK_H
#define IW_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "testproc.h"

/* The running servers of one test. */
typedef struct iw_stack {
    iw_redis redis;
    iw_proc kafka;
    char brokers[512]; /* bootstrap address printed by kafka-local */
    iw_proc sim;
    int sim_port;
    char sim_base[64]; /* http://127.0.0.1:PORT */
    char dir[256];     /* temp folder: configs, logs */
    int partitions;    /* of every topic */
    int http_port;     /* when set before iw_stack_config: the worker's /metrics port */
} iw_stack;

/* Starts redis-server (AOF when aof), kafka-local (3 brokers, `partitions` each topic) and
 * target-sim. 0 or -1 (with a message on stderr). */
int iw_stack_start(iw_stack *s, int partitions, bool aof);

/* Stops everything started and removes the temp folder. */
void iw_stack_stop(iw_stack *s);

/* Writes a worker config into s->dir/name with all five target instances pointing at the
 * simulator, retry settings suited to tests, and extra_targets_json (a JSON object merged
 * over each target, e.g. "{\"retry\": {\"max_attempts\": 3}}", or NULL) and extra_worker_json
 * (merged over "worker", or NULL). Returns the path in a static buffer, NULL on error. */
const char *iw_stack_config(iw_stack *s, const char *name, const char *extra_targets_json,
                            const char *extra_worker_json);

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
} iw_kmsg;

/* Produces n values (with keys, optional header "name=value" or NULL) and waits for all
 * acknowledgements. 0 or -1. */
int iw_kafka_produce(const char *brokers, const char *topic, const char *const *keys,
                     const char *const *values, size_t n, const char *header);

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
