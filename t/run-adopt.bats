#!/usr/bin/env bats
# dyno-run adopting from run/dynos: a state file is something a dyno may
# have written, so a pid in it is signalled only once proven a dyno's (its
# uids, its session, its start).  The test plays the dyno user: it plants
# files naming processes it made, and checks they live and hear nothing.

load helpers

teardown() {
	local rc=0 p
	common_teardown || rc=1
	# MINE: the sessions the test made; all of each goes.
	for p in ${MINE:-}; do
		pkill -KILL -s "$p" 2>/dev/null
		{ wait "$p"; } 2>/dev/null
	done
	return "$rc"
}

# start_of PID: field 22 of /proc/PID/stat, as lib/proc.c reads it.
start_of() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f20; }
# alive PID: running, not a zombie (an orphan of the test's may wait for a
# reaper that never comes: kill -0 would still find it).
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

# noter FILE: a shell that notes in FILE every signal it can catch (KILL
# and STOP it cannot: it must be alive after), once "ready".
NOTER='for s in HUP INT QUIT USR1 USR2 TERM CONT; do
	trap "echo $s >>\"$0\"" $s
done
echo ready >>"$0"
while :; do sleep 1000 & wait $!; done'

# nobody_app: an app of one worker that dyno-run as root may run as nobody.
nobody_app() {
	make_app 'worker: exec sleep 1000'
	chmod 755 "$APP"
	nobody=$(id -u nobody)
}

# plant NAME PID START [STATE]: a state file as a dyno user could write it.
plant() {
	mkdir -p "$APP/.dyno/run/dynos"
	printf 'name=%s\ntype=%s\nstate=%s\npid=%s\npid_start=%s\nport=0\n' \
	    "$1" "${1%.*}" "${4:-up}" "$2" "$3" >"$APP/.dyno/run/dynos/$1"
}

# orphan_session USER FILE: a session whose leader (a shell as USER) exits,
# leaving a sleep in it; FILE gets "LEADER CHILD".
orphan_session() {
	local n=$((100000 + RANDOM))
	setpriv --reuid "$1" --regid "$(id -g "$1")" --clear-groups setsid sh -c \
	    'sleep '"$n"' </dev/null >/dev/null 2>&1 & echo $$ $! >"$0.tmp"; mv "$0.tmp" "$0"' \
	    "$2" </dev/null >/dev/null 2>&1 3>&- &
	wait_for 10 test -s "$2"
	read -r LEADER CHILD <"$2"
	MINE="${MINE:-} $LEADER"
	wait_for 10 pid_gone "$LEADER"
	[ "$(ps -o sid= -p "$CHILD" | tr -d ' ')" = "$LEADER" ]
}

@test "a planted state file naming a session whose leader is gone: nothing in it of another uid, or older than the dyno, is killed" {
	[ "$(id -u)" = 0 ] || skip "needs root for -u"
	nobody_app
	# worker.1: root's straggler in a session whose leader exited.
	mkdir -m 777 "$APP/w"
	orphan_session root "$APP/w/s1"
	root_leader=$LEADER root_child=$CHILD
	plant worker.1 "$root_leader" 0
	# worker.2: nobody's straggler, but older than the start the file gives.
	orphan_session nobody "$APP/w/s2"
	old_leader=$LEADER old_child=$CHILD
	plant worker.2 "$old_leader" $(( $(start_of "$old_child") + 100 ))
	start_run -u nobody --trust-app-dir worker=2
	wait_for 10 log_has "Ignoring 1 process(es) in session $root_leader of run/dynos/worker.1: not uid $nobody, or older than the dyno; not signalled"
	wait_for 10 log_has "Ignoring 1 process(es) in session $old_leader of run/dynos/worker.2: not uid $nobody, or older than the dyno; not signalled"
	# Our own dynos run instead, and stop with the supervisor.
	wait_for 10 is_state worker.1 up
	wait_for 10 is_state worker.2 up
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	alive "$root_child"
	alive "$old_child"
	[ "$(ps -o sid= -p "$root_child" | tr -d ' ')" = "$root_leader" ]
}

