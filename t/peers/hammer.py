#!/usr/bin/env python3
"""hammer.py: steady GET load that records every request's fate.

    hammer.py PORT PATH THREADS OUT STOPFILE [PAUSE_MS]

THREADS clients, each on its own keep-alive connection (a new one after
any failure), GET PATH again and again until STOPFILE exists.  Each
request appends "STATUS MS DYNO" to OUT (a failed one: "fail MS -"), MS
being the time from sending to the whole response.  Lines are written as
they happen, so a test can watch the count grow.  Each client pauses
PAUSE_MS (5) between requests, so the load does not starve the machine.
"""
import http.client
import os
import sys
import threading
import time

port, path, threads, out, stop = (int(sys.argv[1]), sys.argv[2],
                                  int(sys.argv[3]), sys.argv[4], sys.argv[5])
pause = (int(sys.argv[6]) if len(sys.argv) > 6 else 5) / 1000
lock = threading.Lock()
fh = open(out, "a", buffering=1)


def worker():
    conn = None
    while not os.path.exists(stop):
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=40)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            line = "%d %d %s" % (r.status, (time.monotonic() - t0) * 1000,
                                 r.getheader("X-Dyno", "-"))
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception:
            line = "fail %d -" % ((time.monotonic() - t0) * 1000)
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            fh.write(line + "\n")
        time.sleep(pause)


ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
