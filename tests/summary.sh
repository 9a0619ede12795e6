#!/bin/sh
# summary.sh: the last line of `make test`: "N passed, N failed" over every part it ran (the suite in each
# build folder from its test-counts, written by tests/run.sh, and the fuzz run as one test). A build folder
# without counts (its build or its run died first) counts as one failure.
# Usage: tests/summary.sh FUZZ_STATUS BUILD_DIR...
set -u
fuzz=$1
shift
pass=0; fail=0; parts=""
for b in "$@"; do
  if [ -r "$b/test-counts" ]; then
    read -r p f s < "$b/test-counts"
    parts="$parts$b $p passed, $f failed, $s skipped; "
  else
    p=0; f=1
    parts="$parts$b did not run (no $b/test-counts); "
  fi
  pass=$((pass + p)); fail=$((fail + f))
done
if [ "$fuzz" = 0 ]; then pass=$((pass + 1)); parts="${parts}fuzz ok"; else fail=$((fail + 1)); parts="${parts}fuzz FAILED"; fi
echo "$pass passed, $fail failed ($parts)"
[ "$fail" = 0 ]
