/* plan.c: the chaos run's input, decided up front from a seed: which invoice versions go to
 * which targets, in what order, with out-of-order sends, identical resends, versions under an
 * earlier version's event_id and poison. Every
 * event's body carries its version as "PO-V<version>" in invoice.po_number, which every adapter
 * sends, so the simulator's history can check the body against X-Invoice-Version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chaos.h"

const char *const ch_target_names[CH_N_TARGETS] = {"centra_soap", "centra_navision", "midnight",
                                                   "ebizcharge", "invoicexpress"};

#define LATE_MAX_GAP 30 /* a held-back older version goes out within this many messages */
#define DUP_RECENT 50   /* half the resends repeat one of the last this many messages */
#define POISON_VERSION 9999999
#define REUSE_AGAIN 0.3 /* the share of new versions right after a reuse that reuse an id too */
#define RECENT 3        /* a reuse takes the id of one of the invoice's last this many versions */

/* xorshift64*: deterministic per seed, good enough for a test plan. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return n ? (size_t)(rng_next(s) % n) : 0;
}

static int bit_count(uint8_t bits)
{
    int n = 0;
    for (; bits; bits &= (uint8_t)(bits - 1))
        n++;
    return n;
}

/* 2 or 3 distinct targets of mask (all of mask when it holds at most two). */
static uint8_t pick_targets(uint64_t *s, uint8_t mask)
{
    if (bit_count(mask) <= 2)
        return mask;
    int want = 2 + (int)rng_below(s, 2), have = 0;
    uint8_t bits = 0;
    while (have < want) {
        uint8_t b = (uint8_t)(1u << rng_below(s, CH_N_TARGETS));
        if ((mask & b) && !(bits & b)) {
            bits |= b;
            have++;
        }
    }
    return bits;
}

/* A new event: the invoice's next version, under its own event_id. Returns its index.
 * recent[invoice]: its last RECENT events, the newest first. */
static int32_t new_event(ch_plan *p, int32_t *counters, int32_t (*recent)[RECENT], int invoice,
                         uint64_t *s)
{
    ch_event *e = &p->events[p->n_events];
    e->invoice = invoice;
    e->version = ++counters[invoice];
    e->id_of = (int32_t)p->n_events;
    memmove(&recent[invoice][1], &recent[invoice][0], (RECENT - 1) * sizeof(recent[0][0]));
    recent[invoice][0] = (int32_t)p->n_events;
    e->targets = pick_targets(s, p->target_mask);
    e->copies = 1;
    for (int t = 0; t < CH_N_TARGETS; t++)
        p->n_pairs += (e->targets >> t) & 1;
    return (int32_t)p->n_events++;
}

static void emit(ch_plan *p, int32_t event, int32_t invoice, ch_msg_kind kind)
{
    ch_msg *m = &p->msgs[p->n_msgs++];
    m->event = event;
    m->invoice = invoice;
    m->kind = (uint8_t)kind;
    m->partition = -1;
    m->offset = -1;
}

/* A random earlier first delivery (recent half the time), or -1. */
static int32_t earlier_event(const ch_plan *p, uint64_t *s)
{
    for (int tries = 0; tries < 16 && p->n_msgs; tries++) {
        size_t span = rng_below(s, 2) && p->n_msgs > DUP_RECENT ? DUP_RECENT : p->n_msgs;
        const ch_msg *m = &p->msgs[p->n_msgs - 1 - rng_below(s, span)];
        if (m->kind == CH_MSG_EVENT || m->kind == CH_MSG_LATE)
            return m->event;
    }
    return -1;
}

/* Sets each event's shared bits: the targets another event with its event_id also goes to.
 * 0 or -1 (no memory). */
static int mark_shared(ch_plan *p)
{
    uint8_t(*n)[CH_N_TARGETS] = calloc(p->n_events + 1, sizeof(*n));
    if (!n)
        return -1;
    for (size_t i = 0; i < p->n_events; i++)
        for (int t = 0; t < CH_N_TARGETS; t++)
            if ((p->events[i].targets >> t) & 1 && n[p->events[i].id_of][t] < 2)
                n[p->events[i].id_of][t]++;
    for (size_t i = 0; i < p->n_events; i++)
        for (int t = 0; t < CH_N_TARGETS; t++)
            if ((p->events[i].targets >> t) & 1 && n[p->events[i].id_of][t] > 1)
                p->events[i].shared |= (uint8_t)(1u << t);
    free(n);
    return 0;
}

