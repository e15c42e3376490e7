#!/usr/bin/env bash
# Every test of wsnative. Each part installs what it needs by itself (tests/lib/install.sh), so
# the parts also pass alone and in any order on a fresh Debian 12 machine:
#   0. Lint: cargo fmt --check and cargo clippy -D warnings;
#   1. Rust: unit and integration tests through the C ABI (cargo nextest, or cargo test),
#      including the check that include/wsnative.h is current (run with CI=true to check the
#      committed header instead of regenerating it);
#   2. C: the API compiled as C and C++, every example built, the demo run (tests/c/run.sh);
#   3. Python binding (bindings/python/test.sh);
#   4. C# binding on Mono and CoreCLR (bindings/csharp/test.sh);
#   5. Autobahn conformance through the C ABI, both directions (tests/conformance.sh);
#   6. a real browser, headless chromium, against the C ABI server (tests/browser/run.sh);
#   7. slow clients at the descriptor limit (tests/defense/run.sh);
#   8. reliability: fuzzing, sanitizers, fault injection, soak (fuzz/run.sh, tests/sanitizers/,
#      tests/reliability/faults.sh, tests/soak/run.sh);
#   9. packaging: the C install with pkg-config and CMake, wsncat, the NuGet package on both
#      lanes (tests/packaging/run.sh; last: its C install relinks the library with a SONAME).
# Runs every part even when one fails; the last line is "all: N passed, M failed" over parts.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
pass=0 fail=0 failed_parts=""
part() { # NAME COMMAND...
  local name="$1"; shift
  local t0=$SECONDS
  echo "=== $name"
  if "$@"; then pass=$((pass + 1)); echo "=== $name: ok ($((SECONDS - t0)) s)";
  else fail=$((fail + 1)); failed_parts="$failed_parts $name"; echo "=== $name: FAILED ($((SECONDS - t0)) s)"; fi
}
rust_tests() {
  # cargo links with the system C compiler (cc), and ring compiles C and assembly.
  . tests/lib/install.sh && wsn_apt_install gcc libc6-dev || return 1
  # client-reach: tests/certs.rs makes a certificate with the openssl command line;
  # tests/proxy.rs runs tinyproxy and microsocks (it also installs them itself).
  wsn_apt_install openssl tinyproxy microsocks || return 1
  cargo build --release -q || return 1
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release --no-fail-fast
  else
    cargo test --release --no-fail-fast
  fi
}
# The house rules: formatted (rustfmt, width 100) and clippy-clean, warnings as errors.
lint() {
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  cargo fmt --check || { echo "lint: run 'cargo fmt'"; return 1; }
  cargo fmt --check --manifest-path macros/Cargo.toml || { echo "lint: run 'cargo fmt' in macros/"; return 1; }
  cargo clippy --release --all-targets -q -- -D warnings || return 1
  # The export attribute's crate (a path dependency, which the line above does not lint).
  cargo clippy --release --manifest-path macros/Cargo.toml --target-dir target -q -- -D warnings
}
part lint lint
part rust rust_tests
part c bash tests/c/run.sh
part python bash bindings/python/test.sh
part csharp bash bindings/csharp/test.sh
part conformance bash tests/conformance.sh
part browser bash tests/browser/run.sh
# Issue 15 section 2: 1,100 slow clients against a server at ulimit -n 1024.
part defense bash tests/defense/run.sh
# Reliability (issue 11): each fuzz target 60 s (two at a time), the C programs under
# sanitizers, the fault-injection matrix, a 2-minute soak of 10,000 connections. Each updates
# its figures in the README's Reliability section (tests/reliability/readme.sh).
part fuzz env FUZZ_JOBS=2 bash fuzz/run.sh 60
part sanitizers bash tests/sanitizers/run.sh
part faults bash tests/reliability/faults.sh
part soak bash tests/soak/run.sh 120 10000
part packaging bash tests/packaging/run.sh
[ -z "$failed_parts" ] || echo "failed parts:$failed_parts"
echo "all: $pass passed, $fail failed"
[ "$fail" = 0 ]
