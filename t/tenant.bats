#!/usr/bin/env bats
# tenant.bats: a hostile tenant (issue 13).  Root runs dyno-run -u and
# dyno-deploy; the dynos run as an unprivileged user this file creates, and
# the attacker is the dyno itself: each attack is its own Procfile command,
# run as that user, or the code of a deployed tarball.  Each test shows the
# attack failing with a clear error, or doing nothing harmful (root's file
# unchanged, its process not signalled, no file outside the app).
#
# Covered elsewhere, not repeated here:
#   a URL source that trickles or sends without end: t/deploy.bats "a URL
#     source is bounded: an endless body stops at --max-source-size, a
#     trickle at --build-timeout";
#   a backup store that sends an endless body: t/backup.bats "a remote copy
#     is fetched bounded: no more than the recorded size, no longer than
#     --transfer-timeout";
#   a percent-encoded password key: t/backup.bats "credentials: a password
#     parameter named pass%77ord (libpq decodes the name) is taken out like
#     password=";
#   dyno-health as root and a state file's name=: t/health.bats (planted).
# The release phase and buildpacks as the dyno user are tested with
# dyno-deploy -u, not here.

load helpers

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	export TENANT="dynot$$"
	useradd --system --no-create-home --shell /usr/sbin/nologin "$TENANT"
	export TENANT_UID
	TENANT_UID=$(id -u "$TENANT")
	# Every app of this file lives here: root's, 0755, so that the folder
	# above each app is one the tenant cannot write.
	export TROOT
	TROOT=$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-tenant.XXXXXX")
	chmod 755 "$TROOT"
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	[ -n "${TENANT:-}" ] || return 0
	# Nothing of the tenant's may outlive the file: every process of this
	# user, made for this file alone, is one a test started.
	pkill -KILL -u "$TENANT" 2>/dev/null
	rm -rf "$TROOT"
	userdel "$TENANT" 2>/dev/null
	getent group "$TENANT" >/dev/null && groupdel "$TENANT"
	return 0
}

setup() {
	[ "$(id -u)" = 0 ] || skip "needs root: dyno-run -u and dyno-deploy as root with dynos as another user"
	daemons_setup
	VICTIM_PIDS=()
}

teardown() {
	local p rc=0
	[ "$(id -u)" = 0 ] || return 0
	for p in "${VICTIM_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${VICTIM_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	pkill -KILL -u "$TENANT" 2>/dev/null
	daemons_teardown || rc=1
	return "$rc"
}

# tenant_app PROCFILE-LINE...: an app in $TROOT the tenant can read and run
# but not write (root's, 0755), holding attack.sh from the test's heredoc.
tenant_app() {
	APP=$(mktemp -d "$TROOT/app.XXXXXX")
	chmod 755 "$APP"
	cp "$SAMPLE_APP" "$APP/app"
	printf '%s\n' "$@" >"$APP/Procfile"
	PORT_BASE=$(( 20000 + (RANDOM % 400) * 100 ))
	# Root's own things the attacks aim at, outside the app.
	VICTIM=$(mktemp -d "$TROOT/victim.XXXXXX")
	chmod 755 "$VICTIM"
	printf 'root secret\n' >"$VICTIM/file"
	chmod 600 "$VICTIM/file"
}

# attack SCRIPT: the attacker's code, app/attack.sh, run by sh.
attack() { cat >"$APP/attack.sh"; chmod 755 "$APP/attack.sh"; }

# victim_process: a live root process with a HUP trap; says when the trap is
# set, logs every HUP to $VICTIM/hup.  Its pid in VICTIM_PID.
victim_process() {
	# A session leader, as root's daemons are.
	setsid sh -c 'trap "echo HUP >>\"$0\"" HUP; : >"$0.ready"; while :; do sleep 0.05; done' \
	    "$VICTIM/hup" 3>&- &
	VICTIM_PID=$!
	VICTIM_PIDS+=("$VICTIM_PID")
	wait_for 30 test -e "$VICTIM/hup.ready"
}

