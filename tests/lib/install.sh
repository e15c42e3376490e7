# shellcheck shell=bash
# install.sh - sourced by every test and demo script: installs the Debian packages a part
# needs, so that each part works alone, in any order, on a fresh Debian 12 machine.
#
#   . tests/lib/install.sh
#   wsn_apt_install gcc libc6-dev python3      # the missing ones only; nothing when all are there
#   wsn_apt_install_bullseye libssl1.1         # packages Debian 12 no longer has (from Debian 11)
#
# Quick when everything is installed (one dpkg-query). Otherwise `apt-get update` first (a fresh
# machine has no package lists), then `apt-get install --no-install-recommends`.
# apt-get waits up to 300 s for another apt/dpkg (DPkg::Lock::Timeout) instead of failing.

WSN_APT=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
WSN_SUDO=""
[ "$(id -u)" = 0 ] || WSN_SUDO="sudo"

# Prints the packages among the arguments that are not installed.
wsn_apt_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

wsn_apt_install() { # PACKAGE...
  local missing
  missing=$(wsn_apt_missing "$@")
  [ -n "$missing" ] || return 0
  echo "install: apt-get install" $missing >&2
  local log; log=$(mktemp)
  # shellcheck disable=SC2086  # word splitting of the package list is wanted
  if $WSN_SUDO env DEBIAN_FRONTEND=noninteractive "${WSN_APT[@]}" update >"$log" 2>&1 \
    && $WSN_SUDO env DEBIAN_FRONTEND=noninteractive "${WSN_APT[@]}" install --no-install-recommends $missing >>"$log" 2>&1; then
    rm -f "$log"
  else
    tail -n 20 "$log" >&2; rm -f "$log"
    echo "install: apt-get install" $missing "failed" >&2
    return 1
  fi
}

# Debian 12 has neither libssl1.1 (which .NET Core 3.1 needs) nor Python 2.7 (which the Autobahn
# suite needs); Debian 11 "bullseye" has both. Its source is added only for the install, pinned at
# priority 100, and removed again afterwards (when this function added it). Without `-t bullseye`:
# the pin makes apt take from Debian 11 only what Debian 12 lacks (python2.7-dev then gets Debian
# 12's libexpat1-dev, where -t bullseye would ask for Debian 11's, which conflicts with the
# installed libexpat1). One such install at a time (flock), so two parts never fight over it.
wsn_apt_install_bullseye() { # PACKAGE...
  local missing rc=0
  missing=$(wsn_apt_missing "$@")
  [ -n "$missing" ] || return 0
  local src=/etc/apt/sources.list.d/wsnative-bullseye.sources
  local pin=/etc/apt/preferences.d/wsnative-bullseye-low-priority
  echo "install: apt-get install" $missing "(from Debian 11 bullseye)" >&2
  local log; log=$(mktemp)
  (
    flock -w 900 9 || { echo "install: another bullseye install holds the lock" >&2; exit 1; }
    added=""
    if [ ! -e "$src" ]; then
      printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bullseye' \
        'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
        | $WSN_SUDO tee "$src" >/dev/null
      printf '%s\n' 'Package: *' 'Pin: release n=bullseye' 'Pin-Priority: 100' \
        | $WSN_SUDO tee "$pin" >/dev/null
      added=1
    fi
    # shellcheck disable=SC2086
    $WSN_SUDO env DEBIAN_FRONTEND=noninteractive "${WSN_APT[@]}" update >"$log" 2>&1 \
      && $WSN_SUDO env DEBIAN_FRONTEND=noninteractive "${WSN_APT[@]}" install --no-install-recommends \
           $missing >>"$log" 2>&1
    rc=$?
    if [ -n "$added" ]; then
      $WSN_SUDO rm -f "$src" "$pin"
      # Forget bullseye's package lists too, so that later installs see Debian 12 only.
      $WSN_SUDO env DEBIAN_FRONTEND=noninteractive "${WSN_APT[@]}" update >>"$log" 2>&1 || true
    fi
    exit $rc
  ) 9>/tmp/wsnative-bullseye.lock || { tail -n 20 "$log" >&2; echo "install: apt-get install" $missing "(from Debian 11 bullseye) failed" >&2; rc=1; }
  rm -f "$log"
  return $rc
}
