/* schema.c: the contract checker: walks XML or JSON against field tables and checks formats. */
#include "schema.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#define MAX_BODY_PARSE ((size_t)16 * 1024 * 1024)

void iw_sim_err(iw_sim_errors *e, const char *fmt, ...)
{
    e->total++;
    if (e->n >= IW_SIM_MAX_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg[e->n], sizeof(e->msg[e->n]), fmt, ap);
    va_end(ap);
    e->n++;
}

/* ---- value formats ---- */

/* An xsd:decimal read without limits: its sign, and its digits without leading zeros (int)
 * and trailing ones (frac). */
typedef struct sim_dec {
    int sign; /* -1, 0 or 1 */
    const char *ip, *fp;
    size_t il, fl;
} sim_dec;

static bool dec_read(const char *s, sim_dec *d)
{
    if (!s)
        return false;
    d->sign = 1;
    if (*s == '+' || *s == '-')
        d->sign = *s++ == '-' ? -1 : 1;
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    d->ip = s;
    d->il = (size_t)(p - s);
    d->fp = p;
    d->fl = 0;
    if (*p == '.') {
        d->fp = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        d->fl = (size_t)(p - d->fp);
    }
    if (*p || d->il + d->fl == 0)
        return false;
    while (d->il && *d->ip == '0')
        d->ip++, d->il--;
    while (d->fl && d->fp[d->fl - 1] == '0')
        d->fl--;
    if (!d->il && !d->fl)
        d->sign = 0;
    return true;
}

bool iw_sim_is_decimal(const char *s)
{
    sim_dec d;
    return dec_read(s, &d);
}

bool iw_sim_is_int(const char *s)
{
    if (!s || !*s)
        return false;
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

bool iw_sim_is_xsd_bool(const char *s)
{
    return s && (!strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "1") || !strcmp(s, "0"));
}

bool iw_sim_is_guid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool iw_sim_is_email(const char *s)
{
    if (!s)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return false;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || *p == ',' || *p == ';' || *p == '<' || *p == '>')
            return false;
    const char *dom = at + 1;
    const char *dot = strrchr(dom, '.');
    if (!dot || dom[0] == '.' || dot[1] == '\0' || strstr(dom, ".."))
        return false;
    return true;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static long days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool valid_ymd(int y, int m, int d, long *days)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    int lim = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        lim = 29;
    if (d > lim)
        return false;
    if (days)
        *days = days_from_civil(y, m, d);
    return true;
}

static bool ymd_prefix(const char *s, long *days)
{
    int y, m, d;
    if (strlen(s) < 10 || s[4] != '-' || s[7] != '-')
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
        return false;
    return valid_ymd(y, m, d, days);
}

bool iw_sim_is_ymd(const char *s, long *days)
{
    return s && strlen(s) == 10 && ymd_prefix(s, days);
}

bool iw_sim_is_iso_datetime(const char *s)
{
    int h, mi, sec;
    if (!s || !ymd_prefix(s, NULL) || s[10] != 'T')
        return false;
    const char *p = s + 11;
    if (strlen(p) < 5 || !digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi))
        return false;
    if (h > 23 || mi > 59)
        return false;
    p += 5;
    if (*p == ':') {
        if (!digits(p + 1, 2, &sec) || sec > 60)
            return false;
        p += 3;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return false;
            while (isdigit((unsigned char)*p))
                p++;
        }
    }
    if (*p == '\0' || (p[0] == 'Z' && p[1] == '\0'))
        return true;
    if (*p != '+' && *p != '-')
        return false;
    p++;
    if (!digits(p, 2, &h) || h > 23)
        return false;
    p += 2;
    if (*p == ':')
        p++;
    return digits(p, 2, &mi) && mi <= 59 && p[2] == '\0';
}

bool iw_sim_is_dmy(const char *s, long *days)
{
    int y, m, d;
    if (!s || strlen(s) != 10 || s[2] != '/' || s[5] != '/')
        return false;
    if (!digits(s, 2, &d) || !digits(s + 3, 2, &m) || !digits(s + 6, 4, &y))
        return false;
    return valid_ymd(y, m, d, days);
}

