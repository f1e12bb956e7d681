#!/usr/bin/env bash
# The recipe ablations of models/MODEL_CARD.md: each variant of recipes/default.recipe
# cross-validated with the same patient-wise folds (seed 42), one `pneumo cv` per variant.
# Usage: scripts/cv-ablations.sh OUT_DIR FOLDS VARIANT...   (variants: see the case below)
# Each variant writes OUT_DIR/<variant>/cv.json; the folds' image cache is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PNEUMO_BIN:-build/pneumo}
out=$1 folds=$2
shift 2
pretrained=../shared/pretrained
mkdir -p "$out"

variant_options() {
    case $1 in
    base)     echo "" ;;
    mixup)    echo "--mixup 0.2" ;;
    clahe)    echo "--clahe 1" ;;
    ema)      echo "--ema 0.998" ;;
    strong)   echo "--augment-preset strong" ;;
    epochs16) echo "--epochs 16" ;;
    size160)  echo "--input-size 160" ;;
    mnv2)     echo "--arch mobilenetv2 --init $pretrained/mobilenet_v2_1.0_224_onnxzoo_bnfolded_f32.safetensors" ;;
    scratch)  echo "--recipe $out/scratch.recipe" ;;
    *) echo "unknown variant: $1" >&2; return 2 ;;
    esac
}

# Training from scratch: the default recipe without its ImageNet initialisation.
grep -v -E '^(init|init-skip) *=' recipes/default.recipe > "$out/scratch.recipe"

for v in "$@"; do
    opts=$(variant_options "$v")
    recipe="--recipe recipes/default.recipe"
    [[ $v == scratch ]] && recipe=""
    mkdir -p "$out/$v"
    [[ -e $out/cache-224.bin && ! -e $out/$v/cache-224.bin ]] && ln -s ../cache-224.bin "$out/$v/cache-224.bin"
    echo "== $v: pneumo cv $recipe --folds $folds --threads 1 $opts" >&2
    # shellcheck disable=SC2086  # options are words by design
    "$bin" cv $recipe --folds "$folds" --threads 1 $opts --out "$out/$v" > "$out/$v/log.txt" 2>&1
    [[ -e $out/cache-224.bin ]] || { [[ -f $out/$v/cache-224.bin ]] && ln "$out/$v/cache-224.bin" "$out/cache-224.bin"; } || true
done
