#!/usr/bin/env bats
# dyno-run: the supervisor, against the real sample app on 127.0.0.1.

load helpers

rss_over() { [ "$(state "$1" rss)" -gt "$2" ] 2>/dev/null; }
parent_is() { [ "$(ps -o ppid= -p "$1" | tr -d ' ')" = "$2" ]; }

teardown() {
	local rc=0
	common_teardown || rc=1
	[ -z "${NS:-}" ] || ip netns del "$NS" 2>/dev/null
	[ -z "${STRAY:-}" ] || kill -KILL "$STRAY" 2>/dev/null
	return "$rc"
}

# crashed_snapshot NAME: copy the state file to $APP/snap if it says crashed,
# so the keys read after come from one version of it.
crashed_snapshot() {
	cp "$APP/.dyno/run/dynos/$1" "$APP/snap" 2>/dev/null &&
	    grep -qx 'state=crashed' "$APP/snap"
}

# watch_routes / unwatch_routes: record in $APP/zero.log every moment (polled
# every 50 ms) that run/routes lists no web dyno.
watch_routes() {
	rm -f "$APP/watch.stop" "$APP/zero.log"
	( while [ ! -e "$APP/watch.stop" ] && kill -0 "$RUN_PID" 2>/dev/null; do
		grep -q '^web\.' "$APP/.dyno/run/routes" ||
		    echo "zero web routes" >>"$APP/zero.log"
		sleep 0.05
	done ) 3>&- &
	WATCHER=$!
}
unwatch_routes() {
	touch "$APP/watch.stop"
	wait "$WATCHER"
	[ ! -e "$APP/zero.log" ]
}

@test "no formation file: one web dyno, no worker (Heroku's default)" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run
	wait_for 10 has_routes 1
	[ "$(state web.1 state)" = up ]
	[ ! -e "$APP/.dyno/run/dynos/worker.1" ]
	port=$(state web.1 port)
	[ "$port" -ge "$PORT_BASE" ]
	run curl -fsS "http://127.0.0.1:$port/"
	[ "$output" = "Hello from web.1" ]
	[ ! -e "$APP/.dyno/formation" ]
}

@test "TYPE=COUNT arguments are written to the formation and kept" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	grep -qx 'web=2' "$APP/.dyno/formation"
	grep -qx 'worker=1' "$APP/.dyno/formation"
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	# A new supervisor with no arguments keeps the formation.
	start_run
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
}

@test "state files, routes and modes follow dyno(7)" {
	make_app 'web: ./app'
	# Folders there already with other modes get dyno(7)'s; under a tight
	# umask every file still gets the mode dyno(7) names.
	mkdir -p "$APP/.dyno/run/dynos" "$APP/.dyno/run/logs" "$APP/.dyno/run/health"
	chmod 755 "$APP/.dyno"
	chmod 700 "$APP/.dyno/run"
	chmod 777 "$APP/.dyno/run/dynos" "$APP/.dyno/run/logs"
	chmod 711 "$APP/.dyno/run/health"
	umask 077
	start_run web=2
	wait_for 10 has_routes 2
	umask 022
	# Keys in dyno(7)'s order (envsum, the config digest, is not in it yet).
	for d in web.1 web.2; do
		[ "$(cut -d= -f1 "$APP/.dyno/run/dynos/$d" | tr '\n' ' ')" = "name type state pid pid_start port release started restarts rss log next_start supervisor cgroup envsum command " ]
		[ "$(state $d name)" = "$d" ]
		[ "$(state $d type)" = web ]
		[ "$(state $d state)" = up ]
		[ "$(state $d pid_start)" = "$(cut -d' ' -f22 "/proc/$(state $d pid)/stat")" ]
		[ "$(state $d port)" -ge "$PORT_BASE" ]
		[ "$(state $d release)" = dev ]
		[ "$(state $d started)" -le "$(date +%s)" ]
		[ "$(state $d started)" -gt "$(( $(date +%s) - 60 ))" ]
		[ "$(state $d restarts)" = 0 ]
		[[ "$(state $d rss)" =~ ^[0-9]+$ ]]
		[ "$(state $d next_start)" = 0 ]
		[ "$(state $d supervisor)" = "$RUN_PID" ]
		[ "$(state $d cgroup)" = "" ]
		[ "$(state $d command)" = ./app ]
		[[ "$(state $d log)" == "$APP/.dyno/run/logs/$d.$RUN_PID."* ]]
		[ "$(stat -c %a "$APP/.dyno/run/dynos/$d")" = 644 ]
		[ -p "$(state $d log)" ]
		[ "$(stat -c %a "$(state $d log)")" = 600 ]
		grep -qx "$d 127.0.0.1:$(state $d port)" "$APP/.dyno/run/routes"
	done
	[ "$(state web.1 port)" != "$(state web.2 port)" ]
	[ "$(stat -c %a "$APP/.dyno")" = 700 ]
	[ "$(stat -c %a "$APP/.dyno/run")" = 755 ]
	[ "$(stat -c %a "$APP/.dyno/run/dynos")" = 755 ]
	[ "$(stat -c %a "$APP/.dyno/run/health")" = 755 ]
	[ "$(stat -c %a "$APP/.dyno/run/logs")" = 700 ]
	[ -p "$APP/.dyno/run/control" ]
	[ "$(stat -c %a "$APP/.dyno/run/control")" = 600 ]
	[ "$(stat -c %a "$APP/.dyno/run/lock")" = 644 ]
	printf '%s\n' "$RUN_PID" | cmp - "$APP/.dyno/run/lock"
	[ "$(stat -c %a "$APP/.dyno/run/routes")" = 644 ]
	[ "$(stat -c %a "$APP/.dyno/formation")" = 644 ]
	# Nothing else in the logs folder: one FIFO per live dyno.
	[ "$(ls "$APP/.dyno/run/logs" | wc -l)" = 2 ]
}

@test "dyno output is logged as app[NAME], events as heroku[NAME]" {
	make_app 'web: ./app'
	start_run
	wait_for 10 has_routes 1
	wait_for 5 log_has 'app\[web.1\]: web.1 listening on port'
	grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00 heroku\[web.1\]: State changed from starting to up$' "$APP/out.log"
	log_has 'heroku\[web.1\]: Starting process with command `./app`'
}

@test "a malformed Procfile exits non-zero naming file:line" {
	make_app 'web: ./app' 'worker ./app --worker'
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$APP/Procfile:2: "* ]]
	make_app 'web: ./app' 'web: ./other'
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"Procfile:2: duplicate process type \"web\""* ]]
}

@test "bad arguments are usage errors and change nothing" {
	make_app 'web: ./app'
	run "$BIN/dyno-run" -a "$APP" --boot-timeout soon
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid duration"* ]]
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE" nosuch=2
	[ "$status" -eq 1 ]
	[[ "$output" == *'no process type "nosuch"'* ]]
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE" web=-1
	[ "$status" -eq 1 ]
	[ ! -e "$APP/.dyno/formation" ]
	run "$BIN/dyno-run" --help
	[ "$status" -eq 0 ]
	[[ "$output" == usage:* ]]
}

@test "a second supervisor on the same app is refused" {
	make_app 'web: ./app'
	start_run
	wait_for 10 has_routes 1
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"another supervisor (pid $RUN_PID)"* ]]
	[ "$(state web.1 state)" = up ]
}