/* The event whose event_id a reuse of an invoice takes: one of the invoice's last RECENT
 * versions (recent), of those under an id of their own; -1 when there is none, or when the
 * last two are reuses. So up to two versions of an invoice in a row reuse ids, never three: a
 * lane holds IW_LANE_SHADOWS versions superseded by newer ones that may claim nothing (README,
 * the lane's shadows), and two in a row that each carry an id already claimed at a target (an
 * older version's, or one a kill or a revoke left claimed) still leave the version before them
 * to be sent. The second of two takes an id older than the version before the first in about
 * 40% of pairs (when the third-last version carries an id of its own): the case a lane that held
 * one shadow got wrong, though a run shows it only when that version is the invoice's last
 * under an id of its own (README). */
static int32_t reuse_source(const ch_plan *p, const int32_t recent[RECENT], uint64_t *s)
{
    int32_t pick[RECENT];
    size_t n = 0;
    bool own[RECENT];
    for (int k = 0; k < RECENT; k++) {
        own[k] = recent[k] >= 0 && p->events[recent[k]].id_of == recent[k];
        if (own[k])
            pick[n++] = recent[k];
    }
    if (recent[1] >= 0 && !own[0] && !own[1])
        return -1;
    return n ? pick[rng_below(s, n)] : -1;
}

/* Gives event e the targets bits in place of the ones new_event picked. */
static void set_targets(ch_plan *p, int32_t e, uint8_t bits)
{
    p->n_pairs -= (size_t)bit_count(p->events[e].targets);
    p->events[e].targets = bits;
    p->n_pairs += (size_t)bit_count(bits);
}

/* One version of a tail: the invoice's next, to bits, under the id of event id_of (-1: its
 * own). Returns its index. */
static int32_t tail_event(ch_plan *p, int32_t *counters, int32_t (*recent)[RECENT], int inv,
                          uint8_t bits, int32_t id_of, uint64_t *s)
{
    int32_t e = new_event(p, counters, recent, inv, s);
    if (bits)
        set_targets(p, e, bits);
    if (id_of >= 0) {
        p->events[e].id_of = id_of;
        p->n_reused++;
        p->n_reused_in_a_row += p->events[e - 1].id_of != e - 1;
    }
    emit(p, e, inv, CH_MSG_EVENT);
    return e;
}

/* The feeder waits here until every pair so far is terminal. */
static void add_gate(ch_plan *p)
{
    p->gate_at[p->n_gates] = p->n_msgs;
    p->gate_need[p->n_gates] = p->n_pairs + p->n_poison;
    p->n_gates++;
}

/* The tails of n invoices, spread over the plan's (ch_plan_build). 0 or -1 (no memory). */
static int add_tails(ch_plan *p, int32_t *counters, int32_t (*recent)[RECENT], size_t n,
                     uint64_t *s)
{
    int32_t(*src)[2] = calloc(n + 1, sizeof(*src));
    if (!src)
        return -1;
    for (int k = 0; k < 2; k++) {
        add_gate(p);
        for (size_t i = 0; i < n; i++) {
            int inv = (int)(i * (size_t)p->n_invoices / n);
            src[i][k] =
                tail_event(p, counters, recent, inv, k ? p->events[src[i][0]].targets : 0, -1, s);
        }
    }
    add_gate(p);
    for (size_t i = 0; i < n; i++) {
        int inv = (int)(i * (size_t)p->n_invoices / n);
        uint8_t bits = p->events[src[i][0]].targets;
        tail_event(p, counters, recent, inv, bits, -1, s);
        tail_event(p, counters, recent, inv, bits, -1, s);
        tail_event(p, counters, recent, inv, bits, src[i][1], s);
        tail_event(p, counters, recent, inv, bits, src[i][0], s);
    }
    free(src);
    p->n_tails = n;
    return 0;
}

#define TAIL_MSGS 6

/* An older version held back to go out after a newer one. */
typedef struct held {
    int32_t event;
    size_t due; /* message number it goes out at */
} held;

