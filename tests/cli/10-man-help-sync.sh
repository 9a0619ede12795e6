#!/bin/sh
# 10-man-help-sync.sh: for the program and every registered subcommand, every long option in --help must
# be documented in man/doppler-gl.1 (GLOBAL OPTIONS, or the command's marked section), and every option
# the man page documents there must appear in --help. Usage: 10-man-help-sync.sh BINARY
set -u
bin=$1
man=$(dirname "$0")/../../man/doppler-gl.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# Long options in a text, one per line, sorted and unique (roff's \- is turned into -).
longopts() { sed 's/\\-/-/g' | grep -o -- '--[a-z0-9][a-z0-9-]*' | sort -u; }

compare() { # $1 what, $2 help options file, $3 man options file
    for o in $(comm -23 "$2" "$3"); do
        echo "FAIL: $1: $o is in --help but not in the man page"; status=1
    done
    for o in $(comm -13 "$2" "$3"); do
        echo "FAIL: $1: $o is in the man page but not in --help"; status=1
    done
}

"$bin" --help > "$tmp/help" || { echo "FAIL: doppler-gl --help exited non-zero"; exit 1; }
longopts < "$tmp/help" > "$tmp/h"
awk '/^\.SH GLOBAL OPTIONS/ {on=1; next} /^\.SH/ {on=0} on' "$man" | longopts > "$tmp/m"
compare "doppler-gl" "$tmp/h" "$tmp/m"

cmds=$(awk '/^Commands:/ {on=1; next} on && /^$/ {on=0} on {print $1}' "$tmp/help")
[ -n "$cmds" ] || { echo "FAIL: no commands listed by doppler-gl --help"; exit 1; }
for c in $cmds; do
    if ! "$bin" "$c" --help > "$tmp/help-$c" 2>&1; then
        echo "FAIL: doppler-gl $c --help exited non-zero"; status=1; continue
    fi
    longopts < "$tmp/help-$c" > "$tmp/h"
    if ! grep -q "^\.\\\\\" ---- section: $c ----" "$man"; then
        echo "FAIL: $c: man page has no '.\\\" ---- section: $c ----' section"; status=1; continue
    fi
    awk -v s=".\\\\\" ---- section: $c ----" -v e=".\\\\\" ---- end: $c ----" \
        '$0 == s {on=1; next} $0 == e {on=0} on' "$man" | longopts > "$tmp/m"
    if [ ! -s "$tmp/m" ] && [ -s "$tmp/h" ]; then
        echo "FAIL: $c: its man section documents no options"; status=1
    fi
    compare "doppler-gl $c" "$tmp/h" "$tmp/m"
    echo "checked $c: $(wc -l < "$tmp/h") long options"
done
exit $status
