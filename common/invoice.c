/* invoice.c: parses and validates an invoice event (JSON) into the canonical model, in one pass
 * over the text: no intermediate tree. */
#include "invoice.h"

#include <locale.h>
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
 * +-(2^53 - 1), since numbers are read as doubles (so 17.0 is 17, and 1e2 is "100");
 * a known key given twice is refused; unknown keys are ignored; null is the same as absent.
 * When an event breaks several rules, the one reported is the first in the order of the tables
 * below (depth first), whatever the order of the members; a syntax error anywhere comes first. */

/* Largest integer a JSON number carries exactly through a double: 2^53 - 1. Anything
 * larger may already have been rounded, so it is refused rather than silently changed. */
#define MAX_EXACT_INT 9007199254740991LL
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
    size_t name_len;                    /* strlen(name) */
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
#define FIELD(T, m, k) .name = #m, .name_len = sizeof(#m) - 1, .off = offsetof(T, m), .kind = (k)
#define F(T, m, k) {FIELD(T, m, k)}
#define REQ(T, m, k) {FIELD(T, m, k), .required = true}
#define CHECKED(T, m, fn) {FIELD(T, m, K_STR), .required = true, .check = (fn)}
#define OBJ(T, m, t, req) {FIELD(T, m, K_OBJECT), .sub = &(t), .required = (req)}
#define LIST(T, m, n, t, req) {FIELD(T, m, K_ARRAY), .sub = &(t), .count_off = offsetof(T, n), \
                               .required = (req)}
#define STRLIST(T, m, n) {FIELD(T, m, K_STRLIST), .count_off = offsetof(T, n)}
#define TABLE(T, f) {(f), sizeof(f) / sizeof((f)[0]), sizeof(T)}
/* A required id that is printed in results and logs: see iw_text_name_problem. */
#define PRINTED_ID(T, m) {FIELD(T, m, K_ID), .required = true, .check = check_printed_id}

static const char *check_schema(const char *s);
static const char *check_type(const char *s);
static const char *check_key(const char *s);
static const char *check_printed_id(const char *s);

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
    size_t index;    /* 0-based array index; for a key, the field's place in its table */
} frame;

/* Parse state: the JSON path of the value being read, the rule broken first so far, and where
 * errors go. The path is kept as frames and only turned into text when an error is reported. */
typedef struct ctx {
    frame frames[MAX_FRAMES];  /* invoice, lines, [2], quantity */
    size_t depth;              /* frames in use */
    int err_rc;                /* 0, or the error kept (its message is in errbuf) */
    size_t err_at[MAX_FRAMES]; /* the index of each frame of its path */
    size_t err_depth;          /* frames in its path */
    char *errbuf;              /* caller's buffer, may be NULL */
    size_t errlen;             /* its size */
    bool prescan_nul;          /* the pre-scan refused a \u0000, at prescan_nul_at */
    size_t prescan_nul_at;
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

static int vfail(ctx *c, int rc, const char *fmt, va_list ap)
{
    if (!c->errbuf || c->errlen == 0)
        return rc;
    char path[PATH_MAX_BYTES];
    size_t plen = format_path(c, path);
    int n = plen ? snprintf(c->errbuf, c->errlen, "%s: ", path) : 0;
    if (n < 0 || (size_t)n >= c->errlen)
        return rc;
    vsnprintf(c->errbuf + n, c->errlen - (size_t)n, fmt, ap);
    return rc;
}

/* Writes "path: reason" (or just the reason at the top) and returns rc. */
__attribute__((format(printf, 3, 4))) static int fail(ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, rc, fmt, ap);
    va_end(ap);
    return rc;
}

/* Whether the current path comes before the kept error's, in table order, depth first (a path
 * before the paths under it); a tie goes to the current path when tie is set. */
static bool comes_first(const ctx *c, bool tie)
{
    if (!c->err_rc)
        return true;
    size_t n = c->depth < c->err_depth ? c->depth : c->err_depth;
    for (size_t d = 0; d < n && d < MAX_FRAMES; d++)
        if (c->frames[d].index != c->err_at[d])
            return c->frames[d].index < c->err_at[d];
    return c->depth < c->err_depth || (tie && c->depth == c->err_depth);
}

/* Keeps the current path as the error's. */
static void keep_path(ctx *c)
{
    c->err_rc = IW_EINVAL;
    c->err_depth = c->depth;
    for (size_t d = 0; d < c->depth && d < MAX_FRAMES; d++)
        c->err_at[d] = c->frames[d].index;
}

/* Notes a broken rule at the current path and lets reading go on: the message is kept when it
 * comes before the one kept so far (the first rule the fixed order would have met). */
__attribute__((format(printf, 2, 3))) static void note(ctx *c, const char *fmt, ...)
{
    if (!comes_first(c, false))
        return;
    keep_path(c);
    va_list ap;
    va_start(ap, fmt);
    vfail(c, IW_EINVAL, fmt, ap);
    va_end(ap);
}

/* A known key given twice: at its path this comes before anything wrong with the first value,
 * which is then never looked at. */
static void note_twice(ctx *c)
{
    if (!comes_first(c, true))
        return;
    keep_path(c);
    fail(c, IW_EINVAL, "key appears more than once");
}

/* Enters ".key" (key set; index is the field's place in its table) or "[index]" (key NULL);
 * path_pop leaves it again. */
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
    if (strlen(s) > IW_EVENT_MAX_KEY_BYTES)
        return "longer than 128 bytes";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || strchr("/:{}", ch))
            return "may hold only visible ASCII characters other than '/', ':', '{' and '}'";
    }
    return NULL;
}

/* invoice.id is printed in results and logs: a printable name of at most
 * IW_EVENT_MAX_NAME_BYTES. */
static const char *check_printed_id(const char *s)
{
    if (strlen(s) > IW_EVENT_MAX_NAME_BYTES)
        return "longer than 1024 bytes";
    return iw_text_name_problem(s);
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
    return all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) && s[7] == '-' &&
           all_digits(s + 8, 2) &&
           iw_text_day_exists(to_int(s, 4), to_int(s + 5, 2), to_int(s + 8, 2));
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

