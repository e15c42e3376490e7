"""wsnative: WebSocket client and server over the wsnative native library (ctypes).

Blocking API::

    with wsnative.connect("ws://127.0.0.1:9001/") as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))

    def echo(conn):
        for message in conn:
            conn.send(message)

    with wsnative.serve("127.0.0.1", 9001, echo) as server:
        server.serve_forever()

asyncio API: ``wsnative.asyncio.connect`` and ``wsnative.asyncio.serve``.
"""

from __future__ import annotations

from . import _native
from ._convert import (  # client-reach (issue 13)
    CertCheck,
    CloseInfo,
    Reconnect,
    ReconnectAttempt,
    Request,
    Response,
    State,
    cert_fingerprint,
)
from ._core import configure
from ._lib import LibraryNotFound
from ._log import disable_logging, enable_logging
from ._ops import BroadcastReport, ConnStats, DrainReport, ServerStats
from .client import Connection, Pool, connect
from .errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InternalError,
    InvalidArgument,
    InvalidState,
    OpenTimeout,
    TLSError,
    WebSocketError,
    WouldBlock,
)
from .server import Server, serve

# isort: split
# wsnative.asyncio last, after the modules it builds on; `as asyncio` re-exports it (the attribute
# wsnative.asyncio) without adding it to __all__, where `from wsnative import *` would shadow the
# standard library's asyncio.
from . import asyncio as asyncio

__version__ = "0.1.0"

#: Where the native library was loaded from.
library_path: str = _native.library_path


def library_version() -> str:
    """The native library's version (wsn_version)."""
    return _native.version()


__all__ = [
    "BroadcastReport",
    "CertCheck",
    "CloseInfo",
    "ConnStats",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DrainReport",
    "HandshakeError",
    "InternalError",
    "InvalidArgument",
    "InvalidState",
    "LibraryNotFound",
    "OpenTimeout",
    "Pool",
    "Reconnect",
    "ReconnectAttempt",
    "Request",
    "Response",
    "Server",
    "ServerStats",
    "State",
    "TLSError",
    "WebSocketError",
    "WouldBlock",
    "cert_fingerprint",
    "configure",
    "connect",
    "disable_logging",
    "enable_logging",
    "library_path",
    "library_version",
    "serve",
]
