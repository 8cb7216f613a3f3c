/* invoice.c: parses and validates an invoice event (JSON, cJSON) into the canonical model. */
#include "invoice.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "status.h"
#include "text.h"

/* Rules beyond the header, in short: paths in messages are jq-style with 0-based indexes
 * ("invoice.lines[0].quantity"); integer ids and version must be exact integers within
 * +-(2^53 - 1), since cJSON reads numbers as doubles (so 17.0 is 17, and 1e2 is "100");
 * a known key given twice is refused; unknown keys are ignored; null is the same as absent. */

/* Largest integer a JSON number carries exactly through cJSON's double: 2^53 - 1. Anything
 * larger may already have been rounded, so it is refused rather than silently changed. */
#define MAX_EXACT_INT 9007199254740991LL
/* Longest event_id or tenant; both become parts of Redis keys, result ids and headers. */
#define MAX_KEY_BYTES 128
/* Most target names one event may list. */
#define MAX_TARGETS 64
/* Most entries in lines, extra_charges or custom_fields. Each costs a few hundred bytes once
 * parsed, so without a cap 8 MB of "{}," would ask for about a gigabyte. */
#define MAX_ITEMS 10000
/* Longest JSON path we report ("invoice.lines[12].discount_amount"). */
#define PATH_MAX_BYTES 256
/* Most fields in one table: read_object marks the fields it has seen in a 64-bit mask. */
#define MAX_FIELDS 64

/* How a JSON value maps onto a struct member. */
enum kind {
    K_STR,      /* any string -> char * */
    K_ID,       /* string or exact integer -> char * (text) */
    K_DATE,     /* "YYYY-MM-DD" -> char * */
    K_TIME,     /* RFC 3339 timestamp -> char * */
    K_AMOUNT,   /* decimal string -> iw_amount */
    K_FLAG,     /* true/false -> iw_flag */
    K_COUNTRY,  /* "DE" -> char * */
    K_CURRENCY, /* "EUR" -> char * */
    K_UINT,     /* exact integer >= 0 -> int64_t */
    K_STRLIST,  /* array of non-empty strings -> char ** plus size_t count */
    K_OBJECT,   /* nested struct described by sub */
    K_ARRAY,    /* array of structs described by sub, plus size_t count */
};

struct table;

/* One JSON key of an object and where its value lands. */
typedef struct field {
    const char *name;                   /* JSON key, the same as the struct member */
    size_t off;                         /* offsetof the member */
    enum kind kind;                     /* how to read and store it */
    bool required;                      /* missing or null is an error; strings must be non-empty */
    const struct table *sub;            /* K_OBJECT, K_ARRAY: layout of the nested struct */
    size_t count_off;                   /* K_ARRAY, K_STRLIST: offsetof the size_t count */
    const char *(*check)(const char *); /* K_STR, K_ID as text: extra rule; reason or NULL */
} field;

/* The fields of one struct. */
typedef struct table {
    const field *fields; /* in validation order */
    size_t n;            /* number of fields */
    size_t size;         /* sizeof the struct, for arrays of it */
} table;

/* Table entries: F optional, REQ required, CHECKED required string with a rule, OBJ nested
 * struct, LIST array of structs (required: at least one), STRLIST array of strings. */
/* clang-format off */
#define F(T, m, k) {.name = #m, .off = offsetof(T, m), .kind = (k)}
#define REQ(T, m, k) {.name = #m, .off = offsetof(T, m), .kind = (k), .required = true}
#define CHECKED(T, m, fn) \
    {.name = #m, .off = offsetof(T, m), .kind = K_STR, .required = true, .check = (fn)}
#define OBJ(T, m, t, req) {.name = #m, .off = offsetof(T, m), .kind = K_OBJECT, .sub = &(t), \
                           .required = (req)}
#define LIST(T, m, n, t, req) {.name = #m, .off = offsetof(T, m), .kind = K_ARRAY, .sub = &(t), \
                               .count_off = offsetof(T, n), .required = (req)}
#define STRLIST(T, m, n) {.name = #m, .off = offsetof(T, m), .kind = K_STRLIST, \
                          .count_off = offsetof(T, n)}
#define TABLE(T, f) {(f), sizeof(f) / sizeof((f)[0]), sizeof(T)}
/* A required id that is printed in results and logs: see iw_text_name_problem. */
#define PRINTED_ID(T, m) {.name = #m, .off = offsetof(T, m), .kind = K_ID, .required = true, \
                          .check = iw_text_name_problem}

