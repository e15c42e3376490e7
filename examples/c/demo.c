/* demo: wsnative's main job in one program.
 *
 * A server and three clients on 127.0.0.1 exchange messages, then close three ways:
 *   1. the client closes (1000),
 *   2. the server closes (4002),
 *   3. the server's accept hook accepts and closes at once with an application code (4001),
 * and both sides print what they observed: code, reason, and whether the close was clean. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

/* One side of one connection: what it saw, and a condition variable to wait on. */
struct side {
    const char *name;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int open, closed, messages;
    struct wsn_conn *conn;
    unsigned code;
    char reason[128];
    bool clean;
};

static struct side server_sides[3];

static void side_init(struct side *s, const char *name) {
    memset(s, 0, sizeof *s);
    s->name = name;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
}
static int server_conns;
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;

static void observe(struct side *s, struct wsn_conn *conn, const struct wsn_event *ev) {
    pthread_mutex_lock(&s->lock);
    switch (ev->kind) {
    case WSN_EVENT_OPEN:
        s->open = 1;
        s->conn = conn;
        printf("  %-9s open (peer %s)\n", s->name, wsn_conn_get_peer_addr(conn));
        break;
    case WSN_EVENT_MESSAGE:
        s->messages++;
        printf("  %-9s got %s message: %.*s\n", s->name, ev->is_text ? "text" : "binary", (int)ev->len, (const char *)ev->data);
        break;
    case WSN_EVENT_CLOSE:
        s->closed = 1;
        s->code = ev->close_code;
        s->clean = ev->was_clean;
        snprintf(s->reason, sizeof s->reason, "%s", ev->reason);
        printf("  %-9s closed: code %u, reason \"%s\", %s%s%s\n", s->name, ev->close_code, ev->reason,
               ev->was_clean ? "clean" : "NOT clean", ev->error ? ", error: " : "", ev->error ? ev->error : "");
        break;
    }
    fflush(stdout);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* The server's events: each new connection gets the next side; the server echoes in upper case. */
static void on_server_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    struct side *s = wsn_conn_get_user_data(conn);
    if (ev->kind == WSN_EVENT_OPEN) {
        pthread_mutex_lock(&server_lock);
        s = &server_sides[server_conns++ % 3];
        pthread_mutex_unlock(&server_lock);
        wsn_conn_set_user_data(conn, s);
    }
    observe(s, conn, ev);
    if (ev->kind == WSN_EVENT_MESSAGE) {
        char reply[256];
        int n = snprintf(reply, sizeof reply, "server heard: %.*s", (int)ev->len, (const char *)ev->data);
        wsn_conn_send_text(conn, reply, (size_t)n);
    }
    if (ev->kind == WSN_EVENT_CLOSE)
        wsn_conn_free(conn); /* server connections are ours from OPEN on */
}

/* The accept hook: "/banned" is accepted and closed at once with 4001, which a browser can read
 * (unlike an HTTP status). */
static void on_accept(void *user_data, struct wsn_request *req) {
    (void)user_data;
    if (strcmp(wsn_request_get_path(req), "/banned") == 0)
        wsn_request_accept_and_close(req, 4001, "you are banned");
}

static void on_client_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    observe(user_data, conn, ev);
}

/* Waits until *flag is set, at most 10 s. */
static int wait_for(struct side *s, int *flag) {
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 10;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (!*flag && rc == 0)
        rc = pthread_cond_timedwait(&s->changed, &s->lock, &end);
    int ok = *flag;
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        fprintf(stderr, "demo: timed out waiting on %s\n", s->name);
    return ok;
}

int main(void) {
    printf("wsnative %s demo\n", wsn_version());
    struct wsn_server *server = NULL;
    if (wsn_server_listen("127.0.0.1", 0, NULL, on_accept, on_server_event, NULL, &server) != WSN_OK) {
        fprintf(stderr, "demo: cannot listen: %s\n", wsn_last_error());
        return 1;
    }
    unsigned port = wsn_server_get_port(server);
    printf("server listening on ws://127.0.0.1:%u\n", port);

    static struct side clients[3];
    static const char *names[6] = {"client #1", "client #2", "client #3", "server #1", "server #2", "server #3"};
    for (int i = 0; i < 3; i++) {
        side_init(&clients[i], names[i]);
        side_init(&server_sides[i], names[3 + i]);
    }
    const char *paths[3] = {"/chat", "/chat", "/banned"};
    struct wsn_conn *conns[3];
    int failures = 0;

    for (int i = 0; i < 2; i++) {
        char url[64];
        snprintf(url, sizeof url, "ws://127.0.0.1:%u%s", port, paths[i]);
        printf("\n%s connects to %s\n", clients[i].name, url);
        if (wsn_connect(url, NULL, on_client_event, &clients[i], &conns[i]) != WSN_OK) {
            fprintf(stderr, "demo: %s\n", wsn_last_error());
            return 1;
        }
        if (!wait_for(&clients[i], &clients[i].open) || !wait_for(&server_sides[i], &server_sides[i].open))
            return 1;
        const char *hello = i == 0 ? "hello from client #1" : "hello from client #2";
        wsn_conn_send_text(conns[i], hello, strlen(hello));
        if (!wait_for(&clients[i], &clients[i].messages))
            return 1;
        if (i == 0) {
            printf("%s closes with 1000 \"done\"\n", clients[i].name);
            wsn_conn_close(conns[i], 1000, "done");
        } else {
            printf("server closes %s with 4002 \"server restarting\"\n", clients[i].name);
            wsn_conn_close(server_sides[i].conn, 4002, "server restarting");
        }
        if (!wait_for(&clients[i], &clients[i].closed) || !wait_for(&server_sides[i], &server_sides[i].closed))
            return 1;
        failures += !(clients[i].code == server_sides[i].code && clients[i].clean && server_sides[i].clean &&
                      strcmp(clients[i].reason, server_sides[i].reason) == 0);
    }

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/banned", port);
    printf("\n%s connects to %s (the accept hook closes it with 4001)\n", clients[2].name, url);
    if (wsn_connect(url, NULL, on_client_event, &clients[2], &conns[2]) != WSN_OK)
        return 1;
    if (!wait_for(&clients[2], &clients[2].closed))
        return 1;
    failures += !(clients[2].code == 4001 && clients[2].clean);

    for (int i = 0; i < 3; i++)
        wsn_conn_free(conns[i]);
    wsn_server_free(server);
    printf("\n%s\n", failures ? "demo: some close was not clean or codes differed" : "demo: every close was clean and both sides agreed");
    return failures ? 1 : 0;
}
