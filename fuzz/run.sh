#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each and prints, per target, the
# executions, the coverage libFuzzer measured (edges "cov" and features "ft"), the corpus
# size and whether it crashed; the last lines are a table (also written to
# fuzz/last-run.md from one row per target in fuzz/last-run/, which
# tests/reliability/readme.sh puts into the README).
#   bash fuzz/run.sh 60                       # each target 60 s, one after the other
#   FUZZ_JOBS=2 bash fuzz/run.sh 600 frames   # two at a time; only some targets
# Installs what it needs: a C/C++ compiler (libFuzzer is C++), cargo-fuzz from crates.io.
# The stable toolchain builds with RUSTC_BOOTSTRAP=1 (cargo fuzz needs -Z flags).
# The corpus grows in fuzz/corpus/TARGET (not committed), starting from fuzz/seeds/TARGET;
# crashes land in fuzz/artifacts/TARGET and fail the run (turn each into a unit test).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
ALL=(server_handshake client_handshake frames close ffi)
TARGETS=("${ALL[@]}")
[ $# -eq 0 ] || TARGETS=("$@")
JOBS="${FUZZ_JOBS:-1}"
LOGS="${FUZZ_LOGS:-fuzz/logs}"
. tests/lib/install.sh
[ -n "${FUZZ_SUMMARY_ONLY:-}" ] || wsn_apt_install gcc g++ libc6-dev || exit 1
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || exit 1
fi
[ -n "${FUZZ_SUMMARY_ONLY:-}" ] || (cd fuzz && nice cargo fuzz build -O) || { echo "fuzz: build failed"; exit 1; }
BIN=fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p "$LOGS"
one() { # TARGET
  local t="$1" extra=()
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # The C ABI target runs real connections: fewer, slower executions, more threads. Its leak
  # check is off: a connection still closing when the process exits shows as a leak (a consumed
  # `bytes` buffer keeps a pointer past its end, which LeakSanitizer does not count), so it
  # fails at random on a loaded machine. Leaks of the C ABI are checked by the sanitizers part
  # (LeakSanitizer and valgrind over the C programs, which end every connection first).
  [ "$t" = ffi ] && extra=(-timeout=60 -rss_limit_mb=6144 -detect_leaks=0)
  nice "$BIN/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -max_total_time="$SECONDS_PER" \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "${extra[@]}" \
    >"$LOGS/$t.log" 2>&1
  echo $? >"$LOGS/$t.rc"
}
running=0
# FUZZ_SUMMARY_ONLY=1: only summarise the logs of an earlier run (in FUZZ_LOGS).
[ -n "${FUZZ_SUMMARY_ONLY:-}" ] && TORUN=() || TORUN=("${TARGETS[@]}")
for t in "${TORUN[@]}"; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
fail=0
mkdir -p fuzz/last-run
for t in "${TARGETS[@]}"; do
  log="$LOGS/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' | tail -1)
  cov=$(echo "$last" | awk '{print $2}') ft=$(echo "$last" | awk '{print $4}') corp=$(echo "$last" | awk '{print $6}')
  rc=$(cat "$LOGS/$t.rc" 2>/dev/null || echo 1)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  result=ok
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then result="FAILED (exit $rc, $crashes artifacts)"; fail=1; fi
  echo "fuzz $t: ${execs:-?} executions in $SECONDS_PER s (${rate:-?}/s), coverage ${cov:-?} edges, ${ft:-?} features, corpus ${corp:-?}: $result"
  # One row per target, kept from run to run: the table shows each target's last run.
  echo "| $t | $SECONDS_PER | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result | $(date -u +%Y-%m-%d) |" >"fuzz/last-run/$t.row"
  [ "$result" = ok ] || grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5
done
{
  echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | result | run on |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  for t in "${ALL[@]}"; do cat "fuzz/last-run/$t.row" 2>/dev/null; done
} | tee fuzz/last-run.md
bash tests/reliability/readme.sh
[ "$fail" = 0 ]
