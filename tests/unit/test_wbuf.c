/* test_wbuf.c: the render buffer and its writers, against the libraries whose output they
 * reproduce: every XML document is compared with what libxml2's xmlTextWriter writes for the
 * same calls, every JSON document with cJSON_PrintUnformatted of the same tree, over texts
 * generated from the hostile texts of tests/fuzz/render_check.h the format can carry (every
 * ASCII byte, each UTF-8 length, markup, entities, ]]>; for JSON controls and noncharacters
 * too); and what XML 1.0 (or UTF-8) cannot carry is refused, naming the element or key. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libxml/xmlwriter.h>

#include "render_check.h"
#include "status.h"
#include "wbuf.h"

/* ------------------------------------------------------------ generated texts */

/* The hostile texts of render_check.h a format can carry (every XML 1.0 text for XML, every
 * UTF-8 text for JSON), into list; returns how many. */
static size_t carried(bool xml, const char **list)
{
    size_t n = 0;
    for (size_t i = 0; i < IW_RC_N_HOSTILE; i++)
        if (iw_rc_text_ok(iw_rc_hostile[i], xml))
            list[n++] = iw_rc_hostile[i];
    return n;
}

/* A small deterministic generator (xorshift), so a failure names a reproducible index. */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Text number i made of the n pieces: each piece alone first, then every printable ASCII byte
 * alone, then random joins of up to 12 pieces. */
static void text_of(size_t i, const char **pieces, size_t n, char *buf, size_t len)
{
    buf[0] = '\0';
    if (i < n) {
        snprintf(buf, len, "%s", pieces[i]);
        return;
    }
    i -= n;
    if (i < 0x60) {
        snprintf(buf, len, "%c", (char)(0x20 + i));
        return;
    }
    uint32_t s = (uint32_t)i * 2654435761u + 1;
    size_t k = 1 + next_rand(&s) % 12;
    while (k-- > 0)
        strncat(buf, pieces[next_rand(&s) % n], len - strlen(buf) - 1);
}
#define N_TEXTS 2000

/* ------------------------------------------------------------ XML against xmlTextWriter */

/* The same document through xmlTextWriter: a declaration (when decl), <p:r xmlns:p="urn:r"
 * a=TEXT>, <p:t>TEXT</p:t>, <u></u>, <e/>, <n:deep xmlns:n="urn:n" b="1"><x>TEXT</x></n:deep>. */
static char *oracle_xml(const char *text, bool decl, bool attrs)
{
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
    int rc = decl ? xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL) : 0;
    rc |= xmlTextWriterStartElementNS(w, BAD_CAST "p", BAD_CAST "r", BAD_CAST "urn:r");
    if (attrs)
        rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "a", BAD_CAST text);
    rc |= xmlTextWriterWriteElementNS(w, BAD_CAST "p", BAD_CAST "t", NULL, BAD_CAST text);
    rc |= xmlTextWriterWriteElementNS(w, NULL, BAD_CAST "u", NULL, BAD_CAST "");
    rc |= xmlTextWriterStartElement(w, BAD_CAST "e");
    rc |= xmlTextWriterEndElement(w);
    rc |= xmlTextWriterStartElementNS(w, BAD_CAST "n", BAD_CAST "deep", BAD_CAST "urn:n");
    rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "b", BAD_CAST "1");
    rc |= xmlTextWriterWriteElement(w, BAD_CAST "x", BAD_CAST text);
    rc |= xmlTextWriterEndDocument(w);
    cr_assert_geq(rc, 0, "xmlTextWriter failed");
    xmlFreeTextWriter(w);
    char *s = strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    return s;
}

static int ours_xml(iw_wbuf *b, const char *text, bool decl, bool attrs)
{
    iw_xw x;
    iw_wbuf_reset(b);
    iw_xw_begin(&x, b, decl);
    iw_xw_start(&x, "p", "r", "urn:r");
    if (attrs)
        iw_xw_attr(&x, "a", text);
    iw_xw_text(&x, "p", "t", text);
    iw_xw_text(&x, NULL, "u", "");
    iw_xw_text_or_empty(&x, NULL, "e", NULL);
    iw_xw_start(&x, "n", "deep", "urn:n");
    iw_xw_attr(&x, "b", "1");
    iw_xw_text(&x, NULL, "x", text);
    return iw_xw_finish(&x);
}

