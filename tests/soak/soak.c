/* soak.c: a long run of many connections through the C ABI, in two processes.
 *
 *   soak server                      listens on 127.0.0.1 (prints "port N"), echoes every
 *                                    message, frees each connection at its CLOSE; stops at
 *                                    SIGTERM or when stdin ends, and prints what it saw.
 *   soak client PORT SERVER_PID CONNECTIONS SECONDS [RATE] [CHURN_PER_MILLE]
 *                                    opens CONNECTIONS to the server (keep-alive on: a ping
 *                                    every 5 s), then for SECONDS sends RATE messages a second
 *                                    (default 2000) to random connections, each carrying its
 *                                    connection's sequence number, and closes and reopens
 *                                    CHURN_PER_MILLE per mille (default 10) of the idle
 *                                    connections every second.
 *
 * The client checks that every echo comes back exactly once and in order (sequence numbers),
 * that no connection closes unless it closed it (1000, clean), and at the end that nothing
 * sent is missing. Once a minute it prints the server's descriptors, threads and resident
 * memory (from /proc/SERVER_PID) and its own counts; at the end it checks that the server's
 * figures stayed flat from the first minute to the last (descriptors within 10% or 200 of
 * the connections held, threads within 2, resident memory within 50% or 64 MiB: machines are
 * noisy; a leak grows without bound, noise does not). Prints "soak: ok" or "soak: FAILED". */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wsnative.h"

/* ---------------------------------------------------------------------------------------- */
/* The server                                                                               */

static atomic_long srv_opens, srv_closes, srv_unexpected, srv_messages;
static volatile sig_atomic_t srv_stop;

static void on_term(int sig) {
    (void)sig;
    srv_stop = 1;
}

static void server_event(void *ud, wsn_conn *conn, const wsn_event *ev) {
    (void)ud;
    switch (ev->kind) {
    case WSN_EVENT_OPEN:
        atomic_fetch_add(&srv_opens, 1);
        break;
    case WSN_EVENT_MESSAGE:
        atomic_fetch_add(&srv_messages, 1);
        wsn_conn_send(conn, ev->data, ev->len, ev->is_text ? WSN_SEND_TEXT : 0, NULL);
        break;
    case WSN_EVENT_CLOSE:
        atomic_fetch_add(&srv_closes, 1);
        /* Clients close with 1000; anything else is unexpected. */
        if (ev->close_code != 1000 || !ev->was_clean) {
            if (atomic_fetch_add(&srv_unexpected, 1) < 5)
                fprintf(stderr, "soak server: unexpected close %u (%s)\n", ev->close_code,
                        ev->error ? ev->error : "");
        }
        wsn_conn_free(conn);
        break;
    default:
        break;
    }
}

