#!/usr/bin/env python3
"""backend.py: a test dyno for t/route.bats that shows what the router sent.

    backend.py PORTFILE [--name NAME] [--delay-ms N]
               [--close | --close-reused | --blackhole]

Listens on 127.0.0.1 on a port of the kernel's choosing and writes that port
to PORTFILE (by rename, so a reader never sees half of it).  A thread per
connection, keep-alive, request bodies read as they come (Content-Length or
chunked) and never held whole.  Every response carries X-Dyno: NAME.

    /                 the request as received: request line, each header
                      line as "h: Name: value", body_len= and body_sha256=
    /slow?ms=N        the same, after N ms
    /status/NNN       status NNN with no body (204, 304 ...)
    /download?bytes=N N zero bytes, Content-Length framed
    /chunked          a chunked response of three chunks
    /bad              a response no HTTP parser should accept, then close
    /hop              hop-by-hop headers the router must not pass on
    /head-body        a body even to a HEAD request (a dyno that errs)
    /stall            Content-Length: 10 and 3 bytes of it, then nothing
                      until the peer closes
    /cut              Content-Length: 10 and 3 bytes of it, then close
    /pause?ms=N       Content-Length: 10 and 3 bytes of it, the other 7
                      N ms later (the head reaches the client long before
                      the end); keep-alive
    Upgrade: websocket   101, then every byte read is written back;
                      a read of just "close-now" closes instead

--delay-ms delays every response: a slow dyno.  An Expect: 100-continue
request gets "100 Continue" before its body is read.  --close reads each
request head, prints its line and closes without a word: a dyno that dies
under every request.  --close-reused answers the first request on each
connection and closes on any later one the same way: the race of a dyno
that closes an idle keep-alive connection as the router reuses it.
--blackhole never accepts, and fills its own accept
queue first, so a connect to it hangs until the caller gives up.
"""
import hashlib
import os
import select
import socket
import sys
import threading
import time

NAME = "backend"
DELAY = 0.0
CLOSE = False
CLOSE_REUSED = False
ZEROS = bytes(1 << 20)


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.served = 0     # requests answered on this connection

    def fill(self):
        data = self.sock.recv(1 << 18)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 200000:
                raise EOFError
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def take(self, n):
        """Yield exactly n body bytes, in the pieces they came in."""
        while n > 0:
            if not self.buf:
                self.fill()
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece


def read_body(conn, headers, digest):
    length = 0
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        while True:
            size = int(conn.line().split(b";")[0], 16)
            if size == 0:
                while conn.line() != b"":
                    pass
                return length
            for piece in conn.take(size):
                length += len(piece)
                if digest:
                    digest.update(piece)
            if conn.line() != b"":
                raise EOFError
    n = int(headers.get("content-length", "0"))
    for piece in conn.take(n):
        length += len(piece)
        if digest:
            digest.update(piece)
    return length


def respond(sock, method, status, body=b"", extra=b"", length=True):
    head = b"HTTP/1.1 %d X\r\nX-Dyno: %s\r\n" % (status, NAME.encode())
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    if method == b"HEAD":
        body = b""
    sock.sendall(head + extra + b"\r\n" + body)


def serve_one(conn):
    sock = conn.sock
    head = conn.head()
    lines = head.split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    headers = {}
    for l in lines[1:]:
        k, v = l.split(b":", 1)
        headers[k.decode().strip().lower()] = v.decode("latin-1").strip()
    path = target.decode()
    print(lines[0].decode(errors="replace"), flush=True)
    if CLOSE or (CLOSE_REUSED and conn.served > 0):
        return False
    conn.served += 1
    keep = version == b"HTTP/1.1" and \
        "close" not in headers.get("connection", "").lower()

    if headers.get("upgrade", "").lower() == "websocket":
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        if conn.buf:
            sock.sendall(conn.buf)
        while True:
            data = sock.recv(65536)
            if not data or data == b"close-now":
                return False
            sock.sendall(data)

    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    digest = None if "nohash" in path else hashlib.sha256()
    length = read_body(conn, headers, digest)
    if DELAY:
        time.sleep(DELAY)
    if path.startswith("/slow"):
        ms = int(path.split("ms=")[1]) if "ms=" in path else 1000
        time.sleep(ms / 1000)
    if path.startswith("/status/"):
        respond(sock, method, int(path[8:11]), length=False)
        return keep
    if path.startswith("/download"):
        n = int(path.split("bytes=")[1])
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Dyno: %s\r\n"
                     b"Content-Length: %d\r\n\r\n" % (NAME.encode(), n))
        while n > 0:
            k = min(n, len(ZEROS))
            sock.sendall(ZEROS[:k] if k < len(ZEROS) else ZEROS)
            n -= k
        return keep
    if path.startswith("/chunked"):
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Dyno: %s\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
                     % NAME.encode())
        return keep
    if path.startswith("/bad"):
        sock.sendall(b"HTTP/1.1 2x0 Broken\r\nContent-Length: 2\r\n\r\nno")
        return False
    if path.startswith("/hop"):
        respond(sock, method, 200, b"hop\n",
                b"Connection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n"
                b"Proxy-Authenticate: Basic\r\nProxy-Connection: x\r\n"
                b"Trailer: X-T\r\nUpgrade: h2c\r\nTE: trailers\r\n")
        return keep
    if path.startswith("/head-body"):
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Dyno: %s\r\nContent-Length: 9\r\n"
                     b"\r\nhead-body" % NAME.encode())
        return False
    if path.startswith("/pause"):
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Dyno: %s\r\nContent-Length: 10"
                     b"\r\n\r\nabc" % NAME.encode())
        time.sleep(int(path.split("ms=")[1]) / 1000)
        sock.sendall(b"defghij")
        return keep
    if path.startswith("/stall") or path.startswith("/cut"):
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Dyno: %s\r\nContent-Length: 10"
                     b"\r\n\r\nabc" % NAME.encode())
        while path.startswith("/stall") and sock.recv(65536):
            pass
        return False
    out = [b"name=" + NAME.encode(), b"line=" + lines[0]]
    out += [b"h: " + l for l in lines[1:]]
    out.append(b"body_len=%d" % length)
    if digest:
        out.append(b"body_sha256=" + digest.hexdigest().encode())
    respond(sock, method, 200, b"\n".join(out) + b"\n")
    return keep


def serve(sock):
    conn = Conn(sock)
    try:
        while serve_one(conn):
            pass
    except (EOFError, OSError, ValueError):
        pass
    finally:
        sock.close()


def main():
    global NAME, DELAY, CLOSE, CLOSE_REUSED
    blackhole = False
    args = sys.argv[1:]
    portfile = args.pop(0)
    while args:
        flag = args.pop(0)
        if flag == "--name":
            NAME = args.pop(0)
        elif flag == "--delay-ms":
            DELAY = int(args.pop(0)) / 1000
        elif flag == "--close":
            CLOSE = True
        elif flag == "--close-reused":
            CLOSE_REUSED = True
        elif flag == "--blackhole":
            blackhole = True
        else:
            sys.exit("backend.py: unknown flag " + flag)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    if blackhole:
        # A backlog of 0 queues one connection; fill it, and the SYNs of
        # any later connect are dropped: it hangs, as to a lost host.
        lsock.listen(0)
        fill = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(lsock.getsockname())
            fill.append(s)
        select.select([], fill[:1], [], 5)  # the one queued is in
    else:
        lsock.listen(1024)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while blackhole:
        time.sleep(3600)
    while True:
        sock, _ = lsock.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
