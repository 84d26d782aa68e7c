#!/usr/bin/env bats
# dyno-backup: capture, list, verify, restore, prune, download and upload,
# against real peers on 127.0.0.1: PostgreSQL (the newest installed), the
# sqlite3 CLI, moto's S3 (signatures and session tokens checked), nginx
# WebDAV and a fault-injecting proxy (t/peers/flaky.py).  A test whose peer
# is missing skips and says which.  The contract is dyno-backup(1): exit
# 0/1/2, one stderr line on failure.

load helpers
load backup

# The peers are slow to start: once for the whole file.
setup_file() { start_peers; }
teardown_file() { stop_peers; }

setup() {
	PEER_PIDS=() BG_PIDS=()
	# A test may narrow PATH (no zstd); teardown puts it back.
	ORIG_PATH=$PATH
	unset DATABASE_URL DYNO_APP DYNO_BACKUP_NOW DYNO_BACKUP_HTTP_AUTH \
	    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION
	# The app is TDIR/shop, so its name (for --confirm) is "shop"; the
	# test's own files stay beside it, outside the app.
	TDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-backup.XXXXXX")
	APP=$TDIR/shop
	mkdir "$APP"
	B=$APP/.dyno/backups
}

teardown() {
	local p ok=0
	PATH=$ORIG_PATH
	exec 8>&-
	for p in "${BG_PIDS[@]}"; do kill_tree "$p"; done
	# gpg starts an agent per keyring, which outlives the test otherwise
	for p in "$TDIR"/gnupg "$TDIR"/public-only; do
		[ -d "$p" ] && GNUPGHOME=$p gpgconf --kill gpg-agent
	done
	for p in "${PEER_PIDS[@]}"; do stop_daemon "$p" || true; done
	# A skipped test (no peer) has nothing worth keeping.
	if [ -n "${BATS_TEST_SKIPPED:-}" ]; then
		rm -rf "$TDIR"
		return 0
	fi
	if ! sanitizer_check "$TDIR"/*.log; then
		grep -E -A 20 'ERROR: [A-Za-z]+Sanitizer|runtime error:' \
		    "$TDIR"/*.log >&2
		ok=1
	fi
	keep_or_remove "$TDIR" "$TDIR/backup.log" dyno-backup 40
	return "$ok"
}

# backup ARG...: dyno-backup on $APP, stdout then stderr.  The last run's
# stderr alone is in $TDIR/err (for the one-line checks); everything also
# goes to $TDIR/backup.log, where teardown looks for sanitizer reports.
backup() {
	local rc=0
	${BACKUP_WRAP:-} "$BIN/dyno-backup" -a "$APP" "$@" >"$TDIR/out" 2>"$TDIR/err" 3>&- ||
	    rc=$?
	cat "$TDIR/out"
	cat "$TDIR/err" >&2
	{ echo "\$ dyno-backup $* -> $rc"; cat "$TDIR/out" "$TDIR/err"; } \
	    >>"$TDIR/backup.log"
	return "$rc"
}
# The failure contract: exactly one line, "dyno-backup: ...", on stderr.
one_line_err() {
	[ "$(grep -c . "$TDIR/err")" -eq 1 ] && grep -q '^dyno-backup: ' "$TDIR/err"
}
err_has() { grep -qiE -- "$1" "$TDIR/err"; }
meta() { sed -n "s/^$2=//p" "$B/$1.meta"; }
# sha [FILE]: the SHA-256 of FILE, or of stdin.
sha() { sha256sum ${1+"$1"} | cut -d' ' -f1; }
# The listed IDs, oldest first, on one line.
listed() { backup list | awk 'NR > 1 { print $1 }' | sort | paste -sd' '; }
tmp_files() { find "$B" -maxdepth 1 -name '.tmp-*' 2>/dev/null; }
tmp_nonempty() {
	[ -n "$(find "$B" -maxdepth 1 -name '.tmp-*' -size +0c 2>/dev/null)" ]
}
# nothing_published: no backup listed, no data file, no temp file.
nothing_published() {
	run backup list
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" =~ ^ID\ +CREATED ]]
	[ -z "$(ls "$B" 2>/dev/null | grep '^b')" ]
	[ -z "$(tmp_files)" ]
}
# set_config URL: DATABASE_URL in the app's config, as dyno-deploy writes it.
set_config() {
	mkdir -p "$APP/.dyno"
	printf 'DATABASE_URL=%s\n' "$1" >"$APP/.dyno/config"
	chmod 600 "$APP/.dyno/config"
}
# start_fifo_capture: a capture whose dump is `cat` of a FIFO that this
# shell holds open (fd 8), fed a little data; returns once the dump has
# reached the temp file, the capture still running (its pid in CAP_PID).
start_fifo_capture() {
	mkfifo "$TDIR/fifo"
	"$BIN/dyno-backup" -a "$APP" capture --cmd "cat '$TDIR/fifo'" \
	    >>"$TDIR/bg.log" 2>&1 3>&- &
	CAP_PID=$!
	BG_PIDS+=("$CAP_PID")
	# Read-write: opening never blocks, and cat sees no EOF until we close.
	exec 8<>"$TDIR/fifo"
	printf 'the first part of a dump\n' >&8
	wait_for 10 tmp_nonempty
}

# ---- sqlite helpers -------------------------------------------------------

command -v sqlite3 >/dev/null && HAVE_SQLITE=1 || HAVE_SQLITE=
need_sqlite() { [ -n "$HAVE_SQLITE" ] || skip "sqlite3 is not installed"; }
# unpack FILE OUT: a stored sqlite backup, decompressed.
unpack() {
	case $1 in
	*.zst) zstd -q -d -c "$1" >"$2" ;;
	*.gz) gzip -d -c "$1" >"$2" ;;
	*) return 1 ;;
	esac
}
# A busy timeout: the writer holds its lock for a moment now and then.
sq() { sqlite3 -batch -cmd '.timeout 10000' "$@"; }
# The whole database as SQL, hashed: equal hashes, equal contents.
sq_sum() { sq "$1" .dump | sha; }
sq_rows() { sq "$1" 'SELECT count(*) FROM t' 2>/dev/null; }
sq_rows_gt() { [ "$(sq_rows "$1")" -gt "$2" ]; }
# A small table of 1000 rows.
make_sqlite() {
	sq "$1" "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
	    WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g
	    WHERE i < 1000) INSERT INTO t SELECT i, hex(randomblob(20)) FROM g;"
}

# The writer: each transaction inserts two rows with the same batch number,
# so a backup that caught half a transaction shows a batch of one.  It runs
# until STOP exists (or COUNT batches), in journal mode MODE, with a busy
# timeout like an app's.  The 2 ms between transactions is a load shape (a
# busy app), not a synchronisation: without it a rollback-mode writer
# starves every reader, the test's own counting queries too.
SQLITE_WRITER='
import os, sqlite3, sys, time
db, stop, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = sqlite3.connect(db, timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=" + mode)
c.execute("CREATE TABLE IF NOT EXISTS t (batch INTEGER, n INTEGER, pad TEXT)")
b = c.execute("SELECT coalesce(max(batch), 0) FROM t").fetchone()[0]
while n != 0 and not os.path.exists(stop):
    n -= 1
    b += 1
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO t VALUES (?, 1, ?)", (b, os.urandom(60).hex()))
    c.execute("INSERT INTO t VALUES (?, 2, ?)", (b, os.urandom(60).hex()))
    c.execute("COMMIT")
    if n < 0:
        time.sleep(0.002)
'

# ---- PostgreSQL ---------------------------------------------------------------

@test "postgres: capture from .dyno/config, list, info, then restore round-trips 100k rows" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY, v text);
	    INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g"
	before=$(pg_sum "$db")
	[[ "$before" == "100000 "* ]]
	set_config "$(pg_url "$db")"

	# No --db: DATABASE_URL from the app's config.  Silent on success.
	run backup capture
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ -f "$B/b001.meta" ]
	[ -f "$B/b001.dump" ]
	[ "$(stat -c %a "$B")" = 700 ]
	[ "$(stat -c %a "$B/b001.meta")" = 600 ]
	[ "$(stat -c %a "$B/b001.dump")" = 600 ]
	# A custom-format dump that pg_restore can read.
	pg_restore --list "$B/b001.dump" | grep -q 'TABLE DATA public t '

	[ "$(meta b001 id)" = b001 ]
	[ "$(meta b001 kind)" = manual ]
	[ "$(meta b001 status)" = completed ]
	[ "$(meta b001 type)" = postgres ]
	[ "$(meta b001 file)" = b001.dump ]
	[ "$(meta b001 size)" = "$(stat -c %s "$B/b001.dump")" ]
	[ "$(meta b001 sha256)" = "$(sha "$B/b001.dump")" ]
	[[ "$(meta b001 duration_ms)" =~ ^[0-9]+$ ]]
	[[ "$(meta b001 tools)" == *pg_dump* ]]
	created=$(meta b001 created_unix)
	[ $(( $(date +%s) - created )) -lt 300 ]
	[ "$(meta b001 created)" = "$(date -u -d "@$created" +%Y-%m-%dT%H:%M:%SZ)" ]
	# The URL with the password masked; the password nowhere.
	[ "$(meta b001 database)" = "postgres://postgres:***@127.0.0.1:$PG_PORT/$db" ]
	run grep -rlF "$PG_PASSWORD" "$B"
	[ "$status" -eq 1 ]

	run backup list
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" =~ ^ID\ +CREATED\ +SIZE\ +KIND\ +STATUS\ +REMOTE$ ]]
	when=$(date -u -d "@$created" '+%Y-%m-%d %H:%M:%S UTC')
	[[ "${lines[1]}" =~ ^b001\ +"$when"\ +.+\ +manual\ +completed\ +-$ ]]

	# info ID, info latest and bare info: the meta's lines.
	for args in b001 latest ''; do
		run backup info $args
		[ "$status" -eq 0 ]
		[ "$output" = "$(cat "$B/b001.meta")" ]
	done

	psql_db "$db" "DELETE FROM t WHERE id % 3 = 0; UPDATE t SET v = 'changed' WHERE id < 500"
	[ "$(pg_sum "$db")" != "$before" ]
	run backup restore b001 --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(pg_sum "$db")" = "$before" ]
}

@test "postgres: restore refuses without --confirm and with a wrong name; the database is untouched" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY, v text);
	    INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g"
	# postgresql:// is the same as postgres://.
	url=$(pg_url "$db")
	run backup capture --db "postgresql://${url#postgres://}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta b001 type)" = postgres ]
	psql_db "$db" "DELETE FROM t WHERE id > 100"
	after=$(pg_sum "$db")

	run backup restore b001 --db "$(pg_url "$db")"
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has --confirm
	[ "$(pg_sum "$db")" = "$after" ]

	for name in other shopx "$APP"; do
		run backup restore b001 --db "$(pg_url "$db")" --confirm "$name"
		echo "--confirm $name: $output"
		[ "$status" -eq 1 ]
		one_line_err
		err_has --confirm
		[ "$(pg_sum "$db")" = "$after" ]
	done
	[[ "$after" == "100 "* ]]
}

@test "postgres: a failed dump (wrong password, server down, empty output) publishes nothing" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY, v text);
	    INSERT INTO t VALUES (1, 'one')"

	# A wrong password really fails (scram), and the message says so
	# without showing it.
	run backup capture --db "$(pg_url "$db" WrongPw9x)"
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has password
	fails grep -qF WrongPw9x "$TDIR/err"
	nothing_published

	# Nobody listens on that port.
	down=$(pick_port)
	run backup capture --db "postgres://postgres:$PG_PASSWORD@127.0.0.1:$down/$db"
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'refused|connect'
	fails grep -qF "$PG_PASSWORD" "$TDIR/err"
	nothing_published

	# A command that prints nothing is no backup.
	run backup capture --cmd true
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has empty
	nothing_published

	# Output, chatter on stderr and a failing exit status: not a backup
	# either, and still one line.
	run backup capture --cmd 'echo half a dump; echo oops >&2; echo more >&2; exit 3'
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	nothing_published

	# And the same app still captures fine afterwards.
	run backup capture --db "$(pg_url "$db")"
	[ "$status" -eq 0 ]
	[ "$(listed | wc -w)" -eq 1 ]

	# The command starts clean: only the fds it is given, stdin
	# /dev/null, no signal left ignored.
	run sh -c 'trap "" INT; exec "$@" 9<"$0"' /dev/zero \
	    "$BIN/dyno-backup" -a "$APP" capture --cmd "sh '$DYNO_ROOT/t/peers/childinfo.sh' '$TDIR/cmd'; echo data"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cat "$TDIR/cmd.fds")" = "0 1 2" ]
	[ "$(cat "$TDIR/cmd.stdin")" = /dev/null ]
	[ "$(cat "$TDIR/cmd.sigign")" = 0000000000000000 ]
	[ "$(cat "$TDIR/cmd.nnp")" = 0 ]	# --cmd may use sudo
}

# argv_with_secret: the processes whose command line holds the secret in
# $TDIR/secret (a pattern file: a pattern in grep's own argv would match
# grep itself).  The secret is this test's own, so only its processes count.
argv_with_secret() {
	grep -lFf "$TDIR/secret" /proc/[0-9]*/cmdline 2>/dev/null || true
}
# cmdline PID: its command line, the NULs between arguments as spaces.
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" | sed 's/ $//'; }
# release TOOL: let the wrapped TOOL, waiting on $TDIR/hold, go on.
release() { timeout 30 sh -c "echo go >'$TDIR/hold'"; }

