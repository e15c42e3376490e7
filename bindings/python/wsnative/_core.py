"""Shared machinery: the callback trampolines and their registry, option objects, the native
connection handle with its lifetime, the server core, and the exit hook.

Lifetime rules (see include/wsnative.h):
- One module-level CFUNCTYPE object per callback type, never collected. Native code gets an
  integer id as ``user_data``; ``_targets`` maps it to the Python object.
- A connection's native handle is freed by the binding itself, from inside its CLOSE event (the
  last event of every connection), or at interpreter exit. Python code never frees it, so a
  handle is never used after free: every native call on it happens under the connection's lock,
  which the free takes to clear the pointer.
- Until it closes, a connection is referenced from ``_live``: an open connection with no other
  reference keeps running (as a socket in a thread would), and is closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import os
import threading
from ctypes import byref, c_void_p
from enum import IntEnum
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple, Union

from . import _native as N
from .errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidArgument,
    OpenTimeout,
    TLSError,
    WebSocketError,
    from_status,
)

log = logging.getLogger("wsnative")

Message = Union[str, bytes]
Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


class State(IntEnum):
    """A connection's state (wsn_conn_state)."""

    CONNECTING = N.STATE_CONNECTING
    OPEN = N.STATE_OPEN
    CLOSING = N.STATE_CLOSING
    CLOSED = N.STATE_CLOSED


class CloseInfo(NamedTuple):
    """How a connection ended (its CLOSE event)."""

    code: int
    reason: str
    clean: bool
    error: Optional[str]
    error_status: int
    http_status: int


def closed_exception(info: Optional[CloseInfo]) -> ConnectionClosed:
    if info is None:
        return ConnectionClosed(None, "", False, "the connection is closing")
    cls = ConnectionClosedOK if info.clean and info.code in (1000, 1001) and not info.error else ConnectionClosedError
    return cls(info.code, info.reason, info.clean, info.error, info.error_status)


def open_failure(info: CloseInfo) -> WebSocketError:
    """The exception for a connection that closed before it opened."""
    msg = info.error or f"the connection closed while opening ({info.code})"
    st = info.error_status
    if st == N.ERR_HANDSHAKE or info.http_status:
        return HandshakeError(msg, info.http_status, st or N.ERR_HANDSHAKE)
    if st == N.ERR_TLS:
        return TLSError(msg, st)
    if st == N.ERR_TIMEOUT:
        return OpenTimeout(msg, st)
    if st in (N.ERR_DNS, N.ERR_CONNECT, N.ERR_IO):
        return ConnectError(msg, st)
    if st == N.OK:
        return closed_exception(info)
    return from_status(st, msg)


def check(rc: int) -> None:
    """Raises the exception for a failed native call (call right after it, same thread)."""
    if rc:
        raise from_status(rc)


def ms(seconds: Optional[float], what: str, zero_ok: bool = False) -> int:
    if seconds is None:
        if zero_ok:
            return 0
        raise InvalidArgument(f"{what} must be a number of seconds, not None", N.ERR_INVALID_ARGUMENT)
    v = int(round(float(seconds) * 1000))
    if v < 0 or v > 0xFFFFFFFF:
        raise InvalidArgument(f"{what} is out of range: {seconds!r}", N.ERR_INVALID_ARGUMENT)
    if v == 0 and not zero_ok and seconds:
        v = 1
    return v


def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode("utf-8")


def _text(p: Optional[bytes]) -> str:
    return p.decode("utf-8", "replace") if p else ""


# ---------------------------------------------------------------------------------------------
# Callback trampolines and registry

_targets: Dict[int, Callable[[int, int], None]] = {}  # user_data -> handler(conn_ptr, event_addr)
_accepts: Dict[int, Callable[[int], None]] = {}  # user_data -> handler(request_ptr)
_ids = itertools.count(1)
_callback_threads: Set[int] = set()  # idents of the native threads that ran callbacks
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


