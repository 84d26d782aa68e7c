#!/bin/bash
# run-tests.sh: every bats file in t/, then one closing line a person or a
# CI log reader can count on: "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bats --tap "$@" t | tee "$out"
rc=${PIPESTATUS[0]}
skipped=$(grep -c '^ok .* # skip' "$out")
passed=$(( $(grep -c '^ok ' "$out") - skipped ))
failed=$(grep -c '^not ok ' "$out")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || rc=1
exit "$rc"