@test "credentials: a --db password is in no process's argv, no backups file, no message; PGPASSWORD carries it" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY, v text);
	    INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200) g"
	before=$(pg_sum "$db")
	# A user and password of this test alone, so a search of every
	# process on the machine finds only ours.
	user=dyno_$RANDOM
	secret=Sk$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$secret" >"$TDIR/secret"
	psql_db postgres "CREATE ROLE $user LOGIN SUPERUSER PASSWORD '$secret'"
	url="postgres://$user:$secret@127.0.0.1:$PG_PORT/$db"
	masked="postgres://$user:${secret//?/\*}@127.0.0.1:$PG_PORT/$db"
	# pg_dump and pg_restore that note their argv and whether PGPASSWORD
	# is set, then (for the dump and the restore, not --version or
	# --list) wait on a FIFO while the test looks at every process's
	# argv, then run the real ones.
	mkdir "$TDIR/wrap"
	mkfifo "$TDIR/hold"
	for tool in pg_dump pg_restore; do
		cat >"$TDIR/wrap/$tool" <<-EOF
			#!/bin/sh
			{ echo "== $tool"; printf '%s\n' "\$@"
			  echo "PGPASSWORD=\${PGPASSWORD:+set}"; } >>'$TDIR/argv'
			case "\$1" in
			--version|--list) ;;
			*) touch '$TDIR/held.$tool'; read x <'$TDIR/hold' ;;
			esac
			exec '$PG_BIN/$tool' "\$@"
		EOF
		chmod +x "$TDIR/wrap/$tool"
	done

	PATH="$TDIR/wrap:$PATH" "$BIN/dyno-backup" -a "$APP" -v capture \
	    --db "$url" >"$TDIR/cap.out" 2>"$TDIR/cap.err" 3>&- &
	CAP_PID=$!
	BG_PIDS+=("$CAP_PID")
	wait_for 30 test -e "$TDIR/held.pg_dump"
	# dyno-backup's own argv shows the URL masked; no process shows it.
	cmdline "$CAP_PID"
	[[ "$(cmdline "$CAP_PID")" == *" capture --db $masked" ]]
	[ -z "$(argv_with_secret)" ]
	release
	rc=0
	wait "$CAP_PID" || rc=$?
	BG_PIDS=()
	cat "$TDIR/cap.err" "$TDIR/argv"
	[ "$rc" -eq 0 ]
	grep -qx '== pg_dump' "$TDIR/argv"
	grep -qx 'PGPASSWORD=set' "$TDIR/argv"
	# -v: progress lines on stderr, the URL masked there too.
	grep -qF "postgres://$user:***@" "$TDIR/cap.err"
	fails grep -qFf "$TDIR/secret" "$TDIR/argv" "$TDIR/cap.out" "$TDIR/cap.err"
	fails grep -rqFf "$TDIR/secret" "$B"
	[ "$(meta b001 database)" = "postgres://$user:***@127.0.0.1:$PG_PORT/$db" ]

	run backup -v verify b001
	[ "$status" -eq 0 ]
	fails grep -qFf "$TDIR/secret" "$TDIR/out" "$TDIR/err"

	psql_db "$db" "DELETE FROM t"
	PATH="$TDIR/wrap:$PATH" "$BIN/dyno-backup" -a "$APP" -v restore b001 \
	    --db "$url" --confirm shop >"$TDIR/res.out" 2>"$TDIR/res.err" 3>&- &
	RES_PID=$!
	BG_PIDS+=("$RES_PID")
	wait_for 30 test -e "$TDIR/held.pg_restore"
	[[ "$(cmdline "$RES_PID")" == *" restore b001 --db $masked --confirm shop" ]]
	[ -z "$(argv_with_secret)" ]
	release
	rc=0
	wait "$RES_PID" || rc=$?
	BG_PIDS=()
	cat "$TDIR/res.err"
	[ "$rc" -eq 0 ]
	[ "$(pg_sum "$db")" = "$before" ]
	grep -qx '== pg_restore' "$TDIR/argv"
	fails grep -qFf "$TDIR/secret" "$TDIR/argv" "$TDIR/res.out" "$TDIR/res.err"
	# pg_dump and the restoring pg_restore both had it.
	[ "$(grep -c '^PGPASSWORD=set' "$TDIR/argv")" -ge 2 ]
	fails grep -rqFf "$TDIR/secret" "$B"

	for cmd in list info; do
		run backup $cmd
		[ "$status" -eq 0 ]
		fails grep -qFf "$TDIR/secret" <<<"$output"
	done
}

