#!/usr/bin/env bash
# bench/supervise.sh: dyno-run beside runsv (runit) and s6-supervise (s6),
# all three in the same run, each supervising the same program (bench/sleeper.c,
# run as `exec .../bsleeper` through /bin/sh, as each of them does it).
#
#   1. crash-to-respawn: SIGKILL the supervised process KILLS times, the next
#      kill GAP_MS after the respawn was seen; time from kill to a new child
#      of the supervisor that has exec'd bsleeper (bench/probe.c polls
#      /proc/SUP/task/SUP/children every 50 us).  For dyno-run also until
#      run/dynos/worker.1 names the new pid.  Floor: the same kill, reap,
#      fork, exec done by probe itself, through sh and directly.  One probe
#      does every target round-robin (one kill of each per round, never two
#      measurements at once), so drift of a shared machine hits all alike.
#      Diagnostic: a second dyno-run started under `ulimit -n 1024`.
#   2. idle RSS (VmRSS, and its private part RssAnon) with 1 supervised process; dyno-run also with 10 dynos
#      (one process), runsv/s6 as one process's RSS x 10 (one per service).
#   3. voluntary+nonvoluntary context switches over IDLE_S idle seconds.
#   4. RSS and CPU (utime+stime) over CPU_S seconds with MANY dynos: one
#      dyno-run worker=MANY, MANY runsv, MANY s6-supervise (sums).
#
# Needs: cc, runsv (runit), s6-supervise (s6), bin/dyno-run (built if missing).
# Binds nothing.  Every process it starts is stopped by pid on exit.
#
# Usage: bench/supervise.sh            (env: KILLS GAP_MS IDLE_S CPU_S MANY)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DYNO_RUN=${DYNO_RUN:-$ROOT/bin/dyno-run}
KILLS=${KILLS:-20}
GAP_MS=${GAP_MS:-1100}
IDLE_S=${IDLE_S:-5}
CPU_S=${CPU_S:-10}
MANY=${MANY:-50}
DYNO_FLAGS=(--no-cycle --backoff-cap 0 --memory-interval 60s)
PROG=bsleeper

die() { echo "supervise.sh: $*" >&2; exit 1; }
for c in cc runsv s6-supervise awk; do
	command -v "$c" >/dev/null || die "needs $c"
done
if [[ ! -x $DYNO_RUN ]]; then
	make -C "$ROOT" >/dev/null || die "make failed"
fi
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash >= 5 (EPOCHREALTIME)"

T=$(mktemp -d "${TMPDIR:-/tmp}/supervise-bench.XXXXXX")
SUPS=()			# "pid:comm:servicedir" of every supervisor started

