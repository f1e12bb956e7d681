#!/usr/bin/env bash
# DICOM end to end: files made here from ../shared X-rays with img2dcm and
# dcmodify (patient name/ID/birth date/accession planted) go through
# `pneumo predict` (table, CSV, JSON), `pneumo evaluate` on a folder of .dcm
# files, and `pneumo serve` (application/dicom and multipart). The
# acquisition warnings (Modality CT, lateral view, multi-frame) must show in
# every output; no planted patient attribute, nor the DICOM file name, may
# reach the audit log, the metrics or any log line.
# Skips (77) without the model, the dataset, curl or DCMTK's tools.
set -euo pipefail
src=${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PNEUMO_BIN:-$src/build/pneumo}
model=$src/models/default.safetensors
val=${PNEUMO_SHARED_DIR:-$src/../shared}/data/kermany/val
skip() { echo "SKIP: $*"; exit 77; }
[ -f "$model" ] || skip "$model does not exist"
[ -d "$val" ] || skip "$val is absent"
command -v curl >/dev/null || skip "curl is not installed"
for t in img2dcm dcmodify; do command -v $t >/dev/null || skip "$t missing (scripts/install-deps.sh test installs dcmtk)"; done
[ -x "$bin" ] || { echo "FAIL: no pneumo binary at $bin"; exit 1; }

