#!/bin/sh
# Build the libFuzzer targets and run each for N seconds (default 60).
#   tests/fuzz/run.sh [SECONDS]
# Build folder: $FUZZ_BUILD (default build-fuzz in the source root), set up
# with clang on first use. New inputs the fuzzer finds go to a temporary
# folder (the committed seed corpora stay as they are); the tokenizer's also
# starts from the small test tokenizers of tests/data/tokenizer. A crash, a
# leak, a sanitizer report, a hang past 10 s or 2 GiB of memory leaves its
# input as <build>/fuzz-<target>-* and makes this script fail.
set -eu
secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
targets="safetensors json config tokenizer checkpoint"

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_lundef=false
fi
ninja -C "$build" -j2 $(for t in $targets; do echo "tests/fuzz/fuzz_$t"; done)

# a sanitizer report with its stack (libFuzzer prints ASan's itself)
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export UBSAN_OPTIONS
status=0
for t in $targets; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/gptq-fuzz-$t-XXXXXX")
    if [ "$t" = tokenizer ]; then
        for f in "$root"/tests/data/tokenizer/*/tokenizer.json; do
            if [ "$(wc -c < "$f")" -le 32768 ]; then
                cp "$f" "$work/$(basename "$(dirname "$f")").json"
            fi
        done
    fi
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
