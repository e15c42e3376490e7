"""Handles and callbacks: the trampolines and the registry behind them, the connection and
server handles with their lifetimes, and the exit hook. Conversions live in ``_convert``, the
API in ``client``, ``server`` and ``asyncio``.

Lifetime rules (see include/wsnative.h):
- One module-level CFUNCTYPE object per callback type, never collected. Native code gets an
  integer id as ``user_data``; ``_targets`` maps it to the Python object (a client
  connection, or a server, whose connections carry their own id as the handle's user data).
- A registry entry is dropped after the object's last event: at its CLOSE event, or by the
  release hook (wsn_conn_set_release_hook / wsn_server_set_release_hook), which the core runs
  once the handle was freed and its last callback ended. So an open connection with no other
  reference keeps running (as a socket in a thread would), and a closed one is collected.
- A connection's native handle is freed when its Python object is collected (or at exit).
  Until then the handle is valid, so calls need no lock: after the close, the core refuses them.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import os
import threading
from ctypes import byref, c_void_p
from typing import Any, Callable

from . import _native as N
from ._convert import (
    CloseInfo,
    Reconnect,
    ReconnectAttempt,
    Request,
    Response,
    State,
    _text,
    apply_accept_result,
    apply_http_result,
    check,
    closed_exception,
    ms,
    read_close,
    read_response,
    server_options,
)
from ._ops import ConnOps, ServerOps
from .errors import ConnectionClosed, WebSocketError, WouldBlock, from_status

log = logging.getLogger("wsnative")

# ---------------------------------------------------------------------------------------------
# Callback trampolines and registry

_targets: dict[int, Any] = {}  # user_data -> NativeConn or ServerCore
_ids = itertools.count(1)
_callback_threads: set[int] = set()  # idents of the native threads that ran callbacks
_get_ident = threading.get_ident
_PIN = os.environ.get("WSNATIVE_PIN_THREAD_STATE", "1") != "0"
_exiting = False


def new_id() -> int:
    return next(_ids)


def _first_callback_on_thread() -> None:
    """Keeps this native thread's Python thread state for its whole life.

    ctypes creates and destroys a thread state around every callback from a thread Python did
    not start; one extra PyGILState_Ensure, never released, makes it persist (cheaper events,
    and threading.local works there).
    """
    _callback_threads.add(_get_ident())
    if _PIN:
        ensure = ctypes.pythonapi.PyGILState_Ensure
        ensure.restype = ctypes.c_int
        ensure.argtypes = []
        ensure()


def report(what: str) -> None:
    """Logs the exception being handled; never raises (it runs on native threads)."""
    try:
        log.exception("wsnative: %s raised an exception (ignored; the connection goes on)", what)
    except BaseException:  # logging torn down at exit
        pass


_ev_at = N.wsn_event.from_address


# ctypes passes a NULL void* as None, but none of these is ever NULL: every user data / release
# argument is an id from _ids (>= 1), and the library gives events and accepts a live connection,
# event and request (include/wsnative.h). Hence int, not int | None.
def _on_event(user_data: int, conn: int, event: int) -> None:
    try:
        if _get_ident() not in _callback_threads:
            _first_callback_on_thread()
        target = _targets.get(user_data)
        if target is not None:
            target._event(conn, _ev_at(event))
    except BaseException:
        report("an event callback")


def _on_accept(user_data: int, request: int) -> None:
    try:
        if _get_ident() not in _callback_threads:
            _first_callback_on_thread()
        target = _targets.get(user_data)
        if target is not None:
            target._on_accept_native(request)
    except BaseException:
        report("an accept callback")


def _on_http(user_data: int, request: int) -> None:
    try:
        if _get_ident() not in _callback_threads:
            _first_callback_on_thread()
        target = _targets.get(user_data)
        if target is not None:
            target._on_http_native(request)
    except BaseException:
        report("an http_handler callback")


def _on_release(arg: int) -> None:
    try:
        _targets.pop(arg, None)
    except BaseException:
        pass


event_cb = N.wsn_event_cb(_on_event)
accept_cb = N.wsn_accept_cb(_on_accept)
release_cb = N.wsn_release_cb(_on_release)
http_cb = N.wsn_http_cb(_on_http)
null_accept = N.wsn_accept_cb()  # NULL: accept every request
# Never collected, not even while modules are torn down at exit.
for _keep in (event_cb, accept_cb, release_cb, http_cb):
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_keep))


def in_callback_thread() -> bool:
    """Whether the calling thread is one of wsnative's callback threads."""
    return _get_ident() in _callback_threads


# ---------------------------------------------------------------------------------------------
# Connections

