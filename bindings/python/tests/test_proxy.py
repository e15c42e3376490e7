"""Proxies (issue 13) through the Python binding, against tinyproxy (HTTP CONNECT) and
microsocks (SOCKS5) started here with generated configurations (test.sh installs them)."""

import socket
import subprocess
import time

import pytest
from conftest import WAIT

import wsnative


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(proc, port):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the proxy exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("the proxy did not listen within 20 s")


@pytest.fixture
def start_proxy(tmp_path):
    procs = []

    def tinyproxy(extra=""):
        port = _free_port()
        conf = tmp_path / f"tinyproxy-{port}.conf"
        conf.write_text(f"Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{tmp_path}/tp-{port}.log\"\n"
                        f"LogLevel Connect\nAllow 127.0.0.1\n{extra}\n")
        p = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        _wait_listening(p, port)
        return port, tmp_path / f"tp-{port}.log"

    def microsocks(user=None, password=None):
        port = _free_port()
        args = ["microsocks", "-i", "127.0.0.1", "-p", str(port)]
        if user:
            args += ["-u", user, "-P", password]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        _wait_listening(p, port)
        return port

    yield tinyproxy, microsocks
    for p in procs:
        p.kill()
        p.wait(timeout=WAIT)


def _echo(url, **kw):
    with wsnative.connect(url, **kw) as ws:
        ws.send("via proxy")
        assert ws.recv(timeout=WAIT) == "via proxy"


def test_http_connect_proxy_with_and_without_basic_auth(url, start_proxy):
    tinyproxy, _ = start_proxy
    open_port, log = tinyproxy()
    _echo(url, proxy=f"http://127.0.0.1:{open_port}")
    assert "CONNECT 127.0.0.1:" in log.read_text()
    auth_port, _ = tinyproxy("BasicAuth alice s3cret")
    _echo(url, proxy=f"http://alice:s3cret@127.0.0.1:{auth_port}")
    with pytest.raises(wsnative.HandshakeError) as e:
        wsnative.connect(url, proxy=f"http://127.0.0.1:{auth_port}")
    assert e.value.status == 407 and f"127.0.0.1:{auth_port}" in e.value.message
    with pytest.raises(wsnative.HandshakeError) as e:
        wsnative.connect(url, proxy=f"http://alice:wrong@127.0.0.1:{auth_port}")
    assert e.value.status in (401, 407) and "check the user and password" in e.value.message


def test_proxy_from_the_environment_only_when_asked_and_no_proxy_bypasses(url, start_proxy, monkeypatch):
    tinyproxy, _ = start_proxy
    port, log = tinyproxy()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    _echo(url)  # not asked: direct
    assert "CONNECT 127.0.0.1:" not in log.read_text()
    _echo(url, proxy=True)
    assert log.read_text().count("CONNECT 127.0.0.1:") == 1
    monkeypatch.setenv("no_proxy", "127.0.0.0/8")
    _echo(url, proxy=True)
    assert log.read_text().count("CONNECT 127.0.0.1:") == 1


def test_socks5_proxy_with_and_without_a_password(url, start_proxy):
    _, microsocks = start_proxy
    _echo(url, proxy=f"socks5://127.0.0.1:{microsocks()}")
    locked = microsocks("bob", "pa55")
    _echo(url, proxy=f"socks5://bob:pa55@127.0.0.1:{locked}")
    with pytest.raises(wsnative.HandshakeError) as e:
        wsnative.connect(url, proxy=f"socks5://bob:wrong@127.0.0.1:{locked}")
    assert "refused the user name and password" in e.value.message
    with pytest.raises(wsnative.InvalidArgument):
        wsnative.connect(url, proxy="https://proxy:443")
