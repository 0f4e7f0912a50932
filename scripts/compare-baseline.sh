#!/usr/bin/env bash
# `clusterlab up` of the 3-node swarm lab (3-replica service on an overlay) next to the hand-run
# baseline doing the same docker commands (../shared/bench/swarm-baseline.sh), in one run,
# alternating A B A B ... so drift on a shared machine hits both alike. Prints each sample and
# the ratio of medians. Run from the repository root; ROUNDS=3 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SHARED=${SHARED:-../shared}
cargo build -q --release
CL=./target/release/clusterlab
$CL images build >/dev/null
tag() { $CL images ls | awk -v n="$1" '$1==n {print $2}'; }
export NODE_IMAGE=$(tag node) WEB_IMAGE=$(tag web)
now() { date +%s.%N; }
declare -a A B TA TB
for i in $(seq 1 "$ROUNDS"); do
  out=$(bash "$SHARED/bench/swarm-baseline.sh")
  A+=($(echo "$out" | awk '/service-converged/ {print $2}'))
  TA+=($(echo "$out" | awk '/teardown/ {print $2}'))
  t0=$(now); $CL up scenarios/swarm-vxlan-blocked.yaml > /tmp/clusterlab-swarm-up.log; t1=$(now)
  $CL down swarm-vxlan-blocked >/dev/null; t2=$(now)
  B+=($(python3 -c "print(f'{$t1-$t0:.1f}')")); TB+=($(python3 -c "print(f'{$t2-$t1:.1f}')"))
  echo "round $i: baseline up ${A[-1]} s, teardown ${TA[-1]} s | clusterlab up ${B[-1]} s, down ${TB[-1]} s"
  grep -E '^ ✓ |· [0-9.]+ s$' /tmp/clusterlab-swarm-up.log | sed 's/^/    /'
done
python3 - "${A[*]}" "${B[*]}" "${TA[*]}" "${TB[*]}" <<'PY'
import statistics as s, sys
a, b, ta, tb = ([float(x) for x in v.split()] for v in sys.argv[1:5])
print(f"median up: baseline {s.median(a):.1f} s, clusterlab {s.median(b):.1f} s, ratio {s.median(b)/s.median(a):.2f} (target <= 0.9)")
print(f"median teardown: baseline {s.median(ta):.1f} s, clusterlab {s.median(tb):.1f} s")
PY
