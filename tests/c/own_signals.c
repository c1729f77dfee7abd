/*
 * Ordinary things services do with their own signals, under failstop.
 * Each mode is run with failstop and with FAILSTOP_DISABLE=1 by
 * tests/own_signals.rs, which compares the two where the expectation is "as
 * without failstop". Every mode ends by itself within 10 s (a timeout thread
 * prints "TIMEOUT" and exits 3), so a hang is a failure, not a stuck test.
 *
 *   dfl          SIGALRM set back to SIG_DFL after start; 1.5 s of CPU work
 *   saverestore  old = signal(SIGALRM, h); signal(SIGALRM, old); CPU work
 *   sigpending   RLIMIT_SIGPENDING used up (set to 0) after start, then a
 *                registered worker spins: the verdict and its dump
 *   altstack8k   a registered worker with its own 8 KiB alternate signal
 *                stack spins: the verdict and its fatal path
 *   altstack2k   the same with a MINSIGSTKSZ (2 KiB) stack, healthy work
 *   eintr        alarm(1)-timed read() of an empty pipe in a registered
 *                thread, the SIGALRM handler installed (before start)
 *                without SA_RESTART: prints "EINTR" when it fails so
 *   handler      SIGALRM handler installed after start, 3 s of CPU work:
 *                prints how often it ran
 *   sigtimedwait a registered thread blocks SIGALRM and polls it with
 *                sigtimedwait between bursts of CPU work for 3 s: prints
 *                how many it took (and how many with SI_TIMER)
 *   signalfd     the same with a signalfd
 *   sigwait      a daemon thread sigwait()s for SIGALRM/SIGHUP; a
 *                registered worker spins: the verdict and its dump
 *   resethand    SIGALRM handler with sa_mask {SIGUSR1} and SA_RESETHAND,
 *                installed before start; raises SIGALRM twice
 *   fd2          started (again, by execv) with fd 2 closed, the first
 *                open() (fd 2) is the data file argv[2]; then start, slow
 *                work with warnings; writes "DATA"
 *   name         a registered thread with a newline and quotes in its name
 *                does slow work (warnings), then spins (the verdict)
 *   reenter      a SIGUSR1 handler calls failstop_stop() while the main
 *                thread starts and stops the watchdog 200 times
 *   nolimit      RLIMIT_SIGPENDING 0 before start: prints start's error
 *   smallstack   the spinner on a thread with a PTHREAD_STACK_MIN stack:
 *                failstop's handler runs on it, to the verdict's end
 *   spin, block  a registered worker spins, or blocks in read() of a pipe
 *                nobody writes, after printing "FAULT" (detection times)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "failstop.h"

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile unsigned long sink;

/* Burns `ms` of this thread's CPU. */
static void burn_ms(long ms) {
    double until = cpu_now() + ms / 1000.0;
    while (cpu_now() < until) {
        for (int i = 0; i < 10000; i++) {
            sink += i;
        }
    }
}

/* Healthy CPU work for `secs` of wall time: 20 ms bursts, touching. */
static void healthy_work(failstop_thread *t, double secs) {
    double until = mono_now() + secs;
    while (mono_now() < until) {
        burn_ms(20);
        failstop_touch(t);
    }
}

static void say(const char *s) {
    printf("%s\n", s);
    fflush(stdout);
}

static void *timeout_thread(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    double until = mono_now() + 10;
    while (mono_now() < until) {
        nap_ms(100); /* a signal may cut a nap short */
    }
    say("TIMEOUT");
    _exit(3);
    return NULL;
}

