#!/bin/sh
# 15-install.sh: `make install` with PREFIX and DESTDIR puts the binary, glsl/, kernel-paths/ and the man
# page in place, and the installed binary, run from elsewhere, finds its shaders and kernel paths there
# (info names the data directory; infer compiles a whole kernel path). The binary under test is installed
# as it is (`make -o` keeps make from rebuilding it).
# Usage: 15-install.sh BINARY   (from the repository root)
set -u
bin=$1
build=$(dirname "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; [ -f "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err" | head -20; exit 1; }
unset DOPPLER_GL_DATADIR 2>/dev/null || true

make -s -o "$build/doppler-gl" install BUILD="$build" PREFIX=/opt/dg DESTDIR="$tmp/dest" > "$tmp/out" 2> "$tmp/err" ||
  fail "make install"
root="$tmp/dest/opt/dg"
[ -x "$root/bin/doppler-gl" ] || fail "no $root/bin/doppler-gl"
[ -f "$root/share/man/man1/doppler-gl.1" ] || fail "no man page"
[ -f "$root/share/doppler-gl/glsl/matmul.glsl" ] || fail "no glsl/"
[ -f "$root/share/doppler-gl/kernel-paths/registry.json" ] || fail "no kernel-paths/"
cmp -s "$bin" "$root/bin/doppler-gl" || fail "the installed binary is not the one under test"

repo=$(pwd)
model=$repo/models/sotu-6m-q8_0
cd "$tmp" || fail "cd"
"$root/bin/doppler-gl" info > "$tmp/out" 2> "$tmp/err" || fail "installed info"
grep -q "^data directory: *$root/share/doppler-gl\$" "$tmp/out" ||
  fail "installed info: $(grep 'data directory' "$tmp/out")"
out=$("$root/bin/doppler-gl" infer -m "$model" -p "The state of the Union is" -n 3 --temp 0 -q 2> "$tmp/err") ||
  fail "installed infer"
[ "$out" = "The state of the Union is a great and" ] || fail "installed infer: '$out'"
make -s -C "$repo" -o "$build/doppler-gl" uninstall BUILD="$build" PREFIX=/opt/dg DESTDIR="$tmp/dest" 2> "$tmp/err" ||
  fail "make uninstall"
[ ! -e "$root/bin/doppler-gl" ] && [ ! -e "$root/share/doppler-gl" ] || fail "uninstall left files"
echo ok
