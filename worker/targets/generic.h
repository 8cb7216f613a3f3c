/* generic.h: the `generic` adapter: a target defined by a mapping file alone (method, URL
 * template, headers, body template, how to read the reply). */
#ifndef IW_GENERIC_H
#define IW_GENERIC_H

#include <stddef.h>

#include "config.h"
#include "mapping.h"

/* A loaded mapping file. */
typedef struct iw_generic iw_generic;

/* Reads a mapping file's text. Returns 0 and a new mapping in *out (free with
 * iw_generic_free), or IW_EINVAL with every problem in errs, each named by its JSON path
 * ("mapping.body.root.children[3].format: unknown format \"money\""). */
int iw_generic_parse(const char *json, size_t len, iw_generic **out, iw_map_errors *errs);

/* Reads a mapping file. As iw_generic_parse; a file that cannot be read is one error. */
int iw_generic_load(const char *file, iw_generic **out, iw_map_errors *errs);

void iw_generic_free(iw_generic *g);

/* Loads the mapping file of every generic target of cfg, once per file for the life of the
 * process (render and classify find it there). Problems go to errs as
 * "targets.<name>.mapping" + "FILE: mapping.<path>: message". Returns 0 or IW_EINVAL. */
int iw_generic_prepare(const iw_config *cfg, iw_config_errors *errs);

#endif