_send = N.wsn_conn_send
_ack = N.wsn_conn_ack
_WOULD_BLOCK = N.ERR_WOULD_BLOCK
_MESSAGE, _OPEN, _CLOSE, _DRAIN = N.EVENT_MESSAGE, N.EVENT_OPEN, N.EVENT_CLOSE, N.EVENT_DRAIN
_string_at = ctypes.string_at


class NativeConn(ConnOps):
    """The native handle of one connection, and what every connection class shares.

    Subclasses implement ``_on_open()``, ``_on_message(msg)``, ``_on_drain()`` and
    ``_on_close(info)``, called one at a time and in order (on a wsnative callback thread, or
    on the event loop's thread in poll mode).
    """

    _ptr: int | None = None
    _id = 0
    _conn_id = 0

    def __init__(self) -> None:
        self._close_info: CloseInfo | None = None
        self._subprotocol = ""
        self._extensions = ""
        self._peer_addr = ""
        self._was_open = False
        self._server: ServerCore | None = None
        self._response: Response | None = None  # client-reach (issue 13)
        self._reconnect: Reconnect | None = None

    @property
    def conn_id(self) -> int:
        """The connection's id (``wsn_conn_get_id``): unique in the process, never 0; the log
        records about this connection carry it (``record.conn_id``)."""
        return self._conn_id

    # -- events ----------------------------------------------------------------------------------

    def _event(self, conn: int, ev: N.wsn_event) -> None:
        kind = ev.kind
        if kind == _MESSAGE:
            n = ev.len
            data = _string_at(ev.data, n) if n else b""
            self._on_message(data.decode("utf-8") if ev.is_text else data)
        elif kind == _DRAIN:
            self._on_drain()
        elif kind == _OPEN and self._was_open:
            # client-reach (issue 13): reconnected; the hook runs before the queued messages.
            hook = self._reconnect.on_reconnect if self._reconnect is not None else None
            if hook is not None:
                try:
                    hook(self)
                except BaseException:
                    report("on_reconnect")
        elif kind == N.EVENT_RECONNECTING or kind == N.EVENT_RECONNECT_GAVE_UP:
            self._reconnect_event(ev)
        elif kind == _OPEN:
            self._subprotocol = _text(N.wsn_conn_get_subprotocol(conn))
            self._extensions = _text(N.wsn_conn_get_extensions(conn))
            self._peer_addr = _text(N.wsn_conn_get_peer_addr(conn))
            self._response = read_response(conn)
            self._was_open = True
            self._on_open()
        elif kind == _CLOSE:
            info = read_close(ev)
            if not self._was_open:
                self._response = read_response(conn)  # a refusal's status and headers
            self._close_info = info
            _targets.pop(self._id, None)  # the last event: nothing routes here any more
            self._on_close(info)
        # other kinds: added by later versions of the library, not asked for here

    def _on_open(self) -> None:  # pragma: no cover - overridden
        pass

    def _reconnect_event(self, ev: N.wsn_event) -> None:
        r = self._reconnect
        if r is None:
            return
        err = ev.error.decode("utf-8", "replace") if ev.error is not None else None
        try:
            if ev.kind == N.EVENT_RECONNECTING:
                if r.on_attempt is not None:
                    r.on_attempt(self, ReconnectAttempt(ev.attempt, ev.delay_ms / 1000.0, ev.close_code, err))
            elif r.on_give_up is not None:
                r.on_give_up(self, err or "")
        except BaseException:
            report("a reconnect callback")

    def _on_message(self, message: Any) -> None:  # pragma: no cover - overridden
        pass

    def _on_drain(self) -> None:  # pragma: no cover - overridden
        pass

    def _on_close(self, info: CloseInfo) -> None:  # pragma: no cover - overridden
        pass

    # -- lifetime --------------------------------------------------------------------------------

    def _register(self) -> int:
        """Makes this object the target of its events; returns its id (the user data)."""
        self._id = new_id()
        _targets[self._id] = self
        return self._id

    def _adopt(self, ptr: int) -> None:
        """Takes ownership of a native handle; the release hook drops the registry entry."""
        self._ptr = ptr
        self._conn_id = int(N.wsn_conn_get_id(ptr))
        N.wsn_conn_set_release_hook(ptr, release_cb, self._id)

    def _connect(self, url: str, options: int, queue: int | None = None) -> None:
        """Starts a client connection whose events go to this object (through ``queue`` in
        poll mode, else through callbacks)."""
        cid = self._register()
        out = c_void_p()
        if queue is None:
            rc = N.wsn_connect(url.encode("utf-8"), options, event_cb, cid, byref(out))
        else:
            rc = N.wsn_connect_queued(url.encode("utf-8"), options, queue, cid, byref(out))
        if rc:
            _targets.pop(cid, None)
            raise from_status(rc)
        self._adopt(out.value)  # type: ignore[arg-type]  # c_void_p.value: not None once wsn_connect succeeded

    def _take_from(self, pool: int) -> bool:
        """client-reach (issue 13): takes a ready connection of a native pool (its events come
        here, OPEN first); False when none is ready."""
        cid = self._register()
        out = c_void_p()
        rc = N.wsn_pool_take(pool, event_cb, cid, byref(out))
        if rc:
            _targets.pop(cid, None)
            if rc == N.ERR_WOULD_BLOCK_POOL:
                return False
            raise from_status(rc)
        self._adopt(out.value)  # type: ignore[arg-type]  # set once wsn_pool_take succeeded
        return True

    def __del__(self) -> None:
        ptr = self._ptr
        if ptr and not _exiting:
            self._ptr = None
            N.wsn_conn_free(ptr)  # never waits from a callback; an open connection gets 1001

    # -- calls -----------------------------------------------------------------------------------

    def _try_send(self, data: bytes, flags: int) -> bool:
        """Queues a message; False when the send queue is full (WSN_ERR_WOULD_BLOCK)."""
        rc = _send(self._ptr, data, len(data), flags, None)
        if rc == 0:
            return True
        if rc == _WOULD_BLOCK and self._close_info is None:
            return False
        if rc == N.ERR_INVALID_STATE or rc == _WOULD_BLOCK:
            msg = N.last_error()
            if self._close_info is not None:
                raise closed_exception(self._close_info)
            raise ConnectionClosed(None, "", False, msg, rc)
        raise from_status(rc)

    def _ack(self, count: int) -> None:
        _ack(self._ptr, count)

    def _start_close(self, code: int, reason: str) -> None:
        if self._ptr is not None:
            check(N.wsn_conn_close(self._ptr, code, reason.encode("utf-8") if reason else None))

    def _start_abort(self) -> None:
        if self._ptr is not None:
            N.wsn_conn_abort(self._ptr)

    # -- properties ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        return State(N.wsn_conn_get_state(self._ptr)) if self._ptr is not None else State.CLOSED

    @property
    def buffered_amount(self) -> int:
        """Bytes queued by ``send`` and not yet handed to the socket."""
        return N.wsn_conn_get_buffered_amount(self._ptr) if self._ptr is not None else 0

    @property
    def response(self) -> Response | None:
        """The server's answer to the upgrade (status 101 and its headers: a ``Set-Cookie``, a
        header of the server's choosing); None on server connections."""
        return self._response

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or None."""
        return self._subprotocol or None

    @property
    def extensions(self) -> str | None:
        """The negotiated extensions as the handshake said them (for example
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"), or None."""
        return self._extensions or None

    @property
    def remote_address(self) -> str:
        """The peer's address as "ip:port" ("" before the TCP connection exists)."""
        return self._peer_addr

    @property
    def closed(self) -> bool:
        """Whether the connection ended (its close event arrived)."""
        return self._close_info is not None

    @property
    def close_info(self) -> CloseInfo | None:
        """How the connection ended: code, reason, clean, error, error_status, http_status."""
        return self._close_info

    @property
    def close_code(self) -> int | None:
        info = self._close_info
        return info.code if info else None

    @property
    def close_reason(self) -> str | None:
        info = self._close_info
        return info.reason if info else None

    @property
    def close_error(self) -> str | None:
        """The native error text of an abnormal end (None when nothing went wrong)."""
        info = self._close_info
        return info.error if info else None

    @property
    def was_clean(self) -> bool | None:
        info = self._close_info
        return info.clean if info else None


# ---------------------------------------------------------------------------------------------
# Servers

_get_user_data = N.wsn_conn_get_user_data


class ServerCore(ServerOps):
    """A listening native server; subclasses create the connection objects.

    Events of its connections carry the server's id; from its OPEN on, each connection's handle
    carries the connection's own id as user data, which routes the later events.
    """

    _ptr: int | None = None

    def __init__(self, host: str, port: int, accept: Callable[[Request], Any] | None, options: dict[str, Any],
                 queue: int | None = None) -> None:
        self._lock = threading.Lock()  # stop and free, which may come from two threads at once
        self._accept = accept
        self._queued = queue is not None
        options = dict(options)
        self._http: Callable[[Request], Any] | None = options.pop("http_handler", None)
        self._drain_timeout = float(options.get("drain_timeout", 5.0))
        self._id = new_id()
        _targets[self._id] = self
        o = server_options(**options)
        if self._http is not None:
            try:
                check(N.wsn_server_options_set_http_handler(o, http_cb))
            except BaseException:
                N.wsn_server_options_free(o)
                raise
        out = c_void_p()
        hb, acb = host.encode("utf-8"), accept_cb if accept is not None else null_accept
        try:
            if queue is None:
                rc = N.wsn_server_listen(hb, port, o, acb, event_cb, self._id, byref(out))
            else:
                rc = N.wsn_server_listen_queued(hb, port, o, acb, queue, self._id, byref(out))
            if rc:
                raise from_status(rc)
        except BaseException:
            _targets.pop(self._id, None)
            raise
        finally:
            N.wsn_server_options_free(o)
        self._ptr = out.value
        if queue is None:  # in poll mode the events may still wait in the queue: see asyncio
            N.wsn_server_set_release_hook(self._ptr, release_cb, self._id)
        self.port: int = N.wsn_server_get_port(self._ptr)
        self.host = host

    def _new_connection(self) -> NativeConn:  # pragma: no cover - overridden
        raise NotImplementedError

    def _connection_opened(self, conn: NativeConn) -> None:  # pragma: no cover - overridden
        pass

    def _event(self, conn: int, ev: N.wsn_event) -> None:
        if ev.kind == _OPEN:
            c = self._new_connection()
            c._server = self
            N.wsn_conn_set_user_data(conn, c._register())
            c._adopt(conn)  # we own the handle from here on
            c._event(conn, ev)
            self._connection_opened(c)
        else:
            target = _targets.get(_get_user_data(conn))
            if target is not None:
                target._event(conn, ev)

    def _on_accept_native(self, request: int) -> None:
        req = Request(request)
        try:
            result = self._accept(req)  # type: ignore[misc]  # not None: accept_cb is registered only then
            apply_accept_result(req, result)
        except BaseException:
            report("the accept callback")
            if not req._decided:
                try:
                    req.reject(500, "Internal Server Error")
                except WebSocketError:
                    pass
        finally:
            req._ptr = None

    def _on_http_native(self, request: int) -> None:
        req = Request(request)
        try:
            result = self._http(req)  # type: ignore[misc]  # not None: http_cb is set only then
            apply_http_result(req, result)
        except BaseException:
            report("the http_handler")
            if not req._decided:
                try:
                    req.respond(500, "Internal Server Error")
                except WebSocketError:
                    pass
        finally:
            req._ptr = None

    def _conn_object(self, ptr: int) -> Any:
        """The connection object of a native handle of this server (None when gone)."""
        return _targets.get(_get_user_data(ptr))

    def _may_wait_for_open(self) -> bool:
        """Whether an OPEN not yet delivered may be waited for: not on a callback thread, and
        not in poll mode, where the caller's own loop delivers it."""
        return not self._queued and not in_callback_thread()

    @property
    def connections(self) -> list[Any]:
        """The connections open now."""
        return [c for c in list(_targets.values()) if getattr(c, "_server", None) is self]

    def _stop(self, drain_timeout: float | None) -> None:
        """Closes every connection with 1001; from a non-callback thread, returns once every
        CLOSE event was delivered (the core's guarantee)."""
        with self._lock:
            if self._ptr is not None:
                dt = self._drain_timeout if drain_timeout is None else drain_timeout
                N.wsn_server_stop(self._ptr, ms(dt, "drain_timeout", True))

    def _free(self) -> None:
        """Frees the server; its registry entry goes in the release hook."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            N.wsn_server_free(ptr)


# ---------------------------------------------------------------------------------------------
# Interpreter exit: no callback may run into a finalizing interpreter.


def _at_exit() -> None:
    global _exiting
    servers = [t for t in list(_targets.values()) if isinstance(t, ServerCore)]
    for s in servers:
        try:
            s._stop(0.5)
            s._free()
        except BaseException:
            pass
    conns = [t for t in list(_targets.values()) if isinstance(t, NativeConn)]
    for c in conns:
        ptr, c._ptr = c._ptr, None
        if ptr:
            N.wsn_conn_free(ptr)  # open ones are closed with 1001 in the background
    if next(_ids) > 1:
        # Ends wsnative's callback threads while the interpreter still runs: a release hook
        # may still be due on one of them (wsn_conn_free does not wait for it), and a native
        # thread entering a finalizing interpreter is ended by force (an abort, here).
        N.wsn_shutdown(500)
    _exiting = True


atexit.register(_at_exit)


def configure(*, io_threads: int | None = None, callback_threads: int | None = None) -> None:
    """Sets the native runtime's thread counts; call before the first connection or server."""
    if io_threads is not None:
        check(N.wsn_runtime_set_io_threads(io_threads))
    if callback_threads is not None:
        check(N.wsn_runtime_set_callback_threads(callback_threads))


__all__ = ["NativeConn", "ServerCore", "WouldBlock", "configure", "in_callback_thread", "report"]
