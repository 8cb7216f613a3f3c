/* invoice.h: the canonical invoice (DESIGN.md section 3) and the input event (section 2). */
#ifndef IW_INVOICE_H
#define IW_INVOICE_H

#include <stddef.h>
#include <stdint.h>

#include "decimal.h"

/* A yes/no field that may be absent. */
typedef enum iw_flag { IW_FLAG_UNSET = -1, IW_FLAG_NO = 0, IW_FLAG_YES = 1 } iw_flag;

/* Every char * below is NUL-terminated UTF-8, and NULL when the event did not carry the field.
 * The parser keeps them all in one block the event owns, freed by iw_event_free: never free one
 * on its own. A field may be pointed at other text that outlives the event (iw_event_free
 * leaves such text alone). Dates are "YYYY-MM-DD", timestamps RFC 3339, both checked on
 * parse. Ids may arrive as JSON strings or integers; they are kept as text. */

typedef struct iw_customer {
    char *id, *contact_id, *name, *email, *phone, *phone_ext, *fax, *website;
    char *fiscal_id, *ec_vat_no, *company_reg_id, *notes;
} iw_customer;

typedef struct iw_address {
    char *company, *attn, *first_name, *last_name, *line1, *line2, *line3;
    char *city, *state, *postal_code;
    char *country; /* ISO 3166-1 alpha-2, upper case ("DE") */
    char *email, *phone, *fax;
    iw_flag is_default;
} iw_address;

/* The ids each target knows the invoice by (never upstream's own ids). Midnight's customer
 * and contact are Midnight row ids, carried here because upstream's customer.id and
 * contact_id are numbers of another system. */
typedef struct iw_target_refs {
    char *centra_id, *midnight_guid, *midnight_invoice_id, *ebiz_internal_id, *invoicexpress_id;
    char *midnight_customer_id, *midnight_contact_id;
} iw_target_refs;

/* The ids a target knows one invoice line by. */
typedef struct iw_line_refs {
    char *midnight_line_id;   /* Midnight InvoiceLineID (integer) */
    char *midnight_line_guid; /* Midnight InvoiceLineGuid */
    char *midnight_item_id;   /* Midnight ItemId (integer) */
    char *midnight_order_id;  /* Midnight OrderID (integer) */
} iw_line_refs;

typedef struct iw_refs {
    char *account_id, *buyer_id, *order_id, *shipment_id, *refund_id, *division_id;
    char *location_id, *sales_rep_id, *user_name;
} iw_refs;

typedef struct iw_flags {
    iw_flag locked, notify_customer, email_invoice, print_invoice, display_item;
} iw_flags;

typedef struct iw_line {
    char *line_no, *line_id, *sku, *item_id, *product_id, *variation_id, *size_id;
    char *name, *description, *unit;
    iw_amount quantity, unit_price, gross_price, discount_pct, discount_amount;
    iw_flag taxable;
    iw_amount tax_rate; /* percent, "23" or "7.5" */
    char *tax_name;
    iw_amount tax_amount, line_subtotal, line_total;
    char *line_type, *order_id;
    iw_line_refs target_refs; /* the line's ids at the targets */
} iw_line;

typedef struct iw_extra_charge {
    char *key, *id, *description;
    iw_amount amount;
} iw_extra_charge;

typedef struct iw_custom_field {
    char *name, *value;
} iw_custom_field;

typedef struct iw_invoice {
    char *id; /* required */
    char *number, *number_ext, *status, *document_type, *type, *store;
    char *currency; /* required, ISO 4217 */
    char *base_currency;
    iw_amount currency_rate;
    char *issue_date, *due_date, *order_date, *ship_date, *po_date; /* YYYY-MM-DD */
    char *paid_at;                                                  /* RFC 3339 */
    char *terms_code, *terms_description, *shipping_terms, *ship_via;
    char *po_number, *so_number, *title, *description, *note_public, *note_internal;
    iw_amount subtotal, tax_total, discount_total, shipping_total, total;
    iw_amount amount_paid, amount_due, retention_pct;
    iw_target_refs target_refs;
    iw_customer customer;
    iw_address billing_address, shipping_address;
    iw_refs refs;
    iw_flags flags;
    iw_line *lines; /* at least one */
    size_t n_lines;
    iw_extra_charge *extra_charges;
    size_t n_extra_charges;
    iw_custom_field *custom_fields;
    size_t n_custom_fields;
} iw_invoice;

