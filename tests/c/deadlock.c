/*
 * Deadlocks for the dump's wait-for graph. Every thread
 * registers, prints its tid, takes its first lock, waits until all hold
 * theirs, then takes the next thread's lock: a cycle. Modes:
 *
 *   mutex   two threads, two default pthread_mutex_t, opposite order
 *   pi      PTHREAD_PRIO_INHERIT mutexes (FUTEX_LOCK_PI): worker-1 takes one
 *           and blocks reading a pipe nobody writes, worker-2 waits for it
 *           (no cycle: the kernel refuses a PI cycle with EDEADLK, and
 *           glibc then parks the thread on a word of its own stack)
 *   three   three threads, three mutexes, each takes the next one's
 *   rwlock  worker-1 holds a pthread_rwlock_t for writing and takes a
 *           mutex that worker-2 holds, which waits to read the rwlock;
 *           worker-3 waits to write it
 *
 * main sleeps in pthread_join; a missed verdict shows as the child being
 * killed at the test's timeout.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int pi_mode, rw_mode;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static int never_written[2];

#include "failstop.h"

#define MAX 3
static pthread_mutex_t locks[MAX];
static pthread_barrier_t all_hold;
static int count;

static void *worker(void *arg) {
    long i = (long)arg;
    char name[32];
    snprintf(name, sizeof name, "worker-%ld", i + 1);
    failstop_thread *t = failstop_register(name);
    if (t == NULL) {
        return NULL;
    }
    failstop_touch(t);
    printf("SCENARIO tid %s %ld\n", name, (long)syscall(SYS_gettid));
    fflush(stdout);
    if (rw_mode) {
        if (i == 0) {
            pthread_rwlock_wrlock(&rw);
        } else if (i == 1) {
            pthread_mutex_lock(&locks[0]);
        }
        pthread_barrier_wait(&all_hold);
        failstop_set_context(t, "taking the next worker's lock");
        if (i == 0) {
            pthread_mutex_lock(&locks[0]); /* held by worker-2 */
        } else if (i == 1) {
            pthread_rwlock_rdlock(&rw); /* held by worker-1 for writing */
        } else {
            usleep(100 * 1000);
            pthread_rwlock_wrlock(&rw);
        }
        return NULL;
    }
    pthread_mutex_lock(&locks[i]);
    pthread_barrier_wait(&all_hold);
    if (pi_mode && i == 0) {
        char c;
        return read(never_written[0], &c, 1) == 1 ? NULL : NULL; /* never returns */
    }
    if (pi_mode) {
        pthread_mutex_lock(&locks[0]); /* held by worker-1 */
    }
    failstop_set_context(t, "taking the next worker's lock");
    pthread_mutex_lock(&locks[(i + 1) % count]); /* never returns */
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    int pi = pi_mode = strcmp(mode, "pi") == 0;
    if (pipe(never_written) != 0) {
        return 4;
    }
    if (strcmp(mode, "mutex") == 0 || pi) {
        count = 2;
    } else if (strcmp(mode, "three") == 0) {
        count = 3;
    } else if (strcmp(mode, "rwlock") == 0) {
        count = 3;
        rw_mode = 1;
    } else {
        fprintf(stderr, "usage: deadlock mutex|pi|three|rwlock\n");
        return 2;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (pi && pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT) != 0) {
        fprintf(stderr, "PTHREAD_PRIO_INHERIT not supported\n");
        return 3;
    }
    for (int i = 0; i < count; i++) {
        pthread_mutex_init(&locks[i], &attr);
    }
    if (failstop_start() != FAILSTOP_OK) {
        char msg[256];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "start: %s\n", msg);
        return 2;
    }
    pthread_barrier_init(&all_hold, NULL, count);
    pthread_t th[MAX];
    for (long i = 0; i < count; i++) {
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
            return 4;
        }
    }
    printf("SCENARIO deadlocking\n");
    fflush(stdout);
    pthread_join(th[0], NULL);
    return 0;
}
