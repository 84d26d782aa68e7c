# helpers.bash: shared by every bats file.  Tests start real programs on
# 127.0.0.1, wait for conditions with a bounded poll (wait_for), and stop
# what they started by pid in teardown.

DYNO_ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
BIN="$DYNO_ROOT/bin"
SAMPLE_APP="$DYNO_ROOT/examples/app"

now_ms() { date +%s%3N; }

# fails COMMAND [ARG...]: succeed only if COMMAND fails.  Use it instead of a
# bare "! cmd" mid-test: bats (set -e) ignores the status of a command that
# starts with "!", so such a line can never fail the test.
fails() { ! "$@"; }
build_variant() { cat "$DYNO_ROOT/build/variant" 2>/dev/null; }

# wait_for SECONDS COMMAND [ARG...]: poll COMMAND until it succeeds; fail
# (naming what we waited for) once SECONDS have passed.
wait_for() {
	local limit=$1 deadline
	shift
	deadline=$(( $(now_ms) + limit * 1000 ))
	until "$@"; do
		if [ "$(now_ms)" -gt "$deadline" ]; then
			echo "timed out after ${limit}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.05
	done
}

# A fresh app directory with the sample app and the given Procfile text.
make_app() {
	APP="$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-app.XXXXXX")"
	cp "$SAMPLE_APP" "$APP/app"
	printf '%s\n' "$@" > "$APP/Procfile"
	# Ports from a random base; dyno-run skips any that are taken.
	PORT_BASE=$(( 20000 + (RANDOM % 400) * 100 ))
}

# start_run [ARG...]: dyno-run in the background on $APP, output in $APP/out.log.
start_run() {
	${RUN_WRAP:-} "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE" "$@" >>"$APP/out.log" 2>&1 &
	RUN_PID=$!
}

state() { sed -n "s/^$2=//p" "$APP/.dyno/run/dynos/$1" 2>/dev/null; }
is_state() { [ "$(state "$1" state)" = "$2" ]; }
state_is() { [ "$(state "$1" "$2")" = "$3" ]; }
routes_count() { grep -c '^[^@]' "$APP/.dyno/run/routes" 2>/dev/null || true; }
has_routes() { [ "$(routes_count)" = "$1" ]; }
log_has() { grep -q -- "$1" "$APP/out.log"; }
log_count() { grep -c -- "$1" "$APP/out.log" || true; }
log_count_ge() { [ "$(log_count "$1")" -ge "$2" ]; }
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
session_empty() { ! pgrep -s "$1" >/dev/null; }
control() { printf '%s\n' "$*" > "$APP/.dyno/run/control"; }

# stop_run: SIGTERM the supervisor and wait for it to exit.
stop_run() {
	[ -n "${RUN_PID:-}" ] || return 0
	kill -TERM "$RUN_PID" 2>/dev/null || true
	wait_for 40 pid_gone "$RUN_PID" || kill -KILL "$RUN_PID" 2>/dev/null
	wait "$RUN_PID" 2>/dev/null
	RUN_STATUS=$?
	RUN_PID=
	return 0
}

