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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "casefile.h"
#include "cli.h"
#include "config.h"
#include "docpaths.h"
#include "secrets.h"
#include "status.h"
#include "target.h"
#include "testdata.h"
#include "unescape.h"

#ifndef IW_CASES_DIR
#define IW_CASES_DIR "tests/cases"
#endif

/* Reports a failure of a case run from its file. */
static void report(const case_file *k, int line, const char *msg)
{
    cr_expect_fail("%s:%d: %s", k->file, line, msg);
}

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
static xmlNodePtr based_at_or_fail(case_file *k, int line, const req_view *v, xmlNodePtr root,
                                   const char *path)
{
    bool bad_ns;
    xmlNodePtr n = based_at(v, root, path, &bad_ns);
    if (!n)
        case_fail(k, line, "%s is %s", path, bad_ns ? "in another namespace" : "missing");
    return n;
}

static xmlDocPtr view_xml(case_file *k, int line, req_view *v)
{
    if (!v->xml) {
        v->xml = xmlReadMemory(v->req->body, (int)v->req->body_len, "body.xml", NULL,
                               XML_PARSE_NONET | XML_PARSE_HUGE | XML_PARSE_NOERROR |
                                   XML_PARSE_NOWARNING);
        if (!v->xml)
            case_fail(k, line, "body is not well-formed XML");
    }
    return v->xml;
}

static cJSON *view_json(case_file *k, int line, req_view *v)
{
    if (!v->json) {
        v->json = cJSON_ParseWithLength(v->req->body, v->req->body_len);
        if (!v->json)
            case_fail(k, line, "body is not JSON");
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
static void check_structure(case_file *k, int line, const iw_request *r, const char *ref_rel,
                            case_check *c, size_t n)
{
    size_t rlen;
    char *ref = case_fixture(ref_rel, &rlen);
    if (!ref) {
        case_fail(k, line, "cannot read tests/fixtures/%s", ref_rel);
        return;
    }
    bool xml = ref[strspn(ref, " \t\r\n")] == '<';
    iw_paths want = {0}, got = {0};
    if ((xml ? iw_paths_xml(ref, rlen, &want) : iw_paths_json(ref, rlen, &want)) != 0)
        case_fail(k, line, "reference %s does not parse", ref_rel);
    else if ((xml ? iw_paths_xml(r->body, r->body_len, &got)
                  : iw_paths_json(r->body, r->body_len, &got)) != 0)
        case_fail(k, line, "rendered body does not parse");
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
                case_fail(k, c[i].line, "exception %s is not in the reference (stale?)", c[i].arg);
            for (size_t j = 0; j < got.n; j++)
                if (strcmp(got.items[j], c[i].arg) == 0)
                    case_fail(k, c[i].line, "exception %s was rendered", c[i].arg);
        }
        char msg[1024];
        if (iw_paths_compare(&want, &got, msg, sizeof(msg)) != 0)
            case_fail(k, line, "structure differs from %s: %s", ref_rel, msg);
    }
    iw_paths_free(&want);
    iw_paths_free(&got);
    free(ref);
}

