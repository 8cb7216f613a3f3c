/* faults.c: the fault table: parsing specs, scheduling by count and time, picking per request. */
#include "faults.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define MAX_FAULTS 64
#define DEFAULT_HANG_MS 600000
#define DEFAULT_OVERSIZED ((int64_t)16 * 1024 * 1024)
#define MAX_OVERSIZED ((int64_t)1024 * 1024 * 1024)

/* One installed fault. */
typedef struct fault {
    int id;     /* for listing */
    int target; /* -1 = every target */
    iw_sim_fault_kind kind;
    double rate;            /* probability per request (a ratio, not money) */
    int64_t remaining;      /* requests left, -1 = unlimited */
    int64_t until_mono;     /* CLOCK_MONOTONIC ms when it ends, 0 = never */
    int64_t applied;        /* requests it was applied to */
    int64_t min_ms, max_ms; /* LATENCY (min == max for a fixed delay), HANG (min) */
    int statuses[8];        /* ERROR: choices */
    int n_statuses;
    char retry_after[64]; /* RATE_LIMIT: verbatim value, or seconds when http_date */
    bool http_date;       /* RATE_LIMIT: send an HTTP-date now + seconds */
    size_t chunk_bytes;   /* SLOW_BODY */
    int64_t interval_ms;  /* SLOW_BODY */
    size_t bytes;         /* OVERSIZED */
    bool chunked;         /* OVERSIZED */
    char message[160];    /* ERROR, SOAP */
} fault;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static fault faults[MAX_FAULTS];
static int n_faults;
static int next_id = 1;
static uint64_t rng = 0x2545F4914F6CDD1DULL;

static const char *const kind_names[] = {
    "none",  "latency",   "error",     "rate_limit", "soap_fault", "auth",       "hang",
    "reset", "slow_body", "oversized", "garbage",    "refusal",    "apply_reset"};

const char *iw_sim_fault_kind_name(iw_sim_fault_kind k)
{
    return (size_t)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static int kind_find(const char *s)
{
    static const struct {
        const char *alias;
        iw_sim_fault_kind k;
    } aliases[] = {{"5xx", IW_SIM_FAULT_ERROR},
                   {"429", IW_SIM_FAULT_RATE_LIMIT},
                   {"soap", IW_SIM_FAULT_SOAP},
                   {"timeout", IW_SIM_FAULT_HANG}};
    for (size_t i = 1; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (strcmp(s, kind_names[i]) == 0)
            return (int)i;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(s, aliases[i].alias) == 0)
            return aliases[i].k;
    return -1;
}

void iw_sim_faults_init(uint64_t seed)
{
    pthread_mutex_lock(&mu);
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
    }
    rng = seed | 1;
    pthread_mutex_unlock(&mu);
}

/* xorshift64*; called with mu held. */
static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static double rand_unit(void)
{
    return (double)(next_rand() >> 11) / 9007199254740992.0;
}

static int num(const cJSON *spec, const char *key, int64_t lo, int64_t hi, int64_t *out,
               char *errbuf, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        snprintf(errbuf, errlen, "%s: must be a number from %lld to %lld", key, (long long)lo,
                 (long long)hi);
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int parse_error_params(fault *f, const cJSON *spec, char *errbuf, size_t errlen)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(spec, "status");
    const cJSON *sts = cJSON_GetObjectItemCaseSensitive(spec, "statuses");
    if (cJSON_IsNumber(st)) {
        f->statuses[f->n_statuses++] = st->valueint;
    } else if (cJSON_IsArray(sts)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, sts)
        {
            if (!cJSON_IsNumber(it) || f->n_statuses >= 8) {
                snprintf(errbuf, errlen, "statuses: up to 8 numbers");
                return -1;
            }
            f->statuses[f->n_statuses++] = it->valueint;
        }
    } else {
        f->statuses[f->n_statuses++] = 503;
    }
    for (int i = 0; i < f->n_statuses; i++) {
        if (f->statuses[i] < 400 || f->statuses[i] > 999) { /* a 7xx is one curl reads */
            snprintf(errbuf, errlen, "status %d: must be 400..999", f->statuses[i]);
            return -1;
        }
    }
    return 0;
}