static bool country_ok(const char *s)
{
    return upper_letters(s, 2);
}

static bool currency_ok(const char *s)
{
    return upper_letters(s, 3);
}

/* What a text kind wants ("expected ..." when the value is no string, "not ..." when the text
 * breaks ok), and its syntax rule (NULL: any text; K_STR and K_ID use field.check instead). */
static const struct text_rule {
    const char *want;
    bool (*ok)(const char *);
} text_rules[] = {
    [K_STR] = {"a string", NULL},
    [K_ID] = {"a string or an integer", NULL},
    [K_DATE] = {"a date (YYYY-MM-DD)", valid_date},
    [K_TIME] = {"an RFC 3339 timestamp", valid_timestamp},
    [K_COUNTRY] = {"a country code (ISO 3166-1 alpha-2, 2 upper-case letters)", country_ok},
    [K_CURRENCY] = {"a currency code (ISO 4217, 3 upper-case letters)", currency_ok},
};

/* Whether s, read for text field f, keeps f's rules; notes the one it breaks. */
static bool text_ok(ctx *c, const field *f, const char *s)
{
    const struct text_rule *rule = &text_rules[f->kind];
    if (rule->ok) {
        if (rule->ok(s))
            return true;
        note(c, "not %s", rule->want);
        return false;
    }
    const char *why = NULL;
    if (f->required && s[0] == '\0')
        note(c, "must not be empty");
    else if (f->check && (why = f->check(s)))
        note(c, "%s", why);
    else
        return true;
    return false;
}

/* True when the JSON number text s[0..n) is a whole number, read as the decimal it is written
 * in (a double cannot tell: 1.9999999999999999 reads as 2): every digit after the point, once
 * the exponent has moved it, is zero. 17, 17.0, 1.7e1 and 1.0E7 are whole; 17.5e0 is not. */
static bool integer_literal(const unsigned char *s, size_t n)
{
    size_t i = s[0] == '-', il = 0, fl = 0;
    const unsigned char *ip = s + i, *fp = NULL;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, il++;
    if (i < n && s[i] == '.')
        for (fp = s + ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            fl++;
    long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        bool neg = ++i < n && s[i] == '-';
        i += i < n && (s[i] == '-' || s[i] == '+');
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            e = e < 100000 ? e * 10 + (s[i] - '0') : e; /* past any digit count anyway */
        e = neg ? -e : e;
    }
    long point = (long)il + e; /* digits before the point */
    for (size_t k = 0; k < il + fl; k++)
        if ((long)k >= point && (k < il ? ip[k] : fp[k - il]) != '0')
            return false;
    return true;
}

/* A JSON number that is an integer and survived the double exactly; notes why not. */
static bool exact_int(ctx *c, double v, int64_t *out)
{
    if (!(v >= -(double)MAX_EXACT_INT && v <= (double)MAX_EXACT_INT)) {
        note(c, "number too big for its field");
        return false;
    }
    int64_t i = (int64_t)v;
    if ((double)i != v) {
        note(c, "expected an integer");
        return false;
    }
    *out = i;
    return true;
}

/* A decimal string (n bytes) into *dst; notes why not. */
static void amount_from(ctx *c, const char *s, size_t n, iw_amount *dst)
{
    int rc = iw_decimal_parse_n(s, n, &dst->value);
    if (rc == IW_ERANGE) {
        const char *point = memchr(s, '.', n);
        if (point && (size_t)(s + n - point - 1) > IW_DECIMAL_MAX_SCALE)
            note(c, "more than %d digits after the point", IW_DECIMAL_MAX_SCALE);
        else
            note(c, "number too big for its field");
    } else if (rc) {
        note(c, "not a decimal number");
    } else {
        dst->set = true;
    }
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

/* Whether structs of t hold arrays of their own (or in nested structs). */
static bool holds_arrays(const table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        if (f->kind == K_ARRAY || f->kind == K_STRLIST ||
            (f->kind == K_OBJECT && holds_arrays(f->sub)))
            return true;
    }
    return false;
}

/* Frees the arrays read_object allocated under base (the strings are in the event's block);
 * works on a partly filled struct. */
static void free_arrays(const table *t, char *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        char *p = base + f->off;
        if (f->kind == K_STRLIST) {
            free(*(char ***)p);
        } else if (f->kind == K_OBJECT) {
            free_arrays(f->sub, p);
        } else if (f->kind == K_ARRAY) {
            char *arr = *(char **)p;
            size_t n = *(size_t *)(base + f->count_off);
            for (size_t k = 0; arr && k < n && holds_arrays(f->sub); k++)
                free_arrays(f->sub, arr + k * f->sub->size);
            free(arr);
        }
    }
}

/* ---- the event's block of strings ---- */

/* One piece of the block: strings packed one after another. */
struct iw_event_text {
    struct iw_event_text *prev; /* the piece filled before this one, or NULL */
    size_t size, used;          /* bytes in text, bytes given out */
    char text[];
};

/* n bytes in ev's block; when the current piece is full, a new one of twice its size (first for
 * the first piece), or n if that is more. NULL when out of memory. */
static char *text_space(iw_event *ev, size_t n, size_t first)
{
    struct iw_event_text *t = ev->text;
    if (!t || t->size - t->used < n) {
        size_t size = t ? 2 * t->size : first;
        struct iw_event_text *fresh = malloc(sizeof *fresh + (size > n ? size : n));
        if (!fresh)
            return NULL;
        *fresh = (struct iw_event_text){.prev = t, .size = size > n ? size : n};
        ev->text = t = fresh;
    }
    char *p = t->text + t->used;
    t->used += n;
    return p;
}

/* Whether values of kind k are stored as text (char *). */
static bool is_text(enum kind k)
{
    enum {
        TEXT_KINDS = 1u << K_STR | 1u << K_ID | 1u << K_DATE | 1u << K_TIME | 1u << K_COUNTRY |
                     1u << K_CURRENCY
    };
    return (TEXT_KINDS >> k) & 1u;
}