@test "a remote copy is fetched bounded: no more than the recorded size, no longer than --transfer-timeout" {
	run backup capture --cmd "head -c 100000 /dev/zero"
	[ "$status" -eq 0 ]
	[ "$(meta b001 size)" = 100000 ]
	python3 "$BATS_TEST_DIRNAME/peers/endless.py" "$TDIR/endless.port" \
	    "$TDIR/endless.log" >"$TDIR/endless.out" 2>&1 3>&- &
	PEER_PIDS+=($!)
	wait_for 10 test -s "$TDIR/endless.port"
	base="http://127.0.0.1:$(cat "$TDIR/endless.port")"
	# The meta file says where the remote copy is; here a store that
	# sends without end, with no length and then with a huge one.
	for path in endless big; do
		sed -i "/^remote=/d" "$B/b001.meta"
		echo "remote=$base/$path/b001.raw" >>"$B/b001.meta"
		start=$(now_ms)
		BACKUP_WRAP="timeout 15" run backup verify b001 --remote
		echo "$output"
		[ "$status" -eq 1 ]
		[[ "$output" == *"the store sends more than the 100000 bytes recorded"* ]]
		[ $(( $(now_ms) - start )) -lt 5000 ]
		# Not tried again, and nothing left behind.
		wait_for 10 grep -q "^/$path/" "$TDIR/endless.log"
		[ "$(grep -c "^/$path/" "$TDIR/endless.log")" -eq 1 ]
		[ -z "$(ls -A "$B" | grep tmp)" ]
	done
	[ "$(awk '/^\/endless\// { sub("sent=", "", $2); print $2 }' "$TDIR/endless.log")" -lt $((16 << 20)) ]
	# A trickle: each try ends at --transfer-timeout.
	sed -i "/^remote=/d" "$B/b001.meta"
	echo "remote=$base/trickle/b001.raw" >>"$B/b001.meta"
	start=$(now_ms)
	BACKUP_WRAP="timeout 30" run backup verify b001 --remote --transfer-timeout 1s --retry 1
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"Timeout was reached"* ]]
	[ $(( $(now_ms) - start )) -lt 8000 ]
	[ "$(grep -c '^/trickle/' "$TDIR/endless.log")" -ge 1 ]
	run backup verify b001 --remote --transfer-timeout 0s
	[ "$status" -eq 2 ]
	[[ "$output" == *"--transfer-timeout 0s: not a duration"* ]]
}

@test "credentials: the password is taken out wherever libpq reads one: pass%77ord=, after a '#', in a user info with '#' and '?', a query with no path" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"
	user=dyno_$RANDOM
	# libpq reads a URL with no '#' fragment and a user info up to its
	# first '@', so a raw '#' or '?' is part of a password.
	secret="Sk$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')#q?z"
	printf '%s\n' "$secret" >"$TDIR/secret"
	psql_db postgres "CREATE ROLE $user LOGIN SUPERUSER PASSWORD '$secret'"
	mkdir "$TDIR/wrap"
	printf '#!/bin/sh\nprintf "%%s\\n" "$@" >>"%s"\nexec "%s/pg_dump" "$@"\n' \
	    "$TDIR/argv" "$PG_BIN" >"$TDIR/wrap/pg_dump"
	chmod +x "$TDIR/wrap/pg_dump"
	hp=127.0.0.1:$PG_PORT
	n=0
	for url in "postgres://$user@$hp/$db?sslmode=disable&pass%77ord=$secret" \
	    "postgres://$user@$hp/$db?application_name=a#b&password=$secret" \
	    "postgres://$user:$secret@$hp/$db?sslmode=disable" \
	    "postgresql://$user@$hp?dbname=$db&password=$secret&sslmode=disable"; do
		n=$((n + 1))
		: >"$TDIR/argv"
		PATH="$TDIR/wrap:$PATH" run timeout 60 "$BIN/dyno-backup" -a "$APP" -v capture --db "$url"
		echo "$url: $output"
		# It worked, so libpq had the password (PGPASSWORD), and no
		# argv, message or meta file shows it.
		[ "$status" -eq 0 ]
		[ -s "$TDIR/argv" ]
		fails grep -qFf "$TDIR/secret" "$TDIR/argv"
		[[ "$output" != *"$secret"* ]]
		fails grep -rqFf "$TDIR/secret" "$B"
	done
	[ "$n" -eq 4 ]
	[ "$(meta b001 database)" = "postgres://$user@$hp/$db?sslmode=disable&pass%77ord=***" ]
	[ "$(meta b002 database)" = "postgres://$user@$hp/$db?application_name=a#b&password=***" ]
	[ "$(meta b003 database)" = "postgres://$user:***@$hp/$db?sslmode=disable" ]
	[ "$(meta b004 database)" = "postgresql://$user@$hp/?dbname=$db&password=***&sslmode=disable" ]
}

# ---- capture and its failures -----------------------------------------------------

@test "kill -9 mid-capture leaves nothing listed; the next capture succeeds and removes the .tmp-* file" {
	start_fifo_capture
	# The dump is half done: kill the capture and its dump command.
	kill_tree "$CAP_PID"
	BG_PIDS=()
	exec 8>&-
	run backup list
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$(ls "$B" | grep '^b')" ]

	run backup capture --cmd 'echo next'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(listed | wc -w)" -eq 1 ]
	[ -z "$(tmp_files)" ]
	id=$(listed)
	[ "$(cat "$B/$id.raw")" = next ]
}

@test "kill -9 while the dump is verified, or between data and meta, leaves nothing listed and nothing behind" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g"
	# pg_restore --list, the verify step, waits on a FIFO: a capture
	# caught with its dump complete and fsynced but not yet checked.
	mkdir "$TDIR/wrap"
	mkfifo "$TDIR/verify.fifo"
	cat >"$TDIR/wrap/pg_restore" <<-WRAP
	#!/bin/sh
	if [ "\$1" = --list ]; then touch '$TDIR/verifying'; read x <'$TDIR/verify.fifo'; fi
	exec '$PG_BIN/pg_restore' "\$@"
	WRAP
	chmod +x "$TDIR/wrap/pg_restore"
	PATH=$TDIR/wrap:$PATH "$BIN/dyno-backup" -a "$APP" capture --db "$(pg_url "$db")" \
	    >>"$TDIR/bg.log" 2>&1 3>&- &
	CAP_PID=$!
	BG_PIDS+=("$CAP_PID")
	wait_for 30 test -e "$TDIR/verifying"
	tmp_nonempty
	kill_tree "$CAP_PID"
	BG_PIDS=()
	[ "$(listed)" = "" ]
	# The kill came between the data file's rename and its meta: a data
	# file with no meta is no backup, and the next run removes it.
	printf 'half published' >"$B/b007.dump"
	[ "$(listed)" = "" ]
	# prune will not run after a capture that never finished
	run backup prune
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'stopped|failed'
	[ -z "$(tmp_files)" ]
	[ ! -e "$B/b007.dump" ]
	run backup capture --db "$(pg_url "$db")"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(listed)" = b001 ]
	[ -z "$(tmp_files)" ]
	[ "$(ls "$B")" = "$(printf 'b001.dump\nb001.meta')" ]
}

@test "lock: a second capture while one runs exits 1 naming the running pid; the first completes" {
	start_fifo_capture
	run backup capture --cmd 'echo second'
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has "pid $CAP_PID\) is running"
	[ "$(cat "$B/.lock")" = "$CAP_PID" ]
	# Let the first one finish: the FIFO's last writer goes away.
	exec 8>&-
	wait_for 20 pid_gone "$CAP_PID"
	rc=0
	wait "$CAP_PID" || rc=$?
	BG_PIDS=()
	cat "$TDIR/bg.log"
	[ "$rc" -eq 0 ]
	[ "$(listed)" = b001 ]
	[ "$(cat "$B/b001.raw")" = 'the first part of a dump' ]
	[ "$(meta b001 type)" = cmd ]
	[ -z "$(tmp_files)" ]
}

# ---- retention -----------------------------------------------------------------

# expect_retention EVENTS OUTDIR: from "UNIX KIND" lines (in capture order,
# IDs b001...), what borg-style pruning keeps, worked out here and not by
# the program: OUTDIR/captured (after the --scheduled captures, each of which
# pruned with keep 100/100/100), OUTDIR/pruned (after prune 7/4/10) and
# OUTDIR/final (after one more scheduled capture, UNIX in OUTDIR/next,
# pruning 7/4/10) and OUTDIR/small (then pruned 3/1/2).
expect_retention() {
	python3 - "$1" "$2" <<-'EOF'
		import sys, datetime as dt
		events, out = sys.argv[1], sys.argv[2]
		def day(t): return dt.datetime.fromtimestamp(t, dt.timezone.utc).date()
		def week(t): return day(t).isocalendar()[:2]
		def prune(bs, daily, weekly, manual):
		    keep = set()
		    sched = sorted([b for b in bs if b[2] == "scheduled"],
		                   key=lambda b: b[1], reverse=True)
		    # borg's prune_split: newest first; a period is counted once,
		    # and not at all when its newest backup is already kept.
		    for period, n in ((day, daily), (week, weekly)):
		        last, kept = None, 0
		        for b in sched:
		            if kept == n:
		                break
		            p = period(b[1])
		            if p != last:
		                last = p
		                if b[0] not in keep:
		                    keep.add(b[0])
		                    kept += 1
		    man = sorted([b for b in bs if b[2] == "manual"],
		                 key=lambda b: b[1], reverse=True)
		    keep.update(b[0] for b in man[:manual])
		    keep.add(max(bs, key=lambda b: b[1])[0])
		    return [b for b in bs if b[0] in keep]
		def ids(bs): return " ".join(sorted(b[0] for b in bs)) + "\n"
		bs = []
		for i, line in enumerate(open(events)):
		    t, kind = line.split()
		    bs.append(("b%03d" % (i + 1), int(t), kind))
		    if kind == "scheduled":
		        bs = prune(bs, 100, 100, 100)
		open(out + "/captured", "w").write(ids(bs))
		bs = prune(bs, 7, 4, 10)
		open(out + "/pruned", "w").write(ids(bs))
		t = max(b[1] for b in bs) + 86400
		open(out + "/next", "w").write("%d\n" % t)
		bs.append(("b%03d" % (len(open(events).readlines()) + 1), t, "scheduled"))
		bs = prune(bs, 7, 4, 10)
		open(out + "/final", "w").write(ids(bs))
		open(out + "/small", "w").write(ids(prune(bs, 3, 1, 2)))
	EOF
}

