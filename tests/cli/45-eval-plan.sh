#!/bin/sh
# 45-eval-plan.sh: `eval` with --tokens IDS and FILE, --logits-out / --hidden-out (sizes, and the llama
# fixture's logits against transformers'), --decode, -c overflow and out-of-vocabulary ids as clear usage
# errors, a hand-broken kernel path file giving the validation error in its documented form, and
# --print-plan naming who set each choice (profile, config, command line, the model manifest's default).
# Usage: 45-eval-plan.sh BINARY
set -u
bin=$1
fx=${DOPPLER_FIXTURES:-../shared/fixtures}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

m=$fx/models/llama
if [ ! -d "$m" ]; then
  [ "${CI:-}" = true ] && fail "fixtures missing at $fx"
  echo "skip: fixtures missing at $fx"; exit 0
fi
toks=$(sed -n '/"tokens"/,/]/p' "$m/reference.json" | grep -o '[0-9][0-9]*' | paste -sd, -)
[ -n "$toks" ] || fail "no tokens in $m/reference.json"

# worst |a - b| / max(1, max |b|) over the rows of two [rows][512] float32 files
worst() {
  od -An -v -f -w4 "$1" > "$tmp/a.txt"; od -An -v -f -w4 "$2" > "$tmp/b.txt"
  paste "$tmp/a.txt" "$tmp/b.txt" | awk -v V=512 '{ i = int((NR - 1) / V); d = $1 - $2; if (d < 0) d = -d;
    if (d > e[i]) e[i] = d; a = $2 < 0 ? -$2 : $2; if (a > mx[i]) mx[i] = a }
    END { w = 0; for (i in e) { r = e[i] / (mx[i] > 1 ? mx[i] : 1); if (r > w) w = r }; printf "%.3g\n", w }'
}

# all 40 positions in one prefill, f32 path: logits [40][512], hidden [layers + 1][40][64]
"$bin" eval -m "$m" --tokens "$toks" --kernel-path llama-f32 --logits-out "$tmp/l.f32" --hidden-out "$tmp/h.f32" \
  > "$tmp/out.txt" || fail "eval"
[ "$(wc -c < "$tmp/l.f32")" -eq $((40 * 512 * 4)) ] || fail "logits file size $(wc -c < "$tmp/l.f32")"
[ "$(wc -c < "$tmp/h.f32")" -eq $((4 * 40 * 64 * 4)) ] || fail "hidden file size $(wc -c < "$tmp/h.f32")"
grep -q "40 positions" "$tmp/out.txt" || fail "summary: $(cat "$tmp/out.txt")"
# 1e-3 as the conformance tests; measured 4e-4 here: the CLI computes rope frequencies in float32, while the
# fixtures were made by transformers with bf16-rounded rotary buffers (the C tests emulate that, ~1e-6)
w=$(worst "$tmp/l.f32" "$m/logits.f32")
echo "eval llama-f32 vs transformers: worst $w"
awk -v w="$w" 'BEGIN { exit !(w <= 1e-3) }' || fail "eval logits differ from transformers by $w"

# the same ids from a file (whitespace and commas), and fed one at a time (--decode)
echo "$toks" | tr ',' ' ' | sed 's/ 475 / 475,/g' > "$tmp/ids.txt"
"$bin" eval -m "$m" --tokens "$tmp/ids.txt" --kernel-path llama-f32 --logits-out "$tmp/l2.f32" > /dev/null \
  || fail "eval --tokens FILE"
cmp -s "$tmp/l.f32" "$tmp/l2.f32" || fail "--tokens FILE gives other logits than --tokens IDS"
"$bin" eval -m "$m" --tokens "$toks" --kernel-path llama-f32 --decode --logits-out "$tmp/l3.f32" > /dev/null \
  || fail "eval --decode"
w=$(worst "$tmp/l3.f32" "$m/logits.f32")
echo "eval --decode llama-f32 vs transformers: worst $w"
awk -v w="$w" 'BEGIN { exit !(w <= 1e-3) }' || fail "eval --decode logits differ from transformers by $w"

# -c overflow and bad ids: usage errors (exit 2) that say what happened; no logits file is left behind
"$bin" eval -m "$m" --tokens 1,81,213 -c 2 --logits-out "$tmp/over.f32" 2> "$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "-c overflow: exit $rc, expected 2"
grep -q "context length 2 exceeded: 0 tokens are already in the cache and 3 more were given (raise -c)" "$tmp/err" \
  || fail "-c overflow message: $(cat "$tmp/err")"
