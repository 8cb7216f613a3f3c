/* centra.h: the settings of a centra_soap or centra_navision instance, its keys in a target's
 * config (read by the loader from the field tables in centra.c). */
#ifndef IW_CENTRA_H
#define IW_CENTRA_H

#include "target.h"

IW_TARGET_OPS(centra_soap);     /* defined in centra.c */
IW_TARGET_OPS(centra_navision); /* defined in centra.c */

typedef struct iw_centra_conf {
    char *username;      /* centra_soap login, centra_navision Basic user */
    char *password;      /* secret: centra_soap login, centra_navision Basic */
    char *namespace_uri; /* "namespace": the SOAP body namespace (seed) */
    char *soap_action;   /* SOAPAction header value, without quotes (seed) */
    char *auth;          /* centra_navision: "basic" or "none" (default) */
} iw_centra_conf;

/* The centra settings of tc (a centra_soap or centra_navision instance). */
static inline iw_centra_conf *iw_centra_conf_of(const iw_target_conf *tc)
{
    return tc->adapter_conf;
}

#endif