static void check_xml(case_file *k, const case_check *c, req_view *v)
{
    xmlDocPtr d = view_xml(k, c->line, v);
    if (!d)
        return;
    xmlNodePtr root = xmlDocGetRootElement(d);
    char *arg = strdup(c->arg), *lhs, *rhs;
    if (strcmp(c->word, "xml-root") == 0) {
        if (strcmp((const char *)root->name, arg) != 0)
            case_fail(k, c->line, "root is <%s>, want <%s>", root->name, arg);
    } else if (strcmp(c->word, "xml-root-ns") == 0) {
        const char *got = root->ns ? (const char *)root->ns->href : "none";
        if (strcmp(got, arg) != 0)
            case_fail(k, c->line, "root namespace is %s, want %s", got, arg);
    } else if (strcmp(c->word, "xml-nsdecl") == 0) {
        char *uri = strchr(arg, ' ');
        bool seen = false;
        if (uri)
            *uri++ = '\0';
        for (xmlNsPtr ns = root->nsDef; uri && ns; ns = ns->next)
            seen |= ns->prefix && strcmp((const char *)ns->prefix, arg) == 0 &&
                    strcmp((const char *)ns->href, uri) == 0;
        if (!seen)
            case_fail(k, c->line, "root does not declare xmlns:%s=\"%s\"", arg, uri ? uri : "?");
    } else if (strcmp(c->word, "xml-count") == 0 || strcmp(c->word, "xml-first-child") == 0) {
        char *name = strchr(arg, ' ');
        if (!name) {
            case_fail(k, c->line, "%s: want PATH NAME", c->word);
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
                case_fail(k, c->line, "%s has %zu <%s>, want %s", arg, got, name, num ? num : "?");
        } else {
            xmlNodePtr ch = n->children;
            while (ch && ch->type != XML_ELEMENT_NODE)
                ch = ch->next;
            if (!ch || strcmp((const char *)ch->name, name) != 0)
                case_fail(k, c->line, "first child of %s is <%s>, want <%s>", arg,
                          ch ? (const char *)ch->name : "(none)", name);
        }
    } else if (strcmp(c->word, "xml-children") == 0 || strcmp(c->word, "xml-attr") == 0) {
        bool attr_check = c->word[4] == 'a';
        char *name = NULL;
        if (!split_eq(arg, &lhs, &rhs) || (attr_check && !(name = strrchr(lhs, ' ')))) {
            case_fail(k, c->line, "%s: want %s = TEXT", c->word, attr_check ? "PATH NAME" : "PATH");
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
            case_fail(k, c->line, "%s%s%s is '%s', want '%s'", lhs, name ? " @" : " children",
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
                case_fail(k, c->line, "xml: want PATH = TEXT or PATH absent");
                goto done;
            }
        }
        bool bad_ns;
        xmlNodePtr n = based_at(v, root, lhs, &bad_ns);
        if (bad_ns)
            case_fail(k, c->line, "%s is in another namespace than %s", lhs, v->ns);
        else if (absent && n)
            case_fail(k, c->line, "%s should be absent", lhs);
        else if (!absent && !n)
            case_fail(k, c->line, "%s is missing", lhs);
        else if (!absent && !present) {
            xmlChar *t = xmlNodeGetContent(n);
            if (strcmp((const char *)t, rhs) != 0)
                case_fail(k, c->line, "%s: got '%.80s' (%zu bytes), want '%.80s' (%zu)", lhs,
                          (const char *)t, strlen((const char *)t), rhs, strlen(rhs));
            xmlFree(t);
        }
    }
done:
    free(arg);
}