@test "prune: 7 daily, 4 weekly (borg-style) and 10 manual kept over a faked 60-day calendar; --keep-daily, --keep-weekly and --keep-manual set the counts" {
	export TZ=UTC
	# Daily scheduled captures at 03:00 for 60 days from Monday
	# 2026-03-02, a second one at 21:00 on every tenth day (only the
	# day's newest counts), and 12 manual ones at noon every fifth day.
	start=$(date -u -d 2026-03-02T00:00:00Z +%s)
	for d in $(seq 0 59); do
		echo "$((start + d * 86400 + 3 * 3600)) scheduled"
		[ $((d % 5)) -ne 2 ] || echo "$((start + d * 86400 + 12 * 3600)) manual"
		[ $((d % 10)) -ne 4 ] || echo "$((start + d * 86400 + 21 * 3600)) scheduled"
	done >"$TDIR/events"
	[ "$(grep -c manual "$TDIR/events")" -eq 12 ]
	expect_retention "$TDIR/events" "$TDIR"

	n=0
	while read -r t kind; do
		n=$((n + 1))
		if [ "$kind" = scheduled ]; then
			set -- --scheduled --keep-daily 100 --keep-weekly 100 --keep-manual 100
		else
			set --
		fi
		DYNO_BACKUP_NOW=$t run backup capture --cmd "echo $n" "$@"
		[ "$status" -eq 0 ] || { echo "capture $n at $t: $output"; false; }
	done <"$TDIR/events"
	# The faked time is the recorded one.
	[ "$(meta b001 created)" = 2026-03-02T03:00:00Z ]
	[ "$(meta b001 created_unix)" = $((start + 3 * 3600)) ]
	[ "$(meta b001 kind)" = scheduled ]
	[ "$(meta b004 kind)" = manual ]
	echo "captured: want $(cat "$TDIR/captured")"
	echo "          got  $(listed)"
	[ "$(listed)" = "$(cat "$TDIR/captured")" ]

	# --dry-run names what it would delete and deletes nothing.
	run backup prune --dry-run
	echo "$output"
	[ "$status" -eq 0 ]
	gone=$(comm -23 <(tr ' ' '\n' <"$TDIR/captured") <(tr ' ' '\n' <"$TDIR/pruned"))
	[ -n "$gone" ]
	for id in $gone; do grep -qw "$id" <<<"$output"; done
	[ "$(listed)" = "$(cat "$TDIR/captured")" ]

	run backup prune
	echo "$output"
	[ "$status" -eq 0 ]
	echo "pruned: want $(cat "$TDIR/pruned")"
	echo "        got  $(listed)"
	[ "$(listed)" = "$(cat "$TDIR/pruned")" ]
	# 7 daily + 4 weekly + 10 manual, and their files only.
	[ "$(listed | wc -w)" -eq 21 ]
	[ "$(ls "$B" | grep -c '^b')" -eq 42 ]
	for id in $gone; do [ -z "$(ls "$B" | grep "^$id\.")" ]; done

	# A scheduled capture prunes by itself, with the default 7/4/10.
	DYNO_BACKUP_NOW=$(cat "$TDIR/next") run backup capture --cmd 'echo last' --scheduled
	[ "$status" -eq 0 ]
	echo "final: want $(cat "$TDIR/final")"
	echo "       got  $(listed)"
	[ "$(listed)" = "$(cat "$TDIR/final")" ]

	# Smaller counts, each from its own flag.
	run backup prune --keep-daily 3 --keep-weekly 1 --keep-manual 2
	[ "$status" -eq 0 ]
	echo "small: want $(cat "$TDIR/small")"
	echo "       got  $(listed)"
	[ "$(listed)" = "$(cat "$TDIR/small")" ]
	[ "$(listed | wc -w)" -eq 6 ]
}

@test "prune: refuses after a failed capture unless --force; --dry-run deletes nothing; the newest stays" {
	now=$(date +%s)
	for n in $(seq 1 12); do
		DYNO_BACKUP_NOW=$((now - 3600 + n * 60)) run backup capture --cmd "echo $n"
		[ "$status" -eq 0 ]
	done
	all=$(listed)
	[ "$(wc -w <<<"$all")" -eq 12 ]

	run backup capture --cmd false
	[ "$status" -eq 1 ]
	run backup prune
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	[ "$(listed)" = "$all" ]

	run backup prune --dry-run --force
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qw b001 <<<"$output"
	grep -qw b002 <<<"$output"
	[ "$(listed)" = "$all" ]
	[ -f "$B/b001.raw" ]

	run backup prune --force
	[ "$status" -eq 0 ]
	[ "$(listed)" = "$(printf 'b%03d ' $(seq 3 12) | sed 's/ $//')" ]
	[ ! -e "$B/b001.meta" ]
	[ ! -e "$B/b001.raw" ]

	# After a good capture prune runs again; keeping no manual backup
	# still keeps the newest one.
	DYNO_BACKUP_NOW=$((now + 60)) run backup capture --cmd 'echo newest'
	[ "$status" -eq 0 ]
	newest=$(backup info | sed -n 's/^id=//p')
	[ "$(cat "$B/$newest.raw")" = newest ]
	run backup prune --keep-manual 0
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(listed)" = "$newest" ]
}

# ---- verify --------------------------------------------------------------------

@test "verify: an intact backup passes; a flipped byte exits 1 and marks it corrupt" {
	run backup capture --cmd 'seq 1 20000'
	[ "$status" -eq 0 ]
	run backup capture --cmd 'seq 1 30000'
	[ "$status" -eq 0 ]
	run backup verify b001
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(meta b001 status)" = completed ]

	# One byte in the middle, changed in place.
	printf 'X' | dd of="$B/b001.raw" bs=1 seek=1000 conv=notrunc status=none
	run backup verify b001
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has b001
	[ "$(meta b001 status)" = corrupt ]
	backup list | grep -qE '^b001 .* corrupt +-$'
	# The other one is fine, and verify without ID checks the newest.
	run backup verify
	[ "$status" -eq 0 ]
	[ "$(meta b002 status)" = completed ]
}

# ---- sqlite ----------------------------------------------------------------------

# writer_consistency MODE: captures of a database in journal mode MODE while
# the writer commits are each a consistent prefix of its transactions, and
# the writer is never stopped by them.
writer_consistency() {
	local mode=$1 db=$APP/live.db rows last id f rc
	python3 -c "$SQLITE_WRITER" "$db" "$TDIR/stop" 500 "$mode" >/dev/null
	[ "$(sq "$db" 'PRAGMA journal_mode')" = "$mode" ]
	python3 -c "$SQLITE_WRITER" "$db" "$TDIR/stop" -1 "$mode" >/dev/null 3>&- &
	WRITER=$!
	BG_PIDS+=("$WRITER")
	wait_for 10 sq_rows_gt "$db" 1100
	for i in 1 2 3; do
		rows=$(sq_rows "$db")
		run backup capture --db "sqlite://$db"
		echo "$output"
		[ "$status" -eq 0 ]
		# The writer gets on between captures (and during them).
		wait_for 10 sq_rows_gt "$db" $((rows + 40))
	done
	[ "$(listed)" = "b001 b002 b003" ]
	last=0
	for id in b001 b002 b003; do
		f=$B/$(meta "$id" file)
		[ "$(meta "$id" type)" = sqlite ]
		rm -f "$TDIR/check.db"
		unpack "$f" "$TDIR/check.db"
		[ "$(sq "$TDIR/check.db" 'PRAGMA integrity_check')" = ok ]
		# Whole transactions only, and a prefix of them: batches 1..N.
		[ "$(sq "$TDIR/check.db" 'SELECT count(*) FROM (SELECT batch
		    FROM t GROUP BY batch HAVING count(*) != 2)')" = 0 ]
		[ "$(sq "$TDIR/check.db" 'SELECT count(DISTINCT batch) = max(batch)
		    AND min(batch) = 1 FROM t')" = 1 ]
		rows=$(sq_rows "$TDIR/check.db")
		[ "$rows" -gt "$last" ]
		last=$rows
	done
	# The writer was never stopped by the backups, and goes on.
	kill -0 "$WRITER"
	wait_for 10 sq_rows_gt "$db" "$last"
	touch "$TDIR/stop"
	rc=0
	wait "$WRITER" || rc=$?
	BG_PIDS=()
	[ "$rc" -eq 0 ]
}

@test "sqlite: captures while a writer commits (rollback journal) are consistent; the writer goes on" {
	need_sqlite
	writer_consistency delete
}

@test "sqlite: captures while a writer commits (WAL) are consistent; the writer goes on" {
	need_sqlite
	writer_consistency wal
}

@test "sqlite: zstd round trip via restore --confirm; the file is replaced by rename" {
	need_sqlite
	command -v zstd >/dev/null || skip "zstd is not installed"
	make_sqlite "$APP/data.db"
	before=$(sq_sum "$APP/data.db")
	# A relative sqlite: URL in the config is relative to the app.
	set_config sqlite:data.db
	run backup capture
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta b001 file)" = b001.sqlite.zst ]
	[ "$(meta b001 type)" = sqlite ]
	[ "$(stat -c %a "$B/b001.sqlite.zst")" = 600 ]
	zstd -q -t "$B/b001.sqlite.zst"
	[ "$(meta b001 sha256)" = "$(sha "$B/b001.sqlite.zst")" ]
	unpack "$B/b001.sqlite.zst" "$TDIR/check.db"
	[ "$(sq_sum "$TDIR/check.db")" = "$before" ]
	run backup verify b001
	[ "$status" -eq 0 ]

	sq "$APP/data.db" 'DELETE FROM t WHERE id > 10'
	changed=$(sq_sum "$APP/data.db")
	ino=$(stat -c %i "$APP/data.db")
	run backup restore b001
	[ "$status" -eq 1 ]
	err_has --confirm
	run backup restore b001 --confirm wrong
	[ "$status" -eq 1 ]
	err_has --confirm
	[ "$(stat -c %i "$APP/data.db")" = "$ino" ]
	[ "$(sq_sum "$APP/data.db")" = "$changed" ]

	run backup restore b001 --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sq_sum "$APP/data.db")" = "$before" ]
	[ "$(sq "$APP/data.db" 'PRAGMA integrity_check')" = ok ]
	# A new file renamed over the old one; nothing left beside it.
	[ "$(stat -c %i "$APP/data.db")" != "$ino" ]
	[ "$(ls -A "$APP" | paste -sd' ')" = ".dyno data.db" ]

	# A bare path ending .db is sqlite too, relative to the app.
	run backup capture --db data.db
	echo "$output"
	[ "$status" -eq 0 ]
	id=$(backup info | sed -n 's/^id=//p')
	[ "$(meta "$id" file)" = "$id.sqlite.zst" ]
	unpack "$B/$id.sqlite.zst" "$TDIR/check1.db"
	[ "$(sq_sum "$TDIR/check1.db")" = "$before" ]

	# With no config var, DATABASE_URL comes from the app's .env.
	rm "$APP/.dyno/config"
	echo 'DATABASE_URL=sqlite:data.db' >"$APP/.env"
	run backup capture
	echo "$output"
	[ "$status" -eq 0 ]
	id=$(backup info | sed -n 's/^id=//p')
	[ "$(meta "$id" type)" = sqlite ]
	unpack "$B/$id.sqlite.zst" "$TDIR/check2.db"
	[ "$(sq_sum "$TDIR/check2.db")" = "$before" ]
}

