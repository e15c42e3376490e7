/* browser_server: the WebSocket server of the real-browser test (tests/browser/run.sh), on the
 * C ABI only.
 *
 *   browser_server PORT ALLOWED_ORIGIN [--takeover] [--window-bits N] [--tls CERT KEY]
 *
 * PORT 0 picks a free port; it listens on 127.0.0.1.
 * - permessage-deflate on (Chromium offers it on every connection): by default without context
 *   takeover either way (the core's default); --takeover lets both sides keep their context
 *   between messages (15-bit windows); --window-bits N (8..15) keeps the contexts too, with both
 *   windows limited to N bits (server_max_window_bits and client_max_window_bits);
 * - --tls: wss with that certificate chain and key (PEM files);
 * - one allowed Origin: a browser page from any other origin is refused with HTTP 403;
 * - the accept hook refuses path /refused by accepting and closing at once with 4001
 *   "not allowed" (what a browser script can read, unlike an HTTP status);
 * - path /deadline gets a session deadline of 1 s: then the server closes it with 4401
 *   "session expired";
 * - every other path is an echo: each message goes back as it came (text as text).
 *
 * It prints one line per fact the test checks, flushed at once:
 *   listening PORT
 *   accept path=P origin=O                   (the accept hook saw a request)
 *   open peer=A extensions="E"               (E: the agreed Sec-WebSocket-Extensions)
 *   close peer=A code=C clean=0|1 reason="R" messages=N bytes=B
 *   send-error peer=A status=S               (an echo that could not be queued)
 * Stops on SIGINT/SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsnative.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* One whole line at a time, whichever callback thread prints it. */
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_lock);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    va_end(ap);
}

/* Per connection: counts for the close line (events of one connection never overlap). */
struct stats {
    unsigned long long messages, bytes;
    char peer[64];
};

static void on_accept(void *user_data, struct wsn_request *req) {
    (void)user_data;
    const char *path = wsn_request_get_path(req);
    const char *origin = wsn_request_get_header(req, "Origin");
    say("accept path=%s origin=%s", path ? path : "?", origin ? origin : "-");
    if (path && strcmp(path, "/refused") == 0) {
        if (wsn_request_accept_and_close(req, 4001, "not allowed") != WSN_OK)
            say("accept_and_close failed: %s", wsn_last_error());
    }
    /* Path /deadline: an echo whose session ends after 1 s with 4401 "session expired". */
    if (path && strcmp(path, "/deadline") == 0) {
        if (wsn_request_set_deadline(req, 1000, 4401, "session expired") != WSN_OK)
            say("set_deadline failed: %s", wsn_last_error());
    }
    /* Any other path: accepted (no call needed). */
}

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    (void)user_data;
    struct stats *st = wsn_conn_get_user_data(conn);
    switch (ev->kind) {
    case WSN_EVENT_OPEN: {
        st = calloc(1, sizeof *st);
        if (st) {
            const char *peer = wsn_conn_get_peer_addr(conn);
            snprintf(st->peer, sizeof st->peer, "%s", peer ? peer : "?");
            wsn_conn_set_user_data(conn, st);
        }
        const char *ext = wsn_conn_get_extensions(conn);
        say("open peer=%s extensions=\"%s\"", st ? st->peer : "?", ext ? ext : "(null)");
        break;
    }
    case WSN_EVENT_MESSAGE: {
        wsn_status s = ev->is_text ? wsn_conn_send_text(conn, (const char *)ev->data, ev->len)
                                   : wsn_conn_send_binary(conn, ev->data, ev->len);
        if (st) {
            st->messages++;
            st->bytes += ev->len;
        }
        if (s != WSN_OK)
            say("send-error peer=%s status=%d %s", st ? st->peer : "?", (int)s, wsn_last_error());
        break;
    }
    case WSN_EVENT_CLOSE:
        say("close peer=%s code=%u clean=%d reason=\"%s\" messages=%llu bytes=%llu error=%s",
            st ? st->peer : "?", (unsigned)ev->close_code, ev->was_clean ? 1 : 0,
            ev->reason ? ev->reason : "", st ? st->messages : 0ULL, st ? st->bytes : 0ULL,
            ev->error ? ev->error : "-");
        free(st);
        wsn_conn_free(conn); /* the server handed us this handle at OPEN */
        break;
    default:
        break;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT ALLOWED_ORIGIN [--takeover] [--window-bits N] [--tls CERT KEY]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    if (port < 0 || port > 65535) {
        fprintf(stderr, "browser_server: bad port %s\n", argv[1]);
        return 2;
    }
    struct wsn_server_options *opts = wsn_server_options_new();
    /* The pages send 4 MiB messages; a browser offers permessage-deflate on every connection. */
    if (wsn_server_options_set_max_message_size(opts, 16u << 20) != WSN_OK
        || wsn_server_options_set_compression(opts, true) != WSN_OK
        || wsn_server_options_add_allowed_origin(opts, argv[2]) != WSN_OK
        || wsn_server_options_set_drain_timeout_ms(opts, 2000) != WSN_OK) {
        fprintf(stderr, "browser_server: options: %s\n", wsn_last_error());
        wsn_server_options_free(opts);
        return 1;
    }
    for (int i = 3; i < argc; i++) {
        wsn_status st;
        if (strcmp(argv[i], "--takeover") == 0) {
            st = wsn_server_options_set_compression_params(opts, false, false, 15, 15);
        } else if (strcmp(argv[i], "--window-bits") == 0 && i + 1 < argc) {
            int bits = atoi(argv[++i]);
            st = wsn_server_options_set_compression_params(opts, false, false, (uint8_t)bits, (uint8_t)bits);
        } else if (strcmp(argv[i], "--tls") == 0 && i + 2 < argc) {
            st = wsn_server_options_set_tls(opts, argv[i + 1], argv[i + 2]);
            i += 2;
        } else {
            fprintf(stderr, "browser_server: unknown or incomplete option %s\n", argv[i]);
            wsn_server_options_free(opts);
            return 2;
        }
        if (st != WSN_OK) {
            fprintf(stderr, "browser_server: %s: %s\n", argv[i], wsn_last_error());
            wsn_server_options_free(opts);
            return 2;
        }
    }
    /* SIGINT/SIGTERM blocked before the library starts its threads (they inherit the mask), and
     * taken by sigwait below: no race between a flag check and pause(). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct wsn_server *server = NULL;
    if (wsn_server_listen("127.0.0.1", (uint16_t)port, opts, on_accept, on_event, NULL, &server) != WSN_OK) {
        fprintf(stderr, "browser_server: %s\n", wsn_last_error());
        wsn_server_options_free(opts);
        return 1;
    }
    wsn_server_options_free(opts);
    say("listening %u", (unsigned)wsn_server_get_port(server));
    int sig = 0;
    sigwait(&sigs, &sig);
    wsn_server_free(server);
    say("stopped");
    return 0;
}
