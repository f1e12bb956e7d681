#!/usr/bin/env bash
# The container image (Containerfile) built by Debian's podman with chroot
# isolation, on a debian:bookworm-slim imported from the mmdebstrap root
# filesystem of deb_package_test.sh (no registry is reachable; the tarball's
# apt sources are this machine's Debian archive). Checks the runtime image's
# user, port, health check and volume, then builds the test stage, whose RUN
# predicts a sample and serves it (tests/container_selftest.sh). Images live
# in a podman store of their own under BUILD/deploy-cache (never the
# machine's debian:bookworm-slim). Skips (77) without root or podman.
set -euo pipefail
. "$(dirname "$0")/deploy_lib.sh"
deploy_setup container_test podman mmdebstrap flock python3
store=$cache/podman
trap 'rc=$?; rm -rf "$tmp"; exit $rc' EXIT
fail() { echo "FAIL: $*"; exit 1; }
SECONDS=0
pod() { podman --root "$store/root" --runroot "$store/run" --storage-driver overlay "$@"; }

bookworm_tarball
step "bookworm root filesystem ready"
# Imported again when the tarball is remade (its modification time is the stamp).
stamp=$(stat -c %Y "$tarball")
if ! pod image exists debian:bookworm-slim || [ "$(cat "$store/imported" 2>/dev/null)" != "$stamp" ]; then
  pod import "$tarball" debian:bookworm-slim >"$tmp/import.log" 2>&1 ||
    { cat "$tmp/import.log"; skip "podman cannot import an image here"; }
  echo "$stamp" >"$store/imported"
  step "imported $tarball as debian:bookworm-slim"
fi
# This machine's downloaded .debs, seen by apt in the build's RUN steps through
# an overlay (its writes are dropped), so apt downloads only what is missing.
cache_mount=()
[ -d /var/cache/apt/archives ] && cache_mount=(-v /var/cache/apt/archives:/var/cache/apt/archives:O)
build_image() { # build_image TARGET LOG [podman build args...]
  local target=$1 log=$2; shift 2
  pod build --isolation chroot --format docker --target "$target" "${cache_mount[@]}" "$@" "$src" >"$log" 2>&1 ||
    { tail -n 40 "$log"; fail "podman build --target $target"; }
  step "podman build --target $target done"
}

build_image runtime "$tmp/runtime.log" -t pneumo:test
inspect() { pod image inspect --format "$1" pneumo:test; }
user=$(inspect '{{.Config.User}}')
[ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || fail "the image runs as '$user', not a non-root user"
inspect '{{json .Config.ExposedPorts}}' | grep -q '"8080/tcp"' || fail "the image does not EXPOSE 8080"
inspect '{{json .Config.Volumes}}' | grep -q '"/var/lib/pneumo"' || fail "no volume for the audit database"
inspect '{{json .Config.Healthcheck}}' | grep -q '/healthz' || fail "no HEALTHCHECK on /healthz"
inspect '{{json .Config.Env}}' | grep -q 'PNEUMO_AUDIT_DB=/var/lib/pneumo/' || fail "the audit database is not on the volume"
echo "image: user $user, port 8080, volume /var/lib/pneumo, $(pod image inspect --format '{{.Size}}' pneumo:test | awk '{printf "%.0f MB", $1 / 1e6}')"

# The test stage: predict and serve inside the image, a sample mounted at /samples.
sample_image "$tmp/samples" >/dev/null
build_image test "$tmp/test.log" -v "$tmp/samples:/samples:ro"
grep -E '^(file,|"/samples)|container self-test passed' "$tmp/test.log" || fail "the self-test printed nothing"
pod rmi -f pneumo:test >/dev/null 2>&1 || true
pod image prune -f >/dev/null 2>&1 || true
step "container_test passed"
