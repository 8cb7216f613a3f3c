/* server.c: libmicrohttpd glue: reads requests, routes them to a contract (by the paths of the
 * routes in routes.h) or the control API, applies injected faults (delays, resets, hangs, odd
 * bodies) and sends the reply. */
#include "server.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "contract.h"
#include "faults.h"
#include "state.h"

#define MAX_BODY ((size_t)8 * 1024 * 1024) /* larger requests get 413 */
#define STACK_SIZE ((size_t)1024 * 1024)

struct iw_sim_server {
    struct MHD_Daemon *d;
    iw_sim_runtime *rt;
    int port;
};

/* Per-request state, from the first callback to the completion notice. */
typedef struct conn_req {
    char *body;
    size_t len, cap;
    bool too_big;    /* body exceeded MAX_BODY: the rest is dropped, 413 sent */
    int64_t wall_ms; /* arrival (headers complete) */
    int64_t mono_ms;
} conn_req;

/* A reply body produced a little at a time (slow trickle or an oversized filler). */
typedef struct body_src {
    char *body; /* NULL: filler */
    size_t len;
    size_t chunk;        /* bytes per read */
    int64_t interval_ms; /* pause before every chunk but the first */
} body_src;

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The path of the routes (routes.h) that serves path, its target into *t and what its
 * matcher took from the path into arg; NULL when none does. */
static const iw_sim_path *route(const char *path, int *t, char *arg, size_t arglen)
{
    for (int i = 0; i < IW_SIM_N_TARGETS; i++) {
        for (const iw_sim_path *p = iw_sim_routes[i]->paths;
             p < iw_sim_routes[i]->paths + IW_SIM_MAX_PATHS && p->handle; p++) {
            if (p->suffix ? ends_with(path, p->suffix) : p->match(path, arg, arglen)) {
                *t = i;
                return p;
            }
        }
    }
    return NULL;
}

static enum MHD_Result collect_auth(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    iw_sim_request *rq = cls;
    if (strcasecmp(key, "Authorization") == 0 && value &&
        rq->n_authorization < (int)(sizeof(rq->authorization) / sizeof(rq->authorization[0])))
        rq->authorization[rq->n_authorization++] = value;
    return MHD_YES;
}

static const char *hdr(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static void fill_request(struct MHD_Connection *c, const char *method, const char *path,
                         const conn_req *cr, const iw_sim_runtime *rt, iw_sim_request *rq)
{
    memset(rq, 0, sizeof(*rq));
    rq->method = method;
    rq->path = path;
    rq->content_type = hdr(c, "Content-Type");
    rq->request_id = hdr(c, "X-Request-ID");
    rq->idempotency_key = hdr(c, "Idempotency-Key");
    rq->invoice_version = hdr(c, "X-Invoice-Version");
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_auth, rq);
    rq->body = cr->body ? cr->body : "";
    rq->body_len = cr->len;
    rq->validate = atomic_load(&rt->validate);
    rq->conf = rt->conf;
    rq->arrival_wall_ms = cr->wall_ms;
    rq->arrival_mono_ms = cr->mono_ms;
    rq->conn = c;
}

const char *iw_sim_req_header(const iw_sim_request *rq, const char *name)
{
    return rq->conn ? hdr(rq->conn, name) : NULL;
}

const char *iw_sim_req_query(const iw_sim_request *rq, const char *name)
{
    return rq->conn ? MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    body_src *b = cls;
    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos > 0 && b->interval_ms > 0 && !iw_sim_sleep_ms(b->interval_ms))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = b->len - (size_t)pos;
    if (n > b->chunk)
        n = b->chunk;
    if (n > max)
        n = max;
    if (b->body) {
        memcpy(buf, b->body + pos, n);
    } else {
        static const char head[] = "<?xml version=\"1.0\"?><filler>";
        for (size_t i = 0; i < n; i++) {
            uint64_t at = pos + i;
            buf[i] = at < sizeof(head) - 1 ? head[at] : 'x';
        }
    }
    return (ssize_t)n;
}

static void free_body(void *cls)
{
    body_src *b = cls;
    if (b)
        free(b->body);
    free(b);
}