static bool ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

Test(wbuf, xml_matches_xmltextwriter_byte_for_byte)
{
    iw_wbuf b = IW_WBUF_INIT;
    char text[512];
    const char *pieces[IW_RC_N_HOSTILE];
    size_t n = carried(true, pieces);
    for (size_t i = 0; i < N_TEXTS; i++) {
        text_of(i, pieces, n, text, sizeof(text));
        for (int decl = 1; decl >= 0; decl--) {
            /* Without a declaration xmlTextWriter writes non-ASCII attribute characters as
             * character references; every document the adapters write has one. */
            bool attrs = decl || ascii(text);
            char *want = oracle_xml(text, decl, attrs);
            cr_assert_eq(ours_xml(&b, text, decl, attrs), 0, "text %zu refused", i);
            cr_assert_str_eq(b.data, want, "text %zu (decl %d)", i, decl);
            cr_assert_eq(b.len, strlen(want));
            free(want);
        }
    }
    iw_wbuf_free(&b);
}

Test(wbuf, xml_namespace_declaration_follows_the_attributes)
{
    iw_wbuf b = IW_WBUF_INIT;
    iw_xw x;
    iw_xw_begin(&x, &b, false);
    iw_xw_start(&x, NULL, "r", "urn:default");
    iw_xw_attr(&x, "xmlns:xsi", "urn:xsi");
    iw_xw_start(&x, "q", "c", "urn:q");
    cr_assert_eq(iw_xw_finish(&x), 0);
    cr_assert_str_eq(b.data, "<r xmlns:xsi=\"urn:xsi\" xmlns=\"urn:default\">"
                             "<q:c xmlns:q=\"urn:q\"/></r>\n");
    iw_wbuf_free(&b);
}

/* Texts XML 1.0 cannot carry, and why. */
static const struct {
    const char *text, *why;
} refused[] = {
    {"a\x01z", "control character"},
    {"\x08", "control character"},
    {"\x0b", "control character"},
    {"\x0c", "control character"},
    {"esc\x1b", "control character"},
    {"\x1f", "control character"},
    {"x\xef\xbf\xbe", "U+FFFE or U+FFFF"},
    {"\xef\xbf\xbfy", "U+FFFE or U+FFFF"},
    {"\x80", "not valid UTF-8"},             /* a lone continuation byte */
    {"\xc3", "not valid UTF-8"},             /* cut short */
    {"\xe6\xbc", "not valid UTF-8"},         /* cut short */
    {"\xc0\xaf", "not valid UTF-8"},         /* overlong '/' */
    {"\xe0\x80\xaf", "not valid UTF-8"},     /* overlong '/' */
    {"\xed\xa0\x80", "not valid UTF-8"},     /* a surrogate, U+D800 */
    {"\xed\xbf\xbf", "not valid UTF-8"},     /* a surrogate, U+DFFF */
    {"\xf4\x90\x80\x80", "not valid UTF-8"}, /* past U+10FFFF */
    {"\xfe\xff", "not valid UTF-8"},
    {"ok \xff", "not valid UTF-8"},
};

Test(wbuf, xml_refuses_what_xml_cannot_carry_and_names_the_element)
{
    iw_wbuf b = IW_WBUF_INIT;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        for (int attr = 0; attr < 2; attr++) {
            iw_xw x;
            iw_wbuf_reset(&b);
            iw_xw_begin(&x, &b, true);
            iw_xw_start(&x, NULL, "r", NULL);
            if (attr)
                iw_xw_attr(&x, "label", refused[i].text);
            else
                iw_xw_text(&x, "p", "Title", refused[i].text);
            size_t len = b.len;
            iw_xw_text(&x, NULL, "after", "fine"); /* sticky: nothing more is written */
            cr_assert_eq(b.len, len, "case %zu: written after the error", i);
            cr_assert_eq(iw_xw_finish(&x), IW_EINVAL, "case %zu accepted", i);
            char err[160];
            cr_assert_eq(iw_wbuf_error(&b, err, sizeof(err)), IW_EINVAL);
            cr_assert(strncmp(err, attr ? "label: " : "Title: ", 7) == 0, "%s", err);
            cr_assert(strstr(err, refused[i].why), "case %zu: %s", i, err);
            char *out;
            size_t olen;
            cr_assert_eq(iw_wbuf_copy(&b, &out, &olen), IW_EINVAL);
            cr_assert_null(out);
        }
    }
    iw_wbuf_free(&b);
}

