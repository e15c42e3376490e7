/* An echo server with the caps on handshakes in progress from the command line, for
 * tests/defense/run.sh (the defaults are examples/c/echo_server.c's):
 *
 *   server PORT MAX_PENDING MAX_PENDING_PER_IP POLICY     (POLICY: drop-oldest or refuse)
 *
 * Prints "listening" once it listens; stops on SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsnative.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    if (ev->kind == WSN_EVENT_MESSAGE) {
        if (ev->is_text)
            wsn_conn_send_text(conn, (const char *)ev->data, ev->len);
        else
            wsn_conn_send_binary(conn, ev->data, ev->len);
    } else if (ev->kind == WSN_EVENT_CLOSE) {
        wsn_conn_free(conn);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: server PORT MAX_PENDING MAX_PENDING_PER_IP drop-oldest|refuse\n");
        return 2;
    }
    struct wsn_server_options *opts = wsn_server_options_new();
    wsn_server_options_set_max_pending_handshakes(opts, (size_t)atol(argv[2]));
    wsn_server_options_set_max_pending_handshakes_per_ip(opts, (size_t)atol(argv[3]));
    uint32_t policy = strcmp(argv[4], "refuse") == 0 ? WSN_PENDING_HANDSHAKE_REFUSE
                                                     : WSN_PENDING_HANDSHAKE_DROP_OLDEST;
    if (wsn_server_options_set_pending_handshake_policy(opts, policy) != WSN_OK) {
        fprintf(stderr, "server: %s\n", wsn_last_error());
        return 1;
    }
    struct wsn_server *server = NULL;
    if (wsn_server_listen("127.0.0.1", (uint16_t)atoi(argv[1]), opts, NULL, on_event, NULL, &server) != WSN_OK) {
        fprintf(stderr, "server: %s\n", wsn_last_error());
        return 1;
    }
    wsn_server_options_free(opts);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("listening\n");
    fflush(stdout);
    while (!stop)
        pause();
    wsn_server_free(server);
    return 0;
}
