/* test_render_hostile.c: the property of tests/fuzz/render_check.h (what fuzz_render checks
 * under libFuzzer) over its set of hostile texts (iw_rc_hostile: every C0 control, DEL and C1,
 * U+FFFE / U+FFFF and the other noncharacters, surrogates written as bytes, every kind of invalid
 * UTF-8, markup, emoji and combining sequences), long texts and joins of two of them,
 * deterministic and without clang. Each goes into po_number alone
 * (where the answer is fixed: XML refuses exactly what XML 1.0 cannot carry, JSON only invalid
 * UTF-8, and a carried text comes back unchanged), and into eight other fields at once (refused
 * with a message, or a well-formed body). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render_check.h"

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
    for (size_t i = 0; i < IW_RC_N_HOSTILE; i++)
        check(iw_rc_hostile[i], NULL, 0);
}

Test(render_hostile, joins_of_two_texts_in_po_number)
{
    char text[64];
    for (size_t i = 0; i < IW_RC_N_HOSTILE; i++)
        for (size_t k = 0; k < IW_RC_N_HOSTILE; k += 7) {
            snprintf(text, sizeof(text), "%s%s", iw_rc_hostile[i],
                     iw_rc_hostile[(i + k) % IW_RC_N_HOSTILE]);
            check(text, NULL, 0);
        }
}

Test(render_hostile, each_text_in_eight_fields_at_once)
{
    for (size_t i = 0; i < IW_RC_N_HOSTILE; i++) {
        const char *others[IW_RC_N_FIELDS];
        for (size_t k = 0; k < IW_RC_N_FIELDS; k++)
            others[k] = iw_rc_hostile[i];
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
