/* test_cases.c: the adapter case files (tests/cases/<adapter>/NNNN-name.case), each run in
 * process: config, event, expected request or refusal, reply and expected outcome.
 *
 * A case file, in the manner of curl's tests/FILEFORMAT.md (tests/cases/README.md has more):
 *
 *   # comment (outside sections)
 *   <info>
 *   One or more lines saying what the case shows. Required.
 *   </info>
 *   <config name="centra_soap">      the target's object as under "targets" in a config file;
 *   { "type": "centra_soap", ... }   read by the config loader; name defaults to its type
 *   </config>
 *   <event file="events/complete.json">    a fixture, changed by edit lines (drop PATH,
 *   set invoice.refs.buyer_id = "B-2")     set PATH = JSON; JSON paths, below); or, without
 *   </event>                               file=, the event's JSON itself
 *   <state>                          token T: the instance's state after a refresh to T
 *   <validate>                       checks of iw_target_validate: ok | error T | error-has T
 *   <request>                        render must succeed; request checks (below)
 *   <refuse>                         render must fail with IW_EINVAL and leave nothing;
 *                                    error T | error-has T
 *   <reply file="midnight/x.json">   raw HTTP: "HTTP/1.1 STATUS", header lines, a blank line,
 *                                    the body (or the body from file=, under tests/fixtures)
 *   <outcome>                        classify's outcome: outcome, error_kind, code, message,
 *                                    message-has, message-lacks, retry_after_ms, target_ref,
 *                                    refresh_token
 *   <refresh-request>                render_refresh must succeed; request checks
 *   <refresh-reply>                  as <reply>, given to parse_refresh
 *   <refresh-token>                  token T | refused, and bufsize N (default 128)
 *   <secrets>                        one value a line: never in what leaves the worker, plain or
 *                                    escaped: the request and refresh request as printed
 *                                    (iw_cli_request_text) and the outcome message as published
 *                                    (with <config-refused>: the loader's error texts)
 *   <config-refused>                 the loader must refuse <config>: error PATH: T (one of its
 *                                    errors is exactly that) | error-has T; with <secrets> only
 *
 * Request checks, one a line ("keyword argument"; arguments take \n \r \t \\ \xHH):
 *   method M           url U              header Name: V       header[i] Name: V
 *   header-n N Name: V no-header Name     header-count Name N  body-len N
 *   body-has T         body-lacks T       body-file REL        parses xml|json
 *   structure REL, with any number of structure-except PATH
 *   xml-ns URI|-       xml-base PATH      xml PATH = T         xml PATH absent|present
 *   xml-count PATH NAME N                 xml-first-child PATH NAME
 *   xml-children PATH = A,B,...           xml-attr PATH NAME = V
 *   xml-root NAME      xml-root-ns URI|none                    xml-nsdecl PREFIX URI
 *   json PATH = JSON   json PATH absent   json-raw KEY N = T
 *   masked-has T       masked-lacks T     masked-starts T
 * An XML PATH is child names from the root element ("." is the root), each "name" (in the
 * namespace xml-ns set; unchecked after "xml-ns -") or "{uri}name", either with "[n]" for the
 * n-th of that name (from 1), under xml-base when one is set. A JSON PATH is keys and [i]
 * indexes from the top ("InvoiceLine[1].TempInvoiceLineID").
 *
 * A case must check something; an unknown section or keyword, a missing file or an empty case
 * folder fails the run, naming the file and line, and so does a built-in adapter type no case
 * targets. Every folder under tests/cases is run; a folder's name is free (centra holds the
 * cases of centra_soap and centra_navision). */
#include <criterion/criterion.h>

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "cli.h"
#include "config.h"
#include "docpaths.h"
#include "secrets.h"
#include "status.h"
#include "target.h"
#include "testdata.h"

#ifndef IW_CASES_DIR
#define IW_CASES_DIR "tests/cases"
#endif

#define NOW_MS 1795255200000LL /* 2026-11-21T10:00:00Z, as tests/fixtures/replies/cases.json */
#define MAX_SECTIONS 16
#define MAX_ATTRS 4

/* One section of a case file. */
typedef struct section {
    char name[32];
    char attr_key[MAX_ATTRS][16];
    char *attr_val[MAX_ATTRS];
    size_t n_attrs;
    char *text; /* content, without the newline before the closing tag */
    int line;   /* line of the opening tag */
} section;

/* A parsed case file and where its failures are reported. */
typedef struct kase {
    const char *file; /* path under tests/cases, for messages */
    section sec[MAX_SECTIONS];
    size_t n_sec;
    int failures; /* failed checks so far */
    int checks;   /* checks run */
} kase;

/* Set while the runner's own test feeds it malformed cases: failures are only counted. */
static bool quiet;

/* Adapter types the cases run so far have targeted. */
static const char *covered[32];
static size_t n_covered;

/* Notes that a case targets adapter type `type` (kept as the registry's own name). */
static void cover(const char *type)
{
    const iw_target_ops *ops = iw_target_find(type);
    if (!ops)
        return;
    for (size_t i = 0; i < n_covered; i++)
        if (strcmp(covered[i], ops->type) == 0)
            return;
    if (n_covered < sizeof(covered) / sizeof(covered[0]))
        covered[n_covered++] = ops->type;
}

static void fail(kase *k, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(kase *k, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!quiet)
        cr_expect_fail("%s:%d: %s", k->file, line, msg);
    k->failures++;
}

/* ------------------------------------------------------------ reading a case file */

static const char *const KNOWN[] = {
    "info",  "config",  "event",           "state",         "validate",      "request", "refuse",
    "reply", "outcome", "refresh-request", "refresh-reply", "refresh-token", "secrets",
    "config-refused"};

static bool known_section(const char *name)
{
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (strcmp(KNOWN[i], name) == 0)
            return true;
    return false;
}

/* Parses `<name a="v" ...>` or `<name .../>` at line s; 0, or -1 when it is not a tag. */
static int parse_open(const char *s, section *sec, bool *selfclose)
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
            sec->n_attrs == MAX_ATTRS)
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

static void case_free(kase *k)
{
    for (size_t i = 0; i < k->n_sec; i++) {
        for (size_t a = 0; a < k->sec[i].n_attrs; a++)
            free(k->sec[i].attr_val[a]);
        free(k->sec[i].text);
    }
    k->n_sec = 0;
}

/* Splits text into sections; 0, or -1 after reporting what is malformed. */
static int case_parse(kase *k, char *text)
{
    int lineno = 0;
    section *open = NULL;
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
            if (k->n_sec == MAX_SECTIONS) {
                fail(k, lineno, "more than %d sections", MAX_SECTIONS);
                return -1;
            }
            section *s = &k->sec[k->n_sec];
            memset(s, 0, sizeof(*s));
            bool selfclose = false;
            int rc = parse_open(line, s, &selfclose);
            k->n_sec++;
            if (rc != 0 || !known_section(s->name)) {
                fail(k, lineno, "not a known section tag: %s", line);
                return -1;
            }
            for (size_t i = 0; i + 1 < k->n_sec; i++)
                if (strcmp(k->sec[i].name, s->name) == 0) {
                    fail(k, lineno, "section <%s> given twice", s->name);
                    return -1;
                }
            s->line = lineno;
            if (selfclose)
                s->text = strdup("");
            else
                open = s, start = off + len + (nl ? 1 : 0);
        } else if (line[0] != '#' && line[strspn(line, " \t")] != '\0') {
            fail(k, lineno, "text outside a section: %s", line);
            return -1;
        }
        p = nl ? nl + 1 : p + len;
    }
    if (open) {
        fail(k, open->line, "<%s> is never closed", open->name);
        return -1;
    }
    return 0;
}

