#!/usr/bin/env bats
# dyno-scale: ps, scaling, restarts and the autoscaler, against a real
# supervisor, router and sample app on 127.0.0.1.

load helpers

setup() {
	LOAD_PIDS=()
	ROUTER_PID= HEALTH_PID= AUTO_PID=
}

teardown() { daemons_teardown; }

scale() { "$BIN/dyno-scale" -a "$APP" "$@"; }
formation_is() { [ "$(cat "$APP/.dyno/formation" 2>/dev/null)" = "$(printf '%s\n' "$@")" ]; }
ps_has() { scale | grep -Eq -- "$1"; }
# How many web dynos the formation file asks for.
formation_web() { sed -n 's/^web=//p' "$APP/.dyno/formation" 2>/dev/null; }
formation_web_ge() { [ "$(formation_web)" -ge "$1" ] 2>/dev/null; }
auto_has() { grep -q -- "$1" "$APP/auto.log"; }
auto_count_ge() { [ "$(grep -Ec -- "$1" "$APP/auto.log")" -ge "$2" ]; }
# At least N lines matching PATTERN after the first line matching AFTER.
auto_count_after_ge() {
	[ "$(sed -n "/$1/,\$p" "$APP/auto.log" | grep -c -- "$2")" -ge "$3" ]
}
# The dyno NAME is up under a pid other than OLD.
replaced() { [ "$(state "$1" pid)" != "$2" ] && is_state "$1" up; }

@test "ps: one block per type, a line per dyno, crashed ones say when they start again" {
	make_app 'web: ./app' 'worker: ./app --worker' 'crash: echo boom; exit 1'
	start_run web=2 worker=1 crash=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	run scale
	[ "$status" -eq 0 ]
	echo "$output"
	[ "${lines[0]}" = '=== crash (1): echo boom; exit 1' ]
	ts='[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \+0000 \(~ [0-9]+s ago\)'
	for n in 1 2; do
		port=$(state web.$n port)
		grep -Eqx "web\.$n: up $ts  port=$port release=dev rss=([0-9]+MB|-) restarts=0 health=-" <<<"$output"
	done
	grep -qx '=== web (2): ./app' <<<"$output"
	grep -qx '=== worker (1): ./app --worker' <<<"$output"
	grep -Eqx "worker\.1: up $ts  release=dev rss=([0-9]+MB|-) restarts=0 health=-" <<<"$output"
	# A blank line between the blocks, none anywhere else.
	[ "$(grep -c '^$' <<<"$output")" = 2 ]
	# The started time is the dyno's own, in UTC.
	started=$(state web.1 started)
	grep -q "^web.1: up $(date -u -d "@$started" '+%Y/%m/%d %H:%M:%S') +0000" <<<"$output"
	# A crashed dyno says when it starts again instead of port and memory.
	wait_for 15 ps_has "^crash\.1: crashed $ts  next start in [0-9]+s$"
	# A probe's verdict shows up in the health column...
	run "$BIN/dyno-health" -a "$APP" --once --path /nosuch
	[ "$status" -eq 1 ]
	run scale
	grep -Eq '^web\.1: up .* restarts=0 health=fail$' <<<"$output"
	grep -Eq '^web\.2: up .* restarts=0 health=fail$' <<<"$output"
	# ...for that process only, not for the one that replaced it.
	old=$(state web.1 pid)
	scale --restart web.1
	wait_for 10 replaced web.1 "$old"
	run scale
	grep -Eq '^web\.1: up .* restarts=[0-9]+ health=-$' <<<"$output"
	grep -Eq '^web\.2: up .* restarts=0 health=fail$' <<<"$output"
	"$BIN/dyno-health" -a "$APP" --once >/dev/null
	run scale
	grep -Eq '^web\.1: up .* restarts=[0-9]+ health=ok$' <<<"$output"
}

