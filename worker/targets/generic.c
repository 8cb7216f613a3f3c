/* generic.c: the `generic` adapter. A mapping file says everything about the target: method,
 * URL template, headers (${ENV} secrets allowed), the body as an XML or JSON template run by
 * the mapping engine, and how to read the reply (success statuses and shape, where the
 * business error code and message are, which codes are retried). */
#include "generic.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <libxml/xpath.h>

#include "soap.h"
#include "status.h"
#include "target.h"
#include "text.h"

#define MAX_MAPPING_BYTES (1u << 20)
#define MAX_MAPPING_KEYS 4096 /* members of one object, at most */

typedef enum reply_format { REPLY_NONE = 0, REPLY_SOAP, REPLY_XML, REPLY_JSON } reply_format;

typedef struct url_part {
    char *text;                /* literal text, or NULL */
    const iw_map_field *field; /* an event field, URL-escaped; NULL with text NULL: the url */
} url_part;

struct iw_generic {
    char method[8];
    url_part *url;
    size_t n_url;
    iw_header *headers;
    size_t n_headers;
    char **secrets; /* header values that came from ${ENV} */
    size_t n_secrets;
    iw_map body;
    const iw_map_field *required[16];
    size_t n_required;
    /* reply */
    reply_format reply;
    long success_status[16];
    size_t n_success_status;
    long retry_status[16];
    size_t n_retry_status;
    char *success_path;
    char **success_equals;
    size_t n_success_equals;
    bool ignore_case;
    char *ref_path, *code_path, *message_path, *default_code, *message_prefix;
    char **retry_codes;
    size_t n_retry_codes;
};

/* ------------------------------------------------------------------ reading the file */

typedef struct fparser {
    iw_map_errors *errs;
    iw_generic *g;
} fparser;

static void check_keys(fparser *p, const cJSON *obj, const char *path, const char *const *keys)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = false;
        for (size_t i = 0; keys[i] && !ok; i++)
            ok = strcmp(c->string, keys[i]) == 0;
        if (!ok) {
            char sub[224];
            snprintf(sub, sizeof(sub), "%s.%s", path, c->string);
            iw_map_error(p->errs, sub, "unknown key");
        }
    }
}

/* A string member, copied; NULL when absent (an error when not a string). */
static char *get_str(fparser *p, const cJSON *obj, const char *path, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return NULL;
    if (!cJSON_IsString(v)) {
        char sub[224];
        snprintf(sub, sizeof(sub), "%s.%s", path, key);
        iw_map_error(p->errs, sub, "expected a text");
        return NULL;
    }
    return strdup(v->valuestring);
}

static bool in_statuses(const long *list, size_t n, long st)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == st)
            return true;
    return false;
}

static size_t get_statuses(fparser *p, const cJSON *obj, const char *path, const char *key,
                           long *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    char sub[224];
    snprintf(sub, sizeof(sub), "%s.%s", path, key);
    if (!cJSON_IsArray(v) || (size_t)cJSON_GetArraySize(v) > cap) {
        iw_map_error(p->errs, sub, "expected an array of at most %zu HTTP statuses", cap);
        return 0;
    }
    size_t n = 0, i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsNumber(c) || c->valuedouble < 100 || c->valuedouble > 599 ||
            c->valuedouble != (long)c->valuedouble) {
            char ipath[240];
            snprintf(ipath, sizeof(ipath), "%s[%zu]", sub, i);
            iw_map_error(p->errs, ipath, "expected an HTTP status, 100 to 599");
            continue;
        }
        dst[n++] = (long)c->valuedouble;
    }
    return n;
}

static char **get_strings(fparser *p, const cJSON *obj, const char *path, const char *key,
                          size_t *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *n = 0;
    if (!v)
        return NULL;
    char sub[224];
    snprintf(sub, sizeof(sub), "%s.%s", path, key);
    if (!cJSON_IsArray(v)) {
        iw_map_error(p->errs, sub, "expected an array of texts");
        return NULL;
    }
    char **list = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*list));
    size_t i = 0;
    for (const cJSON *c = v->child; c && list; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            char ipath[240];
            snprintf(ipath, sizeof(ipath), "%s[%zu]", sub, i);
            iw_map_error(p->errs, ipath, "expected a text");
            continue;
        }
        list[(*n)++] = strdup(c->valuestring);
    }
    return list;
}

/* "{url}" is the instance's url; "{path}" an event field, URL-escaped; the rest literal. */
static void parse_url(fparser *p, const char *tmpl, const char *path)
{
    iw_generic *g = p->g;
    size_t cap = 2 * strlen(tmpl) + 2;
    g->url = calloc(cap, sizeof(*g->url));
    if (!g->url)
        return;
    for (const char *s = tmpl; *s;) {
        const char *open = strchr(s, '{');
        if (open != s) {
            size_t n = open ? (size_t)(open - s) : strlen(s);
            g->url[g->n_url++].text = strndup(s, n);
            s += n;
            continue;
        }
        const char *close = strchr(open, '}');
        if (!close) {
            iw_map_error(p->errs, path, "a { without its }");
            return;
        }
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(close - open - 1), open + 1);
        if (strcmp(name, "url") != 0) {
            const iw_map_field *f = iw_map_field_find(name);
            if (!f || strstr(name, "[]") || strcmp(name, "invoice.lines") == 0 ||
                strcmp(name, "invoice.extra_charges") == 0 ||
                strcmp(name, "invoice.custom_fields") == 0) {
                iw_map_error(p->errs, path, "{%.80s}: not a field of the event or the invoice",
                             name);
                return;
            }
            g->url[g->n_url].field = f;
        }
        g->n_url++;
        s = close + 1;
    }
}

/* An HTTP header name: 1 to 64 token characters (RFC 9110 section 5.6.2). */
static bool header_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* Registers the value of every ${ENV} reference in raw as a secret to mask (the literal text
 * around it, such as "Bearer ", is not secret). A ${VAR:-default}'s default, written in the
 * file, is one only with defaults: a header's may be a credential; a body value's default is a
 * constant ("EUR" masked out of every message and reference otherwise). raw expanded already,
 * so each one expands. */
static void add_env_secrets(iw_generic *g, const char *raw, bool defaults)
{
    for (const char *p = strstr(raw, "${"); p; p = strstr(p + 2, "${")) {
        const char *end = strchr(p, '}');
        if (!end)
            return;
        char name[128];
        size_t nl = strcspn(p + 2, ":}");
        snprintf(name, sizeof(name), "%.*s", (int)(nl < sizeof(name) ? nl : sizeof(name) - 1),
                 p + 2);
        const char *env = getenv(name);
        if (!defaults && (!env || !*env))
            continue; /* the default is what went in */
        char *ref = strndup(p, (size_t)(end - p) + 1), why[192];
        char *val = ref ? iw_config_expand_env(ref, why, sizeof(why)) : NULL;
        char **more = realloc(g->secrets, (g->n_secrets + 1) * sizeof(*g->secrets));
        if (more)
            g->secrets = more;
        if (val && *val && more)
            g->secrets[g->n_secrets++] = val;
        else
            free(val);
        free(ref);
    }
}

