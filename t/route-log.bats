#!/usr/bin/env bats
# dyno-route's log line is data, not syntax: what a client controls (path,
# Host, X-Forwarded-For, X-Request-Id) stays inside quotes, escaped, so one
# request is one line with one of each field.  Also what the line counts:
# queue= tries= total=, 499 for a client that left, an error page's bytes.

load helpers

load router

setup() { router_setup log; }
teardown() { router_teardown; }

log_has() { grep -q -- "$1" "$LOG"; }
counters_p50_ge() {
	local p
	p=$(sed -n 's/^dyno=web\.1 .* requests_1m=3 p50_ms=\([0-9]*\) .*/\1/p' \
	    "$T/.dyno/run/router" 2>/dev/null)
	[ -n "$p" ] && [ "$p" -ge "$1" ]
}

# one_of_each MARK: the line holding MARK parses as logfmt with exactly one
# status= and one dyno=, all printable ASCII.
one_of_each() {
	run python3 "$PEERS/logfmt.py" "$LOG" "$1"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[[ "$output" == *"count status 1"*"count dyno 1"* ]]
}

@test "forged fields in the path, Host, X-Forwarded-For and X-Request-Id stay inside their quotes" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	forge=' status=200 dyno=web.9 '
	# The path: no space gets past the parser, a quote and a backslash do.
	printf 'GET /p1"status=200\\"dyno=web.9 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
	    python3 "$CLIENT" raw "$RPORT" > "$T/out1"
	wait_for 10 log_has '/p1'
	one_of_each '/p1'
	grep -qF 'path="/p1\"status=200\\\"dyno=web.9"' "$LOG"
	# X-Forwarded-For and X-Request-Id, with quotes, a tab and a byte over 0x7f.
	printf 'GET /p2 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4"%s\tx="\xff\r\nX-Request-Id: "%sxxxxxxxxxxxxxxxxxxxxxx\r\nConnection: close\r\n\r\n' \
	    "$forge" "$forge" | python3 "$CLIENT" raw "$RPORT" > "$T/out2"
	grep -q '^HTTP/1.1 200 ' "$T/out2"
	wait_for 10 log_has '/p2'
	one_of_each '/p2'
	grep -qF 'fwd="1.2.3.4\" status=200 dyno=web.9 \x09x=\"\xff, 127.0.0.1"' "$LOG"
	# The forged id was not taken: a fresh UUID, in the log and for the dyno.
	grep -E 'path="/p2" .* request_id=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} ' "$LOG"
	grep -qE '^h: X-Request-Id: [0-9a-f-]{36}$' "$T/out2"
	# At their longest, escapes and all, every field still fits the line.
	q=$(head -c 1000 /dev/zero | tr '\0' '"')
	id=$(head -c 200 /dev/zero | tr '\0' i)
	printf 'GET /p4%s HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: %s\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n' \
	    "$q" "${q:0:240}" "$id" | python3 "$CLIENT" raw "$RPORT" > "$T/out4"
	grep -q '^HTTP/1.1 200 ' "$T/out4"
	wait_for 10 log_has '/p4'
	one_of_each '/p4'
	grep -qE 'path="/p4[^ ]* .* total=[0-9]+ms$' "$LOG"
	[ "$(grep '/p4' "$LOG" | wc -c)" -lt 2200 ]
	# Host, if the parser lets it through; and if it does not, the 400's
	# line is data all the same.
	printf 'GET /p3 HTTP/1.1\r\nHost: a"%s\r\nConnection: close\r\n\r\n' "$forge" |
	    python3 "$CLIENT" raw "$RPORT" > "$T/out3"
	wait_for 10 log_has '/p3'
	one_of_each '/p3'
}

@test "the line counts the queue, the tries and the total; run/router the client's whole wait" {
	start_backend web.1
	mkdir -p "$T/.dyno/run"
	echo "web.1 127.0.0.1:$LAST_PORT" > "$T/.dyno/run/routes"
	start_router -a "$T" --max-inflight 1
	# One slow request holds the only slot: the next ones queue behind it.
	curl -s -o /dev/null -m 20 "http://127.0.0.1:$RPORT/slow?first&ms=2500" 3>&- &
	PIDS+=($!)
	wait_for 10 grep -q 'GET /slow?first' "$T/web.1.log"
	curl -s -o /dev/null -m 20 "http://127.0.0.1:$RPORT/third" 3>&- &
	PIDS+=($!)
	curl -s -o /dev/null -m 20 "http://127.0.0.1:$RPORT/second"
	wait_for 10 log_has 'path="/second"'
	line=$(grep 'path="/second"' "$LOG")
	echo "$line" >&2
	[[ "$line" =~ \ service=([0-9]+)ms.*\ queue=([0-9]+)ms\ tries=1\ total=([0-9]+)ms$ ]]
	service=${BASH_REMATCH[1]} queue=${BASH_REMATCH[2]} total=${BASH_REMATCH[3]}
	# It waited most of the 2.5 s in the queue; service is the dyno's part.
	[ "$queue" -ge 1000 ]
	[ "$total" -ge "$queue" ]
	[ "$service" -lt 1000 ]
	# The counters the autoscaler reads hold the whole wait of each: the
	# median of the three is over 1 s, not a queued request's service.
	wait_for 10 log_has 'path="/third"'
	wait_for 10 counters_p50_ge 1000
}

@test "a client that leaves mid-response is logged 499 H27, with the bytes that reached it" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	# 1 GB it will not read: the router blocks on it; then it resets.
	python3 "$CLIENT" reset "$RPORT" "/download?bytes=1073741824" 1500 3>&- || true
	wait_for 10 log_has 'code=H27'
	grep 'code=H27' "$LOG" >&2
	grep -q 'code=H27 .*path="/download?bytes=1073741824" .* status=499 ' "$LOG"
	fails grep -q 'status=200' "$LOG"
}

@test "a bad request after a good one on the same connection logs none of the good one's values" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	printf 'GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n' |
	    python3 "$CLIENT" raw "$RPORT" > "$T/out"
	grep -q '^HTTP/1.1 400 ' "$T/out"
	wait_for 10 log_has 'code=H26'
	line=$(grep 'code=H26' "$LOG")
	echo "$line" >&2
	# Its own request line, which parsed, and nothing of the first one.
	[[ "$line" == *' method=GET path="/second" host="-" '* ]]
	[[ "$line" == *' fwd="127.0.0.1" dyno=- connect=0ms service=0ms status=400 '* ]]
	[[ "$line" == *' queue=0ms tries=0 total='* ]]
	fails grep -q 'code=H26 .*first' "$LOG"
}
