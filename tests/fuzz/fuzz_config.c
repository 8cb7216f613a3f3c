/* fuzz_config.c: iw_config_parse on arbitrary text; every problem it reports is NUL-terminated
 * and a config that loads can be freed. Relative *_file paths resolve under a directory that
 * does not exist, so the fuzzer reads no files of its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    char *json = malloc(size + 1);
    if (!json)
        return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    iw_config_errors errs;
    memset(&errs, 0, sizeof(errs));
    iw_config *cfg = iw_config_parse(json, "/nonexistent-iw-fuzz", &errs);
    if (cfg) {
        for (size_t i = 0; i < cfg->n_targets; i++)
            if (!cfg->targets[i].name || !cfg->targets[i].type)
                abort(); /* a loaded target has a name and a type */
        for (size_t i = 0; i < cfg->n_routes; i++)
            (void)iw_config_route(cfg, cfg->routes[i].tenant);
        iw_config_free(cfg);
    } else {
        if (errs.count == 0)
            abort(); /* a refusal names at least one problem */
        size_t shown = errs.count < 64 ? errs.count : 64;
        for (size_t i = 0; i < shown; i++)
            if (strnlen(errs.items[i].path, sizeof(errs.items[i].path)) ==
                    sizeof(errs.items[i].path) ||
                strnlen(errs.items[i].message, sizeof(errs.items[i].message)) ==
                    sizeof(errs.items[i].message))
                abort();
    }
    free(json);
    return 0;
}
