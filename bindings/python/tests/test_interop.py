"""Interop both ways with the `websockets` package as the foreign peer."""

import threading

import pytest
from conftest import WAIT

import wsnative

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect as ws_connect  # noqa: E402
from websockets.sync.server import serve as ws_serve  # noqa: E402

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


@pytest.fixture
def foreign_server():
    """A `websockets` echo server; a message "close:CODE:REASON" makes it close with that."""
    state = {}

    def handler(ws):
        state["subprotocol"] = ws.subprotocol
        try:
            for m in ws:
                if isinstance(m, str) and m.startswith("close:"):
                    _, code, reason = m.split(":", 2)
                    ws.close(int(code), reason)
                    break
                ws.send(m)
        finally:
            state["close"] = (ws.close_code, ws.close_reason)
            state.setdefault("done", threading.Event()).set()

    state["done"] = threading.Event()
    server = ws_serve(handler, "127.0.0.1", 0, max_size=32 << 20, subprotocols=["v2", "v1"])
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.socket.getsockname()[1], state
    finally:
        server.shutdown()
        t.join(WAIT)


def test_wsnative_client_to_websockets_server(foreign_server):
    port, state = foreign_server
    ws = wsnative.connect(f"ws://127.0.0.1:{port}/", subprotocols=["v1", "v2"])
    assert ws.subprotocol == "v2"  # the server's preference (websockets picks by its order)
    for size in SIZES:
        b = bytes(range(256)) * (size // 256) + bytes(size % 256)
        ws.send(b)
        assert ws.recv(timeout=WAIT) == b
        t = ("é" * (size // 2))[: size // 2]
        ws.send(t)
        assert ws.recv(timeout=WAIT) == t
    ws.close(4321, "bye from wsnative")
    assert ws.was_clean and ws.close_code == 4321
    assert state["done"].wait(WAIT)
    assert state["close"] == (4321, "bye from wsnative")


def test_websockets_server_closes_wsnative_client(foreign_server):
    port, _state = foreign_server
    ws = wsnative.connect(f"ws://127.0.0.1:{port}/", subprotocols=["v1"])
    ws.send("close:4999:server ends it")
    with pytest.raises(wsnative.ConnectionClosedError) as e:
        ws.recv(timeout=WAIT)
    assert (e.value.code, e.value.reason, e.value.clean) == (4999, "server ends it", True)


def test_websockets_client_to_wsnative_server():
    seen = {}
    done = threading.Event()

    def handler(conn):
        seen["subprotocol"] = conn.subprotocol
        try:
            for m in conn:
                if m == "close please":
                    conn.close(4444, "as you wish")
                    break
                conn.send(m)
        finally:
            conn.wait_closed(WAIT)
            seen["close"] = (conn.close_code, conn.close_reason, conn.was_clean)
            done.set()

    with wsnative.serve("127.0.0.1", 0, handler, subprotocols=["v1"], max_size=32 << 20) as server:
        u = f"ws://127.0.0.1:{server.port}/"
        with ws_connect(u, subprotocols=["v0", "v1"], max_size=32 << 20, open_timeout=WAIT) as c:
            assert c.subprotocol == "v1"
            for size in SIZES:
                b = bytes(range(256)) * (size // 256) + bytes(size % 256)
                c.send(b)
                assert c.recv(timeout=WAIT) == b
                t = "ü" * (size // 2)
                c.send(t)
                assert c.recv(timeout=WAIT) == t
            c.close(4001, "bye from websockets")
        assert done.wait(WAIT)
        assert seen["close"] == (4001, "bye from websockets", True)
        assert seen["subprotocol"] == "v1"

        done.clear()
        with ws_connect(u, open_timeout=WAIT) as c:
            c.send("close please")
            with pytest.raises(websockets.ConnectionClosedError):
                c.recv(timeout=WAIT)
            assert (c.close_code, c.close_reason) == (4444, "as you wish")
        assert done.wait(WAIT)


def test_websockets_client_sees_refusal_status():
    with wsnative.serve("127.0.0.1", 0, lambda c: None, accept=lambda r: (401, "no token")) as server:
        with pytest.raises(websockets.InvalidStatus) as e:
            ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=WAIT)
        assert e.value.response.status_code == 401


def _payloads():
    """Compressible and incompressible messages, 1 KiB to 4 MiB, text and binary."""
    rnd = __import__("random").Random(7)
    for size in (1 << 10, 64 << 10, 1 << 20, 4 << 20):
        yield ("compressible text " * (size // 18 + 1))[:size]
        yield bytes(rnd.getrandbits(8) for _ in range(min(size, 64 << 10))) * (size // min(size, 64 << 10))


def test_permessage_deflate_wsnative_client_to_websockets_server():
    """`websockets` turns compression on by default; wsnative offers it with compression="deflate"."""
    from websockets.sync.server import serve as ws_serve

    agreed = {}

    def handler(ws):
        agreed["ext"] = [e.name for e in ws.protocol.extensions]
        for m in ws:
            ws.send(m)

    server = ws_serve(handler, "127.0.0.1", 0, max_size=32 << 20)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        port = server.socket.getsockname()[1]
        ws = wsnative.connect(f"ws://127.0.0.1:{port}/", compression="deflate", max_size=32 << 20)
        assert ws.extensions is not None and ws.extensions.startswith("permessage-deflate"), ws.extensions
        for m in _payloads():
            ws.send(m)
            assert ws.recv(timeout=WAIT) == m
        # A secret goes uncompressed on request; it still arrives intact.
        ws.send("secret=" + "x" * 1000, compress=False)
        assert ws.recv(timeout=WAIT) == "secret=" + "x" * 1000
        ws.close()
        assert ws.was_clean
        assert agreed["ext"] == ["permessage-deflate"]
    finally:
        server.shutdown()
        t.join(WAIT)


def test_permessage_deflate_websockets_client_to_wsnative_server():
    exts = {}
    done = threading.Event()

    def handler(conn):
        exts["server"] = conn.extensions
        try:
            for m in conn:
                conn.send(m)
        finally:
            done.set()

    with wsnative.serve("127.0.0.1", 0, handler, compression="deflate", max_size=32 << 20) as server:
        u = f"ws://127.0.0.1:{server.port}/"
        with ws_connect(u, max_size=32 << 20, open_timeout=WAIT) as c:
            assert [e.name for e in c.protocol.extensions] == ["permessage-deflate"]
            for m in _payloads():
                c.send(m)
                assert c.recv(timeout=WAIT) == m
        assert done.wait(WAIT)
    assert exts["server"] and exts["server"].startswith("permessage-deflate"), exts
    # Without compression on the server, the same client gets none.
    with wsnative.serve("127.0.0.1", 0, handler) as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=WAIT) as c:
            assert c.protocol.extensions == []
            c.send("plain")
            assert c.recv(timeout=WAIT) == "plain"
    with pytest.raises(wsnative.InvalidArgument):
        wsnative.connect("ws://127.0.0.1:1/", compression="brotli")
