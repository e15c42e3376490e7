/* poll_loop: wsnative in poll mode, driven from one thread with poll(2), no callbacks.
 * A server and a client share one event queue; the client sends three messages, the server
 * echoes them, the client closes, and the loop ends when both sides saw the close. */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "wsnative.h"

#define SERVER ((void *)1)
#define CLIENT ((void *)2)

int main(void) {
    struct wsn_queue *queue;
    struct wsn_server *server;
    struct wsn_conn *client;
    if (wsn_queue_new(&queue) != WSN_OK ||
        wsn_server_listen_queued("127.0.0.1", 0, NULL, NULL, queue, SERVER, &server) != WSN_OK) {
        fprintf(stderr, "poll_loop: %s\n", wsn_last_error());
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsn_server_get_port(server));
    if (wsn_connect_queued(url, NULL, queue, CLIENT, &client) != WSN_OK) {
        fprintf(stderr, "poll_loop: %s\n", wsn_last_error());
        return 1;
    }
    struct pollfd pfd = {.fd = wsn_queue_get_fd(queue), .events = POLLIN};
    int closes = 0, clean = 0, echoes = 0, idle_ms = 0;
    while (closes < 2 && idle_ms < 10000) {
        if (poll(&pfd, 1, 100) <= 0) { /* the loop could watch other descriptors here too */
            idle_ms += 100;
            continue;
        }
        struct wsn_queued_event events[32];
        size_t n = wsn_queue_poll(queue, events, 32, 0);
        for (size_t i = 0; i < n; i++) {
            const struct wsn_event *ev = &events[i].event;
            const char *who = events[i].user_data == SERVER ? "server" : "client";
            if (ev->kind == WSN_EVENT_OPEN) {
                printf("%s: open\n", who);
                if (events[i].user_data == CLIENT)
                    for (int k = 1; k <= 3; k++) {
                        char msg[32];
                        int len = snprintf(msg, sizeof msg, "message %d", k);
                        wsn_conn_send_text(client, msg, (size_t)len);
                    }
            } else if (ev->kind == WSN_EVENT_MESSAGE) {
                printf("%s: got \"%.*s\"\n", who, (int)ev->len, (const char *)ev->data);
                if (events[i].user_data == SERVER)
                    wsn_conn_send_text(events[i].conn, (const char *)ev->data, ev->len);
                else if (++echoes == 3)
                    wsn_conn_close(client, 1000, "all echoed");
            } else {
                printf("%s: closed, code %u, reason \"%s\", %s\n", who, ev->close_code, ev->reason,
                       ev->was_clean ? "clean" : "not clean");
                closes++;
                clean += ev->was_clean;
                if (events[i].user_data == SERVER)
                    wsn_conn_free(events[i].conn); /* server connections are ours from OPEN on */
            }
        }
    }
    wsn_conn_free(client);
    wsn_server_free(server);
    wsn_queue_free(queue);
    return closes == 2 && clean == 2 ? 0 : 1;
}
