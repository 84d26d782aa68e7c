#!/usr/bin/env bats
# dyno-route against hostile clients and dynos: request smuggling, framing,
# Host, and clients that hold slots.  The dyno is t/peers/strict.py, which
# keeps every request it got byte for byte (req.N) and parses by equality:
# each case asserts what the dyno received, not only the status.

load helpers

load router

setup() {
	router_setup hostile
	mkdir "$T/got"
}
teardown() { router_teardown; }

# start_strict: the strict dyno; its port in $DPORT, its requests in $T/got.
start_strict() {
	python3 "$PEERS/strict.py" "$T/strict.port" "$T/got" \
	    >>"$T/strict.log" 2>&1 3>&- &
	PIDS+=($!)
	wait_for 30 test -s "$T/strict.port"
	DPORT=$(cat "$T/strict.port")
}

# start_strict_router ARG...: dyno-route ($RPORT) to the strict dyno.
start_strict_router() { start_router -b "127.0.0.1:$DPORT" "$@"; }

# send FORMAT: printf FORMAT to the router on a new connection; print all
# it answered, then <<closed>>, <<reset>>, or <<open>> if it did not close
# in 5 s.  Bash's /dev/tcp, not a Python client: this machine starts Python
# slowly.
send() {
	local out rc=0
	exec 8<>"/dev/tcp/127.0.0.1/$RPORT"
	( trap '' PIPE; printf "$1" >&8 ) 2>/dev/null
	out=$(timeout 5 cat <&8 2>/dev/null) || rc=$?
	case $rc in
	0) printf '%s\n<<closed>>\n' "$out" ;;
	124) printf '%s\n<<open>>\n' "$out" ;;
	*) printf '%s\n<<reset>>\n' "$out" ;;
	esac
	exec 8<&-
}
router_log_has() { grep -qE -- "$1" "$LOG"; }
got_count() { ls "$T/got" | grep -c . || true; }
got_count_is() { [ "$(got_count)" = "$1" ]; }

# The tail the router adds to every request head (X-Request-Start's value
# is the clock: dyno_got shows it as T).
fwd() {
	printf '%s' "X-Forwarded-For: 127.0.0.1\\r\\nX-Forwarded-Proto: http\\r\\nX-Forwarded-Port: $RPORT\\r\\nX-Request-Start: T\\r\\nX-Request-Id: $1\\r\\nVia: 1.1 dyno-route\\r\\n"
}
# dyno_got N: request N as the dyno received it, byte for byte.
dyno_got() {
	sed -E 's/^(X-Request-Start: )[0-9]+\r$/\1T\r/' "$T/got/req.$1"
}
# expect_got N FORMAT: request N was exactly printf FORMAT.
expect_got() {
	local want
	wait_for 10 test -e "$T/got/req.$1" || { echo "no request $1" >&2; return 1; }
	if ! cmp -s <(dyno_got "$1") <(printf "$2"); then
		echo "request $1: got / wanted:" >&2
		dyno_got "$1" | od -c | head -40 >&2
		printf "$2" | od -c | head -40 >&2
		return 1
	fi
}

# expect_status STATUS NAME FORMAT: the router answers STATUS and closes
# (a reset when it closed on bytes it would not read, after its answer).
expect_status() {
	local want=$1 name=$2 got
	got=$(send "$3")
	if head -n 1 <<<"$got" | grep -q "^HTTP/1.1 $want " &&
	    tail -n 1 <<<"$got" | grep -qxE '<<(closed|reset)>>'; then
		return 0
	fi
	echo "case \"$name\": wanted $want and a close, got:" >&2
	echo "$got" >&2
	return 1
}

@test "a Connection header naming Content-Length, Transfer-Encoding or Host is a 400 and reaches no dyno" {
	start_strict
	start_strict_router
	smuggled='GET /admin HTTP/1.1\r\nHost: a\r\n\r\n'
	expect_status 400 "names CL" "POST /cl HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 32\r\n\r\n$smuggled"
	expect_status 400 "names cl, second field" "POST /cl HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: x, CONTENT-length\r\nContent-Length: 32\r\n\r\n$smuggled"
	expect_status 400 "names TE" "POST /te HTTP/1.1\r\nHost: a\r\nConnection: transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n$smuggled\r\n0\r\n\r\n"
	expect_status 400 "names Host" "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, host\r\n\r\n"
	router_log_has 'at=error code=H26 desc="Request Error".*status=400'
	# The dyno got nothing at all, and the router is still fine.
	send "GET /after HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0001\r\nConnection: close\r\n\r\n" >/dev/null
	expect_got 1 "GET /after HTTP/1.1\r\nHost: a\r\n$(fwd hostile-request-id-0001)\r\n"
	got_count_is 1
	fails router_log_has 'path="/admin"'
}

