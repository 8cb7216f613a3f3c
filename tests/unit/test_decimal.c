/* test_decimal.c: exact decimal parsing, arithmetic, rounding and formatting. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "decimal.h"
#include "status.h"

/* Parses s, failing the test when it does not parse. */
static iw_decimal dec(const char *s)
{
    iw_decimal d = {0, 0};
    int rc = iw_decimal_parse(s, &d);
    cr_assert_eq(rc, 0, "parse(\"%s\") returned %d", s, rc);
    return d;
}

/* Formats d into a static buffer (one at a time). */
static const char *fmt(iw_decimal d)
{
    static char buf[IW_DECIMAL_BUFLEN];
    size_t n = iw_decimal_format(d, buf, sizeof buf);
    cr_assert_eq(n, strlen(buf));
    return buf;
}

static const char *fmt_trim(iw_decimal d)
{
    static char buf[IW_DECIMAL_BUFLEN];
    size_t n = iw_decimal_format_trim(d, buf, sizeof buf);
    cr_assert_eq(n, strlen(buf));
    return buf;
}

Test(decimal, parse_valid_keeps_scale)
{
    iw_decimal d = dec("1550.00");
    cr_assert_eq(d.coef, 155000);
    cr_assert_eq(d.scale, 2);
    d = dec("-0.05");
    cr_assert_eq(d.coef, -5);
    cr_assert_eq(d.scale, 2);
    d = dec("7");
    cr_assert_eq(d.coef, 7);
    cr_assert_eq(d.scale, 0);
    d = dec("0.10");
    cr_assert_eq(d.coef, 10);
    cr_assert_eq(d.scale, 2);
    d = dec("007.5");
    cr_assert_eq(d.coef, 75);
    cr_assert_eq(d.scale, 1);
}

Test(decimal, parse_extremes)
{
    iw_decimal d = dec("9223372036854775807");
    cr_assert_eq(d.coef, INT64_MAX);
    d = dec("-9223372036854775808");
    cr_assert_eq(d.coef, INT64_MIN);
    d = dec("0.000000000000000001"); /* 18 digits after the point: the limit */
    cr_assert_eq(d.coef, 1);
    cr_assert_eq(d.scale, 18);
    d = dec("-9.223372036854775808");
    cr_assert_eq(d.coef, INT64_MIN);
    cr_assert_eq(d.scale, 18);
}

Test(decimal, parse_invalid)
{
    const char *bad[] = {"",   "-",   "+1",  "1.",  ".5",   "1e5",   "1.2.3", " 1",
                         "1 ", "abc", "1,5", "--1", "0x10", "1.5e2", "-.5",   "1-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        iw_decimal d = {42, 1};
        cr_expect_eq(iw_decimal_parse(bad[i], &d), IW_EINVAL, "\"%s\" should be invalid", bad[i]);
        cr_expect_eq(d.coef, 42, "\"%s\" changed the output", bad[i]);
    }
    iw_decimal d;
    cr_expect_eq(iw_decimal_parse(NULL, &d), IW_EINVAL);
    /* Grammar errors win over range errors. */
    cr_expect_eq(iw_decimal_parse("1.0000000000000000000x", &d), IW_EINVAL);
}

Test(decimal, parse_overflow)
{
    iw_decimal d = {42, 1};
    cr_expect_eq(iw_decimal_parse("9223372036854775808", &d), IW_ERANGE);
    cr_expect_eq(iw_decimal_parse("-9223372036854775809", &d), IW_ERANGE);
    cr_expect_eq(iw_decimal_parse("123456789012345678901234", &d), IW_ERANGE);
    cr_expect_eq(iw_decimal_parse("0.0000000000000000001", &d), IW_ERANGE); /* 19 digits */
    cr_expect_eq(iw_decimal_parse("92233720368547758.08", &d), IW_ERANGE);
    cr_expect_eq(d.coef, 42);
}

Test(decimal, parse_n_reads_only_len_bytes)
{
    iw_decimal d;
    const char text[] = {'1', '2', '.', '5', '0', 'x', 'y'}; /* no NUL */
    cr_assert_eq(iw_decimal_parse_n(text, 5, &d), 0);
    cr_expect_eq(d.coef, 1250);
    cr_expect_eq(d.scale, 2);
    cr_expect_eq(iw_decimal_parse_n(text, 6, &d), IW_EINVAL);
    cr_expect_eq(iw_decimal_parse_n(text, 0, &d), IW_EINVAL);
    cr_expect_eq(iw_decimal_parse_n(text, 3, &d), IW_EINVAL); /* "12." */
}

Test(decimal, from_int)
{
    iw_decimal d = iw_decimal_from_int(-42);
    cr_expect_eq(d.coef, -42);
    cr_expect_eq(d.scale, 0);
    cr_expect_str_eq(fmt(d), "-42");
}

