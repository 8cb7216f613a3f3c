/* test_secrets.c: the per-target secret registry: every wire form of a secret is masked. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "centra.h"
#include "midnight.h"
#include "secrets.h"
#include "target.h"

/* Masks text and asserts that `form` is gone and *** is there. */
static void assert_masked(const iw_secrets *s, const char *form)
{
    char text[512];
    snprintf(text, sizeof(text), "before <%s> after", form);
    char *m = iw_secrets_mask(s, text, strlen(text));
    cr_assert_not_null(m);
    cr_assert_null(strstr(m, form), "form \"%s\" left in \"%s\"", form, m);
    cr_assert(strstr(m, "before <***> after"), "form \"%s\" gave \"%s\"", form, m);
    free(m);
}

/* text, masked by s, comes back whole: nothing in it is a form of a secret. */
static void assert_unmasked(const iw_secrets *s, const char *text, const char *why)
{
    char *m = iw_secrets_mask(s, text, strlen(text));
    cr_assert_not_null(m);
    cr_assert_str_eq(m, text, "%s", why);
    free(m);
}

/* Issue 11, item 2 (a), (d): escaped and encoded forms of one password. */
Test(secrets, every_wire_form_of_a_secret_is_masked)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "p&<>\"'s w/rd+%"), 0);
    const char *forms[] = {
        "p&<>\"'s w/rd+%",                    /* raw */
        "p&amp;&lt;&gt;\"'s w/rd+%",          /* XML text, quotes left alone */
        "p&amp;&lt;&gt;&quot;'s w/rd+%",      /* XML text as common/wbuf.c writes it */
        "p&amp;&lt;&gt;&quot;&apos;s w/rd+%", /* XML attribute, named */
        "p&amp;&lt;&gt;&#34;&#39;s w/rd+%",   /* XML, numeric */
        "p&<>\\\"'s w/rd+%",                  /* JSON */
        "p&<>\\\"'s w\\/rd+%",                /* JSON with \/ */
        "p%26%3C%3E%22%27s%20w%2Frd%2B%25",   /* percent, upper */
        "p%26%3c%3e%22%27s%20w%2frd%2b%25",   /* percent, lower */
        "p%26%3C%3E%22%27s+w%2Frd%2B%25",     /* form encoding, upper */
        "p%26%3c%3e%22%27s+w%2frd%2b%25",     /* form encoding, lower */
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        assert_masked(s, forms[i]);
    iw_secrets_free(s);
}

/* Reply text is cleaned before it is printed (controls and bidirectional formatting characters
 * become spaces): a secret is masked whether the clean-up touched it or completed it. */
Test(secrets, a_secret_is_masked_through_the_clean_up_of_reply_text)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "pa\xc2\x85ss word"), 0); /* a C1 control inside */
    iw_outcome o;
    memset(&o, 0, sizeof(o));
    snprintf(o.message, sizeof(o.message), "a pa\xc2\x85ss word b, c pa ss\x01word d");
    iw_secrets_mask_outcome(s, &o);
    cr_assert_str_eq(o.message, "a *** b, c *** d");
    iw_secrets_free(s);
}

/* Issue 11, item 2 (b) and (e): the Basic pair in base64, a URL userinfo password. */
Test(secrets, target_registry_holds_basic_pair_and_userinfo)
{
    iw_target_conf tc = {.url = strdup("https://svc:p%40ss-W0rd@nav.example/api")};
    cr_assert_eq(iw_target_conf_defaults(&tc, "centra_navision"), 0);
    iw_centra_conf_of(&tc)->username = strdup("nav");
    iw_centra_conf_of(&tc)->password = strdup("Sesame-42");
    iw_secrets *s = iw_secrets_for_target(&tc);
    cr_assert_not_null(s);
    assert_masked(s, "bmF2OlNlc2FtZS00Mg=="); /* base64("nav:Sesame-42") */
    assert_masked(s, "Sesame-42");
    assert_masked(s, "p%40ss-W0rd");
    assert_masked(s, "p@ss-W0rd");
    iw_secrets_free(s);
    iw_target_conf_clear(&tc);

    /* a user name percent-encoded in the URL: curl sends it decoded in the Basic pair */
    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "http://a%40b:p%40ssw0rd@127.0.0.1:18777/inv"), 0);
    assert_masked(s, "YUBiOnBAc3N3MHJk"); /* base64("a@b:p@ssw0rd") */
    assert_masked(s, "p@ssw0rd");
    iw_secrets_free(s);
}

