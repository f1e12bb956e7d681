#!/usr/bin/env bash
# Validation is called patient-wise only when file names carry patient ids:
# with anonymous names `pneumo train` warns, says "image-wise" in its summary
# and stores that in the model's metrics.
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
kermany_or_skip "the validation split kind"
scratch_dir splitkind
make_subset "$data" "$tmp/named" 25 24
# the same images under names without a patient id
for cls in NORMAL PNEUMONIA; do
  mkdir -p "$tmp/anon/train/$cls"
  i=0
  for f in "$tmp/named/train/$cls"/*; do
    ln -s "$(readlink "$f")" "$tmp/anon/train/$cls/scan_$i.jpeg"
    i=$((i + 1))
  done
done
opts=(--arch simple-cnn --input-size 48 --epochs 1 --batch 16 --precision fp32 --seed 3 --threads 2)

"$bin" train --data "$tmp/anon" "${opts[@]}" --out "$tmp/a" > "$tmp/a.out" 2> "$tmp/a.err"
grep -q "warning: 48 of 48 images have no patient id.*image-wise" "$tmp/a.err" ||
  { echo "no image-wise warning"; exit 1; }
grep -q "validation (image-wise split of train" "$tmp/a.out" || { echo "summary not image-wise"; cat "$tmp/a.out"; exit 1; }
grep -aqF 'split\":\"image-wise validation split' "$tmp/a/model.safetensors" ||
  { echo "model metrics do not say image-wise"; exit 1; }

"$bin" train --data "$tmp/named" "${opts[@]}" --out "$tmp/b" > "$tmp/b.out" 2> "$tmp/b.err"
if grep -q "no patient id" "$tmp/b.err"; then echo "warned although every name has a patient id"; exit 1; fi
grep -q "validation (patient-wise split of train" "$tmp/b.out" || { echo "summary not patient-wise"; cat "$tmp/b.out"; exit 1; }
echo "split kinds reported as expected"
