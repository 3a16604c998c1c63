#!/usr/bin/env bash
# The whole test run, as CI runs it (.ci/run calls exactly this):
#   1. packages; 2. a warnings-as-errors build and every Criterion test;
#   3. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. the libFuzzer targets for a bounded time; 5. the HIP plugin
#   compiled for gfx942 and its code object checked (no AMD GPU here: the
#   GPU tests skip; they run on NVIDIA through tools/device_gpu.sh).
# Tests that need ../shared skip with a message when it is absent. Every
# skipped test is listed, with its reason, at the end (tests/skip_report.c
# writes them to <build>/meson-logs/skipped/); while the shared folder is
# present, a skip for any other reason than a missing GPU or HIP plugin fails
# the run (a test that needs only the CPU and ../shared must run).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${GPTQ_SHARED:-../shared}
scripts/deps.sh test
export OPENBLAS_CORETYPE=Haswell

echo "== build (warnings are errors) and tests"
[ -d build-ci ] || meson setup build-ci -Dwerror=true -Dtests=enabled
ninja -C build-ci
rm -rf build-ci/meson-logs/skipped
meson test -C build-ci --print-errorlogs --num-processes 2

echo "== install: headers, pkg-config, SONAME, man page; an out-of-tree plugin built against them"
scripts/install_check.sh build-ci

echo "== tests under ASan + UBSan"
[ -d build-san ] || meson setup build-san -Dwerror=true -Dtests=enabled \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
ninja -C build-san
rm -rf build-san/meson-logs/skipped
# the suite `slow` (tests/meson.build: `quantize`, the shared models quantized
# and evaluated end to end, 70-95 s in the plain build on 2 cores) runs only
# in the plain build; its pipeline code runs under ASan in `checkpoint` and
# `cli_layer` on small models
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-san --print-errorlogs --num-processes 2 --timeout-multiplier 4 \
  --no-suite slow

if [ -x tests/fuzz/run.sh ]; then
  echo "== fuzzing (bounded)"
  tests/fuzz/run.sh "${GPTQ_FUZZ_SECONDS:-30}"
fi

echo "== HIP plugin: compiled for AMD gfx942 with Debian's clang-19, code object checked"
scripts/deps.sh hip
[ -d build-hip ] || meson setup build-hip -Dhip=enabled -Doffload_arch=gfx942 -Dtests=enabled \
  -Dwerror=true
ninja -C build-hip
rm -rf build-hip/meson-logs/skipped
meson test -C build-hip --print-errorlogs hip_codeobj hip backend

echo "== skipped tests"
bad=0
for b in build-ci build-san build-hip; do
  logs=("$b"/meson-logs/skipped/*.txt)
  [ -e "${logs[0]}" ] || continue
  n=$(cat "${logs[@]}" | wc -l)
  echo "$b: $n skipped"
  cut -c1-200 "${logs[@]}" | sed 's/^/  /'
  # a GPU test without a GPU or plugin may skip; nothing else may while the
  # shared models are here
  if [ -d "$shared/models" ] && cat "${logs[@]}" | grep -Ev ': .*(HIP|GPU)' | grep -q .; then
    echo "error: $b: tests that need only the CPU and $shared skipped:" >&2
    cat "${logs[@]}" | grep -Ev ': .*(HIP|GPU)' | cut -c1-200 | sed 's/^/  /' >&2
    bad=1
  fi
done
[ "$bad" = 0 ] || exit 1
echo "all tests passed"
