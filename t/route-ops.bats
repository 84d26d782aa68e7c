#!/usr/bin/env bats
# dyno-route in operation: upgraded in place (a second router on the port,
# the first drained), started on a socket it is handed (systemd socket
# activation), out of file descriptors, and run as another user.  Real
# routers in front of the sample app on 127.0.0.1.

load helpers

PEERS="$BATS_TEST_DIRNAME/peers"

setup() {
	PIDS=()
	LOAD_PIDS=()
	ROUTER_PID=
	T="$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-route-ops.XXXXXX")"
	APP="$T"	# where start_load writes its .codes
	LOG="$T/router.log"
}

teardown() {
	local p sanitized=0
	[ -z "${NS:-}" ] || ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL
	[ -z "${NS:-}" ] || ip netns del "$NS" 2>/dev/null
	touch "$T/load.stop"
	for p in "${LOAD_PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; done
	for p in "${LOAD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	# The activator's router outlives it.
	[ -s "$T/pid" ] && kill -KILL "$(cat "$T/pid")" 2>/dev/null
	for p in "${LOAD_PIDS[@]}" "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	stop_run
	[ "${RUN_APP:-}" ] && APP=$RUN_APP kill_dynos && rm -rf "$RUN_APP"
	sanitizer_check "$T"/*.log || sanitized=1
	for p in "$T"/r[0-9].log; do
		[ -n "${BATS_TEST_COMPLETED:-}" ] || [ ! -f "$p" ] ||
		    { echo "--- $p:"; tail -n 20 "$p"; } >&2
	done
	keep_or_remove "$T" "$LOG" router 40
	[ "$sanitized" = 0 ]
}

# start_app NAME: the sample app as dyno NAME; its port in $LAST_PORT.
start_app() {
	LAST_PORT=$(pick_port)
	PORT=$LAST_PORT DYNO=$1 "$SAMPLE_APP" >>"$T/$1.log" 2>&1 3>&- &
	PIDS+=($!)
	wait_for 30 port_listening "$LAST_PORT"
}

# router LOGNAME ARG...: dyno-route in the background, output in
# $T/LOGNAME.log; its pid in $LAST_ROUTER.
router() {
	local name=$1
	shift
	"$BIN/dyno-route" "$@" >>"$T/$name.log" 2>&1 3>&- &
	LAST_ROUTER=$!
	PIDS+=($!)
}

# start_keepalive_load NAME PORT: POSTs on one keep-alive connection, a new
# one only when the router says Connection: close; a status (or "failed")
# per line in $APP/NAME.codes.  No retry: a request lost with a connection
# the router closed under it shows as failed (curl would resend it).
start_keepalive_load() {
	python3 -c '
import http.client, os, sys
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = None
with open(out, "a", buffering=1) as f:
    while not os.path.exists(stop):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/", body=b"one=1&two=2")
            r = conn.getresponse()
            r.read()
            f.write("%d\n" % r.status)
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:
            f.write("failed %r\n" % e)
            conn = None
' "$2" "$APP/$1.codes" "$APP/load.stop" 3>&- &
	LOAD_PIDS+=($!)
}

# listens PID PORT: process PID has a listening socket on PORT.
listens() { ss -Hltnp "sport = :$2" | grep -q "pid=$1,"; }
# queued_ge PID PORT N: N connections wait in the listen queue of PID's socket.
queued_ge() {
	[ "$(ss -Hltnp "sport = :$2" | awk -v p="pid=$1," 'index($0, p) { print $2 }')" -ge "$3" ]
}
served_ge() { [ "$(grep -c 'status=200' "$1" 2>/dev/null)" -ge "$2" ]; }

# ---- upgrade in place ----------------------------------------------------------

@test "upgrade in place: a second router on the port, SIGTERM to the first; no request fails, the second serves" {
	local i old port total
	start_app web.1; a=$LAST_PORT
	start_app web.2; b=$LAST_PORT
	port=$(pick_port)
	router r0 -b "127.0.0.1:$a,127.0.0.1:$b" -l "127.0.0.1:$port"
	old=$LAST_ROUTER
	wait_for 30 listens "$old" "$port"
	start_load get1 "http://127.0.0.1:$port/"
	start_load get2 "http://127.0.0.1:$port/"
	start_post_load post1 "http://127.0.0.1:$port/"
	start_post_load post2 "http://127.0.0.1:$port/"
	start_keepalive_load ka "$port"
	wait_for 30 load_total_ge 40
	for i in 1 2 3; do
		router "r$i" -b "127.0.0.1:$a,127.0.0.1:$b" -l "127.0.0.1:$port"
		wait_for 30 listens "$LAST_ROUTER" "$port"
		# Stopped, the old one lets connections pile up in its listen
		# queue: SIGTERM must serve them, not reset them.
		kill -STOP "$old"
		wait_for 30 queued_ge "$old" "$port" 2
		kill -TERM "$old"
		kill -CONT "$old"
		wait_for 30 pid_gone "$old"
		run wait "$old"
		[ "$status" -eq 0 ]
		old=$LAST_ROUTER
		total=$(load_total)
		wait_for 30 load_total_ge $((total + 40))
		# The new one served requests sent after the old one left.
		wait_for 30 served_ge "$T/r$i.log" 20
	done
	stop_load
	[ "$(load_failed)" -eq 0 ]
	[ "$(load_total)" -ge 160 ]
	grep -q 'method=POST' "$T/r3.log"
}

@test "upgrade in place: connections queued on the old router's socket are served, not reset" {
	local i n=600 fd line ok=0 old fds=()
	start_app web.1; a=$LAST_PORT
	port=$(pick_port)
	router r0 -b "127.0.0.1:$a" -l "127.0.0.1:$port"
	old=$LAST_ROUTER
	wait_for 30 listens "$old" "$port"
	router r1 -b "127.0.0.1:$a" -l "127.0.0.1:$port"
	wait_for 30 listens "$LAST_ROUTER" "$port"
	# The old one stopped: about half of the connections queue on its
	# socket, more than the rounds (64 accepts each) before SIGTERM is read take.
	kill -STOP "$old"
	for ((i = 0; i < n; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$port"
		printf 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' >&"$fd"
		fds+=("$fd")
	done
	wait_for 30 queued_ge "$old" "$port" 200
	kill -TERM "$old"
	kill -CONT "$old"
	for fd in "${fds[@]}"; do
		if read -r -t 30 line <&"$fd" && [ "$line" = $'HTTP/1.1 200 OK\r' ]; then
			ok=$((ok + 1))
		fi
		exec {fd}<&-
	done
	[ "$ok" -eq "$n" ]
	wait_for 30 pid_gone "$old"
	run wait "$old"
	[ "$status" -eq 0 ]
	[ "$(grep -c "status=200" "$T/r0.log")" -ge 200 ]
}

@test "upgrade in place: a response under way when the drain begins keeps its connection for the next request" {
	local port
	python3 "$PEERS/backend.py" "$T/be.port" --name be >>"$T/be.log" 2>&1 3>&- &
	PIDS+=($!)
	wait_for 30 test -s "$T/be.port"
	port=$(pick_port)
	router r0 -b "127.0.0.1:$(cat "$T/be.port")" -l "127.0.0.1:$port"
	old=$LAST_ROUTER
	wait_for 30 listens "$old" "$port"
	# A keep-alive client: the first response's head (no Connection:
	# close) arrives, the router is told to drain, the body ends; the
	# next request on the same connection must be answered, and the
	# answer says Connection: close.
	python3 -c '
import http.client, os, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
c.request("GET", "/pause?ms=1500")
r = c.getresponse()
open(sys.argv[2], "w").write(str(r.getheader("Connection")))
print(r.status, r.read().decode())
sock = c.sock
c.request("GET", "/")
same = "same" if sock is c.sock else "new"
r = c.getresponse()
r.read()
print(r.status, r.getheader("Connection"), same)
' "$port" "$T/head" >"$T/client.out" 2>&1 3>&- &
	cl=$!
	PIDS+=($cl)
	wait_for 30 test -s "$T/head"
	[ "$(cat "$T/head")" = None ]
	kill -TERM "$old"
	wait "$cl" || { cat "$T/client.out"; false; }
	[ "$(sed -n 1p "$T/client.out")" = "200 abcdefghij" ]
	[ "$(sed -n 2p "$T/client.out")" = "200 close same" ]
	wait_for 30 pid_gone "$old"
	[ "$(grep -c 'status=200' "$T/r0.log")" -eq 2 ]
}

# ---- socket activation ---------------------------------------------------------

@test "socket activation: systemd-socket-activate hands the router its socket; -l with it is a usage error" {
	local port pid
	start_app web.1; a=$LAST_PORT
	port=$(pick_port)
	router r0 -b "127.0.0.1:$a" -l "127.0.0.1:$port"
	wait_for 30 listens "$LAST_ROUTER" "$port"
	kill -TERM "$LAST_ROUTER"
	wait_for 30 pid_gone "$LAST_ROUTER"
	# It execs the router at the first connection: the pid is the
	# router's, and so is the socket.
	systemd-socket-activate -l "127.0.0.1:$port" \
	    "$BIN/dyno-route" -b "127.0.0.1:$a" >>"$LOG" 2>&1 3>&- &
	ROUTER_PID=$!
	PIDS+=($!)
	wait_for 30 listens "$ROUTER_PID" "$port"
	[ "$(curl -s "http://127.0.0.1:$port/")" = "Hello from web.1" ]
	kill -TERM "$ROUTER_PID"
	wait_for 30 pid_gone "$ROUTER_PID"
	run wait "$ROUTER_PID"
	[ "$status" -eq 0 ]
	# It starts the program at the first connection.
	systemd-socket-activate -l "127.0.0.1:$port" "$BIN/dyno-route" \
	    -b "127.0.0.1:$a" -l "127.0.0.1:$port" >"$T/usage.log" 2>&1 3>&- &
	pid=$!
	PIDS+=($!)
	wait_for 30 port_listening "$port"
	wait_for 30 pid_gone "$pid"
	run wait "$pid"
	[ "$status" -eq 2 ]
	grep -q -- '-l with a socket passed in LISTEN_FDS' "$T/usage.log"
}

@test "socket activation: a passed fd that is not a listening TCP socket exits 1; LISTEN_PID not ours is ignored" {
	local port pid
	port=$(pick_port)
	# exec keeps our pid: LISTEN_PID names the router itself.
	run timeout 20 sh -c 'LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" -b 127.0.0.1:1' \
	    "$BIN/dyno-route" 3</dev/null
	[ "$status" -eq 1 ]
	[[ $output == *"fd 3 is not one listening TCP socket: Socket operation on non-socket"* ]]
	run timeout 20 sh -c 'LISTEN_FDS=2 LISTEN_PID=$$ exec "$0" -b 127.0.0.1:1' \
	    "$BIN/dyno-route" 3</dev/null
	[ "$status" -eq 1 ]
	[[ $output == *"Invalid argument"* ]]
	# A TCP socket, but not listening.
	run timeout 20 python3 -c 'import os, socket, sys
s = socket.socket()
os.dup2(s.fileno(), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[1], sys.argv[1:])' "$BIN/dyno-route" -b 127.0.0.1:1
	[ "$status" -eq 1 ]
	[[ $output == *"fd 3 is not one listening TCP socket: Invalid argument"* ]]
	# Another pid's variables: not for us, so -l binds as usual.
	LISTEN_FDS=1 LISTEN_PID=1 router r0 -b "127.0.0.1:1" -l "127.0.0.1:$port" 3</dev/null
	wait_for 30 listens "$LAST_ROUTER" "$port"
}

@test "socket activation: restarts with the socket held by the activator refuse no connection" {
	local i pid port total
	start_app web.1; a=$LAST_PORT
	start_app web.2; b=$LAST_PORT
	python3 "$PEERS/activate.py" "$T/port" "$T/pid" \
	    "$BIN/dyno-route" -b "127.0.0.1:$a,127.0.0.1:$b" >>"$LOG" 2>&1 3>&- &
	PIDS+=($!)
	act=$!
	wait_for 30 test -s "$T/port"
	port=$(cat "$T/port")
	start_load get1 "http://127.0.0.1:$port/"
	start_post_load post1 "http://127.0.0.1:$port/"
	start_post_load post2 "http://127.0.0.1:$port/"
	wait_for 30 load_total_ge 30
	for i in 1 2 3; do
		pid=$(cat "$T/pid")
		kill -USR1 "$act"
		wait_for 30 pid_gone "$pid"
		wait_for 30 eval '[ "$(cat "$T/pid")" != "$pid" ]'
		total=$(load_total)
		wait_for 30 load_total_ge $((total + 30))
	done
	stop_load
	[ "$(load_failed)" -eq 0 ]
	[ "$(grep -c 'status=200' "$LOG")" -ge 120 ]
}

# ---- out of file descriptors ---------------------------------------------------

# nfds PID LIMIT: how many of PID's fds are below LIMIT, the ones
# RLIMIT_NOFILE counts against new fds (an fd inherited above it, as a
# test runner may pass one down, takes no room).
nfds() { ls "/proc/$1/fd" | awk -v l="$2" '$1 < l' | wc -l; }
nfds_is() { [ "$(nfds "$1" "$2")" -eq "$2" ]; }
# cpu_ticks PID: user + system time of PID so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

@test "out of fds: accepting pauses instead of spinning, no dyno is quarantined (H99), service resumes" {
	local limit=32 i n fd t0 held=()
	start_app web.1; a=$LAST_PORT
	port=$(pick_port)
	router r0 -b "127.0.0.1:$a" -l "127.0.0.1:$port"
	pid=$LAST_ROUTER
	wait_for 30 listens "$pid" "$port"
	prlimit --pid "$pid" --nofile=$limit:$limit
	# Idle connections until the router holds its last fd.
	n=$((limit - $(nfds "$pid" $limit)))
	[ "$n" -gt 5 ]
	for ((i = 0; i < n; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$port"
		held+=("$fd")
	done
	wait_for 30 nfds_is "$pid" "$limit"
	# One more: accept fails with EMFILE, and the connection waits queued.
	# curl gets no copy of the held connections, or closing one here
	# would not close it.
	(
		for fd in "${held[@]}"; do exec {fd}>&-; done
		exec curl -s -o "$T/body1" -w '%{http_code}' --max-time 60 \
		    "http://127.0.0.1:$port/" >"$T/code1" 3>&-
	) &
	c1=$!
	PIDS+=($c1)
	wait_for 30 grep -q 'code=H99 desc="cannot accept: Too many open files, paused for 500ms"' "$T/r0.log"
	# Measured, not a synchronisation: a spinning loop burns ~1 s a second.
	t0=$(cpu_ticks "$pid")
	sleep 2
	[ $(( $(cpu_ticks "$pid") - t0 )) -lt 20 ]
	[ ! -s "$T/code1" ]	# still queued, not answered
	# One fd comes free: the waiting request is accepted, but there is no
	# fd left to reach the dyno: 503 H99, and the dyno is not blamed.
	exec {held[0]}>&-
	wait "$c1"
	[ "$(cat "$T/code1")" = 503 ]
	grep -q 'Platform error' "$T/body1"
	grep -q 'code=H99 desc="Platform error".* status=503' "$T/r0.log"
	grep -q 'at=error code=H99 desc="cannot connect to 127.0.0.1:'"$a"': Too many open files" dyno=' "$T/r0.log"
	fails grep -q quarantined "$T/r0.log"
	# All free again: served, by the same dyno, at once.
	for fd in "${held[@]:1}"; do exec {fd}>&-; done
	[ "$(curl -s --max-time 30 "http://127.0.0.1:$port/")" = "Hello from web.1" ]
}

# ---- a connect that meets itself ------------------------------------------------

@test "a dyno port nothing listens on, that a connect meets itself on: refused (503), never a request to itself" {
	[ "$(id -u)" = 0 ] || skip "needs root for a network namespace"
	local p=42424 lport=42500
	NS=dyno-route-self-$$
	ip netns add "$NS"
	ip netns exec "$NS" ip link set lo up
	# The only port left for a connect's source is the dyno's: the
	# router's connect to it meets itself unless it sees that.
	ip netns exec "$NS" sysctl -q -w net.ipv4.ip_local_port_range="$p $p"
	ip netns exec "$NS" "$BIN/dyno-route" -b "127.0.0.1:$p" -l "127.0.0.1:$lport" \
	    >>"$T/r0.log" 2>&1 3>&- &
	PIDS+=($!)
	wait_for 30 ip netns exec "$NS" bash -c "exec 9<>/dev/tcp/127.0.0.1/$lport" 2>/dev/null
	# The client binds a port of its own (the one ephemeral port is the dyno's).
	code=$(ip netns exec "$NS" curl -s -o "$T/body" -w '%{http_code}' --max-time 20 \
	    --local-port 42600 "http://127.0.0.1:$lport/")
	cat "$T/r0.log"
	[ "$code" = 503 ]
	grep -q 'code=H21 ' "$T/r0.log"
	fails grep -q 'H17' "$T/r0.log"
}

# ---- -u, and who holds run/router.pid ------------------------------------------

# write_routes LINE...: a new run/routes renamed into place, as dyno-run does.
write_routes() {
	printf '%s\n' "$@" > "$APPDIR/.dyno/run/routes.tmp"
	mv "$APPDIR/.dyno/run/routes.tmp" "$APPDIR/.dyno/run/routes"
}
body_is() { [ "$(curl -s --max-time 10 "$1")" = "$2" ]; }

@test "-a with -u nobody: the routes are read and followed, run/router.pid is locked while the router lives and empty after" {
	local port pid
	start_app web.1; a=$LAST_PORT
	start_app web.2; b=$LAST_PORT
	APPDIR="$T/app"
	mkdir -p "$APPDIR/.dyno/run"
	chmod 700 "$APPDIR/.dyno"
	write_routes "web.1 127.0.0.1:$a"
	port=$(pick_port)
	router r0 -a "$APPDIR" -u nobody -l "127.0.0.1:$port"
	pid=$LAST_ROUTER
	wait_for 30 listens "$pid" "$port"
	[ "$(stat -c %u "/proc/$pid")" = "$(id -u nobody)" ]
	body_is "http://127.0.0.1:$port/" "Hello from web.1"
	# A new routes file is seen as nobody too.
	write_routes "web.2 127.0.0.1:$b"
	wait_for 30 body_is "http://127.0.0.1:$port/" "Hello from web.2"
	fails grep -q H14 "$T/r0.log"
	# Requests for 2.5 s: the counters are due (and fail) every second.
	local until=$(( $(now_ms) + 2500 ))
	while [ "$(now_ms)" -lt "$until" ]; do
		body_is "http://127.0.0.1:$port/" "Hello from web.2"
	done
	[ "$(cat "$APPDIR/.dyno/run/router.pid")" = "$pid" ]
	fails flock -n -s "$APPDIR/.dyno/run/router.pid" true
	kill -TERM "$pid"
	wait_for 30 pid_gone "$pid"
	run wait "$pid"
	[ "$status" -eq 0 ]
	# run/ is root's, so the file stays, but empty: it names no router.
	[ -f "$APPDIR/.dyno/run/router.pid" ]
	[ ! -s "$APPDIR/.dyno/run/router.pid" ]
	flock -n -x "$APPDIR/.dyno/run/router.pid" true
	# The counters cannot be written there (dyno-route(1) CAVEATS):
	# said once, not every second.
	[ "$(grep -c 'cannot write run/router' "$T/r0.log")" -eq 1 ]
}

# hup_count FILE: the SIGHUPs a trapping shell logged to FILE.
hup_count() { cat "$1" 2>/dev/null | grep -c HUP || true; }

@test "dyno-run signals only a router that holds run/router.pid locked, never a stale pid" {
	local pid live other n ups
	make_app 'web: ./app'
	RUN_APP=$APP
	mkdir -p "$APP/.dyno/run"
	# A live process that is not a router, named by a stale (unlocked) file.
	# It says it is ready once its trap is set: a HUP before that would
	# kill it silently, and the test could not tell it was signalled.  It
	# holds the file open, unlocked: only the lock tells it from a router.
	: > "$APP/.dyno/run/router.pid"
	sh -c 'exec 8<"$1"; trap "echo HUP >> \"$0\"" HUP; : > "$0.ready"; while :; do sleep 0.05; done' "$T/stale.hup" "$APP/.dyno/run/router.pid" 3>&- &
	pid=$!
	PIDS+=($pid)
	wait_for 30 test -e "$T/stale.hup.ready"
	echo "$pid" > "$APP/.dyno/run/router.pid"
	# Its first routes are written with the stale file in place.
	start_run
	wait_for 30 has_routes 1
	# The same pid with the file locked (as dyno-route holds it): signalled.
	# The shell takes the lock itself, so that the pid in PIDS is the one
	# holding it (flock CMD would leave the shell behind when killed).
	sh -c 'trap "echo HUP >> \"$2\"" HUP; exec 9>>"$1"; flock -x 9; echo $$ > "$1"; while :; do sleep 0.05; done' \
	    sh "$APP/.dyno/run/router.pid" "$T/live.hup" 3>&- &
	live=$!
	PIDS+=($live)
	wait_for 30 fails flock -n -s "$APP/.dyno/run/router.pid" true
	control restart web.1
	wait_for 30 eval '[ "$(hup_count "$T/live.hup")" -ge 1 ]'
	[ "$(hup_count "$T/stale.hup")" -eq 0 ]
	kill -0 "$pid"
	# A holder of the lock that names another process, one without the
	# file open (a router's worker left holding it, its master's pid
	# reused): the lock proves only that someone holds it, so that
	# process is not signalled.
	kill "$live"
	wait_for 30 flock -n -s "$APP/.dyno/run/router.pid" true
	sh -c 'trap "echo HUP >> \"$0\"" HUP; : > "$0.ready"; while :; do sleep 0.05; done' "$T/other.hup" 3>&- &
	other=$!
	PIDS+=($other)
	wait_for 30 test -e "$T/other.hup.ready"
	sh -c 'exec 9>>"$1"; flock -x 9; echo "$2" > "$1"; while :; do sleep 0.05; done' \
	    sh "$APP/.dyno/run/router.pid" "$other" 3>&- &
	PIDS+=($!)
	wait_for 30 fails flock -n -s "$APP/.dyno/run/router.pid" true
	wait_for 30 grep -qx "$other" "$APP/.dyno/run/router.pid"
	# Two restarts, each to up: a HUP the first sent has landed by the
	# end of the second.
	for n in 1 2; do
		ups=$(log_count 'heroku\[web.1\]: State changed from starting to up')
		control restart web.1
		wait_for 30 log_count_ge 'heroku\[web.1\]: State changed from starting to up' $((ups + 1))
	done
	[ "$(hup_count "$T/other.hup")" -eq 0 ]
	kill -0 "$other"
}
