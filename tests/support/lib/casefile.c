/* casefile.c: reading the adapter case files (casefile.h; the format is in
 * tests/cases/README.md). */
#include "casefile.h"

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "docpaths.h"

#ifndef IW_FIXTURES_DIR
#define IW_FIXTURES_DIR "tests/fixtures"
#endif

void case_fail(case_file *k, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    k->failures++;
    if (k->report)
        k->report(k, line, msg);
}

/* ------------------------------------------------------------ reading a case file */

static const char *const KNOWN[] = {"info",     "config",          "event",         "state",
                                    "validate", "request",         "refuse",        "reply",
                                    "outcome",  "refresh-request", "refresh-reply", "refresh-token",
                                    "secrets",  "config-refused"};

static bool known_section(const char *name)
{
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (strcmp(KNOWN[i], name) == 0)
            return true;
    return false;
}

/* Parses `<name a="v" ...>` or `<name .../>` at line s; 0, or -1 when it is not a tag. */
static int parse_open(const char *s, case_section *sec, bool *selfclose)
{
    if (*s++ != '<')
        return -1;
    size_t n = strcspn(s, " />");
    if (n == 0 || n >= sizeof(sec->name))
        return -1;
    memcpy(sec->name, s, n);
    sec->name[n] = '\0';
    s += n;
    for (;;) {
        while (*s == ' ')
            s++;
        if (strcmp(s, ">") == 0 || strcmp(s, "/>") == 0) {
            *selfclose = s[0] == '/';
            return 0;
        }
        size_t kn = strcspn(s, "=");
        if (kn == 0 || kn >= sizeof(sec->attr_key[0]) || s[kn] != '=' || s[kn + 1] != '"' ||
            sec->n_attrs == CASE_MAX_ATTRS)
            return -1;
        const char *v = s + kn + 2, *end = strchr(v, '"');
        if (!end)
            return -1;
        memcpy(sec->attr_key[sec->n_attrs], s, kn);
        sec->attr_key[sec->n_attrs][kn] = '\0';
        sec->attr_val[sec->n_attrs++] = strndup(v, (size_t)(end - v));
        s = end + 1;
    }
}

void case_free(case_file *k)
{
    for (size_t i = 0; i < k->n_sec; i++) {
        for (size_t a = 0; a < k->sec[i].n_attrs; a++)
            free(k->sec[i].attr_val[a]);
        free(k->sec[i].text);
    }
    k->n_sec = 0;
}

/* Splits text into sections; 0, or -1 after reporting what is malformed. */
int case_parse(case_file *k, char *text)
{
    int lineno = 0;
    case_section *open = NULL;
    size_t start = 0, off = 0; /* content start and current offset in text */
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[256];
        lineno++;
        snprintf(line, sizeof(line), "%.*s", (int)(len < 255 ? len : 255), p);
        off = (size_t)(p - text);
        if (open) {
            char close[40];
            snprintf(close, sizeof(close), "</%s>", open->name);
            if (strcmp(line, close) == 0) {
                size_t clen = off > start ? off - start - 1 : 0; /* without the last newline */
                open->text = strndup(text + start, clen);
                open = NULL;
            }
        } else if (line[0] == '<') {
            if (k->n_sec == CASE_MAX_SECTIONS) {
                case_fail(k, lineno, "more than %d sections", CASE_MAX_SECTIONS);
                return -1;
            }
            case_section *s = &k->sec[k->n_sec];
            memset(s, 0, sizeof(*s));
            bool selfclose = false;
            int rc = parse_open(line, s, &selfclose);
            k->n_sec++;
            if (rc != 0 || !known_section(s->name)) {
                case_fail(k, lineno, "not a known section tag: %s", line);
                return -1;
            }
            for (size_t i = 0; i + 1 < k->n_sec; i++)
                if (strcmp(k->sec[i].name, s->name) == 0) {
                    case_fail(k, lineno, "section <%s> given twice", s->name);
                    return -1;
                }
            s->line = lineno;
            if (selfclose)
                s->text = strdup("");
            else
                open = s, start = off + len + (nl ? 1 : 0);
        } else if (line[0] != '#' && line[strspn(line, " \t")] != '\0') {
            case_fail(k, lineno, "text outside a section: %s", line);
            return -1;
        }
        p = nl ? nl + 1 : p + len;
    }
    if (open) {
        case_fail(k, open->line, "<%s> is never closed", open->name);
        return -1;
    }
    return 0;
}

case_section *case_find(case_file *k, const char *name)
{
    for (size_t i = 0; i < k->n_sec; i++)
        if (strcmp(k->sec[i].name, name) == 0)
            return &k->sec[i];
    return NULL;
}

const char *case_attr(const case_section *s, const char *key)
{
    for (size_t i = 0; s && i < s->n_attrs; i++)
        if (strcmp(s->attr_key[i], key) == 0)
            return s->attr_val[i];
    return NULL;
}