[ ! -e "$tmp/over.f32" ] || fail "-c overflow left a logits file"
"$bin" eval -m "$m" --tokens 1,81,213 -c 2 --decode 2> "$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "-c overflow (--decode): exit $rc, expected 2"
grep -q "context length 2 exceeded" "$tmp/err" || fail "-c overflow (--decode) message: $(cat "$tmp/err")"
"$bin" eval -m "$m" --tokens 1,999 2> "$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "out-of-vocabulary id: exit $rc, expected 2"
grep -q "token id 999 at position 1 is outside the vocabulary \[0, 512)" "$tmp/err" || fail "id message: $(cat "$tmp/err")"

# a hand-broken path: decode.steps[3] (rope_kv in llama-f32, after q, k and v with the input norm folded in)
# names a kernel that does not exist
kp=$(dirname "$0")/../../kernel-paths
sed '0,/"kernel": "rope_kv"/s//"kernel": "matmull"/' "$kp/llama-f32.json" > "$tmp/broken.json"
"$bin" eval -m "$m" --tokens 1,2 --kernel-path "$tmp/broken.json" 2> "$tmp/err"; rc=$?
[ $rc -ne 0 ] || fail "a broken path file ran"
grep -q "$tmp/broken.json: decode.steps\[3\].kernel: \"matmull\" is not in the registry (known: embed, rmsnorm, " "$tmp/err" \
  || fail "broken path message: $(cat "$tmp/err")"

# --print-plan: every choice with its source, low to high priority profile < config < command line
cat > "$tmp/cfg.json" <<EOF
{"runtime": {"inference": {"kernelPath": "llama-f32",
  "kernelPlan": {"strict": true, "kvDtype": "f32", "variants": {"attention": {"decode": "split"}}}}}}
EOF
"$bin" eval -m "$m" --tokens 1,2 --kernel-profile safe --config "$tmp/cfg.json" --kernel-plan '{"kvDtype": "f16"}' \
  --print-plan > "$tmp/plan.txt" || fail "--print-plan"
grep -q "profile  *safe  *(cli)" "$tmp/plan.txt" || fail "profile source: $(head -12 "$tmp/plan.txt")"
grep -q "kernelPath  *llama-f32  *(config cfg.json)" "$tmp/plan.txt" || fail "kernelPath source"
grep -q "kvDtype  *f16  *(cli --kernel-plan)" "$tmp/plan.txt" || fail "kvDtype: the command line must win"
grep -q "variants.attention.decode split  *(config" "$tmp/plan.txt" || fail "attention variant source"
grep -q "(profile safe)" "$tmp/plan.txt" || fail "no choice from the profile"
grep -q "attention/split" "$tmp/plan.txt" || fail "the resolved steps do not show the split attention"
grep -q "KV cache: f16" "$tmp/plan.txt" || fail "KV cache dtype"
# a converted model's manifest names its default path (inference.kernelPath): used when nothing else chose
# one; a path this build lacks falls back with a warning; a file name instead of an id is a load error
"$bin" convert "$m" "$tmp/cv" --quantize f16 --no-progress > /dev/null || fail "convert"
grep -q '"kernelPath":.*"llama-f16-native"' "$tmp/cv/manifest.json" || fail "convert wrote no inference.kernelPath"
sed -i 's/"kernelPath":[^"]*"[^"]*"/"kernelPath": "llama-f32"/' "$tmp/cv/manifest.json"
"$bin" eval -m "$tmp/cv" --tokens 1,2 --print-plan > "$tmp/plan.txt" || fail "--print-plan (manifest)"
grep -q "kernelPath  *llama-f32  *(model manifest)" "$tmp/plan.txt" || fail "manifest path: $(grep kernelPath "$tmp/plan.txt")"
"$bin" eval -m "$tmp/cv" --tokens 1,2 --kernel-path llama-f16-native --print-plan > "$tmp/plan.txt" || fail "plan"
grep -q "kernelPath  *llama-f16-native  *(cli)" "$tmp/plan.txt" || fail "the command line must beat the manifest"
sed -i 's/"kernelPath": "llama-f32"/"kernelPath": "llama-nosuch"/' "$tmp/cv/manifest.json"
"$bin" eval -m "$tmp/cv" --tokens 1,2 --print-plan > "$tmp/plan.txt" 2> "$tmp/err" || fail "missing manifest path"
grep -q "names kernel path llama-nosuch, which this build does not have" "$tmp/err" || fail "no warning: $(cat "$tmp/err")"
grep -q "kernelPath  *llama-f16-native  *(default for the weights)" "$tmp/plan.txt" || fail "no fallback to the default"
sed -i 's|"kernelPath": "llama-nosuch"|"kernelPath": "../../x.json"|' "$tmp/cv/manifest.json"
"$bin" eval -m "$tmp/cv" --tokens 1,2 2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "a file name as inference.kernelPath: exit $rc, expected 1"
grep -q "manifest.json: inference.kernelPath: expected a built-in kernel path id" "$tmp/err" || fail "$(cat "$tmp/err")"
echo "ok"
