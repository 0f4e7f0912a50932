#!/bin/sh
# supervise NAME CMD...: run CMD, restart it a second after it exits, append its output to
# /var/log/clusterlab/NAME.log (collected when a run fails). A second `supervise NAME` while one
# runs is a no-op, so bringing a lab up twice is safe. `touch /run/clusterlab/NAME.stop` then
# killing NAME keeps it down (a kill fault); removing the file and running supervise again revives it.
# /run/clusterlab/NAME.env (KEY=value lines), when present, is added to NAME's environment at each
# start: an http-proxy fault writes it and kills NAME, which then restarts behind the proxy.
name=$1; shift
dir=/run/clusterlab; log=/var/log/clusterlab/$name.log
mkdir -p "$dir" /var/log/clusterlab
if [ -f "$dir/$name.supervisor" ] && kill -0 "$(cat "$dir/$name.supervisor")" 2>/dev/null; then exit 0; fi
echo $$ > "$dir/$name.supervisor"
rm -f "$dir/$name.stop"
# The command, one argument a line: reverting a kill fault starts it again from here.
printf '%s\n' "$@" > "$dir/$name.cmd"
trap 'kill -TERM "$(cat "$dir/$name.pid" 2>/dev/null)" 2>/dev/null; exit 0' TERM INT
while :; do
  # shellcheck disable=SC2046 # one KEY=value word per line, by design
  env $(cat "$dir/$name.env" 2>/dev/null) "$@" >>"$log" 2>&1 &
  echo $! > "$dir/$name.pid"
  wait $!
  rc=$?
  if [ -e "$dir/$name.stop" ]; then echo "$(date -Is) $name stopped (exit $rc)" >>"$log"; rm -f "$dir/$name.supervisor"; exit 0; fi
  echo "$(date -Is) $name exited with $rc; restarting in 1s" >>"$log"
  sleep 1
done
