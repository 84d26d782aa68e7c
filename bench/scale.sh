#!/usr/bin/env bash
# bench/scale.sh: N copies of the sample app (examples/app) brought up at
# once, by dyno-run and by the peers' own way of starting many services at
# once, the same N on every side, all rounds kept.
#
#   A. A supervisor that is already running picks up N new services:
#      dyno     dyno-run runs web=0; `dyno-scale web=N` (no --wait)
#      s6       s6-svscan runs on an empty scan dir; N service dirs are
#               moved in with one mv and `s6-svscanctl -a` makes it rescan
#      (runsvdir has no rescan trigger: it looks every 5 s, so it is only
#      in B.)
#   B. Cold start, N services at once:
#      dyno     dyno-run web=N, on a fresh app dir
#      s6       s6-svscan on a scan dir holding N service dirs
#      runsvdir runsvdir on a scan dir holding N service dirs
#      floor    bench/upwait.py itself starts `sh -c 'exec app'` N times
#               (fork, exec, no supervision): the machine's floor
#   Every target is timed the same way, by bench/upwait.py: from just before
#   the trigger command (or the supervisor) starts to when all N ports
#   accept a TCP connection on 127.0.0.1, polled every 1 ms.  For dyno-run,
#   also to when run/routes lists N (what dyno-route and `dyno-scale --wait`
#   go by: dyno-run checks a new dyno's port every 50 ms).  Each service
#   runs the app through /bin/sh with exec, as each supervisor does.
#   ROUNDS rounds, targets interleaved, the order rotated each round.
#   Between rounds, each side is brought back down (dyno-scale web=0 --wait;
#   s6-svc -wD -d and s6-svscanctl -an; the cold ones stopped by pid).
#
# Needs: python3, s6-svscan, s6-svscanctl, s6-svc, runsvdir, bin/dyno-run,
# bin/dyno-scale, examples/app (built if missing).  Binds only 127.0.0.1
# (the app binds INADDR_ANY on its ports: see examples/app.c).  Every
# process it starts is stopped by pid on exit.
#
# Usage: bench/scale.sh [ROUNDS]   (env: ROUNDS=5 N=20 KEEP=1)
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$BENCH_ROOT
ROUNDS=${1:-${ROUNDS:-5}}
N=${N:-20}

die() { echo "scale.sh: $*" >&2; exit 1; }
for c in python3 s6-svscan s6-svscanctl s6-svc runsvdir awk; do
	command -v "$c" >/dev/null || die "needs $c"
done
{ [[ $N =~ ^[0-9]+$ ]] && ((N >= 1 && N <= 100)); } || die "N must be 1 to 100"
{ [[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1)); } || die "ROUNDS must be >= 1"
make -s -C "$ROOT" >/dev/null || die "make failed"
[[ $(cat "$ROOT/build/variant" 2>/dev/null || echo default) != san ]] ||
	die "bin/ is a sanitizer build (build/variant = san); run make first"

