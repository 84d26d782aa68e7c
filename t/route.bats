#!/usr/bin/env bats
# dyno-route: the router, started for real in front of real dynos on
# 127.0.0.1: the sample app, or t/peers/backend.py when a test must see what
# the dyno received.  Raw HTTP comes from t/peers/client.py.

load helpers

load router

setup() { router_setup route; }
teardown() { router_teardown; }

port_closed() { ! port_listening "$1"; }

# start_app NAME: the sample app as dyno NAME; its port in $LAST_PORT.
start_app() {
	LAST_PORT=$(pick_port)
	PORT=$LAST_PORT DYNO=$1 "$SAMPLE_APP" >>"$T/$1.log" 2>&1 3>&- &
	PIDS+=($!)
	LAST_PID=$!
	wait_for 30 port_listening "$LAST_PORT"
}

# An app directory whose run/routes holds the given lines.
make_routes_app() {
	APPDIR="$T/app"
	mkdir -p "$APPDIR/.dyno/run"
	chmod 700 "$APPDIR/.dyno"
	printf '%s\n' "$@" > "$APPDIR/.dyno/run/routes"
}

# Rewrite run/routes the way dyno-run does: a temp file renamed over it.
write_routes() {
	printf '%s\n' "$@" > "$APPDIR/.dyno/run/routes.tmp"
	mv "$APPDIR/.dyno/run/routes.tmp" "$APPDIR/.dyno/run/routes"
}

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
code_is() { [ "$(code "$2")" = "$1" ]; }
router_log_has() { grep -qE -- "$1" "$LOG"; }
raw() { python3 "$CLIENT" raw "$RPORT" "$@"; }
# send FORMAT: printf FORMAT to the router as raw bytes.
send() { printf "$1" | raw; }
# send_wait SECONDS FORMAT: the same, waiting up to SECONDS for the close.
send_wait() { printf "$2" | raw "$1"; }
lines_ge() { [ -f "$1" ] && [ "$(grep -c . "$1")" -ge "$2" ]; }
vmrss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
# ESTABLISHED connections to 127.0.0.1:PORT (state 01 in /proc/net/tcp).
conns_to() {
	awk -v p="$(printf '%04X' "$1")" \
	    '$3 ~ ":"p"$" && $4 == "01" { n++ } END { print n + 0 }' /proc/net/tcp
}
counted_total_is() {
	[ "$(sed -n 's/^dyno=.* total=\([0-9]*\) .*/\1/p' "$APPDIR/.dyno/run/router" |
	    awk '{ n += $1 } END { print n + 0 }')" -eq "$1" ]
}
has_conn_to() { [ "$(conns_to "$1")" -ge 1 ]; }

# ---- spreading load ----------------------------------------------------------

@test "spreads 300 requests fairly over three dynos" {
	start_app web.1; p1=$LAST_PORT
	start_app web.2; p2=$LAST_PORT
	start_app web.3; p3=$LAST_PORT
	start_router -b "127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3"
	python3 "$CLIENT" loop "$RPORT" 300 / > "$T/codes"
	[ "$(grep -c '^200 ' "$T/codes")" -eq 300 ]
	for d in web.1 web.2 web.3; do
		n=$(grep -c "^200 $d\$" "$T/codes")
		echo "$d: $n" >&2
		[ "$n" -ge 60 ]
	done
}

@test "a slow dyno gets fewer requests (fewest in flight wins)" {
	start_backend fast.1; p1=$LAST_PORT
	start_backend fast.2; p2=$LAST_PORT
	start_backend slow --delay-ms 300; p3=$LAST_PORT
	start_router -b "127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3"
	run python3 "$CLIENT" load "$RPORT" 8 40 /
	echo "$output" >&2
	[ "$status" -eq 0 ]
	fails grep -q failed <<<"$output"
	slow=$(awk '$1 == "slow" { print $2 }' <<<"$output")
	fast1=$(awk '$1 == "fast.1" { print $2 }' <<<"$output")
	fast2=$(awk '$1 == "fast.2" { print $2 }' <<<"$output")
	[ $(( ${slow:-0} + fast1 + fast2 )) -eq 320 ]
	# A fair share would be 107; the slow one answers 3 a second each.
	[ "${slow:-0}" -lt 40 ]
}

@test "a dyno killed mid-traffic fails no request" {
	start_app web.1; p1=$LAST_PORT
	start_app web.2; p2=$LAST_PORT; victim=$LAST_PID
	start_app web.3; p3=$LAST_PORT
	# A short quarantine, so the dead dyno is tried (and refuses) again.
	start_router -b "127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3" \
	    --quarantine 100ms
	# Enough requests that the kill lands well inside the loop.
	python3 "$CLIENT" loop "$RPORT" 3000 / > "$T/codes" 2>&1 3>&- &
	loop=$!
	wait_for 30 lines_ge "$T/codes" 60
	kill -KILL "$victim"
	wait "$loop"
	[ "$(grep -c . "$T/codes")" -eq 3000 ]
	[ "$(grep -vc '^200 ' "$T/codes")" -eq 0 ]
	# web.2 served before the kill, and only web.1 and web.3 at the end.
	grep -q '^200 web.2$' "$T/codes"
	[ "$(tail -n 50 "$T/codes" | grep -c web.2)" -eq 0 ]
}

# ---- the routes file ------------------------------------------------------------

