/* echo_server: a small epoll echo server watched by failstop.
 *
 *   echo_server [--allow-faults] [--bind ADDR] [--heartbeat HPORT] [--name NAME] PORT
 *
 * Listens on ADDR:PORT (ADDR an IPv4 address, default 127.0.0.1; 0.0.0.0
 * for every address, a virtual one included; PORT 0: the kernel picks a
 * free port) and prints "echo_server: listening on <addr>:<port>" on stdout
 * once it accepts connections. One thread runs the event loop for every
 * client. Each line a client sends ('\n'-terminated, at most 4095 bytes) is
 * answered with one line:
 *
 *   HEALTH        HEALTHY, or UNHEALTHY once failstop gave a verdict
 *   NAME          NAME (--name; default "echo_server"): which server answered
 *   FAULT spin    with --allow-faults: the loop spins (a busy loop that
 *                 never comes around again); failstop ends the process with
 *                 a "stuck" verdict
 *   FAULT block   with --allow-faults: the loop blocks in a read() that never
 *                 returns, outside its idle scope; failstop ends the process
 *                 with a "blocked" verdict
 *   FAULT vanish  with --allow-faults: the loop's thread (the main thread)
 *                 ends by syscall(SYS_exit), as after a kernel bug, and
 *                 stays a zombie while failstop's threads run on; failstop
 *                 ends the process with a "vanished" verdict
 *   FAULT slow    with --allow-faults: slow but living work on the loop, 6 s
 *                 in all: 3 s of CPU with a tick every 2 ms of it, then 3 s
 *                 of a blocking read that a helper thread feeds one byte
 *                 every 200 ms (a tick per byte); requests wait meanwhile,
 *                 failstop gives no verdict, then the loop serves again and
 *                 prints "echo_server: FAULT slow: done"
 *   FAULT write PATH  with --allow-faults: the loop opens PATH (created if
 *                 missing, appended to) and writes one line to it, outside
 *                 its idle scope. On a file system frozen with `fsfreeze -f`
 *                 the open or the write waits in uninterruptible sleep (D
 *                 state) until it is thawed: failstop gives a "blocked"
 *                 verdict, and the process cannot end before the system call
 *                 returns (a cluster manager fences the node). Once written,
 *                 the loop serves again and prints
 *                 "echo_server: FAULT write: done"
 *   anything else echoed back
 *
 * With --heartbeat HPORT a second thread, the heartbeat thread, listens on
 * ADDR:HPORT (0: any free port; printed as "echo_server: heartbeat on
 * <addr>:<port>" before the listening line) and answers every connection
 * with one line, HEALTHY or UNHEALTHY from failstop_healthy(), then closes
 * it. That thread is not the event loop: it answers while the loop hangs,
 * as the heartbeat of the service in failstop's story does, and only
 * failstop's verdict turns its answer to UNHEALTHY (or, once the process is
 * gone, to a refused connection). A cluster manager checks that answer
 * (examples/keepalived/).
 *
 * SIGTERM or SIGINT stops the server cleanly (exit 0). failstop is
 * configured by the FAILSTOP_* variables (see docs/c.md); failstop is told
 * that the loop is idle while it waits in epoll_pwait, that it came around
 * once per turn (touch) and did one unit of work per event (tick).
 *
 * Built with -DECHO_NO_FAILSTOP, the same program has no failstop call at
 * all (a plain server, for failstop's LD_PRELOAD mode); its command line,
 * protocol and faults are the same, and HEALTH (and the heartbeat) always
 * answer HEALTHY.
 *
 * Build (see docs/c.md, "Using it from C"):
 *   cc -O2 -g -fno-omit-frame-pointer examples/c/echo_server.c \
 *      $(pkg-config --cflags --libs failstop) -o echo_server
 *   cc -O2 -g -DECHO_NO_FAILSTOP examples/c/echo_server.c -o echo_server_plain
 */
#define _GNU_SOURCE /* syscall(2), for FAULT vanish */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef ECHO_NO_FAILSTOP
#include "failstop.h"
/* The event loop's failstop handle (registered on the loop's thread). */
static failstop_thread *loop_thread;
/* A failstop call, left out entirely in the plain build. */
#define WATCH(call) (call)
#else
#define WATCH(call) ((void)0)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#define LINE_MAX_BYTES 4096  /* a line, '\n' included */
#define OUT_BYTES 8192       /* room for the replies to one full input buffer */
#define REPLY_MAX 128        /* the longest reply that is not an echo */
#define MAX_EVENTS 64
#define ACCEPTS_PER_TURN 64

