#!/bin/sh
# Whether the decode GEMVs wait on DRAM latency (tools/l2-prefetch.glsl, tools/chain-bench.c): each decode
# GEMV shape of the 1B and 8B Llama shapes as a chain of dependent dispatches (a) reading weights from DRAM
# (copies cycled beyond the L2), (b) with its weights resident in the L2 (one copy), (c) from DRAM but with
# the next dispatch's weights prefetched beside each dispatch on G workgroups. Needs build/chain-bench
# (see the top of tools/chain-bench.c). Usage: tools/l2-prefetch-bench.sh [R] [G ...]
set -eu
R=${1:-200}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 132 264 528
dd=$(mktemp -d)
mkdir -p "$dd/glsl"
cp glsl/* tools/chain-floor.glsl tools/l2-prefetch.glsl "$dd/glsl/"
export DOPPLER_GL_DATADIR="$dd" CB_FILES=matmul.glsl:XSH=2
run() { # label, shape filter, workgroup shapes, prefetch workgroup counts
  echo "== $1"
  f=$2 c=$3
  shift 3
  CB_CFGS=$c build/chain-bench "$R" "$f" | grep -v '^renderer\|^case'
  CB_CFGS=$c CB_COPIES=1 build/chain-bench "$R" "$f" | grep -v '^renderer\|^case' | sed 's/^/L2-resident /'
  for g in "$@"; do
    CB_CFGS=$c CB_PREFETCH=$g build/chain-bench "$R" "$f" | grep -v '^renderer\|^case\|^each' | sed "s/^/prefetch $g /"
  done
}
run "1B o" "q4k o 2048x2048" 256/8/2 "$@"
run "1B gate/up" "q4k gate_up 8192x2048" 256/8/2,256/16/2 "$@"
run "1B down Q4_K" "q4k down 2048x8192" 256/8/2 "$@"
run "1B down Q6_K split" "q6ks down 2048x8192" 256/8/2 "$@"
run "8B gate/up" "q4k gate_up 14336x4096" 256/16/2 "$@"
run "8B down Q4_K" "q4k down 4096x14336" 256/8/2 "$@"
rm -rf "$dd"
