/* test_testproc.c: the processes a test starts end with it, even when it crashes; free ports. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testproc.h"

/* True while pid names a process that has not exited (a zombie waiting to be reaped by
 * whoever adopted it has exited). */
static bool running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')'); /* the state follows "(comm) " */
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/* A test process starts a server through iw_proc_start and then dies without stopping it, as a
 * crashed test does (Criterion runs no .fini then). The server must not outlive it. */
Test(testproc, a_started_process_ends_with_the_test_that_crashed)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t test = fork();
    cr_assert_geq(test, 0);
    if (test == 0) {
        close(fds[0]);
        iw_proc p;
        char *argv[] = {"sleep", "300", NULL};
        if (iw_proc_start(&p, argv, false) != 0)
            _exit(2);
        if (write(fds[1], &p.pid, sizeof(p.pid)) != (ssize_t)sizeof(p.pid))
            _exit(3);
        abort(); /* no cleanup of any kind */
    }
    close(fds[1]);
    pid_t server = 0;
    ssize_t got = read(fds[0], &server, sizeof(server));
    close(fds[0]);
    int st = 0;
    cr_assert_eq(waitpid(test, &st, 0), test);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the test process crashed");
    cr_assert_eq(got, (ssize_t)sizeof(server), "the test process started its server");
    cr_assert_gt(server, 0);
    long long deadline = iw_now_ms() + 10000;
    while (running(server) && iw_now_ms() < deadline)
        iw_sleep_ms(20);
    bool left = running(server);
    if (left)
        kill(server, SIGKILL); /* ours: started by the test process above */
    cr_assert_not(left, "the server (pid %d) outlived the test that started it", (int)server);
}

/* A server started by a test that goes on running is not ended by the ending of something
 * else: the death signal follows the process that started it, not a sibling. */
Test(testproc, a_started_process_runs_while_its_test_runs)
{
    iw_proc p;
    char *argv[] = {"sleep", "300", NULL};
    cr_assert_eq(iw_proc_start(&p, argv, false), 0);
    pid_t other = fork(); /* another child of the test, ending at once */
    cr_assert_geq(other, 0);
    if (other == 0)
        _exit(0);
    cr_assert_eq(waitpid(other, NULL, 0), other);
    iw_sleep_ms(200);
    bool alive = running(p.pid);
    int st = iw_proc_stop(&p, 5000);
    cr_assert(alive, "the server ended while its test still ran");
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "stopped by iw_proc_stop");
}

/* Free ports come from below the kernel's ephemeral range, where no outgoing connection and no
 * bind to port 0 can take one before the server binds it; they can be bound, and one process
 * never gets the same port twice in a row of 64. */
Test(testproc, free_ports_come_from_below_the_ephemeral_range)
{
    int lo = 0, hi = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%d %d", &lo, &hi), 2);
    fclose(f);
    int ports[64];
    for (int i = 0; i < 64; i++) {
        ports[i] = iw_free_port();
        cr_assert_gt(ports[i], 0);
        if (lo - 10000 >= 1000)
            cr_assert(ports[i] >= 10000 && ports[i] < lo, "port %d, ephemeral range %d-%d",
                      ports[i], lo, hi);
        for (int k = 0; k < i; k++)
            cr_assert_neq(ports[i], ports[k], "port %d given twice", ports[i]);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ports[63])};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %d: %s", ports[63],
                 strerror(errno));
    cr_assert_eq(listen(fd, 1), 0);
    close(fd);
}
