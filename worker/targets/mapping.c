/* mapping.c: the mapping engine: the event model's fields by path, reading a mapping from
 * JSON with every error named by its path, and writing a body as XML or JSON. */
#include "mapping.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "decimal.h"
#include "status.h"
#include "text.h"
#include "xml.h"

/* ------------------------------------------------------------------ the model's fields */

/* Where a field's struct is: the event, the invoice, or the current element of a list. */
enum { SC_EVENT, SC_INVOICE, SC_LINE, SC_EXTRA, SC_CUSTOM, SC_COUNT };
enum { FT_STR, FT_AMOUNT, FT_FLAG, FT_INT64, FT_LIST };

struct iw_map_field {
    const char *path;
    unsigned char scope, type;
    size_t off;
    size_t count_off, elem_size; /* FT_LIST */
    unsigned char elem_scope;    /* FT_LIST */
};

/* Macro arguments are member designators, which cannot be parenthesised. */
/* clang-format off */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define EV_S(m) {#m, SC_EVENT, FT_STR, offsetof(iw_event, m), 0, 0, 0}
#define INV(t, m) {"invoice." #m, SC_INVOICE, t, offsetof(iw_invoice, m), 0, 0, 0}
#define LINE(t, m) {"invoice.lines[]." #m, SC_LINE, t, offsetof(iw_line, m), 0, 0, 0}
#define XTRA(t, m) {"invoice.extra_charges[]." #m, SC_EXTRA, t, offsetof(iw_extra_charge, m), 0, 0, 0}
#define CUST(m) {"invoice.custom_fields[]." #m, SC_CUSTOM, FT_STR, offsetof(iw_custom_field, m), 0, 0, 0}
#define LIST(m, n, T, sc) \
    {"invoice." #m, SC_INVOICE, FT_LIST, offsetof(iw_invoice, m), offsetof(iw_invoice, n), sizeof(T), sc}
#define ADDR(a) \
    INV(FT_STR, a.company), INV(FT_STR, a.attn), INV(FT_STR, a.first_name), \
    INV(FT_STR, a.last_name), INV(FT_STR, a.line1), INV(FT_STR, a.line2), INV(FT_STR, a.line3), \
    INV(FT_STR, a.city), INV(FT_STR, a.state), INV(FT_STR, a.postal_code), \
    INV(FT_STR, a.country), INV(FT_STR, a.email), INV(FT_STR, a.phone), INV(FT_STR, a.fax), \
    INV(FT_FLAG, a.is_default)

static const iw_map_field FIELDS[] = {
    EV_S(schema), EV_S(event_id), EV_S(type), EV_S(occurred_at), EV_S(source), EV_S(tenant),
    {"version", SC_EVENT, FT_INT64, offsetof(iw_event, version), 0, 0, 0},
    INV(FT_STR, id), INV(FT_STR, number), INV(FT_STR, number_ext), INV(FT_STR, status),
    INV(FT_STR, document_type), INV(FT_STR, type), INV(FT_STR, store), INV(FT_STR, currency),
    INV(FT_STR, base_currency), INV(FT_AMOUNT, currency_rate), INV(FT_STR, issue_date),
    INV(FT_STR, due_date), INV(FT_STR, order_date), INV(FT_STR, ship_date), INV(FT_STR, po_date),
    INV(FT_STR, paid_at), INV(FT_STR, terms_code), INV(FT_STR, terms_description),
    INV(FT_STR, shipping_terms), INV(FT_STR, ship_via), INV(FT_STR, po_number),
    INV(FT_STR, so_number), INV(FT_STR, title), INV(FT_STR, description),
    INV(FT_STR, note_public), INV(FT_STR, note_internal), INV(FT_AMOUNT, subtotal),
    INV(FT_AMOUNT, tax_total), INV(FT_AMOUNT, discount_total), INV(FT_AMOUNT, shipping_total),
    INV(FT_AMOUNT, total), INV(FT_AMOUNT, amount_paid), INV(FT_AMOUNT, amount_due),
    INV(FT_AMOUNT, retention_pct),
    INV(FT_STR, target_refs.centra_id), INV(FT_STR, target_refs.midnight_guid),
    INV(FT_STR, target_refs.midnight_invoice_id), INV(FT_STR, target_refs.ebiz_internal_id),
    INV(FT_STR, target_refs.invoicexpress_id), INV(FT_STR, target_refs.midnight_customer_id),
    INV(FT_STR, target_refs.midnight_contact_id),
    INV(FT_STR, customer.id), INV(FT_STR, customer.contact_id), INV(FT_STR, customer.name),
    INV(FT_STR, customer.email), INV(FT_STR, customer.phone), INV(FT_STR, customer.phone_ext),
    INV(FT_STR, customer.fax), INV(FT_STR, customer.website), INV(FT_STR, customer.fiscal_id),
    INV(FT_STR, customer.ec_vat_no), INV(FT_STR, customer.company_reg_id),
    INV(FT_STR, customer.notes),
    ADDR(billing_address), ADDR(shipping_address),
    INV(FT_STR, refs.account_id), INV(FT_STR, refs.buyer_id), INV(FT_STR, refs.order_id),
    INV(FT_STR, refs.shipment_id), INV(FT_STR, refs.refund_id), INV(FT_STR, refs.division_id),
    INV(FT_STR, refs.location_id), INV(FT_STR, refs.sales_rep_id), INV(FT_STR, refs.user_name),
    INV(FT_FLAG, flags.locked), INV(FT_FLAG, flags.notify_customer),
    INV(FT_FLAG, flags.email_invoice), INV(FT_FLAG, flags.print_invoice),
    INV(FT_FLAG, flags.display_item),
    LIST(lines, n_lines, iw_line, SC_LINE),
    LIST(extra_charges, n_extra_charges, iw_extra_charge, SC_EXTRA),
    LIST(custom_fields, n_custom_fields, iw_custom_field, SC_CUSTOM),
    LINE(FT_STR, line_no), LINE(FT_STR, line_id), LINE(FT_STR, sku), LINE(FT_STR, item_id),
    LINE(FT_STR, product_id), LINE(FT_STR, variation_id), LINE(FT_STR, size_id),
    LINE(FT_STR, name), LINE(FT_STR, description), LINE(FT_STR, unit),
    LINE(FT_AMOUNT, quantity), LINE(FT_AMOUNT, unit_price), LINE(FT_AMOUNT, gross_price),
    LINE(FT_AMOUNT, discount_pct), LINE(FT_AMOUNT, discount_amount), LINE(FT_FLAG, taxable),
    LINE(FT_AMOUNT, tax_rate), LINE(FT_STR, tax_name), LINE(FT_AMOUNT, tax_amount),
    LINE(FT_AMOUNT, line_subtotal), LINE(FT_AMOUNT, line_total), LINE(FT_STR, line_type),
    LINE(FT_STR, order_id), LINE(FT_STR, target_refs.midnight_line_id),
    LINE(FT_STR, target_refs.midnight_line_guid), LINE(FT_STR, target_refs.midnight_item_id),
    LINE(FT_STR, target_refs.midnight_order_id),
    XTRA(FT_STR, key), XTRA(FT_STR, id), XTRA(FT_STR, description), XTRA(FT_AMOUNT, amount),
    CUST(name), CUST(value),
};
/* NOLINTEND(bugprone-macro-parentheses) */
/* clang-format on */

#define N_FIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

const iw_map_field *iw_map_field_find(const char *path)
{
    if (!path)
        return NULL;
    static const char *const short_forms[] = {"lines", "extra_charges", "custom_fields"};
    char full[160];
    for (size_t i = 0; i < sizeof(short_forms) / sizeof(short_forms[0]); i++) {
        size_t n = strlen(short_forms[i]);
        if (strncmp(path, short_forms[i], n) == 0 && (path[n] == '\0' || path[n] == '[')) {
            snprintf(full, sizeof(full), "invoice.%s", path);
            path = full;
            break;
        }
    }
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strcmp(FIELDS[i].path, path) == 0)
            return &FIELDS[i];
    return NULL;
}

const char *iw_map_field_path(const iw_map_field *f)
{
    return f->path;
}

/* The current object of each scope while a body is written. */
typedef struct scope_ctx {
    const void *obj[SC_COUNT];
} scope_ctx;

/* The field's text: a string as it is, an amount as its decimal text (in buf), a flag as
 * true/false, a list as "" when it has an element. NULL when absent. */
static const char *field_raw(const iw_map_field *f, const scope_ctx *c, char *buf, size_t len)
{
    const void *base = c->obj[f->scope];
    if (!base)
        return NULL;
    const char *at = (const char *)base + f->off;
    switch (f->type) {
    case FT_STR: return iw_map_ptr_at(base, f->off);
    case FT_AMOUNT: {
        const iw_amount *a = (const iw_amount *)(const void *)at;
        if (!a->set)
            return NULL;
        iw_decimal_format(a->value, buf, len);
        return buf;
    }
    case FT_FLAG: {
        iw_flag v;
        memcpy(&v, at, sizeof(v));
        return v == IW_FLAG_UNSET ? NULL : v == IW_FLAG_YES ? "true" : "false";
    }
    case FT_INT64: {
        int64_t v;
        memcpy(&v, at, sizeof(v));
        iw_decimal_format(iw_decimal_from_int(v), buf, len); /* "%lld", without printf's cost */
        return buf;
    }
    default:
        return iw_map_size_at(base, f->count_off) > 0 && iw_map_ptr_at(base, f->off) ? "" : NULL;
    }
}

static void scope_init(scope_ctx *c, const iw_event *ev)
{
    memset(c, 0, sizeof(*c));
    c->obj[SC_EVENT] = ev;
    c->obj[SC_INVOICE] = &ev->invoice;
}

const char *iw_map_field_text(const iw_map_field *f, const iw_event *ev, char *buf, size_t len)
{
    scope_ctx c;
    scope_init(&c, ev);
    return f && f->type != FT_LIST ? field_raw(f, &c, buf, len) : NULL;
}

/* ------------------------------------------------------------------ errors */

void iw_map_error(iw_map_errors *e, const char *path, const char *fmt, ...)
{
    if (e->count < sizeof(e->items) / sizeof(e->items[0])) {
        snprintf(e->items[e->count].path, sizeof(e->items[0].path), "%s", path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->items[e->count].message, sizeof(e->items[0].message), fmt, ap);
        va_end(ap);
        iw_text_trim_cut_utf8(e->items[e->count].path); /* names from the file may be cut */
        iw_text_trim_cut_utf8(e->items[e->count].message);
    }
    e->count++;
}

/* ------------------------------------------------------------------ reading a mapping */

#define MAX_NODE_DEPTH 24

typedef struct parser {
    iw_map_errors *errs;
    iw_map_dialect dialect;
    const char *prefix;   /* default XML prefix */
    iw_map_absent absent; /* default absent policy */
    const iw_map_fn *fns; /* built-ins: computed values "compute" may name; NULL = none */
    bool fragment;        /* built-ins: an XML root may be nameless */
} parser;

static const char *const FORMATS[] = {"text", "decimal", "integer", "date", "boolean", "digits"};

/* Reads one path; checks it names a field reachable from the open scopes (bit per scope). */
static const iw_map_field *read_path(parser *p, const cJSON *v, const char *path, unsigned open)
{
    if (!cJSON_IsString(v) || !*v->valuestring) {
        iw_map_error(p->errs, path, "expected a field path such as \"invoice.id\"");
        return NULL;
    }
    const iw_map_field *f = iw_map_field_find(v->valuestring);
    if (!f) {
        iw_map_error(p->errs, path, "unknown field \"%.80s\"", v->valuestring);
        return NULL;
    }
    if (!(open & (1u << f->scope))) {
        iw_map_error(p->errs, path,
                     "\"%.80s\" is read per list element: only inside a row with \"each\" over "
                     "its list",
                     v->valuestring);
        return NULL;
    }
    return f;
}

/* A path or an array of paths into dst (at most cap). */
static size_t read_paths(parser *p, const cJSON *v, const char *path, unsigned open,
                         const iw_map_field **dst, size_t cap)
{
    if (!cJSON_IsArray(v)) {
        const iw_map_field *f = read_path(p, v, path, open);
        if (f)
            dst[0] = f;
        return f ? 1 : 0;
    }
    size_t n = 0, i = 0;
    if (cJSON_GetArraySize(v) < 1 || (size_t)cJSON_GetArraySize(v) > cap)
        iw_map_error(p->errs, path, "expected 1 to %zu field paths", cap);
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        char ipath[224];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        const iw_map_field *f = read_path(p, c, ipath, open);
        if (f && n < cap)
            dst[n++] = f;
    }
    return n;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* An XML name part (prefix or local name): an NCName as XML defines it (libxml2's own rule), so
 * that every body is well formed. */
static bool xml_name_part(const char *s)
{
    return xmlValidateNCName((const xmlChar *)s, 0) == 0;
}

static void read_name(parser *p, const cJSON *v, const char *path, iw_map_node *n)
{
    if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 60 ||
        strpbrk(v->valuestring, " \t\r\n<>&\"'/=")) {
        iw_map_error(p->errs, path, "expected a name of 1 to 60 characters, no space or markup");
        return;
    }
    const char *colon = p->dialect == IW_MAP_XML ? strchr(v->valuestring, ':') : NULL;
    if (colon) {
        n->prefix = strndup(v->valuestring, (size_t)(colon - v->valuestring));
        n->name = strdup(colon + 1);
        if (!*n->prefix || !*n->name || strchr(n->name, ':'))
            iw_map_error(p->errs, path, "expected prefix:name or name");
    } else {
        n->prefix = dup_or_null(p->dialect == IW_MAP_XML ? p->prefix : NULL);
        n->name = strdup(v->valuestring);
    }
    if (p->dialect == IW_MAP_XML && n->name && *n->name &&
        (!xml_name_part(n->name) || (n->prefix && *n->prefix && !xml_name_part(n->prefix)))) {
        iw_map_error(p->errs, path,
                     "expected an XML name (an NCName: no leading digit, '-' or '.', no "
                     "space, punctuation or control; prefix:name alike)");
        return;
    }
    if (p->dialect == IW_MAP_XML && n->name)
        iw_xw_tags_make(&n->tags, n->prefix, n->name); /* none: writing the row fails */
}

static void read_condition(parser *p, const cJSON *v, const char *path, unsigned open,
                           iw_map_node *n)
{
    if (cJSON_IsString(v)) {
        bool pres = strcmp(v->valuestring, "present") == 0;
        if (!pres && strcmp(v->valuestring, "non_empty") != 0) {
            iw_map_error(p->errs, path,
                         "expected \"present\", \"non_empty\" or {\"present\"|\"non_empty\": "
                         "path or [paths]}");
            return;
        }
        if (!n->n_src) {
            iw_map_error(p->errs, path, "\"%s\" needs the row's own \"path\"", v->valuestring);
            return;
        }
        n->cond = pres ? IW_COND_PRESENT : IW_COND_NON_EMPTY;
        memcpy(n->cond_src, n->src, n->n_src * sizeof(n->src[0]));
        n->n_cond = n->n_src;
        return;
    }
    const cJSON *c = cJSON_IsObject(v) ? v->child : NULL;
    if (c && !c->next && p->fns && strcmp(c->string, "computed") == 0) {
        for (const iw_map_fn *f = p->fns; f->name && !n->cond_fn; f++)
            if (cJSON_IsString(c) && strcmp(f->name, c->valuestring) == 0)
                n->cond_fn = f->fn;
        if (!n->cond_fn)
            iw_map_error(p->errs, path, "not a computed value of this adapter");
        n->cond = IW_COND_COMPUTED;
        return;
    }
    if (!c || c->next || (strcmp(c->string, "present") != 0 && strcmp(c->string, "non_empty"))) {
        iw_map_error(p->errs, path,
                     "expected {\"present\": path or [paths]} or {\"non_empty\": ...}");
        return;
    }
    char sub[224];
    snprintf(sub, sizeof(sub), "%s.%s", path, c->string);
    n->cond = strcmp(c->string, "present") == 0 ? IW_COND_PRESENT : IW_COND_NON_EMPTY;
    n->n_cond =
        read_paths(p, c, sub, open, n->cond_src, sizeof(n->cond_src) / sizeof(n->cond_src[0]));
}

/* The longest date pattern: format_date writes as many bytes as the pattern has (YYYY, MM and
 * DD are as long as what replaces them) into write_leaf's buffer, less its margin. */
#define PATTERN_MAX (IW_DECIMAL_BUFLEN * 2 - 6)

/* A constant of an XML body (a value, default, join, pattern or attribute) that the XML writer
 * would refuse at every event (a C0 control, U+FFFE, U+FFFF) is refused by path at load. */
static void check_xml_constant(parser *p, const char *path, const char *text)
{
    if (p->dialect != IW_MAP_XML || !text)
        return;
    iw_wbuf b = IW_WBUF_INIT;
    iw_xw x;
    iw_xw_begin(&x, &b, false);
    iw_xw_start(&x, NULL, "c", NULL);
    iw_xw_attr(&x, "a", text);
    iw_xw_chars(&x, text);
    iw_xw_end(&x);
    if (iw_xw_finish(&x) == IW_EINVAL && b.why)
        iw_map_error(p->errs, path, "%s", b.why);
    iw_wbuf_free(&b);
}

static void read_attributes(parser *p, const cJSON *v, const char *path, iw_map_node *n)
{
    if (p->dialect != IW_MAP_XML || !cJSON_IsObject(v)) {
        iw_map_error(p->errs, path, "expected an object of XML attribute names and texts");
        return;
    }
    n->attrs = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*n->attrs));
    for (const cJSON *c = v->child; c && n->attrs; c = c->next) {
        char sub[224];
        snprintf(sub, sizeof(sub), "%s.%s", path, c->string);
        if (!cJSON_IsString(c) || !*c->string || strpbrk(c->string, " \t\r\n<>&\"'/=")) {
            iw_map_error(p->errs, sub, "expected a text value for a valid attribute name");
            continue;
        }
        check_xml_constant(p, sub, c->valuestring);
        n->attrs[n->n_attrs].name = strdup(c->string);
        n->attrs[n->n_attrs++].value = strdup(c->valuestring);
    }
}