static int run_server(void) {
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    wsn_server_options *o = wsn_server_options_new();
    wsn_server_options_set_max_connections(o, 1000000);
    /* Every client of the soak comes from 127.0.0.1 and thousands open at once: the caps on
     * handshakes in progress (32 per address by default, which drop the oldest) would stand
     * between them, as they stand between a real server and a flood from one address. */
    wsn_server_options_set_max_pending_handshakes(o, 0);
    wsn_server_options_set_max_pending_handshakes_per_ip(o, 0);
    /* Keep-alive on; generous timeouts: the soak looks for leaks and losses, not for speed on
     * a loaded machine. */
    wsn_server_options_set_ping_interval_ms(o, 5000);
    wsn_server_options_set_pong_timeout_ms(o, 60000);
    wsn_server_options_set_close_timeout_ms(o, 30000);
    wsn_server_options_set_close_max_ms(o, 60000);
    wsn_server_options_set_handshake_timeout_ms(o, 60000);
    wsn_server_options_set_drain_timeout_ms(o, 5000);
    wsn_server *s = NULL;
    if (wsn_server_listen("127.0.0.1", 0, o, NULL, server_event, NULL, &s) != WSN_OK) {
        fprintf(stderr, "soak server: listen failed: %s\n", wsn_last_error());
        return 1;
    }
    wsn_server_options_free(o);
    printf("port %u\n", wsn_server_get_port(s));
    fflush(stdout);
    while (!srv_stop) {
        char c;
        if (read(0, &c, 1) == 0) break; /* stdin closed: the driver is gone */
    }
    wsn_server_free(s);
    printf("soak server: %ld opened, %ld closed, %ld messages echoed, %ld unexpected closes\n",
           atomic_load(&srv_opens), atomic_load(&srv_closes), atomic_load(&srv_messages),
           atomic_load(&srv_unexpected));
    return atomic_load(&srv_unexpected) == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The client                                                                               */

enum { FREE = 0, CONNECTING, OPEN, CLOSING, CLOSED };

struct slot {
    wsn_conn *conn;     /* touched by the main thread only */
    atomic_int state;
    atomic_long sent;   /* sequence number of the last message sent */
    atomic_long echoed; /* and of the last echo received */
    atomic_int we_closed;
    int index;
};

static struct slot *slots;
static int nslots;
static atomic_long errors, unexpected_closes, out_of_order, echoes, churned, reconnects;

static void err(const char *what, int i) {
    if (atomic_fetch_add(&errors, 1) < 10) fprintf(stderr, "soak: %s (slot %d)\n", what, i);
}

static void client_event(void *ud, wsn_conn *conn, const wsn_event *ev) {
    (void)conn;
    struct slot *s = ud;
    switch (ev->kind) {
    case WSN_EVENT_OPEN:
        atomic_store(&s->state, OPEN);
        break;
    case WSN_EVENT_MESSAGE: {
        /* "slot seq ..." */
        char head[64];
        size_t n = ev->len < sizeof head - 1 ? ev->len : sizeof head - 1;
        memcpy(head, ev->data, n);
        head[n] = 0;
        int slot = -1;
        long seq = -1;
        if (sscanf(head, "%d %ld", &slot, &seq) != 2 || slot != s->index) {
            err("an echo that is not this connection's", s->index);
            break;
        }
        long want = atomic_load(&s->echoed) + 1;
        if (seq != want) {
            atomic_fetch_add(&out_of_order, 1);
            if (atomic_load(&out_of_order) < 10)
                fprintf(stderr, "soak: slot %d got %ld where %ld was due (%s)\n", s->index, seq,
                        want, seq < want ? "a duplicate" : "a gap");
        } else {
            atomic_store(&s->echoed, seq);
            atomic_fetch_add(&echoes, 1);
        }
        break;
    }
    case WSN_EVENT_CLOSE:
        if (!atomic_load(&s->we_closed) || ev->close_code != 1000 || !ev->was_clean) {
            if (atomic_fetch_add(&unexpected_closes, 1) < 10)
                fprintf(stderr, "soak: slot %d closed unexpectedly: %u %s\n", s->index,
                        ev->close_code, ev->error ? ev->error : "");
        }
        atomic_store(&s->state, CLOSED);
        break;
    default:
        break;
    }
}

static unsigned long long rng = 88172645463325252ull;
static unsigned long long next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static wsn_client_options *copts;
static char url[64];

static void open_slot(struct slot *s) {
    atomic_store(&s->sent, 0);
    atomic_store(&s->echoed, 0);
    atomic_store(&s->we_closed, 0);
    atomic_store(&s->state, CONNECTING);
    if (wsn_connect(url, copts, client_event, s, &s->conn) != WSN_OK) {
        err("connect refused the call", s->index);
        s->conn = NULL;
        atomic_store(&s->state, FREE);
    }
}

struct proc_figures {
    long fds, threads, rss_kb;
};

static struct proc_figures figures(int pid) {
    struct proc_figures f = {-1, -1, -1};
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (d) {
        f.fds = 0;
        while (readdir(d)) f.fds++;
        f.fds -= 2; /* . and .. */
        closedir(d);
    }
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *st = fopen(path, "r");
    if (st) {
        while (fgets(line, sizeof line, st)) {
            sscanf(line, "VmRSS: %ld", &f.rss_kb);
            sscanf(line, "Threads: %ld", &f.threads);
        }
        fclose(st);
    }
    return f;
}

static int count_state(int state) {
    int n = 0;
    for (int i = 0; i < nslots; i++) n += atomic_load(&slots[i].state) == state;
    return n;
}

static int run_client(int port, int server_pid, int conns, int seconds, int rate, int churn) {
    nslots = conns;
    slots = calloc(conns, sizeof *slots);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    copts = wsn_client_options_new();
    wsn_client_options_set_ping_interval_ms(copts, 5000);
    wsn_client_options_set_pong_timeout_ms(copts, 60000);
    wsn_client_options_set_close_timeout_ms(copts, 30000);
    wsn_client_options_set_close_max_ms(copts, 60000);
    wsn_client_options_set_connect_timeout_ms(copts, 60000);
    wsn_client_options_set_handshake_timeout_ms(copts, 60000);
    /* Open them all, 500 at a time. */
    double t0 = now_s();
    for (int i = 0; i < conns; i++) {
        slots[i].index = i;
        open_slot(&slots[i]);
        if (i % 500 == 499) {
            while (count_state(CONNECTING) > 0 && now_s() - t0 < 180) usleep(10000);
        }
    }
    while (count_state(OPEN) < conns && now_s() - t0 < 180) usleep(10000);
    printf("soak: %d connections open in %.1f s\n", count_state(OPEN), now_s() - t0);
    if (count_state(OPEN) < conns) {
        err("not every connection opened", -1);
    }
    printf("| minute | open | sent | echoed | churned | server fds | server threads | server RSS MiB |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
    struct proc_figures first = {-1, -1, -1}, last = first;
    long sent_total = 0;
    char msg[1100];
    double start = now_s(), next_churn = start + 1, next_report = start + 60;
    int minute = 0;
    while (now_s() - start < seconds) {
        /* 10 ms ticks: rate / 100 messages each. */
        for (int k = 0; k < rate / 100; k++) {
            struct slot *s = &slots[next_rand() % conns];
            if (atomic_load(&s->state) != OPEN) continue;
            long seq = atomic_load(&s->sent) + 1;
            int pad = 16 + (int)(next_rand() % 1000);
            int n = snprintf(msg, sizeof msg, "%d %ld ", s->index, seq);
            memset(msg + n, 'a' + (int)(seq % 26), pad);
            atomic_store(&s->sent, seq); /* before the echo can come back */
            if (wsn_conn_send(s->conn, (const uint8_t *)msg, n + pad, WSN_SEND_TEXT, NULL) != WSN_OK) {
                atomic_store(&s->sent, seq - 1);
                err("a send was refused on an open connection", s->index);
            } else {
                sent_total++;
            }
        }
        double t = now_s();
        if (t >= next_churn) {
            next_churn += 1;
            /* Close a share of the idle ones (nothing in flight: nothing may be lost) ... */
            int want = conns * churn / 1000;
            for (int tries = 0; want > 0 && tries < conns; tries++) {
                struct slot *s = &slots[next_rand() % conns];
                if (atomic_load(&s->state) != OPEN || atomic_load(&s->sent) != atomic_load(&s->echoed))
                    continue;
                atomic_store(&s->we_closed, 1);
                atomic_store(&s->state, CLOSING);
                wsn_conn_close(s->conn, 1000, "churn");
                atomic_fetch_add(&churned, 1);
                want--;
            }
        }
        /* ... and reopen those that closed. */
        for (int i = 0; i < conns; i++) {
            if (atomic_load(&slots[i].state) == CLOSED) {
                wsn_conn_free(slots[i].conn);
                slots[i].conn = NULL;
                atomic_fetch_add(&reconnects, 1);
                open_slot(&slots[i]);
            }
        }
        if (t >= next_report) {
            next_report += 60;
            minute++;
            last = figures(server_pid);
            if (minute == 1) first = last;
            printf("| %d | %d | %ld | %ld | %ld | %ld | %ld | %.1f |\n", minute, count_state(OPEN),
                   sent_total, atomic_load(&echoes), atomic_load(&churned), last.fds, last.threads,
                   last.rss_kb / 1024.0);
            fflush(stdout);
        }
        usleep(10000);
    }
    /* The figures at the end (the last whole minute may coincide with it). */
    last = figures(server_pid);
    if (minute == 0) first = last; /* a run shorter than a minute: one figure only */
    printf("| end | %d | %ld | %ld | %ld | %ld | %ld | %.1f |\n", count_state(OPEN), sent_total,
           atomic_load(&echoes), atomic_load(&churned), last.fds, last.threads, last.rss_kb / 1024.0);
    /* Stop sending; every message sent must come back. */
    double t1 = now_s();
    long missing = 0;
    for (;;) {
        missing = 0;
        for (int i = 0; i < conns; i++) {
            int st = atomic_load(&slots[i].state);
            if (st == OPEN || st == CLOSING)
                missing += atomic_load(&slots[i].sent) - atomic_load(&slots[i].echoed);
        }
        if (missing == 0 || now_s() - t1 > 30) break;
        usleep(50000);
    }
    printf("soak: %ld messages sent, %ld echoed in order, %ld missing, %ld out of order, "
           "%ld closed and reopened, %ld unexpected closes, %ld errors\n",
           sent_total, atomic_load(&echoes), missing, atomic_load(&out_of_order),
           atomic_load(&reconnects), atomic_load(&unexpected_closes), atomic_load(&errors));
    /* Flat: the first minute against the last. */
    int flat = 1;
    long fd_tol = conns / 10 > 200 ? conns / 10 : 200;
    if (labs(last.fds - first.fds) > fd_tol) flat = 0;
    if (labs(last.threads - first.threads) > 2) flat = 0;
    long rss_tol = first.rss_kb / 2 > 65536 ? first.rss_kb / 2 : 65536;
    if (last.rss_kb - first.rss_kb > rss_tol) flat = 0;
    printf("soak: server first minute %ld fds, %ld threads, %.1f MiB; last %ld fds, %ld threads, "
           "%.1f MiB: %s\n",
           first.fds, first.threads, first.rss_kb / 1024.0, last.fds, last.threads,
           last.rss_kb / 1024.0, flat ? "flat" : "NOT FLAT");
    /* Close everything (once the last reopened ones are open). */
    double t3 = now_s();
    while (count_state(CONNECTING) > 0 && now_s() - t3 < 30) usleep(20000);
    for (int i = 0; i < conns; i++) {
        if (slots[i].conn) {
            atomic_store(&slots[i].we_closed, 1);
            wsn_conn_close(slots[i].conn, 1000, "done");
        }
    }
    double t2 = now_s();
    while (count_state(CLOSED) + count_state(FREE) < conns && now_s() - t2 < 30) usleep(20000);
    for (int i = 0; i < conns; i++) {
        if (slots[i].conn) wsn_conn_free(slots[i].conn);
    }
    wsn_client_options_free(copts);
    int ok = flat && missing == 0 && atomic_load(&out_of_order) == 0 &&
             atomic_load(&unexpected_closes) == 0 && atomic_load(&errors) == 0;
    printf("soak: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "server") == 0) return run_server();
    if (argc >= 6 && strcmp(argv[1], "client") == 0) {
        return run_client(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                          argc > 6 ? atoi(argv[6]) : 2000, argc > 7 ? atoi(argv[7]) : 10);
    }
    fprintf(stderr, "usage: soak server | soak client PORT SERVER_PID CONNECTIONS SECONDS [RATE] [CHURN_PER_MILLE]\n");
    return 2;
}
