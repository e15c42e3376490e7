#!/usr/bin/env bash
# fresh_machine.sh - does wsnative work on a fresh Debian 12 machine from the repository alone?
#
#   sudo bash tests/fresh_machine.sh                      # the README's commands, on HEAD
#   sudo bash tests/fresh_machine.sh --ref my-branch      # ... on another commit
#   sudo bash tests/fresh_machine.sh -- bash bindings/csharp/test.sh   # one command alone
#
# Options: --repo PATH (default: this checkout), --ref REF (default: HEAD; only committed work is
# tested), --keep (keep the run's file system for a look afterwards), -- COMMAND... (run this one
# command in the clone instead of the README's commands).
#
# What it does, as root on a Debian 12 host (not part of .ci/run: a run takes about 10 min on 2
# cores, the demo and the tests each about 5, plus 3-6 min once for the base system):
# 1. Once, cached in $WSN_FRESH_CACHE (default /var/cache/wsnative-fresh): a Debian 12 (bookworm)
#    root file system made with debootstrap from Debian's packages: what a bare Debian has, plus
#    git and ca-certificates to clone, and Debian 12's usual apt sources.
# 2. Per run: a fresh copy of it (an overlay, thrown away afterwards), with /proc, /sys, /dev,
#    /dev/pts, /dev/shm and a tmpfs /tmp; the host's network settings (resolv.conf, and any local
#    CA certificates and /etc/pip.conf it has for its network's TLS proxy, nothing else); the
#    host's Rust toolchain read-only (RUSTUP_HOME=/root/.rustup and the binaries of
#    /root/.cargo/bin), with an empty CARGO_HOME of its own so that crates download anew.
# 3. Clones the repository there (from a git bundle of REF) and runs each command of the first
#    code block of the README at REF, one after the other, each from the clone's top, printing
#    its result and time. Everything runs in its own PID namespace (nothing survives the run) and
#    every mount is undone on exit, failure or Ctrl-C included.
# The tests inside use loopback addresses only; the network is used for Debian's packages, PyPI
# and crates.io. Logs: $WSN_FRESH_CACHE/logs/RUN/. Last line: "fresh_machine: N passed, M failed".
set -uo pipefail

CACHE="${WSN_FRESH_CACHE:-/var/cache/wsnative-fresh}"
MIRROR="${WSN_FRESH_MIRROR:-http://deb.debian.org/debian}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)" REF=HEAD KEEP="" CMDS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) REPO="$(cd "$2" && pwd)" || exit 2; shift 2 ;;
    --ref) REF="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --) shift; [ $# -gt 0 ] && CMDS=("$*"); break ;;
    -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh_machine: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "fresh_machine: $*"; }
die() { echo "fresh_machine: $*" >&2; echo "fresh_machine: 0 passed, 1 failed"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mount and chroot need it)"
RUSTUP_DIR="${RUSTUP_HOME:-/root/.rustup}"
CARGO_BIN="$(dirname "$(command -v cargo 2>/dev/null || echo /root/.cargo/bin/cargo)")"
[ -d "$RUSTUP_DIR/toolchains" ] && [ -x "$CARGO_BIN/cargo" ] || die "no rustup toolchain at $RUSTUP_DIR / $CARGO_BIN"
git -C "$REPO" rev-parse --verify -q "$REF^{commit}" >/dev/null || die "$REF is not a commit in $REPO"

