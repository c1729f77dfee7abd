/*
 * Waits that look blocked and are not, and lockups that hide (tests/adversity.rs).
 * Every thread that matters registers, prints `SCENARIO tid <name> <tid>`
 * and touches before it waits (a thread is judged from its first progress
 * mark on). The program prints `SCENARIO <event>` lines, flushed, at the
 * moments the test times; `SCENARIO fault <ms>` carries CLOCK_MONOTONIC in
 * ms, to compare with the dump's `verdict at CLOCK_MONOTONIC` figure. A
 * scenario that must survive exits 0 after `SCENARIO done`. Modes:
 *
 *   slow-owner   "slow-owner" holds a pthread_mutex_t while it does 250 ms
 *                of CPU work in 5 ms pieces, touching after each;
 *                "lock-waiter" (no scope) waits for it meanwhile; the test
 *                runs it under a CPU quota
 *   idle-owner   the same with the owner at SCHED_IDLE (the test keeps both
 *                cores busy), doing 60 ms of work (at SCHED_IDLE's share
 *                of two busy cores that is already about 20 s)
 *   harmless-owner  the same, but the owner holds the mutex across a 5 s
 *                sleep inside a harmless scope (a long fsync, say) instead
 *                of its work
 *   harmless-deadlock  "worker-1" and "worker-2" take two pthread_mutex_t in
 *                opposite order, each taking its second one inside a
 *                harmless scope
 *   owner-hangs  "lock-owner" takes a mutex, works 0.6 s holding it, then
 *                reads a pipe nobody writes; "lock-waiter-1" and
 *                "lock-waiter-2" wait for the mutex from before the end of
 *                that work
 *   waitpid      "reaper" forks a child that computes for 6 s of CPU time and
 *                waits for it in waitpid
 *   flock        a forked child takes an exclusive flock on a file (path in
 *                argv[2]) and computes for 6 s of CPU time holding it;
 *                "lock-waiter" waits for the lock in flock meanwhile
 *   quota-deadlock  four "spinner-N" threads spin (touching) while "worker-1"
 *                and "worker-2" deadlock on two mutexes, no scope; the test
 *                runs it under a CPU quota
 *   bursts       eight "burst-N" threads do 20 ms bursts of CPU, touch, and
 *                sleep 10 ms, for 10 s; the test runs it under a CPU quota
 *   freeze       three "worker-N" threads work in 5 ms pieces, touching,
 *                until main has seen the process frozen (a gap of more than
 *                4 s in its 50 ms sleeps) and 3 s more have passed
 */
#define _GNU_SOURCE
#include "failstop.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double clock_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

/* One `SCENARIO ...` line, flushed. */
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    fputs("SCENARIO ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
    va_end(ap);
}

static void say_fault(void) { say("fault %.1f", now_ms()); }

/* Registers the calling thread as `name`, prints its tid and touches. */
static failstop_thread *join_watch(const char *name) {
    failstop_thread *t = failstop_register(name);
    if (t == NULL) {
        char msg[256];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "register %s: %s\n", name, msg);
        exit(5);
    }
    say("tid %s %ld", name, (long)syscall(SYS_gettid));
    failstop_touch(t);
    return t;
}

static volatile unsigned long sink;

/* Burns `ms` of the calling thread's CPU time. */
static void burn_cpu(double ms) {
    double until = clock_ms(CLOCK_THREAD_CPUTIME_ID) + ms;
    while (clock_ms(CLOCK_THREAD_CPUTIME_ID) < until) {
        for (int i = 0; i < 1000; i++) {
            sink++;
        }
    }
}

