#!/usr/bin/env bats
# dyno-health: probes, verdicts and replacements, against a real supervisor,
# router and sample app on 127.0.0.1.

load helpers

setup() {
	LOAD_PIDS=() PEER_PIDS=()
	ROUTER_PID= HEALTH_PID= AUTO_PID=
}

teardown() { daemons_teardown; }

health() { "$BIN/dyno-health" -a "$APP" "$@"; }
hstate() { sed -n "s/^$2=//p" "$APP/.dyno/run/health/$1" 2>/dev/null; }
hstate_is() { [ "$(hstate "$1" "$2")" = "$3" ]; }
hlog_has() { grep -q -- "$1" "$APP/health.log"; }
hlog_count() { grep -c -- "$1" "$APP/health.log" || true; }
hlog_count_ge() { [ "$(hlog_count "$1")" -ge "$2" ]; }
file_has() { grep -q -- "$2" "$1" 2>/dev/null; }
# The dyno NAME is up under a pid other than OLD.
replaced() { [ "$(state "$1" pid)" != "$2" ] && is_state "$1" up; }
# Milliseconds since the epoch of a log line's timestamp.
line_ms() { date -d "$(cut -c1-32 <<<"$1" | tr T ' ')" +%s%3N; }
no_proc() { ! pgrep -fx "$1" >/dev/null; }

@test "a state file whose name is not its own TYPE.N is ignored: no health file outside run/health, not in ps" {
	make_app 'web: ./app'
	start_run web=1
	wait_for 10 has_routes 1
	port=$(state web.1 port)
	# Planted as a dyno's user could: a name that climbs out of
	# run/health, and one that is not the file's.
	printf 'name=../../../planted\ntype=web\nstate=up\npid=%s\nport=%s\n' \
	    "$(state web.1 pid)" "$port" >"$APP/.dyno/run/dynos/evil"
	printf 'name=web.7\ntype=web\nstate=up\npid=%s\nport=%s\n' \
	    "$(state web.1 pid)" "$port" >"$APP/.dyno/run/dynos/web.6"
	printf 'name=x/y.1\ntype=x/y\nstate=up\npid=1\nport=%s\n' "$port" >"$APP/.dyno/run/dynos/x"
	start_health --interval 200ms
	wait_for 10 hstate_is web.1 state ok
	# Two more rounds, each of which would have probed the planted ones.
	c=$(hstate web.1 checked)
	wait_for 10 eval '[ "$(hstate web.1 checked)" -gt "$c" ]'
	c=$(hstate web.1 checked)
	wait_for 10 eval '[ "$(hstate web.1 checked)" -gt "$c" ]'
	[ "$(ls "$APP/.dyno/run/health")" = web.1 ]
	[ ! -e "$APP/planted" ]
	[ ! -e "$APP/.dyno/planted" ]
	[ ! -e "$(dirname "$APP")/planted" ]
	run "$BIN/dyno-scale" -a "$APP" --porcelain
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 1 ]
	[[ "$output" == web.1$'\t'* ]]
}

@test "--once: a table, exit 0 when all are healthy, 1 when a dyno hangs" {
	make_app 'web: ./app'
	start_run web=2
	wait_for 10 has_routes 2
	run health --once
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^TARGET\ +STATE\ +LATENCY\ +REASON$ ]]
	[[ "${lines[1]}" =~ ^web\.1\ +ok\ +[0-9]+ms\ *$ ]]
	[[ "${lines[2]}" =~ ^web\.2\ +ok\ +[0-9]+ms\ *$ ]]
	[ "${#lines[@]}" -eq 3 ]
	hstate_is web.1 state ok
	hstate_is web.1 pid "$(state web.1 pid)"
	# A hung dyno: its whole session stopped.  It still accepts (the
	# kernel does that) but never answers.
	pkill -STOP -s "$(state web.2 pid)"
	t0=$(now_ms)
	run health --once --timeout 1s
	t1=$(now_ms)
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" =~ ^web\.1\ +ok\ +[0-9]+ms\ *$ ]]
	[[ "${lines[2]}" =~ ^web\.2\ +fail\ +[0-9]+ms\ +H12\ no\ response\ within\ 1000ms$ ]]
	# Probes run at once: one timeout, not one per dyno.
	[ $((t1 - t0)) -lt 3000 ]
	hstate_is web.2 state fail
	hstate_is web.2 code H12
	run "$BIN/dyno-scale" -a "$APP"
	grep -q '^web.2: up .* health=fail$' <<<"$output"
	# --once reports; it never asks for a restart.
	[ "$(state web.2 restarts)" = 0 ]
	pkill -CONT -s "$(state web.2 pid)"
	run health --once
	[ "$status" -eq 0 ]
}

