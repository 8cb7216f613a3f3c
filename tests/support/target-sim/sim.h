/* sim.h: the target simulator's shared types: targets, settings, one request, one reply. */
#ifndef IW_SIM_H
#define IW_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "routes.h"
#include "xmlw.h"

/* The targets the simulator serves: ids in the registry's order (routes.h), generated from
 * it. IW_SIM_ID(midnight) is midnight's id. */
#define IW_SIM_ID(name) IW_SIM_T_##name
#define IW_SIM_ENUM_(name) IW_SIM_ID(name),
typedef enum iw_sim_target { IW_SIM_ROUTES(IW_SIM_ENUM_) IW_SIM_N_TARGETS } iw_sim_target;
#undef IW_SIM_ENUM_

/* Returns the target id ("centra_soap", ...) of t. */
const char *iw_sim_target_name(int t);

/* Finds a target by id; -1 when unknown. */
int iw_sim_target_find(const char *name);

#define IW_SIM_SECRET_LEN 128 /* longest setting value kept */
#define IW_SIM_MAX_SETTINGS 8 /* settings one route declares */

/* One setting a route reads (credentials and how the API acts where its page is silent), set
 * in the config as targets.NAME.KEY. */
typedef struct iw_sim_setting {
    const char *key;
    const char *value;          /* default; NULL: "" */
    const char *const *allowed; /* the words it may be (NULL-terminated); NULL: any string */
    const char *expect;         /* with `allowed`: the refusal after "targets.NAME.KEY: " */
} iw_sim_setting;

/* A target's settings: the keys its route declares, with their values. */
typedef struct iw_sim_creds {
    const char *key[IW_SIM_MAX_SETTINGS]; /* NULL past the last */
    char value[IW_SIM_MAX_SETTINGS][IW_SIM_SECRET_LEN];
} iw_sim_creds;

/* The value of k's setting key; "" when its route declares no such key. */
const char *iw_sim_cred(const iw_sim_creds *k, const char *key);

/* Settings from the command line and the config file. */
typedef struct iw_sim_conf {
    char listen_host[64];                 /* --listen host part, "127.0.0.1" */
    int listen_port;                      /* --listen port part; 0 = any free port */
    bool validate;                        /* contract checks on (the default) */
    iw_sim_creds creds[IW_SIM_N_TARGETS]; /* per target */
    char **units; /* invoicexpress accepted units; NULL = the seed's rule (all but kg and "") */
    size_t n_units;
    char **countries; /* invoicexpress accepted country names */
    size_t n_countries;
    cJSON *faults;    /* faults to install at start and on reset (array) */
    int threads_hint; /* connection limit, default 4096 */
    uint64_t seed;    /* random seed for faults (0 = from the clock) */
} iw_sim_conf;

/* Fills defaults: validation on, each target's settings from its route's declarations
 * (routes.h), the built-in unit and country lists. */
void iw_sim_conf_defaults(iw_sim_conf *c);

/* Reads a JSON config file over the defaults. Every key is optional; unknown keys are errors:
 *   {"validate": true, "seed": 42,
 *    "targets": {"<target>": {"<setting>": "...",
 *                             "accepted_units": [...], "countries": [...]  (invoicexpress),
 *                             "faults": [{"kind": ..., ...}]      (target implied)}},
 *    "faults": [{"target": ..., "kind": ..., ...}]}
 * where a setting is a key some route declares in its `settings` (each route file lists
 * its own). Any target takes any of them, checked as the declaring route says; a target whose
 * route does not declare the key ignores it. Fault specs as for POST /_sim/faults (faults.h).
 * Example: tests/fixtures/sim/config-example.json. Returns 0, or -1 with a reason in errbuf. */
int iw_sim_conf_load(iw_sim_conf *c, const char *path, char *errbuf, size_t errlen);

/* Frees what the settings own. */
void iw_sim_conf_clear(iw_sim_conf *c);

/* True when name is one of the accepted InvoiceXpress units / country names. */
bool iw_sim_conf_unit_ok(const iw_sim_conf *c, const char *name);
bool iw_sim_conf_country_ok(const iw_sim_conf *c, const char *name);

/* What a contract handler needs of one request; borrowed pointers, NULL when absent. The
 * headers and query parameters only some APIs read come through iw_sim_req_header and
 * iw_sim_req_query. */
typedef struct iw_sim_request {
    int target;                   /* the target id the path routed to */
    const char *arg;              /* what the path matcher took from the path ("" if none) */
    const char *method;           /* "POST", "PUT" */
    const char *path;             /* URL path, no query */
    const char *content_type;     /* Content-Type header */
    const char *authorization[4]; /* every Authorization header, in order */
    int n_authorization;
    const char *request_id;      /* X-Request-ID */
    const char *idempotency_key; /* Idempotency-Key */
    const char *invoice_version; /* X-Invoice-Version */
    const char *body;            /* request body (NUL-terminated), may be "" */
    size_t body_len;
    bool validate; /* contract checks on for this request */
    const iw_sim_conf *conf;
    const iw_sim_creds *creds; /* conf->creds[target] */
    int64_t arrival_wall_ms;   /* when the request's headers arrived, ms since the epoch */
    int64_t arrival_mono_ms;   /* the same, CLOCK_MONOTONIC ms */
    void *conn;                /* the server's connection (server.c), for the accessors */
} iw_sim_request;

