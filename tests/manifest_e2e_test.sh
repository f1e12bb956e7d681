#!/usr/bin/env bash
# CSV manifests end to end, on images generated here (scripts/make_synthetic_dataset.py):
# data stats, data convert (folder -> manifest, same stats), bad rows failing with
# their line, train on a manifest (train rows only, split by patient_id, a sharded
# cache), evaluate --split test and --holdout, cv with patient-wise folds, and a
# manifest of 1-channel 16-bit PNGs (12-bit values, ChestX-ray14 style) training
# through the same path.
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
bin=${PNEUMO_BIN:?PNEUMO_BIN not set}
src=${PNEUMO_SOURCE_DIR:?}
py=/usr/bin/python3
$py -c 'import numpy' 2>/dev/null || { echo "SKIP: $py lacks numpy (python3-numpy), needed to make the images"; exit 77; }
scratch_dir manifest
fail() { echo "FAIL: $*"; exit 1; }
gen() { $py "$src/scripts/make_synthetic_dataset.py" "$@" --size 64 --jobs 1 2>> "$tmp/gen.err"; }

gen "$tmp/syn" 160 --format png --test-fraction 0.2
m="$tmp/syn/manifest.csv"
ntrain=$(grep -c ',train$' "$m")
ntest=$(grep -c ',test$' "$m")
[ "$ntrain" -gt 100 ] && [ "$ntest" -gt 10 ] || fail "generator split: $ntrain train, $ntest test rows"

# data stats on the manifest: its splits, patients from the patient_id column
"$bin" data stats "$m" > "$tmp/stats.txt" 2> "$tmp/stats.err"
[ "$(awk '$1 == "train" && $2 == "all" {print $3}' "$tmp/stats.txt")" = "$ntrain" ] || fail "stats: $(cat "$tmp/stats.txt")"
[ "$(awk '$1 == "test" && $2 == "all" {print $4}' "$tmp/stats.txt")" = "$((ntest / 2))" ] || fail "stats patients"
grep -q '^unreadable files: 0$' "$tmp/stats.txt" || fail "stats: unreadable files"

# data convert: the folder layout as a manifest (relative paths inside it) reads back the same
"$bin" data convert "$tmp/syn/images" --out "$tmp/syn/images/all.csv" > "$tmp/convert.txt" 2> "$tmp/convert.err"
grep -q "wrote $tmp/syn/images/all.csv: 160 images, 160 with a patient id" "$tmp/convert.txt" || fail "convert: $(cat "$tmp/convert.txt")"
[ "$(head -1 "$tmp/syn/images/all.csv")" = "path,label,patient_id" ] || fail "convert header"
sed -n 2p "$tmp/syn/images/all.csv" | grep -q '^NORMAL/IM-000000-0001.png,NORMAL,IM-000000$' || fail "convert first row"
grep -q ',BACTERIAL,' "$tmp/syn/images/all.csv" && grep -q ',VIRAL,' "$tmp/syn/images/all.csv" || fail "convert subtypes"
"$bin" data stats "$tmp/syn/images" | tail -n +2 > "$tmp/folder.txt"
"$bin" data stats "$tmp/syn/images/all.csv" | tail -n +2 > "$tmp/csv.txt"
diff "$tmp/folder.txt" "$tmp/csv.txt" || fail "folder and converted manifest differ"
rc=0; "$bin" data convert "$tmp/syn/images" --out "$tmp/x.txt" 2> "$tmp/convert2.err" || rc=$?
[ "$rc" -eq 2 ] || fail "convert --out without .csv: exit $rc"

# a bad row fails with its line
{ head -3 "$m"; echo 'images/NORMAL/nothere.png,NORMAL,p1,train'; } > "$tmp/syn/bad.csv"
rc=0; "$bin" data stats "$tmp/syn/bad.csv" > /dev/null 2> "$tmp/bad.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'bad.csv: line 4: .*nothere.png: No such file or directory' "$tmp/bad.err" || fail "bad row: $(cat "$tmp/bad.err")"

