/* xml.h: small libxml2 helpers: hardened parsing of replies and terse element writing. */
#ifndef IW_XML_H
#define IW_XML_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>

#include "decimal.h"

/* Parses an XML reply with network access, DTD loading and entity expansion off (an external
 * entity is never read, a billion-laughs document is refused). Returns a doc (caller frees
 * with xmlFreeDoc) or NULL with a reason in errbuf. */
xmlDocPtr iw_xml_parse(const char *buf, size_t len, char *errbuf, size_t errlen);

/* First element at or below n, in document order, whose local name is `name` (any namespace);
 * NULL when there is none. */
xmlNodePtr iw_xml_find(xmlNodePtr n, const char *name);

/* Copies the text content of n (trimmed of surrounding white space) into buf; returns the
 * length copied (truncated to fit). n may be NULL ("" is written). */
size_t iw_xml_text(xmlNodePtr n, char *buf, size_t len);

/* Writer over a growing memory buffer. */
typedef struct iw_xmlw {
    xmlBufferPtr buf;
    xmlTextWriterPtr w;
    int err; /* first libxml2 error (< 0), sticky: later calls do nothing */
} iw_xmlw;

/* Starts a document (<?xml version="1.0" encoding="UTF-8"?> when decl is true). 0 or IW_ENOMEM. */
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

/* Writes a decimal element, formatted by iw_decimal_format (scale kept); unset: omitted. */
void iw_xmlw_amount(iw_xmlw *x, const char *prefix, const char *name, const iw_amount *a);

/* Finishes the document and hands over the text: *out (malloc'd, NUL-terminated, caller frees)
 * and *len. Frees the writer in every case. Returns 0, or the sticky error. */
int iw_xmlw_close(iw_xmlw *x, char **out, size_t *len);

/* Frees a writer without producing output (on an error path). */
void iw_xmlw_discard(iw_xmlw *x);

#endif