Test(decimal, cmp_by_value)
{
    cr_expect_eq(iw_decimal_cmp(dec("1.0"), dec("1.00")), 0);
    cr_expect_eq(iw_decimal_cmp(dec("0"), dec("-0.000")), 0);
    cr_expect_lt(iw_decimal_cmp(dec("0.99"), dec("1")), 0);
    cr_expect_gt(iw_decimal_cmp(dec("1.001"), dec("1")), 0);
    cr_expect_lt(iw_decimal_cmp(dec("-2"), dec("-1.5")), 0);
    cr_expect_gt(iw_decimal_cmp(dec("-1.5"), dec("-2")), 0);
    /* Rescaling the left side would overflow int64; the order must still be right. */
    cr_expect_gt(iw_decimal_cmp(dec("9223372036854775807"), dec("0.000000000000000001")), 0);
    cr_expect_lt(iw_decimal_cmp(dec("-9223372036854775808"), dec("-0.5")), 0);
    cr_expect_gt(iw_decimal_cmp(dec("922337203685477580"), dec("9.223372036854775807")), 0);
}

Test(decimal, zero_and_sign)
{
    cr_expect(iw_decimal_is_zero(dec("0.00")));
    cr_expect(iw_decimal_is_zero(dec("-0")));
    cr_expect_not(iw_decimal_is_zero(dec("0.01")));
    cr_expect_eq(iw_decimal_sign(dec("0.00")), 0);
    cr_expect_eq(iw_decimal_sign(dec("-0.01")), -1);
    cr_expect_eq(iw_decimal_sign(dec("12")), 1);
}

Test(decimal, add_is_exact)
{
    iw_decimal r;
    cr_assert_eq(iw_decimal_add(dec("0.10"), dec("0.20"), &r), 0);
    cr_expect_str_eq(fmt(r), "0.30");
    cr_expect_eq(iw_decimal_cmp(r, dec("0.3")), 0);
    cr_assert_eq(iw_decimal_add(dec("1.5"), dec("2.25"), &r), 0);
    cr_expect_str_eq(fmt(r), "3.75");
    cr_expect_eq(r.scale, 2);
    cr_assert_eq(iw_decimal_add(dec("-10"), dec("2.50"), &r), 0);
    cr_expect_str_eq(fmt(r), "-7.50");
    /* Ten times 0.10 is exactly 1.00. */
    iw_decimal sum = dec("0");
    for (int i = 0; i < 10; i++)
        cr_assert_eq(iw_decimal_add(sum, dec("0.10"), &sum), 0);
    cr_expect_str_eq(fmt(sum), "1.00");
}

Test(decimal, sub)
{
    iw_decimal r;
    cr_assert_eq(iw_decimal_sub(dec("1550.00"), dec("1525"), &r), 0);
    cr_expect_str_eq(fmt(r), "25.00");
    cr_assert_eq(iw_decimal_sub(dec("0.1"), dec("0.35"), &r), 0);
    cr_expect_str_eq(fmt(r), "-0.25");
}

Test(decimal, mul_quantity_by_price)
{
    iw_decimal r;
    cr_assert_eq(iw_decimal_mul(dec("100"), dec("2.50"), &r), 0);
    cr_expect_str_eq(fmt(r), "250.00");
    cr_assert_eq(iw_decimal_mul(dec("1.5"), dec("3.33"), &r), 0);
    cr_expect_str_eq(fmt(r), "4.995");
    cr_expect_eq(r.scale, 3);
    cr_assert_eq(iw_decimal_mul(dec("-3"), dec("0.25"), &r), 0);
    cr_expect_str_eq(fmt(r), "-0.75");
    /* 1020.16 * 23% tax = 234.6368 -> 234.64 */
    cr_assert_eq(iw_decimal_mul(dec("1020.16"), dec("0.23"), &r), 0);
    cr_expect_str_eq(fmt(r), "234.6368");
    cr_assert_eq(iw_decimal_round(r, 2, &r), 0);
    cr_expect_str_eq(fmt(r), "234.64");
}

Test(decimal, mul_caps_scale_by_rounding)
{
    iw_decimal r;
    /* 10 + 10 digits: the exact product has scale 20, kept at 18 rounding half up. */
    cr_assert_eq(iw_decimal_mul(dec("0.0000000005"), dec("0.0000000005"), &r), 0);
    cr_expect_eq(r.scale, 18);
    cr_expect_str_eq(fmt(r), "0.000000000000000000"); /* 2.5e-19 rounds to 0 */
    cr_assert_eq(iw_decimal_mul(dec("0.0000000015"), dec("0.0000000005"), &r), 0);
    cr_expect_str_eq(fmt(r), "0.000000000000000001"); /* 7.5e-19 rounds to 1e-18 */
    cr_assert_eq(iw_decimal_mul(dec("-0.0000000015"), dec("0.0000000005"), &r), 0);
    cr_expect_str_eq(fmt(r), "-0.000000000000000001");
    /* A product too big for int64 before rounding that fits after it. */
    cr_assert_eq(iw_decimal_mul(dec("3.000000000"), dec("3.0000000000"), &r), 0);
    cr_expect_str_eq(fmt_trim(r), "9");
}

