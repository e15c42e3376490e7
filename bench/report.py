"""Turns bench/run.sh's measurements (build/bench/raw.txt: one key=value line each) into
tables of medians (bench/results.md), a chart (docs/bench.png, with matplotlib when it can be
imported) and, with --readme, the README section between <!-- bench:begin --> and
<!-- bench:end --> (only that text is rewritten).

    python3 bench/report.py --raw build/bench/raw.txt --results bench/results.md \
        [--chart docs/bench.png] [--readme README.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections import defaultdict

SERVERS = ["wsnative", "tokio-tungstenite", "fastwebsockets"]
CLIENTS = ["wsnative", "wsnative-copy", "tokio-tungstenite"]
SIZES = [64, 65536, 1048576]
CONNS = [1, 50]
# Server workloads: (size, connections, messages in flight per connection). One in flight is
# ping-pong; 16 in flight is issue 14's own setting (the rows of its table).
WORKLOADS = [(s, c, 1) for s in SIZES for c in CONNS] + [(64, 50, 16), (65536, 1, 16), (65536, 50, 16),
                                                         (1048576, 1, 16)]
METRICS = ["msgs_per_s", "mb_per_s", "p50_us", "p99_us", "server_cpu_us_per_msg", "client_cpu_us_per_msg",
           "per_s", "server_cpu_us_per_hs", "errors"]


def size_name(s: int) -> str:
    return {64: "64 B", 65536: "64 KiB", 1048576: "1 MiB"}.get(s, f"{s} B")


def parse(path: str):
    meta, rows = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if kv.get("kind") == "meta":
                kv.pop("kind")
                meta.update(kv)
            elif kv:
                rows.append(kv)
    return meta, rows


def medians(rows, kind):
    groups = defaultdict(list)
    failed = defaultdict(int)
    for r in rows:
        if r.get("kind") != kind:
            continue
        key = (r["name"], int(r["size"]), int(r["conns"]), int(r.get("inflight", 1)))
        if r.get("failed"):
            failed[key] += 1
        else:
            groups[key].append(r)
    out = {}
    for key, rs in groups.items():
        m = {"n": len(rs), "failed": failed[key]}
        for k in METRICS:
            vals = [float(r[k]) for r in rs if k in r and r[k] != "nan"]
            m[k] = statistics.median(vals) if vals else float("nan")
        out[key] = m
    for key, n in failed.items():
        out.setdefault(key, {"n": 0, "failed": n, **{k: float("nan") for k in METRICS}})
    return out


def fmt(v: float, digits: int = 0) -> str:
    if v != v:  # NaN
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def handshake_lines(hs) -> list[str]:
    """The handshake-rate table (issue 15 section 3.8), or nothing when none was measured."""
    if not hs:
        return []
    L = ["", "### Handshakes", "",
         "Opening plus closing handshakes, 8 clients at a time (`bench/src/bin/hsrate.rs`: TCP connect, upgrade with a "
         "fresh key, the 101 checked, Close 1000, the server's Close and its FIN), against the same echo servers. "
         "p50/p99 are of one whole open-and-close cycle; server CPU is per handshake.", "",
         "| server | handshakes/s | p50 µs | p99 µs | server CPU µs/handshake | errors | handshakes/s vs fws | CPU vs fws |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    base = hs.get(("fastwebsockets", 0, 8, 1))
    for name in SERVERS:
        m = hs.get((name, 0, 8, 1))
        if not m:
            continue
        note = f" ({m['failed']} failed)" if m["failed"] else ""
        L.append(f"| {name}{note} | {fmt(m['per_s'])} | {fmt(m['p50_us'])} | {fmt(m['p99_us'])} | "
                 f"{fmt(m['server_cpu_us_per_hs'], 1)} | {fmt(m['errors'])} | "
                 f"{ratio(m['per_s'], base['per_s']) if base else '-'} | "
                 f"{ratio(m['server_cpu_us_per_hs'], base['server_cpu_us_per_hs']) if base else '-'} |")
    return L


def build_block(meta, srv, cli, idle, chart_rel: str | None, hs=None) -> str:
    L = []
    load = f"load average {meta.get('load_start', '?').replace('/', ' ')} at the start, " \
           f"{meta.get('load_end', '?').replace('/', ' ')} at the end"
    L.append(
        f"Measured {meta.get('date', '?')} at commit {meta.get('commit', '?')} on {meta.get('cores', '?')} cores "
        f"({meta.get('cpu', '?').replace('_', ' ')}), **shared with other work** ({load}): the figures are "
        f"noisy. Medians of {meta.get('rounds', '?')} interleaved round(s) of {meta.get('secs', '?')} s per "
        "measurement; server and load generator on the same machine, over loopback."
        + (" **Quick mode: a smoke test, not figures to quote.**" if meta.get("quick") == "1" else "")
    )
    L.append("")
    L.append("### Servers")
    L.append("")
    L.append("Echo servers driven by `bench/src/bin/loadgen.rs` (raw tokio sockets, prebuilt masked binary frames): "
             "first with one message in flight per connection (ping-pong: every message waits for the previous "
             "echo), then with 16 in flight per connection, the setting of issue 14's own table. MB/s counts the "
             "payload echoed (10^6 bytes). Server CPU is utime+stime of the server process over the measured "
             "window, per message echoed. The last two columns compare with fastwebsockets (messages/s: higher is "
             "better; CPU: lower is better).")
    for inflight, title in ((1, "One message in flight per connection"), (16, "16 messages in flight per connection")):
        rows = [w for w in WORKLOADS if w[2] == inflight]
        if not any(srv.get((n, *w)) for n in SERVERS for w in rows):
            continue
        L.append("")
        L.append(f"{title}:")
        L.append("")
        L.append("| message | conns | server | messages/s | MB/s | p50 µs | p99 µs | server CPU µs/msg | msgs/s vs fws | CPU vs fws |")
        L.append("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for s, c, k in rows:
            base = srv.get(("fastwebsockets", s, c, k))
            for name in SERVERS:
                m = srv.get((name, s, c, k))
                if not m:
                    continue
                note = f" ({m['failed']} failed)" if m["failed"] else ""
                L.append(
                    f"| {size_name(s)} | {c} | {name}{note} | {fmt(m['msgs_per_s'])} | {fmt(m['mb_per_s'], 1)} | "
                    f"{fmt(m['p50_us'])} | {fmt(m['p99_us'])} | {fmt(m['server_cpu_us_per_msg'], 1)} | "
                    f"{ratio(m['msgs_per_s'], base['msgs_per_s']) if base else '-'} | "
                    f"{ratio(m['server_cpu_us_per_msg'], base['server_cpu_us_per_msg']) if base else '-'} |"
                )
    L.append("")
    L.append("### Clients")
    L.append("")
    L.append("One connection, 16 messages in flight, against the fastwebsockets echo server: wsnative's client through "
             "the C ABI (`bench/client_inflight.c`, a new message sent from each echo's callback; `wsnative` lends "
             "the payload with `wsn_conn_send_nocopy`, as tokio-tungstenite's client shares one `Bytes`, and "
             "`wsnative-copy` sends it with `wsn_conn_send_binary`, which copies it) and "
             "tokio-tungstenite's client (`bench/src/bin/tt_client.rs`). CPU is the client process's own.")
    L.append("")
    L.append("| message | client | messages/s | MB/s | client CPU µs/msg | msgs/s vs tokio-tungstenite | CPU vs tokio-tungstenite |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for s in SIZES:
        base = cli.get(("tokio-tungstenite", s, 1, 1))
        for name in CLIENTS:
            m = cli.get((name, s, 1, 1))
            if not m:
                continue
            note = f" ({m['failed']} failed)" if m["failed"] else ""
            L.append(
                f"| {size_name(s)} | {name}{note} | {fmt(m['msgs_per_s'])} | {fmt(m['mb_per_s'], 1)} | "
                f"{fmt(m['client_cpu_us_per_msg'], 1)} | {ratio(m['msgs_per_s'], base['msgs_per_s']) if base else '-'} | "
                f"{ratio(m['client_cpu_us_per_msg'], base['client_cpu_us_per_msg']) if base else '-'} |"
            )
    L.extend(handshake_lines(hs or {}))
    if idle:
        L.append("")
        L.append("### Idle memory")
        L.append("")
        L.append("Resident memory the server gains per idle connection (`bench/idle_memory.sh`: RSS after N "
                 "tokio-tungstenite client connections minus RSS after one, over N).")
        L.append("")
        L.append("| server | connections | RSS before KiB | RSS after KiB | KiB per connection |")
        L.append("| --- | ---: | ---: | ---: | ---: |")
        for name in SERVERS:
            r = idle.get(name)
            if r:
                L.append(f"| {name} | {int(r['conns']):,} | {int(r['before_kib']):,} | {int(r['after_kib']):,} | {r['kib_per_conn']} |")
    L.append("")
    L.append("### Against the targets")
    L.append("")
    L.append("Issue 14 set its server targets at 16 messages in flight per connection (the setting of its own "
             "table) and its ping-pong target at one; the one-in-flight rows of the larger messages are a stricter "
             "setting, kept for reference.")
    L.append("")
    L.append("| target | measured | met |")
    L.append("| --- | --- | --- |")

    def g(d, key, k):
        m = d.get(key)
        return m[k] if m else float("nan")

    def inflight(k):
        return "one in flight" if k == 1 else f"{k} in flight"

    for s, c, k in WORKLOADS:
        if s == 64:
            continue
        key_w, key_f = ("wsnative", s, c, k), ("fastwebsockets", s, c, k)
        if key_w not in srv:
            continue
        wm, fm = g(srv, key_w, "msgs_per_s"), g(srv, key_f, "msgs_per_s")
        wc, fc = g(srv, key_w, "server_cpu_us_per_msg"), g(srv, key_f, "server_cpu_us_per_msg")
        ok = wm >= fm and wc <= fc
        L.append(f"| {size_name(s)} x {c}, {inflight(k)}: messages/s >= fastwebsockets', CPU/msg <= fastwebsockets' | "
                 f"{fmt(wm)} vs {fmt(fm)} msgs/s; {fmt(wc, 1)} vs {fmt(fc, 1)} µs/msg | {'yes' if ok else 'no'} |")
    for k in (1, 16):
        if ("wsnative", 64, 50, k) not in srv:
            continue
        best = max((g(srv, (n, 64, 50, k), "msgs_per_s") for n in SERVERS), default=float("nan"))
        wm = g(srv, ("wsnative", 64, 50, k), "msgs_per_s")
        L.append(f"| 64 B x 50, {inflight(k)}: near the best messages/s (uWebSockets is measured by hand, not here) | "
                 f"{fmt(wm)} vs best {fmt(best)} ({ratio(wm, best)}) | {'yes' if wm >= 0.9 * best else 'no'} (within 10%) |")
    wc, tc = g(srv, ("wsnative", 64, 1, 1), "server_cpu_us_per_msg"), g(srv, ("tokio-tungstenite", 64, 1, 1), "server_cpu_us_per_msg")
    L.append(f"| 64 B x 1 ping-pong: server CPU/msg <= 1.5x tokio-tungstenite's | {fmt(wc, 1)} vs {fmt(tc, 1)} µs/msg "
             f"({ratio(wc, tc)}) | {'yes' if wc <= 1.5 * tc else 'no'} |")
    for name, how in (("wsnative", "lent"), ("wsnative-copy", "copied")):
        for s in SIZES:
            if (name, s, 1, 1) not in cli:
                continue
            wm, tm = g(cli, (name, s, 1, 1), "msgs_per_s"), g(cli, ("tokio-tungstenite", s, 1, 1), "msgs_per_s")
            wc, tc = g(cli, (name, s, 1, 1), "client_cpu_us_per_msg"), g(cli, ("tokio-tungstenite", s, 1, 1), "client_cpu_us_per_msg")
            L.append(f"| client {size_name(s)}, 16 in flight, {how}: vs tokio-tungstenite's client | {fmt(wm)} vs {fmt(tm)} msgs/s "
                     f"({ratio(wm, tm)}); {fmt(wc, 1)} vs {fmt(tc, 1)} µs/msg ({ratio(wc, tc)}) | "
                     f"{'yes' if wm >= tm and wc <= tc else 'no'} |")
    if chart_rel:
        L.append("")
        L.append(f"![benchmark chart]({chart_rel})")
    L.append("")
    L.append("Regenerate with `bash bench/run.sh` (about 10 minutes here; `--rounds R --secs T` to change the "
             "run, `--quick` for a smoke test that writes only under build/bench). Every measurement is in "
             "`build/bench/raw.txt`; the chart is drawn with matplotlib (PyPI), installed into a venv at "
             "`build/bench-venv`. `bench/README.md` describes the pieces and what the profiles showed.")
    return "\n".join(L) + "\n"


def chart(path, srv, cli, idle, meta):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"wsnative": "#d62728", "wsnative-copy": "#ff9896", "tokio-tungstenite": "#1f77b4",
              "fastwebsockets": "#2ca02c"}
    fig, axes = plt.subplots(2, 2, figsize=(16, 9))
    labels = [f"{size_name(s)}\nx{c}" + ("" if k == 1 else f"\n{k} in fl.") for s, c, k in WORKLOADS]
    width = 0.27
    for ax, key, title in ((axes[0][0], "msgs_per_s", "Server: messages/s (higher is better)"),
                           (axes[0][1], "server_cpu_us_per_msg", "Server: CPU µs per message (lower is better)")):
        for i, name in enumerate(SERVERS):
            vals = [srv.get((name, *w), {}).get(key, float("nan")) for w in WORKLOADS]
            xs = [j + (i - 1) * width for j in range(len(labels))]
            ax.bar(xs, vals, width, label=name, color=colors[name])
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[1][0]
    for i, name in enumerate(CLIENTS):
        vals = [cli.get((name, s, 1, 1), {}).get("msgs_per_s", float("nan")) for s in SIZES]
        ax.bar([j + (i - 1) * 0.27 for j in range(len(SIZES))], vals, 0.27, label=name + " client", color=colors[name])
    ax.set_xticks(range(len(SIZES)))
    ax.set_xticklabels([size_name(s) for s in SIZES])
    ax.set_yscale("log")
    ax.set_title("Client, 16 in flight vs fastwebsockets: messages/s")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1][1]
    names = [n for n in SERVERS if n in idle]
    ax.bar(names, [float(idle[n]["kib_per_conn"]) for n in names], color=[colors[n] for n in names])
    n_idle = idle[names[0]]["conns"] if names else "?"
    ax.set_title(f"Server: idle memory, KiB per connection at {n_idle} (lower is better)")
    ax.set_yscale("log")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle(f"wsnative benchmark, {meta.get('date', '')}, {meta.get('cores', '?')} shared cores "
                 f"(load {meta.get('load_start', '?').replace('/', ' ')}); medians of {meta.get('rounds', '?')} rounds")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--chart")
    ap.add_argument("--readme")
    a = ap.parse_args()
    meta, rows = parse(a.raw)
    srv, cli, hs = medians(rows, "server"), medians(rows, "client"), medians(rows, "handshake")
    idle = {r["name"]: r for r in rows if r.get("kind") == "idle"}
    chart_rel = None
    if a.chart:
        try:
            chart(a.chart, srv, cli, idle, meta)
            chart_rel = os.path.relpath(a.chart, os.path.dirname(os.path.abspath(a.readme)) if a.readme else ".")
            print(f"chart: {a.chart}")
        except ImportError:
            print("chart: matplotlib is not installed, no chart")
    block = build_block(meta, srv, cli, idle, chart_rel, hs)
    with open(a.results, "w", encoding="utf-8") as f:
        f.write("# Benchmark results\n\n<!-- Generated by bench/run.sh (bench/report.py). -->\n\n"
                + block.replace("](docs/", "](../docs/"))
    print(f"results: {a.results}\n")
    print(block)
    if a.readme:
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        section = ("## Benchmark\n\n<!-- Generated by bench/run.sh; edits between the bench markers are overwritten. -->\n\n"
                   + block)
        text = open(a.readme, encoding="utf-8").read()  # re-read right before writing
        if begin in text and end in text and text.index(begin) < text.index(end):
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            new = head + begin + "\n" + section + end + tail
        else:
            new = text.rstrip("\n") + "\n\n" + begin + "\n" + section + end + "\n"
        if new != text:
            with open(a.readme, "w", encoding="utf-8") as f:
                f.write(new)
        print("README.md: Benchmark section regenerated")


if __name__ == "__main__":
    main()
