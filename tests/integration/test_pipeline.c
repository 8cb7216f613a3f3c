/* test_pipeline.c: the worker end to end against real redis-server, kafka-local and target-sim:
 * exactly one terminal result per (event, target), duplicates, ordering, poison, and offsets. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "stack.h"

#define PARTS 8

static iw_stack S;
static iw_proc W;

static void up(void)
{
    cr_assert_eq(iw_stack_start(&S, PARTS, false), 0, "local stack did not start");
}

static void down(void)
{
    iw_proc_stop(&W, 20000);
    iw_stack_stop(&S);
}

static void start_worker(iw_proc *w, const char *targets_extra, const char *worker_extra,
                         const char *log)
{
    const char *cfg = iw_stack_config(&S, "worker.json", targets_extra, worker_extra);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_stack_worker_start(&S, w, cfg, log), 0);
}

/* Produces one event per (invoice, version) with keys <tenant>/<invoice>. */
static void produce(char **values, char **keys, size_t n)
{
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", (const char *const *)keys,
                                  (const char *const *)values, n, NULL),
                 0, "produce failed");
}

typedef struct results {
    iw_kmsg *msgs;
    size_t n;
    cJSON **json; /* parsed values */
} results;

static void results_free(results *r)
{
    for (size_t i = 0; i < r->n; i++)
        cJSON_Delete(r->json[i]);
    free(r->json);
    iw_kmsgs_free(r->msgs, r->n);
    memset(r, 0, sizeof(*r));
}

static results read_results(const char *topic, size_t want, int timeout_ms)
{
    results r = {0};
    r.n = iw_kafka_read_all(S.brokers, topic, want, timeout_ms, 0, &r.msgs);
    r.json = calloc(r.n + 1, sizeof(cJSON *));
    for (size_t i = 0; i < r.n; i++)
        r.json[i] = cJSON_Parse(r.msgs[i].value);
    return r;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static size_t count_status(const results *r, const char *target, const char *status)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *t = jstr(r->json[i], "target"), *s = jstr(r->json[i], "status");
        if (s && strcmp(s, status) == 0 && (!target || (t && strcmp(t, target) == 0)))
            n++;
    }
    return n;
}

/* Number of distinct result_id values. */
static size_t distinct_ids(const results *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *id = jstr(r->json[i], "result_id");
        bool seen = false;
        for (size_t k = 0; k < i && !seen && id; k++) {
            const char *o = jstr(r->json[k], "result_id");
            seen = o && strcmp(o, id) == 0;
        }
        if (id && !seen)
            n++;
    }
    return n;
}

/* Calls the simulator saw for event part "<event_id>:<target>". */
static int sim_calls(const char *event_id, const char *target)
{
    char path[256];
    snprintf(path, sizeof(path), "/_sim/calls?key=%s:%s", event_id, target);
    cJSON *j = iw_sim_get(&S, path);
    if (!j)
        return -1;
    char key[200];
    snprintf(key, sizeof(key), "%s:%s", event_id, target);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "calls"), key);
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(e, "count");
    int n = cJSON_IsNumber(cnt) ? (int)cnt->valuedouble : 0;
    cJSON_Delete(j);
    return n;
}

/* Checks the simulator's state for target: exactly `count` invoices, each last accepted at
 * X-Invoice-Version `version` (the highest it saw). Returns how many invoices match. */
static int sim_final_versions(const char *target, long long version)
{
    char path[128];
    snprintf(path, sizeof(path), "/_sim/state?target=%s", target);
    cJSON *j = iw_sim_get(&S, path);
    cr_assert_not_null(j, "simulator state");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "targets"), target);
    const cJSON *invs = cJSON_GetObjectItemCaseSensitive(t, "invoices");
    int ok = 0;
    for (const cJSON *inv = invs ? invs->child : NULL; inv; inv = inv->next) {
        const char *v = jstr(inv, "version"), *mx = jstr(inv, "max_version");
        cr_assert(v && mx && strcmp(v, mx) == 0, "%s %s: last %s, highest seen %s", target,
                  inv->string, v ? v : "?", mx ? mx : "?");
        if (atoll(v) == version)
            ok++;
    }
    cJSON_Delete(j);
    return ok;
}

