/* test_pipeline.c: the worker end to end against real redis-server, kafka-local and target-sim:
 * exactly one terminal result per (event, target), duplicates, ordering, poison, and offsets. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "adapters.h"
#include "docpaths.h"
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

/* The last part of the stack's worker.log (a static buffer), for a failure's message: a run
 * that ends short of its results says why. */
static const char *worker_log_tail(void)
{
    static char tail[3000];
    char path[512];
    snprintf(path, sizeof(path), "%s/worker.log", S.dir);
    size_t n = 0;
    char *log = iw_read_file(path, &n);
    if (!log)
        return "(no worker.log)";
    snprintf(tail, sizeof(tail), "%s", n > sizeof(tail) - 1 ? log + n - (sizeof(tail) - 1) : log);
    free(log);
    return tail;
}

/* Produces one event per (invoice, version) with keys <tenant>/<invoice>. */
static void produce(char **values, char **keys, size_t n)
{
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", (const char *const *)keys,
                                  (const char *const *)values, n, NULL),
                 0, "produce failed");
}

/* Final state check: every invoice at target ends at `version`, none went backwards. */
static int final_versions(const char *target, long long version)
{
    int regressed = 0;
    int ok = iw_sim_final_versions(&S, target, version, &regressed);
    cr_assert_eq(regressed, 0, "%s: %d invoices ended older than their newest state", target,
                 regressed);
    return ok;
}

Test(pipeline, end_to_end_every_target, .init = up, .fini = down, .timeout = 600)
{
    enum { INVOICES = 200, VERSIONS = 10 };
    const char *targets = iw_t_adapter_list(); /* each a target of the local stack */
    const size_t n_targets = iw_t_adapter_count();
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

    size_t want = n * n_targets;
    iw_results r = iw_results_read(&S, "invoice-results", want, 300000);
    cr_assert_eq(r.n, want, "results: %zu of %zu", r.n, want);
    cr_assert_eq(iw_results_distinct(&r), want, "every (event, target) has exactly one result");
    size_t ok = iw_results_count(&r, NULL, "succeeded"),
           sup = iw_results_count(&r, NULL, "superseded");
    size_t stale = iw_results_count(&r, NULL, "stale");
    cr_assert_eq(ok + sup + stale, want, "only succeeded/superseded/stale: %zu %zu %zu", ok, sup,
                 stale);
    cr_assert_geq(ok, INVOICES * n_targets, "at least the last version of every invoice succeeded");

    /* the simulator's final state per invoice and target is the highest version */
    for (size_t t = 0; t < n_targets; t++)
        cr_assert_eq(final_versions(iw_t_adapter(t), VERSIONS), INVOICES, "%s", iw_t_adapter(t));
    /* a clean stop commits everything */
    cr_assert_eq(iw_proc_stop(&W, 30000), 0, "worker exits 0 on SIGTERM");
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 0,
                 "committed offsets reach the end of every partition");
    iw_results_free(&r);
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
    iw_results r = iw_results_read(&S, "invoice-results", N * 2, 120000);
    cr_assert_eq(iw_results_count(&r, NULL, "succeeded"), N * 2);
    iw_results_free(&r);
    produce(vals, keys, N); /* the same events again */
    r = iw_results_read(&S, "invoice-results", N * 4, 120000);
    cr_assert_eq(r.n, N * 4);
    cr_assert_eq(iw_results_count(&r, NULL, "duplicate"), N * 2, "the replays are duplicates");
    for (int i = 0; i < N; i++) {
        char eid[64];
        snprintf(eid, sizeof(eid), "DUP-%02d", i);
        cr_assert_eq(iw_sim_calls(&S, eid, "centra_soap"), 1, "%s sent once", eid);
        cr_assert_eq(iw_sim_calls(&S, eid, "invoicexpress"), 1, "%s sent once", eid);
    }
    iw_results_free(&r);
    for (int i = 0; i < N; i++) {
        free(vals[i]);
        free(keys[i]);
    }
}

Test(pipeline, out_of_order_versions_never_overwrite_newer, .init = up, .fini = down,
     .timeout = 300)
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
    iw_results r = iw_results_read(&S, "invoice-results", INV * 5 * 2, 120000);
    cr_assert_eq(r.n, INV * 5 * 2);
    cr_assert_eq(iw_results_count(&r, NULL, "succeeded"), INV * 2, "only v5 was sent");
    cr_assert_eq(iw_results_count(&r, NULL, "stale") + iw_results_count(&r, NULL, "superseded"),
                 INV * 4 * 2);
    cr_assert_eq(final_versions("midnight", 5), INV);
    cr_assert_eq(final_versions("ebizcharge", 5), INV);
    iw_results_free(&r);
    for (int i = 0; i < INV * 5; i++) {
        free(vals[i]);
        free(keys[i]);
    }
}

/* The status says why a version was not sent (DESIGN section 3): with v5 on the wire (the
 * target takes 1.5 s), v3 arrives older than what is in flight, claimed at the ledger: stale;
 * v7 waits; v6 arrives older than the waiting v7: superseded (coalesced); v7 is sent. */
