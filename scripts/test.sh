#!/usr/bin/env bash
# The whole test run, as CI runs it (.ci/run calls exactly this):
#   1. packages; 2. a warnings-as-errors build and every Criterion test;
#   3. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. the libFuzzer targets for a bounded time; 5. the HIP plugin
#   compile-checked for gfx942 (when its toolchain installs).
# Tests that need ../shared skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
export OPENBLAS_CORETYPE=Haswell

echo "== build (warnings are errors) and tests"
[ -d build-ci ] || meson setup build-ci -Dwerror=true -Dtests=enabled
ninja -C build-ci
meson test -C build-ci --print-errorlogs --num-processes 2

echo "== tests under ASan + UBSan"
[ -d build-san ] || meson setup build-san -Dwerror=true -Dtests=enabled \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
ninja -C build-san
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-san --print-errorlogs --num-processes 2 --timeout-multiplier 4 \
  --no-suite slow

if [ -x tests/fuzz/run.sh ]; then
  echo "== fuzzing (bounded)"
  tests/fuzz/run.sh "${GPTQ_FUZZ_SECONDS:-60}"
fi

if [ -x backends/hip/check-gfx942.sh ]; then
  echo "== HIP plugin: gfx942 compile check"
  backends/hip/check-gfx942.sh
fi
echo "all tests passed"
