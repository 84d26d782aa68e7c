#!/usr/bin/env python3
"""client.py: the HTTP clients t/route.bats needs and curl is not.

    client.py raw PORT [SECONDS]         stdin's bytes as they are; print every
                                         byte answered, then <<closed>> or
                                         <<open>> (no EOF within SECONDS, 5)
    client.py loop PORT N PATH           N GETs, a fresh connection each;
                                         prints "STATUS DYNO" per request
    client.py load PORT THREADS N PATH   THREADS keep-alive clients, N GETs
                                         each; prints "DYNO COUNT" lines
    client.py keepalive PORT N           N GETs on one connection
    client.py watch PORT NAME SECONDS    GETs on one connection, one "DYNO"
                                         line each, until NAME answered 3
                                         times; exit 1 on any failure or a
                                         new connection, 2 on timeout
    client.py hup ROUTES PID PORT NAME TEXT
                                         rewrite ROUTES in place without
                                         closing it (so no inotify event),
                                         SIGHUP PID, wait for NAME to answer
    client.py slowloris PORT N READY     N connections that each send half a
                                         head; touch READY; wait for them;
                                         first_close is when the first was
                                         closed, in ms since the Epoch
    client.py ws PORT [dyno-closes]      Upgrade: websocket, echo bytes, then
                                         the client (or the dyno) closes
    client.py reset PORT PATH MS         GET PATH, and MS later close with RST
"""
import http.client
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time


def raw(port, seconds=5.0):
    data = sys.stdin.buffer.read()
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(data)
    except OSError:
        pass	# it may close before taking it all: read what it said
    s.settimeout(seconds)
    out, end = b"", b"<<open>>"
    try:
        while True:
            piece = s.recv(65536)
            if not piece:
                end = b"<<closed>>"
                break
            out += piece
    except socket.timeout:
        pass
    except ConnectionResetError:
        end = b"<<reset>>"
    sys.stdout.buffer.write(out + b"\n" + end + b"\n")


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status, r.getheader("X-Dyno", "-")


def loop(port, n, path):
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            status, dyno = get(conn, path)
        except (OSError, http.client.HTTPException) as e:
            status, dyno = 0, type(e).__name__
        conn.close()
        print(status, dyno, flush=True)


def load(port, threads, n, path):
    counts, lock = {}, threading.Lock()

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(n):
            try:
                status, dyno = get(conn, path)
            except (OSError, http.client.HTTPException):
                status, dyno = 0, "-"
                conn.close()
            key = dyno if status == 200 else "failed"
            with lock:
                counts[key] = counts.get(key, 0) + 1

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for k in sorted(counts):
        print(k, counts[k])


def keepalive(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ok, socks = 0, set()
    for _ in range(n):
        status, _ = get(conn, "/")
        ok += status == 200
        socks.add(conn.sock.getsockname() if conn.sock else None)
    print("requests=%d ok=%d connections=%d" % (n, ok, len(socks)))


def watch(port, name, seconds):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline, seen, local = time.time() + seconds, 0, None
    while time.time() < deadline:
        try:
            status, dyno = get(conn, "/")
        except (OSError, http.client.HTTPException) as e:
            print("error", type(e).__name__, flush=True)
            sys.exit(1)
        if local is None:
            local = conn.sock.getsockname()
        if status != 200 or conn.sock is None or \
                conn.sock.getsockname() != local:
            print("failed", status, flush=True)
            sys.exit(1)
        print(dyno, flush=True)
        seen = seen + 1 if dyno == name else 0
        if seen >= 3:
            return
        time.sleep(0.01)
    sys.exit(2)


def hup(routes, pid, port, name, text):
    with open(routes, "r+") as f:
        f.truncate(0)
        f.write(text.replace("\\n", "\n"))
        f.flush()
        os.kill(pid, signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, dyno = get(conn, "/")
            conn.close()
            if status == 200 and dyno == name:
                print("reloaded")
                return
            time.sleep(0.05)
    print("not reloaded")
    sys.exit(1)


def slowloris(port, n, ready):
    sel, socks = selectors.DefaultSelector(), []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Half: ")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [s, b""])
        socks.append(s)
    start = time.time()
    open(ready, "w").close()
    closed, got408, last, first = 0, 0, 0.0, 0.0
    while closed < n and time.time() < start + 15:
        for key, _ in sel.select(timeout=1):
            s, data = key.data
            try:
                piece = s.recv(4096)
            except ConnectionResetError:
                piece = b""
            if piece:
                key.data[1] = data + piece
                continue
            closed += 1
            got408 += key.data[1].startswith(b"HTTP/1.1 408 ")
            last = time.time() - start
            first = first or time.time()
            sel.unregister(s)
            s.close()
    print("closed=%d got408=%d first_close=%d last_ms=%d" %
          (closed, got408, first * 1000, last * 1000))


def ws(port, dyno_closes):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        piece = s.recv(4096)
        if not piece:
            sys.exit("closed before 101")
        head += piece
    head, rest = head.split(b"\r\n\r\n", 1)
    print(head.split(b"\r\n")[0].decode())
    for msg in (b"ping", b"\x00\x01binary\xff", b"x" * 100000):
        s.sendall(msg)
        got = rest
        rest = b""
        while len(got) < len(msg):
            piece = s.recv(65536)
            if not piece:
                sys.exit("closed mid-echo")
            got += piece
        if got != msg:
            sys.exit("echo differs")
    print("echo ok")
    if dyno_closes:
        s.sendall(b"close-now")
    else:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    start = time.time()
    try:
        end = s.recv(10)
    except socket.timeout:
        end = b"timeout"
    print("closed in %.1fs" % (time.time() - start) if end == b"" else "open")


def reset(port, path, ms):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    time.sleep(ms / 1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "raw":
        raw(int(a[0]), float(a[1]) if len(a) > 1 else 5.0)
    elif cmd == "loop":
        loop(int(a[0]), int(a[1]), a[2])
    elif cmd == "load":
        load(int(a[0]), int(a[1]), int(a[2]), a[3])
    elif cmd == "keepalive":
        keepalive(int(a[0]), int(a[1]))
    elif cmd == "watch":
        watch(int(a[0]), a[1], float(a[2]))
    elif cmd == "hup":
        hup(a[0], int(a[1]), int(a[2]), a[3], a[4])
    elif cmd == "slowloris":
        slowloris(int(a[0]), int(a[1]), a[2])
    elif cmd == "ws":
        ws(int(a[0]), len(a) > 1 and a[1] == "dyno-closes")
    elif cmd == "reset":
        reset(int(a[0]), a[1], int(a[2]))
    else:
        sys.exit("client.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