@test "TYPE=COUNT while a supervisor runs acts like dyno-scale: formation written, supervisor told" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=1 worker=0
	wait_for 10 has_routes 1
	run "$BIN/dyno-run" -a "$APP" web=2 worker+1
	[ "$status" -eq 0 ]
	grep -qx 'web=2' "$APP/.dyno/formation"
	grep -qx 'worker=1' "$APP/.dyno/formation"
	wait_for 20 has_routes 2
	wait_for 20 is_state worker.1 up
	# A bad operand changes nothing and stops nothing.
	run "$BIN/dyno-run" -a "$APP" nosuch=3
	[ "$status" -ne 0 ]
	grep -qx 'web=2' "$APP/.dyno/formation"
	[ "$(state web.1 state)" = up ]
	[ "$(state web.2 state)" = up ]
}

@test "crash restarts come at most once a second, then back off doubling to --backoff-cap" {
	make_app 'worker: echo boom; exit 1'
	start_run --backoff-cap 2s worker=1
	wait_for 20 log_count_ge 'heroku\[worker.1\]: Starting process' 5
	log_has 'State changed from up to crashed'
	# Milliseconds between consecutive starts: at least 1 s (never two
	# starts within a second), then 1 s, then 2 s, then the 2 s cap.  Only
	# lower bounds, as a slow machine only waits longer; the cap is seen
	# as less than the 4 s the next doubling would give.
	mapfile -t gaps < <(grep 'heroku\[worker.1\]: Starting process' "$APP/out.log" |
	    cut -c12-26 | awk -F: '{ t = $1*3600 + $2*60 + $3; if (NR > 1) { d = t - p; if (d < 0) d += 86400; printf "%d\n", d * 1000 } p = t }')
	echo "gaps: ${gaps[*]}"
	[ "${gaps[0]}" -ge 950 ]
	[ "${gaps[1]}" -ge 950 ]
	[ "${gaps[2]}" -ge 1950 ]
	[ "${gaps[3]}" -ge 1950 ]
	[ "${gaps[3]}" -lt 3950 ]
}

@test "no web dyno up or starting: the crashed one that had got up starts early, at most once a second" {
	make_app 'web: ./app'
	start_run --backoff-cap 60s web=1
	# Killed four times once up: backoff would hold the 4th restart 4 s.
	for k in 1 2 3 4; do
		wait_for 20 is_state web.1 up
		pid=$(state web.1 pid)
		kill -KILL "$pid"
		wait_for 10 is_state web.1 crashed
	done
	t0=$(now_ms)
	wait_for 20 is_state web.1 up
	t1=$(now_ms)
	echo "up again after $((t1 - t0))ms"
	log_has 'heroku\[web.1\]: Starting early: no web dyno is up or starting'
	[ $((t1 - t0)) -lt 2500 ]
	# Never two starts of one dyno within a second, early or not.
	mapfile -t gaps < <(grep 'heroku\[web.1\]: Starting process' "$APP/out.log" |
	    cut -c12-26 | awk -F: '{ t = $1*3600 + $2*60 + $3; if (NR > 1) { d = t - p; if (d < 0) d += 86400; printf "%d\n", d * 1000 } p = t }')
	echo "gaps: ${gaps[*]}"
	for g in "${gaps[@]}"; do [ "$g" -ge 950 ]; done
}

@test "a web dyno that never got up is not started early: a broken app backs off" {
	make_app 'web: echo broken; exit 1'
	start_run --backoff-cap 60s web=1
	wait_for 20 log_count_ge 'heroku\[web.1\]: Starting process' 4
	fails log_has 'Starting early'
}

@test "a command of plain words is exec'd directly, as runsv execs ./run; shell syntax goes to sh -c" {
	# Plain words, with and without a leading exec: the app is the dyno's
	# first process, no shell in between.
	make_app 'web: ./app' 'worker: exec ./app --worker' \
	    'shell: echo "dyno=$DYNO"; exec sleep 1000' 'builtin: cd .' \
	    'dollar: echo $DYNO'
	start_run web=1 worker=1 shell=1 builtin=1 dollar=1
	wait_for 10 has_routes 1
	wait_for 10 is_state worker.1 up
	[ "$(cat /proc/"$(state web.1 pid)"/comm)" = app ]
	[ "$(cat /proc/"$(state worker.1 pid)"/comm)" = app ]
	# Quotes and $: the shell runs it, and expands $DYNO.
	wait_for 10 log_has 'app\[shell.1\]: dyno=shell.1'
	wait_for 10 log_has 'app\[dollar.1\]: dollar.1$'
	# A shell builtin has no program to exec: sh runs it, as always.
	wait_for 10 log_has 'heroku\[builtin.1\]: Process exited with status 0'
	fails log_has 'app\[builtin.1\]: .*not found'
}

@test "a dyno that exits 0 is restarted too" {
	make_app 'worker: echo done; exit 0'
	start_run worker=1
	wait_for 10 log_count_ge 'heroku\[worker.1\]: Starting process' 2
	log_has 'heroku\[worker.1\]: Process exited with status 0'
}

@test "a planted state file: a log= that is not the dyno's FIFO is never unlinked, a name= not its own is ignored" {
	make_app 'web: ./app'
	mkdir -p "$APP/.dyno/run/dynos"
	printf 'keep me\n' >"$APP/victim"
	# A dead dyno whose log= names a file of someone else's.
	printf 'name=web.1\ntype=web\nstate=up\npid=999999\npid_start=1\nlog=%s\n' \
	    "$APP/victim" >"$APP/.dyno/run/dynos/web.1"
	# A name that would climb out of run/logs and run/health.
	printf 'name=../../x.1\ntype=web\nstate=up\npid=999998\npid_start=1\n' \
	    >"$APP/.dyno/run/dynos/web.2"
	# Its own name, but not TYPE.N.
	printf 'name=web.x\ntype=web\nstate=up\npid=999997\npid_start=1\n' \
	    >"$APP/.dyno/run/dynos/web.x"
	start_run web=1
	wait_for 10 log_has 'heroku\[web.1\]: State changed from starting to up'
	[ "$(cat "$APP/victim")" = "keep me" ]
	log_has 'heroku\[run\]: Ignoring run/dynos/web.2: its name= is not its own TYPE.N'
	[ ! -e "$APP/.dyno/run/dynos/web.2" ]
	log_has 'heroku\[run\]: Ignoring run/dynos/web.x: its name= is not its own TYPE.N'
	stop_run
	[ "$(cat "$APP/victim")" = "keep me" ]
	# A log= inside .dyno that is not a FIFO of run/logs: kept too.
	printf 'keep me\n' >"$APP/.dyno/run/keep"
	printf 'name=web.1\ntype=web\nstate=up\npid=999999\npid_start=1\nlog=%s\n' \
	    "$APP/.dyno/run/keep" >"$APP/.dyno/run/dynos/web.1"
	start_run web=1
	wait_for 10 log_count_ge 'heroku\[web.1\]: State changed from starting to up' 2
	stop_run
	[ "$(cat "$APP/.dyno/run/keep")" = "keep me" ]
}

@test "a planted run/lock or run symlink is never followed: nothing truncated or chmodded through it" {
	make_app 'web: ./app'
	mkdir -p "$APP/.dyno/run" "$APP/elsewhere"
	printf 'keep me\n' >"$APP/elsewhere/file"
	chmod 600 "$APP/elsewhere/file"
	ln -s "$APP/elsewhere/file" "$APP/.dyno/run/lock"
	run timeout 20 "$BIN/dyno-run" -a "$APP"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == "dyno-run: cannot lock $APP/.dyno/run/lock: not a regular file (a symlink is never followed)" ]]
	[ "$(cat "$APP/elsewhere/file")" = "keep me" ]
	[ "$(stat -c %a "$APP/elsewhere/file")" = 600 ]
	# A folder of .dyno planted as a symlink: not chmodded through.
	rm -rf "$APP/.dyno/run"
	chmod 700 "$APP/elsewhere"
	ln -s "$APP/elsewhere" "$APP/.dyno/run"
	run timeout 20 "$BIN/dyno-run" -a "$APP"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == "dyno-run: cannot prepare $APP/.dyno/run: "* ]]
	[ "$(stat -c %a "$APP/elsewhere")" = 700 ]
}

