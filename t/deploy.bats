#!/usr/bin/env bats
# dyno-deploy: releases from a directory, tarballs, git and a URL; buildpacks;
# the release phase; deploys under load with no failed request; failed
# releases and rollback; config vars; retention.  Real programs on 127.0.0.1.

load helpers

setup() {
	LOAD_PIDS=()
	PEER_PIDS=()
	ROUTER_PID= HEALTH_PID= AUTO_PID= HTTP_PID= DEPLOY_PID=
}

teardown() {
	stop_daemon "$HTTP_PID"
	if [ -n "$DEPLOY_PID" ]; then
		kill -KILL "$DEPLOY_PID" 2>/dev/null
		wait "$DEPLOY_PID" 2>/dev/null
	fi
	# A build a killed deploy left running (see the kill -9 test).
	if [ -n "${APP:-}" ] && [ -s "$APP/compile.pid" ]; then
		pkill -KILL -g "$(cat "$APP/compile.pid")" 2>/dev/null
	fi
	daemons_teardown
}

# deploy ARG...: dyno-deploy on $APP, stdout then stderr; both are kept in
# $APP/deploy.log too, where teardown looks for sanitizer reports.
deploy() {
	local rc=0
	"$BIN/dyno-deploy" -a "$APP" "$@" >"$APP/deploy.out" 2>"$APP/deploy.err" ||
	    rc=$?
	cat "$APP/deploy.out"
	cat "$APP/deploy.err" >&2
	cat "$APP/deploy.out" "$APP/deploy.err" >>"$APP/deploy.log"
	return "$rc"
}
current() { readlink "$APP/.dyno/current"; }
meta() { sed -n "s/^$2=//p" "$APP/.dyno/releases/$1/meta"; }
# The release folders, oldest first, on one line.
release_dirs() { ls "$APP/.dyno/releases" 2>/dev/null | sort -n | paste -sd' '; }
# Some dyno (the one being replaced too) is up and runs release $1.
up_in_release() {
	grep -lx "release=$1" "$APP"/.dyno/run/dynos/* 2>/dev/null |
	    xargs -r grep -qx 'state=up'
}
slug_count() { ls "$APP/.dyno/slugs" 2>/dev/null | grep -c . || true; }
# The first routable web dyno's port.
web_port() { sed -n '1s/.*://p' "$APP/.dyno/run/routes"; }
# GET through the router; only the body.
get() { curl -fsS --max-time 10 "http://127.0.0.1:$ROUTER_PORT$1"; }
get_is() { [ "$(get "$1" 2>/dev/null)" = "$2" ]; }
# make_src DIR CODE [PROCFILE LINE...]: a source tree with the sample app.
# CODE goes to code.txt, which the default web command exports as $CODE,
# so /env?name=CODE tells which code a dyno runs.
make_src() {
	local dir=$1 code=$2
	shift 2
	mkdir -p "$dir"
	cp "$SAMPLE_APP" "$dir/app"
	printf '%s\n' "$code" > "$dir/code.txt"
	[ $# -gt 0 ] || set -- 'web: export CODE=$(cat code.txt); exec ./app'
	printf '%s\n' "$@" > "$dir/Procfile"
}

# check_release N SOURCE DESCRIPTION: release N is complete, its meta says
# so, and "releases" lists it with its creation time (UTC) and description.
check_release() {
	local n=$1 source=$2 desc=$3 created when
	[ -d "$APP/.dyno/releases/$n" ]
	[ -f "$APP/.dyno/releases/$n/Procfile" ]
	[ -f "$APP/.dyno/releases/$n/build.log" ]
	[ "$(stat -c %a "$APP/.dyno/releases/$n/config")" = 600 ]
	[ "$(stat -c %a "$APP/.dyno/releases/$n")" = 755 ]
	[ "$(stat -c %a "$APP/.dyno/releases/$n/Procfile")" = 644 ]
	[ "$(stat -c %a "$APP/.dyno/releases/$n/meta")" = 644 ]
	[ -L "$APP/.dyno/releases/$n/app" ]
	[[ "$(readlink "$APP/.dyno/releases/$n/app")" =~ ^\.\./\.\./slugs/[0-9a-f]{64}$ ]]
	[ "$(meta "$n" version)" = "$n" ]
	[ "$(meta "$n" source)" = "$source" ]
	[ "$(meta "$n" description)" = "$desc" ]
	[[ "$(meta "$n" sha256)" =~ ^[0-9a-f]{64}$ ]]
	[ "$(readlink "$APP/.dyno/releases/$n/app")" = "../../slugs/$(meta "$n" sha256)" ]
	created=$(meta "$n" created)
	[ $(( $(date +%s) - created )) -lt 300 ]
	when=$(date -u -d "@$created" '+%Y-%m-%d %H:%M')
	deploy releases | grep -qxF "v$(printf '%-4s' "$n") $when  $desc$(
	    [ "$(current)" = "releases/$n" ] && echo '  (current)')"
}

# The "releases" listing's version column, newest first, on one line.
listed() { deploy releases | awk '{ print $1 }' | paste -sd' '; }

@test "deploy from a directory: releases/N with meta, listed newest first" {
	make_app 'web: ./app'
	make_src "$APP/src" one
	mkdir "$APP/src/.dyno"	# an app's own state is never part of its code
	run deploy -m "First deploy" "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Built v1"* ]]
	[[ "$output" == *"Released v1; no supervisor runs $APP"* ]]
	[ "$(current)" = releases/1 ]
	check_release 1 "$APP/src" "First deploy"
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = one ]
	[ -x "$APP/.dyno/current/app/app" ]
	[ ! -e "$APP/.dyno/current/app/.dyno" ]
	cmp "$APP/src/Procfile" "$APP/.dyno/releases/1/Procfile"
	[ "$(stat -c %a "$APP/.dyno")" = 700 ]

	# No -m: "Deploy" and the code's checksum, as Heroku names a commit.
	make_src "$APP/src" two
	run deploy "$APP/src"
	[ "$status" -eq 0 ]
	[ "$(current)" = releases/2 ]
	sha=$(meta 2 sha256)
	check_release 2 "$APP/src" "Deploy ${sha:0:7}"
	check_release 1 "$APP/src" "First deploy"
	[ "$(listed)" = "v2 v1" ]
	[ "$(deploy releases | grep -c '(current)')" = 1 ]
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = two ]
	[ -z "$(ls "$APP/.dyno/tmp")" ]

	# A source with no Procfile is refused, and nothing changes.
	rm "$APP/src/Procfile"
	run deploy "$APP/src"
	[ "$status" -eq 1 ]
	[[ "$output" == *"has no Procfile"* ]]
	[ "$(current)" = releases/2 ]
	[ "$(release_dirs)" = "1 2" ]
}

@test "deploy from .tar, .tar.gz (one top folder) and .tar.zst tarballs" {
	make_app 'web: ./app'
	make_src "$APP/pkg/myapp-1.0" tgz
	tar -czf "$APP/myapp.tar.gz" -C "$APP/pkg" myapp-1.0
	run deploy -m "from tgz" "$APP/myapp.tar.gz"
	echo "$output"
	[ "$status" -eq 0 ]
	check_release 1 "$APP/myapp.tar.gz" "from tgz"
	# GitHub's tarballs have one top folder: its contents are the code.
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = tgz ]
	[ -x "$APP/.dyno/current/app/app" ]

	make_src "$APP/flat" tar
	tar -cf "$APP/flat.tar" -C "$APP/flat" .
	run deploy -m "from tar" "$APP/flat.tar"
	[ "$status" -eq 0 ]
	check_release 2 "$APP/flat.tar" "from tar"
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = tar ]

	# Not a tarball: refused, nothing changes.
	echo "not a tarball" > "$APP/junk.tar.gz"
	run deploy "$APP/junk.tar.gz"
	[ "$status" -eq 1 ]
	[ "$(current)" = releases/2 ]
	[ "$(release_dirs)" = "1 2" ]

	command -v zstd >/dev/null || skip "zstd is not installed"
	make_src "$APP/flat" zst
	tar --zstd -cf "$APP/flat.tar.zst" -C "$APP/flat" .
	run deploy -m "from zst" "$APP/flat.tar.zst"
	echo "$output"
	[ "$status" -eq 0 ]
	check_release 3 "$APP/flat.tar.zst" "from zst"
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = zst ]
	[ "$(listed)" = "v3 v2 v1" ]
}

@test "deploy from git: the committed HEAD, or --ref TAG; meta has commit=" {
	command -v git >/dev/null || skip "git is not installed"
	make_app 'web: ./app'
	src=$APP/repo
	g() { git -C "$src" -c user.name=t -c user.email=t@example.com \
	    -c init.defaultBranch=main "$@" >/dev/null; }
	make_src "$src" first
	g init -q
	g add -A
	g commit -q -m first
	g tag v1.0
	make_src "$src" second
	g commit -q -am second
	echo uncommitted > "$src/code.txt"
	head=$(git -C "$src" rev-parse HEAD)
	tagged=$(git -C "$src" rev-parse 'v1.0^{commit}')

	run deploy "$src"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta 1 commit)" = "$head" ]
	check_release 1 "$src" "Deploy ${head:0:7}"
	# The commit, never the work tree, and no .git in the code.
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = second ]
	[ ! -e "$APP/.dyno/current/app/.git" ]

	run deploy --ref v1.0 "$src"
	[ "$status" -eq 0 ]
	[ "$(meta 2 commit)" = "$tagged" ]
	check_release 2 "$src" "Deploy ${tagged:0:7}"
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = first ]

	run deploy --ref no-such-ref "$src"
	[ "$status" -eq 1 ]
	[[ "$output" == *"no git commit no-such-ref"* ]]
	[ "$(current)" = releases/2 ]

	# --no-git: the work tree as files, uncommitted changes too.
	run deploy --no-git "$src"
	[ "$status" -eq 0 ]
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = uncommitted ]
	[ -z "$(meta 3 commit)" ]
	[ "$(listed)" = "v3 v2 v1" ]
}

@test "deploy from a URL served on 127.0.0.1; a 404 changes nothing" {
	make_app 'web: ./app'
	make_src "$APP/www/app-main" url
	tar -czf "$APP/www/app.tar.gz" -C "$APP/www" app-main
	HTTP_PORT=$(pick_port)
	python3 -m http.server --bind 127.0.0.1 --directory "$APP/www" "$HTTP_PORT" \
	    >"$APP/http.log" 2>&1 3>&- &
	HTTP_PID=$!
	wait_for 10 port_listening "$HTTP_PORT"
	url="http://127.0.0.1:$HTTP_PORT/app.tar.gz"
	run deploy -m "from the web" "$url"
	echo "$output"
	[ "$status" -eq 0 ]
	check_release 1 "$url" "from the web"
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = url ]
	grep -q 'GET /app.tar.gz HTTP/1.1" 200' "$APP/http.log"

	start=$(now_ms)
	run deploy "http://127.0.0.1:$HTTP_PORT/missing.tar.gz"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot fetch"* ]]
	# A 404 is not retried with backoff.
	[ $(( $(now_ms) - start )) -lt 3000 ]
	[ "$(current)" = releases/1 ]
	[ "$(release_dirs)" = 1 ]
	[ "$(listed)" = v1 ]
}

# sent_total PATH: the bytes endless.py sent on connections for PATH.
sent_total() { awk -v p="$1" '$1 == p { sub("sent=", "", $2); t += $2 } END { print t + 0 }' "$APP/endless.log"; }

@test "a URL source is bounded: an endless body stops at --max-source-size, a trickle at --build-timeout" {
	make_app 'web: ./app'
	python3 "$BATS_TEST_DIRNAME/peers/endless.py" "$APP/endless.port" "$APP/endless.log" \
	    >"$APP/endless.out" 2>&1 3>&- &
	HTTP_PID=$!
	wait_for 10 test -s "$APP/endless.port"
	base="http://127.0.0.1:$(cat "$APP/endless.port")"

	# No length given: refused once past 1 MiB, and not tried again.
	start=$(now_ms)
	run timeout 30 "$BIN/dyno-deploy" -a "$APP" --max-source-size 1M "$base/endless"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot fetch $base/endless: over --max-source-size (1024K)"* ]]
	[ $(( $(now_ms) - start )) -lt 5000 ]
	wait_for 10 grep -q '^/endless ' "$APP/endless.log"
	[ "$(grep -c '^/endless ' "$APP/endless.log")" -eq 1 ]
	# What the server got out before the client left: the cap and what
	# the socket buffers held, not without end.
	[ "$(sent_total /endless)" -lt $((16 << 20)) ]
	# A length over the cap is refused before the body.
	run timeout 30 "$BIN/dyno-deploy" -a "$APP" --max-source-size 1M "$base/big"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"over --max-source-size (1024K)"* ]]

	# A trickle: each try ends at --build-timeout, three tries.
	start=$(now_ms)
	run timeout 30 "$BIN/dyno-deploy" -a "$APP" --build-timeout 1s "$base/trickle"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(grep -c 'fetching .*/trickle (try [123] of 3): Timeout' <<<"$output")" -eq 3 ]
	[ $(( $(now_ms) - start )) -lt 15000 ]
	[ -z "$(release_dirs)" ]
	run "$BIN/dyno-deploy" -a "$APP" --max-source-size 0 "$base/big"
	[ "$status" -eq 2 ]
	[[ "$output" == *'--max-source-size: invalid size "0"'* ]]
}

