/* check.c: the chaos run's verdict, judged by the simulator as an independent oracle: lost
 * pairs, regressions (an older version accepted after a newer one), wrong final states (header
 * and body), `succeeded` results the target never accepted, poison without a dead letter,
 * repeats and duplicate results, with examples of each failure.
 *
 * Where versions of an invoice carry one event_id to a target, the first to claim it there is
 * sent and the others are `rejected` (or stale, or superseded): which one depends on timing, so
 * the final state there may be any of them (at least the higher of the newest version under an
 * id of its own and the oldest sharing one), and their results (one result_id) are told apart
 * by version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chaos.h"

#define EXAMPLES 10      /* failures printed per kind */
#define CALLS_CHUNK 1000 /* events per /_sim/calls request (ids share the leading digits) */

static int target_index(const char *name)
{
    for (int t = 0; t < CH_N_TARGETS; t++)
        if (strcmp(name, ch_target_names[t]) == 0)
            return t;
    return -1;
}

/* "<event_id>:<target>" split into an event index and a target index: the event carrying that
 * id to that target at this version (-1: the first there). 0 or -1. */
static int split_pair(const ch_plan *plan, const char *key, long long version, long *event,
                      int *target)
{
    const char *colon = strrchr(key, ':');
    char eid[96];
    if (!colon || (size_t)(colon - key) >= sizeof(eid))
        return -1;
    snprintf(eid, sizeof(eid), "%.*s", (int)(colon - key), key);
    *target = target_index(colon + 1);
    if (*target < 0)
        return -1;
    *event = ch_event_lookup(plan, eid, version, *target);
    return *event >= 0 ? 0 : -1;
}

/* Statuses seen for a slot, as "succeeded+duplicate". */
static void status_text(uint16_t bits, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < CH_N_STATUS; i++)
        if (bits & (1 << i))
            n += (size_t)snprintf(buf + n, len > n ? len - n : 0, "%s%s", n ? "+" : "",
                                  ch_status_names[i]);
    if (!n)
        snprintf(buf, len, "none");
}

/* Input the mock cluster already dropped (its retention), per partition. */
typedef struct retention {
    int64_t *low; /* first offset still held */
    int n;
} retention;

static bool dropped(const retention *r, int32_t partition, int64_t offset)
{
    return r->low && partition >= 0 && partition < r->n && offset < r->low[partition];
}

/* Per event: 1 when every delivery of it was dropped before it could be consumed (malloc'd,
 * NULL when nothing was dropped or on no memory). */
static uint8_t *events_dropped(const ch_plan *plan, const retention *r)
{
    if (!r->low)
        return NULL;
    uint8_t *all = malloc(plan->n_events + 1);
    if (!all)
        return NULL;
    memset(all, 1, plan->n_events + 1);
    for (size_t i = 0; i < plan->n_msgs; i++) {
        const ch_msg *m = &plan->msgs[i];
        if (m->kind != CH_MSG_POISON && !dropped(r, m->partition, m->offset))
            all[m->event] = 0;
    }
    return all;
}

/* Where the deliveries of event e landed, as "p3@120 p3@455". */
static void positions(const ch_plan *plan, long e, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < plan->n_msgs && n + 24 < len; i++) {
        const ch_msg *m = &plan->msgs[i];
        if (m->kind != CH_MSG_POISON && m->event == e)
            n += (size_t)snprintf(buf + n, len - n, "%sp%d@%lld", n ? " " : "", (int)m->partition,
                                  (long long)m->offset);
    }
}