Test(pipeline, a_late_version_is_stale_and_a_coalesced_one_superseded, .init = up, .fini = down,
     .timeout = 300)
{
    cr_assert_eq(iw_sim_control(&S, "/_sim/faults",
                                "{\"target\": \"midnight\", \"kind\": \"latency\", \"ms\": 1500}"),
                 200);
    static const int order[] = {5, 3, 7, 6};
    static const char *const want[] = {"succeeded", "stale", "succeeded", "superseded"};
    char *vals[4], *keys[4];
    for (int i = 0; i < 4; i++) {
        char eid[32];
        snprintf(eid, sizeof(eid), "LATE-v%d", order[i]);
        vals[i] = iw_make_event(eid, "acme", "INV-LATE", order[i], "midnight");
        keys[i] = strdup("acme/INV-LATE");
    }
    start_worker(&W, NULL, NULL, "worker.log");
    produce(vals, keys, 4);
    iw_results r = iw_results_read(&S, "invoice-results", 4, 120000);
    cr_assert_eq(r.n, 4);
    for (int i = 0; i < 4; i++) {
        char eid[32];
        snprintf(eid, sizeof(eid), "LATE-v%d", order[i]);
        const char *got = NULL;
        for (size_t k = 0; k < r.n; k++)
            if (strcmp(iw_json_str(r.json[k], "event_id"), eid) == 0)
                got = iw_json_str(r.json[k], "status");
        cr_assert_not_null(got, "%s has a result", eid);
        cr_assert_str_eq(got, want[i], "%s", eid);
    }
    iw_results_free(&r);
    cr_assert_eq(final_versions("midnight", 7), 1);
    for (int i = 0; i < 4; i++) {
        free(vals[i]);
        free(keys[i]);
    }
}

/* An event whose midnight_guid was emptied: Midnight's rules refuse it before any call. */
static char *without_guid(const char *eid, const char *invoice, int version)
{
    char *ev = iw_make_event(eid, "acme", invoice, version, "midnight");
    char *g = strstr(ev, "\"midnight_guid\":\"");
    cr_assert_not_null(g);
    g += strlen("\"midnight_guid\":\"");
    char *g_end = strchr(g, '"');
    memmove(g, g_end, strlen(g_end) + 1);
    return ev;
}

/* A version the target's rules refuse is stale, not rejected, when a newer one was applied
 * there: no dead letter. A letter of it replayed after the ledger has forgotten the newer
 * version (redis.ledger_ttl_s) would overwrite that version, and replay's age limit cannot
 * see it: the letter would be young. A newer refused version is still rejected and
 * dead-lettered. */
Test(pipeline, a_late_version_the_target_refuses_is_stale_not_dead_lettered, .init = up,
     .fini = down, .timeout = 300)
{
    char *v2 = iw_make_event("RFS-v2", "acme", "INV-RFS", 2, "midnight");
    const char *k[] = {"acme/INV-RFS"}, *v[] = {v2};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", k, v, 1, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 1, 120000);
    cr_assert_eq(iw_results_count(&r, "midnight", "succeeded"), 1);
    iw_results_free(&r);
    char *v1 = without_guid("RFS-v1", "INV-RFS", 1), *v3 = without_guid("RFS-v3", "INV-RFS", 3);
    const char *k2[] = {"acme/INV-RFS", "acme/INV-RFS"}, *vals[] = {v1, v3};
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", k2, vals, 2, NULL), 0);
    r = iw_results_read(&S, "invoice-results", 3, 120000);
    cr_assert_eq(r.n, 3);
    for (size_t i = 0; i < r.n; i++) {
        const char *id = iw_json_str(r.json[i], "event_id"), *st = iw_json_str(r.json[i], "status");
        if (strcmp(id, "RFS-v1") == 0)
            cr_assert_str_eq(st, "stale", "%s", r.msgs[i].value);
        if (strcmp(id, "RFS-v3") == 0)
            cr_assert_str_eq(st, "rejected", "%s", r.msgs[i].value);
    }
    iw_results_free(&r);
    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 0, 10000, 3000, &dl);
    cr_assert_eq(n, 1, "one dead letter, v3's (%zu)", n);
    cr_assert(strstr(dl[0].value, "RFS-v3"), "%s", dl[0].value);
    iw_kmsgs_free(dl, n);
    cr_assert_eq(iw_sim_calls(&S, "RFS-v1", "midnight"), 0);
    free(v1);
    free(v2);
    free(v3);
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
    /* an empty Guid: Midnight's reason names Midnight, and the local stack's credentials must
     * not make it read as an echoed secret (a token "sim-midnight" withheld it) */
    char *no_guid = iw_make_event("NOGUID-5", "acme", "INV-Q", 1, "midnight");
    char *g = strstr(no_guid, "\"midnight_guid\":\"");
    cr_assert_not_null(g);
    g += strlen("\"midnight_guid\":\"");
    char *g_end = strchr(g, '"');
    memmove(g, g_end, strlen(g_end) + 1);
    const char *vals[] = {bad_json, missing, unknown, good, no_guid};
    const char *keys[] = {"acme/INV-P", "acme/INV-P", "acme/INV-P", "acme/INV-P", "acme/INV-Q"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 5, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 5, 120000);
    cr_assert_eq(r.n, 5);
    cr_assert_eq(iw_results_count(&r, NULL, "rejected"), 4);
    cr_assert_eq(iw_results_count(&r, "centra_soap", "succeeded"), 1, "the partition kept moving");
    for (size_t i = 0; i < r.n; i++) {
        const char *target = iw_json_str(r.json[i], "target"); /* none for the bad JSON */
        if (!target || strcmp(target, "midnight") != 0)
            continue;
        const cJSON *err = cJSON_GetObjectItem(r.json[i], "error");
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(err, "message"));
        cr_assert(msg && strstr(msg, "target_refs.midnight_guid: required"), "%s", r.msgs[i].value);
    }
    iw_results_free(&r);

    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 4, 60000, 0, &dl);
    cr_assert_eq(n, 4);
    bool saw_json = false, saw_missing = false, saw_unknown = false, saw_guid = false;
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
        cr_assert_str_eq(dl[i].key,
                         tgt && strcmp(tgt, "midnight") == 0 ? "acme/INV-Q" : "acme/INV-P",
                         "the original key is kept");
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
        if (strstr(err, "target_refs.midnight_guid: required")) {
            saw_guid = true;
            cr_assert_str_eq(tgt, "midnight");
        }
        free(kind);
        free(err);
        free(tgt);
        free(off);
        free(top);
    }
    cr_assert(saw_json && saw_missing && saw_unknown && saw_guid, "%d %d %d %d", saw_json,
              saw_missing, saw_unknown, saw_guid);
    iw_kmsgs_free(dl, n);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0);
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 0);
    free(missing);
    free(unknown);
    free(good);
    free(no_guid);
}

