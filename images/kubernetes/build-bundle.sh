#!/usr/bin/env bash
# Build the Kubernetes server binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy) from Debian's `kubernetes` source package with Debian's Go, into a cache
# keyed by version. Reused when present; never committed. Prints the bundle directory last.
#   VERSION   the Debian source version to expect (default 1.20.2)
#   CACHE     default ${XDG_CACHE_HOME:-~/.cache}/clusterlab/bundles
set -euo pipefail
VERSION=${VERSION:-1.20.2}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterlab/bundles}
OUT=$CACHE/kubernetes-$VERSION
BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
# dockerless: kubelet without dockershim and cAdvisor's Docker plugin (labs run containerd's CRI
# only). With them, every kubelet start waited 5 s for a Docker daemon that is not there
# (cAdvisor asks for Docker's root directory 5 times, a second apart). Kubernetes itself builds
# this way from 1.24. A bundle built with other tags is built again.
TAGS=dockerless
have_all() { for b in $BINS; do [ -x "$OUT/$b" ] || return 1; done; [ "$(cat "$OUT/build-tags" 2>/dev/null)" = "$TAGS" ]; }
if have_all; then echo "bundle kubernetes-$VERSION is cached" >&2; echo "$OUT"; exit 0; fi
step() { echo "[$(date +%T)] $*" >&2; }

# Debian's Go, the tools `apt-get source` needs, and rsync (Kubernetes' makefiles copy with it).
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

# A fixed build directory: Kubernetes passes -trimpath=<source dir> to the compiler, and Go's
# build cache keys include those flags, so a random directory would miss the cache every time.
work=$CACHE/build-$VERSION
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
cd "$work"
step "fetching Debian's kubernetes source package"
apt-get source -q kubernetes >&2
src=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[ -n "$src" ] || { echo "apt-get source kubernetes gave no source tree" >&2; exit 1; }
case "$src" in *"$VERSION"*) ;; *) echo "warning: source is $src, expected $VERSION" >&2 ;; esac
cd "$src"
# Kubernetes' make keeps Go's build cache inside the tree (_output/local/go/cache, GOCACHE is
# overridden); point that at a cache beside the bundles so a rebuild (a new version, a wiped
# bundle) reuses compiled packages instead of starting cold.
mkdir -p "$CACHE/go-build" _output/local/go
ln -sfn "$CACHE/go-build" _output/local/go/cache
export GOFLAGS="-mod=vendor -tags=$TAGS" GO111MODULE=on
step "compiling $BINS (about 20 minutes on 2 cores)"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy" >&2
mkdir -p "$OUT.tmp"
for b in $BINS; do
  f=$(find _output -type f -name "$b" -perm -u+x | head -n1)
  [ -n "$f" ] || { echo "build produced no $b" >&2; exit 1; }
  cp "$f" "$OUT.tmp/$b"
done
echo "$TAGS" > "$OUT.tmp/build-tags"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
step "bundle ready in $OUT"
echo "$OUT"
