#!/usr/bin/env bash
# bench/deploy.sh: zero-downtime deploys of the sample app (examples/app) on
# 4 web processes under load, by dyno and by two peers doing the same switch
# by hand, with nginx and with haproxy (one side after the other):
#
#   dyno   dyno-run web=4 behind dyno-route; a deploy is `dyno-deploy SRC`
#          (copy to a new release, then each dyno replaced preboot-style;
#          it returns when every dyno runs the new release and no old
#          process is left).
#   nginx  nginx (1 worker, least_conn, upstream keepalive 64) in front of
#          4 app processes; a deploy is blue-green: copy SRC to a new
#          release dir, start 4 new processes on the other set of ports,
#          wait until each accepts (polled every 10 ms), rewrite the
#          upstream file, SIGHUP to the nginx master, wait until its old
#          worker has exited (it finishes its requests in flight first),
#          SIGTERM the 4 old processes and wait until they have exited.
#   haproxy  the same, but the switch is haproxy's runtime API, no reload:
#          8 servers (4 disabled); the new 4 set ready, the old 4 to drain,
#          wait until they have nothing in flight, then maint
#          (bench/haswap.py); then the old processes are stopped as above.
#   Each deploy is timed from its start to the end of those steps.
#
#   Load on each side, the whole time (wrk -t1, through the proxy):
#     GET /                      GET_CONNS connections
#     POST /slow?ms=SLOW_MS      POST_CONNS connections: non-idempotent
#                                requests that take SLOW_MS, so some are in
#                                flight at every switch.  Nothing re-sends
#                                them: wrk never retries, dyno-route retries
#                                only connects (--retries), nginx passes a
#                                POST to another server only if it was never
#                                sent (proxy_next_upstream's default),
#                                haproxy retries only connects (retries 3).
#   Any non-2xx response, socket error or timeout on the dyno side, or an
#   at=error line in dyno-route's log, fails the run (exit 1).  On a peer's
#   side they are a result, printed (STRICT=1 makes them fail the run too).
#   The tables are printed first.
#   Floor: on the peers' side, the copy and 4 new app processes started and
#   accepting (the part of a switch no method avoids).
#
# Needs: wrk, nginx, haproxy, python3, bin/dyno-run, dyno-route, dyno-deploy,
# examples/app (built if missing).  Binds only 127.0.0.1 (the app binds
# INADDR_ANY on its ports: see examples/app.c).  Every process it starts is
# stopped by pid on exit.
#
# Usage: bench/deploy.sh [DEPLOYS]  (env: DEPLOYS=5 SLOW_MS=200 GET_CONNS=20
#                                    POST_CONNS=8 GAP_S=1 STRICT=1 KEEP=1)
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$BENCH_ROOT
DEPLOYS=${1:-${DEPLOYS:-5}}
SLOW_MS=${SLOW_MS:-200}
GET_CONNS=${GET_CONNS:-20}
POST_CONNS=${POST_CONNS:-8}
GAP_S=${GAP_S:-1}

die() { echo "deploy.sh: $*" >&2; exit 1; }
for c in wrk nginx haproxy python3 awk; do
	command -v "$c" >/dev/null || die "needs $c"
done
for v in DEPLOYS SLOW_MS GET_CONNS POST_CONNS GAP_S; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number"
done
((DEPLOYS >= 1 && DEPLOYS <= 100)) || die "DEPLOYS must be 1 to 100"
make -s -C "$ROOT" >/dev/null || die "make failed"
[[ $(cat "$ROOT/build/variant" 2>/dev/null || echo default) != san ]] ||
	die "bin/ is a sanitizer build (build/variant = san); run make first"

