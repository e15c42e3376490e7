#!/usr/bin/env bash
# install-c.sh - installs wsnative as a C library into a prefix, in the layout cargo-c's
# `cargo cinstall` gives (plus a CMake package, which cargo-c does not write):
#
#   PREFIX/include/wsnative/wsnative.h
#   PREFIX/lib/libwsnative.so.X.Y.Z          SONAME libwsnative.so.X.Y for 0.x (X for X >= 1)
#   PREFIX/lib/libwsnative.so.X.Y -> ...      the SONAME link
#   PREFIX/lib/libwsnative.so -> ...          the development link
#   PREFIX/lib/libwsnative.a
#   PREFIX/lib/pkgconfig/wsnative.pc
#   PREFIX/lib/cmake/wsnative/wsnativeConfig.cmake, wsnativeConfigVersion.cmake
#                                             find_package(wsnative) -> wsnative::wsnative
#                                             (shared) and wsnative::wsnative_static
#
# Usage: scripts/install-c.sh [--prefix DIR] [--libdir DIR] [--destdir DIR]
#   --prefix  where it is used from (default /usr/local); written into wsnative.pc
#   --libdir  default PREFIX/lib (Debian multiarch: PREFIX/lib/x86_64-linux-gnu)
#   --destdir staging root for packagers (files go to DESTDIR/PREFIX/...)
#
# Why not cargo-c itself: `cargo install cargo-c` builds cargo as a library (about 420 crates;
# on this project's shared two-core machine it had built 330 of them after an hour), and its
# newest release (0.10.26) needs a newer rustc than the 1.95 here (0.10.24 is the last that
# builds); CI would pay that on every fresh machine. This script does what cargo cinstall does
# for this crate, with cargo-c's names (sover 0.Y for 0.x, X from 1.0 on; the header under
# include/wsnative/; Cflags -I${includedir}/wsnative): builds the cdylib with a versioned SONAME and the staticlib in one rustc run
# (`cargo rustc`), reads the static library's system libraries from rustc
# (--print native-static-libs) for Libs.private, and copies the committed header.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local libdir="" destdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --libdir) libdir="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    *) echo "usage: $0 [--prefix DIR] [--libdir DIR] [--destdir DIR]" >&2; exit 2 ;;
  esac
done
prefix="${prefix%/}"
[ -n "$libdir" ] || libdir="$prefix/lib"
includedir="$prefix/include"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
IFS=. read -r major minor patch <<<"$version"
if [ "$major" = 0 ]; then sover="$major.$minor"; else sover="$major"; fi
soname="libwsnative.so.$sover"

target="${CARGO_TARGET_DIR:-target}/release"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One rustc run for both libraries; the link argument reaches only the cdylib's link.
cargo rustc --release --lib --crate-type cdylib,staticlib -- \
  -C link-arg=-Wl,-soname,"$soname" --print native-static-libs 2>&1 | tee "$log" >&2
[ "${PIPESTATUS[0]}" = 0 ] || { echo "install-c: the build failed" >&2; exit 1; }
static_libs=$(sed -n 's/.*native-static-libs: //p' "$log" | tail -1)
[ -n "$static_libs" ] || static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
private="$static_libs"  # as cargo-c writes it
description=$(sed -n 's/^description = "\(.*\)"$/\1/p' Cargo.toml | head -1)

got=$(readelf -d "$target/libwsnative.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$got" = "$soname" ] || { echo "install-c: SONAME is '$got', not $soname" >&2; exit 1; }

inc="$destdir$includedir/wsnative" lib="$destdir$libdir"
install -d "$inc" "$lib/pkgconfig" "$lib/cmake/wsnative"
install -m 644 include/wsnative.h "$inc/wsnative.h"
install -m 755 "$target/libwsnative.so" "$lib/libwsnative.so.$version"
ln -sf "libwsnative.so.$version" "$lib/$soname"
ln -sf "$soname" "$lib/libwsnative.so"
install -m 644 "$target/libwsnative.a" "$lib/libwsnative.a"

cat >"$lib/pkgconfig/wsnative.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=${libdir/#$prefix/\$\{prefix\}}
includedir=\${prefix}/include

Name: wsnative
Description: $description
Version: $version
Libs: -L\${libdir} -lwsnative
Libs.private: $private
Cflags: -I\${includedir}/wsnative
EOF

# The CMake package finds its prefix from where it lies, so the tree can be moved.
rel_libdir="${libdir#"$prefix"/}"
up=$(echo "$rel_libdir/cmake/wsnative" | sed 's|[^/][^/]*|..|g')
cmake_private=$(for l in $private; do printf '%s;' "${l#-l}"; done | sed 's/;$//')
cat >"$lib/cmake/wsnative/wsnativeConfig.cmake" <<EOF
# wsnative $version: find_package(wsnative) gives wsnative::wsnative (the shared library) and
# wsnative::wsnative_static (the static one, with the system libraries it needs).
get_filename_component(_wsnative_prefix "\${CMAKE_CURRENT_LIST_DIR}/$up" ABSOLUTE)
if(NOT TARGET wsnative::wsnative)
  add_library(wsnative::wsnative SHARED IMPORTED)
  set_target_properties(wsnative::wsnative PROPERTIES
    IMPORTED_LOCATION "\${_wsnative_prefix}/$rel_libdir/libwsnative.so.$version"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_wsnative_prefix}/include/wsnative")
endif()
if(NOT TARGET wsnative::wsnative_static)
  add_library(wsnative::wsnative_static STATIC IMPORTED)
  set_target_properties(wsnative::wsnative_static PROPERTIES
    IMPORTED_LOCATION "\${_wsnative_prefix}/$rel_libdir/libwsnative.a"
    INTERFACE_INCLUDE_DIRECTORIES "\${_wsnative_prefix}/include/wsnative"
    INTERFACE_LINK_LIBRARIES "$cmake_private")
endif()
set(wsnative_VERSION "$version")
unset(_wsnative_prefix)
EOF
cat >"$lib/cmake/wsnative/wsnativeConfigVersion.cmake" <<EOF
# Compatible: the same major version (for 0.x: the same minor too) and not older than asked.
set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
if(PACKAGE_FIND_VERSION_MAJOR EQUAL $major
   AND ($major GREATER 0 OR PACKAGE_FIND_VERSION_MINOR EQUAL $minor)
   AND NOT PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
EOF
echo "install-c: wsnative $version ($soname) installed into $destdir$prefix" >&2