static void check_lost(const ch_plan *plan, ch_table *table, const iw_stack *s,
                       const retention *ret, ch_figures *fig)
{
    uint8_t *gone = events_dropped(plan, ret);
    pthread_mutex_lock(&table->mu);
    for (size_t i = 0; i < table->cap; i++) {
        const ch_slot *sl = &table->slots[i];
        if (!sl->key)
            continue;
        if (!sl->expected) {
            fig->unknown_results++;
            continue;
        }
        if (sl->results > sl->copies)
            fig->dup_beyond += sl->results - sl->copies;
        if (sl->results > 1)
            fig->dup_results += sl->results - 1;
        if (sl->results)
            continue;
        fig->lost++;
        char eid[96], pos[256] = "";
        long e;
        int t;
        if (ch_result_key_split(plan, sl->key, &e, &t) != 0)
            e = -1;
        fig->trimmed += e >= 0 && gone && gone[e];
        if (fig->lost > EXAMPLES)
            continue;
        if (e >= 0) {
            ch_event_id(plan, (size_t)e, eid, sizeof(eid));
            positions(plan, e, pos, sizeof(pos));
            int calls = iw_sim_calls(s, eid, ch_target_names[t]);
            fprintf(stderr,
                    "  LOST %s: invoice CH-%05d v%d, %d deliveries at %s, %d calls at the target\n",
                    sl->key, plan->events[e].invoice, plan->events[e].version,
                    plan->events[e].copies, pos, calls);
        } else {
            fprintf(stderr, "  LOST %s (poison)\n", sl->key);
        }
    }
    pthread_mutex_unlock(&table->mu);
    free(gone);
}

static void check_poison(const ch_plan *plan, ch_watch *watch, const retention *ret,
                         ch_figures *fig)
{
    for (size_t i = 0; i < plan->n_msgs; i++) {
        const ch_msg *m = &plan->msgs[i];
        if (m->delivered != 1) {
            fig->produce_failed += m->delivered == -1;
            continue;
        }
        if (m->kind != CH_MSG_POISON)
            continue;
        fig->poison++;
        if (ch_watch_dead_at(watch, m->partition, m->offset) > 0)
            continue;
        fig->trimmed += dropped(ret, m->partition, m->offset);
        if (fig->poison_missing++ < EXAMPLES)
            fprintf(stderr, "  POISON WITHOUT DEAD LETTER: %s partition %d offset %lld\n", CH_INPUT,
                    (int)m->partition, (long long)m->offset);
    }
}

/* What the simulator's histories say, for the checks that use them. */
typedef struct oracle {
    uint8_t *accepted;  /* per event: bit t when target t accepted it */
    uint8_t *truncated; /* per (invoice, target) cell: its history dropped older entries */
    int32_t *want;      /* per cell: the highest version the plan sent there (0: none) */
    int32_t *floor;     /* per cell: the lowest final version right there: the highest of
                         * those sent under an event_id of its own there and the oldest of
                         * each group sharing one (the first of a group to claim is sent, or
                         * superseded by a newer one that is) */
    long long t0;       /* production start (monotonic ms), for the times in examples */
    long long window;   /* ms after a call's arrival within which no other call of its
                         * (invoice, target) may arrive before it is applied */
} oracle;

static int oracle_init(oracle *o, const ch_plan *plan, long long t0)
{
    size_t cells = (size_t)plan->n_invoices * CH_N_TARGETS;
    o->accepted = calloc(plan->n_events + 1, 1);
    o->truncated = calloc(cells, 1);
    o->want = calloc(cells, sizeof(*o->want));
    o->floor = calloc(cells, sizeof(*o->floor));
    o->t0 = t0;
    if (!o->accepted || !o->truncated || !o->want || !o->floor)
        return -1;
    ch_plan_bounds(plan, o->want, o->floor);
    return 0;
}

static void oracle_free(oracle *o)
{
    free(o->accepted);
    free(o->truncated);
    free(o->want);
    free(o->floor);
}

/* A version string as a number; -1 when empty or not a number. */
static long long version_num(const char *v)
{
    if (!v || !*v)
        return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end ? -1 : n;
}

