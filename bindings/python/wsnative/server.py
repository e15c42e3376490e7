"""The blocking server: ``serve()`` runs ``handler(conn)`` in a thread per connection."""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import Any, Callable, Sequence

from . import _core
from ._convert import AcceptResult, HttpResult, Request
from ._core import report
from .client import Connection
from .errors import ConnectionClosed

__all__ = ["Request", "Server", "serve"]

Handler = Callable[[Connection], Any]
Accept = Callable[[Request], AcceptResult]


class Server(_core.ServerCore):
    """A listening WebSocket server. ``port`` is the port it listens on.

    Each accepted connection runs ``handler(conn)`` in its own (daemon) thread; when the handler
    returns, the connection is closed with 1000 (1011 when it raised). Use ``close()`` or a
    ``with`` block to stop it.
    """

    def __init__(self, host: str, port: int, handler: Handler, accept: Accept | None, options: dict[str, Any]) -> None:
        self._handler = handler
        self._stopped = threading.Event()
        super().__init__(host, port, accept, options)

    def _new_connection(self) -> Connection:
        return Connection()

    def _connection_opened(self, conn: _core.NativeConn) -> None:
        t = threading.Thread(
            target=self._run, args=(conn,), name=f"wsnative-handler-{conn.remote_address}", daemon=True
        )
        t.start()

    def _run(self, conn: Connection) -> None:
        code, reason = 1000, ""
        try:
            self._handler(conn)
        except ConnectionClosed:
            pass
        except BaseException:
            report("the connection handler")
            code, reason = 1011, "internal error"
        try:
            conn.close(code, reason)
        except BaseException:
            report("closing after the handler")

    def close(self, drain_timeout: float | None = None) -> None:
        """Stops accepting, closes every connection with 1001 and waits up to ``drain_timeout``
        seconds (default: the server's) for them to close; the rest are aborted. Returns once
        every connection's close was delivered (from a callback thread: at once). Idempotent."""
        self._stop(drain_timeout)
        self._free()
        self._stopped.set()

    def serve_forever(self) -> None:
        """Blocks until ``close()`` is called (from another thread or a handler)."""
        self._stopped.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<wsnative.Server ws://{self.host}:{self.port} {len(self.connections)} connections>"


def serve(
    host: str,
    port: int,
    handler: Handler,
    *,
    accept: Accept | None = None,
    subprotocols: Sequence[str] | None = None,
    origins: Sequence[str] | None = None,
    max_connections: int = 0,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    handshake_timeout: float = 10.0,
    max_header_size: int | None = None,
    close_timeout: float = 5.0,
    drain_timeout: float = 5.0,
    max_size: int | None = 64 << 20,
    ping_interval: float | None = 30.0,
    ping_timeout: float | None = 30.0,
    heartbeat: str = "ping",
    max_queue: int = 1024,
    write_limit: int | None = None,
    compression: str | None = None,
    http_handler: Callable[[Request], HttpResult] | None = None,
    max_pending_handshakes: int = 512,
    max_pending_handshakes_per_ip: int = 0,
    pending_handshake_policy: str = "drop-oldest",
    client_ca: str | os.PathLike[str] | None = None,
    client_cert_required: bool = True,
) -> Server:
    """Starts a server on ``host``:``port`` (port 0 picks a free one: see ``server.port``).

    ``accept(request)`` (optional) runs on a wsnative callback thread during the handshake and
    decides: return None/True to accept, a subprotocol name to accept with it, False or an HTTP
    status (400-599) to refuse, a close code (e.g. 4000-4999) to accept and close at once, or a
    tuple (status or code, text). It may also call ``request.accept/reject/close`` itself.
    ``subprotocols``: spoken by the server, first offered match wins. ``origins``: allowed
    Origin values (others get 403). ``tls_cert``/``tls_key``: PEM files, serve wss://.
    ``max_queue`` and ``write_limit``: as for ``connect``, per connection.
    ``compression="deflate"`` accepts clients' permessage-deflate offers (browsers always offer).
    ``http_handler(request)`` (optional) answers requests that are not WebSocket upgrades (a load
    balancer's ``GET /healthz``), on a wsnative callback thread: return ``(status, body)`` or
    ``(status, headers, body)``, or None to leave the request to the default 426; without one
    such requests get 426. ``accept`` may add headers to the 101 with
    ``request.add_response_header`` (a Set-Cookie). ``max_pending_handshakes`` (512) and
    ``max_pending_handshakes_per_ip`` (0: off, as behind a proxy) cap handshakes in progress, 0 for no cap;
    ``pending_handshake_policy``: "drop-oldest" (the default: slow clients cannot lock out fast
    ones) or "refuse" (503).
    ``client_ca``: a PEM file of CAs; clients must present a certificate they issued (mutual
    TLS; with ``client_cert_required=False`` they may come without one), and ``accept`` sees
    its subject as ``request.peer_cert_subject``.
    """
    options = dict(
        subprotocols=subprotocols,
        origins=origins,
        max_connections=max_connections,
        tls_cert=tls_cert,
        tls_key=tls_key,
        handshake_timeout=handshake_timeout,
        max_header_size=max_header_size,
        close_timeout=close_timeout,
        drain_timeout=drain_timeout,
        max_size=max_size,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        heartbeat=heartbeat,
        max_queue=max_queue,
        max_send_queue=write_limit,
        compression=compression,
        http_handler=http_handler,
        max_pending_handshakes=max_pending_handshakes,
        max_pending_handshakes_per_ip=max_pending_handshakes_per_ip,
        pending_handshake_policy=pending_handshake_policy,
        client_ca=client_ca,
        client_cert_required=client_cert_required,
    )
    return Server(host, port, handler, accept, options)