/* Moves the strings of the structs under base that point into [from, from + n) to the same
 * place in to. */
static void rebase_text(const table *t, char *base, uintptr_t from, size_t n, char *to)
{
    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        char *p = base + f->off;
        size_t count = f->count_off ? *(size_t *)(base + f->count_off) : 1;
        char **strs = f->kind == K_STRLIST ? *(char ***)p : (char **)p;
        if (is_text(f->kind) || f->kind == K_STRLIST) {
            for (size_t k = 0; strs && k < count; k++)
                if (strs[k] && (uintptr_t)strs[k] - from < n)
                    strs[k] = to + ((uintptr_t)strs[k] - from);
        } else if (f->kind == K_OBJECT) {
            rebase_text(f->sub, p, from, n, to);
        } else if (f->kind == K_ARRAY) {
            for (size_t k = 0; *(char **)p && k < count; k++)
                rebase_text(f->sub, *(char **)p + k * f->sub->size, from, n, to);
        }
    }
}

/* Gives back the unused end of ev's block when it is one piece (in place as a rule; when the
 * allocator moves it, the strings follow). */
static void fit_text(iw_event *ev)
{
    struct iw_event_text *t = ev->text;
    if (!t || t->prev || t->size - t->used < 64)
        return;
    uintptr_t from = (uintptr_t)t->text;
    size_t used = t->used;
    struct iw_event_text *fit = realloc(t, sizeof *t + used);
    if (!fit)
        return; /* the old piece is still whole */
    fit->size = used;
    ev->text = fit;
    if ((uintptr_t)fit->text != from)
        rebase_text(&event_table, (char *)ev, from, used, fit->text);
}

static void free_text(struct iw_event_text *t)
{
    while (t) {
        struct iw_event_text *prev = t->prev;
        free(t);
        t = prev;
    }
}

/* ---- raw text checks, before the reader sees the bytes ---- */

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