/* One accepted update from a history. */
typedef struct accepted_update {
    long long version; /* X-Invoice-Version (-1: none) */
    long long body;    /* the version the body carried (-1: none) */
    long event;        /* plan event index (-1: not an event of this run) */
    const char *key;   /* "<event_id>:<target>" as the simulator recorded it */
    int attempt;
    double at_s;       /* arrival, seconds after the start of production */
    double arrival_ms; /* arrival, monotonic ms */
    double applied_ms; /* when the target applied it (after any latency), monotonic ms */
    int applied_order; /* its place in the history (the order applied) */
} accepted_update;

static void read_update(const ch_plan *plan, const oracle *o, const cJSON *e, int t,
                        accepted_update *u)
{
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(e, "attempt");
    const cJSON *mono = cJSON_GetObjectItemCaseSensitive(e, "mono_ms");
    int tt = -1;
    u->version = version_num(iw_json_str(e, "version"));
    u->body = version_num(iw_json_str(e, "body_version"));
    u->key = iw_json_str(e, "event");
    if (!u->key || split_pair(plan, u->key, u->version, &u->event, &tt) != 0 || tt != t)
        u->event = -1;
    if (!u->key)
        u->key = "-";
    u->attempt = cJSON_IsNumber(att) ? att->valueint : -1;
    u->at_s = cJSON_IsNumber(mono) ? (mono->valuedouble - (double)o->t0) / 1000.0 : 0;
    const cJSON *applied = cJSON_GetObjectItemCaseSensitive(e, "applied_mono_ms");
    u->arrival_ms = cJSON_IsNumber(mono) ? mono->valuedouble : 0;
    u->applied_ms = cJSON_IsNumber(applied) ? applied->valuedouble : u->arrival_ms;
}

static int by_arrival(const void *x, const void *y)
{
    const accepted_update *a = x, *b = y;
    if (a->arrival_ms != b->arrival_ms)
        return a->arrival_ms < b->arrival_ms ? -1 : 1;
    return a->applied_order - b->applied_order; /* qsort is not stable: ties in applied order */
}

/* Counts the overlaps in the history of invoice inv at target t: two accepted calls of which
 * the later to arrive came while the other was in flight (not yet applied), within the worker's
 * request timeout of the other's arrival. One call per (invoice, target) at a time, across
 * every worker; the target may apply them in either order. */
static void check_overlaps(const ch_plan *plan, const oracle *o, const cJSON *hist, int inv, int t,
                           ch_figures *fig)
{
    int n = cJSON_GetArraySize(hist);
    accepted_update *u = n > 1 ? calloc((size_t)n, sizeof(*u)) : NULL;
    if (!u)
        return;
    int k = 0;
    for (const cJSON *e = hist->child; e && k < n; e = e->next, k++) {
        read_update(plan, o, e, t, &u[k]);
        u[k].applied_order = k;
    }
    qsort(u, (size_t)k, sizeof(*u), by_arrival);
    /* sorted by arrival: only the calls that arrived within the window after one can overlap it */
    for (int i = 0; i < k; i++) {
        const accepted_update *a = &u[i];
        for (int j = i + 1; j < k && u[j].arrival_ms < a->arrival_ms + (double)o->window; j++) {
            const accepted_update *b = &u[j];
            if (!ch_judge_overlap(a->arrival_ms, a->applied_ms, b->arrival_ms, o->window) ||
                fig->overlaps++ >= EXAMPLES)
                continue;
            fprintf(stderr,
                    "  OVERLAP: invoice CH-%05d at %s: %s attempt %d (v%lld) arrived at %.1f s, "
                    "while %s attempt %d (v%lld, arrived at %.1f s) was in flight until %.1f s\n",
                    inv, ch_target_names[t], b->key, b->attempt, b->version, b->at_s, a->key,
                    a->attempt, a->version, a->at_s, (a->applied_ms - (double)o->t0) / 1000.0);
        }
    }
    free(u);
}

/* Walks the history of invoice inv at target t in the order applied: regressions (an older
 * version, by header or by body, after a newer one), repeats of the newest version, updates
 * whose header, body and event disagree, and overlaps (check_overlaps); marks the events the
 * target accepted. */