/* Why a mapping may not set header `name` itself, or NULL: the headers that frame the message
 * are libcurl's to write from the request it sends (a Content-Length of the mapping's would
 * disagree with the body and desynchronise a kept-alive connection), and the worker's own call
 * headers would go out twice. */
static const char *header_not_settable(const char *name)
{
    static const char *const FRAMING[] = {"Content-Length",
                                          "Transfer-Encoding",
                                          "Host",
                                          "Connection",
                                          "Keep-Alive",
                                          "Expect",
                                          "TE",
                                          "Trailer",
                                          "Upgrade",
                                          "Proxy-Connection"};
    static const char *const OWN[] = {"Idempotency-Key", "X-Request-ID", "traceparent",
                                      "X-Invoice-Version"};
    for (size_t i = 0; i < sizeof(FRAMING) / sizeof(FRAMING[0]); i++)
        if (strcasecmp(name, FRAMING[i]) == 0)
            return "frames the message: libcurl writes it from the request it sends";
    for (size_t i = 0; i < sizeof(OWN) / sizeof(OWN[0]); i++)
        if (strcasecmp(name, OWN[i]) == 0)
            return "the worker sets it on every call (README, Events and results)";
    /* review 96: the worker neither compresses a body nor decodes a reply */
    if (strcasecmp(name, "Accept-Encoding") == 0)
        return "replies are read as they come: a compressed one could not be read";
    if (strcasecmp(name, "Content-Encoding") == 0)
        return "the body goes out as written, never compressed";
    return NULL;
}

static void parse_headers(fparser *p, const cJSON *v, const char *path)
{
    iw_generic *g = p->g;
    if (!v)
        return;
    if (!cJSON_IsObject(v)) {
        iw_map_error(p->errs, path, "expected an object of header names and values");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v) + 2; /* and a Content-Type the body may need */
    g->headers = calloc(n, sizeof(*g->headers));
    for (const cJSON *c = v->child; c && g->headers; c = c->next) {
        char sub[224];
        snprintf(sub, sizeof(sub), "%s.%s", path, c->string);
        if (!header_name_ok(c->string)) {
            iw_map_error(p->errs, sub, "not a valid header name");
            continue;
        }
        const char *why_not = header_not_settable(c->string);
        if (why_not) {
            iw_map_error(p->errs, sub, "%s", why_not);
            continue;
        }
        bool twice = false;
        for (size_t k = 0; k < g->n_headers; k++)
            twice = twice || strcasecmp(g->headers[k].name, c->string) == 0;
        if (twice) {
            iw_map_error(p->errs, sub, "given twice (header names are read without case)");
            continue;
        }
        if (!cJSON_IsString(c)) {
            iw_map_error(p->errs, sub, "expected a text");
            continue;
        }
        char why[192];
        char *val = iw_config_expand_env(c->valuestring, why, sizeof(why));
        if (!val) {
            iw_map_error(p->errs, sub, "%s", *why ? why : "out of memory");
            continue;
        }
        const char *bad = iw_text_header_problem(val);
        if (bad) {
            iw_map_error(p->errs, sub, "%s", bad);
            free(val);
            continue;
        }
        add_env_secrets(g, c->valuestring, true);
        g->headers[g->n_headers].name = strdup(c->string);
        g->headers[g->n_headers++].value = val;
    }
}

/* A row's constant `value` may be ${ENV} (a SOAP login carried in the body, as Centra's and
 * EBizCharge's are): expanded at load, and what came from the environment is a secret of the
 * instance, masked wherever a header's is. Before, the reference went out as its own text. */
static void expand_body_values(fparser *p, iw_map_node *n, const char *path)
{
    if (n->value && strstr(n->value, "${")) {
        char why[192], sub[240];
        snprintf(sub, sizeof(sub), "%s.value", path);
        char *val = iw_config_expand_env(n->value, why, sizeof(why));
        if (!val) {
            iw_map_error(p->errs, sub, "%s", *why ? why : "out of memory");
        } else {
            add_env_secrets(p->g, n->value, false);
            free(n->value);
            n->value = val;
        }
    }
    for (size_t i = 0; i < n->n_children; i++) {
        char sub[240];
        snprintf(sub, sizeof(sub), "%s.children[%zu]", path, i);
        expand_body_values(p, &n->children[i], sub);
    }
}

/* A body goes with the Content-Type of its dialect unless the mapping names one: libcurl would
 * otherwise send application/x-www-form-urlencoded, which is not what render shows. */
static void default_content_type(fparser *p)
{
    iw_generic *g = p->g;
    if (!g->body.dialect)
        return;
    for (size_t k = 0; k < g->n_headers; k++)
        if (strcasecmp(g->headers[k].name, "Content-Type") == 0)
            return;
    if (!g->headers)
        g->headers = calloc(1, sizeof(*g->headers));
    char *name = strdup("Content-Type");
    char *value = strdup(g->body.dialect == IW_MAP_JSON ? "application/json"
                                                        : "application/xml; charset=utf-8");
    if (!g->headers || !name || !value) {
        free(name);
        free(value);
        iw_map_error(p->errs, "mapping.headers", "out of memory");
        return;
    }
    g->headers[g->n_headers].name = name;
    g->headers[g->n_headers++].value = value;
}

