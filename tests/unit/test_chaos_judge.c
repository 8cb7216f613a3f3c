/* test_chaos_judge.c: the chaos verdict's rule for one (invoice, target) history: an older
 * version after a newer one is a regression (by header or by the version the body carried), the
 * newest accepted again is a repeat, anything newer moves the bar. And the plan's event_ids:
 * which events share one at a target, how their results are told apart, the final versions a
 * target may hold where versions share one, and the verdict on each such group. */
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
    size_t reused = 0, in_a_row = 0, past_the_one_between = 0;
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
        /* the id's own event is one of the invoice's last three versions: at most two
         * versions of the invoice between them; and of the two versions just before a reuse,
         * one is under an id of its own (never three versions of an invoice in a row reuse
         * ids) */
        int between = 0;
        long before[2] = {-1, -1};
        for (size_t k = (size_t)e->id_of; k < i; k++)
            if (p.events[k].invoice == e->invoice) {
                between += k > (size_t)e->id_of;
                before[1] = before[0];
                before[0] = (long)k;
            }
        cr_expect_leq(between, 2, "event %zu reuses the id of event %d", i, (int)e->id_of);
        bool own0 = p.events[before[0]].id_of == (int32_t)before[0];
        cr_expect(own0 || (before[1] >= 0 && p.events[before[1]].id_of == (int32_t)before[1]),
                  "event %zu, a reuse, follows events %ld and %ld, reuses too", i, before[1],
                  before[0]);
        in_a_row += !own0;
        /* the second of two in a row under an id older than the version before the first */
        past_the_one_between += !own0 && e->id_of < before[1];
        char a[64], b[64];
        ch_event_id(&p, i, a, sizeof(a));
        ch_event_id(&p, (size_t)e->id_of, b, sizeof(b));
        cr_expect_str_eq(a, b);
    }
    cr_expect_eq(reused, p.n_reused);
    cr_expect_gt(in_a_row, 5, "%zu reuses right after a reuse", in_a_row);
    cr_expect_eq(in_a_row, p.n_reused_in_a_row);
    cr_expect_gt(past_the_one_between, 2, "%zu of them", past_the_one_between);
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

/* A plan of hand-made events (invoice, version, the event whose id it carries, targets, shared
 * targets); shared bits are given, as mark_shared would set them. */
static ch_plan hand_plan(const ch_event *events, size_t n, int n_invoices)
{
    ch_plan p;
    memset(&p, 0, sizeof(p));
    p.events = (ch_event *)events;
    p.n_events = n;
    p.n_invoices = n_invoices;
    return p;
}

#define T0 1u
#define T1 2u

Test(chaos_bounds, the_floor_is_the_newest_own_id_version_or_the_oldest_of_each_group)
{
    static const ch_event ev[] = {
        /* invoice 0 at t0: v1 (A), v2 (B), v3 under A: v2 at least, v3 at most */
        {0, 1, 0, T0, T0, 1},
        {0, 2, 1, T0, 0, 1},
        {0, 3, 0, T0, T0, 1},
        /* invoice 1: v1 (C) at t0, v2 under C at t1 only (its own there), v3 under C at t0 */
        {1, 1, 3, T0, T0, 1},
        {1, 2, 3, T1, 0, 1},
        {1, 3, 3, T0, T0, 1},
        /* invoice 2 at t0 and t1: v1 (D), v2 (E), v3 under D, v4 under E */
        {2, 1, 6, T0 | T1, T0 | T1, 1},
        {2, 2, 7, T0 | T1, T0 | T1, 1},
        {2, 3, 6, T0 | T1, T0 | T1, 1},
        {2, 4, 7, T0 | T1, T0 | T1, 1},
        /* invoice 3 at t1: v1 (F), v2 under F, v3 under F: two reuses in a row */
        {3, 1, 10, T1, T1, 1},
        {3, 2, 10, T1, T1, 1},
        {3, 3, 10, T1, T1, 1},
    };
    ch_plan p = hand_plan(ev, sizeof(ev) / sizeof(ev[0]), 4);
    int32_t want[4 * CH_N_TARGETS] = {0}, floor[4 * CH_N_TARGETS] = {0};
    ch_plan_bounds(&p, want, floor);
#define CELL(inv, t) ((inv)*CH_N_TARGETS + (t))
    cr_expect_eq(want[CELL(0, 0)], 3);
    cr_expect_eq(floor[CELL(0, 0)], 2, "v2, under an id of its own, is newer than A's first");
    cr_expect_eq(want[CELL(0, 1)], 0, "nothing went to t1");
    cr_expect_eq(want[CELL(1, 0)], 3);
    cr_expect_eq(floor[CELL(1, 0)], 1, "C's group at t0 starts at v1, and v2 never went there");
    cr_expect_eq(want[CELL(1, 1)], 2);
    cr_expect_eq(floor[CELL(1, 1)], 2, "at t1, v2 is the only version under C: its own there");
    cr_expect_eq(want[CELL(2, 0)], 4);
    cr_expect_eq(floor[CELL(2, 0)], 2, "E's group starts at v2, D's at v1");
    cr_expect_eq(floor[CELL(2, 1)], 2);
    cr_expect_eq(want[CELL(3, 1)], 3);
    cr_expect_eq(floor[CELL(3, 1)], 1, "F's first version, whatever follows under F");
#undef CELL
}

