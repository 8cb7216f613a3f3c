/* xmlw.c: the simulator's XML writer (see xmlw.h). */
#include "xmlw.h"

#include <stdlib.h>
#include <string.h>

int iw_xmlw_open(iw_xmlw *x, bool decl)
{
    memset(x, 0, sizeof(*x));
    x->buf = xmlBufferCreate();
    if (!x->buf)
        return IW_SIM_ENOMEM;
    x->w = xmlNewTextWriterMemory(x->buf, 0);
    if (!x->w) {
        xmlBufferFree(x->buf);
        x->buf = NULL;
        return IW_SIM_ENOMEM;
    }
    if (decl && xmlTextWriterStartDocument(x->w, "1.0", "UTF-8", NULL) < 0)
        x->err = IW_SIM_ENOMEM;
    return x->err;
}

static void check(iw_xmlw *x, int rc)
{
    if (rc < 0 && !x->err)
        x->err = IW_SIM_EINVAL; /* libxml2 refuses e.g. invalid UTF-8 or a bad name */
}

void iw_xmlw_start(iw_xmlw *x, const char *prefix, const char *name, const char *ns_uri)
{
    if (x->err)
        return;
    check(x, xmlTextWriterStartElementNS(x->w, (const xmlChar *)prefix, (const xmlChar *)name,
                                         (const xmlChar *)ns_uri));
}

void iw_xmlw_end(iw_xmlw *x)
{
    if (x->err)
        return;
    check(x, xmlTextWriterEndElement(x->w));
}

void iw_xmlw_attr(iw_xmlw *x, const char *name, const char *value)
{
    if (x->err)
        return;
    check(x, xmlTextWriterWriteAttribute(x->w, (const xmlChar *)name, (const xmlChar *)value));
}

void iw_xmlw_text(iw_xmlw *x, const char *prefix, const char *name, const char *text)
{
    if (x->err || !text)
        return;
    check(x, xmlTextWriterWriteElementNS(x->w, (const xmlChar *)prefix, (const xmlChar *)name, NULL,
                                         (const xmlChar *)text));
}

void iw_xmlw_text_or_empty(iw_xmlw *x, const char *prefix, const char *name, const char *text)
{
    if (x->err)
        return;
    if (text) {
        iw_xmlw_text(x, prefix, name, text);
        return;
    }
    iw_xmlw_start(x, prefix, name, NULL);
    iw_xmlw_end(x);
}

int iw_xmlw_close(iw_xmlw *x, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!x->err && xmlTextWriterEndDocument(x->w) < 0)
        x->err = IW_SIM_EINVAL;
    xmlFreeTextWriter(x->w); /* flushes into buf */
    x->w = NULL;
    int rc = x->err;
    if (!rc) {
        size_t n = (size_t)xmlBufferLength(x->buf);
        char *s = malloc(n + 1);
        if (!s) {
            rc = IW_SIM_ENOMEM;
        } else {
            memcpy(s, xmlBufferContent(x->buf), n);
            s[n] = '\0';
            *out = s;
            *len = n;
        }
    }
    xmlBufferFree(x->buf);
    x->buf = NULL;
    return rc;
}
