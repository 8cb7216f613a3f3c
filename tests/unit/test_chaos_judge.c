/* test_chaos_judge.c: the chaos verdict's rule for one (invoice, target) history: an older
 * version after a newer one is a regression (by header or by the version the body carried), the
 * newest accepted again is a repeat, anything newer moves the bar. And the plan's event_ids:
 * which events share one at a target, and how their results are told apart. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chaos.h"

/* One accepted update and what the judge must call it. */
typedef struct step {
    long long version, body;
    ch_update_kind want;
} step;

static void judge_all(const step *steps, size_t n)
{
    ch_judge j;
    ch_judge_init(&j);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(ch_judge_update(&j, steps[i].version, steps[i].body), steps[i].want,
                     "update %zu (v%lld, body v%lld)", i, steps[i].version, steps[i].body);
}

Test(chaos_judge, older_after_newer_is_a_regression_and_the_newest_again_a_repeat)
{
    static const step s[] = {{3, 3, CH_UPDATE_NEWER},
                             {5, 5, CH_UPDATE_NEWER},
                             {4, 4, CH_UPDATE_REGRESSION},
                             {5, 5, CH_UPDATE_REPEAT},
                             {6, 6, CH_UPDATE_NEWER}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
}

Test(chaos_judge, a_regression_does_not_lower_the_bar)
{
    /* v107 and v114 after v128: both older than the newest accepted */
    static const step s[] = {{128, 128, CH_UPDATE_NEWER},
                             {107, 107, CH_UPDATE_REGRESSION},
                             {114, 114, CH_UPDATE_REGRESSION},
                             {128, 128, CH_UPDATE_REPEAT}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
}

Test(chaos_judge, the_body_is_judged_beside_the_header)
{
    /* a newer header over an older body is still a regression at the target */
    static const step s[] = {{5, 5, CH_UPDATE_NEWER},
                             {6, 4, CH_UPDATE_REGRESSION},
                             {7, 7, CH_UPDATE_NEWER},
                             {7, 6, CH_UPDATE_REGRESSION}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
}

Test(chaos_judge, absent_versions_judge_by_what_is_there)
{
    static const step s[] = {{1, -1, CH_UPDATE_NEWER},
                             {2, -1, CH_UPDATE_NEWER},
                             {2, -1, CH_UPDATE_REPEAT},
                             {1, -1, CH_UPDATE_REGRESSION}};
    judge_all(s, sizeof(s) / sizeof(s[0]));
    ch_judge j;
    ch_judge_init(&j);
    cr_expect_eq(ch_judge_update(&j, 9, 9), CH_UPDATE_NEWER, "the first update is newer");
    cr_expect_eq(j.max_version, 9);
    cr_expect_eq(j.max_body, 9);
}

/* One call per (invoice, target) in flight at a time, across every worker: a call arriving
 * while the one applied before it was still held by the target overlaps it, unless the worker
 * had waited out its request timeout (the target held it past the worker's patience). */
Test(chaos_judge, a_call_arriving_before_the_one_before_it_was_applied_overlaps)
{
    /* previous: arrived at 1000, applied at 2500 (a 1.5 s reply); timeout 3000 */
    cr_expect(ch_judge_overlap(1000, 2500, 2000, 3000), "sent while the first was in flight");
    cr_expect(ch_judge_overlap(1000, 2500, 1000, 3000), "sent at the same moment");
    cr_expect_not(ch_judge_overlap(1000, 2500, 2500, 3000), "sent once it was applied");
    cr_expect_not(ch_judge_overlap(1000, 2500, 2600, 3000), "sent after it");
    /* held past the timeout: the worker gave up at 4000 and may send again */
    cr_expect(ch_judge_overlap(1000, 9000, 3999, 3000), "before the timeout ran out");
    cr_expect_not(ch_judge_overlap(1000, 9000, 4000, 3000), "after the timeout");
}

static ch_plan reuse_plan(double reuse, uint64_t seed)
{
    ch_plan p;
    ch_mix mix = {.poison = 0.01, .late = 0.05, .dup = 0.05, .reuse = reuse};
    cr_assert_eq(ch_plan_build(&p, 4000, 40, mix, 0, seed), 0);
    return p;
}

Test(chaos_plan, a_reuse_carries_an_earlier_version_s_event_id_of_its_own_invoice)
{
    ch_plan p = reuse_plan(0.1, 1205);
    cr_expect_gt(p.n_reused, 200, "%zu reuses of about 400", p.n_reused);
    size_t reused = 0;
    for (size_t i = 0; i < p.n_events; i++) {
        const ch_event *e = &p.events[i];
        const ch_event *first = &p.events[e->id_of];
        if (e->id_of == (int32_t)i)
            continue;
        reused++;
        cr_expect_lt((size_t)e->id_of, i, "event %zu", i);
        cr_expect_eq(first->id_of, e->id_of, "event %zu: the id's own event carries it", i);
        cr_expect_eq(first->invoice, e->invoice, "event %zu", i);
        cr_expect_lt(first->version, e->version, "event %zu", i);
        /* the id's own event is one of the invoice's last two versions: at most one version
         * of the invoice between them; and the version just before a reuse is under an id of
         * its own (two versions of an invoice in a row never reuse ids) */
        int between = 0;
        long before = -1;
        for (size_t k = (size_t)e->id_of; k < i; k++)
            if (p.events[k].invoice == e->invoice) {
                between += k > (size_t)e->id_of;
                before = (long)k;
            }
        cr_expect_leq(between, 1, "event %zu reuses the id of event %d", i, (int)e->id_of);
        cr_expect_eq(p.events[before].id_of, (int32_t)before,
                     "event %zu, a reuse, follows event %ld, a reuse too", i, before);
        char a[64], b[64];
        ch_event_id(&p, i, a, sizeof(a));
        ch_event_id(&p, (size_t)e->id_of, b, sizeof(b));
        cr_expect_str_eq(a, b);
    }
    cr_expect_eq(reused, p.n_reused);
    ch_plan_free(&p);
}

Test(chaos_plan, shared_bits_name_the_targets_two_events_of_one_id_go_to)
{
    ch_plan p = reuse_plan(0.1, 7);
    size_t shared = 0;
    for (size_t i = 0; i < p.n_events; i++)
        for (int t = 0; t < CH_N_TARGETS; t++) {
            bool other = false;
            for (size_t k = 0; k < p.n_events && !other; k++)
                other = k != i && p.events[k].id_of == p.events[i].id_of &&
                        (p.events[k].targets >> t) & 1;
            bool want = other && (p.events[i].targets >> t) & 1;
            cr_expect_eq((p.events[i].shared >> t) & 1, want, "event %zu target %d", i, t);
            shared += want;
        }
    cr_expect_gt(shared, 50, "%zu (event, target) pairs share an id", shared);
    ch_plan_free(&p);
}

Test(chaos_plan, without_reuse_no_id_is_shared)
{
    ch_plan p = reuse_plan(0, 1205);
    cr_expect_eq(p.n_reused, 0);
    for (size_t i = 0; i < p.n_events; i++) {
        cr_expect_eq(p.events[i].id_of, (int32_t)i);
        cr_expect_eq(p.events[i].shared, 0);
    }
    ch_plan_free(&p);
}

Test(chaos_plan, every_result_key_names_its_own_event_and_target)
{
    ch_plan p = reuse_plan(0.1, 99);
    for (size_t i = 0; i < p.n_events; i++)
        for (int t = 0; t < CH_N_TARGETS; t++) {
            if (!((p.events[i].targets >> t) & 1))
                continue;
            char key[160];
            long e = -1;
            int tt = -1;
            ch_result_key(&p, i, t, key, sizeof(key));
            cr_expect_eq(strstr(key, "@v") != NULL, (p.events[i].shared >> t) & 1, "%s", key);
            cr_assert_eq(ch_result_key_split(&p, key, &e, &tt), 0, "%s", key);
            cr_expect_eq(e, (long)i, "%s", key);
            cr_expect_eq(tt, t, "%s", key);
        }
    long e;
    int t;
    cr_expect_eq(ch_result_key_split(&p, "kafka:invoice-events:3:120/-", &e, &t), -1);
    ch_plan_free(&p);
}

Test(chaos_plan, the_message_carries_the_id_and_the_version_of_its_event)
{
    ch_plan p = reuse_plan(0.1, 1205);
    size_t checked = 0;
    for (size_t i = 0; i < p.n_msgs; i++) {
        const ch_msg *m = &p.msgs[i];
        if (m->kind == CH_MSG_POISON || p.events[m->event].id_of == m->event)
            continue;
        char key[64], eid[64];
        char *v = ch_msg_value(&p, m, key, sizeof(key));
        cJSON *j = cJSON_Parse(v);
        ch_event_id(&p, (size_t)m->event, eid, sizeof(eid));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "event_id");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
        cr_assert(cJSON_IsString(id) && cJSON_IsNumber(ver), "%s", v ? v : "(null)");
        cr_expect_str_eq(id->valuestring, eid);
        cr_expect_eq(ver->valueint, p.events[m->event].version);
        cr_expect_eq(ch_event_lookup(&p, eid, ver->valueint, -1), (long)m->event);
        cJSON_Delete(j);
        free(v);
        checked++;
    }
    cr_expect_gt(checked, 200);
    ch_plan_free(&p);
}

Test(chaos_table, results_sharing_a_result_id_are_counted_by_version)
{
    ch_table t;
    cr_assert_eq(ch_table_init(&t, 16), 0);
    cr_assert_eq(ch_table_expect(&t, "E1/midnight@v3", 1), 0);
    cr_assert_eq(ch_table_expect(&t, "E1/midnight@v5", 2), 0);
    cr_assert_eq(ch_table_expect(&t, "E2/midnight", 1), 0);
    cr_expect_eq(ch_table_seen(&t, "E1/midnight", 5, CH_ST_REJECTED), 0);
    cr_expect_eq(ch_table_seen(&t, "E1/midnight", 5, CH_ST_REJECTED), 0);
    cr_expect_eq(ch_table_seen(&t, "E1/midnight", 3, CH_ST_SUCCEEDED), 0);
    cr_expect_eq(ch_table_seen(&t, "E2/midnight", 7, CH_ST_SUCCEEDED), 0);
    ch_slot v3 = ch_table_get(&t, "E1/midnight@v3"), v5 = ch_table_get(&t, "E1/midnight@v5");
    cr_expect_eq(v3.results, 1);
    cr_expect_eq(v3.statuses, CH_ST_SUCCEEDED);
    cr_expect_eq(v5.results, 2);
    cr_expect_eq(v5.statuses, CH_ST_REJECTED);
    cr_expect_eq(ch_table_get(&t, "E2/midnight").results, 1, "a result_id of its own: its slot");
    /* a version no slot expects (or none at all) lands in the result_id's own slot */
    cr_expect_eq(ch_table_seen(&t, "E1/midnight", 4, CH_ST_STALE), 0);
    cr_expect_eq(ch_table_seen(&t, "E1/midnight", -1, CH_ST_STALE), 0);
    ch_slot plain = ch_table_get(&t, "E1/midnight");
    cr_expect_eq(plain.results, 2);
    cr_expect_eq(plain.expected, 0, "not a slot the plan expects: reported as unexpected");
    cr_expect_eq(t.expected, 3);
    cr_expect_eq(t.terminal, 3, "each expected slot with a result");
    ch_table_free(&t);
}
