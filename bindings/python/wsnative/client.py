"""The blocking API: ``connect()`` and ``Connection``."""

from __future__ import annotations

import ctypes
import os
import queue
import threading
import time
from types import TracebackType
from typing import Any, Callable, Iterator, Sequence

from . import _core
from . import _native as N
from ._convert import (
    CertCheck,
    CloseInfo,
    Headers,
    Message,
    Reconnect,
    client_options,
    closed_exception,
    encode,
    open_failure,
)
from ._core import report
from .errors import ConnectionClosedOK, InvalidState, WouldBlock, from_status

__all__ = ["Connection", "connect"]

_CLOSED = object()  # the sentinel that follows the last message in the receive queue

OnMessage = Callable[["Connection", Message], Any]
OnClose = Callable[["Connection", int, str], Any]


class Connection(_core.NativeConn):
    """A WebSocket connection (client or server side) with a blocking API.

    Messages are ``str`` (text) or ``bytes`` (binary). ``recv()`` returns them in order; with an
    ``on_message`` callback they go to the callback instead (on a wsnative callback thread) and
    ``recv()`` only reports the end. Every method may be called from any thread.

    The connection lives until it closes, whether or not you keep a reference: end it with
    ``close()`` (or a ``with`` block). Open connections are closed at interpreter exit.
    """

    def __init__(self, *, on_message: OnMessage | None = None, on_close: OnClose | None = None) -> None:
        super().__init__()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._opened = threading.Event()
        self._closed = threading.Event()
        self._on_message_cb = on_message
        self._on_close_cb = on_close
        self._drains = 0  # DRAIN events so far: senders waiting on a full queue watch it change
        self._send_waiters = 0
        self._drain_cond = threading.Condition()
        if on_message is None:
            # Messages go straight into the queue, without a Python call per message in between: the
            # instance attribute replaces the method on purpose (mypy allows neither).
            self._on_message = self._queue.put  # type: ignore[method-assign, assignment]

    # -- events (callback thread) --------------------------------------------------------------

    def _on_open(self) -> None:
        self._opened.set()

    def _on_message(self, message: Message) -> None:
        try:
            self._on_message_cb(self, message)  # type: ignore[misc]  # set: without it put replaces this
        except BaseException:
            report("on_message")

    def _on_drain(self) -> None:
        self._drains += 1
        if self._send_waiters:
            with self._drain_cond:
                self._drain_cond.notify_all()

    def _on_close(self, info: CloseInfo) -> None:
        self._queue.put(_CLOSED)
        self._opened.set()
        with self._drain_cond:
            self._drain_cond.notify_all()
        cb = self._on_close_cb
        if cb is not None:
            try:
                cb(self, info.code, info.reason)
            except BaseException:
                report("on_close")
        self._closed.set()

    # -- API -------------------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; waits up to ``timeout`` seconds (None: until one comes).

        Raises TimeoutError when none came in time, ConnectionClosed (ConnectionClosedOK or
        ConnectionClosedError) once the connection ended and every message was received.
        Taking a message lets the library read on: at most ``max_queue`` wait unread.
        """
        try:
            item: Message = self._queue.get(True, timeout)  # or _CLOSED, checked below
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        if item is _CLOSED:
            self._queue.put(_CLOSED)
            raise closed_exception(self._close_info)
        self._ack(1)
        return item

    def __iter__(self) -> Iterator[Message]:
        """Messages until the connection ends; a normal end (1000/1001) stops the iteration,
        an abnormal one raises ConnectionClosedError."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def send(self, message: Message, timeout: float | None = None, compress: bool = True) -> None:
        """Queues a message (``str``: text, ``bytes``-like: binary) and returns.

        Safe from any thread; messages sent from one thread arrive in order. While the send
        queue holds more than ``write_limit`` bytes, waits until it drained (up to ``timeout``
        seconds; None: as long as it takes), then raises WouldBlock; from a wsnative callback
        thread it raises WouldBlock at once instead of waiting. Raises ConnectionClosed once
        the connection is closing or closed. ``compress=False`` sends the message uncompressed
        even when permessage-deflate was negotiated: for secrets next to text an attacker
        controls (CRIME/BREACH).
        """
        data, flags = encode(message)
        if not compress:
            flags |= N.SEND_NO_COMPRESS
        deadline = None
        while True:
            seen = self._drains
            if self._try_send(data, flags):
                return
            if _core.in_callback_thread():
                raise WouldBlock("the send queue is full (send from a callback does not wait)", N.ERR_WOULD_BLOCK)
            if deadline is None and timeout is not None:
                deadline = time.monotonic() + timeout
            with self._drain_cond:
                self._send_waiters += 1
                try:
                    while self._drains == seen and self._close_info is None:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise WouldBlock(f"the send queue is still full after {timeout} s", N.ERR_WOULD_BLOCK)
                        self._drain_cond.wait(left)
                finally:
                    self._send_waiters -= 1

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Closes the connection and waits for the closing handshake to finish.

        Whatever was sent before is delivered first. The library bounds the wait (the close
        timeout without progress, 30 s in all); ``timeout`` bounds it further. Closing twice or
        after the peer closed does nothing. Called from a wsnative callback (on_message,
        on_close) it starts the close and returns.
        """
        if self._close_info is None:
            self._start_close(code, reason)
        self._wait_end(timeout)

    def abort(self) -> None:
        """Ends the connection at once, without a closing handshake (close code 1006)."""
        self._start_abort()
        self._wait_end(None)

    def _wait_end(self, timeout: float | None) -> None:
        if not _core.in_callback_thread():
            self._closed.wait(timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Waits until the connection ended; returns whether it did within ``timeout``."""
        return self._closed.wait(timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<wsnative.Connection {self.remote_address or '?'} {self.state.name}>"


def connect(
    url: str,
    *,
    headers: Headers | None = None,
    subprotocols: Sequence[str] | None = None,
    origin: str | None = None,
    ca_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    tls_roots: str = "bundled",
    open_timeout: float = 10.0,
    close_timeout: float = 5.0,
    max_size: int | None = 64 << 20,
    ping_interval: float | None = 30.0,
    ping_timeout: float | None = 30.0,
    heartbeat: str = "ping",
    on_message: OnMessage | None = None,
    on_close: OnClose | None = None,
    max_queue: int = 1024,
    write_limit: int | None = None,
    compression: str | None = None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
    trust_cert: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    trust_fingerprint: str | Sequence[str] | None = None,
    cert_check: CertCheck | None = None,
    proxy: str | bool | None = None,
    proxy_headers: Headers | None = None,
    reconnect: Reconnect | None = None,
) -> Connection:
    """Opens a client connection to ``url`` (ws:// or wss://) and waits until it is open.

    ``open_timeout`` bounds DNS plus TCP connect, and then the TLS and WebSocket handshakes.
    ``tls_roots`` is "bundled" (Mozilla roots), "system" or "none" (only ``ca_file``).
    ``ping_interval`` None turns the heartbeat off. ``max_size`` is the largest message accepted
    (a larger one closes the connection with 1009). Past ``max_queue`` unread messages (or
    32 MiB of them), the library stops reading (TCP slows the peer down) until half of them
    were read. ``write_limit``: bytes the send queue may hold before ``send`` waits (None: the
    library's default, 64 MiB). ``compression="deflate"`` offers permessage-deflate (off by
    default: it costs CPU, and secrets sent next to attacker-chosen text must not be compressed:
    send those with ``compress=False`` where the send call offers it).

    Certificates: ``client_cert``/``client_key`` (PEM files) present a client certificate
    (mutual TLS). ``trust_cert`` (PEM files) and ``trust_fingerprint`` ("AB:CD:..." SHA-256, as
    ``openssl x509 -noout -fingerprint -sha256`` prints it) trust exact certificates whoever
    issued them (name and dates are still checked); with ``tls_roots="none"`` they are the only
    ones accepted (pinning). A self-signed certificate given as ``ca_file`` is accepted too.
    ``cert_check(host, chain, default_error) -> bool`` has the last word on the server's
    certificate (``chain``: DER, the server's own first; ``default_error``: None when the
    default validation accepted it, else why not); it runs on a wsnative thread before the
    upgrade request is sent. WARNING: returning True whatever ``default_error`` says turns
    validation off, and anyone on the network path can then read and change the traffic.

    Proxies: ``proxy="http://user:password@host:3128"`` (HTTP CONNECT, Basic credentials) or
    ``"socks5://user:password@host:1080"``; ``proxy=True`` reads ``HTTPS_PROXY``/``HTTP_PROXY``/
    ``ALL_PROXY`` and ``NO_PROXY`` (hosts, domain suffixes, CIDR blocks) as curl does; the
    default None connects directly. ``proxy_headers`` go to the proxy's CONNECT request. A
    refusal raises HandshakeError with the proxy's status (407, 403, 502) in ``status``.

    ``reconnect=wsnative.Reconnect(...)`` reconnects after a drop with the same Connection
    (see ``Reconnect``); ``recv`` and ``send`` go on working across reconnects, ``on_close``
    comes once, at the end.

    Raises HandshakeError (with the HTTP status), TLSError, ConnectError, OpenTimeout,
    InvalidArgument.
    """
    conn = Connection(on_message=on_message, on_close=on_close)
    opts = client_options(
        headers=headers,
        subprotocols=subprotocols,
        origin=origin,
        ca_file=ca_file,
        tls_roots=tls_roots,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
        max_size=max_size,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        heartbeat=heartbeat,
        max_queue=max_queue,
        manual_ack=on_message is None,
        max_send_queue=write_limit,
        compression=compression,
        client_cert=client_cert,
        client_key=client_key,
        trust_cert=trust_cert,
        trust_fingerprint=trust_fingerprint,
        cert_check=cert_check,
        proxy=proxy,
        proxy_headers=proxy_headers,
        reconnect=reconnect,
    )
    conn._reconnect = reconnect
    try:
        conn._connect(url, opts)
    finally:
        N.wsn_client_options_free(opts)
    conn._opened.wait()  # the library's connect and handshake timeouts bound it
    if not conn._was_open:
        raise open_failure(conn._close_info, conn._response)  # type: ignore[arg-type]  # set before CLOSE sets _opened
    return conn


class Pool:
    """Keeps ``size`` connections to ``url`` open and ready (client-reach, issue 13), so that
    ``take()`` hands one out without the connect and upgrade round trips; each one taken is
    replaced in the background. ``options``: the keyword arguments of the connection options
    (headers, subprotocols, ca_file, proxy, client_cert, ...). Close it (or use ``with``) to close
    the connections still waiting.
    """

    def __init__(self, url: str, size: int = 4, **options: Any) -> None:
        options.setdefault("manual_ack", True)
        opts = client_options(**options)
        out = ctypes.c_void_p()
        try:
            rc = N.wsn_pool_new(url.encode("utf-8"), opts, int(size), ctypes.byref(out))
        finally:
            N.wsn_client_options_free(opts)
        if rc:
            raise from_status(rc)
        self._ptr: int | None = out.value

    @property
    def ready(self) -> int:
        """Connections ready now."""
        return int(N.wsn_pool_ready(self._ptr)) if self._ptr else 0

    def take(self) -> Connection | None:
        """An open Connection at once, or None when none is ready (connect directly then)."""
        if not self._ptr:
            raise InvalidState("the pool is closed")
        conn = Connection()
        if not conn._take_from(self._ptr):
            return None
        conn._opened.wait()  # the OPEN event is already on its way
        return conn

    def close(self) -> None:
        """Closes the connections still waiting (1001); taken ones are not affected."""
        ptr, self._ptr = self._ptr, None
        if ptr:
            N.wsn_pool_free(ptr)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
