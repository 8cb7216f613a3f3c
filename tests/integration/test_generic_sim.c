/* test_generic_sim.c: the generic target of examples/generic/centra-navision.json, run by the
 * worker end to end against the local stack: the simulator (which validates requests against
 * the seed contract) accepts every request rendered from the mapping file, and records each
 * invoice at its newest version. */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "docpaths.h"
#include "stack.h"

#define MAPPING IW_FIXTURES_DIR "/../../examples/generic/centra-navision.mapping.json"

static iw_stack S;
static iw_proc W;

static void up(void)
{
    iw_stack_opts o = {.partitions = 4, .validate = "on"};
    cr_assert_eq(iw_stack_launch(&S, &o), 0, "local stack did not start");
}

static void down(void)
{
    iw_proc_stop(&W, 20000);
    iw_stack_stop(&S);
}

/* Starts the worker with one target, navision_generic: the simulator's navision endpoint
 * through the mapping file at mapping (an absolute path). */
static void start_worker(const char *mapping)
{
    char root[2 * PATH_MAX];
    snprintf(root, sizeof(root),
             "{\"targets\": {\"navision_generic\": {\"type\": \"generic\", \"url\": "
             "\"%s/amsdemo/system/service/module/navision/api\", \"mapping\": \"%s\", "
             "\"timeouts\": {\"request_ms\": 5000}}}}",
             S.sim_base, mapping);
    iw_stack_overlay extra = {.root = root};
    const char *cfg = iw_stack_config_with(&S, "worker.json", &extra);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, "worker.log"), 0);
}

Test(generic_sim, the_simulator_accepts_the_generic_navision_requests, .init = up, .fini = down,
     .timeout = 300)
{
    enum { INVOICES = 20, VERSIONS = 2 };
    char mapping[PATH_MAX];
    cr_assert_not_null(realpath(MAPPING, mapping), "%s", MAPPING);
    start_worker(mapping);

    size_t n = INVOICES * VERSIONS;
    char *vals[INVOICES * VERSIONS], *keys[INVOICES * VERSIONS];
    for (int v = 1, i = 0; v <= VERSIONS; v++) {
        for (int inv = 0; inv < INVOICES; inv++, i++) {
            char eid[64], id[64];
            snprintf(eid, sizeof(eid), "G%03d-%02d", inv, v);
            snprintf(id, sizeof(id), "GEN-%03d", inv);
            vals[i] = iw_make_event(eid, "acme", id, v, "navision_generic");
            cr_assert_not_null(vals[i]);
            keys[i] = malloc(80);
            snprintf(keys[i], 80, "acme/%s", id);
        }
    }
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", (const char *const *)keys,
                                  (const char *const *)vals, n, NULL),
                 0);
    iw_results r = iw_results_read(&S, "invoice-results", n, 120000);
    cr_assert_eq(r.n, n, "results: %zu of %zu", r.n, n);
    size_t ok = iw_results_count(&r, "navision_generic", "succeeded");
    size_t sup = iw_results_count(&r, "navision_generic", "superseded");
    size_t stale = iw_results_count(&r, "navision_generic", "stale");
    cr_assert_eq(ok + sup + stale, n, "only succeeded/superseded/stale: %zu %zu %zu (failed %zu)",
                 ok, sup, stale, iw_results_count(&r, "navision_generic", "failed"));
    cr_assert_geq(ok, INVOICES, "the newest version of every invoice succeeded");
    cr_assert_geq(iw_sim_calls(&S, "G000-02", "navision_generic"), 1,
                  "the simulator saw the generic target's call");
    int regressed = 0;
    cr_assert_eq(iw_sim_final_versions(&S, "centra_navision", VERSIONS, &regressed), INVOICES,
                 "the simulator recorded every invoice at its newest version");
    cr_assert_eq(regressed, 0);
    iw_results_free(&r);
    for (size_t i = 0; i < n; i++) {
        free(vals[i]);
        free(keys[i]);
    }
}

/* Review 68: a version only the mapping's render refuses (a field of its URL template absent),
 * arriving at an empty lane, claimed the ledger before its attempt refused it: the older
 * version arriving after it was then stale, and the target stayed a version behind. A version
 * that cannot be sent claims nothing: v2 reaches the target. */
Test(generic_sim, a_version_its_url_template_refuses_claims_nothing, .init = up, .fini = down,
     .timeout = 300)
{
    char mapping[PATH_MAX], mpath[PATH_MAX];
    cr_assert_not_null(realpath(MAPPING, mapping), "%s", MAPPING);
    char *text = iw_read_file(mapping, NULL);
    cr_assert_not_null(text);
    cJSON *mj = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(mj);
    cJSON_ReplaceItemInObject(mj, "url", cJSON_CreateString("{url}?number={invoice.number}"));
    char *mtext = cJSON_Print(mj);
    cJSON_Delete(mj);
    snprintf(mpath, sizeof(mpath), "%s/number-in-url.mapping.json", S.dir);
    FILE *f = fopen(mpath, "w");
    cr_assert_not_null(f);
    fputs(mtext, f);
    fclose(f);
    free(mtext);
    start_worker(mpath);

    const char *keys[2] = {"acme/UT", "acme/UT"};
    char *v1 = iw_make_event("UT-v1", "acme", "UT", 1, "navision_generic");
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", keys, (const char *const *)&v1, 1, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 1, 60000);
    cr_assert_eq(iw_results_count(&r, "navision_generic", "succeeded"), 1, "v1 applied");
    iw_results_free(&r);
    /* v3 without invoice.number (its mapping requires only invoice.id), then v2 */
    char *v3 = iw_make_event("UT-v3", "acme", "UT", 3, "navision_generic");
    cJSON *j = cJSON_Parse(v3);
    free(v3);
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "invoice"), "number");
    v3 = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *v2 = iw_make_event("UT-v2", "acme", "UT", 2, "navision_generic");
    const char *vals[2] = {v3, v2};
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 2, NULL), 0);
    r = iw_results_read(&S, "invoice-results", 3, 60000);
    cr_assert_eq(r.n, 3);
    for (size_t i = 0; i < r.n; i++) {
        const char *id = iw_json_str(r.json[i], "event_id"), *st = iw_json_str(r.json[i], "status");
        if (strcmp(id, "UT-v3") == 0) {
            cr_assert_str_eq(st, "rejected", "%s", r.msgs[i].value);
            cr_assert(strstr(r.msgs[i].value, "a field of the URL template is absent"), "%s",
                      r.msgs[i].value);
        } else {
            cr_assert_str_eq(st, "succeeded", "%s", r.msgs[i].value);
        }
    }
    iw_results_free(&r);
    cr_assert_eq(iw_sim_calls(&S, "UT-v3", "navision_generic"), 0, "v3 was never sent");
    cr_assert_eq(iw_sim_calls(&S, "UT-v2", "navision_generic"), 1, "v2 reached the target");
    free(v1);
    free(v2);
    free(v3);
}
