#!/usr/bin/env python3
"""Drives the real-browser test: headless Chromium against wsnative's C test server.

    drive.py --server build/browser/browser_server --chromium /usr/bin/chromium --out build/browser

Starts, all on 127.0.0.1 with ports the kernel picks:
  - two static HTTP servers for tests/browser (page.html): one is the allowed origin, the
    other a forbidden one (an Origin is scheme://host:port, so two ports are two origins);
  - headless Chromium with --remote-debugging-port=0, driven through the DevTools protocol over
    a WebSocket opened with wsnative's own Python binding (bindings/python, from the source tree);
  - the C server (server.c, allowing the first origin only): for the echo case one per
    permessage-deflate configuration, and one over wss (ECHO_RUNS; Chromium trusts that
    certificate's key alone), each reached through a relay that counts the bytes
    on the wire (compressed frames must show); for the forbidden origin and the 4001 refusal,
    one with the defaults.
For each case it opens a tab on page.html?case=..., waits for window.testResult (read with
Runtime.evaluate), closes the tab, then checks what the server printed (its lines are in
OUT/server-TAG.log). Prints "ok   NAME" or "FAIL NAME" per check (details under a failure) and
exits 1 when any failed. Every wait has a timeout; whatever it started is stopped on the way
out (also on SIGTERM).
"""

import argparse
import base64
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bindings", "python"))
import wsnative  # noqa: E402  (the binding from the source tree; finds target/release itself)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def http_server():
    handler = functools.partial(Quiet, directory=HERE)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Lines:
    """Collects a child's stdout lines on a thread; wait_for() waits for a matching line."""

    def __init__(self, stream, copy_to):
        self.lines = []
        self.cond = threading.Condition()
        self.copy_to = copy_to
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.copy_to.write(line + "\n")
            self.copy_to.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, pattern, timeout, start=0):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def snapshot(self):
        with self.cond:
            return list(self.lines)