static void parse_reply(fparser *p, const cJSON *r, const char *path)
{
    iw_generic *g = p->g;
    if (!cJSON_IsObject(r)) {
        iw_map_error(p->errs, path, "expected an object");
        return;
    }
    static const char *const KEYS[] = {"format",     "success_status", "retry_status", "success",
                                       "target_ref", "error",          "retry_codes",  NULL};
    check_keys(p, r, path, KEYS);
    char sub[224];
    char *fmt = get_str(p, r, path, "format");
    static const char *const FORMATS[] = {"none", "soap", "xml", "json"};
    g->reply = REPLY_NONE;
    bool known = !fmt;
    for (size_t i = 0; fmt && i < 4; i++)
        if (strcmp(fmt, FORMATS[i]) == 0) {
            g->reply = (reply_format)i;
            known = true;
        }
    if (!known) {
        snprintf(sub, sizeof(sub), "%s.format", path);
        iw_map_error(p->errs, sub, "expected \"soap\", \"xml\", \"json\" or \"none\"");
    }
    free(fmt);
    g->n_success_status = get_statuses(p, r, path, "success_status", g->success_status, 16);
    g->n_retry_status = get_statuses(p, r, path, "retry_status", g->retry_status, 16);
    for (size_t i = 0; i < g->n_success_status; i++) { /* review 96: [500] was taken */
        long st = g->success_status[i];
        const char *why = st < 200    ? "a 1xx is no final reply"
                          : st >= 500 ? "a 5xx is the server failing"
                          : st == 408 || st == 429
                              ? "the request was not taken (408 and 429 are retried)" /* 104 */
                          : in_statuses(g->retry_status, g->n_retry_status, st)
                              ? "it is a retry_status too"
                              : NULL;
        if (why) {
            snprintf(sub, sizeof(sub), "%s.success_status", path);
            iw_map_error(p->errs, sub, "%ld cannot mean success: %s", st, why);
        }
    }
    g->retry_codes = get_strings(p, r, path, "retry_codes", &g->n_retry_codes);
    g->ref_path = get_str(p, r, path, "target_ref");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "success");
    snprintf(sub, sizeof(sub), "%s.success", path);
    if (s && !cJSON_IsObject(s)) {
        iw_map_error(p->errs, sub, "expected {\"path\", \"equals\", \"ignore_case\"}");
    } else if (s) {
        static const char *const SK[] = {"path", "equals", "ignore_case", NULL};
        check_keys(p, s, sub, SK);
        g->success_path = get_str(p, s, sub, "path");
        if (!g->success_path) {
            char sub2[240];
            snprintf(sub2, sizeof(sub2), "%s.path", sub);
            iw_map_error(p->errs, sub2, "required: where the success shape is read");
        }
        g->success_equals = get_strings(p, s, sub, "equals", &g->n_success_equals);
        g->ignore_case = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "ignore_case"));
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
    snprintf(sub, sizeof(sub), "%s.error", path);
    if (e && !cJSON_IsObject(e)) {
        iw_map_error(p->errs, sub, "expected {\"code\", \"message\", \"default_code\", ...}");
    } else if (e) {
        static const char *const EK[] = {"code", "message", "default_code", "message_prefix", NULL};
        check_keys(p, e, sub, EK);
        g->code_path = get_str(p, e, sub, "code");
        g->message_path = get_str(p, e, sub, "message");
        g->default_code = get_str(p, e, sub, "default_code");
        g->message_prefix = get_str(p, e, sub, "message_prefix");
    }
    if ((g->success_path || g->ref_path || g->code_path || g->message_path) &&
        g->reply == REPLY_NONE) {
        snprintf(sub, sizeof(sub), "%s.format", path);
        iw_map_error(p->errs, sub, "paths need a reply format: \"soap\", \"xml\" or \"json\"");
    }
    const char *paths[] = {g->success_path, g->ref_path, g->code_path, g->message_path};
    for (size_t i = 0; i < 4; i++) {
        if (!paths[i])
            continue;
        bool pointer = paths[i][0] == '/' && g->reply == REPLY_JSON;
        xmlXPathCompExprPtr x = g->reply == REPLY_JSON ? NULL : xmlXPathCompile(BAD_CAST paths[i]);
        if ((g->reply == REPLY_JSON && !pointer && paths[i][0]) ||
            (g->reply != REPLY_JSON && g->reply != REPLY_NONE && !x))
            iw_map_error(p->errs, path, "\"%.80s\" is not %s", paths[i],
                         g->reply == REPLY_JSON ? "a JSON pointer (RFC 6901)" : "an XPath");
        xmlXPathFreeCompExpr(x);
    }
}

static void no_xml_errors(void *ctx, const char *msg, ...)
{
}

static void duplicate_found(void *arg, const char *path, const char *why)
{
    iw_map_error(arg, path, "%s", why);
}

int iw_generic_parse(const char *json, size_t len, iw_generic **out, iw_map_errors *errs)
{
    *out = NULL;
    size_t before = errs->count;
    char why[192];
    if (iw_json_prescan(json, len, MAX_MAPPING_BYTES, 64, "mapping", why, sizeof(why))) {
        iw_map_error(errs, "mapping", "%s", why);
        return IW_EINVAL;
    }
    size_t tail = 0;
    cJSON *root = iw_json_parse_one(json, len, &tail);
    if (!root && tail) {
        iw_map_error(errs, "mapping", "invalid JSON at byte %zu: text after the object", tail);
        return IW_EINVAL;
    }
    if (!cJSON_IsObject(root)) {
        iw_map_error(errs, "mapping", "not a JSON object");
        cJSON_Delete(root);
        return IW_EINVAL;
    }
    /* as strict as the config: a key given twice would have its second value ignored */
    iw_json_duplicate_keys(root, "mapping", MAX_MAPPING_KEYS, 100000, duplicate_found, errs);
    if (errs->count > before) {
        cJSON_Delete(root);
        return IW_EINVAL;
    }
    iw_generic *g = calloc(1, sizeof(*g));
    if (!g) {
        cJSON_Delete(root);
        iw_map_error(errs, "mapping", "out of memory");
        return IW_ENOMEM;
    }
    xmlSetGenericErrorFunc(NULL, no_xml_errors); /* XPath compile errors are reported below */
    fparser p = {.errs = errs, .g = g};
    static const char *const KEYS[] = {"method", "url",      "headers", "body",
                                       "reply",  "required", NULL};
    check_keys(&p, root, "mapping", KEYS);
    char *method = get_str(&p, root, "mapping", "method");
    /* the invoice goes in the body: a GET sends none (libcurl drops it), so its 200 would be
     * taken for an update the target never saw */
    static const char *const METHODS[] = {"POST", "PUT", "PATCH", "DELETE"};
    bool ok = false;
    for (size_t i = 0; method && i < sizeof(METHODS) / sizeof(METHODS[0]); i++)
        ok = ok || strcmp(method, METHODS[i]) == 0;
    if (!ok)
        iw_map_error(errs, "mapping.method",
                     "expected POST, PUT, PATCH or DELETE (the invoice goes in the body, which a "
                     "GET does not send)");
    else
        snprintf(g->method, sizeof(g->method), "%s", method);
    free(method);
    char *url = get_str(&p, root, "mapping", "url");
    /* the template's own text is checked as a config url is: a control character would break
     * the request line at every event, and a fragment is never sent (every invoice would go to
     * the same URL); what the fields put in is escaped when it is rendered */
    const char *bad = NULL;
    for (const unsigned char *c = (const unsigned char *)url; url && *c && !bad; c++)
        if (*c < 0x20 || *c == 0x7f)
            bad = "a control character (CR, LF, ...)";
        else if (*c == '#')
            bad = "a #fragment, which is never sent";
        else if (*c == ' ')
            bad = "a space";
    if (bad)
        iw_map_error(errs, "mapping.url", "holds %s", bad);
    else
        parse_url(&p, url ? url : "{url}", "mapping.url");
    free(url);
    parse_headers(&p, cJSON_GetObjectItemCaseSensitive(root, "headers"), "mapping.headers");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(root, "body");
    if (!body)
        iw_map_error(errs, "mapping.body", "required");
    else if (iw_map_parse(body, "mapping.body", &g->body, errs) == 0)
        expand_body_values(&p, &g->body.root, "mapping.body.root");
    default_content_type(&p);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "required");
    if (req && (!cJSON_IsArray(req) || cJSON_GetArraySize(req) > 16)) {
        iw_map_error(errs, "mapping.required", "expected an array of at most 16 field paths");
    } else if (req) {
        size_t i = 0;
        for (const cJSON *c = req->child; c; c = c->next, i++) {
            char ipath[64];
            snprintf(ipath, sizeof(ipath), "mapping.required[%zu]", i);
            const iw_map_field *f = cJSON_IsString(c) ? iw_map_field_find(c->valuestring) : NULL;
            if (!f || strstr(c->valuestring, "[]"))
                iw_map_error(errs, ipath, "expected a field of the event or the invoice");
            else
                g->required[g->n_required++] = f;
        }
    }
    const cJSON *reply = cJSON_GetObjectItemCaseSensitive(root, "reply");
    if (!reply)
        iw_map_error(errs, "mapping.reply", "required: how a reply is read");
    else
        parse_reply(&p, reply, "mapping.reply");
    cJSON_Delete(root);
    if (errs->count != before) {
        iw_generic_free(g);
        return IW_EINVAL;
    }
    *out = g;
    return 0;
}

