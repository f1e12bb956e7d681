#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each, one after the other on one
# core, starting from the seed corpus, and prints a table: executions, final
# coverage, new corpus inputs and findings. New inputs go to
# $BUILD/fuzz-runs/<target>/corpus (the seeds in tests/fuzz/corpus stay as they
# are); findings (crash-*, leak-*, oom-*, timeout-*) to $BUILD/fuzz-runs/<target>/.
# Usage: tests/fuzz/run-all.sh SECONDS [TARGET...]   (BUILD defaults to build-fuzz;
#        FUZZ_TIMEOUT, default 30, is libFuzzer's per-input wall-clock limit in seconds:
#        raise it when the machine is shared, or a starved process reports timeouts)
# Build first: CC=clang cmake -S . -B build-fuzz -DPNEUMO_FUZZ=ON && cmake --build build-fuzz
# Exit status 1 when any target has a finding.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:?usage: $0 SECONDS [TARGET...]}
shift
build=${BUILD:-$src/build-fuzz}
case $build in /*) ;; *) build=$src/$build ;; esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$src"/tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
fi
# Allocations over 1 GiB fail (return NULL) instead of mapping ASan shadow
# for them: a few hundred input bytes can announce a multi-GB DICOM element,
# which the release build reserves lazily but ASan maps, slowly.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=1024}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$src/tests/lsan.supp}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

found=0
printf '%-12s %8s %12s %8s %8s  %s\n' target seconds executions cov new findings
for t in "${targets[@]}"; do
  exe=$build/fuzz_$t
  [ -x "$exe" ] || { echo "no fuzzer $exe (build with -DPNEUMO_FUZZ=ON)"; found=1; continue; }
  work=$build/fuzz-runs/$t
  mkdir -p "$work/corpus"
  before=$(ls "$work/corpus" | wc -l)
  args=(-max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-30}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1
        -artifact_prefix="$work/" -close_fd_mask=1)
  [ -f "$src/tests/fuzz/fuzz_$t.dict" ] && args+=(-dict="$src/tests/fuzz/fuzz_$t.dict")
  # The server frees a connection's response on its own thread after the
  # client has seen EOF, so a per-input leak check races with it (reported a
  # leak that never reproduced); leaks are checked at exit, after the server
  # has stopped, and by the corpus replay under ASan.
  [ "$t" = http ] && args+=(-detect_leaks=0)
  start=$(date +%s)
  touch "$work/.start"
  "$exe" "${args[@]}" "$work/corpus" "$src/tests/fuzz/corpus/$t" > "$work/log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
  new=$(( $(ls "$work/corpus" | wc -l) - before ))
  # Only this run's artifacts; slow units (over 10 s) are reported, not failures.
  findings=$(cd "$work" && find . -maxdepth 1 -newer .start \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \
             -o -name 'timeout-*' \) -printf '%f ' | sed 's/ $//')
  slow=$(cd "$work" && find . -maxdepth 1 -newer .start -name 'slow-unit-*' -printf '%f ')
  if [ $rc -ne 0 ] || [ -n "$findings" ]; then
    found=1
    findings="${findings:-exit $rc} (see $work/log)"
  fi
  [ -n "$slow" ] && findings="${findings:+$findings; }slow: $slow"
  printf '%-12s %8s %12s %8s %8s  %s\n' "$t" "$took" "${execs:-?}" "${cov:-?}" "$new" "${findings:-none}"
done
exit $found