/* The first request header called name (any case), or NULL. */
const char *iw_sim_req_header(const iw_sim_request *rq, const char *name);

/* The URL query parameter called name, or NULL. */
const char *iw_sim_req_query(const iw_sim_request *rq, const char *name);

/* One extra reply header. */
typedef struct iw_sim_header {
    char name[40];
    char value[200];
} iw_sim_header;

/* A reply, built by a handler and sent by the server. */
typedef struct iw_sim_reply {
    int status;            /* HTTP status */
    char content_type[64]; /* "" = none */
    char *body;            /* malloc'd, owned */
    size_t body_len;
    iw_sim_header headers[4]; /* extra headers (Retry-After, WWW-Authenticate, ...) */
    int n_headers;
} iw_sim_reply;

/* Sets status, content type and a copy of body (len bytes). */
void iw_sim_reply_set(iw_sim_reply *r, int status, const char *ctype, const char *body, size_t len);

/* Like iw_sim_reply_set but takes ownership of a malloc'd body. */
void iw_sim_reply_take(iw_sim_reply *r, int status, const char *ctype, char *body, size_t len);

/* Adds a reply header (ignored past four). */
void iw_sim_reply_header(iw_sim_reply *r, const char *name, const char *value);

/* Frees the body and zeroes the reply. */
void iw_sim_reply_clear(iw_sim_reply *r);

/* SOAP 1.1 envelope flavours for faults: Centra's (PHP) and EBizCharge's (WCF). */
typedef enum iw_sim_soap_style { IW_SIM_SOAP_CENTRA, IW_SIM_SOAP_WCF } iw_sim_soap_style;

/* Replies HTTP 500 with a SOAP 1.1 Fault (faultcode Client or Server, faultstring msg). */
void iw_sim_reply_soap_fault(iw_sim_reply *r, iw_sim_soap_style style, const char *code,
                             const char *msg);

/* Finishes the writer x and makes its document the reply body (500 when writing failed). */
void iw_sim_reply_xml(iw_sim_reply *r, int status, const char *ctype, iw_xmlw *x);

/* Replies with a JSON document (printed unformatted); takes nothing. */
void iw_sim_reply_json(iw_sim_reply *r, int status, const cJSON *doc);

/* Wall-clock and monotonic milliseconds. */
int64_t iw_sim_wall_ms(void);
int64_t iw_sim_mono_ms(void);

/* Sleeps ms milliseconds, waking early when the simulator stops. Returns false when woken
 * by the stop. */
bool iw_sim_sleep_ms(int64_t ms);

/* Wakes every sleeper; later sleeps return at once. */
void iw_sim_stop_sleepers(void);

/* ---- route descriptors: everything the server knows of one simulated API ---- */

/* Answers a request routed to the API (rq->target, rq->arg set). */
typedef void iw_sim_handler(const iw_sim_request *rq, iw_sim_reply *rp);

/* One path an API answers at. */
typedef struct iw_sim_path {
    const char *suffix; /* the request path ends with it; NULL: `match` decides */
    /* true when path is this API's; may copy a part of it (an invoice id) into arg */
    bool (*match)(const char *path, char *arg, size_t arglen);
    const char *method;     /* the one method allowed; any other gets 405 with Allow */
    iw_sim_handler *handle; /* the contract */
    bool no_faults;         /* injected faults leave this call alone (a token refresh) */
} iw_sim_path;

#define IW_SIM_MAX_PATHS 4

/* What the simulator knows of one API; its route file defines it as iw_sim_route_NAME and
 * routes.h lists it. */
typedef struct iw_sim_route {
    const char *name;         /* target type name (config, ?target=, fault specs) */
    const char *about;        /* one line for --help */
    const char *content_type; /* of success replies (also the garbage and oversized faults) */
    iw_sim_path paths[IW_SIM_MAX_PATHS]; /* where it answers; unused entries are zero */
    /* its reply to refused credentials, in the shape k configures */
    void (*auth_failure)(const iw_sim_creds *k, iw_sim_reply *rp);
    /* its server error with msg (a SOAP Server fault, a 500 in its error shape) */
    void (*server_fault)(const char *msg, iw_sim_reply *rp);
    /* its own refusal of an invoice with msg */
    void (*refusal)(const char *msg, iw_sim_reply *rp);
    /* the settings it reads (iw_sim_cred), with their defaults; unused entries are zero */
    iw_sim_setting settings[IW_SIM_MAX_SETTINGS];
} iw_sim_route;

#define IW_SIM_ROUTE_DECLARE_(name) extern const iw_sim_route iw_sim_route_##name;
IW_SIM_ROUTES(IW_SIM_ROUTE_DECLARE_)
#undef IW_SIM_ROUTE_DECLARE_

/* Every route by target id (routes.c). */
extern const iw_sim_route *const iw_sim_routes[IW_SIM_N_TARGETS];

/* 0 when every route is complete (name as in routes.h, about, content type, the three error
 * replies, at least one path, each with a method and a suffix or matcher); else -1 with the
 * route and what it lacks in errbuf. */
int iw_sim_routes_check(char *errbuf, size_t errlen);

#endif
