/* stress.c: many connections, random sends, pauses, closes, aborts and frees from random
 * threads and from inside callbacks, for a bounded time under a watchdog.
 *
 *   stress [connections] [seconds]      (defaults 1000 and 10)
 *
 * Checks: no deadlock (the watchdog ends the process with exit 2), no crash, at most one CLOSE
 * per connection and exactly one for every connection not freed before it closed, no callback
 * that starts after its handle's free returned, every release hook run once, every server
 * connection opened and closed, and the descriptor count back to where it started. Run it
 * under AddressSanitizer too (tests/c/run.sh does). Prints "stress: N passed, M failed". */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include "wsnative.h"

enum { MAX_CONNS = 4096, THREADS = 4 };

struct client {
    wsn_conn *conn;
    atomic_int closes;        /* CLOSE events seen */
    atomic_int opens;
    atomic_int freed;         /* 1 once wsn_conn_free returned (from any thread) */
    atomic_int free_claimed;  /* whoever sets it 0 -> 1 frees the handle */
    atomic_int late_callbacks;/* callbacks that started after the free returned */
    atomic_int hook_runs;     /* release hook */
    atomic_int closed_before_free;
    /* Calls on the handle hold it shared; the free holds it exclusive (after claiming it), so
     * the test never calls a freed handle. Callbacks never wait on it but to free. */
    pthread_rwlock_t lock;
};

static struct client clients[MAX_CONNS];
static int nconns = 1000;
static atomic_int server_opens, server_closes, server_hook_runs, failures;
static atomic_int stop_flag;

static void fail(const char *what, int i) {
    atomic_fetch_add(&failures, 1);
    fprintf(stderr, "stress: FAIL %s (connection %d)\n", what, i);
}

static unsigned next_rand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static int count_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

/* Frees client i once, whoever gets there first. */
static void free_client(int i) {
    struct client *c = &clients[i];
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->free_claimed, &expected, 1)) return;
    pthread_rwlock_wrlock(&c->lock);
    if (atomic_load(&c->closes) > 0) atomic_store(&c->closed_before_free, 1);
    wsn_conn_free(c->conn);
    atomic_store(&c->freed, 1);
    pthread_rwlock_unlock(&c->lock);
}

static void on_release(void *arg) {
    struct client *c = &clients[(intptr_t)arg];
    atomic_fetch_add(&c->hook_runs, 1);
}

static void on_client_event(void *user, wsn_conn *conn, const struct wsn_event *ev) {
    int i = (int)(intptr_t)user;
    struct client *c = &clients[i];
    (void)conn;
    if (atomic_load(&c->freed)) atomic_fetch_add(&c->late_callbacks, 1);
    unsigned seed = (unsigned)(i * 7919 + (int)ev->kind + (int)ev->len);
    switch (ev->kind) {
    case WSN_EVENT_OPEN:
        atomic_fetch_add(&c->opens, 1);
        break;
    case WSN_EVENT_MESSAGE:
        switch (next_rand(&seed) % 512) {
        case 0: wsn_conn_close(conn, 1000, "from a callback"); break;
        case 1: free_client((int)(next_rand(&seed) % (unsigned)nconns)); break; /* any handle */
        case 2: case 3: case 4: wsn_conn_send_text(conn, "reply", 5); break;
        default: break;
        }
        break;
    case WSN_EVENT_CLOSE:
        if (atomic_fetch_add(&c->closes, 1) != 0) fail("a second CLOSE", i);
        if (next_rand(&seed) % 2) free_client(i); /* half are freed in their CLOSE callback */
        break;
    default:
        break;
    }
}

static void on_server_release(void *arg) {
    (void)arg;
    atomic_fetch_add(&server_hook_runs, 1);
}

/* The server echoes, and now and then closes or pauses from inside its callbacks. */
static void on_server_event(void *user, wsn_conn *conn, const struct wsn_event *ev) {
    (void)user;
    switch (ev->kind) {
    case WSN_EVENT_OPEN: atomic_fetch_add(&server_opens, 1); break;
    case WSN_EVENT_MESSAGE:
        if (ev->len % 97 == 3) wsn_conn_close(conn, 4000, "server says bye");
        else if (ev->is_text) wsn_conn_send_text(conn, (const char *)ev->data, ev->len);
        else wsn_conn_send_binary(conn, ev->data, ev->len);
        break;
    case WSN_EVENT_CLOSE:
        atomic_fetch_add(&server_closes, 1);
        wsn_conn_free(conn);
        break;
    default: break;
    }
}

static void *actor(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    static const unsigned char payload[70000];
    while (!atomic_load(&stop_flag)) {
        int i = (int)(next_rand(&seed) % (unsigned)nconns);
        struct client *c = &clients[i];
        unsigned r = next_rand(&seed) % 20000;
        if (r == 0 || (r < 200 && atomic_load(&c->closes) > 0)) {
            free_client(i); /* from a random thread: now and then while open, mostly after CLOSE */
            continue;
        }
        pthread_rwlock_rdlock(&c->lock);
        if (!atomic_load(&c->free_claimed)) {
            switch (r % 5000) {
            case 0: wsn_conn_close(c->conn, 1000, "random close"); break;
            case 1: wsn_conn_abort(c->conn); break;
            case 2: case 3: wsn_conn_set_reading_paused(c->conn, true); break;
            case 4: case 5: case 6: case 7: wsn_conn_set_reading_paused(c->conn, false); break;
            default: {
                size_t len = next_rand(&seed) % 8 == 0 ? 1 + next_rand(&seed) % sizeof payload : 1 + next_rand(&seed) % 200;
                if (len % 2) wsn_conn_send_binary(c->conn, payload, len);
                else wsn_conn_send_text(c->conn, "stress text message", len % 19 + 1);
            }
            }
        }
        pthread_rwlock_unlock(&c->lock);
        if (next_rand(&seed) % 64 == 0) usleep(100);
    }
    return NULL;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "stress: FAIL the watchdog fired: deadlock or hang\nstress: 0 passed, 1 failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(2);
}