/* Decodes \n \r \t \\ \xHH in place. */
void case_unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s != '\\' || !s[1]) {
            *o++ = *s;
            continue;
        }
        s++;
        if (*s == 'n')
            *o++ = '\n';
        else if (*s == 'r')
            *o++ = '\r';
        else if (*s == 't')
            *o++ = '\t';
        else if (*s == 'x' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            char hex[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else if (*s == '\\')
            *o++ = '\\';
        else
            *o++ = '\\', *o++ = *s;
    }
    *o = '\0';
}

/* ------------------------------------------------------------ check lines */

/* Splits a section into check lines (blank and # lines skipped), arguments unescaped unless
 * raw. Caller frees with checks_free. */
case_check *case_checks(const case_section *s, size_t *n, bool raw)
{
    *n = 0;
    size_t cap = 8;
    case_check *c = calloc(cap, sizeof(*c));
    int lineno = s->line;
    for (const char *p = s->text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        char *ln = strndup(p, len);
        char *t = ln + strspn(ln, " \t");
        if (*t && *t != '#') {
            if (*n == cap)
                c = realloc(c, (cap *= 2) * sizeof(*c));
            size_t w = strcspn(t, " ");
            snprintf(c[*n].word, sizeof(c[*n].word), "%.*s", (int)w, t);
            c[*n].arg = strdup(t[w] ? t + w + 1 : "");
            c[*n].whole = strdup(t);
            if (!raw) {
                case_unescape(c[*n].arg);
                case_unescape(c[*n].whole);
            }
            c[*n].line = lineno;
            (*n)++;
        }
        free(ln);
        p = nl ? nl + 1 : p + len;
    }
    return c;
}

void case_checks_free(case_check *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].arg);
        free(c[i].whole);
    }
    free(c);
}

char *case_fixture(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, rel);
    return iw_read_file(path, len);
}

/* ------------------------------------------------------------ replies and outcomes */

void case_reply_clear(case_reply *rp)
{
    for (size_t i = 0; i < rp->resp.n_headers; i++) {
        free(rp->headers[i].name);
        free(rp->headers[i].value);
    }
    free(rp->body);
    memset(rp, 0, sizeof(*rp));
}

/* Reads "HTTP/1.1 STATUS ...", headers, a blank line and the body (or file=). 0 or -1. */
int case_reply_parse(case_file *k, const case_section *s, case_reply *rp)
{
    memset(rp, 0, sizeof(*rp));
    const char *t = s->text;
    if (strncmp(t, "HTTP/", 5) != 0 || sscanf(t, "HTTP/%*s %ld", &rp->resp.status) != 1) {
        case_fail(k, s->line + 1, "<%s> must start with a status line (HTTP/1.1 200 OK)", s->name);
        return -1;
    }
    t = strchr(t, '\n');
    while (t && t[1] && t[1] != '\n') {
        const char *ln = t + 1, *nl = strchr(ln, '\n');
        size_t len = nl ? (size_t)(nl - ln) : strlen(ln);
        const char *colon = memchr(ln, ':', len);
        if (!colon || rp->resp.n_headers == 16) {
            case_fail(k, s->line, "<%s>: bad header line '%.*s'", s->name, (int)len, ln);
            return -1;
        }
        iw_header *h = &rp->headers[rp->resp.n_headers++];
        h->name = strndup(ln, (size_t)(colon - ln));
        const char *v = colon + 1 + strspn(colon + 1, " ");
        h->value = strndup(v, (size_t)(ln + len - v));
        t = nl;
    }
    const char *file = case_attr(s, "file");
    size_t len = 0;
    if (file) {
        rp->body = case_fixture(file, &len);
        if (!rp->body) {
            case_fail(k, s->line, "cannot read tests/fixtures/%s", file);
            return -1;
        }
    } else if (t && t[1] == '\n') {
        rp->body = strdup(t + 2);
        len = strlen(rp->body);
    }
    rp->resp.headers = rp->headers;
    rp->resp.body = rp->body;
    rp->resp.body_len = len;
    rp->resp.now_ms = CASE_NOW_MS;
    return 0;
}

const char *case_outcome_name(iw_outcome_kind kind)
{
    static const char *const names[] = {"ok", "retry", "permanent", "auth"};
    return (unsigned)kind < 4 ? names[kind] : "?";
}

