#!/usr/bin/env python3
"""bench/holdconns.py: hold many idle client connections to an HTTP server on
127.0.0.1 and report the server process's VmRSS (and open fds) at each stage.

  usage: holdconns.py PORT SERVER_PID [N]

Stages, each reported as one "key=value ..." line on stdout:
  idle      VmRSS of SERVER_PID before anything (after a short settle)
  open      N connections open, nothing sent (needs a header timeout > the
            time this takes; dyno-route: --header-timeout 60s)
  served    one keep-alive GET / sent and answered on every connection, all
            still open (idle keep-alive clients)
  closed    all N closed again
Exits 1 if a connection fails, is closed by the server, or gets a non-200.
"""
import os
import resource
import selectors
import socket
import sys
import time


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def settle(pid, want_fds=None, timeout=10.0):
    """Wait until the server holds want_fds fds (if given), then a moment."""
    end = time.monotonic() + timeout
    while want_fds is not None and nfds(pid) < want_fds and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.5)


def report(stage, pid, n, t0):
    print(f"stage={stage} conns={n} rss_kb={vmrss_kb(pid)} fds={nfds(pid)} "
          f"secs={time.monotonic() - t0:.2f}", flush=True)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))

    base_fds = nfds(pid)
    t0 = time.monotonic()
    settle(pid)
    report("idle", pid, 0, t0)

    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    settle(pid, base_fds + n)
    report("open", pid, len(socks), t0)

    # One request on each, in batches; read each response whole.
    req = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: holdconns\r\n\r\n"
    sel = selectors.DefaultSelector()
    batch = 200
    bad = 0
    for i in range(0, n, batch):
        group = socks[i:i + batch]
        pending = {}
        for s in group:
            s.sendall(req)  # tiny: fits the socket buffer
            pending[s] = bytearray()
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                data = s.recv(65536)
                buf = pending[s]
                if not data:
                    bad += 1
                    sel.unregister(s)
                    del pending[s]
                    continue
                buf += data
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
                clen = 0
                for h in head[1:]:
                    k, _, v = h.partition(":")
                    if k.strip().lower() == "content-length":
                        clen = int(v.strip())
                if len(buf) >= head_end + 4 + clen:
                    if head[0].split()[1] != "200":
                        bad += 1
                    sel.unregister(s)
                    del pending[s]
        if pending:
            bad += len(pending)
            for s in pending:
                sel.unregister(s)
    # Still open?  A closed socket reads b"" now.
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
    settle(pid)
    report("served", pid, len(socks) - closed, t0)

    # The server may keep backend connections it opened meanwhile: wait
    # for its fd count to fall by the clients' share.
    want = nfds(pid) - (len(socks) - closed)
    for s in socks:
        s.close()
    deadline = time.monotonic() + 5
    while nfds(pid) > want and time.monotonic() < deadline:
        time.sleep(0.05)
    settle(pid)
    report("closed", pid, 0, t0)
    if bad or closed:
        print(f"error bad_responses={bad} closed_by_server={closed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
