#!/usr/bin/env bash
# Builds the C API (libChorusC.so) in release and installs it for C, C++ and Python hosts:
#
#   Tools/install-c-api.sh [--prebuilt DIR] [PREFIX]     (default PREFIX: ./.build/c-api)
#
# --prebuilt DIR installs DIR/libChorusC.so as built (e.g. .build/debug) instead of building
# a release one.
#
# PREFIX/include/chorus.h, PREFIX/lib/libChorusC.so, PREFIX/lib/pkgconfig/chorus.pc,
# PREFIX/lib/python/chorus.py, and next to the library the Swift runtime libraries it loads
# (libswiftCore.so, Foundation, ...): libChorusC.so looks in its own directory ($ORIGIN is in
# its RUNPATH), so a host without a Swift toolchain can load it from PREFIX/lib.
#
# Then:  export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
#        cc $(pkg-config --cflags chorus) app.c $(pkg-config --libs chorus) -o app
set -euo pipefail
cd "$(dirname "$0")/.."
bin=""
if [ "${1:-}" = "--prebuilt" ]; then
  bin="${2:?--prebuilt needs the directory that holds libChorusC.so}"
  shift 2
fi
prefix="$(mkdir -p "${1:-.build/c-api}" && cd "${1:-.build/c-api}" && pwd)"

if [ -z "$bin" ]; then
  swift build -c release --product ChorusC
  bin="$(swift build -c release --show-bin-path)"
fi
[ -f "$bin/libChorusC.so" ] || { echo "install-c-api: no libChorusC.so in $bin" >&2; exit 1; }
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/python"
install -m 0644 include/chorus.h "$prefix/include/chorus.h"
install -m 0755 "$bin/libChorusC.so" "$prefix/lib/libChorusC.so"
install -m 0644 Tools/python/chorus.py "$prefix/lib/python/chorus.py"

# The Swift runtime the library loads: every dependency that lives in the toolchain.
toolchain_lib="$(dirname "$(readlink -f "$(command -v swift)")")/../lib/swift/linux"
toolchain_lib="$(cd "$toolchain_lib" && pwd)"
ldd "$prefix/lib/libChorusC.so" | awk '{print $3}' | grep "^$toolchain_lib/" | while read -r lib; do
  install -m 0644 "$lib" "$prefix/lib/"
done

version="$(sed -n 's/^#define CHORUS_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/chorus.h | paste -sd.)"
cat > "$prefix/lib/pkgconfig/chorus.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: chorus
Description: Chorus collective communication for training clusters (C API)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lChorusC
PC
echo "installed the C API in $prefix (PKG_CONFIG_PATH=$prefix/lib/pkgconfig; Python: PYTHONPATH=$prefix/lib/python)"