/* Reads 1 or 2 digits into *v; returns the count read. */
static int one_or_two(const char *s, int *v)
{
    if (!isdigit((unsigned char)s[0]))
        return 0;
    if (isdigit((unsigned char)s[1])) {
        *v = (s[0] - '0') * 10 + (s[1] - '0');
        return 2;
    }
    *v = s[0] - '0';
    return 1;
}

bool iw_sim_is_mdy(const char *s, long *days)
{
    int y, m, d, n;
    if (!s || !(n = one_or_two(s, &m)) || s[n] != '/')
        return false;
    s += n + 1;
    if (!(n = one_or_two(s, &d)) || s[n] != '/')
        return false;
    s += n + 1;
    if (!digits(s, 4, &y))
        return false;
    s += 4;
    if (*s) { /* " 12:00:00 AM" */
        int h, mi, se;
        if (*s++ != ' ' || !(n = one_or_two(s, &h)) || h < 1 || h > 12 || s[n] != ':')
            return false;
        s += n + 1;
        if (!digits(s, 2, &mi) || s[2] != ':' || !digits(s + 3, 2, &se) || mi > 59 || se > 59)
            return false;
        s += 5;
        if (strcmp(s, " AM") != 0 && strcmp(s, " PM") != 0)
            return false;
    }
    return valid_ymd(y, m, d, days);
}

int iw_sim_dec_cmp(const char *a, const char *b)
{
    sim_dec x, y;
    if (!dec_read(a, &x) || !dec_read(b, &y))
        return 0;
    if (x.sign != y.sign)
        return x.sign < y.sign ? -1 : 1;
    int mag = x.il != y.il ? (x.il < y.il ? -1 : 1) : memcmp(x.ip, y.ip, x.il);
    for (size_t i = 0; !mag && i < x.fl + y.fl; i++) {
        char cx = i < x.fl ? x.fp[i] : '0', cy = i < y.fl ? y.fp[i] : '0';
        mag = cx == cy ? 0 : cx < cy ? -1 : 1;
    }
    mag = mag < 0 ? -1 : mag > 0;
    return x.sign < 0 ? -mag : mag;
}

int iw_sim_dec_sign(const char *s)
{
    sim_dec d;
    return dec_read(s, &d) ? d.sign : 0;
}

/* ---- XML ---- */

xmlNodePtr iw_sim_xml_first(xmlNodePtr n)
{
    if (!n)
        return NULL;
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return c;
    return NULL;
}

xmlNodePtr iw_sim_xml_child(xmlNodePtr n, const char *name)
{
    if (!n)
        return NULL;
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

xmlDocPtr iw_sim_xml_parse(const char *body, size_t len, char *err, size_t errlen)
{
    if (len > INT_MAX) {
        snprintf(err, errlen, "the body is too large");
        return NULL;
    }
    xmlResetLastError();
    xmlDocPtr doc = xmlReadMemory(body, (int)len, NULL, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        snprintf(err, errlen, "not well-formed XML: %s", e && e->message ? e->message : "?");
        size_t n = strlen(err);
        while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        return NULL;
    }
    if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
        xmlFreeDoc(doc);
        snprintf(err, errlen, "a DTD (or no root element): not a request");
        return NULL;
    }
    return doc;
}

/* The element's text with XML white space around it removed (the value a schema type reads;
 * whiteSpace collapse): *s its start in the malloc'd content returned (xmlFree it; NULL when
 * none), *l its length. */
