#!/usr/bin/env bash
# The CLI as a user meets it: help for every command, `pneumo predict` in its
# three formats with a bad file among good ones, Grad-CAM overlays, `arch show`
# (also from an installed layout, PREFIX/bin + PREFIX/share/pneumo).
set -euo pipefail
bin=${PNEUMO_BIN:?PNEUMO_BIN not set}
src=${PNEUMO_SOURCE_DIR:?}
tmp=$(mktemp -d /tmp/pneumo-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for c in train evaluate predict export serve audit data arch bench; do
  "$bin" "$c" --help > "$tmp/help.txt" || { echo "pneumo $c --help failed"; exit 1; }
  grep -q "usage" "$tmp/help.txt" || { echo "pneumo $c --help prints no usage"; exit 1; }
done
if "$bin" no-such-command 2> /dev/null; then echo "an unknown command must fail"; exit 1; fi

"$bin" arch show mobilenetv3-small > "$tmp/arch.txt"
grep -q "total: 1075234 parameters" "$tmp/arch.txt"

# An installed layout: PREFIX/bin/pneumo finds its data in PREFIX/share/pneumo/
# (here an architecture that only that directory has); a build in the checkout does not.
mkdir -p "$tmp/prefix/bin" "$tmp/prefix/share/pneumo/arch"
cp "$bin" "$tmp/prefix/bin/pneumo"
cp "$src/models/arch/simple-cnn.cfg" "$tmp/prefix/share/pneumo/arch/only-installed.cfg"
"$tmp/prefix/bin/pneumo" arch show only-installed > /dev/null ||
  { echo "an installed pneumo does not read PREFIX/share/pneumo/arch"; exit 1; }
if "$bin" arch show only-installed 2> /dev/null; then echo "the checkout's pneumo read another prefix's data"; exit 1; fi

samples="$src/../shared/data/samples_orig"
if [ ! -d "$samples" ] || [ ! -f "$src/models/default.safetensors" ]; then
  echo "SKIP: ../shared/data/samples_orig or models/default.safetensors is absent, so predict cannot be tested"
  exit 77
fi
printf 'not an image' > "$tmp/bad.jpeg"
set +e
"$bin" predict --format csv "$samples/NORMAL" "$tmp/bad.jpeg" > "$tmp/out.csv"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "predict with a bad file must exit 1, got $rc"; exit 1; }
[ "$(grep -c '^"' "$tmp/out.csv")" -eq 11 ] || { echo "expected 10 images + 1 error row"; cat "$tmp/out.csv"; exit 1; }
grep "bad.jpeg" "$tmp/out.csv" | grep -qi "not a JPEG or PNG\|unknown\|unsupported\|format" || { echo "no readable error row"; cat "$tmp/out.csv"; exit 1; }

"$bin" predict --format json --gradcam "$tmp/cam" "$samples/PNEUMONIA" > "$tmp/out.json"
python3 - "$tmp/out.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 10, len(rows)
for r in rows:
    assert 0 <= r["probability"] <= 1 and r["label"] in ("NORMAL", "PNEUMONIA"), r
    assert r["label"] == ("PNEUMONIA" if r["probability"] >= r["threshold"] else "NORMAL"), r
PY
[ "$(ls "$tmp/cam"/*.gradcam.png | wc -l)" -eq 10 ]
"$bin" predict --threshold 0.0 "$samples/NORMAL/IM-0117-0001.jpeg" | grep -q PNEUMONIA
"$bin" predict --threshold 1.0 "$samples/PNEUMONIA/person1003_virus_1685.jpeg" | grep -q NORMAL
echo "cli: ok"