@test "R10: a connect that meets itself on \$PORT (nothing listening) is not a dyno up" {
	[ "$(id -u)" = 0 ] || skip "needs root for a network namespace"
	make_app 'web: exec sleep 1000'
	NS=dyno-selfconn-$$
	ip netns add "$NS"
	# Only \$PORT is left for a connect's source port: each probe of it
	# meets itself unless the probe sees that.
	ip netns exec "$NS" ip link set lo up
	ip netns exec "$NS" sysctl -q -w net.ipv4.ip_local_port_range="$PORT_BASE $PORT_BASE"
	RUN_WRAP="ip netns exec $NS" start_run --boot-timeout 1s
	wait_for 10 log_has 'heroku\[web.1\]: Error R10 (Boot timeout)'
	fails log_has 'heroku\[web.1\]: State changed from starting to up'
	fails grep -q '^web' "$APP/.dyno/run/routes"
}

@test "R10: a web dyno that never binds is killed and counted as a crash" {
	make_app 'web: exec sleep 1000'
	start_run --boot-timeout 1s --backoff-cap 60s
	wait_for 10 is_state web.1 starting
	pid=$(state web.1 pid)
	wait_for 10 log_has 'heroku\[web.1\]: Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 1 seconds of launch'
	wait_for 10 log_has 'heroku\[web.1\]: State changed from starting to crashed'
	wait_for 10 pid_gone "$pid"
	# Counted as crashes: the first restart is at once, the second waits
	# 1 s, the third 2 s, and the state file says crashed meanwhile.
	wait_for 30 log_count_ge 'heroku\[web.1\]: Starting process' 3
	wait_for 10 crashed_snapshot web.1
	grep -qx 'pid=0' "$APP/snap"
	[ "$(sed -n 's/^restarts=//p' "$APP/snap")" -ge 2 ]
	[ "$(sed -n 's/^next_start=//p' "$APP/snap")" -gt "$(sed -n 's/^started=//p' "$APP/snap")" ]
	mapfile -t waits < <(awk '/heroku\[web.1\]: State changed from starting to crashed/ { c = $1 }
	    /heroku\[web.1\]: Starting process/ && c { print c, $1; c = "" }' "$APP/out.log" |
	    while read -r a b; do echo $(( $(date -d "$b" +%s%3N) - $(date -d "$a" +%s%3N) )); done)
	echo "waits: ${waits[*]}"
	[ "${waits[1]}" -ge 950 ]
	[ "$(routes_count)" = 0 ]
	[ "$(log_count 'heroku\[web.1\]: Error R10')" -ge 2 ]
	[ "$(log_count 'heroku\[web.1\]: Stopping process with SIGKILL')" -ge 2 ]
}

@test "R12: SIGTERM ignored leads to SIGKILL after the grace" {
	make_app "worker: trap '' TERM; exec sleep 1000"
	start_run --stop-grace 1s worker=1
	wait_for 10 is_state worker.1 up
	pid=$(state worker.1 pid)
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	log_has 'heroku\[worker.1\]: Stopping all processes with SIGTERM'
	log_has 'heroku\[worker.1\]: Error R12 (Exit timeout) -> At least one process failed to exit within 1 seconds of SIGTERM'
	log_has 'heroku\[worker.1\]: Stopping remaining processes with SIGKILL'
	pid_gone "$pid"
}

@test "SIGTERM stops every dyno gracefully and exits 0" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	pids="$(state web.1 pid) $(state web.2 pid) $(state worker.1 pid)"
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	for p in $pids; do pid_gone "$p"; done
	log_has 'app\[web.1\]: web.1 stopped'
	log_has 'app\[worker.1\]: worker worker.1 stopping'
	[ "$(routes_count)" = 0 ]
	[ -z "$(ls "$APP/.dyno/run/dynos")" ]
}

@test "Process exited is logged when the dyno's last process has, not when its shell does" {
	# The shell dies at SIGTERM (143); the app it started drains for 1 s.
	make_app "worker: (trap '' TERM; sleep 1; echo drained) & exec sleep 1000"
	start_run worker=1
	wait_for 10 is_state worker.1 up
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	log_has 'app\[worker.1\]: drained'
	log_has 'heroku\[worker.1\]: Process exited with status 143'
	# In that order: the line after the app's last one.
	drained=$(grep -n 'app\[worker.1\]: drained' "$APP/out.log" | cut -d: -f1)
	exited=$(grep -n 'Process exited with status 143' "$APP/out.log" | cut -d: -f1)
	[ "$exited" -gt "$drained" ]
	[ "$(log_count 'Process exited')" = 1 ]
}

@test "R14 over the memory quota, R15 kill and replace over twice it" {
	make_app 'web: ./app'
	start_run --memory 24M --memory-interval 100ms
	wait_for 10 has_routes 1
	port=$(state web.1 port)
	pid=$(state web.1 pid)
	curl -fsS "http://127.0.0.1:$port/leak?mb=30" >/dev/null
	wait_for 10 log_has 'heroku\[web.1\]: Error R14 (Memory quota exceeded)'
	[ "$(state web.1 pid)" = "$pid" ]
	# The sample may kill it before it answers: that is the point.
	curl -sS "http://127.0.0.1:$port/leak?mb=30" >/dev/null || true
	wait_for 10 log_has 'heroku\[web.1\]: Error R15 (Memory quota vastly exceeded)'
	log_has 'heroku\[web.1\]: Process running mem=[0-9]*M([0-9.]*%)'
	wait_for 10 is_state web.1 up
	[ "$(state web.1 pid)" != "$pid" ]
	pid_gone "$pid"
}

@test "memory counts the whole dyno: a forked child's memory is the dyno's" {
	# The top process is a small shell; the memory lives in its child.
	make_app 'web: ./app & wait'
	start_run --memory 24M --memory-interval 100ms
	wait_for 10 has_routes 1
	port=$(state web.1 port)
	# The dyno may be killed before it answers: that is the point.
	curl -sS "http://127.0.0.1:$port/leak?mb=60" >/dev/null || true
	wait_for 10 log_has 'heroku\[web.1\]: Error R15 (Memory quota vastly exceeded)'
}

@test "a grandchild of a dyno dies with it" {
	make_app 'worker: sleep 1001 & sleep 1002 & wait'
	start_run worker=1
	wait_for 10 pgrep -f 'sleep 1002'
	grandchild=$(pgrep -f 'sleep 1002')
	kill -KILL "$(state worker.1 pid)"
	wait_for 10 pid_gone "$grandchild"
	wait_for 10 log_count_ge 'heroku\[worker.1\]: Starting process' 2
}

