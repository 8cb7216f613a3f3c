/* fuzz_config.c: the config loader on arbitrary bytes, with the event parser's harness: a
 * refusal names at least one problem in UTF-8; a config that loads has valid, distinct instance
 * names, and every request its targets render for the complete fixture event passes the wire
 * check (no value from the config can split a header). Relative *_file paths resolve under a
 * directory that does not exist, so the fuzzer reads no files of its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "invoice.h"
#include "target.h"
#include "wire.h"
#include "fuzz_utf8.h"

static const char EVENT[] =
    "{\"schema\":\"invoice-event/v1\",\"event_id\":\"E1\",\"type\":\"invoice.updated\","
    "\"tenant\":\"acme\",\"version\":1,\"invoice\":{\"id\":\"INV-1\",\"number\":\"N1\","
    "\"currency\":\"EUR\",\"issue_date\":\"2026-11-21\",\"due_date\":\"2026-12-21\","
    "\"total\":\"10.00\",\"customer\":{\"name\":\"ACME\"},\"target_refs\":{\"centra_id\":\"1\","
    "\"midnight_guid\":\"g\",\"ebiz_internal_id\":\"2\",\"invoicexpress_id\":\"3\"},"
    "\"lines\":[{\"line_no\":1,\"name\":\"Pen\",\"quantity\":\"1\",\"unit_price\":\"10.00\","
    "\"unit\":\"unit\",\"tax_rate\":\"0\",\"line_total\":\"10.00\"}]}}";

static iw_event *event;

static void check_loaded(const iw_config *cfg)
{
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const iw_target_conf *tc = &cfg->targets[i];
        if (!tc->name || !tc->type)
            iw_fuzz_fail("a loaded target has a name and a type", NULL, 0);
        for (size_t k = 0; k < i; k++)
            if (strcmp(cfg->targets[k].name, tc->name) == 0)
                iw_fuzz_fail("instance names are distinct", tc->name, strlen(tc->name) + 1);
        const iw_target_ops *ops = iw_target_find(tc->type);
        if (!ops)
            iw_fuzz_fail("a loaded target has a known type", tc->type, strlen(tc->type) + 1);
        iw_request req;
        memset(&req, 0, sizeof(req));
        iw_render_ctx ctx = {.state = NULL};
        char err[256] = "";
        if (iw_target_render(ops, event, tc, &ctx, &req, err, sizeof(err)) == 0) {
            if (iw_request_add_call_headers(&req, event->event_id, tc->name, 1, 1, NULL) == 0 &&
                iw_wire_check(&req, err, sizeof(err)) != 0)
                iw_fuzz_fail("a loaded config renders requests the wire check accepts", err,
                             sizeof(err));
        } else {
            IW_FUZZ_REQUIRE_UTF8("a render error", err, sizeof(err));
        }
        iw_request_clear(&req);
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        (void)iw_config_route(cfg, cfg->routes[i].tenant);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    char err[256];
    if (!event && iw_event_parse(EVENT, strlen(EVENT), &event, err, sizeof(err)) != 0)
        iw_fuzz_fail("the fixed event parses", err, sizeof(err));
    iw_config_errors errs;
    memset(&errs, 0, sizeof(errs));
    iw_config *cfg = iw_config_parse_n((const char *)data, size, "/nonexistent-iw-fuzz", &errs);
    if (cfg) {
        check_loaded(cfg);
        iw_config_free(cfg);
        return 0;
    }
    if (errs.count == 0)
        iw_fuzz_fail("a refusal names at least one problem", NULL, 0);
    size_t shown = errs.count < 64 ? errs.count : 64;
    for (size_t i = 0; i < shown; i++) {
        IW_FUZZ_REQUIRE_UTF8("an error path", errs.items[i].path, sizeof(errs.items[i].path));
        IW_FUZZ_REQUIRE_UTF8("an error message", errs.items[i].message,
                             sizeof(errs.items[i].message));
    }
    return 0;
}