struct conn {
    int fd;
    int want_out;                 /* registered for EPOLLOUT (output pending) */
    size_t in_len;                /* bytes in in[] */
    size_t out_off, out_len;      /* pending output: out[out_off..out_len] */
    struct conn *prev, *next;     /* every open connection, for shutdown */
    char in[LINE_MAX_BYTES];
    char out[OUT_BYTES];
};

static int allow_faults;
static const char *server_name = "echo_server";
static struct in_addr bind_addr;  /* --bind, default 127.0.0.1 */
static int epoll_fd = -1;
static int listen_fd = -1;
static int spare_fd = -1;         /* closed to accept and drop a client at EMFILE */
static struct conn *conns;
static unsigned long long requests, connections;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

/* ---- failstop: start, stop, health (nothing in the plain build) ---- */

static void watch_start(void) {
#ifndef ECHO_NO_FAILSTOP
    failstop_config cfg;
    failstop_config_init(&cfg);
    cfg.apply_env = 1; /* the FAILSTOP_* variables override the defaults */
    if (failstop_start_with(&cfg) != FAILSTOP_OK) {
        char msg[512];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_server: failstop_start_with: %s\n", msg);
        exit(1);
    }
    loop_thread = failstop_register("echo-loop");
    if (loop_thread == NULL) {
        char msg[512];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_server: failstop_register: %s\n", msg);
        exit(1);
    }
#endif
}

static void watch_stop(void) {
#ifndef ECHO_NO_FAILSTOP
    failstop_unregister(loop_thread);
    loop_thread = NULL;
    if (failstop_stop() != FAILSTOP_OK) {
        char msg[512];
        failstop_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_server: failstop_stop: %s\n", msg);
    }
#endif
}

static int healthy(void) {
#ifndef ECHO_NO_FAILSTOP
    return failstop_healthy();
#else
    return 1; /* no watchdog: no verdict closed the gate */
#endif
}

/* ---- the faults (only with --allow-faults) ---- */

static volatile unsigned long spin_sink;

/* A bug that spins: a busy loop that never lets the event loop come around. */
static NOINLINE void fault_spin(void) {
    for (;;) {
        spin_sink++;
    }
}

/* A bug that ends the loop's thread without its thread-exit path. */
static NOINLINE void fault_vanish(void) {
    syscall(SYS_exit, 0);
}

/* A bug that blocks: a read on a pipe nobody writes (this process keeps the
 * write end open), outside the idle scope. */
static NOINLINE void fault_block(void) {
    int p[2];
    if (pipe(p) != 0) {
        perror("echo_server: pipe");
        abort();
    }
    char byte;
    for (;;) {
        if (read(p[0], &byte, 1) < 0 && errno != EINTR) {
            perror("echo_server: read");
            abort();
        }
    }
}

/* A write that may never return: on a frozen file system the open or the
 * write sleeps uninterruptibly, and not even SIGKILL ends the process before
 * it returns. Returns -1 (and says why) if the file cannot be written. */
static NOINLINE int fault_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "echo_server: FAULT write: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    static const char line[] = "echo_server: FAULT write\n";
    ssize_t n;
    while ((n = write(fd, line, sizeof line - 1)) < 0 && errno == EINTR) {
    }
    if (n < 0) {
        fprintf(stderr, "echo_server: FAULT write: write %s: %s\n", path, strerror(errno));
    }
    close(fd);
    return n < 0 ? -1 : 0;
}

/* Slow but living work (FAULT slow). */
#define SLOW_CPU_MS 3000
#define SLOW_TICK_EVERY_MS 2
#define SLOW_READ_BYTES 15
#define SLOW_READ_EVERY_MS 200

static double thread_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Feeds the slow read: one byte every SLOW_READ_EVERY_MS, then closes. */
static void *slow_feeder(void *arg) {
    int fd = *(int *)arg;
    free(arg);
    for (int i = 0; i < SLOW_READ_BYTES; i++) {
        sleep_ms(SLOW_READ_EVERY_MS);
        if (write(fd, "x", 1) != 1) {
            perror("echo_server: slow feeder: write");
            break;
        }
    }
    close(fd);
    return NULL;
}

/* Long work that keeps moving: CPU with ticks, then a read that keeps
 * getting bytes. Neither is a lockup, and failstop must not call it one. */