/* A string of n copies of ch (malloc'd). */
static char *filled(size_t n, char ch)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* The decimal value of header name of m, or -1 when it is absent. */
static long long header_num(const iw_kmsg *m, const char *name)
{
    char *v = iw_kmsg_header(m, name);
    long long n = v ? atoll(v) : -1;
    free(v);
    return n;
}

/* Input messages larger than the worker's producer takes (its message.max.bytes, 100,000 here;
 * an input topic may take more than a result or dead-letter topic): the dead letter of the one
 * with a large value, and the result and dead letter of the one with a large key, would be
 * larger than that. They go shorter, naming what they left out, and the worker (which used to
 * stop on them, and again after every restart) carries on. */
Test(pipeline, messages_too_large_for_kafka_are_sent_shorter, .init = up, .fini = down,
     .timeout = 300)
{
    const size_t big = 150000;
    char *big_value = filled(big, ' ');
    big_value[0] = '{'; /* JSON, but no event: a poison of 999,000 bytes */
    big_value[big - 1] = '}';
    char *big_key = filled(big, 'k');
    char *good = iw_make_event("GOOD-BIG", "acme", "INV-BIG", 1, "centra_soap");
    const char *vals[] = {big_value, "{}", good};
    const char *keys[] = {"acme/INV-BIG", big_key, "acme/INV-BIG"};
    const iw_stack_overlay small = {
        .root = "{\"kafka\": {\"properties\": {\"producer.message.max.bytes\": 100000}}}"};
    const char *cfg = iw_stack_config_with(&S, "worker.json", &small);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, "worker.log"), 0);
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 3, NULL), 0);

    iw_results r = iw_results_read(&S, "invoice-results", 3, 120000);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(iw_results_count(&r, NULL, "rejected"), 2);
    cr_assert_eq(iw_results_count(&r, "centra_soap", "succeeded"), 1, "the partition kept moving");
    size_t keyless = 0;
    for (size_t i = 0; i < r.n; i++) {
        long long omitted = header_num(&r.msgs[i], "x-iw-key-omitted");
        if (strcmp(r.msgs[i].key, "acme/INV-BIG") == 0) {
            cr_assert_eq(omitted, -1, "a result that fits keeps its key, and says nothing");
        } else {
            cr_assert_str_eq(r.msgs[i].key, "", "the large key is left out of its result");
            cr_assert_eq(omitted, (long long)big, "x-iw-key-omitted: %lld", omitted);
            keyless++;
        }
    }
    cr_assert_eq(keyless, 1);
    iw_results_free(&r);

    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 2, 60000, 0, &dl);
    cr_assert_eq(n, 2);
    bool saw_value = false, saw_key = false;
    for (size_t i = 0; i < n; i++) {
        char *err = iw_kmsg_header(&dl[i], "x-iw-error");
        cr_assert_not_null(err);
        free(err);
        long long src_off = header_num(&dl[i], "x-iw-source-offset");
        cr_assert_geq(src_off, 0, "the letter names where the event stays");
        if (strcmp(dl[i].key, "acme/INV-BIG") == 0) {
            cr_assert_eq(dl[i].len, 0, "the large value is left out");
            cr_assert_eq(header_num(&dl[i], "x-iw-value-omitted"), (long long)big);
            cr_assert_eq(header_num(&dl[i], "x-iw-key-omitted"), -1);
            saw_value = true;
        } else {
            cr_assert_str_eq(dl[i].key, "", "the large key is left out");
            cr_assert_str_eq(dl[i].value, "{}", "the small value is kept");
            cr_assert_eq(header_num(&dl[i], "x-iw-key-omitted"), (long long)big);
            cr_assert_eq(header_num(&dl[i], "x-iw-value-omitted"), -1);
            saw_key = true;
        }
    }
    cr_assert(saw_value && saw_key, "%d %d", saw_value, saw_key);
    iw_kmsgs_free(dl, n);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0, "the worker ran on and stopped cleanly");
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 0);
    free(big_value);
    free(big_key);
    free(good);
}

/* A replay header naming a target of 600,000 bytes (legal, printable, and twice in the result:
 * too large for Kafka) makes the event poison, not a result the worker cannot produce. */
Test(pipeline, a_replay_target_header_of_any_length_gets_a_result, .init = up, .fini = down,
     .timeout = 300)
{
    char *name = filled(600000, 't');
    char *header = NULL;
    cr_assert_gt(asprintf(&header, "x-iw-replay-target=%s", name), 0);
    char *ev = iw_make_event("LONG-HDR-1", "acme", "INV-LH", 1, "centra_soap");
    char *good = iw_make_event("LONG-HDR-2", "acme", "INV-LH", 2, "centra_soap");
    const char *keys[] = {"acme/INV-LH"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", keys, (const char *const *)&ev, 1, header),
        0);
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", keys, (const char *const *)&good, 1, NULL),
        0);
    iw_results r = iw_results_read(&S, "invoice-results", 2, 120000);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(iw_results_count(&r, NULL, "rejected"), 1);
    cr_assert_eq(iw_results_count(&r, "centra_soap", "succeeded"), 1, "the partition moved on");
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(iw_json_str(r.json[i], "status"), "rejected") == 0) {
            cJSON *err = cJSON_GetObjectItemCaseSensitive(r.json[i], "error");
            cr_assert_str_eq(iw_json_str(err, "message"),
                             "header x-iw-replay-target is longer than 1024 bytes");
            cr_assert_lt(r.msgs[i].len, 4096, "a small result");
        }
    iw_results_free(&r);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0, "the worker ran on and stopped cleanly");
    free(name);
    free(header);
    free(ev);
    free(good);
}

