/* xml.c: hardened reply parsing over libxml2 (requests are written by wbuf.c). */
#include "xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

/* Largest reply we hand to the parser; the transport caps replies earlier. */
#define MAX_XML_BYTES (64u * 1024u * 1024u)

/* Copies the first line of a libxml2 message into out (len > 0). The message may quote the
 * reply's own bytes, so anything that is not well-formed UTF-8 becomes '?', and a character
 * is never cut. */
static void clean_line(char *out, size_t len, const char *msg)
{
    const unsigned char *s = (const unsigned char *)msg;
    size_t o = 0;
    while (*s && *s != '\n') {
        size_t k = 1;
        unsigned c = *s, min = 0;
        if (c >= 0x80) {
            k = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
            min = k == 2 ? 0x80 : k == 3 ? 0x800 : 0x10000;
            c &= k == 2 ? 0x1F : k == 3 ? 0x0F : 0x07;
            for (size_t i = 1; i < k; i++) {
                if ((s[i] & 0xC0) != 0x80) {
                    k = 0;
                    break;
                }
                c = (c << 6) | (s[i] & 0x3F);
            }
            if (k && (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)))
                k = 0;
        }
        size_t w = k ? k : 1;
        if (o + w >= len)
            break;
        if (k > 1) {
            memcpy(out + o, s, k);
            o += k;
        } else {
            out[o++] = k == 0 ? '?' : *s < 0x20 ? ' ' : (char)*s;
        }
        s += w;
    }
    out[o] = '\0';
}

xmlDocPtr iw_xml_parse(const char *buf, size_t len, char *errbuf, size_t errlen)
{
    if (!buf || len == 0) {
        snprintf(errbuf, errlen, "empty body");
        return NULL;
    }
    if (len > MAX_XML_BYTES) {
        snprintf(errbuf, errlen, "reply of %zu bytes is too large to parse", len);
        return NULL;
    }
    /* No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading, no network. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, buf, (int)len, "reply.xml", NULL, opts);
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(ctx);
        int n = snprintf(errbuf, errlen, "not well-formed XML");
        if (e && e->message && n > 0 && (size_t)n + 3 < errlen) {
            memcpy(errbuf + n, ": ", 3);
            clean_line(errbuf + n + 2, errlen - (size_t)n - 2, e->message);
            if (!errbuf[n + 2])
                errbuf[n] = '\0';
        }
    } else if (doc->intSubset && doc->intSubset->entities) {
        /* A reply that declares entities is hostile or broken; we never need one. */
        snprintf(errbuf, errlen, "reply declares XML entities; refused");
        xmlFreeDoc(doc);
        doc = NULL;
    }
    xmlFreeParserCtxt(ctx);
    return doc;
}

xmlNodePtr iw_xml_find(xmlNodePtr n, const char *name)
{
    for (; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE) {
            if (strcmp((const char *)n->name, name) == 0)
                return n;
            xmlNodePtr c = iw_xml_find(n->children, name);
            if (c)
                return c;
        }
    }
    return NULL;
}

size_t iw_xml_text(xmlNodePtr n, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    buf[0] = '\0';
    if (!n)
        return 0;
    xmlChar *t = xmlNodeGetContent(n);
    if (!t)
        return 0;
    const char *s = (const char *)t;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t l = strlen(s);
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r' || s[l - 1] == '\n'))
        l--;
    if (l >= len) {
        l = len - 1;
        while (l > 0 && ((unsigned char)s[l] & 0xC0) == 0x80)
            l--; /* never cut a UTF-8 sequence: the cut text ends up in messages */
    }
    memcpy(buf, s, l);
    buf[l] = '\0';
    xmlFree(t);
    return l;
}