int ch_plan_build(ch_plan *p, size_t n_msgs, int n_invoices, ch_mix mix, uint8_t target_mask,
                  uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    p->target_mask = target_mask & ((1u << CH_N_TARGETS) - 1);
    if (!p->target_mask)
        p->target_mask = (1u << CH_N_TARGETS) - 1;
    uint64_t s = seed ? seed : 0x9e3779b97f4a7c15ULL;
    snprintf(p->run, sizeof(p->run), "%04x", (unsigned)(rng_next(&s) & 0xffff));
    p->n_invoices = n_invoices;
    p->events = calloc(n_msgs + 1, sizeof(*p->events));
    p->msgs = calloc(n_msgs + 1, sizeof(*p->msgs));
    int32_t *counters = calloc((size_t)n_invoices, sizeof(*counters));
    int32_t(*recent)[RECENT] = malloc((size_t)n_invoices * sizeof(*recent));
    held *hold = calloc(n_msgs + 1, sizeof(*hold));
    size_t n_hold = 0;
    if (!p->events || !p->msgs || !counters || !recent || !hold) {
        free(counters);
        free(recent);
        free(hold);
        ch_plan_free(p);
        return -1;
    }
    for (int i = 0; i < n_invoices; i++)
        for (int k = 0; k < RECENT; k++)
            recent[i][k] = -1;
    size_t n_tails = mix.tails <= 0 ? 0 : (size_t)(mix.tails < n_invoices ? mix.tails : n_invoices);
    if (n_tails * TAIL_MSGS > n_msgs / 2)
        n_tails = n_msgs / 2 / TAIL_MSGS;
    size_t body = n_msgs - n_tails * TAIL_MSGS;
    while (p->n_msgs < body) {
        size_t left = body - p->n_msgs;
        size_t due = n_hold;
        for (size_t i = 0; i < n_hold && due == n_hold; i++)
            if (hold[i].due <= p->n_msgs || left <= n_hold)
                due = i;
        if (due < n_hold) {
            emit(p, hold[due].event, p->events[hold[due].event].invoice, CH_MSG_LATE);
            p->n_late++;
            hold[due] = hold[--n_hold];
            continue;
        }
        double r = rng_unit(&s);
        int inv = (int)rng_below(&s, (size_t)n_invoices);
        int32_t again, from;
        if (r < mix.poison) {
            emit(p, (int32_t)p->n_poison++, inv, CH_MSG_POISON);
        } else if (r < mix.poison + mix.dup && (again = earlier_event(p, &s)) >= 0 &&
                   p->events[again].copies < 255) {
            p->events[again].copies++;
            emit(p, again, p->events[again].invoice, CH_MSG_DUPLICATE);
            p->n_dup++;
        } else if (r < mix.poison + mix.dup + mix.late && left > n_hold + 2) {
            int32_t older = new_event(p, counters, recent, inv, &s);
            int32_t newer = new_event(p, counters, recent, inv, &s);
            emit(p, newer, inv, CH_MSG_EVENT);
            hold[n_hold].event = older;
            hold[n_hold].due = p->n_msgs + 1 + rng_below(&s, LATE_MAX_GAP);
            n_hold++;
        } else if ((r < mix.poison + mix.dup + mix.late + mix.reuse ||
                    (mix.reuse > 0 && recent[inv][0] >= 0 &&
                     p->events[recent[inv][0]].id_of != recent[inv][0] &&
                     rng_unit(&s) < REUSE_AGAIN)) &&
                   (from = reuse_source(p, recent[inv], &s)) >= 0) {
            /* the next version under the id of one of the invoice's last versions (which may
             * be an older version held back, still to go out); after a reuse, more often than
             * the mix says, for two in a row to be common enough to matter */
            int32_t last = recent[inv][0];
            int32_t e = new_event(p, counters, recent, inv, &s);
            p->events[e].id_of = p->events[from].id_of;
            p->n_reused++;
            p->n_reused_in_a_row += p->events[last].id_of != last;
            emit(p, e, inv, CH_MSG_EVENT);
        } else {
            emit(p, new_event(p, counters, recent, inv, &s), inv, CH_MSG_EVENT);
        }
    }
    int tails_rc = n_tails ? add_tails(p, counters, recent, n_tails, &s) : 0;
    free(counters);
    free(recent);
    free(hold);
    if (tails_rc != 0 || mark_shared(p) != 0) {
        ch_plan_free(p);
        return -1;
    }
    return 0;
}

void ch_plan_bounds(const ch_plan *p, int32_t *want, int32_t *floor)
{
    for (size_t i = 0; i < p->n_events; i++) {
        const ch_event *e = &p->events[i];
        for (int t = 0; t < CH_N_TARGETS; t++) {
            size_t c = (size_t)e->invoice * CH_N_TARGETS + (size_t)t;
            if (!((e->targets >> t) & 1))
                continue;
            if (e->version > want[c])
                want[c] = e->version;
            /* of the events sharing an id there, the first (by index) is the oldest version */
            bool first = true;
            for (size_t k = (size_t)e->id_of; (e->shared >> t) & 1 && first && k < i; k++)
                first = !(p->events[k].id_of == e->id_of && (p->events[k].targets >> t) & 1);
            if (first && e->version > floor[c])
                floor[c] = e->version;
        }
    }
}

void ch_plan_free(ch_plan *p)
{
    free(p->events);
    free(p->msgs);
    memset(p, 0, sizeof(*p));
}

void ch_event_id(const ch_plan *p, size_t i, char *buf, size_t len)
{
    snprintf(buf, len, "E%s-%07d", p->run, (int)p->events[i].id_of);
}

void ch_invoice_id(int i, char *buf, size_t len)
{
    snprintf(buf, len, "CH-%05d", i);
}

