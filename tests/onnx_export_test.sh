#!/usr/bin/env bash
# pneumo export --format onnx, for the bundled model and a random-init model
# of every architecture in models/arch/: the ONNX checker (Debian python3-onnx)
# accepts each graph, and ONNX Runtime (npm onnxruntime-node, its bundled CPU
# library) computes the probabilities `pneumo predict` reports within 1e-4 on
# validation X-rays resized to the model's input size, as one batch; the same
# for an ensemble graph of three models against the mean of their predictions.
# Also: a layer the exporter cannot map fails naming it, and usage errors.
# Skips (77) without ../shared, python3-onnx or tests/onnx/node_modules.
set -euo pipefail
bin=${PNEUMO_BIN:?PNEUMO_BIN not set}
fixtures=${PNEUMO_ONNX_FIXTURES:?PNEUMO_ONNX_FIXTURES not set (the onnx_fixtures helper)}
src=${PNEUMO_SOURCE_DIR:?}
python=/usr/bin/python3 # Debian's python3-onnx, whatever python is first on PATH
tmp=$(mktemp -d /tmp/pneumo-onnx-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "onnx_export_test: FAIL: $*"; exit 1; }

# ---- usage errors and an unsupported layer (no external tools needed) ----
set +e
"$bin" export --format onnx "$src/models/default.safetensors" > /dev/null 2>&1; rc_no_out=$?
"$bin" export --format tflite "$src/models/default.safetensors" --out "$tmp/x" > /dev/null 2>&1; rc_format=$?
set -e
[ $rc_no_out -eq 2 ] || fail "export without --out must be a usage error (2), got $rc_no_out"
[ $rc_format -eq 2 ] || fail "an unknown --format must be a usage error (2), got $rc_format"

cat > "$tmp/fc_then_conv.cfg" <<'CFG'
[net]
input = 32
channels = 1
classes = 2
[conv]
filters = 4
size = 3
activation = relu
[gap]
[fc]
name = squeeze
out = 8
[conv]
name = head
filters = 2
size = 1
CFG
mkdir -p "$tmp/i32"
printf '%1024s' '' | tr ' ' '\200' > "$tmp/i32/0.raw"
"$fixtures" model "$tmp/fc_then_conv.cfg" "$tmp/fc_then_conv.safetensors" "$tmp/i32/0.raw" > /dev/null
set +e
"$bin" export --format onnx "$tmp/fc_then_conv.safetensors" --out "$tmp/fc_then_conv.onnx" 2> "$tmp/unsupported.txt"
rc=$?
set -e
[ $rc -eq 1 ] || fail "exporting an unsupported layer must fail (1), got $rc"
grep -q "layer 'head' (conv)" "$tmp/unsupported.txt" || fail "the error does not name the layer: $(cat "$tmp/unsupported.txt")"
[ ! -e "$tmp/fc_then_conv.onnx" ] || fail "a failed export left a file"
echo "unsupported layer: $(cat "$tmp/unsupported.txt")"

# ---- the graphs, checked and run ----
skip() { echo "onnx_export_test: SKIP: $*"; exit 77; }
val="$src/../shared/data/kermany/val"
[ -d "$val/NORMAL" ] && [ -d "$val/PNEUMONIA" ] || skip "no validation X-rays at $val"
"$python" -c "import onnx" 2> /dev/null || skip "Debian python3-onnx is not installed (scripts/install-deps.sh test)"
command -v node > /dev/null || skip "node is not installed"
[ -f "$src/tests/onnx/node_modules/onnxruntime-node/package.json" ] ||
  skip "onnxruntime-node missing: run 'cd tests/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm ci'"

