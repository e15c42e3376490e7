"""The core's pitfall scenarios, replayed through Python."""

import os
import threading
import time

import pytest
from conftest import PKG_ROOT, WAIT, BlackholeProxy, SilentServer

import wsnative


@pytest.mark.parametrize("initiator", ["client", "server"])
def test_close_from_either_side_is_clean_on_both_with_same_code(initiator):
    server_side = {}
    server_done = threading.Event()

    def handler(conn):
        try:
            msg = conn.recv(timeout=WAIT)
            if initiator == "server":
                conn.close(4100, "server says bye")
            else:
                conn.recv(timeout=WAIT)  # ends with ConnectionClosed
        except wsnative.ConnectionClosed:
            pass
        finally:
            conn.wait_closed(WAIT)
            server_side.update(info=conn.close_info, msg=msg)
            server_done.set()

    with wsnative.serve("127.0.0.1", 0, handler) as server:
        ws = wsnative.connect(f"ws://127.0.0.1:{server.port}/")
        ws.send("hello")
        if initiator == "client":
            ws.close(4200, "client says bye")
            code, reason = 4200, "client says bye"
        else:
            assert ws.wait_closed(WAIT)
            code, reason = 4100, "server says bye"
        assert server_done.wait(WAIT)
        for info in (ws.close_info, server_side["info"]):
            assert (info.code, info.reason, info.clean, info.error) == (code, reason, True, None)


def test_1024_messages_of_128k_then_close_all_arrive():
    n, size = 1024, 128 * 1024
    counted = {"n": 0, "bytes": 0, "ok": True}
    done = threading.Event()

    def handler(conn):
        for i, m in enumerate(conn):
            counted["n"] += 1
            counted["bytes"] += len(m)
            if m[:4] != i.to_bytes(4, "big"):
                counted["ok"] = False
        done.set()

    with wsnative.serve("127.0.0.1", 0, handler) as server:
        ws = wsnative.connect(f"ws://127.0.0.1:{server.port}/", close_timeout=30)
        body = b"\xab" * (size - 4)
        t0 = time.monotonic()
        for i in range(n):
            ws.send(i.to_bytes(4, "big") + body)
        ws.close(1000, "all sent")
        assert done.wait(60)
        assert ws.close_info.clean and ws.close_code == 1000
        assert counted == {"n": n, "bytes": n * size, "ok": True}
        assert time.monotonic() - t0 < 60


def test_eight_threads_sending_arrive_intact_and_in_order(url):
    threads_n, per = 8, 500
    ws = wsnative.connect(url)
    start = threading.Barrier(threads_n)

    def sender(t):
        start.wait(WAIT)
        for i in range(per):
            ws.send(f"{t}:{i}:" + "x" * (i % 300))

    ts = [threading.Thread(target=sender, args=(t,)) for t in range(threads_n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT * 3)
    last = {t: -1 for t in range(threads_n)}
    for _ in range(threads_n * per):
        t, i, pad = ws.recv(timeout=WAIT).split(":")
        t, i = int(t), int(i)
        assert i == last[t] + 1 and pad == "x" * (i % 300)
        last[t] = i
    assert all(v == per - 1 for v in last.values())
    ws.close()


def test_vanished_peer_gives_abnormal_close_with_error_not_a_hang(echo_server):
    proxy = BlackholeProxy(echo_server.port)
    try:
        ws = wsnative.connect(f"ws://127.0.0.1:{proxy.port}/", ping_interval=0.3, ping_timeout=0.6)
        ws.send("alive?")
        assert ws.recv(timeout=WAIT) == "alive?"
        proxy.dropping.set()  # from now on nothing gets through, and no FIN either
        t0 = time.monotonic()
        assert ws.wait_closed(WAIT)
        assert time.monotonic() - t0 < 5
        info = ws.close_info
        assert info.code == 1006 and not info.clean and info.error
        assert info.error_status == wsnative._native.ERR_TIMEOUT
        with pytest.raises(wsnative.ConnectionClosedError):
            ws.recv(timeout=WAIT)
    finally:
        proxy.close()


def test_killed_peer_process_gives_abnormal_close(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "peer.py"
    script.write_text(
        "import sys, time, wsnative\n"
        "def h(c):\n"
        "    for m in c: c.send(m)\n"
        "s = wsnative.serve('127.0.0.1', 0, h)\n"
        "print(s.port, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_ROOT, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(p.stdout.readline())
        ws = wsnative.connect(f"ws://127.0.0.1:{port}/")
        ws.send("x")
        assert ws.recv(timeout=WAIT) == "x"
        p.kill()
        assert ws.wait_closed(WAIT)
        assert ws.close_code == 1006 and not ws.was_clean and ws.close_error
    finally:
        p.kill()
        p.wait(WAIT)


def test_peer_that_never_answers_close_is_dropped_after_close_timeout():
    silent = SilentServer()
    try:
        ws = wsnative.connect(f"ws://127.0.0.1:{silent.port}/", close_timeout=0.5)
        ws.send("anyone?")
        t0 = time.monotonic()
        ws.close(1000, "bye")
        took = time.monotonic() - t0
        assert 0.3 < took < 3
        info = ws.close_info
        assert info is not None and not info.clean
        assert info.error  # says the close timed out
    finally:
        silent.close()


def test_close_never_hangs_even_when_called_from_many_threads(url):
    ws = wsnative.connect(url)
    ts = [threading.Thread(target=ws.close, args=(1000, "race")) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
        assert not t.is_alive()
    assert ws.close_code == 1000
