/* inflight: the C ABI's figure for bindings/csharp/bench: one client connection keeps W binary
 * messages of SIZE bytes in flight against an echo server (a new one is sent from the callback of
 * each echo) until N echoes arrived; prints messages per second (echoes received / elapsed).
 *   inflight URL [N=200000] [SIZE=64] [W=16] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static long received, sent, total;
static int opened, finished, failed;
static unsigned char *payload;
static size_t size;

static void signal_locked(int *flag) {
    pthread_mutex_lock(&lock);
    *flag = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    if (ev->kind == WSN_EVENT_OPEN)
        signal_locked(&opened);
    else if (ev->kind == WSN_EVENT_MESSAGE) {
        if (++received >= total)
            signal_locked(&finished);
        else if (__atomic_add_fetch(&sent, 1, __ATOMIC_RELAXED) <= total)
            wsn_conn_send_binary(conn, payload, size);
    } else if (ev->kind == WSN_EVENT_CLOSE) {
        failed = !finished;
        signal_locked(&finished);
        signal_locked(&opened);
    }
}

static int wait_for(int *flag, int seconds) {
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    while (!*flag && pthread_cond_timedwait(&changed, &lock, &end) == 0) {
    }
    int ok = *flag;
    pthread_mutex_unlock(&lock);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: inflight URL [N] [SIZE] [W]\n");
        return 2;
    }
    total = argc > 2 ? atol(argv[2]) : 200000;
    size = argc > 3 ? (size_t)atol(argv[3]) : 64;
    long window = argc > 4 ? atol(argv[4]) : 16;
    payload = calloc(size ? size : 1, 1);
    struct wsn_conn *conn;
    if (wsn_connect(argv[1], NULL, on_event, NULL, &conn) != WSN_OK) {
        fprintf(stderr, "inflight: %s\n", wsn_last_error());
        return 1;
    }
    if (!wait_for(&opened, 10) || failed) {
        fprintf(stderr, "inflight: no connection\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long first = window < total ? window : total;
    __atomic_store_n(&sent, first, __ATOMIC_RELAXED); /* echoes may come before the loop ends */
    for (long i = 0; i < first; i++)
        wsn_conn_send_binary(conn, payload, size);
    if (!wait_for(&finished, 300) || failed) {
        fprintf(stderr, "inflight: stopped after %ld echoes\n", received);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.0f\n", (double)received / s);
    wsn_conn_close(conn, 1000, NULL);
    wsn_conn_free(conn);
    wsn_shutdown(500);
    return 0;
}
