#!/bin/sh
# program-cache-bench.sh: measures start-up with cold and warm shader caches (the driver's own disk cache:
# Mesa's, or NVIDIA's GLCache; and doppler-gl's program binaries, each on or off), in fresh processes.
# The workload is the GL kernel tests (5 programs compiled and each dispatched), or the command in
# $WORKLOAD, e.g. WORKLOAD="./build/doppler-gl infer -m models/sotu-6m-q8_0 -p Hi -n 1" for a model's
# whole kernel path. Usage: tools/program-cache-bench.sh [BUILD_DIR] [RUNS]
set -eu
build=${1:-build}
runs=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# NVIDIA's driver keeps its own cache; point it into the scenario's folder too so "driver cache cold" is.
export __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1
workload() {
    s=$(date +%s%N)
    if [ -n "${WORKLOAD:-}" ]; then
        __GL_SHADER_DISK_CACHE_PATH="$MESA_SHADER_CACHE_DIR" sh -c "$WORKLOAD" > "$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
    else
        __GL_SHADER_DISK_CACHE_PATH="$MESA_SHADER_CACHE_DIR" "./$build/dg-tests" gl_gemv_f16_matches_c gl_reduce_sum_matches_c \
            > "$tmp/out" || { cat "$tmp/out"; exit 1; }
    fi
    e=$(date +%s%N)
    echo $(((e - s) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# $1 label, $2 keep the driver cache (0/1), $3 keep our cache (0/1), $4 program_cache on/off
scenario() {
    : > "$tmp/times"
    i=0
    while [ $i -lt "$runs" ]; do
        # populate both caches, then drop the ones this scenario wants cold
        mkdir -p "$tmp/mesa"
        MESA_SHADER_CACHE_DIR="$tmp/mesa" XDG_CACHE_HOME="$tmp/xdg" DOPPLER_GL_PROGRAM_CACHE=on workload > /dev/null
        [ "$2" = 1 ] || rm -rf "$tmp/mesa"
        [ "$3" = 1 ] || rm -rf "$tmp/xdg"
        mkdir -p "$tmp/mesa"
        MESA_SHADER_CACHE_DIR="$tmp/mesa" XDG_CACHE_HOME="$tmp/xdg" DOPPLER_GL_PROGRAM_CACHE="$4" workload >> "$tmp/times"
        i=$((i + 1))
    done
    printf '%-48s median %5s ms  (runs: %s)\n' "$1" "$(median < "$tmp/times")" "$(tr '\n' ' ' < "$tmp/times")"
}
scenario "cold (both caches empty)" 0 0 on
scenario "program binaries warm, driver cache cold" 0 1 on
scenario "driver cache warm, program binaries off" 1 0 off
scenario "both warm" 1 1 on