def _on_event(user_data: Optional[int], conn: Optional[int], event: Optional[int]) -> None:
    try:
        if _get_ident() not in _callback_threads:
            _first_callback_on_thread()
        target = _targets.get(user_data)  # type: ignore[arg-type]
        if target is not None:
            target(conn, event)  # type: ignore[arg-type]
    except BaseException:
        report("an event callback")


def _on_accept(user_data: Optional[int], request: Optional[int]) -> None:
    try:
        if _get_ident() not in _callback_threads:
            _first_callback_on_thread()
        target = _accepts.get(user_data)  # type: ignore[arg-type]
        if target is not None:
            target(request)  # type: ignore[arg-type]
    except BaseException:
        report("an accept callback")


event_cb = N.wsn_event_cb(_on_event)
accept_cb = N.wsn_accept_cb(_on_accept)
_null_accept = N.wsn_accept_cb()  # NULL: accept every request
# Never collected, not even while modules are torn down at exit.
for _keep in (event_cb, accept_cb):
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_keep))


def in_callback_thread() -> bool:
    """Whether the calling thread is one of wsnative's callback threads."""
    return _get_ident() in _callback_threads


_ev_at = N.wsn_event.from_address
_string_at = ctypes.string_at


def read_message(ev: N.wsn_event) -> Message:
    n = ev.len
    data = _string_at(ev.data, n) if n else b""
    return data.decode("utf-8") if ev.is_text else data


def read_close(ev: N.wsn_event) -> CloseInfo:
    err = ev.error
    return CloseInfo(
        ev.close_code,
        _text(ev.reason),
        bool(ev.was_clean),
        err.decode("utf-8", "replace") if err is not None else None,
        ev.error_status,
        ev.http_status,
    )


# ---------------------------------------------------------------------------------------------
# Options


def client_options(
    *,
    headers: Optional[Headers] = None,
    subprotocols: Optional[Sequence[str]] = None,
    origin: Optional[str] = None,
    ca_file: Union[None, str, os.PathLike, Sequence[Union[str, os.PathLike]]] = None,
    tls_roots: str = "bundled",
    open_timeout: Optional[float] = 10.0,
    close_timeout: float = 5.0,
    max_size: Optional[int] = None,
    ping_interval: Optional[float] = 30.0,
    ping_timeout: Optional[float] = 30.0,
    heartbeat: str = "ping",
) -> int:
    """A native wsn_client_options (the caller frees it with wsn_client_options_free)."""
    o = N.wsn_client_options_new()
    try:
        if open_timeout is not None:
            check(N.wsn_client_options_set_connect_timeout_ms(o, ms(open_timeout, "open_timeout")))
            check(N.wsn_client_options_set_handshake_timeout_ms(o, ms(open_timeout, "open_timeout")))
        check(N.wsn_client_options_set_close_timeout_ms(o, ms(close_timeout, "close_timeout")))
        if max_size is not None:
            check(N.wsn_client_options_set_max_message_size(o, int(max_size)))
        check(N.wsn_client_options_set_ping_interval_ms(o, ms(ping_interval, "ping_interval", zero_ok=True)))
        if ping_timeout is not None:
            check(N.wsn_client_options_set_pong_timeout_ms(o, ms(ping_timeout, "ping_timeout")))
        check(N.wsn_client_options_set_heartbeat(o, _heartbeat(heartbeat)))
        if headers:
            items = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in items:
                check(N.wsn_client_options_add_header(o, _b(name), _b(value)))
        for p in subprotocols or ():
            check(N.wsn_client_options_add_subprotocol(o, _b(p)))
        if origin is not None:
            check(N.wsn_client_options_set_origin(o, _b(origin)))
        roots = {"bundled": N.TLS_ROOTS_BUNDLED, "system": N.TLS_ROOTS_SYSTEM, "none": N.TLS_ROOTS_NONE}.get(tls_roots)
        if roots is None:
            raise InvalidArgument(f"tls_roots must be 'bundled', 'system' or 'none', not {tls_roots!r}")
        check(N.wsn_client_options_set_tls_roots(o, roots))
        if ca_file is not None:
            files = [ca_file] if isinstance(ca_file, (str, os.PathLike)) else list(ca_file)
            for f in files:
                check(N.wsn_client_options_add_ca_file(o, os.fsencode(f)))
        return o
    except BaseException:
        N.wsn_client_options_free(o)
        raise


