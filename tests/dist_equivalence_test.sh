#!/usr/bin/env bash
# Data-parallel training computes what one process computes. K = 8 SGD steps
# (across epoch ends, so rank 0's validation and its broadcast of the epoch's
# decisions lie in between) of `mpirun -np 2` with --batch 32 (16 images per
# process) must end with the parameters of one process with --batch 32, up to
# floating-point summation order (docs/distributed.md: why the tolerance is
# not zero). Cases: tests/dist/equivalence.cfg with --sync-bn (every kind of
# batch norm the engine runs, dropout), simple-cnn (dropout, a large fc layer
# summed in place), and a run stopped after 4 steps on two processes and
# resumed on one (a checkpoint resumes with any process count).
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
kermany_or_skip "data-parallel training"
mpi_or_skip
scratch_dir dist-equivalence
make_subset "$data" "$tmp/data" 10 64
common=(--data "$tmp/data" --epochs 5 --batch 32 --precision fp32 --seed 5 --threads 1
        --optimizer sgd --lr 0.01)
cfg="$src/tests/dist/equivalence.cfg"

# train OUT PROCESSES STEPS [options]: stops after STEPS steps (exit 130) with a checkpoint.
train() {
  local out=$1 np=$2 steps=$3 rc=0
  shift 3
  local launch=()
  [ "$np" -gt 1 ] && launch=("${mpirun[@]}" -np "$np")
  "${launch[@]}" "$bin" train "${common[@]}" --stop-after "$steps" --out "$tmp/$out" "$@" \
    > "$tmp/$out.log" 2> "$tmp/$out.err" || rc=$?
  [ $rc -eq 130 ] || { echo "$out: expected exit 130 (stopped), got $rc"; cat "$tmp/$out.err"; exit 1; }
}

# same A B: every parameter and running statistic of checkpoint A equals B's
# within 2e-5 * (1 + the tensor's largest magnitude), at the same step.
same() {
  python3 - "$tmp/$1/checkpoint.safetensors" "$tmp/$2/checkpoint.safetensors" <<'PY'
import array, json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__")
    out = {}
    for k, v in hdr.items():
        if k.startswith("param/"):
            a = array.array("f")
            a.frombytes(raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]])
            out[k] = a
    return out, json.loads(meta["state"])
(a, sa), (b, sb) = load(sys.argv[1]), load(sys.argv[2])
assert sa["step"] == sb["step"] == 8, (sa["step"], sb["step"])
assert a.keys() == b.keys() and a, "different tensors"
worst, where = 0.0, None
for k in a:
    scale = 1 + max(abs(x) for x in a[k])
    d = max(abs(x - y) for x, y in zip(a[k], b[k])) / scale
    if d > worst:
        worst, where = d, k
print("%s vs %s: %d tensors, largest difference %.2g (relative to 1 + |max|) in %s"
      % (sys.argv[1].split("/")[-2], sys.argv[2].split("/")[-2], len(a), worst, where))
assert worst <= 2e-5, "data-parallel parameters differ from one process's"
PY
}

train bn1 1 8 --arch "$cfg" --sync-bn
train bn2 2 8 --arch "$cfg" --sync-bn
same bn1 bn2
train resumed 2 4 --arch "$cfg" --sync-bn
train resumed 1 8 --arch "$cfg" --sync-bn --resume
same bn1 resumed
train cnn1 1 8 --arch simple-cnn --input-size 48
train cnn2 2 8 --arch simple-cnn --input-size 48
same cnn1 cnn2
