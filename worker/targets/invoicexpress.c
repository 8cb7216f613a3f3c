/* invoicexpress.c: the InvoiceXpress adapter (seed 004): PUT /invoices/{id}.xml?api_key=...
 * with the whole <invoice> (all items every time), checked against the API's rules first. */
#include "target.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "invoicexpress.h"
#include "mapping.h"
#include "secrets.h"
#include "status.h"
#include "text.h"
#include "wbuf.h"
#include "xml.h"

/* Guess: the seed does not list its units. It rejects "kg" ("Unit kg is not included in the
 * list of accepted units"), so the built-in list is the conservative one below; an account
 * with other units configures targets.<name>.accepted_units. */
static const char *const default_units[] = {"unit", "hour", "day", "month", "service"};

static const iw_ix_conf *ixc(const iw_target_conf *tc)
{
    return iw_ix_conf_of(tc);
}

/* The unit of a line that has none: default_unit, "unit" when it is set empty. */
static const char *default_unit(const iw_target_conf *tc)
{
    const char *u = ixc(tc)->default_unit;
    return u && *u ? u : "unit";
}

/* ISO 3166-1 alpha-2 -> the English name InvoiceXpress matches ("Country Germani was not
 * found" shows names are matched by text). Guess: the API's own list is not public in the
 * seed; these are the usual English short names. EU and EEA, the Portuguese-speaking
 * countries, and the other big trading partners. */