@test "ps: with no supervisor the state is last known; an old release names the current one; no rss before a sample" {
	make_app 'web: ./app' 'worker: ./app --worker'
	mkdir -p "$APP/src"
	cp "$APP/app" "$APP/Procfile" "$APP/src/"
	"$BIN/dyno-deploy" -a "$APP" --no-wait "$APP/src" >/dev/null
	# rss=0 in the file means not sampled yet: shown as "-", not 0MB.
	start_run --memory-interval 60s web=1 worker=1
	wait_for 10 has_routes 1
	wait_for 10 is_state worker.1 up
	run scale
	echo "$output"
	grep -Eq '^web\.1: up .* release=v1 rss=- restarts=0 health=-$' <<<"$output"
	fails grep -q 'last known' <<<"$output"
	# The supervisor dies; its dynos and their files stay behind.
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	"$BIN/dyno-deploy" -a "$APP" --no-wait config:set COLOR=blue >/dev/null
	run scale
	echo "$output"
	[ "${lines[0]}" = '(no supervisor running: the last known state of each dyno, marked "last known")' ]
	grep -Eq '^web\.1: up \(last known\) .* release=v1 \(current v2\) rss=- ' <<<"$output"
	grep -Eq '^worker\.1: up \(last known\) .* release=v1 \(current v2\) ' <<<"$output"
	kill_dynos
}

@test "ps: a type's header counts the dynos of the formation, not one on its way out" {
	make_app 'web: trap "sleep 3; exit 0" TERM; ./app & wait; wait'
	start_run --stop-grace 10s web=2
	wait_for 10 has_routes 2
	scale web=1 >/dev/null
	wait_for 10 is_state web.2 stopping
	run scale
	echo "$output"
	grep -qx '=== web (1): .*' <<<"$output"
	grep -Eq '^web\.2: stopping ' <<<"$output"
}

@test "ps --porcelain: one tab-separated line per dyno, fields in a fixed order" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	run scale --porcelain
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	# name type state pid port rss_kb restarts release started health
	expect=""
	for d in web.1 web.2 worker.1; do
		expect+="$d	${d%.*}	up	$(state $d pid)	$(state $d port)	[0-9]+	0	dev	$(state $d started)	-"$'\n'
	done
	i=0
	for d in web.1 web.2 worker.1; do
		line=$(sed -n "$((i + 1))p" <<<"$expect")
		[[ "${lines[$i]}" =~ ^$line$ ]]
		i=$((i + 1))
	done
	# No header, no blank line, exactly ten fields each.
	[ "$(printf '%s\n' "$output" | awk -F'\t' 'NF != 10' | wc -l)" = 0 ]
	# Done with this app: its supervisor and dynos go before the next.
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	kill_dynos
	rm -rf "$APP"
	# No dynos: no output at all, still success.
	make_app 'web: ./app'
	run scale --porcelain
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run scale
	[ "$status" -eq 0 ]
	[[ "$output" == "No dynos on $APP"* ]]
	[[ "$output" == *"no supervisor runs it"* ]]
}

@test "web=3 worker=1, web+2, web-1, web=0 change the formation and the dynos" {
	make_app 'web: ./app' 'worker: ./app --worker'
	printf 'WORKER_INTERVAL_MS=100\n' > "$APP/.env"	# a worker that stops at once
	start_run
	wait_for 10 has_routes 1
	run scale web=3 worker=1 --wait
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 'Scaling dynos... done, now running web at 3, worker at 1' ]
	[[ "${lines[1]}" =~ ^Formation\ reached\ in\ [0-9.]+s$ ]]
	formation_is web=3 worker=1
	has_routes 3
	is_state worker.1 up
	[ "$(stat -c %a "$APP/.dyno/formation")" = 644 ]

	run scale web+2 --wait=20
	[ "$status" -eq 0 ]
	formation_is web=5 worker=1
	has_routes 5

	run scale web-1 --wait
	[ "$status" -eq 0 ]
	formation_is web=4 worker=1
	has_routes 4
	[ ! -e "$APP/.dyno/run/dynos/web.5" ]

	run scale web=0 worker-1 --wait
	[ "$status" -eq 0 ]
	formation_is web=0 worker=0
	has_routes 0
	[ -z "$(ls "$APP/.dyno/run/dynos")" ]

	# Without --wait the supervisor still gets there, on its own time.
	run scale web=2
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	wait_for 10 has_routes 2
}

