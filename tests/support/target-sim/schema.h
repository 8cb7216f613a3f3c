/* schema.h: contract checks as data: element/member tables, value formats, a safe XML parse. */
#ifndef IW_SIM_SCHEMA_H
#define IW_SIM_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <libxml/tree.h>

/* The value type of one element or member. */
typedef enum iw_sim_ftype {
    IW_SIM_STR = 0, /* any text */
    IW_SIM_DEC,     /* plain decimal text: -?[0-9]+(.[0-9]+)? */
    IW_SIM_INT,     /* -?[0-9]+ */
    IW_SIM_BOOL,    /* true/false (XML also 1/0) */
    IW_SIM_DATE,    /* in the contract's date style */
    IW_SIM_GUID,    /* 8-4-4-4-12 hex digits */
    IW_SIM_OBJ,     /* nested element/object with its own table */
    IW_SIM_ARR      /* list of `item` elements (XML) / array of objects (JSON) */
} iw_sim_ftype;

#define IW_SIM_REQ 1u /* must be present with a non-empty value */
#define IW_SIM_REP 2u /* XML: may appear more than once */

struct iw_sim_schema;

/* One element or member of a contract. */
typedef struct iw_sim_field {
    const char *name; /* local name / JSON key */
    iw_sim_ftype type;
    unsigned flags;                  /* IW_SIM_REQ, IW_SIM_REP */
    const struct iw_sim_schema *sub; /* OBJ and ARR: the children's table */
    const char *item;                /* ARR: element name of each item (XML) */
} iw_sim_field;

/* The children of one element or object. */
typedef struct iw_sim_schema {
    const iw_sim_field *fields;
    size_t n;
    bool ordered; /* XML: children must follow the table's order (WCF/xsd:sequence) */
} iw_sim_schema;

#define IW_SIM_SCHEMA(arr, ord)                                                                    \
    {                                                                                              \
        arr, sizeof(arr) / sizeof((arr)[0]), ord                                                   \
    }

/* Date styles of the contracts. */
typedef enum iw_sim_date_style {
    IW_SIM_DATE_YMD_OR_EMPTY, /* Centra, EBizCharge: YYYY-MM-DD or empty */
    IW_SIM_DATE_ISO_ANY,      /* Midnight: YYYY-MM-DD or an ISO 8601 date-time */
    IW_SIM_DATE_DMY,          /* InvoiceXpress: dd/mm/yyyy */
    IW_SIM_DATE_MDY,          /* EBizCharge "mdy": MM/DD/YYYY (seed 003 lines 258-259, 281) */
    IW_SIM_DATE_YMD_OR_MDY    /* EBizCharge "any": either (the seed shows both, lines 70-73) */
} iw_sim_date_style;

#define IW_SIM_MAX_ERRORS 16

/* Problems found, in order; messages name the element ("invoice/Items/Item[1]/Qty: ..."). */
typedef struct iw_sim_errors {
    char msg[IW_SIM_MAX_ERRORS][256];
    int n;     /* kept messages */
    int total; /* all problems found */
} iw_sim_errors;

/* Adds a problem (printf-style). */
void iw_sim_err(iw_sim_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Raw text of each JSON number, in document order (cJSON keeps only a double). */
typedef struct iw_sim_jnums {
    const cJSON **node;
    char (*raw)[48];
    size_t n, cap;
} iw_sim_jnums;

/* What the checker needs besides the tree. */
typedef struct iw_sim_vctx {
    const char *ns; /* XML: namespace every element must be in (NULL = none) */
    iw_sim_date_style dates;
    const iw_sim_jnums *nums; /* JSON only */
    iw_sim_errors *errs;
} iw_sim_vctx;

/* Checks the element children of parent against s: known names, namespace, order (when
 * s->ordered), repetition, required ones present, leaf values well-formed. */
void iw_sim_check_xml(const iw_sim_vctx *v, xmlNodePtr parent, const iw_sim_schema *s,
                      const char *path);

/* Checks a JSON object against s: known keys, types, required ones present, formats. */
void iw_sim_check_json(const iw_sim_vctx *v, const cJSON *obj, const iw_sim_schema *s,
                       const char *path);

/* Parses JSON keeping the raw text of numbers in nums (free with iw_sim_jnums_free). NULL on
 * malformed input. */
cJSON *iw_sim_json_parse(const char *buf, size_t len, iw_sim_jnums *nums);
void iw_sim_jnums_free(iw_sim_jnums *nums);

/* Raw text of a number node (NULL when unknown). */
const char *iw_sim_jnum_raw(const iw_sim_jnums *nums, const cJSON *node);

/* First element child of n named `name` (any namespace), or NULL. */
xmlNodePtr iw_sim_xml_child(xmlNodePtr n, const char *name);

/* First element child of n, or NULL. */
xmlNodePtr iw_sim_xml_first(xmlNodePtr n);

/* Trimmed text content of n into buf ("" for NULL); returns buf. */
char *iw_sim_xml_text(xmlNodePtr n, char *buf, size_t len);

/* The same text whole (malloc'd, the caller frees; NULL when out of memory): what a format
 * check reads, so that a value too long for a buffer is never judged by its cut start. */
char *iw_sim_xml_value(xmlNodePtr n);

/* Text of child `name` of n ("" when absent). */
char *iw_sim_xml_child_text(xmlNodePtr n, const char *name, char *buf, size_t len);

/* Namespace URI of n ("" when none). */
const char *iw_sim_xml_ns(xmlNodePtr n);

/* Parses a request body as a server would: libxml2 on the bytes as sent (an XML declaration
 * only at the very start, a byte order mark only before it), no network, no DTD. NULL with
 * err set when it is not well formed. The worker's own reply reader (common/xml.c) is never
 * used here: a bug the two shared would pass unseen. */
xmlDocPtr iw_sim_xml_parse(const char *body, size_t len, char *err, size_t errlen);

/* Value formats; a decimal is XML Schema's (xsd:decimal: an optional sign, digits with at most
 * one '.', any length), not what the worker's decimal type holds. */
bool iw_sim_is_decimal(const char *s);
bool iw_sim_is_int(const char *s);
bool iw_sim_is_xsd_bool(const char *s);
bool iw_sim_is_guid(const char *s);
bool iw_sim_is_email(const char *s);

/* Dates: YYYY-MM-DD; an ISO 8601 date-time (YYYY-MM-DDThh:mm[:ss[.f]][Z|+hh:mm]);
 * dd/mm/yyyy. On success *days gets a comparable day number (may be NULL). */
bool iw_sim_is_ymd(const char *s, long *days);
bool iw_sim_is_iso_datetime(const char *s);
bool iw_sim_is_dmy(const char *s, long *days);
/* M/D/YYYY or MM/DD/YYYY, optionally followed by " h:mm:ss AM|PM" (.NET's US culture form,
 * seed 003 line 72). */
bool iw_sim_is_mdy(const char *s, long *days);

/* Compares two plain decimals by value (both must pass iw_sim_is_decimal; 0 otherwise). */
int iw_sim_dec_cmp(const char *a, const char *b);

/* Sign of a plain decimal: -1, 0 or 1. */
int iw_sim_dec_sign(const char *s);

#endif
