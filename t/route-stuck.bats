#!/usr/bin/env bats
# dyno-route in front of a dyno that hangs (SIGSTOP): passive detection of a
# stuck dyno, re-sending what may go elsewhere, and a slow but healthy dyno
# left alone.  The dynos are t/peers/backend.py, named in a routes file
# written by hand (no dyno-run), so the router keeps its counters file.

load helpers

PEERS="$BATS_TEST_DIRNAME/peers"

setup() {
	PIDS=()
	STOPPED=
	ROUTER_PID=
	T="$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-stuck.XXXXXX")"
	LOG="$T/router.log"
	mkdir -p "$T/.dyno/run"
}

teardown() {
	local p sanitized=0
	touch "$T/stop"
	[ -n "$STOPPED" ] && kill -CONT "$STOPPED" 2>/dev/null
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	sanitizer_check "$LOG" || sanitized=1
	keep_or_remove "$T" "$LOG" router 40
	[ "$sanitized" = 0 ]
}

# start_backends N: web.1 .. web.N, their pids in BPID[i], ports in BPORT[i],
# all of them in the routes file.
start_backends() {
	local i
	: > "$T/routes.new"
	for i in $(seq 1 "$1"); do
		python3 "$PEERS/backend.py" "$T/web.$i.port" --name "web.$i" \
		    >>"$T/web.$i.log" 2>&1 3>&- &
		PIDS+=($!)
		BPID[$i]=$!
		wait_for 30 test -s "$T/web.$i.port"
		BPORT[$i]=$(cat "$T/web.$i.port")
		echo "web.$i 127.0.0.1:${BPORT[$i]}" >> "$T/routes.new"
	done
	mv "$T/routes.new" "$T/.dyno/run/routes"
}

start_router() {
	RPORT=$(pick_port)
	"$BIN/dyno-route" -a "$T" --listen "127.0.0.1:$RPORT" "$@" \
	    >>"$LOG" 2>&1 3>&- &
	ROUTER_PID=$!
	PIDS+=($!)
	wait_for 30 port_listening "$RPORT"
}

# start_hammer THREADS PATH: GET load, one "STATUS MS DYNO" line a request.
start_hammer() {
	python3 "$PEERS/hammer.py" "$RPORT" "$2" "$1" "$T/load.out" \
	    "$T/stop" 3>&- &
	HAMMER_PID=$!
	PIDS+=($!)
}

past() { [ "$(now_ms)" -ge "$1" ]; }
load_count() { cat "$T/load.out" 2>/dev/null | grep -c . || true; }
load_count_ge() { [ "$(load_count)" -ge "$1" ]; }
log_has() { grep -q -- "$1" "$LOG"; }
# Requests web.N answered after the router saw it answer again.
served_after_recovery() {
	awk -v d="dyno=$1" '/answers again/ && $NF == d { on = 1; next }
	    on && /at=info/ && index($0, d " ") && / status=200 / { n++ }
	    END { exit !(n >= 5) }' "$LOG"
}
# "failed=N max=MS": the requests that got no 200, and the slowest.
load_summary() {
	awk '$1 != 200 { bad++ } $2 > max { max = $2 }
	    END { printf "failed=%d max=%d\n", bad, max }' "$T/load.out"
}
post_count_is() { [ "$(cat "$T/post.codes" 2>/dev/null | grep -c .)" = "$1" ]; }
counters_has() { grep -q -- "$1" "$T/.dyno/run/router"; }

@test "a stuck dyno gets no new requests and its GETs go elsewhere: none slower than 3 s" {
	start_backends 4
	start_router --stall-timeout 1s
	start_hammer 8 /
	wait_for 30 load_count_ge 200
	kill -STOP "${BPID[1]}"
	STOPPED=${BPID[1]}
	wait_for 20 log_has 'stalled" dyno=web.1'
	stalled_at=$(now_ms)
	before=$(load_count)
	wait_for 30 load_count_ge $((before + 300))
	# Stuck past its 5 s hold: a probe GET finds it still stuck and goes
	# elsewhere too; anything sent to it meanwhile would wait past 3 s.
	wait_for 20 past $((stalled_at + 7000))
	wait_for 10 counters_has 'dyno=web.1 .* stalled=1 stuck=1'
	kill -CONT "${BPID[1]}"
	STOPPED=
	wait_for 20 log_has 'answers again after [0-9]*ms stalled" dyno=web.1'
	# It is routable again: it serves requests once more.
	wait_for 30 served_after_recovery web.1
	touch "$T/stop"
	wait_for 60 pid_gone "$HAMMER_PID"
	run load_summary
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "failed=0 "* ]]
	max=${output##*max=}
	[ "$max" -lt 3000 ]
	wait_for 10 counters_has 'dyno=web.1 .* stuck=0'
}

