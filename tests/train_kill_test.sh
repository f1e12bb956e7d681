#!/usr/bin/env bash
# Crash safety of training: `pneumo train` is killed with SIGKILL three times,
# each time shortly after it wrote a new checkpoint (so the kill lands in the
# next epoch, or while the next checkpoint is being written), and resumed
# with --resume from whatever checkpoint the kill left. Each checkpoint left
# behind must be whole (a complete safetensors file, the state of a finished
# epoch); the final model must equal, bit for bit, that of an uninterrupted run
# (which passes through the same checkpoints), with the same history.
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
bin=${PNEUMO_BIN:?PNEUMO_BIN not set}
src=${PNEUMO_SOURCE_DIR:?}
data="$src/../shared/data/kermany"
if [ ! -d "$data/train/NORMAL" ]; then
  echo "SKIP: $data is absent, so training cannot be resumed here"
  exit 77
fi
tmp=$(mktemp -d /tmp/pneumo-kill-XXXXXX)
pid=
trap 'rc=$?; [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; [ $rc -ne 0 ] && cat "$tmp"/*.err 2>/dev/null; rm -rf "$tmp"' EXIT
make_subset "$data" "$tmp/data" 25 48
opts=(--data "$tmp/data" --arch simple-cnn --input-size 48 --epochs 4 --batch 8 --lr 0.001
      --precision fp32 --seed 11 --threads 1)

"$bin" train "${opts[@]}" --out "$tmp/a" > /dev/null 2> "$tmp/a.err"

# check_checkpoint FILE: a complete safetensors file; prints the state it holds.
check_checkpoint() {
  python3 - "$1" <<'PY'
import json, os, struct, sys
path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
meta = hdr.pop("__metadata__")
spans = sorted(v["data_offsets"] for v in hdr.values())
assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "gaps in the data"
assert 8 + n + spans[-1][1] == len(raw), "file size %d does not match its header" % len(raw)
state = json.loads(meta["state"])
print("epoch %d batch %d step %d" % (state["epoch"], state["batch"], state["step"]))
PY
}

ckpt=$tmp/b/checkpoint.safetensors
inode() { stat -c %i "$ckpt" 2>/dev/null || echo none; }
kills=0 resumed=0
delays=(0.05 0.4 0.8)
for round in 0 1 2; do
  resume=()
  if [ -e "$ckpt" ]; then resume=(--resume); resumed=$((resumed + 1)); fi
  before=$(inode)
  "$bin" train "${opts[@]}" --out "$tmp/b" "${resume[@]}" > /dev/null 2> "$tmp/b$round.err" &
  pid=$!
  # Wait for this run's first new checkpoint (rename gives it a new inode).
  while kill -0 "$pid" 2>/dev/null && [ "$(inode)" = "$before" ]; do sleep 0.02; done
  sleep "${delays[$round]}"
  if kill -KILL "$pid" 2>/dev/null; then
    kills=$((kills + 1))
    wait "$pid" 2>/dev/null || true
    pid=
    state=$(check_checkpoint "$ckpt") || { echo "FAIL: torn checkpoint after kill $kills"; exit 1; }
    echo "kill $kills (round $round, ${delays[$round]} s after a checkpoint): checkpoint whole, $state"
    test ! -e "$tmp/b/model.safetensors" || echo "note: the run had already finished its last epoch"
    if [ $kills -eq 1 ]; then
      # The worst case for history.csv, made certain: rows of epochs after the
      # checkpoint (a kill between appending a row and replacing the checkpoint).
      mkdir "$tmp/c"
      cp "$ckpt" "$tmp/a/history.csv" "$tmp/c/"
    fi
  else
    wait "$pid" || { echo "FAIL: run $round failed before it could be killed"; exit 1; }
    pid=
    echo "round $round finished before the kill"
    break
  fi
done
[ $kills -ge 1 ] || { echo "FAIL: no run was killed"; exit 1; }
"$bin" train "${opts[@]}" --out "$tmp/b" --resume > /dev/null 2> "$tmp/b-final.err"
resumed=$((resumed + 1))
"$bin" train "${opts[@]}" --out "$tmp/c" --resume > /dev/null 2> "$tmp/c.err"

for run in b c; do
python3 - "$tmp/a" "$tmp/$run" <<'PY'
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n]); hdr.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in hdr.items()}
a, b = (tensors(d + "/model.safetensors") for d in sys.argv[1:3])
assert a.keys() == b.keys()
diff = [k for k in a if a[k] != b[k]]
assert not diff, "tensors differ after kill and resume: %s" % diff[:5]
ha, hb = ([l.rsplit(",", 1)[0] for l in open(d + "/history.csv")] for d in sys.argv[1:3])
assert ha == hb, (ha, hb)
print("%s: resumed run identical to the uninterrupted one: %d tensors, %d history rows"
      % (sys.argv[2], len(a), len(ha) - 1))
PY
done
echo "PASS: $kills SIGKILLs, $resumed resumes"
