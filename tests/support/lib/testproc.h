/* testproc.h: starting and stopping real server processes on free loopback ports for tests. */
#ifndef IW_TESTPROC_H
#define IW_TESTPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A child process started by a test. */
typedef struct iw_proc {
    pid_t pid;          /* 0 when not running */
    int out_fd;         /* read end of the child's stdout when captured, else -1 */
    char name[64];      /* for messages */
} iw_proc;

/* Returns a TCP port on 127.0.0.1 that was free a moment ago: at random below the kernel's
 * ephemeral range, where nothing but another test picking it can take it before the server
 * binds it (the kernel's choice for a bind to port 0 when that range leaves no room). */
int iw_free_port(void);

/* Starts argv[0] (a path, or a name found on PATH) with argv. When capture_stdout is true the
 * child's stdout is a pipe readable through p->out_fd; stderr is inherited. 0 or -1. */
int iw_proc_start(iw_proc *p, char *const argv[], bool capture_stdout);

/* Reads one line from the child's captured stdout into buf (without the newline), waiting up
 * to timeout_ms. Returns the length, or -1 on timeout/EOF. */
int iw_proc_read_line(iw_proc *p, char *buf, size_t len, int timeout_ms);

/* Waits until something accepts TCP connections on 127.0.0.1:port, up to timeout_ms. 0 or -1. */
int iw_wait_port(int port, int timeout_ms);

/* Sends sig to the child. */
void iw_proc_signal(iw_proc *p, int sig);

/* Sends SIGTERM, waits up to timeout_ms, then SIGKILL; reaps the child. Returns its exit
 * status as from waitpid (or -1). Safe on a stopped/never-started proc. */
int iw_proc_stop(iw_proc *p, int timeout_ms);

/* Waits for the child to exit by itself, up to timeout_ms. Returns the waitpid status or -1. */
int iw_proc_wait(iw_proc *p, int timeout_ms);

/* A redis-server on a free port with persistence off (or AOF on when aof is true), in its own
 * temporary directory. */
typedef struct iw_redis {
    iw_proc proc;
    int port;
    char dir[256];
} iw_redis;

/* Starts redis-server and waits until it answers. 0 or -1. */
int iw_redis_start(iw_redis *r, bool aof);

/* Stops it (SIGTERM) and removes its directory. */
void iw_redis_stop(iw_redis *r);

/* Stops the server (SIGTERM, so an AOF is flushed) but keeps its directory and port. */
void iw_redis_kill(iw_redis *r);

/* Starts the server again on the same port and directory (data kept when AOF was on). */
int iw_redis_restart(iw_redis *r, bool aof);

/* Path of a program built beside the tests (IW_BUILD_DIR/name), in a static buffer. */
const char *iw_build_path(const char *name);

/* Monotonic milliseconds. */
long long iw_now_ms(void);

/* Sleeps ms milliseconds. */
void iw_sleep_ms(long ms);

#endif