@test "a response whose Connection header names a framing field is a 502 H17" {
	start_strict
	start_strict_router
	expect_status 502 "response names CL" "GET /resp/conn-cl HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 502 "response names TE" "GET /resp/conn-te HTTP/1.1\r\nHost: a\r\n\r\n"
	router_log_has 'at=error code=H17 .*path="/resp/conn-cl"'
	router_log_has 'at=error code=H17 .*path="/resp/conn-te"'
}

@test "a chunked request goes to the dyno under the router's own chunk lines, without extensions or trailers" {
	start_strict
	start_strict_router
	run send "POST /up HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0001\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0005;name=\"v;\\\\\"\" ; b\r\nhello\r\nA\t;x=y\r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nX-Other: two words\r\n\r\n"
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	expect_got 1 "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n$(fwd hostile-request-id-0001)\r\n5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n"
}

@test "malformed chunk lines and trailers are a 400 H26, and no request reaches the dyno whole" {
	start_strict
	start_strict_router
	P='POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'
	long=$(head -c 5000 /dev/zero | tr '\0' a)
	expect_status 400 "ext without ;" "${P}5 zz\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "space before CRLF" "${P}5 \r\nhello\r\n0\r\n\r\n"
	expect_status 400 "bare LF after size" "${P}5\nhello\r\n0\r\n\r\n"
	expect_status 400 "NUL in ext" "${P}5;a\0b\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "ext without name" "${P}5;=x\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "ext value not a token" "${P}5;a=b c\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "CTL in quoted ext" "${P}5;a=\"\001\"\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "unterminated quoted ext" "${P}5;a=\"b\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "over-long ext" "${P}5;a=$long\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "no size" "${P};a\r\nhello\r\n0\r\n\r\n"
	expect_status 400 "request line in trailer" "${P}5\r\nhello\r\n0\r\nGET /admin HTTP/1.1\r\n\r\n"
	expect_status 400 "folded trailer" "${P}5\r\nhello\r\n0\r\nX-A: 1\r\n 2\r\n\r\n"
	expect_status 400 "trailer without a name" "${P}5\r\nhello\r\n0\r\n: x\r\n\r\n"
	expect_status 400 "trailer after a space" "${P}5\r\nhello\r\n0\r\n X-A: 1\r\n\r\n"
	expect_status 400 "trailer without colon" "${P}5\r\nhello\r\n0\r\nX-A\r\n\r\n"
	expect_status 400 "CTL in trailer" "${P}5\r\nhello\r\n0\r\nX-A: \001\r\n\r\n"
	expect_status 400 "bare LF in trailer" "${P}5\r\nhello\r\n0\r\nX-A: 1\n\r\n"
	router_log_has 'at=error code=H26'
	fails test -n "$(ls "$T/got" | grep req)"
}

@test "chunked responses are re-framed, trailers dropped; malformed ones are a 502 H17" {
	start_strict
	start_strict_router
	run send "GET /resp/ext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	# The body, exactly: our chunk lines, our last chunk, no trailer.
	[ "$(printf '%s\n' "$output" | sed -n '/^\r$/,$p' | tr -d '\r' | tr '\n' '|')" = '|3|abc|2|de|0||<<closed>>|' ]
	# A dyno's own codings go on, under our chunks.
	run send "GET /resp/gzip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	echo "$output" >&2
	grep -q '^Transfer-Encoding: gzip, chunked' <<<"$output"
	[ "$(printf '%s\n' "$output" | sed -n '/^\r$/,$p' | tr -d '\r' | tr '\n' '|')" = '|4|GZIP|0||<<closed>>|' ]
	# An HTTP/1.0 client gets the data alone, to the close.
	run send "GET /resp/ext HTTP/1.0\r\n\r\n"
	echo "$output" >&2
	fails grep -qi '^Transfer-Encoding' <<<"$output"
	[ "$(printf '%s\n' "$output" | sed -n '/^\r$/,$p' | tr -d '\r' | tr '\n' '|')" = '|abcde|<<closed>>|' ]
	for p in bad-ext bad-trailer bare-lf; do
		run send "GET /resp/$p HTTP/1.1\r\nHost: a\r\n\r\n"
		echo "$output" >&2
		[[ "${lines[0]}" == "HTTP/1.1 502 "* ]]
		router_log_has "at=error code=H17 .*path=\"/resp/$p\""
	done
}