/* Review 103: a key in a URL's query (an environment's ?key=${KEY}, Azure Functions' ?code=)
 * and a token given as the user name were printed by render and copied from a reply that
 * echoed the URL. Parameters of other names, and values under 4 bytes, name nothing. */
Test(secrets, credentials_in_a_url_query_or_user_name_are_masked)
{
    iw_target_conf tc = {.url =
                             strdup("http://127.0.0.1:23456/api?format=json&key=QueryKeySecret789"
                                    "&Code=AzFuncKey%2FAbC%3D%3D&v=2&access_token=tok-1#frag")};
    cr_assert_eq(iw_target_conf_defaults(&tc, "webhook"), 0);
    iw_secrets *s = iw_secrets_for_target(&tc);
    cr_assert_not_null(s);
    assert_masked(s, "QueryKeySecret789");
    assert_masked(s, "AzFuncKey%2FAbC%3D%3D");
    assert_masked(s, "AzFuncKey/AbC==");
    assert_masked(s, "tok-1");
    assert_unmasked(s, "No route for POST /api?format=json&v=2",
                    "a parameter not named as a credential is no secret");
    iw_secrets_free(s);
    iw_target_conf_clear(&tc);

    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "http://ghp_UserOnlyToken0123456789@127.0.0.1:23456/a"), 0);
    assert_masked(s, "ghp_UserOnlyToken0123456789");
    assert_masked(s, "Z2hwX1VzZXJPbmx5VG9rZW4wMTIzNDU2Nzg5Og=="); /* base64 of "...:" */
    iw_secrets_free(s);
    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "https://tokABCDEFG123:@api.example.com/v1"), 0);
    assert_masked(s, "tokABCDEFG123");
    assert_masked(s, "dG9rQUJDREVGRzEyMzo="); /* base64 of "tokABCDEFG123:" */
    iw_secrets_free(s);
    /* review 105: a name holding a credential's word inside a longer one names nothing */
    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "https://h.example/v1?keyword=invoice&author=billing"
                                       "&credit_note=true&passthrough=yes1&design=classic"
                                       "&signal=green&monkey=banana&barcode=12345"
                                       "&sessions=many1&Turkey=country&monkeys=many2"
                                       "&turkeys=many3&whiskeys=many4"),
                 0);
    cr_assert_eq(iw_secrets_count(s), 0, "no credential among them");
    iw_secrets_free(s);
    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "https://h.example/v1?apiKey=K-one-1&x-api-key=K-two-2"
                                       "&client_secret=K-three-3&SIG=K-four-4&Code=K-five-5"),
                 0);
    static const char *const keys[] = {"K-one-1", "K-two-2", "K-three-3", "K-four-4", "K-five-5"};
    for (size_t i = 0; i < 5; i++)
        assert_masked(s, keys[i]);
    iw_secrets_free(s);
    /* review 107: a word inside brackets or behind %5F, a compound, a word with a digit */
    static const char *const names[] = {
        "user[password]", "auth[token]", "api%5Fkey", "appkey", "sign", "authkey", "appsecret",
        "sessiontoken", "refreshtoken", "subscriptionkey", "passphrase", "token2", "sig2",
        "X-Amz-Security-Token", "private_token",
        /* review 109 */
        "pw", "PHPSESSID", "keys", "api_keys",
        /* review 111 */
        "sigs", "appsig", "urlsig", "basicauth", "oauth", "signatures", "userpwd", "dbpwd", "totp",
        "a_very_long_parameter_name_that_goes_on_and_on_for_more_"
        "than_ninety_six_bytes_before_its_api_key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char url[256], value[32];
        snprintf(value, sizeof(value), "Val-%zu-secret", i);
        snprintf(url, sizeof(url), "https://h.example/v1?a=1&%s=%s", names[i], value);
        s = iw_secrets_new();
        cr_assert_eq(iw_secrets_add_url(s, url), 0);
        cr_assert_gt(iw_secrets_count(s), 0, "%s names a credential", names[i]);
        assert_masked(s, value);
        iw_secrets_free(s);
    }
    /* review 109: a value of 4 bytes as written but 3 decoded masks its raw form only */
    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "https://api.example.com/x?token=%61%62%63"), 0);
    assert_unmasked(s, "abc table", "a 3-byte value names nothing");
    assert_masked(s, "%61%62%63");
    iw_secrets_free(s);
    s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add_url(s, "http://h.example/a?key=abc&token="), 0);
    cr_assert_eq(iw_secrets_count(s), 0, "a value under 4 bytes, or none, names nothing");
    iw_secrets_free(s);
}

