/* ebizcharge.h: the settings of an ebizcharge instance, its keys in a target's config (read by
 * the loader from the field table in ebizcharge.c). */
#ifndef IW_EBIZCHARGE_H
#define IW_EBIZCHARGE_H

#include "target.h"

IW_TARGET_OPS(ebizcharge); /* defined in ebizcharge.c */

typedef struct iw_ebiz_conf {
    char *user_id;       /* UserId */
    char *security_id;   /* secret: SecurityId */
    char *password;      /* secret: Password */
    char *namespace_uri; /* "namespace": the SOAP body namespace (seed) */
    char *soap_action;   /* SOAPAction header value, without quotes (seed) */
    char *date_format;   /* "mdy" (MM/DD/YYYY, default) or "iso" (YYYY-MM-DD) */
} iw_ebiz_conf;

/* The ebizcharge settings of tc. */
static inline iw_ebiz_conf *iw_ebiz_conf_of(const iw_target_conf *tc)
{
    return tc->adapter_conf;
}

#endif
