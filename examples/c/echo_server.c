/* echo_server: a wsnative server that sends every message back as it came.
 *
 *   echo_server [PORT]      (default: $PORT, else 9001; listens on 127.0.0.1)
 *
 * Its callback only sends, so it runs inline, on the I/O thread that reads the connection (no
 * thread switch per message); WSN_INLINE=0 in the environment runs it on a callback thread.
 *
 * Used by the conformance run (Autobahn) and the benchmarks. Stops on SIGINT/SIGTERM, closing
 * its connections with 1001. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "wsnative.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    switch (ev->kind) {
    case WSN_EVENT_OPEN:
        break;
    case WSN_EVENT_MESSAGE:
        if (ev->is_text)
            wsn_conn_send_text(conn, (const char *)ev->data, ev->len);
        else
            wsn_conn_send_binary(conn, ev->data, ev->len);
        break;
    case WSN_EVENT_CLOSE:
        wsn_conn_free(conn); /* the server handed us this handle at OPEN */
        break;
    }
}

int main(int argc, char **argv) {
    const char *port_text = argc > 1 ? argv[1] : getenv("PORT");
    int port = port_text ? atoi(port_text) : 9001;
    if (port < 0 || port > 65535) {
        fprintf(stderr, "echo_server: bad port %s\n", port_text);
        return 2;
    }
    struct wsn_server_options *opts = wsn_server_options_new();
    /* Autobahn sends 16 MiB messages; allow them with room to spare. */
    wsn_server_options_set_max_message_size(opts, 32u << 20);
    wsn_server_options_set_drain_timeout_ms(opts, 2000);
    /* Accept permessage-deflate when a client offers it (browsers always do). */
    wsn_server_options_set_compression(opts, true);
    const char *inline_text = getenv("WSN_INLINE");
    wsn_server_options_set_inline_callbacks(opts, !(inline_text && inline_text[0] == '0'));
    struct wsn_server *server = NULL;
    if (wsn_server_listen("127.0.0.1", (uint16_t)port, opts, NULL, on_event, NULL, &server) != WSN_OK) {
        fprintf(stderr, "echo_server: %s\n", wsn_last_error());
        wsn_server_options_free(opts);
        return 1;
    }
    wsn_server_options_free(opts);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("echo_server: listening on ws://127.0.0.1:%u\n", wsn_server_get_port(server));
    fflush(stdout);
    while (!stop)
        pause();
    wsn_server_free(server);
    return 0;
}
