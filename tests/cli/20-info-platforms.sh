#!/bin/sh
# 20-info-platforms.sh: `doppler-gl info` option errors (exit 2), platform fallback order and its messages,
# forced platforms, bad devices (exit 3: an index out of range, a path that is no DRM device), a missing
# shader directory and bad settings files (exit 1).
# Usage: 20-info-platforms.sh BINARY
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DOPPLER_GL_CONFIG_DIR="$tmp/cfg"   # no user settings leak in
mkdir -p "$DOPPLER_GL_CONFIG_DIR"
unset DOPPLER_GL_PLATFORM DOPPLER_GL_DEVICE DOPPLER_GL_DATADIR DOPPLER_GL_VERBOSE 2>/dev/null || true
status=0
fail() { echo "FAIL: $*"; [ -f "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err" | head -20; status=1; }
run() { "$bin" "$@" > "$tmp/out" 2> "$tmp/err"; echo $?; }

[ "$(run info --gl-platform vulkan)" = 2 ] || fail "bad --gl-platform should exit 2"
grep -q vulkan "$tmp/err" || fail "bad --gl-platform: message should name the value"
[ "$(run info --gl-platform)" = 2 ] || fail "--gl-platform without a value should exit 2"
[ "$(run info --no-such-option)" = 2 ] || fail "unknown option should exit 2"
[ "$(DOPPLER_GL_PLATFORM=vulkan run info)" = 2 ] || fail "bad DOPPLER_GL_PLATFORM should exit 2"
grep -q DOPPLER_GL_PLATFORM "$tmp/err" || fail "bad DOPPLER_GL_PLATFORM: message should name the variable"

# auto: works, and reports at -v what failed before the platform it chose
[ "$(run info -v)" = 0 ] || fail "info (auto) should work"
chosen=$(sed -n 's/^platform: *//p' "$tmp/out")
echo "auto chose: $chosen"
if ! ls /dev/dri/renderD* > /dev/null 2>&1; then
    [ "$chosen" != gbm ] || fail "auto chose gbm without /dev/dri"
    grep -q "gbm:.*/dev/dri" "$tmp/err" || fail "auto -v should say why gbm failed (naming /dev/dri)"
    # forced gbm fails with exit 3, naming /dev/dri and what to do
    [ "$(run info --gl-platform gbm)" = 3 ] || fail "forced gbm without /dev/dri should exit 3"
    grep -q "/dev/dri" "$tmp/err" || fail "forced gbm: message should name /dev/dri"
    grep -q "gl-platform" "$tmp/err" || fail "forced gbm: message should suggest --gl-platform"
fi

# forced device works (Mesa's software device at least)
[ "$(run info --gl-platform device)" = 0 ] || fail "forced device should work"
grep -q "^platform: *device" "$tmp/out" || fail "forced device: platform line"
# forced surfaceless works where EGL has it (Mesa)
rc=$(run info --gl-platform=surfaceless)
if [ "$rc" = 0 ]; then
    grep -q "^platform: *surfaceless" "$tmp/out" || fail "forced surfaceless: platform line"
elif ! grep -q "no EGL_MESA_platform_surfaceless" "$tmp/err"; then
    fail "forced surfaceless failed (rc $rc) though EGL has it"
fi
# a path that is not a DRM device: refused (Mesa's GBM would silently fall back to its software renderer)
[ "$(run info --gl-platform gbm --gl-device /dev/null)" = 3 ] || fail "gbm on /dev/null should exit 3"
grep -q "/dev/null is not a DRM device" "$tmp/err" || fail "gbm on /dev/null: message should say it is no DRM device"
# a device with a platform that picks its own: works, with a warning naming both
if [ "$rc" = 0 ]; then
    [ "$(run info --gl-platform surfaceless --gl-device 0)" = 0 ] || fail "surfaceless with --gl-device 0"
    grep -q "device '0' ignored: platform surfaceless" "$tmp/err" || fail "surfaceless + device: no warning"
fi
# a device index that does not exist
[ "$(run info --gl-platform device --gl-device 99)" = 3 ] || fail "device 99 should exit 3"
grep -q "99" "$tmp/err" || fail "device 99: message should name it"
# the same through the environment and the settings file
[ "$(DOPPLER_GL_PLATFORM=device DOPPLER_GL_DEVICE=99 run info)" = 3 ] || fail "DOPPLER_GL_DEVICE=99 should exit 3"
printf '[gl]\nplatform = device\ndevice = 99\n' > "$DOPPLER_GL_CONFIG_DIR/config.ini"
[ "$(run info)" = 3 ] || fail "settings file device = 99 should exit 3"
[ "$(run info --gl-device 0)" = 0 ] || fail "--gl-device 0 should override the file"
printf '[gl]\nplatfrom = device\n' > "$DOPPLER_GL_CONFIG_DIR/config.ini"
[ "$(run info)" = 1 ] || fail "unknown key in settings file should exit 1"
grep -q "config.ini:2:.*platfrom" "$tmp/err" || fail "unknown key: message should give file:line and key"
rm -f "$DOPPLER_GL_CONFIG_DIR/config.ini"

# shaders not found: exit 1 and say where they were looked for
mkdir -p "$tmp/empty"
[ "$(DOPPLER_GL_DATADIR="$tmp/empty" run info)" = 1 ] || fail "info with no shaders should exit 1"
grep -q "$tmp/empty/glsl" "$tmp/err" || fail "no shaders: message should name the directory"

# --json is one JSON object (fully validated by the C test cli_info_json_is_valid)
[ "$(run info --json)" = 0 ] || fail "info --json"
[ "$(head -c 1 "$tmp/out")" = "{" ] || fail "info --json should print a JSON object"
exit $status
