#!/bin/sh
# layout-bench.sh: times matmul.glsl on Q8_0 and Q6_K weights in GGUF's byte layout (34- and 210-byte
# blocks, read with unaligned word arithmetic) against a split layout (scales apart, aligned uvec4 loads),
# at real GEMV shapes, through the test gl_weight_layouts_split_matches_gguf (which also checks both
# against C). docs/FORMAT.md quotes its output.
# Usage: tools/layout-bench.sh [BUILD_DIR] [WG:ROWS_PER_WG] [ROWSxCOLS ...]
#   WG:ROWS_PER_WG is the main entry's shape (64:4 default; the nvidia profile uses 256:8); COLS must be a
#   multiple of 2048. Default shapes: Llama-3.2-1B's q_proj (2048x2048), up/gate (8192x2048), down (2048x8192).
set -eu
build=${1:-build}
wg=${2:-64:4}
[ $# -gt 2 ] && shift 2 || set --
[ $# -gt 0 ] || set -- 2048x2048 8192x2048 2048x8192
"./$build/doppler-gl" info | sed -n 's/^renderer: *//p'
for shape in "$@"; do
  DG_LAYOUT_BENCH="$shape:$wg" "./$build/dg-tests" gl_weight_layouts_split_matches_gguf | grep -E '^layout-bench|not ok|^#'
done