T=$(mktemp -d "${TMPDIR:-/tmp}/dyno-bench-scale.XXXXXX")
cleanup() {
	bench_stop 10
	if [[ -n ${KEEP:-} ]]; then echo "scale.sh: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cp "$ROOT/examples/app" "$T/app"
UPWAIT=(python3 "$ROOT/bench/upwait.py")

# Service dirs for s6/runsvdir: DIR/web.I with a run script on port I of PORTS.
make_services() {	# dir port...
	local dir=$1 i=0 p
	shift
	mkdir -p "$dir"
	for p; do
		i=$((i + 1))
		mkdir -p "$dir/web.$i"
		printf '#!/bin/sh\ncd %s\nPORT=%d DYNO=web.%d exec ./app\n' \
			"$T" "$p" "$i" >"$dir/web.$i/run"
		chmod +x "$dir/web.$i/run"
	done
}
# "dx" (down, then exit) on the control FIFO of each service's supervisor.
services_down() {	# dir
	local d fd
	for d in "$1"/*/; do
		[[ -p $d/supervise/control ]] || continue
		exec {fd}<>"$d/supervise/control" || continue
		printf dx >&"$fd" || true
		exec {fd}>&-
	done
}
routes_n() { grep -c '^[^@]' "$1" 2>/dev/null || true; }
wait_routes() {	# file n: poll until FILE lists N routes (deadline 60 s)
	local i
	for ((i = 0; i < 1200; i++)); do
		[[ $(routes_n "$1") == "$2" ]] && return 0
		sleep 0.05
	done
	die "$1: not $2 routes after 60 s"
}
field() { sed -n "s/.*\\<$1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }

read -r -a P_S6A <<<"$(bench_ports "$N")"
read -r -a P_S6B <<<"$(bench_ports "$N")"
read -r -a P_RSV <<<"$(bench_ports "$N")"
read -r -a P_FLOOR <<<"$(bench_ports "$N")"
csv() { local IFS=,; echo "$*"; }
# dyno-run takes the lowest free ports from -p up: a random base well away
# from the kernel's ephemeral range used above.
BASE=$((20000 + RANDOM % 8000))

echo "scale.sh: $(date -u +%FT%TZ), commit $(bench_commit), $(nproc) cores, $(uname -sr)"
echo "  N=$N ROUNDS=$ROUNDS; s6 $(dpkg-query -W -f='${Version}' s6 2>/dev/null || echo '?')," \
	"runit $(dpkg-query -W -f='${Version}' runit 2>/dev/null || echo '?')"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- A: running supervisors --------------------------------------------------

mkdir -p "$T/appA"
cp "$T/app" "$T/appA/app"
echo 'web: exec ./app' >"$T/appA/Procfile"
"$ROOT/bin/dyno-run" -a "$T/appA" -p "$BASE" --no-cycle web=0 >"$T/runA.log" 2>&1 &
DYNO_A=$!
bench_track "$DYNO_A"
mkdir -p "$T/scanA" "$T/stageA"
make_services "$T/stageA" "${P_S6A[@]}"
s6-svscan "$T/scanA" >"$T/svscanA.log" 2>&1 &
S6_A=$!
bench_track "$S6_A"
for ((i = 0; i < 200; i++)); do
	[[ -d $T/appA/.dyno/run && -d $T/scanA/.s6-svscan ]] && break
	sleep 0.05
done

run_A() {	# target round -> appends to results
	local t=$1 r=$2 out d
	case $t in
	dyno)
		out=$("${UPWAIT[@]}" --want "$N" --dynos "$T/appA" \
			--routes "$T/appA/.dyno/run/routes" --log "$T/scaleA.log" -- \
			"$ROOT/bin/dyno-scale" -a "$T/appA" "web=$N") ||
			die "dyno-scale web=$N: not up (log: $(tail -3 "$T/runA.log"))"
		echo "A dyno $r $(field up_ms "$out") $(field routes_ms "$out")" >>"$T/results"
		"$ROOT/bin/dyno-scale" -a "$T/appA" web=0 --wait=60 >/dev/null
		wait_routes "$T/appA/.dyno/run/routes" 0
		;;
	s6)
		# shellcheck disable=SC2016  # $1 and $2 are sh's
		out=$("${UPWAIT[@]}" --want "$N" --ports "$(csv "${P_S6A[@]}")" --log "$T/scaleA.log" -- \
			sh -c 'mv "$1"/web.* "$2"/ && exec s6-svscanctl -a "$2"' \
			sh \
			"$T/stageA" "$T/scanA") || die "s6-svscan: not up"
		echo "A s6 $r $(field up_ms "$out") -" >>"$T/results"
		for d in "$T/scanA"/web.*; do s6-svc -wD -T 10000 -d "$d"; done
		mv "$T/scanA"/web.* "$T/stageA"/
		s6-svscanctl -an "$T/scanA"
		for ((i = 0; i < 200; i++)); do
			[[ -z $(cat /proc/"$S6_A"/task/*/children 2>/dev/null) ]] && break
			sleep 0.05
		done
		;;
	esac
}

# ---- B: cold starts ----------------------------------------------------------