/* Review 94: with two x-iw-replay-target headers the last one won and the other target got no
 * result and no word; two traceparent headers, the last one was the trace. A replay names one
 * target: two make the message poison. Which of two traceparents is the trace is not known: it
 * is dropped as an invalid one is. Judged by the result topic and the simulator's calls; a single
 * traceparent is kept (the control). */
Test(pipeline, two_replay_targets_are_poison_and_two_traceparents_no_trace, .init = up,
     .fini = down, .timeout = 300)
{
#define TP_A "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_B "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    char *two = iw_make_event("TWO-RT", "acme", "INV-TWO-RT", 1, "centra_soap,invoicexpress");
    char *tps = iw_make_event("TWO-TP", "acme", "INV-TWO-TP", 1, "centra_soap");
    char *one = iw_make_event("ONE-TP", "acme", "INV-ONE-TP", 1, "centra_soap");
    const char *k1[] = {"acme/INV-TWO-RT"}, *k2[] = {"acme/INV-TWO-TP"},
               *k3[] = {"acme/INV-ONE-TP"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", k1, (const char *const *)&two, 1,
                         "x-iw-replay-target=invoicexpress\nx-iw-replay-target=centra_soap"),
        0);
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", k2, (const char *const *)&tps, 1,
                                  "traceparent=" TP_A "\ntraceparent=" TP_B),
                 0);
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", k3, (const char *const *)&one, 1,
                                  "traceparent=" TP_B),
                 0);
    iw_results r = iw_results_read(&S, "invoice-results", 3, 120000);
    cr_assert_eq(r.n, 3, "%s", worker_log_tail());
    bool seen[3] = {false};
    for (size_t i = 0; i < r.n; i++) {
        const char *eid = iw_json_str(r.json[i], "event_id");
        const char *status = iw_json_str(r.json[i], "status");
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(r.json[i], "trace_id");
        if (strcmp(status, "rejected") == 0) {
            seen[0] = true;
            cJSON *err = cJSON_GetObjectItemCaseSensitive(r.json[i], "error");
            cr_assert_str_eq(iw_json_str(err, "message"),
                             "header x-iw-replay-target appears more than once (a replay names "
                             "one target)");
        } else if (strcmp(eid, "TWO-TP") == 0) {
            seen[1] = true;
            cr_assert_str_eq(status, "succeeded");
            cr_assert(!tid || cJSON_IsNull(tid), "two traceparents kept as a trace");
        } else {
            seen[2] = true;
            cr_assert_str_eq(eid, "ONE-TP");
            cr_assert_str_eq(status, "succeeded");
            cr_assert(cJSON_IsString(tid) &&
                          strcmp(tid->valuestring, "0af7651916cd43dd8448eb211c80319c") == 0,
                      "one traceparent is the trace");
        }
    }
    cr_assert(seen[0] && seen[1] && seen[2]);
    iw_results_free(&r);
    cr_assert_eq(iw_sim_calls(&S, "TWO-RT", "centra_soap"), 0);
    cr_assert_eq(iw_sim_calls(&S, "TWO-RT", "invoicexpress"), 0);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0);
    free(two);
    free(tps);
    free(one);
#undef TP_A
#undef TP_B
}

/* Review 94: an unknown target name longer than 64 bytes was quoted cut, with nothing to say so:
 * "xxxx..." looked like the name itself. A cut one says so; the result's target is whole. */
Test(pipeline, an_unknown_target_quoted_cut_says_so, .init = up, .fini = down, .timeout = 300)
{
    char *long_name = filled(100, 'x');
    char targets[160];
    snprintf(targets, sizeof(targets), "nope,%s", long_name);
    char *ev = iw_make_event("UNK-1", "acme", "INV-UNK", 1, targets);
    const char *keys[] = {"acme/INV-UNK"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(
        iw_kafka_produce(S.brokers, "invoice-events", keys, (const char *const *)&ev, 1, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 2, 120000);
    cr_assert_eq(r.n, 2, "%s", worker_log_tail());
    char want[160];
    snprintf(want, sizeof(want), "unknown target instance \"%.64s\" (cut: see target)", long_name);
    for (size_t i = 0; i < r.n; i++) {
        const char *t = iw_json_str(r.json[i], "target");
        cJSON *err = cJSON_GetObjectItemCaseSensitive(r.json[i], "error");
        cr_assert_str_eq(iw_json_str(r.json[i], "status"), "rejected");
        if (strcmp(t, "nope") == 0)
            cr_assert_str_eq(iw_json_str(err, "message"), "unknown target instance \"nope\"");
        else
            cr_assert(strcmp(t, long_name) == 0 && strcmp(iw_json_str(err, "message"), want) == 0,
                      "%s: %s", t, iw_json_str(err, "message"));
    }
    iw_results_free(&r);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0);
    free(long_name);
    free(ev);
}

/* Produces n events, makes kafka-local refuse the next `refusals` Produce requests as too large,
 * and starts the worker (whose first produce requests those are). */
static void produce_then_refuse(const char *const *keys, const char *const *vals, size_t n,
                                int refusals)
{
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, n, NULL), 0);
    char cmd[64], reply[256];
    snprintf(cmd, sizeof(cmd), "errors Produce %d MSG_SIZE_TOO_LARGE", refusals);
    cr_assert_eq(iw_stack_kafka_cmd(&S, cmd, reply, sizeof(reply)), 0, "kafka-local: %s", reply);
    start_worker(&W, NULL, NULL, "worker.log");
}