@test "memory is PSS: a pre-fork app's shared pages count once, not once per worker" {
	# A master with 48 MB, then 3 workers sharing it and 8 MB each of their
	# own: RSS summed is about 4 x 48 + 24 = 216 MB (over twice the quota,
	# R15 when RSS was summed), PSS summed about 48 + 24 = 72 MB.
	cat >"$BATS_TEST_TMPDIR/prefork.py" <<-'PY'
	import os, time
	shared = b"s" * (48 << 20)
	for _ in range(3):
	    if os.fork() == 0:
	        own = b"o" * (8 << 20)
	        time.sleep(1000)
	open("forked", "w").close()
	os.wait()
	PY
	make_app "worker: exec python3 $BATS_TEST_TMPDIR/prefork.py"
	start_run --memory 100M --memory-interval 100ms worker=1
	wait_for 10 test -e "$APP/forked"
	# A sample after the workers' own pages: PSS is above the master's 48 MB.
	wait_for 10 rss_over worker.1 $((60 * 1024))
	rss=$(state worker.1 rss)
	[ "$rss" -lt $((100 * 1024)) ]
	fails log_has 'Error R14'
	fails log_has 'Error R15'
	# ps shows the number the quota is checked against, not RSS summed.
	run "$BIN/dyno-scale" -a "$APP" --porcelain
	[ "$(cut -f6 <<<"$output")" -gt $((60 * 1024)) ]
	[ "$(cut -f6 <<<"$output")" -lt $((100 * 1024)) ]
}

@test "a child that calls setsid() is still the dyno's: its memory counts, it dies with the dyno" {
	local n=$((100000 + RANDOM))
	make_app "worker: setsid python3 -c 'import time; b = b\"x\" * (80 << 20); open(\"ready\", \"w\"); time.sleep($n)' & exec sleep 1000"
	start_run --memory 64M --memory-interval 100ms worker=1
	wait_for 10 test -e "$APP/ready"
	child=$(pgrep -f "time.sleep\\($n\\)")
	# Its own session: it left the dyno's.
	[ "$(ps -o sid= -p "$child" | tr -d ' ')" = "$child" ]
	wait_for 10 log_has 'heroku\[worker.1\]: Error R14 (Memory quota exceeded)'
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	wait_for 10 pid_gone "$child"
}

@test "an orphan that left the dyno's session is still the dyno's, and dies with it" {
	# The middle shell starts a setsid'd sleep and exits: the sleep is
	# handed to dyno-run, the subreaper, in a session of its own.
	local n=$((100000 + RANDOM))
	make_app "worker: sh -c 'setsid sleep $n & sleep 1'; exec sleep 1000"
	start_run --memory-interval 100ms worker=1
	wait_for 10 pgrep -f "^sleep $n\$"
	orphan=$(pgrep -f "^sleep $n\$")
	wait_for 10 parent_is "$orphan" "$RUN_PID"
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	pid_gone "$orphan"
}

@test "a setsid'd child started by a second thread is the dyno's: counted, and dies with it" {
	# dyno-run finds a dyno's processes down the tree from its own
	# children, thread by thread: this child is listed under the thread
	# that forked it, not under the main thread.
	local n=$((100000 + RANDOM))
	make_app "worker: exec python3 $DYNO_ROOT/t/peers/threadfork.py $n"
	start_run --memory 64M --memory-interval 100ms worker=1
	wait_for 10 test -e "$APP/ready"
	child=$(cat "$APP/ready")
	leader=$(state worker.1 pid)
	[ "$(ps -o sid= -p "$child" | tr -d ' ')" = "$child" ]
	[ "$(ps -o ppid= -p "$child" | tr -d ' ')" = "$leader" ]
	# Its 80 MB count toward the dyno's quota.
	wait_for 10 log_has 'heroku\[worker.1\]: Error R14 (Memory quota exceeded)'
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	wait_for 10 pid_gone "$child"
}

@test "an adopted dyno's setsid'd child dies with it, though it is not below the new supervisor" {
	# After a supervisor restart the dyno is not our child: its processes
	# are found in all of /proc, not down our own tree.
	local n=$((100000 + RANDOM))
	make_app "worker: setsid sleep $n & exec sleep 1000"
	start_run worker=1
	wait_for 10 pgrep -f "^sleep $n\$"
	child=$(pgrep -f "^sleep $n\$")
	[ "$(ps -o sid= -p "$child" | tr -d ' ')" = "$child" ]
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	start_run
	wait_for 10 log_has 'Adopted process'
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	wait_for 10 pid_gone "$child"
}

@test "restart web.1 starts the new one first and never leaves zero routable" {
	# A slow boot: a gap in the routes would last long enough to be seen.
	make_app 'web: sleep 0.5; exec ./app'
	start_run web=1
	wait_for 10 has_routes 1
	old=$(state web.1 pid)
	oldport=$(state web.1 port)
	# Watch the routes file the whole time the restart takes.
	watch_routes
	control restart web.1
	wait_for 10 pid_gone "$old"
	wait_for 10 is_state web.1 up
	unwatch_routes
	[ "$(state web.1 pid)" != "$old" ]
	[ "$(state web.1 port)" != "$oldport" ]
	# The new dyno was up before the old one got SIGTERM.
	up=$(grep -n 'heroku\[web.1\]: State changed from starting to up' "$APP/out.log" | tail -1 | cut -d: -f1)
	term=$(grep -n 'heroku\[web.1\]: Stopping all processes with SIGTERM' "$APP/out.log" | tail -1 | cut -d: -f1)
	[ "$up" -lt "$term" ]
	run curl -fsS "http://127.0.0.1:$(state web.1 port)/"
	[ "$output" = "Hello from web.1" ]
}

@test "restart TYPE and restart all replace every dyno" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	w1=$(state web.1 pid); w2=$(state web.2 pid); k1=$(state worker.1 pid)
	control restart web
	wait_for 10 pid_gone "$w1"
	wait_for 10 pid_gone "$w2"
	wait_for 10 is_state web.1 up
	wait_for 10 is_state web.2 up
	n1=$(state web.1 pid); n2=$(state web.2 pid)
	[ "$n1" != "$w1" ]
	[ "$n2" != "$w2" ]
	kill -0 "$n1"
	kill -0 "$n2"
	[ "$(state worker.1 pid)" = "$k1" ]
	[ "$(log_count 'heroku\[worker.1\]: Starting process')" = 1 ]
	control restart all
	wait_for 10 pid_gone "$n1"
	wait_for 10 pid_gone "$n2"
	wait_for 10 pid_gone "$k1"
	for d in web.1 web.2 worker.1; do
		wait_for 10 is_state "$d" up
		p=$(state "$d" pid)
		[ "$p" != "$n1" ]
		[ "$p" != "$n2" ]
		[ "$p" != "$k1" ]
		kill -0 "$p"
	done
	[ "$(log_count 'heroku\[web.1\]: Restarting$')" = 2 ]
	[ "$(log_count 'heroku\[web.2\]: Restarting$')" = 2 ]
	[ "$(log_count 'heroku\[worker.1\]: Restarting$')" = 1 ]
	wait_for 10 has_routes 2
	for d in web.1 web.2; do
		grep -qx "$d 127.0.0.1:$(state "$d" port)" "$APP/.dyno/run/routes"
		[ "$(curl -fsS "http://127.0.0.1:$(state "$d" port)/")" = "Hello from $d" ]
	done
}

@test "the control FIFO: a NUL or an overlong line is dropped, the next command still runs" {
	make_app 'web: ./app'
	start_run web=2
	wait_for 10 has_routes 2
	w1=$(state web.1 pid); w2=$(state web.2 pid)
	# A NUL used to hold every later command until 4 KB piled up, and the
	# tail of a line past the buffer ran as a command of its own.
	printf 'x\0\nrestart web.1\n' > "$APP/.dyno/run/control"
	wait_for 10 pid_gone "$w1"
	wait_for 10 is_state web.1 up
	# 4095 bytes fill the buffer: the old code ran what came after them.
	w1=$(state web.1 pid)
	long=$(head -c 4095 /dev/zero | tr '\0' a)
	printf '%srestart web.2\nrestart web.1\n' "$long" > "$APP/.dyno/run/control"
	# Commands run in order: once web.1 is replaced, the long line is done.
	wait_for 10 pid_gone "$w1"
	wait_for 10 is_state web.1 up
	[ "$(state web.2 pid)" = "$w2" ]
	[ "$(log_count 'heroku\[web.2\]: Restarting$')" = 0 ]
}

