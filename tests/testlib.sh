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
