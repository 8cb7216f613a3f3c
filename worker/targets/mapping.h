/* mapping.h: one mapping engine. A mapping is a tree of rows in one dialect: an element (XML) or
 * key (JSON) name, a source path in the event model ("invoice.id", "invoice.lines[].unit_price"),
 * a format (text, decimal, integer, date with its pattern, boolean), an optional condition, and
 * repeated groups ("each": "invoice.lines"). The engine walks the tree and writes XML or JSON
 * through the hot-path writer (wbuf.h), so escaping and the XML 1.0 character rule are the
 * writer's. Money stays decimal text (decimal.h), never a double.
 *
 * A mapping is read from JSON (iw_map_parse); every problem is reported with its JSON path
 * ("mapping.body.root.children[3].format: unknown format \"money\""). */
#ifndef IW_MAPPING_H
#define IW_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "invoice.h"
#include "wbuf.h"

/* Reads a pointer or a size_t stored at base + off (tables name struct members by offset;
 * memcpy keeps it free of aliasing games). */
static inline const void *iw_map_ptr_at(const void *base, size_t off)
{
    const void *p;
    memcpy(&p, (const char *)base + off, sizeof(p));
    return p;
}

static inline size_t iw_map_size_at(const void *base, size_t off)
{
    size_t n;
    memcpy(&n, (const char *)base + off, sizeof(n));
    return n;
}

/* Problems found while reading a mapping, each named by its JSON path. */
typedef struct iw_map_errors {
    struct {
        char path[192];
        char message[224];
    } items[32];  /* the first 32 */
    size_t count; /* problems found (may exceed 32) */
} iw_map_errors;