static int enum_index(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

static void read_node(parser *p, const cJSON *obj, const char *path, int depth, unsigned open,
                      bool keyed, iw_map_node *n);

static void read_children(parser *p, const cJSON *v, const char *path, int depth, unsigned open,
                          iw_map_node *n)
{
    if (!cJSON_IsArray(v)) {
        iw_map_error(p->errs, path, "expected an array of rows");
        return;
    }
    n->group = true;
    n->children = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*n->children));
    size_t i = 0;
    for (const cJSON *c = v->child; c && n->children; c = c->next, i++) {
        char sub[224];
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        read_node(p, c, sub, depth + 1, open, true, &n->children[n->n_children++]);
    }
}

static const char *apply_format(const iw_map_node *n, const char *raw, char *buf, size_t len,
                                const char **why);

/* What the event's reader holds a text field to (common/invoice.c, K_DATE and K_TIME): for the
 * formats that read it. FT_STR for any other text. */
enum { KIND_DATE = FT_LIST + 1, KIND_TIME };
static int text_kind(const char *path)
{
    static const char *const DATES[] = {"invoice.issue_date", "invoice.due_date",
                                        "invoice.order_date", "invoice.ship_date",
                                        "invoice.po_date"};
    for (size_t i = 0; i < sizeof(DATES) / sizeof(DATES[0]); i++)
        if (strcmp(path, DATES[i]) == 0)
            return KIND_DATE;
    return strcmp(path, "invoice.paid_at") == 0 || strcmp(path, "occurred_at") == 0 ? KIND_TIME
                                                                                    : FT_STR;
}

