/* request.c: building, printing and masking rendered requests; the status rules all adapters share.
 */
#include "target.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "status.h"
#include "text.h"

const char *iw_error_kind_str(iw_error_kind k)
{
    switch (k) {
    case IW_ERR_VALIDATION: return "validation";
    case IW_ERR_AUTH: return "auth";
    case IW_ERR_REMOTE: return "remote";
    case IW_ERR_TRANSPORT: return "transport";
    case IW_ERR_TIMEOUT: return "timeout";
    case IW_ERR_RATE_LIMITED: return "rate_limited";
    case IW_ERR_EXHAUSTED: return "exhausted";
    case IW_ERR_UNAVAILABLE: return "unavailable";
    case IW_ERR_NONE: break;
    }
    return "";
}

/* A piece of a request's store: text is claimed from the newest piece, front to back; a piece
 * never moves, so what was claimed stays where it is. */
struct iw_request_block {
    iw_request_block *next; /* older, smaller */
    size_t cap, used;
    char data[];
};

#define STORE_FIRST 1024
#define STORE_KEEP 16384 /* iw_request_reset keeps a piece up to this size */

/* n bytes of r's store, or NULL when out of memory. A new piece is at least twice the last, so
 * a request that outgrows its store leaves one piece, after iw_request_reset, that holds it. */
