#!/usr/bin/env bash
# bench/route.sh: dyno-route beside haproxy and nginx, all in one run, on
# loopback (127.0.0.1 only).
#
#   Backends: two nginx instances (1 worker each) answering `return 200
#   "hello\n"` (and /echo: the forwarding headers they got).  Targets, each
#   measured with `wrk -t1 -cCONNS -dDUR --latency`:
#     direct   wrk straight to backend A (the ceiling)
#     haproxy  balance leastconn, http-reuse always, nbthread 1
#     nginx    least_conn, upstream keepalive 64, proxy_http_version 1.1,
#              proxy_set_header Connection "", worker_processes 1
#     dyno     bin/dyno-route -b A,B (1 worker)
#   The three proxies do the same work per request, the work dyno-route
#   always does (dyno-route(1), src/dyno-route/relay_http.c request_build
#   and src/dyno-route/logline.c log_request):
#     - add X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Port,
#       X-Request-Start (ms), X-Request-Id (a new random id) and Via;
#     - write one log line per request to a file, with method, path, host,
#       request id, client, backend, connect and service time, status and
#       bytes.  dyno-route buffers its lines (up to 64 KiB, 10 ms); nginx
#       gets the same: access_log ... buffer=64k flush=10ms.  haproxy has
#       no log buffer: `log stdout format raw` (one write a line) to a file.
#   Before the load, one GET /echo through each proxy must show all six
#   headers at the backend and one new line in that proxy's log; after it,
#   each proxy's log must hold at least a line per request wrk counted.
#   ROUNDS rounds, the targets interleaved (order rotated each round), after
#   a short warm-up of each.  Ratios are to haproxy within the same round; the
#   summary gives medians over rounds.
#
#   Output: per round and summary tables with ratios to haproxy, the
#   ceiling (direct), the commit measured.  Then dyno-route's VmRSS: idle (fresh process), with IDLE_CONNS open client
#   connections that sent nothing (--header-timeout 60s), after one keep-alive
#   request on each (all held open), and after they close (bench/holdconns.py).
#
# Needs: wrk, haproxy, nginx, python3, bin/dyno-route (built if missing).
# Every process it starts is stopped by pid on exit.
#
# Usage: bench/route.sh     (env: ROUNDS=3 DUR=10s CONNS=50 WARM=2s
#                            IDLE_CONNS=10000 ROUTER=bin/dyno-route KEEP=1)
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"	# bench_commit, wrk_parse
ROOT=$BENCH_ROOT
ROUTER=${ROUTER:-$ROOT/bin/dyno-route}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10s}
CONNS=${CONNS:-50}
WARM=${WARM:-2s}
IDLE_CONNS=${IDLE_CONNS:-10000}
TARGETS=(direct haproxy nginx dyno)

die() { echo "route.sh: $*" >&2; exit 1; }
for c in wrk haproxy nginx python3 awk curl; do
	command -v "$c" >/dev/null || die "needs $c"
done

# 10k client sockets here plus 10k in the router: raise the fd limit as far
# as allowed (65536 wanted; a container's hard limit may be lower).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) >= IDLE_CONNS + 100 )) ||
	die "ulimit -n $(ulimit -n) is too low for IDLE_CONNS=$IDLE_CONNS"

