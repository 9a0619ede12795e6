#!/bin/sh
# Runs the whole suite against one build folder: the C test binary, then the CLI tests; ends with an
# "N passed, N failed" line and leaves the counts in BUILD_DIR/test-counts for tests/summary.sh.
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
# What this run counted, for the summary line of `make test` (tests/summary.sh); removed first so a run
# that dies early never leaves an older run's counts behind.
rm -f "$build/test-counts"
echo "== $build: C tests"
{ "./$build/dg-tests"; echo $? > "$build/c-tests.rc"; } | tee "$build/c-tests.log"
[ "$(cat "$build/c-tests.rc")" = 0 ] || status=1
# Counted from the per-test lines, so a binary that crashes part-way still reports what ran, plus one
# failure for the crash itself (no final "N passed" line).
c_pass=$(grep -c '^ok .*([0-9]* ms)$' "$build/c-tests.log")
c_skip=$(grep -c '^ok .* # SKIP' "$build/c-tests.log")
c_fail=$(grep -c '^not ok ' "$build/c-tests.log")
if ! grep -q '^[0-9]* passed, [0-9]* failed, [0-9]* skipped$' "$build/c-tests.log"; then
  echo "not ok dg-tests did not finish (exit status $(cat "$build/c-tests.rc"))"
  c_fail=$((c_fail + 1)); status=1
fi
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
echo "$((c_pass + cli_pass)) $((c_fail + cli_fail)) $c_skip" > "$build/test-counts"
echo "== $build: $((c_pass + cli_pass)) passed, $((c_fail + cli_fail)) failed" \
     "(C tests $c_pass passed, $c_fail failed, $c_skip skipped; CLI tests $cli_pass passed, $cli_fail failed)"
exit $status
