#!/bin/sh
# `make run`: shows what doppler-gl sees of this machine's GPU. (Text generation on the bundled default
# model replaces this once `infer` lands.)
set -eu
bin=${1:-build/doppler-gl}
exec "$bin" info