@test "reload after a formation edit reaches it; SIGHUP does the same" {
	make_app 'web: ./app' 'worker: ./app --worker'
	start_run web=1
	wait_for 10 has_routes 1
	printf 'web=3\nworker=1\n' > "$APP/.dyno/formation"
	control reload
	wait_for 10 has_routes 3
	wait_for 10 is_state worker.1 up
	printf 'web=1\nworker=0\n' > "$APP/.dyno/formation"
	kill -HUP "$RUN_PID"
	wait_for 10 has_routes 1
	wait_for 10 test ! -e "$APP/.dyno/run/dynos/worker.1"
	wait_for 10 test ! -e "$APP/.dyno/run/dynos/web.3"
}

@test "a broken Procfile on reload keeps the running dynos" {
	make_app 'web: ./app'
	start_run
	wait_for 10 has_routes 1
	pid=$(state web.1 pid)
	printf 'web ./app\n' > "$APP/Procfile"
	control reload
	wait_for 10 log_has 'reload failed, keeping the running dynos: .*Procfile:1:'
	[ "$(state web.1 pid)" = "$pid" ]
	has_routes 1
}

@test "stop NAME holds a dyno down until restart NAME" {
	make_app 'web: ./app'
	start_run web=2
	wait_for 10 has_routes 2
	pid=$(state web.2 pid)
	control stop web.2
	wait_for 10 is_state web.2 down
	pid_gone "$pid"
	has_routes 1
	grep -q '^web.1 ' "$APP/.dyno/run/routes"
	[ "$(state web.2 pid)" = 0 ]
	# Watch web.2's state file the whole time it is held, through a reload
	# that replaces web.1 (new config), a SIGHUP and a restart of web.1.
	( while [ ! -e "$APP/watch.stop" ] && kill -0 "$RUN_PID" 2>/dev/null; do
		s=$(state web.2 state)
		[ "$s" = down ] || echo "web.2 was [$s]" >>"$APP/held.log"
		sleep 0.05
	done ) 3>&- &
	watcher=$!
	one=$(state web.1 pid)
	printf 'COLOR=green\n' > "$APP/.dyno/config"
	control reload
	wait_for 10 pid_gone "$one"
	wait_for 10 is_state web.1 up
	one=$(state web.1 pid)
	kill -HUP "$RUN_PID"
	control restart web.1
	wait_for 10 pid_gone "$one"
	wait_for 10 is_state web.1 up
	touch "$APP/watch.stop"
	wait "$watcher"
	[ ! -e "$APP/held.log" ]
	[ "$(log_count 'heroku\[web.2\]: Starting process')" = 1 ]
	[ "$(state web.2 pid)" = 0 ]
	[ "$(routes_count)" = 1 ]
	grep -q '^web.1 ' "$APP/.dyno/run/routes"
	control restart web.2
	wait_for 10 has_routes 2
	[ "$(curl -fsS "http://127.0.0.1:$(state web.2 port)/env?name=COLOR")" = green ]
}

@test "kill -9 of dyno-run: a new one adopts the same pids, restarts none, keeps output" {
	make_app 'web: ./app' 'worker: ./app --worker'
	printf 'WORKER_INTERVAL_MS=50\n' > "$APP/.env"
	start_run web=2 worker=1
	wait_for 10 has_routes 2
	wait_for 10 is_state worker.1 up
	wait_for 10 log_has 'worker worker.1 tick 3$'
	p1=$(state web.1 pid); p2=$(state web.2 pid); pw=$(state worker.1 pid)
	routes_before=$(sort "$APP/.dyno/run/routes")
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	last=$(grep -o 'worker worker.1 tick [0-9]*$' "$APP/out.log" | tail -1 | awk '{print $4}')
	mv "$APP/out.log" "$APP/old.log"
	# The dynos live on and serve with no supervisor.
	run curl -fsS "http://127.0.0.1:$(state web.1 port)/"
	[ "$output" = "Hello from web.1" ]
	start_run
	wait_for 10 log_count_ge 'Adopted process' 3
	[ "$(state web.1 pid)" = "$p1" ]
	[ "$(state web.2 pid)" = "$p2" ]
	[ "$(state worker.1 pid)" = "$pw" ]
	fails log_has 'Starting process'
	[ "$(sort "$APP/.dyno/run/routes")" = "$routes_before" ]
	# What the worker wrote while nobody read is not lost.
	wait_for 10 log_has "app\[worker.1\]: worker worker.1 tick $((last + 1))$"
	# Adopted dynos are still watched: a crash is noticed and replaced.
	kill -KILL "$p2"
	wait_for 10 log_has 'heroku\[web.2\]: Process exited'
	wait_for 10 has_routes 2
	[ "$(state web.2 pid)" != "$p2" ]
}

@test "a dyno that died while no supervisor ran is restarted" {
	make_app 'web: ./app'
	start_run web=2
	wait_for 10 has_routes 2
	p2=$(state web.2 pid)
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	kill -KILL "$p2"
	wait_for 10 pid_gone "$p2"
	start_run
	wait_for 10 log_has 'heroku\[web.2\]: Process died while no supervisor was running'
	wait_for 10 has_routes 2
	[ "$(state web.2 pid)" != "$p2" ]
	# What its shell had started went with it.
	wait_for 10 session_empty "$p2"
}

@test "long lines are split at 10000 bytes and a partial last line is kept" {
	make_app "worker: head -c 25000 /dev/zero | tr '\\0' x; printf partial; exec sleep 1000"
	start_run worker=1
	wait_for 10 log_count_ge 'app\[worker.1\]: xxxx' 2
	stop_run
	mapfile -t lens < <(grep 'app\[worker.1\]: ' "$APP/out.log" | sed 's/^.*app\[worker.1\]: //' | awk '{ print length($0) }')
	[ "${lens[0]}" -eq 10000 ]
	[ "${lens[1]}" -eq 10000 ]
	[ "${lens[2]}" -eq 5007 ]
	grep -q 'app\[worker.1\]: x*partial$' "$APP/out.log"
}

@test "no output is lost when a dyno exits" {
	make_app 'worker: seq 1 20000; exit 3'
	start_run worker=1
	wait_for 10 log_has 'heroku\[worker.1\]: Process exited with status 3'
	stop_run
	[ "$(grep -c 'app\[worker.1\]: ' "$APP/out.log")" -ge 20000 ]
	grep -q 'app\[worker.1\]: 20000$' "$APP/out.log"
}

@test "dev mode loads .env; config vars override it; DYNO and PORT are set" {
	make_app 'web: ./app'
	printf 'GREETING="hello world"\nexport COLOR=red\n' > "$APP/.env"
	mkdir -p "$APP/.dyno" && chmod 700 "$APP/.dyno"
	printf 'COLOR=blue\nMULTI=a\\nb\n' > "$APP/.dyno/config"
	start_run
	wait_for 10 has_routes 1
	port=$(state web.1 port)
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=GREETING")" = "hello world" ]
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=COLOR")" = blue ]
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=MULTI")" = "$(printf 'a\nb')" ]
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=PORT")" = "$port" ]
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=DYNO")" = web.1 ]
}

