#!/usr/bin/env bash
# The out-of-distribution gate with the bundled model: >= 95% of the
# non-X-ray set (tests/ood/make_nonxray.py) refused, <= 1% of held-out chest
# X-rays refused (the model's own patient-wise validation split and the
# separate kermany/val folder), refused images answered without a
# probability unless --force. A model file without gate statistics gets them
# from `pneumo ood fit` on a copy first (the bundled file is never changed).
set -euo pipefail
. "$(dirname "$0")/testlib.sh"
kermany_or_skip "the out-of-distribution gate"
scratch_dir ood
py=/usr/bin/python3
"$py" -c 'import skimage.data, PIL' 2>/dev/null ||
  { echo "SKIP: $py lacks skimage (python3-skimage) needed for the non-X-ray set"; exit 77; }
model=$tmp/model.safetensors
cp "$src/models/default.safetensors" "$model"

# Gate statistics: the model's own, else fitted here.
if "$py" - "$model" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb")
header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
sys.exit(0 if any(k.endswith("ood/threshold") for k in header) else 1)
PY
then
  echo "the model carries gate statistics: using them"
else
  echo "the model has no gate statistics: fitting them on a copy"
  "$bin" ood fit --model "$model" --data "$data" --threads 2 --max-images 1500 2> "$tmp/fit.err" ||
    { echo "FAIL: pneumo ood fit"; exit 1; }
  cat "$tmp/fit.err"
fi

"$py" "$src/tests/ood/make_nonxray.py" "$tmp/nonxray" > /dev/null
"$bin" predict --model "$model" --threads 2 --format json "$tmp/nonxray" > "$tmp/nonxray.json" 2> "$tmp/predict.err"
"$bin" predict --model "$model" --threads 2 --format json "$data/../kermany/val" > "$tmp/val.json" 2>> "$tmp/predict.err"
# A single network's own validation split is held out from it; an ensemble's
# members each hold out another fold, so no split is held out from all of
# them (ood fit printed each member's held-out refusals above).
if "$py" -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); h=json.loads(f.read(struct.unpack("<Q",f.read(8))[0])); sys.exit("members" not in h["__metadata__"])' "$model"; then
  echo "ensemble: no split is held out from every member; held-out check on kermany/val only"
  echo '{"n": 0, "images_out_of_distribution": 0}' > "$tmp/holdout.json"
else
  "$bin" evaluate --model "$model" --threads 2 --data "$data" --holdout --json "$tmp/holdout.json" 2> "$tmp/eval.err" > /dev/null
fi
"$bin" predict --model "$model" --threads 2 --format json --force "$tmp/nonxray/syn_blank_black.png" > "$tmp/forced.json" 2>> "$tmp/predict.err"

"$py" - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
nonxray = json.load(open(f"{tmp}/nonxray.json"))
val = json.load(open(f"{tmp}/val.json"))
holdout = json.load(open(f"{tmp}/holdout.json"))
forced = json.load(open(f"{tmp}/forced.json"))[0]
assert len(nonxray) >= 60 and all("error" not in r for r in nonxray), "the non-X-ray set did not decode"
kept = [r["file"].rsplit("/", 1)[-1] for r in nonxray if not r["out_of_distribution"]]
refused = len(nonxray) - len(kept)
print(f"non-X-ray images refused: {refused}/{len(nonxray)} ({100 * refused / len(nonxray):.1f}%); answered: {kept}")
assert refused >= 0.95 * len(nonxray), "fewer than 95% of the non-X-ray images refused"
for r in nonxray:
    assert r["out_of_distribution"] == ("probability" not in r), r  # refused: no probability
    assert r["ood_score"] is not None and r["ood_score"] >= 0, r     # the gate's statistics were used
val_refused = [r["file"] for r in val if r["out_of_distribution"]]
print(f"kermany/val chest X-rays refused: {len(val_refused)}/{len(val)} {val_refused}")
assert len(val) >= 16 and len(val_refused) <= 0.01 * len(val), "kermany/val chest X-rays refused"
assert all(0 <= r["probability"] <= 1 for r in val if not r["out_of_distribution"])
n, out = holdout["n"], holdout["images_out_of_distribution"]
if n:
    print(f"held-out split chest X-rays refused: {out}/{n} ({100 * out / n:.2f}%)")
    assert n > 500 and out <= 0.01 * n, "more than 1% of the held-out chest X-rays refused"
assert forced["out_of_distribution"] and 0 <= forced["probability"] <= 1, "--force gives the probability"
PY
echo PASS
