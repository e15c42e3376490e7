#!/usr/bin/env bash
# Round-trip latency on one connection (64 B, 20,000 round trips by default), measured in one run
# for every pairing of client and server: wsnative through its C ABI (bench/pingpong.c,
# examples/c/echo_server.c) and plain tokio-tungstenite (examples/tt_*.rs). Prints microseconds
# per round trip and wsnative's ratio to the tokio-tungstenite pairing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"
SIZE="${2:-64}"
cargo build --release -q
cargo build --release -q --example tt_echo_server --example tt_pingpong
mkdir -p build
CFLAGS=(-O2 -Iinclude -Ltarget/release -Wl,-rpath,"$PWD/target/release")
cc "${CFLAGS[@]}" bench/pingpong.c -lwsnative -lpthread -o build/pingpong
cc "${CFLAGS[@]}" examples/c/echo_server.c -lwsnative -o build/echo_server
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_WSN=$(free_port); P_TT=$(free_port)
build/echo_server "$P_WSN" >/dev/null & S1=$!
target/release/examples/tt_echo_server "$P_TT" >/dev/null & S2=$!
trap 'kill $S1 $S2 2>/dev/null' EXIT
for p in "$P_WSN" "$P_TT"; do
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; sleep 0.05; done
done
run() { timeout 300 "$@" "$N" "$SIZE"; }
tt_tt=$(run target/release/examples/tt_pingpong "ws://127.0.0.1:$P_TT/")
wsn_tt=$(run build/pingpong "ws://127.0.0.1:$P_TT/")
tt_wsn=$(run target/release/examples/tt_pingpong "ws://127.0.0.1:$P_WSN/")
wsn_wsn=$(run build/pingpong "ws://127.0.0.1:$P_WSN/")
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo "round trip, $SIZE B, $N round trips (microseconds; ratio to tokio-tungstenite on both ends)"
printf '  %-40s %8s us\n' "tokio-tungstenite client, server" "$tt_tt"
printf '  %-40s %8s us  %sx\n' "wsnative client, tokio-tungstenite server" "$wsn_tt" "$(ratio "$wsn_tt" "$tt_tt")"
printf '  %-40s %8s us  %sx\n' "tokio-tungstenite client, wsnative server" "$tt_wsn" "$(ratio "$tt_wsn" "$tt_tt")"
printf '  %-40s %8s us  %sx\n' "wsnative client, server" "$wsn_wsn" "$(ratio "$wsn_wsn" "$tt_tt")"