static section *find(kase *k, const char *name)
{
    for (size_t i = 0; i < k->n_sec; i++)
        if (strcmp(k->sec[i].name, name) == 0)
            return &k->sec[i];
    return NULL;
}

static const char *attr(const section *s, const char *key)
{
    for (size_t i = 0; s && i < s->n_attrs; i++)
        if (strcmp(s->attr_key[i], key) == 0)
            return s->attr_val[i];
    return NULL;
}

/* Decodes \n \r \t \\ \xHH in place. */
static void unescape(char *s)
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

/* A check line of a section: the keyword and its (unescaped) argument. */
typedef struct check {
    char word[32];
    char *arg;   /* malloc'd */
    char *whole; /* the whole line, unescaped like arg (a <secrets> value); malloc'd */
    int line;
} check;

/* Splits a section into check lines (blank and # lines skipped), arguments unescaped unless
 * raw. Caller frees with checks_free. */
static check *checks_of(const section *s, size_t *n, bool raw)
{
    *n = 0;
    size_t cap = 8;
    check *c = calloc(cap, sizeof(*c));
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
                unescape(c[*n].arg);
                unescape(c[*n].whole);
            }
            c[*n].line = lineno;
            (*n)++;
        }
        free(ln);
        p = nl ? nl + 1 : p + len;
    }
    return c;
}

static void checks_free(check *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].arg);
        free(c[i].whole);
    }
    free(c);
}

/* Splits "A = B" at the first " = "; false when there is none. */
static bool split_eq(char *arg, char **lhs, char **rhs)
{
    char *eq = strstr(arg, " = ");
    if (!eq)
        return false;
    *eq = '\0';
    *lhs = arg;
    *rhs = eq + 3;
    return true;
}

static char *fixture(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, rel);
    return iw_read_file(path, len);
}

/* ------------------------------------------------------------ XML and JSON paths */

/* Matches a step "name" or "{uri}name" against element c; ns is the default namespace (NULL:
 * unchecked). */
static bool step_matches(xmlNodePtr c, const char *step, size_t len, const char *ns)
{
    const char *uri = ns;
    char ubuf[256];
    if (step[0] == '{') {
        const char *end = memchr(step, '}', len);
        if (!end)
            return false;
        snprintf(ubuf, sizeof(ubuf), "%.*s", (int)(end - step - 1), step + 1);
        uri = ubuf;
        len -= (size_t)(end + 1 - step);
        step = end + 1;
    }
    if (c->type != XML_ELEMENT_NODE || strlen((const char *)c->name) != len ||
        strncmp((const char *)c->name, step, len) != 0)
        return false;
    if (!uri)
        return true;
    return c->ns && strcmp((const char *)c->ns->href, uri) == 0;
}

/* Follows path from the root; NULL when a step is missing. *bad_ns is set when an element of
 * the right name is in another namespace (the old tests' child() asserted that). */
static xmlNodePtr xml_at(xmlNodePtr root, const char *path, const char *ns, bool *bad_ns)
{
    *bad_ns = false;
    if (strcmp(path, ".") == 0)
        return root;
    xmlNodePtr n = root;
    for (const char *p = path; n && *p;) {
        size_t len = 0;
        if (*p == '{') {
            const char *e = strchr(p, '}');
            len = e ? (size_t)(e - p) + 1 : 0;
        }
        len += strcspn(p + len, "/");
        size_t name_len = len, nth = 1; /* "Item[2]": the second Item */
        const char *br = memchr(p, '[', len);
        if (br) {
            name_len = (size_t)(br - p);
            nth = strtoul(br + 1, NULL, 10);
        }
        xmlNodePtr hit = NULL;
        bool elsewhere = false;
        for (xmlNodePtr c = n->children; c && !hit; c = c->next)
            if (step_matches(c, p, name_len, ns)) {
                if (--nth == 0)
                    hit = c;
            } else if (ns && p[0] != '{' && step_matches(c, p, name_len, NULL))
                elsewhere = true;
        if (!hit && elsewhere) {
            *bad_ns = true;
            return NULL;
        }
        n = hit;
        p += len;
        if (*p == '/')
            p++;
    }
    return n;
}

/* Follows "a.b[2].c" from j; NULL when missing. */
static const cJSON *json_at(const cJSON *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf; j && *p;) {
        if (*p == '[') {
            j = cJSON_GetArrayItem(j, atoi(p + 1));
            p = strchr(p, ']');
            if (!p)
                return NULL;
            p++;
        } else {
            size_t n = strcspn(p, ".[");
            char save = p[n];
            p[n] = '\0';
            j = cJSON_GetObjectItemCaseSensitive(j, p);
            p[n] = save;
            p += n;
        }
        if (*p == '.')
            p++;
    }
    return j;
}

/* ------------------------------------------------------------ request checks */

/* What the request checks of one section look at. */
typedef struct req_view {
    const iw_request *req;
    char *masked;     /* iw_request_format_masked */
    xmlDocPtr xml;    /* the body parsed, when a check needed it */
    cJSON *json;      /* likewise */
    const char *ns;   /* xml-ns */
    char ns_buf[256]; /* its storage */
    char base[512];   /* xml-base: where xml paths start, "" for the root */
} req_view;

/* PATH under the xml-base (a malloc'd string). */
static char *based(const req_view *v, const char *path)
{
    size_t n = strlen(v->base) + strlen(path) + 2;
    char *s = malloc(n);
    if (!v->base[0])
        snprintf(s, n, "%s", path);
    else if (strcmp(path, ".") == 0)
        snprintf(s, n, "%s", v->base);
    else
        snprintf(s, n, "%s/%s", v->base, path);
    return s;
}

/* The element at PATH under the xml-base, or NULL; *bad_ns when only another namespace has it. */
static xmlNodePtr based_at(const req_view *v, xmlNodePtr root, const char *path, bool *bad_ns)
{
    char *full = based(v, path);
    xmlNodePtr n = xml_at(root, full, v->ns, bad_ns);
    free(full);
    return n;
}

/* The element at PATH, or NULL after failing the check at line (missing, or in another
 * namespace). */
static xmlNodePtr based_at_or_fail(kase *k, int line, const req_view *v, xmlNodePtr root,
                                   const char *path)
{
    bool bad_ns;
    xmlNodePtr n = based_at(v, root, path, &bad_ns);
    if (!n)
        fail(k, line, "%s is %s", path, bad_ns ? "in another namespace" : "missing");
    return n;
}

static xmlDocPtr view_xml(kase *k, int line, req_view *v)
{
    if (!v->xml) {
        v->xml = xmlReadMemory(v->req->body, (int)v->req->body_len, "body.xml", NULL,
                               XML_PARSE_NONET | XML_PARSE_HUGE | XML_PARSE_NOERROR |
                                   XML_PARSE_NOWARNING);
        if (!v->xml)
            fail(k, line, "body is not well-formed XML");
    }
    return v->xml;
}

static cJSON *view_json(kase *k, int line, req_view *v)
{
    if (!v->json) {
        v->json = cJSON_ParseWithLength(v->req->body, v->req->body_len);
        if (!v->json)
            fail(k, line, "body is not JSON");
    }
    return v->json;
}

static size_t header_count(const iw_request *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_headers; i++)
        n += strcasecmp(r->headers[i].name, name) == 0;
    return n;
}

/* Compares the body's element or key paths with a reference file, less the exceptions (which
 * must be in the reference and must not be rendered). */