static char *store_claim(iw_request *r, size_t n)
{
    iw_request_block *b = r->store;
    if (!b || b->cap - b->used < n) {
        size_t cap = b ? b->cap : STORE_FIRST / 2;
        do {
            if (cap > (SIZE_MAX - sizeof(*b)) / 2)
                return NULL;
            cap *= 2;
        } while (cap < n);
        iw_request_block *nb = malloc(sizeof(*nb) + cap);
        if (!nb)
            return NULL;
        *nb = (iw_request_block){.next = b, .cap = cap};
        r->store = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

/* Makes room in an array of want elements of size sz at *arr (capacity *cap). 0 or IW_ENOMEM. */
static int array_room(void **arr, size_t *cap, size_t want, size_t sz)
{
    if (want <= *cap)
        return 0;
    if (*cap > SIZE_MAX / 2 / sz)
        return IW_ENOMEM;
    size_t c = *cap ? 2 * *cap : 8;
    void *a = realloc(*arr, c * sz);
    if (!a)
        return IW_ENOMEM;
    *arr = a;
    *cap = c;
    return 0;
}

int iw_request_add_header(iw_request *r, const char *name, const char *value)
{
    if (array_room((void **)&r->headers, &r->cap_headers, r->n_headers + 1, sizeof(iw_header)))
        return IW_ENOMEM;
    value = value ? value : "";
    size_t nl = strlen(name), vl = strlen(value);
    char *both = store_claim(r, nl + vl + 2); /* "name\0value\0" */
    if (!both)
        return IW_ENOMEM;
    memcpy(both, name, nl + 1);
    memcpy(both + nl + 1, value, vl + 1);
    r->headers[r->n_headers++] = (iw_header){.name = both, .value = both + nl + 1};
    return 0;
}

int iw_request_add_secret(iw_request *r, const char *value)
{
    if (!value || !*value)
        return 0;
    if (array_room((void **)&r->secrets, &r->cap_secrets, r->n_secrets + 1, sizeof(char *)))
        return IW_ENOMEM;
    size_t n = strlen(value) + 1;
    char *s = store_claim(r, n);
    if (!s)
        return IW_ENOMEM;
    memcpy(s, value, n);
    r->secrets[r->n_secrets++] = s;
    return 0;
}

static void drop_body(iw_request *r)
{
    if (r->body_owned)
        free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->body_owned = false;
}

void iw_request_set_body(iw_request *r, char *buf, size_t len)
{
    drop_body(r);
    r->body = buf;
    r->body_len = len;
    r->body_owned = buf != NULL;
}

int iw_request_set_body_from(iw_request *r, const iw_wbuf *b, char *errbuf, size_t errlen)
{
    int rc = iw_wbuf_error(b, errbuf, errlen);
    char *body = rc ? NULL : store_claim(r, b->len + 1);
    if (!body) {
        if (!rc)
            snprintf(errbuf, errlen, "out of memory");
        return rc ? rc : IW_ENOMEM;
    }
    if (b->len)
        memcpy(body, b->data, b->len);
    body[b->len] = '\0';
    drop_body(r);
    r->body = body;
    r->body_len = b->len;
    return 0;
}

int iw_request_add_call_headers(iw_request *r, const char *event_id, const char *target,
                                int attempt, int64_t version, const char *traceparent)
{
    /* "<event_id>:<target>", then ":<attempt>" after it; cut to the buffer as snprintf would */
    char buf[512];
    size_t n = iw_text_copy(buf, sizeof(buf), event_id);
    n += iw_text_copy(buf + n, sizeof(buf) - n, ":");
    n += iw_text_copy(buf + n, sizeof(buf) - n, target);
    if (iw_request_add_header(r, "Idempotency-Key", buf))
        return IW_ENOMEM;
    char num[IW_TEXT_I64_LEN + 1] = ":";
    iw_text_i64(num + 1, attempt);
    iw_text_copy(buf + n, sizeof(buf) - n, num);
    if (iw_request_add_header(r, "X-Request-ID", buf))
        return IW_ENOMEM;
    if (traceparent && *traceparent && iw_request_add_header(r, "traceparent", traceparent))
        return IW_ENOMEM;
    iw_text_i64(num, version);
    return iw_request_add_header(r, "X-Invoice-Version", num) ? IW_ENOMEM : 0;
}

const char *iw_request_header(const iw_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* Appends n bytes to a growing buffer; returns 0 or IW_ENOMEM. */
static int grow_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return IW_ENOMEM;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

char *iw_mask_secrets(const char *text, size_t len, char *const *secrets, size_t n_secrets)
{
    char *out = NULL;
    size_t olen = 0, cap = 0;
    if (grow_append(&out, &olen, &cap, "", 0))
        return NULL;
    size_t i = 0, run = 0; /* text[run, i) is plain, not yet appended */
    while (i < len) {
        size_t hit = 0;
        for (size_t k = 0; k < n_secrets; k++) {
            if (secrets[k][0] != text[i])
                continue;
            size_t sl = strlen(secrets[k]);
            if (sl <= len - i && memcmp(text + i, secrets[k], sl) == 0 && sl > hit)
                hit = sl; /* the longest secret wins when two overlap */
        }
        if (!hit) {
            i++;
            continue;
        }
        if (grow_append(&out, &olen, &cap, text + run, i - run) ||
            grow_append(&out, &olen, &cap, "***", 3)) {
            free(out);
            return NULL;
        }
        i += hit;
        run = i;
    }
    if (grow_append(&out, &olen, &cap, text + run, len - run)) {
        free(out);
        return NULL;
    }
    return out;
}

char *iw_request_format_masked(const iw_request *r)
{
    char *raw = NULL;
    size_t len = 0, cap = 0;
    int rc = grow_append(&raw, &len, &cap, r->method, strlen(r->method));
    rc = rc ? rc : grow_append(&raw, &len, &cap, " ", 1);
    rc = rc ? rc : grow_append(&raw, &len, &cap, r->url, strlen(r->url));
    rc = rc ? rc : grow_append(&raw, &len, &cap, "\n", 1);
    for (size_t i = 0; !rc && i < r->n_headers; i++) {
        rc = grow_append(&raw, &len, &cap, r->headers[i].name, strlen(r->headers[i].name));
        rc = rc ? rc : grow_append(&raw, &len, &cap, ": ", 2);
        rc = rc ? rc
                : grow_append(&raw, &len, &cap, r->headers[i].value, strlen(r->headers[i].value));
        rc = rc ? rc : grow_append(&raw, &len, &cap, "\n", 1);
    }
    rc = rc ? rc : grow_append(&raw, &len, &cap, "\n", 1);
    if (!rc && r->body)
        rc = grow_append(&raw, &len, &cap, r->body, r->body_len);
    if (rc) {
        free(raw);
        return NULL;
    }
    char *masked = iw_mask_secrets(raw, len, r->secrets, r->n_secrets);
    free(raw);
    return masked;
}

static void free_blocks(iw_request_block *b)
{
    while (b) {
        iw_request_block *next = b->next;
        free(b);
        b = next;
    }
}

void iw_request_clear(iw_request *r)
{
    free(r->url);
    drop_body(r);
    free(r->headers);
    free(r->secrets);
    free_blocks(r->store);
    memset(r, 0, sizeof(*r));
}

void iw_request_reset(iw_request *r)
{
    iw_request_block *keep = r->store;
    if (keep && keep->cap > STORE_KEEP)
        keep = NULL;
    free_blocks(keep ? keep->next : r->store);
    if (keep)
        *keep = (iw_request_block){.cap = keep->cap};
    iw_header *headers = r->headers;
    char **secrets = r->secrets;
    size_t cap_headers = r->cap_headers, cap_secrets = r->cap_secrets;
    free(r->url);
    drop_body(r);
    *r = (iw_request){.headers = headers,
                      .cap_headers = cap_headers,
                      .secrets = secrets,
                      .cap_secrets = cap_secrets,
                      .store = keep};
}

/* Whether JSON text holds the escape \u0000 (escaped backslashes read past as pairs). */
static bool has_nul_escape(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
            return true;
        i++; /* the escaped byte */
    }
    return false;
}

/* Members of one object a reply may have: more are not searched for a key given twice. */
#define REPLY_MAX_KEYS 4096

static void note_twice(void *arg, const char *path, const char *why)
{
    (void)path;
    (void)why;
    *(bool *)arg = true;
}

struct cJSON *iw_json_reply_parse(const char *body, size_t len)
{
    if (!body || !len || memchr(body, '\0', len) || has_nul_escape(body, len))
        return NULL;
    cJSON *j = iw_json_parse_one(body, len, NULL);
    bool twice = false;
    if (j && (cJSON_IsObject(j) || cJSON_IsArray(j)))
        iw_json_duplicate_keys(j, "", REPLY_MAX_KEYS, 100000, note_twice, &twice);
    if (twice) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

const char *iw_response_header(const iw_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

/* The longest wait a Retry-After gives (a year); a longer one is read as this. */
#define RETRY_AFTER_MAX_MS (86400000LL * 365)

int64_t iw_retry_after_ms(const char *value, int64_t now_ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        const char *end = value;
        int64_t s = 0;
        for (; isdigit((unsigned char)*end); end++) /* saturates: any number of digits */
            s = s > RETRY_AFTER_MAX_MS / 1000 ? s : s * 10 + (*end - '0');
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end)
            return -1;
        return s * 1000 > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : s * 1000;
    }
    /* An HTTP-date in any of the three forms a recipient must read (RFC 9110 section 5.6.7):
     * IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete RFC 850 form "Sunday,
     * 06-Nov-94 08:49:37 GMT" and asctime's "Sun Nov  6 08:49:37 1994". */
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(value, forms[f], &tm);
        if (!end)
            continue;
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || tm.tm_year < 70) /* "94" read by %Y is the year 94, not a date to wait for */
            continue;
        time_t at = timegm(&tm);
        if (at == (time_t)-1)
            return -1;
        int64_t d = (int64_t)at * 1000 - now_ms;
        return d < 0 ? 0 : d > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : d;
    }
    return -1;
}