int iw_generic_load(const char *file, iw_generic **out, iw_map_errors *errs)
{
    *out = NULL;
    struct stat st;
    if (stat(file, &st) == 0 && !S_ISREG(st.st_mode)) { /* never block on a FIFO or a device */
        iw_map_error(errs, "mapping", "%s is not a regular file", file);
        return IW_EINVAL;
    }
    FILE *f = fopen(file, "rb");
    char *buf = f ? malloc(MAX_MAPPING_BYTES + 1) : NULL;
    size_t n = buf ? fread(buf, 1, MAX_MAPPING_BYTES + 1, f) : 0;
    if (f)
        fclose(f);
    if (!buf || n > MAX_MAPPING_BYTES) {
        iw_map_error(errs, "mapping", "cannot read %s%s", file,
                     !f                      ? ""
                     : n > MAX_MAPPING_BYTES ? ": larger than 1 MiB"
                                             : ": out of memory");
        free(buf);
        return IW_EINVAL;
    }
    int rc = iw_generic_parse(buf, n, out, errs);
    free(buf);
    return rc;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void iw_generic_free(iw_generic *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_url; i++)
        free(g->url[i].text);
    free(g->url);
    for (size_t i = 0; i < g->n_headers; i++) {
        free(g->headers[i].name);
        free(g->headers[i].value);
    }
    free(g->headers);
    free_list(g->secrets, g->n_secrets);
    iw_map_free(&g->body);
    free(g->success_path);
    free_list(g->success_equals, g->n_success_equals);
    free(g->ref_path);
    free(g->code_path);
    free(g->message_path);
    free(g->default_code);
    free(g->message_prefix);
    free_list(g->retry_codes, g->n_retry_codes);
    free(g);
}

/* ------------------------------------------------------------------ the instance's settings */

/* Reports every problem of a mapping file under the config path of its key
 * ("targets.<name>.mapping": "FILE: mapping.<path>: message"). */
static void report(iw_conf_reader *rd, const char *path, const char *file, const iw_map_errors *me)
{
    size_t shown = sizeof(me->items) / sizeof(me->items[0]);
    for (size_t k = 0; k < me->count && k < shown; k++)
        iw_conf_error(rd, path, "%s: %s: %s", file, me->items[k].path, me->items[k].message);
    if (me->count > shown)
        iw_conf_error(rd, path, "%s: ... and %zu more", file, me->count - shown);
}

/* The "mapping" key: the file's path (${ENV} expanded, relative to the config file's folder),
 * read and checked as the config is loaded, so check-config names a mapping file's errors and
 * every call of the instance uses the one mapping its settings hold. */
static void parse_mapping(iw_conf_reader *rd, const cJSON *value, const char *path, void *conf)
{
    iw_generic_conf *gc = conf;
    char *text = iw_conf_text(rd, value, path);
    if (!text)
        return;
    char *file = *text ? iw_conf_file(rd, text) : NULL;
    free(text);
    if (!file) {
        iw_conf_error(rd, path, "expected the path of a mapping file");
        return;
    }
    iw_map_errors me = {.count = 0};
    iw_generic *g = NULL;
    if (iw_generic_load(file, &g, &me) != 0) {
        report(rd, path, file, &me);
        free(file);
        return;
    }
    iw_generic_free(gc->loaded);
    free(gc->mapping);
    gc->mapping = file;
    gc->loaded = g;
}

static void free_mapping(void *conf)
{
    iw_generic_conf *gc = conf;
    iw_generic_free(gc->loaded);
    free(gc->mapping);
    gc->loaded = NULL;
    gc->mapping = NULL;
}

int iw_generic_use(iw_target_conf *tc, const char *file, iw_map_errors *errs)
{
    iw_generic_conf *gc = tc->adapter == iw_target_generic.conf ? tc->adapter_conf : NULL;
    iw_generic *g = NULL;
    if (!gc) {
        iw_map_error(errs, "mapping", "not a generic target");
        return IW_EINVAL;
    }
    int rc = iw_generic_load(file, &g, errs);
    char *copy = rc ? NULL : strdup(file);
    if (!rc && !copy) {
        iw_generic_free(g);
        return IW_ENOMEM;
    }
    if (!rc) {
        free_mapping(gc);
        gc->mapping = copy;
        gc->loaded = g;
    }
    return rc;
}

/* The loaded mapping of a target, with errbuf saying why when there is none. */
static const iw_generic *target_mapping(const iw_target_conf *tc, char *errbuf, size_t errlen)
{
    const iw_generic_conf *gc =
        tc->adapter == iw_target_generic.conf ? iw_generic_conf_of(tc) : NULL;
    if (!gc || !gc->loaded) {
        snprintf(errbuf, errlen, "mapping: not configured");
        return NULL;
    }
    return gc->loaded;
}

