#!/usr/bin/env bash
# pneumo vs ONNX Runtime (npm onnxruntime-node 1.30, its bundled CPU library) on the
# same graphs: each architecture's randomly initialised network is written as a
# model file (`pneumo bench --save-model`) and exported (`pneumo export`); pneumo
# times the model file (`pneumo bench --model`: uint8 images -> normalisation ->
# network -> probabilities, what the graph computes) in fp32 and bf16, ONNX
# Runtime the graph (bench/ort_bench.mjs: graph optimisation "all", intra-op
# threads N, one inter-op thread, CPU execution provider, fp32, its default).
# Inference only, batch 1 and 32, 1 and 2 threads, MobileNetV3-Small and ResNet-18.
#
# Usage: bench/ort_run.sh [ROUNDS] [ITERS]   (default 5 rounds, 50 timed iterations at
#        batch 1 and ITERS/5 (at least 3) at batch 32, after 5 and 2 warm-up ones).
# Each round runs every configuration of pneumo and ONNX Runtime once, interleaved
# (pneumo fp32, ONNX Runtime, pneumo bf16 for one setting, then the next), so the
# load of a shared machine hits both; the table gives per configuration the median
# over rounds of each run's median iteration time and the ratio ONNX Runtime /
# pneumo (> 1: pneumo faster), the range of the per-round ratios, the ratio of
# the fastest iterations (min over rounds of each run's fastest) and, for one
# thread, the ratio of the median CPU time per iteration (the process's, so time
# spent waiting for a core of a loaded machine is not counted).
# pneumo runs with OMP_WAIT_POLICY=passive unless the caller sets it: with
# libgomp's default spinning, two threads on a machine whose other jobs keep
# its cores busy wait out whole time slices at every barrier (bench/README.md).
# Writes bench/results/ort_latest.jsonl (one line per run) and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PNEUMO_BIN:-build/pneumo}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
rounds=${1:-5}
iters=${2:-50}
iters32=$((iters / 5 > 3 ? iters / 5 : 3))
out=bench/results
mkdir -p "$out"
res="$out/ort_latest.jsonl"
work=$(mktemp -d /tmp/pneumo-ort-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -f tests/onnx/node_modules/onnxruntime-node/package.json ] ||
  { echo "onnxruntime-node missing: run 'cd tests/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm ci'" >&2; exit 1; }

archs=(mobilenetv3-small resnet18)
for arch in "${archs[@]}"; do
  "$bin" bench --arch "$arch" --save-model "$work/$arch.safetensors" >&2
  "$bin" export --format onnx "$work/$arch.safetensors" --out "$work/$arch.onnx" >&2
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "{\"commit\": \"$commit\", \"start\": \"$(date -u +%FT%TZ)\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"omp_wait_policy\": \"$OMP_WAIT_POLICY\"}" > "$res"
run() { "$@" | tail -1 >> "$res"; tail -1 "$res" >&2; }

for round in $(seq "$rounds"); do
  for arch in "${archs[@]}"; do
    for batch in 1 32; do
      for threads in 1 2; do
        n=$iters w=5
        [ "$batch" = 1 ] || n=$iters32 w=2
        common=(--batch "$batch" --threads "$threads" --iters "$n" --warmup "$w")
        run "$bin" bench --model "$work/$arch.safetensors" --mode infer --precision fp32 "${common[@]}"
        run node bench/ort_bench.mjs --model "$work/$arch.onnx" --arch "$arch" "${common[@]}"
        run "$bin" bench --model "$work/$arch.safetensors" --mode infer --precision bf16 "${common[@]}"
      done
    done
  done
done
echo "{\"end\": \"$(date -u +%FT%TZ)\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$res"

/usr/bin/python3 - "$res" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
head, tail, runs = lines[0], lines[-1], lines[1:-1]
def key(r): return (r["arch"], r["batch"], r["threads"])
def impl(r): return "ort" if r["impl"] == "onnxruntime" else r["config"].split("_")[0]
groups = {}
for r in runs:
    groups.setdefault(key(r), {}).setdefault(impl(r), []).append(r)
print(f"\ncommit {head['commit']}, {head['start']} to {tail['end']}, load average "
      f"{head['loadavg']} at the start, {tail['loadavg']} at the end (2 cores), "
      f"pneumo with OMP_WAIT_POLICY={head['omp_wait_policy']}")
print("\n| arch | batch | threads | rounds | ONNX Runtime fp32 ms | pneumo fp32 ms | pneumo bf16 ms "
      "| fp32 ratio | bf16 ratio | fp32 per-round | bf16 per-round | fp32 fastest | bf16 fastest "
      "| fp32 CPU-time ratio | bf16 CPU-time ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(groups, key=lambda k: (k[0] != "mobilenetv3-small", k[1], k[2])):
    g = groups[k]  # without native bf16 pneumo computes in fp32: no bf16 column then
    med = {i: statistics.median(r["median_s"] for r in g[i]) for i in g}
    best = {i: min(r["min_s"] for r in g[i]) for i in g}
    def ms(i): return f"{med[i] * 1e3:.2f}" if i in g else "-"
    def ratio(i): return f"{med['ort'] / med[i]:.2f}x" if i in g else "-"
    cpu = {i: statistics.median(r["cpu_s"] for r in g[i]) for i in g}
    def fastest(i): return f"{best['ort'] / best[i]:.2f}x" if i in g else "-"
    def cpu_ratio(i): return f"{cpu['ort'] / cpu[i]:.2f}x" if i in g and k[2] == 1 else "-"
    def spread(i):
        if i not in g:
            return "-"
        rs = [o["median_s"] / m["median_s"] for o, m in zip(g["ort"], g[i])]
        return f"{min(rs):.2f}-{max(rs):.2f}x"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {len(g['ort'])} | {ms('ort')} | {ms('fp32')} | {ms('bf16')} "
          f"| {ratio('fp32')} | {ratio('bf16')} | {spread('fp32')} | {spread('bf16')} "
          f"| {fastest('fp32')} | {fastest('bf16')} | {cpu_ratio('fp32')} | {cpu_ratio('bf16')} |")
PY