/* The worker's first produce requests are refused as too large by the broker (kafka-local
 * fails the next `count` Produce requests). The broker refuses a whole batch, so small
 * messages are sent again whole: every result keeps its key, the dead letter its value. */
Test(pipeline, a_batch_the_broker_refuses_as_too_large_is_sent_again_whole, .init = up,
     .fini = down, .timeout = 300)
{
    char *good = iw_make_event("GOOD-REF", "acme", "INV-REF", 1, "centra_soap");
    const char *vals[] = {"{\"not\": \"an event\"}", good};
    const char *keys[] = {"acme/INV-REF", "acme/INV-REF"};
    produce_then_refuse(keys, vals, 2, 2);

    iw_results r = iw_results_read(&S, "invoice-results", 2, 120000);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(iw_results_count(&r, NULL, "rejected"), 1);
    cr_assert_eq(iw_results_count(&r, "centra_soap", "succeeded"), 1);
    for (size_t i = 0; i < r.n; i++) {
        cr_assert_str_eq(r.msgs[i].key, "acme/INV-REF");
        cr_assert_eq(header_num(&r.msgs[i], "x-iw-key-omitted"), -1);
    }
    iw_results_free(&r);
    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 1, 60000, 0, &dl);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(dl[0].key, "acme/INV-REF");
    cr_assert_str_eq(dl[0].value, vals[0], "the letter is whole");
    iw_kmsgs_free(dl, n);
    char path[512];
    snprintf(path, sizeof(path), "%s/worker.log", S.dir);
    char *log = iw_read_file(path, NULL);
    cr_assert_not_null(log);
    cr_assert(strstr(log, "the broker refused a message as too large"), "the refusal is logged");
    free(log);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0, "the worker ran on and stopped cleanly");
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 0);
    free(good);
}

static cJSON *log_line(const char *msg_text, const char *f1, const char *v1, const char *f2,
                       const char *v2);

/* The same for a poison event with a 70,000-byte key: its result and dead letter are large
 * themselves, so once refused they go again without the key (the letter keeps its value), and
 * a log line names the event whose message went shorter (review 107). */
Test(pipeline, a_large_message_the_broker_refuses_is_sent_shorter, .init = up, .fini = down,
     .timeout = 300)
{
    const size_t big = 70000;
    char *key = filled(big, 'k');
    const char *vals[] = {"{}"};
    const char *keys[] = {key};
    produce_then_refuse(keys, vals, 1, 2);

    iw_results r = iw_results_read(&S, "invoice-results", 1, 120000);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(iw_results_count(&r, NULL, "rejected"), 1);
    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 1, 60000, 0, &dl);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(dl[0].value, "{}", "the small value is kept");
    /* the first two produce requests were refused: the result, the letter or both went again
     * without the key; what the broker took at once is whole */
    size_t shortened = 0;
    const iw_kmsg *both[] = {&r.msgs[0], &dl[0]};
    for (size_t i = 0; i < 2; i++) {
        long long omitted = header_num(both[i], "x-iw-key-omitted");
        if (omitted == -1) {
            cr_assert_str_eq(both[i]->key, key, "a message the broker took is whole");
        } else {
            cr_assert_eq(omitted, (long long)big);
            cr_assert_str_eq(both[i]->key, "");
            shortened++;
        }
    }
    cr_assert_geq(shortened, 1, "a refused large message went again without its key");
    char *part = iw_kmsg_header(&dl[0], "x-iw-source-partition");
    char *off = iw_kmsg_header(&dl[0], "x-iw-source-offset");
    cr_assert(part && off);
    char eid[96];
    snprintf(eid, sizeof(eid), "kafka:invoice-events:%s:%s", part, off);
    cJSON *line = log_line("result too large for the broker; sending it without the event's key",
                           "event_id", eid, NULL, NULL);
    if (!line)
        line = log_line("dead letter too large for the broker; sending it shorter", "event_id", eid,
                        NULL, NULL);
    cr_assert_not_null(line, "no line names %s, whose message went shorter", eid);
    cJSON_Delete(line);
    free(part);
    free(off);
    iw_kmsgs_free(dl, n);
    iw_results_free(&r);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0, "the worker ran on and stopped cleanly");
    free(key);
}

/* A broker that keeps refusing batches of small messages (a topic whose max.message.bytes is
 * below the producer's batch.size) is a config error: after a few tries the worker stops,
 * saying so, and commits nothing. */
Test(pipeline, a_broker_that_keeps_refusing_stops_the_worker_with_a_reason, .init = up,
     .fini = down, .timeout = 300)
{
    const char *vals[] = {"{\"not\": \"an event\"}"};
    const char *keys[] = {"acme/INV-KR"};
    produce_then_refuse(keys, vals, 1, 20);
    int status = iw_proc_wait(&W, 60000);
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
              "the worker stopped with exit status 1 (status %d)", status);
    char path[512];
    snprintf(path, sizeof(path), "%s/worker.log", S.dir);
    char *log = iw_read_file(path, NULL);
    cr_assert_not_null(log);
    cr_assert(strstr(log, "the broker keeps refusing as too large; stopping"), "%s", log);
    free(log);
    cr_assert_eq(iw_kafka_group_lag(S.brokers, "invoice-worker", "invoice-events"), 1,
                 "the event was not committed");
}

/* A results or dead-letter topic the brokers do not have (and do not create on use) would stop
 * the worker at its first result, after every restart, holding that partition: the worker
 * refuses to start instead, naming the setting and the topic, before it takes any event. The
 * brokers may say so of a topic just created (it has not reached them all yet): the worker asks
 * again for topic.metadata.propagation.max.ms, as its producer would wait, here 1 s.
 * kafka-local's brokers report the topic as unknown in metadata. */
