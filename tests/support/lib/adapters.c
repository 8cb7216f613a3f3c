/* adapters.c: the built-in adapter types the test suites run (adapters.h). */
#include "adapters.h"

#include <stdlib.h>
#include <string.h>

#include "target.h"

/* Adapter types defined by a mapping file: no instance of theirs works without one. */
static const char *const BY_MAPPING[] = {"generic"};

static int by_mapping(const char *type)
{
    for (size_t i = 0; i < sizeof(BY_MAPPING) / sizeof(BY_MAPPING[0]); i++)
        if (strcmp(type, BY_MAPPING[i]) == 0)
            return 1;
    return 0;
}

const char *iw_t_adapter(size_t i)
{
    for (size_t k = 0; iw_targets_all[k]; k++) {
        if (by_mapping(iw_targets_all[k]->type))
            continue;
        if (i-- == 0)
            return iw_targets_all[k]->type;
    }
    return NULL;
}

size_t iw_t_adapter_count(void)
{
    size_t n = 0;
    while (iw_t_adapter(n))
        n++;
    return n;
}

const char *iw_t_adapter_list(void)
{
    static char list[2048];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; iw_t_adapter(i); i++) {
        const char *t = iw_t_adapter(i);
        size_t tl = strlen(t);
        if (len + tl + 2 > sizeof(list))
            abort(); /* more adapters than the buffer holds */
        if (len)
            list[len++] = ',';
        memcpy(list + len, t, tl + 1);
        len += tl;
    }
    return list;
}
