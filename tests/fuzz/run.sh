#!/bin/sh
# Builds the GGUF fuzz target with clang + libFuzzer (ASan and UBSan on) and runs it for a bounded time.
# Usage: tests/fuzz/run.sh [SECONDS] [extra libFuzzer flags...]   (from the repository root; default 60 s)
#
# The corpus is seeded with small valid files of every architecture (tests/gguf_writer.h) and with the
# first few KB of each fixture GGUF (headers: metadata and vocabulary), so mutations start from real
# structure. Skips (exit 0) with a message when clang or libFuzzer is missing; under CI=true a clang
# that exists but cannot build the target is a failure. Exit status: 0 clean run or skip, 1 a crash or
# build failure (the crashing input is left in $OUT/crash-*).
set -u
secs=${1:-60}
[ $# -gt 0 ] && shift
build=${FUZZ_BUILD:-build-fuzz}
out="$build/gguf"
fixtures=${DOPPLER_FIXTURES:-../shared/fixtures}
CLANG=${CLANG:-clang}

if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "fuzz: SKIP: $CLANG not found (install clang and libclang-rt-dev to fuzz the GGUF reader)"
  exit 0
fi
mkdir -p "$out/corpus" "$out/seeds"
# libFuzzer ships with clang's runtime; a clang without it fails on this tiny probe.
probe="$out/probe.c"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$probe"
if ! "$CLANG" -fsanitize=fuzzer "$probe" -o "$out/probe" >"$out/probe.log" 2>&1; then
  echo "fuzz: SKIP: $CLANG cannot link -fsanitize=fuzzer (libFuzzer missing; see $out/probe.log)"
  exit 0
fi

pkgs="libcjson libutf8proc"
cflags="-std=c11 -D_GNU_SOURCE -g -O1 -Isrc -Itests $(pkg-config --cflags $pkgs 2>/dev/null)"
libs="$(pkg-config --libs $pkgs 2>/dev/null || echo -lcjson -lutf8proc) -lm"
srcs="src/model/gguf.c src/model/gguf_model.c src/model/gguf_inspect.c src/model/dtype.c src/model/hparams.c
      src/model/model.c src/core/status.c src/core/log.c"
# shellcheck disable=SC2086
if ! "$CLANG" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
     tests/fuzz/fuzz_gguf.c $srcs $libs -o "$out/fuzz_gguf" 2>"$out/build.log"; then
  cat "$out/build.log" >&2
  if [ "${CI:-}" = true ]; then echo "fuzz: FAIL: the fuzz target does not build" >&2; exit 1; fi
  echo "fuzz: SKIP: the fuzz target does not build here (see $out/build.log)"
  exit 0
fi
# shellcheck disable=SC2086
"$CLANG" $cflags -DGGUF_FUZZ_SEEDS tests/fuzz/fuzz_gguf.c src/model/dtype.c -o "$out/make_seeds" &&
  "$out/make_seeds" "$out/seeds" || { echo "fuzz: FAIL: cannot write seed files" >&2; exit 1; }
for f in "$fixtures"/gguf/*.gguf; do
  [ -e "$f" ] || continue
  b=$(basename "$f" .gguf)
  for n in 256 4096 16384; do head -c "$n" "$f" > "$out/seeds/$b.head$n.gguf"; done
done

echo "fuzz: running fuzz_gguf for ${secs}s (corpus $out/corpus, seeds $out/seeds)"
# -rss_limit_mb bounds what a hostile length could make us allocate; seeds are ≤ 40 KB.
"./$out/fuzz_gguf" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="$out/" -print_final_stats=1 "$@" "$out/corpus" "$out/seeds" 2>&1 | tee "$out/fuzz.log" |
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|Done )' 
status=0
if ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* >/dev/null 2>&1; then
  echo "fuzz: FAIL: findings in $out (log: $out/fuzz.log)" >&2
  status=1
fi
grep -q 'ERROR: libFuzzer\|==ERROR' "$out/fuzz.log" && status=1
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz.log" | tail -n 1)
echo "fuzz: executions: ${runs:-unknown}; status $status"
exit $status
