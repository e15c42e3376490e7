#!/usr/bin/env bash
# conformance.sh - the Autobahn|Testsuite against wsnative through its C ABI, both directions.
#
#   tests/conformance.sh
#
# 1. Builds the library (release), the C testees examples/c/echo_server.c and
#    examples/c/autobahn_client.c into build/, and the tokio-tungstenite baseline examples
#    (examples/tt_echo_server.rs, examples/tt_autobahn_client.rs).
# 2. Installs what it needs: gcc and python3 (tests/lib/install.sh), and the suite with
#    tests/autobahn/install.sh (quick when `wstest` is already there), then runs every section
#    but 9 (1-8, 10, and 12-13 with permessage-deflate, which the testees turn on;
#    CONFORMANCE_EXCLUDE, e.g. '12.*,13.*', leaves cases out) with wsnative as server and as
#    client at the same time, through tests/autobahn/run.sh.
# 3. Runs section 9 (limits and performance) alone, one run at a time: wsnative and the
#    tokio-tungstenite baseline in each direction, and compares their times (reported; a timed
#    check fails only when CONFORMANCE_MAX_RATIO is set: shared machines make times noisy, and
#    timed assertions do not belong in tests).
# 4. Regenerates the "Conformance" section of README.md between the markers
#    <!-- conformance:begin --> and <!-- conformance:end --> (only that text).
#
# Fails (exit 1) on any failed or missing case, any case whose close phase is not clean
# (OK or INFORMATIONAL), or a section 9 over the ratio. The last line is
#   conformance: N passed, M failed
# N and M counting wsnative's cases of both directions (M also counts each direction whose
# section 9 is too slow, and is 1 for a setup error).
#
# Environment: CONFORMANCE_OUT (default: autobahn-out/conformance), CONFORMANCE_MAX_RATIO (unset: report only),
# CONFORMANCE_README=0 (do not touch README.md), CARGO_TARGET_DIR (default: target).
set -uo pipefail

T0=$(date +%s)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))"
cd "$ROOT" || exit 1
TOOLS="$HERE/autobahn"
OUT="${CONFORMANCE_OUT:-$ROOT/autobahn-out/conformance}"
BUILD="$ROOT/build"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
MAX_RATIO="${CONFORMANCE_MAX_RATIO:-0}" # 0: report the ratio, do not fail on it
EXCLUDE="${CONFORMANCE_EXCLUDE-}"
RUN_TIMEOUT=2400 # one run of the suite; sections 1-10 take about 20 s, 12-13 several minutes

say() { echo "conformance: $*"; }
die() {
  echo "conformance: $*" >&2
  echo "conformance: 0 passed, 1 failed"
  exit 1
}

