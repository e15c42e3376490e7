"""The asyncio API: ``connect()`` and ``serve()``.

Events come in batches, on the event loop's own thread: each loop has one native event queue
(poll mode) whose descriptor is watched with ``loop.add_reader``; one read takes up to 256
events of all the loop's connections. Nothing crosses threads, nothing polls on a timer.

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
import weakref
from ctypes import byref, c_void_p
from types import TracebackType
from typing import Any, Awaitable, Callable, Generator, Sequence

from . import _core
from . import _native as N
from ._convert import (
    AcceptResult,
    CertCheck,
    CloseInfo,
    Headers,
    Message,
    Request,
    check,
    client_options,
    closed_exception,
    encode,
    open_failure,
)
from ._core import _targets, report
from .errors import ConnectionClosed, ConnectionClosedOK

__all__ = ["Connection", "Server", "connect", "serve"]

_CLOSED: Any = object()  # the end marker among the messages (Any: it goes where a Message goes)
_BATCH = 256
_poll = N.wsn_queue_poll
_send = N.wsn_conn_send
_DRAIN = N.EVENT_DRAIN


class _LoopQueue:
    """A native event queue read by an event loop when its descriptor is readable."""

    def __init__(self) -> None:
        out = c_void_p()
        check(N.wsn_queue_new(byref(out)))
        self.ptr: int = out.value  # type: ignore[assignment]  # c_void_p.value: not None once wsn_queue_new succeeded
        self.fd = N.wsn_queue_get_fd(self.ptr)
        self._events = (N.wsn_queued_event * _BATCH)()
        self._items = [(e, e.event) for e in self._events]  # views into the array, made once
        self.senders_waiting = 0  # sends waiting for a DRAIN event, on any connection of the queue

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.fd, self.poll)

    def poll(self, rounds: int = 8) -> None:
        # Polls until the queue is empty: a poll also releases the previous batch (the messages
        # were copied), whose messages otherwise stay in their connections' receive budgets
        # although acknowledged, and with no new event the descriptor would not wake us again.
        # At most 8 batches per wake-up; the descriptor stays readable while events wait.
        get = _targets.get
        for _ in range(rounds):
            n = _poll(self.ptr, self._events, _BATCH, 0)
            if not n:
                return
            for qe, ev in self._items[:n]:
                if ev.kind == _DRAIN and not self.senders_waiting:
                    continue  # nobody waits for the send queue to drain
                target = get(qe.user_data)
                if target is not None:
                    try:
                        target._event(qe.conn, ev)
                    except BaseException:
                        report("an event handler")

    def in_use(self) -> bool:
        return any(getattr(t, "_lq", None) is self for t in list(_targets.values()))


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = weakref.WeakKeyDictionary()
_spare: list[_LoopQueue] = []


def _retire(lq: _LoopQueue) -> None:
    """The loop is gone: its queue serves the next loop once nothing uses it."""
    _spare.append(lq)


def _loop_queue(loop: asyncio.AbstractEventLoop) -> _LoopQueue:
    lq = _queues.get(loop)
    if lq is None:
        reuse = [q for q in _spare if not q.in_use()]
        lq = reuse[0] if reuse else _LoopQueue()
        if reuse:
            _spare.remove(lq)
            while N.wsn_queue_poll(lq.ptr, lq._events, _BATCH, 0):  # leftovers of closed connections
                pass
        lq.attach(loop)
        _queues[loop] = lq
        weakref.finalize(loop, _retire, lq)
    return lq


class Connection(_core.NativeConn):
    """A WebSocket connection bound to an event loop. Methods are coroutines except the
    properties; ``send`` waits only while the send queue holds more than ``write_limit`` bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lq: _LoopQueue, max_queue: int = 1024) -> None:
        super().__init__()
        self._loop = loop
        self._lq = lq
        self._inbox: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._unacked = 0  # messages taken from the inbox and not yet acknowledged to the core
        self._ack_every = max(1, max_queue // 4)
        self._open_future: asyncio.Future[bool] = loop.create_future()
        self._closed_future: asyncio.Future[CloseInfo] = loop.create_future()

    # -- events (loop thread) --------------------------------------------------------------------

    def _on_open(self) -> None:
        _resolve(self._open_future, True)

    def _on_message(self, message: Message) -> None:
        self._inbox.append(message)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_drain(self) -> None:
        w = self._drain_waiter
        if w is not None:
            self._drain_waiter = None
            if not w.done():
                w.set_result(None)

    def _on_close(self, info: CloseInfo) -> None:
        self._on_message(_CLOSED)
        self._on_drain()
        _resolve(self._open_future, False)
        _resolve(self._closed_future, info)

    # -- API ---------------------------------------------------------------------------------------

    async def recv(self) -> Message:
        """The next message (str or bytes). Raises ConnectionClosed once the connection ended
        and every message was received. Use ``asyncio.wait_for`` for a timeout."""
        inbox = self._inbox
        while not inbox:
            if self._unacked:  # about to wait: let the library read on
                self._ack(self._unacked)
                self._unacked = 0
            if self._waiter is not None:
                raise RuntimeError("another coroutine is already waiting in recv()")
            w = self._waiter = self._loop.create_future()
            try:
                await w
            finally:
                self._waiter = None
        item: Message = inbox[0]  # or _CLOSED, checked below
        if item is _CLOSED:
            raise closed_exception(self._close_info)
        inbox.popleft()
        self._unacked += 1
        if self._unacked >= self._ack_every:
            self._ack(self._unacked)
            self._unacked = 0
        return item

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> Message:
        """Messages until the connection ends: a normal end (1000/1001) stops the iteration,
        an abnormal one raises ConnectionClosedError."""
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def send(self, message: Message, compress: bool = True) -> None:
        """Queues a message; while the send queue is full (``write_limit``), waits for the
        library's DRAIN event first. Raises ConnectionClosed once the connection is closing.
        ``compress=False``: never compressed (secrets next to attacker-controlled text)."""
        if compress and type(message) is bytes and _send(self._ptr, message, len(message), 0, None) == 0:
            return  # the common case, without a call more
        data, flags = encode(message)
        if not compress:
            flags |= N.SEND_NO_COMPRESS
        while not self._try_send(data, flags):
            w = self._drain_waiter
            if w is None:
                w = self._drain_waiter = self._loop.create_future()
            self._lq.senders_waiting += 1
            try:
                await asyncio.shield(w)
            finally:
                self._lq.senders_waiting -= 1

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes and waits for the closing handshake (the library bounds it: the close
        timeout without progress, 30 s in all)."""
        if self._close_info is None:
            self._start_close(code, reason)
        await asyncio.shield(self._closed_future)

    async def abort(self) -> None:
        """Ends the connection at once, without a closing handshake (1006)."""
        self._start_abort()
        await asyncio.shield(self._closed_future)

    async def wait_closed(self) -> CloseInfo:
        """Waits until the connection ended; returns how."""
        return await asyncio.shield(self._closed_future)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<wsnative.asyncio.Connection {self.remote_address or '?'} {self.state.name}>"


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
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
        write_limit: int = 16 << 20,
        max_queue: int = 1024,
        compression: str | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        trust_cert: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        trust_fingerprint: str | Sequence[str] | None = None,
        cert_check: CertCheck | None = None,
        proxy: str | bool | None = None,
        proxy_headers: Headers | None = None,
    ) -> None:
        self._url = url
        self._max_queue = max_queue
        self._options: dict[str, Any] = dict(
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
            manual_ack=True,
            max_send_queue=write_limit,
            compression=compression,
            client_cert=client_cert,
            client_key=client_key,
            trust_cert=trust_cert,
            trust_fingerprint=trust_fingerprint,
            cert_check=cert_check,
            proxy=proxy,
            proxy_headers=proxy_headers,
        )
        self._conn: Connection | None = None

    async def _create(self) -> Connection:
        loop = asyncio.get_running_loop()
        lq = _loop_queue(loop)
        conn = Connection(loop, lq, self._max_queue)
        opts = client_options(**self._options)
        try:
            conn._connect(self._url, opts, lq.ptr)
        finally:
            N.wsn_client_options_free(opts)
        try:
            await asyncio.shield(conn._open_future)  # the library's open timeouts bound it
        except asyncio.CancelledError:
            conn._start_abort()
            raise
        if not conn._was_open:
            raise open_failure(await conn.wait_closed(), conn._response)
        return conn

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._create().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._create()
        return self._conn

    async def __aexit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._conn is not None
        await self._conn.close()


AsyncHandler = Callable[[Connection], Awaitable[Any]]


class Server(_core.ServerCore):
    """A listening server whose connections run ``await handler(conn)`` as tasks on the loop
    that started it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, handler: AsyncHandler,
                 accept: Callable[[Request], AcceptResult] | None, options: dict[str, Any]) -> None:
        self._loop = loop
        self._lq = _loop_queue(loop)
        self._handler = handler
        self._max_queue = int(options.get("max_queue", 1024))
        self._drain_timeout = float(options.get("drain_timeout", 5.0))
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = loop.create_future()
        super().__init__(host, port, accept, options, self._lq.ptr)

    def _new_connection(self) -> Connection:
        return Connection(self._loop, self._lq, self._max_queue)

    def _connection_opened(self, conn: Connection) -> None:  # type: ignore[override]  # conns from _new_connection
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

    def close(self, drain_timeout: float | None = None) -> None:
        """Starts stopping the server; ``await wait_closed()`` for the end."""
        if getattr(self, "_closing", None) is None:
            self._closing = self._loop.create_task(self._shutdown(drain_timeout))

    async def _shutdown(self, drain_timeout: float | None) -> None:
        await self._loop.run_in_executor(None, self._stop, drain_timeout)
        await self._loop.run_in_executor(None, self._free)
        # Every CLOSE was queued before the free returned: take them, then forget the server
        # (a release hook could run before the loop polled them: it is not set in poll mode).
        self._lq.poll(1 << 30)
        _targets.pop(self._id, None)
        if self._tasks:  # every connection ended: handlers that still run get cancelled
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_timeout)
            for t in pending:
                t.cancel()
        _resolve(self._closed, None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Waits until the server is closed."""
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()


class serve:
    """Starts a server: ``server = await serve(host, port, handler)`` or
    ``async with serve(host, port, handler) as server``. ``handler`` is a coroutine function
    taking the connection; the other arguments are those of ``wsnative.serve``."""

    def __init__(self, host: str, port: int, handler: AsyncHandler, *,
                 accept: Callable[[Request], AcceptResult] | None = None, **options: Any) -> None:
        self._args = (host, port, handler, accept, options)
        self._server: Server | None = None

    async def _create(self) -> Server:
        host, port, handler, accept, options = self._args
        options.setdefault("max_size", 64 << 20)
        options["max_send_queue"] = options.pop("write_limit", 16 << 20)
        return Server(asyncio.get_running_loop(), host, port, handler, accept, options)

    def __await__(self) -> Generator[Any, None, Server]:
        return self._create().__await__()

    async def __aenter__(self) -> Server:
        self._server = await self._create()
        return self._server

    async def __aexit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