/* Records a problem (printf-style message). */
void iw_map_error(iw_map_errors *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef enum iw_map_dialect { IW_MAP_XML = 1, IW_MAP_JSON } iw_map_dialect;

typedef enum iw_map_format {
    IW_FMT_TEXT = 0, /* as the source holds it (an amount as its decimal text) */
    IW_FMT_DECIMAL,  /* a decimal number, scale kept (or "scale": N, rounded half away) */
    IW_FMT_INTEGER,  /* a whole number; a source with a fraction is refused */
    IW_FMT_DATE,     /* "YYYY-MM-DD" rewritten by "pattern" (YYYY, MM, DD; other text kept) */
    IW_FMT_BOOLEAN,  /* true / false */
    IW_FMT_DIGITS    /* an id of up to 18 digits, leading zeros dropped, a number in JSON; a text
                      * that is not one counts as absent */
} iw_map_format;

/* A source field of the event model (mapping.c's table). */
typedef struct iw_map_field iw_map_field;

/* Finds a field by its path; NULL when the model has none. Paths: "event_id", "tenant",
 * "version", ..., "invoice.<field>" (nested with dots: "invoice.customer.name"), and inside a
 * repeated group "invoice.lines[].<field>" ("lines[].<field>" is the same). */
const iw_map_field *iw_map_field_find(const char *path);

/* The field's path as the mapping names it ("invoice.id"). */
const char *iw_map_field_path(const iw_map_field *f);

/* The text of a field for an event outside any repeated group (URL templates); NULL when
 * absent or when the field is not of the event or invoice itself. buf holds amounts. */
const char *iw_map_field_text(const iw_map_field *f, const iw_event *ev, char *buf, size_t len);

/* Whether the event gives the field (of the event or invoice itself): a non-empty text, an
 * amount, a flag or a number, a list of at least one element. */
bool iw_map_field_given(const iw_map_field *f, const iw_event *ev);

/* What an absent source becomes. */
typedef enum iw_map_absent { IW_ABSENT_OMIT = 0, IW_ABSENT_EMPTY, IW_ABSENT_NULL } iw_map_absent;

/* A condition: the row is written only when any (present) or any non-empty (non_empty) of the
 * paths holds a value, or (built-ins) when a computed value is not NULL. A list is present
 * when it has an element. On a repeated group the condition is tested per element. */
typedef enum iw_map_cond {
    IW_COND_NONE = 0,
    IW_COND_PRESENT,
    IW_COND_NON_EMPTY,
    IW_COND_COMPUTED
} iw_map_cond;

#define IW_MAP_MAX_ALT 8

/* A value only C can compute (a built-in adapter's rule a seed page states, such as a flag
 * derived from two amounts): ev is the event, elem the current element of the innermost
 * repeated group (NULL outside one), index its 0-based position and ctx what the adapter passed
 * to iw_map_write_xml / _json (its target's settings). Returns the text (in buf, in ev, in ctx,
 * or a constant) or NULL when there is none. */
typedef const char *(*iw_map_compute_fn)(const iw_event *ev, const void *elem, size_t index,
                                         const void *ctx, char *buf, size_t len);

/* A named computed value a built-in mapping may use ("compute": name); a list of them ends
 * with a NULL name. Mapping files have none. */
typedef struct iw_map_fn {
    const char *name;
    iw_map_compute_fn fn;
} iw_map_fn;

typedef struct iw_map_attr {
    char *name, *value;
} iw_map_attr;

/* One row. A leaf has a source (paths, first present wins), a constant value or neither (an
 * empty element); a group has children; a repeated group has `each` and children. */
typedef struct iw_map_node {
    char *prefix, *name; /* XML: prefix (NULL = none) and local name; JSON: key (NULL at top) */
    iw_xw_tags tags;     /* XML: <prefix:name></prefix:name>, made once */
    const iw_map_field *src[IW_MAP_MAX_ALT];
    size_t n_src;
    char *value;               /* constant text */
    char *dflt;                /* text when every source is absent ("default") */
    iw_map_compute_fn compute; /* the last source: a computed value ("compute") */
    iw_map_format format;
    char *pattern;  /* IW_FMT_DATE */
    int scale;      /* IW_FMT_DECIMAL: digits after the point, -1 = as given */
    bool as_string; /* JSON: write a decimal, integer or boolean as a string */
    bool as_array;  /* JSON: a row with children is an array holding its one object */
    iw_map_absent absent;
    iw_map_cond cond;
    const iw_map_field *cond_src[IW_MAP_MAX_ALT * 4];
    size_t n_cond;
    iw_map_compute_fn cond_fn; /* IW_COND_COMPUTED */
    char *join;         /* XML: every present, non-empty path, in order, this text between them */
    iw_map_attr *attrs; /* XML attributes, constants, in order */
    size_t n_attrs;
    const iw_map_field *each; /* a list field: one element (XML) or array entry (JSON) each */
    bool group;               /* has children (an element or object holding rows) */
    bool plain;               /* a leaf of one text or amount path as given, nothing else:
                               * written by the engine's short path */
    struct iw_map_node *children;
    size_t n_children;
} iw_map_node;

typedef struct iw_map {
    iw_map_dialect dialect;
    bool declaration; /* XML: <?xml version="1.0" encoding="UTF-8"?> first */
    iw_map_node root; /* XML: the document element (nameless in a built-in: a fragment, its
                       * rows in order); JSON: the top object */
} iw_map;

/* Reads a body template: {"dialect": "xml"|"json", "declaration": bool (XML, default true),
 * "prefix": default XML prefix for names without one, "absent": the rows' default absent
 * policy, "root": node}. A node is an object with
 * "name", "path" (string or array: the first present wins), "default" (the text when every path
 * is absent), "value", "format", "pattern",
 * "scale", "as" ("string"; "array" for a JSON row with children), "absent" ("omit", "empty",
 * "null"), "if" ("present", "non_empty" for the node's own path, or {"present"|"non_empty": path or
 * [paths]}; built-ins also
 * {"computed": name}), "join" (XML: the paths' texts joined), "attributes" (XML,
 * {name: value}), "each" (a list path) and "children" (array of nodes). path names the JSON path
 * of obj ("mapping.body"). Returns 0, or IW_EINVAL with every problem in errs. */
int iw_map_parse(const cJSON *obj, const char *path, iw_map *out, iw_map_errors *errs);

/* Frees what a mapping owns and zeroes it. */
void iw_map_free(iw_map *m);

/* Writes the body for ev into b (appended). Returns 0, or IW_EINVAL / IW_ENOMEM with errbuf
 * naming the element, key or path ("ns1:ponumber: text holds a control character ..."). */
int iw_map_write(const iw_map *m, const iw_event *ev, iw_wbuf *b, char *errbuf, size_t errlen);

/* Writes the mapping's root row for ev into an XML document the caller has open (a SOAP
 * envelope the adapter writes itself); m's declaration is not written. ctx is handed to the
 * mapping's computed values. Returns 0, or IW_EINVAL
 * / IW_ENOMEM with errbuf naming the element as iw_map_write does. */
int iw_map_write_xml(const iw_map *m, const iw_event *ev, const void *ctx, iw_xw *x, char *errbuf,
                     size_t errlen);

/* Writes the mapping's top object's rows for ev into a JSON object the caller has open (the
 * JSON twin of iw_map_write_xml). */
int iw_map_write_json(const iw_map *m, const iw_event *ev, const void *ctx, iw_jw *j, char *errbuf,
                      size_t errlen);

/* A built-in adapter's mapping: its text in the mapping-file dialect, read once, the first time
 * it is asked for, and kept for the life of the process (never per event). */
typedef struct iw_map_builtin {
    const char *name;     /* the adapter's type, for errors */
    const char *json;     /* the mapping, as iw_map_parse reads it, plus "compute" rows and a
                           * nameless XML root (a fragment) */
    const iw_map_fn *fns; /* the computed values it may name; NULL = none */
    int state;            /* 0 unread, 1 read, -1 refused (guarded by mapping.c's lock) */
    iw_map map;           /* the mapping once read */
    char error[256];      /* the first problem when refused */
} iw_map_builtin;

/* clang-format off */
#define IW_MAP_BUILTIN(type, text) {(type), (text), NULL, 0, {0}, ""}
#define IW_MAP_BUILTIN_FNS(type, text, fns) {(type), (text), (fns), 0, {0}, ""}
/* clang-format on */

/* The mapping of b, read on first use (thread-safe). NULL when its text is refused, with
 * errbuf naming the first problem (a defect of the build, which test_mapping.c catches). */
const iw_map *iw_map_builtin_get(iw_map_builtin *b, char *errbuf, size_t errlen);

#endif