static void read_format(parser *p, const cJSON *obj, const char *path, iw_map_node *n)
{
    char sub[224];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "format");
    snprintf(sub, sizeof(sub), "%s.format", path);
    if (v) {
        int k = cJSON_IsString(v) ? enum_index(v->valuestring, FORMATS, 6) : -1;
        if (k < 0)
            iw_map_error(p->errs, sub,
                         "unknown format \"%.40s\"; use one of text, decimal, integer, date, "
                         "boolean, digits",
                         cJSON_IsString(v) ? v->valuestring : "(not a string)");
        else
            n->format = (iw_map_format)k;
    }
    /* a format no value of a source's type can take would refuse (or, digits, leave out) the
     * row for every event: refused here, where check-config names it (review 96: a date or
     * a timestamp too, which the event's reader checks) */
    static const char *const TYPE_NAMES[] = {"a text",
                                             "an amount",
                                             "a flag",
                                             "a whole number",
                                             "a list",
                                             "a date (YYYY-MM-DD)",
                                             "an RFC 3339 timestamp"};
    for (size_t i = 0; v && i < n->n_src; i++) {
        int t = n->src[i]->type, k = t == FT_STR ? text_kind(n->src[i]->path) : t;
        bool fits = t == FT_LIST || n->format == IW_FMT_TEXT ||
                    (n->format == IW_FMT_DATE && (k == FT_STR || k == KIND_DATE)) ||
                    (n->format == IW_FMT_BOOLEAN && (k == FT_FLAG || k == FT_STR)) ||
                    (n->format == IW_FMT_DIGITS && (k == FT_STR || k == FT_INT64)) ||
                    ((n->format == IW_FMT_DECIMAL || n->format == IW_FMT_INTEGER) &&
                     (k == FT_STR || k == FT_AMOUNT || k == FT_INT64));
        if (!fits) {
            iw_map_error(p->errs, sub, "format %s cannot take %s, %s, which is %s",
                         FORMATS[n->format], n->n_src > 1 ? "one of its paths" : "its path",
                         n->src[i]->path, TYPE_NAMES[k]);
            break;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    snprintf(sub, sizeof(sub), "%s.pattern", path);
    if (v && (n->format != IW_FMT_DATE || !cJSON_IsString(v) || !strstr(v->valuestring, "YYYY")))
        iw_map_error(p->errs, sub, "a date pattern holding YYYY (and MM, DD), with format date");
    else if (v && strlen(v->valuestring) > PATTERN_MAX)
        iw_map_error(p->errs, sub, "at most %d bytes (the date it writes is as long)", PATTERN_MAX);
    else if (v) {
        check_xml_constant(p, sub, v->valuestring);
        n->pattern = strdup(v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "scale");
    snprintf(sub, sizeof(sub), "%s.scale", path);
    n->scale = -1;
    if (v && (n->format != IW_FMT_DECIMAL || !cJSON_IsNumber(v) || v->valuedouble < 0 ||
              v->valuedouble > 18 || v->valuedouble != (int)v->valuedouble))
        iw_map_error(p->errs, sub, "a whole number 0 to 18, with format decimal");
    else if (v)
        n->scale = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(obj, "as");
    snprintf(sub, sizeof(sub), "%s.as", path);
    bool array = v && cJSON_IsString(v) && strcmp(v->valuestring, "array") == 0 &&
                 cJSON_GetObjectItemCaseSensitive(obj, "children") &&
                 !cJSON_GetObjectItemCaseSensitive(obj, "each");
    if (v && (p->dialect != IW_MAP_JSON || !cJSON_IsString(v) ||
              (strcmp(v->valuestring, "string") != 0 && !array)))
        iw_map_error(p->errs, sub,
                     "\"string\" (JSON bodies: a number or boolean as text) or \"array\" (a "
                     "row with children, no each: an array of its one object)");
    else if (v)
        *(array ? &n->as_array : &n->as_string) = true;
}

static void read_node(parser *p, const cJSON *obj, const char *path, int depth, unsigned open,
                      bool keyed, iw_map_node *n)
{
    n->scale = -1;
    if (!cJSON_IsObject(obj)) {
        iw_map_error(p->errs, path, "expected an object");
        return;
    }
    if (depth > MAX_NODE_DEPTH) {
        iw_map_error(p->errs, path, "nested deeper than %d rows", MAX_NODE_DEPTH);
        return;
    }
    static const char *const KEYS[] = {"name",  "path",     "value",   "format",  "pattern",
                                       "scale", "as",       "absent",  "if",      "attributes",
                                       "each",  "children", "default", "compute", "join"};
    char sub[224];
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (enum_index(c->string, KEYS, sizeof(KEYS) / sizeof(KEYS[0])) < 0) {
            snprintf(sub, sizeof(sub), "%s.%s", path, c->string);
            iw_map_error(p->errs, sub, "unknown key");
        }
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "name");
    snprintf(sub, sizeof(sub), "%s.name", path);
    n->absent = p->absent;
    if (v)
        read_name(p, v, sub, n);
    else if (keyed || (p->dialect == IW_MAP_XML && !(p->fragment && depth == 0)))
        iw_map_error(p->errs, sub, "required");

    const cJSON *each = cJSON_GetObjectItemCaseSensitive(obj, "each");
    if (each) {
        snprintf(sub, sizeof(sub), "%s.each", path);
        const iw_map_field *f = read_path(p, each, sub, open);
        if (f && f->type != FT_LIST)
            iw_map_error(p->errs, sub,
                         "expected a list: invoice.lines, invoice.extra_charges "
                         "or invoice.custom_fields");
        else if (f && (open & (1u << f->elem_scope))) /* review 96: lines x lines x ... */
            iw_map_error(p->errs, sub,
                         "%s is already repeated by a row around this one: its paths would name "
                         "the inner element, and the body would grow as its length to the power "
                         "of the nesting",
                         iw_map_field_path(f));
        else if (f)
            n->each = f;
        if (n->each)
            open |= 1u << n->each->elem_scope;
        if (!cJSON_GetObjectItemCaseSensitive(obj, "children")) {
            snprintf(sub, sizeof(sub), "%s.children", path);
            iw_map_error(p->errs, sub, "required with \"each\"");
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "path");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.path", path);
        n->n_src = read_paths(p, v, sub, open, n->src, IW_MAP_MAX_ALT);
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "value");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.value", path);
        if (!cJSON_IsString(v))
            iw_map_error(p->errs, sub, "expected a text");
        else {
            check_xml_constant(p, sub, v->valuestring);
            n->value = strdup(v->valuestring);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "default");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.default", path);
        if (!cJSON_IsString(v))
            iw_map_error(p->errs, sub, "expected a text");
        else {
            check_xml_constant(p, sub, v->valuestring);
            n->dflt = strdup(v->valuestring);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "join");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.join", path);
        if (!cJSON_IsString(v) || p->dialect != IW_MAP_XML)
            iw_map_error(p->errs, sub, "expected a text (XML bodies only)");
        else {
            check_xml_constant(p, sub, v->valuestring);
            n->join = strdup(v->valuestring);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "compute");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.compute", path);
        for (const iw_map_fn *f = p->fns; f && f->name && !n->compute; f++)
            if (cJSON_IsString(v) && strcmp(f->name, v->valuestring) == 0)
                n->compute = f->fn;
        if (!n->compute)
            iw_map_error(p->errs, sub, "not a computed value of this adapter");
    }
    if (n->value && cJSON_GetObjectItemCaseSensitive(obj, "path")) {
        snprintf(sub, sizeof(sub), "%s.value", path);
        iw_map_error(p->errs, sub, "a row takes \"path\" or \"value\", not both");
    }
    read_format(p, obj, path, n);
    /* a constant the format cannot take would refuse every event (one from ${ENV} is known only
     * once expanded, and its text is never quoted: it may be a secret); review 96: "1.5" with
     * format integer, "soon" with format date */
    for (int k = 0; k < 2; k++) {
        const char *c = k ? n->dflt : n->value, *why = NULL;
        char buf[IW_DECIMAL_BUFLEN * 2]; /* as write_leaf's */
        if (c && !strstr(c, "${") && !apply_format(n, c, buf, sizeof(buf), &why)) {
            if (!why) /* digits of no id: the row left out of every event (review 104) */
                why = "not an id of digits";
            snprintf(sub, sizeof(sub), "%s.%s", path, k ? "default" : "value");
            iw_map_error(p->errs, sub, "%s: format %s cannot take it", why, FORMATS[n->format]);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "absent");
    if (v) {
        static const char *const ABSENT[] = {"omit", "empty", "null"};
        snprintf(sub, sizeof(sub), "%s.absent", path);
        int k = cJSON_IsString(v) ? enum_index(v->valuestring, ABSENT, 3) : -1;
        if (k < 0 || (k == IW_ABSENT_NULL && p->dialect != IW_MAP_JSON))
            iw_map_error(p->errs, sub, "expected \"omit\", \"empty\"%s",
                         p->dialect == IW_MAP_JSON ? " or \"null\"" : "");
        else
            n->absent = (iw_map_absent)k;
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "if");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.if", path);
        read_condition(p, v, sub, open, n);
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.attributes", path);
        read_attributes(p, v, sub, n);
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "children");
    if (v) {
        snprintf(sub, sizeof(sub), "%s.children", path);
        if (n->n_src || n->value || n->dflt || n->compute || n->join)
            iw_map_error(p->errs, sub,
                         "a row with children takes no \"path\", \"value\", \"default\" or "
                         "\"compute\"");
        read_children(p, v, sub, depth, open, n);
    }
    n->plain = !n->group && !n->each && n->n_src == 1 &&
               (n->src[0]->type == FT_STR || n->src[0]->type == FT_AMOUNT) &&
               n->format == IW_FMT_TEXT && !n->n_attrs && !n->compute && !n->dflt && !n->join;
}

