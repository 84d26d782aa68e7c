#!/bin/bash
# mutate.sh: put each small bug of t/mutations into a copy of the tree, one
# at a time, build, and run the tests that must catch it.  A mutation that
# leaves its tests green "survived": the tests cannot see that bug, and the
# run fails.  Every bug fixed from now on adds its mutation to the list.
#
#   bash t/mutate.sh [-l] [-b SECONDS] [NAME-PART...]
#
#   -l          list the mutations and exit
#   -b SECONDS  time budget for the whole run (900); a run that would go
#               past it stops and fails, naming what it did not try
#   NAME-PART   only the mutations whose name contains one of these
#
# The working tree is never touched: the copy lives in a temporary folder,
# built once, then rebuilt incrementally as each mutated file is put in and
# taken back out.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
LIST=t/mutations
budget=900 list_only=

usage() { echo "usage: t/mutate.sh [-l] [-b SECONDS] [NAME-PART...]" >&2; exit 2; }
while getopts lb: opt; do
	case $opt in
	l) list_only=1 ;;
	b) [[ $OPTARG =~ ^[0-9]+$ ]] || usage; budget=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))

# Read the list: stanzas of "key: value" lines, blank-line separated.
names=() files=() froms=() tos=() tests=() filters=()
add_stanza() {
	[ -n "$name$file$from$to$test" ] || return 0
	local what
	for what in name file from test; do
		if [ -z "${!what}" ]; then
			echo "$LIST:$start: mutation without '$what:'" >&2
			exit 2
		fi
	done
	names+=("$name") files+=("$file") froms+=("$from") tos+=("$to")
	tests+=("${test%% *}") filters+=("${test#* }")
}
lineno=0 start=1 name= file= from= to= test=
while IFS= read -r line || [ -n "$line" ]; do
	lineno=$((lineno + 1))
	case $line in
	'#'*) continue ;;
	'') add_stanza; name= file= from= to= test= start=$((lineno + 1)); continue ;;
	name:*|file:*|from:*|to:*|test:*) ;;
	*) echo "$LIST:$lineno: not a 'key: value' line: $line" >&2; exit 2 ;;
	esac
	key=${line%%:*} value=${line#*: }
	[ "$value" = "$line" ] && value=
	printf -v "$key" '%s' "$value"
done < "$LIST"
add_stanza

selected=()
for i in "${!names[@]}"; do
	if [ $# -gt 0 ]; then
		hit=
		for part in "$@"; do [[ ${names[$i]} == *"$part"* ]] && hit=1; done
		[ -n "$hit" ] || continue
	fi
	selected+=("$i")
done
if [ -n "$list_only" ]; then
	for i in "${selected[@]}"; do
		printf '%-44s %s (%s -f %s)\n' "${names[$i]}" "${files[$i]}" \
		    "${tests[$i]}" "${filters[$i]}"
	done
	exit 0
fi
[ "${#selected[@]}" -gt 0 ] || { echo "mutate.sh: no mutation matches" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dyno-mutate.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
tar --exclude=./build --exclude=./bin --exclude=./.git -cf - . | tar -xf - -C "$WORK"
echo "mutate.sh: building a copy in $WORK"
if ! make -C "$WORK" -s -j2 all >"$WORK/build.log" 2>&1; then
	tail -20 "$WORK/build.log" >&2
	echo "mutate.sh: the unmutated copy does not build" >&2
	exit 1
fi

# replace FILE FROM TO: FROM must occur exactly once in FILE.
replace() {
	local text rest
	text=$(cat "$1"; printf x)
	text=${text%x}
	rest=${text#*"$2"}
	if [ "$rest" = "$text" ]; then
		echo "not found"
		return 1
	fi
	if [ "${rest#*"$2"}" != "$rest" ]; then
		echo "found more than once"
		return 1
	fi
	printf '%s' "${text%%"$2"*}$3$rest" > "$1"
}

started=$SECONDS killed=0 survived=() broken=() untried=()
for i in "${selected[@]}"; do
	name=${names[$i]} file=${files[$i]}
	if [ $((SECONDS - started)) -ge "$budget" ]; then
		untried+=("$name")
		continue
	fi
	cp "$WORK/$file" "$WORK/mutate.orig"
	if ! why=$(replace "$WORK/$file" "${froms[$i]}" "${tos[$i]}"); then
		broken+=("$name: 'from' text $why in $file")
		continue
	fi
	t0=$SECONDS
	if ! make -C "$WORK" -s -j2 all >"$WORK/build.log" 2>&1; then
		broken+=("$name: does not build: $(grep -m1 'error' "$WORK/build.log")")
	else
		# The mutated build must really run the named tests, and fail one.
		# bats -f takes a regexp; the list gives plain text.
		filter=$(printf '%s' "${filters[$i]}" | sed 's/[][\.*^$(){}+?|]/\\&/g')
		(cd "$WORK" && bats --tap -f "$filter" "${tests[$i]}") \
		    >"$WORK/tap.log" 2>&1
		rc=$?
		ran=$(grep -c '^\(not \)\?ok ' "$WORK/tap.log")
		if [ "$ran" -eq 0 ]; then
			broken+=("$name: no test in ${tests[$i]} matches '${filters[$i]}'")
		elif [ "$rc" -ne 0 ]; then
			killed=$((killed + 1))
			echo "killed    $name ($((SECONDS - t0)) s): $(grep -m1 '^not ok' "$WORK/tap.log")"
		else
			survived+=("$name")
			echo "SURVIVED  $name ($((SECONDS - t0)) s): ${tests[$i]} -f '${filters[$i]}' stayed green"
		fi
	fi
	cp "$WORK/mutate.orig" "$WORK/$file"
	# make decides by mtime: the restored file must look newer than its object.
	touch "$WORK/$file"
done

for b in "${broken[@]}"; do echo "BROKEN    $b"; done
for u in "${untried[@]}"; do echo "UNTRIED   $u (over the ${budget} s budget)"; done
total=${#selected[@]}
echo "mutate.sh: $killed of $total mutations killed, ${#survived[@]} survived," \
    "${#broken[@]} broken, ${#untried[@]} untried, in $((SECONDS - started)) s"
[ "$killed" -eq "$total" ]