/* `ms` of CPU time in 5 ms pieces, touching after each. */
static void work_cpu(failstop_thread *t, double ms) {
    for (double done = 0; done < ms; done += 5) {
        burn_cpu(5);
        failstop_touch(t);
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void spawn(pthread_t *th, void *(*fn)(void *), long arg) {
    if (pthread_create(th, NULL, fn, (void *)arg) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(4);
    }
}

/* ---- slow-owner, idle-owner ---------------------------------------------- */

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static sem_t owner_holds, waiter_ready;
static int idle_owner, harmless_owner;

static void *slow_owner(void *arg) {
    (void)arg;
    if (idle_owner) {
        struct sched_param p = {0};
        if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &p) != 0) {
            fprintf(stderr, "SCHED_IDLE refused\n");
            exit(6);
        }
    }
    failstop_thread *t = join_watch("slow-owner");
    pthread_mutex_lock(&lock_a);
    sem_post(&owner_holds);
    sem_wait(&waiter_ready);
    failstop_touch(t);
    double cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), wall0 = now_ms();
    if (harmless_owner) {
        failstop_harmless_begin(t);
        sleep_ms(5000); /* a call declared legitimately long */
        failstop_harmless_end(t);
    } else {
        work_cpu(t, idle_owner ? 60 : 250);
    }
    say("owner-worked cpu %.0f ms wall %.0f ms", clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0, now_ms() - wall0);
    pthread_mutex_unlock(&lock_a);
    failstop_unregister(t);
    return NULL;
}

static void *lock_waiter(void *arg) {
    (void)arg;
    failstop_thread *t = join_watch("lock-waiter");
    sem_wait(&owner_holds);
    failstop_touch(t);
    say("waiting");
    sem_post(&waiter_ready);
    double t0 = now_ms();
    pthread_mutex_lock(&lock_a); /* held by slow-owner for its work */
    say("waited %.0f", now_ms() - t0);
    failstop_touch(t);
    pthread_mutex_unlock(&lock_a);
    failstop_unregister(t);
    return NULL;
}

static int run_slow_owner(void) {
    sem_init(&owner_holds, 0, 0);
    sem_init(&waiter_ready, 0, 0);
    pthread_t o, w;
    spawn(&o, slow_owner, 0);
    spawn(&w, lock_waiter, 0);
    pthread_join(o, NULL);
    pthread_join(w, NULL);
    say("done");
    return 0;
}

/* ---- harmless-deadlock, quota-deadlock ----------------------------------- */

static pthread_barrier_t both_hold;
static int harmless;

static void *deadlocker(void *arg) {
    long i = (long)arg;
    char name[32];
    snprintf(name, sizeof name, "worker-%ld", i + 1);
    failstop_thread *t = join_watch(name);
    pthread_mutex_t *first = i == 0 ? &lock_a : &lock_b, *second = i == 0 ? &lock_b : &lock_a;
    pthread_mutex_lock(first);
    pthread_barrier_wait(&both_hold);
    failstop_touch(t);
    if (i == 0) {
        say_fault();
    }
    if (harmless) {
        failstop_harmless_begin(t);
    }
    pthread_mutex_lock(second); /* held by the other worker: never returns */
    if (harmless) {
        failstop_harmless_end(t);
    }
    return NULL;
}

static void *spinner(void *arg) {
    char name[32];
    snprintf(name, sizeof name, "spinner-%ld", (long)arg);
    failstop_thread *t = join_watch(name);
    for (;;) {
        for (int i = 0; i < 1000; i++) {
            sink++;
        }
        failstop_touch(t);
    }
    return NULL;
}

static int run_deadlock(int spinners) {
    pthread_barrier_init(&both_hold, NULL, 2);
    pthread_t th[2], sp[4];
    for (long i = 0; i < spinners; i++) {
        spawn(&sp[i], spinner, i + 1);
    }
    for (long i = 0; i < 2; i++) {
        spawn(&th[i], deadlocker, i);
    }
    pthread_join(th[0], NULL);
    return 0;
}

/* ---- owner-hangs ---------------------------------------------------------- */

static int never_written[2];
static atomic_int waiters_in;

