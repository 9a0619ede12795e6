#!/bin/sh
# convert and inspect end to end: a fixture to q4_k_m, verify, --force, a corrupted shard (exit 4), GGUF
# errors on an empty .gguf, a GGUF converted with every tensor kept as stored, usage errors (exit 2), and a
# random model with every layout option.
set -u
bin=$1
fx=${DOPPLER_FIXTURES:-../shared/fixtures}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" convert --help | grep -q -- --q4k-layout || fail "convert --help lacks --q4k-layout"
"$bin" inspect --help | grep -q -- --verify || fail "inspect --help lacks --verify"
"$bin" convert "$fx/models/llama" "$tmp/x" --quantize q9 2>/dev/null; [ $? -eq 2 ] || fail "bad --quantize is not exit 2"
"$bin" convert "$fx/models/llama" 2>/dev/null; [ $? -eq 2 ] || fail "missing OUTPUT is not exit 2"
"$bin" inspect 2>/dev/null; [ $? -eq 2 ] || fail "inspect without MODEL is not exit 2"

if [ -d "$fx/models/llama" ]; then
  "$bin" convert "$fx/models/llama" "$tmp/llama" -q q4_k_m > "$tmp/out.txt" || fail "convert llama q4_k_m"
  grep -q "total" "$tmp/out.txt" || fail "no summary"
  "$bin" inspect "$tmp/llama" --verify > "$tmp/insp.txt" || fail "inspect --verify on a fresh model"
  grep -q "kernel path:  llama-q4k-fused" "$tmp/insp.txt" || fail "kernel path missing from inspect"
  "$bin" inspect "$tmp/llama" --json | grep -q '"kernelPath":.*"llama-q4k-fused"' || fail "inspect --json"
  "$bin" convert "$fx/models/llama" "$tmp/llama" -q f16 2>"$tmp/err.txt"; rc=$?
  [ $rc -ne 0 ] || fail "overwrote without --force"
  grep -q -- "--force" "$tmp/err.txt" || fail "refusal does not mention --force"
  "$bin" convert "$fx/models/llama" "$tmp/llama" -q f16 --force > /dev/null || fail "--force"
  "$bin" inspect "$tmp/llama" | grep -q "quantization: f16" || fail "--force did not replace the model"
  # flip one byte of the shard: sizes agree, the hash does not
  printf 'X' | dd of="$tmp/llama/shard-00000.bin" bs=1 seek=300 conv=notrunc 2>/dev/null
  "$bin" inspect "$tmp/llama" --verify > /dev/null 2>"$tmp/err.txt"; rc=$?
  [ $rc -eq 4 ] || fail "hash mismatch gave exit $rc, not 4"
  grep -q "SHA-256" "$tmp/err.txt" || fail "mismatch message lacks SHA-256"
  ls -a "$tmp" | grep -q '\.tmp-' && fail "temporary folder left behind"
else
  echo "skip: fixtures missing at $fx"
fi

: > "$tmp/m.gguf"
"$bin" inspect "$tmp/m.gguf" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "bad magic" "$tmp/err.txt" || fail "empty gguf inspect: exit $rc, $(cat "$tmp/err.txt")"
if [ -f "$fx/gguf/sotu-6m.Q8_0.gguf" ]; then
  "$bin" inspect "$fx/gguf/sotu-6m.Q8_0.gguf" > "$tmp/g.txt" || fail "inspect a GGUF"
  grep -q "q8_0\|Q8_0" "$tmp/g.txt" || fail "GGUF listing lacks q8_0 tensors"
fi
# convert model.gguf OUTPUT keeps every tensor as stored (no requantizing): the Q4_K_M mix survives
if [ -f "$fx/gguf/sotu-6m.Q4_K_M.gguf" ]; then
  "$bin" convert "$fx/gguf/sotu-6m.Q4_K_M.gguf" "$tmp/kg" --no-progress > "$tmp/kg.txt" || fail "convert a GGUF"
  grep -q "(types kept as stored)" "$tmp/kg.txt" || fail "GGUF convert did not keep types: $(head -1 "$tmp/kg.txt")"
  for t in q4_k q5_0 q6_k q8_0; do grep -q "^  $t " "$tmp/kg.txt" || fail "GGUF convert lost its $t tensors"; done
  grep -q "^  f16 " "$tmp/kg.txt" && fail "GGUF convert produced f16 tensors"
  "$bin" inspect "$tmp/kg" --verify > /dev/null || fail "inspect --verify of the converted GGUF"
  "$bin" convert "$fx/gguf/sotu-6m.Q4_K_M.gguf" "$tmp/kg2" --transpose-weights --no-progress > /dev/null 2> "$tmp/kg.err"
  [ $? -eq 2 ] && grep -q "requantize" "$tmp/kg.err" || fail "keep + --transpose-weights must be refused (exit 2)"
fi

cat > "$tmp/config.json" <<'JSON'
{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 256, "intermediate_size": 512,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 300,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true,
 "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
JSON
"$bin" convert --random "$tmp/config.json" "$tmp/rand" -q q4_k_m --q4k-layout column_wise --transpose-weights \
  --fuse-gate-up --shard-size 64K --seed 3 --threads 2 > /dev/null || fail "random convert with layouts"
"$bin" inspect "$tmp/rand" --verify > "$tmp/insp.txt" || fail "inspect random"
grep -q "q4k column_wise, weights column, transposed, gate_up fused" "$tmp/insp.txt" || fail "layout line: $(grep layout "$tmp/insp.txt")"
grep -q "family:       qwen3" "$tmp/insp.txt" || fail "family"

# a mixture of experts: experts, active parameters per token (only routed experts), memory at -c
"$bin" convert "$fx/models/mixtral" "$tmp/mx" --quantize f16 --no-progress > /dev/null || fail "convert mixtral"
"$bin" inspect "$tmp/mx" -c 1024 > "$tmp/mx.txt" || fail "inspect mixtral"
grep -q "experts:      8, 2 used per token" "$tmp/mx.txt" || fail "experts line"
# 546752 params, experts 3 layers x 8 x 3 x 96 x 64: 6 of 8 unread per token
grep -q "per token:    214976 active params" "$tmp/mx.txt" || fail "active params: $(grep 'per token' "$tmp/mx.txt")"
# KV: 2 (K,V) x 3 layers x 2 kv heads x 16 x 1024 positions x 2 bytes = 0.375 MiB
grep -q "+ 0.38 MiB KV cache (f16) at -c 1024" "$tmp/mx.txt" || fail "memory line: $(grep 'GPU memory' "$tmp/mx.txt")"
echo ok
