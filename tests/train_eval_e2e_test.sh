#!/usr/bin/env bash
# Tiny end-to-end run: train a small model on a 120-image subset for 2 epochs,
# evaluate it on the 16-image val split with a report, and check that the
# report files exist and the metrics JSON agrees with its confusion matrix.
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
kermany_or_skip "the end-to-end train/evaluate run"
scratch_dir e2e
make_subset "$data" "$tmp/data" 20 60

"$bin" train --data "$tmp/data" --arch simple-cnn --input-size 64 --epochs 2 --batch 16 \
  --lr 0.001 --precision fp32 --seed 7 --resize letterbox --out "$tmp/run" > "$tmp/train.txt" 2> "$tmp/train.err"
test -s "$tmp/run/model.safetensors"
test -s "$tmp/run/history.csv"
test -s "$tmp/run/history.png"
grep -aq '"resize":"letterbox"' "$tmp/run/model.safetensors" || { echo "model does not record its letterbox preprocessing"; exit 1; }
[ "$(wc -l < "$tmp/run/history.csv")" -eq 3 ]   # header + 2 epochs

"$bin" evaluate --model "$tmp/run/model.safetensors" --data "$data/val" \
  --json "$tmp/metrics.json" --report "$tmp/report" > "$tmp/eval.txt" 2> "$tmp/eval.err"
for f in report.html metrics.json confusion_matrix.png roc_curve.png pr_curve.png calibration.png history.png samples.png; do
  test -s "$tmp/report/$f" || { echo "missing report file $f"; exit 1; }
done
grep -q "not a diagnostic device" "$tmp/report/report.html"

python3 - "$tmp/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
c = m["confusion"]
n = c["tp"] + c["fp"] + c["tn"] + c["fn"]
assert n == m["n"] == 16, (n, m["n"])
def close(a, b): return abs(a - b) < 1e-6
assert close(m["accuracy"], (c["tp"] + c["tn"]) / n), m
if c["tp"] + c["fn"]: assert close(m["sensitivity"], c["tp"] / (c["tp"] + c["fn"]))
if c["tn"] + c["fp"]: assert close(m["specificity"], c["tn"] / (c["tn"] + c["fp"]))
for k in ("accuracy", "sensitivity", "specificity", "roc_auc"):
    assert k in m["ci95"], k
assert 0 < m["threshold"] < 1
print("metrics.json consistent with its confusion matrix:", c)
PY
echo "end-to-end train/evaluate: ok"
