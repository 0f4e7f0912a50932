#!/bin/sh
# PID 1 of a node container: runs the inner dockerd and restarts it if it dies, so a
# `kill dockerd` fault can be reverted by the harness and a crash does not end the node.
# Logs go to /var/log/clusterlab so a failed run can collect them.
mkdir -p /var/log/clusterlab
trap 'kill -TERM $(cat /run/dockerd.pid 2>/dev/null) 2>/dev/null; exit 0' TERM INT
while :; do
  # --host unix only: the engine is reached through `docker exec`, never over the lab network.
  dockerd --host unix:///var/run/docker.sock >>/var/log/clusterlab/dockerd.log 2>&1 &
  echo $! > /run/dockerd.pid
  wait $!
  echo "$(date -Is) dockerd exited with $?; restarting in 1s" >>/var/log/clusterlab/dockerd.log
  sleep 1
done
