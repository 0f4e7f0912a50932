#!/usr/bin/env bash
# Build Kubernetes' own end-to-end suite (e2e.test, and the ginkgo runner for parallel nodes) and
# agnhost (the suite's test server) from the same Debian source package as the bundle, with the
# bundle's Go cache (same build directory, so the compiler's keys match: minutes, not the bundle's
# 20). Cached by version beside the bundles; prints the directory last.
#   VERSION   the Debian source version to expect (default 1.20.2)
#   CACHE     default ${XDG_CACHE_HOME:-~/.cache}/clusterlab/bundles
set -euo pipefail
VERSION=${VERSION:-1.20.2}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterlab/bundles}
OUT=$CACHE/conformance-$VERSION
BINS="e2e.test ginkgo agnhost"
have_all() { for b in $BINS; do [ -x "$OUT/$b" ] || return 1; done; [ -f "$OUT/manifest.go" ]; }
if have_all; then echo "conformance suite $VERSION is cached" >&2; echo "$OUT"; exit 0; fi
step() { echo "[$(date +%T)] $*" >&2; }

if ! command -v go >/dev/null || ! command -v dpkg-source >/dev/null || ! command -v rsync >/dev/null; then
  step "installing golang-go, dpkg-dev and rsync"
  # DPkg::Lock::Timeout: the bundle and the images build at once (.ci/run, or a user in two
  # terminals); either may be installing packages, so wait for dpkg's lock instead of failing.
  (DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q golang-go dpkg-dev rsync ||
   { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q golang-go dpkg-dev rsync; }) >&2
fi
SRC_LIST=/etc/apt/sources.list.d/clusterlab-deb-src.sources
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  step "adding deb-src entries next to the host's Debian sources"
  sed -n '/^Types: deb$/,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Types: deb$/Types: deb-src/' > "$SRC_LIST"
  apt-get update -q >&2
fi

# The bundle's build directory and Go cache (see build-bundle.sh: -trimpath keys on the path).
work=$CACHE/build-$VERSION
if [ -e "$work" ]; then echo "$work is in use (a bundle build running?); try again when it is done" >&2; exit 1; fi
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
cd "$work"
step "fetching Debian's kubernetes source package"
apt-get source -q kubernetes >&2
src=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[ -n "$src" ] || { echo "apt-get source kubernetes gave no source tree" >&2; exit 1; }
cd "$src"
mkdir -p "$CACHE/go-build" _output/local/go
ln -sfn "$CACHE/go-build" _output/local/go/cache
export GOFLAGS=-mod=vendor GO111MODULE=on
step "compiling $BINS (about 6 minutes with the bundle's Go cache)"
make WHAT="test/e2e/e2e.test vendor/github.com/onsi/ginkgo/ginkgo test/images/agnhost" >&2
mkdir -p "$OUT.tmp"
for b in $BINS; do
  f=$(find _output -type f -name "$b" -perm -u+x | head -n1)
  [ -n "$f" ] || { echo "build produced no $b" >&2; exit 1; }
  cp "$f" "$OUT.tmp/$b"
done
# The image names and versions this suite asks for: scripts/conformance.sh builds them from our
# base image under exactly those names (nothing is pulled), and checks them against this file.
cp test/utils/image/manifest.go "$OUT.tmp/manifest.go"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
step "conformance suite ready in $OUT"
echo "$OUT"