static void check_history(const ch_plan *plan, oracle *o, const cJSON *hist, int inv, int t,
                          ch_figures *fig)
{
    ch_judge jd;
    ch_judge_init(&jd);
    accepted_update top = {.version = -1, .key = "-"};
    bool regressed = false, repeated = false;
    check_overlaps(plan, o, hist, inv, t, fig);
    for (const cJSON *e = hist ? hist->child : NULL; e; e = e->next) {
        accepted_update u;
        read_update(plan, o, e, t, &u);
        fig->accepted++;
        if (u.event >= 0)
            o->accepted[u.event] |= (uint8_t)(1u << t);
        long long planned = u.event >= 0 ? plan->events[u.event].version : -1;
        if (u.event < 0 || plan->events[u.event].invoice != inv || u.version != planned ||
            u.body != planned) {
            if (fig->disagreements++ < EXAMPLES)
                fprintf(stderr,
                        "  DISAGREEMENT: invoice CH-%05d at %s: %s attempt %d (plan v%lld) "
                        "accepted with header v%lld, body v%lld\n",
                        inv, ch_target_names[t], u.key, u.attempt, planned, u.version, u.body);
        }
        ch_update_kind k = ch_judge_update(&jd, u.version, u.body);
        if (k == CH_UPDATE_REGRESSION) {
            regressed = true;
            if (fig->regressions++ < EXAMPLES)
                fprintf(stderr,
                        "  REGRESSION: invoice CH-%05d at %s: v%lld (%s attempt %d, at %.1f s) "
                        "accepted after v%lld (%s attempt %d, at %.1f s)\n",
                        inv, ch_target_names[t], u.version, u.key, u.attempt, u.at_s, top.version,
                        top.key, top.attempt, top.at_s);
        } else if (k == CH_UPDATE_REPEAT) {
            repeated = true;
            fig->repeats++;
        } else {
            top = u;
        }
    }
    fig->pairs_regressed += regressed;
    fig->pairs_repeats += repeated;
}

/* "<key>: <statuses>" of the event of invoice inv at version v sent to target t, into buf. */
static void event_status(const ch_plan *plan, ch_table *table, int inv, int t, int32_t v, char *buf,
                         size_t len)
{
    snprintf(buf, len, "?");
    for (size_t i = 0; i < plan->n_events; i++) {
        const ch_event *e = &plan->events[i];
        if (e->invoice == inv && e->version == v && (e->targets >> t) & 1) {
            char key[160], st[96];
            ch_result_key(plan, i, t, key, sizeof(key));
            status_text(ch_table_get(table, key).statuses, st, sizeof(st));
            snprintf(buf, len, "%s: %s", key, st);
            return;
        }
    }
}

/* The final version (header and body) at the simulator of each (invoice, target) against the
 * highest version the plan sent there, and each history. */
