#!/usr/bin/env bash
# Client throughput beside .NET's ClientWebSocket and the C ABI: one connection, W messages in
# flight (default 16), 64 B and 64 KiB binary messages, against the C echo server
# (examples/c/echo_server.c). Each figure is the median of R runs (default 3) in messages per
# second. Run bindings/csharp/test.sh once first (it installs Mono and the CoreCLR 3.1 runtime).
#   bench/run.sh [R] [W]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
R=${1:-3}; W=${2:-16}
OUT="$HERE/../out/bench"
VENV="$ROOT/build/csharp/venv"
DOTNET=$(ls "$VENV"/lib/python3*/site-packages/dotnetcore2/bin/dotnet | head -1)
FW=$(ls -d "$(dirname "$DOTNET")"/shared/Microsoft.NETCore.App/3.1.* | head -1)
(cd "$ROOT" && cargo build --release --quiet)
rm -rf "$OUT" && mkdir -p "$OUT"
cp "$ROOT/target/release/libwsnative.so" "$OUT/"
CFLAGS=(-O2 -I"$ROOT/include" -L"$ROOT/target/release" -Wl,-rpath,"$ROOT/target/release")
cc "${CFLAGS[@]}" "$HERE/inflight.c" -lwsnative -lpthread -o "$OUT/inflight"
cc "${CFLAGS[@]}" "$ROOT/examples/c/echo_server.c" -lwsnative -o "$OUT/echo_server"
refs=(); for f in "$FW"/*.dll; do case "$f" in *WindowsRuntime*) continue;; esac; refs+=("-r:$f"); done
mcs -nostdlib -noconfig -langversion:7.2 -unsafe -optimize+ -nowarn:1702 -target:exe "${refs[@]}" \
    -out:"$OUT/bench.dll" "$HERE"/../WsNative/*.cs "$HERE/Bench.cs"
cat > "$OUT/bench.runtimeconfig.json" <<'JSON'
{ "runtimeOptions": { "tfm": "netcoreapp3.1",
    "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" },
    "configProperties": { "System.Globalization.Invariant": true, "System.GC.Server": false } } }
JSON
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$OUT/echo_server" "$PORT" >/dev/null 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.05; done
URL="ws://127.0.0.1:$PORT/"
median() { python3 -c 'import sys,statistics; print(int(statistics.median(int(x) for x in sys.argv[1:])))' "$@"; }
row() {  # label, command...
  local label=$1; shift; local xs=()
  for _ in $(seq "$R"); do xs+=("$(timeout 300 "$@")"); done
  printf '%s %s\n' "$(median "${xs[@]}")" "$label"
}
for spec in "64 200000" "65536 20000"; do
  set -- $spec; SIZE=$1; N=$2
  echo "== $SIZE B, $N messages, $W in flight (messages/s, median of $R)"
  c=$(row "C ABI (bench/inflight.c)" "$OUT/inflight" "$URL" "$N" "$SIZE" "$W"); echo "$c"
  C=${c%% *}
  for mode in pull events async; do
    r=$(row "WsNative $mode (CoreCLR 3.1)" "$DOTNET" "$OUT/bench.dll" "$mode" "$URL" "$N" "$SIZE" "$W")
    echo "$r  $(python3 -c "print(f'{${r%% *}/$C:.2f}x C')")"
  done
  r=$(row "ClientWebSocket (CoreCLR 3.1)" "$DOTNET" "$OUT/bench.dll" cws "$URL" "$N" "$SIZE" "$W")
  echo "$r  $(python3 -c "print(f'{${r%% *}/$C:.2f}x C')")"
done
