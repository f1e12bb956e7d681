#!/usr/bin/env bash
# Load benchmark of `pneumo serve` with wrk: req/s, p50/p99 latency and the
# server's peak RSS (VmHWM). Usage:
#   bench/serve_load.sh [--threads N] [--connections C] [--duration 20s] [--model FILE]
#                       [--tls] [--idle N]
# --tls: HTTPS with a certificate made here (openssl) and an API token.
# --idle N: N more connections stay open and silent during the run
# (bench/idle_connections.py, which reopens those the request deadline closes).
# Needs wrk (Debian package wrk), a built binary (PNEUMO_BIN or build/pneumo),
# the model and a 224x224 JPEG from the validation set.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${PNEUMO_BIN:-$src/build/pneumo}
model=$src/models/default.safetensors
threads=$(nproc) connections=8 duration=20s tls=0 idle=0
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    --idle) idle=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--connections C] [--duration 20s] [--model FILE] [--tls] [--idle N]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no pneumo binary at $bin (make build)" >&2; exit 1; }
[ -f "$model" ] || { echo "no model at $model" >&2; exit 1; }
image=$(ls "${PNEUMO_SHARED_DIR:-$src/../shared}"/data/kermany/val/PNEUMONIA/*.jpeg | head -1)

tmp=$(mktemp -d /tmp/pneumo-serve-bench.XXXXXX)
server_pid= idle_pid=
cleanup() {
  [ -n "$idle_pid" ] && kill "$idle_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
tls_args=() scheme=http
export PNEUMO_BENCH_TOKEN=
if [ "$tls" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
  PNEUMO_BENCH_TOKEN=$(openssl rand -hex 32)
  echo "$PNEUMO_BENCH_TOKEN" >"$tmp/tokens"
  tls_args=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --token-file "$tmp/tokens")
  scheme=https
fi
"$bin" serve --model "$model" --port 0 --audit-db "$tmp/audit.db" --threads "$threads" "${tls_args[@]}" \
  2>"$tmp/server.log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's|.*https\{0,1\}://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/server.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/server.log" >&2; exit 1; }
url=$scheme://127.0.0.1:$port
if [ "$idle" -gt 0 ]; then
  python3 "$src/bench/idle_connections.py" "$port" "$idle" &
  idle_pid=$!
  for _ in $(seq 1 200); do
    open_now=$(ls -l /proc/$server_pid/fd | grep -c socket || true)
    [ "$open_now" -gt "$idle" ] && break
    sleep 0.1
  done
  echo "serve_load: $idle idle connections held; server sockets open: $open_now"
fi

# Warm-up (first predictions create oneDNN primitives), then the measured run.
export PNEUMO_BENCH_IMAGE=$image
wrk -t 2 -c "$connections" -d 3s -s "$src/bench/serve_load.lua" "$url" >/dev/null
result=$(wrk -t 2 -c "$connections" -d "$duration" --latency -s "$src/bench/serve_load.lua" "$url" | grep '^RESULT')
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$server_pid/status)
rows=$(curl -sk -H "Authorization: Bearer $PNEUMO_BENCH_TOKEN" "$url/metrics" | awk '/^pneumo_predictions_total/ {n += $2} END {print n}')
[ -n "$idle_pid" ] && kill "$idle_pid" 2>/dev/null
idle_pid=
kill -TERM $server_pid; wait $server_pid || true
server_pid=
echo "serve_load: image=$(basename "$image") slots=$threads connections=$connections duration=$duration scheme=$scheme idle=$idle"
echo "serve_load: ${result#RESULT } peak_rss_mb=$((rss_kb / 1024)) predictions=$rows"
