#!/usr/bin/env python3
"""bench/upwait.py: start something, then time how long until N ports on
127.0.0.1 accept.  The same poller, at the same rate, for every supervisor
bench/scale.sh compares, so no side is timed by its own notion of "up".

  upwait.py --want N (--ports P,P,... | --dynos APPDIR) [--routes FILE]
            [--daemon] [--pidfile F] [--log F] [--timeout S] -- CMD [ARG ...]
  upwait.py --want N --ports P,P,... --floor [--pidfile F] -- CMD [ARG ...]

The clock starts just before CMD is started.  CMD is a trigger (waited for,
must exit 0) unless --daemon: then it is left running and its pid written
to --pidfile.  --dynos APPDIR takes the ports from the port= lines of
APPDIR/.dyno/run/dynos/web.* (dyno-run's state files; the old half of a
preboot, "web.N~PID", is skipped).  --routes FILE also times when FILE has
N lines (dyno-run's run/routes: what dyno-route and dyno-scale --wait go by).
--floor: the machine's floor; this process itself starts CMD N times at
once, each with PORT set to one of the ports, and writes every pid to
--pidfile (one a line).

Prints one line: up_ms=T [routes_ms=T].  Exit 1 on timeout or failure.
"""
import argparse
import glob
import os
import socket
import subprocess
import sys
import time


def accepts(port):
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def dyno_ports(appdir):
    ports = set()
    for f in glob.glob(os.path.join(appdir, ".dyno/run/dynos/web.*")):
        if "~" in os.path.basename(f) or ".tmp" in f:
            continue
        try:
            with open(f) as fh:
                for line in fh:
                    if line.startswith("port="):
                        ports.add(int(line[5:]))
        except (OSError, ValueError):
            pass
    return ports


def lines(path):
    try:
        with open(path) as fh:
            return sum(1 for line in fh if line.strip() and not line.startswith("@"))
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--want", type=int, required=True)
    ap.add_argument("--ports")
    ap.add_argument("--dynos")
    ap.add_argument("--routes")
    ap.add_argument("--daemon", action="store_true")
    ap.add_argument("--floor", action="store_true")
    ap.add_argument("--pidfile")
    ap.add_argument("--log", help="stdout and stderr of what is started")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    fixed = [int(p) for p in a.ports.split(",")] if a.ports else None
    if fixed is None and a.dynos is None:
        ap.error("--ports or --dynos")

    # Never our stdout: a daemon holding it open would keep a caller's
    # $(...) waiting.
    log = open(a.log or os.devnull, "ab")
    t0 = time.monotonic()
    procs = []
    if a.floor:
        for p in fixed:
            procs.append(subprocess.Popen(a.cmd, stdout=log, stderr=log,
                                          env=dict(os.environ, PORT=str(p))))
    else:
        procs.append(subprocess.Popen(a.cmd, stdout=log, stderr=log))
    if a.pidfile:
        with open(a.pidfile, "w") as fh:
            fh.write("".join(f"{p.pid}\n" for p in procs))

    up = set()
    t_up = t_routes = None
    deadline = t0 + a.timeout
    while t_up is None or (a.routes and t_routes is None):
        now = time.monotonic()
        if now > deadline:
            print(f"upwait: timeout: {len(up)} of {a.want} up", file=sys.stderr)
            return 1
        if t_up is None:
            ports = fixed if fixed is not None else dyno_ports(a.dynos)
            for p in ports:
                if p not in up and accepts(p):
                    up.add(p)
            # Count only ports still named (a dyno may have moved).
            if len(up & set(ports)) >= a.want:
                t_up = time.monotonic()
        if a.routes and t_routes is None and lines(a.routes) >= a.want:
            t_routes = time.monotonic()
        time.sleep(0.001)

    if not a.daemon and not a.floor:
        rc = procs[0].wait()
        if rc != 0:
            print(f"upwait: {a.cmd[0]} exited {rc}", file=sys.stderr)
            return 1
    out = f"up_ms={(t_up - t0) * 1000:.1f}"
    if a.routes:
        out += f" routes_ms={(t_routes - t0) * 1000:.1f}"
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
