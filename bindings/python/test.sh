#!/usr/bin/env bash
# Runs the Python binding's tests: a venv (build/pyvenv), pytest + websockets + websocket-client,
# the package installed from bindings/python with the library built by cargo, then pytest.
# Exits non-zero on failure; pytest's summary is the last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${WSNATIVE_PYVENV:-$REPO/build/pyvenv}"
PY="${PYTHON:-python3}"

log() { echo "test.sh: $*" >&2; }

# Debian packages: python3 with venv; openssl makes the TLS tests' certificates (without it they
# are skipped); gcc links cargo's build of the library.
. "$REPO/tests/lib/install.sh"
wsn_apt_install python3 python3-venv openssl gcc libc6-dev

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

log "installing test dependencies"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check pytest pytest-timeout websockets websocket-client >&2

if [ -z "${WSNATIVE_LIBRARY:-}" ]; then
    if command -v cargo >/dev/null 2>&1; then
        log "building the native library (cargo build --release --lib)"
        (cd "$REPO" && cargo build --release --lib >&2)
    elif [ ! -f "${CARGO_TARGET_DIR:-$REPO/target}/release/libwsnative.so" ]; then
        log "cargo is not installed and no built library was found; set WSNATIVE_LIBRARY"
        exit 2
    fi
fi

log "installing the wsnative package"
WSNATIVE_SKIP_CARGO=1 "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --force-reinstall --no-deps "$HERE" >&2
rm -rf "$HERE/build" "$HERE"/*.egg-info

# Run from the tests' parent with the venv's pytest (not `python -m pytest`, which would put the
# source tree on sys.path): the tests then exercise the installed package and its bundled library.
cd "$HERE"
exec "$VENV/bin/pytest" tests -q -p no:cacheprovider -o timeout=120 "$@"
