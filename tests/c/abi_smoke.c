/* The C ABI from C: tests/c_abi.rs compiles this against libfailstop.a and
 * runs it as a child process.
 *
 *   abi_smoke smoke   the API and its misuse cases; exits 0, prints "SMOKE OK"
 *   abi_smoke spin    a registered thread "c-spinner" spins without progress;
 *                     run with FAILSTOP_CPU_BUDGET_MS set, it must be aborted
 */
#define _GNU_SOURCE
#include "failstop.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static void last_error(char *buf, size_t len) {
    size_t n = failstop_last_error(buf, len);
    CHECK(n > 0);
    CHECK(strlen(buf) == (n < len ? n : len - 1));
}

static void hook(void) {}

static void *other_thread(void *arg) {
    failstop_thread *t = arg;
    char buf[512];
    /* Unregistering another thread's live handle is refused, not done. */
    failstop_unregister(t);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "another thread") != NULL);
    /* This thread can register on its own. */
    failstop_thread *mine = failstop_register("c-other");
    CHECK(mine != NULL);
    failstop_touch(mine);
    failstop_unregister(mine);
    return NULL;
}

/* Registers, then exits without unregistering: returns its handle. */
static void *leaves_without_unregistering(void *arg) {
    (void)arg;
    failstop_thread *t = failstop_register("c-leaver");
    CHECK(t != NULL);
    failstop_touch(t);
    return t;
}

