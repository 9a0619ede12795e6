#!/bin/sh
# `make run`: generates text from the bundled default model (models/sotu-6m-q8_0) on this machine's GPU,
# or on Mesa's llvmpipe where there is none. Extra arguments go to `doppler-gl infer`.
set -eu
bin=${1:-build/doppler-gl}
[ $# -gt 0 ] && shift
"$bin" info | sed -n '1,6p' >&2
exec "$bin" infer -m models/sotu-6m-q8_0 -p "The state of the Union is" -n 96 --seed 1 "$@"
