/* docpaths.h: the structure of an XML or JSON document as a list of paths, for golden tests. */
#ifndef IW_DOCPATHS_H
#define IW_DOCPATHS_H

#include <stddef.h>

/* A list of distinct paths in order of first appearance. */
typedef struct iw_paths {
    char **items;
    size_t n;
} iw_paths;

/* XML: each element as "{namespace-uri}local/{namespace-uri}local/...", from the root, in
 * document order; repeated paths (the second invoice line) are listed once, where they first
 * appear. Comments and text are ignored. Returns 0, or -1 when the text is not well-formed. */
int iw_paths_xml(const char *xml, size_t len, iw_paths *out);

/* JSON: each key as "a.b[].c" (array elements collapse to []), in document order, listed once.
 * Returns 0, or -1 when the text is not JSON. */
int iw_paths_json(const char *json, size_t len, iw_paths *out);

/* Compares two lists. Returns 0 when equal; otherwise writes the first difference (index,
 * expected, got) into msg and returns -1. */
int iw_paths_compare(const iw_paths *expected, const iw_paths *got, char *msg, size_t msglen);

/* Frees the list. */
void iw_paths_free(iw_paths *p);

/* Reads a whole file into a malloc'd NUL-terminated buffer; *len gets its size. NULL on error. */
char *iw_read_file(const char *path, size_t *len);

#endif
