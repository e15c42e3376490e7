#!/usr/bin/env bash
# The soak: CONNECTIONS (default 10000) WebSocket connections between two processes through the
# C ABI, for SECONDS (default 600), with keep-alive, random traffic with sequence numbers and
# churn (tests/soak/soak.c says what is checked). Prints the server's descriptors, threads and
# resident memory once a minute and "soak: ok" or "soak: FAILED"; the figures also go to
# tests/soak/last-run.md (put into the README by tests/reliability/readme.sh).
#   bash tests/soak/run.sh 120           # two minutes (.ci/run)
#   bash tests/soak/run.sh 600 10000     # ten minutes
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-600}" CONNS="${2:-10000}" RATE="${SOAK_RATE:-2000}" CHURN="${SOAK_CHURN:-10}"
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev || exit 1
cargo build --release -q || exit 1
LIB="$PWD/target/release" OUT=build/soak
mkdir -p "$OUT"
gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude \
  -L"$LIB" -Wl,-rpath,"$LIB" tests/soak/soak.c -lwsnative -lpthread -o "$OUT/soak" || exit 1
# Each process holds one descriptor per connection, and more while connections churn.
need=$((CONNS + 4096))
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "soak: the descriptor limit is $(ulimit -n) (hard $(ulimit -Hn)); $need are needed"; exit 1
fi
# The server reads its stdin: it ends when this script does, even when killed.
exec 3> >(exec nice "$OUT/soak" server >"$OUT/server.out" 2>"$OUT/server.err")
srv=$!
for _ in $(seq 100); do grep -q '^port' "$OUT/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/^port/ {print $2}' "$OUT/server.out")
[ -n "$port" ] || { echo "soak: the server did not start"; cat "$OUT/server.err"; exit 1; }
spid=$(pgrep -P "$srv" -x soak || echo "$srv")
timeout $((SECS + 400)) nice "$OUT/soak" client "$port" "$spid" "$CONNS" "$SECS" "$RATE" "$CHURN" | tee "$OUT/client.out"
rc=${PIPESTATUS[0]}
exec 3>&-
for _ in $(seq 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
cat "$OUT/server.err" "$OUT/server.out" | grep -v '^port'
grep -q 'unexpected closes$' "$OUT/server.out" && ! grep -q ' 0 unexpected closes$' "$OUT/server.out" && rc=1
{
  echo "Soak of $(date -u +%Y-%m-%d): $CONNS connections for $SECS s, $RATE messages/s, churn $CHURN per mille a second."
  echo
  grep '^|' "$OUT/client.out"
  echo
  grep '^soak:' "$OUT/client.out" | sed 's/^/    /'
  grep '^soak server:' "$OUT/server.out" | sed 's/^/    /'
} >tests/soak/last-run.md
bash tests/reliability/readme.sh
[ "$rc" = 0 ] && echo "soak: passed" || echo "soak: FAILED"
[ "$rc" = 0 ]
