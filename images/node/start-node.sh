#!/bin/sh
# PID 1 of a node container. `start-node swarm` runs the inner dockerd; `start-node kubernetes`
# runs containerd (CRI) — the Kubernetes components are started later by the harness, each under
# its own supervisor. A trap makes PID 1 stop its children on SIGTERM instead of ignoring it.
mkdir -p /var/log/clusterlab
# The host's kernel settings stay the host's. kernel.*, vm.* and fs.* are not per network
# namespace: a write here would change the host (a node may write /proc/sys, which its engine
# needs for net.*). Make those three trees read-only in this node; net.* stays writable, and is
# the node's own.
for d in kernel vm fs; do
  mount --bind /proc/sys/$d /proc/sys/$d && mount -o remount,bind,ro /proc/sys/$d ||
    echo "start-node: could not make /proc/sys/$d read-only" >&2
done
# kubelet sets four of them to its own values at start and fails when it cannot: show it a file
# holding the value it wants over each, so it finds nothing to change.
if [ "${1:-swarm}" = kubernetes ]; then
  mkdir -p /run/clusterlab/sysctl
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
    f=/run/clusterlab/sysctl/$(echo "${kv%%=*}" | tr / -)
    echo "${kv#*=}" > "$f" && mount --bind "$f" "/proc/sys/${kv%%=*}"
  done
fi
# The node has a cgroup namespace of its own (the harness asks for it): what is mounted under
# /sys/fs/cgroup is the node's own cgroup tree, read-only unless the node is privileged. Made
# writable (this mount only, not the hierarchy), the inner runtime makes its containers' cgroups
# under the node's, and they go when the node goes.
for d in $(awk '$2 ~ "^/sys/fs/cgroup" && ($3 == "cgroup" || $3 == "cgroup2") {print $2}' /proc/self/mounts); do
  mount -o remount,bind,rw "$d" || echo "start-node: could not make $d writable" >&2
done
case "${1:-swarm}" in
  # --host unix only: the engine is reached through `docker exec`, never over the lab network.
  # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: a swarm task uses the image loaded into the node
  # instead of first asking a registry (the lab is closed: that would wait out a DNS timeout).
  # --bridge none: no docker0. Every container a lab starts in a node joins an overlay (tasks,
  # probes, bench clients); setting up the default bridge and its rules cost every engine's start
  # CPU the others needed (measured: a 3-node lab up 0.35 s sooner, medians of 8).
  swarm) DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid -f /usr/local/bin/supervise dockerd dockerd --host unix:///var/run/docker.sock --bridge none ;;
  # containerd starts once the harness has written its configuration (CRI, sandbox image).
  kubernetes) (while [ ! -f /etc/containerd/clusterlab.toml ]; do sleep 0.1; done
               exec setsid -f /usr/local/bin/supervise containerd containerd --config /etc/containerd/clusterlab.toml) & ;;
  *) echo "start-node: unknown stack $1" >&2; exit 2 ;;
esac
trap 'pkill -TERM -f /usr/local/bin/supervise; exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
