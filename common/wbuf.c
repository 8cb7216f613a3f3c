/* wbuf.c: the reusable render buffer and its XML and JSON writers (escaping rules: wbuf.h). */
#include "wbuf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "text.h"

#define FIRST_CAP 4096u
#define SCRATCH_KEEP (1024u * 1024u) /* a scratch buffer larger than this is not kept */

static const char WHY_CONTROL[] = "text holds a control character XML 1.0 cannot carry";
static const char WHY_NONCHAR[] = "text holds U+FFFE or U+FFFF, which XML 1.0 cannot carry";
static const char WHY_UTF8[] = "text is not valid UTF-8";
static const char WHY_DEPTH[] = "nested too deeply";

/* ------------------------------------------------------------------ buffer */

void iw_wbuf_reset(iw_wbuf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
    b->err = 0;
    b->why = NULL;
    b->what[0] = '\0';
}

void iw_wbuf_free(iw_wbuf *b)
{
    free(b->data);
    *b = (iw_wbuf)IW_WBUF_INIT;
}

void iw_wbuf_fail(iw_wbuf *b, int err, const char *what, const char *why)
{
    if (b->err)
        return;
    b->err = err;
    b->why = why;
    snprintf(b->what, sizeof(b->what), "%s", what ? what : "");
}

const char IW_WBUF_TOO_LARGE[] = "would pass 64 MiB (a body that large is no invoice)";

/* Makes room for n more bytes and the NUL; false (and the sticky IW_ENOMEM, or IW_EINVAL past
 * IW_WBUF_MAX) when it cannot.
 * Out of line, so that claim() below stays small enough to inline everywhere. */
__attribute__((noinline)) static bool grow(iw_wbuf *b, size_t n)
{
    size_t want = b->len + n + 1, cap = b->cap ? b->cap : FIRST_CAP;
    if (want < n)
        goto nomem;
    if (want > IW_WBUF_MAX) {
        iw_wbuf_fail(b, IW_EINVAL, "the text written", IW_WBUF_TOO_LARGE);
        return false;
    }
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            goto nomem;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d)
        goto nomem;
    b->data = d;
    b->cap = cap;
    return true;
nomem:
    iw_wbuf_fail(b, IW_ENOMEM, NULL, NULL);
    return false;
}

/* Room for n more bytes, counted as written (the caller fills them; the NUL after them is
 * set); NULL after an error. */
static inline char *claim(iw_wbuf *b, size_t n)
{
    if (b->err || (b->cap - b->len <= n && !grow(b, n)))
        return NULL;
    char *p = b->data + b->len;
    b->len += n;
    b->data[b->len] = '\0';
    return p;
}

void iw_wbuf_add(iw_wbuf *b, const char *s, size_t n)
{
    char *p = claim(b, n);
    if (p)
        memcpy(p, s, n);
}

void iw_wbuf_adds(iw_wbuf *b, const char *s)
{
    iw_wbuf_add(b, s, strlen(s));
}

static inline void add_char(iw_wbuf *b, char c)
{
    char *p = claim(b, 1);
    if (p)
        *p = c;
}

int iw_wbuf_error(const iw_wbuf *b, char *errbuf, size_t errlen)
{
    if (b->err == IW_ENOMEM || (b->err && !b->why))
        snprintf(errbuf, errlen, "%s", b->err == IW_ENOMEM ? "out of memory" : "invalid input");
    else if (b->err)
        snprintf(errbuf, errlen, "%s: %s", b->what[0] ? b->what : "(document)", b->why);
    return b->err;
}

int iw_wbuf_copy(const iw_wbuf *b, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (b->err)
        return b->err;
    char *s = malloc(b->len + 1);
    if (!s)
        return IW_ENOMEM;
    if (b->len)
        memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    *out = s;
    *len = b->len;
    return 0;
}

/* One buffer per thread, in thread-local storage (so leak checkers see its memory while the
 * thread runs), registered under a key whose destructor frees that memory when the thread
 * ends. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;
static _Thread_local iw_wbuf scratch = IW_WBUF_INIT;
static _Thread_local bool scratch_registered;

static void scratch_release(void *p)
{
    iw_wbuf_free(p);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_release) == 0;
}

iw_wbuf *iw_wbuf_scratch(void)
{
    if (!scratch_registered) {
        pthread_once(&scratch_once, scratch_key_init);
        scratch_registered = scratch_key_ok && pthread_setspecific(scratch_key, &scratch) == 0;
    }
    if (scratch.cap > SCRATCH_KEEP)
        iw_wbuf_free(&scratch);
    iw_wbuf_reset(&scratch);
    return &scratch;
}

/* ------------------------------------------------------------------ escaping */

