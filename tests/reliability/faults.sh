#!/usr/bin/env bash
# The fault-injection matrix (tests/faults.rs): runs it, keeps the printed matrix in
# tests/reliability/faults.md and updates the README's Reliability section.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev || exit 1
out=$(mktemp)
cargo test --release -q --test faults -- --nocapture --test-threads=1 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
{
  echo "Fault matrix of $(date -u +%Y-%m-%d) ($(grep -o '^fault matrix: [0-9]* cases' "$out" | grep -o '[0-9]*') cases; \"ended after\": from the fault, or from the close, to the last CLOSE event):"
  echo
  grep '^|' "$out"
} >tests/reliability/faults.md
rm -f "$out"
bash tests/reliability/readme.sh
[ "$rc" = 0 ]