/* One group: each member's (accepted, results, statuses), and the faults it must show. */
typedef struct member {
    bool accepted;
    uint32_t results;
    uint16_t statuses;
} member;

static int group_faults(const member *m, size_t n, long *unnamed)
{
    ch_reuse_group g;
    ch_reuse_group_init(&g);
    for (size_t i = 0; i < n; i++)
        ch_reuse_group_add(&g, (long)i + 100, m[i].accepted, m[i].results, m[i].statuses);
    *unnamed = g.unnamed;
    return ch_reuse_group_faults(&g);
}

Test(chaos_reuse, the_first_to_claim_is_sent_and_the_others_are_named)
{
    long u;
    static const member ok[] = {{true, 1, CH_ST_SUCCEEDED},
                                {false, 1, CH_ST_REJECTED},
                                {false, 2, CH_ST_STALE | CH_ST_DUPLICATE}};
    cr_expect_eq(group_faults(ok, 3, &u), 0);
    static const member superseded[] = {{false, 1, CH_ST_SUPERSEDED}, {false, 1, CH_ST_REJECTED}};
    cr_expect_eq(group_faults(superseded, 2, &u), 0,
                 "none accepted: the first was superseded by a newer version sent instead");
    static const member failed[] = {{true, 1, CH_ST_SUCCEEDED}, {false, 1, CH_ST_FAILED}};
    cr_expect_eq(group_faults(failed, 2, &u), 0, "a failed one was not sent");
    static const member no_result[] = {{true, 1, CH_ST_SUCCEEDED}, {false, 0, 0}};
    cr_expect_eq(group_faults(no_result, 2, &u), 0, "a lost one is counted as lost elsewhere");
    static const member redelivered[] = {{true, 3, CH_ST_SUCCEEDED | CH_ST_DUPLICATE},
                                         {false, 1, CH_ST_REJECTED}};
    cr_expect_eq(group_faults(redelivered, 2, &u), 0, "copies of the one sent are duplicates");
}

Test(chaos_reuse, two_accepted_none_accepted_or_one_unnamed_are_faults)
{
    long u;
    static const member twice[] = {
        {true, 1, CH_ST_SUCCEEDED}, {false, 1, CH_ST_REJECTED}, {true, 1, CH_ST_SUCCEEDED}};
    cr_expect_eq(group_faults(twice, 3, &u), CH_REUSE_TWICE);
    static const member none[] = {{false, 1, CH_ST_REJECTED}, {false, 1, CH_ST_REJECTED}};
    cr_expect_eq(group_faults(none, 2, &u), CH_REUSE_NONE, "the first to claim must be sent");
    static const member dup[] = {
        {true, 1, CH_ST_SUCCEEDED}, {false, 1, CH_ST_REJECTED}, {false, 1, CH_ST_DUPLICATE}};
    cr_expect_eq(group_faults(dup, 3, &u), CH_REUSE_UNNAMED, "a reuse taken for a duplicate");
    cr_expect_eq(u, 102, "the member named is the third");
    static const member claimed_ok[] = {{false, 1, CH_ST_SUCCEEDED}, {true, 1, CH_ST_SUCCEEDED}};
    cr_expect_eq(group_faults(claimed_ok, 2, &u), CH_REUSE_UNNAMED,
                 "succeeded, yet the target never accepted it");
}

