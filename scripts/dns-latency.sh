#!/usr/bin/env bash
# How soon the cluster DNS of a kept Kubernetes lab follows the API: create a Service, then ask
# for its name every 20 ms until it resolves; delete it, then ask until the name is gone. Times
# run from the moment kubectl returned (the object is in the API) to the first answer showing the
# change, through the DNS's Service address as a pod would ask. One line per round, then medians.
#   scripts/dns-latency.sh LAB [ROUNDS]      (after: clusterlab up scenarios/k8s-dns-down.yaml)
set -euo pipefail
lab=${1:?usage: scripts/dns-latency.sh LAB [ROUNDS]}
rounds=${2:-10}
cd "$(dirname "$0")/.."
script='
set -eu
K="kubectl --kubeconfig /etc/k8s/kubeconfig --request-timeout=15s"
dns=$($K -n kube-system get service kube-dns -o jsonpath="{.spec.clusterIP}")
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
ask() { dig +short +time=1 +tries=1 @"$dns" "$1.default.svc.cluster.local"; }
for i in $(seq 1 "$0"); do
  n=latency-probe-$i
  # Each wait is bounded: 10 s without the change is a failure, not a long number.
  $K create service clusterip "$n" --tcp=80 >/dev/null; t=$(date +%s%N)
  until [ -n "$(ask "$n")" ]; do [ "$(ms "$t")" -lt 10000 ] || { echo "$n did not resolve within 10 s" >&2; exit 1; }; sleep 0.02; done; add=$(ms "$t")
  $K delete service "$n" >/dev/null; t=$(date +%s%N)
  until [ -z "$(ask "$n")" ]; do [ "$(ms "$t")" -lt 10000 ] || { echo "$n still resolves 10 s after its delete" >&2; exit 1; }; sleep 0.02; done; del=$(ms "$t")
  echo "round $i: name answers $add ms after create, gone $del ms after delete"
done'
out=$(./target/debug/clusterlab exec "$lab" master -- bash -c "$script" "$rounds")
echo "$out"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median: create $(echo "$out" | awk '{print $5}' | median) ms, delete $(echo "$out" | awk '{print $10}' | median) ms (polling every 20 ms)"