static int check_state(const ch_plan *plan, ch_table *table, const iw_stack *s, oracle *o,
                       ch_figures *fig)
{
    size_t cells = (size_t)plan->n_invoices * CH_N_TARGETS;
    long long *got = calloc(cells, sizeof(*got)), *body = calloc(cells, sizeof(*body));
    if (!got || !body) {
        free(got);
        free(body);
        return -1;
    }
    int rc = 0;
    for (int t = 0; t < CH_N_TARGETS && rc == 0; t++) {
        if (!((plan->target_mask >> t) & 1))
            continue;
        char path[96];
        snprintf(path, sizeof(path), "/_sim/state?target=%s", ch_target_names[t]);
        cJSON *j = iw_sim_get(s, path);
        const cJSON *invs = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "targets"),
                                             ch_target_names[t]),
            "invoices");
        if (!invs) {
            fprintf(stderr, "chaos: cannot read %s%s\n", s->sim_base, path);
            rc = -1;
        }
        for (const cJSON *r = invs ? invs->child : NULL; r; r = r->next) {
            const char *ev = iw_json_str(r, "event"), *ver = iw_json_str(r, "version");
            const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(r, "history_dropped");
            long e;
            int tt;
            if (!ev || !ver || split_pair(plan, ev, version_num(ver), &e, &tt) != 0 || tt != t) {
                fprintf(stderr, "  STATE: %s record %s names no event of this run (%s)\n",
                        ch_target_names[t], r->string, ev ? ev : "-");
                continue;
            }
            int inv = plan->events[e].invoice;
            size_t c = (size_t)inv * CH_N_TARGETS + (size_t)t;
            got[c] = version_num(ver);
            body[c] = version_num(iw_json_str(r, "body_version"));
            if (cJSON_IsNumber(dropped) && dropped->valuedouble > 0) {
                o->truncated[c] = 1;
                fig->history_dropped += (size_t)dropped->valuedouble;
            }
            check_history(plan, o, cJSON_GetObjectItemCaseSensitive(r, "history"), inv, t, fig);
        }
        cJSON_Delete(j);
    }
    for (size_t c = 0; c < cells && rc == 0; c++) {
        if (!o->want[c])
            continue;
        fig->state_checked++;
        bool bad_h = got[c] < o->floor[c] || got[c] > o->want[c];
        bool bad_b = body[c] < o->floor[c] || body[c] > o->want[c] || body[c] != got[c];
        fig->wrong_state += bad_h;
        fig->wrong_body += bad_b;
        if (!bad_h && !bad_b)
            continue;
        if (fig->mismatches++ >= EXAMPLES)
            continue;
        /* which events carried the wanted versions there, and what became of them */
        int inv = (int)(c / CH_N_TARGETS), t = (int)(c % CH_N_TARGETS);
        char high[256], low[256] = "";
        event_status(plan, table, inv, t, o->want[c], high, sizeof(high));
        if (o->floor[c] != o->want[c]) {
            char st[256];
            event_status(plan, table, inv, t, o->floor[c], st, sizeof(st));
            snprintf(low, sizeof(low), ", at least v%d (%s)", (int)o->floor[c], st);
        }
        fprintf(stderr,
                "  WRONG STATE: invoice CH-%05d at %s holds v%lld (body v%lld), highest sent v%d "
                "(%s)%s\n",
                inv, ch_target_names[t], got[c], body[c], o->want[c], high, low);
    }
    free(got);
    free(body);
    return rc;
}

/* Every pair reported `succeeded` must be one the target accepted: in its history, or, where
 * the history dropped older entries, in the call log with a 200. */
static void check_succeeded(const ch_plan *plan, ch_table *table, const iw_stack *s,
                            const oracle *o, ch_figures *fig)
{
    long events[EXAMPLES];
    int targets[EXAMPLES];
    char st[EXAMPLES][96];
    size_t n_ex = 0;
    pthread_mutex_lock(&table->mu);
    for (size_t i = 0; i < table->cap; i++) {
        const ch_slot *sl = &table->slots[i];
        long e;
        int t;
        if (!sl->key || !sl->expected || !(sl->statuses & CH_ST_SUCCEEDED) ||
            ch_result_key_split(plan, sl->key, &e, &t) != 0)
            continue;
        fig->succeeded_checked++;
        if ((o->accepted[e] >> t) & 1)
            continue;
        if (fig->succeeded_unseen++ < EXAMPLES) {
            events[n_ex] = e;
            targets[n_ex] = t;
            status_text(sl->statuses, st[n_ex], sizeof(st[n_ex]));
            n_ex++;
        }
    }
    pthread_mutex_unlock(&table->mu);
    for (size_t i = 0; i < n_ex; i++) {
        const ch_event *e = &plan->events[events[i]];
        char eid[64];
        ch_event_id(plan, (size_t)events[i], eid, sizeof(eid));
        fprintf(stderr,
                "  SUCCEEDED, NEVER ACCEPTED: %s/%s (invoice CH-%05d v%d; results %s; %d calls "
                "at the target)\n",
                eid, ch_target_names[targets[i]], e->invoice, e->version, st[i],
                iw_sim_calls(s, eid, ch_target_names[targets[i]]));
    }
}