/* The header values of the mapping that came from ${ENV}, as secrets of the instance. */
static int generic_secret_forms(const iw_target_conf *tc, iw_secrets *s)
{
    char err[8];
    const iw_generic *g = target_mapping(tc, err, sizeof(err));
    int rc = 0;
    for (size_t i = 0; g && !rc && i < g->n_secrets; i++)
        rc = iw_secrets_add(s, g->secrets[i]);
    return rc;
}

/* ------------------------------------------------------------------ render */

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static void add_escaped(iw_wbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            iw_wbuf_add(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            iw_wbuf_add(b, e, 3);
        }
    }
}

/* True when the path of url (after the authority, before '?' or '#') has a segment that is "."
 * or "..": unreserved characters, so escaping leaves them, but curl (and the server) resolve
 * such a segment away, to the folder itself or the one above. */
static bool has_dot_segment(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 + strcspn(p + 3, "/?#") : url; /* the path starts after the authority */
    while (*p == '/') {
        const char *seg = p + 1;
        size_t n = strcspn(seg, "/?#");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return true;
        p = seg + n;
    }
    return false;
}

/* True when the URL text so far, url[0..len), has a scheme and ends its authority (a '/', '?'
 * or '#' after "scheme://host"): an event field written after it stays in the path, query or
 * fragment and cannot choose the host ("{url}{invoice.id}" with an instance url of
 * https://api.example and an id ".evil.example" would). */
static bool authority_closed(const char *url, size_t len)
{
    const char *sep = memmem(url, len, "://", 3);
    if (!sep)
        return false;
    size_t from = (size_t)(sep - url) + 3;
    for (size_t i = from; i < len; i++)
        if (url[i] == '/' || url[i] == '?' || url[i] == '#')
            return true;
    return false;
}

/* What is wrong with the instance's url under the mapping's URL template, or NULL: after a url
 * with a ?query, a path the template writes would land in the query (review 96: every invoice
 * went to one path), and a second '?' would start no query. */
static const char *url_conflict(const iw_generic *g, const char *url)
{
    if (!url || !strchr(url, '?'))
        return NULL;
    bool after = false; /* past {url}: any text from here on is in its query (review 98: a
                         * field between, "{url}{invoice.number}/inv/", hid the path) */
    for (size_t i = 0; i < g->n_url; i++) {
        const url_part *u = &g->url[i];
        if (!u->text && !u->field)
            after = true;
        else if (after && u->text && strchr(u->text, '/'))
            return "the instance's url holds a ?query and the URL template writes a path after "
                   "it: the path would land in the query (put the query in the template, after "
                   "the path)";
        else if (after && u->text && strchr(u->text, '?'))
            return "the instance's url holds a ?query and the URL template starts another with "
                   "'?' after it: add to the query with '&'";
    }
    return NULL;
}

static const char *generic_check_url_with(const char *url, const void *conf)
{
    const iw_generic_conf *gc = conf;
    return gc->loaded ? url_conflict(gc->loaded, url) : NULL;
}

static int build_url(const iw_generic *g, const iw_event *ev, const iw_target_conf *tc,
                     iw_request *out, char *errbuf, size_t errlen)
{
    iw_wbuf b = IW_WBUF_INIT;
    char buf[IW_DECIMAL_BUFLEN];
    for (size_t i = 0; i < g->n_url; i++) {
        const url_part *u = &g->url[i];
        const char *conflict = i == 0 ? url_conflict(g, tc->url) : NULL;
        if (conflict) {
            iw_wbuf_free(&b);
            snprintf(errbuf, errlen, "url: %s", conflict);
            return IW_EINVAL;
        }
        if (u->text) {
            iw_wbuf_adds(&b, u->text);
        } else if (!u->field) {
            iw_wbuf_adds(&b, tc->url ? tc->url : "");
        } else {
            if (!authority_closed(b.data ? b.data : "", b.len)) {
                iw_wbuf_free(&b);
                snprintf(errbuf, errlen,
                         "url: {%s} would be written into the scheme or host; the URL template "
                         "must reach the path (a '/' after the host) before an event field",
                         iw_map_field_path(u->field));
                return IW_EINVAL;
            }
            const char *t = iw_map_field_text(u->field, ev, buf, sizeof(buf));
            if (!t || !*t) {
                iw_wbuf_free(&b);
                snprintf(errbuf, errlen, "url: a field of the URL template is absent or empty");
                return IW_EINVAL;
            }
            add_escaped(&b, t);
        }
    }
    size_t len;
    int rc = iw_wbuf_copy(&b, &out->url, &len);
    iw_wbuf_free(&b);
    if (rc)
        snprintf(errbuf, errlen, "out of memory");
    else if (has_dot_segment(out->url)) {
        snprintf(errbuf, errlen,
                 "url: the path would hold a \".\" or \"..\" segment, which moves the request "
                 "to another path (a field of the URL template is or ends in dots)");
        rc = IW_EINVAL;
    }
    return rc;
}

static int generic_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                          iw_request *out, char *errbuf, size_t errlen)
{
    const iw_generic *g = target_mapping(tc, errbuf, errlen);
    if (!g)
        return IW_EINVAL;
    snprintf(out->method, sizeof(out->method), "%s", g->method);
    int rc = build_url(g, ev, tc, out, errbuf, errlen);
    for (size_t i = 0; !rc && i < g->n_headers; i++)
        rc = iw_request_add_header(out, g->headers[i].name, g->headers[i].value);
    for (size_t i = 0; !rc && i < g->n_secrets; i++)
        rc = iw_request_add_secret(out, g->secrets[i]);
    if (rc == IW_ENOMEM)
        snprintf(errbuf, errlen, "out of memory");
    if (!rc) {
        iw_wbuf *b = iw_wbuf_scratch();
        rc = iw_map_write(&g->body, ev, b, errbuf, errlen);
        rc = rc ? rc : iw_request_set_body_from(out, b, errbuf, errlen);
    }
    if (rc)
        iw_request_clear(out);
    return rc;
}

