#!/usr/bin/env bash
# Line coverage of the test suite, in three parts: the library (src/ without
# the CLI), the CPU backend (backends/cpu) and the CLI (src/cli).
#
#   scripts/coverage.sh [BUILD_DIR] [meson test arguments...]
#
# Builds BUILD_DIR (default build-cov) with -Db_coverage=true, runs the
# tests (all of them unless test names are given), and prints gcovr's
# figures for each part. Needs gcovr (Debian: apt-get install gcovr).
# Counters add up across runs: the script clears them first.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cov}
shift || true
command -v gcovr >/dev/null || { echo "coverage.sh: gcovr is missing (apt-get install gcovr)" >&2; exit 1; }
export OPENBLAS_CORETYPE=Haswell

[ -d "$build" ] || meson setup "$build" -Db_coverage=true -Dtests=enabled \
  -Dbuildtype=debugoptimized
ninja -C "$build"
find "$build" -name '*.gcda' -delete
# a failing test still leaves its counters: report them, then fail
status=0
meson test -C "$build" --num-processes "${GPTQ_COVERAGE_JOBS:-2}" --print-errorlogs "$@" || status=$?

part() { # title, gcovr filter arguments...
  local title=$1
  shift
  printf '%-22s ' "$title"
  # the report goes to a file in the build folder: gcovr replaces its -o
  # target, and run as root with -o /dev/null it replaced the device itself
  gcovr -r . "$build" "$@" --print-summary -o "$build/coverage-part.txt" 2>/dev/null |
    grep '^lines' || echo "no data"
}
echo "== line coverage"
part "src/ (library)" --filter 'src/' --exclude 'src/cli/'
part "backends/cpu" --filter 'backends/cpu/'
part "src/cli" --filter 'src/cli/'
echo "per-file detail: gcovr -r . $build --filter src/ --filter backends/cpu/ --txt"
exit $status