/* Marks event e accepted at target t, from a call log (it has no version): when another event
 * carries e's id there, every one of them. */
static void mark_accepted(const ch_plan *plan, oracle *o, long e, int t)
{
    o->accepted[e] |= (uint8_t)(1u << t);
    for (size_t k = (size_t)e + 1; (plan->events[e].shared >> t) & 1 && k < plan->n_events; k++)
        if (plan->events[k].id_of == plan->events[e].id_of && (plan->events[k].targets >> t) & 1)
            o->accepted[k] |= (uint8_t)(1u << t);
}

/* The event_ids that several events carry to one target: each one's results, and per id and
 * target whether the target accepted more than one of them (never: the first to claim the id
 * there keeps it), none of them while each was rejected (the first to claim is sent), or one it
 * did not accept was neither rejected, stale, superseded nor failed (a reuse taken for a
 * duplicate). */
static void check_reused(const ch_plan *plan, ch_table *table, const oracle *o, ch_figures *fig)
{
    for (size_t i = 0; i < plan->n_events; i++) {
        const ch_event *e = &plan->events[i];
        for (int t = 0; t < CH_N_TARGETS; t++) {
            if (!((e->shared >> t) & 1))
                continue;
            char key[160], eid[64];
            ch_result_key(plan, i, t, key, sizeof(key));
            uint16_t st = ch_table_get(table, key).statuses;
            fig->reused++;
            for (int k = 0; k < CH_N_STATUS; k++)
                fig->reused_by_status[k] += (st >> k) & 1;
            /* judged once per id and target, at its first event there; a truncated history
             * marks every event of the id accepted from the call log: not judged */
            ch_event_id(plan, i, eid, sizeof(eid));
            if (ch_event_lookup(plan, eid, -1, t) != (long)i ||
                o->truncated[(size_t)e->invoice * CH_N_TARGETS + (size_t)t])
                continue;
            ch_reuse_group g;
            ch_reuse_group_init(&g);
            for (size_t k = i; k < plan->n_events; k++) {
                if (plan->events[k].id_of != e->id_of || !((plan->events[k].targets >> t) & 1))
                    continue;
                ch_result_key(plan, k, t, key, sizeof(key));
                ch_slot sl = ch_table_get(table, key);
                ch_reuse_group_add(&g, (long)k, (o->accepted[k] >> t) & 1, sl.results, sl.statuses);
            }
            int faults = ch_reuse_group_faults(&g);
            if ((faults & CH_REUSE_TWICE) && fig->reused_twice++ < EXAMPLES)
                fprintf(stderr,
                        "  EVENT_ID APPLIED TWICE: %s at %s: invoice CH-%05d v%d and v%d (%d "
                        "versions accepted)\n",
                        eid, ch_target_names[t], e->invoice, e->version,
                        plan->events[g.last_accepted].version, g.accepted);
            if ((faults & CH_REUSE_NONE) && fig->reused_misjudged++ < EXAMPLES)
                fprintf(stderr,
                        "  EVENT_ID REJECTED AT EVERY VERSION: %s at %s: invoice CH-%05d, %d "
                        "versions, none accepted\n",
                        eid, ch_target_names[t], e->invoice, g.members);
            if ((faults & CH_REUSE_UNNAMED) && fig->reused_misjudged++ < EXAMPLES) {
                char text[96];
                status_text(g.unnamed_statuses, text, sizeof(text));
                fprintf(stderr,
                        "  REUSE NOT NAMED: %s at %s: invoice CH-%05d v%d never accepted there, "
                        "results %s\n",
                        eid, ch_target_names[t], e->invoice, plan->events[g.unnamed].version, text);
            }
        }
    }
}

