"""The native library's log records, routed to Python's ``logging`` (logger ``wsnative``).

Off by default (then the library does not even format its records). ``enable_logging()`` turns
it on: each record goes to ``logging.getLogger("wsnative." + part)`` (``wsnative.server``,
``wsnative.client``, ``wsnative.connection``; the TLS library's under ``wsnative.tls``), children
of ``wsnative``, so a handler or level set on ``logging.getLogger("wsnative")`` sees them all. The
record carries ``conn_id`` (the connection's ``conn_id``, 0 when none) and ``target`` (the
library's own name of the part, such as ``wsnative::server``).
"""

from __future__ import annotations

import atexit
import logging
import threading

from . import _native as N
from ._convert import check

#: Python's level of each native level (error, warn, info, debug, trace); TRACE is 5.
TRACE = 5
_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: TRACE}
logging.addLevelName(TRACE, "TRACE")

_lock = threading.Lock()


def _native_level(level: int) -> int:
    """The most detailed native level that a Python level lets through (0: off)."""
    for native in (5, 4, 3, 2, 1):
        if _LEVELS[native] >= level:
            return native
    return 0


def _logger_name(target: str) -> str:
    parts = target.split("::")
    if parts[0] == "wsnative":
        parts = parts[1:]
    elif parts[0] in ("rustls", "tokio_rustls"):
        parts = ["tls", *parts]
    return ".".join(["wsnative", *parts])


def _on_record(_user: int | None, level: int, target: bytes | None, message: bytes | None, conn_id: int) -> None:
    try:
        t = (target or b"").decode("utf-8", "replace")
        logger = logging.getLogger(_logger_name(t))
        py_level = _LEVELS.get(level, logging.INFO)
        if logger.isEnabledFor(py_level):
            text = (message or b"").decode("utf-8", "replace")
            logger.log(py_level, "%s", text, extra={"conn_id": conn_id, "target": t})
    except Exception:  # never let an exception reach the native thread
        pass


# Kept alive for the life of the process: the library may call it until it is replaced.
_callback = N.wsn_log_fn(_on_record)


def enable_logging(level: int | None = None) -> None:
    """Routes the native library's log records to ``logging.getLogger("wsnative")``.

    ``level``: the most detailed Python level wanted (records below it are not even made by the
    library); default: the effective level of the ``wsnative`` logger at this call. Call it again
    after changing that level. The records come from the library's threads (mostly its I/O
    threads): handlers should be quick.
    """
    if level is None:
        level = logging.getLogger("wsnative").getEffectiveLevel()
    native = _native_level(level)
    with _lock:
        check(N.wsn_log_set_callback(_callback if native else N.wsn_log_fn(), native, None))


def disable_logging() -> None:
    """Turns the native library's logging off (the default): no record is made any more."""
    with _lock:
        check(N.wsn_log_set_callback(N.wsn_log_fn(), 0, None))


def _at_exit() -> None:
    # No callback into an interpreter that is finalizing.
    try:
        N.wsn_log_set_callback(N.wsn_log_fn(), 0, None)
    except Exception:  # the library may be unloading
        pass


atexit.register(_at_exit)