static int parse_rate_limit(fault *f, const cJSON *spec, char *errbuf, size_t errlen)
{
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(spec, "retry_after");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(spec, "retry_after_format");
    if (cJSON_IsString(fmt) && strcmp(fmt->valuestring, "http-date") == 0)
        f->http_date = true;
    else if (fmt && !(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "seconds") == 0)) {
        snprintf(errbuf, errlen, "retry_after_format: \"seconds\" or \"http-date\"");
        return -1;
    }
    if (!ra) {
        snprintf(f->retry_after, sizeof(f->retry_after), "1");
    } else if (cJSON_IsNumber(ra) && ra->valuedouble >= 0 && ra->valuedouble < 1e7) {
        snprintf(f->retry_after, sizeof(f->retry_after), "%d", ra->valueint);
    } else if (cJSON_IsString(ra) && !f->http_date) {
        snprintf(f->retry_after, sizeof(f->retry_after), "%s", ra->valuestring);
    } else if (cJSON_IsNull(ra) && !f->http_date) {
        f->retry_after[0] = '\0';
    } else {
        snprintf(errbuf, errlen, "retry_after: seconds (a number) or a verbatim string");
        return -1;
    }
    return 0;
}

static int parse_params(fault *f, const cJSON *spec, char *errbuf, size_t errlen)
{
    int64_t v;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(spec, "message");
    if (cJSON_IsString(msg))
        snprintf(f->message, sizeof(f->message), "%s", msg->valuestring);
    switch (f->kind) {
    case IW_SIM_FAULT_LATENCY:
        v = -1;
        if (num(spec, "ms", 0, 3600000, &v, errbuf, errlen))
            return -1;
        f->min_ms = f->max_ms = v < 0 ? 100 : v;
        if (num(spec, "min_ms", 0, 3600000, &f->min_ms, errbuf, errlen) ||
            num(spec, "max_ms", 0, 3600000, &f->max_ms, errbuf, errlen))
            return -1;
        if (f->max_ms < f->min_ms)
            f->max_ms = f->min_ms;
        return 0;
    case IW_SIM_FAULT_ERROR: return parse_error_params(f, spec, errbuf, errlen);
    case IW_SIM_FAULT_RATE_LIMIT: return parse_rate_limit(f, spec, errbuf, errlen);
    case IW_SIM_FAULT_HANG:
        f->min_ms = DEFAULT_HANG_MS;
        return num(spec, "ms", 0, 3600000, &f->min_ms, errbuf, errlen);
    case IW_SIM_FAULT_SLOW_BODY:
        v = 16;
        f->interval_ms = 200;
        if (num(spec, "chunk_bytes", 1, 1 << 20, &v, errbuf, errlen) ||
            num(spec, "interval_ms", 0, 600000, &f->interval_ms, errbuf, errlen))
            return -1;
        f->chunk_bytes = (size_t)v;
        return 0;
    case IW_SIM_FAULT_OVERSIZED: {
        v = DEFAULT_OVERSIZED;
        if (num(spec, "bytes", 1, MAX_OVERSIZED, &v, errbuf, errlen))
            return -1;
        f->bytes = (size_t)v;
        f->chunked = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "chunked"));
        return 0;
    }
    default: return 0;
    }
}

static int add_one(const cJSON *spec, char *errbuf, size_t errlen)
{
    if (!cJSON_IsObject(spec)) {
        snprintf(errbuf, errlen, "a fault is a JSON object");
        return -1;
    }
    fault f = {0};
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(spec, "target");
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(spec, "kind");
    if (!cJSON_IsString(tj) || !cJSON_IsString(kj)) {
        snprintf(errbuf, errlen, "\"target\" and \"kind\" (strings) are required");
        return -1;
    }
    if (strcmp(tj->valuestring, "*") == 0 || strcmp(tj->valuestring, "all") == 0) {
        f.target = -1;
    } else if ((f.target = iw_sim_target_find(tj->valuestring)) < 0) {
        snprintf(errbuf, errlen, "target %.60s: unknown", tj->valuestring);
        return -1;
    }
    if (strcmp(kj->valuestring, "clear") == 0 || strcmp(kj->valuestring, "none") == 0) {
        iw_sim_faults_clear(f.target);
        return 0;
    }
    int k = kind_find(kj->valuestring);
    if (k < 0) {
        snprintf(errbuf, errlen, "kind %.60s: unknown", kj->valuestring);
        return -1;
    }
    f.kind = (iw_sim_fault_kind)k;
    f.rate = 1.0;
    f.remaining = -1;
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(spec, "rate");
    if (rate) {
        if (!cJSON_IsNumber(rate) || rate->valuedouble < 0 || rate->valuedouble > 1) {
            snprintf(errbuf, errlen, "rate: a fraction from 0 to 1");
            return -1;
        }
        f.rate = rate->valuedouble;
    }
    int64_t for_ms = -1, for_s = -1;
    if (num(spec, "count", 1, INT32_MAX, &f.remaining, errbuf, errlen) ||
        num(spec, "for_ms", 1, 86400000, &for_ms, errbuf, errlen) ||
        num(spec, "for_s", 1, 86400, &for_s, errbuf, errlen))
        return -1;
    if (for_s > 0)
        for_ms = for_s * 1000;
    if (for_ms > 0)
        f.until_mono = iw_sim_mono_ms() + for_ms;
    if (parse_params(&f, spec, errbuf, errlen) != 0)
        return -1;
    pthread_mutex_lock(&mu);
    if (n_faults >= MAX_FAULTS) {
        pthread_mutex_unlock(&mu);
        snprintf(errbuf, errlen, "too many faults installed (%d)", MAX_FAULTS);
        return -1;
    }
    f.id = next_id++;
    faults[n_faults++] = f;
    pthread_mutex_unlock(&mu);
    return 0;
}

