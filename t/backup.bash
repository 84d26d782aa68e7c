# backup.bash: the real peers dyno-backup talks to, for backup.bats (sourced
# after helpers.bash).  Started once per file; each is stopped by pid.
#
# Debian packages these tests need (CI installs them):
#   postgresql (any version), sqlite3,
#   nginx-light (has the WebDAV module), zstd, gzip, python3, curl;
#   moto's S3 server and boto3 from the machine's Python, or from the venv
#   .ci/run makes where it has none; without them the S3 tests skip (and
#   CI fails on the skip).
# A test whose peer is missing skips, and its message says what is missing.

# pg_bindir: the installed PostgreSQL's programs: the newest
# /usr/lib/postgresql/VERSION/bin with an initdb (Debian and Ubuntu put
# every version there), else pg_config's bindir when it has one.
pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	d=$(pg_config --bindir 2>/dev/null) && [ -x "$d/initdb" ] && echo "$d"
}
# Found once in setup_file (start_peers exports it).
PG_BIN=${PG_BIN:-$(pg_bindir)}
# The superuser's password: distinctive, so a grep for it finds leaks only.
PG_PASSWORD=pgS3cretQz7w
BUCKET=dyno-test
NGINX=/usr/sbin/nginx
# The WebDAV user for /private/ on nginx.
DAV_USER=dyno DAV_PASSWORD=davS3cretWq4

# ---- PostgreSQL ---------------------------------------------------------------

# initdb and pg_ctl refuse root: run them as postgres, from a folder it may read.
# runuser lives in /usr/sbin, which a user's PATH may lack.
as_postgres() {
	(cd "$PG_DIR" && "$(command -v runuser || echo /usr/sbin/runuser)" \
	    -u postgres -- "$@")
}

# start_postgres: a private cluster on 127.0.0.1:$PG_PORT with scram auth,
# so a wrong password really fails.  Leaves PG_PORT empty and PG_MISSING
# saying why when it cannot start one (the tests then skip).
start_postgres() {
	PG_DIR= PG_PORT= PG_PID= PG_MISSING=
	if [ ! -x "${PG_BIN:-/nonexistent}/initdb" ]; then
		PG_MISSING="no initdb in ${PG_BIN:-/usr/lib/postgresql/*/bin nor in pg_config --bindir} (apt-get install postgresql)"
		return 0
	fi
	if ! id postgres >/dev/null 2>&1; then
		PG_MISSING="no user postgres to run $PG_BIN/initdb as"
		return 0
	fi
	# Under /tmp itself: the bats folders may be closed to postgres.
	PG_DIR=$(mktemp -d /tmp/dyno-pg.XXXXXX)
	printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pwfile"
	chown -R postgres: "$PG_DIR"
	PG_PORT=$(pick_port)
	as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -E UTF8 \
	    --auth=scram-sha-256 --pwfile="$PG_DIR/pwfile" --no-sync \
	    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
	rm -f "$PG_DIR/pwfile"
	# fsync off: a throwaway cluster, and the tests stay quick.
	as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
	    -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c fsync=off \
	    -c unix_socket_directories=$PG_DIR" start >/dev/null 3>&- ||
	    { cat "$PG_DIR/server.log" >&2; return 1; }
	PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
}

stop_postgres() {
	[ -n "${PG_DIR:-}" ] || return 0
	if [ -n "${PG_PID:-}" ]; then
		as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 \
		    stop >/dev/null 2>&1
		# pg_ctl failed or timed out: the postmaster by pid.
		kill -0 "$PG_PID" 2>/dev/null && kill -KILL "$PG_PID"
		wait_for 10 pid_gone "$PG_PID"
	fi
	rm -rf "$PG_DIR"
}

need_pg() { [ -n "${PG_PORT:-}" ] || skip "PostgreSQL: ${PG_MISSING:-not started}"; }
# pg_url DB [PASSWORD]: the URL dyno-backup is given.
pg_url() { echo "postgres://postgres:${2:-$PG_PASSWORD}@127.0.0.1:$PG_PORT/$1"; }
# psql_db DB SQL: one query's rows, unaligned, no headers.
psql_db() {
	PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
	    -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
# new_db: a fresh database for this test; its name on stdout.
new_db() {
	local db="t${BATS_TEST_NUMBER}_$RANDOM"
	PGPASSWORD=$PG_PASSWORD "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" \
	    -U postgres "$db" && echo "$db"
}
# pg_sum DB: row count and a checksum of every row of table t.
pg_sum() {
	psql_db "$1" "SELECT count(*) || ' ' || coalesce(md5(string_agg(
	    id || ':' || v, ',' ORDER BY id)), '-') FROM t"
}

# ---- moto: S3 that checks signatures -----------------------------------------