Test(pipeline, an_output_topic_the_brokers_do_not_have_stops_the_start, .init = up, .fini = down,
     .timeout = 300)
{
    char *ev = iw_make_event("NO-TOPIC-1", "acme", "INV-NT", 1, "centra_soap");
    const char *vals[] = {ev};
    const char *keys[] = {"acme/INV-NT"};
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 1, NULL), 0);
    static const char *const setting[] = {"results", "dead_letter"};
    static const char *const topic[] = {"no-such-results", "no-such-letters"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[128], reply[256], root[256], name[32], log[32], expect[160];
        snprintf(cmd, sizeof(cmd), "topic-error %s UNKNOWN_TOPIC_OR_PART", topic[i]);
        cr_assert_eq(iw_stack_kafka_cmd(&S, cmd, reply, sizeof(reply)), 0, "kafka-local: %s",
                     reply);
        snprintf(root, sizeof(root),
                 "{\"kafka\": {\"topics\": {\"%s\": \"%s\"}, \"properties\": "
                 "{\"producer.topic.metadata.propagation.max.ms\": 1000}}}",
                 setting[i], topic[i]);
        iw_stack_overlay extra = {.root = root};
        snprintf(name, sizeof(name), "w%zu.json", i);
        snprintf(log, sizeof(log), "w%zu.log", i);
        const char *cfg = iw_stack_config_with(&S, name, &extra);
        cr_assert_not_null(cfg);
        cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, log), 0);
        int status = iw_proc_wait(&W, 60000);
        cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "the worker refused to start (status %d)", status);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", S.dir, log);
        char *text = iw_read_file(path, NULL);
        cr_assert_not_null(text);
        snprintf(expect, sizeof(expect), "kafka.topics.%s: the brokers have no topic \\\"%s\\\"",
                 setting[i], topic[i]);
        cr_assert(strstr(text, expect), "%s", text);
        cr_assert_null(strstr(text, "partitions assigned"), "it took no partition: %s", text);
        free(text);
    }

    /* a topic the brokers say they lack for 1.5 s, of the 10 s allowed: the worker starts, and
     * the result lands there */
    char reply[256];
    cr_assert_eq(iw_stack_kafka_cmd(&S, "topic-error late-results UNKNOWN_TOPIC_OR_PART", reply,
                                    sizeof(reply)),
                 0, "kafka-local: %s", reply);
    iw_stack_overlay late = {
        .root = "{\"kafka\": {\"topics\": {\"results\": \"late-results\"}, \"properties\": "
                "{\"producer.topic.metadata.propagation.max.ms\": 10000}}}"};
    const char *cfg = iw_stack_config_with(&S, "late.json", &late);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, "late.log"), 0);
    iw_sleep_ms(1500);
    cr_assert_eq(iw_stack_kafka_cmd(&S, "topic-error late-results NO_ERROR", reply, sizeof(reply)),
                 0, "kafka-local: %s", reply);
    iw_results r = iw_results_read(&S, "late-results", 1, 120000);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(iw_results_count(&r, "centra_soap", "succeeded"), 1);
    iw_results_free(&r);
    free(ev);
}

/* Waits up to timeout_ms for `text` in the stack's file `log`; true when it appeared. */
static bool log_shows(const char *log, const char *text, int timeout_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", S.dir, log);
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        char *body = iw_read_file(path, NULL);
        bool found = body && strstr(body, text);
        free(body);
        if (found)
            return true;
        iw_sleep_ms(100);
    }
    return false;
}

Test(pipeline, the_start_refuses_a_topic_it_may_not_use_and_stops_on_a_signal_while_it_waits,
     .init = up, .fini = down, .timeout = 300)
{
    char reply[256];
    /* not authorized: Kafka's write permission implies describe, so this worker cannot write */
    cr_assert_eq(iw_stack_kafka_cmd(&S, "topic-error locked-results TOPIC_AUTHORIZATION_FAILED",
                                    reply, sizeof(reply)),
                 0, "kafka-local: %s", reply);
    iw_stack_overlay locked = {.root =
                                   "{\"kafka\": {\"topics\": {\"results\": \"locked-results\"}}}"};
    const char *cfg = iw_stack_config_with(&S, "locked.json", &locked);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, "locked.log"), 0);
    int status = iw_proc_wait(&W, 60000);
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
              "the worker refused to start (status %d)", status);
    cr_assert(log_shows("locked.log",
                        "kafka.topics.results: the brokers refuse the topic \\\"locked-results\\\"",
                        0),
              "the refusal names the setting and the topic");

    /* a topic the brokers do not know, with two minutes to appear: SIGTERM ends the wait, and
     * the worker exits as a stopped worker does, without having joined the group */
    cr_assert_eq(iw_stack_kafka_cmd(&S, "topic-error slow-results UNKNOWN_TOPIC_OR_PART", reply,
                                    sizeof(reply)),
                 0, "kafka-local: %s", reply);
    iw_stack_overlay slow = {
        .root = "{\"kafka\": {\"topics\": {\"results\": \"slow-results\"}, \"properties\": "
                "{\"producer.topic.metadata.propagation.max.ms\": 120000}}}"};
    cfg = iw_stack_config_with(&S, "slow.json", &slow);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, "slow.log"), 0);
    cr_assert(log_shows("slow.log", "waiting for the brokers to know an output topic", 60000),
              "the worker says what it waits for");
    iw_proc_signal(&W, SIGTERM);
    status = iw_proc_wait(&W, 60000); /* half the two minutes it would otherwise wait */
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "SIGTERM during the wait is a clean stop (status %d)", status);
    cr_assert(log_shows("slow.log", "stopped before the start finished", 0));
    cr_assert_not(log_shows("slow.log", "partitions assigned", 0), "it took no partition");
}