static void check_structure(kase *k, int line, const iw_request *r, const char *ref_rel, check *c,
                            size_t n)
{
    size_t rlen;
    char *ref = fixture(ref_rel, &rlen);
    if (!ref) {
        fail(k, line, "cannot read tests/fixtures/%s", ref_rel);
        return;
    }
    bool xml = ref[strspn(ref, " \t\r\n")] == '<';
    iw_paths want = {0}, got = {0};
    if ((xml ? iw_paths_xml(ref, rlen, &want) : iw_paths_json(ref, rlen, &want)) != 0)
        fail(k, line, "reference %s does not parse", ref_rel);
    else if ((xml ? iw_paths_xml(r->body, r->body_len, &got)
                  : iw_paths_json(r->body, r->body_len, &got)) != 0)
        fail(k, line, "rendered body does not parse");
    else {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(c[i].word, "structure-except") != 0)
                continue;
            size_t kept = 0;
            bool found = false;
            for (size_t j = 0; j < want.n; j++)
                if (strcmp(want.items[j], c[i].arg) == 0)
                    free(want.items[j]), found = true;
                else
                    want.items[kept++] = want.items[j];
            want.n = kept;
            if (!found)
                fail(k, c[i].line, "exception %s is not in the reference (stale?)", c[i].arg);
            for (size_t j = 0; j < got.n; j++)
                if (strcmp(got.items[j], c[i].arg) == 0)
                    fail(k, c[i].line, "exception %s was rendered", c[i].arg);
        }
        char msg[1024];
        if (iw_paths_compare(&want, &got, msg, sizeof(msg)) != 0)
            fail(k, line, "structure differs from %s: %s", ref_rel, msg);
    }
    iw_paths_free(&want);
    iw_paths_free(&got);
    free(ref);
}

static void check_xml(kase *k, const check *c, req_view *v)
{
    xmlDocPtr d = view_xml(k, c->line, v);
    if (!d)
        return;
    xmlNodePtr root = xmlDocGetRootElement(d);
    char *arg = strdup(c->arg), *lhs, *rhs;
    if (strcmp(c->word, "xml-root") == 0) {
        if (strcmp((const char *)root->name, arg) != 0)
            fail(k, c->line, "root is <%s>, want <%s>", root->name, arg);
    } else if (strcmp(c->word, "xml-root-ns") == 0) {
        const char *got = root->ns ? (const char *)root->ns->href : "none";
        if (strcmp(got, arg) != 0)
            fail(k, c->line, "root namespace is %s, want %s", got, arg);
    } else if (strcmp(c->word, "xml-nsdecl") == 0) {
        char *uri = strchr(arg, ' ');
        bool seen = false;
        if (uri)
            *uri++ = '\0';
        for (xmlNsPtr ns = root->nsDef; uri && ns; ns = ns->next)
            seen |= ns->prefix && strcmp((const char *)ns->prefix, arg) == 0 &&
                    strcmp((const char *)ns->href, uri) == 0;
        if (!seen)
            fail(k, c->line, "root does not declare xmlns:%s=\"%s\"", arg, uri ? uri : "?");
    } else if (strcmp(c->word, "xml-count") == 0 || strcmp(c->word, "xml-first-child") == 0) {
        char *name = strchr(arg, ' ');
        if (!name) {
            fail(k, c->line, "%s: want PATH NAME", c->word);
            goto done;
        }
        *name++ = '\0';
        char *num = strchr(name, ' ');
        if (num)
            *num++ = '\0';
        xmlNodePtr n = based_at_or_fail(k, c->line, v, root, arg);
        if (!n)
            goto done;
        if (strcmp(c->word, "xml-count") == 0) {
            size_t got = 0;
            for (xmlNodePtr ch = n->children; ch; ch = ch->next)
                got += ch->type == XML_ELEMENT_NODE && strcmp((const char *)ch->name, name) == 0;
            if (!num || got != strtoul(num, NULL, 10))
                fail(k, c->line, "%s has %zu <%s>, want %s", arg, got, name, num ? num : "?");
        } else {
            xmlNodePtr ch = n->children;
            while (ch && ch->type != XML_ELEMENT_NODE)
                ch = ch->next;
            if (!ch || strcmp((const char *)ch->name, name) != 0)
                fail(k, c->line, "first child of %s is <%s>, want <%s>", arg,
                     ch ? (const char *)ch->name : "(none)", name);
        }
    } else if (strcmp(c->word, "xml-children") == 0 || strcmp(c->word, "xml-attr") == 0) {
        bool attr_check = c->word[4] == 'a';
        char *name = NULL;
        if (!split_eq(arg, &lhs, &rhs) || (attr_check && !(name = strrchr(lhs, ' ')))) {
            fail(k, c->line, "%s: want %s = TEXT", c->word, attr_check ? "PATH NAME" : "PATH");
            goto done;
        }
        if (name)
            *name++ = '\0';
        xmlNodePtr n = based_at_or_fail(k, c->line, v, root, lhs);
        if (!n)
            goto done;
        char got[1024] = "";
        if (attr_check) {
            xmlChar *a = xmlGetProp(n, (const xmlChar *)name);
            snprintf(got, sizeof(got), "%s", a ? (const char *)a : "(none)");
            xmlFree(a);
        } else {
            for (xmlNodePtr ch = n->children; ch; ch = ch->next)
                if (ch->type == XML_ELEMENT_NODE) {
                    size_t l = strlen(got);
                    snprintf(got + l, sizeof(got) - l, "%s%s", l ? "," : "", ch->name);
                }
        }
        if (strcmp(got, rhs) != 0)
            fail(k, c->line, "%s%s%s is '%s', want '%s'", lhs, name ? " @" : " children",
                 name ? name : "", got, rhs);
    } else if (strcmp(c->word, "xml") == 0) {
        bool absent = false, present = false;
        if (!split_eq(arg, &lhs, &rhs)) {
            size_t l = strlen(arg);
            if (l > 7 && strcmp(arg + l - 7, " absent") == 0) {
                arg[l - 7] = '\0';
                lhs = arg, rhs = NULL, absent = true;
            } else if (l > 8 && strcmp(arg + l - 8, " present") == 0) {
                arg[l - 8] = '\0';
                lhs = arg, rhs = NULL, present = true;
            } else {
                fail(k, c->line, "xml: want PATH = TEXT or PATH absent");
                goto done;
            }
        }
        bool bad_ns;
        xmlNodePtr n = based_at(v, root, lhs, &bad_ns);
        if (bad_ns)
            fail(k, c->line, "%s is in another namespace than %s", lhs, v->ns);
        else if (absent && n)
            fail(k, c->line, "%s should be absent", lhs);
        else if (!absent && !n)
            fail(k, c->line, "%s is missing", lhs);
        else if (!absent && !present) {
            xmlChar *t = xmlNodeGetContent(n);
            if (strcmp((const char *)t, rhs) != 0)
                fail(k, c->line, "%s: got '%.80s' (%zu bytes), want '%.80s' (%zu)", lhs,
                     (const char *)t, strlen((const char *)t), rhs, strlen(rhs));
            xmlFree(t);
        }
    }
done:
    free(arg);
}

static void check_json(kase *k, const check *c, req_view *v)
{
    char *arg = strdup(c->arg), *lhs, *rhs;
    if (strcmp(c->word, "json-raw") == 0) {
        char raw[256];
        char *sp = strchr(arg, ' ');
        if (!sp || !split_eq(sp + 1, &lhs, &rhs)) {
            fail(k, c->line, "json-raw: want KEY N = TEXT");
        } else {
            *sp = '\0';
            if (!iw_t_nth_raw(v->req->body, arg, strtoul(lhs, NULL, 10), raw, sizeof(raw)))
                fail(k, c->line, "no %s \"%s\" in the body", lhs, arg);
            else if (strcmp(raw, rhs) != 0)
                fail(k, c->line, "\"%s\" #%s is %s, want %s", arg, lhs, raw, rhs);
        }
        free(arg);
        return;
    }
    cJSON *j = view_json(k, c->line, v);
    if (!j) {
        free(arg);
        return;
    }
    size_t l = strlen(arg);
    if (l > 7 && strcmp(arg + l - 7, " absent") == 0) {
        arg[l - 7] = '\0';
        if (json_at(j, arg))
            fail(k, c->line, "%s should be absent", arg);
    } else if (split_eq(arg, &lhs, &rhs)) {
        const cJSON *got = json_at(j, lhs);
        cJSON *want = cJSON_Parse(rhs);
        if (!want)
            fail(k, c->line, "expected value is not JSON: %s", rhs);
        else if (!got)
            fail(k, c->line, "%s is missing", lhs);
        else if (!cJSON_Compare(got, want, true)) {
            char *s = cJSON_PrintUnformatted(got);
            fail(k, c->line, "%s is %.200s, want %.200s", lhs, s ? s : "?", rhs);
            free(s);
        }
        cJSON_Delete(want);
    } else
        fail(k, c->line, "json: want PATH = JSON or PATH absent");
    free(arg);
}

