/* target.h: the adapter ops table. An adapter renders a request and classifies a reply; it does
 * no I/O, never sleeps, and is tested with fixture files. */
#ifndef IW_TARGET_H
#define IW_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "invoice.h"
#include "secrets.h"
#include "wbuf.h"

/* One HTTP header. */
typedef struct iw_header {
    char *name;
    char *value;
} iw_header;

typedef struct iw_request_block iw_request_block; /* request.c */

/* A rendered HTTP request; owns everything it points to (iw_request_clear frees it, and
 * iw_request_reset empties it but keeps its memory for the next request). Start from a zeroed
 * one. */
typedef struct iw_request {
    char method[8]; /* "POST", "PUT" */
    char *url;      /* absolute URL, query included (malloc'd) */
    iw_header *headers; /* iw_request_add_header: name and value live in the request's store */
    size_t n_headers;
    char *body; /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    char **secrets; /* values to mask as *** whenever the request is printed or logged */
    size_t n_secrets;
    /* memory kept by iw_request_reset */
    size_t cap_headers, cap_secrets;
    iw_request_block *store; /* the text of headers, secrets and a copied body */
    bool body_owned;         /* body was given by iw_request_set_body (freed with the request) */
} iw_request;

/* What a reply means for the dispatcher. */
typedef enum iw_outcome_kind {
    IW_OUTCOME_OK = 0,    /* accepted; target_ref may be set */
    IW_OUTCOME_RETRY,     /* transient: try again after retry_after_ms (or backoff when < 0) */
    IW_OUTCOME_PERMANENT, /* the target refused it for good */
    IW_OUTCOME_AUTH       /* credentials refused */
} iw_outcome_kind;

/* The error kinds of a result's error.kind (DESIGN.md section 4). */
typedef enum iw_error_kind {
    IW_ERR_NONE = 0,
    IW_ERR_VALIDATION,
    IW_ERR_AUTH,
    IW_ERR_REMOTE,
    IW_ERR_TRANSPORT,
    IW_ERR_TIMEOUT,
    IW_ERR_RATE_LIMITED,
    IW_ERR_EXHAUSTED,
    IW_ERR_UNAVAILABLE /* shed: its breaker was open while its waiting calls held room others
                        * needed (iw_dispatch_shed) */
} iw_error_kind;

/* Returns "validation", "auth", ... ("" for IW_ERR_NONE). */
const char *iw_error_kind_str(iw_error_kind k);

/* A classified reply. */
typedef struct iw_outcome {
    iw_outcome_kind kind;
    iw_error_kind error_kind; /* IW_ERR_NONE when kind is OK */
    int64_t retry_after_ms;   /* RETRY only: from Retry-After, -1 when the reply gave none */
    bool refresh_token;       /* AUTH only: the adapter can refresh its token and try once more */
    char code[64];            /* the target's error code, or the HTTP status as text */
    char message[256];        /* human-readable reason, no secrets */
    char target_ref[128];     /* OK only: the id the target returned, "" when none */
} iw_outcome;

/* A reply as the dispatcher received it. Borrowed pointers. */
typedef struct iw_response {
    long status;              /* HTTP status */
    const iw_header *headers; /* reply headers, names as received */
    size_t n_headers;
    const char *body; /* may be NULL when body_len is 0; not NUL-terminated */
    size_t body_len;
    int64_t now_ms; /* wall clock at receipt (ms since epoch), for HTTP-date Retry-After */
} iw_response;

/* Per-call state the renderer may need that is not part of the config. */
typedef struct iw_render_ctx {
    const void *state; /* the instance's adapter state (state_new), NULL when it has none */
    int64_t now_ms;    /* the attempt's wall clock (ms since epoch), for a request that carries
                        * its time (a signed webhook); 0 where a render must not depend on the
                        * clock (`render`, golden files) */
    bool may_be_applied; /* an earlier attempt of this call may have reached the target and
                          * been applied: leave out what would make the target act a second
                          * time beyond the update itself (ebizcharge's customer e-mails) */
} iw_render_ctx;

/* The most secret fields an adapter has (iw_target_conf_secrets lists them). */
#define IW_TARGET_MAX_SECRETS 16

