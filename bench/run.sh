#!/usr/bin/env bash
# pneumo vs PyTorch (Debian python3-torch), same architecture, batch, input size
# and thread count, measured in the same run, one process at a time.
# Usage: bench/run.sh [ITERS]   (default 10 timed iterations after 2 warm-up)
# Writes bench/results/latest.jsonl and prints a table of ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PNEUMO_BIN:-build/pneumo}
iters=${1:-10}
out=bench/results
mkdir -p "$out"
res="$out/latest.jsonl"
: > "$res"

run() { "$@" | tail -1 >> "$res"; tail -1 "$res" >&2; }

for arch in mobilenetv3-small resnet18; do
  # training: forward + backward + Adam step, batch 32, 224x224, 2 threads
  run "$bin" bench --arch "$arch" --mode train --batch 32 --threads 2 --iters "$iters" --warmup 2 --precision fp32
  run "$bin" bench --arch "$arch" --mode train --batch 32 --threads 2 --iters "$iters" --warmup 2 --precision bf16
  run /usr/bin/python3 bench/torch_bench.py --arch "$arch" --mode train --batch 32 --threads 2 --iters "$iters" --warmup 2 --config eager
  run /usr/bin/python3 bench/torch_bench.py --arch "$arch" --mode train --batch 32 --threads 2 --iters "$iters" --warmup 2 --config cl_bf16
  # batch-1 inference on one thread
  run "$bin" bench --arch "$arch" --mode infer --batch 1 --threads 1 --iters $((iters * 5)) --warmup 5 --precision fp32
  run "$bin" bench --arch "$arch" --mode infer --batch 1 --threads 1 --iters $((iters * 5)) --warmup 5 --precision bf16
  run /usr/bin/python3 bench/torch_bench.py --arch "$arch" --mode infer --batch 1 --threads 1 --iters $((iters * 5)) --warmup 5 --config eager
  run /usr/bin/python3 bench/torch_bench.py --arch "$arch" --mode infer --batch 1 --threads 1 --iters $((iters * 5)) --warmup 5 --config cl_bf16
done

/usr/bin/python3 - "$res" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def impl(r): return r.get("impl", "torch")
print("\n| arch | mode | impl | config | median ms/batch | img/s | peak RSS MB | vs torch eager | vs torch cl_bf16 |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    peers = {p["config"]: p for p in rows if impl(p) == "torch" and p["arch"] == r["arch"] and p["mode"] == r["mode"]}
    def ratio(cfg):
        p = peers.get(cfg)
        if not p: return "-"
        # throughput ratio for training, speed-up (latency ratio) for inference: >1 = pneumo faster
        return "%.2fx" % (p["median_s"] / r["median_s"])
    print("| %s | %s | %s | %s | %.1f | %.1f | %.0f | %s | %s |" % (
        r["arch"], r["mode"], impl(r), r["config"], r["ms_per_batch"], r["imgs_per_s"],
        r["peak_rss_mb"], ratio("eager"), ratio("cl_bf16")))
PY
