/* generic.h: the `generic` adapter: a target defined by a mapping file alone (method, URL
 * template, headers, body template, how to read the reply). */
#ifndef IW_GENERIC_H
#define IW_GENERIC_H

#include <stddef.h>

#include "mapping.h"
#include "target.h"

IW_TARGET_OPS(generic); /* defined in generic.c */

/* A loaded mapping file. */
typedef struct iw_generic iw_generic;

/* Reads a mapping file's text. Returns 0 and a new mapping in *out (free with
 * iw_generic_free), or IW_EINVAL with every problem in errs, each named by its JSON path
 * ("mapping.body.root.children[3].format: unknown format \"money\""). */
int iw_generic_parse(const char *json, size_t len, iw_generic **out, iw_map_errors *errs);

/* Reads a mapping file. As iw_generic_parse; a file that cannot be read is one error. */
int iw_generic_load(const char *file, iw_generic **out, iw_map_errors *errs);

void iw_generic_free(iw_generic *g);

/* The settings of a generic instance: its key in a target's config (the field table in
 * generic.c). The mapping file is read and checked as the config is loaded. */
typedef struct iw_generic_conf {
    char *mapping;      /* the mapping file, relative paths made relative to the config file */
    iw_generic *loaded; /* what it says; NULL until a mapping is loaded */
} iw_generic_conf;

/* The generic settings of tc. */
static inline iw_generic_conf *iw_generic_conf_of(const iw_target_conf *tc)
{
    return tc->adapter_conf;
}

/* Loads mapping file into the settings of tc, a generic instance (for tests and tools that
 * build a conf by hand). 0, or IW_EINVAL / IW_ENOMEM with the problems in errs. */
int iw_generic_use(iw_target_conf *tc, const char *file, iw_map_errors *errs);

#endif
