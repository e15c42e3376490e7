"""Issue 15 sections 2 and 3.5 through the Python binding: the ``http_handler`` option for plain
HTTP requests, response headers from ``accept``, and the caps on handshakes in progress."""

import asyncio
import socket
import time

import pytest
from conftest import WAIT, echo_handler

import wsnative
import wsnative.asyncio as wsa

UPGRADE = (
    "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def exchange(port: int, request: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(request.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode(errors="replace")
            out += chunk
            if out.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in out:
                return out.decode(errors="replace")


def test_http_handler_answers_plain_requests_and_declines_to_426():
    seen = []

    def http(req: wsnative.Request):
        seen.append((req.method, req.path, req.query, req.header("user-agent")))
        if req.path == "/healthz":
            return 200, {"X-Up": "yes", "Content-Type": "application/json"}, '{"ok": true}'
        if req.path == "/short":
            return 404, "nothing here"
        if req.path == "/raise":
            raise RuntimeError("http handler failure (expected by the test)")
        return None

    with wsnative.serve("127.0.0.1", 0, echo_handler, http_handler=http) as server:
        a = exchange(server.port, "GET /healthz?full=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: lb\r\n\r\n")
        assert a.startswith("HTTP/1.1 200 OK\r\n"), a
        assert "\r\nX-Up: yes\r\n" in a and "\r\nContent-Type: application/json\r\n" in a, a
        assert a.endswith('\r\n\r\n{"ok": true}'), a
        assert seen[0] == ("GET", "/healthz", "full=1", "lb")
        b = exchange(server.port, "GET /short HTTP/1.0\r\n\r\n")
        assert b.startswith("HTTP/1.1 404 Not Found\r\n") and b.endswith("nothing here"), b
        c = exchange(server.port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.startswith("HTTP/1.1 426 "), c
        d = exchange(server.port, "GET /raise HTTP/1.1\r\nHost: x\r\n\r\n")
        assert d.startswith("HTTP/1.1 500 "), d
        # Upgrades still reach the WebSocket side.
        with wsnative.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send("hi")
            assert ws.recv(timeout=WAIT) == "hi"


def test_without_http_handler_plain_requests_get_426():
    with wsnative.serve("127.0.0.1", 0, echo_handler) as server:
        a = exchange(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert a.startswith("HTTP/1.1 426 Upgrade Required\r\n"), a


def test_accept_adds_headers_to_the_101():
    def accept(req: wsnative.Request):
        req.add_response_header("Set-Cookie", "sid=42; HttpOnly")
        with pytest.raises(wsnative.InvalidArgument):
            req.add_response_header("Sec-WebSocket-Accept", "forged")
        with pytest.raises(wsnative.WebSocketError):
            req.respond(200, "not here")  # plain answers belong to http_handler
        return None

    with wsnative.serve("127.0.0.1", 0, echo_handler, accept=accept) as server:
        a = exchange(server.port, UPGRADE)
        assert a.startswith("HTTP/1.1 101 "), a
        assert "\r\nSet-Cookie: sid=42; HttpOnly\r\n" in a, a


def test_asyncio_server_takes_http_handler_too():
    async def main() -> str:
        async def handler(ws: wsa.Connection) -> None:
            async for m in ws:
                await ws.send(m)

        async with wsa.serve("127.0.0.1", 0, handler, http_handler=lambda r: (200, "alive")) as server:
            return await asyncio.get_running_loop().run_in_executor(
                None, exchange, server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

    a = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert a.startswith("HTTP/1.1 200 OK\r\n") and a.endswith("alive"), a


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        while True:
            if not s.recv(256):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_per_address_cap_drops_the_oldest_handshake():
    with pytest.raises(wsnative.InvalidArgument):
        wsnative.serve("127.0.0.1", 0, echo_handler, pending_handshake_policy="sometimes")
    with wsnative.serve("127.0.0.1", 0, echo_handler, max_pending_handshakes_per_ip=2) as server:
        slow = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
            s.sendall(b"G")
            slow.append(s)
        assert closed_by_server(slow[0], WAIT)
        assert not closed_by_server(slow[1], 0.2) and not closed_by_server(slow[2], 0.1)
        t0 = time.monotonic()
        with wsnative.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send("still served")
            assert ws.recv(timeout=WAIT) == "still served"
        print(f"served in {time.monotonic() - t0:.3f} s")
        for s in slow:
            s.close()


def test_refuse_policy_answers_503_at_the_cap():
    with wsnative.serve("127.0.0.1", 0, echo_handler, max_pending_handshakes=1,
                        pending_handshake_policy="refuse") as server:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        s.sendall(b"G")
        a = exchange(server.port, UPGRADE)
        assert a.startswith("HTTP/1.1 503 "), a
        s.close()
