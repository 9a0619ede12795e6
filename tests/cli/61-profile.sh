#!/bin/sh
# 61-profile.sh: `profile` end to end on the tiny llama fixture (converted to f32 here): JSON with per-kernel
# and per-op rows for prefill and decode (sensible calls per token), a well-formed SVG written atomically,
# the tables; bad arguments exit 2, a missing model exits 1 naming the path. Usage: 61-profile.sh BINARY
set -u
bin=$1
fx=${DOPPLER_FIXTURES:-../shared/fixtures}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for args in "-p x" "-n -1" "--bogus" "-c 0" "--svg"; do
  # shellcheck disable=SC2086
  "$bin" profile -m "$tmp/none" $args 2>/dev/null; rc=$?
  [ $rc -eq 2 ] || fail "profile $args: exit $rc, expected 2"
done
"$bin" profile 2>/dev/null; [ $? -eq 2 ] || fail "profile without -m is not exit 2"
"$bin" profile -m "$tmp/none" -p 0 -n 0 2>/dev/null; [ $? -eq 2 ] || fail "-p 0 -n 0 is not exit 2"
"$bin" profile -m "$tmp/no-such-model" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "missing model: exit $rc, expected 1"
grep -q "$tmp/no-such-model" "$tmp/err" || fail "missing model: message does not name the path: $(cat "$tmp/err")"

if [ ! -d "$fx/models/llama" ]; then
  echo "skip: fixtures missing at $fx"; exit 0
fi
"$bin" convert "$fx/models/llama" "$tmp/m" --quantize f32 > /dev/null || fail "convert fixture"

"$bin" profile -m "$tmp/m" -p 8 -n 4 --json --svg "$tmp/p.svg" > "$tmp/p.json" 2>"$tmp/err" \
  || fail "profile --json --svg: $(cat "$tmp/err")"
[ "$(head -c 4 "$tmp/p.svg")" = "<svg" ] || fail "SVG does not start with <svg"
[ "$(tail -n 1 "$tmp/p.svg")" = "</svg>" ] || fail "SVG does not end with </svg>"
grep -q "decode per kernel" "$tmp/p.svg" && grep -q "prefill per op" "$tmp/p.svg" || fail "SVG lacks its sections"
ls -a "$tmp" | grep -q '\.tmp' && fail "temporary file left next to the SVG"
if command -v python3 > /dev/null; then
  python3 - "$tmp/p.json" "$tmp/p.svg" <<'PY' || fail "profile JSON/SVG check"
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
ET.parse(sys.argv[2])  # well-formed XML
for k in ["device", "model", "kernel_path", "timing_source", "git_commit"]:
    assert r.get(k), "missing " + k
for phase, tokens in (("prefill", 8), ("decode", 4)):
    p = r[phase]
    assert p["tokens"] == tokens and p["gpu_ms"] > 0 and p["dispatches"] > 0, p
    for key, name in (("kernels", "kernel"), ("ops", "op")):
        rows = p[key]
        assert rows and all(x[name] and x["calls"] > 0 and x["total_ms"] >= 0 for x in rows), rows
        assert abs(sum(x["share"] for x in rows) - 1) < 1e-6, "shares do not sum to 1"
        assert sum(x["calls"] for x in rows) == p["dispatches"], (phase, key, p["dispatches"])
    ops = {x["op"]: x for x in p["ops"]}
    assert "matmul" in ops and "attention" in ops, ops.keys()
# one LM head and one argmax per decode token; one attention per layer per token (3 layers)
d = {x["op"]: x for x in r["decode"]["ops"]}
assert d["lm_head"]["calls_per_token"] == 1, d["lm_head"]
assert d["attention"]["calls_per_token"] == 3, d["attention"]
PY
else
  grep -q '"kernels"' "$tmp/p.json" && grep -q '"ops"' "$tmp/p.json" || fail "profile JSON lacks rows"
fi

"$bin" profile -m "$tmp/m" -p 4 -n 2 > "$tmp/table.txt" 2>&1 || fail "profile table: $(cat "$tmp/table.txt")"
grep -q "^decode: 2 tokens" "$tmp/table.txt" && grep -q "calls/tok" "$tmp/table.txt" || fail "table: $(cat "$tmp/table.txt")"
"$bin" profile -m "$tmp/m" -p 4 -n 2 --svg "$tmp/no/such/dir/p.svg" > /dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "unwritable --svg: exit $rc, expected 1"
echo ok
