"""Reconnect (issue 13) through the Python binding: the same Connection across a server
restart, attempt callbacks, the hook's message before the offline queue, and a 4001 close
that stops it."""

import threading
import time

from conftest import WAIT, wait_until

import wsnative


def _recording_server(port, got, accept=None):
    def handler(conn):
        for m in conn:
            got.append(m)

    deadline = time.monotonic() + WAIT
    while True:
        try:
            return wsnative.serve("127.0.0.1", port, handler, accept=accept, drain_timeout=1.0)
        except wsnative.WebSocketError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_reconnects_to_a_restarted_server_with_the_hook_first():
    got = []
    server = _recording_server(0, got)
    port = server.port
    attempts = []
    reconnected = threading.Event()

    def hook(conn):
        conn.send("auth")
        reconnected.set()

    policy = wsnative.Reconnect(initial_delay=0.05, max_delay=0.3, on_reconnect=hook,
                                on_attempt=lambda c, a: attempts.append(a))
    ws = wsnative.connect(f"ws://127.0.0.1:{port}/", reconnect=policy)
    try:
        ws.send("before")
        assert wait_until(lambda: got == ["before"])
        server.close()
        assert wait_until(lambda: len(attempts) >= 1)
        ws.send("q1")
        ws.send("q2")
        assert wait_until(lambda: len(attempts) >= 3)
        got2 = []
        restarted = _recording_server(port, got2)
        try:
            assert reconnected.wait(WAIT)
            assert wait_until(lambda: len(got2) == 3)
            assert got2 == ["auth", "q1", "q2"]
            assert ws.state == wsnative.State.OPEN
            assert [a.attempt for a in attempts[:3]] == [1, 2, 3]
            assert attempts[0].code == 1001
            assert all(a.delay <= min(0.3, 0.05 * 2 ** (a.attempt - 1)) + 0.001 for a in attempts)
        finally:
            ws.close()
            restarted.close()
    finally:
        server.close()


def test_a_4001_close_stops_reconnecting():
    def accept(request):
        return (4001, "not allowed")

    gave_up = []
    server = wsnative.serve("127.0.0.1", 0, lambda c: None, accept=accept)
    try:
        closed = threading.Event()
        policy = wsnative.Reconnect(initial_delay=0.05, stop_codes=(4001,),
                                    on_give_up=lambda c, why: gave_up.append(why))
        ws = wsnative.connect(f"ws://127.0.0.1:{server.port}/", reconnect=policy,
                              on_close=lambda c, code, reason: closed.set())
        assert closed.wait(WAIT)
        assert gave_up and "4001" in gave_up[0]
        assert ws._close_info is not None and ws._close_info.code == 4001
    finally:
        server.close()