@test "-a: a new routes file takes effect without dropping a connection; SIGHUP rereads it" {
	start_app web.1; p1=$LAST_PORT
	start_app web.2; p2=$LAST_PORT
	start_app web.3; p3=$LAST_PORT
	make_routes_app "web.1 127.0.0.1:$p1"
	start_router -a "$APPDIR"
	wait_for 10 grep -qx "$ROUTER_PID" "$APPDIR/.dyno/run/router.pid"
	# One keep-alive client asks on until web.2 answers on the same connection.
	python3 "$CLIENT" watch "$RPORT" web.2 60 > "$T/watch" 2>&1 3>&- &
	watcher=$!
	wait_for 30 lines_ge "$T/watch" 10
	write_routes "web.2 127.0.0.1:$p2"
	wait "$watcher"
	head -n 1 "$T/watch" | grep -qx web.1
	tail -n 1 "$T/watch" | grep -qx web.2
	fails grep -vqE '^web\.[12]$' "$T/watch"
	# Rewritten in place and not closed, inotify says nothing: only SIGHUP.
	run python3 "$CLIENT" hup "$APPDIR/.dyno/run/routes" "$ROUTER_PID" \
	    "$RPORT" web.3 "web.3 127.0.0.1:$p3\n"
	[ "$output" = reloaded ]
}

@test "no routable dyno: 503 H14; all refuse: 503 H21" {
	make_routes_app
	start_router -a "$APPDIR"
	[ "$(code "http://127.0.0.1:$RPORT/")" = 503 ]
	wait_for 10 router_log_has 'at=error code=H14 .*status=503'

	gone1=$(pick_port)
	gone2=$(pick_port)
	start_router -b "127.0.0.1:$gone1,127.0.0.1:$gone2"
	[ "$(code "http://127.0.0.1:$RPORT/")" = 503 ]
	wait_for 10 router_log_has 'at=error code=H21 .*status=503'
}

@test "a full dyno with no queue room: 503 H11" {
	start_app web.1
	start_router -b "127.0.0.1:$LAST_PORT" --max-inflight 1 --queue 0
	curl -s -o "$T/slow" -w '%{http_code}' \
	    "http://127.0.0.1:$RPORT/slow?ms=4000" > "$T/slow.code" 3>&- &
	slow=$!
	wait_for 20 has_conn_to "$LAST_PORT"
	[ "$(code "http://127.0.0.1:$RPORT/")" = 503 ]
	wait_for 10 router_log_has 'at=error code=H11 desc="Backlog too deep".*status=503'
	wait "$slow"
	[ "$(cat "$T/slow.code")" = 200 ]
}

@test "a slot freed by a failed request goes to the next one queued" {
	start_app web.1; p1=$LAST_PORT
	start_router -b "127.0.0.1:$p1" --max-inflight 1 --queue 10
	python3 "$CLIENT" reset "$RPORT" "/slow?ms=30000" 300 3>&- &
	reset=$!
	wait_for 20 has_conn_to "$p1"
	# Queued behind the slow one, whose client gives up 300 ms in: served
	# then, not when the dyno ends the slow one 30 s in.
	t=$(curl -sS -m 60 -o /dev/null -w '%{http_code} %{time_total}' \
	    "http://127.0.0.1:$RPORT/")
	wait "$reset"
	echo "queued: $t" >&2
	[ "${t% *}" = 200 ]
	awk -v t="${t#* }" 'BEGIN { exit !(t < 15) }'
}

# ---- strict parsing ------------------------------------------------------------

# expect_reject STATUS NAME REQUEST: the router answers STATUS and closes.
expect_reject() {
	local want=$1 name=$2 got
	got=$(send "$3")
	if head -n 1 <<<"$got" | grep -q "^HTTP/1.1 $want " &&
	    tail -n 1 <<<"$got" | grep -qx '<<closed>>' &&
	    grep -qi '^Connection: close' <<<"$got"; then
		return 0
	fi
	echo "case \"$name\": wanted $want and a close, got:" >&2
	echo "$got" >&2
	return 1
}

@test "request smuggling attempts answer 400 and close" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	H='Host: x\r\n'
	expect_reject 400 "TE and CL" "POST / HTTP/1.1\r\n${H}Content-Length: 42\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n"
	expect_reject 400 "CL twice" "POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"
	expect_reject 400 "CL not a number" "POST / HTTP/1.1\r\n${H}Content-Length: 1x\r\n\r\nx"
	expect_reject 400 "CL negative" "POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\nx"
	expect_reject 400 "TE final coding gzip" "POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n"
	expect_reject 400 "TE chunked twice" "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	expect_reject 400 "TE on HTTP/1.0" "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	expect_reject 400 "obs-fold" "GET / HTTP/1.1\r\n${H}X-A: 1\r\n continued\r\n\r\n"
	expect_reject 400 "bare CR" "GET / HTTP/1.1\r\n${H}X-A: 1\r2\r\n\r\n"
	expect_reject 400 "bare LF" "GET / HTTP/1.1\n${H}\r\n"
	expect_reject 400 "space before colon" "POST / HTTP/1.1\r\n${H}Content-Length : 1\r\n\r\nx"
	expect_reject 400 "no Host on 1.1" "GET / HTTP/1.1\r\n\r\n"
	expect_reject 400 "Host twice" "GET / HTTP/1.1\r\n${H}${H}\r\n"
	expect_reject 400 "chunk size of 17 hex digits" "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n"
	expect_reject 400 "chunk without CRLF" "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1\r\nxy0\r\n\r\n"
	expect_reject 400 "not HTTP/1.x" "GET / HTTP/2.0\r\n${H}\r\n"
	# The router is still fine.  The dyno saw none of them: the two
	# chunked bodies that went bad were read (--body-buffer) and refused
	# before dispatch.  And of course no /smuggled.
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
	wait_for 10 router_log_has 'at=error code=H26 desc="Request Error"'
	cat "$T/web.1.log" >&2
	[ "$(tr '\n' ' ' < "$T/web.1.log")" = "GET / HTTP/1.1 " ]
}

@test "a Connection header naming Content-Length or Transfer-Encoding is refused, not unframed" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	# Stripping the named field after framing by it made the dyno read the
	# body as a second request that the router never parsed or logged;
	# such a field is never hop-by-hop: 400 (t/route-hostile.bats has more).
	smuggled='GET /admin HTTP/1.1\r\nHost: a\r\n\r\n'
	expect_reject 400 "names CL" "POST /cl HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\nContent-Length: 32\r\n\r\n$smuggled"
	expect_reject 400 "names TE" "POST /te HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n$smuggled\r\n0\r\n\r\n"
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
	cat "$T/web.1.log" >&2
	[ "$(tr '\n' ' ' < "$T/web.1.log")" = "GET / HTTP/1.1 " ]
	fails router_log_has 'path="/admin"'
}

@test "size limits answer 414 and 431 and close" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	long=$(head -c 8200 /dev/zero | tr '\0' a)
	name=$(head -c 1001 /dev/zero | tr '\0' n)
	many=$(for i in $(seq 101); do printf 'X-%d: %d\\r\\n' "$i" "$i"; done)
	expect_reject 414 "request line over 8192" "GET /$long HTTP/1.1\r\nHost: x\r\n\r\n"
	expect_reject 431 "header line over 8192" "GET / HTTP/1.1\r\nHost: x\r\nX-Long: $long\r\n\r\n"
	expect_reject 431 "header name over 1000" "GET / HTTP/1.1\r\nHost: x\r\n$name: 1\r\n\r\n"
	expect_reject 431 "101 header lines" "GET / HTTP/1.1\r\nHost: x\r\n$many\r\n"
	# ... and just under each limit is fine.
	ok=$(head -c 8000 /dev/zero | tr '\0' a)
	run send "GET /$ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	wait_for 10 router_log_has 'code=H25'
}