@test "a GET alone on a stuck dyno makes it a suspect: the next GET probes it, both go elsewhere" {
	start_backends 2
	start_router --stall-timeout 300ms
	kill -STOP "${BPID[1]}"
	STOPPED=${BPID[1]}
	# Two clients: one ends up waiting on web.1, alone there, while the
	# other's GETs go to web.2, which has fewer in flight.
	start_hammer 2 /
	wait_for 10 log_has 'stalled" dyno=web.1'
	n=$(load_count)
	wait_for 30 load_count_ge $((n + 20))
	touch "$T/stop"
	wait_for 60 pid_gone "$HAMMER_PID"
	run load_summary
	echo "$output"
	[[ "$output" == "failed=0 "* ]]
	# About twice the stall timeout: the lone wait, then the probe's.
	[ "${output##*max=}" -lt 3000 ]
	log_has 'no response byte for 300ms with 2 requests waiting: stalled" dyno=web.1'
}

@test "a slow but healthy dyno is not declared stuck, and its slow GET is sent once" {
	start_backends 2
	start_router --stall-timeout 300ms
	# Alone on its dyno: one slow request is no evidence of a hang.
	run curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
	    "http://127.0.0.1:$RPORT/slow?alone&ms=1500"
	[ "$output" = 200 ]
	# Alone on its dyno while GETs go to the other: a suspect after the
	# stall timeout, the next GET is sent to it as a probe and answered
	# (in 100 ms: not stuck while the probe has not waited the timeout).
	start_hammer 1 "/slow?ms=100"
	wait_for 30 load_count_ge 3
	run curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
	    "http://127.0.0.1:$RPORT/slow?probed&ms=1500"
	[ "$output" = 200 ]
	touch "$T/stop"
	wait_for 60 pid_gone "$HAMMER_PID"
	rm "$T/stop"
	# Next to other requests that its dyno answers meanwhile.
	n=$(load_count)
	start_hammer 4 /
	wait_for 30 load_count_ge $((n + 8))
	run curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
	    "http://127.0.0.1:$RPORT/slow?busy&ms=1500"
	[ "$output" = 200 ]
	touch "$T/stop"
	wait_for 60 pid_gone "$HAMMER_PID"
	run grep -c 'stalled' "$LOG"
	[ "$output" = 0 ]
	# Each dyno got it exactly once between them: never re-sent.
	[ "$(cat "$T"/web.*.log | grep -c 'GET /slow?alone&ms=1500 ')" = 1 ]
	[ "$(cat "$T"/web.*.log | grep -c 'GET /slow?probed&ms=1500 ')" = 1 ]
	[ "$(cat "$T"/web.*.log | grep -c 'GET /slow?busy&ms=1500 ')" = 1 ]
	run awk '$1 != 200' "$T/load.out"
	[ "$output" = "" ]
}

@test "a POST to a stuck dyno is not sent twice; the dyno takes requests again once it answers" {
	start_backends 2
	start_router --stall-timeout 300ms
	kill -STOP "${BPID[1]}"
	STOPPED=${BPID[1]}
	# GETs keep web.2 busy, so the stopped dyno gets its share.
	start_hammer 8 /
	for i in 1 2 3 4 5 6 7 8; do
		curl -s -o "$T/post.$i" -w '%{http_code} %{time_total}\n' \
		    --max-time 20 --data-binary "n=$i" \
		    "http://127.0.0.1:$RPORT/post-$i" >>"$T/post.codes" 3>&- &
		PIDS+=($!)
	done
	wait_for 20 log_has 'stalled" dyno=web.1'
	kill -CONT "${BPID[1]}"
	STOPPED=
	wait_for 20 log_has 'answers again after [0-9]*ms stalled" dyno=web.1'
	wait_for 20 post_count_is 8
	touch "$T/stop"
	wait_for 60 pid_gone "$HAMMER_PID"
	run grep -vc '^200 ' "$T/post.codes"
	[ "$output" = 0 ]
	# Some waited on the stuck dyno, and each reached one dyno once.
	grep -q '^POST /post-' "$T/web.1.log"
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(cat "$T"/web.*.log | grep -c "POST /post-$i ")" = 1 ]
	done
}
