/* decimal.c: exact decimal arithmetic on an int64 coefficient and a scale; no floating point. */
#include "decimal.h"

#include <string.h>

#include "status.h"

/* Intermediate products of two coefficients need 126 bits; the result is checked back into
 * int64 with __builtin_*_overflow, which compares in infinite precision. */
__extension__ typedef __int128 wide;

/* 10^0 .. 10^18: every power that fits an int64. */
static const int64_t pow10[IW_DECIMAL_MAX_SCALE + 1] = {
    1LL,
    10LL,
    100LL,
    1000LL,
    10000LL,
    100000LL,
    1000000LL,
    10000000LL,
    100000000LL,
    1000000000LL,
    10000000000LL,
    100000000000LL,
    1000000000000LL,
    10000000000000LL,
    100000000000000LL,
    1000000000000000LL,
    10000000000000000LL,
    100000000000000000LL,
    1000000000000000000LL,
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Divides w by 10^by (by in 1..18), rounding half away from zero. */
static wide div_round(wide w, int by)
{
    wide d = pow10[by];
    wide q = w / d, r = w % d; /* C truncates toward zero: r has the sign of w */
    if (r < 0)
        r = -r;
    if (r * 2 >= d)
        q += w < 0 ? -1 : 1;
    return q;
}

int iw_decimal_parse_n(const char *s, size_t len, iw_decimal *out)
{
    if (!s || !out || len == 0)
        return IW_EINVAL;
    /* First the grammar, so that bad text is always IW_EINVAL whatever its length; the digits
     * are summed on the way (v), which up to 18 of them cannot overflow. */
    size_t i = s[0] == '-' ? 1 : 0;
    size_t int_start = i;
    uint64_t v = 0;
    while (i < len && is_digit(s[i]))
        v = v * 10 + (uint64_t)(s[i++] - '0');
    if (i == int_start)
        return IW_EINVAL;
    size_t frac_digits = 0;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i])) {
            v = v * 10 + (uint64_t)(s[i++] - '0');
            frac_digits++;
        }
        if (frac_digits == 0)
            return IW_EINVAL;
    }
    if (i != len)
        return IW_EINVAL;
    if (frac_digits > IW_DECIMAL_MAX_SCALE)
        return IW_ERANGE;
    if (len - int_start - (frac_digits ? 1 : 0) <= 18) {
        out->coef = s[0] == '-' ? -(int64_t)v : (int64_t)v;
        out->scale = (int)frac_digits;
        return 0;
    }

    /* Accumulate negatively so that INT64_MIN itself is reachable. */
    int64_t acc = 0;
    for (size_t k = int_start; k < len; k++) {
        if (s[k] == '.')
            continue;
        if (__builtin_mul_overflow(acc, 10, &acc) || __builtin_sub_overflow(acc, s[k] - '0', &acc))
            return IW_ERANGE;
    }
    if (s[0] != '-' && __builtin_sub_overflow((int64_t)0, acc, &acc))
        return IW_ERANGE;
    out->coef = acc;
    out->scale = (int)frac_digits;
    return 0;
}

int iw_decimal_parse(const char *s, iw_decimal *out)
{
    if (!s)
        return IW_EINVAL;
    return iw_decimal_parse_n(s, strlen(s), out);
}

iw_decimal iw_decimal_from_int(int64_t v)
{
    iw_decimal d = {v, 0};
    return d;
}

/* A coefficient brought to a larger scale, exact in 128 bits (|coef| * 10^18 < 2^123). */
static wide widen(iw_decimal a, int scale)
{
    return (wide)a.coef * pow10[scale - a.scale];
}

static int max_scale(iw_decimal a, iw_decimal b)
{
    return a.scale > b.scale ? a.scale : b.scale;
}

static bool valid(iw_decimal a)
{
    return a.scale >= 0 && a.scale <= IW_DECIMAL_MAX_SCALE;
}

int iw_decimal_cmp(iw_decimal a, iw_decimal b)
{
    if (!valid(a) || !valid(b)) /* never made by this module; order by coefficient */
        return (a.coef > b.coef) - (a.coef < b.coef);
    int s = max_scale(a, b);
    wide x = widen(a, s), y = widen(b, s);
    return (x > y) - (x < y);
}

