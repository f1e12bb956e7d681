#!/usr/bin/env bash
# Load benchmark of `pneumo serve` with wrk: req/s, p50/p99 latency and the
# server's peak RSS (VmHWM). Usage:
#   bench/serve_load.sh [--threads N] [--connections C] [--duration 20s] [--model FILE]
# Needs wrk (Debian package wrk), a built binary (PNEUMO_BIN or build/pneumo),
# the model and a 224x224 JPEG from the validation set.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${PNEUMO_BIN:-$src/build/pneumo}
model=$src/models/default.safetensors
threads=$(nproc) connections=8 duration=20s
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--connections C] [--duration 20s] [--model FILE]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no pneumo binary at $bin (make build)" >&2; exit 1; }
[ -f "$model" ] || { echo "no model at $model" >&2; exit 1; }
image=$(ls "${PNEUMO_SHARED_DIR:-$src/../shared}"/data/kermany/val/PNEUMONIA/*.jpeg | head -1)

tmp=$(mktemp -d /tmp/pneumo-serve-bench.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" serve --model "$model" --port 0 --audit-db "$tmp/audit.db" --threads "$threads" 2>"$tmp/server.log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/server.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/server.log" >&2; exit 1; }
url=http://127.0.0.1:$port

# Warm-up (first predictions create oneDNN primitives), then the measured run.
export PNEUMO_BENCH_IMAGE=$image
wrk -t 2 -c "$connections" -d 3s -s "$src/bench/serve_load.lua" "$url" >/dev/null
result=$(wrk -t 2 -c "$connections" -d "$duration" --latency -s "$src/bench/serve_load.lua" "$url" | grep '^RESULT')
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$server_pid/status)
rows=$(curl -s "$url/metrics" | awk '/^pneumo_predictions_total/ {n += $2} END {print n}')
kill -TERM $server_pid; wait $server_pid || true
server_pid=
echo "serve_load: image=$(basename "$image") slots=$threads connections=$connections duration=$duration"
echo "serve_load: ${result#RESULT } peak_rss_mb=$((rss_kb / 1024)) predictions=$rows"