/* Runs the request checks of s against r. */
static void check_request(kase *k, const section *s, const iw_request *r)
{
    size_t n;
    check *c = checks_of(s, &n, false);
    req_view v = {.req = r, .masked = iw_request_format_masked(r)};
    cr_assert_not_null(v.masked);
    bool structure_done = false;
    for (size_t i = 0; i < n; i++) {
        const char *w = c[i].word, *a = c[i].arg;
        int line = c[i].line;
        k->checks++;
        if (strcmp(w, "method") == 0) {
            if (strcmp(r->method, a) != 0)
                fail(k, line, "method %s, want %s", r->method, a);
        } else if (strcmp(w, "url") == 0) {
            if (!r->url || strcmp(r->url, a) != 0)
                fail(k, line, "url %s, want %s", r->url ? r->url : "(none)", a);
        } else if (strcmp(w, "header") == 0 || strncmp(w, "header[", 7) == 0) {
            const char *colon = strstr(a, ": ");
            if (!colon) {
                fail(k, line, "%s: want Name: value", w);
                continue;
            }
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(colon - a), a);
            const char *got = NULL;
            if (w[6] == '[') {
                size_t idx = strtoul(w + 7, NULL, 10);
                if (idx < r->n_headers && strcmp(r->headers[idx].name, name) == 0)
                    got = r->headers[idx].value;
                else {
                    fail(k, line, "header %zu is not %s", idx, name);
                    continue;
                }
            } else
                got = iw_request_header(r, name);
            if (!got || strcmp(got, colon + 2) != 0)
                fail(k, line, "%s is '%s', want '%s'", name, got ? got : "(absent)", colon + 2);
        } else if (strcmp(w, "header-n") == 0) {
            char *sp = strchr(a, ' ');
            const char *colon = sp ? strstr(sp, ": ") : NULL;
            size_t want = strtoul(a, NULL, 10), seen = 0;
            const char *got = NULL;
            if (!colon || want == 0) {
                fail(k, line, "header-n: want N Name: value");
                continue;
            }
            for (size_t h = 0; h < r->n_headers && !got; h++)
                if (strlen(r->headers[h].name) == (size_t)(colon - sp - 1) &&
                    strncmp(r->headers[h].name, sp + 1, (size_t)(colon - sp - 1)) == 0 &&
                    ++seen == want)
                    got = r->headers[h].value;
            if (!got || strcmp(got, colon + 2) != 0)
                fail(k, line, "header %zu named %.*s is '%s', want '%s'", want,
                     (int)(colon - sp - 1), sp + 1, got ? got : "(absent)", colon + 2);
        } else if (strcmp(w, "no-header") == 0) {
            if (iw_request_header(r, a))
                fail(k, line, "header %s should be absent", a);
        } else if (strcmp(w, "header-count") == 0) {
            char name[128];
            size_t want = 0;
            if (sscanf(a, "%127s %zu", name, &want) != 2)
                fail(k, line, "header-count: want Name N");
            else if (header_count(r, name) != want)
                fail(k, line, "%zu %s headers, want %zu", header_count(r, name), name, want);
        } else if (strcmp(w, "body-len") == 0) {
            if (r->body_len != strtoul(a, NULL, 10))
                fail(k, line, "body is %zu bytes, want %s", r->body_len, a);
        } else if (strcmp(w, "body-has") == 0) {
            if (!r->body || !strstr(r->body, a))
                fail(k, line, "body lacks '%s'", a);
        } else if (strcmp(w, "body-lacks") == 0) {
            if (r->body && strstr(r->body, a))
                fail(k, line, "body holds '%s'", a);
        } else if (strcmp(w, "body-file") == 0) {
            size_t len;
            char *want = fixture(a, &len);
            if (!want)
                fail(k, line, "cannot read tests/fixtures/%s", a);
            else if (len != r->body_len || memcmp(want, r->body, len) != 0)
                fail(k, line, "body differs from %s", a);
            free(want);
        } else if (strcmp(w, "parses") == 0) {
            if (strcmp(a, "xml") == 0)
                view_xml(k, line, &v);
            else if (strcmp(a, "json") == 0)
                view_json(k, line, &v);
            else
                fail(k, line, "parses: xml or json");
        } else if (strcmp(w, "structure") == 0) {
            check_structure(k, line, r, a, c, n);
            structure_done = true;
        } else if (strcmp(w, "structure-except") == 0) {
            continue; /* read by structure */
        } else if (strcmp(w, "xml-base") == 0) {
            snprintf(v.base, sizeof(v.base), "%s", strcmp(a, ".") == 0 ? "" : a);
        } else if (strcmp(w, "xml-ns") == 0) {
            snprintf(v.ns_buf, sizeof(v.ns_buf), "%s", a);
            v.ns = strcmp(a, "-") == 0 ? NULL : v.ns_buf;
        } else if (strncmp(w, "xml", 3) == 0) {
            check_xml(k, &c[i], &v);
        } else if (strncmp(w, "json", 4) == 0) {
            check_json(k, &c[i], &v);
        } else if (strcmp(w, "masked-has") == 0) {
            if (!strstr(v.masked, a))
                fail(k, line, "masked print lacks '%s':\n%.2000s", a, v.masked);
        } else if (strcmp(w, "masked-lacks") == 0) {
            if (strstr(v.masked, a))
                fail(k, line, "masked print holds '%s'", a);
        } else if (strcmp(w, "masked-starts") == 0) {
            if (strncmp(v.masked, a, strlen(a)) != 0)
                fail(k, line, "masked print does not start with '%s'", a);
        } else {
            fail(k, line, "unknown request check '%s'", w);
        }
    }
    for (size_t i = 0; i < n && !structure_done; i++)
        if (strcmp(c[i].word, "structure-except") == 0)
            fail(k, c[i].line, "structure-except without structure");
    if (n == 0)
        fail(k, s->line, "<%s> checks nothing", s->name);
    xmlFreeDoc(v.xml);
    cJSON_Delete(v.json);
    free(v.masked);
    checks_free(c, n);
}

/* ------------------------------------------------------------ replies and outcomes */

/* A reply parsed from a <reply> section: owns its header strings and body. */
typedef struct reply {
    iw_response resp;
    iw_header headers[16];
    char *body;
} reply;

static void reply_clear(reply *rp)
{
    for (size_t i = 0; i < rp->resp.n_headers; i++) {
        free(rp->headers[i].name);
        free(rp->headers[i].value);
    }
    free(rp->body);
    memset(rp, 0, sizeof(*rp));
}

