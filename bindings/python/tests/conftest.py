import base64
import hashlib
import os
import socket
import threading
import time
from typing import Callable, List

import pytest

import wsnative

#: The directory holding the imported `wsnative` package (for subprocesses).
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(wsnative.__file__)))

WAIT = 10.0  # upper bound for any single network wait in the tests


def wait_until(pred: Callable[[], bool], timeout: float = WAIT, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def echo_handler(conn: wsnative.Connection) -> None:
    for message in conn:
        conn.send(message)


@pytest.fixture
def echo_server():
    with wsnative.serve("127.0.0.1", 0, echo_handler, max_size=64 << 20, drain_timeout=2.0) as server:
        yield server


@pytest.fixture
def url(echo_server):
    return f"ws://127.0.0.1:{echo_server.port}/"


class SilentServer:
    """Completes the WebSocket handshake, then reads and discards everything and never answers
    (not even a Close frame): a peer that never finishes the closing handshake."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            c.settimeout(5)
            self.conns.append(c)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            key = ""
            for line in data.decode("latin-1").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n"
            )
            threading.Thread(target=self._drain, args=(c,), daemon=True).start()

    def _drain(self, c: socket.socket) -> None:
        try:
            while not self.stop.is_set():
                try:
                    if not c.recv(65536):
                        return
                except socket.timeout:
                    continue
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(2)


class BlackholeProxy:
    """A TCP proxy to `target_port` that can start dropping all traffic in both directions while
    keeping both sockets open: the peer 'vanishes' without a FIN or RST."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.dropping = threading.Event()
        self.stop = threading.Event()
        self.socks: List[socket.socket] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                a, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            b = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            self.socks += [a, b]
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            if not self.dropping.is_set():
                try:
                    dst.sendall(data)
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