run_B() {	# target round
	local t=$1 r=$2 out pid d=$T/B-$1-$2
	case $t in
	dyno)
		mkdir -p "$d"
		cp "$T/app" "$d/app"
		echo 'web: exec ./app' >"$d/Procfile"
		out=$("${UPWAIT[@]}" --want "$N" --dynos "$d" --routes "$d/.dyno/run/routes" \
			--daemon --pidfile "$d.pid" --log "$d.log" -- "$ROOT/bin/dyno-run" -a "$d" \
			-p "$((BASE + 200))" --no-cycle "web=$N") ||
			{ [[ -s $d.pid ]] && bench_track "$(cat "$d.pid")"; die "dyno-run web=$N: not up"; }
		echo "B dyno $r $(field up_ms "$out") $(field routes_ms "$out")" >>"$T/results"
		pid=$(cat "$d.pid")
		bench_track "$pid"
		bench_kill 30 "$pid"
		;;
	s6 | runsvdir)
		if [[ $t == s6 ]]; then
			make_services "$d" "${P_S6B[@]}"
			ports=$(csv "${P_S6B[@]}")
		else
			make_services "$d" "${P_RSV[@]}"
			ports=$(csv "${P_RSV[@]}")
		fi
		out=$("${UPWAIT[@]}" --want "$N" --ports "$ports" --daemon \
			--pidfile "$d.pid" --log "$d.log" -- \
			"$( [[ $t == s6 ]] && echo s6-svscan || echo runsvdir)" "$d") ||
			{ [[ -s $d.pid ]] && bench_track "$(cat "$d.pid")"; die "$t: not up"; }
		echo "B $t $r $(field up_ms "$out") -" >>"$T/results"
		pid=$(cat "$d.pid")
		bench_track "$pid"
		# runsvdir leaves its runsv running on SIGTERM, and runsv its
		# service: take each service down first (s6 takes them down
		# on SIGTERM, but the same path serves both).
		services_down "$d"
		bench_kill 30 "$pid"
		;;
	floor)
		out=$("${UPWAIT[@]}" --want "$N" --ports "$(csv "${P_FLOOR[@]}")" --floor \
			--pidfile "$d.pid" --log "$d.log" -- sh -c "cd $T && exec ./app") ||
			die "floor: not up"
		echo "B floor $r $(field up_ms "$out") -" >>"$T/results"
		mapfile -t fl <"$d.pid"
		for pid in "${fl[@]}"; do bench_track "$pid"; done
		bench_kill 30 "${fl[@]}"
		;;
	esac
}

: >"$T/results"
TA=(dyno s6)
TB=(dyno s6 runsvdir floor)
for r in $(seq "$ROUNDS"); do
	echo "round $r ..."
	for i in "${!TA[@]}"; do run_A "${TA[$(( (i + r - 1) % ${#TA[@]} ))]}" "$r"; done
	for i in "${!TB[@]}"; do run_B "${TB[$(( (i + r - 1) % ${#TB[@]} ))]}" "$r"; done
done

# ---- tables ------------------------------------------------------------------

python3 - "$T/results" "$N" "$ROUNDS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
n, rounds = sys.argv[2], int(sys.argv[3])
v = {}
for part, t, r, up, routes in rows:
    v[part, t, int(r)] = (float(up), None if routes == "-" else float(routes))
def med(part, t, i=0):
    return statistics.median(v[part, t, r][i] for r in range(1, rounds + 1))
def ratio(part, a, b):  # median of per-round ratios
    return statistics.median(v[part, a, r][0] / v[part, b, r][0]
                             for r in range(1, rounds + 1))
print()
print(f"A. running supervisor, {n} new services at once: ms to all {n} ports accepting")
print("| round | dyno-scale web=0->%s | (dyno: in run/routes) | s6-svscanctl -a | dyno/s6 |" % n)
print("|--:|--:|--:|--:|--:|")
for r in range(1, rounds + 1):
    d, s = v["A", "dyno", r], v["A", "s6", r]
    print(f"| {r} | {d[0]:.1f} | {d[1]:.1f} | {s[0]:.1f} | {d[0] / s[0]:.2f} |")
print(f"| median | {med('A', 'dyno'):.1f} | {med('A', 'dyno', 1):.1f} | "
      f"{med('A', 's6'):.1f} | {ratio('A', 'dyno', 's6'):.2f} |")
print()
print(f"B. cold start, {n} services at once: ms to all {n} ports accepting")
print("| round | dyno-run web=%s | (dyno: in run/routes) | s6-svscan | runsvdir | floor | dyno/s6 | dyno/runsvdir |" % n)
print("|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in range(1, rounds + 1):
    d, s, rv, f = (v["B", t, r] for t in ("dyno", "s6", "runsvdir", "floor"))
    print(f"| {r} | {d[0]:.1f} | {d[1]:.1f} | {s[0]:.1f} | {rv[0]:.1f} | {f[0]:.1f} | "
          f"{d[0] / s[0]:.2f} | {d[0] / rv[0]:.2f} |")
print(f"| median | {med('B', 'dyno'):.1f} | {med('B', 'dyno', 1):.1f} | {med('B', 's6'):.1f} | "
      f"{med('B', 'runsvdir'):.1f} | {med('B', 'floor'):.1f} | "
      f"{ratio('B', 'dyno', 's6'):.2f} | {ratio('B', 'dyno', 'runsvdir'):.2f} |")
print()
print("Ratios in the median row are medians of the per-round ratios; all rounds kept.")
print("floor: bench/upwait.py forks and execs `sh -c 'exec ./app'` N times itself.")
EOF
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