/* ---- what every body must be: one well formed XML document, or JSON with each key once */

#define MAX_NS_SCOPE 64

typedef struct ns_scope {
    const char *prefix[MAX_NS_SCOPE], *uri[MAX_NS_SCOPE];
    size_t n;
} ns_scope;

/* The namespace a prefix is bound to where the scope stands, or NULL. */
static const char *ns_lookup(const ns_scope *sc, const char *prefix)
{
    if (strcmp(prefix, "xml") == 0)
        return IW_XML_NS;
    for (size_t i = sc->n; i-- > 0;)
        if (strcmp(sc->prefix[i], prefix) == 0)
            return sc->uri[i];
    return NULL;
}

/* Checks n's namespace declarations (its xmlns and xmlns:p attributes) and adds them to sc; then
 * that n's own prefix and its attributes' prefixes are declared, and that no two attributes
 * have one expanded name (a:x and b:x with a and b bound alike). Namespaces in XML 1.0,
 * sections 3 and 6: what libxml2 and every reader refuse. */
static void xml_namespaces(iw_map_errors *errs, const iw_map_node *n, const char *path,
                           ns_scope *sc)
{
    char sub[224];
    for (size_t i = 0; i < n->n_attrs; i++) {
        const char *a = n->attrs[i].name, *uri = n->attrs[i].value;
        bool plain = strcmp(a, "xmlns") == 0;
        if (!plain && strncmp(a, "xmlns:", 6) != 0)
            continue;
        snprintf(sub, sizeof(sub), "%s.attributes.%s", path, a);
        const char *pfx = plain ? "" : a + 6;
        bool xml_uri = strcmp(uri, IW_XML_NS) == 0, xmlns_uri = strcmp(uri, IW_XMLNS_NS) == 0;
        if (strcmp(pfx, "xmlns") == 0)
            iw_map_error(errs, sub, "the prefix xmlns cannot be declared");
        else if (strcmp(pfx, "xml") == 0 && !xml_uri)
            iw_map_error(errs, sub, "the prefix xml is bound to " IW_XML_NS " only");
        else if (strcmp(pfx, "xml") != 0 && (xml_uri || xmlns_uri))
            iw_map_error(errs, sub, "%s is reserved to the prefix %s", uri,
                         xml_uri ? "xml" : "xmlns");
        else if (!plain && !*uri)
            iw_map_error(errs, sub, "a prefix cannot be bound to the empty namespace name");
        else if (sc->n == MAX_NS_SCOPE)
            iw_map_error(errs, sub, "more than %d namespace declarations in scope", MAX_NS_SCOPE);
        else if (!plain) {
            sc->prefix[sc->n] = pfx;
            sc->uri[sc->n++] = uri;
        }
    }
    snprintf(sub, sizeof(sub), "%s.name", path);
    if (n->prefix && strcmp(n->prefix, "xmlns") == 0)
        iw_map_error(errs, sub, "an element cannot have the prefix xmlns");
    else if (n->prefix && !ns_lookup(sc, n->prefix))
        iw_map_error(errs, sub,
                     "the prefix %s is not declared here (an \"xmlns:%s\" attribute on this "
                     "row or one around it)",
                     n->prefix, n->prefix);
    for (size_t i = 0; i < n->n_attrs; i++) {
        const char *a = n->attrs[i].name, *colon = strchr(a, ':');
        if (!colon || strcmp(a, "xmlns") == 0 || strncmp(a, "xmlns:", 6) == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s.attributes.%s", path, a);
        char pfx[64];
        snprintf(pfx, sizeof(pfx), "%.*s", (int)(colon - a), a);
        const char *uri = ns_lookup(sc, pfx);
        if (!uri) {
            iw_map_error(errs, sub, "the prefix %s is not declared here", pfx);
            continue;
        }
        for (size_t k = 0; k < i; k++) {
            const char *b = n->attrs[k].name, *bc = strchr(b, ':');
            if (!bc || strncmp(b, "xmlns:", 6) == 0 || strcmp(bc + 1, colon + 1) != 0)
                continue;
            char bp[64];
            snprintf(bp, sizeof(bp), "%.*s", (int)(bc - b), b);
            const char *buri = ns_lookup(sc, bp);
            if (buri && strcmp(buri, uri) == 0)
                iw_map_error(errs, sub, "the same attribute as %s (one namespace, one name)", b);
        }
    }
}

/* An attribute name: a QName (NCName, or NCName:NCName). */
static bool xml_qname(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon)
        return xml_name_part(s);
    char pfx[64];
    if ((size_t)(colon - s) >= sizeof(pfx))
        return false;
    snprintf(pfx, sizeof(pfx), "%.*s", (int)(colon - s), s);
    return xml_name_part(pfx) && xml_name_part(colon + 1);
}

