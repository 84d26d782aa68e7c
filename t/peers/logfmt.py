#!/usr/bin/env python3
"""logfmt.py: read router log lines the way a log pipeline would.

    logfmt.py FILE GREP

For each line of FILE holding GREP: split it after "heroku[router]: " into
logfmt pairs (key=value or key="value" with backslash escapes) and print
the line's keys that occur more than once or values that are not ASCII,
then "count KEY N" for status and dyno.  Exit 1 on a line that does not
parse, a repeated key, or a byte outside printable ASCII.
"""
import re
import sys

PAIR = re.compile(r'([a-z_]+)=("((?:[^"\\]|\\.)*)"|[^ "]*)(?: |$)')


def main():
    path, needle = sys.argv[1], sys.argv[2].encode()
    bad = 0
    seen = 0
    for raw in open(path, "rb"):
        raw = raw.rstrip(b"\n")
        if needle not in raw:
            continue
        seen += 1
        if any(b < 0x20 or b > 0x7e for b in raw):
            print("not printable ASCII:", raw)
            bad = 1
            continue
        line = raw.decode()
        rest = line.split("heroku[router]: ", 1)[1]
        keys, pos = [], 0
        while pos < len(rest):
            m = PAIR.match(rest, pos)
            if not m:
                print("does not parse at", pos, ":", rest)
                bad = 1
                break
            keys.append(m.group(1))
            pos = m.end()
        for k in set(keys):
            if keys.count(k) > 1:
                print("repeated", k, ":", rest)
                bad = 1
        for k in ("status", "dyno"):
            print("count", k, keys.count(k))
    if seen == 0:
        print("no line holds", needle)
        bad = 1
    sys.exit(bad)


main()
