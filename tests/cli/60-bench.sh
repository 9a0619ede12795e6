#!/bin/sh
# 60-bench.sh: `bench` end to end on the tiny llama fixture (converted to f32 here) with tiny -p/-n/-r:
# the JSON result file lands in --out with every required field, --json prints the same object, a second
# run does not replace the first, --no-save writes nothing; bad arguments exit 2, a missing model exits 1
# naming the path. Usage: 60-bench.sh BINARY
set -u
bin=$1
fx=${DOPPLER_FIXTURES:-../shared/fixtures}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# usage errors (exit 2) need no model
for args in "-p -1" "-r 0" "-r 101" "-n x" "--bogus" "-c 0" "--bandwidth-mib -3" "--sync-every 257"; do
  # shellcheck disable=SC2086
  "$bin" bench -m "$tmp/none" $args 2>/dev/null; rc=$?
  [ $rc -eq 2 ] || fail "bench $args: exit $rc, expected 2"
done
"$bin" bench 2>/dev/null; [ $? -eq 2 ] || fail "bench without -m is not exit 2"
"$bin" bench -m "$tmp/none" -p 0 -n 0 2>/dev/null; [ $? -eq 2 ] || fail "-p 0 -n 0 is not exit 2"
"$bin" bench -m "$tmp/none" -p 64 -n 8 -c 16 2>/dev/null; [ $? -eq 2 ] || fail "-c below -p is not exit 2"
"$bin" bench --help | grep -q -- --bandwidth-mib || fail "--help lacks --bandwidth-mib"

"$bin" bench -m "$tmp/no-such-model" -p 4 -n 2 --no-save 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "missing model: exit $rc, expected 1"
grep -q "$tmp/no-such-model" "$tmp/err" || fail "missing model: message does not name the path: $(cat "$tmp/err")"

if [ ! -d "$fx/models/llama" ]; then
  echo "skip: fixtures missing at $fx"; exit 0
fi
"$bin" convert "$fx/models/llama" "$tmp/m" --quantize f32 > /dev/null || fail "convert fixture"

"$bin" bench -m "$tmp/m" -p 8 -n 4 -r 2 --bandwidth-mib 4 --out "$tmp/res" --json > "$tmp/out.json" \
  2>"$tmp/err" || fail "bench --json: $(cat "$tmp/err")"
n=$(ls "$tmp/res" | wc -l)
[ "$n" -eq 1 ] || fail "expected one result file in --out, found $n: $(ls -a "$tmp/res")"
f=$(ls "$tmp/res"/*.json)
case $(basename "$f") in
  [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]-*-m-f32.json) ;;
  *) fail "result file name $(basename "$f") is not <date>-<gpu>-<model>-<quant>.json" ;;
esac
ls -a "$tmp/res" | grep -q '\.tmp' && fail "temporary file left in --out"

if command -v python3 > /dev/null; then
  python3 - "$f" "$tmp/out.json" <<'PY' || fail "result JSON check"
import json, sys
r = json.load(open(sys.argv[1]))
printed = json.load(open(sys.argv[2]))
assert r == printed, "--json output differs from the saved file"
def need(path, pred=lambda v: v is not None and v != ""):
    v = r
    for k in path.split("."):
        assert isinstance(v, dict) and k in v, "missing " + path
        v = v[k]
    assert pred(v), "bad value for %s: %r" % (path, v)
pos = lambda v: isinstance(v, (int, float)) and v > 0
for k in ["device.renderer", "device.vendor", "device.gl_version", "device.driver", "device.platform",
          "model.name", "quant.label", "kernel_path", "git_commit", "date", "timing_source"]:
    need(k)
for k in ["model.layers", "model.hidden", "model.heads", "model.kv_heads", "model.head_dim", "model.ffn",
          "model.vocab", "model.params", "memory.gpu_bytes_peak", "memory.weight_bytes",
          "per_token.dispatches_decode", "per_token.dispatches_prefill_pass", "roofline.bandwidth_gbps_best",
          "roofline.bandwidth_gbps_median", "roofline.decode_bytes_per_token", "roofline.decode_gbps",
          "roofline.decode_share", "ttft.cold_ms", "ttft.warm_ms", "pp.tok_s_mean", "tg.tok_s_mean"]:
    need(k, pos)
assert r["model"]["layers"] == 3 and r["model"]["hidden"] == 64 and r["model"]["vocab"] == 512, r["model"]
assert r["quant"]["label"] == "f32"
assert r["per_token"]["readback_bytes_decode"] == 4, r["per_token"]
# the warm-up repeats prefill passes until two agree within 10%, at least 2 and at most 4
assert 2 <= r["pp"]["warmup_passes"] <= 4, r["pp"]
assert [t["test"] for t in r["tests"]] == ["pp8", "tg4"], r["tests"]
for t in r["tests"]:
    assert len(t["samples_tok_s"]) == 2 and all(x > 0 for x in t["samples_tok_s"]), t
    assert t["tok_s_stddev"] >= 0
assert r["memory"]["gpu_bytes_peak"] >= r["memory"]["weight_bytes"]
assert r["roofline"]["bandwidth_gbps_best"] >= r["roofline"]["bandwidth_gbps_median"]
# the cold run compiled programs; the warm one found them in the caches the cold run left
assert r["ttft"]["cold"]["programs_compiled"] > 0, r["ttft"]
if r["ttft"]["warm"]["program_cache"]:
    assert r["ttft"]["warm"]["programs_loaded"] > 0, r["ttft"]
PY
else
  for k in '"renderer"' '"gl_version"' '"kernel_path"' '"git_commit"' '"decode_share"' '"cold_ms"' '"tok_s_mean"'; do
    grep -q "$k" "$f" || fail "result lacks $k"
  done
  [ "$(head -c 1 "$f")" = "{" ] && [ "$(tail -c 2 "$f" | head -c 1)" = "}" ] || fail "result is not one JSON object"
fi

# a second run keeps the first result; the table names the tests and the file
"$bin" bench -m "$tmp/m" -p 8 -n 4 -r 1 --no-ttft --sync-every 2 --bandwidth-mib 1 --out "$tmp/res" > "$tmp/table.txt" 2>&1 \
  || fail "second bench: $(cat "$tmp/table.txt")"
[ "$(ls "$tmp/res" | wc -l)" -eq 2 ] || fail "second run replaced the first: $(ls "$tmp/res")"
grep -q "tg4" "$tmp/table.txt" && grep -q "pp8" "$tmp/table.txt" || fail "table lacks the tests"
grep -q "saved .*-2\.json" "$tmp/table.txt" || fail "table does not name the second file: $(cat "$tmp/table.txt")"
grep -q '"sync_every":.*2' "$(ls "$tmp"/res/*-2.json)" || fail "second result does not record --sync-every 2"
"$bin" bench -m "$tmp/m" -p 0 -n 2 -r 1 --no-ttft --bandwidth-mib 0 --no-save --out "$tmp/res2" > /dev/null 2>&1 \
  || fail "--no-save run"
[ ! -e "$tmp/res2" ] || fail "--no-save created $tmp/res2"
echo ok