static void start_timeout(void) {
    /* Created with every signal blocked: the application's signals and
     * failstop's never land on it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    pthread_create(&th, NULL, timeout_thread, NULL);
    pthread_detach(th);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void must_start(void) {
    if (failstop_start() != FAILSTOP_OK) {
        char buf[512];
        failstop_last_error(buf, sizeof buf);
        printf("START FAILED %s\n", buf);
        fflush(stdout);
        exit(4);
    }
}

static failstop_thread *must_register(const char *name) {
    failstop_thread *t = failstop_register(name);
    if (t == NULL) {
        char buf[512];
        failstop_last_error(buf, sizeof buf);
        printf("REGISTER FAILED %s\n", buf);
        fflush(stdout);
        exit(5);
    }
    return t;
}

static volatile sig_atomic_t handled;
static volatile sig_atomic_t usr1_masked = -1;

static void count_handler(int sig) {
    (void)sig;
    handled++;
}

static volatile int go = 1;

/* A registered worker that spins without touching for up to 6 s, once
 * `go` is set. */
static void *spinner(void *arg) {
    (void)arg;
    failstop_thread *t = must_register("spinner");
    say("REGISTERED");
    while (!go) {
        nap_ms(10);
    }
    failstop_touch(t);
    say("SPINNING");
    say("FAULT");
    double until = mono_now() + 6;
    while (mono_now() < until) {
        sink++;
    }
    say("SPIN END");
    failstop_unregister(t);
    return NULL;
}

static pthread_t spawn_spinner(void) {
    pthread_t th;
    pthread_create(&th, NULL, spinner, NULL);
    return th;
}

static void run_spinner(void) {
    pthread_join(spawn_spinner(), NULL);
}

static int mode_dfl(void) {
    must_start();
    failstop_thread *t = must_register("main");
    signal(SIGALRM, SIG_DFL);
    healthy_work(t, 1.5);
    say("DONE");
    return 0;
}

static int mode_saverestore(void) {
    must_start();
    failstop_thread *t = must_register("main");
    void (*old)(int) = signal(SIGALRM, count_handler);
    signal(SIGALRM, old);
    healthy_work(t, 1.5);
    say("DONE");
    return 0;
}

static int mode_sigpending(void) {
    must_start();
    go = 0;
    pthread_t th = spawn_spinner();
    nap_ms(200); /* registered: its timer holds its queue entry */
    struct rlimit r;
    getrlimit(RLIMIT_SIGPENDING, &r);
    r.rlim_cur = 0;
    if (setrlimit(RLIMIT_SIGPENDING, &r) != 0) {
        perror("setrlimit");
        return 6;
    }
    /* Precondition: the queue is used up (a queued signal cannot be sent). */
    union sigval v = {.sival_int = 0};
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (sigqueue(getpid(), SIGRTMIN + 1, v) == 0 || errno != EAGAIN) {
        say("PRECONDITION sigqueue did not fail with EAGAIN");
        return 7;
    }
    say("QUEUE FULL");
    go = 1;
    pthread_join(th, NULL);
    say("DONE");
    return 0;
}

static void *altstack_worker(void *arg) {
    size_t size = (size_t)arg;
    failstop_thread *t = must_register("alt");
    stack_t ss = {.ss_sp = malloc(size), .ss_flags = 0, .ss_size = size};
    if (sigaltstack(&ss, NULL) != 0) {
        perror("sigaltstack");
        exit(6);
    }
    say("ALTSTACK SET");
    if (size >= 8192) {
        failstop_touch(t);
        say("SPINNING");
        double until = mono_now() + 6;
        while (mono_now() < until) {
            sink++;
        }
        say("SPIN END");
    } else {
        healthy_work(t, 1.5);
    }
    failstop_unregister(t);
    return NULL;
}

static int mode_altstack(size_t size) {
    must_start();
    pthread_t th;
    pthread_create(&th, NULL, altstack_worker, (void *)size);
    pthread_join(th, NULL);
    say("DONE");
    return 0;
}

static void *eintr_worker(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    failstop_thread *t = must_register("reader");
    burn_ms(300); /* CPU, so that failstop's ticks come */
    failstop_touch(t);
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(6);
    }
    alarm(1);
    char c;
    double t0 = mono_now();
    ssize_t n = read(p[0], &c, 1);
    int e = errno;
    failstop_touch(t);
    double waited = mono_now() - t0;
    printf("%s\n", n < 0 && e == EINTR ? "EINTR" : "NO EINTR");
    /* Generous, for loaded machines: the alarm is 1 s. */
    if (waited >= 0.9 && waited < 5) {
        printf("WAITED about 1 s\n");
    } else {
        printf("WAITED %.1f s\n", waited);
    }
    fflush(stdout);
    failstop_unregister(t);
    return NULL;
}

