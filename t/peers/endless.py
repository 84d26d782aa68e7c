#!/usr/bin/env python3
"""endless.py: a hostile HTTP server for download limits.

    endless.py PORTFILE LOG [DOCROOT]

Listens on 127.0.0.1 on a port of the kernel's choosing (written to
PORTFILE by rename).  For each connection, by path:

    /endless...   200, no Content-Length, 64 KiB after 64 KiB until the
                  client goes away
    /trickle...   200, no Content-Length, one byte every 0.2 s
    /big...       200 with Content-Length: 1 GiB, then 64 KiB blocks
    /busy/NAME    the first time 503 with "Retry-After: 2", then 200 with
                  DOCROOT/NAME's bytes
    /busy-date/NAME  the same, Retry-After an HTTP-date 3 s ahead

When a connection ends it appends "PATH sent=BYTES" to LOG.
"""
import email.utils
import os
import socket
import sys
import threading
import time

asked = {}
lock = threading.Lock()


def serve(c):
    sent = 0
    path = "?"
    try:
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return
            req += d
        path = req.split(b" ")[1].decode(errors="replace")
        block = b"x" * 65536
        if path.startswith("/busy"):
            with lock:
                n = asked[path] = asked.get(path, 0) + 1
            if n == 1:
                after = "2"
                if path.startswith("/busy-date/"):
                    after = email.utils.formatdate(time.time() + 3,
                                                   usegmt=True)
                c.sendall(b"HTTP/1.1 503 Service Unavailable\r\n"
                          b"Retry-After: %s\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n" % after.encode())
                return
            name = os.path.basename(path)
            with open(os.path.join(sys.argv[3], name), "rb") as f:
                body = f.read()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
            sent = len(body)
            return
        if path.startswith("/big"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        while True:
            if path.startswith("/trickle"):
                c.sendall(b"x")
                sent += 1
                time.sleep(0.2)
            else:
                c.sendall(block)
                sent += len(block)
    except OSError:
        pass
    finally:
        c.close()
        with open(sys.argv[2], "a") as f:
            f.write("%s sent=%d\n" % (path, sent))


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(tmp, sys.argv[1])
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


main()