/* Reads "HTTP/1.1 STATUS ...", headers, a blank line and the body (or file=). 0 or -1. */
static int reply_parse(kase *k, const section *s, reply *rp)
{
    memset(rp, 0, sizeof(*rp));
    const char *t = s->text;
    if (strncmp(t, "HTTP/", 5) != 0 || sscanf(t, "HTTP/%*s %ld", &rp->resp.status) != 1) {
        fail(k, s->line + 1, "<%s> must start with a status line (HTTP/1.1 200 OK)", s->name);
        return -1;
    }
    t = strchr(t, '\n');
    while (t && t[1] && t[1] != '\n') {
        const char *ln = t + 1, *nl = strchr(ln, '\n');
        size_t len = nl ? (size_t)(nl - ln) : strlen(ln);
        const char *colon = memchr(ln, ':', len);
        if (!colon || rp->resp.n_headers == 16) {
            fail(k, s->line, "<%s>: bad header line '%.*s'", s->name, (int)len, ln);
            return -1;
        }
        iw_header *h = &rp->headers[rp->resp.n_headers++];
        h->name = strndup(ln, (size_t)(colon - ln));
        const char *v = colon + 1 + strspn(colon + 1, " ");
        h->value = strndup(v, (size_t)(ln + len - v));
        t = nl;
    }
    const char *file = attr(s, "file");
    size_t len = 0;
    if (file) {
        rp->body = fixture(file, &len);
        if (!rp->body) {
            fail(k, s->line, "cannot read tests/fixtures/%s", file);
            return -1;
        }
    } else if (t && t[1] == '\n') {
        rp->body = strdup(t + 2);
        len = strlen(rp->body);
    }
    rp->resp.headers = rp->headers;
    rp->resp.body = rp->body;
    rp->resp.body_len = len;
    rp->resp.now_ms = NOW_MS;
    return 0;
}

static const char *outcome_name(iw_outcome_kind k)
{
    static const char *const names[] = {"ok", "retry", "permanent", "auth"};
    return (unsigned)k < 4 ? names[k] : "?";
}

static void check_outcome(kase *k, const section *s, const iw_outcome *o)
{
    size_t n;
    check *c = checks_of(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        const char *w = c[i].word, *a = c[i].arg;
        int line = c[i].line;
        k->checks++;
        if (strcmp(w, "outcome") == 0) {
            if (strcmp(outcome_name(o->kind), a) != 0)
                fail(k, line, "outcome %s, want %s (%s)", outcome_name(o->kind), a, o->message);
        } else if (strcmp(w, "error_kind") == 0) {
            const char *got =
                o->error_kind == IW_ERR_NONE ? "none" : iw_error_kind_str(o->error_kind);
            if (strcmp(got, a) != 0)
                fail(k, line, "error_kind %s, want %s", got, a);
        } else if (strcmp(w, "code") == 0) {
            if (strcmp(o->code, a) != 0)
                fail(k, line, "code '%s', want '%s'", o->code, a);
        } else if (strcmp(w, "message") == 0) {
            if (strcmp(o->message, a) != 0)
                fail(k, line, "message '%s', want '%s'", o->message, a);
        } else if (strcmp(w, "message-has") == 0) {
            if (!strstr(o->message, a))
                fail(k, line, "message '%s' lacks '%s'", o->message, a);
        } else if (strcmp(w, "message-lacks") == 0) {
            if (strstr(o->message, a))
                fail(k, line, "message '%s' holds '%s'", o->message, a);
        } else if (strcmp(w, "retry_after_ms") == 0) {
            if (o->retry_after_ms != strtoll(a, NULL, 10))
                fail(k, line, "retry_after_ms %lld, want %s", (long long)o->retry_after_ms, a);
        } else if (strcmp(w, "target_ref") == 0) {
            if (strcmp(o->target_ref, a) != 0)
                fail(k, line, "target_ref '%s', want '%s'", o->target_ref, a);
        } else if (strcmp(w, "refresh_token") == 0) {
            if ((o->refresh_token ? "true" : "false")[0] != a[0] ||
                (strcmp(a, "true") != 0 && strcmp(a, "false") != 0))
                fail(k, line, "refresh_token %s, want %s", o->refresh_token ? "true" : "false", a);
        } else
            fail(k, line, "unknown outcome check '%s'", w);
    }
    if (n == 0)
        fail(k, s->line, "<outcome> checks nothing");
    checks_free(c, n);
}

/* ------------------------------------------------------------ secrets */

/* Forms a secret takes when escaped: XML, JSON, URL. Returns a malloc'd string. */
static char *escaped(const char *s, int form)
{
    size_t n = strlen(s);
    char *o = malloc(6 * n + 1), *p = o;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (form == 0 && strchr("<>&\"'", ch))
            p += sprintf(p, "&#%d;", ch);
        else if (form == 1 && (ch == '"' || ch == '\\' || ch == '/'))
            p += sprintf(p, "\\%c", ch);
        else if (form == 2 && !isalnum(ch) && !strchr("-._~", ch))
            p += sprintf(p, "%%%02X", ch);
        else
            *p++ = (char)ch;
    }
    *p = '\0';
    return o;
}

/* The secret must not be in text in plain, XML-escaped (entities by name or number),
 * JSON-escaped or percent-encoded form. */
static void expect_no_secret(kase *k, int line, const char *what, const char *text,
                             const char *secret)
{
    if (!text || !*secret)
        return;
    char *forms[4] = {strdup(secret), escaped(secret, 0), escaped(secret, 1), escaped(secret, 2)};
    for (int f = 0; f < 4; f++) {
        if (strstr(text, forms[f]))
            fail(k, line, "%s holds the secret '%s'%s", what, secret, f ? " (escaped)" : "");
        free(forms[f]);
    }
    /* XML named entities for the usual five */
    char buf[512];
    size_t o = 0;
    for (const char *s = secret; *s && o < sizeof(buf) - 8; s++) {
        const char *e = *s == '<'    ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '&'  ? "&amp;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&apos;"
                                     : NULL;
        if (e)
            o += (size_t)sprintf(buf + o, "%s", e);
        else
            buf[o++] = *s;
    }
    buf[o] = '\0';
    if (strcmp(buf, secret) != 0 && strstr(text, buf))
        fail(k, line, "%s holds the secret '%s' (XML-escaped)", what, secret);
}

/* ------------------------------------------------------------ one case */

/* The config file text holding <config> as its one target (malloc'd), with that target's name
 * in *tname (malloc'd) and its type noted as covered; NULL after a failure. */
