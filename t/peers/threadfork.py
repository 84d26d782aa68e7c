#!/usr/bin/env python3
"""threadfork.py N: a dyno whose second thread starts a child that holds
80 MB for N seconds in a session of its own, then stays alive, so that
the kernel lists the child under the second thread
(/proc/PID/task/TID/children), not under the main one.  Writes "ready"
in the current folder, holding the child's pid, once the child runs.
Python stdlib only.
"""
import os
import subprocess
import sys
import threading
import time


def second():
    hold = "import sys, time; b = b'x' * (80 << 20); time.sleep(int(sys.argv[1]))"
    child = subprocess.Popen([sys.executable, "-c", hold, sys.argv[1]],
                             start_new_session=True)
    with open("ready.tmp", "w") as f:
        f.write("%d\n" % child.pid)
    # Renamed into place: the test never reads a half-written file.
    os.rename("ready.tmp", "ready")
    time.sleep(100000)


threading.Thread(target=second, daemon=True).start()
time.sleep(100000)