static const char *check_schema(const char *s);
static const char *check_type(const char *s);
static const char *check_key(const char *s);

static const field customer_fields[] = {
    F(iw_customer, id, K_ID),
    F(iw_customer, contact_id, K_ID),
    F(iw_customer, name, K_STR),
    F(iw_customer, email, K_STR),
    F(iw_customer, phone, K_STR),
    F(iw_customer, phone_ext, K_STR),
    F(iw_customer, fax, K_STR),
    F(iw_customer, website, K_STR),
    F(iw_customer, fiscal_id, K_STR),
    F(iw_customer, ec_vat_no, K_STR),
    F(iw_customer, company_reg_id, K_STR),
    F(iw_customer, notes, K_STR),
};
static const table customer_table = TABLE(iw_customer, customer_fields);

static const field address_fields[] = {
    F(iw_address, company, K_STR),
    F(iw_address, attn, K_STR),
    F(iw_address, first_name, K_STR),
    F(iw_address, last_name, K_STR),
    F(iw_address, line1, K_STR),
    F(iw_address, line2, K_STR),
    F(iw_address, line3, K_STR),
    F(iw_address, city, K_STR),
    F(iw_address, state, K_STR),
    F(iw_address, postal_code, K_ID),
    F(iw_address, country, K_COUNTRY),
    F(iw_address, email, K_STR),
    F(iw_address, phone, K_STR),
    F(iw_address, fax, K_STR),
    F(iw_address, is_default, K_FLAG),
};
static const table address_table = TABLE(iw_address, address_fields);

static const field target_refs_fields[] = {
    F(iw_target_refs, centra_id, K_ID),
    F(iw_target_refs, midnight_guid, K_ID),
    F(iw_target_refs, midnight_invoice_id, K_ID),
    F(iw_target_refs, ebiz_internal_id, K_ID),
    F(iw_target_refs, invoicexpress_id, K_ID),
    F(iw_target_refs, midnight_customer_id, K_ID),
    F(iw_target_refs, midnight_contact_id, K_ID),
};
static const table target_refs_table = TABLE(iw_target_refs, target_refs_fields);

static const field refs_fields[] = {
    F(iw_refs, account_id, K_ID),
    F(iw_refs, buyer_id, K_ID),
    F(iw_refs, order_id, K_ID),
    F(iw_refs, shipment_id, K_ID),
    F(iw_refs, refund_id, K_ID),
    F(iw_refs, division_id, K_ID),
    F(iw_refs, location_id, K_ID),
    F(iw_refs, sales_rep_id, K_ID),
    F(iw_refs, user_name, K_STR),
};
static const table refs_table = TABLE(iw_refs, refs_fields);

static const field flags_fields[] = {
    F(iw_flags, locked, K_FLAG),
    F(iw_flags, notify_customer, K_FLAG),
    F(iw_flags, email_invoice, K_FLAG),
    F(iw_flags, print_invoice, K_FLAG),
    F(iw_flags, display_item, K_FLAG),
};
static const table flags_table = TABLE(iw_flags, flags_fields);

static const field line_refs_fields[] = {
    F(iw_line_refs, midnight_line_id, K_ID),
    F(iw_line_refs, midnight_line_guid, K_ID),
    F(iw_line_refs, midnight_item_id, K_ID),
    F(iw_line_refs, midnight_order_id, K_ID),
};
static const table line_refs_table = TABLE(iw_line_refs, line_refs_fields);

static const field line_fields[] = {
    F(iw_line, line_no, K_ID),
    F(iw_line, line_id, K_ID),
    F(iw_line, sku, K_ID),
    F(iw_line, item_id, K_ID),
    F(iw_line, product_id, K_ID),
    F(iw_line, variation_id, K_ID),
    F(iw_line, size_id, K_ID),
    F(iw_line, name, K_STR),
    F(iw_line, description, K_STR),
    F(iw_line, quantity, K_AMOUNT),
    F(iw_line, unit, K_STR),
    F(iw_line, unit_price, K_AMOUNT),
    F(iw_line, gross_price, K_AMOUNT),
    F(iw_line, discount_pct, K_AMOUNT),
    F(iw_line, discount_amount, K_AMOUNT),
    F(iw_line, taxable, K_FLAG),
    F(iw_line, tax_rate, K_AMOUNT),
    F(iw_line, tax_name, K_STR),
    F(iw_line, tax_amount, K_AMOUNT),
    F(iw_line, line_subtotal, K_AMOUNT),
    F(iw_line, line_total, K_AMOUNT),
    F(iw_line, line_type, K_STR),
    F(iw_line, order_id, K_ID),
    OBJ(iw_line, target_refs, line_refs_table, false),
};
static const table line_table = TABLE(iw_line, line_fields);