static int mode_eintr(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the read must fail with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    must_start();
    /* The process-directed SIGALRM of alarm() must land on the reader. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t th;
    pthread_create(&th, NULL, eintr_worker, NULL);
    pthread_join(th, NULL);
    printf("HANDLED %d\n", (int)handled);
    say("DONE");
    return 0;
}

static int mode_handler(void) {
    must_start();
    failstop_thread *t = must_register("main");
    signal(SIGALRM, count_handler);
    healthy_work(t, 3);
    printf("HANDLED %d\n", (int)handled);
    say("DONE");
    return 0;
}

static void *wait_worker(void *arg) {
    int use_fd = arg != NULL;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int fd = use_fd ? signalfd(-1, &set, SFD_NONBLOCK) : -1;
    failstop_thread *t = must_register("waiter");
    int got = 0, timer = 0;
    double until = mono_now() + 3;
    while (mono_now() < until) {
        burn_ms(20);
        failstop_touch(t);
        if (use_fd) {
            struct signalfd_siginfo si;
            while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
                got++;
                timer += si.ssi_code == SI_TIMER;
            }
        } else {
            struct timespec zero = {0, 0};
            siginfo_t si;
            while (sigtimedwait(&set, &si, &zero) == SIGALRM) {
                got++;
                timer += si.si_code == SI_TIMER;
            }
        }
    }
    printf("TOOK %d SI_TIMER %d\n", got, timer);
    fflush(stdout);
    failstop_unregister(t);
    return NULL;
}

static int mode_wait(int use_fd) {
    must_start();
    pthread_t th;
    pthread_create(&th, NULL, wait_worker, use_fd ? (void *)1 : NULL);
    pthread_join(th, NULL);
    say("DONE");
    return 0;
}

static void *sigwait_thread(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    say("SIGWAITING");
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) == 0) {
            printf("SIGWAIT got %d\n", sig);
            fflush(stdout);
        }
    }
    return NULL;
}

static int mode_sigwait(void) {
    must_start();
    pthread_t th;
    pthread_create(&th, NULL, sigwait_thread, NULL);
    nap_ms(200);
    run_spinner();
    say("DONE");
    return 0;
}

static void resethand_handler(int sig) {
    (void)sig;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    usr1_masked = sigismember(&cur, SIGUSR1);
    handled++;
}

static int mode_resethand(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = resethand_handler;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGALRM, &sa, NULL);
    must_start();
    raise(SIGALRM);
    printf("FIRST handled %d usr1 masked %d\n", (int)handled, (int)usr1_masked);
    fflush(stdout);
    raise(SIGALRM); /* reset to SIG_DFL by the first: ends the process */
    printf("SECOND handled %d\n", (int)handled);
    fflush(stdout);
    return 0;
}

static int mode_fd2(char **argv) {
    const char *path = argv[2];
    if (fcntl(2, F_GETFD) != -1) {
        /* Started again with fd 2 closed, as by a supervisor that closes it. */
        close(2);
        execv("/proc/self/exe", argv);
        return 9;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd != 2) {
        printf("PRECONDITION open got fd %d, not 2\n", fd);
        return 7;
    }
    must_start();
    failstop_thread *t = must_register("slow");
    /* Slow but living: 250 ms of CPU between touches, over the warning
     * threshold, under the budget. */
    for (int i = 0; i < 6; i++) {
        burn_ms(250);
        failstop_touch(t);
        nap_ms(150); /* the reporter writes the warning meanwhile */
    }
    if (write(fd, "DATA\n", 5) != 5) {
        return 8;
    }
    close(fd);
    say("DONE");
    return 0;
}

static void *name_worker(void *arg) {
    (void)arg;
    failstop_thread *t = must_register("evil\nfailstop: blocked: thread \"x\" (tid 1) forged");
    for (int i = 0; i < 3; i++) {
        burn_ms(150);
        failstop_touch(t);
        nap_ms(150);
    }
    say("SPINNING");
    double until = mono_now() + 6;
    while (mono_now() < until) {
        sink++;
    }
    say("SPIN END");
    failstop_unregister(t);
    return NULL;
}

static int mode_name(void) {
    must_start();
    pthread_t th;
    pthread_create(&th, NULL, name_worker, NULL);
    pthread_join(th, NULL);
    say("DONE");
    return 0;
}

static volatile sig_atomic_t stop_calls;
static volatile sig_atomic_t stop_ok;

static void stop_handler(int sig) {
    (void)sig;
    stop_calls++;
    if (failstop_stop() == FAILSTOP_OK) {
        stop_ok++;
    }
}

