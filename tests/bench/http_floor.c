/* http_floor: what libcurl alone costs per call, for scripts/bench.
 *
 * POSTs one request N times with at most C calls in flight, through a libcurl multi handle
 * driven the way the worker drives it:
 * - epoll, and curl_multi_socket_action with CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION;
 * - sockets parked in epoll between calls, libcurl's timeout kept as a deadline;
 * - the calls spread over multi handles of at most POOL_MAX transfers each (the worker's pools:
 *   libcurl 7.88 walks a multi handle's connections to find one to reuse);
 * - easy handles and parsed URLs reused across calls;
 * - the worker's per-handle options (4 KB receive buffer, no "Expect: 100-continue", TCP
 *   keep-alive, no signals; no proxy, and so no proxy environment lookups, when no *_proxy
 *   variable is set) and its call headers (Idempotency-Key, X-Request-ID: each call its
 *   own, as the bench's wrk script does).
 * Nothing else: no Kafka, no Redis, no parsing, no rendering.
 *
 * The request file is "METHOD URL", header lines, an empty line, the body (the URL there is not
 * used). Prints one JSON object: requests, ok (2xx), seconds, cpu_s, cpu_us_per_request,
 * requests_per_s, peak_rss_kb. CPU is this process's user + system time from the first call to
 * the last reply.
 *
 * usage: http_floor REQUEST_FILE URL CONNECTIONS REQUESTS */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h" /* iw_env_has_no_proxy_vars */

#define MAX_HEADERS 32
#define POOL_MAX 64 /* worker/dispatch.c: POOL_XFERS */

typedef struct {
    CURLM *multi;
    double deadline; /* libcurl's one timeout for this multi handle; < 0: none */
} pool;

typedef struct {
    pool *pl;
    CURL *easy;
    CURLU *url;
    struct curl_slist nodes[MAX_HEADERS + 3];
    char key[96], rid[104];
} slot;

static int ep;
static pool *pools;
static size_t n_pools;
static char *body;
static size_t body_len;
static char *headers[MAX_HEADERS];
static size_t n_headers;
static long sent, done, ok, total;

static int fail(const char *what)
{
    fprintf(stderr, "http_floor: %s\n", what);
    return 2;
}

