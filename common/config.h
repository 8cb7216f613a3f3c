/* config.h: the worker's configuration file (JSON, ${ENV} references, *_file secrets, IW_*
 * overrides). */
#ifndef IW_CONFIG_H
#define IW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* How much longer the fence lease (redis.lease_s) must be than any target's request_ms. */
#define IW_LEASE_MARGIN_MS 2000
/* The longest worker.id: the fence owner is the id, the pid and a random part, and a longer id
 * cut that suffix off, so two workers of one id held one fence (review 100). */
#define IW_WORKER_ID_MAX 128

/* Retry, limit and breaker settings of one target instance (DESIGN.md section 7). */
typedef struct iw_retry_conf {
    int max_attempts;       /* attempts in all, default 8 */
    int64_t max_elapsed_ms; /* give up after this long since the first attempt, default 10 min */
    int64_t base_ms;        /* backoff base, default 250 */
    int64_t max_delay_ms;   /* backoff cap, default 60 s */
    int64_t max_retry_after_ms; /* longest Retry-After honoured, default 5 min */
} iw_retry_conf;

/* The seam between the loader and the adapters. common/ knows only the keys every target has
 * (type, url, retry, timeouts, limits, tls, rate, breaker, follow_redirects); everything else
 * in a target's object belongs to its adapter, which describes it as a table of fields in its
 * own file (worker/targets). The loader reads a field by its kind, so ${ENV}, *_file secrets,
 * the control-character check and the error paths ("targets.<name>.<key>") stay one code
 * path for every adapter, and the adapter gets back its own settings struct, opaque here.
 * Callers pass the adapter types in (iw_conf_adapters): common/ names none, and adding an
 * adapter never touches it. */
typedef struct iw_conf_reader iw_conf_reader; /* the loader's state, for a field's own parser */
struct cJSON;

typedef enum iw_conf_kind {
    IW_CONF_TEXT,   /* a string, ${ENV} expanded (char * in the settings struct) */
    IW_CONF_SECRET, /* a string or the content of the file named by <key>_file; masked */
    IW_CONF_URL,    /* an http:// or https:// URL */
    IW_CONF_CHOICE, /* one of the two words in choices */
    IW_CONF_LIST,   /* an array of non-empty strings: char ** at off, its count at count_off */
    IW_CONF_CUSTOM  /* read by the field's parse, freed by its free (off is unused) */
} iw_conf_kind;

/* One key of an adapter's part of a target object. */
typedef struct iw_conf_field {
    const char *key; /* the JSON key; NULL ends a table */
    iw_conf_kind kind;
    size_t off;             /* offsetof the value in the adapter's settings struct */
    size_t count_off;       /* IW_CONF_LIST: offsetof its size_t count */
    const char *seed;       /* default, a seed page's value; NULL = unset */
    bool wire;              /* sent in a header, a URL or a body: control characters are refused */
    const char *choices[2]; /* IW_CONF_CHOICE */
    /* IW_CONF_CUSTOM: reads value (not null) into the settings struct conf, reporting
     * problems under path; free frees what it read */
    void (*parse)(iw_conf_reader *rd, const struct cJSON *value, const char *path, void *conf);
    void (*free)(void *conf);
    /* not NULL: an instance of the adapter must set the key; the loader reports
     * "required: <this text>" when it is absent */
    const char *required;
    /* not NULL (text, secret and URL kinds): what is wrong with a value the loader read, or
     * NULL when it is fine; reported at the key's path. The text must not quote the value (a
     * secret's would end up in a log). */
    const char *(*check)(const char *value);
} iw_conf_field;

/* Rows of a field table for settings struct S: a string (TEXT, SECRET or URL; wire as above),
 * one of two words, a list of strings with its count. */
/* clang-format off */
#define IW_CONF_STR(key_, kind_, S, member, seed_, wire_)                                          \
    {.key = key_, .kind = kind_, .off = offsetof(S, member), .seed = seed_, .wire = wire_}
#define IW_CONF_ONE_OF(key_, S, member, seed_, a, b)                                               \
    {.key = key_, .kind = IW_CONF_CHOICE, .off = offsetof(S, member), .seed = seed_,              \
     .choices = {a, b}}
#define IW_CONF_STRINGS(key_, S, member, count)                                                    \
    {.key = key_, .kind = IW_CONF_LIST, .off = offsetof(S, member),                               \
     .count_off = offsetof(S, count)}
/* clang-format on */

/* What the loader knows of one adapter type (the config part of its ops table). */
typedef struct iw_conf_adapter {
    const char *type;            /* as in the config's "type" */
    const char *url;             /* seed URL; "guess" when the API pages give none */
    size_t size;                 /* sizeof its settings struct */
    const iw_conf_field *fields; /* its keys */
    const char *placeholders;    /* JSON object of placeholder credentials, so `render --target
                                    TYPE` without a config shows where they go */
    /* not NULL: what is wrong with an instance name (the key under "targets") for this type,
       beyond the rule every name follows; NULL when it is fine. Reported at targets.NAME. */
    const char *(*check_name)(const char *name);
    /* not NULL: what is wrong with an instance's url for this type (a valid http(s) URL), or
       NULL when it is fine. Reported at targets.NAME.url; must not quote the url. */
    const char *(*check_url)(const char *url);
    /* not NULL: the same, once the instance's own keys are read (adapter_conf): what is wrong
       with the url together with them. Reported at targets.NAME.url. */
    const char *(*check_url_with)(const char *url, const void *adapter_conf);
} iw_conf_adapter;