void case_check_outcome(case_file *k, const case_section *s, const iw_outcome *o)
{
    size_t n;
    case_check *c = case_checks(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        const char *w = c[i].word, *a = c[i].arg;
        int line = c[i].line;
        k->checks++;
        if (strcmp(w, "outcome") == 0) {
            if (strcmp(case_outcome_name(o->kind), a) != 0)
                case_fail(k, line, "outcome %s, want %s (%s)", case_outcome_name(o->kind), a,
                          o->message);
        } else if (strcmp(w, "error_kind") == 0) {
            const char *got =
                o->error_kind == IW_ERR_NONE ? "none" : iw_error_kind_str(o->error_kind);
            if (strcmp(got, a) != 0)
                case_fail(k, line, "error_kind %s, want %s", got, a);
        } else if (strcmp(w, "code") == 0) {
            if (strcmp(o->code, a) != 0)
                case_fail(k, line, "code '%s', want '%s'", o->code, a);
        } else if (strcmp(w, "message") == 0) {
            if (strcmp(o->message, a) != 0)
                case_fail(k, line, "message '%s', want '%s'", o->message, a);
        } else if (strcmp(w, "message-has") == 0) {
            if (!strstr(o->message, a))
                case_fail(k, line, "message '%s' lacks '%s'", o->message, a);
        } else if (strcmp(w, "message-lacks") == 0) {
            if (strstr(o->message, a))
                case_fail(k, line, "message '%s' holds '%s'", o->message, a);
        } else if (strcmp(w, "retry_after_ms") == 0) {
            if (o->retry_after_ms != strtoll(a, NULL, 10))
                case_fail(k, line, "retry_after_ms %lld, want %s", (long long)o->retry_after_ms, a);
        } else if (strcmp(w, "target_ref") == 0) {
            if (strcmp(o->target_ref, a) != 0)
                case_fail(k, line, "target_ref '%s', want '%s'", o->target_ref, a);
        } else if (strcmp(w, "refresh_token") == 0) {
            if ((o->refresh_token ? "true" : "false")[0] != a[0] ||
                (strcmp(a, "true") != 0 && strcmp(a, "false") != 0))
                case_fail(k, line, "refresh_token %s, want %s", o->refresh_token ? "true" : "false",
                          a);
        } else
            case_fail(k, line, "unknown outcome check '%s'", w);
    }
    if (n == 0)
        case_fail(k, s->line, "<outcome> checks nothing");
    case_checks_free(c, n);
}

/* ------------------------------------------------------------ config and folders */

/* The config file text holding <config> as its one target (malloc'd), with that target's name
 * in *tname (malloc'd) and its type noted as covered; NULL after a failure. */
char *case_config_text(case_file *k, const case_section *s, char **tname, char **type_out)
{
    const char *name = case_attr(s, "name");
    cJSON *obj = cJSON_Parse(s->text);
    if (!obj || !cJSON_IsObject(obj)) {
        case_fail(k, s->line, "<config> is not a JSON object");
        cJSON_Delete(obj);
        return NULL;
    }
    const cJSON *type = cJSON_GetObjectItem(obj, "type");
    if (!name)
        name = cJSON_IsString(type) ? type->valuestring : "target";
    *type_out = cJSON_IsString(type) ? strdup(type->valuestring) : NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *targets = cJSON_AddObjectToObject(root, "targets");
    *tname = strdup(name);
    cJSON_AddItemToObject(targets, *tname, obj);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir ending in suffix (or folders when suffix is NULL), sorted. */
char **case_list_dir(const char *dir, const char *suffix, size_t *n)
{
    DIR *d = opendir(dir);
    *n = 0;
    if (!d)
        return NULL;
    size_t cap = 16;
    char **names = malloc(cap * sizeof(*names));
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        size_t l = strlen(e->d_name);
        if (suffix ? (l <= strlen(suffix) || strcmp(e->d_name + l - strlen(suffix), suffix) != 0)
                   : e->d_type != DT_DIR)
            continue;
        if (*n == cap)
            names = realloc(names, (cap *= 2) * sizeof(*names));
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof(*names), by_name);
    return names;
}

void case_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

size_t case_each(const char *folder, case_report_fn *report, case_each_fn *fn, void *arg,
                 size_t *n_folders)
{
    size_t n_dirs = 1, total = 0;
    char **dirs = folder ? NULL : case_list_dir(IW_CASES_DIR, NULL, &n_dirs);
    if (n_folders)
        *n_folders = folder || dirs ? n_dirs : 0;
    for (size_t d = 0; d < n_dirs && (folder || dirs); d++) {
        const char *name = folder ? folder : dirs[d];
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", IW_CASES_DIR, name);
        size_t n;
        char **files = case_list_dir(dir, ".case", &n);
        for (size_t i = 0; i < n; i++) {
            char path[1024], rel[600];
            snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
            snprintf(rel, sizeof(rel), "tests/cases/%s/%s", name, files[i]);
            case_file k = {.file = rel, .report = report};
            fn(&k, case_read(&k, path), arg);
            case_free(&k);
        }
        case_list_free(files, n);
        total += n;
    }
    case_list_free(dirs, folder ? 0 : n_dirs);
    return total;
}

int case_read(case_file *k, const char *path)
{
    size_t len;
    char *text = iw_read_file(path, &len);
    if (!text) {
        case_fail(k, 0, "cannot read");
        return -1;
    }
    int rc = -1;
    if (strlen(text) != len)
        case_fail(k, 0, "holds a NUL byte");
    else
        rc = case_parse(k, text);
    free(text);
    return rc;
}
