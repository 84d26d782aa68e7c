#!/usr/bin/env python3
"""bench/haswap.py: switch haproxy from one set of servers to another through
its runtime API (the stats socket), with no reload: bench/deploy.sh's
haproxy blue-green.

  haswap.py SOCKET BACKEND --ready S,S,... --drain S,S,... [--timeout SECS]
  haswap.py SOCKET BACKEND --serve [--timeout SECS]

Sets the --ready servers to state ready and the --drain servers to state
drain (no new requests), polls `show stat` every 10 ms until the drained
servers have no session and nothing queued, then puts them in maint.
Exit 1 on a refused command or on timeout.  --serve does the same for each
line "READY DRAIN" (two comma lists) read from stdin, answering "ok" or
"error: ..." on stdout: a switch then costs no interpreter start-up, as an
operator's socat would not.
"""
import argparse
import socket
import sys
import time


def cmd(path, line):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall((line + "\n").encode())
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode()


class Refused(Exception):
    pass


def must(path, line):
    out = cmd(path, line).strip()
    if out:		# these commands answer nothing when they work
        raise Refused(f"{line}: {out}")


def busy(path, backend, servers):
    out = cmd(path, "show stat")
    head = None
    n = 0
    for line in out.splitlines():
        if line.startswith("# "):
            head = line[2:].split(",")
            continue
        f = line.split(",")
        if head is None or len(f) < len(head):
            continue
        r = dict(zip(head, f))
        if r["pxname"] == backend and r["svname"] in servers:
            n += int(r["scur"] or 0) + int(r["qcur"] or 0)
    return n


def swap(path, backend, ready, drain, timeout):
    for s in ready:
        must(path, f"set server {backend}/{s} state ready")
    for s in drain:
        must(path, f"set server {backend}/{s} state drain")
    deadline = time.monotonic() + timeout
    while busy(path, backend, drain) > 0:
        if time.monotonic() > deadline:
            raise Refused("drained servers still busy")
        time.sleep(0.01)
    for s in drain:
        must(path, f"set server {backend}/{s} state maint")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("backend")
    ap.add_argument("--ready")
    ap.add_argument("--drain")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    if a.serve:
        for line in sys.stdin:
            try:
                ready, drain = line.split()
                swap(a.socket, a.backend, ready.split(","), drain.split(","),
                     a.timeout)
                print("ok", flush=True)
            except (Refused, OSError, ValueError) as e:
                print(f"error: {e}", flush=True)
        return 0
    if not a.ready or not a.drain:
        ap.error("--ready and --drain, or --serve")
    try:
        swap(a.socket, a.backend, a.ready.split(","), a.drain.split(","),
             a.timeout)
    except (Refused, OSError) as e:
        print(f"haswap: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