static char *config_text(kase *k, const section *s, char **tname)
{
    const char *name = attr(s, "name");
    cJSON *obj = cJSON_Parse(s->text);
    if (!obj || !cJSON_IsObject(obj)) {
        fail(k, s->line, "<config> is not a JSON object");
        cJSON_Delete(obj);
        return NULL;
    }
    const cJSON *type = cJSON_GetObjectItem(obj, "type");
    if (!name)
        name = cJSON_IsString(type) ? type->valuestring : "target";
    if (cJSON_IsString(type))
        cover(type->valuestring);
    cJSON *root = cJSON_CreateObject();
    cJSON *targets = cJSON_AddObjectToObject(root, "targets");
    *tname = strdup(name);
    cJSON_AddItemToObject(targets, *tname, obj);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

/* <config-refused>: the loader refuses <config> with the errors checked; <secrets> are in
 * none of its error texts. */
static void run_config_refused(kase *k, const section *cs, const section *s, const section *sec)
{
    char *tname = NULL;
    char *json = config_text(k, cs, &tname);
    free(tname);
    if (!json)
        return;
    iw_config_errors errs;
    memset(&errs, 0, sizeof(errs));
    iw_config *cfg = iw_config_parse(json, IW_FIXTURES_DIR, &errs);
    free(json);
    k->checks++;
    if (cfg) {
        fail(k, s->line, "the config loader accepted <config>");
        iw_config_free(cfg);
        return;
    }
    size_t most = sizeof(errs.items) / sizeof(errs.items[0]);
    size_t shown = errs.count < most ? errs.count : most;
    size_t n;
    check *c = checks_of(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        bool exact = strcmp(c[i].word, "error") == 0;
        if (!exact && strcmp(c[i].word, "error-has") != 0) {
            fail(k, c[i].line, "unknown config-refused check '%s'", c[i].word);
            continue;
        }
        bool found = false;
        for (size_t e = 0; e < shown && !found; e++) {
            char text[sizeof(errs.items[0].path) + sizeof(errs.items[0].message) + 4];
            snprintf(text, sizeof(text), "%s: %s", errs.items[e].path, errs.items[e].message);
            found = exact ? strcmp(text, c[i].arg) == 0 : strstr(text, c[i].arg) != NULL;
        }
        if (!found)
            fail(k, c[i].line, "no error %s'%s' (first: %s: %s)", exact ? "" : "holding ",
                 c[i].arg, shown ? errs.items[0].path : "-", shown ? errs.items[0].message : "-");
    }
    if (n == 0)
        fail(k, s->line, "<config-refused> checks nothing");
    checks_free(c, n);
    if (sec) {
        c = checks_of(sec, &n, false);
        for (size_t i = 0; i < n; i++) {
            k->checks++;
            for (size_t e = 0; e < shown; e++) {
                expect_no_secret(k, c[i].line, "an error path", errs.items[e].path, c[i].whole);
                expect_no_secret(k, c[i].line, "an error", errs.items[e].message, c[i].whole);
            }
        }
        checks_free(c, n);
    }
}

/* Builds the target conf from <config> through the config loader. */
static iw_config *load_config(kase *k, const section *s, const iw_target_conf **tc)
{
    char *tname = NULL;
    char *json = config_text(k, s, &tname);
    if (!json)
        return NULL;
    iw_config_errors errs;
    memset(&errs, 0, sizeof(errs));
    iw_config *cfg = iw_config_parse(json, IW_FIXTURES_DIR, &errs);
    free(json);
    if (!cfg) {
        fail(k, s->line, "config refused: %s: %s", errs.count ? errs.items[0].path : "?",
             errs.count ? errs.items[0].message : "?");
        free(tname);
        return NULL;
    }
    *tc = iw_config_target(cfg, tname);
    free(tname);
    if (!*tc) {
        fail(k, s->line, "config holds no target");
        iw_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Applies one edit line ("drop PATH" or "set PATH = JSON") to a parsed event; 0 or -1. */
static int edit_event(cJSON *root, check *c)
{
    char *path = c->arg, *value = NULL;
    bool set = strcmp(c->word, "set") == 0;
    if ((!set && strcmp(c->word, "drop") != 0) || (set && !split_eq(c->arg, &path, &value)))
        return -1;
    char *last = strrchr(path, '.'), *br = strrchr(path, '[');
    char *cut = br && (!last || br > last) ? br : last;
    if (!cut)
        return -1;
    char save = *cut;
    *cut = '\0';
    cJSON *parent = (cJSON *)json_at(root, path);
    *cut = save;
    if (!parent)
        return -1;
    if (!set) {
        if (save == '[') {
            if (!cJSON_GetArrayItem(parent, atoi(cut + 1)))
                return -1;
            cJSON_DeleteItemFromArray(parent, atoi(cut + 1));
            return 0;
        }
        if (!cJSON_GetObjectItemCaseSensitive(parent, cut + 1))
            return -1;
        cJSON_DeleteItemFromObjectCaseSensitive(parent, cut + 1);
        return 0;
    }
    cJSON *v = cJSON_Parse(value);
    if (!v)
        return -1;
    if (save == '[')
        return cJSON_ReplaceItemInArray(parent, atoi(cut + 1), v) ? 0 : (cJSON_Delete(v), -1);
    if (cJSON_GetObjectItemCaseSensitive(parent, cut + 1))
        cJSON_ReplaceItemInObjectCaseSensitive(parent, cut + 1, v);
    else
        cJSON_AddItemToObject(parent, cut + 1, v);
    return 0;
}

/* The event of the case: inline JSON, or a fixture file with the edits the section lists. */
static iw_event *load_event(kase *k, const section *s)
{
    const char *file = attr(s, "file");
    size_t len;
    char *json = file ? fixture(file, &len) : strdup(s->text);
    if (!json) {
        fail(k, s->line, "cannot read tests/fixtures/%s", file);
        return NULL;
    }
    if (!file)
        len = strlen(json);
    size_t n;
    check *c = file ? checks_of(s, &n, true) : NULL;
    if (c && n) {
        cJSON *root = cJSON_ParseWithLength(json, len);
        free(json);
        json = NULL;
        for (size_t i = 0; root && i < n; i++)
            if (edit_event(root, &c[i]) != 0) {
                fail(k, c[i].line, "cannot apply edit '%s %s' (drop PATH | set PATH = JSON)",
                     c[i].word, c[i].arg);
                cJSON_Delete(root);
                root = NULL;
            }
        json = root ? cJSON_PrintUnformatted(root) : NULL;
        len = json ? strlen(json) : 0;
        cJSON_Delete(root);
    }
    checks_free(c, c ? n : 0);
    if (!json)
        return NULL;
    iw_event *ev = NULL;
    char err[256] = "";
    if (iw_event_parse(json, len, &ev, err, sizeof(err)) != 0)
        fail(k, s->line, "event does not parse: %s", err);
    free(json);
    return ev;
}

static void run_validate(kase *k, const section *s, const iw_target_ops *ops, const iw_event *ev,
                         const iw_target_conf *tc)
{
    char err[256] = "";
    int rc = iw_target_validate(ops, ev, tc, err, sizeof(err));
    size_t n;
    check *c = checks_of(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        if (strcmp(c[i].word, "ok") == 0) {
            if (rc != 0)
                fail(k, c[i].line, "validate refused: %s", err);
        } else if (strcmp(c[i].word, "error") == 0 || strcmp(c[i].word, "error-has") == 0) {
            bool exact = strcmp(c[i].word, "error") == 0;
            if (rc != IW_EINVAL)
                fail(k, c[i].line, "validate returned %d, want IW_EINVAL", rc);
            else if (exact ? strcmp(err, c[i].arg) != 0 : !strstr(err, c[i].arg))
                fail(k, c[i].line, "validate said '%s', want %s'%s'", err,
                     exact ? "" : "it to hold ", c[i].arg);
        } else
            fail(k, c[i].line, "unknown validate check '%s'", c[i].word);
    }
    if (n == 0)
        fail(k, s->line, "<validate> checks nothing");
    checks_free(c, n);
}

static void run_refuse(kase *k, const section *s, int rc, const char *err, const iw_request *r)
{
    size_t n;
    check *c = checks_of(s, &n, false);
    k->checks++;
    if (rc != IW_EINVAL)
        fail(k, s->line, "render returned %d, want IW_EINVAL", rc);
    if (r->url || r->body || r->n_headers)
        fail(k, s->line, "a refused render left a request behind");
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        bool exact = strcmp(c[i].word, "error") == 0;
        if (!exact && strcmp(c[i].word, "error-has") != 0)
            fail(k, c[i].line, "unknown refuse check '%s'", c[i].word);
        else if (exact ? strcmp(err, c[i].arg) != 0 : !strstr(err, c[i].arg))
            fail(k, c[i].line, "render said '%s', want %s'%s'", err, exact ? "" : "it to hold ",
                 c[i].arg);
    }
    checks_free(c, n);
}

static void run_refresh_token(kase *k, const section *rs, const section *ts,
                              const iw_target_ops *ops)
{
    if (!rs || !ts || !ops->parse_refresh) {
        fail(k, (rs ? rs : ts)->line,
             "<refresh-reply> and <refresh-token> go together, for an adapter with a refresh");
        return;
    }
    reply rp;
    if (reply_parse(k, rs, &rp) != 0) {
        reply_clear(&rp);
        return;
    }
    size_t n, bufsize = 128;
    check *c = checks_of(ts, &n, false);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].word, "bufsize") == 0)
            bufsize = strtoul(c[i].arg, NULL, 10);
    char *tok = calloc(1, bufsize ? bufsize : 1);
    int rc = ops->parse_refresh(&rp.resp, tok, bufsize);
    bool checked = false;
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        if (strcmp(c[i].word, "token") == 0) {
            checked = true;
            if (rc != 0 || strcmp(tok, c[i].arg) != 0)
                fail(k, c[i].line, "parse_refresh gave %d '%s', want '%s'", rc, tok, c[i].arg);
        } else if (strcmp(c[i].word, "refused") == 0) {
            checked = true;
            if (rc != IW_EINVAL)
                fail(k, c[i].line, "parse_refresh gave %d '%s', want IW_EINVAL", rc, tok);
        } else if (strcmp(c[i].word, "bufsize") != 0)
            fail(k, c[i].line, "unknown refresh-token check '%s'", c[i].word);
    }
    if (!checked)
        fail(k, ts->line, "<refresh-token> needs token T or refused");
    free(tok);
    checks_free(c, n);
    reply_clear(&rp);
}

