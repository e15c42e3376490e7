"""Conversions between Python and the C API: states, close information, exceptions, option
objects, upgrade requests. No handle lifetime here (that is ``_core``), no API (``client``,
``server``, ``asyncio``)."""

from __future__ import annotations

import ctypes
import os
from enum import IntEnum
from typing import Any, Callable, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

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

Message = Union[str, bytes]
Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
#: ``cert_check(host, chain, default_error) -> bool``: the application's check of the server's
#: certificate (client-reach, issue 13). ``chain`` is the certificates the server sent (DER, its
#: own first), ``default_error`` None when the default validation accepted them, else why not.
CertCheck = Callable[[str, List[bytes], Optional[str]], bool]

#: Low-water mark of the send queue at which the core reports DRAIN (as websockets' write limit).
DRAIN_LOW_WATER = 64 << 10


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
    error: str | None
    error_status: int
    http_status: int


def closed_exception(info: CloseInfo | None) -> ConnectionClosed:
    if info is None:
        return ConnectionClosed(None, "", False, "the connection is closing")
    cls = ConnectionClosedOK if info.clean and info.code in (1000, 1001) and not info.error else ConnectionClosedError
    return cls(info.code, info.reason, info.clean, info.error, info.error_status)


def open_failure(info: CloseInfo, response: Response | None = None) -> WebSocketError:
    """The exception for a connection that closed before it opened (``response``: the server's
    refusal, when it answered)."""
    msg = info.error or f"the connection closed while opening ({info.code})"
    st = info.error_status
    if st == N.ERR_HANDSHAKE or info.http_status:
        e = HandshakeError(msg, info.http_status, st or N.ERR_HANDSHAKE)
        e.response = response
        return e
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


def ms(seconds: float | None, what: str, zero_ok: bool = False) -> int:
    if seconds is None:
        if zero_ok:
            return 0
        raise InvalidArgument(f"{what} must be a number of seconds, not None", N.ERR_INVALID_ARGUMENT)
    v = round(float(seconds) * 1000)
    if v < 0 or v > 0xFFFFFFFF:
        raise InvalidArgument(f"{what} is out of range: {seconds!r}", N.ERR_INVALID_ARGUMENT)
    if v == 0 and not zero_ok and seconds:
        v = 1
    return v


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode("utf-8")


def _text(p: bytes | None) -> str:
    return p.decode("utf-8", "replace") if p else ""


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
    headers: Headers | None = None,
    subprotocols: Sequence[str] | None = None,
    origin: str | None = None,
    ca_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    tls_roots: str = "bundled",
    open_timeout: float | None = 10.0,
    close_timeout: float = 5.0,
    max_size: int | None = None,
    ping_interval: float | None = 30.0,
    ping_timeout: float | None = 30.0,
    heartbeat: str = "ping",
    max_queue: int = 1024,
    manual_ack: bool = True,
    max_send_queue: int | None = None,
    compression: str | None = None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
    trust_cert: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    trust_fingerprint: str | Sequence[str] | None = None,
    cert_check: CertCheck | None = None,
    proxy: str | bool | None = None,
    proxy_headers: Headers | None = None,
    reconnect: Reconnect | None = None,
) -> int:
    """A native wsn_client_options (the caller frees it with wsn_client_options_free).

    ``cert_check`` must stay referenced by the caller until the connection opened or failed.

    Flow control is the core's: ``max_queue`` unacknowledged messages at most (with
    ``manual_ack`` a message counts until the binding's reader took it), a send queue of
    ``max_send_queue`` bytes that refuses with WSN_ERR_WOULD_BLOCK, and DRAIN events.
    """
    o: int = N.wsn_client_options_new()
    try:
        check(N.wsn_client_options_set_max_receive_messages(o, _positive(max_queue, "max_queue")))
        check(N.wsn_client_options_set_manual_ack(o, manual_ack))
        check(N.wsn_client_options_set_compression(o, _compression(compression)))
        if max_send_queue is not None:
            check(N.wsn_client_options_set_max_send_queue(o, _positive(max_send_queue, "write_limit")))
        check(N.wsn_client_options_set_drain_events(o, True, min(DRAIN_LOW_WATER, max_send_queue or DRAIN_LOW_WATER)))
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
        _client_certs(o, client_cert, client_key, trust_cert, trust_fingerprint, cert_check)
        _proxy(o, proxy, proxy_headers)
        if reconnect is not None:
            reconnect._apply(o)
        return o
    except BaseException:
        N.wsn_client_options_free(o)
        raise