Test(pipeline, end_to_end_five_targets, .init = up, .fini = down, .timeout = 600)
{
    enum { INVOICES = 200, VERSIONS = 10 };
    const char *targets = "centra_soap,centra_navision,midnight,ebizcharge,invoicexpress";
    size_t n = INVOICES * VERSIONS;
    char **vals = calloc(n, sizeof(char *)), **keys = calloc(n, sizeof(char *));
    for (int v = 1, i = 0; v <= VERSIONS; v++) {
        for (int inv = 0; inv < INVOICES; inv++, i++) {
            char eid[64], id[64];
            snprintf(eid, sizeof(eid), "E%03d-%02d", inv, v);
            snprintf(id, sizeof(id), "INV-%03d", inv);
            vals[i] = iw_make_event(eid, "acme", id, v, targets);
            keys[i] = malloc(80);
            snprintf(keys[i], 80, "acme/%s", id);
        }
    }
    start_worker(&W, NULL, NULL, "worker.log");
    produce(vals, keys, n);

    size_t want = n * 5;
    results r = read_results("invoice-results", want, 300000);
    cr_assert_eq(r.n, want, "results: %zu of %zu", r.n, want);
    cr_assert_eq(distinct_ids(&r), want, "every (event, target) has exactly one result");
    size_t ok = count_status(&r, NULL, "succeeded"), sup = count_status(&r, NULL, "superseded");
    size_t stale = count_status(&r, NULL, "stale");
    cr_assert_eq(ok + sup + stale, want, "only succeeded/superseded/stale: %zu %zu %zu", ok, sup, stale);
    cr_assert_geq(ok, INVOICES * 5, "at least the last version of every invoice succeeded");

    /* the simulator's final state per invoice and target is the highest version */
    const char *tl[] = {"centra_soap", "centra_navision", "midnight", "ebizcharge", "invoicexpress"};
    for (int t = 0; t < 5; t++)
        cr_assert_eq(sim_final_versions(tl[t], VERSIONS), INVOICES, "%s", tl[t]);
    /* a clean stop commits everything */
    cr_assert_eq(iw_proc_stop(&W, 30000), 0, "worker exits 0 on SIGTERM");
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 0,
                 "committed offsets reach the end of every partition");
    results_free(&r);
    for (size_t i = 0; i < n; i++) {
        free(vals[i]);
        free(keys[i]);
    }
    free(vals);
    free(keys);
}

Test(pipeline, duplicates_are_not_sent_twice, .init = up, .fini = down, .timeout = 300)
{
    enum { N = 40 };
    char *vals[N], *keys[N];
    for (int i = 0; i < N; i++) {
        char eid[64], id[64];
        snprintf(eid, sizeof(eid), "DUP-%02d", i);
        snprintf(id, sizeof(id), "INV-D%02d", i);
        vals[i] = iw_make_event(eid, "acme", id, 1, "centra_soap,invoicexpress");
        keys[i] = malloc(80);
        snprintf(keys[i], 80, "acme/%s", id);
    }
    start_worker(&W, NULL, NULL, "worker.log");
    produce(vals, keys, N);
    results r = read_results("invoice-results", N * 2, 120000);
    cr_assert_eq(count_status(&r, NULL, "succeeded"), N * 2);
    results_free(&r);
    produce(vals, keys, N); /* the same events again */
    r = read_results("invoice-results", N * 4, 120000);
    cr_assert_eq(r.n, N * 4);
    cr_assert_eq(count_status(&r, NULL, "duplicate"), N * 2, "the replays are duplicates");
    for (int i = 0; i < N; i++) {
        char eid[64];
        snprintf(eid, sizeof(eid), "DUP-%02d", i);
        cr_assert_eq(sim_calls(eid, "centra_soap"), 1, "%s sent once", eid);
        cr_assert_eq(sim_calls(eid, "invoicexpress"), 1, "%s sent once", eid);
    }
    results_free(&r);
    for (int i = 0; i < N; i++) {
        free(vals[i]);
        free(keys[i]);
    }
}