# start_moto: moto_server on 127.0.0.1:$MOTO_PORT.  Its first three requests
# go unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT=3): they make an IAM user,
# its s3:* policy and an access key.  Every later request must carry a good
# SigV4 signature from that key, checked against the stored secret.  The
# bucket is made with the new key, which proves the key works.  Two more
# unauthenticated requests make the role "backup" (s3:*) that sts_creds
# assumes.  Leaves AWS_SECRET empty and MOTO_MISSING saying why when it
# cannot start moto (the S3 tests then skip).
start_moto() {
	# The machine's Python may be a pyenv one that a non-login PATH lacks;
	# elsewhere .ci/run puts moto in a venv of its own.
	local venv=$HOME/.local/share/dyno-test/venv
	if ! command -v moto_server >/dev/null &&
	    [ -x "$HOME/.pyenv/shims/moto_server" ]; then
		PATH="$HOME/.pyenv/shims:$PATH"
	elif ! command -v moto_server >/dev/null &&
	    [ -x "$venv/bin/moto_server" ]; then
		PATH="$venv/bin:$PATH"
	fi
	MOTO_PORT= MOTO_PID= AWS_KEY= AWS_SECRET= MOTO_MISSING=
	if ! command -v moto_server >/dev/null; then
		MOTO_MISSING="no moto_server on PATH, in ~/.pyenv/shims or in $venv (.ci/run makes that venv: pip install 'moto[server]' boto3)"
		return 0
	fi
	if ! python3 -c 'import moto, boto3' 2>/dev/null; then
		MOTO_MISSING="$(command -v python3) cannot import moto and boto3 (pip install 'moto[server]' boto3)"
		return 0
	fi
	MOTO_PORT=$(pick_port)
	INITIAL_NO_AUTH_ACTION_COUNT=5 moto_server -H 127.0.0.1 -p "$MOTO_PORT" \
	    >"$PEERS_DIR/moto.log" 2>&1 3>&- &
	MOTO_PID=$!
	wait_for 60 port_listening "$MOTO_PORT" || return 1
	read -r AWS_KEY AWS_SECRET < <(python3 - "$MOTO_PORT" "$BUCKET" <<-'EOF'
		import json, sys, boto3
		ep = "http://127.0.0.1:%s" % sys.argv[1]
		kw = dict(endpoint_url=ep, region_name="us-east-1")
		iam = boto3.client("iam", aws_access_key_id="bootstrap",
		                   aws_secret_access_key="bootstrap", **kw)
		iam.create_user(UserName="dyno")
		s3_only = json.dumps({"Version": "2012-10-17", "Statement": [
		    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
		iam.put_user_policy(UserName="dyno", PolicyName="s3",
		    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
		        {"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"],
		         "Resource": "*"}]}))
		iam.create_role(RoleName="backup", AssumeRolePolicyDocument=json.dumps(
		    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
		     "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
		iam.put_role_policy(RoleName="backup", PolicyName="s3",
		    PolicyDocument=s3_only)
		k = iam.create_access_key(UserName="dyno")["AccessKey"]
		s3 = boto3.client("s3", aws_access_key_id=k["AccessKeyId"],
		                  aws_secret_access_key=k["SecretAccessKey"], **kw)
		s3.create_bucket(Bucket=sys.argv[2])
		print(k["AccessKeyId"], k["SecretAccessKey"])
	EOF
	)
	[ -n "$AWS_SECRET" ]
}

stop_moto() { stop_daemon "${MOTO_PID:-}"; }
need_moto() { [ -n "${AWS_SECRET:-}" ] || skip "S3: ${MOTO_MISSING:-moto_server not started}"; }

# sts_creds: temporary credentials for the role "backup", from moto's STS
# with the user's key: "KEY SECRET TOKEN" on one line.
sts_creds() {
	python3 - "$MOTO_PORT" "$AWS_KEY" "$AWS_SECRET" <<-'EOF'
		import sys, boto3
		sts = boto3.client("sts", endpoint_url="http://127.0.0.1:%s" % sys.argv[1],
		                   region_name="us-east-1", aws_access_key_id=sys.argv[2],
		                   aws_secret_access_key=sys.argv[3])
		c = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/backup",
		                    RoleSessionName="dyno-test")["Credentials"]
		print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
	EOF
}

