#!/usr/bin/env bash
# pneumo export --format onnx, for the bundled model (a five-member ensemble of
# three-class networks) and a random-init model of every architecture in
# models/arch/ (and a three-class one): the ONNX checker (Debian python3-onnx)
# accepts each graph, and ONNX Runtime (npm onnxruntime-node, its bundled CPU
# library) computes the probabilities `pneumo predict` reports within 1e-4 on
# validation X-rays resized to the model's input size, as one batch: P(PNEUMONIA)
# and, for three-class models, P(NORMAL), P(BACTERIAL), P(VIRAL); the same for
# an ensemble graph of three models with mixed heads against the mean of their
# predictions. Also: a layer the exporter cannot map fails naming it, a CLAHE
# model is refused naming CLAHE, and usage errors.
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
"$fixtures" model "$tmp/fc_then_conv.cfg" 2 "$tmp/fc_then_conv.safetensors" "$tmp/i32/0.raw" > /dev/null
# refused NAME WHAT PATTERN: exporting $tmp/NAME.safetensors fails (1) with an
# error matching PATTERN and leaves no file
refused() {
  local rc=0
  "$bin" export --format onnx "$tmp/$1.safetensors" --out "$tmp/$1.onnx" 2> "$tmp/$1.txt" || rc=$?
  [ $rc -eq 1 ] || fail "exporting $2 must fail (1), got $rc"
  grep -q "$3" "$tmp/$1.txt" || fail "the error does not name $2: $(cat "$tmp/$1.txt")"
  [ ! -e "$tmp/$1.onnx" ] || fail "a refused export left a file"
  echo "$2: $(cat "$tmp/$1.txt")"
}
refused fc_then_conv "the unsupported layer" "layer 'head' (conv)"

# a model trained with CLAHE: refused naming CLAHE (the same file with "clahe": "1" in its metadata)
"$python" - "$tmp/fc_then_conv.safetensors" "$tmp/clahe.safetensors" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
header["__metadata__"]["clahe"] = "1"
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
PY
refused clahe "CLAHE" "CLAHE"

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

# check_model NAME MODEL SIZE CLASSES [BATCHNORMS]: export, check, run both, compare
check_model() {
  local name=$1 model=$2 size=$3 classes=$4 batchnorms=${5:-0} dir="$tmp/$1"
  mkdir -p "$dir"
  [ -d "$tmp/img$size" ] || { mkdir -p "$tmp/img$size"; "$fixtures" images "$size" "$tmp/img$size" $sources; }
  "$bin" export --format onnx "$model" --out "$dir/model.onnx"
  "$python" "$src/tests/onnx/onnx_check.py" "$dir/model.onnx" "$size" "$classes" "$batchnorms"
  "$bin" predict --model "$model" --threads 2 --force --format json "$tmp/img$size"/*.png > "$dir/predict.json"
  (cd "$src/tests/onnx" && node ort_run.mjs "$dir/model.onnx" "$size" "$tmp/img$size"/*.raw) > "$dir/ort.json"
  "$python" "$src/tests/onnx/compare.py" "$name" "$dir/ort.json" "$dir/predict.json"
}

# the bundled model: five three-class MobileNetV3-Small members, both outputs
check_model bundled "$src/models/default.safetensors" 224 3
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
  "$fixtures" model "$cfg" 2 "$tmp/$arch.safetensors" "$tmp/img$size"/*.raw
  check_model "$arch" "$tmp/$arch.safetensors" "$size" 2 "$batchnorms"
  [ "$arch" != vgg19 ] || rm -f "$tmp/$arch.safetensors" "$tmp/$arch/model.onnx" # 0.5 GB each
done
# a three-class random-init network (logits spread wider than the trained model's)
"$fixtures" model "$src/models/arch/resnet18.cfg" 3 "$tmp/resnet18-3class.safetensors" "$tmp/img224"/*.raw
check_model resnet18-3class "$tmp/resnet18-3class.safetensors" 224 3

# an ensemble of three 224-pixel models with mixed heads (each with its own
# preprocessing and temperature): the graph's P(pneumonia) is the mean of the
# members' as `pneumo predict` reports them; no three-class output
mkdir -p "$tmp/ensemble"
"$fixtures" ensemble "$tmp/ensemble/model.onnx" "$tmp/resnet18-3class.safetensors" \
  "$tmp/mobilenetv2.safetensors" "$tmp/mobilenetv3-small-imagenet.safetensors"
"$python" "$src/tests/onnx/onnx_check.py" "$tmp/ensemble/model.onnx" 224 2 0
(cd "$src/tests/onnx" && node ort_run.mjs "$tmp/ensemble/model.onnx" 224 "$tmp/img224"/*.raw) > "$tmp/ensemble/ort.json"
"$python" "$src/tests/onnx/compare.py" "mixed ensemble of 3" "$tmp/ensemble/ort.json" \
  "$tmp/resnet18-3class/predict.json" "$tmp/mobilenetv2/predict.json" "$tmp/mobilenetv3-small-imagenet/predict.json"
echo "onnx_export_test: OK"