Test(pipeline, out_of_order_versions_never_overwrite_newer, .init = up, .fini = down, .timeout = 300)
{
    /* per invoice: 5 first, then 3, 4, 1, 2 (same key, so same partition, in this order) */
    enum { INV = 20 };
    const int order[] = {5, 3, 4, 1, 2};
    char *vals[INV * 5], *keys[INV * 5];
    int k = 0;
    for (int o = 0; o < 5; o++) {
        for (int i = 0; i < INV; i++, k++) {
            char eid[64], id[64];
            snprintf(eid, sizeof(eid), "OOO-%02d-v%d", i, order[o]);
            snprintf(id, sizeof(id), "INV-O%02d", i);
            vals[k] = iw_make_event(eid, "acme", id, order[o], "midnight,ebizcharge");
            keys[k] = malloc(80);
            snprintf(keys[k], 80, "acme/%s", id);
        }
    }
    start_worker(&W, NULL, NULL, "worker.log");
    produce(vals, keys, INV * 5);
    results r = read_results("invoice-results", INV * 5 * 2, 120000);
    cr_assert_eq(r.n, INV * 5 * 2);
    cr_assert_eq(count_status(&r, NULL, "succeeded"), INV * 2, "only v5 was sent");
    cr_assert_eq(count_status(&r, NULL, "stale") + count_status(&r, NULL, "superseded"), INV * 4 * 2);
    cr_assert_eq(sim_final_versions("midnight", 5), INV);
    cr_assert_eq(sim_final_versions("ebizcharge", 5), INV);
    results_free(&r);
    for (int i = 0; i < INV * 5; i++) {
        free(vals[i]);
        free(keys[i]);
    }
}

Test(pipeline, poison_events_go_to_the_dead_letter_topic, .init = up, .fini = down, .timeout = 300)
{
    /* all on one key (one partition): the good event after the poison must still be processed */
    const char *bad_json = "{\"schema\": \"invoice-event/v1\", \"event_id\": ";
    char *missing = iw_make_event("POISON-2", "acme", "INV-P", 1, "centra_soap");
    /* drop the invoice id: a required field */
    char *p = strstr(missing, "\"id\":\"INV-P\"");
    cr_assert_not_null(p);
    memcpy(p, "\"xx\"", 4);
    char *unknown = iw_make_event("POISON-3", "acme", "INV-P", 2, "no_such_target");
    char *good = iw_make_event("GOOD-4", "acme", "INV-P", 3, "centra_soap");
    const char *vals[] = {bad_json, missing, unknown, good};
    const char *keys[] = {"acme/INV-P", "acme/INV-P", "acme/INV-P", "acme/INV-P"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 4, NULL), 0);
    results r = read_results("invoice-results", 4, 120000);
    cr_assert_eq(r.n, 4);
    cr_assert_eq(count_status(&r, NULL, "rejected"), 3);
    cr_assert_eq(count_status(&r, "centra_soap", "succeeded"), 1, "the partition kept moving");
    results_free(&r);

    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 3, 60000, 0, &dl);
    cr_assert_eq(n, 3);
    bool saw_json = false, saw_missing = false, saw_unknown = false;
    for (size_t i = 0; i < n; i++) {
        char *kind = iw_kmsg_header(&dl[i], "x-iw-error-kind");
        char *err = iw_kmsg_header(&dl[i], "x-iw-error");
        char *tgt = iw_kmsg_header(&dl[i], "x-iw-target");
        char *off = iw_kmsg_header(&dl[i], "x-iw-source-offset");
        char *top = iw_kmsg_header(&dl[i], "x-iw-source-topic");
        cr_assert_not_null(kind);
        cr_assert_str_eq(kind, "validation");
        cr_assert_not_null(err);
        cr_assert_not_null(off);
        cr_assert_str_eq(top, "invoice-events");
        cr_assert_str_eq(dl[i].key, "acme/INV-P", "the original key is kept");
        if (strstr(err, "JSON")) {
            saw_json = true;
            cr_assert_str_eq(dl[i].value, bad_json, "the original value is kept");
        }
        if (strstr(err, "invoice.id"))
            saw_missing = true;
        if (strstr(err, "no_such_target")) {
            saw_unknown = true;
            cr_assert_str_eq(tgt, "no_such_target");
        }
        free(kind);
        free(err);
        free(tgt);
        free(off);
        free(top);
    }
    cr_assert(saw_json && saw_missing && saw_unknown, "%d %d %d", saw_json, saw_missing, saw_unknown);
    iw_kmsgs_free(dl, n);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0);
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 0);
    free(missing);
    free(unknown);
    free(good);
}