# --- 1. the cached base system ----------------------------------------------------------------
BASE="$CACHE/bookworm"
mkdir -p "$CACHE/runs" "$CACHE/logs"
exec 8>"$CACHE/base.lock"
flock -w 1800 8 || die "another run is still building $BASE"
if [ ! -e "$BASE/.wsnative-base-complete" ]; then
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q install debootstrap >/dev/null; } ||
    die "cannot install debootstrap"
  tmp="$CACHE/bookworm.tmp"
  # debootstrap removes $tmp/debootstrap when it succeeds: a finished one is kept.
  if [ ! -x "$tmp/usr/bin/apt-get" ] || [ -d "$tmp/debootstrap" ]; then
    rm -rf "$tmp"
    say "building the Debian 12 base system in $BASE (once; about 5 minutes)"
    t0=$SECONDS
    debootstrap --include=git,ca-certificates bookworm "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
      { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    say "base system built in $((SECONDS - t0)) s"
  fi
  # The apt sources of a Debian 12 installation (debootstrap writes the release alone).
  rm -f "$tmp/etc/apt/sources.list"
  cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/archives/*.deb # as after an install
  touch "$tmp/.wsnative-base-complete"
  rm -rf "$BASE" && mv "$tmp" "$BASE" || die "cannot move $tmp to $BASE"
fi
flock -u 8

# --- 2. this run's copy, mounts, cleanup --------------------------------------------------------
RUN="$(date -u +%Y%m%d-%H%M%S)-$$"
DIR="$CACHE/runs/$RUN" LOGS="$CACHE/logs/$RUN"
R="$DIR/root"
mkdir -p "$DIR/upper" "$DIR/work" "$R" "$LOGS"
MOUNTS=()
mnt() { # TARGET MOUNT-ARGS...: mount, and remember it for the cleanup
  local target="$1"; shift
  mkdir -p "$target" && mount "$@" "$target" && MOUNTS+=("$target")
}
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -R "${MOUNTS[i]}" 2>/dev/null || umount -R -l "${MOUNTS[i]}" 2>/dev/null ||
      echo "fresh_machine: could not unmount ${MOUNTS[i]}" >&2
  done
  MOUNTS=()
  if [ -z "$KEEP" ]; then rm -rf "$DIR"; else say "kept $DIR/upper (the run's changes over $BASE)"; fi
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM HUP

mnt "$R" -t overlay overlay -o "lowerdir=$BASE,upperdir=$DIR/upper,workdir=$DIR/work" || die "overlay mount failed"
mnt "$R/sys" --rbind /sys && mount --make-rslave "$R/sys" || die "mount /sys failed"
mnt "$R/dev" --bind /dev || die "mount /dev failed"
mnt "$R/dev/pts" --bind /dev/pts || die "mount /dev/pts failed"
mnt "$R/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev tmpfs || die "mount /dev/shm failed"
mnt "$R/tmp" -t tmpfs -o mode=1777,nosuid,nodev tmpfs || die "mount /tmp failed"
# (/proc is mounted by unshare below, for the run's own PID namespace.)
ro_bind() { mnt "$2" --bind "$1" && mount -o remount,bind,ro "$2"; }
ro_bind "$RUSTUP_DIR" "$R/root/.rustup" || die "bind-mounting $RUSTUP_DIR failed"
ro_bind "$CARGO_BIN" "$R/root/.cargo/bin" || die "bind-mounting $CARGO_BIN failed"

# The network as the host has it: name servers, and the trust anchors of its TLS proxy if any.
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
  chroot "$R" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$R/etc/pip.conf"

# --- 3. clone, then the commands ----------------------------------------------------------------
COMMIT="$(git -C "$REPO" rev-parse "$REF^{commit}")"
git -C "$REPO" bundle create "$R/root/wsnative.bundle" "$REF" >/dev/null 2>&1 || die "git bundle of $REF failed"
if [ ${#CMDS[@]} -eq 0 ]; then
  # The README's first code block: one command a line, a trailing "# comment" removed.
  mapfile -t CMDS < <(git -C "$REPO" show "$COMMIT:README.md" |
    awk '/^```/ { if (inblock) exit; inblock = 1; next } inblock' |
    sed -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//' | grep -v '^$')
  [ ${#CMDS[@]} -gt 0 ] || die "no commands found in README.md's first code block"
fi

# A clean login-like environment: nothing from this shell leaks in.
in_chroot() { # COMMAND-STRING
  unshare --mount --pid --fork --kill-child --mount-proc="$R/proc" \
    chroot "$R" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
    LANG=C.UTF-8 PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
    /bin/bash -c "$1"
}

say "run $RUN: $(git -C "$REPO" log -1 --format='%h %s' "$COMMIT")"
say "clone: git clone wsnative.bundle /root/wsnative"
in_chroot 'git clone -q /root/wsnative.bundle /root/wsnative && git -C /root/wsnative log -1 --format=%H' \
  >"$LOGS/clone.log" 2>&1 || { cat "$LOGS/clone.log"; die "git clone failed inside the chroot"; }
[ "$(tail -n 1 "$LOGS/clone.log")" = "$COMMIT" ] || { cat "$LOGS/clone.log"; die "the clone is not at $COMMIT"; }

pass=0 fail=0 i=0 RESULTS=()
for cmd in "${CMDS[@]}"; do
  i=$((i + 1))
  say "[$i/${#CMDS[@]}] $cmd (log: $LOGS/cmd$i.log)"
  t0=$SECONDS
  in_chroot "cd /root/wsnative && $cmd" </dev/null 2>&1 | tee "$LOGS/cmd$i.log"
  rc=${PIPESTATUS[0]}
  secs=$((SECONDS - t0))
  if [ "$rc" = 0 ]; then pass=$((pass + 1)); r="ok"; else fail=$((fail + 1)); r="FAILED (exit $rc)"; fi
  RESULTS+=("$(printf '%-40s %s in %d s (%dm%02ds)' "$cmd" "$r" "$secs" $((secs / 60)) $((secs % 60)))")
done

echo
say "results (commit ${COMMIT:0:12}, Debian 12 from debootstrap, run $RUN):"
for line in "${RESULTS[@]}"; do echo "  $line"; done
say "$pass passed, $fail failed"
[ "$fail" = 0 ]
