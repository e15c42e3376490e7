"""Flow control and lifetimes that the core owns now (issue 16), seen through Python:
receive budget with acknowledgements, the bounded send queue (WOULD_BLOCK, DRAIN), closing
while reading is paused, server stop/free delivering every CLOSE."""

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import PKG_ROOT, WAIT, wait_until

import wsnative
import wsnative.asyncio as wa

MIB = 1 << 20


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# --------------------------------------------------------------------------- closing while paused


def _chatty(conn):
    """Sends as fast as the core lets it until the connection ends."""
    try:
        while True:
            conn.send(b"c" * 4096)  # waits for DRAIN while the send queue is full
    except wsnative.ConnectionClosed:
        pass


def test_async_with_against_a_chatty_server_closes_cleanly_while_reading_is_paused():
    """Defect 2: with reading paused (max_queue unread), the close must not wait for the close
    timeout (20 s here) but complete at once, cleanly, with 1000."""
    with wsnative.serve("127.0.0.1", 0, _chatty) as server:

        async def main():
            async with wa.connect(f"ws://127.0.0.1:{server.port}/", max_queue=4, close_timeout=20) as ws:
                assert isinstance(await asyncio.wait_for(ws.recv(), WAIT), bytes)
                await asyncio.sleep(0.3)  # the inbox is full: the core stopped reading
                assert len(ws._inbox) <= 6
                t0 = time.monotonic()
            took = time.monotonic() - t0
            return ws.close_info, took

        info, took = run(main())
        assert (info.code, info.clean, info.error) == (1000, True, None)
        assert took < 10, f"the close took {took:.1f} s: it waited for a timeout"


def test_blocking_close_against_a_chatty_server_while_reading_is_paused():
    with wsnative.serve("127.0.0.1", 0, _chatty) as server:
        ws = wsnative.connect(f"ws://127.0.0.1:{server.port}/", max_queue=4, close_timeout=20)
        ws.recv(timeout=WAIT)
        time.sleep(0.3)
        t0 = time.monotonic()
        ws.close()
        assert time.monotonic() - t0 < 10
        assert (ws.close_code, ws.was_clean, ws.close_error) == (1000, True, None)


# --------------------------------------------------------------------------- server stop and free


def test_server_close_delivers_every_server_side_close_from_the_core():
    """Defect 3: close() (stop + free) returns after every connection's CLOSE event came from
    the core: 1001 and clean, never an invented 1006 "the server was freed"."""
    server_conns = []

    def handler(conn):
        server_conns.append(conn)
        for m in conn:
            conn.send(m)

    server = wsnative.serve("127.0.0.1", 0, handler, drain_timeout=5.0)
    clients = [wsnative.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(8)]
    for c in clients:
        c.send("x")
        assert c.recv(timeout=WAIT) == "x"
    assert wait_until(lambda: len(server.connections) == 8)
    server.close()
    infos = [c.close_info for c in server_conns]  # read at once: close() has returned
    assert len(infos) == 8
    for info in infos:
        assert info is not None, "a CLOSE event was not delivered before close() returned"
        assert (info.code, info.clean, info.error) == (1001, True, None), info
    assert not server.connections
    for c in clients:
        assert c.wait_closed(WAIT) and c.close_code == 1001


def test_asyncio_server_close_delivers_every_close_from_the_core():
    async def main():
        conns = []

        async def handler(conn):
            conns.append(conn)
            async for m in conn:
                await conn.send(m)

        server = await wa.serve("127.0.0.1", 0, handler, drain_timeout=5.0)
        clients = [await wa.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(5)]
        for c in clients:
            await c.send("x")
            assert await asyncio.wait_for(c.recv(), WAIT) == "x"
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)
        assert len(conns) == 5
        for c in conns:
            info = c.close_info
            assert info is not None and (info.code, info.clean, info.error) == (1001, True, None), info
        for c in clients:
            assert (await asyncio.wait_for(c.wait_closed(), WAIT)).code == 1001

    run(main())


def test_release_hooks_drop_every_registry_entry():
    """The core's release hooks (and each connection's last event) leave nothing behind."""
    before = set(wsnative._core._targets)

    def handler(conn):
        for m in conn:
            conn.send(m)

    with wsnative.serve("127.0.0.1", 0, handler) as server:
        for _ in range(20):
            with wsnative.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                ws.send("x")
                ws.recv(timeout=WAIT)
    import gc

    gc.collect()
    assert wait_until(lambda: set(wsnative._core._targets) <= before)


# --------------------------------------------------------------------------- send queue: WOULD_BLOCK and DRAIN