/* clang-format off */
/* 1 for the bytes written as they are, so runs of them are copied at once: printable ASCII and
 * DEL, but < > & " in XML and " and backslash in JSON; the rest is looked at byte by byte. */
static const unsigned char xml_plain[256] = {
    /* 0x00 ... 0x1f and 0x80 ... 0xff: 0 */
    [0x20] = 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x30 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1,
    /* 0x40 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x50 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x60 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x70 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
static const unsigned char json_plain[256] = {
    /* 0x00 ... 0x1f and 0x80 ... 0xff: 0 */
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x30 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x40 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x50 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    /* 0x60 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x70 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
/* clang-format on */

/* Steps *p over the UTF-8 sequence it points at (written as it is); false after recording why
 * it is refused: not UTF-8, or (when xml) a noncharacter XML 1.0 excludes. */
static bool skip_utf8(iw_wbuf *b, const char *what, const unsigned char **p, bool xml)
{
    uint32_t cp;
    size_t n = iw_text_utf8_next(*p, &cp);
    if (n == 0)
        iw_wbuf_fail(b, IW_EINVAL, what, WHY_UTF8);
    else if (xml && (cp == 0xFFFE || cp == 0xFFFF))
        iw_wbuf_fail(b, IW_EINVAL, what, WHY_NONCHAR);
    *p += n;
    return !b->err;
}

/* Writes s escaped as xmlTextWriter does in element text (attr false) or in an attribute
 * value, refusing what XML 1.0 cannot carry; what names the element or attribute. */
static void xml_escape(iw_wbuf *b, const char *what, const char *s, bool attr)
{
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (;;) {
        while (xml_plain[*p])
            p++;
        const char *rep;
        switch (*p) {
        case '\0': iw_wbuf_add(b, (const char *)run, (size_t)(p - run)); return;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\r': rep = "&#13;"; break;
        case '\t': rep = attr ? "&#9;" : NULL; break;
        case '\n': rep = attr ? "&#10;" : NULL; break;
        default:
            if (*p < 0x20)
                iw_wbuf_fail(b, IW_EINVAL, what, WHY_CONTROL);
            else if (skip_utf8(b, what, &p, true))
                continue;
            return;
        }
        if (!rep) {
            p++;
            continue;
        }
        iw_wbuf_add(b, (const char *)run, (size_t)(p - run));
        iw_wbuf_adds(b, rep);
        run = ++p;
    }
}

/* Writes s as a JSON string, quotes included, escaped as cJSON's print_string_ptr does. */
static void json_escape(iw_wbuf *b, const char *what, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *run = p;
    add_char(b, '"');
    for (;;) {
        while (json_plain[*p])
            p++;
        char rep[7] = {'\\', 0, 0, 0, 0, 0, 0};
        switch (*p) {
        case '\0':
            iw_wbuf_add(b, (const char *)run, (size_t)(p - run));
            add_char(b, '"');
            return;
        case '"': rep[1] = '"'; break;
        case '\\': rep[1] = '\\'; break;
        case '\b': rep[1] = 'b'; break;
        case '\f': rep[1] = 'f'; break;
        case '\n': rep[1] = 'n'; break;
        case '\r': rep[1] = 'r'; break;
        case '\t': rep[1] = 't'; break;
        default:
            if (*p < 0x20) {
                memcpy(rep + 1, "u00", 3);
                rep[4] = hex[*p >> 4];
                rep[5] = hex[*p & 15];
                break;
            }
            if (skip_utf8(b, what, &p, false))
                continue;
            return;
        }
        iw_wbuf_add(b, (const char *)run, (size_t)(p - run));
        iw_wbuf_adds(b, rep);
        run = ++p;
    }
}

void iw_xml_escaped(iw_wbuf *b, const char *text, bool attr)
{
    xml_escape(b, NULL, text, attr);
}

void iw_json_escaped(iw_wbuf *b, const char *s)
{
    json_escape(b, NULL, s);
}

/* ------------------------------------------------------------------ XML */

typedef struct iw_xw_name xw_name;

static xw_name name_of(const char *prefix, const char *name)
{
    return (xw_name){
        .prefix = prefix, .name = name, .plen = prefix ? strlen(prefix) : 0, .nlen = strlen(name)};
}

/* Writes "<" ("</" when end), prefix:name (name alone without a prefix) and, when close, ">",
 * in one piece. */
static void xml_tag(iw_wbuf *b, const xw_name *q, bool end, bool close)
{
    char *p = claim(b, 1 + end + (q->prefix ? q->plen + 1 : 0) + q->nlen + close);
    if (!p)
        return;
    *p++ = '<';
    if (end)
        *p++ = '/';
    if (q->prefix) {
        memcpy(p, q->prefix, q->plen);
        p += q->plen;
        *p++ = ':';
    }
    memcpy(p, q->name, q->nlen);
    if (close)
        p[q->nlen] = '>';
}

static void xml_attr(iw_wbuf *b, const char *prefix, const char *name, const char *value)
{
    add_char(b, ' ');
    if (prefix) {
        iw_wbuf_adds(b, prefix);
        add_char(b, ':');
    }
    iw_wbuf_adds(b, name);
    iw_wbuf_add(b, "=\"", 2);
    xml_escape(b, name, value, true);
    add_char(b, '"');
}

/* Ends the open start tag: its namespace declaration (after its attributes), then close. */
static void close_start(iw_xw *x, const char *close)
{
    if (x->ns_uri)
        xml_attr(x->b, x->ns_prefix ? "xmlns" : NULL, x->ns_prefix ? x->ns_prefix : "xmlns",
                 x->ns_uri);
    iw_wbuf_adds(x->b, close);
    x->in_tag = false;
    x->ns_prefix = x->ns_uri = NULL;
}

/* Something goes inside the innermost element: its start tag ends with '>'. */
static void content(iw_xw *x)
{
    if (x->in_tag)
        close_start(x, ">");
}

void iw_xw_begin(iw_xw *x, iw_wbuf *b, bool decl)
{
    memset(x, 0, sizeof(*x));
    x->b = b;
    if (decl)
        iw_wbuf_adds(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
}

void iw_xw_start(iw_xw *x, const char *prefix, const char *name, const char *ns_uri)
{
    if (x->b->err)
        return;
    if (x->depth == IW_XW_MAX_DEPTH) {
        iw_wbuf_fail(x->b, IW_EINVAL, name, WHY_DEPTH);
        return;
    }
    content(x);
    x->open[x->depth] = name_of(prefix, name);
    xml_tag(x->b, &x->open[x->depth], false, false);
    x->depth++;
    x->in_tag = true;
    x->ns_prefix = prefix;
    x->ns_uri = ns_uri;
}

void iw_xw_attr(iw_xw *x, const char *name, const char *value)
{
    if (x->b->err)
        return;
    if (!x->in_tag) {
        iw_wbuf_fail(x->b, IW_EINVAL, name, "an attribute after the element's content");
        return;
    }
    xml_attr(x->b, NULL, name, value);
}

void iw_xw_end(iw_xw *x)
{
    if (x->b->err)
        return;
    if (x->depth == 0) {
        iw_wbuf_fail(x->b, IW_EINVAL, NULL, "no element is open");
        return;
    }
    x->depth--;
    if (x->in_tag) {
        close_start(x, "/>");
        return;
    }
    const iw_xw_tags *t = x->open[x->depth].tags;
    if (t)
        iw_wbuf_add(x->b, t->text + t->open_len, t->len - t->open_len);
    else
        xml_tag(x->b, &x->open[x->depth], true, true);
}

/* The element is written whole, without going through the stack of open elements. */
void iw_xw_text(iw_xw *x, const char *prefix, const char *name, const char *text)
{
    if (x->b->err || !text)
        return;
    content(x);
    xw_name q = name_of(prefix, name);
    xml_tag(x->b, &q, false, true);
    xml_escape(x->b, name, text, false);
    xml_tag(x->b, &q, true, true);
}

void iw_xw_chars(iw_xw *x, const char *text)
{
    if (x->b->err)
        return;
    content(x);
    xml_escape(x->b, x->depth ? x->open[x->depth - 1].name : NULL, text, false);
}

void iw_xw_text_or_empty(iw_xw *x, const char *prefix, const char *name, const char *text)
{
    if (text) {
        iw_xw_text(x, prefix, name, text);
        return;
    }
    iw_xw_start(x, prefix, name, NULL);
    iw_xw_end(x);
}

int iw_xw_tags_make(iw_xw_tags *t, const char *prefix, const char *name)
{
    xw_name q = name_of(prefix, name);
    iw_wbuf b = IW_WBUF_INIT;
    xml_tag(&b, &q, false, true);
    size_t open = b.len;
    xml_tag(&b, &q, true, true);
    *t = (iw_xw_tags){.text = b.err ? NULL : b.data, .open_len = open, .len = b.len};
    if (b.err)
        iw_wbuf_free(&b);
    return t->text ? 0 : IW_ENOMEM;
}

void iw_xw_tags_free(iw_xw_tags *t)
{
    free(t->text);
    *t = (iw_xw_tags){0};
}

void iw_xw_text_tags(iw_xw *x, const iw_xw_tags *t, const char *name, const char *text)
{
    if (x->b->err)
        return;
    if (!t->text) {
        iw_wbuf_fail(x->b, IW_ENOMEM, name, NULL);
        return;
    }
    content(x);
    if (!text) { /* <prefix:name/>: the start tag with "/>" for its '>' */
        char *p = claim(x->b, t->open_len + 1);
        if (p) {
            memcpy(p, t->text, t->open_len - 1);
            memcpy(p + t->open_len - 1, "/>", 2);
        }
        return;
    }
    /* The plain start of the text (usually all of it) is copied with the start tag in one
     * piece; what follows it, if anything, is escaped as usual. */
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0;
    while (xml_plain[s[n]])
        n++;
    size_t close_len = t->len - t->open_len;
    char *p = claim(x->b, t->open_len + n + (s[n] ? 0 : close_len));
    if (!p)
        return;
    memcpy(p, t->text, t->open_len);
    memcpy(p + t->open_len, s, n);
    if (s[n]) {
        xml_escape(x->b, name, text + n, false);
        iw_wbuf_add(x->b, t->text + t->open_len, close_len);
    } else {
        memcpy(p + t->open_len + n, t->text + t->open_len, close_len);
    }
}

void iw_xw_start_tags(iw_xw *x, const iw_xw_tags *t, const char *name)
{
    if (x->b->err)
        return;
    if (!t->text) {
        iw_wbuf_fail(x->b, IW_ENOMEM, name, NULL);
        return;
    }
    if (x->depth == IW_XW_MAX_DEPTH) {
        iw_wbuf_fail(x->b, IW_EINVAL, name, WHY_DEPTH);
        return;
    }
    content(x);
    x->open[x->depth] = (xw_name){.name = name, .tags = t};
    iw_wbuf_add(x->b, t->text, t->open_len - 1); /* "<prefix:name": attributes may follow */
    x->depth++;
    x->in_tag = true;
    x->ns_prefix = x->ns_uri = NULL;
}

int iw_xw_finish(iw_xw *x)
{
    while (!x->b->err && x->depth > 0)
        iw_xw_end(x);
    add_char(x->b, '\n');
    return x->b->err;
}

/* ------------------------------------------------------------------ JSON */

/* The separator and the key in front of a value; a key that needs no escaping (every key the
 * adapters write) goes out in one piece. */
static void json_member(iw_jw *j, const char *key)
{
    bool comma = false;
    if (j->depth > 0) {
        comma = j->more[j->depth - 1];
        j->more[j->depth - 1] = true;
    }
    if (!key) {
        if (comma)
            add_char(j->b, ',');
        return;
    }
    size_t n = 0;
    while (json_plain[(unsigned char)key[n]])
        n++;
    if (key[n]) { /* a key to escape */
        if (comma)
            add_char(j->b, ',');
        json_escape(j->b, key, key);
        add_char(j->b, ':');
        return;
    }
    char *p = claim(j->b, comma + n + 3);
    if (!p)
        return;
    if (comma)
        *p++ = ',';
    *p++ = '"';
    memcpy(p, key, n);
    p[n] = '"';
    p[n + 1] = ':';
}

static void json_open(iw_jw *j, const char *key, char open, char close)
{
    if (j->b->err)
        return;
    if (j->depth == IW_JW_MAX_DEPTH) {
        iw_wbuf_fail(j->b, IW_EINVAL, key, WHY_DEPTH);
        return;
    }
    json_member(j, key);
    add_char(j->b, open);
    j->close[j->depth] = close;
    j->more[j->depth] = false;
    j->depth++;
}

void iw_jw_begin(iw_jw *j, iw_wbuf *b)
{
    memset(j, 0, sizeof(*j));
    j->b = b;
}

void iw_jw_object(iw_jw *j, const char *key)
{
    json_open(j, key, '{', '}');
}

void iw_jw_array(iw_jw *j, const char *key)
{
    json_open(j, key, '[', ']');
}

void iw_jw_end(iw_jw *j)
{
    if (j->b->err)
        return;
    if (j->depth == 0) {
        iw_wbuf_fail(j->b, IW_EINVAL, NULL, "no object or array is open");
        return;
    }
    add_char(j->b, j->close[--j->depth]);
}

void iw_jw_string(iw_jw *j, const char *key, const char *s)
{
    if (j->b->err)
        return;
    json_member(j, key);
    json_escape(j->b, key, s ? s : "");
}

void iw_jw_raw(iw_jw *j, const char *key, const char *text)
{
    if (j->b->err)
        return;
    json_member(j, key);
    iw_wbuf_adds(j->b, text);
}

void iw_jw_bool(iw_jw *j, const char *key, bool v)
{
    iw_jw_raw(j, key, v ? "true" : "false");
}

void iw_jw_null(iw_jw *j, const char *key)
{
    iw_jw_raw(j, key, "null");
}

int iw_jw_finish(iw_jw *j)
{
    while (!j->b->err && j->depth > 0)
        iw_jw_end(j);
    return j->b->err;
}