# train on the manifest: the train rows only, split patient-wise by patient_id
common=(--arch simple-cnn --input-size 64 --epochs 1 --batch 16 --precision fp32 --seed 3 --threads 2)
"$bin" train --data "$m" "${common[@]}" --patient-ids --out "$tmp/run" > "$tmp/train.txt" 2> "$tmp/train.err"
test -s "$tmp/run/model.safetensors" || fail "no model"
test -s "$tmp/run/cache-64.bin" && test -s "$tmp/run/cache-64.bin.shard0000" || fail "no sharded cache"
grep -q "patient-wise" "$tmp/train.txt" || fail "train: $(cat "$tmp/train.txt")"
$py - "$tmp/run/model.safetensors" "$m" "$ntrain" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
meta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
images = json.loads(meta["images"])
assert images["train"] + images["val"] == int(sys.argv[3]), images
assert json.loads(meta["recipe"])["data"] == sys.argv[2], meta["recipe"]
PY

# evaluate: the test rows (--split test), and train's held-out rows (--holdout)
"$bin" evaluate --model "$tmp/run/model.safetensors" --data "$m" --split test --json "$tmp/test.json" \
  > "$tmp/eval.txt" 2> "$tmp/eval.err"
$py -c 'import json,sys; n=json.load(open(sys.argv[1]))["n"]; assert n == int(sys.argv[2]), n' "$tmp/test.json" "$ntest"
"$bin" evaluate --model "$tmp/run/model.safetensors" --data "$m" --holdout --json "$tmp/holdout.json" \
  > "$tmp/eval2.txt" 2> "$tmp/eval2.err"
$py - "$tmp/holdout.json" "$tmp/run/val_predictions.csv" "$m" <<'PY'
import csv, json, sys
n = json.load(open(sys.argv[1]))["n"]
rows = list(csv.DictReader(open(sys.argv[2])))
assert n == len(rows), (n, len(rows))
ids = {r["patient_id"] for r in csv.DictReader(open(sys.argv[3]))}
assert all(r["patient"] in ids for r in rows), "--patient-ids: not the manifest's patient ids"
PY
rc=0; "$bin" evaluate --data "$m" --split test --holdout 2> "$tmp/eval3.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--split with --holdout: exit $rc"

# cv: every train row once out of fold, each patient in one fold, no patient id written
"$bin" cv --data "$m" "${common[@]}" --folds 2 --out "$tmp/cv" > "$tmp/cv.txt" 2> "$tmp/cv.err"
$py - "$tmp/cv/oof.csv" "$ntrain" "$m" <<'PY'
import csv, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == int(sys.argv[2]), len(rows)
# by default no manifest patient_id is written, only the patient's group number
ids = {r["patient_id"] for r in csv.DictReader(open(sys.argv[3]))}
assert all(re.fullmatch(r"group\d+", r["patient"]) and r["patient"] not in ids for r in rows), rows[0]
folds = {}
for r in rows:
    folds.setdefault(r["patient"], set()).add(r["fold"])
assert all(len(f) == 1 for f in folds.values()), "a patient in two folds"
assert len({f for fs in folds.values() for f in fs}) == 2
PY

# 1-channel 16-bit PNGs holding 12-bit values: read at full depth, trained through the same path
gen "$tmp/cxr" 64 --format png16 --test-fraction 0
file_bits=$($py -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d[24], d[25])' "$tmp/cxr/images/NORMAL/IM-000000-0001.png")
[ "$file_bits" = "16 0" ] || fail "generator did not write 16-bit gray PNGs ($file_bits)"
"$bin" train --data "$tmp/cxr/manifest.csv" "${common[@]}" --out "$tmp/run16" > "$tmp/train16.txt" 2> "$tmp/train16.err"
test -s "$tmp/run16/model.safetensors" || fail "no model from the 16-bit manifest"
echo "manifest end to end: ok"
