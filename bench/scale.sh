#!/bin/bash
# scale.sh: how long from `dyno-scale web=1` to `web=20 --wait` (all 20
# routable), beside the same 20 processes started one by one under s6
# (s6-supervise per service, each waited for until its port accepts).
# Usage: bench/scale.sh [ROUNDS]   (default 3)
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
make -s >/dev/null
T=$(mktemp -d /tmp/dyno-bench-scale.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$T/app/.dyno/run/lock" ] && kill "$(cat "$T/app/.dyno/run/lock")" 2>/dev/null || true
	pkill -f "$T/" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s%N; }
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mkdir -p "$T/app"
cp examples/app "$T/app/app"
echo 'web: exec ./app' > "$T/app/Procfile"
BASE=$(( 30000 + RANDOM % 20000 ))
bin/dyno-run -a "$T/app" -p "$BASE" --no-cycle web=1 > "$T/run.log" 2>&1 &
pids+=($!)
until [ "$(grep -c . "$T/app/.dyno/run/routes" 2>/dev/null)" = 1 ]; do sleep 0.02; done

printf '%-8s %14s %14s %8s\n' round dyno-scale_ms s6_oneby1_ms ratio
for r in $(seq 1 "$ROUNDS"); do
	t0=$(now)
	bin/dyno-scale -a "$T/app" web=20 --wait=60 >/dev/null
	t1=$(now)
	dyno_ms=$(( (t1 - t0) / 1000000 ))
	[ "$(grep -c . "$T/app/.dyno/run/routes")" = 20 ] || { echo "not 20 routable" >&2; exit 1; }
	bin/dyno-scale -a "$T/app" web=1 --wait=60 >/dev/null

	# s6: the same 20 processes, one service at a time.
	S6=$T/s6.$r
	mkdir -p "$S6"
	sbase=$(( BASE + 200 + r * 40 ))
	t0=$(now)
	for i in $(seq 1 20); do
		d=$S6/web.$i
		mkdir -p "$d"
		printf '#!/bin/sh\ncd %s\nPORT=%d DYNO=web.%d exec ./app\n' "$T/app" $((sbase + i)) "$i" > "$d/run"
		chmod +x "$d/run"
		s6-supervise "$d" > /dev/null 2>&1 &
		pids+=($!)
		until accepts $((sbase + i)); do sleep 0.002; done
	done
	t1=$(now)
	s6_ms=$(( (t1 - t0) / 1000000 ))
	for i in $(seq 1 20); do s6-svc -wd -d "$S6/web.$i" 2>/dev/null || true; s6-svc -x "$S6/web.$i" 2>/dev/null || true; done
	printf '%-8s %14d %14d %8.2f\n' "$r" "$dyno_ms" "$s6_ms" "$(echo "$dyno_ms / $s6_ms" | bc -l)"
done
