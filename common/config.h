/* config.h: the worker's configuration file (JSON, ${ENV} references, *_file secrets, IW_*
 * overrides). */
#ifndef IW_CONFIG_H
#define IW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One "rate -> tax name" row of an InvoiceXpress tax table ("23" -> "IVA23"). */
/* How much longer the fence lease (redis.lease_s) must be than any target's request_ms. */
#define IW_LEASE_MARGIN_MS 2000

typedef struct iw_tax_name {
    char *rate; /* decimal text, compared by value */
    char *name;
} iw_tax_name;

/* Retry, limit and breaker settings of one target instance (DESIGN.md section 7). */
typedef struct iw_retry_conf {
    int max_attempts;       /* attempts in all, default 8 */
    int64_t max_elapsed_ms; /* give up after this long since the first attempt, default 10 min */
    int64_t base_ms;        /* backoff base, default 250 */
    int64_t max_delay_ms;   /* backoff cap, default 60 s */
    int64_t max_retry_after_ms; /* longest Retry-After honoured, default 5 min */
} iw_retry_conf;

/* One target instance: an adapter type plus its endpoint, credentials and limits. Secrets are
 * already resolved (from ${ENV} or *_file); never print them. */
typedef struct iw_target_conf {
    char *name; /* instance name, the key under "targets" */
    char
        *type; /* adapter type: centra_soap, centra_navision, midnight, ebizcharge, invoicexpress */
    char *url; /* full endpoint URL; for invoicexpress the base URL (".../invoices/{id}.xml" is
                  appended) */

    /* credentials: each adapter uses its own subset; NULL when unset */
    char *username;       /* centra_soap login, centra_navision Basic user */
    char *password;       /* secret: centra_soap login, navision Basic, ebizcharge Password */
    char *user_id;        /* ebizcharge UserId */
    char *security_id;    /* secret: ebizcharge SecurityId */
    char *api_key;        /* secret: invoicexpress api_key */
    char *prc_token;      /* secret: midnight PRC Authorization token */
    char *midnight_token; /* secret: midnight Authorization token (refreshed on 401) */
    char *mis_key;        /* secret: midnight MISKEY header */
    char *token_url;      /* midnight token refresh URL (default: <url
                             base>/v1/Token/RegenerateAuthToken) */

    /* protocol knobs (seed values by default) */
    char *namespace_uri;   /* SOAP body namespace */
    char *soap_action;     /* SOAPAction header value, without quotes */
    char *auth;            /* centra_navision: "basic" or "none" (default none) */
    char *format;          /* midnight: "json" (default) or "xml" */
    char *default_unit;    /* invoicexpress: unit when a line has none (default "unit") */
    char **accepted_units; /* invoicexpress: accepted unit names; NULL = the built-in list */
    size_t n_accepted_units;
    iw_tax_name *tax_names; /* invoicexpress: tax rate -> tax name */
    size_t n_tax_names;
    char *account_currency; /* invoicexpress: the account's currency (default "EUR"); the API
                               takes no currency, so an invoice in another one is refused */
    char *date_format;      /* ebizcharge: "mdy" (MM/DD/YYYY, default) or "iso" (YYYY-MM-DD) */
    char *auth_header;      /* midnight: "separate" (two Authorization lines, default) or
                               "folded" (one line, "PRC, Midnight") */
    char *lines_without_id; /* midnight: "refuse" (default) or "new" (send them as new lines) */
    char *token_refresh;    /* midnight: "on" (default: refresh once on 401) or "off" */
    char **success_replies; /* midnight: reply strings that mean success besides a GUID or a
                               number; "*" = any string */
    size_t n_success_replies;

    /* limits */
    iw_retry_conf retry;
    int64_t connect_timeout_ms; /* default 5 s */
    int64_t request_timeout_ms; /* whole request, default 30 s */
    int max_concurrency;        /* requests in flight to this target, default 32 */
    double rate_per_s;          /* token bucket refill, 0 = unlimited (a rate, not money) */
    int rate_burst;             /* token bucket size, default max(1, rate_per_s) */
    int breaker_failures;       /* consecutive retryable failures that open it, default 20 */
    int64_t breaker_open_ms;    /* how long it stays open, default 30 s */
    int64_t max_response_bytes; /* replies larger than this are aborted, default 4 MiB */

    /* TLS */
    bool tls_verify;       /* default true; false needs an explicit "tls": {"verify": false} */
    char *tls_ca_file;     /* CA bundle for this target, NULL = system store */
    bool follow_redirects; /* default false */

    /* generic: the mapping file (absolute, or relative to the working directory). To move into
     * the generic adapter's own config with the per-adapter config of the ops table. */
    char *mapping;
} iw_target_conf;

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

/* Loads and checks a config file. Returns a new config (free with iw_config_free), or NULL with
 * every problem in errs (path + message; a secret's value is never part of a message).
 * Applies IW_* environment overrides: IW_KAFKA_BROKERS, IW_KAFKA_GROUP_ID, IW_REDIS_HOST,
 * IW_REDIS_PORT, IW_HTTP_LISTEN, IW_LOG_LEVEL, IW_WORKER_ID, IW_MAX_IN_FLIGHT. */
iw_config *iw_config_load(const char *path, iw_config_errors *errs);

/* Same as iw_config_load from a JSON text already in memory. base_dir resolves relative
 * *_file paths (NULL = the current directory). */
iw_config *iw_config_parse(const char *json, const char *base_dir, iw_config_errors *errs);

/* Same as iw_config_parse from len bytes (need not be NUL-terminated; a NUL byte inside is an
 * error, as in a file). */
iw_config *iw_config_parse_n(const char *json, size_t len, const char *base_dir,
                             iw_config_errors *errs);

/* A config with no file: defaults, and one instance per adapter type with seed URLs and
 * placeholder credentials (what `render --target TYPE` uses without -c). */
iw_config *iw_config_defaults(void);

/* Frees a config; NULL is a no-op. */
void iw_config_free(iw_config *cfg);

/* Finds a target instance by name; NULL when there is none. */
const iw_target_conf *iw_config_target(const iw_config *cfg, const char *name);

/* The route for a tenant: its own, else the "*" route; NULL when neither exists. */
const iw_route *iw_config_route(const iw_config *cfg, const char *tenant);

/* Sets a target instance's defaults for its adapter type (seed URL, namespace, SOAPAction...).
 * Used by the loader and by tests that build a conf by hand. Returns 0 or IW_ENOTFOUND for
 * an unknown type. */
int iw_target_conf_defaults(iw_target_conf *t, const char *type);

/* Expands ${VAR} and ${VAR:-default} in s as config values are expanded. Returns a malloc'd
 * string, or NULL with errbuf saying why (empty when out of memory). */
char *iw_config_expand_env(const char *s, char *errbuf, size_t errlen);

/* Frees what a target conf owns (not the struct itself). */
void iw_target_conf_clear(iw_target_conf *t);

#endif
