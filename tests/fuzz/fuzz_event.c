/* fuzz_event.c: iw_event_parse on arbitrary bytes; an event that parses is then validated and
 * rendered by every adapter, so hostile field contents reach the renderers too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "invoice.h"
#include "target.h"
#include "fuzz_utf8.h"

static iw_config *defaults;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!defaults && !(defaults = iw_config_defaults()))
        abort();
    iw_event *ev = NULL;
    char err[256];
    err[0] = '\0';
    int rc = iw_event_parse((const char *)data, size, &ev, err, sizeof(err));
    if (rc != 0) {
        if (ev || !err[0])
            iw_fuzz_fail("a refused event must leave no event and say why", err, sizeof(err));
        IW_FUZZ_REQUIRE_UTF8("the parse error", err, sizeof(err));
        return 0;
    }
    if (!ev)
        abort();
    for (size_t i = 0; i < defaults->n_targets; i++) {
        const iw_target_conf *tc = &defaults->targets[i];
        const iw_target_ops *ops = iw_target_find(tc->type);
        if (!ops)
            abort();
        char verr[256] = "";
        if (iw_target_validate(ops, ev, tc, verr, sizeof(verr)) != 0) {
            /* validation messages end up in results and dead letters */
            IW_FUZZ_REQUIRE_UTF8("a validation message", verr, sizeof(verr));
            continue;
        }
        iw_request req;
        memset(&req, 0, sizeof(req));
        iw_render_ctx ctx = {.state = NULL};
        int rrc = iw_target_render(ops, ev, tc, &ctx, &req, verr, sizeof(verr));
        if (rrc != 0)
            IW_FUZZ_REQUIRE_UTF8("a render error", verr, sizeof(verr));
        if (rrc == 0) {
            if (!req.url || (req.body_len && (!req.body || req.body[req.body_len] != '\0')))
                iw_fuzz_fail("a rendered request has a URL and a NUL-terminated body", NULL, 0);
            char *shown = iw_request_format_masked(&req);
            free(shown);
        }
        iw_request_clear(&req);
    }
    iw_event_free(ev);
    return 0;
}