SERVER_PID=""
stop_server() { # stops the testee server we started, by its PID: TERM, then KILL after 5 s
  local pid="$SERVER_PID" _
  SERVER_PID=""
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# --- build --------------------------------------------------------------------------------
# shellcheck source=lib/install.sh
. "$HERE/lib/install.sh"
wsn_apt_install gcc libc6-dev python3 || die "cannot install gcc and python3"
say "building (release)"
cargo build --release --quiet --lib --example tt_echo_server --example tt_autobahn_client \
  || die "cargo build --release failed"
mkdir -p "$BUILD" || die "cannot create $BUILD"
for prog in echo_server autobahn_client; do
  gcc -O2 -Wall -Wextra -Werror -Iinclude "examples/c/$prog.c" -L"$TARGET/release" -lwsnative \
    -lpthread -Wl,-rpath,"$TARGET/release" -o "$BUILD/$prog" || die "cannot build build/$prog"
done
T_BUILT=$(date +%s)
TT_SERVER="$TARGET/release/examples/tt_echo_server"
TT_CLIENT="$TARGET/release/examples/tt_autobahn_client"

# --- the suite ----------------------------------------------------------------------------
say "installing the Autobahn testsuite when missing (tests/autobahn/install.sh)"
bash "$TOOLS/install.sh" || die "installing the Autobahn testsuite failed"
command -v wstest >/dev/null 2>&1 || die "wstest not found on PATH after the install"
SUITE_VERSION="$(wstest -a 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')"
[ -n "$SUITE_VERSION" ] || SUITE_VERSION="unknown"
T_INSTALLED=$(date +%s)
say "suite: $SUITE_VERSION"

rm -rf "$OUT"
mkdir -p "$OUT" || die "cannot create $OUT"

# Starts a testee server (COMMAND... with port 0 appended), sets SERVER_PID and SERVER_URL.
start_server() { # LOG COMMAND...
  local log="$1" _
  shift
  "$@" 0 >"$log" 2>&1 &
  SERVER_PID=$!
  SERVER_URL=""
  for _ in $(seq 1 100); do
    SERVER_URL="$(grep -o 'ws://127\.0\.0\.1:[0-9]*' "$log" | head -n 1)"
    [ -n "$SERVER_URL" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

# One run of the suite. MODE server: TARGET is the testee's URL; MODE client: TARGET is the
# client command. Output (report/index.json) in DIR. Returns the runner's status.
run_suite() { # MODE AGENT DIR CASES EXCLUDE TARGET
  local mode="$1" agent="$2" dir="$3" cases="$4" exclude="$5" target="$6" rc
  local args=(--agent "$agent" --out "$dir" --cases "$cases" --timeout "$RUN_TIMEOUT")
  [ -n "$exclude" ] && args+=(--exclude "$exclude")
  if [ "$mode" = server ]; then
    bash "$TOOLS/run.sh" server --url "$target" --wait 10 "${args[@]}" >"$dir.log" 2>&1
  else
    bash "$TOOLS/run.sh" client --cmd "$target" "${args[@]}" >"$dir.log" 2>&1
  fi
  rc=$?
  tail -n 1 "$dir.log"
  return $rc
}

# --- the runs -------------------------------------------------------------------------------
# wsnative first in each direction, then the baseline's section 9 right after it, one at a
# time (2 cores: running them side by side would skew the times being compared).
start_server "$OUT/echo_server.log" "$BUILD/echo_server" || die "build/echo_server did not start"
# Every section but 9, both directions at once: each wstest is one busy Python 2 process, so on
# two cores this takes about half the time of one run after the other.
NO9="9.*${EXCLUDE:+,$EXCLUDE}"
say "wsnative as server ($SERVER_URL) and as client, at once: every section but 9${EXCLUDE:+ and $EXCLUDE}"
run_suite server wsnative-server "$OUT/server" '*' "$NO9" "$SERVER_URL" >"$OUT/server.tail" &
PAR_SERVER=$!
run_suite client wsnative-client "$OUT/client" '*' "$NO9" "$BUILD/autobahn_client" >"$OUT/client.tail" &
PAR_CLIENT=$!
wait "$PAR_SERVER"; wait "$PAR_CLIENT"
cat "$OUT/server.tail" "$OUT/client.tail"

# Section 9 (limits and performance) alone, one run at a time, beside tokio-tungstenite's: its
# times are compared.
say "wsnative as server, section 9"
run_suite server wsnative-server "$OUT/server9" '9.*' "" "$SERVER_URL"
stop_server

start_server "$OUT/tt_echo_server.log" "$TT_SERVER" || die "tt_echo_server did not start"
say "tokio-tungstenite as server ($SERVER_URL), section 9"
run_suite server tt-server "$OUT/tt-server" '9.*' "" "$SERVER_URL"
stop_server

say "wsnative as client, section 9"
run_suite client wsnative-client "$OUT/client9" '9.*' "" "$BUILD/autobahn_client"

say "tokio-tungstenite as client, section 9"
run_suite client tt-client "$OUT/tt-client" '9.*' "" "$TT_CLIENT"

T1=$(date +%s)
CONF_T0="$T0" CONF_T1="$T1" CONF_TB="$T_BUILT" CONF_TI="$T_INSTALLED" CONF_OUT="$OUT" CONF_SUITE="$SUITE_VERSION" CONF_RATIO="$MAX_RATIO" \
CONF_README="${CONFORMANCE_README:-1}" CONF_ROOT="$ROOT" python3 - <<'PY'
import datetime, json, os, re, sys

E = os.environ
OUT = E["CONF_OUT"]
MAX_RATIO = float(E["CONF_RATIO"])
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
SECTIONS = [(1, "Framing"), (2, "Pings/Pongs"), (3, "Reserved bits"), (4, "Opcodes"),
            (5, "Fragmentation"), (6, "UTF-8"), (7, "Close"), (9, "Limits/performance"),
            (10, "Misc"), (12, "Compression"), (13, "Compression parameters")]
# Cases per section in autobahntestsuite 25.10.1: a section with fewer results has MISSING cases.
CASE_COUNT = {1: 16, 2: 11, 3: 7, 4: 10, 5: 20, 6: 145, 7: 37, 9: 54, 10: 1, 12: 90, 13: 126}
WHY = {
    "6.4.3": "invalid UTF-8 in the middle of one text frame that arrives in chops: the "
             "connection should fail (1007) at the first bad byte",
    "7.1.6": "a 256 KiB message, a short one and a Close sent back to back: wsnative holds the "
             "Close until the echoes of both messages are written, so the suite receives both "
             "echoes, where its OK outcome lists only the short one; RFC 6455 allows either, and "
             "the suite calls the case implementation-defined",
    "7.13.1": "a Close with code 5000, which RFC 6455 leaves undefined: wsnative answers 1002 "
              "(protocol error); the suite only records the reaction",
    "7.13.2": "a Close with code 65535, which RFC 6455 leaves undefined: wsnative answers 1002 "
              "(protocol error); the suite only records the reaction",
}
WHY["6.4.4"] = WHY["6.4.3"]


def parse_started(s):
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError):
        return None


def analyse(names, sections):
    """Outcome counts, close-phase problems and wall time per section of the runs `names`
    (one testee, its cases split over several runs)."""
    results = {}
    for name in names:
        report_dir = os.path.join(OUT, name, "report")
        try:
            index = json.load(open(os.path.join(report_dir, "index.json")))
        except (OSError, ValueError):
            index = {}
        for cases in index.values():
            for cid, r in cases.items():
                results[cid] = dict(r, report_dir=report_dir)
    rows, odd, bad_close, spans = {}, [], [], {}
    for sec in sections:
        rows[sec] = dict.fromkeys(["OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "MISSING"], 0)
    for cid, r in results.items():
        sec = int(cid.split(".")[0])
        if sec not in rows:
            continue
        beh, close = r.get("behavior", "FAILED"), r.get("behaviorClose", "")
        outcome = beh if beh in PASSING else "FAILED"
        if outcome != "FAILED" and close not in ("OK", "INFORMATIONAL"):
            bad_close.append((cid, close))
            if close in ("FAILED", "UNCLEAN"):
                outcome = "FAILED"  # as summarize.py and the suite's own report count it
        rows[sec][outcome] += 1
        detail = {}
        try:
            detail = json.load(open(os.path.join(r["report_dir"], r["reportfile"].replace(".html", ".json"))))
        except (OSError, ValueError, KeyError):
            pass
        if outcome != "OK":
            odd.append((cid, outcome, detail.get("result") or "", detail.get("remoteCloseCode")))
        start = parse_started(detail.get("started"))
        if start is not None:
            end = start + datetime.timedelta(milliseconds=r.get("duration") or 0)
            lo, hi = spans.get(sec, (start, end))
            spans[sec] = (min(lo, start), max(hi, end))
    for sec in sections:
        rows[sec]["MISSING"] = max(0, CASE_COUNT[sec] - sum(rows[sec].values()))
    wall = {sec: (spans[sec][1] - spans[sec][0]).total_seconds() if sec in spans else 0.0 for sec in sections}
    return {"rows": rows, "odd": odd, "bad_close": bad_close, "wall": wall}


ALL = [s for s, _ in SECTIONS]
runs = {"server": analyse(["server", "server9"], ALL), "client": analyse(["client", "client9"], ALL),
        "tt-server": analyse(["tt-server"], [9]), "tt-client": analyse(["tt-client"], [9])}

passed = failed = 0
problems = []
for d in ("server", "client"):
    run = runs[d]
    for sec in ALL:
        row = run["rows"][sec]
        passed += row["OK"] + row["NON-STRICT"] + row["INFORMATIONAL"]
        failed += row["FAILED"] + row["MISSING"]
        if row["FAILED"] or row["MISSING"]:
            problems.append("as %s: section %d has %d failed, %d missing" % (d, sec, row["FAILED"], row["MISSING"]))
    for cid, close in run["bad_close"]:
        problems.append("as %s: case %s close phase %s" % (d, cid, close))
        if close not in ("FAILED", "UNCLEAN"):
            failed += 1  # WRONG CODE / FAILED BY CLIENT: not a clean close either
            passed -= 1
ratios = {}
for d in ("server", "client"):
    ours, base = runs[d]["wall"][9], runs["tt-" + d]["wall"][9]
    brow = runs["tt-" + d]["rows"][9]
    if brow["FAILED"] or brow["MISSING"] or base <= 0:
        problems.append("the tokio-tungstenite baseline (%s) did not complete section 9: no time to compare" % d)
        ratios[d] = None
        failed += 1
        continue
    ratios[d] = ours / base
    if MAX_RATIO > 0 and ratios[d] > MAX_RATIO:
        problems.append("as %s: section 9 took %.1f s, %.2fx the baseline's %.1f s (limit %.1fx)"
                        % (d, ours, ratios[d], base, MAX_RATIO))
        failed += 1

# --- console ---
for d in ("server", "client"):
    print("\nwsnative as %s (through the C ABI):" % d)
    print("  %-24s %5s %5s %5s %5s %6s %7s %7s" % ("section", "cases", "OK", "NS", "INFO", "FAILED", "MISSING", "time_s"))
    for sec, title in SECTIONS:
        r = runs[d]["rows"][sec]
        print("  %-24s %5d %5d %5d %5d %6d %7d %7.1f" % ("%d %s" % (sec, title), CASE_COUNT[sec], r["OK"], r["NON-STRICT"],
              r["INFORMATIONAL"], r["FAILED"], r["MISSING"], runs[d]["wall"][sec]))
print("\nsection 9, wsnative / tokio-tungstenite 0.30 (%s):" % ("limit %.1fx" % MAX_RATIO if MAX_RATIO > 0 else "reported, not checked"))
for d in ("server", "client"):
    ours, base = runs[d]["wall"][9], runs["tt-" + d]["wall"][9]
    print("  as %-6s  wsnative %5.1f s   tokio-tungstenite %5.1f s   ratio %s" % (
        d, ours, base, "%.2f" % ratios[d] if ratios[d] is not None else "n/a"))
t0, tb, ti, t1 = (int(E[k]) for k in ("CONF_T0", "CONF_TB", "CONF_TI", "CONF_T1"))
print("\nconformance step: %d s (build %d s, suite install %d s, suite runs %d s)" % (t1 - t0, tb - t0, ti - tb, t1 - ti))

# --- README ---
def outcome_text(row):
    parts = ["%d %s" % (row[k], k) for k in ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "MISSING") if row[k]]
    return ", ".join(parts) or "-"

today = datetime.date.today().isoformat()
lines = ["## Conformance", "",
         "<!-- Generated by tests/conformance.sh; edits between the conformance markers are overwritten. -->", "",
         "Autobahn|Testsuite (%s), run on %s "
         "through the C ABI: `examples/c/echo_server.c` is the server under test and "
         "`examples/c/autobahn_client.c` the client, both with permessage-deflate turned on. "
         "Every section: 1-10, and 12-13 (permessage-deflate with its parameters)." % (E["CONF_SUITE"], today), ""]
tot = {d: {k: sum(runs[d]["rows"][s][k] for s in ALL) for k in ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "MISSING")} for d in ("server", "client")}
for d in ("server", "client"):
    t = tot[d]
    lines.append("- As %s: %d of %d passed (%s); close phase %s." % (
        d, t["OK"] + t["NON-STRICT"] + t["INFORMATIONAL"], sum(CASE_COUNT.values()), outcome_text(t),
        "clean in every case" if not runs[d]["bad_close"] else
        "not clean in " + ", ".join("%s (%s)" % x for x in runs[d]["bad_close"])))
lines.append("")
for d in ("server", "client"):
    lines += ["As %s:" % d, "",
              "| section | cases | OK | NON-STRICT | INFORMATIONAL | FAILED | MISSING | time (s) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for sec, title in SECTIONS:
        r = runs[d]["rows"][sec]
        lines.append("| %d %s | %d | %d | %d | %d | %d | %d | %.1f |" % (
            sec, title, CASE_COUNT[sec], r["OK"], r["NON-STRICT"], r["INFORMATIONAL"], r["FAILED"], r["MISSING"], runs[d]["wall"][sec]))
    lines.append("")
lines += ["Section 9 (messages up to 16 MiB, up to 65536 fragments) against a plain tokio-tungstenite 0.30 "
          "echo server and client in the same run (`examples/tt_*.rs`):", "",
          "| direction | wsnative (s) | tokio-tungstenite (s) | ratio |", "| --- | ---: | ---: | ---: |"]
for d in ("server", "client"):
    lines.append("| as %s | %.1f | %.1f | %s |" % (d, runs[d]["wall"][9], runs["tt-" + d]["wall"][9],
                 "%.2f" % ratios[d] if ratios[d] is not None else "n/a"))
lines.append("")
odd = {}
for d in ("server", "client"):
    for cid, outcome, result, _ in runs[d]["odd"]:
        odd.setdefault((cid, outcome), {"dirs": [], "result": result})["dirs"].append(d)
if odd:
    lines += ["Cases that are not plain OK (NON-STRICT and INFORMATIONAL count as passed by the suite's rules):", ""]
    key = lambda k: tuple(int(x) for x in k[0].split("."))
    for (cid, outcome) in sorted(odd, key=key):
        o = odd[(cid, outcome)]
        where = "both directions" if len(o["dirs"]) == 2 else "as " + o["dirs"][0]
        why = WHY.get(cid) if outcome in ("NON-STRICT", "INFORMATIONAL") else None
        lines.append("- %s %s (%s): %s." % (cid, outcome, where, why or ("the suite says: " + o["result"].rstrip("."))))
    lines.append("")
lines.append("Regenerate with `tests/conformance.sh` (it installs the suite when `wstest` is missing).")
block = "\n".join(lines).rstrip("\n") + "\n"

if E.get("CONF_README", "1") != "0":
    path = os.path.join(E["CONF_ROOT"], "README.md")
    BEGIN, END = "<!-- conformance:begin -->", "<!-- conformance:end -->"
    # Re-read right before writing: someone else may be editing the rest of the file.
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        text = BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + BEGIN + "\n" + block + END + tail
    else:
        new = text + ("" if text.endswith("\n") or not text else "\n") + ("\n" if text else "") + BEGIN + "\n" + block + END + "\n"
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    print("README.md: Conformance section regenerated")

for p in problems:
    print("conformance: FAIL: " + p)
print("conformance: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed or problems else 0)
PY
