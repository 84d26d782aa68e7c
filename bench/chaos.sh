#!/usr/bin/env bash
# bench/chaos.sh: web processes killed under load, dyno-route under dyno-run
# beside haproxy over a naive restart loop, in one run (127.0.0.1 only).
#
#   dyno     bin/dyno-run web=4 (its default crash backoff: the first
#            restart at once, then 1 s, 2 s, 4 s ... never two starts of
#            one dyno within 1 s) and bin/dyno-route -a in front (defaults:
#            --boot-timeout 75s, --retries 3, --quarantine 5s).
#   haproxy  4 backends, each `while :; do ./app; done` on its own fixed
#            port (a restart loop with no backoff at all); haproxy
#            balance leastconn, `check inter 200ms fall 1 rise 1`,
#            retries 3, option redispatch, retry-on conn-failure
#            empty-response, timeout connect 1s, nbthread 1.
#   Both serve the sample app (examples/app: GET / answers at once).
#   Load: `wrk -t2 -cCONNS -dDUR --timeout 30s` through the proxy; while
#   it runs, every KILL_EVERY one of the 4 web processes picked at random is
#   sent SIGKILL (for dyno, its whole process group; a dyno that is not up,
#   i.e. crashed and waiting for its restart, is a miss: nothing to kill;
#   the same for a haproxy backend between two runs of its loop).
#   Success = (responses - non-2xx) / (responses + wrk socket errors).
#   The dyno run goes first, then the haproxy run, same schedule.
#
#   Output: per target, requests, non-2xx, socket errors, success ratio,
#   p50/p99, kills and misses; then dyno's ratio to haproxy's, the commit,
#   the load average, and the router's error codes.
#
# Needs: wrk, haproxy, python3, bin/dyno-run, bin/dyno-route, examples/app
# (`make`).  Every process it starts is stopped by pid on exit.
#
# Usage: bench/chaos.sh   (env: DUR=20 CONNS=50 KILL_EVERY=0.5 KEEP=1
#                          ROUTER=bin/dyno-route SUPERVISOR=bin/dyno-run,
#                          e.g. an older build to compare)
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$BENCH_ROOT
DUR=${DUR:-20}
CONNS=${CONNS:-50}
KILL_EVERY=${KILL_EVERY:-0.5}
ROUTER=${ROUTER:-$ROOT/bin/dyno-route}
SUPERVISOR=${SUPERVISOR:-$ROOT/bin/dyno-run}

die() { echo "chaos.sh: $*" >&2; exit 1; }
for c in wrk haproxy python3 awk curl; do
	command -v "$c" >/dev/null || die "needs $c"
done
for f in "$SUPERVISOR" "$ROUTER" "$ROOT/examples/app"; do
	[[ -x $f ]] || die "needs $f (make)"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/dyno-chaos.XXXXXX")
