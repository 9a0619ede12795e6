#!/bin/sh
# GGUF files through the CLI: `inspect` (text and --json) on the fixture GGUFs, a GGUF named without
# .gguf (found by its magic), --verify refused on a GGUF, and `eval --perplexity` on two chunks plus its
# usage errors (exit 2). The full-text perplexity figures are checked by tests/conformance/test_gguf_llamacpp.c.
set -u
bin=$1
fx=${DOPPLER_FIXTURES:-../shared/fixtures}
models=${DOPPLER_MODELS:-../shared/models}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" inspect --help | grep -q GGUF || fail "inspect --help does not mention GGUF"
"$bin" eval --help | grep -q -- --perplexity || fail "eval --help lacks --perplexity"
"$bin" eval -m x --perplexity y --tokens 1 2>/dev/null; [ $? -eq 2 ] || fail "--perplexity with --tokens is not exit 2"
"$bin" eval -m x --chunks 3 --tokens 1 2>/dev/null; [ $? -eq 2 ] || fail "--chunks without --perplexity is not exit 2"
"$bin" eval -m x --perplexity y --chunks 0 2>/dev/null; [ $? -eq 2 ] || fail "--chunks 0 is not exit 2"

g=$fx/gguf/sotu-6m.Q4_K_M.gguf
if [ ! -f "$g" ]; then
  echo "skip: fixtures missing at $fx"
  exit 0
fi
"$bin" inspect "$g" > "$tmp/insp.txt" || fail "inspect $g"
grep -q 'general.architecture .*"llama"' "$tmp/insp.txt" || fail "architecture missing: $(head -20 "$tmp/insp.txt")"
grep -q 'blk.2.ffn_down.weight .*q8_0' "$tmp/insp.txt" || fail "blk.2.ffn_down.weight not listed as q8_0"
grep -q 'blk.0.ffn_down.weight .*q5_0' "$tmp/insp.txt" || fail "blk.0.ffn_down.weight not listed as q5_0"
"$bin" inspect "$g" --json > "$tmp/insp.json" || fail "inspect --json"
python3 - "$tmp/insp.json" <<'PY' || fail "inspect --json content"
import json, sys
d = json.load(open(sys.argv[1]))
t = {x["name"]: x for x in d["tensors"]}
assert len(t) == 56, len(t)
assert t["token_embd.weight"]["type"] == "q6_K", t["token_embd.weight"]
assert t["token_embd.weight"]["shape"] == [256, 8192], t["token_embd.weight"]
PY
cp "$g" "$tmp/model.bin"
"$bin" inspect "$tmp/model.bin" | grep -q 'gguf version: 3' || fail "GGUF not recognized by its magic"
"$bin" inspect "$g" --verify 2>/dev/null; [ $? -eq 2 ] || fail "--verify on a GGUF is not exit 2"

"$bin" eval -m "$fx/gguf/sotu-6m.Q8_0.gguf" --perplexity "$models/sotu-6m/valid.txt" -c 64 --chunks 2 --json \
  > "$tmp/ppl.json" || fail "eval --perplexity"
python3 - "$tmp/ppl.json" <<'PY' || fail "perplexity JSON: $(cat "$tmp/ppl.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kernel_path"] == "llama-q8_0"
assert d["tokens"] == 107682 and d["ctx"] == 64 and d["chunks"] == 2 and d["scored"] == 2 * 31, d
assert 5 < d["perplexity"] < 1000 and d["perplexity_error"] > 0, d
PY
"$bin" eval -m "$fx/gguf/sotu-6m.Q8_0.gguf" --perplexity "$models/sotu-6m/valid.txt" -c 64 --chunks 1 \
  | grep -q '^Final estimate: PPL = [0-9.]* +/- [0-9.]*$' || fail "text output lacks the Final estimate line"
echo ok
