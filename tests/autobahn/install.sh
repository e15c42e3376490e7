#!/usr/bin/env bash
# install.sh - installs the Autobahn|Testsuite (`wstest`) on Debian 12, for tests/conformance.sh.
#
#   bash tests/autobahn/install.sh
#
# The suite (PyPI autobahntestsuite==25.10.1) runs on Python 2.7 only. Debian 12 has no Python 2,
# so it comes from Debian 11 "bullseye" (tests/lib/install.sh adds that source for the install
# only); Python 2's pip is bootstrapped from wheels downloaded with Python 3's pip, and the suite
# with a fully pinned, known-good set of dependencies goes into a private prefix. A launcher
# `wstest` is written to BINDIR; its servers listen on 127.0.0.1 only.
#
# Idempotent and quick (well under a second) when `wstest -a` already reports the suite. Quiet
# unless something fails: then the failed step and the tail of the log, exit 1.
#
# Environment: AUTOBAHN_PREFIX (default /opt/autobahn), AUTOBAHN_BINDIR (default /usr/local/bin),
# AUTOBAHN_FORCE=1 (redo every step), AUTOBAHN_VERBOSE=1 (show the log).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${AUTOBAHN_PREFIX:-/opt/autobahn}"
BINDIR="${AUTOBAHN_BINDIR:-/usr/local/bin}"
SUITE_VERSION="25.10.1"
PY2=/usr/bin/python2.7
SITE="$PREFIX/lib/python2.7/site-packages"
LAUNCHER="$BINDIR/wstest"
LOG="$(mktemp "${TMPDIR:-/tmp}/autobahn-install.XXXXXX.log")"

# autobahntestsuite's requirements plus their transitive dependencies, pinned to versions that
# still install on Python 2.7 (unpinned, pip picks releases that no longer support it).
PINS=(
  "autobahntestsuite==$SUITE_VERSION"
  "autobahn[accelerate,twisted]==0.10.9"
  setuptools==44.0.0 txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0
  cryptography==3.3.2 Twisted==19.10.0 zope.interface==4.6.0 jinja2==2.11.3
  markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 service_identity==18.1.0
  unittest2==1.1.0 six==1.16.0
  Automat==22.10.0 PyHamcrest==1.10.1 attrs==21.4.0 cffi==1.15.1
  constantly==15.1.0 enum34==1.1.10 hyperlink==21.0.0 idna==2.10
  ipaddress==1.0.23 linecache2==1.0.0 pyasn1==0.5.1 pyasn1-modules==0.3.0
  pycparser==2.21 traceback2==1.4.0 typing==3.10.0.0 ujson==2.0.3
  wsaccel==0.6.6
)

log() { echo "autobahn install: $*" >>"$LOG"; [ -z "${AUTOBAHN_VERBOSE:-}" ] || echo "autobahn install: $*" >&2; }
die() {
  echo "autobahn install: ERROR: $*" >&2
  if [ -s "$LOG" ]; then echo "---- last 40 lines of $LOG ----" >&2; tail -n 40 "$LOG" >&2; fi
  exit 1
}
quiet() { # CMD...: its output goes to the log (and to stderr when verbose)
  if [ -n "${AUTOBAHN_VERBOSE:-}" ]; then "$@" 2>&1 | tee -a "$LOG" >&2; return "${PIPESTATUS[0]}"; fi
  "$@" >>"$LOG" 2>&1
}
installed_ok() { [ -x "$LAUNCHER" ] && "$LAUNCHER" -a 2>/dev/null | grep -q "AutobahnTestSuite $SUITE_VERSION"; }

if [ -z "${AUTOBAHN_FORCE:-}" ] && installed_ok; then rm -f "$LOG"; exit 0; fi

# One installer at a time; another one may have finished the job while we waited.
exec 9>"${TMPDIR:-/tmp}/wsnative-autobahn-install.lock"
flock -w 900 9 || die "another install.sh is still running (waited 15 min)"
if [ -z "${AUTOBAHN_FORCE:-}" ] && installed_ok; then rm -f "$LOG"; exit 0; fi
[ "$(id -u)" = 0 ] || die "run as root (needs apt-get and write access to $PREFIX and $BINDIR)"

# --- 1. Debian packages: a C compiler and Python 2.7 headers for the suite's C extensions,
#        Python 3 with venv to download Python 2's pip ---
# shellcheck source=../lib/install.sh
. "$HERE/../lib/install.sh"
log "Debian packages"
quiet wsn_apt_install gcc libc6-dev python3 python3-venv || die "apt-get install of gcc, python3-venv failed"
quiet wsn_apt_install_bullseye python2.7 python2.7-dev || die "apt-get install of python2.7 (Debian 11) failed"
"$PY2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >>"$LOG" 2>&1 || die "$PY2 does not run"