@test "with no supervisor the formation is still written, and it says so" {
	make_app 'web: ./app' 'worker: ./app --worker'
	run scale web=2 worker=1
	[ "$status" -eq 0 ]
	[[ "$output" == *"No supervisor runs $APP: the formation is saved for the next dyno-run."* ]]
	formation_is web=2 worker=1
	[ "$(stat -c %a "$APP/.dyno")" = 700 ]
	# Waiting for what nobody runs fails at once rather than at the deadline.
	run scale web+1 --wait=30
	[ "$status" -ne 0 ]
	formation_is web=3 worker=1
	# The next supervisor runs what was saved.
	start_run
	wait_for 10 has_routes 3
	wait_for 10 is_state worker.1 up
}

@test "bad arguments change nothing and exit non-zero with one line" {
	make_app 'web: ./app' 'worker: ./app --worker' 'my-type: ./app --worker'
	start_run web=2
	wait_for 10 has_routes 2
	cp -p "$APP/.dyno/formation" "$APP/formation.before"
	pids="$(state web.1 pid) $(state web.2 pid)"
	for args in 'nosuch=1' 'web=1 nosuch=1' 'web-3' 'web=-1' 'web=abc' 'web=' \
	    '=2' 'web' 'web=1x' 'web=1.5' 'web=0x2' 'web=+1' 'web+-1' 'web=101' \
	    'web+99' 'worker=2 web=101' 'release=1' '--max 3 web=4'; do
		run scale $args
		echo "dyno-scale $args -> $status: $output"
		[ "$status" -ne 0 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ "${lines[0]}" == dyno-scale:* ]]
		cmp "$APP/formation.before" "$APP/.dyno/formation"
	done
	run scale web=101
	[ "$output" = 'dyno-scale: web=101: at most 100 web dynos (see --max)' ]
	run scale web-3
	[ "$output" = 'dyno-scale: web-3: would make -1 web dynos' ]
	run scale nosuch=1
	[ "$output" = 'dyno-scale: nosuch=1: no process type "nosuch" in the Procfile' ]
	# Option errors are usage errors.
	for args in '--bogus' '--wait=soon web=1' '--max -1 web=1' \
	    '--restart web.1 web=2' '--stop web' '--auto web --max 2'; do
		run scale $args
		echo "dyno-scale $args -> $status: $output"
		[ "$status" -eq 2 ]
		cmp "$APP/formation.before" "$APP/.dyno/formation"
	done
	# Nothing moved: same dynos, same routes, same file (even its time).
	[ "$(state web.1 pid) $(state web.2 pid)" = "$pids" ]
	has_routes 2
	[ "$(stat -c %Y "$APP/.dyno/formation")" = "$(stat -c %Y "$APP/formation.before")" ]
	stop_run
	rm -rf "$APP"
	# With no formation file, a bad argument does not make one.
	make_app 'web: ./app' 'my-type: ./app --worker'
	run scale web=-1
	[ "$status" -ne 0 ]
	[ ! -e "$APP/.dyno" ]
	# A '-' in a type name is not the operator; --max raises the cap.
	run scale my-type=2 --max 200 web=150
	[ "$status" -eq 0 ]
	formation_is web=150 my-type=2
	run scale my-type-1
	[ "$status" -eq 0 ]
	formation_is web=150 my-type=1
}

