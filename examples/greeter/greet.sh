#!/bin/sh
# httpd and nc as children; the trap ends both on SIGTERM so a scale-down is quick.
mkdir -p /www && echo 'greeter: GET /cgi-bin/hello' > /www/index.html
httpd -f -p 8080 -h /www &
nc -ll -p 7000 -e /bin/hostname &
trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM INT
wait
