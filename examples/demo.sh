#!/usr/bin/env bash
# Builds wsnative and runs the demo: a server and three clients exchange messages, then close
# from the client, from the server, and from the accept hook, each side printing what it saw.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/install.sh
wsn_apt_install gcc libc6-dev   # cargo links with cc; the demo is C
cargo build --release -q
mkdir -p build
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Iinclude examples/c/demo.c \
   -Ltarget/release -lwsnative -lpthread -Wl,-rpath,"$PWD/target/release" -o build/demo
exec build/demo
