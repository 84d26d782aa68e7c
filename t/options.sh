#!/bin/bash
# options.sh: every option that a program's --help lists must be passed to
# that program by some test.  An option counts as tested when its long form
# (--retries) or, if it has one, its short form (-w) appears as a word on a
# command line in t/*.bats or t/*.bash that starts the program: a line, after
# joining backslash-continued lines, naming the program (dyno-route) or one
# of the test wrappers that run it (INVOKERS below).  --help itself is
# t/build.bats's job for every program.
#
#   bash t/options.sh           list the untested options; exit 1 if any
#   bash t/options.sh -v        also list the tested ones, with where
set -u
cd "$(dirname "$0")/.."

verbose=
[ "${1:-}" = -v ] && verbose=1

# program: extended regexps of what starts it in a test, besides its name.
declare -A INVOKERS=(
	[dyno-run]='start_run'
	[dyno-route]='start_app_router|start_router|start_strict_router'
	[dyno-health]='start_health|health'
	[dyno-scale]='scale|start_auto'
	[dyno-deploy]='deploy'
	[dyno-backup]='backup'
)

# Test text with backslash-continued lines joined, "file:line: text".
joined=$(awk '
	FNR == 1 { if (buf != "") print where ": " buf; buf = "" }
	{
		if (buf == "") where = FILENAME ":" FNR
		line = $0
		if (sub(/\\$/, "", line)) { buf = buf line " "; next }
		print where ": " buf line
		buf = ""
	}
	END { if (buf != "") print where ": " buf }
' t/*.bats t/*.bash)

# options PROGRAM: "SHORT LONG" per option line of PROGRAM --help ("-" for
# none); a line like "--wait / --no-wait" gives one row per long name.
options() {
	"bin/$1" --help 2>&1 | awk '
		/^[ \t]+-/ {
			short = "-"
			if (match($0, /^[ \t]+-[A-Za-z],/))
				short = substr($0, RSTART + RLENGTH - 3, 2)
			head = $0
			sub(/^[ \t]+/, "", head)
			sub(/[ \t][ \t]+[^-].*$/, "", head)	# drop the description
			n = 0
			while (match(head, /--[a-z0-9][a-z0-9-]*/)) {
				print short, substr(head, RSTART, RLENGTH)
				head = substr(head, RSTART + RLENGTH)
				n++
			}
			if (n == 0 && short != "-")
				print short, "-"
		}'
}

# name SHORT LONG: how the option reads in the help ("-w, --workers").
name() {
	case "$1/$2" in
	-/*) echo "$2" ;;
	*/-) echo "$1" ;;
	*) echo "$1, $2" ;;
	esac
}

missing=0 total=0
for prog in dyno-run dyno-route dyno-health dyno-scale dyno-deploy dyno-backup; do
	if [ ! -x "bin/$prog" ]; then
		echo "options.sh: bin/$prog is not built (run make)" >&2
		exit 2
	fi
	inv="(^|[^A-Za-z0-9_-])($prog|${INVOKERS[$prog]})([^A-Za-z0-9_.-]|$)"
	lines=$(grep -E -- "$inv" <<<"$joined")
	while read -r short long; do
		[ "$long" = --help ] && continue
		total=$((total + 1))
		pat=
		[ "$long" != - ] && pat="$long"
		[ "$short" != - ] && pat="${pat:+$pat|}$short"
		hit=$(grep -E -m1 -- "(^|[[:space:]\"'(])($pat)([[:space:]\"'=)]|$)" <<<"$lines")
		if [ -z "$hit" ]; then
			missing=$((missing + 1))
			echo "untested: $prog $(name "$short" "$long")"
		elif [ -n "$verbose" ]; then
			echo "tested:   $prog $(name "$short" "$long"): ${hit%%: *}"
		fi
	done < <(options "$prog")
done
echo "options.sh: $((total - missing)) of $total options tested, $missing untested"
[ "$missing" -eq 0 ]