T=$(mktemp -d "${TMPDIR:-/tmp}/route-bench.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ -n ${KEEP:-} ]]; then
		echo "route.sh: kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The router under test: a default (unsanitized) build, copied so that a
# rebuild of bin/ during the run cannot change it.
if [[ $ROUTER == "$ROOT/bin/dyno-route" ]]; then
	[[ -x $ROUTER ]] || make -C "$ROOT" >/dev/null || die "make failed"
	for _ in $(seq 120); do
		[[ $(cat "$ROOT/build/variant" 2>/dev/null || echo default) != san ]] && break
		echo "route.sh: bin/ is a sanitizer build; waiting" >&2
		sleep 5
	done
	[[ $(cat "$ROOT/build/variant" 2>/dev/null || echo default) != san ]] ||
		die "bin/ is still a sanitizer build"
fi
cp "$ROUTER" "$T/dyno-route"
ROUTER_BIN=$T/dyno-route

# Free ports, picked by the kernel, released just before use.
read -r P_A P_B P_HA P_NG P_DY P_IDLE < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

wait_port() {	# port
	local i
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	die "nothing listens on 127.0.0.1:$1"
}

nginx_conf() {	# dir port location-/-body [http-extra [server-extra]]
	local acc="access_log off;"	# "off" on a level turns off every log there
	[[ ${4:-} == *access_log* ]] && acc=""
	mkdir -p "$1"
	cat >"$1/nginx.conf" <<-EOF
	daemon off;
	master_process on;
	worker_processes 1;
	pid $1/nginx.pid;
	error_log $1/error.log warn;
	events { worker_connections 20000; }
	http {
		$acc
		client_body_temp_path $1/body;
		proxy_temp_path $1/proxy;
		fastcgi_temp_path $1/fastcgi;
		uwsgi_temp_path $1/uwsgi;
		scgi_temp_path $1/scgi;
		keepalive_requests 10000000;
		keepalive_timeout 120s;
		${4:-}
		server {
			listen 127.0.0.1:$2;
			location / { $3 }
			${5:-}
		}
	}
	EOF
}

start_nginx() {	# dir
	nginx -p "$1" -c "$1/nginx.conf" >"$1/stdout" 2>&1 &
	PIDS+=($!)
}

# Backends: /echo answers with the forwarding headers it got.
# shellcheck disable=SC2016  # nginx's variables
ECHO='location /echo { return 200 "xff=$http_x_forwarded_for xfproto=$http_x_forwarded_proto xfport=$http_x_forwarded_port xrstart=$http_x_request_start xrid=$http_x_request_id via=$http_via\n"; }'
nginx_conf "$T/be-a" "$P_A" 'return 200 "hello\n";' "" "$ECHO"
nginx_conf "$T/be-b" "$P_B" 'return 200 "hello\n";' "" "$ECHO"
# The proxies' forwarding headers and request log: dyno-route's work.
# shellcheck disable=SC2016  # nginx's variables
NG_PROXY='proxy_pass http://be; proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Port $server_port;
			proxy_set_header X-Request-Start $msec;
			proxy_set_header X-Request-Id $request_id;
			proxy_set_header Via "1.1 nginx";'
# shellcheck disable=SC2016
NG_LOG='log_format dyno '"'"'$time_iso8601 method=$request_method path="$request_uri" host=$host request_id=$request_id fwd="$proxy_add_x_forwarded_for" dyno=$upstream_addr connect=$upstream_connect_time service=$upstream_response_time status=$status bytes=$bytes_sent protocol=$scheme'"'"';
		access_log '"$T/ng/access.log"' dyno buffer=64k flush=10ms;'
nginx_conf "$T/ng" "$P_NG" "$NG_PROXY" "upstream be {
			least_conn;
			server 127.0.0.1:$P_A;
			server 127.0.0.1:$P_B;
			keepalive 64;
		}
		$NG_LOG"
cat >"$T/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 8000
	pidfile $T/haproxy.pid
	log stdout format raw local0
defaults
	mode http
	log global
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	http-reuse always
frontend fe
	bind 127.0.0.1:$P_HA
	option forwardfor
	unique-id-format %[uuid()]
	unique-id-header X-Request-Id
	http-request set-header X-Forwarded-Proto http
	http-request set-header X-Forwarded-Port %[dst_port]
	http-request set-header X-Request-Start %[date(0,ms)]
	http-request add-header Via "1.1 haproxy"
	http-request capture req.hdr(host) len 128
	log-format "%t method=%HM path=\"%HU\" host=%[capture.req.hdr(0)] request_id=%ID fwd=\"%ci\" dyno=%s connect=%Tc service=%Tr status=%ST bytes=%B protocol=http"
	default_backend be
backend be
	balance leastconn
	server a 127.0.0.1:$P_A
	server b 127.0.0.1:$P_B
EOF

start_nginx "$T/be-a"
start_nginx "$T/be-b"
start_nginx "$T/ng"
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy-access.log" 2>"$T/haproxy.err" &
PIDS+=($!)
"$ROUTER_BIN" -b "127.0.0.1:$P_A,127.0.0.1:$P_B" -l "127.0.0.1:$P_DY" \
	>"$T/route.log" 2>"$T/route.err" &
DYNO_PID=$!
PIDS+=("$DYNO_PID")
for p in "$P_A" "$P_B" "$P_HA" "$P_NG" "$P_DY"; do
	wait_port "$p"
done

