#!/bin/bash
# deploy.sh: a deploy of the sample app on 4 web dynos under load through
# dyno-route: the time from the command to all 4 dynos on the new release,
# and the requests served and failed meanwhile (wrk through the router).
# Usage: bench/deploy.sh [DEPLOYS]   (default 5)
set -eu
cd "$(dirname "$0")/.."
N=${1:-5}
make -s >/dev/null
T=$(mktemp -d /tmp/dyno-bench-deploy.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	pkill -f "$T/" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/src" "$T/app"
cp examples/app "$T/src/app"
echo 'web: exec ./app' > "$T/src/Procfile"
bin/dyno-deploy -a "$T/app" "$T/src" -m v1 > /dev/null
BASE=$(( 30000 + RANDOM % 20000 )); RPORT=$((BASE - 1))
bin/dyno-run -a "$T/app" -p "$BASE" --no-cycle web=4 > "$T/run.log" 2>&1 &
pids+=($!)
bin/dyno-route -a "$T/app" -l 127.0.0.1:$RPORT > "$T/route.log" 2>&1 &
pids+=($!)
until [ "$(grep -c . "$T/app/.dyno/run/routes" 2>/dev/null)" = 4 ]; do sleep 0.02; done

DUR=$(( N * 3 + 4 ))
wrk -t1 -c20 -d${DUR}s --latency "http://127.0.0.1:$RPORT/" > "$T/wrk.txt" 2>&1 &
wrkpid=$!
sleep 2	# load running before the first deploy: this is the workload
for i in $(seq 1 "$N"); do
	echo "x$i" > "$T/src/version"
	t0=$(date +%s%N)
	out=$(bin/dyno-deploy -a "$T/app" "$T/src" -m "deploy $i" | grep 'every dyno runs it')
	t1=$(date +%s%N)
	echo "deploy $i: command to all 4 dynos on the new release: $(( (t1 - t0) / 1000000 )) ms ($out)"
	sleep 1
done
wait "$wrkpid"
echo "--- wrk through dyno-route during $N deploys (4 web dynos):"
grep -E 'requests in|Requests/sec|Non-2xx|Socket errors|50%|99%' "$T/wrk.txt"
errors=$(grep -c 'at=error' "$T/route.log" || true)
echo "router errors logged: $errors"