static void xml_well_formed(iw_map_errors *errs, const iw_map_node *n, const char *path,
                            ns_scope sc)
{
    char sub[224];
    for (size_t i = 0; i < n->n_attrs; i++)
        if (!xml_qname(n->attrs[i].name)) {
            snprintf(sub, sizeof(sub), "%s.attributes.%s", path, n->attrs[i].name);
            iw_map_error(errs, sub, "expected an XML attribute name (a QName)");
            return;
        }
    xml_namespaces(errs, n, path, &sc);
    for (size_t i = 0; i < n->n_children; i++) {
        snprintf(sub, sizeof(sub), "%s.children[%zu]", path, i);
        xml_well_formed(errs, &n->children[i], sub, sc);
    }
}

/* A JSON object's keys once each: two rows of one name would write {"a":1,"a":2}, which readers
 * take apart differently (the worker itself refuses such a reply). */
static void json_keys_once(iw_map_errors *errs, const iw_map_node *n, const char *path)
{
    char sub[224];
    for (size_t i = 0; i < n->n_children; i++) {
        const iw_map_node *c = &n->children[i];
        snprintf(sub, sizeof(sub), "%s.children[%zu]", path, i);
        for (size_t k = 0; c->name && k < i; k++)
            if (n->children[k].name && strcmp(n->children[k].name, c->name) == 0) {
                char at[240];
                snprintf(at, sizeof(at), "%s.name", sub);
                iw_map_error(errs, at,
                             "\"%s\" is also children[%zu]'s name: an object holds each key "
                             "once",
                             c->name, k);
                break;
            }
        json_keys_once(errs, c, sub);
    }
}