static NOINLINE void fault_slow(void) {
    double start = thread_cpu_ms(), last_tick = start, now;
    while ((now = thread_cpu_ms()) - start < SLOW_CPU_MS) {
        spin_sink++;
        if (now - last_tick >= SLOW_TICK_EVERY_MS) {
            WATCH(failstop_tick(loop_thread)); /* one unit of the work done */
            last_tick = now;
        }
    }
    int p[2];
    int *w = malloc(sizeof *w);
    pthread_t feeder;
    if (w == NULL || pipe(p) != 0) {
        perror("echo_server: FAULT slow");
        abort();
    }
    *w = p[1];
    if (pthread_create(&feeder, NULL, slow_feeder, w) != 0) {
        fprintf(stderr, "echo_server: FAULT slow: pthread_create failed\n");
        abort();
    }
    char byte;
    ssize_t n;
    while ((n = read(p[0], &byte, 1)) != 0) {
        if (n < 0 && errno != EINTR) {
            perror("echo_server: FAULT slow: read");
            abort();
        }
        WATCH(failstop_tick(loop_thread)); /* a byte came */
    }
    close(p[0]);
    pthread_join(feeder, NULL);
}

/* ---- the heartbeat thread (--heartbeat) ---- */

static int heartbeat_fd = -1;

/* Answers every connection with the health line and closes it. Never
 * registered with failstop: it only reports what failstop decided. */
static void *heartbeat_main(void *arg) {
    (void)arg;
    for (;;) {
        int fd = accept(heartbeat_fd, NULL, NULL);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                perror("echo_server: heartbeat: accept");
                sleep_ms(10); /* out of descriptors: try again soon */
            }
            continue;
        }
        const char *answer = healthy() ? "HEALTHY\n" : "UNHEALTHY\n";
        (void)send(fd, answer, strlen(answer), MSG_NOSIGNAL);
        close(fd);
    }
    return NULL;
}

/* ---- connections ---- */

static void close_conn(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    free(c);
}