static const struct country {
    const char *code, *name;
} countries[] = {
    /* EU */
    {"AT", "Austria"},
    {"BE", "Belgium"},
    {"BG", "Bulgaria"},
    {"HR", "Croatia"},
    {"CY", "Cyprus"},
    {"CZ", "Czech Republic"},
    {"DK", "Denmark"},
    {"EE", "Estonia"},
    {"FI", "Finland"},
    {"FR", "France"},
    {"DE", "Germany"},
    {"GR", "Greece"},
    {"HU", "Hungary"},
    {"IE", "Ireland"},
    {"IT", "Italy"},
    {"LV", "Latvia"},
    {"LT", "Lithuania"},
    {"LU", "Luxembourg"},
    {"MT", "Malta"},
    {"NL", "Netherlands"},
    {"PL", "Poland"},
    {"PT", "Portugal"},
    {"RO", "Romania"},
    {"SK", "Slovakia"},
    {"SI", "Slovenia"},
    {"ES", "Spain"},
    {"SE", "Sweden"},
    /* EEA outside the EU, and Switzerland, the UK */
    {"IS", "Iceland"},
    {"LI", "Liechtenstein"},
    {"NO", "Norway"},
    {"CH", "Switzerland"},
    {"GB", "United Kingdom"},
    /* Portuguese-speaking */
    {"BR", "Brazil"},
    {"AO", "Angola"},
    {"CV", "Cape Verde"},
    {"GW", "Guinea-Bissau"},
    {"MZ", "Mozambique"},
    {"ST", "Sao Tome and Principe"},
    {"TL", "East Timor"},
    {"GQ", "Equatorial Guinea"},
    {"MO", "Macau"},
    /* others */
    {"US", "United States"},
    {"CA", "Canada"},
    {"MX", "Mexico"},
    {"CN", "China"},
    {"JP", "Japan"},
    {"AU", "Australia"},
    {"NZ", "New Zealand"},
    {"IN", "India"},
    {"AD", "Andorra"},
    {"MC", "Monaco"},
    {"SM", "San Marino"},
    {"TR", "Turkey"},
    {"MA", "Morocco"},
    {"ZA", "South Africa"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------------------------ */
/* Lookups shared by validate and render. */

/* The country name for an ISO code: the instance's "countries" first, then the built-in table
 * (a guess, configurable as DESIGN asks of every guess). */
static const char *country_name(const iw_target_conf *tc, const char *code)
{
    const iw_ix_conf *ix = ixc(tc);
    for (size_t i = 0; code && i < ix->n_countries; i++)
        if (strcasecmp(ix->countries[i].code, code) == 0)
            return ix->countries[i].name;
    for (size_t i = 0; code && i < COUNT(countries); i++)
        if (strcasecmp(countries[i].code, code) == 0)
            return countries[i].name;
    return NULL;
}

static const char *line_unit(const iw_line *ln, const iw_target_conf *tc)
{
    if (ln->unit && *ln->unit)
        return ln->unit;
    return default_unit(tc);
}

static bool unit_accepted(const char *unit, const iw_target_conf *tc)
{
    const iw_ix_conf *ix = ixc(tc);
    if (ix->accepted_units) {
        for (size_t i = 0; i < ix->n_accepted_units; i++)
            if (strcmp(ix->accepted_units[i], unit) == 0)
                return true;
        return false;
    }
    for (size_t i = 0; i < COUNT(default_units); i++)
        if (strcmp(default_units[i], unit) == 0)
            return true;
    return false;
}

/* True when the line carries a tax: taxable is not "no" and the rate is set and not zero. */
static bool line_taxed(const iw_line *ln)
{
    return ln->taxable != IW_FLAG_NO && ln->tax_rate.set && !iw_decimal_is_zero(ln->tax_rate.value);
}

/* The configured tax name for a rate (compared by value: "23" == "23.00"); NULL when none. */
static const char *tax_name_of(iw_decimal rate, const iw_target_conf *tc)
{
    const iw_ix_conf *ix = ixc(tc);
    for (size_t i = 0; i < ix->n_tax_names; i++) {
        iw_decimal r;
        if (ix->tax_names[i].rate && iw_decimal_parse(ix->tax_names[i].rate, &r) == 0 &&
            iw_decimal_cmp(r, rate) == 0)
            return ix->tax_names[i].name;
    }
    return NULL;
}

/* True when the line is taxed: taxable is yes, or unset with a non-zero rate or tax amount. */
static bool line_taxable(const iw_line *ln)
{
    if (ln->taxable != IW_FLAG_UNSET)
        return ln->taxable == IW_FLAG_YES;
    return (ln->tax_rate.set && !iw_decimal_is_zero(ln->tax_rate.value)) ||
           (ln->tax_amount.set && !iw_decimal_is_zero(ln->tax_amount.value));
}

/* The tax name sent for a line, NULL when none is sent. The line's own tax_name wins (the
 * API matches taxes by name, seed line 164); else the configured name of its non-zero rate. */
static const char *line_tax_name(const iw_line *ln, const iw_target_conf *tc)
{
    if (!line_taxable(ln))
        return NULL;
    if (ln->tax_name && *ln->tax_name)
        return ln->tax_name;
    if (line_taxed(ln))
        return tax_name_of(ln->tax_rate.value, tc);
    return NULL;
}

static __int128 pow10_128(int n)
{
    __int128 p = 1;
    while (n-- > 0)
        p *= 10;
    return p;
}

/* The line's discount as the API's percentage: discount_pct when given; else discount_amount
 * as a percentage of unit_price x quantity, when that is exact within 6 decimals. Returns 0
 * (pct->set false when there is no discount) or IW_EINVAL when the amount is not an exact
 * percentage. */
/* d without the zeros that end its fraction: 19.9900 is 19.99. */
static iw_decimal trimmed(iw_decimal d)
{
    while (d.scale > 0 && d.coef % 10 == 0)
        d.coef /= 10, d.scale--;
    return d;
}

static __int128 gcd128(__int128 a, __int128 b)
{
    while (b) {
        __int128 t = a % b;
        a = b, b = t;
    }
    return a ? a : 1;
}

static int line_discount(const iw_line *ln, iw_amount *pct)
{
    memset(pct, 0, sizeof(*pct));
    if (ln->discount_pct.set) {
        *pct = ln->discount_pct;
        return 0;
    }
    if (!ln->discount_amount.set)
        return 0;
    if (iw_decimal_is_zero(ln->discount_amount.value)) {
        *pct = ln->discount_amount; /* "0.00": no discount, said explicitly */
        return 0;
    }
    if (!ln->unit_price.set || !ln->quantity.set)
        return IW_EINVAL;
    /* The gross exactly: two 64-bit coefficients multiply within 128 bits, at the sum of the
     * scales (iw_decimal_mul rounds past 18 decimals, and a rounded gross can make a ratio
     * that is not exact look exact: 1.0000000011 of 1.0000000001 x 1.000000001 is not 100%).
     * Trailing zeros first: 19.9900000000000000 x 3.0000000000000000 is 19.99 x 3 (review 108:
     * their product overflowed, and an exact percentage was refused as inexact). */
    iw_decimal up = trimmed(ln->unit_price.value), qty = trimmed(ln->quantity.value);
    __int128 gcoef = (__int128)up.coef * qty.coef;
    int gscale = up.scale + qty.scale;
    if (gcoef <= 0)
        return IW_EINVAL;
    /* pct = amount * 100 / gross, both brought to one scale and reduced; a product past 128
     * bits means no exact percentage this can state */
    iw_decimal a = trimmed(ln->discount_amount.value);
    int sc = a.scale > gscale ? a.scale : gscale;
    __int128 num, den;
    if (sc > 38 || __builtin_mul_overflow((__int128)a.coef, pow10_128(sc - a.scale), &num) ||
        __builtin_mul_overflow(num, (__int128)100, &num) ||
        __builtin_mul_overflow(gcoef, pow10_128(sc - gscale), &den))
        return IW_EINVAL;
    __int128 g = gcd128(num < 0 ? -num : num, den);
    num /= g, den /= g;
    for (int k = 0; k <= 6; k++) {
        __int128 n;
        if (__builtin_mul_overflow(num, pow10_128(k), &n))
            return IW_EINVAL;
        if (n % den == 0) {
            __int128 q = n / den;
            if (q > INT64_MAX || q < INT64_MIN)
                return IW_EINVAL;
            pct->value.coef = (int64_t)q;
            pct->value.scale = k;
            pct->set = true;
            return 0;
        }
    }
    return IW_EINVAL;
}

/* A plain e-mail check: local@domain.tld, no spaces or controls, one '@', a dot in the domain
 * neither first nor last, no empty labels. */
static bool email_ok(const char *e)
{
    const char *at = strchr(e, '@');
    if (!at || at == e || strchr(at + 1, '@'))
        return false;
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == ',' || *p == ';' || *p == '<' ||
            *p == '>')
            return false;
    /* a dot-atom local part (RFC 5321): no dot first, last or twice in a row */
    if (e[0] == '.' || at[-1] == '.' || memmem(e, (size_t)(at - e), "..", 2))
        return false;
    const char *d = at + 1;
    size_t dl = strlen(d);
    return dl >= 3 && strchr(d, '.') && d[0] != '.' && d[dl - 1] != '.' && !strstr(d, "..");
}

static bool all_digits(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* The length of the Unicode white space at s (what Ruby's [[:space:]] matches, which Rails'
 * blank? and so InvoiceXpress' "Required" use: NEL, NBSP, U+1680, U+2000-U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000), or 0. */
static size_t unicode_space(const unsigned char *s)
{
    if (s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;
    if (s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80)
        return 3;
    if (s[0] == 0xE2 && s[1] == 0x80 &&
        ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3;
    if (s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F)
        return 3;
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
        return 3;
    return 0;
}

/* Blank as the server judges a required field: nothing but white space, ASCII or Unicode. */
static bool blank(const char *s)
{
    if (!s)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = isspace(*p) ? 1 : unicode_space(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(errbuf, errlen, __VA_ARGS__);                                                     \
        return IW_EINVAL;                                                                          \
    } while (0)

static int validate_line(const iw_line *ln, size_t i, const iw_target_conf *tc, char *errbuf,
                         size_t errlen)
{
    char buf[IW_DECIMAL_BUFLEN];
    if (blank(ln->name))
        FAIL("invoice.lines[%zu].name: required (InvoiceXpress items are matched by name)", i);
    if (!ln->unit_price.set || iw_decimal_sign(ln->unit_price.value) <= 0)
        FAIL("invoice.lines[%zu].unit_price: must be greater than 0", i);
    if (!ln->quantity.set || iw_decimal_sign(ln->quantity.value) <= 0)
        FAIL("invoice.lines[%zu].quantity: must be greater than 0", i);
    const char *unit = line_unit(ln, tc);
    if (!unit_accepted(unit, tc))
        FAIL("invoice.lines[%zu].unit: \"%.40s\" is not an accepted unit (accepted_units)", i,
             unit);
    if (ln->discount_pct.set &&
        (iw_decimal_sign(ln->discount_pct.value) < 0 ||
         iw_decimal_cmp(ln->discount_pct.value, iw_decimal_from_int(100)) > 0))
        FAIL("invoice.lines[%zu].discount_pct: must be between 0 and 100", i);
    if (ln->discount_amount.set && iw_decimal_sign(ln->discount_amount.value) < 0)
        FAIL("invoice.lines[%zu].discount_amount: must not be negative", i); /* review 108 */
    iw_amount pct;
    if (line_discount(ln, &pct) != 0) {
        iw_decimal_format(ln->discount_amount.value, buf, sizeof(buf));
        FAIL("invoice.lines[%zu].discount_amount: %s is not an exact percentage of unit_price x "
             "quantity "
             "(InvoiceXpress takes a percentage); send discount_pct",
             i, buf);
    }
    if (pct.set &&
        (iw_decimal_sign(pct.value) < 0 || iw_decimal_cmp(pct.value, iw_decimal_from_int(100)) > 0))
        FAIL("invoice.lines[%zu].discount_amount: more than the line's amount", i);
    if (line_taxable(ln) && !(ln->tax_name && *ln->tax_name) && !ln->tax_rate.set)
        FAIL("invoice.lines[%zu].tax_rate: required for a taxable line (or tax_name); without it "
             "the "
             "line would go out untaxed",
             i);
    if (line_taxed(ln) && !(ln->tax_name && *ln->tax_name) &&
        !tax_name_of(ln->tax_rate.value, tc)) {
        iw_decimal_format(ln->tax_rate.value, buf, sizeof(buf));
        FAIL("invoice.lines[%zu].tax_rate: no tax name configured for rate %s (tax_names)", i, buf);
    }
    return 0;
}

/* Extra charges (shipping, handling) are sent as items: every update replaces all items (seed
 * lines 5, 103), so a charge left out would be deleted. */
static int validate_charge(const iw_extra_charge *c, size_t i, char *errbuf, size_t errlen)
{
    if (!c->amount.set)
        FAIL("invoice.extra_charges[%zu].amount: required (sent as an item's unit_price)", i);
    if (iw_decimal_sign(c->amount.value) < 0)
        FAIL("invoice.extra_charges[%zu].amount: must not be negative (an item's unit_price is "
             "greater "
             "than 0)",
             i);
    if (blank(c->description) && blank(c->key))
        FAIL("invoice.extra_charges[%zu].description: required (the item name)", i);
    return 0;
}

static int ix_validate(const iw_event *ev, const iw_target_conf *tc, char *errbuf, size_t errlen)
{
    const iw_invoice *inv = &ev->invoice;
    const iw_decimal max_retention = {9999, 2};

    /* The API's invoice id is numeric and required; the canonical id is not it. */
    if (!inv->target_refs.invoicexpress_id || !*inv->target_refs.invoicexpress_id)
        FAIL("invoice.target_refs.invoicexpress_id: required (InvoiceXpress updates by its invoice "
             "id)");
    if (!all_digits(inv->target_refs.invoicexpress_id) ||
        strlen(inv->target_refs.invoicexpress_id) > 18)
        FAIL("invoice.target_refs.invoicexpress_id: must be a whole number of at most 18 digits");
    if (inv->n_lines == 0)
        FAIL("invoice.lines: at least one item is required");
    /* invoices.update takes no currency (seed 004): the invoice is booked in the account's */
    const char *acct = ixc(tc)->account_currency;
    if (inv->currency && strcasecmp(inv->currency, acct) != 0)
        FAIL("invoice.currency: %.8s is not the account's currency %.8s (account_currency); "
             "InvoiceXpress takes no currency and would book the amounts as %.8s",
             inv->currency, acct, acct);
    if (inv->retention_pct.set && (iw_decimal_sign(inv->retention_pct.value) < 0 ||
                                   iw_decimal_cmp(inv->retention_pct.value, max_retention) > 0))
        FAIL("invoice.retention_pct: must be between 0 and 99.99");
    if (blank(inv->customer.name))
        FAIL("invoice.customer.name: required (the client name)");
    if (inv->customer.email && !email_ok(inv->customer.email))
        FAIL("invoice.customer.email: not a valid e-mail address");
    if (inv->issue_date && inv->due_date && strcmp(inv->due_date, inv->issue_date) < 0)
        FAIL("invoice.due_date: %s is before issue_date %s", inv->due_date, inv->issue_date);
    if (inv->billing_address.country && !country_name(tc, inv->billing_address.country))
        FAIL("invoice.billing_address.country: no InvoiceXpress country name for \"%.8s\" (add it "
             "to the "
             "instance's \"countries\")",
             inv->billing_address.country);
    for (size_t i = 0; i < inv->n_lines; i++) {
        int rc = validate_line(&inv->lines[i], i, tc, errbuf, errlen);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < inv->n_extra_charges; i++) {
        int rc = validate_charge(&inv->extra_charges[i], i, errbuf, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The mapping. */

/* Computed values: the rules of seed 004 and the instance's settings (ctx is the target). */

/* client/country: the English name InvoiceXpress matches for the ISO code. */
static const char *client_country(const iw_event *ev, const void *elem, size_t index,
                                  const void *ctx, char *buf, size_t len)
{
    return country_name(ctx, ev->invoice.billing_address.country);
}

/* item/unit: the line's unit, else the instance's default_unit. */
static const char *item_unit(const iw_event *ev, const void *elem, size_t index, const void *ctx,
                             char *buf, size_t len)
{
    return line_unit(elem, ctx);
}

/* The unit of an extra charge sent as an item: the instance's default_unit. */
static const char *charge_unit(const iw_event *ev, const void *elem, size_t index,
                               const void *ctx, char *buf, size_t len)
{
    return default_unit(ctx);
}

/* item/tax/name: the line's tax name (see line_tax_name); no <tax> when none. */
static const char *item_tax_name(const iw_event *ev, const void *elem, size_t index,
                                 const void *ctx, char *buf, size_t len)
{
    return line_tax_name(elem, ctx);
}

/* item/discount: the API's discount is a percentage (see line_discount). */
static const char *item_discount(const iw_event *ev, const void *elem, size_t index,
                                 const void *ctx, char *buf, size_t len)
{
    iw_amount pct;
    if (line_discount(elem, &pct) != 0 || !pct.set)
        return NULL; /* an inexact percentage is refused by validate first */
    iw_decimal_format(pct.value, buf, len);
    return buf;
}

/* An extra charge is sent only when it bills something (the API wants unit_price > 0). */
static const char *charge_billed(const iw_event *ev, const void *elem, size_t index,
                                 const void *ctx, char *buf, size_t len)
{
    const iw_extra_charge *c = elem;
    return c->amount.set && iw_decimal_sign(c->amount.value) > 0 ? "" : NULL;
}

/* The item name of an extra charge: its description, else its key. */
static const char *charge_name(const iw_event *ev, const void *elem, size_t index,
                               const void *ctx, char *buf, size_t len)
{
    const iw_extra_charge *c = elem;
    return !blank(c->description) ? c->description : c->key;
}

static const iw_map_fn ix_fns[] = {
    {"country", client_country},   {"unit", item_unit},         {"charge_unit", charge_unit},
    {"tax_name", item_tax_name},   {"discount", item_discount}, {"charge_billed", charge_billed},
    {"charge_name", charge_name},  {NULL, NULL},
};

/* The mapping, in the dialect of a generic target's mapping file (docs/adapters.md) plus the
 * computed values above, read once by the mapping engine. The seed's element order; absent
 * sources leave their element out (all are optional in the API except client/name and the
 * item fields validate() insists on). Dates are dd/mm/yyyy. The client's address is the
 * address lines and the city, one per text line (the client has no city element).
 * client/observations is not sent: the seed (line 99) says it is added to the observations of
 * every invoice of the client, so customer.notes (internal notes such as "VIP") would be
 * printed on invoices. Extra charges (shipping, handling) are items too: every update replaces
 * all items (seed lines 5, 103), so a charge left out would be deleted; a charge is its name,
 * its amount as unit_price, quantity 1, the default unit and no tax (the model carries none
 * for charges). J() turns the JSON written below into a string literal. */
#define J(...) #__VA_ARGS__

/* clang-format off */
static iw_map_builtin ix_map = IW_MAP_BUILTIN_FNS("invoicexpress", J(
{"dialect": "xml", "root": {"name": "invoice", "children": [
  {"name": "date", "path": "invoice.issue_date", "format": "date", "pattern": "DD/MM/YYYY"},
  {"name": "due_date", "path": "invoice.due_date", "format": "date", "pattern": "DD/MM/YYYY"},
  {"name": "reference", "path": "invoice.po_number"},
  {"name": "observations", "path": "invoice.note_public"},
  {"name": "retention", "path": "invoice.retention_pct", "format": "decimal"},
  {"name": "client", "children": [
    {"name": "name", "path": "invoice.customer.name"},
    {"name": "email", "path": "invoice.customer.email"},
    {"name": "address", "join": "\n", "path": [
      "invoice.billing_address.line1", "invoice.billing_address.line2",
      "invoice.billing_address.line3", "invoice.billing_address.city"]},
    {"name": "postal_code", "path": "invoice.billing_address.postal_code"},
    {"name": "country", "compute": "country"},
    {"name": "fiscal_id", "path": "invoice.customer.fiscal_id"},
    {"name": "website", "path": "invoice.customer.website"},
    {"name": "phone", "path": "invoice.customer.phone"},
    {"name": "fax", "path": "invoice.customer.fax"}]},
  {"name": "items", "attributes": {"type": "array"}, "children": [
    {"name": "item", "each": "invoice.lines", "children": [
      {"name": "name", "path": "lines[].name"},
      {"name": "description", "path": "lines[].description"},
      {"name": "unit_price", "path": "lines[].unit_price", "format": "decimal"},
      {"name": "quantity", "path": "lines[].quantity", "format": "decimal"},
      {"name": "unit", "compute": "unit"},
      {"name": "tax", "if": {"computed": "tax_name"}, "children": [
        {"name": "name", "compute": "tax_name"}]},
      {"name": "discount", "compute": "discount"}]},
    {"name": "item", "each": "invoice.extra_charges", "if": {"computed": "charge_billed"},
     "children": [
      {"name": "name", "compute": "charge_name"},
      {"name": "unit_price", "path": "extra_charges[].amount", "format": "decimal"},
      {"name": "quantity", "value": "1"},
      {"name": "unit", "compute": "charge_unit"}]}]}]}}), ix_fns);
/* clang-format on */

/* Appends s percent-encoded (RFC 3986 unreserved characters kept) to out; out must hold
 * 3 * strlen(s) + 1 bytes. */
static void url_escape(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    *out = '\0';
}

/* Builds <base>/invoices/<id>.xml?api_key=<escaped key> and records the key (and its escaped
 * form) as secrets. */
static int build_url(iw_request *r, const iw_target_conf *tc, const char *id, char *errbuf,
                     size_t errlen)
{
    const char *api_key = ixc(tc)->api_key;
    if (!tc->url || !*tc->url)
        FAIL("invoicexpress: url (the account's base URL) is not configured");
    if (!api_key || !*api_key)
        FAIL("invoicexpress: api_key is not configured");
    size_t blen = strlen(tc->url);
    while (blen > 0 && tc->url[blen - 1] == '/')
        blen--;
    char *key = malloc(3 * strlen(api_key) + 1);
    size_t n = blen + strlen(id) + 3 * strlen(api_key) + 32;
    char *url = malloc(n);
    if (!key || !url) {
        free(key);
        free(url);
        FAIL("out of memory");
    }
    url_escape(api_key, key);
    snprintf(url, n, "%.*s/invoices/%s.xml?api_key=%s", (int)blen, tc->url, id, key);
    r->url = url;
    int rc = iw_request_add_secret(r, api_key) || iw_request_add_secret(r, key);
    free(key);
    if (rc)
        FAIL("out of memory");
    return 0;
}

static int ix_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                     iw_request *out, char *errbuf, size_t errlen)
{
    int rc = ix_validate(ev, tc, errbuf, errlen);
    if (rc)
        return rc;
    const iw_map *map = iw_map_builtin_get(&ix_map, errbuf, errlen);
    if (!map)
        return IW_EINVAL;
    snprintf(out->method, sizeof(out->method), "PUT");
    if ((rc = build_url(out, tc, ev->invoice.target_refs.invoicexpress_id, errbuf, errlen)))
        goto fail;
    if (iw_request_add_header(out, "Content-Type", "application/xml; charset=utf-8") ||
        iw_request_add_header(out, "Accept", "application/xml")) {
        snprintf(errbuf, errlen, "out of memory");
        rc = IW_ENOMEM;
        goto fail;
    }

    iw_xw x;
    iw_xw_begin(&x, iw_wbuf_scratch(), true);
    if ((rc = iw_map_write_xml(map, ev, tc, &x, errbuf, errlen)))
        goto fail;
    iw_xw_finish(&x);
    if ((rc = iw_request_set_body_from(out, x.b, errbuf, errlen)))
        goto fail;
    return 0;
fail:
    iw_request_clear(out);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading replies. */

/* n's whole text without the white space and no-break spaces around it, cut to fit one (never
 * inside a character); *settled is set when the whole text says the invoice is settled. */
static void error_text(xmlNodePtr n, char *one, size_t len, bool *settled)
{
    one[0] = '\0';
    xmlChar *all = xmlNodeGetContent(n);
    if (!all)
        return;
    const char *p = (const char *)all;
    size_t l = strlen(p);
    for (;;) {
        if (l && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++, l--;
        else if (l >= 2 && memcmp(p, "\xC2\xA0", 2) == 0)
            p += 2, l -= 2;
        else if (l && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r' || p[l - 1] == '\n'))
            l--;
        else if (l >= 2 && memcmp(p + l - 2, "\xC2\xA0", 2) == 0)
            l -= 2;
        else
            break;
    }
    if (strcasestr(p, "settled"))
        *settled = true;
    iw_text_clean_copy(one, len, p, l); /* cut where a character ends */
    xmlFree(all);
}

/* Joins the <error> texts of an <errors> document with "; " into buf. Returns the number of
 * errors read (0 when root is not <errors>); *settled is set when one says the invoice is
 * settled (the seed's own error text, seed 004 line 139). An <errors> that holds text but no
 * <error> (in itself or in other elements) is one error, its text the message: a list with no
 * text (<errors/>, white space, no-break spaces or empty elements alone) says none. */
static int errors_of(xmlNodePtr root, char *buf, size_t len, bool *settled)
{
    char one[256];
    size_t used = 0;
    int n = 0;
    buf[0] = '\0';
    *settled = false;
    if (root && strcmp((const char *)root->name, "error") == 0) { /* one, outside a list */
        error_text(root, one, sizeof(one), settled);
        iw_text_clean_copy(buf, len, one, strlen(one));
        return *one ? 1 : 0;
    }
    if (!root || strcmp((const char *)root->name, "errors") != 0)
        return 0;
    for (xmlNodePtr c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "error") != 0)
            continue;
        error_text(c, one, sizeof(one), settled);
        if (used + 1 < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", n ? "; " : "", one);
        n++;
    }
    if (n == 0) {
        error_text(root, one, sizeof(one), settled);
        if (!*one) /* no text: white space, no-break spaces or empty elements alone */
            return 0;
        used = (size_t)snprintf(buf, len, "%s", one);
        n = 1;
    }
    if (used >= len)
        used = len - 1;
    iw_text_clean_copy(buf, len, buf, used); /* drop a cut UTF-8 tail */
    return n;
}

/* Parses the reply as XML unless it is empty or an HTML page; NULL otherwise, with why in err
 * (when given) if the parser refused it. */
static xmlDocPtr parse_reply(const iw_response *resp, char *err, size_t errlen)
{
    char own[128];
    if (!err)
        err = own, errlen = sizeof(own);
    err[0] = '\0';
    if (!resp->body || resp->body_len == 0 || iw_text_looks_html(resp->body, resp->body_len))
        return NULL;
    return iw_xml_parse(resp->body, resp->body_len, err, errlen);
}

static int read_errors(const iw_response *resp, char *buf, size_t len, bool *settled)
{
    buf[0] = '\0';
    *settled = false;
    xmlDocPtr doc = parse_reply(resp, NULL, 0);
    if (!doc)
        return 0;
    int n = errors_of(xmlDocGetRootElement(doc), buf, len, settled);
    xmlFreeDoc(doc);
    return n;
}

/* Reads <invoice><id> into ref (left "" when there is none or it is not a number). */
static void invoice_id_of(xmlNodePtr root, char *ref, size_t len)
{
    ref[0] = '\0';
    for (xmlNodePtr c = root->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "id") == 0) {
            char tmp[128];
            iw_xml_text(c, tmp, sizeof(tmp));
            if (all_digits(tmp))
                snprintf(ref, len, "%s", tmp);
            break;
        }
}

/* True when the body holds nothing but white space. */
static bool blank_body(const iw_response *resp)
{
    for (size_t i = 0; resp->body && i < resp->body_len; i++)
        if (!isspace((unsigned char)resp->body[i]))
            return false;
    return true;
}

/* Sets the message with the api_key masked (a reply may echo the URL). */
static void set_message(const iw_target_conf *tc, long status, iw_outcome *out,
                        const char *fmt_what, const char *detail)
{
    char raw[sizeof(out->message)];
    snprintf(raw, sizeof(raw), "HTTP %ld: %s%s%s", status, fmt_what, detail[0] ? ": " : "", detail);
    char *secrets[2];
    size_t n = 0;
    char *esc = NULL;
    const char *api_key = ixc(tc)->api_key;
    if (api_key && *api_key) {
        secrets[n++] = (char *)api_key;
        if ((esc = malloc(3 * strlen(api_key) + 1))) {
            url_escape(api_key, esc);
            secrets[n++] = esc;
        }
    }
    char *m = iw_mask_secrets(raw, strlen(raw), secrets, n);
    iw_text_clean_copy(out->message, sizeof(out->message), m ? m : "(message dropped)",
                       m ? strlen(m) : 17);
    free(m);
    free(esc);
}

/* Whether a key or a string anywhere in j holds a secret of tc once read. */
static bool json_holds_secret(const iw_target_conf *tc, const cJSON *j)
{
    for (; j; j = j->next) {
        if ((j->string && iw_secrets_reply_holds(tc, j->string, strlen(j->string))) ||
            (cJSON_IsString(j) && j->valuestring &&
             iw_secrets_reply_holds(tc, j->valuestring, strlen(j->valuestring))) ||
            json_holds_secret(tc, j->child))
            return true;
    }
    return false;
}

/* True when the body is one well-formed JSON value (another API's answer, not a cut reply);
 * detail gets its first 160 bytes as they came, or nothing when a string in it holds a secret
 * once read (a \u escape in it is no recorded form, and the cut could split it). */
static bool json_reply(const iw_target_conf *tc, const iw_response *resp, char *detail, size_t size)
{
    cJSON *j = iw_json_reply_parse(resp->body, resp->body_len);
    if (!j)
        return false;
    if (json_holds_secret(tc, j))
        snprintf(detail, size, "%s", "(it quotes a secret of this target, so it is withheld)");
    else
        iw_text_clean_copy(detail, size, resp->body, resp->body_len < 160 ? resp->body_len : 160);
    cJSON_Delete(j);
    return true;
}

/* A 2xx reply. The seed shows no success body (seed 004 lines 133-134); the API answers
 * either nothing or the invoice as XML. Success is only that: an empty body, or an XML
 * document whose root is <invoice> (its <id> becomes target_ref) with no <error> in it.
 * Anything else is not a success: the seed's <errors> document is a refusal even with a 2xx
 * (permanent, the settled text coded "settled"), and so is an <invoice> that carries one; an HTML
 * or XHTML page is a proxy's or maintenance page (retry: the update is unconfirmed and re-sending
 * the same full state is harmless); a reply that is not well-formed (cut short) is retried for the
 * same reason; a well-formed reply of another shape (JSON, a SOAP Fault, another root) is what some
 * other service answers and is refused with its own text, since resending cannot change it. */
/* The first element at or below the siblings from n on that holds errors (errors_of > 0). */
static xmlNodePtr errors_within(xmlNodePtr n, char *detail, size_t len)
{
    bool settled;
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (errors_of(n, detail, len, &settled) > 0)
            return n;
        xmlNodePtr inner = errors_within(n->children, detail, len);
        if (inner)
            return inner;
    }
    return NULL;
}

static void judge_2xx(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    char detail[200];
    bool settled;
    if (blank_body(resp))
        return; /* OK, no id */
    out->retry_after_ms = -1;
    if (iw_text_looks_html(resp->body, resp->body_len)) {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_REMOTE, "html", "%s", "");
        set_message(tc, resp->status, out,
                    "HTML page instead of an API reply; update not confirmed", "");
        return;
    }
    char why[128];
    xmlDocPtr doc = parse_reply(resp, why, sizeof(why));
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    const char *name = root ? (const char *)root->name : "";
    bool invoice = root && strcmp(name, "invoice") == 0;
    xmlNodePtr errors = root && strcmp(name, "errors") == 0 ? root : NULL;
    /* an invoice that carries errors, at any depth (<errors> or a lone <error>); an empty list
     * (a serializer's <errors/>) says none */
    if (invoice)
        errors = errors_within(root->children, detail, sizeof(detail));
    if (invoice && !errors && !root->ns) {
        invoice_id_of(root, out->target_ref, sizeof(out->target_ref));
    } else if (errors) {
        int n = errors_of(errors, detail, sizeof(detail), &settled);
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, settled ? "settled" : "errors",
                       "%s", "");
        set_message(tc, resp->status, out,
                    settled ? "invoice is settled" : "errors in a success reply",
                    n ? detail : "(empty error list)");
    } else if (root && iw_text_html_root(name)) { /* XHTML, or a proxy's <h1> (review 99) */
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_REMOTE, "html", "%s", "");
        set_message(tc, resp->status, out,
                    strcasecmp(name, "html") == 0
                        ? "XHTML page instead of an API reply; update not confirmed"
                        : "HTML page instead of an API reply; update not confirmed",
                    "");
    } else if (root) {
        iw_xml_text(root, detail, sizeof(detail));
        char what[96];
        snprintf(what, sizeof(what), "unexpected <%.40s> reply, not an InvoiceXpress invoice",
                 name);
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "unexpected-reply", "%s", "");
        set_message(tc, resp->status, out, what, detail);
    } else if (json_reply(tc, resp, detail, sizeof(detail))) {
        iw_outcome_set(out, IW_OUTCOME_PERMANENT, IW_ERR_REMOTE, "unexpected-reply", "%s", "");
        set_message(tc, resp->status, out, "JSON reply, not an InvoiceXpress invoice", detail);
    } else {
        iw_outcome_set(out, IW_OUTCOME_RETRY, IW_ERR_TRANSPORT, "unreadable", "%s", "");
        set_message(tc, resp->status, out, "reply is not readable XML; update not confirmed", why);
    }
    if (doc)
        xmlFreeDoc(doc);
}

static void ix_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    char detail[200];
    bool settled;
    long st = resp->status;
    iw_outcome_from_status(resp, out);

    if (out->kind == IW_OUTCOME_OK) {
        judge_2xx(tc, resp, out);
        return;
    }
    int n = read_errors(resp, detail, sizeof(detail), &settled);
    if (n == 0) {
        const char *why = !resp->body || resp->body_len == 0               ? ""
                          : iw_text_looks_html(resp->body, resp->body_len) ? "HTML error page"
                                                                           : "unreadable body";
        snprintf(detail, sizeof(detail), "%s", why);
    }
    switch (st) {
    case 401: set_message(tc, resp->status, out, "API key missing or wrong", detail); break;
    case 404: set_message(tc, resp->status, out, "invoice not found", detail); break;
    case 406: set_message(tc, resp->status, out, "request format not acceptable", detail); break;
    case 422:
        if (settled) {
            /* a state conflict, not a bad request: the invoice can no longer change */
            snprintf(out->code, sizeof(out->code), "settled");
            set_message(tc, resp->status, out, "invoice is settled", detail);
        } else {
            set_message(tc, resp->status, out,
                        n ? "invalid invoice" : "invalid invoice (no error list)", detail);
        }
        break;
    case 429: set_message(tc, resp->status, out, "rate limited", detail); break;
    default:
        set_message(tc, resp->status, out,
                    out->kind == IW_OUTCOME_RETRY ? "server error" : "request refused", detail);
        break;
    }
}

/* ------------------------------------------------------------------ config */

/* "tax_names": {"23": "IVA23", ...}, a tax rate (compared by value) -> the account's tax name. */
static void parse_tax_names(iw_conf_reader *rd, const cJSON *tn, const char *path, void *conf)
{
    iw_ix_conf *ix = conf;
    if (!cJSON_IsObject(tn)) {
        iw_conf_error(rd, path, "expected an object");
        return;
    }
    ix->tax_names = calloc((size_t)cJSON_GetArraySize(tn) + 1, sizeof(*ix->tax_names));
    if (!ix->tax_names)
        return;
    for (const cJSON *c = tn->child; c; c = c->next) {
        char ipath[224];
        snprintf(ipath, sizeof(ipath), "%s.%s", path, c->string);
        iw_decimal d;
        if (iw_decimal_parse(c->string, &d) != 0) {
            iw_conf_error(rd, ipath, "the key must be a tax rate such as \"23\" or \"7.5\"");
            continue;
        }
        if (!cJSON_IsString(c) || !*c->valuestring) {
            iw_conf_error(rd, ipath, "expected a tax name string");
            continue;
        }
        iw_tax_name *row = &ix->tax_names[ix->n_tax_names++];
        row->rate = strdup(c->string);
        row->name = strdup(c->valuestring);
    }
}

static void free_tax_names(void *conf)
{
    iw_ix_conf *ix = conf;
    for (size_t i = 0; i < ix->n_tax_names; i++) {
        free(ix->tax_names[i].rate);
        free(ix->tax_names[i].name);
    }
    free(ix->tax_names);
}

/* "countries": {"KR": "South Korea", ...}, ISO codes the built-in table lacks, or names the
 * account spells otherwise. */
static void parse_countries(iw_conf_reader *rd, const cJSON *v, const char *path, void *conf)
{
    iw_ix_conf *ix = conf;
    if (!cJSON_IsObject(v)) {
        iw_conf_error(rd, path, "expected an object of ISO country codes and names");
        return;
    }
    ix->countries = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*ix->countries));
    if (!ix->countries)
        return;
    for (const cJSON *c = v->child; c; c = c->next) {
        char ipath[224];
        snprintf(ipath, sizeof(ipath), "%s.%.8s", path, c->string);
        if (strlen(c->string) != 2 || !isalpha((unsigned char)c->string[0]) ||
            !isalpha((unsigned char)c->string[1])) {
            iw_conf_error(rd, ipath, "the key must be a two-letter ISO 3166-1 code");
            continue;
        }
        if (!cJSON_IsString(c) || !*c->valuestring || iw_text_header_problem(c->valuestring)) {
            iw_conf_error(rd, ipath, "expected the country's name as InvoiceXpress spells it");
            continue;
        }
        iw_ix_country *row = &ix->countries[ix->n_countries++];
        row->code = strdup(c->string);
        row->name = strdup(c->valuestring);
    }
}

static void free_countries(void *conf)
{
    iw_ix_conf *ix = conf;
    for (size_t i = 0; i < ix->n_countries; i++) {
        free(ix->countries[i].code);
        free(ix->countries[i].name);
    }
    free(ix->countries);
}

/* The event's currency is an ISO 4217 code, 3 upper-case letters, matched without case: any
 * other text refused every event (review 100: "euro", ""). */
static const char *currency_check(const char *value)
{
    bool ok = strlen(value) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = isalpha((unsigned char)value[i]) && (unsigned char)value[i] < 0x80;
    return ok ? NULL : "expected a currency code, 3 letters (ISO 4217, EUR)";
}

static const iw_conf_field ix_fields[] = {
    {.key = "api_key",
     .kind = IW_CONF_SECRET,
     .off = offsetof(iw_ix_conf, api_key),
     .wire = true,
     .required = "the account's API key every call carries"},
    IW_CONF_STR("default_unit", IW_CONF_TEXT, iw_ix_conf, default_unit, "unit", false),
    IW_CONF_STRINGS("accepted_units", iw_ix_conf, accepted_units, n_accepted_units),
    {.key = "tax_names", .kind = IW_CONF_CUSTOM, .parse = parse_tax_names, .free = free_tax_names},
    {.key = "countries", .kind = IW_CONF_CUSTOM, .parse = parse_countries, .free = free_countries},
    {.key = "account_currency",
     .kind = IW_CONF_TEXT,
     .off = offsetof(iw_ix_conf, account_currency),
     .seed = "EUR",
     .check = currency_check},
    {0},
};

/* The account's base URL: /invoices/{id}.xml?api_key=... is appended to it, so a query of its
 * own would carry that path and the key as query text to the account's root. */
static const char *ix_check_url(const char *url)
{
    return strchr(url, '?') ? "expected the account's base URL without a ?query (the invoice's "
                              "path and api_key are appended to it)"
                            : NULL;
}

static const iw_conf_adapter ix_conf = {
    .type = "invoicexpress",
    .check_url = ix_check_url,
    /* guess: accounts live under <account>.app.invoicexpress.com; /invoices/{id}.xml is appended */
    .url = "https://ACCOUNT.app.invoicexpress.com",
    .size = sizeof(iw_ix_conf),
    .fields = ix_fields,
    /* Portugal's VAT rates, as an example */
    .placeholders = "{\"api_key\": \"API-KEY\", "
                    "\"tax_names\": {\"23\": \"IVA23\", \"13\": \"IVA13\", \"6\": \"IVA6\"}}",
};

const iw_target_ops iw_target_invoicexpress = {
    .type = "invoicexpress",
    .conf = &ix_conf,
    .validate = ix_validate,
    .render = ix_render,
    .classify = ix_classify,
    .render_refresh = NULL, /* api_key auth: nothing to refresh */
    .parse_refresh = NULL,
};
