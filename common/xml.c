/* xml.c: hardened reply parsing over libxml2 (requests are written by wbuf.c). */
#include "xml.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/dict.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>

/* Largest reply we hand to the parser; the transport caps replies earlier. */
#define MAX_XML_BYTES (64u * 1024u * 1024u)
/* Below libxml2's lookup limit (XML_MAX_LOOKUP_LIMIT, 10,000,000 bytes), which it waives for
 * a memory input only while the input keeps its callback: a reply this large or larger is read
 * the usual way (read_undecoded). */
#define UNDECODED_MAX 10000000u

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

/* A parser context per thread, reused: a new context creates a name dictionary and input
 * buffers, about a third of what a small reply's parse costs. Its dictionary keeps every
 * element name it has seen, so the context is made anew after REUSE_MAX parses or once the
 * dictionary holds more than DICT_MAX names (replies are not ours to trust). */
#define REUSE_MAX 4096
#define DICT_MAX 2048

typedef struct reuse {
    xmlParserCtxtPtr ctx;
    unsigned uses;
} reuse;

static pthread_key_t reuse_key;
static pthread_once_t reuse_once = PTHREAD_ONCE_INIT;

static void reuse_free(void *p)
{
    reuse *r = p;
    if (r->ctx)
        xmlFreeParserCtxt(r->ctx);
    free(r);
}

static void reuse_init(void)
{
    if (pthread_key_create(&reuse_key, reuse_free) != 0)
        abort(); /* only fails without resources at start-up */
}

/* Set when the parse in progress on this thread met a reference to an entity nobody declared.
 * Under a document type whose DTD is never loaded, libxml2 takes such a reference as well
 * formed (the DTD might have declared it), reports it (XML_WAR_UNDECLARED_ENTITY, in text and
 * in attribute values alike, in whatever encoding) and reads it as no text at all. A parameter
 * entity the internal subset names is no text of the reply: not counted. libxml2 2.13 and
 * later no longer report to this handler under XML_PARSE_NOERROR; a reference in text is then
 * still found as the node the parser leaves for it (refers_to_an_entity), one in an attribute
 * value no longer (Debian bookworm, which the build targets, has 2.9.14). */
static _Thread_local bool undeclared_entity;

static void note_error(void *data, xmlErrorPtr e)
{
    const xmlParserCtxt *ctx = data; /* the context's userData: the context itself */
    if (e && e->code == XML_WAR_UNDECLARED_ENTITY && !(ctx && ctx->inSubset))
        undeclared_entity = true;
}

/* Whether n, its siblings after it or anything below them is a reference to an entity (the
 * five predefined ones and character references are text). */
static bool refers_to_an_entity(xmlNodePtr n)
{
    for (; n; n = n->next) {
        if (n->type == XML_ENTITY_REF_NODE)
            return true;
        if (n->type == XML_ELEMENT_NODE && refers_to_an_entity(n->children))
            return true;
    }
    return false;
}

/* This thread's context, made anew when it has served long enough; NULL without memory. */
static xmlParserCtxtPtr parser_ctx(void)
{
    pthread_once(&reuse_once, reuse_init);
    reuse *r = pthread_getspecific(reuse_key);
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))) || pthread_setspecific(reuse_key, r) != 0) {
            free(r);
            return NULL;
        }
    }
    if (r->ctx && (r->uses >= REUSE_MAX || !r->ctx->dict || xmlDictSize(r->ctx->dict) > DICT_MAX)) {
        xmlFreeParserCtxt(r->ctx);
        r->ctx = NULL;
    }
    if (!r->ctx) {
        r->ctx = xmlNewParserCtxt();
        r->uses = 0;
        if (r->ctx && r->ctx->sax)
            r->ctx->sax->serror = note_error; /* errors still land in the context's lastError */
    }
    r->uses++;
    return r->ctx;
}

/* xmlCtxtReadMemory with one change. libxml2's memory input keeps a read callback that has
 * nothing to read, and the parser calls it (growing the buffer first) each time fewer than 250
 * bytes are left, which in a short reply is nearly every step. Without the callback those calls
 * return at once; the bytes are all in the buffer already, so a reply that needs no decoder
 * parses the same. One that does (UTF-16, a declared ISO-8859-1) is decoded only as the parser
 * grows, so for it *again is set and nothing is returned: it is read the usual way. Returns
 * the document, or NULL as xmlCtxtReadMemory does. */