Test(pipeline, redelivery_while_in_flight_is_a_duplicate, .init = up, .fini = down, .timeout = 300)
{
    /* the target is slow, so the second copy arrives while the first is still being sent */
    cr_assert_eq(iw_sim_control(&S, "/_sim/faults",
                                "{\"target\": \"*\", \"kind\": \"latency\", \"ms\": 1500}"),
                 200);
    char *ev = iw_make_event("REDELIVER-1", "acme", "INV-R1", 3, "centra_soap,midnight");
    const char *vals[] = {ev, ev};
    const char *keys[] = {"acme/INV-R1", "acme/INV-R1"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 2, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 4, 120000);
    cr_assert_eq(r.n, 4);
    cr_assert_eq(iw_results_count(&r, NULL, "succeeded"), 2);
    cr_assert_eq(iw_results_count(&r, NULL, "duplicate"), 2);
    /* the duplicate is published first, so "latest per result_id" is the success */
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(iw_json_str(r.json[i], "status"), "succeeded") == 0)
            for (size_t k = i + 1; k < r.n; k++)
                cr_assert_str_neq(iw_json_str(r.json[k], "result_id"),
                                  iw_json_str(r.json[i], "result_id"),
                                  "a later result replaces success");
    cr_assert_eq(iw_sim_calls(&S, "REDELIVER-1", "centra_soap"), 1);
    cr_assert_eq(iw_sim_calls(&S, "REDELIVER-1", "midnight"), 1);
    iw_results_free(&r);
    free(ev);
}

/* The largest version an event may carry (2^53 - 1: events are JSON) keeps every digit in the
 * result, as a plain integer. */
/* An event_id may be 128 bytes and an unknown target name any length: the result carries the
 * id whole and its result_id ("<event_id>/<target>") too, since that is how results are matched
 * to events and told apart. */
Test(pipeline, the_longest_ids_are_whole_in_the_result, .init = up, .fini = down, .timeout = 300)
{
    char eid[129], target[601];
    for (int i = 0; i < 128; i++)
        eid[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"[i % 40];
    eid[128] = '\0';
    memset(target, 'z', 600);
    target[600] = '\0';
    char *ev1 = iw_make_event(eid, "acme", "INV-LONGID", 1, "centra_soap");
    /* the long name goes in by hand, replacing a short one */
    char *short_one = iw_make_event("LONG-TARGET-1", "acme", "INV-LONGT", 1, "LONGNAME");
    char *at = strstr(short_one, "\"LONGNAME\"");
    cr_assert_not_null(at, "%s", short_one);
    char *ev2 = NULL;
    cr_assert_gt(asprintf(&ev2, "%.*s\"%s\"%s", (int)(at - short_one), short_one, target,
                          at + strlen("\"LONGNAME\"")),
                 0);
    free(short_one);
    const char *vals[] = {ev1, ev2};
    const char *keys[] = {"acme/INV-LONGID", "acme/INV-LONGT"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 2, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 2, 120000);
    cr_assert_eq(r.n, 2, "%zu results; the worker's log ends:\n%s", r.n, worker_log_tail());
    int seen = 0;
    for (size_t i = 0; i < r.n; i++) {
        const char *id = iw_json_str(r.json[i], "event_id");
        char want[800];
        if (id && strcmp(id, eid) == 0) {
            cr_assert_str_eq(iw_json_str(r.json[i], "status"), "succeeded", "%s", r.msgs[i].value);
            snprintf(want, sizeof(want), "%s/centra_soap", eid);
            seen |= 1;
        } else {
            cr_assert_str_eq(id, "LONG-TARGET-1", "%s", r.msgs[i].value);
            cr_assert_str_eq(iw_json_str(r.json[i], "status"), "rejected", "%s", r.msgs[i].value);
            cr_assert_str_eq(iw_json_str(r.json[i], "target"), target);
            snprintf(want, sizeof(want), "LONG-TARGET-1/%s", target);
            seen |= 2;
        }
        cr_assert_str_eq(iw_json_str(r.json[i], "result_id"), want, "%s", r.msgs[i].value);
    }
    cr_assert_eq(seen, 3);
    iw_results_free(&r);
    free(ev1);
    free(ev2);
}

Test(pipeline, the_largest_version_is_exact_in_the_result, .init = up, .fini = down, .timeout = 300)
{
    /* the event helper writes numbers through a double: put the digits in by hand */
    char *one = iw_make_event("BIGV-1", "acme", "INV-BIGV", 1, "centra_soap");
    char *at = strstr(one, "\"version\":1,");
    cr_assert_not_null(at, "%s", one);
    char *ev = NULL;
    cr_assert_gt(asprintf(&ev, "%.*s\"version\":9007199254740991,%s", (int)(at - one), one,
                          at + strlen("\"version\":1,")),
                 0);
    free(one);
    const char *vals[] = {ev};
    const char *keys[] = {"acme/INV-BIGV"};
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 1, NULL), 0);
    iw_results r = iw_results_read(&S, "invoice-results", 1, 120000);
    cr_assert_eq(r.n, 1);
    cr_assert_not_null(strstr(r.msgs[0].value, "\"version\":9007199254740991,"), "%s",
                       r.msgs[0].value);
    cr_assert_str_eq(iw_json_str(r.json[0], "event_id"), "BIGV-1");
    iw_results_free(&r);
    free(ev);
}

/* The first line of worker.log (parsed; caller cJSON_Delete's) whose msg is msg_text and whose
 * fields f1 and f2 hold v1 and v2 (f2 NULL: f1 alone), or NULL. */
