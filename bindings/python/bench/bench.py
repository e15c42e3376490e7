#!/usr/bin/env python3
"""Python WebSocket clients against one local echo server, side by side.

    python bench/bench.py [--seconds 2] [--server c|wsnative|websockets] [--clients ...]

Clients: wsnative (blocking), wsnative.callback (on_message), wsnative.asyncio, picows,
websockets (asyncio), websockets.sync, websocket-client (installed with pip in build/benchvenv:
see _venv.py). Workloads: 64 B and 64 KiB binary messages on one connection, ping-pong
(one message in flight) and 16 in flight. Prints messages per second, p50/p99 round-trip time
and how much faster wsnative.asyncio is than each client. The echo server runs in its own process:
by default wsnative's C example (examples/c/echo_server.c, built with cc), so no Python server
is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import _venv

_venv.ensure()

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
IN_FLIGHT = 16


def percentile(sorted_vals: List[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


# --------------------------------------------------------------------------- echo servers

def start_server(kind: str) -> Tuple[subprocess.Popen, int]:
    env = dict(os.environ)
    if kind == "c":
        lib_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "release"
        if os.environ.get("WSNATIVE_LIBRARY"):
            lib_dir = Path(os.environ["WSNATIVE_LIBRARY"]).parent
        exe = REPO / "build" / "bench" / "echo_server"
        exe.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["cc", "-O2", "-o", str(exe), str(REPO / "examples" / "c" / "echo_server.c"), "-I", str(REPO / "include"),
             "-L", str(lib_dir), "-lwsnative", f"-Wl,-rpath,{lib_dir}"],
            check=True,
        )
        cmd = [str(exe), "0"]
    elif kind == "wsnative":
        cmd = [sys.executable, "-c",
               "import wsnative\n"
               "def h(c):\n    for m in c: c.send(m)\n"
               "s = wsnative.serve('127.0.0.1', 0, h, max_size=None)\n"
               "print('listening on ws://127.0.0.1:%d' % s.port, flush=True)\ns.serve_forever()\n"]
    else:
        cmd = [sys.executable, "-c",
               "import asyncio\nfrom websockets.asyncio.server import serve\n"
               "async def h(ws):\n    async for m in ws: await ws.send(m)\n"
               "async def main():\n"
               "    async with serve(h, '127.0.0.1', 0, max_size=None, compression=None) as s:\n"
               "        print('listening on ws://127.0.0.1:%d' % s.sockets[0].getsockname()[1], flush=True)\n"
               "        await asyncio.Future()\n"
               "asyncio.run(main())\n"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()  # type: ignore[union-attr]
    port = int(line.strip().rsplit(":", 1)[1].strip("/"))
    return p, port


# --------------------------------------------------------------------------- workloads
# Each sync client is (send, recv, close); each async client is an async (send, recv, close).

def run_sync(send: Callable, recv: Callable, payload: bytes, inflight: int, seconds: float) -> Tuple[int, List[float]]:
    rtts: List[float] = []
    stamps: deque = deque()
    clock = time.perf_counter
    for _ in range(inflight):
        stamps.append(clock())
        send(payload)
    end = clock() + seconds
    n = 0
    while True:
        m = recv()
        now = clock()
        rtts.append(now - stamps.popleft())
        n += 1
        assert len(m) == len(payload)
        if now >= end:
            break
        stamps.append(clock())
        send(payload)
    while stamps:
        recv()
        stamps.popleft()
    return n, rtts


async def run_async(send, recv, payload: bytes, inflight: int, seconds: float) -> Tuple[int, List[float]]:
    rtts: List[float] = []
    stamps: deque = deque()
    clock = time.perf_counter
    for _ in range(inflight):
        stamps.append(clock())
        await send(payload)
    end = clock() + seconds
    n = 0
    while True:
        m = await recv()
        now = clock()
        rtts.append(now - stamps.popleft())
        n += 1
        assert len(m) == len(payload)
        if now >= end:
            break
        stamps.append(clock())
        await send(payload)
    while stamps:
        await recv()
        stamps.popleft()
    return n, rtts


def client_wsnative(url, payload, inflight, seconds):
    import wsnative

    ws = wsnative.connect(url, max_size=None, ping_interval=None)
    try:
        return run_sync(ws.send, ws.recv, payload, inflight, seconds)
    finally:
        ws.close()


def client_wsnative_callback(url, payload, inflight, seconds):
    import threading

    import wsnative

    rtts: List[float] = []
    stamps: deque = deque()
    clock = time.perf_counter
    done = threading.Event()
    state = {"n": 0, "end": clock() + 3600}

    def on_message(conn, m):
        now = clock()
        rtts.append(now - stamps.popleft())
        state["n"] += 1
        if now >= state["end"]:
            if not stamps:
                done.set()
            return
        stamps.append(clock())
        conn.send(payload)

    ws = wsnative.connect(url, max_size=None, ping_interval=None, on_message=on_message)
    try:
        state["end"] = clock() + seconds
        for _ in range(inflight):
            stamps.append(clock())
            ws.send(payload)
        done.wait(seconds + 30)
        return state["n"], rtts
    finally:
        ws.close()


def client_picows(url, payload, inflight, seconds):
    from picows import WSListener, WSMsgType, ws_connect

    clock = time.perf_counter

    class Listener(WSListener):
        def __init__(self) -> None:
            self.rtts: List[float] = []
            self.stamps: deque = deque()
            self.n = 0
            self.end = clock() + 3600
            self.done: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            frame.get_payload_as_bytes()  # as the other clients, take the message as bytes
            now = clock()
            self.rtts.append(now - self.stamps.popleft())
            self.n += 1
            if now >= self.end:
                if not self.stamps and not self.done.done():
                    self.done.set_result(None)
                return
            self.stamps.append(clock())
            transport.send(WSMsgType.BINARY, payload)

    async def main():
        transport, listener = await ws_connect(Listener, url, max_frame_size=1 << 30)
        listener.end = clock() + seconds
        for _ in range(inflight):
            listener.stamps.append(clock())
            transport.send(WSMsgType.BINARY, payload)
        await asyncio.wait_for(listener.done, seconds + 30)
        transport.send_close()
        transport.disconnect()
        return listener.n, listener.rtts

    return asyncio.run(main())


def client_wsnative_asyncio(url, payload, inflight, seconds):
    import wsnative.asyncio as wa

    async def main():
        async with wa.connect(url, max_size=None, ping_interval=None) as ws:
            return await run_async(ws.send, ws.recv, payload, inflight, seconds)

    return asyncio.run(main())


def client_websockets(url, payload, inflight, seconds):
    from websockets.asyncio.client import connect

    async def main():
        async with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
            return await run_async(ws.send, ws.recv, payload, inflight, seconds)

    return asyncio.run(main())


def client_websockets_sync(url, payload, inflight, seconds):
    from websockets.sync.client import connect

    with connect(url, max_size=None, compression=None) as ws:
        return run_sync(ws.send, ws.recv, payload, inflight, seconds)


def client_websocket_client(url, payload, inflight, seconds):
    import websocket

    ws = websocket.create_connection(url, skip_utf8_validation=True)
    try:
        return run_sync(ws.send_binary, ws.recv, payload, inflight, seconds)
    finally:
        ws.close()


CLIENTS: Dict[str, Callable] = {
    "wsnative": client_wsnative,
    "wsnative.callback": client_wsnative_callback,
    "wsnative.asyncio": client_wsnative_asyncio,
    "picows": client_picows,
    "websockets": client_websockets,
    "websockets.sync": client_websockets_sync,
    "websocket-client": client_websocket_client,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each case (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each case per client (default 3)")
    ap.add_argument("--server", choices=["c", "wsnative", "websockets"], default="c" if shutil.which("cc") else "wsnative")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of: " + ", ".join(CLIENTS))
    ap.add_argument("--sizes", default="64,65536", help="message sizes in bytes (default 64,65536)")
    ap.add_argument("--in-flight", default=f"1,{IN_FLIGHT}", help=f"messages in flight (default 1,{IN_FLIGHT})")
    args = ap.parse_args()
    clients = [c for c in args.clients.split(",") if c]
    for c in clients:
        if c not in CLIENTS:
            ap.error(f"unknown client {c}")

    server, port = start_server(args.server)
    url = f"ws://127.0.0.1:{port}/"
    import statistics

    import wsnative

    print(f"# echo server: {args.server} at {url}; wsnative library {wsnative.library_path} ({wsnative.library_version()})")
    print(f"# python {sys.version.split()[0]}; {_venv.versions()}; {args.rounds} rounds of {args.seconds:g} s per case, "
          f"clients alternating; msgs/s: median (best); RTT of the median round in microseconds")
    try:
        for size in map(int, args.sizes.split(",")):
            payload = os.urandom(size)
            for inflight in map(int, args.in_flight.split(",")):
                label = "ping-pong" if inflight == 1 else f"{inflight} in flight"
                runs: Dict[str, List[Tuple[float, List[float]]]] = {name: [] for name in clients}
                for _ in range(args.rounds):
                    for name in clients:
                        try:
                            n, rtts = CLIENTS[name](url, payload, inflight, args.seconds)
                        except Exception as e:  # a client missing or failing must not end the run
                            print(f"# {name} failed: {type(e).__name__}: {e}")
                            continue
                        total = sum(rtts) if inflight == 1 else None
                        runs[name].append((n / (total if total else args.seconds), sorted(rtts)))
                print(f"\n## {size} B, {label}")
                print(f"| client | msgs/s median (best) | p50 us | p99 us | wsnative.asyncio is x faster |")
                print("|---|---:|---:|---:|---:|")
                med = {n: statistics.median(r for r, _ in v) for n, v in runs.items() if v}
                base = med.get("wsnative.asyncio")
                for name, v in runs.items():
                    if not v:
                        print(f"| {name} | failed | | | |")
                        continue
                    rate, rtts = sorted(v)[len(v) // 2]
                    ratio = f"{base / med[name]:.2f}" if base and name != "wsnative.asyncio" else "-"
                    print(f"| {name} | {med[name]:,.0f} ({max(r for r, _ in v):,.0f}) | {percentile(rtts, 50) * 1e6:.1f} | "
                          f"{percentile(rtts, 99) * 1e6:.1f} | {ratio} |", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