@test "a URL source answered 503 with Retry-After (seconds or an HTTP-date) is fetched again after that, not the 1 s backoff, and deploys" {
	make_app 'web: ./app'
	make_src "$APP/www/app-main" busy
	tar -czf "$APP/www/app.tar.gz" -C "$APP/www" app-main
	python3 "$BATS_TEST_DIRNAME/peers/endless.py" "$APP/endless.port" "$APP/endless.log" \
	    "$APP/www" >"$APP/endless.out" 2>&1 3>&- &
	HTTP_PID=$!
	wait_for 10 test -s "$APP/endless.port"
	# Retry-After: 2, then an HTTP-date 3 s ahead (2 s or more from now).
	for path in busy busy-date; do
		url="http://127.0.0.1:$(cat "$APP/endless.port")/$path/app.tar.gz"
		start=$(now_ms)
		run deploy "$url"
		echo "$output"
		[ "$status" -eq 0 ]
		[ $(( $(now_ms) - start )) -ge 1900 ]
		[[ "$output" == *"fetching $url (try 1 of 3): HTTP 503"* ]]
		[ "$(grep -c "^/$path/app.tar.gz " "$APP/endless.log")" -eq 2 ]
		[ "$(cat "$APP/.dyno/current/app/code.txt")" = busy ]
	done
	[ "$(listed)" = "v2 v1" ]
}

