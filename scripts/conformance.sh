#!/usr/bin/env bash
# Kubernetes' own conformance tests as our referee: build e2e.test, ginkgo and agnhost from the
# bundle's Debian source tree (cached), build the images the chosen tests ask for from our base
# image (nothing is pulled) and load them into the nodes, bring up the conformance lab (or use a
# kept one), and run the suite against it with ginkgo's parallel nodes. JUnit and a summary
# table land in target/conformance/.
#   FOCUS   ginkgo focus (default: every [Conformance] test of [sig-network] Services and DNS)
#   SKIP    ginkgo skip (default none)
#   NODES   ginkgo parallel nodes (default 3)
#   LAB     a kept lab to use instead (left running); by default k8s-conformance-lab is brought
#           up and removed afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
FOCUS=${FOCUS:-'\[sig-network\] (Services|DNS) .*\[Conformance\]'}
SKIP=${SKIP:-}
NODES=${NODES:-3}
# Absolute: ginkgo runs each parallel node in the suite's own directory.
OUT=$(realpath -m "${OUT:-target/conformance}")
log() { echo "[conformance $(date +%T)] $*"; }

cargo build -q
bin=./target/debug/clusterlab
"$bin" bundle >/dev/null
log "building e2e.test, ginkgo and agnhost (cached after the first time)"
suite=$(images/kubernetes/build-conformance.sh)
"$bin" images build >/dev/null
base=$(docker images clusterlab/base --format '{{.Repository}}:{{.Tag}}' | head -n1)
web=$(docker images clusterlab/web --format '{{.Repository}}:{{.Tag}}' | head -n1)

# The names and versions are this source tree's (test/utils/image/manifest.go).
AGNHOST=k8s.gcr.io/e2e-test-images/agnhost:2.21
JESSIE=gcr.io/kubernetes-e2e-test-images/jessie-dnsutils:1.0
BUSYBOX=docker.io/library/busybox:1.29
for want in "promoterE2eRegistry, \"agnhost\", \"2.21\"" "dockerLibraryRegistry, \"busybox\", \"1.29\"" "e2eRegistry, \"jessie-dnsutils\", \"1.0\""; do
  grep -qF "$want" "$suite/manifest.go" || { echo "this suite's manifest.go no longer asks for $want: update scripts/conformance.sh" >&2; exit 1; }
done
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp images/conformance/*.Dockerfile "$suite/agnhost" "$ctx/"
log "building $AGNHOST (also $JESSIE) and $BUSYBOX from $base"
docker build -q --label io.clusterlab.recipe=conformance -t "$AGNHOST" -t "$JESSIE" --build-arg BASE="$base" -f "$ctx/agnhost.Dockerfile" "$ctx" >/dev/null
docker build -q --label io.clusterlab.recipe=conformance -t "$BUSYBOX" --build-arg WEB="$web" -f "$ctx/busybox.Dockerfile" "$ctx" >/dev/null

lab=${LAB:-}
if [ -z "$lab" ]; then
  lab=k8s-conformance-lab
  log "bringing up $lab"
  "$bin" up scenarios/k8s-conformance-lab.yaml
  trap 'rm -rf "$ctx"; "$bin" down "$lab" >/dev/null 2>&1 || true' EXIT
fi
nodes=$(docker ps --filter "label=io.clusterlab.lab=$lab" --filter label=io.clusterlab.node --format '{{.Names}}')
[ -n "$nodes" ] || { echo "no running lab $lab" >&2; exit 1; }
log "loading the images into containerd on: $(echo $nodes)"
pids=""
for n in $nodes; do
  docker save "$AGNHOST" "$JESSIE" "$BUSYBOX" | docker exec -i "$n" ctr -n k8s.io images import - >/dev/null &
  pids="$pids $!"
done
# Each import waited for on its own: a bare `wait` would say 0 even if one failed.
for p in $pids; do wait "$p" || { echo "importing the suite's images into a node failed" >&2; exit 1; }; done
rm -rf "$OUT"; mkdir -p "$OUT"
"$bin" kubeconfig "$lab" > "$OUT/kubeconfig"
log "running Kubernetes' e2e suite: focus '$FOCUS', $NODES parallel nodes"
set +e
# --provider=skeleton: no cloud; the suite's kubectl calls use the host's kubectl with this
# kubeconfig. --disable-log-dump, --dump-logs-on-failure=false: its log dumps need a cloud
# provider's scripts; the lab's logs are in its nodes (/var/log/clusterlab).
# Bounded: the whole set takes ~3 min here; 30 min means something hangs (ginkgo's own default
# is 24 h).
timeout 30m "$suite/ginkgo" -nodes="$NODES" -noColor -succinct "$suite/e2e.test" -- \
  --kubeconfig="$OUT/kubeconfig" --provider=skeleton --report-dir="$OUT" \
  --ginkgo.focus="$FOCUS" ${SKIP:+--ginkgo.skip="$SKIP"} --disable-log-dump --dump-logs-on-failure=false \
  > "$OUT/e2e.log" 2>&1
rc=$?
set -e
scripts/junit-table.sh "$OUT"/junit_*.xml | tee "$OUT/summary.txt"
log "e2e.test exited $rc; log: $OUT/e2e.log, JUnit: $OUT/junit_*.xml"
exit $rc