def _compression(kind: str | None) -> bool:
    """``compression``: None (off) or "deflate" (permessage-deflate, RFC 7692)."""
    if kind is None:
        return False
    if kind == "deflate":
        return True
    raise InvalidArgument(f"compression must be None or 'deflate', not {kind!r}", N.ERR_INVALID_ARGUMENT)


def _positive(n: int, what: str) -> int:
    v = int(n)
    if v < 1:
        raise InvalidArgument(f"{what} must be at least 1, not {n!r}", N.ERR_INVALID_ARGUMENT)
    return v


def _heartbeat(kind: str) -> int:
    v = {"ping": N.HEARTBEAT_PING, "pong": N.HEARTBEAT_PONG}.get(kind)
    if v is None:
        raise InvalidArgument(f"heartbeat must be 'ping' or 'pong', not {kind!r}")
    return v


def server_options(
    *,
    subprotocols: Sequence[str] | None = None,
    origins: Sequence[str] | None = None,
    max_connections: int = 0,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    handshake_timeout: float = 10.0,
    max_header_size: int | None = None,
    close_timeout: float = 5.0,
    drain_timeout: float = 5.0,
    max_size: int | None = None,
    ping_interval: float | None = 30.0,
    ping_timeout: float | None = 30.0,
    heartbeat: str = "ping",
    max_queue: int = 1024,
    max_send_queue: int | None = None,
    compression: str | None = None,
    max_pending_handshakes: int = 512,
    max_pending_handshakes_per_ip: int = 0,
    pending_handshake_policy: str = "drop-oldest",
    client_ca: str | os.PathLike[str] | None = None,
    client_cert_required: bool = True,
) -> int:
    """A native wsn_server_options; server connections deliver to a reader (manual ack)."""
    o: int = N.wsn_server_options_new()
    try:
        check(N.wsn_server_options_set_max_receive_messages(o, _positive(max_queue, "max_queue")))
        check(N.wsn_server_options_set_manual_ack(o, True))
        check(N.wsn_server_options_set_compression(o, _compression(compression)))
        if max_send_queue is not None:
            check(N.wsn_server_options_set_max_send_queue(o, _positive(max_send_queue, "write_limit")))
        check(N.wsn_server_options_set_drain_events(o, True, min(DRAIN_LOW_WATER, max_send_queue or DRAIN_LOW_WATER)))
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
        if tls_cert is not None and tls_key is not None:  # both or neither, checked above
            check(N.wsn_server_options_set_tls(o, os.fsencode(tls_cert), os.fsencode(tls_key)))
        check(N.wsn_server_options_set_max_pending_handshakes(
            o, _count(max_pending_handshakes, "max_pending_handshakes")))
        check(N.wsn_server_options_set_max_pending_handshakes_per_ip(
            o, _count(max_pending_handshakes_per_ip, "max_pending_handshakes_per_ip")))
        check(N.wsn_server_options_set_pending_handshake_policy(o, _pending_policy(pending_handshake_policy)))
        if client_ca is not None:
            check(N.wsn_server_options_set_client_auth(o, os.fsencode(client_ca), bool(client_cert_required)))
        return o
    except BaseException:
        N.wsn_server_options_free(o)
        raise


def _count(v: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidArgument(f"{what} must be an int >= 0 (0: no limit), not {v!r}", N.ERR_INVALID_ARGUMENT)
    return v


def _pending_policy(p: str) -> int:
    if p == "drop-oldest":
        return N.PENDING_HANDSHAKE_DROP_OLDEST
    if p == "refuse":
        return N.PENDING_HANDSHAKE_REFUSE
    raise InvalidArgument(f"pending_handshake_policy must be 'drop-oldest' or 'refuse', not {p!r}",
                          N.ERR_INVALID_ARGUMENT)


_TEXT = N.SEND_TEXT


def encode(message: Any) -> tuple[bytes, int]:
    """The bytes and wsn_conn_send flags of a message (str: text, bytes-like: binary)."""
    t = type(message)
    if t is str:
        return message.encode("utf-8"), _TEXT
    if t is bytes:
        return message, 0
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message), 0
    raise TypeError(f"send() takes str or bytes, not {t.__name__}")

