/* fuzz_decimal.c: iw_decimal_parse_n on arbitrary bytes, with round-trip properties:
 * parse -> format -> parse keeps value and scale, format_trim keeps the value; an input
 * "A|B" also drives the arithmetic with its algebraic checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "status.h"

static void round_trip(iw_decimal a)
{
    char buf[IW_DECIMAL_BUFLEN];
    size_t n = iw_decimal_format(a, buf, sizeof(buf));
    if (n >= sizeof(buf) || strlen(buf) != n)
        abort(); /* IW_DECIMAL_BUFLEN holds every decimal */
    iw_decimal b;
    if (iw_decimal_parse(buf, &b) != 0 || b.coef != a.coef || b.scale != a.scale)
        abort(); /* format -> parse gives the same decimal back, scale included */
    char tiny[4];
    if (iw_decimal_format(a, tiny, sizeof(tiny)) != n ||
        strnlen(tiny, sizeof(tiny)) == sizeof(tiny) || strncmp(tiny, buf, sizeof(tiny) - 1) != 0)
        abort(); /* a short buffer gets the needed length, a NUL-terminated prefix (snprintf) */
    n = iw_decimal_format_trim(a, buf, sizeof(buf));
    if (n >= sizeof(buf) || iw_decimal_parse(buf, &b) != 0 || iw_decimal_cmp(a, b) != 0)
        abort(); /* trimmed zeros do not change the value */
}

static void arithmetic(iw_decimal a, iw_decimal b)
{
    iw_decimal s, d, p, r;
    if (iw_decimal_add(a, b, &s) == 0 && iw_decimal_sub(s, b, &d) == 0 && iw_decimal_cmp(d, a) != 0)
        abort(); /* (a + b) - b == a */
    int ab = iw_decimal_cmp(a, b), ba = iw_decimal_cmp(b, a);
    if ((ab < 0) != (ba > 0) || (ab == 0) != (ba == 0))
        abort(); /* comparison is antisymmetric */
    if (iw_decimal_mul(a, b, &p) == 0) {
        round_trip(p);
        iw_decimal q;
        if (iw_decimal_mul(b, a, &q) != 0 || iw_decimal_cmp(p, q) != 0)
            abort(); /* a * b == b * a */
    }
    for (int scale = -1; scale <= IW_DECIMAL_MAX_SCALE + 1; scale += 3)
        if (iw_decimal_round(a, scale, &r) == 0) {
            if (r.scale != scale)
                abort();
            round_trip(r);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    iw_decimal a;
    int rc = iw_decimal_parse_n(s, size, &a);
    if (rc != 0 && rc != IW_EINVAL && rc != IW_ERANGE)
        abort();
    if (rc == 0)
        round_trip(a);
    const char *bar = memchr(s, '|', size);
    if (bar) {
        iw_decimal x, y;
        if (iw_decimal_parse_n(s, (size_t)(bar - s), &x) == 0 &&
            iw_decimal_parse_n(bar + 1, size - (size_t)(bar - s) - 1, &y) == 0)
            arithmetic(x, y);
    }
    return 0;
}
