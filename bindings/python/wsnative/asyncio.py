"""The asyncio API: ``connect()`` and ``serve()``.

Events arrive on wsnative's callback threads and reach the event loop through
``loop.call_soon_threadsafe``, one wake-up per batch: messages that arrive while the loop is
busy are collected and handed over together.

    async with wsnative.asyncio.connect("ws://127.0.0.1:9001/") as ws:
        await ws.send("hello")
        print(await ws.recv())

    async def echo(conn):
        async for message in conn:
            await conn.send(message)

    async with wsnative.asyncio.serve("127.0.0.1", 9001, echo) as server:
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Callable, Deque, Generator, Optional, Sequence, Set, Type, Union

from . import _core
from . import _native as N
from ._core import AcceptResult, CloseInfo, Headers, Message, Request, closed_exception, open_failure, report
from .errors import ConnectionClosed, ConnectionClosedOK, OpenTimeout

__all__ = ["Connection", "Server", "connect", "serve"]

_CLOSED = object()


class Connection(_core.NativeConn):
    """A WebSocket connection bound to an event loop. Methods are coroutines except the
    properties; ``send`` never blocks the loop (the native side queues the bytes)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        close_timeout: float = 5.0,
        write_limit: int = 16 << 20,
        max_queue: int = 1024,
    ) -> None:
        super().__init__(close_timeout)
        # Flow control: past max_queue unread messages the library stops reading (TCP slows the
        # peer down); at half of it, reading resumes.
        self._max_queue = max(1, max_queue)
        self._reading_paused = False
        self._loop = loop
        self._inbox: Deque[Any] = collections.deque()
        self._inbox_lock = threading.Lock()
        self._wake_pending = False
        self._waiter: Optional[asyncio.Future] = None
        self._open_future: asyncio.Future = loop.create_future()
        self._closed_future: asyncio.Future = loop.create_future()
        self._write_limit = write_limit

    # -- events (callback thread) --------------------------------------------------------------

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _on_open(self) -> None:
        self._post(_resolve, self._open_future, True)

    def _on_message(self, message: Message) -> None:
        with self._inbox_lock:
            self._inbox.append(message)
            if len(self._inbox) >= self._max_queue and not self._reading_paused:
                self._reading_paused = True
                self._set_reading_paused(True)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._post(self._wake)

    def _on_close(self, info: CloseInfo) -> None:
        with self._inbox_lock:
            self._inbox.append(_CLOSED)
            self._wake_pending = True
        self._post(self._wake)
        self._post(_resolve, self._open_future, False)
        self._post(_resolve, self._closed_future, info)

    # -- loop side -------------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._inbox_lock:
            self._wake_pending = False
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def recv(self) -> Message:
        """The next message (str or bytes). Raises ConnectionClosed once the connection ended
        and every message was received. Use ``asyncio.wait_for`` for a timeout."""
        inbox = self._inbox
        while True:
            if inbox:
                item = inbox[0]
                if item is _CLOSED:
                    raise closed_exception(self._close_info)
                message = inbox.popleft()
                if self._reading_paused:
                    with self._inbox_lock:
                        if self._reading_paused and len(inbox) <= self._max_queue // 2:
                            self._reading_paused = False
                            self._set_reading_paused(False)
                return message  # type: ignore[no-any-return]
            if self._waiter is not None:
                raise RuntimeError("another coroutine is already waiting in recv()")
            w = self._loop.create_future()
            self._waiter = w
            try:
                await w
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedOK:
                return

    async def send(self, message: Message) -> None:
        """Queues a message; waits only while more than ``write_limit`` bytes are buffered."""
        _core.NativeConn.send(self, message)
        if self._write_limit and self.buffered_amount > self._write_limit:
            delay = 0.0005
            while self.buffered_amount > self._write_limit and self._close_info is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes and waits for the closing handshake (bounded by the close timeout)."""
        if self._close_info is None:
            self._start_close(code, reason)
        await self._wait_end()

    async def abort(self) -> None:
        """Ends the connection at once, without a closing handshake (1006)."""
        self._start_abort()
        await self._wait_end()

    async def _wait_end(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._closed_future), self._close_timeout + 1.0)
        except asyncio.TimeoutError:
            self._start_abort()
            await asyncio.wait_for(asyncio.shield(self._closed_future), 2.0)

    async def wait_closed(self) -> CloseInfo:
        """Waits until the connection ended; returns how."""
        return await asyncio.shield(self._closed_future)  # type: ignore[no-any-return]

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<wsnative.asyncio.Connection {self.remote_address or '?'} {self.state.name}>"


def _resolve(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class connect:
    """Opens a client connection: ``await connect(url)`` or ``async with connect(url) as ws``.

    Takes the same keyword arguments as ``wsnative.connect`` (but no callbacks).
    """

    def __init__(
        self,
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
        write_limit: int = 16 << 20,
        max_queue: int = 1024,
    ) -> None:
        self._url = url
        self._max_queue = max_queue
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._write_limit = write_limit
        self._options = dict(
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
        self._conn: Optional[Connection] = None

    async def _create(self) -> Connection:
        conn = Connection(asyncio.get_running_loop(), self._close_timeout, self._write_limit, self._max_queue)
        opts = _core.client_options(**self._options)  # type: ignore[arg-type]
        try:
            conn._connect(self._url, opts)
        finally:
            N.wsn_client_options_free(opts)
        try:
            opened = await asyncio.wait_for(asyncio.shield(conn._open_future), 2 * self._open_timeout + 2.0)
        except asyncio.TimeoutError:
            conn._start_abort()
            raise OpenTimeout(f"{self._url}: not open after {self._open_timeout} s", N.ERR_TIMEOUT) from None
        except asyncio.CancelledError:
            conn._start_abort()
            raise
        if not opened and not conn._was_open:
            info = await conn.wait_closed()
            raise open_failure(info)
        return conn

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._create().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._create()
        return self._conn

    async def __aexit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        assert self._conn is not None
        await self._conn.close()


AsyncHandler = Callable[[Connection], Awaitable[Any]]


class Server(_core.ServerCore):
    """A listening server whose connections run ``await handler(conn)`` as tasks on the loop
    that started it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, handler: AsyncHandler,
                 accept: Optional[Callable[[Request], AcceptResult]], options: dict) -> None:
        self._loop = loop
        self._handler = handler
        self._close_timeout = float(options.get("close_timeout", 5.0))
        self._tasks: Set[asyncio.Task] = set()
        self._closed = loop.create_future()
        super().__init__(host, port, accept, options)

    def _new_connection(self) -> Connection:
        return Connection(self._loop, self._close_timeout)

    def _connection_opened(self, conn: _core.NativeConn) -> None:
        try:
            self._loop.call_soon_threadsafe(self._start, conn)
        except RuntimeError:
            conn._start_abort()

    def _start(self, conn: Connection) -> None:
        task = self._loop.create_task(self._run(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: Connection) -> None:
        code, reason = 1000, ""
        try:
            await self._handler(conn)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            code, reason = 1001, "going away"
        except BaseException:
            report("the connection handler")
            code, reason = 1011, "internal error"
        try:
            await conn.close(code, reason)
        except BaseException:
            report("closing after the handler")

    def close(self, drain_timeout: Optional[float] = None) -> None:
        """Starts stopping the server; ``await wait_closed()`` for the end."""
        if getattr(self, "_closing", None) is None:
            self._closing = self._loop.create_task(self._shutdown(drain_timeout))

    async def _shutdown(self, drain_timeout: Optional[float]) -> None:
        await self._loop.run_in_executor(None, self._stop, drain_timeout)
        await self._loop.run_in_executor(None, self._free)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._close_timeout + 1.0)
            for t in pending:
                t.cancel()
        _resolve(self._closed, None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Waits until the server is closed."""
        await self.wait_closed()

    @property
    def connections(self) -> list:
        return list(self._conns.values())

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()
        await self.wait_closed()


class serve:
    """Starts a server: ``server = await serve(host, port, handler)`` or
    ``async with serve(host, port, handler) as server``. ``handler`` is a coroutine function
    taking the connection; the other arguments are those of ``wsnative.serve``."""

    def __init__(self, host: str, port: int, handler: AsyncHandler, *,
                 accept: Optional[Callable[[Request], AcceptResult]] = None, **options: Any) -> None:
        self._args = (host, port, handler, accept, options)
        self._server: Optional[Server] = None

    async def _create(self) -> Server:
        host, port, handler, accept, options = self._args
        options.setdefault("max_size", 64 << 20)
        return Server(asyncio.get_running_loop(), host, port, handler, accept, options)

    def __await__(self) -> Generator[Any, None, Server]:
        return self._create().__await__()

    async def __aenter__(self) -> Server:
        self._server = await self._create()
        return self._server

    async def __aexit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