class Request:
    """A request, as seen by a server's ``accept`` callback (an upgrade) or its
    ``http_handler`` (a plain HTTP request, such as a health check).

    Its fields are read up front; the decision methods work only during the callback.
    """

    def __init__(self, ptr: int) -> None:
        self._ptr: int | None = ptr
        self._decided = False
        self.method: str = _text(N.wsn_request_get_method(ptr))
        self.path: str = _text(N.wsn_request_get_path(ptr))
        self.query: str = _text(N.wsn_request_get_query(ptr))
        self.remote_address: str = _text(N.wsn_request_get_peer_addr(ptr))
        self.headers: list[tuple[str, str]] = [
            (_text(N.wsn_request_get_header_name(ptr, i)), _text(N.wsn_request_get_header_value(ptr, i)))
            for i in range(N.wsn_request_get_header_count(ptr))
        ]
        self.subprotocols: list[str] = [
            _text(N.wsn_request_get_subprotocol(ptr, i)) for i in range(N.wsn_request_get_subprotocol_count(ptr))
        ]
        subject = N.wsn_request_get_peer_cert_subject(ptr)
        #: The subject of the client certificate the server verified ("CN=alice, O=Example"),
        #: or None (no certificate; see ``serve(client_ca=...)``).
        self.peer_cert_subject: str | None = subject.decode("utf-8", "replace") if subject else None

    def header(self, name: str) -> str | None:
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

    def accept(self, subprotocol: str | None = None) -> None:
        """Accepts, choosing ``subprotocol`` (one the client offered) or none."""
        check(N.wsn_request_accept(self._req(), _b(subprotocol)))

    def reject(self, status: int = 403, body: str | None = None) -> None:
        """Refuses with HTTP ``status`` (400-599) and a short text body."""
        check(N.wsn_request_reject(self._req(), status, _b(body)))

    def close(self, code: int, reason: str = "") -> None:
        """Accepts and closes at once with ``code`` (4000-4999 for the application's reasons)."""
        check(N.wsn_request_accept_and_close(self._req(), code, _b(reason)))

    def add_response_header(self, name: str, value: str) -> None:
        """Adds a header to the response: the 101 or the refusal (in ``accept``, a Set-Cookie for
        example), or the plain answer (in ``http_handler``). Headers wsnative writes itself
        (Content-Length, Connection, Upgrade, Sec-WebSocket-*) raise InvalidArgument."""
        if self._ptr is None:
            raise WebSocketError("response headers can be added only during the callback")
        check(N.wsn_request_add_response_header(self._ptr, _b(name), _b(value)))

    def respond(self, status: int, body: str | bytes = b"", headers: Headers = ()) -> None:
        """Answers a plain HTTP request (in ``http_handler`` only) with ``status`` (200-599),
        ``headers`` and ``body`` (str: UTF-8, text/plain unless a Content-Type is given)."""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        for k, v in headers.items() if isinstance(headers, Mapping) else headers:
            self.add_response_header(k, v)
        check(N.wsn_request_respond(self._req(), status, data, len(data)))

    def set_deadline(self, seconds: float | None, code: int = 4401, reason: str = "session expired") -> None:
        """The session deadline of the connection, if accepted: it is closed with ``code`` and
        ``reason`` once ``seconds`` have passed (counted from now). Does not decide."""
        from . import _ops

        _ops.request_set_deadline(self._live(), seconds, code, reason)

    def add_tag(self, tag: str) -> None:
        """A tag the connection carries from its open on, if accepted. Does not decide."""
        from . import _ops

        _ops.request_add_tag(self._live(), tag)

    def _live(self) -> int:
        if self._ptr is None:
            raise WebSocketError("a Request can be changed only during its accept callback")
        return self._ptr

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


