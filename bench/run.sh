#!/usr/bin/env bash
# Issue 14's benchmark: wsnative's C echo server (examples/c/echo_server.c, through the C ABI),
# a tokio-tungstenite echo server (examples/tt_echo_server.rs) and a fastwebsockets echo server
# (bench/src/bin/fws_echo_server.rs), all driven by the same load generator
# (bench/src/bin/loadgen.rs) in the same run, interleaved: every round runs each workload on
# each server, the servers' order rotating from round to round; the table gives medians.
#
#   bash bench/run.sh [--quick] [--rounds R] [--secs T] [--idle N] [--no-readme] [--no-chart]
#
# Server workloads: 64 B, 64 KiB and 1 MiB binary messages, 1 and 50 connections, one message
# in flight per connection (ping-pong); and issue 14's own setting, 16 messages in flight per
# connection, at 64 B x 50, 64 KiB x 1, 64 KiB x 50 and 1 MiB x 1 (the rows of the issue's
# table; 1 MiB x 50 x 16 would keep 800 MiB in flight). For each: messages/s, MB/s (payload, one direction),
# p50/p99 round trip, and the server's CPU time per message (utime+stime from /proc/PID/stat
# over the measured window, divided by the messages echoed).
# Client workloads: one connection, 16 messages in flight, against the fastwebsockets echo
# server: wsnative's C client through the C ABI (bench/client_inflight.c; lending each message
# with wsn_conn_send_nocopy, and copying it with wsn_conn_send_binary) against
# tokio-tungstenite's client (bench/src/bin/tt_client.rs), at 64 B, 64 KiB and 1 MiB; messages/s
# and the client process's CPU per message.
# Idle memory: bench/idle_memory.sh at N connections (default 10000) for the three servers.
# Handshake rate (issue 15 section 3.8): 8 clients at a time open and close connections
# (bench/src/bin/hsrate.rs: TCP connect, upgrade with a fresh key, Close 1000, the server's
# Close and FIN) against the three echo servers, interleaved like the rest; handshakes/s, p50/p99
# of one cycle, server CPU per handshake. --handshakes-only runs just this part (and prints its
# table without touching the published results).
#
# Writes build/bench/raw.txt (every measurement; copied to bench/results-raw.txt), bench/results.md
# (the tables), docs/bench.png
# (the chart: matplotlib from PyPI, in a venv at build/bench-venv) and, unless --no-readme, the
# README section between <!-- bench:begin --> and <!-- bench:end -->. --quick: 1 round of
# 0.5 s per measurement and 1000 idle connections, writing build/bench/results.md and
# build/bench/bench.png only (a smoke test of the whole pipeline, not figures to publish).
# Loopback only; every measurement is bounded in time (and the load generator in count).
# Not part of tests/run_all.sh or CI: timed figures from a shared machine are not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=3 SECS=3 WARMUP=0.5 IDLE=10000 README=1 CHART=1 QUICK=0 HS_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ROUNDS=1 SECS=0.5 WARMUP=0.2 IDLE=1000 README=0 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --secs) SECS="$2"; shift ;;
    --idle) IDLE="$2"; shift ;;
    --no-readme) README=0 ;;
    --no-chart) CHART=0 ;;
    --handshakes-only) HS_ONLY=1 README=0 CHART=0 ;;
    *) echo "usage: bench/run.sh [--quick] [--rounds R] [--secs T] [--idle N] [--no-readme] [--no-chart] [--handshakes-only]" >&2; exit 2 ;;
  esac
  shift
done
OUT=build/bench
mkdir -p "$OUT"
if [ "$QUICK" = 1 ] || [ "$HS_ONLY" = 1 ]; then RESULTS=$OUT/results.md PNG=$OUT/bench.png; else RESULTS=bench/results.md PNG=docs/bench.png; fi
BT=build/bench-target
export BENCH_TARGET=$BT

echo "== building (wsnative release, examples, bench crate, C programs)"
cargo build --release -q
cargo build --release -q --example tt_echo_server --example tt_idle_clients
cargo build --release -q --manifest-path bench/Cargo.toml --target-dir "$BT"
CF=(-O2 -Iinclude -Ltarget/release -Wl,-rpath,"$ROOT/target/release")
cc "${CF[@]}" examples/c/echo_server.c -lwsnative -o build/echo_server
cc "${CF[@]}" bench/client_inflight.c -lwsnative -lpthread -o build/client_inflight
LOADGEN=$BT/release/loadgen

RAW=$OUT/raw.txt
: >"$RAW"
meta() { echo "kind=meta $*" >>"$RAW"; }
meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" "cores=$(nproc)" "rounds=$ROUNDS" "secs=$SECS" "quick=$QUICK"
meta "load_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
meta "cpu=$(awk -F': ' '/model name/ {gsub(/ /, "_", $2); print $2; exit}' /proc/cpuinfo)"
meta "commit=$(git rev-parse --short HEAD)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "no server on port $1" >&2; return 1; }
declare -A PORT PID
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { # NAME COMMAND...
  local name="$1"; shift
  local port; port=$(free_port)
  "$@" "$port" >"$OUT/server_$name.log" 2>&1 &
  PID[$name]=$! PORT[$name]=$port
  PIDS+=("$!")
  wait_port "$port"
}
SERVERS=(wsnative tokio-tungstenite fastwebsockets)
start wsnative build/echo_server
start tokio-tungstenite target/release/examples/tt_echo_server
start fastwebsockets "$BT/release/fws_echo_server"