static const field extra_charge_fields[] = {
    F(iw_extra_charge, key, K_STR),
    F(iw_extra_charge, id, K_ID),
    F(iw_extra_charge, description, K_STR),
    F(iw_extra_charge, amount, K_AMOUNT),
};
static const table extra_charge_table = TABLE(iw_extra_charge, extra_charge_fields);

static const field custom_field_fields[] = {
    F(iw_custom_field, name, K_STR),
    F(iw_custom_field, value, K_STR),
};
static const table custom_field_table = TABLE(iw_custom_field, custom_field_fields);

static const field invoice_fields[] = {
    PRINTED_ID(iw_invoice, id),
    F(iw_invoice, number, K_ID),
    F(iw_invoice, number_ext, K_STR),
    F(iw_invoice, status, K_STR),
    F(iw_invoice, document_type, K_STR),
    F(iw_invoice, type, K_STR),
    F(iw_invoice, store, K_STR),
    REQ(iw_invoice, currency, K_CURRENCY),
    F(iw_invoice, base_currency, K_CURRENCY),
    F(iw_invoice, currency_rate, K_AMOUNT),
    F(iw_invoice, issue_date, K_DATE),
    F(iw_invoice, due_date, K_DATE),
    F(iw_invoice, order_date, K_DATE),
    F(iw_invoice, ship_date, K_DATE),
    F(iw_invoice, po_date, K_DATE),
    F(iw_invoice, paid_at, K_TIME),
    F(iw_invoice, terms_code, K_STR),
    F(iw_invoice, terms_description, K_STR),
    F(iw_invoice, shipping_terms, K_STR),
    F(iw_invoice, ship_via, K_STR),
    F(iw_invoice, po_number, K_ID),
    F(iw_invoice, so_number, K_ID),
    F(iw_invoice, title, K_STR),
    F(iw_invoice, description, K_STR),
    F(iw_invoice, note_public, K_STR),
    F(iw_invoice, note_internal, K_STR),
    F(iw_invoice, subtotal, K_AMOUNT),
    F(iw_invoice, tax_total, K_AMOUNT),
    F(iw_invoice, discount_total, K_AMOUNT),
    F(iw_invoice, shipping_total, K_AMOUNT),
    F(iw_invoice, total, K_AMOUNT),
    F(iw_invoice, amount_paid, K_AMOUNT),
    F(iw_invoice, amount_due, K_AMOUNT),
    F(iw_invoice, retention_pct, K_AMOUNT),
    OBJ(iw_invoice, target_refs, target_refs_table, false),
    OBJ(iw_invoice, customer, customer_table, false),
    OBJ(iw_invoice, billing_address, address_table, false),
    OBJ(iw_invoice, shipping_address, address_table, false),
    OBJ(iw_invoice, refs, refs_table, false),
    OBJ(iw_invoice, flags, flags_table, false),
    LIST(iw_invoice, lines, n_lines, line_table, true),
    LIST(iw_invoice, extra_charges, n_extra_charges, extra_charge_table, false),
    LIST(iw_invoice, custom_fields, n_custom_fields, custom_field_table, false),
};
static const table invoice_table = TABLE(iw_invoice, invoice_fields);

/* schema comes first so that an event of another schema is named as such, not by a symptom. */
static const field event_fields[] = {
    CHECKED(iw_event, schema, check_schema),
    CHECKED(iw_event, event_id, check_key),
    CHECKED(iw_event, type, check_type),
    F(iw_event, occurred_at, K_TIME),
    F(iw_event, source, K_STR),
    CHECKED(iw_event, tenant, check_key),
    REQ(iw_event, version, K_UINT),
    STRLIST(iw_event, targets, n_targets),
    OBJ(iw_event, invoice, invoice_table, true),
};
static const table event_table = TABLE(iw_event, event_fields);
/* clang-format on */

/* read_object keeps one bit per field of a table. */
#define FITS(f) _Static_assert(sizeof(f) / sizeof((f)[0]) <= MAX_FIELDS, #f " has too many fields")
FITS(customer_fields);
FITS(address_fields);
FITS(target_refs_fields);
FITS(line_refs_fields);
FITS(refs_fields);
FITS(flags_fields);
FITS(line_fields);
FITS(extra_charge_fields);
FITS(custom_field_fields);
FITS(invoice_fields);
FITS(event_fields);

