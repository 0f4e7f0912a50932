#!/bin/sh
# Answer HTTP with this replica's identity: hostname (= container id in swarm, pod name in
# Kubernetes) and its IPv4 addresses. /big is the same first line followed by 256 KiB, for checks
# that need a large response (it still names the replica that sent it).
#
# The server is clusterlab-web, which listens 4096 deep. `serve.sh busybox` runs busybox httpd
# instead, whose listen queue is 9 deep: a server that cannot accept fast enough, on purpose (a
# test of the cause line that names it builds an image with that entrypoint).
set -e
mkdir -p /www
ips=$(ip -4 -o addr show scope global | awk '{split($4,a,"/"); printf "%s ", a[1]}')
printf 'replica=%s ips=%s\n' "$(hostname)" "$ips" > /www/index.html
{ cat /www/index.html; dd if=/dev/zero bs=1024 count=256 2>/dev/null | tr '\0' 'x'; } > /www/big
# The server runs as a child: a shell that is PID 1 only gets SIGTERM if it traps it, and without
# the trap every scale-down would wait out the engine's 10 s grace period before SIGKILL.
# Both servers log every request (client address and port, path, status) to the container's log:
# the server's own count of what it answered, which a stream's figures are held against.
case "${1:-}" in
  busybox) httpd -f -vv -p "${PORT:-80}" -h /www & ;;
  *) clusterlab-web --port "${PORT:-80}" --root /www & ;;
esac
trap 'kill $!; exit 0' TERM INT
wait
