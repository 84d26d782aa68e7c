#!/usr/bin/env bats
# Durable writes, as the kernel sees them: strace records each program's
# fsync and rename calls, and the tests check the order dyno(7) promises
# for data that must survive a power cut: the new file's bytes reach the
# disk (fsync) before it takes the old name (rename), and the folder is
# synced after, so the rename itself is kept.  A reader never sees a name
# whose bytes were lost.

load helpers

setup() {
	command -v strace >/dev/null || skip "strace is not installed"
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-durable.XXXXXX")
	APP=$T/app
	mkdir "$APP"
	cp "$SAMPLE_APP" "$APP/app"
	echo 'web: ./app' > "$APP/Procfile"
}

teardown() {
	keep_or_remove "$T" "$T/trace" strace 40
}

# traced PROGRAM ARG...: run a program of ours under strace; the fsync and
# rename calls (with the paths behind each fd) go to $T/trace.  LeakSanitizer
# cannot run under ptrace: under SAN=1 the other tests look for leaks.
traced() {
	local prog=$1
	shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	    strace -f -qq -y -o "$T/trace" \
	    -e trace=fsync,fdatasync,syncfs,rename,renameat,renameat2 \
	    "$BIN/$prog" "$@"
}

# durable [-l] FINAL: FINAL took its name by a rename from a temp file that
# was fsynced before the rename, and FINAL's folder was fsynced after it.
# With -l FINAL is a symlink, which has no bytes of its own to sync.
durable() {
	local link=0
	[ "$1" = -l ] && { link=1; shift; }
	awk -v final="$1" -v link="$link" '
		function folder(p) { sub(/\/[^\/]*$/, "", p); return p }
		# renameat(5</a/b>, "c", ...): a name relative to a folder fd
		function at(pre, name) {
			if (name ~ /^\// || !match(pre, /<[^>]*>, $/)) return name
			return substr(pre, RSTART + 1, RLENGTH - 4) "/" name
		}
		# fsync(4</a/b/c.tmp.1>) = 0: the path behind the fd
		/fsync\(/ && / = 0$/ {
			p = $0
			sub(/^[^<]*</, "", p); sub(/>.*$/, "", p)
			synced[p] = NR
			if (renamed && p == folder(final)) dir_after = 1
			next
		}
		/rename[a-z0-9]*\(/ && / = 0$/ {
			n = split($0, q, "\"")
			q[2] = at(q[1], q[2]); q[4] = at(q[3], q[4])
			if (q[4] != final) next
			renamed = NR
			if (!link && !(q[2] in synced)) {
				print final ": renamed from " q[2] " with no fsync before"
				bad = 1
			}
			dir_after = 0
		}
		END {
			if (!renamed) { print final ": never renamed into place"; exit 1 }
			if (!dir_after) { print final ": its folder is not fsynced after the rename"; exit 1 }
			exit bad
		}' "$T/trace"
}

# before FIRST SECOND: FIRST was renamed into place, and its folder synced,
# before SECOND was renamed into place.
before() {
	awk -v first="$1" -v second="$2" '
		function folder(p) { sub(/\/[^\/]*$/, "", p); return p }
		# renameat(5</a/b>, "c", ...): a name relative to a folder fd
		function at(pre, name) {
			if (name ~ /^\// || !match(pre, /<[^>]*>, $/)) return name
			return substr(pre, RSTART + 1, RLENGTH - 4) "/" name
		}
		/fsync\(/ && / = 0$/ && done1 {
			p = $0; sub(/^[^<]*</, "", p); sub(/>.*$/, "", p)
			if (p == folder(first)) kept = 1
		}
		/rename[a-z0-9]*\(/ && / = 0$/ {
			split($0, q, "\"")
			q[4] = at(q[3], q[4])
			if (q[4] == first) done1 = 1
			if (q[4] == second) { ok = kept; exit }
		}
		END { exit !ok }' "$T/trace"
}

@test "config:set writes the config vars durably (fsync, rename, fsync the folder)" {
	traced dyno-deploy -a "$APP" config:set GREETING=hi
	durable "$APP/.dyno/config"
	grep -qx 'GREETING=hi' "$APP/.dyno/config"
}

@test "dyno-scale writes the formation durably" {
	traced dyno-scale -a "$APP" web=2
	durable "$APP/.dyno/formation"
	grep -qx 'web=2' "$APP/.dyno/formation"
}

@test "a deploy publishes a release only after its files are on disk, and current after it" {
	src=$T/src
	mkdir "$src"
	cp "$SAMPLE_APP" "$src/app"
	echo 'web: ./app' > "$src/Procfile"
	traced dyno-deploy -a "$APP" --no-wait "$src"
	# The code tree (written by cp, no sync) is synced before it is stored.
	awk '/^[0-9]+ +syncfs\(/ && / = 0$/ {
		p = $0; sub(/^[^<]*</, "", p); sub(/>.*$/, "", p); synced[p] = 1 }
	/rename\(/ && /\/slugs\// && / = 0$/ {
		split($0, q, "\""); stored = 1; if (!(q[2] in synced)) bad = 1 }
	END { exit bad || !stored }' "$T/trace"
	durable "$APP/.dyno/releases/1"
	durable -l "$APP/.dyno/current"
	before "$APP/.dyno/releases/1" "$APP/.dyno/current"
	[ "$(readlink "$APP/.dyno/current")" = releases/1 ]
}

@test "a backup's data is renamed and synced before its meta, and the meta is durable" {
	traced dyno-backup -a "$APP" capture --cmd 'echo hello'
	B=$APP/.dyno/backups
	durable "$B/b001.meta"
	before "$B/b001.raw" "$B/b001.meta"
	grep -q '^status=completed' "$B/b001.meta"
}
