#!/bin/sh
# program-cache-bench.sh: measures start-up with cold and warm shader caches (Mesa's own disk cache and
# doppler-gl's program binaries, each on or off), in fresh processes. The workload is the GL kernel tests
# (5 programs compiled and each dispatched). Usage: tools/program-cache-bench.sh [BUILD_DIR] [RUNS]
set -eu
build=${1:-build}
runs=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
workload() {
    s=$(date +%s%N)
    "./$build/dg-tests" gl_gemv_f16_matches_c gl_reduce_sum_matches_c > "$tmp/out" || { cat "$tmp/out"; exit 1; }
    e=$(date +%s%N)
    echo $(((e - s) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# $1 label, $2 keep mesa cache (0/1), $3 keep our cache (0/1), $4 program_cache on/off
scenario() {
    : > "$tmp/times"
    i=0
    while [ $i -lt "$runs" ]; do
        # populate both caches, then drop the ones this scenario wants cold
        MESA_SHADER_CACHE_DIR="$tmp/mesa" XDG_CACHE_HOME="$tmp/xdg" DOPPLER_GL_PROGRAM_CACHE=on workload > /dev/null
        [ "$2" = 1 ] || rm -rf "$tmp/mesa"
        [ "$3" = 1 ] || rm -rf "$tmp/xdg"
        MESA_SHADER_CACHE_DIR="$tmp/mesa" XDG_CACHE_HOME="$tmp/xdg" DOPPLER_GL_PROGRAM_CACHE="$4" workload >> "$tmp/times"
        i=$((i + 1))
    done
    printf '%-48s median %5s ms  (runs: %s)\n' "$1" "$(median < "$tmp/times")" "$(tr '\n' ' ' < "$tmp/times")"
}
scenario "cold (both caches empty)" 0 0 on
scenario "program binaries warm, Mesa cache cold" 0 1 on
scenario "Mesa cache warm, program binaries off" 1 0 off
scenario "both warm" 1 1 on