@test "--once: usage errors exit 2 and probe nothing" {
	make_app 'web: ./app'
	for args in '--bogus' '--tcp --exec true' '--timeout soon' '--interval 0' \
	    '--fall 0' '--rise x' '--path health' '--url ftp://example' \
	    '--type no.dots' 'extra'; do
		run health --once $args
		echo "dyno-health $args -> $status: $output"
		[ "$status" -eq 2 ]
		[[ "$output" != *TARGET* ]]
	done
	run "$BIN/dyno-health" -a "$APP/nonexistent" --once
	[ "$status" -eq 2 ]
	# A folder that is no app is not probed as an empty one, nor changed.
	mkdir "$APP/notanapp"
	run "$BIN/dyno-health" -a "$APP/notanapp" --once
	[ "$status" -eq 2 ]
	[[ "$output" == *"$APP/notanapp is not an app directory"* ]]
	[ ! -e "$APP/notanapp/.dyno" ]
	cd "$APP/notanapp"
	run "$BIN/dyno-health" --once
	[ "$status" -eq 2 ]
	[ ! -e "$APP/notanapp/.dyno" ]
	run health --help
	[ "$status" -eq 0 ]
	[[ "$output" == usage:* ]]
}

@test "--once: HTTP with --path and --expect, --tcp, --exec with DYNO and PORT, --type" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	run health --once --path /health --expect ok
	[ "$status" -eq 0 ]
	# The body must contain the text.
	run health --once --path /health --expect 'Hello from'
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" =~ ^web\.1\ +fail\ +[0-9]+ms\ +H17\ body\ lacks\ \"Hello\ from\"$ ]]
	run health --once --expect 'Hello from web'
	[ "$status" -eq 0 ]
	# A status outside 2xx/3xx fails.
	run health --once --path /nosuch
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" == *'H17 status 404' ]]
	run health --once --tcp
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	# --exec probes every type; DYNO and PORT are the dyno's.
	run health --once --exec "echo \"\$DYNO \${PORT-unset}\" >> '$APP/exec.out'"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 4 ]
	[ "$(sort "$APP/exec.out")" = "$(printf 'web.1 %s\nweb.2 %s\nworker.1 unset' \
	    "$(state web.1 port)" "$(state web.2 port)")" ]
	# --type worker: only the worker, and its exit status is the verdict.
	run health --once --type worker --exec 'test "$DYNO" = worker.1 && exit 3'
	echo "$output"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" =~ ^worker\.1\ +fail\ +[0-9]+ms\ +H17\ exit\ status\ 3$ ]]
	run health --once --type worker --exec 'kill -TERM $$'
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" =~ ^worker\.1\ +fail\ +[0-9]+ms\ +H17\ killed\ by\ signal\ 15$ ]]
	# A probe that takes too long is a failure, and all of it is killed.
	run health --once --type worker --timeout 300ms --exec "sleep 7.31; touch '$APP/late'"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" == *'H12 no answer within 300ms' ]]
	wait_for 5 no_proc 'sleep 7.31'
}