# victim_intact: root's file has its content and mode, nothing was added
# beside it, and the victim process is alive and saw no HUP.
victim_intact() {
	[ "$(cat "$VICTIM/file")" = "root secret" ]
	[ "$(stat -c '%a %U' "$VICTIM/file")" = "600 root" ]
	[ "$(ls -A "$VICTIM" | grep -v '^hup' | paste -sd' ')" = file ]
	if [ -n "${VICTIM_PID:-}" ]; then
		kill -0 "$VICTIM_PID"
		[ ! -s "$VICTIM/hup" ]
	fi
}

# Nothing of the tenant's beside its app, in the folder above.
nothing_outside() {
	[ -z "$(find "$TROOT" -mindepth 1 -maxdepth 1 -user "$TENANT" ! -path "$APP")" ]
	[ ! -e "$TROOT/x" ]
}

said() { grep -q -- "app\[$1\]: $2" "$APP/out.log"; }

# A sanitizer build's report in what a command printed (run's $output).
no_sanitizer_report() { fails grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' <<<"$output"; }

@test "tenant: -u refuses an app directory, .dyno or folder above that the dyno user can write" {
	tenant_app 'worker: exec sleep 1000'
	msg="can be written by $TENANT, who could replace .dyno under root: make it root's (and not group- or world-writable), or pass --trust-app-dir"
	chown "$TENANT" "$APP"
	run timeout 10 "$BIN/dyno-run" -a "$APP" -u "$TENANT" worker=1
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP $msg" ]
	[ ! -e "$APP/.dyno" ]
	# Group-writable by the tenant's group.
	chown root:"$TENANT" "$APP"
	chmod 775 "$APP"
	run timeout 10 "$BIN/dyno-run" -a "$APP" -u "$TENANT" worker=1
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP $msg" ]
	chown root:root "$APP"
	chmod 755 "$APP"
	# A .dyno of the tenant's.
	mkdir -m 700 "$APP/.dyno"
	chown "$TENANT" "$APP/.dyno"
	run timeout 10 "$BIN/dyno-run" -a "$APP" -u "$TENANT" worker=1
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP/.dyno $msg" ]
	[ -z "$(ls -A "$APP/.dyno")" ]
}

@test "tenant: in a safe app, a dyno cannot write .dyno or its release's code, nor signal dyno-run" {
	tenant_app 'worker: exec ./attack.sh'
	attack <<'EOF'
#!/bin/sh
# As the tenant, in the release's code.  $APPDIR is a config var.
sup=$(cut -d' ' -f4 /proc/$$/stat)
try() { if "$@" 2>/dev/null; then echo "$1 WORKED"; else echo "$1 failed"; fi; }
echo "uid=$(id -u) supervisor=$sup"
try ls "$APPDIR/.dyno"
try touch "$APPDIR/.dyno/formation"
try mv "$APPDIR/.dyno" "$APPDIR/.dyno.old"
try touch "$APPDIR/planted"
try touch ./planted
try sh -c ': > ./app'
try chmod 777 .
try mkdir ../x
try ln -s /etc/shadow ../../run/lock
try kill -HUP "$sup"
try kill -TERM "$sup"
try kill -KILL "$sup"
echo "attack done"
exec sleep 1000
EOF
	"$BIN/dyno-deploy" -a "$APP" config:set "APPDIR=$APP" >/dev/null
	run timeout 60 "$BIN/dyno-deploy" -a "$APP" "$APP"
	echo "$output"
	no_sanitizer_report
	[ "$status" -eq 0 ]
	code=$(readlink -f "$APP/.dyno/releases/1/app")
	before=$(cd "$code" && find . -printf '%p %m %U %s\n' | sort; sha256sum app attack.sh)
	start_run -u "$TENANT" worker=1
	wait_for 20 said worker.1 'attack done'
	said worker.1 "uid=$TENANT_UID supervisor=$RUN_PID"
	for what in ls touch mv mkdir ln sh chmod kill; do
		fails said worker.1 "$what WORKED"
	done
	[ "$(grep -c "app\[worker.1\]: .* failed" "$APP/out.log")" -eq 12 ]
	# dyno-run lives, saw no signal, and the dyno is up and was not restarted.
	kill -0 "$RUN_PID"
	is_state worker.1 up
	[ "$(log_count 'heroku\[worker.1\]: Starting process')" -eq 1 ]
	fails log_has 'Stopping all'
	[ "$(cd "$code" && find . -printf '%p %m %U %s\n' | sort; sha256sum app attack.sh)" = "$before" ]
	[ ! -e "$APP/.dyno.old" ]
	[ ! -e "$APP/planted" ]
	[ ! -e "$APP/.dyno/slugs/x" ]
	[ "$(cat "$APP/.dyno/formation")" = "worker=1" ]
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	nothing_outside
}

# trusted_app PROCFILE-LINE...: an app the tenant owns (dev mode, as for a
# SQLite app), run with --trust-app-dir; .dyno is made by root first, so it
# is root's.  The attacker learns root's process and folder from .env.
trusted_app() {
	tenant_app "$@"
	victim_process
	printf 'VICTIM=%s\nVICTIM_PID=%s\n' "$VICTIM" "$VICTIM_PID" >"$APP/.env"
	chown -R "$TENANT" "$APP"
	mkdir -m 700 "$APP/.dyno"
}

# The web dyno's crash makes dyno-run rewrite run/routes and its state:
# wait for the replacement to be up.
web_restarted() { wait_for 30 log_count_ge 'heroku\[web.1\]: State changed from starting to up' 2; }

@test "tenant, --trust-app-dir: a dyno that replaces .dyno and locks a planted run/router.pid makes root signal no one" {
	trusted_app 'web: exec ./app' 'worker: exec ./attack.sh'
	attack <<'EOF2'
#!/bin/sh
mv .dyno .dyno.old || exit 1
mkdir -p .dyno/run/logs .dyno/run/dynos
echo "$VICTIM_PID" >.dyno/run/router.pid
exec 9<.dyno/run/router.pid
flock -x 9 || exit 1
echo planted
# Make dyno-run rewrite run/routes: kill the web dyno, ours too.
pkill -KILL -U "$(id -u)" -x app
exec sleep 1000
EOF2
	start_run -u "$TENANT" --trust-app-dir web=1 worker=1
	wait_for 20 said worker.1 planted
	web_restarted
	victim_intact
	nothing_outside
}

# trap_state: what is in $TRAP (names, kinds, modes, owners, contents).
trap_state() {
	(cd "$TRAP" && find . -printf '%p %y %m %U %s\n' | sort &&
	    find . -type f -exec sha256sum {} + | sort)
}

@test "tenant, --trust-app-dir: a dyno that renames .dyno and plants one of symlinks: dyno-run keeps to the one it opened, the others refuse the planted one" {
	trusted_app 'web: exec ./app' 'worker: exec ./attack.sh'
	# Where the planted links lead: root's folders, watched.
	TRAP=$(mktemp -d "$TROOT/trap.XXXXXX")
	chmod 755 "$TRAP"
	mkdir -p "$TRAP/run/dynos" "$TRAP/run/logs" "$TRAP/run/health"
	printf 'TRAP=%s\n' "$TRAP" >>"$APP/.env"
	before=$(trap_state)
	attack <<'EOF2'
#!/bin/sh
mv .dyno .dyno.old || exit 1
mkdir .dyno || exit 1
ln -s "$TRAP/run" .dyno/run
ln -s "$TRAP/formation" .dyno/formation
echo planted
# Make dyno-run write state: kill the web dyno (a restart, run/routes).
pkill -KILL -U "$(id -u)" -x app
exec sleep 1000
EOF2
	start_run -u "$TENANT" --trust-app-dir web=1 worker=1
	wait_for 20 said worker.1 planted
	web_restarted
	# A control command, to the supervisor's FIFO where it made it.
	echo 'restart web' >"$APP/.dyno.old/run/control"
	wait_for 30 log_count_ge 'heroku\[web.1\]: State changed from starting to up' 3
	# Recorded in the .dyno it opened, now .dyno.old.
	wait_for 20 grep -q '^restarts=1$' "$APP/.dyno.old/run/dynos/web.1"
	pid=$(sed -n 's/^pid=//p' "$APP/.dyno.old/run/dynos/web.1")
	kill -0 "$pid"
	grep -q "^web.1 " "$APP/.dyno.old/run/routes"
	# Nothing written, or changed, where the links lead.
	[ "$(trap_state)" = "$before" ]
	# A new program on the app refuses the planted .dyno.
	msg="$APP/.dyno is owned by uid $TENANT_UID, not by uid 0 or root: refusing it"
	run timeout 10 "$BIN/dyno-scale" -a "$APP"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-scale: $msg" ]
	run timeout 10 "$BIN/dyno-scale" -a "$APP" web=2
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-scale: $msg" ]
	run timeout 10 "$BIN/dyno-health" -a "$APP" --once
	echo "$output"
	[ "$status" -eq 2 ]
	[ "$output" = "dyno-health: $msg" ]
	[ "$(trap_state)" = "$before" ]
	victim_intact
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	[ "$(trap_state)" = "$before" ]
}

@test "tenant: in root's .dyno with a run/ the tenant owns, a run/control symlink to root's file is not written through by dyno-scale --restart" {
	tenant_app 'worker: exec sleep 1000'
	mkdir -m 700 "$APP/.dyno"
	mkdir -m 755 "$APP/.dyno/run"
	chown "$TENANT" "$APP/.dyno/run"
	# What the tenant could plant there: its own link, to root's file.
	ln -s "$VICTIM/file" "$APP/.dyno/run/control"
	chown -h "$TENANT" "$APP/.dyno/run/control"
	run timeout 10 "$BIN/dyno-scale" -a "$APP" --restart
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-scale: cannot write to the supervisor: Too many levels of symbolic links" ]
	victim_intact
}

# tarball DIR NAME: DIR packed as $APP/NAME.tar.gz, owners kept as they are
# in DIR (a tenant's tarball says what it likes).
tarball() { tar -czf "$APP/$2.tar.gz" -C "$1" .; }

# deploy_tarball DIR NAME: DIR packed as a tarball and deployed as root;
# status and output as run leaves them.
deploy_tarball() {
	tarball "$1" "$2"
	run timeout 60 "$BIN/dyno-deploy" -a "$APP" "$APP/$2.tar.gz"
	echo "$output"
	no_sanitizer_report
}

@test "tenant: dyno-deploy as root of a tarball with a device node, set-id files and a world-writable folder: the dyno gains nothing from them" {
	tenant_app 'worker: exec sleep 1000'
	src="$APP/src"
	mkdir "$src"
	printf 'worker: exec ./attack.sh\n' >"$src/Procfile"
	# A root shell if the bit stayed: set-uid root, and a set-gid one.
	cp /usr/bin/id "$src/suid-id" && chmod 4755 "$src/suid-id"
	cp /usr/bin/id "$src/sgid-id" && chmod 2755 "$src/sgid-id"
	mknod -m 0666 "$src/mem" c 1 1
	mkdir -m 1777 "$src/open"
	printf 'root secret\n' >"$src/open/file" && chmod 0666 "$src/open/file"
	# Files the tarball says are the tenant's.
	printf 'code\n' >"$src/code.txt" && chown "$TENANT" "$src/code.txt"
	cat >"$src/attack.sh" <<'EOF2'
#!/bin/sh
try() { if "$@" 2>/dev/null; then echo "$1 WORKED"; else echo "$1 failed"; fi; }
echo "suid-id: $(./suid-id -u) $(./suid-id -g)"
echo "sgid-id: $(./sgid-id -u) $(./sgid-id -g)"
try test -e mem
try sh -c 'echo x >open/new'
try sh -c 'echo x >open/file'
try sh -c 'echo x >code.txt'
echo "attack done"
exec sleep 1000
EOF2
	chmod 755 "$src/attack.sh"
	deploy_tarball "$src" evil
	[ "$status" -eq 0 ]
	[[ "$output" == *"removed mem: not a file, folder or symlink"* ]]
	[[ "$output" == *"suid-id: mode 4755 made 0755"* ]]
	[[ "$output" == *"sgid-id: mode 2755 made 0755"* ]]
	code=$(readlink -f "$APP/.dyno/releases/1/app")
	[ -z "$(find "$code" ! -user root)" ]
	[ -z "$(find "$code" -perm /7002)" ]
	[ -z "$(find "$code" ! -type f ! -type d ! -type l)" ]
	start_run -u "$TENANT" worker=1
	wait_for 20 said worker.1 'attack done'
	said worker.1 "suid-id: $TENANT_UID $(id -g "$TENANT")"
	said worker.1 "sgid-id: $TENANT_UID $(id -g "$TENANT")"
	for what in test sh; do
		fails said worker.1 "$what WORKED"
	done
	[ "$(grep -c "app\[worker.1\]: .* failed" "$APP/out.log")" -eq 4 ]
	[ "$(cat "$code/open/file")" = "root secret" ]
	[ "$(cat "$code/code.txt")" = code ]
	[ ! -e "$code/open/new" ]
}

@test "tenant: dyno-deploy as root of a tarball whose Procfile is a symlink to /etc/shadow or a FIFO: refused, nothing read, no lock held" {
	tenant_app 'worker: exec sleep 1000'
	src="$APP/src"
	mkdir "$src"
	cp "$SAMPLE_APP" "$src/app"
	ln -s /etc/shadow "$src/Procfile"
	deploy_tarball "$src" shadow
	[ "$status" -eq 1 ]
	[[ "$output" == *"Procfile: a symlink that leads out of the code"* ]]
	fails grep -q '^root:' <<<"$output"
	[ ! -e "$APP/.dyno/releases" ] || [ -z "$(ls -A "$APP/.dyno/releases")" ]
	rm "$src/Procfile"
	mkfifo -m 0666 "$src/Procfile"
	start=$(now_ms)
	deploy_tarball "$src" fifo
	[ "$status" -eq 1 ]
	[[ "$output" == *"removed Procfile: not a file, folder or symlink"* ]]
	[[ "$output" == *"has no Procfile"* ]]
	[ $(( $(now_ms) - start )) -lt 20000 ]
	# The deploy lock went with it: the next deploy is not held.
	flock -n "$APP/.dyno/deploy.lock" true
	[ ! -e "$APP/.dyno/releases" ] || [ -z "$(ls -A "$APP/.dyno/releases")" ]
}

@test "tenant, --trust-app-dir: a .dyno a dyno plants while no supervisor runs is refused as the tenant's; made root's, what is in it (state files naming root's file and process, a name= out of the app) is not followed" {
	trusted_app 'worker: exec ./attack.sh'
	attack <<'EOF2'
#!/bin/sh
sup=$(cut -d' ' -f4 /proc/$$/stat)
echo ready
# The supervisor goes (a crash, an upgrade): plant before the next one.
while [ -d "/proc/$sup" ]; do sleep 0.05; done
mv .dyno .dyno.old && mkdir -p .dyno/run/dynos || exit 1
ln -s "$VICTIM/file" .dyno/run/lock
: >planted1
while [ ! -e phase2 ]; do sleep 0.05; done
rm .dyno/run/lock
d=.dyno/run/dynos
printf 'name=web.1\ntype=web\nstate=up\npid=999999\npid_start=1\nlog=%s\n' "$VICTIM/file" >$d/web.1
printf 'name=../../../x\ntype=web\nstate=up\npid=999998\npid_start=1\n' >$d/web.2
printf 'name=web.3\ntype=web\nstate=up\npid=%s\npid_start=1\n' "$VICTIM_PID" >$d/web.3
: >planted2
exec sleep 1000
EOF2
	start_run -u "$TENANT" --trust-app-dir worker=1
	wait_for 20 said worker.1 ready
	kill -KILL "$RUN_PID"
	wait "$RUN_PID" || true
	RUN_PID=
	wait_for 20 test -e "$APP/planted1"
	# The planted .dyno is the tenant's: refused at the door.
	run timeout 20 "$BIN/dyno-run" -a "$APP" -u "$TENANT" --trust-app-dir worker=0
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "dyno-run: $APP/.dyno is owned by uid $TENANT_UID, not by uid 0 or root: refusing it" ]
	victim_intact
	touch "$APP/phase2"
	wait_for 20 test -e "$APP/planted2"
	# An admin who makes it root's (only its top): what is planted
	# inside is still not followed.  (A planted run/lock symlink:
	# t/run.bats "planted run/lock".)
	chown root "$APP/.dyno"
	start_run -u "$TENANT" --trust-app-dir worker=0
	wait_for 20 log_has 'heroku\[web.3\]: Process died while no supervisor was running'
	wait_for 20 log_has 'heroku\[web.1\]: Process died while no supervisor was running'
	log_has 'heroku\[run\]: Ignoring run/dynos/web.2: its name= is not its own TYPE.N'
	victim_intact
	nothing_outside
	[ -z "$(find "$APP" -name 'x*' -path '*/x*')" ]
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	victim_intact
}

