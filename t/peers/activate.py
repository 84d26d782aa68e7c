#!/usr/bin/env python3
"""activate.py PORTFILE PIDFILE CMD [ARG...]: hold a listening socket on
127.0.0.1 (a free port, written to PORTFILE) as systemd holds a .socket
unit's, and run CMD with it as fd 3, LISTEN_FDS=1 and LISTEN_PID set
(sd_listen_fds(3)).  CMD's pid goes to PIDFILE.  SIGUSR1 restarts CMD as
"systemctl restart" does: SIGTERM, wait for it to exit, start it again; the
socket stays open all along, so connections wait in its queue.  SIGTERM
stops CMD and exits."""
import os
import signal
import socket
import sys


def main():
    portfile, pidfile, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    sigs = {signal.SIGUSR1, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)

    def start():
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            if sock.fileno() != 3:
                os.dup2(sock.fileno(), 3)
            os.set_inheritable(3, True)
            env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
            os.execvpe(cmd[0], cmd, env)
        with open(pidfile + ".tmp", "w") as f:
            f.write("%d\n" % pid)
        os.rename(pidfile + ".tmp", pidfile)
        return pid

    child = start()
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % sock.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        sig = signal.sigwait(sigs)
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)
        if sig == signal.SIGTERM:
            return 0
        child = start()


if __name__ == "__main__":
    sys.exit(main())