@test "--wait exits 0 when the formation is reached, non-zero when not in time" {
	# Reaching it is covered above; here a web dyno that never binds (and
	# is given a minute to) is never routable, so --wait gives up.
	make_app 'web: exec sleep 1000'
	start_run --boot-timeout 60s
	wait_for 10 is_state web.1 starting
	t0=$(now_ms)
	run scale web=2 --wait=2
	t1=$(now_ms)
	echo "$output"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = 'Scaling dynos... done, now running web at 2' ]
	[ "${lines[1]}" = 'dyno-scale: formation not reached within 2s' ]
	[ $((t1 - t0)) -ge 2000 ]
	[ $((t1 - t0)) -lt 6000 ]
	formation_is web=2
	wait_for 10 is_state web.2 starting
	has_routes 0
}

@test "--restart NAME, --restart TYPE and --stop NAME go through the supervisor" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	w1=$(state web.1 pid); w2=$(state web.2 pid); k1=$(state worker.1 pid)
	run scale --restart web.1
	[ "$status" -eq 0 ]
	wait_for 10 pid_gone "$w1"
	wait_for 10 is_state web.1 up
	[ "$(state web.2 pid)" = "$w2" ]
	[ "$(state worker.1 pid)" = "$k1" ]
	log_has 'heroku\[web.1\]: Restarting'

	# --restart web: every web dyno, preboot-style: never zero routable.
	w1=$(state web.1 pid)
	( while [ ! -e "$APP/watch.stop" ]; do
		[ "$(routes_count)" -ge 1 ] || echo "zero routes" >>"$APP/zero.log"
		sleep 0.05
	done ) 3>&- &
	watcher=$!
	run scale --restart=web
	[ "$status" -eq 0 ]
	wait_for 10 pid_gone "$w1"
	wait_for 10 pid_gone "$w2"
	wait_for 10 has_routes 2
	touch "$APP/watch.stop"
	wait "$watcher"
	[ ! -e "$APP/zero.log" ]
	[ "$(state worker.1 pid)" = "$k1" ]

	run scale --stop web.2
	[ "$status" -eq 0 ]
	wait_for 10 is_state web.2 down
	has_routes 1
	# Held down: no restart until asked for one.
	run scale
	grep -q '^web.2: down ' <<<"$output"
	run scale --restart web.2
	[ "$status" -eq 0 ]
	wait_for 10 has_routes 2

	# --restart with no name restarts all.
	k1=$(state worker.1 pid)
	run scale --restart
	[ "$status" -eq 0 ]
	wait_for 10 pid_gone "$k1"
	wait_for 10 is_state worker.1 up
}

@test "--restart and --stop with no supervisor fail and say why" {
	make_app 'web: ./app'
	run scale --restart web.1
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-scale: no supervisor runs $APP" ]
	run scale --stop web.1
	[ "$status" -eq 1 ]
	# After a supervisor has gone, its FIFO has no reader: same answer.
	start_run
	wait_for 10 has_routes 1
	stop_run
	run scale --restart web
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-scale: no supervisor runs $APP" ]
}

