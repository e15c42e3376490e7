"""The surface: loading, version, declarations, arguments, errors, properties, callbacks."""

import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import WAIT, echo_handler, wait_until

import wsnative
from wsnative import _native

REPO = Path(__file__).resolve().parents[3]


def test_version_matches_package():
    assert wsnative.library_version().split(".")[:2] == wsnative.__version__.split(".")[:2]
    assert os.path.isfile(wsnative.library_path)


@pytest.mark.skipif(not (REPO / "include" / "wsnative.h").is_file(), reason="header not in this checkout")
def test_every_header_function_is_declared_once():
    header = (REPO / "include" / "wsnative.h").read_text()
    in_header = set(re.findall(r"^[a-z][\w \*]*?\b(wsn_\w+)\(", header, re.M))
    source = Path(_native.__file__).read_text()
    declared = re.findall(r"^(wsn_\w+) = _fn\(", source, re.M)
    assert len(declared) == len(set(declared))
    assert in_header == set(declared)
    for name in declared:
        fn = getattr(_native, name)
        assert fn.argtypes is not None and fn.restype is not int, name


def _run_python(code: str, env_extra: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def test_missing_library_says_where_it_looked():
    r = _run_python("import wsnative", {"WSNATIVE_LIBRARY": "/nonexistent/libwsnative.so"})
    assert r.returncode != 0
    assert "ImportError" in r.stderr or "LibraryNotFound" in r.stderr
    assert "/nonexistent/libwsnative.so" in r.stderr and "WSNATIVE_LIBRARY" in r.stderr


def test_version_mismatch_is_a_clear_import_error():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('l', {str(Path(wsnative.__file__).parent / '_lib.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "m.API_VERSION = (9, 9)\n"
        "try:\n    m.load()\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    r = _run_python(code, {"WSNATIVE_LIBRARY": wsnative.library_path})
    assert "ERR" in r.stdout and "needs 9.9.x" in r.stdout and wsnative.library_path in r.stdout, r.stdout + r.stderr


def test_invalid_arguments_carry_the_native_message(url):
    with pytest.raises(wsnative.InvalidArgument) as e:
        wsnative.connect("not a url")
    assert e.value.message and e.value.error_status == _native.ERR_INVALID_ARGUMENT
    with pytest.raises(wsnative.InvalidArgument):
        wsnative.connect(url, headers={"Bad Name": "x"})
    with wsnative.connect(url) as ws:
        with pytest.raises(wsnative.InvalidArgument) as e:
            ws.close(999)
        assert "999" in str(e.value)
        with pytest.raises(wsnative.InvalidArgument):
            ws.close(1000, "x" * 124)
        with pytest.raises(TypeError):
            ws.send(12)  # type: ignore[arg-type]
        assert ws.state == wsnative.State.OPEN


def test_connect_refused_is_connect_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(wsnative.ConnectError) as e:
        wsnative.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
    assert isinstance(e.value, ConnectionError) and "refused" in e.value.message


def test_properties_recv_timeout_and_iteration(url):
    ws = wsnative.connect(url)
    assert ws.state == wsnative.State.OPEN and not ws.closed
    assert ws.subprotocol is None and ws.remote_address.startswith("127.0.0.1:")
    assert ws.buffered_amount >= 0 and ws.close_code is None
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.05)
    for m in ("a", b"b", "", b"", "ünïcödé"):
        ws.send(m)
        assert ws.recv(timeout=WAIT) == m
    ws.send(bytearray(b"ba"))
    ws.send(memoryview(b"mv"))
    assert ws.recv(timeout=WAIT) == b"ba" and ws.recv(timeout=WAIT) == b"mv"
    ws.close(1000, "done")
    assert ws.state == wsnative.State.CLOSED and ws.closed
    assert (ws.close_code, ws.close_reason, ws.was_clean, ws.close_error) == (1000, "done", True, None)
    assert list(ws) == []  # normal end: iteration just stops
    with pytest.raises(wsnative.ConnectionClosedOK):
        ws.recv(timeout=WAIT)
    with pytest.raises(wsnative.ConnectionClosed):
        ws.send("late")
    ws.close()  # twice: harmless
    ws.abort()


def test_subprotocol_negotiation_and_accept_hook():
    seen = []

    def accept(req: wsnative.Request):
        seen.append((req.path, req.query, req.header("X-Token"), req.subprotocols))
        if req.path == "/refuse":
            return 403
        if req.path == "/teapot":
            return (418, "short and stout")
        if req.path == "/close":
            return (4001, "go away")
        if req.path == "/raise":
            raise RuntimeError("accept hook failure (expected by the test)")
        return "chat.v2" if "chat.v2" in req.subprotocols else None

    with wsnative.serve("127.0.0.1", 0, echo_handler, accept=accept) as server:
        base = f"ws://127.0.0.1:{server.port}"
        with wsnative.connect(
            base + "/room?x=1", headers={"X-Token": "t0k"}, subprotocols=["chat.v1", "chat.v2"]
        ) as ws:
            assert ws.subprotocol == "chat.v2"
        assert seen[0] == ("/room", "x=1", "t0k", ["chat.v1", "chat.v2"])
        with pytest.raises(wsnative.HandshakeError) as e:
            wsnative.connect(base + "/refuse")
        assert e.value.status == 403 and e.value.message
        with pytest.raises(wsnative.HandshakeError) as e:
            wsnative.connect(base + "/teapot")
        assert e.value.status == 418
        with pytest.raises(wsnative.HandshakeError) as e:
            wsnative.connect(base + "/raise")
        assert e.value.status == 500
        ws = wsnative.connect(base + "/close")
        with pytest.raises(wsnative.ConnectionClosedError) as e:
            ws.recv(timeout=WAIT)
        assert (e.value.code, e.value.reason) == (4001, "go away")


def test_server_subprotocols_and_origin_check():
    with wsnative.serve(
        "127.0.0.1", 0, echo_handler, subprotocols=["b", "a"], origins=["https://good.example"]
    ) as server:
        base = f"ws://127.0.0.1:{server.port}/"
        with wsnative.connect(base, subprotocols=["a", "b"], origin="https://good.example") as ws:
            assert ws.subprotocol == "a"  # the client's preference among the server's
        with pytest.raises(wsnative.HandshakeError) as e:
            wsnative.connect(base, origin="https://evil.example")
        assert e.value.status == 403
        with wsnative.connect(base) as ws:  # no Origin: not a browser, allowed
            ws.send("x")
            assert ws.recv(timeout=WAIT) == "x"


def test_max_connections_gives_503():
    hold = threading.Event()

    def handler(conn):
        hold.wait(WAIT)

    with wsnative.serve("127.0.0.1", 0, handler, max_connections=1) as server:
        base = f"ws://127.0.0.1:{server.port}/"
        first = wsnative.connect(base)
        with pytest.raises(wsnative.HandshakeError) as e:
            wsnative.connect(base)
        assert e.value.status == 503
        hold.set()
        first.close()


def test_max_size_closes_with_1009(echo_server):
    ws = wsnative.connect(f"ws://127.0.0.1:{echo_server.port}/", max_size=1000)
    ws.send(b"x" * 2000)  # the echo comes back too big for this client
    with pytest.raises(wsnative.ConnectionClosedError) as e:
        ws.recv(timeout=WAIT)
    assert e.value.code == 1009


def test_tls_errors(tmp_path, url):
    with pytest.raises(wsnative.TLSError):
        wsnative.connect(url.replace("ws://", "wss://"), ca_file=str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(wsnative.TLSError):
        wsnative.serve("127.0.0.1", 0, echo_handler, tls_cert=str(bad), tls_key=str(bad))


def _make_cert(tmp_path):
    import shutil

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    cert, key, csr = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "req.csr"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")

    def run(*args):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=wsnative test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", ext)
    return ca, cert, key


def test_wss_with_own_ca_and_unknown_issuer(tmp_path):
    ca, cert, key = _make_cert(tmp_path)
    with wsnative.serve("127.0.0.1", 0, echo_handler, tls_cert=cert, tls_key=key) as server:
        u = f"wss://localhost:{server.port}/"
        with wsnative.connect(u, ca_file=str(ca), tls_roots="none") as ws:
            ws.send("secure")
            assert ws.recv(timeout=WAIT) == "secure"
        with pytest.raises(wsnative.TLSError) as e:
            wsnative.connect(u)  # bundled roots do not know this self-signed certificate
        assert e.value.message


def test_callbacks_run_on_native_threads_and_may_call_back(url):
    got = []
    done = threading.Event()
    closed = []

    def on_message(conn, message):
        got.append((message, threading.get_ident() != main))
        if message == "ping":
            conn.send("pong")  # re-entrant call from the callback
        elif message == "pong":
            conn.close(4000, "from callback")  # starts the close and returns

    def on_close(conn, code, reason):
        closed.append((code, reason))
        done.set()

    main = threading.get_ident()
    ws = wsnative.connect(url, on_message=on_message, on_close=on_close)
    ws.send("ping")
    assert done.wait(WAIT)
    assert got == [("ping", True), ("pong", True)]
    assert closed == [(4000, "from callback")]
    with pytest.raises(wsnative.ConnectionClosedError):
        ws.recv(timeout=WAIT)


def test_raising_callbacks_are_logged_and_harmless(url, caplog):
    received = []

    def on_message(conn, message):
        received.append(message)
        raise ValueError(f"on_message failure {message} (expected by the test)")

    def on_close(conn, code, reason):
        raise RuntimeError("close callback failure (expected by the test)")

    with caplog.at_level(logging.ERROR, logger="wsnative"):
        ws = wsnative.connect(url, on_message=on_message, on_close=on_close)
        for i in range(5):
            ws.send(str(i))
        assert wait_until(lambda: len(received) == 5)
        assert ws.state == wsnative.State.OPEN  # the connection goes on
        ws.close()
        assert ws.close_code == 1000
    texts = [r.getMessage() + str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert sum("on_message failure" in t for t in texts) == 5
    assert any("close callback failure" in t for t in texts)


def test_handler_that_raises_closes_with_1011(caplog):
    def handler(conn):
        conn.recv(timeout=WAIT)
        raise KeyError("handler failure (expected by the test)")

    with caplog.at_level(logging.ERROR, logger="wsnative"):
        with wsnative.serve("127.0.0.1", 0, handler) as server:
            ws = wsnative.connect(f"ws://127.0.0.1:{server.port}/")
            ws.send("boom")
            with pytest.raises(wsnative.ConnectionClosedError) as e:
                ws.recv(timeout=WAIT)
            assert e.value.code == 1011
            # the server still serves
            ws2 = wsnative.connect(f"ws://127.0.0.1:{server.port}/")
            ws2.close()
    assert any("handler failure" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_server_close_ends_connections_with_1001():
    def handler(conn):
        for m in conn:
            conn.send(m)

    server = wsnative.serve("127.0.0.1", 0, handler, drain_timeout=2.0)
    clients = [wsnative.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(3)]
    assert wait_until(lambda: len(server.connections) == 3)
    t0 = time.monotonic()
    server.close()
    assert time.monotonic() - t0 < 4
    for c in clients:
        assert c.wait_closed(WAIT)
        assert c.close_code == 1001 and c.was_clean
    server.close()  # twice: harmless


def test_unread_messages_pause_reading_and_reading_resumes():
    """Flow control (the core's): past max_queue unread messages the peer's data stays with
    the peer; taking messages lets reading go on."""
    received = []

    def handler(conn):
        for i in range(300):
            conn.send(b"%06d" % i + b"x" * 65530)
        for m in conn:
            received.append(m)

    with wsnative.serve("127.0.0.1", 0, handler) as server:
        with wsnative.connect(f"ws://127.0.0.1:{server.port}/", max_queue=8) as c:
            assert wait_until(lambda: c._queue.qsize() >= 8)
            time.sleep(0.3)
            settled = c._queue.qsize()
            assert settled <= 10, settled  # the core stopped reading at 8 unacknowledged
            time.sleep(0.3)
            assert c._queue.qsize() == settled
            got = [c.recv(timeout=10) for _ in range(300)]
            assert [int(m[:6]) for m in got] == list(range(300))