static xmlDocPtr read_undecoded(xmlParserCtxtPtr ctx, const char *buf, size_t len, int opts,
                                bool *again)
{
    xmlCtxtReset(ctx);
    xmlParserInputBufferPtr in =
        xmlParserInputBufferCreateMem(buf, (int)len, XML_CHAR_ENCODING_NONE);
    if (!in)
        return NULL;
    in->readcallback = NULL;
    xmlParserInputPtr stream = xmlNewIOInputStream(ctx, in, XML_CHAR_ENCODING_NONE);
    if (!stream) {
        xmlFreeParserInputBuffer(in);
        return NULL;
    }
    inputPush(ctx, stream);
    xmlCtxtUseOptions(ctx, opts);
    xmlParseDocument(ctx);
    xmlDocPtr doc = ctx->myDoc;
    ctx->myDoc = NULL;
    *again = ctx->input && ctx->input->buf && ctx->input->buf->encoder;
    if (doc && (!ctx->wellFormed || *again)) {
        xmlFreeDoc(doc);
        doc = NULL;
    }
    return doc;
}

/* An XHTML page: its root is html (any case, as the adapters take a page) in no namespace or in
 * XHTML's. */
static bool is_xhtml(xmlNodePtr root)
{
    return root && strcasecmp((const char *)root->name, "html") == 0 &&
           (!root->ns || (root->ns->href && strcmp((const char *)root->ns->href,
                                                   "http://www.w3.org/1999/xhtml") == 0));
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
    /* White space before the XML declaration (a template's leading newline) is not well formed,
     * nor is a UTF-8 byte order mark after it or a second one (a PHP include saved with a BOM,
     * then the newline after its closing tag), but what follows is the server's whole answer:
     * read it, so its errors are still seen. The document is then read as UTF-8 or as its
     * declaration says. */
    size_t lead = 0;
    bool bom_inside = false; /* a BOM after white space: not well formed even before a root */
    for (;;) {
        if (lead < len &&
            (buf[lead] == ' ' || buf[lead] == '\t' || buf[lead] == '\r' || buf[lead] == '\n'))
            lead++;
        else if (len - lead >= 3 && memcmp(buf + lead, "\xEF\xBB\xBF", 3) == 0) {
            bom_inside |= lead > 0;
            lead += 3;
        } else
            break;
    }
    if (lead && ((len - lead >= 5 && memcmp(buf + lead, "<?xml", 5) == 0) ||
                 (bom_inside && lead < len && buf[lead] == '<'))) {
        buf += lead;
        len -= lead;
    }
    /* No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading, no network. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    xmlParserCtxtPtr ctx = parser_ctx();
    if (!ctx) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    undeclared_entity = false;
    bool again = len >= UNDECODED_MAX;
    xmlDocPtr doc = again ? NULL : read_undecoded(ctx, buf, len, opts, &again);
    if (again) {
        undeclared_entity = false;
        /* no URL: libxml2 would parse and unescape it as a URI on every call */
        doc = xmlCtxtReadMemory(ctx, buf, (int)len, NULL, NULL, opts);
    }
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
    } else if ((undeclared_entity ||
                ((doc->intSubset || doc->extSubset) && refers_to_an_entity(doc->children))) &&
               !is_xhtml(xmlDocGetRootElement(doc))) {
        /* Under a document type naming a DTD that is never loaded, a reference to an entity
         * no one declared is well formed, and would read as no text at all (an error element
         * read as empty): refused too (note_error). An XHTML page's &nbsp; is left to the
         * adapters, which take a page for no reply of theirs (all but a generic mapping's,
         * which reads what its paths name, a page or not). */
        snprintf(errbuf, errlen, "reply refers to XML entities its DTD would declare; refused");
        xmlFreeDoc(doc);
        doc = NULL;
    }
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
    /* the usual element holds one text node: read it in place, without a copy */
    xmlNodePtr only = n->type == XML_ELEMENT_NODE ? n->children : NULL;
    bool in_place = only && !only->next && only->type == XML_TEXT_NODE && only->content;
    xmlChar *t = in_place ? only->content : xmlNodeGetContent(n);
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
    if (!in_place)
        xmlFree(t);
    return l;
}