# ---- what the dyno sees, and what comes back -----------------------------------

@test "a malformed response from the dyno: 502 H17" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	[ "$(code "http://127.0.0.1:$RPORT/bad")" = 502 ]
	wait_for 10 router_log_has 'at=error code=H17 desc="Poorly formatted HTTP response" method=GET path="/bad".* status=502'
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
}

@test "adds X-Forwarded-*, X-Request-Start, X-Request-Id, Via; strips hop-by-hop both ways" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	t0=$(now_ms)
	curl -sS -H 'X-Forwarded-For: 10.1.2.3' -H 'X-Request-Id: my-id-123+abc/def=ghij' \
	    -H 'Connection: X-Foo' -H 'X-Foo: 1' -H 'Keep-Alive: 5' \
	    -H 'Proxy-Connection: x' -H 'TE: trailers' -H 'X-Kept: yes' \
	    -H 'Proxy-Authorization: Basic eDp5' -H 'Trailer: X-T' \
	    -H 'Upgrade: h2c' "http://127.0.0.1:$RPORT/" > "$T/seen"
	t1=$(now_ms)
	cat "$T/seen" >&2
	grep -qx 'h: X-Forwarded-For: 10.1.2.3, 127.0.0.1' "$T/seen"
	grep -qx 'h: X-Forwarded-Proto: http' "$T/seen"
	grep -qx "h: X-Forwarded-Port: $RPORT" "$T/seen"
	grep -qx 'h: X-Request-Id: my-id-123+abc/def=ghij' "$T/seen"
	grep -qx 'h: Via: 1.1 dyno-route' "$T/seen"
	grep -qx 'h: X-Kept: yes' "$T/seen"
	start=$(sed -n 's/^h: X-Request-Start: //p' "$T/seen")
	[ "$start" -ge "$t0" ]
	[ "$start" -le "$t1" ]
	fails grep -qiE '^h: (X-Foo|Keep-Alive|Proxy-Connection|TE|Proxy-Authorization|Trailer|Upgrade):' "$T/seen"
	# Only the router's own Connection header, if any.
	fails grep -qi '^h: Connection: .*X-Foo' "$T/seen"
	wait_for 10 router_log_has 'request_id=my-id-123\+abc/def=ghij fwd="10.1.2.3, 127.0.0.1"'

	# Heroku's rule: 20 to 200 of [A-Za-z0-9+/=-], else a fresh id.
	long=$(head -c 201 /dev/zero | tr '\0' i)
	for bad in "$long" 'has space in-it-12345' 'only-19-characters-' \
	    'a.dot.is.not.allowed.here' 'quote"status=200-dyno=x'; do
		id=$(curl -sS -H "X-Request-Id: $bad" "http://127.0.0.1:$RPORT/" |
		    sed -n 's/^h: X-Request-Id: //p')
		[[ "$id" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
	done
	id=$(curl -sS -H "X-Request-Id: $(head -c 200 /dev/zero | tr '\0' k)" \
	    "http://127.0.0.1:$RPORT/" | sed -n 's/^h: X-Request-Id: //p')
	[ "${#id}" -eq 200 ]

	# The dyno's hop-by-hop headers stop at the router too.
	curl -sS -D "$T/head" -o /dev/null "http://127.0.0.1:$RPORT/hop"
	cat "$T/head" >&2
	grep -q '^X-Dyno: web.1' "$T/head"
	fails grep -qiE '^(X-Secret|Keep-Alive|Proxy-Authenticate|Proxy-Connection|Trailer|Upgrade|TE):' "$T/head"
	fails grep -qi '^Connection: X-Secret' "$T/head"
}

@test "keep-alive: 200 requests on one connection; pipelined requests in order" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	run python3 "$CLIENT" keepalive "$RPORT" 200
	[ "$output" = "requests=200 ok=200 connections=1" ]
	run send 'GET /?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET /?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	[ "$(grep '^line=' <<<"$output" | tr '\n' ' ')" = \
	    "line=GET /?n=1 HTTP/1.1 line=GET /?n=2 HTTP/1.1 line=GET /?n=3 HTTP/1.1 " ]
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
}