T=$(mktemp -d "${TMPDIR:-/tmp}/dyno-bench-deploy.XXXXXX")
cleanup() {
	bench_stop 35	# the app's graceful stop waits for /slow requests
	if [[ -n ${KEEP:-} ]]; then echo "deploy.sh: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_ms() { local t=$EPOCHREALTIME; echo $(( ${t%.*} * 1000 + 10#${t#*.} / 1000 )); }
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cat >"$T/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "order=1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF
MAXDUR=$((DEPLOYS * 60 + 60))	# a bound; the load is stopped with SIGINT
start_load() {	# side port: REPLY = "getpid postpid"
	wrk -t1 -c"$GET_CONNS" -d"${MAXDUR}s" --timeout 10s --latency \
		"http://127.0.0.1:$2/" >"$T/$1-get.txt" 2>&1 &
	bench_track $!
	REPLY=$!
	wrk -t1 -c"$POST_CONNS" -d"${MAXDUR}s" --timeout 10s --latency -s "$T/post.lua" \
		"http://127.0.0.1:$2/slow?ms=$SLOW_MS" >"$T/$1-post.txt" 2>&1 &
	bench_track $!
	REPLY="$REPLY $!"
}
stop_load() {	# pids: SIGINT makes wrk print its results and exit
	local p
	for p; do kill -INT "$p" 2>/dev/null || true; done
	for p; do wait "$p" || true; done
}

mkdir -p "$T/src" "$T/app"
cp "$ROOT/examples/app" "$T/src/app"
echo 'web: exec ./app' >"$T/src/Procfile"
echo v0 >"$T/src/version"
read -r P_ROUTE P_PEER B1 B2 B3 B4 G1 G2 G3 G4 <<<"$(bench_ports 10)"
BLUE=("$B1" "$B2" "$B3" "$B4") GREEN=("$G1" "$G2" "$G3" "$G4")
BASE=$((20000 + RANDOM % 8000))

echo "deploy.sh: $(date -u +%FT%TZ), commit $(bench_commit), $(nproc) cores, $(uname -sr)"
echo "  $DEPLOYS deploys a side, ${GAP_S} s apart; load: GET / x$GET_CONNS," \
	"POST /slow?ms=$SLOW_MS x$POST_CONNS; $(nginx -v 2>&1)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$T/times"

# ---- dyno --------------------------------------------------------------------

echo "dyno: dyno-run web=4 behind dyno-route, dyno-deploy ..."
"$ROOT/bin/dyno-deploy" -a "$T/app" "$T/src" -m v0 >"$T/deploy-dyno.log" 2>&1 ||
	die "first dyno-deploy failed: $(cat "$T/deploy-dyno.log")"
"$ROOT/bin/dyno-run" -a "$T/app" -p "$BASE" --no-cycle web=4 >"$T/run.log" 2>&1 &
DYNO_RUN=$!
bench_track "$DYNO_RUN"
"$ROOT/bin/dyno-route" -a "$T/app" -l "127.0.0.1:$P_ROUTE" >"$T/route.log" 2>"$T/route.err" &
bench_track $!
for ((i = 0; i < 1200; i++)); do
	[[ $(grep -c '^[^@]' "$T/app/.dyno/run/routes" 2>/dev/null) == 4 ]] && accepts "$P_ROUTE" && break
	sleep 0.05
done
[[ $(grep -c '^[^@]' "$T/app/.dyno/run/routes") == 4 ]] || die "dyno: 4 web dynos not up in 60 s"
start_load dyno "$P_ROUTE"
read -r -a LOAD <<<"$REPLY"
sleep 2		# the load runs before the first deploy: this is the workload
for i in $(seq "$DEPLOYS"); do
	echo "x$i" >"$T/src/version"
	t0=$(now_ms)
	"$ROOT/bin/dyno-deploy" -a "$T/app" "$T/src" -m "deploy $i" >>"$T/deploy-dyno.log" 2>&1 ||
		die "dyno-deploy $i failed: $(tail -3 "$T/deploy-dyno.log")"
	t1=$(now_ms)
	echo "dyno $i $((t1 - t0)) -" >>"$T/times"
	sleep "$GAP_S"
done
stop_load "${LOAD[@]}"
bench_stop 35

# ---- peers: nginx reload, haproxy runtime API; blue-green by hand -----------

APPS=()	# pids of the set just started
start_set() {	# release port...: start 4 apps, APPS = their pids
	local rel=$1 p k=0
	shift
	APPS=()
	for p; do
		k=$((k + 1))
		(cd "$rel" && PORT=$p DYNO=web.$k exec ./app) >>"$T/apps.log" 2>&1 &
		bench_track $!
		APPS+=("$!")
	done
}
all_accept() {	# port...
	local p
	for p; do accepts "$p" || return 1; done
}
proxy_dirs() {	# dir
	mkdir -p "$1"
	printf '\tclient_body_temp_path %s/body;\n\tproxy_temp_path %s/proxy;\n' "$1" "$1"
	printf '\tfastcgi_temp_path %s/fastcgi;\n\tuwsgi_temp_path %s/uwsgi;\n' "$1" "$1"
	printf '\tscgi_temp_path %s/scgi;\n' "$1"
}

# nginx: the upstream file is rewritten, SIGHUP to the master; done when the
# old worker (which finishes its requests in flight first) has exited.
upstream() {	# port...: write the upstream file atomically
	{
		echo "upstream be { least_conn;"
		for p; do echo "	server 127.0.0.1:$p;"; done
		echo "	keepalive 64; }"
	} >"$T/nginx/upstream.conf.tmp"
	mv "$T/nginx/upstream.conf.tmp" "$T/nginx/upstream.conf"
}
workers() {	# the nginx master's children
	local c=""
	read -r c 2>/dev/null <"/proc/$PROXY/task/$PROXY/children" || true
	echo "$c"
}
start_nginx() {
	upstream "${BLUE[@]}"
	cat >"$T/nginx/nginx.conf" <<-EOF
	daemon off;
	master_process on;
	worker_processes 1;
	pid $T/nginx/nginx.pid;
	error_log $T/nginx/error.log warn;
	events { worker_connections 4096; }
	http {
	$(proxy_dirs "$T/nginx")
		keepalive_requests 10000000;
		keepalive_timeout 120s;
		log_format up '\$status \$request_method "\$upstream_addr"';
		access_log $T/nginx/access.log up buffer=64k flush=10ms;
		include $T/nginx/upstream.conf;
		server {
			listen 127.0.0.1:$P_PEER;
			location / {
				proxy_pass http://be;
				proxy_http_version 1.1;
				proxy_set_header Connection "";
			}
		}
	}
	EOF
	nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" >"$T/nginx/stdout" 2>&1 &
	PROXY=$!
	bench_track "$PROXY"
}
switch_nginx() {	# new-set(blue|green) new-port...
	local w p gone=0 k oldw
	shift
	read -r -a oldw <<<"$(workers)"
	upstream "$@"
	kill -HUP "$PROXY"
	for ((k = 0; k < 6000; k++)); do	# a new worker up, the old gone
		w=" $(workers) "
		gone=1
		for p in "${oldw[@]}"; do [[ $w == *" $p "* ]] && { gone=0; break; }; done
		((gone)) && [[ $w != "  " ]] && return 0
		sleep 0.01
	done
	die "nginx: old worker still there after 60 s"
}

# haproxy: 8 servers, b1-b4 on the blue ports and g1-g4 on the green ones
# (disabled at first); a switch sets the new four ready and the old four
# to drain, waits until these have no request in flight, then maint
# (bench/haswap.py, the runtime API).  No reload: no client connection
# is closed.
start_haproxy() {
	local k
	{
		printf 'global\n\tnbthread 1\n\tmaxconn 4096\n'
		printf '\tstats socket %s mode 600 level admin\n' "$T/haproxy/sock"
		printf '\tlog stdout format raw local0\n'
		printf 'defaults\n\tmode http\n\tlog global\n\ttimeout connect 5s\n'
		printf '\ttimeout client 60s\n\ttimeout server 60s\n\thttp-reuse always\n'
		printf '\toption dontlognull\n'
		printf '\tlog-format "%%ST %%HM %%s retries=%%rc"\n'
		printf 'frontend fe\n\tbind 127.0.0.1:%s\n\tdefault_backend be\n' "$P_PEER"
		printf 'backend be\n\tbalance leastconn\n'
		for k in 1 2 3 4; do
			printf '\tserver b%d 127.0.0.1:%s\n' "$k" "${BLUE[k - 1]}"
			printf '\tserver g%d 127.0.0.1:%s disabled\n' "$k" "${GREEN[k - 1]}"
		done
	} >"$T/haproxy/haproxy.cfg"
	haproxy -db -f "$T/haproxy/haproxy.cfg" >"$T/haproxy/access.log" 2>"$T/haproxy/err" &
	PROXY=$!
	bench_track "$PROXY"
	# The runtime API client, started once: no interpreter start-up in
	# the timed switch.
	coproc SWAP { exec python3 "$ROOT/bench/haswap.py" "$T/haproxy/sock" be --serve; }
	bench_track "$SWAP_PID"
}
switch_haproxy() {	# new-set(blue|green) new-port...
	local new=g old=b reply=""
	[[ $1 == blue ]] && new=b old=g
	echo "${new}1,${new}2,${new}3,${new}4 ${old}1,${old}2,${old}3,${old}4" >&"${SWAP[1]}"
	read -r -t 70 reply <&"${SWAP[0]}" || true
	[[ $reply == ok ]] || die "haproxy: switch failed: ${reply:-no answer}"
}

peer_side() {	# nginx|haproxy
	local side=$1 i k up old newset=green tmp
	local newports=("${GREEN[@]}") oldports=("${BLUE[@]}")
	echo "$side: 4 app processes behind $side, blue-green ..."
	mkdir -p "$T/$side" "$T/rel-$side"
	cp -a "$T/src" "$T/rel-$side/0"
	start_set "$T/rel-$side/0" "${BLUE[@]}"
	old=("${APPS[@]}")
	"start_$side"
	for ((k = 0; k < 1200; k++)); do
		all_accept "$P_PEER" "${BLUE[@]}" && break
		sleep 0.05
	done
	all_accept "$P_PEER" "${BLUE[@]}" || die "$side side not up in 60 s"
	start_load "$side" "$P_PEER"
	read -r -a LOAD <<<"$REPLY"
	sleep 2
	for i in $(seq "$DEPLOYS"); do
		echo "x$i" >"$T/src/version"
		t0=$(now_ms)
		cp -a "$T/src" "$T/rel-$side/$i"
		start_set "$T/rel-$side/$i" "${newports[@]}"
		for ((k = 0; k < 6000; k++)); do
			all_accept "${newports[@]}" && break
			sleep 0.01
		done
		all_accept "${newports[@]}" || die "$side deploy $i: new set not up in 60 s"
		tup=$(now_ms)
		"switch_$side" "$newset" "${newports[@]}"
		kill -TERM "${old[@]}" 2>/dev/null || true
		for ((k = 0; k < 6000; k++)); do
			up=0
			for p in "${old[@]}"; do kill -0 "$p" 2>/dev/null && { up=1; break; }; done
			((up)) || break
			sleep 0.01
		done
		((up == 0)) || die "$side deploy $i: old processes still there after 60 s"
		for p in "${old[@]}"; do wait "$p" 2>/dev/null || true; done
		t1=$(now_ms)
		echo "$side $i $((t1 - t0)) $((tup - t0))" >>"$T/times"
		old=("${APPS[@]}")
		tmp=("${newports[@]}"); newports=("${oldports[@]}"); oldports=("${tmp[@]}")
		if [[ $newset == green ]]; then newset=blue; else newset=green; fi
		sleep "$GAP_S"
	done
	stop_load "${LOAD[@]}"
	sleep 0.1	# nginx's log buffer: flushed within 10 ms
	bench_stop 35
}

peer_side nginx
peer_side haproxy
NG_SECOND=$(grep -c '"[^"]*,[^"]*"' "$T/nginx/access.log" || true)
NG_BAD=$(awk '$1 !~ /^(2..|499)$/' "$T/nginx/access.log" | wc -l)
NG_LEFT=$(awk '$1 == 499' "$T/nginx/access.log" | wc -l)
HA_SECOND=$(grep -c 'retries=[1-9]' "$T/haproxy/access.log" || true)
HA_BAD=$(awk '$1 ~ /^-?[0-9]+$/ && $1 !~ /^2..$/' "$T/haproxy/access.log" | wc -l)
DY_ERR=$(grep -c 'at=error' "$T/route.log" || true)
DY_BAD=$(grep ' method=' "$T/route.log" | grep -vc ' status=2' || true)

# ---- tables ------------------------------------------------------------------

echo
echo "deploy.sh results, commit $(bench_commit)"
echo
python3 - "$T/times" <<'EOF'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    side, i, ms, up = line.split()
    v[side, int(i)] = (int(ms), None if up == "-" else int(up))
n = max(i for _, i in v)
r = range(1, n + 1)
print("| deploy | dyno-deploy, ms | nginx reload, ms | haproxy runtime API, ms "
      "| dyno/nginx | dyno/haproxy | floor: copy + 4 new processes accepting, ms |")
print("|--:|--:|--:|--:|--:|--:|--:|")
for i in r:
    d, g, h = v["dyno", i], v["nginx", i], v["haproxy", i]
    print(f"| {i} | {d[0]} | {g[0]} | {h[0]} | {d[0] / g[0]:.2f} | {d[0] / h[0]:.2f} "
          f"| {min(g[1], h[1])} |")
med = lambda s, k=0: statistics.median(v[s, i][k] for i in r)
rat = lambda a, b: statistics.median(v[a, i][0] / v[b, i][0] for i in r)
floor = statistics.median(min(v["nginx", i][1], v["haproxy", i][1]) for i in r)
print(f"| median | {med('dyno'):.0f} | {med('nginx'):.0f} | {med('haproxy'):.0f} | "
      f"{rat('dyno', 'nginx'):.2f} | {rat('dyno', 'haproxy'):.2f} | {floor:.0f} |")
print()
print("Ratios in the median row are medians of the per-deploy ratios.  Floor: the")
print("copy and the 4 new processes up on the peers' side (the smaller of the two),")
print("before any switch.")
EOF
echo
echo "Load during the deploys (wrk -t1 through the proxy, from 2 s before the first"
echo "deploy to the end of the last; a failed request is never re-sent):"
echo
echo "| side | load | requests | req/s | p50 ms | p99 ms | non-2xx | socket errors |"
echo "|---|---|--:|--:|--:|--:|--:|--:|"
declare -A LOST=()
for side in dyno nginx haproxy; do
	LOST[$side]=0
	for kind in get post; do
		read -r reqs rps p50 p99 non2xx serr < <(wrk_parse "$T/$side-$kind.txt")
		label="GET / x$GET_CONNS"
		[[ $kind == post ]] && label="POST /slow?ms=$SLOW_MS x$POST_CONNS"
		echo "| $side | $label | $reqs | $rps | $p50 | $p99 | $non2xx | $serr |"
		LOST[$side]=$(( LOST[$side] + non2xx + serr ))
		((reqs > 0)) || LOST[$side]=$(( LOST[$side] + 1 ))
	done
done
echo
echo "proxy logs: dyno-route $DY_ERR at=error lines, $DY_BAD non-2xx;" \
	"nginx $NG_BAD non-2xx besides $NG_LEFT 499 (client gone: the load's stop)," \
	"$NG_SECOND passed to a second server (connect failures); haproxy $HA_BAD non-2xx," \
	"$HA_SECOND with connect retries"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
problems=0
if ((LOST[dyno] + DY_ERR + DY_BAD > 0)); then
	echo "deploy.sh: FAILED: dyno: requests failed during deploys" >&2
	problems=1
fi
for side in nginx haproxy; do
	((LOST[$side] > 0)) || continue
	echo "deploy.sh: $side: ${LOST[$side]} requests failed during its switches (a result," \
		"not a script failure; STRICT=1 makes it one)" >&2
	[[ -n ${STRICT:-} ]] && problems=1
done
if ((problems)); then
	KEEP=1
	echo "deploy.sh: outputs kept in $T" >&2
	exit 1
fi