@test "release mode runs current's code, Procfile and config snapshot" {
	# The app's own Procfile, .env and config are dev mode's: not used.
	make_app 'web: ./app'
	printf 'ONLY_DOTENV=yes\n' > "$APP/.env"
	mkdir -p "$APP/.dyno"
	printf 'RELEASE_NOTE=dev config\n' > "$APP/.dyno/config"
	mkdir -p "$APP/.dyno/releases/7/app"
	cp "$SAMPLE_APP" "$APP/.dyno/releases/7/app/app"
	# A slow boot: a gap in the routes would last long enough to be seen.
	printf 'web: sleep 0.5; exec ./app\n' > "$APP/.dyno/releases/7/Procfile"
	printf 'RELEASE_NOTE=from v7\n' > "$APP/.dyno/releases/7/config"
	printf 'version=7\n' > "$APP/.dyno/releases/7/meta"
	ln -s releases/7 "$APP/.dyno/current"
	start_run
	wait_for 10 has_routes 1
	[ "$(state web.1 release)" = v7 ]
	[ "$(state web.1 command)" = 'sleep 0.5; exec ./app' ]
	pid=$(state web.1 pid)
	[ "$(readlink "/proc/$pid/cwd")" = "$APP/.dyno/releases/7/app" ]
	port=$(state web.1 port)
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=RELEASE_NOTE")" = "from v7" ]
	fails grep -qz '^ONLY_DOTENV=' "/proc/$pid/environ"
	# A new release and a reload replace the dyno preboot-style.
	cp -a "$APP/.dyno/releases/7" "$APP/.dyno/releases/8"
	printf 'version=8\n' > "$APP/.dyno/releases/8/meta"
	printf 'RELEASE_NOTE=from v8\n' > "$APP/.dyno/releases/8/config"
	ln -sfn releases/8 "$APP/.dyno/current.tmp"
	mv -T "$APP/.dyno/current.tmp" "$APP/.dyno/current"
	watch_routes
	control reload
	wait_for 10 log_has 'heroku\[web.1\]: Restarting (new release)'
	wait_for 10 pid_gone "$pid"
	wait_for 10 state_is web.1 release v8
	wait_for 10 is_state web.1 up
	unwatch_routes
	has_routes 1
	[ "$(readlink "/proc/$(state web.1 pid)/cwd")" = "$APP/.dyno/releases/8/app" ]
	[ "$(curl -fsS "http://127.0.0.1:$(state web.1 port)/env?name=RELEASE_NOTE")" = "from v8" ]
}

@test "--one-off runs run.N attached and passes the exit status through" {
	make_app 'web: ./app'
	printf 'FOO=bar\n' > "$APP/.env"
	run "$BIN/dyno-run" -a "$APP" --one-off 'echo "$DYNO $FOO"; exit 3'
	[ "$status" -eq 3 ]
	[ "$output" = "run.1 bar" ]
	run "$BIN/dyno-run" -a "$APP" --one-off echo hi there
	[ "$status" -eq 0 ]
	[ "$output" = "hi there" ]
	# It is never restarted and leaves no state behind.
	[ ! -e "$APP/.dyno/run/dynos/run.1" ]
	run "$BIN/dyno-run" -a "$APP" --one-off 'kill -TERM $$'
	[ "$status" -eq 143 ]
}

@test "-u USER as root: an app directory, .dyno or parent USER can write is refused; --trust-app-dir runs anyway" {
	[ "$(id -u)" = 0 ] || skip "needs root for -u"
	make_app 'worker: exec sleep 1000'
	msg="can be written by nobody, who could replace .dyno under root: make it root's (and not group- or world-writable), or pass --trust-app-dir"
	chown nobody "$APP"
	run timeout 10 "$BIN/dyno-run" -a "$APP" -u nobody worker=1
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP $msg" ]
	[ ! -e "$APP/.dyno" ]
	chown root "$APP"
	chmod 777 "$APP"
	run timeout 10 "$BIN/dyno-run" -a "$APP" -u nobody worker=1
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP $msg" ]
	chmod 755 "$APP"
	mkdir -m 755 "$APP/.dyno" && chown nobody "$APP/.dyno"
	run timeout 10 "$BIN/dyno-run" -a "$APP" -u nobody worker=1
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP/.dyno $msg" ]
	rm -rf "$APP/.dyno"
	# The folder above: nobody could rename the app directory away.
	mkdir -m 755 "$APP/sub"
	cp "$APP/app" "$APP/Procfile" "$APP/sub/"
	chown nobody "$APP"
	run timeout 10 "$BIN/dyno-run" -a "$APP/sub" -u nobody worker=1
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP $msg" ]
	chown root "$APP"
	# Said so: it runs.
	chown nobody "$APP/sub"
	APP_SAVED=$APP
	APP=$APP/sub
	start_run -u nobody --trust-app-dir worker=1
	wait_for 10 is_state worker.1 up
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	APP=$APP_SAVED
}

@test "-u USER runs dynos as that user with no new privileges" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	make_app "worker: echo uid=\$(id -u) nnp=\$(grep NoNewPrivs /proc/self/status | cut -f2); exec sleep 1000"
	chmod 755 "$APP"
	start_run -u nobody worker=1
	wait_for 10 log_has "app\[worker.1\]: uid=$(id -u nobody) nnp=1"
}

@test "cycling restarts a dyno after its lifetime, preboot-style" {
	# A slow boot: a gap in the routes would last long enough to be seen.
	make_app 'web: sleep 0.5; exec ./app'
	start_run --cycle 2s --cycle-jitter 0
	wait_for 10 has_routes 1
	pid=$(state web.1 pid)
	watch_routes
	wait_for 10 log_has 'heroku\[web.1\]: Cycling'
	wait_for 10 pid_gone "$pid"
	wait_for 10 log_count_ge 'app\[web.1\]: web.1 listening on port' 2
	unwatch_routes
	# It cycles every 2 s, so what follows comes from the log, not from
	# the state file, which may describe a later replacement by now.
	mapfile -t ports < <(sed -n 's/^.*app\[web.1\]: web.1 listening on port //p' "$APP/out.log")
	[ "${ports[1]}" != "${ports[0]}" ]
	# Not before its lifetime was over, counted from the dyno's first line
	# (the supervisor takes its start time just before it logs it).
	ts() { date -d "$(grep -m1 -- "$1" "$APP/out.log" | cut -d' ' -f1)" +%s%3N; }
	[ $(( $(ts 'heroku\[web.1\]: Cycling') - $(ts 'heroku\[web.1\]: State changed from down to starting') )) -ge 1950 ]
	# The new one was up before the old one heard SIGTERM.
	cyc=$(grep -n 'heroku\[web.1\]: Cycling' "$APP/out.log" | head -1 | cut -d: -f1)
	up=$(awk -v c="$cyc" 'NR > c && /heroku\[web.1\]: State changed from starting to up/ { print NR; exit }' "$APP/out.log")
	term=$(awk -v c="$cyc" 'NR > c && /heroku\[web.1\]: Stopping all processes with SIGTERM/ { print NR; exit }' "$APP/out.log")
	[ -n "$up" ]
	[ -n "$term" ]
	[ "$up" -lt "$term" ]
}

