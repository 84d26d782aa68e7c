#!/bin/sh
# childinfo.sh PREFIX: what the shell that ran us got from whoever started
# it, for tests of lib/spawn.c's hygiene: its open fds (PREFIX.fds), its
# ignored signals (PREFIX.sigign), its session and pid (PREFIX.sid,
# PREFIX.pid), its stdin (PREFIX.stdin) and whether set-id programs
# still work for it (PREFIX.nnp: NoNewPrivs, 0 they do).
p=$PPID
ls "/proc/$p/fd" | sort -n | paste -sd' ' >"$1.fds"
sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/$p/status" >"$1.sigign"
cut -d' ' -f6 "/proc/$p/stat" >"$1.sid"
echo "$p" >"$1.pid"
readlink "/proc/$p/fd/0" >"$1.stdin"
sed -n 's/^NoNewPrivs:[[:space:]]*//p' "/proc/$p/status" >"$1.nnp"
