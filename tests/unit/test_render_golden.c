/* test_render_golden.c: every case of tests/fixtures/render/manifest.txt rendered again, in
 * process, and compared byte for byte with what `invoice-worker render` printed when the golden
 * files were written (scripts/render-golden); every body sent parses (libxml2 for XML, cJSON
 * for JSON). A refusal must be the same refusal, word for word. */
#include <criterion/criterion.h>
#include "testdata.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>

#include "cli.h"
#include "config.h"
#include "target.h"

/* What rendering one case printed: the request text, or the refusal (as `render` prints it). */
static char *render_case(const char *config, const char *target, const char *event, bool *ok,
                         iw_request *req)
{
    char path[512], err[512], line[1200];
    snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, config);
    iw_config *cfg = iw_cli_load_config(path);
    cr_assert_not_null(cfg, "%s does not load", path);
    const iw_target_conf *tc = iw_config_target(cfg, target);
    cr_assert_not_null(tc, "%s: no target %s", config, target);
    const iw_target_ops *ops = iw_target_find(tc->type);
    cr_assert_not_null(ops);
    size_t len;
    char *json = iw_t_fixture(event, &len);
    iw_event *ev = iw_t_parse(json, len);
    free(json);

    char *out = NULL;
    memset(req, 0, sizeof(*req));
    iw_render_ctx ctx = {.state = NULL};
    *ok = false;
    if (iw_target_validate(ops, ev, tc, err, sizeof(err)) != 0) {
        snprintf(line, sizeof(line), "render: %s rejects this event: %s\n", tc->name, err);
        out = strdup(line);
    } else if (iw_target_render(ops, ev, tc, &ctx, req, err, sizeof(err)) != 0) {
        cr_assert_null(req->body, "%s/%s: a refused render left a body", target, event);
        snprintf(line, sizeof(line), "render: %s: %s\n", tc->name, err);
        out = strdup(line);
    } else {
        *ok = true;
        cr_assert_eq(iw_request_add_call_headers(req, ev->event_id, tc->name, 1, ev->version, NULL),
                     0);
        out = iw_cli_request_text(tc, req);
    }
    cr_assert_not_null(out);
    iw_event_free(ev);
    iw_config_free(cfg);
    return out;
}

/* Checks that the body as sent (not the masked text) is one well-formed document. */
static void expect_well_formed(const char *id, const iw_request *req)
{
    const char *ct = iw_request_header(req, "Content-Type");
    cr_assert_not_null(ct, "%s: no Content-Type", id);
    cr_assert(req->body && req->body[req->body_len] == '\0', "%s: body not NUL-terminated", id);
    cr_assert_eq(strlen(req->body), req->body_len, "%s: body_len", id);
    if (strstr(ct, "json")) {
        cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
        cr_assert_not_null(j, "%s: body is not JSON", id);
        cJSON_Delete(j);
    } else {
        xmlDocPtr d = xmlReadMemory(req->body, (int)req->body_len, "body.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                        XML_PARSE_HUGE);
        cr_assert_not_null(d, "%s: body is not well-formed XML", id);
        xmlFreeDoc(d);
    }
    cr_assert(iw_t_utf8_ok(req->body), "%s: body is not UTF-8", id);
}

/* Line and column of the first difference, for the message. */
static void first_difference(const char *a, const char *b, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (; *a && *a == *b; a++, b++) {
        if (*a == '\n')
            ++*line, *col = 1;
        else
            ++*col;
    }
}

Test(render_golden, every_case_renders_as_recorded)
{
    size_t mlen;
    char *manifest = iw_t_fixture("render/manifest.txt", &mlen);
    size_t cases = 0, bodies = 0;
    char *save = NULL;
    for (char *ln = strtok_r(manifest, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char id[128], config[256], target[64], event[256];
        if (ln[0] == '#' || sscanf(ln, "%127s %255s %63s %255s", id, config, target, event) != 4)
            continue;
        bool ok;
        iw_request req;
        char *got = render_case(config, target, event, &ok, &req);

        char rel[256];
        size_t glen;
        snprintf(rel, sizeof(rel), "render/golden/%s.%s", id, ok ? "txt" : "err");
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", IW_FIXTURES_DIR, rel);
        char *want = iw_read_file(path, &glen);
        cr_assert_not_null(want, "%s: %s now, but there is no %s (the render %s)", id,
                           ok ? "rendered" : "refused", rel,
                           ok ? "was refused when recorded" : "succeeded when recorded");
        if (strcmp(got, want) != 0) {
            size_t line, col;
            first_difference(got, want, &line, &col);
            cr_assert_fail(
                "%s differs from %s at line %zu, column %zu\n--- now:\n%s\n--- recorded:\n%s", id,
                rel, line, col, got, want);
        }
        if (ok) {
            expect_well_formed(id, &req);
            bodies++;
        }
        free(want);
        free(got);
        iw_request_clear(&req);
        cases++;
    }
    free(manifest);
    cr_assert_gt(cases, 50, "manifest lists %zu cases", cases);
    cr_assert_gt(bodies, 40, "only %zu bodies rendered", bodies);
}