class DevTools:
    """The DevTools protocol on a wsnative client connection (flat sessions)."""

    def __init__(self, url):
        # No heartbeat: the DevTools server need not answer pings; no Origin header is sent, so
        # Chromium needs no --remote-allow-origins.
        self.ws = wsnative.connect(url, open_timeout=10, ping_interval=None, max_size=256 << 20)
        self.next_id = 0
        self.events = []

    def call(self, method, params=None, session=None, timeout=30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg), timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"DevTools: no answer to {method} within {timeout} s")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools: {method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def console(self, session):
        """The console lines and exceptions of a session seen so far, as text."""
        out = []
        for ev in self.events:
            if ev.get("sessionId") != session:
                continue
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled":
                out.append("console." + p.get("type", "?") + ": " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
            elif ev["method"] == "Log.entryAdded":
                e = p.get("entry", {})
                out.append("log." + e.get("level", "?") + ": " + e.get("text", ""))
        return out

    def close(self):
        try:
            self.ws.close(timeout=5)
        except Exception:
            pass


def run_page(dt, url, timeout):
    """Opens url in a new tab, waits for window.testResult; returns (result or None, console)."""
    target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    result = None
    try:
        dt.call("Runtime.enable", session=session)
        dt.call("Log.enable", session=session)
        dt.call("Page.enable", session=session)
        nav = dt.call("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            log(f"drive: {url}: {nav['errorText']}")
        deadline = time.monotonic() + timeout
        expr = "(location.href === %s && window.testResult) ? JSON.stringify(window.testResult) : ''" % json.dumps(url)
        while time.monotonic() < deadline:
            # The page's script may be busy for a while (making 4 MiB of random text): the answer
            # then waits for it, within the deadline.
            left = max(1.0, deadline - time.monotonic())
            try:
                r = dt.call("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                            session=session, timeout=left)
            except RuntimeError as e:  # e.g. the context went away during the navigation
                log(f"drive: evaluate: {e}")
                r = {}
            except TimeoutError as e:  # the page never yielded: no result
                log(f"drive: evaluate: {e}")
                break
            value = r.get("result", {}).get("value")
            if value:
                result = json.loads(value)
                break
            time.sleep(0.2)
    finally:
        console = dt.console(session)
        try:
            dt.call("Target.closeTarget", {"targetId": target}, timeout=10)
        except Exception as e:
            log(f"drive: closing the tab: {e}")
    return result, console


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, details=()):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}", flush=True)
            for d in details:
                print(f"     {d}", flush=True)
        return ok


def stop(proc, name, group=False, grace=10):
    """Stops a child: SIGTERM, then SIGKILL after `grace` s. With `group`, its whole process
    group (a session of its own), stragglers included."""
    if proc is None:
        return
    def signal_it(sig):
        try:
            if group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
    signal_it(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log(f"drive: {name} did not stop within {grace} s; killing it")
        signal_it(signal.SIGKILL)
        proc.wait(5)
    if group:
        signal_it(signal.SIGKILL)  # what is left of the group (renderers, zygote)


class CountingProxy:
    """A TCP relay on loopback that counts the bytes each way per connection: what went over
    the wire, so compressed frames show as fewer bytes than the messages held."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []  # one dict per connection: up (browser to server), down, ended pumps
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            rec = {"up": 0, "down": 0, "ended": 0}
            with self.lock:
                self.conns.append(rec)
            for src, dst, key in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(src, dst, rec, key, (client, server)),
                                 daemon=True).start()

    def _pump(self, src, dst, rec, key, both):
        try:
            while True:
                data = src.recv(1 << 18)
                if not data:
                    break
                dst.sendall(data)
                with self.lock:
                    rec[key] += len(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the FIN on
        except OSError:
            pass
        with self.lock:
            rec["ended"] += 1
            last = rec["ended"] == 2
        if last:
            for sock in both:
                sock.close()

    def totals(self, timeout):
        """The connections' counts, once they ended (or timeout passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(c["ended"] == 2 for c in self.conns):
                    break
            time.sleep(0.05)
        with self.lock:
            return [dict(c) for c in self.conns]

    def close(self):
        self.sock.close()


def make_certificate(out_dir):
    """A self-signed certificate for 127.0.0.1 (openssl), and its key's SPKI hash in base64,
    which Chromium's --ignore-certificate-errors-spki-list takes."""
    cert, key = os.path.join(out_dir, "cert.pem"), os.path.join(out_dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    der = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], check=True,
                         capture_output=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der, check=True,
                         capture_output=True, timeout=30).stdout
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


class Server:
    """One browser_server process (server.c) with a configuration; its lines in OUT/server-TAG.log."""

    def __init__(self, binary, origin, out_dir, tag, options=()):
        self.tag = tag
        self.pid_file = os.path.join(out_dir, f"server-{tag}.pid")
        self.log = open(os.path.join(out_dir, f"server-{tag}.log"), "w")
        cmd = [binary, "0", origin] + list(options)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.pid))
        self.out = Lines(self.proc.stdout, self.log)
        m = self.out.wait_for(r"^listening (\d+)$", 10)
        self.port = int(m.group(1)) if m else None

    def stop(self):
        stop(self.proc, f"server {self.tag}")
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass


# The echo runs: (tag, the server's options, what the agreed extension must say, wss).
ECHO_RUNS = [
    ("no-takeover", [],  # the core's default: no context takeover either way
     lambda e: "server_no_context_takeover" in e and "client_no_context_takeover" in e, False),
    ("takeover", ["--takeover"],  # both sides keep their contexts (sliding windows across messages)
     lambda e: "no_context_takeover" not in e, False),
    ("window-8", ["--window-bits", "8"],  # contexts kept, 8-bit windows (zlib's raw deflate has 9 at least)
     lambda e: "no_context_takeover" not in e and "server_max_window_bits=8" in e
     and "client_max_window_bits=8" in e, False),
    ("tls", ["--takeover"],  # wss (rustls), the certificate made by make_certificate()
     lambda e: "no_context_takeover" not in e, True),
]


