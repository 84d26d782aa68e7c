#!/usr/bin/env bash
# bench/upgrade.sh: failed requests while the proxy is upgraded in place,
# dyno-route beside haproxy, in the same run.
#
#   dyno-route  a second router started on the same address (SO_REUSEPORT),
#               then SIGTERM to the old one, which drains (dyno-route(1),
#               UPGRADE IN PLACE)
#   haproxy     a new process started with -sf OLDPID and -x on the old
#               one's stats socket ("expose-fd listeners"): the listening
#               socket is passed over, haproxy's seamless reload
#
# For each proxy in turn: two nginx backends (200 "hello"), wrk GETs and wrk
# POSTs with a body (-c CONNS each) for DUR, and UPGRADES upgrades spread
# over it, each waiting for the new process to listen before the old one is
# told to stop.  Failed = non-2xx responses + wrk socket errors (connect,
# read, write, timeout).  Prints one line per proxy.
#
# Usage: bench/upgrade.sh   (env: UPGRADES=5 DUR=20s CONNS=25 KEEP=1)
# Needs: wrk, haproxy, nginx, python3, ss, bin/dyno-route (built if missing).
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$BENCH_ROOT
UPGRADES=${UPGRADES:-5}
DUR=${DUR:-20s}
CONNS=${CONNS:-25}
SECS=${DUR%s}

die() { echo "upgrade.sh: $*" >&2; exit 1; }
for c in wrk haproxy nginx python3 ss; do
	command -v "$c" >/dev/null || die "needs $c"
done
[[ -x $ROOT/bin/dyno-route ]] || make -C "$ROOT" >/dev/null || die "make failed"

T=$(mktemp -d "${TMPDIR:-/tmp}/upgrade-bench.XXXXXX")
cleanup() {
	bench_stop 10
	if [[ -n ${KEEP:-} ]]; then echo "upgrade.sh: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$ROOT/bin/dyno-route" "$T/dyno-route"
read -r P_A P_B P_PX < <(bench_ports 3)

listens() { ss -Hltnp "sport = :$2" | grep -q "pid=$1,"; }
wait_listens() {	# pid port
	local i
	for i in $(seq 200); do listens "$1" "$2" && return 0; sleep 0.05; done
	die "pid $1 does not listen on $2"
}
wait_gone() {	# pid
	local i
	for i in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	die "pid $1 did not exit"
}

for b in a b; do
	port=$P_A; [[ $b == b ]] && port=$P_B
	mkdir -p "$T/be-$b"
	cat >"$T/be-$b/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $T/be-$b/nginx.pid;
error_log $T/be-$b/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $T/be-$b/body;
	proxy_temp_path $T/be-$b/proxy;
	fastcgi_temp_path $T/be-$b/fastcgi;
	uwsgi_temp_path $T/be-$b/uwsgi;
	scgi_temp_path $T/be-$b/scgi;
	keepalive_requests 10000000;
	server { listen 127.0.0.1:$port; location / { return 200 "hello\n"; } }
}
EOF
	nginx -p "$T/be-$b" -c "$T/be-$b/nginx.conf" >"$T/be-$b/stdout" 2>&1 &
	bench_track $!
done
cat >"$T/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 8000
	stats socket $T/haproxy.sock mode 600 level admin expose-fd listeners
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	http-reuse always
frontend fe
	bind 127.0.0.1:$P_PX
	default_backend be
backend be
	balance leastconn
	server a 127.0.0.1:$P_A
	server b 127.0.0.1:$P_B
EOF
cat >"$T/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "one=1&two=2"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF

start_proxy() {	# target [old-pid]
	case $1 in
	dyno) "$T/dyno-route" -b "127.0.0.1:$P_A,127.0.0.1:$P_B" \
		-l "127.0.0.1:$P_PX" >>"$T/dyno.log" 2>&1 & ;;
	haproxy) if [[ -n ${2:-} ]]; then
			haproxy -db -f "$T/haproxy.cfg" -x "$T/haproxy.sock" \
			    -sf "$2" >>"$T/haproxy.log" 2>&1 &
		else
			haproxy -db -f "$T/haproxy.cfg" >>"$T/haproxy.log" 2>&1 &
		fi ;;
	esac
	PX=$!
	bench_track "$PX"
}

run() {	# target: prints "target upgrades requests non2xx sockerrs"
	local t=$1 i old get post r1 r2
	start_proxy "$t"
	wait_listens "$PX" "$P_PX"
	wrk -t1 -c"$CONNS" -d"$DUR" --latency "http://127.0.0.1:$P_PX/" \
	    >"$T/$t-get.wrk" 2>&1 &
	get=$!
	wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$T/post.lua" \
	    "http://127.0.0.1:$P_PX/" >"$T/$t-post.wrk" 2>&1 &
	post=$!
	for ((i = 1; i <= UPGRADES; i++)); do
		sleep "$(awk -v s="$SECS" -v n="$UPGRADES" 'BEGIN { print s / (n + 1) }')"
		old=$PX
		if [[ $t == dyno ]]; then
			start_proxy dyno
			wait_listens "$PX" "$P_PX"
			kill -TERM "$old"
		else
			start_proxy haproxy "$old"
			wait_listens "$PX" "$P_PX"
		fi
		wait_gone "$old"
		bench_kill 1 "$old"
	done
	wait "$get" "$post" || true
	read -r r1 _ _ _ n1 s1 < <(wrk_parse "$T/$t-get.wrk")
	read -r r2 _ _ _ n2 s2 < <(wrk_parse "$T/$t-post.wrk")
	echo "$t $UPGRADES $((r1 + r2)) $((n1 + n2)) $((s1 + s2))"
	bench_kill 10 "$PX"
}

echo "upgrade.sh: commit $(bench_commit), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)," \
    "$UPGRADES upgrades in ${DUR} of wrk GET + POST (-c$CONNS each)"
printf '%-10s %8s %10s %8s %13s\n' proxy upgrades requests non-2xx socket-errors
for t in haproxy dyno; do
	run "$t" >"$T/$t.result"	# not in a subshell: bench_track must see its pids
	read -r name n reqs non2xx serr <"$T/$t.result"
	printf '%-10s %8s %10s %8s %13s\n' "$name" "$n" "$reqs" "$non2xx" "$serr"
done
