#!/usr/bin/env bash
# Same run, same machine: (1) the harness's swarm bench next to the hand-run baseline
# (../shared/bench/path-baseline.sh, with our node and tools images), rounds alternating; (2) the
# harness's `direct` figure next to a hand-run iperf3 between the same two endpoints of a kept lab.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q
CL=./target/debug/clusterlab
$CL images build >/dev/null
tag() { $CL images ls | awk -v n="$1" '$1==n {print $2}'; }
export NODE_IMAGE=$(tag node) IPERF_IMAGE=$(tag tools)
base=../shared/bench/path-baseline.sh
json=$(mktemp)
trap 'rm -f "$json"; $CL down swarm-paths-throughput >/dev/null 2>&1 || true' EXIT

direct_median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); p=[p for p in r["runs"][0]["benches"][0]["paths"] if p["path"]==sys.argv[2]][0]; print(round(p["median"]/1e9,2))' "$json" "$1"; }

for round in 1 2; do
  echo "== round $round: hand-run baseline ($base)"
  bash "$base"
  echo "== round $round: clusterlab bench (node, direct)"
  $CL run scenarios/swarm-paths-throughput.yaml --report json="$json" >/dev/null
  echo "clusterlab node $(direct_median node) Gbit/s   direct $(direct_median direct) Gbit/s"
done

echo "== the same two endpoints: clusterlab's direct, then iperf3 by hand, alternating"
$CL run scenarios/swarm-paths-throughput.yaml --keep --report json="$json" >/dev/null
target=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); p=[p for p in r["runs"][0]["benches"][0]["paths"] if p["path"]=="direct"][0]; print(p["how"].split()[2].split(":")[0])' "$json")
echo "clusterlab direct (3 x 2 s, median): $(direct_median direct) Gbit/s to $target"
for k in 1 2 3; do
  docker exec swarm-paths-throughput-manager docker exec clusterlab-perf-labnet iperf3 -c "$target" -t 2 -J \
    | python3 -c 'import json,sys; print("hand-run iperf3 -c", sys.argv[1], "-t 2:", round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2), "Gbit/s")' "$target"
done
