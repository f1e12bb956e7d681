#!/usr/bin/env bash
# End-to-end test of `pneumo serve` with the real model and curl: every
# endpoint and error status, Grad-CAM, the CSV export, and SIGTERM under load
# (every 200 answer's audit id must be in the database after shutdown).
# Skips (77) without models/default.safetensors, the dataset or curl.
set -euo pipefail
src=${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PNEUMO_BIN:-$src/build/pneumo}
model=$src/models/default.safetensors
val=${PNEUMO_SHARED_DIR:-$src/../shared}/data/kermany/val
skip() { echo "SKIP: $*"; exit 77; }
[ -f "$model" ] || skip "$model does not exist yet (train or install a model first)"
[ -d "$val" ] || skip "$val is absent"
command -v curl >/dev/null || skip "curl is not installed"
[ -x "$bin" ] || { echo "FAIL: no pneumo binary at $bin"; exit 1; }

tmp=$(mktemp -d /tmp/pneumo-serve-test.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$tmp/server.log" ] && sed 's/^/  server: /' "$tmp/server.log"; exit 1; }

jpeg=$(ls "$val"/PNEUMONIA/*.jpeg | head -1)
normal=$(ls "$val"/NORMAL/*.jpeg | head -1)
max_body=3000000
"$bin" serve --model "$model" --host 127.0.0.1 --port 0 --audit-db "$tmp/audit.db" --threads 2 \
    --max-body $max_body 2>"$tmp/server.log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/server.log" | head -1)
  [ -n "$port" ] && break
  kill -0 $server_pid 2>/dev/null || fail "server exited at startup"
  sleep 0.1
done
[ -n "$port" ] || fail "server did not start"
base=http://127.0.0.1:$port

# status METHOD PATH [curl args...] -> prints the HTTP status, body in $tmp/body
status() {
  local method=$1 path=$2; shift 2
  curl -s -o "$tmp/body" -w '%{http_code}' -X "$method" "$@" "$base$path"
}
expect() { # expect CODE METHOD PATH [curl args...]
  local code=$1; shift
  local got; got=$(status "$@")
  [ "$got" = "$code" ] || fail "$* -> $got, expected $code: $(head -c 300 "$tmp/body")"
  if [ "$code" -ge 400 ]; then
    python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"]==int(sys.argv[2]) and e["message"]' \
      "$tmp/body" "$code" || fail "$* error body: $(cat "$tmp/body")"
  fi
}
json_check() { python3 -c "import json,sys; d=json.load(open('$tmp/body')); $1" || fail "check '$1' on $(head -c 400 "$tmp/body")"; }

expect 200 GET /healthz
json_check 'assert d == {"status": "ok"}'
expect 200 GET /api/v1/model
json_check 'assert d["id"] and 0 <= d["threshold"] <= 1 and d["input_size"] > 0'
expect 200 GET /metrics

expect 200 POST /api/v1/predict -H 'Content-Type: image/jpeg' --data-binary @"$jpeg"
json_check 'assert 0 <= d["probability"] <= 1 and d["label"] in ("NORMAL", "PNEUMONIA") and d["audit"]["logged"] and d["image"]["width"] > 0 and "not a diagnostic device" in d["disclaimer"] and d["out_of_distribution"] is False'
# the bundled model has three classes: the answer also holds them, summing to 1, bacterial + viral = probability
json_check 'c = d["classes"]; assert abs(sum(c.values()) - 1) < 1e-4 and abs(c["BACTERIAL"] + c["VIRAL"] - d["probability"]) < 1e-4'
# The out-of-distribution gate: a blank image is refused (HTTP 200 without a
# probability, recorded in the audit log) unless the request sets force=1.
python3 - "$tmp/blank.png" <<'PY'
import struct, sys, zlib
w = h = 256
raw = b"".join(b"\x00" + b"\x80" * w for _ in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
expect 200 POST /api/v1/predict -H 'Content-Type: image/png' --data-binary @"$tmp/blank.png"
json_check 'assert d["out_of_distribution"] is True and "probability" not in d and "gradcam_png" not in d and d["label"] == "OUT-OF-DISTRIBUTION" and d["ood_reason"] and d["audit"]["logged"]'
python3 -c "import json; print(json.load(open('$tmp/body'))['audit']['id'])" > "$tmp/ood_id"
expect 200 POST '/api/v1/predict?force=1' -F "file=@$tmp/blank.png"
json_check 'assert d["out_of_distribution"] is True and 0 <= d["probability"] <= 1 and d["label"] in ("NORMAL", "PNEUMONIA")'
expect 400 POST '/api/v1/predict?force=maybe' -H 'Content-Type: image/png' --data-binary @"$tmp/blank.png"
expect 200 POST '/api/v1/predict?gradcam=1&threshold=0.25' -F "file=@$normal"
json_check 'import base64; assert base64.b64decode(d["gradcam_png"])[:8] == b"\x89PNG\r\n\x1a\n" and d["threshold"] == 0.25 and d["audit"]["logged"]'
expect 400 POST '/api/v1/predict?threshold=2' -H 'Content-Type: image/jpeg' --data-binary @"$jpeg"
head -c 2000 "$jpeg" > "$tmp/truncated.jpeg"
expect 400 POST /api/v1/predict -H 'Content-Type: image/jpeg' --data-binary @"$tmp/truncated.jpeg"
expect 415 POST /api/v1/predict -H 'Content-Type: text/plain' --data-binary 'hello'
echo 'not an image at all' > "$tmp/fake.jpeg"
expect 415 POST /api/v1/predict -F "file=@$tmp/fake.jpeg"
head -c $((max_body + 1)) /dev/zero > "$tmp/big.bin"
expect 413 POST /api/v1/predict -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/big.bin"
expect 404 GET /no/such/thing
expect 405 GET /api/v1/predict
expect 405 POST /healthz -d x

# SIGTERM under load: 4 clients post until the server goes away.
load_client() {
  local i=$1 n=0
  while :; do
    n=$((n + 1))
    code=$(curl -s -o "$tmp/load.$i.$n" -w '%{http_code}' -H 'Content-Type: image/jpeg' \
           --data-binary @"$jpeg" "$base/api/v1/predict") || break
    [ "$code" = 000 ] && break
    echo "$code" > "$tmp/load.$i.$n.code"
  done
}
for i in 1 2 3 4; do load_client $i & done
sleep 3
kill -TERM $server_pid
rc=0; wait $server_pid || rc=$?
server_pid=
[ $rc -eq 0 ] || fail "server exit status $rc after SIGTERM"
wait
grep -q 'audit log closed' "$tmp/server.log" || fail "no clean shutdown message"

"$bin" audit export --db "$tmp/audit.db" --csv > "$tmp/export.csv" || fail "audit export failed"
python3 - "$tmp" <<'PY' || fail "audit rows missing"
import csv, glob, json, sys
tmp = sys.argv[1]
rows = {int(r["id"]): r for r in csv.DictReader(open(f"{tmp}/export.csv", newline=""))}
answered = 0
for code_file in glob.glob(f"{tmp}/load.*.code"):
    if open(code_file).read().strip() != "200":
        continue
    d = json.load(open(code_file[:-5]))
    assert d["audit"]["logged"], d
    row = rows[d["audit"]["id"]]
    assert abs(float(row["probability"]) - d["probability"]) < 1e-5 and row["label"] == d["label"]
    answered += 1
assert answered > 0, "no request was answered during the load phase"
refused = rows[int(open(f"{tmp}/ood_id").read())]
assert refused["out_of_distribution"] == "1" and refused["label"] == "OUT-OF-DISTRIBUTION", refused
print(f"{answered} answered under load, all {answered} in the audit log ({len(rows)} rows in total)")
PY
"$bin" audit export --db "$tmp/audit.db" --since 2999-01-01 --csv | python3 -c 'import sys; assert len(sys.stdin.read().splitlines()) == 1' \
  || fail "--since in the future should export only the header"
echo "PASS"
