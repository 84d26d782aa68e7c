#!/usr/bin/env bats
# dyno-run with a real pre-fork app: gunicorn (Debian's package) with 3
# workers serving a small Flask app.  Its workers share the pages the master
# loaded, so the resident set summed over the processes counts them once per
# process; dyno-run must count them once (PSS), as a memory cgroup does.

load helpers

setup() {
	LOAD_PIDS=() PEER_PIDS=()
	ROUTER_PID= HEALTH_PID= AUTO_PID=
}

teardown() { daemons_teardown; }

need_gunicorn() {
	command -v gunicorn >/dev/null ||
	    skip "gunicorn is not installed (t/deps.sh installs it)"
	/usr/bin/python3 -c 'import flask' 2>/dev/null ||
	    skip "python3-flask is not installed (t/deps.sh installs it)"
}

# make_prefork_app: $APP with a Flask app under gunicorn, 3 workers.  /leak
# keeps MB more megabytes (written, so resident) in the worker it reaches.
make_prefork_app() {
	need_gunicorn
	make_app 'web: exec gunicorn -w 3 -b 127.0.0.1:$PORT prefork:app'
	cat >"$APP/prefork.py" <<-'PY'
	from flask import Flask, request
	app = Flask(__name__)
	kept = []
	@app.route("/")
	def index():
	    return "ok\n"
	@app.route("/leak")
	def leak():
	    mb = int(request.args.get("mb", "16"))
	    kept.append(b"x" * (mb << 20))
	    return "kept\n"
	PY
}

# The dyno's processes: its session (gunicorn keeps its workers in it).
dyno_pids() { pgrep -s "$(state web.1 pid)"; }
# Three workers under the master, and the app answers.
booted() {
	local master
	master=$(state web.1 pid)
	[ "$(pgrep -c -P "$master")" = 3 ] &&
	    curl -fsS "http://127.0.0.1:$(state web.1 port)/" >/dev/null 2>&1
}
# measure: PSS_KB and RSS_KB, the sums over the dyno's processes, read here
# from /proc the way the kernel reports them.
measure() {
	local p v
	PSS_KB=0 RSS_KB=0
	for p in $(dyno_pids); do
		v=$(sed -n 's/^Pss: *\([0-9]*\) kB/\1/p' "/proc/$p/smaps_rollup" 2>/dev/null)
		PSS_KB=$((PSS_KB + ${v:-0}))
		v=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\) kB/\1/p' "/proc/$p/status" 2>/dev/null)
		RSS_KB=$((RSS_KB + ${v:-0}))
	done
}
# The megabytes of the last "Process running mem=NM(...)" line.
last_mem_mb() {
	grep 'heroku\[web.1\]: Process running mem=' "$APP/out.log" | tail -n 1 |
	    sed 's/.*mem=\([0-9]*\)M.*/\1/'
}
# |A - B| < C
near() { local d=$(($1 - $2)); [ "${d#-}" -lt "$3" ]; }
rss_set() { [ -n "$(state web.1 rss)" ] && [ "$(state web.1 rss)" -gt 0 ]; }

