#!/usr/bin/env python3
"""Python WebSocket echo servers under the same load, side by side.

    python bench/server_bench.py [--seconds 3] [--rounds 3] [--servers ...]

Each server runs in its own process; the load comes from bench/loadgen.c (wsnative's poll mode
in C, one thread, built with cc): 50 connections, 16 binary messages of 64 B in flight on each.
Servers: wsnative.asyncio, wsnative (blocking, a thread per connection), picows, socketify,
websockets, and tokio-tungstenite (examples/tt_echo_server.rs, built with cargo) as a native
reference. Rounds alternate between servers; the table shows each server's best and median
messages per second. The libraries are installed with pip in build/benchvenv (see _venv.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import _venv

_venv.ensure()

HERE = _venv.HERE
REPO = _venv.REPO
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "release"

SERVERS: Dict[str, str] = {
    "wsnative.asyncio": """
import asyncio, wsnative.asyncio as wa
async def echo(conn):
    async for m in conn:
        await conn.send(m)
async def main():
    async with wa.serve("127.0.0.1", PORT, echo, max_size=None, ping_interval=None):
        print("listening", flush=True)
        await asyncio.Future()
asyncio.run(main())
""",
    "wsnative": """
import wsnative
def echo(conn):
    for m in conn:
        conn.send(m)
s = wsnative.serve("127.0.0.1", PORT, echo, max_size=None, ping_interval=None)
print("listening", flush=True)
s.serve_forever()
""",
    "picows": """
import asyncio
from picows import ws_create_server, WSListener, WSMsgType
class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
            transport.send(frame.msg_type, frame.get_payload_as_bytes())
async def main():
    server = await ws_create_server(lambda request: Echo(), "127.0.0.1", PORT)
    print("listening", flush=True)
    await server.serve_forever()
asyncio.run(main())
""",
    "socketify": """
from socketify import App, CompressOptions
app = App()
app.ws("/*", {"compression": CompressOptions.DISABLED, "max_payload_length": 16 << 20,
              "message": lambda ws, message, opcode: ws.send(message, opcode)})
app.listen(PORT, lambda config: print("listening", flush=True))
app.run()
""",
    "websockets": """
import asyncio
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", PORT, max_size=None, compression=None, ping_interval=None):
        print("listening", flush=True)
        await asyncio.Future()
asyncio.run(main())
""",
}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_loadgen() -> Path:
    exe = REPO / "build" / "bench" / "loadgen"
    exe.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(HERE / "loadgen.c"), "-I", str(REPO / "include"),
                    "-L", str(TARGET), "-lwsnative", f"-Wl,-rpath,{TARGET}"], check=True)
    return exe


def tt_echo_server() -> Optional[Path]:
    exe = TARGET / "examples" / "tt_echo_server"
    if not exe.exists() and shutil.which("cargo"):
        subprocess.run(["cargo", "build", "--release", "--example", "tt_echo_server"], cwd=REPO, check=False)
    return exe if exe.exists() else None


def start(name: str, port: int, tt: Optional[Path]) -> subprocess.Popen:
    if name == "tokio-tungstenite":
        cmd = [str(tt), str(port)]
    else:
        cmd = [sys.executable, "-c", SERVERS[name].replace("PORT", str(port))]
    # stderr dropped: asyncio servers log every write to a connection the load generator aborted
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()  # type: ignore[union-attr]
    if "listening" not in line:
        p.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return p


def main() -> int:
    names = list(SERVERS) + ["tokio-tungstenite"]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--servers", default=",".join(names))
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    loadgen = build_loadgen()
    tt = tt_echo_server() if "tokio-tungstenite" in servers else None
    if "tokio-tungstenite" in servers and tt is None:
        servers.remove("tokio-tungstenite")
    import wsnative

    print(f"# echo servers, {args.connections} connections x {args.in_flight} in flight, {args.size} B binary; "
          f"load: bench/loadgen.c; {args.rounds} rounds of {args.seconds:g} s")
    print(f"# python {sys.version.split()[0]}; wsnative {wsnative.library_version()}; {_venv.versions()}; "
          f"{os.cpu_count()} CPUs")
    results: Dict[str, List[float]] = {s: [] for s in servers}
    for r in range(args.rounds):
        for name in servers:
            port = free_port()
            try:
                p = start(name, port, tt)
            except Exception as e:
                print(f"# {name}: {e}")
                continue
            try:
                out = subprocess.run([str(loadgen), f"ws://127.0.0.1:{port}/", str(args.connections), str(args.in_flight),
                                      str(args.seconds), str(args.size), "1"], capture_output=True, text=True,
                                     timeout=args.seconds + 60)
                rate = [float(w.split()[1]) for w in out.stdout.splitlines() if w.startswith("msgs_per_s")]
                if rate:
                    results[name].append(rate[0])
                else:
                    print(f"# {name} round {r + 1}: {out.stderr.strip()}")
            finally:
                p.kill()
                p.wait(10)
    print(f"\n| server | best msg/s | median msg/s |\n|---|---:|---:|")
    for name in servers:
        v = results[name]
        if v:
            print(f"| {name} | {max(v):,.0f} | {statistics.median(v):,.0f} |")
        else:
            print(f"| {name} | failed | failed |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