# size, connections, messages in flight per connection
WORKLOADS=("64 1 1" "64 50 1" "65536 1 1" "65536 50 1" "1048576 1 1" "1048576 50 1"
  "64 50 16" "65536 1 16" "65536 50 16" "1048576 1 16")
n=${#SERVERS[@]}
[ "$HS_ONLY" = 1 ] && WORKLOADS=()
echo "== servers: $ROUNDS round(s) x ${#WORKLOADS[@]} workloads x $n servers, ${SECS}s each"
for r in $(seq "$ROUNDS"); do
  for w in "${WORKLOADS[@]}"; do
    read -r size conns inflight <<<"$w"
    for i in $(seq 0 $((n - 1))); do
      name=${SERVERS[$(((i + r - 1) % n))]}
      if line=$(timeout $((${SECS%.*} + 40)) "$LOADGEN" "127.0.0.1:${PORT[$name]}" --conns "$conns" --inflight "$inflight" \
          --size "$size" --secs "$SECS" --warmup "$WARMUP" --pid "${PID[$name]}"); then
        echo "kind=server name=$name size=$size conns=$conns inflight=$inflight round=$r $line" >>"$RAW"
        printf '  round %d  %-18s %8s B x %2s conns x %2s  %s\n' "$r" "$name" "$size" "$conns" "$inflight" "$line"
      else
        echo "kind=server name=$name size=$size conns=$conns inflight=$inflight round=$r failed=1" >>"$RAW"
        printf '  round %d  %-18s %8s B x %2s conns x %2s  FAILED\n' "$r" "$name" "$size" "$conns" "$inflight"
      fi
    done
  done
done

echo "== handshakes: 8 clients opening and closing, $ROUNDS round(s) x $n servers, ${SECS}s each"
for r in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    name=${SERVERS[$(((i + r - 1) % n))]}
    if line=$(timeout $((${SECS%.*} + 40)) "$BT/release/hsrate" "127.0.0.1:${PORT[$name]}" --clients 8 \
        --secs "$SECS" --warmup "$WARMUP" --pid "${PID[$name]}"); then
      echo "kind=handshake name=$name size=0 conns=8 round=$r $line" >>"$RAW"
      printf '  round %d  %-18s handshakes  %s\n' "$r" "$name" "$line"
    else
      echo "kind=handshake name=$name size=0 conns=8 round=$r failed=1" >>"$RAW"
      printf '  round %d  %-18s handshakes  FAILED\n' "$r" "$name"
    fi
  done
done

echo "== clients: one connection, 16 in flight, against the fastwebsockets echo server"
URL="ws://127.0.0.1:${PORT[fastwebsockets]}/"
# wsnative lends each message (wsn_conn_send_nocopy, as tokio-tungstenite's client shares one
# Bytes); wsnative-copy sends with wsn_conn_send_binary, which copies each message.
CLIENTS=(wsnative wsnative-copy tokio-tungstenite)
[ "$HS_ONLY" = 1 ] && ROUNDS_CLIENT=0 || ROUNDS_CLIENT=$ROUNDS
for r in $(seq "$ROUNDS_CLIENT"); do
  for size in 64 65536 1048576; do
    for i in 0 1 2; do
      c=${CLIENTS[$(((i + r - 1) % 3))]}
      case "$c" in
        wsnative) cmd=(env WSN_COPY=0 build/client_inflight "$URL" "$SECS" "$size" 16) ;;
        wsnative-copy) cmd=(env WSN_COPY=1 build/client_inflight "$URL" "$SECS" "$size" 16) ;;
        *) cmd=("$BT/release/tt_client" "$URL" "$SECS" "$size" 16) ;;
      esac
      if line=$(timeout $((${SECS%.*} + 40)) "${cmd[@]}"); then
        echo "kind=client name=$c size=$size conns=1 round=$r $line" >>"$RAW"
        printf '  round %d  %-18s client %8s B  %s\n' "$r" "$c" "$size" "$line"
      else
        echo "kind=client name=$c size=$size conns=1 round=$r failed=1" >>"$RAW"
        printf '  round %d  %-18s client %8s B  FAILED\n' "$r" "$c" "$size"
      fi
    done
  done
done
cleanup
PIDS=()

if [ "$HS_ONLY" = 0 ]; then
  echo "== idle memory at $IDLE connections"
  BENCH_NO_BUILD=1 IDLE_OUT="$RAW" bash bench/idle_memory.sh "$IDLE" || echo "idle memory: failed" >&2
fi
meta "load_end=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"

PY=python3
if [ "$CHART" = 1 ]; then
  VENV=build/bench-venv
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "== installing matplotlib (PyPI) into $VENV"
    python3 -m venv "$VENV" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check matplotlib \
      || echo "matplotlib could not be installed: no chart" >&2
  fi
  "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null && PY=$VENV/bin/python
fi
ARGS=(--raw "$RAW" --results "$RESULTS")
[ "$CHART" = 1 ] && ARGS+=(--chart "$PNG")
[ "$README" = 1 ] && ARGS+=(--readme README.md)
"$PY" bench/report.py "${ARGS[@]}"
# Keep the measurements behind the published medians next to them.
[ "$QUICK" = 1 ] || [ "$HS_ONLY" = 1 ] || cp "$RAW" bench/results-raw.txt
