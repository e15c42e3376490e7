/* The C ABI from C: compiled with -Wall -Wextra -Werror as C11 and as C++, run against the
 * built library. Each check prints on failure; the last line is "c_api: N passed, M failed". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

static int passed, failed;
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            passed++;                                                           \
        } else {                                                                \
            failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

/* What one side of a connection saw. */
struct side {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct wsn_conn *conn;
    int opened, closed, messages, free_on_message;
    unsigned code, http_status;
    bool clean;
    char reason[128], error[512];
    /* per-thread sequence check for the concurrent-send test */
    int next_seq[8], out_of_order;
};

static void side_init(struct side *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
}

static void record(struct side *s, struct wsn_conn *conn, const struct wsn_event *ev) {
    pthread_mutex_lock(&s->lock);
    if (ev->kind == WSN_EVENT_OPEN) {
        s->opened = 1;
        s->conn = conn;
    } else if (ev->kind == WSN_EVENT_MESSAGE) {
        s->messages++;
        int t, i;
        if (ev->is_text && ev->len < 64) {
            char buf[64];
            memcpy(buf, ev->data, ev->len);
            buf[ev->len] = 0;
            if (sscanf(buf, "%d:%d", &t, &i) == 2 && t >= 0 && t < 8) {
                if (i != s->next_seq[t])
                    s->out_of_order++;
                s->next_seq[t] = i + 1;
            }
        }
    } else {
        s->closed = 1;
        s->code = ev->close_code;
        s->clean = ev->was_clean;
        s->http_status = ev->http_status;
        snprintf(s->reason, sizeof s->reason, "%s", ev->reason);
        snprintf(s->error, sizeof s->error, "%s", ev->error ? ev->error : "");
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

static int wait_until(struct side *s, int *value, int at_least) {
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 30;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (*value < at_least && rc == 0)
        rc = pthread_cond_timedwait(&s->changed, &s->lock, &end);
    int ok = *value >= at_least;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* The server side: every new connection takes the next slot of `server_sides`. */
static struct side server_sides[16];
static int server_count;
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_server(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    struct side *s = (struct side *)wsn_conn_get_user_data(conn);
    if (ev->kind == WSN_EVENT_OPEN) {
        pthread_mutex_lock(&server_lock);
        s = &server_sides[server_count++];
        pthread_mutex_unlock(&server_lock);
        wsn_conn_set_user_data(conn, s);
    }
    record(s, conn, ev);
    if (ev->kind == WSN_EVENT_CLOSE)
        wsn_conn_free(conn);
}

static void on_client(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    struct side *s = (struct side *)user_data;
    int free_now = ev->kind == WSN_EVENT_MESSAGE && s->free_on_message;
    record(s, conn, ev);
    if (free_now)
        wsn_conn_free(conn); /* allowed inside the connection's own callback */
}

static void on_accept(void *user_data, struct wsn_request *req) {
    (void)user_data;
    const char *path = wsn_request_get_path(req);
    if (strcmp(path, "/forbidden") == 0)
        wsn_request_reject(req, 403, "no entry");
    else if (strcmp(path, "/kick") == 0)
        wsn_request_accept_and_close(req, 4001, "token expired");
}

static unsigned port;

static struct wsn_conn *connect_to(const char *path, struct side *s) {
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u%s", port, path);
    struct wsn_conn *c = NULL;
    wsn_status st = wsn_connect(url, NULL, on_client, s, &c);
    CHECK(st == WSN_OK, "connect: %s", wsn_last_error());
    return c;
}

struct sender {
    struct wsn_conn *conn;
    int thread;
};

/* G1: bytes lent with wsn_conn_send_nocopy come back once each, unchanged. */
static int lent_released, lent_wrong;
static uint8_t lent_bytes[64 * 1024]; /* as large as the copied ones: 1,000 fit the 64 MiB queue */

static void on_lent_release(void *user_data, const uint8_t *data, size_t len) {
    if (data != lent_bytes || len != sizeof lent_bytes || user_data != (void *)lent_bytes)
        __atomic_add_fetch(&lent_wrong, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&lent_released, 1, __ATOMIC_SEQ_CST);
}

static int wait_released(int want) {
    for (int i = 0; i < 30000 && __atomic_load_n(&lent_released, __ATOMIC_SEQ_CST) < want; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return __atomic_load_n(&lent_released, __ATOMIC_SEQ_CST) == want;
}

static void *send_many(void *arg) {
    struct sender *snd = (struct sender *)arg;
    char msg[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(msg, sizeof msg, "%d:%d", snd->thread, i);
        if (wsn_conn_send_text(snd->conn, msg, (size_t)n) != WSN_OK)
            return (void *)1;
    }
    return NULL;
}

int main(void) {
    CHECK(strcmp(wsn_version(), WSN_VERSION) == 0, "library %s, header %s", wsn_version(), WSN_VERSION);

    struct wsn_server *server = NULL;
    CHECK(wsn_server_listen("127.0.0.1", 0, NULL, on_accept, on_server, NULL, &server) == WSN_OK, "%s", wsn_last_error());
    port = wsn_server_get_port(server);
    CHECK(port > 0, "port");

    /* G3: client-initiated close: both sides clean, same code and reason. */
    struct side a;
    side_init(&a);
    struct wsn_conn *ca = connect_to("/a", &a);
    CHECK(wait_until(&a, &a.opened, 1), "open");
    CHECK(wsn_conn_send_binary(ca, (const uint8_t *)"\x01\x02", 2) == WSN_OK, "send");
    CHECK(wait_until(&server_sides[0], &server_sides[0].messages, 1), "server got the message");
    CHECK(wsn_conn_close(ca, 4000, "client done") == WSN_OK, "close");
    CHECK(wait_until(&a, &a.closed, 1) && wait_until(&server_sides[0], &server_sides[0].closed, 1), "closed");
    CHECK(a.code == 4000 && server_sides[0].code == 4000 && a.clean && server_sides[0].clean, "a: %u/%u", a.code, server_sides[0].code);
    CHECK(strcmp(a.reason, "client done") == 0 && strcmp(server_sides[0].reason, "client done") == 0, "reasons");
    CHECK(wsn_conn_get_state(ca) == WSN_STATE_CLOSED, "state");
    CHECK(wsn_conn_send_text(ca, "x", 1) == WSN_ERR_INVALID_STATE, "send after close");
    CHECK(strlen(wsn_last_error()) > 0, "last error explains");
    CHECK(wsn_conn_close(ca, 1000, NULL) == WSN_OK, "close twice is harmless");
    wsn_conn_free(ca);

    /* G3: server-initiated close. */
    struct side b;
    side_init(&b);
    struct wsn_conn *cb = connect_to("/b", &b);
    CHECK(wait_until(&b, &b.opened, 1) && wait_until(&server_sides[1], &server_sides[1].opened, 1), "open");
    CHECK(wsn_conn_close(server_sides[1].conn, 4002, "server says bye") == WSN_OK, "server close");
    CHECK(wait_until(&b, &b.closed, 1) && wait_until(&server_sides[1], &server_sides[1].closed, 1), "closed");
    CHECK(b.code == 4002 && server_sides[1].code == 4002 && b.clean && server_sides[1].clean, "b: %u/%u", b.code, server_sides[1].code);
    CHECK(strcmp(b.reason, "server says bye") == 0, "reason %s", b.reason);
    wsn_conn_free(cb);

    /* G1: 8 threads x 10,000 sends on one connection: intact, per-thread order. */
    struct side d;
    side_init(&d);
    struct wsn_conn *cd = connect_to("/d", &d);
    CHECK(wait_until(&d, &d.opened, 1) && wait_until(&server_sides[2], &server_sides[2].opened, 1), "open");
    pthread_t threads[8];
    struct sender senders[8];
    for (int t = 0; t < 8; t++) {
        senders[t].conn = cd;
        senders[t].thread = t;
        pthread_create(&threads[t], NULL, send_many, &senders[t]);
    }
    int send_errors = 0;
    for (int t = 0; t < 8; t++) {
        void *r;
        pthread_join(threads[t], &r);
        send_errors += r != NULL;
    }
    CHECK(send_errors == 0, "sends failed");
    CHECK(wait_until(&server_sides[2], &server_sides[2].messages, 80000), "got %d", server_sides[2].messages);
    CHECK(server_sides[2].out_of_order == 0, "%d out of order", server_sides[2].out_of_order);

    /* G3: close while 1,000 messages are queued (100 of them lent): all arrive before the Close. */
    static uint8_t big[64 * 1024];
    for (size_t i = 0; i < sizeof lent_bytes; i++)
        lent_bytes[i] = (uint8_t)(i * 7);
    int lend_errors = 0;
    for (int i = 0; i < 1000; i++) {
        if (i % 10 == 0) {
            uint64_t id = 0;
            lend_errors += wsn_conn_send_nocopy(cd, lent_bytes, sizeof lent_bytes, 0, on_lent_release, lent_bytes, &id) != WSN_OK;
        } else {
            wsn_conn_send_binary(cd, big, sizeof big);
        }
    }
    CHECK(lend_errors == 0, "lending failed: %s", wsn_last_error());
    pthread_mutex_lock(&server_sides[2].lock); /* the callbacks count under it (TSan) */
    int before = server_sides[2].messages;
    pthread_mutex_unlock(&server_sides[2].lock);
    CHECK(wsn_conn_close(cd, 1000, "queued") == WSN_OK, "close");
    CHECK(wait_until(&server_sides[2], &server_sides[2].closed, 1), "server closed");
    CHECK(server_sides[2].messages - before == 1000 || server_sides[2].messages == 81000, "got %d", server_sides[2].messages);
    CHECK(server_sides[2].code == 1000 && server_sides[2].clean, "code %u", server_sides[2].code);
    CHECK(wait_released(100), "%d of 100 lent messages released", __atomic_load_n(&lent_released, __ATOMIC_SEQ_CST));
    CHECK(__atomic_load_n(&lent_wrong, __ATOMIC_SEQ_CST) == 0, "%d releases with other bytes than lent", lent_wrong);
    for (size_t i = 0; i < sizeof lent_bytes; i++)
        if (lent_bytes[i] != (uint8_t)(i * 7)) {
            CHECK(0, "the lent bytes were changed at %zu", i);
            break;
        }
    /* Refused (the connection is closed): released before the call returns. */
    CHECK(wsn_conn_send_nocopy(cd, lent_bytes, sizeof lent_bytes, 0, on_lent_release, lent_bytes, NULL) == WSN_ERR_INVALID_STATE,
          "lend after close");
    CHECK(__atomic_load_n(&lent_released, __ATOMIC_SEQ_CST) == 101, "a refused loan is released at once");
    CHECK(wsn_conn_send_nocopy(cd, lent_bytes, 1, 0, NULL, NULL, NULL) == WSN_ERR_INVALID_ARGUMENT, "NULL release");
    wsn_conn_free(cd);

    /* G10: accept hook: 403 refusal, and accept-then-close with 4001. */
    struct side k1, k2;
    side_init(&k1);
    side_init(&k2);
    struct wsn_conn *ck1 = connect_to("/forbidden", &k1);
    struct wsn_conn *ck2 = connect_to("/kick", &k2);
    CHECK(wait_until(&k1, &k1.closed, 1) && wait_until(&k2, &k2.closed, 1), "closed");
    CHECK(k1.http_status == 403 && strstr(k1.error, "403") != NULL && !k1.opened, "403: %u %s", k1.http_status, k1.error);
    CHECK(k2.code == 4001 && strcmp(k2.reason, "token expired") == 0 && k2.clean, "4001: %u %s", k2.code, k2.reason);
    wsn_conn_free(ck1);
    wsn_conn_free(ck2);

    /* G7: misuse: free from inside on_message; NULL arguments; invalid UTF-8. */
    struct side m;
    side_init(&m);
    m.free_on_message = 1;
    int slot = server_count; /* refused and kicked requests never reach on_server */
    connect_to("/m", &m);
    CHECK(wait_until(&m, &m.opened, 1) && wait_until(&server_sides[slot], &server_sides[slot].opened, 1), "open");
    wsn_conn_send_text(server_sides[slot].conn, "one", 3);
    wsn_conn_send_text(server_sides[slot].conn, "two", 3);
    CHECK(wait_until(&server_sides[slot], &server_sides[slot].closed, 1), "freeing an open connection closes it");
    CHECK(server_sides[slot].code == 1001, "code %u", server_sides[slot].code);
    CHECK(m.messages == 1 && !m.closed, "no callback after free: %d messages, closed %d", m.messages, m.closed);

    struct wsn_conn *none = NULL;
    CHECK(wsn_connect(NULL, NULL, NULL, NULL, &none) == WSN_ERR_INVALID_ARGUMENT && none == NULL, "NULL url");
    CHECK(strstr(wsn_last_error(), "url") != NULL, "%s", wsn_last_error());
    CHECK(wsn_conn_send_text(NULL, "x", 1) == WSN_ERR_INVALID_ARGUMENT, "NULL conn");
    struct wsn_client_options *o = wsn_client_options_new();
    CHECK(wsn_client_options_set_origin(o, "\xff\xfe") == WSN_ERR_INVALID_ARGUMENT, "bad UTF-8");
    CHECK(strstr(wsn_last_error(), "UTF-8") != NULL, "%s", wsn_last_error());
    CHECK(wsn_client_options_add_subprotocol(o, "has space") == WSN_ERR_INVALID_ARGUMENT, "bad token");
    wsn_client_options_free(o);
    wsn_client_options_free(NULL);
    wsn_conn_free(NULL);

    wsn_server_free(server);
    wsn_server_free(NULL);
    printf("c_api: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
