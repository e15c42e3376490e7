"""Operations (issue 15 §3): session deadlines, tags and close by tag, broadcast, the staggered
drain, stats and pings. The C declarations of those functions, their structs, and the methods
that ``NativeConn`` and ``ServerCore`` (``_core.py``) take from the mixins below.
"""

from __future__ import annotations

import time
from ctypes import byref, c_size_t, c_uint16, c_uint64, c_void_p, sizeof
from dataclasses import dataclass, field
from typing import Any, Callable

from . import _native as N
from ._convert import _b, check
from .errors import InvalidState

#: WSN_STATS_VERSION: the version of the stats and report structs.
STATS_VERSION = N.STATS_VERSION

@dataclass(frozen=True)
class ConnStats:
    """A connection's counters (``Connection.stats``)."""

    bytes_sent: int
    bytes_received: int
    messages_sent: int
    messages_received: int
    #: Bytes queued and not yet handed to the kernel.
    queued_bytes: int
    #: Round-trip time of the last answered ping, in seconds (None before the first).
    last_rtt: float | None
    #: How many round trips were measured (grows with each answered ping).
    rtt_count: int
    #: Seconds since the connection was made.
    age: float


@dataclass(frozen=True)
class ServerStats:
    """A server's counters (``Server.stats``)."""

    open_connections: int
    handshakes_in_progress: int
    accepted_total: int
    refused_total: int
    closed_total: int
    #: Refusals by HTTP status.
    refusals: dict[int, int] = field(default_factory=dict)
    #: Ended connections by close code.
    closes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BroadcastReport:
    """What ``Server.broadcast`` did: how many connections queued the message, how many refused
    it (full send queue), how many were already closing."""

    queued: int
    refused: int
    not_open: int


@dataclass(frozen=True)
class DrainReport:
    """What ``Server.drain`` did."""

    connections: int
    closed_clean: int
    aborted: int
    failed: int


def _sized(t: Any) -> Any:
    s = t()
    s.size = sizeof(t)
    return s


def _pairs(fn: Callable[..., int], ptr: int) -> dict[int, int]:
    n = fn(ptr, None, None, 0)
    if n == 0:
        return {}
    codes, counts = (c_uint16 * n)(), (c_uint64 * n)()
    n = min(n, fn(ptr, codes, counts, n))
    return {int(codes[i]): int(counts[i]) for i in range(n)}


def _ms(seconds: float | None) -> int:
    if seconds is None or seconds <= 0:
        return 0
    return max(1, round(seconds * 1000))


class ConnOps:
    """Deadline, tags, stats and pings of a connection (mixed into every connection class)."""

    _ptr: int | None

    def _live_ptr(self) -> int:
        if self._ptr is None:
            raise InvalidState("the connection handle was freed", N.ERR_INVALID_STATE)
        return self._ptr

    def set_deadline(self, seconds: float | None, code: int = 4401, reason: str = "session expired") -> None:
        """Closes the connection with ``code`` and ``reason`` once ``seconds`` have passed (a
        session deadline). Calling it again replaces the deadline; None or 0 clears it."""
        check(N.wsn_conn_set_deadline(self._live_ptr(), _ms(seconds), code, _b(reason)))

    def add_tag(self, tag: str) -> None:
        """Adds a tag (a user id, a session id, a room): the server finds the connection by it
        (``close_tag``, ``count_tag``, ``connections_with_tag``, ``broadcast``)."""
        check(N.wsn_conn_add_tag(self._live_ptr(), tag.encode("utf-8")))

    def remove_tag(self, tag: str) -> None:
        """Removes a tag (nothing happens when the connection did not carry it)."""
        check(N.wsn_conn_remove_tag(self._live_ptr(), tag.encode("utf-8")))

    def has_tag(self, tag: str) -> bool:
        """Whether the connection carries ``tag``."""
        return self._ptr is not None and bool(N.wsn_conn_has_tag(self._ptr, tag.encode("utf-8")))

    def ping(self) -> None:
        """Sends a Ping; its round-trip time shows in ``stats.last_rtt`` once the Pong came
        (``stats.rtt_count`` grows by one)."""
        check(N.wsn_conn_ping(self._live_ptr()))

    @property
    def stats(self) -> ConnStats:
        """The connection's counters now."""
        s = _sized(N.wsn_conn_stats)
        check(N.wsn_conn_get_stats(self._live_ptr(), byref(s)))
        return ConnStats(
            bytes_sent=s.bytes_sent,
            bytes_received=s.bytes_received,
            messages_sent=s.messages_sent,
            messages_received=s.messages_received,
            queued_bytes=s.queued_bytes,
            last_rtt=s.last_rtt_us / 1e6 if s.last_rtt_us else None,
            rtt_count=s.rtt_count,
            age=s.age_ms / 1000.0,
        )


