/* wire.c: refuses rendered requests whose headers or URL could split or smuggle a header. */
#include "wire.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "status.h"
#include "text.h"

/* RFC 9110 section 5.6.2: token = 1*tchar. */
static bool is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool alnum =
            (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!alnum && !strchr("!#$%&'*+-.^_`|~", ch))
            return false;
    }
    return true;
}

int iw_wire_check(const iw_request *r, char *errbuf, size_t errlen)
{
    const char *why = NULL;
    if (!r->url || !*r->url) {
        snprintf(errbuf, errlen, "the request has no URL");
        return IW_EINVAL;
    }
    if ((why = iw_text_header_problem(r->url)) || strchr(r->url, ' ')) {
        snprintf(errbuf, errlen, "request URL %s", why ? why : "contains a space");
        return IW_EINVAL;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        const iw_header *h = &r->headers[i];
        if (!is_token(h->name)) {
            snprintf(errbuf, errlen, "request header %zu: the name is not an HTTP token", i + 1);
            return IW_EINVAL;
        }
        if ((why = iw_text_header_problem(h->value))) {
            snprintf(errbuf, errlen, "request header %.64s: the value %s", h->name, why);
            return IW_EINVAL;
        }
    }
    return 0;
}