@test "READY=1 goes to NOTIFY_SOCKET once the formation is up" {
	make_app 'web: ./app'
	sock="$APP/notify.sock"
	# The listener keeps the routes as they were when READY=1 came.
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(20)
msg = s.recv(4096).decode()
routes = open(sys.argv[3]).read()
open(sys.argv[4], "w").write(routes)
open(sys.argv[2], "w").write(msg)
' "$sock" "$APP/notify.out" "$APP/.dyno/run/routes" "$APP/routes.at.ready" 3>&- &
	listener=$!
	wait_for 10 test -S "$sock"
	NOTIFY_SOCKET="$sock" start_run web=2
	wait_for 15 test -s "$APP/notify.out"
	wait "$listener"
	grep -q '^READY=1$' "$APP/notify.out"
	[ "$(grep -c '^web\.[12] 127.0.0.1:' "$APP/routes.at.ready")" = 2 ]
}

@test "a second SIGINT kills every dyno at once" {
	make_app "worker: trap '' TERM INT; exec sleep 1000"
	start_run --stop-grace 60s worker=1
	wait_for 10 is_state worker.1 up
	pid=$(state worker.1 pid)
	kill -INT "$RUN_PID"
	wait_for 10 log_has 'Stopping all processes with SIGTERM'
	kill -INT "$RUN_PID"
	wait_for 10 pid_gone "$pid"
	wait_for 10 pid_gone "$RUN_PID"
	log_has 'Second interrupt: killing every dyno now'
	status=0
	wait "$RUN_PID" || status=$?
	RUN_PID=
	[ "$status" -eq 1 ]
}

@test "--cgroup gives each dyno its own cgroup and reads its memory.current" {
	# The machine's own cgroups are not ours to change, so this points
	# --cgroup at a plain folder and plays the kernel's part by hand.
	make_app 'web: ./app'
	mkdir "$APP/cg"
	start_run --cgroup "$APP/cg" --memory 16M --memory-interval 100ms
	wait_for 10 has_routes 1
	cg=$(state web.1 cgroup)
	[[ "$cg" == "$APP/cg/web.1."* ]]
	[ "$(cat "$cg/cgroup.procs")" = "$(state web.1 pid)" ]
	pid=$(state web.1 pid)
	echo $((40 * 1024 * 1024)) > "$cg/memory.current"
	wait_for 10 log_has 'heroku\[web.1\]: Process running mem=40M(250.0%)'
	log_has 'Error R15 (Memory quota vastly exceeded)'
	wait_for 10 pid_gone "$pid"
}

@test "--cgroup on a v1 memory folder: memory.usage_in_bytes, and SIGKILL to every pid of cgroup.procs" {
	# As above, a plain folder stands for the cgroup: the test writes what
	# the kernel would (its usage, and a process that left the dyno's
	# session and tree but not its cgroup).
	make_app 'web: ./app'
	mkdir "$APP/cg"
	start_run --cgroup "$APP/cg" --memory 16M --memory-interval 100ms
	wait_for 10 has_routes 1
	cg=$(state web.1 cgroup)
	pid=$(state web.1 pid)
	setsid sleep 1000 3>&- &
	stray=$!
	STRAY=$stray	# teardown's, should the test fail first
	echo "$stray" >> "$cg/cgroup.procs"
	echo $((24 * 1024 * 1024)) > "$cg/memory.usage_in_bytes"
	wait_for 10 log_has 'heroku\[web.1\]: Process running mem=24M(150.0%)'
	log_has 'Error R14 (Memory quota exceeded)'
	kill -0 "$stray"
	echo $((40 * 1024 * 1024)) > "$cg/memory.usage_in_bytes"
	wait_for 10 log_has 'Error R15 (Memory quota vastly exceeded)'
	wait_for 10 pid_gone "$pid"
	wait_for 10 pid_gone "$stray"
}

@test "dev mode: a config change replaces the dynos on reload" {
	make_app 'web: ./app'
	start_run
	wait_for 10 has_routes 1
	pid=$(state web.1 pid)
	mkdir -p "$APP/.dyno" && printf 'COLOR=green\n' > "$APP/.dyno/config"
	control reload
	wait_for 10 pid_gone "$pid"
	wait_for 10 has_routes 1
	[ "$(curl -fsS "http://127.0.0.1:$(state web.1 port)/env?name=COLOR")" = green ]
}

@test "the type name run is reserved for one-off dynos; PORT is not inherited" {
	make_app 'web: ./app' 'run: ./app'
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE"
	[ "$status" -eq 1 ]
	[[ "$output" == *'Procfile:2: "run" is reserved'* ]]
	make_app 'worker: echo "port=[$PORT]"; exec sleep 1000'
	PORT=1234 start_run worker=1
	wait_for 10 log_has 'app\[worker.1\]: port=\[\]'
}

@test "a supervisor restarted with a different environment adopts, restarts nothing" {
	make_app 'web: ./app'
	start_run web=1
	wait_for 10 has_routes 1
	pid=$(state web.1 pid)
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	SOMETHING_NEW=1 start_run
	wait_for 10 log_has 'Adopted process'
	[ "$(state web.1 pid)" = "$pid" ]
	stop_run
	fails log_has 'Restarting'
	log_has "heroku\[web.1\]: Adopted process $pid"
}

@test "--backoff-reset: a dyno up that long has its earlier crashes forgotten" {
	# Each run lasts 1.5 s, longer than the 1 s reset: every crash is a
	# first crash and restarts at once.  Without the reset the waits
	# would be 0, 1, 2, 4, then 8 s.
	make_app 'worker: sleep 1.5; exit 1'
	start_run --backoff-reset 1s --backoff-cap 60s worker=1
	wait_for 60 log_count_ge 'heroku\[worker.1\]: Starting process' 6
	mapfile -t waits < <(awk '/heroku\[worker.1\]: Process exited with status 1/ { c = $1 }
	    /heroku\[worker.1\]: Starting process/ && c { print c, $1; c = "" }' "$APP/out.log" |
	    while read -r a b; do echo $(( $(date -d "$b" +%s%3N) - $(date -d "$a" +%s%3N) )); done)
	echo "waits: ${waits[*]}"
	[ "${#waits[@]}" -ge 5 ]
	[ "${waits[4]}" -lt 4000 ]
}

@test "--nofile sets the dynos' soft open-file limit, lowered to the hard one" {
	make_app 'worker: exec sleep 1000'
	start_run --nofile 4321 worker=1
	wait_for 10 is_state worker.1 up
	grep -Eq '^Max open files +4321 ' "/proc/$(state worker.1 pid)/limits"
	# Above the hard limit it is lowered to it, for a one-off dyno too.
	run bash -c 'ulimit -n 3000 && exec "$0" -a "$1" --nofile 9999 --one-off "ulimit -Sn; ulimit -Hn"' "$BIN/dyno-run" "$APP"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf '3000\n3000')" ]
	run "$BIN/dyno-run" -a "$APP" --nofile 0 --one-off true
	[ "$status" -eq 2 ]
	[[ "$output" == *'--nofile: invalid "0"'* ]]
}

@test "--max: TYPE=COUNT over it is refused, a formation over it is lowered" {
	make_app 'web: ./app'
	run "$BIN/dyno-run" -a "$APP" -p "$PORT_BASE" --max 2 web=3
	[ "$status" -eq 1 ]
	[[ "$output" == *'web=3: at most 2 web dynos (see --max)'* ]]
	[ ! -e "$APP/.dyno/formation" ]
	run "$BIN/dyno-run" -a "$APP" --max 10001
	[ "$status" -eq 2 ]
	[[ "$output" == *'--max: invalid "10001"'* ]]
	# A formation file written by hand above it runs only --max dynos.
	mkdir -p "$APP/.dyno"
	printf 'web=4\n' > "$APP/.dyno/formation"
	start_run --max 2
	wait_for 10 has_routes 2
	wait_for 10 is_state web.2 up
	[ ! -e "$APP/.dyno/run/dynos/web.3" ]
	[ "$(log_count 'Starting process')" = 2 ]
	grep -qx 'web=4' "$APP/.dyno/formation"
}

