/* wbuf.h: a growable byte buffer that renders are written into directly, with an XML writer and
 * a JSON writer over it.
 *
 * The buffer is reusable: reset empties it and keeps its memory, so a thread that renders many
 * requests allocates once (iw_wbuf_scratch). Errors are sticky: the first one (out of memory,
 * or a text the format cannot carry) is kept with the name of the element or key it concerns,
 * and every later write does nothing.
 *
 * XML output is byte for byte what libxml2's xmlTextWriter printed for the same calls in a
 * document that declares encoding="UTF-8": in element text & < > " and CR are escaped (&amp;
 * &lt; &gt; &quot; &#13;); in attribute values also tab and LF (&#9; &#10;); everything else is
 * written as it is. Unlike xmlTextWriter, a text XML 1.0 cannot carry is refused: invalid UTF-8,
 * a C0 control other than tab, LF and CR, or U+FFFE / U+FFFF.
 *
 * JSON output is byte for byte what cJSON 1.7.15 cJSON_PrintUnformatted printed for the same
 * tree: in strings " \ and the controls \b \f \n \r \t get their short escapes, other bytes
 * below 0x20 \u00xx (lower-case hex), everything else is written as it is (UTF-8, U+FFFE and
 * U+FFFF included: they are legal JSON). A string that is not valid UTF-8 is refused (JSON text
 * is UTF-8; cJSON copied such bytes through). */
#ifndef IW_WBUF_H
#define IW_WBUF_H

#include <stdbool.h>
#include <stddef.h>

/* A growing buffer. data is NUL-terminated once anything was written (data[len] == '\0'). */
typedef struct iw_wbuf {
    char *data;
    size_t len, cap;
    int err;         /* 0, or the first error: IW_ENOMEM, IW_EINVAL */
    const char *why; /* IW_EINVAL: why, a constant ("text holds a control character ...") */
    char what[160];  /* IW_EINVAL: the element, attribute or key whose text was refused (a
                      * mapping's writer names the event field it came from) */
} iw_wbuf;

/* The most a buffer holds. An invoice's body is far below it; past it is a mapping that repeats
 * lists inside lists (review 96: 1.6 GB), or an event near its 8 MiB of text that XML escapes
 * five-fold (`&` as `&amp;`: review 97 made one of 78 MB), refused with a reason rather than
 * sent. Past it the buffer fails with IW_EINVAL and why IW_WBUF_TOO_LARGE. */
#define IW_WBUF_MAX ((size_t)64 * 1024 * 1024)
extern const char IW_WBUF_TOO_LARGE[];

/* An empty buffer (no memory yet). */
/* clang-format off */
#define IW_WBUF_INIT {NULL, 0, 0, 0, NULL, ""}
/* clang-format on */

/* Empties the buffer and clears its error; keeps its memory. */
void iw_wbuf_reset(iw_wbuf *b);

/* Frees the buffer's memory and empties it. */
void iw_wbuf_free(iw_wbuf *b);

/* The calling thread's reusable buffer, reset (never NULL). Its memory is freed when the thread
 * ends; one render at a time uses it (it is not re-entrant). Memory past 1 MiB is given back at
 * the next call rather than kept. */
iw_wbuf *iw_wbuf_scratch(void);

/* Appends n bytes / a NUL-terminated string. */
void iw_wbuf_add(iw_wbuf *b, const char *s, size_t n);
void iw_wbuf_adds(iw_wbuf *b, const char *s);

/* Records an error unless one is recorded already: what (copied; NULL for none) names the
 * element or key, why (a constant) says what is wrong. */
void iw_wbuf_fail(iw_wbuf *b, int err, const char *what, const char *why);

/* Returns the sticky error (0 when none) and, when there is one, writes "what: why" (or "out of
 * memory") into errbuf. */
int iw_wbuf_error(const iw_wbuf *b, char *errbuf, size_t errlen);

/* Copies the content into a new malloc'd NUL-terminated string (*out, caller frees) and its
 * length into *len. Returns 0, the sticky error, or IW_ENOMEM; *out is NULL on failure. */
int iw_wbuf_copy(const iw_wbuf *b, char **out, size_t *len);

/* Appends text exactly as the XML writer escapes element text (attr false) or an attribute
 * value (attr true), and s as the JSON writer writes a string (quotes included): the forms a
 * secret takes in the bodies this project writes (worker/secrets.c registers them). */
void iw_xml_escaped(iw_wbuf *b, const char *text, bool attr);
void iw_json_escaped(iw_wbuf *b, const char *s);