Test(chaos_plan, a_tail_holds_two_claimed_ids_for_the_last_two_of_four_versions)
{
    ch_plan p;
    ch_mix mix = {.poison = 0.01, .late = 0.05, .dup = 0.05, .reuse = 0.02, .tails = 60};
    cr_assert_eq(ch_plan_build(&p, 1800, 60, mix, 1u << 1, 1207), 0);
    cr_expect_eq(p.n_tails, 60);
    cr_expect_eq(p.n_msgs, 1800);
    cr_assert_eq(p.n_gates, 3);
    /* S1 of every invoice after the first gate, S2 after the second, then four of each */
    cr_expect_eq(p.gate_at[0], 1800 - 6 * 60);
    cr_expect_eq(p.gate_at[1], p.gate_at[0] + 60);
    cr_expect_eq(p.gate_at[2], p.gate_at[1] + 60);
    /* each gate waits for every pair of the messages before it: each event's targets, once
     * however often it was sent, and one per poison message */
    for (int g = 0; g < p.n_gates; g++) {
        size_t need = 0;
        bool *seen = calloc(p.n_events, sizeof(*seen));
        for (size_t i = 0; i < p.gate_at[g]; i++) {
            const ch_msg *m = &p.msgs[i];
            if (m->kind == CH_MSG_POISON) {
                need++;
            } else if (!seen[m->event]) {
                seen[m->event] = true;
                for (int t = 0; t < CH_N_TARGETS; t++)
                    need += (p.events[m->event].targets >> t) & 1;
            }
        }
        free(seen);
        cr_expect_eq(p.gate_need[g], need, "gate %d", g);
    }
    int32_t want[60 * CH_N_TARGETS] = {0}, floor[60 * CH_N_TARGETS] = {0};
    ch_plan_bounds(&p, want, floor);
    for (int inv = 0; inv < 60; inv++) {
        const ch_msg *s1 = &p.msgs[p.gate_at[1] - 60 + (size_t)inv];
        const ch_msg *s2 = &p.msgs[p.gate_at[2] - 60 + (size_t)inv];
        const ch_msg *m = &p.msgs[p.gate_at[2] + 4 * (size_t)inv];
        cr_assert_eq(s1->invoice, inv);
        cr_assert_eq(s2->invoice, inv);
        for (int k = 0; k < 4; k++) {
            cr_assert_eq(m[k].invoice, inv, "invoice %d, message %d of four", inv, k);
            cr_assert_eq(m[k].kind, CH_MSG_EVENT);
        }
        const ch_event *e[6] = {&p.events[s1->event],  &p.events[s2->event],
                                &p.events[m[0].event], &p.events[m[1].event],
                                &p.events[m[2].event], &p.events[m[3].event]};
        for (int k = 0; k < 6; k++) {
            cr_expect_eq(e[k]->targets, e[0]->targets, "invoice %d: one set of targets", inv);
            if (k)
                cr_expect_eq(e[k]->version, e[k - 1]->version + 1, "invoice %d", inv);
        }
        cr_expect_eq(e[0]->id_of, s1->event, "S1 under an id of its own");
        cr_expect_eq(e[1]->id_of, s2->event, "S2 under an id of its own");
        cr_expect_eq(e[2]->id_of, m[0].event, "A under an id of its own");
        cr_expect_eq(e[3]->id_of, m[1].event, "B under an id of its own");
        cr_expect_eq(e[4]->id_of, s2->event, "the third of four under S2's id");
        cr_expect_eq(e[5]->id_of, s1->event, "the last under S1's id");
        /* the newest version is the last; it must end at B at least */
        size_t c = (size_t)inv * CH_N_TARGETS + 1;
        cr_expect_eq(want[c], e[5]->version, "invoice %d", inv);
        cr_expect_eq(floor[c], e[3]->version, "invoice %d", inv);
    }
    ch_plan_free(&p);
}

Test(chaos_plan, without_tails_no_gate)
{
    ch_plan p = reuse_plan(0.1, 1205);
    cr_expect_eq(p.n_tails, 0);
    cr_expect_eq(p.n_gates, 0);
    ch_plan_free(&p);
}