@test "the code's Procfile is read only as a regular file inside the code: a symlink out refused, a FIFO does not hold the deploy" {
	make_app 'web: ./app'
	# A symlink out of the code (to a file only root may read).
	make_src "$APP/out" out
	ln -sf /etc/shadow "$APP/out/Procfile"
	run timeout 30 "$BIN/dyno-deploy" -a "$APP" "$APP/out"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$APP/out: Procfile: a symlink that leads out of the code"* ]]
	[ -z "$(release_dirs)" ]
	# A FIFO: refused at once, and the deploy lock goes with it.
	make_src "$APP/fifo" fifo
	rm "$APP/fifo/Procfile"
	mkfifo "$APP/fifo/Procfile"
	start=$(now_ms)
	run timeout 30 "$BIN/dyno-deploy" -a "$APP" "$APP/fifo"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"removed Procfile: not a file, folder or symlink"* ]]
	[[ "$output" == *"$APP/fifo has no Procfile"* ]]
	[ $(( $(now_ms) - start )) -lt 10000 ]
	# A symlink that stays inside the code is followed.
	make_src "$APP/in" in
	mv "$APP/in/Procfile" "$APP/in/Procfile.prod"
	ln -s Procfile.prod "$APP/in/Procfile"
	run timeout 30 "$BIN/dyno-deploy" -a "$APP" "$APP/in"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(release_dirs)" = 1 ]
	grep -q '^web: ' "$APP/.dyno/releases/1/Procfile"
}

@test "a tarball's device nodes, FIFOs, set-id bits and world-writable modes do not reach the release" {
	[ "$(id -u)" = 0 ] || skip "needs root to make device nodes and root-owned set-id files"
	make_app 'web: ./app'
	make_src "$APP/src/app-main" evil
	d="$APP/src/app-main"
	mknod -m 0666 "$d/null" c 1 3
	mkfifo -m 0666 "$d/pipe"
	printf '#!/bin/sh\nid -u\n' >"$d/suid" && chmod 4755 "$d/suid"
	printf 'x\n' >"$d/sgid" && chmod 2755 "$d/sgid"
	mkdir -m 0777 "$d/open" && chmod 1777 "$d/open"
	printf 'x\n' >"$d/open/w" && chmod 0666 "$d/open/w"
	chmod 0777 "$d"
	tar -czf "$APP/evil.tar.gz" -C "$APP/src" app-main
	run timeout 60 "$BIN/dyno-deploy" -a "$APP" "$APP/evil.tar.gz"
	echo "$output"
	[ "$status" -eq 0 ]
	c="$APP/.dyno/releases/1/app"
	[ -f "$c/app" ]
	[ ! -e "$c/null" ]
	[ ! -e "$c/pipe" ]
	[ "$(stat -c %a "$c/suid")" = 755 ]
	[ "$(stat -c %a "$c/sgid")" = 755 ]
	[ "$(stat -c %a "$c/open")" = 775 ]
	[ "$(stat -c %a "$c/open/w")" = 664 ]
	[ "$(stat -c %a "$c/")" = 775 ]
	# Nothing special, set-id or world-writable anywhere in the release.
	[ -z "$(find -L "$c/" \( ! -type f ! -type d \) -o -perm /7002 2>/dev/null)" ]
	[[ "$output" == *"removed null: not a file, folder or symlink"* ]]
	[[ "$output" == *"suid: mode 4755 made 0755"* ]]
	grep -q 'removed pipe: not a file, folder or symlink' "$APP/.dyno/releases/1/build.log"
}

