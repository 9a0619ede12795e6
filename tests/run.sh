#!/bin/sh
# Runs the whole suite against one build folder: the C test binary, then the CLI tests.
# Usage: tests/run.sh BUILD_DIR   (from the repository root)
set -u
build=${1:-build}
export DG_BUILD="$build"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Keep Mesa's shader cache inside the build folder so runs are repeatable and CI starts cold.
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$(pwd)/$build/mesa-cache}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME_TEST:-$(pwd)/$build/xdg-cache}"
status=0
echo "== $build: C tests"
"./$build/dg-tests" || status=1
echo "== $build: CLI tests"
cli_pass=0; cli_fail=0
for t in tests/cli/*.sh; do
  [ -e "$t" ] || continue
  if sh "$t" "./$build/doppler-gl" > "$build/cli-$(basename "$t").log" 2>&1; then
    cli_pass=$((cli_pass + 1)); echo "ok $(basename "$t")"
  else
    cli_fail=$((cli_fail + 1)); status=1; echo "not ok $(basename "$t") (log: $build/cli-$(basename "$t").log)"
    tail -n 20 "$build/cli-$(basename "$t").log" | sed 's/^/#   /'
  fi
done
echo "$cli_pass passed, $cli_fail failed (CLI)"
exit $status
