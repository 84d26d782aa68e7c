#!/usr/bin/env python3
"""flaky.py: an HTTP fault injector for the upload retry tests.

    flaky.py PORT UPSTREAM_PORT FAILURES LOG [STATUS [RETRY_AFTER]]

Listens on 127.0.0.1:PORT.  The first FAILURES requests get STATUS (503)
with Retry-After: RETRY_AFTER (1; "-" sends none), their body read and
thrown away first, so the client sees the answer and not a reset; every
later request is passed to
127.0.0.1:UPSTREAM_PORT byte for byte, Host header and all, so an AWS
SigV4 signature made for this proxy's address still verifies upstream.
Each request appends "METHOD PATH STATUS" to LOG.  Python stdlib only.
"""
import http
import socket
import socketserver
import sys
import threading

PORT, UPSTREAM, FAILURES, LOG = (int(sys.argv[1]), int(sys.argv[2]),
                                 int(sys.argv[3]), sys.argv[4])
STATUS = int(sys.argv[5]) if len(sys.argv) > 5 else 503
RETRY_AFTER = sys.argv[6] if len(sys.argv) > 6 else "1"
REFUSAL = ("HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\n"
           "Connection: close\r\n\r\n" % (
               STATUS, http.HTTPStatus(STATUS).phrase,
               "" if RETRY_AFTER == "-" else
               "Retry-After: %s\r\n" % RETRY_AFTER)).encode("latin-1")
lock = threading.Lock()
seen = 0


def log(method, path, status):
    with lock:
        with open(LOG, "a") as f:
            f.write("%s %s %s\n" % (method, path, status))


def read_head(rfile):
    """The raw header block (up to and with the blank line), or b"" at EOF."""
    lines = []
    while True:
        line = rfile.readline(65537)
        if not line:
            return b""
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def headers_of(head):
    h = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            h[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return h


def copy_body(rfile, h, out):
    """Pass one message body from rfile to out (None: discard): by
    Content-Length or chunked, raw bytes unchanged.  False if the peer
    closed early."""
    def put(b):
        if out is not None:
            out(b)

    def copy_exact(left):
        while left:
            b = rfile.read(min(left, 65536))
            if not b:
                return False
            put(b)
            left -= len(b)
        return True

    if "chunked" in h.get("transfer-encoding", "").lower():
        while True:
            line = rfile.readline(65537)
            if not line:
                return False
            put(line)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailers, up to the blank line.
                while True:
                    t = rfile.readline(65537)
                    if not t:
                        return False
                    put(t)
                    if t in (b"\r\n", b"\n"):
                        return True
            if not copy_exact(size + 2):  # the data and its CRLF
                return False
    return copy_exact(int(h.get("content-length", "0") or 0))


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        global seen
        while True:
            head = read_head(self.rfile)
            if not head:
                return  # a probe that only connects, or the end of keep-alive
            first = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            method, path = first[0], first[1] if len(first) > 1 else "?"
            h = headers_of(head)
            with lock:
                seen += 1
                fail = seen <= FAILURES
            if fail:
                self.refuse(method, path, h)
                return
            if not self.forward(method, path, head, h):
                return

    def refuse(self, method, path, h):
        expect = h.get("expect", "").lower() == "100-continue"
        if not expect:
            # Read what the client sends before answering.
            copy_body(self.rfile, h, None)
        self.wfile.write(REFUSAL)
        self.wfile.flush()
        log(method, path, STATUS)
        # A client that was waiting for 100 Continue may still send its
        # body: drain until it closes, so closing here is never a reset.
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(10)
        try:
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    def forward(self, method, path, head, h):
        up = socket.create_connection(("127.0.0.1", UPSTREAM))
        try:
            up.sendall(head)
            if h.get("expect", "").lower() == "100-continue":
                # Let the client go on at once; upstream's own 100 (if it
                # sends one) is dropped below.
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            if not copy_body(self.rfile, h, up.sendall):
                return False
            urfile = up.makefile("rb")
            while True:
                rhead = read_head(urfile)
                if not rhead:
                    log(method, path, "upstream-closed")
                    return False
                status = int(rhead.split(b" ", 2)[1])
                if status != 100:
                    break
            rh = headers_of(rhead)
            self.wfile.write(rhead)
            if method == "HEAD" or status in (204, 304):
                pass
            elif "content-length" in rh or "chunked" in rh.get(
                    "transfer-encoding", "").lower():
                copy_body(urfile, rh, self.wfile.write)
            else:
                # No length: the body ends when upstream closes.
                while True:
                    b = urfile.read(65536)
                    if not b:
                        break
                    self.wfile.write(b)
                self.wfile.flush()
                log(method, path, status)
                return False
            self.wfile.flush()
            log(method, path, status)
            return rh.get("connection", "").lower() != "close"
        finally:
            up.close()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server(("127.0.0.1", PORT), Handler) as srv:
        srv.serve_forever()