static xmlChar *text_span(xmlNodePtr n, const char **s, size_t *l)
{
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    *s = t ? (const char *)t : "";
    while (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n')
        (*s)++;
    *l = strlen(*s);
    while (*l && ((*s)[*l - 1] == ' ' || (*s)[*l - 1] == '\t' || (*s)[*l - 1] == '\r' ||
                  (*s)[*l - 1] == '\n'))
        (*l)--;
    return t;
}

char *iw_sim_xml_value(xmlNodePtr n)
{
    const char *s;
    size_t l;
    xmlChar *t = text_span(n, &s, &l);
    char *v = strndup(s, l);
    xmlFree(t);
    return v;
}

char *iw_sim_xml_text(xmlNodePtr n, char *buf, size_t len)
{
    if (!len)
        return buf;
    buf[0] = '\0';
    const char *s;
    size_t l;
    xmlChar *t = text_span(n, &s, &l);
    if (!t)
        return buf;
    if (l >= len) {
        l = len - 1;
        while (l && ((unsigned char)s[l] & 0xC0) == 0x80)
            l--;
    }
    memcpy(buf, s, l);
    buf[l] = '\0';
    xmlFree(t);
    return buf;
}

char *iw_sim_xml_child_text(xmlNodePtr n, const char *name, char *buf, size_t len)
{
    return iw_sim_xml_text(iw_sim_xml_child(n, name), buf, len);
}

const char *iw_sim_xml_ns(xmlNodePtr n)
{
    return n && n->ns && n->ns->href ? (const char *)n->ns->href : "";
}

static int find_field(const iw_sim_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Checks one leaf value; `where` names it in messages. */
static void check_value(const iw_sim_vctx *v, const iw_sim_field *f, const char *val,
                        const char *where)
{
    if (!*val) {
        if (f->flags & IW_SIM_REQ)
            iw_sim_err(v->errs, "%s: required value is empty", where);
        return;
    }
    bool ok = true;
    const char *want = "";
    switch (f->type) {
    case IW_SIM_DEC:
        ok = iw_sim_is_decimal(val);
        want = "a plain decimal";
        break;
    case IW_SIM_INT:
        ok = iw_sim_is_int(val);
        want = "an integer";
        break;
    case IW_SIM_BOOL:
        ok = iw_sim_is_xsd_bool(val);
        want = "a boolean (true/false)";
        break;
    case IW_SIM_GUID:
        ok = iw_sim_is_guid(val);
        want = "a GUID";
        break;
    case IW_SIM_DATE:
        if (v->dates == IW_SIM_DATE_DMY) {
            ok = iw_sim_is_dmy(val, NULL);
            want = "a date dd/mm/yyyy";
        } else if (v->dates == IW_SIM_DATE_MDY) {
            ok = iw_sim_is_mdy(val, NULL);
            want = "a date MM/DD/YYYY";
        } else if (v->dates == IW_SIM_DATE_YMD_OR_MDY) {
            ok = iw_sim_is_ymd(val, NULL) || iw_sim_is_mdy(val, NULL);
            want = "a date YYYY-MM-DD or MM/DD/YYYY";
        } else if (v->dates == IW_SIM_DATE_ISO_ANY) {
            ok = iw_sim_is_ymd(val, NULL) || iw_sim_is_iso_datetime(val);
            want = "an ISO 8601 date or date-time";
        } else {
            ok = iw_sim_is_ymd(val, NULL);
            want = "a date YYYY-MM-DD";
        }
        break;
    default: break;
    }
    if (!ok)
        iw_sim_err(v->errs, "%s: '%.40s' is not %s", where, val, want);
}

static bool has_element_child(xmlNodePtr n)
{
    return iw_sim_xml_first(n) != NULL;
}

static bool ns_ok(const iw_sim_vctx *v, xmlNodePtr n, const char *where)
{
    const char *ns = iw_sim_xml_ns(n);
    const char *want = v->ns ? v->ns : "";
    if (strcmp(ns, want) == 0)
        return true;
    iw_sim_err(v->errs, "%s: element is in namespace '%s', expected '%s'", where, ns, want);
    return false;
}

static void check_xml_node(const iw_sim_vctx *v, xmlNodePtr c, const iw_sim_field *f,
                           const char *where)
{
    switch (f->type) {
    case IW_SIM_OBJ: iw_sim_check_xml(v, c, f->sub, where); return;
    case IW_SIM_ARR: {
        int k = 0;
        for (xmlNodePtr it = c->children; it; it = it->next) {
            if (it->type != XML_ELEMENT_NODE)
                continue;
            char ip[512];
            snprintf(ip, sizeof(ip), "%s/%s[%d]", where, (const char *)it->name, ++k);
            if (!ns_ok(v, it, ip))
                continue;
            if (strcmp((const char *)it->name, f->item) != 0) {
                iw_sim_err(v->errs, "%s: unknown element (expected %s)", ip, f->item);
                continue;
            }
            iw_sim_check_xml(v, it, f->sub, ip);
        }
        if (k == 0 && (f->flags & IW_SIM_REQ))
            iw_sim_err(v->errs, "%s: needs at least one %s", where, f->item);
        return;
    }
    default:
        if (has_element_child(c)) {
            iw_sim_err(v->errs, "%s: expected a value, found child elements", where);
            return;
        }
        char *whole = iw_sim_xml_value(c); /* a format judges the whole value, never a cut */
        check_value(v, f, whole ? whole : "", where);
        free(whole);
    }
}

void iw_sim_check_xml(const iw_sim_vctx *v, xmlNodePtr parent, const iw_sim_schema *s,
                      const char *path)
{
    unsigned char seen[128] = {0};
    int last = -1;
    char where[512];
    for (xmlNodePtr c = parent->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE) {
            char t[8];
            if (!xmlIsBlankNode(c) && *iw_sim_xml_text(c, t, sizeof(t)))
                iw_sim_err(v->errs, "%s: unexpected text between elements", path);
            continue;
        }
        if (c->type != XML_ELEMENT_NODE)
            continue;
        snprintf(where, sizeof(where), "%s/%s", path, (const char *)c->name);
        if (!ns_ok(v, c, where))
            continue;
        int i = find_field(s, (const char *)c->name);
        if (i < 0) {
            iw_sim_err(v->errs, "%s: unknown element", where);
            continue;
        }
        const iw_sim_field *f = &s->fields[i];
        if (seen[i] && !(f->flags & IW_SIM_REP))
            iw_sim_err(v->errs, "%s: appears more than once", where);
        else if (s->ordered && i < last)
            iw_sim_err(v->errs, "%s: out of order (must come before %s)", where,
                       s->fields[last].name);
        if (i < (int)sizeof(seen) && seen[i] < 255)
            seen[i]++;
        if (i > last)
            last = i;
        check_xml_node(v, c, f, where);
    }
    for (size_t i = 0; i < s->n && i < sizeof(seen); i++)
        if ((s->fields[i].flags & IW_SIM_REQ) && !seen[i])
            iw_sim_err(v->errs, "%s/%s: required element missing", path, s->fields[i].name);
}

/* ---- JSON ---- */

static int jnums_push(iw_sim_jnums *nums, const char *s, size_t len)
{
    if (nums->n == nums->cap) {
        size_t cap = nums->cap ? nums->cap * 2 : 64;
        char(*raw)[48] = realloc(nums->raw, cap * sizeof(*raw));
        if (!raw)
            return -1;
        nums->raw = raw;
        const cJSON **node = realloc(nums->node, cap * sizeof(*node));
        if (!node)
            return -1;
        nums->node = node;
        nums->cap = cap;
    }
    if (len >= sizeof(nums->raw[0]))
        len = sizeof(nums->raw[0]) - 1;
    memcpy(nums->raw[nums->n], s, len);
    nums->raw[nums->n][len] = '\0';
    nums->node[nums->n] = NULL;
    nums->n++;
    return 0;
}

/* Collects number tokens in document order (strings skipped, escapes honoured). */
static int lex_numbers(const char *s, size_t len, iw_sim_jnums *nums)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (ch == '-' || isdigit((unsigned char)ch)) {
            size_t j = i;
            while (j < len && (isdigit((unsigned char)s[j]) || (s[j] && strchr("+-.eE", s[j]))))
                j++;
            if (jnums_push(nums, s + i, j - i) != 0)
                return -1;
            i = j - 1;
        }
    }
    return 0;
}

