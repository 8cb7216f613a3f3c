/* registry.c: the built-in adapters, and the config loader given their config parts. */
#include <string.h>

#include "status.h"
#include "target.h"

/* The built-in adapters, in listing order, one line each: X(NAME) names the table
 * `const iw_target_ops iw_target_NAME` that NAME's own file defines. Adding an adapter is one
 * line here; nothing else outside its file names it. */
/* clang-format off */
#define IW_BUILTIN_ADAPTERS(X)                                                                     \
    X(centra_soap)                                                                                 \
    X(centra_navision)                                                                             \
    X(midnight)                                                                                    \
    X(ebizcharge)                                                                                  \
    X(invoicexpress)                                                                               \
    X(webhook)                                                                                     \
    X(generic) /* defined by a mapping file (generic.h) */
/* clang-format on */

#define DECLARE(name) IW_TARGET_OPS(name);
#define ENTRY(name) &iw_target_##name,

IW_BUILTIN_ADAPTERS(DECLARE)

const iw_target_ops *const iw_targets_all[] = {IW_BUILTIN_ADAPTERS(ENTRY) NULL};

const iw_target_ops *iw_target_find(const char *type)
{
    if (!type)
        return NULL;
    for (size_t i = 0; iw_targets_all[i]; i++)
        if (strcmp(iw_targets_all[i]->type, type) == 0)
            return iw_targets_all[i];
    return NULL;
}

const iw_conf_adapter *iw_targets_conf(size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (!iw_targets_all[k])
            return NULL;
    return iw_targets_all[i] ? iw_targets_all[i]->conf : NULL;
}

iw_config *iw_config_load(const char *path, iw_config_errors *errs)
{
    return iw_config_load_with(path, iw_targets_conf, errs);
}

iw_config *iw_config_parse_n(const char *json, size_t len, const char *base_dir,
                             iw_config_errors *errs)
{
    return iw_config_parse_with(json, len, base_dir, iw_targets_conf, errs);
}

iw_config *iw_config_parse(const char *json, const char *base_dir, iw_config_errors *errs)
{
    return iw_config_parse_n(json ? json : "", json ? strlen(json) : 0, base_dir, errs);
}

iw_config *iw_config_defaults(void)
{
    return iw_config_defaults_with(iw_targets_conf);
}

int iw_target_conf_defaults(iw_target_conf *t, const char *type)
{
    const iw_target_ops *ops = iw_target_find(type);
    return ops ? iw_target_conf_seed(t, ops->conf) : IW_ENOTFOUND;
}
