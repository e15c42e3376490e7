#!/usr/bin/env bash
# Builds the C# binding with Mono's mcs and runs its tests on two runtimes:
#   lane 1 "mono":    Mono 6.8 (Debian's mono-mcs)
#   lane 2 "coreclr": .NET Core 3.1 from PyPI's dotnetcore2 wheel (in a venv under build/),
#                     compiled against that runtime's own framework assemblies.
# Installs what is missing (Debian packages, libssl1.1 from Debian 11 for CoreCLR 3.1, the
# runtime wheel), so it passes alone on a fresh Debian 12 machine. Each lane ends with
# "N passed, M failed"; the script prints the total last and exits non-zero when either lane
# fails. Arguments are test-name filters.
# Why two lanes: Mono hides the worst P/Invoke bug, a callback delegate collected while native
# code still holds its function pointer, which works by luck on Mono and crashes CoreCLR, as it
# would .NET 8. Mono's mcs is the only C# compiler Debian has (there is no .NET SDK package).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$HERE/out"                 # gitignored
VENV="$ROOT/build/csharp/venv"  # gitignored

# mono-mcs: compiler and Mono runtime; python3-venv: the venv for the CoreCLR wheel and a free
# port; gcc: cargo's linker. CoreCLR 3.1 loads OpenSSL 1.1 when it starts its crypto and
# networking code and aborts without it ("No usable version of libssl was found"); Debian 12
# ships OpenSSL 3 only, so libssl1.1 comes from Debian 11.
. "$ROOT/tests/lib/install.sh"
wsn_apt_install mono-mcs python3 python3-venv gcc libc6-dev
wsn_apt_install_bullseye libssl1.1
wsn_apt_install openssl tinyproxy microsocks  # client-reach: CertificateTests.cs, ProxyTests.cs
DOTNET=$(ls "$VENV"/lib/python3*/site-packages/dotnetcore2/bin/dotnet 2>/dev/null | head -1 || true)
if [ -z "$DOTNET" ]; then
  echo "== installing dotnetcore2 (CoreCLR 3.1 runtime) into $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps dotnetcore2==3.1.23
  DOTNET=$(ls "$VENV"/lib/python3*/site-packages/dotnetcore2/bin/dotnet | head -1)
fi
FW=$(ls -d "$(dirname "$DOTNET")"/shared/Microsoft.NETCore.App/3.1.* | head -1)

echo "== cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)
LIB="$ROOT/target/release/libwsnative.so"

rm -rf "$OUT" && mkdir -p "$OUT/mono" "$OUT/core" "$OUT/examples"
cp "$LIB" "$OUT/mono/" && cp "$LIB" "$OUT/core/" && cp "$LIB" "$OUT/examples/"
SRC=("$HERE"/WsNative/*.cs)
TESTS=("$HERE"/tests/*.cs)
FLAGS=(-langversion:7.2 -unsafe -debug -d:TRACE -warnaserror+ -nowarn:649)

echo "== mcs (Mono)"
mcs "${FLAGS[@]}" -target:library -out:"$OUT/mono/WsNative.dll" "${SRC[@]}"
mcs "${FLAGS[@]}" -target:exe -out:"$OUT/mono/tests.exe" "${SRC[@]}" "${TESTS[@]}"
for ex in EchoServer EchoClient; do
  mcs "${FLAGS[@]}" -target:exe -r:"$OUT/mono/WsNative.dll" -out:"$OUT/examples/$ex.exe" "$ROOT/examples/csharp/$ex.cs"
done
cp "$OUT/mono/WsNative.dll" "$OUT/examples/"

echo "== mcs (CoreCLR 3.1 framework)"
refs=(); for f in "$FW"/*.dll; do case "$f" in *WindowsRuntime*) continue;; esac; refs+=("-r:$f"); done  # WinRT await extensions confuse mcs
mcs -nostdlib -noconfig "${FLAGS[@]}" -nowarn:1702 -target:exe "${refs[@]}" -out:"$OUT/core/tests.dll" "${SRC[@]}" "${TESTS[@]}"
cat > "$OUT/core/tests.runtimeconfig.json" <<'JSON'
{ "runtimeOptions": { "tfm": "netcoreapp3.1",
    "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" },
    "configProperties": { "System.Globalization.Invariant": true } } }
JSON

# The examples must not rot: run the echo server and send it two lines with the echo client.
echo "== examples"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mono "$OUT/examples/EchoServer.exe" "$PORT" > "$OUT/examples/server.log" 2>&1 &
SERVER_PID=$!
# Mono takes a moment to start: connect only once the server says it listens (at most 30 s).
for _ in $(seq 300); do grep -q 'echo server on' "$OUT/examples/server.log" && break; sleep 0.1; done
EX_RC=0
EX_OUT=$(printf 'hello\nwörld\n' | timeout 30 mono "$OUT/examples/EchoClient.exe" "ws://127.0.0.1:$PORT/" 2>&1) || EX_RC=$?
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
echo "$EX_OUT"
if [ "$EX_RC" -ne 0 ] || ! grep -q '< hello' <<<"$EX_OUT" || ! grep -q '< wörld' <<<"$EX_OUT"; then
  echo "examples: FAILED (exit $EX_RC)"; cat "$OUT/examples/server.log"; EX_FAIL=1
else
  echo "examples: ok"; EX_FAIL=0
fi

P=0; F=0; RC=0
lane() {  # runs one lane; a crash without a summary line counts as one failure
  local name=$1; shift; echo "== lane $name"
  set +e; timeout 300 "$@" 2>&1 | tee "$OUT/$name.log"; local rc=${PIPESTATUS[0]}; set -e
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/$name.log" | tail -1 || true)
  if [ -z "$line" ]; then F=$((F + 1)); RC=1; echo "$name: no summary (exit $rc)"; return; fi
  local p f; p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  P=$((P + p)); F=$((F + f))
  [ "$rc" -eq 0 ] || RC=1
}
export TEST_TIMEOUT_S=${TEST_TIMEOUT_S:-150}
lane mono mono --debug "$OUT/mono/tests.exe" "$@"
lane coreclr "$DOTNET" "$OUT/core/tests.dll" "$@"
[ "$EX_FAIL" -eq 0 ] || { F=$((F + 1)); RC=1; }
echo "== csharp, both lanes"
echo "$P passed, $F failed"
exit $RC