static int map_parse(const cJSON *obj, const char *path, const iw_map_fn *fns, iw_map *out,
                     iw_map_errors *errs);

int iw_map_parse(const cJSON *obj, const char *path, iw_map *out, iw_map_errors *errs)
{
    return map_parse(obj, path, NULL, out, errs);
}

/* fns not NULL: a built-in mapping, which may compute values and be an XML fragment. */
static int map_parse(const cJSON *obj, const char *path, const iw_map_fn *fns, iw_map *out,
                     iw_map_errors *errs)
{
    memset(out, 0, sizeof(*out));
    size_t before = errs->count;
    char sub[224];
    if (!cJSON_IsObject(obj)) {
        iw_map_error(errs, path, "expected an object");
        return IW_EINVAL;
    }
    static const char *const KEYS[] = {"dialect", "declaration", "prefix", "absent", "root"};
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (enum_index(c->string, KEYS, 5) < 0) {
            snprintf(sub, sizeof(sub), "%s.%s", path, c->string);
            iw_map_error(errs, sub, "unknown key");
        }
    }
    parser p = {.errs = errs, .fns = fns, .fragment = fns != NULL};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "dialect");
    snprintf(sub, sizeof(sub), "%s.dialect", path);
    if (cJSON_IsString(v) && strcmp(v->valuestring, "xml") == 0)
        p.dialect = IW_MAP_XML;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "json") == 0)
        p.dialect = IW_MAP_JSON;
    else
        iw_map_error(errs, sub, "expected \"xml\" or \"json\"");
    out->dialect = p.dialect;
    out->declaration = p.dialect == IW_MAP_XML;
    v = cJSON_GetObjectItemCaseSensitive(obj, "declaration");
    snprintf(sub, sizeof(sub), "%s.declaration", path);
    if (v && (!cJSON_IsBool(v) || p.dialect != IW_MAP_XML))
        iw_map_error(errs, sub, "expected true or false (XML bodies only)");
    else if (v)
        out->declaration = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(obj, "prefix");
    snprintf(sub, sizeof(sub), "%s.prefix", path);
    if (v && (!cJSON_IsString(v) || p.dialect != IW_MAP_XML || !*v->valuestring ||
              strpbrk(v->valuestring, " \t\r\n<>&\"'/=:")))
        iw_map_error(errs, sub, "expected an XML prefix (XML bodies only)");
    else if (v)
        p.prefix = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(obj, "absent");
    snprintf(sub, sizeof(sub), "%s.absent", path);
    if (v) {
        static const char *const ABSENT[] = {"omit", "empty", "null"};
        int k = cJSON_IsString(v) ? enum_index(v->valuestring, ABSENT, 3) : -1;
        if (k < 0 || (k == IW_ABSENT_NULL && p.dialect != IW_MAP_JSON))
            iw_map_error(errs, sub, "expected \"omit\", \"empty\"%s",
                         p.dialect == IW_MAP_JSON ? " or \"null\"" : "");
        else
            p.absent = (iw_map_absent)k;
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "root");
    snprintf(sub, sizeof(sub), "%s.root", path);
    if (!v)
        iw_map_error(errs, sub, "required");
    else if (p.dialect)
        read_node(&p, v, sub, 0, (1u << SC_EVENT) | (1u << SC_INVOICE), false, &out->root);
    if (p.dialect == IW_MAP_JSON && v && (!out->root.group || out->root.each))
        iw_map_error(errs, sub, "a JSON body's root is an object: a row with \"children\"");
    if (p.dialect == IW_MAP_XML && v && !p.fragment && out->root.each)
        iw_map_error(errs, sub,
                     "a document has one root element: a root with \"each\" would write one "
                     "per line");
    /* nor none: a root left out (its if false, its path absent) leaves only the declaration */
    if (p.dialect == IW_MAP_XML && v && !p.fragment &&
        (out->root.cond != IW_COND_NONE || ((out->root.n_src || out->root.compute) &&
                                            out->root.absent == IW_ABSENT_OMIT && !out->root.dflt)))
        iw_map_error(errs, sub,
                     "a document has one root element, always written: no \"if\" on the root, "
                     "and a root with a path needs \"absent\": \"empty\" or a \"default\"");
    if (errs->count == before && p.dialect == IW_MAP_XML && !p.fragment)
        xml_well_formed(errs, &out->root, sub, (ns_scope){.n = 0});
    if (errs->count == before && p.dialect == IW_MAP_JSON)
        json_keys_once(errs, &out->root, sub);
    if (errs->count != before) {
        iw_map_free(out);
        return IW_EINVAL;
    }
    return 0;
}

static void node_free(iw_map_node *n)
{
    free(n->prefix);
    free(n->name);
    iw_xw_tags_free(&n->tags);
    free(n->value);
    free(n->dflt);
    free(n->join);
    free(n->pattern);
    for (size_t i = 0; i < n->n_attrs; i++) {
        free(n->attrs[i].name);
        free(n->attrs[i].value);
    }
    free(n->attrs);
    for (size_t i = 0; i < n->n_children; i++)
        node_free(&n->children[i]);
    free(n->children);
    memset(n, 0, sizeof(*n));
}