/* An adapter. One const instance per adapter type. Slots marked "may be NULL" are optional. */
typedef struct iw_target_ops {
    const char *type; /* adapter type name, as in the config's "type" */

    /* Its part of a target's config (common/config.h): its keys, how each is read and checked,
     * their seed values and which are secrets. Its settings struct, declared in the adapter's
     * header, is tc->adapter_conf. */
    const iw_conf_adapter *conf;

    /* Records in s the forms its secrets take on the wire besides each secret's own (which
     * iw_secrets_for_target records): a Basic pair, a URL's userinfo. 0 or IW_ENOMEM. May be
     * NULL. */
    int (*secret_forms)(const iw_target_conf *tc, iw_secrets *s);

    /* Per-instance state kept between calls (a refreshed token): created once per instance by
     * whoever sends its calls and passed to render as ctx->state. NULL when out of memory.
     * May be NULL (no state). */
    void *(*state_new)(const iw_target_conf *tc);
    void (*state_free)(void *state);

    /* Checks the target's own rules before anything is sent. Returns 0, or IW_EINVAL with a
     * message naming the field ("lines[0].unit_price: must be greater than 0"). May be NULL. */
    int (*validate)(const iw_event *ev, const iw_target_conf *tc, char *errbuf, size_t errlen);

    /* Set when render refuses events validate accepts beyond the rules every adapter shares
     * (a mapping file's URL template and formats): the check before a version takes its
     * lane (iw_dispatch_validate) then renders the request too. */
    bool render_refuses_more;

    /* Renders the request for ev into *out (zeroed by the caller). Returns 0, or IW_EINVAL /
     * IW_ENOMEM with errbuf set; on failure *out holds nothing to free. */
    int (*render)(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                  iw_request *out, char *errbuf, size_t errlen);

    /* Classifies a reply into *out. Never fails: an unreadable reply is RETRY or PERMANENT
     * with a message saying why. */
    void (*classify)(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out);

    /* Token refresh (midnight): renders the refresh call. May be NULL. */
    int (*render_refresh)(const iw_target_conf *tc, iw_request *out, char *errbuf, size_t errlen);

    /* Reads the new token from the refresh reply into tok. Returns 0 or IW_EINVAL. May be NULL. */
    int (*parse_refresh)(const iw_response *resp, char *tok, size_t toklen);

    /* Keeps the token parse_refresh read in state, for the renders that follow (the caller
     * has registered its forms for masking first). 0 or IW_ENOMEM. NULL when there is no
     * refresh. */
    int (*store_refresh)(void *state, const char *tok);
} iw_target_ops;

/* Each adapter defines its table as `const iw_target_ops iw_target_NAME` in its own file;
 * registry.c declares and lists them. Code that names one adapter's table (its tests, generic.c
 * for itself) declares it with IW_TARGET_OPS(NAME). */
#define IW_TARGET_OPS(name) extern const iw_target_ops iw_target_##name

/* Finds an adapter by type name; NULL when unknown. */
const iw_target_ops *iw_target_find(const char *type);

/* The adapters, NULL-terminated, for listing. */
extern const iw_target_ops *const iw_targets_all[];

/* The config part of the i-th adapter, NULL past the last: what the config loader is given
 * (iw_conf_adapters, common/config.h). */
const iw_conf_adapter *iw_targets_conf(size_t i);

/* The config loader with these adapters (common/config.h: iw_config_load_with...). */
iw_config *iw_config_load(const char *path, iw_config_errors *errs);
iw_config *iw_config_parse(const char *json, const char *base_dir, iw_config_errors *errs);
iw_config *iw_config_parse_n(const char *json, size_t len, const char *base_dir,
                             iw_config_errors *errs);
iw_config *iw_config_defaults(void);

/* Sets a target instance's defaults for adapter type `type` (iw_target_conf_seed). Used by
 * tests that build a conf by hand. Returns 0, IW_ENOTFOUND for an unknown type or IW_ENOMEM. */
int iw_target_conf_defaults(iw_target_conf *t, const char *type);

/* Wrappers so callers never write ops->fn(...). validate returns 0 when the slot is NULL. */
static inline int iw_target_validate(const iw_target_ops *o, const iw_event *ev,
                                     const iw_target_conf *tc, char *errbuf, size_t errlen)
{
    return o->validate ? o->validate(ev, tc, errbuf, errlen) : 0;
}

static inline int iw_target_render(const iw_target_ops *o, const iw_event *ev,
                                   const iw_target_conf *tc, const iw_render_ctx *ctx,
                                   iw_request *out, char *errbuf, size_t errlen)
{
    return o->render(ev, tc, ctx, out, errbuf, errlen);
}

