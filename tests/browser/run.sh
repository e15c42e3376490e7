#!/usr/bin/env bash
# The real-browser test (issues 14 and 15): Debian's chromium, headless, against wsnative's
# server through the C ABI.
#   - server.c: a C server with permessage-deflate on, one allowed Origin, an accept hook that
#     closes path /refused with 4001 "not allowed", an echo elsewhere; it prints what it saw;
#   - page.html: the cases, run in the browser (echo of text and binary messages from 1 KiB to
#     4 MiB, compressible and not; a forbidden origin; the 4001 refusal; a session deadline that
#     ends the connection with 4401 after 1 s);
#   - drive.py: serves the page from two loopback origins, starts the servers (the echo with three
#     permessage-deflate configurations and once over wss with a self-signed certificate that only
#     this Chromium trusts, each through a relay that counts the bytes on the wire)
#     and Chromium, and drives Chromium through the DevTools protocol over wsnative's own Python
#     binding.
# Installs what it needs (chromium, gcc, python3), builds the library and the server, runs the
# cases with a timeout on every wait, stops whatever it started, and prints
# "browser: N passed, M failed" last (non-zero exit on failure).
#   CHROMIUM=/path/to/chromium   another Chromium build than Debian's /usr/bin/chromium
#   WSN_BROWSER_VERBOSE=1        print every page's log and console, not only a failing one's
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# chromium: the browser; gcc/libc6-dev: cargo's link and the server; openssl: the wss certificate;
# python3: the driver (the standard library and bindings/python from this tree, nothing from PyPI).
# shellcheck source=tests/lib/install.sh
. tests/lib/install.sh
OUT=build/browser
mkdir -p "$OUT"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
pass=0 fail=0

# Whatever the driver could not stop (it was killed): its pid files name it. Chromium runs in a
# session of its own, killed as a group.
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  local f pid
  for f in "$OUT"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    case "$f" in
      */chromium.pid) kill -KILL -- "-$pid" 2>/dev/null ;;
      *) kill -KILL "$pid" 2>/dev/null ;;
    esac
    rm -f "$f"
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
rm -f "$OUT"/*.pid  # of an earlier run that was killed (not killed again: pids get reused)

step() { # NAME COMMAND...
  local name="$1"; shift
  if "$@" >"$OUT/$name.log" 2>&1; then pass=$((pass + 1)); echo "ok   $name";
  else fail=$((fail + 1)); echo "FAIL $name"; tail -n 30 "$OUT/$name.log"; fi
}
finish() {
  echo "browser: $pass passed, $fail failed"
  [ "$fail" = 0 ]
  exit
}

step install wsn_apt_install chromium gcc libc6-dev python3 openssl
[ "$fail" = 0 ] || finish
step build-library cargo build --release -q
LIB="${CARGO_TARGET_DIR:-$PWD/target}/release"
step build-server gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -Wall -Wextra -Werror \
  -Iinclude -L"$LIB" -Wl,-rpath,"$LIB" tests/browser/server.c -lwsnative -lpthread -o "$OUT/browser_server"
[ "$fail" = 0 ] || finish

# The cases: the driver prints "ok   NAME" / "FAIL NAME" per check, each wait bounded inside;
# timeout bounds the whole (SIGTERM first, which the driver turns into stopping its children).
t0=$SECONDS
WSNATIVE_LIBRARY="$LIB/libwsnative.so" timeout -k 10 600 python3 tests/browser/drive.py \
  --server "$OUT/browser_server" --chromium "$CHROMIUM" --out "$OUT" 2>&1 | tee "$OUT/drive.log"
rc=${PIPESTATUS[0]}
n_ok=$(grep -c '^ok ' "$OUT/drive.log")
n_fail=$(grep -c '^FAIL ' "$OUT/drive.log")
pass=$((pass + n_ok)) fail=$((fail + n_fail))
if [ "$rc" != 0 ] && [ "$n_fail" = 0 ]; then
  fail=$((fail + 1)); echo "FAIL driver exited with status $rc"
fi
echo "cases took $((SECONDS - t0)) s (logs: $OUT/server-*.log, $OUT/chromium.log, $OUT/drive.log)"
finish