/* Four bytes of s as one word. */
static uint32_t load4(const unsigned char *s)
{
    uint32_t w;
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

/* Marks with their top bit the bytes of w that end the plain run of a string. A mark may be
 * wrong only above a right one (a borrow carries upwards), so the lowest mark is exact. */
static uint64_t stop_marks(uint64_t w)
{
    uint64_t q = w ^ (ONE_BYTES * '"'), b = w ^ (ONE_BYTES * '\\');
    return (((q - ONE_BYTES) & ~q) | ((b - ONE_BYTES) & ~b) | ((w - ONE_BYTES * 0x20) & ~w)) &
           HIGH_BITS;
}

/* Offset of the first byte at or after i that ends the plain run of a string, or len. The bytes
 * looked at are ORed into *high (so a byte of 0x80 or more sets a bit of HIGH_BITS there). */
static inline __attribute__((always_inline)) size_t skip_plain(const unsigned char *s, size_t i,
                                                               size_t len, uint64_t *high)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; len - i >= 8; i += 8) {
        uint64_t w = load8(s + i), m = stop_marks(w);
        *high |= w;
        if (m)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
#endif
    for (; i < len && !string_stop[s[i]]; i++)
        *high |= s[i];
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

/* Refuses what a parser (cJSON for the config, the reader below for events) would accept or
 * choke on: oversize input, bad UTF-8, nesting deeper than max_depth (both recurse per level),
 * raw control characters and \u0000 in strings (a NUL would silently cut the C string short).
 * Tracks strings exactly as both do. */
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
                uint64_t high = 0;
                i = skip_plain(s, i, len, &high);
                if (i == len)
                    return 0; /* unterminated: the parser reports where */
                ch = s[i];
                if (ch == '"')
                    break;
                if (ch == '\\' && i + 1 < len) {
                    if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) {
                        c->prescan_nul = true;
                        c->prescan_nul_at = i;
                        return fail(
                            c, IW_EINVAL,
                            "string at byte %zu contains \\u0000 (NUL), which is not allowed", i);
                    }
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

/* ---- the reader: JSON text straight into the model ---- */

/* The grammar is JSON's (RFC 8259), and a UTF-8 byte order mark may come first. cJSON 1.7 (the
 * parser used before, and the config loader's) is more lenient in two places this reader is
 * not: a number is only what RFC 8259 writes (cJSON took 017, 1. and 1.e1), and "\u" must be
 * followed by four hex digits (cJSON read other text as U+0000 and cut the string short). The
 * pre-scan has already refused what this reader relies on never seeing: bad UTF-8, raw control
 * characters, \u0000, nesting deeper than IW_EVENT_MAX_DEPTH.
 *
 * Members are read in the order they come and stored as they are read; a broken rule is noted
 * (see note) and reading goes on, so that a syntax error later still wins and the rule reported
 * is the first in table order. */

typedef struct reader {
    const unsigned char *s; /* the text */
    size_t len;             /* its length */
    size_t pos;             /* the next byte to read */
    int depth;              /* objects and arrays open */
    int stop;      /* 0, or why reading stopped: IW_EINVAL (syntax, at bad_at), IW_ENOMEM */
    size_t bad_at; /* where the text stopped being JSON */
    const char *why; /* what is wrong there, when the reader knows it (NULL: not said) */
    ctx *c;
    iw_event *ev;      /* whose block the strings go to */
    size_t first_text; /* size of the block's first piece */
    bool xml_unsafe;   /* iw_event.xml_unsafe, seen in a string (or a key) so far */
    bool in_key;       /* a member's name is being read */
    int skipping;      /* values being read over (an unknown key's, say) */
    bool nul_noted;    /* a \u0000 in a field's value was noted by its path, the first at */
    size_t nul_at;
    char nul_msg[PATH_MAX_BYTES + 64]; /* its own message (the note kept may be another's) */
    char why_path[PATH_MAX_BYTES];     /* the field whose value holds the fault why names, ""
                                        * when it is not in a field's value */
} reader;

/* The bytes between the quotes of a string token. */
typedef struct span {
    size_t start, end;
    bool escaped; /* holds a backslash */
} span;

/* Every function below that returns int returns 0, or -1 when reading stopped. */

static int syntax_error(reader *r, size_t at)
{
    r->stop = IW_EINVAL;
    r->bad_at = at;
    return -1;
}

static int out_of_memory(reader *r)
{
    r->stop = IW_ENOMEM;
    fail(r->c, IW_ENOMEM, "out of memory");
    return -1;
}

/* The byte at pos, or 0 at the end (the pre-scan refuses NUL bytes). */
static unsigned char peek(const reader *r)
{
    return r->pos < r->len ? r->s[r->pos] : 0;
}

static inline void skip_space(reader *r)
{
    static const bool space[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};
    const unsigned char *s = r->s;
    size_t i = r->pos, len = r->len;
    if (i < len && s[i] > ' ')
        return; /* compact JSON: no space between tokens */
    while (i < len && space[s[i]])
        i++;
    r->pos = i;
}

/* Whether the literal word (true, false, null) is next. */
static bool next_is(const reader *r, const char *word, size_t n)
{
    return r->len - r->pos >= n && memcmp(r->s + r->pos, word, n) == 0;
}

static int literal(reader *r, const char *word, size_t n)
{
    if (!next_is(r, word, n))
        return syntax_error(r, r->pos);
    r->pos += n;
    return 0;
}

static bool number_start(unsigned char ch)
{
    return ch == '-' || (ch >= '0' && ch <= '9');
}

static bool number_byte(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || ch == '-' || ch == '+' || ch == '.' || ch == 'e' ||
           ch == 'E';
}

/* The length of the JSON number at the start of s[0..room) (RFC 8259: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?), or 0 when it does not start one. */
static size_t json_number_len(const unsigned char *s, size_t room)
{
    size_t i = s[0] == '-';
#define DIGIT(k) ((k) < room && s[k] >= '0' && s[k] <= '9')
    if (!DIGIT(i))
        return 0;
    if (s[i++] != '0')
        while (DIGIT(i))
            i++;
    if (i < room && s[i] == '.') {
        if (!DIGIT(i + 1))
            return 0;
        for (i++; DIGIT(i); i++)
            ;
    }
    if (i < room && (s[i] == 'e' || s[i] == 'E')) {
        size_t k = i + 1 + (i + 1 < room && (s[i + 1] == '+' || s[i + 1] == '-'));
        if (!DIGIT(k))
            return 0;
        for (i = k; DIGIT(i); i++)
            ;
    }
#undef DIGIT
    return i;
}

/* A JSON number, read as strtod reads its text (whole, however long). A text that is not one
 * (a leading zero, a point or an exponent without digits: 017, 1., 1.e1) is a syntax error,
 * as any JSON parser says: read leniently, 007 would become the id 7. */
static int read_number(reader *r, double *out)
{
    const unsigned char *s = r->s + r->pos;
    size_t room = r->len - r->pos;
    size_t n = room && number_start(s[0]) ? json_number_len(s, room) : 0;
    if (n == 0 || (n < room && number_byte(s[n])))
        return syntax_error(r, r->pos);
    /* Up to 15 digits alone: exact in a double, the value strtod gives. */
    size_t neg = s[0] == '-';
    if (n - neg <= 15) {
        uint64_t v = 0;
        size_t i = neg;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            v = v * 10 + (uint64_t)(s[i++] - '0');
        if (i == n) {
            *out = neg ? -(double)v : (double)v;
            r->pos += n;
            return 0;
        }
    }
    /* The text goes to strtod, on the heap when it is long (the event's size bounds it). */
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return out_of_memory(r);
    char point = localeconv()->decimal_point[0];
    for (size_t k = 0; k < n; k++)
        buf[k] = s[k] == '.' ? point : (char)s[k];
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    r->pos += n;
    return 0;
}

/* Four hex digits, or -1. */
static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = s[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes the escapes of sp into out (room for the span's length plus a NUL), or with out NULL
 * only checks them. Returns the decoded length, or -1 after a syntax error at the backslash. */
static long unescape(reader *r, const span *sp, char *out)
{
    const unsigned char *s = r->s;
    size_t n = 0;
    for (size_t i = sp->start; i < sp->end;) {
        if (s[i] != '\\') {
            if (out)
                out[n] = (char)s[i];
            n++, i++;
            continue;
        }
        static const char simple[256] = {['b'] = '\b', ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r',
                                         ['t'] = '\t', ['"'] = '"',  ['\\'] = '\\', ['/'] = '/'};
        unsigned char e = s[i + 1]; /* the scan paired every backslash with a byte */
        if (simple[e]) {
            r->xml_unsafe |= e == 'b' || e == 'f';
            if (out)
                out[n] = simple[e];
            n++, i += 2;
            continue;
        }
        long cp = e == 'u' && sp->end - i >= 6 ? hex4(s + i + 2) : -1;
        size_t used = 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a UTF-16 pair: the low half must follow */
            long lo =
                sp->end - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u' ? hex4(s + i + 8) : -1;
            cp = lo >= 0xDC00 && lo <= 0xDFFF ? 0x10000 + ((cp & 0x3FF) << 10) + (lo & 0x3FF) : -1;
            used = 12;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = -1;
        }
        if (cp == 0 && !r->in_key && !r->skipping && r->c->depth) {
            /* in a field's value: named by its path, as a value's other faults are (a key, or
             * a value read over, is named by where it is, by the pre-scan) */
            note(r->c, "contains \\u0000 (NUL), which is not allowed");
            if (!r->nul_noted) {
                char path[PATH_MAX_BYTES];
                format_path(r->c, path);
                snprintf(r->nul_msg, sizeof(r->nul_msg),
                         "%s: contains \\u0000 (NUL), which is not allowed", path);
                r->nul_noted = true, r->nul_at = i;
            }
            i += used;
            continue;
        }
        if (cp <= 0) {
            r->why = e != 'u' ? "an escape JSON does not have"
                     : used == 12 || (cp < 0 && sp->end - i >= 6 && hex4(s + i + 2) >= 0xD800)
                         ? "a UTF-16 surrogate escape without its pair is no character"
                         : "\\u needs four hex digits";
            if (!r->in_key && !r->skipping && r->c->depth) /* review 99: named by its field */
                format_path(r->c, r->why_path);
            return syntax_error(r, i); /* \\u0000 included */
        }
        r->xml_unsafe |=
            (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xFFFE || cp == 0xFFFF;
        unsigned char u[4];
        size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        static const unsigned char lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
        for (size_t j = k - 1; j > 0; j--, cp >>= 6)
            u[j] = (unsigned char)(0x80 | (cp & 0x3F));
        u[0] = (unsigned char)(lead[k] | cp);
        if (out)
            memcpy(out + n, u, k);
        n += k, i += used;
    }
    if (out)
        out[n] = '\0';
    return (long)n;
}

/* Reads the string token at pos (a '"'). A control character, bad UTF-8 or \u0000 stops reading
 * as a syntax error: the pre-scan, run then, names it. */
/* True when the UTF-8 text s[0, n) holds U+FFFE or U+FFFF (EF BF BE, EF BF BF). */
static bool holds_noncharacter(const unsigned char *s, size_t n)
{
    for (const unsigned char *p = s, *end = s + n; (p = memchr(p, 0xEF, (size_t)(end - p))); p++)
        if (end - p >= 3 && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF))
            return true;
    return false;
}

static inline __attribute__((always_inline)) int scan_string(reader *r, span *sp)
{
    size_t i = r->pos + 1;
    uint64_t high = 0;
    bool escaped = false;
    for (;;) {
        i = skip_plain(r->s, i, r->len, &high);
        if (i == r->len)
            return syntax_error(r, r->pos + 1); /* where cJSON reported it */
        if (r->s[i] == '"')
            break;
        if (r->s[i] != '\\')
            return syntax_error(r, i);
        if (i + 1 == r->len)
            return syntax_error(r, r->pos + 1);
        escaped = true;
        i += 2;
    }
    *sp = (span){.start = r->pos + 1, .end = i, .escaped = escaped};
    if (escaped && unescape(r, sp, NULL) < 0)
        return -1;
    if ((high & HIGH_BITS) && utf8_invalid_at(r->s + sp->start, i - sp->start) < i - sp->start)
        return syntax_error(r, sp->start);
    if (high & HIGH_BITS)
        r->xml_unsafe |= holds_noncharacter(r->s + sp->start, i - sp->start);
    r->pos = i + 1;
    return 0;
}

/* Writes the text of a scanned string into out (room for the span's length plus a NUL). */
static void copy_text(reader *r, const span *sp, char *out)
{
    size_t n = sp->end - sp->start;
    if (sp->escaped) {
        unescape(r, sp, out);
    } else {
        memcpy(out, r->s + sp->start, n);
        out[n] = '\0';
    }
}

/* The text of a scanned string: in buf when it fits in cap bytes, else in a new block stored in
 * *heap (the caller frees it). NULL when out of memory (reading has stopped). */
static char *text_of(reader *r, const span *sp, char *buf, size_t cap, char **heap)
{
    size_t n = sp->end - sp->start;
    *heap = NULL;
    if (n >= cap && !(buf = *heap = malloc(n + 1))) {
        out_of_memory(r);
        return NULL;
    }
    copy_text(r, sp, buf);
    return buf;
}

/* A copy of s (n bytes and a NUL), or of the scanned string sp when s is NULL, in the event's
 * block. NULL when out of memory (reading has stopped). */
static char *keep_text(reader *r, const span *sp, const char *s, size_t n)
{
    char *out = text_space(r->ev, (s ? n : sp->end - sp->start) + 1, r->first_text);
    if (!out) {
        out_of_memory(r);
    } else if (s) {
        memcpy(out, s, n);
        out[n] = '\0';
    } else {
        copy_text(r, sp, out);
    }
    return out;
}

/* keep_text for a scanned string, with the usual case (room in the current piece) inline. */
static inline __attribute__((always_inline)) char *keep_span(reader *r, const span *sp)
{
    size_t n = sp->end - sp->start;
    struct iw_event_text *t = r->ev->text;
    if (!t || t->size - t->used <= n)
        return keep_text(r, sp, NULL, 0);
    char *out = t->text + t->used;
    t->used += n + 1;
    copy_text(r, sp, out);
    return out;
}

/* Whether the string token at pos (a '"') is f's name, without escapes. */
static bool key_is(const reader *r, const field *f)
{
    size_t n = f->name_len;
    if (r->len - r->pos <= n + 1 || r->s[r->pos + 1 + n] != '"')
        return false;
    const unsigned char *k = r->s + r->pos + 1, *name = (const unsigned char *)f->name;
    if (n < 8) {
        if (n < 4)
            return memcmp(k, name, n) == 0;
        /* two words of four, overlapping when n < 8 */
        return load4(k) == load4(name) && load4(k + n - 4) == load4(name + n - 4);
    }
    /* Eight bytes at a time, the last word overlapping the one before it; both sides hold at
     * least n + 1 bytes (the name its NUL, the text its closing quote). */
    for (size_t j = 0; j + 8 < n; j += 8)
        if (load8(k + j) != load8(name + j))
            return false;
    return load8(k + n - 8) == load8(name + n - 8);
}

/* Index in t of the field named by key, or t->n when there is none. Members usually come in
 * table order, so the field after the last match (*next) is tried first. */
static size_t find_field(reader *r, const table *t, const span *key, size_t *next)
{
    const char *k = (const char *)r->s + key->start;
    size_t n = key->end - key->start;
    char buf[64], *heap = NULL;
    if (key->escaped) {
        if (!(k = text_of(r, key, buf, sizeof buf, &heap)))
            return t->n;
        n = strlen(k);
    }
    size_t i = *next;
    if (!(i < t->n && t->fields[i].name_len == n && memcmp(t->fields[i].name, k, n) == 0)) {
        for (i = 0; i < t->n; i++) {
            const field *f = &t->fields[i];
            if (f->name_len == n && f->name[0] == k[0] && memcmp(f->name, k, n) == 0)
                break;
        }
    }
    free(heap);
    if (i < t->n)
        *next = i + 1;
    return i;
}

static int skip_value(reader *r);
static int read_object(reader *r, const table *t, char *base);

/* Enters the object or array at pos: 1 when close follows at once (read past it, and left),
 * else 0 with pos at the first member or element; -1 when nested too deep. */
static int open_container(reader *r, unsigned char close)
{
    if (++r->depth > IW_EVENT_MAX_DEPTH)
        return syntax_error(r, r->pos);
    r->pos++;
    skip_space(r);
    if (peek(r) != close)
        return 0;
    r->pos++;
    r->depth--;
    return 1;
}

/* After a member or element: 1 when close ends the container (read past it, and left), 0 when a
 * ',' leads to the next one, -1 after a syntax error. */
static inline __attribute__((always_inline)) int next_or_close(reader *r, unsigned char close)
{
    unsigned char ch = peek(r);
    if (ch != ',' && ch != close) {
        skip_space(r);
        ch = peek(r);
    }
    if (ch != ',' && ch != close)
        return syntax_error(r, r->pos);
    r->pos++;
    if (ch == close) {
        r->depth--;
        return 1;
    }
    skip_space(r);
    return 0;
}

/* Reads the array at pos, calling each(r, index, arg) with pos at every element; *count gets
 * their number. */
static int read_elements(reader *r, int (*each)(reader *, size_t, void *), void *arg, size_t *count)
{
    int rc = open_container(r, ']');
    size_t n = 0;
    while (rc == 0 && (rc = each(r, n, arg)) == 0) {
        n++;
        rc = next_or_close(r, ']');
    }
    *count = n;
    return rc < 0 ? -1 : 0;
}

static int skip_element(reader *r, size_t i, void *arg)
{
    return skip_value(r);
}

/* Reads over one value of any kind. */
static int skip_value(reader *r)
{
    span sp;
    size_t n;
    double v;
    int rc;
    r->skipping++;
    switch (peek(r)) {
    case '"': rc = scan_string(r, &sp); break;
    case '{': rc = read_object(r, NULL, NULL); break;
    case '[': rc = read_elements(r, skip_element, NULL, &n); break;
    case 't': rc = literal(r, "true", 4); break;
    case 'f': rc = literal(r, "false", 5); break;
    case 'n': rc = literal(r, "null", 4); break;
    default: rc = read_number(r, &v); break;
    }
    r->skipping--;
    return rc;
}

/* Notes that the value is not what f wants and reads over it. */
static int wrong_type(reader *r, const char *want)
{
    note(r->c, "expected %s", want);
    return skip_value(r);
}

/* An array being read into a field: where it and its count are stored, entries of size bytes,
 * room for cap of them so far (first to begin with, doubled up to most; elements past most are
 * only read over, the count refuses them), and how one element is read into its zeroed entry. */
typedef struct list_read {
    void **arr;
    size_t *count;
    size_t size, cap, first, most;
    const table *sub; /* K_ARRAY: the table of the structs */
    int (*entry)(reader *r, struct list_read *l, size_t i);
} list_read;

static int read_entry(reader *r, size_t i, void *arg)
{
    list_read *l = arg;
    if (i >= l->most)
        return skip_value(r); /* refused by count; only the syntax matters */
    if (i == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : l->first;
        cap = cap < l->most ? cap : l->most;
        void *grown = realloc(*l->arr, cap * l->size);
        if (!grown)
            return out_of_memory(r);
        *l->arr = grown;
        l->cap = cap;
    }
    memset((char *)*l->arr + i * l->size, 0, l->size);
    *l->count = i + 1;
    path_push(r->c, NULL, i);
    int rc = l->entry(r, l, i);
    path_pop(r->c);
    return rc;
}

/* Reads the array at pos into l, then gives back the room it did not use; *n gets the number of
 * elements (those past l->most too). */
static int read_list(reader *r, list_read *l, size_t *n)
{
    if (read_elements(r, read_entry, l, n))
        return -1;
    void *fit = *l->count && *l->count < l->cap ? realloc(*l->arr, *l->count * l->size) : NULL;
    if (fit)
        *l->arr = fit;
    return 0;
}

/* An element of targets: a non-empty printable name of at most IW_EVENT_MAX_NAME_BYTES, listed
 * once. */
static int read_name(reader *r, list_read *l, size_t i)
{
    if (peek(r) != '"')
        return wrong_type(r, "a non-empty string");
    span sp;
    char *s, **list = *(char ***)l->arr;
    if (scan_string(r, &sp) || !(s = keep_span(r, &sp)))
        return -1;
    const char *why = NULL;
    bool ok = false;
    if (s[0] == '\0') {
        note(r->c, "expected a non-empty string");
    } else if (strlen(s) > IW_EVENT_MAX_NAME_BYTES) {
        note(r->c, "longer than 1024 bytes");
    } else if ((why = iw_text_name_problem(s))) {
        note(r->c, "%s", why);
    } else {
        ok = true;
        for (size_t k = 0; ok && k < i; k++)
            if (list[k] && strcmp(list[k], s) == 0) {
                note(r->c, "\"%s\" is listed twice", list[k]);
                ok = false;
            }
    }
    if (ok)
        list[i] = s;
    return 0;
}

static int read_strlist(reader *r, const field *f, char *base)
{
    list_read l = {.arr = (void **)(base + f->off),
                   .count = (size_t *)(base + f->count_off),
                   .size = sizeof(char *),
                   .first = 8,
                   .most = MAX_TARGETS,
                   .entry = read_name};
    size_t n;
    if (read_list(r, &l, &n))
        return -1;
    if (n == 0)
        note(r->c, "must not be empty (leave it out to use the configured routes)");
    else if (n > MAX_TARGETS)
        note(r->c, "%zu entries; at most %d are allowed", n, MAX_TARGETS);
    return 0;
}

/* An element of a K_ARRAY: an object read into the next struct. */
static int read_item(reader *r, list_read *l, size_t i)
{
    char *el = (char *)*l->arr + i * l->size;
    return peek(r) == '{' ? read_object(r, l->sub, el) : wrong_type(r, "an object");
}

static int read_items(reader *r, const field *f, char *base)
{
    list_read l = {.arr = (void **)(base + f->off),
                   .count = (size_t *)(base + f->count_off),
                   .size = f->sub->size,
                   .first = 2,
                   .most = MAX_ITEMS,
                   .sub = f->sub,
                   .entry = read_item};
    size_t n;
    if (read_list(r, &l, &n))
        return -1;
    if (n == 0 && f->required)
        note(r->c, "must not be empty");
    else if (n > MAX_ITEMS)
        note(r->c, "%zu entries; at most %d are allowed", n, MAX_ITEMS);
    return 0;
}

/* Reads the number at pos as an integer field: its text must be a whole number that a double
 * holds exactly. 0 with *ok telling, or -1 on a syntax error. */
static int read_integer(reader *r, int64_t *out, bool *ok)
{
    size_t start = r->pos;
    double v;
    *ok = false;
    if (read_number(r, &v))
        return -1;
    bool in_range = v >= -(double)MAX_EXACT_INT && v <= (double)MAX_EXACT_INT;
    if (in_range && !integer_literal(r->s + start, r->pos - start)) {
        note(r->c, "expected an integer");
        return 0;
    }
    *ok = exact_int(r->c, v, out); /* says "too big" first */
    return 0;
}

/* Reads the value at pos for a text field f into *dst: a string, or for K_ID an integer written
 * out. */
static int read_text(reader *r, const field *f, char **dst)
{
    unsigned char ch = peek(r);
    char *s;
    if (ch == '"') {
        span sp;
        if (scan_string(r, &sp) || !(s = keep_span(r, &sp)))
            return -1;
    } else if (f->kind == K_ID && number_start(ch)) {
        int64_t i;
        bool ok;
        if (read_integer(r, &i, &ok))
            return -1;
        if (!ok)
            return 0;
        char text[24];
        int n = snprintf(text, sizeof text, "%lld", (long long)i);
        if (!(s = keep_text(r, NULL, text, (size_t)n)))
            return -1;
    } else {
        return wrong_type(r, text_rules[f->kind].want);
    }
    if (text_ok(r->c, f, s)) {
        if (f->kind == K_TIME) /* one form for every reader: 't' and 'z' as 'T' and 'Z' */
            for (char *p = s; *p; p++)
                *p = *p == 't' ? 'T' : *p == 'z' ? 'Z' : *p;
        *dst = s;
    }
    return 0;
}

/* Reads the (non-null) value at pos for field f of the struct at base. */
static int read_field(reader *r, const field *f, char *base)
{
    char *p = base + f->off;
    unsigned char ch = peek(r);
    if (is_text(f->kind))
        return read_text(r, f, (char **)p);
    switch (f->kind) {
    case K_AMOUNT: {
        if (ch != '"')
            return wrong_type(r, "a decimal string");
        span sp;
        char buf[64], *s, *heap = NULL;
        if (scan_string(r, &sp))
            return -1;
        if (!sp.escaped) { /* read in place */
            amount_from(r->c, (const char *)r->s + sp.start, sp.end - sp.start, (iw_amount *)p);
            return 0;
        }
        if (!(s = text_of(r, &sp, buf, sizeof buf, &heap)))
            return -1;
        amount_from(r->c, s, strlen(s), (iw_amount *)p);
        free(heap);
        return 0;
    }
    case K_FLAG:
        if (next_is(r, "true", 4) || next_is(r, "false", 5)) {
            *(iw_flag *)p = ch == 't' ? IW_FLAG_YES : IW_FLAG_NO;
            r->pos += ch == 't' ? 4 : 5;
            return 0;
        }
        return wrong_type(r, "true or false");
    case K_UINT: {
        bool ok;
        if (!number_start(ch))
            return wrong_type(r, "an integer");
        if (read_integer(r, (int64_t *)p, &ok))
            return -1;
        if (ok && *(int64_t *)p < 0)
            note(r->c, "must not be negative");
        return 0;
    }
    case K_STRLIST:
        return ch == '[' ? read_strlist(r, f, base) : wrong_type(r, "an array of strings");
    case K_OBJECT: return ch == '{' ? read_object(r, f->sub, p) : wrong_type(r, "an object");
    case K_ARRAY: return ch == '[' ? read_items(r, f, base) : wrong_type(r, "an array");
    default: break;
    }
    return wrong_type(r, "a known kind of value");
}

/* After the members of an object for t: notes the fields missing or given twice, and gives the
 * absent ones their "absent" values. */
static void finish_object(ctx *c, const table *t, char *base, uint64_t present, uint64_t twice)
{
    for (size_t i = 0; i < t->n; i++) {
        const field *f = &t->fields[i];
        uint64_t bit = (uint64_t)1 << i;
        if (present & bit) {
            if (twice & bit) {
                path_push(c, f->name, i);
                note_twice(c);
                path_pop(c);
            }
        } else if (f->required) {
            path_push(c, f->name, i);
            note(c, "required field is missing");
            path_pop(c);
        } else if (f->kind == K_FLAG) {
            *(iw_flag *)(base + f->off) = IW_FLAG_UNSET;
        } else if (f->kind == K_OBJECT) {
            set_absent(f->sub, base + f->off);
        }
    }
}

/* Reads the object at pos into base (zeroed), the fields of t; with t NULL only reads over it.
 * Unknown keys are ignored. The first member with a field's name is the value; a later one with
 * the same name makes the key ambiguous (another reader might take the last), so a known key
 * given twice is refused. A null first value is the same as absent. */
static int read_object(reader *r, const table *t, char *base)
{
    uint64_t seen = 0, null = 0, twice = 0;
    size_t next = 0;
    int rc = open_container(r, '}');
    while (rc == 0) {
        span key;
        size_t i;
        if (peek(r) != '"')
            return syntax_error(r, r->pos);
        if (t && next < t->n && key_is(r, &t->fields[next])) {
            i = next++; /* members usually come in table order */
            r->pos += t->fields[i].name_len + 2;
        } else {
            r->in_key = true;
            int k = scan_string(r, &key);
            r->in_key = false;
            if (k)
                return -1;
            i = t ? find_field(r, t, &key, &next) : 0;
        }
        if (peek(r) != ':') /* space is looked for only where the byte expected is not next */
            skip_space(r);
        if (peek(r) != ':')
            return syntax_error(r, r->pos);
        r->pos++;
        skip_space(r);
        uint64_t bit = (uint64_t)1 << (i & 63);
        if (r->stop) {
            return -1;
        } else if (!t || i == t->n) {
            rc = skip_value(r);
        } else if (seen & bit) {
            twice |= bit;
            rc = skip_value(r);
        } else {
            seen |= bit;
            if (next_is(r, "null", 4)) {
                null |= bit;
                r->pos += 4;
            } else {
                path_push(r->c, t->fields[i].name, i);
                rc = read_field(r, &t->fields[i], base);
                path_pop(r->c);
            }
        }
        if (rc == 0)
            rc = next_or_close(r, '}');
    }
    if (rc < 0)
        return -1;
    if (t)
        finish_object(r->c, t, base, seen & ~null, twice);
    return 0;
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
    if (len > IW_EVENT_MAX_BYTES)
        return prescan(&c, json, len);

    iw_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return fail(&c, IW_ENOMEM, "out of memory");
    /* Stored strings take at most the bytes of their tokens (ids written out from numbers
     * aside); the values are usually less than half of an event. */
    reader r = {.s = (const unsigned char *)json,
                .len = len,
                .c = &c,
                .ev = ev,
                .first_text = len / 2 < 65536 ? len / 2 + 64 : 65536};
    if (len >= 5 && memcmp(json, "\xEF\xBB\xBF", 3) == 0)
        r.pos = 3; /* a UTF-8 byte order mark */
    skip_space(&r);
    bool object = peek(&r) == '{';
    int rc = object ? read_object(&r, &event_table, (char *)ev) : skip_value(&r);
    c.depth = 0;
    bool tail = false;
    if (rc == 0) {
        skip_space(&r);
        tail = r.pos < len;
    }
    if (rc || tail) {
        /* What the pre-scan refuses comes first, wherever it is; it has not run yet because a
         * text that reads to the end without a syntax error passes it. */
        /* the pre-scan's first refusal may be a \u0000 the reader already named by its path:
         * that message is kept (review 95: a fault after it, text after the event, had the
         * pre-scan name the byte instead) */
        if (r.stop == IW_ENOMEM)
            rc = IW_ENOMEM;
        else if ((rc = prescan(&c, json, len)) && r.nul_noted && c.prescan_nul &&
                 c.prescan_nul_at == r.nul_at && errbuf && errlen)
            snprintf(errbuf, errlen, "%s", r.nul_msg);
        else if (!rc)
            rc = tail ? fail(&c, IW_EINVAL, "invalid JSON at byte %zu: text after the event", r.pos)
                 : r.why && r.why_path[0] ? fail(&c, IW_EINVAL, "%s: %s (invalid JSON at byte %zu)",
                                                 r.why_path, r.why, r.bad_at)
                 : r.why ? fail(&c, IW_EINVAL, "invalid JSON at byte %zu: %s", r.bad_at, r.why)
                         : fail(&c, IW_EINVAL, "invalid JSON at byte %zu",
                                r.bad_at < len ? r.bad_at : len - 1);
    } else if (!object) {
        rc = fail(&c, IW_EINVAL, "an event must be a JSON object");
    } else {
        rc = c.err_rc;
    }
    if (rc) {
        iw_event_free(ev);
        return rc;
    }
    fit_text(ev);
    ev->xml_unsafe = r.xml_unsafe;
    *out = ev;
    return 0;
}

/* JSON's white space (RFC 8259): space, tab, CR, LF. */
static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct cJSON *iw_json_parse_one(const char *json, size_t len, size_t *tail)
{
    /* before the value too only JSON white space (cJSON reads past any control byte), after an
     * optional UTF-8 byte order mark */
    if (tail)
        *tail = 0;
    if (!json || !len)
        return NULL;
    size_t lead = len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    while (lead < len && json_space(json[lead]))
        lead++;
    if (lead >= len || (unsigned char)json[lead] <= ' ')
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    size_t at = root ? (size_t)(end - json) : 0;
    while (root && at < len && json_space(json[at]))
        at++;
    if (tail)
        *tail = at;
    if (root && at < len) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static void duplicate_keys(const cJSON *node, const char *path, size_t max_keys, int *budget,
                           void (*found)(void *, const char *, const char *), void *arg)
{
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return;
    size_t i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        char sub[160];
        if (cJSON_IsObject(node)) {
            if (i >= max_keys) {
                char why[64];
                snprintf(why, sizeof(why), "more than %zu keys in one object", max_keys);
                found(arg, path, why);
                return;
            }
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", c->string);
            for (const cJSON *p = node->child; p != c; p = p->next) {
                if (strcmp(p->string, c->string) == 0) {
                    found(arg, sub, "duplicate key (each key may appear once)");
                    break;
                }
            }
        } else {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        }
        if (--*budget < 0)
            return; /* a pathological tree: the first errors are enough */
        duplicate_keys(c, sub, max_keys, budget, found, arg);
    }
}

void iw_json_duplicate_keys(const struct cJSON *node, const char *base, size_t max_keys, int budget,
                            void (*found)(void *arg, const char *path, const char *why), void *arg)
{
    duplicate_keys(node, base, max_keys, &budget, found, arg);
}

void iw_event_free(iw_event *ev)
{
    if (!ev)
        return;
    free_arrays(&event_table, (char *)ev);
    free_text(ev->text);
    free(ev);
}
