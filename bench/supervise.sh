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
#   2. idle memory of the supervisors (not of what they supervise): PSS
#      (/proc/PID/smaps_rollup: shared pages split among the processes
#      mapping them) and RssAnon (private), with 1 service and with 10:
#      one dyno-run worker=10 against 10 real runsv and 10 real
#      s6-supervise processes.  VmRSS, which counts shared libc pages in
#      full once per process, is a labelled row below them.  Floor: the
#      same numbers for bsleeper itself.
#   3. idle wakeups: voluntary+nonvoluntary context switches over IDLE_S
#      idle seconds, dyno-run with its default flags (it samples memory
#      every 5 s); dyno-run --memory-interval 60s --no-cycle as a second,
#      labelled row.
#   4. PSS, RssAnon, VmRSS and CPU (utime+stime) over CPU_S seconds with
#      MANY services: one dyno-run worker=MANY (default flags), MANY runsv,
#      MANY s6-supervise (sums).
#   EXTRA=N first starts N idle `sleep` processes (not supervised by anyone
#   measured) and stops them at the end: the respawn time must not grow with
#   the number of processes on the host.
#   Only the respawn test (1.) runs dyno-run with non-default flags:
#   --no-cycle --backoff-cap 0 --memory-interval 60s, so that a kill every
#   GAP_MS restarts at once instead of backing off.
#
# Needs: cc, runsv (runit), s6-supervise (s6), bin/dyno-run (built if missing).
# Binds nothing.  Every process it starts is stopped by pid on exit.
#
# Usage: bench/supervise.sh     (env: KILLS GAP_MS IDLE_S CPU_S MANY EXTRA)
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"	# bench_commit
ROOT=$BENCH_ROOT
DYNO_RUN=${DYNO_RUN:-$ROOT/bin/dyno-run}
KILLS=${KILLS:-20}
GAP_MS=${GAP_MS:-1100}
IDLE_S=${IDLE_S:-20}
CPU_S=${CPU_S:-10}
MANY=${MANY:-50}
EXTRA=${EXTRA:-0}
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
EXTRAS=()		# pids of the EXTRA idle processes

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
	if ((${#EXTRAS[@]} > 0)); then
		kill -KILL "${EXTRAS[@]}" 2>/dev/null || true
		wait "${EXTRAS[@]}" 2>/dev/null || true
	fi
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
pss() {		# sum of Pss in kB (shared pages split among their users)
	local p s=0
	for p; do
		s=$((s + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
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

# dyno-run on a fresh app dir APP with worker=N and FLAGS; REPLY = pid.
start_dyno() {	# n app flag...
	local n=$1 app=$T/$2
	shift 2
	mkdir -p "$app"
	printf 'worker: exec %s\n' "$T/$PROG" >"$app/Procfile"
	"$DYNO_RUN" -a "$app" "$@" "worker=$n" \
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
echo "  commit $(bench_commit); dyno-run $DYNO_RUN (default flags; respawn: ${DYNO_FLAGS[*]})"
echo "  runsv: runit $(dpkg-query -W -f='${Version}' runit 2>/dev/null || echo '?')," \
	"s6-supervise: s6 $(dpkg-query -W -f='${Version}' s6 2>/dev/null || echo '?')"
echo "  kills=$KILLS gap=${GAP_MS}ms idle=${IDLE_S}s cpu-window=${CPU_S}s many=$MANY" \
	"extra=$EXTRA idle processes"
# The extra idle processes: children of this script, in its session, so
# that no supervisor measured has them below it; killed by pid on exit.
for ((i = 0; i < EXTRA; i++)); do
	sleep 100000 &
	EXTRAS+=("$!")
done
NPROC=0
for p in /proc/[0-9]*; do NPROC=$((NPROC + 1)); done
echo "  processes on the host: $NPROC"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1-3. one service each, and ten ----------------------------------------

# D1/D10: the flags the respawn test needs (--backoff-cap 0: a kill every
# GAP_MS restarts at once), and the old idle rows' flags.  E1/E10: dyno-run
# with default flags, as a user runs it: the idle and memory rows.
# DN is a second D1 started under `ulimit -n 1024`, for a diagnostic: the
# respawn time of a child that closes its fds one by one depends on the
# open-file limit (see lib/spawn.c).
NOFILE_NOW=$(ulimit -n)
echo "start: 1 and 10 services each, dyno-run with default and respawn flags ..."
start_dyno 1 app1 "${DYNO_FLAGS[@]}";   D1=$REPLY
start_dyno 10 app10 "${DYNO_FLAGS[@]}"; D10=$REPLY
start_dyno 1 def1;                      E1=$REPLY
start_dyno 10 def10;                    E10=$REPLY
start_runsv 1; R1=$REPLY
start_s6 1;    S1=$REPLY
R10=("$R1") S10=("$S1")
for ((i = 2; i <= 10; i++)); do
	start_runsv "t$i"; R10+=("$REPLY")
	start_s6 "t$i";    S10+=("$REPLY")
done
ulimit -S -n 1024
start_dyno 1 app1n "${DYNO_FLAGS[@]}"; DN=$REPLY
ulimit -S -n "$NOFILE_NOW"
wait_kids "$D1" 1; wait_kids "$D10" 10; wait_kids "$E1" 1; wait_kids "$E10" 10
for p in "${R10[@]}" "${S10[@]}"; do wait_kids "$p" 1; done
wait_kids "$DN" 1
wait_quiet "$D1" "$D10" "$E1" "$E10" "${R10[@]}" "${S10[@]}" "$DN"
# The floor for memory: bsleeper, a C program that only pause()s.
read -r FLOOR_PID _ 2>/dev/null <"/proc/$E1/task/$E1/children" || true
echo "idle: ${IDLE_S} s ..."
c0_D10=$(ctxt "$D10"); c0_E1=$(ctxt "$E1"); c0_E10=$(ctxt "$E10")
c0_R1=$(ctxt "$R1"); c0_S1=$(ctxt "$S1")
c0_R10=$(ctxt "${R10[@]}"); c0_S10=$(ctxt "${S10[@]}")
sleep "$IDLE_S"		# the idle window being measured
CTX_D10=$(( $(ctxt "$D10") - c0_D10 ))
CTX_E1=$(( $(ctxt "$E1") - c0_E1 )); CTX_E10=$(( $(ctxt "$E10") - c0_E10 ))
CTX_R1=$(( $(ctxt "$R1") - c0_R1 )); CTX_S1=$(( $(ctxt "$S1") - c0_S1 ))
CTX_R10=$(( $(ctxt "${R10[@]}") - c0_R10 )); CTX_S10=$(( $(ctxt "${S10[@]}") - c0_S10 ))
PSS_E1=$(pss "$E1"); PSS_R1=$(pss "$R1"); PSS_S1=$(pss "$S1")
PSS_E10=$(pss "$E10"); PSS_R10=$(pss "${R10[@]}"); PSS_S10=$(pss "${S10[@]}")
ANON_E1=$(anon "$E1"); ANON_R1=$(anon "$R1"); ANON_S1=$(anon "$S1")
ANON_E10=$(anon "$E10"); ANON_R10=$(anon "${R10[@]}"); ANON_S10=$(anon "${S10[@]}")
RSS_E10=$(rss "$E10"); RSS_R10=$(rss "${R10[@]}"); RSS_S10=$(rss "${S10[@]}")
FLOOR_PSS=- FLOOR_ANON=- FLOOR_RSS=-
if [[ -n ${FLOOR_PID:-} ]]; then
	FLOOR_PSS=$(pss "$FLOOR_PID"); FLOOR_ANON=$(anon "$FLOOR_PID")
	FLOOR_RSS=$(rss "$FLOOR_PID")
fi

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
PSS2_D1=$(pss "$D1"); PSS2_R1=$(pss "$R1"); PSS2_S1=$(pss "$S1")
stop_all

# ---- 4. MANY services --------------------------------------------------------

echo "many: dyno-run worker=$MANY (default flags), $MANY runsv, $MANY s6-supervise ..."
start_dyno "$MANY" "many"; DM=$REPLY
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
PSSM_D=$(pss "$DM"); PSSM_R=$(pss "${RM[@]}"); PSSM_S=$(pss "${SM[@]}")
RSSM_D=$(rss "$DM"); RSSM_R=$(rss "${RM[@]}"); RSSM_S=$(rss "${SM[@]}")
ANONM_D=$(anon "$DM"); ANONM_R=$(anon "${RM[@]}"); ANONM_S=$(anon "${SM[@]}")
stop_all

# ---- table -------------------------------------------------------------------

md() { field median "$1"; }
mx() { field max "$1"; }
row() {	# label dyno runsv s6 -> row with ratio dyno/runsv
	printf '| %-60s | %10s | %10s | %12s | %10s |\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$3")"
}
echo
echo "supervise.sh results, commit $(bench_commit)"
echo
printf '| %-60s | %10s | %10s | %12s | %10s |\n' metric dyno-run runsv s6-supervise "dyno/runsv"
printf '|%s|%s:|%s:|%s:|%s:|\n' "$(printf -- '-%.0s' {1..62})" "$(printf -- '-%.0s' {1..11})" \
	"$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..11})"
row "idle PSS, 1 service, kB" "$PSS_E1" "$PSS_R1" "$PSS_S1"
row "idle PSS, 10 services, kB (10 runsv, 10 s6-supervise)" "$PSS_E10" "$PSS_R10" "$PSS_S10"
row "idle RssAnon (private), 1 service, kB" "$ANON_E1" "$ANON_R1" "$ANON_S1"
row "idle RssAnon, 10 services, kB" "$ANON_E10" "$ANON_R10" "$ANON_S10"
row "idle VmRSS, 10 services, kB (shared pages once per process)" "$RSS_E10" "$RSS_R10" "$RSS_S10"
row "wakeups (ctxt switches) in ${IDLE_S} s idle, 1 service" "$CTX_E1" "$CTX_R1" "$CTX_S1"
row "wakeups in ${IDLE_S} s idle, 10 services" "$CTX_E10" "$CTX_R10" "$CTX_S10"
row "  same, dyno-run --memory-interval 60s --no-cycle [1]" "$CTX_D10" "$CTX_R10" "$CTX_S10"
row "PSS, $MANY services, kB (sum of processes)" "$PSSM_D" "$PSSM_R" "$PSSM_S"
row "RssAnon, $MANY services, kB" "$ANONM_D" "$ANONM_R" "$ANONM_S"
row "VmRSS, $MANY services, kB (shared pages once per process)" "$RSSM_D" "$RSSM_R" "$RSSM_S"
row "CPU ms (utime+stime) in ${CPU_S} s, $MANY services" "$CPUM_D" "$CPUM_R" "$CPUM_S"
row "wakeups (ctxt switches) in ${CPU_S} s, $MANY services" "$CTXM_D" "$CTXM_R" "$CTXM_S"
row "processes, $MANY services" 1 "$MANY" "$MANY"
row "respawn median, ms (kill to exec'd child) [1]" "$(md "$RESP_D")" "$(md "$RESP_R")" "$(md "$RESP_S")"
row "respawn max, ms [1]" "$(mx "$RESP_D")" "$(mx "$RESP_R")" "$(mx "$RESP_S")"
row "respawn median above the sh floor, ms [1]" \
	"$(awk -v a="$(md "$RESP_D")" -v f="$(md "$RESP_FSH")" 'BEGIN { printf "%.2f", a - f }')" \
	"$(awk -v a="$(md "$RESP_R")" -v f="$(md "$RESP_FSH")" 'BEGIN { printf "%.2f", a - f }')" \
	"$(awk -v a="$(md "$RESP_S")" -v f="$(md "$RESP_FSH")" 'BEGIN { printf "%.2f", a - f }')"
row "state file names new pid, median/max ms [1]" "$(field smedian "$RESP_D")/$(field smax "$RESP_D")" "" ""
row "PSS after $KILLS respawns, 1 service, kB [1]" "$PSS2_D1" "$PSS2_R1" "$PSS2_S1"
echo
echo "dyno-run runs with default flags, except [1]: ${DYNO_FLAGS[*]}"
echo "(--backoff-cap 0 so that a kill every ${GAP_MS} ms restarts at once) and the row marked 'same'."
echo "PSS (from /proc/PID/smaps_rollup) charges each shared page to the processes mapping it"
echo "in equal parts; RssAnon (/proc/PID/status) is private memory only; VmRSS counts every"
echo "shared page in full in every process, so it overstates N small processes."
echo "floor, memory: bsleeper (a C program that only pause()s): PSS $FLOOR_PSS kB," \
	"RssAnon $FLOOR_ANON kB, VmRSS $FLOOR_RSS kB"
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
