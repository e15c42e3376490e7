#!/usr/bin/env bash
# Resident memory per idle connection of a server, measured at N connections (default 10000):
# wsnative's C echo server, tokio-tungstenite's echo server and fastwebsockets' echo server
# (bench/src/bin/fws_echo_server.rs), one after the other in one run. Prints the RSS before and
# after, and the difference divided by N. Loopback only; each server is stopped after its turn.
#   bench/idle_memory.sh [N]
# Environment: IDLE_OUT=FILE appends one machine-readable line per server to FILE
# (kind=idle name=NAME conns=N before_kib= after_kib= kib_per_conn=); BENCH_NO_BUILD=1 skips
# the builds (bench/run.sh has done them).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
# Server and client each hold N sockets (and the server's side of each).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((N + 100)) ]; then
  echo "idle_memory.sh: ulimit -n is $(ulimit -n), below $N connections: run as root or lower N" >&2
  exit 1
fi
BT="${BENCH_TARGET:-build/bench-target}"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q --example tt_echo_server --example tt_idle_clients
  cargo build --release -q
  cargo build --release -q --manifest-path bench/Cargo.toml --target-dir "$BT"
  mkdir -p build
  cc -O2 -Iinclude examples/c/echo_server.c -Ltarget/release -lwsnative -Wl,-rpath,"$PWD/target/release" -o build/echo_server
fi
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
measure() { # NAME COMMAND...
  local name="$1"; shift
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$@" "$port" >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  # Warm up the server's runtime with one connection first, so the figure is per connection.
  local before after
  exec 3> >(target/release/examples/tt_idle_clients "ws://127.0.0.1:$port/" 1 >/dev/null)
  sleep 0.5
  before=$(rss "$srv")
  local fifo
  fifo=$(mktemp -u); mkfifo "$fifo"
  timeout 300 target/release/examples/tt_idle_clients "ws://127.0.0.1:$port/" "$N" <"$fifo" >"build/idle_$name.log" &
  local cli=$!
  exec 4>"$fifo"
  for _ in $(seq 1200); do grep -q ready "build/idle_$name.log" 2>/dev/null && break; sleep 0.1; done
  if ! grep -q ready "build/idle_$name.log"; then
    echo "idle_memory.sh: $name: the $N connections did not open" >&2
  fi
  sleep 1
  after=$(rss "$srv")
  exec 4>&- 3>&-
  wait "$cli" 2>/dev/null || true
  rm -f "$fifo"
  kill "$srv"; wait "$srv" 2>/dev/null || true
  local per
  per=$(python3 -c "print(f'{($after - $before) / $N:.2f}')")
  printf '%-18s RSS %6d KiB -> %6d KiB at %d idle connections: %s KiB per connection\n' \
    "$name" "$before" "$after" "$N" "$per"
  if [ -n "${IDLE_OUT:-}" ]; then
    echo "kind=idle name=$name conns=$N before_kib=$before after_kib=$after kib_per_conn=$per" >>"$IDLE_OUT"
  fi
}
measure wsnative build/echo_server
measure tokio-tungstenite target/release/examples/tt_echo_server
measure fastwebsockets "$BT/release/fws_echo_server"
