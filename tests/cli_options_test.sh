#!/usr/bin/env bash
# One checked option parser for every subcommand: a bad value, an unknown
# option or a missing value is a usage error (exit 2) that names the option
# and what it expects, never a silent default. Recipe files go through the
# same parser. Nothing here needs data: parsing fails before any work starts.
set -euo pipefail
bin=${PNEUMO_BIN:?PNEUMO_BIN not set}
tmp=$(mktemp -d /tmp/pneumo-opts-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect_usage_error "NEEDLE" ARGS...: exit status 2 and NEEDLE on stderr.
expect_usage_error() {
  local needle=$1; shift
  local rc=0
  "$bin" "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [ "$rc" -ne 2 ] || ! grep -qF -- "$needle" "$tmp/err"; then
    echo "FAIL: pneumo $* -> exit $rc, stderr: $(head -c 300 "$tmp/err") (wanted exit 2 and '$needle')"
    failures=$((failures + 1))
  fi
}

# train
expect_usage_error "--epochs 'abc': expected an integer" train --data "$tmp" --epochs abc
expect_usage_error "--epochs '3.5'" train --data "$tmp" --epochs=3.5
expect_usage_error "--lr '-1': expected a number in (0" train --data "$tmp" --lr -1
expect_usage_error "--lr '0'" train --data "$tmp" --lr 0
expect_usage_error "--lr 'nan'" train --data "$tmp" --lr nan
expect_usage_error "--threads '0'" train --data "$tmp" --threads 0
expect_usage_error "--batch '12x'" train --data "$tmp" --batch 12x
expect_usage_error "--val-fraction '1'" train --data "$tmp" --val-fraction 1
expect_usage_error "--seed '-3'" train --data "$tmp" --seed -3
expect_usage_error "--optimizer 'nonsense': expected one of sgd|adam|adamw" train --data "$tmp" --optimizer nonsense
expect_usage_error "--schedule 'linear'" train --data "$tmp" --schedule linear
expect_usage_error "--precision 'fp16'" train --data "$tmp" --precision fp16
expect_usage_error "--resize 'crop'" train --data "$tmp" --resize crop
expect_usage_error "--class-weights '1,x'" train --data "$tmp" --class-weights 1,x
expect_usage_error "--class-weights '1,2,3'" train --data "$tmp" --class-weights 1,2,3
expect_usage_error "unknown option '--epoch'" train --data "$tmp" --epoch 3
expect_usage_error "--epochs needs a value" train --data "$tmp" --epochs
expect_usage_error "--resume takes no value" train --data "$tmp" --resume=yes
# a recipe is checked by the same parser, with file:line in the message
printf 'arch = simple-cnn\n# a comment\nepochs = abc\n' > "$tmp/bad.recipe"
expect_usage_error "bad.recipe:3: --epochs 'abc'" train --data "$tmp" --recipe "$tmp/bad.recipe"
printf 'epochz = 3\n' > "$tmp/typo.recipe"
expect_usage_error "typo.recipe:1: unknown option 'epochz'" train --recipe "$tmp/typo.recipe"
printf 'epochs 3\n' > "$tmp/noeq.recipe"
expect_usage_error "noeq.recipe:1: expected key = value" train --recipe "$tmp/noeq.recipe"
expect_usage_error "No such file" train --recipe "$tmp/missing.recipe"
# the old .cfg extension is read, with a warning
printf 'epochs = abc\n' > "$tmp/old.cfg"
expect_usage_error "old.cfg: .cfg is the extension of architecture files" train --recipe "$tmp/old.cfg"
expect_usage_error "old.cfg:1: --epochs 'abc'" train --recipe "$tmp/old.cfg"
# every shipped recipe parses: the only error is the bad option given after it
src=${PNEUMO_SOURCE_DIR:?}
for r in "$src"/recipes/*.recipe; do
  expect_usage_error "pneumo train: --epochs 'x': expected" train --recipe "$r" --epochs x
  if grep -q "recipe" "$tmp/err" || [ "$(wc -l < "$tmp/err")" -ne 1 ]; then
    echo "FAIL: $r does not parse cleanly: $(cat "$tmp/err")"
    failures=$((failures + 1))
  fi
done

# evaluate
expect_usage_error "--threads '0'" evaluate --data "$tmp" --threads 0
expect_usage_error "--threshold '1.5': expected a number in [0, 1]" evaluate --data "$tmp" --threshold 1.5
expect_usage_error "--threshold 'high'" evaluate --data "$tmp" --threshold high
expect_usage_error "unknown option '--modle'" evaluate --data "$tmp" --modle x

# predict
expect_usage_error "--format 'nonsense': expected one of table|csv|json" predict --format nonsense x.jpg
expect_usage_error "--threshold '-0.1'" predict --threshold -0.1 x.jpg
expect_usage_error "--threads 'two'" predict --threads two x.jpg

# export
expect_usage_error "--format 'tflite': expected one of onnx" export --format tflite m.safetensors --out m.onnx
expect_usage_error "--out needs a value" export --format onnx m.safetensors --out
expect_usage_error "needs --format onnx, one MODEL and --out FILE" export m.safetensors --out m.onnx
expect_usage_error "needs --format onnx, one MODEL and --out FILE" export --format onnx a b --out m.onnx

# serve
expect_usage_error "--port '70000'" serve --port 70000
expect_usage_error "--port 'http'" serve --port http
expect_usage_error "--threads '0'" serve --threads=0
expect_usage_error "--max-body '0'" serve --max-body 0
expect_usage_error "unexpected argument 'extra'" serve extra

# audit
expect_usage_error "unknown option '--bogus'" audit export --bogus --csv
expect_usage_error "--db needs a value" audit export --csv --db

# data
expect_usage_error "--n 'abc'" data grid --data "$tmp" --out "$tmp/g.png" --n abc
expect_usage_error "--size '4'" data bench --data "$tmp" --size 4
expect_usage_error "--threads '0'" data bench --data "$tmp" --threads 0
expect_usage_error "--erase '2'" data grid --data "$tmp" --out "$tmp/g.png" --erase 2

# arch
expect_usage_error "--classes 'x'" arch show simple-cnn --classes x
expect_usage_error "--channels '4'" arch show simple-cnn --channels 4

# bench
expect_usage_error "--mode 'nonsense': expected one of train|infer" bench --mode nonsense
expect_usage_error "--batch '0'" bench --batch 0
expect_usage_error "--iters '-1'" bench --iters -1
expect_usage_error "--precision 'int8'" bench --precision int8

# good values still parse: `arch show` runs with both option spellings
"$bin" arch show simple-cnn --channels 1 --input-size=64 --classes 2 > "$tmp/arch.txt"
grep -q "total:" "$tmp/arch.txt" || { echo "FAIL: arch show with valid options"; failures=$((failures + 1)); }

if [ "$failures" -ne 0 ]; then
  echo "$failures option check(s) failed"
  exit 1
fi
echo "all option checks passed"