/* --- XML --- */

#define IW_XW_MAX_DEPTH 32

/* An XML writer over a buffer. Element and attribute names and prefixes are written as given
 * (they are the adapters' constants) and must stay valid until the element is ended. */
typedef struct iw_xw {
    iw_wbuf *b;
    bool in_tag;           /* a start tag is open: attributes may still follow */
    const char *ns_prefix; /* the open tag's namespace declaration, written as it closes */
    const char *ns_uri;    /* (after its attributes, where xmlTextWriter put it) */
    int depth;             /* open elements */
    struct iw_xw_name {
        const char *prefix, *name; /* prefix NULL: none */
        size_t plen, nlen;
        const struct iw_xw_tags *tags; /* not NULL: started with them (iw_xw_start_tags) */
    } open[IW_XW_MAX_DEPTH];
} iw_xw;

/* Starts a document in b (which keeps what it holds): with decl, the declaration
 * <?xml version="1.0" encoding="UTF-8"?> and a newline. */
void iw_xw_begin(iw_xw *x, iw_wbuf *b, bool decl);

/* <prefix:name>, or <name> when prefix is NULL; ns_uri not NULL declares xmlns:prefix (xmlns
 * when prefix is NULL). */
void iw_xw_start(iw_xw *x, const char *prefix, const char *name, const char *ns_uri);

/* An attribute of the element just started (xmlns:foo declarations included). */
void iw_xw_attr(iw_xw *x, const char *name, const char *value);

/* Ends the innermost element: </prefix:name>, or /> when it holds nothing. */
void iw_xw_end(iw_xw *x);

/* <prefix:name>text</prefix:name>; text NULL: nothing at all, "" gives <name></name>. */
void iw_xw_text(iw_xw *x, const char *prefix, const char *name, const char *text);

/* Text inside the innermost element, escaped as iw_xw_text escapes it (several calls join). */
void iw_xw_chars(iw_xw *x, const char *text);

/* Like iw_xw_text, but text NULL gives the empty element <prefix:name/>. */
void iw_xw_text_or_empty(iw_xw *x, const char *prefix, const char *name, const char *text);

/* A name's start and end tags, made once for a name written again and again (a template's
 * row): text holds "<prefix:name></prefix:name>", the start tag its first open_len bytes. */
typedef struct iw_xw_tags {
    char *text; /* NULL: not made (out of memory); writing with it fails the buffer */
    size_t open_len, len;
} iw_xw_tags;

/* Makes t for prefix (NULL: none) and name; 0 or IW_ENOMEM. */
int iw_xw_tags_make(iw_xw_tags *t, const char *prefix, const char *name);
void iw_xw_tags_free(iw_xw_tags *t);

/* iw_xw_text_or_empty for the name t was made from, its tags copied whole; name names the
 * element in an error. */
void iw_xw_text_tags(iw_xw *x, const iw_xw_tags *t, const char *name, const char *text);

/* iw_xw_start(x, prefix, name, NULL) for the name t was made from; its end tag is copied from
 * t, which must stay valid until the element is ended. */
void iw_xw_start_tags(iw_xw *x, const iw_xw_tags *t, const char *name);

/* Ends every open element and the document (a final newline, as xmlTextWriterEndDocument).
 * Returns the buffer's sticky error. */
int iw_xw_finish(iw_xw *x);

/* --- JSON --- */

#define IW_JW_MAX_DEPTH 32

/* A JSON writer over a buffer. key is the member name inside an object and must be NULL for a
 * value at the top or inside an array. */
typedef struct iw_jw {
    iw_wbuf *b;
    int depth;
    char close[IW_JW_MAX_DEPTH]; /* '}' or ']' per open container */
    bool more[IW_JW_MAX_DEPTH];  /* the container holds a value already: a comma goes first */
} iw_jw;

void iw_jw_begin(iw_jw *j, iw_wbuf *b);
void iw_jw_object(iw_jw *j, const char *key);
void iw_jw_array(iw_jw *j, const char *key);
/* Ends the innermost object or array. */
void iw_jw_end(iw_jw *j);
void iw_jw_string(iw_jw *j, const char *key, const char *s);
/* A number written as its text ("1550.00", "42"); the caller vouches that text is a number. */
void iw_jw_raw(iw_jw *j, const char *key, const char *text);
void iw_jw_bool(iw_jw *j, const char *key, bool v);
void iw_jw_null(iw_jw *j, const char *key);
/* Ends every open container. Returns the buffer's sticky error. */
int iw_jw_finish(iw_jw *j);

#endif