/* Deepest path the schema has ("invoice.lines[2].quantity" is 4 frames), with room to spare. */
#define MAX_FRAMES 8

/* One step of the JSON path: ".key" when key is set, else "[index]". */
typedef struct frame {
    const char *key; /* field name (static table text), or NULL for an array index */
    size_t index;    /* 0-based array index when key is NULL */
} frame;

/* Parse state: the JSON path of the value being read, and where errors go. The path is kept as
 * frames and only turned into text when an error is reported. */
typedef struct ctx {
    frame frames[MAX_FRAMES]; /* invoice, lines, [2], quantity */
    size_t depth;             /* frames in use */
    char *errbuf;             /* caller's buffer, may be NULL */
    size_t errlen;            /* its size */
} ctx;

/* Writes the jq-style path of the frames into path (PATH_MAX_BYTES, cut short if it must be)
 * and returns its length. */
static size_t format_path(const ctx *c, char *path)
{
    size_t plen = 0;
    path[0] = '\0';
    for (size_t d = 0; d < c->depth && d < MAX_FRAMES; d++) {
        const frame *fr = &c->frames[d];
        size_t room = PATH_MAX_BYTES - plen;
        int n = fr->key ? snprintf(path + plen, room, "%s%s", plen ? "." : "", fr->key)
                        : snprintf(path + plen, room, "[%zu]", fr->index);
        if (n > 0)
            plen = (size_t)n < room ? plen + (size_t)n : PATH_MAX_BYTES - 1;
    }
    return plen;
}

/* Writes "path: reason" (or just the reason at the top) and returns rc. */
__attribute__((format(printf, 3, 4))) static int fail(ctx *c, int rc, const char *fmt, ...)
{
    if (!c->errbuf || c->errlen == 0)
        return rc;
    char path[PATH_MAX_BYTES];
    size_t plen = format_path(c, path);
    int n = plen ? snprintf(c->errbuf, c->errlen, "%s: ", path) : 0;
    if (n < 0 || (size_t)n >= c->errlen)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errbuf + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* Enters ".key" (key set) or "[index]" (key NULL); path_pop leaves it again. */
static void path_push(ctx *c, const char *key, size_t index)
{
    if (c->depth < MAX_FRAMES)
        c->frames[c->depth] = (frame){.key = key, .index = index};
    c->depth++;
}

static void path_pop(ctx *c)
{
    c->depth--;
}

/* ---- value rules ---- */

static const char *check_schema(const char *s)
{
    return strcmp(s, "invoice-event/v1") == 0 ? NULL : "unsupported schema (want invoice-event/v1)";
}

static const char *check_type(const char *s)
{
    if (strcmp(s, "invoice.created") == 0 || strcmp(s, "invoice.updated") == 0)
        return NULL;
    return "unknown type (want invoice.created or invoice.updated)";
}

/* event_id and tenant end up in Redis keys ("{tenant:invoice}"), result ids ("<event_id>/<target>")
 * and idempotency keys ("<event_id>:<target>"), so they are kept to visible ASCII without the
 * separators those use. */
static const char *check_key(const char *s)
{
    if (strlen(s) > MAX_KEY_BYTES)
        return "longer than 128 bytes";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || strchr("/:{}", ch))
            return "may hold only visible ASCII characters other than '/', ':', '{' and '}'";
    }
    return NULL;
}

static bool all_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int to_int(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static bool upper_letters(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    return true;
}

/* "YYYY-MM-DD" naming a day that exists (2026-02-30 does not). Reads 10 bytes of s. */
static bool date_ok(const char *s)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' ||
        !all_digits(s + 8, 2))
        return false;
    int y = to_int(s, 4), m = to_int(s + 5, 2), d = to_int(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

static bool valid_date(const char *s)
{
    return strlen(s) == 10 && date_ok(s);
}

/* "HH:MM" with hours < 24 and minutes < 60. Reads 5 bytes of s. */
static bool hour_min_ok(const char *s)
{
    return all_digits(s, 2) && s[2] == ':' && all_digits(s + 3, 2) && to_int(s, 2) < 24 &&
           to_int(s + 3, 2) < 60;
}

/* RFC 3339 date-time: 2026-11-21T10:04:05(.123)?(Z|+01:00). Seconds may be 60 (leap). */
static bool valid_timestamp(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || !date_ok(s) || (s[10] != 'T' && s[10] != 't') || !hour_min_ok(s + 11) ||
        s[16] != ':' || !all_digits(s + 17, 2) || to_int(s + 17, 2) > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        const char *q = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == q)
            return false;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && strlen(p) == 6 && hour_min_ok(p + 1);
}

