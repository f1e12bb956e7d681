# Sourced by the shell tests that train on a slice of the real dataset.

# make_subset DATA OUT STEP COUNT: OUT/train/{NORMAL,PNEUMONIA} with symlinks to
# every STEP-th file of DATA/train/<class> (sorted), at most COUNT per class.
make_subset() {
  local data=$1 out=$2 step=$3 count=$4 cls f
  for cls in NORMAL PNEUMONIA; do
    mkdir -p "$out/train/$cls"
    # awk limits the count itself: with pipefail, head closing the pipe early would fail it
    ls "$data/train/$cls" | sort | awk -v s="$step" -v c="$count" 'NR % s == 1 && ++n <= c' |
      while read -r f; do ln -s "$data/train/$cls/$f" "$out/train/$cls/$f"; done
  done
}

# kermany_or_skip WHAT: sets bin, src and data (the shared Kermany dataset), or
# exits 77 (CTest: skipped) saying that WHAT cannot be tested without it.
kermany_or_skip() {
  bin=${PNEUMO_BIN:?PNEUMO_BIN not set}
  src=${PNEUMO_SOURCE_DIR:?}
  data="$src/../shared/data/kermany"
  if [ ! -d "$data/train/NORMAL" ]; then
    echo "SKIP: $data is absent, so $1 cannot be tested here"
    exit 77
  fi
}

# scratch_dir NAME: a fresh temporary directory in $tmp, removed on exit (its
# *.err files are shown when the test fails).
scratch_dir() {
  tmp=$(mktemp -d "/tmp/pneumo-$1-XXXXXX")
  trap 'rc=$?; [ $rc -ne 0 ] && cat "$tmp"/*.err 2>/dev/null; rm -rf "$tmp"' EXIT
}

# mpi_or_skip: exits 77 (CTest: skipped) unless this build has MPI and mpirun
# is installed; lets mpirun run as root (containers) and oversubscribe cores.
mpi_or_skip() {
  if [ "${PNEUMO_WITH_MPI:-0}" != 1 ]; then
    echo "SKIP: pneumo is built without MPI (install libopenmpi-dev and openmpi-bin, then reconfigure)"
    exit 77
  fi
  if ! command -v mpirun > /dev/null; then
    echo "SKIP: mpirun is absent (Debian package openmpi-bin)"
    exit 77
  fi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  mpirun=(mpirun --oversubscribe)
  # Under the sanitizers, processes started by mpirun do not check leaks: Open
  # MPI's components are dlopen'ed plugins whose allocations outlive
  # MPI_Finalize and which are unloaded before LeakSanitizer runs, so it can
  # neither name nor suppress them. Memory errors still abort; pneumo's own
  # group code is leak-checked in one process by test_dist_comm.
  if [ "${PNEUMO_SANITIZED:-0}" = 1 ]; then
    mpirun=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun --oversubscribe)
  fi
}