@test "buildpack: compiles app.c, the second build reuses the cache, a failed compile changes nothing" {
	make_app
	rm "$APP/Procfile" "$APP/app"
	mkdir "$APP/src"
	cp "$DYNO_ROOT/examples/app.c" "$APP/src/"
	bp=$DYNO_ROOT/examples/buildpack
	run deploy --buildpack "$bp" "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"-----> $bp: compile"* ]]
	[[ "$output" == *"Compiling app.c"* ]]
	[[ "$output" != *"Using the cached"* ]]
	grep -q 'Compiling app.c' "$APP/.dyno/releases/1/build.log"
	grep -q "$bp: detect" "$APP/.dyno/releases/1/build.log"
	[ -x "$APP/.dyno/current/app/app" ]
	# No Procfile in the code: bin/release's default_process_types.
	[ "$(cat "$APP/.dyno/releases/1/Procfile")" = "web: ./app" ]
	[ -f "$APP/.dyno/cache/c-app/app.o" ]
	[ "$(stat -c %a "$APP/.dyno/cache")" = 700 ]

	run deploy --buildpack "$bp" "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Using the cached app.o"* ]]
	[[ "$output" != *"Compiling app.c"* ]]
	grep -q 'Using the cached app.o' "$APP/.dyno/releases/2/build.log"
	fails grep -q 'Compiling app.c' "$APP/.dyno/releases/2/build.log"
	# Same source, same build: one slug.
	[ "$(meta 1 sha256)" = "$(meta 2 sha256)" ]
	[ "$(slug_count)" = 1 ]

	# The compiled app serves.
	start_run
	wait_for 10 has_routes 1
	[ "$(curl -fsS "http://127.0.0.1:$(web_port)/")" = "Hello from web.1" ]
	stop_run

	# Config vars reach bin/compile through ENV_DIR: new flags, new build.
	run deploy config:set CFLAGS='-O0 -g'
	[ "$status" -eq 0 ]
	run deploy --buildpack "$bp" "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Building app.c with cc -O0 -g"* ]]
	[[ "$output" == *"Compiling app.c"* ]]
	[ "$(current)" = releases/4 ]

	# A compile error: non-zero, current and releases as they were.
	slugs_before=$(ls "$APP/.dyno/slugs")
	echo 'this is not C' >> "$APP/src/app.c"
	run deploy --buildpack "$bp" "$APP/src"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"compile failed"* ]]
	[[ "$output" == *"Compiling app.c"* ]]
	[ "$(current)" = releases/4 ]
	[ "$(release_dirs)" = "1 2 3 4" ]
	[ "$(ls "$APP/.dyno/slugs")" = "$slugs_before" ]
	[ -z "$(ls "$APP/.dyno/tmp")" ]
}

@test "-u USER: buildpacks and the release phase run as USER; root takes the build back as a tar stream" {
	[ "$(id -u)" = 0 ] || skip "needs root for -u"
	make_app
	chmod 0755 "$APP"
	rm "$APP/Procfile" "$APP/app"
	make_src "$APP/src" one 'web: ./app' 'release: echo "release phase as $(id -un)"'
	rm "$APP/src/Procfile.bak" 2>/dev/null || true
	# A hostile build: it reports who it is, keeps a count in the cache,
	# and tries what a tenant's build would.
	mkdir -p "$APP/bp/bin" "$APP/tmpd"
	printf '#!/bin/sh\nexit 0\n' >"$APP/bp/bin/detect"
	cat >"$APP/bp/bin/compile" <<-EOF
	#!/bin/sh
	set -e
	echo "compile as \$(id -un) in \$(pwd)"
	sed -n 's/^NoNewPrivs:[[:space:]]*/no_new_privs=/p' /proc/\$\$/status
	id -un >"\$1/built-by"
	cat "\$3/FOO" >"\$1/foo"
	n=\$(cat "\$2/count" 2>/dev/null || echo 0)
	echo \$((n + 1)) >"\$2/count"
	if echo x >"$APP/.dyno/owned" 2>/dev/null; then echo "WROTE .dyno"; fi
	if echo x >>"$APP/.dyno/config" 2>/dev/null; then echo "WROTE config"; fi
	ln -sf /etc/shadow "\$1/shadow"
	ln -sf /etc/shadow "\$2/shadow"
	mkfifo "\$1/fifo" "\$2/fifo"
	cp /bin/true "\$1/suid" && chmod 4755 "\$1/suid"
	chmod 0777 "\$1"
	[ ! -e "\$3/FAIL" ]
	EOF
	printf '#!/bin/sh\nprintf -- "---\\ndefault_process_types:\\n  worker: ./app\\n"\n' \
	    >"$APP/bp/bin/release"
	chmod 0755 "$APP/bp/bin/"*
	run deploy -u nobody config:set FOO=bar
	[ "$status" -eq 0 ]
	TMPDIR=$APP/tmpd run deploy -u nobody --buildpack "$APP/bp" "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"compile as nobody in $APP/tmpd/dyno-build."* ]]
	[[ "$output" == *"release phase as nobody"* ]]
	[[ "$output" == *"no_new_privs=1"* ]]
	[[ "$output" != *WROTE* ]]
	[ ! -e "$APP/.dyno/owned" ]
	c="$APP/.dyno/releases/1/app"
	[ "$(cat "$c/built-by")" = nobody ]
	[ "$(cat "$c/foo")" = bar ]
	grep -qx 'worker: ./app' "$APP/.dyno/releases/1/Procfile"
	# Root's now, sanitised; the symlink is kept, never followed.
	[ -z "$(find "$c/" ! -user root)" ]
	[ -L "$c/shadow" ]
	[ ! -e "$c/fifo" ]
	[ "$(stat -c %a "$c/suid")" = 755 ]
	[ "$(stat -c %a "$c/")" = 775 ]
	[ "$(cat "$APP/.dyno/cache/count")" = 1 ]
	[ -L "$APP/.dyno/cache/shadow" ]
	[ ! -e "$APP/.dyno/cache/fifo" ]
	[ -z "$(find "$APP/.dyno/cache/" ! -user root)" ]
	[ "$(stat -c %a "$APP/.dyno/cache")" = 700 ]
	# The build area is gone.
	[ -z "$(ls -A "$APP/tmpd")" ]

	# The cache goes back in; a failed build leaves no area behind either.
	TMPDIR=$APP/tmpd run deploy -u nobody --buildpack "$APP/bp" "$APP/src"
	[ "$status" -eq 0 ]
	[ "$(cat "$APP/.dyno/cache/count")" = 2 ]
	run deploy -u nobody config:set FAIL=1
	[ "$status" -eq 0 ]
	TMPDIR=$APP/tmpd run deploy -u nobody --buildpack "$APP/bp" "$APP/src"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"compile failed"* ]]
	[ -z "$(ls -A "$APP/tmpd")" ]
	[ "$(cat "$APP/.dyno/cache/count")" = 2 ]

	# An app directory the user can write: refused, unless trusted.
	chown nobody "$APP"
	run deploy -u nobody releases
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-deploy: $APP can be written by nobody, who could replace .dyno under root: make it root's (and not group- or world-writable), or pass --trust-app-dir" ]
	run deploy -u nobody --trust-app-dir releases
	[ "$status" -eq 0 ]
	chown root "$APP"
	run deploy -u no-such-user-here releases
	[ "$status" -eq 2 ]
	[ "$output" = 'dyno-deploy: no such user "no-such-user-here"' ]
}

