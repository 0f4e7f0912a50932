#!/bin/sh
# PID 1 of a node container. `start-node swarm` runs the inner dockerd; `start-node kubernetes`
# runs containerd (CRI) — the Kubernetes components are started later by the harness, each under
# its own supervisor. A trap makes PID 1 stop its children on SIGTERM instead of ignoring it.
mkdir -p /var/log/clusterlab
case "${1:-swarm}" in
  # --host unix only: the engine is reached through `docker exec`, never over the lab network.
  swarm) setsid -f /usr/local/bin/supervise dockerd dockerd --host unix:///var/run/docker.sock ;;
  # containerd starts once the harness has written its configuration (CRI, sandbox image).
  kubernetes) (while [ ! -f /etc/containerd/clusterlab.toml ]; do sleep 0.1; done
               exec setsid -f /usr/local/bin/supervise containerd containerd --config /etc/containerd/clusterlab.toml) & ;;
  *) echo "start-node: unknown stack $1" >&2; exit 2 ;;
esac
trap 'pkill -TERM -f /usr/local/bin/supervise; exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