/* Whether a kill happened in (from, to]. */
static bool killed_between(const long long *kill_ms, size_t n, double from, double to)
{
    for (size_t i = 0; i < n; i++)
        if ((double)kill_ms[i] > from && (double)kill_ms[i] <= to)
            return true;
    return false;
}

/* Calls per pair from the simulator's call log, in chunks of event ids. */
static int check_calls(const ch_plan *plan, const iw_stack *s, const long long *kill_ms,
                       size_t n_kills, oracle *o, ch_figures *fig)
{
    for (size_t from = 0; from < plan->n_events; from += CALLS_CHUNK) {
        char eid[64], path[128];
        snprintf(eid, sizeof(eid), "E%s-%07zu", plan->run, from); /* ch_event_id's form */
        eid[strlen(eid) - 3] = '\0'; /* the shared leading digits of CALLS_CHUNK ids */
        snprintf(path, sizeof(path), "/_sim/calls?prefix=%s", eid);
        cJSON *j = iw_sim_get(s, path);
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(j, "calls");
        if (!calls) {
            fprintf(stderr, "chaos: cannot read %s%s\n", s->sim_base, path);
            cJSON_Delete(j);
            return -1;
        }
        for (const cJSON *c = calls->child; c; c = c->next) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(c, "status");
            int n = cJSON_GetArraySize(st), first_ok = -1, tt;
            long e;
            bool truncated =
                c->string && split_pair(plan, c->string, -1, &e, &tt) == 0 &&
                o->truncated[(size_t)plan->events[e].invoice * CH_N_TARGETS + (size_t)tt];
            for (int i = 0; i < n; i++) {
                int code = (int)cJSON_GetArrayItem(st, i)->valuedouble;
                fig->calls++;
                if (code == 200) {
                    fig->calls_ok++;
                    if (first_ok < 0)
                        first_ok = i;
                    if (truncated)
                        mark_accepted(plan, o, e, tt);
                }
            }
            if (first_ok >= 0 && n - 1 - first_ok > 0) {
                const cJSON *mono = cJSON_GetObjectItemCaseSensitive(c, "mono_ms");
                double ok_at = cJSON_GetArrayItem(mono, first_ok)->valuedouble;
                for (int i = first_ok + 1; i < n; i++)
                    fig->repeated_killed += killed_between(
                        kill_ms, n_kills, ok_at, cJSON_GetArrayItem(mono, i)->valuedouble);
                fig->repeated_sends += (size_t)(n - 1 - first_ok);
                fig->pairs_repeated++;
            }
        }
        cJSON_Delete(j);
    }
    return 0;
}

int ch_check_run(const ch_plan *plan, ch_table *table, ch_watch *watch, const iw_stack *s,
                 const long long *kill_ms, size_t n_kills, long long t0_ms, int request_ms,
                 ch_figures *fig)
{
    memset(fig, 0, sizeof(*fig));
    retention ret = {0};
    ret.n = ch_low_watermarks(s->brokers, CH_INPUT, &ret.low);
    check_lost(plan, table, s, &ret, fig);
    check_poison(plan, watch, &ret, fig);
    free(ret.low);
    oracle o = {0};
    int rc = oracle_init(&o, plan, t0_ms);
    o.window = request_ms > 100 ? request_ms - 100 : 0; /* the send precedes the arrival */
    if (rc == 0)
        rc = check_state(plan, table, s, &o, fig);
    if (rc == 0)
        rc = check_calls(plan, s, kill_ms, n_kills, &o, fig);
    if (rc == 0) {
        check_succeeded(plan, table, s, &o, fig);
        check_reused(plan, table, &o, fig);
    }
    oracle_free(&o);
    return rc;
}

bool ch_figures_pass(const ch_figures *fig)
{
    return fig->lost == 0 && fig->regressions == 0 && fig->mismatches == 0 &&
           fig->succeeded_unseen == 0 && fig->disagreements == 0 && fig->poison_missing == 0 &&
           fig->overlaps == 0 && fig->reused_twice == 0 && fig->reused_misjudged == 0;
}