class ServerOps:
    """Close by tag, broadcast, drain and stats of a server (mixed into every server class)."""

    _ptr: int | None

    def _server_ptr(self) -> int:
        if self._ptr is None:
            raise InvalidState("the server was closed", N.ERR_INVALID_STATE)
        return self._ptr

    def _conn_object(self, ptr: int) -> Any:  # pragma: no cover - overridden by ServerCore
        return None

    def _may_wait_for_open(self) -> bool:  # pragma: no cover - overridden by ServerCore
        return False

    def close_tag(self, tag: str, code: int = 4000, reason: str = "") -> int:
        """Closes every connection carrying ``tag`` (a log-out) with ``code`` and ``reason``;
        returns how many."""
        n = c_size_t()
        check(N.wsn_server_close_tag(self._server_ptr(), tag.encode("utf-8"), code, _b(reason), byref(n)))
        return n.value

    def count_tag(self, tag: str) -> int:
        """How many open connections carry ``tag``."""
        return int(N.wsn_server_count_tag(self._server_ptr(), tag.encode("utf-8")))

    def connections_with_tag(self, tag: str) -> list[Any]:
        """The open connections carrying ``tag``, oldest first."""
        ptr, t = self._server_ptr(), tag.encode("utf-8")
        # The core tags a connection in its accept hook, before the OPEN event has reached
        # Python and made its object: such a connection is waited for (briefly, and never on a
        # callback thread, which is the one that would deliver that OPEN).
        deadline = time.monotonic() + 2.0
        while True:
            n = N.wsn_server_list_tag(ptr, t, None, 0)
            out = (c_void_p * max(n, 1))()
            n = min(n, N.wsn_server_list_tag(ptr, t, out, n))
            found = [self._conn_object(out[i]) for i in range(n) if out[i]]
            if None not in found or not self._may_wait_for_open() or time.monotonic() > deadline:
                return [c for c in found if c is not None]
            time.sleep(0.002)

    def broadcast(self, message: str | bytes, tag: str | None = None) -> BroadcastReport:
        """Sends ``message`` (str: text, bytes: binary) to every open connection, or to those
        carrying ``tag``: the frame is built once and shared; each connection's send limit and
        policy apply, and none waits for another."""
        if isinstance(message, str):
            data, flags = message.encode("utf-8"), N.SEND_TEXT
        else:
            data, flags = bytes(message), 0
        r = _sized(N.wsn_broadcast_report)
        check(N.wsn_server_broadcast(self._server_ptr(), _b(tag), data, len(data), flags, byref(r)))
        return BroadcastReport(queued=r.queued, refused=r.refused, not_open=r.not_open)

    def drain(self, window: float, code: int = 1001, reason: str = "") -> DrainReport:
        """Drains the server for a deploy: stops accepting, closes the connections with ``code``
        spread evenly over the first three quarters of ``window`` seconds, aborts what is still
        open at its end, and returns once every connection ended. Blocks for up to the window
        (not from inside a callback)."""
        r = _sized(N.wsn_drain_report)
        check(N.wsn_server_drain(self._server_ptr(), _ms(window), code, _b(reason), byref(r)))
        return DrainReport(connections=r.connections, closed_clean=r.closed_clean, aborted=r.aborted, failed=r.failed)

    @property
    def stats(self) -> ServerStats:
        """The server's counters now."""
        ptr = self._server_ptr()
        s = _sized(N.wsn_server_stats)
        check(N.wsn_server_get_stats(ptr, byref(s)))
        return ServerStats(
            open_connections=s.open_connections,
            handshakes_in_progress=s.handshakes_in_progress,
            accepted_total=s.accepted_total,
            refused_total=s.refused_total,
            closed_total=s.closed_total,
            refusals=_pairs(N.wsn_server_get_refusals, ptr),
            closes=_pairs(N.wsn_server_get_closes, ptr),
        )


def request_set_deadline(ptr: int, seconds: float | None, code: int, reason: str) -> None:
    check(N.wsn_request_set_deadline(ptr, _ms(seconds), code, _b(reason)))


def request_add_tag(ptr: int, tag: str) -> None:
    check(N.wsn_request_add_tag(ptr, tag.encode("utf-8")))


__all__ = ["STATS_VERSION", "BroadcastReport", "ConnStats", "DrainReport", "ServerStats"]