@test "release phase: runs before the switch; when it fails nothing changes" {
	make_app
	make_src "$APP/src" one 'web: ./app' \
	    "release: echo \"release phase of \$(cat code.txt) sees current=\$(readlink $APP/.dyno/current) FOO=\$FOO\""
	run deploy "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"-----> Release phase: echo"* ]]
	[[ "$output" == *"release phase of one sees current= FOO="* ]]
	run deploy config:set FOO=bar
	[ "$status" -eq 0 ]
	make_src "$APP/src" two 'web: ./app' \
	    "release: echo \"release phase of \$(cat code.txt) sees current=\$(readlink $APP/.dyno/current) FOO=\$FOO\""
	run deploy "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	# It ran in the new code, with its config, while v2 was current...
	[[ "$output" == *"release phase of two sees current=releases/2 FOO=bar"* ]]
	grep -q 'release phase of two sees current=releases/2 FOO=bar' \
	    "$APP/.dyno/releases/3/build.log"
	# ...and before the switch was announced.
	[[ "${output%%Released v3*}" == *"release phase of two"* ]]
	[ "$(current)" = releases/3 ]

	make_src "$APP/src" three 'web: ./app' \
	    'release: echo "migration failed" >&2; exit 3'
	slugs_before=$(ls "$APP/.dyno/slugs")
	run deploy "$APP/src"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"migration failed"* ]]
	[[ "$output" == *"release phase failed (exit 3)"* ]]
	[ "$(current)" = releases/3 ]
	[ "$(release_dirs)" = "1 2 3" ]
	[ ! -e "$APP/.dyno/releases/4" ]
	[ "$(ls "$APP/.dyno/slugs")" = "$slugs_before" ]
	[ -z "$(ls "$APP/.dyno/tmp")" ]
}

@test "SIGTERM or kill -9 mid-build: no release, the old current; the next deploy cleans up" {
	make_app
	make_src "$APP/src" one
	run deploy "$APP/src"
	[ "$status" -eq 0 ]
	# A buildpack whose compile waits (bounded) until the test says go.
	mkdir -p "$APP/bp/bin"
	cat > "$APP/bp/bin/compile" <<-EOF
		#!/bin/sh
		echo \$\$ > "$APP/compile.pid"
		echo "-----> compiling, waiting for $APP/go"
		i=0
		while [ ! -e "$APP/go" ] && [ \$i -lt 600 ]; do sleep 0.05; i=\$((i + 1)); done
	EOF
	chmod +x "$APP/bp/bin/compile"
	make_src "$APP/src" two

	# SIGTERM (as Ctrl-C): the build step stops with the deploy.
	"$BIN/dyno-deploy" -a "$APP" --buildpack "$APP/bp" "$APP/src" \
	    >"$APP/stopped.log" 2>&1 3>&- &
	DEPLOY_PID=$!
	wait_for 10 grep -q 'compiling, waiting' "$APP/stopped.log"
	compile=$(cat "$APP/compile.pid")
	kill -TERM "$DEPLOY_PID"
	wait "$DEPLOY_PID" || true
	DEPLOY_PID=
	wait_for 10 pid_gone "$compile"
	rm "$APP/compile.pid"
	[ "$(current)" = releases/1 ]
	[ "$(release_dirs)" = 1 ]

	# kill -9: nothing can stop the build, but nothing is released.
	"$BIN/dyno-deploy" -a "$APP" --buildpack "$APP/bp" "$APP/src" \
	    >"$APP/killed.log" 2>&1 3>&- &
	DEPLOY_PID=$!
	wait_for 10 grep -q 'compiling, waiting' "$APP/killed.log"
	[ -n "$(ls "$APP/.dyno/tmp")" ]
	kill -KILL "$DEPLOY_PID"
	wait "$DEPLOY_PID" || true
	DEPLOY_PID=
	[ "$(current)" = releases/1 ]
	[ "$(release_dirs)" = 1 ]
	[ "$(listed)" = v1 ]
	# The orphaned compile finishes on its own.
	touch "$APP/go"
	wait_for 10 pid_gone "$(cat "$APP/compile.pid")"

	run deploy "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(current)" = releases/2 ]
	[ "$(release_dirs)" = "1 2" ]
	[ -z "$(ls "$APP/.dyno/tmp")" ]
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = two ]
}