/* Issue 11, item 2 (c): a refreshed token is masked from the moment it is added. */
Test(secrets, refreshed_token_is_masked_once_added)
{
    iw_target_conf tc = {0};
    cr_assert_eq(iw_target_conf_defaults(&tc, "midnight"), 0);
    iw_midnight_conf_of(&tc)->midnight_token = strdup("old-token-1");
    iw_secrets *s = iw_secrets_for_target(&tc);
    const char *text = "400: token new-token-2 is not valid for this invoice";
    char *m = iw_secrets_mask(s, text, strlen(text));
    cr_assert(strstr(m, "new-token-2")); /* not known yet */
    free(m);
    cr_assert_eq(iw_secrets_add(s, "new-token-2"), 0);
    assert_masked(s, "new-token-2");
    assert_masked(s, "old-token-1");
    iw_secrets_free(s);
    iw_target_conf_clear(&tc);
}

Test(secrets, inplace_masking_cuts_a_secret_left_at_a_cut_end)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "abcdefghSECRET"), 0);
    char buf[32] = "error: token abcdefgh"; /* the message was cut inside the secret */
    iw_secrets_mask_inplace(s, buf, sizeof(buf));
    cr_assert_null(strstr(buf, "abcdefgh"), "%s", buf);
    char buf2[64] = "x abcdefghSECRET y abcdefghSECRET";
    iw_secrets_mask_inplace(s, buf2, sizeof(buf2));
    cr_assert_str_eq(buf2, "x *** y ***");
    char other[16] = "abcxyzabc"; /* ends in 3 bytes of it only: too short to tell */
    iw_secrets_mask_inplace(s, other, sizeof(other));
    cr_assert_str_eq(other, "abcxyzabc");
    iw_secrets_free(s);
}

Test(secrets, empty_and_null_are_ignored)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, NULL), 0);
    cr_assert_eq(iw_secrets_add(s, ""), 0);
    cr_assert_eq(iw_secrets_count(s), 0);
    char *m = iw_secrets_mask(s, "text", 4);
    cr_assert_str_eq(m, "text");
    free(m);
    iw_secrets_free(s);
    iw_secrets_free(NULL);
}

/* The plain rule, one byte at a time: at each position the longest secret that starts there
 * becomes ***, else the byte is kept. */
static char *mask_reference(const char *text, size_t len, char *const *secrets, size_t n)
{
    char *out = malloc(3 * len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t hit = 0;
        for (size_t k = 0; k < n; k++) {
            size_t sl = strlen(secrets[k]);
            if (sl && sl <= len - i && memcmp(text + i, secrets[k], sl) == 0 && sl > hit)
                hit = sl;
        }
        if (hit) {
            memcpy(out + o, "***", 3);
            o += 3;
            i += hit;
        } else {
            out[o++] = text[i++];
        }
    }
    out[o] = '\0';
    return out;
}

/* Masking copies plain runs in bulk; it must give what the plain rule gives, overlapping and
 * nested secrets included, over many random texts of a small alphabet. */
