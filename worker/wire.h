/* wire.h: the last check of a rendered request before libcurl sees it: no header or URL may
 * carry a line break or another control character, whatever an event or a config held. */
#ifndef IW_WIRE_H
#define IW_WIRE_H

#include <stddef.h>

#include "target.h"

/* Returns 0 when every header name is an RFC 9110 token, every header value and the URL are
 * free of control characters (and the URL of spaces); else IW_EINVAL with errbuf naming the
 * header or the URL (never its value). */
int iw_wire_check(const iw_request *r, char *errbuf, size_t errlen);

#endif