static double now_s(int clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmHWM: getrusage's ru_maxrss would include the peak of the process that started this one
 * (Linux carries it across exec). */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static size_t drop_body(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* What each socket is watched for in epoll (0: not registered). A socket going back to the
 * connection cache stays registered ("parked", as the worker's loop parks it): the next call on
 * it usually wants the same readiness, and then watching it costs no system call. */
static unsigned char watched[1 << 16];

static int socket_cb(CURL *e, curl_socket_t s, int what, void *u, void *sp)
{
    (void)e;
    (void)sp;
    pool *pl = u;
    if (what == CURL_POLL_REMOVE || s < 0 || s >= (int)sizeof watched)
        return 0;
    unsigned char want =
        (unsigned char)((what & CURL_POLL_IN ? 1 : 0) | (what & CURL_POLL_OUT ? 2 : 0));
    if (watched[s] == want)
        return 0;
    struct epoll_event ev = {.events = (want & 1 ? EPOLLIN : 0) | (want & 2 ? EPOLLOUT : 0),
                             .data.u64 = (uint64_t)(pl - pools) << 32 | (uint32_t)s};
    epoll_ctl(ep, watched[s] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    watched[s] = want;
    return 0;
}

static int close_socket(void *u, curl_socket_t s)
{
    (void)u;
    if (s >= 0 && s < (int)sizeof watched && watched[s]) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
        watched[s] = 0;
    }
    return close(s);
}

/* libcurl's timeout, as a deadline the loop's wait honours (the worker keeps a timer heap: no
 * system call per change). */
static int timer_cb(CURLM *m, long ms, void *u)
{
    (void)m;
    pool *pl = u;
    pl->deadline = ms < 0 ? -1 : now_s(CLOCK_MONOTONIC) + (double)ms / 1000;
    return 0;
}

/* Gives s its next call: the request's headers plus this call's own ids. */
static void start(slot *s)
{
    long n = ++sent;
    snprintf(s->key, sizeof s->key, "Idempotency-Key: FLOOR-%ld:centra_soap", n);
    snprintf(s->rid, sizeof s->rid, "X-Request-ID: FLOOR-%ld:centra_soap:1", n);
    size_t k = 0;
    for (; k < n_headers; k++)
        s->nodes[k].data = headers[k];
    s->nodes[k++].data = s->key;
    s->nodes[k++].data = s->rid;
    s->nodes[k++].data = "Expect:";
    for (size_t i = 0; i < k; i++)
        s->nodes[i].next = i + 1 < k ? &s->nodes[i + 1] : NULL;
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->nodes);
    curl_multi_add_handle(s->pl->multi, s->easy);
}

static void reap(pool *pl)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(pl->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        slot *s;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        done++;
        if (m->data.result == CURLE_OK && status >= 200 && status < 300)
            ok++;
        curl_multi_remove_handle(pl->multi, m->easy_handle);
        if (sent < total)
            start(s);
    }
}

/* Reads the request file: "METHOD URL", header lines, an empty line, the body. */
static int read_request(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    if (!whole)
        return -1; /* unreadable, or larger than the buffer */
    buf[len] = '\0';
    char *p = strchr(buf, '\n');
    if (!p)
        return -1;
    p++;
    while (*p && *p != '\n') {
        char *nl = strchr(p, '\n');
        if (!nl || n_headers == MAX_HEADERS)
            return -1;
        *nl = '\0';
        if (strncmp(p, "Idempotency-Key:", 16) != 0 && strncmp(p, "X-Request-ID:", 13) != 0)
            headers[n_headers++] = p;
        p = nl + 1;
    }
    if (*p != '\n')
        return -1;
    body = p + 1;
    body_len = len - (size_t)(body - buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return fail("usage: http_floor REQUEST_FILE URL CONNECTIONS REQUESTS");
    long conns = atol(argv[3]);
    total = atol(argv[4]);
    if (conns < 1 || total < 1 || read_request(argv[1]) != 0)
        return fail("bad arguments or request file");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ep = epoll_create1(EPOLL_CLOEXEC);
    n_pools = ((size_t)conns + POOL_MAX - 1) / POOL_MAX;
    pools = calloc(n_pools, sizeof *pools);
    slot *slots = calloc((size_t)conns, sizeof *slots);
    if (!pools || !slots)
        return fail("out of memory");
    for (size_t i = 0; i < n_pools; i++) {
        CURLM *m = pools[i].multi = curl_multi_init();
        pools[i].deadline = -1;
        curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(m, CURLMOPT_SOCKETDATA, &pools[i]);
        curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(m, CURLMOPT_TIMERDATA, &pools[i]);
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)POOL_MAX);
    }
    bool no_proxy_env = iw_env_has_no_proxy_vars();
    for (long i = 0; i < conns; i++) {
        slots[i].pl = &pools[(size_t)i / POOL_MAX];
        CURL *e = slots[i].easy = curl_easy_init();
        /* a parsed URL, as the worker keeps one per handle */
        CURLU *u = slots[i].url = curl_url();
        if (!u || curl_url_set(u, CURLUPART_URL, argv[2], 0) != CURLUE_OK)
            return fail("bad URL");
        curl_easy_setopt(e, CURLOPT_URL, argv[2]);
        curl_easy_setopt(e, CURLOPT_CURLU, u);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
        if (no_proxy_env) {
            curl_easy_setopt(e, CURLOPT_PROXY, "");
            curl_easy_setopt(e, CURLOPT_NOPROXY, "");
        }
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, drop_body);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
    }
    double t0 = now_s(CLOCK_MONOTONIC), c0 = cpu_s();
    for (long i = 0; i < conns && sent < total; i++)
        start(&slots[i]);
    int running = 0;
    for (size_t i = 0; i < n_pools; i++)
        curl_multi_socket_action(pools[i].multi, CURL_SOCKET_TIMEOUT, 0, &running);
    while (done < total) {
        struct epoll_event evs[256];
        double first = -1;
        for (size_t i = 0; i < n_pools; i++)
            if (pools[i].deadline >= 0 && (first < 0 || pools[i].deadline < first))
                first = pools[i].deadline;
        int wait = 1000;
        if (first >= 0) {
            double left = first - now_s(CLOCK_MONOTONIC);
            wait = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        int n = epoll_wait(ep, evs, 256, wait);
        for (int i = 0; i < n; i++) {
            int bits = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                       (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            pool *pl = &pools[evs[i].data.u64 >> 32];
            curl_multi_socket_action(pl->multi, (curl_socket_t)(uint32_t)evs[i].data.u64, bits,
                                     &running);
        }
        double now = now_s(CLOCK_MONOTONIC);
        for (size_t i = 0; i < n_pools; i++) {
            if (pools[i].deadline >= 0 && now >= pools[i].deadline) {
                pools[i].deadline = -1;
                curl_multi_socket_action(pools[i].multi, CURL_SOCKET_TIMEOUT, 0, &running);
            }
            reap(&pools[i]);
        }
    }
    double secs = now_s(CLOCK_MONOTONIC) - t0, cpu = cpu_s() - c0;
    printf("{\"requests\": %ld, \"ok\": %ld, \"seconds\": %.3f, \"cpu_s\": %.3f, "
           "\"cpu_us_per_request\": %.2f, \"requests_per_s\": %.1f, \"peak_rss_kb\": %ld}\n",
           done, ok, secs, cpu, cpu / (double)done * 1e6, (double)done / secs, peak_rss_kb());
    for (long i = 0; i < conns; i++)
        curl_easy_cleanup(slots[i].easy), curl_url_cleanup(slots[i].url);
    free(slots);
    for (size_t i = 0; i < n_pools; i++)
        curl_multi_cleanup(pools[i].multi);
    free(pools);
    curl_global_cleanup();
    return ok == total ? 0 : 1;
}
