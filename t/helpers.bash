# helpers.bash: shared by every bats file.  Tests start real programs on
# 127.0.0.1, wait for conditions with a bounded poll (wait_for), and stop
# what they started by pid in teardown.

DYNO_ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
BIN="$DYNO_ROOT/bin"
SAMPLE_APP="$DYNO_ROOT/examples/app"

now_ms() { date +%s%3N; }
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
routes_count() { grep -c . "$APP/.dyno/run/routes" 2>/dev/null || true; }
has_routes() { [ "$(routes_count)" = "$1" ]; }
log_has() { grep -q -- "$1" "$APP/out.log"; }
log_count() { grep -c -- "$1" "$APP/out.log" || true; }
log_count_ge() { [ "$(log_count "$1")" -ge "$2" ]; }
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
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

common_teardown() {
	local sanitized=0
	if [ -n "${RUN_PID:-}" ]; then
		kill -KILL "$RUN_PID" 2>/dev/null
		wait "$RUN_PID" 2>/dev/null
	fi
	if [ -n "${APP:-}" ] && [ -d "$APP" ]; then
		kill_dynos
		# Under SAN=1 a sanitizer report anywhere in the output fails the test.
		if grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$APP/out.log" 2>/dev/null; then
			sanitized=1
			unset BATS_TEST_COMPLETED
		fi
		if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
			rm -rf "$APP"
		else
			echo "--- dyno-run output ($APP/out.log):" >&2
			tail -n 60 "$APP/out.log" >&2 2>/dev/null
		fi
	fi
	[ "$sanitized" = 0 ]
}