port_of() {
	case $1 in
	direct) echo "$P_A" ;;
	haproxy) echo "$P_HA" ;;
	nginx) echo "$P_NG" ;;
	dyno) echo "$P_DY" ;;
	esac
}
log_of() {
	case $1 in
	haproxy) echo "$T/haproxy-access.log" ;;
	nginx) echo "$T/ng/access.log" ;;
	dyno) echo "$T/route.log" ;;
	esac
}
log_lines() { grep -c ' method=' "$1" 2>/dev/null || true; }

# The same work on every proxy: all six headers reach the backend, and the
# request gets a line in the proxy's log file (buffered ones within 10 ms;
# a 5 s deadline here).
echo "route.sh: what each proxy forwards (GET /echo, as backend A or B saw it):"
for t in haproxy nginx dyno; do
	before=$(log_lines "$(log_of "$t")")
	body=$(curl -fsS --max-time 5 "http://127.0.0.1:$(port_of "$t")/echo") ||
		die "$t: GET /echo failed"
	for h in xff xfproto xfport xrstart xrid via; do
		[[ " $body" == *" $h="[!\ ]* ]] || die "$t did not forward $h: $body"
	done
	for _ in $(seq 100); do
		(( $(log_lines "$(log_of "$t")") > before )) && break
		sleep 0.05
	done
	(( $(log_lines "$(log_of "$t")") > before )) || die "$t logged no line for GET /echo"
	printf '  %-8s %s\n' "$t" "$body"
done

echo "route.sh: $(date -u +%FT%TZ), commit $(bench_commit), $(nproc) cores," \
	"wrk -t1 -c$CONNS -d$DUR, $ROUNDS rounds; router $(sha256sum "$ROUTER_BIN" | cut -c1-12)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "route.sh: warm-up ($WARM each)"
for t in "${TARGETS[@]}"; do
	wrk -t1 -c"$CONNS" -d"$WARM" "http://127.0.0.1:$(port_of "$t")/" \
		>"$T/warm-$t.txt" 2>&1 || die "wrk failed on $t: $(cat "$T/warm-$t.txt")"
done

: >"$T/results"
problems=0
for r in $(seq "$ROUNDS"); do
	# Rotate the order so that no target always runs first or last.
	order=()
	for i in "${!TARGETS[@]}"; do
		order+=("${TARGETS[$(( (i + r - 1) % ${#TARGETS[@]} ))]}")
	done
	for t in "${order[@]}"; do
		out=$T/wrk-$t-$r.txt
		wrk -t1 -c"$CONNS" -d"$DUR" --latency \
			"http://127.0.0.1:$(port_of "$t")/" >"$out" 2>&1 ||
			die "wrk failed on $t: $(cat "$out")"
		read -r reqs rps p50 p99 non2xx serr < <(wrk_parse "$out")
		echo "$r $t $reqs $rps $p50 $p99 $non2xx $serr" >>"$T/results"
		printf '  round %d %-8s %10s req/s  p50 %7.3f ms  p99 %7.3f ms' \
			"$r" "$t" "$rps" "$p50" "$p99"
		if (( non2xx + serr > 0 )); then
			printf '  NON-2XX %d SOCKET-ERRORS %d' "$non2xx" "$serr"
			problems=1
		fi
		printf '\n'
		kill -0 "$DYNO_PID" 2>/dev/null || die "dyno-route died: $(tail -5 "$T/route.err")"
	done
done

echo
echo "Per round (ratios to haproxy in the same round):"
awk '
{ rps[$1, $2] = $4; p50[$1, $2] = $5; p99[$1, $2] = $6; n = ($1 > n ? $1 : n) }
END {
	printf "%-6s %-8s %10s %8s %8s %9s %9s\n", "round", "target", "req/s",
	    "p50 ms", "p99 ms", "req/s÷ha", "p99÷ha"
	split("direct haproxy nginx dyno", ts, " ")
	for (r = 1; r <= n; r++)
		for (i = 1; i <= 4; i++) {
			t = ts[i]
			printf "%-6d %-8s %10.0f %8.3f %8.3f %9.2f %9.2f\n", r, t,
			    rps[r, t], p50[r, t], p99[r, t],
			    rps[r, t] / rps[r, "haproxy"], p99[r, t] / p99[r, "haproxy"]
		}
}' "$T/results"

echo
echo "Summary (median over $ROUNDS rounds; ratios are medians of per-round ratios):"
echo
python3 - "$T/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, t, reqs, rps, p50, p99, non2xx, serr in rows:
    by.setdefault(t, []).append((int(r), float(rps), float(p50), float(p99),
                                 int(non2xx), int(serr)))
