/* placeholders_rest.c: TEMPORARY scaffolding so the tree links while the adapters are written.
 * Each adapter's owner deletes its symbols from here when its real file lands. */
#include <stdio.h>
#include "status.h"
#include "target.h"

static int none_render(const iw_event *ev, const iw_target_conf *tc, const iw_render_ctx *ctx,
                       iw_request *out, char *errbuf, size_t errlen)
{
    snprintf(errbuf, errlen, "adapter %s not built yet", tc->type);
    return IW_EINVAL;
}

static void none_classify(const iw_target_conf *tc, const iw_response *resp, iw_outcome *out)
{
    iw_outcome_from_status(resp, out);
}

const iw_target_ops iw_target_midnight = {"midnight", NULL, none_render, none_classify, NULL, NULL};
const iw_target_ops iw_target_invoicexpress = {"invoicexpress", NULL, none_render, none_classify, NULL, NULL};
