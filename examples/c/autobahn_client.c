/* autobahn_client: the Autobahn|Testsuite testee client, written against wsnative.h only.
 *
 *   AUTOBAHN_URL=ws://127.0.0.1:9001 AUTOBAHN_AGENT=wsnative autobahn_client
 *
 * Asks the fuzzing server for the number of cases, runs each case by echoing every message
 * back as it came (text as text, binary as binary) until the server closes, then asks for the
 * reports. Failed connections are expected (the fuzzer breaks the protocol on purpose): they
 * are logged and the next case runs. Every wait is bounded, so the client never hangs.
 * Exit status: 0 when the case count was read and the reports were asked for, else 1. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsnative.h"

/* Longest a single case may take: section 9 cases take a few seconds at most. */
#define CASE_TIMEOUT_S 120
/* Autobahn sends messages of up to 16 MiB; allow twice that. */
#define MAX_MESSAGE (32u << 20)

/* One connection's progress, shared between its callback thread and main. */
struct session {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool closed;          /* the CLOSE event arrived */
    bool echo;            /* echo messages back (runCase) */
    bool close_on_open;   /* close with 1000 once open (updateReports) */
    long count;           /* getCaseCount: the number received, -1 before */
    uint16_t close_code;
    char error[256];
};

static void on_event(void *user_data, struct wsn_conn *conn, const struct wsn_event *ev) {
    struct session *s = user_data;
    switch (ev->kind) {
    case WSN_EVENT_OPEN:
        if (s->close_on_open)
            wsn_conn_close(conn, 1000, NULL);
        break;
    case WSN_EVENT_MESSAGE:
        if (s->echo) {
            wsn_status st = ev->is_text ? wsn_conn_send_text(conn, (const char *)ev->data, ev->len)
                                        : wsn_conn_send_binary(conn, ev->data, ev->len);
            (void)st; /* fails only once the connection is closing: nothing to do then */
        } else if (s->count < 0) {
            char text[32];
            size_t n = ev->len < sizeof text - 1 ? ev->len : sizeof text - 1;
            memcpy(text, ev->data, n);
            text[n] = '\0';
            pthread_mutex_lock(&s->lock);
            s->count = strtol(text, NULL, 10);
            pthread_mutex_unlock(&s->lock);
            wsn_conn_close(conn, 1000, NULL);
        }
        break;
    case WSN_EVENT_CLOSE:
        pthread_mutex_lock(&s->lock);
        s->closed = true;
        s->close_code = ev->close_code;
        snprintf(s->error, sizeof s->error, "%s", ev->error ? ev->error : "");
        pthread_cond_signal(&s->changed);
        pthread_mutex_unlock(&s->lock);
        break;
    }
}

/* Connects to `url` and waits for the connection's CLOSE event, at most `timeout_s` seconds
 * (then aborts it). Returns false when the connection could not even start. */
static bool run_session(const char *url, const struct wsn_client_options *opts, struct session *s, int timeout_s) {
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &attr);
    pthread_condattr_destroy(&attr);
    s->closed = false;
    s->count = -1;
    s->close_code = 0;
    s->error[0] = '\0';

    struct wsn_conn *conn = NULL;
    if (wsn_connect(url, opts, on_event, s, &conn) != WSN_OK) {
        fprintf(stderr, "autobahn_client: connect %s: %s\n", url, wsn_last_error());
        pthread_cond_destroy(&s->changed);
        pthread_mutex_destroy(&s->lock);
        return false;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_s;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (!s->closed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->changed, &s->lock, &until);
    if (!s->closed) {
        /* Never hang: abort, then give the CLOSE event a little time to arrive. */
        fprintf(stderr, "autobahn_client: %s: no close after %d s, aborting\n", url, timeout_s);
        pthread_mutex_unlock(&s->lock);
        wsn_conn_abort(conn);
        pthread_mutex_lock(&s->lock);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 5;
        rc = 0;
        while (!s->closed && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&s->changed, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    /* After this returns no callback runs for `conn`, so `s` may be reused. */
    wsn_conn_free(conn);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    return true;
}

int main(void) {
    const char *base = getenv("AUTOBAHN_URL");
    const char *agent = getenv("AUTOBAHN_AGENT");
    if (!base || !*base)
        base = "ws://127.0.0.1:9001";
    if (!agent || !*agent)
        agent = "wsnative";

    struct wsn_client_options *opts = wsn_client_options_new();
    wsn_client_options_set_max_message_size(opts, MAX_MESSAGE);
    /* Offer permessage-deflate (sections 12 and 13 test it). */
    wsn_client_options_set_compression(opts, true);

    char url[1024];
    struct session s;
    memset(&s, 0, sizeof s);

    snprintf(url, sizeof url, "%s/getCaseCount", base);
    if (!run_session(url, opts, &s, 30) || s.count < 0) {
        fprintf(stderr, "autobahn_client: could not read the case count from %s (%s)\n", url, s.error);
        wsn_client_options_free(opts);
        return 1;
    }
    long count = s.count;
    printf("autobahn_client: %ld cases\n", count);
    fflush(stdout);

    for (long i = 1; i <= count; i++) {
        snprintf(url, sizeof url, "%s/runCase?case=%ld&agent=%s", base, i, agent);
        memset(&s, 0, sizeof s);
        s.echo = true;
        if (run_session(url, opts, &s, CASE_TIMEOUT_S) && s.error[0])
            printf("autobahn_client: case %ld: closed %u: %s\n", i, s.close_code, s.error);
    }

    snprintf(url, sizeof url, "%s/updateReports?agent=%s", base, agent);
    memset(&s, 0, sizeof s);
    s.close_on_open = true;
    bool ok = run_session(url, opts, &s, 60);
    wsn_client_options_free(opts);
    printf("autobahn_client: done\n");
    return ok ? 0 : 1;
}