/* Made tags write what the general path writes: every text (and none: an empty element), with
 * and without a prefix, inside an element whose start tag is still open and after text; and a
 * refused text names the element as iw_xw_text does. */
Test(wbuf, xml_made_tags_write_what_the_general_path_writes)
{
    iw_wbuf got = IW_WBUF_INIT, want = IW_WBUF_INIT;
    char text[512];
    const char *pieces[IW_RC_N_HOSTILE];
    size_t n = carried(true, pieces);
    static const char *const prefixes[] = {NULL, "ebiz", "soapenv"};
    for (size_t p = 0; p < 3; p++) {
        iw_xw_tags t;
        cr_assert_eq(iw_xw_tags_make(&t, prefixes[p], "InvoiceNumber"), 0);
        for (size_t i = 0; i <= N_TEXTS; i++) {
            const char *s = NULL;
            if (i < N_TEXTS) {
                text_of(i, pieces, n, text, sizeof(text));
                s = text;
            }
            iw_wbuf *bufs[2] = {&want, &got};
            for (int k = 0; k < 2; k++) {
                iw_xw x;
                iw_wbuf_reset(bufs[k]);
                iw_xw_begin(&x, bufs[k], true);
                iw_xw_start(&x, "ns", "Invoice", "urn:x");
                for (int twice = 0; twice < 2; twice++) {
                    if (k == 0)
                        iw_xw_text_or_empty(&x, prefixes[p], "InvoiceNumber", s);
                    else
                        iw_xw_text_tags(&x, &t, "InvoiceNumber", s);
                }
                /* the same name as an element holding one, with an attribute; then empty */
                for (int empty = 0; empty < 2; empty++) {
                    if (k == 0)
                        iw_xw_start(&x, prefixes[p], "InvoiceNumber", NULL);
                    else
                        iw_xw_start_tags(&x, &t, "InvoiceNumber");
                    iw_xw_attr(&x, "kind", "a<b");
                    if (!empty)
                        iw_xw_text(&x, NULL, "Inner", s ? s : "");
                    iw_xw_end(&x);
                }
                cr_assert_eq(iw_xw_finish(&x), 0, "text %zu refused", i);
            }
            cr_assert_str_eq(got.data, want.data, "prefix %zu, text %zu", p, i);
            cr_assert_eq(got.len, want.len);
        }
        iw_xw_tags_free(&t);
        cr_assert_null(t.text);
    }
    iw_xw_tags t;
    cr_assert_eq(iw_xw_tags_make(&t, "p", "Title"), 0);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        iw_xw x;
        iw_wbuf_reset(&got);
        iw_xw_begin(&x, &got, true);
        iw_xw_text_tags(&x, &t, "Title", refused[i].text);
        cr_assert_eq(iw_xw_finish(&x), IW_EINVAL, "case %zu accepted", i);
        char err[160];
        iw_wbuf_error(&got, err, sizeof(err));
        cr_assert(strncmp(err, "Title: ", 7) == 0 && strstr(err, refused[i].why), "%s", err);
    }
    iw_xw_tags_free(&t);
    /* tags that could not be made: the buffer fails, nothing half-written */
    for (int start = 0; start < 2; start++) {
        iw_xw x;
        iw_wbuf_reset(&got);
        iw_xw_begin(&x, &got, false);
        if (start)
            iw_xw_start_tags(&x, &t, "Title");
        else
            iw_xw_text_tags(&x, &t, "Title", "x");
        cr_assert_eq(iw_xw_finish(&x), IW_ENOMEM);
    }
    iw_wbuf_free(&got);
    iw_wbuf_free(&want);
}

