/* test_render_hostile.c: the property of tests/fuzz/render_check.h (what fuzz_render checks
 * under libFuzzer) over a generated set of hostile texts, deterministic and without clang: every
 * C0 control, DEL and C1, U+FFFE / U+FFFF and the other noncharacters, surrogates written as
 * bytes, every kind of invalid UTF-8, markup (]]>, &, quotes, comments, CDATA), emoji and
 * combining sequences, long texts, and joins of two of them. Each goes into po_number alone
 * (where the answer is fixed: XML refuses exactly what XML 1.0 cannot carry, JSON only invalid
 * UTF-8, and a carried text comes back unchanged), and into eight other fields at once (refused
 * with a message, or a well-formed body). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render_check.h"

/* The texts, by class. */
static const char *const hostile[] = {
    /* XML's own characters and constructs */
    "",
    " ",
    "<",
    ">",
    "&",
    "\"",
    "'",
    "]]>",
    "]]]]>>",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "<?xml?>",
    "&amp;",
    "&#0;",
    "&#xFFFE;",
    "&lt;&gt;",
    "<b>&amp;</b> \"q\" 'a'",
    "a=\"1\" b='2'",
    "\\",
    "\\\"",
    "/",
    "</invoice>",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\n\r",
    "  padded  ",
    /* C0 controls (tab, LF and CR above), DEL, C1 */
    "\x01",
    "\x02",
    "\x03",
    "\x04",
    "\x05",
    "\x06",
    "\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x0e",
    "\x0f",
    "\x10",
    "\x11",
    "\x12",
    "\x13",
    "\x14",
    "\x15",
    "\x16",
    "\x17",
    "\x18",
    "\x19",
    "\x1a",
    "\x1b",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "a\x01z",
    "\x7f",
    "\xc2\x80",
    "\xc2\x85",
    "\xc2\x9f",
    /* the edges of XML 1.0's Char ranges, noncharacters, BOM, bidi, separators */
    "\xed\x9f\xbf",
    "\xee\x80\x80",
    "\xef\xbf\xbd",
    "\xef\xbf\xbe",
    "\xef\xbf\xbf",
    "x\xef\xbf\xbey",
    "\xef\xb7\x90",
    "\xef\xbb\xbf",
    "\xe2\x80\xae",
    "\xe2\x80\xa8",
    "\xe2\x80\xa9",
    "\xf0\x90\x80\x80",
    "\xf0\x9f\xbf\xbe",
    "\xf4\x8f\xbf\xbf",
    "\xf4\x8f\xbf\xbe",
    /* surrogates written as bytes (CESU-8), and invalid UTF-8 of every kind */
    "\xed\xa0\x80",
    "\xed\xbf\xbf",
    "\xed\xa0\xbd\xed\xb8\x80",
    "\x80",
    "\xbf",
    "a\x80z",
    "\xc3",
    "\xe6\xbc",
    "\xf0\x9f\xa7",
    "x\xc3",
    "\xc0\x80",
    "\xc1\xbf",
    "\xc0\xaf",
    "\xe0\x80\xaf",
    "\xe0\x9f\xbf",
    "\xf0\x80\x80\x80",
    "\xf0\x8f\xbf\xbf",
    "\xf4\x90\x80\x80",
    "\xf5\x80\x80\x80",
    "\xf8\x88\x80\x80\x80",
    "\xfe",
    "\xff",
    "\xff\xfe",
    "\xc3\x28",
    /* emoji, flags, ZWJ and combining sequences, other scripts */
    "\xf0\x9f\xa7\xbe",
    "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "\xf0\x9f\x87\xb5\xf0\x9f\x87\xb9",
    "e\xcc\x81",
    "Gr\xc3\xbc\xc3\x9f"
    "e \xe6\xbc\xa2\xe5\xad\x97",
    "\xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9",
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static iw_rc rc;

static void setup(void)
{
    cr_assert_eq(iw_rc_init(&rc), 0, "the check's config or event does not load");
}

static void teardown(void)
{
    iw_rc_free(&rc);
}

/* The text, escaped for a failure message. */
static const char *shown(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    for (; *s && o + 5 < len; s++) {
        unsigned char c = (unsigned char)*s;
        o += (size_t)snprintf(buf + o, len - o, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

static void check(const char *po, const char *const *others, size_t n)
{
    for (size_t t = 0; t < IW_RC_N_TARGETS; t++) {
        char why[512], b[256];
        bool ok = iw_rc_check(&rc, t, po, others, n, why, sizeof(why));
        cr_assert(ok, "%s (text \"%s\"%s)", why, shown(po ? po : others[0], b, sizeof(b)),
                  n ? ", in eight fields" : "");
    }
}

TestSuite(render_hostile, .init = setup, .fini = teardown);

Test(render_hostile, each_text_in_po_number)
{
    for (size_t i = 0; i < N_HOSTILE; i++)
        check(hostile[i], NULL, 0);
}

Test(render_hostile, joins_of_two_texts_in_po_number)
{
    char text[64];
    for (size_t i = 0; i < N_HOSTILE; i++)
        for (size_t k = 0; k < N_HOSTILE; k += 7) {
            snprintf(text, sizeof(text), "%s%s", hostile[i], hostile[(i + k) % N_HOSTILE]);
            check(text, NULL, 0);
        }
}

Test(render_hostile, each_text_in_eight_fields_at_once)
{
    for (size_t i = 0; i < N_HOSTILE; i++) {
        const char *others[IW_RC_N_FIELDS];
        for (size_t k = 0; k < IW_RC_N_FIELDS; k++)
            others[k] = hostile[i];
        check(NULL, others, IW_RC_N_FIELDS);
    }
}

Test(render_hostile, a_long_text_of_every_escaped_character)
{
    const char *unit = "<&>\"'\r\n\t]]>\xc3\xbc\xe6\xbc\xa2\xf0\x9f\xa7\xbe";
    size_t ul = strlen(unit), n = 20000 / ul;
    char *big = malloc(n * ul + 1);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        memcpy(big + i * ul, unit, ul);
    big[n * ul] = '\0';
    check(big, NULL, 0);
    free(big);
}

/* The required answers spelled out, apart from the generated set: U+FFFE and U+FFFF are
 * refused by every XML body and carried by the JSON one. */
Test(render_hostile, noncharacters_are_refused_by_xml_and_carried_by_json)
{
    static const char *const texts[] = {"PO \xef\xbf\xbe", "PO \xef\xbf\xbf"};
    for (size_t i = 0; i < 2; i++)
        for (size_t t = 0; t < IW_RC_N_TARGETS; t++) {
            cr_assert_eq(iw_rc_text_ok(texts[i], !iw_rc_targets[t].json), iw_rc_targets[t].json);
            char why[512];
            cr_assert(iw_rc_check(&rc, t, texts[i], NULL, 0, why, sizeof(why)), "%s", why);
        }
}