static int generic_validate(const iw_event *ev, const iw_target_conf *tc, char *errbuf,
                            size_t errlen)
{
    const iw_generic *g = target_mapping(tc, errbuf, errlen);
    if (!g)
        return IW_EINVAL;
    for (size_t i = 0; i < g->n_required; i++) {
        if (!iw_map_field_given(g->required[i], ev)) { /* a list: one element at least (review
                                                        * 96: every event was refused) */
            snprintf(errbuf, errlen, "%s: required by %s", iw_map_field_path(g->required[i]),
                     tc->name ? tc->name : "generic");
            return IW_EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ classify */

/* How an XPath matched: the text of its one match, or why there is none to read. */
typedef enum xmatch { XM_NONE = 0, XM_ONE, XM_MANY, XM_NOT_TEXT } xmatch;

/* The text at an XPath in doc into buf. A node-set must hold one node whose content is text
 * (an element holding elements, <r>O<b/>K</r>, reads "OK" as libxml2 joins it): two matches, or
 * one with elements inside, say two things at once and are not read. */
static xmatch xpath_text(xmlDocPtr doc, const char *expr, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!doc || !expr)
        return XM_NONE;
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr r = ctx ? xmlXPathEvalExpression(BAD_CAST expr, ctx) : NULL;
    xmatch m = XM_NONE;
    if (r && r->type == XPATH_NODESET) {
        int n = r->nodesetval ? r->nodesetval->nodeNr : 0;
        m = n == 0 ? XM_NONE : n > 1 ? XM_MANY : XM_ONE;
        xmlNodePtr node = m == XM_ONE ? r->nodesetval->nodeTab[0] : NULL;
        if (node && node->type == XML_ELEMENT_NODE && xmlFirstElementChild(node))
            m = XM_NOT_TEXT;
        if (m == XM_ONE)
            iw_xml_text(node, buf, len);
    } else if (r) {
        xmlChar *s = xmlXPathCastToString(r);
        m = s && *s ? XM_ONE : XM_NONE;
        snprintf(buf, len, "%s", s ? (const char *)s : "");
        xmlFree(s);
    }
    xmlXPathFreeObject(r);
    xmlXPathFreeContext(ctx);
    return m;
}

/* Whether the JSON number literal lit (n bytes) is a whole number, and how many significant
 * digits it has (from the first non-zero digit to the last). */
static void literal_shape(const char *lit, size_t n, bool *whole, int *sig)
{
    size_t i = lit[0] == '-' ? 1 : 0, point = n, e = n;
    for (size_t k = i; k < n; k++) {
        if (lit[k] == '.')
            point = k;
        else if (lit[k] == 'e' || lit[k] == 'E') {
            e = k;
            break;
        }
    }
    /* bounded far beyond any reply's length, so that the sums below cannot overflow, and
     * not at some exponent a long literal can outweigh (review 109: 12000...0e-417) */
    long exp10 = e < n ? strtol(lit + e + 1, NULL, 10) : 0;
    if (exp10 > (1L << 40) || exp10 < -(1L << 40))
        exp10 = exp10 > 0 ? 1L << 40 : -(1L << 40);
    /* digit k (0-based, over the digits alone) stands at 10^(intdigits - 1 - k + exp10) */
    long intdigits = (long)((point < e ? point : e) - i);
    long first = -1, last = -1, d = 0;
    for (size_t k = i; k < e; k++) {
        if (lit[k] == '.')
            continue;
        if (lit[k] != '0') {
            if (first < 0)
                first = d;
            last = d;
        }
        d++;
    }
    *sig = first < 0 ? 0 : (int)(last - first + 1);
    *whole = first < 0 || intdigits - 1 - last + exp10 >= 0;
}

/* How many significant digits the JSON number literal lit (n bytes) has: 0 for a zero. */
static int literal_digits(const char *lit, size_t n)
{
    bool whole;
    int sig;
    literal_shape(lit, n, &whole, &sig);
    return sig;
}

/* A JSON number of a reply as text: a whole number below 2^53 written out in full (an id as
 * sent, never 1e+15), a fraction in the shortest form that reads back as the same double (0.1,
 * not 0.10000000000000001). "" (and false) for a number the reader (a double) may not have
 * kept as written: a whole number from 2^53 on (9007199254740993 reads as ...992: an id of
 * another record) or a fraction of more than 15 significant digits. Such a value is there but
 * not read: a success path finds it, a target_ref is left out, an `equals` never matches it.
 * lit (n bytes), the number as the reply writes it, decides (review 108: 12.0000000000000001
 * reads as the double 12, and was published as the reference 12); without it, the double. */
static bool number_text(const char *lit, size_t n, double v, char *buf, size_t len)
{
    buf[0] = '\0';
    bool whole = v == floor(v);
    int sig = 0;
    if (lit && n)
        literal_shape(lit, n, &whole, &sig);
    /* the range first: converting a double outside int64_t (1e300, NaN) is undefined */
    if (whole) {
        if (!(v > -9007199254740992.0 && v < 9007199254740992.0) || v != (double)(int64_t)v)
            return false;
        snprintf(buf, len, "%lld", (long long)v);
        return true;
    }
    /* 1e-400 is no 0, and a subnormal double holds fewer than 15 digits (review 109: 1e-321
     * read as 9.98012604599318e-322) */
    if (!isfinite(v) || fabs(v) < DBL_MIN || (lit && n && sig > 15))
        return false;
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) == v)
        return true;
    buf[0] = '\0';
    return false;
}

/* Past white space at p (before e) as cJSON reads it: every byte from 0x01 to 0x20, not only
 * JSON's four (review 109: a \f between two members moved the walk onto another value). */
static const char *json_ws(const char *p, const char *e)
{
    while (p < e && (unsigned char)*p <= 0x20 && *p)
        p++;
    return p;
}

/* Past the JSON value at p (valid JSON: the reply was parsed), before e. */
static const char *json_skip(const char *p, const char *e)
{
    p = json_ws(p, e);
    if (p < e && *p == '"') {
        for (p++; p < e && *p != '"'; p++)
            p += *p == '\\';
        return p < e ? p + 1 : e;
    }
    if (p < e && (*p == '{' || *p == '[')) {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = json_skip(p, e);
                continue;
            }
            depth += *p == '{' || *p == '[';
            if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return e;
    }
    while (p < e && (unsigned char)*p > 0x20 && !strchr(",]}", *p))
        p++;
    return p;
}

/* The value at a JSON pointer (RFC 6901), NULL when there is none. With the reply's text (body,
 * len: what root was parsed from), *lit and *litlen get where the value is written in it. */
