#!/usr/bin/env bash
# pneumo vs PyTorch (Debian python3-torch), same architecture, batch, input size
# and thread count, measured in the same run, one process at a time.
# Usage: bench/run.sh [ITERS] [ROUNDS]   (default 10 timed iterations after 2 warm-up,
#        1 round). Each round runs every configuration of pneumo and of the peer once,
#        interleaved, so slow drifts of a shared machine hit both; the table reports, per
#        configuration, the median over rounds of each run's median iteration time.
# Writes bench/results/latest.jsonl (one line per run) and prints a table of ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PNEUMO_BIN:-build/pneumo}
iters=${1:-10}
rounds=${2:-1}
out=bench/results
mkdir -p "$out"
res="$out/latest.jsonl"
: > "$res"

run() { "$@" | tail -1 >> "$res"; tail -1 "$res" >&2; }

for round in $(seq "$rounds"); do
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
done

/usr/bin/python3 - "$res" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def impl(r): return r.get("impl", "torch")
# one row per configuration: medians over rounds
keys, rows = [], {}
for r in runs:
    k = (r["arch"], r["mode"], impl(r), r["config"])
    if k not in rows:
        keys.append(k)
        rows[k] = []
    rows[k].append(r)
def summary(k):
    rs = rows[k]
    med = statistics.median(x["median_s"] for x in rs)
    return {"arch": k[0], "mode": k[1], "impl": k[2], "config": k[3], "median_s": med,
            "batch": rs[0]["batch"], "rss": max(x["peak_rss_mb"] for x in rs), "rounds": len(rs)}
table = [summary(k) for k in keys]
print("\n| arch | mode | impl | config | rounds | median ms/batch | img/s | peak RSS MB | vs torch eager | vs torch cl_bf16 |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in table:
    peers = {p["config"]: p for p in table if p["impl"] == "torch" and p["arch"] == r["arch"] and p["mode"] == r["mode"]}
    def ratio(cfg):
        p = peers.get(cfg)
        # throughput ratio for training, speed-up (latency ratio) for inference: >1 = pneumo faster
        return "%.2fx" % (p["median_s"] / r["median_s"]) if p else "-"
    print("| %s | %s | %s | %s | %d | %.1f | %.1f | %.0f | %s | %s |" % (
        r["arch"], r["mode"], r["impl"], r["config"], r["rounds"], r["median_s"] * 1e3,
        r["batch"] / r["median_s"], r["rss"], ratio("eager"), ratio("cl_bf16")))
# the per-round ratios of the training rows, to show their spread
print("\nper-round training ratios (pneumo bf16 / fp32 vs torch eager, same round):")
for arch in sorted({k[0] for k in keys}):
    for cfg in ("bf16", "fp32"):
        mine = rows.get((arch, "train", "pneumo", cfg), [])
        eager = rows.get((arch, "train", "torch", "eager"), [])
        pairs = ["%.2fx" % (e["median_s"] / m["median_s"]) for m, e in zip(mine, eager)]
        print("  %s %s: %s" % (arch, cfg, " ".join(pairs)))
PY