# s3_req [CURL ARG...] URL: curl signed with KEY:SECRET (default the good
# pair; S3_SECRET overrides the secret).  The body's hash goes in a header
# as S3 wants: PAYLOAD names the file sent, or none for an empty body.
s3_req() {
	local sum
	if [ -n "${PAYLOAD:-}" ]; then
		sum=$(sha256sum <"$PAYLOAD" | cut -d' ' -f1)
	else
		sum=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
	fi
	curl -sS --max-time 60 --aws-sigv4 "aws:amz:us-east-1:s3" \
	    --user "$AWS_KEY:${S3_SECRET:-$AWS_SECRET}" \
	    -H "x-amz-content-sha256: $sum" "$@"
}
# s3_get KEY FILE: the object in the bucket, into FILE; fails unless 200.
s3_get() {
	[ "$(s3_req -o "$2" -w '%{http_code}' \
	    "http://127.0.0.1:$MOTO_PORT/$BUCKET/$1")" = 200 ]
}
# s3_put KEY FILE: replace the object (to corrupt a remote copy).
s3_put() {
	[ "$(PAYLOAD=$2 s3_req -o /dev/null -w '%{http_code}' -T "$2" \
	    "http://127.0.0.1:$MOTO_PORT/$BUCKET/$1")" = 200 ]
}
# s3_etag KEY: the object's ETag, quotes taken off.
s3_etag() {
	s3_req -I "http://127.0.0.1:$MOTO_PORT/$BUCKET/$1" |
	    sed -n 's/^[Ee][Tt]ag: *"\{0,1\}\([^"]*\)"\{0,1\}\r\{0,1\}$/\1/p'
}

# start_flaky FAILURES [STATUS [RETRY_AFTER [PORT]]]: t/peers/flaky.py in
# front of moto on $FLAKY_PORT (PORT, or one picked), refusing the first
# FAILURES requests with STATUS (503) and Retry-After: RETRY_AFTER (1; "-"
# for none); its per-request log is $FLAKY_LOG ($TDIR/flaky.log).  Stopped
# by the test's teardown.
start_flaky() {
	FLAKY_PORT=${4:-$(pick_port)}
	FLAKY_LOG=${FLAKY_LOG:-$TDIR/flaky.log}
	python3 "$DYNO_ROOT/t/peers/flaky.py" "$FLAKY_PORT" "$MOTO_PORT" "$1" \
	    "$FLAKY_LOG" "${2:-503}" "${3:-1}" >>"$TDIR/flaky.out" 2>&1 3>&- &
	PEER_PIDS+=($!)
	wait_for 10 port_listening "$FLAKY_PORT"
}

# ---- nginx WebDAV -----------------------------------------------------------

# start_nginx: nginx in the foreground (daemon off) with PUT/DELETE on
# 127.0.0.1:$NGINX_PORT, files under $NGINX_ROOT.
start_nginx() {
	NGINX_PORT= NGINX_PID= NGINX_ROOT=
	[ -x "$NGINX" ] || return 0
	local dir="$PEERS_DIR/nginx"
	mkdir -p "$dir/root" "$dir/tmp"
	NGINX_PORT=$(pick_port)
	NGINX_ROOT=$dir/root
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$NGINX_PORT|g" \
	    "$DYNO_ROOT/t/peers/webdav.conf" >"$dir/nginx.conf"
	# nginx takes a plain-text password with {PLAIN}: no htpasswd tool.
	echo "$DAV_USER:{PLAIN}$DAV_PASSWORD" >"$dir/htpasswd"
	# -e: its startup errors go here, not to /var/log/nginx.
	"$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
	    >>"$dir/out.log" 2>&1 3>&- &
	NGINX_PID=$!
	wait_for 10 port_listening "$NGINX_PORT" ||
	    { cat "$dir/error.log" "$dir/out.log" >&2; return 1; }
}

stop_nginx() { stop_daemon "${NGINX_PID:-}"; }
need_nginx() { [ -n "${NGINX_PORT:-}" ] || skip "WebDAV: no $NGINX (apt-get install nginx-light)"; }

# ---- all of them ---------------------------------------------------------------

start_peers() {
	PEERS_DIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-peers.XXXXXX")
	start_postgres && start_moto && start_nginx || return 1
	export PG_BIN PG_MISSING PG_DIR PG_PORT PG_PID PEERS_DIR MOTO_PORT \
	    MOTO_PID MOTO_MISSING AWS_KEY AWS_SECRET NGINX_PORT NGINX_PID NGINX_ROOT
	# pg_dump and pg_restore of that version, whatever else PATH has.
	[ -z "$PG_BIN" ] || export PATH="$PG_BIN:$PATH"
}

stop_peers() {
	stop_nginx
	stop_moto
	stop_postgres
	[ -z "${PEERS_DIR:-}" ] || rm -rf "$PEERS_DIR"
}

# ---- processes a test leaves ----------------------------------------------------

# descendants PID: every process below PID, children first.
descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}

# kill_tree PID: SIGKILL PID and all below it, then reap PID.
kill_tree() {
	local kids
	kids=$(descendants "$1")
	kill -KILL "$1" $kids 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
