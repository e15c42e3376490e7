/* client_inflight: wsnative's client through the C ABI, for bench/run.sh's client comparison:
 * one connection keeps W binary messages of SIZE bytes in flight against an echo server (a new
 * one is sent from the callback of each echo), measured for SECS seconds after a 0.3 s warm-up
 * (sending stops after N messages at most). Same output as bench/src/bin/tt_client.rs:
 *   msgs= secs= msgs_per_s= mb_per_s= client_cpu_us_per_msg=
 * (the process's own CPU time: wsnative's I/O and callback threads, over the same window).
 *   client_inflight URL [SECS=3] [SIZE=64] [W=16] [N=50000000]
 * Derived from bindings/csharp/bench/inflight.c, which counts a fixed number of echoes.
 * Its callback runs inline on the I/O thread unless WSN_INLINE=0. Every message is the same
 * payload, lent with wsn_conn_send_nocopy (as tokio-tungstenite's client shares one Bytes);
 * WSN_COPY=1 sends with wsn_conn_send_binary, which copies each message. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "wsnative.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static long received, sent, total;
static int opened, closed, stop;
static unsigned char *payload;
static size_t size;
static int copy_each; /* WSN_COPY=1 */
static long lent, released;

/* The payload stays valid and unchanged for the whole run: release only counts. */
static void on_release(void *user_data, const uint8_t *data, size_t len) {
    (void)user_data, (void)data, (void)len;
    __atomic_add_fetch(&released, 1, __ATOMIC_RELAXED);
}

static void send_one(struct wsn_conn *conn) {
    if (copy_each) {
        wsn_conn_send_binary(conn, payload, size);
        return;
    }
    __atomic_add_fetch(&lent, 1, __ATOMIC_RELAXED);
    wsn_conn_send_nocopy(conn, payload, size, 0, on_release, NULL, NULL);
}

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    if (ev->kind == WSN_EVENT_MESSAGE) {
        __atomic_add_fetch(&received, 1, __ATOMIC_RELAXED);
        if (!__atomic_load_n(&stop, __ATOMIC_RELAXED) && __atomic_add_fetch(&sent, 1, __ATOMIC_RELAXED) <= total)
            send_one(conn);
        return;
    }
    pthread_mutex_lock(&lock);
    if (ev->kind == WSN_EVENT_OPEN)
        opened = 1;
    else if (ev->kind == WSN_EVENT_CLOSE)
        closed = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: client_inflight URL [SECS] [SIZE] [W] [N]\n");
        return 2;
    }
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    size = argc > 3 ? (size_t)atol(argv[3]) : 64;
    long window = argc > 4 ? atol(argv[4]) : 16;
    total = argc > 5 ? atol(argv[5]) : 50000000;
    if (!(secs > 0 && secs <= 600) || window < 1) {
        fprintf(stderr, "client_inflight: 0 < SECS <= 600, W >= 1\n");
        return 2;
    }
    const char *copy_text = getenv("WSN_COPY");
    copy_each = copy_text && copy_text[0] == '1';
    payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++)
        payload[i] = (unsigned char)(i * 31);
    struct wsn_client_options *opts = wsn_client_options_new();
    wsn_client_options_set_max_message_size(opts, 64u << 20);
    /* The callback only counts and sends: it runs on the I/O thread (WSN_INLINE=0: it does not). */
    const char *inline_text = getenv("WSN_INLINE");
    wsn_client_options_set_inline_callbacks(opts, !(inline_text && inline_text[0] == '0'));
    struct wsn_conn *conn;
    if (wsn_connect(argv[1], opts, on_event, NULL, &conn) != WSN_OK) {
        fprintf(stderr, "client_inflight: %s\n", wsn_last_error());
        return 1;
    }
    wsn_client_options_free(opts);
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (!opened && !closed && pthread_cond_timedwait(&changed, &lock, &end) == 0) {
    }
    int ok = opened && !closed;
    pthread_mutex_unlock(&lock);
    if (!ok) {
        fprintf(stderr, "client_inflight: no connection\n");
        return 1;
    }
    long first = window < total ? window : total;
    __atomic_store_n(&sent, first, __ATOMIC_RELAXED); /* echoes may come before the loop ends */
    for (long i = 0; i < first; i++)
        send_one(conn);
    sleep_s(0.3);
    long r0 = __atomic_load_n(&received, __ATOMIC_RELAXED);
    double t0 = now(), c0 = cpu();
    sleep_s(secs);
    long r1 = __atomic_load_n(&received, __ATOMIC_RELAXED);
    double t1 = now(), c1 = cpu();
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&lock);
    int was_closed = closed;
    pthread_mutex_unlock(&lock);
    long got = r1 - r0;
    double s = t1 - t0;
    if (was_closed || got <= 0) {
        fprintf(stderr, "client_inflight: the connection closed or stalled (%ld echoes)\n", got);
        return 1;
    }
    printf("msgs=%ld secs=%.3f msgs_per_s=%.0f mb_per_s=%.2f client_cpu_us_per_msg=%.2f\n", got, s, (double)got / s,
           (double)got * (double)size / s / 1e6, (c1 - c0) * 1e6 / (double)got);
    fflush(stdout);
    wsn_conn_close(conn, 1000, NULL);
    wsn_conn_free(conn);
    wsn_shutdown(500);
    /* Every lent message was released once (written, or dropped when the connection ended). */
    long l = __atomic_load_n(&lent, __ATOMIC_RELAXED), r = __atomic_load_n(&released, __ATOMIC_RELAXED);
    if (l != r) {
        fprintf(stderr, "client_inflight: %ld messages lent, %ld released\n", l, r);
        return 1;
    }
    return 0;
}
