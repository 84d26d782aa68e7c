#!/usr/bin/env bats
# The supervisor's whole lifecycle under valgrind: no invalid access, no leak.

load helpers

teardown() { common_teardown; }

@test "dyno-run is valgrind-clean through start, restart, adopt, reload and stop" {
	command -v valgrind >/dev/null || skip "valgrind is not installed"
	[ "$(build_variant)" = default ] || skip "n/a: sanitizer builds do not run under valgrind"
	make_app 'web: ./app' 'worker: ./app --worker'
	RUN_WRAP="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file=$APP/vg.%p.log"
	start_run --memory-interval 100ms web=2 worker=1
	wait_for 30 has_routes 2
	control restart web.1
	wait_for 30 log_has 'heroku\[web.1\]: Process exited'
	printf 'web=1\nworker=0\n' > "$APP/.dyno/formation"
	control reload
	wait_for 30 has_routes 1
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	# Adoption path: kill -9 under valgrind is not a clean exit, so adopt
	# with a plain supervisor's leftovers and stop under valgrind.
	RUN_WRAP= start_run web=2
	wait_for 30 has_routes 2
	kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=
	start_run
	wait_for 30 log_count_ge 'Adopted process' 2
	control stop web.2
	wait_for 30 has_routes 1
	stop_run
	[ "$RUN_STATUS" -eq 0 ]
	# Lines starting "--" are valgrind's notes (it lacks pidfd_open, so this
	# also covers the polling fallback for adopted dynos); errors start "==".
	# The exit status above misses errors in a forked child before its
	# exec (child_setup); those land only in the child's own vg.PID.log.
	cat "$APP"/vg.*.log >&2
	fails grep -q '^==' "$APP"/vg.*.log
}
