#!/usr/bin/env bash
# Peak resident memory (RSS, /usr/bin/time -v) of the data pipeline at two dataset
# sizes, to show that it does not grow with the dataset. Synthetic collections of
# SMALL and LARGE 224x224 JPEGs (scripts/make_synthetic_dataset.py --variants 256: 256
# drawn pictures, every file distinct by a comment; made once in WORKDIR/ds<N>/, with
# manifest.csv), each measured in turn:
#   build   pneumo data bench --data manifest.csv --cache C --no-augment: scan + hash,
#           the sharded cache built, one loader epoch over every image
#   keep    the peer: the same with --keep-resident (cache reused), no cache page let go
#   train   pneumo train --data manifest.csv --stop-after STEPS (cache reused): an epoch
#           slice of MobileNetV3-Small at 224, batch 32
#   main    with PEER_BIN=<a pneumo built from another commit> (e.g. main): its data bench
#           --no-augment on the same images as a folder (its own cache, built, two epochs)
# Usage: [THREADS=2] bench/cache_rss.sh [WORKDIR] [SMALL] [LARGE] [STEPS]   (default /tmp/pneumo-rss 10000 100000 100)
# (SMALL = LARGE measures one size; WORKDIR/results.txt keeps every run.)
# Disk: about 60 KB per image (JPEG + cache), twice that with PEER_BIN.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PNEUMO_BIN:-$here/build/pneumo}
work=${1:-/tmp/pneumo-rss}
small=${2:-10000}
large=${3:-100000}
steps=${4:-100}
threads=${THREADS:-2}   # decoder, loader and training threads (the same at both sizes)
mkdir -p "$work"

# measure NAME N CMD...: one line "N NAME peak_MB seconds", the command's output in WORKDIR/log
measure() {
  local name=$1 n=$2; shift 2
  local log="$work/log/$n-$name"
  mkdir -p "$work/log"
  local rc=0
  nice -n 10 /usr/bin/time -v "$@" > "$log.out" 2> "$log.time" || rc=$?
  # 130: train stopped by --stop-after, as intended
  [ "$rc" -eq 0 ] || [ "$rc" -eq 130 ] || { echo "$name failed ($rc):"; tail "$log.time"; exit 1; }
  local kb secs
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$log.time")
  printf "%-8s %-7s %8.0f %8.0f\n" "$n" "$name" "$((kb / 1024))" "$secs" | tee -a "$work/results.txt"
}

# results.txt collects every run (the latest row of a size and run counts)
echo "# $(date -u +%FT%TZ) $(git -C "$here" rev-parse --short HEAD 2>/dev/null) threads $threads steps $steps" >> "$work/results.txt"
printf "%-8s %-7s %8s %8s\n" images run peak_MB seconds | tee -a "$work/results.txt"
for n in $(printf '%s\n' "$small" "$large" | sort -nu); do
  ds="$work/ds$n"
  [ -f "$ds/manifest.csv" ] || /usr/bin/python3 "$here/scripts/make_synthetic_dataset.py" "$ds" "$n" --variants 256 --jobs 2
  run="$work/run$n"
  rm -rf "$run"
  mkdir -p "$run"
  bench=("$bin" data bench --data "$ds/manifest.csv" --size 224 --threads "$threads" --no-augment --cache "$run/cache-224.bin")
  measure build "$n" "${bench[@]}"
  measure keep "$n" "${bench[@]}" --keep-resident
  measure train "$n" "$bin" train --data "$ds/manifest.csv" --input-size 224 --epochs 1 --batch 32 \
    --threads "$threads" --stop-after "$steps" --out "$run"
  if [ -n "${PEER_BIN:-}" ]; then
    measure main "$n" "$PEER_BIN" data bench --data "$ds/images" --size 224 --threads "$threads" --no-augment
  fi
  rm -rf "$run"
done
echo "peak RSS, $large vs $small images (1.00 = independent of the dataset's size):"
awk -v s="$small" -v l="$large" '$1 ~ /^[0-9]+$/ {mb[$1 " " $2] = $3; runs[$2] = 1}
  END {for (r in runs) if ((s " " r) in mb && (l " " r) in mb) printf "  %-7s %.2fx\n", r, mb[l " " r] / mb[s " " r]}' \
  "$work/results.txt"