#: What an ``http_handler`` returns: None (not handled: 426), or (status, body), or
#: (status, headers, body); body str or bytes.
HttpResult = Union[None, Tuple[int, Union[str, bytes]], Tuple[int, Headers, Union[str, bytes]]]


def apply_http_result(req: Request, result: HttpResult) -> None:
    if req._decided or result is None:
        return
    if isinstance(result, tuple) and len(result) == 2:
        req.respond(result[0], result[1])
    elif isinstance(result, tuple) and len(result) == 3:
        req.respond(result[0], result[2], result[1])
    else:
        raise TypeError(f"http_handler returned {result!r}: expected None, (status, body) or "
                        "(status, headers, body)")




# --- client-reach (issue 13): certificates ---


def _on_cert_check(user_data: int, host: bytes | None, certs: Any, lens: Any, count: int,
                   default_error: bytes | None) -> bool:
    """The one native trampoline of every ``cert_check``: user_data is the callable's id."""
    try:
        fn: CertCheck = ctypes.cast(user_data, ctypes.py_object).value
        chain = [ctypes.string_at(certs[i], lens[i]) for i in range(count)]
        err = default_error.decode("utf-8", "replace") if default_error is not None else None
        return bool(fn((host or b"").decode("utf-8", "replace"), chain, err))
    except BaseException:
        from ._core import report

        report("a cert_check callback (the server is refused)")
        return False


cert_check_cb = N.wsn_cert_check_cb(_on_cert_check)
ctypes.pythonapi.Py_IncRef(ctypes.py_object(cert_check_cb))  # never collected


def _client_certs(
    o: int,
    client_cert: str | os.PathLike[str] | None,
    client_key: str | os.PathLike[str] | None,
    trust_cert: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    trust_fingerprint: str | Sequence[str] | None,
    cert_check: CertCheck | None,
) -> None:
    if (client_cert is None) != (client_key is None):
        raise InvalidArgument("client_cert and client_key go together", N.ERR_INVALID_ARGUMENT)
    if client_cert is not None and client_key is not None:
        check(N.wsn_client_options_set_client_cert_files(o, os.fsencode(client_cert), os.fsencode(client_key)))
    if trust_cert is not None:
        certs = [trust_cert] if isinstance(trust_cert, (str, os.PathLike)) else list(trust_cert)
        for f in certs:
            check(N.wsn_client_options_add_trusted_cert_file(o, os.fsencode(f)))
    if trust_fingerprint is not None:
        fps = [trust_fingerprint] if isinstance(trust_fingerprint, str) else list(trust_fingerprint)
        for fp in fps:
            check(N.wsn_client_options_add_trusted_fingerprint(o, _b(fp)))
    if cert_check is not None:
        check(N.wsn_client_options_set_cert_check(o, cert_check_cb, id(cert_check)))


