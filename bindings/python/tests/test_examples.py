"""The examples in examples/python run."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PKG_ROOT

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/python not in this checkout")


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_ROOT, os.environ.get("PYTHONPATH", "")]))


def _start(*args):
    p = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                         text=True, env=_env())
    line = p.stdout.readline()
    assert "ws://127.0.0.1:" in line, line
    return p, line.split("ws://", 1)[1].split()[0].rstrip("/")


def test_echo_server_and_client():
    server, addr = _start(EXAMPLES / "echo_server.py", 0)
    try:
        r = subprocess.run([sys.executable, str(EXAMPLES / "echo_client.py"), f"ws://{addr}/", "hello", "wörld"],
                           capture_output=True, text=True, timeout=30, env=_env())
        assert r.returncode == 0, r.stderr
        assert r.stdout.split("\n")[:2] == ["hello", "wörld"]
    finally:
        server.terminate()
        server.wait(15)


def test_asyncio_chat():
    server, addr = _start(EXAMPLES / "chat_asyncio.py", "server", 0)
    clients = []
    try:
        for name in ("ann", "bob"):
            clients.append(subprocess.Popen(
                [sys.executable, str(EXAMPLES / "chat_asyncio.py"), "client", name, f"ws://{addr}/"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()))
        time.sleep(1.0)  # both joined
        clients[0].stdin.write("hi bob\n")
        clients[0].stdin.flush()
        out = clients[1].stdout.readline()
        assert out.strip() == "ann: hi bob"
    finally:
        for c in clients:
            c.kill()
            c.wait(15)
        server.terminate()
        server.wait(15)