@test "Content-Length and chunked request bodies reach the dyno intact" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	head -c 5000000 /dev/urandom > "$T/body"
	sum=$(sha256sum "$T/body" | cut -d' ' -f1)
	curl -sS --data-binary @"$T/body" "http://127.0.0.1:$RPORT/" > "$T/cl"
	grep -qx 'h: Content-Length: 5000000' "$T/cl"
	grep -qx 'body_len=5000000' "$T/cl"
	grep -qx "body_sha256=$sum" "$T/cl"
	curl -sS -H 'Transfer-Encoding: chunked' --data-binary @"$T/body" \
	    "http://127.0.0.1:$RPORT/" > "$T/ch"
	grep -qx 'h: Transfer-Encoding: chunked' "$T/ch"
	grep -qx 'body_len=5000000' "$T/ch"
	grep -qx "body_sha256=$sum" "$T/ch"
	# A chunked response comes back chunked, whole.
	curl -sS -D "$T/head" -o "$T/resp" "http://127.0.0.1:$RPORT/chunked"
	grep -qi '^Transfer-Encoding: chunked' "$T/head"
	[ "$(cat "$T/resp")" = "hello world" ]
}

@test "Expect: 100-continue gets its 100 from the dyno, and the body goes at once" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	head -c 3000000 /dev/urandom > "$T/body"
	sum=$(sha256sum "$T/body" | cut -d' ' -f1)
	# curl sends the body when the 100 comes, or when it gives up waiting
	# for it: 1 s by default, 20 s here, so a lost 100 shows as 20 s.
	t=$(curl -sS -v -H 'Expect: 100-continue' --expect100-timeout 20 \
	    --data-binary @"$T/body" -o "$T/out" -w '%{time_total}' \
	    "http://127.0.0.1:$RPORT/" 2>"$T/err")
	echo "time $t" >&2
	grep -q '< HTTP/1.1 100 Continue' "$T/err"
	grep -qx 'h: Expect: 100-continue' "$T/out"
	grep -qx "body_sha256=$sum" "$T/out"
	awk -v t="$t" 'BEGIN { exit !(t < 15) }'
}

@test "HEAD, 204 and 304 responses carry no body" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	# A dyno that sends a body to a HEAD anyway: the client gets the head.
	run send 'HEAD /head-body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	grep -q '^Content-Length: 9' <<<"$output"
	fails grep -q 'head-body' <<<"$output"
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
	run send 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/304 HTTP/1.1\r\nHost: x\r\n\r\nGET /?last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	echo "$output" >&2
	[ "$(grep -c '^HTTP/1.1 ' <<<"$output")" -eq 4 ]
	[ "$(grep '^HTTP/1.1 ' <<<"$output" | cut -c1-12 | tr '\n' ' ')" = \
	    "HTTP/1.1 200 HTTP/1.1 204 HTTP/1.1 304 HTTP/1.1 200 " ]
	# The one body is the last request's.
	[ "$(grep -c '^name=web.1' <<<"$output")" -eq 1 ]
	grep -qx 'line=GET /?last HTTP/1.1' <<<"$output"
	# The sample app's HEAD too.
	start_app web.2
	start_router -b "127.0.0.1:$LAST_PORT"
	run send 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	echo "$output" >&2
	grep -q '^Content-Length: 17' <<<"$output"
	fails grep -q 'Hello' <<<"$output"
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
}

@test "Upgrade: websocket gets a 101 and a two-way byte stream" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	run python3 "$CLIENT" ws "$RPORT"
	echo "$output" >&2
	[ "${lines[0]}" = "HTTP/1.1 101 Switching Protocols" ]
	[ "${lines[1]}" = "echo ok" ]
	[[ "${lines[2]}" == "closed in "* ]]	# else "open" after 5 s
	# The dyno may end it too: the client hears so at once.
	run python3 "$CLIENT" ws "$RPORT" dyno-closes
	[ "${lines[1]}" = "echo ok" ]
	[[ "${lines[2]}" == "closed in "* ]]
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
	# A tunnel's end is its normal end, logged once as a 101.
	wait_for 10 eval '[ "$(grep -c "at=info method=GET path=\"/chat\" .* status=101 " "$LOG")" -eq 2 ]'
	fails router_log_has 'at=error'
}

@test "a client that resets mid-request: H27 499 at once, and no spinning" {
	start_app web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	python3 "$CLIENT" reset "$RPORT" "/slow?ms=30000" 200
	# At once: not when the dyno answers, 30 s in.
	wait_for 10 router_log_has 'at=error code=H27 .* path="/slow\?ms=30000" .*status=499'
	# With the dyno still busy, an idle router uses no CPU.
	t0=$(awk '{ print $14 + $15 }' "/proc/$ROUTER_PID/stat")
	sleep 1	# measuring an interval, not waiting for anything
	t1=$(awk '{ print $14 + $15 }' "/proc/$ROUTER_PID/stat")
	echo "router CPU ticks in 1 s: $((t1 - t0))" >&2
	[ $((t1 - t0)) -lt 10 ]
}

# ---- timeouts -------------------------------------------------------------------

