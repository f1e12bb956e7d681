#!/usr/bin/env bash
# A build on a machine missing a dependency says which Debian package to
# install and to run `make deps`, instead of CMake's bare "A required package
# was not found". Simulated with CMake's standard switch that hides a package.
set -u
src="${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0
for pkg in PNG:libpng-dev JPEG:libjpeg62-turbo-dev; do
    name=${pkg%%:*} debian=${pkg#*:}
    if cmake -S "$src" -B "$tmp/$name" -DCMAKE_DISABLE_FIND_PACKAGE_$name=TRUE >"$tmp/$name.log" 2>&1; then
        echo "FAIL: configuring without $name succeeded"; status=1; continue
    fi
    if grep -q "$debian" "$tmp/$name.log" && grep -q 'make deps' "$tmp/$name.log"; then
        echo "ok - without $name the build names $debian and make deps"
    else
        echo "FAIL: without $name the message does not name $debian and make deps:"; cat "$tmp/$name.log"; status=1
    fi
done
exit $status