Test(wbuf, xml_writer_misuse_is_an_error)
{
    iw_wbuf b = IW_WBUF_INIT;
    iw_xw x;
    iw_xw_begin(&x, &b, false);
    iw_xw_text(&x, NULL, "a", "1");
    iw_xw_end(&x);
    cr_assert_eq(b.err, IW_EINVAL, "an end without a start");

    iw_wbuf_reset(&b);
    iw_xw_begin(&x, &b, false);
    iw_xw_start(&x, NULL, "r", NULL);
    iw_xw_text(&x, NULL, "a", "1");
    iw_xw_attr(&x, "late", "x");
    cr_assert_eq(b.err, IW_EINVAL, "an attribute after content");

    iw_wbuf_reset(&b);
    iw_xw_begin(&x, &b, false);
    for (int i = 0; i <= IW_XW_MAX_DEPTH; i++)
        iw_xw_start(&x, NULL, "d", NULL);
    cr_assert_eq(b.err, IW_EINVAL, "nesting past the limit");
    iw_wbuf_free(&b);
}

/* ------------------------------------------------------------ JSON against cJSON */

/* {"s":TEXT,"TEXT":[TEXT,1.50,true,false,null,{},[]],"o":{"n":-0.001,"e":""}} both ways. */
static char *oracle_json(const char *text)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "s", text);
    cJSON *a = cJSON_AddArrayToObject(root, text);
    cJSON_AddItemToArray(a, cJSON_CreateString(text));
    cJSON_AddItemToArray(a, cJSON_CreateRaw("1.50"));
    cJSON_AddItemToArray(a, cJSON_CreateBool(1));
    cJSON_AddItemToArray(a, cJSON_CreateBool(0));
    cJSON_AddItemToArray(a, cJSON_CreateNull());
    cJSON_AddItemToArray(a, cJSON_CreateObject());
    cJSON_AddItemToArray(a, cJSON_CreateArray());
    cJSON *o = cJSON_AddObjectToObject(root, "o");
    cJSON_AddRawToObject(o, "n", "-0.001");
    cJSON_AddStringToObject(o, "e", "");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static int ours_json(iw_wbuf *b, const char *text)
{
    iw_jw j;
    iw_wbuf_reset(b);
    iw_jw_begin(&j, b);
    iw_jw_object(&j, NULL);
    iw_jw_string(&j, "s", text);
    iw_jw_array(&j, text);
    iw_jw_string(&j, NULL, text);
    iw_jw_raw(&j, NULL, "1.50");
    iw_jw_bool(&j, NULL, true);
    iw_jw_bool(&j, NULL, false);
    iw_jw_null(&j, NULL);
    iw_jw_object(&j, NULL);
    iw_jw_end(&j);
    iw_jw_array(&j, NULL);
    iw_jw_end(&j);
    iw_jw_end(&j);
    iw_jw_object(&j, "o");
    iw_jw_raw(&j, "n", "-0.001");
    iw_jw_string(&j, "e", "");
    return iw_jw_finish(&j);
}

Test(wbuf, json_matches_cjson_byte_for_byte)
{
    iw_wbuf b = IW_WBUF_INIT;
    char text[512];
    const char *pieces[IW_RC_N_HOSTILE];
    size_t n = carried(false, pieces); /* controls and noncharacters included: legal JSON */
    for (size_t i = 0; i < N_TEXTS; i++) {
        text_of(i, pieces, n, text, sizeof(text));
        char *want = oracle_json(text);
        cr_assert_eq(ours_json(&b, text), 0, "text %zu refused", i);
        cr_assert_str_eq(b.data, want, "text %zu", i);
        cJSON_free(want);
    }
    iw_wbuf_free(&b);
}

Test(wbuf, json_every_byte_below_0x80_matches_cjson)
{
    iw_wbuf b = IW_WBUF_INIT;
    for (int c = 1; c < 0x80; c++) {
        char text[4] = {'x', (char)c, 'y', '\0'};
        char *want = oracle_json(text);
        cr_assert_eq(ours_json(&b, text), 0);
        cr_assert_str_eq(b.data, want, "byte 0x%02x", c);
        cJSON_free(want);
    }
    iw_wbuf_free(&b);
}

Test(wbuf, json_refuses_invalid_utf8_naming_the_key)
{
    iw_wbuf b = IW_WBUF_INIT;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (!strstr(refused[i].why, "UTF-8"))
            continue;
        iw_jw j;
        iw_wbuf_reset(&b);
        iw_jw_begin(&j, &b);
        iw_jw_object(&j, NULL);
        iw_jw_string(&j, "InvoiceTitle", refused[i].text);
        cr_assert_eq(iw_jw_finish(&j), IW_EINVAL, "case %zu accepted", i);
        char err[160];
        iw_wbuf_error(&b, err, sizeof(err));
        cr_assert_str_eq(err, "InvoiceTitle: text is not valid UTF-8");
    }
    iw_wbuf_free(&b);
}

