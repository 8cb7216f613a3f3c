/* xml.h: small libxml2 helpers for reading replies: hardened parsing, finding elements, text. */
#ifndef IW_XML_H
#define IW_XML_H

#include <stddef.h>

#include <libxml/tree.h>

/* The two namespace names XML reserves: bound to the prefixes xml and xmlns alone. */
#define IW_XML_NS "http://www.w3.org/XML/1998/namespace"
#define IW_XMLNS_NS "http://www.w3.org/2000/xmlns/"

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

#endif