cleanup() {
	bench_stop 10
	if [[ -n ${KEEP:-} ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

accepts() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_accepts() {	# port: up to 30 s
	local i
	for ((i = 0; i < 600; i++)); do accepts "$1" && return 0; sleep 0.05; done
	die "nothing accepts on $1 after 30 s"
}

# ---- dyno: dyno-run + dyno-route ----------------------------------------
mkdir -p "$T/app"
cp "$ROOT/examples/app" "$T/app/app"
echo 'web: exec ./app' >"$T/app/Procfile"
read -r P_DY P_HA P1 P2 P3 P4 < <(bench_ports 6)
# dyno-run's ports from a base it skips taken ones from.
BASE=$(( 30000 + RANDOM % 20000 ))
"$SUPERVISOR" -a "$T/app" -p "$BASE" web=4 >"$T/run.log" 2>&1 &
bench_track $!
"$ROUTER" -a "$T/app" -l "127.0.0.1:$P_DY" >"$T/route.log" 2>&1 &
bench_track $!
for ((i = 0; i < 600; i++)); do
	[[ $(grep -c '^[^@]' "$T/app/.dyno/run/routes" 2>/dev/null) == 4 ]] && break
	sleep 0.05
done
[[ $(grep -c '^[^@]' "$T/app/.dyno/run/routes") == 4 ]] || die "4 web dynos not up in 30 s"
wait_accepts "$P_DY"

# pgid of a random one of the 4 web dynos if it is up, or nothing.  Bash
# builtins only: on a loaded machine a few execs per tick stretch the
# schedule.
dyno_victim() {
	local f="$T/app/.dyno/run/dynos/web.$(( RANDOM % 4 + 1 ))" line pid="" up=0
	[[ -f $f ]] || return 0
	while IFS= read -r line; do
		case $line in
		state=up) up=1 ;;
		pid=*) pid=${line#pid=} ;;
		esac
	done <"$f"
	((up)) && echo "$pid"
	return 0
}

# ---- haproxy: 4 restart loops -------------------------------------------
HA_LOOPS=()
i=0
for p in $P1 $P2 $P3 $P4; do
	i=$((i + 1))
	(cd "$T/app" && while :; do PORT=$p DYNO=ha.$i ./app >/dev/null 2>&1 || true; done) 2>/dev/null &
	bench_track $!
	HA_LOOPS+=($!)
done
cat >"$T/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 4000
	pidfile $T/haproxy.pid
defaults
	mode http
	timeout connect 1s
	timeout client 60s
	timeout server 60s
	retries 3
	option redispatch
	retry-on conn-failure empty-response
frontend fe
	bind 127.0.0.1:$P_HA
	default_backend be
backend be
	balance leastconn
	http-reuse always
	default-server check inter 200ms fall 1 rise 1
	server s1 127.0.0.1:$P1
	server s2 127.0.0.1:$P2
	server s3 127.0.0.1:$P3
	server s4 127.0.0.1:$P4
EOF
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
bench_track $!
for p in $P1 $P2 $P3 $P4 $P_HA; do wait_accepts "$p"; done

# pid of a random haproxy backend's app (the loop's child), or nothing.
ha_victim() {
	local loop=${HA_LOOPS[RANDOM % 4]} kids=
	read -r kids 2>/dev/null <"/proc/$loop/task/$loop/children" || true
	echo "${kids%% *}"
}

# run NAME PORT VICTIM_FN: wrk under the kill schedule; results in $T/NAME.*
run() {
	local name=$1 port=$2 victim=$3 wpid end v tick kills=0 misses=0
	curl -fsS -o /dev/null "http://127.0.0.1:$port/" || die "$name: no 200 before the load"
	wrk -t2 -c"$CONNS" -d"${DUR}s" --timeout 30s --latency \
	    "http://127.0.0.1:$port/" >"$T/$name.wrk" 2>&1 &
	wpid=$!
	bench_track "$wpid"
	end=$(( ${EPOCHREALTIME/./} / 1000 + DUR * 1000 - 500 ))
	sleep "$KILL_EVERY"
	while (( ${EPOCHREALTIME/./} / 1000 < end )); do
		# The next tick is KILL_EVERY from this one, however long the
		# pick and the kill take on a loaded machine.
		sleep "$KILL_EVERY" &
		tick=$!
		v=$($victim || true)
		if [[ -n $v ]] && kill -KILL -- "-$v" 2>/dev/null; then
			kills=$((kills + 1))
		elif [[ -n $v ]] && kill -KILL "$v" 2>/dev/null; then
			kills=$((kills + 1))
		else
			misses=$((misses + 1))
		fi
		wait "$tick"
	done
	wait "$wpid" || true
	echo "$kills $misses" >"$T/$name.kills"
}

run dyno "$P_DY" dyno_victim
run haproxy "$P_HA" ha_victim

# ---- results --------------------------------------------------------------
echo "bench/chaos.sh  commit $(bench_commit)  $(date -u +%Y-%m-%dT%H:%MZ)  load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "DUR=${DUR}s CONNS=$CONNS KILL_EVERY=${KILL_EVERY}s; wrk --timeout 30s; $ROUTER, $SUPERVISOR"
echo
printf '| target | responses | non-2xx | socket errors | success | p50 ms | p99 ms | kills | misses |\n'
printf '| --- | --: | --: | --: | --: | --: | --: | --: | --: |\n'
for t in dyno haproxy; do
	read -r reqs _rps p50 p99 non2xx serr < <(wrk_parse "$T/$t.wrk")
	read -r kills misses <"$T/$t.kills"
	ok=$(awk -v r="$reqs" -v n="$non2xx" -v e="$serr" \
	    'BEGIN { printf "%.4f", (r + e) ? (r - n) / (r + e) : 0 }')
	echo "$ok" >"$T/$t.ok"
	printf '| %s | %s | %s | %s | %s%% | %s | %s | %s | %s |\n' "$t" "$reqs" \
	    "$non2xx" "$serr" "$(awk -v x="$ok" 'BEGIN { printf "%.2f", x * 100 }')" \
	    "$p50" "$p99" "$kills" "$misses"
done
echo
awk -v d="$(cat "$T/dyno.ok")" -v h="$(cat "$T/haproxy.ok")" \
    'BEGIN { printf "dyno success / haproxy success = %.4f\n", h ? d / h : 0 }'
echo "dyno-route error codes: $(grep -o 'code=H[0-9]*' "$T/route.log" | sort | uniq -c | tr '\n' ' ')"
echo "dyno-run crashes: $(grep -c 'Process exited with status 137' "$T/run.log" || true)"