static void *hanging_owner(void *arg) {
    (void)arg;
    failstop_thread *t = join_watch("lock-owner");
    pthread_mutex_lock(&lock_a);
    sem_post(&owner_holds);
    sem_post(&owner_holds);
    /* 0.6 s of work holding the lock, and on until both waiters are at it. */
    double until = now_ms() + 600;
    while (now_ms() < until || atomic_load(&waiters_in) < 2) {
        burn_cpu(5);
        failstop_touch(t);
    }
    say_fault();
    char c;
    if (read(never_written[0], &c, 1) == 1) { /* never returns */
        pthread_mutex_unlock(&lock_a);
    }
    return NULL;
}

static void *waiter_of_hanging(void *arg) {
    char name[32];
    snprintf(name, sizeof name, "lock-waiter-%ld", (long)arg);
    failstop_thread *t = join_watch(name);
    sem_wait(&owner_holds);
    failstop_touch(t);
    say("waiting %s %.1f", name, now_ms());
    atomic_fetch_add(&waiters_in, 1);
    pthread_mutex_lock(&lock_a); /* held by lock-owner: never returns */
    return NULL;
}

static int run_owner_hangs(void) {
    if (pipe(never_written) != 0) {
        return 4;
    }
    sem_init(&owner_holds, 0, 0);
    pthread_t o, w1, w2;
    spawn(&o, hanging_owner, 0);
    spawn(&w1, waiter_of_hanging, 1);
    spawn(&w2, waiter_of_hanging, 2);
    pthread_join(o, NULL);
    return 0;
}

/* ---- waitpid -------------------------------------------------------------- */

/* In a forked child: 6 s of its CPU time, async-signal-safe calls only,
 * then _exit(0). */
static void compute_6s_then_exit(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    long long until = ts.tv_sec * 1000000000LL + ts.tv_nsec + 6000000000LL;
    for (;;) {
        for (int i = 0; i < 1000; i++) {
            sink++;
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        if (ts.tv_sec * 1000000000LL + ts.tv_nsec >= until) {
            _exit(0);
        }
    }
}

static void *reaper(void *arg) {
    (void)arg;
    failstop_thread *t = join_watch("reaper");
    pid_t pid = fork();
    if (pid < 0) {
        exit(4);
    }
    if (pid == 0) {
        compute_6s_then_exit();
    }
    failstop_touch(t);
    say("waiting %ld", (long)pid);
    double t0 = now_ms();
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        exit(4);
    }
    say("reaped exit %d after %.0f ms", WIFEXITED(status) ? WEXITSTATUS(status) : -1, now_ms() - t0);
    failstop_unregister(t);
    return NULL;
}

static int run_waitpid(void) {
    pthread_t r;
    spawn(&r, reaper, 0);
    pthread_join(r, NULL);
    say("done");
    return 0;
}

/* ---- flock ---------------------------------------------------------------- */

static const char *flock_path;

static void *flock_waiter(void *arg) {
    pid_t child = (pid_t)(long)arg;
    failstop_thread *t = join_watch("lock-waiter");
    int fd = open(flock_path, O_RDWR);
    if (fd < 0) {
        exit(4);
    }
    failstop_touch(t);
    say("waiting %ld", (long)child);
    double t0 = now_ms();
    if (flock(fd, LOCK_EX) != 0) { /* held by the computing child */
        exit(4);
    }
    say("waited %.0f", now_ms() - t0);
    failstop_touch(t);
    close(fd);
    failstop_unregister(t);
    return NULL;
}

static int run_flock(const char *path) {
    flock_path = path;
    int ready[2];
    if (pipe(ready) != 0) {
        exit(4);
    }
    pid_t pid = fork();
    if (pid < 0) {
        exit(4);
    }
    if (pid == 0) {
        int fd = open(path, O_RDWR | O_CREAT, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(ready[1], "x", 1) != 1) {
            _exit(3);
        }
        compute_6s_then_exit();
    }
    char c;
    if (read(ready[0], &c, 1) != 1) {
        exit(4);
    }
    pthread_t w;
    spawn(&w, flock_waiter, pid);
    pthread_join(w, NULL);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        exit(4);
    }
    say("done");
    return 0;
}

