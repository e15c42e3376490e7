#!/usr/bin/env bash
# The C side of wsnative under sanitizers: the C API test (tests/c/test_c_api.c), the examples
# that run alone (demo, poll_loop, echo_server with client) and the stress program
# (tests/c/stress.c: many connections, random calls from threads and callbacks), under
#   asan      AddressSanitizer with LeakSanitizer (the C programs instrumented; the library's
#             allocations go through the same intercepted malloc, so its leaks count too);
#   tsan      ThreadSanitizer, with the library itself instrumented: built with
#             -Zsanitizer=thread and -Zbuild-std (RUSTC_BOOTSTRAP=1; rust-src from rustup),
#             because an uninstrumented library hides its synchronisation from TSan and every
#             hand-over between an application thread and a callback thread would be reported;
#             Suppressions in tests/sanitizers/tsan.supp (each explained there); GCC's libtsan
#             lacks three entry points rustc's LLVM uses, which tests/sanitizers/tsan_shim.c
#             forwards to the intercepted memcpy, memmove and memset;
#   valgrind  memcheck over the normal release build, suppressions in
#             tests/sanitizers/valgrind.supp (each one explained there).
# Usage: bash tests/sanitizers/run.sh [asan] [tsan] [valgrind]   (default: all three)
# Prints one line per program and tool, "sanitizers: N passed, M failed" last, and writes the
# table to tests/sanitizers/last-run.md (put into the README by tests/reliability/readme.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
TOOLS=("$@")
[ ${#TOOLS[@]} -gt 0 ] || TOOLS=(asan tsan valgrind)
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev valgrind python3 || exit 1
cargo build --release -q || exit 1
OUT=build/sanitizers
EXTRA_SRC=()
mkdir -p "$OUT"
STRESS_CONNS="${WSN_SAN_STRESS_CONNS:-200}" STRESS_SECS="${WSN_SAN_STRESS_SECONDS:-10}"
pass=0 fail=0
mkdir -p tests/sanitizers/last-run
step() { # TOOL NAME COMMAND...
  local tool="$1" name="$2"; shift 2
  local log="$OUT/$tool-$name.log" t0=$SECONDS
  if "$@" >"$log" 2>&1; then
    pass=$((pass + 1)); echo "ok   $tool $name ($((SECONDS - t0)) s)"
    echo "| $name | $tool | clean | $((SECONDS - t0)) s |" >>"tests/sanitizers/last-run/$tool.rows"
  else
    fail=$((fail + 1)); echo "FAIL $tool $name (see $log)"; tail -n 40 "$log"
    echo "| $name | $tool | FAILED | $((SECONDS - t0)) s |" >>"tests/sanitizers/last-run/$tool.rows"
  fi
}
# build TOOL LIBDIR CFLAGS...: the programs, against the library in LIBDIR.
build() {
  local tool="$1" lib="$2"; shift 2
  local cf=(-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -fno-omit-frame-pointer
            -Wall -Wextra -Werror -Iinclude -L"$lib" -Wl,-rpath,"$lib" "$@")
  mkdir -p "$OUT/$tool"
  for src in tests/c/test_c_api.c tests/c/stress.c examples/c/demo.c examples/c/poll_loop.c \
             examples/c/echo_server.c examples/c/client.c; do
    gcc "${cf[@]}" "$src" "${EXTRA_SRC[@]}" -lwsnative -lpthread -o "$OUT/$tool/$(basename "$src" .c)" || return 1
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The echo server and the line client against each other, both under the tool.
echo_pair() { # TOOL RUNNER...
  local tool="$1"; shift
  local port; port=$(free_port)
  "$@" "$OUT/$tool/echo_server" "$port" >"$OUT/$tool-echo_server.out" 2>&1 &
  local srv=$!
  for _ in $(seq 300); do grep -q listening "$OUT/$tool-echo_server.out" && break; sleep 0.1; done
  printf 'first line\nsecond line\n' | timeout 120 "$@" "$OUT/$tool/client" "ws://127.0.0.1:$port/" >"$OUT/$tool-client.out" 2>&1
  local rc=$?
  kill -TERM "$srv"; wait "$srv"; local src=$?
  cat "$OUT/$tool-echo_server.out" "$OUT/$tool-client.out"
  grep -q '< second line' "$OUT/$tool-client.out" && [ "$rc" = 0 ] && [ "$src" = 0 ]
}
run_all() { # TOOL RUNNER...
  local tool="$1"; shift
  step "$tool" test_c_api timeout 600 "$@" "$OUT/$tool/test_c_api"
  step "$tool" demo timeout 300 "$@" "$OUT/$tool/demo"
  step "$tool" poll_loop timeout 300 "$@" "$OUT/$tool/poll_loop"
  step "$tool" echo_server+client echo_pair "$tool" "$@"
  step "$tool" "stress-$STRESS_CONNS-conns" timeout 900 "$@" "$OUT/$tool/stress" "$STRESS_CONNS" "$STRESS_SECS"
}
for tool in "${TOOLS[@]}"; do
  # Each tool's rows are replaced by its own last run; the table shows every tool's.
  echo "$(date -u +%Y-%m-%d): stress with $STRESS_CONNS connections for $STRESS_SECS s" >"tests/sanitizers/last-run/$tool.rows"
  case "$tool" in
  asan)
    build asan "$PWD/target/release" -fsanitize=address || { fail=$((fail + 1)); continue; }
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 run_all asan env
    ;;
  tsan)
    # The library, instrumented: its own target directory (a full build of std and of every
    # dependency, about 5 minutes).
    rustup component add rust-src >/dev/null 2>&1 || true
    if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
      # "Where the toolchain allows": without the standard library's source (a rustup component
      # this machine could not fetch) the library cannot be instrumented, and a C program under
      # TSan linked to an uninstrumented library only gives false reports.
      echo "SKIP tsan: the rust-src component is not available (rustup component add rust-src failed)"
      continue
    fi
    if ! RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=thread" CI=1 nice cargo build --release -q -Zbuild-std \
        --target x86_64-unknown-linux-gnu --target-dir target/tsan --lib; then
      echo "FAIL tsan: the instrumented library did not build"; fail=$((fail + 1)); continue
    fi
    # GCC's libtsan lacks three entry points rustc's LLVM calls: tsan_shim.c forwards them.
    EXTRA_SRC=(-fno-builtin tests/sanitizers/tsan_shim.c)
    build tsan "$PWD/target/tsan/x86_64-unknown-linux-gnu/release" -fsanitize=thread || { fail=$((fail + 1)); continue; }
    EXTRA_SRC=()
    TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$PWD/tests/sanitizers/tsan.supp" \
      WSN_STRESS_NO_RSS=1 run_all tsan env
    ;;
  valgrind)
    build valgrind "$PWD/target/release" || { fail=$((fail + 1)); continue; }
    # The stress program's own memory check measures valgrind's memory, not the program's.
    WSN_STRESS_NO_RSS=1 run_all valgrind valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      --show-leak-kinds=definite --num-callers=40 --suppressions=tests/sanitizers/valgrind.supp
    ;;
  *) echo "unknown tool $tool"; exit 64 ;;
  esac
done
{
  echo "| program | tool | result | time |"
  echo "| --- | --- | --- | ---: |"
  for t in asan tsan valgrind; do grep -h '^|' "tests/sanitizers/last-run/$t.rows" 2>/dev/null; done
  echo
  for t in asan tsan valgrind; do
    [ -f "tests/sanitizers/last-run/$t.rows" ] && echo "- $t run on $(head -n 1 "tests/sanitizers/last-run/$t.rows")"
  done
} >tests/sanitizers/last-run.md
bash tests/reliability/readme.sh
echo "sanitizers: $pass passed, $fail failed"
[ "$fail" = 0 ]