long ch_event_index(const ch_plan *p, const char *event_id)
{
    size_t rl = strlen(p->run);
    if (event_id[0] != 'E' || strncmp(event_id + 1, p->run, rl) != 0 || event_id[1 + rl] != '-')
        return -1;
    char *end;
    long v = strtol(event_id + 2 + rl, &end, 10);
    if (*end || v < 0 || (size_t)v >= p->n_events)
        return -1;
    return v;
}

long ch_event_lookup(const ch_plan *p, const char *event_id, long long version, int t)
{
    long first = ch_event_index(p, event_id);
    /* a reuse comes after the event that first carried the id */
    for (size_t i = first < 0 ? p->n_events : (size_t)first; i < p->n_events; i++) {
        const ch_event *e = &p->events[i];
        if (e->id_of == first && (version < 0 || e->version == version) &&
            (t < 0 || (e->targets >> t) & 1))
            return (long)i;
        if (version >= 0 && e->invoice == p->events[first].invoice && e->version > version)
            break; /* an invoice's versions rise with the index: none further is it */
    }
    return -1;
}

void ch_result_key(const ch_plan *p, size_t i, int t, char *buf, size_t len)
{
    char eid[64];
    ch_event_id(p, i, eid, sizeof(eid));
    if ((p->events[i].shared >> t) & 1)
        snprintf(buf, len, "%s/%s@v%d", eid, ch_target_names[t], (int)p->events[i].version);
    else
        snprintf(buf, len, "%s/%s", eid, ch_target_names[t]);
}

int ch_result_key_split(const ch_plan *p, const char *key, long *event, int *target)
{
    const char *slash = strrchr(key, '/');
    if (!slash || (size_t)(slash - key) >= 64)
        return -1;
    char eid[64], name[64];
    snprintf(eid, sizeof(eid), "%.*s", (int)(slash - key), key);
    snprintf(name, sizeof(name), "%s", slash + 1);
    char *at = strstr(name, "@v");
    long long version = -1;
    if (at) {
        char *end;
        version = strtoll(at + 2, &end, 10);
        if (*end || version < 0)
            return -1;
        *at = '\0';
    }
    *target = -1;
    for (int t = 0; t < CH_N_TARGETS; t++)
        if (strcmp(name, ch_target_names[t]) == 0)
            *target = t;
    if (*target < 0)
        return -1;
    *event = ch_event_lookup(p, eid, version, *target);
    return *event >= 0 ? 0 : -1;
}

/* "centra_soap,midnight" for a target bit set. */
static void targets_csv(uint8_t bits, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int t = 0; t < CH_N_TARGETS; t++)
        if (bits & (1u << t))
            n += (size_t)snprintf(buf + n, len > n ? len - n : 0, "%s%s", n ? "," : "",
                                  ch_target_names[t]);
}

/* A poison value: even serials are cut-off JSON, odd ones lack invoice.id. */
static char *poison_value(const ch_plan *p, const ch_msg *m, const char *invoice_id)
{
    char eid[64];
    snprintf(eid, sizeof(eid), "P%s-%07d", p->run, m->event);
    char *v = iw_make_event(eid, CH_TENANT, invoice_id, POISON_VERSION, "centra_soap,midnight");
    if (!v || m->event % 2 == 0) {
        if (v)
            v[strlen(v) / 2] = '\0';
        return v;
    }
    cJSON *e = cJSON_Parse(v);
    free(v);
    if (!e)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "invoice"), "id");
    v = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return v;
}

char *ch_msg_value(const ch_plan *p, const ch_msg *m, char *key, size_t keylen)
{
    char inv[32];
    ch_invoice_id(m->invoice, inv, sizeof(inv));
    snprintf(key, keylen, "%s/%s", CH_TENANT, inv);
    if (m->kind == CH_MSG_POISON)
        return poison_value(p, m, inv);
    const ch_event *e = &p->events[m->event];
    char eid[64], csv[128], po[32];
    ch_event_id(p, (size_t)m->event, eid, sizeof(eid));
    targets_csv(e->targets, csv, sizeof(csv));
    char *v = iw_make_event(eid, CH_TENANT, inv, e->version, csv);
    cJSON *j = v ? cJSON_Parse(v) : NULL;
    free(v);
    cJSON *invoice = cJSON_GetObjectItemCaseSensitive(j, "invoice");
    if (!invoice) {
        cJSON_Delete(j);
        return NULL;
    }
    ch_body_version_text(e->version, po, sizeof(po));
    cJSON_ReplaceItemInObjectCaseSensitive(invoice, "po_number", cJSON_CreateString(po));
    v = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return v;
}

void ch_body_version_text(int32_t version, char *buf, size_t len)
{
    snprintf(buf, len, "PO-V%d", (int)version);
}