/* ---- bursts --------------------------------------------------------------- */

#define BURSTERS 8
static double bursts_until;

static void *burster(void *arg) {
    char name[32];
    snprintf(name, sizeof name, "burst-%ld", (long)arg);
    failstop_thread *t = join_watch(name);
    long n = 0;
    while (now_ms() < bursts_until) {
        burn_cpu(20);
        failstop_touch(t);
        n++;
        sleep_ms(10);
    }
    say("bursts %s %ld", name, n);
    failstop_unregister(t);
    return NULL;
}

static int run_bursts(void) {
    bursts_until = now_ms() + 10000;
    pthread_t th[BURSTERS];
    for (long i = 0; i < BURSTERS; i++) {
        spawn(&th[i], burster, i + 1);
    }
    say("working");
    for (int i = 0; i < BURSTERS; i++) {
        pthread_join(th[i], NULL);
    }
    say("done");
    return 0;
}

/* ---- freeze --------------------------------------------------------------- */

#define FREEZE_WORKERS 3
static atomic_int stop_work;

static void *freeze_worker(void *arg) {
    char name[32];
    snprintf(name, sizeof name, "worker-%ld", (long)arg);
    failstop_thread *t = join_watch(name);
    long n = 0;
    while (!atomic_load(&stop_work)) {
        burn_cpu(5);
        failstop_touch(t);
        n++;
    }
    say("pieces %s %ld", name, n);
    failstop_unregister(t);
    return NULL;
}

static int run_freeze(void) {
    pthread_t th[FREEZE_WORKERS];
    for (long i = 0; i < FREEZE_WORKERS; i++) {
        spawn(&th[i], freeze_worker, i + 1);
    }
    say("working");
    double start = now_ms(), last = start, thawed = 0;
    for (;;) {
        sleep_ms(50);
        double now = now_ms();
        if (thawed == 0 && now - last > 4000) {
            thawed = now;
            say("thawed after a gap of %.0f ms", now - last);
        }
        last = now;
        if (thawed != 0 && now - thawed > 3000) {
            break;
        }
        if (now - start > 60000) {
            say("never frozen");
            return 3;
        }
    }
    atomic_store(&stop_work, 1);
    for (int i = 0; i < FREEZE_WORKERS; i++) {
        pthread_join(th[i], NULL);
    }
    say("done");
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (failstop_start() != FAILSTOP_OK) {
        char msg[256];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "start: %s\n", msg);
        return 2;
    }
    if (strcmp(mode, "slow-owner") == 0) {
        return run_slow_owner();
    }
    if (strcmp(mode, "idle-owner") == 0) {
        idle_owner = 1;
        return run_slow_owner();
    }
    if (strcmp(mode, "harmless-owner") == 0) {
        harmless_owner = 1;
        return run_slow_owner();
    }
    if (strcmp(mode, "harmless-deadlock") == 0) {
        harmless = 1;
        return run_deadlock(0);
    }
    if (strcmp(mode, "quota-deadlock") == 0) {
        return run_deadlock(4);
    }
    if (strcmp(mode, "owner-hangs") == 0) {
        return run_owner_hangs();
    }
    if (strcmp(mode, "waitpid") == 0) {
        return run_waitpid();
    }
    if (strcmp(mode, "flock") == 0 && argc > 2) {
        return run_flock(argv[2]);
    }
    if (strcmp(mode, "bursts") == 0) {
        return run_bursts();
    }
    if (strcmp(mode, "freeze") == 0) {
        return run_freeze();
    }
    fprintf(stderr, "usage: adversity slow-owner|idle-owner|harmless-owner|harmless-deadlock|owner-hangs|waitpid|flock PATH|"
                    "quota-deadlock|bursts|freeze\n");
    return 2;
}