bool iw_decimal_is_zero(iw_decimal a)
{
    return a.coef == 0;
}

int iw_decimal_sign(iw_decimal a)
{
    return (a.coef > 0) - (a.coef < 0);
}

int iw_decimal_add(iw_decimal a, iw_decimal b, iw_decimal *out)
{
    if (!valid(a) || !valid(b))
        return IW_ERANGE;
    int s = max_scale(a, b);
    int64_t c;
    if (__builtin_add_overflow(widen(a, s), widen(b, s), &c))
        return IW_ERANGE;
    out->coef = c;
    out->scale = s;
    return 0;
}

int iw_decimal_sub(iw_decimal a, iw_decimal b, iw_decimal *out)
{
    if (!valid(a) || !valid(b))
        return IW_ERANGE;
    int s = max_scale(a, b);
    int64_t c;
    if (__builtin_sub_overflow(widen(a, s), widen(b, s), &c))
        return IW_ERANGE;
    out->coef = c;
    out->scale = s;
    return 0;
}

int iw_decimal_mul(iw_decimal a, iw_decimal b, iw_decimal *out)
{
    if (!valid(a) || !valid(b))
        return IW_ERANGE;
    wide w = (wide)a.coef * b.coef; /* < 2^126: exact */
    int s = a.scale + b.scale;
    if (s > IW_DECIMAL_MAX_SCALE) {
        w = div_round(w, s - IW_DECIMAL_MAX_SCALE);
        s = IW_DECIMAL_MAX_SCALE;
    }
    int64_t c;
    if (__builtin_add_overflow(w, (wide)0, &c))
        return IW_ERANGE;
    out->coef = c;
    out->scale = s;
    return 0;
}

int iw_decimal_round(iw_decimal a, int scale, iw_decimal *out)
{
    if (!valid(a) || scale < 0 || scale > IW_DECIMAL_MAX_SCALE)
        return IW_ERANGE;
    wide w = scale >= a.scale ? widen(a, scale) : div_round(a.coef, a.scale - scale);
    int64_t c;
    if (__builtin_add_overflow(w, (wide)0, &c))
        return IW_ERANGE;
    out->coef = c;
    out->scale = scale;
    return 0;
}

/* Copies the formatted text into buf as snprintf would; returns the full length. */
static size_t emit(const char *text, size_t n, char *buf, size_t len)
{
    if (buf && len > 0) {
        size_t k = n < len ? n : len - 1;
        memcpy(buf, text, k);
        buf[k] = '\0';
    }
    return n;
}

/* Writes the plain notation into tmp (at least IW_DECIMAL_BUFLEN bytes); returns its length. */
static size_t render(iw_decimal a, char *tmp)
{
    int scale = valid(a) ? a.scale : 0;
    /* Magnitude as unsigned, so INT64_MIN needs no special case. */
    uint64_t mag = a.coef < 0 ? 0u - (uint64_t)a.coef : (uint64_t)a.coef;
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + mag % 10u);
        mag /= 10u;
    } while (mag > 0);
    while (nd < scale + 1) /* "0.05": at least one digit before the point */
        digits[nd++] = '0';

    size_t n = 0;
    if (a.coef < 0)
        tmp[n++] = '-';
    for (int i = nd - 1; i >= 0; i--) {
        tmp[n++] = digits[i];
        if (i == scale && scale > 0)
            tmp[n++] = '.';
    }
    tmp[n] = '\0';
    return n;
}

size_t iw_decimal_format(iw_decimal a, char *buf, size_t len)
{
    char tmp[IW_DECIMAL_BUFLEN];
    size_t n = render(a, tmp);
    return emit(tmp, n, buf, len);
}

size_t iw_decimal_format_trim(iw_decimal a, char *buf, size_t len)
{
    char tmp[IW_DECIMAL_BUFLEN];
    size_t n = render(a, tmp);
    if (memchr(tmp, '.', n)) {
        while (tmp[n - 1] == '0')
            n--;
        if (tmp[n - 1] == '.')
            n--;
        tmp[n] = '\0';
    }
    return emit(tmp, n, buf, len);
}