static const cJSON *pointer_value_at(const cJSON *root, const char *ptr, const char *body,
                                     size_t len, const char **lit, size_t *litlen)
{
    if (!root || !ptr)
        return NULL;
    const char *e = body ? body + len : NULL;
    const char *at = body && len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0 ? body + 3 : body;
    const cJSON *v = root;
    for (const char *p = ptr; v && *p == '/';) {
        p++;
        char tok[128];
        size_t n = 0;
        for (; *p && *p != '/' && n + 1 < sizeof(tok); p++) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1'))
                tok[n++] = *++p == '0' ? '~' : '/';
            else
                tok[n++] = *p;
        }
        tok[n] = '\0';
        const cJSON *parent = v;
        if (cJSON_IsArray(v)) {
            char *end;
            long k = strtol(tok, &end, 10);
            v = *tok && !*end && k >= 0 ? cJSON_GetArrayItem(v, (int)k) : NULL;
        } else {
            v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, tok) : NULL;
        }
        /* the child's place in its parent (keys are unique: a reply with a key twice is not
         * read), then as many members or elements skipped in the text */
        if (at && v) {
            at = json_ws(at, e) + 1; /* past { or [ */
            for (const cJSON *c = parent->child; c && c != v; c = c->next) {
                if (cJSON_IsObject(parent))
                    at = json_ws(json_skip(at, e), e) + 1; /* the key and its colon */
                at = json_ws(json_skip(at, e), e) + 1;     /* the value and its comma */
            }
            if (cJSON_IsObject(parent))
                at = json_ws(json_skip(at, e), e) + 1;
            if (at > e)
                at = NULL;
        }
    }
    if (at && v && lit) {
        at = json_ws(at, e);
        *lit = at;
        *litlen = (size_t)(json_skip(at, e) - at);
    }
    return v;
}

static const cJSON *pointer_value(const cJSON *root, const char *ptr)
{
    return pointer_value_at(root, ptr, NULL, 0, NULL, NULL);
}

/* The value at a JSON pointer as text into buf; false when there is none (or it is null). */
static bool pointer_text(const cJSON *root, const char *body, size_t blen, const char *ptr,
                         char *buf, size_t len)
{
    buf[0] = '\0';
    const char *lit = NULL;
    size_t litlen = 0;
    const cJSON *v = pointer_value_at(root, ptr, body, blen, &lit, &litlen);
    if (!v)
        return false;
    if (cJSON_IsString(v))
        snprintf(buf, len, "%s", v->valuestring);
    else if (cJSON_IsBool(v))
        snprintf(buf, len, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v)) /* "" when not held as written: present, unread */
        number_text(lit, litlen, v->valuedouble, buf, len);
    else if (!cJSON_IsNull(v))
        snprintf(buf, len, "%s", cJSON_IsObject(v) ? "(an object)" : "(an array)");
    return !cJSON_IsNull(v);
}

typedef struct reply_doc {
    xmlDocPtr xml;
    cJSON *json;
    const char *body; /* what json was parsed from */
    size_t len;
} reply_doc;

/* The text at path into buf, as the reply has it (cut to fit): the
 * outcome is decided on it, and what is published is masked afterwards
 * (iw_secrets_mask_outcome). */
static xmatch read_at(const iw_generic *g, const reply_doc *d, const char *path, char *buf,
                      size_t len)
{
    if (g->reply == REPLY_JSON)
        return pointer_text(d->json, d->body, d->len, path, buf, len) ? XM_ONE : XM_NONE;
    return xpath_text(d->xml, path, buf, len);
}

/* The target's reference at the mapping's target_ref: a text or a number, never an object's or
 * an array's placeholder (review 96: "(an object)" was published as the reference). */
static void read_ref(const iw_generic *g, const reply_doc *d, char *buf, size_t len)
{
    read_at(g, d, g->ref_path, buf, len);
    if (g->reply == REPLY_JSON) {
        const cJSON *v = pointer_value(d->json, g->ref_path);
        if (!cJSON_IsString(v) && !cJSON_IsNumber(v))
            buf[0] = '\0';
    }
}

/* True when the n bytes at v spell the number zero: a sign, zeros with or without a point
 * ("0", "0.", ".0", "00.000"), and an exponent ("0e0", "-0E+5"). */
static bool zero_spelling(const char *v, size_t n)
{
    size_t i = 0, zeros = 0;
    if (i < n && (v[i] == '+' || v[i] == '-'))
        i++;
    for (; i < n && v[i] == '0'; i++)
        zeros++;
    if (i < n && v[i] == '.')
        for (i++; i < n && v[i] == '0'; i++)
            zeros++;
    if (zeros && i < n && (v[i] == 'e' || v[i] == 'E')) {
        size_t d = ++i < n && (v[i] == '+' || v[i] == '-') ? ++i : i;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return zeros && i == n;
}

/* A value that says no (review 96: a `"success": false`, or an XPath count(...)=0 false,
 * passed; an XPath number() of nothing is NaN; then "", "  ", "0.0" and "-0"; review 104:
 * "+0", "0e0", ".0" and " false "): once the white space around it is set aside, nothing,
 * false or NaN in any case, or a zero in any spelling. */
static bool says_no(const char *v)
{
    static const char ws[] = " \t\r\n\f\v";
    v += strspn(v, ws);
    size_t n = strlen(v);
    while (n && strchr(ws, v[n - 1]))
        n--;
    return n == 0 || (n == 5 && strncasecmp(v, "false", 5) == 0) ||
           (n == 3 && strncasecmp(v, "nan", 3) == 0) || zero_spelling(v, n);
}

static bool success_value(const iw_generic *g, const char *v, bool unread_number)
{
    if (!g->n_success_equals) /* without a success path, the status has decided; a number a
                               * double cannot hold as written is there (review 54) */
        return !g->success_path || unread_number || !says_no(v);
    for (size_t i = 0; i < g->n_success_equals; i++)
        if (g->ignore_case ? strcasecmp(v, g->success_equals[i]) == 0
                           : strcmp(v, g->success_equals[i]) == 0)
            return true;
    return false;
}

/* A reply of a success status: the documented success shape, else the business error. */
/* The business error's code and message where the mapping says they are ("" when not). */
static void read_error(const iw_generic *g, const reply_doc *d, char *code, size_t clen, char *msg,
                       size_t mlen)
{
    if (g->code_path)
        read_at(g, d, g->code_path, code, clen);
    if (g->message_path)
        read_at(g, d, g->message_path, msg, mlen);
}

static void judge(const iw_generic *g, const iw_response *resp, const reply_doc *d, iw_outcome *out)
{
    char value[200] = "";
    xmatch m = g->success_path ? read_at(g, d, g->success_path, value, sizeof(value)) : XM_ONE;
    if (m != XM_ONE) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the reply holds %s %s; retrying, an unreadable reply is "
                       "never taken as success",
                       resp->status,
                       m == XM_MANY       ? "more than one"
                       : m == XM_NOT_TEXT ? "elements, not a text, in"
                                          : "no",
                       g->success_path);
        return;
    }
    /* a number there but not read: present, unless it is a zero as written (review 109:
     * 1e-400, a double's 0, is no zero) */
    const char *lit = NULL;
    size_t litlen = 0;
    const cJSON *sv =
        g->success_path && g->reply == REPLY_JSON
            ? pointer_value_at(d->json, g->success_path, d->body, d->len, &lit, &litlen)
            : NULL;
    bool unread_number = !*value && cJSON_IsNumber(sv) &&
                         (lit && litlen ? literal_digits(lit, litlen) > 0 : sv->valuedouble != 0);
    if (success_value(g, value, unread_number)) {
        iw_outcome_set(out, IW_OUTCOME_OK, IW_ERR_NONE, "200", "HTTP %ld%s%s", resp->status,
                       *value ? ", " : "", value);
        snprintf(out->code, sizeof(out->code), "%ld", resp->status);
        if (g->ref_path)
            read_ref(g, d, out->target_ref, sizeof(out->target_ref));
        return;
    }
    char code[64] = "", msg[200] = "";
    read_error(g, d, code, sizeof(code), msg, sizeof(msg));
    if (!*msg && g->success_path && !*value) /* a text "", or a number a double cannot hold */
        snprintf(msg, sizeof(msg), "no value at %s", g->success_path);
    else if (!*msg)
        snprintf(msg, sizeof(msg), "%s", *value ? value : "(empty response)");
    if (!*code)
        snprintf(code, sizeof(code), "%s", g->default_code ? g->default_code : "not-success");
    bool retry = false;
    for (size_t i = 0; i < g->n_retry_codes; i++)
        retry = retry || strcmp(code, g->retry_codes[i]) == 0;
    iw_outcome_set(out, retry ? IW_OUTCOME_RETRY : IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, code,
                   "%s%s", g->message_prefix ? g->message_prefix : "", msg);
}

