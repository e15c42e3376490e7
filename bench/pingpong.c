/* pingpong: one connection, N round trips of a SIZE-byte binary message, echoed by the server;
 * the next message is sent from the message callback. Prints the mean round trip.
 *   pingpong URL [N=20000] [SIZE=64] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int count, total, opened, finished, failed;

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
        if (++count < total)
            wsn_conn_send_binary(conn, ev->data, ev->len);
        else
            signal_locked(&finished);
    } else {
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
        fprintf(stderr, "usage: pingpong URL [N] [SIZE]\n");
        return 2;
    }
    total = argc > 2 ? atoi(argv[2]) : 20000;
    size_t size = argc > 3 ? (size_t)atoi(argv[3]) : 64;
    struct wsn_conn *conn;
    if (wsn_connect(argv[1], NULL, on_event, NULL, &conn) != WSN_OK) {
        fprintf(stderr, "pingpong: %s\n", wsn_last_error());
        return 1;
    }
    if (!wait_for(&opened, 10) || failed) {
        fprintf(stderr, "pingpong: could not connect\n");
        return 1;
    }
    unsigned char *buf = calloc(1, size ? size : 1);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    wsn_conn_send_binary(conn, buf, size);
    int ok = wait_for(&finished, 120) && !failed;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    if (ok)
        printf("%.1f\n", secs / total * 1e6);
    wsn_conn_close(conn, 1000, NULL);
    wsn_conn_free(conn);
    free(buf);
    return ok ? 0 : 1;
}
