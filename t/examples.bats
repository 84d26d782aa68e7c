#!/usr/bin/env bats
# examples.bats: the README's Quick start, examples/demo.sh, run as a user
# runs it, in a copy of the tree (so its .dyno is not the repository's).

load helpers

setup() {
	COPY="$(mktemp -d "${BATS_TMPDIR:-/tmp}/dyno-demo.XXXXXX")"
	# cp -a keeps the times: make finds everything built and does nothing.
	cp -a "$DYNO_ROOT/Makefile" "$DYNO_ROOT/src" "$DYNO_ROOT/lib" \
	    "$DYNO_ROOT/examples" "$DYNO_ROOT/bin" "$DYNO_ROOT/build" "$COPY/"
	rm -rf "$COPY/examples/.dyno"
	# demo.sh runs "make -s": in a sanitizer build tree that would build
	# the default variant from scratch; with SAN=1 it finds all made.
	[ "$(build_variant)" != san ] || export MAKEFLAGS=SAN=1
	DEMO_PORT=$(pick_port)
	DEMO_PID=
	HOLD_PID=
}

teardown() {
	if [ -n "$DEMO_PID" ]; then
		kill -TERM "$DEMO_PID" 2>/dev/null
		wait_for 20 pid_gone "$DEMO_PID" || kill -KILL "$DEMO_PID" 2>/dev/null
		wait "$DEMO_PID" 2>/dev/null
	fi
	[ -z "$HOLD_PID" ] || { kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null; }
	# Whatever the demo started runs from the copy: nothing may outlive it.
	pkill -KILL -f "$COPY/" 2>/dev/null || true
	rm -rf "$COPY"
}

demo_says() { grep -q -- "$1" "$COPY/demo.out"; }

@test "demo.sh waits for the web dynos, says how to try them, and SIGTERM stops it all" {
	PORT=$DEMO_PORT sh "$COPY/examples/demo.sh" >"$COPY/demo.out" 2>&1 3>&- &
	DEMO_PID=$!
	wait_for 60 demo_says "Try:"
	# It printed "Try:" only once two web dynos were routable: the URL works.
	run curl -s --max-time 10 "http://127.0.0.1:$DEMO_PORT/"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Hello from web."* ]]
	[ "$(grep -c '^[^@]' "$COPY/examples/.dyno/run/routes")" -ge 2 ]
	fails grep -q "Illegal number" "$COPY/demo.out"
	# (SIGTERM: a shell started with & ignores SIGINT, and cannot trap it.)
	kill -TERM "$DEMO_PID"
	wait_for 20 pid_gone "$DEMO_PID"
	wait "$DEMO_PID"
	DEMO_PID=
	fails pgrep -f "$COPY/bin/dyno-"
}

@test "demo.sh says so and exits 1 when the router cannot listen, without a Try: line" {
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
time.sleep(120)' "$DEMO_PORT" 3>&- &
	HOLD_PID=$!
	wait_for 10 port_listening "$DEMO_PORT"
	# As a second run finds it: dyno-run writes run/routes empty at exit.
	mkdir -m 700 "$COPY/examples/.dyno"
	mkdir -m 755 "$COPY/examples/.dyno/run"
	: >"$COPY/examples/.dyno/run/routes"
	run env PORT=$DEMO_PORT timeout 60 sh "$COPY/examples/demo.sh"
	[ "$status" -eq 1 ]
	[[ "$output" == *"demo.sh: the router could not listen on 127.0.0.1:$DEMO_PORT"* ]]
	[[ "$output" != *"Try:"* ]]
	[[ "$output" != *"Illegal number"* ]]
	fails pgrep -f "$COPY/bin/dyno-"
}

@test "demo.sh asks the compiler for curl.h, so a multiarch header needs no install" {
	# The check must agree with the compiler; this machine has the header
	# (the build needs it), so demo.sh must not want to install anything.
	printf '#include <curl/curl.h>\n' | cc -E -x c - >/dev/null
	mkdir -p "$COPY/nosudo"
	PATH="$COPY/nosudo:$PATH"
	printf '#!/bin/sh\necho "apt-get called: $*" >>%s/apt.log\nexit 1\n' "$COPY" \
	    >"$COPY/nosudo/apt-get"
	chmod +x "$COPY/nosudo/apt-get"
	PORT=$DEMO_PORT sh "$COPY/examples/demo.sh" >"$COPY/demo.out" 2>&1 3>&- &
	DEMO_PID=$!
	wait_for 60 demo_says "Try:"
	[ ! -e "$COPY/apt.log" ]
}