/* ---- reading values ---- */

static int store_copy(ctx *c, char **dst, const char *s)
{
    *dst = strdup(s);
    return *dst ? 0 : fail(c, IW_ENOMEM, "out of memory");
}

/* A JSON number that is an integer and survived the double exactly. */
static int exact_int(ctx *c, const cJSON *item, int64_t *out)
{
    double v = item->valuedouble;
    if (!(v >= -(double)MAX_EXACT_INT && v <= (double)MAX_EXACT_INT))
        return fail(c, IW_EINVAL, "number too big for its field");
    int64_t i = (int64_t)v;
    if ((double)i != v)
        return fail(c, IW_EINVAL, "expected an integer");
    *out = i;
    return 0;
}

static int read_string(ctx *c, const field *f, cJSON *item, char **dst)
{
    if (!cJSON_IsString(item))
        return fail(c, IW_EINVAL, "expected a string");
    const char *s = item->valuestring;
    if (f->required && s[0] == '\0')
        return fail(c, IW_EINVAL, "must not be empty");
    const char *why = f->check ? f->check(s) : NULL;
    if (why)
        return fail(c, IW_EINVAL, "%s", why);
    return store_copy(c, dst, item->valuestring);
}

static int read_id(ctx *c, const field *f, cJSON *item, char **dst)
{
    if (cJSON_IsNumber(item)) {
        int64_t v = 0;
        int rc = exact_int(c, item, &v);
        if (rc)
            return rc;
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)v);
        return store_copy(c, dst, text);
    }
    if (!cJSON_IsString(item))
        return fail(c, IW_EINVAL, "expected a string or an integer");
    return read_string(c, f, item, dst);
}

static int read_amount(ctx *c, const cJSON *item, iw_amount *dst)
{
    if (!cJSON_IsString(item))
        return fail(c, IW_EINVAL, "expected a decimal string");
    const char *s = item->valuestring;
    int rc = iw_decimal_parse(s, &dst->value);
    if (rc == IW_ERANGE) {
        const char *point = strchr(s, '.');
        if (point && strlen(point + 1) > IW_DECIMAL_MAX_SCALE)
            return fail(c, IW_EINVAL, "more than %d digits after the point", IW_DECIMAL_MAX_SCALE);
        return fail(c, IW_EINVAL, "number too big for its field");
    }
    if (rc)
        return fail(c, IW_EINVAL, "not a decimal number");
    dst->set = true;
    return 0;
}

/* Checks a string with a syntax rule, then stores it. */
static int read_checked(ctx *c, cJSON *item, char **dst, bool (*ok)(const char *), const char *want)
{
    if (!cJSON_IsString(item))
        return fail(c, IW_EINVAL, "expected %s", want);
    if (!ok(item->valuestring))
        return fail(c, IW_EINVAL, "not %s", want);
    return store_copy(c, dst, item->valuestring);
}

static bool country_ok(const char *s)
{
    return upper_letters(s, 2);
}

static bool currency_ok(const char *s)
{
    return upper_letters(s, 3);
}

static int read_strlist(ctx *c, const field *f, cJSON *item, char *base)
{
    if (!cJSON_IsArray(item))
        return fail(c, IW_EINVAL, "expected an array of strings");
    int n = cJSON_GetArraySize(item);
    if (n == 0)
        return fail(c, IW_EINVAL, "must not be empty (leave it out to use the configured routes)");
    if (n > MAX_TARGETS)
        return fail(c, IW_EINVAL, "%d entries; at most %d are allowed", n, MAX_TARGETS);
    char **list = calloc((size_t)n, sizeof *list);
    if (!list)
        return fail(c, IW_ENOMEM, "out of memory");
    *(char ***)(base + f->off) = list;
    size_t *count = (size_t *)(base + f->count_off);
    *count = (size_t)n;

    size_t i = 0;
    cJSON *el;
    cJSON_ArrayForEach(el, item)
    {
        path_push(c, NULL, i);
        int rc = 0;
        const char *why = NULL;
        if (!cJSON_IsString(el) || el->valuestring[0] == '\0')
            rc = fail(c, IW_EINVAL, "expected a non-empty string");
        else if ((why = iw_text_name_problem(el->valuestring)))
            rc = fail(c, IW_EINVAL, "%s", why);
        for (size_t k = 0; rc == 0 && k < i; k++)
            if (strcmp(list[k], el->valuestring) == 0)
                rc = fail(c, IW_EINVAL, "\"%s\" is listed twice", list[k]);
        if (rc == 0 && !(list[i] = strdup(el->valuestring)))
            rc = fail(c, IW_ENOMEM, "out of memory");
        path_pop(c);
        if (rc)
            return rc;
        i++;
    }
    return 0;
}