@test "daemon: a hung dyno is replaced within interval x fall plus boot, no request fails" {
	make_app 'web: ./app'
	start_run --stop-grace 3s web=2
	wait_for 10 has_routes 2
	start_app_router
	start_health --interval 300ms --timeout 500ms --fall 3 --rise 2
	wait_for 5 hstate_is web.2 state ok
	start_load a "http://127.0.0.1:$ROUTER_PORT/"
	start_load b "http://127.0.0.1:$ROUTER_PORT/slow?ms=20"
	# POSTs are never sent again to another dyno: one the hung dyno holds
	# must be answered by it once it is woken to stop.
	start_post_load p1 "http://127.0.0.1:$ROUTER_PORT/slow?ms=20"
	start_post_load p2 "http://127.0.0.1:$ROUTER_PORT/slow?ms=20"
	wait_for 30 load_total_ge 20
	old=$(state web.2 pid)
	pkill -STOP -s "$old"
	t0=$(now_ms)
	# Sick at the third failure.  Its health file says "fail" only until
	# the replacement has risen, which can be quicker than one poll on a
	# busy machine: the log is what stays.
	wait_for 10 hlog_has 'heroku\[web.2\]: Error H12 health check failed'
	wait_for 10 replaced web.2 "$old"
	t1=$(now_ms)
	echo "replaced after $((t1 - t0))ms"
	# Three failed rounds of at most 300 ms each (a probe gets until the
	# next round, under the 500 ms timeout), plus the boot.
	[ $((t1 - t0)) -lt 5000 ]
	hlog_has 'heroku\[web.2\]: Error H12 health check failed: no response within 300ms'
	hlog_has 'heroku\[web.2\]: Restarting: health check failed 3 times'
	new=$(state web.2 pid)
	# The new one rises; the old one finished what it held and left.
	wait_for 10 hstate_is web.2 pid "$new"
	wait_for 10 hstate_is web.2 state ok
	wait_for 10 hlog_has 'heroku\[web.2\]: Health check passing again after [0-9]*s'
	wait_for 10 pid_gone "$old"
	log_has 'heroku\[web.2\]: Stopping all processes with SIGTERM'
	n=$(load_total)
	wait_for 30 load_total_ge $((n + 20))
	stop_load
	echo "requests: $(load_total), failed: $(load_failed)"
	sort "$APP"/*.codes | uniq -c
	[ "$(load_failed)" = 0 ]
	[ "$(cat "$APP"/p?.codes | grep -c '^200$')" -ge 10 ]
	# Woken, it left within the grace by itself: never killed for lingering.
	fails log_has 'Error R12'
	fails log_has 'heroku\[web.2\]: Stopping remaining processes with SIGKILL'
	# web.1 was never touched.
	[ "$(state web.1 restarts)" = 0 ]
	hstate_is web.1 state ok
}

@test "daemon at its defaults: a hung dyno falls after interval x fall, not timeout x fall" {
	make_app 'web: ./app'
	start_run --stop-grace 3s web=2
	wait_for 10 has_routes 2
	# The defaults: --interval 2s --timeout 5s --fall 3.
	start_health
	wait_for 10 hstate_is web.2 state ok
	old=$(state web.2 pid)
	pkill -STOP -s "$old"
	t0=$(now_ms)
	wait_for 20 hlog_has 'heroku\[web.2\]: Error H12 health check failed'
	t1=$(now_ms)
	echo "fell after $((t1 - t0))ms"
	# Three rounds 2 s apart, each probe given until the next: about 6 s
	# (it was 15 s: three probes each waiting out the 5 s timeout).
	[ $((t1 - t0)) -lt 8500 ]
	hlog_has 'health check failed: no response within 2000ms'
	wait_for 10 replaced web.2 "$old"
	pkill -CONT -s "$old" 2>/dev/null || true
}

@test "daemon: a dyno failing right after its restart waits out the backoff" {
	make_app 'worker: ./app --worker'
	start_run worker=1
	wait_for 10 is_state worker.1 up
	start_health --exec 'exit 1' --type worker --interval 300ms --timeout 500ms \
	    --fall 3 --restart-backoff 3s
	wait_for 10 hlog_has 'heroku\[worker.1\]: Restarting'
	first=$(grep 'heroku\[worker.1\]: Restarting' "$APP/health.log" | head -1)
	wait_for 10 hlog_has 'Not restarting again yet: failed [0-9]*s after its last restart, backoff 3s'
	wait_for 10 hlog_count_ge 'heroku\[worker.1\]: Restarting' 2
	second=$(grep 'heroku\[worker.1\]: Restarting' "$APP/health.log" | sed -n 2p)
	gap=$(( $(line_ms "$second") - $(line_ms "$first") ))
	echo "gap: ${gap}ms"
	# Not before the backoff is out; and asked again while it is 3s,
	# not only once it would have doubled.
	[ "$gap" -ge 2950 ]
	[ "$gap" -lt 6000 ]
	# Failing again so soon doubles the backoff.
	wait_for 10 hlog_has 'backoff 6s'
	[ "$(hlog_count 'heroku\[worker.1\]: Restarting')" = 2 ]
	# Every restart asked for was done by the supervisor, no more.
	[ "$(log_count 'heroku\[worker.1\]: Restarting')" = 2 ]
}

@test "daemon: the backoff holds for a slow-booting web dyno too" {
	# Between the restart and "up" the dyno is not probed, and must not be
	# forgotten either: its restart history goes on.
	make_app 'web: sleep 1; exec ./app'
	start_run web=1
	wait_for 10 has_routes 1
	start_health --path /nosuch --interval 300ms --timeout 500ms --fall 3 \
	    --restart-backoff 3s
	wait_for 10 hlog_has 'heroku\[web.1\]: Restarting'
	first=$(grep 'heroku\[web.1\]: Restarting' "$APP/health.log" | head -1)
	wait_for 15 hlog_count_ge 'heroku\[web.1\]: Restarting' 2
	second=$(grep 'heroku\[web.1\]: Restarting' "$APP/health.log" | sed -n 2p)
	gap=$(( $(line_ms "$second") - $(line_ms "$first") ))
	echo "gap: ${gap}ms"
	cat "$APP/health.log"
	[ "$gap" -ge 2950 ]
	hlog_has 'Not restarting again yet'
}

@test "--exec and --on-fail commands start clean: own session, fds 0-2 only, stdin /dev/null, no ignored signal" {
	make_app 'worker: ./app --worker'
	start_run worker=1
	wait_for 10 is_state worker.1 up
	info=$DYNO_ROOT/t/peers/childinfo.sh
	# Started with a stray fd, stdin a file and SIGINT ignored: none of it
	# may reach the commands.
	run sh -c 'trap "" INT; exec "$@" 9<"$0" <"$0"' "$APP/Procfile" \
	    "$BIN/dyno-health" -a "$APP" --once --type worker \
	    --exec "sh '$info' '$APP/exec'; exit 1" --on-fail "sh '$info' '$APP/hook'"
	echo "$output"
	[ "$status" -eq 1 ]
	wait_for 10 test -s "$APP/hook.stdin"
	for c in exec hook; do
		[ "$(cat "$APP/$c.fds")" = "0 1 2" ]
		[ "$(cat "$APP/$c.sid")" = "$(cat "$APP/$c.pid")" ]
		[ "$(cat "$APP/$c.stdin")" = /dev/null ]
		[ "$(cat "$APP/$c.sigign")" = 0000000000000000 ]
		# An operator's hook may mail through a setgid sendmail.
		[ "$(cat "$APP/$c.nnp")" = 0 ]
	done
}

@test "--on-fail runs on down and on up with the event in its environment" {
	make_app 'web: ./app'
	start_run web=2
	wait_for 10 has_routes 2
	start_health --interval 200ms --timeout 300ms --fall 2 --rise 2 --no-restart \
	    --on-fail "echo \"\$DYNO_HEALTH_EVENT \$DYNO_HEALTH_TARGET \$DYNO_HEALTH_CODE \$DYNO \$PORT|\$DYNO_HEALTH_REASON|\$DYNO_HEALTH_APP\" >> '$APP/hooks'"
	wait_for 5 hstate_is web.1 state ok
	pid=$(state web.1 pid)
	port=$(state web.1 port)
	pkill -STOP -s "$pid"
	wait_for 10 file_has "$APP/hooks" '^down'
	# A probe gets until the next round: 200 ms, under the 300 ms timeout.
	[ "$(cat "$APP/hooks")" = "down web.1 H12 web.1 $port|no response within 200ms|$APP" ]
	wait_for 5 hlog_count_ge 'heroku\[web.1\]: Error H12 health check still failing' 1
	# --no-restart: it is reported, not replaced, nor asked to be.
	[ "$(state web.1 pid)" = "$pid" ]
	fails grep -qi restart "$APP/health.log"
	fails log_has 'heroku\[web.1\]: Restarting'
	pkill -CONT -s "$pid"
	wait_for 10 file_has "$APP/hooks" '^up'
	[ "$(sed -n 2p "$APP/hooks")" = "up web.1  web.1 $port||$APP" ]
	# Once each way, and nothing about web.2.
	[ "$(wc -l < "$APP/hooks")" = 2 ]
	hlog_has 'heroku\[web.1\]: Health check passing again after [0-9]*s'
}

@test "--url probes an outside address with no app directory" {
	make_app 'web: ./app'
	start_run
	wait_for 10 has_routes 1
	start_app_router
	closed=$(pick_port)
	mkdir "$APP/elsewhere"
	cd "$APP/elsewhere"
	run "$BIN/dyno-health" --once --url "http://127.0.0.1:$ROUTER_PORT/" --expect 'Hello from web.1'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" =~ ^http://127\.0\.0\.1:$ROUTER_PORT/\ +ok\ +[0-9]+ms\ *$ ]]
	run "$BIN/dyno-health" --once --url "http://127.0.0.1:$closed/"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" == *'fail'*'H21 connection refused' ]]
	run "$BIN/dyno-health" --once --url "http://127.0.0.1:$ROUTER_PORT/" --url "http://127.0.0.1:$closed/"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 3 ]
	# A 404 through the router is a failure too.
	run "$BIN/dyno-health" --once --url "http://127.0.0.1:$ROUTER_PORT/nosuch"
	[ "$status" -eq 1 ]
	[[ "$output" == *'H17 status 404'* ]]
	# Nothing was written where it ran.
	[ ! -e "$APP/elsewhere/.dyno" ]
	# As a daemon, a URL goes down and comes back like a dyno, with hooks.
	"$BIN/dyno-health" --url "http://127.0.0.1:$closed/" --interval 200ms --fall 2 --rise 1 \
	    --on-fail "echo \"\$DYNO_HEALTH_EVENT \$DYNO_HEALTH_TARGET \$DYNO_HEALTH_CODE\" >> '$APP/hooks'" \
	    >>"$APP/health.log" 2>&1 3>&- &
	HEALTH_PID=$!
	wait_for 10 file_has "$APP/hooks" "^down http://127.0.0.1:$closed/ H21$"
	hlog_has "heroku\[http://127.0.0.1:$closed/\]: Error H21 health check failed: connection refused"
	# A URL is never restarted, nor is a restart tried and refused.
	fails grep -qi restart "$APP/health.log"
	[ ! -e "$APP/elsewhere/.dyno" ]
}

@test "daemon: --expect looks at this response's body, not an earlier one's" {
	make_app 'web: ./app'
	port=$(pick_port)
	# "ready" once, then 200 with an empty body.
	python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    n = 0
    def do_GET(self):
        H.n += 1
        body = b"ready\n" if H.n == 1 else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$port" 3>&- &
	PEER_PIDS+=($!)
	wait_for 5 port_listening "$port"
	start_health --url "http://127.0.0.1:$port/" --expect ready --interval 200ms \
	    --fall 1 --rise 1
	wait_for 10 hlog_has "heroku\[http://127.0.0.1:$port/\]: Error H17 health check failed: body lacks \"ready\""
}

@test "daemon: READY=1 to NOTIFY_SOCKET after the first round, STOPPING=1 on SIGTERM" {
	make_app 'web: ./app'
	start_run
	wait_for 10 has_routes 1
	sock="$APP/notify.sock"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(20)
with open(sys.argv[2], "a") as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg + "\n"); out.flush()
        if "STOPPING=1" in msg:
            break
' "$sock" "$APP/notify.out" 3>&- &
	listener=$!
	wait_for 10 test -S "$sock"
	NOTIFY_SOCKET="$sock" start_health --interval 300ms
	wait_for 10 test -s "$APP/notify.out"
	grep -q '^READY=1$' "$APP/notify.out"
	# Ready means a round is done: the dyno's verdict is on disk.
	hstate_is web.1 state ok
	stop_daemon "$HEALTH_PID"
	HEALTH_PID=
	[ "$DAEMON_STATUS" -eq 0 ]
	wait_for 10 pid_gone "$listener"
	wait "$listener"
	grep -q '^STOPPING=1$' "$APP/notify.out"
}

@test "--once runs --on-fail for each failing target before it exits (cron mails at once)" {
	closed=$(pick_port)
	cd "$BATS_TEST_TMPDIR"
	run "$BIN/dyno-health" --once --url "http://127.0.0.1:$closed/" \
	    --on-fail 'echo "$DYNO_HEALTH_EVENT $DYNO_HEALTH_TARGET $DYNO_HEALTH_CODE" > hook.out'
	[ "$status" -eq 1 ]
	[ "$(cat hook.out)" = "down http://127.0.0.1:$closed/ H21" ]
}

@test "--app, the long form, names the app from another folder" {
	make_app 'web: ./app'
	start_run web=2
	wait_for 10 has_routes 2
	cd "$BATS_TEST_TMPDIR"
	run "$BIN/dyno-health" --app "$APP" --once
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" =~ ^web\.1\ +ok\ +[0-9]+ms\ *$ ]]
	[[ "${lines[2]}" =~ ^web\.2\ +ok\ +[0-9]+ms\ *$ ]]
	hstate_is web.2 pid "$(state web.2 pid)"
	[ ! -e "$BATS_TEST_TMPDIR/.dyno" ]
	# The modes dyno(7) gives run/health and its files.
	[ "$(stat -c %a "$APP/.dyno/run/health")" = 755 ]
	[ "$(stat -c %a "$APP/.dyno/run/health/web.1")" = 644 ]
}

@test "--once: H13 when a peer closes without answering, H19 when no connection opens in time" {
	closed_early=$(pick_port)
	full=$(pick_port)
	# One peer accepts, reads the request and closes; the other listens with its
	# queue full and never accepts, so a new connection cannot open.
	python3 -c '
import socket, sys
a = socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
a.bind(("127.0.0.1", int(sys.argv[1]))); a.listen(16)
b = socket.socket(); b.bind(("127.0.0.1", int(sys.argv[2]))); b.listen(0)
fill = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try:
        c.connect(("127.0.0.1", int(sys.argv[2])))
    except BlockingIOError:
        pass
    fill.append(c)
open(sys.argv[3], "w").close()
while True:
    conn, _ = a.accept()
    conn.recv(65536)  # the request read: a FIN, not a reset, says "nothing"
    conn.close()
' "$closed_early" "$full" "$BATS_TEST_TMPDIR/ready" 3>&- &
	PEER_PIDS+=($!)
	wait_for 10 test -e "$BATS_TEST_TMPDIR/ready"
	cd "$BATS_TEST_TMPDIR"
	run "$BIN/dyno-health" --once --timeout 1s --url "http://127.0.0.1:$closed_early/" \
	    --url "http://127.0.0.1:$full/"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[1]}" =~ ^http://127\.0\.0\.1:$closed_early/\ +fail\ +[0-9]+ms\ +H13\ connection\ closed\ without\ response$ ]]
	[[ "${lines[2]}" =~ ^http://127\.0\.0\.1:$full/\ +fail\ +[0-9]+ms\ +H19\ no\ connection\ within\ 1000ms$ ]]
}
