#!/usr/bin/env bash
# Packaging and the command-line tool, each part installing what it needs:
#   c.sh       the C install (scripts/install-c.sh): pkg-config and CMake users, shared and static
#   wsncat.sh  wsncat against its own server and a hand-made one
#   nuget.sh   the NuGet package, the C# tests run from its unpacked layout on Mono and CoreCLR
# (the Python wheel is built and tested by bindings/python/test.sh; the version numbers are held
# equal by tests/versions.rs). The last line is "packaging: N passed, M failed" over the scripts.
set -uo pipefail
cd "$(dirname "$0")/../.."
pass=0 fail=0
# c last: its install relinks the library with a SONAME (cargo rustc), which the next plain
# cargo build undoes by building the crate again.
for s in wsncat nuget c; do
  echo "--- packaging/$s"
  t0=$SECONDS
  if bash "tests/packaging/$s.sh"; then pass=$((pass + 1)); echo "--- packaging/$s: ok ($((SECONDS - t0)) s)";
  else fail=$((fail + 1)); echo "--- packaging/$s: FAILED ($((SECONDS - t0)) s)"; fi
done
echo "packaging: $pass passed, $fail failed"
[ "$fail" = 0 ]