static int read_object(ctx *c, const table *t, cJSON *obj, char *base);

static int read_array(ctx *c, const field *f, cJSON *item, char *base)
{
    if (!cJSON_IsArray(item))
        return fail(c, IW_EINVAL, "expected an array");
    int n = cJSON_GetArraySize(item);
    if (n == 0) {
        if (f->required)
            return fail(c, IW_EINVAL, "must not be empty");
        return 0;
    }
    if (n > MAX_ITEMS)
        return fail(c, IW_EINVAL, "%d entries; at most %d are allowed", n, MAX_ITEMS);
    char *arr = calloc((size_t)n, f->sub->size);
    if (!arr)
        return fail(c, IW_ENOMEM, "out of memory");
    /* Owned by the event from here on, so a failure below frees it with the rest. */
    *(void **)(base + f->off) = arr;
    *(size_t *)(base + f->count_off) = (size_t)n;

    size_t i = 0;
    cJSON *el;
    cJSON_ArrayForEach(el, item)
    {
        path_push(c, NULL, i);
        int rc = cJSON_IsObject(el) ? read_object(c, f->sub, el, arr + i * f->sub->size)
                                    : fail(c, IW_EINVAL, "expected an object");
        path_pop(c);
        if (rc)
            return rc;
        i++;
    }
    return 0;
}

/* Reads one present, non-null value into base + f->off. */
static int read_value(ctx *c, const field *f, cJSON *item, char *base)
{
    char *p = base + f->off;
    switch (f->kind) {
    case K_STR: return read_string(c, f, item, (char **)p);
    case K_ID: return read_id(c, f, item, (char **)p);
    case K_DATE: return read_checked(c, item, (char **)p, valid_date, "a date (YYYY-MM-DD)");
    case K_TIME: return read_checked(c, item, (char **)p, valid_timestamp, "an RFC 3339 timestamp");
    case K_COUNTRY:
        return read_checked(c, item, (char **)p, country_ok,
                            "a country code (ISO 3166-1 alpha-2, 2 upper-case letters)");
    case K_CURRENCY:
        return read_checked(c, item, (char **)p, currency_ok,
                            "a currency code (ISO 4217, 3 upper-case letters)");
    case K_AMOUNT: return read_amount(c, item, (iw_amount *)p);
    case K_FLAG:
        if (!cJSON_IsBool(item))
            return fail(c, IW_EINVAL, "expected true or false");
        *(iw_flag *)p = cJSON_IsTrue(item) ? IW_FLAG_YES : IW_FLAG_NO;
        return 0;
    case K_UINT: {
        if (!cJSON_IsNumber(item))
            return fail(c, IW_EINVAL, "expected an integer");
        int rc = exact_int(c, item, (int64_t *)p);
        if (rc == 0 && *(int64_t *)p < 0)
            rc = fail(c, IW_EINVAL, "must not be negative");
        return rc;
    }
    case K_STRLIST: return read_strlist(c, f, item, base);
    case K_OBJECT:
        if (!cJSON_IsObject(item))
            return fail(c, IW_EINVAL, "expected an object");
        return read_object(c, f->sub, item, p);
    case K_ARRAY: return read_array(c, f, item, base);
    }
    return fail(c, IW_EINVAL, "unhandled field kind");
}

/* Gives the fields of an absent struct their "absent" values (flags are UNSET, not NO). */
static void set_absent(const table *t, char *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        if (f->kind == K_FLAG)
            *(iw_flag *)(base + f->off) = IW_FLAG_UNSET;
        else if (f->kind == K_OBJECT)
            set_absent(f->sub, base + f->off);
    }
}

/* Index in t of the field named key, or t->n when key is not one of them. Members usually come
 * in table order, so the field after the last match (*next) is tried first. */