@test "an idle gunicorn app under a quota between its PSS and RSS sums gets no R14; ps shows PSS" {
	make_prefork_app
	# Start at the largest quota, then measure, then restart at the chosen one.
	start_run --memory-interval 100ms
	wait_for 20 booted
	measure
	echo "idle gunicorn, 3 workers: PSS summed ${PSS_KB} kB, RSS summed ${RSS_KB} kB"
	gap=$((RSS_KB - PSS_KB))
	[ "$gap" -gt 8192 ] || skip "RSS and PSS sums too close for a quota between them (${gap} kB)"
	stop_run
	quota=$((PSS_KB + gap / 2))
	start_run --memory "${quota}K" --memory-interval 100ms
	wait_for 20 booted
	wait_for 10 rss_set
	measure
	echo "quota ${quota} kB; now PSS ${PSS_KB} kB, RSS ${RSS_KB} kB; dyno-run says $(state web.1 rss) kB"
	# Twenty samples and more: no R14, no R15.
	t_end=$(( $(now_ms) + 20 * 100 ))
	while [ "$(now_ms)" -lt "$t_end" ]; do
		fails log_has 'Error R1[45]'
		sleep 0.1
	done
	fails log_has 'Error R1[45]'
	fails log_has 'Process running mem='
	# What dyno-run counts is the PSS sum, not the RSS sum.
	rss=$(state web.1 rss)
	near "$rss" "$PSS_KB" $((gap / 4))
	[ "$rss" -lt "$quota" ]
	run "$BIN/dyno-scale" -a "$APP" --porcelain
	near "$(cut -f6 <<<"$output")" "$PSS_KB" $((gap / 4))
}

@test "a gunicorn leak: R14 above the quota, R15 and a restart above twice it, by PSS" {
	make_prefork_app
	start_run --memory-interval 100ms
	wait_for 20 booted
	measure
	gap=$((RSS_KB - PSS_KB))
	echo "idle: PSS ${PSS_KB} kB, RSS ${RSS_KB} kB"
	[ "$gap" -gt 8192 ] || skip "RSS and PSS sums too close (${gap} kB)"
	stop_run
	# The idle app fits; two 16 MB leaks take it over the quota.  (8 MB to
	# spare after the first: a loaded machine's fresh start can weigh more.)
	quota=$((PSS_KB + 24 * 1024))
	start_run --memory "${quota}K" --memory-interval 100ms
	wait_for 20 booted
	old=$(state web.1 pid)
	port=$(state web.1 port)
	url="http://127.0.0.1:$port/leak?mb=16"
	# Below the quota: no R14.
	curl -fsS "$url" >/dev/null
	measure
	[ "$PSS_KB" -lt "$quota" ]
	wait_for 10 rss_set
	fails log_has 'Error R14'
	# Over it: R14 at every sample, mem= is the PSS sum.
	while [ "$PSS_KB" -le $((quota + 4096)) ]; do
		curl -fsS "$url" >/dev/null
		measure
	done
	wait_for 10 log_has 'heroku\[web.1\]: Error R14 (Memory quota exceeded)'
	n=$(log_count 'Process running mem=')
	wait_for 10 log_count_ge 'Process running mem=' $((n + 2))
	measure
	echo "R14 at PSS ${PSS_KB} kB (RSS ${RSS_KB} kB), quota ${quota} kB: $(grep 'Process running' "$APP/out.log" | tail -n 1)"
	near "$(last_mem_mb)" $((PSS_KB / 1024)) $((gap / 1024 / 2))
	# Up to twice the quota: R14 only.  Each step waits for two samples.
	while [ "$PSS_KB" -lt $((2 * quota - 20 * 1024)) ]; do
		curl -fsS "$url" >/dev/null
		n=$(log_count 'Process running mem=')
		wait_for 10 log_count_ge 'Process running mem=' $((n + 2))
		measure
		fails log_has 'Error R15'
		[ "$(state web.1 pid)" = "$old" ]
		near "$(last_mem_mb)" $((PSS_KB / 1024)) $((gap / 1024 / 2))
	done
	# Over twice it: R15, SIGKILL, a crash and a new process.
	for _ in 1 2 3 4; do
		curl -sS "$url" >/dev/null 2>&1 || break
		log_has 'Error R15' && break
	done
	wait_for 10 log_has 'heroku\[web.1\]: Error R15 (Memory quota vastly exceeded)'
	line=$(grep -B1 'Error R15' "$APP/out.log" | grep 'Process running mem=' | tail -n 1)
	echo "R15: $line"
	mb=$(sed 's/.*mem=\([0-9]*\)M.*/\1/' <<<"$line")
	[ "$((mb * 1024))" -gt $((2 * quota)) ]
	# Not the RSS sum: that is the PSS sum plus the shared pages again.
	[ "$((mb * 1024))" -lt $((2 * quota + 16 * 1024 + gap / 2)) ]
	log_has 'heroku\[web.1\]: Stopping process with SIGKILL'
	wait_for 20 is_state web.1 up
	[ "$(state web.1 pid)" != "$old" ]
	pid_gone "$old"
	wait_for 20 booted
}