Test(decimal, round_half_away_from_zero)
{
    iw_decimal r;
    cr_assert_eq(iw_decimal_round(dec("2.345"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "2.35");
    cr_assert_eq(iw_decimal_round(dec("-2.345"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "-2.35");
    cr_assert_eq(iw_decimal_round(dec("2.344"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "2.34");
    cr_assert_eq(iw_decimal_round(dec("-2.3449"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "-2.34");
    cr_assert_eq(iw_decimal_round(dec("0.5"), 0, &r), 0);
    cr_expect_str_eq(fmt(r), "1");
    cr_assert_eq(iw_decimal_round(dec("-0.5"), 0, &r), 0);
    cr_expect_str_eq(fmt(r), "-1");
    cr_assert_eq(iw_decimal_round(dec("-0.004"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "0.00");
    cr_assert_eq(iw_decimal_round(dec("9.995"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "10.00");
}

Test(decimal, round_pads_to_larger_scale)
{
    iw_decimal r;
    cr_assert_eq(iw_decimal_round(dec("7"), 2, &r), 0);
    cr_expect_str_eq(fmt(r), "7.00");
    cr_assert_eq(iw_decimal_round(dec("-1.5"), 4, &r), 0);
    cr_expect_str_eq(fmt(r), "-1.5000");
}

Test(decimal, round_errors)
{
    iw_decimal r = {42, 0};
    cr_expect_eq(iw_decimal_round(dec("1"), -1, &r), IW_ERANGE);
    cr_expect_eq(iw_decimal_round(dec("1"), 19, &r), IW_ERANGE);
    cr_expect_eq(iw_decimal_round(dec("9223372036854775807"), 1, &r), IW_ERANGE);
    cr_expect_eq(r.coef, 42);
}

Test(decimal, format)
{
    cr_expect_str_eq(fmt(dec("-12.50")), "-12.50");
    cr_expect_str_eq(fmt(dec("0.05")), "0.05");
    cr_expect_str_eq(fmt(dec("7")), "7");
    cr_expect_str_eq(fmt(dec("-0.000000000000000001")), "-0.000000000000000001");
    cr_expect_str_eq(fmt(dec("-9223372036854775808")), "-9223372036854775808");
    cr_expect_str_eq(fmt(dec("-9.223372036854775808")), "-9.223372036854775808");
    cr_expect_str_eq(fmt(dec("-0.00")), "0.00");
}

Test(decimal, format_trim)
{
    cr_expect_str_eq(fmt_trim(dec("10.50")), "10.5");
    cr_expect_str_eq(fmt_trim(dec("7.00")), "7");
    cr_expect_str_eq(fmt_trim(dec("100")), "100");
    cr_expect_str_eq(fmt_trim(dec("-0.050")), "-0.05");
    cr_expect_str_eq(fmt_trim(dec("0.000")), "0");
    cr_expect_str_eq(fmt_trim(dec("23")), "23");
}

Test(decimal, format_short_buffer_is_like_snprintf)
{
    char buf[4];
    size_t n = iw_decimal_format(dec("-12.50"), buf, sizeof buf);
    cr_expect_eq(n, 6);
    cr_expect_str_eq(buf, "-12");
    n = iw_decimal_format_trim(dec("1234.500"), buf, sizeof buf);
    cr_expect_eq(n, 6);
    cr_expect_str_eq(buf, "123");
    cr_expect_eq(iw_decimal_format(dec("1.5"), NULL, 0), 3);
}

Test(decimal, overflow_reported_and_out_untouched)
{
    iw_decimal max = dec("9223372036854775807"), min = dec("-9223372036854775808");
    iw_decimal r = {42, 3};
    cr_expect_eq(iw_decimal_add(max, dec("1"), &r), IW_ERANGE);
    cr_expect_eq(iw_decimal_sub(min, dec("1"), &r), IW_ERANGE);
    cr_expect_eq(iw_decimal_mul(max, dec("2"), &r), IW_ERANGE);
    cr_expect_eq(iw_decimal_mul(min, dec("-1"), &r), IW_ERANGE);
    /* Aligning scales overflows: 922337203685477580.7 needs a 19-digit coefficient * 10. */
    cr_expect_eq(iw_decimal_add(dec("922337203685477581"), dec("0.1"), &r), IW_ERANGE);
    cr_expect_eq(r.coef, 42);
    cr_expect_eq(r.scale, 3);
    /* Near the edge but inside: no false alarm. */
    cr_assert_eq(iw_decimal_add(max, dec("-1"), &r), 0);
    cr_expect_str_eq(fmt(r), "9223372036854775806");
    cr_assert_eq(iw_decimal_add(dec("922337203685477580"), dec("0.7"), &r), 0);
    cr_expect_str_eq(fmt(r), "922337203685477580.7");
}