static cJSON *log_line(const char *msg_text, const char *f1, const char *v1, const char *f2,
                       const char *v2)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/worker.log", S.dir);
    char *log = iw_read_file(path, NULL);
    cr_assert_not_null(log);
    cJSON *found = NULL;
    for (char *line = strtok(log, "\n"); line && !found; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const char *msg = iw_json_str(o, "msg");
        const char *a = iw_json_str(o, f1), *b = f2 ? iw_json_str(o, f2) : NULL;
        if (msg && strcmp(msg, msg_text) == 0 && a && strcmp(a, v1) == 0 &&
            (!f2 || (b && strcmp(b, v2) == 0)))
            found = o;
        else
            cJSON_Delete(o);
    }
    free(log);
    return found;
}

/* Messages Kafka allows that are no event: a tombstone, an empty key, no key, and events whose
 * replay target header has no value, an empty one, or a NUL byte inside (a C string would read
 * "centra_soap" and send the event there). Each is poison with its reason; its dead letter keeps
 * the key and value as they came (no value stays none, an empty key stays empty, not absent);
 * its log line names the partition, offset and the event_id of its result; nothing reached the
 * simulator for them. */
Test(pipeline, a_dead_letter_keeps_the_message_as_it_came_and_its_log_line_names_it, .init = up,
     .fini = down, .timeout = 300)
{
    char *ev[3];
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "HDR-%d", i);
        ev[i] = iw_make_event(id, "acme", "INV-HDR", i + 1, "centra_soap");
    }
    char *good = iw_make_event("GOOD-1", "acme", "INV-GOOD", 1, "centra_soap");
    const char *keys[] = {"acme/INV-T", "", NULL, "acme/INV-GOOD"};
    const char *vals[] = {NULL, "not json", "{\"schema\": 7}", good};
    static const char nul_name[] = "centra_soap\0junk";
    start_worker(&W, NULL, NULL, "worker.log");
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys, vals, 3, NULL), 0);
    const char *hk = "acme/INV-HDR", *hn = "x-iw-replay-target";
    cr_assert_eq(iw_kafka_produce_header(S.brokers, "invoice-events", hk, ev[0], hn, nul_name,
                                         sizeof(nul_name) - 1),
                 0);
    cr_assert_eq(iw_kafka_produce_header(S.brokers, "invoice-events", hk, ev[1], hn, "", 0), 0);
    cr_assert_eq(iw_kafka_produce_header(S.brokers, "invoice-events", hk, ev[2], hn, NULL, 0), 0);
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", keys + 3, vals + 3, 1, NULL), 0);

    iw_results r = iw_results_read(&S, "invoice-results", 7, 120000);
    cr_assert_eq(r.n, 7, "%s", worker_log_tail());
    cr_assert_eq(iw_results_count(&r, NULL, "rejected"), 6);
    cr_assert_eq(iw_results_count(&r, "centra_soap", "succeeded"), 1);
    iw_results_free(&r);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "HDR-%d", i);
        cr_assert_eq(iw_sim_calls(&S, id, "centra_soap"), 0, "%s reached the target", id);
    }
    cr_assert_eq(iw_sim_calls(&S, "GOOD-1", "centra_soap"), 1);

    iw_kmsg *dl = NULL;
    size_t n = iw_kafka_read_all(S.brokers, "invoice-events-dlq", 6, 60000, 0, &dl);
    cr_assert_eq(n, 6);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        char *err = iw_kmsg_header(&dl[i], "x-iw-error");
        char *part = iw_kmsg_header(&dl[i], "x-iw-source-partition");
        char *off = iw_kmsg_header(&dl[i], "x-iw-source-offset");
        cr_assert(err && part && off);
        if (dl[i].value_null) {
            seen |= 1;
            cr_assert_str_eq(dl[i].key, "acme/INV-T");
            cr_assert(!dl[i].key_null);
            cr_assert_str_eq(err, "event is empty");
        } else if (strcmp(dl[i].value, "not json") == 0) {
            seen |= 2;
            cr_assert(!dl[i].key_null, "an empty key stays a key");
            cr_assert_str_eq(dl[i].key, "");
        } else if (strcmp(dl[i].value, "{\"schema\": 7}") == 0) {
            seen |= 4;
            cr_assert(dl[i].key_null, "no key stays no key");
        } else if (strcmp(dl[i].value, ev[0]) == 0) {
            seen |= 8;
            cr_assert_str_eq(err, "header x-iw-replay-target contains a NUL byte");
        } else if (strcmp(dl[i].value, ev[1]) == 0 || strcmp(dl[i].value, ev[2]) == 0) {
            seen |= strcmp(dl[i].value, ev[1]) == 0 ? 16 : 32;
            cr_assert_str_eq(err, "header x-iw-replay-target is empty");
        }
        cr_assert(dl[i].value_null || dl[i].len == strlen(dl[i].value));
        cJSON *line = log_line("poison event", "partition", part, "offset", off);
        cr_assert_not_null(line, "no poison log line for %s:%s", part, off);
        char eid[128];
        snprintf(eid, sizeof(eid), "kafka:invoice-events:%s:%s", part, off);
        cr_assert_str_eq(iw_json_str(line, "event_id"), eid);
        cr_assert_str_eq(iw_json_str(line, "reason"), err);
        cJSON_Delete(line);
        /* and its result's line, as its result names it (review 106: it named none) */
        line = log_line("result", "event_id", eid, "status", "rejected");
        cr_assert_not_null(line, "no result log line for %s", eid);
        cJSON_Delete(line);
        free(err);
        free(part);
        free(off);
    }
    cr_assert_eq(seen, 63, "letters seen: %#x", seen);
    iw_kmsgs_free(dl, n);
    cr_assert_eq(iw_proc_stop(&W, 30000), 0);
    for (int i = 0; i < 3; i++)
        free(ev[i]);
    free(good);
}
