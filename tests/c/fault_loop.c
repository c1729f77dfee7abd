/*
 * An event loop that goes wrong after its first wait, for the preload's
 * tests. Built with -O2 -fomit-frame-pointer, as distributions
 * build servers. It makes one wait (poll, 10 ms: the preload registers the
 * thread under its comm, "fault_loop"), then, by mode:
 *
 *   text     spins with the frame-pointer register pointing at text on its
 *            stack, as code without frame pointers may leave it: a walk that
 *            trusts the register reads the words of the text as a frame
 *            record (return address "ext, not" and so on)
 *   rename   renames itself "mc-worker" (as memcached names its workers
 *            after their first wait), then spins
 *
 * Prints "SCENARIO spin-start" on stdout (flushed) just before it spins.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

static void say_spin_start(void) {
    printf("SCENARIO spin-start\n");
    fflush(stdout);
}

static __attribute__((noinline)) void spin(void) {
    for (volatile unsigned long i = 0;; i++) {
    }
}

static __attribute__((noinline)) void spin_over_text(void) {
    char text[64];
    strcpy(text, "spin the text, not a frame record: words, not addresses");
    say_spin_start();
#if defined(__x86_64__)
    __asm__ volatile("mov %0, %%rbp\n1: jmp 1b" : : "r"(text) : "memory");
#elif defined(__aarch64__)
    __asm__ volatile("mov x29, %0\n1: b 1b" : : "r"(text) : "memory");
#else
#error "x86_64 or aarch64"
#endif
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "text") != 0 && strcmp(argv[1], "rename") != 0)) {
        fprintf(stderr, "usage: fault_loop text|rename\n");
        return 2;
    }
    poll(NULL, 0, 10);
    if (strcmp(argv[1], "text") == 0) {
        spin_over_text();
    } else {
        prctl(PR_SET_NAME, "mc-worker", 0, 0, 0);
        say_spin_start();
        spin();
    }
    return 1;
}
