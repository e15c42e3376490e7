#!/usr/bin/env bash
# The C install (scripts/install-c.sh) used as a user would: examples/c/client.c built against
# the installed prefix with pkg-config (shared and static) and with a CMake project
# (find_package(wsnative) -> wsnative::wsnative), each run against the library's own echo server
# (examples/c/echo_server.c, also built from the prefix). Checks the SONAME and that the
# programs load the installed library, not the build tree's.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev pkg-config cmake make binutils python3 || exit 1
OUT="$PWD/target/packaging/c"
rm -rf "$OUT"; mkdir -p "$OUT"
PREFIX="$OUT/prefix"
pass=0 fail=0
step() { # NAME COMMAND...
  local name="$1"; shift
  if "$@" >"$OUT/$name.log" 2>&1; then pass=$((pass + 1)); echo "  ok   $name";
  else fail=$((fail + 1)); echo "  FAIL $name"; tail -n 20 "$OUT/$name.log"; fi
}
step install scripts/install-c.sh --prefix "$PREFIX" || { echo "c-install: 0 passed, 1 failed"; exit 1; }
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
check_layout() {
  [ -f "$PREFIX/include/wsnative/wsnative.h" ] && [ -f "$PREFIX/lib/libwsnative.a" ] \
    && [ "$(readlink "$PREFIX/lib/libwsnative.so")" = libwsnative.so.0.1 ] \
    && readelf -d "$PREFIX/lib/libwsnative.so.0.1.0" | grep -q 'Library soname: \[libwsnative.so.0.1\]' \
    && [ "$(pkg-config --modversion wsnative)" = "$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)" ]
}
step layout-and-soname check_layout
build_pc() {
  # shellcheck disable=SC2046  # pkg-config's output is meant to be split
  gcc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Werror examples/c/client.c $(pkg-config --cflags --libs wsnative) \
    -lpthread -Wl,-rpath,"$PREFIX/lib" -o "$OUT/client_pc" \
  && gcc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Werror examples/c/echo_server.c $(pkg-config --cflags --libs wsnative) \
    -Wl,-rpath,"$PREFIX/lib" -o "$OUT/echo_server" \
  && readelf -d "$OUT/client_pc" | grep -q 'NEEDED.*\[libwsnative.so.0.1\]'
}
step build-with-pkg-config build_pc
build_static() {
  # shellcheck disable=SC2046
  gcc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Werror examples/c/client.c $(pkg-config --cflags wsnative) \
    "$PREFIX/lib/libwsnative.a" $(pkg-config --static --libs-only-l wsnative | sed 's/-lwsnative//') -lpthread -o "$OUT/client_static" \
  && ! readelf -d "$OUT/client_static" | grep -q 'libwsnative'
}
step build-static-with-pkg-config build_static
build_cmake() {
  mkdir -p "$OUT/cmake-src" "$OUT/cmake-build"
  cp examples/c/client.c "$OUT/cmake-src/"
  cat >"$OUT/cmake-src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(wsnative_user C)
find_package(wsnative 0.1 REQUIRED)
find_package(Threads REQUIRED)
add_executable(client client.c)
target_compile_definitions(client PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(client PRIVATE wsnative::wsnative Threads::Threads)
add_executable(client_static client.c)
target_compile_definitions(client_static PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(client_static PRIVATE wsnative::wsnative_static Threads::Threads)
CMAKE
  cmake -S "$OUT/cmake-src" -B "$OUT/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release \
    && cmake --build "$OUT/cmake-build" -j2 \
    && readelf -d "$OUT/cmake-build/client" | grep -q 'NEEDED.*\[libwsnative.so.0.1\]'
}
step build-with-cmake build_cmake

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ -x "$OUT/echo_server" ]; then
  "$OUT/echo_server" "$port" >"$OUT/echo_server.out" 2>&1 &
  srv=$!
  for _ in $(seq 100); do grep -q listening "$OUT/echo_server.out" && break; sleep 0.1; done
fi
run_client() { # BINARY
  # The build tree's library must not be what it loads.
  LD_DEBUG=libs timeout 30 "$1" "ws://127.0.0.1:$port/" <<<$'first line\nsecond line' >"$OUT/run.out" 2>"$OUT/run.err" || return 1
  grep -q '< first line' "$OUT/run.out" && grep -q '< second line' "$OUT/run.out" \
    && grep -q 'closed: code 1000, reason "bye", clean' "$OUT/run.err" \
    && if readelf -d "$1" | grep -q NEEDED.*libwsnative; then grep -q "calling init: $PREFIX/lib/libwsnative.so.0.1" "$OUT/run.err"; fi
}
step run-pkg-config-client run_client "$OUT/client_pc"
step run-static-client run_client "$OUT/client_static"
step run-cmake-client run_client "$OUT/cmake-build/client"
step run-cmake-static-client run_client "$OUT/cmake-build/client_static"
[ -n "${srv:-}" ] && { kill -TERM "$srv"; wait "$srv" 2>/dev/null; }
echo "c-install: $pass passed, $fail failed"
[ "$fail" = 0 ]
