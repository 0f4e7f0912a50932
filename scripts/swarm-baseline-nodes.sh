#!/usr/bin/env bash
# The hand-run swarm baseline (../shared/bench/swarm-baseline.sh) for N nodes: the same docker
# commands, in the same order, with N nodes and N replicas instead of 3 — what the scale bench
# compares each swarm size with, to tell swarm's own growth from the harness's.
# Usage: scripts/swarm-baseline-nodes.sh N (NODE_IMAGE and WEB_IMAGE as for the 3-node script).
# Prints seconds per phase, as the 3-node script does.
set -eu
N=${1:?usage: $0 NODES}
[ "$N" -ge 1 ] && [ "$N" -le 200 ] || { echo "NODES must be 1-200" >&2; exit 2; }
NODE_IMAGE=${NODE_IMAGE:-lab/node:dev}; WEB_IMAGE=${WEB_IMAGE:-lab/web:dev}; NET=bl$$
DIND="--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run -v /var/lib/docker"
nodes=$(seq 1 "$N")
t0=$(date +%s.%N); ts() { python3 -c "import time;print(f'{time.time()-$t0:.1f}')"; }
# Whatever happens, the nodes and the network go (a failed or interrupted run must not leave
# them); every wait has a deadline (300 s in all), so the script always gets here.
cleanup() { docker rm -f -v $(for i in $nodes; do echo $NET-n$i; done) >/dev/null 2>&1 || :; docker network rm $NET >/dev/null 2>&1 || :; }
trap cleanup EXIT
trap 'exit 130' INT TERM
in_time() { [ "$SECONDS" -lt 300 ] || { echo "not there after 300 s: $1" >&2; exit 1; }; }
docker network create --subnet 10.98.0.0/24 $NET >/dev/null
for i in $nodes; do docker run -d $DIND --name $NET-n$i --hostname n$i --network $NET --ip 10.98.0.$((10 + i)) $NODE_IMAGE dockerd >/dev/null & done; wait
for i in $nodes; do until docker exec $NET-n$i docker info >/dev/null 2>&1; do in_time "n$i's engine"; sleep 0.2; done; done
echo "nodes-ready $(ts)"
for i in $nodes; do docker save $WEB_IMAGE | docker exec -i $NET-n$i docker load >/dev/null & done; wait
echo "images-loaded $(ts)"
docker exec $NET-n1 docker swarm init --advertise-addr 10.98.0.11 >/dev/null
tok=$(docker exec $NET-n1 docker swarm join-token -q worker)
for i in $(seq 2 "$N"); do docker exec $NET-n$i docker swarm join --token $tok 10.98.0.11:2377 >/dev/null & done; wait
echo "swarm-joined $(ts)"
docker exec $NET-n1 docker network create -d overlay --attachable net1 >/dev/null
docker exec $NET-n1 docker service create -d --replicas "$N" --name web --network net1 $WEB_IMAGE >/dev/null 2>&1
until [ "$(docker exec $NET-n1 docker service ps web --filter desired-state=running --format '{{.CurrentState}}' | grep -c Running)" = "$N" ]; do in_time "the service's $N tasks running"; sleep 0.2; done
echo "service-converged $(ts)"
t1=$(date +%s.%N)
cleanup; trap - EXIT
python3 -c "import time;print(f'teardown {time.time()-$t1:.1f}')"
