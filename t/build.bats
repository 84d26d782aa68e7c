#!/usr/bin/env bats
# The build itself: every program answers --help, make install lays out
# programs and man pages, every man page is lint-clean, and every option
# of every --help is passed to its program by some test.

load helpers

PROGS="dyno-run dyno-route dyno-scale dyno-health dyno-deploy dyno-backup"

@test "every program has --help (exit 0) and a one-line usage error (exit 2)" {
	for p in $PROGS; do
		run "$BIN/$p" --help
		[ "$status" -eq 0 ]
		[[ "$output" == usage:* ]]
		run "$BIN/$p" --no-such-flag
		[ "$status" -eq 2 ]
		[[ "$output" == *"usage: $p"* ]]
	done
}

@test "make install PREFIX DESTDIR installs programs and man pages" {
	dest=$(mktemp -d)
	# The same build variant, so installing rebuilds nothing mid-suite.
	san=; [ "$(build_variant)" = san ] && san=SAN=1
	run make -C "$DYNO_ROOT" install $san PREFIX=/opt/dyno DESTDIR="$dest"
	[ "$status" -eq 0 ]
	for p in $PROGS; do
		[ -x "$dest/opt/dyno/bin/$p" ]
		[ -f "$dest/opt/dyno/share/man/man1/$p.1" ]
	done
	[ -f "$dest/opt/dyno/share/man/man5/procfile.5" ]
	[ -f "$dest/opt/dyno/share/man/man7/dyno.7" ]
	rm -rf "$dest"
}

@test "every man page passes mandoc -Tlint" {
	run mandoc -Tlint -Wwarning "$DYNO_ROOT"/man/man*/*
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "every option of every --help is passed to its program by some test (t/options.sh)" {
	run bash "$DYNO_ROOT/t/options.sh"
	echo "$output"
	[ "$status" -eq 0 ]
}
