#!/usr/bin/env bash
# wsncat (src/bin/wsncat.rs) driven as a user would: against its own server (--listen, echo
# and print modes, wss with --cert/--key and the client's --ca-file, --origin refusals, -v
# showing the library's log) and against a hand-made server (tests/packaging/raw_server.py:
# headers, subprotocol, origin as sent; a clean close with 4000; a dropped connection). Checks
# stdout, the close line on stderr, and the exit codes (0 clean, 1 unclean, 3 other code).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev python3 openssl || exit 1
cargo build --release -q --bin wsncat || exit 1
W="$PWD/target/release/wsncat"
OUT="$PWD/target/packaging/wsncat"
rm -rf "$OUT"; mkdir -p "$OUT"
pass=0 fail=0 pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT
step() { # NAME COMMAND...
  local name="$1"; shift
  if "$@" >"$OUT/$name.log" 2>&1; then pass=$((pass + 1)); echo "  ok   $name";
  else fail=$((fail + 1)); echo "  FAIL $name"; tail -n 20 "$OUT/$name.log"; fi
}
# Starts wsncat --listen 0 ARGS... in the background; sets $port (waits 20 s at most).
start_server() { # NAME ARGS...
  local name="$1"; shift
  "$W" --listen 0 "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null &
  pids+=($!); last_pid=$!
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT/$name.err")
    [ -n "$port" ] && return 0; sleep 0.1
  done
  echo "server $name did not start"; cat "$OUT/$name.err"; return 1
}
# Runs the client with stdin lines; sets $rc, and the files client.out and client.err.
client() { # STDIN ARGS...
  local input="$1"; shift
  printf '%s' "$input" | timeout 30 "$W" "$@" >"$OUT/client.out" 2>"$OUT/client.err"; rc=$?
  cat "$OUT/client.err" >&2
}

start_server echo --echo -v -s chat --origin https://good.example || exit 1
echo_port=$port
echo_lines() {
  client $'hello\nwörld\n' "ws://127.0.0.1:$echo_port/" -s other -s chat
  [ "$rc" = 0 ] && [ "$(cat "$OUT/client.out")" = $'hello\nwörld' ] \
    && grep -q 'connected (subprotocol "chat")' "$OUT/client.err" \
    && grep -q '^closed: code 1000, reason "", clean$' "$OUT/client.err"
}
step client-echo-and-subprotocol echo_lines
refused_origin() {
  client '' "ws://127.0.0.1:$echo_port/" --origin https://evil.example
  [ "$rc" = 1 ] && grep -q 'not clean.*403' "$OUT/client.err" \
    && grep -q 'handshake refused with 403: origin not allowed' "$OUT/echo.err"
}
step refused-origin-exits-1-and-server-logs-why refused_origin
refused_connect() {
  client '' "ws://127.0.0.1:1/"
  [ "$rc" = 1 ] && grep -q 'connection refused' "$OUT/client.err"
}
step connect-refused-exits-1 refused_connect

raw() { # MODE ARGS...: runs the raw server and the client against it
  local mode="$1"; shift
  python3 tests/packaging/raw_server.py "$mode" >"$OUT/raw.out" 2>&1 &
  local raw=$!
  for _ in $(seq 100); do grep -q '^port' "$OUT/raw.out" && break; sleep 0.1; done
  client '' "ws://127.0.0.1:$(sed -n 's/^port //p' "$OUT/raw.out")/path?q=1" "$@"
  wait "$raw"
}
headers_sent() {
  raw headers -H 'X-Trace: abc 123' -H 'Authorization: Bearer t0k' -s one --origin https://o.example
  [ "$rc" = 0 ] && grep -q '^GET /path?q=1 HTTP/1.1' "$OUT/client.out" \
    && grep -qi '^x-trace: abc 123' "$OUT/client.out" && grep -qi '^authorization: Bearer t0k' "$OUT/client.out" \
    && grep -qi '^origin: https://o.example' "$OUT/client.out" && grep -qi '^sec-websocket-protocol: one' "$OUT/client.out"
}
step headers-subprotocol-origin-sent headers_sent
other_code() { raw code; [ "$rc" = 3 ] && grep -q '^closed: code 4000, reason "custom", clean$' "$OUT/client.err"; }
step clean-close-with-4000-exits-3 other_code
dropped() { raw drop; [ "$rc" = 1 ] && grep -q 'code 1006.*not clean' "$OUT/client.err"; }
step dropped-connection-exits-1 dropped

print_mode() {
  start_server print --once || return 1
  local pid=$last_pid
  client $'one\ntwo\n' "ws://127.0.0.1:$port/" || true
  [ "$rc" = 0 ] || return 1
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid"; local src=$?
  [ "$src" = 0 ] && [ "$(cat "$OUT/print.out")" = $'one\ntwo' ] && grep -q 'closed: code 1000' "$OUT/print.err"
}
step listen-prints-and-once-exits-0 print_mode

wss() {
  (cd "$OUT" && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=wsncat-test-ca -keyout ca.key -out ca.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    && openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr \
    && printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext \
    && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out srv.pem -extfile ext) || return 1
  start_server tls --echo --cert "$OUT/srv.pem" --key "$OUT/srv.key" || return 1
  client $'secure\n' "wss://localhost:$port/" --ca-file "$OUT/ca.pem"
  [ "$rc" = 0 ] && [ "$(cat "$OUT/client.out")" = secure ] || return 1
  client $'secure\n' "wss://localhost:$port/"
  [ "$rc" = 1 ] && grep -qi 'certificate' "$OUT/client.err"
}
step wss-with-ca-file-and-without wss
# The exact server certificate, by its SHA-256 (pinning), against the server of the last step.
pinned() {
  local fp; fp=$(openssl x509 -in "$OUT/srv.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
  client $'pinned\n' "wss://localhost:$port/" --trust-fingerprint "$fp"
  [ "$rc" = 0 ] && [ "$(cat "$OUT/client.out")" = pinned ] || return 1
  client $'pinned\n' "wss://localhost:$port/" --trust-fingerprint "$(printf '%064d' 0)"
  [ "$rc" = 1 ] && grep -qi 'certificate' "$OUT/client.err"
}
step wss-trusting-one-fingerprint pinned
# Through a proxy that refuses (a raw HTTP 403): the refusal names the proxy and its status.
proxy_refused() {
  python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print("port", s.getsockname()[1], flush=True)
c, _ = s.accept(); c.recv(4096)
c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"); c.close()
' >"$OUT/proxy.out" 2>&1 &
  local proxy=$!
  for _ in $(seq 100); do grep -q '^port' "$OUT/proxy.out" && break; sleep 0.1; done
  client '' "ws://127.0.0.1:$echo_port/" --proxy "http://127.0.0.1:$(sed -n 's/^port //p' "$OUT/proxy.out")"
  wait "$proxy"
  [ "$rc" = 1 ] && grep -qi 'proxy' "$OUT/client.err" && grep -q '403' "$OUT/client.err"
}
step proxy-refusal-names-the-proxy proxy_refused

stop_on_signal() {
  kill -TERM "$echo_pid"; local t=0
  while kill -0 "$echo_pid" 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
  wait "$echo_pid"
}
echo_pid=${pids[0]}
step server-stops-on-sigterm-with-0 stop_on_signal
step usage-error-exits-2 bash -c "\"$W\" --bogus; [ \$? = 2 ]"
step client-cert-without-key-exits-2 bash -c "\"$W\" --client-cert x.pem ws://127.0.0.1:1/; [ \$? = 2 ]"
echo "wsncat: $pass passed, $fail failed"
[ "$fail" = 0 ]
