/* loadgen: an echo load generator on wsnative's poll mode (one thread, no callbacks), so that
 * the Python servers in server_bench.py, not the client, are the bottleneck.
 *
 *   loadgen URL [CONNECTIONS=50] [IN_FLIGHT=16] [SECONDS=3] [SIZE=64] [WARMUP=1]
 *
 * Opens CONNECTIONS connections, keeps IN_FLIGHT binary messages of SIZE bytes in flight on
 * each (a reply triggers the next send), and prints the echoed messages per second over
 * SECONDS after WARMUP seconds, as "msgs_per_s N". Exits 1 when a connection fails. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: loadgen URL [CONNECTIONS] [IN_FLIGHT] [SECONDS] [SIZE] [WARMUP]\n");
        return 2;
    }
    const char *url = argv[1];
    int conns = argc > 2 ? atoi(argv[2]) : 50;
    int inflight = argc > 3 ? atoi(argv[3]) : 16;
    double seconds = argc > 4 ? atof(argv[4]) : 3.0;
    size_t size = argc > 5 ? (size_t)atol(argv[5]) : 64;
    double warmup = argc > 6 ? atof(argv[6]) : 1.0;

    unsigned char *payload = calloc(1, size ? size : 1);
    struct wsn_queue *queue;
    struct wsn_conn **c = calloc((size_t)conns, sizeof *c);
    if (wsn_queue_new(&queue) != WSN_OK) {
        fprintf(stderr, "loadgen: %s\n", wsn_last_error());
        return 1;
    }
    struct wsn_client_options *o = wsn_client_options_new();
    wsn_client_options_set_ping_interval_ms(o, 0);
    for (int i = 0; i < conns; i++) {
        if (wsn_connect_queued(url, o, queue, (void *)(intptr_t)(i + 1), &c[i]) != WSN_OK) {
            fprintf(stderr, "loadgen: %s\n", wsn_last_error());
            return 1;
        }
    }
    wsn_client_options_free(o);

    int open = 0, failed = 0;
    long counted = 0;
    double start = 0, t0 = 0, t1 = 0;
    struct wsn_queued_event events[256];
    double begin = now();
    for (;;) {
        size_t n = wsn_queue_poll(queue, events, 256, 100);
        double t = now();
        for (size_t i = 0; i < n; i++) {
            const struct wsn_event *ev = &events[i].event;
            struct wsn_conn *conn = events[i].conn;
            if (ev->kind == WSN_EVENT_MESSAGE) {
                if (t >= t0 && t < t1)
                    counted++;
                wsn_conn_send_binary(conn, payload, size);
            } else if (ev->kind == WSN_EVENT_OPEN) {
                for (int k = 0; k < inflight; k++)
                    wsn_conn_send_binary(conn, payload, size);
                if (++open == conns) {
                    start = t;
                    t0 = start + warmup;
                    t1 = t0 + seconds;
                }
            } else if (ev->kind == WSN_EVENT_CLOSE) {
                fprintf(stderr, "loadgen: a connection closed: %u %s\n", ev->close_code, ev->error ? ev->error : "");
                failed = 1;
            }
        }
        if (failed || (open == conns && t >= t1))
            break;
        if (open < conns && t - begin > 15) {
            fprintf(stderr, "loadgen: only %d of %d connections opened in 15 s\n", open, conns);
            failed = 1;
            break;
        }
    }
    if (!failed)
        printf("msgs_per_s %.0f\n", (double)counted / seconds);
    fflush(stdout);
    for (int i = 0; i < conns; i++)
        wsn_conn_abort(c[i]);
    for (int i = 0; i < conns; i++)
        wsn_conn_free(c[i]);
    wsn_queue_free(queue);
    return failed;
}
