#!/usr/bin/env python3
"""bootapp.py: a web dyno for t/route-boot.bats that is slow to boot and
shows what it received.

    bootapp.py LOGFILE [--boot-ms N] [--bind-when FILE] [--never-bind]

Run by dyno-run as a web process: waits N ms, or until FILE exists (a slow
boot that the test ends when it is ready), then listens on 127.0.0.1:$PORT.  Every request it reads is appended to LOGFILE as one
line, "DYNO METHOD TARGET body=BODY", written and flushed before the
answer, so the file holds what the dyno received, in the order it read it.
The answer is 200 with the body "DYNO TARGET\\n".  HTTP/1.1 keep-alive, a
thread per connection, bodies framed by Content-Length only (anything else
is a 400 and a close).  --never-bind sleeps forever instead: a dyno that
never boots.
"""
import os
import socket
import sys
import threading
import time

LOCK = threading.Lock()


def serve(conn, log, dyno):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "transfer-encoding":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n"
                                 b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    return
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            with LOCK:
                log.write("%s %s %s body=%s\n" % (dyno, method, target,
                                                 body.decode("latin-1")))
                log.flush()
            out = ("%s %s\n" % (dyno, target)).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(out) + out)
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: bootapp.py LOGFILE [--boot-ms N] [--never-bind]")
    logpath, boot_ms, never, when = args[0], 0, False, None
    i = 1
    while i < len(args):
        if args[i] == "--boot-ms":
            boot_ms = int(args[i + 1])
            i += 2
        elif args[i] == "--bind-when":
            when = args[i + 1]
            i += 2
        elif args[i] == "--never-bind":
            never = True
            i += 1
        else:
            sys.exit("bootapp.py: unknown option " + args[i])
    if never:
        while True:
            time.sleep(3600)
    time.sleep(boot_ms / 1000)
    while when is not None and not os.path.exists(when):
        time.sleep(0.02)
    dyno = os.environ.get("DYNO", "web")
    log = open(logpath, "a")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(os.environ["PORT"])))
    s.listen(128)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, log, dyno),
                         daemon=True).start()


if __name__ == "__main__":
    main()
