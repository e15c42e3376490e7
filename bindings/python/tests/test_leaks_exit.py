"""Resources stay flat over many connections; interpreter exit with open connections is safe."""

import gc
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import PKG_ROOT, WAIT, wait_until

import wsnative


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_1000_connect_send_close_cycles_leave_fds_and_rss_flat(echo_server):
    url = f"ws://127.0.0.1:{echo_server.port}/"
    payload = b"p" * 1024

    def cycle():
        ws = wsnative.connect(url)
        ws.send(payload)
        assert ws.recv(timeout=WAIT) == payload
        ws.close()
        assert ws.close_code == 1000

    for _ in range(150):  # warm up: threads, allocator arenas, caches
        cycle()
    assert wait_until(lambda: not echo_server.connections)
    gc.collect()
    fds0, rss0 = _fds(), _rss_kib()
    for _ in range(1000):
        cycle()
    assert wait_until(lambda: not echo_server.connections)
    gc.collect()
    assert wait_until(lambda: _fds() <= fds0 + 2, timeout=5)
    fds1, rss1 = _fds(), _rss_kib()
    print(f"fds {fds0} -> {fds1}, RSS {rss0} KiB -> {rss1} KiB")
    assert fds1 <= fds0 + 2
    assert rss1 - rss0 < 6 * 1024, f"RSS grew by {rss1 - rss0} KiB over 1000 cycles"
    targets = list(wsnative._core._targets.values())
    assert not [t for t in targets if isinstance(t, wsnative.Connection) and t._server is None]
    assert len(targets) <= 2  # the server's entry (and at most one in flight)


def _run_script(code: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_exit_with_open_connections_and_running_server():
    r = _run_script(
        """
        import threading, time, wsnative
        def handler(conn):
            for m in conn:
                conn.send(m)
        busy = threading.Event()
        def on_message(conn, m):
            busy.set()
            time.sleep(0.3)  # a callback still running while the interpreter exits
        server = wsnative.serve("127.0.0.1", 0, handler)
        url = f"ws://127.0.0.1:{server.port}/"
        conns = [wsnative.connect(url) for _ in range(5)]
        for c in conns:
            c.send("x" * 1000)
        cb = wsnative.connect(url, on_message=on_message)
        for i in range(50):
            cb.send(str(i))
        busy.wait(5)
        print("exiting", flush=True)
        """
    )
    assert r.returncode == 0, r.stderr
    assert "exiting" in r.stdout
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_exit_peer_sees_going_away(echo_server):
    """A process that exits with a connection open closes it with 1001 (going away)."""
    seen = {}
    import threading

    done = threading.Event()

    def handler(conn):
        try:
            for _ in conn:
                pass
        except wsnative.ConnectionClosed:
            pass
        conn.wait_closed(WAIT)
        seen["code"] = conn.close_code
        done.set()

    with wsnative.serve("127.0.0.1", 0, handler) as server:
        r = _run_script(
            f"""
            import wsnative
            ws = wsnative.connect("ws://127.0.0.1:{server.port}/")
            ws.send("hi")
            """
        )
        assert r.returncode == 0, r.stderr
        assert done.wait(WAIT)
        assert seen["code"] == 1001


def test_exit_with_asyncio_connections_left_open():
    r = _run_script(
        """
        import asyncio, wsnative.asyncio as wa
        async def handler(conn):
            async for m in conn:
                await conn.send(m)
        async def main():
            server = await wa.serve("127.0.0.1", 0, handler)
            ws = await wa.connect(f"ws://127.0.0.1:{server.port}/")
            await ws.send("x")
            print(await ws.recv(), flush=True)
            # no close: the loop ends with the connection and server open
        asyncio.run(main())
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "x"
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_exit_right_after_closing_never_aborts(echo_server):
    """A release hook may still be due on a callback thread after wsn_conn_free returned; the
    exit hook ends those threads before the interpreter finalizes (else: "FATAL: exception not
    rethrown", an abort, in about half of the runs)."""
    for _ in range(8):
        r = _run_script(
            f"""
            import wsnative
            def main():
                with wsnative.connect("ws://127.0.0.1:{echo_server.port}/") as ws:
                    ws.send("x")
                    assert ws.recv(timeout=10) == "x"
            main()  # the connection is collected (and freed) before the exit hook runs
            """
        )
        assert r.returncode == 0, r.stderr