# 3 NORMAL and 3 PNEUMONIA validation images
sources=$( (ls "$val/NORMAL"/*.jpeg | sort | head -3; ls "$val/PNEUMONIA"/*.jpeg | sort | head -3) )

# check_model NAME MODEL SIZE [BATCHNORMS]: export, check, run both, compare
check_model() {
  local name=$1 model=$2 size=$3 batchnorms=${4:-0} dir="$tmp/$1"
  mkdir -p "$dir"
  [ -d "$tmp/img$size" ] || { mkdir -p "$tmp/img$size"; "$fixtures" images "$size" "$tmp/img$size" $sources; }
  "$bin" export --format onnx "$model" --out "$dir/model.onnx"
  "$python" "$src/tests/onnx/onnx_check.py" "$dir/model.onnx" "$size" 2 "$batchnorms"
  "$bin" predict --model "$model" --threads 2 --format json "$tmp/img$size"/*.png > "$dir/predict.json"
  (cd "$src/tests/onnx" && node ort_run.mjs "$dir/model.onnx" "$size" "$tmp/img$size"/*.raw) > "$dir/ort.json"
  "$python" - "$name" "$dir/predict.json" "$dir/ort.json" <<'PY'
import json, sys
name, predict, ort = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
assert len(predict) == len(ort) == 6, (len(predict), len(ort))
diffs = []
for row, probs in zip(predict, ort):  # both in file order 0..5
    assert abs(sum(probs) - 1) < 1e-5, probs
    diffs.append(abs(row["probability"] - probs[1]))
p = [r["probability"] for r in predict]
print(f"{name}: P(pneumonia) by pneumo predict {[round(x, 4) for x in p]}, "
      f"max |predict - ONNX Runtime| = {max(diffs):.2e}")
assert max(diffs) <= 1e-4, f"{name}: ONNX Runtime differs from pneumo predict by {max(diffs):.3g}"
PY
}

# the bundled model has a three-class head, which the exporter refuses by name
set +e
msg=$("$bin" export --format onnx "$src/models/default.safetensors" --out "$tmp/default.onnx" 2>&1); rc=$?
set -e
if echo "$msg" | grep -q "has 3 classes"; then
  [ $rc -ne 0 ] || fail "exporting a three-class model must fail"
  echo "bundled model: refused as expected ($msg)"
elif [ $rc -eq 0 ]; then
  echo "bundled model: exported"
else
  fail "exporting the bundled model failed: $msg"
fi
# every architecture, then every layer kind and activation (with 2 standalone batch norms)
for cfg in "$src"/models/arch/*.cfg "$src/tests/onnx/all_kinds.cfg"; do
  arch=$(basename "$cfg" .cfg)
  if [ "$arch" = vgg19 ] && [ "${PNEUMO_SANITIZED:-0}" = 1 ]; then
    echo "vgg19: not under the sanitizers (0.5 GB of weights; the plain build checks it)"
    continue
  fi
  batchnorms=0
  [ "$arch" = all_kinds ] && batchnorms=2
  size=$(grep -m1 -E '^input *= *[0-9]+' "$cfg" | tr -dc 0-9)
  [ -d "$tmp/img$size" ] || { mkdir -p "$tmp/img$size"; "$fixtures" images "$size" "$tmp/img$size" $sources; }
  "$fixtures" model "$cfg" "$tmp/$arch.safetensors" "$tmp/img$size"/*.raw
  check_model "$arch" "$tmp/$arch.safetensors" "$size" "$batchnorms"
  [ "$arch" != vgg19 ] || rm -f "$tmp/$arch.safetensors" "$tmp/$arch/model.onnx" # 0.5 GB each
done

# an ensemble of three 224-pixel models (each with its own preprocessing and
# temperature): the graph's probabilities are the mean of the members' as
# `pneumo predict` reports them
mkdir -p "$tmp/ensemble"
"$fixtures" ensemble "$tmp/ensemble/model.onnx" "$tmp/mobilenetv3-small.safetensors" \
  "$tmp/mobilenetv2.safetensors" "$tmp/mobilenetv3-small-imagenet.safetensors"
"$python" "$src/tests/onnx/onnx_check.py" "$tmp/ensemble/model.onnx" 224 2 0
(cd "$src/tests/onnx" && node ort_run.mjs "$tmp/ensemble/model.onnx" 224 "$tmp/img224"/*.raw) > "$tmp/ensemble/ort.json"
"$python" - "$tmp/ensemble/ort.json" "$tmp/mobilenetv3-small/predict.json" "$tmp/mobilenetv2/predict.json" \
  "$tmp/mobilenetv3-small-imagenet/predict.json" <<'PY'
import json, sys
ort = json.load(open(sys.argv[1]))
members = [[r["probability"] for r in json.load(open(p))] for p in sys.argv[2:]]
mean = [sum(col) / len(col) for col in zip(*members)]
diffs = [abs(m - probs[1]) for m, probs in zip(mean, ort)]
assert len(diffs) == 6, diffs
print(f"ensemble of 3: mean P(pneumonia) {[round(x, 4) for x in mean]}, "
      f"max |mean of predict - ONNX Runtime| = {max(diffs):.2e}")
assert max(diffs) <= 1e-4, f"ensemble: ONNX Runtime differs from the mean of pneumo predict by {max(diffs):.3g}"
PY
echo "onnx_export_test: OK"