void iw_map_free(iw_map *m)
{
    if (!m)
        return;
    node_free(&m->root);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ writing */

typedef struct writer {
    iw_map_dialect dialect;
    iw_xw *x; /* XML: the open document */
    iw_jw *j; /* JSON: the open document */
    iw_wbuf *b;
    scope_ctx sc;
    const iw_event *ev;
    const void *ctx;  /* handed to computed values */
    const void *elem; /* the innermost repeated group's current element (NULL: none) */
    size_t index;     /* and its 0-based position */
    size_t at[SC_COUNT]; /* each list scope's current 0-based position (errors name it) */
    const iw_map_field *from; /* the event field the row being written took its text from
                               * (NULL: a fixed, computed or default value); errors name it */
} writer;

/* True when the field holds a value (non_empty: a non-empty one), without formatting it: an
 * amount, flag or number is never empty, a list holds an element. */
static bool field_holds(const iw_map_field *f, const scope_ctx *c, bool non_empty)
{
    const void *base = c->obj[f->scope];
    if (!base)
        return false;
    const char *at = (const char *)base + f->off;
    switch (f->type) {
    case FT_STR: {
        const char *s = iw_map_ptr_at(base, f->off);
        return s && (!non_empty || *s);
    }
    case FT_AMOUNT: return ((const iw_amount *)(const void *)at)->set;
    case FT_FLAG: {
        iw_flag v;
        memcpy(&v, at, sizeof(v));
        return v != IW_FLAG_UNSET;
    }
    case FT_INT64: return true;
    default: return iw_map_size_at(base, f->count_off) > 0 && iw_map_ptr_at(base, f->off);
    }
}

bool iw_map_field_given(const iw_map_field *f, const iw_event *ev)
{
    scope_ctx c;
    scope_init(&c, ev);
    return f && field_holds(f, &c, true);
}

static bool cond_holds(const iw_map_node *n, const writer *w)
{
    if (n->cond == IW_COND_NONE)
        return true;
    if (n->cond == IW_COND_COMPUTED) {
        char buf[IW_DECIMAL_BUFLEN];
        return n->cond_fn(w->ev, w->elem, w->index, w->ctx, buf, sizeof(buf)) != NULL;
    }
    for (size_t i = 0; i < n->n_cond; i++)
        if (field_holds(n->cond_src[i], &w->sc, n->cond == IW_COND_NON_EMPTY))
            return true;
    return false;
}

/* Rewrites "YYYY-MM-DD" by pattern into out. Returns false when d is not such a date. */
static bool format_date(const char *d, const char *pattern, char *out, size_t len)
{
    if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return false;
    size_t o = 0;
    for (const char *p = pattern; *p && o + 5 < len;) {
        if (p[0] == 'Y' && p[1] == 'Y' && p[2] == 'Y' && p[3] == 'Y') {
            memcpy(out + o, d, 4), o += 4, p += 4;
        } else if (p[0] == 'M' && p[1] == 'M') {
            memcpy(out + o, d + 5, 2), o += 2, p += 2;
        } else if (p[0] == 'D' && p[1] == 'D') {
            memcpy(out + o, d + 8, 2), o += 2, p += 2;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return true;
}

/* Applies the row's format to raw; returns the text (raw or in buf), or NULL with *why set. */
static const char *apply_format(const iw_map_node *n, const char *raw, char *buf, size_t len,
                                const char **why)
{
    iw_decimal d;
    switch (n->format) {
    case IW_FMT_TEXT: return raw;
    case IW_FMT_DECIMAL:
    case IW_FMT_INTEGER: {
        if (iw_decimal_parse(raw, &d) != 0) {
            *why = "not a decimal number";
            return NULL;
        }
        int scale = n->format == IW_FMT_INTEGER ? 0 : n->scale;
        if (scale < 0) { /* the scale as given, in the one decimal spelling */
            iw_decimal_format(d, buf, len);
            return buf;
        }
        iw_decimal r;
        if (iw_decimal_round(d, scale, &r) != 0) {
            *why = "out of range";
            return NULL;
        }
        if (n->format == IW_FMT_INTEGER && iw_decimal_cmp(r, d) != 0) {
            *why = "not a whole number";
            return NULL;
        }
        iw_decimal_format(r, buf, len);
        return buf;
    }
    case IW_FMT_DATE:
        if (!format_date(raw, n->pattern ? n->pattern : "YYYY-MM-DD", buf, len)) {
            *why = "not a date YYYY-MM-DD";
            return NULL;
        }
        return buf;
    case IW_FMT_DIGITS:
        /* not an id: absent, *why stays NULL */
        return iw_text_id_digits(raw, buf, len) ? buf : NULL;
    default:
        if (strcmp(raw, "true") != 0 && strcmp(raw, "false") != 0) {
            *why = "not a boolean";
            return NULL;
        }
        return raw;
    }
}

/* True when the source's own text is already what the format writes: an amount as a decimal
 * with its scale kept is the amount's decimal text, a flag is true or false, a whole number
 * (version) is an integer and a decimal as it is. */
static bool already_formatted(const iw_map_node *n, const iw_map_field *from)
{
    return (n->format == IW_FMT_DECIMAL && n->scale < 0 && from->type == FT_AMOUNT) ||
           (n->format == IW_FMT_BOOLEAN && from->type == FT_FLAG) ||
           (from->type == FT_INT64 &&
            (n->format == IW_FMT_INTEGER || (n->format == IW_FMT_DECIMAL && n->scale < 0)));
}

static void write_rows(writer *w, const iw_map_node *rows, size_t n);

static void open_element(writer *w, const iw_map_node *n, bool array)
{
    if (w->dialect == IW_MAP_XML) {
        iw_xw_start_tags(w->x, &n->tags, n->name);
        for (size_t i = 0; i < n->n_attrs; i++)
            iw_xw_attr(w->x, n->attrs[i].name, n->attrs[i].value);
    } else if (array) {
        iw_jw_array(w->j, n->name);
    } else {
        iw_jw_object(w->j, n->name);
    }
}

static void close_element(writer *w)
{
    if (w->dialect == IW_MAP_XML)
        iw_xw_end(w->x);
    else
        iw_jw_end(w->j);
}

static void write_each(writer *w, const iw_map_node *n)
{
    const iw_map_field *f = n->each;
    const void *base = w->sc.obj[f->scope];
    const char *items = base ? iw_map_ptr_at(base, f->off) : NULL;
    size_t count = items ? iw_map_size_at(base, f->count_off) : 0;
    if (w->dialect == IW_MAP_JSON) {
        if (count == 0 && n->absent == IW_ABSENT_OMIT)
            return;
        if (count == 0 && n->absent == IW_ABSENT_NULL) {
            iw_jw_null(w->j, n->name);
            return;
        }
        iw_jw_array(w->j, n->name);
    }
    const void *saved = w->sc.obj[f->elem_scope], *saved_elem = w->elem;
    size_t saved_index = w->index, saved_at = w->at[f->elem_scope];
    for (size_t i = 0; i < count && !w->b->err; i++) {
        w->sc.obj[f->elem_scope] = w->elem = items + i * f->elem_size;
        w->index = w->at[f->elem_scope] = i;
        if (n->cond != IW_COND_NONE && !cond_holds(n, w))
            continue;
        if (w->dialect == IW_MAP_XML) {
            open_element(w, n, false);
        } else {
            iw_jw_object(w->j, NULL);
        }
        write_rows(w, n->children, n->n_children);
        close_element(w);
    }
    w->sc.obj[f->elem_scope] = saved;
    w->elem = saved_elem;
    w->index = saved_index;
    w->at[f->elem_scope] = saved_at;
    if (w->dialect == IW_MAP_JSON)
        iw_jw_end(w->j);
}

/* A joined row (XML): the present, non-empty texts of its paths with n->join between them; no
 * element when there are none. */
static void write_joined(writer *w, const iw_map_node *n)
{
    char buf[IW_DECIMAL_BUFLEN];
    bool open = false;
    w->from = NULL;                                       /* until a part is written */
    for (size_t i = 0; i < n->n_src && !w->b->err; i++) { /* a refused text is the last */
        const char *t = field_raw(n->src[i], &w->sc, buf, sizeof(buf));
        if (!t || !*t)
            continue;
        w->from = n->src[i];
        if (open)
            iw_xw_chars(w->x, n->join);
        else
            open_element(w, n, false);
        open = true;
        iw_xw_chars(w->x, t);
    }
    if (open)
        iw_xw_end(w->x);
}

static void write_leaf(writer *w, const iw_map_node *n)
{
    if (n->join) {
        write_joined(w, n);
        return;
    }
    char raw_buf[IW_DECIMAL_BUFLEN], buf[IW_DECIMAL_BUFLEN * 2];
    const char *raw = n->value;
    const iw_map_field *from = NULL;
    for (size_t i = 0; !raw && i < n->n_src; i++)
        raw = field_raw(from = n->src[i], &w->sc, raw_buf, sizeof(raw_buf));
    if (!raw && n->compute) {
        raw = n->compute(w->ev, w->elem, w->index, w->ctx, raw_buf, sizeof(raw_buf));
        from = NULL;
    }
    if (!raw && n->dflt) {
        raw = n->dflt;
        from = NULL;
    }
    w->from = from;
    const char *text = NULL, *why = NULL;
    if (raw && from && already_formatted(n, from))
        text = raw;
    else if (raw && !(text = apply_format(n, raw, buf, sizeof(buf), &why)) && why) {
        iw_wbuf_fail(w->b, IW_EINVAL, n->name, why);
        return;
    }
    bool has_source = n->n_src > 0 || n->value || n->compute;
    if (!text && has_source && n->absent == IW_ABSENT_OMIT)
        return;
    if (w->dialect == IW_MAP_XML) {
        if (n->n_attrs) {
            open_element(w, n, false);
            if (text)
                iw_xw_chars(w->x, text);
            iw_xw_end(w->x);
        } else {
            iw_xw_text_tags(w->x, &n->tags, n->name, text);
        }
        return;
    }
    if (!text && n->absent == IW_ABSENT_EMPTY)
        iw_jw_string(w->j, n->name, "");
    else if (!text)
        iw_jw_null(w->j, n->name);
    else if (n->as_string || n->format == IW_FMT_TEXT || n->format == IW_FMT_DATE)
        iw_jw_string(w->j, n->name, text);
    else if (n->format == IW_FMT_BOOLEAN)
        iw_jw_bool(w->j, n->name, strcmp(text, "true") == 0);
    else
        iw_jw_raw(w->j, n->name, text);
}

/* A plain row (see iw_map_node.plain), the most common kind, without the general path. */
static void write_plain(writer *w, const iw_map_node *n)
{
    const iw_map_field *f = w->from = n->src[0];
    const void *base = w->sc.obj[f->scope];
    char buf[IW_DECIMAL_BUFLEN];
    const char *text = !base               ? NULL
                       : f->type == FT_STR ? iw_map_ptr_at(base, f->off)
                                           : field_raw(f, &w->sc, buf, sizeof(buf));
    if (!text && n->absent == IW_ABSENT_OMIT)
        return;
    if (w->dialect == IW_MAP_XML)
        iw_xw_text_tags(w->x, &n->tags, n->name, text);
    else if (text || n->absent == IW_ABSENT_EMPTY)
        iw_jw_string(w->j, n->name, text ? text : "");
    else
        iw_jw_null(w->j, n->name);
}

/* A text row r just refused names the event field its text came from, as validation names one
 * ("invoice.lines[2].name (element Title)"): one element name is written from many fields, and
 * a row with fallbacks or a join from several (the one refused is named). */
static void name_the_source(writer *w, const iw_map_node *r)
{
    const iw_map_field *f = w->from;
    if (w->b->err != IW_EINVAL || !w->b->why || w->b->why == IW_WBUF_TOO_LARGE || !f)
        return;
    const char *p = f->path, *br = strstr(p, "[]");
    char path[96];
    if (br)
        snprintf(path, sizeof(path), "%.*s[%zu]%s", (int)(br - p), p, w->at[f->scope], br + 2);
    else
        snprintf(path, sizeof(path), "%s", p);
    snprintf(w->b->what, sizeof(w->b->what), "%s (%s %s)", path,
             w->dialect == IW_MAP_XML ? "element" : "key", r->name);
}

static void write_rows(writer *w, const iw_map_node *rows, size_t n)
{
    for (size_t i = 0; i < n && !w->b->err; i++) {
        const iw_map_node *r = &rows[i];
        if (r->cond != IW_COND_NONE && !r->each && !cond_holds(r, w))
            continue; /* a repeated group tests it per element */
        if (r->plain) {
            write_plain(w, r);
            if (w->b->err)
                name_the_source(w, r);
        } else if (r->each) {
            write_each(w, r);
        } else if (r->as_array) {
            iw_jw_array(w->j, r->name);
            iw_jw_object(w->j, NULL);
            write_rows(w, r->children, r->n_children);
            iw_jw_end(w->j);
            iw_jw_end(w->j);
        } else if (r->group) {
            open_element(w, r, false);
            write_rows(w, r->children, r->n_children);
            close_element(w);
        } else {
            write_leaf(w, r);
            if (w->b->err)
                name_the_source(w, r);
        }
    }
}

int iw_map_write(const iw_map *m, const iw_event *ev, iw_wbuf *b, char *errbuf, size_t errlen)
{
    if (m->dialect == IW_MAP_XML) {
        iw_xw x;
        iw_xw_begin(&x, b, m->declaration);
        iw_map_write_xml(m, ev, NULL, &x, errbuf, errlen);
        iw_xw_finish(&x);
    } else {
        iw_jw j;
        iw_jw_begin(&j, b);
        iw_jw_object(&j, NULL);
        iw_map_write_json(m, ev, NULL, &j, errbuf, errlen);
        iw_jw_finish(&j);
    }
    return iw_wbuf_error(b, errbuf, errlen);
}

int iw_map_write_xml(const iw_map *m, const iw_event *ev, const void *ctx, iw_xw *x, char *errbuf,
                     size_t errlen)
{
    writer w = {.dialect = IW_MAP_XML, .x = x, .b = x->b, .ev = ev, .ctx = ctx};
    scope_init(&w.sc, ev);
    if (m->root.name)
        write_rows(&w, &m->root, 1);
    else /* a fragment */
        write_rows(&w, m->root.children, m->root.n_children);
    return iw_wbuf_error(x->b, errbuf, errlen);
}

int iw_map_write_json(const iw_map *m, const iw_event *ev, const void *ctx, iw_jw *j, char *errbuf,
                      size_t errlen)
{
    writer w = {.dialect = IW_MAP_JSON, .j = j, .b = j->b, .ev = ev, .ctx = ctx};
    scope_init(&w.sc, ev);
    write_rows(&w, m->root.children, m->root.n_children);
    return iw_wbuf_error(j->b, errbuf, errlen);
}

/* ------------------------------------------------------------------ built-in mappings */

static pthread_mutex_t builtin_lock = PTHREAD_MUTEX_INITIALIZER;

static const iw_map_fn NO_FNS[] = {{NULL, NULL}};

static void builtin_read(iw_map_builtin *b)
{
    iw_map_errors errs = {.count = 0};
    cJSON *doc = cJSON_Parse(b->json);
    if (!doc) {
        snprintf(b->error, sizeof(b->error), "%s: built-in mapping is not JSON", b->name);
    } else if (map_parse(doc, "mapping", b->fns ? b->fns : NO_FNS, &b->map, &errs) != 0) {
        snprintf(b->error, sizeof(b->error), "%s: built-in %s: %s", b->name, errs.items[0].path,
                 errs.items[0].message);
    }
    cJSON_Delete(doc);
    __atomic_store_n(&b->state, *b->error ? -1 : 1, __ATOMIC_RELEASE);
}

const iw_map *iw_map_builtin_get(iw_map_builtin *b, char *errbuf, size_t errlen)
{
    int state = __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
    if (state == 0) {
        pthread_mutex_lock(&builtin_lock);
        if (b->state == 0)
            builtin_read(b);
        state = b->state;
        pthread_mutex_unlock(&builtin_lock);
    }
    if (state < 0) {
        snprintf(errbuf, errlen, "%s", b->error);
        return NULL;
    }
    return &b->map;
}