# Kill every dyno session a test may have left, by the pids in the state files.
kill_dynos() {
	local f pid
	for f in "$APP"/.dyno/run/dynos/*; do
		[ -f "$f" ] || continue
		pid=$(sed -n 's/^pid=//p' "$f")
		[ -n "$pid" ] && [ "$pid" -gt 1 ] && pkill -KILL -s "$pid" 2>/dev/null
	done
	return 0
}

# sanitizer_check FILE...: under SAN=1 a sanitizer report in any of them
# fails the test (and keeps its folder for a look).
sanitizer_check() {
	if grep -qsE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$@"; then
		unset BATS_TEST_COMPLETED
		return 1
	fi
	return 0
}

# keep_or_remove DIR LOG LABEL LINES: remove DIR after a passing test;
# otherwise leave it and show the end of LOG.
keep_or_remove() {
	if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
		rm -rf "$1"
	else
		echo "--- $3 output ($2):" >&2
		tail -n "$4" "$2" >&2 2>/dev/null
	fi
}

common_teardown() {
	local sanitized=0
	if [ -n "${RUN_PID:-}" ]; then
		kill -KILL "$RUN_PID" 2>/dev/null
		wait "$RUN_PID" 2>/dev/null
	fi
	if [ -n "${APP:-}" ] && [ -d "$APP" ]; then
		kill_dynos
		sanitizer_check "$APP/out.log" || sanitized=1
		keep_or_remove "$APP" "$APP/out.log" dyno-run 60
	fi
	[ "$sanitized" = 0 ]
}

# ---- routers, daemons and load, for scale.bats and health.bats ----------

# pick_port: a port that was free on 127.0.0.1 a moment ago (the kernel's pick).
pick_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_listening() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_app_router [ARG...]: dyno-route for $APP on 127.0.0.1:$ROUTER_PORT,
# output in $APP/router.log.
start_app_router() {
	ROUTER_PORT=$(pick_port)
	"$BIN/dyno-route" -a "$APP" -l "127.0.0.1:$ROUTER_PORT" "$@" \
	    >>"$APP/router.log" 2>&1 3>&- &
	ROUTER_PID=$!
	wait_for 10 port_listening "$ROUTER_PORT"
}

# start_health [ARG...]: dyno-health as a daemon on $APP, output in $APP/health.log.
start_health() {
	"$BIN/dyno-health" -a "$APP" "$@" >>"$APP/health.log" 2>&1 3>&- &
	HEALTH_PID=$!
}

# start_load NAME URL: one client asking for URL again and again, each
# status code a line in $APP/NAME.codes, until stop_load.  Adds to LOAD_PIDS.
start_load() {
	local name=$1 url=$2
	rm -f "$APP/load.stop"
	(
		while [ ! -e "$APP/load.stop" ]; do
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 \
			    "$url" >>"$APP/$name.codes" 2>/dev/null ||
			    echo "curl-failed" >>"$APP/$name.codes"
		done
	) 3>&- &
	LOAD_PIDS+=($!)
}

# stop_load: let every load client finish its request, and wait for it.
stop_load() {
	local p
	touch "$APP/load.stop"
	for p in "${LOAD_PIDS[@]}"; do
		wait_for 40 pid_gone "$p" || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	LOAD_PIDS=()
	return 0
}

# start_post_load NAME URL: like start_load, but each request is a POST with
# a body.  dyno-route sends a GET again to another dyno when one dies under
# it, but a POST only when a reused connection closed unanswered, so a dyno
# cut off mid-request can show here as a failure where GETs would hide it.
start_post_load() {
	local name=$1 url=$2
	rm -f "$APP/load.stop"
	(
		while [ ! -e "$APP/load.stop" ]; do
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 \
			    -H 'Content-Type: text/plain' --data-binary 'one=1&two=2' \
			    "$url" >>"$APP/$name.codes" 2>/dev/null ||
			    echo "curl-failed" >>"$APP/$name.codes"
		done
	) 3>&- &
	LOAD_PIDS+=($!)
}

# Requests the load clients made, and those that did not get a 200.
load_total() { cat "$APP"/*.codes 2>/dev/null | grep -c . || true; }
load_failed() { cat "$APP"/*.codes 2>/dev/null | grep -vc '^200$' || true; }
load_total_ge() { [ "$(load_total)" -ge "$1" ]; }

# stop_daemon PID: SIGTERM (so a sanitizer build reports leaks at exit),
# SIGKILL if it lingers; the exit status in DAEMON_STATUS.
stop_daemon() {
	DAEMON_STATUS=
	[ -n "${1:-}" ] || return 0
	kill -TERM "$1" 2>/dev/null || true
	wait_for 10 pid_gone "$1" || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	DAEMON_STATUS=$?
	return 0
}

# daemons_setup: the pid lists and variables daemons_teardown stops by.
daemons_setup() {
	LOAD_PIDS=() PEER_PIDS=()
	ROUTER_PID= HEALTH_PID= AUTO_PID=
}

# daemons_teardown: stop the load (LOAD_PIDS), other helpers (PEER_PIDS),
# dyno-health, the autoscaler and the router; fail the test on a sanitizer report in their logs; then the rest.
daemons_teardown() {
	local p
	if [ -n "${APP:-}" ] && [ -d "$APP" ]; then
		touch "$APP/load.stop"
	fi
	# A load loop's curl would outlive its subshell and write to the
	# .codes files after the test: stop the children first.
	for p in "${LOAD_PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null; done
	for p in "${LOAD_PIDS[@]}" "${PEER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${LOAD_PIDS[@]}" "${PEER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	stop_daemon "${HEALTH_PID:-}"
	stop_daemon "${AUTO_PID:-}"
	stop_daemon "${ROUTER_PID:-}"
	if [ -n "${APP:-}" ] && [ -d "$APP" ]; then
		if ! sanitizer_check "$APP"/*.log; then
			grep -E -A 20 'ERROR: [A-Za-z]+Sanitizer|runtime error:' \
			    "$APP"/*.log >&2
			common_teardown
			return 1
		fi
		if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
			for p in router health auto; do
				[ -s "$APP/$p.log" ] || continue
				echo "--- $APP/$p.log:" >&2
				tail -n 30 "$APP/$p.log" >&2
			done
		fi
	fi
	common_teardown
}