class _PausedReader:
    """A wsnative server whose handler reads nothing until `go` is set; with max_queue=1 the
    core stops reading after one message, so the client's send queue fills up."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.got = []
        self.done = threading.Event()
        self.server = wsnative.serve("127.0.0.1", 0, self._handler, max_queue=1)

    def _handler(self, conn):
        self.go.wait(WAIT * 3)
        for m in conn:
            self.got.append(len(m))
        self.done.set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/"

    def close(self) -> None:
        self.go.set()
        self.server.close()


def test_asyncio_send_waits_for_drain_when_the_send_queue_is_full():
    peer = _PausedReader()
    try:

        async def main():
            ws = await wa.connect(peer.url, write_limit=256 << 10)
            n = 48  # 48 MiB: far more than the kernel's socket buffers take

            async def producer():
                for _ in range(n):
                    await ws.send(b"d" * MIB)

            task = asyncio.ensure_future(producer())
            await asyncio.sleep(0.5)
            assert not task.done(), "send() did not wait although the peer reads nothing"
            assert ws.buffered_amount <= (256 << 10) + MIB
            peer.go.set()
            await asyncio.wait_for(task, 30)  # the DRAIN events let it go on
            await ws.close()
            return n

        n = run(main())
        assert peer.done.wait(WAIT)
        assert peer.got == [MIB] * n
    finally:
        peer.close()


def test_blocking_send_raises_would_block_after_its_timeout_and_goes_on_after_drain():
    peer = _PausedReader()
    try:
        ws = wsnative.connect(peer.url, write_limit=256 << 10)
        sent = 0
        with pytest.raises(wsnative.WouldBlock):
            for _ in range(200):
                ws.send(b"d" * MIB, timeout=0.3)
                sent += 1
        assert 0 < sent < 200
        peer.go.set()
        ws.send(b"d" * MIB)  # waits for the drain, however long it takes
        ws.close()
        assert peer.done.wait(WAIT)
        assert peer.got == [MIB] * (sent + 1)
    finally:
        peer.close()


def test_send_from_a_callback_on_a_full_queue_raises_would_block_instead_of_waiting():
    peer = _PausedReader()
    errors = []
    done = threading.Event()
    try:
        ws = wsnative.connect(peer.url, write_limit=256 << 10, on_message=lambda c, m: None)

        def in_callback(conn, message):
            try:
                for _ in range(200):
                    conn.send(b"d" * MIB)
            except wsnative.WouldBlock as e:
                errors.append(e)
            done.set()

        # A message from the peer runs the callback, which sends into the full queue.
        echo = wsnative.serve("127.0.0.1", 0, lambda c: [c.send(m) for m in c])
        try:
            relay = wsnative.connect(f"ws://127.0.0.1:{echo.port}/", on_message=lambda c, m: in_callback(ws, m))
            relay.send("go")
            assert done.wait(WAIT)
            assert len(errors) == 1 and errors[0].error_status == wsnative._native.ERR_WOULD_BLOCK
            relay.close()
        finally:
            echo.close()
        ws.abort()
    finally:
        peer.close()


# --------------------------------------------------------------------------- a flood into a process that does not read

FLOODER = r"""
import socket, base64, hashlib, struct, sys, time
count, size, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
l.settimeout(secs); c, _ = l.accept(); c.settimeout(secs)
head = b""
while b"\r\n\r\n" not in head:
    head += c.recv(4096)
key = [h.split(b":", 1)[1].strip() for h in head.split(b"\r\n") if h.lower().startswith(b"sec-websocket-key:")][0]
acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
frame = struct.pack("!BBQ", 0x82, 127, size) + bytes(size)
end = time.time() + secs
try:
    for i in range(count):
        if time.time() > end: break
        c.sendall(frame)
except Exception:
    pass
"""

APP = {
    "blocking": """
        import sys, time, wsnative
        ws = wsnative.connect(sys.argv[1])
        time.sleep(4)  # reads nothing
        got = ws._queue.qsize()
    """,
    "asyncio": """
        import asyncio, sys, wsnative.asyncio as wa
        async def main():
            ws = await wa.connect(sys.argv[1])
            await asyncio.sleep(4)  # reads nothing
            return len(ws._inbox)
        got = asyncio.run(main())
    """,
}


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize("api", ["blocking", "asyncio"])
def test_a_peer_flooding_60_mib_messages_into_a_process_that_does_not_read_stays_under_200_mib(api, tmp_path):
    flooder = tmp_path / "flooder.py"
    flooder.write_text(FLOODER)
    peer = subprocess.Popen(
        [sys.executable, str(flooder), "300", str(60 * MIB), "20"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(peer.stdout.readline())
        code = textwrap.dedent(APP[api]) + textwrap.dedent("""
            peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
            print(got, peak, flush=True)
            import os; os._exit(0)
        """)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_ROOT, os.environ.get("PYTHONPATH", "")]))
        r = subprocess.run([sys.executable, "-c", code, f"ws://127.0.0.1:{port}/"], capture_output=True, text=True,
                           timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        got, peak_kib = map(int, r.stdout.split())
        print(f"{api}: {got} messages of 60 MiB taken in, peak RSS {peak_kib} KiB")
        assert 1 <= got <= 2, f"{got} messages of 60 MiB were read although none was taken"
        assert peak_kib < 200 * 1024, f"peak resident memory {peak_kib} KiB (limit 200 MiB)"
    finally:
        peer.kill()
        peer.wait(WAIT)