static void check_json(case_file *k, const case_check *c, req_view *v)
{
    char *arg = strdup(c->arg), *lhs, *rhs;
    if (strcmp(c->word, "json-raw") == 0) {
        char raw[256];
        char *sp = strchr(arg, ' ');
        if (!sp || !split_eq(sp + 1, &lhs, &rhs)) {
            case_fail(k, c->line, "json-raw: want KEY N = TEXT");
        } else {
            *sp = '\0';
            if (!iw_t_nth_raw(v->req->body, arg, strtoul(lhs, NULL, 10), raw, sizeof(raw)))
                case_fail(k, c->line, "no %s \"%s\" in the body", lhs, arg);
            else if (strcmp(raw, rhs) != 0)
                case_fail(k, c->line, "\"%s\" #%s is %s, want %s", arg, lhs, raw, rhs);
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
            case_fail(k, c->line, "%s should be absent", arg);
    } else if (split_eq(arg, &lhs, &rhs)) {
        const cJSON *got = json_at(j, lhs);
        cJSON *want = cJSON_Parse(rhs);
        if (!want)
            case_fail(k, c->line, "expected value is not JSON: %s", rhs);
        else if (!got)
            case_fail(k, c->line, "%s is missing", lhs);
        else if (!cJSON_Compare(got, want, true)) {
            char *s = cJSON_PrintUnformatted(got);
            case_fail(k, c->line, "%s is %.200s, want %.200s", lhs, s ? s : "?", rhs);
            free(s);
        }
        cJSON_Delete(want);
    } else
        case_fail(k, c->line, "json: want PATH = JSON or PATH absent");
    free(arg);
}

/* Runs the request checks of s against r. */
static void check_request(case_file *k, const case_section *s, const iw_request *r)
{
    size_t n;
    case_check *c = case_checks(s, &n, false);
    req_view v = {.req = r, .masked = iw_request_format_masked(r)};
    cr_assert_not_null(v.masked);
    bool structure_done = false;
    for (size_t i = 0; i < n; i++) {
        const char *w = c[i].word, *a = c[i].arg;
        int line = c[i].line;
        k->checks++;
        if (strcmp(w, "method") == 0) {
            if (strcmp(r->method, a) != 0)
                case_fail(k, line, "method %s, want %s", r->method, a);
        } else if (strcmp(w, "url") == 0) {
            if (!r->url || strcmp(r->url, a) != 0)
                case_fail(k, line, "url %s, want %s", r->url ? r->url : "(none)", a);
        } else if (strcmp(w, "header") == 0 || strncmp(w, "header[", 7) == 0) {
            const char *colon = strstr(a, ": ");
            if (!colon) {
                case_fail(k, line, "%s: want Name: value", w);
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
                    case_fail(k, line, "header %zu is not %s", idx, name);
                    continue;
                }
            } else
                got = iw_request_header(r, name);
            if (!got || strcmp(got, colon + 2) != 0)
                case_fail(k, line, "%s is '%s', want '%s'", name, got ? got : "(absent)",
                          colon + 2);
        } else if (strcmp(w, "header-n") == 0) {
            char *sp = strchr(a, ' ');
            const char *colon = sp ? strstr(sp, ": ") : NULL;
            size_t want = strtoul(a, NULL, 10), seen = 0;
            const char *got = NULL;
            if (!colon || want == 0) {
                case_fail(k, line, "header-n: want N Name: value");
                continue;
            }
            for (size_t h = 0; h < r->n_headers && !got; h++)
                if (strlen(r->headers[h].name) == (size_t)(colon - sp - 1) &&
                    strncmp(r->headers[h].name, sp + 1, (size_t)(colon - sp - 1)) == 0 &&
                    ++seen == want)
                    got = r->headers[h].value;
            if (!got || strcmp(got, colon + 2) != 0)
                case_fail(k, line, "header %zu named %.*s is '%s', want '%s'", want,
                          (int)(colon - sp - 1), sp + 1, got ? got : "(absent)", colon + 2);
        } else if (strcmp(w, "no-header") == 0) {
            if (iw_request_header(r, a))
                case_fail(k, line, "header %s should be absent", a);
        } else if (strcmp(w, "header-count") == 0) {
            char name[128];
            size_t want = 0;
            if (sscanf(a, "%127s %zu", name, &want) != 2)
                case_fail(k, line, "header-count: want Name N");
            else if (header_count(r, name) != want)
                case_fail(k, line, "%zu %s headers, want %zu", header_count(r, name), name, want);
        } else if (strcmp(w, "body-len") == 0) {
            if (r->body_len != strtoul(a, NULL, 10))
                case_fail(k, line, "body is %zu bytes, want %s", r->body_len, a);
        } else if (strcmp(w, "body-has") == 0) {
            if (!r->body || !strstr(r->body, a))
                case_fail(k, line, "body lacks '%s'", a);
        } else if (strcmp(w, "body-lacks") == 0) {
            if (r->body && strstr(r->body, a))
                case_fail(k, line, "body holds '%s'", a);
        } else if (strcmp(w, "body-file") == 0) {
            size_t len;
            char *want = case_fixture(a, &len);
            if (!want)
                case_fail(k, line, "cannot read tests/fixtures/%s", a);
            else if (len != r->body_len || memcmp(want, r->body, len) != 0)
                case_fail(k, line, "body differs from %s", a);
            free(want);
        } else if (strcmp(w, "parses") == 0) {
            if (strcmp(a, "xml") == 0)
                view_xml(k, line, &v);
            else if (strcmp(a, "json") == 0)
                view_json(k, line, &v);
            else
                case_fail(k, line, "parses: xml or json");
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
                case_fail(k, line, "masked print lacks '%s':\n%.2000s", a, v.masked);
        } else if (strcmp(w, "masked-lacks") == 0) {
            if (strstr(v.masked, a))
                case_fail(k, line, "masked print holds '%s'", a);
        } else if (strcmp(w, "masked-starts") == 0) {
            if (strncmp(v.masked, a, strlen(a)) != 0)
                case_fail(k, line, "masked print does not start with '%s'", a);
        } else {
            case_fail(k, line, "unknown request check '%s'", w);
        }
    }
    for (size_t i = 0; i < n && !structure_done; i++)
        if (strcmp(c[i].word, "structure-except") == 0)
            case_fail(k, c[i].line, "structure-except without structure");
    if (n == 0)
        case_fail(k, s->line, "<%s> checks nothing", s->name);
    xmlFreeDoc(v.xml);
    cJSON_Delete(v.json);
    free(v.masked);
    case_checks_free(c, n);
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
static void expect_no_secret(case_file *k, int line, const char *what, const char *text,
                             const char *secret)
{
    if (!text || !*secret)
        return;
    char *forms[4] = {strdup(secret), escaped(secret, 0), escaped(secret, 1), escaped(secret, 2)};
    for (int f = 0; f < 4; f++) {
        if (strstr(text, forms[f]))
            case_fail(k, line, "%s holds the secret '%s'%s", what, secret, f ? " (escaped)" : "");
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
        case_fail(k, line, "%s holds the secret '%s' (XML-escaped)", what, secret);
}

/* Nor may the outcome's text hold any PIECE_MIN bytes in a row of the secret, as it is or
 * escaped, in the text as published or once its JSON and XML character escapes are decoded:
 * what is left of a secret cut short where more text follows it (its first bytes), any other
 * piece of it, which no masking of the whole message can recognise, or the secret echoed back
 * with every character escaped. */
#define PIECE_MIN 8
static void expect_no_secret_piece(case_file *k, int line, const char *what, const char *text,
                                   const char *secret)
{
    if (!text)
        return;
    char *forms[4] = {strdup(secret), escaped(secret, 0), escaped(secret, 1), escaped(secret, 2)};
    char *texts[2] = {strdup(text), iw_t_unescaped_once(text)};
    cr_assert_not_null(texts[1]);
    bool found = false;
    for (int t = 0; t < 2 && !found; t++) {
        for (int f = 0; f < 4 && !found; f++) {
            size_t n = strlen(forms[f]);
            for (size_t at = 0; at + PIECE_MIN <= n && !found; at++) {
                if ((found = memmem(texts[t], strlen(texts[t]), forms[f] + at, PIECE_MIN) != NULL))
                    case_fail(k, line, "%s holds %d bytes of the secret '%s' from its byte %zu%s%s",
                              what, PIECE_MIN, secret, at, f ? " (escaped)" : "",
                              t ? " once its character escapes are decoded" : "");
            }
        }
    }
    for (int f = 0; f < 4; f++)
        free(forms[f]);
    free(texts[0]);
    free(texts[1]);
}

/* case_config_text, the target's type noted as covered. */
static char *config_text(case_file *k, const case_section *s, char **tname)
{
    char *type = NULL;
    char *json = case_config_text(k, s, tname, &type);
    if (type)
        cover(type);
    free(type);
    return json;
}

/* <config-refused>: the loader refuses <config> with the errors checked; <secrets> are in
 * none of its error texts. */
static void run_config_refused(case_file *k, const case_section *cs, const case_section *s,
                               const case_section *sec)
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
        case_fail(k, s->line, "the config loader accepted <config>");
        iw_config_free(cfg);
        return;
    }
    size_t most = sizeof(errs.items) / sizeof(errs.items[0]);
    size_t shown = errs.count < most ? errs.count : most;
    size_t n;
    case_check *c = case_checks(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        bool exact = strcmp(c[i].word, "error") == 0;
        if (!exact && strcmp(c[i].word, "error-has") != 0) {
            case_fail(k, c[i].line, "unknown config-refused check '%s'", c[i].word);
            continue;
        }
        bool found = false;
        for (size_t e = 0; e < shown && !found; e++) {
            char text[sizeof(errs.items[0].path) + sizeof(errs.items[0].message) + 4];
            snprintf(text, sizeof(text), "%s: %s", errs.items[e].path, errs.items[e].message);
            found = exact ? strcmp(text, c[i].arg) == 0 : strstr(text, c[i].arg) != NULL;
        }
        if (!found)
            case_fail(k, c[i].line, "no error %s'%s' (first: %s: %s)", exact ? "" : "holding ",
                      c[i].arg, shown ? errs.items[0].path : "-",
                      shown ? errs.items[0].message : "-");
    }
    if (n == 0)
        case_fail(k, s->line, "<config-refused> checks nothing");
    case_checks_free(c, n);
    if (sec) {
        c = case_checks(sec, &n, false);
        for (size_t i = 0; i < n; i++) {
            k->checks++;
            for (size_t e = 0; e < shown; e++) {
                expect_no_secret(k, c[i].line, "an error path", errs.items[e].path, c[i].whole);
                expect_no_secret(k, c[i].line, "an error", errs.items[e].message, c[i].whole);
            }
        }
        case_checks_free(c, n);
    }
}

