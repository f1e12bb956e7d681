#!/usr/bin/env bash
# The Debian package (`make package`, cmake/package.cmake) on a clean Debian:
# its contents and control fields (lintian when installed), its Depends equal
# to the packages of the libraries the binary links, then `apt-get install
# ./pneumo_*.deb` in a fresh bookworm root filesystem made by mmdebstrap
# (cached in BUILD/deploy-cache for container_test.sh), where `pneumo predict`
# and `pneumo serve` + curl /healthz run from the installed files as an
# unprivileged user; remove and purge last. Skips (77) without root or the tools.
set -euo pipefail
. "$(dirname "$0")/deploy_lib.sh"
deploy_setup deb_package_test mmdebstrap cpack dpkg-deb apt-get chroot unshare flock python3
root=$tmp/root
cleanup() {
  local rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$tmp/serve.log" ] && sed 's/^/  server: /' "$tmp/serve.log"
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
SECONDS=0

# The package, made as `make package` makes it, into $tmp/pkg.
(cd "$build" && cpack -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/pkg/pneumo_*.deb)
step "package made: $(basename "$deb") ($(du -h "$deb" | cut -f1))"

# Contents: the binary, the model, the man page, the unit, the conffile; nothing in /usr/local.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/bin/pneumo /usr/share/pneumo/default.safetensors /usr/share/pneumo/arch/resnet18.cfg \
         /usr/share/man/man1/pneumo.1.gz /usr/lib/systemd/system/pneumo.service /etc/default/pneumo \
         /usr/share/doc/pneumo/copyright /usr/share/doc/pneumo/changelog.Debian.gz; do
  grep -qx "$f" "$tmp/files" || fail "$f is not in the package"
done
! grep -q '^/usr/local' "$tmp/files" || fail "the package installs into /usr/local: $(grep '^/usr/local' "$tmp/files")"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/default/pneumo ||
  fail "/etc/default/pneumo is not a conffile"
dpkg-deb -x "$deb" "$tmp/x"
unit=$tmp/x/usr/lib/systemd/system/pneumo.service
for want in 'ExecStart=/usr/bin/pneumo serve --audit-db %S/pneumo/audit.db $PNEUMO_SERVE_OPTS' \
            DynamicUser=yes StateDirectory=pneumo EnvironmentFile=/etc/default/pneumo ProtectSystem=strict \
            NoNewPrivileges=yes PrivateTmp=yes RestrictAddressFamilies=; do
  grep -q "^$want" "$unit" || fail "pneumo.service lacks $want"
done
cmp -s "$src/models/default.safetensors" "$tmp/x/usr/share/pneumo/default.safetensors" ||
  fail "the packaged model differs from models/default.safetensors"
if command -v systemd-analyze >/dev/null; then
  # The unit parsed by this machine's systemd: no unknown key or bad value
  # (warnings on stderr), and its exposure level (0 best, 10 worst) at most 2.
  systemd-analyze security --offline=true --root="$tmp/x" pneumo.service >"$tmp/security.out" 2>"$tmp/security.err" || true
  [ ! -s "$tmp/security.err" ] || { cat "$tmp/security.err"; fail "systemd-analyze does not accept pneumo.service"; }
  level=$(sed -n 's/.*Overall exposure level for pneumo.service: \([0-9.]*\).*/\1/p' "$tmp/security.out")
  echo "systemd-analyze security: exposure $level"
  [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' ||
    { grep -v '^✓' "$tmp/security.out"; fail "pneumo.service exposure level '$level' is above 2.0"; }
fi

# Depends: exactly the packages that hold the shared libraries the binary links.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//' | sort -u >"$tmp/depends"
objdump -p "$tmp/x/usr/bin/pneumo" | awk '$1 == "NEEDED" {print $2}' | while read -r so; do
  # (awk reads all of ldconfig's output: with pipefail, an early exit would fail the pipe)
  path=$(ldconfig -p | awk -v so="$so" '$1 == so && p == "" {p = $NF} END {print p}')
  dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path"
done | cut -d: -f1 | sort -u >"$tmp/needed"
diff "$tmp/needed" "$tmp/depends" >"$tmp/depdiff" ||
  fail "Depends differs from the packages of the linked libraries (< linked only, > Depends only): $(cat "$tmp/depdiff")"

if command -v lintian >/dev/null; then
  lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs "$deb" >"$tmp/lintian.log" 2>&1 ||
    { cat "$tmp/lintian.log"; fail "lintian"; }
  step "lintian: no error or warning"; grep -v "root privileges" "$tmp/lintian.log" || true
fi

# A clean bookworm, the package installed by apt as the README says.
bookworm_tarball
step "bookworm root filesystem ready"
mkdir "$root"
tar -xf "$tarball" -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
seed_apt_cache "$root"
cp "$deb" "$root/tmp/"
sample=$(sample_image "$root/tmp/samples")
sample=${sample#"$root"}
# in_root CMD...: CMD in the root filesystem, with /proc and /dev, in its own
# mount and PID namespaces (mounts and processes end with it).
in_root() {
  unshare --mount --pid --fork --kill-child -- sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && exec chroot "$root" "$@"' \
    sh "$root" "$@"
}
in_root dpkg-query -W -f '${Package}\n' | sort >"$tmp/before"
step "root filesystem unpacked"
in_root sh -c 'cd /tmp && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./pneumo_*.deb' \
  >"$tmp/apt.log" 2>&1 || { tail -n 30 "$tmp/apt.log"; fail "apt-get install ./pneumo_*.deb in a clean bookworm"; }
in_root dpkg-query -W -f '${Package}\n' | sort >"$tmp/after"
added=$(comm -13 "$tmp/before" "$tmp/after")
step "apt-get install ./$(basename "$deb"): $(wc -w <<<"$added") packages"
bad=$(grep -E -- '-dev$|^(gcc|g\+\+|cpp|cmake|make|help2man|dpkg-dev)(-[0-9.]+)?$' <<<"$added" || true)
[ -z "$bad" ] || fail "installing the package pulled build tools or -dev packages: $bad"
in_root ldd /usr/bin/pneumo >"$tmp/ldd" || fail "ldd /usr/bin/pneumo"
! grep -q 'not found' "$tmp/ldd" || fail "libraries missing after install: $(grep 'not found' "$tmp/ldd")"
[ -s "$root/etc/systemd/system/multi-user.target.wants/pneumo.service" ] ||
  [ -L "$root/etc/systemd/system/multi-user.target.wants/pneumo.service" ] || fail "pneumo.service was not enabled"

# The installed binary with its installed model (no --model), as an unprivileged user.
as_nobody() { in_root setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as_nobody pneumo predict --force --format csv "$sample" >"$tmp/predict.csv" 2>"$tmp/predict.err" ||
  { cat "$tmp/predict.err"; fail "pneumo predict in the clean bookworm"; }
cat "$tmp/predict.csv"
step "pneumo predict ran"
grep -Eq ',(NORMAL|PNEUMONIA),' "$tmp/predict.csv" || fail "pneumo predict printed no label"
as_nobody pneumo arch show resnet18 >/dev/null || fail "pneumo arch show resnet18 (the installed architecture files)"

# pneumo serve on a free port (0: the kernel's choice), curl /healthz inside the root.
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl' >>"$tmp/apt.log" 2>&1 ||
  { tail -n 20 "$tmp/apt.log"; fail "apt-get install curl"; }
in_root sh -c 'mkdir -p /var/lib/pneumo-test && chown 65534:65534 /var/lib/pneumo-test'
in_root sh -c '
  setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    pneumo serve --port 0 --audit-db /var/lib/pneumo-test/audit.db 2>/tmp/serve.log & pid=$!
  port=
  for i in $(seq 1 600); do
    port=$(sed -n "s|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p" /tmp/serve.log | head -n 1)
    [ -n "$port" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the server did not start"; exit 1; }
  curl -fsS "http://127.0.0.1:$port/healthz" && echo && curl -fsS -F "file=@$1" "http://127.0.0.1:$port/api/v1/predict?force=1" >/tmp/answer.json &&
    kill -TERM $pid && wait $pid' sh "$sample" >"$tmp/serve.out" 2>&1 || {
  cat "$tmp/serve.out"; cp "$root/tmp/serve.log" "$tmp/serve.log" 2>/dev/null; fail "pneumo serve + curl /healthz in the clean bookworm"; }
grep -q '"ok"' "$tmp/serve.out" || fail "/healthz answered: $(cat "$tmp/serve.out")"
grep -Eq '"label": *"(NORMAL|PNEUMONIA)"' "$root/tmp/answer.json" || fail "API answer: $(head -c 300 "$root/tmp/answer.json")"
[ -s "$root/var/lib/pneumo-test/audit.db" ] || fail "no audit database written"

step "pneumo serve answered /healthz and a prediction"
# Remove keeps the conffile; purge removes it.
in_root sh -c 'apt-get remove -y -q pneumo' >>"$tmp/apt.log" 2>&1 || { tail -n 20 "$tmp/apt.log"; fail "apt-get remove pneumo"; }
[ -f "$root/etc/default/pneumo" ] || fail "apt-get remove deleted the conffile"
[ ! -e "$root/usr/bin/pneumo" ] || fail "apt-get remove left /usr/bin/pneumo"
in_root sh -c 'apt-get purge -y -q pneumo' >>"$tmp/apt.log" 2>&1 || { tail -n 20 "$tmp/apt.log"; fail "apt-get purge pneumo"; }
[ ! -e "$root/etc/default/pneumo" ] || fail "apt-get purge left /etc/default/pneumo"
step "deb_package_test passed"
