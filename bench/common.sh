# shellcheck shell=bash
# bench/common.sh: what the bench scripts share; sourced, never run.
#
#   bench_commit         the commit measured: short hash, "-dirty" if
#                        tracked files differ from it
#   bench_ports N        N free 127.0.0.1 ports, picked by the kernel
#   bench_track PID      remember a process this script started
#   bench_stop [SECS]    stop every tracked process by pid: SIGTERM, up to
#                        SECS (10) for it and what it started to exit, then
#                        SIGKILL to what is left of them and of the process
#                        groups they lead
#   bench_kill SECS PID...  the same for these tracked pids only
#
# Processes are only ever named by pid (and checked by start time, so a
# reused pid is never signalled); nothing is stopped by name.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_PIDS=()

bench_commit() {
	local c
	c=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
	git -C "$BENCH_ROOT" diff --quiet HEAD -- 2>/dev/null || c=$c-dirty
	echo "$c"
}

bench_ports() {
	python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])' "$1"
}

bench_track() { BENCH_PIDS+=("$1"); }

# "state starttime" of a live process (not a zombie), or nothing.
bench_id() {
	local st f
	read -r st 2>/dev/null <"/proc/$1/stat" || return 0
	read -r -a f <<<"${st##*) }"	# f[0] is field 3 (state), f[19] field 22
	[[ ${f[0]} != Z ]] && echo "${f[0]} ${f[19]}"
	return 0
}

# pid:starttime of PID and of everything below it, PID first.
bench_tree() {
	local p=$1 id kids="" t c
	id=$(bench_id "$p")
	[[ -n $id ]] || return 0
	echo "$p:${id#* }"
	for t in /proc/"$p"/task/*/children; do
		c=""	# the file has no newline: read fails but fills c
		read -r c 2>/dev/null <"$t" || true
		kids+=" $c"
	done
	for c in $kids; do bench_tree "$c"; done
}

bench_alive() {	# pid:starttime -> still that process, not a zombie
	local st f
	read -r st 2>/dev/null <"/proc/${1%%:*}/stat" || return 1
	read -r -a f <<<"${st##*) }"
	[[ ${f[0]} != Z && ${f[19]} == "${1#*:}" ]]
}

bench_kill() {
	local secs=$1 p e left i all=() keep=()
	shift
	for p; do
		mapfile -t -O "${#all[@]}" all < <(bench_tree "$p")
		kill -TERM "$p" 2>/dev/null || true
	done
	for ((i = 0; i < secs * 20; i++)); do
		left=0
		for e in "${all[@]}"; do bench_alive "$e" && left=1 && break; done
		((left)) || break
		sleep 0.05
	done
	for e in "${all[@]}"; do
		bench_alive "$e" || continue
		p=${e%%:*}
		echo "bench: pid $p still running after ${secs}s; SIGKILL" >&2
		# Its process group too, when it leads one (a dyno, a service).
		[[ $(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ') == "$p" ]] &&
			kill -KILL -- "-$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null || true
	done
	for p; do wait "$p" 2>/dev/null || true; done
	for e in "${BENCH_PIDS[@]}"; do
		for p; do [[ $e == "$p" ]] && continue 2; done
		keep+=("$e")
	done
	BENCH_PIDS=("${keep[@]}")
}

bench_stop() {
	((${#BENCH_PIDS[@]})) || return 0
	bench_kill "${1:-10}" "${BENCH_PIDS[@]}"
}

# wrk output -> "reqs rps p50_ms p99_ms non2xx sockerrs"
wrk_parse() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	/requests in/ { reqs = $1 }
	/^Requests\/sec:/ { rps = $2 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { gsub(",", ""); serr = $4 + $6 + $8 + $10 }
	END { printf "%s %s %.3f %.3f %d %d\n", reqs, rps, p50, p99, non2xx, serr }
	' "$1"
}
