/*
 * Registered threads that end without their thread-exit path: a kernel
 * bug after which the serving thread is gone while the heartbeat thread
 * goes on. Modes:
 *
 *   main    the main thread registers, starts a heartbeat thread, then ends
 *           by syscall(SYS_exit): it stays a zombie while the heartbeat runs
 *   worker  a registered worker ends by syscall(SYS_exit); main beats
 *   return  a registered worker returns without failstop_unregister (the
 *           thread-exit path releases it: no verdict); main beats 3 s, exit 0
 *
 * The heartbeat prints "BEAT <healthy>" every 100 ms for up to 10 s, then
 * the program exits 0 (so a missed verdict shows as exit 0).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "failstop.h"

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void beat(int rounds) {
    for (int i = 0; i < rounds; i++) {
        printf("BEAT %d\n", failstop_healthy());
        fflush(stdout);
        nap_ms(100);
    }
}

static void *heartbeat(void *arg) {
    (void)arg;
    beat(100);
    _exit(0);
    return NULL;
}

static void *worker_exits(void *arg) {
    (void)arg;
    failstop_thread *t = failstop_register("worker");
    if (t == NULL) {
        return NULL;
    }
    failstop_touch(t);
    printf("SCENARIO tid worker %ld\nSCENARIO vanishing\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    syscall(SYS_exit, 0);
    return NULL;
}

static void *worker_returns(void *arg) {
    (void)arg;
    failstop_thread *t = failstop_register("worker");
    if (t == NULL) {
        return NULL;
    }
    failstop_touch(t);
    printf("SCENARIO tid worker %ld\nSCENARIO returning\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    return NULL; /* no failstop_unregister: the thread-exit path releases it */
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (failstop_start() != FAILSTOP_OK) {
        char msg[256];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "start: %s\n", msg);
        return 2;
    }
    pthread_t th;
    if (strcmp(mode, "main") == 0) {
        failstop_thread *t = failstop_register("main-loop");
        if (t == NULL) {
            return 3;
        }
        failstop_touch(t);
        if (pthread_create(&th, NULL, heartbeat, NULL) != 0) {
            return 4;
        }
        nap_ms(200);
        printf("SCENARIO tid main-loop %ld\nSCENARIO vanishing\n", (long)syscall(SYS_gettid));
        fflush(stdout);
        syscall(SYS_exit, 0);
        return 5;
    }
    if (strcmp(mode, "worker") == 0 || strcmp(mode, "return") == 0) {
        if (pthread_create(&th, NULL, strcmp(mode, "worker") == 0 ? worker_exits : worker_returns, NULL) != 0) {
            return 4;
        }
        beat(strcmp(mode, "worker") == 0 ? 100 : 30);
        return 0;
    }
    fprintf(stderr, "usage: vanish main|worker|return\n");
    return 2;
}
