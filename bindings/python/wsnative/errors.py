"""wsnative's exceptions. Each carries the native library's message."""

from __future__ import annotations

from typing import Any

from . import _native as N

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "InternalError",
    "InvalidArgument",
    "InvalidState",
    "OpenTimeout",
    "TLSError",
    "WebSocketError",
    "WouldBlock",
]


class WebSocketError(Exception):
    """Base class of every wsnative error.

    ``error_status`` is the native ``wsn_status`` (a negative int, 0 when none) and ``message`` the
    native library's text.
    """

    def __init__(self, message: str, error_status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.error_status = error_status


class InvalidArgument(WebSocketError, ValueError):
    """An argument the native library refused (bad URL, header, close code, reason too long...)."""


class InvalidState(WebSocketError):
    """The call is not allowed in the current state."""


class InternalError(WebSocketError):
    """A bug in wsnative (a native panic was caught). Please report it with its message."""


class WouldBlock(WebSocketError):
    """The connection's send queue is full (``write_limit`` bytes not yet handed to the kernel)
    and the send could not wait for it to drain: a blocking ``send`` whose ``timeout`` expired,
    or one called from a wsnative callback thread (which would wait for itself)."""


class ConnectError(WebSocketError, ConnectionError):
    """The connection could not be opened: DNS failure, refused, unreachable, I/O error."""


class OpenTimeout(WebSocketError, TimeoutError):
    """Connecting or the opening handshake took longer than ``open_timeout``."""


class HandshakeError(WebSocketError):
    """The server refused the upgrade; ``status`` is its HTTP status (0 when it was malformed)."""

    def __init__(self, message: str, status: int = 0, error_status: int = N.ERR_HANDSHAKE) -> None:
        super().__init__(message, error_status)
        self.status = status
        #: The server's refusal (``wsnative.Response``: status and headers), when it answered.
        self.response: Any = None


class TLSError(WebSocketError):
    """TLS failed (unknown issuer, name mismatch, expired certificate, unreadable PEM file...)."""


class ConnectionClosed(WebSocketError):
    """The connection is closed: raised by ``recv``/``send`` once it ended.

    ``code`` and ``reason`` are the close code and reason, ``clean`` whether both Close frames
    were exchanged, ``error`` the native error text (``None`` when nothing went wrong).
    """

    def __init__(
        self,
        code: int | None = None,
        reason: str = "",
        clean: bool = False,
        error: str | None = None,
        error_status: int = 0,
    ) -> None:
        if code is None:
            text = "the connection is closed" + (f": {error}" if error else "")
        else:
            text = f"connection closed: {code}" + (f" {reason!r}" if reason else "")
            text += " (clean)" if clean else " (not clean)"
            if error:
                text += f": {error}"
        super().__init__(text, error_status)
        self.code = code
        self.reason = reason
        self.clean = clean
        self.error = error


class ConnectionClosedOK(ConnectionClosed):
    """The connection ended cleanly with 1000 (normal) or 1001 (going away)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended abnormally or with an error code (1002-4999 other than 1000/1001)."""


def from_status(status: int, message: str | None = None, http_status: int = 0) -> WebSocketError:
    """The exception for a failed native call (reads the thread's last error unless given)."""
    if message is None:
        message = N.last_error()
    if status == N.ERR_INVALID_ARGUMENT:
        return InvalidArgument(message, status)
    if status == N.ERR_INVALID_STATE:
        return InvalidState(message, status)
    if status == N.ERR_TLS:
        return TLSError(message, status)
    if status == N.ERR_HANDSHAKE:
        return HandshakeError(message, http_status, status)
    if status == N.ERR_TIMEOUT:
        return OpenTimeout(message, status)
    if status in (N.ERR_DNS, N.ERR_CONNECT, N.ERR_IO):
        return ConnectError(message, status)
    if status == N.ERR_WOULD_BLOCK:
        return WouldBlock(message, status)
    if status == N.ERR_INTERNAL:
        return InternalError(message, status)
    return WebSocketError(message, status)
