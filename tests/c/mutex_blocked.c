/* Full stacks through glibc: tests/unwind.rs compiles this with
 * -fno-omit-frame-pointer (for this file only: glibc is as shipped, built
 * without frame pointers) against libfailstop.a and runs it as a child.
 *
 * The main thread takes a mutex and keeps it. A registered thread
 * "c-locker" then blocks in pthread_mutex_lock, called from
 * blocked_in_lock_here(); an unregistered thread blocks the same way from
 * also_blocked_here(). The blocked verdict's dump must name both callers:
 * a frame-pointer walk loses them (the return address into them sits in
 * glibc's frame, which links no frame record).
 */
#define _GNU_SOURCE
#include "failstop.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static volatile int sink;

__attribute__((noinline)) static void blocked_in_lock_here(void) {
    pthread_mutex_lock(&held);
    sink++; /* not reached; also keeps the call from being a tail call */
    pthread_mutex_unlock(&held);
}

__attribute__((noinline)) static void also_blocked_here(void) {
    pthread_mutex_lock(&held);
    sink++;
    pthread_mutex_unlock(&held);
}

static void *locker(void *arg) {
    (void)arg;
    failstop_thread *t = failstop_register("c-locker");
    if (t == NULL) {
        char buf[512];
        failstop_last_error(buf, sizeof buf);
        fprintf(stderr, "register failed: %s\n", buf);
        exit(3);
    }
    failstop_touch(t);
    printf("LOCKING\n");
    fflush(stdout);
    blocked_in_lock_here();
    return NULL;
}

static void *other(void *arg) {
    (void)arg;
    also_blocked_here();
    return NULL;
}

int main(void) {
    int rc = failstop_start();
    if (rc != FAILSTOP_OK) {
        char buf[512];
        failstop_last_error(buf, sizeof buf);
        fprintf(stderr, "start failed (%d): %s\n", rc, buf);
        return 2;
    }
    pthread_mutex_lock(&held);
    pthread_t a, b;
    if (pthread_create(&b, NULL, other, NULL) != 0 || pthread_create(&a, NULL, locker, NULL) != 0) {
        return 2;
    }
    pthread_join(a, NULL);
    return 4; /* not reached: the blocked verdict ends the process */
}
