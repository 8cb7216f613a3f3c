/* invoicexpress.h: the settings of an invoicexpress instance, its keys in a target's config
 * (read by the loader from the field table in invoicexpress.c). */
#ifndef IW_INVOICEXPRESS_H
#define IW_INVOICEXPRESS_H

#include "target.h"

IW_TARGET_OPS(invoicexpress); /* defined in invoicexpress.c */

/* One "rate -> tax name" row of the account's tax table ("23" -> "IVA23"). */
typedef struct iw_tax_name {
    char *rate; /* decimal text, compared by value */
    char *name;
} iw_tax_name;

/* One "ISO code -> country name" row the instance adds to the built-in table. */
typedef struct iw_ix_country {
    char *code; /* two letters, compared without case */
    char *name; /* the name InvoiceXpress matches */
} iw_ix_country;

typedef struct iw_ix_conf {
    char *api_key;         /* secret: the api_key query parameter */
    char *default_unit;    /* unit when a line has none (default "unit") */
    char **accepted_units; /* accepted unit names; NULL = the built-in list */
    size_t n_accepted_units;
    iw_tax_name *tax_names; /* tax rate -> tax name */
    size_t n_tax_names;
    iw_ix_country *countries; /* "countries": added to (or replacing rows of) the built-in table */
    size_t n_countries;
    char *account_currency; /* the account's currency (default "EUR"); the API takes no
                               currency, so an invoice in another one is refused */
} iw_ix_conf;

/* The invoicexpress settings of tc. */
static inline iw_ix_conf *iw_ix_conf_of(const iw_target_conf *tc)
{
    return tc->adapter_conf;
}

#endif
