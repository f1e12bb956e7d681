#!/usr/bin/env bash
# Trains each candidate recipe and evaluates it on the patient-wise validation
# split it held out (same split for all: val-fraction 0.2, seed 42), writing
# runs/<recipe>/ and a comparison table runs/comparison.md.
# Usage: scripts/compare-models.sh [recipe ...]   (default: all of recipes/)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PNEUMO_BIN:-build/pneumo}
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(recipes/*.recipe)
mkdir -p runs
for r in "${recipes[@]}"; do
  name=$(basename "${r%.*}")
  start=$(date +%s)
  "$bin" train --recipe "$r" --out "runs/$name" > "runs/$name.train.txt" 2> "runs/$name.log"
  echo "$(( $(date +%s) - start ))" > "runs/$name.seconds"
  "$bin" evaluate --model "runs/$name/model.safetensors" --data "$(sed -n 's/^data *= *//p' "$r")" \
    --holdout --json "runs/$name/holdout.json" > "runs/$name.eval.txt" 2>&1
  echo "$name: done in $(cat "runs/$name.seconds") s" >&2
done
/usr/bin/python3 - "${recipes[@]}" <<'PY' | tee runs/comparison.md
import json, sys, os
print("| recipe | train s | ROC AUC (95% CI) | sensitivity (95% CI) | specificity (95% CI) | balanced acc. (95% CI) | threshold |")
print("|---|---|---|---|---|---|---|")
for r in sys.argv[1:]:
    n = os.path.splitext(os.path.basename(r))[0]
    m = json.load(open(f"runs/{n}/holdout.json"))
    s = open(f"runs/{n}.seconds").read().strip()
    f = lambda k: "%.4f (%.4f-%.4f)" % (m[k], *m["ci95"][k])
    print(f"| {n} | {s} | {f('roc_auc')} | {f('sensitivity')} | {f('specificity')} | {f('balanced_accuracy')} | {m['threshold']:.3f} |")
PY