@test "tenant, --trust-app-dir, dev mode: a Procfile or .env the dyno turns into a symlink out of the app or a FIFO is not read by root's reload" {
	trusted_app 'worker: exec ./attack.sh'
	printf 'web: exec ./app\nsecret: echo root-only\n' >"$VICTIM/Procfile"
	chmod 600 "$VICTIM/Procfile"
	attack <<'EOF2'
#!/bin/sh
# phase N: wait for the test's go, plant, say so.
phase() { while [ ! -e "go$1" ]; do sleep 0.05; done; }
ln -s "$VICTIM/Procfile" Procfile.new && mv -f Procfile.new Procfile || exit 1
: >planted1
phase 2
rm .env && mkfifo .env || exit 1
: >planted2
phase 3
rm .env Procfile && mkfifo Procfile || exit 1
: >planted3
exec sleep 1000
EOF2
	start_run -u "$TENANT" --trust-app-dir worker=1
	wait_for 20 test -e "$APP/planted1"
	control reload
	wait_for 20 log_has "reload failed, keeping the running dynos: cannot read $APP/Procfile: a symlink that leads out of its folder"
	touch "$APP/go2"
	wait_for 20 test -e "$APP/planted2"
	control reload
	wait_for 20 log_has "reload failed, keeping the running dynos: cannot read $APP/.env: not a regular file"
	touch "$APP/go3"
	wait_for 20 test -e "$APP/planted3"
	control reload
	wait_for 20 log_has "reload failed, keeping the running dynos: cannot read $APP/Procfile: not a regular file"
	# Still supervising: a restart is carried out, and nothing of root's
	# Procfile was taken.
	control restart worker.1
	wait_for 20 log_count_ge 'heroku\[worker.1\]: Starting process' 2
	fails log_has 'secret'
	fails log_has 'heroku\[web.1\]'
	[ "$(log_count 'heroku\[supervisor\]: reload failed')" -eq 3 ]
	[ "$(stat -c '%a %U' "$VICTIM/Procfile")" = "600 root" ]
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
}
