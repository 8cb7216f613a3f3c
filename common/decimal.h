/* decimal.h: exact decimal numbers for money and quantities; no floating point anywhere. */
#ifndef IW_DECIMAL_H
#define IW_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IW_DECIMAL_MAX_SCALE 18 /* most digits after the point we keep */
#define IW_DECIMAL_BUFLEN 48    /* enough for any formatted iw_decimal, with sign and NUL */

/* A decimal is coef * 10^-scale: "1550.00" is {155000, 2}. Scale is kept, so "0.10"
 * formats back as "0.10". Plain value type: copy it freely. */
typedef struct iw_decimal {
    int64_t coef; /* unscaled value */
    int scale;    /* digits after the point, 0..IW_DECIMAL_MAX_SCALE */
} iw_decimal;

/* A decimal field of the canonical invoice that may be absent. */
typedef struct iw_amount {
    iw_decimal value; /* meaningful only when set */
    bool set;         /* false when the event did not carry the field */
} iw_amount;

/* Parses "-?[0-9]+(\.[0-9]+)?" (a leading '+' and exponents are refused). Returns 0,
 * IW_EINVAL for text that is not a decimal, IW_ERANGE when it does not fit. */
int iw_decimal_parse(const char *s, iw_decimal *out);

/* Like iw_decimal_parse over the first len bytes of s (s need not be NUL-terminated). */
int iw_decimal_parse_n(const char *s, size_t len, iw_decimal *out);

/* Makes an integer decimal (scale 0). */
iw_decimal iw_decimal_from_int(int64_t v);

/* Compares by value (1.0 == 1.00): <0, 0 or >0. */
int iw_decimal_cmp(iw_decimal a, iw_decimal b);

/* True when the value is zero / negative / positive. */
bool iw_decimal_is_zero(iw_decimal a);
int iw_decimal_sign(iw_decimal a);

/* out = a + b (scale = the larger scale). IW_ERANGE on overflow, out untouched. */
int iw_decimal_add(iw_decimal a, iw_decimal b, iw_decimal *out);

/* out = a - b. IW_ERANGE on overflow. */
int iw_decimal_sub(iw_decimal a, iw_decimal b, iw_decimal *out);

/* out = a * b (scale = a.scale + b.scale, capped at IW_DECIMAL_MAX_SCALE by rounding
 * half-up). IW_ERANGE on overflow. */
int iw_decimal_mul(iw_decimal a, iw_decimal b, iw_decimal *out);

/* out = a rounded half away from zero to `scale` digits (or padded with zeros when scale
 * is larger than a's). IW_ERANGE on overflow or a scale out of range. */
int iw_decimal_round(iw_decimal a, int scale, iw_decimal *out);

/* Writes the plain notation ("-12.50", "0.05", "7") into buf; returns the length written,
 * or the length needed when buf is too small (as snprintf). */
size_t iw_decimal_format(iw_decimal a, char *buf, size_t len);

/* Formats with trailing zeros after the point dropped ("10.50" -> "10.5", "7.00" -> "7").
 * Same return convention as iw_decimal_format. */
size_t iw_decimal_format_trim(iw_decimal a, char *buf, size_t len);

#endif
