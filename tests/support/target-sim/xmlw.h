/* xmlw.h: the simulator's own XML writer for its replies, over libxml2's xmlTextWriter. The
 * worker writes its requests with common/wbuf; the simulator, which judges them, keeps writing
 * its answers through libxml2, so the two never share a writer. */
#ifndef IW_SIM_XMLW_H
#define IW_SIM_XMLW_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/xmlwriter.h>

/* The writer's errors. */
#define IW_SIM_ENOMEM (-2)
#define IW_SIM_EINVAL (-3)

/* Writer over a growing memory buffer. */
typedef struct iw_xmlw {
    xmlBufferPtr buf;
    xmlTextWriterPtr w;
    int err; /* first libxml2 error (< 0), sticky: later calls do nothing */
} iw_xmlw;

/* Starts a document (<?xml version="1.0" encoding="UTF-8"?> when decl is true). 0 or IW_SIM_ENOMEM.
 */
int iw_xmlw_open(iw_xmlw *x, bool decl);

/* <prefix:name> with optional namespace declaration (ns_uri NULL = none). */
void iw_xmlw_start(iw_xmlw *x, const char *prefix, const char *name, const char *ns_uri);
void iw_xmlw_end(iw_xmlw *x);

/* Adds an attribute to the element just started (xmlns:foo declarations included). */
void iw_xmlw_attr(iw_xmlw *x, const char *name, const char *value);

/* <prefix:name>text</prefix:name>; text NULL: omitted entirely. */
void iw_xmlw_text(iw_xmlw *x, const char *prefix, const char *name, const char *text);

/* Like iw_xmlw_text but text NULL writes an empty element <prefix:name/>. */
void iw_xmlw_text_or_empty(iw_xmlw *x, const char *prefix, const char *name, const char *text);

/* Finishes the document and hands over the text: *out (malloc'd, NUL-terminated, caller frees)
 * and *len. Frees the writer in every case. Returns 0, or the sticky error. */
int iw_xmlw_close(iw_xmlw *x, char **out, size_t *len);

#endif