int iw_sim_faults_add(const cJSON *spec, char *errbuf, size_t errlen)
{
    if (!cJSON_IsArray(spec))
        return add_one(spec, errbuf, errlen);
    const cJSON *it;
    cJSON_ArrayForEach(it, spec)
    {
        if (add_one(it, errbuf, errlen) != 0)
            return -1;
    }
    return 0;
}

void iw_sim_faults_clear(int t)
{
    pthread_mutex_lock(&mu);
    int k = 0;
    for (int i = 0; i < n_faults; i++)
        if (t >= 0 && faults[i].target != t)
            faults[k++] = faults[i];
    n_faults = k;
    pthread_mutex_unlock(&mu);
}

/* Drops faults whose count or time ran out; mu held. */
static void prune(int64_t now)
{
    int k = 0;
    for (int i = 0; i < n_faults; i++) {
        const fault *f = &faults[i];
        if (f->remaining == 0 || (f->until_mono && now >= f->until_mono))
            continue;
        faults[k++] = faults[i];
    }
    n_faults = k;
}

static void http_date(int64_t secs_from_now, char *buf, size_t len)
{
    time_t t = time(NULL) + (time_t)secs_from_now;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void apply(fault *f, iw_sim_fault_action *out)
{
    out->kind = f->kind;
    snprintf(out->message, sizeof(out->message), "%s", f->message);
    switch (f->kind) {
    case IW_SIM_FAULT_ERROR:
        out->status = f->statuses[f->n_statuses > 1 ? next_rand() % (uint64_t)f->n_statuses : 0];
        break;
    case IW_SIM_FAULT_RATE_LIMIT:
        if (f->http_date)
            http_date(strtoll(f->retry_after, NULL, 10), out->retry_after,
                      sizeof(out->retry_after));
        else
            snprintf(out->retry_after, sizeof(out->retry_after), "%s", f->retry_after);
        break;
    case IW_SIM_FAULT_HANG: out->hang_ms = f->min_ms; break;
    case IW_SIM_FAULT_SLOW_BODY:
        out->chunk_bytes = f->chunk_bytes;
        out->interval_ms = f->interval_ms;
        break;
    case IW_SIM_FAULT_OVERSIZED:
        out->bytes = f->bytes;
        out->chunked = f->chunked;
        break;
    default: break;
    }
}

void iw_sim_faults_pick(int t, iw_sim_fault_action *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&mu);
    if (n_faults == 0) {
        pthread_mutex_unlock(&mu);
        return;
    }
    prune(iw_sim_mono_ms());
    for (int i = 0; i < n_faults; i++) {
        fault *f = &faults[i];
        if ((f->target >= 0 && f->target != t) || f->remaining == 0)
            continue;
        if (f->kind != IW_SIM_FAULT_LATENCY && out->kind != IW_SIM_FAULT_NONE)
            continue;
        if (f->rate < 1.0 && rand_unit() >= f->rate)
            continue;
        if (f->remaining > 0)
            f->remaining--;
        f->applied++;
        if (f->kind == IW_SIM_FAULT_LATENCY) {
            int64_t span = f->max_ms - f->min_ms;
            out->latency_ms +=
                f->min_ms + (span > 0 ? (int64_t)(next_rand() % (uint64_t)(span + 1)) : 0);
        } else {
            apply(f, out);
        }
    }
    pthread_mutex_unlock(&mu);
}

cJSON *iw_sim_faults_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&mu);
    prune(iw_sim_mono_ms());
    int64_t now = iw_sim_mono_ms();
    for (int i = 0; i < n_faults; i++) {
        const fault *f = &faults[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", f->id);
        cJSON_AddStringToObject(o, "target", f->target < 0 ? "*" : iw_sim_target_name(f->target));
        cJSON_AddStringToObject(o, "kind", iw_sim_fault_kind_name(f->kind));
        cJSON_AddNumberToObject(o, "rate", f->rate);
        cJSON_AddNumberToObject(o, "remaining", (double)f->remaining);
        cJSON_AddNumberToObject(o, "ms_left", f->until_mono ? (double)(f->until_mono - now) : -1);
        cJSON_AddNumberToObject(o, "applied", (double)f->applied);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&mu);
    return arr;
}
