#!/bin/sh
# 70-tune-cache.sh: `tune` on sotu-6m converted to q8_0 (a whole tune with the shortest timing, -p 4 -r 1): the
# winners land in the tuner cache and the next plan uses them (--print-plan shows "tuner"), except where
# the command line chooses the variant or turns the tuner off; a second tune shows the cached results;
# `cache list|purge [--model M] [--json]` show and delete doppler-gl's files only (a foreign file, a file
# of ours by name but not by content, and a link survive purge). Usage: 70-tune-cache.sh BINARY
set -u
bin=$1
models=${DOPPLER_MODELS:-$(dirname "${DOPPLER_FIXTURES:-../shared/fixtures}")/models}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export XDG_CACHE_HOME="$tmp/xdg"
unset DOPPLER_GL_TUNER_DIR
c="$XDG_CACHE_HOME/doppler-gl"

# usage errors need no model or GL
"$bin" tune --kernels bogus 2>/dev/null; [ $? -eq 2 ] || fail "tune --kernels bogus is not exit 2"
"$bin" tune -r 0 2>/dev/null; [ $? -eq 2 ] || fail "tune -r 0 is not exit 2"
"$bin" tune --bogus 2>/dev/null; [ $? -eq 2 ] || fail "tune --bogus is not exit 2"
"$bin" cache 2>/dev/null; [ $? -eq 2 ] || fail "cache without an action is not exit 2"
"$bin" cache clean 2>/dev/null; [ $? -eq 2 ] || fail "cache clean is not exit 2"
"$bin" cache list --bogus 2>/dev/null; [ $? -eq 2 ] || fail "cache list --bogus is not exit 2"
"$bin" tune -m "$tmp/none" 2>"$tmp/err"; [ $? -eq 1 ] || fail "tune of a missing model is not exit 1"
grep -q "$tmp/none" "$tmp/err" || fail "missing model: message does not name it: $(cat "$tmp/err")"
"$bin" cache list > "$tmp/out" || fail "cache list of an empty cache"
grep -q "^0 files" "$tmp/out" || fail "empty cache: $(cat "$tmp/out")"

if [ ! -d "$models/sotu-6m" ]; then
  if [ "${CI:-}" = true ]; then fail "models missing at $models"; fi
  echo "skip: models missing at $models"; exit 0
fi
m="$tmp/sotu-q8"
"$bin" convert "$models/sotu-6m" "$m" --quantize q8_0 > /dev/null || fail "convert sotu-6m"

start=$(date +%s)
"$bin" tune -m "$m" -p 4 -r 1 --json > "$tmp/tune.json" 2>"$tmp/err" || fail "tune: $(cat "$tmp/err")"
echo "tune of sotu-6m q8_0: $(($(date +%s) - start)) s"
ls "$c/tuner/"*.json > /dev/null 2>&1 || fail "no tuner cache file under $c/tuner"
if command -v python3 > /dev/null; then
  python3 - "$tmp/tune.json" <<'PY' || fail "tune JSON check"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["doppler_gl_tuner"] == 1 and r["cached"] is False
kernels = {s["kernel"] for s in r["steps"]}
# the llvmpipe profile's decode attention is attention_fused (rope_kv folded in), which is not tuned
for k in ["matmul", "ffn_gate_up", "rmsnorm"]:
    assert k in kernels, "no %s step tuned: %s" % (k, kernels)
roles = {s["role"] for s in r["steps"]}
# the fused path folds the layer norms into q/k/v and gate_up; the final norm ("norm") stays a step
for role in ["q_proj", "k_proj", "o_proj", "down_proj", "lm_head", "gate_up_proj", "norm"]:
    assert role in roles, "role %s not tuned" % role
for s in r["steps"]:
    assert len(s["candidates"]) >= 3, "%s: too few candidates" % s["role"]
    assert s["candidates"][0]["status"] == "ok", "%s: baseline %s" % (s["role"], s["candidates"][0])
    w = s["winner"]
    ok = [c for c in s["candidates"] if c["status"] == "ok" and c["entry"] == w["entry"] and c["knobs"] == w["knobs"]]
    assert ok, "%s: winner %s is not a verified candidate" % (s["role"], w)
    assert s["winner_us"] > 0 and s["winner_us"] <= s["baseline_us"], s
PY
fi

