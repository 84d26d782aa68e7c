#!/usr/bin/env bash
# bench/backup.sh: `dyno-backup capture` and `restore` beside plain pg_dump -Fc
# and pg_restore, on a PostgreSQL 15 cluster that the script starts itself
# (127.0.0.1 only, a free port, a socket dir in the temp dir).
#
#   Data: one table `events` (int8 primary key, timestamptz with its own
#   index, ~100 chars of md5() text, numeric(12,2)), filled server-side with
#   generate_series in batches until pg_database_size reaches SIZE_MB, then
#   VACUUM (FREEZE, ANALYZE) and CHECKPOINT, so no timed run pays for hint
#   bits or a pending checkpoint.
#
#   ROUNDS rounds; in each (the order of the two tools alternates by round):
#     capture  pg_dump -Fc -d URL -f FILE
#              dyno-backup -a APP capture --db URL   (dump, fsync, verify)
#     restore  pg_restore --clean --if-exists --single-transaction --no-owner
#                -d URL2 FILE
#              dyno-backup -a APP restore ID --db URL2 --confirm NAME
#   URL2 is a database created empty just before each restore; after it the
#   row and index counts are checked and it is dropped.  A CHECKPOINT runs
#   before every timed step.  The round's backup is removed with
#   `dyno-backup delete ID` and the pg_dump file with rm.
#
#   Times are wall clock (date +%s%N); CPU (user+sys, the command and the
#   children it waited for, e.g. dyno-backup's pg_dump) and the largest
#   process's peak RSS come from /usr/bin/time.  The server's own CPU is not
#   in them.  MB/s is pg_database_size of the source database (MB = 2^20
#   bytes) over the wall time.  Target: capture time dyno/pg_dump <= 1.10.
#
# Needs: /usr/lib/postgresql/15/bin, the `postgres` user, runuser,
# /usr/bin/time, python3, and bin/dyno-backup (not built by this script).
# Every process it starts is stopped by pid on exit.  Run as root (initdb
# and the server run as `postgres` through runuser).
#
# Usage: bench/backup.sh     (env: SIZE_MB=1024 ROUNDS=3 KEEP=1
#                             BACKUP=bin/dyno-backup PGBIN=/usr/lib/postgresql/15/bin)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-3}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
BACKUP=${BACKUP:-$ROOT/bin/dyno-backup}

die() { echo "backup.sh: $*" >&2; exit 1; }
{ [[ $SIZE_MB =~ ^[0-9]+$ ]] && (( SIZE_MB >= 10 )); } || die "SIZE_MB must be a number >= 10"
{ [[ $ROUNDS =~ ^[0-9]+$ ]] && (( ROUNDS >= 1 )); } || die "ROUNDS must be a number >= 1"
# Room: the database, its restored copy and the two dump files (~3x
# SIZE_MB), plus WAL, which can grow to max_wal_size (1 GB by default).
NEED_MB=$(( 3 * SIZE_MB + 1024 ))
(( EUID == 0 )) || die "run as root (initdb and postgres run as the postgres user via runuser)"
id postgres >/dev/null 2>&1 || die "needs a 'postgres' user"
for c in initdb pg_ctl postgres psql pg_dump pg_restore; do
	[[ -x $PGBIN/$c ]] || die "needs $PGBIN/$c (PostgreSQL 15)"
done
for c in runuser python3 sha256sum df; do
	command -v "$c" >/dev/null || die "needs $c"
done
[[ -x /usr/bin/time ]] || die "needs /usr/bin/time (package time)"
[[ -x $BACKUP ]] || die "$BACKUP not found or not executable (build it with make in $ROOT)"
if [[ $BACKUP == "$ROOT/bin/dyno-backup" ]] &&
	[[ $(cat "$ROOT/build/variant" 2>/dev/null || echo default) == san ]]; then
	die "bin/ is a sanitizer build (build/variant = san); run make first"
fi
# dyno-backup finds pg_dump/pg_restore on PATH: the same ones as ours.
export PATH=$PGBIN:$PATH
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS \
	PGSSLMODE DATABASE_URL DYNO_APP

LOAD_BEFORE=$(uptime)

