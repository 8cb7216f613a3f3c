/* check.c: the chaos run's verdict: lost pairs, wrong final states at the targets, poison
 * without a dead letter, repeated sends and duplicate results, with examples of each failure. */
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

/* "<event_id>:<target>" split into an event index and a target index. 0 or -1. */
static int split_pair(const ch_plan *plan, const char *key, long *event, int *target)
{
    const char *colon = strrchr(key, ':');
    char eid[96];
    if (!colon || (size_t)(colon - key) >= sizeof(eid))
        return -1;
    snprintf(eid, sizeof(eid), "%.*s", (int)(colon - key), key);
    *event = ch_event_index(plan, eid);
    *target = target_index(colon + 1);
    return *event >= 0 && *target >= 0 ? 0 : -1;
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
        snprintf(eid, sizeof(eid), "%s", sl->key);
        char *slash = strrchr(eid, '/');
        const char *target = slash ? slash + 1 : "";
        if (slash)
            *slash = '\0';
        long e = ch_event_index(plan, eid);
        fig->trimmed += e >= 0 && gone && gone[e];
        if (fig->lost > EXAMPLES)
            continue;
        if (e >= 0) {
            positions(plan, e, pos, sizeof(pos));
            int calls = iw_sim_calls(s, eid, target);
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

/* The final version at the simulator of each (invoice, target) pair against the highest
 * version the plan sent there. */
static int check_state(const ch_plan *plan, ch_table *table, const iw_stack *s, ch_figures *fig)
{
    size_t cells = (size_t)plan->n_invoices * CH_N_TARGETS;
    int32_t *want = calloc(cells, sizeof(*want)), *got = calloc(cells, sizeof(*got));
    if (!want || !got) {
        free(want);
        free(got);
        return -1;
    }
    for (size_t i = 0; i < plan->n_events; i++) {
        const ch_event *e = &plan->events[i];
        for (int t = 0; t < CH_N_TARGETS; t++) {
            int32_t *w = &want[(size_t)e->invoice * CH_N_TARGETS + (size_t)t];
            if ((e->targets >> t) & 1 && e->version > *w)
                *w = e->version;
        }
    }
    int rc = 0;
    for (int t = 0; t < CH_N_TARGETS && rc == 0; t++) {
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
            long e;
            int tt;
            if (!ev || !ver || split_pair(plan, ev, &e, &tt) != 0 || tt != t) {
                fprintf(stderr, "  STATE: %s record %s names no event of this run (%s)\n",
                        ch_target_names[t], r->string, ev ? ev : "-");
                continue;
            }
            got[(size_t)plan->events[e].invoice * CH_N_TARGETS + (size_t)t] = (int32_t)atol(ver);
        }
        cJSON_Delete(j);
    }
    for (size_t c = 0; c < cells && rc == 0; c++) {
        if (!want[c])
            continue;
        fig->state_checked++;
        if (got[c] == want[c] || fig->wrong_state++ >= EXAMPLES)
            continue;
        /* which event carried the wanted version there, and what became of it */
        int inv = (int)(c / CH_N_TARGETS), t = (int)(c % CH_N_TARGETS);
        char rid[160] = "?", st[96] = "?";
        for (size_t i = 0; i < plan->n_events; i++) {
            const ch_event *e = &plan->events[i];
            if (e->invoice == inv && e->version == want[c]) {
                char eid[64];
                ch_event_id(plan, i, eid, sizeof(eid));
                snprintf(rid, sizeof(rid), "%s/%s", eid, ch_target_names[t]);
                status_text(ch_table_get(table, rid).statuses, st, sizeof(st));
                break;
            }
        }
        fprintf(stderr,
                "  WRONG STATE: invoice CH-%05d at %s holds v%d, highest sent v%d (%s: %s)\n", inv,
                ch_target_names[t], got[c], want[c], rid, st);
    }
    free(want);
    free(got);
    return rc;
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
                       size_t n_kills, ch_figures *fig)
{
    for (size_t from = 0; from < plan->n_events; from += CALLS_CHUNK) {
        char eid[64], path[128];
        ch_event_id(plan, from, eid, sizeof(eid));
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
            int n = cJSON_GetArraySize(st), first_ok = -1;
            for (int i = 0; i < n; i++) {
                int code = (int)cJSON_GetArrayItem(st, i)->valuedouble;
                fig->calls++;
                if (code == 200) {
                    fig->calls_ok++;
                    if (first_ok < 0)
                        first_ok = i;
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
                 const long long *kill_ms, size_t n_kills, ch_figures *fig)
{
    memset(fig, 0, sizeof(*fig));
    retention ret = {0};
    ret.n = ch_low_watermarks(s->brokers, CH_INPUT, &ret.low);
    check_lost(plan, table, s, &ret, fig);
    check_poison(plan, watch, &ret, fig);
    free(ret.low);
    if (check_state(plan, table, s, fig) != 0)
        return -1;
    return check_calls(plan, s, kill_ms, n_kills, fig);
}