void iw_outcome_too_large(iw_outcome *out, int64_t max)
{
    iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "transport",
                   "reply larger than %lld bytes", (long long)max);
}

void iw_outcome_set(iw_outcome *out, iw_outcome_kind kind, iw_error_kind ek, const char *code,
                    const char *fmt, ...)
{
    out->kind = kind;
    out->error_kind = kind == IW_OUTCOME_OK ? IW_ERR_NONE : ek;
    if (iw_text_copy(out->code, sizeof(out->code), code) < (code ? strlen(code) : 0))
        iw_text_trim_cut_utf8(out->code);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(out->message))
        iw_text_trim_cut_utf8(out->message);
}

void iw_outcome_from_status(const iw_response *resp, iw_outcome *out)
{
    char code[IW_TEXT_I64_LEN];
    long st = resp->status;
    iw_text_i64(code, st);
    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    if (st >= 200 && st < 300) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, code, "HTTP %ld", st);
    } else if (st == 401 || st == 403) {
        iw_outcome_set(out, IW_OUTCOME_AUTH, IW_ERR_AUTH, code, "HTTP %ld: credentials refused",
                       st);
    } else if (st == 429) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_RATE_LIMITED, code, "HTTP 429: rate limited");
    } else if (st == 408 || st >= 500) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_REMOTE, code, "HTTP %ld", st);
    } else {
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, code, "HTTP %ld", st);
    }
    if (out->kind == IW_OUTCOME_RETRY)
        out->retry_after_ms =
            iw_retry_after_ms(iw_response_header(resp, "Retry-After"), resp->now_ms);
}
