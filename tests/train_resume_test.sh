#!/usr/bin/env bash
# A run stopped mid-epoch and resumed must end with exactly the same model as
# an uninterrupted run: same weights bit for bit, same per-epoch history.
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
kermany_or_skip "resuming training"
scratch_dir resume
make_subset "$data" "$tmp/data" 25 48
opts=(--data "$tmp/data" --arch simple-cnn --input-size 48 --epochs 3 --batch 16 --lr 0.001
      --precision fp32 --seed 11 --threads 2)

"$bin" train "${opts[@]}" --out "$tmp/a" > /dev/null 2> "$tmp/a.err"
set +e
"$bin" train "${opts[@]}" --out "$tmp/b" --stop-after 5 > /dev/null 2> "$tmp/b1.err"
rc=$?
set -e
[ $rc -eq 130 ] || { echo "a stopped run should exit 130, got $rc"; exit 1; }
test -s "$tmp/b/checkpoint.safetensors"
test ! -e "$tmp/b/model.safetensors"
"$bin" train "${opts[@]}" --out "$tmp/b" --resume > /dev/null 2> "$tmp/b2.err"

python3 - "$tmp/a" "$tmp/b" <<'PY'
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n]); hdr.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in hdr.items()}
a, b = (tensors(d + "/model.safetensors") for d in sys.argv[1:3])
assert a.keys() == b.keys()
diff = [k for k in a if a[k] != b[k]]
assert not diff, "tensors differ after resume: %s" % diff[:5]
ha, hb = ([l.rsplit(",", 1)[0] for l in open(d + "/history.csv")] for d in sys.argv[1:3])
assert ha == hb, (ha, hb)
print("resumed run identical to the uninterrupted one: %d tensors, %d history rows" % (len(a), len(ha) - 1))
PY
