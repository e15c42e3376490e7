#!/usr/bin/env bash
# Resident memory per idle connection of a server, measured at N connections (default 5000):
# wsnative's C echo server against tokio-tungstenite's echo server (the baseline), in one run.
# Prints the RSS before and after, and the difference divided by N.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q --example tt_echo_server --example tt_idle_clients
cargo build --release -q
mkdir -p build
cc -O2 -Iinclude examples/c/echo_server.c -Ltarget/release -lwsnative -Wl,-rpath,"$PWD/target/release" -o build/echo_server
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
  target/release/examples/tt_idle_clients "ws://127.0.0.1:$port/" "$N" <"$fifo" >"build/idle_$name.log" &
  local cli=$!
  exec 4>"$fifo"
  for _ in $(seq 600); do grep -q ready "build/idle_$name.log" 2>/dev/null && break; sleep 0.1; done
  sleep 1
  after=$(rss "$srv")
  exec 4>&- 3>&-
  wait "$cli" 2>/dev/null || true
  rm -f "$fifo"
  kill "$srv"; wait "$srv" 2>/dev/null || true
  printf '%-18s RSS %6d KiB -> %6d KiB at %d idle connections: %.1f KiB per connection\n' \
    "$name" "$before" "$after" "$N" "$(echo "($after - $before) / $N" | bc -l)"
}
measure wsnative build/echo_server
measure tokio-tungstenite target/release/examples/tt_echo_server