# ---- a hung dyno, everything at its defaults -------------------------------

hlog_has() { grep -q -- "$1" "$APP/health.log"; }
# The dyno NAME is up under a pid other than OLD.
replaced() { [ "$(state "$1" pid)" != "$2" ] && is_state "$1" up; }
# Milliseconds since the epoch of a log line's timestamp.
line_ms() { date -d "$(cut -c1-32 <<<"$1" | tr T ' ')" +%s%3N; }
file_ok() { [ "$(sed -n 's/^state=//p' "$APP/.dyno/run/health/$1" 2>/dev/null)" = ok ]; }
# The longest total= of the router's lines for METHOD requests, in ms.
slowest_ms() {
	grep "heroku\[router\]: .* method=$1 " "$APP/router.log" |
	    grep -o ' total=[0-9]*ms' | tr -dc '0-9\n' | sort -n | tail -n 1
}

@test "a SIGSTOPped dyno at the defaults: replaced within 10 s, no request fails, no GET takes over 3 s" {
	make_app 'web: ./app'
	# dyno-run, dyno-route and dyno-health with their default flags.
	start_run web=4
	wait_for 10 has_routes 4
	start_app_router
	start_health
	wait_for 10 file_ok web.4
	start_load g1 "http://127.0.0.1:$ROUTER_PORT/"
	start_load g2 "http://127.0.0.1:$ROUTER_PORT/slow?ms=20"
	start_post_load p1 "http://127.0.0.1:$ROUTER_PORT/slow?ms=20"
	start_post_load p2 "http://127.0.0.1:$ROUTER_PORT/"
	wait_for 30 load_total_ge 20
	old=$(state web.4 pid)
	pkill -STOP -s "$old"
	t0=$(now_ms)
	wait_for 20 hlog_has 'heroku\[web.4\]: Restarting: health check failed'
	wait_for 20 replaced web.4 "$old"
	# The times the programs logged, not when this loop looked.
	line=$(grep 'heroku\[web.4\]: Restarting: health check failed' "$APP/health.log" | head -n 1)
	asked=$(( $(line_ms "$line") - t0 ))
	line=$(sed -n '/heroku\[web.4\]: Restarting/,$p' "$APP/out.log" |
	    grep -m 1 'heroku\[web.4\]: State changed from starting to up')
	up=$(( $(line_ms "$line") - t0 ))
	echo "restart asked ${asked}ms after the SIGSTOP; replacement up after ${up}ms"
	[ "$asked" -lt 10000 ]
	[ "$up" -lt 10000 ]
	wait_for 40 pid_gone "$old"
	n=$(load_total)
	wait_for 30 load_total_ge $((n + 20))
	stop_load
	echo "requests: $(load_total), failed: $(load_failed), slowest GET $(slowest_ms GET)ms, POST $(slowest_ms POST)ms"
	sort "$APP"/*.codes | uniq -c
	[ "$(load_failed)" = 0 ]
	[ "$(cat "$APP"/p?.codes | grep -c '^200$')" -ge 10 ]
	fails grep -q 'at=error' "$APP/router.log"
	# A GET the hung dyno holds goes elsewhere: alone it makes the dyno a
	# suspect, the probe sent after it waits too, both go to another dyno.
	[ "$(slowest_ms GET)" -lt 3000 ]
	# A POST it holds cannot go elsewhere: it waits until the dyno is
	# woken to stop, once its replacement is up.
	[ "$(slowest_ms POST)" -lt 10000 ]
}