@test "Transfer-Encoding other than chunked alone is a 501, on HTTP/1.0 a 400; chunked goes on exactly" {
	start_strict
	start_strict_router
	P='POST / HTTP/1.1\r\nHost: a\r\n'
	expect_status 501 "identity, chunked" "${P}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"
	expect_status 501 "gzip, chunked" "${P}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
	expect_status 400 "chunked, chunked" "${P}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
	expect_status 400 "chunked;x=1" "${P}Transfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n"
	expect_status 400 "chunked then gzip" "${P}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
	expect_status 400 "on HTTP/1.0" "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	router_log_has 'at=error code=H26 .*status=501'
	fails test -n "$(ls "$T/got")"
	# Lists that are just chunked are fine, and go on as "chunked".
	send "${P}X-Request-Id: hostile-request-id-0001\r\nTransfer-Encoding:  , CHUNKED ,\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n" >/dev/null
	expect_got 1 "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n$(fwd hostile-request-id-0001)\r\n2\r\nhi\r\n0\r\n\r\n"
	# Content-Length goes on as the number it framed.
	send "${P}X-Request-Id: hostile-request-id-0002\r\nContent-Length: 002\r\nConnection: close\r\n\r\nhi" >/dev/null
	expect_got 2 "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n$(fwd hostile-request-id-0002)\r\nhi"
}

@test "an absolute-form target becomes origin-form, its authority the Host the dyno and the log see" {
	start_strict
	start_strict_router
	send "GET http://b.example:8080/x?q=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0001\r\nConnection: close\r\n\r\n" >/dev/null
	expect_got 1 "GET /x?q=1 HTTP/1.1\r\nHost: b.example:8080\r\n$(fwd hostile-request-id-0001)\r\n"
	router_log_has 'host=b.example:8080 .*path="/x\?q=1"|path="/x\?q=1".*host=b.example:8080|host="b.example:8080"'
	send "GET HTTPS://c.example?z HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0002\r\nConnection: close\r\n\r\n" >/dev/null
	expect_got 2 "GET /?z HTTP/1.1\r\nHost: c.example\r\n$(fwd hostile-request-id-0002)\r\n"
	send "GET http://[::1]:80 HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0003\r\nConnection: close\r\n\r\n" >/dev/null
	expect_got 3 "GET / HTTP/1.1\r\nHost: [::1]:80\r\n$(fwd hostile-request-id-0003)\r\n"
	# HTTP/1.0 needs no Host: the authority becomes one.
	send "GET http://d.example/y HTTP/1.0\r\nX-Request-Id: hostile-request-id-0004\r\n\r\n" >/dev/null
	expect_got 4 "GET /y HTTP/1.0\r\nHost: d.example\r\n$(fwd hostile-request-id-0004)Connection: close\r\n\r\n"
}

@test "a Host that is not uri-host[:port], CONNECT, * and other targets are refused and reach no dyno" {
	start_strict
	start_strict_router
	G='GET / HTTP/1.1\r\n'
	expect_status 400 "space in Host" "${G}Host: a b\r\n\r\n"
	expect_status 400 "userinfo in Host" "${G}Host: user:pw@x\r\n\r\n"
	expect_status 400 "slash in Host" "${G}Host: x/y\r\n\r\n"
	expect_status 400 "empty port" "${G}Host: x:\r\n\r\n"
	expect_status 400 "port over 65535" "${G}Host: x:65536\r\n\r\n"
	expect_status 400 "port not digits" "${G}Host: x:8o\r\n\r\n"
	expect_status 400 "port alone" "${G}Host: :80\r\n\r\n"
	expect_status 400 "empty Host" "${G}Host: \r\n\r\n"
	expect_status 400 "two ports" "${G}Host: x:80:80\r\n\r\n"
	expect_status 400 "bad IP-literal" "${G}Host: [::1\r\n\r\n"
	expect_status 400 "bad percent" "${G}Host: a%%zz\r\n\r\n"
	expect_status 400 "userinfo in target" "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 400 "bad authority" "GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 400 "other scheme" "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 400 "fragment" "GET http://a#f HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 400 "relative target" "GET x HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 400 "asterisk" "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
	expect_status 501 "CONNECT" "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"
	router_log_has 'at=error code=H26 .*status=501'
	fails test -n "$(ls "$T/got")"
	# What is fine stays fine.
	send "GET /ok HTTP/1.1\r\nHost: A-b.example:65535\r\nX-Request-Id: hostile-request-id-0001\r\nConnection: close\r\n\r\n" >/dev/null
	expect_got 1 "GET /ok HTTP/1.1\r\nHost: A-b.example:65535\r\n$(fwd hostile-request-id-0001)\r\n"
}

