/* midnight.h: the settings of a midnight instance, its keys in a target's config (read by the
 * loader from the field table in midnight.c). */
#ifndef IW_MIDNIGHT_H
#define IW_MIDNIGHT_H

#include "target.h"

IW_TARGET_OPS(midnight); /* defined in midnight.c */

typedef struct iw_midnight_conf {
    char *prc_token;      /* secret: the PRC Authorization token */
    char *midnight_token; /* secret: the Midnight Authorization token (refreshed on 401) */
    char *mis_key;        /* secret: the MISKEY header */
    char *token_url;      /* token refresh URL (default: <url base>/v1/Token/RegenerateAuthToken) */
    char *format;         /* "json" (default) or "xml" */
    char *auth_header;    /* "separate" (two Authorization lines, default) or "folded" (one
                             line, "PRC, Midnight") */
    char *lines_without_id; /* "refuse" (default) or "new" (send them as new lines) */
    char *token_refresh;    /* "on" (default: refresh once on 401) or "off" */
    char **success_replies; /* reply strings that mean success besides a GUID or a number;
                               "*" = any string */
    size_t n_success_replies;
} iw_midnight_conf;

/* The midnight settings of tc. */
static inline iw_midnight_conf *iw_midnight_conf_of(const iw_target_conf *tc)
{
    return tc->adapter_conf;
}

#endif
