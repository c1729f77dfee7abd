/* failstop loaded with dlopen() and unloaded with dlclose(): tests/c_dlopen.rs
 * builds this WITHOUT linking failstop (every function comes from dlsym) and
 * runs it as a child. libfailstop.so is linked with -z nodelete, so dlclose()
 * must leave it mapped: its signal handler, its monitor thread and its
 * thread-local destructors keep running code inside it.
 *
 *   dlopen_close LIB spin   dlopen LIB, start, register thread "c-dl-spinner",
 *                           dlclose, then make that thread spin without
 *                           progress: the watchdog must still abort the
 *                           process with its dump (run with
 *                           FAILSTOP_CPU_BUDGET_MS set)
 *   dlopen_close LIB clean  start, register two threads, unregister, stop,
 *                           dlclose; then one thread exits (its failstop
 *                           thread-locals are destroyed), SIGALRM reaches the
 *                           program's own handler again, and the process
 *                           exits 0 with "CLEAN"
 */
#define _GNU_SOURCE
#include "failstop.h" /* types and constants only: nothing is linked */

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The part of the API this program uses, resolved with dlsym. */
static struct {
    int (*start)(void);
    int (*stop)(void);
    failstop_thread *(*register_thread)(const char *name);
    void (*unregister)(failstop_thread *t);
    void (*touch)(failstop_thread *t);
    size_t (*last_error)(char *buf, size_t len);
} api;

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (p == NULL) {
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
        exit(3);
    }
    return p;
}

static void *load(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(3);
    }
    api.start = (int (*)(void))sym(lib, "failstop_start");
    api.stop = (int (*)(void))sym(lib, "failstop_stop");
    api.register_thread = (failstop_thread * (*)(const char *)) sym(lib, "failstop_register");
    api.unregister = (void (*)(failstop_thread *))sym(lib, "failstop_unregister");
    api.touch = (void (*)(failstop_thread *))sym(lib, "failstop_touch");
    api.last_error = (size_t(*)(char *, size_t))sym(lib, "failstop_last_error");
    return lib;
}

static void fail(const char *what) {
    char buf[512];
    api.last_error(buf, sizeof buf);
    fprintf(stderr, "%s failed: %s\n", what, buf);
    exit(3);
}

static failstop_thread *register_thread(const char *name) {
    failstop_thread *t = api.register_thread(name);
    if (t == NULL) {
        fail("failstop_register");
    }
    return t;
}

/* dlopen, start the watchdog, start a thread running `body`. */
static void *load_and_start(const char *path, void *(*body)(void *), pthread_t *th) {
    void *lib = load(path);
    if (api.start() != FAILSTOP_OK) {
        fail("failstop_start");
    }
    if (pthread_create(th, NULL, body, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(3);
    }
    return lib;
}

/* dlclose, then report whether the library is still mapped (RTLD_NOLOAD
 * finds only loaded objects). */
static void unload(void *lib, const char *path) {
    if (dlclose(lib) != 0) {
        fprintf(stderr, "dlclose: %s\n", dlerror());
        exit(3);
    }
    void *again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    printf("%s\n", again != NULL ? "STILL MAPPED" : "UNMAPPED");
    if (again != NULL) {
        dlclose(again);
    }
    printf("DLCLOSED\n");
    fflush(stdout);
}

/* A one-way flag between two threads. */
struct flag {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int set;
};
#define FLAG_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

static void flag_set(struct flag *f) {
    pthread_mutex_lock(&f->mu);
    f->set = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void flag_wait(struct flag *f) {
    pthread_mutex_lock(&f->mu);
    while (!f->set) {
        pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
}

static struct flag registered = FLAG_INIT;
static struct flag go = FLAG_INIT;
static volatile unsigned long sink;

/* spin: registers, touches, waits for the dlclose, spins without progress. */
static void *spinner(void *arg) {
    (void)arg;
    failstop_thread *t = register_thread("c-dl-spinner");
    api.touch(t);
    flag_set(&registered);
    flag_wait(&go);
    printf("SPINNING\n");
    fflush(stdout);
    for (;;) {
        sink++;
    }
    return NULL;
}

static int spin(const char *path) {
    pthread_t th;
    void *lib = load_and_start(path, spinner, &th);
    flag_wait(&registered);
    unload(lib, path);
    flag_set(&go);
    pthread_join(th, NULL);
    return 4; /* not reached: the watchdog ends the process */
}

/* clean: registers and unregisters, then waits for the dlclose before it
 * exits, so that its thread-locals are destroyed after it. */
static void *short_lived(void *arg) {
    (void)arg;
    failstop_thread *t = register_thread("c-dl-short");
    api.touch(t);
    api.unregister(t);
    flag_set(&registered);
    flag_wait(&go);
    return NULL;
}

static volatile sig_atomic_t own_alarms;

static void own_alarm(int sig) {
    (void)sig;
    own_alarms++;
}

static int clean(const char *path) {
    /* The program's own SIGALRM handler, installed before failstop's. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_alarm;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0) {
        return 3;
    }
    pthread_t th;
    void *lib = load_and_start(path, short_lived, &th);
    failstop_thread *t = register_thread("c-dl-main");
    api.touch(t);
    api.unregister(t);
    flag_wait(&registered);
    if (api.stop() != FAILSTOP_OK) {
        fail("failstop_stop");
    }
    unload(lib, path);
    flag_set(&go);
    pthread_join(th, NULL);
    raise(SIGALRM);
    if (own_alarms != 1) {
        fprintf(stderr, "own SIGALRM handler ran %d times, expected 1\n", (int)own_alarms);
        return 5;
    }
    printf("CLEAN\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[2], "spin") == 0) {
        return spin(argv[1]);
    }
    if (argc == 3 && strcmp(argv[2], "clean") == 0) {
        return clean(argv[1]);
    }
    fprintf(stderr, "usage: %s LIBFAILSTOP_SO spin|clean\n", argv[0]);
    return 2;
}