/* Builds the target conf from <config> through the config loader. */
static iw_config *load_config(case_file *k, const case_section *s, const iw_target_conf **tc)
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
        case_fail(k, s->line, "config refused: %s: %s", errs.count ? errs.items[0].path : "?",
                  errs.count ? errs.items[0].message : "?");
        free(tname);
        return NULL;
    }
    *tc = iw_config_target(cfg, tname);
    free(tname);
    if (!*tc) {
        case_fail(k, s->line, "config holds no target");
        iw_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Applies one edit line ("drop PATH" or "set PATH = JSON") to a parsed event; 0 or -1. */
static int edit_event(cJSON *root, case_check *c)
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
static iw_event *load_event(case_file *k, const case_section *s)
{
    const char *file = case_attr(s, "file");
    size_t len;
    char *json = file ? case_fixture(file, &len) : strdup(s->text);
    if (!json) {
        case_fail(k, s->line, "cannot read tests/fixtures/%s", file);
        return NULL;
    }
    if (!file)
        len = strlen(json);
    size_t n;
    case_check *c = file ? case_checks(s, &n, true) : NULL;
    if (c && n) {
        cJSON *root = cJSON_ParseWithLength(json, len);
        free(json);
        json = NULL;
        for (size_t i = 0; root && i < n; i++)
            if (edit_event(root, &c[i]) != 0) {
                case_fail(k, c[i].line, "cannot apply edit '%s %s' (drop PATH | set PATH = JSON)",
                          c[i].word, c[i].arg);
                cJSON_Delete(root);
                root = NULL;
            }
        json = root ? cJSON_PrintUnformatted(root) : NULL;
        len = json ? strlen(json) : 0;
        cJSON_Delete(root);
    }
    case_checks_free(c, c ? n : 0);
    if (!json)
        return NULL;
    iw_event *ev = NULL;
    char err[256] = "";
    if (iw_event_parse(json, len, &ev, err, sizeof(err)) != 0)
        case_fail(k, s->line, "event does not parse: %s", err);
    free(json);
    return ev;
}

static void run_validate(case_file *k, const case_section *s, const iw_target_ops *ops,
                         const iw_event *ev, const iw_target_conf *tc)
{
    char err[256] = "";
    int rc = iw_target_validate(ops, ev, tc, err, sizeof(err));
    size_t n;
    case_check *c = case_checks(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        if (strcmp(c[i].word, "ok") == 0) {
            if (rc != 0)
                case_fail(k, c[i].line, "validate refused: %s", err);
        } else if (strcmp(c[i].word, "error") == 0 || strcmp(c[i].word, "error-has") == 0) {
            bool exact = strcmp(c[i].word, "error") == 0;
            if (rc != IW_EINVAL)
                case_fail(k, c[i].line, "validate returned %d, want IW_EINVAL", rc);
            else if (exact ? strcmp(err, c[i].arg) != 0 : !strstr(err, c[i].arg))
                case_fail(k, c[i].line, "validate said '%s', want %s'%s'", err,
                          exact ? "" : "it to hold ", c[i].arg);
        } else
            case_fail(k, c[i].line, "unknown validate check '%s'", c[i].word);
    }
    if (n == 0)
        case_fail(k, s->line, "<validate> checks nothing");
    case_checks_free(c, n);
}

static void run_refuse(case_file *k, const case_section *s, int rc, const char *err,
                       const iw_request *r)
{
    size_t n;
    case_check *c = case_checks(s, &n, false);
    k->checks++;
    if (rc != IW_EINVAL)
        case_fail(k, s->line, "render returned %d, want IW_EINVAL", rc);
    if (r->url || r->body || r->n_headers)
        case_fail(k, s->line, "a refused render left a request behind");
    for (size_t i = 0; i < n; i++) {
        k->checks++;
        bool exact = strcmp(c[i].word, "error") == 0;
        if (!exact && strcmp(c[i].word, "error-has") != 0)
            case_fail(k, c[i].line, "unknown refuse check '%s'", c[i].word);
        else if (exact ? strcmp(err, c[i].arg) != 0 : !strstr(err, c[i].arg))
            case_fail(k, c[i].line, "render said '%s', want %s'%s'", err,
                      exact ? "" : "it to hold ", c[i].arg);
    }
    case_checks_free(c, n);
}

static void run_refresh_token(case_file *k, const case_section *rs, const case_section *ts,
                              const iw_target_ops *ops)
{
    if (!rs || !ts || !ops->parse_refresh) {
        case_fail(k, (rs ? rs : ts)->line,
                  "<refresh-reply> and <refresh-token> go together, for an adapter with a refresh");
        return;
    }
    case_reply rp;
    if (case_reply_parse(k, rs, &rp) != 0) {
        case_reply_clear(&rp);
        return;
    }
    size_t n, bufsize = 128;
    case_check *c = case_checks(ts, &n, false);
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
                case_fail(k, c[i].line, "parse_refresh gave %d '%s', want '%s'", rc, tok, c[i].arg);
        } else if (strcmp(c[i].word, "refused") == 0) {
            checked = true;
            if (rc != IW_EINVAL)
                case_fail(k, c[i].line, "parse_refresh gave %d '%s', want IW_EINVAL", rc, tok);
        } else if (strcmp(c[i].word, "bufsize") != 0)
            case_fail(k, c[i].line, "unknown refresh-token check '%s'", c[i].word);
    }
    if (!checked)
        case_fail(k, ts->line, "<refresh-token> needs token T or refused");
    free(tok);
    case_checks_free(c, n);
    case_reply_clear(&rp);
}