def _heartbeat(kind: str) -> int:
    v = {"ping": N.HEARTBEAT_PING, "pong": N.HEARTBEAT_PONG}.get(kind)
    if v is None:
        raise InvalidArgument(f"heartbeat must be 'ping' or 'pong', not {kind!r}")
    return v


def server_options(
    *,
    subprotocols: Optional[Sequence[str]] = None,
    origins: Optional[Sequence[str]] = None,
    max_connections: int = 0,
    tls_cert: Union[None, str, os.PathLike] = None,
    tls_key: Union[None, str, os.PathLike] = None,
    handshake_timeout: float = 10.0,
    max_header_size: Optional[int] = None,
    close_timeout: float = 5.0,
    drain_timeout: float = 5.0,
    max_size: Optional[int] = None,
    ping_interval: Optional[float] = 30.0,
    ping_timeout: Optional[float] = 30.0,
    heartbeat: str = "ping",
) -> int:
    o = N.wsn_server_options_new()
    try:
        check(N.wsn_server_options_set_handshake_timeout_ms(o, ms(handshake_timeout, "handshake_timeout")))
        if max_header_size is not None:
            check(N.wsn_server_options_set_max_header_size(o, int(max_header_size)))
        check(N.wsn_server_options_set_close_timeout_ms(o, ms(close_timeout, "close_timeout")))
        check(N.wsn_server_options_set_drain_timeout_ms(o, ms(drain_timeout, "drain_timeout", zero_ok=True)))
        if max_size is not None:
            check(N.wsn_server_options_set_max_message_size(o, int(max_size)))
        check(N.wsn_server_options_set_ping_interval_ms(o, ms(ping_interval, "ping_interval", zero_ok=True)))
        if ping_timeout is not None:
            check(N.wsn_server_options_set_pong_timeout_ms(o, ms(ping_timeout, "ping_timeout")))
        check(N.wsn_server_options_set_heartbeat(o, _heartbeat(heartbeat)))
        for p in subprotocols or ():
            check(N.wsn_server_options_add_subprotocol(o, _b(p)))
        for origin in origins or ():
            check(N.wsn_server_options_add_allowed_origin(o, _b(origin)))
        check(N.wsn_server_options_set_max_connections(o, int(max_connections)))
        if (tls_cert is None) != (tls_key is None):
            raise InvalidArgument("tls_cert and tls_key go together", N.ERR_INVALID_ARGUMENT)
        if tls_cert is not None:
            check(N.wsn_server_options_set_tls(o, os.fsencode(tls_cert), os.fsencode(tls_key)))  # type: ignore[arg-type]
        return o
    except BaseException:
        N.wsn_server_options_free(o)
        raise


# ---------------------------------------------------------------------------------------------
# Connections

_live: Set["NativeConn"] = set()  # every connection whose native handle is not freed
_live_servers: Set["ServerCore"] = set()
_live_lock = threading.Lock()

_send_text = N.wsn_conn_send_text
_send_binary = N.wsn_conn_send_binary


