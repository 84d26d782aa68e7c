#!/usr/bin/env python3
"""trickle.py: many slow or long-lived clients at once, for
t/route-hostile.bats, from one process (Python starts slowly here).

    trickle.py body PORT N BYTES READY   N connections, each a POST whose
                                         Content-Length is BYTES, the body
                                         sent 1 KiB per connection every
                                         200 ms; touch READY once every head
                                         and a first KiB went out
    trickle.py ws PORT N READY           N WebSocket-style upgrades; touch
                                         READY once all N got their 101

Then it holds the connections (and trickles) until it is killed.  Exits 1
if a connection is refused or closed early.
"""
import socket
import sys
import time


def touch(path):
    open(path, "w").close()


def body(port, n, size, ready):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /trickle/%d HTTP/1.1\r\nHost: a\r\n"
                  b"Content-Length: %d\r\n\r\n" % (i, size))
        socks.append([s, size])
    touched = False
    while True:
        for entry in socks:
            s, left = entry
            k = min(1024, left)
            if k > 0:
                s.sendall(b"x" * k)
                entry[1] -= k
        if not touched:
            touch(ready)
            touched = True
        time.sleep(0.2)


def ws(port, n, ready):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /ws/%d HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\n\r\n" % i)
        socks.append(s)
    for s in socks:
        got = b""
        while b"\r\n\r\n" not in got:
            piece = s.recv(4096)
            if not piece:
                sys.exit(1)
            got += piece
        if not got.startswith(b"HTTP/1.1 101 "):
            sys.exit(1)
    touch(ready)
    while True:
        time.sleep(1)


def main():
    mode = sys.argv[1]
    if mode == "body":
        body(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
             sys.argv[5])
    elif mode == "ws":
        ws(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(2)


main()