/* Sends rp (taking its body); the body is trickled or replaced by a filler per the fault. */
static enum MHD_Result send_reply(struct MHD_Connection *c, iw_sim_reply *rp,
                                  const iw_sim_fault_action *fa)
{
    struct MHD_Response *resp = NULL;
    if (fa && (fa->kind == IW_SIM_FAULT_SLOW_BODY || fa->kind == IW_SIM_FAULT_OVERSIZED)) {
        body_src *b = calloc(1, sizeof(*b));
        if (b) {
            bool slow = fa->kind == IW_SIM_FAULT_SLOW_BODY;
            b->body = slow ? rp->body : NULL;
            b->len = slow ? rp->body_len : fa->bytes;
            b->chunk = slow ? fa->chunk_bytes : (size_t)64 * 1024;
            b->interval_ms = slow ? fa->interval_ms : 0;
            if (slow)
                rp->body = NULL;
            uint64_t size = !slow && fa->chunked ? MHD_SIZE_UNKNOWN : b->len;
            resp = MHD_create_response_from_callback(size, b->chunk, read_body, b, free_body);
            if (!resp)
                free_body(b);
        }
    } else {
        resp = MHD_create_response_from_buffer(rp->body_len, rp->body ? rp->body : (char *)"",
                                               rp->body ? MHD_RESPMEM_MUST_FREE
                                                        : MHD_RESPMEM_PERSISTENT);
        if (resp)
            rp->body = NULL;
    }
    if (!resp) {
        iw_sim_reply_clear(rp);
        return MHD_NO;
    }
    if (rp->content_type[0])
        MHD_add_response_header(resp, "Content-Type", rp->content_type);
    for (int i = 0; i < rp->n_headers; i++)
        MHD_add_response_header(resp, rp->headers[i].name, rp->headers[i].value);
    enum MHD_Result r = MHD_queue_response(c, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    iw_sim_reply_clear(rp);
    return r;
}

/* Resets the connection. Linger 0 makes the last close of the socket send RST; MHD would
 * shutdown(SHUT_WR) first (a FIN, seen as a clean "empty reply"), so the socket is released
 * here by dup2-ing a fresh unconnected socket over MHD's descriptor: the number stays valid
 * and MHD's own shutdown and close then act on the fresh socket. */
static enum MHD_Result reset_connection(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        struct linger lg = {1, 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        int fresh = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fresh >= 0) {
            dup2(fresh, ci->connect_fd);
            close(fresh);
        }
    }
    return MHD_NO;
}

/* Applies a non-latency fault that replaces the normal answer. Returns true when rp holds
 * the faulted reply. */
static bool fault_reply(const iw_sim_conf *conf, int t, const iw_sim_fault_action *fa,
                        iw_sim_reply *rp)
{
    static const char garbage[] = "\x1f\x8b\xff\xfe<<garbage>> {{ \"not\": xml or json ]]\n";
    switch (fa->kind) {
    case IW_SIM_FAULT_ERROR: iw_sim_contract_http_error(fa->status, fa->message, rp); return true;
    case IW_SIM_FAULT_RATE_LIMIT: {
        static const char msg[] = "Too Many Requests\n";
        iw_sim_reply_set(rp, 429, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        if (fa->retry_after[0])
            iw_sim_reply_header(rp, "Retry-After", fa->retry_after);
        return true;
    }
    case IW_SIM_FAULT_SOAP: iw_sim_contract_server_fault(t, fa->message, rp); return true;
    case IW_SIM_FAULT_AUTH: iw_sim_contract_auth_failure(conf, t, rp); return true;
    case IW_SIM_FAULT_REFUSAL: iw_sim_contract_refusal(t, fa->message, rp); return true;
    case IW_SIM_FAULT_GARBAGE:
        iw_sim_reply_set(rp, 200, iw_sim_contract_ctype(t), garbage, sizeof(garbage) - 1);
        return true;
    case IW_SIM_FAULT_OVERSIZED:
        iw_sim_reply_set(rp, 200, iw_sim_contract_ctype(t), "", 0);
        return true;
    default: return false;
    }
}

static enum MHD_Result serve_control(iw_sim_server *s, struct MHD_Connection *c, const char *method,
                                     const char *path, conn_req *cr)
{
    iw_sim_control_req q = {
        .method = method,
        .path = path + 5, /* keep the leading '/' of what follows "/_sim" */
        .target = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "target"),
        .id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id"),
        .key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key"),
        .prefix = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "prefix"),
        .body = cr->body ? cr->body : "",
        .body_len = cr->len,
    };
    iw_sim_reply rp = {0};
    iw_sim_control_handle(s->rt, &q, &rp);
    return send_reply(c, &rp, NULL);
}