Test(secrets, masking_equals_the_plain_rule_on_random_texts)
{
    char *secrets[] = {"ab", "abc", "b", "cab", "aaaa"};
    size_t n = sizeof(secrets) / sizeof(secrets[0]);
    unsigned seed = 12345;
    for (int round = 0; round < 5000; round++) {
        char text[40];
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(text));
        for (size_t i = 0; i < len; i++)
            text[i] = "abc"[rand_r(&seed) % 3];
        char *want = mask_reference(text, len, secrets, n);
        char *got = iw_mask_secrets(text, len, secrets, n);
        cr_assert_not_null(got);
        cr_assert_str_eq(got, want, "text \"%.*s\" (seed 12345, round %d)", (int)len, text, round);
        free(want);
        free(got);
    }
}

/* Whatever masking left, an outcome field holding 8 bytes in a row of a recorded form is
 * withheld whole, and 7 bytes are not enough: checked for the first and the last of many
 * secrets, so that the set of runs has grown (and been rebuilt) several times. */
Test(secrets, an_outcome_field_holding_8_bytes_of_a_secret_is_withheld)
{
    iw_secrets *s = iw_secrets_new();
    char secret[64];
    for (int i = 0; i < 200; i++) {
        snprintf(secret, sizeof(secret), "Secret-%03d-Value-Long", i);
        cr_assert_eq(iw_secrets_add(s, secret), 0);
    }
    static const char *const pieces[] = {"Secret-000-Val", "199-Value", "t-199-Va"};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(*pieces); i++) {
        iw_outcome o;
        memset(&o, 0, sizeof(o));
        snprintf(o.message, sizeof(o.message), "HTTP 401: key %s... is unknown", pieces[i]);
        snprintf(o.code, sizeof(o.code), "E.%s.x", pieces[i]); /* a cut end is masked before */
        snprintf(o.target_ref, sizeof(o.target_ref), "%s.x", pieces[i]);
        iw_secrets_mask_outcome(s, &o);
        cr_assert_str_eq(o.message,
                         "HTTP 401: the text quotes a secret of this target, so it is withheld",
                         "%s", pieces[i]);
        cr_assert_str_eq(o.code, "withheld", "%s", pieces[i]);
        cr_assert_str_eq(o.target_ref, "", "%s", pieces[i]);
    }
    iw_outcome o;
    memset(&o, 0, sizeof(o));
    snprintf(o.message, sizeof(o.message), "%s", "no run: ecret-0 and -Value- and Secret- here");
    snprintf(o.code, sizeof(o.code), "%s", "Value-Lo");
    iw_secrets_mask_outcome(s, &o);
    cr_assert_str_eq(o.message, "no run: ecret-0 and -Value- and Secret- here");
    cr_assert_str_eq(o.code, "withheld", "\"Value-Lo\" is 8 bytes of every one of them");
    snprintf(o.message, sizeof(o.message), "%s", "quoted alone: ret-150-");
    iw_secrets_mask_outcome(s, &o);
    cr_assert_str_eq(o.message, "the text quotes a secret of this target, so it is withheld");
    iw_secrets_free(s);
}

/* An outcome with these fields, as iw_secrets_mask_outcome publishes it. */
static iw_outcome published(const iw_secrets *s, const char *message, const char *code,
                            const char *target_ref)
{
    iw_outcome o;
    memset(&o, 0, sizeof(o));
    snprintf(o.message, sizeof(o.message), "%s", message);
    snprintf(o.code, sizeof(o.code), "%s", code);
    snprintf(o.target_ref, sizeof(o.target_ref), "%s", target_ref);
    iw_secrets_mask_outcome(s, &o);
    return o;
}

/* The last check decodes what a reply may have encoded a secret with, where no recorded form
 * matches: hex, base64 (either alphabet, any alignment), base32, every byte %-escaped, JSON's
 * \u escapes, XML's character references (some bytes or all), and the base64 of a body quoting
 * it. Fewer than 8 bytes decoded, a broken reference, and ordinary words, are kept. */