@test "10 deploys under load through the router: no failed request; --wait says when" {
	make_app
	make_src "$APP/src" c0
	run deploy "$APP/src"
	[ "$status" -eq 0 ]
	start_run --stop-grace 10s web=4
	wait_for 10 has_routes 4
	start_app_router
	wait_for 10 get_is '/env?name=CODE' c0
	start_load a "http://127.0.0.1:$ROUTER_PORT/"
	start_load b "http://127.0.0.1:$ROUTER_PORT/env?name=CODE"
	start_load s1 "http://127.0.0.1:$ROUTER_PORT/slow?ms=500"
	start_load s2 "http://127.0.0.1:$ROUTER_PORT/slow?ms=500"
	# POSTs are never sent again: an old dyno stopped before it answered shows.
	start_post_load p1 "http://127.0.0.1:$ROUTER_PORT/slow?ms=500"
	start_post_load p2 "http://127.0.0.1:$ROUTER_PORT/slow?ms=200"
	wait_for 30 load_total_ge 20
	for i in $(seq 1 10); do
		make_src "$APP/src" "c$i"
		run deploy --wait "$APP/src"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" =~ "Released v$((i + 1)): every dyno runs it after "[0-9.]+s ]]
		[ "$(get '/env?name=CODE')" = "c$i" ]
	done
	n=$(load_total)
	wait_for 30 load_total_ge $((n + 10))
	stop_load
	echo "requests: $(load_total), failed: $(load_failed)"
	sort "$APP"/*.codes | uniq -c
	[ "$(load_failed)" = 0 ]
	[ "$(cat "$APP"/p?.codes | grep -c '^200$')" -ge 10 ]
	[ "$(grep -c 'method=POST path="/slow' "$APP/router.log")" -ge 10 ]
	has_routes 4
	for d in web.1 web.2 web.3 web.4; do
		[ "$(state "$d" release)" = v11 ]
	done
	[ "$(current)" = releases/11 ]
}

@test "a release whose web dynos never bind fails; --rollback-on-failure goes back" {
	make_app
	make_src "$APP/good" good
	make_src "$APP/bad" bad 'web: exec sleep 1000'
	run deploy "$APP/good"
	[ "$status" -eq 0 ]
	good_sha=$(meta 1 sha256)
	start_run --boot-timeout 2s
	wait_for 10 has_routes 1
	start_app_router
	wait_for 10 get_is '/env?name=CODE' good

	run deploy --rollback-on-failure --keep 1 "$APP/bad"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"v2 crashed while starting"* ]]
	[[ "$output" == *"rolling back to v1"* ]]
	[[ "$output" =~ "Released v3: every dyno runs it after" ]]
	[ "$(current)" = releases/3 ]
	[ "$(meta 3 description)" = "Rollback to v1" ]
	[ "$(meta 3 sha256)" = "$good_sha" ]
	deploy releases | head -1 | grep -q '  Rollback to v1  (current)$'
	wait_for 10 get_is '/env?name=CODE' good
	[ "$(state web.1 release)" = v3 ]
	log_has 'Error R10 (Boot timeout)'
	[ "$(release_dirs)" = 3 ]

	# Without the flag: reported as failed, and it stays current.
	run deploy --wait-timeout 30s --keep 1 "$APP/bad"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"v4 crashed while starting"* ]]
	[ "$(current)" = releases/4 ]
	# The old dyno was never replaced: the old code still answers, and
	# --keep leaves the release it runs.
	get_is '/env?name=CODE' good
	up_in_release v3
	[ "$(release_dirs)" = "3 4" ]
	[ -x "$APP/.dyno/releases/3/app/app" ]
}

@test "rollback restores the old code and config vars (previous, then v1)" {
	make_app
	make_src "$APP/src" A
	run deploy "$APP/src"			# v1: A
	[ "$status" -eq 0 ]
	run deploy config:set FOO=a		# v2: A, FOO=a
	[ "$status" -eq 0 ]
	make_src "$APP/src" B
	run deploy "$APP/src"			# v3: B, FOO=a
	[ "$status" -eq 0 ]
	run deploy config:set FOO=b BAR=x	# v4: B, FOO=b BAR=x
	[ "$status" -eq 0 ]
	start_run
	wait_for 10 has_routes 1
	start_app_router
	wait_for 10 get_is '/env?name=FOO' b
	get_is '/env?name=CODE' B

	run deploy rollback
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Built v5: Rollback to v3"* ]]
	[ "$(current)" = releases/5 ]
	[ "$(meta 5 description)" = "Rollback to v3" ]
	[ "$(deploy config:get FOO)" = a ]
	run deploy config:get BAR
	[ "$status" -eq 1 ]
	cmp "$APP/.dyno/config" "$APP/.dyno/releases/3/config"
	get_is '/env?name=FOO' a
	get_is '/env?name=CODE' B
	fails get '/env?name=BAR'

	run deploy rollback v1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(current)" = releases/6 ]
	[ "$(meta 6 sha256)" = "$(meta 1 sha256)" ]
	[ "$(readlink "$APP/.dyno/releases/6/app")" = "$(readlink "$APP/.dyno/releases/1/app")" ]
	[ ! -s "$APP/.dyno/config" ]
	get_is '/env?name=CODE' A
	fails get '/env?name=FOO'
	[ "$(listed)" = "v6 v5 v4 v3 v2 v1" ]
	deploy releases | head -1 | grep -q '  Rollback to v1  (current)$'

	run deploy rollback v99
	[ "$status" -eq 1 ]
	[[ "$output" == *"no release v99"* ]]
	run deploy rollback vx
	[ "$status" -eq 2 ]
	[ "$(current)" = releases/6 ]
	[ "$(release_dirs)" = "1 2 3 4 5 6" ]
}

@test "config: masked, --show, config:get raw; odd values round-trip; set/unset make one release each" {
	make_app
	make_src "$APP/src" one
	run deploy "$APP/src"
	[ "$status" -eq 0 ]
	start_run
	wait_for 10 has_routes 1
	start_app_router
	multi=$'line one\nline two'
	odd='a=b==c "double" '\''single'\'' \n \\ $HOME `x`'
	uni='héllo wörld ✓ 日本'
	run deploy config:set "MULTI=$multi" "ODD=$odd" "UNI=$uni" EMPTY=
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Set MULTI, ODD, UNI, EMPTY config vars: v2"* ]]
	[ "$(meta 2 description)" = "Set MULTI, ODD, UNI, EMPTY config vars" ]
	[ "$(release_dirs)" = "1 2" ]
	[ "$(stat -c %a "$APP/.dyno/config")" = 600 ]
	[ "$(stat -c %a "$APP/.dyno/releases/2/config")" = 600 ]

	# Masked by default: names only.
	run deploy config
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"MULTI:"*"********"* ]]
	[[ "$output" != *"line one"* && "$output" != *"héllo"* ]]
	run deploy config --show
	[ "$status" -eq 0 ]
	[[ "$output" == *"UNI:   $uni"* ]]
	[[ "$output" == *"line one"* ]]
	# config:get prints the raw value, byte for byte, and a newline.
	for k in MULTI ODD UNI EMPTY; do
		case $k in MULTI) v=$multi ;; ODD) v=$odd ;; UNI) v=$uni ;; EMPTY) v= ;; esac
		deploy config:get "$k" > "$APP/got"
		printf '%s\n' "$v" | cmp - "$APP/got"
	done
	run deploy config:get NOPE
	[ "$status" -eq 1 ]
	[ -z "$output" ]

	# The dynos have the new environment, exactly.
	wait_for 10 get_is '/env?name=UNI' "$uni"
	get '/env?name=MULTI' > "$APP/got"
	printf '%s\n' "$multi" | cmp - "$APP/got"
	get '/env?name=ODD' > "$APP/got"
	printf '%s\n' "$odd" | cmp - "$APP/got"
	[ "$(state web.1 release)" = v2 ]

	run deploy config:unset MULTI ODD
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta 3 description)" = "Remove MULTI, ODD config vars" ]
	[ "$(release_dirs)" = "1 2 3" ]
	[ "$(meta 3 sha256)" = "$(meta 1 sha256)" ]
	run deploy config:get MULTI
	[ "$status" -eq 1 ]
	wait_for 10 state_is web.1 release v3
	fails get '/env?name=MULTI'
	get_is '/env?name=UNI' "$uni"
	run deploy config
	[[ "$output" == *"UNI:"* && "$output" != *"MULTI"* ]]
	[ "$(listed)" = "v3 v2 v1" ]
}

@test "config: a bad key or a KEY with no = is an error and changes nothing" {
	make_app
	# Dev mode (no release yet): the config file only.
	run deploy config:set FOO=0
	[ "$status" -eq 0 ]
	[[ "$output" == *"(dev mode)"* ]]
	[ -z "$(release_dirs)" ]
	[ "$(stat -c %a "$APP/.dyno/config")" = 600 ]
	make_src "$APP/src" one
	run deploy "$APP/src"
	[ "$status" -eq 0 ]
	grep -qx FOO=0 "$APP/.dyno/releases/1/config"
	run deploy config:set FOO=1
	[ "$status" -eq 0 ]
	cp -p "$APP/.dyno/config" "$APP/config.before"
	# Keys the config file could not hold are refused, not cut short.
	long=$(printf 'K%.0s' $(seq 256))
	for args in '1BAD=x' 'NOEQUALS' 'GOOD=1 BAD-KEY=2' '=x' 'A.B=1' 'OK=1 ALSO' \
	    "$long=x"; do
		# shellcheck disable=SC2086
		run deploy config:set $args
		echo "config:set $args: $status $output"
		[ "$status" -eq 2 ]
		[[ "$output" == *"KEY"* ]]
	done
	for args in 'BAD-KEY' 'FOO 2X'; do
		# shellcheck disable=SC2086
		run deploy config:unset $args
		[ "$status" -eq 2 ]
	done
	run deploy config:set
	[ "$status" -eq 2 ]
	run deploy config:get 'BAD-KEY'
	[ "$status" -eq 2 ]
	cmp "$APP/config.before" "$APP/.dyno/config"
	[ "$(stat -c %a "$APP/.dyno/config")" = 600 ]
	[ "$(release_dirs)" = "1 2" ]
	[ "$(current)" = releases/2 ]
	[ "$(deploy config:get FOO)" = 1 ]
	run deploy config:get GOOD
	[ "$status" -eq 1 ]
	# 255 bytes is the longest key.
	run deploy config:set "${long:1}=y"
	[ "$status" -eq 0 ]
	[ "$(deploy config:get "${long:1}")" = y ]
	[ "$(release_dirs)" = "1 2 3" ]
}

@test "25 deploys keep 20 releases; identical code shares one slug; unused slugs go" {
	make_app
	make_src "$APP/a" A
	make_src "$APP/b" B
	make_src "$APP/c" C
	run deploy "$APP/c"		# v1: C, code no later release has
	[ "$status" -eq 0 ]
	slug_c=$(meta 1 sha256)
	for i in $(seq 2 25); do
		if [ $((i % 2)) = 0 ]; then src=$APP/a; else src=$APP/b; fi
		deploy "$src" >/dev/null
	done
	[ "$(current)" = releases/25 ]
	[ "$(release_dirs)" = "$(seq 6 25 | paste -sd' ')" ]
	[ "$(deploy releases | grep -c .)" = 20 ]
	deploy releases | head -1 | grep -q '^v25 .*  (current)$'
	# A and B: one slug each, shared by ten releases; C's is gone with v1.
	[ "$(slug_count)" = 2 ]
	[ ! -e "$APP/.dyno/slugs/$slug_c" ]
	[ "$(meta 6 sha256)" = "$(meta 8 sha256)" ]
	for i in $(seq 6 25); do
		[ -d "$APP/.dyno/releases/$i/app/" ]
	done
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = B ]

	# --keep 1: the current release alone; its slug stays.
	run deploy --keep 1 "$APP/c"
	[ "$status" -eq 0 ]
	[ "$(release_dirs)" = 26 ]
	[ "$(current)" = releases/26 ]
	[ "$(slug_count)" = 1 ]
	[ -d "$APP/.dyno/slugs/$slug_c" ]
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = C ]
}

# The process is gone: no such pid, or a zombie nobody has reaped yet.
dead() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# PID waits, in the kernel's list, for a flock another process holds.
lock_waiter() { grep -Eq "^[0-9]+: -> FLOCK +ADVISORY +WRITE +$1 " /proc/locks; }

@test "--build-timeout: a longer build step is killed with its process group; nothing is released" {
	make_app
	make_src "$APP/src" one
	run deploy "$APP/src"
	[ "$status" -eq 0 ]
	# A compile that leaves a child in its group and waits for it.
	mkdir -p "$APP/bp/bin"
	cat > "$APP/bp/bin/compile" <<-EOF
		#!/bin/sh
		echo \$\$ > "$APP/compile.pid"
		sleep 31.7 &
		echo \$! > "$APP/child.pid"
		echo "-----> compiling for a long time"
		wait
	EOF
	chmod +x "$APP/bp/bin/compile"
	make_src "$APP/src" two
	t0=$(now_ms)
	run deploy --build-timeout 1s --buildpack "$APP/bp" "$APP/src"
	t1=$(now_ms)
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"compiling for a long time"* ]]
	[[ "$output" == *"$APP/bp/bin/compile timed out after 1s"* ]]
	# Stopped at the timeout, not when the step would have ended.
	[ $((t1 - t0)) -lt 20000 ]
	wait_for 5 dead "$(cat "$APP/compile.pid")"
	wait_for 5 dead "$(cat "$APP/child.pid")"
	[ "$(current)" = releases/1 ]
	[ "$(release_dirs)" = 1 ]
	[ "$(slug_count)" = 1 ]
	[ -z "$(ls "$APP/.dyno/tmp")" ]
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = one ]
}

@test "--no-wait: returns at the switch while the new dynos boot; the supervisor gets there alone" {
	make_app
	make_src "$APP/one" one
	# v2's web dyno binds only once the test says go.
	make_src "$APP/two" two \
	    "web: while [ ! -e '$APP/go' ]; do sleep 0.05; done; export CODE=\$(cat code.txt); exec ./app"
	run deploy "$APP/one"
	[ "$status" -eq 0 ]
	start_run --boot-timeout 60s
	wait_for 10 has_routes 1
	start_app_router
	wait_for 10 get_is '/env?name=CODE' one
	run deploy --no-wait --wait-timeout 5s "$APP/two"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[${#lines[@]} - 1]}" = "Released v2; the supervisor is replacing the dynos." ]
	[[ "$output" != *"every dyno runs it"* ]]
	[ "$(current)" = releases/2 ]
	# It did not wait: v2 has not bound, v1 still answers.
	fails up_in_release v2
	get_is '/env?name=CODE' one
	touch "$APP/go"
	wait_for 20 get_is '/env?name=CODE' two
	wait_for 10 state_is web.1 release v2
}

@test "deploy.lock: a second deploy waits for the first, then makes the next release" {
	make_app
	make_src "$APP/src" one
	mkdir -p "$APP/bp/bin"
	cat > "$APP/bp/bin/compile" <<-EOF
		#!/bin/sh
		echo \$\$ > "$APP/compile.pid"
		echo "-----> compiling, waiting for $APP/go"
		i=0
		while [ ! -e "$APP/go" ] && [ \$i -lt 600 ]; do sleep 0.05; i=\$((i + 1)); done
	EOF
	chmod +x "$APP/bp/bin/compile"
	"$BIN/dyno-deploy" -a "$APP" -m first --buildpack "$APP/bp" "$APP/src" \
	    >"$APP/first.log" 2>&1 3>&- &
	DEPLOY_PID=$!
	wait_for 10 grep -q 'compiling, waiting' "$APP/first.log"
	make_src "$APP/src2" two
	"$BIN/dyno-deploy" -a "$APP" -m second "$APP/src2" >"$APP/second.log" 2>&1 3>&- &
	second=$!
	PEER_PIDS+=("$second")
	# The kernel lists it as blocked behind the first; it has made nothing.
	wait_for 10 lock_waiter "$second"
	[ -z "$(release_dirs)" ]
	[ "$(ls "$APP/.dyno/tmp")" = "build.1.$DEPLOY_PID" ]
	touch "$APP/go"
	wait "$DEPLOY_PID"
	DEPLOY_PID=
	wait "$second"
	cat "$APP/first.log" "$APP/second.log"
	[ "$(meta 1 description)" = first ]
	[ "$(meta 2 description)" = second ]
	[ "$(current)" = releases/2 ]
	[ "$(cat "$APP/.dyno/current/app/code.txt")" = two ]
	[ -z "$(ls "$APP/.dyno/tmp")" ]
}

@test "--app and --message, long forms, from another folder; a newline in the message is a space" {
	make_app
	make_src "$APP/src" one
	cd "$BATS_TEST_TMPDIR"
	run "$BIN/dyno-deploy" --app "$APP" --message $'two\nlines' "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(meta 1 description)" = "two lines" ]
	check_release 1 "$APP/src" "two lines"
	"$BIN/dyno-deploy" --app "$APP" releases | grep -q '^v1 .*  two lines  (current)$'
	[ ! -e "$BATS_TEST_TMPDIR/.dyno" ]
}

@test "the first deploy or config:set makes a missing app directory (0755, .dyno 0700); reads do not" {
	make_app
	make_src "$APP/src" one
	local new="$APP/new-app" cfg="$APP/cfg-app"
	run "$BIN/dyno-deploy" -a "$new" releases
	[ "$status" -eq 1 ]
	[[ "$output" == *"app directory $new: No such file or directory"* ]]
	[ ! -e "$new" ]
	run "$BIN/dyno-deploy" -a "$new" rollback
	[ "$status" -eq 1 ]
	[ ! -e "$new" ]
	run "$BIN/dyno-deploy" --no-wait -a "$new" "$APP/src"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"created app directory $new"* ]]
	[ "$(stat -c %a "$new")" = 755 ]
	[ "$(stat -c %a "$new/.dyno")" = 700 ]
	[ "$(readlink "$new/.dyno/current")" = releases/1 ]
	# config:set before the first deploy, as on Heroku.
	run "$BIN/dyno-deploy" -a "$cfg" config:set A=1
	[ "$status" -eq 0 ]
	[ "$("$BIN/dyno-deploy" -a "$cfg" config:get A)" = 1 ]
	# Only the last component: a missing parent is an error.
	run "$BIN/dyno-deploy" -a "$APP/no/such" "$APP/src"
	[ "$status" -eq 1 ]
	[ ! -e "$APP/no" ]
}

@test "-h and --help print the usage and exit 0; a bad option or value exits 2 and changes nothing" {
	make_app
	for h in -h --help; do
		run deploy "$h"
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == 'usage: dyno-deploy '* ]]
		[[ "$output" == *'--build-timeout DUR'* ]]
	done
	make_src "$APP/src" one
	for args in '--bogus' '--keep 0' '--keep 100001' '--keep x' \
	    '--build-timeout soon' '--build-timeout 0' '--wait-timeout -1s' \
	    '--wait-timeout 5x'; do
		# shellcheck disable=SC2086
		run deploy $args "$APP/src"
		echo "dyno-deploy $args -> $status: $output"
		[ "$status" -eq 2 ]
		# The message names the option at fault.
		[[ "$output" == *"${args%% *}"* ]]
	done
	# Too many operands: a usage error too, and no .dyno made for it.
	for args in 'releases extra' 'config extra' 'rollback v1 v2' "$APP/src $APP/src"; do
		# shellcheck disable=SC2086
		run deploy $args
		echo "dyno-deploy $args -> $status: $output"
		[ "$status" -eq 2 ]
		[[ "${lines[0]}" == 'usage: dyno-deploy '* ]]
	done
	[ ! -e "$APP/.dyno" ]
}