def cert_fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, "AB:CD:...", as ``trust_fingerprint``
    takes it and ``openssl x509 -noout -fingerprint -sha256`` prints it."""
    out = ctypes.create_string_buffer(96)
    check(N.wsn_cert_fingerprint_sha256(der, len(der), out, len(out)))
    return out.value.decode("ascii")


# --- client-reach (issue 13): proxies ---


def _proxy(o: int, proxy: str | bool | None, proxy_headers: Headers | None) -> None:
    """``proxy``: a URL (http://[user:password@]host:port or socks5://...), True to read it from
    the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), None or False for none."""
    if isinstance(proxy, str):
        check(N.wsn_client_options_set_proxy(o, _b(proxy)))
    elif proxy is True:
        check(N.wsn_client_options_set_proxy_from_env(o, True))
    elif proxy not in (None, False):
        raise InvalidArgument(f"proxy must be a URL, True or None, not {proxy!r}", N.ERR_INVALID_ARGUMENT)
    if proxy_headers:
        items = proxy_headers.items() if isinstance(proxy_headers, Mapping) else proxy_headers
        for name, value in items:
            check(N.wsn_client_options_add_proxy_header(o, _b(name), _b(value)))


# --- client-reach (issue 13): the handshake response ---


class Response(NamedTuple):
    """The server's answer to the upgrade: ``status`` (101 when accepted) and ``headers`` in
    order (names as sent)."""

    status: int
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None


def read_response(conn: int) -> Response | None:
    """The handshake response of a native client connection (None when the server never
    answered: server connections, failures before the answer)."""
    status = N.wsn_conn_get_response_status(conn)
    if not status:
        return None
    headers = [
        (_text(N.wsn_conn_get_response_header_name(conn, i)), _text(N.wsn_conn_get_response_header_value(conn, i)))
        for i in range(N.wsn_conn_get_response_header_count(conn))
    ]
    return Response(status, headers)


# --- client-reach (issue 13): reconnect ---


class ReconnectAttempt(NamedTuple):
    """A reconnect attempt about to start: its number (from 1 after each drop), the delay
    before it in seconds, the close code of the connection that dropped (1006 for a failed
    attempt) and why the last connection or attempt ended."""

    attempt: int
    delay: float
    code: int
    error: str | None


class Reconnect:
    """Reconnect when the connection drops, keeping the same ``Connection``.

    Each attempt waits a delay drawn uniformly from 0 to ``min(max_delay, initial_delay *
    2**(attempt-1))`` seconds (full jitter: clients spread out after a server restart). It
    stops after ``max_attempts`` attempts or ``max_time`` seconds since the drop (None: no
    limit), on a close code in ``stop_codes`` (added to 1002, 1003, 1007-1010: a 4001 "not
    allowed" of your own) or an HTTP status in ``stop_statuses`` (added to 401 and 403), and
    never after ``close()``. Meanwhile ``send`` queues up to ``offline_queue`` bytes;
    ``when_full`` is "refuse" (send raises WouldBlock), "drop_oldest" or "drop_newest".

    ``on_reconnect(conn)`` runs after each successful reconnect on a wsnative thread, before
    the queued messages go out; what it sends (authentication, subscriptions) goes first.
    ``on_attempt(conn, ReconnectAttempt)`` is told of every attempt, ``on_give_up(conn, why)``
    when it stops (the close follows).
    """

    def __init__(
        self,
        *,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        max_attempts: int = 0,
        max_time: float | None = None,
        stop_codes: Sequence[int] = (),
        stop_statuses: Sequence[int] = (),
        offline_queue: int = 1 << 20,
        when_full: str = "refuse",
        on_reconnect: Callable[[Any], Any] | None = None,
        on_attempt: Callable[[Any, ReconnectAttempt], Any] | None = None,
        on_give_up: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.max_time = max_time
        self.stop_codes = tuple(stop_codes)
        self.stop_statuses = tuple(stop_statuses)
        self.offline_queue = offline_queue
        self.when_full = when_full
        self.on_reconnect = on_reconnect
        self.on_attempt = on_attempt
        self.on_give_up = on_give_up

    def _apply(self, o: int) -> None:
        policy = {"refuse": N.OFFLINE_REFUSE, "drop_oldest": N.OFFLINE_DROP_OLDEST,
                  "drop_newest": N.OFFLINE_DROP_NEWEST}.get(self.when_full)
        if policy is None:
            raise InvalidArgument(f"when_full must be 'refuse', 'drop_oldest' or 'drop_newest', not {self.when_full!r}")
        p = N.wsn_reconnect_policy_new()
        try:
            check(N.wsn_reconnect_policy_set_delays(p, ms(self.initial_delay, "initial_delay"),
                                                    ms(self.max_delay, "max_delay")))
            check(N.wsn_reconnect_policy_set_budget(p, int(self.max_attempts),
                                                    ms(self.max_time, "max_time", zero_ok=True)))
            for code in self.stop_codes:
                check(N.wsn_reconnect_policy_add_stop_code(p, int(code)))
            for st in self.stop_statuses:
                check(N.wsn_reconnect_policy_add_stop_status(p, int(st)))
            check(N.wsn_reconnect_policy_set_offline_queue(p, _positive(self.offline_queue, "offline_queue"), policy))
            check(N.wsn_client_options_set_reconnect(o, p))
        finally:
            N.wsn_reconnect_policy_free(p)
