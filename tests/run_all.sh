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
#   6. a real browser, headless chromium, against the C ABI server (tests/browser/run.sh).
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
  cargo clippy --release --all-targets -q -- -D warnings
}
part lint lint
part rust rust_tests
part c bash tests/c/run.sh
part python bash bindings/python/test.sh
part csharp bash bindings/csharp/test.sh
part conformance bash tests/conformance.sh
part browser bash tests/browser/run.sh
[ -z "$failed_parts" ] || echo "failed parts:$failed_parts"
echo "all: $pass passed, $fail failed"
[ "$fail" = 0 ]