/* The input event of topic invoice-events. */
typedef struct iw_event {
    char *schema;      /* "invoice-event/v1" */
    char *event_id;    /* dedup identity, required */
    char *type;        /* "invoice.created" or "invoice.updated" */
    char *occurred_at; /* RFC 3339 */
    char *source;
    char *tenant;    /* required */
    int64_t version; /* >= 0, required */
    char **targets;  /* target instance names; NULL when absent (routes decide) */
    size_t n_targets;
    iw_invoice invoice;
    struct iw_event_text *text; /* the block the parser keeps the strings in (invoice.c's own) */
    bool xml_unsafe; /* a string holds a character XML 1.0 cannot carry (a control other than
                      * tab, LF and CR; U+FFFE, U+FFFF): an XML body that uses it is refused */
} iw_event;

/* Parses one event from len bytes of JSON (need not be NUL-terminated). On success returns 0
 * and a new event in *out (caller frees with iw_event_free). On failure returns IW_EINVAL (or
 * IW_ENOMEM) and writes "json.path: reason" into errbuf, e.g.
 * "invoice.lines[2].quantity: not a decimal number". Never crashes on hostile input: invalid
 * UTF-8, deep nesting and huge strings are refused with a message. */
int iw_event_parse(const char *json, size_t len, iw_event **out, char *errbuf, size_t errlen);

/* The checks the event parser makes before it reads a text, for any JSON document (the
 * config loader uses them too): at most max_bytes, no NUL byte, valid UTF-8 (RFC 3629), no
 * raw control character or \u0000 in a string, nesting at most max_depth. Returns 0 or
 * IW_EINVAL with errbuf naming the byte; `what` names the document ("event", "config"). */
int iw_json_prescan(const char *json, size_t len, size_t max_bytes, int max_depth, const char *what,
                    char *errbuf, size_t errlen);

/* Parses len bytes as one JSON value followed by nothing but JSON white space; NULL when the
 * text is not that. *tail (when tail is not NULL) gets where text after the value starts: len
 * when none does, 0 when the text is not JSON at all. cJSON alone reads the first value and
 * ignores what follows it. Free with cJSON_Delete. */
struct cJSON *iw_json_parse_one(const char *json, size_t len, size_t *tail);

/* Calls found(arg, path, why) for every key given a second time in one object, anywhere under
 * node (cJSON keeps both and lookups find the first, so the second would be silently ignored),
 * and for an object of more than max_keys members (then not searched further); path is the
 * JSON path from base ("targets.ix.url", "children[2]"). At most budget members are visited. */
void iw_json_duplicate_keys(const struct cJSON *node, const char *base, size_t max_keys, int budget,
                            void (*found)(void *arg, const char *path, const char *why), void *arg);

/* Frees an event, its arrays and the parser's block of strings; NULL is a no-op. */
void iw_event_free(iw_event *ev);

/* Largest event the parser accepts, in bytes. */
#define IW_EVENT_MAX_BYTES (8u * 1024u * 1024u)
/* The longest target name (in targets, or a replay's x-iw-replay-target header) and invoice.id
 * an event may carry: both go whole into its results (a target name twice), which must stay far
 * below any Kafka message limit. A configured instance name is at most 64 bytes. */
#define IW_EVENT_MAX_NAME_BYTES 1024
/* Longest event_id or tenant; both become parts of Redis keys, result ids and headers. */
#define IW_EVENT_MAX_KEY_BYTES 128
/* Deepest JSON nesting the parser accepts. */
#define IW_EVENT_MAX_DEPTH 32

#endif