@test "--one-off --release DIR runs in that release folder, not current" {
	make_app 'web: ./app'
	for n in 7 8; do
		mkdir -p "$APP/.dyno/releases/$n/app"
		printf 'web: ./app\n' > "$APP/.dyno/releases/$n/Procfile"
		printf 'NOTE=from v%s\n' "$n" > "$APP/.dyno/releases/$n/config"
		printf 'version=%s\n' "$n" > "$APP/.dyno/releases/$n/meta"
	done
	ln -s releases/7 "$APP/.dyno/current"
	run "$BIN/dyno-run" -a "$APP" --release "$APP/.dyno/releases/8" --one-off \
	    "pwd; echo \"\$NOTE\"; sed -n s/^release=//p $APP/.dyno/run/dynos/run.1"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf '%s\nfrom v8\nv8' "$(realpath "$APP/.dyno/releases/8/app")")" ]
	# Without it, current's release.
	run "$BIN/dyno-run" -a "$APP" --one-off 'echo "$NOTE"'
	[ "$output" = "from v7" ]
	# Only with --one-off.
	run "$BIN/dyno-run" -a "$APP" --release "$APP/.dyno/releases/8"
	[ "$status" -eq 2 ]
	[[ "$output" == *"--release goes with --one-off"* ]]
	run "$BIN/dyno-run" -a "$APP" --release "$APP/nosuch" --one-off true
	[ "$status" -eq 1 ]
	[[ "$output" == *"release $APP/nosuch: No such file or directory"* ]]
}

@test "--no-cycle turns off a --cycle given before it" {
	make_app 'worker: ./app --worker'
	printf 'WORKER_INTERVAL_MS=100\n' > "$APP/.env"
	start_run --cycle 1s --cycle-jitter 0 --no-cycle worker=1
	wait_for 10 is_state worker.1 up
	pid=$(state worker.1 pid)
	# 25 ticks of 100 ms: well past the 1 s it would have cycled at.
	wait_for 20 log_has 'app\[worker.1\]: worker worker.1 tick 25$'
	fails log_has 'Cycling'
	[ "$(state worker.1 pid)" = "$pid" ]
	[ "$(log_count 'Starting process')" = 1 ]
}

@test "--app and --port-base long forms; DYNO_APP names the app without -a" {
	make_app 'web: ./app'
	port=$(pick_port)
	"$BIN/dyno-run" --app "$APP" --port-base "$port" web=2 >>"$APP/out.log" 2>&1 3>&- &
	RUN_PID=$!
	wait_for 10 has_routes 2
	[ "$(state web.1 port)" = "$port" ]
	[ "$(state web.2 port)" -gt "$port" ]
	[ "$(curl -fsS "http://127.0.0.1:$port/")" = "Hello from web.1" ]
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	run env DYNO_APP="$APP" "$BIN/dyno-run" --one-off 'echo "$DYNO in $(pwd)"'
	[ "$status" -eq 0 ]
	[ "$output" = "run.1 in $APP" ]
}

@test "a dyno gets only fds 0-2, default signals, and the documented environment" {
	make_app 'web: ./app' 'worker: exec sleep 1000'
	printf 'FROM_DOTENV=dotenv\nBOTH=dotenv\n' > "$APP/.env"
	mkdir -p "$APP/.dyno"
	printf 'FROM_CONFIG=config\nBOTH=config\n' > "$APP/.dyno/config"
	# The supervisor starts with an inherited fd (7, not close-on-exec),
	# SIGUSR2 blocked and SIGUSR1 ignored, and variables meant for it.
	# Signals 32 and 33 are ignored too, through the system call: libc
	# keeps them for itself and refuses both to set and to reset them, but
	# an ignored one is inherited across exec all the same (CI starts us so).
	cat > "$APP/wrap" <<'PY'
#!/usr/bin/python3
import ctypes, os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
libc = ctypes.CDLL(None, use_errno=True)
ignore = (ctypes.c_ulong * 4)(1, 0, 0, 0)  # SIG_IGN, flags, restorer, mask
for sig in (32, 33):
    libc.syscall(13, sig, ignore, None, 8)  # x86_64 rt_sigaction
os.execv(sys.argv[1], sys.argv[1:])
PY
	chmod +x "$APP/wrap"
	RUN_WRAP="$APP/wrap" NOTIFY_SOCKET="$APP/nobody.sock" LISTEN_FDS=1 \
	    LISTEN_PID=1 DYNO_APP=/nonexistent PORT=1 DYNO=bogus SUPERVISOR_MARK=kept \
	    start_run web=1 worker=1 7>"$APP/inherited"
	wait_for 10 has_routes 1
	wait_for 10 is_state worker.1 up
	# The wrapper worked: the supervisor itself has all three.
	[ -e "/proc/$RUN_PID/fd/7" ]
	ign=$((16#$(sed -n 's/^SigIgn:\t//p' "/proc/$RUN_PID/status")))
	[ $((ign & 0x180000200)) -eq $((0x180000200)) ]	# 32, 33, SIGUSR1
	pid=$(state worker.1 pid)
	# Its shell has run the command: what we see is what the app gets.
	wait_for 10 grep -qx sleep "/proc/$pid/comm"
	[ "$(ls "/proc/$pid/fd" | sort -n | tr '\n' ' ')" = "0 1 2 " ]
	[ "$(readlink "/proc/$pid/fd/0")" = /dev/null ]
	[ "$(readlink "/proc/$pid/fd/1")" = "$(state worker.1 log)" ]
	[ "$(readlink "/proc/$pid/fd/2")" = "$(state worker.1 log)" ]
	grep -E '^(Name|Sig)' "/proc/$pid/status"
	grep -qx 'SigBlk:	0000000000000000' "/proc/$pid/status"
	grep -qx 'SigIgn:	0000000000000000' "/proc/$pid/status"
	tr '\0' '\n' < "/proc/$pid/environ" | sort > "$APP/worker.env"
	cat "$APP/worker.env"
	grep -qx 'DYNO=worker.1' "$APP/worker.env"
	grep -qx 'FROM_DOTENV=dotenv' "$APP/worker.env"
	grep -qx 'FROM_CONFIG=config' "$APP/worker.env"
	grep -qx 'BOTH=config' "$APP/worker.env"
	grep -qx 'SUPERVISOR_MARK=kept' "$APP/worker.env"
	grep -qx "PATH=$PATH" "$APP/worker.env"
	grep -qx "HOME=$HOME" "$APP/worker.env"
	fails grep -Eq '^(PORT|NOTIFY_SOCKET|LISTEN_FDS|LISTEN_PID|DYNO_APP)=' "$APP/worker.env"
	[ "$(grep -c '^DYNO=' "$APP/worker.env")" = 1 ]
	# A web dyno: the same, plus its own PORT.
	port=$(state web.1 port)
	wpid=$(state web.1 pid)
	tr '\0' '\n' < "/proc/$wpid/environ" > "$APP/web.env"
	grep -qx "PORT=$port" "$APP/web.env"
	grep -qx 'DYNO=web.1' "$APP/web.env"
	[ "$(grep -c '^PORT=' "$APP/web.env")" = 1 ]
	fails grep -Eq '^(NOTIFY_SOCKET|LISTEN_FDS|LISTEN_PID|DYNO_APP)=' "$APP/web.env"
	grep -qx 'SigBlk:	0000000000000000' "/proc/$wpid/status"
	[ "$(curl -fsS "http://127.0.0.1:$port/env?name=BOTH")" = config ]
}
