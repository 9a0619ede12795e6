#!/bin/sh
# tokenize: sotu-6m's README example with BOS, the JSON and --ids forms, stdin, and usage/file errors.
set -eu
bin=$1
models=${DOPPLER_MODELS:-../shared/models}
if [ ! -d "$models/sotu-6m" ]; then echo "skip: $models/sotu-6m missing"; [ "${CI:-}" = true ] && exit 1; exit 0; fi
m=$models/sotu-6m
out=$("$bin" tokenize -m "$m" --special --ids "The state of the Union is")
[ "$out" = "[0, 5608, 1100, 268, 260, 1135, 328]" ] || { echo "ids: $out"; exit 1; }
out=$("$bin" tokenize -m "$m" --ids "The state of the Union is")
[ "$out" = "[5608, 1100, 268, 260, 1135, 328]" ] || { echo "ids without BOS: $out"; exit 1; }
out=$("$bin" tokenize -m "$m" "The state")
printf '%s\n' "$out" | grep -q "^  5608 -> 'The'$" || { echo "pieces: $out"; exit 1; }
printf '%s\n' "$out" | grep -q "^  1100 -> ' state'$" || { echo "pieces: $out"; exit 1; }
out=$("$bin" tokenize --tokenizer "$m/tokenizer.json" --json "The<|endoftext|>")
[ "$out" = '{"ids": [5608, 0], "pieces": ["The", "<|endoftext|>"], "count": 2}' ] || { echo "json: $out"; exit 1; }
out=$("$bin" tokenize --tokenizer "$m/tokenizer.json" --ids --no-parse-special "<|endoftext|>")
[ "$out" != "[0]" ] || { echo "--no-parse-special still parsed the special token"; exit 1; }
out=$("$bin" tokenize -m "$m" --count -f "$m/valid.txt")
[ "$out" = 107681 ] || { echo "valid.txt count: $out"; exit 1; }
out=$(printf 'The state' | "$bin" tokenize -m "$m" --ids -f -)
[ "$out" = "[5608, 1100]" ] || { echo "stdin: $out"; exit 1; }
set +e
"$bin" tokenize "no model" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "missing -m should exit 2"; exit 1; }
"$bin" tokenize -m "$m" --bogus x >/dev/null 2>&1; [ $? -eq 2 ] || { echo "unknown option should exit 2"; exit 1; }
"$bin" tokenize -m /nonexistent x >/dev/null 2>&1; [ $? -eq 1 ] || { echo "missing folder should exit 1"; exit 1; }
"$bin" tokenize --help | grep -q -- "--no-parse-special" || { echo "help lacks --no-parse-special"; exit 1; }
echo ok
