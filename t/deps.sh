#!/bin/sh
# deps.sh: make sure what the tests need is here.  As root it installs the
# missing Debian packages itself; otherwise it names them and fails.
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have bats    || need="$need bats"
have curl    || need="$need curl"
have mandoc  || need="$need mandoc"
have python3 || need="$need python3"
have pgrep   || need="$need procps"
have git     || need="$need git"
have zstd    || need="$need zstd"
have valgrind || need="$need valgrind"
have sqlite3 || need="$need sqlite3"
have gzip    || need="$need gzip"
have gpg     || need="$need gnupg"
have strace  || need="$need strace"
have systemd-socket-activate || need="$need systemd"
have ss      || need="$need iproute2"
have gunicorn || need="$need gunicorn"
/usr/bin/python3 -c "import flask" 2>/dev/null || need="$need python3-flask"
have nginx || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
# Debian keeps the header under the multiarch triplet.
[ -e /usr/include/curl/curl.h ] ||
    [ -e "/usr/include/$(cc -dumpmachine 2>/dev/null)/curl/curl.h" ] ||
    need="$need libcurl4-openssl-dev"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && have apt-get; then
	echo "t/deps.sh: installing:$need" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq $need >/dev/null && exit 0
fi
echo "t/deps.sh: missing test dependencies; run: sudo apt-get install$need" >&2
exit 1
