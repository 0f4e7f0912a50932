#!/bin/sh
# Answer HTTP with this replica's identity: hostname (= container id in swarm, pod name in
# Kubernetes) and its IPv4 addresses. /big is 256 KiB, for checks that need a large response.
set -e
mkdir -p /www
ips=$(ip -4 -o addr show scope global | awk '{split($4,a,"/"); printf "%s ", a[1]}')
printf 'replica=%s ips=%s\n' "$(hostname)" "$ips" > /www/index.html
dd if=/dev/zero bs=1024 count=256 2>/dev/null | tr '\0' 'x' > /www/big
exec httpd -f -p "${PORT:-80}" -h /www
