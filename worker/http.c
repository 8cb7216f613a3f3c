/* http.c: /metrics, /healthz and /readyz on libmicrohttpd's own thread; reads only snapshots. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "metrics.h"

#define HEALTH_STALL_MS 15000 /* the loop is dead when it has not turned for this long */

/* Connections: seconds a connection may stay silent, and how many from one address (probes and
 * scrapes need one or two each; the table as a whole keeps libmicrohttpd's default, about
 * 1,000, since a lower one would let fewer addresses fill it). Where every connection comes from
 * one address (a service mesh's sidecar) the per-address limit is the only one that counts:
 * keep it well above what the probes and scrapes use. */
#define HTTP_IDLE_S 10u
#define HTTP_MAX_PER_ADDRESS 64u

/* The table's size: libmicrohttpd's default (about 1,000), but never more than a quarter of the
 * process's open-file limit, so slow clients cannot take the descriptors the targets, Redis and
 * Kafka need (run raises the soft limit to the hard one first). */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1000u;
    rlim_t quarter = rl.rlim_cur / 4;
    return quarter >= 1000u ? 1000u : quarter < 16u ? 16u : (unsigned)quarter;
}

struct iw_http {
    struct MHD_Daemon *d; /* its own polling thread */
    iw_health health;     /* what the probes and /metrics read; zeroed when none */
    int port;             /* bound port */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
                             enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (code == 405) /* RFC 9110 section 15.5.6 */
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    iw_http *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, 405, "text/plain", "method not allowed\n", MHD_RESPMEM_PERSISTENT);
    iw_health_status st;
    memset(&st, 0, sizeof(st));
    if (h->health.status)
        h->health.status(h->health.ctx, &st);
    if (strcmp(url, "/metrics") == 0) {
        char *text = h->health.metrics ? iw_metrics_render(h->health.metrics) : strdup("");
        if (!text)
            return reply(c, 500, "text/plain", "out of memory\n", MHD_RESPMEM_PERSISTENT);
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                     MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) {
        bool alive = st.last_loop_ms && mono_ms() - st.last_loop_ms < HEALTH_STALL_MS;
        return alive ? reply(c, 200, "text/plain", "ok\n", MHD_RESPMEM_PERSISTENT)
                     : reply(c, 503, "text/plain", "event loop stalled\n", MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/readyz") == 0) {
        if (!st.last_loop_ms)
            return reply(c, 503, "text/plain", "starting\n", MHD_RESPMEM_PERSISTENT);
        if (!st.ledger_ok) /* review 92: a refused password read as "unreachable" */
            return reply(c, 503, "text/plain",
                         st.ledger_refused ? "redis refuses the worker (the log says why: AUTH, "
                                             "an evicting policy): consumption paused\n"
                                           : "redis unreachable: consumption paused\n",
                         MHD_RESPMEM_PERSISTENT);
        if (!st.producer_ok)
            return reply(c, 503, "text/plain", "producer failed\n", MHD_RESPMEM_PERSISTENT);
        if (!st.in_group)
            return reply(c, 503, "text/plain", "not in the consumer group\n",
                         MHD_RESPMEM_PERSISTENT);
        return reply(c, 200, "text/plain", "ready\n", MHD_RESPMEM_PERSISTENT);
    }
    return reply(c, 404, "text/plain", "not found: try /metrics, /healthz, /readyz\n",
                 MHD_RESPMEM_PERSISTENT);
}

/* MHD_OPTION_UNESCAPE_CALLBACK: paths are compared as sent. libmicrohttpd's own unescaping
 * made "/healthz%00x" a C string "/healthz", answered as the probe; no path here needs an
 * escape. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return strlen(s);
}

/* Why libmicrohttpd could not listen at ss, which it does not say: the same bind, tried here
 * (with the SO_REUSEADDR it sets), names the reason ("Address already in use"). */
static const char *why_not_listening(const struct sockaddr_storage *ss, socklen_t sl)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return strerror(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const char *why = bind(fd, (const struct sockaddr *)ss, sl) != 0 || listen(fd, 1) != 0
                          ? strerror(errno)
                          : "the HTTP server did not start (out of resources?)";
    close(fd);
    return why;
}

iw_http *iw_http_start(const char *listen, const iw_health *health, char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (iw_listen_parse(listen, &ss, &sl) != 0) {
        snprintf(errbuf, errlen,
                 "http.listen: expected IPv4-address:port or [IPv6-address]:port, got \"%s\"",
                 listen);
        return NULL;
    }
    iw_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (health)
        h->health = *health;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
    /* Slow clients (a request trickled a byte at a time resets any idle timeout) hold a
     * connection each: a per-address limit keeps one address from filling the table, so the
     * kubelet's probes and the scrape still get in (libmicrohttpd closes a connection over the
     * limit at once). */
    h->d = MHD_start_daemon(flags, port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, HTTP_IDLE_S, MHD_OPTION_CONNECTION_LIMIT,
                            connection_limit(), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            HTTP_MAX_PER_ADDRESS, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s", listen, why_not_listening(&ss, sl));
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (int)port;
    return h;
}

int iw_http_port(const iw_http *h)
{
    return h->port;
}

void iw_http_stop(iw_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
