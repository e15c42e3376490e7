/* client: connects to a WebSocket URL, sends each line of stdin as a text message, prints every
 * message it receives and how the connection closed.
 *
 *   client ws://127.0.0.1:9001/      (end input with Ctrl-D to close with 1000) */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int opened, closed, received;

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    (void)conn;
    pthread_mutex_lock(&lock);
    if (ev->kind == WSN_EVENT_OPEN) {
        opened = 1;
        fprintf(stderr, "connected (subprotocol \"%s\")\n", wsn_conn_get_subprotocol(conn));
    } else if (ev->kind == WSN_EVENT_MESSAGE) {
        received++;
        if (ev->is_text)
            printf("< %.*s\n", (int)ev->len, (const char *)ev->data);
        else
            printf("< [%zu bytes of binary]\n", ev->len);
        fflush(stdout);
    } else {
        closed = 1;
        fprintf(stderr, "closed: code %u, reason \"%s\", %s%s%s\n", ev->close_code, ev->reason,
                ev->was_clean ? "clean" : "not clean", ev->error ? ", error: " : "", ev->error ? ev->error : "");
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* Waits for *flag, at most `seconds`. */
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
    if (argc != 2) {
        fprintf(stderr, "usage: %s ws://host:port/path\n", argv[0]);
        return 2;
    }
    struct wsn_conn *conn = NULL;
    if (wsn_connect(argv[1], NULL, on_event, NULL, &conn) != WSN_OK) {
        fprintf(stderr, "client: %s\n", wsn_last_error());
        return 1;
    }
    wait_for(&opened, 30);
    char line[65536];
    while (!closed && fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\r\n");
        if (wsn_conn_send_text(conn, line, n) != WSN_OK)
            fprintf(stderr, "client: %s\n", wsn_last_error());
    }
    /* Replies may still be on their way: close once none came for 300 ms (at most 3 s). */
    for (int i = 0, last = -1; i < 30 && !closed; i++) {
        pthread_mutex_lock(&lock);
        int now = received;
        pthread_mutex_unlock(&lock);
        if (now == last && i >= 3)
            break;
        last = now;
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    wsn_conn_close(conn, 1000, "bye");
    int ok = wait_for(&closed, 30); /* the close timeout (5 s) ends it well before this */
    wsn_conn_free(conn);
    return ok ? 0 : 1;
}
