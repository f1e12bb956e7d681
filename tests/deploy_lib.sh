# Sourced by the deployment tests (deb_package_test.sh, container_test.sh):
# a clean Debian bookworm root filesystem made by mmdebstrap from the Debian
# archive apt uses on this machine, cached in the build directory.

skip() { echo "SKIP: $*"; exit 77; }
# step WHAT: prints WHAT with the seconds since the test started.
step() { echo "[$SECONDS s] $*"; }

# deploy_setup NAME: sets src, build, cache (BUILD/deploy-cache) and a fresh
# $tmp removed on exit; skips unless root (chroot, mounts and image builds
# need it) and the tools named after NAME are installed.
deploy_setup() {
  local name=$1 tool; shift
  src=${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
  build=${PNEUMO_BUILD_DIR:-$src/build}
  cache=$build/deploy-cache
  [ "$(id -u)" = 0 ] || skip "$name needs root (chroot, mounts, image builds); run it as root"
  for tool in "$@"; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh test installs it)"
  done
  mkdir -p "$cache"
  tmp=$(mktemp -d "/tmp/pneumo-$name-XXXXXX")
}

# debian_sources: the "deb URI SUITE COMPONENT..." lines of the Debian bookworm
# archives in apt's lists here (bookworm, -updates, -security), whatever the
# sources file's format.
debian_sources() {
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
      'Identifier: Packages' 'Origin: Debian' 2>/dev/null |
    awk '$2 ~ /^bookworm(-updates|-security)?$/ { k = $1 " " $2; if (!(k in c)) order[n++] = k;
                                                 if (index(" " c[k] " ", " " $3 " ") == 0) c[k] = c[k] " " $3 }
         END { for (i = 0; i < n; i++) print "deb " order[i] c[order[i]] }'
}

# seed_apt_cache ROOT: hard links of this machine's downloaded .debs in
# ROOT/var/cache/apt/archives, so apt there downloads only what is not cached
# (apt checks each file's hash; nothing is linked across file systems). A
# shell command, also given to mmdebstrap as a hook.
seed_cache_cmd='mkdir -p "$1/var/cache/apt/archives" &&
  { cp -al /var/cache/apt/archives/*.deb "$1/var/cache/apt/archives/" 2>/dev/null || true; }'
seed_apt_cache() { sh -c "$seed_cache_cmd" sh "$1"; }

# bookworm_tarball: sets tarball to BUILD/deploy-cache/bookworm-slim.tar, a
# minbase bookworm root filesystem made by mmdebstrap once per build directory,
# configured as the debian:bookworm-slim image is: the essential and required
# packages, dpkg without fsync (force-unsafe-io) and without documentation
# (only copyright files), man pages or translations.
bookworm_tarball() {
  tarball=$cache/bookworm-slim.tar
  exec 9>"$cache/bookworm.lock"
  flock 9
  if [ ! -s "$tarball" ]; then
    local sources
    sources=$(debian_sources)
    [ -n "$sources" ] || skip "apt's lists name no Debian bookworm archive (run apt-get update)"
    echo "making $tarball with mmdebstrap from:"
    echo "$sources" | sed 's/^/  /'
    local t0=$SECONDS
    mmdebstrap --variant=minbase --mode=root --format=tar --dpkgopt=force-unsafe-io \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/groff/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --setup-hook="$seed_cache_cmd" \
        bookworm "$cache/bookworm-slim.partial.tar" - <<<"$sources" >"$cache/mmdebstrap.log" 2>&1 || {
      tail -n 20 "$cache/mmdebstrap.log"
      rm -f "$cache/bookworm-slim.partial.tar"
      echo "FAIL: mmdebstrap could not make a bookworm root filesystem (log above)"
      exit 1
    }
    mv "$cache/bookworm-slim.partial.tar" "$tarball"
    echo "made $tarball in $((SECONDS - t0)) s"
  fi
  exec 9>&-
}

# sample_image DIR: puts one chest X-ray in DIR (the first of
# ../shared/data/samples_orig when present) or else a synthetic 8-bit PNG;
# prints its path. Commands given it predict with --force, as the gate
# refuses a synthetic image.
sample_image() {
  local dir=$1 orig f
  orig=${PNEUMO_SHARED_DIR:-$src/../shared}/data/samples_orig
  mkdir -p "$dir"
  f=$(find "$orig" -name '*.jpeg' 2>/dev/null | sort | head -n 1)
  if [ -n "$f" ]; then
    cp "$f" "$dir/" && echo "$dir/$(basename "$f")"
    return
  fi
  python3 - "$dir/synthetic.png" <<'PY'
import struct, sys, zlib
w = h = 256  # a bright oval (lungs-like) on a dark gradient, 8-bit gray
rows = b"".join(b"\0" + bytes(min(255, 40 + y // 4 + (150 if ((x - 128) / 90) ** 2 + ((y - 128) / 110) ** 2 < 1 else 0))
                              for x in range(w)) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
  echo "$dir/synthetic.png"
}