int main(int argc, char **argv) {
    if (argc > 1) nconns = atoi(argv[1]);
    int seconds = argc > 2 ? atoi(argv[2]) : 10;
    if (nconns < 1 || nconns > MAX_CONNS || seconds < 1) {
        fprintf(stderr, "usage: stress [connections 1..%d] [seconds]\n", MAX_CONNS);
        return 64;
    }
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(seconds + 120));
    wsn_runtime_set_callback_threads(4);
    int fds0 = count_fds();
    long rss0 = rss_kib();

    struct wsn_server_options *so = wsn_server_options_new();
    wsn_server_options_set_close_timeout_ms(so, 2000);
    wsn_server_options_set_drain_timeout_ms(so, 3000);
    wsn_server *server;
    if (wsn_server_listen("127.0.0.1", 0, so, NULL, on_server_event, NULL, &server) != WSN_OK) {
        fprintf(stderr, "listen: %s\n", wsn_last_error());
        return 1;
    }
    wsn_server_options_free(so);
    wsn_server_set_release_hook(server, on_server_release, NULL);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsn_server_get_port(server));

    struct wsn_client_options *co = wsn_client_options_new();
    wsn_client_options_set_close_timeout_ms(co, 2000);
    for (int i = 0; i < nconns; i++) pthread_rwlock_init(&clients[i].lock, NULL);
    for (int i = 0; i < nconns; i++) {
        if (wsn_connect(url, co, on_client_event, (void *)(intptr_t)i, &clients[i].conn) != WSN_OK) {
            fprintf(stderr, "connect %d: %s\n", i, wsn_last_error());
            return 1;
        }
        wsn_conn_set_release_hook(clients[i].conn, on_release, (void *)(intptr_t)i);
    }
    wsn_client_options_free(co);

    /* Let the connections open before the random actions start (bounded). */
    for (int waited = 0; waited < 2000; waited++) {
        int opened = 0;
        for (int i = 0; i < nconns; i++) opened += atomic_load(&clients[i].opens) + atomic_load(&clients[i].closes) > 0;
        if (opened == nconns) break;
        usleep(10000);
    }
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, actor, (void *)(uintptr_t)(t + 1));
    sleep((unsigned)seconds);
    atomic_store(&stop_flag, 1);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);

    /* Close what is open; wait (bounded) for every CLOSE; free what is left. */
    for (int i = 0; i < nconns; i++) {
        pthread_rwlock_rdlock(&clients[i].lock);
        if (!atomic_load(&clients[i].free_claimed)) wsn_conn_close(clients[i].conn, 1000, "the end");
        pthread_rwlock_unlock(&clients[i].lock);
    }
    for (int waited = 0; waited < 1500; waited++) {
        int open = 0;
        for (int i = 0; i < nconns; i++)
            if (!atomic_load(&clients[i].free_claimed) && atomic_load(&clients[i].closes) == 0) open++;
        if (open == 0) break;
        usleep(10000);
    }
    for (int i = 0; i < nconns; i++) free_client(i);
    wsn_server_free(server);
    wsn_shutdown(2000);

    int passed = 0;
    int closes = 0, opens = 0, late = 0, hooks_wrong = 0, missing = 0;
    for (int i = 0; i < nconns; i++) {
        struct client *c = &clients[i];
        closes += atomic_load(&c->closes);
        opens += atomic_load(&c->opens);
        late += atomic_load(&c->late_callbacks);
        if (atomic_load(&c->hook_runs) != 1) hooks_wrong++;
        if (atomic_load(&c->closed_before_free) && atomic_load(&c->closes) != 1) missing++;
    }
#define CHECK(cond, what) do { if (cond) passed++; else { fail(what, -1); } } while (0)
    CHECK(late == 0, "callbacks started after their handle's free returned");
    CHECK(hooks_wrong == 0, "release hooks that did not run exactly once");
    CHECK(missing == 0, "connections freed after their CLOSE without exactly one CLOSE");
    CHECK(atomic_load(&server_opens) == atomic_load(&server_closes), "server connections without exactly one CLOSE");
    CHECK(atomic_load(&server_hook_runs) == 1, "the server's release hook did not run once");
    int fds1 = count_fds();
    /* Freed memory that the allocator keeps for reuse is not a leak: give it back first. */
    malloc_trim(0);
    long rss1 = rss_kib();
    CHECK(fds1 == fds0, "descriptors not back to their count at the start");
    /* Under AddressSanitizer freed memory is quarantined on purpose: no RSS check there. */
#if !defined(__SANITIZE_ADDRESS__)
    /* Under valgrind (WSN_STRESS_NO_RSS set by tests/sanitizers/run.sh) memory is the tool's. */
    if (!getenv("WSN_STRESS_NO_RSS"))
        CHECK(rss1 - rss0 < 16 * 1024, "resident memory not back near its start (more than 16 MiB above)");
#endif
    fprintf(stderr,
            "stress: %d connections for %d s: %d opens, %d closes (client side), %d/%d server opens/closes; "
            "descriptors %d -> %d; RSS %ld -> %ld KiB\n",
            nconns, seconds, opens, closes, atomic_load(&server_opens), atomic_load(&server_closes), fds0, fds1, rss0, rss1);
    int failed = atomic_load(&failures);
    printf("stress: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