tmp=$(mktemp -d /tmp/pneumo-dicom-test.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
secrets='Doe\^Jane|PID-98765|19700101|ACC-55555'

# make_dcm JPEG OUT [dcmodify args...]: a DICOM of the JPEG with the planted patient data.
make_dcm() {
  local jpeg=$1 out=$2; shift 2
  img2dcm -q "$jpeg" "$out"
  dcmodify -q -nb -i "(0010,0010)=Doe^Jane" -i "(0010,0020)=PID-98765" -i "(0010,0030)=19700101" \
    -i "(0008,0050)=ACC-55555" -i "(0008,0060)=DX" -i "(0018,0015)=CHEST" -i "(0018,5101)=PA" "$@" "$out"
}

mkdir -p "$tmp/set/NORMAL" "$tmp/set/PNEUMONIA"
for cls in NORMAL PNEUMONIA; do
  ls "$val/$cls"/*.jpeg | sort | head -3 | while read -r f; do
    make_dcm "$f" "$tmp/set/$cls/$(basename "$f" .jpeg).dcm"
  done
done
normal_jpeg=$(ls "$val"/NORMAL/*.jpeg | sort | head -1)
make_dcm "$normal_jpeg" "$tmp/Doe_Jane.dcm"
make_dcm "$normal_jpeg" "$tmp/ct.dcm" -m "(0008,0060)=CT"
make_dcm "$normal_jpeg" "$tmp/lateral.dcm" -m "(0018,5101)=LL"

# predict: same probability as the JPEG, warnings only where due, in all formats.
"$bin" predict --format json "$normal_jpeg" "$tmp/Doe_Jane.dcm" "$tmp/ct.dcm" "$tmp/lateral.dcm" \
  > "$tmp/predict.json" 2> "$tmp/predict.err" || fail "predict failed: $(cat "$tmp/predict.err")"
python3 - "$tmp/predict.json" <<'PY' || fail "predict JSON: $(cat "$tmp/predict.json")"
import json, sys
rows = {r["file"].rsplit("/", 1)[-1]: r for r in json.load(open(sys.argv[1]))}
jpeg = next(r for n, r in rows.items() if n.endswith(".jpeg"))
for name in ("Doe_Jane.dcm", "ct.dcm", "lateral.dcm"):
    assert abs(rows[name]["probability"] - jpeg["probability"]) < 0.02, (name, rows[name], jpeg)
assert rows["Doe_Jane.dcm"]["warnings"] == "", rows["Doe_Jane.dcm"]
assert "Modality is CT" in rows["ct.dcm"]["warnings"], rows["ct.dcm"]
assert "not a frontal chest" in rows["lateral.dcm"]["warnings"], rows["lateral.dcm"]
PY
"$bin" predict --format csv "$tmp/ct.dcm" > "$tmp/predict.csv" 2>>"$tmp/predict.err"
grep -q 'Modality is CT' "$tmp/predict.csv" || fail "CSV lacks the warning: $(cat "$tmp/predict.csv")"
"$bin" predict "$tmp/lateral.dcm" > "$tmp/predict.txt" 2>>"$tmp/predict.err"
grep -q 'not a frontal chest' "$tmp/predict.txt" || fail "table lacks the warning: $(cat "$tmp/predict.txt")"
# A folder contributes its .dcm files.
"$bin" predict --format csv "$tmp/set" > "$tmp/folder.csv" 2>>"$tmp/predict.err"
[ "$(grep -c '\.dcm"' "$tmp/folder.csv")" = 6 ] || fail "folder scan: $(cat "$tmp/folder.csv")"

# evaluate on a folder of DICOM files, one of them a CT.
cp "$tmp/ct.dcm" "$tmp/set/NORMAL/ct.dcm"
"$bin" evaluate --data "$tmp/set" --json "$tmp/eval.json" > "$tmp/eval.out" 2> "$tmp/eval.err" \
  || fail "evaluate failed: $(cat "$tmp/eval.err")"
grep -q '7 images evaluated, 0 unreadable, 1 with warnings' "$tmp/eval.err" || fail "evaluate: $(cat "$tmp/eval.err")"
grep -q 'ct.dcm: .*Modality is CT' "$tmp/eval.err" || fail "evaluate does not name the warning"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["images_with_warnings"] == 1, d' "$tmp/eval.json" \
  || fail "evaluate JSON lacks images_with_warnings"

# serve: raw application/dicom and multipart; audit keeps the hash only, even
# with --audit-client-info (which keeps other uploads' file names).
"$bin" serve --model "$model" --host 127.0.0.1 --port 0 --audit-db "$tmp/audit.db" --threads 1 \
  --audit-client-info 2>"$tmp/server.log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/server.log" | head -1)
  [ -n "$port" ] && break
  kill -0 $server_pid 2>/dev/null || fail "server exited at startup: $(cat "$tmp/server.log")"
  sleep 0.1
done
[ -n "$port" ] || fail "server did not start"
base=http://127.0.0.1:$port
post() { curl -s -o "$tmp/body" -w '%{http_code}' -X POST "$@"; }
code=$(post -H 'Content-Type: application/dicom' --data-binary @"$tmp/ct.dcm" "$base/api/v1/predict")
[ "$code" = 200 ] || fail "application/dicom -> $code: $(cat "$tmp/body")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert any("Modality is CT" in w for w in d["warnings"]) and d["audit"]["logged"], d' \
  "$tmp/body" || fail "API answer lacks the warning: $(cat "$tmp/body")"
code=$(post -F "file=@$tmp/Doe_Jane.dcm;type=application/dicom" "$base/api/v1/predict?gradcam=1")
[ "$code" = 200 ] || fail "multipart DICOM -> $code: $(cat "$tmp/body")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["warnings"] == [] and d["gradcam_png"], d' \
  "$tmp/body" || fail "multipart answer: $(head -c 300 "$tmp/body")"
# A JPEG 2000 DICOM (the img2dcm file relabelled): a clear error, not a crash.
python3 - "$tmp/Doe_Jane.dcm" "$tmp/j2k.dcm" <<'PY'
import sys
data = open(sys.argv[1], "rb").read().replace(b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.4.90")
open(sys.argv[2], "wb").write(data)
PY
code=$(post -F "file=@$tmp/j2k.dcm" "$base/api/v1/predict")
case "$code" in 4??) ;; *) fail "JPEG 2000 DICOM -> $code: $(cat "$tmp/body")";; esac
grep -q 'unsupported transfer syntax' "$tmp/body" || fail "JPEG 2000 message: $(cat "$tmp/body")"
curl -s "$base/metrics" > "$tmp/metrics.txt"
kill -TERM $server_pid
wait $server_pid || fail "server exit status $? after SIGTERM"
server_pid=

"$bin" audit export --db "$tmp/audit.db" --csv > "$tmp/export.csv" || fail "audit export failed"
python3 - "$tmp/export.csv" "$tmp/ct.dcm" "$tmp/Doe_Jane.dcm" <<'PY' || fail "audit rows: $(cat "$tmp/export.csv")"
import csv, hashlib, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 2, rows
hashes = {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in sys.argv[2:]}
assert {r["image_sha256"] for r in rows} == hashes, rows
assert all(r["file_name"] == "" for r in rows), rows
PY
# The attribute values nowhere; the DICOM file name not in what the server keeps.
for f in "$tmp/export.csv" "$tmp/metrics.txt" "$tmp/server.log" "$tmp/predict.err" "$tmp/eval.err" \
         "$tmp/eval.out" "$tmp/predict.json" "$tmp/predict.csv" "$tmp/predict.txt"; do
  if grep -Eq "$secrets" "$f"; then fail "patient data in $(basename "$f"): $(grep -E "$secrets" "$f" | head -3)"; fi
done
for f in "$tmp/export.csv" "$tmp/metrics.txt" "$tmp/server.log"; do
  if grep -q "Doe_Jane" "$f"; then fail "DICOM file name in $(basename "$f")"; fi
done
echo "PASS"
