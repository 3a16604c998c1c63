#!/usr/bin/env bash
# install_check.sh [BUILD]: what a third party gets from `meson install`.
#   1. `meson install --destdir` of BUILD (default build-ci) into a temporary
#      folder; the installed tree must hold gptq.h, gptq/backend.h, gptq.pc,
#      libgptq.so.<soversion> (the SONAME) and the man page;
#   2. examples/plugin is built against that install alone (pkg-config with
#      PKG_CONFIG_SYSROOT_DIR: -I/-L point into the destdir, never the source);
#   3. the installed `gptq layer --backend PATH` loads the plugin on a golden
#      case, its output must equal the built-in CPU backend's (the plugin wraps
#      it), and the plugin must report that its wrapped gemm ran;
#   4. the same build with gptq/backend.h removed from the install must fail
#      (so step 2 really read the installed headers).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-ci}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
meson install -C "$build" --destdir "$root" --no-rebuild --quiet

pc=$(find "$root" -name gptq.pc | head -1)
[ -n "$pc" ] || { echo "install_check: no gptq.pc installed"; exit 1; }
inc=$(find "$root" -name gptq.h -path '*/include/*' | head -1)
[ -n "$inc" ] || { echo "install_check: no gptq.h installed"; exit 1; }
[ -f "$(dirname "$inc")/gptq/backend.h" ] || { echo "install_check: no gptq/backend.h installed"; exit 1; }
so=$(find "$root" -name 'libgptq.so.[0-9]' | head -1)
[ -n "$so" ] || { echo "install_check: no libgptq.so.<soversion> installed"; exit 1; }
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "$(basename "$so")" ] || { echo "install_check: SONAME $soname, file $(basename "$so")"; exit 1; }
[ -n "$(find "$root" -name gptq.1 -path '*/man1/*')" ] || { echo "install_check: no man page gptq.1 installed"; exit 1; }
gptq=$(find "$root" -name gptq -type f -perm -u+x | head -1)
libdir=$(dirname "$so")

build_example() { # $1: build folder
  PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR= \
    meson setup "$1" examples/plugin -Dwerror=true >"$1.log" 2>&1 &&
    ninja -C "$1" >>"$1.log" 2>&1
}
echo "install_check: building examples/plugin against $root"
build_example "$tmp/ex" || { cat "$tmp/ex.log"; echo "install_check: the example plugin did not build"; exit 1; }
plugin=$tmp/ex/libgptq-example.so

case_in=ref/w4_g128_asym/input.safetensors
"$gptq" layer "$case_in" -o "$tmp/cpu.safetensors" --bits 4 --group-size 128 --asym --quiet
LD_LIBRARY_PATH=$libdir GPTQ_EXAMPLE_VERBOSE=1 "$gptq" layer "$case_in" -o "$tmp/ex.safetensors" \
  --bits 4 --group-size 128 --asym --quiet --backend "$plugin" 2>"$tmp/ex.err"
grep -Eq '^example backend: [1-9][0-9]* gemm calls wrapped' "$tmp/ex.err" ||
  { cat "$tmp/ex.err"; echo "install_check: the plugin's wrapped gemm did not run"; exit 1; }
"$gptq" compare "$tmp/cpu.safetensors" "$tmp/ex.safetensors" --max-code-mismatch 0 \
  --max-rel-output 0 >"$tmp/cmp.txt" ||
  { cat "$tmp/cmp.txt"; echo "install_check: the plugin's output differs from the CPU backend's"; exit 1; }

rm "$(dirname "$inc")/gptq/backend.h"
if build_example "$tmp/ex2"; then
  echo "install_check: the example built without gptq/backend.h installed: it reads headers" \
       "from outside the install"
  exit 1
fi
echo "install_check: ok ($(basename "$so"), plugin loaded by the installed gptq, same output as cpu)"