static size_t find_field(const table *t, const char *key, size_t *next)
{
    size_t i = *next;
    if (i < t->n && strcmp(t->fields[i].name, key) == 0) {
        *next = i + 1;
        return i;
    }
    for (i = 0; i < t->n; i++) {
        const char *name = t->fields[i].name;
        if (name[0] == key[0] && strcmp(name, key) == 0) {
            *next = i + 1;
            return i;
        }
    }
    return t->n;
}

/* Reads the fields of t from obj into base (zeroed); unknown keys are ignored. Each member is
 * looked at once: the first one with a field's name is the value (as cJSON finds it), and a
 * later one with the same name makes the key ambiguous, since another reader might take the
 * last, so a known key given twice is refused. */
static int read_object(ctx *c, const table *t, cJSON *obj, char *base)
{
    cJSON *items[MAX_FIELDS];
    uint64_t seen = 0, twice = 0;
    size_t next = 0;
    for (cJSON *m = obj->child; m && m->string; m = m->next) {
        size_t i = find_field(t, m->string, &next);
        if (i == t->n)
            continue;
        uint64_t bit = (uint64_t)1 << i;
        if (seen & bit) {
            twice |= bit;
        } else {
            seen |= bit;
            items[i] = m;
        }
    }

    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        uint64_t bit = (uint64_t)1 << i;
        cJSON *item = (seen & bit) && !cJSON_IsNull(items[i]) ? items[i] : NULL;
        if (!item && !f->required) {
            if (f->kind == K_FLAG)
                *(iw_flag *)(base + f->off) = IW_FLAG_UNSET;
            else if (f->kind == K_OBJECT)
                set_absent(f->sub, base + f->off);
            continue;
        }
        path_push(c, f->name, 0);
        int rc;
        if (!item)
            rc = fail(c, IW_EINVAL, "required field is missing");
        else if (twice & bit)
            rc = fail(c, IW_EINVAL, "key appears more than once");
        else
            rc = read_value(c, f, item, base);
        path_pop(c);
        if (rc)
            return rc;
    }
    return 0;
}

/* Frees what read_object stored under base; works on a partly filled struct. */
static void free_fields(const table *t, char *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        char *p = base + f->off;
        switch (f->kind) {
        case K_STR:
        case K_ID:
        case K_DATE:
        case K_TIME:
        case K_COUNTRY:
        case K_CURRENCY: free(*(char **)p); break;
        case K_STRLIST: {
            char **list = *(char ***)p;
            size_t n = *(size_t *)(base + f->count_off);
            for (size_t k = 0; list && k < n; k++)
                free(list[k]);
            free(list);
            break;
        }
        case K_OBJECT: free_fields(f->sub, p); break;
        case K_ARRAY: {
            char *arr = *(char **)p;
            size_t n = *(size_t *)(base + f->count_off);
            for (size_t k = 0; arr && k < n; k++)
                free_fields(f->sub, arr + k * f->sub->size);
            free(arr);
            break;
        }
        case K_AMOUNT:
        case K_FLAG:
        case K_UINT: break;
        }
    }
}

/* ---- raw text checks, before cJSON sees the bytes ---- */

/* Word-at-a-time helpers: each byte of a uint64_t, and its top bits. */
#define ONE_BYTES 0x0101010101010101ull
#define HIGH_BITS 0x8080808080808080ull

/* Eight bytes of s as one word (any alignment, any byte order). */
static uint64_t load8(const unsigned char *s)
{
    uint64_t w;
    memcpy(&w, s, sizeof w);
    return w;
}

/* Bytes that end the plain run of a string: '"', '\\' and control characters (below 0x20). */
/* clang-format off */
static const bool string_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};
/* clang-format on */

/* Offset of the first byte at or after i that ends the plain run of a string, or len. */
static size_t skip_plain(const unsigned char *s, size_t i, size_t len)
{
    for (; len - i >= 4; i += 4) {
        if (string_stop[s[i]])
            return i;
        if (string_stop[s[i + 1]])
            return i + 1;
        if (string_stop[s[i + 2]])
            return i + 2;
        if (string_stop[s[i + 3]])
            return i + 3;
    }
    while (i < len && !string_stop[s[i]])
        i++;
    return i;
}

/* Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or len when all is well. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 16 && ((load8(s + i) | load8(s + i + 8)) & HIGH_BITS) == 0) {
            i += 16; /* sixteen ASCII bytes */
            continue;
        }
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((b & 0xE0) == 0xC0) {
            n = 2, cp = b & 0x1Fu, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3, cp = b & 0x0Fu, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4, cp = b & 0x07u, min = 0x10000;
        } else {
            return i;
        }
        if (n > len - i)
            return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n;
    }
    return len;
}