class NativeConn:
    """The native handle of one connection, and what every connection class shares.

    Subclasses implement ``_on_open()``, ``_on_message(msg)`` and ``_on_close(info)``, called on
    a wsnative callback thread, one at a time and in order.
    """

    def __init__(self, close_timeout: float = 5.0) -> None:
        self._ptr: Optional[int] = None
        self._lock = threading.Lock()
        self._id = 0
        self._close_info: Optional[CloseInfo] = None
        self._subprotocol = ""
        self._peer_addr = ""
        self._close_timeout = close_timeout
        self._was_open = False

    # -- events (callback thread) --------------------------------------------------------------

    def _on_native_event(self, conn: int, addr: int) -> None:
        """Client connections: the registry target."""
        ev = _ev_at(addr)
        kind = ev.kind
        if kind == N.EVENT_MESSAGE:
            self._on_message(read_message(ev))
        elif kind == N.EVENT_OPEN:
            self._opened_native(conn)
        elif kind == N.EVENT_CLOSE:
            self._closed_native(ev)
        # other kinds: added by later versions of the library, not asked for here

    def _opened_native(self, conn: int) -> None:
        self._subprotocol = _text(N.wsn_conn_get_subprotocol(conn))
        self._peer_addr = _text(N.wsn_conn_get_peer_addr(conn))
        self._was_open = True
        self._on_open()

    def _closed_native(self, ev: Any) -> None:
        info = read_close(ev)
        self._close_info = info
        self._release()
        self._on_close(info)

    def _on_open(self) -> None:  # pragma: no cover - overridden
        pass

    def _on_message(self, message: Message) -> None:  # pragma: no cover - overridden
        pass

    def _on_close(self, info: CloseInfo) -> None:  # pragma: no cover - overridden
        pass

    def _release(self) -> None:
        """Frees the native handle (once); no event follows."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if self._id:
            _targets.pop(self._id, None)
        with _live_lock:
            _live.discard(self)
        if ptr:
            N.wsn_conn_free(ptr)

    def _adopt(self, ptr: int) -> None:
        """Takes ownership of a native handle."""
        self._ptr = ptr
        with _live_lock:
            _live.add(self)

    # -- calls ---------------------------------------------------------------------------------

    def _connect(self, url: str, options: int) -> None:
        """Starts a client connection; its events go to this object."""
        self._id = new_id()
        _targets[self._id] = self._on_native_event
        out = c_void_p()
        err: Optional[BaseException] = None
        with self._lock:  # a CLOSE event (which frees) waits until the handle is stored
            rc = N.wsn_connect(url.encode("utf-8"), options, event_cb, self._id, byref(out))
            if rc:
                err = from_status(rc)
            else:
                self._adopt(out.value)  # type: ignore[arg-type]
        if err is not None:
            _targets.pop(self._id, None)
            raise err

    def send(self, message: Message) -> None:
        """Queues a message (``str``: text, ``bytes``-like: binary) and returns at once.

        Safe from any thread; messages sent from one thread arrive in order. Raises
        ConnectionClosed once the connection is closing or closed.
        """
        t = type(message)
        if t is str:
            data = message.encode("utf-8")  # type: ignore[union-attr]
            fn = _send_text
        elif t is bytes:
            data = message  # type: ignore[assignment]
            fn = _send_binary
        elif isinstance(message, (bytearray, memoryview)):
            data = bytes(message)
            fn = _send_binary
        else:
            raise TypeError(f"send() takes str or bytes, not {t.__name__}")
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                raise closed_exception(self._close_info)
            rc = fn(ptr, data, len(data))
            if rc:
                msg = N.last_error()
        if rc:
            if rc == N.ERR_INVALID_STATE:
                if self._close_info is not None:
                    raise closed_exception(self._close_info)
                raise ConnectionClosed(None, "", False, msg, rc)
            raise from_status(rc, msg)

    def _start_close(self, code: int, reason: str) -> None:
        rb = reason.encode("utf-8") if reason else None
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return
            rc = N.wsn_conn_close(ptr, code, rb)
            if rc:
                err = from_status(rc)
        if rc:
            raise err

    def _set_reading_paused(self, paused: bool) -> None:
        with self._lock:
            ptr = self._ptr
            if ptr is not None:
                N.wsn_conn_set_reading_paused(ptr, paused)

    def _start_abort(self) -> None:
        with self._lock:
            ptr = self._ptr
            if ptr is not None:
                N.wsn_conn_abort(ptr)

    # -- properties ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return State.CLOSED
            return State(N.wsn_conn_get_state(ptr))

    @property
    def buffered_amount(self) -> int:
        """Bytes queued by ``send`` and not yet handed to the socket."""
        with self._lock:
            ptr = self._ptr
            return N.wsn_conn_get_buffered_amount(ptr) if ptr is not None else 0

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self._subprotocol or None

    @property
    def remote_address(self) -> str:
        """The peer's address as "ip:port" ("" before the TCP connection exists)."""
        return self._peer_addr

    @property
    def closed(self) -> bool:
        """Whether the connection ended (its close event arrived)."""
        return self._close_info is not None

    @property
    def close_info(self) -> Optional[CloseInfo]:
        """How the connection ended: code, reason, clean, error, error_status, http_status."""
        return self._close_info

    @property
    def close_code(self) -> Optional[int]:
        info = self._close_info
        return info.code if info else None

    @property
    def close_reason(self) -> Optional[str]:
        info = self._close_info
        return info.reason if info else None

    @property
    def close_error(self) -> Optional[str]:
        """The native error text of an abnormal end (None when nothing went wrong)."""
        info = self._close_info
        return info.error if info else None

    @property
    def was_clean(self) -> Optional[bool]:
        info = self._close_info
        return info.clean if info else None