static void bind_numbers(const cJSON *n, iw_sim_jnums *nums, size_t *k)
{
    for (; n; n = n->next) {
        if (cJSON_IsNumber(n) && *k < nums->n)
            nums->node[(*k)++] = n;
        if (n->child)
            bind_numbers(n->child, nums, k);
    }
}

cJSON *iw_sim_json_parse(const char *buf, size_t len, iw_sim_jnums *nums)
{
    memset(nums, 0, sizeof(*nums));
    if (!buf || len == 0 || len > MAX_BODY_PARSE)
        return NULL;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!doc)
        return NULL;
    while (end && (size_t)(end - buf) < len && isspace((unsigned char)*end))
        end++;
    if (end && (size_t)(end - buf) < len && *end != '\0') {
        cJSON_Delete(doc);
        return NULL;
    }
    if (lex_numbers(buf, len, nums) != 0) {
        cJSON_Delete(doc);
        iw_sim_jnums_free(nums);
        return NULL;
    }
    size_t k = 0;
    bind_numbers(doc, nums, &k);
    return doc;
}

void iw_sim_jnums_free(iw_sim_jnums *nums)
{
    free(nums->node);
    free(nums->raw);
    memset(nums, 0, sizeof(*nums));
}

const char *iw_sim_jnum_raw(const iw_sim_jnums *nums, const cJSON *node)
{
    if (!nums)
        return NULL;
    for (size_t i = 0; i < nums->n; i++)
        if (nums->node[i] == node)
            return nums->raw[i];
    return NULL;
}

