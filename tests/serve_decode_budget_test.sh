#!/usr/bin/env bash
# Decode cost is bounded before decoding, and decoding streams: `pneumo serve`
# (bundled model, 2 prediction slots, loopback) gets
#  * headers announcing more pixels than the 25,000,000 budget (the issue's
#    10000x10000 RGBA 16-bit PNG among them) -> 413 with a JSON error naming
#    the limit, decided from the header alone (the files hold no pixel data;
#    for a DICOM, its Rows and Columns);
#  * 8 concurrent uploads, with Grad-CAM, of the costliest accepted PNG:
#    5000x5000 RGBA 16-bit -> every one answers 200, and the server's peak RSS
#    grows by less than RSS_BOUND_MB over its steady state. Decoded whole, two
#    such images in flight need ~100 MB each (measured: +223 MB); streamed
#    row by row into the down-scale they need a few rows (measured: +19 MB).
# Exit 77 (skipped) without the model, python3 or curl.
set -u
RSS_BOUND_MB=96

src="${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${PNEUMO_BIN:-}"
skip() { echo "serve_decode_budget_test: SKIP: $*"; exit 77; }
fail() { echo "serve_decode_budget_test: FAIL: $*"; [ -f "$tmp/server.log" ] && tail -n 20 "$tmp/server.log"; exit 1; }
[ -f "$src/models/default.safetensors" ] || skip "no model at $src/models/default.safetensors"
command -v python3 >/dev/null || skip "python3 is not installed"
command -v curl >/dev/null || skip "curl is not installed"
[ -n "$bin" ] && [ -x "$bin" ] || { echo "serve_decode_budget_test: FAIL: PNEUMO_BIN='$bin' is not executable"; exit 1; }

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# PNGs written row by row: "full" has pixel data (compressible, so it fits an
# upload), "header" stops after IHDR.
cat >"$tmp/png.py" <<'EOF'
import struct, sys, zlib
kind, w, h, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)))
    if kind == "full":
        z = zlib.compressobj(6)
        parts = []
        for y in range(h):
            period = b"".join(struct.pack(">HHHH", v, v, v, 0xffff)
                              for v in ((x * 900 + y * 7) & 0xffff for x in range(64)))
            parts.append(z.compress(b"\x00" + (period * (w // 64 + 1))[: w * 8]))
        parts.append(z.flush())
        f.write(chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
EOF
python3 "$tmp/png.py" full 5000 5000 "$tmp/worst.png" || fail "cannot write the test PNG"
python3 "$tmp/png.py" header 5001 5000 "$tmp/over.png"
python3 "$tmp/png.py" header 10000 10000 "$tmp/bomb.png"
# A DICOM (explicit VR little endian) announcing 5000 x 5001 16-bit pixels,
# with 16 bytes of pixel data: the budget is decided from Rows and Columns.
cat >"$tmp/dicom.py" <<'EOF'
import struct, sys
def el(group, elem, vr, value):
    if vr in (b"OB", b"OW"):
        return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value
def us(v):
    return struct.pack("<H", v)
meta = el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0")
data = (el(0x0008, 0x0060, b"CS", b"DX") + el(0x0028, 0x0002, b"US", us(1)) +
        el(0x0028, 0x0004, b"CS", b"MONOCHROME2 ") + el(0x0028, 0x0010, b"US", us(5001)) +
        el(0x0028, 0x0011, b"US", us(5000)) + el(0x0028, 0x0100, b"US", us(16)) +
        el(0x0028, 0x0101, b"US", us(12)) + el(0x0028, 0x0102, b"US", us(11)) +
        el(0x0028, 0x0103, b"US", us(0)) + el(0x7fe0, 0x0010, b"OW", bytes(16)))
with open(sys.argv[1], "wb") as f:
    f.write(bytes(128) + b"DICM" + el(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta))) + meta + data)
EOF
python3 "$tmp/dicom.py" "$tmp/over.dcm"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
(cd "$src" && exec "$bin" serve --port "$port" --threads 2 --audit-db "$tmp/audit.db") >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 240); do
    kill -0 "$server_pid" 2>/dev/null || fail "pneumo serve exited during start-up"
    curl -sf -o /dev/null "$url/healthz" && break
    sleep 0.25
done
curl -sf -o /dev/null "$url/healthz" || fail "$url/healthz did not answer within 60 s"

for f in over.png bomb.png over.dcm; do
    code=$(curl -s -o "$tmp/$f.json" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
        --data-binary @"$tmp/$f" "$url/api/v1/predict")
    [ "$code" = 413 ] || fail "$f: expected 413, got $code: $(cat "$tmp/$f.json")"
    grep -q '"code":413' "$tmp/$f.json" && grep -q '25000000 pixels' "$tmp/$f.json" \
        || fail "$f: the 413 is not a JSON error naming the limit: $(cat "$tmp/$f.json")"
    echo "ok - $f refused from its header: $(cat "$tmp/$f.json")"
done

# Steady state: the model's buffers exist after one prediction with Grad-CAM.
curl -s -o /dev/null -H 'Content-Type: image/png' --data-binary @"$tmp/worst.png" "$url/api/v1/predict?gradcam=1&force=1"
base_kb=$(awk '/^VmRSS/{print $2}' "/proc/$server_pid/status")
pids=()
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o "$tmp/out$i.json" -w '%{http_code}' --max-time 600 -H 'Content-Type: image/png' \
        --data-binary @"$tmp/worst.png" "$url/api/v1/predict?gradcam=1&force=1" >"$tmp/code$i" &
    pids+=($!)
done
wait "${pids[@]}"
peak_kb=$(awk '/^VmHWM/{print $2}' "/proc/$server_pid/status")
for i in 1 2 3 4 5 6 7 8; do
    [ "$(cat "$tmp/code$i")" = 200 ] || fail "upload $i answered $(cat "$tmp/code$i"): $(head -c 300 "$tmp/out$i.json")"
    grep -q '"gradcam_png"' "$tmp/out$i.json" || fail "upload $i has no Grad-CAM overlay"
done
echo "ok - 8 concurrent 5000x5000 RGBA 16-bit uploads all answered 200"
growth_mb=$(( (peak_kb - base_kb) / 1024 ))
echo "server RSS: steady ${base_kb} kB, peak ${peak_kb} kB, growth ${growth_mb} MB (bound ${RSS_BOUND_MB} MB)"
if [ "${PNEUMO_SANITIZED:-0}" = 1 ]; then
    echo "serve_decode_budget_test: RSS bound not asserted under AddressSanitizer (its quarantine keeps freed memory)"
    exit 0
fi
[ "$growth_mb" -lt "$RSS_BOUND_MB" ] || fail "peak RSS grew by ${growth_mb} MB, bound ${RSS_BOUND_MB} MB"
echo "serve_decode_budget_test: all checks passed"