/* A reply whose status already decided the outcome (retry_status, or not a success status):
 * its business error's code and message, where the mapping says they are and the body holds
 * them, replace the bare "HTTP 422" (an API's 4xx usually says why). */
static void status_outcome_text(const iw_generic *g, const iw_response *resp, reply_doc *d,
                                iw_outcome *out)
{
    if (!g->code_path && !g->message_path)
        return;
    char err[160];
    if (g->reply == REPLY_XML && !d->xml && resp->body_len)
        d->xml = iw_xml_parse(resp->body, resp->body_len, err, sizeof(err));
    else if (g->reply == REPLY_JSON && !d->json && resp->body_len)
        d->json = iw_json_reply_parse(resp->body, resp->body_len);
    if (!d->xml && !d->json)
        return;
    char code[64] = "", msg[200] = "";
    read_error(g, d, code, sizeof(code), msg, sizeof(msg));
    if (*code)
        snprintf(out->code, sizeof(out->code), "%s", code);
    if (*msg)
        snprintf(out->message, sizeof(out->message), "HTTP %ld: %s%s", resp->status,
                 g->message_prefix ? g->message_prefix : "", msg);
}

static void generic_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    char err[160];
    const iw_generic *g = target_mapping(tc, err, sizeof(err));
    if (!g) { /* a permanent refusal: no Retry-After, no reference, whatever the status */
        memset(out, 0, sizeof(*out));
        out->retry_after_ms = -1;
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_VALIDATION, "mapping", "%s", err);
        return;
    }
    reply_doc d = {NULL, NULL, resp->body, resp->body_len};
    iw_soap_reply rep;
    memset(&rep, 0, sizeof(rep));
    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    bool success_status = g->n_success_status
                              ? in_statuses(g->success_status, g->n_success_status, resp->status)
                              : resp->status >= 200 && resp->status < 300;
    if (g->reply == REPLY_SOAP) {
        iw_soap_reply_read(resp->body, resp->body_len, &rep);
        d.xml = rep.doc;
        if (iw_soap_classify_common(tc, resp, &rep, out))
            goto done;
        if (!success_status) { /* a 2xx the mapping does not list (success_status) */
            iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "",
                           "HTTP %ld is not a success status of this target", resp->status);
            snprintf(out->code, sizeof(out->code), "%ld", resp->status);
            goto done;
        }
    } else if (in_statuses(g->retry_status, g->n_retry_status, resp->status)) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_REMOTE, "", "HTTP %ld", resp->status);
        snprintf(out->code, sizeof(out->code), "%ld", resp->status);
        out->retry_after_ms =
            iw_retry_after_ms(iw_response_header(resp, "Retry-After"), resp->now_ms);
        status_outcome_text(g, resp, &d, out);
        goto done;
    } else if (!success_status) {
        iw_outcome_from_status(resp, out);
        if (out->kind == IW_OUTCOME_OK)
            iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, out->code,
                           "HTTP %ld is not a success status of this target", resp->status);
        status_outcome_text(g, resp, &d, out);
        goto done;
    } else if (g->reply == REPLY_XML) {
        d.xml = iw_xml_parse(resp->body ? resp->body : "", resp->body_len, err, sizeof(err));
    } else if (g->reply == REPLY_JSON) {
        d.json = iw_json_reply_parse(resp->body, resp->body_len);
    }
    /* without a success shape the status decides, whatever the body holds (review 97: many
     * APIs fill an error field with false, 0 or "success" on success, or answer "OK") */
    if (g->reply != REPLY_NONE && !d.xml && !d.json && (g->success_path || g->n_success_equals)) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable",
                       "HTTP %ld but the reply cannot be read; retrying, an unreadable reply is "
                       "never taken as success",
                       resp->status);
        goto done;
    }
    judge(g, resp, &d, out);
done:
    iw_soap_scrub(tc, out->message, sizeof(out->message));
    char *masked =
        g->n_secrets ? iw_mask_secrets(out->message, strlen(out->message), g->secrets, g->n_secrets)
                     : NULL;
    if (masked)
        snprintf(out->message, sizeof(out->message), "%s", masked);
    free(masked);
    if (g->reply == REPLY_SOAP)
        iw_soap_reply_free(&rep);
    else if (d.xml)
        xmlFreeDoc(d.xml);
    cJSON_Delete(d.json);
}

/* No seed URL: the instance's url is required; its mapping file says the rest. */
static const iw_conf_field generic_fields[] = {
    {.key = "mapping",
     .kind = IW_CONF_CUSTOM,
     .parse = parse_mapping,
     .free = free_mapping,
     .required = "the path of the instance's mapping file"},
    {.key = NULL},
};

static const iw_conf_adapter generic_conf = {
    .type = "generic",
    .url = NULL,
    .size = sizeof(iw_generic_conf),
    .fields = generic_fields,
    .placeholders = NULL,
    .check_url_with = generic_check_url_with,
};

const iw_target_ops iw_target_generic = {
    .type = "generic",
    .conf = &generic_conf,
    .secret_forms = generic_secret_forms,
    .validate = generic_validate,
    .render_refuses_more = true, /* the URL template's fields and the mapping's formats */
    .render = generic_render,
    .classify = generic_classify,
    .render_refresh = NULL,
    .parse_refresh = NULL,
};