/* Refuses what cJSON would accept or choke on: oversize input, bad UTF-8, nesting deeper than
 * IW_EVENT_MAX_DEPTH (cJSON recurses per level), raw control characters and \u0000 in strings
 * (a NUL would silently cut the C string short). Tracks strings exactly as cJSON does. */
static int prescan_limits(ctx *c, const char *json, size_t len, size_t max_bytes, int max_depth,
                          const char *what)
{
    if (len > max_bytes)
        return fail(c, IW_EINVAL, "%s is %zu bytes; the limit is %zu", what, len, max_bytes);
    const unsigned char *s = (const unsigned char *)json;
    size_t bad = utf8_invalid_at(s, len);
    if (bad < len)
        return fail(c, IW_EINVAL, "invalid UTF-8 at byte %zu", bad);

    bool blank = true;
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char ch = s[i];
        switch (ch) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            i++;
            while (len - i >= 8 && load8(s + i) == ' ' * ONE_BYTES)
                i += 8; /* indentation */
            while (i < len && s[i] == ' ')
                i++;
            continue;
        case '"':
            for (i++;; i++) {
                i = skip_plain(s, i, len);
                if (i == len)
                    return 0; /* unterminated: cJSON reports where */
                ch = s[i];
                if (ch == '"')
                    break;
                if (ch == '\\' && i + 1 < len) {
                    if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
                        return fail(
                            c, IW_EINVAL,
                            "string at byte %zu contains \\u0000 (NUL), which is not allowed", i);
                    i++; /* the escaped character cannot end the string */
                } else if (ch < 0x20) {
                    return fail(c, IW_EINVAL,
                                "invalid JSON at byte %zu: control character in a string", i);
                }
            }
            break;
        case '{':
        case '[':
            if (++depth > max_depth)
                return fail(c, IW_EINVAL, "JSON nested deeper than %d levels at byte %zu",
                            max_depth, i);
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            break;
        default:
            if (ch < 0x20)
                return fail(c, IW_EINVAL, "invalid JSON at byte %zu", i);
            break;
        }
        blank = false;
        i++;
    }
    if (blank)
        return fail(c, IW_EINVAL, "%s is empty", what);
    return 0;
}

static int prescan(ctx *c, const char *json, size_t len)
{
    return prescan_limits(c, json, len, IW_EVENT_MAX_BYTES, IW_EVENT_MAX_DEPTH, "event");
}

int iw_json_prescan(const char *json, size_t len, size_t max_bytes, int max_depth, const char *what,
                    char *errbuf, size_t errlen)
{
    ctx c = {.errbuf = errbuf, .errlen = errlen};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (memchr(json, '\0', len))
        return fail(&c, IW_EINVAL, "NUL byte at byte %zu",
                    (size_t)((const char *)memchr(json, '\0', len) - json));
    return prescan_limits(&c, json, len, max_bytes, max_depth, what);
}

/* ---- public ---- */

int iw_event_parse(const char *json, size_t len, iw_event **out, char *errbuf, size_t errlen)
{
    ctx c = {.errbuf = errbuf, .errlen = errlen};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out)
        return fail(&c, IW_EINVAL, "no place for the event");
    *out = NULL;
    if (!json)
        return fail(&c, IW_EINVAL, "event is empty");
    int rc = prescan(&c, json, len);
    if (rc)
        return rc;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root)
        return fail(&c, IW_EINVAL, "invalid JSON at byte %zu", end ? (size_t)(end - json) : 0);
    size_t tail = (size_t)(end - json);
    while (tail < len &&
           (json[tail] == ' ' || json[tail] == '\t' || json[tail] == '\r' || json[tail] == '\n'))
        tail++;
    if (tail < len) {
        rc = fail(&c, IW_EINVAL, "invalid JSON at byte %zu: text after the event", tail);
    } else if (!cJSON_IsObject(root)) {
        rc = fail(&c, IW_EINVAL, "an event must be a JSON object");
    }
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }

    iw_event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        cJSON_Delete(root);
        return fail(&c, IW_ENOMEM, "out of memory");
    }
    rc = read_object(&c, &event_table, root, (char *)ev);
    cJSON_Delete(root);
    if (rc) {
        iw_event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void iw_event_free(iw_event *ev)
{
    if (!ev)
        return;
    free_fields(&event_table, (char *)ev);
    free(ev);
}
