#!/usr/bin/env bash
# Installs the Debian packages pneumo needs to build, test and benchmark.
# Idempotent: packages already present are skipped, so `make test` stays fast
# on a machine that has them. Usage: scripts/install-deps.sh [build|package|test|bench|all]
set -euo pipefail
what=${1:-all}

# libopenmpi-dev: data-parallel training (`mpirun -np N pneumo train`); pneumo builds without it.
build_pkgs=(build-essential cmake pkg-config libdnnl-dev libjpeg62-turbo-dev libpng-dev
            libmicrohttpd-dev libgnutls28-dev libsqlite3-dev libcairo2-dev libjansson-dev libdcmtk-dev
            protobuf-c-compiler libprotobuf-c-dev libcsv-dev libopenmpi-dev)
# package: `make package` (the man page from --help; file for CPack's dpkg-shlibdeps step)
package_pkgs=(help2man file)
# dcmtk: img2dcm, dcmodify, dump2dcm, dcmcjpeg, dcmcjpls, dcmcrle, dcm2pnm make and check the DICOM test files.
# wrk and the sqlite3 shell: tests/serve_kill_test.sh (SIGKILL under load, integrity_check)
# python3-onnx: the ONNX checker for exported graphs (tests/onnx_export_test.sh)
# openmpi-bin: mpirun for the data-parallel tests (tests/dist_*_test.sh)
# mmdebstrap, lintian, podman (+ uidmap, fuse-overlayfs, slirp4netns for rootless use): the
# Debian package and container image tests (tests/deb_package_test.sh, tests/container_test.sh)
test_pkgs=(libcmocka-dev python3-sklearn python3-numpy python3-onnx chromium curl dcmtk wrk sqlite3 openssl python3-skimage
           openmpi-bin mmdebstrap lintian podman uidmap fuse-overlayfs slirp4netns)
# Node.js may come from another source (with npm bundled); install Debian's only when absent.
command -v npm >/dev/null || test_pkgs+=(nodejs npm)
# bench: the PyTorch peer; clang's libFuzzer for tests/fuzz (cmake -DPNEUMO_FUZZ=ON, tests/fuzz/run-all.sh)
bench_pkgs=(python3-torch python3-torchvision clang libclang-rt-14-dev)

case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  package) pkgs=("${build_pkgs[@]}" "${package_pkgs[@]}") ;;
  test)  pkgs=("${build_pkgs[@]}" "${package_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench|all) pkgs=("${build_pkgs[@]}" "${package_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|package|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Browser tests drive Debian's chromium through playwright-core (no browser download).
case "$what" in build|package) exit 0 ;; esac
if [ ! -d tests/browser/node_modules/playwright-core ] && command -v npm >/dev/null; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent) || echo "warning: npm ci failed; browser tests will be skipped" >&2
fi
# ONNX Runtime for the export test: only the CPU library bundled in the npm
# package (ONNXRUNTIME_NODE_INSTALL=skip: its install script downloads nothing).
if [ ! -d tests/onnx/node_modules/onnxruntime-node ] && command -v npm >/dev/null; then
  (cd tests/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --silent) ||
    echo "warning: npm ci failed; the ONNX Runtime comparison will be skipped" >&2
fi
