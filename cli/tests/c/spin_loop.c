/* The program the `failstop` command's tests run: an event loop that
 * waits in poll() a few times, then spins in spin_forever() (in the
 * inlined spin_inline()) without waiting again (the lockup failstop's preload must catch).
 *
 *   spin_loop [--marker FILE] [--waits N] [--spin | --exit]
 *
 * Prints "pid N" and "LD_PRELOAD=..." on stdout first (flushed); with
 * --marker, creates FILE (proof that the program started). --exit ends
 * with status 0 after the waits instead of spinning. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile unsigned long counter;

/* Inlined into spin_forever, so that a frame has an inlined function
 * (its name is what dwz moves to a supplementary file). */
static inline __attribute__((always_inline)) void spin_inline(void) {
    for (;;) {
        counter++;
    }
}

__attribute__((noinline)) static void spin_forever(void) {
    spin_inline();
}

int main(int argc, char **argv) {
    const char *marker = NULL;
    int waits = 3;
    int spin = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--marker") == 0 && i + 1 < argc) {
            marker = argv[++i];
        } else if (strcmp(argv[i], "--waits") == 0 && i + 1 < argc) {
            waits = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--exit") == 0) {
            spin = 0;
        } else if (strcmp(argv[i], "--spin") == 0) {
            spin = 1;
        } else {
            fprintf(stderr, "spin_loop: unknown argument %s\n", argv[i]);
            return 64;
        }
    }
    const char *preload = getenv("LD_PRELOAD");
    printf("pid %ld\nLD_PRELOAD=%s\n", (long)getpid(), preload ? preload : "");
    fflush(stdout);
    if (marker != NULL) {
        FILE *f = fopen(marker, "w");
        if (f == NULL) {
            perror(marker);
            return 65;
        }
        fclose(f);
    }
    for (int i = 0; i < waits; i++) {
        struct pollfd none;
        (void)poll(&none, 0, 10); /* the loop's wait: registers this thread */
    }
    if (spin) {
        spin_forever();
    }
    return 0;
}