static int smoke(void) {
    char buf[512];

    /* Before start. */
    CHECK(failstop_register("early") == NULL);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "no watchdog is running") != NULL);
    CHECK(failstop_stop() == FAILSTOP_E_NOT_RUNNING);
    /* The codes are an enum of the header: a switch names them. */
    switch ((failstop_result)failstop_stop()) {
    case FAILSTOP_E_NOT_RUNNING:
        break;
    default:
        CHECK(!"failstop_stop without a watchdog returns FAILSTOP_E_NOT_RUNNING");
    }
    CHECK(failstop_start_with(NULL) == FAILSTOP_E_NULL);

    /* Bad configs. */
    failstop_config cfg;
    failstop_config_init(&cfg);
    CHECK(cfg.struct_size == sizeof cfg);
    cfg.action = 42;
    CHECK(failstop_start_with(&cfg) == FAILSTOP_E_INVALID_CONFIG);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "failstop_config.action=42") != NULL);
    failstop_config_init(&cfg);
    cfg.signal = 9; /* SIGKILL */
    CHECK(failstop_start_with(&cfg) == FAILSTOP_E_INVALID_CONFIG);
    failstop_config_init(&cfg);
    cfg.warn_after_ms = 5000; /* not below the budget */
    CHECK(failstop_start_with(&cfg) == FAILSTOP_E_INVALID_CONFIG);
    failstop_config_init(&cfg);
    cfg.struct_size = 0;
    CHECK(failstop_start_with(&cfg) == FAILSTOP_E_INVALID_CONFIG);

    /* Truncation of the last error. */
    char small[8];
    size_t full = failstop_last_error(small, sizeof small);
    CHECK(full > sizeof small);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(failstop_last_error(NULL, 0) == full);

    /* Start, with a hook set before. */
    CHECK(failstop_set_pre_abort_hook(hook) == FAILSTOP_OK);
    failstop_config_init(&cfg);
    cfg.cpu_budget_ms = 2000;
    cfg.action = FAILSTOP_ACTION_ABORT;
    CHECK(failstop_start_with(&cfg) == FAILSTOP_OK);
    CHECK(failstop_start() == FAILSTOP_E_ALREADY_RUNNING);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "already running") != NULL);
    CHECK(failstop_start_with(&cfg) == FAILSTOP_E_ALREADY_RUNNING);
    CHECK(failstop_set_pre_abort_hook(NULL) == FAILSTOP_E_ALREADY_RUNNING);

    /* Register and use. */
    CHECK(failstop_register(NULL) == NULL);
    failstop_thread *t = failstop_register("c-main");
    CHECK(t != NULL);
    CHECK(failstop_register("c-main-again") == NULL);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "already registered") != NULL);
    for (int i = 0; i < 1000; i++) {
        failstop_touch(t);
        failstop_tick(t);
    }
    failstop_idle_begin(t);
    failstop_idle_end(t);
    failstop_harmless_begin(t);
    failstop_harmless_end(t);
    /* Unbalanced ends are no-ops. */
    failstop_idle_end(t);
    failstop_harmless_end(t);
    CHECK(failstop_healthy() == 1);

    /* NULL handles are no-ops. */
    failstop_touch(NULL);
    failstop_tick(NULL);
    failstop_idle_begin(NULL);
    failstop_idle_end(NULL);
    failstop_harmless_begin(NULL);
    failstop_harmless_end(NULL);
    failstop_unregister(NULL);
    failstop_config_init(NULL);

    /* Another thread cannot unregister this one. */
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_thread, t) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    failstop_touch(t); /* still valid */

    failstop_unregister(t);
    /* Unregistering twice, and any use of the stale handle, are no-ops. */
    failstop_thread *stale = t;
    failstop_unregister(stale);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "already unregistered") != NULL);
    failstop_touch(stale);
    failstop_tick(stale);
    failstop_idle_begin(stale);
    failstop_idle_end(stale);
    failstop_harmless_begin(stale);
    failstop_harmless_end(stale);
    /* After unregister the thread can register again (maybe in the same
     * slot: the stale handle does not name the new registration). */
    t = failstop_register("c-main");
    CHECK(t != NULL);
    CHECK(t != stale);
    failstop_unregister(stale);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "already unregistered") != NULL);
    failstop_touch(t); /* the new handle still works */

    /* A value that is not a handle is ignored. */
    failstop_thread *bogus = (failstop_thread *)(void *)buf;
    failstop_touch(bogus);
    failstop_tick(bogus);
    failstop_idle_begin(bogus);
    failstop_idle_end(bogus);
    failstop_harmless_begin(bogus);
    failstop_harmless_end(bogus);
    failstop_unregister(bogus);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "not a handle") != NULL);

    /* The handle of a thread that exited without unregistering is stale. */
    void *left = NULL;
    CHECK(pthread_create(&th, NULL, leaves_without_unregistering, NULL) == 0);
    CHECK(pthread_join(th, &left) == 0);
    CHECK(left != NULL);
    failstop_touch(left);
    failstop_unregister(left);
    last_error(buf, sizeof buf);
    CHECK(strstr(buf, "its thread exited") != NULL);

    CHECK(failstop_stop() == FAILSTOP_OK);
    CHECK(failstop_stop() == FAILSTOP_E_NOT_RUNNING);
    failstop_touch(t); /* handles outlive the watchdog */
    failstop_unregister(t);
    CHECK(failstop_register("late") == NULL);
    last_error(buf, sizeof buf);
    CHECK(failstop_healthy() == 1);
    CHECK(failstop_set_pre_abort_hook(NULL) == FAILSTOP_OK);

    if (failures == 0) {
        printf("SMOKE OK\n");
        return 0;
    }
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
}

static volatile unsigned long sink;

static void *spinner(void *arg) {
    (void)arg;
    failstop_thread *t = failstop_register("c-spinner");
    if (t == NULL) {
        char buf[512];
        failstop_last_error(buf, sizeof buf);
        fprintf(stderr, "register failed: %s\n", buf);
        exit(3);
    }
    failstop_touch(t);
    printf("SPINNING\n");
    fflush(stdout);
    for (;;) {
        sink++;
    }
    return NULL;
}

static int spin(void) {
    int rc = failstop_start();
    if (rc != FAILSTOP_OK) {
        char buf[512];
        failstop_last_error(buf, sizeof buf);
        fprintf(stderr, "start failed (%d): %s\n", rc, buf);
        return 2;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, spinner, NULL) != 0) {
        return 2;
    }
    pthread_join(th, NULL);
    return 4; /* not reached: the watchdog ends the process */
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "smoke") == 0) {
        return smoke();
    }
    if (argc == 2 && strcmp(argv[1], "spin") == 0) {
        return spin();
    }
    fprintf(stderr, "usage: %s smoke|spin\n", argv[0]);
    return 2;
}
