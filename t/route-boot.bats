#!/usr/bin/env bats
# dyno-route while web dynos boot, crash and come back, as Heroku's router
# behaves: requests wait for a dyno that is starting (H20 at the boot
# timeout), H10 when the app crashed, H14 when it has no web dyno.  The real
# dyno-run, dyno-route and a real app (the sample app, or
# t/peers/bootapp.py when a test must see what the dyno received).

load helpers

PEERS="$BATS_TEST_DIRNAME/peers"

setup() { daemons_setup; }

teardown() { daemons_teardown; }

routes_say() { grep -qx -- "$1" "$APP/.dyno/run/routes" 2>/dev/null; }
routes_match() { grep -q -- "$1" "$APP/.dyno/run/routes" 2>/dev/null; }
rlog_has() { grep -q -- "$1" "$APP/router.log"; }
rlog_count() { grep -c -- "$1" "$APP/router.log" || true; }
restarts_ge() { [ "$(state "$1" restarts)" -ge "$2" ] 2>/dev/null; }

# put_routes LINE...: run/routes as dyno-run writes it, replaced by rename.
put_routes() {
	printf '%s\n' "$@" >"$APP/.dyno/run/routes.tmp"
	mv "$APP/.dyno/run/routes.tmp" "$APP/.dyno/run/routes"
}

# boot_procfile ARG...: one web process type, t/peers/bootapp.py logging
# what it receives to $APP/got.log.
boot_procfile() {
	printf 'web: exec python3 %s %s %s\n' "$PEERS/bootapp.py" \
	    "$APP/got.log" "$*" >"$APP/Procfile"
}

# staggered GAP_MS PATH...: one connection per PATH to the router, each
# request sent GAP_MS after the one before, so they arrive in this order;
# then "STATUS BODY" per request in that order, and the ms the last took.
staggered() {
	python3 - "$ROUTER_PORT" "$@" <<'EOF'
import socket, sys, time
port, gap, paths = int(sys.argv[1]), int(sys.argv[2]) / 1000, sys.argv[3:]
t0, socks = time.monotonic(), []
for i, p in enumerate(paths):
    if i:
        time.sleep(gap)
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(60)
    s.sendall(("GET %s HTTP/1.1\r\nHost: boot\r\nConnection: close\r\n\r\n"
               % p).encode())
    socks.append(s)
for s in socks:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    print(head.split(b" ")[1].decode(), body.decode().strip())
print("ms=%d" % ((time.monotonic() - t0) * 1000))
EOF
}