@test "scaling up and down under load through the router fails no request" {
	make_app 'web: ./app'
	start_run --stop-grace 10s web=1
	wait_for 10 has_routes 1
	start_app_router
	start_load a "http://127.0.0.1:$ROUTER_PORT/"
	start_load b "http://127.0.0.1:$ROUTER_PORT/slow?ms=50"
	start_load c "http://127.0.0.1:$ROUTER_PORT/slow?ms=200"
	# POSTs are never sent again: a dyno stopped before it answered shows.
	start_post_load p1 "http://127.0.0.1:$ROUTER_PORT/slow?ms=200"
	start_post_load p2 "http://127.0.0.1:$ROUTER_PORT/slow?ms=200"
	wait_for 30 load_total_ge 20
	run scale web=5 --wait=30
	[ "$status" -eq 0 ]
	n=$(load_total)
	wait_for 60 load_total_ge $((n + 20))
	# The new dynos take traffic too.
	wait_for 10 grep -q 'dyno=web.5' "$APP/router.log"
	run scale web=1 --wait=30
	[ "$status" -eq 0 ]
	n=$(load_total)
	wait_for 60 load_total_ge $((n + 20))
	stop_load
	echo "requests: $(load_total), failed: $(load_failed)"
	sort "$APP"/*.codes | uniq -c
	[ "$(load_failed)" = 0 ]
	[ "$(cat "$APP"/p?.codes | grep -c '^200$')" -ge 10 ]
	has_routes 1
	fails grep -q 'at=error' "$APP/router.log"
	# The router sends a request again when a reused connection closes
	# unanswered, so the codes alone may not show a dyno cut short: each
	# one scaled away finished and said so itself, never killed.
	for n in 2 3 4 5; do
		wait_for 10 log_has "app\[web.$n\]: web.$n stopped"
	done
	fails log_has 'Error R12'
}

@test "autoscaling: p95 over target scales web up to --max, a quiet router scales it down to --min" {
	make_app 'web: ./app'
	start_run --stop-grace 5s
	wait_for 10 has_routes 1
	start_app_router
	"$BIN/dyno-scale" -a "$APP" --auto web --min 1 --max 2 --p95 100ms \
	    --interval 1s --up-every 2s --down-every 4s >>"$APP/auto.log" 2>&1 3>&- &
	AUTO_PID=$!
	wait_for 5 auto_has 'autoscaling web between 1 and 2 toward p95 100ms'
	for c in 1 2 3 4; do
		start_load "c$c" "http://127.0.0.1:$ROUTER_PORT/slow?ms=300"
	done
	wait_for 15 formation_web_ge 2
	auto_has 'heroku\[autoscale\]: at=info decision=up web=1->2 p95=[0-9]*ms target=100ms requests=[0-9]* reason="p95 over target"'
	wait_for 10 has_routes 2
	# At --max with p95 still over the target, for longer than --up-every:
	# it holds.
	wait_for 20 auto_count_ge 'decision=hold web=2->2 p95=([2-9][0-9]{2}|[0-9]{4,})ms' 3
	stop_load
	[ "$(load_failed)" = 0 ]
	wait_for 20 auto_has "decision=down web=2->1"
	auto_has 'reason="p95 under half the target"'
	wait_for 10 has_routes 1
	formation_is "web=1"
	# At --min, quiet for longer than --down-every: it holds.
	wait_for 20 auto_count_after_ge 'decision=down' 'decision=hold web=1->1 ' 6
	# Never above --max, never below --min.
	fails grep -Eq 'web=[0-9]+->(0|[3-9])' "$APP/auto.log"
	stop_daemon "$AUTO_PID"
	AUTO_PID=
	[ "$DAEMON_STATUS" -eq 0 ]
}

@test "web+1 counts from Heroku's default of one web when the formation lacks web" {
	make_app 'web: ./app' 'worker: ./app --worker'
	mkdir -p "$APP/.dyno" && printf 'worker=1\n' > "$APP/.dyno/formation"
	run "$BIN/dyno-scale" -a "$APP" web+1
	[ "$status" -eq 0 ]
	grep -qx 'web=2' "$APP/.dyno/formation"
}

@test "--app, the long form, names the app from another folder" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=1
	wait_for 10 has_routes 1
	cd "$BATS_TEST_TMPDIR"
	run "$BIN/dyno-scale" --app "$APP" web=2 worker=1 --wait=20
	echo "$output"
	[ "$status" -eq 0 ]
	formation_is web=2 worker=1
	has_routes 2
	run "$BIN/dyno-scale" --app "$APP" --porcelain
	[ "$status" -eq 0 ]
	[ "$(cut -f1 <<<"$output" | paste -sd' ')" = "web.1 web.2 worker.1" ]
	[ ! -e "$BATS_TEST_TMPDIR/.dyno" ]
}

@test "-h and --help print the usage and exit 0, and change nothing" {
	make_app 'web: ./app'
	for h in -h --help; do
		run scale "$h"
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == 'usage: dyno-scale '* ]]
		[[ "$output" == *'--down-every DUR'* ]]
	done
	[ ! -e "$APP/.dyno" ]
}
