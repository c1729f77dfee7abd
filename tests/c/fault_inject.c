/*
 * A fault-injecting preload for servers we did not write: loaded
 * before libfailstop_preload.so (LD_PRELOAD="fault_inject.so
 * libfailstop_preload.so"), it wraps epoll_wait and, after a signal asked
 * for a fault, makes the thread that comes back from its wait spin or block
 * there, outside the wait, as a bug in the server's own code would:
 *
 *   SIGRTMIN+4   spin: a busy loop that never returns
 *   SIGRTMIN+5   block: sleep(3600) in a loop, never returning
 *
 * The signal is sent to one process (kill -s), so it picks one worker of a
 * master/worker server. Before the fault, one line on stderr says which pid
 * takes it ("fault_inject: pid N spins"). Nothing else changes: results and
 * errno of epoll_wait are passed on as they were.
 *
 * Built by preload/tests/preload_servers.rs with cc -shared -fPIC.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { FAULT_NONE, FAULT_SPIN, FAULT_BLOCK };

static volatile sig_atomic_t fault = FAULT_NONE;

static void on_spin(int sig) {
    (void)sig;
    fault = FAULT_SPIN;
}

static void on_block(int sig) {
    (void)sig;
    fault = FAULT_BLOCK;
}

__attribute__((constructor)) static void fault_inject_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_spin;
    sigaction(SIGRTMIN + 4, &sa, NULL);
    sa.sa_handler = on_block;
    sigaction(SIGRTMIN + 5, &sa, NULL);
}

static void say(const char *what) {
    char line[96];
    int n = snprintf(line, sizeof line, "fault_inject: pid %d %s\n", (int)getpid(), what);
    if (n > 0) {
        ssize_t w = write(2, line, (size_t)n);
        (void)w;
    }
}

static void take_fault(void) {
    if (fault == FAULT_SPIN) {
        say("spins");
        for (volatile unsigned long i = 0;; i++) {
        }
    }
    if (fault == FAULT_BLOCK) {
        say("blocks");
        for (;;) {
            sleep(3600);
        }
    }
}

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    static epoll_wait_fn next;
    if (!next) {
        next = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
    }
    int r = next(epfd, events, maxevents, timeout);
    int saved = errno;
    take_fault();
    errno = saved;
    return r;
}
