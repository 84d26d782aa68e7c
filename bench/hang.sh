#!/usr/bin/env bash
# bench/hang.sh: one of four dynos hangs (SIGSTOP) under load, for
# dyno-route and for haproxy as the peer, in the same run.
#
#   Backends: four t/peers/backend.py (threaded, keep-alive), fresh for each
#   target.  Load: `wrk -t2 -cCONNS -dDUR --latency --timeout 30s` on GET /.
#   HANG_AT seconds into the load backend 1 gets SIGSTOP, and SIGCONT
#   HANG seconds later.  Targets:
#     dyno     bin/dyno-route -b (4 backends), defaults: --stall-timeout 1s
#              (dyno-route(1) STUCK DYNOS)
#     haproxy  its closest: balance leastconn; `timeout server` STALL (the
#              request is given up after it), `retries 3`, `option redispatch
#              1`, `retry-on conn-failure empty-response response-timeout`
#              (sent again elsewhere), and health checks
#              `check inter 1s fall 2 rise 2 observe layer7 error-limit 2
#              on-error mark-down` with `option httpchk GET /`
#   Output, per target: requests, req/s, p50, p99 and max latency, non-2xx
#   responses, socket errors (wrk's connect/read/write/timeout), and for
#   dyno-route its stalled / answers-again log lines.
#
# Needs: wrk, haproxy, python3, bin/dyno-route (built if missing).  Every
# process it starts is stopped by pid on exit.
#
# Usage: bench/hang.sh   (env: DUR=25 CONNS=32 HANG_AT=5 HANG=10 STALL=1s
#                         ROUTER=bin/dyno-route KEEP=1)
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$BENCH_ROOT
ROUTER=${ROUTER:-$ROOT/bin/dyno-route}
DUR=${DUR:-25}
CONNS=${CONNS:-32}
HANG_AT=${HANG_AT:-5}
HANG=${HANG:-10}
STALL=${STALL:-1s}
BACKEND=$ROOT/t/peers/backend.py

die() { echo "hang.sh: $*" >&2; exit 1; }
for c in wrk haproxy python3 awk curl; do
	command -v "$c" >/dev/null || die "needs $c"
done
((HANG_AT + HANG < DUR)) || die "HANG_AT + HANG must be under DUR"

T=$(mktemp -d "${TMPDIR:-/tmp}/hang-bench.XXXXXX")
cleanup() {
	# A stopped backend would not die of SIGTERM: wake it first.
	[[ -n ${STOPPED:-} ]] && kill -CONT "$STOPPED" 2>/dev/null
	bench_stop 5
	if [[ -n ${KEEP:-} ]]; then
		echo "hang.sh: kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $ROUTER == "$ROOT/bin/dyno-route" ]]; then
	[[ -x $ROUTER ]] || make -C "$ROOT" >/dev/null || die "make failed"
	[[ $(cat "$ROOT/build/variant" 2>/dev/null || echo default) != san ]] ||
		die "bin/ is a sanitizer build: run make first"
fi
cp "$ROUTER" "$T/dyno-route"

wait_port() {	# port
	local i
	for i in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	die "nothing listens on 127.0.0.1:$1"
}

# start_backends DIR: four backend.py, pids in BE_PIDS, ports in BE_PORTS.
start_backends() {
	local i
	BE_PIDS=() BE_PORTS=()
	for i in 1 2 3 4; do
		python3 "$BACKEND" "$1/be$i.port" --name "be$i" >"$1/be$i.log" 2>&1 &
		bench_track $!
		BE_PIDS+=($!)
	done
	for i in 1 2 3 4; do
		for _ in $(seq 200); do [[ -s $1/be$i.port ]] && break; sleep 0.05; done
		[[ -s $1/be$i.port ]] || die "backend $i did not start"
		BE_PORTS+=("$(cat "$1/be$i.port")")
	done
}

# ms from wrk's "Latency avg stdev max" line
wrk_max() {
	awk '$1 == "Latency" {
		v = $4
		if (v ~ /us$/) print substr(v, 1, length(v) - 2) / 1000
		else if (v ~ /ms$/) print substr(v, 1, length(v) - 2) + 0
		else if (v ~ /m$/) print substr(v, 1, length(v) - 1) * 60000
		else if (v ~ /s$/) print substr(v, 1, length(v) - 1) * 1000
		exit
	}' "$1"
}

# run_target NAME: start it on fresh backends, load, hang one, report.
run_target() {
	local name=$1 dir=$T/$1 port pid wrk_pid
	mkdir -p "$dir"
	start_backends "$dir"
	port=$(bench_ports 1)
	case $name in
	dyno)
		"$T/dyno-route" -l "127.0.0.1:$port" --stall-timeout "$STALL" \
		    -b "$(printf '127.0.0.1:%s,' "${BE_PORTS[@]}" | sed 's/,$//')" \
		    >"$dir/router.log" 2>&1 &
		pid=$!
		;;
	haproxy)
		{
			cat <<-CFG
			global
				nbthread 1
				maxconn 8000
			defaults
				mode http
				timeout connect 1s
				timeout client 60s
				timeout server $STALL
				timeout check 1s
				retries 3
				option redispatch 1
				retry-on conn-failure empty-response response-timeout
				http-reuse always
			frontend fe
				bind 127.0.0.1:$port
				default_backend be
			backend be
				balance leastconn
				option httpchk GET /
				default-server check inter 1s fall 2 rise 2 observe layer7 error-limit 2 on-error mark-down
			CFG
			for i in 1 2 3 4; do
				printf '\tserver be%d 127.0.0.1:%s\n' "$i" "${BE_PORTS[$((i - 1))]}"
			done
		} >"$dir/haproxy.cfg"
		haproxy -f "$dir/haproxy.cfg" -db >"$dir/router.log" 2>&1 &
		pid=$!
		;;
	esac
	bench_track "$pid"
	wait_port "$port"
	curl -sf -o /dev/null "http://127.0.0.1:$port/" ||
		die "$name: a GET through it failed"
	wrk -t2 -c"$CONNS" -d"${DUR}s" --latency --timeout 30s \
	    "http://127.0.0.1:$port/" >"$dir/wrk.out" 2>&1 &
	wrk_pid=$!
	sleep "$HANG_AT"
	kill -STOP "${BE_PIDS[0]}"
	STOPPED=${BE_PIDS[0]}
	sleep "$HANG"
	kill -CONT "${BE_PIDS[0]}"
	STOPPED=
	wait "$wrk_pid" || die "$name: wrk failed: $(cat "$dir/wrk.out")"
	read -r reqs rps p50 p99 non2xx serr < <(wrk_parse "$dir/wrk.out")
	max=$(wrk_max "$dir/wrk.out")
	extra=-
	if [[ $name == dyno ]]; then
		extra="stalled=$(grep -c 'stalled" dyno=' "$dir/router.log" || true)"
		extra+=" recovered=$(grep -c 'answers again' "$dir/router.log" || true)"
	fi
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" \
	    "$reqs" "$rps" "$p50" "$p99" "$max" "$non2xx" "$serr" "$extra"
	bench_kill 5 "$pid" "${BE_PIDS[@]}"
}

echo "hang.sh: commit $(bench_commit), $(nproc) cores, load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c$CONNS -d${DUR}s," \
    "backend 1 stopped from ${HANG_AT}s for ${HANG}s; stall $STALL"
echo
echo "| target | requests | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | notes |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|---|"
run_target dyno
run_target haproxy