@test "requests sent while the only web dyno boots wait for it and reach it in order" {
	make_app 'web: ./app'
	boot_procfile --bind-when "$APP/go"
	# One at a time once it is up, so the dyno reads them in the
	# router's order: first come, first served.
	start_app_router --max-inflight 1
	start_run
	wait_for 10 routes_say '@web want=1 starting=1 crashed=0 restart=0'
	staggered 150 /one /two /three >"$APP/answers" 2>&1 &
	PEER_PIDS+=($!)
	wait_for 20 grep -qx 'queue=3 clients=3' "$APP/.dyno/run/router"
	touch "$APP/go"		# the dyno binds its port now
	wait_for 30 grep -q '^ms=' "$APP/answers"
	cat "$APP/answers"
	[ "$(sed -n 1,3p "$APP/answers")" = "200 web.1 /one
200 web.1 /two
200 web.1 /three" ]
	# The dyno got each once, in the order they were sent.
	[ "$(cat "$APP/got.log")" = "web.1 GET /one body=
web.1 GET /two body=
web.1 GET /three body=" ]
	[ "$(rlog_count 'status=200')" -eq 3 ]
	[ "$(rlog_count 'status=503')" -eq 0 ]
}

@test "H20 after --boot-timeout while the only web dyno never binds its port" {
	make_app 'web: ./app'
	boot_procfile --never-bind
	start_app_router --boot-timeout 1s
	start_run
	wait_for 10 routes_say '@web want=1 starting=1 crashed=0 restart=0'
	t0=$(now_ms)
	run curl -s --max-time 20 -w '\n%{http_code}' "http://127.0.0.1:$ROUTER_PORT/x"
	took=$(( $(now_ms) - t0 ))
	echo "$output took=${took}ms"
	[ "${lines[1]}" = 503 ]
	[ "${lines[0]}" = "503 Service Unavailable: App boot timeout" ]
	[ "$took" -ge 1000 ]
	[ "$took" -lt 10000 ]
	wait_for 5 rlog_has 'code=H20 desc="App boot timeout"'
	[ ! -e "$APP/got.log" ]
}

@test "H10 at once when the only web dyno crashed and its restart is beyond the boot timeout" {
	make_app 'web: exit 1'
	start_app_router --boot-timeout 1s
	start_run
	# Crash backoff: restarts at 1 s, 2 s, then 4 s after the third.
	wait_for 30 restarts_ge web.1 3
	wait_for 10 routes_match '^@web want=1 starting=0 crashed=1 restart=[1-9]'
	t0=$(now_ms)
	run curl -s --max-time 20 -w '\n%{http_code}' "http://127.0.0.1:$ROUTER_PORT/x"
	took=$(( $(now_ms) - t0 ))
	echo "$output took=${took}ms"
	[ "${lines[1]}" = 503 ]
	[ "${lines[0]}" = "503 Service Unavailable: App crashed" ]
	[ "$took" -lt 900 ]
	wait_for 5 rlog_has 'code=H10 desc="App crashed"'
}

@test "H14 at once with web=0; requests waiting for a boot get it when web goes to 0" {
	make_app 'web: ./app'
	boot_procfile --boot-ms 20000
	start_app_router
	start_run web=0
	wait_for 10 routes_say '@web want=0 starting=0 crashed=0 restart=0'
	run curl -s --max-time 20 -w '\n%{http_code}' "http://127.0.0.1:$ROUTER_PORT/x"
	echo "$output"
	[ "${lines[1]}" = 503 ]
	[ "${lines[0]}" = "503 Service Unavailable: No web dynos running" ]
	wait_for 5 rlog_has 'code=H14 desc="No web dynos running"'
	# Scaled to 1: a request waits for the booting dyno; scaled back to
	# 0 before it is up, it gets H14 then, not H20 a minute later.
	printf 'web=1\n' >"$APP/.dyno/formation"
	control reload
	wait_for 10 routes_say '@web want=1 starting=1 crashed=0 restart=0'
	curl -s --max-time 30 -o "$APP/waited.out" -w '%{http_code}\n' \
	    "http://127.0.0.1:$ROUTER_PORT/y" >"$APP/waited.code" &
	PEER_PIDS+=($!)
	wait_for 10 grep -q 'queue=1 ' "$APP/.dyno/run/router"
	printf 'web=0\n' >"$APP/.dyno/formation"
	control reload
	wait_for 10 test -s "$APP/waited.code"
	[ "$(cat "$APP/waited.code")" = 503 ]
	[ "$(cat "$APP/waited.out")" = "503 Service Unavailable: No web dynos running" ]
	[ "$(rlog_count 'code=H14')" -eq 2 ]
	[ ! -e "$APP/got.log" ]
}

@test "--queue bounds the requests waiting for a boot: H11 beyond it" {
	make_app 'web: ./app'
	boot_procfile --bind-when "$APP/go"
	start_app_router --queue 2
	start_run
	wait_for 10 routes_say '@web want=1 starting=1 crashed=0 restart=0'
	staggered 150 /a /b /c /d >"$APP/answers" 2>&1 &
	PEER_PIDS+=($!)
	wait_for 20 grep -qx 'queue=2 clients=2' "$APP/.dyno/run/router"
	wait_for 10 rlog_has 'code=H11.*path="/d"'
	touch "$APP/go"
	wait_for 30 grep -q '^ms=' "$APP/answers"
	cat "$APP/answers"
	[ "$(sed -n 1,4p "$APP/answers")" = "200 web.1 /a
200 web.1 /b
503 503 Service Unavailable: Backlog too deep
503 503 Service Unavailable: Backlog too deep" ]
	[ "$(sort "$APP/got.log")" = "web.1 GET /a body=
web.1 GET /b body=" ]
	[ "$(rlog_count 'code=H11')" -eq 2 ]
}

@test "a dyno back on the routes after a refusal is used at once, its quarantine gone with its old process" {
	make_app 'web: ./app'
	mkdir -p "$APP/.dyno/run"
	port=$(pick_port)
	put_routes "web.1 127.0.0.1:$port" '@web want=1 starting=0 crashed=0 restart=0'
	start_app_router --quarantine 60s --boot-timeout 20s
	# Listed but refusing: quarantined for a minute, H21.
	run curl -s --max-time 20 "http://127.0.0.1:$ROUTER_PORT/first"
	[ "$output" = "503 Service Unavailable: Backend connection refused" ]
	wait_for 5 rlog_has 'quarantined for 60000ms" dyno=web.1'
	# It crashed and is starting again (off the routes): a request waits.
	put_routes '@web want=1 starting=1 crashed=0 restart=0'
	wait_for 10 fails grep -q '^dyno=web.1 ' "$APP/.dyno/run/router"
	curl -s --max-time 30 -o "$APP/second.out" -w '%{http_code}\n' \
	    "http://127.0.0.1:$ROUTER_PORT/?second" >"$APP/second.code" &
	PEER_PIDS+=($!)
	wait_for 10 grep -qx 'queue=1 clients=1' "$APP/.dyno/run/router"
	# Up again at the same address: the waiting request goes to it now,
	# not after the old process's 60 s quarantine.
	PORT=$port DYNO=web.1 "$APP/app" >>"$APP/web.1.log" 2>&1 3>&- &
	PEER_PIDS+=($!)
	wait_for 10 port_listening "$port"
	t0=$(now_ms)
	put_routes "web.1 127.0.0.1:$port" '@web want=1 starting=0 crashed=0 restart=0'
	wait_for 10 test -s "$APP/second.code"
	[ "$(cat "$APP/second.code")" = 200 ]
	grep -q 'web.1' "$APP/second.out"
	[ $(( $(now_ms) - t0 )) -lt 5000 ]
	run curl -s --max-time 20 -w ' %{http_code}' "http://127.0.0.1:$ROUTER_PORT/?third"
	[[ "$output" == *"web.1"*" 200" ]]
}

@test "a request that tried a dyno and waits for a boot may take a dyno added later" {
	make_app 'web: ./app'
	mkdir -p "$APP/.dyno/run"
	dead=$(pick_port)
	put_routes "web.1 127.0.0.1:$dead" '@web want=2 starting=1 crashed=0 restart=0'
	start_app_router --boot-timeout 20s
	curl -s --max-time 30 -o "$APP/waited.out" -w '%{http_code}\n' \
	    "http://127.0.0.1:$ROUTER_PORT/?waits" >"$APP/waited.code" &
	PEER_PIDS+=($!)
	# Refused by web.1, it waits for web.2, which is starting.
	wait_for 10 rlog_has "connection refused by 127.0.0.1:$dead"
	wait_for 10 grep -qx 'queue=1 clients=1' "$APP/.dyno/run/router"
	# web.1 leaves the routes (the router frees it), then a new web.1
	# comes up elsewhere: a new dyno, which the request has not tried,
	# even if it lands where the old one was in the router's memory.
	put_routes '@web want=2 starting=2 crashed=0 restart=0'
	wait_for 10 fails grep -q '^dyno=web.1 ' "$APP/.dyno/run/router"
	port=$(pick_port)
	PORT=$port DYNO=web.1 "$APP/app" >>"$APP/web.1.log" 2>&1 3>&- &
	PEER_PIDS+=($!)
	wait_for 10 port_listening "$port"
	put_routes "web.1 127.0.0.1:$port" '@web want=2 starting=1 crashed=0 restart=0'
	wait_for 10 test -s "$APP/waited.code"
	[ "$(cat "$APP/waited.code")" = 200 ]
	grep -q 'web.1' "$APP/waited.out"
}

# Kill the session of a random web dyno that is up; the pid in $APP/kills.
kill_random_up() {
	local up=() f pid
	for f in "$APP"/.dyno/run/dynos/web.*; do
		[ -f "$f" ] || continue
		grep -qx 'state=up' "$f" || continue
		up+=("$(sed -n 's/^pid=//p' "$f")")
	done
	[ "${#up[@]}" -gt 0 ] || return 0
	pid=${up[RANDOM % ${#up[@]}]}
	[ "$pid" -gt 1 ] && pkill -KILL -s "$pid" && echo "$pid" >>"$APP/kills"
	return 0
}

@test "chaos: web dynos killed under GET and POST load, every request answered 200" {
	make_app 'web: exec ./app'
	start_app_router
	start_run web=2
	wait_for 20 has_routes 2
	start_load get "http://127.0.0.1:$ROUTER_PORT/"
	start_post_load post "http://127.0.0.1:$ROUTER_PORT/"
	wait_for 10 load_total_ge 20
	# Often both are down at once: a dyno killed again restarts only
	# after its crash backoff (1 s, then 2 s ...).
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		kill_random_up
		sleep 0.3	# the chaos schedule, not a synchronisation
	done
	wait_for 30 has_routes 2
	before=$(load_total)
	wait_for 10 load_total_ge $(( before + 10 ))
	stop_load
	echo "total=$(load_total) failed=$(load_failed) kills=$(grep -c . "$APP/kills")"
	cat "$APP"/*.codes | sort | uniq -c
	grep -o 'code=H[0-9]*' "$APP/router.log" | sort | uniq -c || true
	[ "$(grep -c . "$APP/kills")" -ge 4 ]
	[ "$(load_total)" -ge 40 ]
	[ "$(load_failed)" -eq 0 ]
	log_count_ge 'Process exited with status 137' 4
}
