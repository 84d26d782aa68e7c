#!/bin/sh
# demo.sh: the README's first Quick start command.  Installs the build tools
# if they are missing (apt-get, as root or through sudo), builds everything,
# runs the sample app in examples/ with 2 web dynos and a worker behind the
# router, and prints the URL to curl.  Ctrl-C stops it all.
set -e
cd "$(dirname "$0")/.."

need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
# Ask the compiler, not a path: Debian keeps curl.h in a multiarch folder.
printf '#include <curl/curl.h>\n' | cc -E -x c - >/dev/null 2>&1 ||
	need="$need libcurl4-openssl-dev"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo
	else echo "demo.sh: please install:$need" >&2; exit 1; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
make -s

port=${PORT:-8080}
bin/dyno-run -a examples web=2 worker=1 &
pid=$!
bin/dyno-route -a examples -l 127.0.0.1:$port &
rpid=$!
trap 'kill -TERM $pid $rpid 2>/dev/null; wait $pid $rpid; exit 0' INT TERM
routes=examples/.dyno/run/routes
stop() { kill -TERM $pid $rpid 2>/dev/null; wait $pid $rpid; }
i=0
while :; do
	n=$(grep -c '^[^@]' "$routes" 2>/dev/null) || n=0
	# The router writes its pid file once it listens: ours, not a stale one.
	[ "$n" -ge 2 ] && [ "$(cat examples/.dyno/run/router.pid 2>/dev/null)" = "$rpid" ] &&
		break
	kill -0 $rpid 2>/dev/null || {
		echo "demo.sh: the router could not listen on 127.0.0.1:$port (set PORT=...)" >&2
		stop; exit 1; }
	kill -0 $pid 2>/dev/null || {
		echo "demo.sh: dyno-run exited; its output is above" >&2
		stop; exit 1; }
	i=$((i + 1))
	[ $i -gt 600 ] && {
		echo "demo.sh: the web dynos did not come up in 30 s; see the output above" >&2
		stop; exit 1; }
	sleep 0.05
done
echo
echo "The sample app runs behind the router. Try:"
echo "    curl http://127.0.0.1:$port/            # Hello from web.1 or web.2"
echo "    curl http://127.0.0.1:$port/slow?ms=500"
echo "    bin/dyno-scale -a examples              # the dynos, like heroku ps"
echo "    bin/dyno-scale -a examples web=3 --wait"
echo "    bin/dyno-run -a examples --one-off 'echo \$DYNO'"
echo "Ctrl-C stops every dyno."
echo
wait $pid
kill -TERM $rpid 2>/dev/null
wait $rpid