/* The adapter types a loader accepts: adapters(0), adapters(1)... until NULL. */
typedef const iw_conf_adapter *(*iw_conf_adapters)(size_t i);

/* Reports a problem with a config value at path (for an IW_CONF_CUSTOM field's parse). */
void iw_conf_error(iw_conf_reader *rd, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For an IW_CONF_CUSTOM field's parse: value as a string with ${ENV} expanded (malloc'd), or
 * NULL with the problem reported at path. */
char *iw_conf_text(iw_conf_reader *rd, const struct cJSON *value, const char *path);

/* A file named in the config, made relative to the config file's folder as *_file secrets and
 * tls.ca_file are (an absolute path is kept). Returns a malloc'd path, NULL when out of
 * memory or file is NULL. */
char *iw_conf_file(const iw_conf_reader *rd, const char *file);

/* Expands ${VAR} and ${VAR:-default} in s as config values are expanded. Returns a malloc'd
 * string, or NULL with errbuf saying why (empty when out of memory). */
char *iw_config_expand_env(const char *s, char *errbuf, size_t errlen);

/* One target instance: an adapter type plus its endpoint, limits and the adapter's own
 * settings. Secrets are already resolved (from ${ENV} or *_file); never print them. */
typedef struct iw_target_conf {
    char *name; /* instance name, the key under "targets" */
    char *type; /* adapter type, as in the config */
    char *url;  /* endpoint URL (an adapter may append to it) */

    const iw_conf_adapter *adapter; /* the type's fields, NULL until a type is set */
    void *adapter_conf;             /* the adapter's settings struct (adapter->size bytes) */

    /* limits */
    iw_retry_conf retry;
    int64_t connect_timeout_ms; /* default 5 s */
    int64_t request_timeout_ms; /* whole request, default 30 s */
    int64_t settle_ms;          /* after an attempt ended without an answer (its request may
                                 * still be applied): how long its fence is kept before a newer
                                 * version may be sent; default request_timeout_ms */
    int max_concurrency;        /* requests in flight to this target, default 32 */
    double rate_per_s;          /* token bucket refill, 0 = unlimited (a rate, not money) */
    int rate_burst;             /* token bucket size, default max(1, rate_per_s) */
    int breaker_failures;       /* consecutive retryable failures that open it, default 20 */
    int64_t breaker_open_ms;    /* how long it stays open, default 30 s */
    bool breaker_shed;          /* once it has been down breaker_shed_after_ms, its waiting
                                 * calls fail (unavailable) while the worker has no room for
                                 * other work; default true */
    int64_t breaker_shed_after_ms; /* default 30 s */
    int64_t max_response_bytes; /* replies larger than this are aborted, default 4 MiB */

    /* TLS */
    bool tls_verify;       /* default true; false needs an explicit "tls": {"verify": false} */
    char *tls_ca_file;     /* CA bundle for this target, NULL = system store */
    bool follow_redirects; /* default false */
} iw_target_conf;

/* t's settle_ms in effect: request_timeout_ms while unset (< 0, as seeded). */
static inline int64_t iw_target_settle_ms(const iw_target_conf *t)
{
    return t->settle_ms >= 0 ? t->settle_ms : t->request_timeout_ms;
}

/* Tenant routes: which target instances get a tenant's events when the event names none. */
typedef struct iw_route {
    char *tenant; /* "*" matches every tenant without its own route */
    char **targets;
    size_t n_targets;
} iw_route;

/* Default worker.max_pending_bytes: 64 MiB of event values. A pending event also holds its parsed
 * form and, while a call runs, a rendered request per target (a few times its size in all), so
 * this plus librdkafka's prefetch (sized from it) leaves room under the 512 MiB limit of the base
 * deployment; the production overlay (1 GiB) sets 256 MiB. */
#define IW_DEFAULT_MAX_PENDING_BYTES (64LL * 1024 * 1024)