/* Runs the parsed case k. */
static void case_run(kase *k)
{
    section *info = find(k, "info"), *cs = find(k, "config"), *es = find(k, "event");
    section *req_s = find(k, "request"), *ref_s = find(k, "refuse"), *val_s = find(k, "validate");
    section *rep_s = find(k, "reply"), *out_s = find(k, "outcome"), *sec_s = find(k, "secrets");
    section *rr_s = find(k, "refresh-request"), *st_s = find(k, "state");
    section *rrep_s = find(k, "refresh-reply"), *rtok_s = find(k, "refresh-token");
    if (!info || !info->text[strspn(info->text, " \n")]) {
        fail(k, 1, "no <info> saying what the case shows");
        return;
    }
    if (!cs) {
        fail(k, 1, "no <config>");
        return;
    }
    if ((req_s || ref_s || val_s) && !es) {
        fail(k, 1, "<request>, <refuse> and <validate> need an <event>");
        return;
    }
    if (req_s && ref_s) {
        fail(k, ref_s->line, "<request> and <refuse> exclude each other");
        return;
    }
    if (!rep_s != !out_s) {
        fail(k, (rep_s ? rep_s : out_s)->line, "<reply> and <outcome> go together");
        return;
    }
    section *cr_s = find(k, "config-refused");
    if (cr_s) {
        if (es || req_s || ref_s || val_s || rep_s || rr_s || rrep_s || rtok_s || st_s)
            fail(k, cr_s->line, "<config-refused> goes with <info>, <config> and <secrets> only");
        else
            run_config_refused(k, cs, cr_s, sec_s);
        return;
    }
    if (!req_s && !ref_s && !val_s && !out_s && !rr_s && !rrep_s) {
        fail(k, 1, "the case checks nothing");
        return;
    }

    const iw_target_conf *tc = NULL;
    iw_config *cfg = load_config(k, cs, &tc);
    if (!cfg)
        return;
    const iw_target_ops *ops = iw_target_find(tc->type);
    cr_assert_not_null(ops, "%s: no adapter %s", k->file, tc->type);
    iw_event *ev = es ? load_event(k, es) : NULL;
    void *state = ops->state_new ? ops->state_new(tc) : NULL;
    iw_request req = {0}, rreq = {0};
    iw_outcome o;
    memset(&o, 0, sizeof(o));
    char *masked = NULL, *rmasked = NULL;
    if (es && !ev)
        goto out;

    if (st_s) {
        size_t n;
        check *c = checks_of(st_s, &n, false);
        for (size_t i = 0; i < n; i++)
            if (strcmp(c[i].word, "token") != 0 || !state || !ops->store_refresh)
                fail(k, c[i].line, "<state>: only token T, for an adapter with a refresh");
            else
                cr_assert_eq(ops->store_refresh(state, c[i].arg), 0);
        checks_free(c, n);
    }
    if (val_s)
        run_validate(k, val_s, ops, ev, tc);
    if (req_s || ref_s) {
        char err[256] = "";
        iw_render_ctx ctx = {.state = state};
        int rc = iw_target_render(ops, ev, tc, &ctx, &req, err, sizeof(err));
        if (ref_s)
            run_refuse(k, ref_s, rc, err, &req);
        else if (rc != 0)
            fail(k, req_s->line, "render refused: %s", err);
        else if (!req.body)
            fail(k, req_s->line, "render left no body");
        else {
            check_request(k, req_s, &req);
            masked = iw_cli_request_text(tc, &req);
        }
    }
    if (rr_s) {
        char err[256] = "";
        if (!ops->render_refresh)
            fail(k, rr_s->line, "%s has no token refresh", ops->type);
        else if (ops->render_refresh(tc, &rreq, err, sizeof(err)) != 0)
            fail(k, rr_s->line, "render_refresh refused: %s", err);
        else {
            check_request(k, rr_s, &rreq);
            rmasked = iw_cli_request_text(tc, &rreq);
        }
    }
    if (rrep_s || rtok_s)
        run_refresh_token(k, rrep_s, rtok_s, ops);
    if (rep_s) {
        reply rp;
        if (reply_parse(k, rep_s, &rp) == 0) {
            iw_target_classify(ops, tc, &rp.resp, &o);
            check_outcome(k, out_s, &o);
        }
        reply_clear(&rp);
    }
    if (sec_s) {
        /* the outcome message as the dispatcher publishes it: masked by the instance's registry */
        char published[sizeof(o.message)];
        memcpy(published, o.message, sizeof(published));
        iw_secrets *reg = iw_secrets_for_target(tc);
        cr_assert_not_null(reg);
        for (size_t i = 0; i < req.n_secrets; i++)
            cr_assert_eq(iw_secrets_add(reg, req.secrets[i]), 0);
        iw_secrets_mask_inplace(reg, published, sizeof(published));
        iw_secrets_free(reg);
        size_t n;
        check *c = checks_of(sec_s, &n, false);
        for (size_t i = 0; i < n; i++) {
            const char *full = c[i].whole;
            k->checks++;
            expect_no_secret(k, c[i].line, "the masked request", masked, full);
            expect_no_secret(k, c[i].line, "the masked refresh request", rmasked, full);
            if (rep_s)
                expect_no_secret(k, c[i].line, "the outcome message", published, full);
        }
        if (n == 0)
            fail(k, sec_s->line, "<secrets> lists none");
        checks_free(c, n);
    }
out:
    free(masked);
    free(rmasked);
    iw_request_clear(&req);
    iw_request_clear(&rreq);
    if (state)
        ops->state_free(state);
    iw_event_free(ev);
    iw_config_free(cfg);
}

/* ------------------------------------------------------------ the folders */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir ending in suffix (or folders when suffix is NULL), sorted. */
static char **list_dir(const char *dir, const char *suffix, size_t *n)
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

static void free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Runs every case of one adapter folder; returns how many ran. */
static size_t run_folder(const char *adapter)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", IW_CASES_DIR, adapter);
    size_t n;
    char **files = list_dir(dir, ".case", &n);
    cr_expect_gt(n, 0, "tests/cases/%s holds no .case file", adapter);
    for (size_t i = 0; i < n; i++) {
        char path[1024], rel[600];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        snprintf(rel, sizeof(rel), "tests/cases/%s/%s", adapter, files[i]);
        kase k = {.file = rel};
        size_t len;
        char *text = iw_read_file(path, &len);
        if (!text) {
            fail(&k, 0, "cannot read");
            continue;
        }
        if (strlen(text) != len)
            fail(&k, 0, "holds a NUL byte");
        else if (case_parse(&k, text) == 0)
            case_run(&k);
        if (k.failures == 0 && k.checks == 0)
            fail(&k, 0, "ran no check");
        case_free(&k);
        free(text);
    }
    free_list(files, n);
    return n;
}