static inline void iw_target_classify(const iw_target_ops *o, const iw_target_conf *tc,
                                      const iw_response *resp, iw_outcome *out)
{
    o->classify(tc, resp, out);
}

/* --- helpers for adapters and callers (request.c) --- */

/* Appends a header (copies name and value). Returns 0 or IW_ENOMEM. */
int iw_request_add_header(iw_request *r, const char *name, const char *value);

/* Records a secret value to mask when printing (copied; NULL or "" ignored). */
int iw_request_add_secret(iw_request *r, const char *value);

/* Sets the body, taking ownership of buf (len bytes, NUL-terminated at buf[len]). */
void iw_request_set_body(iw_request *r, char *buf, size_t len);

/* Sets the body to a copy of what b holds (a render's scratch buffer). Returns 0, or b's sticky
 * error (IW_ENOMEM when the copy fails) with errbuf saying why ("ponumber: text holds a
 * control character XML 1.0 cannot carry"). */
int iw_request_set_body_from(iw_request *r, const iw_wbuf *b, char *errbuf, size_t errlen);

/* Adds the per-call headers of DESIGN.md section 5: Idempotency-Key, X-Request-ID, when
 * traceparent is not NULL, traceparent, and X-Invoice-Version (the event's version: targets
 * ignore it, their logs and the simulator can tell which state arrived). 0 or IW_ENOMEM. */
int iw_request_add_call_headers(iw_request *r, const char *event_id, const char *target,
                                int attempt, int64_t version, const char *traceparent);

/* Returns the value of the first header named `name` (case-insensitive), or NULL. */
const char *iw_request_header(const iw_request *r, const char *name);

/* Prints the request as `METHOD URL`, `Name: value` lines, a blank line and the body, with
 * every recorded secret replaced by ***. Returns a malloc'd string (caller frees) or NULL. */
char *iw_request_format_masked(const iw_request *r);

/* Replaces every occurrence of each secret in text with ***; returns a malloc'd copy. */
char *iw_mask_secrets(const char *text, size_t len, char *const *secrets, size_t n_secrets);

/* Frees what a request owns and zeroes it; safe on a zeroed request. */
void iw_request_clear(iw_request *r);

/* Empties a request as iw_request_clear does, but keeps its arrays and the larger part of its
 * store (up to 16 KiB), so that the next request built in it allocates nothing as a rule. */
void iw_request_reset(iw_request *r);

/* A reply body read as one JSON value, or NULL: the whole body must be that one value (JSON
 * whitespace around it aside), with no NUL in it, raw or escaped. cJSON alone reads the first
 * value and ignores what follows ("ok"{"status":"error"}), and keeps a string only up to a NUL
 * ("ok\u0000 but failed" reads as "ok"), and finds the first of a key given twice
 * ({"status":"ok","status":"error"}; another reader may take the last): none of them may pass
 * for a success, and a key given twice, or an object of more than 4096 members, makes the reply
 * unreadable too. Free with cJSON_Delete. */
struct cJSON *iw_json_reply_parse(const char *body, size_t len);

/* Looks up a reply header (case-insensitive); NULL when absent. */
const char *iw_response_header(const iw_response *resp, const char *name);

/* Parses a Retry-After value (delta seconds, or an HTTP-date in any of its three forms,
 * relative to now_ms) into milliseconds, at most a year (a longer wait reads as a year; the
 * retry policy caps it again); returns -1 when absent or unreadable. */
int64_t iw_retry_after_ms(const char *value, int64_t now_ms);

/* Fills out for a reply by HTTP status only, the common rules of DESIGN.md section 5:
 * 2xx OK; 401/403 AUTH; 408, 429 and 5xx RETRY (Retry-After honoured); other 4xx PERMANENT.
 * Adapters call it and then refine by body. */
void iw_outcome_from_status(const iw_response *resp, iw_outcome *out);

/* The outcome of a reply larger than max bytes (max_response_bytes), which is not read: retry,
 * transport, "reply larger than N bytes". */
void iw_outcome_too_large(iw_outcome *out, int64_t max);

/* Sets kind, error kind, code and message (printf-style) in one call. */
void iw_outcome_set(iw_outcome *out, iw_outcome_kind kind, iw_error_kind ek, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
