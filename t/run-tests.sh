#!/bin/bash
# run-tests.sh: every bats file in t/, then one closing line a person or a
# CI log reader can count on: "N passed, N failed, N skipped".
#
# A skipped test names what it lacks (a peer that is not installed).  Run by
# a person, a skip is shown with its reason and the run still passes.  In CI
# (CI set) every skip fails the run: a missing peer must be installed by
# .ci/run, not quietly lose its tests.  The one exception is a test that
# cannot apply to this build at all, whose reason starts with "n/a:" (the
# valgrind tests under the sanitizer build).
set -u
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bats --tap "$@" t | tee "$out"
rc=${PIPESTATUS[0]}
skipped=$(grep -c '^ok .* # skip' "$out")
passed=$(( $(grep -c '^ok ' "$out") - skipped ))
failed=$(grep -c '^not ok ' "$out")
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || rc=1
if [ "$skipped" -gt 0 ]; then
	echo "skipped:"
	grep '^ok .* # skip' "$out" | sed 's/^ok [0-9]* /  /'
	if [ -n "${CI:-}" ] && grep '^ok .* # skip' "$out" | grep -vq '# skip n/a:'; then
		echo "run-tests.sh: CI is set and a test was skipped for a missing peer: install it in .ci/run"
		rc=1
	fi
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
