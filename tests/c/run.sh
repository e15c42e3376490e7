#!/usr/bin/env bash
# Compiles the C test program (as C11 and as C++17) and every C example against
# include/wsnative.h with warnings as errors, runs the test program and the demo against the
# built library. Prints "c: N passed, M failed" last.
set -uo pipefail
cd "$(dirname "$0")/../.."
# gcc and g++ build the tests and examples (and link cargo's build); python3 finds a free port.
. tests/lib/install.sh
wsn_apt_install gcc g++ libc6-dev python3 || exit 1
PROFILE="${WSN_PROFILE:-release}"
[ "$PROFILE" = release ] && cargo build --release -q || cargo build -q
LIB="$PWD/target/$PROFILE"
OUT=build/c
mkdir -p "$OUT"
pass=0 fail=0
step() { # NAME COMMAND...
  local name="$1"; shift
  if "$@" >"$OUT/$name.log" 2>&1; then pass=$((pass + 1)); echo "ok   $name";
  else fail=$((fail + 1)); echo "FAIL $name"; tail -n 30 "$OUT/$name.log"; fi
}
CFLAGS=(-O1 -g -Wall -Wextra -Werror -Iinclude -L"$LIB" -Wl,-rpath,"$LIB")
step build-test-c gcc -std=c11 -D_POSIX_C_SOURCE=200809L "${CFLAGS[@]}" tests/c/test_c_api.c -lwsnative -lpthread -o "$OUT/test_c_api"
step build-test-cxx g++ -std=c++17 -x c++ "${CFLAGS[@]}" tests/c/test_c_api.c -lwsnative -lpthread -o "$OUT/test_c_api_cxx"
for ex in examples/c/*.c; do
  name=$(basename "$ex" .c)
  step "build-$name" gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE "${CFLAGS[@]}" "$ex" -lwsnative -lpthread -o "$OUT/$name"
done
# The stress test: 1,000 connections, random calls from threads and callbacks, under a
# watchdog; once as built, once under AddressSanitizer (LeakSanitizer included).
step build-stress gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE "${CFLAGS[@]}" tests/c/stress.c -lwsnative -lpthread -o "$OUT/stress"
step build-stress-asan gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fsanitize=address -fno-omit-frame-pointer \
  "${CFLAGS[@]}" tests/c/stress.c -lwsnative -lpthread -o "$OUT/stress_asan"
stress() { ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"; timeout 300 "$@"; }
step run-stress stress "$OUT/stress" 1000 "${WSN_STRESS_SECONDS:-10}"
step run-stress-asan stress "$OUT/stress_asan" 1000 "${WSN_STRESS_SECONDS:-10}"
step run-test-c timeout 120 "$OUT/test_c_api"
step run-test-cxx timeout 120 "$OUT/test_c_api_cxx"
step run-demo timeout 60 "$OUT/demo"
step run-poll-loop timeout 60 "$OUT/poll_loop"
# The echo server and the line client talk to each other.
if [ -x "$OUT/echo_server" ] && [ -x "$OUT/client" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$OUT/echo_server" "$port" >"$OUT/echo_server.log" 2>&1 &
  srv=$!
  for _ in $(seq 50); do grep -q listening "$OUT/echo_server.log" && break; sleep 0.1; done
  check_client() { printf 'first line\nsecond line\n' | timeout 30 "$OUT/client" "ws://127.0.0.1:$port/" >"$OUT/client.out" 2>"$OUT/client.err" \
      && grep -q '< first line' "$OUT/client.out" && grep -q '< second line' "$OUT/client.out" \
      && grep -q 'closed: code 1000, reason "bye", clean' "$OUT/client.err"; }
  step run-client-against-echo-server check_client
  kill -TERM "$srv"; wait "$srv" 2>/dev/null
fi
echo "c: $pass passed, $fail failed"
[ "$fail" = 0 ]