/* ------------------------------------------------------------ the buffer */

Test(wbuf, reset_keeps_the_memory_and_copy_is_exact)
{
    iw_wbuf b = IW_WBUF_INIT;
    for (int i = 0; i < 3000; i++)
        iw_wbuf_adds(&b, "0123456789");
    cr_assert_eq(b.len, 30000);
    size_t cap = b.cap;
    char *data = b.data;
    iw_wbuf_fail(&b, IW_EINVAL, "x", "y");
    iw_wbuf_reset(&b);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.data, data);
    iw_wbuf_add(&b, "a\0b", 3); /* bytes, NUL included */
    char *out;
    size_t len;
    cr_assert_eq(iw_wbuf_copy(&b, &out, &len), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(out, "a\0b", 4), 0);
    free(out);
    iw_wbuf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(iw_wbuf_copy(&b, &out, &len), 0, "an empty buffer copies as \"\"");
    cr_assert_str_eq(out, "");
    free(out);
}

Test(wbuf, scratch_is_reused_and_a_huge_one_is_given_back)
{
    iw_wbuf *s = iw_wbuf_scratch();
    cr_assert_not_null(s);
    iw_wbuf_adds(s, "hello");
    char *data = s->data;
    iw_wbuf_fail(s, IW_EINVAL, "a", "b");
    iw_wbuf *again = iw_wbuf_scratch();
    cr_assert_eq(again, s);
    cr_assert_eq(again->data, data, "memory kept");
    cr_assert_eq(again->len, 0);
    cr_assert_eq(again->err, 0);
    char big[4096];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 600; i++)
        iw_wbuf_add(again, big, sizeof(big));
    cr_assert_gt(again->cap, 1024u * 1024u);
    again = iw_wbuf_scratch();
    cr_assert_leq(again->cap, 1024u * 1024u);
}

static void *use_scratch(void *arg)
{
    iw_wbuf *s = iw_wbuf_scratch();
    iw_wbuf_adds(s, (const char *)arg);
    return s != NULL && s->err == 0 ? s : NULL;
}

/* Each thread has its own scratch buffer, freed when the thread ends (the leak checkers of the
 * sanitizer and valgrind runs see it otherwise). */
Test(wbuf, scratch_is_per_thread)
{
    pthread_t t1, t2;
    void *r1, *r2;
    cr_assert_eq(pthread_create(&t1, NULL, use_scratch, "one"), 0);
    cr_assert_eq(pthread_join(t1, &r1), 0);
    cr_assert_eq(pthread_create(&t2, NULL, use_scratch, "two"), 0);
    cr_assert_eq(pthread_join(t2, &r2), 0);
    cr_assert_not_null(r1);
    cr_assert_not_null(r2);
    cr_assert_neq(iw_wbuf_scratch(), NULL);
}

/* Review 96: a mapping that repeats lists inside lists rendered 1.6 GB before the machine ran
 * out. A buffer stops at IW_WBUF_MAX with a reason, keeping what it holds. */
Test(wbuf, a_buffer_stops_at_its_bound_with_a_reason)
{
    iw_wbuf b = IW_WBUF_INIT;
    static char chunk[1 << 20];
    memset(chunk, 'x', sizeof(chunk));
    size_t added = 0;
    while (!b.err && added <= IW_WBUF_MAX) {
        iw_wbuf_add(&b, chunk, sizeof(chunk));
        added += sizeof(chunk);
    }
    cr_assert_eq(b.err, IW_EINVAL);
    cr_assert_eq(b.why, IW_WBUF_TOO_LARGE);
    cr_assert_lt(b.len, IW_WBUF_MAX, "it holds what fitted: %zu", b.len);
    cr_assert_leq(b.cap, IW_WBUF_MAX);
    char err[200];
    cr_assert_eq(iw_wbuf_error(&b, err, sizeof(err)), IW_EINVAL);
    cr_assert_str_eq(err, "the text written: would pass 64 MiB (a body that large is no invoice)");
    iw_wbuf_free(&b);
}
