"""The native library's log records in Python's logging (wsnative.enable_logging)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from conftest import WAIT, echo_handler, wait_until

import wsnative


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def keep():
    handler = Keep()
    root = logging.getLogger("wsnative")
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    yield handler
    wsnative.disable_logging()
    root.removeHandler(handler)
    root.setLevel(old)


def refused(origin_server: wsnative.Server) -> None:
    with pytest.raises(wsnative.HandshakeError) as e:
        wsnative.connect(f"ws://127.0.0.1:{origin_server.port}/", origin="https://evil.example")
    assert e.value.status == 403


def test_a_refused_handshake_is_logged_with_its_reason(keep):
    wsnative.enable_logging(logging.INFO)
    with wsnative.serve("127.0.0.1", 0, echo_handler, origins=["https://good.example"]) as server:
        refused(server)

        def found(name: str, text: str) -> list[logging.LogRecord]:
            return [r for r in keep.records if r.name == name and text in r.getMessage()]

        assert wait_until(lambda: found("wsnative.server", "origin not allowed"), WAIT), keep.records
        (srv,) = found("wsnative.server", "origin not allowed")
        assert srv.levelno == logging.INFO and "403" in srv.getMessage()
        assert srv.target == "wsnative::server"  # type: ignore[attr-defined]
        assert wait_until(lambda: found("wsnative.client", "403"), WAIT), keep.records
        (cli,) = found("wsnative.client", "403")
        assert cli.conn_id > 0  # type: ignore[attr-defined]
        assert not [r for r in keep.records if r.levelno < logging.INFO]


def test_records_name_their_connection(keep):
    wsnative.enable_logging(logging.DEBUG)
    with wsnative.serve("127.0.0.1", 0, echo_handler) as server:
        ws = wsnative.connect(f"ws://127.0.0.1:{server.port}/")
        assert ws.conn_id > 0
        ws.close(1000, "done")

        def mine() -> list[logging.LogRecord]:
            return [r for r in keep.records if getattr(r, "conn_id", 0) == ws.conn_id]

        assert wait_until(lambda: mine(), WAIT), keep.records
        assert "closed cleanly with 1000" in mine()[0].getMessage()
        assert mine()[0].levelno == logging.DEBUG


def test_disabled_logging_makes_no_record(keep):
    wsnative.enable_logging(logging.INFO)
    wsnative.disable_logging()
    with wsnative.serve("127.0.0.1", 0, echo_handler, origins=["https://good.example"]) as server:
        refused(server)
    assert not keep.records
    # A level above what the library logs for a refusal: no record either.
    wsnative.enable_logging(logging.WARNING)
    with wsnative.serve("127.0.0.1", 0, echo_handler, origins=["https://good.example"]) as server:
        refused(server)
    assert not keep.records


def test_logging_is_off_by_default():
    # A fresh interpreter that never calls enable_logging, with a handler ready for anything.
    code = (
        "import logging, wsnative\n"
        "got = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): got.append(r)\n"
        "logging.getLogger('wsnative').addHandler(H()); logging.getLogger('wsnative').setLevel(5)\n"
        "logging.getLogger().setLevel(5)\n"
        "def echo(c):\n    [c.send(m) for m in c]\n"
        "with wsnative.serve('127.0.0.1', 0, echo, origins=['https://good.example']) as s:\n"
        "    try:\n"
        "        wsnative.connect(f'ws://127.0.0.1:{s.port}/', origin='https://evil.example')\n"
        "    except wsnative.HandshakeError:\n        pass\n"
        "print('RECORDS', len(got))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "RECORDS 0" in r.stdout, r.stdout + r.stderr
