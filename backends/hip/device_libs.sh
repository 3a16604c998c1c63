#!/bin/sh
# device_libs.sh SRC_DIR OUT_DIR STAMP LLVM_DIS LLVM_AS ARCH...
#
# Makes OUT_DIR, the --rocm-device-lib-path of the AMD build: links to every
# bitcode library of SRC_DIR (Debian's rocm-device-libs, or a ROCm install),
# plus an oclc_isa_version_NNN.bc for each gfxNNN target that SRC_DIR lacks.
# Debian bookworm ships oclc_isa_version_940.bc but not the 942 one that
# MI300X (gfx942) needs; the file only defines the constant
# __oclc_ISA_version = major*1000 + minor*100 + stepping, so it is made from
# the stepping-0 file of the same family by changing that constant
# (9400 -> 9402), and checked. Touches STAMP when done.
set -eu
src=$1 out=$2 stamp=$3 dis=$4 as=$5
shift 5
mkdir -p "$out"
for f in "$src"/*.bc; do
    ln -sf "$f" "$out/"
done
for arch in "$@"; do
    v=${arch#gfx}
    v=${v%%:*} # drop target features (gfx942:xnack-)
    [ -e "$out/oclc_isa_version_$v.bc" ] && continue
    mid=${v%?}
    step=${v#"$mid"}
    minor=${mid#"${mid%?}"}
    major=${mid%?}
    base=${mid}0
    if [ ! -e "$src/oclc_isa_version_$base.bc" ]; then
        echo "device_libs.sh: $src has neither oclc_isa_version_$v.bc nor oclc_isa_version_$base.bc to make it from" >&2
        exit 1
    fi
    from=$((major * 1000 + minor * 100))
    to=$((major * 1000 + minor * 100 + 0x$step))
    rm -f "$out/oclc_isa_version_$v.bc"
    "$dis" "$src/oclc_isa_version_$base.bc" -o - |
        sed "s/constant i32 $from,/constant i32 $to,/" |
        "$as" -o "$out/oclc_isa_version_$v.bc"
    if ! "$dis" "$out/oclc_isa_version_$v.bc" -o - | grep -q "__oclc_ISA_version = .*constant i32 $to,"; then
        echo "device_libs.sh: made $out/oclc_isa_version_$v.bc but it does not hold $to" >&2
        exit 1
    fi
done
touch "$stamp"