static void check_json_member(const iw_sim_vctx *v, const cJSON *m, const iw_sim_field *f,
                              const char *where)
{
    if (cJSON_IsNull(m)) {
        if (f->flags & IW_SIM_REQ)
            iw_sim_err(v->errs, "%s: required value is null", where);
        return;
    }
    switch (f->type) {
    case IW_SIM_OBJ:
        if (!cJSON_IsObject(m))
            iw_sim_err(v->errs, "%s: expected an object", where);
        else
            iw_sim_check_json(v, m, f->sub, where);
        return;
    case IW_SIM_ARR: {
        if (!cJSON_IsArray(m)) {
            iw_sim_err(v->errs, "%s: expected an array", where);
            return;
        }
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, m)
        {
            char ip[512];
            snprintf(ip, sizeof(ip), "%s[%d]", where, k++);
            if (!cJSON_IsObject(it))
                iw_sim_err(v->errs, "%s: expected an object", ip);
            else
                iw_sim_check_json(v, it, f->sub, ip);
        }
        if (k == 0 && (f->flags & IW_SIM_REQ))
            iw_sim_err(v->errs, "%s: needs at least one element", where);
        return;
    }
    case IW_SIM_BOOL:
        if (!cJSON_IsBool(m))
            iw_sim_err(v->errs, "%s: expected true or false", where);
        return;
    case IW_SIM_DEC:
    case IW_SIM_INT:
        if (cJSON_IsNumber(m)) {
            const char *raw = iw_sim_jnum_raw(v->nums, m);
            check_value(v, f, raw ? raw : "?", where);
        } else if (cJSON_IsString(m) && f->type == IW_SIM_DEC) {
            check_value(v, f, m->valuestring, where);
        } else {
            iw_sim_err(v->errs, "%s: expected a number", where);
        }
        return;
    default:
        if (!cJSON_IsString(m))
            iw_sim_err(v->errs, "%s: expected a string", where);
        else
            check_value(v, f, m->valuestring, where);
    }
}

void iw_sim_check_json(const iw_sim_vctx *v, const cJSON *obj, const iw_sim_schema *s,
                       const char *path)
{
    unsigned char seen[128] = {0};
    char where[512];
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        const char *key = m->string ? m->string : "";
        snprintf(where, sizeof(where), "%s%s%s", path, *path ? "." : "", key);
        int i = find_field(s, key);
        if (i < 0) {
            iw_sim_err(v->errs, "%s: unknown member", where);
            continue;
        }
        if (i < (int)sizeof(seen)) {
            if (seen[i]) {
                iw_sim_err(v->errs, "%s: appears more than once", where);
                continue;
            }
            seen[i] = 1;
        }
        check_json_member(v, m, &s->fields[i], where);
    }
    for (size_t i = 0; i < s->n && i < sizeof(seen); i++)
        if ((s->fields[i].flags & IW_SIM_REQ) && !seen[i])
            iw_sim_err(v->errs, "%s%s%s: required member missing", path, *path ? "." : "",
                       s->fields[i].name);
}