static enum MHD_Result serve(iw_sim_server *s, struct MHD_Connection *c, const char *method,
                             const char *path, conn_req *cr)
{
    int t = -1;
    char arg[128] = "";
    iw_sim_reply rp = {0};
    if (strncmp(path, "/_sim/", 6) == 0)
        return serve_control(s, c, method, path, cr);
    const iw_sim_path *p = route(path, &t, arg, sizeof(arg));
    if (!p) {
        static const char msg[] = "404 Not Found: no simulated API at this path\n";
        iw_sim_reply_set(&rp, 404, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        iw_sim_stats_count(-1, 404);
        return send_reply(c, &rp, NULL);
    }
    char key[256];
    int idx =
        iw_sim_calls_begin(t, hdr(c, "X-Request-ID"), cr->wall_ms, cr->mono_ms, key, sizeof(key));
    iw_sim_fault_action fa = {0};
    if (strcmp(method, p->method) != 0) {
        static const char msg[] = "405 Method Not Allowed\n";
        iw_sim_reply_set(&rp, 405, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        iw_sim_reply_header(&rp, "Allow", p->method);
    } else if (cr->too_big) {
        static const char msg[] = "413 Request Entity Too Large\n";
        iw_sim_reply_set(&rp, 413, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
    } else {
        if (!p->no_faults)
            iw_sim_faults_pick(t, &fa);
        if (fa.latency_ms > 0 && !iw_sim_sleep_ms(fa.latency_ms))
            return MHD_NO;
        if (fa.kind == IW_SIM_FAULT_RESET || fa.kind == IW_SIM_FAULT_HANG) {
            iw_sim_calls_finish(key, idx, 0);
            iw_sim_stats_count(t, 0);
            if (fa.kind == IW_SIM_FAULT_RESET)
                return reset_connection(c);
            iw_sim_sleep_ms(fa.hang_ms);
            return MHD_NO;
        }
        if (!fault_reply(s->rt->conf, t, &fa, &rp)) {
            iw_sim_request rq;
            fill_request(c, method, path, cr, s->rt, &rq);
            rq.target = t;
            rq.arg = arg;
            rq.creds = &s->rt->conf->creds[t];
            p->handle(&rq, &rp);
        }
        if (fa.kind == IW_SIM_FAULT_APPLY_RESET) { /* applied, and the answer never leaves */
            iw_sim_reply_clear(&rp);
            iw_sim_calls_finish(key, idx, 0);
            iw_sim_stats_count(t, 0);
            return reset_connection(c);
        }
    }
    iw_sim_calls_finish(key, idx, rp.status);
    iw_sim_stats_count(t, rp.status);
    return send_reply(c, &rp, &fa);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    iw_sim_server *s = cls;
    conn_req *cr = *req_cls;
    if (!cr) {
        cr = calloc(1, sizeof(*cr));
        if (!cr)
            return MHD_NO;
        cr->wall_ms = iw_sim_wall_ms();
        cr->mono_ms = iw_sim_mono_ms();
        *req_cls = cr;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cr->too_big || cr->len + n > MAX_BODY) {
            cr->too_big = true;
            return MHD_YES;
        }
        if (cr->len + n + 1 > cr->cap) {
            size_t cap = cr->cap ? cr->cap : 16384;
            while (cap < cr->len + n + 1)
                cap *= 2;
            char *nb = realloc(cr->body, cap);
            if (!nb)
                return MHD_NO;
            cr->body = nb;
            cr->cap = cap;
        }
        memcpy(cr->body + cr->len, upload_data, n);
        cr->len += n;
        cr->body[cr->len] = '\0';
        return MHD_YES;
    }
    return serve(s, c, method, url, cr);
}

/* MHD's error log, minus the line it prints each time a reset or hang fault closes a
 * connection on purpose. */
static void on_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (strstr(line, "Application reported internal error"))
        return;
    fprintf(stderr, "target-sim: %s", line);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_req *cr = *req_cls;
    if (cr) {
        free(cr->body);
        free(cr);
    }
    *req_cls = NULL;
}

iw_sim_server *iw_sim_server_start(iw_sim_runtime *rt, char *errbuf, size_t errlen)
{
    const iw_sim_conf *conf = rt->conf;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)conf->listen_port);
    if (inet_pton(AF_INET, conf->listen_host, &sa.sin_addr) != 1) {
        snprintf(errbuf, errlen, "--listen: %s is not an IPv4 address", conf->listen_host);
        return NULL;
    }
    iw_sim_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->rt = rt;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)conf->threads_hint, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)300, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)STACK_SIZE, MHD_OPTION_END);
    if (!s->d) {
        snprintf(errbuf, errlen, "cannot listen on %s:%d", conf->listen_host, conf->listen_port);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : conf->listen_port;
    return s;
}

int iw_sim_server_port(const iw_sim_server *s)
{
    return s->port;
}

void iw_sim_server_stop(iw_sim_server *s)
{
    if (!s)
        return;
    iw_sim_stop_sleepers();
    MHD_stop_daemon(s->d);
    free(s);
}
