#!/usr/bin/env bash
# Issue 15 section 2: a wsnative server at the descriptor limit (ulimit -n 1024) under 1,100
# slow clients, each sending one byte of a request and then nothing (tests/defense/attack.py,
# a separate process without the limit), while legitimate clients from 127.0.0.1 and 127.0.0.2
# must still complete a handshake and an echo (bound 5 s, time printed). Cases:
#   1. examples/c/echo_server (the defaults: 512 handshakes in progress, no per-address cap, drop
#      the oldest), attackers all from 127.0.0.1: the total cap; descriptors stay under the limit;
#   2. the same server, attackers spread over 127.0.0.1-250: the total cap again;
#   3. tests/defense/server.c with both caps off: accept hits EMFILE, and dropping the oldest
#      handshake makes room (the descriptor count reaches the limit, by design);
#   4. caps off and the refuse policy: at EMFILE the reserve descriptor turns clients away with
#      a prompt 503 instead of leaving them in the backlog.
# In every case the server must not spin (CPU over a quiet second of the attack) and must live.
# Prints "defense: N passed, M failed" last; non-zero exit on failure.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/lib/install.sh
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev python3 || exit 1
OUT=build/defense
mkdir -p "$OUT"
cargo build --release -q || exit 1
# shellcheck disable=SC2054  # -Wl,-rpath,DIR is one argument
CF=(-O2 -Wall -Iinclude -Ltarget/release -Wl,-rpath,"$PWD/target/release")
cc "${CF[@]}" examples/c/echo_server.c -lwsnative -o "$OUT/echo_server" || exit 1
cc "${CF[@]}" tests/defense/server.c -lwsnative -o "$OUT/server" || exit 1

pass=0 fail=0 SERVER_PID=""
# shellcheck disable=SC2317  # run by the trap
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

case_() { # NAME ATTACK_ARGS -- SERVER COMMAND...
  local name="$1" args=() port
  shift
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  port=$(free_port)
  echo "--- $name"
  # The server alone runs with 1,024 descriptors.
  bash -c 'ulimit -n 1024 && exec "$@"' server "$@" "$port" >"$OUT/$name.log" 2>&1 &
  SERVER_PID=$!
  if ! wait_port "$port"; then
    echo "FAIL $name: no server on port $port"; cat "$OUT/$name.log"; fail=$((fail + 1)); return
  fi
  # wait_port's probe connections are gone by now; the attack runs with a timeout.
  if timeout 120 python3 tests/defense/attack.py "$port" "$SERVER_PID" "${args[@]}"; then
    echo "ok $name"; pass=$((pass + 1))
  else
    echo "FAIL $name"; fail=$((fail + 1))
  fi
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

# examples/c/echo_server takes its port as its argument; tests/defense/server.c takes it first
# ($0 and $1 of the inner shells below are theirs).
case_ defaults-one-address --clients 1100 --ips 1 -- "$OUT/echo_server"
case_ defaults-250-addresses --clients 1100 --ips 250 -- "$OUT/echo_server"
# shellcheck disable=SC2016
case_ caps-off-emfile --clients 1100 --ips 1 --fds-may-reach-limit -- \
  bash -c 'exec "$0" "$1" 0 0 drop-oldest' "$OUT/server"
# shellcheck disable=SC2016
case_ caps-off-refuse-emfile --clients 1100 --ips 1 --fds-may-reach-limit --expect refused -- \
  bash -c 'exec "$0" "$1" 0 0 refuse' "$OUT/server"
echo "defense: $pass passed, $fail failed"
[ "$fail" = 0 ]