# ---- clients that would hold every slot ------------------------------------

# trickle MODE ARG...: t/peers/trickle.py against the router, until READY.
trickle() {
	python3 "$PEERS/trickle.py" "$1" "$RPORT" "${@:2}" "$T/trickle.ready" \
	    >>"$T/trickle.log" 2>&1 3>&- &
	PIDS+=($!)
	TRICKLE_PID=$!
	wait_for 60 test -e "$T/trickle.ready"
}
# get_ms PATH: a GET's status and how long it took, "STATUS MS".
get_ms() {
	local t0 code
	t0=$(now_ms)
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 \
	    "http://127.0.0.1:$RPORT$1")
	echo "$code $(($(now_ms) - t0))"
}

@test "50 clients trickling 1 MB bodies hold no dyno slot: a GET is answered at once (--body-buffer)" {
	start_strict
	start_strict_router --max-inflight 2 --body-buffer 1M
	trickle body 50 1000000
	run get_ms /after
	echo "$output" >&2
	[ "${output% *}" = 200 ]
	[ "${output#* }" -lt 5000 ]
	# No trickled body reached the dyno, not even its head: it got one GET.
	cat "$T/strict.log" >&2
	[ "$(cat "$T/strict.log")" = "1 GET /after HTTP/1.1" ]
	kill -0 "$TRICKLE_PID"	# the clients are still there, and trickling
}

@test "a body over --body-buffer streams on; one under it goes whole, and again after a dead pooled connection" {
	start_strict
	start_strict_router --body-buffer 1K
	body=$(head -c 3000 /dev/zero | tr '\0' b)
	send "POST /big HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0001\r\nContent-Length: 3000\r\nConnection: close\r\n\r\n$body" >/dev/null
	expect_got 1 "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n$(fwd hostile-request-id-0001)\r\n$body"
	send "POST /chunks HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-request-id-0002\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x\r\nabc\r\n0\r\n\r\n" >/dev/null
	expect_got 2 "POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n$(fwd hostile-request-id-0002)\r\n3\r\nabc\r\n0\r\n\r\n"
	stop_daemon "$ROUTER_PID"
	# A dyno that closes a reused connection unanswered: the POST's body
	# was whole in the router, so it goes again on a fresh connection.
	python3 "$PEERS/backend.py" "$T/close.port" --name web.1 --close-reused \
	    >>"$T/close.log" 2>&1 3>&- &
	PIDS+=($!)
	wait_for 30 test -s "$T/close.port"
	DPORT=$(cat "$T/close.port")
	start_strict_router --body-buffer 1K
	run send "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	run send "POST /again HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 200 "* ]]
	grep -q '^body_len=5' <<<"$output"
	cat "$T/close.log" >&2
	[ "$(tr '\n' ' ' < "$T/close.log")" = "GET / HTTP/1.1 POST /again HTTP/1.1 POST /again HTTP/1.1 " ]
}

@test "50 open tunnels hold no request slot: a GET is served; --max-tunnels refuses one more" {
	start_strict
	start_strict_router --max-inflight 2 --max-tunnels 50
	trickle ws 50
	run get_ms /after
	echo "$output" >&2
	[ "${output% *}" = 200 ]
	[ "${output#* }" -lt 5000 ]
	run send "GET /ws/51 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	echo "$output" >&2
	[[ "${lines[0]}" == "HTTP/1.1 503 "* ]]
	router_log_has 'at=error code=H11 .*path="/ws/51"'
	kill -0 "$TRICKLE_PID"
}
