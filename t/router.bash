# router.bash: what the router's test files share (route.bats,
# route-log.bats, route-hostile.bats): a temp folder per test, dyno-route
# and backend peers started on free ports and stopped by pid.

PEERS="$BATS_TEST_DIRNAME/peers"
CLIENT="$PEERS/client.py"

# router_setup NAME: $T, a fresh folder dyno-NAME.XXXXXX; the router's log
# in $LOG; PIDS collects what the test starts.
router_setup() {
	PIDS=()
	ROUTER_PID=
	T="$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-$1.XXXXXX")"
	LOG="$T/router.log"
}

# router_teardown: kill what the test started (-w N workers too, found
# before the router dies), fail on a sanitizer report in the log.
router_teardown() {
	local p kids= sanitized=0
	[ -n "$ROUTER_PID" ] && kids=$(pgrep -P "$ROUTER_PID")
	for p in "${PIDS[@]}" $kids; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	sanitizer_check "$LOG" || sanitized=1
	keep_or_remove "$T" "$LOG" router 40
	[ "$sanitized" = 0 ]
}

# start_backend NAME [FLAG...]: t/peers/backend.py; its port in $LAST_PORT.
start_backend() {
	local name=$1
	shift
	python3 "$PEERS/backend.py" "$T/$name.port" --name "$name" "$@" \
	    >>"$T/$name.log" 2>&1 3>&- &
	PIDS+=($!)
	LAST_PID=$!
	wait_for 30 test -s "$T/$name.port"
	LAST_PORT=$(cat "$T/$name.port")
}

# start_router ARG...: dyno-route on a free port ($RPORT), output in $LOG.
start_router() {
	RPORT=$(pick_port)
	"$BIN/dyno-route" --listen "127.0.0.1:$RPORT" "$@" >>"$LOG" 2>&1 3>&- &
	ROUTER_PID=$!
	PIDS+=($!)
	wait_for 30 port_listening "$RPORT"
}
