#!/usr/bin/env bats
# dyno-run --ready: a dyno is up (in run/routes, retiring a preboot's old
# dyno) only once its readiness check passes, not when its port accepts.
# A real pre-fork app: gunicorn + Flask (Debian's packages), whose workers
# import slowly after gunicorn has bound $PORT (t/peers/readyapp.py), behind
# the real dyno-route.

load helpers

PEERS="$BATS_TEST_DIRNAME/peers"

setup() { daemons_setup; }

teardown() { daemons_teardown; }

# gunicorn_app [SLEEP]: the app directory with readyapp.py under gunicorn
# as its web type; workers import for SLEEP seconds (3); each request the
# app serves goes to $APP/got.log.
gunicorn_app() {
	make_app "web: exec gunicorn -w 2 --chdir $PEERS -b 127.0.0.1:\$PORT readyapp:app"
	printf 'READY_SLEEP=%s\nREADY_LOG=%s\nREADY_SICK=%s\n' "${1:-3}" \
	    "$APP/got.log" "$APP/sick" >"$APP/.env"
}

# timed_load NAME URL: like start_load, and each request's seconds in
# $APP/NAME.times, for the slowest request.
timed_load() {
	local name=$1 url=$2
	rm -f "$APP/load.stop"
	(
		while [ ! -e "$APP/load.stop" ]; do
			out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' \
			    --max-time 30 "$url" 2>/dev/null) || out="curl-failed 30"
			echo "${out%% *}" >>"$APP/$name.codes"
			echo "${out#* }" >>"$APP/$name.times"
		done
	) 3>&- &
	LOAD_PIDS+=($!)
}
slowest() { sort -g "$APP"/*.times | tail -1; }

# loaded_gunicorn ARG...: gunicorn_app (3 s imports) under dyno-run ARG...
# with web=1 up, dyno-route in front, two clients asking for / through it.
loaded_gunicorn() {
	gunicorn_app 3
	start_run "$@" web=1
	wait_for 30 has_routes 1
	start_app_router
	timed_load a "http://127.0.0.1:$ROUTER_PORT/"
	timed_load b "http://127.0.0.1:$ROUTER_PORT/"
	wait_for 30 load_total_ge 20
}

# load_answered: stop the clients; every request got a 200, none took
# 1.5 s (an import is 3 s: a request sent to a dyno not ready waits that).
load_answered() {
	local n
	n=$(load_total)
	wait_for 30 load_total_ge $((n + 20))
	stop_load
	echo "requests: $(load_total), failed: $(load_failed), slowest: $(slowest)s"
	[ "$(load_failed)" = 0 ]
	awk -v s="$(slowest)" 'BEGIN { exit !(s < 1.5) }'
}

# iso_ms LINE: the ms since the epoch of a log line's timestamp.
iso_ms() { date -d "${1%% *}" +%s%3N; }
# last_line PATTERN: the last line of out.log that has PATTERN.
last_line() { grep -- "$1" "$APP/out.log" | tail -1; }

# router_starts_before NAME MS: the router lines of requests that dyno NAME
# began to serve before MS (their time less service and connect).
router_starts_before() {
	python3 - "$APP/router.log" "$1" "$2" <<'EOF'
import datetime, re, sys
log, name, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
for line in open(log):
    m = re.search(r' dyno=(\S+) connect=(\d+)ms service=(\d+)ms', line)
    if not m or m.group(1) != name:
        continue
    t = datetime.datetime.fromisoformat(line.split(' ')[0]).timestamp()
    began = int(t * 1000) - int(m.group(2)) - int(m.group(3))
    if began < limit:
        print(line, end='')
EOF
}

@test "scale-up under load: the new dyno gets no request before its readiness check passes" {
	loaded_gunicorn --ready web=/healthz
	run "$BIN/dyno-scale" -a "$APP" web=2 --wait=40
	[ "$status" -eq 0 ]
	wait_for 20 grep -q 'dyno=web.2 ' "$APP/router.log"
	load_answered
	# None of web.2's requests waited on its import: none was sent before
	# it could answer.
	awk '/dyno=web.2 / && match($0, /service=[0-9]+/) {
	    if (substr($0, RSTART + 8, RLENGTH - 8) + 0 > 1000) bad++ }
	    END { exit bad > 0 }' "$APP/router.log"
	# It bound long before it was ready, and got traffic only once up.
	bound=$(iso_ms "$(last_line 'heroku\[web.2\]: Process bound to $PORT')")
	up=$(iso_ms "$(last_line 'heroku\[web.2\]: State changed from starting to up')")
	[ $((up - bound)) -ge 1500 ]
	run router_starts_before web.2 "$up"
	[ -z "$output" ]
	# The check reached the app itself.
	grep -q '^web.2 /healthz ' "$APP/got.log"
}

@test "preboot restart under load: the old dyno serves until the new one passes its check" {
	loaded_gunicorn --ready web=/healthz --stop-grace 10s
	old=$(state web.1 pid)
	control restart web.1
	wait_for 40 pid_gone "$old"
	wait_for 10 is_state web.1 up
	load_answered
	# The old one got SIGTERM only once the new one was ready, seconds
	# after it bound.
	bound=$(iso_ms "$(last_line 'heroku\[web.1\]: Process bound to $PORT')")
	up=$(iso_ms "$(last_line 'heroku\[web.1\]: State changed from starting to up')")
	term=$(iso_ms "$(last_line 'heroku\[web.1\]: Stopping all processes with SIGTERM')")
	[ $((up - bound)) -ge 1500 ]
	[ "$term" -ge "$up" ]
	[ "$(state web.1 pid)" != "$old" ]
}

@test "a check that never passes: starting in run/routes, then R10 at --boot-timeout, killed and restarted" {
	gunicorn_app 0
	touch "$APP/sick"
	start_run --ready web=/healthz --boot-timeout 4s web=1
	wait_for 20 log_has 'heroku\[web.1\]: Process bound to $PORT'
	# Not ready: the router is told a web dyno is starting, and has none.
	wait_for 10 grep -q '^@web want=1 starting=1' "$APP/.dyno/run/routes"
	has_routes 0
	first=$(state web.1 pid)
	wait_for 20 log_has 'Error R10 (Boot timeout) -> Web process failed its readiness check GET /healthz (503) within 4 seconds of launch'
	wait_for 10 pid_gone "$first"
	wait_for 20 state_is web.1 restarts 1
	fails log_has 'State changed from starting to up'
	# The check reached the app and was answered 503 each time.
	grep -q '^web.1 /healthz ' "$APP/got.log"
	# Healthy again: the next boot gets up.
	rm "$APP/sick"
	wait_for 30 is_state web.1 up
	has_routes 1
}

@test "a command check: exit 0 is ready, run with the dyno's environment and folder" {
	gunicorn_app 0
	printf 'worker: exec sleep 1000\n' >>"$APP/Procfile"
	start_run --ready 'worker=echo "$DYNO" >>checks.log; test -e ready.flag' \
	    --ready 'web=curl -fs -o /dev/null http://127.0.0.1:$PORT/healthz' \
	    web=1 worker=1
	wait_for 20 is_state web.1 up
	grep -q '^web.1 /healthz ' "$APP/got.log"
	# The worker's check runs again and again, in the app's folder with
	# DYNO set, and fails until the flag is there.
	wait_for 20 eval '[ "$(grep -c "^worker.1$" "$APP/checks.log" 2>/dev/null)" -ge 3 ]'
	is_state worker.1 starting
	fails log_has 'heroku\[worker.1\]: State changed from starting to up'
	touch "$APP/ready.flag"
	wait_for 10 is_state worker.1 up
	log_has 'heroku\[worker.1\]: State changed from starting to up'
}

@test "bad --ready values are usage errors: one line, exit 2, nothing started" {
	make_app 'web: ./app'
	for bad in web '' web= =/healthz worker=/healthz 'web=/a b' 'web=/a#b' \
	    'run=true' 'we.b=/x' 'web= '; do
		# Bounded: a value wrongly taken would start a supervisor.
		run timeout 10 "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE" --ready "$bad" web=1
		echo "--ready '$bad': $status: ${lines[0]}"
		[ "$status" -eq 2 ]
		[[ ${lines[0]} == "dyno-run: --ready"* ]]
		[[ ${lines[1]} == usage:* ]]
	done
	run timeout 10 "$BIN/dyno-run" -a "$APP" --ready web=/a --ready web=/b web=1
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "dyno-run: --ready: web given twice" ]
	[ ! -e "$APP/.dyno/run/routes" ]
	[ ! -e "$APP/.dyno/formation" ]
}
