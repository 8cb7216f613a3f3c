/* test_backpressure.c: worker.max_pending_bytes bounds the memory a hung target can pin: large
 * events to a target that never answers stop being consumed once their bytes reach the bound. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "docpaths.h"
#include "stack.h"
#include "testproc.h"

static iw_stack S;
static iw_proc W;

static void up(void)
{
    cr_assert_eq(iw_stack_start(&S, 16, false), 0, "local stack did not start");
}

static void down(void)
{
    iw_proc_stop(&W, 20000);
    iw_stack_stop(&S);
}

/* A metric's value from /metrics text (first series of that name), -1 when absent. */
static double metric(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *at = strstr(text, key);
    return at ? atof(at + strlen(key)) : -1;
}

/* The worker's peak resident set (VmHWM) in KiB, -1 when unknown. */
static long peak_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *st = iw_read_file(path, NULL);
    const char *at = st ? strstr(st, "VmHWM:") : NULL;
    long kib = at ? atol(at + 6) : -1;
    free(st);
    return kib;
}

/* Issue 11, item 6: 823 pending 900 KB events took the worker to 1.53 GB before; events were
 * counted, bytes were not. */
Test(backpressure, pending_bytes_bound_consumption_behind_a_hung_target, .init = up, .fini = down,
     .timeout = 300)
{
    enum { N = 40, BIG = 400 * 1024, BOUND = 4 * 1024 * 1024 };
    S.http_port = iw_free_port();
    char worker[128];
    snprintf(worker, sizeof(worker), "{\"max_pending_bytes\": %d}", BOUND);
    const char *cfg = iw_stack_config(&S, "w.json", NULL, worker);
    cr_assert_not_null(cfg);
    cr_assert_eq(iw_sim_control(&S, "/_sim/faults",
                                "{\"target\": \"invoicexpress\", \"kind\": \"hang\", "
                                "\"count\": 1000000}"),
                 200);
    cr_assert_eq(iw_stack_worker_start(&S, &W, cfg, "worker.log"), 0);

    char *pad = malloc(BIG + 1);
    cr_assert_not_null(pad);
    memset(pad, 'x', BIG);
    pad[BIG] = '\0';
    char *keys[N], *vals[N];
    for (int i = 0; i < N; i++) {
        char id[32], inv[32];
        snprintf(id, sizeof(id), "BP-%d", i);
        snprintf(inv, sizeof(inv), "INV-BP-%d", i);
        char *ev = iw_make_event(id, "acme", inv, 1, "invoicexpress");
        cJSON *doc = cJSON_Parse(ev);
        free(ev);
        cr_assert_not_null(doc);
        cJSON *invoice = cJSON_GetObjectItem(doc, "invoice");
        cJSON_DeleteItemFromObject(invoice, "note_internal");
        cJSON_AddStringToObject(invoice, "note_internal", pad);
        keys[i] = strdup(inv);
        vals[i] = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
    }
    free(pad);
    cr_assert_eq(iw_kafka_produce(S.brokers, "invoice-events", (const char *const *)keys,
                                  (const char *const *)vals, N, NULL),
                 0);
    for (int i = 0; i < N; i++) {
        free(keys[i]);
        free(vals[i]);
    }

    /* give it time to take everything it would take */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", S.http_port);
    double consumed = 0, last = -1;
    long long until = iw_now_ms() + 60000, stable_since = iw_now_ms();
    while (iw_now_ms() < until) {
        long st = 0;
        char *text = iw_http("GET", url, NULL, &st);
        if (text && st == 200)
            consumed = metric(text, "iw_events_consumed_total");
        free(text);
        if (consumed != last) {
            last = consumed;
            stable_since = iw_now_ms();
        } else if (consumed > 0 && iw_now_ms() - stable_since > 8000) {
            break;
        }
        iw_sleep_ms(500);
    }
    long rss = peak_rss_kib(W.pid);
    cr_log_info("consumed %.0f of %d events of %d KiB behind a hung target with "
                "max_pending_bytes %d KiB; worker peak RSS %ld KiB",
                consumed, N, BIG / 1024, BOUND / 1024, rss);
    /* the bound, plus what one poll may take from librdkafka's prefetch (1 MiB queue here) */
    int most = BOUND / BIG + 1 + (2 * 1024 * 1024) / BIG + 1;
    cr_assert_geq(consumed, BOUND / BIG, "it consumed up to the bound (%.0f)", consumed);
    cr_assert_leq(consumed, most, "consumption stopped near the bound: %.0f > %d", consumed, most);
}