/* Appends a reply; the caller checked there is room. */
static void reply(struct conn *c, const char *data, size_t len) {
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void reply_str(struct conn *c, const char *s) {
    reply(c, s, strlen(s));
}

/* Sends pending output. Returns -1 if the connection failed. */
static int flush(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Waits for input while nothing is pending, for the socket to drain while
 * something is. Returns -1 if epoll_ctl failed. */
static int update_interest(struct conn *c) {
    int want_out = c->out_off < c->out_len;
    if (want_out == c->want_out) {
        return 0;
    }
    struct epoll_event ev = {.events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        return -1;
    }
    c->want_out = want_out;
    return 0;
}

static int line_is(const char *line, size_t len, const char *word) {
    return strlen(word) == len && memcmp(line, word, len) == 0;
}

/* Answers one line (without its '\n'). */
static void handle_line(struct conn *c, const char *line, size_t len) {
    requests++;
    if (line_is(line, len, "HEALTH")) {
        reply_str(c, healthy() ? "HEALTHY\n" : "UNHEALTHY\n");
        return;
    }
    if (line_is(line, len, "NAME")) {
        reply_str(c, server_name); /* at most 64 bytes (checked at start) */
        reply_str(c, "\n");
        return;
    }
    if (len >= 6 && memcmp(line, "FAULT ", 6) == 0) {
        const char *kind = line + 6;
        size_t kind_len = len - 6;
        if (!allow_faults) {
            reply_str(c, "ERR faults are disabled (start the server with --allow-faults)\n");
        } else if (line_is(kind, kind_len, "vanish")) {
            printf("echo_server: FAULT vanish: the event loop's thread ends now\n");
            fflush(stdout);
            reply_str(c, "FAULT vanish: the loop vanishes now\n");
            (void)flush(c);
            fault_vanish();
        } else if (line_is(kind, kind_len, "spin") || line_is(kind, kind_len, "block")) {
            int spin = kind[0] == 's';
            printf("echo_server: FAULT %s: the event loop %s now\n", spin ? "spin" : "block", spin ? "spins" : "blocks");
            fflush(stdout);
            reply_str(c, spin ? "FAULT spin: the loop spins now\n" : "FAULT block: the loop blocks now\n");
            (void)flush(c);
            if (spin) {
                fault_spin();
            } else {
                fault_block();
            }
        } else if (line_is(kind, kind_len, "slow")) {
            printf("echo_server: FAULT slow: the event loop works slowly now\n");
            fflush(stdout);
            reply_str(c, "FAULT slow: the loop works slowly now\n");
            (void)flush(c);
            fault_slow();
            printf("echo_server: FAULT slow: done\n");
            fflush(stdout);
        } else if (kind_len > 6 && memcmp(kind, "write ", 6) == 0) {
            char path[LINE_MAX_BYTES];
            memcpy(path, kind + 6, kind_len - 6);
            path[kind_len - 6] = '\0';
            printf("echo_server: FAULT write: the event loop writes to %s now\n", path);
            fflush(stdout);
            reply_str(c, "FAULT write: the loop writes now\n");
            (void)flush(c);
            if (fault_write(path) == 0) {
                printf("echo_server: FAULT write: done\n");
                fflush(stdout);
            }
        } else {
            reply_str(c, "ERR unknown fault (allowed: FAULT spin, FAULT block, FAULT vanish, FAULT slow, "
                         "FAULT write PATH)\n");
        }
        return;
    }
    reply(c, line, len);
    reply(c, "\n", 1);
}

/* Answers the complete lines in c->in while the output has room for the
 * reply; keeps the rest for later. */
static void handle_lines(struct conn *c) {
    size_t start = 0;
    while (start < c->in_len) {
        char *nl = memchr(c->in + start, '\n', c->in_len - start);
        if (nl == NULL) {
            break;
        }
        size_t len = (size_t)(nl - (c->in + start));
        size_t room = (len + 1 > REPLY_MAX ? len + 1 : REPLY_MAX);
        if (OUT_BYTES - c->out_len < room) {
            break;
        }
        size_t text = (len > 0 && c->in[start + len - 1] == '\r') ? len - 1 : len;
        handle_line(c, c->in + start, text);
        start += len + 1;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
}

/* One readiness event on a client. */
static void on_client(struct conn *c, uint32_t events) {
    if ((events & EPOLLOUT) && flush(c) != 0) {
        close_conn(c);
        return;
    }
    int eof = 0;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->out_off == c->out_len) {
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
        } else if (n == 0) {
            eof = 1;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            close_conn(c);
            return;
        }
    }
    handle_lines(c);
    if (c->in_len == sizeof c->in && c->out_off == c->out_len) {
        /* A full buffer without a '\n' (and nothing held back by pending output). */
        reply_str(c, "ERR line longer than 4095 bytes\n");
        eof = 1;
    }
    if (flush(c) != 0 || eof || update_interest(c) != 0) {
        close_conn(c);
    }
}

/* Accepts the waiting clients (a bounded number per turn). */
static void on_listener(void) {
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                /* Out of descriptors: accept the client with the spare one and
                 * drop it, or the listener would stay readable forever. */
                close(spare_fd);
                fd = accept(listen_fd, NULL, NULL);
                if (fd >= 0) {
                    close(fd);
                }
                spare_fd = open("/dev/null", O_RDONLY);
                fprintf(stderr, "echo_server: out of file descriptors: dropped a client\n");
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                perror("echo_server: accept");
            }
            return;
        }
        int one = 1;
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL || fcntl(fd, F_SETFL, O_NONBLOCK) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
            perror("echo_server: new client");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("echo_server: epoll_ctl");
            free(c);
            close(fd);
            continue;
        }
        c->next = conns;
        if (conns != NULL) {
            conns->prev = c;
        }
        conns = c;
        connections++;
    }
}

/* ---- setup ---- */

static void usage(FILE *to) {
    fprintf(to, "usage: echo_server [--allow-faults] [--bind ADDR] [--heartbeat HPORT] [--name NAME] PORT\n"
                "  PORT, HPORT 0..65535 (0: any free port); ADDR an IPv4 address (default 127.0.0.1);\n"
                "  NAME 1..64 bytes of letters, digits, '-', '_', '.' (the answer to NAME)\n");
}

static int parse_port(const char *s) {
    if (*s == '\0' || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s)) {
        return -1;
    }
    long port = strtol(s, NULL, 10);
    return port <= 65535 ? (int)port : -1;
}

static int listen_on(int port, const char *what) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr = bind_addr;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, SOMAXCONN) != 0) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &bind_addr, text, sizeof text);
        fprintf(stderr, "echo_server: %s: listen on %s:%d: %s\n", what, text, port, strerror(errno));
        exit(1);
    }
    return fd;
}

/* The port fd is bound to. */
static unsigned bound_port(int fd) {
    struct sockaddr_in bound;
    socklen_t bound_len = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        perror("echo_server: getsockname");
        exit(1);
    }
    return ntohs(bound.sin_port);
}

