#!/bin/sh
# Build the libFuzzer targets and run each for N seconds (default 60).
#   tests/fuzz/run.sh [SECONDS]
# Build folder: $FUZZ_BUILD (default build-fuzz in the source root), set up
# with clang on first use. New inputs the fuzzer finds go to a temporary
# folder (the committed seed corpora stay as they are); a crash leaves its
# input as <build>/fuzz-<target>-crash-* and makes this script fail.
set -eu
secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_lundef=false
fi
ninja -C "$build" -j2 tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_json

status=0
for t in safetensors json; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/gptq-fuzz-$t-XXXXXX")
    echo "== fuzz_$t for $secs s (new inputs in $work)"
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$build/fuzz-$t-" \
            "$work" "$root/tests/fuzz/corpus_$t"; then
        echo "fuzz_$t FAILED: see $build/fuzz-$t-* (reproduce: $build/tests/fuzz/fuzz_$t FILE)"
        status=1
    fi
    rm -rf "$work"
done
exit $status
