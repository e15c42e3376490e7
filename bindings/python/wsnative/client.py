"""The blocking API: ``connect()`` and ``Connection``."""

from __future__ import annotations

import os
import queue
import threading
from types import TracebackType
from typing import Any, Callable, Iterator, Optional, Sequence, Type, Union

from . import _core
from . import _native as N
from ._core import CloseInfo, Headers, Message, closed_exception, open_failure, report
from .errors import ConnectionClosedOK, OpenTimeout

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

    def __init__(
        self,
        *,
        on_message: Optional[OnMessage] = None,
        on_close: Optional[OnClose] = None,
        close_timeout: float = 5.0,
        max_queue: int = 1024,
    ) -> None:
        super().__init__(close_timeout)
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        # Flow control: past max_queue unread messages, the library stops reading (TCP slows
        # the peer down); at half of it, reading resumes.
        self._max_queue = max(1, max_queue)
        self._reading_paused = False
        self._flow_lock = threading.Lock()
        self._opened = threading.Event()
        self._closed = threading.Event()
        self._on_message_cb = on_message
        self._on_close_cb = on_close
        if on_message is None:
            self._on_message = self._enqueue  # type: ignore[method-assign]

    # -- events (callback thread) --------------------------------------------------------------

    def _on_open(self) -> None:
        self._opened.set()

    def _enqueue(self, message: Message) -> None:
        self._queue.put(message)
        if self._queue.qsize() >= self._max_queue:
            self._flow()

    def _flow(self) -> None:
        """Pauses or resumes reading to keep the unread messages near ``max_queue``."""
        with self._flow_lock:
            n = self._queue.qsize()
            pause = n > self._max_queue // 2 if self._reading_paused else n >= self._max_queue
            if pause != self._reading_paused:
                self._reading_paused = pause
                self._set_reading_paused(pause)

    def _on_message(self, message: Message) -> None:
        try:
            self._on_message_cb(self, message)  # type: ignore[misc]
        except BaseException:
            report("on_message")

    def _on_close(self, info: CloseInfo) -> None:
        self._queue.put(_CLOSED)
        self._opened.set()
        cb = self._on_close_cb
        if cb is not None:
            try:
                cb(self, info.code, info.reason)
            except BaseException:
                report("on_close")
        self._closed.set()

    # -- API -------------------------------------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Message:
        """The next message; waits up to ``timeout`` seconds (None: until one comes).

        Raises TimeoutError when none came in time, ConnectionClosed (ConnectionClosedOK or
        ConnectionClosedError) once the connection ended and every message was received.
        """
        try:
            item = self._queue.get(True, timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        if item is _CLOSED:
            self._queue.put(_CLOSED)
            raise closed_exception(self._close_info)
        if self._reading_paused:
            self._flow()
        return item  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Message]:
        """Messages until the connection ends; a normal end (1000/1001) stops the iteration,
        an abnormal one raises ConnectionClosedError."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def close(self, code: int = 1000, reason: str = "", timeout: Optional[float] = None) -> None:
        """Closes the connection and waits for the closing handshake to finish.

        Whatever was sent before is delivered first. Waits at most the close timeout (plus a
        second), then aborts; never hangs. Closing twice or after the peer closed does nothing.
        Called from a wsnative callback (on_message, on_close) it starts the close and returns.
        """
        if self._close_info is None:
            self._start_close(code, reason)
        self._wait_end(timeout)

    def abort(self) -> None:
        """Ends the connection at once, without a closing handshake (close code 1006)."""
        self._start_abort()
        self._wait_end(None)

    def _wait_end(self, timeout: Optional[float]) -> None:
        if self._closed.is_set() or _core.in_callback_thread():
            return
        limit = self._close_timeout + 1.0 if timeout is None else timeout
        if not self._closed.wait(limit):
            self._start_abort()  # the native close timeout should have ended it: make sure
            self._closed.wait(2.0)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Waits until the connection ended; returns whether it did within ``timeout``."""
        return self._closed.wait(timeout)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<wsnative.Connection {self.remote_address or '?'} {self.state.name}>"


def connect(
    url: str,
    *,
    headers: Optional[Headers] = None,
    subprotocols: Optional[Sequence[str]] = None,
    origin: Optional[str] = None,
    ca_file: Union[None, str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]] = None,
    tls_roots: str = "bundled",
    open_timeout: float = 10.0,
    close_timeout: float = 5.0,
    max_size: Optional[int] = 64 << 20,
    ping_interval: Optional[float] = 30.0,
    ping_timeout: Optional[float] = 30.0,
    heartbeat: str = "ping",
    on_message: Optional[OnMessage] = None,
    on_close: Optional[OnClose] = None,
    max_queue: int = 1024,
) -> Connection:
    """Opens a client connection to ``url`` (ws:// or wss://) and waits until it is open.

    ``open_timeout`` bounds DNS plus TCP connect, and then the TLS and WebSocket handshakes.
    ``tls_roots`` is "bundled" (Mozilla roots), "system" or "none" (only ``ca_file``).
    ``ping_interval`` None turns the heartbeat off. ``max_size`` is the largest message accepted
    (a larger one closes the connection with 1009). Past ``max_queue`` unread messages, reading
    pauses (TCP slows the peer down) until half of them were read.

    Raises HandshakeError (with the HTTP status), TLSError, ConnectError, OpenTimeout,
    InvalidArgument.
    """
    conn = Connection(on_message=on_message, on_close=on_close, close_timeout=close_timeout, max_queue=max_queue)
    opts = _core.client_options(
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
    )
    try:
        conn._connect(url, opts)
    finally:
        N.wsn_client_options_free(opts)
    # The native timeouts bound this wait; the margin only guards against a core bug.
    if not conn._opened.wait(2 * open_timeout + 2.0):
        conn._start_abort()
        raise OpenTimeout(f"{url}: not open after {open_timeout} s", N.ERR_TIMEOUT)
    if not conn._was_open:
        raise open_failure(conn._close_info)  # type: ignore[arg-type]
    return conn