typedef struct iw_config {
    /* worker */
    char *worker_id;               /* pod or host name; default: $HOSTNAME or gethostname() */
    char *log_level;               /* debug, info, warn, error; default info */
    int max_in_flight;             /* global requests in flight, default 512 */
    int max_pending_per_partition; /* unfinished events per partition before pausing it, default
                                      2000 */
    int64_t shutdown_grace_ms;     /* default 25 s */
    int64_t max_pending_bytes;     /* bytes of consumed, unfinished event values before
                                      consumption pauses; default IW_DEFAULT_MAX_PENDING_BYTES */

    /* kafka */
    char *kafka_brokers;  /* bootstrap servers, required for run */
    char *kafka_group_id; /* default "invoice-worker" */
    char *input_topic;    /* default "invoice-events" */
    char *result_topic;   /* default "invoice-results" */
    char *dlq_topic;      /* default "invoice-events-dlq" */
    char **kafka_props;   /* librdkafka properties passed through: key0, value0, key1, ... */
    size_t n_kafka_props; /* number of pairs */

    /* redis */
    char *redis_host;     /* default 127.0.0.1 */
    int redis_port;       /* default 6379 */
    char *redis_password; /* secret, NULL = none */
    int64_t ledger_ttl_s; /* outcome records' TTL, default 7 days */
    int64_t lease_ms;     /* fence lease, default 60 s; > every request_ms + IW_LEASE_MARGIN_MS */

    /* http */
    char *http_listen; /* "host:port", default "0.0.0.0:8080"; "" disables */

    iw_target_conf *targets;
    size_t n_targets;
    iw_route *routes;
    size_t n_routes;
} iw_config;

/* The lease a claim or renewal of a fence of target t grants: redis.lease_s plus t's settle_ms.
 * The dispatcher starts an attempt only when the lease left covers its timeout, its settle time
 * and the guard, so the fence outlasts every request the target may still apply even when the
 * worker holding it is killed (no renewal, no release): a killed worker's fences are held this
 * long after its last renewal. Renewals keep the period they have without the settle (lease_s
 * minus the longest request and the guard, halved; at most a third of lease_s). */
static inline int64_t iw_target_lease_grant_ms(const iw_config *cfg, const iw_target_conf *t)
{
    return cfg->lease_ms + iw_target_settle_ms(t);
}

/* One problem found in a config file, named by its JSON path ("targets.ebiz.retry.max_attempts").
 */
typedef struct iw_config_error {
    char path[128];
    char message[256];
} iw_config_error;

/* A list of problems; filled by iw_config_load. */
typedef struct iw_config_errors {
    iw_config_error items[64]; /* the first 64 problems */
    size_t count;              /* problems found (may exceed 64) */
} iw_config_errors;

/* Loads and checks a config file, with the adapter types adapters lists (the worker's are
 * iw_targets_conf, worker/targets/target.h). Returns a new config (free with iw_config_free),
 * or NULL with every problem in errs (path + message; a secret's value is never part of a
 * message). Applies IW_* environment overrides: IW_KAFKA_BROKERS, IW_KAFKA_GROUP_ID,
 * IW_REDIS_HOST, IW_REDIS_PORT, IW_HTTP_LISTEN, IW_LOG_LEVEL, IW_WORKER_ID, IW_MAX_IN_FLIGHT. */
iw_config *iw_config_load_with(const char *path, iw_conf_adapters adapters, iw_config_errors *errs);

/* Same as iw_config_load_with from len bytes of JSON text already in memory (need not be
 * NUL-terminated; a NUL byte inside is an error, as in a file). base_dir resolves relative
 * *_file paths (NULL = the current directory). */
iw_config *iw_config_parse_with(const char *json, size_t len, const char *base_dir,
                                iw_conf_adapters adapters, iw_config_errors *errs);

/* A config with no file: defaults, and one instance per adapter type with seed URLs and
 * placeholder credentials (what `render --target TYPE` uses without -c). */
iw_config *iw_config_defaults_with(iw_conf_adapters adapters);

/* Frees a config; NULL is a no-op. */
void iw_config_free(iw_config *cfg);

/* Finds a target instance by name; NULL when there is none. */
const iw_target_conf *iw_config_target(const iw_config *cfg, const char *name);

/* The route for a tenant: its own, else the "*" route; NULL when neither exists. */
const iw_route *iw_config_route(const iw_config *cfg, const char *tenant);

/* Sets a target instance's type and defaults for adapter ad (its seed URL and every seed value
 * of its fields); a URL or adapter settings already there are kept. Returns 0 or IW_ENOMEM. */
int iw_target_conf_seed(iw_target_conf *t, const iw_conf_adapter *ad);

/* Lists the values of t's secret fields that are set (not NULL, not ""), at most max; returns
 * how many. */
size_t iw_target_conf_secrets(const iw_target_conf *t, const char **out, size_t max);

/* Frees what a target conf owns (not the struct itself). */
void iw_target_conf_clear(iw_target_conf *t);

/* True when no environment variable is named *_proxy in any case (http_proxy, HTTPS_PROXY,
 * all_proxy, no_proxy, ...). libcurl 7.88 looks those up with up to five getenv calls on every
 * transfer, each a walk of the whole environment, which in a pod holds a few variables per
 * service in the namespace. With none set, telling libcurl "no proxy" once is the same answer
 * without the walks (worker/dispatch.c, tests/bench/http_floor.c). */
bool iw_env_has_no_proxy_vars(void);

/* Parses an http.listen value, "host:port", ":port" (every IPv4 address) or
 * "[v6-address]:port", hosts as numeric addresses, into ss; 0 or -1. */
int iw_listen_parse(const char *listen, struct sockaddr_storage *ss, socklen_t *sl);

#endif