ha = {x[0]: x for x in by["haproxy"]}
print("| target | req/s | p50 ms | p99 ms | req/s vs haproxy | p99 vs haproxy | non-2xx + socket errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t in ["direct", "haproxy", "nginx", "dyno"]:
    v = by[t]
    med = lambda i: statistics.median(x[i] for x in v)
    rr = statistics.median(x[1] / ha[x[0]][1] for x in v)
    pr = statistics.median(x[3] / ha[x[0]][3] for x in v)
    name = "dyno-route" if t == "dyno" else t
    print(f"| {name} | {med(1):.0f} | {med(2):.3f} | {med(3):.3f} | "
          f"{rr:.2f}x | {pr:.2f}x | {sum(x[4] + x[5] for x in v)} |")
EOF

# Every proxy wrote its log line for every request wrk counted (warm-up
# and rounds; wrk does not count requests cut at its end, the logs do).
echo
for t in haproxy nginx dyno; do
	want=0
	for f in "$T/warm-$t.txt" "$T"/wrk-"$t"-*.txt; do
		want=$((want + $(wrk_parse "$f" | cut -d' ' -f1)))
	done
	for _ in $(seq 100); do	# nginx and dyno-route flush within 10 ms
		(( $(log_lines "$(log_of "$t")") > want )) && break
		sleep 0.05
	done
	got=$(( $(log_lines "$(log_of "$t")") - 1 ))	# less GET /echo
	printf '%-8s log lines: %d for %d requests\n' "$t" "$got" "$want"
	(( got >= want )) || { echo "$t logged fewer lines than requests"; problems=1; }
done

# The router's own record of the load rounds: every line should be a 200.
echo
awk '
/at=error/ { err++ }
/ status=/ { for (i = 1; i <= NF; i++) if ($i ~ /^status=/) st[substr($i, 8)]++ }
END {
	printf "dyno-route log: %d at=error lines; statuses:", err
	for (s in st) printf " %s=%d", s, st[s]
	printf "\n"
}' "$T/route.log"
if grep -q 'at=error' "$T/route.log"; then
	problems=1
	echo "first error lines:"
	grep 'at=error' "$T/route.log" | head -5
fi
[[ -s $T/route.err ]] && { echo "dyno-route stderr:"; head -20 "$T/route.err"; }
echo "dyno-route VmRSS after the load rounds:" \
	"$(awk '/^VmRSS/ { print $2, $3 }' "/proc/$DYNO_PID/status")"

# Memory with many idle clients: a fresh router, so "idle" is its start.
echo
echo "dyno-route memory, $IDLE_CONNS idle client connections (bench/holdconns.py):"
"$ROUTER_BIN" -b "127.0.0.1:$P_A,127.0.0.1:$P_B" -l "127.0.0.1:$P_IDLE" \
	--header-timeout 60s >"$T/route-idle.log" 2>"$T/route-idle.err" &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
wait_port "$P_IDLE"
if ! python3 "$ROOT/bench/holdconns.py" "$P_IDLE" "$IDLE_PID" "$IDLE_CONNS" \
	| tee "$T/holdconns.txt"; then
	problems=1
fi
kill -0 "$IDLE_PID" 2>/dev/null || { echo "dyno-route (idle test) died"; problems=1; }
[[ -s $T/route-idle.err ]] && { echo "dyno-route stderr:"; head -20 "$T/route-idle.err"; }

echo
echo "configurations (the same work on each proxy, checked above):"
echo "  direct    wrk to backend A: the ceiling; no proxy"
echo "  haproxy   nbthread 1, leastconn, http-reuse always; option forwardfor,"
echo "            X-Forwarded-Proto/-Port, X-Request-Start, X-Request-Id (uuid()), Via;"
echo "            log-format line per request, log stdout (a write per line) to a file"
echo "  nginx     1 worker, least_conn, keepalive 64; the same six headers by"
echo "            proxy_set_header; access_log to a file, buffer=64k flush=10ms"
echo "  dyno      dyno-route -b A,B, 1 worker, defaults: the six headers and a log"
echo "            line per request to a file, buffered (64 KiB, 10 ms), as always"
echo "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1);" \
	"$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
if (( problems )); then
	KEEP=1
	echo "route.sh: problems seen; raw outputs kept in $T" >&2
	exit 1
fi
