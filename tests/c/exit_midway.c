/*
 * The application ends while the dump is being written.
 * Two registered workers deadlock on two mutexes taken in opposite order;
 * meanwhile another thread of the application sleeps and, when the sleep
 * is cut short (the dump's capture request interrupts every sleeping
 * thread), ends the process its own way. Modes:
 *
 *   return  main sleeps; on EINTR it returns 5 from main
 *   exit    a plain thread sleeps; on EINTR it calls exit(6)
 *   stop    main sleeps; on EINTR it calls failstop_stop(), then returns 7
 *
 * Each line "SCENARIO interrupted <mode>" says the sleep was cut short. A
 * sleep that ends without interruption (argv[2] seconds, 30 by default)
 * exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "failstop.h"

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold;
static long sleep_seconds = 30;

static void *worker(void *arg) {
    int first = arg != NULL;
    failstop_thread *t = failstop_register(first ? "worker-a" : "worker-b");
    if (t == NULL) {
        return NULL;
    }
    failstop_touch(t);
    printf("SCENARIO tid %s %ld\n", first ? "worker-a" : "worker-b", (long)syscall(SYS_gettid));
    fflush(stdout);
    pthread_mutex_lock(first ? &a : &b);
    pthread_barrier_wait(&both_hold);
    pthread_mutex_lock(first ? &b : &a); /* never returns */
    return NULL;
}

/* Sleeps sleep_seconds; returns 1 when the sleep was cut short by a signal. */
static int sleep_interrupted(const char *mode) {
    struct timespec ts = {sleep_seconds, 0};
    if (nanosleep(&ts, NULL) == 0) {
        return 0;
    }
    printf("SCENARIO interrupted %s (errno %d)\n", mode, errno);
    fflush(stdout);
    return 1;
}

static void *exiter(void *arg) {
    (void)arg;
    if (sleep_interrupted("exit")) {
        exit(6);
    }
    exit(0);
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "return") != 0 && strcmp(mode, "exit") != 0 && strcmp(mode, "stop") != 0) {
        fprintf(stderr, "usage: exit_midway return|exit|stop [seconds]\n");
        return 2;
    }
    if (argc > 2) {
        sleep_seconds = atol(argv[2]);
    }
    if (failstop_start() != FAILSTOP_OK) {
        char msg[256];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "start: %s\n", msg);
        return 2;
    }
    pthread_barrier_init(&both_hold, NULL, 2);
    pthread_t wa, wb, ex;
    if (pthread_create(&wa, NULL, worker, (void *)1) != 0 || pthread_create(&wb, NULL, worker, NULL) != 0) {
        return 4;
    }
    printf("SCENARIO deadlocking\n");
    fflush(stdout);
    if (strcmp(mode, "exit") == 0) {
        if (pthread_create(&ex, NULL, exiter, NULL) != 0) {
            return 4;
        }
        pthread_join(ex, NULL);
        return 0;
    }
    if (!sleep_interrupted(mode)) {
        return 0;
    }
    if (strcmp(mode, "stop") == 0) {
        failstop_stop();
        return 7;
    }
    return 5;
}
