/* state.c: the simulator's memory: per-invoice documents and histories, per-event calls, counts,
 * token. */
#include "state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small string-keyed hash table ---- */

typedef struct entry {
    char *key;
    void *val;
    uint64_t hash;
    struct entry *next;
} entry;

typedef struct table {
    entry **b;
    size_t nb; /* buckets, a power of two */
    size_t n;  /* entries */
} table;

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void *tget(const table *t, const char *key)
{
    if (!t->nb)
        return NULL;
    uint64_t h = fnv1a(key, 1469598103934665603ULL);
    for (entry *e = t->b[h & (t->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->val;
    return NULL;
}

static int tgrow(table *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    entry **b = calloc(nb, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < t->nb; i++) {
        entry *e = t->b[i];
        while (e) {
            entry *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

/* Inserts val under key (key copied); the caller checked it is absent. 0 or -1. */
static int tput(table *t, const char *key, void *val)
{
    if (t->n >= t->nb && tgrow(t) != 0)
        return -1;
    entry *e = malloc(sizeof(*e));
    if (!e)
        return -1;
    e->key = strdup(key);
    if (!e->key) {
        free(e);
        return -1;
    }
    e->val = val;
    e->hash = fnv1a(key, 1469598103934665603ULL);
    e->next = t->b[e->hash & (t->nb - 1)];
    t->b[e->hash & (t->nb - 1)] = e;
    t->n++;
    return 0;
}

static void tclear(table *t, void (*free_val)(void *))
{
    for (size_t i = 0; i < t->nb; i++) {
        entry *e = t->b[i];
        while (e) {
            entry *next = e->next;
            free_val(e->val);
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(t->b);
    memset(t, 0, sizeof(*t));
}

/* ---- records ---- */

/* One accepted update of an invoice, as the history keeps it. */
typedef struct hist_entry {
    char version[32];      /* X-Invoice-Version ("" when absent) */
    char body_version[32]; /* digits after IW_SIM_BODY_MARK in the body ("" when absent) */
    char *event;           /* X-Request-ID without the attempt (malloc'd, may be NULL) */
    int attempt;           /* attempt from X-Request-ID, -1 when unreadable */
    int64_t wall_ms;       /* arrival of the request, ms since the epoch */
    int64_t mono_ms;       /* arrival, CLOCK_MONOTONIC ms */
    int64_t applied_mono;  /* when it was applied (after any latency), CLOCK_MONOTONIC ms */
} hist_entry;

/* One invoice at one target. */
typedef struct invoice_rec {
    int64_t updates;       /* accepted updates */
    cJSON *last;           /* parsed values of the last accepted document */
    char event[160];       /* X-Request-ID event part of the last accepted update */
    char version[32];      /* X-Invoice-Version of the last accepted update */
    char max_version[32];  /* highest X-Invoice-Version accepted (integers compared) */
    char idem[200];        /* Idempotency-Key of the last accepted update */
    char internal_id[64];  /* stable id the target hands out (ebizcharge) */
    bool settled;          /* invoicexpress: refuses updates */
    int64_t updated_ms;    /* wall clock of the last accepted update */
    char body_version[32]; /* body version of the last accepted update */
    int64_t emails;        /* accepted updates that ask the target to e-mail the customer
                            * (ebizcharge: NotifyCustomer or InvoiceIsToBeEmailed true) */
    hist_entry *hist;      /* ring of the last accepted updates, in the order applied */
    size_t hist_cap;       /* entries allocated (grows to IW_SIM_HISTORY_MAX) */
    size_t hist_n;         /* entries kept */
    size_t hist_head;      /* index of the oldest kept entry */
    int64_t hist_dropped;  /* older entries dropped to stay within IW_SIM_HISTORY_MAX */
} invoice_rec;

/* The calls of one (event, target) pair. */
typedef struct call_rec {
    int target;
    size_t n, cap;
    int64_t *wall; /* arrival, ms since the epoch */
    int64_t *mono; /* arrival, CLOCK_MONOTONIC ms (comparable with the tests' clock) */
    int64_t *seq;  /* order of arrival among all calls (no two equal, unlike mono) */
    int *status;   /* status sent, 0 while in progress or when no reply was sent */
    int *attempt;  /* attempt number from X-Request-ID, -1 when unreadable */
} call_rec;

#define N_STATUS 600

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static table invoices[IW_SIM_N_TARGETS];
static table calls;
static int64_t calls_seq;                                 /* calls begun so far */
static int64_t by_status[IW_SIM_N_TARGETS + 1][N_STATUS]; /* last row: unrouted paths */
static int64_t requests[IW_SIM_N_TARGETS + 1];
static char token_start[IW_SIM_SECRET_LEN];
static char token[IW_SIM_SECRET_LEN];
static int token_generation;
static bool token_expired;

static void free_invoice(void *p)
{
    invoice_rec *r = p;
    if (r) {
        cJSON_Delete(r->last);
        for (size_t i = 0; i < r->hist_n; i++)
            free(r->hist[(r->hist_head + i) % r->hist_cap].event);
        free(r->hist);
    }
    free(r);
}

static void free_call(void *p)
{
    call_rec *c = p;
    if (c) {
        free(c->wall);
        free(c->mono);
        free(c->seq);
        free(c->status);
        free(c->attempt);
    }
    free(c);
}

void iw_sim_state_init(const iw_sim_conf *c)
{
    pthread_mutex_lock(&mu);
    snprintf(token_start, sizeof(token_start), "%s",
             iw_sim_cred(&c->creds[IW_SIM_ID(midnight)], "midnight_token"));
    snprintf(token, sizeof(token), "%s", token_start);
    pthread_mutex_unlock(&mu);
}

static void clear_locked(void)
{
    for (int t = 0; t < IW_SIM_N_TARGETS; t++)
        tclear(&invoices[t], free_invoice);
    tclear(&calls, free_call);
    memset(by_status, 0, sizeof(by_status));
    memset(requests, 0, sizeof(requests));
    snprintf(token, sizeof(token), "%s", token_start);
    token_generation = 0;
    token_expired = false;
}

void iw_sim_state_reset(void)
{
    pthread_mutex_lock(&mu);
    clear_locked();
    pthread_mutex_unlock(&mu);
}

void iw_sim_state_free(void)
{
    iw_sim_state_reset();
}

static invoice_rec *invoice_get_locked(int t, const char *key)
{
    invoice_rec *r = tget(&invoices[t], key);
    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r || tput(&invoices[t], key, r) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

/* A GUID-shaped id derived from the target and key, the same on every run. */
static void derive_id(int t, const char *key, char *out, size_t len)
{
    uint64_t a = fnv1a(key, 1469598103934665603ULL ^ (uint64_t)(t + 1));
    uint64_t b = fnv1a(key, 0x9e3779b97f4a7c15ULL ^ a);
    snprintf(out, len, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffULL));
}

/* Event part of an X-Request-ID: everything before the last ':'. */
static void event_part(const char *rid, char *out, size_t len, int *attempt)
{
    const char *colon = strrchr(rid, ':');
    size_t n = colon ? (size_t)(colon - rid) : strlen(rid);
    if (n >= len)
        n = len - 1;
    memcpy(out, rid, n);
    out[n] = '\0';
    *attempt = -1;
    if (colon && colon[1]) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end == '\0' && v >= 0 && v < 1000000)
            *attempt = (int)v;
    }
}

static bool version_higher(const char *v, const char *max)
{
    if (!*max)
        return true;
    char *e1, *e2;
    long long a = strtoll(v, &e1, 10), b = strtoll(max, &e2, 10);
    if (*v && *e1 == '\0' && *e2 == '\0')
        return a > b;
    return strcmp(v, max) > 0;
}

void iw_sim_body_version(const char *body, char *out, size_t len)
{
    out[0] = '\0';
    const char *m = body ? strstr(body, IW_SIM_BODY_MARK) : NULL;
    if (!m || !len)
        return;
    m += strlen(IW_SIM_BODY_MARK);
    size_t n = strspn(m, "0123456789");
    if (n >= len)
        n = len - 1;
    memcpy(out, m, n);
    out[n] = '\0';
}

/* The slot for a new history entry: grows the ring up to IW_SIM_HISTORY_MAX, then reuses the
 * oldest slot (counted as dropped). NULL on no memory. mu held. */
static hist_entry *hist_push_locked(invoice_rec *r)
{
    if (r->hist_n == r->hist_cap && r->hist_cap < IW_SIM_HISTORY_MAX) {
        size_t cap = r->hist_cap ? r->hist_cap * 2 : 8;
        if (cap > IW_SIM_HISTORY_MAX)
            cap = IW_SIM_HISTORY_MAX;
        hist_entry *h = malloc(cap * sizeof(*h));
        if (!h)
            return NULL;
        for (size_t i = 0; i < r->hist_n; i++) /* unrolled: the oldest first */
            h[i] = r->hist[(r->hist_head + i) % r->hist_cap];
        free(r->hist);
        r->hist = h;
        r->hist_cap = cap;
        r->hist_head = 0;
    }
    if (r->hist_n < r->hist_cap)
        return &r->hist[(r->hist_head + r->hist_n++) % r->hist_cap];
    hist_entry *oldest = &r->hist[r->hist_head];
    free(oldest->event);
    r->hist_head = (r->hist_head + 1) % r->hist_cap;
    r->hist_dropped++;
    return oldest;
}

/* Appends the accepted request rq to r's history. mu held. */
static void hist_add_locked(invoice_rec *r, const iw_sim_request *rq)
{
    hist_entry *h = hist_push_locked(r);
    if (!h)
        return;
    memset(h, 0, sizeof(*h));
    snprintf(h->version, sizeof(h->version), "%s", rq->invoice_version ? rq->invoice_version : "");
    snprintf(h->body_version, sizeof(h->body_version), "%s", r->body_version);
    h->attempt = -1;
    if (rq->request_id) {
        char ev[160];
        event_part(rq->request_id, ev, sizeof(ev), &h->attempt);
        h->event = strdup(ev);
    }
    h->wall_ms = rq->arrival_wall_ms;
    h->mono_ms = rq->arrival_mono_ms;
    h->applied_mono = iw_sim_mono_ms();
}

/* Whether an accepted document asks the target to e-mail the customer: an xs:boolean true in
 * NotifyCustomer or InvoiceIsToBeEmailed (ebizcharge, seed 003). */
static bool asks_for_email(const cJSON *values)
{
    static const char *const names[] = {"NotifyCustomer", "InvoiceIsToBeEmailed"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(values, names[i]);
        if (cJSON_IsString(v) &&
            (strcmp(v->valuestring, "true") == 0 || strcmp(v->valuestring, "1") == 0))
            return true;
    }
    return false;
}

void iw_sim_state_accept(int t, const char *key, cJSON *values, const iw_sim_request *rq,
                         const char *given, char *internal_id, size_t idlen)
{
    pthread_mutex_lock(&mu);
    invoice_rec *r = invoice_get_locked(t, key);
    if (!r) {
        pthread_mutex_unlock(&mu);
        cJSON_Delete(values);
        if (internal_id && idlen)
            internal_id[0] = '\0';
        return;
    }
    r->updates++;
    r->emails += asks_for_email(values);
    cJSON_Delete(r->last);
    r->last = values;
    int attempt;
    if (rq->request_id)
        event_part(rq->request_id, r->event, sizeof(r->event), &attempt);
    else
        r->event[0] = '\0';
    snprintf(r->version, sizeof(r->version), "%s", rq->invoice_version ? rq->invoice_version : "");
    if (*r->version && version_higher(r->version, r->max_version))
        snprintf(r->max_version, sizeof(r->max_version), "%s", r->version);
    snprintf(r->idem, sizeof(r->idem), "%s", rq->idempotency_key ? rq->idempotency_key : "");
    if (given && *given)
        snprintf(r->internal_id, sizeof(r->internal_id), "%s", given);
    else if (!r->internal_id[0])
        derive_id(t, key, r->internal_id, sizeof(r->internal_id));
    r->updated_ms = iw_sim_wall_ms();
    iw_sim_body_version(rq->body, r->body_version, sizeof(r->body_version));
    hist_add_locked(r, rq);
    if (internal_id && idlen)
        snprintf(internal_id, idlen, "%s", r->internal_id);
    pthread_mutex_unlock(&mu);
}

bool iw_sim_state_settled(int t, const char *key)
{
    pthread_mutex_lock(&mu);
    invoice_rec *r = tget(&invoices[t], key);
    bool s = r && r->settled;
    pthread_mutex_unlock(&mu);
    return s;
}

void iw_sim_state_settle(int t, const char *key)
{
    pthread_mutex_lock(&mu);
    invoice_rec *r = invoice_get_locked(t, key);
    if (r)
        r->settled = true;
    pthread_mutex_unlock(&mu);
}

static int grow_call(call_rec *c)
{
    size_t cap = c->cap ? c->cap * 2 : 2;
    int64_t *w = realloc(c->wall, cap * sizeof(*w));
    if (!w)
        return -1;
    c->wall = w;
    int64_t *m = realloc(c->mono, cap * sizeof(*m));
    if (!m)
        return -1;
    c->mono = m;
    int64_t *q = realloc(c->seq, cap * sizeof(*q));
    if (!q)
        return -1;
    c->seq = q;
    int *s = realloc(c->status, cap * sizeof(*s));
    if (!s)
        return -1;
    c->status = s;
    int *a = realloc(c->attempt, cap * sizeof(*a));
    if (!a)
        return -1;
    c->attempt = a;
    c->cap = cap;
    return 0;
}

int iw_sim_calls_begin(int t, const char *request_id, int64_t wall_ms, int64_t mono_ms, char *key,
                       size_t keylen)
{
    key[0] = '\0';
    if (!request_id || !*request_id)
        return -1;
    int attempt;
    event_part(request_id, key, keylen, &attempt);
    pthread_mutex_lock(&mu);
    call_rec *c = tget(&calls, key);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c || tput(&calls, key, c) != 0) {
            free(c);
            pthread_mutex_unlock(&mu);
            return -1;
        }
        c->target = t;
    }
    int idx = -1;
    if (c->n < c->cap || grow_call(c) == 0) {
        idx = (int)c->n++;
        c->wall[idx] = wall_ms;
        c->mono[idx] = mono_ms;
        c->seq[idx] = ++calls_seq;
        c->status[idx] = 0;
        c->attempt[idx] = attempt;
    }
    pthread_mutex_unlock(&mu);
    return idx;
}

void iw_sim_calls_finish(const char *key, int idx, int status)
{
    if (idx < 0)
        return;
    pthread_mutex_lock(&mu);
    call_rec *c = tget(&calls, key);
    if (c && (size_t)idx < c->n)
        c->status[idx] = status;
    pthread_mutex_unlock(&mu);
}

void iw_sim_stats_count(int t, int status)
{
    int row = t >= 0 && t < IW_SIM_N_TARGETS ? t : IW_SIM_N_TARGETS;
    pthread_mutex_lock(&mu);
    requests[row]++;
    if (status >= 0 && status < N_STATUS)
        by_status[row][status]++;
    pthread_mutex_unlock(&mu);
}

void iw_sim_token_current(char *buf, size_t len)
{
    pthread_mutex_lock(&mu);
    snprintf(buf, len, "%s", token_expired ? "" : token);
    pthread_mutex_unlock(&mu);
}

void iw_sim_token_rotate(char *buf, size_t len)
{
    pthread_mutex_lock(&mu);
    token_generation++;
    snprintf(token, sizeof(token), "%.100s-r%d", token_start, token_generation);
    token_expired = false;
    snprintf(buf, len, "%s", token);
    pthread_mutex_unlock(&mu);
}

void iw_sim_token_expire(void)
{
    pthread_mutex_lock(&mu);
    token_expired = true;
    pthread_mutex_unlock(&mu);
}

/* ---- JSON views ---- */

static cJSON *history_json(const invoice_rec *r)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < r->hist_n; i++) {
        const hist_entry *h = &r->hist[(r->hist_head + i) % r->hist_cap];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "version", h->version);
        cJSON_AddStringToObject(o, "body_version", h->body_version);
        cJSON_AddStringToObject(o, "event", h->event ? h->event : "");
        cJSON_AddNumberToObject(o, "attempt", h->attempt);
        cJSON_AddNumberToObject(o, "at_ms", (double)h->wall_ms);
        cJSON_AddNumberToObject(o, "mono_ms", (double)h->mono_ms);
        cJSON_AddNumberToObject(o, "applied_mono_ms", (double)h->applied_mono);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *invoice_json(const invoice_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "updates", (double)r->updates);
    cJSON_AddNumberToObject(o, "emails", (double)r->emails);
    cJSON_AddItemToObject(o, "last", r->last ? cJSON_Duplicate(r->last, 1) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "event", r->event);
    cJSON_AddStringToObject(o, "version", r->version);
    cJSON_AddStringToObject(o, "max_version", r->max_version);
    cJSON_AddStringToObject(o, "idempotency_key", r->idem);
    cJSON_AddStringToObject(o, "internal_id", r->internal_id);
    cJSON_AddBoolToObject(o, "settled", r->settled);
    cJSON_AddNumberToObject(o, "updated_at_ms", (double)r->updated_ms);
    cJSON_AddStringToObject(o, "body_version", r->body_version);
    cJSON_AddItemToObject(o, "history", history_json(r));
    cJSON_AddNumberToObject(o, "history_dropped", (double)r->hist_dropped);
    return o;
}

cJSON *iw_sim_state_json(int t, const char *id)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *targets = cJSON_AddObjectToObject(root, "targets");
    pthread_mutex_lock(&mu);
    for (int k = 0; k < IW_SIM_N_TARGETS; k++) {
        if (t >= 0 && k != t)
            continue;
        cJSON *tj = cJSON_AddObjectToObject(targets, iw_sim_target_name(k));
        cJSON *inv = cJSON_AddObjectToObject(tj, "invoices");
        int64_t updates = 0;
        for (size_t i = 0; i < invoices[k].nb; i++) {
            for (entry *e = invoices[k].b[i]; e; e = e->next) {
                const invoice_rec *r = e->val;
                updates += r->updates;
                if (!id || strcmp(id, e->key) == 0)
                    cJSON_AddItemToObject(inv, e->key, invoice_json(r));
            }
        }
        cJSON_AddNumberToObject(tj, "count", (double)invoices[k].n);
        cJSON_AddNumberToObject(tj, "updates", (double)updates);
    }
    cJSON_AddNumberToObject(root, "token_generation", token_generation);
    cJSON_AddBoolToObject(root, "token_expired", token_expired);
    pthread_mutex_unlock(&mu);
    return root;
}

static cJSON *call_json(const call_rec *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "target", iw_sim_target_name(c->target));
    cJSON_AddNumberToObject(o, "count", (double)c->n);
    cJSON *w = cJSON_AddArrayToObject(o, "at_ms");
    cJSON *m = cJSON_AddArrayToObject(o, "mono_ms");
    cJSON *q = cJSON_AddArrayToObject(o, "seq");
    cJSON *s = cJSON_AddArrayToObject(o, "status");
    cJSON *a = cJSON_AddArrayToObject(o, "attempt");
    for (size_t i = 0; i < c->n; i++) {
        cJSON_AddItemToArray(w, cJSON_CreateNumber((double)c->wall[i]));
        cJSON_AddItemToArray(m, cJSON_CreateNumber((double)c->mono[i]));
        cJSON_AddItemToArray(q, cJSON_CreateNumber((double)c->seq[i]));
        cJSON_AddItemToArray(s, cJSON_CreateNumber(c->status[i]));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(c->attempt[i]));
    }
    return o;
}