@test "sqlite: gzip when zstd is not on PATH; DATABASE_URL from .env" {
	need_sqlite
	# A PATH with everything this machine has except zstd.
	mkdir "$TDIR/nozstd"
	for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin "$PG_BIN"; do
		# Duplicates (/bin is /usr/bin here) are refused: fine.
		[ ! -d "$d" ] || ln -s "$d"/* "$TDIR/nozstd/" 2>/dev/null || true
	done
	rm -f "$TDIR"/nozstd/*zstd*
	PATH=$TDIR/nozstd
	fails command -v zstd
	command -v gzip
	make_sqlite "$APP/data.db"
	before=$(sq_sum "$APP/data.db")
	echo "DATABASE_URL=sqlite://$APP/data.db" >"$APP/.env"

	run backup capture
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta b001 file)" = b001.sqlite.gz ]
	gzip -t "$B/b001.sqlite.gz"
	unpack "$B/b001.sqlite.gz" "$TDIR/check.db"
	[ "$(sq_sum "$TDIR/check.db")" = "$before" ]

	sq "$APP/data.db" 'DELETE FROM t'
	run backup restore b001 --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sq_sum "$APP/data.db")" = "$before" ]
}

@test "sqlite: restore keeps the old file's owner and mode, and removes its -wal, -shm and -journal" {
	need_sqlite
	[ "$(id -u)" = 0 ] || skip "chown needs root"
	make_sqlite "$APP/data.db"
	before=$(sq_sum "$APP/data.db")
	backup capture --db sqlite:data.db
	sq "$APP/data.db" 'DELETE FROM t WHERE id > 5'
	chown 65534:65534 "$APP/data.db"
	chmod 640 "$APP/data.db"
	# Left by the old database's writer; replayed into the new file they
	# would spoil it.
	for side in -wal -shm -journal; do echo stale >"$APP/data.db$side"; done
	run backup restore b001 --db sqlite:data.db --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(stat -c '%a %u:%g' "$APP/data.db")" = "640 65534:65534" ]
	[ "$(ls -A "$APP" | paste -sd' ')" = ".dyno data.db" ]
	[ "$(sq_sum "$APP/data.db")" = "$before" ]
}

@test "prune: a corrupt backup is never counted as kept, so it goes" {
	for n in 1 2 3; do backup capture --cmd "seq 1 ${n}000"; done
	printf 'X' | dd of="$B/b002.raw" bs=1 seek=100 conv=notrunc status=none
	run backup verify b002
	[ "$status" -eq 1 ]
	[ "$(meta b002 status)" = corrupt ]
	# Two manual ones kept: the two newest completed, b003 and b001.
	run backup prune --keep-manual 2
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(listed)" = "b001 b003" ]
	[ -z "$(ls "$B" | grep '^b002')" ]
}

# ---- S3 (moto) -------------------------------------------------------------------

s3_env() {
	export AWS_ACCESS_KEY_ID=$AWS_KEY AWS_SECRET_ACCESS_KEY=$AWS_SECRET
	ENDPOINT=http://127.0.0.1:$MOTO_PORT
}

@test "s3: capture --to uploads; same sha256 in moto; meta and list show the remote; verify and restore from it" {
	need_moto
	s3_env
	run backup capture --cmd 'seq 1 50000' --to "s3://$BUCKET/nightly" --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	key=nightly/shop-b001.raw
	s3_get "$key" "$TDIR/obj"
	[ "$(sha "$TDIR/obj")" = "$(meta b001 sha256)" ]
	cmp "$TDIR/obj" "$B/b001.raw"
	[ "$(meta b001 remote)" = "s3://$BUCKET/$key" ]
	[ "$(meta b001 remote_size)" = "$(stat -c %s "$TDIR/obj")" ]
	md5=$(md5sum <"$TDIR/obj" | cut -d' ' -f1)
	[ "$(meta b001 remote_etag | tr -d '"')" = "$md5" ]
	[ "$(s3_etag "$key")" = "$md5" ]
	backup list | grep -qE "^b001 .* s3://$BUCKET/nightly/shop-b001\.raw\$"

	run backup verify b001 --remote --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 0 ]
	run backup restore b001 --remote --endpoint "$ENDPOINT" \
	    --cmd "cat >'$TDIR/restored1'" --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	cmp "$TDIR/obj" "$TDIR/restored1"
	# The local copy gone: restore uses the remote one by itself.
	rm "$B/b001.raw"
	run backup restore b001 --endpoint "$ENDPOINT" \
	    --cmd "cat >'$TDIR/restored2'" --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	cmp "$TDIR/obj" "$TDIR/restored2"

	# A remote copy changed behind our back fails verify --remote.
	echo tampered >"$TDIR/bad"
	s3_put "$key" "$TDIR/bad"
	run backup verify b001 --remote --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
}

@test "s3: --multipart-size 5M uploads a 12 MB backup in 3 parts, intact" {
	need_moto
	s3_env
	run backup capture --cmd 'head -c 12M /dev/urandom' --multipart-size 5M \
	    --to "s3://$BUCKET/big" --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta b001 size)" = 12582912 ]
	s3_get big/shop-b001.raw "$TDIR/obj"
	cmp "$TDIR/obj" "$B/b001.raw"
	# S3's multipart ETag: MD5 of the parts' MD5s, then -PARTS.
	want=$(python3 - "$TDIR/obj" <<-'EOF'
		import hashlib, sys
		f, parts = open(sys.argv[1], "rb"), []
		while True:
		    b = f.read(5 * 1024 * 1024)
		    if not b:
		        break
		    parts.append(hashlib.md5(b).digest())
		print("%s-%d" % (hashlib.md5(b"".join(parts)).hexdigest(), len(parts)))
	EOF
	)
	[[ "$want" == *-3 ]]
	[ "$(s3_etag big/shop-b001.raw)" = "$want" ]
	[ "$(meta b001 remote_etag | tr -d '"')" = "$want" ]
	[ "$(meta b001 remote_size)" = 12582912 ]
}

@test "s3: an upload through a proxy that answers 503 twice retries after Retry-After and lands intact" {
	need_moto
	s3_env
	start_flaky 2
	t0=$(now_ms)
	run backup capture --cmd 'seq 1 40000' --to "s3://$BUCKET/flaky" \
	    --endpoint "http://127.0.0.1:$FLAKY_PORT"
	t1=$(now_ms)
	echo "$output"
	cat "$TDIR/flaky.log"
	[ "$status" -eq 0 ]
	# The refusals really were served, then the upload went through.
	[ "$(sed -n '1s/.* //p;2s/.* //p' "$TDIR/flaky.log" | paste -sd' ')" = "503 503" ]
	sed -n '3,$p' "$TDIR/flaky.log" | grep -qx "PUT /$BUCKET/flaky/shop-b001.raw 200"
	# Retry-After: 1, twice.
	[ $((t1 - t0)) -ge 1900 ]
	s3_get flaky/shop-b001.raw "$TDIR/obj"
	cmp "$TDIR/obj" "$B/b001.raw"
	[ -n "$(meta b001 remote_etag)" ]
}

@test "s3: --retry 1 gives up after one retry on 503; the local backup stays listed" {
	need_moto
	s3_env
	start_flaky 100
	run backup capture --cmd 'seq 1 1000' --retry 1 --to "s3://$BUCKET/giveup" \
	    --endpoint "http://127.0.0.1:$FLAKY_PORT"
	echo "$output"
	cat "$TDIR/flaky.log"
	[ "$status" -eq 1 ]
	one_line_err
	# The first try and one retry, both refused; then no more.
	[ "$(grep -c " 503$" "$TDIR/flaky.log")" -eq 2 ]
	[ "$(grep -vc " 503$" "$TDIR/flaky.log")" -eq 0 ]
	backup list | grep -qE '^b001 .* completed +-$'
	[ "$(meta b001 sha256)" = "$(sha "$B/b001.raw")" ]
	fails s3_get giveup/shop-b001.raw "$TDIR/obj"
}

@test "s3 retry: --retry 2 against 500s without Retry-After tries 3 times, waiting 1 s then 2 s" {
	need_moto
	s3_env
	start_flaky 100 500 -
	t0=$(now_ms)
	run backup -v capture --cmd 'seq 1 1000' --retry 2 --to "s3://$BUCKET/backoff" \
	    --endpoint "http://127.0.0.1:$FLAKY_PORT"
	t1=$(now_ms)
	echo "$output"
	cat "$FLAKY_LOG"
	[ "$status" -eq 1 ]
	# What the store was sent: the first try and two retries, no more.
	[ "$(cat "$FLAKY_LOG")" = "$(printf 'PUT /%s/backoff/shop-b001.raw 500\n%.0s' \
	    "$BUCKET" 1 "$BUCKET" 2 "$BUCKET" 3)" ]
	# 1 s, then twice that; and at least that long went by.
	grep -q 'HTTP 500; trying again in 1000 ms (1 of 2)$' "$TDIR/err"
	grep -q 'HTTP 500; trying again in 2000 ms (2 of 2)$' "$TDIR/err"
	[ "$(grep -c 'trying again' "$TDIR/err")" -eq 2 ]
	[ $((t1 - t0)) -ge 3000 ]
	tail -n 1 "$TDIR/err" | grep -q 'upload to .* failed: HTTP 500'
	backup list | grep -qE '^b001 .* completed +-$'
}

@test "s3 retry: a Retry-After: 3 answer is waited out, not the 1 s backoff" {
	need_moto
	s3_env
	start_flaky 1 503 3
	t0=$(now_ms)
	run backup -v capture --cmd 'seq 1 1000' --retry 1 --to "s3://$BUCKET/later" \
	    --endpoint "http://127.0.0.1:$FLAKY_PORT"
	t1=$(now_ms)
	echo "$output"
	cat "$FLAKY_LOG"
	[ "$status" -eq 0 ]
	grep -q 'HTTP 503; trying again in 3000 ms (1 of 1)$' "$TDIR/err"
	[ $((t1 - t0)) -ge 3000 ]
	[ "$(sed -n 1p "$FLAKY_LOG")" = "PUT /$BUCKET/later/shop-b001.raw 503" ]
	[ "$(sed -n 2p "$FLAKY_LOG")" = "PUT /$BUCKET/later/shop-b001.raw 200" ]
	s3_get later/shop-b001.raw "$TDIR/obj"
	cmp "$TDIR/obj" "$B/b001.raw"
}

@test "s3 retry: 408 and 429 are tried again and land; a 403 is tried exactly once" {
	need_moto
	s3_env
	n=0
	for code in 408 429; do
		n=$((n + 1))
		FLAKY_LOG=$TDIR/flaky.$code.log
		start_flaky 1 "$code" -
		run backup capture --cmd "seq 1 $code" --retry 1 --to "s3://$BUCKET/r$code" \
		    --endpoint "http://127.0.0.1:$FLAKY_PORT"
		echo "$code: $output"
		cat "$FLAKY_LOG"
		[ "$status" -eq 0 ]
		[ "$(sed -n 1p "$FLAKY_LOG")" = "PUT /$BUCKET/r$code/shop-b00$n.raw $code" ]
		[ "$(sed -n 2p "$FLAKY_LOG")" = "PUT /$BUCKET/r$code/shop-b00$n.raw 200" ]
		s3_get "r$code/shop-b00$n.raw" "$TDIR/obj"
		cmp "$TDIR/obj" "$B/b00$n.raw"
	done
	FLAKY_LOG=$TDIR/flaky.403.log
	start_flaky 100 403 -
	run backup capture --cmd 'seq 1 403' --retry 5 --to "s3://$BUCKET/r403" \
	    --endpoint "http://127.0.0.1:$FLAKY_PORT"
	echo "403: $output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'HTTP 403'
	[ "$(cat "$FLAKY_LOG")" = "PUT /$BUCKET/r403/shop-b003.raw 403" ]
	backup list | grep -qE '^b003 .* completed +-$'
}

# ended PID: PID has exited (a zombie that is not reaped yet counts).
ended() { [ ! -e "/proc/$1" ] || grep -q '^State:.*zombie' "/proc/$1/status"; }

@test "s3 retry: a store that refuses connections is tried again until it listens; the upload lands" {
	need_moto
	s3_env
	port=$(pick_port)
	"$BIN/dyno-backup" -a "$APP" -v capture --cmd 'seq 1 5000' --retry 5 \
	    --to "s3://$BUCKET/late" --endpoint "http://127.0.0.1:$port" \
	    >"$TDIR/late.out" 2>"$TDIR/late.err" 3>&- &
	CAP_PID=$!
	BG_PIDS+=("$CAP_PID")
	# The first try found nobody on the port, and a retry is due.
	wait_for 60 eval 'grep -q "trying again" "$TDIR/late.err" || ended "$CAP_PID"'
	cat "$TDIR/late.err"
	grep -q "PUT s3://$BUCKET/late/shop-b001.raw: Couldn't connect to server; trying again in 1000 ms (1 of 5)$" \
	    "$TDIR/late.err"
	# Now the store listens there.
	start_flaky 0 503 1 "$port"
	rc=0
	wait "$CAP_PID" || rc=$?
	BG_PIDS=()
	cat "$TDIR/late.err" "$FLAKY_LOG"
	[ "$rc" -eq 0 ]
	[ "$(sed -n 1p "$FLAKY_LOG")" = "PUT /$BUCKET/late/shop-b001.raw 200" ]
	s3_get late/shop-b001.raw "$TDIR/obj"
	cmp "$TDIR/obj" "$B/b001.raw"
	[ "$(meta b001 remote)" = "s3://$BUCKET/late/shop-b001.raw" ]
}

@test "s3: a wrong secret fails the upload (exit 1, no retries); the local backup stays; upload ID retries it" {
	need_moto
	s3_env
	AWS_SECRET_ACCESS_KEY=wrong-secret-value
	# Through flaky.py refusing nothing: it counts what moto was sent.
	start_flaky 0
	run backup capture --cmd 'seq 1 1000' --to "s3://$BUCKET/denied" \
	    --endpoint "http://127.0.0.1:$FLAKY_PORT"
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'HTTP 403 SignatureDoesNotMatch'
	# 403 is not worth retrying: one request, refused by moto itself.
	[ "$(cat "$FLAKY_LOG")" = "PUT /$BUCKET/denied/shop-b001.raw 403" ]
	backup list | grep -qE '^b001 .* completed +-$'
	[ "$(meta b001 sha256)" = "$(sha "$B/b001.raw")" ]
	[ -z "$(meta b001 remote)" ]
	fails s3_get denied/shop-b001.raw "$TDIR/obj"

	AWS_SECRET_ACCESS_KEY=$AWS_SECRET
	run backup upload b001 --to "s3://$BUCKET/denied" --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 0 ]
	s3_get denied/shop-b001.raw "$TDIR/obj"
	cmp "$TDIR/obj" "$B/b001.raw"
	[ "$(meta b001 remote)" = "s3://$BUCKET/denied/shop-b001.raw" ]
}

@test "credentials: the AWS secret never appears in meta or -v output" {
	need_moto
	s3_env
	run backup -v capture --cmd 'seq 1 1000' --to "s3://$BUCKET/quiet" --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -s "$TDIR/err" ]
	fails grep -qF "$AWS_SECRET" "$TDIR/out" "$TDIR/err"
	run backup -v verify b001 --remote --endpoint "$ENDPOINT"
	[ "$status" -eq 0 ]
	fails grep -qF "$AWS_SECRET" "$TDIR/out" "$TDIR/err"
	fails grep -rqF "$AWS_SECRET" "$B"
	for cmd in list info; do
		run backup $cmd
		fails grep -qF "$AWS_SECRET" <<<"$output"
	done
}

@test "s3: temporary credentials work only with AWS_SESSION_TOKEN, which every request carries" {
	need_moto
	# A key, secret and session token from moto's STS: moto knows such a
	# key only with its token (x-amz-security-token) and checks the token.
	read -r key secret token < <(sts_creds)
	[[ "$key" == ASIA* ]]
	[ -n "$token" ]
	export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret
	ENDPOINT=http://127.0.0.1:$MOTO_PORT
	run backup capture --cmd 'seq 1 3000' --to "s3://$BUCKET/sts" --endpoint "$ENDPOINT"
	echo "no token: $output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'HTTP 403 InvalidAccessKeyId'
	AWS_SESSION_TOKEN=x$token run backup upload b001 --to "s3://$BUCKET/sts" \
	    --endpoint "$ENDPOINT"
	echo "wrong token: $output"
	[ "$status" -eq 1 ]
	one_line_err
	err_has InvalidToken
	fails s3_get sts/shop-b001.raw "$TDIR/obj"

	export AWS_SESSION_TOKEN=$token
	run backup -v upload b001 --to "s3://$BUCKET/sts" --endpoint "$ENDPOINT"
	echo "$output"
	[ "$status" -eq 0 ]
	s3_get sts/shop-b001.raw "$TDIR/obj"
	cmp "$TDIR/obj" "$B/b001.raw"
	# The data's PUT and HEAD and the meta's PUT all went with it, and the
	# remote copy reads back with it.
	s3_get sts/shop-b001.meta "$TDIR/remote.meta"
	grep -qx "remote=s3://$BUCKET/sts/shop-b001.raw" "$TDIR/remote.meta"
	rm "$B/b001.raw"
	run backup verify b001 --remote --endpoint "$ENDPOINT"
	[ "$status" -eq 0 ]
	# Neither the token nor the secret is written down or shown.
	fails grep -rqF -e "$token" -e "$secret" "$B"
	fails grep -qF -e "$token" -e "$secret" "$TDIR/backup.log"
}

# ---- WebDAV (nginx) ----------------------------------------------------------------

@test "webdav: capture --to http://.../backups/ PUTs the file to nginx; restore fetches it back" {
	need_nginx
	url=http://127.0.0.1:$NGINX_PORT/backups/
	run backup capture --cmd 'seq 1 20000' --to "$url"
	echo "$output"
	[ "$status" -eq 0 ]
	f=$NGINX_ROOT/backups/shop-b001.raw
	[ -f "$f" ]
	[ "$(sha "$f")" = "$(meta b001 sha256)" ]
	[ "$(meta b001 remote)" = "${url}shop-b001.raw" ]
	[ "$(meta b001 remote_size)" = "$(stat -c %s "$f")" ]
	backup list | grep -qF " ${url}shop-b001.raw"

	rm "$B/b001.raw"
	run backup restore b001 --cmd "cat >'$TDIR/restored'" --confirm shop
	echo "$output"
	[ "$status" -eq 0 ]
	cmp "$f" "$TDIR/restored"
}

@test "webdav: basic auth from DYNO_BACKUP_HTTP_AUTH or ~/.netrc; refused without; the password never shown" {
	need_nginx
	url=http://127.0.0.1:$NGINX_PORT/private/
	run backup capture --cmd 'seq 1 100' --to "$url"
	echo "$output"
	[ "$status" -eq 1 ]
	one_line_err
	backup list | grep -qE '^b001 .* completed +-$'
	[ ! -e "$NGINX_ROOT/private/shop-b001.raw" ]

	DYNO_BACKUP_HTTP_AUTH=$DAV_USER:$DAV_PASSWORD run backup -v upload b001 --to "$url"
	echo "$output"
	[ "$status" -eq 0 ]
	cmp "$NGINX_ROOT/private/shop-b001.raw" "$B/b001.raw"
	[ "$(meta b001 remote)" = "${url}shop-b001.raw" ]
	fails grep -qF "$DAV_PASSWORD" "$TDIR/out" "$TDIR/err"
	fails grep -rqF "$DAV_PASSWORD" "$B"

	mkdir "$TDIR/home"
	printf 'machine 127.0.0.1 login %s password %s\n' "$DAV_USER" "$DAV_PASSWORD" \
	    >"$TDIR/home/.netrc"
	chmod 600 "$TDIR/home/.netrc"
	HOME=$TDIR/home run backup capture --cmd 'seq 1 200' --to "$url"
	echo "$output"
	[ "$status" -eq 0 ]
	cmp "$NGINX_ROOT/private/shop-b002.raw" "$B/b002.raw"
}

# ---- download, delete, IDs ---------------------------------------------------------

@test "download to FILE, to - and to ./bNNN.ext gives the stored bytes; delete; unknown IDs; IDs never reused" {
	run backup capture --cmd 'seq 1 30000'
	[ "$status" -eq 0 ]
	run backup capture --cmd 'echo two'
	[ "$status" -eq 0 ]
	want=$(meta b001 sha256)

	run backup download b001 "$TDIR/dl"
	[ "$status" -eq 0 ]
	[ "$(sha "$TDIR/dl")" = "$want" ]
	backup download b001 - >"$TDIR/dl2"
	[ "$(sha "$TDIR/dl2")" = "$want" ]
	mkdir "$TDIR/cwd"
	(cd "$TDIR/cwd" && "$BIN/dyno-backup" -a "$APP" download b001)
	[ "$(sha "$TDIR/cwd/b001.raw")" = "$want" ]
	# DYNO_APP names the app when -a does not.
	DYNO_APP=$APP "$BIN/dyno-backup" download b002 - >"$TDIR/dl3"
	[ "$(cat "$TDIR/dl3")" = two ]

	run backup delete b001
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(listed)" = b002 ]
	[ -z "$(ls "$B" | grep '^b001')" ]

	for args in 'info b999' 'delete b999' 'download b999 -' 'verify b999' \
	    'restore b999 --cmd cat --confirm shop' 'info b001'; do
		run backup $args
		echo "$args -> $status: $output"
		[ "$status" -eq 1 ]
		one_line_err
		id=${args#* }
		err_has "${id%% *}"
	done

	# A deleted ID is not given out again.
	run backup delete b002
	[ "$status" -eq 0 ]
	run backup capture --cmd 'echo three'
	[ "$status" -eq 0 ]
	[ "$(listed)" = b003 ]
}

# ---- schedule and usage --------------------------------------------------------------

@test "schedule --at 02:30 prints one crontab line with the capture options and installs nothing; --db is refused" {
	mkdir -p "$APP/.dyno"
	before=$(find "$APP" -printf '%p %s %T@\n' | sort)
	have_cron=$(command -v crontab || true)
	[ -z "$have_cron" ] || cron_before=$(crontab -l 2>&1 || true)
	cd "$APP"
	run "$BIN/dyno-backup" -a . schedule --at 02:30 --to "s3://$BUCKET/nightly"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == '30 2 * * * '* ]]
	# Absolute paths: cron runs it from elsewhere.
	[[ "$output" == *" $BIN/dyno-backup "* ]]
	[[ "$output" == *" -a $APP "* ]]
	[[ "$output" == *" capture --scheduled"* ]]
	[[ "$output" == *"--to s3://$BUCKET/nightly"* ]]
	[ "$(find "$APP" -printf '%p %s %T@\n' | sort)" = "$before" ]
	[ -z "$have_cron" ] || [ "$(crontab -l 2>&1 || true)" = "$cron_before" ]

	run "$BIN/dyno-backup" -a . schedule --at 25:70
	[ "$status" -eq 2 ]
	# --db would put the password in the crontab.
	run "$BIN/dyno-backup" -a . schedule --db "postgres://u:SchedPw1@127.0.0.1/x"
	echo "$output"
	[ "$status" -eq 2 ]
	grep -q crontab <<<"$output"
	fails grep -q SchedPw1 <<<"$output"
	# The capture options it names go into the line.
	run "$BIN/dyno-backup" -a . schedule --cmd 'pg_dumpall -c' \
	    --endpoint http://127.0.0.1:9/ --keep-daily 3 --keep-weekly 2 --keep-manual 5
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == '0 2 * * * '* ]]
	[[ "$output" == *" --cmd 'pg_dumpall -c'"* ]]
	[[ "$output" == *" --endpoint http://127.0.0.1:9/"* ]]
	[[ "$output" == *" --keep-daily 3 --keep-weekly 2 --keep-manual 5"* ]]
	# --user: the /etc/cron.d form, with a user field cron reads there.
	run "$BIN/dyno-backup" -a . schedule --at 04:05 --user root
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "5 4 * * * root $BIN/dyno-backup -a $APP capture --scheduled" ]]
	run "$BIN/dyno-backup" -a . schedule --user no-such-user-x
	[ "$status" -eq 2 ]
	[[ "$output" == *"--user no-such-user-x: no such user"* ]]
	run "$BIN/dyno-backup" -a . schedule --user 'a b'
	[ "$status" -eq 2 ]
	[[ "$output" == *"not a user name"* ]]
}

@test "usage: --help exits 0 and prints usage; an unknown command or option, or parts under 5M, exit 2" {
	run "$BIN/dyno-backup" --help
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qi usage <<<"$output"
	grep -q capture <<<"$output"
	run "$BIN/dyno-backup" -a "$APP" frobnicate
	echo "$output"
	[ "$status" -eq 2 ]
	run "$BIN/dyno-backup" -a "$APP" capture --bogus
	[ "$status" -eq 2 ]
	run "$BIN/dyno-backup" -a "$APP" prune --keep-daily many
	[ "$status" -eq 2 ]
	# S3 parts are at least 5 MiB; nothing is captured.
	run "$BIN/dyno-backup" -a "$APP" capture --cmd 'echo x' --multipart-size 4M
	echo "$output"
	[ "$status" -eq 2 ]
	grep -q 'at least 5M' <<<"$output"
	[ "$(listed)" = "" ]
}

@test "options: --app DIR and --verbose work as -a and -v; without them a capture is silent" {
	mkdir "$TDIR/elsewhere"
	cd "$TDIR/elsewhere"
	run "$BIN/dyno-backup" --app "$APP" --verbose capture --cmd 'echo long'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cat "$B/b001.raw")" = long ]
	[ -z "$(ls -A "$TDIR/elsewhere")" ]
	# --verbose: what it does, on stderr, in lines of its own.
	[ "${#lines[@]}" -ge 2 ]
	grep -q '^dyno-backup: .*b001' <<<"$output"
	run "$BIN/dyno-backup" --app="$APP" capture --cmd 'echo quiet'
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(cat "$B/b002.raw")" = quiet ]
	run "$BIN/dyno-backup" -h
	[ "$status" -eq 0 ]
	grep -q -- '--verbose' <<<"$output"
}

@test "valgrind: capture, verify, list, download, upload, fetch, restore, prune and delete leak nothing" {
	command -v valgrind >/dev/null || skip "valgrind is not installed"
	[ "$(build_variant)" = default ] || skip "n/a: sanitizer builds do not run under valgrind"
	need_pg
	BACKUP_WRAP="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file=$TDIR/vg.%p.log"
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g"
	backup capture --db "$(pg_url "$db")"
	sqlite3 "$TDIR/app.db" "CREATE TABLE t(a); INSERT INTO t VALUES (1), (2);"
	backup capture --db "sqlite://$TDIR/app.db" --scheduled
	backup capture --cmd 'seq 1 1000'
	backup verify b001
	backup list >/dev/null
	backup info b002 >/dev/null
	backup download b003 "$TDIR/b003.raw"
	backup restore b002 --db "sqlite://$TDIR/app.db" --confirm shop
	backup restore b001 --db "$(pg_url "$db")" --confirm shop
	# the failure paths exit through die(): no leak there either
	run backup capture --db "$(pg_url "$db" WrongPw)"
	[ "$status" -eq 1 ]
	run backup restore b001 --db "$(pg_url "$db")"
	[ "$status" -eq 1 ]
	runs=14
	if [ -n "${AWS_SECRET:-}" ]; then
		runs=16
		s3_env
		backup upload b003 --to "s3://$BUCKET/vg" --endpoint "$ENDPOINT"
		rm "$B/b003.raw"
		backup verify b003 --remote
	fi
	backup capture --cmd 'echo ok'
	backup prune --keep-manual 1
	backup delete b002
	cat "$TDIR"/vg.*.log >&2
	# (a fork's error before its exec is in its own log, and does not
	# change dyno-backup's exit status)
	fails grep -q '^==' "$TDIR"/vg.*.log
	# every run above really ran under valgrind (and so did each
	# fork before its exec: valgrind opens a log for it too)
	[ "$(grep -c '^\$ dyno-backup' "$TDIR/backup.log")" -eq "$runs" ]
	[ "$(ls "$TDIR"/vg.*.log | wc -l)" -ge "$runs" ]
}

@test "encryption: --encrypt-to stores gpg ciphertext; verify and restore decrypt it; without the secret key restore refuses" {
	command -v gpg >/dev/null || skip "gpg is not installed"
	export GNUPGHOME=$TDIR/gnupg
	mkdir -m 700 "$GNUPGHOME"
	gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	    --quick-gen-key 'dyno test <dyno@example.invalid>' future-default default never
	run backup capture --cmd 'echo PLAINMARKER; seq 1 1000' --encrypt-to dyno@example.invalid
	[ "$status" -eq 0 ]
	[ "$(meta b001 file)" = b001.raw.gpg ]
	[ "$(meta b001 encryption)" = gpg ]
	[ "$(meta b001 plain_sha256)" = "$( (echo PLAINMARKER; seq 1 1000) | sha)" ]
	[ "$(sha "$B/b001.raw.gpg")" = "$(meta b001 sha256)" ]
	fails grep -q PLAINMARKER "$B/b001.raw.gpg"
	backup verify b001
	backup restore b001 --cmd "cat >'$TDIR/plain'" --confirm shop
	[ "$(head -n 1 "$TDIR/plain")" = PLAINMARKER ]
	[ "$(sha "$TDIR/plain")" = "$(meta b001 plain_sha256)" ]
	# sqlite, compressed then encrypted: the restore decrypts, decompresses, checks
	sqlite3 "$TDIR/app.db" "CREATE TABLE t(a); INSERT INTO t VALUES (42);"
	backup capture --db "sqlite://$TDIR/app.db" --encrypt-to dyno@example.invalid
	[ "$(meta b002 file)" = b002.sqlite.zst.gpg ]
	sqlite3 "$TDIR/app.db" "DELETE FROM t"
	backup restore b002 --db "sqlite://$TDIR/app.db" --confirm shop
	[ "$(sqlite3 "$TDIR/app.db" 'SELECT a FROM t')" = 42 ]
	# A host with only the public key: verify checks the checksum alone,
	# restore refuses in one line and leaves the database alone.
	export GNUPGHOME=$TDIR/public-only
	mkdir -m 700 "$GNUPGHOME"
	GNUPGHOME=$TDIR/gnupg gpg --batch --export dyno@example.invalid | gpg --batch --quiet --import
	run backup -v verify b002
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'no secret key'
	run backup restore b002 --db "sqlite://$TDIR/app.db" --confirm shop
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'encrypted'
	[ "$(sqlite3 "$TDIR/app.db" 'SELECT a FROM t')" = 42 ]
	# An unknown key is refused before anything is captured.
	run backup capture --cmd 'echo x' --encrypt-to nobody@example.invalid
	[ "$status" -eq 1 ]
	one_line_err
	[ "$(listed)" = "b001 b002" ]
	[ -z "$(tmp_files)" ]
}

@test "sqlite: an app path with a space and a quote captures and restores" {
	need_sqlite
	APP="$TDIR/it's my app"
	B=$APP/.dyno/backups
	mkdir "$APP"
	sqlite3 "$APP/my data.db" "CREATE TABLE t(a); INSERT INTO t VALUES (7);"
	backup capture --db 'my data.db'
	[ "$(meta b001 database)" = "sqlite://$APP/my data.db" ]
	sqlite3 "$APP/my data.db" "DELETE FROM t"
	backup restore b001 --db 'sqlite:my data.db' --confirm "it's my app"
	[ "$(sqlite3 "$APP/my data.db" 'SELECT a FROM t')" = 7 ]
	[ -z "$(tmp_files)" ]
}

@test "postgres: a restore from a corrupted dump stops before its end and leaves the database as it was" {
	need_pg
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
	backup capture --db "$(pg_url "$db")"
	psql_db "$db" "INSERT INTO t VALUES (0, 'after the backup')"
	before=$(pg_sum "$db")
	size=$(stat -c %s "$B/b001.dump")
	for at in 300 $((size / 2)) $((size - 10)); do
		cp "$B/b001.dump" "$TDIR/good.dump"
		# one byte changed: early (the table of contents), mid-data, at the end
		printf '\x5a' | dd of="$B/b001.dump" bs=1 seek="$at" conv=notrunc status=none
		cmp -s "$B/b001.dump" "$TDIR/good.dump" && printf '\x5b' |
		    dd of="$B/b001.dump" bs=1 seek="$at" conv=notrunc status=none
		run backup restore b001 --db "$(pg_url "$db")" --confirm shop
		echo "offset $at: $output"
		[ "$status" -eq 1 ]
		one_line_err
		err_has 'as it was'
		[ "$(pg_sum "$db")" = "$before" ]
		cp "$TDIR/good.dump" "$B/b001.dump"
	done
	# and the intact file restores
	backup restore b001 --db "$(pg_url "$db")" --confirm shop
	[ "$(psql_db "$db" 'SELECT count(*) FROM t')" = 20000 ]
}

@test "import: a new host takes a backup back from S3 alone (meta beside the data) and restores it" {
	need_moto
	need_pg
	s3_env
	db=$(new_db)
	psql_db "$db" "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g"
	want=$(pg_sum "$db")
	backup capture --db "$(pg_url "$db")" --to "s3://$BUCKET/dr" --endpoint "$ENDPOINT"
	backup capture --db "$(pg_url "$db")" --to "s3://$BUCKET/dr" --endpoint "$ENDPOINT"
	s3_get dr/shop-b002.meta "$TDIR/remote.meta"
	grep -qx "sha256=$(meta b002 sha256)" "$TDIR/remote.meta"
	grep -qx "remote=s3://$BUCKET/dr/shop-b002.dump" "$TDIR/remote.meta"
	# The old host is gone; a new one, with another app name, has only the store.
	APP=$TDIR/newhost
	B=$APP/.dyno/backups
	mkdir "$APP"
	backup import "s3://$BUCKET/dr/shop-b002.dump" --endpoint "$ENDPOINT"
	[ "$(listed)" = b002 ]
	backup list | grep -qE "^b002 .* s3://$BUCKET/dr/shop-b002\.dump\$"
	[ ! -e "$B/b002.dump" ]
	run backup import "s3://$BUCKET/dr/shop-b002.meta" --endpoint "$ENDPOINT"
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'already here'
	backup verify b002
	db2=$(new_db)
	backup restore b002 --db "$(pg_url "$db2")" --confirm newhost
	[ "$(pg_sum "$db2")" = "$want" ]
	# the next capture here does not reuse the imported ID
	backup capture --cmd 'echo next'
	[ "$(listed)" = "b002 b003" ]
	# not a backup's location, or no meta there: one line, nothing written
	run backup import "s3://$BUCKET/dr/nothing.dump" --endpoint "$ENDPOINT"
	[ "$status" -eq 1 ]
	one_line_err
	run backup import "s3://$BUCKET/dr/shop-b009.dump" --endpoint "$ENDPOINT"
	[ "$status" -eq 1 ]
	one_line_err
	[ "$(listed)" = "b002 b003" ]
}

@test "s3: missing AWS keys are refused before anything is captured" {
	run backup capture --cmd 'echo x' --to "s3://some-bucket/p"
	[ "$status" -eq 1 ]
	one_line_err
	err_has 'AWS_ACCESS_KEY_ID'
	[ "$(listed)" = "" ]
	[ ! -e "$B/.last-capture" ]
}