@test "--service-timeout: a dyno slower than it gives 503 H12" {
	start_app web.1
	start_router -b "127.0.0.1:$LAST_PORT" --service-timeout 1s
	t0=$(now_ms)
	[ "$(code -m 60 "http://127.0.0.1:$RPORT/slow?ms=30000")" = 503 ]
	t=$(( $(now_ms) - t0 ))
	echo "${t}ms" >&2
	# Its 1 s, not the dyno's 30.
	[ "$t" -ge 1000 ]
	[ "$t" -lt 15000 ]
	wait_for 10 router_log_has 'at=error code=H12 desc="Request timeout" method=GET path="/slow\?ms=30000"'
}

@test "--header-timeout: 300 slowloris connections cost others nothing and get 408" {
	start_app web.1
	start_router -b "127.0.0.1:$LAST_PORT" --header-timeout 3s
	python3 "$CLIENT" slowloris "$RPORT" 300 "$T/ready" > "$T/slow" 2>&1 3>&- &
	loris=$!
	wait_for 20 test -e "$T/ready"
	run curl -sS -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RPORT/"
	served=$(now_ms)
	[ "$output" = 200 ]
	wait "$loris"
	cat "$T/slow" >&2
	grep -q '^closed=300 got408=300 ' "$T/slow"
	# Served while they all still waited: before the first 408.
	first=$(sed -n 's/.*first_close=\([0-9]*\).*/\1/p' "$T/slow")
	echo "served ${served}, first 408 ${first}" >&2
	[ "$served" -lt "$first" ]
	# ... and they all got it from the timeout, not the client's own 15 s.
	last=$(sed -n 's/.*last_ms=//p' "$T/slow")
	[ "$last" -lt 12000 ]
	wait_for 10 router_log_has 'code=H28'
	# A pipelined head that never ends behind a whole request: the same.
	run send_wait 20 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX-Half: '
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	grep -q '^HTTP/1.1 408 ' <<<"$output"
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
}

@test "SIGTERM lets a request in flight finish, then exits 0" {
	start_app web.1; p1=$LAST_PORT
	make_routes_app "web.1 127.0.0.1:$p1"
	start_router -a "$APPDIR"
	wait_for 10 test -s "$APPDIR/.dyno/run/router.pid"
	curl -s -o "$T/body" -w '%{http_code}' \
	    "http://127.0.0.1:$RPORT/slow?ms=1500" > "$T/code" 3>&- &
	client=$!
	wait_for 20 has_conn_to "$p1"
	kill -TERM "$ROUTER_PID"
	wait_for 10 port_closed "$RPORT"
	wait "$client"
	[ "$(cat "$T/code")" = 200 ]
	grep -q 'slow 1500ms from web.1' "$T/body"
	wait_for 20 pid_gone "$ROUTER_PID"
	run wait "$ROUTER_PID"
	[ "$status" -eq 0 ]
	[ ! -e "$APPDIR/.dyno/run/router.pid" ]
}

# ---- streaming ---------------------------------------------------------------------

# max_rss_while ROUTER CLIENT: the highest VmRSS of ROUTER, in kB, while CLIENT lives.
max_rss_while() {
	local router=$1 client=$2 max=0 kb
	while kill -0 "$client" 2>/dev/null; do
		kb=$(vmrss_kb "$router")
		[ -n "$kb" ] && [ "$kb" -gt "$max" ] && max=$kb
		sleep 0.1
	done
	echo "$max"
}

@test "1 GB up and 1 GB down stream through in flat memory" {
	start_backend web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	truncate -s 1G "$T/big"
	curl -sS -T "$T/big" "http://127.0.0.1:$RPORT/?nohash" > "$T/up" 2>&1 3>&- &
	up=$!
	upmax=$(max_rss_while "$ROUTER_PID" "$up")
	wait "$up"
	grep -qx 'body_len=1073741824' "$T/up"
	curl -sS -o /dev/null -w '%{http_code} %{size_download}' \
	    "http://127.0.0.1:$RPORT/download?bytes=1073741824" > "$T/down" 2>&1 3>&- &
	down=$!
	downmax=$(max_rss_while "$ROUTER_PID" "$down")
	wait "$down"
	echo "router VmRSS max: up ${upmax} kB, down ${downmax} kB" >&2
	[ "$(cat "$T/down")" = "200 1073741824" ]
	# ASan's quarantine holds freed buffers: measure the plain build only.
	if [ "$(build_variant)" != san ]; then
		[ "$upmax" -lt 65536 ]
		[ "$downmax" -lt 65536 ]
	fi
}

# ---- what the router writes --------------------------------------------------------

@test "one logfmt line per request, Heroku's format" {
	start_app web.1
	start_router -b "127.0.0.1:$LAST_PORT"
	curl -sS -o /dev/null "http://127.0.0.1:$RPORT/"
	wait_for 10 router_log_has 'at=info'
	grep -E "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+\+00:00 heroku\[router\]: at=info method=GET path=\"/\" host=\"127\.0\.0\.1:$RPORT\" request_id=[0-9a-f-]{36} fwd=\"127\.0\.0\.1\" dyno=127\.0\.0\.1:$LAST_PORT connect=[0-9]+ms service=[0-9]+ms status=200 bytes=[0-9]+ protocol=http queue=0ms tries=1 total=[0-9]+ms$" "$LOG"
}

@test "-a: run/router counts requests per dyno with p50/p95/p99" {
	start_app web.1; p1=$LAST_PORT
	start_app web.2; p2=$LAST_PORT
	make_routes_app "web.1 127.0.0.1:$p1" "web.2 127.0.0.1:$p2"
	start_router -a "$APPDIR"
	python3 "$CLIENT" loop "$RPORT" 50 / > "$T/codes"
	[ "$(grep -c '^200 ' "$T/codes")" -eq 50 ]
	# Rewritten at most once a second: wait for the last of the traffic.
	wait_for 10 counted_total_is 50
	for d in "web.1 addr=127.0.0.1:$p1" "web.2 addr=127.0.0.1:$p2"; do
		wait_for 10 grep -Eq "^dyno=$d inflight=0 total=[0-9]+ errors=0 requests_1m=[0-9]+ p50_ms=[0-9]+ p95_ms=[0-9]+ p99_ms=[0-9]+ gone=0 stalled=0 stuck=0$" "$APPDIR/.dyno/run/router"
	done
	grep -qx 'queue=0 clients=0' "$APPDIR/.dyno/run/router"
}

# worker_total I: the requests worker I has counted, from run/router.I.
worker_total() {
	sed -n 's/^dyno=web.1 .* total=\([0-9]*\) .*/\1/p' \
	    "$APPDIR/.dyno/run/router.$1" 2>/dev/null
}
worker_total_is() { [ "$(worker_total "$1")" = "$2" ]; }
children() { pgrep -P "$ROUTER_PID" | sort | tr '\n' ' '; }
children_count_is() { [ "$(pgrep -c -P "$ROUTER_PID")" -eq "$1" ]; }

@test "--workers 2: each worker takes connections, a killed one is replaced, SIGTERM stops them all" {
	start_app web.1; p1=$LAST_PORT
	make_routes_app "web.1 127.0.0.1:$p1"
	start_router --app "$APPDIR" --workers 2
	wait_for 10 children_count_is 2
	read -r w1 w2 <<<"$(children)"
	# With one worker stopped, the other must take every connection.
	kill -STOP "$w1"
	python3 "$CLIENT" loop "$RPORT" 20 / > "$T/codes"
	kill -CONT "$w1"
	kill -STOP "$w2"
	python3 "$CLIENT" loop "$RPORT" 30 / >> "$T/codes"
	kill -CONT "$w2"
	[ "$(grep -c '^200 web.1$' "$T/codes")" -eq 50 ]
	# Each counted its own: one worker 20, the other 30.
	wait_for 10 eval '[ "$(worker_total 1) $(worker_total 2)" = "20 30" ] ||
	    [ "$(worker_total 1) $(worker_total 2)" = "30 20" ]'
	# A worker killed is replaced, and the new one serves.
	[ "$(worker_total 1)" = 20 ] && { old=$w1 other=$w2 i=1; } ||
	    { old=$w2 other=$w1 i=2; }
	kill -KILL "$old"
	wait_for 10 router_log_has "at=error desc=\"worker $i exited, restarting\""
	wait_for 10 eval 'children_count_is 2 && [[ " $(children)" != *" $old "* ]]'
	kill -STOP "$other"
	python3 "$CLIENT" loop "$RPORT" 5 / > "$T/codes2"
	kill -CONT "$other"
	[ "$(grep -c '^200 web.1$' "$T/codes2")" -eq 5 ]
	wait_for 10 worker_total_is "$i" 5
	# SIGTERM to the first process stops every worker, and it exits 0.
	workers=$(children)
	kill -TERM "$ROUTER_PID"
	wait_for 20 pid_gone "$ROUTER_PID"
	for w in $workers; do pid_gone "$w"; done
	run wait "$ROUTER_PID"
	[ "$status" -eq 0 ]
}

@test "a dyno that closes without a response: 503 H13, or a cut response; only a GET is sent again, to another dyno" {
	start_backend good; good=$LAST_PORT
	start_backend dying --close; dying=$LAST_PORT
	make_routes_app "good 127.0.0.1:$good"
	# No stall detection here: good's one slow request would make it a
	# suspect, and the next GET would go to it as a probe.
	start_router --app "$APPDIR" --stall-timeout 60s
	# A request in flight on good, so the next goes to the idle dying dyno
	# (fewest in flight of the two) whenever it is not quarantined.
	curl -s -m 60 -o /dev/null "http://127.0.0.1:$RPORT/slow?ms=30000" 3>&- &
	PIDS+=($!)
	wait_for 20 has_conn_to "$good"
	write_routes "good 127.0.0.1:$good" "dying 127.0.0.1:$dying"
	wait_for 20 grep -q "^dyno=dying " "$APPDIR/.dyno/run/router"
	run curl -sS -m 30 -X POST -w '\n%{http_code}\n%{size_header}' "http://127.0.0.1:$RPORT/"
	echo "$output" >&2
	[ "${lines[0]}" = "503 Service Unavailable: Connection closed without response" ]
	[ "${lines[1]}" = 503 ]
	# bytes= is the router's whole page, head and body (its newline too).
	wait_for 10 router_log_has "at=error code=H13 desc=\"Connection closed without response\" method=POST path=\"/\" .* dyno=dying .*status=503 bytes=$(( ${lines[2]} + ${#lines[0]} + 1 )) "
	[ "$(grep -c '^POST / HTTP/1.1$' "$T/dying.log")" -eq 1 ]
	fails grep -q '^POST ' "$T/good.log"
	# A GET the dying dyno took is sent again, to good.
	run curl -sS -m 30 -w '\n%{http_code}' "http://127.0.0.1:$RPORT/?get"
	echo "$output" >&2
	grep -qx 'name=good' <<<"$output"
	[ "${lines[${#lines[@]}-1]}" = 200 ]
	[ "$(grep -c '^GET /?get HTTP/1.1$' "$T/dying.log")" -eq 1 ]
	[ "$(grep -c '^GET /?get HTTP/1.1$' "$T/good.log")" -eq 1 ]
	wait_for 10 router_log_has 'at=info method=GET path="/\?get" .* dyno=good .*status=200'
	# Once the response has begun, the client's connection is closed instead.
	run send_wait 20 'GET /cut HTTP/1.1\r\nHost: x\r\n\r\n'
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	[ "${lines[${#lines[@]}-2]}" = abc ]
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
	fails grep -q '^HTTP/1.1 503' <<<"$output"
	wait_for 10 router_log_has 'at=error code=H13 desc="Connection closed without response" method=GET path="/cut" .*status=200'
	# A GET with no other dyno to go to: H13 too, not a connect error.
	start_router --backends "127.0.0.1:$dying"
	run curl -sS -m 30 -w '\n%{http_code}' "http://127.0.0.1:$RPORT/?only"
	[ "${lines[0]}" = "503 Service Unavailable: Connection closed without response" ]
	[ "${lines[1]}" = 503 ]
	[ "$(grep -c '^GET /?only HTTP/1.1$' "$T/dying.log")" -eq 1 ]
	wait_for 10 router_log_has 'at=error code=H13 desc="Connection closed without response" method=GET path="/\?only" .*status=503'
}

@test "a pooled connection the dyno closes unanswered: a bodiless request is sent again, one with a body never" {
	start_backend web.1 --close-reused
	# --body-buffer 0: bodies stream (one read whole first may go again:
	# t/route-hostile.bats).
	start_router -b "127.0.0.1:$LAST_PORT" --service-timeout 5s --body-buffer 0
	# The first request leaves a kept-alive connection in the pool.
	curl -sS -m 30 "http://127.0.0.1:$RPORT/?first" | grep -qx 'name=web.1'
	# A GET meets the dyno closing it: sent again on a fresh connection.
	run curl -sS -m 30 -w '\n%{http_code}' "http://127.0.0.1:$RPORT/?again"
	echo "$output" >&2
	[ "${lines[${#lines[@]}-1]}" = 200 ]
	[ "$(grep -c '^GET /?again HTTP/1.1$' "$T/web.1.log")" -eq 2 ]
	# A POST with a body meets the same close.  Its body went out with it
	# and is gone: sending the head again would leave the dyno waiting for
	# a body that never comes (RFC 9112 9.3.1.1: a proxy never retries a
	# non-idempotent request anyway).  503 H13 at once.
	run curl -sS -m 30 -X POST --data-binary hello -w '\n%{http_code}' \
	    "http://127.0.0.1:$RPORT/post"
	echo "$output" >&2
	[ "${lines[0]}" = "503 Service Unavailable: Connection closed without response" ]
	[ "${lines[1]}" = 503 ]
	[ "$(grep -c '^POST /post HTTP/1.1$' "$T/web.1.log")" -eq 1 ]
	wait_for 10 router_log_has 'at=error code=H13 desc="Connection closed without response" method=POST path="/post"'
}

@test "--retries 2: a request is tried on two different dynos, then 503 H21" {
	for i in 1 2 3 4; do gone[i]=127.0.0.1:$(pick_port); done
	start_router --backends "${gone[1]},${gone[2]},${gone[3]},${gone[4]}" --retries 2
	run curl -sS -m 30 -w '\n%{http_code}' "http://127.0.0.1:$RPORT/"
	[ "${lines[1]}" = 503 ]
	wait_for 10 router_log_has 'at=error code=H21 desc="Backend connection refused" .*status=503'
	cat "$LOG" >&2
	# Each try refused and quarantined, and logged: two, on two dynos.
	[ "$(grep -c 'at=warning desc="connection refused by' "$LOG")" -eq 2 ]
	[ "$(grep -o 'connection refused by [0-9.:]*' "$LOG" | sort -u | wc -l)" -eq 2 ]
}

@test "--retries 4: three refusing dynos and one up: every request gets through" {
	start_backend web.1; up=127.0.0.1:$LAST_PORT
	for i in 1 2 3; do gone[i]=127.0.0.1:$(pick_port); done
	start_router --backends "${gone[1]},${gone[2]},$up,${gone[3]}" --retries 4
	python3 "$CLIENT" loop "$RPORT" 10 / > "$T/codes"
	[ "$(grep -c '^200 web.1$' "$T/codes")" -eq 10 ]
	fails router_log_has 'at=error'
}

@test "--connect-timeout: a dyno that never takes the connect: quarantined, 503 H19; another dyno then serves" {
	start_backend hole --blackhole; hole=127.0.0.1:$LAST_PORT
	start_router --backends "$hole" --connect-timeout 300ms
	t0=$(now_ms)
	run curl -sS -m 10 -w '\n%{http_code}' "http://127.0.0.1:$RPORT/"
	t=$(( $(now_ms) - t0 ))
	echo "$output, ${t}ms" >&2
	[ "${lines[0]}" = "503 Service Unavailable: Backend connection timeout" ]
	[ "${lines[1]}" = 503 ]
	# Its 300 ms, not the 5 s default.
	[ "$t" -ge 300 ]
	[ "$t" -lt 4000 ]
	wait_for 10 router_log_has "at=warning desc=\"cannot connect to $hole, quarantined for 5000ms\""
	wait_for 10 router_log_has 'at=error code=H19 desc="Backend connection timeout" .*status=503'
	# With a dyno that is up as well, the connect that hangs is given up
	# on and the request goes there: every one gets through.
	start_backend web.1
	start_router --backends "$hole,127.0.0.1:$LAST_PORT" --connect-timeout 300ms
	python3 "$CLIENT" loop "$RPORT" 5 / > "$T/codes"
	[ "$(grep -c '^200 web.1$' "$T/codes")" -eq 5 ]
}

@test "--idle-timeout: a response that stalls is cut off (H15); an unused pooled dyno connection is closed" {
	start_backend web.1; p1=$LAST_PORT
	start_router --backends "127.0.0.1:$p1" --idle-timeout 300ms
	run send_wait 20 'GET /stall HTTP/1.1\r\nHost: x\r\n\r\n'
	echo "$output" >&2
	# The head and the 3 bytes that came, then the close: the response
	# had begun, so no 503 page.
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	[ "${lines[${#lines[@]}-2]}" = abc ]
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
	fails grep -q '^HTTP/1.1 503' <<<"$output"
	wait_for 10 router_log_has 'at=error code=H15 desc="Idle connection" method=GET path="/stall"'
	# A whole request leaves its connection to the dyno in the pool; 300 ms
	# unused, it is closed (the default would keep it 55 s).
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
	wait_for 10 eval '[ "$(conns_to "$p1")" -eq 0 ]'
}

@test "--keepalive-timeout: an idle client connection is closed without a word" {
	start_backend web.1
	start_router --backends "127.0.0.1:$LAST_PORT" --keepalive-timeout 300ms
	# raw waits 8 s for the close: the default would keep it 90 s, and even
	# the 10 s header timeout would not have closed it yet.
	run send_wait 8 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	grep -qx 'name=web.1' <<<"$output"
	[ "$(grep -c '^HTTP/1.1 ' <<<"$output")" -eq 1 ]
	[ "${lines[${#lines[@]}-1]}" = '<<closed>>' ]
	wait_for 10 router_log_has 'at=info method=GET path="/" .*status=200'
	fails router_log_has 'at=error'
}

@test "--drain-timeout: after SIGTERM a short request finishes (Connection: close), a long one is cut at the limit, exit 0" {
	start_backend web.1; p1=$LAST_PORT
	start_router --backends "127.0.0.1:$p1" --drain-timeout 6s
	curl -s -m 90 -D "$T/short.head" -o "$T/short" -w '%{http_code}' \
	    "http://127.0.0.1:$RPORT/slow?ms=2000" > "$T/short.code" 3>&- &
	short=$!
	curl -s -m 90 -o "$T/long" -w '%{http_code}' \
	    "http://127.0.0.1:$RPORT/slow?ms=60000" > "$T/long.code" 3>&- &
	long=$!
	wait_for 20 eval '[ "$(conns_to "$p1")" -ge 2 ]'
	t0=$(now_ms)
	kill -TERM "$ROUTER_PID"
	wait_for 40 pid_gone "$ROUTER_PID"
	t=$(( $(now_ms) - t0 ))
	echo "router exited ${t}ms after SIGTERM" >&2
	run wait "$ROUTER_PID"
	[ "$status" -eq 0 ]
	wait "$short"
	[ "$(cat "$T/short.code")" = 200 ]
	grep -qx 'line=GET /slow?ms=2000 HTTP/1.1' "$T/short"
	grep -qi '^Connection: close' "$T/short.head"
	run wait "$long"
	[ "$(cat "$T/long.code")" = 000 ]
	# It waited out the limit, and not the long request's 60 s.
	[ "$t" -ge 5500 ]
	[ "$t" -lt 30000 ]
}

@test "--proto https: X-Forwarded-Proto gets it after the client's value; logged as protocol=https" {
	start_backend web.1
	start_router --backends "127.0.0.1:$LAST_PORT" --proto https
	curl -sS -H 'X-Forwarded-Proto: http' "http://127.0.0.1:$RPORT/" > "$T/seen"
	cat "$T/seen" >&2
	grep -qx 'h: X-Forwarded-Proto: http, https' "$T/seen"
	[ "$(grep -c '^h: X-Forwarded-Proto:' "$T/seen")" -eq 1 ]
	wait_for 10 router_log_has 'at=info method=GET path="/" .*status=200 bytes=[0-9]+ protocol=https queue='
}

@test "--user: after binding the router runs as that user; an unknown user exits 1" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	start_backend web.1
	start_router --backends "127.0.0.1:$LAST_PORT" --user nobody
	[ "$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$ROUTER_PID/status")" = "$(id -u nobody)" ]
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
	run "$BIN/dyno-route" --backends "127.0.0.1:$LAST_PORT" \
	    --listen "127.0.0.1:$(pick_port)" --user no-such-user-here
	[ "$status" -eq 1 ]
	[ "$output" = 'dyno-route: no such user "no-such-user-here"' ]
}

@test "out of memory: every client gets a response or the 503 H99 page, none a reset; service resumes" {
	# ASan reserves terabytes of address space up front, so a limit on it
	# cannot make malloc fail there.
	[ "$(build_variant)" != san ] || skip "n/a: an address-space limit cannot make malloc fail under ASan"
	start_backend a
	start_router --backends "127.0.0.1:$LAST_PORT"
	[ "$(code "http://127.0.0.1:$RPORT/")" = 200 ]
	# Address space for the router as it is and 100 KiB more: the 200
	# responses of 300 kB below need more buffers than that.
	vs=$(sed -n 's/^VmSize:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$ROUTER_PID/status")
	prlimit --pid "$ROUTER_PID" --as=$(( (vs + 100) * 1024 )):unlimited
	run python3 "$PEERS/burst.py" "$RPORT" 200 "/download?bytes=300000"
	echo "$output"
	prlimit --pid "$ROUTER_PID" --as=unlimited:unlimited
	# Only two outcomes: the whole answer, or our page.
	[ "$(grep -vcE '^[0-9]+ HTTP/1.1 (200 OK|503 Service Unavailable)$' <<<"$output")" = 0 ]
	n503=$(sed -n 's/^\([0-9]*\) HTTP\/1.1 503 .*/\1/p' <<<"$output")
	[ "${n503:-0}" -gt 0 ]
	# Each 503 is logged as H99, the platform's fault, not a dyno's.
	[ "$(grep -c 'at=error code=H99 desc="Platform error"' "$LOG")" -ge "$n503" ]
	fails grep -q 'quarantined' "$LOG"
	[ "$(code "http://127.0.0.1:$RPORT/download?bytes=300000")" = 200 ]
	kill -0 "$ROUTER_PID"
}
