#!/usr/bin/env bats
# The fuzz seeds one harness at a time, the way `make fuzz-replay` runs
# them all: `bats -f proxy t/fuzz/replay.bats` rebuilds that harness's
# replay driver against the current lib/ and feeds it t/fuzz/corpus/proxy.
# A harness traps when a property breaks, so a broken parser fails here.
# (make check runs `make fuzz-replay`, not this file: bats t is not
# recursive.)

DYNO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"

replay() {
	local san= variant
	variant=$(cat "$DYNO_ROOT/build/variant" 2>/dev/null || echo default)
	[ "$variant" = san ] && san=SAN=1
	make -s -C "$DYNO_ROOT" --no-print-directory $san \
	    "build/$variant/fuzz/replay_$1" >/dev/null || return
	"$DYNO_ROOT/build/$variant/fuzz/replay_$1" "$DYNO_ROOT/t/fuzz/corpus/$1"
}

# Every seed ran and none broke a property.
replayed() {
	run replay "$1"
	echo "$output"
	[ "$status" -eq 0 ]
	n=$(ls "$DYNO_ROOT/t/fuzz/corpus/$1" | wc -l)
	[[ "$output" == *"replay_$1: $n inputs" ]]
}

@test "replay config: written config vars read back the same" { replayed config; }
@test "replay control: control FIFO lines as the model cuts them" { replayed control; }
@test "replay dburl: no password survives into a database URL" { replayed dburl; }
@test "replay env: config and .env readers keep valid keys, round trip" { replayed env; }
@test "replay formation: formation files and TYPE=N arguments" { replayed formation; }
@test "replay http: heads and chunked bodies read the same in any split" { replayed http; }
@test "replay procfile: Procfile types and commands" { replayed procfile; }
@test "replay proxy: rebuilt heads drop hop-by-hop, keep framing" { replayed proxy; }
@test "replay routes: run/routes lines whole or refused" { replayed routes; }
@test "replay strings: numbers, durations, sizes exact and bounded" { replayed strings; }

@test "every harness has seeds, and a test in this file" {
	for f in "$DYNO_ROOT"/t/fuzz/fuzz_*.c; do
		n=$(basename "$f" .c)
		n=${n#fuzz_}
		ls "$DYNO_ROOT/t/fuzz/corpus/$n" | grep -q .
		grep -q "{ replayed $n; }" "$BATS_TEST_FILENAME"
	done
}