# Disk room, before anything is written.
TMPBASE=/tmp
avail_mb=$(df -Pm "$TMPBASE" | awk 'NR == 2 { print $4 }')
(( avail_mb >= NEED_MB )) || die "not enough disk: $TMPBASE has ${avail_mb} MB free," \
	"SIZE_MB=$SIZE_MB needs about ${NEED_MB} MB (3x SIZE_MB for the database, its" \
	"restored copy and the dumps, + 1024 MB of WAL); lower SIZE_MB or free space"

T=$(mktemp -d "$TMPBASE/dyno-bench-backup.XXXXXX")
chown postgres: "$T"
PGDATA=$T/pgdata
SOCK=$T/sock
PG_PID=
cleanup() {
	local rc=$? i
	if [[ -n $PG_PID ]] && kill -0 "$PG_PID" 2>/dev/null; then
		kill -INT "$PG_PID" 2>/dev/null || true	# fast shutdown
		for i in $(seq 300); do
			kill -0 "$PG_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$PG_PID" 2>/dev/null; then
			echo "backup.sh: postgres $PG_PID still up after 30 s; SIGQUIT" >&2
			kill -QUIT "$PG_PID" 2>/dev/null || true
			sleep 2
			kill -KILL "$PG_PID" 2>/dev/null || true
		fi
	fi
	if [[ -n ${KEEP:-} ]]; then
		echo "backup.sh: kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The program under test, copied so that a rebuild of bin/ during the run
# cannot change it.
cp "$BACKUP" "$T/dyno-backup"
DB_BIN=$T/dyno-backup
BIN_SHA=$(sha256sum "$DB_BIN" | cut -c1-12)
BIN_MTIME=$(date -u -r "$BACKUP" +%FT%TZ)
APP=$T/benchapp
APPNAME=$(basename "$APP")
mkdir -m 0700 "$APP"

PORT=$(python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
URL=postgres://postgres@127.0.0.1:$PORT/bench
URL2=postgres://postgres@127.0.0.1:$PORT/restored

as_pg() { (cd "$T" && runuser -u postgres -- "$@"); }
# psql DB [psql args...]: quiet, unaligned, stop on the first error.
sql() {
	local db=$1
	shift
	as_pg "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" \
		-U postgres -d "$db" "$@"
}

echo "backup.sh: $(date -u +%FT%TZ), $(nproc) cores, SIZE_MB=$SIZE_MB, ROUNDS=$ROUNDS"
echo "load before start: $LOAD_BEFORE"
echo "temp dir: $T (${avail_mb} MB free on $TMPBASE before start)"

as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C \
	>"$T/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$T/initdb.log")"
as_pg mkdir -m 0700 "$SOCK"
# Default settings except where it listens.
cat >>"$PGDATA/postgresql.conf" <<EOF

# bench/backup.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
EOF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$T/postgres.log" -w -t 60 start >/dev/null ||
	die "postgres did not start: $(tail -5 "$T/postgres.log")"
PG_PID=$(head -1 "$PGDATA/postmaster.pid")
[[ $PG_PID =~ ^[0-9]+$ ]] || die "no postmaster pid in $PGDATA/postmaster.pid"
echo "postgres: pid $PG_PID, 127.0.0.1:$PORT, $("$PGBIN/postgres" --version)"

# ---- the data -------------------------------------------------------------
sql postgres -c 'CREATE DATABASE bench'
sql bench <<'EOF'
CREATE TABLE events (
	id         int8 PRIMARY KEY,
	created_at timestamptz NOT NULL,
	body       text NOT NULL,
	amount     numeric(12,2) NOT NULL
);
CREATE INDEX events_created_at ON events (created_at);
EOF
db_bytes() { sql "${1:-bench}" -c 'SELECT pg_database_size(current_database())'; }
# Rows lo..hi: 66-129 chars of md5 text (mean ~98), about 6 s apart.
insert_rows() {
	sql bench -v lo="$1" -v hi="$2" <<'EOF'
INSERT INTO events (id, created_at, body, amount)
SELECT g,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '6 seconds'
           + random() * interval '5 seconds',
       md5(g::text) || ' ' || md5(random()::text) || ' '
           || left(md5((g * 7919)::text) || md5(random()::text), (g % 64)::int),
       round((random() * 100000)::numeric, 2)
FROM generate_series(:lo::int8, :hi::int8) AS g;
EOF
}
TARGET=$(( SIZE_MB * 1048576 ))
BATCH_MAX=1000000
echo "making the data: ~${SIZE_MB} MB in batches of at most $BATCH_MAX rows"
t0=$(date +%s%N)
rows=0
size=$(db_bytes)
batch=50000	# the first batch also measures bytes per row
while (( size < TARGET )); do
	before=$size
	insert_rows $(( rows + 1 )) $(( rows + batch ))
	rows=$(( rows + batch ))
	size=$(db_bytes)
	bpr=$(( (size - before) / batch ))
	(( bpr > 0 )) || bpr=150
	left=$(( (TARGET - size + bpr - 1) / bpr ))
	# at least 2000 rows (~0.4 MB), since the size grows by whole pages
	batch=$(( left < 2000 ? 2000 : left < BATCH_MAX ? left : BATCH_MAX ))
	printf '  %9d rows, %6d MB\n' "$rows" $(( size / 1048576 ))
done
sql bench -c 'VACUUM (FREEZE, ANALYZE) events' -c 'CHECKPOINT'
t1=$(date +%s%N)
DB_SIZE=$(db_bytes)
DB_MB=$(python3 -c "print(f'{$DB_SIZE / 1048576:.1f}')")
ROWS=$(sql bench -c 'SELECT count(*) FROM events')
NIDX=$(sql bench -c "SELECT count(*) FROM pg_indexes WHERE tablename = 'events'")
echo "database bench: $DB_MB MB (pg_database_size $DB_SIZE bytes; asked for $SIZE_MB MB)," \
	"$ROWS rows, $NIDX indexes; made in $(( (t1 - t0) / 1000000 )) ms"
sql bench -F ' ' -c "SELECT 'table ' || pg_size_pretty(pg_table_size('events'))
	|| ', indexes ' || pg_size_pretty(pg_indexes_size('events'))
	|| ', avg body ' || (SELECT round(avg(length(body))) FROM events) || ' chars'" |
	sed 's/^/  /'
echo "  sample row: $(sql bench -F ' | ' -c 'SELECT * FROM events WHERE id = 12345')"

# ---- the rounds -----------------------------------------------------------
# timed NAME CMD...: runs CMD, output to $T/NAME.out; sets MS, CPU_MS, RSS_KB.
timed() {
	local name=$1 t0 t1 u s m
	shift
	t0=$(date +%s%N)
	/usr/bin/time -f '%U %S %M' -o "$T/$name.time" "$@" >"$T/$name.out" 2>&1 ||
		die "$name failed: $*"$'\n'"$(tail -20 "$T/$name.out")"
	t1=$(date +%s%N)
	MS=$(( (t1 - t0) / 1000000 ))
	read -r u s m < <(tail -1 "$T/$name.time")
	CPU_MS=$(python3 -c "print(round(($u + $s) * 1000))")
	RSS_KB=$m
}
checkpoint() { sql postgres -c CHECKPOINT; }
fresh_target() {
	sql postgres -c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS restored WITH (FORCE)' -c 'CREATE DATABASE restored'
}
# After a restore: the same rows and indexes as the source; then drop it so
# that no autovacuum of it runs during the next timed step.
check_restored() {	# label
	local n i sz
	n=$(sql restored -c 'SELECT count(*) FROM events') || die "$1: no events table after restore"
	i=$(sql restored -c "SELECT count(*) FROM pg_indexes WHERE tablename = 'events'")
	sz=$(db_bytes restored)
	[[ $n == "$ROWS" && $i == "$NIDX" ]] ||
		die "$1: restored $n rows / $i indexes, expected $ROWS / $NIDX"
	RESTORED_BYTES=$sz
	sql postgres -c 'DROP DATABASE restored WITH (FORCE)'
}
meta() {	# key (from $T/info.out)
	sed -n "s/^$1=//p" "$T/info.out" | head -1
}

RES=$T/results	# round phase tool ms cpu_ms rss_kb bytes
: >"$RES"
TOOLS_LINE=
for r in $(seq "$ROUNDS"); do
	if (( r % 2 )); then order=(pg dyno); else order=(dyno pg); fi
	DUMP=$T/pg_dump.$r.dump
	ID=
	for tool in "${order[@]}"; do
		checkpoint
		if [[ $tool == pg ]]; then
			timed "capture-pg-$r" "$PGBIN/pg_dump" -Fc -d "$URL" -f "$DUMP"
			bytes=$(stat -c %s "$DUMP")
			extra=
		else
			timed "capture-dyno-$r" "$DB_BIN" -a "$APP" capture --db "$URL"
			"$DB_BIN" -a "$APP" info latest >"$T/info.out" 2>&1 ||
				die "dyno-backup info latest failed: $(cat "$T/info.out")"
			ID=$(meta id)
			[[ $ID =~ ^b[0-9]+$ ]] || die "no id= in 'dyno-backup info latest': $(cat "$T/info.out")"
			[[ $(meta status) == completed ]] || die "backup $ID is not completed: $(cat "$T/info.out")"
			f=$APP/.dyno/backups/$ID.dump
			[[ -f $f ]] || die "backup $ID has no data file $f"
			bytes=$(stat -c %s "$f")
			[[ $(meta size) == "$bytes" ]] || die "backup $ID: meta size=$(meta size), file has $bytes bytes"
			[[ -n $TOOLS_LINE ]] || TOOLS_LINE=$(meta tools)
			extra="  (meta duration_ms=$(meta duration_ms))"
		fi
		echo "$r capture $tool $MS $CPU_MS $RSS_KB $bytes" >>"$RES"
		printf '  round %d capture %-4s %8.2f s  %7.1f MB/s  cpu %6.2f s  file %7.1f MB%s\n' \
			"$r" "$tool" "$(bc -l <<<"$MS / 1000")" \
			"$(bc -l <<<"$DB_SIZE / 1048576 / ($MS / 1000)")" \
			"$(bc -l <<<"$CPU_MS / 1000")" "$(bc -l <<<"$bytes / 1048576")" "$extra"
	done
	for tool in "${order[@]}"; do
		fresh_target
		checkpoint
		if [[ $tool == pg ]]; then
			timed "restore-pg-$r" "$PGBIN/pg_restore" --clean --if-exists --single-transaction \
				--no-owner -d "$URL2" "$DUMP"
		else
			timed "restore-dyno-$r" "$DB_BIN" -a "$APP" restore "$ID" --db "$URL2" \
				--confirm "$APPNAME"
		fi
		check_restored "round $r restore $tool"
		echo "$r restore $tool $MS $CPU_MS $RSS_KB $RESTORED_BYTES" >>"$RES"
		printf '  round %d restore %-4s %8.2f s  %7.1f MB/s  cpu %6.2f s  restored db %7.1f MB\n' \
			"$r" "$tool" "$(bc -l <<<"$MS / 1000")" \
			"$(bc -l <<<"$DB_SIZE / 1048576 / ($MS / 1000)")" \
			"$(bc -l <<<"$CPU_MS / 1000")" "$(bc -l <<<"$RESTORED_BYTES / 1048576")"
	done
	"$DB_BIN" -a "$APP" delete "$ID" >"$T/delete.out" 2>&1 ||
		die "dyno-backup delete $ID failed: $(cat "$T/delete.out")"
	[[ ! -e $APP/.dyno/backups/$ID.dump ]] || die "dyno-backup delete $ID left $ID.dump"
	rm -f "$DUMP"
done

echo
python3 - "$RES" "$DB_SIZE" "$ROUNDS" <<'EOF'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
db_mb = int(sys.argv[2]) / 1048576
rounds = int(sys.argv[3])
d = {}
for r, phase, tool, ms, cpu, rss, b in rows:
    d[int(r), phase, tool] = dict(ms=int(ms), cpu=int(cpu), rss=int(rss), b=int(b))
R = range(1, rounds + 1)
def s(ms): return ms / 1000
def ratio(phase, r): return d[r, phase, "dyno"]["ms"] / d[r, phase, "pg"]["ms"]

print("Per round (wall seconds; MB/s = database MB / s; ratio = dyno / pg):")
print()
print("| round | first | pg_dump s | dyno capture s | ratio | pg_dump MB/s | dyno MB/s"
      " | pg_dump file MB | dyno file MB | pg_restore s | dyno restore s | ratio |")
print("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in R:
    c, cd = d[r, "capture", "pg"], d[r, "capture", "dyno"]
    x, xd = d[r, "restore", "pg"], d[r, "restore", "dyno"]
    first = "pg" if r % 2 else "dyno"
    print(f"| {r} | {first} | {s(c['ms']):.2f} | {s(cd['ms']):.2f} | {ratio('capture', r):.2f} "
          f"| {db_mb / s(c['ms']):.1f} | {db_mb / s(cd['ms']):.1f} "
          f"| {c['b'] / 1048576:.1f} | {cd['b'] / 1048576:.1f} "
          f"| {s(x['ms']):.2f} | {s(xd['ms']):.2f} | {ratio('restore', r):.2f} |")

def med(phase, tool, k):
    return st.median(d[r, phase, tool][k] for r in R)
def mratio(phase):
    return st.median(ratio(phase, r) for r in R)
print()
print(f"Summary: medians over {rounds} round(s); database {db_mb:.1f} MB. "
      "The ratio column is the median of the per-round ratios.")
print()
print("| metric | pg_dump / pg_restore | dyno-backup | dyno ÷ pg |")
print("|---|--:|--:|--:|")
for phase in ("capture", "restore"):
    pm, dm = med(phase, "pg", "ms"), med(phase, "dyno", "ms")
    print(f"| {phase}, s | {s(pm):.2f} | {s(dm):.2f} | {mratio(phase):.2f}x |")
    mbs = lambda tool: st.median(db_mb / s(d[r, phase, tool]["ms"]) for r in R)
    print(f"| {phase}, MB/s of database | {mbs('pg'):.1f} | {mbs('dyno'):.1f} "
          f"| {st.median(1 / ratio(phase, r) for r in R):.2f}x |")
    pc, dc = med(phase, "pg", "cpu"), med(phase, "dyno", "cpu")
    print(f"| {phase}, CPU user+sys s (client side, with children) | {s(pc):.2f} | {s(dc):.2f} "
          f"| {dc / pc if pc else float('nan'):.2f}x |")
    pr, dr = med(phase, "pg", "rss"), med(phase, "dyno", "rss")
    print(f"| {phase}, peak RSS of the largest process, MB | {pr / 1024:.1f} | {dr / 1024:.1f} "
          f"| {dr / pr:.2f}x |")
    pb, db = med(phase, "pg", "b"), med(phase, "dyno", "b")
    what = "dump file, MB" if phase == "capture" else "restored database, MB"
    print(f"| {what} | {pb / 1048576:.1f} | {db / 1048576:.1f} | {db / pb:.2f}x |")
print()
cr = mratio("capture")
cr_all = ", ".join(f"{ratio('capture', r):.2f}" for r in R)
rr_all = ", ".join(f"{ratio('restore', r):.2f}" for r in R)
print(f"Target: capture within 10% of pg_dump (time ratio <= 1.10): "
      f"{'met' if cr <= 1.10 else 'NOT MET'} ({cr:.2f}x; per round {cr_all}).")
print(f"Restore time ratio per round: {rr_all} (median {mratio('restore'):.2f}x).")
EOF

echo
echo "versions: $("$PGBIN/pg_dump" --version); $("$PGBIN/pg_restore" --version);" \
	"server $(sql postgres -c 'SHOW server_version')"
echo "dyno-backup: $BACKUP sha256 $BIN_SHA (the copy that ran), built $BIN_MTIME;" \
	"repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(
	[[ -n $(git -C "$ROOT" status --porcelain -- src lib Makefile 2>/dev/null) ]] &&
		echo ' (src/lib/Makefile modified)')"
if [[ $(sha256sum "$BACKUP" 2>/dev/null | cut -c1-12) != "$BIN_SHA" ]]; then
	echo "note: $BACKUP was rebuilt or removed during the run; the numbers are for $BIN_SHA"
fi
if [[ -n $TOOLS_LINE ]]; then echo "dyno-backup meta tools=$TOOLS_LINE"; fi
echo "load after: $(uptime)"
