#!/usr/bin/env python3
"""burst.py PORT N PATH: N GETs of PATH at once, each on its own connection.

Prints one line per outcome with its count: the status line of each answer
("HTTP/1.1 200 OK"), "503 without the platform page" for a 503 whose body
is not dyno-route's "Platform error" page, or the error a client met
(a reset, a timeout, an empty answer).  For t/route.bats: what clients get
from a router that runs out of memory.
"""
import collections
import socket
import sys
import threading

port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
outcomes = collections.Counter()
lock = threading.Lock()


def one():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(("GET %s HTTP/1.1\r\nHost: burst\r\nConnection: close\r\n\r\n"
                   % path).encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        if not data:
            line = "empty answer"
        else:
            line = data.split(b"\r\n")[0].decode("latin-1")
            if " 503 " in line and b"Platform error" not in data:
                line = "503 without the platform page"
    except Exception as e:  # a reset or a timeout is what we count
        line = "%s: %s" % (type(e).__name__, e)
    with lock:
        outcomes[line] += 1


threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for k, v in sorted(outcomes.items()):
    print("%d %s" % (v, k))