/* Adapters whose behaviour is defined by a mapping file, tested by their own suites
 * (test_generic_navision.c, test_mapping.c) rather than by cases. */
static const char *const NOT_BY_CASES[] = {"generic"};

/* Every folder under tests/cases, each with at least one case; and every built-in adapter type
 * is the target of at least one case, so a new adapter cannot go untested here. */
Test(cases, every_case)
{
    size_t n, total = 0;
    char **dirs = list_dir(IW_CASES_DIR, NULL, &n);
    cr_assert(dirs && n > 0, "no case folders in %s", IW_CASES_DIR);
    for (size_t i = 0; i < n; i++)
        total += run_folder(dirs[i]);
    free_list(dirs, n);
    for (size_t i = 0; iw_targets_all[i]; i++) {
        const char *type = iw_targets_all[i]->type;
        bool exempt = false, seen = false;
        for (size_t e = 0; e < sizeof(NOT_BY_CASES) / sizeof(NOT_BY_CASES[0]); e++)
            exempt |= strcmp(type, NOT_BY_CASES[e]) == 0;
        for (size_t c = 0; c < n_covered; c++)
            seen |= strcmp(type, covered[c]) == 0;
        cr_expect(exempt || seen, "no case in tests/cases targets adapter type %s", type);
    }
    cr_log_info("%zu cases", total);
}

/* Runs one inline case quietly; returns how many of its checks failed. */
static int failures_of(const char *text)
{
    char *copy = strdup(text);
    kase k = {.file = "(inline)"};
    quiet = true;
    if (case_parse(&k, copy) == 0)
        case_run(&k);
    quiet = false;
    int failures = k.failures;
    case_free(&k);
    free(copy);
    return failures;
}

#define SOAP_HEAD                                                                                  \
    "<info>\nx\n</info>\n<config>\n{\"type\":\"centra_soap\",\"username\":\"u-1\","                \
    "\"password\":\"p<&>w\"}\n</config>\n"
#define MINIMAL "<event file=\"events/minimal.json\"/>\n"

/* The runner itself: a malformed case fails, naming the file and line. */
Test(cases, malformed_case_fails)
{
    static const char *const bad[] = {
        SOAP_HEAD,                                                  /* checks nothing */
        "<info>\nx\n</info>\n<bogus>\n</bogus>\n",                  /* unknown section */
        "<info>\nx\n</info>\n<config>\n{}\n",                       /* never closed */
        "stray text\n",                                             /* outside a section */
        "<config>\n{\"type\":\"centra_soap\"}\n</config>\n" MINIMAL /* no info */
        "<validate>\nok\n</validate>\n",
        SOAP_HEAD MINIMAL "<validate>\nfine\n</validate>\n",   /* unknown check */
        SOAP_HEAD MINIMAL "<request>\nurl-is x\n</request>\n", /* unknown request check */
        SOAP_HEAD "<event file=\"events/none.json\"/>\n<validate>\nok\n</validate>\n",  /* file */
        SOAP_HEAD MINIMAL "<validate>\nok\n</validate>\n<validate>\nok\n</validate>\n", /* twice */
        SOAP_HEAD "<reply>\n200 OK\n</reply>\n<outcome>\noutcome ok\n</outcome>\n",     /* status */
        SOAP_HEAD "<reply>\nHTTP/1.1 200 OK\n</reply>\n", /* reply without outcome */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_gt(failures_of(bad[i]), 0, "malformed case %zu was accepted", i);
}

/* The runner itself: each kind of check fails when the adapter does not do what it says, and
 * the same case with the right expectation passes. */
Test(cases, wrong_expectations_fail)
{
    static const char *const pairs[][2] = {
        {"<request>\nmethod POST\n</request>\n", "<request>\nmethod PUT\n</request>\n"},
        {"<request>\nno-header Authorization\n</request>\n",
         "<request>\nno-header SOAPAction\n</request>\n"},
        {"<request>\nbody-has INV-2001\n</request>\n",
         "<request>\nbody-has INV-2002\n</request>\n"},
        {"<request>\nxml-ns http://www.centra.com/webservices/\nxml {http://schemas.xmlsoap.org/"
         "soap/envelope/}Body/invoices_Update/invoices/invoice/id = INV-2001\n</request>\n",
         "<request>\nxml-ns urn:other\nxml {http://schemas.xmlsoap.org/soap/envelope/}Body/"
         "invoices_Update/invoices/invoice/id = INV-2001\n</request>\n"},
        {"<request>\nmasked-lacks p<&>w\n</request>\n",
         "<request>\nmasked-has p<&>w\n</request>\n"},
        {"<request>\nmasked-has u-1\n</request>\n<secrets>\np<&>w\n</secrets>\n",
         "<request>\nmasked-has u-1\n</request>\n<secrets>\nu-1\n</secrets>\n"},
        {"<validate>\nok\n</validate>\n", "<validate>\nerror-has id\n</validate>\n"},
        {"<refuse>\n</refuse>\n<event file=\"events/minimal.json\"/>\n", "<refuse>\n</refuse>\n"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char good[2048], wrong[2048];
        bool has_event = strstr(pairs[i][0], "<event") != NULL;
        snprintf(good, sizeof(good), "%s%s%s", SOAP_HEAD, has_event ? "" : MINIMAL, pairs[i][0]);
        snprintf(wrong, sizeof(wrong), "%s%s%s", SOAP_HEAD, MINIMAL, pairs[i][1]);
        if (has_event) /* the refusal pair: an event centra_soap refuses */
            snprintf(good, sizeof(good),
                     "%s<event>\n{\"schema\":\"invoice-event/v1\",\"event_id\":\"e1\",\"type\":"
                     "\"invoice.updated\",\"tenant\":\"t\",\"version\":1,\"invoice\":{\"id\":"
                     "\"I1\",\"currency\":\"EUR\",\"store\":\"a\\u0001b\",\"lines\":[{\"name\":"
                     "\"n\",\"quantity\":\"1\",\"unit_price\":\"1.00\"}]}}\n</event>\n"
                     "<refuse>\nerror-has store:\n</refuse>\n",
                     SOAP_HEAD);
        cr_expect_eq(failures_of(good), 0, "pair %zu: the right expectation fails", i);
        cr_expect_gt(failures_of(wrong), 0, "pair %zu: the wrong expectation passes", i);
    }
}

/* The runner itself: <config-refused> fails when the loader accepts the config, when no error
 * says what it expects, when an error text holds a listed secret, and beside an event. */
Test(cases, config_refused_checks_fail_when_wrong)
{
#define BAD_CONFIG                                                                                 \
    "<info>\nx\n</info>\n<config>\n{\"type\":\"centra_soap\",\"username\":\"u-1\","                \
    "\"password\":\"p-1\",\"bogus_key\":1}\n</config>\n"
    cr_expect_eq(failures_of(BAD_CONFIG "<config-refused>\nerror-has bogus_key\n</config-refused>\n"
                             "<secrets>\np-1\n</secrets>\n"),
                 0, "the right expectation fails");
    cr_expect_gt(failures_of(SOAP_HEAD "<config-refused>\nerror-has bogus_key\n</config-refused>\n"),
                 0, "an accepted config passes");
    cr_expect_gt(failures_of(BAD_CONFIG "<config-refused>\nerror-has other_key\n</config-refused>\n"),
                 0, "an error nobody gave passes");
    cr_expect_gt(failures_of(BAD_CONFIG "<config-refused>\nerror-has bogus_key\n</config-refused>\n"
                             "<secrets>\nbogus_key\n</secrets>\n"),
                 0, "an error text holding a listed secret passes");
    cr_expect_gt(failures_of(BAD_CONFIG MINIMAL
                             "<config-refused>\nerror-has bogus_key\n</config-refused>\n"),
                 0, "<config-refused> beside an event passes");
#undef BAD_CONFIG
}
