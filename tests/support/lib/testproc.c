/* testproc.c: child processes and free ports for integration tests. */
#include "testproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IW_BUILD_DIR
#define IW_BUILD_DIR "."
#endif

long long iw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void iw_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Whether a listening socket could bind 127.0.0.1:port now. */
static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* The kernel's port for a bind to port 0 (from its ephemeral range), or -1. */
static int kernel_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int iw_free_port(void)
{
    /* Below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 to 60999 by
     * default): a port from that range may be given, between this check and the server's own
     * bind, to another bind to port 0 or to an outgoing connection, of any process. Below it,
     * only another test picking the same port can take it: picked at random, tests running at
     * once pick apart, and this process never picks one of its last 64 again. */
    enum { LOW = 10000, RECENT = 64 };
    static int recent[RECENT], n_recent;
    static uint64_t state;
    static pid_t seeded_by; /* a forked test process draws its own ports */
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    if (lo - LOW < 1000)
        return kernel_port(); /* no room below the range */
    if (seeded_by != getpid()) {
        seeded_by = getpid();
        n_recent = 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20;
        state |= 1;
    }
    for (int tries = 0; tries < 500; tries++) {
        state ^= state << 13; /* xorshift64 */
        state ^= state >> 7;
        state ^= state << 17;
        int port = LOW + (int)(state % (uint64_t)(lo - LOW));
        bool seen = false;
        for (int i = 0; i < n_recent && i < RECENT && !seen; i++)
            seen = recent[i] == port;
        if (seen || !port_bindable(port))
            continue;
        recent[n_recent++ % RECENT] = port;
        return port;
    }
    return kernel_port();
}

int iw_proc_start(iw_proc *p, char *const argv[], bool capture_stdout)
{
    int pipefd[2] = {-1, -1};
    memset(p, 0, sizeof(*p));
    p->out_fd = -1;
    snprintf(p->name, sizeof(p->name), "%s", argv[0]);
    if (capture_stdout && pipe(pipefd) != 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* It ends with the process that started it, even one that crashed or was killed:
         * Criterion runs no .fini of a test that crashed, and a stack left running would hold
         * its ports and temporary directory for good. (The signal follows the thread that
         * forked: every caller starts its processes from its main thread.) */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        if (capture_stdout) {
            dup2(pipefd[1], STDOUT_FILENO);
            close(pipefd[0]);
            close(pipefd[1]);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "testproc: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (capture_stdout) {
        close(pipefd[1]);
        p->out_fd = pipefd[0];
    }
    p->pid = pid;
    return 0;
}

int iw_proc_read_line(iw_proc *p, char *buf, size_t len, int timeout_ms)
{
    size_t n = 0;
    long long deadline = iw_now_ms() + timeout_ms;
    while (n + 1 < len) {
        long long left = deadline - iw_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r <= 0)
            continue;
        char c;
        ssize_t got = read(p->out_fd, &c, 1);
        if (got <= 0)
            return -1;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return (int)n;
}

int iw_wait_port(int port, int timeout_ms)
{
    long long deadline = iw_now_ms() + timeout_ms;
    while (iw_now_ms() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return 0;
        iw_sleep_ms(20);
    }
    return -1;
}

void iw_proc_signal(iw_proc *p, int sig)
{
    if (p->pid > 0)
        kill(p->pid, sig);
}

int iw_proc_wait(iw_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    long long deadline = iw_now_ms() + timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            if (p->out_fd >= 0)
                close(p->out_fd);
            p->out_fd = -1;
            return status;
        }
        if (iw_now_ms() >= deadline)
            return -1;
        iw_sleep_ms(10);
    }
}

int iw_proc_stop(iw_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int st = iw_proc_wait(p, timeout_ms);
    if (st == -1 && p->pid > 0) {
        kill(p->pid, SIGKILL);
        st = iw_proc_wait(p, 5000);
    }
    return st;
}

static int redis_spawn(iw_redis *r, bool aof)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                    "--save", "", "--appendonly", aof ? "yes" : "no", "--daemonize", "no",
                    "--loglevel", "warning", NULL};
    if (iw_proc_start(&r->proc, argv, false) != 0)
        return -1;
    return iw_wait_port(r->port, 10000);
}

int iw_redis_start(iw_redis *r, bool aof)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/iw-redis-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    r->port = iw_free_port();
    return redis_spawn(r, aof);
}

void iw_redis_kill(iw_redis *r)
{
    iw_proc_stop(&r->proc, 5000);
}

int iw_redis_restart(iw_redis *r, bool aof)
{
    return redis_spawn(r, aof);
}

void iw_redis_stop(iw_redis *r)
{
    iw_proc_stop(&r->proc, 5000);
    if (r->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "testproc: could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}

const char *iw_build_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s/%s", IW_BUILD_DIR, name);
    return buf;
}