# The echo page's messages (one pass; it makes two) are counted by the page (testResult.messages
# and .bytes): 4 kinds x (1 KiB + 64 KiB + 1 MiB + 4 MiB + the edge sizes) at least.
ECHO_MIN_BYTES = 4 * (1024 + 65536 + (1 << 20) + (4 << 20))
# Half of them compress to almost nothing; the random half barely: compressed frames must make
# the wire carry well under the payload each way (uncompressed, it would carry a little more),
# but the random half must be there (about 48% of the payload went over the wire here).
WIRE_MAX = 0.7
WIRE_MIN = 0.3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--out", required=True)
    ap.add_argument("--echo-timeout", type=float, default=120)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # SIGTERM (timeout, the run script's trap) unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    checks = Checks()
    https, servers, proxies, chromium, dt, profile = [], [], [], None, None, None
    try:
        allowed, forbidden = http_server(), http_server()
        https = [allowed, forbidden]
        allowed_origin = "http://127.0.0.1:%d" % allowed.server_address[1]
        forbidden_origin = "http://127.0.0.1:%d" % forbidden.server_address[1]

        cert, key, spki = make_certificate(args.out)
        profile = tempfile.mkdtemp(prefix="wsn-chromium-")
        chromium_log = open(os.path.join(args.out, "chromium.log"), "w")
        cmd = [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-extensions",
               "--disable-dev-shm-usage", "--password-store=basic", "--use-mock-keychain",
               # Trusts the test's self-signed certificate, and no other.
               "--ignore-certificate-errors-spki-list=" + spki,
               "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
               "--user-data-dir=" + profile, "about:blank"]
        # A session of its own: the launcher script and every Chromium process stop together.
        chromium = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=chromium_log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(args.out, "chromium.pid"), "w") as f:
            f.write(str(chromium.pid))
        # Chromium writes its DevTools port and path there (port 0: it picked one).
        active = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        endpoint = None
        while time.monotonic() < deadline and chromium.poll() is None:
            try:
                with open(active) as f:
                    port, path = f.read().split("\n")[:2]
                endpoint = f"ws://127.0.0.1:{int(port)}{path}"
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        if not checks.check("chromium starts (DevTools endpoint)", endpoint is not None,
                            [f"exit status {chromium.poll()}; see {args.out}/chromium.log"]):
            return 1
        dt = DevTools(endpoint)
        version = dt.call("Browser.getVersion")
        log(f"drive: {version.get('product')} at {endpoint}")

        def page(name, origin, ws_base, timeout, label):
            url = f"{origin}/page.html?case={name}&ws={ws_base}"
            t0 = time.monotonic()
            result, console = run_page(dt, url, timeout)
            took = time.monotonic() - t0
            details = (result or {}).get("log", [])
            if result is None:
                details = [f"no result within {timeout} s; console:"] + console
            checks.check(f"{label}: page ({took:.1f} s)", bool(result and result.get("ok")), details)
            if os.environ.get("WSN_BROWSER_VERBOSE"):
                for line in details + console:
                    log(f"drive: {label}: {line}")
            return result, console

        # Echo, from the allowed origin, once per compression configuration, through a relay
        # that counts the bytes on the wire.
        for tag, options, expect, tls in ECHO_RUNS:
            if tls:
                options = options + ["--tls", cert, key]
            srv = Server(args.server, allowed_origin, args.out, tag, options)
            servers.append(srv)
            if not checks.check(f"echo {tag}: server starts", srv.port is not None, srv.out.snapshot()):
                continue
            proxy = CountingProxy(srv.port)
            proxies.append(proxy)
            scheme = "wss" if tls else "ws"
            result, _ = page("echo", allowed_origin, f"{scheme}://127.0.0.1:{proxy.port}", args.echo_timeout, f"echo {tag}")
            for line in (result or {}).get("log", []):
                if re.match(r"extensions:|(one at a time|all at once): \d+ ms$", line):
                    log(f"drive: echo {tag}: {line}")
            messages = 2 * (result or {}).get("messages", 0)
            payload = 2 * (result or {}).get("bytes", 0)
            if result and payload < 2 * ECHO_MIN_BYTES:
                checks.check(f"echo {tag}: the page sent all the sizes", False, [f"{payload} bytes"])
            closed = srv.out.wait_for(r"^close ", 10)  # the server's CLOSE may follow the page's
            lines = srv.out.snapshot()
            accepts = [l for l in lines if l.startswith("accept ")]
            opens = [l for l in lines if l.startswith("open ")]
            closes = [l for l in lines if l.startswith("close ")]
            errors = [l for l in lines if l.startswith(("send-error", "accept_and_close failed"))]
            ext = re.search(r'extensions="([^"]*)"', opens[0]).group(1) if len(opens) == 1 else ""
            ok = (len(accepts) == 1 and f"origin={allowed_origin}" in accepts[0]
                  and ext.startswith("permessage-deflate") and expect(ext)
                  and closed is not None and len(closes) == 1
                  and re.search(r"code=1000 clean=1 .*messages=%d bytes=%d " % (messages, payload), closes[0])
                  and not errors)
            checks.check(f"echo {tag}: server agreed \"{ext}\", echoed {messages} messages, closed 1000 cleanly",
                         bool(ok), lines)
            conns = proxy.totals(10)
            wire = [f"connection {i}: {c['up']} bytes browser to server, {c['down']} back"
                    for i, c in enumerate(conns)]
            ok = (len(conns) == 1 and payload > 0
                  and WIRE_MIN * payload < conns[0]["up"] < WIRE_MAX * payload
                  and WIRE_MIN * payload < conns[0]["down"] < WIRE_MAX * payload)
            if conns:
                log(f"drive: echo {tag}: wire {conns[0]['up']} up, {conns[0]['down']} down "
                    f"for {payload} bytes of messages each way")
            checks.check(f"echo {tag}: frames compressed both ways (wire {WIRE_MIN:.0%}-{WIRE_MAX:.0%} of the messages)",
                         ok, wire)

        # The forbidden origin and the 4001 refusal, on a server with the default configuration.
        srv = Server(args.server, allowed_origin, args.out, "refusals")
        servers.append(srv)
        if checks.check("refusals: server starts", srv.port is not None, srv.out.snapshot()):
            ws_base = f"ws://127.0.0.1:{srv.port}"
            _, console = page("forbidden", forbidden_origin, ws_base, 30, "forbidden origin")
            lines = srv.out.snapshot()
            # Refused with 403 before the accept hook runs: the server prints nothing. Scripts do
            # not see the status, but the browser logs it ("Unexpected response code: 403").
            got_403 = [l for l in console if re.search(r"WebSocket.*\b403\b", l)]
            checks.check("forbidden origin: HTTP 403 (browser log), before the accept hook, no connection",
                         bool(got_403) and not [l for l in lines if l.startswith(("accept ", "open ", "close "))],
                         lines + ["browser log:"] + console)
            seen = len(lines)
            page("refused", allowed_origin, ws_base, 30, "refused 4001")
            lines = srv.out.snapshot()[seen:]
            accepts = [l for l in lines if l.startswith("accept ")]
            ok = (len(accepts) == 1 and "path=/refused" in accepts[0]
                  and not [l for l in lines if l.startswith(("open ", "close ", "send-error", "accept_and_close"))])
            checks.check("refused 4001: the accept hook closed it, no OPEN event", ok, lines)
            # Issue 15's session deadline: the accept hook gives /deadline 1 s, then the server
            # closes it with 4401, which the page's script reads.
            seen = len(srv.out.snapshot())
            page("deadline", allowed_origin, ws_base, 30, "deadline 4401")
            srv.out.wait_for(r"^close ", 10, start=seen)
            lines = srv.out.snapshot()[seen:]
            closes = [l for l in lines if l.startswith("close ")]
            ok = (any("path=/deadline" in l for l in lines if l.startswith("accept "))
                  and len(closes) == 1 and "code=4401" in closes[0] and "clean=1" in closes[0])
            checks.check("deadline 4401: the server closed the session with 4401, cleanly", ok, lines)
        return 0 if checks.failed == 0 else 1
    except Exception as e:
        checks.check(f"driver: {type(e).__name__}: {e}", False)
        return 1
    finally:
        if dt:
            dt.close()
        stop(chromium, "chromium", group=True)
        for srv in servers:
            srv.stop()
        for p in proxies:
            p.close()
        for h in https:
            h.shutdown()
        if profile:
            shutil.rmtree(profile, ignore_errors=True)
        # The run script's trap kills what a pid file names, in case this process could not.
        try:
            os.unlink(os.path.join(args.out, "chromium.pid"))
        except FileNotFoundError:
            pass
        print(f"drive: {checks.passed} passed, {checks.failed} failed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