# ---------------------------------------------------------------------------------------------
# Servers


class Request:
    """An upgrade request, as seen by a server's ``accept`` callback.

    Its fields are read up front; the decision methods work only during the callback.
    """

    def __init__(self, ptr: int) -> None:
        self._ptr: Optional[int] = ptr
        self._decided = False
        self.path: str = _text(N.wsn_request_get_path(ptr))
        self.query: str = _text(N.wsn_request_get_query(ptr))
        self.remote_address: str = _text(N.wsn_request_get_peer_addr(ptr))
        self.headers: List[Tuple[str, str]] = [
            (_text(N.wsn_request_get_header_name(ptr, i)), _text(N.wsn_request_get_header_value(ptr, i)))
            for i in range(N.wsn_request_get_header_count(ptr))
        ]
        self.subprotocols: List[str] = [
            _text(N.wsn_request_get_subprotocol(ptr, i)) for i in range(N.wsn_request_get_subprotocol_count(ptr))
        ]

    def header(self, name: str) -> Optional[str]:
        """The first header called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def _req(self) -> int:
        if self._ptr is None:
            raise WebSocketError("a Request can be decided only during its accept callback")
        self._decided = True
        return self._ptr

    def accept(self, subprotocol: Optional[str] = None) -> None:
        """Accepts, choosing ``subprotocol`` (one the client offered) or none."""
        check(N.wsn_request_accept(self._req(), _b(subprotocol)))

    def reject(self, status: int = 403, body: Optional[str] = None) -> None:
        """Refuses with HTTP ``status`` (400-599) and a short text body."""
        check(N.wsn_request_reject(self._req(), status, _b(body)))

    def close(self, code: int, reason: str = "") -> None:
        """Accepts and closes at once with ``code`` (4000-4999 for the application's reasons)."""
        check(N.wsn_request_accept_and_close(self._req(), code, _b(reason)))

    def __repr__(self) -> str:
        return f"<Request {self.path}{'?' + self.query if self.query else ''} from {self.remote_address}>"


AcceptResult = Union[None, bool, int, str, Tuple[int, str]]


def apply_accept_result(req: Request, result: AcceptResult) -> None:
    if req._decided or result is None or result is True:
        return
    if result is False:
        req.reject(403, "Forbidden")
    elif isinstance(result, str):
        req.accept(result)
    elif isinstance(result, tuple):
        code, text = result
        if 400 <= code <= 599:
            req.reject(code, text)
        else:
            req.close(code, text)
    elif isinstance(result, int):
        if 400 <= result <= 599:
            req.reject(result)
        else:
            req.close(result)
    else:
        raise TypeError(f"accept() returned {result!r}: expected None, bool, int, str or (int, str)")


class ServerCore:
    """A listening native server; subclasses create the connection objects."""

    def __init__(
        self,
        host: str,
        port: int,
        accept: Optional[Callable[[Request], Any]],
        options: Dict[str, Any],
    ) -> None:
        self._conns: Dict[int, NativeConn] = {}
        self._ptr: Optional[int] = None
        self._lock = threading.Lock()
        self._accept = accept
        self._drain_timeout = float(options.get("drain_timeout", 5.0))
        self._id = new_id()
        _targets[self._id] = self._on_native_event
        if accept is not None:
            _accepts[self._id] = self._on_accept_native
        o = server_options(**options)
        out = c_void_p()
        try:
            rc = N.wsn_server_listen(
                host.encode("utf-8"), port, o, accept_cb if accept is not None else _null_accept, event_cb, self._id, byref(out)
            )
            if rc:
                raise from_status(rc)
        except BaseException:
            _targets.pop(self._id, None)
            _accepts.pop(self._id, None)
            raise
        finally:
            N.wsn_server_options_free(o)
        self._ptr = out.value
        self.port: int = N.wsn_server_get_port(self._ptr)
        self.host = host
        with _live_lock:
            _live_servers.add(self)

    def _new_connection(self) -> NativeConn:  # pragma: no cover - overridden
        raise NotImplementedError

    def _connection_opened(self, conn: NativeConn) -> None:  # pragma: no cover - overridden
        pass

    def _on_native_event(self, conn: int, addr: int) -> None:
        ev = _ev_at(addr)
        kind = ev.kind
        if kind == N.EVENT_MESSAGE:
            c = self._conns.get(conn)
            if c is not None:
                c._on_message(read_message(ev))
        elif kind == N.EVENT_OPEN:
            c = self._new_connection()
            c._adopt(conn)  # we own the handle from here on
            self._conns[conn] = c
            c._opened_native(conn)
            self._connection_opened(c)
        elif kind == N.EVENT_CLOSE:
            c = self._conns.pop(conn, None)
            if c is not None:
                c._closed_native(ev)

    def _on_accept_native(self, request: int) -> None:
        req = Request(request)
        try:
            result = self._accept(req)  # type: ignore[misc]
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

    def _stop(self, drain_timeout: Optional[float]) -> None:
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return
            # Close events of the connections run on callback threads while this blocks.
            N.wsn_server_stop(ptr, ms(self._drain_timeout if drain_timeout is None else drain_timeout, "drain_timeout", True))

    def _free(self) -> None:
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is None:
            return
        N.wsn_server_free(ptr)
        _targets.pop(self._id, None)
        _accepts.pop(self._id, None)
        with _live_lock:
            _live_servers.discard(self)
        # No event of this server runs any more: end what is left ourselves.
        for key, c in list(self._conns.items()):
            self._conns.pop(key, None)
            c._close_info = CloseInfo(1006, "", False, "the server was freed", N.ERR_ABORTED, 0)
            c._release()
            try:
                c._on_close(c._close_info)
            except BaseException:
                report("a close handler")


# ---------------------------------------------------------------------------------------------
# Interpreter exit: no callback may run into a finalizing interpreter.


def _at_exit() -> None:
    global _exiting
    _exiting = True
    with _live_lock:
        servers = list(_live_servers)
    for s in servers:
        try:
            s._stop(0.5)
            s._free()
        except BaseException:
            pass
    with _live_lock:
        conns = list(_live)
    for c in conns:
        try:
            c._release()  # open ones are closed with 1001 in the background
        except BaseException:
            pass
    if servers or conns:
        N.wsn_shutdown(500)


atexit.register(_at_exit)


def configure(*, io_threads: Optional[int] = None, callback_threads: Optional[int] = None) -> None:
    """Sets the native runtime's thread counts; call before the first connection or server."""
    if io_threads is not None:
        check(N.wsn_runtime_set_io_threads(io_threads))
    if callback_threads is not None:
        check(N.wsn_runtime_set_callback_threads(callback_threads))