static pthread_t main_thread;
static volatile int reenter_done;

static volatile int poking;

static void *poke_thread(void *arg) {
    (void)arg;
    poking = 1;
    while (!reenter_done) {
        pthread_kill(main_thread, SIGUSR1);
        struct timespec ts = {0, 300000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int mode_reenter(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    main_thread = pthread_self();
    pthread_t th;
    pthread_create(&th, NULL, poke_thread, NULL);
    /* Start and stop are fast: without waiting for the poker, 200 rounds
       can end before its first signal on a loaded machine. So the rounds
       begin once it pokes, and go on past 200 until the handler ran in at
       least 10 of them (for at most 10 s). */
    while (!poking) {
        nap_ms(1);
    }
    int started = 0;
    int rounds = 0;
    int calls_before = stop_calls;
    double until = mono_now() + 10;
    for (; rounds < 200 || (stop_calls - calls_before < 10 && mono_now() < until); rounds++) {
        if (failstop_start() == FAILSTOP_OK) {
            started++;
        }
        failstop_stop();
    }
    reenter_done = 1;
    pthread_join(th, NULL);
    printf("STARTED %d OF %d HANDLER CALLS %d\n", started, rounds, (int)(stop_calls - calls_before));
    say("DONE");
    return 0;
}

static int mode_nolimit(void) {
    struct rlimit r;
    getrlimit(RLIMIT_SIGPENDING, &r);
    r.rlim_cur = 0;
    setrlimit(RLIMIT_SIGPENDING, &r);
    int rc = failstop_start();
    char buf[1024];
    failstop_last_error(buf, sizeof buf);
    printf("START %d %s\n", rc, rc == FAILSTOP_OK ? "" : buf);
    say("DONE");
    return 0;
}

static void *block_worker(void *arg) {
    (void)arg;
    failstop_thread *t = must_register("blocker");
    burn_ms(50);
    failstop_touch(t);
    int p[2];
    if (pipe(p) != 0) {
        exit(6);
    }
    say("FAULT");
    char c;
    ssize_t n = read(p[0], &c, 1);
    (void)n;
    return NULL;
}

static int mode_smallstack(void) {
    must_start();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) != 0) {
        say("PRECONDITION pthread_attr_setstacksize failed");
        return 7;
    }
    printf("STACK %ld\n", (long)PTHREAD_STACK_MIN);
    fflush(stdout);
    pthread_t th;
    pthread_create(&th, &attr, spinner, NULL);
    pthread_join(th, NULL);
    say("DONE");
    return 0;
}

static int mode_fault(int block) {
    must_start();
    nap_ms(100);
    pthread_t th;
    if (block) {
        pthread_create(&th, NULL, block_worker, NULL);
    } else {
        th = spawn_spinner();
    }
    pthread_join(th, NULL);
    say("DONE");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODE [ARG]\n", argv[0]);
        return 2;
    }
    const char *m = argv[1];
    start_timeout();
    if (!strcmp(m, "dfl")) return mode_dfl();
    if (!strcmp(m, "saverestore")) return mode_saverestore();
    if (!strcmp(m, "sigpending")) return mode_sigpending();
    if (!strcmp(m, "altstack8k")) return mode_altstack(argc > 2 ? (size_t)atol(argv[2]) : 8192);
    if (!strcmp(m, "altstack2k")) return mode_altstack(2048);
    if (!strcmp(m, "eintr")) return mode_eintr();
    if (!strcmp(m, "handler")) return mode_handler();
    if (!strcmp(m, "sigtimedwait")) return mode_wait(0);
    if (!strcmp(m, "signalfd")) return mode_wait(1);
    if (!strcmp(m, "sigwait")) return mode_sigwait();
    if (!strcmp(m, "resethand")) return mode_resethand();
    if (!strcmp(m, "fd2") && argc > 2) return mode_fd2(argv);
    if (!strcmp(m, "name")) return mode_name();
    if (!strcmp(m, "reenter")) return mode_reenter();
    if (!strcmp(m, "nolimit")) return mode_nolimit();
    if (!strcmp(m, "smallstack")) return mode_smallstack();
    if (!strcmp(m, "spin")) return mode_fault(0);
    if (!strcmp(m, "block")) return mode_fault(1);
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