Test(secrets, an_outcome_field_holding_a_secret_encoded_is_withheld)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "Pa55-w0rd-SECRET"), 0);
    static const char *const encoded[] = {
        "login 506135352d773072642d534543524554 refused",
        "login 06135352D773072642D534543524554 refused", /* a nibble off */
        "token eFBhNTUtdzByZC1TRUNSRVQ= refused",
        "token eHlQYTU1LXcwcmQtU0VDUkVU refused",
        "token -_9QYTU1LXcwcmQtU0VDUkVUPz4= refused",
        "token PJIGCNJVFV3TA4TEFVJUKQ2SIVKA==== refused",
        "login %50%61%35%35%2D%77%30%72%64%2D%53%45%43%52%45%54 refused",
        "login {\"pw\": \"\\u0050\\u0061\\u0035\\u0035\\u002d\\u0077\\u0030\\u0072\"}",
        "<pw>&#x50;&#97;&#x35;&#53;&#x2D;&#119;&#X30;&#114;</pw>",
        "<pw>Pa55-&#119;0rd</pw>",
        "echo: Pa55&#x2d;w0&#x72;&#100;-S&#x45;CR",
        "echo: PG5zMTp1c2VyPnU8L25zMTp1c2VyPjxuczE6cGFzc3dvcmQ+UGE1NS13MHJkLVNFQ1JFVDwvbnMxOnBh",
    };
    for (size_t i = 0; i < sizeof(encoded) / sizeof(*encoded); i++) {
        char message[200];
        snprintf(message, sizeof(message), "HTTP 500: %s", encoded[i]);
        bool fits = strlen(encoded[i]) < sizeof(((iw_outcome *)0)->code);
        iw_outcome o = published(s, message, fits ? encoded[i] : "", "");
        cr_expect_str_eq(o.message,
                         "HTTP 500: the text quotes a secret of this target, so it is withheld",
                         "%s", encoded[i]);
        if (fits)
            cr_expect_str_eq(o.code, "withheld", "%s", encoded[i]);
    }
    static const char *const kept[] = {
        "login 506135352d7730 refused", /* 7 bytes of it */
        "login \\u0050\\u0061\\u0035\\u0035\\u002d\\u0077\\u0030 refused",
        "login &#x50;&#97;&#x35;&#53;&#x2D;&#119;&#X30;&amp;&#114; refused",
        "login &#x50;&#97;&#x35;&#53;&#x2D;&#119;&#X30 &#114; refused",
        "Authentication failed for the DocumentNumberAlreadyExists request",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(*kept); i++) {
        iw_outcome o = published(s, kept[i], "", kept[i]);
        cr_expect_str_eq(o.message, kept[i]);
        cr_expect_str_eq(o.target_ref, kept[i]);
    }
    iw_secrets_free(s);
}

/* Review 67: a secret of 4 to 7 bytes has no 8-byte run, and a reply quoting it in a form no
 * recorded one has was published whole. Such a secret is looked for whole, as it is and
 * decoded; one of 1 to 3 bytes cannot be told from ordinary text, and only its recorded forms
 * are masked. */
Test(secrets, a_short_secret_encoded_is_withheld)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "Pw0rd!"), 0);
    cr_assert_eq(iw_secrets_add(s, "k3Y4"), 0);
    cr_assert_eq(iw_secrets_add(s, "zq9"), 0);
    static const char *const encoded[] = {
        "login &#80;w0rd! refused",   "login %50%77%30%72%64%21 refused",
        "login \\u0050w0rd! refused", "login 507730726421 refused",
        "login eFB3MHJkIQ== refused", "key k&#x33;Y4 refused",
        "key 6b335934 refused",       "key %6B%33%59%34 refused",
    };
    for (size_t i = 0; i < sizeof(encoded) / sizeof(*encoded); i++) {
        iw_outcome o = published(s, encoded[i], encoded[i], "");
        cr_expect_str_eq(o.message, "the text quotes a secret of this target, so it is withheld",
                         "%s: %s", encoded[i], o.message);
        cr_expect_str_eq(o.code, "withheld", "%s: %s", encoded[i], o.code);
    }
    static const char *const kept[] = {
        "login Pw0rd refused", /* 5 of its 6 bytes */
        "login 5077307264 refused", "key k3Y refused",
        "key &#x7A;q9 and 7a7139 refused", /* the 3-byte secret, decoded */
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(*kept); i++) {
        iw_outcome o = published(s, kept[i], "", "");
        cr_expect_str_eq(o.message, kept[i]);
    }
    iw_outcome o = published(s, "key zq9 refused", "", "");
    cr_expect_str_eq(o.message, "key *** refused", "a recorded form of it is still masked");
    iw_secrets_free(s);
}

