#!/usr/bin/env bash
# An experiment beside bench/run.sh (not part of its table): wsnative's echo server with its
# runtime knobs changed (bench/echo_server_knobs.c: callback spin, callback and I/O threads),
# interleaved with fastwebsockets and tokio-tungstenite, same load generator, medians.
#   bash bench/knobs.sh [ROUNDS=3] [SECS=2]     (run bench/run.sh once first: it builds)
# Prints one line per measurement and writes build/bench/knobs.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}" SECS="${2:-2}"
BT=build/bench-target/release
cc -O2 -Iinclude bench/echo_server_knobs.c -Ltarget/release -lwsnative -Wl,-rpath,"$PWD/target/release" -o build/echo_server_knobs
OUT=build/bench/knobs.txt
mkdir -p build/bench; : >"$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
declare -A PORT PID
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # NAME ENV... -- COMMAND
  local name="$1"; shift
  local port; port=$(free_port)
  env "$@" "$port" >/dev/null 2>&1 &
  PID[$name]=$! PORT[$name]=$port; PIDS+=("$!")
  wait_port "$port"
}
NAMES=(wsn-default wsn-spin0 wsn-spin0-cb1 wsn-spin0-cb1-io1 fastwebsockets tokio-tungstenite)
start wsn-default build/echo_server_knobs
start wsn-spin0 WSN_SPIN_US=0 build/echo_server_knobs
start wsn-spin0-cb1 WSN_SPIN_US=0 WSN_CB_THREADS=1 build/echo_server_knobs
start wsn-spin0-cb1-io1 WSN_SPIN_US=0 WSN_CB_THREADS=1 WSN_IO_THREADS=1 build/echo_server_knobs
start fastwebsockets "$BT/fws_echo_server"
start tokio-tungstenite target/release/examples/tt_echo_server
n=${#NAMES[@]}
for r in $(seq "$ROUNDS"); do
  for w in "64 1" "64 50" "65536 1" "65536 50" "1048576 1"; do
    read -r size conns <<<"$w"
    for i in $(seq 0 $((n - 1))); do
      name=${NAMES[$(((i + r - 1) % n))]}
      line=$(timeout 60 "$BT/loadgen" "127.0.0.1:${PORT[$name]}" --conns "$conns" --size "$size" --secs "$SECS" \
        --warmup 0.5 --pid "${PID[$name]}" || echo failed=1)
      echo "name=$name size=$size conns=$conns round=$r $line" | tee -a "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import sys, statistics, collections
g = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.split())
    if "msgs_per_s" in kv:
        g[(int(kv["size"]), int(kv["conns"]), kv["name"])].append(kv)
print(f"{'size':>8} {'conns':>5} {'server':<20} {'msgs/s':>9} {'p50us':>6} {'p99us':>7} {'cpu us/msg':>10}")
for (s, c, n), rs in sorted(g.items()):
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    print(f"{s:>8} {c:>5} {n:<20} {med('msgs_per_s'):>9.0f} {med('p50_us'):>6.0f} {med('p99_us'):>7.0f} {med('server_cpu_us_per_msg'):>10.2f}")
PY