@test "a planted state file naming a live process with its right start time: not adopted unless it is the dynos' uid and leads its session; never signalled" {
	[ "$(id -u)" = 0 ] || skip "needs root for -u"
	nobody_app
	# A root process that leads its own session, and notes signals.
	touch "$APP/sigs"
	setsid sh -c "$NOTER" "$APP/sigs" </dev/null >/dev/null 2>&1 3>&- &
	rootp=$!
	MINE="$rootp"
	wait_for 10 grep -qx ready "$APP/sigs"
	[ "$(ps -o sid= -p "$rootp" | tr -d ' ')" = "$rootp" ]
	# A process of nobody's that is not a session's leader: not a dyno's
	# first process either.
	mkdir -m 777 "$APP/w"
	orphan_session nobody "$APP/w/s1"
	plant worker.1 "$rootp" "$(start_of "$rootp")" stopping
	plant worker.2 "$CHILD" "$(start_of "$CHILD")" stopping
	start_run -u nobody --trust-app-dir worker=2
	wait_for 10 log_has "Ignoring run/dynos/worker.1: process $rootp runs as uid 0, not the dynos' uid $nobody; not adopted, not signalled"
	wait_for 10 log_has "Ignoring run/dynos/worker.2: process $CHILD does not lead its own session; not adopted, not signalled"
	wait_for 10 is_state worker.1 up
	wait_for 10 is_state worker.2 up
	[ "$(state worker.1 pid)" != "$rootp" ]
	[ "$(state worker.2 pid)" != "$CHILD" ]
	run log_has "Adopted process"
	[ "$status" -eq 1 ]
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	alive "$rootp"
	alive "$CHILD"
	[ "$(cat "$APP/sigs")" = ready ]
}

@test "a stale state file whose pid now names another process of the dynos' own uid (pid reuse, no attacker): its session is not killed" {
	# No -u: the dynos' uid is ours, and so is the process the pid names
	# now, with a child in its session.  The file's start is older than
	# both, so only "the pid lives as another process" tells them apart.
	make_app 'worker: exec sleep 1000'
	touch "$APP/sigs"
	setsid sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 & '"$NOTER" "$APP/sigs" \
	    </dev/null >/dev/null 2>&1 3>&- &
	other=$!
	MINE="$other"
	wait_for 10 grep -qx ready "$APP/sigs"
	kid=$(pgrep -s "$other" -x sleep | head -n 1)
	[ -n "$kid" ]
	plant worker.1 "$other" 1
	start_run worker=1
	wait_for 10 log_has 'heroku\[worker.1\]: Process died while no supervisor was running'
	wait_for 10 is_state worker.1 up
	[ "$(state worker.1 pid)" != "$other" ]
	stop_run
	alive "$other"
	alive "$kid"
	[ "$(cat "$APP/sigs")" = ready ]
}

@test "a dyno of ours, adopted: a cgroup= its state file names outside --cgroup is never written to" {
	make_app 'worker: trap "" TERM; exec sleep 1000'
	start_run --stop-grace 1s worker=1
	wait_for 10 is_state worker.1 up
	pid=$(state worker.1 pid)
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	# What a dyno could write: root would kill whatever that cgroup holds.
	mkdir "$APP/victim"
	: >"$APP/victim/cgroup.kill"
	sed -i "s|^cgroup=.*|cgroup=$APP/victim|" "$APP/.dyno/run/dynos/worker.1"
	grep -qx "cgroup=$APP/victim" "$APP/.dyno/run/dynos/worker.1"
	start_run --stop-grace 1s worker=1
	wait_for 10 log_has "heroku\[worker.1\]: Adopted process $pid"
	# The adopted dyno ignores TERM: it gets a SIGKILL at the grace's end.
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	wait_for 10 pid_gone "$pid"
	[ ! -s "$APP/victim/cgroup.kill" ]
}

@test "an adopted dyno whose session holds a process of another uid: stopping it signals only its own" {
	[ "$(id -u)" = 0 ] || skip "needs root for -u"
	nobody_app
	# A leader as nobody, all four of its uids, with a root process left
	# in its session and group from before it dropped root: what a dyno
	# with a set-id program would look like, had it not no_new_privs.
	touch "$APP/sigs"
	setsid sh -c 'sh -c "$1" "$0" & exec setpriv --reuid "$2" --regid "$3" --clear-groups sleep 1000' \
	    "$APP/sigs" "$NOTER" "$nobody" "$(id -g nobody)" </dev/null >/dev/null 2>&1 3>&- &
	leader=$!
	MINE="$leader"
	wait_for 10 grep -qx ready "$APP/sigs"
	rootp=$(pgrep -s "$leader" -u 0 -x sh)
	wait_for 10 test "$(stat -c %u "/proc/$leader")" = "$nobody"
	[ "$(ps -o pgid= -p "$rootp" | tr -d ' ')" = "$leader" ]
	plant worker.1 "$leader" "$(start_of "$leader")"
	start_run -u nobody --trust-app-dir worker=1
	wait_for 10 log_has "heroku\[worker.1\]: Adopted process $leader (up)"
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	wait_for 10 pid_gone "$leader"
	alive "$rootp"
	[ "$(cat "$APP/sigs")" = ready ]
}
