#!/bin/sh
# start-proxy LAB_SUBNET NAME: squid in the foreground, serving only requests for the lab's
# addresses (a request for anything else is refused, so the proxy never leaves the lab).
set -e
subnet=${1:?usage: start-proxy LAB_SUBNET NAME}
name=${2:-stray-proxy}
cat > /etc/squid/squid.conf <<CONF
http_port 3128
# Fail fast: the story's proxy cannot reach the lab, and a client should see why within seconds.
connect_timeout 3 seconds
# Its identity in the Via header and on the error page.
visible_hostname $name
acl lab dst $subnet
http_access allow lab
http_access deny all
# No disk cache. Logs go to files squid's own user may write (it drops root, so /dev/stdout is
# not writable); `docker logs` still shows squid's start-up and FATAL lines from stderr.
cache deny all
access_log stdio:/var/log/squid/access.log
cache_log /var/log/squid/cache.log
pid_filename none
shutdown_lifetime 0 seconds
CONF
exec squid -N -d 1 -f /etc/squid/squid.conf