static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '.')) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    int port = -1, heartbeat_port = -1;
    bind_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--allow-faults") == 0) {
            allow_faults = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--bind") == 0 || strcmp(argv[i], "--heartbeat") == 0 ||
                   strcmp(argv[i], "--name") == 0) {
            if (value == NULL) {
                fprintf(stderr, "echo_server: %s needs a value\n", argv[i]);
                usage(stderr);
                return 2;
            }
            if (argv[i][2] == 'b' && inet_pton(AF_INET, value, &bind_addr) != 1) {
                fprintf(stderr, "echo_server: invalid --bind '%s': expected an IPv4 address such as 0.0.0.0\n",
                        value);
                return 2;
            }
            if (argv[i][2] == 'h' && (heartbeat_port = parse_port(value)) < 0) {
                fprintf(stderr, "echo_server: invalid --heartbeat '%s': expected a port from 0 to 65535\n", value);
                return 2;
            }
            if (argv[i][2] == 'n') {
                if (!valid_name(value)) {
                    fprintf(stderr,
                            "echo_server: invalid --name '%s': expected 1 to 64 letters, digits, '-', '_' or '.'\n",
                            value);
                    return 2;
                }
                server_name = value;
            }
            i++;
        } else if (port < 0 && argv[i][0] != '-') {
            port = parse_port(argv[i]);
            if (port < 0) {
                fprintf(stderr, "echo_server: invalid port '%s': expected a number from 0 to 65535\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "echo_server: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (port < 0) {
        fprintf(stderr, "echo_server: missing PORT\n");
        usage(stderr);
        return 2;
    }

    /* SIGTERM and SIGINT are blocked everywhere (failstop's threads inherit
     * the mask) and let through only inside epoll_pwait: a stop request
     * always wakes the loop, and never interrupts a handler halfway. */
    sigset_t stop_signals, wait_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask) != 0) {
        perror("echo_server: sigprocmask");
        return 1;
    }
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        perror("echo_server: sigaction");
        return 1;
    }

    watch_start();
    char addr_text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &bind_addr, addr_text, sizeof addr_text);
    if (heartbeat_port >= 0) {
        /* Started after the stop signals were blocked: the thread inherits
         * the mask and never takes them. */
        heartbeat_fd = listen_on(heartbeat_port, "heartbeat");
        pthread_t heartbeat;
        if (pthread_create(&heartbeat, NULL, heartbeat_main, NULL) != 0 || pthread_detach(heartbeat) != 0) {
            fprintf(stderr, "echo_server: heartbeat: pthread_create failed\n");
            return 1;
        }
        printf("echo_server: heartbeat on %s:%u\n", addr_text, bound_port(heartbeat_fd));
    }
    listen_fd = listen_on(port, "server");
    if (fcntl(listen_fd, F_SETFL, O_NONBLOCK) != 0) {
        perror("echo_server: fcntl");
        return 1;
    }
    spare_fd = open("/dev/null", O_RDONLY);
    epoll_fd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the listener */
    if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &lev) != 0) {
        perror("echo_server: epoll");
        return 1;
    }
    printf("echo_server: listening on %s:%u%s\n", addr_text, bound_port(listen_fd),
           allow_faults ? " (faults allowed)" : "");
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    while (stop_signal == 0) {
        WATCH(failstop_idle_begin(loop_thread)); /* waiting for work: never judged */
        int n = epoll_pwait(epoll_fd, events, MAX_EVENTS, -1, &wait_mask);
        int wait_errno = errno;
        WATCH(failstop_idle_end(loop_thread));
        WATCH(failstop_touch(loop_thread)); /* the loop came around */
        if (n < 0) {
            if (wait_errno == EINTR) {
                continue;
            }
            fprintf(stderr, "echo_server: epoll_pwait: %s\n", strerror(wait_errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) {
                on_listener();
            } else {
                on_client(events[i].data.ptr, events[i].events);
            }
            WATCH(failstop_tick(loop_thread)); /* one event handled */
        }
    }

    while (conns != NULL) {
        close_conn(conns);
    }
    close(listen_fd);
    close(epoll_fd);
    if (spare_fd >= 0) {
        close(spare_fd);
    }
    watch_stop();
    printf("echo_server: stopped by %s after %llu requests on %llu connections\n",
           stop_signal == SIGTERM ? "SIGTERM" : "SIGINT", requests, connections);
    return 0;
}