# the next plan uses the winners; the command line and "tuner": false win over them
"$bin" eval -m "$m" --tokens 1,2 --print-plan > "$tmp/plan" 2>&1 || fail "print-plan: $(cat "$tmp/plan")"
grep -q "tuner results .* decode step winners from $c/tuner/" "$tmp/plan" || fail "plan names no tuner file: $(head -12 "$tmp/plan")"
n=$(sed -n '/^decode/,$p' "$tmp/plan" | grep -c ': tuner)')
# q, k, v, o_proj, gate_up, down_proj (layer 0), the final norm and the LM head
[ "$n" -ge 8 ] || fail "only $n decode steps set by the tuner"
sed -n '/^prefill/,/^decode/p' "$tmp/plan" | grep -q ': tuner)' && fail "prefill steps set by the tuner"
sed -n '/^decode/,$p' "$tmp/plan" | grep -q '(tuner)' || fail "no knob value marked (tuner)"
"$bin" eval -m "$m" --tokens 1,2 --print-plan --kernel-plan '{"tuner": false}' > "$tmp/plan2" 2>&1 || fail "tuner false"
grep -q 'tuner)' "$tmp/plan2" && fail "\"tuner\": false still uses the tuner"
"$bin" eval -m "$m" --tokens 1,2 --print-plan --kernel-plan '{"variants":{"matmul":{"decode":"main"}}}' \
  > "$tmp/plan3" 2>&1 || fail "explicit variant"
sed -n '/^decode/,$p' "$tmp/plan3" | grep 'matmul/' | grep -q ': tuner)' && fail "explicit matmul variant lost to the tuner"
sed -n '/^decode/,$p' "$tmp/plan3" | grep 'rmsnorm/' | grep -q ': tuner)' || fail "rmsnorm lost its tuned winner"
"$bin" eval -m "$m" --tokens 1,2,3 > /dev/null 2>"$tmp/err" || fail "eval with the tuned plan: $(cat "$tmp/err")"

# a second tune shows the cache; --force tunes again
"$bin" tune -m "$m" > "$tmp/out" 2>&1 || fail "second tune: $(cat "$tmp/out")"
grep -q "^cached tuner results" "$tmp/out" || fail "second tune did not use the cache: $(head -3 "$tmp/out")"

# cache list / purge
mkdir -p "$c/programs" "$c/compat"
echo keep > "$c/programs/notes.txt"
echo '{"hello": 1}' > "$c/tuner/0123456789abcdef0123456789abcdef.json"  # our name, not our content
ln -s "$tmp/sotu-q8/manifest.json" "$c/compat/$(printf '%064d' 0).json"
"$bin" cache list --json > "$tmp/list.json" || fail "cache list --json"
"$bin" cache list --model "$m" --json > "$tmp/listm.json" || fail "cache list --model"
if command -v python3 > /dev/null; then
  python3 - "$tmp/list.json" "$tmp/listm.json" "$m" <<'PY' || fail "cache list JSON check"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); m = sys.argv[3]
kinds = {e["kind"] for e in a["entries"]}
assert {"program", "tuner"} <= kinds, kinds
for e in a["entries"]:
    assert e["size"] > 0 and e["age_s"] >= 0 and e["path"].startswith(a["cache_dir"]), e
    assert not e["path"].endswith(("notes.txt", "0123456789abcdef0123456789abcdef.json")), e
assert all(e["kind"] != "program" for e in b["entries"]), "programs listed under --model"
assert any(e["kind"] == "tuner" for e in b["entries"]), "no tuner entry for the model"
assert any(e["kind"] == "compat" and e["path"].startswith(m) for e in b["entries"]), "no compat report beside the model"
PY
fi
"$bin" cache purge --model "$m" > "$tmp/out" || fail "purge --model: $(cat "$tmp/out")"
[ -e "$m/compat.json" ] && fail "purge --model left the model's compat report"
ls "$c/tuner/" | grep -qv '^0123456789abcdef0123456789abcdef.json$' && fail "purge --model left tuner results"
ls "$c/programs/" | grep -q '\.bin$' || fail "purge --model deleted program binaries"
"$bin" cache purge > "$tmp/out" || fail "purge: $(cat "$tmp/out")"
ls "$c/programs/" | grep -q '\.bin$' && fail "purge left program binaries"
[ -f "$c/programs/notes.txt" ] || fail "purge deleted a foreign file"
[ -f "$c/tuner/0123456789abcdef0123456789abcdef.json" ] || fail "purge deleted a file that is not ours"
[ -L "$c/compat/$(printf '%064d' 0).json" ] || fail "purge deleted a link"
[ -f "$m/manifest.json" ] || fail "purge followed a link"
"$bin" cache list > "$tmp/out" || fail "cache list after purge"
grep -q "^0 files" "$tmp/out" || fail "after purge: $(cat "$tmp/out")"
echo "ok"