cJSON *iw_sim_calls_json(const char *key, const char *prefix)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *cj = cJSON_AddObjectToObject(root, "calls");
    int64_t total = 0;
    pthread_mutex_lock(&mu);
    size_t plen = prefix ? strlen(prefix) : 0;
    for (size_t i = 0; i < calls.nb; i++) {
        for (entry *e = calls.b[i]; e; e = e->next) {
            const call_rec *c = e->val;
            total += (int64_t)c->n;
            if (key && strcmp(key, e->key) != 0)
                continue;
            if (prefix && strncmp(prefix, e->key, plen) != 0)
                continue;
            cJSON_AddItemToObject(cj, e->key, call_json(c));
        }
    }
    cJSON_AddNumberToObject(root, "keys", (double)calls.n);
    cJSON_AddNumberToObject(root, "total", (double)total);
    pthread_mutex_unlock(&mu);
    return root;
}

static void add_row(cJSON *o, int row)
{
    cJSON_AddNumberToObject(o, "requests", (double)requests[row]);
    cJSON *bs = cJSON_AddObjectToObject(o, "by_status");
    for (int s = 0; s < N_STATUS; s++) {
        if (by_status[row][s]) {
            char k[8];
            snprintf(k, sizeof(k), "%d", s);
            cJSON_AddNumberToObject(bs, k, (double)by_status[row][s]);
        }
    }
}

cJSON *iw_sim_stats_json(void)
{
    cJSON *root = cJSON_CreateObject();
    pthread_mutex_lock(&mu);
    int64_t total = 0;
    int64_t all[N_STATUS] = {0};
    for (int r = 0; r <= IW_SIM_N_TARGETS; r++) {
        total += requests[r];
        for (int s = 0; s < N_STATUS; s++)
            all[s] += by_status[r][s];
    }
    cJSON_AddNumberToObject(root, "requests", (double)total);
    cJSON *bs = cJSON_AddObjectToObject(root, "by_status");
    for (int s = 0; s < N_STATUS; s++) {
        if (all[s]) {
            char k[8];
            snprintf(k, sizeof(k), "%d", s);
            cJSON_AddNumberToObject(bs, k, (double)all[s]);
        }
    }
    cJSON *tj = cJSON_AddObjectToObject(root, "targets");
    for (int t = 0; t < IW_SIM_N_TARGETS; t++)
        add_row(cJSON_AddObjectToObject(tj, iw_sim_target_name(t)), t);
    add_row(cJSON_AddObjectToObject(root, "unrouted"), IW_SIM_N_TARGETS);
    pthread_mutex_unlock(&mu);
    return root;
}
