#!/bin/sh
# check_codeobj.sh LISTER PLUGIN ARCH...
# Fails unless PLUGIN (libgptq-hip.so) embeds device code for every ARCH:
#   AMD (gfxNNN): LISTER is clang-offload-bundler. The device code sits in
#                 the .hip_fatbin section as offload bundles; the section is
#                 cut out with objcopy and the bundler's --list names its
#                 hipv4-amdgcn-amd-amdhsa--gfxNNN entries. (--list on the .so
#                 itself prints nothing with clang-19.)
#   NVIDIA (sm_NN): LISTER is cuobjdump; --list-elf names the sm_NN cubins.
set -eu
lister=$1 so=$2
shift 2
case "$1" in
sm_*) list=$("$lister" --list-elf "$so") ;;
*)
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    objcopy -O binary --only-section=.hip_fatbin "$so" "$tmp"
    if [ ! -s "$tmp" ]; then
        echo "MISSING: $so has no .hip_fatbin section" >&2
        exit 1
    fi
    list=$("$lister" --list --type=o --input="$tmp")
    ;;
esac
echo "$list"
status=0
for arch in "$@"; do
    if echo "$list" | grep -q -- "$arch"; then
        echo "ok: $so holds device code for $arch"
    else
        echo "MISSING: $so has no device code for $arch" >&2
        status=1
    fi
done
exit $status
