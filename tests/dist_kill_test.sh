#!/usr/bin/env bash
# A failing process ends a data-parallel job on every rank, never a hang.
# Two ranks train on a slice of the dataset; after the first epoch:
#  1. rank 1 is SIGKILLed: the launcher notices and ends rank 0, which says
#     why (the runtime's SIGTERM);
#  2. rank 0 is SIGSTOPped (alive, silent: what no launcher notices): rank 1's
#     watchdog ends the job after --dist-timeout 5 s with a message naming
#     the operation it waited in (MPI_Abort with code 124, mpirun's exit code).
# Each time every process must be gone within 30 s of the fault.
set -euo pipefail
source "$(dirname "$0")/testlib.sh"
kermany_or_skip "ending a data-parallel job"
mpi_or_skip
scratch_dir dist-kill
make_subset "$data" "$tmp/data" 25 48
mp=
trap 'rc=$?; [ -n "$mp" ] && kill -KILL $(pgrep -P "$mp") "$mp" 2>/dev/null; [ $rc -ne 0 ] && cat "$tmp"/*.err 2>/dev/null; rm -rf "$tmp"' EXIT

# fault NAME SIGNAL RANK: starts the job, waits for its first epoch, sends
# SIGNAL to RANK, and checks that every process ends within 30 s.
fault() {
  local name=$1 sig=$2 rank=$3 pids victim="" t
  "${mpirun[@]}" -np 2 "$bin" train --data "$tmp/data" --arch simple-cnn --input-size 48 --epochs 100 \
    --batch 16 --threads 1 --dist-timeout 5 --out "$tmp/$name" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  mp=$!
  t=0 # 120 s for the cache and the first epoch
  while ! grep -q "epoch 1/100 " "$tmp/$name.err" 2>/dev/null; do
    kill -0 "$mp" 2>/dev/null || { echo "$name: the job ended before its first epoch"; exit 1; }
    sleep 0.2; t=$((t + 1))
    [ $t -lt 600 ] || { echo "$name: no epoch within 120 s"; exit 1; }
  done
  pids=$(pgrep -P "$mp")
  for p in $pids; do
    tr '\0' '\n' < "/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$rank" && victim=$p
  done
  [ -n "$victim" ] || { echo "$name: rank $rank not found among $pids"; exit 1; }
  kill "-$sig" "$victim"
  for t in $(seq 150); do # 30 s
    alive=0
    for p in $mp $pids; do kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p")" != Z ] && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.2
  done
  if [ $alive -ne 0 ]; then
    echo "$name: processes still running 30 s after SIG$sig to rank $rank"; exit 1
  fi
  rc=0
  wait "$mp" || rc=$?
  mp=
  [ $rc -ne 0 ] || { echo "$name: the launcher reported success"; exit 1; }
  echo "ok - SIG$sig to rank $rank: every process ended within $((t / 5)) s, mpirun exit $rc"
}

fault kill KILL 1
grep -q "rank 0 of 2: ended by the MPI runtime" "$tmp/kill.err" ||
  { echo "rank 0 did not say why it ended"; exit 1; }
grep -q "rank 1 .* exited on signal 9" "$tmp/kill.err" ||
  { echo "the launcher did not name the killed rank"; exit 1; }

fault stop STOP 0
grep -q "rank 1 of 2: .* has waited [0-9]* s for the other processes" "$tmp/stop.err" ||
  { echo "rank 1's watchdog did not say what it waited for"; exit 1; }
[ $rc -eq 124 ] || { echo "the job was not ended by the watchdog's MPI_Abort (exit 124), but $rc"; exit 1; }