# --- 2. pip for Python 2, inside the prefix ---
mkdir -p "$SITE" "$BINDIR" || die "cannot create $SITE or $BINDIR"
# A clean environment for Python 2's pip: no settings meant for the machine's Python 3 pip.
py2env=(env -u PIP_REQUIRE_VIRTUALENV -u PIP_USER -u PIP_TARGET -u PIP_PREFIX -u PIP_FIND_LINKS
        -u PYTHONHOME -u PYTHONSTARTUP PYTHONNOUSERSITE=1 PYTHONPATH="$SITE"
        PIP_DISABLE_PIP_VERSION_CHECK=1)
if [ -n "${AUTOBAHN_FORCE:-}" ] || ! "${py2env[@]}" "$PY2" -m pip --version >>"$LOG" 2>&1; then
  log "bootstrapping pip for Python 2.7"
  boot="$(mktemp -d)"
  # Debian's python3 has no pip of its own (python3-pip is not installed): use a throwaway venv's.
  quiet python3 -m venv "$boot/venv" || die "python3 -m venv failed"
  quiet "$boot/venv/bin/python" -m pip download --disable-pip-version-check --no-deps \
        pip==20.3.4 setuptools==44.1.1 wheel==0.37.1 -d "$boot" \
    || die "downloading pip/setuptools/wheel for Python 2 failed"
  [ -e "$boot/pip-20.3.4-py2.py3-none-any.whl" ] || die "pip-20.3.4 wheel missing after download"
  quiet "${py2env[@]}" "$PY2" "$boot/pip-20.3.4-py2.py3-none-any.whl/pip" install \
        --no-index --find-links "$boot" --prefix "$PREFIX" pip setuptools wheel \
    || die "installing pip for Python 2 into $PREFIX failed"
  rm -rf "$boot"
  "${py2env[@]}" "$PY2" -m pip --version >>"$LOG" 2>&1 || die "Python 2's pip does not run after the bootstrap"
fi

# --- 3. the suite and its pinned dependencies ---
log "pip install ${PINS[*]}"
quiet "${py2env[@]}" "$PY2" -m pip install --no-warn-script-location --prefix "$PREFIX" "${PINS[@]}" \
  || die "pip install of autobahntestsuite==$SUITE_VERSION and its dependencies failed"

# --- 4. the launcher ---
mkdir -p "$PREFIX/libexec"
cat >"$PREFIX/libexec/wstest.py" <<PYEOF
# wstest launcher written by wsnative's tests/autobahn/install.sh (AutobahnTestSuite $SUITE_VERSION).
# site.addsitedir (not PYTHONPATH) so that the zope namespace .pth files work.
# Every server wstest opens (fuzzingserver, echoserver, the web UI port) binds to
# WSTEST_LISTEN_INTERFACE, default 127.0.0.1: tests use the loopback interface only.
import os, site, sys
site.addsitedir('$SITE')
sys.argv[0] = 'wstest'
from autobahntestsuite import wstest  # installs the reactor
from twisted.internet import reactor
_iface = os.environ.get('WSTEST_LISTEN_INTERFACE', '127.0.0.1')
if _iface:
    _listenTCP = reactor.listenTCP
    _listenSSL = reactor.listenSSL
    def _tcp(port, factory, backlog=50, interface=''):
        return _listenTCP(port, factory, backlog, interface or _iface)
    def _ssl(port, factory, contextFactory, backlog=50, interface=''):
        return _listenSSL(port, factory, contextFactory, backlog, interface or _iface)
    reactor.listenTCP = _tcp
    reactor.listenSSL = _ssl
wstest.run()
PYEOF
tmp_launcher="$LAUNCHER.tmp.$$"
cat >"$tmp_launcher" <<SHEOF
#!/bin/sh
# AutobahnTestSuite $SUITE_VERSION launcher (wsnative tests/autobahn/install.sh)
exec $PY2 -E -s $PREFIX/libexec/wstest.py "\$@"
SHEOF
chmod 755 "$tmp_launcher"
mv -f "$tmp_launcher" "$LAUNCHER"

# --- 5. check ---
"$LAUNCHER" -a >>"$LOG" 2>&1 || die "$LAUNCHER -a fails after the install"
installed_ok || die "$LAUNCHER does not report AutobahnTestSuite $SUITE_VERSION"
case ":$PATH:" in *":$BINDIR:"*) ;; *) echo "autobahn install: note: $BINDIR is not on PATH; call $LAUNCHER" >&2 ;; esac
rm -f "$LOG"
