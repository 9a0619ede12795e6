#!/bin/sh
# Makes random-weight models at real shapes (tools/shapes/*.json) and benchmarks them with
# `doppler-gl bench`, so speed work needs no downloads. Results land in bench-results/ (or OUT_DIR).
# Usage: tools/bench-shapes.sh [BIN] [WORK_DIR] [OUT_DIR] [SHAPE:QUANT ...]
#   default shapes: llama-3.2-1b:q4_k_m qwen3-0.6b:q4_k_m llama-3.2-1b:f16
set -eu
bin=${1:-build/doppler-gl}
work=${2:-/tmp/doppler-gl-shapes}
out=${3:-bench-results}
[ $# -gt 3 ] && { shift 3; set -- "$@"; } || set -- llama-3.2-1b:q4_k_m qwen3-0.6b:q4_k_m llama-3.2-1b:f16
mkdir -p "$work" "$out"
for sq in "$@"; do
  shape=${sq%%:*}; quant=${sq#*:}
  m="$work/$shape-$quant"
  [ -f "$m/manifest.json" ] || "$bin" convert --random "tools/shapes/$shape.json" "$m" --quantize "$quant" --no-progress
  "$bin" bench -m "$m" -p "${BENCH_P:-512}" -n "${BENCH_N:-128}" -r "${BENCH_R:-3}" --out "$out" ${BENCH_ARGS:-}
done