# Stop supervisors gracefully, so that they reap what they supervise (pid 1
# of a container may never reap an orphan): SIGTERM to dyno-run (it stops
# its dynos with SIGTERM), "dx" (down, then exit) on the control FIFO of
# runsv and s6-supervise.  Whatever is left after 10 s: SIGSTOP the
# supervisor, SIGKILL it and its children, by pid.
sup_alive() {	# pid comm: that process, and not a zombie
	local st=""
	read -r st 2>/dev/null <"/proc/$1/stat" && [[ $st == "$1 ($2) "[!Z]* ]]
}
stop_all() {
	local s p comm dir fd kids c end left
	for s in "${SUPS[@]}"; do
		IFS=: read -r p comm dir <<<"$s"
		sup_alive "$p" "$comm" || continue
		if [[ $comm == dyno-run ]]; then
			kill -TERM "$p" 2>/dev/null || true
		elif [[ -p $dir/supervise/control ]] &&
			exec {fd}<>"$dir/supervise/control"; then
			printf dx >&"$fd" || true
			exec {fd}>&-
		fi
	done
	end=$((SECONDS + 10))
	while :; do
		left=0
		for s in "${SUPS[@]}"; do
			IFS=: read -r p comm dir <<<"$s"
			sup_alive "$p" "$comm" && left=$((left + 1))
		done
		((left > 0 && SECONDS < end)) || break
		sleep 0.05
	done
	for s in "${SUPS[@]}"; do
		IFS=: read -r p comm dir <<<"$s"
		if sup_alive "$p" "$comm" && kill -STOP "$p" 2>/dev/null; then
			echo "supervise.sh: $comm $p did not stop; killing it" >&2
			kids=""
			read -r kids 2>/dev/null <"/proc/$p/task/$p/children" || true
			kill -KILL "$p" 2>/dev/null || true
			for c in $kids; do kill -KILL "$c" 2>/dev/null || true; done
		fi
		wait "$p" 2>/dev/null || true
	done
	SUPS=()
}
cleanup() {
	stop_all
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cc -O2 -o "$T/$PROG" "$ROOT/bench/sleeper.c"
cc -O2 -o "$T/probe" "$ROOT/bench/probe.c"

# ---- helpers -----------------------------------------------------------------

# Number of live children of $1 running bsleeper.
nkids() {
	local p=$1 kids="" c st n=0
	read -r kids 2>/dev/null <"/proc/$p/task/$p/children" || true
	for c in $kids; do
		read -r st 2>/dev/null <"/proc/$c/stat" || continue
		[[ $st == *"($PROG) "[!Z]* ]] && n=$((n + 1))
	done
	echo "$n"
}

# Poll until supervisor $1 has $2 running bsleeper children (deadline 15 s).
wait_kids() {
	local p=$1 want=$2 end=$((SECONDS + 15))
	until [[ $(nkids "$p") -ge $want ]]; do
		[[ -d /proc/$p ]] || die "supervisor $p died (logs in $T)"
		((SECONDS < end)) || die "supervisor $p: $want children not up in 15 s"
		sleep 0.05
	done
}

ctxt() {	# voluntary + nonvoluntary context switches of every pid given
	local p s=0
	for p; do
		s=$((s + $(awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n}' "/proc/$p/status")))
	done
	echo "$s"
}
rss() {		# sum of VmRSS in kB of every pid given
	local p s=0
	for p; do
		s=$((s + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
	done
	echo "$s"
}
anon() {	# sum of RssAnon in kB (private: heap, stack, data) of every pid
	local p s=0
	for p; do
		s=$((s + $(awk '/^RssAnon/ {print $2}' "/proc/$p/status")))
	done
	echo "$s"
}
cpu() {		# sum of utime+stime in clock ticks of every pid given
	local p s=0 st
	for p; do
		read -r st <"/proc/$p/stat"
		st=${st##*) }
		s=$((s + $(echo "$st" | awk '{print $12 + $13}')))
	done
	echo "$s"
}

# Poll until the pids given stop switching (same count over 3 x 100 ms),
# so the idle windows do not start inside start-up work.  Deadline 10 s.
wait_quiet() {
	local end=$((SECONDS + 10)) a b same=0
	a=$(ctxt "$@")
	while ((same < 3)); do
		((SECONDS < end)) || { echo "  (warning: not quiet after 10 s)" >&2; return 0; }
		sleep 0.1
		b=$(ctxt "$@")
		if [[ $a == "$b" ]]; then same=$((same + 1)); else same=0; fi
		a=$b
	done
}

# ---- starters ----------------------------------------------------------------

# dyno-run on a fresh app dir (APP, default appN) with worker=N; REPLY = pid.
start_dyno() {
	local n=$1 app=$T/${2:-app$1}
	mkdir -p "$app"
	printf 'worker: exec %s\n' "$T/$PROG" >"$app/Procfile"
	"$DYNO_RUN" -a "$app" "${DYNO_FLAGS[@]}" "worker=$n" \
		>"$app.log" 2>&1 &
	REPLY=$!
	SUPS+=("$REPLY:dyno-run:$app")
}
svcdir() {	# make service dir $1 with a run script
	mkdir -p "$1"
	printf '#!/bin/sh\nexec %s\n' "$T/$PROG" >"$1/run"
	chmod +x "$1/run"
}
start_runsv() {
	svcdir "$T/runsv/$1"
	runsv "$T/runsv/$1" >>"$T/runsv.log" 2>&1 &
	REPLY=$!
	SUPS+=("$REPLY:runsv:$T/runsv/$1")
}
start_s6() {
	svcdir "$T/s6/$1"
	s6-supervise "$T/s6/$1" >>"$T/s6.log" 2>&1 &
	REPLY=$!
	SUPS+=("$REPLY:s6-supervise:$T/s6/$1")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
kb2mb() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
field() { sed -n "s/.*\\<$1=\\([0-9.]*\\).*/\\1/p" <<<"$2" | head -n 1; }

echo "supervise.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr)"
echo "  dyno-run $DYNO_RUN ${DYNO_FLAGS[*]}"
echo "  runsv: runit $(dpkg-query -W -f='${Version}' runit 2>/dev/null || echo '?')," \
	"s6-supervise: s6 $(dpkg-query -W -f='${Version}' s6 2>/dev/null || echo '?')"
echo "  kills=$KILLS gap=${GAP_MS}ms idle=${IDLE_S}s cpu-window=${CPU_S}s many=$MANY"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1-3. one service each; dyno-run also with 10 ----------------------------

# DN is a second dyno-run started under `ulimit -n 1024`, for a diagnostic:
# its child closes fds 3..RLIMIT_NOFILE one at a time before exec
# (lib/spawn.c), so its respawn time depends on the open-file limit.
NOFILE_NOW=$(ulimit -n)
echo "start: one service each, dyno-run also worker=10 and under ulimit -n 1024 ..."
start_dyno 1;  D1=$REPLY
start_dyno 10; D10=$REPLY
start_runsv 1; R1=$REPLY
start_s6 1;    S1=$REPLY
ulimit -S -n 1024
start_dyno 1 app1n; DN=$REPLY
ulimit -S -n "$NOFILE_NOW"
wait_kids "$D1" 1; wait_kids "$D10" 10; wait_kids "$R1" 1; wait_kids "$S1" 1
wait_kids "$DN" 1
wait_quiet "$D1" "$D10" "$R1" "$S1" "$DN"
echo "idle: ${IDLE_S} s ..."
for v in D1 D10 R1 S1; do
	eval "c0_$v=\$(ctxt \"\$$v\")"
done
sleep "$IDLE_S"		# the idle window being measured
for v in D1 D10 R1 S1; do
	eval "CTX_$v=\$(( \$(ctxt \"\$$v\") - c0_$v ))"
	eval "RSS_$v=\$(rss \"\$$v\")"
	eval "ANON_$v=\$(anon \"\$$v\")"
done

# One probe, round-robin: each round kills every target once, one at a time.
echo "respawn: $KILLS rounds, each target killed ${GAP_MS} ms after its last respawn ..."
PROBE_PROGRAM=$T/$PROG "$T/probe" "$KILLS" "$GAP_MS" "$PROG" floor:sh floor:direct \
	"$D1:$T/app1/.dyno/run/dynos/worker.1" "$R1" "$DN" "$S1" >"$T/probe.out"
RESP_FSH=$(grep '^T0 ' "$T/probe.out")
RESP_FDIRECT=$(grep '^T1 ' "$T/probe.out")
RESP_D=$(grep '^T2 ' "$T/probe.out")
RESP_R=$(grep '^T3 ' "$T/probe.out")
RESP_DN=$(grep '^T4 ' "$T/probe.out")
RESP_S=$(grep '^T5 ' "$T/probe.out")
RSS2_D1=$(rss "$D1"); RSS2_R1=$(rss "$R1"); RSS2_S1=$(rss "$S1")
stop_all

# ---- 4. MANY services --------------------------------------------------------

echo "many: dyno-run worker=$MANY, $MANY runsv, $MANY s6-supervise ..."
start_dyno "$MANY"; DM=$REPLY
RM=() SM=()
for ((i = 1; i <= MANY; i++)); do
	start_runsv "m$i"; RM+=("$REPLY")
	start_s6 "m$i";    SM+=("$REPLY")
done
wait_kids "$DM" "$MANY"
for p in "${RM[@]}" "${SM[@]}"; do wait_kids "$p" 1; done
wait_quiet "$DM" "${RM[@]}" "${SM[@]}"
u0_D=$(cpu "$DM"); u0_R=$(cpu "${RM[@]}"); u0_S=$(cpu "${SM[@]}")
c0_D=$(ctxt "$DM"); c0_R=$(ctxt "${RM[@]}"); c0_S=$(ctxt "${SM[@]}")
sleep "$CPU_S"		# the window being measured
TICK=$(getconf CLK_TCK)
CPUM_D=$(( ($(cpu "$DM") - u0_D) * 1000 / TICK ))
CPUM_R=$(( ($(cpu "${RM[@]}") - u0_R) * 1000 / TICK ))
CPUM_S=$(( ($(cpu "${SM[@]}") - u0_S) * 1000 / TICK ))
CTXM_D=$(( $(ctxt "$DM") - c0_D ))
CTXM_R=$(( $(ctxt "${RM[@]}") - c0_R ))
CTXM_S=$(( $(ctxt "${SM[@]}") - c0_S ))
RSSM_D=$(rss "$DM"); RSSM_R=$(rss "${RM[@]}"); RSSM_S=$(rss "${SM[@]}")
ANONM_D=$(anon "$DM"); ANONM_R=$(anon "${RM[@]}"); ANONM_S=$(anon "${SM[@]}")
stop_all

# ---- table -------------------------------------------------------------------

md() { field median "$1"; }
mx() { field max "$1"; }
row() {	# label dyno runsv s6 -> row with ratio dyno/runsv
	printf '| %-46s | %10s | %10s | %12s | %10s |\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$3")"
}
echo
printf '| %-46s | %10s | %10s | %12s | %10s |\n' metric dyno-run runsv s6-supervise "dyno/runsv"
printf '|%s|%s:|%s:|%s:|%s:|\n' "$(printf -- '-%.0s' {1..48})" "$(printf -- '-%.0s' {1..11})" \
	"$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..11})"
row "respawn median, ms (kill to exec'd child)" "$(md "$RESP_D")" "$(md "$RESP_R")" "$(md "$RESP_S")"
row "respawn max, ms" "$(mx "$RESP_D")" "$(mx "$RESP_R")" "$(mx "$RESP_S")"
row "respawn median above the sh floor, ms" \
	"$(awk -v a="$(md "$RESP_D")" -v f="$(md "$RESP_FSH")" 'BEGIN { printf "%.2f", a - f }')" \
	"$(awk -v a="$(md "$RESP_R")" -v f="$(md "$RESP_FSH")" 'BEGIN { printf "%.2f", a - f }')" \
	"$(awk -v a="$(md "$RESP_S")" -v f="$(md "$RESP_FSH")" 'BEGIN { printf "%.2f", a - f }')"
row "state file names new pid, median/max ms" "$(field smedian "$RESP_D")/$(field smax "$RESP_D")" "" ""
# shellcheck disable=SC2153  # RSS_* are assigned through eval above
row "idle RSS, 1 service, MB" "$(kb2mb "$RSS_D1")" "$(kb2mb "$RSS_R1")" "$(kb2mb "$RSS_S1")"
row "idle RSS after $KILLS respawns, MB" "$(kb2mb "$RSS2_D1")" "$(kb2mb "$RSS2_R1")" "$(kb2mb "$RSS2_S1")"
row "idle RSS, 10 services, MB (runsv/s6: 1x10)" "$(kb2mb "$RSS_D10")" "$(kb2mb $((RSS_R1 * 10)))" "$(kb2mb $((RSS_S1 * 10)))"
row "  of which RssAnon (private), 1 service, kB" "$ANON_D1" "$ANON_R1" "$ANON_S1"
row "  of which RssAnon, 10 services, kB" "$ANON_D10" $((ANON_R1 * 10)) $((ANON_S1 * 10))
row "ctxt switches in ${IDLE_S} s idle, 1 service" "$CTX_D1" "$CTX_R1" "$CTX_S1"
row "ctxt switches in ${IDLE_S} s idle, dyno-run x10" "$CTX_D10" "" ""
row "RSS, $MANY services, MB (sum of processes)" "$(kb2mb "$RSSM_D")" "$(kb2mb "$RSSM_R")" "$(kb2mb "$RSSM_S")"
row "  of which RssAnon, $MANY services, kB" "$ANONM_D" "$ANONM_R" "$ANONM_S"
row "CPU ms (utime+stime) in ${CPU_S} s, $MANY services" "$CPUM_D" "$CPUM_R" "$CPUM_S"
row "ctxt switches in ${CPU_S} s, $MANY services" "$CTXM_D" "$CTXM_R" "$CTXM_S"
row "processes, $MANY services" 1 "$MANY" "$MANY"
echo
echo "respawn, ms                median      max  (kill to exec'd child; same rounds as the table)"
prow() { printf '  %-22s %8s %8s\n' "$1" "$(md "$2")" "$(mx "$2")"; }
prow "floor, sh -c exec" "$RESP_FSH"
prow "floor, direct exec" "$RESP_FDIRECT"
prow "dyno-run" "$RESP_D"
prow "dyno-run, nofile 1024" "$RESP_DN"
prow "runsv" "$RESP_R"
prow "s6-supervise" "$RESP_S"
echo "  (floor: probe itself kills, reaps, forks, setsid()s, execs; open-file limit $NOFILE_NOW)"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "respawn samples, ms:"
smp() { sed -n 's/^T[0-9]* samples=//p' <<<"$1"; }
echo "  floor sh:     $(smp "$RESP_FSH")"
echo "  dyno-run:     $(smp "$RESP_D")"
echo "  dyno-run/1024: $(smp "$RESP_DN")"
echo "  runsv:        $(smp "$RESP_R")"
echo "  s6:           $(smp "$RESP_S")"