/* Runs the parsed case k. */
static void case_run(case_file *k)
{
    case_section *info = case_find(k, "info"), *cs = case_find(k, "config"),
                 *es = case_find(k, "event");
    case_section *req_s = case_find(k, "request"), *ref_s = case_find(k, "refuse"),
                 *val_s = case_find(k, "validate");
    case_section *rep_s = case_find(k, "reply"), *out_s = case_find(k, "outcome"),
                 *sec_s = case_find(k, "secrets");
    case_section *rr_s = case_find(k, "refresh-request"), *st_s = case_find(k, "state");
    case_section *rrep_s = case_find(k, "refresh-reply"), *rtok_s = case_find(k, "refresh-token");
    if (!info || !info->text[strspn(info->text, " \n")]) {
        case_fail(k, 1, "no <info> saying what the case shows");
        return;
    }
    if (!cs) {
        case_fail(k, 1, "no <config>");
        return;
    }
    if ((req_s || ref_s || val_s) && !es) {
        case_fail(k, 1, "<request>, <refuse> and <validate> need an <event>");
        return;
    }
    if (req_s && ref_s) {
        case_fail(k, ref_s->line, "<request> and <refuse> exclude each other");
        return;
    }
    if (!rep_s != !out_s) {
        case_fail(k, (rep_s ? rep_s : out_s)->line, "<reply> and <outcome> go together");
        return;
    }
    case_section *cr_s = case_find(k, "config-refused");
    if (cr_s) {
        if (es || req_s || ref_s || val_s || rep_s || rr_s || rrep_s || rtok_s || st_s)
            case_fail(k, cr_s->line,
                      "<config-refused> goes with <info>, <config> and <secrets> only");
        else
            run_config_refused(k, cs, cr_s, sec_s);
        return;
    }
    if (!req_s && !ref_s && !val_s && !out_s && !rr_s && !rrep_s) {
        case_fail(k, 1, "the case checks nothing");
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
        case_check *c = case_checks(st_s, &n, false);
        for (size_t i = 0; i < n; i++)
            if (strcmp(c[i].word, "token") != 0 || !state || !ops->store_refresh)
                case_fail(k, c[i].line, "<state>: only token T, for an adapter with a refresh");
            else
                cr_assert_eq(ops->store_refresh(state, c[i].arg), 0);
        case_checks_free(c, n);
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
            case_fail(k, req_s->line, "render refused: %s", err);
        else if (!req.body)
            case_fail(k, req_s->line, "render left no body");
        else {
            check_request(k, req_s, &req);
            masked = iw_cli_request_text(tc, &req);
        }
    }
    if (rr_s) {
        char err[256] = "";
        if (!ops->render_refresh)
            case_fail(k, rr_s->line, "%s has no token refresh", ops->type);
        else if (ops->render_refresh(tc, &rreq, err, sizeof(err)) != 0)
            case_fail(k, rr_s->line, "render_refresh refused: %s", err);
        else {
            check_request(k, rr_s, &rreq);
            rmasked = iw_cli_request_text(tc, &rreq);
        }
    }
    if (rrep_s || rtok_s)
        run_refresh_token(k, rrep_s, rtok_s, ops);
    if (rep_s) {
        case_reply rp;
        if (case_reply_parse(k, rep_s, &rp) == 0) {
            iw_secrets *reg = iw_secrets_for_target(tc); /* as the dispatcher publishes it */
            cr_assert_not_null(reg);
            iw_secrets_classify(reg, ops, tc, &rp.resp, &o);
            iw_secrets_mask_outcome(reg, &o);
            iw_secrets_free(reg);
            case_check_outcome(k, out_s, &o);
        }
        case_reply_clear(&rp);
    }
    if (sec_s) {
        /* the outcome message as the dispatcher publishes it: masked by the instance's registry */
        char published[sizeof(o.message)], code[sizeof(o.code)], ref[sizeof(o.target_ref)];
        memcpy(published, o.message, sizeof(published));
        memcpy(code, o.code, sizeof(code));
        memcpy(ref, o.target_ref, sizeof(ref));
        iw_secrets *reg = iw_secrets_for_target(tc);
        cr_assert_not_null(reg);
        for (size_t i = 0; i < req.n_secrets; i++)
            cr_assert_eq(iw_secrets_add(reg, req.secrets[i]), 0);
        iw_secrets_mask_inplace(reg, published, sizeof(published));
        iw_secrets_mask_inplace(reg, code, sizeof(code));
        iw_secrets_mask_inplace(reg, ref, sizeof(ref));
        iw_secrets_free(reg);
        size_t n;
        case_check *c = case_checks(sec_s, &n, false);
        for (size_t i = 0; i < n; i++) {
            const char *full = c[i].whole;
            k->checks++;
            expect_no_secret(k, c[i].line, "the masked request", masked, full);
            expect_no_secret(k, c[i].line, "the masked refresh request", rmasked, full);
            if (rep_s) {
                expect_no_secret(k, c[i].line, "the outcome message", published, full);
                expect_no_secret(k, c[i].line, "the outcome code", code, full);
                expect_no_secret_piece(k, c[i].line, "the outcome message", published, full);
                expect_no_secret_piece(k, c[i].line, "the outcome code", code, full);
                expect_no_secret(k, c[i].line, "the outcome target_ref", ref, full);
                expect_no_secret_piece(k, c[i].line, "the outcome target_ref", ref, full);
            }
        }
        if (n == 0)
            case_fail(k, sec_s->line, "<secrets> lists none");
        case_checks_free(c, n);
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

/* Runs one case read by case_each. */
static void run_one(case_file *k, int read_rc, void *arg)
{
    (void)arg;
    if (read_rc == 0)
        case_run(k);
    if (k->failures == 0 && k->checks == 0)
        case_fail(k, 0, "ran no check");
}

/* Runs every case of one adapter folder; returns how many ran. */
static size_t run_folder(const char *adapter)
{
    size_t n = case_each(adapter, report, run_one, NULL, NULL);
    cr_expect_gt(n, 0, "tests/cases/%s holds no .case file", adapter);
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
    char **dirs = case_list_dir(IW_CASES_DIR, NULL, &n);
    cr_assert(dirs && n > 0, "no case folders in %s", IW_CASES_DIR);
    for (size_t i = 0; i < n; i++)
        total += run_folder(dirs[i]);
    case_list_free(dirs, n);
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

/* Runs one inline case quietly (no report); returns how many of its checks failed. */
static int failures_of(const char *text)
{
    char *copy = strdup(text);
    case_file k = {.file = "(inline)"};
    if (case_parse(&k, copy) == 0)
        case_run(&k);
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
        "<info>\nx\n</info>\n<bogus>\n</bogus>\n",                  /* unknown case_section */
        "<info>\nx\n</info>\n<config>\n{}\n",                       /* never closed */
        "stray text\n",                                             /* outside a case_section */
        "<config>\n{\"type\":\"centra_soap\"}\n</config>\n" MINIMAL /* no info */
        "<validate>\nok\n</validate>\n",
        SOAP_HEAD MINIMAL "<validate>\nfine\n</validate>\n",   /* unknown case_check */
        SOAP_HEAD MINIMAL "<request>\nurl-is x\n</request>\n", /* unknown request case_check */
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
                     "<refuse>\nerror-has invoice.store (element store):\n</refuse>\n",
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
    cr_expect_gt(
        failures_of(SOAP_HEAD "<config-refused>\nerror-has bogus_key\n</config-refused>\n"), 0,
        "an accepted config passes");
    cr_expect_gt(
        failures_of(BAD_CONFIG "<config-refused>\nerror-has other_key\n</config-refused>\n"), 0,
        "an error nobody gave passes");
    cr_expect_gt(failures_of(BAD_CONFIG "<config-refused>\nerror-has bogus_key\n</config-refused>\n"
                                        "<secrets>\nbogus_key\n</secrets>\n"),
                 0, "an error text holding a listed secret passes");
    cr_expect_gt(failures_of(BAD_CONFIG MINIMAL
                             "<config-refused>\nerror-has bogus_key\n</config-refused>\n"),
                 0, "<config-refused> beside an event passes");
#undef BAD_CONFIG
}