/* A secret outside the BMP, echoed as JSON's surrogate pairs or XML's references to the
 * characters, is found once decoded; two lone surrogates decode to other bytes. */
Test(secrets, a_secret_of_astral_characters_escaped_is_withheld)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "\xF0\x9F\x94\x91\xF0\x9F\x94\x92!"), 0); /* U+1F511 U+1F512 ! */
    static const char *const withheld[] = {
        "login \\ud83d\\udd11\\uD83D\\uDD12 refused",
        "login &#x1F511;&#128274; refused",
    };
    for (size_t i = 0; i < sizeof(withheld) / sizeof(*withheld); i++) {
        iw_outcome o = published(s, withheld[i], "", "");
        cr_expect_str_eq(o.message, "the text quotes a secret of this target, so it is withheld",
                         "%s", withheld[i]);
    }
    const char *kept = "login \\ud83d\\uD83D\\udd11\\uDD12 refused"; /* pairs broken */
    iw_outcome o = published(s, kept, "", "");
    cr_expect_str_eq(o.message, kept);
    iw_secrets_free(s);
}

/* Escapes inside an encoding: base64 whose '/' and '+' a JSON writer escaped (\/, \u002B),
 * and a secret's JSON escapes mixed as no recorded form writes them, are found once decoded. */
Test(secrets, a_secret_encoded_then_escaped_is_withheld)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "?P2M4O?u7I"), 0);
    cr_assert_eq(iw_secrets_add(s, ">>>Pa55?>>>"), 0);
    cr_assert_eq(iw_secrets_add(s, "a/b\"c\\d-e/f"), 0);
    static const char *const withheld[] = {
        "echo YWI\\/UDJNNE8\\/dTdJeno= refused",         /* base64 of ab?P2M4O?u7Izz */
        "echo YWI\\u002BPj5QYTU1Pz4\\u002BPg== refused", /* base64 of ab>>>Pa55?>>> */
        "login a\\/b\"c\\\\d-e/f refused",
    };
    for (size_t i = 0; i < sizeof(withheld) / sizeof(*withheld); i++) {
        iw_outcome o = published(s, withheld[i], "", "");
        cr_expect_str_eq(o.message, "the text quotes a secret of this target, so it is withheld",
                         "%s", withheld[i]);
    }
    iw_secrets_free(s);
}

/* A secret written in hex names a number, which a server may print in either case, and a GUID
 * with or without its braces (.NET's default: lower case, no braces): each is masked (review
 * 86, review 88). A secret that is not hex keeps its case: 8 letters of a password in another
 * case are often a word of the reply. */
Test(secrets, a_hex_secret_is_masked_in_either_case_and_without_its_braces)
{
    iw_secrets *s = iw_secrets_new();
    cr_assert_eq(iw_secrets_add(s, "{9F3A1C2B-4621-B899-0D1E-7A6B5C4D3E2F}"), 0);
    cr_assert_eq(iw_secrets_add(s, "merchant-Pw-42"), 0);
    assert_masked(s, "{9F3A1C2B-4621-B899-0D1E-7A6B5C4D3E2F}");
    assert_masked(s, "{9f3a1c2b-4621-b899-0d1e-7a6b5c4d3e2f}");
    assert_masked(s, "9f3a1c2b-4621-b899-0d1e-7a6b5c4d3e2f");
    assert_masked(s, "9F3A1C2B-4621-B899-0D1E-7A6B5C4D3E2F");
    assert_masked(s, "merchant-Pw-42");
    assert_unmasked(s, "MerchantId MERCHANT-PW-42", "not hex: matched in its own case only");
    iw_secrets_free(s);
}
