#!/bin/sh
# Answer HTTP with this replica's identity: hostname (= container id in swarm, pod name in
# Kubernetes) and its IPv4 addresses. /big is the same first line followed by 256 KiB, for checks
# that need a large response (it still names the replica that sent it).
set -e
mkdir -p /www
ips=$(ip -4 -o addr show scope global | awk '{split($4,a,"/"); printf "%s ", a[1]}')
printf 'replica=%s ips=%s\n' "$(hostname)" "$ips" > /www/index.html
{ cat /www/index.html; dd if=/dev/zero bs=1024 count=256 2>/dev/null | tr '\0' 'x'; } > /www/big
# httpd runs as a child: a shell that is PID 1 only gets SIGTERM if it traps it, and without the
# trap every scale-down would wait out the engine's 10 s grace period before SIGKILL.
# -vv: every request is logged (client address and port, path, status) to the container's log:
# the server's own count of what it answered, which a stream's figures are held against.
httpd -f -vv -p "${PORT:-80}" -h /www &
trap 'kill $!; exit 0' TERM INT
wait
