#!/bin/sh
# demo.sh: the README's first Quick start command.  Installs the build tools
# if they are missing (apt-get, as root or through sudo), builds everything,
# runs the sample app in examples/ with 2 web dynos and a worker, and prints
# the URLs to curl.  Ctrl-C stops it all.
set -e
cd "$(dirname "$0")/.."

need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo
	else echo "demo.sh: please install:$need" >&2; exit 1; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
make -s

bin/dyno-run -a examples web=2 worker=1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' INT TERM
routes=examples/.dyno/run/routes
i=0
while [ "$(grep -c . "$routes" 2>/dev/null || echo 0)" -lt 2 ]; do
	kill -0 $pid 2>/dev/null || { wait $pid; exit 1; }
	i=$((i + 1))
	[ $i -gt 200 ] && { echo "demo.sh: web dynos did not come up" >&2; break; }
	sleep 0.05
done
echo
echo "The sample app runs. Try:"
while read -r name addr; do
	echo "    curl http://$addr/          # answered by $name"
done < "$routes"
echo "    bin/dyno-run -a examples --one-off 'echo \$DYNO'"
echo "Ctrl-C stops every dyno."
echo
wait $pid
